//! The operator's side: the changes the HTTP API queued ([`crate::api::Control`]) and the
//! ensemble-wide switches every agent reads from the backend each pass.

use tokio::time::Instant;
use zkpilot_core::agent::Outcome;
use zkpilot_core::backup::BackupReason;
use zkpilot_core::ports::{Backend, Clock, OperatorSettings, ServerProcess, Zookeeper};

use super::Agent;
use crate::api::Change;

/// Applies the ensemble-wide changes to the switches, oldest first. Agent-local changes
/// (restart, backup) leave them alone.
pub(super) fn apply(mut s: OperatorSettings, changes: &[Change], by: &str, now_ms: u64) -> OperatorSettings {
    for c in changes {
        match c {
            Change::Pause => s.paused = true,
            Change::Resume => s.paused = false,
            Change::TargetVoters(t) => s.target_voters = *t,
            Change::RestartServer(_) | Change::Backup => {}
        }
    }
    s.updated_by = by.to_string();
    s.updated_ms = now_ms;
    s
}

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    /// Runs the agent-local changes the API accepted, stores the ensemble-wide ones, then reads
    /// the switches. A failed read keeps the last known switches: a backend blip must not unpause
    /// an ensemble.
    pub(super) async fn sync_operator_settings(&mut self) {
        let (local, changes): (Vec<_>, Vec<_>) =
            self.control.take().into_iter().partition(|c| matches!(c, Change::RestartServer(_) | Change::Backup));
        if local.contains(&Change::Backup) {
            self.take_backup(BackupReason::Manual, None).await;
        }
        let restart = local.iter().rev().find_map(|c| match c {
            Change::RestartServer(install) => Some(install.clone()),
            _ => None,
        });
        if let Some(install) = restart
            && self.server.running
        {
            let started = Instant::now();
            let what = match &install {
                Some(home) => format!("operator: restart server on {}", home.display()),
                None => "operator: restart server".into(),
            };
            let outcome = Outcome::of(self.restart_server(install).await);
            self.record_event(what, outcome, started);
        }
        if !changes.is_empty() {
            let started = Instant::now();
            let stored = self.backend.operator_settings().await.ok().flatten().unwrap_or_default();
            let s = apply(stored, &changes, &self.cfg.instance.id.0, self.clock.now_ms());
            let outcome = Outcome::of(self.backend.put_operator_settings(&s).await);
            self.record_event(format!("operator: {changes:?}"), outcome, started);
        }
        match self.backend.operator_settings().await {
            Ok(s) => self.memo.operator = s.unwrap_or_default(),
            Err(e) => tracing::warn!(error = %e, "reading the operator's switches; keeping the last known"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_change_wins_and_local_changes_leave_the_switches() {
        let s = apply(OperatorSettings::default(), &[Change::Pause, Change::TargetVoters(Some(5))], "i-1", 7);
        assert!(s.paused);
        assert_eq!((s.target_voters, s.updated_by.as_str(), s.updated_ms), (Some(5), "i-1", 7));
        let s = apply(
            s,
            &[Change::Resume, Change::RestartServer(None), Change::Backup, Change::TargetVoters(None)],
            "i-2",
            9,
        );
        assert!(!s.paused);
        assert_eq!(s.target_voters, None, "null returns to the config's value");
    }
}
