//! `DIR/slots/<n>.json` and `DIR/slots/<n>/`: slot mode's stable identities.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use zkpilot_core::model::{InstanceId, InstanceState, ServerId};

use super::{StateDir, StateError, io};

/// A slot: a fixed address and directory, held by one instance at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    /// Current holder.
    pub instance: InstanceId,
    /// The slot's address (its first holder's).
    pub address: String,
    /// The slot's zone.
    pub zone: String,
}

impl StateDir {
    /// Slot mode: the slot `instance` holds, else a free slot (its holder terminated or gone),
    /// preferring `zone`, else a new slot at `address`. Slot `n` keeps its address and its
    /// directory `slots/<n>/` for good, the local stand-ins for an ENI and an EBS volume; with
    /// `address_follows` the slot is storage only and moves to the claimant's `address`.
    pub fn claim_slot(
        &self,
        instance: &InstanceId,
        zone: &str,
        address: &str,
        address_follows: bool,
    ) -> Result<(ServerId, SlotRecord), StateError> {
        self.locked(|| {
            let slots = self.slots()?;
            if let Some((n, r)) = slots.iter().find(|(_, r)| &r.instance == instance) {
                if !address_follows || r.address == address {
                    return Ok((*n, r.clone()));
                }
                let moved = SlotRecord { address: address.into(), ..r.clone() };
                self.write_json(&self.slot_record_path(*n), &moved)?;
                return Ok((*n, moved));
            }
            let live: std::collections::BTreeSet<InstanceId> =
                self.instances()?.into_iter().filter(|r| r.state != InstanceState::Terminated).map(|r| r.id).collect();
            let mut free: Vec<&(ServerId, SlotRecord)> =
                slots.iter().filter(|(_, r)| !live.contains(&r.instance)).collect();
            free.sort_by_key(|(n, r)| (r.zone != zone, *n));
            let (n, record) = match free.first() {
                Some((n, old)) => {
                    let address = if address_follows { address.to_string() } else { old.address.clone() };
                    (*n, SlotRecord { instance: instance.clone(), address, ..(*old).clone() })
                }
                None => {
                    let n = (1..=ServerId::MAX)
                        .map(ServerId)
                        .find(|n| !slots.iter().any(|(s, _)| s == n))
                        .ok_or_else(|| StateError::IdsExhausted(self.root.join("slots")))?;
                    (n, SlotRecord { instance: instance.clone(), address: address.into(), zone: zone.into() })
                }
            };
            self.write_json(&self.slot_record_path(n), &record)?;
            fs::create_dir_all(self.slot_dir(n)).map_err(io(&self.slot_dir(n)))?;
            Ok((n, record))
        })
    }

    /// All slots.
    pub fn slots(&self) -> Result<Vec<(ServerId, SlotRecord)>, StateError> {
        let dir = self.root.join("slots");
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&dir)(e)),
        };
        for e in entries {
            let e = e.map_err(io(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(n) = name.strip_suffix(".json").and_then(|n| n.parse::<u32>().ok()) else { continue };
            if let Some(r) = self.read_json::<SlotRecord>(&e.path())? {
                out.push((ServerId(n), r));
            }
        }
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    fn slot_record_path(&self, n: ServerId) -> PathBuf {
        self.root.join("slots").join(format!("{n}.json"))
    }

    /// Slot `n`'s persistent directory (the server's base dir in slot mode).
    pub fn slot_dir(&self, n: ServerId) -> PathBuf {
        self.root.join("slots").join(n.to_string())
    }
}
