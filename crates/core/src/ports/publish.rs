//! What the ensemble shows the world.

use std::future::Future;

use super::PortResult;
use crate::model::{EnsembleConfig, InstanceId};

/// Publishing: the connection string clients use, the metric the group scales on, server names
/// and each agent's status.
pub trait Publish: Send + Sync {
    /// Publishes the committed membership: the client connection string for Kafka & co.
    fn publish_membership(&self, config: &EnsembleConfig) -> impl Future<Output = PortResult<()>> + Send;
    /// Publishes this server's client connection count (the metric a target-tracking scaling
    /// policy scales the group on).
    fn publish_connections(
        &self,
        instance: &InstanceId,
        connections: u64,
    ) -> impl Future<Output = PortResult<()>> + Send;
    /// Points server `name` at `address` in the backend's name service (Route53 on AWS). Only
    /// called with name indirection configured for this backend.
    fn publish_name(&self, name: &str, address: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Publishes this agent's status snapshot (JSON).
    fn publish_status(&self, instance: &InstanceId, status_json: &str) -> impl Future<Output = PortResult<()>> + Send;
}
