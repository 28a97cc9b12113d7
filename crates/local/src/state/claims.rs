//! `DIR/ids/<n>.json`: server-id claims, each created exclusively.

use std::fs;

use serde::{Deserialize, Serialize};
use zkpilot_core::model::{InstanceId, ServerId};

use super::{StateDir, StateError, io};

/// An id claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Claiming instance.
    pub instance: InstanceId,
    /// Its address.
    pub address: String,
}

impl StateDir {
    /// All claims.
    pub fn claims(&self) -> Result<Vec<(ServerId, Claim)>, StateError> {
        let dir = self.root.join("ids");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(n) = name.strip_suffix(".json").and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(c) = self.read_json::<Claim>(&e.path())? {
                out.push((ServerId(n), c));
            }
        }
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// Claims the lowest free id for `instance` (or returns the one it holds). Correct with many
    /// processes at once: each id file is created exclusively, a loser moves on to the next id.
    pub fn claim(&self, instance: &InstanceId, address: &str) -> Result<ServerId, StateError> {
        if let Some((id, _)) = self.claims()?.into_iter().find(|(_, c)| &c.instance == instance) {
            return Ok(id);
        }
        let claim = Claim { instance: instance.clone(), address: address.to_string() };
        for n in 1..=ServerId::MAX {
            let p = self.root.join("ids").join(format!("{n}.json"));
            if p.exists() {
                continue;
            }
            if self.create_exclusive(&p, &claim)? {
                return Ok(ServerId(n));
            }
        }
        Err(StateError::IdsExhausted(self.root.join("ids")))
    }

    /// Releases `id` if `instance` still holds it.
    pub fn release(&self, id: ServerId, instance: &InstanceId) -> Result<(), StateError> {
        self.locked(|| {
            let p = self.root.join("ids").join(format!("{id}.json"));
            if let Some(c) = self.read_json::<Claim>(&p)?
                && &c.instance == instance
            {
                fs::remove_file(&p).map_err(io(&p))?;
            }
            Ok(())
        })
    }
}
