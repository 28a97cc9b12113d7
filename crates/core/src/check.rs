//! The second opinion on every plan: [`check_plan`] re-derives each rule a plan must keep.
//!
//! It is deliberately independent of the planner. A check that called the planner's own helpers
//! (`safety::majority`, `max_removable`, `voter_count_ok`, `has_synced_quorum`, or anything in the
//! planner) would share their mistakes: a wrong cap would make the planner and its check agree on
//! the same unsafe plan, and the property tests would pass. So nothing here calls into
//! `planner.rs` or the quorum helpers of `safety.rs`, nor reuses the planner's join of the
//! observation (`Observed::members`) or `MembershipChange::voters_after`: every rule is written
//! again, directly from ZooKeeper's facts, and the property tests run the two against each other.
//!
//! The facts, with where ZooKeeper states them:
//! - a quorum is a strict majority of the voters, `2 * k > n` (Administrator's Guide, "Clustered
//!   (Multi-Server) Setup"; `QuorumMaj.containsQuorum`);
//! - a reconfig commits only once a quorum of the *new* voters has acknowledged it, and only the
//!   leader and its followers can acknowledge; observers cannot (Dynamic Reconfiguration guide,
//!   "Progress guarantees"; `Leader.isQuorumSynced`, ZOOKEEPER-107);
//! - `reconfig -v` applies only if the committed config still has that version, so a plan must be
//!   conditional on the version it was made from (Dynamic Reconfiguration guide, "Conditional
//!   reconfig");
//! - a server that joins must already be connected to the leader as a (non-voting) follower, or
//!   it cannot ack and lowers fault tolerance while it catches up (Dynamic Reconfiguration
//!   guide, "Progress guarantees").
//!
//! The remaining rules are zkpilot's own policy and say so where they are checked.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{EnsembleConfig, Instance, InstanceState, LifecycleHook, Role, ServerId};
use crate::observed::{Mode, Observed};
use crate::plan::{Action, MembershipChange, Plan};
use crate::policy::Policy;

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

fn fail_if(broken: bool, rule: &'static str, detail: impl FnOnce() -> String) -> Result<(), Violation> {
    if broken { Err(violation(rule, detail())) } else { Ok(()) }
}

/// Checks a plan against every rule. Used by the property tests and, through
/// [`crate::agent::vet`], by the agent on every pass; a violation is a planner bug. Rules that need the time (the stabilization of a
/// promoted server, the age of an outage) are checked by [`check_plan_at`] only.
pub fn check_plan(obs: &Observed, policy: &Policy, plan: &Plan) -> Result<(), Violation> {
    check(obs, policy, plan, None)
}

/// [`check_plan`], plus the rules that depend on `now_ms`, the time the plan was made at.
pub fn check_plan_at(obs: &Observed, policy: &Policy, plan: &Plan, now_ms: u64) -> Result<(), Violation> {
    check(obs, policy, plan, Some(now_ms))
}

/// The observation as the check reads it, joined by id without the planner's help.
struct View<'a> {
    obs: &'a Observed,
    instances: &'a [Instance],
}

impl<'a> View<'a> {
    fn instance(&self, id: &crate::model::InstanceId) -> Option<&'a Instance> {
        self.instances.iter().find(|i| &i.id == id)
    }

    /// The instance holding server `id`'s claim (the first, as the runtime attributes it).
    fn holder(&self, id: ServerId) -> Option<&'a Instance> {
        self.instances.iter().find(|i| i.server_id == Some(id))
    }

    fn mode(&self, id: ServerId) -> Mode {
        self.obs.health.get(&id).map_or(Mode::Unreachable, |h| h.mode)
    }

    /// Can acknowledge a reconfig's history prefix: the leader and its followers (including a
    /// non-voting follower), never an observer (`Leader.isQuorumSynced`).
    fn acks(&self, id: ServerId) -> bool {
        matches!(self.mode(id), Mode::Leader | Mode::Follower)
    }

    fn has_leader(&self) -> bool {
        self.obs.health.values().any(|h| h.mode == Mode::Leader)
    }

    fn running(&self, id: ServerId) -> bool {
        self.holder(id).is_some_and(|i| i.state == InstanceState::Running)
    }

    /// The backend confirmed the member going or gone: its instance terminates or has, or nobody
    /// can bring it back (the group runs every instance it wants and each one already holds
    /// another id). An id merely held by nobody is unknown, and unknown never justifies a removal.
    fn confirmed_leaving(&self, config: &EnsembleConfig, id: ServerId) -> bool {
        match self.holder(id) {
            Some(i) => matches!(i.state, InstanceState::Terminating | InstanceState::Terminated),
            None => {
                let live: Vec<&Instance> = self
                    .instances
                    .iter()
                    .filter(|i| matches!(i.state, InstanceState::Pending | InstanceState::Running))
                    .collect();
                config.servers.contains_key(&id)
                    && self.obs.desired.is_some_and(|d| live.len() >= d)
                    && live.iter().all(|i| i.server_id.is_some())
            }
        }
    }

    /// Has served without interruption for `min_ms` by `now_ms`.
    fn served_for(&self, id: ServerId, min_ms: u64, now_ms: u64) -> bool {
        self.obs
            .health
            .get(&id)
            .and_then(|h| h.serving_since_ms)
            .is_some_and(|since| since <= now_ms && now_ms - since >= min_ms)
    }
}

fn check(obs: &Observed, policy: &Policy, plan: &Plan, now: Option<u64>) -> Result<(), Violation> {
    let count = |f: fn(&Action) -> bool| plan.actions.iter().filter(|a| f(a)).count();
    let reconfigs = count(|a| matches!(a, Action::Reconfig(_)));
    fail_if(reconfigs > 1, "one_change_per_pass", || format!("{reconfigs} reconfigs"))?;
    let reports = count(|a| matches!(a, Action::ReportUnhealthy { .. }));
    fail_if(reports > 1, "replace_one_unhealthy_at_a_time", || format!("{reports} reports"))?;
    if plan.actions.is_empty() {
        return Ok(());
    }
    // Every action acts on what the backend reported; a failed read must never look like
    // "everybody terminated".
    let instances =
        obs.instances.as_deref().ok_or_else(|| violation("needs_instances", "an action without a backend read"))?;
    let view = View { obs, instances };
    for action in &plan.actions {
        match action {
            Action::Reconfig(change) => check_reconfig(&view, policy, change, now)?,
            Action::ReleaseId { id, instance } => {
                // Only a read config may say "not a member": not knowing it is not absence.
                let out_of_config = obs.config.as_ref().is_some_and(|c| !c.servers.contains_key(id));
                let gone = view
                    .instance(instance)
                    .is_some_and(|i| i.server_id == Some(*id) && i.state == InstanceState::Terminated);
                fail_if(!(out_of_config && gone), "release_only_gone_ids", || format!("id {id} of {instance}"))?;
            }
            Action::LifecycleHeartbeat { instance, hook } => {
                let waiting = view.instance(instance).is_some_and(|i| i.hook == Some(*hook));
                fail_if(!waiting, "heartbeat_only_waiting_hooks", || format!("{instance} {hook:?}"))?;
            }
            Action::CompleteLifecycle { instance, hook } => {
                let inst = view.instance(instance);
                let waiting = inst.is_some_and(|i| i.hook == Some(*hook));
                fail_if(!waiting, "complete_only_waiting_hooks", || format!("{instance} {hook:?}"))?;
                let config = obs.config.as_ref();
                let sid = inst.and_then(|i| i.server_id);
                match hook {
                    LifecycleHook::Terminating => {
                        let out = config.is_some_and(|c| sid.is_none_or(|id| !c.servers.contains_key(&id)));
                        fail_if(!out, "terminate_only_after_removal", || format!("{instance} server {sid:?}"))?;
                    }
                    LifecycleHook::Launching => {
                        // A launch is done once its server is a member serving in its role.
                        let role = sid.and_then(|id| config.and_then(|c| c.servers.get(&id)).map(|s| (id, s.role)));
                        let synced = role.is_some_and(|(id, role)| match role {
                            Role::Participant => view.acks(id),
                            Role::Observer => view.mode(id) == Mode::Observer,
                        });
                        fail_if(!synced, "launch_only_once_synced", || format!("{instance} server {sid:?}"))?;
                    }
                }
            }
            Action::ReportUnhealthy { instance, id, down_ms } => {
                let held = view.instance(instance).is_some_and(|i| {
                    i.server_id == Some(*id) && i.state == InstanceState::Running && view.holder(*id) == Some(i)
                });
                let down = !matches!(view.mode(*id), Mode::Leader | Mode::Follower | Mode::Observer);
                let since = obs.down_since.get(id).copied();
                let long_enough = policy.unhealthy_after_ms > 0
                    && *down_ms >= policy.unhealthy_after_ms
                    && since.is_some()
                    && now.is_none_or(|now| since.is_some_and(|s| now.saturating_sub(s) == *down_ms));
                // With no leader the watcher itself may be what is cut off.
                fail_if(
                    !(held && down && long_enough && view.has_leader()),
                    "replace_only_the_long_unserving_while_the_ensemble_serves",
                    || format!("{instance} server {id} down {down_ms} ms"),
                )?;
            }
            Action::SetScaleInProtection { instance, protected } => {
                // zkpilot's rule: voters protected so the group never takes two at once.
                let inst = view.instance(instance);
                let voter = inst.and_then(|i| i.server_id).is_some_and(|id| {
                    obs.config.as_ref().and_then(|c| c.servers.get(&id)).is_some_and(|s| s.role == Role::Participant)
                });
                let ok = inst.is_some_and(|i| i.state == InstanceState::Running) && voter == *protected;
                fail_if(!ok, "protect_voters_only", || format!("{instance} -> {protected}"))?;
            }
        }
    }
    Ok(())
}

fn check_reconfig(view: &View, policy: &Policy, change: &MembershipChange, now: Option<u64>) -> Result<(), Violation> {
    let shown = || change.to_string();
    let config = view.obs.config.as_ref().ok_or_else(|| violation("needs_config", "reconfig without a config"))?;
    fail_if(change.from_version != config.version, "conditional_on_observed_version", || {
        format!("-v {:x}, observed {:x}: {}", change.from_version, config.version, shown())
    })?;
    fail_if(!view.has_leader(), "needs_leader", shown)?;

    // Shape: something changes, each id once, removals of members, re-adds that change a role.
    let joining: BTreeMap<ServerId, Role> = change.joining.iter().map(|s| (s.id, s.role)).collect();
    let leaving: BTreeSet<ServerId> = change.leaving.iter().copied().collect();
    let malformed = (joining.is_empty() && leaving.is_empty())
        || joining.len() != change.joining.len()
        || leaving.len() != change.leaving.len()
        || joining.keys().any(|id| leaving.contains(id))
        || leaving.iter().any(|id| !config.servers.contains_key(id))
        || joining.iter().any(|(id, role)| config.servers.get(id).is_some_and(|s| s.role == *role));
    fail_if(malformed, "well_formed_change", shown)?;

    let role_before: BTreeMap<ServerId, Role> = config.servers.iter().map(|(id, s)| (*id, s.role)).collect();
    let mut role_after = role_before.clone();
    for id in &leaving {
        role_after.remove(id);
    }
    role_after.extend(joining.iter().map(|(id, role)| (*id, *role)));
    let voters = |roles: &BTreeMap<ServerId, Role>| -> BTreeSet<ServerId> {
        roles.iter().filter(|(_, r)| **r == Role::Participant).map(|(id, _)| *id).collect()
    };
    let before = voters(&role_before);
    let after = voters(&role_after);
    let (n, m) = (before.len(), after.len());
    let taken_out = before.difference(&after).count();
    let brought_in = after.difference(&before).count();

    fail_if(m == 0, "voters_remain", shown)?;
    // zkpilot's parity rule: an even count adds load without adding fault tolerance, so a change
    // lands on an odd count. The one exception: three voters to two by taking exactly one out and
    // bringing none in. One change may take out only one voter of three (the cap below), so a
    // voter of three that leaves before its replacement is synced, or the first step of lowering
    // the target to one, must pass through two.
    // A change that leaves the voters as they are (an observer comes or goes) is not held to it.
    let three_to_two = n == 3 && m == 2 && taken_out == 1 && brought_in == 0;
    fail_if(after != before && m % 2 == 0 && !three_to_two, "odd_voters", || {
        format!("{n} -> {m} voters: {}", shown())
    })?;
    // The policy floor: a shrinking change never lands below min_voters.
    fail_if(m < n && m < policy.min_voters, "min_voters", || {
        format!("{n} -> {m} voters, min_voters {}", policy.min_voters)
    })?;
    // Removal cap, demotions included: the old voters kept must stay a strict majority of the old
    // set, `2 * (n - net) > n`, i.e. at most `(n - 1) / 2` out net, so that one more failure during
    // the change cannot leave the old config without a quorum. Two voters, the waypoint of the
    // three-to-two exception, may lose one: their cap `(2 - 1) / 2` is zero and would strand them
    // at an even count (ZooKeeper itself still needs both to ack, as the old quorum).
    let net_out = taken_out.saturating_sub(brought_in);
    let waypoint = n == 2 && net_out == 1;
    fail_if(net_out > 0 && 2 * (n - net_out.min(n)) <= n && !waypoint, "removal_cap", || {
        format!("{net_out} of {n} voters out net: {}", shown())
    })?;
    // Promotion and demotion of live voters never share a change: one inflates the quorum while
    // the other shrinks it, and together they can swing the majority (raft-autopilot's rule).
    let promotes =
        joining.iter().any(|(id, r)| *r == Role::Participant && role_before.get(id) != Some(&Role::Participant));
    let demotes = joining.iter().any(|(id, r)| *r == Role::Observer && role_before.get(id) == Some(&Role::Participant));
    fail_if(promotes && demotes, "no_promote_and_demote", shown)?;
    // The new voter set must be able to commit the change: a strict majority of it acks.
    if after != before {
        let acking = after.iter().filter(|id| view.acks(**id)).count();
        fail_if(2 * acking <= m, "new_config_synced_quorum", || {
            format!("{acking} of new voters {after:?} can ack: {}", shown())
        })?;
    }
    // Removal only for members the backend confirmed leaving, except a serving observer taken out
    // alone so it rejoins as a non-voting follower that can ack its own promotion (the Dynamic
    // Reconfiguration guide's way to promote an observer); no quorum depends on it.
    let recycle = joining.is_empty()
        && leaving.len() == 1
        && leaving.iter().all(|id| {
            role_before.get(id) == Some(&Role::Observer) && view.mode(*id) == Mode::Observer && view.running(*id)
        });
    for id in &leaving {
        let ok = view.confirmed_leaving(config, *id) || recycle;
        fail_if(!ok, "remove_only_confirmed_leavers", || format!("server {id}: {}", shown()))?;
    }
    if recycle && let (Some(now), Some(id)) = (now, leaving.first()) {
        let stable = view.served_for(*id, policy.stabilization_ms, now);
        fail_if(!stable, "promote_only_stable_servers", || format!("server {id} recycled before it was stable"))?;
    }
    // Every server that joins, or becomes a voter, is running and synced in its current role: a
    // joiner as non-voting follower, an observer as observer. A demotion needs nothing of the
    // demoted server (taking a dead voter's vote away is the point).
    for (id, role) in &joining {
        let was = role_before.get(id).copied();
        if was == Some(Role::Participant) && *role == Role::Observer {
            continue;
        }
        let synced_as = if was == Some(Role::Observer) { Mode::Observer } else { Mode::Follower };
        let ok = view.running(*id) && view.mode(*id) == synced_as && !view.confirmed_leaving(config, *id);
        fail_if(!ok, "add_only_synced_servers", || format!("server {id} ({:?}): {}", view.mode(*id), shown()))?;
        if *role == Role::Participant
            && let Some(now) = now
        {
            let stable = view.served_for(*id, policy.stabilization_ms, now);
            fail_if(!stable, "promote_only_stable_servers", || {
                format!("server {id} not serving for {} ms: {}", policy.stabilization_ms, shown())
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceId, ServerSpec};
    use crate::observed::Health;

    fn spec(id: u32, role: Role) -> ServerSpec {
        ServerSpec {
            id: ServerId(id),
            host: format!("h{id}"),
            quorum_port: 2888,
            election_port: 3888,
            role,
            client_host: format!("h{id}"),
            client_port: 2181,
        }
    }

    /// `voters` participants and `observers` observers, all running and serving, 1 leading;
    /// `dead` are unreachable on terminated instances.
    fn obs(voters: &[u32], observers: &[u32], dead: &[u32]) -> Observed {
        let mut config = EnsembleConfig { version: 7, ..EnsembleConfig::default() };
        let mut instances = Vec::new();
        let mut health = BTreeMap::new();
        for (&id, role) in
            voters.iter().map(|v| (v, Role::Participant)).chain(observers.iter().map(|o| (o, Role::Observer)))
        {
            config.servers.insert(ServerId(id), spec(id, role));
            let gone = dead.contains(&id);
            instances.push(Instance {
                id: InstanceId(format!("i-{id}")),
                address: format!("h{id}"),
                zone: "a".into(),
                state: if gone { InstanceState::Terminated } else { InstanceState::Running },
                server_id: Some(ServerId(id)),
                protected: None,
                hook: None,
            });
            let mode = match (gone, role, id) {
                (true, _, _) => Mode::Unreachable,
                (false, Role::Participant, 1) => Mode::Leader,
                (false, Role::Participant, _) => Mode::Follower,
                (false, Role::Observer, _) => Mode::Observer,
            };
            health.insert(ServerId(id), Health { mode, zxid: Some(1), serving_since_ms: Some(0) });
        }
        Observed { config: Some(config), instances: Some(instances), health, ..Observed::default() }
    }

    fn reconfig(joining: Vec<ServerSpec>, leaving: &[u32]) -> Plan {
        let change = MembershipChange {
            joining,
            leaving: leaving.iter().map(|i| ServerId(*i)).collect(),
            from_version: 7,
            why: "test".into(),
        };
        Plan { actions: vec![Action::Reconfig(change)], skipped: vec![] }
    }

    fn rule(o: &Observed, p: &Plan) -> Option<&'static str> {
        check_plan(o, &Policy::default(), p).err().map(|v| v.rule)
    }

    #[test]
    fn even_counts_only_for_three_to_two() {
        assert_eq!(rule(&obs(&[1, 2, 3], &[], &[3]), &reconfig(vec![], &[3])), None, "3 -> 2: a dead voter leaves");
        assert_eq!(rule(&obs(&[1, 2, 3, 4, 5], &[], &[5]), &reconfig(vec![], &[5])), Some("odd_voters"), "5 -> 4");
        assert_eq!(
            rule(&obs(&[1], &[2], &[]), &reconfig(vec![spec(2, Role::Participant)], &[])),
            Some("odd_voters"),
            "1 -> 2"
        );
        assert_eq!(
            rule(&obs(&[1, 2, 3], &[4], &[]), &reconfig(vec![spec(4, Role::Participant)], &[])),
            Some("odd_voters"),
            "3 -> 4"
        );
        assert_eq!(
            rule(&obs(&[1, 2, 3, 4, 5, 6, 7], &[], &[7]), &reconfig(vec![], &[7])),
            Some("odd_voters"),
            "7 -> 6"
        );
        assert_eq!(
            rule(&obs(&[1, 2, 3, 4], &[5], &[4]), &reconfig(vec![spec(5, Role::Participant)], &[4])),
            Some("odd_voters"),
            "4 -> 4: a swap does not make an even count right"
        );
    }

    #[test]
    fn demotions_count_toward_the_removal_cap() {
        let o = obs(&[1, 2, 3, 4, 5, 6, 7], &[], &[]);
        let demote = |ids: &[u32]| reconfig(ids.iter().map(|i| spec(*i, Role::Observer)).collect(), &[]);
        assert_eq!(rule(&o, &demote(&[5, 6, 7])), Some("odd_voters"), "7 -> 4");
        assert_eq!(rule(&o, &demote(&[4, 5, 6, 7])), Some("removal_cap"), "4 of 7 out");
        assert_eq!(rule(&o, &demote(&[6, 7])), None, "2 of 7");
        let five = obs(&[1, 2, 3, 4, 5], &[], &[]);
        assert_eq!(rule(&five, &demote(&[4, 5])), None, "2 of 5 is (5-1)/2: within the cap");
    }

    #[test]
    fn new_voters_need_an_acking_majority_and_observers_do_not_ack() {
        // 1 voter + 2 observers promoted: 3 voters of which only the leader acks.
        let o = obs(&[1], &[2, 3], &[]);
        let p = reconfig(vec![spec(2, Role::Participant), spec(3, Role::Participant)], &[]);
        assert_eq!(rule(&o, &p), Some("new_config_synced_quorum"));
        let mut stale = reconfig(vec![], &[3]);
        if let Action::Reconfig(c) = &mut stale.actions[0] {
            c.from_version = 6;
        }
        assert_eq!(rule(&obs(&[1, 2, 3], &[], &[3]), &stale), Some("conditional_on_observed_version"));
    }
}
