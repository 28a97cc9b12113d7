//! The local ZooKeeper server process.

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::PortResult;

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
    /// Starts it; no-op if running.
    fn start(&mut self) -> PortResult<()>;
    /// Graceful stop (SIGTERM, grace, SIGKILL of the whole process group).
    fn stop(&mut self) -> impl Future<Output = PortResult<()>> + Send;
    /// Reaps an exit without blocking.
    fn try_exited(&mut self) -> Option<ExitInfo>;
    /// Process id while running.
    fn pid(&self) -> Option<u32>;
}
