//! A reconfig whose outcome is not known yet, and what it holds back until it is.
//!
//! A reconfig answered with ConnectionLoss may have committed, or may still commit: ZooKeeper's
//! leader can commit a proposal after the client lost the answer, and a new leader can commit
//! one its predecessor had sent (Zab, and the Dynamic Reconfiguration guide's "Reconfig error
//! codes"). Until it is settled the next passes plan from a config without it, and two actions
//! they may plan are unsafe if it then commits: completing the Terminating hook of an instance
//! whose server the change adds (it would become a voter on an instance already going), and
//! releasing such a server's id. Both are held back, with the reason in the plan's `skipped`.
//!
//! It is settled by the first committed config read after a write that committed: the change
//! shows in it (applied), or it does not (dead: a proposal not committed before a later committed
//! write never commits, since Zab commits in order and a new leader's history either contains a
//! proposal before its new writes or truncates it). A config whose version moved on without the
//! change also settles it: ZooKeeper refuses its `-v` from then on.

use serde::{Deserialize, Serialize};

use crate::model::{EnsembleConfig, LifecycleHook, ServerId};
use crate::observed::Observed;
use crate::plan::{Action, MembershipChange, Plan};

/// What a config read says about an unsettled change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The change is in the committed config.
    Applied,
    /// It never will be.
    Dead,
    /// Cannot tell yet.
    Open,
}

/// A reconfig that may still commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// The change as sent.
    pub change: MembershipChange,
}

impl InFlight {
    /// What `config` says, read after a write that committed (`after_write`) or not.
    pub fn settled_by(&self, config: &EnsembleConfig, after_write: bool) -> Settled {
        if self.change.is_reflected_in(config) {
            Settled::Applied
        } else if config.version != self.change.from_version || after_write {
            Settled::Dead
        } else {
            Settled::Open
        }
    }

    /// Servers the change would add (or re-add in a new role).
    fn joining(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.change.joining.iter().map(|j| j.id)
    }

    /// `plan` without the actions a late commit of the change would make unsafe.
    pub fn hold(&self, obs: &Observed, plan: Plan) -> Plan {
        let server_of = |instance: &crate::model::InstanceId| {
            obs.instances.iter().flatten().find(|i| &i.id == instance).and_then(|i| i.server_id)
        };
        let named = |id: Option<ServerId>| id.is_some_and(|id| self.joining().any(|j| j == id));
        let mut out = Plan { actions: Vec::new(), skipped: plan.skipped };
        for action in plan.actions {
            let held = match &action {
                Action::CompleteLifecycle { instance, hook: LifecycleHook::Terminating } => named(server_of(instance)),
                Action::ReleaseId { id, .. } => named(Some(*id)),
                _ => false,
            };
            if held {
                out.skip(
                    action.to_string(),
                    format!("held: the unsettled reconfig ({}) may still commit and add this server", self.change),
                );
            } else {
                out.actions.push(action);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{Instance, InstanceId, InstanceState, Role, ServerSpec};

    fn spec(id: u32, role: Role) -> ServerSpec {
        ServerSpec::loopback(id, id, role)
    }

    fn config(ids: &[u32], version: u64) -> EnsembleConfig {
        EnsembleConfig { servers: ids.iter().map(|i| (ServerId(*i), spec(*i, Role::Participant))).collect(), version }
    }

    /// `-add 4 -remove 3` against version 7.
    fn swap() -> InFlight {
        InFlight {
            change: MembershipChange {
                joining: vec![spec(4, Role::Participant)],
                leaving: vec![ServerId(3)],
                from_version: 7,
                why: "swap".into(),
            },
        }
    }

    #[test]
    fn a_read_settles_it_only_once_it_can_tell() {
        let f = swap();
        assert_eq!(f.settled_by(&config(&[1, 2, 4], 9), false), Settled::Applied);
        assert_eq!(f.settled_by(&config(&[1, 2, 3], 7), false), Settled::Open, "maybe still to commit");
        assert_eq!(f.settled_by(&config(&[1, 2, 3], 7), true), Settled::Dead, "a later write committed first");
        assert_eq!(f.settled_by(&config(&[1, 2, 3, 5], 8), false), Settled::Dead, "the version moved on");
    }

    #[test]
    fn only_the_hooks_and_ids_of_servers_it_adds_are_held() {
        let instance = |id: &str, server: u32, state| Instance {
            id: InstanceId(id.into()),
            address: format!("127.0.0.{server}"),
            zone: "a".into(),
            state,
            server_id: Some(ServerId(server)),
            protected: None,
            hook: Some(LifecycleHook::Terminating),
        };
        let obs = Observed {
            config: Some(config(&[1, 2, 3], 7)),
            instances: Some(vec![
                instance("i-4", 4, InstanceState::Terminating),
                instance("i-3", 3, InstanceState::Terminating),
            ]),
            health: BTreeMap::new(),
            down_since: BTreeMap::new(),
            desired: None,
        };
        let complete =
            |i: &str| Action::CompleteLifecycle { instance: InstanceId(i.into()), hook: LifecycleHook::Terminating };
        let plan = Plan {
            actions: vec![
                complete("i-4"),
                complete("i-3"),
                Action::ReleaseId { id: ServerId(4), instance: InstanceId("i-4".into()) },
            ],
            skipped: Vec::new(),
        };
        let held = swap().hold(&obs, plan);
        assert_eq!(held.actions, vec![complete("i-3")], "the leaver's hook is safe either way");
        assert_eq!(held.skipped.len(), 2);
        assert!(held.skipped.iter().all(|s| s.reason.starts_with("held: the unsettled reconfig")), "{held:?}");
    }
}
