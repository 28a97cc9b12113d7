//! `DIR/instances/<id>/instance.json`: one record per instance (state, address, zone, pids).

use std::fs;

use serde::{Deserialize, Serialize};
use zkpilot_core::model::{InstanceId, InstanceState};

use super::{StateDir, StateError, io};

/// One instance record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Id.
    pub id: InstanceId,
    /// Launch sequence number (1..=254); also the last octet of its address.
    pub seq: u32,
    /// Address.
    pub address: String,
    /// Zone.
    pub zone: String,
    /// State.
    pub state: InstanceState,
    /// Agent pid while running.
    pub agent_pid: Option<u32>,
    /// Launch time, ms since the Unix epoch.
    pub launched_ms: u64,
    /// When the instance failed (`local kill`: agent and JVM SIGKILLed), ms since the Unix epoch.
    /// The group does not know yet: it keeps the instance `running` until its health check
    /// notices ([`crate::GroupSpec::failure_detected_after_ms`] later), as EC2 and an Auto
    /// Scaling group do for minutes after a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_ms: Option<u64>,
    /// Times the controller saw this instance's agent exit while the instance was live.
    #[serde(default)]
    pub agent_exits: u32,
    /// Times the agent was killed on purpose (`local kill --agent-only`); an exit beyond these
    /// is unexpected (a panic, an error exit), which chaos and the tests fail on.
    #[serde(default)]
    pub agent_kills: u32,
}

impl InstanceRecord {
    /// Agent exits on a live instance that nobody caused on purpose.
    pub fn unexpected_agent_exits(&self) -> u32 {
        self.agent_exits.saturating_sub(self.agent_kills)
    }
}

impl StateDir {
    /// All instance records, by launch order.
    pub fn instances(&self) -> Result<Vec<InstanceRecord>, StateError> {
        let dir = self.root.join("instances");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            if let Some(r) = self.read_json::<InstanceRecord>(&e.path().join("instance.json"))? {
                out.push(r);
            }
        }
        out.sort_by_key(|r| r.seq);
        Ok(out)
    }

    /// Writes one record.
    pub fn put_instance(&self, r: &InstanceRecord) -> Result<(), StateError> {
        self.write_json(&self.instance_dir(&r.id).join("instance.json"), r)
    }

    /// Changes one record under the lock with `f`; returns the updated record (`None`: no such
    /// instance). A terminated record is final and left as it is.
    pub fn update_instance(
        &self,
        id: &InstanceId,
        f: impl FnOnce(&mut InstanceRecord),
    ) -> Result<Option<InstanceRecord>, StateError> {
        self.locked(|| {
            let p = self.instance_dir(id).join("instance.json");
            let Some(mut r) = self.read_json::<InstanceRecord>(&p)? else {
                return Ok(None);
            };
            if r.state != InstanceState::Terminated {
                f(&mut r);
                self.write_json(&p, &r)?;
            }
            Ok(Some(r))
        })
    }

    /// Changes one record's state under the lock; returns the updated record.
    pub fn set_state(&self, id: &InstanceId, state: InstanceState) -> Result<Option<InstanceRecord>, StateError> {
        self.locked(|| {
            let p = self.instance_dir(id).join("instance.json");
            let Some(mut r) = self.read_json::<InstanceRecord>(&p)? else {
                return Ok(None);
            };
            // Terminated is final: a late writer must not resurrect an instance.
            if r.state != InstanceState::Terminated {
                r.state = state;
                self.write_json(&p, &r)?;
            }
            Ok(Some(r))
        })
    }
}
