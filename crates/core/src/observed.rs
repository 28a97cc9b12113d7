//! The snapshot the planner decides on. Gathered by the runtime under a deadline; anything it could
//! not learn is represented explicitly (`None`, [`Mode::Unreachable`]) rather than guessed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{EnsembleConfig, Instance, InstanceState, Role, ServerId, ServerSpec};

/// What a server said about itself (`srvr` four-letter word / AdminServer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Serving, leading.
    Leader,
    /// Serving, following. A joiner or a removed server also says this (a non-voting follower);
    /// only the committed config tells them apart.
    Follower,
    /// Serving as observer.
    Observer,
    /// Answered, but is not serving (LOOKING, or syncing).
    NotServing,
    /// Did not answer.
    Unreachable,
}

impl Mode {
    /// Connected to a leader and synced (or leading).
    pub fn is_serving(self) -> bool {
        matches!(self, Self::Leader | Self::Follower | Self::Observer)
    }
}

/// Health of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// What it answered.
    pub mode: Mode,
    /// Last zxid it reported.
    pub zxid: Option<u64>,
    /// Since when (ms since the Unix epoch) it has been serving without interruption, as far as the
    /// runtime has watched it.
    pub serving_since_ms: Option<u64>,
}

impl Health {
    /// A server that did not answer.
    pub const UNREACHABLE: Health = Health { mode: Mode::Unreachable, zxid: None, serving_since_ms: None };
}

/// Everything one pass knows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Observed {
    /// The committed configuration, read after `sync` from a serving member; `None` when no member
    /// served it (no quorum, or nothing started yet).
    pub config: Option<EnsembleConfig>,
    /// Instances the backend reports; `None` when the backend could not be read. Nothing is removed
    /// on a failed read: a silent backend must never look like "everybody terminated".
    pub instances: Option<Vec<Instance>>,
    /// Probe result per server id, for every id in the config or claimed by an instance.
    pub health: BTreeMap<ServerId, Health>,
    /// Since when (ms since the Unix epoch) each server the runtime watches has not been serving,
    /// without interruption; absent while it serves.
    #[serde(default)]
    pub down_since: BTreeMap<ServerId, u64>,
    /// Instances the group wants, when the backend answered.
    #[serde(default)]
    pub desired: Option<usize>,
}

/// One server as the planner sees it: config entry, instance and health joined by id.
#[derive(Debug, Clone, PartialEq)]
pub struct Member<'a> {
    /// Server id.
    pub id: ServerId,
    /// Its entry in the committed config, if it is a member.
    pub spec: Option<&'a ServerSpec>,
    /// The instance holding this id's claim, if any.
    pub instance: Option<&'a Instance>,
    /// Probe result.
    pub health: Health,
    /// Configured, held by no instance, and nothing will bring it back: the group runs as many
    /// instances as it wants and every one of them holds another server (a slot whose holder died
    /// while the group scaled in).
    pub retired: bool,
}

impl Member<'_> {
    /// Configured as a voter.
    pub fn is_voter(&self) -> bool {
        self.spec.is_some_and(|s| s.role == Role::Participant)
    }

    /// Configured as an observer.
    pub fn is_observer(&self) -> bool {
        self.spec.is_some_and(|s| s.role == Role::Observer)
    }

    /// The backend confirmed that its instance is going or gone, or that nothing will bring it
    /// back ([`Self::retired`]). An id with no instance while the group may still bring one is
    /// *not* leaving: that is unknown, and unknown never justifies a removal.
    pub fn is_leaving(&self) -> bool {
        self.retired || self.instance.is_some_and(|i| i.state.is_leaving())
    }

    /// Its instance runs (not leaving).
    pub fn is_running(&self) -> bool {
        self.instance.is_some_and(|i| i.state == InstanceState::Running)
    }

    /// Serving and synced with the leader.
    pub fn is_serving(&self) -> bool {
        self.health.mode.is_serving()
    }

    /// Served continuously for at least `min_ms` by `now_ms`.
    pub fn stable_for(&self, min_ms: u64, now_ms: u64) -> bool {
        self.health.serving_since_ms.is_some_and(|since| now_ms.saturating_sub(since) >= min_ms)
    }
}

impl Observed {
    /// Every server id known from the config or from a claim, joined with its data.
    pub fn members(&self) -> Vec<Member<'_>> {
        let mut ids: BTreeSet<ServerId> = BTreeSet::new();
        if let Some(c) = &self.config {
            ids.extend(c.servers.keys().copied());
        }
        for i in self.instances.iter().flatten() {
            ids.extend(i.server_id);
        }
        let live: Vec<&Instance> = self
            .instances
            .iter()
            .flatten()
            .filter(|i| matches!(i.state, InstanceState::Pending | InstanceState::Running))
            .collect();
        // A live instance without a server may be about to take an orphan's slot.
        let none_coming = self.desired.is_some_and(|d| live.len() >= d) && live.iter().all(|i| i.server_id.is_some());
        ids.into_iter()
            .map(|id| {
                let spec = self.config.as_ref().and_then(|c| c.servers.get(&id));
                let instance = self.instances.iter().flatten().find(|i| i.server_id == Some(id));
                Member {
                    id,
                    spec,
                    instance,
                    health: self.health.get(&id).copied().unwrap_or(Health::UNREACHABLE),
                    retired: spec.is_some() && instance.is_none() && none_coming,
                }
            })
            .collect()
    }

    /// Id of the server that says it leads.
    pub fn leader(&self) -> Option<ServerId> {
        self.health.iter().find(|(_, h)| h.mode == Mode::Leader).map(|(id, _)| *id)
    }
}
