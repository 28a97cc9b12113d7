//! zkpilot's runtime: the agent's executor around the pure core, and the adapters it runs
//! through.
//!
//! # Theory of operation
//!
//! [`agent::Agent`] runs beside one ZooKeeper server and reaches the world only through the
//! core's ports: the backend (`zkpilot_core::ports::Backend`), ZooKeeper (`Zookeeper`, the
//! `zkpilot_zk::ZkClient`), the server process (`ServerProcess`, here [`process::JvmProcess`])
//! and the clock (`Clock`). Every rule it follows is decided in `zkpilot_core`; the agent does
//! the I/O in between. At boot it walks the decision tree (`zkpilot_core::boot`): restart with
//! local state unchanged; rejoin; join a serving ensemble as a non-voting follower (only with the
//! group's cluster marker); start genesis when the marker lists it; otherwise wait, never
//! bootstrapping over an ensemble that exists. Afterwards, one membership change goes:
//!
//! 1. **pass** ([`agent::Agent::pass`]): observe ([`observe::Observer`]): backend instances,
//!    `srvr` on every server, the committed config after `sync`;
//! 2. **core step**: plan (`zkpilot_core::plan`, whose skipped candidates explain inaction,
//!    re-checked on every pass by `zkpilot_core::agent::vet`), then the agent's own decisions in
//!    `zkpilot_core::agent`: fence for quorum-loss recovery?, removed?, which phase, paused?;
//! 3. **lease**: only the holder of the backend lease executes;
//! 4. **execute** (`agent/execute.rs`): the one reconfig through the ZooKeeper port, conditional
//!    on the observed config version; **read back** from `/zookeeper/config` when the answer was
//!    lost; then the **confirming write**, after which the change is active on every server;
//!    the result is a `zkpilot_core::agent::Outcome`;
//! 5. **publish**: the connect string, an immutable [`status::AgentStatus`] snapshot (read by
//!    [`api`]) and the connection-count metric.
//!
//! The ZooKeeper JVM is supervised (restart with the core's backoff); on scale-in the agent waits
//! for its server's removal before it lets the instance go.
#![deny(missing_docs)]

pub mod agent;
pub mod api;
pub mod backup_store;
pub mod config;
pub mod names;
pub mod observe;
pub mod process;
pub mod status;
pub mod view;

pub use agent::{Agent, AgentError, PassEnd, SystemClock};
pub use config::{AgentConfig, ConfigError};
