//! Quorum-loss recovery against real ZooKeeper: survivors fence themselves, one coordinator names
//! the best survivor, the ensemble is rebuilt from it and grown back, and nothing the survivors
//! held is lost.

use serde_json::Value;

use crate::harness::*;

/// Reads every key of `prefix` through `server`'s own client port only: proves that this server
/// (not just the ensemble) holds them before the others die.
fn held_by(data: &Data, s: &Value, server: u64, prefix: &str, n: usize) -> usize {
    let one = only_member(s, server);
    data.missing(&one, prefix, n)
}

/// A status value whose instance list only names `server`'s instance, for `Data`'s connect string.
fn only_member(s: &Value, server: u64) -> Value {
    let mut one = s.clone();
    let inst = instance_of(s, server);
    let keep: Vec<Value> =
        s["instances"].as_array().expect("instances").iter().filter(|i| i["id"] == inst.as_str()).cloned().collect();
    one["instances"] = Value::Array(keep);
    one
}

fn decision(g: &Group) -> Value {
    read_json(g.path().join("recovery/decision.json"))
}

fn voters_ids(s: &Value) -> Vec<u64> {
    members(s).iter().filter(|m| m["voting"] == true).map(|m| m["id"].as_u64().expect("id")).collect()
}

/// Elastic mode, the "done when": 2 of 3 voters die with their disks; the survivor's data
/// comes back as a serving ensemble of the desired size. Then the same with several survivors of
/// a bigger group (one voter and two observers left of 3 + 2): all of them stop and report, the
/// best is chosen, the others rejoin it.
#[test]
fn quorum_loss_rebuilds_from_the_best_survivor_and_loses_nothing_it_held() {
    let g = Group::up(3, "127.115.1");
    let data = Data::new(&g);
    let s = g.wait_converged();
    data.write(&s, "before", 100);
    let old_version = s["config_version"].clone();
    let survivor = follower(&s);
    assert_eq!(held_by(&data, &s, survivor, "before", 100), 0, "the survivor holds every key");
    let victims: Vec<u64> = ids(&s).into_iter().filter(|id| *id != survivor).collect();
    for v in &victims {
        g.kill(*v, false);
    }
    let s = g.wait_for("rebuilt and grown back to 3 voters", |s| {
        s["converged"] == true && voters(s) == 3 && ids(s).contains(&survivor)
    });
    assert_ne!(s["config_version"], old_version, "{s:#}");
    assert!(victims.iter().all(|v| !ids(&s).contains(v)), "lost voters are out: {s:#}");
    let d = decision(&g);
    assert_eq!(d["survivor"], survivor, "{d}");
    assert_eq!(d["unconfirmed"], serde_json::json!([]), "{d}");
    let backups = g.path().join(format!("instances/{}/zk/recovery-backups", instance_of(&s, survivor)));
    let copies: Vec<_> = std::fs::read_dir(&backups).expect("backup dir").flatten().collect();
    assert_eq!(copies.len(), 1, "one copy before the rebuild");
    assert!(copies[0].path().join("data/version-2").is_dir(), "the copy holds the data");
    assert_eq!(data.missing(&s, "before", 100), 0, "every key the survivor held");
    data.write(&s, "after", 20);

    // 3 voters + 2 observers; the leader and another voter die: one voter and both observers
    // survive, each must stop and report before anyone is chosen.
    let s = g.scale(5);
    assert_eq!((members(&s).len(), voters(&s)), (5, 3), "{s:#}");
    let leader = leaders(&s)[0];
    let other = voters_ids(&s).into_iter().find(|v| *v != leader).expect("another voter");
    let survivors: Vec<u64> = ids(&s).into_iter().filter(|id| *id != leader && *id != other).collect();
    for id in &survivors {
        assert_eq!(held_by(&data, &s, *id, "after", 20), 0, "server {id} holds every key");
    }
    g.kill(leader, false);
    g.kill(other, false);
    let s = g.wait_for("rebuilt again with 5 members", |s| {
        s["converged"] == true && voters(s) == 3 && members(s).len() == 5 && ids(s).iter().all(|id| *id != leader)
    });
    let d = decision(&g);
    let candidates: Vec<u64> =
        d["candidates"].as_array().expect("candidates").iter().map(|c| c[0].as_u64().expect("id")).collect();
    assert_eq!(candidates, survivors, "every survivor reported: {d}");
    assert!(survivors.iter().all(|id| ids(&s).contains(id)), "the others rejoined: {s:#}");
    assert_eq!(data.missing(&s, "before", 100) + data.missing(&s, "after", 20), 0);
}

/// Slot mode: lost members' replacements bring their data back, so recovery must not rebuild
/// while it waits for them. With the replacements slow to come (the group controller frozen, as
/// an Auto Scaling group can take minutes) the survivor stops and says what it waits for; once the
/// slots are taken again it restarts as it was, and nothing at all is lost.
#[test]
fn slot_mode_quorum_loss_waits_for_the_slots_and_loses_nothing() {
    let g = Group::up_with(3, "127.116.1", &["--mode", "slot"]);
    let data = Data::new(&g);
    let s = g.wait_converged();
    data.write(&s, "slot", 60);
    let survivor = follower(&s);
    let victims: Vec<u64> = ids(&s).into_iter().filter(|id| *id != survivor).collect();
    let controller: i32 =
        std::fs::read_to_string(g.path().join("controller.pid")).expect("controller.pid").trim().parse().expect("pid");
    let signal = |sig| nix::sys::signal::kill(nix::unistd::Pid::from_raw(controller), sig).expect("signal controller");
    signal(nix::sys::signal::Signal::SIGSTOP);
    for v in &victims {
        g.kill(*v, false);
    }
    // The group notices the failures (what its health check does after its delay, done here by
    // hand because the controller is frozen) but launches no replacement yet.
    let state = zkpilot_local::StateDir::open(g.path()).expect("group state");
    for v in &victims {
        let instance = zkpilot_core::model::InstanceId(instance_of(&s, *v));
        state.set_state(&instance, zkpilot_core::InstanceState::Terminated).expect("terminate");
    }
    let inst = instance_of(&s, survivor);
    let s = g.wait_for("the survivor says what it waits for", |s| {
        s["instances"].as_array().expect("instances").iter().any(|i| {
            i["id"] == inst.as_str()
                && i["phase"] == "recovering"
                && i["detail"].as_str().is_some_and(|d| d.contains("not confirmed gone"))
        })
    });
    assert!(!g.path().join("recovery/decision.json").exists(), "no rebuild decided: {s:#}");
    signal(nix::sys::signal::Signal::SIGCONT);
    let s = g.wait_converged();
    assert_eq!((voters(&s), ids(&s).len()), (3, 3), "{s:#}");
    assert!(victims.iter().all(|v| ids(&s).contains(v)), "same servers back: {s:#}");
    assert!(!g.path().join("recovery/decision.json").exists(), "still no rebuild");
    assert_eq!(data.missing(&s, "slot", 60), 0);
}

/// A hung server (its JVM stopped, its instance and agent alive: nothing restarts it) is reported
/// unhealthy by the lease holder after the policy's time, and the group replaces the instance.
#[test]
fn hung_member_is_reported_unhealthy_and_replaced() {
    let g = Group::up_with(3, "127.117.1", &["--unhealthy-after", "15"]);
    let data = Data::new(&g);
    let s = g.wait_converged();
    data.write(&s, "hung", 30);
    let victim = follower(&s);
    let inst = instance_of(&s, victim);
    let pid: i32 = std::fs::read_to_string(g.path().join(format!("instances/{inst}/zk.pid")))
        .expect("zk.pid")
        .trim()
        .parse()
        .expect("pid");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    let s = g.wait_for("the hung member replaced", |s| {
        s["converged"] == true && voters(s) == 3 && !ids(s).contains(&victim)
    });
    let replaced = s["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .any(|i| i["id"] == inst.as_str() && i["state"] == "terminated");
    assert!(replaced, "the hung instance was terminated by the group: {s:#}");
    assert_eq!(data.missing(&s, "hung", 30), 0);
}

/// Disk guard: a slot whose storage comes back empty (a new volume) restarts its server with no
/// data and `db.autocreate=false`: it may not vote until the leader has synced it, so it can
/// never help elect an empty history. It ends with every key and a fresh stamp for its slot.
#[test]
fn empty_disk_rejoins_by_sync_and_gets_every_key() {
    let net = "127.119.1";
    let g = Group::up_with(3, net, &["--mode", "slot"]);
    let data = Data::new(&g);
    let s = g.wait_converged();
    data.write(&s, "disk", 40);
    let o = g.run(&["local", "down"]);
    assert!(o.status.success(), "{}", text(&o));
    let slot = g.path().join("slots/2");
    let stamp = read_json(slot.join("data/zkpilot.stamp"));
    for e in std::fs::read_dir(&slot).expect("slot dir").flatten() {
        let p = e.path();
        if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) }.expect("wipe");
    }
    let o = g.run(&["local", "up", "--size", "3", "--net", net, "--timeout", "180"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = g.wait_converged();
    assert_eq!((voters(&s), ids(&s)), (3, vec![1, 2, 3]), "{s:#}");
    assert_eq!(read_json(slot.join("data/zkpilot.stamp")), stamp, "same cluster, same server");
    assert!(!slot.join("data/initialize").exists(), "no initialize marker: it may not vote before syncing");
    assert_eq!(data.missing(&only_member(&s, 2), "disk", 40), 0, "server 2 itself holds every key");
}

/// Disk guard: a data dir ZooKeeper refuses to load (transaction logs but no snapshot, what a
/// learner killed mid-sync leaves) is moved aside, not deleted, once an ensemble serves, and the
/// server is synced again from the leader.
#[test]
fn unloadable_data_dir_is_set_aside_and_resynced() {
    let net = "127.120.1";
    let g = Group::up(3, net);
    let data = Data::new(&g);
    let s = g.wait_converged();
    data.write(&s, "unload", 30);
    let victim = follower(&s);
    let base = g.path().join(format!("instances/{}/zk", instance_of(&s, victim)));
    let o = g.run(&["local", "down"]);
    assert!(o.status.success(), "{}", text(&o));
    let v2 = base.join("data/version-2");
    let mut removed = 0;
    for e in std::fs::read_dir(&v2).expect("version-2").flatten() {
        if e.file_name().to_string_lossy().starts_with("snapshot.") {
            std::fs::remove_file(e.path()).expect("rm snapshot");
            removed += 1;
        }
    }
    assert!(removed > 0, "the follower had a snapshot to remove");
    let o = g.run(&["local", "up", "--size", "3", "--net", net, "--timeout", "180"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = g.wait_for("all three serving again", |s| s["converged"] == true && ids(s).contains(&victim));
    let aside: Vec<_> = std::fs::read_dir(base.join("recovery-backups"))
        .expect("backups")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("unloadable-"))
        .collect();
    assert_eq!(aside.len(), 1, "moved aside once");
    assert!(aside[0].path().join("version-2").read_dir().expect("kept").next().is_some(), "the logs are kept");
    assert_eq!(data.missing(&only_member(&s, victim), "unload", 30), 0, "resynced");
}
