//! Starting, stopping and restarting the local server through the process port. What a start
//! looks like is decided here (a `Launch`); how a JVM is started from it is
//! `crate::process::JvmProcess`'s. The restart backoff is `zkpilot_core::agent::Restarts`.

use zkpilot_core::ports::{Backend, Clock, Launch, ServerProcess, Zookeeper};

use super::{Agent, AgentError};

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    /// Everything the agent decides about a start of its server.
    pub(super) fn launch(&self) -> Launch {
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
            run_as_uid: self.cfg.server.run_as_uid,
        }
    }

    /// Starts the server and records its pid for the local controller.
    pub(super) fn start_server(&mut self) -> Result<(), AgentError> {
        let launch = self.launch();
        self.server.process.start(&launch)?;
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
        self.memo.detail.clear();
        if std::mem::take(&mut self.server.running) {
            if let Err(e) = self.server.process.stop().await {
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
    pub(super) async fn restart_server(&mut self) -> Result<(), AgentError> {
        self.stop_server().await;
        self.start_server()
    }

    fn remove_pid_file(&self) {
        let _ignored = std::fs::remove_file(&self.identity.pid_file);
    }
}
