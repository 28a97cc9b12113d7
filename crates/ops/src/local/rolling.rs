//! Rolling restart of a local group: every server restarted one at a time, observers first, then
//! followers, the leader last (so the ensemble elects a new leader once, at the end), through
//! each agent's API (`POST /restart-server`). After each step it waits until the whole ensemble
//! is back: the restarted server serves in its role, every member serves, the leader's synced
//! learner count is what it was. It aborts, restarting nothing else, if the ensemble does not
//! come back; progress is kept in `DIR/rolling-restart.json`, so a rerun after a crash (of this
//! command or of an agent) resumes with the servers not yet restarted.
//!
//! Static zoo.cfg settings and ZooKeeper upgrades go the same way: change the agent config or the
//! installed package on every instance, then run this; each agent starts its server with the new
//! settings on its step.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use zkpilot_core::rollout::restart_order;
use zkpilot_core::{Role, ServerId};
use zkpilot_runtime::view::ClusterView;

use super::agent_config::api_token_path;
use super::error::GroupError;
use super::view;
use crate::progress::{Progress, Sink};

/// A rolling restart that stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RollingError {
    /// Observing the group failed.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The ensemble was not healthy to begin with.
    #[error("the ensemble must be healthy before a rolling restart")]
    NotHealthy(#[source] GroupError),
    /// The group's API token cannot be read.
    #[error("the group's api-token")]
    Token(#[source] std::io::Error),
    /// The progress file does not parse.
    #[error("{0}: malformed")]
    Progress(PathBuf, #[source] serde_json::Error),
    /// The progress file cannot be written.
    #[error("{0}")]
    SaveProgress(PathBuf, #[source] std::io::Error),
    /// A member's agent publishes no API address.
    #[error("server {0}'s agent publishes no API address")]
    NoApi(ServerId),
    /// The restart request did not get through.
    #[error("asking server {id}'s agent ({api}) to restart")]
    Request {
        /// The server.
        id: ServerId,
        /// Its agent's API.
        api: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The agent answered with an error.
    #[error("server {id}'s agent refused the restart: {status}")]
    Refused {
        /// The server.
        id: ServerId,
        /// The answer.
        status: reqwest::StatusCode,
    },
    /// The ensemble did not come back after a step; nothing else was restarted.
    #[error(
        "server {id} restarted but the ensemble is not back after {}s ({last}); aborting, nothing else is restarted. \
         Rerun `zkpilot rolling-restart` to resume once it is healthy",
        .limit.as_secs()
    )]
    NotBack {
        /// The server.
        id: ServerId,
        /// The step's limit.
        limit: Duration,
        /// What was missing at the end.
        last: String,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    order: Vec<ServerId>,
    done: Vec<ServerId>,
}

/// Observers, then followers, then the leader (`zkpilot_core::rollout::restart_order`).
fn order(v: &ClusterView) -> Vec<ServerId> {
    let members: Vec<(ServerId, Role, bool)> = v
        .members
        .iter()
        .map(|m| {
            let role = if m.role == "observer" { Role::Observer } else { Role::Participant };
            (m.id, role, m.role == "leader")
        })
        .collect();
    restart_order(&members)
}

/// The leader's synced learners (followers, voting or not, and observers), from its agent's
/// status.
fn synced_followers(dir: &Path, v: &ClusterView) -> Option<u64> {
    let leader = v.leader?;
    let instance = v.members.iter().find(|m| m.id == leader)?.instance.clone()?;
    let text = std::fs::read_to_string(dir.join("status").join(format!("{instance}.json"))).ok()?;
    let s: serde_json::Value = serde_json::from_str(&text).ok()?;
    // Every synced learner: a joiner counted as a (non-voting) follower when the step began may be
    // an observer by the time it ends, and must not look like a lost follower. ZooKeeper's
    // `synced_followers` already includes the non-voting ones.
    let server = &s["server"];
    Some(server["synced_followers"].as_u64()? + server["synced_observers"].as_u64().unwrap_or(0))
}

async fn wait_back(
    dir: &Path,
    id: ServerId,
    synced_before: Option<u64>,
    limit: Duration,
) -> Result<Duration, RollingError> {
    let start = Instant::now();
    loop {
        let v = view::cluster_view(dir).await?;
        let synced = synced_followers(dir, &v);
        let back = v.converged
            && v.members.iter().any(|m| m.id == id && m.mode.is_serving())
            && synced_before.is_none_or(|b| synced.is_some_and(|s| s >= b));
        if back {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            let last = if v.converged {
                format!("leader reports {synced:?} synced learners, was {synced_before:?}")
            } else {
                v.not_converged.join("; ")
            };
            return Err(RollingError::NotBack { id, limit, last });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs (or resumes) a rolling restart; reports one [`Progress::Restarted`] per step. `timeout`
/// bounds each step (and the wait for a healthy ensemble before it).
pub async fn rolling_restart(dir: &Path, timeout: Duration, progress: &mut Sink<'_>) -> Result<(), RollingError> {
    let state = zkpilot_local::StateDir::open(dir).map_err(GroupError::from)?;
    let token = std::fs::read_to_string(api_token_path(&state)).map_err(RollingError::Token)?.trim().to_string();
    let path = dir.join("rolling-restart.json");
    let mut saved: Saved = match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| RollingError::Progress(path.clone(), e))?,
        Err(_) => Saved::default(),
    };
    let v = view::wait_converged(dir, timeout, progress).await.map_err(RollingError::NotHealthy)?;
    if saved.order.is_empty() {
        saved.order = order(&v);
    } else {
        progress(Progress::Resuming { done: &saved.done });
    }
    let client = reqwest::Client::new();
    let start = Instant::now();
    for id in saved.order.clone() {
        if saved.done.contains(&id) {
            continue;
        }
        let v = view::wait_converged(dir, timeout, progress).await?;
        let Some(member) = v.members.iter().find(|m| m.id == id) else {
            // Gone since the order was made (replaced, scaled in): nothing to restart.
            saved.done.push(id);
            continue;
        };
        let api = member.api.clone().ok_or(RollingError::NoApi(id))?;
        let role = member.role.clone();
        let synced_before = synced_followers(dir, &v).filter(|_| role != "leader");
        let t = Instant::now();
        let r = client
            .post(format!("http://{api}/restart-server"))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|source| RollingError::Request { id, api: api.clone(), source })?;
        if !r.status().is_success() {
            return Err(RollingError::Refused { id, status: r.status() });
        }
        // Seen going down first, so "back" means back after the restart.
        let down_by = Instant::now() + Duration::from_secs(15);
        while Instant::now() < down_by {
            let v = view::cluster_view(dir).await?;
            if v.members.iter().any(|m| m.id == id && !m.mode.is_serving()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let back = wait_back(dir, id, synced_before, timeout).await?;
        progress(Progress::Restarted { id, role: &role, back, total: t.elapsed() });
        saved.done.push(id);
        let json = serde_json::to_vec_pretty(&saved).map_err(|e| RollingError::Progress(path.clone(), e))?;
        std::fs::write(&path, json).map_err(|e| RollingError::SaveProgress(path.clone(), e))?;
    }
    let _ignored = std::fs::remove_file(&path);
    progress(Progress::RollingDone { servers: saved.order.len(), took: start.elapsed() });
    Ok(())
}
