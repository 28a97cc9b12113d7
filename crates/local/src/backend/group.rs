//! [`Group`] locally: the instance records and the controller's desired size.

use zkpilot_core::model::{Instance, InstanceId, InstanceState, LifecycleHook};
use zkpilot_core::ports::{Group, PortResult};

use super::{LocalBackend, in_place, port};

impl Group for LocalBackend {
    async fn instances(&self) -> PortResult<Vec<Instance>> {
        let dir = self.dir.clone();
        in_place(move || {
            let claims = dir.claims()?;
            let slots = dir.slots()?;
            Ok(dir
                .instances()?
                .into_iter()
                .map(|r| {
                    // A slot outlives its instance: a terminated holder's server waits for the
                    // replacement that takes the slot over, attributed to nobody (never removed).
                    let slot =
                        slots.iter().find(|(_, s)| s.instance == r.id).filter(|_| r.state != InstanceState::Terminated);
                    let claim = claims.iter().find(|(_, c)| c.instance == r.id).map(|(id, _)| *id);
                    (r, slot.map(|(n, s)| (*n, s.address.clone())), claim)
                })
                .map(|(r, slot, claim)| Instance {
                    server_id: slot.as_ref().map(|(n, _)| *n).or(claim),
                    id: r.id,
                    address: slot.map_or(r.address, |(_, a)| a),
                    zone: r.zone,
                    state: r.state,
                    // The local controller picks non-voters for scale-in by itself.
                    protected: None,
                    hook: None,
                })
                .collect())
        })
        .await
        .map_err(port("list instances"))
    }

    async fn desired_capacity(&self) -> PortResult<usize> {
        let dir = self.dir.clone();
        in_place(move || Ok(dir.group()?.desired)).await.map_err(port("read desired capacity"))
    }

    async fn set_scale_in_protection(&self, _instance: &InstanceId, _protected: bool) -> PortResult<()> {
        Ok(())
    }

    async fn lifecycle_heartbeat(&self, _instance: &InstanceId, _hook: LifecycleHook) -> PortResult<()> {
        Ok(())
    }

    async fn complete_lifecycle(&self, _instance: &InstanceId, _hook: LifecycleHook) -> PortResult<()> {
        // The local controller has no hooks: it waits for the agent's own "removed" exit instead.
        Ok(())
    }

    async fn report_unhealthy(&self, instance: &InstanceId) -> PortResult<()> {
        // What an Auto Scaling group does with an unhealthy instance: terminate it; the
        // controller then launches the replacement.
        let (dir, instance) = (self.dir.clone(), instance.clone());
        in_place(move || crate::group::kill_instance(&dir, &instance).map(|_| ()))
            .await
            .map_err(port("replace unhealthy instance"))
    }
}
