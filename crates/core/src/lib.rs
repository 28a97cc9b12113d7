//! The pure decision core of zkpilot.
//!
//! # Theory of operation
//!
//! ```text
//!   ports (ZooKeeper, backend, clock)          this crate                       runtime
//!   ─────────────────────────────────     ─────────────────────────     ───────────────────────────
//!   probes, /zookeeper/config, instances ─► Observed ──► plan(&Observed, &Policy, now) ──► Plan
//!                                                                        │ actions  → executed one at a time
//!                                                                        │ skipped  → published in status ("why not")
//! ```
//!
//! Everything that decides lives here and is a plain function of its inputs: no clock is read, no
//! file is opened, no task is spawned. The runtime gathers an [`Observed`] snapshot (turning every
//! failed probe into an explicit `Unknown`/`Unreachable` value rather than an early return), calls
//! [`plan`], executes at most one membership change and observes again. The safety rules that keep
//! a quorum intact are small named functions in [`safety`], each with its arithmetic in its docs;
//! [`safety::check_plan`] (in [`check`]) re-derives every rule independently of them and re-checks
//! every plan (in property tests and as a `debug_assert!` in the runtime).
//!
//! The ports the runtime drives are declared in [`ports`], next to the model they speak, with only
//! the methods the agent uses. Quorum-loss recovery, which cannot go through ZooKeeper, is decided
//! in [`recovery`] from what survivors read off their disks. What the agent decides around the
//! plan (its boot in [`boot`]; its phase, exit on removal, fence trigger, throttles and outcomes
//! in [`agent`]) is pure too: the runtime's agent only executes it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
pub mod backup;
pub mod boot;
pub mod check;
pub mod model;
pub mod observed;
pub mod plan;
pub mod planner;
pub mod policy;
pub mod ports;
pub mod recovery;
pub mod rollout;
pub mod safety;
pub mod tls;
pub mod version;

pub use model::{EnsembleConfig, Instance, InstanceState, Role, ServerId, ServerSpec};
pub use observed::{Health, Mode, Observed};
pub use plan::{Action, MembershipChange, Plan, Skip};
pub use planner::plan;
pub use policy::Policy;
