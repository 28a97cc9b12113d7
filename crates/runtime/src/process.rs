//! The JVM implementation of the core's process port: one ZooKeeper server started from a
//! [`Launch`] with the install detected once, up front.
//!
//! The agent decides *what* to start (paths, heap, resolver settings, uid: a [`Launch`]); this file
//! knows *how* a ZooKeeper JVM is started from that: the logging configs ZooKeeper's console
//! appender needs, the ownership of files the agent wrote as root, the `java` command line
//! ([`Install::server_command`]) and its supervision ([`Supervisor`]: own process group, dies with
//! the agent, SIGTERM then SIGKILL). Fakes of the same port need none of it.

use std::path::Path;
use std::time::Duration;

use zkpilot_core::ports::{ExitInfo, Launch, PortError, PortResult, ServerProcess};
use zkpilot_core::version::Release;
use zkpilot_supervisor::{Spec, Supervisor};
use zkpilot_zk::files;
use zkpilot_zk::install::{Install, InstallError, JvmSettings, write_logging_config};

/// Time between SIGTERM and SIGKILL: ZooKeeper flushes its log and closes sessions on SIGTERM.
const GRACE: Duration = Duration::from_secs(10);

/// A ZooKeeper JVM, started and stopped by the agent through [`ServerProcess`].
#[derive(Debug)]
pub struct JvmProcess {
    install: Install,
    /// Where `install` was detected (a start on another home detects that one).
    home: std::path::PathBuf,
    java: Option<std::path::PathBuf>,
    running: Option<Supervisor>,
}

impl JvmProcess {
    /// Finds the install at `install` and `java` (an explicit path, or the first on `PATH`). Fails
    /// before anything is written, naming what is missing.
    pub fn detect(install: &Path, java: Option<&Path>) -> Result<Self, InstallError> {
        Ok(Self::new(Install::detect(install, java)?, install, java))
    }

    /// A process port over an install already detected at `home`; `java` as `detect` takes it
    /// (used again when a start names another install).
    pub fn new(install: Install, home: &Path, java: Option<&Path>) -> Self {
        Self { install, home: home.to_path_buf(), java: java.map(Path::to_path_buf), running: None }
    }

    /// The install in use.
    pub fn install(&self) -> &Install {
        &self.install
    }
}

impl ServerProcess for JvmProcess {
    fn start(&mut self, launch: &Launch) -> PortResult<()> {
        if self.running.as_ref().is_some_and(|s| s.pid().is_some()) {
            return Ok(());
        }
        if launch.install.home != self.home {
            // A rolling upgrade's new install: detected (and refused, naming what is missing)
            // before anything is started from it.
            self.install = Install::detect(&launch.install.home, self.java.as_deref()).map_err(|e| {
                PortError::new("process", format!("ZooKeeper install {}", launch.install.home.display()), e)
            })?;
            self.home = launch.install.home.clone();
        }
        write_logging_config(&launch.conf_dir)
            .map_err(|e| PortError::new("process", format!("logging config in {}", launch.conf_dir.display()), e))?;
        if let Some(uid) = launch.run_as_uid
            && let Some(closed) = zkpilot_zk::install::closed_to(&self.install.jars, uid, uid)
        {
            // Fail here, naming the directory, rather than leave a JVM that cannot find its classes.
            return Err(PortError::new(
                "process",
                format!("ZooKeeper's jars in {} as uid {uid}", self.install.jars.display()),
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{} cannot be entered by uid {uid}; install ZooKeeper where that uid can read it",
                        closed.display()
                    ),
                ),
            ));
        }
        if let Some(uid) = launch.run_as_uid {
            // Files the agent wrote since the last start are root's; ZooKeeper rewrites zoo.cfg and
            // the dynamic files and owns everything under dataDir.
            files::chown_tree(&launch.base, uid)
                .map_err(|e| PortError::new("process", format!("chown {} to {uid}", launch.base.display()), e))?;
        }
        let (program, args) = self.install.server_command(
            &launch.conf_dir,
            &launch.zoo_cfg,
            &JvmSettings {
                heap_mb: launch.heap_mb,
                hosts_file: launch.hosts_file.clone(),
                dns_ttl_s: launch.dns_ttl_s,
                learner_sync: launch.learner_sync,
            },
        );
        let mut sup = Supervisor::new(Spec {
            program,
            args,
            cwd: launch.base.clone(),
            log: launch.log.clone(),
            grace: GRACE,
            uid: launch.run_as_uid,
        });
        sup.start()?;
        self.running = Some(sup);
        Ok(())
    }

    async fn stop(&mut self) -> PortResult<()> {
        match self.running.take() {
            Some(mut s) => s.stop().await,
            None => Ok(()),
        }
    }

    async fn halt(&mut self) -> PortResult<()> {
        match self.running.take() {
            Some(mut s) => s.halt().await,
            None => Ok(()),
        }
    }

    fn try_exited(&mut self) -> Option<ExitInfo> {
        let exit = self.running.as_mut()?.try_exited()?;
        self.running = None;
        Some(exit)
    }

    fn pid(&self) -> Option<u32> {
        self.running.as_ref().and_then(Supervisor::pid)
    }

    fn release_at(&self, home: &Path) -> PortResult<Release> {
        let i = Install::detect(home, self.java.as_deref())
            .map_err(|e| PortError::new("process", format!("ZooKeeper install {}", home.display()), e))?;
        Ok(Release { home: home.to_path_buf(), version: i.version })
    }
}
