//! Which server an instance is: server-id claims (elastic mode) and slots (stable identity).

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::PortResult;
use crate::model::{InstanceId, ServerId};

/// Slot mode's stable identity: a server id with a fixed address and persistent storage that
/// outlive any one instance (on AWS a network interface and an EBS volume; locally an address and
/// a directory). A replacement instance takes over the slot and restarts the same server on the
/// same data, so no reconfig is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The server id (the slot number).
    pub id: ServerId,
    /// The address the server binds and advertises.
    pub address: String,
    /// Where the slot's storage is mounted, if the backend decides it (else the configured dir).
    pub base_dir: Option<std::path::PathBuf>,
}

/// Server identity: claiming, releasing and announcing an id.
pub trait Identity: Send + Sync {
    /// Claims a free server id for `instance` atomically (create-exclusive); idempotent for an
    /// instance that already holds one.
    fn claim_id(&self, instance: &InstanceId, address: &str) -> impl Future<Output = PortResult<ServerId>> + Send;
    /// Slot mode: the slot `instance` holds, else a free slot of `zone` taken atomically, made
    /// ready (address and storage attached). `None` while no slot is free.
    fn claim_slot(&self, instance: &InstanceId, zone: &str) -> impl Future<Output = PortResult<Option<Slot>>> + Send;
    /// Returns an id to the pool. (A slot is never released: it is taken over once its holder is
    /// gone.)
    fn release_id(&self, id: ServerId, instance: &InstanceId) -> impl Future<Output = PortResult<()>> + Send;
    /// Makes this instance's server id and advertised address visible on the instance (EC2 tags).
    fn announce(
        &self,
        instance: &InstanceId,
        id: ServerId,
        address: &str,
    ) -> impl Future<Output = PortResult<()>> + Send;
}
