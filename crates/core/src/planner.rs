//! `plan(&Observed, &Policy, now) -> Plan`: the one place membership decisions are made.
//!
//! Rules run in priority order and the first one that produces a change wins, so a pass makes at
//! most one membership change; every rule that declines says why in [`Plan::skipped`].
//!
//! 1. [`replace_leaving_voters`]: a voter whose instance is gone is swapped for a synced observer
//!    (or joiner) in the same reconfig, so the voter count never dips.
//! 2. [`remove_leaving_non_voters`]: gone observers leave; no quorum is involved.
//! 3. [`remove_leaving_voters`]: gone voters with nobody to swap in leave, capped.
//! 4. [`grow_voters`]: fewer voters than wanted: promote synced observers / add joiners.
//! 5. [`shrink_voters`]: more voters than the target: demote the extra to observers.
//! 6. [`add_observers`]: remaining joiners become observers.

use std::collections::BTreeMap;

use crate::model::{EnsembleConfig, InstanceState, LifecycleHook, Role, ServerId, ServerSpec};
use crate::observed::{Member, Mode, Observed};
use crate::plan::{Action, MembershipChange, Plan};
use crate::policy::Policy;
use crate::safety::{
    ack_capable, has_synced_quorum, largest_odd_at_most, max_removable, respects_min_voters, voter_count_ok,
    voters_wanted,
};

/// Decides the next step. Pure: same inputs, same plan.
pub fn plan(obs: &Observed, policy: &Policy, now_ms: u64) -> Plan {
    let mut plan = Plan::default();
    let Some(config) = obs.config.as_ref() else {
        plan.skip("ensemble", "no serving member answered with the committed config");
        return plan;
    };
    let Some(_) = obs.instances.as_ref() else {
        plan.skip("ensemble", "backend instances unknown; nothing is removed on a failed read");
        return plan;
    };
    let members = obs.members();
    release_ids(&members, &mut plan);
    scale_in_protection(&members, &mut plan);
    lifecycle_hooks(obs, &members, &mut plan);
    if obs.leader().is_none() {
        plan.skip("ensemble", "no leader; a reconfig needs a serving quorum");
        return plan;
    }
    report_unhealthy(obs, &members, policy, now_ms, &mut plan);
    for m in &members {
        if m.spec.is_some() && m.instance.is_none() && !m.retired {
            plan.skip(format!("server {}", m.id), "no instance holds this id; an unknown is never removed");
        }
    }
    let replacement_coming = replacement_coming(obs, &members);
    let ctx = Ctx { obs, policy, now_ms, config, members, replacement_coming };
    let rules: [fn(&Ctx, &mut Plan) -> Option<MembershipChange>; 6] = [
        replace_leaving_voters,
        remove_leaving_non_voters,
        remove_leaving_voters,
        grow_voters,
        shrink_voters,
        add_observers,
    ];
    for rule in rules {
        if let Some(change) = rule(&ctx, &mut plan) {
            plan.actions.insert(0, Action::Reconfig(change));
            break;
        }
    }
    // Several rules look at the same candidates; report each reason once.
    let mut seen = std::collections::BTreeSet::new();
    plan.skipped.retain(|s| seen.insert((s.subject.clone(), s.reason.clone())));
    plan
}

struct Ctx<'a> {
    obs: &'a Observed,
    policy: &'a Policy,
    now_ms: u64,
    config: &'a EnsembleConfig,
    members: Vec<Member<'a>>,
    /// The group is launching, or already runs, a server that could take a voter's place.
    replacement_coming: bool,
}

impl<'a> Ctx<'a> {
    fn voters(&self) -> Vec<ServerId> {
        self.config.voters().collect()
    }

    fn change(&self, joining: Vec<ServerSpec>, leaving: Vec<ServerId>, why: String) -> MembershipChange {
        MembershipChange { joining, leaving, from_version: self.config.version, why }
    }

    /// Voters whose instance the backend reports going or gone; terminated before terminating, so
    /// the dead go first.
    fn leaving_voters(&self) -> Vec<&Member<'a>> {
        let mut v: Vec<&Member> = self.members.iter().filter(|m| m.is_voter() && m.is_leaving()).collect();
        v.sort_by_key(|m| (m.instance.map(|i| i.state) != Some(InstanceState::Terminated), m.id));
        v
    }

    /// Servers that may become voters: running, serving, not leaving, stable long enough; observers
    /// before joiners (they have proven themselves longer); zones with fewest voters first.
    fn voter_candidates(&self, plan: &mut Plan) -> Vec<ServerSpec> {
        let mut zone_voters: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.iter().filter(|m| m.is_voter() && !m.is_leaving()) {
            *zone_voters.entry(m.instance.map_or("", |i| i.zone.as_str())).or_default() += 1;
        }
        let mut out: Vec<(usize, bool, ServerId, ServerSpec)> = Vec::new();
        for m in &self.members {
            let candidate_mode = if m.is_observer() {
                Mode::Observer
            } else if m.spec.is_none() {
                Mode::Follower
            } else {
                continue;
            };
            if !m.is_running() || m.health.mode != candidate_mode {
                continue;
            }
            if !m.stable_for(self.policy.stabilization_ms, self.now_ms) {
                plan.skip(format!("server {}", m.id), "not yet serving for the stabilization time");
                continue;
            }
            let Some(spec) = self.spec_for(m) else {
                continue;
            };
            let zone = m.instance.map_or("", |i| i.zone.as_str());
            out.push((zone_voters.get(zone).copied().unwrap_or(0), !m.is_observer(), m.id, spec));
        }
        out.sort_by_key(|a| (a.0, a.1, a.2));
        out.into_iter().map(|(_, _, _, s)| s.with_role(Role::Participant)).collect()
    }

    /// The server line of a member: from the config, or built from its instance for a joiner.
    fn spec_for(&self, m: &Member) -> Option<ServerSpec> {
        if let Some(spec) = m.spec {
            return Some(spec.clone());
        }
        let template = self.config.servers.values().next()?;
        let inst = m.instance?;
        let host = self.policy.host_for(m.id, &inst.address);
        Some(ServerSpec {
            id: m.id,
            host: host.clone(),
            quorum_port: template.quorum_port,
            election_port: template.election_port,
            role: Role::Observer,
            client_host: host,
            client_port: template.client_port,
        })
    }

    /// Does `change` leave a synced majority in the new voter set (and keep the count legal)?
    fn safe(&self, change: &MembershipChange, plan: &mut Plan, subject: &str) -> bool {
        self.refusal(change, plan, subject).is_none()
    }

    /// Why `change` may not be made, recorded in `plan`; `None` when it may.
    fn refusal(&self, change: &MembershipChange, plan: &mut Plan, subject: &str) -> Option<Refusal> {
        let before = self.voters();
        let after = change.voters_after(&before);
        if after != before && !voter_count_ok(before.len(), after.len()) {
            plan.skip(subject, format!("{} -> {} voters would leave an even count", before.len(), after.len()));
            return Some(Refusal::Count);
        }
        if !respects_min_voters(before.len(), after.len(), self.policy.min_voters) {
            plan.skip(subject, format!("would go below min_voters ({})", self.policy.min_voters));
            return Some(Refusal::Count);
        }
        if after != before && !has_synced_quorum(&after, &ack_capable(self.obs)) {
            plan.skip(subject, "the new voter set would not have a synced majority");
            return Some(Refusal::NoSyncedQuorum);
        }
        None
    }

    /// An observer cannot acknowledge the history prefix of its own promotion, so when the voters
    /// that stay are no synced majority of the new set, a promotion can never commit
    /// (NewConfigNoQuorum). ZooKeeper's documented way out (Dynamic Reconfiguration guide,
    /// "Changing an observer into a follower"): remove the observer first; it keeps running as a
    /// non-voting follower, which can ack, and is promoted in a later pass.
    fn recycle_observer(&self, promoted: &[ServerSpec]) -> Option<MembershipChange> {
        let observer = promoted.iter().find(|s| self.config.role_of(s.id) == Some(Role::Observer))?;
        let why = format!("observer {} rejoins as non-voting follower so its promotion can commit", observer.id);
        Some(self.change(vec![], vec![observer.id], why))
    }
}

/// Why the planner refused a change it considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Parity or min_voters.
    Count,
    /// Too few of the new voters can ack.
    NoSyncedQuorum,
}

/// Ids whose server is out of the config and whose instance is terminated go back to the pool.
fn release_ids(members: &[Member], plan: &mut Plan) {
    for m in members {
        if let (None, Some(inst)) = (m.spec, m.instance)
            && inst.state == InstanceState::Terminated
        {
            plan.actions.push(Action::ReleaseId { id: m.id, instance: inst.id.clone() });
        }
    }
}

/// A member whose server has not served for `unhealthy_after_ms` while the ensemble has a leader
/// (a hung JVM, a full disk, a partitioned host: its agent cannot fix it) is reported to the
/// backend, which replaces the instance. One at a time: a replacement is a membership change the
/// ensemble must absorb, and when many look down at once the watcher is the likelier problem.
fn report_unhealthy(obs: &Observed, members: &[Member], policy: &Policy, now_ms: u64, plan: &mut Plan) {
    if policy.unhealthy_after_ms == 0 {
        return;
    }
    let mut down: Vec<(u64, &Member)> = members
        .iter()
        .filter(|m| m.instance.is_some_and(|i| i.state == InstanceState::Running))
        .filter_map(|m| obs.down_since.get(&m.id).map(|since| (now_ms.saturating_sub(*since), m)))
        .filter(|(down_ms, _)| *down_ms >= policy.unhealthy_after_ms)
        .collect();
    down.sort_by_key(|(down_ms, m)| (std::cmp::Reverse(*down_ms), m.id));
    let mut iter = down.into_iter();
    if let Some((down_ms, m)) = iter.next()
        && let Some(inst) = m.instance
    {
        plan.actions.push(Action::ReportUnhealthy { instance: inst.id.clone(), id: m.id, down_ms });
    }
    for (_, m) in iter {
        plan.skip(format!("server {}", m.id), "unhealthy too, but one instance is replaced at a time");
    }
}

/// Voters' instances protected from scale-in, everybody else's released; only where the backend
/// has protection and it differs.
fn scale_in_protection(members: &[Member], plan: &mut Plan) {
    for m in members {
        let Some(inst) = m.instance else { continue };
        let Some(current) = inst.protected else { continue };
        if inst.state != InstanceState::Running {
            continue;
        }
        let want = m.is_voter();
        if current != want {
            plan.actions.push(Action::SetScaleInProtection { instance: inst.id.clone(), protected: want });
        }
    }
}

/// Completes lifecycle hooks whose condition holds. An instance with no claim yet has no server
/// to wait for on termination; on launch it waits (its agent claims first).
fn lifecycle_hooks(obs: &Observed, members: &[Member], plan: &mut Plan) {
    let config = obs.config.as_ref();
    for inst in obs.instances.iter().flatten() {
        let Some(hook) = inst.hook else { continue };
        let member = inst.server_id.and_then(|id| members.iter().find(|m| m.id == id));
        let done = match hook {
            LifecycleHook::Launching => member.is_some_and(|m| {
                m.spec.is_some()
                    && match m.spec.map(|s| s.role) {
                        Some(Role::Participant) => matches!(m.health.mode, Mode::Leader | Mode::Follower),
                        _ => m.health.mode == Mode::Observer,
                    }
            }),
            // Only with a config read: "not in the config" must not come from not knowing it.
            LifecycleHook::Terminating => config.is_some() && member.is_none_or(|m| m.spec.is_none()),
        };
        if done {
            plan.actions.push(Action::CompleteLifecycle { instance: inst.id.clone(), hook });
        } else {
            // Keep the hook from timing out while the server gets there (the runtime sends at
            // most one heartbeat a minute per instance).
            plan.actions.push(Action::LifecycleHeartbeat { instance: inst.id.clone(), hook });
            plan.skip(format!("instance {}", inst.id), format!("{hook:?} lifecycle hook waits for its server"));
        }
    }
}

/// Swap gone voters for synced candidates in one reconfig (the count stays, the quorum never
/// depends on a dead server longer than one pass).
fn replace_leaving_voters(ctx: &Ctx, plan: &mut Plan) -> Option<MembershipChange> {
    let leaving = ctx.leaving_voters();
    if leaving.is_empty() {
        return None;
    }
    let candidates = ctx.voter_candidates(plan);
    let k = leaving.len().min(candidates.len()).min(max_removable(ctx.voters().len()).max(1));
    if k == 0 {
        return None;
    }
    let out: Vec<ServerId> = leaving.iter().take(k).map(|m| m.id).collect();
    let ins: Vec<ServerSpec> = candidates.into_iter().take(k).collect();
    let why = format!(
        "voter(s) {} leaving: promote {} in their place",
        ids(&out),
        ins.iter().map(|s| s.id.to_string()).collect::<Vec<_>>().join(",")
    );
    let change = ctx.change(ins.clone(), out, why);
    match ctx.refusal(&change, plan, "replace leaving voters") {
        None => Some(change),
        // A lone voter swapped for an observer: the observer is the whole new set and cannot ack.
        Some(Refusal::NoSyncedQuorum) => ctx.recycle_observer(&ins),
        Some(Refusal::Count) => None,
    }
}

/// Observers whose instance is gone leave; observers carry no votes so there is nothing to cap.
fn remove_leaving_non_voters(ctx: &Ctx, _plan: &mut Plan) -> Option<MembershipChange> {
    let gone: Vec<ServerId> = ctx.members.iter().filter(|m| m.is_observer() && m.is_leaving()).map(|m| m.id).collect();
    if gone.is_empty() {
        return None;
    }
    let why = format!("observer(s) {} leaving", ids(&gone));
    Some(ctx.change(vec![], gone, why))
}

/// A planned replacement: the voter's instance is terminating but its server still serves, and
/// the group is launching (or has launched) a replacement. Removing it first would leave one voter
/// fewer until the replacement is promoted; waiting lets [`replace_leaving_voters`] swap it out in
/// one reconfig, so fault tolerance never dips. A server that stops serving is removed as usual.
fn awaits_planned_swap(ctx: &Ctx, m: &Member) -> bool {
    ctx.replacement_coming && m.instance.is_some_and(|i| i.state == InstanceState::Terminating) && m.is_serving()
}

/// More instances wanted than run, or a running non-voter exists: a voter's replacement is coming.
fn replacement_coming(obs: &Observed, members: &[Member]) -> bool {
    let running = members.iter().filter(|m| m.is_running()).count();
    obs.desired.is_some_and(|d| d > running) || members.iter().any(|c| c.is_running() && !c.is_voter())
}

/// Gone voters with nobody to swap in: remove as many as the cap, the minimum and parity allow.
fn remove_leaving_voters(ctx: &Ctx, plan: &mut Plan) -> Option<MembershipChange> {
    let mut leaving = ctx.leaving_voters();
    if leaving.is_empty() {
        return None;
    }
    let (planned, gone): (Vec<&Member>, Vec<&Member>) = leaving.iter().partition(|m| awaits_planned_swap(ctx, m));
    if !planned.is_empty() {
        plan.skip(
            format!("voter(s) {}", ids(&planned.iter().map(|m| m.id).collect::<Vec<_>>())),
            "terminating but serving, replacement on its way: swapped out once it is synced (the voter count never dips)",
        );
        if gone.is_empty() {
            return None;
        }
        leaving = gone;
    }
    let v = ctx.voters().len();
    let k_max = leaving.len().min(max_removable(v));
    for k in (1..=k_max).rev() {
        if !voter_count_ok(v, v - k) || !respects_min_voters(v, v - k, ctx.policy.min_voters) {
            continue;
        }
        let out: Vec<ServerId> = leaving.iter().take(k).map(|m| m.id).collect();
        let change =
            ctx.change(vec![], out.clone(), format!("voter(s) {} leaving, no synced replacement yet", ids(&out)));
        if ctx.safe(&change, plan, "remove leaving voters") {
            return Some(change);
        }
    }
    plan.skip(
        format!("voter(s) {}", ids(&leaving.iter().map(|m| m.id).collect::<Vec<_>>())),
        format!(
            "leaving, but removing them now would break the cap ({} of {v}), parity or min_voters ({}); waiting for a synced replacement",
            max_removable(v),
            ctx.policy.min_voters
        ),
    );
    None
}

/// Fewer voters than wanted: add candidates so the count lands on an odd number.
fn grow_voters(ctx: &Ctx, plan: &mut Plan) -> Option<MembershipChange> {
    let v = ctx.voters().len();
    if v >= ctx.policy.target_voters {
        return None;
    }
    let candidates = ctx.voter_candidates(plan);
    let available = largest_odd_at_most(v + candidates.len()).min(ctx.policy.target_voters);
    if available <= v {
        if !candidates.is_empty() {
            plan.skip(
                "grow voters",
                format!(
                    "{v} voters, target {}: {} candidate(s) would leave an even count; waiting for one more",
                    ctx.policy.target_voters,
                    candidates.len()
                ),
            );
        }
        return None;
    }
    let ins: Vec<ServerSpec> = candidates.into_iter().take(available - v).collect();
    let why = format!("{v} voters below target {}: {available} voters", ctx.policy.target_voters);
    let change = ctx.change(ins.clone(), vec![], why);
    match ctx.refusal(&change, plan, "grow voters") {
        None => Some(change),
        Some(Refusal::NoSyncedQuorum) => ctx.recycle_observer(&ins),
        Some(Refusal::Count) => None,
    }
}

/// Voters wanted now: the target, but never more than the largest odd number of members whose
/// instances run (a crashed ZooKeeper on a running instance still counts: a restart is not a
/// reason to demote). A configured server no instance holds is not known to be gone (a slot
/// waiting for its replacement instance, an id the backend cannot attribute) and counts too if it
/// votes: demoting it would only be undone when it returns. An observer no instance holds does not
/// count: it holds no vote to keep, and counting it would keep a voter count that cannot shrink by
/// the one a leaving voter needs (five voters, one leaving, nobody to swap in: stuck in the
/// config; found by `planner_props::plans_converge`). So does a voter awaiting a planned swap:
/// demoting it would dip the voter count the swap exists to keep.
fn desired_voters(ctx: &Ctx) -> usize {
    let eligible = ctx
        .members
        .iter()
        .filter(|m| {
            let awaited = m.spec.is_some_and(|s| s.role == Role::Participant) && m.instance.is_none() && !m.retired;
            awaited
                || (m.is_running() && (m.spec.is_some() || m.health.mode == Mode::Follower))
                || awaits_planned_swap(ctx, m)
        })
        .count();
    voters_wanted(eligible, ctx.policy.target_voters)
}

/// More voters than wanted (target lowered, or the group shrank to an even size): demote the
/// extra to observers, leaving, unhealthy and highest ids first, the leader last, never below the minimum.
fn shrink_voters(ctx: &Ctx, plan: &mut Plan) -> Option<MembershipChange> {
    let v = ctx.voters().len();
    let desired = desired_voters(ctx);
    if v <= desired {
        return None;
    }
    let leader = ctx.obs.leader();
    let mut voters: Vec<&Member> = ctx.members.iter().filter(|m| m.is_voter()).collect();
    // A leaving voter demoted is an observer the next pass removes without touching the quorum.
    voters.sort_by_key(|m| (Some(m.id) == leader, !m.is_leaving(), m.is_serving(), std::cmp::Reverse(m.id)));
    let cap = (v - desired).min(max_removable(v).max(1));
    for k in (1..=cap).rev() {
        if !voter_count_ok(v, v - k) || !respects_min_voters(v, v - k, ctx.policy.min_voters) {
            continue;
        }
        let demoted: Vec<ServerSpec> =
            voters.iter().take(k).filter_map(|m| m.spec.map(|s| s.with_role(Role::Observer))).collect();
        let why =
            format!("{v} voters, {desired} wanted: demote {}", ids(&demoted.iter().map(|s| s.id).collect::<Vec<_>>()));
        let change = ctx.change(demoted, vec![], why);
        if ctx.safe(&change, plan, "shrink voters") {
            return Some(change);
        }
    }
    None
}

/// Synced joiners not needed as voters join as observers, all in one reconfig.
fn add_observers(ctx: &Ctx, plan: &mut Plan) -> Option<MembershipChange> {
    let mut joiners = Vec::new();
    for m in ctx.members.iter().filter(|m| m.spec.is_none() && !m.is_leaving()) {
        if m.is_running() && m.health.mode == Mode::Follower {
            joiners.extend(ctx.spec_for(m));
        } else if m.instance.is_some_and(|i| i.state == InstanceState::Running) {
            plan.skip(format!("server {}", m.id), "claimed but not yet a synced non-voting follower");
        }
    }
    if joiners.is_empty() {
        return None;
    }
    let why = format!("join as observer(s): {}", ids(&joiners.iter().map(|s| s.id).collect::<Vec<_>>()));
    Some(ctx.change(joiners, vec![], why))
}

fn ids(v: &[ServerId]) -> String {
    v.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Instance, InstanceId};
    use crate::observed::Health;

    /// A running instance `i-<n>` in zone `a`, holding server `sid`.
    fn running(n: u32, sid: Option<u32>) -> Instance {
        Instance {
            id: InstanceId(format!("i-{n}")),
            address: format!("127.0.0.{n}"),
            zone: "a".into(),
            state: InstanceState::Running,
            server_id: sid.map(ServerId),
            protected: None,
            hook: None,
        }
    }

    /// Servers `1..=n`, all participants, at config version 100000000.
    fn participants(n: u32) -> EnsembleConfig {
        let lines: String =
            (1..=n).map(|i| format!("server.{i}=127.0.0.{i}:2888:3888:participant;127.0.0.{i}:2181\n")).collect();
        EnsembleConfig::parse(&format!("{lines}version=100000000")).expect("cfg")
    }

    /// Serving (or not) in `mode` since the epoch.
    fn h(mode: Mode) -> Health {
        Health { mode, zxid: None, serving_since_ms: Some(0) }
    }

    fn obs_with(hook: LifecycleHook, in_config: Option<Role>, mode: Mode) -> Observed {
        let text = "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\nversion=100000000";
        let mut config = EnsembleConfig::parse(text).expect("config");
        if let Some(role) = in_config {
            let mut s = config.servers[&ServerId(1)].clone();
            s.id = ServerId(2);
            s.host = "127.0.0.2".into();
            s.client_host = "127.0.0.2".into();
            s.role = role;
            config.servers.insert(ServerId(2), s);
        }
        let inst = |n: u32, hook: Option<LifecycleHook>, state| Instance {
            id: InstanceId(format!("i-{n}")),
            address: format!("127.0.0.{n}"),
            zone: "a".into(),
            state,
            server_id: Some(ServerId(n)),
            protected: None,
            hook,
        };
        let state =
            if hook == LifecycleHook::Terminating { InstanceState::Terminating } else { InstanceState::Running };
        Observed {
            config: Some(config),
            instances: Some(vec![inst(1, None, InstanceState::Running), inst(2, Some(hook), state)]),
            health: [(ServerId(1), h(Mode::Leader)), (ServerId(2), h(mode))].into_iter().collect(),
            ..Default::default()
        }
    }

    fn heartbeats(o: &Observed) -> bool {
        plan(o, &Policy::default(), 0).actions.iter().any(|a| matches!(a, Action::LifecycleHeartbeat { .. }))
    }

    fn completes(o: &Observed) -> bool {
        plan(o, &Policy::default(), 0).actions.iter().any(|a| matches!(a, Action::CompleteLifecycle { .. }))
    }

    /// Slot mode: a voter whose instance died is attributed to no instance until its replacement
    /// takes the slot; it is neither removed nor demoted meanwhile.
    #[test]
    fn voter_awaiting_its_replacement_is_left_alone() {
        let config = participants(3);
        let inst = |n: u32| running(n, Some(n));
        let obs = Observed {
            config: Some(config),
            instances: Some(vec![inst(1), inst(2)]),
            health: [(ServerId(1), h(Mode::Leader)), (ServerId(2), h(Mode::Follower))].into_iter().collect(),
            ..Default::default()
        };
        let p = plan(&obs, &Policy::default(), 0);
        assert!(!p.actions.iter().any(|a| matches!(a, Action::Reconfig(_))), "{p:?}");
    }

    /// A hung server on a running instance is reported once it has not served for the policy's
    /// time, one instance at a time, and never without a serving ensemble.
    #[test]
    fn a_long_unserving_member_is_reported_for_replacement() {
        let config = participants(5);
        let inst = |n: u32| running(n, Some(n));
        let mut obs = Observed {
            config: Some(config),
            instances: Some((1..=5).map(inst).collect()),
            health: [
                (ServerId(1), h(Mode::Leader)),
                (ServerId(2), h(Mode::Follower)),
                (ServerId(3), h(Mode::Follower)),
                (ServerId(4), Health::UNREACHABLE),
                (ServerId(5), Health::UNREACHABLE),
            ]
            .into_iter()
            .collect(),
            down_since: [(ServerId(4), 10_000), (ServerId(5), 0)].into_iter().collect(),
            desired: None,
        };
        let policy = Policy { unhealthy_after_ms: 60_000, ..Policy::default() };
        let reported = |o: &Observed, now| -> Vec<ServerId> {
            plan(o, &policy, now)
                .actions
                .iter()
                .filter_map(|a| match a {
                    Action::ReportUnhealthy { id, .. } => Some(*id),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(reported(&obs, 59_999), vec![]);
        assert_eq!(reported(&obs, 60_000), vec![ServerId(5)], "the longest down first");
        assert_eq!(reported(&obs, 200_000), vec![ServerId(5)], "one at a time");
        obs.health.insert(ServerId(1), h(Mode::NotServing));
        obs.health.insert(ServerId(2), h(Mode::NotServing));
        assert_eq!(reported(&obs, 200_000), vec![], "no leader: the watcher may be the problem");
    }

    /// Slot mode: a slot whose holder died while the group scaled in will never be taken again.
    /// While a replacement may still come it is left alone; once the group runs all it wants and
    /// every instance holds another server, it is removed like a gone member.
    #[test]
    fn an_orphan_no_instance_will_take_is_retired() {
        let line = |n: u32, role: &str| format!("server.{n}=127.0.0.{n}:2888:3888:{role};127.0.0.{n}:2181\n");
        let config = EnsembleConfig::parse(&format!(
            "{}{}{}{}version=100000000",
            line(1, "participant"),
            line(2, "participant"),
            line(3, "participant"),
            line(4, "observer")
        ))
        .expect("cfg");
        let inst = running;
        let mut obs = Observed {
            config: Some(config),
            instances: Some(vec![inst(1, Some(1)), inst(2, Some(2)), inst(3, Some(3))]),
            health: [
                (ServerId(1), h(Mode::Leader)),
                (ServerId(2), h(Mode::Follower)),
                (ServerId(3), h(Mode::Follower)),
            ]
            .into_iter()
            .collect(),
            desired: Some(4),
            ..Default::default()
        };
        let removes_4 =
            |o: &Observed| plan(o, &Policy::default(), 0).reconfig().is_some_and(|c| c.leaving == vec![ServerId(4)]);
        assert!(!removes_4(&obs), "a replacement may still come");
        obs.instances.as_mut().expect("instances").push(inst(5, None));
        obs.desired = Some(4);
        assert!(!removes_4(&obs), "an instance without a server may be taking the slot");
        obs.instances.as_mut().expect("instances").pop();
        obs.desired = Some(3);
        assert!(removes_4(&obs), "nothing will bring it back");
    }

    /// A planned replacement (instance terminating, server still serving, replacement launching)
    /// is swapped out in one reconfig once the replacement is synced, never removed first.
    #[test]
    fn a_terminating_but_serving_voter_waits_for_its_replacement() {
        let config = participants(3);
        let mut leaving = running(3, Some(3));
        leaving.state = InstanceState::Terminating;
        let mut obs = Observed {
            config: Some(config),
            instances: Some(vec![running(1, Some(1)), running(2, Some(2)), leaving]),
            health: [
                (ServerId(1), h(Mode::Leader)),
                (ServerId(2), h(Mode::Follower)),
                (ServerId(3), h(Mode::Follower)),
            ]
            .into_iter()
            .collect(),
            desired: Some(3),
            ..Default::default()
        };
        let p = plan(&obs, &Policy::default(), 0);
        assert!(p.reconfig().is_none(), "replacement not launched yet: {p:?}");
        assert!(p.skipped.iter().any(|s| s.reason.contains("replacement on its way")), "{p:?}");
        obs.instances.as_mut().expect("instances").push(running(4, Some(4)));
        obs.health.insert(ServerId(4), h(Mode::Follower));
        let p = plan(&obs, &Policy::default(), 0);
        let c = p.reconfig().expect("swap");
        assert_eq!(
            (c.leaving.clone(), c.joining.iter().map(|s| s.id).collect::<Vec<_>>()),
            (vec![ServerId(3)], vec![ServerId(4)])
        );
        obs.instances.as_mut().expect("instances").pop();
        obs.health.remove(&ServerId(4));
        obs.health.insert(ServerId(3), Health::UNREACHABLE);
        let p = plan(&obs, &Policy::default(), 0);
        assert!(p.reconfig().is_some_and(|c| c.leaving == vec![ServerId(3)]), "no longer serving: removed: {p:?}");
        obs.health.insert(ServerId(3), h(Mode::Follower));
        obs.desired = Some(2);
        let p = plan(&obs, &Policy::default(), 0);
        assert!(p.reconfig().is_some_and(|c| c.leaving == vec![ServerId(3)]), "scale-in: nothing to wait for: {p:?}");
    }

    /// An even voter count is not kept by a swap (`4 -> 4`): a dead voter of four is removed
    /// (`4 -> 3`, still tolerating one failure) even though a synced observer could replace it.
    #[test]
    fn a_swap_does_not_keep_an_even_voter_count() {
        let line = |n: u32, role: &str| format!("server.{n}=127.0.0.{n}:2888:3888:{role};127.0.0.{n}:2181\n");
        let text: String = (1..=4).map(|n| line(n, "participant")).chain([line(5, "observer")]).collect();
        let config = EnsembleConfig::parse(&format!("{text}version=100000000")).expect("cfg");
        let mut dead = running(4, Some(4));
        dead.state = InstanceState::Terminated;
        let obs = Observed {
            config: Some(config),
            instances: Some(vec![
                running(1, Some(1)),
                running(2, Some(2)),
                running(3, Some(3)),
                dead,
                running(5, Some(5)),
            ]),
            health: [
                (ServerId(1), h(Mode::Leader)),
                (ServerId(2), h(Mode::Follower)),
                (ServerId(3), h(Mode::Follower)),
                (ServerId(4), Health::UNREACHABLE),
                (ServerId(5), h(Mode::Observer)),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let policy = Policy { target_voters: 5, ..Policy::default() };
        let p = plan(&obs, &policy, 0);
        let c = p.reconfig().expect("a change");
        assert!(c.joining.is_empty() && c.leaving == vec![ServerId(4)], "4 -> 3, not a 4 -> 4 swap: {p:?}");
    }

    /// Two voters (the `3 -> 2` waypoint) with a terminating but serving voter and a synced joiner:
    /// no `2 -> 2` swap; the joiner is added first (`2 -> 3`), the leaver swapped or removed later.
    #[test]
    fn two_voters_grow_before_a_leaver_is_swapped() {
        let config = participants(2);
        let mut leaving = running(2, Some(2));
        leaving.state = InstanceState::Terminating;
        let obs = Observed {
            config: Some(config),
            instances: Some(vec![running(1, Some(1)), leaving, running(3, Some(3))]),
            health: [
                (ServerId(1), h(Mode::Leader)),
                (ServerId(2), h(Mode::Follower)),
                (ServerId(3), h(Mode::Follower)),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let p = plan(&obs, &Policy::default(), 0);
        let c = p.reconfig().expect("a change");
        assert_eq!(
            (c.leaving.clone(), c.joining.iter().map(|s| (s.id, s.role)).collect::<Vec<_>>()),
            (vec![], vec![(ServerId(3), Role::Participant)]),
            "{p:?}"
        );
    }

    /// A lone voter leaving with only an observer to take its place: the swap `{1} -> {2}` can
    /// never commit (the observer would be the whole new set and observers cannot ack), so the
    /// observer is first taken out to rejoin as a non-voting follower, then swapped in.
    #[test]
    fn a_lone_leaving_voter_is_replaced_by_an_observer_via_a_non_voting_follower() {
        let text = "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\n\
                    server.2=127.0.0.2:2888:3888:observer;127.0.0.2:2181\nversion=100000000";
        let mut leaving = running(1, Some(1));
        leaving.state = InstanceState::Terminating;
        let mut obs = Observed {
            config: Some(EnsembleConfig::parse(text).expect("cfg")),
            instances: Some(vec![leaving, running(2, Some(2))]),
            health: [(ServerId(1), h(Mode::Leader)), (ServerId(2), h(Mode::Observer))].into_iter().collect(),
            ..Default::default()
        };
        let policy = Policy { target_voters: 1, ..Policy::default() };
        let p = plan(&obs, &policy, 0);
        let c = p.reconfig().expect("a change");
        assert!(c.joining.is_empty() && c.leaving == vec![ServerId(2)], "observer rejoins first: {p:?}");
        obs.config.as_mut().expect("config").servers.remove(&ServerId(2));
        obs.health.insert(ServerId(2), h(Mode::Follower));
        let p = plan(&obs, &policy, 0);
        let c = p.reconfig().expect("a change");
        assert_eq!(
            (c.leaving.clone(), c.joining.iter().map(|s| (s.id, s.role)).collect::<Vec<_>>()),
            (vec![ServerId(1)], vec![(ServerId(2), Role::Participant)]),
            "{p:?}"
        );
    }

    /// Lowering the target from five to three demotes two live voters in one change: that is
    /// the removal cap of five, `(5 - 1) / 2`, and ZooKeeper commits it only with a quorum of the
    /// old five and of the new three acking, which the synced-majority rule already demands.
    #[test]
    fn lowering_the_target_from_five_to_three_demotes_two_at_once() {
        let obs = Observed {
            config: Some(participants(5)),
            instances: Some((1..=5).map(|n| running(n, Some(n))).collect()),
            health: (1..=5).map(|n| (ServerId(n), h(if n == 1 { Mode::Leader } else { Mode::Follower }))).collect(),
            ..Default::default()
        };
        let p = plan(&obs, &Policy::default(), 0);
        let c = p.reconfig().expect("a change");
        let demoted: Vec<(ServerId, Role)> = c.joining.iter().map(|s| (s.id, s.role)).collect();
        assert_eq!(demoted, vec![(ServerId(5), Role::Observer), (ServerId(4), Role::Observer)], "{p:?}");
        assert_eq!(crate::safety::check_plan(&obs, &Policy::default(), &p), Ok(()));
    }

    #[test]
    fn launch_hook_completes_once_the_server_serves_in_its_role() {
        assert!(!completes(&obs_with(LifecycleHook::Launching, None, Mode::Follower)), "joiner not yet added");
        assert!(heartbeats(&obs_with(LifecycleHook::Launching, None, Mode::Follower)), "kept alive meanwhile");
        assert!(!heartbeats(&obs_with(LifecycleHook::Launching, Some(Role::Observer), Mode::Observer)));
        assert!(
            !completes(&obs_with(LifecycleHook::Launching, Some(Role::Observer), Mode::Follower)),
            "not switched yet"
        );
        assert!(completes(&obs_with(LifecycleHook::Launching, Some(Role::Observer), Mode::Observer)));
        assert!(completes(&obs_with(LifecycleHook::Launching, Some(Role::Participant), Mode::Follower)));
    }

    #[test]
    fn terminate_hook_completes_only_after_removal() {
        let still_member = obs_with(LifecycleHook::Terminating, Some(Role::Observer), Mode::Observer);
        assert!(!completes(&still_member));
        let p = plan(&still_member, &Policy::default(), 0);
        assert!(p.reconfig().is_some_and(|c| c.leaving == vec![ServerId(2)]), "{p:?}");
        assert!(completes(&obs_with(LifecycleHook::Terminating, None, Mode::Follower)));
        let mut unknown = obs_with(LifecycleHook::Terminating, None, Mode::Follower);
        unknown.config = None;
        assert!(!completes(&unknown), "no config read, no completion");
    }
}
