//! One module per command: its clap arguments, the call into `zkpilot_ops` or the runtime, and
//! the rendering of what comes back.

pub mod agent;
pub mod args;
pub mod aws;
pub mod backup;
pub mod demo;
pub mod ensemble;
pub mod kafka;
pub mod local;
pub mod plan;
pub mod rolling;
