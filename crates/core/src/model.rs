//! Servers, roles, server lines and instances: the vocabulary shared by every crate.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A ZooKeeper server id (`myid`). ZooKeeper accepts 1..=255 (zookeeperAdmin, "myid").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServerId(pub u32);

impl ServerId {
    /// Highest id ZooKeeper accepts.
    pub const MAX: u32 = 255;

    /// Validates the range ZooKeeper accepts.
    pub fn new(id: u32) -> Result<Self, ModelError> {
        if (1..=Self::MAX).contains(&id) { Ok(Self(id)) } else { Err(ModelError::IdOutOfRange(id)) }
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Voting role of a configured server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A voter.
    Participant,
    /// A non-voting member that serves reads and forwards writes.
    Observer,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Participant => "participant",
            Role::Observer => "observer",
        })
    }
}

/// Errors of the model's parsers. Each names the offending text so that a caller can add the file
/// and line it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A server id outside 1..=255.
    #[error("server id {0} is outside 1..=255")]
    IdOutOfRange(u32),
    /// A `server.N=` line that does not have ZooKeeper's shape.
    #[error("malformed server line {line:?}: {why}")]
    BadServerLine {
        /// The offending line.
        line: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A `version=` line that is not hexadecimal.
    #[error("malformed config version {0:?}: expected hexadecimal")]
    BadVersion(String),
    /// The same id twice in one configuration.
    #[error("server id {0} appears twice")]
    DuplicateId(ServerId),
}

/// One `server.N=host:quorum:election[:role];[clientHost:]clientPort` line
/// (ZooKeeper's Dynamic Reconfiguration guide, "Specifying the client port"). The client address is always explicit: ZooKeeper binds
/// 0.0.0.0 without it and Curator's EnsembleTracker then publishes an unusable connection string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServerSpec {
    /// Server id.
    pub id: ServerId,
    /// Quorum/election host.
    pub host: String,
    /// Quorum (leader↔learner) port.
    pub quorum_port: u16,
    /// Leader-election port.
    pub election_port: u16,
    /// Voting role.
    pub role: Role,
    /// Host the client port binds to.
    pub client_host: String,
    /// Client port.
    pub client_port: u16,
}

impl ServerSpec {
    /// Server `id` on `127.0.0.<host>` with ZooKeeper's default ports (2888, 3888, 2181): the
    /// one fixture every test and example builds ensembles from.
    pub fn loopback(id: u32, host: u32, role: Role) -> Self {
        let host = format!("127.0.0.{host}");
        Self {
            id: ServerId(id),
            host: host.clone(),
            quorum_port: 2888,
            election_port: 3888,
            role,
            client_host: host,
            client_port: 2181,
        }
    }

    /// `host:port` clients connect to.
    pub fn client_address(&self) -> String {
        format!("{}:{}", self.client_host, self.client_port)
    }

    /// The value part of the line, without `server.N=`; the form `reconfig -add` also accepts
    /// with the prefix, which [`fmt::Display`] renders.
    pub fn value(&self) -> String {
        format!(
            "{}:{}:{}:{};{}:{}",
            self.host, self.quorum_port, self.election_port, self.role, self.client_host, self.client_port
        )
    }

    /// The same server with another role.
    pub fn with_role(&self, role: Role) -> Self {
        Self { role, ..self.clone() }
    }

    /// Parses `server.N=...` (whitespace around `=` is tolerated, as Java properties do).
    pub fn parse_line(line: &str) -> Result<Self, ModelError> {
        let bad = |why| ModelError::BadServerLine { line: line.to_string(), why };
        let (key, value) = line.split_once('=').ok_or_else(|| bad("missing '='"))?;
        let id = key
            .trim()
            .strip_prefix("server.")
            .ok_or_else(|| bad("key must be server.N"))?
            .parse::<u32>()
            .map_err(|_| bad("server id is not a number"))?;
        let id = ServerId::new(id)?;
        let (server_part, client_part) = value
            .trim()
            .split_once(';')
            .ok_or_else(|| bad("missing ';clientHost:clientPort' (zkpilot requires an explicit client address)"))?;
        let fields: Vec<&str> = server_part.split(':').collect();
        if fields.len() != 3 && fields.len() != 4 {
            return Err(bad("expected host:quorumPort:electionPort[:role]"));
        }
        let port = |s: &str| s.parse::<u16>().map_err(|_| bad("port is not a number"));
        let role = match fields.get(3).copied() {
            None | Some("participant") => Role::Participant,
            Some("observer") => Role::Observer,
            Some(_) => return Err(bad("role must be participant or observer")),
        };
        let (client_host, client_port) =
            client_part.rsplit_once(':').ok_or_else(|| bad("client address must be host:port"))?;
        if fields[0].is_empty() || client_host.is_empty() {
            return Err(bad("empty host"));
        }
        Ok(Self {
            id,
            host: fields[0].to_string(),
            quorum_port: port(fields[1])?,
            election_port: port(fields[2])?,
            role,
            client_host: client_host.to_string(),
            client_port: port(client_port)?,
        })
    }
}

impl fmt::Display for ServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server.{}={}", self.id, self.value())
    }
}

impl FromStr for ServerSpec {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_line(s)
    }
}

/// A committed ensemble configuration: what `/zookeeper/config` holds.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EnsembleConfig {
    /// Members by id.
    pub servers: BTreeMap<ServerId, ServerSpec>,
    /// Config version: the zxid of the reconfig that created it (0 for a never-established file).
    pub version: u64,
}

impl EnsembleConfig {
    /// Parses the text of `/zookeeper/config` (`server.N=` lines and an optional `version=<hex>`)
    /// or of a dynamic file (no `version=` line; the version then is 0).
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let mut config = Self::default();
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(v) = line.strip_prefix("version=") {
                config.version =
                    u64::from_str_radix(v.trim(), 16).map_err(|_| ModelError::BadVersion(v.to_string()))?;
                continue;
            }
            let spec = ServerSpec::parse_line(line)?;
            if config.servers.insert(spec.id, spec.clone()).is_some() {
                return Err(ModelError::DuplicateId(spec.id));
            }
        }
        Ok(config)
    }

    /// Dynamic-file text: one server line each, newline-terminated, no version (ZooKeeper rejects a
    /// `version=` line inside a dynamic file; the version lives in the file name).
    pub fn render_dynamic(&self) -> String {
        self.servers.values().map(|s| format!("{s}\n")).collect()
    }

    /// Ids of the voters.
    pub fn voters(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.servers.values().filter(|s| s.role == Role::Participant).map(|s| s.id)
    }

    /// Number of voters.
    pub fn voter_count(&self) -> usize {
        self.voters().count()
    }

    /// Role of `id`, if it is a member.
    pub fn role_of(&self, id: ServerId) -> Option<Role> {
        self.servers.get(&id).map(|s| s.role)
    }

    /// Comma-separated client addresses, voters first: the string Kafka's `zookeeper.connect` wants.
    pub fn connect_string(&self) -> String {
        let mut specs: Vec<&ServerSpec> = self.servers.values().collect();
        specs.sort_by_key(|s| (s.role != Role::Participant, s.id));
        specs.iter().map(|s| s.client_address()).collect::<Vec<_>>().join(",")
    }
}

/// Backend instance id (an EC2 instance id, or `i-local-0007` in the local backend).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(pub String);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lifecycle of a backend instance, as the backend reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Launched, agent not yet up.
    Pending,
    /// Running.
    Running,
    /// The group wants it gone (scale-in): remove its server, then it is terminated.
    Terminating,
    /// Gone for good, with its disk: its server can never come back.
    Terminated,
}

impl InstanceState {
    /// The member should leave the ensemble.
    pub fn is_leaving(self) -> bool {
        matches!(self, Self::Terminating | Self::Terminated)
    }
}

/// One instance of the group, with the server id it claimed (if any yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Backend id.
    pub id: InstanceId,
    /// Address its ZooKeeper binds (quorum, election, client, admin).
    pub address: String,
    /// Availability zone.
    pub zone: String,
    /// Lifecycle state.
    pub state: InstanceState,
    /// Server id it holds a claim on.
    pub server_id: Option<ServerId>,
    /// Whether the group may pick it on scale-in (`None`: the backend has no such notion).
    #[serde(default)]
    pub protected: Option<bool>,
    /// A lifecycle hook holding the instance until zkpilot completes it.
    #[serde(default)]
    pub hook: Option<LifecycleHook>,
}

/// Which lifecycle hook an instance waits in (EC2 Auto Scaling `Pending:Wait` / `Terminating:Wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleHook {
    /// Launching: completed once its server is a synced member.
    Launching,
    /// Terminating: completed once its server is out of the committed config.
    Terminating,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_line_round_trips() {
        let line = "server.3=127.0.0.3:2888:3888:observer;127.0.0.3:2181";
        let spec = ServerSpec::parse_line(line).expect("parses");
        assert_eq!(spec.role, Role::Observer);
        assert_eq!(spec.to_string(), line);
        let default_role = ServerSpec::parse_line("server.1 = h:1:2;h:3").expect("parses");
        assert_eq!(default_role.role, Role::Participant);
    }

    #[test]
    fn server_line_errors_name_the_problem() {
        for (line, needle) in [
            ("server.1=h:1:2", "client"),
            ("server.0=h:1:2;h:3", "outside"),
            ("server.x=h:1:2;h:3", "number"),
            ("server.1=h:1;h:3", "host:quorumPort"),
            ("server.1=h:1:2:boss;h:3", "role"),
            ("srv.1=h:1:2;h:3", "server.N"),
        ] {
            let err = ServerSpec::parse_line(line).expect_err(line).to_string();
            assert!(err.contains(needle), "{line}: {err}");
        }
    }

    #[test]
    fn config_parses_zookeeper_text() {
        let text = "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\n\
                    server.2=127.0.0.2:2888:3888:observer;127.0.0.2:2181\nversion=100000000";
        let c = EnsembleConfig::parse(text).expect("parses");
        assert_eq!(c.version, 0x1_0000_0000);
        assert_eq!(c.voter_count(), 1);
        assert_eq!(c.connect_string(), "127.0.0.1:2181,127.0.0.2:2181");
        assert!(!c.render_dynamic().contains("version"));
        assert!(EnsembleConfig::parse("server.1=a:1:2;a:3\nserver.1=b:1:2;b:3").is_err());
        assert!(EnsembleConfig::parse("version=zz").is_err());
    }
}
