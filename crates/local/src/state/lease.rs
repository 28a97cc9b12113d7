//! `DIR/cluster/lease.json`: the membership-change lease (holder, expiry), under `state.lock`.

use serde::{Deserialize, Serialize};
use zkpilot_core::model::{InstanceId, InstanceState};

use super::{InstanceRecord, StateDir, StateError};

/// The membership-change lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Holder.
    pub holder: InstanceId,
    /// Expiry, ms since the Unix epoch.
    pub expires_ms: u64,
}

impl StateDir {
    /// Takes or renews the lease. Free when absent, expired, already `holder`'s, or held by an
    /// instance the group has terminated (a dead holder must not stall healing for a whole TTL).
    pub fn acquire_lease(&self, holder: &InstanceId, ttl_ms: u64, now_ms: u64) -> Result<bool, StateError> {
        self.locked(|| {
            let p = self.root.join("cluster").join("lease.json");
            let current: Option<Lease> = self.read_json(&p)?;
            let free = match &current {
                None => true,
                Some(l) if &l.holder == holder || l.expires_ms <= now_ms => true,
                // Only a holder the group *confirms* terminated frees the lease early; an unknown
                // holder keeps it until expiry.
                Some(l) => self
                    .read_json::<InstanceRecord>(&self.instance_dir(&l.holder).join("instance.json"))?
                    .is_some_and(|r| r.state == InstanceState::Terminated),
            };
            if free {
                self.write_json(&p, &Lease { holder: holder.clone(), expires_ms: now_ms + ttl_ms })?;
            }
            Ok(free)
        })
    }
}
