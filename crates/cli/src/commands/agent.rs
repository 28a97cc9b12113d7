//! `zkpilot agent --config FILE`: the agent beside one ZooKeeper server. Wiring only: the config
//! names the backend, which is opened; the ZooKeeper client gets the cluster secret; the JVM
//! process port finds the install; the agent runs with its HTTP API beside it until SIGTERM or
//! SIGINT.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use zkpilot_core::ports::{Backend, ServerProcess, Zookeeper};
use zkpilot_runtime::config::{ApiSection, BackendSection};
use zkpilot_runtime::process::JvmProcess;
use zkpilot_runtime::{Agent, AgentConfig, SystemClock};

/// Options of `agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Agent config file (TOML).
    #[arg(long)]
    pub config: PathBuf,
}

/// Reads the config (on AWS, `[instance]` may come from the instance metadata), opens the backend
/// it names and runs the agent.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let path = args.config.as_path();
    let mut table = AgentConfig::read_table(path)?;
    let on_aws = table.get("backend").and_then(|b| b.get("kind")).and_then(|k| k.as_str()) == Some("aws");
    if on_aws && !table.contains_key("instance") {
        fill_instance_from_metadata(&mut table).await?;
    }
    let cfg = AgentConfig::from_table(table, path)?;
    let secret = zkpilot_zk::Secret::from_file(&cfg.cluster.secret_file).map_err(anyhow::Error::msg)?;
    let zk = zkpilot_zk::ZkClient::new(secret);
    let process = JvmProcess::detect(&cfg.server.install, cfg.server.java.as_deref())?;
    match cfg.backend.clone() {
        BackendSection::Local { dir } => {
            let backend = zkpilot_local::LocalBackend::open(&dir)?;
            run_with_api(cfg, backend, zk, process).await
        }
        BackendSection::Aws(aws) => run_aws(cfg, zk, process, &aws).await,
    }
}

#[cfg(feature = "aws")]
async fn run_aws(
    cfg: AgentConfig,
    zk: zkpilot_zk::ZkClient,
    process: JvmProcess,
    aws: &zkpilot_runtime::config::AwsSection,
) -> anyhow::Result<()> {
    let backend = zkpilot_ops::aws::agent_backend(&cfg, aws).await;
    run_with_api(cfg, backend, zk, process).await
}

#[cfg(not(feature = "aws"))]
async fn run_aws(
    _cfg: AgentConfig,
    _zk: zkpilot_zk::ZkClient,
    _process: JvmProcess,
    _aws: &zkpilot_runtime::config::AwsSection,
) -> anyhow::Result<()> {
    Err(super::aws::without_aws())
}

/// Runs the agent, with its HTTP API beside it when `[api]` is set. The token file and the listen
/// address are checked before the agent starts.
async fn run_with_api<B, Z, P>(cfg: AgentConfig, backend: B, zk: Z, process: P) -> anyhow::Result<()>
where
    B: Backend + 'static,
    Z: Zookeeper + 'static,
    P: ServerProcess + 'static,
{
    let api = cfg.api.clone();
    let agent = Agent::new(cfg, backend, zk, process, SystemClock)?;
    let server = match api {
        None => None,
        Some(api) => {
            let token = api_token(&api)?;
            let listener = tokio::net::TcpListener::bind(api.listen)
                .await
                .with_context(|| format!("[api] listen {}", api.listen))?;
            let router = zkpilot_runtime::api::router(agent.status(), agent.control(), token);
            Some(tokio::spawn(zkpilot_runtime::api::serve(listener, router, std::future::pending())))
        }
    };
    let result = agent.run(crate::signal::shutdown()).await;
    if let Some(s) = server {
        s.abort();
    }
    Ok(result?)
}

/// The bearer token of `[api] token_file` (its first line, at least 16 characters), if one is set.
fn api_token(api: &ApiSection) -> anyhow::Result<Option<String>> {
    let Some(f) = &api.token_file else { return Ok(None) };
    let text = std::fs::read_to_string(f).with_context(|| format!("[api] token_file {}", f.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.len() < 16 {
        anyhow::bail!("[api] token_file {}: the token must be at least 16 characters", f.display());
    }
    Ok(Some(token))
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
    Err(super::aws::without_aws().context("[instance] is missing and reading it from instance metadata needs AWS"))
}
