//! The local ZooKeeper server process.

use std::future::Future;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::PortResult;

/// Everything the agent decides about one start of its server. How it is started (a JVM, a
/// fake) is the implementation's business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launch {
    /// The server's base dir: its working directory, and what it must own when `run_as_uid` is set.
    pub base: PathBuf,
    /// The conf dir (zoo.cfg, the dynamic file, logging configs).
    pub conf_dir: PathBuf,
    /// The zoo.cfg the server is started from.
    pub zoo_cfg: PathBuf,
    /// Where the server's output is appended.
    pub log: PathBuf,
    /// Maximum heap, MiB.
    pub heap_mb: u32,
    /// Name indirection: resolve names through this hosts file only; `None` uses the system
    /// resolver.
    pub hosts_file: Option<PathBuf>,
    /// Name indirection: how long resolved names are cached, so a moved server is found again
    /// within seconds.
    pub dns_ttl_s: Option<u32>,
    /// How, as leader, it syncs a learner that is behind.
    pub learner_sync: crate::version::LearnerSync,
    /// The ZooKeeper install it starts from (`crate::version::choose_install` decided it).
    pub install: crate::version::Release,
    /// Run as this uid (and gid of the same number) instead of the agent's own.
    pub run_as_uid: Option<u32>,
}

/// How the supervised ZooKeeper process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal, if killed.
    pub signal: Option<i32>,
}

/// The local ZooKeeper server process.
pub trait ServerProcess: Send {
    /// Starts it as `launch` says; no-op while it runs.
    fn start(&mut self, launch: &Launch) -> PortResult<()>;
    /// Graceful stop (SIGTERM, grace, SIGKILL of the whole process group).
    fn stop(&mut self) -> impl Future<Output = PortResult<()>> + Send;
    /// Stop at once (SIGKILL of the whole process group), for a server nobody needs any more:
    /// its connections close the moment it is asked, not when the JVM has finished exiting.
    fn halt(&mut self) -> impl Future<Output = PortResult<()>> + Send;
    /// Reaps an exit without blocking.
    fn try_exited(&mut self) -> Option<ExitInfo>;
    /// Process id while running.
    fn pid(&self) -> Option<u32>;
    /// The install at `home` and its release, or why it cannot be used (checked before a start
    /// on it is decided).
    fn release_at(&self, home: &std::path::Path) -> PortResult<crate::version::Release>;
}
