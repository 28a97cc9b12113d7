//! The five backend capabilities over [`BackendState`] (together the core's `Backend`). Every
//! method first records the call, runs its hook and plays its fault ([`MemoryBackend::enter`]);
//! then it answers as the local backend would.

use std::path::Path;

use zkpilot_core::backup::Manifest;
use zkpilot_core::model::{EnsembleConfig, Instance, InstanceId, InstanceState, LifecycleHook, ServerId};
use zkpilot_core::ports::{
    ClusterMarker, Coordination, Group, Identity, OperatorSettings, PortError, PortResult, Publish, Slot, Store,
};
use zkpilot_core::recovery::{RecoveryDecision, SurvivorReport};

use super::{MemoryBackend, SlotRecord, missing};

impl Group for MemoryBackend {
    async fn instances(&self) -> PortResult<Vec<Instance>> {
        self.enter("instances", String::new()).await?;
        Ok(self.with_state(|s| s.port_instances()))
    }

    async fn desired_capacity(&self) -> PortResult<usize> {
        self.enter("desired_capacity", String::new()).await?;
        Ok(self.with_state(|s| s.desired))
    }

    async fn set_scale_in_protection(&self, instance: &InstanceId, protected: bool) -> PortResult<()> {
        self.enter("set_scale_in_protection", format!("{instance} {protected}")).await?;
        self.with_state(|s| s.instances.get_mut(instance).map(|r| r.protected = Some(protected)));
        Ok(())
    }

    async fn lifecycle_heartbeat(&self, instance: &InstanceId, hook: LifecycleHook) -> PortResult<()> {
        self.enter("lifecycle_heartbeat", format!("{instance} {hook:?}")).await
    }

    async fn complete_lifecycle(&self, instance: &InstanceId, hook: LifecycleHook) -> PortResult<()> {
        self.enter("complete_lifecycle", format!("{instance} {hook:?}")).await?;
        self.with_state(|s| {
            if let Some(r) = s.instances.get_mut(instance).filter(|r| r.hook == Some(hook)) {
                r.hook = None;
            }
        });
        Ok(())
    }

    async fn report_unhealthy(&self, instance: &InstanceId) -> PortResult<()> {
        self.enter("report_unhealthy", instance.to_string()).await?;
        self.with_state(|s| {
            s.unhealthy.push(instance.clone());
            if s.terminate_unhealthy
                && let Some(r) = s.instances.get_mut(instance)
            {
                r.state = InstanceState::Terminated;
            }
        });
        Ok(())
    }
}

impl Identity for MemoryBackend {
    async fn claim_id(&self, instance: &InstanceId, address: &str) -> PortResult<ServerId> {
        self.enter("claim_id", format!("{instance} {address}")).await?;
        self.with_state(|s| s.claim(instance, address)).ok_or_else(|| missing("claim server id: all 255 are claimed"))
    }

    async fn claim_slot(&self, instance: &InstanceId, zone: &str) -> PortResult<Option<Slot>> {
        self.enter("claim_slot", format!("{instance} {zone}")).await?;
        self.with_state(|s| {
            let address =
                s.instances.get(instance).map(|r| r.address.clone()).ok_or_else(|| missing("no such instance"))?;
            let n = match s.slots.iter().find(|(_, r)| &r.instance == instance) {
                Some((n, _)) => *n,
                None => {
                    let live =
                        |i: &InstanceId| s.instances.get(i).is_some_and(|r| r.state != InstanceState::Terminated);
                    let mut free: Vec<(ServerId, &SlotRecord)> =
                        s.slots.iter().filter(|(_, r)| !live(&r.instance)).map(|(n, r)| (*n, r)).collect();
                    free.sort_by_key(|(n, r)| (r.zone != zone, *n));
                    let n = match free.first() {
                        Some((n, _)) => *n,
                        None => (1..=ServerId::MAX)
                            .map(ServerId)
                            .find(|n| !s.slots.contains_key(n))
                            .ok_or_else(|| missing("claim slot: all 255 exist"))?,
                    };
                    let old = s.slots.get(&n).cloned();
                    let record = SlotRecord {
                        instance: instance.clone(),
                        address: old.as_ref().map_or(address, |o| o.address.clone()),
                        zone: old.map_or_else(|| zone.to_string(), |o| o.zone),
                    };
                    s.slots.insert(n, record);
                    n
                }
            };
            let record = &s.slots[&n];
            let base_dir = s.slot_root.as_ref().map(|root| root.join("slots").join(n.to_string()));
            Ok(Some(Slot { id: n, address: record.address.clone(), base_dir }))
        })
    }

    async fn release_id(&self, id: ServerId, instance: &InstanceId) -> PortResult<()> {
        self.enter("release_id", format!("{id} {instance}")).await?;
        self.with_state(|s| {
            if s.claims.get(&id).is_some_and(|(i, _)| i == instance) {
                s.claims.remove(&id);
            }
        });
        Ok(())
    }

    async fn announce(&self, instance: &InstanceId, id: ServerId, address: &str) -> PortResult<()> {
        self.enter("announce", format!("{instance} {id} {address}")).await
    }
}

impl Coordination for MemoryBackend {
    async fn cluster_marker(&self) -> PortResult<Option<ClusterMarker>> {
        self.enter("cluster_marker", String::new()).await?;
        Ok(self.marker())
    }

    async fn create_cluster_marker(&self, marker: &ClusterMarker) -> PortResult<ClusterMarker> {
        self.enter("create_cluster_marker", format!("{} by {}", marker.cluster_id, marker.created_by)).await?;
        Ok(self.with_state(|s| s.marker.get_or_insert_with(|| marker.clone()).clone()))
    }

    async fn acquire_lease(&self, holder: &InstanceId, ttl_ms: u64, now_ms: u64) -> PortResult<bool> {
        self.enter("acquire_lease", format!("{holder} ttl={ttl_ms} now={now_ms}")).await?;
        Ok(self.with_state(|s| s.acquire_lease(holder, ttl_ms, now_ms)))
    }

    async fn put_survivor_report(&self, report: &SurvivorReport) -> PortResult<()> {
        self.enter("put_survivor_report", format!("{} server {}", report.instance, report.server_id)).await?;
        self.with_state(|s| s.survivor_reports.insert(report.instance.clone(), report.clone()));
        Ok(())
    }

    async fn survivor_reports(&self) -> PortResult<Vec<SurvivorReport>> {
        self.enter("survivor_reports", String::new()).await?;
        Ok(self.with_state(|s| s.survivor_reports.values().cloned().collect()))
    }

    async fn recovery_decision(&self) -> PortResult<Option<RecoveryDecision>> {
        self.enter("recovery_decision", String::new()).await?;
        Ok(self.with_state(|s| s.recovery_decision.clone()))
    }

    async fn put_recovery_decision(&self, decision: &RecoveryDecision) -> PortResult<()> {
        self.enter("put_recovery_decision", format!("survivor {}", decision.survivor)).await?;
        self.with_state(|s| s.recovery_decision = Some(decision.clone()));
        Ok(())
    }

    async fn operator_settings(&self) -> PortResult<Option<OperatorSettings>> {
        self.enter("operator_settings", String::new()).await?;
        Ok(self.with_state(|s| s.operator.clone()))
    }

    async fn put_operator_settings(&self, settings: &OperatorSettings) -> PortResult<()> {
        self.enter("put_operator_settings", format!("paused={}", settings.paused)).await?;
        self.set_operator(settings.clone());
        Ok(())
    }

    async fn restore_seed(&self) -> PortResult<Option<String>> {
        self.enter("restore_seed", String::new()).await?;
        Ok(self.with_state(|s| s.restore_seed.clone()))
    }

    async fn put_restore_seed(&self, backup: &str) -> PortResult<()> {
        self.enter("put_restore_seed", backup.to_string()).await?;
        self.with_state(|s| s.restore_seed = Some(backup.to_string()));
        Ok(())
    }

    async fn base_config(&self) -> PortResult<Option<String>> {
        self.enter("base_config", String::new()).await?;
        Ok(self.with_state(|s| s.base_config.clone()))
    }
}

impl Publish for MemoryBackend {
    async fn publish_membership(&self, config: &EnsembleConfig) -> PortResult<()> {
        self.enter("publish_membership", format!("{:x} {}", config.version, config.connect_string())).await?;
        self.with_state(|s| s.memberships.push(config.clone()));
        Ok(())
    }

    async fn publish_connections(&self, instance: &InstanceId, connections: u64) -> PortResult<()> {
        self.enter("publish_connections", format!("{instance} {connections}")).await?;
        self.with_state(|s| s.connections.push((instance.clone(), connections)));
        Ok(())
    }

    async fn publish_name(&self, name: &str, address: &str) -> PortResult<()> {
        self.enter("publish_name", format!("{name} {address}")).await?;
        self.with_state(|s| s.names.insert(name.to_string(), address.to_string()));
        Ok(())
    }

    async fn publish_status(&self, instance: &InstanceId, status_json: &str) -> PortResult<()> {
        self.enter("publish_status", instance.to_string()).await?;
        self.with_state(|s| s.statuses.insert(instance.clone(), status_json.to_string()));
        Ok(())
    }
}

impl Store for MemoryBackend {
    async fn backup_put(&self, backup: &str, file: &str, from: &Path) -> PortResult<()> {
        self.enter("backup_put", format!("{backup}/{file}")).await?;
        let bytes =
            std::fs::read(from).map_err(|e| PortError::new("backend", format!("read {}", from.display()), e))?;
        self.with_state(|s| s.backups.entry(backup.to_string()).or_default().insert(file.to_string(), bytes));
        Ok(())
    }

    async fn backup_get(&self, backup: &str, file: &str, to: &Path) -> PortResult<()> {
        self.enter("backup_get", format!("{backup}/{file}")).await?;
        let bytes = self
            .with_state(|s| s.backups.get(backup).and_then(|f| f.get(file)).cloned())
            .ok_or_else(|| missing(&format!("no backup file {backup}/{file}")))?;
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| PortError::new("backend", format!("mkdir {}", dir.display()), e))?;
        }
        std::fs::write(to, bytes).map_err(|e| PortError::new("backend", format!("write {}", to.display()), e))
    }

    async fn backups(&self) -> PortResult<Vec<Manifest>> {
        self.enter("backups", String::new()).await?;
        Ok(self.with_state(|s| s.manifests()))
    }

    async fn backup_delete(&self, backup: &str) -> PortResult<()> {
        self.enter("backup_delete", backup.to_string()).await?;
        self.with_state(|s| s.backups.remove(backup));
        Ok(())
    }

    async fn ship_log(&self, instance: &InstanceId, file: &str, from: &Path) -> PortResult<()> {
        self.enter("ship_log", format!("{instance} {file}")).await?;
        let bytes =
            std::fs::read(from).map_err(|e| PortError::new("backend", format!("read {}", from.display()), e))?;
        self.with_state(|s| s.logs.push((instance.clone(), file.to_string(), bytes)));
        Ok(())
    }
}
