//! The agent: boot, then observe → plan → execute one step → publish, every pass.
//!
//! Following one membership change: [`Agent::run`] calls [`Agent::pass`], which gathers an
//! `Observed` snapshot ([`crate::observe`]), calls the pure planner (`zkpilot_core::plan`), takes
//! the backend lease, and hands the plan's single reconfig to [`Agent::execute`], which calls the
//! ZooKeeper port's `reconfig` (conditional on the observed config version), reads the outcome back
//! from `/zookeeper/config`, and commits a confirming write.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::watch;
use zkpilot_core::boot::{BootDecision, BootInputs, decide};
use zkpilot_core::model::{InstanceState, ServerId, ServerSpec};
use zkpilot_core::observed::Observed;
use zkpilot_core::plan::{Action, MembershipChange, Plan};
use zkpilot_core::policy::server_name;
pub use zkpilot_core::ports::SystemClock;
use zkpilot_core::ports::{
    Backend, Clock, ClusterMarker, Launch, PortError, ReconfigError, ServerDetail, ServerProcess, Slot, Zookeeper,
};
use zkpilot_core::safety::check_plan;
use zkpilot_supervisor::Backoff;
use zkpilot_zk::files::{self, Layout, LocalState, Stamp};
use zkpilot_zk::{FilesError, Secret};

use crate::api::Control;
use crate::config::{AgentConfig, IdentityMode};
use crate::observe::Observer;
use crate::status::{AgentStatus, Counters, Event, MemberLine, Phase};

mod backups;
mod recovery;

/// Why the agent stopped. Everything here is fatal: retryable conditions are handled in the loop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// Local files are malformed or foreign; nothing was changed.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The secret file is unusable.
    #[error("{0}")]
    Secret(String),
    /// A port failed in a way the agent cannot wait out.
    #[error(transparent)]
    Port(#[from] PortError),
    /// Local state contradicts the group (another cluster's data, another server's id).
    #[error("refusing to start: {0}")]
    Refused(String),
}

/// Minimum time between heartbeats of one lifecycle action (hook timeouts are minutes).
const HEARTBEAT_EVERY_MS: u64 = 60_000;
/// Pass interval while an agent boots, for at most [`BOOT_FAST_FOR_MS`].
const BOOT_PASS: Duration = Duration::from_millis(100);
/// How long after start a booting agent polls fast.
const BOOT_FAST_FOR_MS: u64 = 30_000;
/// How often the local server's own detail (zabstate, mntr) is asked.
const DETAIL_EVERY_MS: u64 = 1500;
/// A server that ran this long before it exited restarts without backoff.
const RAN_FINE_MS: u64 = 60_000;
/// Attempts of the confirming write after a reconfig, [`CONFIRM_PAUSE`] apart: removing the
/// leader breaks sessions for a moment. A count, not a wall-clock deadline, so a test clock that
/// does not move cannot hang it.
const CONFIRM_ATTEMPTS: u32 = 75;
/// Pause between confirming-write attempts.
const CONFIRM_PAUSE: Duration = Duration::from_millis(200);
/// Events kept in status.
const EVENTS_KEPT: usize = 50;

enum Boot {
    Started,
    Waiting(String),
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassEnd {
    /// Keep going: the next pass follows after the pass interval.
    Continue,
    /// This instance's server was removed from the ensemble on scale-in and is stopped; the
    /// instance may terminate.
    Removed,
}

/// One agent.
pub struct Agent<B, Z, P, C> {
    cfg: AgentConfig,
    backend: B,
    zk: Z,
    process: P,
    clock: C,
    layout: Layout,
    secret: Secret,
    observer: Observer,
    /// The agent started the server and has not seen it exit or stopped it since.
    running: bool,
    my_id: Option<ServerId>,
    slot: Option<Slot>,
    names_written: Option<std::collections::BTreeMap<String, String>>,
    pid_file: std::path::PathBuf,
    started_at: Option<u64>,
    restart_at: Option<u64>,
    backoff: Backoff,
    marker_seen: bool,
    no_quorum_since: Option<u64>,
    fenced: Option<recovery::Fence>,
    report_at: Option<u64>,
    control: Arc<Control>,
    operator: zkpilot_core::ports::OperatorSettings,
    counters: Counters,
    last_boot_log: Option<String>,
    published_version: Option<u64>,
    metrics_at: Option<u64>,
    newest_backup_ms: Option<u64>,
    leader_since_listing: bool,
    settled: bool,
    detail: Option<(u64, ServerDetail)>,
    heartbeats: std::collections::HashMap<zkpilot_core::model::InstanceId, u64>,
    unhealthy_reported: std::collections::HashMap<zkpilot_core::model::InstanceId, u64>,
    /// When this agent was created (clock ms): it polls fast while booting, for a while.
    born_ms: u64,
    events: VecDeque<Event>,
    status: watch::Sender<Arc<AgentStatus>>,
}

impl<B, Z, P, C> std::fmt::Debug for Agent<B, Z, P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("instance", &self.cfg.instance.id).field("server_id", &self.my_id).finish()
    }
}

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    /// Checks the secret; touches nothing on disk. The process port comes ready: the JVM one
    /// ([`crate::process::JvmProcess`]) has checked the install when it was built.
    pub fn new(cfg: AgentConfig, backend: B, zk: Z, process: P, clock: C) -> Result<Self, AgentError> {
        let secret = Secret::from_file(&cfg.cluster.secret_file).map_err(|e| AgentError::Secret(e.to_string()))?;
        let layout = Layout::new(&cfg.server.base_dir);
        let pid_file = cfg.server.base_dir.parent().unwrap_or(&cfg.server.base_dir).join("zk.pid");
        let initial = AgentStatus {
            instance: cfg.instance.id.clone(),
            address: cfg.instance.address.clone(),
            zone: cfg.instance.zone.clone(),
            server_id: None,
            phase: Phase::Booting,
            detail: String::new(),
            role: None,
            mode: None,
            server: None,
            config_version: None,
            leader: None,
            connect_string: None,
            plan: Plan::default(),
            lease_holder: false,
            events: Vec::new(),
            updated_ms: 0,
            members: Vec::new(),
            zxid_lag: None,
            paused: false,
            target_voters: cfg.policy.target_voters,
            counters: Counters::default(),
            api: cfg.api.as_ref().map(|a| a.listen.to_string()),
        };
        let born_ms = clock.now_ms();
        Ok(Self {
            cfg,
            backend,
            zk,
            process,
            clock,
            layout,
            secret,
            observer: Observer::default(),
            running: false,
            my_id: None,
            slot: None,
            names_written: None,
            // Beside the configured base dir (the local controller finds it there), not on the
            // slot's storage, which a later holder reuses.
            pid_file,
            started_at: None,
            restart_at: None,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
            marker_seen: false,
            no_quorum_since: None,
            fenced: None,
            report_at: None,
            control: Arc::new(Control::default()),
            operator: Default::default(),
            counters: Counters::default(),
            last_boot_log: None,
            published_version: None,
            metrics_at: None,
            newest_backup_ms: None,
            leader_since_listing: false,
            settled: false,
            detail: None,
            heartbeats: std::collections::HashMap::new(),
            unhealthy_reported: std::collections::HashMap::new(),
            born_ms,
            events: VecDeque::new(),
            status: watch::channel(Arc::new(initial)).0,
        })
    }

    /// The operator's switches (pause, voter target), for the HTTP API.
    pub fn control(&self) -> Arc<Control> {
        self.control.clone()
    }

    /// The policy in force: the config's, with the operator's voter target if one was set.
    fn policy(&self) -> zkpilot_core::Policy {
        let mut p = self.cfg.policy.clone();
        if let Some(t) = self.operator.target_voters {
            p.target_voters = t;
        }
        p
    }

    /// Stores the changes the API accepted, then reads the ensemble-wide switches. A failed read
    /// keeps the last known switches: a backend blip must not unpause an ensemble.
    async fn sync_operator_settings(&mut self) {
        let (local, changes): (Vec<_>, Vec<_>) = self
            .control
            .take()
            .into_iter()
            .partition(|c| matches!(c, crate::api::Change::RestartServer | crate::api::Change::Backup));
        if local.contains(&crate::api::Change::Backup) {
            self.take_backup(zkpilot_core::backup::BackupReason::Manual, None).await;
        }
        if local.contains(&crate::api::Change::RestartServer) && self.running {
            // Graceful: SIGTERM, then start again with the same files; the ensemble sees one
            // member leave and come back, exactly as in a rolling restart by hand.
            let started = Instant::now();
            self.stop_server().await;
            let outcome = match self.start_server() {
                Ok(()) => "applied".to_string(),
                Err(e) => format!("failed: {e}"),
            };
            self.record_event("operator: restart server".into(), outcome, started);
        }
        if !changes.is_empty() {
            let mut s = self.backend.operator_settings().await.ok().flatten().unwrap_or_default();
            for c in &changes {
                match c {
                    crate::api::Change::Pause => s.paused = true,
                    crate::api::Change::Resume => s.paused = false,
                    crate::api::Change::TargetVoters(t) => s.target_voters = *t,
                    crate::api::Change::RestartServer | crate::api::Change::Backup => {}
                }
            }
            s.updated_by = self.cfg.instance.id.0.clone();
            s.updated_ms = self.clock.now_ms();
            let outcome = match self.backend.put_operator_settings(&s).await {
                Ok(()) => "applied".to_string(),
                Err(e) => format!("failed: {e}"),
            };
            self.record_event(format!("operator: {changes:?}"), outcome, Instant::now());
        }
        match self.backend.operator_settings().await {
            Ok(s) => self.operator = s.unwrap_or_default(),
            Err(e) => tracing::warn!(error = %e, "reading the operator's switches; keeping the last known"),
        }
    }

    /// Subscribes to status snapshots.
    pub fn status(&self) -> watch::Receiver<Arc<AgentStatus>> {
        self.status.subscribe()
    }

    /// Runs until `shutdown`, then stops ZooKeeper gracefully. Returns early (Ok) once this
    /// instance's server has been removed from the ensemble on scale-in.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), AgentError> {
        tokio::pin!(shutdown);
        let pass = Duration::from_millis(self.cfg.agent.pass_interval_ms);
        let result = loop {
            match self.pass().await {
                Ok(PassEnd::Removed) => break Ok(()),
                Ok(PassEnd::Continue) => {}
                Err(e) => break Err(e),
            }
            // A booting agent waits on others (their claims, the marker, the first leader): poll
            // fast for a while so a fresh ensemble does not lose whole passes per boot step
            // (BENCHMARKS.md B4), then at the normal pace so a long wait costs few backend calls.
            let booting = !self.settled
                && self.fenced.is_none()
                && self.clock.now_ms().saturating_sub(self.born_ms) < BOOT_FAST_FOR_MS;
            let wait = if booting { pass.min(BOOT_PASS) } else { pass };
            tokio::select! {
                () = &mut shutdown => break Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        };
        self.stop_server().await;
        if let Err(e) = &result {
            self.publish(Phase::Waiting, format!("stopped: {e}"), None, &Plan::default(), false).await;
        }
        self.ship_logs("agent stopped").await;
        result
    }

    /// One pass: boot while the server is not running, else observe → plan → execute at most one
    /// step → publish. [`PassEnd::Removed`] once this instance's server has left the ensemble on
    /// scale-in (it is stopped then).
    pub async fn pass(&mut self) -> Result<PassEnd, AgentError> {
        if self.fenced.is_some() {
            self.recovery_pass().await?;
            return Ok(PassEnd::Continue);
        }
        if !self.running || self.supervise_exited() {
            if self.restart_at.is_some_and(|at| self.clock.now_ms() < at) {
                return Ok(PassEnd::Continue);
            }
            match self.boot().await? {
                Boot::Started => {}
                Boot::Waiting(_) if self.fenced.is_some() => return Ok(PassEnd::Continue),
                Boot::Waiting(why) => {
                    let phase =
                        if self.marker_seen && self.quorum_lost_for() { Phase::QuorumLost } else { Phase::Waiting };
                    self.publish(phase, why, None, &Plan::default(), false).await;
                    return Ok(PassEnd::Continue);
                }
            }
        }
        self.sync_operator_settings().await;
        let now = self.clock.now_ms();
        let obs = self.observer.observe(&self.backend, &self.zk, self.cfg.server.client_port, now).await;
        let policy = self.policy();
        let mut plan = zkpilot_core::plan(&obs, &policy, now);
        debug_assert_eq!(check_plan(&obs, &policy, &plan), Ok(()), "planner broke a safety rule");
        self.track_quorum(&obs, now);
        if obs.config.is_none()
            && self.running
            && self.quorum_lost_for()
            && let Some(detail) = self.maybe_fence(&obs).await?
        {
            self.publish(Phase::Recovering, detail, Some(&obs), &plan, false).await;
            return Ok(PassEnd::Continue);
        }
        self.publish_membership(&obs).await;
        if let Err(e) = self.refresh_names(obs.instances.as_deref()).await {
            tracing::warn!(error = %e, "keeping server names current");
        }

        let me = self.my_id;
        let my_instance = obs.instances.iter().flatten().find(|i| i.id == self.cfg.instance.id);
        let leaving = my_instance.is_some_and(|i| i.state.is_leaving());
        let in_config = obs.config.as_ref().zip(me).is_some_and(|(c, id)| c.servers.contains_key(&id));
        if leaving && obs.config.is_some() && !in_config {
            // Out of the committed config (the lease holder removed it and confirmed with a write):
            // the scale-in lifecycle is complete.
            self.stop_server().await;
            self.publish(
                Phase::Removed,
                "removed from the ensemble; instance may terminate".into(),
                Some(&obs),
                &plan,
                false,
            )
            .await;
            return Ok(PassEnd::Removed);
        }

        let mut lease = false;
        if !plan.actions.is_empty() && self.operator.paused {
            plan.skip("automation", "paused by the operator (POST /resume on this agent's API)");
        } else if !plan.actions.is_empty() {
            lease = match self.backend.acquire_lease(&self.cfg.instance.id, self.cfg.agent.lease_ttl_ms, now).await {
                Ok(held) => held,
                Err(e) => {
                    self.counters.claim_failures += 1;
                    tracing::warn!(error = %e, "acquiring the lease");
                    false
                }
            };
            if lease {
                self.execute(&obs, &plan).await;
            }
        }
        self.maybe_periodic_backup(&obs).await;
        let (phase, detail) = if leaving {
            (Phase::Leaving, "instance terminating; waiting for its server's removal".to_string())
        } else if in_config {
            (Phase::Member, String::new())
        } else if obs.config.is_none() && self.quorum_lost_for() {
            (Phase::QuorumLost, "no member serves although the ensemble exists; waiting, nothing is wiped".to_string())
        } else {
            (Phase::Joining, "running as a non-voting follower until the lease holder adds it".to_string())
        };
        self.publish(phase, detail, Some(&obs), &plan, lease).await;
        Ok(PassEnd::Continue)
    }

    /// Every agent that sees a committed config version it has not published yet publishes it:
    /// cheap, idempotent, and no single agent has to survive for clients to learn the change.
    async fn publish_membership(&mut self, obs: &Observed) {
        let Some(cfg) = &obs.config else { return };
        if self.published_version == Some(cfg.version) {
            return;
        }
        match self.backend.publish_membership(cfg).await {
            Ok(()) => self.published_version = Some(cfg.version),
            Err(e) => tracing::warn!(error = %e, "publishing the connection string"),
        }
    }

    fn track_quorum(&mut self, obs: &Observed, now: u64) {
        if obs.config.is_some() {
            self.no_quorum_since = None;
        } else if self.no_quorum_since.is_none() {
            self.no_quorum_since = Some(now);
        }
    }

    fn quorum_lost_for(&self) -> bool {
        self.no_quorum_since
            .is_some_and(|t| self.clock.now_ms().saturating_sub(t) >= self.cfg.recovery.quorum_loss_after_ms)
    }

    /// Reaps an unexpected ZooKeeper exit and schedules a restart with backoff.
    fn supervise_exited(&mut self) -> bool {
        if !self.running {
            return false;
        }
        let Some(exit) = self.process.try_exited() else {
            return false;
        };
        self.running = false;
        self.remove_pid_file();
        let now = self.clock.now_ms();
        if self.started_at.is_some_and(|t| now.saturating_sub(t) > RAN_FINE_MS) {
            self.backoff.reset();
        }
        let delay = self.backoff.next_delay();
        self.counters.server_restarts += 1;
        tracing::warn!(?exit, ?delay, log = %self.layout.log_file().display(), "ZooKeeper exited; restarting after backoff");
        self.restart_at = Some(now + delay.as_millis() as u64);
        true
    }

    /// Slot mode: takes this instance's slot (address and storage) before anything reads local
    /// state, since the state lives on the slot's storage. `None` while no slot is free.
    async fn take_slot(&mut self) -> Result<Option<Slot>, AgentError> {
        if let Some(s) = &self.slot {
            return Ok(Some(s.clone()));
        }
        let Some(slot) = self.backend.claim_slot(&self.cfg.instance.id, &self.cfg.instance.zone).await? else {
            return Ok(None);
        };
        tracing::info!(slot = %slot.id, address = %slot.address, base_dir = ?slot.base_dir, "slot taken");
        if let Some(dir) = &slot.base_dir {
            self.layout = Layout::new(dir);
        }
        self.cfg.instance.address = slot.address.clone();
        self.slot = Some(slot.clone());
        Ok(Some(slot))
    }

    /// Walks the boot decision tree once; starts ZooKeeper when it can.
    async fn boot(&mut self) -> Result<Boot, AgentError> {
        let slot = match self.cfg.cluster.identity {
            IdentityMode::Elastic => None,
            IdentityMode::Slot => match self.take_slot().await? {
                Some(s) => Some(s),
                None => {
                    return Ok(Boot::Waiting(format!(
                        "slot mode: every slot of zone {} is held by a live instance",
                        self.cfg.instance.zone
                    )));
                }
            },
        };
        self.load_fence()?;
        if self.fenced.is_some() {
            return Ok(Boot::Waiting("fenced by quorum-loss recovery".into()));
        }
        let local = LocalState::read(&self.layout)?;
        let marker = self.backend.cluster_marker().await?;
        self.marker_seen = marker.is_some();
        let now = self.clock.now_ms();
        let id = match &local {
            Some(state) => {
                if let Some(m) = &marker
                    && m.cluster_id != state.stamp.cluster_id
                {
                    return Err(AgentError::Refused(format!(
                        "{} is stamped for cluster {} but this group's cluster is {}",
                        self.layout.stamp().display(),
                        state.stamp.cluster_id,
                        m.cluster_id
                    )));
                }
                let claimed = match &slot {
                    Some(s) => s.id,
                    None => self.backend.claim_id(&self.cfg.instance.id, &self.cfg.instance.address).await?,
                };
                if claimed != state.myid {
                    return Err(AgentError::Refused(format!(
                        "{} says server {} but instance {} holds the {} for {claimed}",
                        self.layout.myid().display(),
                        state.myid,
                        self.cfg.instance.id,
                        if slot.is_some() { "slot" } else { "claim" }
                    )));
                }
                state.myid
            }
            None => match &slot {
                Some(s) => s.id,
                None => self.backend.claim_id(&self.cfg.instance.id, &self.cfg.instance.address).await?,
            },
        };
        if self.my_id != Some(id) {
            if let Err(e) = self.backend.announce(&self.cfg.instance.id, id, &self.cfg.instance.address).await {
                tracing::warn!(error = %e, "announcing the server id on the instance");
            }
            self.my_id = Some(id);
        }
        let me = self.cfg.server_spec(id);
        let obs = self.observer.observe(&self.backend, &self.zk, self.cfg.server.client_port, now).await;
        self.track_quorum(&obs, now);
        let claimed: Vec<ServerSpec> = obs
            .instances
            .iter()
            .flatten()
            .filter(|i| i.state == InstanceState::Running)
            .filter_map(|i| i.server_id.map(|sid| (sid, i)))
            .map(|(sid, i)| ServerSpec {
                host: self.cfg.policy.host_for(sid, &i.address),
                client_host: self.cfg.policy.host_for(sid, &i.address),
                ..self.cfg.server_spec(sid)
            })
            .collect();
        let mut local = local;
        if obs.config.is_some()
            && local.as_ref().is_some_and(|s| s.has_data)
            && self.set_aside_unloadable_data(id, now)?
        {
            local = LocalState::read(&self.layout)?;
        }
        let desired = self.backend.desired_capacity().await?;
        // Only an ensemble not yet born can be a restore.
        let seed = if marker.is_none() && local.is_none() { self.backend.restore_seed().await? } else { None };
        let inputs = BootInputs {
            me: &me,
            local_lists_me: local.as_ref().map(|s| s.dynamic.1.servers.contains_key(&id)),
            serving_config: obs.config.as_ref(),
            marker: marker.as_ref(),
            claimed: &claimed,
            desired_instances: desired,
            target_voters: self.cfg.policy.target_voters,
            leaving: obs.instances.iter().flatten().any(|i| i.id == self.cfg.instance.id && i.state.is_leaving()),
            restoring: seed.is_some(),
        };
        let decision = decide(&inputs);
        let said = decision.to_string();
        if self.last_boot_log.as_deref() != Some(said.as_str()) {
            tracing::info!(server_id = %id, "boot decision: {said}");
            self.last_boot_log = Some(said);
        }
        let keys = self.static_keys().await?;
        match (decision, local) {
            (BootDecision::StartAsIs, Some(mut state)) => {
                files::update_static(&self.layout, &mut state, &keys)?;
            }
            (BootDecision::Rejoin(cfg), Some(mut state)) => {
                files::update_static(&self.layout, &mut state, &keys)?;
                files::repoint_joiner(&self.layout, &mut state, &cfg)?;
            }
            (BootDecision::Join(cfg), None) => {
                let Some(m) = &marker else {
                    return Ok(Boot::Waiting("an ensemble serves but this group has no cluster marker; not joining an ensemble zkpilot did not create".into()));
                };
                self.prepare(m, id, &keys, &cfg, false)?;
            }
            (BootDecision::Genesis(cfg), None) => {
                let Some(m) = &marker else {
                    return Ok(Boot::Waiting("genesis without marker".into()));
                };
                match &m.restored_from {
                    Some(name) => {
                        if let Some(why) = self.prepare_restored(m, name, id, &keys, &cfg).await? {
                            return Ok(Boot::Waiting(why));
                        }
                    }
                    None => self.prepare(m, id, &keys, &cfg, true)?,
                }
            }
            (BootDecision::ProposeGenesis(members), None) => {
                let proposal = ClusterMarker {
                    cluster_id: uuid::Uuid::new_v4().to_string(),
                    genesis: members,
                    created_by: self.cfg.instance.id.clone(),
                    created_ms: now,
                    restored_from: seed,
                };
                let won = self.backend.create_cluster_marker(&proposal).await?;
                tracing::info!(cluster_id = %won.cluster_id, genesis = ?zkpilot_core::boot::genesis_ids(&won), "cluster marker");
                return Ok(Boot::Waiting("cluster marker written; starting genesis".into()));
            }
            (BootDecision::Wait(why), _) => return Ok(Boot::Waiting(why)),
            (d, _) => return Ok(Boot::Waiting(format!("inconsistent boot decision {d:?}"))),
        }
        if let Err(e) = self.refresh_names(obs.instances.as_deref()).await {
            return Ok(Boot::Waiting(format!("server name not published, not starting: {e}")));
        }
        self.start_server()?;
        Ok(Boot::Started)
    }

    /// Name indirection: points this server's name (and, with a hosts file, every running
    /// member's) at the address it runs on. Route53 records are each agent's own, written once
    /// per run; the hosts file is local to each host, so every agent keeps all names in it.
    async fn refresh_names(&mut self, instances: Option<&[zkpilot_core::Instance]>) -> Result<(), String> {
        let (Some(names), Some(id)) = (self.cfg.names.clone(), self.my_id) else { return Ok(()) };
        let mut current =
            std::collections::BTreeMap::from([(server_name(id, &names.domain), self.cfg.instance.address.clone())]);
        if names.hosts_file.is_some() {
            for i in instances.into_iter().flatten().filter(|i| i.state != InstanceState::Terminated) {
                if let Some(sid) = i.server_id.filter(|sid| *sid != id) {
                    current.insert(server_name(sid, &names.domain), i.address.clone());
                }
            }
        }
        // Every pass computes the mapping; the file or the record is written only when it moved.
        if self.names_written.as_ref() == Some(&current) {
            return Ok(());
        }
        if let Some(file) = names.hosts_file {
            let (domain, entries) = (names.domain.clone(), current.clone());
            tokio::task::spawn_blocking(move || crate::names::update_hosts_file(&file, &domain, &entries))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        } else {
            for (name, address) in &current {
                self.backend.publish_name(name, address).await.map_err(|e| e.to_string())?;
            }
        }
        tracing::info!(names = ?current, "server names published");
        self.names_written = Some(current);
        Ok(())
    }

    /// zkpilot's static zoo.cfg keys with the shared base config merged in. A malformed base
    /// config stops the boot (nothing is written); keys it may not set are ignored loudly.
    async fn static_keys(&self) -> Result<Vec<(String, String)>, AgentError> {
        let own = self.cfg.static_keys(&self.secret.super_digest());
        let Some(text) = self.backend.base_config().await? else { return Ok(own) };
        let base = zkpilot_zk::ZooCfg::parse(&text, std::path::Path::new("<backend base.cfg>"))?;
        let (merged, ignored) = crate::config::merge_base(&own, &base);
        if !ignored.is_empty() {
            tracing::warn!(
                ?ignored,
                "base config keys ignored: zkpilot owns them (or they belong in the dynamic file)"
            );
        }
        Ok(merged)
    }

    fn prepare(
        &self,
        marker: &ClusterMarker,
        id: ServerId,
        keys: &[(String, String)],
        cfg: &zkpilot_core::EnsembleConfig,
        genesis: bool,
    ) -> Result<(), AgentError> {
        let stamp = Stamp { cluster_id: marker.cluster_id.clone(), server_id: id };
        files::prepare_new(&self.layout, &stamp, keys, cfg, genesis)?;
        Ok(())
    }

    /// Everything the agent decides about a start of its server.
    fn launch(&self) -> Launch {
        Launch {
            base: self.layout.base.clone(),
            conf_dir: self.layout.conf_dir(),
            zoo_cfg: self.layout.zoo_cfg(),
            log: self.layout.log_file(),
            heap_mb: self.cfg.server.heap_mb,
            hosts_file: self
                .cfg
                .names
                .as_ref()
                .and_then(|n| n.hosts_file.clone())
                .filter(|f| f != std::path::Path::new("/etc/hosts")),
            dns_ttl_s: self.cfg.names.as_ref().map(|_| 5),
            snapshot_sync_only: self.cfg.server.snapshot_sync_only,
            run_as_uid: self.cfg.server.run_as_uid,
        }
    }

    fn start_server(&mut self) -> Result<(), AgentError> {
        let launch = self.launch();
        self.process.start(&launch)?;
        if let Some(pid) = self.process.pid()
            && let Err(e) = std::fs::write(&self.pid_file, pid.to_string())
        {
            tracing::warn!(error = %e, path = %self.pid_file.display(), "cannot record ZooKeeper pid");
        }
        self.running = true;
        self.started_at = Some(self.clock.now_ms());
        self.restart_at = None;
        Ok(())
    }

    fn remove_pid_file(&self) {
        let _ignored = std::fs::remove_file(&self.pid_file);
    }

    async fn stop_server(&mut self) {
        self.detail = None;
        if std::mem::take(&mut self.running) {
            if let Err(e) = self.process.stop().await {
                tracing::warn!(error = %e, "stopping ZooKeeper");
            }
            self.remove_pid_file();
        }
    }

    /// Executes the plan's actions (at most one reconfig) and records each outcome.
    async fn execute(&mut self, obs: &Observed, plan: &Plan) {
        let connect = serving_connect_string(obs);
        for action in &plan.actions {
            let started = Instant::now();
            let outcome = match action {
                Action::Reconfig(change) => {
                    if self.cfg.backup.before_change {
                        self.take_backup(
                            zkpilot_core::backup::BackupReason::BeforeChange,
                            obs.config.as_ref().map(|c| c.version),
                        )
                        .await;
                    }
                    let started = Instant::now();
                    let outcome = self.reconfig(&connect, change).await;
                    if outcome.starts_with("applied") {
                        self.counters.reconfigs_applied += 1;
                    } else {
                        self.counters.reconfigs_failed += 1;
                    }
                    self.counters.reconfig_ms += started.elapsed().as_millis() as u64;
                    outcome
                }
                Action::ReleaseId { id, instance } => match self.backend.release_id(*id, instance).await {
                    Ok(()) => "applied".to_string(),
                    Err(e) => format!("failed: {e}"),
                },
                Action::LifecycleHeartbeat { instance, hook } => {
                    // Throttled here, not in the planner: the plan says what is wanted, this
                    // avoids a call every pass.
                    let now = self.clock.now_ms();
                    let due =
                        self.heartbeats.get(instance).is_none_or(|t| now.saturating_sub(*t) >= HEARTBEAT_EVERY_MS);
                    if !due {
                        continue;
                    }
                    self.heartbeats.insert(instance.clone(), now);
                    match self.backend.lifecycle_heartbeat(instance, *hook).await {
                        Ok(()) => "applied".to_string(),
                        Err(e) => format!("failed: {e}"),
                    }
                }
                Action::CompleteLifecycle { instance, hook } => {
                    match self.backend.complete_lifecycle(instance, *hook).await {
                        Ok(()) => "applied".to_string(),
                        Err(e) => format!("failed: {e}"),
                    }
                }
                Action::ReportUnhealthy { instance, .. } => {
                    // Once is enough while the group acts on it; repeated only if it did not.
                    let now = self.clock.now_ms();
                    let due = self
                        .unhealthy_reported
                        .get(instance)
                        .is_none_or(|t| now.saturating_sub(*t) >= HEARTBEAT_EVERY_MS);
                    if !due {
                        continue;
                    }
                    self.unhealthy_reported.insert(instance.clone(), now);
                    self.counters.unhealthy_reports += 1;
                    match self.backend.report_unhealthy(instance).await {
                        Ok(()) => "applied".to_string(),
                        Err(e) => format!("failed: {e}"),
                    }
                }
                Action::SetScaleInProtection { instance, protected } => {
                    match self.backend.set_scale_in_protection(instance, *protected).await {
                        Ok(()) => "applied".to_string(),
                        Err(e) => format!("failed: {e}"),
                    }
                }
            };
            tracing::info!(%action, %outcome, "executed");
            self.record_event(action.to_string(), outcome, started);
        }
    }

    fn record_event(&mut self, action: String, outcome: String, started: Instant) {
        self.events.push_back(Event {
            at_ms: self.clock.now_ms(),
            action,
            outcome,
            took_ms: started.elapsed().as_millis() as u64,
        });
        while self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
    }

    /// One conditional reconfig, its outcome settled by reading the config back, then confirmed by
    /// a committed write (only then is it active on every server, and safe to stop a removed one).
    async fn reconfig(&self, connect: &str, change: &MembershipChange) -> String {
        let applied = match self.zk.reconfig(connect, change).await {
            Ok(cfg) if change.is_reflected_in(&cfg) => Ok(()),
            Ok(cfg) => Err(format!("failed: ZooKeeper answered with config {:x} that lacks the change", cfg.version)),
            Err(ReconfigError::Unknown(why)) => match self.zk.committed_config(connect).await {
                Ok(cfg) if change.is_reflected_in(&cfg) => Ok(()),
                _ => Err(format!("failed: outcome unknown ({why}) and not visible in the config")),
            },
            Err(ReconfigError::Stale) => Err("conflict: the config changed since it was observed; re-planning".into()),
            Err(e @ ReconfigError::Forbidden(_)) => {
                tracing::error!(error = %e, "reconfig forbidden: check the secret file and reconfigEnabled");
                Err(format!("failed: {e}"))
            }
            Err(e) => Err(format!("{e}")),
        };
        if let Err(outcome) = applied {
            return outcome;
        }
        // Removing the leader breaks sessions for a moment; the confirming write retries briefly.
        let mut attempt = 1;
        loop {
            match self.zk.confirm_write(connect).await {
                Ok(()) => return "applied".into(),
                Err(e) if attempt >= CONFIRM_ATTEMPTS => {
                    return format!("applied, confirmation write failed: {e}");
                }
                Err(_) => tokio::time::sleep(CONFIRM_PAUSE).await,
            }
            attempt += 1;
        }
    }

    async fn publish(&mut self, phase: Phase, detail: String, obs: Option<&Observed>, plan: &Plan, lease: bool) {
        self.settled |= phase == Phase::Member;
        let server = if self.running { Some(self.cached_server_detail().await) } else { None };
        self.publish_metrics(server.as_ref()).await;
        let me = self.my_id;
        let config = obs.and_then(|o| o.config.as_ref());
        let status = AgentStatus {
            instance: self.cfg.instance.id.clone(),
            address: self.cfg.instance.address.clone(),
            zone: self.cfg.instance.zone.clone(),
            server_id: me,
            phase,
            detail,
            role: config.zip(me).and_then(|(c, id)| c.role_of(id)),
            mode: obs.zip(me).and_then(|(o, id)| o.health.get(&id)).map(|h| h.mode),
            server: server.clone(),
            config_version: config.map(|c| format!("{:x}", c.version)),
            leader: obs.and_then(Observed::leader),
            connect_string: config.map(|c| c.connect_string()),
            plan: plan.clone(),
            lease_holder: lease,
            events: self.events.iter().cloned().collect(),
            updated_ms: self.clock.now_ms(),
            members: obs.map(member_lines).unwrap_or_default(),
            zxid_lag: obs.zip(me).and_then(|(o, id)| {
                let mine = o.health.get(&id)?.zxid?;
                let leader = o.health.get(&o.leader()?)?.zxid?;
                Some(leader.saturating_sub(mine))
            }),
            paused: self.operator.paused,
            target_voters: self.policy().target_voters,
            counters: self.counters,
            api: self.cfg.api.as_ref().map(|a| a.listen.to_string()),
        };
        match serde_json::to_string_pretty(&status) {
            Ok(json) => {
                if let Err(e) = self.backend.publish_status(&self.cfg.instance.id, &json).await {
                    tracing::warn!(error = %e, "publishing status");
                }
            }
            Err(e) => tracing::warn!(error = %e, "serializing status"),
        }
        self.status.send_replace(Arc::new(status));
    }
}

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    /// The local server's own view (AdminServer `zabstate`, the leader's `mntr`) through the
    /// ZooKeeper port, asked at most every [`DETAIL_EVERY_MS`]: two more connections per pass
    /// were a third of an idle agent's CPU (BENCHMARKS.md B5), and the page, the metrics and a
    /// rolling restart's wait all live with a second of staleness.
    async fn cached_server_detail(&mut self) -> ServerDetail {
        let now = self.clock.now_ms();
        if let Some((at, d)) = &self.detail
            && now.saturating_sub(*at) < DETAIL_EVERY_MS
        {
            return d.clone();
        }
        let d = self
            .zk
            .server_detail(&self.cfg.instance.address, self.cfg.server.admin_port, self.cfg.server.client_port)
            .await;
        self.detail = Some((now, d.clone()));
        d
    }

    /// Publishes the client connection count every `metrics_interval_ms` (what the group's
    /// target-tracking policy scales on; new instances then join as observers).
    async fn publish_metrics(&mut self, detail: Option<&ServerDetail>) {
        let now = self.clock.now_ms();
        if self.metrics_at.is_some_and(|t| now.saturating_sub(t) < self.cfg.agent.metrics_interval_ms) {
            return;
        }
        let Some(connections) = detail.and_then(|d| d.connections) else { return };
        self.metrics_at = Some(now);
        if let Err(e) = self.backend.publish_connections(&self.cfg.instance.id, connections).await {
            tracing::warn!(error = %e, "publishing the connection count");
        }
    }
}

/// Every member and joiner, for status and the page.
fn member_lines(obs: &Observed) -> Vec<MemberLine> {
    obs.members()
        .iter()
        .map(|m| MemberLine {
            id: m.id,
            address: m
                .instance
                .map(|i| i.address.clone())
                .or_else(|| m.spec.map(|s| s.host.clone()))
                .unwrap_or_default(),
            role: m.spec.map_or("-".to_string(), |s| s.role.to_string()),
            mode: Some(m.health.mode),
            zone: m.instance.map(|i| i.zone.clone()),
            instance: m.instance.map(|i| i.id.0.clone()),
            zxid: m.health.zxid,
        })
        .collect()
}

/// Client addresses of the servers that serve, for the reconfig session.
pub fn serving_connect_string(obs: &Observed) -> String {
    let mut addrs = Vec::new();
    for m in obs.members() {
        if !m.is_serving() {
            continue;
        }
        // By the address the instance runs on: with name indirection the config says names,
        // which only the servers' resolver (a hosts file handed to the JVM) may know.
        let port =
            m.spec.or_else(|| obs.config.as_ref().and_then(|c| c.servers.values().next())).map(|s| s.client_port);
        match (m.instance, m.spec, port) {
            (Some(i), _, Some(port)) => addrs.push(format!("{}:{port}", i.address)),
            (None, Some(spec), _) => addrs.push(spec.client_address()),
            _ => {}
        }
    }
    addrs.join(",")
}
