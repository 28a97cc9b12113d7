//! The ZooKeeper ensemble.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::PortResult;
use crate::model::EnsembleConfig;
use crate::observed::Health;
use crate::plan::MembershipChange;

/// Why a reconfig did not commit. `Unknown` means the outcome must be read back from the config:
/// removing the leader, for one, answers ConnectionLoss although it committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReconfigError {
    /// The config moved on since it was observed (`BadVersion`); re-plan.
    #[error("config version changed since it was observed")]
    Stale,
    /// ZooKeeper refused: no synced quorum of the new config, reconfig in progress, bad arguments.
    #[error("rejected by ZooKeeper: {0}")]
    Rejected(String),
    /// Not allowed: wrong super secret, or reconfigEnabled=false. Retrying will not help.
    #[error("not permitted: {0}")]
    Forbidden(String),
    /// The call's fate is unknown (connection loss, timeout).
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// The local server's own view, read from its AdminServer (`zabstate`) and `mntr`. Missing
/// answers stay `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServerDetail {
    /// `election`, `discovery`, `synchronization` or `broadcast` (AdminServer `zabstate`).
    pub zab_state: Option<String>,
    /// In the voting view with its current addresses.
    pub voting: Option<bool>,
    /// Last zxid, hex.
    pub last_zxid: Option<String>,
    /// Client connections to this server (`mntr` num_alive_connections).
    pub connections: Option<u64>,
    /// Leader only: followers synced (including non-voting ones), from `mntr`.
    pub synced_followers: Option<u64>,
    /// Leader only: non-voting followers synced (joiners waiting to be added).
    pub synced_non_voting_followers: Option<u64>,
    /// Leader only: observers synced.
    pub synced_observers: Option<u64>,
}

impl ServerDetail {
    /// Leader only: every synced learner (followers, voting or not, and observers). ZooKeeper's
    /// `synced_followers` already counts the non-voting ones, so a joiner counted as a follower
    /// that becomes an observer does not look like a lost learner.
    pub fn synced_learners(&self) -> Option<u64> {
        Some(self.synced_followers? + self.synced_observers.unwrap_or(0))
    }
}

/// The ZooKeeper ensemble.
pub trait Zookeeper: Send + Sync {
    /// `srvr` on one server's client address; never fails, an unanswered probe is `Unreachable`.
    fn probe(&self, client_address: &str) -> impl Future<Output = Health> + Send;
    /// The committed config, read after `sync` through any of `connect_string`'s servers.
    fn committed_config(&self, connect_string: &str) -> impl Future<Output = PortResult<EnsembleConfig>> + Send;
    /// One conditional incremental reconfig; returns the config ZooKeeper reports back.
    fn reconfig(
        &self,
        connect_string: &str,
        change: &MembershipChange,
    ) -> impl Future<Output = Result<EnsembleConfig, ReconfigError>> + Send;
    /// A write that must commit: after it, a reconfig issued before it is active everywhere
    /// (zookeeperReconfig "Progress guarantees"; a `sync` is not enough).
    fn confirm_write(&self, connect_string: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// The local server's own view: AdminServer `zabstate` on `host:admin_port` (it answers even
    /// while the server does not serve) and, on the leader, the synced counts from `mntr` on
    /// `host:client_port`. Never fails: what did not answer stays `None`.
    fn server_detail(&self, host: &str, admin_port: u16, client_port: u16)
    -> impl Future<Output = ServerDetail> + Send;
}

impl MembershipChange {
    /// True if `config` already reflects this change: every joiner present with its role, every
    /// leaver absent. Used to settle an `Unknown` reconfig outcome, and to detect ZooKeeper's
    /// silent no-op (a config version set too high makes reconfig "succeed" unchanged).
    pub fn is_reflected_in(&self, config: &EnsembleConfig) -> bool {
        self.joining.iter().all(|j| config.servers.get(&j.id) == Some(j))
            && self.leaving.iter().all(|id| !config.servers.contains_key(id))
    }
}
