//! `zkpilot ensemble status`: any ensemble, managed by zkpilot or not (`zkpilot_ops::ensemble`).

use clap::Subcommand;
use zkpilot_ops::ensemble::{EnsembleStatus, ensemble_status};

/// `zkpilot ensemble` subcommands.
#[derive(Debug, Subcommand)]
pub enum EnsembleCommand {
    /// Members, roles, modes, zxids and the config version of any ensemble (3.5+ with reconfig).
    Status {
        /// Client addresses, e.g. `10.0.0.1:2181,10.0.0.2:2181`.
        #[arg(long)]
        connect: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Dispatches `zkpilot ensemble`.
pub async fn run(cmd: EnsembleCommand) -> anyhow::Result<()> {
    let EnsembleCommand::Status { connect, json } = cmd;
    let s = ensemble_status(&connect).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", render(&s));
    }
    Ok(())
}

/// Text rendering of [`EnsembleStatus`].
pub fn render(s: &EnsembleStatus) -> String {
    let mut out = format!(
        "config {}  leader {}  voters serving {}/{}\n\n{:>4}  {:<22} {:<12} {:<11} {:<8} {}\n",
        s.config_version,
        s.leader.map_or("-".into(), |l| l.to_string()),
        s.voters_serving,
        s.voters,
        "id",
        "client address",
        "role",
        "mode",
        "version",
        "zxid"
    );
    for l in &s.servers {
        out.push_str(&format!(
            "{:>4}  {:<22} {:<12} {:<11} {:<8} {}\n",
            l.id.0,
            l.client_address,
            l.role.to_string(),
            format!("{:?}", l.mode).to_lowercase(),
            l.version.as_deref().unwrap_or("-"),
            l.zxid.as_deref().unwrap_or("-")
        ));
    }
    let mut versions: Vec<&str> = s.servers.iter().filter_map(|l| l.version.as_deref()).collect();
    versions.sort_unstable();
    versions.dedup();
    if versions.len() > 1 {
        out.push_str(&format!("\nMIXED ZooKeeper versions: {}\n", versions.join(", ")));
    }
    out
}
