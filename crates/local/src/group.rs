//! The group controller: the local stand-in for an Auto Scaling group.
//!
//! Every tick it reaps agents that exited, restarts agents that crashed on a live instance (like
//! systemd would), launches instances up to the desired size (a replacement gets a new address and
//! an empty disk), and on scale-in marks instances `terminating` (non-voters first) and lets each
//! agent take its server out of the ensemble before the instance goes, like a lifecycle hook.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use zkpilot_core::model::{InstanceId, InstanceState};
use zkpilot_core::ports::epoch_ms;

use crate::state::{GroupSpec, InstanceRecord, StateDir, StateError};

/// Renders an instance's agent config (TOML). Injected by the binary, which owns the agent's
/// config format, so this crate does not depend on the runtime.
pub type RenderAgentConfig = Box<dyn Fn(&GroupSpec, &InstanceRecord, &StateDir) -> String + Send + Sync>;

/// Highest launch sequence: the last octet of a loopback address.
pub const MAX_SEQ: u32 = 254;

/// With [`GroupSpec::separate_uids`], instance N's agent runs with gid `AGENT_GID_BASE + N` (its
/// uid stays the controller's, which it needs to start ZooKeeper as another uid), so firewall
/// rules can tell its sockets apart too (`meta skgid`) and cut an agent off in a partition.
pub const AGENT_GID_BASE: u32 = 30_000;

/// Signals a process group, ignoring "no such process".
pub fn signal_group(pid: u32, sig: Signal) {
    if let Ok(p) = i32::try_from(pid) {
        let _ignored = killpg(Pid::from_raw(p), sig);
    }
}

/// The pid the agent recorded for its ZooKeeper, if that process still is this instance's
/// ZooKeeper (a stale pid file must never make us signal a recycled pid).
pub fn zk_pid(dir: &StateDir, id: &InstanceId) -> Option<u32> {
    let idir = dir.instance_dir(id);
    let pid: u32 = std::fs::read_to_string(idir.join("zk.pid")).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    (cmdline.contains("QuorumPeerMain") && cmdline.contains(&*idir.to_string_lossy())).then_some(pid)
}

/// Simulates an instance failure as a cloud shows it: the agent and its ZooKeeper are SIGKILLed,
/// and the record only notes when (`failed_ms`). It stays `running` until the controller's
/// health check notices, [`GroupSpec::failure_detected_after_ms`] later, and terminates it; until
/// then the agents face a dead server the group still lists as running.
pub fn fail_instance(dir: &StateDir, id: &InstanceId) -> Result<InstanceRecord, StateError> {
    let no_such = || StateError::Malformed { path: dir.instance_dir(id), why: "no such instance".into() };
    // Noted before the kill, so the controller, which reaps the agent's exit within its next
    // tick, already knows the exit was the failure (an exit it counted before the note would
    // look like an agent crash). The note is the group's own: agents still see `running`.
    let now = epoch_ms();
    let rec = dir
        .update_instance(id, |r| {
            r.failed_ms.get_or_insert(now);
        })?
        .ok_or_else(no_such)?;
    if let Some(pid) = zk_pid(dir, id) {
        signal_group(pid, Signal::SIGKILL);
    }
    if let Some(pid) = rec.agent_pid {
        signal_group(pid, Signal::SIGKILL);
    }
    Ok(rec)
}

/// Terminates an instance at once, the way an Auto Scaling group acts on an instance reported
/// unhealthy: the record becomes `terminated` first (so the controller replaces it rather than
/// restarting its agent), then the agent and its ZooKeeper are SIGKILLed.
pub fn kill_instance(dir: &StateDir, id: &InstanceId) -> Result<InstanceRecord, StateError> {
    let rec = dir
        .set_state(id, InstanceState::Terminated)?
        .ok_or_else(|| StateError::Malformed { path: dir.instance_dir(id), why: "no such instance".into() })?;
    if let Some(pid) = zk_pid(dir, id) {
        signal_group(pid, Signal::SIGKILL);
    }
    if let Some(pid) = rec.agent_pid {
        signal_group(pid, Signal::SIGKILL);
    }
    Ok(rec)
}

/// The controller.
pub struct Controller {
    dir: StateDir,
    render: RenderAgentConfig,
    children: HashMap<InstanceId, Child>,
    restart_at: HashMap<InstanceId, (Instant, u32)>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("dir", &self.dir).field("children", &self.children.len()).finish()
    }
}

impl Controller {
    /// A controller for `dir`.
    pub fn new(dir: StateDir, render: RenderAgentConfig) -> Self {
        Self { dir, render, children: HashMap::new(), restart_at: HashMap::new() }
    }

    /// Runs until `shutdown` resolves, then stops every agent (SIGTERM, grace, SIGKILL).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), StateError> {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.tick() {
                tracing::warn!(error = %e, "controller tick failed");
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        self.stop_all(Duration::from_secs(20)).await;
        Ok(())
    }

    fn tick(&mut self) -> Result<(), StateError> {
        let group = self.dir.group()?;
        self.reap()?;
        // The health check: a failed instance is terminated once the group could have noticed.
        let now = epoch_ms();
        for r in self.dir.instances()? {
            if let Some(failed) = r.failed_ms
                && r.state != InstanceState::Terminated
                && now >= failed + group.failure_detected_after_ms
            {
                tracing::info!(instance = %r.id, "health check: instance failed; terminating");
                self.dir.set_state(&r.id, InstanceState::Terminated)?;
            }
        }
        let records = self.dir.instances()?;
        // Agents that should run but do not: after `local up` on an existing group, or a crash
        // (not on a failed instance: there is nothing left to run them on).
        for r in records.iter().filter(|r| r.state == InstanceState::Running && r.failed_ms.is_none()) {
            if self.children.contains_key(&r.id) {
                continue;
            }
            let due = self.restart_at.get(&r.id).is_none_or(|(at, _)| Instant::now() >= *at);
            if due {
                self.spawn_agent(&group, r)?;
            }
        }
        // Terminating instances whose agent is gone are done.
        for r in records.iter().filter(|r| r.state == InstanceState::Terminating && !self.children.contains_key(&r.id))
        {
            self.dir.set_state(&r.id, InstanceState::Terminated)?;
        }
        let active: Vec<&InstanceRecord> =
            records.iter().filter(|r| matches!(r.state, InstanceState::Pending | InstanceState::Running)).collect();
        if active.len() < group.desired {
            // Slot mode: launch where a slot lost its holder, as an Auto Scaling group rebalancing
            // zones would, so the replacement can take that slot (address and data) over.
            let mut free_zones: std::collections::VecDeque<String> = if group.slot_mode {
                let holder_gone = |i: &InstanceId| {
                    records.iter().find(|r| &r.id == i).is_none_or(|r| r.state == InstanceState::Terminated)
                };
                self.dir.slots()?.into_iter().filter(|(_, s)| holder_gone(&s.instance)).map(|(_, s)| s.zone).collect()
            } else {
                Default::default()
            };
            let first = records.iter().map(|r| r.seq).max().unwrap_or(0) + 1;
            for seq in first..first + (group.desired - active.len()) as u32 {
                if seq > MAX_SEQ {
                    tracing::error!("all {MAX_SEQ} loopback addresses of {} used; no more launches", group.net);
                    break;
                }
                self.launch(&group, seq, free_zones.pop_front())?;
            }
        } else if active.len() > group.desired {
            for victim in self.scale_in_victims(&active, active.len() - group.desired)? {
                tracing::info!(instance = %victim, "scale-in: terminating");
                self.dir.set_state(&victim, InstanceState::Terminating)?;
            }
        }
        Ok(())
    }

    fn reap(&mut self) -> Result<(), StateError> {
        let mut exited = Vec::new();
        for (id, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                exited.push((id.clone(), status));
            }
        }
        for (id, status) in exited {
            self.children.remove(&id);
            let Some(rec) = self.dir.instances()?.into_iter().find(|r| r.id == id) else {
                continue;
            };
            match rec.state {
                InstanceState::Terminated => {}
                InstanceState::Terminating => {
                    self.dir.set_state(&id, InstanceState::Terminated)?;
                }
                InstanceState::Running | InstanceState::Pending if rec.failed_ms.is_some() => {}
                InstanceState::Running | InstanceState::Pending => {
                    self.dir.update_instance(&id, |r| r.agent_exits += 1)?;
                    let (_, n) = self.restart_at.get(&id).copied().unwrap_or((Instant::now(), 0));
                    let delay = Duration::from_millis(500 * (1u64 << n.min(5)));
                    tracing::warn!(instance = %id, %status, ?delay, "agent exited on a live instance; restarting");
                    self.restart_at.insert(id, (Instant::now() + delay, n + 1));
                }
            }
        }
        Ok(())
    }

    /// Non-voters before voters, newest first (the agents publish their role in their status).
    fn scale_in_victims(&self, active: &[&InstanceRecord], n: usize) -> Result<Vec<InstanceId>, StateError> {
        let statuses: HashMap<InstanceId, serde_json::Value> = self.dir.statuses()?.into_iter().collect();
        let is_voter = |id: &InstanceId| {
            statuses.get(id).and_then(|s| s.get("role")).and_then(|r| r.as_str()) == Some("participant")
        };
        let mut v: Vec<&&InstanceRecord> = active.iter().collect();
        v.sort_by_key(|r| (is_voter(&r.id), std::cmp::Reverse(r.seq)));
        Ok(v.into_iter().take(n).map(|r| r.id.clone()).collect())
    }

    fn launch(&mut self, group: &GroupSpec, seq: u32, zone: Option<String>) -> Result<(), StateError> {
        let zone = zone.unwrap_or_else(|| {
            group.zones.get((seq as usize - 1) % group.zones.len().max(1)).cloned().unwrap_or_default()
        });
        let rec = InstanceRecord {
            id: InstanceId(format!("i-{seq:04}")),
            seq,
            address: format!("{}.{seq}", group.net),
            zone,
            state: InstanceState::Running,
            agent_pid: None,
            launched_ms: epoch_ms(),
            failed_ms: None,
            agent_exits: 0,
            agent_kills: 0,
        };
        std::fs::create_dir_all(self.dir.instance_dir(&rec.id))
            .map_err(|e| StateError::Io { path: self.dir.instance_dir(&rec.id), source: e })?;
        self.dir.put_instance(&rec)?;
        tracing::info!(instance = %rec.id, address = %rec.address, zone = %rec.zone, "launched");
        self.spawn_agent(group, &rec)
    }

    fn spawn_agent(&mut self, group: &GroupSpec, rec: &InstanceRecord) -> Result<(), StateError> {
        let idir = self.dir.instance_dir(&rec.id);
        let cfg_path = idir.join("agent.toml");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |e| StateError::Io { path, source: e }
        };
        std::fs::write(&cfg_path, (self.render)(group, rec, &self.dir)).map_err(io(&cfg_path))?;
        let log_path = idir.join("agent.log");
        let open = || std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(io(&log_path));
        let mut cmd = Command::new(&group.agent_exe);
        cmd.arg("agent")
            .arg("--config")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(open()?)
            .stderr(open()?)
            .kill_on_drop(true);
        if group.separate_uids {
            cmd.gid(AGENT_GID_BASE + rec.seq);
        }
        // The agent dies with the controller (and its ZooKeeper with the agent), so killing the
        // controller can never leave a group behind.
        zkpilot_supervisor::own_group_dies_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(io(&group.agent_exe))?;
        // Only the pid changes, on the record as it is now: `local kill` may have failed or
        // terminated the instance meanwhile.
        let pid = child.id();
        self.dir.update_instance(&rec.id, |r| r.agent_pid = pid)?;
        self.children.insert(rec.id.clone(), child);
        Ok(())
    }

    async fn stop_all(&mut self, grace: Duration) {
        for child in self.children.values() {
            if let Some(pid) = child.id() {
                signal_group(pid, Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        for (id, child) in &mut self.children {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, child.wait()).await.is_err() {
                tracing::warn!(instance = %id, "agent ignored SIGTERM; killing its group");
                if let Some(pid) = child.id() {
                    signal_group(pid, Signal::SIGKILL);
                }
                let _ignored = child.wait().await;
            }
            if let Some(zk) = zk_pid(&self.dir, id) {
                signal_group(zk, Signal::SIGKILL);
            }
        }
        self.children.clear();
    }
}
