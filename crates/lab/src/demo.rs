//! `zkpilot-lab demo` (what `zkpilot demo` runs): the whole story on one machine, narrated with
//! timings. The keys are the workload's writes ([`Pace::KEYS`], a fixed number), and the check at
//! the end is its lost-write check.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use zkpilot_ops::local::{self, UpOptions};
use zkpilot_ops::progress::print;
use zkpilot_runtime::view::ClusterView;

use crate::workload::{Pace, Spec, Target, Workload, present};

/// Options of `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// State directory [default: a fresh directory under $TMPDIR].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Loopback /24 to use.
    #[arg(long, default_value = "127.0.77")]
    pub net: String,
    /// ZooKeeper install: an Apache release home (`lib/zookeeper-3.x.y.jar`; the default is
    /// 3.9.5 where `scripts/install-deps.sh` puts it) or Debian's `/usr/share/java`.
    #[arg(long, env = "ZKPILOT_ZOOKEEPER", default_value_os_t = zkpilot_zk::install::default_home())]
    pub zookeeper: PathBuf,
    /// Keys to write and check.
    #[arg(long, default_value_t = 200)]
    pub keys: usize,
    /// Leave the group running at the end.
    #[arg(long)]
    pub keep: bool,
}

struct Narrator {
    start: Instant,
    steps: Vec<(String, f64)>,
}

impl Narrator {
    fn say(&self, text: &str) {
        println!("[{:6.1}s] {text}", self.start.elapsed().as_secs_f64());
    }
    fn done(&mut self, step: &str, t0: Instant) {
        let took = t0.elapsed().as_secs_f64();
        self.say(&format!("{step}: done in {took:.1}s"));
        self.steps.push((step.to_string(), took));
    }
}

/// Runs the demo; always brings the group down unless `--keep`.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let zkpilot = crate::sibling::zkpilot()?;
    let dir =
        args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("zkpilot-demo-{}", std::process::id())));
    let result = story(&args, &dir, &zkpilot).await;
    if args.keep {
        println!("group left running: zkpilot local status --dir {}", dir.display());
    } else if dir.join("group.json").exists() {
        local::down(&dir, &mut print).await.context("bringing the demo group down")?;
    }
    result
}

async fn story(args: &DemoArgs, dir: &Path, zkpilot: &Path) -> anyhow::Result<()> {
    let mut n = Narrator { start: Instant::now(), steps: Vec::new() };
    let install = zkpilot_zk::Install::detect(&args.zookeeper, None).context("--zookeeper")?;
    n.say(&format!(
        "zkpilot demo: an elastic ZooKeeper {} ensemble on {}.0/24, state in {}",
        install.version.as_deref().unwrap_or("(unknown release)"),
        args.net,
        dir.display()
    ));

    let t = Instant::now();
    n.say("1. local up --size 3: three instances claim ids, write the cluster marker once, start genesis");
    let opts = UpOptions {
        quorum_loss_after: Duration::from_secs(5),
        ..UpOptions::new(3, dir, &args.net, &args.zookeeper, zkpilot)
    };
    let v = local::up(&opts, None, &mut print).await?;
    n.done("bootstrap 3", t);
    n.say(&format!("   serving: {} (leader {})", v.connect_string.clone().unwrap_or_default(), fmt_id(v.leader)));

    let t = Instant::now();
    let secret = std::fs::read_to_string(dir.join("secret")).context("group secret")?;
    let keys = Spec {
        target: Target::Group(dir.to_path_buf()),
        auth: Some(format!("super:{}", secret.trim())),
        root: "/zkpilot-demo".into(),
        pace: Pace::KEYS,
        watch_reads: false,
        limit: Some(args.keys as u64),
    };
    let writer = Workload::start(keys.clone());
    let written = writer.written(Duration::from_secs(120)).await;
    let acked = writer.acked();
    let stats = writer.stop().await;
    if !written {
        bail!("only {acked} of {} keys written in 2 minutes ({} failed attempts)", args.keys, stats.ops_failed);
    }
    n.done(&format!("2. write {} keys", args.keys), t);

    let t = Instant::now();
    n.say("3. local scale 5: two new instances join as non-voting followers, then as observers (3 voters kept)");
    let v = scale(dir, 5).await?;
    n.done("scale 3 -> 5", t);
    n.say(&format!(
        "   {} members, {} voters, config {}",
        v.members.len(),
        v.voters,
        v.config_version.clone().unwrap_or_default()
    ));

    let leader = v.leader.context("no leader to kill")?;
    let t = Instant::now();
    n.say(&format!(
        "4. kill -9 the leader (server {leader}): ZooKeeper elects a new leader, zkpilot swaps a synced observer in"
    ));
    local::kill(dir, leader, false, &mut print)?;
    let v = local::wait_converged(dir, Duration::from_secs(240), &mut print).await?;
    n.done("heal after leader kill", t);
    n.say(&format!(
        "   new leader {}, {} members, {} voters, server {leader} gone: {}",
        fmt_id(v.leader),
        v.members.len(),
        v.voters,
        !v.members.iter().any(|m| m.id == leader)
    ));

    let t = Instant::now();
    n.say("5. local scale 3: observers leave first, each removed by reconfig before its instance goes");
    let v = scale(dir, 3).await?;
    n.done("scale 5 -> 3", t);

    let t = Instant::now();
    let voters: Vec<zkpilot_core::ServerId> = v.members.iter().filter(|m| m.voting).map(|m| m.id).collect();
    let (survivor, lost) = voters.split_first().context("no voters")?;
    n.say(&format!(
        "6. quorum loss: kill -9 servers {} at once, disks gone; server {survivor} stops itself, copies its data, \
         reports its last zxid; the ensemble is rebuilt from it and grown back (nothing wiped)",
        lost.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and ")
    ));
    for id in lost {
        local::kill(dir, *id, false, &mut print)?;
    }
    let v = local::wait_converged(dir, Duration::from_secs(240), &mut print).await?;
    n.done("recover from quorum loss", t);
    n.say(&format!(
        "   {} voters again, leader {}, config {}",
        v.voters,
        fmt_id(v.leader),
        v.config_version.clone().unwrap_or_default()
    ));

    let t = Instant::now();
    let connect = v.connect_string.clone().context("no connection string")?;
    let present = present(&keys.target, keys.auth.as_deref(), &keys.root).await?;
    let missing = stats.missing(&present).count();
    n.done(&format!("7. read back {} keys", args.keys), t);
    if missing > 0 {
        bail!("{missing} of {} keys lost", args.keys);
    }
    n.say(&format!("every key present; final ensemble: {connect}"));
    println!();
    println!("{:<32} {:>8}", "step", "seconds");
    for (step, s) in &n.steps {
        println!("{step:<32} {s:>8.1}");
    }
    Ok(())
}

async fn scale(dir: &Path, size: u32) -> anyhow::Result<ClusterView> {
    local::scale(dir, size, &mut print)?;
    Ok(local::wait_converged(dir, Duration::from_secs(240), &mut print).await?)
}

fn fmt_id(id: Option<zkpilot_core::ServerId>) -> String {
    id.map_or("-".into(), |i| i.to_string())
}
