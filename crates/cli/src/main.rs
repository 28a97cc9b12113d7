//! `zkpilot`: wires the runtime, the backends and the CLI together. No decisions are made here.

mod backups;
mod bench;
mod chaos;
mod demo;
mod inspect;
mod kafka;
mod load;
mod local;
mod rolling;
mod static_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use zkpilot_runtime::process::JvmProcess;
use zkpilot_runtime::{Agent, AgentConfig, SystemClock};

/// `zkpilot static` subcommands.
#[derive(Debug, Subcommand)]
enum StaticCommand {
    /// Replace one server of a static-list ensemble (no reconfig) under a write load: rolling
    /// (leader last) or all at once; reports failed writes, the longest write gap and lost writes.
    Replace(static_cmd::ReplaceArgs),
}

/// `zkpilot ensemble` subcommands.
#[derive(Debug, Subcommand)]
enum EnsembleCommand {
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
    Agent {
        /// Agent config file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// The local backend: an elastic ensemble of loopback instances on this machine.
    #[command(subcommand)]
    Local(local::LocalCommand),
    /// Up 3, write data, scale to 5, kill the leader, heal, scale to 3, lose 2 of 3 voters and recover, check every key.
    Demo(demo::DemoArgs),
    /// Faults (kill -9 of instances, leader, agents mid-reconfig, quorum loss, scaling) against a
    /// local group under a client workload; reports lost writes, stale reads, convergence.
    Chaos(chaos::ChaosArgs),
    /// Print `zookeeper.connect` and a stable `broker.id` for a Kafka broker.
    KafkaConfig(kafka::KafkaArgs),
    /// What the agents of a local group would do next and why nothing else (a dry run: nothing
    /// is changed).
    Plan {
        #[command(flatten)]
        dir: local::DirArg,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Restart every server of a local group one at a time (observers, followers, the leader
    /// last), each step waiting until the ensemble is whole again; resumable.
    RollingRestart {
        #[command(flatten)]
        dir: local::DirArg,
        /// Seconds each step may take before the restart aborts.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Any ZooKeeper ensemble, managed by zkpilot or not.
    #[command(subcommand)]
    Ensemble(EnsembleCommand),
    /// The static-membership strategy, for ensembles without reconfig (and the benchmarks'
    /// baseline).
    #[command(subcommand)]
    Static(StaticCommand),
    /// The side-by-side benchmarks B1–B8, written into BENCHMARKS.md (`--smoke`: one quick run).
    Bench(bench::BenchArgs),
    /// Backups the agents stored (snapshots + transaction logs).
    #[command(subcommand)]
    Backup(backups::BackupCommand),
    /// A new local group born from a backup (`--from OLD_DIR --dir NEW_DIR --size N`); for a new
    /// AWS cluster see `backup seed`.
    Restore(backups::RestoreArgs),
    /// AWS deployment helpers.
    #[command(subcommand)]
    Aws(AwsCommand),
}

#[derive(Debug, Subcommand)]
enum AwsCommand {
    /// Print a CloudFormation template (JSON) for an ensemble on an Auto Scaling group.
    Template {
        /// `elastic` (a replacement is a new server) or `slot` (fixed interfaces and volumes).
        #[arg(long, default_value = "elastic", value_parser = ["elastic", "slot"])]
        identity: String,
        /// Number of identity slots (slot mode).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=31))]
        slots: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The agent logs its decisions; interactive commands speak through stdout/stderr themselves.
    let default_filter = match cli.command {
        Command::Agent { .. } | Command::Local(local::LocalCommand::Controller { .. }) => "info,zookeeper_client=error",
        _ => "warn,zookeeper_client=off",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ZKPILOT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    // The agent (and the local group's controller) run for the instance's lifetime beside a JVM:
    // one thread. Handing each pass's many small steps between worker threads cost more CPU than
    // the steps themselves (perf: most samples in the scheduler, futex wakeups; BENCHMARKS.md B5).
    let long_running =
        matches!(cli.command, Command::Agent { .. } | Command::Local(local::LocalCommand::Controller { .. }));
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
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Agent { config } => run_agent(&config).await,
        Command::Local(cmd) => local::run(cmd).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Chaos(args) => chaos::run(args).await,
        Command::Aws(cmd) => aws_command(cmd),
        Command::KafkaConfig(args) => kafka::run(args).await,
        Command::Plan { dir, json } => {
            let p = inspect::plan(&dir.path()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                print!("{}", inspect::render_plan(&p));
            }
            Ok(())
        }
        Command::RollingRestart { dir, timeout } => {
            rolling::run(&dir.path(), std::time::Duration::from_secs(timeout)).await
        }
        Command::Backup(cmd) => backups::run(cmd).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Static(StaticCommand::Replace(args)) => {
            let r = static_cmd::replace(&args).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", static_cmd::render(&r));
            }
            Ok(())
        }
        Command::Restore(args) => backups::restore(args).await,
        Command::Ensemble(EnsembleCommand::Status { connect, json }) => {
            let s = inspect::ensemble_status(&connect).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", inspect::render_ensemble(&s));
            }
            Ok(())
        }
    }
}

#[cfg(feature = "aws")]
fn aws_command(cmd: AwsCommand) -> anyhow::Result<()> {
    use zkpilot_aws::template::{Identity, TemplateOptions, render};
    match cmd {
        AwsCommand::Template { identity, slots } => {
            let identity = if identity == "slot" { Identity::Slot { slots } } else { Identity::Elastic };
            println!("{}", serde_json::to_string_pretty(&render(&TemplateOptions { identity }))?);
        }
    }
    Ok(())
}

#[cfg(not(feature = "aws"))]
fn aws_command(_cmd: AwsCommand) -> anyhow::Result<()> {
    Err(without_aws())
}

async fn run_agent(path: &std::path::Path) -> anyhow::Result<()> {
    let mut table = AgentConfig::read_table(path)?;
    let on_aws = table.get("backend").and_then(|b| b.get("kind")).and_then(|k| k.as_str()) == Some("aws");
    if on_aws && !table.contains_key("instance") {
        fill_instance_from_metadata(&mut table).await?;
    }
    let cfg = AgentConfig::from_table(table, path)?;
    let zk =
        zkpilot_zk::ZkClient::new(zkpilot_zk::Secret::from_file(&cfg.cluster.secret_file).map_err(anyhow::Error::msg)?);
    let process = JvmProcess::detect(&cfg.server.install, cfg.server.java.as_deref())?;
    match &cfg.backend {
        zkpilot_runtime::config::BackendSection::Local { dir } => {
            let backend = zkpilot_local::LocalBackend::open(dir)?;
            let api = cfg.api.clone();
            run_with_api(Agent::new(cfg, backend, zk, process, SystemClock)?, api.as_ref()).await?;
        }
        zkpilot_runtime::config::BackendSection::Aws(aws) => {
            let aws = aws.clone();
            run_aws_agent(cfg, zk, process, &aws).await?;
        }
    }
    Ok(())
}

/// Runs the agent, with its HTTP API beside it when `[api]` is set. The token file and the listen
/// address are checked before the agent starts.
async fn run_with_api<B, Z, P, C>(
    agent: Agent<B, Z, P, C>,
    api: Option<&zkpilot_runtime::config::ApiSection>,
) -> anyhow::Result<()>
where
    B: zkpilot_core::ports::Backend + 'static,
    Z: zkpilot_core::ports::Zookeeper + 'static,
    P: zkpilot_core::ports::ServerProcess + 'static,
    C: zkpilot_core::ports::Clock + 'static,
{
    let server = match api {
        None => None,
        Some(api) => {
            let token = match &api.token_file {
                None => None,
                Some(f) => {
                    let text =
                        std::fs::read_to_string(f).with_context(|| format!("[api] token_file {}", f.display()))?;
                    let token = text.lines().next().unwrap_or_default().trim().to_string();
                    if token.len() < 16 {
                        anyhow::bail!("[api] token_file {}: the token must be at least 16 characters", f.display());
                    }
                    Some(token)
                }
            };
            let listener = tokio::net::TcpListener::bind(api.listen)
                .await
                .with_context(|| format!("[api] listen {}", api.listen))?;
            let router = zkpilot_runtime::api::router(agent.status(), agent.control(), token);
            Some(tokio::spawn(zkpilot_runtime::api::serve(listener, router, std::future::pending())))
        }
    };
    let result = agent.run(shutdown_signal()).await;
    if let Some(s) = server {
        s.abort();
    }
    result.map_err(Into::into)
}

/// `[instance]` from the EC2 instance metadata service (IMDSv2) when the config leaves it out.
#[cfg(feature = "aws")]
async fn fill_instance_from_metadata(table: &mut toml::Table) -> anyhow::Result<()> {
    let (id, zone, address) = zkpilot_aws::instance_identity().await?;
    let mut instance = toml::Table::new();
    instance.insert("id".into(), id.into());
    instance.insert("zone".into(), zone.into());
    instance.insert("address".into(), address.into());
    table.insert("instance".into(), toml::Value::Table(instance));
    Ok(())
}

#[cfg(not(feature = "aws"))]
async fn fill_instance_from_metadata(_table: &mut toml::Table) -> anyhow::Result<()> {
    Err(without_aws().context("[instance] is missing and reading it from instance metadata needs AWS"))
}

#[cfg(feature = "aws")]
async fn run_aws_agent(
    cfg: AgentConfig,
    zk: zkpilot_zk::ZkClient,
    process: JvmProcess,
    aws: &zkpilot_runtime::config::AwsSection,
) -> anyhow::Result<()> {
    let slots = match cfg.cluster.identity {
        zkpilot_runtime::config::IdentityMode::Elastic => None,
        zkpilot_runtime::config::IdentityMode::Slot => Some(zkpilot_aws::slots::SlotSettings {
            // Validated: slot identity requires it.
            cluster: aws.slot_cluster.clone().unwrap_or_default(),
            mount: aws.slot_mount.clone().unwrap_or_else(|| "/var/lib/zkpilot/slot".into()),
        }),
    };
    let backend = aws_backend(aws, slots, cfg.names.as_ref().and_then(|n| n.route53_zone.clone())).await;
    let api = cfg.api.clone();
    run_with_api(Agent::new(cfg, backend, zk, process, SystemClock)?, api.as_ref()).await
}

/// The AWS backend of an agent config's `[backend]` (slot mode and Route53 only for agents).
#[cfg(feature = "aws")]
pub(crate) async fn aws_backend(
    aws: &zkpilot_runtime::config::AwsSection,
    slots: Option<zkpilot_aws::slots::SlotSettings>,
    hosted_zone_id: Option<String>,
) -> zkpilot_aws::AwsBackend {
    let settings = zkpilot_aws::AwsSettings {
        group: aws.group.clone(),
        bucket: aws.bucket.clone(),
        prefix: aws.prefix.clone(),
        region: aws.region.clone(),
        endpoint_url: aws.endpoint_url.clone(),
        launch_hook: zkpilot_aws::default_launch_hook(),
        terminate_hook: zkpilot_aws::default_terminate_hook(),
        claims: match &aws.claims_log_group {
            Some(g) => zkpilot_aws::logs::ClaimStore::Logs { log_group: g.clone() },
            None => zkpilot_aws::logs::ClaimStore::S3,
        },
        hosted_zone_id,
        slots,
    };
    zkpilot_aws::AwsBackend::connect(settings).await
}

#[cfg(not(feature = "aws"))]
async fn run_aws_agent(
    _cfg: AgentConfig,
    _zk: zkpilot_zk::ZkClient,
    _process: JvmProcess,
    _aws: &zkpilot_runtime::config::AwsSection,
) -> anyhow::Result<()> {
    Err(without_aws())
}

#[cfg(not(feature = "aws"))]
pub(crate) fn without_aws() -> anyhow::Error {
    anyhow::anyhow!("this zkpilot was built without the `aws` feature; rebuild with `cargo build --features aws`")
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
