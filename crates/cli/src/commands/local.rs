//! `zkpilot local ...`: drive a local group (state directory + controller process).

use std::path::Path;
use std::time::Duration;

use clap::{Args, Subcommand};
use zkpilot_core::model::{InstanceId, ServerId};
use zkpilot_core::version::LearnerSync;
use zkpilot_local::StateDir;
use zkpilot_local::group::Controller;
use zkpilot_ops::local::{self as ops, UpOptions};
use zkpilot_ops::progress;
use zkpilot_runtime::config::IdentityMode;
use zkpilot_runtime::view::{ClusterView, InstanceView};

use super::args::{DirArg, zkpilot_exe};

/// Options of `local up` (and of `restore`, which brings a new group up).
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
    /// ZooKeeper install: an Apache release home (`lib/zookeeper-3.x.y.jar`; the default is
    /// 3.9.5 where `scripts/install-deps.sh` puts it) or Debian's `/usr/share/java`.
    #[arg(long, env = "ZKPILOT_ZOOKEEPER", default_value_os_t = zkpilot_zk::install::default_home())]
    pub zookeeper: std::path::PathBuf,
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
    /// Seconds after an instance fails (`local kill`) until the group's health check notices,
    /// terminates it and launches a replacement; meanwhile it is listed as running with its
    /// server dead, as EC2 shows a crashed instance.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub failure_detected_after: f64,
    /// How leaders sync a learner that is behind (`[server] learner_sync`): `auto` picks per
    /// ZooKeeper release (docs/versions.md); `snapshot`, `no-log-diff`, `zookeeper` force one.
    #[arg(long, default_value = "auto", value_name = "auto|snapshot|no-log-diff|zookeeper")]
    pub learner_sync: LearnerSync,
    /// TLS for the quorum and the clients: a CA in `<dir>/tls/` (key 0600), every agent issues
    /// its server a certificate and renews it in place; the agents' sessions use the secure port
    /// (2281). `local status --json` names `secure_connect_string` and `ca_file`. A new group
    /// only; docs/tls.md.
    #[arg(long)]
    pub tls: bool,
    /// Lifetime of the servers' certificates, seconds (renewed when a third is left).
    #[arg(long, value_name = "SECONDS", default_value_t = 30 * 86_400, value_parser = clap::value_parser!(u64).range(60..))]
    pub cert_lifetime: u64,
}

impl UpArgs {
    /// What the library is asked for; the group runs this binary.
    pub fn options(&self) -> anyhow::Result<UpOptions> {
        Ok(UpOptions {
            size: self.size,
            dir: self.dir.path(),
            net: self.net.clone(),
            target_voters: self.target_voters,
            zookeeper: self.zookeeper.clone(),
            heap_mb: self.heap_mb,
            timeout: Duration::from_secs(self.timeout),
            mode: if self.mode == "slot" { IdentityMode::Slot } else { IdentityMode::Elastic },
            names: self.names.clone(),
            unhealthy_after: Duration::from_secs(self.unhealthy_after),
            quorum_loss_after: Duration::from_secs(self.quorum_loss_after),
            separate_uids: self.separate_uids,
            backup_every: Duration::from_secs(self.backup_every),
            failure_detected_after: Duration::try_from_secs_f64(self.failure_detected_after)
                .map_err(|e| anyhow::anyhow!("--failure-detected-after {}: {e}", self.failure_detected_after))?,
            learner_sync: self.learner_sync,
            zkpilot: zkpilot_exe()?,
            tls: self.tls,
            cert_lifetime: Duration::from_secs(self.cert_lifetime),
        })
    }
}

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

impl LocalCommand {
    /// Runs for the group's lifetime (on one thread, logging its decisions).
    pub fn long_running(&self) -> bool {
        matches!(self, Self::Controller { .. })
    }
}

/// Dispatches a subcommand.
pub async fn run(cmd: LocalCommand) -> anyhow::Result<()> {
    let print = &mut progress::print;
    match cmd {
        LocalCommand::Up(args) => ops::up(&args.options()?, None, print).await.map(drop)?,
        LocalCommand::Status { dir, json } => {
            let v = ops::cluster_view(&dir.path()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", render_table(&v));
            }
        }
        LocalCommand::Scale { size, dir, no_wait, timeout } => {
            ops::scale(&dir.path(), size, print)?;
            if !no_wait {
                ops::wait_converged(&dir.path(), Duration::from_secs(timeout), print).await?;
            }
        }
        LocalCommand::Kill { id, dir, agent_only } => {
            ops::kill(&dir.path(), ServerId(id), agent_only, print).map(drop)?
        }
        LocalCommand::Terminate { id, dir } => ops::terminate(&dir.path(), ServerId(id), print).map(drop)?,
        LocalCommand::Down { dir } => ops::down(&dir.path(), print).await?,
        LocalCommand::Controller { dir } => controller(&dir.path()).await?,
    }
    Ok(())
}

async fn controller(dir: &Path) -> anyhow::Result<()> {
    let state = StateDir::open(dir)?;
    Controller::new(state, Box::new(ops::render_agent_config)).run(crate::signal::shutdown()).await?;
    Ok(())
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
        "{:>4}  {:<15} {:<9} {:<7} {:<11} {:<8} {:<8} {}\n",
        "id", "address", "role", "voting", "mode", "zone", "version", "instance"
    ));
    for m in &v.members {
        s.push_str(&format!(
            "{:>4}  {:<15} {:<9} {:<7} {:<11} {:<8} {:<8} {}\n",
            m.id.0,
            m.address,
            m.role,
            m.voting,
            format!("{:?}", m.mode).to_lowercase(),
            m.zone.as_deref().unwrap_or("-"),
            m.version.as_deref().unwrap_or("-"),
            m.instance.as_ref().map_or("-".to_string(), InstanceId::to_string)
        ));
    }
    let versions = v.versions();
    if versions.len() > 1 {
        let each: Vec<String> = versions
            .iter()
            .map(|(ver, ids)| {
                format!("{ver} (servers {})", ids.iter().map(|i| i.0.to_string()).collect::<Vec<_>>().join(", "))
            })
            .collect();
        s.push_str(&format!("\nMIXED ZooKeeper versions: {}\n", each.join("; ")));
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
    if v.plans_refused > 0 {
        s.push_str(&format!(
            "\nSAFETY: {} plans refused for breaking a safety rule (a planner bug):\n",
            v.plans_refused
        ));
        for r in &v.refusals {
            s.push_str(&format!("  {r}\n"));
        }
    }
    if let Some(plan) = &v.plan {
        s.push_str("\nlast plan");
        if let Some(by) = &v.plan_by {
            s.push_str(&format!(" (by {by})"));
        }
        s.push_str(":\n");
        s.push_str(&super::plan::render(plan, "  "));
    }
    s
}
