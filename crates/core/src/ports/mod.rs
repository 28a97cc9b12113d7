//! The external systems the runtime drives, each as a narrow trait with only the methods the agent
//! uses. Implementations live elsewhere: `zkpilot-zk` (ZooKeeper), `zkpilot-local` and
//! `zkpilot-aws` (backend), `zkpilot-supervisor` (process). The traits use `impl Future + Send` so
//! the core needs no async runtime and implementations can be used from multi-threaded tokio tasks.
//!
//! The backend is split by capability so each caller can ask for only what it uses:
//!
//! | trait | what it covers |
//! |---|---|
//! | [`Group`] | the instances of the group, its size, scale-in protection, lifecycle hooks, health |
//! | [`Identity`] | server-id claims, slots, announcing an instance's id and address |
//! | [`Coordination`] | cluster marker, lease, quorum-loss recovery records, operator switches, restore seed, base config |
//! | [`Publish`] | what the ensemble shows the world: connection string, metrics, names, status |
//! | [`Store`] | backups and post-mortem logs |
//!
//! [`Backend`] is all five at once, implemented for every type that has them.

mod clock;
mod coordination;
mod group;
mod identity;
mod process;
mod publish;
mod store;
mod zookeeper;

pub use clock::{Clock, SystemClock, epoch_ms};
pub use coordination::{ClusterMarker, Coordination, OperatorSettings};
pub use group::Group;
pub use identity::{Identity, Slot};
pub use process::{ExitInfo, Launch, ServerProcess};
pub use publish::Publish;
pub use store::Store;
pub use zookeeper::{ReconfigError, ServerDetail, Zookeeper};

/// A port call that failed. `port` names the system, `what` the operation and its target.
#[derive(Debug, thiserror::Error)]
#[error("{port}: {what}")]
pub struct PortError {
    /// `zookeeper`, `backend`, `process`.
    pub port: &'static str,
    /// Operation and detail.
    pub what: String,
    /// Underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl PortError {
    /// Builds an error with a source.
    pub fn new(
        port: &'static str,
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self { port, what: what.into(), source: Some(Box::new(source)) }
    }
    /// Builds an error without a source.
    pub fn msg(port: &'static str, what: impl Into<String>) -> Self {
        Self { port, what: what.into(), source: None }
    }
}

/// Port result.
pub type PortResult<T> = Result<T, PortError>;

/// The cloud or local group the ensemble runs in: every backend capability at once. Code that
/// needs only some of them should ask for those ([`Group`], [`Identity`], [`Coordination`],
/// [`Publish`], [`Store`]) so fakes stay small and the dependency is visible in the signature.
pub trait Backend: Group + Identity + Coordination + Publish + Store {}

impl<T: Group + Identity + Coordination + Publish + Store> Backend for T {}
