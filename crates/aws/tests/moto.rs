//! The AWS backend against moto server: discovery, tags, claims under contention, marker, lease,
//! scale-in protection, publishing. Every test has its own moto process.

use std::collections::BTreeSet;

use zkpilot_aws::slots::SlotSettings;
use zkpilot_aws::{AwsBackend, AwsSettings, TAG_ADDRESS, TAG_SERVER_ID};
use zkpilot_core::model::{EnsembleConfig, InstanceId, InstanceState, ServerId};
use zkpilot_core::ports::{ClusterMarker, Coordination, Group, Identity, Publish, Store};
use zkpilot_testkit::{Moto, create_group, create_slot, group_instances, set_desired};

async fn setup(name: &str, n: i32) -> (Moto, aws_config::SdkConfig, AwsBackend) {
    let moto = Moto::start();
    let conf = moto.sdk_config().await;
    let g = create_group(&conf, name, n).await;
    let settings = AwsSettings {
        group: g.name,
        bucket: g.bucket,
        prefix: "zkpilot/".into(),
        region: None,
        endpoint_url: None,
        launch_hook: zkpilot_aws::default_launch_hook(),
        terminate_hook: zkpilot_aws::default_terminate_hook(),
        claims: Default::default(),
        hosted_zone_id: None,
        slots: Some(SlotSettings { cluster: format!("{name}-cluster"), mount: "/unused".into() }),
    };
    let backend = AwsBackend::from_conf(&conf, settings);
    (moto, conf, backend)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_tags_and_termination() {
    let (_moto, conf, b) = setup("disco", 3).await;
    let inst = b.instances().await.expect("instances");
    assert_eq!(inst.len(), 3);
    assert!(inst.iter().all(|i| i.state == InstanceState::Running && i.server_id.is_none() && !i.zone.is_empty()));
    assert!(inst.iter().all(|i| i.protected == Some(false)), "{inst:?}");
    assert_eq!(b.desired_capacity().await.expect("desired"), 3);

    let first = inst[0].id.clone();
    let id = b.claim_id(&first, "127.0.0.9").await.expect("claim");
    b.announce(&first, id, "127.0.0.9").await.expect("tags");
    let tags = aws_sdk_ec2::Client::new(&conf)
        .describe_tags()
        .filters(aws_sdk_ec2::types::Filter::builder().name("resource-id").values(&first.0).build())
        .send()
        .await
        .expect("describe tags");
    let got: BTreeSet<(String, String)> = tags
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
        .collect();
    assert!(got.contains(&(TAG_SERVER_ID.to_string(), id.to_string())), "{got:?}");
    assert!(got.contains(&(TAG_ADDRESS.to_string(), "127.0.0.9".to_string())), "{got:?}");
    let me = b.instances().await.expect("instances").into_iter().find(|i| i.id == first).expect("claimed instance");
    assert_eq!((me.server_id, me.address.as_str()), (Some(id), "127.0.0.9"));

    // Protect the claimed one, scale in by one: moto terminates an unprotected instance, and
    // a claimed instance that left the group is reported by its EC2 state.
    b.set_scale_in_protection(&first, true).await.expect("protect");
    let protected: Vec<_> = group_instances(&conf, &b.settings().group).await.into_iter().filter(|i| i.2).collect();
    assert_eq!(protected.len(), 1);
    assert_eq!(protected[0].0, first.0);
    set_desired(&conf, &b.settings().group, 2).await;
    let after = b.instances().await.expect("instances");
    assert_eq!(after.iter().filter(|i| i.state == InstanceState::Running).count(), 2);
    assert!(after.iter().any(|i| i.id == first && i.state == InstanceState::Running), "protected instance kept");
    aws_sdk_ec2::Client::new(&conf).terminate_instances().instance_ids(&first.0).send().await.expect("terminate");
    let gone =
        b.instances().await.expect("instances").into_iter().find(|i| i.id == first).expect("claimed instance listed");
    assert_eq!(gone.state, InstanceState::Terminated, "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_claims_are_unique() {
    let (_moto, _conf, b) = setup("claims", 0).await;
    let claims = (0..64).map(|i| {
        let b = b.clone();
        async move {
            b.claim_id(&InstanceId(format!("i-{i:03}")), &format!("127.0.1.{i}"))
                .await
                .unwrap_or_else(|e| panic!("claim {i}: {e:?}"))
        }
    });
    let mut ids: Vec<u32> = futures::future::join_all(claims).await.into_iter().map(|id| id.0).collect();
    ids.sort();
    assert_eq!(ids, (1..=64).collect::<Vec<_>>());
    // Idempotent for the holder; a released id is reused; releasing someone else's is a no-op.
    let holder = InstanceId("i-007".into());
    let id = b.claim_id(&holder, "x").await.expect("claim again");
    b.release_id(id, &InstanceId("not-the-holder".into())).await.expect("foreign release");
    assert_eq!(b.claim_id(&holder, "x").await.expect("still held"), id);
    b.release_id(id, &holder).await.expect("release");
    assert_eq!(b.claim_id(&InstanceId("new".into()), "y").await.expect("reuse"), id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marker_once_and_lease_exclusive_with_expiry() {
    let (_moto, _conf, b) = setup("lease", 0).await;
    let m = |who: &str| ClusterMarker {
        cluster_id: who.into(),
        genesis: vec![],
        created_by: InstanceId(who.into()),
        created_ms: 1,
        restored_from: None,
    };
    assert_eq!(b.cluster_marker().await.expect("read"), None);
    let (ma, mb) = (m("a"), m("b"));
    let (first, second) = tokio::join!(b.create_cluster_marker(&ma), b.create_cluster_marker(&mb));
    let (first, second) = (first.expect("a"), second.expect("b"));
    assert_eq!(first, second, "both see the one marker that won");
    assert_eq!(b.create_cluster_marker(&m("c")).await.expect("c").cluster_id, first.cluster_id);

    let (a, c) = (InstanceId("i-a".into()), InstanceId("i-c".into()));
    assert!(b.acquire_lease(&a, 1_000, 10_000).await.expect("take"));
    assert!(!b.acquire_lease(&c, 1_000, 10_500).await.expect("held"));
    assert!(b.acquire_lease(&a, 1_000, 10_500).await.expect("renew"));
    assert!(!b.acquire_lease(&c, 1_000, 11_400).await.expect("renewed, still held"));
    assert!(b.acquire_lease(&c, 1_000, 11_600).await.expect("expired: takeover"));
    // Concurrent takeovers of an expired lease: exactly one wins.
    let contenders = (0..8).map(|i| {
        let b = b.clone();
        async move { b.acquire_lease(&InstanceId(format!("i-{i}")), 1_000, 20_000).await.expect("lease") }
    });
    let winners = futures::future::join_all(contenders).await.into_iter().filter(|w| *w).count();
    assert_eq!(winners, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_and_status_are_published() {
    let (_moto, conf, b) = setup("publish", 0).await;
    let cfg = EnsembleConfig::parse(
        "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\nserver.2=127.0.0.2:2888:3888:observer;127.0.0.2:2181\nversion=100000003",
    )
    .expect("config");
    b.publish_membership(&cfg).await.expect("publish");
    b.publish_status(&InstanceId("i-1".into()), "{\"phase\":\"member\"}").await.expect("status");
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&conf).force_path_style(true).build());
    let get = |key: &'static str| {
        let s3 = s3.clone();
        let bucket = b.settings().bucket.clone();
        async move {
            let o = s3.get_object().bucket(bucket).key(key).send().await.expect("get");
            String::from_utf8(o.body.collect().await.expect("body").into_bytes().to_vec()).expect("utf-8")
        }
    };
    assert_eq!(get("zkpilot/connect-string").await, "127.0.0.1:2181,127.0.0.2:2181\n");
    let m: serde_json::Value = serde_json::from_str(&get("zkpilot/membership.json").await).expect("json");
    assert_eq!(m["version"], "100000003");
    assert_eq!(get("zkpilot/status/i-1.json").await, "{\"phase\":\"member\"}");
}

/// Slot mode: one slot, many claimants at once → one holder, with the slot's interface and volume
/// attached to it; a holder that terminates frees the slot for its replacement, which gets the
/// same interface (address) and volume. moto does not check that volume and instance share a
/// zone, so the zone rule is exercised by the backend's own filter only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_claimed_once_attached_and_taken_over_after_termination() {
    let (_moto, conf, b) = setup("slots", 4).await;
    let zone = zkpilot_testkit::ZONES[0];
    let (eni, address, volume) = create_slot(&conf, "slots-cluster", 1, zone).await;
    let _other_zone = create_slot(&conf, "slots-cluster", 2, zkpilot_testkit::ZONES[1]).await;
    let resources = b.slot_resources().await.expect("slot resources");
    assert_eq!(resources.len(), 2, "{resources:?}");
    assert_eq!(
        (resources[&ServerId(1)].address.as_str(), resources[&ServerId(1)].zone.as_str()),
        (address.as_str(), zone)
    );

    let instances: Vec<InstanceId> = b.instances().await.expect("instances").into_iter().map(|i| i.id).collect();
    let attempts = futures::future::join_all(instances.iter().map(|i| {
        let b = b.clone();
        let i = i.clone();
        async move { (i.clone(), b.take_slot(&i, zone).await.expect("take slot")) }
    }))
    .await;
    let winners: Vec<_> = attempts.iter().filter(|(_, s)| s.is_some()).collect();
    assert_eq!(winners.len(), 1, "exactly one instance holds slot 1 of {zone}: {attempts:?}");
    let (holder, slot) = (winners[0].0.clone(), winners[0].1.clone().expect("slot"));
    assert_eq!((slot.id, slot.interface.as_str(), slot.volume.as_str()), (ServerId(1), eni.as_str(), volume.as_str()));
    let now = b.slot_resources().await.expect("slot resources");
    assert_eq!(now[&ServerId(1)].interface_on.as_deref(), Some(holder.0.as_str()), "interface attached");
    assert_eq!(now[&ServerId(1)].volume_on.as_deref(), Some(holder.0.as_str()), "volume attached");
    assert_eq!(b.take_slot(&holder, zone).await.expect("again").map(|s| s.id), Some(ServerId(1)), "idempotent");
    let seen = b.instances().await.expect("instances");
    let h = seen.iter().find(|i| i.id == holder).expect("holder");
    assert_eq!((h.server_id, h.address.as_str()), (Some(ServerId(1)), address.as_str()), "the slot is the identity");

    // The holder dies: nobody holds server 1 (the planner then waits instead of removing it),
    // and the next instance takes the slot over with the same interface and volume.
    aws_sdk_ec2::Client::new(&conf).terminate_instances().instance_ids(&holder.0).send().await.expect("terminate");
    let seen = b.instances().await.expect("instances");
    assert!(seen.iter().all(|i| i.server_id != Some(ServerId(1))), "{seen:?}");
    let next = instances.iter().find(|i| **i != holder).expect("another instance").clone();
    let taken = b.take_slot(&next, zone).await.expect("take over").expect("slot free after termination");
    assert_eq!((taken.id, taken.address.as_str()), (ServerId(1), address.as_str()));
    let now = b.slot_resources().await.expect("slot resources");
    assert_eq!(now[&ServerId(1)].interface_on.as_deref(), Some(next.0.as_str()));
    assert_eq!(now[&ServerId(1)].volume_on.as_deref(), Some(next.0.as_str()));
}

/// Name indirection on AWS: each agent upserts its own A record in the hosted zone; a
/// replacement on a new address overwrites it (one record per name, short TTL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route53_name_is_upserted_and_moves() {
    let (_moto, conf, b) = setup("names", 1).await;
    let r53 = aws_sdk_route53::Client::new(&conf);
    let zone = r53
        .create_hosted_zone()
        .name("zk.example.internal")
        .caller_reference("zkpilot-test")
        .send()
        .await
        .expect("hosted zone");
    let zone_id = zone.hosted_zone().map(|z| z.id().to_string()).expect("zone id");
    let mut settings = b.settings().clone();
    settings.hosted_zone_id = Some(zone_id.clone());
    let b = AwsBackend::from_conf(&conf, settings);
    let records = || async {
        let out = r53.list_resource_record_sets().hosted_zone_id(&zone_id).send().await.expect("list records");
        out.resource_record_sets()
            .iter()
            .filter(|r| r.r#type() == &aws_sdk_route53::types::RrType::A)
            .map(|r| {
                let values: Vec<String> = r.resource_records().iter().map(|v| v.value().to_string()).collect();
                (r.name().trim_end_matches('.').to_string(), values, r.ttl())
            })
            .collect::<Vec<_>>()
    };
    b.publish_name("zk-1.zk.example.internal", "10.77.0.11").await.expect("publish");
    assert_eq!(records().await, vec![("zk-1.zk.example.internal".into(), vec!["10.77.0.11".into()], Some(10))]);
    b.publish_name("zk-1.zk.example.internal", "10.77.1.12").await.expect("move");
    assert_eq!(records().await, vec![("zk-1.zk.example.internal".into(), vec!["10.77.1.12".into()], Some(10))]);

    let mut unset = b.settings().clone();
    unset.hosted_zone_id = None;
    let e = AwsBackend::from_conf(&conf, unset).publish_name("zk-2.x", "10.0.0.1").await.expect_err("no zone");
    assert!(e.to_string().contains("route53_zone"), "{e}");
}

/// The CloudWatch Logs claim store (zookeeper-on-aws's design): 64 concurrent claimers get 64
/// distinct ids, the marker is written once, a released id is claimed again by someone else and
/// every reader sees the new holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_streams_claim_ids_and_marker_exactly_once() {
    let (_moto, conf, b) = setup("logs", 1).await;
    aws_sdk_cloudwatchlogs::Client::new(&conf)
        .create_log_group()
        .log_group_name("zkpilot-claims")
        .send()
        .await
        .expect("log group");
    let mut settings = b.settings().clone();
    settings.claims = zkpilot_aws::logs::ClaimStore::Logs { log_group: "zkpilot-claims".into() };
    let b = AwsBackend::from_conf(&conf, settings);
    let ids = futures::future::join_all((0..64).map(|k| {
        let b = b.clone();
        async move { b.claim_id(&InstanceId(format!("i-{k:03}")), &format!("127.0.1.{k}")).await.expect("claim") }
    }))
    .await;
    let unique: BTreeSet<u32> = ids.iter().map(|i| i.0).collect();
    assert_eq!(unique, (1..=64).collect::<BTreeSet<u32>>(), "{ids:?}");
    assert_eq!(b.claim_id(&InstanceId("i-005".into()), "127.0.1.5").await.expect("again"), ids[5], "idempotent");

    assert_eq!(b.cluster_marker().await.expect("none yet"), None);
    let marker = |by: &str| ClusterMarker {
        cluster_id: format!("c-{by}"),
        genesis: vec![],
        created_by: InstanceId(by.into()),
        created_ms: 1,
        restored_from: None,
    };
    let won = futures::future::join_all(["a", "b", "c"].map(|by| {
        let b = b.clone();
        async move { b.create_cluster_marker(&marker(by)).await.expect("marker") }
    }))
    .await;
    assert!(won.iter().all(|m| *m == won[0]), "one marker for all: {won:?}");

    // Release i-005's id; a reader that cached the old holder must see the new one.
    let reader = AwsBackend::from_conf(&conf, b.settings().clone());
    reader.instances().await.expect("reader caches the claims");
    b.release_id(ids[5], &InstanceId("i-005".into())).await.expect("release");
    let again = b.claim_id(&InstanceId("i-new".into()), "127.0.2.1").await.expect("reclaim");
    assert_eq!(again, ids[5], "lowest free id is reused");
    let holder = reader.claim_id(&InstanceId("i-new".into()), "127.0.2.1").await.expect("read");
    assert_eq!(holder, ids[5], "reader sees the re-created stream's holder");
}

/// Quorum-loss recovery's records round-trip through S3, and an unhealthy instance is reported to
/// the group, which replaces it (moto implements SetInstanceHealth and the replacement).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_records_and_unhealthy_replacement() {
    use zkpilot_core::recovery::{RecoveryDecision, SurvivorReport};
    let (_moto, conf, b) = setup("recov", 3).await;
    assert!(b.survivor_reports().await.expect("reports").is_empty());
    assert_eq!(b.recovery_decision().await.expect("decision"), None);
    let config = EnsembleConfig::parse("server.1=10.0.0.1:2888:3888:participant;10.0.0.1:2181\n").expect("cfg");
    let reports: Vec<SurvivorReport> = (1..=3)
        .map(|n| SurvivorReport {
            instance: InstanceId(format!("i-{n}")),
            server_id: ServerId(n),
            current_epoch: 4,
            last_zxid: 0x4_0000_0000 + u64::from(n),
            config: config.clone(),
            backup: format!("/var/lib/zkpilot/b{n}"),
            at_ms: 1000 + u64::from(n),
        })
        .collect();
    for r in &reports {
        b.put_survivor_report(r).await.expect("put report");
    }
    let mut back = b.survivor_reports().await.expect("reports");
    back.sort_by_key(|r| r.server_id);
    assert_eq!(back, reports);
    let d = RecoveryDecision {
        from_version: 7,
        survivor: ServerId(3),
        survivor_instance: InstanceId("i-3".into()),
        lost: vec![ServerId(4)],
        unconfirmed: vec![],
        candidates: vec![(ServerId(3), 4, 0x4_0000_0003)],
        kept_zxid: 0x4_0000_0003,
        decided_ms: 9,
    };
    b.put_recovery_decision(&d).await.expect("put decision");
    assert_eq!(b.recovery_decision().await.expect("decision"), Some(d));

    let before = b.instances().await.expect("instances");
    let sick = before[0].id.clone();
    b.report_unhealthy(&sick).await.expect("set health");
    let asg = aws_sdk_autoscaling::Client::new(&conf);
    let group = asg.describe_auto_scaling_groups().send().await.expect("describe");
    let health: Vec<(String, String)> = group.auto_scaling_groups()[0]
        .instances()
        .iter()
        .map(|i| (i.instance_id().unwrap_or_default().to_string(), i.health_status().unwrap_or_default().to_string()))
        .collect();
    let reported = health.iter().find(|(id, _)| *id == sick.0).map(|(_, h)| h.as_str());
    // moto either still lists it as Unhealthy or has already replaced it.
    assert!(reported.is_none_or(|h| h == "Unhealthy"), "{health:?}");
    assert!(b.report_unhealthy(&InstanceId("i-doesnotexist".into())).await.is_err(), "unknown instance is an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_seed_and_postmortem_logs_in_s3() {
    use zkpilot_core::backup::{BackupFile, BackupReason, Manifest};
    let (_moto, conf, b) = setup("backup", 1).await;
    assert!(b.backups().await.expect("list").is_empty());
    assert_eq!(b.restore_seed().await.expect("seed"), None);
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot = dir.path().join("snapshot.100000000");
    std::fs::write(&snapshot, vec![7u8; 300_000]).expect("write");
    let manifest = Manifest {
        name: "1700000000000-manual-server-1".into(),
        cluster_id: "c".into(),
        server_id: ServerId(1),
        taken_ms: 1_700_000_000_000,
        reason: BackupReason::Manual,
        snapshot_zxid: 0x1_0000_0000,
        last_zxid: 0x1_0000_0000,
        config_version: None,
        files: vec![BackupFile { name: "snapshot.100000000".into(), bytes: 300_000, sha256: "x".into() }],
    };
    b.backup_put(&manifest.name, "snapshot.100000000", &snapshot).await.expect("put file");
    assert!(b.backups().await.expect("list").is_empty(), "no manifest yet: incomplete, not listed");
    let m = dir.path().join("manifest.json");
    std::fs::write(&m, serde_json::to_vec(&manifest).expect("json")).expect("write");
    b.backup_put(&manifest.name, "manifest.json", &m).await.expect("put manifest");
    assert_eq!(b.backups().await.expect("list"), vec![manifest.clone()]);
    let back = dir.path().join("back");
    b.backup_get(&manifest.name, "snapshot.100000000", &back).await.expect("get");
    assert_eq!(std::fs::read(&back).expect("read"), vec![7u8; 300_000], "streamed back byte for byte");
    assert!(b.backup_put("../escape", "f", &m).await.is_err(), "names cannot leave the prefix");

    b.put_restore_seed(&manifest.name).await.expect("seed");
    assert_eq!(b.restore_seed().await.expect("seed"), Some(manifest.name.clone()));

    b.ship_log(&InstanceId("i-1".into()), "1-zookeeper.log", &m).await.expect("ship");
    let s3 = aws_sdk_s3::Client::new(&conf);
    let bucket = b.settings().bucket.clone();
    let keys = |prefix: &'static str| {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        async move {
            let out = s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.expect("list");
            out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect::<Vec<_>>()
        }
    };
    assert_eq!(keys("zkpilot/postmortem/").await, vec!["zkpilot/postmortem/i-1/1-zookeeper.log".to_string()]);

    b.backup_delete(&manifest.name).await.expect("delete");
    assert!(b.backups().await.expect("list").is_empty());
    assert!(keys("zkpilot/backups/").await.is_empty(), "every object of the backup deleted");
}
