//! Quorum arithmetic and the rules no plan may break. Each rule is a small function so the planner,
//! [`check_plan`] and the property tests all use the same definition.

use std::collections::BTreeSet;

use crate::model::{InstanceState, Role, ServerId};
use crate::observed::{Mode, Observed};
use crate::plan::{Action, Plan};
use crate::policy::Policy;

/// Votes needed out of `voters`: a strict majority, `voters / 2 + 1`.
pub fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// Voters one change may take away: `(voters - 1) / 2`, the number whose loss a quorum survives
/// (1 of 3, 2 of 5). Taking more at once could leave the old or new config without a majority if
/// one more server hiccups during the change.
pub fn max_removable(voters: usize) -> usize {
    voters.saturating_sub(1) / 2
}

/// The voter count a change may produce. Odd counts are the goal (an even count adds load without
/// adding fault tolerance); a swap keeps the count; and `3 → 2` is allowed because the removal cap
/// (1 of 3) makes `3 → 1` impossible in one step, so a dead voter of three could otherwise never
/// leave until a replacement is synced.
pub fn voter_count_ok(before: usize, after: usize) -> bool {
    !after.is_multiple_of(2) || after == before || (after + 1 == before && max_removable(before) < 2)
}

/// Never shrink the voter set below the policy minimum (growing is always allowed).
pub fn respects_min_voters(before: usize, after: usize, min_voters: usize) -> bool {
    after >= min_voters.min(before) && after >= 1
}

/// Largest odd number `<= n` (0 for 0).
pub fn largest_odd_at_most(n: usize) -> usize {
    if n == 0 {
        0
    } else if !n.is_multiple_of(2) {
        n
    } else {
        n - 1
    }
}

/// Voters wanted among `members` servers: the (odd) target, but never more than the largest odd
/// number of members, and at least 1. Genesis, the planner and the status view all use it.
pub fn voters_wanted(members: usize, target_voters: usize) -> usize {
    largest_odd_at_most(members).min(target_voters).max(1)
}

/// Servers that can acknowledge the history prefix the leader sends with a reconfig: the leader
/// and its followers, *including* non-voting followers (joiners), but not observers
/// (ZooKeeper's `Leader.isQuorumSynced`, and the Dynamic Reconfiguration guide's
/// "Progress guarantees").
pub fn ack_capable(obs: &Observed) -> BTreeSet<ServerId> {
    obs.health.iter().filter(|(_, h)| matches!(h.mode, Mode::Leader | Mode::Follower)).map(|(id, _)| *id).collect()
}

/// The new voter set has a synced majority; otherwise ZooKeeper answers `NewConfigNoQuorum`, and
/// worse, an added-but-dead voter silently lowers fault tolerance.
pub fn has_synced_quorum(voters: &[ServerId], ack_capable: &BTreeSet<ServerId>) -> bool {
    !voters.is_empty() && voters.iter().filter(|v| ack_capable.contains(v)).count() >= majority(voters.len())
}

/// A rule a plan broke; produced by [`check_plan`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plan violates `{rule}`: {detail}")]
pub struct Violation {
    /// Name of the rule.
    pub rule: &'static str,
    /// What happened.
    pub detail: String,
}

fn violation(rule: &'static str, detail: impl Into<String>) -> Violation {
    Violation { rule, detail: detail.into() }
}

/// Checks a plan against every rule above. Used by property tests and by the runtime in debug
/// builds; a violation is a planner bug.
pub fn check_plan(obs: &Observed, policy: &Policy, plan: &Plan) -> Result<(), Violation> {
    let reconfigs = plan.actions.iter().filter(|a| matches!(a, Action::Reconfig(_))).count();
    if reconfigs > 1 {
        return Err(violation("one_change_per_pass", format!("{reconfigs} reconfigs")));
    }
    let members = obs.members();
    for action in &plan.actions {
        match action {
            Action::ReleaseId { id, .. } => {
                let m = members.iter().find(|m| m.id == *id);
                let ok = m.is_some_and(|m| {
                    m.spec.is_none() && m.instance.is_some_and(|i| i.state == crate::model::InstanceState::Terminated)
                });
                if !ok {
                    return Err(violation("release_only_gone_ids", format!("id {id}")));
                }
            }
            Action::LifecycleHeartbeat { instance, hook } => {
                let waiting = obs.instances.iter().flatten().any(|i| &i.id == instance && i.hook == Some(*hook));
                if !waiting {
                    return Err(violation("heartbeat_only_waiting_hooks", format!("{instance} {hook:?}")));
                }
            }
            Action::CompleteLifecycle { instance, hook } => {
                let inst = obs.instances.iter().flatten().find(|i| &i.id == instance);
                if inst.and_then(|i| i.hook) != Some(*hook) {
                    return Err(violation("complete_only_waiting_hooks", format!("{instance} {hook:?}")));
                }
                if *hook == crate::model::LifecycleHook::Terminating
                    && let Some(id) = inst.and_then(|i| i.server_id)
                    && obs.config.as_ref().is_none_or(|c| c.servers.contains_key(&id))
                {
                    return Err(violation("terminate_only_after_removal", format!("{instance} server {id}")));
                }
            }
            Action::ReportUnhealthy { instance, id, down_ms } => {
                let reports = plan.actions.iter().filter(|a| matches!(a, Action::ReportUnhealthy { .. })).count();
                let running =
                    obs.instances.iter().flatten().any(|i| &i.id == instance && i.state == InstanceState::Running);
                let long_enough = policy.unhealthy_after_ms > 0 && *down_ms >= policy.unhealthy_after_ms;
                if reports > 1
                    || !running
                    || !long_enough
                    || obs.leader().is_none()
                    || obs.health.get(id).is_some_and(|h| h.mode.is_serving())
                {
                    return Err(violation(
                        "replace_one_unhealthy_at_a_time_while_the_ensemble_serves",
                        format!("{instance} server {id}"),
                    ));
                }
            }
            Action::SetScaleInProtection { instance, protected } => {
                let m = members.iter().find(|m| m.instance.is_some_and(|i| &i.id == instance));
                if m.is_some_and(|m| m.is_voter() != *protected) {
                    return Err(violation("protect_voters_only", format!("{instance} -> {protected}")));
                }
            }
            Action::Reconfig(change) => {
                let config =
                    obs.config.as_ref().ok_or_else(|| violation("needs_config", "reconfig without a config"))?;
                if change.from_version != config.version {
                    return Err(violation("conditional_on_observed_version", change.to_string()));
                }
                if obs.leader().is_none() {
                    return Err(violation("needs_leader", change.to_string()));
                }
                let before: Vec<ServerId> = config.voters().collect();
                let after = change.voters_after(&before);
                if !voter_count_ok(before.len(), after.len()) {
                    return Err(violation("odd_voters", format!("{} -> {} voters", before.len(), after.len())));
                }
                if !respects_min_voters(before.len(), after.len(), policy.min_voters) {
                    return Err(violation("min_voters", format!("{} -> {}", before.len(), after.len())));
                }
                // Cap on voters taken out because their instance is gone, net of replacements.
                let removed_voters = change.leaving.iter().filter(|id| before.contains(id)).count();
                let added_voters = after.iter().filter(|v| !before.contains(v)).count();
                if removed_voters.saturating_sub(added_voters) > max_removable(before.len()) {
                    return Err(violation("removal_cap", format!("{removed_voters} voters out of {}", before.len())));
                }
                // Removal is only for members the backend confirmed gone or going, except a
                // serving observer taken out alone so it can be promoted (it keeps running as a
                // non-voting follower; no quorum depends on it).
                let recycle = change.joining.is_empty()
                    && change.leaving.len() == 1
                    && members.iter().any(|m| m.id == change.leaving[0] && m.is_observer() && m.is_serving());
                for id in &change.leaving {
                    let leaving = members.iter().any(|m| m.id == *id && m.is_leaving());
                    if !leaving && !recycle {
                        return Err(violation("remove_only_confirmed_leavers", format!("server {id}")));
                    }
                }
                // Promotion (observer/joiner -> participant) and demotion (participant -> observer)
                // of live voters never share a change: a promotion inflates the quorum while a
                // demotion shrinks it, and together they can swing the majority (raft-autopilot).
                let promotes = change
                    .joining
                    .iter()
                    .any(|j| j.role == Role::Participant && config.role_of(j.id) != Some(Role::Participant));
                let demotes = change
                    .joining
                    .iter()
                    .any(|j| j.role == Role::Observer && config.role_of(j.id) == Some(Role::Participant));
                if promotes && demotes {
                    return Err(violation("no_promote_and_demote", change.to_string()));
                }
                let acks = ack_capable(obs);
                if after != before && !has_synced_quorum(&after, &acks) {
                    return Err(violation("new_config_synced_quorum", format!("{after:?} with synced {acks:?}")));
                }
                for j in &change.joining {
                    let joiner_ok = members.iter().any(|m| m.id == j.id && m.is_running() && m.is_serving());
                    let demotion = config.role_of(j.id) == Some(Role::Participant) && j.role == Role::Observer;
                    if !joiner_ok && !demotion {
                        return Err(violation("add_only_synced_servers", format!("server {}", j.id)));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_arithmetic() {
        assert_eq!((majority(1), majority(3), majority(4), majority(5)), (1, 2, 3, 3));
        assert_eq!((max_removable(1), max_removable(3), max_removable(5), max_removable(7)), (0, 1, 2, 3));
        assert_eq!((voters_wanted(5, 3), voters_wanted(2, 3), voters_wanted(1, 5), voters_wanted(4, 7)), (3, 1, 1, 3));
    }

    #[test]
    fn voter_counts() {
        assert!(voter_count_ok(3, 5) && voter_count_ok(3, 3) && voter_count_ok(3, 2) && voter_count_ok(2, 3));
        assert!(!voter_count_ok(5, 4) && !voter_count_ok(3, 4) && !voter_count_ok(1, 2));
        assert!(respects_min_voters(3, 2, 1) && !respects_min_voters(3, 2, 3) && respects_min_voters(1, 3, 3));
    }
}
