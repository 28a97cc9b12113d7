//! `DIR/recovery/`: quorum-loss survivor reports and the recovery decision.

use zkpilot_core::recovery::{RecoveryDecision, SurvivorReport};

use super::{StateDir, StateError};

impl StateDir {
    /// Replaces one survivor's quorum-loss report.
    pub fn put_survivor_report(&self, report: &SurvivorReport) -> Result<(), StateError> {
        self.write_json(&self.root.join("recovery").join("reports").join(format!("{}.json", report.instance)), report)
    }

    /// Every survivor report on record.
    pub fn survivor_reports(&self) -> Result<Vec<SurvivorReport>, StateError> {
        self.read_each(&self.root.join("recovery").join("reports"), |e| {
            e.file_name().to_string_lossy().ends_with(".json").then(|| e.path())
        })
    }

    /// The stored recovery decision.
    pub fn recovery_decision(&self) -> Result<Option<RecoveryDecision>, StateError> {
        self.read_json(&self.root.join("recovery").join("decision.json"))
    }

    /// Replaces the recovery decision (the caller holds the lease).
    pub fn put_recovery_decision(&self, decision: &RecoveryDecision) -> Result<(), StateError> {
        self.write_json(&self.root.join("recovery").join("decision.json"), decision)
    }
}
