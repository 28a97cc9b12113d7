//! `zkpilot`: parses the command line and dispatches to [`commands`]. No decisions are made here.

mod commands;
mod signal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use commands::{agent, aws, backup, demo, ensemble, kafka, local, plan, rolling};

/// Autopilot for Apache ZooKeeper ensembles.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent beside one ZooKeeper server.
    Agent(agent::AgentArgs),
    /// The local backend: an elastic ensemble of loopback instances on this machine.
    #[command(subcommand)]
    Local(local::LocalCommand),
    /// Up 3, write data, scale to 5, kill the leader, heal, scale to 3, lose 2 of 3 voters and
    /// recover, check every key (runs `zkpilot-lab demo`, built beside this binary).
    #[command(disable_help_flag = true)]
    Demo(demo::DemoArgs),
    /// Print `zookeeper.connect` and a stable `broker.id` for a Kafka broker.
    KafkaConfig(kafka::KafkaArgs),
    /// What the agents of a local group would do next and why nothing else (a dry run: nothing
    /// is changed).
    Plan(plan::PlanArgs),
    /// Restart every server of a local group one at a time (observers, followers, the leader
    /// last), each step waiting until the ensemble is whole again; resumable.
    RollingRestart(rolling::RollingArgs),
    /// Any ZooKeeper ensemble, managed by zkpilot or not.
    #[command(subcommand)]
    Ensemble(ensemble::EnsembleCommand),
    /// Backups the agents stored (snapshots + transaction logs).
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// A new local group born from a backup (`--from OLD_DIR --dir NEW_DIR --size N`); for a new
    /// AWS cluster see `backup seed`.
    Restore(backup::RestoreArgs),
    /// AWS deployment helpers.
    #[command(subcommand)]
    Aws(aws::AwsCommand),
}

impl Command {
    /// The agent and the local group's controller run for an instance's lifetime beside a JVM.
    fn long_running(&self) -> bool {
        match self {
            Self::Agent(_) => true,
            Self::Local(cmd) => cmd.long_running(),
            _ => false,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let long_running = cli.command.long_running();
    // The long-running commands log their decisions; the others speak through stdout and stderr.
    let default_filter = if long_running { "info,zookeeper_client=error" } else { "warn,zookeeper_client=off" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ZKPILOT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    // One thread for the long-running commands: handing each pass's many small steps between
    // worker threads cost more CPU than the steps themselves (perf: most samples in the
    // scheduler, futex wakeups; BENCHMARKS.md B5).
    let mut builder = if long_running {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Agent(args) => agent::run(args).await,
        Command::Local(cmd) => local::run(cmd).await,
        Command::Demo(args) => Err(demo::exec(&args)),
        Command::Aws(cmd) => aws::run(cmd),
        Command::KafkaConfig(args) => kafka::run(args).await,
        Command::Plan(args) => plan::run(args).await,
        Command::RollingRestart(args) => rolling::run(args).await,
        Command::Backup(cmd) => backup::run(cmd).await,
        Command::Restore(args) => backup::restore(args).await,
        Command::Ensemble(cmd) => ensemble::run(cmd).await,
    }
}
