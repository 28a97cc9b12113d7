//! `zkpilot-lab`: the test harness of zkpilot, never shipped with it. Chaos campaigns, the
//! side-by-side benchmarks, the fixed-membership strategy they compare with, and the demo's
//! story, all driving local groups through `zkpilot_ops` and the `zkpilot` binary built beside
//! this one. Everything they measure comes from one client workload ([`workload`]).

mod bench;
mod chaos;
mod demo;
mod fixed;
mod sibling;
mod workload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// zkpilot's lab: chaos, benchmarks, the fixed-membership strategy and the demo.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Faults (kill -9 of instances, leader, agents mid-reconfig, quorum loss, scaling) against a
    /// local group under a client workload; reports lost writes, stale reads, convergence.
    Chaos(chaos::ChaosArgs),
    /// The side-by-side benchmarks B1–B8, written into BENCHMARKS.md (`--smoke`: one quick run).
    Bench(bench::BenchArgs),
    /// The fixed-membership strategy (was "static membership"): ensembles without reconfig, and
    /// the benchmarks' baseline.
    #[command(subcommand)]
    Fixed(FixedCommand),
    /// Up 3, write data, scale to 5, kill the leader, heal, scale to 3, lose 2 of 3 voters and
    /// recover, check every key.
    Demo(demo::DemoArgs),
    /// One server-id claim on a local group's store (B6 runs many at once, one process each).
    #[command(hide = true)]
    ClaimOnce(bench::ClaimOnceArgs),
}

/// `zkpilot-lab fixed` subcommands.
#[derive(Debug, Subcommand)]
enum FixedCommand {
    /// Replace one server of a fixed-list ensemble (no reconfig) under a write load: rolling
    /// (leader last) or all at once; reports failed writes, the longest write gap and lost writes.
    Replace(fixed::replace::ReplaceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ZKPILOT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,zookeeper_client=off")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Chaos(args) => chaos::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Fixed(FixedCommand::Replace(args)) => fixed::replace::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::ClaimOnce(args) => bench::claim_once(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
