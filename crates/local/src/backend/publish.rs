//! [`Publish`] locally: the connection string and status files; no metrics or name service.

use zkpilot_core::model::{EnsembleConfig, InstanceId};
use zkpilot_core::ports::{PortError, PortResult, Publish};

use super::{LocalBackend, in_place, port};

impl Publish for LocalBackend {
    async fn publish_membership(&self, config: &EnsembleConfig) -> PortResult<()> {
        let (dir, text) = (self.dir.clone(), format!("{}\n", config.connect_string()));
        in_place(move || dir.put_connect_string(&text)).await.map_err(port("publish connection string"))
    }

    async fn publish_connections(&self, _instance: &InstanceId, _connections: u64) -> PortResult<()> {
        // No metrics service locally; the count is in the agent's status (server.connections).
        Ok(())
    }

    async fn publish_name(&self, name: &str, _address: &str) -> PortResult<()> {
        // Locally names live in a hosts file the agents keep themselves ([names] hosts_file).
        Err(PortError::msg("backend", format!("the local backend has no name service for {name}; use a hosts file")))
    }

    async fn publish_status(&self, instance: &InstanceId, status_json: &str) -> PortResult<()> {
        let (dir, instance, json) = (self.dir.clone(), instance.clone(), status_json.to_string());
        in_place(move || dir.put_status(&instance, &json)).await.map_err(port("publish status"))
    }
}
