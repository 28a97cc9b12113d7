//! zkpilot's runtime: the agent loop around the pure core.
//!
//! # Theory of operation
//!
//! [`agent::Agent`] runs beside one ZooKeeper server. At boot it walks the decision tree
//! (`zkpilot_core::boot::decide`): restart with local state unchanged; join a serving ensemble as
//! a non-voting follower; start genesis when the cluster marker lists it; otherwise wait, never
//! bootstrapping over an ensemble that exists. Afterwards, every pass:
//!
//! 1. observes ([`observe::Observer`]): backend instances, `srvr` on every server, the committed
//!    config after `sync`;
//! 2. plans (`zkpilot_core::plan`), a pure call whose skipped candidates explain inaction;
//! 3. executes at most one membership change, only while holding the backend lease, conditional
//!    on the observed config version, settled by reading the config back, confirmed by a write;
//! 4. publishes an immutable [`status::AgentStatus`] snapshot.
//!
//! The ZooKeeper JVM is supervised (restart with backoff); on scale-in the agent waits for its
//! server's removal before it lets the instance go.
#![deny(missing_docs)]

pub mod agent;
pub mod api;
pub mod backup;
pub mod config;
pub mod names;
pub mod observe;
pub mod process;
pub mod status;
pub mod view;

pub use agent::{Agent, AgentError, PassEnd, SystemClock};
pub use config::{AgentConfig, ConfigError};
