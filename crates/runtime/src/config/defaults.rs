//! Every default of the agent config in one place: the functions serde's `default = "..."`
//! attributes in [`super::schema`] name, and the `Default` of each optional section (what a file
//! that leaves the whole section out gets).

use std::path::PathBuf;

use super::schema::{AgentSection, BackupSection, LogsSection, RecoverySection};

pub(super) const fn yes() -> bool {
    true
}

// [server]

/// The Apache release `scripts/install-deps.sh` installs (3.9.5 under `$HOME/.cache/zkpilot`).
pub(super) fn install() -> PathBuf {
    zkpilot_zk::install::default_home()
}
pub(super) const fn heap_mb() -> u32 {
    256
}
// ZooKeeper's own: tickTime, initLimit, syncLimit and clientPort of its conf/zoo_sample.cfg, the
// quorum and election ports of the Administrator's Guide, the AdminServer's default port.
pub(super) const fn tick_time_ms() -> u32 {
    2000
}
pub(super) const fn init_limit() -> u32 {
    10
}
pub(super) const fn sync_limit() -> u32 {
    5
}
pub(super) const fn client_port() -> u16 {
    2181
}
pub(super) const fn quorum_port() -> u16 {
    2888
}
pub(super) const fn election_port() -> u16 {
    3888
}
pub(super) const fn admin_port() -> u16 {
    8080
}

// [backend] kind = "aws"

pub(super) fn prefix() -> String {
    "zkpilot/".into()
}

// [agent]

pub(super) const fn pass_interval_ms() -> u64 {
    500
}
pub(super) const fn lease_ttl_ms() -> u64 {
    15_000
}
pub(super) const fn metrics_interval_ms() -> u64 {
    60_000
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            pass_interval_ms: pass_interval_ms(),
            lease_ttl_ms: lease_ttl_ms(),
            metrics_interval_ms: metrics_interval_ms(),
        }
    }
}

// [recovery]

pub(super) const fn quorum_loss_after_ms() -> u64 {
    10_000
}

impl Default for RecoverySection {
    fn default() -> Self {
        Self { quorum_loss_after_ms: quorum_loss_after_ms(), allow_unsafe: false, backup_dir: None }
    }
}

// [backup]

pub(super) const fn backup_interval_ms() -> u64 {
    3_600_000
}
pub(super) const fn backup_keep() -> usize {
    48
}

impl Default for BackupSection {
    fn default() -> Self {
        Self { interval_ms: backup_interval_ms(), before_change: yes(), keep: backup_keep() }
    }
}

// [logs]

impl Default for LogsSection {
    fn default() -> Self {
        Self { ship: yes(), agent_log: None }
    }
}

pub(super) const fn secure_client_port() -> u16 {
    2281
}

/// 30 days: renewed after 20, so an agent down or cut off from the CA has ten days to return.
pub(super) const fn cert_lifetime_s() -> u64 {
    30 * 86_400
}
