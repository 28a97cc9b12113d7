//! Supervision of one child process (the ZooKeeper JVM).
//!
//! # Theory of operation
//!
//! A [`Supervisor`] is either idle or running one child. The child gets its own process group so
//! that a stop or a drop reaches everything it spawned, `PR_SET_PDEATHSIG` so that it dies with the
//! agent even when the agent is SIGKILLed (a JVM orphaned by a crashed agent would otherwise keep
//! its ports and its vote), and its stdout/stderr appended to a log file. [`Supervisor::stop`] is
//! SIGTERM, a grace period, then SIGKILL of the group. Restart policy (backoff) belongs to the
//! caller, which sees exits through [`Supervisor::try_exited`]; the agent's schedule is
//! `zkpilot_core::agent::Restarts`. The agent reaches a supervisor only through the core's
//! process port (`ServerProcess`), implemented for the ZooKeeper JVM by
//! `zkpilot_runtime::process::JvmProcess`.
#![deny(missing_docs)]

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use zkpilot_core::ports::{ExitInfo, PortError, PortResult};

/// How to run the child.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Program.
    pub program: PathBuf,
    /// Arguments (never secrets: argv is world-readable in /proc).
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Log file, appended.
    pub log: PathBuf,
    /// Time between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Run as this uid (and gid of the same number) instead of the agent's own.
    pub uid: Option<u32>,
}

/// One supervised child.
#[derive(Debug)]
pub struct Supervisor {
    spec: Spec,
    child: Option<Child>,
}

impl Supervisor {
    /// An idle supervisor.
    pub fn new(spec: Spec) -> Self {
        Self { spec, child: None }
    }

    fn pgid(&self) -> Option<Pid> {
        self.child.as_ref().and_then(Child::id).and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw)
    }

    fn signal_group(&self, sig: Signal) {
        if let Some(pg) = self.pgid() {
            // ESRCH (already gone) is the expected race here, not an error.
            let _ignored = killpg(pg, sig);
        }
    }
}

impl Supervisor {
    /// Starts the child; no-op while it runs.
    pub fn start(&mut self) -> PortResult<()> {
        if self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None))) {
            return Ok(());
        }
        if let Some(dir) = self.spec.log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| PortError::new("process", format!("mkdir {}", dir.display()), e))?;
        }
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.spec.log)
                .map_err(|e| PortError::new("process", format!("open log {}", self.spec.log.display()), e))
        };
        let (out, err) = (open()?, open()?);
        let mut cmd = Command::new(&self.spec.program);
        cmd.args(&self.spec.args)
            .current_dir(&self.spec.cwd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        if let Some(uid) = self.spec.uid {
            cmd.uid(uid).gid(uid);
        }
        own_group_dies_with_parent(&mut cmd);
        let child =
            cmd.spawn().map_err(|e| PortError::new("process", format!("spawn {}", self.spec.program.display()), e))?;
        tracing::info!(pid = child.id(), program = %self.spec.program.display(), "started");
        self.child = Some(child);
        Ok(())
    }

    /// Graceful stop: SIGTERM to the group, the grace period, then SIGKILL of the group.
    pub async fn stop(&mut self) -> PortResult<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Ok(Some(_)) = child.try_wait() {
            return Ok(());
        }
        let pg = child.id().and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw);
        if let Some(pg) = pg {
            let _ignored = killpg(pg, Signal::SIGTERM);
        }
        if tokio::time::timeout(self.spec.grace, child.wait()).await.is_err() {
            tracing::warn!(grace = ?self.spec.grace, "child ignored SIGTERM; killing its process group");
        }
        // Always: the leader may be gone while something it started still holds the group.
        if let Some(pg) = pg {
            let _ignored = killpg(pg, Signal::SIGKILL);
        }
        child.wait().await.map_err(|e| PortError::new("process", "wait after SIGKILL", e))?;
        Ok(())
    }

    /// SIGKILL of the whole process group at once, then reaps it.
    pub async fn halt(&mut self) -> PortResult<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pg) = child.id().and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw) {
            let _ignored = killpg(pg, Signal::SIGKILL);
        }
        child.wait().await.map_err(|e| PortError::new("process", "wait after SIGKILL", e))?;
        Ok(())
    }

    /// Reaps an exit without blocking.
    pub fn try_exited(&mut self) -> Option<ExitInfo> {
        use std::os::unix::process::ExitStatusExt;
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(ExitInfo { code: status.code(), signal: status.signal() })
    }

    /// Process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }
}

/// Puts the child in its own process group (so signals reach everything it starts) and has the
/// kernel SIGKILL it when this process dies (`PR_SET_PDEATHSIG`), so even a SIGKILLed parent can
/// never leave it behind holding ports and a vote.
pub fn own_group_dies_with_parent(cmd: &mut Command) {
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.signal_group(Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &std::path::Path, script: &str) -> Spec {
        Spec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: dir.to_path_buf(),
            log: dir.join("out.log"),
            grace: Duration::from_secs(2),
            uid: None,
        }
    }

    #[tokio::test]
    async fn stop_kills_the_whole_group_and_logs_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The shell starts a grandchild that ignores SIGTERM; only the group SIGKILL ends it.
        let script = "echo hello; sh -c 'trap \"\" TERM; echo $$ > grandchild.pid; while :; do sleep 1; done' & wait";
        let mut s = Supervisor::new(spec(dir.path(), script));
        s.start().expect("starts");
        let pidfile = dir.path().join("grandchild.pid");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !pidfile.exists() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let gc: i32 = std::fs::read_to_string(&pidfile).expect("pid").trim().parse().expect("number");
        s.stop().await.expect("stops");
        let alive = || {
            std::fs::read_to_string(format!("/proc/{gc}/stat"))
                .map(|st| st.split_whitespace().nth(2).is_none_or(|state| state != "Z"))
                .unwrap_or(false)
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(), "grandchild {gc} survived stop");
        assert!(std::fs::read_to_string(dir.path().join("out.log")).expect("log").contains("hello"));
    }

    /// (The backoff half of this test moved with `Backoff` to `zkpilot_core::agent::throttle`.)
    #[tokio::test]
    async fn exit_is_reported_and_backoff_grows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Supervisor::new(spec(dir.path(), "exit 3"));
        s.start().expect("starts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut exit = None;
        while exit.is_none() && tokio::time::Instant::now() < deadline {
            exit = s.try_exited();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(exit, Some(ExitInfo { code: Some(3), signal: None }));
    }
}
