//! Scale-in: a leaving member is removed and its agent ends; a backend that does not answer
//! removes nobody; ids of terminated instances go back to the pool.

use std::time::Duration;

use zkpilot_core::model::{InstanceState, ServerId};
use zkpilot_runtime::agent::PassEnd;
use zkpilot_runtime::status::Phase;
use zkpilot_testkit::FIRST_ZXID;

use crate::harness::{World, config, inst};

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
