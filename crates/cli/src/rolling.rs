//! `zkpilot rolling-restart --dir DIR`: restarts every server of a local group one at a time,
//! observers first, then followers, the leader last (reference/zookeeper-reconfig.md §4.1), through
//! each agent's API (`POST /restart-server`). After each step it waits until the whole ensemble is
//! back: the restarted server serves in its role, every member serves, the leader's synced
//! follower count is what it was. It aborts, restarting nothing else, if the ensemble does not
//! come back; progress is kept in `DIR/rolling-restart.json`, so a rerun after a crash (of this
//! command or of an agent) resumes with the servers not yet restarted.
//!
//! Static settings and ZooKeeper upgrades go the same way: change the agent config or the
//! installed package on every instance, then run this; each agent starts its server with the new
//! settings on its step.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use zkpilot_core::rollout::restart_order;
use zkpilot_core::{Role, ServerId};

use crate::local::{self, ClusterView};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    order: Vec<ServerId>,
    done: Vec<ServerId>,
}

fn progress_path(dir: &Path) -> std::path::PathBuf {
    dir.join("rolling-restart.json")
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

async fn wait_back(dir: &Path, id: ServerId, synced_before: Option<u64>, limit: Duration) -> anyhow::Result<f64> {
    let start = Instant::now();
    loop {
        let v = local::cluster_view(dir).await?;
        let synced = synced_followers(dir, &v);
        let back = v.converged
            && v.members.iter().any(|m| m.id == id && m.mode.is_serving())
            && synced_before.is_none_or(|b| synced.is_some_and(|s| s >= b));
        if back {
            return Ok(start.elapsed().as_secs_f64());
        }
        let last = if v.converged {
            format!("leader reports {synced:?} synced learners, was {synced_before:?}")
        } else {
            v.not_converged.join("; ")
        };
        if start.elapsed() > limit {
            bail!(
                "server {id} restarted but the ensemble is not back after {}s ({last}); aborting, nothing else is restarted. \
                 Rerun `zkpilot rolling-restart` to resume once it is healthy",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs (or resumes) a rolling restart; prints one line per step.
pub async fn run(dir: &Path, timeout: Duration) -> anyhow::Result<()> {
    let state = zkpilot_local::StateDir::open(dir)?;
    let token =
        std::fs::read_to_string(local::api_token_path(&state)).context("the group's api-token")?.trim().to_string();
    let path = progress_path(dir);
    let mut progress: Progress = match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).with_context(|| format!("{}: malformed", path.display()))?,
        Err(_) => Progress::default(),
    };
    let v =
        local::wait_converged(dir, timeout).await.context("the ensemble must be healthy before a rolling restart")?;
    if progress.order.is_empty() {
        progress.order = order(&v);
    } else {
        eprintln!("resuming: already restarted {:?}", progress.done.iter().map(|i| i.0).collect::<Vec<_>>());
    }
    let client = reqwest::Client::new();
    let start = Instant::now();
    for id in progress.order.clone() {
        if progress.done.contains(&id) {
            continue;
        }
        let v = local::wait_converged(dir, timeout).await?;
        let Some(member) = v.members.iter().find(|m| m.id == id) else {
            // Gone since the order was made (replaced, scaled in): nothing to restart.
            progress.done.push(id);
            continue;
        };
        let api = member.api.clone().with_context(|| format!("server {id}'s agent publishes no API address"))?;
        let role = member.role.clone();
        let synced_before = synced_followers(dir, &v).filter(|_| role != "leader");
        let t = Instant::now();
        let r = client
            .post(format!("http://{api}/restart-server"))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("asking server {id}'s agent ({api}) to restart"))?;
        if !r.status().is_success() {
            bail!("server {id}'s agent refused the restart: {}", r.status());
        }
        // Seen going down first, so "back" means back after the restart.
        let down_by = Instant::now() + Duration::from_secs(15);
        while Instant::now() < down_by {
            let v = local::cluster_view(dir).await?;
            if v.members.iter().any(|m| m.id == id && !m.mode.is_serving()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = wait_back(dir, id, synced_before, timeout).await?;
        println!(
            "restarted server {id} ({role}): back in {took:.1}s ({:.1}s with the restart itself)",
            t.elapsed().as_secs_f64()
        );
        progress.done.push(id);
        std::fs::write(&path, serde_json::to_vec_pretty(&progress)?).with_context(|| path.display().to_string())?;
    }
    let _ignored = std::fs::remove_file(&path);
    println!("rolling restart done: {} servers in {:.1}s", progress.order.len(), start.elapsed().as_secs_f64());
    Ok(())
}
