use std::time::Duration;

use zkpilot_core::model::{InstanceId, InstanceState, LifecycleHook, ServerId};
use zkpilot_core::ports::{ClusterMarker, Coordination, Group, Identity, OperatorSettings, Publish};

use super::MemoryBackend;
use crate::Fault;

fn id(s: &str) -> InstanceId {
    InstanceId(s.to_string())
}

fn marker(cluster: &str, by: &str) -> ClusterMarker {
    ClusterMarker {
        cluster_id: cluster.into(),
        genesis: vec![],
        created_by: id(by),
        created_ms: 0,
        restored_from: None,
    }
}

#[tokio::test]
async fn claims_are_exclusive_and_idempotent_per_instance() {
    let b = MemoryBackend::new();
    let (a, c) = (b.add_instance("i-a", "127.0.0.1", "z1"), b.add_instance("i-c", "127.0.0.2", "z2"));
    assert_eq!(b.claim_id(&a, "127.0.0.1").await.expect("claim"), ServerId(1));
    assert_eq!(b.claim_id(&c, "127.0.0.2").await.expect("claim"), ServerId(2));
    assert_eq!(b.claim_id(&a, "127.0.0.1").await.expect("again"), ServerId(1), "idempotent");
    b.release_id(ServerId(1), &c).await.expect("release by non-holder");
    assert_eq!(b.claim_of(&a), Some(ServerId(1)), "only the holder releases");
    b.release_id(ServerId(1), &a).await.expect("release");
    let d = b.add_instance("i-d", "127.0.0.3", "z1");
    assert_eq!(b.claim_id(&d, "127.0.0.3").await.expect("claim"), ServerId(1), "lowest free id");
    let ids: Vec<_> = b.instances().await.expect("instances").into_iter().map(|i| (i.id.0, i.server_id)).collect();
    assert_eq!(ids, vec![("i-a".into(), None), ("i-c".into(), Some(ServerId(2))), ("i-d".into(), Some(ServerId(1)))]);
}

#[tokio::test]
async fn the_first_marker_writer_wins() {
    let b = MemoryBackend::new();
    assert_eq!(b.cluster_marker().await.expect("read"), None);
    let first = b.create_cluster_marker(&marker("one", "i-a")).await.expect("create");
    let second = b.create_cluster_marker(&marker("two", "i-b")).await.expect("create");
    assert_eq!((first.cluster_id.as_str(), second.cluster_id.as_str()), ("one", "one"));
    assert_eq!(b.marker().map(|m| m.cluster_id), Some("one".into()));
}

#[tokio::test]
async fn the_lease_has_one_holder_until_it_expires_or_the_holder_terminates() {
    let b = MemoryBackend::new();
    let (a, c) = (b.add_instance("i-a", "127.0.0.1", "z"), b.add_instance("i-c", "127.0.0.2", "z"));
    assert!(b.acquire_lease(&a, 100, 1000).await.expect("lease"));
    assert!(!b.acquire_lease(&c, 100, 1050).await.expect("lease"), "held by a until 1100");
    assert!(b.acquire_lease(&a, 100, 1050).await.expect("renew"), "renewed until 1150");
    assert!(!b.acquire_lease(&c, 100, 1149).await.expect("lease"));
    assert!(b.acquire_lease(&c, 100, 1150).await.expect("expired"));
    b.set_state(&c, InstanceState::Terminated);
    assert!(b.acquire_lease(&a, 100, 1160).await.expect("holder terminated"));
    assert_eq!(b.lease(), Some((a, 1260)));
}

#[tokio::test]
async fn scripted_faults_fail_the_next_calls_then_heal() {
    let b = MemoryBackend::new();
    b.fail_next("desired_capacity", 2);
    assert!(b.desired_capacity().await.is_err());
    assert!(b.desired_capacity().await.is_err());
    assert_eq!(b.desired_capacity().await.expect("healed"), 0);
    b.fail_always("operator_settings");
    for _ in 0..3 {
        assert!(b.operator_settings().await.is_err());
    }
    b.heal("operator_settings");
    assert!(b.operator_settings().await.is_ok());
    b.fail_every_call();
    assert!(b.instances().await.is_err() && b.cluster_marker().await.is_err());
    b.heal_all();
    assert!(b.instances().await.is_ok());
    let failed: Vec<(&str, bool)> = b.calls().iter().map(|c| (c.method, c.failed)).collect();
    assert_eq!(failed[..3], [("desired_capacity", true), ("desired_capacity", true), ("desired_capacity", false)]);
    assert_eq!(b.count("operator_settings"), 4);
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_call_waits_then_fails() {
    let b = MemoryBackend::new();
    b.time_out_next("instances", Duration::from_secs(20));
    let started = tokio::time::Instant::now();
    let e = b.instances().await.expect_err("timed out");
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(started.elapsed() >= Duration::from_secs(20));
    b.script("instances", Fault::Delay(Duration::from_secs(1)), 1);
    assert!(b.instances().await.is_ok());
}

#[tokio::test]
async fn a_hook_runs_just_before_its_call_answers() {
    let b = MemoryBackend::new();
    let (a, other) = (b.add_instance("i-a", "127.0.0.1", "z"), b.add_instance("i-o", "127.0.0.2", "z"));
    let thief = b.clone();
    let taker = other.clone();
    b.on_next("acquire_lease", move || thief.set_lease(&taker, 10_000));
    assert!(!b.acquire_lease(&a, 100, 1000).await.expect("lease"), "taken just before");
    assert_eq!(b.lease().map(|l| l.0), Some(other));
}

#[tokio::test]
async fn records_are_kept() {
    let b = MemoryBackend::new();
    let a = b.add_instance("i-a", "127.0.0.1", "z");
    b.set_hook(&a, Some(LifecycleHook::Launching));
    b.complete_lifecycle(&a, LifecycleHook::Launching).await.expect("complete");
    b.set_scale_in_protection(&a, true).await.expect("protect");
    b.put_operator_settings(&OperatorSettings { paused: true, ..Default::default() }).await.expect("put");
    b.publish_status(&a, r#"{"phase":"member"}"#).await.expect("status");
    b.report_unhealthy(&a).await.expect("report");
    let s = b.snapshot();
    assert_eq!(s.instances[&a].hook, None);
    assert_eq!(s.instances[&a].protected, Some(true));
    assert_eq!(s.instances[&a].state, InstanceState::Running, "the test decides when the group reacts");
    assert!(s.operator.is_some_and(|o| o.paused));
    assert_eq!(b.status_of(&a).and_then(|v| v["phase"].as_str().map(String::from)), Some("member".into()));
    assert_eq!(s.unhealthy, vec![a.clone()]);
    b.with_state(|s| s.terminate_unhealthy = true);
    b.report_unhealthy(&a).await.expect("report");
    assert_eq!(b.snapshot().instances[&a].state, InstanceState::Terminated);
}

#[tokio::test]
async fn a_slot_is_kept_by_its_holder_and_taken_over_once_it_is_gone() {
    let b = MemoryBackend::new();
    b.set_slot_root("/slots-root");
    let (a, c) = (b.add_instance("i-a", "127.0.0.1", "z1"), b.add_instance("i-c", "127.0.0.2", "z1"));
    let sa = b.claim_slot(&a, "z1").await.expect("slot").expect("free");
    assert_eq!((sa.id, sa.address.as_str()), (ServerId(1), "127.0.0.1"));
    assert_eq!(sa.base_dir.as_deref(), Some(std::path::Path::new("/slots-root/slots/1")));
    assert_eq!(b.claim_slot(&a, "z1").await.expect("again").map(|s| s.id), Some(ServerId(1)));
    assert_eq!(b.claim_slot(&c, "z1").await.expect("slot").map(|s| s.id), Some(ServerId(2)));
    b.set_state(&a, InstanceState::Terminated);
    let d = b.add_instance("i-d", "127.0.0.9", "z1");
    let sd = b.claim_slot(&d, "z1").await.expect("slot").expect("taken over");
    assert_eq!((sd.id, sd.address.as_str()), (ServerId(1), "127.0.0.1"), "the slot keeps its address");
}

#[test]
fn it_is_a_whole_backend() {
    fn backend<B: zkpilot_core::ports::Backend + Clone>(_: &B) {}
    backend(&MemoryBackend::new());
}
