//! Scale-in: a leaving member is removed and its agent ends; a backend that does not answer
//! removes nobody; ids of terminated instances go back to the pool.

use std::time::Duration;

use zkpilot_core::model::{InstanceState, ServerId};
use zkpilot_runtime::agent::PassEnd;
use zkpilot_runtime::status::Phase;
use zkpilot_testkit::FIRST_ZXID;

use crate::harness::{World, addr, config, inst};

/// Removed on scale-in by the lease holder, the agent stops its server, reports `Removed` and ends.
#[tokio::test(start_paused = true)]
async fn removal_on_scale_in_ends_the_agent_after_stopping_the_server() {
    let w = World::serving(3, 1);
    let mut node = w.member(4);
    node.pass().await;
    assert_eq!(node.phase(), Phase::Member);
    w.backend.set_state(&inst(4), InstanceState::Terminating);
    w.backend.set_desired(3);
    w.backend.set_lease(&inst(1), u64::MAX);
    node.pass().await;
    assert_eq!(node.phase(), Phase::Leaving);
    assert!(node.process.running(), "serving until it is out of the config");
    w.zk.set_config(config(&[1, 2, 3], &[], FIRST_ZXID + 1));
    assert_eq!(node.pass().await, PassEnd::Removed);
    assert_eq!((node.process.stops(), node.process.running()), (1, false));
    assert_eq!(node.phase(), Phase::Removed);
}

/// A terminating observer whose agent holds the lease removes itself, then ends.
#[tokio::test(start_paused = true)]
async fn leaving_observer_removes_itself_then_ends() {
    let w = World::serving(3, 1);
    let mut node = w.member(4);
    node.pass().await;
    w.backend.set_state(&inst(4), InstanceState::Terminating);
    w.backend.set_desired(3);
    node.pass().await;
    let changes = w.zk.reconfigs();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].leaving, vec![ServerId(4)]);
    assert_eq!(node.pass().await, PassEnd::Removed);
    assert_eq!(node.process.stops(), 1);
}

/// Backend reads timing out during a scale-in remove nobody; once they answer, the removal happens.
#[tokio::test(start_paused = true)]
async fn backend_reads_timing_out_during_scale_in_remove_nobody() {
    let w = World::serving(3, 1);
    let mut node = w.member(1);
    node.pass().await;
    w.backend.set_state(&inst(4), InstanceState::Terminating);
    w.backend.set_desired(3);
    w.backend.time_out_always("instances", Duration::from_secs(10));
    w.backend.time_out_always("desired_capacity", Duration::from_secs(10));
    for _ in 0..3 {
        node.pass().await;
        w.clock.advance(500);
    }
    assert!(w.zk.reconfigs().is_empty(), "an unknown is never a reason to remove");
    assert!(node.process.running());
    assert!(node.status().plan.actions.is_empty(), "{:?}", node.status().plan);
    w.backend.heal_all();
    node.pass().await;
    assert_eq!(w.zk.reconfigs().iter().map(|c| c.leaving.clone()).collect::<Vec<_>>(), vec![vec![ServerId(4)]]);
}

/// A leaving member whose backend reads time out neither stops its server nor ends.
#[tokio::test(start_paused = true)]
async fn leaving_member_keeps_serving_while_the_backend_times_out() {
    let w = World::serving(3, 1);
    let mut node = w.member(4);
    node.pass().await;
    w.backend.set_state(&inst(4), InstanceState::Terminating);
    w.backend.time_out_always("instances", Duration::from_secs(10));
    for _ in 0..3 {
        assert_eq!(node.pass().await, PassEnd::Continue);
    }
    assert!(node.process.running());
    assert_eq!(node.process.stops(), 0);
}

/// An id whose server is out of the config and whose instance is terminated is released.
#[tokio::test(start_paused = true)]
async fn id_of_a_terminated_instance_out_of_the_config_is_released() {
    let w = World::serving(3, 0);
    let gone = w.instance(5);
    w.backend.seed_claim(ServerId(5), &gone, "127.0.0.5");
    w.backend.set_state(&gone, InstanceState::Terminated);
    let mut node = w.member(1);
    node.pass().await;
    assert_eq!(w.backend.count("release_id"), 1);
    assert_eq!(w.backend.claim_of(&gone), None);
}

/// Voters are protected from scale-in and non-voters released, where the group has protection.
#[tokio::test(start_paused = true)]
async fn scale_in_protection_follows_the_voter_role() {
    let w = World::serving(3, 1);
    w.backend.set_protected(&inst(2), Some(false));
    w.backend.set_protected(&inst(4), Some(true));
    let mut node = w.member(1);
    node.pass().await;
    let s = w.backend.snapshot();
    assert_eq!((s.instances[&inst(2)].protected, s.instances[&inst(4)].protected), (Some(true), Some(false)));
    assert_eq!(w.backend.count("set_scale_in_protection"), 2);
}

/// A leaving agent reads the config through the other servers only (a removed leader stalls
/// every request sent to it), and stops its server within moments of its removal by another
/// agent, not at its next pass: with passes 10 s apart, it is done in under 1 s. The stop is a
/// halt, after a confirming write through the others.
#[tokio::test(start_paused = true)]
async fn leaving_agent_stops_its_server_moments_after_its_removal_not_at_the_next_pass() {
    let w = World::serving(3, 1);
    let mut node = w.member_passing_every(4, 10_000);
    node.pass().await;
    w.backend.set_state(&inst(4), InstanceState::Terminating);
    w.backend.set_desired(3);
    w.backend.set_lease(&inst(1), u64::MAX);
    node.pass().await;
    assert_eq!(node.phase(), Phase::Leaving);
    w.zk.clear_calls();
    let zk = w.zk.clone();
    let removal = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        zk.set_config(config(&[1, 2, 3], &[], FIRST_ZXID + 1));
    });
    let start = tokio::time::Instant::now();
    node.agent.run(std::future::pending()).await.expect("agent ends");
    let took = start.elapsed();
    removal.await.expect("removal task");
    assert!(took < Duration::from_secs(3), "ended {took:?} after the start, the removal was at 2 s");
    assert_eq!((node.process.halts(), node.process.running()), (1, false));
    let own = format!("{}:", addr(4));
    let reads: Vec<String> =
        w.zk.calls().into_iter().filter(|c| c.method == "committed_config").map(|c| c.args).collect();
    assert!(!reads.is_empty() && reads.iter().all(|r| !r.contains(&own)), "{reads:?}");
    let confirms: Vec<String> =
        w.zk.calls().into_iter().filter(|c| c.method == "confirm_write").map(|c| c.args).collect();
    assert!(!confirms.is_empty() && confirms.iter().all(|c| !c.contains(&own)), "{confirms:?}");
}

/// An agent whose own reconfig removed its server runs the next pass at once, which stops it.
#[tokio::test(start_paused = true)]
async fn agent_that_removed_its_own_server_stops_it_without_waiting() {
    let w = World::serving(3, 1);
    let mut node = w.member_passing_every(4, 10_000);
    node.pass().await;
    w.backend.set_state(&inst(4), InstanceState::Terminating);
    w.backend.set_desired(3);
    let start = tokio::time::Instant::now();
    node.agent.run(std::future::pending()).await.expect("agent ends");
    let took = start.elapsed();
    assert_eq!(w.zk.reconfigs().iter().map(|c| c.leaving.clone()).collect::<Vec<_>>(), vec![vec![ServerId(4)]]);
    let poll = Duration::from_millis(zkpilot_core::agent::Pace::LEAVING_POLL_MS);
    assert!(took < poll, "ended {took:?} after its reconfig; the poll between passes would take {poll:?}");
    assert_eq!(node.process.halts(), 1);
}

/// Removed, but no write through the other servers commits: the server keeps running, the agent
/// stays leaving; once a write commits, it stops.
#[tokio::test(start_paused = true)]
async fn removed_server_keeps_running_until_a_write_confirms_the_new_config() {
    let w = World::serving(3, 1);
    let mut node = w.member(4);
    node.pass().await;
    w.backend.set_state(&inst(4), InstanceState::Terminating);
    w.backend.set_desired(3);
    w.backend.set_lease(&inst(1), u64::MAX);
    node.pass().await;
    w.zk.set_config(config(&[1, 2, 3], &[], FIRST_ZXID + 1));
    w.zk.fail_always("confirm_write");
    assert_eq!(node.pass().await, PassEnd::Continue);
    assert_eq!(node.phase(), Phase::Leaving);
    assert!(node.process.running(), "stopped before the new config was confirmed");
    assert!(node.status().detail.contains("not confirmed"), "{}", node.status().detail);
    w.zk.heal("confirm_write");
    assert_eq!(node.pass().await, PassEnd::Removed);
    assert!(!node.process.running());
}
