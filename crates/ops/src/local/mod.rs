//! A local group: a state directory (`zkpilot_local::StateDir`) and the controller process that
//! launches its instances. Modules depend downwards only: [`up`] and [`control`] change the
//! group, [`view`] observes it, [`plan`] and the rolling restart (`crate::rolling`) build on the view, [`restore`] on `up`
//! and the backup store ([`crate::backups`]); every one reports [`error::GroupError`]. This file
//! only re-exports; nothing depends back on it or on a caller.
//!
//! The group's processes run the `zkpilot` binary (`zkpilot local controller`, `zkpilot agent`):
//! its path is an explicit input ([`UpOptions::zkpilot`]), never this process's own executable,
//! so a program that is not `zkpilot` (the lab) can bring groups up too.

pub mod agent_config;
pub mod control;
pub mod error;
pub mod health;
pub mod plan;
pub mod restore;
pub mod up;
pub mod view;

pub use agent_config::{API_PORT, SEPARATE_UID_BASE, api_token_path, render_agent_config};
pub use control::{down, kill, scale, terminate};
pub use error::GroupError;
pub use health::{AgentHealth, agent_health};
pub use up::{Seed, UpOptions, addresses_free, up, validate_net};
pub use view::{cluster_view, effective_policy, wait_converged, wait_until};
