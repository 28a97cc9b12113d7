//! Property tests of the agent's pure step: the boot decision never bootstraps over an ensemble
//! that exists and never joins or starts genesis without the marker; the phase of a running agent
//! never demotes a member on an unreadable config and never ends the agent without a config that
//! was read.

use proptest::prelude::*;
use zkpilot_core::agent::phase::{Listed, Phase, Seen, Verdict, verdict};
use zkpilot_core::boot::{self, BootInputs, Fresh, WithLocal};
use zkpilot_core::model::{EnsembleConfig, InstanceId, Role, ServerId, ServerSpec};
use zkpilot_core::ports::ClusterMarker;

fn spec(id: u32, host: u32) -> ServerSpec {
    ServerSpec::loopback(id, host, Role::Participant)
}

fn config(ids: &[u32]) -> EnsembleConfig {
    let mut c = EnsembleConfig { version: 0x1_0000_0000, ..EnsembleConfig::default() };
    for &id in ids {
        c.servers.insert(ServerId(id), spec(id, id));
    }
    c
}

fn marker(ids: &[u32]) -> ClusterMarker {
    ClusterMarker {
        cluster_id: "c".into(),
        genesis: ids.iter().map(|&id| spec(id, id)).collect(),
        created_by: InstanceId("i-1".into()),
        created_ms: 0,
        restored_from: None,
    }
}

/// Everything a boot might see, as plain data.
#[derive(Debug, Clone)]
struct World {
    me: u32,
    /// This server's host differs from its id's usual one (an id still configured elsewhere).
    moved: bool,
    serving: Option<Vec<u32>>,
    marker: Option<Vec<u32>>,
    claimed: Vec<u32>,
    desired: usize,
    target: usize,
    leaving: bool,
    restoring: bool,
}

fn ids() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::btree_set(1u32..8, 0..6).prop_map(|s| s.into_iter().collect())
}

fn world() -> impl Strategy<Value = World> {
    (
        1u32..8,
        prop::bool::weighted(0.1),
        prop::option::of(ids()),
        prop::option::of(ids()),
        ids(),
        (0usize..8, prop_oneof![Just(1usize), Just(3), Just(5)]),
        (prop::bool::weighted(0.1), any::<bool>()),
    )
        .prop_map(|(me, moved, serving, marker, claimed, (desired, target), (leaving, restoring))| World {
            me,
            moved,
            serving,
            marker,
            claimed,
            desired,
            target,
            leaving,
            restoring,
        })
}

fn phase_of(v: &Verdict) -> Option<&Phase> {
    match v {
        Verdict::Removed => None,
        Verdict::Stay { phase, .. } => Some(phase),
    }
}

fn phase() -> impl Strategy<Value = Phase> {
    prop_oneof![
        Just(Phase::Booting),
        Just(Phase::Waiting),
        Just(Phase::Joining),
        Just(Phase::Member),
        Just(Phase::QuorumLost),
        Just(Phase::Recovering),
        Just(Phase::Leaving),
    ]
}

fn listed() -> impl Strategy<Value = Listed> {
    prop_oneof![Just(Listed::Yes), Just(Listed::No), Just(Listed::Unknown)]
}

proptest! {
    #[test]
    fn boot_never_bootstraps_over_an_ensemble_and_never_joins_without_a_marker(w in world(), lists_me in any::<bool>()) {
        let me = spec(w.me, if w.moved { w.me + 100 } else { w.me });
        let serving = w.serving.as_deref().map(config);
        let marker = w.marker.as_deref().map(marker);
        let claimed: Vec<ServerSpec> = w.claimed.iter().map(|&id| spec(id, id)).collect();
        let inputs = BootInputs {
            me: &me,
            serving_config: serving.as_ref(),
            marker: marker.as_ref(),
            claimed: &claimed,
            desired_instances: w.desired,
            target_voters: w.target,
            leaving: w.leaving,
            restoring: w.restoring,
        };
        match boot::fresh(&inputs) {
            Fresh::Join { config, marker: m } => {
                prop_assert!(serving.is_some(), "a join needs an ensemble that serves");
                prop_assert_eq!(Some(&m), marker.as_ref(), "and carries the group's marker");
                prop_assert_eq!(config.servers.get(&me.id).map(|s| s.role), Some(Role::Participant));
                prop_assert_eq!(config.version, 0);
            }
            Fresh::Genesis { config, marker: m } => {
                prop_assert!(serving.is_none(), "never a genesis over a serving ensemble");
                prop_assert_eq!(Some(&m), marker.as_ref());
                prop_assert!(m.genesis.contains(&me), "only a server the marker lists starts genesis");
                prop_assert_eq!(config.servers.len(), m.genesis.len());
            }
            Fresh::ProposeGenesis(members) => {
                prop_assert!(serving.is_none() && marker.is_none(), "a proposal only before anything exists");
                prop_assert!(!members.is_empty());
                if w.restoring {
                    prop_assert_eq!(members.len(), 1, "a restore is born as one server");
                }
            }
            Fresh::Wait(_) => {}
        }
        match boot::with_local(&inputs, lists_me) {
            WithLocal::StartAsIs => {
                prop_assert!(lists_me && !w.leaving);
                prop_assert!(serving.as_ref().is_none_or(|c| c.servers.contains_key(&me.id)));
            }
            WithLocal::Rejoin(c) => {
                prop_assert!(serving.is_some() && !w.leaving);
                prop_assert!(c.servers.contains_key(&me.id));
            }
            WithLocal::Wait(_) => prop_assert!(w.leaving || (!lists_me && serving.is_none())),
        }
        if w.leaving {
            prop_assert!(matches!(boot::fresh(&inputs), Fresh::Wait(_)), "a terminating instance never starts");
        }
    }

    #[test]
    fn a_running_agent_ends_only_on_a_read_config_without_it(
        leaving in any::<bool>(), listed in listed(), lost in any::<bool>(), answered in any::<bool>(),
        previous in phase(),
    ) {
        let v = verdict(&Seen { leaving, listed, quorum_lost: lost, backend_answered: answered }, &previous);
        if phase_of(&v) == Some(&Phase::QuorumLost) {
            prop_assert!(answered && lost, "quorum loss is said only from an answered backend");
        }
        prop_assert_eq!(v == Verdict::Removed, leaving && listed == Listed::No);
        if listed == Listed::Unknown && !(lost && answered) && !leaving && previous == Phase::Member {
            prop_assert_eq!(phase_of(&v), Some(&Phase::Member), "one unreadable config never demotes a member");
        }
        if listed == Listed::Yes && !leaving {
            prop_assert_eq!(phase_of(&v), Some(&Phase::Member));
        }
        prop_assert!(phase_of(&v) != Some(&Phase::Booting) && phase_of(&v) != Some(&Phase::Waiting));
    }
}
