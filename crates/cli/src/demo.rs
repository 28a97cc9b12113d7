//! `zkpilot demo`: the whole story on one machine, narrated with timings.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use zkpilot_zk::{Secret, ZkClient};
use zookeeper_client as zk;

use zkpilot_ops::local::{self, UpOptions};
use zkpilot_ops::progress::print;
use zkpilot_runtime::view::ClusterView;

/// Options of `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// State directory [default: a fresh directory under $TMPDIR].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Loopback /24 to use.
    #[arg(long, default_value = "127.0.77")]
    pub net: String,
    /// ZooKeeper install.
    #[arg(long, default_value = "/usr/share/java")]
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
    let dir =
        args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("zkpilot-demo-{}", std::process::id())));
    let result = story(&args, &dir).await;
    if args.keep {
        println!("group left running: zkpilot local status --dir {}", dir.display());
    } else if dir.join("group.json").exists() {
        local::down(&dir, &mut print).await.context("bringing the demo group down")?;
    }
    result
}

async fn story(args: &DemoArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut n = Narrator { start: Instant::now(), steps: Vec::new() };
    n.say(&format!("zkpilot demo: an elastic ZooKeeper ensemble on {}.0/24, state in {}", args.net, dir.display()));

    let t = Instant::now();
    n.say("1. local up --size 3: three instances claim ids, write the cluster marker once, start genesis");
    let zkpilot = std::env::current_exe().context("locating the zkpilot binary")?;
    let opts = UpOptions {
        quorum_loss_after: Duration::from_secs(5),
        ..UpOptions::new(3, dir, &args.net, &args.zookeeper, &zkpilot)
    };
    let v = local::up(&opts, None, &mut print).await?;
    n.done("bootstrap 3", t);
    n.say(&format!("   serving: {} (leader {})", v.connect_string.clone().unwrap_or_default(), fmt_id(v.leader)));

    let t = Instant::now();
    let secret = Secret::from_file(&dir.join("secret")).map_err(anyhow::Error::msg)?;
    let zk = ZkClient::new(secret);
    let connect = v.connect_string.clone().context("no connection string")?;
    write_keys(&zk, &connect, args.keys).await?;
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
    let missing = check_keys(&zk, &connect, args.keys).await?;
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

async fn scale(dir: &std::path::Path, size: u32) -> anyhow::Result<ClusterView> {
    zkpilot_local::StateDir::open(dir)?.set_desired(size as usize)?;
    Ok(local::wait_converged(dir, Duration::from_secs(240), &mut print).await?)
}

fn fmt_id(id: Option<zkpilot_core::ServerId>) -> String {
    id.map_or("-".into(), |i| i.to_string())
}

const DEMO_ROOT: &str = "/zkpilot-demo";

async fn write_keys(zk: &ZkClient, connect: &str, n: usize) -> anyhow::Result<()> {
    let client = zk.session(connect).await?;
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    match client.create(DEMO_ROOT, b"", &opts).await {
        Ok(_) | Err(zk::Error::NodeExists) => {}
        Err(e) => return Err(e).context("creating the demo root"),
    }
    for i in 0..n {
        let path = format!("{DEMO_ROOT}/key-{i:04}");
        match client.create(&path, format!("value-{i}").as_bytes(), &opts).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(e).with_context(|| format!("creating {path}")),
        }
    }
    Ok(())
}

async fn check_keys(zk: &ZkClient, connect: &str, n: usize) -> anyhow::Result<usize> {
    let client = zk.session(connect).await?;
    client.sync(DEMO_ROOT).await.context("sync")?;
    let mut missing = 0;
    for i in 0..n {
        let path = format!("{DEMO_ROOT}/key-{i:04}");
        match client.get_data(&path).await {
            Ok((data, _)) if data == format!("value-{i}").as_bytes() => {}
            Ok(_) | Err(zk::Error::NoNode) => missing += 1,
            Err(e) => return Err(e).with_context(|| format!("reading {path}")),
        }
    }
    Ok(missing)
}
