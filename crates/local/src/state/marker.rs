//! `DIR/cluster/marker.json`: the cluster marker, created exclusively, never rewritten.

use zkpilot_core::ports::ClusterMarker;

use super::{StateDir, StateError};

impl StateDir {
    /// The cluster marker.
    pub fn marker(&self) -> Result<Option<ClusterMarker>, StateError> {
        self.read_json(&self.root.join("cluster").join("marker.json"))
    }

    /// Creates the marker unless one exists; returns the one on disk afterwards.
    pub fn create_marker(&self, m: &ClusterMarker) -> Result<ClusterMarker, StateError> {
        let p = self.root.join("cluster").join("marker.json");
        self.create_exclusive(&p, m)?;
        self.read_json(&p)?.ok_or_else(|| StateError::Malformed { path: p, why: "vanished after creation".into() })
    }
}
