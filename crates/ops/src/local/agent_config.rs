//! The agent config of each instance of a local group (the controller writes one per instance
//! before it launches `zkpilot agent --config`).

use std::path::PathBuf;

use zkpilot_local::{GroupSpec, InstanceRecord, StateDir};
use zkpilot_runtime::AgentConfig;
use zkpilot_runtime::config::{
    AgentSection, ApiSection, BackendSection, BackupSection, ClusterSection, IdentityMode, InstanceSection,
    LogsSection, NamesSection, RecoverySection, ServerSection, TlsSection,
};

use super::view::group_policy;

/// Instance N's ZooKeeper runs as uid `SEPARATE_UID_BASE + N` with `separate_uids`.
pub const SEPARATE_UID_BASE: u32 = 20_000;

/// Port of each local agent's HTTP API, on its instance's address.
pub const API_PORT: u16 = 9181;

/// The secure client port of every local server, on its instance's address.
pub const SECURE_CLIENT_PORT: u16 = 2281;

/// The local group's CA certificate (the trust bundle clients are given).
pub fn tls_ca_path(state: &StateDir) -> PathBuf {
    state.root().join("tls").join("ca.pem")
}

/// The local group's CA key (0600): the local backend's secret store.
pub fn tls_ca_key_path(state: &StateDir) -> PathBuf {
    state.root().join("tls").join("ca.key")
}

/// The bearer token of every agent's API in a local group (0600).
pub fn api_token_path(state: &StateDir) -> PathBuf {
    state.root().join("api-token")
}

/// The agent config (TOML) of one local instance.
pub fn render_agent_config(group: &GroupSpec, rec: &InstanceRecord, state: &StateDir) -> String {
    let cfg = AgentConfig {
        instance: InstanceSection { id: rec.id.clone(), address: rec.address.clone(), zone: rec.zone.clone() },
        server: ServerSection {
            base_dir: state.instance_dir(&rec.id).join("zk"),
            install: group.zookeeper_install.clone(),
            java: group.java.clone(),
            heap_mb: group.heap_mb,
            tick_time_ms: group.tick_time_ms,
            init_limit: 10,
            sync_limit: 5,
            client_port: 2181,
            quorum_port: 2888,
            election_port: 3888,
            admin_port: 8080,
            run_as_uid: group.separate_uids.then_some(SEPARATE_UID_BASE + rec.seq),
            learner_sync: group.learner_sync,
        },
        cluster: ClusterSection {
            secret_file: state.secret_path(),
            identity: if group.slot_mode { IdentityMode::Slot } else { IdentityMode::Elastic },
        },
        policy: group_policy(group),
        backend: BackendSection::Local { dir: state.root().to_path_buf() },
        agent: AgentSection::default(),
        names: group.names_domain.as_ref().map(|domain| NamesSection {
            domain: domain.clone(),
            hosts_file: Some(state.root().join("hosts")),
            route53_zone: None,
        }),
        recovery: RecoverySection { quorum_loss_after_ms: group.quorum_loss_after_ms, ..RecoverySection::default() },
        api: format!("{}:{API_PORT}", rec.address)
            .parse()
            .ok()
            .map(|listen| ApiSection { listen, token_file: Some(api_token_path(state)) }),
        backup: BackupSection { interval_ms: group.backup_interval_ms, ..BackupSection::default() },
        // The controller sends the agent's stdout and stderr there.
        logs: LogsSection { ship: true, agent_log: Some(state.instance_dir(&rec.id).join("agent.log")) },
        tls: group.tls.then(|| TlsSection {
            quorum: true,
            client: true,
            secure_client_port: SECURE_CLIENT_PORT,
            ca_file: tls_ca_path(state),
            ca_key_file: tls_ca_key_path(state),
            cert_lifetime_s: group.cert_lifetime_s,
            // On loopback every connection leaves from 127.0.0.1 (the kernel's source address for
            // the 127/8 local route), and ZooKeeper checks a connecting quorum peer's certificate
            // against its source address.
            also_valid_for: vec![std::net::Ipv4Addr::LOCALHOST.into()],
            client_auth: Default::default(),
        }),
    };
    toml::to_string(&cfg).unwrap_or_else(|e| format!("# cannot render agent config: {e}\n"))
}
