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
//! DIR/status/<id>.json            each agent's last status snapshot
//! DIR/backups/<name>/             one backup: snapshot, logs, manifest.json (written last)
//! DIR/cluster/restore-seed.json   the backup the next genesis restores (`zkpilot restore`)
//! DIR/postmortem/<id>/            logs of instances that are gone
//! ```
//!
//! Exclusive creation uses `link(2)` of a fully written temporary file: the name appears with its
//! whole content or not at all, which `O_EXCL` alone cannot promise a concurrent reader.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zkpilot_core::model::{InstanceId, InstanceState, ServerId};
use zkpilot_core::ports::{ClusterMarker, OperatorSettings};
use zkpilot_core::recovery::{RecoveryDecision, SurvivorReport};

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

/// Settings of the whole local group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Desired number of instances.
    pub desired: usize,
    /// First three octets of the loopback addresses, e.g. `127.0.1`; instance N gets `<net>.N`.
    pub net: String,
    /// Zones assigned round-robin.
    pub zones: Vec<String>,
    /// The zkpilot binary the controller launches agents with.
    pub agent_exe: PathBuf,
    /// ZooKeeper install path.
    pub zookeeper_install: PathBuf,
    /// Explicit java binary.
    pub java: Option<PathBuf>,
    /// Voter target.
    pub target_voters: usize,
    /// Minimum voters.
    pub min_voters: usize,
    /// JVM heap per server, MiB.
    pub heap_mb: u32,
    /// ZooKeeper tickTime, ms.
    pub tick_time_ms: u32,
    /// Slot mode: a replacement takes over a lost instance's address and data dir.
    #[serde(default)]
    pub slot_mode: bool,
    /// Name indirection: server lines use `zk-<id>.<domain>`, kept current in `<dir>/hosts`.
    #[serde(default)]
    pub names_domain: Option<String>,
    /// Policy `unhealthy_after_ms` of every agent.
    #[serde(default = "default_unhealthy_ms")]
    pub unhealthy_after_ms: u64,
    /// `[recovery] quorum_loss_after_ms` of every agent.
    #[serde(default = "default_quorum_loss_ms")]
    pub quorum_loss_after_ms: u64,
    /// Each instance's ZooKeeper runs as its own uid (for per-server firewall rules).
    #[serde(default)]
    pub separate_uids: bool,
    /// `[backup] interval_ms` of every agent.
    #[serde(default = "default_backup_interval_ms")]
    pub backup_interval_ms: u64,
}

const fn default_backup_interval_ms() -> u64 {
    3_600_000
}

const fn default_unhealthy_ms() -> u64 {
    120_000
}

const fn default_quorum_loss_ms() -> u64 {
    10_000
}

/// One instance record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Id.
    pub id: InstanceId,
    /// Launch sequence number (1..=254); also the last octet of its address.
    pub seq: u32,
    /// Address.
    pub address: String,
    /// Zone.
    pub zone: String,
    /// State.
    pub state: InstanceState,
    /// Agent pid while running.
    pub agent_pid: Option<u32>,
    /// Launch time, ms since the Unix epoch.
    pub launched_ms: u64,
}

/// An id claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Claiming instance.
    pub instance: InstanceId,
    /// Its address.
    pub address: String,
}

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

/// The membership-change lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Holder.
    pub holder: InstanceId,
    /// Expiry, ms since the Unix epoch.
    pub expires_ms: u64,
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
        let nonce =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
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

    /// The group spec.
    pub fn group(&self) -> Result<GroupSpec, StateError> {
        let p = self.root.join("group.json");
        self.read_json(&p)?.ok_or(StateError::NotAGroup(self.root.clone()))
    }

    /// Changes the desired size.
    pub fn set_desired(&self, desired: usize) -> Result<(), StateError> {
        self.locked(|| {
            let mut g = self.group()?;
            g.desired = desired;
            self.write_json(&self.root.join("group.json"), &g)
        })
    }

    /// All instance records, by launch order.
    pub fn instances(&self) -> Result<Vec<InstanceRecord>, StateError> {
        let dir = self.root.join("instances");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            if let Some(r) = self.read_json::<InstanceRecord>(&e.path().join("instance.json"))? {
                out.push(r);
            }
        }
        out.sort_by_key(|r| r.seq);
        Ok(out)
    }

    /// Writes one record.
    pub fn put_instance(&self, r: &InstanceRecord) -> Result<(), StateError> {
        self.write_json(&self.instance_dir(&r.id).join("instance.json"), r)
    }

    /// Changes one record's state under the lock; returns the updated record.
    pub fn set_state(&self, id: &InstanceId, state: InstanceState) -> Result<Option<InstanceRecord>, StateError> {
        self.locked(|| {
            let p = self.instance_dir(id).join("instance.json");
            let Some(mut r) = self.read_json::<InstanceRecord>(&p)? else {
                return Ok(None);
            };
            // Terminated is final: a late writer must not resurrect an instance.
            if r.state != InstanceState::Terminated {
                r.state = state;
                self.write_json(&p, &r)?;
            }
            Ok(Some(r))
        })
    }

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

    /// The cluster marker.
    pub fn marker(&self) -> Result<Option<ClusterMarker>, StateError> {
        self.read_json(&self.root.join("cluster").join("marker.json"))
    }

    /// Creates the marker unless one exists; returns the one on disk afterwards.
    pub fn create_marker(&self, m: &ClusterMarker) -> Result<ClusterMarker, StateError> {
        let p = self.root.join("cluster").join("marker.json");
        self.create_exclusive(&p, m)?;
        self.read_json(&p)?.ok_or_else(|| StateError::Malformed { path: p, why: "vanished after creation".into() })
    }

    /// Takes or renews the lease. Free when absent, expired, already `holder`'s, or held by an
    /// instance the group has terminated (a dead holder must not stall healing for a whole TTL).
    pub fn acquire_lease(&self, holder: &InstanceId, ttl_ms: u64, now_ms: u64) -> Result<bool, StateError> {
        self.locked(|| {
            let p = self.root.join("cluster").join("lease.json");
            let current: Option<Lease> = self.read_json(&p)?;
            let free = match &current {
                None => true,
                Some(l) if &l.holder == holder || l.expires_ms <= now_ms => true,
                // Only a holder the group *confirms* terminated frees the lease early; an unknown
                // holder keeps it until expiry.
                Some(l) => self
                    .read_json::<InstanceRecord>(&self.instance_dir(&l.holder).join("instance.json"))?
                    .is_some_and(|r| r.state == InstanceState::Terminated),
            };
            if free {
                self.write_json(&p, &Lease { holder: holder.clone(), expires_ms: now_ms + ttl_ms })?;
            }
            Ok(free)
        })
    }

    /// Publishes the client connection string (`DIR/connect-string`), what Kafka's
    /// `zookeeper.connect` wants.
    pub fn put_connect_string(&self, text: &str) -> Result<(), StateError> {
        self.write_text(&self.root.join("connect-string"), text)
    }

    /// Writes an agent's status snapshot.
    pub fn put_status(&self, instance: &InstanceId, json: &str) -> Result<(), StateError> {
        self.write_text(&self.root.join("status").join(format!("{instance}.json")), json)
    }

    /// The operator's switches.
    pub fn operator_settings(&self) -> Result<Option<OperatorSettings>, StateError> {
        self.read_json(&self.root.join("cluster").join("operator.json"))
    }

    /// Replaces the operator's switches.
    pub fn put_operator_settings(&self, s: &OperatorSettings) -> Result<(), StateError> {
        self.write_json(&self.root.join("cluster").join("operator.json"), s)
    }

    /// Replaces one survivor's quorum-loss report.
    pub fn put_survivor_report(&self, report: &SurvivorReport) -> Result<(), StateError> {
        self.write_json(&self.root.join("recovery").join("reports").join(format!("{}.json", report.instance)), report)
    }

    /// Every survivor report on record.
    pub fn survivor_reports(&self) -> Result<Vec<SurvivorReport>, StateError> {
        self.read_each(&self.root.join("recovery").join("reports"), |e| {
            e.file_name().to_string_lossy().ends_with(".json").then(|| e.path())
        })
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

    /// The stored recovery decision.
    pub fn recovery_decision(&self) -> Result<Option<RecoveryDecision>, StateError> {
        self.read_json(&self.root.join("recovery").join("decision.json"))
    }

    /// Replaces the recovery decision (the caller holds the lease).
    pub fn put_recovery_decision(&self, decision: &RecoveryDecision) -> Result<(), StateError> {
        self.write_json(&self.root.join("recovery").join("decision.json"), decision)
    }

    /// Where backups live.
    pub fn backups_dir(&self) -> PathBuf {
        self.root.join("backups")
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

    /// All status snapshots (raw JSON) by instance.
    pub fn statuses(&self) -> Result<Vec<(InstanceId, serde_json::Value)>, StateError> {
        let dir = self.root.join("status");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json")
                && let Some(v) = self.read_json::<serde_json::Value>(&e.path())?
            {
                out.push((InstanceId(id.to_string()), v));
            }
        }
        Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> GroupSpec {
        GroupSpec {
            desired: 3,
            net: "127.0.9".into(),
            zones: vec!["a".into()],
            agent_exe: "/bin/true".into(),
            zookeeper_install: "/usr/share/java".into(),
            java: None,
            target_voters: 3,
            min_voters: 1,
            heap_mb: 128,
            tick_time_ms: 2000,
            slot_mode: false,
            names_domain: None,
            unhealthy_after_ms: 120_000,
            quorum_loss_after_ms: 10_000,
            backup_interval_ms: 3_600_000,
            separate_uids: false,
        }
    }

    #[test]
    fn concurrent_claims_are_unique() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = StateDir::create(dir.path(), &spec()).expect("create");
        let handles: Vec<_> = (0..64)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || s.claim(&InstanceId(format!("i-{i}")), "a").expect("claim"))
            })
            .collect();
        let mut ids: Vec<u32> = handles.into_iter().map(|h| h.join().expect("join").0).collect();
        ids.sort();
        assert_eq!(ids, (1..=64).collect::<Vec<_>>());
        // Idempotent for a holder; a released id is reused.
        assert_eq!(
            s.claim(&InstanceId("i-5".into()), "a").expect("again"),
            s.claim(&InstanceId("i-5".into()), "a").expect("again")
        );
        let (id, c) = s.claims().expect("claims").into_iter().next().expect("one");
        s.release(id, &c.instance).expect("release");
        assert_eq!(s.claim(&InstanceId("new".into()), "b").expect("claim"), id);
    }

    #[test]
    fn marker_is_written_once_and_lease_is_exclusive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = StateDir::create(dir.path(), &spec()).expect("create");
        let m = |who: &str| ClusterMarker {
            cluster_id: who.into(),
            genesis: vec![],
            created_by: InstanceId(who.into()),
            created_ms: 1,
            restored_from: None,
        };
        assert_eq!(s.create_marker(&m("first")).expect("create").cluster_id, "first");
        assert_eq!(s.create_marker(&m("second")).expect("create").cluster_id, "first");
        let (a, b) = (InstanceId("a".into()), InstanceId("b".into()));
        assert!(s.acquire_lease(&a, 1000, 0).expect("lease"));
        assert!(!s.acquire_lease(&b, 1000, 500).expect("lease"));
        assert!(s.acquire_lease(&a, 1000, 500).expect("renew"));
        assert!(s.acquire_lease(&b, 1000, 1600).expect("expired"));
    }
}
