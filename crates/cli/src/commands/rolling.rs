//! `zkpilot rolling-restart --dir DIR | --agents HOST:PORT,... --token-file F [--zookeeper NEW_HOME]`:
//! every server restarted one at a time (observers, followers, the leader last), each step
//! waiting until the ensemble is whole again; with `--zookeeper`, each comes back on that install
//! (a rolling upgrade; downgrades refused); resumable (`zkpilot_ops::rolling`).

use std::time::Duration;

use clap::Args;

use super::args::DirArg;

/// Options of `rolling-restart`.
#[derive(Debug, Args)]
pub struct RollingArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Any ensemble's agents instead of a local group: every member's agent API (`host:port`),
    /// comma-separated (an AWS ensemble's, for instance).
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT,...", conflicts_with = "dir", requires = "token_file")]
    pub agents: Vec<String>,
    /// With `--agents`: the file holding the agents' API token (first line).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// With `--agents`: keep progress in this file, so a rerun resumes (default: not resumable).
    #[arg(long, value_name = "FILE")]
    pub progress: Option<std::path::PathBuf>,
    /// Seconds each step may take before the restart aborts.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Restart every server on this ZooKeeper install (a rolling upgrade): an Apache release
    /// home or Debian's `/usr/share/java`. Refused if any member runs a newer release.
    #[arg(long, value_name = "NEW_HOME")]
    pub zookeeper: Option<std::path::PathBuf>,
}

/// Runs (or resumes) the restart; one line per step on stdout.
pub async fn run(args: RollingArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    let source = if args.agents.is_empty() {
        zkpilot_ops::rolling::Source::Local(args.dir.path())
    } else {
        zkpilot_ops::rolling::Source::Agents {
            apis: args.agents.clone(),
            token_file: args.token_file.clone().unwrap_or_default(),
            progress: args.progress.clone(),
        }
    };
    zkpilot_ops::rolling::rolling_restart(
        &source,
        timeout,
        args.zookeeper.as_deref(),
        &mut zkpilot_ops::progress::print,
    )
    .await?;
    Ok(())
}
