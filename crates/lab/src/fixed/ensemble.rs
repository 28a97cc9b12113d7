//! Bare ZooKeeper servers with a fixed list, and the strategy's steps carried out on them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use zkpilot_core::model::{EnsembleConfig, ServerId};
use zkpilot_core::observed::Mode;
use zkpilot_core::rollout::{Step, Strategy, fixed_rollout};
use zkpilot_core::version::LearnerSync;
use zkpilot_supervisor::{Spec, Supervisor};
use zkpilot_zk::files::{Layout, ZooCfg, write_atomic};
use zkpilot_zk::install::{Install, JvmSettings, write_logging_config};
use zkpilot_zk::zoo_cfg::{StaticSettings, static_keys};
use zkpilot_zk::{FilesError, Secret, probe};

/// A fixed-membership change that could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixedError {
    /// Writing a server's files.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// Starting or stopping a server.
    #[error(transparent)]
    Port(#[from] zkpilot_core::ports::PortError),
    /// A step did not finish in time; later steps were not run.
    #[error("{0:?} did not finish within {1:?}: {2}; later steps not run")]
    Timeout(Step, Duration, String),
}

/// One executed step and how long it took until the ensemble served again.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepTiming {
    /// The step.
    pub step: Step,
    /// Milliseconds from the step's start until its condition held.
    pub took_ms: u64,
}

/// Bare ZooKeeper servers under one directory, each with the same fixed server list.
pub struct FixedEnsemble {
    install: Install,
    root: PathBuf,
    heap_mb: u32,
    tick_ms: u32,
    running: BTreeMap<ServerId, Supervisor>,
    /// The list in force.
    config: EnsembleConfig,
    /// The superuser's password (its digest is in every zoo.cfg, as zkpilot writes it); a lab
    /// ensemble's throwaway secret, never written anywhere else.
    password: String,
}

impl std::fmt::Debug for FixedEnsemble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedEnsemble").field("root", &self.root).field("running", &self.running.keys()).finish()
    }
}

impl FixedEnsemble {
    /// Nothing starts until [`Self::start`].
    pub fn new(install: Install, root: PathBuf, heap_mb: u32, tick_ms: u32) -> Self {
        let password = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        Self { install, root, heap_mb, tick_ms, running: BTreeMap::new(), config: EnsembleConfig::default(), password }
    }

    /// The digest auth (`super:<password>`) clients use, as they do against zkpilot's groups.
    pub fn auth(&self) -> String {
        format!("super:{}", self.password)
    }

    fn layout(&self, id: ServerId) -> Layout {
        Layout::new(self.root.join(format!("server-{id}")))
    }

    /// The client connection string of the list in force.
    pub fn connect_string(&self) -> String {
        self.config.connect_string()
    }

    /// Writes `id`'s zoo.cfg with `list` and its myid; `genesis` also writes the `initialize`
    /// marker that lets an empty data dir vote (zkpilot's servers run with
    /// `db.autocreate=false`): only the first members get it, a new server is synced first.
    fn write_config(&self, id: ServerId, list: &EnsembleConfig, genesis: bool) -> Result<(), FixedError> {
        let layout = self.layout(id);
        for d in [layout.conf_dir(), layout.data_dir(), layout.base.join("logs")] {
            std::fs::create_dir_all(&d).map_err(|source| FilesError::Io { path: d.clone(), source })?;
        }
        write_atomic(&layout.myid(), format!("{id}\n").as_bytes())?;
        if genesis {
            write_atomic(&layout.initialize(), b"")?;
        }
        let mut cfg = ZooCfg::new();
        cfg.comment("Fixed membership, written by zkpilot-lab: the list changes only by rewrite and restart.");
        // The very keys zkpilot's agents write (limits, AdminServer, superuser digest, four-letter
        // words), so a comparison measures the strategy, not the settings; only reconfig is off.
        let host = list.servers.get(&id).map_or("127.0.0.1".to_string(), |s| s.host.clone());
        let digest = Secret::new(self.password.clone()).super_digest();
        let own = static_keys(&StaticSettings {
            tick_time_ms: self.tick_ms,
            init_limit: 10,
            sync_limit: 5,
            admin_address: &host,
            admin_port: 8080,
            super_digest: &digest,
        });
        for (k, v) in own {
            cfg.set(&k, &v);
        }
        cfg.set("reconfigEnabled", "false");
        cfg.set("dataDir", &layout.data_dir().to_string_lossy());
        for s in list.servers.values() {
            let line = s.to_string();
            let (key, value) = line.split_once('=').unwrap_or((&line, ""));
            cfg.set(key, value);
        }
        write_atomic(&layout.zoo_cfg(), cfg.render().as_bytes())?;
        write_logging_config(&layout.conf_dir())?;
        Ok(())
    }

    fn start_server(&mut self, id: ServerId) -> Result<(), FixedError> {
        let layout = self.layout(id);
        let (program, args) = self.install.server_command(
            &layout.conf_dir(),
            &layout.zoo_cfg(),
            // As zkpilot's default (`[server] learner_sync = "auto"`).
            &JvmSettings { heap_mb: self.heap_mb, hosts_file: None, dns_ttl_s: None, learner_sync: LearnerSync::Auto },
        );
        let mut sup = Supervisor::new(Spec {
            program,
            args,
            cwd: layout.base.clone(),
            log: layout.log_file(),
            grace: Duration::from_secs(10),
            uid: None,
        });
        sup.start()?;
        self.running.insert(id, sup);
        Ok(())
    }

    async fn stop_server(&mut self, id: ServerId) -> Result<(), FixedError> {
        if let Some(mut s) = self.running.remove(&id) {
            s.stop().await?;
        }
        Ok(())
    }

    /// Starts every server of `list` and waits until all serve under one leader.
    pub async fn start(&mut self, list: &EnsembleConfig, limit: Duration) -> Result<(), FixedError> {
        for id in list.servers.keys() {
            self.write_config(*id, list, true)?;
        }
        for id in list.servers.keys().copied().collect::<Vec<_>>() {
            self.start_server(id)?;
        }
        self.config = list.clone();
        let all: Vec<ServerId> = list.servers.keys().copied().collect();
        self.wait(&all, Step::Start(all[0]), limit).await
    }

    /// The server that says it leads, if exactly one does.
    pub async fn leader(&self) -> Option<ServerId> {
        let mut leaders = Vec::new();
        for id in self.running.keys() {
            if let Some(s) = self.config.servers.get(id)
                && probe::srvr(&s.client_address()).await.mode == Mode::Leader
            {
                leaders.push(*id);
            }
        }
        (leaders.len() == 1).then(|| leaders[0])
    }

    /// Waits until every server of `ids` serves and one leader exists.
    async fn wait(&self, ids: &[ServerId], step: Step, limit: Duration) -> Result<(), FixedError> {
        let start = Instant::now();
        loop {
            let mut last = String::new();
            let mut serving = true;
            for id in ids {
                let Some(s) = self.config.servers.get(id) else { continue };
                let mode = probe::srvr(&s.client_address()).await.mode;
                if !mode.is_serving() {
                    serving = false;
                    last = format!("server {id} is {mode:?}");
                }
            }
            if serving && self.leader().await.is_some() {
                return Ok(());
            }
            if start.elapsed() > limit {
                return Err(FixedError::Timeout(
                    step,
                    limit,
                    if last.is_empty() { "no single leader".into() } else { last },
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Moves the ensemble to `target` the way `strategy` says; returns each step's timing.
    pub async fn change(
        &mut self,
        target: &EnsembleConfig,
        strategy: Strategy,
        limit: Duration,
    ) -> Result<Vec<StepTiming>, FixedError> {
        let leader = self.leader().await;
        let steps = fixed_rollout(&self.config, target, leader, strategy);
        // Probes find new servers by the target's addresses, leavers by the old list's.
        let mut both = self.config.clone();
        both.servers.extend(target.servers.clone());
        self.config = both;
        let mut timings = Vec::new();
        for step in steps {
            let started = Instant::now();
            match step {
                Step::Start(id) => {
                    self.write_config(id, target, false)?;
                    self.start_server(id)?;
                    if strategy == Strategy::Rolling {
                        self.wait(&[id], step, limit).await?;
                    }
                }
                Step::Restart(id) => {
                    self.stop_server(id).await?;
                    self.write_config(id, target, false)?;
                    self.start_server(id)?;
                    self.wait(&[id], step, limit).await?;
                }
                Step::Stop(id) => self.stop_server(id).await?,
            }
            timings.push(StepTiming { step, took_ms: started.elapsed().as_millis() as u64 });
        }
        self.config = target.clone();
        if strategy == Strategy::AllAtOnce {
            let started = Instant::now();
            let all: Vec<ServerId> = target.servers.keys().copied().collect();
            self.wait(&all, Step::Start(all[0]), limit).await?;
            timings.push(StepTiming { step: Step::Start(all[0]), took_ms: started.elapsed().as_millis() as u64 });
        }
        Ok(timings)
    }

    /// Stops every server.
    pub async fn shutdown(&mut self) {
        for id in self.running.keys().copied().collect::<Vec<_>>() {
            if let Err(e) = self.stop_server(id).await {
                tracing::warn!(error = %e, %id, "stopping a fixed-membership server");
            }
        }
    }

    /// The server list in force.
    pub fn config(&self) -> &EnsembleConfig {
        &self.config
    }
}
