//! The core's backend ports over a local state directory, one file per capability: [`Group`]
//! (`group.rs`), [`Identity`] (`identity.rs`), [`Coordination`] (`coordination.rs`), [`Publish`]
//! (`publish.rs`) and [`Store`] (`store.rs`).
//!
//! [`Group`]: zkpilot_core::ports::Group
//! [`Identity`]: zkpilot_core::ports::Identity
//! [`Coordination`]: zkpilot_core::ports::Coordination
//! [`Publish`]: zkpilot_core::ports::Publish
//! [`Store`]: zkpilot_core::ports::Store

mod coordination;
mod group;
mod identity;
mod publish;
mod store;

use zkpilot_core::ports::PortError;

use crate::state::{StateDir, StateError};

/// An agent's handle on the local group.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    dir: StateDir,
}

impl LocalBackend {
    /// Opens the group at `dir`.
    pub fn open(dir: &std::path::Path) -> Result<Self, StateError> {
        Ok(Self { dir: StateDir::open(dir)? })
    }

    /// The backup store of a group directory, even one whose ensemble is gone (see
    /// [`StateDir::open_store`]). Only the backup methods are meaningful on it.
    pub fn open_store(dir: &std::path::Path) -> Result<Self, StateError> {
        Ok(Self { dir: StateDir::open_store(dir)? })
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.dir
    }
}

fn port(what: &str) -> impl FnOnce(StateError) -> PortError + '_ {
    move |e| PortError::new("backend", what.to_string(), e)
}

/// Small state-file work (a few KiB read or renamed under a flock held for microseconds), done in
/// place: handing it to a blocking thread cost an idle agent more CPU in thread wakeups than the
/// file work itself (BENCHMARKS.md B5).
async fn in_place<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    f()
}

/// Bulk copies (backups, logs) off the async thread.
async fn offload<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StateError::Malformed { path: Default::default(), why: format!("blocking task failed: {e}") })
    })
}
