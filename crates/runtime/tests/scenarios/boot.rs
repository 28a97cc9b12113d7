//! Boot: restart on local state, genesis and its marker, joining, and the refusals that leave
//! local files alone.

use zkpilot_core::model::{InstanceState, Role, ServerId};
use zkpilot_core::observed::Mode;
use zkpilot_runtime::status::Phase;

use crate::harness::{CLUSTER, World, addr, client, config, inst, marker, spec};

/// A member whose local state lists it restarts its server on that state, without any reconfig.
#[tokio::test(start_paused = true)]
async fn member_with_intact_state_restarts_as_is() {
    let w = World::serving(3, 0);
    let mut node = w.member(3);
    node.pass().await;
    assert_eq!((node.process.starts(), w.zk.mode(ServerId(3))), (1, Mode::Follower));
    assert_eq!(node.phase(), Phase::Member);
    assert!(w.zk.reconfigs().is_empty());
    assert_eq!(w.backend.count("create_cluster_marker"), 0);
}

/// With intact local state a member restarts its server although every backend call fails.
#[tokio::test(start_paused = true)]
async fn boot_with_intact_local_state_while_every_backend_call_fails() {
    // The data plane must not wait for the control plane, and an outage is no reason to exit.
    let w = World::serving(3, 0);
    let mut node = w.member(3);
    w.backend.fail_every_call();
    let end = node.try_pass().await;
    assert!(end.is_ok(), "a backend outage at boot ended the agent: {end:?}");
    node.passes(3).await;
    assert_eq!(node.process.starts(), 1, "started from local state");
    assert_eq!(w.zk.mode(ServerId(3)), Mode::Follower, "and rejoined its quorum by itself");
    assert!(w.backend.calls().iter().all(|c| c.failed), "nothing reached the backend");
}

/// Three fresh agents propose exactly one marker, and all three start the ensemble it names.
#[tokio::test(start_paused = true)]
async fn genesis_proposes_exactly_one_marker() {
    let w = World::empty();
    for n in 1..=3 {
        w.instance(n);
    }
    w.backend.set_desired(3);
    let mut nodes: Vec<_> = (1..=3).map(|n| w.agent(n)).collect();
    for _ in 0..4 {
        for node in &mut nodes {
            node.pass().await;
        }
    }
    assert_eq!(w.backend.count("create_cluster_marker"), 1);
    let m = w.backend.marker().expect("marker");
    assert_eq!(m.genesis.iter().map(|s| s.id.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(m.created_by, inst(3), "the third claim completed the set");
    assert_eq!(w.zk.config().servers.keys().map(|i| i.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    for node in &nodes {
        assert_eq!(node.process.starts(), 1);
        assert_eq!(node.phase(), Phase::Member, "agent {}: {}", node.n, node.status().detail);
        let stamp = std::fs::read_to_string(w.base(node.n).join("data/zkpilot.stamp")).expect("stamp");
        assert!(stamp.contains(&m.cluster_id), "{stamp}");
    }
}

/// A proposer that writes its marker second gets the winner's back and starts the winner's ensemble.
#[tokio::test(start_paused = true)]
async fn second_marker_writer_loses_and_follows_the_winner() {
    let w = World::empty();
    for n in 1..=3 {
        let id = w.instance(n);
        if n < 3 {
            w.backend.seed_claim(ServerId(n), &id, &addr(n));
        }
    }
    w.backend.set_desired(3);
    let rival = w.backend.clone();
    w.backend.on_next("create_cluster_marker", move || {
        rival.seed_marker(zkpilot_core::ports::ClusterMarker { cluster_id: "the-winner".into(), ..marker(&[1, 2, 3]) })
    });
    let mut node = w.agent(3);
    node.pass().await;
    assert_eq!(w.backend.marker().map(|m| m.cluster_id), Some("the-winner".into()));
    assert_eq!(node.process.starts(), 0, "a proposer starts only on the marker it reads back");
    node.pass().await;
    assert_eq!(node.process.starts(), 1);
    let stamp = std::fs::read_to_string(w.base(3).join("data/zkpilot.stamp")).expect("stamp");
    assert!(stamp.contains("the-winner"), "{stamp}");
    assert_eq!(w.backend.count("create_cluster_marker"), 1);
}

/// A marker exists but nothing serves: an instance it does not list waits, never proposing again.
#[tokio::test(start_paused = true)]
async fn marker_without_a_serving_ensemble_never_bootstraps_again() {
    let w = World::empty();
    for n in 1..=4 {
        w.instance(n);
    }
    w.backend.set_desired(4);
    w.backend.seed_marker(marker(&[1, 2, 3]));
    let mut node = w.agent(4);
    node.passes(3).await;
    assert_eq!(node.process.starts(), 0);
    assert_eq!(node.phase(), Phase::Waiting);
    assert_eq!(w.backend.count("create_cluster_marker"), 0);
    assert!(!w.base(4).join("conf/zoo.cfg").exists(), "nothing prepared");
}

/// Local data stamped for another cluster is refused, and no file below the instance's dir changes.
#[tokio::test(start_paused = true)]
async fn foreign_cluster_data_is_refused_and_nothing_on_disk_changes() {
    let w = World::serving(3, 0);
    w.seed_local_state(3, "someone-elses-cluster", &config(&[1, 2, 3], &[], 0));
    let before = w.files_of(3);
    let mut node = w.agent(3);
    let err = node.try_pass().await.expect_err("refused").to_string();
    assert!(err.contains("someone-elses-cluster") && err.contains(CLUSTER), "{err}");
    assert_eq!(w.files_of(3), before);
    assert_eq!(node.process.starts(), 0);
}

/// A base config that sets a protected key, here spelled with a `:` separator, stops the agent
/// with the line and the key before a joiner's files are written, and before a member's
/// restart changes its zoo.cfg.
#[tokio::test(start_paused = true)]
async fn a_refused_base_config_stops_the_agent_and_nothing_on_disk_changes() {
    let w = World::serving(3, 0);
    w.backend.with_state(|s| s.base_config = Some("maxClientCnxns=9\nreconfigEnabled : false\n".into()));
    w.joiner(4);
    let mut node = w.agent(4);
    let err = node.try_pass().await.expect_err("refused").to_string();
    assert!(err.contains(":2: reconfigEnabled is protected"), "{err}");
    assert!(w.files_of(4).is_empty(), "{:?}", w.files_of(4).keys());
    assert_eq!(node.process.starts(), 0);

    w.seed_local_state(3, CLUSTER, &config(&[1, 2, 3], &[], 0));
    let before = w.files_of(3);
    let mut node = w.agent(3);
    assert!(node.try_pass().await.is_err());
    assert_eq!(w.files_of(3), before);
    assert_eq!(node.process.starts(), 0);
}

/// A backend claim for another id than the local myid is refused, and nothing on disk changes.
#[tokio::test(start_paused = true)]
async fn claimed_id_other_than_myid_is_refused() {
    let w = World::serving(3, 0);
    w.backend.with_state(|s| s.claims.remove(&ServerId(3)));
    w.backend.seed_claim(ServerId(7), &inst(3), "127.0.0.3");
    w.seed_local_state(3, CLUSTER, &config(&[1, 2, 3], &[], 0));
    let before = w.files_of(3);
    let mut node = w.agent(3);
    let err = node.try_pass().await.expect_err("refused").to_string();
    assert!(err.contains('7') && err.contains("myid"), "{err}");
    assert_eq!(w.files_of(3), before);
    assert_eq!(node.process.starts(), 0);
}

/// An ensemble serves but the group has no marker (zkpilot did not create it): it is not joined.
#[tokio::test(start_paused = true)]
async fn serving_ensemble_without_marker_is_not_joined() {
    let w = World::serving(3, 0);
    w.backend.with_state(|s| s.marker = None);
    w.joiner(4);
    let mut node = w.agent(4);
    node.passes(2).await;
    assert_eq!(node.process.starts(), 0);
    assert_eq!(node.phase(), Phase::Waiting);
    assert!(node.status().detail.contains("marker"), "{}", node.status().detail);
}

/// An instance the group is already terminating never starts its server.
#[tokio::test(start_paused = true)]
async fn terminating_instance_never_starts_its_server() {
    let w = World::serving(3, 0);
    let id = w.instance(4);
    w.backend.set_state(&id, InstanceState::Terminating);
    let mut node = w.agent(4);
    node.passes(3).await;
    assert_eq!(node.process.starts(), 0);
    assert_eq!(node.phase(), Phase::Waiting);
}

/// A fresh instance starts as a non-voting follower and, holding the lease, adds itself as observer.
#[tokio::test(start_paused = true)]
async fn fresh_instance_joins_and_is_added_as_observer() {
    let w = World::serving(3, 0);
    w.instance(4);
    w.backend.set_desired(4);
    let mut node = w.agent(4);
    node.until(4, "a member", |s| s.phase == Phase::Member).await;
    let changes = w.zk.reconfigs();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].joining, vec![spec(4, Role::Observer)]);
    assert_eq!(node.status().role, Some(Role::Observer));
    assert_eq!(node.status().counters.reconfigs_applied, 1);
    assert_eq!(w.zk.count("confirm_write"), 1);
    assert_eq!(w.backend.claim_of(&inst(4)), Some(ServerId(4)));
}

/// A joiner restarted before it was added rejoins through the committed config (a fresh joiner file).
#[tokio::test(start_paused = true)]
async fn joiner_restarted_before_it_was_added_rejoins() {
    let w = World::serving(3, 0);
    w.instance(4);
    w.backend.set_desired(4);
    w.backend.set_lease(&inst(1), u64::MAX);
    let mut node = w.agent(4);
    node.pass().await;
    assert_eq!((node.process.starts(), node.phase()), (1, Phase::Joining));
    assert!(w.zk.reconfigs().is_empty(), "another agent holds the lease");
    let mut node = node.restart(&w).await;
    node.pass().await;
    assert_eq!(node.process.starts(), 1);
    let zoo_cfg = std::fs::read_to_string(w.base(4).join("conf/zoo.cfg")).expect("zoo.cfg");
    assert!(zoo_cfg.contains("zoo.cfg.dynamic.rejoin"), "{zoo_cfg}");
    let rejoin = std::fs::read_to_string(w.base(4).join("conf/zoo.cfg.dynamic.rejoin")).expect("rejoin file");
    assert_eq!(rejoin.lines().count(), 4, "the committed config plus itself: {rejoin}");
    assert_eq!(node.phase(), Phase::Joining);
    w.backend.set_lease(&inst(1), 0);
    node.until(3, "a member", |s| s.phase == Phase::Member).await;
}

/// A claim that fails once (a backend blip) is retried in the next pass; the agent does not end.
#[tokio::test(start_paused = true)]
async fn failed_claim_is_retried_in_the_next_pass() {
    let w = World::serving(3, 0);
    w.instance(4);
    w.backend.set_desired(4);
    w.backend.fail_next("claim_id", 1);
    let mut node = w.agent(4);
    let first = node.try_pass().await;
    assert!(first.is_ok(), "a failed claim ended the agent: {first:?}");
    node.until(3, "a member", |s| s.phase == Phase::Member).await;
}

/// Slot mode: a replacement takes over the lost slot and restarts the same server on its data, no reconfig.
#[tokio::test(start_paused = true)]
async fn slot_replacement_restarts_the_same_server_on_the_slot_storage() {
    let w = World::serving(3, 0);
    let slots = w.dir.path().join("volumes");
    w.backend.set_slot_root(&slots);
    w.backend.with_state(|s| {
        for n in 1..=3 {
            let record =
                zkpilot_testkit::SlotRecord { instance: inst(n), address: addr(n), zone: format!("zone-{}", n % 3) };
            s.slots.insert(ServerId(n), record);
        }
        s.claims.clear();
    });
    let layout = zkpilot_zk::files::Layout::new(slots.join("slots/3"));
    let stamp = zkpilot_zk::files::Stamp { cluster_id: CLUSTER.into(), server_id: ServerId(3) };
    zkpilot_zk::files::prepare_new(&layout, &stamp, &[], &config(&[1, 2, 3], &[], 0), false).expect("slot data");
    w.backend.set_state(&inst(3), InstanceState::Terminated);
    w.zk.stop(ServerId(3));
    w.backend.add_instance(&inst(9).0, &addr(9), "zone-0");
    let mut cfg = w.config(9, "");
    cfg.cluster.identity = zkpilot_runtime::config::IdentityMode::Slot;
    let mut node = w.agent_from(cfg, ServerId(3), &client(3));
    node.until(3, "a member", |s| s.phase == Phase::Member).await;
    let s = node.status();
    assert_eq!((s.server_id, s.address.as_str()), (Some(ServerId(3)), "127.0.0.3"));
    assert_eq!(node.process.launches()[0].base, slots.join("slots/3"));
    assert!(w.zk.reconfigs().is_empty());
}

/// A swap whose answer was lost (what removing the leader looks like): it is read back and
/// confirmed through the servers that stay only, never through the one leaving.
#[tokio::test(start_paused = true)]
async fn lost_answer_of_a_swap_is_read_back_and_confirmed_without_the_leaving_server() {
    let w = World::serving(3, 0);
    w.joiner(4);
    w.backend.set_state(&inst(2), InstanceState::Terminating);
    w.zk.answer_next([zkpilot_testkit::ReconfigAnswer::CommitThenConnectionLoss]);
    let mut node = w.member(1);
    node.pass().await;
    assert_eq!(w.zk.config().voter_count(), 3);
    let calls = w.zk.calls();
    let from = calls.iter().position(|c| c.method == "reconfig").expect("a reconfig");
    let after: Vec<_> = calls[from + 1..]
        .iter()
        .filter(|c| c.method == "committed_config" || c.method == "confirm_write")
        .map(|c| (c.method, c.args.clone()))
        .collect();
    assert!(after.iter().any(|(m, _)| *m == "committed_config"), "read back: {after:?}");
    assert!(after.iter().any(|(m, _)| *m == "confirm_write"), "confirmed: {after:?}");
    assert!(after.iter().all(|(_, a)| !a.contains(&format!("{}:", addr(2)))), "{after:?}");
}

/// A terminating voter is swapped for a synced joiner in one reconfig: the voter count never dips.
#[tokio::test(start_paused = true)]
async fn terminating_voter_is_swapped_for_a_synced_joiner_in_one_reconfig() {
    let w = World::serving(3, 0);
    w.joiner(4);
    w.backend.set_state(&inst(2), InstanceState::Terminating);
    let mut node = w.member(1);
    node.pass().await;
    let changes = w.zk.reconfigs();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].leaving.clone(), changes[0].joining.clone()),
        (vec![ServerId(2)], vec![spec(4, Role::Participant)])
    );
    assert_eq!(w.zk.config().voter_count(), 3);
    // The confirming write goes through servers that stay: a removed leader stalls requests sent
    // to it until its next quorum check, and it is stopped only once this write has committed.
    let confirms: Vec<String> =
        w.zk.calls().into_iter().filter(|c| c.method == "confirm_write").map(|c| c.args).collect();
    assert!(!confirms.is_empty() && confirms.iter().all(|c| !c.contains(&format!("{}:", addr(2)))), "{confirms:?}");
}
