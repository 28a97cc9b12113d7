//! The backups the agents store in their backend (S3 on AWS, `DIR/backups` locally): list them,
//! and seed a new cluster's store with one, so that cluster's genesis restores it. A restore into
//! a new local group is [`crate::local::restore`].

use std::path::{Path, PathBuf};

use zkpilot_core::backup::Manifest;
use zkpilot_core::ports::{Backend, PortError};
use zkpilot_local::{LocalBackend, StateError};
use zkpilot_runtime::AgentConfig;
use zkpilot_runtime::backup_store::BackupError;
use zkpilot_runtime::config::{BackendSection, ConfigError};

/// A backup store that could not be opened, listed or seeded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupsError {
    /// The agent config naming the store.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The agent config has no `[backend]`.
    #[error("{0}: no [backend] section")]
    NoBackend(PathBuf),
    /// The agent config's `[backend]` does not parse.
    #[error("{0}: [backend]")]
    BadBackend(PathBuf, #[source] toml::de::Error),
    /// A local store.
    #[error(transparent)]
    State(#[from] StateError),
    /// Finding or copying a backup.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// A backend call.
    #[error(transparent)]
    Port(#[from] PortError),
    /// The target of a seed already has an ensemble.
    #[error("the target already has an ensemble (cluster {0}); restore into a new cluster")]
    TargetHasEnsemble(String),
    /// An AWS store, in a build without AWS.
    #[error("this zkpilot was built without the `aws` feature; rebuild with `cargo build --features aws`")]
    WithoutAws,
}

/// A backup store: a local group's, or the backend an agent config names.
#[derive(Debug)]
#[non_exhaustive]
pub enum Store {
    /// A local group's `backups/` (it survives the ensemble).
    Local(LocalBackend),
    /// An S3 bucket and prefix.
    #[cfg(feature = "aws")]
    Aws(Box<zkpilot_aws::AwsBackend>),
}

impl Store {
    /// The store of the local group at `dir` (only its `backups/` need exist).
    pub fn local(dir: &Path) -> Result<Self, BackupsError> {
        Ok(Self::Local(LocalBackend::open_store(dir)?))
    }

    /// The backend of an agent config. Only `[backend]` matters here; the rest of an agent config
    /// may name things this host lacks.
    pub async fn from_config(path: &Path) -> Result<Self, BackupsError> {
        let table = AgentConfig::read_table(path)?;
        let backend: BackendSection = table
            .get("backend")
            .cloned()
            .ok_or_else(|| BackupsError::NoBackend(path.to_path_buf()))?
            .try_into()
            .map_err(|e| BackupsError::BadBackend(path.to_path_buf(), e))?;
        match backend {
            BackendSection::Local { dir } => Ok(Self::Local(LocalBackend::open(&dir)?)),
            #[cfg(feature = "aws")]
            BackendSection::Aws(aws) => Ok(Self::Aws(Box::new(crate::aws::backend(&aws, None, None).await))),
            #[cfg(not(feature = "aws"))]
            BackendSection::Aws(_) => Err(BackupsError::WithoutAws),
        }
    }

    /// Every complete backup, oldest first.
    pub async fn list(&self) -> Result<Vec<Manifest>, BackupsError> {
        match self {
            Self::Local(b) => sorted(b).await,
            #[cfg(feature = "aws")]
            Self::Aws(b) => sorted(b.as_ref()).await,
        }
    }

    /// [`seed`] from this store into `to`.
    pub async fn seed_into(&self, to: &Store, backup: &str, scratch: &Path) -> Result<(), BackupsError> {
        match (self, to) {
            (Self::Local(f), Self::Local(t)) => seed(f, t, backup, scratch).await,
            #[cfg(feature = "aws")]
            (Self::Local(f), Self::Aws(t)) => seed(f, t.as_ref(), backup, scratch).await,
            #[cfg(feature = "aws")]
            (Self::Aws(f), Self::Local(t)) => seed(f.as_ref(), t, backup, scratch).await,
            #[cfg(feature = "aws")]
            (Self::Aws(f), Self::Aws(t)) => seed(f.as_ref(), t.as_ref(), backup, scratch).await,
        }
    }
}

/// Copies `backup` (a name or `latest`) from one store to another and makes it the target's
/// restore seed. Refuses a target whose ensemble already exists: a restore never lands on top of
/// live data.
pub async fn seed<S: Backend, D: Backend>(from: &S, to: &D, backup: &str, scratch: &Path) -> Result<(), BackupsError> {
    if let Some(m) = to.cluster_marker().await? {
        return Err(BackupsError::TargetHasEnsemble(m.cluster_id));
    }
    let manifest = zkpilot_runtime::backup_store::find(from, backup).await?;
    zkpilot_runtime::backup_store::copy(from, to, &manifest, scratch).await?;
    to.put_restore_seed(&manifest.name).await?;
    Ok(())
}

async fn sorted<B: Backend>(b: &B) -> Result<Vec<Manifest>, BackupsError> {
    let mut all = b.backups().await?;
    all.sort_by(|a, b| (a.taken_ms, &a.name).cmp(&(b.taken_ms, &b.name)));
    Ok(all)
}
