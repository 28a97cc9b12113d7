//! [`MemoryBackend`]: the whole "cloud" of one group in memory, with the local backend's
//! semantics (`zkpilot-local`): id claims are create-exclusive and idempotent per instance, the
//! cluster marker is written once and the first writer wins, the lease has one holder until
//! `now + ttl` (or until the group confirms that holder terminated), and every record is kept.
//!
//! Unlike the local group it runs no controller: instances change state, and the group reacts to
//! an unhealthy report, only when the test says so. That is what lets a test see, for example,
//! that an unhealthy report is sent once per interval.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use zkpilot_core::backup::Manifest;
use zkpilot_core::model::{EnsembleConfig, Instance, InstanceId, InstanceState, LifecycleHook, ServerId};
use zkpilot_core::ports::{ClusterMarker, OperatorSettings, PortError, PortResult};
use zkpilot_core::recovery::{RecoveryDecision, SurvivorReport};

use crate::calls::{Call, Fault, Script, play};

mod ports;

/// Every method of the backend ports, as named in the traits.
pub(crate) const METHODS: &[&str] = &[
    // Group
    "instances",
    "desired_capacity",
    "set_scale_in_protection",
    "lifecycle_heartbeat",
    "complete_lifecycle",
    "report_unhealthy",
    // Identity
    "claim_id",
    "claim_slot",
    "release_id",
    "announce",
    // Coordination
    "cluster_marker",
    "create_cluster_marker",
    "acquire_lease",
    "put_survivor_report",
    "survivor_reports",
    "recovery_decision",
    "put_recovery_decision",
    "operator_settings",
    "put_operator_settings",
    "restore_seed",
    "put_restore_seed",
    "base_config",
    // Publish
    "publish_membership",
    "publish_connections",
    "publish_name",
    "publish_status",
    // Store
    "backup_put",
    "backup_get",
    "backups",
    "backup_delete",
    "ship_log",
];

/// One instance of the group as the backend keeps it; its server id comes from its claim (or
/// slot), as in the local backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    /// Address.
    pub address: String,
    /// Zone.
    pub zone: String,
    /// Lifecycle state.
    pub state: InstanceState,
    /// Scale-in protection (`None`: the group has no such notion, like the local one).
    pub protected: Option<bool>,
    /// A lifecycle hook holding the instance.
    pub hook: Option<LifecycleHook>,
}

/// A slot (slot identity mode): a fixed address and storage, held by one instance at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRecord {
    /// Current holder.
    pub instance: InstanceId,
    /// The slot's address (its first holder's).
    pub address: String,
    /// The slot's zone.
    pub zone: String,
}

/// Everything the backend holds. Public so a test can arrange or inspect any of it through
/// [`MemoryBackend::with_state`].
#[derive(Debug, Clone, Default)]
pub struct BackendState {
    /// The group's instances.
    pub instances: BTreeMap<InstanceId, InstanceRecord>,
    /// Instances the group wants.
    pub desired: usize,
    /// Server-id claims: id → (instance, address).
    pub claims: BTreeMap<ServerId, (InstanceId, String)>,
    /// Slots by number.
    pub slots: BTreeMap<ServerId, SlotRecord>,
    /// Where slot `n`'s storage is, as `<root>/slots/<n>` (`None`: the agent's configured dir).
    pub slot_root: Option<PathBuf>,
    /// The cluster marker.
    pub marker: Option<ClusterMarker>,
    /// The lease: holder and expiry (ms since the Unix epoch).
    pub lease: Option<(InstanceId, u64)>,
    /// Every membership published, oldest first.
    pub memberships: Vec<EnsembleConfig>,
    /// Every connection count published, oldest first.
    pub connections: Vec<(InstanceId, u64)>,
    /// Name → address records.
    pub names: BTreeMap<String, String>,
    /// Each agent's last status (JSON).
    pub statuses: BTreeMap<InstanceId, String>,
    /// Survivor reports by instance.
    pub survivor_reports: BTreeMap<InstanceId, SurvivorReport>,
    /// The recovery decision.
    pub recovery_decision: Option<RecoveryDecision>,
    /// The operator's switches.
    pub operator: Option<OperatorSettings>,
    /// The shared base config (zoo.cfg text).
    pub base_config: Option<String>,
    /// The restore seed.
    pub restore_seed: Option<String>,
    /// Backups: name → file → bytes.
    pub backups: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Shipped logs: (instance, file name, bytes), oldest first.
    pub logs: Vec<(InstanceId, String, Vec<u8>)>,
    /// Instances reported unhealthy, oldest first.
    pub unhealthy: Vec<InstanceId>,
    /// Reporting an instance unhealthy terminates it (what the local group does, and an Auto
    /// Scaling group a little later). Off by default: the test decides when the group reacts.
    pub terminate_unhealthy: bool,
}

impl BackendState {
    /// The instances as the port reports them (server id from the slot, else the claim).
    pub fn port_instances(&self) -> Vec<Instance> {
        self.instances
            .iter()
            .map(|(id, r)| {
                let slot =
                    self.slots.iter().find(|(_, s)| &s.instance == id).filter(|_| r.state != InstanceState::Terminated);
                let claim = self.claims.iter().find(|(_, (i, _))| i == id).map(|(n, _)| *n);
                Instance {
                    id: id.clone(),
                    address: slot.map_or_else(|| r.address.clone(), |(_, s)| s.address.clone()),
                    zone: r.zone.clone(),
                    state: r.state,
                    server_id: slot.map(|(n, _)| *n).or(claim),
                    protected: r.protected,
                    hook: r.hook,
                }
            })
            .collect()
    }

    /// The id `instance` holds, or the lowest free one, claimed.
    pub fn claim(&mut self, instance: &InstanceId, address: &str) -> Option<ServerId> {
        if let Some((n, _)) = self.claims.iter().find(|(_, (i, _))| i == instance) {
            return Some(*n);
        }
        let n = (1..=ServerId::MAX).map(ServerId).find(|n| !self.claims.contains_key(n))?;
        self.claims.insert(n, (instance.clone(), address.to_string()));
        Some(n)
    }

    /// Takes or renews the lease: free when absent, expired, already `holder`'s, or held by an
    /// instance the group reports terminated.
    pub fn acquire_lease(&mut self, holder: &InstanceId, ttl_ms: u64, now_ms: u64) -> bool {
        let free = match &self.lease {
            None => true,
            Some((h, expires)) => {
                h == holder
                    || *expires <= now_ms
                    || self.instances.get(h).is_some_and(|r| r.state == InstanceState::Terminated)
            }
        };
        if free {
            self.lease = Some((holder.clone(), now_ms + ttl_ms));
        }
        free
    }

    /// Every backup with a manifest.
    pub fn manifests(&self) -> Vec<Manifest> {
        self.backups
            .values()
            .filter_map(|files| files.get("manifest.json"))
            .filter_map(|bytes| serde_json::from_slice(bytes).ok())
            .collect()
    }
}

/// The in-memory backend. `Clone` shares the state.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    state: Arc<Mutex<BackendState>>,
    script: Arc<Mutex<Script>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock already failed; the state is still readable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryBackend {
    /// An empty group (no instances, desired 0, no records).
    pub fn new() -> Self {
        Self { state: Arc::default(), script: Arc::new(Mutex::new(Script::new(METHODS))) }
    }

    /// Reads or changes the state directly (no call recorded, no fault applied).
    pub fn with_state<T>(&self, f: impl FnOnce(&mut BackendState) -> T) -> T {
        f(&mut lock(&self.state))
    }

    /// A copy of the state.
    pub fn snapshot(&self) -> BackendState {
        lock(&self.state).clone()
    }

    // --- arranging the group ---

    /// Adds (or replaces) a running instance.
    pub fn add_instance(&self, id: &str, address: &str, zone: &str) -> InstanceId {
        let id = InstanceId(id.to_string());
        let record = InstanceRecord {
            address: address.to_string(),
            zone: zone.to_string(),
            state: InstanceState::Running,
            protected: None,
            hook: None,
        };
        self.with_state(|s| s.instances.insert(id.clone(), record));
        id
    }

    /// Sets an instance's state (scale-in: `Terminating`, then `Terminated`).
    pub fn set_state(&self, id: &InstanceId, state: InstanceState) {
        self.with_state(|s| s.instances.get_mut(id).map(|r| r.state = state)).expect("no such instance");
    }

    /// Sets an instance's lifecycle hook.
    pub fn set_hook(&self, id: &InstanceId, hook: Option<LifecycleHook>) {
        self.with_state(|s| s.instances.get_mut(id).map(|r| r.hook = hook)).expect("no such instance");
    }

    /// Sets an instance's scale-in protection.
    pub fn set_protected(&self, id: &InstanceId, protected: Option<bool>) {
        self.with_state(|s| s.instances.get_mut(id).map(|r| r.protected = protected)).expect("no such instance");
    }

    /// Sets the desired capacity.
    pub fn set_desired(&self, n: usize) {
        self.with_state(|s| s.desired = n);
    }

    /// Records a claim of `id` by `instance` (as if its agent had claimed it earlier).
    pub fn seed_claim(&self, id: ServerId, instance: &InstanceId, address: &str) {
        self.with_state(|s| s.claims.insert(id, (instance.clone(), address.to_string())));
    }

    /// Writes the marker as if some agent had created it.
    pub fn seed_marker(&self, marker: ClusterMarker) {
        self.with_state(|s| s.marker = Some(marker));
    }

    /// Gives the lease to `holder` until `expires_ms`.
    pub fn set_lease(&self, holder: &InstanceId, expires_ms: u64) {
        self.with_state(|s| s.lease = Some((holder.clone(), expires_ms)));
    }

    /// Replaces the operator's switches.
    pub fn set_operator(&self, settings: OperatorSettings) {
        self.with_state(|s| s.operator = Some(settings));
    }

    /// Slot storage lives under `root/slots/<n>`.
    pub fn set_slot_root(&self, root: impl Into<PathBuf>) {
        let root = root.into();
        self.with_state(|s| s.slot_root = Some(root));
    }

    // --- reading what the agents did ---

    /// The cluster marker.
    pub fn marker(&self) -> Option<ClusterMarker> {
        self.with_state(|s| s.marker.clone())
    }

    /// The lease holder and expiry.
    pub fn lease(&self) -> Option<(InstanceId, u64)> {
        self.with_state(|s| s.lease.clone())
    }

    /// Every membership published, oldest first.
    pub fn memberships(&self) -> Vec<EnsembleConfig> {
        self.with_state(|s| s.memberships.clone())
    }

    /// An agent's last published status, parsed.
    pub fn status_of(&self, instance: &InstanceId) -> Option<serde_json::Value> {
        self.with_state(|s| s.statuses.get(instance).and_then(|j| serde_json::from_str(j).ok()))
    }

    /// The id claimed by `instance`.
    pub fn claim_of(&self, instance: &InstanceId) -> Option<ServerId> {
        self.with_state(|s| s.claims.iter().find(|(_, (i, _))| i == instance).map(|(n, _)| *n))
    }

    // --- faults, hooks and the call log ---

    /// The next `n` calls of `method` fail.
    pub fn fail_next(&self, method: &str, n: usize) {
        lock(&self.script).push(method, Fault::Fail, n);
    }

    /// Every call of `method` fails until healed.
    pub fn fail_always(&self, method: &str) {
        lock(&self.script).always(method, Fault::Fail);
    }

    /// Every call of every method fails until healed: the backend is down.
    pub fn fail_every_call(&self) {
        lock(&self.script).every_method(Fault::Fail);
    }

    /// The next call of `method` waits `after`, then fails as timed out.
    pub fn time_out_next(&self, method: &str, after: Duration) {
        lock(&self.script).push(method, Fault::Timeout(after), 1);
    }

    /// Every call of `method` waits `after`, then fails as timed out, until healed.
    pub fn time_out_always(&self, method: &str, after: Duration) {
        lock(&self.script).always(method, Fault::Timeout(after));
    }

    /// The next `n` calls of `method` get `fault`.
    pub fn script(&self, method: &str, fault: Fault, n: usize) {
        lock(&self.script).push(method, fault, n);
    }

    /// Drops every fault of `method`.
    pub fn heal(&self, method: &str) {
        lock(&self.script).heal(method);
    }

    /// Drops every fault: the backend is back.
    pub fn heal_all(&self) {
        lock(&self.script).heal_all();
    }

    /// Runs `hook` when `method` is next called, before it answers.
    pub fn on_next(&self, method: &str, hook: impl FnOnce() + Send + 'static) {
        lock(&self.script).hook(method, Box::new(hook));
    }

    /// Every call answered so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.script).calls()
    }

    /// The calls of `method`.
    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        let m = lock(&self.script).method(method);
        self.calls().into_iter().filter(|c| c.method == m).collect()
    }

    /// How many times `method` was called.
    pub fn count(&self, method: &str) -> usize {
        self.calls_to(method).len()
    }

    /// Forgets the calls so far.
    pub fn clear_calls(&self) {
        lock(&self.script).clear_calls();
    }

    /// Records the call, runs its hook, plays its fault.
    async fn enter(&self, method: &'static str, args: String) -> PortResult<()> {
        let (fault, hook) = lock(&self.script).enter(method, args);
        if let Some(hook) = hook {
            hook();
        }
        match play(fault, "backend", method).await {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn missing(what: &str) -> PortError {
    PortError::msg("backend", what.to_string())
}

#[cfg(test)]
mod tests;
