//! End-to-end tests of the `zkpilot-lab` binary against real ZooKeeper: the chaos profiles, the
//! benchmarks' smoke run and the fixed-membership strategy. The lab runs its groups with the
//! `zkpilot` binary built beside it (`cargo nextest run --workspace` builds both). One test
//! binary, so the build links once.

mod bad_input;
mod bench;
mod chaos;
mod fixed_membership;
mod harness;
