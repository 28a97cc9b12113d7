//! [`Store`] on AWS: backups under `backups/<backup>/` and post-mortem logs under
//! `postmortem/<instance>/`, streamed to and from S3.

use std::path::Path;

use zkpilot_core::backup::{Manifest, safe_name};
use zkpilot_core::model::InstanceId;
use zkpilot_core::ports::{PortError, PortResult, Store};

use crate::AwsBackend;

/// `backups/<backup>/<file>`, refusing names that could leave the prefix.
fn backup_key(backup: &str, file: &str) -> PortResult<String> {
    let ok = safe_name(backup) && (file.is_empty() || safe_name(file));
    if !ok {
        return Err(PortError::msg("backend", format!("unsafe backup name {backup:?}/{file:?}")));
    }
    Ok(format!("backups/{backup}/{file}"))
}

impl Store for AwsBackend {
    async fn backup_put(&self, backup: &str, file: &str, from: &Path) -> PortResult<()> {
        let key = self.bucket.key(&backup_key(backup, file)?);
        self.bucket.put_file(&key, from).await
    }

    async fn backup_get(&self, backup: &str, file: &str, to: &Path) -> PortResult<()> {
        let key = self.bucket.key(&backup_key(backup, file)?);
        self.bucket.get_file(&key, to).await
    }

    async fn backups(&self) -> PortResult<Vec<Manifest>> {
        let mut out = Vec::new();
        for (key, _) in self.bucket.list(&self.bucket.key("backups/")).await? {
            if key.ends_with("/manifest.json")
                && let Some((m, _)) = self.bucket.get_json(&key).await?
            {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn backup_delete(&self, backup: &str) -> PortResult<()> {
        let prefix = self.bucket.key(&backup_key(backup, "")?);
        let manifest = format!("{prefix}manifest.json");
        let mut keys: Vec<String> = self.bucket.list(&prefix).await?.into_iter().map(|(k, _)| k).collect();
        keys.sort_by_key(|k| *k != manifest);
        for key in keys {
            self.bucket.delete(&key).await?;
        }
        Ok(())
    }

    async fn ship_log(&self, instance: &InstanceId, file: &str, from: &Path) -> PortResult<()> {
        if !safe_name(&instance.0) || !safe_name(file) {
            return Err(PortError::msg("backend", format!("unsafe log name {instance}/{file}")));
        }
        let key = self.bucket.key(&format!("postmortem/{instance}/{file}"));
        self.bucket.put_file(&key, from).await
    }
}
