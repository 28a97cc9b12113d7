//! What a local group operation reports when it cannot be carried out.

use std::path::PathBuf;
use std::time::Duration;

use zkpilot_core::model::ServerId;
use zkpilot_local::StateError;

/// A local group operation that could not be carried out. Names the input at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// `net` is not three octets.
    #[error("--net {net:?}: expected three octets like 127.0.1")]
    BadNet {
        /// The value given.
        net: String,
    },
    /// `net` is not loopback.
    #[error("--net {net}: the local backend only uses loopback addresses (127.0.0.0/8)")]
    NotLoopback {
        /// The value given.
        net: String,
    },
    /// The voter target is not a valid policy.
    #[error("--target-voters")]
    Policy(#[source] zkpilot_core::policy::PolicyError),
    /// The name-indirection domain is not a DNS name.
    #[error("--names: {domain:?} is not a DNS name (letters, digits, '-', dot-separated)")]
    BadNames {
        /// The value given.
        domain: String,
    },
    /// No usable ZooKeeper install.
    #[error("--zookeeper")]
    Install(#[source] zkpilot_zk::InstallError),
    /// The group's shared base config would be refused by every agent.
    #[error("base config")]
    BaseConfig(#[source] zkpilot_zk::FilesError),
    /// `--tls` on a release that cannot reload certificates.
    #[error(
        "--tls needs ZooKeeper {} or later (client certificate reload, ZOOKEEPER-3806); this install is {version}",
        zkpilot_core::version::FIRST_WITH_CLIENT_CERT_RELOAD
    )]
    TlsRelease {
        /// The install's release.
        version: String,
    },
    /// The group's CA cannot be made.
    #[error("making the group's TLS CA: {0}")]
    Tls(String),
    /// Separate uids need root.
    #[error("--separate-uids: only root can start servers as other uids")]
    NotRoot,
    /// A controller already runs for the directory.
    #[error("a controller (pid {pid}) already runs for {dir}; use `zkpilot local scale` or `down`")]
    ControllerRunning {
        /// Its pid.
        pid: u32,
        /// The group.
        dir: PathBuf,
    },
    /// An address the group would use is taken.
    #[error("{addr} is in use (another group on --net {net}?); choose another --net")]
    AddressInUse {
        /// `host:port`.
        addr: String,
        /// The net asked for.
        net: String,
    },
    /// A restore into a group that already has an ensemble.
    #[error("{0}: this group already has an ensemble; restore into a new --dir")]
    HasEnsemble(PathBuf),
    /// Restoring the seed backup failed.
    #[error("restoring backup {backup} into {dir}")]
    Seed {
        /// Backup name.
        backup: String,
        /// The new group.
        dir: PathBuf,
        /// Why.
        #[source]
        source: Box<crate::backups::BackupsError>,
    },
    /// File or process I/O.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The group's secret file cannot be read.
    #[error("{path}: {reason}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The group's instances could not be read (a dry-run plan needs them).
    #[error("{0}: cannot read the group's instances")]
    NoInstances(PathBuf),
    /// Not converged in time.
    #[error("not converged after {}s: {}", .waited.as_secs(), .why.join("; "))]
    NotConverged {
        /// How long was waited.
        waited: Duration,
        /// Why not, at the end.
        why: Vec<String>,
    },
    /// A wait for a condition on the group ran out.
    #[error("{what}: not reached within {waited:?}: {}", .why.join("; "))]
    NotReached {
        /// The condition.
        what: String,
        /// How long was waited.
        waited: Duration,
        /// Why the group was not converged at the end.
        why: Vec<String>,
    },
    /// No instance holds the server id.
    #[error("no instance holds server id {0}")]
    NoHolder(ServerId),
    /// The holder has no instance record.
    #[error("instance {0} has no record")]
    NoRecord(zkpilot_core::model::InstanceId),
    /// The instance is already terminated.
    #[error("instance {instance} (server {id}) is already terminated")]
    AlreadyTerminated {
        /// The instance.
        instance: zkpilot_core::model::InstanceId,
        /// Its server id.
        id: ServerId,
    },
    /// The instance is already terminating.
    #[error("instance {instance} (server {id}) is already terminating")]
    AlreadyTerminating {
        /// The instance.
        instance: zkpilot_core::model::InstanceId,
        /// Its server id.
        id: ServerId,
    },
    /// The instance's agent pid is not recorded.
    #[error("instance {0} has no agent pid")]
    NoAgentPid(zkpilot_core::model::InstanceId),
    /// A backend call (operator settings) failed.
    #[error(transparent)]
    Port(#[from] zkpilot_core::ports::PortError),
    /// A state-directory operation failed.
    #[error(transparent)]
    State(#[from] StateError),
}

impl GroupError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }
}
