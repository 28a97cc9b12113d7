//! Supervision and the throttles that follow the clock: restarts with backoff, lifecycle
//! heartbeats, unhealthy reports.

use zkpilot_core::model::{LifecycleHook, ServerId};
use zkpilot_core::observed::Mode;

use crate::harness::{World, inst};

/// A crashed server is restarted after 1 s, then 2 s after the next crash, as the manual clock says.
#[tokio::test(start_paused = true)]
async fn crashed_server_is_restarted_with_backoff_following_the_clock() {
    let w = World::serving(3, 0);
    let mut node = w.member(3);
    node.pass().await;
    assert_eq!(node.process.starts(), 1);
    for (round, backoff_ms) in [(2, 1000), (3, 2000)] {
        node.process.exit(1);
        node.pass().await;
        assert_eq!(node.process.starts(), round - 1, "not at once");
        w.clock.advance(backoff_ms - 1);
        node.pass().await;
        assert_eq!(node.process.starts(), round - 1, "not before {backoff_ms} ms");
        w.clock.advance(1);
        node.pass().await;
        assert_eq!(node.process.starts(), round, "after {backoff_ms} ms");
        assert_eq!(w.zk.mode(ServerId(3)), Mode::Follower);
    }
    assert_eq!(node.status().counters.server_restarts, 2);
}

/// A server that ran a long time before it crashed restarts after the shortest delay again.
#[tokio::test(start_paused = true)]
async fn backoff_starts_over_after_a_long_run() {
    let w = World::serving(3, 0);
    let mut node = w.member(3);
    node.pass().await;
    for _ in 0..3 {
        node.process.kill(9);
        node.pass().await;
        w.clock.advance(10_000);
        node.pass().await;
    }
    assert_eq!(node.process.starts(), 4);
    w.clock.advance(120_000);
    node.process.kill(9);
    node.pass().await;
    w.clock.advance(1000);
    node.pass().await;
    assert_eq!(node.process.starts(), 5, "1 s after a server that ran fine");
}

/// Lifecycle heartbeats for a waiting launch are sent once a minute by the clock, not every pass.
#[tokio::test(start_paused = true)]
async fn lifecycle_heartbeats_are_throttled_by_the_clock() {
    let w = World::serving(3, 0);
    let waiting = w.joiner(4);
    w.zk.stop(ServerId(4));
    w.backend.set_hook(&waiting, Some(LifecycleHook::Launching));
    let mut node = w.member_with(1, "[policy]\nunhealthy_after_ms = 0\n");
    node.pass().await;
    assert_eq!(w.backend.count("lifecycle_heartbeat"), 1);
    for _ in 0..5 {
        w.clock.advance(10_000);
        node.pass().await;
    }
    assert_eq!(w.backend.count("lifecycle_heartbeat"), 1, "50 s after the first");
    w.clock.advance(10_000);
    node.pass().await;
    assert_eq!(w.backend.count("lifecycle_heartbeat"), 2, "60 s after the first");
}

/// A member down past `unhealthy_after_ms` is reported once, then at most once per interval.
#[tokio::test(start_paused = true)]
async fn unhealthy_report_is_sent_once_per_interval() {
    let w = World::serving(3, 0);
    let mut node = w.member_with(1, "[policy]\nunhealthy_after_ms = 5000\n");
    node.pass().await;
    w.zk.stop(ServerId(2));
    node.pass().await;
    w.clock.advance(5000);
    node.pass().await;
    assert_eq!(w.backend.snapshot().unhealthy, vec![inst(2)]);
    for _ in 0..10 {
        w.clock.advance(5000);
        node.pass().await;
    }
    assert_eq!(w.backend.count("report_unhealthy"), 1, "50 s after the first report");
    w.clock.advance(10_000);
    node.pass().await;
    assert_eq!(w.backend.count("report_unhealthy"), 2, "60 s after the first report");
    assert_eq!(node.status().counters.unhealthy_reports, 2);
}
