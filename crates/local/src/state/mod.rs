//! The local group's state directory: the whole "cloud" of the local backend, shared by the group
//! controller, every agent and the CLI through plain files.
//!
//! ```text
//! DIR/group.json                  desired size and settings (written by `local up` / `local scale`)
//! DIR/secret                      superuser secret (0600)
//! DIR/state.lock                  flock held for every read-modify-write below
//! DIR/instances/<id>/instance.json  instance record (state, address, zone, pids)
//! DIR/instances/<id>/agent.toml     the agent's config;  .../zk/  its ZooKeeper (conf, data, logs)
//! DIR/ids/<n>.json                server-id claims, created exclusively (hard link of a full file)
//! DIR/cluster/marker.json         the cluster marker, created exclusively, never rewritten
//! DIR/cluster/lease.json          membership-change lease (holder, expiry), under state.lock
//! DIR/slots/<n>.json, slots/<n>/  slot mode: a slot's holder and its persistent directory
//! DIR/cluster/operator.json       the operator's switches (pause, voter target)
//! DIR/recovery/                   quorum-loss survivor reports and the recovery decision
//! DIR/status/<id>.json            each agent's last status snapshot
//! DIR/connect-string              the committed membership as a client connection string
//! DIR/base.cfg                    the operator's ensemble-wide zoo.cfg keys (read by the backend)
//! DIR/backups/<name>/             one backup: snapshot, logs, manifest.json (written last)
//! DIR/cluster/restore-seed.json   the backup the next genesis restores (`zkpilot restore`)
//! DIR/postmortem/<id>/            logs of instances that are gone
//! ```
//!
//! Exclusive creation uses `link(2)` of a fully written temporary file: the name appears with its
//! whole content or not at all, which `O_EXCL` alone cannot promise a concurrent reader.
//!
//! One file per record kind; this one holds the handle and the file primitives they share.

mod backups;
mod claims;
mod instances;
mod lease;
mod marker;
mod operator;
mod recovery;
mod slots;
mod spec;
mod status;
#[cfg(test)]
mod tests;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zkpilot_core::model::InstanceId;

pub use claims::Claim;
pub use instances::InstanceRecord;
pub use lease::Lease;
pub use slots::SlotRecord;
pub use spec::{DEFAULT_FAILURE_DETECTED_MS, GroupSpec};

/// A state-directory operation that failed; names the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// I/O on a path.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file that does not parse.
    #[error("{path}: {why}")]
    Malformed {
        /// Path.
        path: PathBuf,
        /// Cause.
        why: String,
    },
    /// All 255 server ids are claimed.
    #[error("all server ids 1..=255 are claimed in {0}")]
    IdsExhausted(PathBuf),
    /// Not a group directory.
    #[error("{0} is not a zkpilot local group (no group.json); run `zkpilot local up` first")]
    NotAGroup(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.to_path_buf(), source }
}

/// Handle on a state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens an existing group directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StateError> {
        let root = root.into();
        if !root.join("group.json").is_file() {
            return Err(StateError::NotAGroup(root));
        }
        Ok(Self { root })
    }

    /// Opens what is left of a group whose ensemble was destroyed: only its `backups/` store is
    /// needed (a restore's source).
    pub fn open_store(root: impl Into<PathBuf>) -> Result<Self, StateError> {
        let root = root.into();
        if !root.join("backups").is_dir() && !root.join("group.json").is_file() {
            return Err(StateError::Malformed {
                path: root,
                why: "neither a local group (group.json) nor a backup store (backups/)".into(),
            });
        }
        Ok(Self { root })
    }

    /// Creates (or re-opens) a group directory with `spec`.
    pub fn create(root: impl Into<PathBuf>, spec: &GroupSpec) -> Result<Self, StateError> {
        let root = root.into();
        for d in ["instances", "ids", "cluster", "status"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        let s = Self { root };
        s.write_json(&s.root.join("group.json"), spec)?;
        Ok(s)
    }

    /// Root path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The secret file.
    pub fn secret_path(&self) -> PathBuf {
        self.root.join("secret")
    }

    /// An instance's directory.
    pub fn instance_dir(&self, id: &InstanceId) -> PathBuf {
        self.root.join("instances").join(&id.0)
    }

    /// Controller pid file.
    pub fn controller_pid_path(&self) -> PathBuf {
        self.root.join("controller.pid")
    }

    /// Holds the directory lock for the duration of `f`.
    pub fn locked<T>(&self, f: impl FnOnce() -> Result<T, StateError>) -> Result<T, StateError> {
        let path = self.root.join("state.lock");
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
        let guard = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| StateError::Io { path: path.clone(), source: std::io::Error::from(e) })?;
        let out = f();
        drop(guard);
        out
    }

    fn read_json<T: DeserializeOwned>(&self, path: &Path) -> Result<Option<T>, StateError> {
        match fs::read_to_string(path) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| StateError::Malformed { path: path.to_path_buf(), why: e.to_string() }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError::Io { path: path.to_path_buf(), source: e }),
        }
    }

    /// A fully written temporary file next to `path`.
    fn temp_with_text(&self, path: &Path, text: &str) -> Result<PathBuf, StateError> {
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io(dir))?;
        // Unique among concurrent writers, with no clock: the pid tells processes apart, the
        // counter a process's threads (a timestamp could repeat between two threads).
        static NONCE: AtomicU64 = AtomicU64::new(0);
        let nonce = NONCE.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".tmp-{}-{nonce}", std::process::id()));
        fs::write(&tmp, text).map_err(io(&tmp))?;
        Ok(tmp)
    }

    fn temp_with<T: Serialize>(&self, path: &Path, value: &T) -> Result<PathBuf, StateError> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| StateError::Malformed { path: path.to_path_buf(), why: e.to_string() })?;
        self.temp_with_text(path, &text)
    }

    /// Atomically replaces `path` with `text`.
    fn write_text(&self, path: &Path, text: &str) -> Result<(), StateError> {
        let tmp = self.temp_with_text(path, text)?;
        fs::rename(&tmp, path).map_err(io(path))
    }

    /// Atomically replaces `path` with `value`.
    pub fn write_json<T: Serialize>(&self, path: &Path, value: &T) -> Result<(), StateError> {
        let tmp = self.temp_with(path, value)?;
        fs::rename(&tmp, path).map_err(io(path))
    }

    /// Creates `path` with `value` only if it does not exist. Returns false if it existed.
    fn create_exclusive<T: Serialize>(&self, path: &Path, value: &T) -> Result<bool, StateError> {
        let tmp = self.temp_with(path, value)?;
        let linked = fs::hard_link(&tmp, path);
        let _ignored = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(StateError::Io { path: path.to_path_buf(), source: e }),
        }
    }

    /// The JSON file `path_of` picks for each entry of `dir` (none if `dir` does not exist).
    fn read_each<T: DeserializeOwned>(
        &self,
        dir: &Path,
        path_of: impl Fn(&fs::DirEntry) -> Option<PathBuf>,
    ) -> Result<Vec<T>, StateError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StateError::Io { path: dir.to_path_buf(), source: e }),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(io(dir))?;
            if let Some(p) = path_of(&e)
                && let Some(v) = self.read_json(&p)?
            {
                out.push(v);
            }
        }
        Ok(out)
    }

    fn named(&self, parts: &[&str]) -> Result<PathBuf, StateError> {
        let mut p = self.root.clone();
        for part in parts {
            if !zkpilot_core::backup::safe_name(part) {
                return Err(StateError::Malformed { path: p, why: format!("unsafe name {part:?}") });
            }
            p.push(part);
        }
        Ok(p)
    }
}
