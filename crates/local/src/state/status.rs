//! `DIR/status/<id>.json` (each agent's last status snapshot) and `DIR/connect-string`.

use std::fs;

use zkpilot_core::model::InstanceId;

use super::{StateDir, StateError, io};

impl StateDir {
    /// Publishes the client connection string (`DIR/connect-string`), what Kafka's
    /// `zookeeper.connect` wants.
    pub fn put_connect_string(&self, text: &str) -> Result<(), StateError> {
        self.write_text(&self.root.join("connect-string"), text)
    }

    /// Writes an agent's status snapshot.
    pub fn put_status(&self, instance: &InstanceId, json: &str) -> Result<(), StateError> {
        self.write_text(&self.root.join("status").join(format!("{instance}.json")), json)
    }

    /// All status snapshots (raw JSON) by instance.
    pub fn statuses(&self) -> Result<Vec<(InstanceId, serde_json::Value)>, StateError> {
        let dir = self.root.join("status");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json")
                && let Some(v) = self.read_json::<serde_json::Value>(&e.path())?
            {
                out.push((InstanceId(id.to_string()), v));
            }
        }
        Ok(out)
    }
}
