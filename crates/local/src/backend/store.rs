//! [`Store`] locally: `DIR/backups/` and `DIR/postmortem/`.

use std::path::Path;

use zkpilot_core::backup::Manifest;
use zkpilot_core::model::InstanceId;
use zkpilot_core::ports::{PortResult, Store};

use super::{LocalBackend, in_place, offload, port};

impl Store for LocalBackend {
    async fn backup_put(&self, backup: &str, file: &str, from: &Path) -> PortResult<()> {
        let (dir, backup, file, from) = (self.dir.clone(), backup.to_string(), file.to_string(), from.to_path_buf());
        offload(move || dir.backup_put(&backup, &file, &from)).await.map_err(port("store backup file"))
    }

    async fn backup_get(&self, backup: &str, file: &str, to: &Path) -> PortResult<()> {
        let (dir, backup, file, to) = (self.dir.clone(), backup.to_string(), file.to_string(), to.to_path_buf());
        offload(move || dir.backup_get(&backup, &file, &to)).await.map_err(port("fetch backup file"))
    }

    async fn backups(&self) -> PortResult<Vec<Manifest>> {
        let dir = self.dir.clone();
        in_place(move || dir.backups()).await.map_err(port("list backups"))
    }

    async fn backup_delete(&self, backup: &str) -> PortResult<()> {
        let (dir, backup) = (self.dir.clone(), backup.to_string());
        in_place(move || dir.backup_delete(&backup)).await.map_err(port("delete backup"))
    }

    async fn ship_log(&self, instance: &InstanceId, file: &str, from: &Path) -> PortResult<()> {
        let (dir, instance, file, from) = (self.dir.clone(), instance.clone(), file.to_string(), from.to_path_buf());
        offload(move || dir.ship_log(&instance, &file, &from)).await.map_err(port("ship log"))
    }
}
