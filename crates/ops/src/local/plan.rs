//! `plan --dir DIR`: the planner's next step for a local group, as a dry run. Nothing is changed.

use std::path::Path;

use zkpilot_core::Plan;
use zkpilot_core::ports::Coordination as _;
use zkpilot_local::LocalBackend;

use super::error::GroupError;
use super::view::{effective_policy, group_client};

/// Observes the local group exactly as its agents do and runs the planner with the policy in
/// force; the result is returned, never executed. While the operator has paused the agents, a
/// plan with actions says so as a skipped candidate.
pub async fn plan(dir: &Path) -> Result<Plan, GroupError> {
    let backend = LocalBackend::open(dir)?;
    let group = backend.state().group()?;
    let zk = group_client(&backend)?;
    let now = zkpilot_core::ports::epoch_ms();
    let obs = zkpilot_runtime::observe::Observer::default().observe(&backend, &zk, 2181, now).await;
    if obs.instances.is_none() {
        return Err(GroupError::NoInstances(dir.to_path_buf()));
    }
    let operator = backend.operator_settings().await?.unwrap_or_default();
    let policy = effective_policy(&group, Some(&operator));
    let mut plan = zkpilot_core::plan(&obs, &policy, now);
    if operator.paused && !plan.actions.is_empty() {
        plan.skip("automation", "paused by the operator: the agents will not carry this out");
    }
    Ok(plan)
}
