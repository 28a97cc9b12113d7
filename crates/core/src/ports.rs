//! The external systems the runtime drives, each as a narrow trait with only the methods the agent
//! uses. Implementations live elsewhere: `zkpilot-zk` (ZooKeeper), `zkpilot-local` (backend),
//! `zkpilot-supervisor` (process). The traits use `impl Future + Send` so the core needs no async
//! runtime and implementations can be used from multi-threaded tokio tasks.

use std::future::Future;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::backup::Manifest;
use crate::model::{EnsembleConfig, Instance, InstanceId, LifecycleHook, ServerId, ServerSpec};
use crate::observed::Health;
use crate::plan::MembershipChange;
use crate::recovery::{RecoveryDecision, SurvivorReport};

/// A port call that failed. `port` names the system, `what` the operation and its target.
#[derive(Debug, thiserror::Error)]
#[error("{port}: {what}")]
pub struct PortError {
    /// `zookeeper`, `backend`, `process`.
    pub port: &'static str,
    /// Operation and detail.
    pub what: String,
    /// Underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl PortError {
    /// Builds an error with a source.
    pub fn new(
        port: &'static str,
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self { port, what: what.into(), source: Some(Box::new(source)) }
    }
    /// Builds an error without a source.
    pub fn msg(port: &'static str, what: impl Into<String>) -> Self {
        Self { port, what: what.into(), source: None }
    }
}

/// Port result.
pub type PortResult<T> = Result<T, PortError>;

/// Wall clock, in milliseconds since the Unix epoch. Injected so planner inputs are reproducible.
pub trait Clock: Send + Sync {
    /// Now.
    fn now_ms(&self) -> u64;
}

/// Switches an operator sets for the whole ensemble (through any agent's API); every agent reads
/// them each pass.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSettings {
    /// No agent executes plans (planning and status go on).
    pub paused: bool,
    /// Overrides the configured voter target.
    pub target_voters: Option<usize>,
    /// Instance whose API took the last change.
    pub updated_by: String,
    /// When, ms since the Unix epoch.
    pub updated_ms: u64,
}

/// The record written exactly once when a new ensemble is born. Its existence is what separates
/// "nothing here yet" (genesis) from "an ensemble exists but does not answer" (quorum loss).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMarker {
    /// Random id stamped into every data dir of this ensemble.
    pub cluster_id: String,
    /// The initial participants, identical in every genesis member's dynamic file.
    pub genesis: Vec<ServerSpec>,
    /// Instance that created it.
    pub created_by: InstanceId,
    /// When (ms since the Unix epoch).
    pub created_ms: u64,
    /// The backup the genesis server starts from (a restore), if any. Set only when the
    /// operator's restore seed existed before the ensemble was born.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
}

/// Slot mode's stable identity: a server id with a fixed address and persistent storage that
/// outlive any one instance (on AWS a network interface and an EBS volume; locally an address and
/// a directory). A replacement instance takes over the slot and restarts the same server on the
/// same data, so no reconfig is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The server id (the slot number).
    pub id: ServerId,
    /// The address the server binds and advertises.
    pub address: String,
    /// Where the slot's storage is mounted, if the backend decides it (else the configured dir).
    pub base_dir: Option<std::path::PathBuf>,
}

/// The cloud or local group the ensemble runs in.
pub trait Backend: Send + Sync {
    /// All instances of the group with their states and claimed ids.
    fn instances(&self) -> impl Future<Output = PortResult<Vec<Instance>>> + Send;
    /// How many instances the group wants.
    fn desired_capacity(&self) -> impl Future<Output = PortResult<usize>> + Send;
    /// Claims a free server id for `instance` atomically (create-exclusive); idempotent for an
    /// instance that already holds one.
    fn claim_id(&self, instance: &InstanceId, address: &str) -> impl Future<Output = PortResult<ServerId>> + Send;
    /// Slot mode: the slot `instance` holds, else a free slot of `zone` taken atomically, made
    /// ready (address and storage attached). `None` while no slot is free.
    fn claim_slot(&self, instance: &InstanceId, zone: &str) -> impl Future<Output = PortResult<Option<Slot>>> + Send;
    /// Returns an id to the pool. (A slot is never released: it is taken over once its holder is
    /// gone.)
    fn release_id(&self, id: ServerId, instance: &InstanceId) -> impl Future<Output = PortResult<()>> + Send;
    /// The cluster marker, if one was ever written.
    fn cluster_marker(&self) -> impl Future<Output = PortResult<Option<ClusterMarker>>> + Send;
    /// Creates the marker if none exists; returns whichever marker won.
    fn create_cluster_marker(&self, marker: &ClusterMarker) -> impl Future<Output = PortResult<ClusterMarker>> + Send;
    /// Takes or renews the membership-change lease; true if `holder` has it until `now + ttl`.
    fn acquire_lease(
        &self,
        holder: &InstanceId,
        ttl_ms: u64,
        now_ms: u64,
    ) -> impl Future<Output = PortResult<bool>> + Send;
    /// Makes this instance's server id and advertised address visible on the instance (EC2 tags).
    fn announce(
        &self,
        instance: &InstanceId,
        id: ServerId,
        address: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Publishes the committed membership: the client connection string for Kafka & co.
    fn publish_membership(&self, config: &EnsembleConfig) -> impl Future<Output = PortResult<()>> + Send;
    /// Protects (or releases) an instance from being picked on scale-in.
    fn set_scale_in_protection(
        &self,
        instance: &InstanceId,
        protected: bool,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Extends a waiting lifecycle action's timeout.
    fn lifecycle_heartbeat(
        &self,
        instance: &InstanceId,
        hook: LifecycleHook,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Completes a lifecycle action with CONTINUE.
    fn complete_lifecycle(
        &self,
        instance: &InstanceId,
        hook: LifecycleHook,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Publishes this server's client connection count (the metric a target-tracking scaling
    /// policy scales the group on).
    fn publish_connections(
        &self,
        instance: &InstanceId,
        connections: u64,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// The ensemble-wide base config (zoo.cfg keys shared by every member), if the operator set one.
    fn base_config(&self) -> impl Future<Output = PortResult<Option<String>>> + Send;
    /// Points server `name` at `address` in the backend's name service (Route53 on AWS). Only
    /// called with name indirection configured for this backend.
    fn publish_name(&self, name: &str, address: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Publishes this agent's status snapshot (JSON).
    fn publish_status(&self, instance: &InstanceId, status_json: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Quorum-loss recovery: publishes (replaces) this survivor's report.
    fn put_survivor_report(&self, report: &SurvivorReport) -> impl Future<Output = PortResult<()>> + Send;
    /// Every survivor report on record, fresh or not (the core filters).
    fn survivor_reports(&self) -> impl Future<Output = PortResult<Vec<SurvivorReport>>> + Send;
    /// The stored recovery decision, if any was ever made.
    fn recovery_decision(&self) -> impl Future<Output = PortResult<Option<RecoveryDecision>>> + Send;
    /// Stores a recovery decision. Callers hold the lease: it is the only writer.
    fn put_recovery_decision(&self, decision: &RecoveryDecision) -> impl Future<Output = PortResult<()>> + Send;
    /// The operator's switches, if any were ever set.
    fn operator_settings(&self) -> impl Future<Output = PortResult<Option<OperatorSettings>>> + Send;
    /// Replaces the operator's switches.
    fn put_operator_settings(&self, settings: &OperatorSettings) -> impl Future<Output = PortResult<()>> + Send;
    /// Tells the group that `instance` is unhealthy so it is replaced (SetInstanceHealth on AWS).
    fn report_unhealthy(&self, instance: &InstanceId) -> impl Future<Output = PortResult<()>> + Send;
    /// Stores one file of backup `backup` (S3 `backups/<backup>/<file>`; locally `DIR/backups/`).
    fn backup_put(&self, backup: &str, file: &str, from: &Path) -> impl Future<Output = PortResult<()>> + Send;
    /// Fetches one file of a backup to `to`.
    fn backup_get(&self, backup: &str, file: &str, to: &Path) -> impl Future<Output = PortResult<()>> + Send;
    /// Every complete backup (one with a manifest).
    fn backups(&self) -> impl Future<Output = PortResult<Vec<Manifest>>> + Send;
    /// Deletes a backup, manifest first (so a half-deleted one is never listed).
    fn backup_delete(&self, backup: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// The backup the next genesis restores, set by `zkpilot restore` before the ensemble exists.
    fn restore_seed(&self) -> impl Future<Output = PortResult<Option<String>>> + Send;
    /// Sets the restore seed.
    fn put_restore_seed(&self, backup: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Keeps one post-mortem file of `instance` (its ZooKeeper and agent logs) after it is gone.
    fn ship_log(&self, instance: &InstanceId, file: &str, from: &Path) -> impl Future<Output = PortResult<()>> + Send;
}

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

/// How the supervised ZooKeeper process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal, if killed.
    pub signal: Option<i32>,
}

/// The local ZooKeeper server process.
pub trait ServerProcess: Send {
    /// Starts it; no-op if running.
    fn start(&mut self) -> PortResult<()>;
    /// Graceful stop (SIGTERM, grace, SIGKILL of the whole process group).
    fn stop(&mut self) -> impl Future<Output = PortResult<()>> + Send;
    /// Reaps an exit without blocking.
    fn try_exited(&mut self) -> Option<ExitInfo>;
    /// Process id while running.
    fn pid(&self) -> Option<u32>;
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
