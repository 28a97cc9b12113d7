//! Backups: what one is (its manifest), when one is due, and which ones retention drops.
//!
//! A backup is one server's newest valid snapshot plus every transaction log needed to replay
//! from it (snapshots are fuzzy, so the log that was open when the snapshot began is included),
//! each log cut at its last intact entry. Restoring it means starting one server alone on those
//! files; ZooKeeper itself loads the snapshot and replays the logs. The manifest is written last:
//! a backup without one is incomplete and never listed.

use serde::{Deserialize, Serialize};

use crate::model::ServerId;

/// Why a backup was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupReason {
    /// The leader's agent, every `[backup] interval_ms`.
    Periodic,
    /// The lease holder, right before it changes the membership.
    BeforeChange,
    /// An operator (`POST /backup`).
    Manual,
}

impl std::fmt::Display for BackupReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Periodic => "periodic",
            Self::BeforeChange => "before-change",
            Self::Manual => "manual",
        })
    }
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    /// File name inside `version-2` (`snapshot.<zxid>` or `log.<zxid>`).
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// What a backup holds; the last object written, so its presence means "complete".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Unique, sortable by time: `<taken_ms>-<reason>-server-<id>`.
    pub name: String,
    /// The ensemble's cluster id (data stamp).
    pub cluster_id: String,
    /// Server whose data was copied.
    pub server_id: ServerId,
    /// When, ms since the Unix epoch.
    pub taken_ms: u64,
    /// Why.
    pub reason: BackupReason,
    /// The snapshot's zxid (its name).
    pub snapshot_zxid: u64,
    /// The last zxid a restore of this backup holds.
    pub last_zxid: u64,
    /// The committed config version the agent saw, if it saw one.
    pub config_version: Option<u64>,
    /// The files, snapshot first.
    pub files: Vec<BackupFile>,
}

impl Manifest {
    /// Bytes in all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// A backup's name: sortable by time, unique per server and reason.
pub fn backup_name(taken_ms: u64, reason: BackupReason, server: ServerId) -> String {
    format!("{taken_ms:013}-{reason}-server-{server}")
}

/// True for a safe object/file name: ASCII letters, digits, `.`, `_`, `-`, not starting with `.`
/// (backup and file names become paths and S3 keys; nothing may climb out of the store).
pub fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 200
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// True if a periodic backup is due: none yet, or the newest of any kind is `interval_ms` old.
/// `interval_ms == 0` turns periodic backups off.
pub fn periodic_due(newest_ms: Option<u64>, interval_ms: u64, now_ms: u64) -> bool {
    interval_ms > 0 && newest_ms.is_none_or(|t| now_ms.saturating_sub(t) >= interval_ms)
}

/// The backups retention removes: everything but the newest `keep` (never fewer than one kept,
/// so a misconfigured `keep = 0` cannot delete the only copy). Names, oldest first.
pub fn to_delete(manifests: &[Manifest], keep: usize) -> Vec<String> {
    let mut sorted: Vec<&Manifest> = manifests.iter().collect();
    sorted.sort_by(|a, b| (b.taken_ms, &b.name).cmp(&(a.taken_ms, &a.name)));
    let mut drop: Vec<String> = sorted.into_iter().skip(keep.max(1)).map(|m| m.name.clone()).collect();
    drop.reverse();
    drop
}

/// The backup to restore for `wanted`: a name, or `latest` (the newest by time).
pub fn pick<'a>(manifests: &'a [Manifest], wanted: &str) -> Option<&'a Manifest> {
    if wanted == "latest" {
        manifests.iter().max_by(|a, b| (a.taken_ms, &a.name).cmp(&(b.taken_ms, &b.name)))
    } else {
        manifests.iter().find(|m| m.name == wanted)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn manifest(taken_ms: u64) -> Manifest {
        Manifest {
            name: backup_name(taken_ms, BackupReason::Periodic, ServerId::new(1).expect("id")),
            cluster_id: "c".into(),
            server_id: ServerId::new(1).expect("id"),
            taken_ms,
            reason: BackupReason::Periodic,
            snapshot_zxid: 0,
            last_zxid: 0,
            config_version: None,
            files: Vec::new(),
        }
    }

    #[test]
    fn names_sort_by_time() {
        let a = backup_name(999, BackupReason::Manual, ServerId::new(2).expect("id"));
        let b = backup_name(1_700_000_000_000, BackupReason::BeforeChange, ServerId::new(1).expect("id"));
        assert_eq!(b, "1700000000000-before-change-server-1");
        assert!(a < b);
    }

    #[test]
    fn unsafe_names_are_refused() {
        assert!(safe_name("1700000000000-manual-server-1") && safe_name("log.100000001"));
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b", "a\\b"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn periodic_schedule() {
        assert!(periodic_due(None, 1000, 5));
        assert!(!periodic_due(Some(4500), 1000, 5000));
        assert!(periodic_due(Some(4000), 1000, 5000));
        assert!(!periodic_due(None, 0, 5000), "0 turns periodic backups off");
    }

    #[test]
    fn latest_and_by_name() {
        let all = [manifest(3), manifest(9), manifest(5)];
        assert_eq!(pick(&all, "latest").map(|m| m.taken_ms), Some(9));
        assert_eq!(pick(&all, &all[2].name).map(|m| m.taken_ms), Some(5));
        assert!(pick(&all, "nope").is_none());
        assert!(pick(&[], "latest").is_none());
    }

    proptest! {
        /// Retention keeps exactly the newest `max(keep, 1)` and deletes only names it was given.
        #[test]
        fn retention_keeps_the_newest(times in proptest::collection::btree_set(0u64..10_000, 0..30), keep in 0usize..8) {
            let all: Vec<Manifest> = times.iter().map(|t| manifest(*t)).collect();
            let dropped = to_delete(&all, keep);
            let kept: Vec<u64> = all.iter().filter(|m| !dropped.contains(&m.name)).map(|m| m.taken_ms).collect();
            prop_assert_eq!(kept.len(), all.len().min(keep.max(1)));
            let newest_dropped = all.iter().filter(|m| dropped.contains(&m.name)).map(|m| m.taken_ms).max();
            if let Some(d) = newest_dropped {
                prop_assert!(kept.iter().all(|k| *k > d), "a newer backup was dropped before an older one");
            }
        }
    }
}
