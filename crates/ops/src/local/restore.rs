//! `restore`: a new local group born from another group's backup. The backup is copied into the
//! new group's store and named as its restore seed, then the group comes up: its first server is
//! born on the backup, the others join it and are synced from it.

use std::path::{Path, PathBuf};

use zkpilot_local::{LocalBackend, StateError};
use zkpilot_runtime::backup_store::BackupError;
use zkpilot_runtime::view::ClusterView;

use super::error::GroupError;
use super::up::{Seed, UpOptions, up};
use crate::progress::Sink;

/// A restore that could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The store to restore from cannot be opened.
    #[error("--from {}", .0.display())]
    Source(PathBuf, #[source] StateError),
    /// The backup is not in that store.
    #[error("--from {} --backup {backup}", .from.display())]
    Find {
        /// The store.
        from: PathBuf,
        /// The backup asked for.
        backup: String,
        /// Why.
        #[source]
        source: BackupError,
    },
    /// Bringing the new group up.
    #[error(transparent)]
    Group(#[from] GroupError),
}

/// Restores `backup` (a name or `latest`) of the group at `from` into the new group `opts`
/// describes. The backup is looked up before anything is created for the new group, so a restore
/// that cannot find it leaves no half-made group behind.
pub async fn restore(
    from: &Path,
    backup: &str,
    opts: &UpOptions,
    progress: &mut Sink<'_>,
) -> Result<ClusterView, RestoreError> {
    let source = LocalBackend::open_store(from).map_err(|e| RestoreError::Source(from.to_path_buf(), e))?;
    zkpilot_runtime::backup_store::find(&source, backup).await.map_err(|source| RestoreError::Find {
        from: from.to_path_buf(),
        backup: backup.to_string(),
        source,
    })?;
    Ok(up(opts, Some(Seed { from: &source, backup }), progress).await?)
}
