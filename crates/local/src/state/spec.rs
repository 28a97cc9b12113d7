//! `DIR/group.json`: the group's desired size and settings (written by `local up` / `local scale`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{StateDir, StateError};

/// Settings of the whole local group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Desired number of instances.
    pub desired: usize,
    /// First three octets of the loopback addresses, e.g. `127.0.1`; instance N gets `<net>.N`.
    pub net: String,
    /// Zones assigned round-robin.
    pub zones: Vec<String>,
    /// The zkpilot binary the controller launches agents with.
    pub agent_exe: PathBuf,
    /// ZooKeeper install path.
    pub zookeeper_install: PathBuf,
    /// Explicit java binary.
    pub java: Option<PathBuf>,
    /// Voter target.
    pub target_voters: usize,
    /// Minimum voters.
    pub min_voters: usize,
    /// JVM heap per server, MiB.
    pub heap_mb: u32,
    /// ZooKeeper tickTime, ms.
    pub tick_time_ms: u32,
    /// Slot mode: a replacement takes over a lost instance's address and data dir.
    #[serde(default)]
    pub slot_mode: bool,
    /// Name indirection: server lines use `zk-<id>.<domain>`, kept current in `<dir>/hosts`.
    #[serde(default)]
    pub names_domain: Option<String>,
    /// Policy `unhealthy_after_ms` of every agent.
    #[serde(default = "default_unhealthy_ms")]
    pub unhealthy_after_ms: u64,
    /// `[recovery] quorum_loss_after_ms` of every agent.
    #[serde(default = "default_quorum_loss_ms")]
    pub quorum_loss_after_ms: u64,
    /// Each instance's ZooKeeper runs as its own uid (for per-server firewall rules).
    #[serde(default)]
    pub separate_uids: bool,
    /// `[backup] interval_ms` of every agent.
    #[serde(default = "default_backup_interval_ms")]
    pub backup_interval_ms: u64,
    /// How long after an instance fails (`local kill`) the group's health check notices and
    /// terminates it; until then it is listed as running, with its server dead.
    #[serde(default = "default_failure_detected_ms")]
    pub failure_detected_after_ms: u64,
    /// `[server] learner_sync` of every agent.
    #[serde(default)]
    pub learner_sync: zkpilot_core::version::LearnerSync,
    /// TLS for the quorum and the clients, from the CA in `<dir>/tls/`.
    #[serde(default)]
    pub tls: bool,
    /// `[tls] cert_lifetime_s` of every agent.
    #[serde(default = "default_cert_lifetime_s")]
    pub cert_lifetime_s: u64,
}

const fn default_cert_lifetime_s() -> u64 {
    30 * 86_400
}

/// Local groups notice a failed instance after 5 s: long enough that the agents face a dead
/// server the group still lists as running (what EC2 shows for minutes after a crash), short
/// enough for tests. AWS's own checks are slower; see `local up --failure-detected-after`.
pub const DEFAULT_FAILURE_DETECTED_MS: u64 = 5_000;

const fn default_failure_detected_ms() -> u64 {
    DEFAULT_FAILURE_DETECTED_MS
}

const fn default_backup_interval_ms() -> u64 {
    3_600_000
}

const fn default_unhealthy_ms() -> u64 {
    120_000
}

const fn default_quorum_loss_ms() -> u64 {
    10_000
}

impl StateDir {
    /// The group spec.
    pub fn group(&self) -> Result<GroupSpec, StateError> {
        let p = self.root.join("group.json");
        self.read_json(&p)?.ok_or(StateError::NotAGroup(self.root.clone()))
    }

    /// Changes the install new instances' agents start ZooKeeper from (a rolling upgrade's, once
    /// its first server serves on it).
    pub fn set_zookeeper_install(&self, home: &std::path::Path) -> Result<(), StateError> {
        self.locked(|| {
            let mut g = self.group()?;
            g.zookeeper_install = home.to_path_buf();
            self.write_json(&self.root.join("group.json"), &g)
        })
    }

    /// Changes the desired size.
    pub fn set_desired(&self, desired: usize) -> Result<(), StateError> {
        self.locked(|| {
            let mut g = self.group()?;
            g.desired = desired;
            self.write_json(&self.root.join("group.json"), &g)
        })
    }
}
