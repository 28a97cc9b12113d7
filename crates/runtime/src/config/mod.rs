//! The agent's config file (TOML), parsed in two stages: [`AgentConfig`] mirrors the file and
//! only validates; [`AgentConfig::static_keys`] and friends derive what the runtime uses.
//!
//! * [`schema`]: the sections, as serde reads them;
//! * `error`: [`ConfigError`], which names the file and the field;
//! * `defaults`: every default, in one place;
//! * `validate`: checks across fields, and the `[api]` token rule ([`ApiSection::read_token`]).
//!
//! Which zoo.cfg keys zkpilot writes, and which a shared base config may set, is ZooKeeper policy:
//! [`zkpilot_zk::zoo_cfg`].

mod defaults;
mod error;
pub mod schema;
mod validate;

use std::path::Path;

use serde::{Deserialize, Serialize};
use zkpilot_core::model::{Role, ServerId, ServerSpec};
use zkpilot_core::policy::Policy;
use zkpilot_zk::files::Layout;
use zkpilot_zk::zoo_cfg::{StaticSettings, TlsKeys, static_keys, tls_keys};

pub use error::ConfigError;
pub use schema::{
    AgentSection, ApiSection, AwsSection, BackendSection, BackupSection, ClusterSection, IdentityMode, InstanceSection,
    LogsSection, NamesSection, RecoverySection, ServerSection,
};
pub use schema::{ClientAuth, TlsSection};
pub use validate::is_dns_name;

/// `[backend] kind` of a table not yet validated.
fn backend_kind(table: &toml::Table) -> Option<&str> {
    table.get("backend").and_then(|b| b.get("kind")).and_then(|k| k.as_str())
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
    /// `[tls]`, if the ensemble uses TLS.
    #[serde(default)]
    pub tls: Option<TlsSection>,
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

    /// Whether `[instance]` is left for instance metadata: the file has none and its backend is
    /// `aws`. The binary then reads the instance's identity and passes it to
    /// [`Self::from_table_with_instance`].
    pub fn wants_instance_metadata(table: &toml::Table) -> bool {
        !table.contains_key("instance") && backend_kind(table) == Some("aws")
    }

    /// Second stage with `[instance]` filled in when the file leaves it out (from instance
    /// metadata, see [`Self::wants_instance_metadata`]); a file's own `[instance]` wins.
    pub fn from_table_with_instance(
        mut table: toml::Table,
        path: &Path,
        instance: Option<InstanceSection>,
    ) -> Result<Self, ConfigError> {
        if let Some(instance) = instance
            && !table.contains_key("instance")
        {
            let value = toml::Value::try_from(&instance)
                .map_err(|e| ConfigError::Syntax { path: path.to_path_buf(), message: e.to_string() })?;
            table.insert("instance".into(), value);
        }
        Self::from_table(table, path)
    }

    /// Second stage: typed fields and validation.
    pub fn from_table(table: toml::Table, path: &Path) -> Result<Self, ConfigError> {
        if !table.contains_key("instance") {
            let why = match backend_kind(&table) {
                Some("aws") => "it was not read from instance metadata either",
                _ => "only the aws backend reads it from instance metadata",
            };
            return Err(ConfigError::MissingInstance { path: path.to_path_buf(), why: why.into() });
        }
        let mut cfg: Self = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Syntax { path: path.to_path_buf(), message: e.to_string() })?;
        cfg.validate(path)?;
        cfg.policy.names_domain = cfg.names.as_ref().map(|n| n.domain.clone());
        Ok(cfg)
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

    /// How the agent's ZooKeeper sessions use TLS: with `[tls] client`, through the secure port.
    pub fn client_tls(&self) -> Option<zkpilot_zk::ClientTls> {
        let t = self.tls.as_ref().filter(|t| t.client)?;
        Some(zkpilot_zk::ClientTls {
            secure_port: t.secure_client_port,
            ca_file: t.ca_file.clone(),
            ca_key_file: t.ca_key_file.clone(),
            identity: format!("zkpilot agent {}", self.instance.id),
        })
    }

    /// zoo.cfg keys zkpilot owns, from this config's `[server]` and `[instance]` (the policy is
    /// [`zkpilot_zk::zoo_cfg::static_keys`]).
    pub fn static_keys(&self, super_digest: &str, layout: &Layout) -> Vec<(String, String)> {
        let s = &self.server;
        let mut keys = static_keys(&StaticSettings {
            tick_time_ms: s.tick_time_ms,
            init_limit: s.init_limit,
            sync_limit: s.sync_limit,
            admin_address: &self.instance.address,
            admin_port: s.admin_port,
            super_digest,
        });
        if let Some(t) = &self.tls {
            let (keystore, truststore) = (layout.keystore(), layout.truststore());
            keys.extend(tls_keys(&TlsKeys {
                quorum: t.quorum,
                client: t.client.then_some((self.instance.address.as_str(), t.secure_client_port)),
                client_auth: t.client_auth.as_str(),
                keystore: &keystore.to_string_lossy(),
                truststore: &truststore.to_string_lossy(),
            }));
        }
        keys
    }
}

/// A minimal valid config, for the tests here and in `validate`.
#[cfg(test)]
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

#[cfg(test)]
mod tests {
    use zkpilot_core::model::InstanceId;

    use super::*;

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
    fn static_keys_come_from_server_and_instance() {
        let c = AgentConfig::parse(&GOOD.replace("[server]\n", "[server]\ntick_time_ms = 1000\n"), Path::new("a.toml"))
            .expect("valid");
        let layout = Layout::new("/tmp/x/zk");
        let keys = c.static_keys("super:x", &layout);
        let get = |k: &str| keys.iter().find(|(mk, _)| mk == k).map(|(_, v)| v.as_str());
        assert_eq!((get("tickTime"), get("initLimit")), (Some("1000"), Some("10")));
        assert_eq!((get("admin.serverAddress"), get("admin.serverPort")), (Some("127.0.1.1"), Some("8080")));
        assert_eq!(get("DigestAuthenticationProvider.superDigest"), Some("super:x"));
        assert_eq!(get("sslQuorum"), None);
    }

    #[test]
    fn tls_puts_the_secure_port_on_the_instance_address_and_the_stores_under_conf() {
        let tls = "\n[tls]\nca_file = \"/tmp/x/ca.pem\"\nca_key_file = \"/tmp/x/ca.key\"\n";
        let c = AgentConfig::parse(&format!("{GOOD}{tls}"), Path::new("a.toml")).expect("valid");
        let keys = c.static_keys("super:x", &Layout::new("/tmp/x/zk"));
        let get = |k: &str| keys.iter().find(|(mk, _)| mk == k).map(|(_, v)| v.as_str());
        assert_eq!(get("sslQuorum"), Some("true"));
        assert_eq!((get("secureClientPort"), get("secureClientPortAddress")), (Some("2281"), Some("127.0.1.1")));
        assert_eq!(get("ssl.quorum.keyStore.location"), Some("/tmp/x/zk/conf/tls/server.pem"));
        assert_eq!(get("ssl.trustStore.location"), Some("/tmp/x/zk/conf/tls/ca.pem"));
        assert_eq!(get("ssl.clientAuth"), Some("need"));
        let quorum_only = format!("{GOOD}{tls}client = false\n");
        let c = AgentConfig::parse(&quorum_only, Path::new("a.toml")).expect("valid");
        let keys = c.static_keys("super:x", &Layout::new("/tmp/x/zk"));
        assert!(keys.iter().all(|(k, _)| k != "secureClientPort"), "{keys:?}");
    }

    fn without_instance(text: &str) -> toml::Table {
        let mut table = AgentConfig::table(text, Path::new("a.toml")).expect("toml");
        table.remove("instance");
        table
    }

    #[test]
    fn a_missing_instance_is_named() {
        let path = Path::new("/etc/zkpilot/agent.toml");
        let table = without_instance(GOOD);
        assert!(!AgentConfig::wants_instance_metadata(&table), "the local backend has no instance metadata");
        let err = AgentConfig::from_table(table, path).expect_err("no [instance]");
        assert!(matches!(err, ConfigError::MissingInstance { .. }), "{err:?}");
        assert!(err.to_string().starts_with("/etc/zkpilot/agent.toml: [instance] is missing"), "{err}");

        let err = ConfigError::instance_metadata(path, std::io::Error::other("IMDS timed out"));
        assert_eq!(
            err.to_string(),
            "/etc/zkpilot/agent.toml: [instance] is missing and reading it from instance metadata failed"
        );
        assert_eq!(std::error::Error::source(&err).map(ToString::to_string).as_deref(), Some("IMDS timed out"));
    }

    #[test]
    fn instance_metadata_fills_a_missing_instance_on_aws() {
        let aws = GOOD.replace("kind = \"local\"\ndir = \"/tmp/x\"", "kind = \"aws\"\ngroup = \"g\"\nbucket = \"b\"");
        let table = without_instance(&aws);
        assert!(AgentConfig::wants_instance_metadata(&table));
        let from_metadata =
            InstanceSection { id: InstanceId("i-0abc".into()), address: "10.0.0.5".into(), zone: "eu-west-1a".into() };
        let c = AgentConfig::from_table_with_instance(table.clone(), Path::new("a.toml"), Some(from_metadata.clone()))
            .expect("valid");
        assert_eq!(c.instance, from_metadata);
        let err = AgentConfig::from_table_with_instance(table, Path::new("a.toml"), None).expect_err("nothing filled");
        assert!(err.to_string().contains("[instance] is missing"), "{err}");
        // The file's own [instance] wins over metadata.
        let own = AgentConfig::table(&aws, Path::new("a.toml")).expect("toml");
        assert!(!AgentConfig::wants_instance_metadata(&own));
        let c = AgentConfig::from_table_with_instance(own, Path::new("a.toml"), Some(from_metadata)).expect("valid");
        assert_eq!(c.instance.address, "127.0.1.1");
    }
}
