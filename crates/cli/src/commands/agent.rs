//! `zkpilot agent --config FILE`: the agent beside one ZooKeeper server. Wiring only: the config
//! names the backend, which is opened; the ZooKeeper client gets the cluster secret; the JVM
//! process port finds the install; the agent runs with its HTTP API beside it until SIGTERM or
//! SIGINT.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use zkpilot_core::ports::{Backend, ServerProcess, Zookeeper};
use zkpilot_runtime::config::{BackendSection, ConfigError, InstanceSection};
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
    let table = AgentConfig::read_table(path)?;
    let instance =
        if AgentConfig::wants_instance_metadata(&table) { Some(instance_from_metadata(path).await?) } else { None };
    let cfg = AgentConfig::from_table_with_instance(table, path, instance)?;
    let secret = zkpilot_zk::Secret::from_file(&cfg.cluster.secret_file).map_err(anyhow::Error::msg)?;
    let zk = match cfg.client_tls() {
        Some(tls) => zkpilot_zk::ZkClient::new(secret).with_tls(tls),
        None => zkpilot_zk::ZkClient::new(secret),
    };
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
            let token = api.read_token()?;
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

/// `[instance]` from the EC2 instance metadata service (IMDSv2) when an AWS agent's config leaves
/// it out; a failed read is a config error naming `[instance]`.
#[cfg(feature = "aws")]
async fn instance_from_metadata(path: &Path) -> Result<InstanceSection, ConfigError> {
    let (id, zone, address) =
        zkpilot_aws::instance_identity().await.map_err(|e| ConfigError::instance_metadata(path, e))?;
    Ok(InstanceSection { id: zkpilot_core::model::InstanceId(id), address, zone })
}

#[cfg(not(feature = "aws"))]
async fn instance_from_metadata(path: &Path) -> Result<InstanceSection, ConfigError> {
    Err(ConfigError::instance_metadata(path, super::aws::without_aws()))
}
