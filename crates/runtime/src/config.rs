//! The agent's config file (TOML), parsed in two stages: [`AgentConfig`] mirrors the file and
//! only validates; [`AgentConfig::static_keys`] and friends derive what the runtime uses.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zkpilot_core::model::{InstanceId, Role, ServerId, ServerSpec};
use zkpilot_core::policy::Policy;

/// A config file that cannot be used; names the file and the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Unreadable file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax, unknown or missing field (the message names it).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// toml's message, with line, column and field.
        message: String,
    },
    /// A field with an unusable value.
    #[error("{path}: field `{field}`: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted field name.
        field: String,
        /// What is wrong.
        why: String,
    },
}

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

const fn yes() -> bool {
    true
}

fn default_install() -> PathBuf {
    PathBuf::from("/usr/share/java")
}
const fn default_heap() -> u32 {
    256
}
const fn default_tick() -> u32 {
    2000
}
const fn default_init_limit() -> u32 {
    10
}
const fn default_sync_limit() -> u32 {
    5
}
const fn default_client_port() -> u16 {
    2181
}
const fn default_quorum_port() -> u16 {
    2888
}
const fn default_election_port() -> u16 {
    3888
}
const fn default_admin_port() -> u16 {
    8080
}

/// `[server]`: the ZooKeeper server this agent supervises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// conf/, data/ and logs/ live below it (persistent, writable).
    pub base_dir: PathBuf,
    /// ZooKeeper install (Debian `/usr/share/java`, or a tarball's home).
    #[serde(default = "default_install")]
    pub install: PathBuf,
    /// java binary; first on PATH if unset.
    #[serde(default)]
    pub java: Option<PathBuf>,
    /// Max heap, MiB.
    #[serde(default = "default_heap")]
    pub heap_mb: u32,
    /// tickTime, ms.
    #[serde(default = "default_tick")]
    pub tick_time_ms: u32,
    /// initLimit, ticks.
    #[serde(default = "default_init_limit")]
    pub init_limit: u32,
    /// syncLimit, ticks.
    #[serde(default = "default_sync_limit")]
    pub sync_limit: u32,
    /// Client port.
    #[serde(default = "default_client_port")]
    pub client_port: u16,
    /// Quorum port.
    #[serde(default = "default_quorum_port")]
    pub quorum_port: u16,
    /// Election port.
    #[serde(default = "default_election_port")]
    pub election_port: u16,
    /// AdminServer port (bound to the instance address only).
    #[serde(default = "default_admin_port")]
    pub admin_port: u16,
    /// Run ZooKeeper as this uid (gid the same number); the agent, as root, hands the server's
    /// base dir to it before every start. Lets per-server firewall rules (`meta skuid`) tell
    /// servers apart on one host; the local group's partition tests use it.
    #[serde(default)]
    pub run_as_uid: Option<u32>,
    /// Leaders sync every learner by full snapshot instead of a diff (see docs: a diff sent to
    /// an empty learner can leave it unable to start). Turn off only for very large data sets,
    /// where a snapshot per reconnect costs more than the risk.
    #[serde(default = "yes")]
    pub snapshot_sync_only: bool,
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
    #[serde(default = "default_prefix")]
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

fn default_prefix() -> String {
    "zkpilot/".into()
}

const fn default_pass_ms() -> u64 {
    500
}
const fn default_lease_ms() -> u64 {
    15_000
}

/// `[agent]`: loop timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Time between passes, ms.
    #[serde(default = "default_pass_ms")]
    pub pass_interval_ms: u64,
    /// Membership-change lease TTL, ms.
    #[serde(default = "default_lease_ms")]
    pub lease_ttl_ms: u64,
    /// How often the client connection count is published, ms.
    #[serde(default = "default_metrics_ms")]
    pub metrics_interval_ms: u64,
}

const fn default_metrics_ms() -> u64 {
    60_000
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            pass_interval_ms: default_pass_ms(),
            lease_ttl_ms: default_lease_ms(),
            metrics_interval_ms: default_metrics_ms(),
        }
    }
}

const fn default_quorum_loss_ms() -> u64 {
    10_000
}

/// `[recovery]`: quorum-loss recovery (docs: README "Quorum loss").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySection {
    /// How long no member may serve, while a cluster marker exists, before a survivor whose
    /// voters can no longer form a quorum stops its server and reports (a leader election takes
    /// well under a second on a LAN; a network blip a few ticks).
    #[serde(default = "default_quorum_loss_ms")]
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

impl Default for RecoverySection {
    fn default() -> Self {
        Self { quorum_loss_after_ms: default_quorum_loss_ms(), allow_unsafe: false, backup_dir: None }
    }
}

/// `[backup]`: snapshots and transaction logs copied to the backend's store (S3
/// `<prefix>backups/`, locally `DIR/backups/`). Docs: docs/operations.md "Backups".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSection {
    /// The leader's agent backs up every this many ms; 0 turns periodic backups off.
    #[serde(default = "default_backup_interval_ms")]
    pub interval_ms: u64,
    /// Back up right before every membership change (the lease holder, from its own server).
    #[serde(default = "yes")]
    pub before_change: bool,
    /// Backups kept; older ones are deleted after each new one (at least one is always kept).
    #[serde(default = "default_backup_keep")]
    pub keep: usize,
}

fn default_backup_interval_ms() -> u64 {
    3_600_000
}

fn default_backup_keep() -> usize {
    48
}

impl Default for BackupSection {
    fn default() -> Self {
        Self { interval_ms: default_backup_interval_ms(), before_change: true, keep: default_backup_keep() }
    }
}

/// `[logs]`: post-mortem copies of this instance's logs, shipped to the backend (S3
/// `<prefix>postmortem/<instance>/`, locally `DIR/postmortem/<instance>/`) when the instance
/// leaves: its server removed on scale-in, or the agent stopped by SIGTERM (instance shutdown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsSection {
    /// Ship at all.
    #[serde(default = "yes")]
    pub ship: bool,
    /// The agent's own log file, if it writes one (systemd's journal is not a file: leave unset).
    #[serde(default)]
    pub agent_log: Option<PathBuf>,
}

impl Default for LogsSection {
    fn default() -> Self {
        Self { ship: true, agent_log: None }
    }
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

/// True if `s` is a DNS name that leaves room for the `zk-<id>.` prefix.
pub fn is_dns_name(s: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    s.len() <= 240 && s.split('.').all(label_ok)
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// `[instance]`.
    pub instance: InstanceSection,
    /// `[server]`.
    pub server: ServerSection,
    /// `[cluster]`.
    pub cluster: ClusterSection,
    /// `[policy]`.
    #[serde(default)]
    pub policy: Policy,
    /// `[backend]`.
    pub backend: BackendSection,
    /// `[agent]`.
    #[serde(default)]
    pub agent: AgentSection,
    /// `[names]`, if server lines use stable names.
    #[serde(default)]
    pub names: Option<NamesSection>,
    /// `[recovery]`.
    #[serde(default)]
    pub recovery: RecoverySection,
    /// `[api]`, if the agent serves one.
    #[serde(default)]
    pub api: Option<ApiSection>,
    /// `[backup]`.
    #[serde(default)]
    pub backup: BackupSection,
    /// `[logs]`.
    #[serde(default)]
    pub logs: LogsSection,
}

impl AgentConfig {
    /// First stage for a file: reads it and checks TOML syntax (see [`Self::table`]).
    pub fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        Self::table(&text, path)
    }

    /// Parses and validates text; `path` is used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::from_table(Self::table(text, path)?, path)
    }

    /// First stage: TOML syntax only, so a caller can fill `[instance]` (from instance metadata on
    /// AWS) before the config is validated.
    pub fn table(text: &str, path: &Path) -> Result<toml::Table, ConfigError> {
        text.parse::<toml::Table>()
            .map_err(|e| ConfigError::Syntax { path: path.to_path_buf(), message: e.to_string() })
    }

    /// Second stage: typed fields and validation.
    pub fn from_table(table: toml::Table, path: &Path) -> Result<Self, ConfigError> {
        let mut cfg: Self = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Syntax { path: path.to_path_buf(), message: e.to_string() })?;
        cfg.validate(path)?;
        cfg.policy.names_domain = cfg.names.as_ref().map(|n| n.domain.clone());
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid =
            |field: &str, why: String| ConfigError::Invalid { path: path.to_path_buf(), field: field.into(), why };
        let ip: Ipv4Addr =
            self.instance.address.parse().map_err(|_| {
                invalid("instance.address", format!("{:?} is not an IPv4 address", self.instance.address))
            })?;
        if matches!(self.backend, BackendSection::Local { .. }) && !ip.is_loopback() {
            return Err(invalid(
                "instance.address",
                format!("{ip} is not loopback; the local backend uses 127.0.0.0/8 only"),
            ));
        }
        if self.instance.id.0.is_empty() {
            return Err(invalid("instance.id", "empty".into()));
        }
        self.policy.validate().map_err(|e| invalid(&format!("policy.{}", e.field), e.why))?;
        if let BackendSection::Aws(aws) = &self.backend {
            if !aws.prefix.is_empty() && !aws.prefix.ends_with('/') {
                return Err(invalid("backend.prefix", format!("{:?} must end with '/'", aws.prefix)));
            }
            if aws.bucket.is_empty() || aws.group.is_empty() {
                return Err(invalid("backend", "aws needs `group` and `bucket`".into()));
            }
            if self.cluster.identity == IdentityMode::Slot && aws.slot_cluster.is_none() {
                return Err(invalid(
                    "backend.slot_cluster",
                    "cluster.identity = \"slot\" needs the zkpilot:cluster tag value of the slot resources".into(),
                ));
            }
            if aws.slot_mount.as_ref().is_some_and(|m| !m.is_absolute()) {
                return Err(invalid("backend.slot_mount", "must be an absolute path".into()));
            }
        }
        if let Some(names) = &self.names {
            if !is_dns_name(&names.domain) {
                return Err(invalid("names.domain", format!("{:?} is not a DNS name", names.domain)));
            }
            match (&names.hosts_file, &names.route53_zone) {
                (Some(f), None) if !f.is_absolute() => {
                    return Err(invalid("names.hosts_file", "must be an absolute path".into()));
                }
                (Some(_), None) => {}
                (None, Some(_)) if matches!(self.backend, BackendSection::Aws(_)) => {}
                (None, Some(_)) => {
                    return Err(invalid("names.route53_zone", "Route53 records need the aws backend".into()));
                }
                _ => return Err(invalid("names", "set exactly one of `hosts_file` and `route53_zone`".into())),
            }
        }
        if !self.server.base_dir.is_absolute() {
            return Err(invalid(
                "server.base_dir",
                "must be an absolute path (ZooKeeper resolves dynamicConfigFile against it)".into(),
            ));
        }
        if self.server.heap_mb < 32 {
            return Err(invalid(
                "server.heap_mb",
                format!("{} MiB is below the 32 MiB minimum heap", self.server.heap_mb),
            ));
        }
        let ports =
            [self.server.client_port, self.server.quorum_port, self.server.election_port, self.server.admin_port];
        if ports.contains(&0) || (1..ports.len()).any(|i| ports[..i].contains(&ports[i])) {
            return Err(invalid("server.*_port", format!("ports must be distinct and non-zero, got {ports:?}")));
        }
        if self.agent.pass_interval_ms == 0 || self.agent.lease_ttl_ms < 2 * self.agent.pass_interval_ms {
            return Err(invalid("agent.lease_ttl_ms", "must be at least two pass intervals".into()));
        }
        Ok(())
    }

    /// This server's line, for a given id.
    pub fn server_spec(&self, id: ServerId) -> ServerSpec {
        let host = self.policy.host_for(id, &self.instance.address);
        ServerSpec {
            id,
            host: host.clone(),
            quorum_port: self.server.quorum_port,
            election_port: self.server.election_port,
            role: Role::Participant,
            client_host: host,
            client_port: self.server.client_port,
        }
    }

    /// zoo.cfg keys zkpilot owns (reference/zookeeper-local-lab.md §2.1, zookeeper-reconfig.md §0).
    pub fn static_keys(&self, super_digest: &str) -> Vec<(String, String)> {
        let s = &self.server;
        [
            ("tickTime", s.tick_time_ms.to_string()),
            ("initLimit", s.init_limit.to_string()),
            ("syncLimit", s.sync_limit.to_string()),
            ("reconfigEnabled", "true".into()),
            ("standaloneEnabled", "false".into()),
            // srvr for membership probes, mntr for the leader's synced counts; nothing else.
            ("4lw.commands.whitelist", "srvr,mntr".into()),
            ("admin.enableServer", "true".into()),
            ("admin.serverAddress", self.instance.address.clone()),
            ("admin.serverPort", s.admin_port.to_string()),
            ("DigestAuthenticationProvider.superDigest", super_digest.to_string()),
            ("autopurge.snapRetainCount", "10".into()),
            ("autopurge.purgeInterval", "24".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// zoo.cfg keys a shared base config may not set: they carry zkpilot's safety and security
/// guarantees, or belong in the dynamic file.
pub const PROTECTED_KEYS: &[&str] = &[
    "reconfigEnabled",
    "standaloneEnabled",
    "dynamicConfigFile",
    "dataDir",
    "dataLogDir",
    "DigestAuthenticationProvider.superDigest",
    "skipACL",
    "admin.enableServer",
    "admin.serverAddress",
    "admin.serverPort",
    "4lw.commands.whitelist",
    "clientPort",
    "clientPortAddress",
    "peerType",
];

/// Merges a shared base config into zkpilot's static keys: base keys win, except protected ones
/// and `server.*`/`group.*`/`weight.*` (dynamic), which are reported back as ignored.
pub fn merge_base(own: &[(String, String)], base: &zkpilot_zk::ZooCfg) -> (Vec<(String, String)>, Vec<String>) {
    let mut merged: Vec<(String, String)> = own.to_vec();
    let mut ignored = Vec::new();
    for (k, v) in base.entries() {
        let dynamic = ["server.", "group.", "weight."].iter().any(|p| k.starts_with(p));
        if dynamic || PROTECTED_KEYS.contains(&k) {
            ignored.push(k.to_string());
            continue;
        }
        match merged.iter_mut().find(|(mk, _)| mk == k) {
            Some(e) => e.1 = v.to_string(),
            None => merged.push((k.to_string(), v.to_string())),
        }
    }
    (merged, ignored)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[instance]
id = "i-0001"
address = "127.0.1.1"
zone = "local-a"
[server]
base_dir = "/tmp/x/zk"
[cluster]
secret_file = "/tmp/x/secret"
[backend]
kind = "local"
dir = "/tmp/x"
"#;

    #[test]
    fn base_config_cannot_weaken_safety() {
        let c = AgentConfig::parse(GOOD, Path::new("a.toml")).expect("valid");
        let own = c.static_keys("super:x");
        let base = zkpilot_zk::ZooCfg::parse(
            "tickTime=1000\nmaxClientCnxns=123\nskipACL=yes\nreconfigEnabled=false\nserver.9=h:1:2;h:3\n",
            Path::new("base.cfg"),
        )
        .expect("base");
        let (merged, ignored) = merge_base(&own, &base);
        let get = |k: &str| merged.iter().find(|(mk, _)| mk == k).map(|(_, v)| v.as_str());
        assert_eq!((get("tickTime"), get("maxClientCnxns")), (Some("1000"), Some("123")));
        assert_eq!((get("reconfigEnabled"), get("skipACL")), (Some("true"), None));
        assert_eq!(ignored, vec!["skipACL", "reconfigEnabled", "server.9"]);
    }

    #[test]
    fn names_turn_server_lines_into_stable_names() {
        let text = format!("{GOOD}\n[names]\ndomain = \"zk.test\"\nhosts_file = \"/tmp/x/hosts\"\n");
        let c = AgentConfig::parse(&text, Path::new("a.toml")).expect("valid");
        let spec = c.server_spec(ServerId(7));
        assert_eq!((spec.host.as_str(), spec.client_host.as_str()), ("zk-7.zk.test", "zk-7.zk.test"));
        let plain = AgentConfig::parse(GOOD, Path::new("a.toml")).expect("valid");
        assert_eq!(plain.server_spec(ServerId(7)).host, "127.0.1.1");
    }

    #[test]
    fn good_config_parses_with_defaults() {
        let c = AgentConfig::parse(GOOD, Path::new("a.toml")).expect("valid");
        assert_eq!(c.server.client_port, 2181);
        assert_eq!(c.policy.target_voters, 3);
    }

    #[test]
    fn errors_name_file_and_field() {
        let cases = [
            (GOOD.replace("zone = \"local-a\"", "zone = \"local-a\"\ncolour = 1"), "colour"),
            (GOOD.replace("127.0.1.1", "10.0.0.1"), "instance.address"),
            (GOOD.replace("127.0.1.1", "banana"), "instance.address"),
            (format!("{GOOD}\n[policy]\ntarget_voters = 4\n"), "policy.target_voters"),
            (GOOD.replace("/tmp/x/zk", "relative/zk"), "server.base_dir"),
            (GOOD.replace("[cluster]\nsecret_file = \"/tmp/x/secret\"", ""), "cluster"),
            (format!("{GOOD}\n[names]\ndomain = \"zk.test\"\n"), "names"),
            (format!("{GOOD}\n[names]\ndomain = \"bad_domain\"\nhosts_file = \"/etc/hosts\"\n"), "names.domain"),
            (format!("{GOOD}\n[names]\ndomain = \"zk.test\"\nroute53_zone = \"Z1\"\n"), "names.route53_zone"),
            (format!("{GOOD}\n[names]\ndomain = \"zk.test\"\nhosts_file = \"hosts\"\n"), "names.hosts_file"),
            (
                GOOD.replace(
                    "secret_file = \"/tmp/x/secret\"",
                    "secret_file = \"/tmp/x/secret\"\nidentity = \"sticky\"",
                ),
                "identity",
            ),
        ];
        for (text, needle) in cases {
            let err = AgentConfig::parse(&text, Path::new("/etc/zkpilot/agent.toml")).expect_err(needle).to_string();
            assert!(err.starts_with("/etc/zkpilot/agent.toml"), "{err}");
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
}
