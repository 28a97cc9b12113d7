//! The planner's output: actions to execute, and candidates it skipped, with reasons.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{InstanceId, Role, ServerId, ServerSpec};

/// One incremental `reconfig` (`-add` joinings, `-remove` leavings), conditional on the config
/// version it was planned from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipChange {
    /// Servers to add, or to re-add with another role (same id means replace, §1.5).
    pub joining: Vec<ServerSpec>,
    /// Servers to remove.
    pub leaving: Vec<ServerId>,
    /// The committed version this change was planned against (`reconfig -v`).
    pub from_version: u64,
    /// Why, in words, for status and the audit log.
    pub why: String,
}

impl MembershipChange {
    /// Voters after the change, given the voters before it.
    pub fn voters_after(&self, voters_before: &[ServerId]) -> Vec<ServerId> {
        let mut v: Vec<ServerId> = voters_before
            .iter()
            .copied()
            .filter(|id| !self.leaving.contains(id) && !self.joining.iter().any(|j| j.id == *id))
            .collect();
        v.extend(self.joining.iter().filter(|j| j.role == Role::Participant).map(|j| j.id));
        v.sort();
        v
    }
}

impl fmt::Display for MembershipChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reconfig")?;
        if !self.joining.is_empty() {
            let add: Vec<String> = self.joining.iter().map(|s| format!("{}:{}", s.id, s.role)).collect();
            write!(f, " -add {}", add.join(","))?;
        }
        if !self.leaving.is_empty() {
            let rm: Vec<String> = self.leaving.iter().map(|s| s.to_string()).collect();
            write!(f, " -remove {}", rm.join(","))?;
        }
        write!(f, " -v {:x} ({})", self.from_version, self.why)
    }
}

/// A closed set of things the runtime may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Change membership with one conditional reconfig, then confirm it with a write.
    Reconfig(MembershipChange),
    /// Give an id back to the pool: its server is out of the config and its instance is gone, so
    /// no server holding data under this id can come back.
    ReleaseId {
        /// The id.
        id: ServerId,
        /// The terminated instance that held it.
        instance: InstanceId,
    },
    /// Lets a launch or termination proceed: the launched server is a synced member, or the
    /// terminating one is out of the config.
    CompleteLifecycle {
        /// The instance.
        instance: InstanceId,
        /// The hook it waits in.
        hook: crate::model::LifecycleHook,
    },
    /// Extends a lifecycle hook's timeout while its condition does not hold yet.
    LifecycleHeartbeat {
        /// The instance.
        instance: InstanceId,
        /// The hook it waits in.
        hook: crate::model::LifecycleHook,
    },
    /// Voters are protected from scale-in so the group never picks two of them at once and
    /// breaks the quorum; non-voters are released so they go first.
    SetScaleInProtection {
        /// The instance.
        instance: InstanceId,
        /// Protect or release.
        protected: bool,
    },
    /// The instance's server has not served for longer than the policy allows: the backend
    /// replaces the instance (SetInstanceHealth on AWS; the local group terminates it).
    ReportUnhealthy {
        /// The instance.
        instance: InstanceId,
        /// Its server.
        id: ServerId,
        /// How long its server has not served, ms.
        down_ms: u64,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Reconfig(c) => c.fmt(f),
            Action::ReleaseId { id, instance } => write!(f, "release id {id} (instance {instance} terminated)"),
            Action::ReportUnhealthy { instance, id, down_ms } => {
                write!(f, "replace instance {instance}: server {id} not serving for {} s", down_ms / 1000)
            }
            Action::SetScaleInProtection { instance, protected: true } => {
                write!(f, "protect voter instance {instance} from scale-in")
            }
            Action::CompleteLifecycle { instance, hook } => {
                write!(f, "complete {hook:?} lifecycle action of {instance}")
            }
            Action::LifecycleHeartbeat { instance, hook } => {
                write!(f, "heartbeat {hook:?} lifecycle action of {instance}")
            }
            Action::SetScaleInProtection { instance, protected: false } => {
                write!(f, "release non-voter instance {instance} for scale-in")
            }
        }
    }
}

/// Something the planner considered and did not do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skip {
    /// What was considered ("server 4", "ensemble").
    pub subject: String,
    /// Why nothing happened.
    pub reason: String,
}

/// Output of one planner call.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Plan {
    /// At most one [`Action::Reconfig`], plus id releases.
    pub actions: Vec<Action>,
    /// Candidates not acted on, and why.
    pub skipped: Vec<Skip>,
}

impl Plan {
    /// Records a skipped candidate.
    pub fn skip(&mut self, subject: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(Skip { subject: subject.into(), reason: reason.into() });
    }

    /// The membership change, if any.
    pub fn reconfig(&self) -> Option<&MembershipChange> {
        self.actions.iter().find_map(|a| match a {
            Action::Reconfig(c) => Some(c),
            Action::ReleaseId { .. }
            | Action::SetScaleInProtection { .. }
            | Action::CompleteLifecycle { .. }
            | Action::LifecycleHeartbeat { .. }
            | Action::ReportUnhealthy { .. } => None,
        })
    }
}
