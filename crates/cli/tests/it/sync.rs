//! The DIFF-to-an-empty-learner failure, reproduced on real ZooKeeper release by release, and what
//! `[server] learner_sync = "auto"` does about it.
//!
//! On 3.8.x an observer commits what a DIFF sync brings it with zxid -1 (`Learner.syncWithLeader`
//! builds those requests without a zxid; fixed by ZOOKEEPER-4925 in 3.9.4), into the in-memory
//! committed log it keeps when a reconfig promotes it and an election makes it leader. A leader
//! whose committed log begins at -1 finds an empty learner (last zxid -1 with
//! `db.autocreate=false`) "inside" that log and syncs it by DIFF from it ("Using committedLog"):
//! the learner is sent entries that are not the history. Seen here, on 3.8.0 and 3.8.6 alike: it
//! fails ("Committing zxid 0x0 but next pending txn …") and exits (code 12), again on every
//! restart, until 500 later transactions have pushed the -1 entries out of the leader's committed
//! log and it gets a snapshot; or a DIFF applies and the learner serves a tree that lacks
//! everything written before the DIFF's window.
//!
//! The recipe drives a zkpilot group there step by step: an observer misses more transactions
//! than the committed log holds (500) and syncs by DIFF, so its whole committed log is -1
//! entries; a planned replacement promotes it; killing the leader leaves it the voter with the
//! highest id, so it leads; the killed leader's replacement joins empty.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// Transactions the observer misses: more than ZooKeeper's committed log keeps (500, its
/// minimum), so after its DIFF every entry of the observer's committed log is one of them.
const MISSED: usize = 800;

/// What the recipe found: how leaders synced learners, how often the empty joiner's JVM exited
/// on a sync it could not apply, and how many of the keys written before it joined it lacks once
/// converged (read on that server alone).
struct Found {
    tally: zkpilot_zk::synclog::SyncTally,
    joiner_crashes: usize,
    missing_on_joiner: usize,
}

/// The log line of a learner given a DIFF that is not the leader's history.
const BAD_DIFF: &str = "but next pending txn";

/// Resumes a SIGSTOPped process when dropped, so a failing assertion in between does not leave
/// a stopped JVM behind for the group's shutdown to wait on.
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Self {
        signal(pid, "-STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ignored = std::process::Command::new("kill").args(["-CONT", &self.0.to_string()]).output();
    }
}

fn signal(pid: u32, sig: &str) {
    let o = std::process::Command::new("kill").args([sig, &pid.to_string()]).output().expect("kill");
    assert!(o.status.success(), "kill {sig} {pid}: {}", text(&o));
}

fn mntr(rt: &tokio::runtime::Runtime, address: &str) -> std::collections::BTreeMap<String, String> {
    rt.block_on(zkpilot_zk::probe::mntr(address)).unwrap_or_default()
}

fn reproduce(net: &str, install: &Path, learner_sync: &str) -> Found {
    let install = install.to_str().expect("utf-8");
    let g = Group::up_prepared(
        4,
        net,
        &["--zookeeper", install, "--learner-sync", learner_sync, "--target-voters", "3"],
        // A transaction-log DIFF is allowed up to this multiple of the leader's last snapshot:
        // the test's tiny tree stands in for a production-sized one (the default 0.33 of a
        // multi-megabyte snapshot allows such a DIFF too).
        |dir| std::fs::write(dir.join("base.cfg"), "snapshotSizeFactor=1000\n").expect("base.cfg"),
    );
    let s = g.wait_converged();
    let data = Data::new(&g);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let observer = members(&s).iter().find(|m| m["role"] == "observer").and_then(|m| m["id"].as_u64());
    let observer = observer.unwrap_or_else(|| panic!("three voters and an observer: {s:#}"));
    assert!(ids(&s).iter().all(|id| *id <= observer), "the observer has the highest id: {s:#}");
    data.write(&s, "before", 50);

    // 1. The observer misses MISSED transactions and comes back by DIFF. Stopped, not killed: its
    // in-memory committed log is what matters, and SIGSTOP keeps it; the leader drops it once
    // it stops answering (syncLimit ticks).
    let pid = zk_pids(&g, &s)[&observer];
    let leader = leaders(&s)[0];
    let leader_client = format!("{}:2181", member(&s, leader).and_then(|m| m["address"].as_str()).expect("address"));
    let stopped = Stopped::new(pid);
    let deadline = Instant::now() + Duration::from_secs(90);
    while mntr(&rt, &leader_client).get("synced_observers").map(String::as_str) != Some("0") {
        assert!(Instant::now() < deadline, "the leader still counts the stopped observer");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Through the leader alone: a session must not try the stopped server.
    data.write_via(&leader_client, "missed", MISSED);
    drop(stopped);
    let deadline = Instant::now() + Duration::from_secs(90);
    while mntr(&rt, &leader_client).get("synced_observers").map(String::as_str) != Some("1") {
        assert!(Instant::now() < deadline, "the observer did not sync again");
        std::thread::sleep(Duration::from_millis(200));
    }
    g.wait_converged();

    // 2. A planned replacement of a follower promotes the observer in its place.
    let follower =
        members(&s).iter().find(|m| m["role"] == "follower").and_then(|m| m["id"].as_u64()).expect("a follower");
    let o = g.run(&["local", "terminate", &follower.to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    let s = g.wait_for("the observer promoted", |v| {
        v["converged"] == true
            && member(v, observer).is_some_and(|m| m["voting"] == true)
            && !ids(v).contains(&follower)
    });

    // 3. The leader dies; of the two voters left the former observer has the higher id and
    // the same zxid, so it wins the election. The killed leader's replacement joins empty.
    let leader = leaders(&s)[0];
    assert_ne!(leader, observer, "the promotion did not move the leadership");
    let before: Vec<String> = members(&s).iter().filter_map(|m| m["instance"].as_str().map(str::to_string)).collect();
    let dead = instance_of(&s, leader);
    g.kill(leader, false);
    let joined = |v: &Value| {
        members(v)
            .iter()
            .find(|m| m["instance"].as_str().is_some_and(|i| !before.iter().any(|b| b == i)))
            .and_then(|m| m["id"].as_u64())
    };
    let s = g.wait_for("the dead leader replaced", |v| {
        v["converged"] == true
            && !members(v).iter().any(|m| m["instance"] == dead.as_str())
            && voters(v) == 3
            && ids(v).len() == 4
            && joined(v).is_some()
    });
    assert_eq!(leaders(&s), vec![observer], "the former observer leads: {s:#}");
    let joiner = joined(&s).expect("the server that joined empty");
    let joiner_instance = instance_of(&s, joiner);
    let log = std::fs::read_to_string(g.path().join("instances").join(&joiner_instance).join("zk/logs/zookeeper.log"))
        .unwrap_or_default();
    for l in log
        .lines()
        .filter(|l| ["Getting a diff", "Getting a snapshot", BAD_DIFF, "Exiting JVM"].iter().any(|k| l.contains(k)))
    {
        eprintln!("joiner {joiner}: {l}");
    }
    let joiner_crashes = log.lines().filter(|l| l.contains(BAD_DIFF)).count();
    let address = member(&s, joiner).and_then(|m| m["address"].as_str()).expect("address");
    // Read on the joiner alone: what it serves is what its sync gave it.
    let missing_on_joiner = data.missing_via(&format!("{address}:2181"), "before", 50);
    let tally = zkpilot_zk::synclog::scan_dir(g.path()).expect("logs");
    // The leaders' own words about each learner sync: the evidence, kept in the test's output.
    for line in sync_lines(g.path()) {
        eprintln!("{line}");
    }
    eprintln!(
        "{install} learner_sync={learner_sync}: {tally:?}; the joiner (server {joiner}) exited {joiner_crashes} times \
         on a bad DIFF, {missing_on_joiner} of 50 keys missing on it once converged"
    );
    Found { tally, joiner_crashes, missing_on_joiner }
}

/// The failure: a DIFF reached the empty joiner, and it crashed on it or serves a partial tree.
fn assert_harmed(f: &Found) {
    assert!(f.tally.diff_to_empty_learner >= 1, "{:?}", f.tally);
    assert!(
        f.joiner_crashes >= 1 || f.missing_on_joiner > 0,
        "the DIFF did harm: {} crashes, {} keys missing",
        f.joiner_crashes,
        f.missing_on_joiner
    );
}

/// No DIFF reached the empty joiner; it never crashed and holds every key.
fn assert_unharmed(f: &Found) {
    assert_eq!((f.tally.diff_to_empty_learner, f.joiner_crashes, f.missing_on_joiner), (0, 0, 0), "{:?}", f.tally);
}

/// 3.8.6 with ZooKeeper's own choice of sync: the failure happens.
#[test]
fn empty_joiner_is_synced_by_diff_and_harmed_on_3_8_6_without_forced_snapshots() {
    assert_harmed(&reproduce("127.132.1", &zkpilot_zk::install::cached_home("3.8.6"), "zookeeper"));
}

/// Debian's 3.8.0 likewise.
#[test]
fn empty_joiner_is_synced_by_diff_and_harmed_on_3_8_0_without_forced_snapshots() {
    assert_harmed(&reproduce("127.132.2", Path::new(zkpilot_zk::install::DEBIAN_HOME), "zookeeper"));
}

/// 3.9.5 (ZOOKEEPER-4925): the same recipe, ZooKeeper's own choice, and the joiner gets a
/// snapshot; this is why `auto` leaves 3.9.4+ alone.
#[test]
fn empty_joiner_gets_a_snapshot_on_3_9_5() {
    assert_unharmed(&reproduce("127.132.3", &zkpilot_zk::install::cached_home("3.9.5"), "zookeeper"));
}

/// 3.8.6 with zkpilot's default (`auto` = forced snapshots before 3.9.4): the recipe is harmless.
#[test]
fn auto_learner_sync_closes_it_on_3_8_6() {
    assert_unharmed(&reproduce("127.132.4", &zkpilot_zk::install::cached_home("3.8.6"), "auto"));
}

/// Every leader's log lines about how it synced a learner, oldest file first.
fn sync_lines(dir: &Path) -> Vec<String> {
    let logs = zkpilot_zk::synclog::logs_under(dir).expect("logs");
    let keep = [
        "Synchronizing with Learner",
        "Sending DIFF",
        "Sending snapshot",
        "Using committedLog",
        "Use txnlog",
        "Unable to find proposals",
        "Txnlog size",
        "LEADING",
        "No snapshot found",
    ];
    let mut out = Vec::new();
    for p in logs {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        for l in text.lines().filter(|l| keep.iter().any(|k| l.contains(k))) {
            out.push(format!(
                "{}: {l}",
                p.parent().and_then(|d| d.parent()).map_or(String::new(), |d| d.display().to_string())
            ));
        }
    }
    out
}
