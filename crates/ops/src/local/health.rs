//! Whether the group's agents stayed healthy: no panic, no exit nobody caused, no plan refused
//! by the safety check. Chaos and the end-to-end tests fail on any of these: an agent that panics
//! is restarted by the controller and the ensemble may well heal, so only this check notices.

use std::path::Path;

use serde::Serialize;
use zkpilot_core::model::InstanceId;
use zkpilot_local::StateDir;

use super::error::GroupError;

/// What went wrong with the agents over the group's life (every instance, terminated ones too).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentHealth {
    /// `instance: line` for every panic message in an agent's log.
    pub panics: Vec<String>,
    /// Instances whose agent exited while the instance was live, more often than it was killed
    /// on purpose (`local kill --agent-only`), and how often.
    pub unexpected_exits: Vec<(InstanceId, u32)>,
    /// Plans the agents refused for breaking a safety rule.
    pub plans_refused: u64,
    /// Each agent's last refusal.
    pub refusals: Vec<String>,
}

impl AgentHealth {
    /// Nothing went wrong.
    pub fn is_clean(&self) -> bool {
        self.panics.is_empty() && self.unexpected_exits.is_empty() && self.plans_refused == 0
    }

    /// One line per problem.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self.panics.iter().map(|p| format!("agent panic: {p}")).collect();
        out.extend(self.unexpected_exits.iter().map(|(i, n)| format!("agent of {i} exited unexpectedly {n} time(s)")));
        if self.plans_refused > 0 {
            out.push(format!("{} plans refused by the safety check: {}", self.plans_refused, self.refusals.join("; ")));
        }
        out
    }
}

/// Reads the group at `dir`: every instance's record and agent log, and the agents' statuses.
pub fn agent_health(dir: &Path) -> Result<AgentHealth, GroupError> {
    let state = StateDir::open(dir)?;
    let mut health = AgentHealth::default();
    for rec in state.instances()? {
        let n = rec.unexpected_agent_exits();
        if n > 0 {
            health.unexpected_exits.push((rec.id.clone(), n));
        }
        // The Rust runtime's panic message (std's default hook) goes to stderr, which the
        // controller sends to `agent.log`.
        let log = std::fs::read(state.instance_dir(&rec.id).join("agent.log")).unwrap_or_default();
        for line in String::from_utf8_lossy(&log).lines().filter(|l| l.contains("panicked at")) {
            health.panics.push(format!("{}: {}", rec.id, line.trim()));
        }
    }
    for (instance, status) in state.statuses()? {
        let counters = status.get("counters");
        health.plans_refused += counters.and_then(|c| c.get("plans_refused")).and_then(|v| v.as_u64()).unwrap_or(0);
        if let Some(v) = status.get("refused").and_then(|r| r.get("violation")).and_then(|v| v.as_str()) {
            health.refusals.push(format!("{instance}: {v}"));
        }
    }
    Ok(health)
}
