//! The `local` backend: a small Auto Scaling group on one machine.
//!
//! Each instance is one `zkpilot agent` process with its own ZooKeeper on its own loopback address
//! (`127.X.Y.N`, the same ports on every address) and its own data dir. A replacement instance gets
//! a new address and an empty disk, like a new EC2 instance. The shared "cloud" is a state
//! directory ([`state`], one file per record kind); [`LocalBackend`] is the agent's view of it (the
//! core's backend ports, one file per capability in [`backend`]) and [`group`] is the controller
//! that launches, replaces and scales instances.
#![deny(missing_docs)]

pub mod backend;
pub mod group;
pub mod state;

pub use backend::LocalBackend;
pub use state::{DEFAULT_FAILURE_DETECTED_MS, GroupSpec, InstanceRecord, StateDir, StateError};
