//! Changes to a running local group: scale, kill, terminate, down.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use zkpilot_core::model::{InstanceState, ServerId};
use zkpilot_local::group::{fail_instance, signal_group, zk_pid};
use zkpilot_local::{InstanceRecord, StateDir};

use super::error::GroupError;
use crate::progress::{Progress, Sink};

/// Whether `pid` runs (and is not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|st| st.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"))
        .unwrap_or(false)
}

/// The group's controller pid, if that process runs and is a controller (a stale pid file must
/// never make us signal a recycled pid).
pub(crate) fn controller_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join("controller.pid")).ok()?.trim().parse().ok()?;
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).ok()?).into_owned();
    (alive(pid) && cmdline.contains("controller")).then_some(pid)
}

/// `local scale`: sets the desired number of instances (like SetDesiredCapacity); the group
/// converges on it in its own time ([`super::view::wait_converged`]).
pub fn scale(dir: &Path, size: u32, progress: &mut Sink<'_>) -> Result<(), GroupError> {
    StateDir::open(dir)?.set_desired(size as usize)?;
    progress(Progress::DesiredSet { size });
    Ok(())
}

/// The live instance holding server `id`.
fn holder_of(state: &StateDir, id: ServerId) -> Result<InstanceRecord, GroupError> {
    let slots = state.slots()?.into_iter().map(|(sid, s)| (sid, s.instance));
    let holder = state
        .claims()?
        .into_iter()
        .map(|(sid, c)| (sid, c.instance))
        .chain(slots)
        .find(|(sid, _)| *sid == id)
        .map(|(_, instance)| instance)
        .ok_or(GroupError::NoHolder(id))?;
    let rec =
        state.instances()?.into_iter().find(|r| r.id == holder).ok_or_else(|| GroupError::NoRecord(holder.clone()))?;
    if rec.state == InstanceState::Terminated {
        return Err(GroupError::AlreadyTerminated { instance: holder, id });
    }
    Ok(rec)
}

/// `local kill`: SIGKILL of the instance holding server `id` (agent and ZooKeeper), like an
/// instance failure; the group notices after its health-check delay
/// (`local up --failure-detected-after`) and launches a replacement. With `agent_only` only the agent process
/// dies (its ZooKeeper with it): the instance and its disk stay, and the controller restarts the
/// agent.
pub fn kill(dir: &Path, id: ServerId, agent_only: bool, progress: &mut Sink<'_>) -> Result<InstanceRecord, GroupError> {
    let state = StateDir::open(dir)?;
    let rec = holder_of(&state, id)?;
    let rec = if agent_only {
        let pid = rec.agent_pid.ok_or_else(|| GroupError::NoAgentPid(rec.id.clone()))?;
        // Counted first, so the controller's count of exits never runs ahead of the kills and
        // this exit is never taken for a crash.
        state.update_instance(&rec.id, |r| r.agent_kills += 1)?;
        signal_group(pid, Signal::SIGKILL);
        rec
    } else {
        fail_instance(&state, &rec.id)?
    };
    progress(Progress::Killed { id, instance: &rec, agent_only });
    Ok(rec)
}

/// `local terminate`: a planned replacement, like `TerminateInstanceInAutoScalingGroup` without
/// decrementing the desired capacity. The instance becomes `terminating`, so the group launches a
/// replacement at once; its server keeps serving until the lease holder has swapped the new one
/// in by reconfig, then its agent stops it and the instance goes.
pub fn terminate(dir: &Path, id: ServerId, progress: &mut Sink<'_>) -> Result<InstanceRecord, GroupError> {
    let state = StateDir::open(dir)?;
    let rec = holder_of(&state, id)?;
    if rec.state == InstanceState::Terminating {
        return Err(GroupError::AlreadyTerminating { instance: rec.id, id });
    }
    state.set_state(&rec.id, InstanceState::Terminating)?;
    progress(Progress::Terminating { id, instance: &rec });
    Ok(rec)
}

/// `local down`: stop the controller (which stops every agent, which stops its ZooKeeper), then
/// make sure no process of the group is left. Data stays on disk.
pub async fn down(dir: &Path, progress: &mut Sink<'_>) -> Result<(), GroupError> {
    let state = StateDir::open(dir)?;
    if let Some(pid) = controller_pid(dir) {
        signal_group(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(40);
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if alive(pid) {
            progress(Progress::ControllerKilled { pid });
            signal_group(pid, Signal::SIGKILL);
        }
    }
    let mut left = Vec::new();
    for r in state.instances()? {
        let pids: Vec<u32> = r.agent_pid.into_iter().chain(zk_pid(&state, &r.id)).collect();
        for pid in pids {
            if alive(pid) && is_ours(pid, &state.instance_dir(&r.id)) {
                signal_group(pid, Signal::SIGKILL);
                left.push(pid);
            }
        }
    }
    if !left.is_empty() {
        progress(Progress::LeftoversKilled { pids: &left });
    }
    progress(Progress::Down { dir });
    Ok(())
}

fn is_ours(pid: u32, instance_dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(&*instance_dir.to_string_lossy()))
        .unwrap_or(false)
}
