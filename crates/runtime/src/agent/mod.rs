//! The agent: a thin executor around the pure step in `zkpilot_core::agent`. It boots, then every
//! pass observes → decides (core) → executes at most one step → publishes.
//!
//! # Following one membership change
//!
//! 1. [`Agent::run`] calls [`Agent::pass`] until shutdown or removal, sleeping what
//!    `zkpilot_core::agent::Pace` says between passes.
//! 2. [`Agent::pass`] (this file) gathers an `Observed` snapshot through the backend and the
//!    ZooKeeper port ([`crate::observe::Observer`]) and calls the pure planner
//!    (`zkpilot_core::plan`), which `zkpilot_core::agent::vet` re-checks against every safety
//!    rule on every pass (a plan that breaks one is refused, logged, counted and shown), then the core's
//!    `agent::FenceCheck` (fence for quorum-loss recovery? `recovery.rs` acts on it) and
//!    `agent::phase::verdict` (removed? which phase?).
//! 3. `zkpilot_core::agent::gate` says whether the plan runs (the operator may have paused it);
//!    if so the agent takes the backend lease and hands the plan to `execute.rs`, which runs its
//!    single reconfig: a backup first if configured, then the ZooKeeper port's `reconfig`
//!    conditional on the observed config version, the outcome read back from
//!    `/zookeeper/config` when the answer was lost, and a confirming write (only then is the new
//!    config active on every server). What came of it is a `zkpilot_core::agent::Outcome`; the
//!    counters are derived from it.
//! 4. `publish.rs` publishes the committed membership (the connect string), the status snapshot
//!    (phase, plan, events) and the connection-count metric.
//!
//! The other rooms: `state.rs` (the agent's state, grouped), `boot.rs` (claim, refusals, the
//! boot decision, preparing files), `supervise.rs` (start/stop/restart of the server through the
//! process port), `names.rs` (name indirection), `operator.rs` (the API's control queue, the
//! ensemble-wide switches), `backups.rs`, `recovery.rs` (quorum-loss fence and rebuild).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
pub use zkpilot_core::agent::PassEnd;
use zkpilot_core::agent::phase::{self, Listed, Seen, Verdict};
use zkpilot_core::agent::{Gate, Phase, Restarts, Vetted, gate, policy_in_force, vet};
use zkpilot_core::plan::Plan;
pub use zkpilot_core::ports::SystemClock;
use zkpilot_core::ports::{Backend, Clock, PortError, ServerProcess, Zookeeper};
use zkpilot_zk::files::Layout;
use zkpilot_zk::{FilesError, Secret};

use crate::api::Control;
use crate::config::AgentConfig;
use crate::observe::Observer;
use crate::status::AgentStatus;
use state::{EVENTS_KEPT, Identity, Memo, Recovery, Server};

mod backups;
mod boot;
mod execute;
mod names;
mod operator;
mod publish;
mod recovery;
mod state;
mod supervise;
mod tls;

pub use execute::serving_connect_string;
pub use names::NamesError;
pub use recovery::Fence;

/// Why the agent stopped. Everything here is fatal: retryable conditions are handled in the loop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// Local files are malformed or foreign; nothing was changed.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The secret file is unusable.
    #[error("{0}")]
    Secret(zkpilot_zk::SecretError),
    /// A port failed in a way the agent cannot wait out.
    #[error(transparent)]
    Port(#[from] PortError),
    /// Local state contradicts the group (another cluster's data, another server's id).
    #[error("refusing to start: {} {refusal}", path.display())]
    Refused {
        /// The file that says otherwise (the stamp, `myid`).
        path: PathBuf,
        /// What it contradicts.
        refusal: zkpilot_core::boot::Refusal,
    },
    /// The server's TLS certificate cannot be issued (the CA files are missing, unreadable or
    /// do not match); names the file.
    #[error("TLS: {0}")]
    Tls(zkpilot_zk::tls::TlsError),
    /// `[tls]` is on but the release cannot reload certificates.
    #[error(
        "TLS needs ZooKeeper {first} or later (client certificate reload, ZOOKEEPER-3806); {} is {version}",
        home.display(),
        first = zkpilot_core::version::FIRST_WITH_CLIENT_CERT_RELOAD
    )]
    TlsRelease {
        /// The install.
        home: PathBuf,
        /// Its release.
        version: String,
    },
    /// Recovery chose this server as the survivor, but it holds no server to rebuild from.
    #[error("refusing to start: chosen as recovery survivor but {} holds no server", base.display())]
    NoSurvivorState {
        /// The base dir that is empty.
        base: PathBuf,
    },
}

/// One agent.
pub struct Agent<B, Z, P, C> {
    cfg: AgentConfig,
    backend: B,
    zk: Z,
    clock: C,
    secret: Secret,
    observer: Observer,
    control: Arc<Control>,
    status: watch::Sender<Arc<AgentStatus>>,
    identity: Identity,
    server: Server<P>,
    memo: Memo,
    recovery: Recovery,
}

impl<B, Z, P, C> std::fmt::Debug for Agent<B, Z, P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("instance", &self.cfg.instance.id).field("server_id", &self.identity.id).finish()
    }
}

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    /// Checks the secret; touches nothing on disk. The process port comes ready: the JVM one
    /// ([`crate::process::JvmProcess`]) checked the install when it was built.
    pub fn new(cfg: AgentConfig, backend: B, zk: Z, process: P, clock: C) -> Result<Self, AgentError> {
        let secret = Secret::from_file(&cfg.cluster.secret_file).map_err(AgentError::Secret)?;
        let layout = Layout::new(&cfg.server.base_dir);
        let pid_file = cfg.server.base_dir.parent().unwrap_or(&cfg.server.base_dir).join("zk.pid");
        let status = watch::channel(Arc::new(publish::initial_status(&cfg))).0;
        let memo = Memo::new(&cfg, clock.now_ms());
        let observer = Observer::of(cfg.instance.id.clone());
        Ok(Self {
            cfg,
            backend,
            zk,
            clock,
            secret,
            observer,
            control: Arc::new(Control::default()),
            status,
            identity: Identity { id: None, slot: None, layout, pid_file },
            server: Server {
                process,
                running: false,
                restarts: Restarts::default(),
                started_on: None,
                requested: None,
                recorded: None,
            },
            memo,
            recovery: Recovery::new(),
        })
    }

    /// The operator's switches (pause, voter target, restart, backup), for the HTTP API.
    pub fn control(&self) -> Arc<Control> {
        self.control.clone()
    }

    /// Subscribes to status snapshots.
    pub fn status(&self) -> watch::Receiver<Arc<AgentStatus>> {
        self.status.subscribe()
    }

    /// Runs until `shutdown`, then stops ZooKeeper gracefully. Returns early (Ok) once this
    /// instance's server has been removed from the ensemble on scale-in.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), AgentError> {
        tokio::pin!(shutdown);
        let result = loop {
            match self.pass().await {
                Ok(PassEnd::Removed) => break Ok(()),
                Ok(PassEnd::Continue) => {}
                Err(e) => break Err(e),
            }
            let wait = self.memo.pace.wait_ms(self.memo.settled, self.recovery.fence.is_some(), self.clock.now_ms());
            tokio::select! {
                () = &mut shutdown => break Ok(()),
                () = self.between_passes(Duration::from_millis(wait)) => {}
            }
        };
        self.stop_server().await;
        if let Err(e) = &result {
            self.publish(Phase::Waiting, format!("stopped: {e}"), None, &Plan::default(), false).await;
        }
        self.ship_logs("agent stopped").await;
        result
    }

    /// One pass: while the server does not run, one boot step; else observe → plan → fence? →
    /// removed? → execute at most one step under the lease → publish. [`PassEnd::Removed`] once
    /// this instance's server has left the ensemble on scale-in (it is stopped then).
    pub async fn pass(&mut self) -> Result<PassEnd, AgentError> {
        if self.recovery.fence.is_some() {
            self.recovery_pass().await?;
            return Ok(PassEnd::Continue);
        }
        if !self.server.running || self.supervise_exited() {
            if !self.server.restarts.may_start(self.clock.now_ms()) {
                return Ok(PassEnd::Continue);
            }
            match self.boot().await? {
                boot::Boot::Started => {}
                boot::Boot::Waiting(_) if self.recovery.fence.is_some() => return Ok(PassEnd::Continue),
                boot::Boot::Waiting(why) => {
                    let phase = phase::waiting(self.memo.marker_seen, self.quorum_lost(self.clock.now_ms()));
                    self.publish(phase, why, None, &Plan::default(), false).await;
                    return Ok(PassEnd::Continue);
                }
            }
        }
        self.sync_operator_settings().await;
        self.keep_certificate(false)?;
        let now = self.clock.now_ms();
        let obs = self.observer.observe(&self.backend, &self.zk, self.cfg.server.client_port, now).await;
        self.note_served_release(&obs);
        let policy = self.policy();
        let Vetted { plan, refused } = vet(&obs, &policy, zkpilot_core::plan(&obs, &policy, now), now);
        if let Some(v) = refused {
            self.memo.counters.plans_refused += 1;
            // Logged when it changes, not on every pass it repeats (every pass is counted).
            if self.memo.refused.as_ref().is_none_or(|r| r.violation != v.to_string()) {
                tracing::error!(rule = v.rule, detail = %v.detail, "planner broke a safety rule; plan refused");
            }
            self.memo.refused = Some(crate::status::Refusal { violation: v.to_string(), at_ms: now });
        }
        let mut plan = self.hold_for_inflight(&obs, plan).await;
        self.recovery.quorum.observe(obs.config.is_some(), obs.instances.is_some(), now);
        if let Some(detail) = self.maybe_fence(&obs, now).await? {
            self.publish(Phase::Recovering, detail, Some(&obs), &plan, false).await;
            return Ok(PassEnd::Continue);
        }
        self.publish_membership(&obs).await;
        if let Err(e) = self.refresh_names(obs.instances.as_deref()).await {
            tracing::warn!(error = %e, "keeping server names current");
        }
        let me = obs.instances.iter().flatten().find(|i| i.id == self.cfg.instance.id);
        let seen = Seen {
            leaving: me.is_some_and(|i| i.state.is_leaving()),
            listed: Listed::of(obs.config.as_ref(), self.identity.id),
            quorum_lost: self.quorum_lost(now),
            backend_answered: obs.instances.is_some(),
        };
        tracing::debug!(?seen, "pass observed");
        let (phase, detail) = match phase::verdict(&seen, &self.memo.phase) {
            Verdict::Removed => match self.confirm_removal(&obs).await {
                Ok(()) => {
                    tracing::info!("removed from the ensemble and the new config confirmed; stopping the server");
                    self.halt_server().await;
                    let detail = "removed from the ensemble; instance may terminate".to_string();
                    self.publish(Phase::Removed, detail, Some(&obs), &plan, false).await;
                    return Ok(PassEnd::Removed);
                }
                Err(e) => (
                    Phase::Leaving,
                    format!("removed; the new config is not confirmed yet, so the server keeps running: {e}"),
                ),
            },
            Verdict::Stay { phase, detail } => (phase, detail),
        };
        // The last set that served: right after a leader change none may, for a moment.
        let others = self.identity.id.map(|id| serving_connect_string(&obs, &[id])).unwrap_or_default();
        if !others.is_empty() {
            self.memo.others = others;
        }
        let lease = match gate(&mut plan, self.memo.operator.paused) {
            Gate::Idle | Gate::Paused => false,
            Gate::Lease => self.take_lease(now).await,
        };
        if lease {
            self.execute(&obs, &plan).await;
        }
        self.maybe_periodic_backup(&obs).await;
        self.publish(phase, detail, Some(&obs), &plan, lease).await;
        Ok(PassEnd::Continue)
    }

    /// The wait between passes. A leaving agent also reads the committed config through the other
    /// servers every [`zkpilot_core::agent::Pace::LEAVING_POLL_MS`] and ends the wait once it lacks
    /// this server, so the removed server stops within moments of its removal instead of at the
    /// next pass: removed as leader, it stalls its clients until it stops. ZooKeeper reads only:
    /// the backend is asked once per pass, as always.
    async fn between_passes(&mut self, wait: Duration) {
        if std::mem::take(&mut self.memo.pass_now) {
            return;
        }
        let until = tokio::time::Instant::now() + wait;
        if self.memo.phase != Phase::Leaving || self.memo.others.is_empty() {
            tokio::time::sleep_until(until).await;
            return;
        }
        let poll = Duration::from_millis(zkpilot_core::agent::Pace::LEAVING_POLL_MS);
        while tokio::time::Instant::now() + poll < until {
            tokio::time::sleep(poll).await;
            let read = self.zk.committed_config(&self.memo.others).await;
            tracing::debug!(outcome = ?read.as_ref().map(|c| c.version), "leaving: config read between passes");
            let cfg = read.ok();
            if phase::removal_read(&self.memo.phase, Listed::of(cfg.as_ref(), self.identity.id)) {
                tracing::info!("the committed config no longer lists this server; passing now");
                return;
            }
        }
        tokio::time::sleep_until(until).await;
    }

    /// Before a removed server stops: a write through the servers that stay must commit, which
    /// proves the new config active everywhere (ZooKeeper admin guide, "Dynamic
    /// Reconfiguration", progress guarantees: "in order to know that it is safe to shut down old
    /// servers that were removed"). The agent that ran the reconfig confirmed too; this agent may
    /// have read the config between that reconfig's commit and its confirmation.
    async fn confirm_removal(&self, obs: &zkpilot_core::observed::Observed) -> Result<(), PortError> {
        let others = self.identity.id.map(|id| serving_connect_string(obs, &[id])).unwrap_or_default();
        if others.is_empty() {
            return Err(PortError::msg("zookeeper", "no other server serves"));
        }
        execute::retrying(|| self.zk.confirm_write(&others)).await
    }

    /// The membership-change lease: only its holder executes plans. A backend error is no lease.
    async fn take_lease(&mut self, now: u64) -> bool {
        match self.backend.acquire_lease(&self.cfg.instance.id, self.cfg.agent.lease_ttl_ms, now).await {
            Ok(held) => held,
            Err(e) => {
                self.memo.counters.claim_failures += 1;
                tracing::warn!(error = %e, "acquiring the lease");
                false
            }
        }
    }

    /// The policy in force: the config's, with the operator's voter target if one was set.
    fn policy(&self) -> zkpilot_core::Policy {
        policy_in_force(&self.cfg.policy, &self.memo.operator)
    }

    /// No member has served for `[recovery] quorum_loss_after_ms`.
    fn quorum_lost(&self, now: u64) -> bool {
        self.recovery.quorum.lost_for(self.cfg.recovery.quorum_loss_after_ms, now)
    }
}
