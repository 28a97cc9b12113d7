//! The core's `Backend` port over a local state directory.

use zkpilot_core::backup::Manifest;
use zkpilot_core::model::{EnsembleConfig, Instance, InstanceId, LifecycleHook, ServerId};
use zkpilot_core::ports::{
    ClusterMarker, Coordination, Group, Identity, OperatorSettings, PortError, PortResult, Publish, Slot, Store,
};
use zkpilot_core::recovery::{RecoveryDecision, SurvivorReport};

use crate::state::{StateDir, StateError};

/// An agent's handle on the local group.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    dir: StateDir,
}

impl LocalBackend {
    /// Opens the group at `dir`.
    pub fn open(dir: &std::path::Path) -> Result<Self, StateError> {
        Ok(Self { dir: StateDir::open(dir)? })
    }

    /// The backup store of a group directory, even one whose ensemble is gone (see
    /// [`StateDir::open_store`]). Only the backup methods are meaningful on it.
    pub fn open_store(dir: &std::path::Path) -> Result<Self, StateError> {
        Ok(Self { dir: StateDir::open_store(dir)? })
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.dir
    }
}

fn port(what: &str) -> impl FnOnce(StateError) -> PortError + '_ {
    move |e| PortError::new("backend", what.to_string(), e)
}

/// Small state-file work (a few KiB read or renamed under a flock held for microseconds), done in
/// place: handing it to a blocking thread cost an idle agent more CPU in thread wakeups than the
/// file work itself (BENCHMARKS.md B5).
async fn in_place<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    f()
}

/// Bulk copies (backups, logs) off the async thread.
async fn offload<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StateError::Malformed { path: Default::default(), why: format!("blocking task failed: {e}") })
    })
}

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
                    let slot = slots
                        .iter()
                        .find(|(_, s)| s.instance == r.id)
                        .filter(|_| r.state != zkpilot_core::model::InstanceState::Terminated);
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

impl Coordination for LocalBackend {
    async fn cluster_marker(&self) -> PortResult<Option<ClusterMarker>> {
        let dir = self.dir.clone();
        in_place(move || dir.marker()).await.map_err(port("read cluster marker"))
    }

    async fn create_cluster_marker(&self, marker: &ClusterMarker) -> PortResult<ClusterMarker> {
        let (dir, marker) = (self.dir.clone(), marker.clone());
        in_place(move || dir.create_marker(&marker)).await.map_err(port("create cluster marker"))
    }

    async fn acquire_lease(&self, holder: &InstanceId, ttl_ms: u64, now_ms: u64) -> PortResult<bool> {
        let (dir, holder) = (self.dir.clone(), holder.clone());
        in_place(move || dir.acquire_lease(&holder, ttl_ms, now_ms)).await.map_err(port("acquire lease"))
    }

    async fn put_survivor_report(&self, report: &SurvivorReport) -> PortResult<()> {
        let (dir, report) = (self.dir.clone(), report.clone());
        in_place(move || dir.put_survivor_report(&report)).await.map_err(port("write survivor report"))
    }

    async fn survivor_reports(&self) -> PortResult<Vec<SurvivorReport>> {
        let dir = self.dir.clone();
        in_place(move || dir.survivor_reports()).await.map_err(port("read survivor reports"))
    }

    async fn recovery_decision(&self) -> PortResult<Option<RecoveryDecision>> {
        let dir = self.dir.clone();
        in_place(move || dir.recovery_decision()).await.map_err(port("read recovery decision"))
    }

    async fn put_recovery_decision(&self, decision: &RecoveryDecision) -> PortResult<()> {
        let (dir, decision) = (self.dir.clone(), decision.clone());
        in_place(move || dir.put_recovery_decision(&decision)).await.map_err(port("write recovery decision"))
    }

    async fn operator_settings(&self) -> PortResult<Option<OperatorSettings>> {
        let dir = self.dir.clone();
        in_place(move || dir.operator_settings()).await.map_err(port("read operator settings"))
    }

    async fn put_operator_settings(&self, settings: &OperatorSettings) -> PortResult<()> {
        let (dir, settings) = (self.dir.clone(), settings.clone());
        in_place(move || dir.put_operator_settings(&settings)).await.map_err(port("write operator settings"))
    }

    async fn restore_seed(&self) -> PortResult<Option<String>> {
        let dir = self.dir.clone();
        in_place(move || dir.restore_seed()).await.map_err(port("read restore seed"))
    }

    async fn put_restore_seed(&self, backup: &str) -> PortResult<()> {
        let (dir, backup) = (self.dir.clone(), backup.to_string());
        in_place(move || dir.put_restore_seed(&backup)).await.map_err(port("write restore seed"))
    }

    async fn base_config(&self) -> PortResult<Option<String>> {
        let path = self.dir.root().join("base.cfg");
        match tokio::fs::read_to_string(&path).await {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PortError::new("backend", format!("read {}", path.display()), e)),
        }
    }
}

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

impl Store for LocalBackend {
    async fn backup_put(&self, backup: &str, file: &str, from: &std::path::Path) -> PortResult<()> {
        let (dir, backup, file, from) = (self.dir.clone(), backup.to_string(), file.to_string(), from.to_path_buf());
        offload(move || dir.backup_put(&backup, &file, &from)).await.map_err(port("store backup file"))
    }

    async fn backup_get(&self, backup: &str, file: &str, to: &std::path::Path) -> PortResult<()> {
        let (dir, backup, file, to) = (self.dir.clone(), backup.to_string(), file.to_string(), to.to_path_buf());
        offload(move || dir.backup_get(&backup, &file, &to)).await.map_err(port("fetch backup file"))
    }

    async fn backups(&self) -> PortResult<Vec<Manifest>> {
        let dir = self.dir.clone();
        in_place(move || dir.backups()).await.map_err(port("list backups"))
    }

    async fn backup_delete(&self, backup: &str) -> PortResult<()> {
        let (dir, backup) = (self.dir.clone(), backup.to_string());
        in_place(move || dir.backup_delete(&backup)).await.map_err(port("delete backup"))
    }

    async fn ship_log(&self, instance: &InstanceId, file: &str, from: &std::path::Path) -> PortResult<()> {
        let (dir, instance, file, from) = (self.dir.clone(), instance.clone(), file.to_string(), from.to_path_buf());
        offload(move || dir.ship_log(&instance, &file, &from)).await.map_err(port("ship log"))
    }
}
