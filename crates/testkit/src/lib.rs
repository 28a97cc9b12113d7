//! Test fixtures for zkpilot.
//!
//! Always built, with no AWS SDK and no JVM: a fake for every port the agent drives, so scenario
//! tests run the real agent in milliseconds.
//! - [`MemoryBackend`]: the group, claims, marker, lease and records in memory, with the local
//!   backend's semantics; scripted failures per method ([`Fault`]) and a log of every call.
//! - [`ScriptedZookeeper`]: a model ensemble (committed config, servers up or down) that answers
//!   probes, config reads, reconfigs and confirming writes, with scripted reconfig answers
//!   ([`ReconfigAnswer`]) for the outcomes ZooKeeper really gives.
//! - [`FakeProcess`]: the server process, recording starts and stops; wired to the scripted
//!   ensemble, a started server serves.
//! - [`ManualClock`]: time that moves only when the test says so.
//!
//! Every fake is a cheap handle (`Clone` shares the state): hand one clone to the agent, keep one
//! to script and to assert.
//!
//! With feature `moto`: moto (the AWS emulator) on 127.0.0.1, one server per test, and an Auto
//! Scaling group with its bucket inside it (see [`Moto`]).
#![deny(missing_docs)]

mod backend;
mod calls;
mod clock;
mod process;
mod zookeeper;

#[cfg(feature = "moto")]
mod moto;

pub use backend::{BackendState, InstanceRecord, MemoryBackend, SlotRecord};
pub use calls::{Call, Fault};
pub use clock::ManualClock;
#[cfg(feature = "moto")]
pub use moto::*;
pub use process::{FakeProcess, read_server_files};
pub use zookeeper::{Ensemble, FIRST_ZXID, ReconfigAnswer, ScriptedZookeeper, ServerModel};

/// Server `id`'s line on `127.0.0.<id>` with ZooKeeper's default ports (2888, 3888, 2181): the
/// one fixture line every fake and scenario test builds its configs from.
pub fn loopback_spec(id: u32, role: zkpilot_core::model::Role) -> zkpilot_core::model::ServerSpec {
    zkpilot_core::model::ServerSpec::loopback(id, id, role)
}
