//! The ensemble as an operator sees it: what `zkpilot local status` prints. Built from one
//! observation plus the agents' published statuses (for the last plan).

use serde::{Deserialize, Serialize};
use zkpilot_core::model::{InstanceId, InstanceState, Role, ServerId};
use zkpilot_core::observed::{Mode, Observed};
use zkpilot_core::plan::Plan;
use zkpilot_core::safety::voters_wanted;

use crate::status::AgentStatus;

/// One configured server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Server id.
    pub id: ServerId,
    /// Its address (quorum/election host).
    pub address: String,
    /// Client address.
    pub client_address: String,
    /// `leader`, `follower` or `observer`, from the committed config and the leader's identity.
    pub role: String,
    /// A voter in the committed config.
    pub voting: bool,
    /// What its `srvr` said.
    pub mode: Mode,
    /// Instance holding its id.
    pub instance: Option<InstanceId>,
    /// Zone of that instance.
    pub zone: Option<String>,
    /// Its agent's HTTP API (`host:port`), from the agent's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// The ZooKeeper release it runs, from its own `srvr` answer (filled by whoever probes it;
    /// `None` when it did not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One instance of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    /// Id.
    pub id: InstanceId,
    /// Address.
    pub address: String,
    /// Zone.
    pub zone: String,
    /// State.
    pub state: InstanceState,
    /// Claimed server id.
    pub server_id: Option<ServerId>,
    /// Agent phase, from its status.
    pub phase: Option<String>,
    /// What the agent waits for, when it says (quorum-loss recovery, boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The whole view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    /// Configured servers.
    pub members: Vec<MemberView>,
    /// Leader id.
    pub leader: Option<ServerId>,
    /// Committed config version, hex.
    pub config_version: Option<String>,
    /// Client connection string (voters first).
    pub connect_string: Option<String>,
    /// Instances.
    pub instances: Vec<InstanceView>,
    /// The most recent plan any agent published, and which agent.
    pub plan: Option<Plan>,
    /// Agent that published `plan`.
    pub plan_by: Option<InstanceId>,
    /// Number of voters.
    pub voters: usize,
    /// Whether the group is converged for `desired` instances and `target_voters`.
    pub converged: bool,
    /// If not converged, why.
    pub not_converged: Vec<String>,
    /// Plans any agent refused for breaking a safety rule (terminated instances' last statuses
    /// included): a planner bug, which chaos and the tests fail on.
    #[serde(default)]
    pub plans_refused: u64,
    /// Each agent's last refusal, `instance: violation`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<String>,
    /// The leader's synced learners, from its agent's status (a rolling restart waits for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_learners: Option<u64>,
    /// With TLS: the connection string of the secure client ports (`connect_string` stays the
    /// plaintext one, for four-letter words and clients without TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_connect_string: Option<String>,
    /// With TLS: the CA bundle (PEM) clients verify the servers with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Agents that cannot keep their server's certificate current, `instance: error`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_errors: Vec<String>,
}

impl ClusterView {
    /// The ZooKeeper releases the members run, each with the servers on it; more than one entry is
    /// a mixed-version ensemble (mid-upgrade, or a replacement started from another install).
    pub fn versions(&self) -> std::collections::BTreeMap<String, Vec<ServerId>> {
        let mut by = std::collections::BTreeMap::<String, Vec<ServerId>>::new();
        for m in &self.members {
            if let Some(v) = &m.version {
                by.entry(v.clone()).or_default().push(m.id);
            }
        }
        by
    }
}

/// Builds the view.
pub fn build(obs: &Observed, statuses: &[AgentStatus], desired: usize, target_voters: usize) -> ClusterView {
    let leader = obs.leader();
    let mut members = Vec::new();
    for m in obs.members() {
        let Some(spec) = m.spec else { continue };
        let role = if Some(m.id) == leader {
            "leader"
        } else if spec.role == Role::Participant {
            "follower"
        } else {
            "observer"
        };
        members.push(MemberView {
            id: m.id,
            address: spec.host.clone(),
            client_address: spec.client_address(),
            role: role.into(),
            voting: spec.role == Role::Participant,
            mode: m.health.mode,
            instance: m.instance.map(|i| i.id.clone()),
            zone: m.instance.map(|i| i.zone.clone()),
            api: m.instance.and_then(|i| statuses.iter().find(|s| s.instance == i.id)).and_then(|s| s.api.clone()),
            version: None,
        });
    }
    let instances: Vec<InstanceView> = obs
        .instances
        .iter()
        .flatten()
        .map(|i| InstanceView {
            id: i.id.clone(),
            address: i.address.clone(),
            zone: i.zone.clone(),
            state: i.state,
            server_id: i.server_id,
            phase: statuses.iter().find(|s| s.instance == i.id).map(|s| {
                serde_json::to_value(&s.phase).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
            }),
            detail: statuses
                .iter()
                .find(|s| s.instance == i.id && i.state != InstanceState::Terminated && !s.detail.is_empty())
                .map(|s| s.detail.clone()),
        })
        .collect();
    // A terminated instance's last status stays on record; it no longer speaks for the ensemble.
    let alive = |s: &&AgentStatus| instances.iter().any(|i| i.id == s.instance && i.state != InstanceState::Terminated);
    let latest = statuses
        .iter()
        .filter(alive)
        .filter(|s| !s.plan.actions.is_empty() || !s.plan.skipped.is_empty() || s.lease_holder)
        .max_by_key(|s| (s.lease_holder, s.updated_ms))
        .or_else(|| statuses.iter().filter(alive).max_by_key(|s| s.updated_ms));
    let synced_learners = leader
        .and_then(|l| statuses.iter().filter(alive).find(|s| s.server_id == Some(l)))
        .and_then(|s| s.server.as_ref()?.synced_learners());
    let voters = members.iter().filter(|m| m.voting).count();
    let mut why = Vec::new();
    let running: Vec<&InstanceView> = instances.iter().filter(|i| i.state == InstanceState::Running).collect();
    if running.len() != desired {
        why.push(format!("{} running instances, {desired} desired", running.len()));
    }
    if instances.iter().any(|i| i.state == InstanceState::Terminating) {
        why.push("an instance is terminating".into());
    }
    for i in &running {
        match i.server_id.and_then(|id| members.iter().find(|m| m.id == id)) {
            // Serving in the role the config gives it: an observer still reporting "follower" has
            // not yet switched over, and a member mid-switch is not converged.
            Some(m) if m.mode.is_serving() && (m.voting == (m.mode != Mode::Observer)) => {}
            Some(m) if m.mode.is_serving() => why.push(format!("server {} is {:?}, switching role", m.id, m.mode)),
            Some(m) => why.push(format!("server {} is {:?}", m.id, m.mode)),
            None => why.push(format!("instance {} is not a member yet", i.id)),
        }
    }
    for m in &members {
        if !running.iter().any(|i| i.server_id == Some(m.id)) {
            why.push(format!("server {} has no running instance", m.id));
        }
    }
    if leader.is_none() {
        why.push("no leader".into());
    }
    let want = voters_wanted(desired, target_voters);
    if voters != want {
        why.push(format!("{voters} voters, {want} expected"));
    }
    ClusterView {
        members,
        leader,
        config_version: obs.config.as_ref().map(|c| format!("{:x}", c.version)),
        connect_string: obs.config.as_ref().map(|c| c.connect_string()),
        instances,
        plan: latest.map(|s| s.plan.clone()),
        plan_by: latest.map(|s| s.instance.clone()),
        voters,
        converged: why.is_empty(),
        not_converged: why,
        synced_learners,
        plans_refused: statuses.iter().map(|s| s.counters.plans_refused).sum(),
        refusals: statuses
            .iter()
            .filter_map(|s| s.refused.as_ref().map(|r| format!("{}: {}", s.instance, r.violation)))
            .collect(),
        secure_connect_string: None,
        ca_file: None,
        tls_errors: statuses
            .iter()
            .filter_map(|s| s.tls.as_ref()?.error.as_ref().map(|e| format!("{}: {e}", s.instance)))
            .collect(),
    }
}
