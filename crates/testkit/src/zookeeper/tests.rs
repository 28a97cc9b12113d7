use zkpilot_core::model::{EnsembleConfig, Role, ServerId};
use zkpilot_core::observed::Mode;
use zkpilot_core::plan::MembershipChange;
use zkpilot_core::ports::{ReconfigError, Zookeeper};

use super::{FIRST_ZXID, ReconfigAnswer, ScriptedZookeeper};
use crate::loopback_spec as spec;

fn three() -> ScriptedZookeeper {
    let mut config = EnsembleConfig { version: FIRST_ZXID, ..Default::default() };
    for id in 1..=3 {
        config.servers.insert(ServerId(id), spec(id, Role::Participant));
    }
    ScriptedZookeeper::serving(config)
}

fn add_four(from_version: u64) -> MembershipChange {
    MembershipChange { joining: vec![spec(4, Role::Observer)], leaving: vec![], from_version, why: "test".into() }
}

const ALL: &str = "127.0.0.1:2181,127.0.0.2:2181,127.0.0.3:2181";

#[tokio::test]
async fn answers_probes_and_config_reads_from_the_model() {
    let zk = three();
    assert_eq!(zk.probe("127.0.0.1:2181").await.mode, Mode::Leader);
    assert_eq!(zk.committed_config(ALL).await.expect("config").version, FIRST_ZXID);
    zk.fail_next("probe", 1);
    assert_eq!(zk.probe("127.0.0.2:2181").await.mode, Mode::Unreachable, "a failed probe is unanswered");
    zk.fail_next("committed_config", 1);
    assert!(zk.committed_config(ALL).await.is_err());
    zk.stop(ServerId(1));
    zk.stop(ServerId(2));
    assert!(zk.committed_config(ALL).await.is_err(), "no quorum, no config");
    assert_eq!(zk.count("probe"), 2);
}

#[tokio::test]
async fn connection_loss_may_or_may_not_have_committed() {
    let zk = three();
    zk.set_running(ServerId(4), "127.0.0.4:2181", true);
    zk.answer_next([ReconfigAnswer::ConnectionLoss, ReconfigAnswer::CommitThenConnectionLoss]);
    assert!(matches!(zk.reconfig(ALL, &add_four(FIRST_ZXID)).await, Err(ReconfigError::Unknown(_))));
    assert!(!zk.config().servers.contains_key(&ServerId(4)), "lost before it was sent");
    assert!(matches!(zk.reconfig(ALL, &add_four(FIRST_ZXID)).await, Err(ReconfigError::Unknown(_))));
    assert_eq!(zk.config().role_of(ServerId(4)), Some(Role::Observer), "lost after it committed");
    assert_eq!(zk.reconfigs().len(), 2);
}

#[tokio::test]
async fn scripted_refusals_commit_nothing() {
    let zk = three();
    zk.set_running(ServerId(4), "127.0.0.4:2181", true);
    zk.answer_next([
        ReconfigAnswer::BadVersion,
        ReconfigAnswer::Rejected("ReconfigInProgress".into()),
        ReconfigAnswer::SilentNoOp,
    ]);
    zk.answer_always(Some(ReconfigAnswer::Forbidden("NoAuth".into())));
    let change = add_four(FIRST_ZXID);
    assert!(matches!(zk.reconfig(ALL, &change).await, Err(ReconfigError::Stale)));
    assert!(matches!(zk.reconfig(ALL, &change).await, Err(ReconfigError::Rejected(_))));
    let same = zk.reconfig(ALL, &change).await.expect("no-op succeeds");
    assert!(!change.is_reflected_in(&same));
    for _ in 0..2 {
        assert!(matches!(zk.reconfig(ALL, &change).await, Err(ReconfigError::Forbidden(_))));
    }
    zk.answer_always(None);
    assert!(change.is_reflected_in(&zk.reconfig(ALL, &change).await.expect("commits")));
    assert_eq!(zk.config().version, FIRST_ZXID + 1);
}

#[tokio::test]
async fn the_too_high_version_makes_every_reconfig_a_silent_no_op() {
    let zk = three();
    zk.set_running(ServerId(4), "127.0.0.4:2181", true);
    zk.set_version_too_high(true);
    let before = zk.config();
    assert_eq!(zk.reconfig(ALL, &add_four(FIRST_ZXID)).await.expect("succeeds"), before);
    assert_eq!(zk.config(), before);
}

#[tokio::test]
async fn confirming_writes_need_a_serving_server_and_move_the_zxid() {
    let zk = three();
    zk.confirm_write(ALL).await.expect("confirms");
    assert_eq!(zk.with_ensemble(|e| e.zxid), FIRST_ZXID + 1);
    zk.fail_next("confirm_write", 1);
    assert!(zk.confirm_write(ALL).await.is_err());
    for id in 1..=3 {
        zk.stop(ServerId(id));
    }
    assert!(zk.confirm_write(ALL).await.is_err());
}

#[tokio::test]
async fn a_hook_runs_before_the_reconfig_answers() {
    let zk = three();
    let other = zk.clone();
    zk.on_next("reconfig", move || other.stop(ServerId(1)));
    zk.set_running(ServerId(4), "127.0.0.4:2181", true);
    let c = zk.reconfig(ALL, &add_four(FIRST_ZXID)).await.expect("2 and 3 still a quorum");
    assert_eq!(c.servers.len(), 4);
    assert_eq!(zk.mode(ServerId(2)), Mode::Leader);
}
