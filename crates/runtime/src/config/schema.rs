//! The sections of the agent config file, as serde reads them. Defaults are in
//! [`super::defaults`], checks across fields in [`super::validate`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use zkpilot_core::model::InstanceId;

use super::defaults;

/// `[instance]`: who this agent runs for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSection {
    /// Backend instance id.
    pub id: InstanceId,
    /// Address ZooKeeper binds and advertises.
    pub address: String,
    /// Availability zone.
    pub zone: String,
}

/// `[server]`: the ZooKeeper server this agent supervises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// conf/, data/ and logs/ live below it (persistent, writable).
    pub base_dir: PathBuf,
    /// ZooKeeper install: an Apache release home (`lib/zookeeper-3.x.y.jar`; default 3.9.5 under
    /// `$HOME/.cache/zkpilot`, where `scripts/install-deps.sh` puts it) or Debian's `/usr/share/java`.
    #[serde(default = "defaults::install")]
    pub install: PathBuf,
    /// java binary; first on PATH if unset.
    #[serde(default)]
    pub java: Option<PathBuf>,
    /// Max heap, MiB.
    #[serde(default = "defaults::heap_mb")]
    pub heap_mb: u32,
    /// tickTime, ms.
    #[serde(default = "defaults::tick_time_ms")]
    pub tick_time_ms: u32,
    /// initLimit, ticks.
    #[serde(default = "defaults::init_limit")]
    pub init_limit: u32,
    /// syncLimit, ticks.
    #[serde(default = "defaults::sync_limit")]
    pub sync_limit: u32,
    /// Client port.
    #[serde(default = "defaults::client_port")]
    pub client_port: u16,
    /// Quorum port.
    #[serde(default = "defaults::quorum_port")]
    pub quorum_port: u16,
    /// Election port.
    #[serde(default = "defaults::election_port")]
    pub election_port: u16,
    /// AdminServer port (bound to the instance address only).
    #[serde(default = "defaults::admin_port")]
    pub admin_port: u16,
    /// Run ZooKeeper as this uid (gid the same number); the agent, as root, hands the server's
    /// base dir to it before every start. Lets per-server firewall rules (`meta skuid`) tell
    /// servers apart on one host; the local group's partition tests use it.
    #[serde(default)]
    pub run_as_uid: Option<u32>,
    /// How a leader syncs a learner that is behind: `auto` (chosen per release; docs/versions.md),
    /// `snapshot`, `no-log-diff` or `zookeeper` (its own choice). A DIFF sent to an empty learner
    /// can leave it unable to start; override `auto` only with that evidence in hand.
    #[serde(default)]
    pub learner_sync: zkpilot_core::version::LearnerSync,
}

/// How a server's identity relates to its instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    /// Every instance is a new server: a fresh id, joined by reconfig; a lost one is removed.
    #[default]
    Elastic,
    /// Servers are slots with a fixed address and persistent storage: a replacement instance
    /// takes over a lost instance's slot and restarts the same server on the same data.
    Slot,
}

/// `[cluster]`: shared secrets and the identity mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// File holding the superuser password (reconfig is authorised only for it).
    pub secret_file: PathBuf,
    /// `elastic` (default) or `slot`.
    #[serde(default)]
    pub identity: IdentityMode,
}

/// `[backend]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum BackendSection {
    /// The local group in a state directory.
    Local {
        /// State directory.
        dir: PathBuf,
    },
    /// An EC2 Auto Scaling group with its records in S3 (binary built with the `aws` feature).
    Aws(AwsSection),
}

/// `[backend] kind = "aws"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSection {
    /// Auto Scaling group name.
    pub group: String,
    /// S3 bucket for claims, marker, lease, status and the connection string.
    pub bucket: String,
    /// Key prefix in the bucket.
    #[serde(default = "defaults::prefix")]
    pub prefix: String,
    /// Region (standard chain if unset).
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint override, for an emulator.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Keep id claims and the cluster marker as streams of this CloudWatch Logs group instead
    /// of S3 objects (the lease stays in S3).
    #[serde(default)]
    pub claims_log_group: Option<String>,
    /// Slot mode: value of the `zkpilot:cluster` tag on the slot interfaces and volumes.
    #[serde(default)]
    pub slot_cluster: Option<String>,
    /// Slot mode: where the slot volume is mounted.
    #[serde(default)]
    pub slot_mount: Option<PathBuf>,
}

/// `[agent]`: loop timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Time between passes, ms.
    #[serde(default = "defaults::pass_interval_ms")]
    pub pass_interval_ms: u64,
    /// Membership-change lease TTL, ms.
    #[serde(default = "defaults::lease_ttl_ms")]
    pub lease_ttl_ms: u64,
    /// How often the client connection count is published, ms.
    #[serde(default = "defaults::metrics_interval_ms")]
    pub metrics_interval_ms: u64,
}

/// `[recovery]`: quorum-loss recovery (docs: README "Quorum loss").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySection {
    /// How long no member may serve, while a cluster marker exists, before a survivor whose
    /// voters can no longer form a quorum stops its server and reports (a leader election takes
    /// well under a second on a LAN; a network blip a few ticks).
    #[serde(default = "defaults::quorum_loss_after_ms")]
    pub quorum_loss_after_ms: u64,
    /// Rebuild even when a lost member is not confirmed gone or a live one has not stopped. Risks
    /// a split brain (two ensembles both accepting writes) if such a member comes back.
    #[serde(default)]
    pub allow_unsafe: bool,
    /// Where survivors copy their data before recovery touches it (default
    /// `<base_dir>/recovery-backups`).
    #[serde(default)]
    pub backup_dir: Option<PathBuf>,
}

/// `[backup]`: snapshots and transaction logs copied to the backend's store (S3
/// `<prefix>backups/`, locally `DIR/backups/`). Docs: docs/operations.md "Backups".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// The leader's agent backs up every this many ms; 0 turns periodic backups off.
    #[serde(default = "defaults::backup_interval_ms")]
    pub interval_ms: u64,
    /// Back up right before every membership change (the lease holder, from its own server).
    #[serde(default = "defaults::yes")]
    pub before_change: bool,
    /// Backups kept; older ones are deleted after each new one (at least one is always kept).
    #[serde(default = "defaults::backup_keep")]
    pub keep: usize,
}

/// `[logs]`: post-mortem copies of this instance's logs, shipped to the backend (S3
/// `<prefix>postmortem/<instance>/`, locally `DIR/postmortem/<instance>/`) when the instance
/// leaves: its server removed on scale-in, or the agent stopped by SIGTERM (instance shutdown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsSection {
    /// Ship at all.
    #[serde(default = "defaults::yes")]
    pub ship: bool,
    /// The agent's own log file, if it writes one (systemd's journal is not a file: leave unset).
    #[serde(default)]
    pub agent_log: Option<PathBuf>,
}

/// `[api]`: the agent's HTTP API and status page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Listen address, e.g. `127.0.0.1:9181` (the status page and metrics are readable by anyone
    /// who can reach it: bind it where your monitoring is).
    pub listen: std::net::SocketAddr,
    /// File holding the bearer token for mutating calls (first line). Without it, mutating calls
    /// are refused.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// `[names]`: name indirection. Server lines say `zk-<id>.<domain>`; exactly one of
/// `hosts_file` and `route53_zone` says where the names are kept current.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamesSection {
    /// DNS suffix of the names.
    pub domain: String,
    /// Every agent keeps a managed block of this hosts file current (`/etc/hosts` in
    /// production; any other file is handed to the JVM as `jdk.net.hosts.file`).
    #[serde(default)]
    pub hosts_file: Option<PathBuf>,
    /// Route53 hosted zone id (AWS backend): each agent upserts its own A record.
    #[serde(default)]
    pub route53_zone: Option<String>,
}

/// `[tls]`: TLS for the quorum and the clients, with certificates the agent issues itself from
/// the cluster CA and renews in place (docs/tls.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// Quorum and election connections over TLS (`sslQuorum`).
    #[serde(default = "defaults::yes")]
    pub quorum: bool,
    /// A secure client port beside the plaintext one; the agent's own sessions (which carry
    /// the superuser digest) use it.
    #[serde(default = "defaults::yes")]
    pub client: bool,
    /// The secure client port, on the instance address.
    #[serde(default = "defaults::secure_client_port")]
    pub secure_client_port: u16,
    /// The cluster CA bundle (PEM): every CA servers and clients trust.
    pub ca_file: PathBuf,
    /// The signing CA's private key (PEM, mode 0600): it must belong to a certificate in
    /// `ca_file`.
    pub ca_key_file: PathBuf,
    /// Lifetime of the server certificates the agent issues, seconds; renewed when a third is
    /// left.
    #[serde(default = "defaults::cert_lifetime_s")]
    pub cert_lifetime_s: u64,
    /// Addresses the certificate names besides the instance's own (and its `[names]` name).
    /// The local backend adds `127.0.0.1`: on loopback every connection leaves from it, and
    /// ZooKeeper checks a connecting quorum peer's certificate against its source address.
    #[serde(default)]
    pub also_valid_for: Vec<std::net::IpAddr>,
    /// Client certificates on the secure client port (`ssl.clientAuth`).
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// `[tls] client_auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// Every client presents a certificate signed by a trusted CA (ZooKeeper's default).
    #[default]
    Need,
    /// A certificate is checked if presented.
    Want,
    /// Certificates are not asked for.
    None,
}

impl ClientAuth {
    /// The `ssl.clientAuth` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Need => "need",
            Self::Want => "want",
            Self::None => "none",
        }
    }
}
