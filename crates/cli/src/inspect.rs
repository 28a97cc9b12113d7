//! Read-only views: `zkpilot ensemble status` for any ensemble (managed or not) and `zkpilot plan`,
//! the planner's next step for a local group as a dry run. Neither changes anything.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use zkpilot_core::model::{EnsembleConfig, Role, ServerId};
use zkpilot_core::observed::Mode;
use zookeeper_client as zk;

/// One server of an ensemble as `ensemble status` sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerLine {
    /// Server id.
    pub id: ServerId,
    /// Client address.
    pub client_address: String,
    /// `participant` or `observer` in the committed config.
    pub role: Role,
    /// What its `srvr` said.
    pub mode: Mode,
    /// Its last zxid, hex.
    pub zxid: Option<String>,
}

/// `ensemble status`.
#[derive(Debug, Clone, Serialize)]
pub struct EnsembleStatus {
    /// Committed config version, hex.
    pub config_version: String,
    /// The leader, if one answered.
    pub leader: Option<ServerId>,
    /// Voters and how many of them serve.
    pub voters: usize,
    /// Voters that serve.
    pub voters_serving: usize,
    /// Every configured server.
    pub servers: Vec<ServerLine>,
}

/// Reads `/zookeeper/config` through `connect` (no credentials needed: it is world-readable) and
/// asks every configured server `srvr`.
pub async fn ensemble_status(connect: &str) -> anyhow::Result<EnsembleStatus> {
    let client = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(5))
        .connect(connect)
        .await
        .with_context(|| format!("--connect {connect}: no server answered"))?;
    client.sync("/zookeeper/config").await.context("sync")?;
    let (data, _) = client.get_data("/zookeeper/config").await.context("reading /zookeeper/config")?;
    let text = String::from_utf8_lossy(&data);
    let config = EnsembleConfig::parse(&text)
        .with_context(|| format!("/zookeeper/config is not a dynamic config (reconfig disabled?): {text:?}"))?;
    let probes = config.servers.values().map(|s| async move {
        let h = zkpilot_zk::probe::srvr(&s.client_address()).await;
        ServerLine {
            id: s.id,
            client_address: s.client_address(),
            role: s.role,
            mode: h.mode,
            zxid: h.zxid.map(|z| format!("{z:x}")),
        }
    });
    let servers = futures::future::join_all(probes).await;
    let voters = servers.iter().filter(|s| s.role == Role::Participant).count();
    let voters_serving = servers.iter().filter(|s| s.role == Role::Participant && s.mode.is_serving()).count();
    Ok(EnsembleStatus {
        config_version: format!("{:x}", config.version),
        leader: servers.iter().find(|s| s.mode == Mode::Leader).map(|s| s.id),
        voters,
        voters_serving,
        servers,
    })
}

/// Text rendering of [`EnsembleStatus`].
pub fn render_ensemble(s: &EnsembleStatus) -> String {
    let mut out = format!(
        "config {}  leader {}  voters serving {}/{}\n\n{:>4}  {:<22} {:<12} {:<11} {}\n",
        s.config_version,
        s.leader.map_or("-".into(), |l| l.to_string()),
        s.voters_serving,
        s.voters,
        "id",
        "client address",
        "role",
        "mode",
        "zxid"
    );
    for l in &s.servers {
        out.push_str(&format!(
            "{:>4}  {:<22} {:<12} {:<11} {}\n",
            l.id.0,
            l.client_address,
            l.role.to_string(),
            format!("{:?}", l.mode).to_lowercase(),
            l.zxid.as_deref().unwrap_or("-")
        ));
    }
    out
}

/// `plan --dir DIR`: observes the local group exactly as its agents do and runs the planner; the
/// result is printed, never executed.
pub async fn plan(dir: &Path) -> anyhow::Result<zkpilot_core::Plan> {
    let backend = zkpilot_local::LocalBackend::open(dir)?;
    let group = backend.state().group()?;
    let secret = zkpilot_zk::Secret::from_file(&backend.state().secret_path()).map_err(anyhow::Error::msg)?;
    let zk = zkpilot_zk::ZkClient::new(secret);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let obs = zkpilot_runtime::observe::Observer::default().observe(&backend, &zk, 2181, now).await;
    if obs.instances.is_none() {
        bail!("{}: cannot read the group's instances", dir.display());
    }
    let operator = zkpilot_core::ports::Coordination::operator_settings(&backend).await?.unwrap_or_default();
    let policy = zkpilot_core::Policy {
        target_voters: operator.target_voters.unwrap_or(group.target_voters),
        min_voters: group.min_voters,
        unhealthy_after_ms: group.unhealthy_after_ms,
        ..Default::default()
    };
    let mut plan = zkpilot_core::plan(&obs, &policy, now);
    if operator.paused && !plan.actions.is_empty() {
        plan.skip("automation", "paused by the operator: the agents will not carry this out");
    }
    Ok(plan)
}

/// Text rendering of a plan.
pub fn render_plan(p: &zkpilot_core::Plan) -> String {
    let mut s = String::new();
    if p.actions.is_empty() {
        s.push_str("no action\n");
    }
    for a in &p.actions {
        s.push_str(&format!("do   {a}\n"));
    }
    for k in &p.skipped {
        s.push_str(&format!("skip {}: {}\n", k.subject, k.reason));
    }
    s
}
