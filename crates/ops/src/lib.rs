//! zkpilot's operator actions on a group, as a library: what the `zkpilot` binary's operator
//! commands call, and what the lab (`zkpilot-lab`) drives its experiments with.
//!
//! * [`local`]: a local group (a state directory and its controller process): up, down, scale,
//!   kill, terminate, wait, the status view, the agent config of each instance, the dry-run
//!   [`local::plan`], the rolling restart and a restore into a new group.
//! * [`backups`]: the backups the agents stored, in any backend named by an agent config: list and
//!   seed a new cluster's store.
//! * [`ensemble`]: the status of any ensemble (managed by zkpilot or not).
//! * [`kafka`]: `zookeeper.connect` and a stable `broker.id` for a Kafka broker.
//! * [`aws`] (feature `aws`): the AWS backend of an agent config's `[backend]`.
//!
//! Nothing here prints: long operations report [`progress::Progress`] events to a sink the caller
//! passes ([`progress::print`] writes them where the `zkpilot` commands always did). Errors are
//! typed per area and name the input they refer to; the messages of the local group's checks
//! name the `local up` option a value came from, since [`local::UpOptions`] mirrors them.
#![deny(missing_docs)]

#[cfg(feature = "aws")]
pub mod aws;
pub mod backups;
pub mod ensemble;
pub mod kafka;
pub mod local;
pub mod progress;
pub mod rolling;

pub use progress::{Progress, Sink};
