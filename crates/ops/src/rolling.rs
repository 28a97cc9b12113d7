//! Rolling restart (and upgrade) of an ensemble through its agents' APIs: every server restarted
//! one at a time, observers first, then followers, the leader last (so the ensemble elects a new
//! leader once, at the end), by `POST /restart-server` to its agent. After each step it waits
//! until the whole ensemble is back: the restarted server serves in its role, every member
//! serves, the leader's synced learner count is what it was. It aborts, restarting nothing else,
//! if the ensemble does not come back; progress is kept in a file (`DIR/rolling-restart.json`
//! for a local group), so a rerun after a crash (of this command or of an agent) resumes with the
//! servers not yet restarted.
//!
//! The ensemble is seen through a [`Source`]: a local group's directory, or any ensemble's agents
//! named by their API addresses (AWS or elsewhere: only the agents' `GET /status` and
//! `POST /restart-server` are used, so the backend does not matter).
//!
//! With an install it is a rolling upgrade: each server restarts on that ZooKeeper install (each
//! agent checks it and refuses a downgrade: `zkpilot_core::version::choose_install`); a server
//! that does not come back on it is restarted on its old install and the upgrade stops there,
//! the rest untouched. For a local group, once the first server serves on the new install, new
//! instances launch on it too. At the end every member must report the new release. Static
//! zoo.cfg settings go the same way as a plain restart: change the agent config, then run this.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use zkpilot_core::rollout::restart_order;
use zkpilot_core::{Role, ServerId};
use zkpilot_runtime::status::AgentStatus;
use zkpilot_runtime::view::ClusterView;

use crate::local::agent_config::api_token_path;
use crate::local::error::GroupError;
use crate::local::view;
use crate::progress::{Progress, Sink};

/// A rolling restart that stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RollingError {
    /// Observing the local group failed.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// An agent named with `--agents` did not answer `GET /status`.
    #[error("agent {api}: GET /status")]
    Agent {
        /// Its API address.
        api: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// `--agents` names no agent, or none of a member's.
    #[error("{0}")]
    Agents(String),
    /// The ensemble was not healthy to begin with.
    #[error("the ensemble must be healthy before a rolling restart: {0}")]
    NotHealthy(String),
    /// The API token cannot be read.
    #[error("the API token {}", .0.display())]
    Token(PathBuf, #[source] std::io::Error),
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
    #[error("server {id}'s agent refused the restart: {status}: {body}")]
    Refused {
        /// The server.
        id: ServerId,
        /// The answer.
        status: reqwest::StatusCode,
        /// Its text.
        body: String,
    },
    /// The new install cannot be used.
    #[error("--zookeeper {}", .0.display())]
    Install(PathBuf, #[source] zkpilot_zk::InstallError),
    /// The new install is older than what a member runs.
    #[error(
        "--zookeeper {home}: {target} is older than {running}, which server {id} runs; downgrades are refused and nothing was restarted",
        home = .home.display()
    )]
    Downgrade {
        /// The install asked for.
        home: PathBuf,
        /// Its release.
        target: String,
        /// A member running a newer one.
        id: ServerId,
        /// Its release.
        running: String,
    },
    /// A resumed restart was given another install than the one it began with.
    #[error("this rolling restart began with --zookeeper {}; resume it with the same (or remove {})", .began.as_ref().map_or("(none)".to_string(), |p| p.display().to_string()), .progress.display())]
    OtherInstall {
        /// The install it began with.
        began: Option<PathBuf>,
        /// The progress file.
        progress: PathBuf,
    },
    /// A server came back, but not on the new release.
    #[error("server {id} is back on ZooKeeper {running:?}, not {target}; aborting, nothing else is restarted")]
    NotUpgraded {
        /// The server.
        id: ServerId,
        /// What it reports.
        running: Option<String>,
        /// The release asked for.
        target: String,
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
    /// A rolling upgrade's install.
    #[serde(default)]
    install: Option<PathBuf>,
}

/// Where the ensemble is seen from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A local group's directory (its API token is `DIR/api-token`).
    Local(PathBuf),
    /// The agents of any ensemble, by API address (`host:port`), with the bearer token's file.
    Agents {
        /// Every member's agent.
        apis: Vec<String>,
        /// The file holding the API token (first line).
        token_file: PathBuf,
        /// Where progress is kept (`None`: not resumable).
        progress: Option<PathBuf>,
    },
}

/// One member as a rolling restart sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenMember {
    /// Server id.
    pub id: ServerId,
    /// `leader`, `follower` or `observer`.
    pub role: String,
    /// It serves.
    pub serving: bool,
    /// Its agent's API.
    pub api: Option<String>,
    /// The ZooKeeper release it runs.
    pub version: Option<String>,
}

/// The ensemble between two steps.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Every member.
    pub members: Vec<SeenMember>,
    /// Whole: every member serves in its role under one leader (for a local group: converged).
    pub whole: bool,
    /// Why not.
    pub why: Vec<String>,
    /// The leader's synced learners.
    pub synced: Option<u64>,
}

impl Source {
    fn token_file(&self) -> Result<PathBuf, RollingError> {
        Ok(match self {
            Source::Local(dir) => api_token_path(&zkpilot_local::StateDir::open(dir).map_err(GroupError::from)?),
            Source::Agents { token_file, .. } => token_file.clone(),
        })
    }

    fn progress_file(&self) -> Option<PathBuf> {
        match self {
            Source::Local(dir) => Some(dir.join("rolling-restart.json")),
            Source::Agents { progress, .. } => progress.clone(),
        }
    }

    /// The ensemble now.
    pub async fn seen(&self, client: &reqwest::Client) -> Result<Seen, RollingError> {
        match self {
            Source::Local(dir) => Ok(from_view(&view::cluster_view(dir).await?)),
            Source::Agents { apis, .. } => {
                let gets = apis.iter().map(|api| async move {
                    let r = client.get(format!("http://{api}/status")).timeout(Duration::from_secs(3)).send().await;
                    let s = match r {
                        Ok(r) => r.json::<AgentStatus>().await,
                        Err(e) => Err(e),
                    };
                    (api.clone(), s)
                });
                let answers = futures::future::join_all(gets).await;
                Ok(from_statuses(&answers))
            }
        }
    }
}

/// A local group's view: what `local status` shows.
fn from_view(v: &ClusterView) -> Seen {
    Seen {
        members: v
            .members
            .iter()
            .map(|m| SeenMember {
                id: m.id,
                role: m.role.clone(),
                serving: m.mode.is_serving(),
                api: m.api.clone(),
                version: m.version.clone(),
            })
            .collect(),
        whole: v.converged,
        why: v.not_converged.clone(),
        synced: v.synced_learners,
    }
}

/// The agents' own statuses: each speaks for its server. Whole when every agent answered, every
/// member of the committed config has one of them, all serve and agree on one leader and one
/// config version.
pub fn from_statuses(answers: &[(String, Result<AgentStatus, reqwest::Error>)]) -> Seen {
    let mut seen = Seen::default();
    let ok: Vec<(&String, &AgentStatus)> = answers
        .iter()
        .filter_map(|(api, r)| match r {
            Ok(s) => Some((api, s)),
            Err(e) => {
                seen.why.push(format!("agent {api}: {e}"));
                None
            }
        })
        .collect();
    let leaders: std::collections::BTreeSet<ServerId> = ok.iter().filter_map(|(_, s)| s.leader).collect();
    let versions: std::collections::BTreeSet<&str> =
        ok.iter().filter_map(|(_, s)| s.config_version.as_deref()).collect();
    if leaders.len() != 1 {
        seen.why.push(format!("the agents see {} leaders", leaders.len()));
    }
    if versions.len() != 1 {
        seen.why.push(format!("the agents see {} config versions", versions.len()));
    }
    let leader = leaders.iter().next().copied();
    for (api, s) in &ok {
        let Some(id) = s.server_id else {
            seen.why.push(format!("agent {api} has no server"));
            continue;
        };
        let serving = s.mode.is_some_and(|m| m.is_serving());
        if !serving {
            seen.why.push(format!("server {id} is {:?}", s.mode));
        }
        let role = if Some(id) == leader {
            "leader"
        } else if s.role == Some(Role::Observer) {
            "observer"
        } else {
            "follower"
        };
        seen.members.push(SeenMember {
            id,
            role: role.into(),
            serving,
            api: Some((*api).clone()),
            version: s.release.as_ref().and_then(|r| r.version.clone()),
        });
        if Some(id) == leader {
            seen.synced = s.server.as_ref().and_then(|d| d.synced_learners());
        }
    }
    // Every member of the committed config must be one of the agents named.
    if let Some((_, s)) = ok.iter().find(|(_, s)| s.server_id == leader) {
        for line in &s.members {
            if line.role != "-" && !seen.members.iter().any(|m| m.id == line.id) {
                seen.why.push(format!("server {} has no agent among --agents", line.id));
            }
        }
    }
    seen.whole = seen.why.is_empty() && !seen.members.is_empty();
    seen
}

/// A rolling upgrade's target.
struct Target {
    home: PathBuf,
    version: String,
}

/// Checks the new install and that no member runs a newer release (nothing is touched yet). The
/// install is checked here, on this machine, for a local group; an agent checks it again on its
/// own machine (the only check for a remote one, whose path need not exist here).
fn upgrade_target(source: &Source, home: &Path, seen: &Seen) -> Result<Target, RollingError> {
    let version = match (source, zkpilot_zk::Install::detect(home, None)) {
        (_, Ok(i)) => i.version.unwrap_or_default(),
        (Source::Local(_), Err(e)) => return Err(RollingError::Install(home.to_path_buf(), e)),
        // Remote: the release is in the home's name by convention (`zookeeper-3.9.5`), else
        // unknown until the first agent reports it.
        (Source::Agents { .. }, Err(_)) => home
            .file_name()
            .map(|n| n.to_string_lossy().rsplit('-').next().unwrap_or_default().to_string())
            .unwrap_or_default(),
    };
    let running = seen.members.iter().filter_map(|m| Some((m.id, m.version.as_deref()?)));
    if let Some((id, newer)) = zkpilot_core::version::runs_newer(&version, running) {
        return Err(RollingError::Downgrade { home: home.to_path_buf(), target: version, id, running: newer.into() });
    }
    Ok(Target { home: home.to_path_buf(), version })
}

/// Observers, then followers, then the leader (`zkpilot_core::rollout::restart_order`).
fn order(seen: &Seen) -> Vec<ServerId> {
    let members: Vec<(ServerId, Role, bool)> = seen
        .members
        .iter()
        .map(|m| {
            let role = if m.role == "observer" { Role::Observer } else { Role::Participant };
            (m.id, role, m.role == "leader")
        })
        .collect();
    restart_order(&members)
}

/// Polls until the ensemble is whole; reports each new reason it is not.
async fn wait_whole(
    source: &Source,
    client: &reqwest::Client,
    limit: Duration,
    progress: &mut Sink<'_>,
) -> Result<Seen, String> {
    let start = Instant::now();
    let mut last_why: Vec<String> = Vec::new();
    loop {
        let seen = source.seen(client).await.map_err(|e| e.to_string())?;
        if seen.whole {
            return Ok(seen);
        }
        if seen.why != last_why {
            progress(Progress::Waiting { elapsed: start.elapsed(), why: &seen.why });
            last_why = seen.why.clone();
        }
        if start.elapsed() > limit {
            return Err(seen.why.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_back(
    source: &Source,
    client: &reqwest::Client,
    id: ServerId,
    synced_before: Option<u64>,
    limit: Duration,
) -> Result<Duration, RollingError> {
    let start = Instant::now();
    loop {
        let seen = source.seen(client).await?;
        let back = seen.whole
            && seen.members.iter().any(|m| m.id == id && m.serving)
            && synced_before.is_none_or(|b| seen.synced.is_some_and(|s| s >= b));
        if back {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            let last = if seen.whole {
                format!("leader reports {:?} synced learners, was {synced_before:?}", seen.synced)
            } else {
                seen.why.join("; ")
            };
            return Err(RollingError::NotBack { id, limit, last });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs (or resumes) a rolling restart, or with `install` a rolling upgrade; reports one
/// [`Progress::Restarted`] per step. `timeout` bounds each step (and the wait for a whole
/// ensemble before it).
pub async fn rolling_restart(
    source: &Source,
    timeout: Duration,
    install: Option<&Path>,
    progress: &mut Sink<'_>,
) -> Result<(), RollingError> {
    let token_file = source.token_file()?;
    let token = std::fs::read_to_string(&token_file)
        .map_err(|e| RollingError::Token(token_file.clone(), e))?
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let path = source.progress_file();
    let mut saved: Saved = match path.as_ref().map(std::fs::read_to_string) {
        Some(Ok(t)) => {
            serde_json::from_str(&t).map_err(|e| RollingError::Progress(path.clone().unwrap_or_default(), e))?
        }
        _ => Saved::default(),
    };
    // A local group whose servers run as their own uids cannot read an install below a private
    // home: they get a copy in the group directory, as at `local up`.
    let staged = match (source, install) {
        (Source::Local(dir), Some(home)) => {
            let group =
                zkpilot_local::StateDir::open(dir).map_err(GroupError::from)?.group().map_err(GroupError::from)?;
            match zkpilot_zk::Install::detect(home, None) {
                Ok(i) if group.separate_uids => Some(crate::local::up::readable_install(&i, home, dir, progress)?),
                _ => None,
            }
        }
        _ => None,
    };
    let install = staged.as_deref().or(install);
    if !saved.order.is_empty() && saved.install.as_deref() != install {
        return Err(RollingError::OtherInstall { began: saved.install.clone(), progress: path.unwrap_or_default() });
    }
    let client = reqwest::Client::new();
    let seen = wait_whole(source, &client, timeout, progress).await.map_err(RollingError::NotHealthy)?;
    let target = install.map(|home| upgrade_target(source, home, &seen)).transpose()?;
    if let Some(t) = &target {
        let mut from: Vec<String> = seen.members.iter().filter_map(|m| m.version.clone()).collect();
        from.sort();
        from.dedup();
        progress(Progress::Upgrading { from: &from, to: &t.version, home: &t.home });
    }
    if saved.order.is_empty() {
        saved.order = order(&seen);
        saved.install = install.map(Path::to_path_buf);
    } else {
        progress(Progress::Resuming { done: &saved.done });
    }
    let start = Instant::now();
    // Members that joined during an upgrade (launched before new instances were switched over)
    // are found at the end and upgraded too; one more round at most.
    for round in 0..2 {
        for id in saved.order.clone() {
            if saved.done.contains(&id) {
                continue;
            }
            step(source, &client, &token, id, target.as_ref(), timeout, progress).await?;
            if let (Some(t), Source::Local(dir)) = (&target, source)
                && saved.done.is_empty()
            {
                // The new install started and serves: replacements launch on it from now on.
                let state = zkpilot_local::StateDir::open(dir).map_err(GroupError::from)?;
                state.set_zookeeper_install(&t.home).map_err(GroupError::from)?;
            }
            saved.done.push(id);
            if let Some(p) = &path {
                let json = serde_json::to_vec_pretty(&saved).map_err(|e| RollingError::Progress(p.clone(), e))?;
                std::fs::write(p, json).map_err(|e| RollingError::SaveProgress(p.clone(), e))?;
            }
        }
        let Some(t) = &target else { break };
        let seen = wait_whole(source, &client, timeout, progress).await.map_err(RollingError::NotHealthy)?;
        let behind: Vec<&SeenMember> =
            seen.members.iter().filter(|m| m.version.as_deref() != Some(t.version.as_str())).collect();
        if let Some(m) = behind.first().filter(|_| round == 1) {
            return Err(RollingError::NotUpgraded { id: m.id, running: m.version.clone(), target: t.version.clone() });
        }
        if behind.is_empty() {
            break;
        }
        let ids: Vec<ServerId> = behind.iter().map(|m| m.id).collect();
        saved.done.retain(|d| !ids.contains(d));
        let new: Vec<ServerId> = ids.iter().copied().filter(|b| !saved.order.contains(b)).collect();
        saved.order.extend(new);
    }
    if let Some(p) = &path {
        let _ignored = std::fs::remove_file(p);
    }
    progress(Progress::RollingDone { servers: saved.done.len(), took: start.elapsed() });
    Ok(())
}

/// Asks server `id`'s agent to restart its server (on `install` when upgrading).
async fn ask_restart(
    client: &reqwest::Client,
    token: &str,
    id: ServerId,
    api: &str,
    install: Option<&Path>,
) -> Result<(), RollingError> {
    let mut req =
        client.post(format!("http://{api}/restart-server")).bearer_auth(token).timeout(Duration::from_secs(10));
    if let Some(home) = install {
        req = req.json(&serde_json::json!({ "install": home }));
    }
    let r = req.send().await.map_err(|source| RollingError::Request { id, api: api.to_string(), source })?;
    if !r.status().is_success() {
        let status = r.status();
        let body = r.text().await.unwrap_or_default().trim().to_string();
        return Err(RollingError::Refused { id, status, body });
    }
    Ok(())
}

/// One step: restart `id` and wait until the ensemble is whole again (and, upgrading, the server
/// runs the new release). A server that does not come back on a new install is restarted on its
/// old one (it never served on the new one, so that is no downgrade) before the error returns.
async fn step(
    source: &Source,
    client: &reqwest::Client,
    token: &str,
    id: ServerId,
    target: Option<&Target>,
    timeout: Duration,
    progress: &mut Sink<'_>,
) -> Result<(), RollingError> {
    let seen = wait_whole(source, client, timeout, progress).await.map_err(RollingError::NotHealthy)?;
    let Some(member) = seen.members.iter().find(|m| m.id == id) else {
        // Gone since the order was made (replaced, scaled in): nothing to restart.
        return Ok(());
    };
    if let Some(t) = target
        && member.version.as_deref() == Some(t.version.as_str())
    {
        // Already there (a resumed upgrade, or a replacement launched on the new install).
        return Ok(());
    }
    let api = member.api.clone().ok_or(RollingError::NoApi(id))?;
    let role = member.role.clone();
    // What the leader must have back: its synced learners before the step, but never more than
    // the other members (its status can still count a learner a change just removed).
    let others = seen.members.len().saturating_sub(1) as u64;
    let synced_before = seen.synced.filter(|_| role != "leader").map(|s| s.min(others));
    let t = Instant::now();
    ask_restart(client, token, id, &api, target.map(|t| t.home.as_path())).await?;
    // Seen going down first, so "back" means back after the restart.
    let down_by = Instant::now() + Duration::from_secs(15);
    while Instant::now() < down_by {
        let seen = source.seen(client).await?;
        if seen.members.iter().any(|m| m.id == id && !m.serving) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let back = match wait_back(source, client, id, synced_before, timeout).await {
        Ok(back) => back,
        Err(e) if target.is_some() => {
            let back = ask_restart(client, token, id, &api, None).await.is_ok()
                && wait_back(source, client, id, None, timeout).await.is_ok();
            progress(Progress::RolledBack { id, back });
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    if let Some(t) = target {
        let seen = source.seen(client).await?;
        let running = seen.members.iter().find(|m| m.id == id).and_then(|m| m.version.clone());
        if running.as_deref() != Some(t.version.as_str()) {
            return Err(RollingError::NotUpgraded { id, running, target: t.version.clone() });
        }
    }
    progress(Progress::Restarted { id, role: &role, back, total: t.elapsed() });
    Ok(())
}
