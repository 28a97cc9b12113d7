//! How leaders synced their learners, read back from ZooKeeper's own log.
//!
//! `LearnerHandler.syncFollower` logs one `Synchronizing with Learner sid: N … peerLastZxid=0x…`
//! line per learner connection, then (on the same thread, named after the learner's address and
//! port) how it syncs it: `Sending snapshot`, `Sending DIFF`, `Sending TRUNC`. A learner whose
//! last zxid is `0xffffffffffffffff` (-1) has an empty data dir (`db.autocreate=false`); it must
//! get a snapshot, since a DIFF leaves it with a transaction log and no snapshot, which it cannot
//! start from ("No snapshot found, but there are log entries"). The chaos harness and the sync
//! tests count these from the logs of every server that ever ran.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// What the logs say about learner syncs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncTally {
    /// Learner connections a leader synced by snapshot.
    pub snapshot: u64,
    /// … by DIFF (possibly empty: the learner was up to date).
    pub diff: u64,
    /// … by TRUNC.
    pub trunc: u64,
    /// Learners with an empty data dir (last zxid -1) a leader synced by DIFF or TRUNC: the
    /// failure the learner cannot recover from.
    pub diff_to_empty_learner: u64,
    /// Servers that refused to start on "No snapshot found, but there are log entries".
    pub no_snapshot_with_log: u64,
}

impl SyncTally {
    /// Adds another tally.
    pub fn add(&mut self, o: &SyncTally) {
        self.snapshot += o.snapshot;
        self.diff += o.diff;
        self.trunc += o.trunc;
        self.diff_to_empty_learner += o.diff_to_empty_learner;
        self.no_snapshot_with_log += o.no_snapshot_with_log;
    }
}

/// The thread name of a log line: what the layout prints between `[` and the `:Class@line]`
/// (`LearnerHandler-/127.0.0.1:53044`).
fn thread(line: &str) -> Option<&str> {
    let start = line.find("[LearnerHandler-")? + 1;
    let rest = &line[start..];
    // `LearnerHandler-/127.0.0.1:53044:LearnerHandler@805]` or `…:o.a.z.s.q.LearnerHandler@806]`
    let end = rest.find(":LearnerHandler@").or_else(|| rest.find(":o.a.z"))?;
    Some(&rest[..end])
}

/// Tallies one server's log.
pub fn scan(text: &str) -> SyncTally {
    let mut t = SyncTally::default();
    // Per learner connection: whether the learner reported an empty data dir.
    let mut empty: BTreeMap<&str, bool> = BTreeMap::new();
    for line in text.lines() {
        if line.contains("No snapshot found, but there are log entries") {
            t.no_snapshot_with_log += 1;
        }
        let Some(th) = thread(line) else { continue };
        if line.contains("Synchronizing with Learner sid:") {
            empty.insert(th, line.contains("peerLastZxid=0xffffffffffffffff"));
            continue;
        }
        let how = if line.contains("Sending snapshot") {
            Some(&mut t.snapshot)
        } else if line.contains("Sending DIFF") {
            Some(&mut t.diff)
        } else if line.contains("Sending TRUNC") {
            Some(&mut t.trunc)
        } else {
            None
        };
        if let Some(counter) = how {
            *counter += 1;
            if empty.remove(th) == Some(true) && !line.contains("Sending snapshot") {
                t.diff_to_empty_learner += 1;
            }
        }
    }
    t
}

/// Every `zookeeper.log` under `dir`, in path order (every server that ever ran in a local group
/// keeps its log there, terminated ones included).
pub fn logs_under(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let p = e.path();
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() && p.file_name().is_some_and(|n| n == "zookeeper.log") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Tallies every `zookeeper.log` under `dir`.
pub fn scan_dir(dir: &Path) -> std::io::Result<SyncTally> {
    let mut total = SyncTally::default();
    for p in logs_under(dir)? {
        total.add(&scan(&String::from_utf8_lossy(&std::fs::read(&p)?)));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as ZooKeeper 3.8.0 (class names short) and 3.9.5 (abbreviated packages) log them.
    const LOG: &str = "\
2026-12-01 15:35:01,100 [myid:1] - INFO  [LearnerHandler-/127.0.0.1:53030:LearnerHandler@805] - Synchronizing with Learner sid: 3 maxCommittedLog=0x100000017 minCommittedLog=0x100000001 lastProcessedZxid=0x100000017 peerLastZxid=0xffffffffffffffff
2026-12-01 15:35:01,101 [myid:1] - WARN  [LearnerHandler-/127.0.0.1:53030:ZKDatabase@387] - Unable to find proposals from txnlog for zxid: 0xffffffffffffffff
2026-12-01 15:35:01,102 [myid:1] - INFO  [LearnerHandler-/127.0.0.1:53030:LearnerHandler@572] - Sending snapshot last zxid of peer is 0xffffffffffffffff, zxid of leader is 0x100000018
2026-12-01 15:35:02,100 [myid:1] - INFO  [LearnerHandler-/127.0.0.1:53044:o.a.z.s.q.LearnerHandler@806] - Synchronizing with Learner sid: 3 maxCommittedLog=0x100000019 minCommittedLog=0x100000001 lastProcessedZxid=0x100000019 peerLastZxid=0x100000017
2026-12-01 15:35:02,101 [myid:1] - INFO  [LearnerHandler-/127.0.0.1:53044:o.a.z.s.q.LearnerHandler@870] - Using committedLog for peer sid: 3
2026-12-01 15:35:02,102 [myid:1] - INFO  [LearnerHandler-/127.0.0.1:53044:o.a.z.s.q.LearnerHandler@978] - Sending DIFF zxid=0x100000019  for peer sid: 3
2026-12-01 15:35:03,100 [myid:1] - INFO  [LearnerHandler-/127.0.0.1:53050:LearnerHandler@805] - Synchronizing with Learner sid: 4 maxCommittedLog=0xffffffffffffffff minCommittedLog=0xffffffffffffffff lastProcessedZxid=0x200000004 peerLastZxid=0xffffffffffffffff
2026-12-01 15:35:03,101 [myid:1] - INFO  [LearnerHandler-/127.0.0.1:53050:LearnerHandler@869] - Using committedLog for peer sid: 4
2026-12-01 15:35:03,102 [myid:1] - INFO  [LearnerHandler-/127.0.0.1:53050:LearnerHandler@977] - Sending DIFF zxid=0x200000004  for peer sid: 4
2026-12-01 15:35:09,000 [myid:4] - ERROR [main:QuorumPeer@1100] - Unable to load database on disk
java.io.IOException: No snapshot found, but there are log entries. Something is broken!
";

    #[test]
    fn a_diff_to_an_empty_learner_is_told_from_a_snapshot_and_from_a_diff_to_a_learner_behind() {
        let t = scan(LOG);
        assert_eq!(t, SyncTally { snapshot: 1, diff: 2, trunc: 0, diff_to_empty_learner: 1, no_snapshot_with_log: 1 });
    }

    #[test]
    fn a_directory_tree_of_logs_adds_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in ["i-0001", "i-0002"] {
            let logs = dir.path().join(i).join("zk/logs");
            std::fs::create_dir_all(&logs).expect("mkdir");
            std::fs::write(logs.join("zookeeper.log"), LOG).expect("write");
        }
        std::fs::write(dir.path().join("other.log"), LOG).expect("write");
        assert_eq!(scan_dir(dir.path()).expect("scan").diff_to_empty_learner, 2);
    }
}
