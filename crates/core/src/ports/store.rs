//! Durable files kept outside the instances: backups and post-mortem logs.

use std::future::Future;
use std::path::Path;

use super::PortResult;
use crate::backup::Manifest;
use crate::model::InstanceId;

/// The object store (S3 on AWS; `DIR/backups/` and `DIR/postmortem/` locally).
pub trait Store: Send + Sync {
    /// Stores one file of backup `backup` (S3 `backups/<backup>/<file>`; locally `DIR/backups/`).
    fn backup_put(&self, backup: &str, file: &str, from: &Path) -> impl Future<Output = PortResult<()>> + Send;
    /// Fetches one file of a backup to `to`.
    fn backup_get(&self, backup: &str, file: &str, to: &Path) -> impl Future<Output = PortResult<()>> + Send;
    /// Every complete backup (one with a manifest).
    fn backups(&self) -> impl Future<Output = PortResult<Vec<Manifest>>> + Send;
    /// Deletes a backup, manifest first (so a half-deleted one is never listed).
    fn backup_delete(&self, backup: &str) -> impl Future<Output = PortResult<()>> + Send;
    /// Keeps one post-mortem file of `instance` (its ZooKeeper and agent logs) after it is gone.
    fn ship_log(&self, instance: &InstanceId, file: &str, from: &Path) -> impl Future<Output = PortResult<()>> + Send;
}
