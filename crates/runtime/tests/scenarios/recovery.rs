//! Quorum loss: a survivor that can never re-form its quorum fences itself, and stays fenced
//! across agent restarts; a backend outage is not a quorum loss.

use zkpilot_core::model::{InstanceState, ServerId};
use zkpilot_runtime::status::Phase;

use crate::harness::{Node, World, inst};

/// Member 3 of three serves; then server 1's instance is terminated and server 2's is not known
/// to the group any more, both servers down: too few voters alive to ever re-form the quorum.
async fn lose_two_voters(w: &World) -> Node {
    let mut node = w.member(3);
    node.pass().await;
    assert_eq!(node.phase(), Phase::Member);
    w.zk.stop(ServerId(1));
    w.zk.stop(ServerId(2));
    w.backend.set_state(&inst(1), InstanceState::Terminated);
    w.backend.with_state(|s| {
        s.instances.remove(&inst(2));
        s.claims.remove(&ServerId(2));
    });
    node
}

/// Too few voters alive for the debounce time: the survivor stops its server, copies its data, fences.
#[tokio::test(start_paused = true)]
async fn survivor_fences_itself_when_too_few_voters_are_alive() {
    let w = World::serving(3, 0);
    let mut node = lose_two_voters(&w).await;
    node.pass().await;
    assert!(node.process.running(), "not before the debounce time");
    w.clock.advance(10_000);
    node.pass().await;
    assert_eq!(node.phase(), Phase::Recovering);
    assert_eq!((node.process.stops(), node.process.running()), (1, false));
    assert!(w.base(3).join("recovery.fence.json").exists());
    assert_eq!(node.status().counters.fences, 1);
}

/// A fenced survivor whose agent restarts finds its fence on disk and keeps its server stopped.
#[tokio::test(start_paused = true)]
async fn fenced_survivor_restarted_stays_stopped() {
    let w = World::serving(3, 0);
    let mut node = lose_two_voters(&w).await;
    node.pass().await;
    w.clock.advance(10_000);
    node.pass().await;
    assert_eq!(node.phase(), Phase::Recovering);
    let mut node = node.restart(&w).await;
    for _ in 0..5 {
        node.pass().await;
        w.clock.advance(2_000);
    }
    assert_eq!(node.process.starts(), 0, "never started while fenced");
    assert_eq!(node.phase(), Phase::Recovering);
    assert!(w.base(3).join("recovery.fence.json").exists());
    assert!(w.backend.count("put_survivor_report") >= 1);
    assert!(w.backend.snapshot().recovery_decision.is_none(), "server 2 is not confirmed gone");
}

/// A backend outage longer than the debounce time is no quorum loss: the server runs, nothing is fenced.
#[tokio::test(start_paused = true)]
async fn backend_outage_after_boot_keeps_the_server_running() {
    let w = World::serving(3, 0);
    let mut node = w.member(3);
    node.pass().await;
    w.backend.fail_every_call();
    for _ in 0..5 {
        node.pass().await;
        w.clock.advance(5_000);
    }
    assert!(node.process.running());
    assert_eq!(node.process.stops(), 0);
    assert!(!w.base(3).join("recovery.fence.json").exists());
    assert!(w.zk.reconfigs().is_empty());
}

/// With the other voters confirmed gone the fenced survivor decides, rebuilds alone and starts.
#[tokio::test(start_paused = true)]
async fn sole_survivor_with_the_others_confirmed_gone_rebuilds_alone() {
    let w = World::serving(3, 0);
    let mut node = lose_two_voters(&w).await;
    let gone = w.instance(2);
    w.backend.seed_claim(ServerId(2), &gone, "127.0.0.2");
    w.backend.set_state(&gone, InstanceState::Terminated);
    node.pass().await;
    w.clock.advance(10_000);
    node.pass().await;
    assert_eq!(node.process.stops(), 1, "fenced");
    node.until(4, "rebuilt", |s| s.counters.recoveries == 1).await;
    let decision = w.backend.snapshot().recovery_decision.expect("decided");
    assert_eq!((decision.survivor, decision.lost.clone()), (ServerId(3), vec![ServerId(1), ServerId(2)]));
    assert_eq!(node.process.starts(), 2, "started again, alone");
    let zoo_cfg = std::fs::read_to_string(w.base(3).join("conf/zoo.cfg")).expect("zoo.cfg");
    assert!(zoo_cfg.contains("zoo.cfg.dynamic.recovery"), "{zoo_cfg}");
    assert!(!w.base(3).join("recovery.fence.json").exists());
}

/// A backend outage hides the peers but is not published as a quorum loss.
#[tokio::test(start_paused = true)]
async fn backend_outage_is_not_published_as_quorum_loss() {
    let w = World::serving(3, 0);
    let mut node = w.member(3);
    node.pass().await;
    w.backend.fail_every_call();
    for _ in 0..3 {
        w.clock.advance(10_000);
        node.pass().await;
    }
    assert_ne!(node.phase(), Phase::QuorumLost, "{}", node.status().detail);
}
