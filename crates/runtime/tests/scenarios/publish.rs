//! What the agent publishes: the membership (once per config version), its status and phase.

use std::time::Duration;

use zkpilot_core::model::Role;
use zkpilot_runtime::status::Phase;
use zkpilot_testkit::FIRST_ZXID;

use crate::harness::{World, config, inst};

/// The committed membership is published once per config version, not every pass.
#[tokio::test(start_paused = true)]
async fn membership_is_published_once_per_config_version() {
    let w = World::serving(3, 0);
    let mut node = w.member(1);
    node.passes(4).await;
    let versions: Vec<u64> = w.backend.memberships().iter().map(|c| c.version).collect();
    assert_eq!(versions, vec![FIRST_ZXID]);
    w.zk.set_config(config(&[1, 2, 3], &[], FIRST_ZXID + 5));
    node.passes(3).await;
    let versions: Vec<u64> = w.backend.memberships().iter().map(|c| c.version).collect();
    assert_eq!(versions, vec![FIRST_ZXID, FIRST_ZXID + 5]);
}

/// A failed membership publish is retried in the next pass; a version counts once the backend took it.
#[tokio::test(start_paused = true)]
async fn failed_membership_publish_is_retried() {
    let w = World::serving(3, 0);
    let mut node = w.member(1);
    w.backend.fail_next("publish_membership", 1);
    node.passes(3).await;
    assert_eq!(w.backend.count("publish_membership"), 2);
    assert_eq!(w.backend.memberships().len(), 1);
}

/// The status snapshot (local and published) shows the server, role, leader, version and members seen.
#[tokio::test(start_paused = true)]
async fn status_snapshot_reports_what_the_pass_saw() {
    let w = World::serving(3, 1);
    let mut node = w.member(4);
    node.passes(2).await;
    let s = node.status();
    assert_eq!((s.phase.clone(), s.role), (Phase::Member, Some(Role::Observer)));
    assert_eq!(s.server_id.map(|i| i.0), Some(4));
    assert_eq!(s.leader.map(|i| i.0), Some(1));
    assert_eq!(s.config_version.as_deref(), Some(format!("{FIRST_ZXID:x}").as_str()));
    assert_eq!(s.connect_string.as_deref(), Some(w.zk.config().connect_string().as_str()));
    assert_eq!(s.members.len(), 4);
    let published = w.backend.status_of(&inst(4)).expect("published");
    assert_eq!(published["phase"], "member");
    assert_eq!(published["server_id"], 4);
}

/// A pass that cannot read the committed config does not publish `Joining` for a member.
#[tokio::test(start_paused = true)]
async fn unread_config_does_not_turn_a_member_into_a_joiner() {
    // Normal for a moment during a reconfig; the demo's scale-out showed every member as a joiner.
    let w = World::serving(3, 0);
    let mut node = w.member(3);
    node.pass().await;
    assert_eq!(node.phase(), Phase::Member);
    w.zk.fail_next("committed_config", 1);
    node.pass().await;
    assert_ne!(node.phase(), Phase::Joining, "{}", node.status().detail);
    let published = w.backend.status_of(&inst(3)).expect("published");
    assert_ne!(published["phase"], "joining");
    node.pass().await;
    assert_eq!(node.phase(), Phase::Member);
}

/// A config read that times out costs the pass its config, not the agent; the next pass reads it.
#[tokio::test(start_paused = true)]
async fn timed_out_config_read_is_survived() {
    let w = World::serving(3, 0);
    let mut node = w.member(1);
    node.pass().await;
    w.zk.time_out_next("committed_config", Duration::from_secs(8));
    node.pass().await;
    assert!(node.status().config_version.is_none());
    assert!(node.process.running());
    node.pass().await;
    assert!(node.status().config_version.is_some());
}

/// A refused plan (see `zkpilot_core::agent::vet`) is visible wherever an operator looks: the
/// status JSON, `/metrics` and the status page.
#[tokio::test(start_paused = true)]
async fn a_refused_plan_shows_in_status_metrics_and_page() {
    let w = World::serving(3, 0);
    let mut node = w.member(1);
    node.pass().await;
    let clean = (*node.status()).clone();
    assert_eq!((clean.refused.as_ref(), clean.counters.plans_refused), (None, 0));
    assert!(zkpilot_runtime::api::render_metrics(&clean).contains("zkpilot_plans_refused_total 0"));
    assert!(!zkpilot_runtime::api::render_page(&clean).contains("SAFETY"));
    let mut s = clean;
    s.counters.plans_refused = 3;
    s.refused =
        Some(zkpilot_runtime::status::Refusal { violation: "plan violates `removal_cap`: 2 of 3".into(), at_ms: 1 });
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(json["refused"]["violation"], "plan violates `removal_cap`: 2 of 3");
    assert!(zkpilot_runtime::api::render_metrics(&s).contains("zkpilot_plans_refused_total 3"));
    let page = zkpilot_runtime::api::render_page(&s);
    assert!(page.contains("SAFETY: 3 plans refused") && page.contains("removal_cap"), "{page}");
}
