//! ZooKeeper port of zkpilot.
//!
//! * [`zoo_cfg`]: the zoo.cfg parser and zkpilot's policy for the file: the static keys it owns,
//!   the keys a shared base config may not set, the merge of the two.
//! * [`files`]: zoo.cfg and the dynamic file on disk. zkpilot owns zoo.cfg's static keys, but
//!   ZooKeeper rewrites the file after every committed config (it repoints `dynamicConfigFile=` to
//!   `zoo.cfg.dynamic.<version>`); that line is never re-templated (ZooKeeper Dynamic
//!   Reconfiguration guide, "Dynamic configuration file"), or a restarted server rolls back to a
//!   stale membership and splits the brain.
//! * [`probe`]: the `srvr`/`mntr` four-letter words and AdminServer JSON.
//! * [`client`]: the reconfig client (`zookeeper-client`), implementing the core's `Zookeeper` port.
//! * [`install`]: where ZooKeeper's jars are and how the JVM is launched.
//! * [`position`]: a stopped server's (currentEpoch, last zxid), read from its data dir.
//! * [`tls`]: the cluster CA, each server's certificate, and what the agent reads off them.
#![deny(missing_docs)]

pub mod backup;
pub mod client;
pub mod error;
pub mod files;
pub mod install;
pub mod position;
pub mod probe;
pub mod synclog;
pub mod tls;
pub mod zoo_cfg;

pub use client::{ClientTls, Secret, SecretError, SecretProblem, ZkClient};
pub use files::{FilesError, LocalState, Stamp};
pub use install::{Install, InstallError};
pub use zoo_cfg::ZooCfg;
