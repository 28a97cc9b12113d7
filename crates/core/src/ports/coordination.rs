//! Records the agents coordinate through: the cluster marker, the membership-change lease,
//! quorum-loss recovery, the operator's switches, the restore seed and the shared base config.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::PortResult;
use crate::model::{InstanceId, ServerSpec};
use crate::recovery::{RecoveryDecision, SurvivorReport};

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

/// Shared records the agents agree through.
pub trait Coordination: Send + Sync {
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
    /// The backup the next genesis restores, set by `zkpilot restore` before the ensemble exists.
    fn restore_seed(&self) -> impl Future<Output = PortResult<Option<String>>> + Send;
    /// Sets the restore seed.
    fn put_restore_seed(&self, backup: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// The ensemble-wide base config (zoo.cfg keys shared by every member), if the operator set one.
    fn base_config(&self) -> impl Future<Output = PortResult<Option<String>>> + Send;
}
