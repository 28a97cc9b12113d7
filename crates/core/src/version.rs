//! ZooKeeper releases, and the decisions that depend on which one a server runs: how its leader
//! syncs a learner that is behind, and which version changes a rolling restart may make.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// Compares two release numbers by number (`3.8.6` < `3.9.5` < `3.10.0`); a part that is not a
/// number (the tail of `3.9.5-SNAPSHOT`) counts as 0.
pub fn compare(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<u32> { v.split(['.', '-']).take(3).map(|p| p.parse().unwrap_or(0)).collect() };
    parts(a).cmp(&parts(b))
}

/// How a leader brings a learner that is behind up to date (ZooKeeper's
/// `LearnerHandler.syncFollower` picks DIFF, TRUNC or SNAP unless told otherwise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LearnerSync {
    /// Chosen per release by [`LearnerSync::resolve`].
    #[default]
    Auto,
    /// Always a full snapshot (`zookeeper.forceSnapshotSync=true`): always complete, costs a
    /// transfer of the whole tree per learner (re)connect.
    Snapshot,
    /// ZooKeeper's own choice, but never a DIFF read from the on-disk transaction log
    /// (`zookeeper.snapshotSizeFactor=-1`, `ZKDatabase.isTxnLogSyncEnabled`): a learner further
    /// behind than the in-memory committed log (500 transactions) gets a snapshot.
    NoLogDiff,
    /// ZooKeeper's own choice (DIFF from the committed log or the txn log, TRUNC, SNAP).
    Zookeeper,
}

impl LearnerSync {
    /// The strategy a server on `version` (`None`: unknown) runs with. Everything but `Auto` is
    /// the operator's explicit choice and kept. `Auto` is a full snapshot on every release: the
    /// chaos suite caught a 3.8.0 leader whose in-memory committed log reported
    /// `minCommittedLog=0xffffffffffffffff` sending an empty learner (its disk lost;
    /// `db.autocreate=false` makes its last zxid -1) a DIFF of only the tail of the history
    /// ("Using committedLog"); the learner exited ("Committing zxid 0x0 but next pending txn")
    /// and could never start again ("No snapshot found, but there are log entries";
    /// ZOOKEEPER-3781 fixed only the `snapshot.trust.empty` case). That branch of
    /// `LearnerHandler.syncFollower` is unchanged in 3.8.6 and 3.9.5, and neither
    /// `no-log-diff` (it closes only the transaction-log branch) nor a snapshot taken on the
    /// learner afterwards (it would make the missing history permanent) closes it;
    /// docs/versions.md has the per-release evidence.
    pub fn resolve(self, version: Option<&str>) -> LearnerSync {
        match self {
            LearnerSync::Auto => {
                let _ = version;
                LearnerSync::Snapshot
            }
            other => other,
        }
    }

    /// The JVM system properties that select it (none for ZooKeeper's own choice).
    pub fn jvm_properties(self, version: Option<&str>) -> Vec<String> {
        match self.resolve(version) {
            LearnerSync::Snapshot => vec!["-Dzookeeper.forceSnapshotSync=true".into()],
            LearnerSync::NoLogDiff => vec!["-Dzookeeper.snapshotSizeFactor=-1".into()],
            LearnerSync::Zookeeper | LearnerSync::Auto => Vec::new(),
        }
    }
}

impl LearnerSync {
    /// Every value, as config files and flags spell them.
    pub const NAMES: [&'static str; 4] = ["auto", "snapshot", "no-log-diff", "zookeeper"];
}

impl std::str::FromStr for LearnerSync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LearnerSync::Auto),
            "snapshot" => Ok(LearnerSync::Snapshot),
            "no-log-diff" => Ok(LearnerSync::NoLogDiff),
            "zookeeper" => Ok(LearnerSync::Zookeeper),
            other => Err(format!("'{other}' is not one of {}", Self::NAMES.join(", "))),
        }
    }
}

impl std::fmt::Display for LearnerSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = match self {
            LearnerSync::Auto => 0,
            LearnerSync::Snapshot => 1,
            LearnerSync::NoLogDiff => 2,
            LearnerSync::Zookeeper => 3,
        };
        f.write_str(Self::NAMES[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number_not_text() {
        assert_eq!(compare("3.8.6", "3.9.5"), Ordering::Less);
        assert_eq!(compare("3.10.0", "3.9.5"), Ordering::Greater);
        assert_eq!(compare("3.9.5", "3.9.5"), Ordering::Equal);
        assert_eq!(compare("3.8.0", "3.8.10"), Ordering::Less);
        assert_eq!(compare("3.9.5-SNAPSHOT", "3.9.5"), Ordering::Equal);
    }

    #[test]
    fn an_explicit_strategy_is_kept_and_auto_never_leaves_zookeeper_to_choose() {
        for v in [None, Some("3.8.0"), Some("3.8.6"), Some("3.9.5")] {
            assert_eq!(LearnerSync::Zookeeper.resolve(v), LearnerSync::Zookeeper);
            assert_eq!(LearnerSync::NoLogDiff.resolve(v), LearnerSync::NoLogDiff);
            assert_ne!(LearnerSync::Auto.resolve(v), LearnerSync::Auto);
        }
        assert_eq!(LearnerSync::Snapshot.jvm_properties(None), vec!["-Dzookeeper.forceSnapshotSync=true"]);
        assert_eq!(LearnerSync::NoLogDiff.jvm_properties(None), vec!["-Dzookeeper.snapshotSizeFactor=-1"]);
        assert!(LearnerSync::Zookeeper.jvm_properties(None).is_empty());
    }

    #[test]
    fn names_round_trip_as_flags_and_config_spell_them() {
        for name in LearnerSync::NAMES {
            let v: LearnerSync = name.parse().expect("parses");
            assert_eq!(v.to_string(), name);
            assert_eq!(serde_json::to_value(v).expect("json"), serde_json::Value::String(name.into()));
        }
        assert!("diff".parse::<LearnerSync>().expect_err("not a value").contains("no-log-diff"));
    }
}
