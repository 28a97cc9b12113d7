//! The status of any ensemble (managed by zkpilot or not, 3.5+ with reconfig) from its client
//! addresses alone. Read-only.

use std::time::Duration;

use serde::Serialize;
use zkpilot_core::model::{EnsembleConfig, Role, ServerId};
use zkpilot_core::observed::Mode;
use zookeeper_client as zk;

/// One server of an ensemble as [`ensemble_status`] sees it.
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
    /// The ZooKeeper release it runs (`srvr`).
    pub version: Option<String>,
}

/// The ensemble's status.
#[derive(Debug, Clone, Serialize)]
pub struct EnsembleStatus {
    /// Committed config version, hex.
    pub config_version: String,
    /// The leader, if one answered.
    pub leader: Option<ServerId>,
    /// Voters in the committed config.
    pub voters: usize,
    /// Voters that serve.
    pub voters_serving: usize,
    /// Every configured server.
    pub servers: Vec<ServerLine>,
}

/// The ensemble's config could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnsembleError {
    /// No server answered.
    #[error("--connect {connect}: no server answered")]
    Connect {
        /// The addresses tried.
        connect: String,
        /// Why.
        #[source]
        source: zk::Error,
    },
    /// A read failed.
    #[error("{what}")]
    Read {
        /// What was being read.
        what: &'static str,
        /// Why.
        #[source]
        source: zk::Error,
    },
    /// `/zookeeper/config` holds no dynamic config.
    #[error("/zookeeper/config is not a dynamic config (reconfig disabled?): {0:?}")]
    NotDynamic(String, #[source] zkpilot_core::model::ModelError),
}

/// Reads `/zookeeper/config` through `connect` (no credentials needed: it is world-readable) and
/// asks every configured server `srvr`.
pub async fn ensemble_status(connect: &str) -> Result<EnsembleStatus, EnsembleError> {
    let client = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(5))
        .connect(connect)
        .await
        .map_err(|source| EnsembleError::Connect { connect: connect.to_string(), source })?;
    client.sync("/zookeeper/config").await.map_err(|source| EnsembleError::Read { what: "sync", source })?;
    let (data, _) = client
        .get_data("/zookeeper/config")
        .await
        .map_err(|source| EnsembleError::Read { what: "reading /zookeeper/config", source })?;
    let text = String::from_utf8_lossy(&data);
    let config = EnsembleConfig::parse(&text).map_err(|e| EnsembleError::NotDynamic(text.to_string(), e))?;
    let probes = config.servers.values().map(|s| async move {
        let text = zkpilot_zk::probe::four_letter_word(&s.client_address(), "srvr").await;
        let h = text.as_deref().map_or(zkpilot_core::observed::Health::UNREACHABLE, zkpilot_zk::probe::parse_srvr);
        ServerLine {
            version: text.as_deref().ok().and_then(zkpilot_zk::probe::parse_version),
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
