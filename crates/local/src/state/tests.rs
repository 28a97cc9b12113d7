//! Claims under contention, the marker and the lease.

use zkpilot_core::model::InstanceId;
use zkpilot_core::ports::ClusterMarker;

use super::*;

fn spec() -> GroupSpec {
    GroupSpec {
        desired: 3,
        net: "127.0.9".into(),
        zones: vec!["a".into()],
        agent_exe: "/bin/true".into(),
        zookeeper_install: "/usr/share/java".into(),
        java: None,
        target_voters: 3,
        min_voters: 1,
        heap_mb: 128,
        tick_time_ms: 2000,
        slot_mode: false,
        names_domain: None,
        unhealthy_after_ms: 120_000,
        quorum_loss_after_ms: 10_000,
        backup_interval_ms: 3_600_000,
        failure_detected_after_ms: 5_000,
        learner_sync: Default::default(),
        separate_uids: false,
        tls: false,
        cert_lifetime_s: 3600,
    }
}

#[test]
fn concurrent_claims_are_unique() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = StateDir::create(dir.path(), &spec()).expect("create");
    let handles: Vec<_> = (0..64)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || s.claim(&InstanceId(format!("i-{i}")), "a").expect("claim"))
        })
        .collect();
    let mut ids: Vec<u32> = handles.into_iter().map(|h| h.join().expect("join").0).collect();
    ids.sort();
    assert_eq!(ids, (1..=64).collect::<Vec<_>>());
    // Idempotent for a holder; a released id is reused.
    assert_eq!(
        s.claim(&InstanceId("i-5".into()), "a").expect("again"),
        s.claim(&InstanceId("i-5".into()), "a").expect("again")
    );
    let (id, c) = s.claims().expect("claims").into_iter().next().expect("one");
    s.release(id, &c.instance).expect("release");
    assert_eq!(s.claim(&InstanceId("new".into()), "b").expect("claim"), id);
}

#[test]
fn marker_is_written_once_and_lease_is_exclusive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = StateDir::create(dir.path(), &spec()).expect("create");
    let m = |who: &str| ClusterMarker {
        cluster_id: who.into(),
        genesis: vec![],
        created_by: InstanceId(who.into()),
        created_ms: 1,
        restored_from: None,
    };
    assert_eq!(s.create_marker(&m("first")).expect("create").cluster_id, "first");
    assert_eq!(s.create_marker(&m("second")).expect("create").cluster_id, "first");
    let (a, b) = (InstanceId("a".into()), InstanceId("b".into()));
    assert!(s.acquire_lease(&a, 1000, 0).expect("lease"));
    assert!(!s.acquire_lease(&b, 1000, 500).expect("lease"));
    assert!(s.acquire_lease(&a, 1000, 500).expect("renew"));
    assert!(s.acquire_lease(&b, 1000, 1600).expect("expired"));
}
