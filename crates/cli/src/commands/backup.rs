//! `zkpilot backup list|seed` and `zkpilot restore`: the backups the agents store in their backend
//! (S3 on AWS, `DIR/backups` locally), and a new ensemble born from one.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use zkpilot_core::backup::Manifest;
use zkpilot_ops::backups::Store;

use super::args::DirArg;
use super::local::UpArgs;

/// Where the backups are: a local group, or the backend of an agent config (S3 on AWS).
#[derive(Debug, Clone, Args)]
pub struct StoreArg {
    #[command(flatten)]
    pub dir: DirArg,
    /// An agent config; its `[backend]` names the store (on AWS: the bucket and prefix).
    #[arg(long, conflicts_with = "dir")]
    pub config: Option<PathBuf>,
}

/// `zkpilot backup` subcommands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Every complete backup, oldest first.
    List {
        #[command(flatten)]
        store: StoreArg,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Copy a backup into a new cluster's store and make it that cluster's restore seed, before
    /// its instances start (on AWS: before the Auto Scaling group launches).
    Seed {
        /// The store holding the backup (`--dir GROUP` or `--config OLD.toml`).
        #[command(flatten)]
        from: StoreArg,
        /// The new cluster's agent config (its `[backend]` is seeded).
        #[arg(long = "to-config", value_name = "FILE")]
        config: PathBuf,
        /// Backup name or `latest`.
        #[arg(long, default_value = "latest")]
        backup: String,
    },
}

/// `zkpilot restore`: a new local group born from a backup.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The group whose store holds the backup (its `backups/` survives the ensemble).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// Backup name (see `zkpilot backup list`) or `latest`.
    #[arg(long, default_value = "latest")]
    pub backup: String,
    /// The new group.
    #[command(flatten)]
    pub up: UpArgs,
}

/// Dispatches `zkpilot backup`.
pub async fn run(cmd: BackupCommand) -> anyhow::Result<()> {
    match cmd {
        BackupCommand::List { store, json } => {
            let store = match &store.config {
                Some(path) => Store::from_config(path).await?,
                None => Store::local(&store.dir.path())?,
            };
            let all = store.list().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print!("{}", render(&all));
            }
        }
        BackupCommand::Seed { from, config, backup } => {
            let source = match (&from.dir.dir, &from.config) {
                (_, Some(cfg)) => Store::from_config(cfg).await?,
                (Some(dir), None) => Store::local(dir)?,
                (None, None) => bail!("--dir or --config: the store that holds the backup"),
            };
            let target = Store::from_config(&config).await?;
            let scratch = std::env::temp_dir().join(format!("zkpilot-seed-{}", std::process::id()));
            source.seed_into(&target, &backup, &scratch).await?;
            eprintln!("seeded {}: that cluster's genesis restores {backup}", config.display());
        }
    }
    Ok(())
}

/// `zkpilot restore`: copies the backup into the new group's store, names it as the restore seed
/// and brings the group up; its first server is born on the backup, the others join it and are
/// synced from it.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let opts = args.up.options()?;
    let view = zkpilot_ops::local::restore::restore(&args.from, &args.backup, &opts, &mut zkpilot_ops::progress::print)
        .await?;
    eprintln!("restored ensemble serves: {}", view.connect_string.as_deref().unwrap_or("-"));
    Ok(())
}

/// Plain-text listing.
pub fn render(all: &[Manifest]) -> String {
    let mut s = format!(
        "{:<40} {:<13} {:>6} {:>14} {:>5} {:>10}\n",
        "backup", "reason", "server", "last zxid", "files", "bytes"
    );
    for m in all {
        s.push_str(&format!(
            "{:<40} {:<13} {:>6} {:>14} {:>5} {:>10}\n",
            m.name,
            m.reason.to_string(),
            m.server_id.to_string(),
            format!("{:#x}", m.last_zxid),
            m.files.len(),
            m.total_bytes()
        ));
    }
    if all.is_empty() {
        s.push_str("(no backups)\n");
    }
    s
}
