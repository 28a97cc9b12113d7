//! [`Identity`] locally: id claims and slots in the state directory.

use zkpilot_core::model::{InstanceId, ServerId};
use zkpilot_core::ports::{Identity, PortResult, Slot};

use super::{LocalBackend, in_place, port};
use crate::state::StateError;

impl Identity for LocalBackend {
    async fn claim_id(&self, instance: &InstanceId, address: &str) -> PortResult<ServerId> {
        let (dir, instance, address) = (self.dir.clone(), instance.clone(), address.to_string());
        in_place(move || dir.claim(&instance, &address)).await.map_err(port("claim server id"))
    }

    async fn claim_slot(&self, instance: &InstanceId, zone: &str) -> PortResult<Option<Slot>> {
        let (dir, instance, zone) = (self.dir.clone(), instance.clone(), zone.to_string());
        in_place(move || {
            let address =
                dir.instances()?.into_iter().find(|r| r.id == instance).map(|r| r.address).ok_or_else(|| {
                    StateError::Malformed { path: dir.instance_dir(&instance), why: "no such instance".into() }
                })?;
            // With name indirection a slot is storage only (like an EBS volume without an ENI):
            // the server keeps its id and data, its name follows it to the new address.
            let follows = dir.group()?.names_domain.is_some();
            let (n, record) = dir.claim_slot(&instance, &zone, &address, follows)?;
            Ok(Some(Slot { id: n, address: record.address, base_dir: Some(dir.slot_dir(n)) }))
        })
        .await
        .map_err(port("claim slot"))
    }

    async fn release_id(&self, id: ServerId, instance: &InstanceId) -> PortResult<()> {
        let (dir, instance) = (self.dir.clone(), instance.clone());
        in_place(move || dir.release(id, &instance)).await.map_err(port("release server id"))
    }

    async fn announce(&self, _instance: &InstanceId, _id: ServerId, _address: &str) -> PortResult<()> {
        // The claim file already records the address; there are no instance tags locally.
        Ok(())
    }
}
