//! Starting, stopping and restarting the local server through the process port. What a start
//! looks like is decided here (a `Launch`); how a JVM is started from it is
//! `crate::process::JvmProcess`'s. The restart backoff is `zkpilot_core::agent::Restarts`.

use std::path::PathBuf;

use zkpilot_core::observed::Observed;
use zkpilot_core::ports::{Backend, Clock, Launch, ServerProcess, Zookeeper};
use zkpilot_core::version::{Release, choose_install};

use super::{Agent, AgentError};

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    /// Where the agent records the install its server last served on.
    fn release_file(&self) -> PathBuf {
        self.identity.layout.base.join("zkpilot-release.json")
    }

    /// The install the server last served on (none recorded yet, or unreadable: none).
    fn last_served(&self) -> Option<Release> {
        let text = std::fs::read_to_string(self.release_file()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Once the server serves, records the install it was started on: the next start, even from a
    /// config that still names an older install, never goes back to an older release. Written
    /// only after it served, so an install that could not start is never recorded and going back
    /// from it is no downgrade.
    pub(super) fn note_served_release(&mut self, obs: &Observed) {
        let Some(started) = &self.server.started_on else { return };
        let serving = obs.members().iter().any(|m| Some(m.id) == self.identity.id && m.health.mode.is_serving());
        if !serving || self.server.recorded.as_ref() == Some(started) {
            return;
        }
        let json = serde_json::to_vec_pretty(started).unwrap_or_default();
        match zkpilot_zk::files::write_atomic(&self.release_file(), &json) {
            Ok(()) => self.server.recorded = Some(started.clone()),
            Err(e) => tracing::warn!(error = %e, "recording the release the server serves on"),
        }
    }

    /// The install the next start uses (`zkpilot_core::version::choose_install`): a requested
    /// one (a rolling upgrade's) unless it is a downgrade, else the configured one unless the
    /// server last served a newer release.
    fn decide_install(&mut self) -> Result<Release, AgentError> {
        let last = self.last_served();
        self.server.recorded.clone_from(&last);
        let configured = match self.server.process.release_at(&self.cfg.server.install) {
            Ok(c) => c,
            // The configured install is gone (removed after an upgrade): the one it last served on.
            Err(e) => match last.as_ref().and_then(|l| self.server.process.release_at(&l.home).ok()) {
                Some(l) => l,
                None => return Err(e.into()),
            },
        };
        let requested = match self.server.requested.take() {
            Some(home) => match self.server.process.release_at(&home) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!(error = %e, "the install asked for cannot be used; starting on the current one");
                    None
                }
            },
            None => None,
        };
        match choose_install(&configured, last.as_ref(), requested.as_ref()) {
            Ok(r) => Ok(r),
            Err(refusal) => {
                tracing::error!(%refusal, "not starting on the install asked for");
                Ok(choose_install(&configured, last.as_ref(), None).unwrap_or(configured))
            }
        }
    }

    /// Everything the agent decides about a start of its server, on `install`.
    pub(super) fn launch(&self, install: Release) -> Launch {
        let layout = &self.identity.layout;
        Launch {
            base: layout.base.clone(),
            conf_dir: layout.conf_dir(),
            zoo_cfg: layout.zoo_cfg(),
            log: layout.log_file(),
            heap_mb: self.cfg.server.heap_mb,
            // The JVM's own resolver reads /etc/hosts anyway; a hosts file of zkpilot's own is
            // handed over so names resolve through it only.
            hosts_file: self
                .cfg
                .names
                .as_ref()
                .and_then(|n| n.hosts_file.clone())
                .filter(|f| f != std::path::Path::new("/etc/hosts")),
            // With name indirection a moved server is found again within seconds (the JVM
            // caches names for 30 s by default).
            dns_ttl_s: self.cfg.names.as_ref().map(|_| 5),
            learner_sync: self.cfg.server.learner_sync,
            install,
            run_as_uid: self.cfg.server.run_as_uid,
        }
    }

    /// Starts the server and records its pid for the local controller.
    pub(super) fn start_server(&mut self) -> Result<(), AgentError> {
        let install = self.decide_install()?;
        if self.cfg.tls.is_some() && !zkpilot_core::version::supports_managed_tls(install.version.as_deref()) {
            return Err(AgentError::TlsRelease { home: install.home, version: install.version.unwrap_or_default() });
        }
        self.keep_certificate(true)?;
        let launch = self.launch(install.clone());
        self.server.process.start(&launch)?;
        self.server.started_on = Some(install);
        if let Some(pid) = self.server.process.pid()
            && let Err(e) = std::fs::write(&self.identity.pid_file, pid.to_string())
        {
            tracing::warn!(error = %e, path = %self.identity.pid_file.display(), "cannot record ZooKeeper pid");
        }
        self.server.running = true;
        self.server.restarts.started(self.clock.now_ms());
        Ok(())
    }

    /// Stops the server gracefully, if the agent runs it.
    pub(super) async fn stop_server(&mut self) {
        self.end_server(false).await;
    }

    /// Stops a server that was removed from the ensemble and confirmed out, at once (SIGKILL).
    /// Its clients' connections stay open and, if it led, stalled until its process is gone,
    /// and a JVM takes ~300 ms to exit after SIGTERM (BENCHMARKS.md, B2). Nothing is lost by not
    /// waiting: ZooKeeper registers no shutdown hook that writes anything (only an audit-log
    /// line, when audit logging is on), and every transaction it acknowledged is already in its
    /// transaction log.
    pub(super) async fn halt_server(&mut self) {
        self.end_server(true).await;
    }

    async fn end_server(&mut self, at_once: bool) {
        self.memo.detail.clear();
        if std::mem::take(&mut self.server.running) {
            let stopped = if at_once { self.server.process.halt().await } else { self.server.process.stop().await };
            if let Err(e) = stopped {
                tracing::warn!(error = %e, "stopping ZooKeeper");
            }
            self.remove_pid_file();
        }
    }

    /// Reaps an unexpected ZooKeeper exit and schedules its restart after the backoff. True if it
    /// exited.
    pub(super) fn supervise_exited(&mut self) -> bool {
        if !self.server.running {
            return false;
        }
        let Some(exit) = self.server.process.try_exited() else {
            return false;
        };
        self.server.running = false;
        self.memo.detail.clear();
        self.remove_pid_file();
        let delay_ms = self.server.restarts.exited(self.clock.now_ms());
        self.memo.counters.server_restarts += 1;
        tracing::warn!(
            ?exit,
            delay_ms,
            log = %self.identity.layout.log_file().display(),
            "ZooKeeper exited; restarting after backoff"
        );
        true
    }

    /// The operator's `POST /restart-server`: SIGTERM, then start again with the same files; the
    /// ensemble sees one member leave and come back, exactly as in a rolling restart by hand.
    /// With `install`, the server comes back on that install (a rolling upgrade's step), unless
    /// that is a downgrade.
    /// The restart applies zkpilot's static keys and the base config as they are now, as a boot
    /// does (a rolling restart is how a base-config change reaches every server); a base config
    /// that would be refused fails the restart before the server is touched.
    pub(super) async fn restart_server(&mut self, install: Option<PathBuf>) -> Result<(), AgentError> {
        let keys = self.static_keys_now().await?;
        self.server.requested = install;
        self.stop_server().await;
        let layout = &self.identity.layout;
        if let Some(mut state) = zkpilot_zk::LocalState::read(layout)? {
            zkpilot_zk::files::update_static(layout, &mut state, &keys)?;
        }
        self.start_server()
    }

    fn remove_pid_file(&self) {
        let _ignored = std::fs::remove_file(&self.identity.pid_file);
    }
}
