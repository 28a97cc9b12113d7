//! The fixed-membership strategy (called "static membership" before; "static" now means only
//! zoo.cfg's static keys): ZooKeeper servers with a fixed server list in zoo.cfg and
//! `reconfigEnabled=false` (what 3.4 ensembles, and ensembles that forbid reconfig, run), whose
//! membership changes by rewriting every list and restarting servers in the order
//! `zkpilot_core::rollout::fixed_rollout` gives. Each step waits until the server it touched
//! serves again and a leader exists, so a rolling change never takes down more than one server of
//! the list in force. It is the baseline the reconfig strategy is measured against (BENCHMARKS.md
//! B1, B2, B4), and it runs a membership change where reconfig is unavailable.

pub mod ensemble;
pub mod replace;

pub use ensemble::FixedEnsemble;
