//! Restart orders: the rolling restart of a running ensemble, and the fixed-membership strategy
//! (called "static membership" before) for ensembles without dynamic reconfiguration
//! (ZooKeeper 3.4, or `reconfigEnabled=false`).
//!
//! A fixed-membership change rewrites every server's list and restarts each server to load it.
//! The rolling order keeps a quorum of the *old* list up for as long as it is the one in force:
//! new servers start first (with the new list; the leader syncs them as non-voting followers),
//! then the servers that stay are restarted one at a time with the new list — observers, then
//! followers, the leader last, while the leaving servers still run and still count in the old
//! list's quorum — and only then are the leavers stopped. Restarting the leader costs one
//! election; that blip, once per change, is what the reconfig strategy avoids entirely.
//!
//! A leaving *leader* is stopped first instead: a new server ignores election notifications
//! naming a leader outside its list ("Ignoring notification for non-cluster member"), so it could
//! never join while that leader leads. Stopping it costs an election among the old list, and the
//! old list's quorum margin shrinks by one for the rest of the change (in a 3-server ensemble the
//! next restart then interrupts service until the restarted server is back) — the price of
//! replacing a leader without reconfig.
//! Exhibitor's default, every server restarted at once, costs a full outage.

use serde::{Deserialize, Serialize};

use crate::model::{EnsembleConfig, Role, ServerId};

/// One step of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", content = "id", rename_all = "snake_case")]
pub enum Step {
    /// Start a new server with the target list.
    Start(ServerId),
    /// Restart a server with the target list; the next step waits until it serves again.
    Restart(ServerId),
    /// Stop a server that is not in the target list.
    Stop(ServerId),
}

/// How a fixed-membership change is rolled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// One server at a time, leader last (see the module docs).
    Rolling,
    /// Everything stopped, then everything started with the new list (Exhibitor's default).
    AllAtOnce,
}

/// Restart order of the members `(id, role, is_leader)`: observers, then followers, the leader
/// last; ids ascending within each.
pub fn restart_order(members: &[(ServerId, Role, bool)]) -> Vec<ServerId> {
    let mut ranked: Vec<(u8, ServerId)> = members
        .iter()
        .map(|(id, role, leader)| {
            let rank = match (leader, role) {
                (true, _) => 2,
                (false, Role::Observer) => 0,
                (false, Role::Participant) => 1,
            };
            (rank, *id)
        })
        .collect();
    ranked.sort();
    ranked.into_iter().map(|(_, id)| id).collect()
}

/// The steps that move a fixed-membership ensemble from `current` to `target`.
pub fn fixed_rollout(
    current: &EnsembleConfig,
    target: &EnsembleConfig,
    leader: Option<ServerId>,
    strategy: Strategy,
) -> Vec<Step> {
    let joining = target.servers.keys().filter(|id| !current.servers.contains_key(id));
    let leaving = current.servers.keys().filter(|id| !target.servers.contains_key(id));
    match strategy {
        Strategy::Rolling => {
            let leader_leaves = leader.filter(|l| current.servers.contains_key(l) && !target.servers.contains_key(l));
            let staying: Vec<(ServerId, Role, bool)> = current
                .servers
                .values()
                .filter(|s| target.servers.contains_key(&s.id))
                .map(|s| (s.id, s.role, Some(s.id) == leader))
                .collect();
            leader_leaves
                .map(Step::Stop)
                .into_iter()
                .chain(joining.map(|id| Step::Start(*id)))
                .chain(restart_order(&staying).into_iter().map(Step::Restart))
                .chain(leaving.filter(|id| Some(**id) != leader_leaves).map(|id| Step::Stop(*id)))
                .collect()
        }
        Strategy::AllAtOnce => current
            .servers
            .keys()
            .map(|id| Step::Stop(*id))
            .chain(target.servers.keys().map(|id| Step::Start(*id)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};

    use super::*;
    use crate::model::ServerSpec;

    fn config(ids: &[(u8, Role)]) -> EnsembleConfig {
        let mut c = EnsembleConfig::default();
        for (n, role) in ids {
            let id = ServerId(u32::from(*n));
            c.servers.insert(
                id,
                ServerSpec {
                    id,
                    host: format!("127.0.0.{n}"),
                    quorum_port: 2888,
                    election_port: 3888,
                    role: *role,
                    client_host: format!("127.0.0.{n}"),
                    client_port: 2181,
                },
            );
        }
        c
    }

    #[test]
    fn replacing_a_follower_starts_the_new_one_first_restarts_the_leader_last_stops_the_old_one_at_the_end() {
        let current = config(&[(1, Role::Participant), (2, Role::Participant), (3, Role::Participant)]);
        let target = config(&[(1, Role::Participant), (2, Role::Participant), (4, Role::Participant)]);
        let steps = fixed_rollout(&current, &target, Some(ServerId(1)), Strategy::Rolling);
        assert_eq!(
            steps,
            [Step::Start(ServerId(4)), Step::Restart(ServerId(2)), Step::Restart(ServerId(1)), Step::Stop(ServerId(3))]
        );
        let steps = fixed_rollout(&current, &target, Some(ServerId(3)), Strategy::Rolling);
        assert_eq!(
            steps,
            [Step::Stop(ServerId(3)), Step::Start(ServerId(4)), Step::Restart(ServerId(1)), Step::Restart(ServerId(2))],
            "a leaving leader is stopped first: a new server cannot follow a leader outside its list"
        );
        let all = fixed_rollout(&current, &target, Some(ServerId(1)), Strategy::AllAtOnce);
        assert_eq!(all.len(), 6);
        assert!(all[..3].iter().all(|s| matches!(s, Step::Stop(_))));
    }

    #[test]
    fn observers_then_followers_then_the_leader() {
        let m = [
            (ServerId(1), Role::Participant, true),
            (ServerId(2), Role::Participant, false),
            (ServerId(5), Role::Observer, false),
            (ServerId(3), Role::Participant, false),
        ];
        assert_eq!(restart_order(&m), [ServerId(5), ServerId(2), ServerId(3), ServerId(1)]);
    }

    proptest! {
        /// Rolling: every target member is started or restarted exactly once, new ones before any
        /// restart, the leader's restart last among restarts, leavers stopped only at the end —
        /// except a leaving leader, stopped before anything else.
        #[test]
        fn rolling_rollout_shape(cur in proptest::collection::btree_set(1u8..12, 1..8),
                                 tgt in proptest::collection::btree_set(1u8..12, 1..8),
                                 leader_pick in any::<proptest::sample::Index>()) {
            let current = config(&cur.iter().map(|n| (*n, Role::Participant)).collect::<Vec<_>>());
            let target = config(&tgt.iter().map(|n| (*n, Role::Participant)).collect::<Vec<_>>());
            let ids: Vec<&u8> = cur.iter().collect();
            let leader = ServerId(u32::from(*ids[leader_pick.index(ids.len())]));
            let steps = fixed_rollout(&current, &target, Some(leader), Strategy::Rolling);
            let touched: Vec<ServerId> = steps.iter().filter_map(|s| match s {
                Step::Start(id) | Step::Restart(id) => Some(*id),
                Step::Stop(_) => None,
            }).collect();
            let mut sorted = touched.clone();
            sorted.sort();
            prop_assert_eq!(sorted, target.servers.keys().copied().collect::<Vec<_>>());
            let kind = |s: &Step| match s { Step::Start(_) => 0, Step::Restart(_) => 1, Step::Stop(_) => 2 };
            let rest = if !target.servers.contains_key(&leader) {
                prop_assert_eq!(steps.first(), Some(&Step::Stop(leader)));
                &steps[1..]
            } else {
                &steps[..]
            };
            prop_assert!(rest.windows(2).all(|w| kind(&w[0]) <= kind(&w[1])), "{:?}", steps);
            let restarts: Vec<ServerId> = steps.iter().filter_map(|s| match s { Step::Restart(id) => Some(*id), _ => None }).collect();
            if restarts.contains(&leader) {
                prop_assert_eq!(restarts.last(), Some(&leader));
            }
        }
    }
}
