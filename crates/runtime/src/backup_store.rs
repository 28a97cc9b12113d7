//! Backups through the backend's store: take one from a server's data dir, fetch one for a
//! restore, copy one between stores, apply retention. Which files, and why they restore, is in
//! `zkpilot_zk::backup`; when and what to keep in `zkpilot_core::backup`.

use std::path::{Path, PathBuf};

use zkpilot_core::backup::{self, BackupReason, Manifest};
use zkpilot_core::ports::{PortError, Store};
use zkpilot_zk::FilesError;
use zkpilot_zk::files::Layout;

/// A backup that could not be taken, fetched or copied. Nothing in the data dir is changed by
/// any of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Reading the data dir or the staged copy.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The store.
    #[error(transparent)]
    Port(#[from] PortError),
    /// The requested backup does not exist (complete) in the store.
    #[error("no backup {0:?} in the store (see `zkpilot backup list`)")]
    NotFound(String),
    /// Anything else, with the path involved.
    #[error("{path}: {why}")]
    Other {
        /// Path.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FilesError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackupError::Other { path: PathBuf::new(), why: format!("blocking task failed: {e}") })?
        .map_err(Into::into)
}

fn remove_dir(dir: &Path) -> Result<(), BackupError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BackupError::Other { path: dir.to_path_buf(), why: e.to_string() }),
    }
}

/// What to record in a new backup's manifest besides its files.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Cluster id (the data stamp's).
    pub cluster_id: String,
    /// The server backed up.
    pub server_id: zkpilot_core::ServerId,
    /// Committed config version seen, if any.
    pub config_version: Option<u64>,
}

/// Takes a backup of the server in `layout` (running or not) and stores it, manifest last; then
/// deletes what retention drops. `None` when the server has no complete snapshot yet. The staged
/// copy lives in `<base>/backup-staging` (only copies; removed afterwards).
pub async fn take<S: Store>(
    store: &S,
    layout: &Layout,
    origin: &Origin,
    reason: BackupReason,
    keep: usize,
    now_ms: u64,
) -> Result<Option<Manifest>, BackupError> {
    let staging = layout.base.join("backup-staging");
    remove_dir(&staging)?;
    let (v2, st) = (layout.version2(), staging.clone());
    let Some(staged) = blocking(move || zkpilot_zk::backup::stage(&v2, &st)).await? else {
        return Ok(None);
    };
    let manifest = Manifest {
        name: backup::backup_name(now_ms, reason, origin.server_id),
        cluster_id: origin.cluster_id.clone(),
        server_id: origin.server_id,
        taken_ms: now_ms,
        reason,
        snapshot_zxid: staged.snapshot_zxid,
        last_zxid: staged.last_zxid,
        config_version: origin.config_version,
        files: staged.files,
    };
    let stored = put_all(store, &manifest, &staging).await;
    remove_dir(&staging)?;
    stored?;
    prune(store, keep).await?;
    Ok(Some(manifest))
}

/// Puts every file of `manifest` from `dir`, then the manifest.
async fn put_all<S: Store>(store: &S, manifest: &Manifest, dir: &Path) -> Result<(), BackupError> {
    for f in &manifest.files {
        store.backup_put(&manifest.name, &f.name, &dir.join(&f.name)).await?;
    }
    let path = dir.join("manifest.json");
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| BackupError::Other { path: path.clone(), why: e.to_string() })?;
    tokio::fs::write(&path, json).await.map_err(|e| BackupError::Other { path: path.clone(), why: e.to_string() })?;
    store.backup_put(&manifest.name, "manifest.json", &path).await?;
    Ok(())
}

/// Deletes the backups retention drops.
pub async fn prune<S: Store>(store: &S, keep: usize) -> Result<Vec<String>, BackupError> {
    let all = store.backups().await?;
    let drop = backup::to_delete(&all, keep);
    for name in &drop {
        store.backup_delete(name).await?;
    }
    Ok(drop)
}

/// Finds a backup by name or `latest`.
pub async fn find<S: Store>(store: &S, wanted: &str) -> Result<Manifest, BackupError> {
    let all = store.backups().await?;
    backup::pick(&all, wanted).cloned().ok_or_else(|| BackupError::NotFound(wanted.to_string()))
}

/// Fetches a backup's files into `into` (created; must not exist) and verifies sizes, checksums
/// and that the files end at the manifest's last zxid.
pub async fn fetch<S: Store>(store: &S, manifest: &Manifest, into: &Path) -> Result<(), BackupError> {
    if into.exists() {
        return Err(BackupError::Other {
            path: into.to_path_buf(),
            why: "already exists; not fetching over it".into(),
        });
    }
    tokio::fs::create_dir_all(into)
        .await
        .map_err(|e| BackupError::Other { path: into.to_path_buf(), why: e.to_string() })?;
    for f in &manifest.files {
        store.backup_get(&manifest.name, &f.name, &into.join(&f.name)).await?;
    }
    let (dir, m) = (into.to_path_buf(), manifest.clone());
    blocking(move || zkpilot_zk::backup::verify(&dir, &m)).await
}

/// Copies a backup from one store to another through `scratch` (verified on the way).
pub async fn copy<F: Store, T: Store>(
    from: &F,
    to: &T,
    manifest: &Manifest,
    scratch: &Path,
) -> Result<(), BackupError> {
    fetch(from, manifest, scratch).await?;
    let stored = put_all(to, manifest, scratch).await;
    remove_dir(scratch)?;
    stored
}
