//! zoo.cfg, the dynamic file, `myid`, the data stamp: reading them strictly, writing them atomically.
//! zoo.cfg's own parser and which keys zkpilot writes into it are in [`crate::zoo_cfg`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zkpilot_core::model::{EnsembleConfig, ServerId, ServerSpec};

pub use crate::zoo_cfg::ZooCfg;

pub use crate::error::FilesError;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io { path: path.to_path_buf(), source }
}

/// Writes `content` to `path` through a temporary file and a rename, so readers (ZooKeeper, other
/// agents) see the old or the new file, never half of one.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<(), FilesError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(content).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// Writes a file only its owner may read (a private key, a trust store): a new file under a
/// random name created exclusively with mode 0600 (so neither a planted symlink nor a file
/// another user made in its place is followed), handed to `owner` (the uid ZooKeeper runs as)
/// before it holds anything, synced, renamed over `path`, and the directory synced.
pub fn write_private(path: &Path, content: &[u8], owner: Option<u32>) -> Result<(), FilesError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{:016x}", fastrand::u64(..)));
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
    let written = (|| {
        if let Some(uid) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(uid))?;
        }
        f.write_all(content)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        drop(fs::remove_file(&tmp));
        return Err(FilesError::Io { path: tmp, source: e });
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Written into every data dir: which ensemble and which server the data belongs to. A server
/// never starts on a stamp that is not its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Cluster id from the cluster marker.
    pub cluster_id: String,
    /// Server id.
    pub server_id: ServerId,
}

/// Where one server's files live under its base directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Base directory (conf/, data/, logs/ below it). The conf dir must be writable and
    /// persistent: ZooKeeper writes `zoo.cfg.dynamic.<version>` next to zoo.cfg.
    pub base: PathBuf,
}

impl Layout {
    /// Layout under `base`.
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }
    /// Config directory.
    pub fn conf_dir(&self) -> PathBuf {
        self.base.join("conf")
    }
    /// zoo.cfg.
    pub fn zoo_cfg(&self) -> PathBuf {
        self.conf_dir().join("zoo.cfg")
    }
    /// dataDir.
    pub fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }
    /// myid.
    pub fn myid(&self) -> PathBuf {
        self.data_dir().join("myid")
    }
    /// The data stamp.
    pub fn stamp(&self) -> PathBuf {
        self.data_dir().join("zkpilot.stamp")
    }
    /// The ZOOKEEPER-261 marker that lets an empty data dir vote; created only at genesis.
    pub fn initialize(&self) -> PathBuf {
        self.data_dir().join("initialize")
    }
    /// Snapshots and transaction logs.
    pub fn version2(&self) -> PathBuf {
        self.data_dir().join("version-2")
    }
    /// Where the server's TLS files are.
    pub fn tls_dir(&self) -> PathBuf {
        self.conf_dir().join("tls")
    }
    /// The PEM key store: the server's private key, then its certificate (0600).
    pub fn keystore(&self) -> PathBuf {
        self.tls_dir().join("server.pem")
    }
    /// The PEM trust store: the cluster CA bundle.
    pub fn truststore(&self) -> PathBuf {
        self.tls_dir().join("ca.pem")
    }
    /// ZooKeeper's log file.
    pub fn log_file(&self) -> PathBuf {
        self.base.join("logs").join("zookeeper.log")
    }
}

/// What is on disk for one server.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalState {
    /// `myid`.
    pub myid: ServerId,
    /// The stamp.
    pub stamp: Stamp,
    /// zoo.cfg.
    pub zoo_cfg: ZooCfg,
    /// The dynamic file zoo.cfg points at, and its content.
    pub dynamic: (PathBuf, EnsembleConfig),
    /// Snapshots or transaction logs exist.
    pub has_data: bool,
}

impl LocalState {
    /// Reads a server's state. `Ok(None)`: nothing there (or an interrupted preparation with no
    /// ZooKeeper data, which can be redone). Errors name the file at fault; nothing is modified.
    pub fn read(layout: &Layout) -> Result<Option<Self>, FilesError> {
        let has_data = dir_has_entries(&layout.version2())?;
        if !layout.zoo_cfg().exists() {
            if has_data {
                return Err(FilesError::Refused {
                    path: layout.version2(),
                    why: "ZooKeeper data without a zoo.cfg: not written by zkpilot, refusing to touch it".into(),
                });
            }
            return Ok(None);
        }
        let zoo_cfg = ZooCfg::read(&layout.zoo_cfg())?;
        let myid_text = fs::read_to_string(layout.myid()).map_err(io(&layout.myid()))?;
        let myid = myid_text.trim().parse::<u32>().ok().and_then(|n| ServerId::new(n).ok()).ok_or_else(|| {
            FilesError::Malformed {
                path: layout.myid(),
                line: 1,
                why: format!("expected a server id 1..=255, found {:?}", myid_text.trim()),
            }
        })?;
        let stamp_text = fs::read_to_string(layout.stamp()).map_err(io(&layout.stamp()))?;
        let stamp: Stamp = serde_json::from_str(&stamp_text).map_err(|e| FilesError::Malformed {
            path: layout.stamp(),
            line: e.line(),
            why: e.to_string(),
        })?;
        if stamp.server_id != myid {
            return Err(FilesError::Refused {
                path: layout.stamp(),
                why: format!("stamp is for server {} but myid is {myid}", stamp.server_id),
            });
        }
        let dyn_path = PathBuf::from(zoo_cfg.get("dynamicConfigFile").ok_or_else(|| FilesError::Malformed {
            path: layout.zoo_cfg(),
            line: 0,
            why: "no dynamicConfigFile= line".into(),
        })?);
        let dyn_text = fs::read_to_string(&dyn_path).map_err(io(&dyn_path))?;
        let dynamic = EnsembleConfig::parse(&dyn_text).map_err(|e| FilesError::Malformed {
            path: dyn_path.clone(),
            line: 0,
            why: e.to_string(),
        })?;
        Ok(Some(Self { myid, stamp, zoo_cfg, dynamic: (dyn_path, dynamic), has_data }))
    }
}

fn dir_has_entries(dir: &Path) -> Result<bool, FilesError> {
    match fs::read_dir(dir) {
        Ok(mut it) => Ok(it.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FilesError::Io { path: dir.to_path_buf(), source: e }),
    }
}

/// Prepares a fresh server: myid, stamp, `initialize` (genesis only), the version-0 dynamic file,
/// and zoo.cfg last, so a zoo.cfg on disk always means "fully prepared". Refuses a directory that
/// already holds ZooKeeper data.
pub fn prepare_new(
    layout: &Layout,
    stamp: &Stamp,
    static_keys: &[(String, String)],
    initial: &EnsembleConfig,
    genesis: bool,
) -> Result<(), FilesError> {
    prepare(layout, stamp, static_keys, initial, genesis, None)
}

/// [`prepare_new`] for the first server of a restored ensemble: `restored` (a fetched, verified
/// backup) becomes `version-2` before zoo.cfg is written. Interrupted in between, the directory
/// holds data without zoo.cfg, which [`LocalState::read`] refuses: a half-prepared restore never
/// starts as if it were complete, and the operator is told which directory to look at.
pub fn prepare_restored(
    layout: &Layout,
    stamp: &Stamp,
    static_keys: &[(String, String)],
    initial: &EnsembleConfig,
    restored: &Path,
) -> Result<(), FilesError> {
    prepare(layout, stamp, static_keys, initial, true, Some(restored))
}

fn prepare(
    layout: &Layout,
    stamp: &Stamp,
    static_keys: &[(String, String)],
    initial: &EnsembleConfig,
    genesis: bool,
    restored: Option<&Path>,
) -> Result<(), FilesError> {
    if dir_has_entries(&layout.version2())? || layout.zoo_cfg().exists() {
        return Err(FilesError::Refused {
            path: layout.base.clone(),
            why: "already holds a ZooKeeper server; a new server is never prepared over it".into(),
        });
    }
    for d in [layout.conf_dir(), layout.data_dir(), layout.base.join("logs")] {
        fs::create_dir_all(&d).map_err(io(&d))?;
    }
    if let Some(from) = restored {
        let v2 = layout.version2();
        match fs::remove_dir(&v2) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FilesError::Io { path: v2, source: e }),
        }
        fs::rename(from, &v2).map_err(io(&v2))?;
    }
    write_atomic(&layout.myid(), format!("{}\n", stamp.server_id).as_bytes())?;
    let stamp_json = serde_json::to_string(stamp).map_err(|e| FilesError::Malformed {
        path: layout.stamp(),
        line: 0,
        why: e.to_string(),
    })?;
    write_atomic(&layout.stamp(), stamp_json.as_bytes())?;
    if genesis {
        write_atomic(&layout.initialize(), b"")?;
    }
    // No hex suffix: version 0, so the first leader stamps its NEWLEADER zxid and any established
    // config outranks this one during election gossip (ZooKeeper's Leader.java re-stamps the
    // established config with the NEWLEADER zxid for exactly this; Dynamic Reconfiguration guide,
    // "Adding servers").
    let dynamic = layout.conf_dir().join("zoo.cfg.dynamic");
    write_atomic(&dynamic, initial.render_dynamic().as_bytes())?;
    let mut cfg = ZooCfg::new();
    cfg.comment(
        "Written by zkpilot. ZooKeeper rewrites dynamicConfigFile= on every committed config; zkpilot keeps it.",
    );
    for (k, v) in static_keys {
        cfg.set(k, v);
    }
    cfg.set("dataDir", &layout.data_dir().to_string_lossy());
    cfg.set("dynamicConfigFile", &dynamic.to_string_lossy());
    write_atomic(&layout.zoo_cfg(), cfg.render().as_bytes())
}

/// Brings zkpilot's static keys up to date on restart, leaving `dataDir` and `dynamicConfigFile=`
/// (ZooKeeper's) alone, and removes every other key: zoo.cfg holds exactly what zkpilot decided
/// (its own keys and the base config's), so a key added by hand or left by an older base config
/// (`skipACL`, however spelled) is gone at the next start. Returns whether the file changed.
pub fn update_static(
    layout: &Layout,
    state: &mut LocalState,
    static_keys: &[(String, String)],
) -> Result<bool, FilesError> {
    let foreign = state
        .zoo_cfg
        .retain(|k| k == "dynamicConfigFile" || k == "dataDir" || static_keys.iter().any(|(own, _)| own == k));
    if !foreign.is_empty() {
        tracing::warn!(file = %layout.zoo_cfg().display(), removed = ?foreign, "zoo.cfg keys zkpilot did not set, removed");
    }
    let mut changed = !foreign.is_empty();
    for (k, v) in static_keys {
        if k != "dynamicConfigFile" && k != "dataDir" {
            changed |= state.zoo_cfg.set(k, v);
        }
    }
    if changed {
        write_atomic(&layout.zoo_cfg(), state.zoo_cfg.render().as_bytes())?;
    }
    Ok(changed)
}

/// The documented fix for a joiner that restarts before it was added (its dynamic file no longer
/// lists it and ZooKeeper exits with "My id N not in the peer list"): a fresh version-0 file with
/// the current committed config plus itself, and zoo.cfg repointed at it. Data is untouched.
pub fn repoint_joiner(layout: &Layout, state: &mut LocalState, with_me: &EnsembleConfig) -> Result<(), FilesError> {
    let path = layout.conf_dir().join("zoo.cfg.dynamic.rejoin");
    write_atomic(&path, with_me.render_dynamic().as_bytes())?;
    state.zoo_cfg.set("dynamicConfigFile", &path.to_string_lossy());
    write_atomic(&layout.zoo_cfg(), state.zoo_cfg.render().as_bytes())?;
    state.dynamic = (path, with_me.clone());
    Ok(())
}

/// True if `version2` holds transaction logs but no snapshot: ZooKeeper refuses to load that
/// ("No snapshot found, but there are log entries").
pub fn logs_without_snapshot(version2: &Path) -> Result<bool, FilesError> {
    let entries = match fs::read_dir(version2) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(FilesError::Io { path: version2.to_path_buf(), source: e }),
    };
    let (mut logs, mut snapshots) = (false, false);
    for entry in entries {
        let name = entry.map_err(io(version2))?.file_name().to_string_lossy().into_owned();
        logs |= name.starts_with("log.");
        snapshots |= name.starts_with("snapshot.");
    }
    Ok(logs && !snapshots)
}

/// Hands `dir` and everything below it to `uid` (gid the same number).
pub fn chown_tree(dir: &Path, uid: u32) -> Result<(), FilesError> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(uid)).map_err(io(dir))?;
    if fs::symlink_metadata(dir).map_err(io(dir))?.is_dir() {
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            chown_tree(&entry.map_err(io(dir))?.path(), uid)?;
        }
    }
    Ok(())
}

/// The config version a dynamic file carries in its name (`zoo.cfg.dynamic.<hex>`); 0 for a
/// version-less file, as ZooKeeper reads it.
pub fn dynamic_version(path: &Path) -> u64 {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once(".dynamic."))
        .and_then(|(_, v)| u64::from_str_radix(v, 16).ok())
        .unwrap_or(0)
}

/// Quorum-loss rebuild on the chosen survivor (README "Quorum-loss recovery"): a fresh
/// version-less dynamic file listing only this server, so the first leader stamps it with a zxid
/// of the new epoch (never a hand-picked version: a too-high one makes every later reconfig a
/// silent no-op); a pending `zoo.cfg.dynamic.next` is removed, or the new leader would try to
/// complete the dead ensemble's reconfig. `version-2` (snapshots, logs, epochs) is not touched.
pub fn rebuild_alone(layout: &Layout, state: &mut LocalState, me: &ServerSpec) -> Result<(), FilesError> {
    let next = PathBuf::from(format!("{}.dynamic.next", layout.zoo_cfg().display()));
    match fs::remove_file(&next) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(FilesError::Io { path: next, source: e }),
    }
    let mut alone = EnsembleConfig::default();
    alone.servers.insert(me.id, me.with_role(zkpilot_core::model::Role::Participant));
    let path = layout.conf_dir().join("zoo.cfg.dynamic.recovery");
    write_atomic(&path, alone.render_dynamic().as_bytes())?;
    state.zoo_cfg.set("dynamicConfigFile", &path.to_string_lossy());
    write_atomic(&layout.zoo_cfg(), state.zoo_cfg.render().as_bytes())?;
    state.dynamic = (path, alone);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EnsembleConfig {
        EnsembleConfig::parse("server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181").expect("valid")
    }

    #[test]
    fn prepare_then_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path().join("s1"));
        assert_eq!(LocalState::read(&layout).expect("empty is fine"), None);
        let stamp = Stamp { cluster_id: "c1".into(), server_id: ServerId(1) };
        let keys = vec![("tickTime".to_string(), "2000".to_string())];
        prepare_new(&layout, &stamp, &keys, &sample(), true).expect("prepares");
        let st = LocalState::read(&layout).expect("reads").expect("present");
        assert_eq!(st.myid, ServerId(1));
        assert_eq!(st.dynamic.1, sample());
        assert!(layout.initialize().exists());
        // A second preparation over it is refused and changes nothing.
        let before = fs::read_to_string(layout.zoo_cfg()).expect("zoo.cfg");
        assert!(matches!(prepare_new(&layout, &stamp, &keys, &sample(), false), Err(FilesError::Refused { .. })));
        assert_eq!(before, fs::read_to_string(layout.zoo_cfg()).expect("zoo.cfg"));
    }

    /// A key zkpilot did not set, however it is spelled in the file, is gone after a restart's
    /// update; zkpilot's own keys, `dataDir` and ZooKeeper's `dynamicConfigFile` stay.
    #[test]
    fn update_static_removes_every_key_zkpilot_did_not_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path().join("s1"));
        let stamp = Stamp { cluster_id: "c1".into(), server_id: ServerId(1) };
        let keys = vec![("tickTime".to_string(), "2000".to_string()), ("maxClientCnxns".to_string(), "9".to_string())];
        prepare_new(&layout, &stamp, &keys, &sample(), true).expect("prepares");
        let text = fs::read_to_string(layout.zoo_cfg()).expect("zoo.cfg");
        fs::write(layout.zoo_cfg(), format!("{text}skip\\\n  ACL=yes\nreconfig\\Enabled : false\n")).expect("tamper");
        let mut st = LocalState::read(&layout).expect("reads").expect("present");
        assert_eq!(st.zoo_cfg.get("skipACL"), Some("yes"), "read as ZooKeeper reads it");
        let keys = vec![("tickTime".to_string(), "2000".to_string())];
        assert!(update_static(&layout, &mut st, &keys).expect("updates"));
        let after = LocalState::read(&layout).expect("reads").expect("present");
        let entries: Vec<&str> = after.zoo_cfg.entries().map(|(k, _)| k).collect();
        assert_eq!(entries, vec!["tickTime", "dataDir", "dynamicConfigFile"], "{}", after.zoo_cfg.render());
        assert!(
            !update_static(&layout, &mut LocalState::read(&layout).expect("reads").expect("present"), &keys)
                .expect("updates")
        );
    }

    #[test]
    fn rebuild_alone_drops_the_pending_config_and_keeps_the_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        let stamp = Stamp { cluster_id: "c".into(), server_id: ServerId(1) };
        prepare_new(&layout, &stamp, &[], &sample(), false).expect("prepare");
        fs::create_dir_all(layout.version2()).expect("mkdir");
        fs::write(layout.version2().join("log.100000001"), b"data").expect("write");
        let next = PathBuf::from(format!("{}.dynamic.next", layout.zoo_cfg().display()));
        fs::write(&next, "server.9=x:1:2:participant;x:3\n").expect("write");
        let mut state = LocalState::read(&layout).expect("read").expect("state");
        let me = sample().servers[&ServerId(1)].clone();
        rebuild_alone(&layout, &mut state, &me).expect("rebuild");
        assert!(!next.exists());
        let back = LocalState::read(&layout).expect("read").expect("state");
        assert_eq!(back.dynamic.1.servers.keys().copied().collect::<Vec<_>>(), vec![ServerId(1)]);
        assert_eq!(dynamic_version(&back.dynamic.0), 0, "version-less");
        assert_eq!(fs::read(layout.version2().join("log.100000001")).expect("data kept"), b"data");
        assert_eq!(dynamic_version(Path::new("/c/zoo.cfg.dynamic.2000000a1")), 0x2_0000_00a1);
    }

    #[test]
    fn foreign_data_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        fs::create_dir_all(layout.version2()).expect("mkdir");
        fs::write(layout.version2().join("log.100000001"), b"x").expect("write");
        let err = LocalState::read(&layout).expect_err("foreign");
        assert!(err.to_string().contains("not written by zkpilot"), "{err}");
    }
}
