//! Property tests of the planner against the independent `check_plan`: every plan of every
//! snapshot the runtime's observer can produce obeys the safety rules, and repeatedly applying
//! plans to a simulated ensemble and backend converges to exactly the expected voter set.
//!
//! The snapshots carry what the real observer reports and what makes planning hard: a `desired`
//! instance count, configured ids no instance claims, instances with no claim yet, instances still
//! pending, lifecycle hooks, members whose zxid lags the leader's, members serving only recently
//! (against the stabilization time), members not serving while a leader exists, and (in the
//! simulation) config reads older than a change already committed.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use zkpilot_core::model::{
    EnsembleConfig, Instance, InstanceId, InstanceState, LifecycleHook, Role, ServerId, ServerSpec,
};
use zkpilot_core::observed::{Health, Mode, Observed};
use zkpilot_core::plan::{Action, MembershipChange};
use zkpilot_core::safety::check_plan_at;
use zkpilot_core::{Policy, plan};

/// The planner's clock in the snapshots: late enough that "serving since the epoch" is old.
const NOW: u64 = 10_000_000;
/// How far behind the leader a lagging member's zxid is.
const LAG: u64 = 1_000_000;

fn spec(id: u32, role: Role) -> ServerSpec {
    ServerSpec::loopback(id, id, role)
}

/// The backend's instance holding a server's claim.
#[derive(Debug, Clone, PartialEq)]
struct Inst {
    state: InstanceState,
    hook: Option<LifecycleHook>,
    protected: Option<bool>,
    zone: u8,
}

#[derive(Debug, Clone, PartialEq)]
struct Server {
    in_config: Option<Role>,
    /// `None`: an id no instance claims (a slot awaiting its replacement, a lost claim).
    inst: Option<Inst>,
    /// Its ZooKeeper process answers.
    up: bool,
    /// Answers, but is not serving (LOOKING or syncing), even while a leader exists.
    syncing: bool,
    /// Its zxid lags the leader's by [`LAG`].
    lagging: bool,
    /// Serving since when (ms); recent values fall inside the stabilization time.
    since: u64,
}

fn inst() -> impl Strategy<Value = Inst> {
    (
        prop_oneof![
            8 => Just(InstanceState::Running),
            1 => Just(InstanceState::Pending),
            2 => Just(InstanceState::Terminating),
            2 => Just(InstanceState::Terminated),
        ],
        any::<bool>(),
        prop_oneof![Just(None), Just(Some(true)), Just(Some(false))],
        0u8..3,
    )
        .prop_map(|(state, hooked, protected, zone)| Inst {
            state,
            hook: match state {
                InstanceState::Pending | InstanceState::Running if hooked => Some(LifecycleHook::Launching),
                InstanceState::Terminating if hooked => Some(LifecycleHook::Terminating),
                _ => None,
            },
            protected,
            zone,
        })
}

fn server() -> impl Strategy<Value = Server> {
    (
        prop_oneof![2 => Just(None), 3 => Just(Some(Role::Participant)), 2 => Just(Some(Role::Observer))],
        prop_oneof![9 => inst().prop_map(Some), 1 => Just(None)],
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.15),
        prop_oneof![Just(0u64), Just(NOW - 5_000), Just(NOW - 40_000)],
    )
        .prop_map(|(in_config, inst, up, syncing, lagging, since)| Server {
            in_config,
            inst,
            up,
            syncing,
            lagging,
            since,
        })
}

/// The world a snapshot is taken of.
#[derive(Debug, Clone)]
struct World {
    servers: BTreeMap<u32, Server>,
    /// Instances with no claim yet, by state.
    unclaimed: Vec<InstanceState>,
    /// `desired` relative to the live instances; `None`: the backend does not say.
    desired: Option<i8>,
    version: u64,
    /// An id the runtime has health for that neither the config nor any claim knows.
    stray: Option<Mode>,
    /// Probes raced with a leader losing its synced followers (see [`observe`]).
    race: bool,
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::btree_map(1u32..=12, server(), 1..10),
        prop::collection::vec(prop_oneof![Just(InstanceState::Pending), Just(InstanceState::Running)], 0..3),
        prop_oneof![1 => Just(None), 3 => (-1i8..=1).prop_map(Some)],
        (1u64..=3).prop_map(|epoch| epoch << 32 | 0x10),
        prop_oneof![6 => Just(None), 1 => Just(Some(Mode::Follower)), 1 => Just(Some(Mode::Unreachable))],
        prop::bool::weighted(0.3),
    )
        .prop_map(|(servers, unclaimed, desired, version, stray, race)| World {
            servers,
            unclaimed,
            desired,
            version,
            stray,
            race,
        })
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop_oneof![Just(1usize), Just(3), Just(5), Just(7)],
        1usize..=3,
        prop_oneof![Just(0u64), Just(30_000)],
        prop_oneof![Just(0u64), Just(120_000)],
        any::<bool>(),
    )
        .prop_map(|(t, m, stabilization_ms, unhealthy_after_ms, names)| Policy {
            target_voters: t,
            min_voters: m.min(t),
            stabilization_ms,
            unhealthy_after_ms,
            names_domain: names.then(|| "zk.internal".to_string()),
        })
}

fn alive(s: &Server) -> bool {
    s.up && s.inst.as_ref().is_none_or(|i| !matches!(i.state, InstanceState::Terminated | InstanceState::Pending))
}

/// What the runtime's observer reports for `world` at `now`: health for every configured or
/// claimed id, a leader only when a majority of the voters run (an election needs one), modes
/// as ZooKeeper reports them.
fn observe(world: &World, config: &EnsembleConfig, now: u64) -> Observed {
    let mut instances = Vec::new();
    let mut health = BTreeMap::new();
    let mut down_since = BTreeMap::new();
    for (&id, s) in &world.servers {
        if let Some(i) = &s.inst {
            instances.push(Instance {
                id: InstanceId(format!("i-{id}")),
                address: format!("127.0.0.{id}"),
                zone: format!("z{}", i.zone),
                state: i.state,
                server_id: Some(ServerId(id)),
                protected: i.protected,
                hook: i.hook,
            });
        }
    }
    for (n, state) in world.unclaimed.iter().enumerate() {
        instances.push(Instance {
            id: InstanceId(format!("i-new-{n}")),
            address: format!("127.0.1.{n}"),
            zone: format!("z{}", n % 3),
            state: *state,
            server_id: None,
            protected: Some(false),
            hook: Some(LifecycleHook::Launching),
        });
    }
    let voters: Vec<u32> =
        world.servers.iter().filter(|(_, s)| s.in_config == Some(Role::Participant)).map(|(i, _)| *i).collect();
    // A leader keeps leading while a majority of the voters is synced with it. Probes race with
    // that, so a snapshot may also show a leader whose followers mostly just dropped to syncing.
    let electing: Vec<u32> = voters.iter().copied().filter(|i| alive(&world.servers[i])).collect();
    let synced = electing.iter().filter(|i| !world.servers[i].syncing).count();
    let quorum = if world.race { electing.len() } else { synced };
    let leader = (!voters.is_empty() && 2 * quorum > voters.len())
        .then(|| electing.iter().copied().find(|i| !world.servers[i].syncing))
        .flatten();
    let top = config.version + 100;
    for (&id, s) in &world.servers {
        let mode = if !alive(s) {
            if s.up && s.inst.as_ref().is_some_and(|i| i.state == InstanceState::Pending) {
                Mode::NotServing
            } else {
                Mode::Unreachable
            }
        } else if leader.is_none() || s.syncing {
            Mode::NotServing
        } else if Some(id) == leader {
            Mode::Leader
        } else if s.in_config == Some(Role::Observer) {
            Mode::Observer
        } else {
            Mode::Follower
        };
        let serving = mode.is_serving();
        let zxid = match mode {
            Mode::Unreachable => None,
            _ if s.lagging && Some(id) != leader => Some(top - LAG),
            _ => Some(top),
        };
        health.insert(ServerId(id), Health { mode, zxid, serving_since_ms: serving.then_some(s.since.min(now)) });
        if !serving {
            down_since.insert(ServerId(id), now.saturating_sub(u64::from(id) * 50_000));
        }
    }
    if let Some(mode) = world.stray {
        health.insert(ServerId(200), Health { mode, zxid: None, serving_since_ms: None });
    }
    let live = instances.iter().filter(|i| matches!(i.state, InstanceState::Pending | InstanceState::Running)).count();
    let desired = world.desired.map(|d| live.saturating_add_signed(isize::from(d)));
    Observed { config: Some(config.clone()), instances: Some(instances), health, down_since, desired }
}

fn config_of(world: &World) -> EnsembleConfig {
    let mut config = EnsembleConfig { servers: BTreeMap::new(), version: world.version };
    for (&id, s) in &world.servers {
        if let Some(role) = s.in_config {
            config.servers.insert(ServerId(id), spec(id, role));
        }
    }
    config
}

fn largest_odd_at_most(n: usize) -> usize {
    if n % 2 == 1 { n } else { n.saturating_sub(1) }
}

/// Failures persist next to this file (`planner_props.proptest-regressions`, checked in) and are
/// replayed before new cases, so a once-found counterexample keeps being tested.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        max_global_rejects: 1_000_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    }
}

/// The simulated ensemble and backend of [`plans_converge`].
struct Sim {
    world: World,
    committed: EnsembleConfig,
    /// A change ZooKeeper accepted whose commit the client did not see in time (a timed-out
    /// `reconfig`): it commits after the next observation, which therefore reads the older config
    /// and plans from a version that is stale by the time its change arrives.
    in_flight: Option<MembershipChange>,
    now: u64,
}

impl Sim {
    fn live(&self) -> usize {
        let claimed = self.world.servers.values().filter_map(|s| s.inst.as_ref());
        claimed.filter(|i| matches!(i.state, InstanceState::Pending | InstanceState::Running)).count()
            + self.world.unclaimed.len()
    }

    fn desired(&self) -> Option<usize> {
        let live = self.live();
        self.world.desired.map(|d| live.saturating_add_signed(isize::from(d)))
    }

    /// `reconfig -v`: a change planned from another version than the committed one is refused
    /// (BadVersion).
    fn commit(&mut self, c: &MembershipChange) {
        if c.from_version != self.committed.version {
            return;
        }
        let blank = || Server { in_config: None, inst: None, up: false, syncing: false, lagging: false, since: 0 };
        for id in &c.leaving {
            self.committed.servers.remove(id);
            // A removed server keeps running as a non-voting follower.
            if let Some(s) = self.world.servers.get_mut(&id.0) {
                s.in_config = None;
            }
        }
        for j in &c.joining {
            self.committed.servers.insert(j.id, j.clone());
            self.world.servers.entry(j.id.0).or_insert_with(blank).in_config = Some(j.role);
        }
        self.committed.version += 1;
    }

    /// Executes the plan the way ZooKeeper and the backend would, then lets the backend move.
    /// `late`: this pass's reconfig commits only after the next observation.
    fn apply(&mut self, actions: &[Action], late: bool) {
        let now = self.now;
        let mut actions = actions;
        if let Some(c) = self.in_flight.take() {
            self.commit(&c);
            // Assumed of the runtime, not yet done by it: after a reconfig whose outcome it did
            // not see, it acts on nothing else the stale read suggested. Completing a terminating
            // hook because the stale config lacks a server the late change just added can kill
            // the only voter (a scaled-in joiner promoted in place of a leaving voter).
            actions = &actions[..actions.iter().position(|a| matches!(a, Action::Reconfig(_))).map_or(0, |i| i + 1)];
        }
        for action in actions {
            match action {
                Action::Reconfig(c) if late => self.in_flight = Some(c.clone()),
                Action::Reconfig(c) => self.commit(c),
                Action::ReleaseId { id, .. } => {
                    self.world.servers.remove(&id.0);
                }
                Action::CompleteLifecycle { instance, hook } => {
                    if let Some(id) = instance.0.strip_prefix("i-").and_then(|n| n.parse::<u32>().ok())
                        && let Some(i) = self.world.servers.get_mut(&id).and_then(|s| s.inst.as_mut())
                    {
                        i.hook = None;
                        if *hook == LifecycleHook::Terminating {
                            i.state = InstanceState::Terminated;
                        }
                    }
                }
                Action::ReportUnhealthy { id, .. } => {
                    if let Some(i) = self.world.servers.get_mut(&id.0).and_then(|s| s.inst.as_mut()) {
                        i.state = InstanceState::Terminated;
                        i.hook = None;
                    }
                }
                Action::SetScaleInProtection { instance, protected } => {
                    if let Some(id) = instance.0.strip_prefix("i-").and_then(|n| n.parse::<u32>().ok())
                        && let Some(i) = self.world.servers.get_mut(&id).and_then(|s| s.inst.as_mut())
                    {
                        i.protected = Some(*protected);
                    }
                }
                Action::LifecycleHeartbeat { .. } => {}
            }
        }
        self.backend_step(now);
    }

    fn backend_step(&mut self, now: u64) {
        let desired = self.desired();
        for (&id, s) in self.world.servers.iter_mut() {
            s.syncing = false;
            let in_config = self.committed.servers.contains_key(&ServerId(id));
            let Some(i) = s.inst.as_mut() else { continue };
            match i.state {
                // Its agent comes up and its server syncs.
                InstanceState::Pending => {
                    i.state = InstanceState::Running;
                    s.up = true;
                    s.since = now;
                }
                // Without a hook holding it, an instance out of the config is gone next.
                InstanceState::Terminating if !in_config && i.hook.is_none() => {
                    i.state = InstanceState::Terminated;
                }
                InstanceState::Terminated => s.up = false,
                InstanceState::Running | InstanceState::Terminating => {}
            }
        }
        // Unclaimed instances claim an orphan's slot (config member nobody holds) or a new id.
        for state in std::mem::take(&mut self.world.unclaimed) {
            if state == InstanceState::Pending {
                self.world.unclaimed.push(InstanceState::Running);
                continue;
            }
            let orphan = self.world.servers.iter().find(|(_, s)| s.inst.is_none() && s.in_config.is_some());
            let id = orphan.map(|(id, _)| *id).unwrap_or_else(|| self.world.servers.keys().max().map_or(1, |m| m + 1));
            let s = self.world.servers.entry(id).or_insert(Server {
                in_config: None,
                inst: None,
                up: true,
                syncing: false,
                lagging: false,
                since: now,
            });
            s.inst =
                Some(Inst { state: InstanceState::Running, hook: None, protected: Some(false), zone: (id % 3) as u8 });
            s.up = true;
            s.since = now;
        }
        // The group launches toward `desired`, or scales in one unprotected instance.
        let live = self.live();
        match desired {
            Some(d) if live < d => self.world.unclaimed.push(InstanceState::Pending),
            Some(d) if live > d => {
                let victim = self
                    .world
                    .servers
                    .values_mut()
                    .filter_map(|s| s.inst.as_mut())
                    .find(|i| i.state == InstanceState::Running && i.protected != Some(true));
                if let Some(i) = victim {
                    i.state = InstanceState::Terminating;
                    i.hook = Some(LifecycleHook::Terminating);
                }
            }
            _ => {}
        }
        // Keep `desired` fixed in absolute terms while `live` moves.
        if let Some(d) = desired {
            let live = self.live();
            self.world.desired = Some(i8::try_from(d as isize - live as isize).expect("small"));
        }
    }

    /// Nothing is still on its way: no launch, scale-in, sync or stabilization pending.
    fn quiet(&self, policy: &Policy) -> bool {
        let live = self.live();
        let scale_in_possible = self
            .world
            .servers
            .values()
            .filter_map(|s| s.inst.as_ref())
            .any(|i| i.state == InstanceState::Running && i.protected != Some(true));
        let at_desired = self.desired().is_none_or(|d| live == d || (live > d && !scale_in_possible));
        at_desired
            && self.world.unclaimed.is_empty()
            && self.world.servers.values().all(|s| {
                let settling = s.inst.as_ref().is_some_and(|i| {
                    i.state == InstanceState::Pending
                        || (i.state == InstanceState::Terminating && s.in_config.is_none())
                });
                let stable = !alive(s) || self.now.saturating_sub(s.since) >= policy.stabilization_ms;
                !settling && !s.syncing && stable
            })
    }
}

proptest! {
    #![proptest_config(config(3000))]

    /// Every plan of every snapshot passes the independent `check_plan` (with the time rules),
    /// now and much later (outages overdue), and planning is deterministic.
    #[test]
    fn every_plan_is_safe(world in world(), policy in policy()) {
        let config = config_of(&world);
        for now in [NOW, NOW + 700_000] {
            let obs = observe(&world, &config, now);
            let p = plan(&obs, &policy, now);
            prop_assert_eq!(check_plan_at(&obs, &policy, &p, now), Ok(()), "{:#?}", obs);
            prop_assert_eq!(&p, &plan(&obs.clone(), &policy, now));
        }
    }
}

proptest! {
    #![proptest_config(config(600))]

    /// Applying plans one by one to a simulated ensemble (some changes commit late, so the next
    /// pass reads a stale config and ZooKeeper refuses its change for its version; joiners sync; the backend launches toward `desired`, scales in, finishes
    /// hooks) keeps a leader throughout and reaches a fixed point with exactly the expected
    /// voters and no leaving member left in the config.
    #[test]
    fn plans_converge(
        world in world(),
        policy in policy(),
        late in prop::collection::vec(prop::bool::weighted(0.2), 60),
    ) {
        let mut world = world;
        world.stray = None;
        world.race = false;
        // Everything that runs answers (the planner cannot restart a crashed server); some are
        // still syncing in the first pass.
        for s in world.servers.values_mut() {
            if s.inst.as_ref().is_some_and(|i| i.state != InstanceState::Terminated) { s.up = true; }
        }
        let committed = config_of(&world);
        // Quorum loss is recovery's to fix, not the planner's: start with a leader.
        prop_assume!(observe(&world, &committed, NOW).leader().is_some());
        let mut sim = Sim { world, committed, in_flight: None, now: NOW };
        for late in late {
            let fresh = sim.in_flight.is_none();
            let obs = observe(&sim.world, &sim.committed, sim.now);
            prop_assert!(obs.leader().is_some(), "a change left the ensemble without a leader: {:#?}", obs);
            let p = plan(&obs, &policy, sim.now);
            prop_assert_eq!(check_plan_at(&obs, &policy, &p, sim.now), Ok(()), "{:#?}", obs);
            if fresh && p.reconfig().is_none() && sim.quiet(&policy) {
                return fixed_point(&sim, &obs, &policy, &p.skipped);
            }
            sim.apply(&p.actions, late);
            sim.now += 10_000;
        }
        prop_assert!(false, "no fixed point after 60 passes: {:#?}", sim.committed);
    }
}

/// What a fixed point must look like, with every exception named.
fn fixed_point(
    sim: &Sim,
    obs: &Observed,
    policy: &Policy,
    skipped: &[zkpilot_core::Skip],
) -> Result<(), TestCaseError> {
    let servers = &sim.world.servers;
    let voters: Vec<u32> =
        servers.iter().filter(|(_, s)| s.in_config == Some(Role::Participant)).map(|(id, _)| *id).collect();
    let v = voters.len();
    let running = |s: &Server| s.inst.as_ref().is_some_and(|i| i.state == InstanceState::Running);
    let leaving_inst = |s: &Server| s.inst.as_ref().is_some_and(|i| i.state.is_leaving());
    // Nobody will bring an orphan back once the group runs what it wants and all of it holds ids.
    let retired = sim.desired().is_some_and(|d| sim.live() >= d) && sim.world.unclaimed.is_empty();
    let leaving: Vec<u32> = servers
        .iter()
        .filter(|(_, s)| s.in_config.is_some() && (leaving_inst(s) || (s.inst.is_none() && retired)))
        .map(|(id, _)| *id)
        .collect();
    // Synced servers a voter could be swapped for or grown with.
    let candidates = servers.values().filter(|s| s.in_config == Some(Role::Observer) && running(s) && alive(s)).count();
    // Documented reason a leaver stays: it is a voter whose removal would take the voters below
    // min_voters (or to none), and no synced server can take its place.
    let stuck_at_min_voters = |id: &u32| voters.contains(id) && v - 1 < policy.min_voters && candidates == 0;
    prop_assert!(
        leaving.iter().all(stuck_at_min_voters),
        "leaving members {:?} left in the config ({} voters): {:?}",
        leaving,
        v,
        skipped
    );
    prop_assert!(
        servers.values().all(|s| s.in_config.is_some() || !running(s) || leaving_inst(s)),
        "a running joiner was never added: {:?}",
        skipped
    );
    // Voters wanted: the target, but no more than the largest odd number of members that run or
    // may come back (configured, held by nobody, not retired).
    let eligible = servers
        .values()
        .filter(|s| (s.in_config.is_some() && s.inst.is_none() && !retired) || (running(s) && !leaving_inst(s)))
        .count();
    let want = policy.target_voters.min(largest_odd_at_most(eligible)).max(1);
    // Documented exceptions: above the want only at the min_voters floor; below it only when the
    // synced candidates cannot make an odd count (the planner waits for one more).
    let floor = v > want && v <= policy.min_voters;
    let waiting_for_one_more = v < want && largest_odd_at_most(v + candidates) <= v;
    prop_assert!(
        v == want || floor || waiting_for_one_more,
        "{} voters {:?}, {} wanted ({} eligible, {} candidates): {:?}",
        v,
        voters,
        want,
        eligible,
        candidates,
        skipped
    );
    prop_assert!(obs.leader().is_some());
    Ok(())
}
