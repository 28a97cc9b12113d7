//! `DIR/cluster/operator.json`: the operator's ensemble-wide switches.

use zkpilot_core::ports::OperatorSettings;

use super::{StateDir, StateError};

impl StateDir {
    /// The operator's switches.
    pub fn operator_settings(&self) -> Result<Option<OperatorSettings>, StateError> {
        self.read_json(&self.root.join("cluster").join("operator.json"))
    }

    /// Replaces the operator's switches.
    pub fn put_operator_settings(&self, s: &OperatorSettings) -> Result<(), StateError> {
        self.write_json(&self.root.join("cluster").join("operator.json"), s)
    }
}
