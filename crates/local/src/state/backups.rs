//! `DIR/backups/<name>/` (one backup: snapshot, logs, `manifest.json` written last),
//! `DIR/cluster/restore-seed.json` (the backup the next genesis restores) and `DIR/postmortem/<id>/`
//! (logs of instances that are gone): the files the store port keeps.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zkpilot_core::model::InstanceId;

use super::{StateDir, StateError, io};

impl StateDir {
    /// Where backups live.
    pub fn backups_dir(&self) -> PathBuf {
        self.root.join("backups")
    }

    /// Stores a copy of `from` as `backups/<backup>/<file>` (complete or absent: copied to a
    /// temporary name, then renamed).
    pub fn backup_put(&self, backup: &str, file: &str, from: &Path) -> Result<(), StateError> {
        let to = self.named(&["backups", backup, file])?;
        copy_atomic(from, &to)
    }

    /// Copies `backups/<backup>/<file>` to `to`.
    pub fn backup_get(&self, backup: &str, file: &str, to: &Path) -> Result<(), StateError> {
        let from = self.named(&["backups", backup, file])?;
        copy_atomic(&from, to)
    }

    /// Every backup with a manifest.
    pub fn backups(&self) -> Result<Vec<zkpilot_core::backup::Manifest>, StateError> {
        self.read_each(&self.backups_dir(), |e| Some(e.path().join("manifest.json")))
    }

    /// Deletes a backup, manifest first.
    pub fn backup_delete(&self, backup: &str) -> Result<(), StateError> {
        let dir = self.named(&["backups", backup])?;
        let manifest = dir.join("manifest.json");
        match fs::remove_file(&manifest) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::Io { path: manifest, source: e }),
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::Io { path: dir, source: e }),
        }
    }

    /// The backup the next genesis restores.
    pub fn restore_seed(&self) -> Result<Option<String>, StateError> {
        Ok(self.read_json::<RestoreSeed>(&self.root.join("cluster").join("restore-seed.json"))?.map(|s| s.backup))
    }

    /// Sets the restore seed.
    pub fn put_restore_seed(&self, backup: &str) -> Result<(), StateError> {
        self.write_json(&self.root.join("cluster").join("restore-seed.json"), &RestoreSeed { backup: backup.into() })
    }

    /// Keeps a post-mortem copy of one of an instance's files.
    pub fn ship_log(&self, instance: &InstanceId, file: &str, from: &Path) -> Result<(), StateError> {
        let to = self.named(&["postmortem", &instance.0, file])?;
        copy_atomic(from, &to)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct RestoreSeed {
    backup: String,
}

/// Copies `from` to `to` through a temporary name in `to`'s directory.
fn copy_atomic(from: &Path, to: &Path) -> Result<(), StateError> {
    let dir = to.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(".partial-{}", to.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
    fs::copy(from, &tmp).map_err(io(from))?;
    fs::rename(&tmp, to).map_err(io(to))
}
