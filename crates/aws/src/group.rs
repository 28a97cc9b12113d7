//! [`Group`] on EC2 Auto Scaling: discovery (the group's instances joined with EC2's view and the
//! claims) and the levers the agent pulls on the group (scale-in protection, lifecycle actions,
//! instance health).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_autoscaling::types::LifecycleState;
use zkpilot_core::model::{Instance, InstanceId, InstanceState, LifecycleHook, ServerId};
use zkpilot_core::ports::{Group, PortResult};

use crate::{AwsBackend, Claim, TAG_ADDRESS, discovery, err};

impl Group for AwsBackend {
    async fn instances(&self) -> PortResult<Vec<Instance>> {
        let group = discovery::group(&self.asg, &self.settings.group).await?;
        let claims = self.claims().await?;
        let slots = match self.settings.slots {
            Some(_) => self.slot_claims().await?,
            None => BTreeMap::new(),
        };
        let by_instance: BTreeMap<&InstanceId, (&ServerId, &Claim)> =
            claims.iter().map(|(id, c)| (&c.instance, (id, c))).collect();
        let slot_of: BTreeMap<&InstanceId, (&ServerId, &Claim)> =
            slots.iter().map(|(id, c)| (&c.instance, (id, c))).collect();
        let mut ids: BTreeSet<String> =
            group.instances().iter().filter_map(|i| i.instance_id().map(str::to_string)).collect();
        ids.extend(claims.values().chain(slots.values()).map(|c| c.instance.0.clone()));
        let ec2 = discovery::describe(&self.ec2, &ids.iter().cloned().collect::<Vec<_>>()).await?;
        let mut out = Vec::new();
        for id in ids {
            let in_group = group.instances().iter().find(|i| i.instance_id() == Some(id.as_str()));
            let ec2i = ec2.get(&id);
            let ec2_gone = discovery::gone_in_ec2(ec2i);
            let state = match in_group {
                Some(g) => match discovery::lifecycle(g.lifecycle_state()) {
                    Some(s) => s,
                    None => continue,
                },
                // Left the group: gone only if EC2 says so; alive outside the group = leaving.
                None if ec2_gone => InstanceState::Terminated,
                None => InstanceState::Terminating,
            };
            let key = InstanceId(id.clone());
            // A slot outlives its instance: once the holder is gone the server is not "leaving"
            // but waiting for the replacement that takes the slot over, so it is attributed to
            // nobody and the planner never removes it.
            let claim =
                by_instance.get(&key).or_else(|| slot_of.get(&key).filter(|_| state != InstanceState::Terminated));
            let address = claim
                .map(|(_, c)| c.address.clone())
                .or_else(|| ec2i.and_then(|i| discovery::tag(i, TAG_ADDRESS)).map(str::to_string))
                .or_else(|| ec2i.and_then(|i| i.private_ip_address()).map(str::to_string))
                .unwrap_or_default();
            let zone = in_group
                .and_then(|g| g.availability_zone())
                .or_else(|| ec2i.and_then(|i| i.placement()).and_then(|p| p.availability_zone()))
                .unwrap_or_default()
                .to_string();
            out.push(Instance {
                id: InstanceId(id.clone()),
                address,
                zone,
                state,
                server_id: claim.map(|(sid, _)| **sid),
                protected: in_group.and_then(|g| g.protected_from_scale_in()),
                hook: match in_group.and_then(|g| g.lifecycle_state()) {
                    Some(LifecycleState::PendingWait) => Some(LifecycleHook::Launching),
                    Some(LifecycleState::TerminatingWait) => Some(LifecycleHook::Terminating),
                    _ => None,
                },
            });
        }
        Ok(out)
    }

    async fn desired_capacity(&self) -> PortResult<usize> {
        Ok(discovery::group(&self.asg, &self.settings.group).await?.desired_capacity().unwrap_or(0).max(0) as usize)
    }

    async fn set_scale_in_protection(&self, instance: &InstanceId, protected: bool) -> PortResult<()> {
        self.asg
            .set_instance_protection()
            .auto_scaling_group_name(&self.settings.group)
            .instance_ids(&instance.0)
            .protected_from_scale_in(protected)
            .send()
            .await
            .map_err(|e| err(format!("set scale-in protection of {instance}"), e))?;
        Ok(())
    }

    async fn lifecycle_heartbeat(&self, instance: &InstanceId, hook: LifecycleHook) -> PortResult<()> {
        let name = self.hook_name(hook);
        self.asg
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&self.settings.group)
            .lifecycle_hook_name(name)
            .instance_id(&instance.0)
            .send()
            .await
            .map_err(|e| err(format!("lifecycle heartbeat {name} of {instance}"), e))?;
        Ok(())
    }

    async fn complete_lifecycle(&self, instance: &InstanceId, hook: LifecycleHook) -> PortResult<()> {
        let name = self.hook_name(hook);
        self.asg
            .complete_lifecycle_action()
            .auto_scaling_group_name(&self.settings.group)
            .lifecycle_hook_name(name)
            .instance_id(&instance.0)
            .lifecycle_action_result("CONTINUE")
            .send()
            .await
            .map_err(|e| err(format!("complete lifecycle action {name} of {instance}"), e))?;
        Ok(())
    }

    async fn report_unhealthy(&self, instance: &InstanceId) -> PortResult<()> {
        // The group terminates it (through the terminating hook, so the agent still gets to take
        // its server out) and launches a replacement.
        self.asg
            .set_instance_health()
            .instance_id(&instance.0)
            .health_status("Unhealthy")
            .should_respect_grace_period(true)
            .send()
            .await
            .map_err(|e| err(format!("set instance health of {instance}"), e))?;
        Ok(())
    }
}
