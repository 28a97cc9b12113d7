//! The operator's switches (pause, voter target), read by every agent every pass.

use zkpilot_core::model::{Role, ServerId};
use zkpilot_core::ports::OperatorSettings;

use crate::harness::World;

fn paused(on: bool) -> OperatorSettings {
    OperatorSettings { paused: on, ..Default::default() }
}

/// A paused ensemble plans but executes nothing: no lease is taken, the plan says why.
#[tokio::test(start_paused = true)]
async fn paused_agent_plans_but_takes_no_lease() {
    let w = World::serving(3, 0);
    w.joiner(4);
    w.backend.set_operator(paused(true));
    let mut node = w.member(1);
    node.passes(3).await;
    assert!(w.zk.reconfigs().is_empty());
    assert_eq!(w.backend.count("acquire_lease"), 0);
    let s = node.status();
    assert!(s.paused);
    assert!(s.plan.reconfig().is_some(), "still planned");
    assert!(s.plan.skipped.iter().any(|k| k.subject == "automation"), "{:?}", s.plan.skipped);
}

/// A pause set while a change is in flight lets that change complete and stops the next step.
#[tokio::test(start_paused = true)]
async fn operator_pause_arriving_mid_change_stops_the_next_step() {
    // Set through another agent's API after this agent read the switches, while its reconfig runs.
    let w = World::serving(3, 0);
    w.joiner(4);
    let mut node = w.member(1);
    let (other_api, world_zk, backend) = (w.backend.clone(), w.zk.clone(), w.backend.clone());
    w.zk.on_next("reconfig", move || {
        other_api.set_operator(paused(true));
        // The next step becomes possible meanwhile: one more joiner.
        let id = backend.add_instance("i-0005", "127.0.0.5", "zone-2");
        backend.seed_claim(ServerId(5), &id, "127.0.0.5");
        world_zk.set_running(ServerId(5), "127.0.0.5:2181", true);
    });
    node.pass().await;
    assert_eq!(w.zk.config().role_of(ServerId(4)), Some(Role::Observer), "the change in flight completed");
    node.passes(3).await;
    assert_eq!(w.zk.reconfigs().len(), 1, "nothing after the pause");
    assert!(node.status().paused);
    w.backend.set_operator(paused(false));
    node.pass().await;
    assert_eq!(w.zk.config().role_of(ServerId(5)), Some(Role::Observer), "resumed");
}

/// A failed read of the operator's switches keeps the last known pause (a blip never unpauses).
#[tokio::test(start_paused = true)]
async fn failed_operator_settings_read_keeps_the_last_known_pause() {
    let w = World::serving(3, 0);
    w.joiner(4);
    w.backend.set_operator(paused(true));
    let mut node = w.member(1);
    node.pass().await;
    assert!(node.status().paused);
    w.backend.set_operator(paused(false));
    w.backend.fail_always("operator_settings");
    node.passes(3).await;
    assert!(node.status().paused, "kept the last known pause");
    assert!(w.zk.reconfigs().is_empty());
    w.backend.heal("operator_settings");
    node.pass().await;
    assert!(!node.status().paused);
    assert_eq!(w.zk.reconfigs().len(), 1);
}

/// The operator's voter target overrides the configured one: two observers are promoted to five voters.
#[tokio::test(start_paused = true)]
async fn operator_voter_target_overrides_the_config() {
    let w = World::serving(3, 2);
    w.backend.set_operator(OperatorSettings { target_voters: Some(5), ..Default::default() });
    let mut node = w.member(1);
    node.until(4, "five voters", |s| s.target_voters == 5 && s.config_version.is_some()).await;
    node.passes(2).await;
    assert_eq!(w.zk.config().voter_count(), 5);
}
