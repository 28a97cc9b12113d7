//! End-to-end tests of the `zkpilot` binary against real ZooKeeper (Debian's `zookeeper` package).
//! One test binary, so the build links once.

mod api;
#[cfg(feature = "aws")]
mod aws;
mod backup;
mod bad_input;
mod curator;
mod ensemble;
mod harness;
mod recovery;
