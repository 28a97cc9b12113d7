//! The ZooKeeper ensemble.

use std::future::Future;

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
