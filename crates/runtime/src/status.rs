//! The agent's published status: an immutable snapshot replaced after every pass.

use serde::{Deserialize, Serialize};
/// Where the agent is in its life (decided in the core, with the rest of the agent's step), and
/// its running totals.
pub use zkpilot_core::agent::{Counters, Outcome, Phase};
use zkpilot_core::model::{InstanceId, Role, ServerId};
use zkpilot_core::observed::Mode;
use zkpilot_core::plan::Plan;
/// The local server's own view; the type lives with the ZooKeeper port that reads it.
pub use zkpilot_core::ports::ServerDetail;

/// One executed action and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// What was done.
    pub action: String,
    /// What came of it; serialized as its text (`applied`, `conflict: …`, `rejected by
    /// ZooKeeper: …`, `failed: …`).
    pub outcome: Outcome,
    /// How long it took, ms.
    pub took_ms: u64,
}

/// One member as this agent last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberLine {
    /// Server id.
    pub id: ServerId,
    /// Address it runs on (its instance's), else its configured host.
    pub address: String,
    /// `participant`, `observer`, or `-` when not in the config (joining, leaving).
    pub role: String,
    /// What it answered.
    pub mode: Option<Mode>,
    /// Its instance's zone.
    pub zone: Option<String>,
    /// Its instance.
    pub instance: Option<String>,
    /// Last zxid it reported.
    pub zxid: Option<u64>,
}

/// The snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Instance.
    pub instance: InstanceId,
    /// Address.
    pub address: String,
    /// Zone.
    pub zone: String,
    /// Server id, once claimed.
    pub server_id: Option<ServerId>,
    /// Phase.
    pub phase: Phase,
    /// Why the agent is in this phase.
    pub detail: String,
    /// Role in the committed config, if a member.
    pub role: Option<Role>,
    /// What the local server says (`srvr`).
    pub mode: Option<Mode>,
    /// The local server's own view from its AdminServer (`zabstate`) and, on the leader, `mntr`.
    pub server: Option<ServerDetail>,
    /// Committed config version (hex).
    pub config_version: Option<String>,
    /// Leader id.
    pub leader: Option<ServerId>,
    /// Client connection string of the committed config.
    pub connect_string: Option<String>,
    /// Last plan.
    pub plan: Plan,
    /// Whether this agent held the lease in the last pass.
    pub lease_holder: bool,
    /// Recent actions this agent executed, newest last.
    pub events: Vec<Event>,
    /// When this snapshot was taken, ms since the Unix epoch.
    pub updated_ms: u64,
    /// Every member (and joiner) as this agent saw it in the last pass.
    #[serde(default)]
    pub members: Vec<MemberLine>,
    /// Transactions this server is behind the leader, when both answered.
    #[serde(default)]
    pub zxid_lag: Option<u64>,
    /// Plan execution paused by the operator.
    #[serde(default)]
    pub paused: bool,
    /// The voter target in force (the operator's override, else the config's).
    #[serde(default)]
    pub target_voters: usize,
    /// Totals since start.
    #[serde(default)]
    pub counters: Counters,
    /// This agent's HTTP API, `host:port`, when it serves one.
    #[serde(default)]
    pub api: Option<String>,
    /// The last plan this agent refused because it broke a safety rule (a planner bug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
    /// The ZooKeeper install (home and release) the server was last started on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<zkpilot_core::version::Release>,
    /// The server's TLS certificate, when `[tls]` is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsStatus>,
}

/// The server certificate the agent keeps current (`[tls]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsStatus {
    /// End of the current certificate's validity, seconds since the Unix epoch.
    pub not_after_s: Option<u64>,
    /// The addresses and names it is valid for.
    pub names: Vec<String>,
    /// When the agent last issued one, ms since the Unix epoch, and why.
    pub renewed_at_ms: Option<u64>,
    /// Why it was last issued (`no certificate yet`, `renewal due (...)`, `... expired`, ...).
    pub renewed_because: Option<String>,
    /// Certificates issued since the agent started.
    pub renewals: u64,
    /// The last failure to check or renew it, if it has not succeeded since.
    pub error: Option<String>,
}

/// A plan refused by the safety check (`zkpilot_core::agent::vet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The rule it broke and how (`plan violates ...`).
    pub violation: String,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
}
