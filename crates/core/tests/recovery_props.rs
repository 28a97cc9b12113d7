//! Property tests of quorum-loss recovery: the survivor chosen is the one ZooKeeper's own election
//! would pick (FastLeaderElection.totalOrderPredicate: currentEpoch, then zxid, then id), so no
//! committed transaction any survivor holds is thrown away.

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use zkpilot_core::model::{EnsembleConfig, Instance, InstanceId, InstanceState, Role, ServerId, ServerSpec};
use zkpilot_core::recovery::{Assessment, SurvivorReport, assess};

fn config(voters: u32) -> EnsembleConfig {
    let mut c = EnsembleConfig { version: 0x1_0000_0000, ..EnsembleConfig::default() };
    for id in 1..=voters {
        c.servers.insert(ServerId(id), ServerSpec::loopback(id, id, Role::Participant));
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 500,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    /// A minority of voters survives and reports (epoch, zxid); the rest are confirmed gone. The
    /// decision keeps the most advanced survivor and its zxid.
    #[test]
    fn recovery_keeps_the_most_advanced_survivor(
        positions in prop::collection::vec((1u64..=3, 0u64..=5), 1..=3),
    ) {
        let voters = 2 * positions.len() as u32 + 1;
        let cfg = config(voters);
        let mut instances = Vec::new();
        let mut reports = Vec::new();
        for id in 1..=voters {
            let survivor = positions.get(id as usize - 1);
            instances.push(Instance {
                id: InstanceId(format!("i-{id}")),
                address: format!("127.0.0.{id}"),
                zone: "a".into(),
                state: if survivor.is_some() { InstanceState::Running } else { InstanceState::Terminated },
                server_id: Some(ServerId(id)),
                protected: None,
                hook: None,
            });
            if let Some(&(epoch, zxid)) = survivor {
                reports.push(SurvivorReport {
                    instance: InstanceId(format!("i-{id}")),
                    server_id: ServerId(id),
                    current_epoch: epoch,
                    last_zxid: epoch << 32 | zxid,
                    config: cfg.clone(),
                    backup: format!("/b/{id}"),
                    at_ms: 0,
                });
            }
        }
        let refs: Vec<&SurvivorReport> = reports.iter().collect();
        let Assessment::Decide(d) = assess(&refs, &instances, false, 0) else {
            return Err(TestCaseError::fail("a minority survives and every loss is confirmed: must decide"));
        };
        let best = reports.iter().map(|r| (r.current_epoch, r.last_zxid, r.server_id)).max().expect("reports");
        prop_assert_eq!((d.survivor, d.kept_zxid), (best.2, best.1));
        prop_assert!(reports.iter().all(|r| r.last_zxid <= d.kept_zxid), "a survivor held more: {:?}", reports);
    }
}
