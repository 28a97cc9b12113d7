//! The agent's own decisions, pure: what the runtime's executor (`zkpilot_runtime::agent`) asks
//! before it acts, each a plain function of what a pass observed and what the agent remembers.
//!
//! One pass of a running agent, and where each decision lives:
//!
//! | step | decided by |
//! |---|---|
//! | may the crashed server start again? | [`throttle::Restarts`] |
//! | what to start with (local state, join, genesis, refuse) | [`crate::boot`] |
//! | fence for quorum-loss recovery? | [`fence::QuorumClock`], [`fence::FenceCheck`] |
//! | the membership change | [`crate::plan`](crate::planner::plan) |
//! | may it run? (every rule re-checked, in release builds too) | [`vet::vet`] |
//! | what a reconfig whose answer was lost holds back until it is settled | [`inflight::InFlight`] |
//! | execute it, or say why not (operator pause) | [`gate`] |
//! | heartbeat / report again? periodic backup due? metrics? | [`throttle`] |
//! | what came of it, what it counts | [`outcome::Outcome`], [`outcome::Counters`] |
//! | phase, and the exit once removed | [`phase::verdict`] |
//! | how long until the next pass | [`throttle::Pace`] |
//!
//! The executor does the I/O in between (ports: backend, ZooKeeper, process, clock) and nothing
//! else: no rule is decided there.

pub mod fence;
pub mod inflight;
pub mod outcome;
pub mod phase;
pub mod throttle;
pub mod vet;

pub use fence::{FenceCheck, QuorumClock};
pub use inflight::{InFlight, Settled};
pub use outcome::{Counters, Outcome};
pub use phase::{Listed, Phase, Seen, Verdict};
pub use throttle::{Backoff, BackupDue, Cached, Every, Pace, PerKey, PeriodicBackup, Restarts};
pub use vet::{Vetted, vet};

use crate::plan::Plan;
use crate::policy::Policy;
use crate::ports::OperatorSettings;

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassEnd {
    /// Keep going: the next pass follows after the pace's wait.
    Continue,
    /// This instance's server was removed from the ensemble on scale-in and is stopped; the
    /// instance may terminate.
    Removed,
}

/// What to do with a plan this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Nothing to execute.
    Idle,
    /// The operator paused automation: the plan is published with that reason, not executed.
    Paused,
    /// Execute, if this agent takes the lease.
    Lease,
}

/// Whether `plan` is executed this pass. A paused plan gets the reason as a skip, so status says
/// why nothing happens.
pub fn gate(plan: &mut Plan, paused: bool) -> Gate {
    if plan.actions.is_empty() {
        Gate::Idle
    } else if paused {
        plan.skip("automation", "paused by the operator (POST /resume on this agent's API)");
        Gate::Paused
    } else {
        Gate::Lease
    }
}

/// The policy in force: the configured one, with the operator's voter target when one is set.
pub fn policy_in_force(configured: &Policy, operator: &OperatorSettings) -> Policy {
    let mut p = configured.clone();
    if let Some(t) = operator.target_voters {
        p.target_voters = t;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::InstanceId;
    use crate::plan::Action;

    fn plan_with_action() -> Plan {
        let mut p = Plan::default();
        p.actions.push(Action::ReleaseId { id: crate::model::ServerId(4), instance: InstanceId("i-4".into()) });
        p
    }

    #[test]
    fn an_empty_plan_needs_no_lease() {
        let mut p = Plan::default();
        assert_eq!(gate(&mut p, true), Gate::Idle);
        assert!(p.skipped.is_empty(), "nothing to pause, nothing said");
    }

    #[test]
    fn a_paused_plan_is_published_with_the_reason() {
        let mut p = plan_with_action();
        assert_eq!(gate(&mut p, true), Gate::Paused);
        assert!(p.skipped.iter().any(|s| s.reason.contains("paused by the operator")), "{p:?}");
        let mut p = plan_with_action();
        assert_eq!(gate(&mut p, false), Gate::Lease);
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn the_operators_voter_target_wins() {
        let configured = Policy::default();
        let mut op = OperatorSettings::default();
        assert_eq!(policy_in_force(&configured, &op), configured);
        op.target_voters = Some(configured.target_voters + 2);
        assert_eq!(policy_in_force(&configured, &op).target_voters, configured.target_voters + 2);
    }
}
