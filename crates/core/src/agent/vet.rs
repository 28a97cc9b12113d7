//! The last word on a plan before it runs: [`crate::safety::check_plan_at`] on every pass, in
//! release builds too (it is cheap next to the ZooKeeper round trips of a pass).
//!
//! A violation means the planner is wrong, so nothing of that plan runs: the agent skips it,
//! says why in the plan's `skipped`, and the runtime logs, counts (`plans_refused`) and shows it.
//! A panic instead would only restart the agent into the same plan, and nothing would notice.

use crate::observed::Observed;
use crate::plan::Plan;
use crate::policy::Policy;
use crate::safety::{Violation, check_plan_at};

/// A plan after the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vetted {
    /// What may be executed: the plan as planned, or no action at all.
    pub plan: Plan,
    /// The rule the planned plan broke, when it was refused.
    pub refused: Option<Violation>,
}

/// Checks `plan`, made at `now_ms`, against every safety rule; a plan that breaks one keeps its
/// `skipped` (plus the refusal) but loses all its actions.
pub fn vet(obs: &Observed, policy: &Policy, plan: Plan, now_ms: u64) -> Vetted {
    match check_plan_at(obs, policy, &plan, now_ms) {
        Ok(()) => Vetted { plan, refused: None },
        Err(v) => {
            let mut refused = Plan { actions: Vec::new(), skipped: plan.skipped };
            let what: Vec<String> = plan.actions.iter().map(ToString::to_string).collect();
            refused.skip("plan", format!("refused, {v}: [{}] not executed", what.join("; ")));
            Vetted { plan: refused, refused: Some(v) }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{EnsembleConfig, Role, ServerId, ServerSpec};
    use crate::observed::{Health, Mode};
    use crate::plan::{Action, MembershipChange};

    fn spec(id: u32) -> ServerSpec {
        ServerSpec::loopback(id, id, Role::Participant)
    }

    fn three_serving() -> Observed {
        let servers = (1..=3).map(|i| (ServerId(i), spec(i))).collect();
        let health = (1..=3)
            .map(|i| {
                let mode = if i == 1 { Mode::Leader } else { Mode::Follower };
                (ServerId(i), Health { mode, zxid: Some(5), serving_since_ms: Some(0) })
            })
            .collect();
        Observed {
            config: Some(EnsembleConfig { servers, version: 7 }),
            instances: Some(Vec::new()),
            health,
            down_since: BTreeMap::new(),
            desired: None,
        }
    }

    #[test]
    fn a_safe_plan_passes_unchanged() {
        let obs = three_serving();
        let plan = Plan::default();
        assert_eq!(vet(&obs, &Policy::default(), plan.clone(), 1_000), Vetted { plan, refused: None });
    }

    #[test]
    fn an_unsafe_plan_loses_its_actions_and_says_why() {
        let obs = three_serving();
        // Two serving voters of three out at once, neither confirmed gone: the planner never
        // does this; if it did, nothing of it may run.
        let change = MembershipChange {
            leaving: vec![ServerId(2), ServerId(3)],
            joining: Vec::new(),
            from_version: 7,
            why: "planted".into(),
        };
        let mut plan = Plan { actions: vec![Action::Reconfig(change)], skipped: Vec::new() };
        plan.skip("server 4", "not synced");
        let v = vet(&obs, &Policy::default(), plan, 1_000);
        let refused = v.refused.expect("refused");
        assert!(v.plan.actions.is_empty());
        assert_eq!(v.plan.skipped[0].subject, "server 4", "the planner's own reasons stay");
        let why = &v.plan.skipped[1];
        assert_eq!(why.subject, "plan");
        assert!(why.reason.contains(refused.rule) && why.reason.contains("not executed"), "{}", why.reason);
    }
}
