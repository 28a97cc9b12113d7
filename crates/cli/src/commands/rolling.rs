//! `zkpilot rolling-restart --dir DIR`: every server of a local group restarted one at a time
//! (observers, followers, the leader last), each step waiting until the ensemble is whole again;
//! resumable (`zkpilot_ops::local::rolling`).

use std::time::Duration;

use clap::Args;

use super::args::DirArg;

/// Options of `rolling-restart`.
#[derive(Debug, Args)]
pub struct RollingArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Seconds each step may take before the restart aborts.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// Runs (or resumes) the restart; one line per step on stdout.
pub async fn run(args: RollingArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    zkpilot_ops::local::rolling::rolling_restart(&args.dir.path(), timeout, &mut zkpilot_ops::progress::print).await?;
    Ok(())
}
