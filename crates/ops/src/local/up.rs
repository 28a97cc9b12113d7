//! `local up`: validate everything, then create (or resume) the group's state directory, start
//! its controller and wait until the ensemble serves.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zkpilot_core::version::LearnerSync;
use zkpilot_local::{GroupSpec, LocalBackend, StateDir};
use zkpilot_runtime::config::IdentityMode;
use zkpilot_runtime::view::ClusterView;
use zkpilot_zk::Install;

use super::agent_config::{api_token_path, tls_ca_key_path, tls_ca_path};
use super::error::GroupError;
use super::{control, view};
use crate::progress::{Progress, Sink};

/// What `local up` is asked for.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Number of instances.
    pub size: u32,
    /// The group's state directory.
    pub dir: PathBuf,
    /// Loopback /24 (`127.X.Y`); instance N gets `127.X.Y.N`.
    pub net: String,
    /// Voters wanted (odd); further members are observers.
    pub target_voters: usize,
    /// ZooKeeper install (Debian `/usr/share/java` or a tarball home).
    pub zookeeper: PathBuf,
    /// JVM heap per server, MiB.
    pub heap_mb: u32,
    /// How long to wait for the ensemble to serve.
    pub timeout: Duration,
    /// Elastic (a replacement is a new server) or slot (it takes over the lost instance's address
    /// and data dir).
    pub mode: IdentityMode,
    /// Name indirection domain: server lines say `zk-<id>.<domain>`.
    pub names: Option<String>,
    /// How long a member may not serve before the group replaces its instance (zero: never).
    pub unhealthy_after: Duration,
    /// How long with no serving member before survivors start quorum-loss recovery.
    pub quorum_loss_after: Duration,
    /// Each instance's ZooKeeper runs as its own uid (root only).
    pub separate_uids: bool,
    /// Interval of the leader's periodic backups (zero: only before changes and on request).
    pub backup_every: Duration,
    /// How long after an instance fails the group notices and replaces it.
    pub failure_detected_after: Duration,
    /// How leaders sync learners that are behind.
    pub learner_sync: LearnerSync,
    /// The `zkpilot` binary the controller and the agents run as.
    pub zkpilot: PathBuf,
    /// TLS for the quorum and the clients (a new group only: see docs/tls.md).
    pub tls: bool,
    /// Lifetime of the servers' certificates (renewed when a third is left).
    pub cert_lifetime: Duration,
}

impl UpOptions {
    /// An elastic group of `size` with the defaults `zkpilot local up` has.
    pub fn new(size: u32, dir: &Path, net: &str, zookeeper: &Path, zkpilot: &Path) -> Self {
        Self {
            size,
            dir: dir.to_path_buf(),
            net: net.to_string(),
            target_voters: 3,
            zookeeper: zookeeper.to_path_buf(),
            heap_mb: 128,
            timeout: Duration::from_secs(240),
            mode: IdentityMode::Elastic,
            names: None,
            unhealthy_after: Duration::from_secs(120),
            quorum_loss_after: Duration::from_secs(10),
            separate_uids: false,
            backup_every: Duration::from_secs(3600),
            failure_detected_after: Duration::from_millis(zkpilot_local::DEFAULT_FAILURE_DETECTED_MS),
            learner_sync: LearnerSync::Auto,
            zkpilot: zkpilot.to_path_buf(),
            tls: false,
            cert_lifetime: Duration::from_secs(30 * 86_400),
        }
    }

    fn spec(&self) -> GroupSpec {
        GroupSpec {
            desired: self.size as usize,
            net: self.net.clone(),
            zones: vec!["local-a".into(), "local-b".into(), "local-c".into()],
            agent_exe: self.zkpilot.clone(),
            zookeeper_install: self.zookeeper.clone(),
            java: None,
            target_voters: self.target_voters,
            min_voters: 1,
            heap_mb: self.heap_mb,
            tick_time_ms: 2000,
            slot_mode: self.mode == IdentityMode::Slot,
            names_domain: self.names.clone(),
            unhealthy_after_ms: self.unhealthy_after.as_millis() as u64,
            separate_uids: self.separate_uids,
            quorum_loss_after_ms: self.quorum_loss_after.as_millis() as u64,
            backup_interval_ms: self.backup_every.as_millis() as u64,
            failure_detected_after_ms: self.failure_detected_after.as_millis() as u64,
            learner_sync: self.learner_sync,
            tls: self.tls,
            cert_lifetime_s: self.cert_lifetime.as_secs(),
        }
    }
}

/// A backup for a new group to start from: the store it is in and its name (or `latest`).
#[derive(Debug, Clone, Copy)]
pub struct Seed<'a> {
    /// The store (another group's backend).
    pub from: &'a LocalBackend,
    /// Backup name or `latest`.
    pub backup: &'a str,
}

/// Checks a `--net` value: three octets of a loopback address.
pub fn validate_net(net: &str) -> Result<(), GroupError> {
    let ip: Ipv4Addr = format!("{net}.1").parse().map_err(|_| GroupError::BadNet { net: net.to_string() })?;
    if !ip.is_loopback() {
        return Err(GroupError::NotLoopback { net: net.to_string() });
    }
    Ok(())
}

/// Another group (or anything else) listening on the addresses this one would use would make its
/// servers fail to bind, or worse, talk to a foreign ensemble: refuse up front.
pub fn addresses_free(net: &str, size: u32) -> Result<(), GroupError> {
    for n in 1..=size {
        for port in [2181u16, 2888, 3888, 8080, super::agent_config::SECURE_CLIENT_PORT] {
            let addr = format!("{net}.{n}:{port}");
            if std::net::TcpListener::bind(&addr).is_err() {
                return Err(GroupError::AddressInUse { addr, net: net.to_string() });
            }
        }
    }
    Ok(())
}

/// `local up`, optionally restoring a backup: it is copied (and verified) into the new group's
/// store and named as the restore seed before the controller starts, so the first server is born
/// on it. Validates everything before writing anything; refuses a directory whose group already
/// has an ensemble when seeding. An existing group restarts with its own settings and data: only
/// the size changes.
pub async fn up(opts: &UpOptions, seed: Option<Seed<'_>>, progress: &mut Sink<'_>) -> Result<ClusterView, GroupError> {
    validate_net(&opts.net)?;
    let policy = zkpilot_core::Policy { target_voters: opts.target_voters, ..Default::default() };
    policy.validate().map_err(GroupError::Policy)?;
    if let Some(d) = &opts.names
        && !zkpilot_runtime::config::is_dns_name(d)
    {
        return Err(GroupError::BadNames { domain: d.clone() });
    }
    let install = Install::detect(&opts.zookeeper, None).map_err(GroupError::Install)?;
    if opts.tls && !zkpilot_core::version::supports_managed_tls(install.version.as_deref()) {
        return Err(GroupError::TlsRelease { version: install.version.clone().unwrap_or_default() });
    }
    if opts.separate_uids && !nix::unistd::Uid::effective().is_root() {
        return Err(GroupError::NotRoot);
    }
    let dir = &opts.dir;
    let mut opts = std::borrow::Cow::Borrowed(opts);
    if opts.separate_uids && control::controller_pid(dir).is_none() {
        let staged = readable_install(&install, &opts.zookeeper, dir, progress)?;
        opts.to_mut().zookeeper = staged;
    }
    let opts = opts.as_ref();
    if let Some(pid) = control::controller_pid(dir) {
        return Err(GroupError::ControllerRunning { pid, dir: dir.clone() });
    }
    addresses_free(&opts.net, opts.size)?;
    check_base_config(dir, opts.learner_sync)?;
    std::fs::create_dir_all(dir).map_err(GroupError::io("creating", dir))?;
    let state = match StateDir::open(dir) {
        Ok(existing) if seed.is_some() && existing.marker()?.is_some() => {
            return Err(GroupError::HasEnsemble(dir.clone()));
        }
        Ok(existing) => {
            existing.set_desired(opts.size as usize)?;
            existing
        }
        Err(_) => StateDir::create(dir, &opts.spec())?,
    };
    if let Some(seed) = seed {
        let target = LocalBackend::open(dir)?;
        crate::backups::seed(seed.from, &target, seed.backup, &dir.join("restore-scratch"))
            .await
            .map_err(|e| GroupError::Seed { backup: seed.backup.to_string(), dir: dir.clone(), source: Box::new(e) })?;
        progress(Progress::Restoring { backup: seed.backup, dir });
    }
    ensure_secret(&state.secret_path())?;
    ensure_secret(&api_token_path(&state))?;
    if state.group()?.tls {
        ensure_ca(&state)?;
    }
    start_controller(&state, &opts.zkpilot)?;
    progress(Progress::ControllerStarted { dir, size: opts.size });
    view::wait_converged(dir, opts.timeout, progress).await
}

/// The group's `base.cfg`, if there is one, checked as every agent checks it before it writes a
/// zoo.cfg: an error here, before anything starts, rather than agents that stop one by one.
fn check_base_config(dir: &Path, sync: LearnerSync) -> Result<(), GroupError> {
    let path = dir.join("base.cfg");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(GroupError::BaseConfig(zkpilot_zk::FilesError::Io { path, source: e })),
    };
    zkpilot_zk::zoo_cfg::merge_base(&[], &text, &path, sync.owned_keys()).map(|_| ()).map_err(GroupError::BaseConfig)
}

/// With separate uids: `home` if the servers' uids can read it, else a copy inside the group
/// directory (the default install is under `$HOME/.cache`, which a private home closes).
pub(crate) fn readable_install(
    install: &Install,
    home: &Path,
    dir: &Path,
    progress: &mut Sink<'_>,
) -> Result<PathBuf, GroupError> {
    let uid = super::agent_config::SEPARATE_UID_BASE + 1;
    let Some(closed) = zkpilot_zk::install::closed_to(&install.jars, uid, uid) else {
        return Ok(home.to_path_buf());
    };
    let staged = stage_install(install, dir)?;
    progress(Progress::InstallStaged { from: home, to: &staged, closed: &closed });
    Ok(staged)
}

/// Copies (hard-links where it can) a release's `lib/` into `<dir>/zookeeper-<version>/lib`, open
/// to every uid, and returns that home. Debian's layout is world-readable already and never needs
/// this.
fn stage_install(install: &Install, dir: &Path) -> Result<PathBuf, GroupError> {
    use std::os::unix::fs::PermissionsExt;
    let version = install.version.clone().unwrap_or_else(|| "unknown".into());
    let home = dir.join(format!("zookeeper-{version}"));
    let lib = home.join("lib");
    std::fs::create_dir_all(&lib).map_err(GroupError::io("creating", &lib))?;
    for d in [dir, home.as_path(), lib.as_path()] {
        let mut p = std::fs::metadata(d).map_err(GroupError::io("reading", d))?.permissions();
        p.set_mode(p.mode() | 0o755);
        std::fs::set_permissions(d, p).map_err(GroupError::io("opening", d))?;
    }
    for e in std::fs::read_dir(&install.jars).map_err(GroupError::io("reading", &install.jars))?.flatten() {
        let from = e.path();
        let to = lib.join(e.file_name());
        if to.exists() || !from.is_file() {
            continue;
        }
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(GroupError::io("copying", &from))?;
        }
        let mut p = std::fs::metadata(&to).map_err(GroupError::io("reading", &to))?.permissions();
        p.set_mode(p.mode() | 0o444);
        std::fs::set_permissions(&to, p).map_err(GroupError::io("opening", &to))?;
    }
    Ok(home)
}

/// A random 24-byte hex secret in a new 0600 file, unless the file exists.
fn ensure_secret(path: &Path) -> Result<(), GroupError> {
    if path.exists() {
        return Ok(());
    }
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(GroupError::io("reading", "/dev/urandom"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(GroupError::io("creating", path))?;
    writeln!(f, "{hex}").map_err(GroupError::io("writing", path))?;
    Ok(())
}

/// The group's CA (`<dir>/tls/ca.pem`, and its key 0600), unless it exists. Ten years: rotating
/// it is a deliberate act (docs/tls.md), not an expiry to race.
fn ensure_ca(state: &StateDir) -> Result<(), GroupError> {
    let (cert, key) = (tls_ca_path(state), tls_ca_key_path(state));
    if cert.exists() && key.exists() {
        return Ok(());
    }
    let dir = state.root().join("tls");
    std::fs::create_dir_all(&dir).map_err(GroupError::io("creating", &dir))?;
    let name = state.root().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let ten_years = Duration::from_secs(10 * 365 * 86_400);
    let (cert_pem, key_pem) = zkpilot_zk::tls::new_authority(&name, std::time::SystemTime::now(), ten_years)
        .map_err(|e| GroupError::Tls(e.to_string()))?;
    zkpilot_zk::files::write_private(&key, key_pem.as_bytes(), None).map_err(|e| GroupError::Tls(e.to_string()))?;
    std::fs::write(&cert, cert_pem).map_err(GroupError::io("writing", &cert))?;
    Ok(())
}

/// `zkpilot local controller --dir DIR` in its own process group, logging to
/// `DIR/controller.log`; its pid goes to `DIR/controller.pid`.
fn start_controller(state: &StateDir, zkpilot: &Path) -> Result<(), GroupError> {
    let log = state.root().join("controller.log");
    let out =
        std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(GroupError::io("opening", &log))?;
    let err = out.try_clone().map_err(GroupError::io("opening", &log))?;
    let mut cmd = std::process::Command::new(zkpilot);
    cmd.args(["local", "controller", "--dir"]).arg(state.root());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(GroupError::io("starting the controller", zkpilot))?;
    let pid_path = state.controller_pid_path();
    std::fs::write(&pid_path, child.id().to_string()).map_err(GroupError::io("writing", pid_path))?;
    Ok(())
}
