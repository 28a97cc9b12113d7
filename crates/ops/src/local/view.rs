//! The group as an operator sees it: one observation joined with the agents' statuses
//! (`zkpilot_runtime::view`), and waits on it.

use std::path::Path;
use std::time::{Duration, Instant};

use zkpilot_core::Policy;
use zkpilot_core::ports::{Coordination as _, OperatorSettings};
use zkpilot_local::{GroupSpec, LocalBackend};
use zkpilot_runtime::status::AgentStatus;
use zkpilot_runtime::view::{self, ClusterView};
use zkpilot_zk::{Secret, ZkClient};

use super::error::GroupError;
use crate::progress::{Progress, Sink};

/// The policy the group's agents are configured with (what their agent configs say).
pub fn group_policy(group: &GroupSpec) -> Policy {
    Policy {
        target_voters: group.target_voters,
        min_voters: group.min_voters,
        unhealthy_after_ms: group.unhealthy_after_ms,
        ..Default::default()
    }
}

/// The policy in force: the group's, with the operator's voter target (`POST /target-voters`) if
/// one is set, as every agent applies it.
pub fn effective_policy(group: &GroupSpec, operator: Option<&OperatorSettings>) -> Policy {
    let configured = group_policy(group);
    match operator {
        Some(o) => zkpilot_core::agent::policy_in_force(&configured, o),
        None => configured,
    }
}

/// The ZooKeeper client of a group's agents (the group's superuser secret).
pub(crate) fn group_client(backend: &LocalBackend) -> Result<ZkClient, GroupError> {
    let path = backend.state().secret_path();
    let secret = Secret::from_file(&path).map_err(|e| GroupError::Secret { path, reason: e.to_string() })?;
    Ok(match group_tls(backend.state())? {
        Some(tls) => ZkClient::new(secret).with_tls(tls),
        None => ZkClient::new(secret),
    })
}

/// With TLS, how the group's tools reach the secure port (as the agents do: the superuser
/// digest never crosses in clear).
pub fn group_tls(state: &zkpilot_local::StateDir) -> Result<Option<zkpilot_zk::ClientTls>, GroupError> {
    Ok(state.group()?.tls.then(|| zkpilot_zk::ClientTls {
        secure_port: super::agent_config::SECURE_CLIENT_PORT,
        ca_file: super::agent_config::tls_ca_path(state),
        ca_key_file: super::agent_config::tls_ca_key_path(state),
        identity: "zkpilot local tools".into(),
    }))
}

/// Observes the group once, exactly as its agents do, and joins the agents' statuses.
pub async fn cluster_view(dir: &Path) -> Result<ClusterView, GroupError> {
    let backend = LocalBackend::open(dir)?;
    let group = backend.state().group()?;
    let zk = group_client(&backend)?;
    let obs = zkpilot_runtime::observe::Observer::default()
        .observe(&backend, &zk, 2181, zkpilot_core::ports::epoch_ms())
        .await;
    let operator = backend.operator_settings().await?;
    let policy = effective_policy(&group, operator.as_ref());
    let statuses: Vec<AgentStatus> =
        backend.state().statuses()?.into_iter().filter_map(|(_, v)| serde_json::from_value(v).ok()).collect();
    let mut v = view::build(&obs, &statuses, group.desired, policy.target_voters);
    // Probed where the observation probed them: the instance's address (a name in the server line
    // resolves only through the group's hosts file), else the config's client address.
    let targets: Vec<String> = v
        .members
        .iter()
        .map(|m| {
            m.instance
                .as_ref()
                .and_then(|id| v.instances.iter().find(|i| &i.id == id))
                .map_or_else(|| m.client_address.clone(), |i| format!("{}:2181", i.address))
        })
        .collect();
    let versions = futures::future::join_all(targets.iter().map(|a| zkpilot_zk::probe::version(a))).await;
    for (m, version) in v.members.iter_mut().zip(versions) {
        m.version = version;
    }
    if let Some(tls) = group_tls(backend.state())? {
        v.secure_connect_string = v.connect_string.as_deref().map(|c| tls.secure_connect_string(c));
        v.ca_file = Some(tls.ca_file.display().to_string());
    }
    Ok(v)
}

/// Polls the group until it is converged; reports each new reason it is not, and the end.
pub async fn wait_converged(dir: &Path, timeout: Duration, progress: &mut Sink<'_>) -> Result<ClusterView, GroupError> {
    let start = Instant::now();
    let mut last: Vec<String> = Vec::new();
    loop {
        let v = cluster_view(dir).await?;
        if v.converged {
            progress(Progress::Converged { elapsed: start.elapsed(), view: &v });
            return Ok(v);
        }
        if v.not_converged != last {
            progress(Progress::Waiting { elapsed: start.elapsed(), why: &v.not_converged });
            last = v.not_converged.clone();
        }
        if start.elapsed() > timeout {
            return Err(GroupError::NotConverged { waited: timeout, why: v.not_converged });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the group (every 100 ms) until `pred` holds; `what` names the condition in the error.
pub async fn wait_until(
    dir: &Path,
    what: &str,
    limit: Duration,
    pred: impl Fn(&ClusterView) -> bool,
) -> Result<ClusterView, GroupError> {
    let start = Instant::now();
    loop {
        let v = cluster_view(dir).await?;
        if pred(&v) {
            return Ok(v);
        }
        if start.elapsed() > limit {
            return Err(GroupError::NotReached { what: what.to_string(), waited: limit, why: v.not_converged });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
