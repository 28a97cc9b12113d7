//! `zkpilot local ...`: drive a local group (state dir + controller process).

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use nix::sys::signal::Signal;
use zkpilot_core::model::{InstanceId, InstanceState, ServerId};
use zkpilot_local::group::{Controller, kill_instance, signal_group, zk_pid};
use zkpilot_local::{GroupSpec, InstanceRecord, LocalBackend, StateDir};
use zkpilot_runtime::AgentConfig;
use zkpilot_runtime::config::{
    AgentSection, ApiSection, BackendSection, BackupSection, ClusterSection, IdentityMode, InstanceSection,
    LogsSection, NamesSection, RecoverySection, ServerSection,
};
use zkpilot_runtime::status::AgentStatus;
use zkpilot_runtime::view;
pub use zkpilot_runtime::view::{ClusterView, InstanceView, MemberView};
use zkpilot_zk::{Install, Secret, ZkClient};

fn default_dir() -> PathBuf {
    std::env::var_os("ZKPILOT_LOCAL_DIR").map_or_else(|| std::env::temp_dir().join("zkpilot-local"), PathBuf::from)
}

/// Group directory option shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct DirArg {
    /// State directory of the group [default: $ZKPILOT_LOCAL_DIR or $TMPDIR/zkpilot-local].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

impl DirArg {
    pub fn path(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(default_dir)
    }
}

/// Options of `local up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Number of instances.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=254))]
    pub size: u32,
    #[command(flatten)]
    pub dir: DirArg,
    /// Loopback /24 for the instances (`127.X.Y`); instance N gets `127.X.Y.N`.
    #[arg(long, default_value = "127.0.1")]
    pub net: String,
    /// Voters wanted (odd); further members are observers.
    #[arg(long, default_value_t = 3)]
    pub target_voters: usize,
    /// ZooKeeper install (Debian `/usr/share/java` or a tarball home).
    #[arg(long, default_value = "/usr/share/java")]
    pub zookeeper: PathBuf,
    /// JVM heap per server, MiB.
    #[arg(long, default_value_t = 128)]
    pub heap_mb: u32,
    /// Seconds to wait for the ensemble to serve.
    #[arg(long, default_value_t = 240)]
    pub timeout: u64,
    /// `elastic`: a replacement is a new server (new id, joined by reconfig). `slot`: it takes
    /// over the lost instance's address and data dir and restarts the same server, no reconfig.
    #[arg(long, default_value = "elastic", value_parser = ["elastic", "slot"])]
    pub mode: String,
    /// Name indirection: server lines say `zk-<id>.<DOMAIN>`, kept current in `<dir>/hosts`
    /// (handed to the JVMs). With `--mode slot` a replacement keeps the data but not the
    /// address; its name follows it.
    #[arg(long, value_name = "DOMAIN")]
    pub names: Option<String>,
    /// Seconds a member may not serve before the group replaces its instance (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub unhealthy_after: u64,
    /// Seconds with no serving member before survivors start quorum-loss recovery.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub quorum_loss_after: u64,
    /// Run each instance's ZooKeeper as its own uid (20000 + instance number; root only), so
    /// `meta skuid` firewall rules can partition one server from the others on loopback.
    #[arg(long)]
    pub separate_uids: bool,
    /// Seconds between the leader's periodic backups into `<dir>/backups` (0: only the backups
    /// before membership changes and on request).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub backup_every: u64,
}

impl UpArgs {
    /// An elastic group of `size` with the defaults `local up` has, for the commands that bring
    /// one up themselves (`demo`, `chaos`).
    pub fn new(size: u32, dir: &Path, net: &str, zookeeper: &Path) -> Self {
        Self {
            size,
            dir: DirArg { dir: Some(dir.to_path_buf()) },
            net: net.to_string(),
            target_voters: 3,
            zookeeper: zookeeper.to_path_buf(),
            heap_mb: 128,
            timeout: 240,
            mode: "elastic".into(),
            names: None,
            unhealthy_after: 120,
            quorum_loss_after: 10,
            separate_uids: false,
            backup_every: 3600,
        }
    }
}

/// Instance N's ZooKeeper runs as uid `SEPARATE_UID_BASE + N` with `--separate-uids`.
pub const SEPARATE_UID_BASE: u32 = 20_000;

/// `zkpilot local` subcommands.
#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Start a group controller and N instances; return when the ensemble serves.
    Up(UpArgs),
    /// Show members, roles, leader, config version, connection string and the last plan.
    Status {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change the desired number of instances (like SetDesiredCapacity).
    Scale {
        /// New size.
        #[arg(value_parser = clap::value_parser!(u32).range(1..=254))]
        size: u32,
        #[command(flatten)]
        dir: DirArg,
        /// Return at once instead of waiting for convergence.
        #[arg(long)]
        no_wait: bool,
        /// Seconds to wait.
        #[arg(long, default_value_t = 240)]
        timeout: u64,
    },
    /// SIGKILL the instance holding server ID (agent and ZooKeeper), like an instance failure;
    /// the group launches a replacement with a new address and an empty disk.
    Kill {
        /// Server id.
        id: u32,
        #[command(flatten)]
        dir: DirArg,
        /// Kill only the agent process (its ZooKeeper dies with it); the instance and its disk
        /// stay, and the controller restarts the agent, which restarts ZooKeeper unchanged.
        #[arg(long)]
        agent_only: bool,
    },
    /// Replace the instance holding server ID in a planned way (like terminating an instance of an
    /// Auto Scaling group without decrementing): the replacement is swapped in by reconfig before
    /// the old server stops.
    Terminate {
        /// Server id.
        id: u32,
        #[command(flatten)]
        dir: DirArg,
    },
    /// Stop everything and leave nothing running (data stays on disk).
    Down {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Run the group controller in the foreground (started by `up`).
    #[command(hide = true)]
    Controller {
        #[command(flatten)]
        dir: DirArg,
    },
}

/// Dispatches a subcommand.
pub async fn run(cmd: LocalCommand) -> anyhow::Result<()> {
    match cmd {
        LocalCommand::Up(args) => up(&args).await.map(|_| ()),
        LocalCommand::Status { dir, json } => {
            let v = cluster_view(&dir.path()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", render_table(&v));
            }
            Ok(())
        }
        LocalCommand::Scale { size, dir, no_wait, timeout } => {
            let state = StateDir::open(dir.path())?;
            state.set_desired(size as usize)?;
            eprintln!("desired capacity set to {size}");
            if !no_wait {
                wait_converged(&dir.path(), Duration::from_secs(timeout)).await?;
            }
            Ok(())
        }
        LocalCommand::Kill { id, dir, agent_only } => kill(&dir.path(), ServerId(id), agent_only).map(|_| ()),
        LocalCommand::Terminate { id, dir } => terminate(&dir.path(), ServerId(id)).map(|_| ()),
        LocalCommand::Down { dir } => down(&dir.path()).await,
        LocalCommand::Controller { dir } => {
            let state = StateDir::open(dir.path())?;
            Controller::new(state, Box::new(render_agent_config)).run(crate::shutdown_signal()).await?;
            Ok(())
        }
    }
}

pub(crate) fn validate_net(net: &str) -> anyhow::Result<()> {
    let ip: Ipv4Addr =
        format!("{net}.1").parse().with_context(|| format!("--net {net:?}: expected three octets like 127.0.1"))?;
    if !ip.is_loopback() {
        bail!("--net {net}: the local backend only uses loopback addresses (127.0.0.0/8)");
    }
    Ok(())
}

/// `local up`. Validates everything before writing anything.
pub async fn up(args: &UpArgs) -> anyhow::Result<ClusterView> {
    up_seeded(args, None).await
}

/// A backup for a new group to start from: the store it is in and its name (or `latest`).
pub struct Seed<'a> {
    /// The store (another group's backend).
    pub from: &'a LocalBackend,
    /// Backup name or `latest`.
    pub backup: &'a str,
}

/// `local up`, optionally restoring a backup: it is copied (and verified) into the new group's
/// store and named as the restore seed before the controller starts, so the first server is born
/// on it. Refuses a directory whose group already has an ensemble.
pub async fn up_seeded(args: &UpArgs, seed: Option<Seed<'_>>) -> anyhow::Result<ClusterView> {
    validate_net(&args.net)?;
    let policy = zkpilot_core::Policy { target_voters: args.target_voters, ..Default::default() };
    policy.validate().context("--target-voters")?;
    if let Some(d) = &args.names
        && !zkpilot_runtime::config::is_dns_name(d)
    {
        bail!("--names: {d:?} is not a DNS name (letters, digits, '-', dot-separated)");
    }
    Install::detect(&args.zookeeper, None).context("--zookeeper")?;
    if args.separate_uids && !nix::unistd::Uid::effective().is_root() {
        bail!("--separate-uids: only root can start servers as other uids");
    }
    let dir = args.dir.path();
    if let Some(pid) = controller_pid(&dir) {
        bail!("a controller (pid {pid}) already runs for {}; use `zkpilot local scale` or `down`", dir.display());
    }
    addresses_free(&args.net, args.size)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let spec = GroupSpec {
        desired: args.size as usize,
        net: args.net.clone(),
        zones: vec!["local-a".into(), "local-b".into(), "local-c".into()],
        agent_exe: std::env::current_exe().context("locating the zkpilot binary")?,
        zookeeper_install: args.zookeeper.clone(),
        java: None,
        target_voters: args.target_voters,
        min_voters: 1,
        heap_mb: args.heap_mb,
        tick_time_ms: 2000,
        slot_mode: args.mode == "slot",
        names_domain: args.names.clone(),
        unhealthy_after_ms: args.unhealthy_after * 1000,
        separate_uids: args.separate_uids,
        quorum_loss_after_ms: args.quorum_loss_after * 1000,
        backup_interval_ms: args.backup_every * 1000,
    };
    let state = match StateDir::open(&dir) {
        Ok(existing) if seed.is_some() && existing.marker()?.is_some() => {
            bail!("{}: this group already has an ensemble; restore into a new --dir", dir.display());
        }
        Ok(existing) => {
            // An existing group restarts with its own settings and data: only the size changes.
            existing.set_desired(args.size as usize)?;
            existing
        }
        Err(_) => StateDir::create(&dir, &spec)?,
    };
    if let Some(seed) = seed {
        let target = LocalBackend::open(&dir)?;
        crate::backups::seed(seed.from, &target, seed.backup, &dir.join("restore-scratch"))
            .await
            .with_context(|| format!("restoring backup {} into {}", seed.backup, dir.display()))?;
        eprintln!("restoring backup {} into {}", seed.backup, dir.display());
    }
    ensure_secret(&state.secret_path())?;
    ensure_secret(&api_token_path(&state))?;
    start_controller(&state)?;
    eprintln!("controller started for {} ({} instances)", dir.display(), args.size);
    wait_converged(&dir, Duration::from_secs(args.timeout)).await
}

/// Another group (or anything else) listening on the addresses this one would use would make its
/// servers fail to bind, or worse, talk to a foreign ensemble: refuse up front.
pub(crate) fn addresses_free(net: &str, size: u32) -> anyhow::Result<()> {
    for n in 1..=size {
        for port in [2181u16, 2888, 3888, 8080] {
            let addr = format!("{net}.{n}:{port}");
            if std::net::TcpListener::bind(&addr).is_err() {
                bail!("{addr} is in use (another group on --net {net}?); choose another --net");
            }
        }
    }
    Ok(())
}

/// The bearer token of every agent's API in a local group (0600).
pub fn api_token_path(state: &StateDir) -> PathBuf {
    state.root().join("api-token")
}

/// Port of each local agent's HTTP API, on its instance's address.
pub const API_PORT: u16 = 9181;

fn ensure_secret(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("reading /dev/urandom")?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "{hex}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn start_controller(state: &StateDir) -> anyhow::Result<()> {
    let log = state.root().join("controller.log");
    let out =
        std::fs::OpenOptions::new().create(true).append(true).open(&log).with_context(|| log.display().to_string())?;
    let err = out.try_clone()?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["local", "controller", "--dir"]).arg(state.root());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child =
        cmd.stdin(std::process::Stdio::null()).stdout(out).stderr(err).spawn().context("starting the controller")?;
    std::fs::write(state.controller_pid_path(), child.id().to_string())?;
    Ok(())
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|st| st.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"))
        .unwrap_or(false)
}

fn controller_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join("controller.pid")).ok()?.trim().parse().ok()?;
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).ok()?).into_owned();
    (alive(pid) && cmdline.contains("controller")).then_some(pid)
}

/// Observes the group once and joins the agents' statuses.
pub async fn cluster_view(dir: &Path) -> anyhow::Result<ClusterView> {
    let backend = LocalBackend::open(dir)?;
    let group = backend.state().group()?;
    let secret = Secret::from_file(&backend.state().secret_path()).map_err(anyhow::Error::msg)?;
    let zk = ZkClient::new(secret);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
    let obs = zkpilot_runtime::observe::Observer::default().observe(&backend, &zk, 2181, now).await;
    let statuses: Vec<AgentStatus> =
        backend.state().statuses()?.into_iter().filter_map(|(_, v)| serde_json::from_value(v).ok()).collect();
    Ok(view::build(&obs, &statuses, group.desired, group.target_voters))
}

/// Polls until converged, printing progress on stderr.
pub async fn wait_converged(dir: &Path, timeout: Duration) -> anyhow::Result<ClusterView> {
    let start = Instant::now();
    let mut last = String::new();
    loop {
        let v = cluster_view(dir).await?;
        if v.converged {
            eprintln!(
                "converged in {:.1}s: {} members, {} voters, leader {}, config {}",
                start.elapsed().as_secs_f64(),
                v.members.len(),
                v.voters,
                v.leader.map_or("-".into(), |l| l.to_string()),
                v.config_version.as_deref().unwrap_or("-")
            );
            return Ok(v);
        }
        let line = v.not_converged.join("; ");
        if line != last {
            eprintln!("[{:5.1}s] {line}", start.elapsed().as_secs_f64());
            last = line;
        }
        if start.elapsed() > timeout {
            bail!("not converged after {}s: {}", timeout.as_secs(), v.not_converged.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `local kill`.
/// The live instance holding server `id`.
fn holder_of(state: &StateDir, id: ServerId) -> anyhow::Result<InstanceRecord> {
    let slots = state.slots()?.into_iter().map(|(sid, s)| (sid, s.instance));
    let holder = state
        .claims()?
        .into_iter()
        .map(|(sid, c)| (sid, c.instance))
        .chain(slots)
        .find(|(sid, _)| *sid == id)
        .map(|(_, instance)| instance)
        .with_context(|| format!("no instance holds server id {id}"))?;
    let rec = state
        .instances()?
        .into_iter()
        .find(|r| r.id == holder)
        .with_context(|| format!("instance {holder} has no record"))?;
    if rec.state == InstanceState::Terminated {
        bail!("instance {holder} (server {id}) is already terminated");
    }
    Ok(rec)
}

pub fn kill(dir: &Path, id: ServerId, agent_only: bool) -> anyhow::Result<InstanceRecord> {
    let state = StateDir::open(dir)?;
    let rec = holder_of(&state, id)?;
    let holder = rec.id.clone();
    if agent_only {
        let pid = rec.agent_pid.with_context(|| format!("instance {holder} has no agent pid"))?;
        signal_group(pid, Signal::SIGKILL);
        eprintln!("killed the agent of {holder} (server {id}); the instance and its disk stay");
        return Ok(rec);
    }
    let rec = kill_instance(&state, &holder)?;
    eprintln!("killed instance {holder} (server {id}, {})", rec.address);
    Ok(rec)
}

/// `local terminate`: a planned replacement, like `TerminateInstanceInAutoScalingGroup` without
/// decrementing the desired capacity. The instance becomes `terminating`, so the group launches a
/// replacement at once; its server keeps serving until the lease holder has swapped the new one
/// in by reconfig, then its agent stops it and the instance goes.
pub fn terminate(dir: &Path, id: ServerId) -> anyhow::Result<InstanceRecord> {
    let state = StateDir::open(dir)?;
    let rec = holder_of(&state, id)?;
    if rec.state == InstanceState::Terminating {
        bail!("instance {} (server {id}) is already terminating", rec.id);
    }
    state.set_state(&rec.id, InstanceState::Terminating)?;
    eprintln!("terminating instance {} (server {id}); a replacement launches", rec.id);
    Ok(rec)
}

/// `local down`: stop the controller (which stops every agent, which stops its ZooKeeper), then
/// make sure no process of the group is left.
pub async fn down(dir: &Path) -> anyhow::Result<()> {
    let state = StateDir::open(dir)?;
    if let Some(pid) = controller_pid(dir) {
        signal_group(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(40);
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if alive(pid) {
            eprintln!("controller {pid} did not stop in time; killing its group");
            signal_group(pid, Signal::SIGKILL);
        }
    }
    let mut left = Vec::new();
    for r in state.instances()? {
        let pids: Vec<u32> = r.agent_pid.into_iter().chain(zk_pid(&state, &r.id)).collect();
        for pid in pids {
            if alive(pid) && is_ours(pid, &state.instance_dir(&r.id)) {
                signal_group(pid, Signal::SIGKILL);
                left.push(pid);
            }
        }
    }
    if !left.is_empty() {
        eprintln!("killed leftover processes {left:?}");
    }
    eprintln!("group at {} is down", dir.display());
    Ok(())
}

fn is_ours(pid: u32, instance_dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(&*instance_dir.to_string_lossy()))
        .unwrap_or(false)
}

/// The agent config of one local instance.
pub fn render_agent_config(group: &GroupSpec, rec: &InstanceRecord, state: &StateDir) -> String {
    let cfg = AgentConfig {
        instance: InstanceSection { id: rec.id.clone(), address: rec.address.clone(), zone: rec.zone.clone() },
        server: ServerSection {
            base_dir: state.instance_dir(&rec.id).join("zk"),
            install: group.zookeeper_install.clone(),
            java: group.java.clone(),
            heap_mb: group.heap_mb,
            tick_time_ms: group.tick_time_ms,
            init_limit: 10,
            sync_limit: 5,
            client_port: 2181,
            quorum_port: 2888,
            election_port: 3888,
            admin_port: 8080,
            run_as_uid: group.separate_uids.then_some(SEPARATE_UID_BASE + rec.seq),
            snapshot_sync_only: true,
        },
        cluster: ClusterSection {
            secret_file: state.secret_path(),
            identity: if group.slot_mode { IdentityMode::Slot } else { IdentityMode::Elastic },
        },
        policy: zkpilot_core::Policy {
            target_voters: group.target_voters,
            min_voters: group.min_voters,
            unhealthy_after_ms: group.unhealthy_after_ms,
            ..Default::default()
        },
        backend: BackendSection::Local { dir: state.root().to_path_buf() },
        agent: AgentSection::default(),
        names: group.names_domain.as_ref().map(|domain| NamesSection {
            domain: domain.clone(),
            hosts_file: Some(state.root().join("hosts")),
            route53_zone: None,
        }),
        recovery: RecoverySection { quorum_loss_after_ms: group.quorum_loss_after_ms, ..RecoverySection::default() },
        api: format!("{}:{API_PORT}", rec.address)
            .parse()
            .ok()
            .map(|listen| ApiSection { listen, token_file: Some(api_token_path(state)) }),
        backup: BackupSection { interval_ms: group.backup_interval_ms, ..BackupSection::default() },
        // The controller sends the agent's stdout and stderr there.
        logs: LogsSection { ship: true, agent_log: Some(state.instance_dir(&rec.id).join("agent.log")) },
    };
    toml::to_string(&cfg).unwrap_or_else(|e| format!("# cannot render agent config: {e}\n"))
}

/// Plain-text status.
pub fn render_table(v: &ClusterView) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "config {}  leader {}  voters {}  {}\nconnect {}\n\n",
        v.config_version.as_deref().unwrap_or("-"),
        v.leader.map_or("-".into(), |l| l.to_string()),
        v.voters,
        if v.converged { "converged".to_string() } else { format!("NOT converged: {}", v.not_converged.join("; ")) },
        v.connect_string.as_deref().unwrap_or("-"),
    ));
    s.push_str(&format!(
        "{:>4}  {:<15} {:<9} {:<7} {:<11} {:<8} {}\n",
        "id", "address", "role", "voting", "mode", "zone", "instance"
    ));
    for m in &v.members {
        s.push_str(&format!(
            "{:>4}  {:<15} {:<9} {:<7} {:<11} {:<8} {}\n",
            m.id.0,
            m.address,
            m.role,
            m.voting,
            format!("{:?}", m.mode).to_lowercase(),
            m.zone.as_deref().unwrap_or("-"),
            m.instance.as_ref().map_or("-".to_string(), InstanceId::to_string)
        ));
    }
    let waiting: Vec<&InstanceView> = v.instances.iter().filter(|i| i.detail.is_some()).collect();
    if !waiting.is_empty() {
        s.push('\n');
    }
    for i in waiting {
        s.push_str(&format!(
            "{} {}: {}\n",
            i.id,
            i.phase.as_deref().unwrap_or("-"),
            i.detail.as_deref().unwrap_or_default()
        ));
    }
    if let Some(plan) = &v.plan {
        s.push_str("\nlast plan");
        if let Some(by) = &v.plan_by {
            s.push_str(&format!(" (by {by})"));
        }
        s.push_str(":\n");
        if plan.actions.is_empty() {
            s.push_str("  no action\n");
        }
        for a in &plan.actions {
            s.push_str(&format!("  do   {a}\n"));
        }
        for k in &plan.skipped {
            s.push_str(&format!("  skip {}: {}\n", k.subject, k.reason));
        }
    }
    s
}
