//! ZooKeeper releases, and the decisions that depend on which one a server runs: how its leader
//! syncs a learner that is behind, and which version changes a rolling restart may make.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// The ZooKeeper release zkpilot uses when none is named (the local default install, the AWS
/// template's default), and tests first.
pub const DEFAULT_VERSION: &str = "3.9.5";

/// Compares two release numbers by number (`3.8.6` < `3.9.5` < `3.10.0`); a part that is not a
/// number (the tail of `3.9.5-SNAPSHOT`) counts as 0.
pub fn compare(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<u32> { v.split(['.', '-']).take(3).map(|p| p.parse().unwrap_or(0)).collect() };
    parts(a).cmp(&parts(b))
}

/// The first release with ZOOKEEPER-4925 (an observer's committed log carries real zxids):
/// from here on ZooKeeper's own sync choice never sends an empty learner a DIFF.
pub const FIRST_WITH_ZOOKEEPER_4925: &str = "3.9.4";

/// The first release whose client port reloads its certificate when the file changes
/// (`client.certReload`, ZOOKEEPER-3806 in 3.7.2/3.8.1/3.9.0); the quorum's reload
/// (`sslQuorumReloadCertFiles`) is older (3.5.5).
pub const FIRST_WITH_CLIENT_CERT_RELOAD: &str = "3.8.1";

/// Whether zkpilot's TLS can run on `version`: without client certificate reload a renewed
/// certificate would not be served until a restart, and an agent that renews on schedule would
/// let its server's certificate expire under it. A release that cannot be told is let through
/// (installs always tell: `Install::version`).
pub fn supports_managed_tls(version: Option<&str>) -> bool {
    version.is_none_or(|v| compare(v, FIRST_WITH_CLIENT_CERT_RELOAD) != Ordering::Less)
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
    /// the operator's explicit choice and kept.
    ///
    /// `Auto` is a full snapshot before 3.9.4 and ZooKeeper's own choice from 3.9.4 on. Before
    /// 3.9.4 an observer's in-memory committed log records zxid 0 (every `INFORM`) and -1 (the
    /// proposals it commits after a DIFF), and keeps them when a reconfig promotes it; once it
    /// leads, `minCommittedLog` can become -1 and a learner whose disk came back empty (last
    /// zxid -1 under `db.autocreate=false`) is sent a DIFF of only the tail of the history, after
    /// which it cannot start ("No snapshot found, but there are log entries"). The chaos suite
    /// caught it on 3.8.0. ZOOKEEPER-4925 (3.9.4) records the real zxids and refuses a
    /// discontinuous committed log, so an empty learner always falls outside the committed log,
    /// finds nothing in the transaction log for zxid -1, and gets a snapshot from ZooKeeper
    /// itself. Neither `no-log-diff` (it closes only the transaction-log branch) nor a snapshot
    /// taken on the learner afterwards (it would make the missing history permanent) closes the
    /// older releases' hole. An unknown release gets the snapshot. docs/versions.md has the
    /// evidence.
    pub fn resolve(self, version: Option<&str>) -> LearnerSync {
        match self {
            LearnerSync::Auto => match version {
                Some(v) if compare(v, FIRST_WITH_ZOOKEEPER_4925) != Ordering::Less => LearnerSync::Zookeeper,
                _ => LearnerSync::Snapshot,
            },
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

    /// The zoo.cfg keys it owns on any release (a zoo.cfg key becomes the `zookeeper.<key>`
    /// system property and would override the `-D` flag): a base config may not set them.
    pub fn owned_keys(self) -> &'static [&'static str] {
        match self {
            LearnerSync::NoLogDiff => &["snapshotSizeFactor"],
            // `forceSnapshotSync` (snapshot, and auto on older releases) is protected everywhere.
            LearnerSync::Snapshot | LearnerSync::Auto | LearnerSync::Zookeeper => &[],
        }
    }
}

/// A ZooKeeper install a server can be started on: its home and, when known, its release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The install's home (`[server] install`).
    pub home: std::path::PathBuf,
    /// Its release number (`3.9.5`), when the install tells it.
    pub version: Option<String>,
}

/// Why an agent will not start its server on an install.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InstallRefusal {
    /// Asked to go back to an older release than the server last ran.
    #[error(
        "{requested} ({home}) is older than {last}, which this server last ran: ZooKeeper does not promise that an older release reads a newer one's data, so downgrades are refused",
        home = .home.display()
    )]
    Downgrade {
        /// The release asked for.
        requested: String,
        /// Its home.
        home: std::path::PathBuf,
        /// The release the server last ran.
        last: String,
    },
}

/// The install an agent starts its server on. `requested` (a rolling upgrade's, through the API)
/// wins if it is not older than what the server last ran; without one, the configured install,
/// unless the server last ran a newer release: a config that still names the old install after
/// an upgrade (an agent restarted before its config was updated) must not downgrade the server,
/// so the newer one is kept. A release that cannot be told (`None`) is not compared.
pub fn choose_install(
    configured: &Release,
    last_started: Option<&Release>,
    requested: Option<&Release>,
) -> Result<Release, InstallRefusal> {
    let older = |a: &Release, b: &Release| match (&a.version, &b.version) {
        (Some(x), Some(y)) => compare(x, y) == Ordering::Less,
        _ => false,
    };
    if let Some(r) = requested {
        if let Some(last) = last_started.filter(|l| older(r, l)) {
            return Err(InstallRefusal::Downgrade {
                requested: r.version.clone().unwrap_or_default(),
                home: r.home.clone(),
                last: last.version.clone().unwrap_or_default(),
            });
        }
        return Ok(r.clone());
    }
    match last_started {
        Some(last) if older(configured, last) => Ok(last.clone()),
        _ => Ok(configured.clone()),
    }
}

impl LearnerSync {
    /// Every value.
    pub const ALL: [LearnerSync; 4] =
        [LearnerSync::Auto, LearnerSync::Snapshot, LearnerSync::NoLogDiff, LearnerSync::Zookeeper];

    /// As config files and flags spell it.
    pub fn name(self) -> &'static str {
        match self {
            LearnerSync::Auto => "auto",
            LearnerSync::Snapshot => "snapshot",
            LearnerSync::NoLogDiff => "no-log-diff",
            LearnerSync::Zookeeper => "zookeeper",
        }
    }
}

impl std::str::FromStr for LearnerSync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|v| v.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
            format!("'{s}' is not one of {}", names.join(", "))
        })
    }
}

impl std::fmt::Display for LearnerSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A member that runs a newer release than `target`, if any: moving the ensemble to `target`
/// would downgrade it (a rolling upgrade refuses before restarting anything). Members whose
/// release is unknown, or an unknown target, are not compared.
pub fn runs_newer<'a>(
    target: &str,
    running: impl IntoIterator<Item = (crate::ServerId, &'a str)>,
) -> Option<(crate::ServerId, &'a str)> {
    if target.is_empty() {
        return None;
    }
    running.into_iter().find(|(_, v)| compare(target, v) == Ordering::Less)
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
    fn auto_forces_snapshots_before_zookeeper_4925_and_leaves_the_choice_to_zookeeper_after() {
        for v in [None, Some("3.5.10"), Some("3.8.0"), Some("3.8.6"), Some("3.8.7"), Some("3.9.3")] {
            assert_eq!(LearnerSync::Auto.resolve(v), LearnerSync::Snapshot, "{v:?}");
        }
        for v in ["3.9.4", "3.9.5", "3.10.0"] {
            assert_eq!(LearnerSync::Auto.resolve(Some(v)), LearnerSync::Zookeeper, "{v}");
        }
        assert!(LearnerSync::Auto.jvm_properties(Some("3.9.5")).is_empty());
        assert_eq!(LearnerSync::Auto.jvm_properties(Some("3.8.6")), vec!["-Dzookeeper.forceSnapshotSync=true"]);
    }

    #[test]
    fn an_explicit_strategy_is_kept_and_auto_always_resolves() {
        for v in [None, Some("3.8.0"), Some("3.8.6"), Some("3.9.5")] {
            assert_eq!(LearnerSync::Zookeeper.resolve(v), LearnerSync::Zookeeper);
            assert_eq!(LearnerSync::NoLogDiff.resolve(v), LearnerSync::NoLogDiff);
            assert_ne!(LearnerSync::Auto.resolve(v), LearnerSync::Auto);
        }
        assert_eq!(LearnerSync::Snapshot.jvm_properties(None), vec!["-Dzookeeper.forceSnapshotSync=true"]);
        assert_eq!(LearnerSync::NoLogDiff.jvm_properties(None), vec!["-Dzookeeper.snapshotSizeFactor=-1"]);
        assert!(LearnerSync::Zookeeper.jvm_properties(None).is_empty());
    }

    fn rel(home: &str, v: Option<&str>) -> Release {
        Release { home: home.into(), version: v.map(str::to_string) }
    }

    #[test]
    fn an_upgrade_is_taken_a_downgrade_refused_and_an_old_config_never_downgrades() {
        let old = rel("/opt/zk-3.8.6", Some("3.8.6"));
        let new = rel("/opt/zk-3.9.5", Some("3.9.5"));
        // First start: the config.
        assert_eq!(choose_install(&old, None, None), Ok(old.clone()));
        // A rolling upgrade asks for the newer release.
        assert_eq!(choose_install(&old, Some(&old), Some(&new)), Ok(new.clone()));
        // The agent restarts, its config still naming the old install: the newer one is kept.
        assert_eq!(choose_install(&old, Some(&new), None), Ok(new.clone()));
        // Once the config names it (or a newer one), the config is followed.
        let newer = rel("/opt/zk-3.10.0", Some("3.10.0"));
        assert_eq!(choose_install(&newer, Some(&new), None), Ok(newer.clone()));
        // Asking for an older release than the last one is refused, naming both.
        let e = choose_install(&new, Some(&new), Some(&old)).expect_err("downgrade");
        assert!(e.to_string().contains("3.8.6") && e.to_string().contains("3.9.5"), "{e}");
        // The same release elsewhere (a reinstall) is no downgrade.
        let moved = rel("/srv/zk-3.9.5", Some("3.9.5"));
        assert_eq!(choose_install(&new, Some(&new), Some(&moved)), Ok(moved));
        // Unknown releases are not compared.
        let unknown = rel("/opt/zk", None);
        assert_eq!(choose_install(&unknown, Some(&new), None), Ok(unknown.clone()));
    }

    #[test]
    fn an_upgrade_target_older_than_a_member_is_named() {
        use crate::ServerId;
        let running = [(ServerId(1), "3.8.6"), (ServerId(2), "3.9.5")];
        assert_eq!(runs_newer("3.9.5", running), None);
        assert_eq!(runs_newer("3.8.6", running), Some((ServerId(2), "3.9.5")));
        assert_eq!(runs_newer("", running), None, "an unknown target is not compared");
    }

    #[test]
    fn names_round_trip_as_flags_and_config_spell_them() {
        for name in ["auto", "snapshot", "no-log-diff", "zookeeper"] {
            let v: LearnerSync = name.parse().expect("parses");
            assert_eq!(v.to_string(), name);
            assert_eq!(serde_json::to_value(v).expect("json"), serde_json::Value::String(name.into()));
        }
        assert!("diff".parse::<LearnerSync>().expect_err("not a value").contains("no-log-diff"));
    }
}
