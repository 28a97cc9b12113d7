//! What came of one executed action, as data; the counters the agent keeps are derived from it.
//!
//! The status JSON, the events page and the bench's timelines read an outcome as text
//! (`applied`, `conflict: …`, `failed: …`), so an [`Outcome`] serializes to exactly that text
//! ([`std::fmt::Display`]) and reads back from it ([`Outcome::parse`], which reproduces any text).

use serde::{Deserialize, Serialize};

/// What came of one executed action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Outcome {
    /// Done (`applied`).
    Applied,
    /// Done, with what was done (`applied: <what>`: a backup's name and size, a restore).
    AppliedWith(String),
    /// A reconfig committed but the confirming write did not, so it may not yet be active on every
    /// server (`applied, confirmation write failed: <why>`).
    AppliedUnconfirmed {
        /// Why the confirming write failed.
        why: String,
    },
    /// The config moved on since it was observed; the next pass re-plans (`conflict: <why>`).
    Conflict {
        /// What moved.
        why: String,
    },
    /// ZooKeeper refused the change (`rejected by ZooKeeper: <why>`).
    Rejected {
        /// ZooKeeper's reason.
        why: String,
    },
    /// Not done (`failed: <why>`).
    Failed {
        /// Why.
        why: String,
    },
    /// Nothing to do (`skipped: <why>`).
    Skipped {
        /// Why.
        why: String,
    },
    /// A step that describes itself (recovery's fence, rebuild, set-aside data): the text as is.
    Noted(String),
}

const APPLIED: &str = "applied";
const APPLIED_WITH: &str = "applied: ";
const UNCONFIRMED: &str = "applied, confirmation write failed: ";
const CONFLICT: &str = "conflict: ";
const REJECTED: &str = "rejected by ZooKeeper: ";
const FAILED: &str = "failed: ";
const SKIPPED: &str = "skipped: ";

impl Outcome {
    /// `Failed` with `why`.
    pub fn failed(why: impl std::fmt::Display) -> Self {
        Self::Failed { why: why.to_string() }
    }

    /// `Applied`, or `Failed` with the error.
    pub fn of<E: std::fmt::Display>(r: Result<(), E>) -> Self {
        match r {
            Ok(()) => Self::Applied,
            Err(e) => Self::failed(e),
        }
    }

    /// The change was made (confirmed or not): what counts as an applied reconfig.
    pub fn is_applied(&self) -> bool {
        matches!(self, Self::Applied | Self::AppliedWith(_) | Self::AppliedUnconfirmed { .. })
    }

    /// Reads an outcome back from its text. Every text reads back to an outcome that displays it
    /// unchanged; text in none of the known forms is [`Outcome::Noted`].
    pub fn parse(text: &str) -> Self {
        let owned = |s: &str| s.to_string();
        if text == APPLIED {
            Self::Applied
        } else if let Some(why) = text.strip_prefix(UNCONFIRMED) {
            Self::AppliedUnconfirmed { why: owned(why) }
        } else if let Some(what) = text.strip_prefix(APPLIED_WITH) {
            Self::AppliedWith(owned(what))
        } else if let Some(why) = text.strip_prefix(CONFLICT) {
            Self::Conflict { why: owned(why) }
        } else if let Some(why) = text.strip_prefix(REJECTED) {
            Self::Rejected { why: owned(why) }
        } else if let Some(why) = text.strip_prefix(FAILED) {
            Self::Failed { why: owned(why) }
        } else if let Some(why) = text.strip_prefix(SKIPPED) {
            Self::Skipped { why: owned(why) }
        } else {
            Self::Noted(owned(text))
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Applied => f.write_str(APPLIED),
            Self::AppliedWith(what) => write!(f, "{APPLIED_WITH}{what}"),
            Self::AppliedUnconfirmed { why } => write!(f, "{UNCONFIRMED}{why}"),
            Self::Conflict { why } => write!(f, "{CONFLICT}{why}"),
            Self::Rejected { why } => write!(f, "{REJECTED}{why}"),
            Self::Failed { why } => write!(f, "{FAILED}{why}"),
            Self::Skipped { why } => write!(f, "{SKIPPED}{why}"),
            Self::Noted(text) => f.write_str(text),
        }
    }
}

impl From<Outcome> for String {
    fn from(o: Outcome) -> Self {
        o.to_string()
    }
}

impl From<String> for Outcome {
    fn from(text: String) -> Self {
        Self::parse(&text)
    }
}

/// Running totals since the agent started, for status and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Reconfigs that committed.
    pub reconfigs_applied: u64,
    /// Reconfigs that did not (conflict, rejected, failed).
    pub reconfigs_failed: u64,
    /// Milliseconds spent in reconfigs, confirming write included.
    pub reconfig_ms: u64,
    /// ZooKeeper restarts after an unexpected exit.
    pub server_restarts: u64,
    /// Quorum-loss rebuilds started from this server.
    pub recoveries: u64,
    /// Times this server fenced itself for recovery.
    pub fences: u64,
    /// Instances reported unhealthy.
    pub unhealthy_reports: u64,
    /// Failed claim or lease calls.
    pub claim_failures: u64,
    /// Backups stored.
    #[serde(default)]
    pub backups: u64,
    /// Backups attempted that failed.
    #[serde(default)]
    pub backup_failures: u64,
    /// Plans refused because they broke a safety rule (a planner bug; see `agent::vet`).
    #[serde(default)]
    pub plans_refused: u64,
}

impl Counters {
    /// Counts one reconfig: applied (confirmed or not) or failed, and its time.
    pub fn reconfig(&mut self, outcome: &Outcome, took_ms: u64) {
        if outcome.is_applied() {
            self.reconfigs_applied += 1;
        } else {
            self.reconfigs_failed += 1;
        }
        self.reconfig_ms += took_ms;
    }

    /// Counts one backup attempt: stored, failed, or neither (skipped: nothing to back up).
    pub fn backup(&mut self, outcome: &Outcome) {
        match outcome {
            o if o.is_applied() => self.backups += 1,
            Outcome::Skipped { .. } => {}
            _ => self.backup_failures += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(why: &str) -> Vec<Outcome> {
        let w = || why.to_string();
        vec![
            Outcome::Applied,
            Outcome::AppliedWith(w()),
            Outcome::AppliedUnconfirmed { why: w() },
            Outcome::Conflict { why: w() },
            Outcome::Rejected { why: w() },
            Outcome::Failed { why: w() },
            Outcome::Skipped { why: w() },
        ]
    }

    #[test]
    fn texts_are_the_ones_status_readers_know() {
        assert_eq!(Outcome::Applied.to_string(), "applied");
        assert_eq!(Outcome::failed("backend: lease").to_string(), "failed: backend: lease");
        assert_eq!(
            Outcome::Conflict { why: "the config changed since it was observed; re-planning".into() }.to_string(),
            "conflict: the config changed since it was observed; re-planning"
        );
        assert_eq!(
            Outcome::AppliedUnconfirmed { why: "zookeeper: confirming write".into() }.to_string(),
            "applied, confirmation write failed: zookeeper: confirming write"
        );
        assert_eq!(
            Outcome::Rejected { why: "NewConfigNoQuorum".into() }.to_string(),
            "rejected by ZooKeeper: NewConfigNoQuorum"
        );
        let json = serde_json::to_string(&Outcome::failed("x")).expect("json");
        assert_eq!(json, r#""failed: x""#, "serialized as its text, as the status JSON always had it");
    }

    #[test]
    fn a_port_result_is_applied_or_failed_with_its_error() {
        assert_eq!(Outcome::of::<String>(Ok(())), Outcome::Applied);
        assert_eq!(Outcome::of(Err("backend: put")), Outcome::Failed { why: "backend: put".into() });
    }

    #[test]
    fn only_applied_outcomes_count_as_applied() {
        let mut c = Counters::default();
        for o in all("why") {
            c.reconfig(&o, 10);
        }
        c.reconfig(&Outcome::Noted("something".into()), 1);
        assert_eq!((c.reconfigs_applied, c.reconfigs_failed, c.reconfig_ms), (3, 5, 71));
    }

    #[test]
    fn a_skipped_backup_is_neither_stored_nor_failed() {
        let mut c = Counters::default();
        c.backup(&Outcome::AppliedWith("b1".into()));
        c.backup(&Outcome::Skipped { why: "no snapshot".into() });
        c.backup(&Outcome::failed("store"));
        assert_eq!((c.backups, c.backup_failures), (1, 1));
    }

    proptest::proptest! {
        #[test]
        fn any_text_reads_back_to_itself(text in ".{0,40}") {
            proptest::prop_assert_eq!(Outcome::parse(&text).to_string(), text);
        }

        #[test]
        fn every_outcome_survives_json(why in ".{0,40}") {
            for o in all(&why) {
                let json = serde_json::to_string(&o).expect("json");
                let back: Outcome = serde_json::from_str(&json).expect("back");
                proptest::prop_assert_eq!(back.to_string(), o.to_string());
                proptest::prop_assert_eq!(back.is_applied(), o.is_applied());
            }
        }
    }
}
