//! The agent's side of backups and post-mortem logs: periodic backups on the leader, a backup
//! right before each membership change, the operator's `POST /backup`, the restore of a seeded
//! genesis, and shipping logs when the instance goes away.

use tokio::time::Instant;

use zkpilot_core::agent::{BackupDue, Outcome};
use zkpilot_core::backup::BackupReason;
use zkpilot_core::observed::{Mode, Observed};
use zkpilot_core::ports::{Backend, Clock, ClusterMarker, ServerProcess, Zookeeper};
use zkpilot_zk::files::{self, LocalState, Stamp};

use super::{Agent, AgentError};
use crate::backup::{self, Origin};

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    /// Backs up this agent's server and records the outcome as an event. Never fails the pass: a
    /// store outage must not stop healing.
    pub(super) async fn take_backup(&mut self, reason: BackupReason, config_version: Option<u64>) {
        let started = Instant::now();
        let layout = &self.identity.layout;
        let skipped = |why: &str| Outcome::Skipped { why: why.to_string() };
        let outcome = match LocalState::read(layout) {
            Ok(Some(state)) => {
                let origin = Origin { cluster_id: state.stamp.cluster_id, server_id: state.myid, config_version };
                let now = self.clock.now_ms();
                match backup::take(&self.backend, layout, &origin, reason, self.cfg.backup.keep, now).await {
                    Ok(Some(m)) => {
                        self.memo.backup.taken(now);
                        Outcome::AppliedWith(format!(
                            "{} ({} files, {} bytes, last zxid {:#x})",
                            m.name,
                            m.files.len(),
                            m.total_bytes(),
                            m.last_zxid
                        ))
                    }
                    Ok(None) => skipped("the server has written no complete snapshot yet"),
                    Err(e) => Outcome::failed(e),
                }
            }
            Ok(None) => skipped("no server prepared on this instance"),
            Err(e) => Outcome::failed(e),
        };
        self.memo.counters.backup(&outcome);
        tracing::info!(%reason, %outcome, "backup");
        self.record_event(format!("backup ({reason})"), outcome, started);
    }

    /// The leader's agent backs up every `[backup] interval_ms`. On becoming leader it first
    /// learns when the newest backup was taken (another agent may have taken it).
    pub(super) async fn maybe_periodic_backup(&mut self, obs: &Observed) {
        let leader = self.identity.id.is_some_and(|id| obs.health.get(&id).is_some_and(|h| h.mode == Mode::Leader));
        let (interval, now) = (self.cfg.backup.interval_ms, self.clock.now_ms());
        let mut due = self.memo.backup.due(leader, interval, now);
        if due == BackupDue::ListFirst {
            match self.backend.backups().await {
                Ok(all) => self.memo.backup.listed(all.iter().map(|m| m.taken_ms).max()),
                Err(e) => {
                    tracing::warn!(error = %e, "listing backups");
                    return;
                }
            }
            due = self.memo.backup.due(leader, interval, now);
        }
        if due == BackupDue::Now {
            self.take_backup(BackupReason::Periodic, obs.config.as_ref().map(|c| c.version)).await;
        }
    }

    /// The first server of a restored ensemble: fetches and verifies the seeded backup, then
    /// prepares the server on it. `Some(why)` when it cannot yet (the agent waits and retries; it
    /// never starts this server empty).
    pub(super) async fn prepare_restored(
        &mut self,
        marker: &ClusterMarker,
        backup_name: &str,
        id: zkpilot_core::ServerId,
        keys: &[(String, String)],
        cfg: &zkpilot_core::EnsembleConfig,
    ) -> Result<Option<String>, AgentError> {
        let manifest = match backup::find(&self.backend, backup_name).await {
            Ok(m) => m,
            Err(e) => return Ok(Some(format!("restore of backup {backup_name}: {e}"))),
        };
        let staging = self.identity.layout.base.join("restore-staging");
        if let Err(e) = std::fs::remove_dir_all(&staging)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Ok(Some(format!("restore: {}: {e}", staging.display())));
        }
        let started = Instant::now();
        if let Err(e) = backup::fetch(&self.backend, &manifest, &staging).await {
            return Ok(Some(format!("restore of backup {backup_name}: {e}")));
        }
        let stamp = Stamp { cluster_id: marker.cluster_id.clone(), server_id: id };
        files::prepare_restored(&self.identity.layout, &stamp, keys, cfg, &staging)?;
        tracing::info!(backup = %manifest.name, last_zxid = %format!("{:#x}", manifest.last_zxid), "restored");
        self.record_event(
            format!("restore backup {}", manifest.name),
            Outcome::AppliedWith(format!("{} files, last zxid {:#x}", manifest.files.len(), manifest.last_zxid)),
            started,
        );
        Ok(None)
    }

    /// Ships this instance's ZooKeeper log (and the agent's own, if configured) to the backend's
    /// post-mortem store; best effort, the instance is going away.
    pub(super) async fn ship_logs(&self, why: &str) {
        if !self.cfg.logs.ship {
            return;
        }
        let at = self.clock.now_ms();
        let mut files = vec![("zookeeper.log", self.identity.layout.log_file())];
        if let Some(agent_log) = &self.cfg.logs.agent_log {
            files.push(("agent.log", agent_log.clone()));
        }
        for (name, path) in files {
            if !path.exists() {
                continue;
            }
            let target = format!("{at}-{name}");
            match self.backend.ship_log(&self.cfg.instance.id, &target, &path).await {
                Ok(()) => tracing::info!(file = %path.display(), %why, "log shipped"),
                Err(e) => tracing::warn!(error = %e, file = %path.display(), "shipping log"),
            }
        }
    }
}
