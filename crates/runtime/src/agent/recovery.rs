//! The agent's side of quorum-loss recovery (the rules are `zkpilot_core::recovery`).
//!
//! A survivor whose voters can no longer form a quorum *fences* itself: stops its server, copies
//! its base dir, reads its position from disk and writes `recovery.fence.json` beside its data, so
//! a restarted agent stays fenced instead of starting the old config. While fenced it republishes
//! its report and, holding the lease, coordinates. It leaves the fence in exactly three ways:
//! - it is the chosen survivor: rebuild alone, start;
//! - an ensemble serves again (the rebuilt survivor, or the old voters came back): the normal boot
//!   path rejoins it, data kept;
//! - no decision was made and enough voters are alive again (a slot's replacement brought its data
//!   back): restart as it was, ZooKeeper elects by itself.

use std::path::{Path, PathBuf};
use tokio::time::Instant;

use serde::{Deserialize, Serialize};
use zkpilot_core::agent::{FenceCheck, Outcome, Phase};
use zkpilot_core::model::{EnsembleConfig, ServerId};
use zkpilot_core::observed::Observed;
use zkpilot_core::plan::Plan;
use zkpilot_core::ports::{Backend, Clock, ServerProcess, Zookeeper};
use zkpilot_core::recovery::{self, Assessment, SurvivorReport};
use zkpilot_zk::files::{self, LocalState};
use zkpilot_zk::position::{self, Position};

use super::{Agent, AgentError};
/// Reports older than this are from an earlier outage or a dead agent.
const REPORT_FRESH_MS: u64 = 30_000;

/// What a fenced survivor remembers across agent restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    /// This server.
    pub server_id: ServerId,
    /// Its position when it stopped.
    pub position: Position,
    /// The config its dynamic file held, version from the file name.
    pub config: EnsembleConfig,
    /// Where its base dir was copied.
    pub backup: PathBuf,
    /// When it fenced itself, ms since the Unix epoch.
    pub since_ms: u64,
}

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    fn fence_file(&self) -> PathBuf {
        self.identity.layout.base.join("recovery.fence.json")
    }

    /// A fence left by an earlier run of this agent, read before anything could start ZooKeeper.
    pub(super) fn load_fence(&mut self) -> Result<(), AgentError> {
        let path = self.fence_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let fence: Fence = serde_json::from_str(&text).map_err(|e| {
                    AgentError::Files(files::FilesError::Malformed {
                        path: path.clone(),
                        line: e.line(),
                        why: e.to_string(),
                    })
                })?;
                tracing::warn!(path = %path.display(), "still fenced by quorum-loss recovery; not starting ZooKeeper");
                self.recovery.fence = Some(fence);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(AgentError::Files(files::FilesError::Io { path, source })),
        }
    }

    /// Fences this survivor when the core's [`FenceCheck`] says so: no member has served for the
    /// debounce time while this server runs, and its config's live voters are too few to ever
    /// re-form a quorum. Returns the status detail when it fenced.
    pub(super) async fn maybe_fence(&mut self, obs: &Observed, now: u64) -> Result<Option<String>, AgentError> {
        let (readable, running, lost) = (obs.config.is_some(), self.server.running, self.quorum_lost(now));
        if !FenceCheck::suspect(readable, running, lost) {
            return Ok(None);
        }
        let Some(state) = LocalState::read(&self.identity.layout)? else { return Ok(None) };
        let config = EnsembleConfig { version: files::dynamic_version(&state.dynamic.0), ..state.dynamic.1.clone() };
        let check = FenceCheck {
            config_readable: readable,
            server_running: running,
            quorum_lost: lost,
            instances: obs.instances.as_deref(),
            local_config: Some(&config),
        };
        if !check.due() {
            return Ok(None);
        }
        let started = Instant::now();
        self.stop_server().await;
        let backup =
            self.backup_base(&format!("quorum-loss-{now}-server-{}-config-{:x}", state.myid, config.version))?;
        let position = position::read(&self.identity.layout.version2())?;
        let fence = Fence { server_id: state.myid, position, config, backup: backup.clone(), since_ms: now };
        let json = serde_json::to_vec_pretty(&fence).map_err(|e| {
            AgentError::Files(files::FilesError::Malformed { path: self.fence_file(), line: 0, why: e.to_string() })
        })?;
        files::write_atomic(&self.fence_file(), &json)?;
        let detail = format!(
            "quorum lost and too few voters alive: stopped server {} (epoch {}, zxid {:#x}), data copied to {}",
            state.myid,
            position.current_epoch,
            position.last_zxid,
            backup.display()
        );
        tracing::warn!("{detail}");
        self.record_event("recovery: fence".into(), Outcome::Noted(detail.clone()), started);
        self.recovery.fence = Some(fence);
        self.recovery.report.reset();
        self.memo.counters.fences += 1;
        Ok(Some(detail))
    }

    fn backup_root(&self) -> PathBuf {
        self.cfg.recovery.backup_dir.clone().unwrap_or_else(|| self.identity.layout.base.join("recovery-backups"))
    }

    /// A data dir ZooKeeper refuses to load (transaction logs but no snapshot: a learner that died
    /// mid-sync) would keep its server from ever starting. While an ensemble serves, this server's
    /// copy is not needed: it is moved aside (kept, never deleted) and the server starts empty,
    /// which with `db.autocreate=false` means it may not vote until the leader has synced it.
    /// Returns whether it moved anything.
    pub(super) fn set_aside_unloadable_data(&mut self, server: ServerId, now_ms: u64) -> Result<bool, AgentError> {
        let v2 = self.identity.layout.version2();
        if !files::logs_without_snapshot(&v2)? {
            return Ok(false);
        }
        let dest = self.backup_root().join(format!("unloadable-{now_ms}-server-{server}"));
        std::fs::create_dir_all(&dest).map_err(|source| files::FilesError::Io { path: dest.clone(), source })?;
        let to = dest.join("version-2");
        std::fs::rename(&v2, &to).map_err(|source| files::FilesError::Io { path: to.clone(), source })?;
        let detail = format!(
            "{} held transaction logs but no snapshot (ZooKeeper cannot load that); moved to {} and starting empty \
             to be synced by the leader",
            v2.display(),
            to.display()
        );
        tracing::warn!("{detail}");
        self.record_event("set aside unloadable data dir".into(), Outcome::Noted(detail), Instant::now());
        Ok(true)
    }

    /// Copies the base dir (conf, data, ZooKeeper's logs) before recovery changes anything.
    fn backup_base(&self, name: &str) -> Result<PathBuf, AgentError> {
        let root = self.backup_root();
        let dest = root.join(name);
        copy_tree(&self.identity.layout.base, &dest, &root)?;
        Ok(dest)
    }

    fn unfence(&mut self, why: &str) -> Result<(), AgentError> {
        let path = self.fence_file();
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(AgentError::Files(files::FilesError::Io { path, source })),
        }
        tracing::info!("recovery: fence lifted: {why}");
        self.record_event("recovery: lift fence".into(), Outcome::Noted(why.to_string()), Instant::now());
        self.recovery.fence = None;
        self.recovery.quorum.reset();
        Ok(())
    }

    /// One pass while fenced. ZooKeeper is stopped throughout, except when this pass rebuilds.
    pub(super) async fn recovery_pass(&mut self) -> Result<(), AgentError> {
        let Some(fence) = self.recovery.fence.clone() else { return Ok(()) };
        let now = self.clock.now_ms();
        let obs = self.observer.observe(&self.backend, &self.zk, self.cfg.server.client_port, now).await;
        if let Some(cfg) = &obs.config {
            // The rebuilt survivor serves (or the old voters re-formed their quorum): the normal
            // boot path rejoins this server through that config, data kept.
            return self.unfence(&format!("an ensemble serves again (config {:x}); rejoining it", cfg.version));
        }
        let Some(instances) = obs.instances.clone() else {
            return self.wait_fenced("the backend is unreachable: cannot confirm who is gone".into()).await;
        };
        let stored = match self.backend.recovery_decision().await {
            Ok(d) => d,
            Err(e) => return self.wait_fenced(format!("reading the recovery decision: {e}")).await,
        };
        let decision = stored.clone().filter(|d| recovery::decision_stands(d, fence.config.version, &instances));
        if let Some(d) = &decision {
            if d.survivor_instance == self.cfg.instance.id {
                return self.rebuild(d).await;
            }
            let why = format!(
                "server {} was chosen (zxid {:#x}); waiting for it to serve, then rejoining it",
                d.survivor, d.kept_zxid
            );
            return self.wait_fenced(why).await;
        }
        if !recovery::needs_recovery(&fence.config, &instances) {
            return self.unfence("enough voters are alive again; ZooKeeper elects by itself");
        }
        if self.recovery.report.due(now) {
            let report = SurvivorReport {
                instance: self.cfg.instance.id.clone(),
                server_id: fence.server_id,
                current_epoch: fence.position.current_epoch,
                last_zxid: fence.position.last_zxid,
                config: fence.config.clone(),
                backup: fence.backup.display().to_string(),
                at_ms: now,
            };
            match self.backend.put_survivor_report(&report).await {
                Ok(()) => self.recovery.report.mark(now),
                Err(e) => return self.wait_fenced(format!("publishing this survivor's report: {e}")).await,
            }
        }
        let lease =
            self.backend.acquire_lease(&self.cfg.instance.id, self.cfg.agent.lease_ttl_ms, now).await.unwrap_or(false);
        if !lease {
            return self.wait_fenced("reported; another agent holds the lease and coordinates".into()).await;
        }
        let reports = match self.backend.survivor_reports().await {
            Ok(r) => r,
            Err(e) => return self.wait_fenced(format!("reading survivor reports: {e}")).await,
        };
        let previous = stored.filter(|d| !d.applies_to(fence.config.version));
        let fresh = recovery::fresh_reports(&reports, &instances, previous.as_ref(), now, REPORT_FRESH_MS);
        match recovery::assess(&fresh, &instances, self.cfg.recovery.allow_unsafe, now) {
            Assessment::Decide(d) => {
                let started = Instant::now();
                let outcome = Outcome::of(self.backend.put_recovery_decision(&d).await);
                let candidates: Vec<String> =
                    d.candidates.iter().map(|(id, e, z)| format!("{id} (epoch {e}, zxid {z:#x})")).collect();
                let what = format!(
                    "recovery: rebuild from server {}; candidates {}; lost voters {}{}",
                    d.survivor,
                    candidates.join(", "),
                    list(&d.lost),
                    if d.unconfirmed.is_empty() {
                        String::new()
                    } else {
                        format!("; UNSAFE: not confirmed gone or not stopped: {}", list(&d.unconfirmed))
                    }
                );
                tracing::warn!(%outcome, "{what}");
                self.record_event(what, outcome, started);
                self.wait_fenced(format!("decided: rebuild from server {}", d.survivor)).await
            }
            Assessment::NotNeeded(why) | Assessment::Wait(why) => self.wait_fenced(why).await,
        }
    }

    async fn wait_fenced(&mut self, why: String) -> Result<(), AgentError> {
        self.publish(Phase::Recovering, why, None, &Plan::default(), false).await;
        Ok(())
    }

    /// The chosen survivor: a one-server ensemble from this data, then the planner grows it back.
    async fn rebuild(&mut self, d: &zkpilot_core::recovery::RecoveryDecision) -> Result<(), AgentError> {
        let started = Instant::now();
        let Some(mut state) = LocalState::read(&self.identity.layout)? else {
            return Err(AgentError::NoSurvivorState { base: self.identity.layout.base.clone() });
        };
        let me = self.cfg.server_spec(state.myid);
        files::rebuild_alone(&self.identity.layout, &mut state, &me)?;
        let detail = format!(
            "rebuilding the ensemble from this server alone (kept zxid {:#x}; lost voters {}); others rejoin it",
            d.kept_zxid,
            list(&d.lost)
        );
        tracing::warn!("{detail}");
        self.unfence("chosen survivor: rebuilt alone")?;
        self.memo.counters.recoveries += 1;
        self.start_server()?;
        self.record_event("recovery: rebuild".into(), Outcome::Noted(detail), started);
        Ok(())
    }
}

fn list(ids: &[ServerId]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// `cp -a` of `src` into `dest`, skipping `skip` (the backup root may live inside `src`).
fn copy_tree(src: &Path, dest: &Path, skip: &Path) -> Result<(), AgentError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AgentError::Files(files::FilesError::Io { path, source })
    };
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    for entry in std::fs::read_dir(src).map_err(io(src))? {
        let entry = entry.map_err(io(src))?;
        let path = entry.path();
        if path == skip {
            continue;
        }
        let to = dest.join(entry.file_name());
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_dir() {
            copy_tree(&path, &to, skip)?;
        } else if kind.is_file() {
            std::fs::copy(&path, &to).map_err(io(&path))?;
        }
    }
    Ok(())
}
