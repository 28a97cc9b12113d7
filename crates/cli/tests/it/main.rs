//! End-to-end tests of the `zkpilot` binary against real ZooKeeper (3.9.5 unless a test or the
//! version matrix, `ZKPILOT_ZOOKEEPER`, names another install). One test binary, so the build
//! links once.

mod api;
#[cfg(feature = "aws")]
mod aws;
mod backup;
mod bad_input;
mod clients;
mod ensemble;
mod harness;
mod recovery;
mod sync;
mod tls;
