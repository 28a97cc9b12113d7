//! Backups and restore against real ZooKeeper: the restore drill, backups before membership
//! changes, post-mortem logs.

use std::time::Instant;

use serde_json::Value;

use crate::harness::*;

fn backups(g: &Group) -> Vec<Value> {
    let o = g.run(&["backup", "list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice::<Value>(&o.stdout).expect("JSON").as_array().expect("array").clone()
}

fn reasons(all: &[Value]) -> Vec<String> {
    all.iter().map(|m| m["reason"].as_str().unwrap_or_default().to_string()).collect()
}

/// Asks the agent at `api` for a backup (`POST /backup`) and waits until it is listed.
fn manual_backup(g: &Group, rt: &tokio::runtime::Runtime, api: &str, token: &str) -> Value {
    let (code, body) = http(rt, "POST", &format!("http://{api}/backup"), Some(token), None);
    assert_eq!(code, 202, "{body}");
    let start = Instant::now();
    loop {
        if let Some(m) = backups(g).into_iter().find(|m| m["reason"] == "manual") {
            return m;
        }
        assert!(start.elapsed() < DEADLINE, "no manual backup listed");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// The restore drill: write data, change the membership (a backup is taken before the change),
/// write more, back up on request, destroy the ensemble (every server and its disk; only the
/// backup store is left), restore into a new group, and check every key.
#[test]
fn restore_drill_recovers_every_key() {
    let g = Group::up_with(3, "127.123.1", &["--backup-every", "0"]);
    let data = Data::new(&g);
    let s = g.wait_converged();
    data.write(&s, "before", 150);
    g.scale(4);
    let all = backups(&g);
    assert!(reasons(&all).iter().any(|r| r == "before-change"), "a backup before the scale-out's reconfig: {all:#?}");

    let s = g.wait_converged();
    data.write(&s, "after", 50);
    let leader = leaders(&s)[0];
    let api = members(&s).iter().find(|m| m["id"] == leader).and_then(|m| m["api"].as_str()).expect("api").to_string();
    let token = std::fs::read_to_string(g.path().join("api-token")).expect("api-token").trim().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (code, body) = http(&rt, "POST", &format!("http://{api}/backup"), None, None);
    assert_eq!(code, 401, "a backup needs the token: {body}");
    let manual = manual_backup(&g, &rt, &api, &token);
    assert_eq!(manual["server_id"], leader, "taken from the leader asked: {manual:#}");

    // Destroy the ensemble: every process, every server's disk, the ids and the marker.
    let o = g.run(&["local", "down"]);
    assert!(o.status.success(), "{}", text(&o));
    for e in std::fs::read_dir(g.path()).expect("group dir").flatten() {
        if e.file_name() != "backups" {
            let p = e.path();
            if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) }.expect("destroy");
        }
    }

    let restored = Group::empty();
    let from = g.path().to_string_lossy().to_string();
    let args = ["restore", "--from", &from, "--net", "127.124.1", "--size", "3", "--timeout", "180"];
    let o = restored.run(&args);
    assert!(o.status.success(), "restore failed: {}", text(&o));
    let s = restored.wait_converged();
    assert_eq!(voters(&s), 3, "{s:#}");
    let marker = read_json(restored.path().join("cluster/marker.json"));
    assert_eq!(marker["restored_from"], manual["name"], "the newest backup (the manual one) was restored");
    assert_eq!(marker["genesis"].as_array().map(Vec::len), Some(1), "born as one server, the others joined");
    let data = Data::new(&restored);
    assert_eq!(data.missing(&s, "before", 150), 0, "keys written before the membership change");
    assert_eq!(data.missing(&s, "after", 50), 0, "keys written after it, before the backup");

    // Post-mortem logs: a stopped agent ships its ZooKeeper log and its own.
    let o = restored.run(&["local", "down"]);
    assert!(o.status.success(), "{}", text(&o));
    for inst in s["instances"].as_array().expect("instances") {
        let dir = restored.path().join("postmortem").join(inst["id"].as_str().expect("id"));
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n.ends_with("-zookeeper.log")), "{names:?}");
        assert!(names.iter().any(|n| n.ends_with("-agent.log")), "{names:?}");
    }

    // A restore never lands on an existing ensemble (stopped or not); nothing changes.
    let o = restored.run(&args);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("already has an ensemble"), "{}", text(&o));
    assert_eq!(read_json(restored.path().join("cluster/marker.json")), marker);
    assert!(restored.processes().is_empty(), "nothing was started");
}

/// Compressed snapshots (`snapshot.compression.method`, a key of the shared base config): the
/// backup picks the newest complete `snapshot.<zxid>.gz|.snappy` as ZooKeeper wrote it, and a
/// group restored from it (its servers writing plain snapshots) loads it and holds every key.
#[test]
fn compressed_snapshots_back_up_and_restore() {
    for (method, net, restored_net) in [("snappy", "127.125.1", "127.125.2"), ("gz", "127.125.3", "127.125.4")] {
        let g = Group::up_prepared(1, net, &["--backup-every", "0"], |dir| {
            std::fs::write(dir.join("base.cfg"), format!("snapshot.compression.method={method}\n")).expect("base.cfg");
        });
        let data = Data::new(&g);
        let s = g.wait_converged();
        data.write(&s, method, 60);
        let api = members(&s)[0]["api"].as_str().expect("api").to_string();
        let token = std::fs::read_to_string(g.path().join("api-token")).expect("api-token").trim().to_string();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let manual = manual_backup(&g, &rt, &api, &token);
        let snapshot = manual["files"][0]["name"].as_str().expect("file name").to_string();
        assert!(snapshot.starts_with("snapshot.") && snapshot.ends_with(&format!(".{method}")), "{manual:#}");

        let o = g.run(&["local", "down"]);
        assert!(o.status.success(), "{}", text(&o));
        let restored = Group::empty();
        let from = g.path().to_string_lossy().to_string();
        let o = restored.run(&["restore", "--from", &from, "--net", restored_net, "--size", "1", "--timeout", "180"]);
        assert!(o.status.success(), "restore from {snapshot} failed: {}", text(&o));
        let s = restored.wait_converged();
        assert_eq!(data.missing(&s, method, 60), 0, "every key back from {snapshot}");
    }
}
