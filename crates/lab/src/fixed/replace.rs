//! `zkpilot-lab fixed replace`: a membership change on an ensemble without reconfig. Brings up bare
//! ZooKeeper servers with a fixed list (`reconfigEnabled=false`) on loopback, puts the steady
//! workload on them, replaces one server by a new one with the fixed-membership strategy
//! (rolling, leader last; or everything at once, Exhibitor's default), and reports what the
//! clients saw: the baseline the reconfig strategy is compared with (BENCHMARKS.md B1/B2).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use zkpilot_core::model::{EnsembleConfig, Role, ServerId, ServerSpec};
use zkpilot_core::rollout::Strategy;
use zkpilot_ops::local;
use zkpilot_zk::Install;

use super::ensemble::{FixedEnsemble, StepTiming};
use crate::workload::{LoadSummary, Spec, Target, Workload, present};

/// Options of `zkpilot-lab fixed replace`.
#[derive(Debug, Clone, Args)]
pub struct ReplaceArgs {
    /// Empty or new directory for the servers' files.
    #[arg(long)]
    pub dir: PathBuf,
    /// Loopback /24 (`127.X.Y`); server N gets `127.X.Y.N`.
    #[arg(long, default_value = "127.0.2")]
    pub net: String,
    /// Servers before the change (all voters).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub size: u32,
    /// Which server to replace.
    #[arg(long, default_value = "follower", value_parser = ["follower", "leader"])]
    pub replace: String,
    /// `rolling` (one server at a time, leader last) or `all-at-once`.
    #[arg(long, default_value = "rolling", value_parser = ["rolling", "all-at-once"])]
    pub strategy: String,
    /// ZooKeeper install: an Apache release home (`lib/zookeeper-3.x.y.jar`; the default is
    /// 3.9.5 where `scripts/install-deps.sh` puts it) or Debian's `/usr/share/java`.
    #[arg(long, env = "ZKPILOT_ZOOKEEPER", default_value_os_t = zkpilot_zk::install::default_home())]
    pub zookeeper: PathBuf,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What the change cost.
#[derive(Debug, Clone, Serialize)]
pub struct ReplaceReport {
    /// `rolling` or `all-at-once`.
    pub strategy: String,
    /// The replaced server and its role then.
    pub replaced: ServerId,
    /// `leader` or `follower`.
    pub replaced_role: String,
    /// The new server.
    pub new_server: ServerId,
    /// Steps and their durations.
    pub steps: Vec<StepTiming>,
    /// From the first step to the ensemble serving on the new list, ms.
    pub total_ms: u64,
    /// The client load.
    pub load: LoadSummary,
    /// Acknowledged writes missing afterwards.
    pub lost: usize,
    /// The list in force afterwards.
    pub final_servers: Vec<ServerId>,
}

/// Server `n` of a loopback /24, a participant on the standard ports.
pub fn spec(net: &str, n: u32) -> ServerSpec {
    let host = format!("{net}.{n}");
    ServerSpec {
        id: ServerId(n),
        host: host.clone(),
        quorum_port: 2888,
        election_port: 3888,
        role: Role::Participant,
        client_host: host,
        client_port: 2181,
    }
}

/// Runs it and prints the report.
pub async fn run(args: ReplaceArgs) -> anyhow::Result<()> {
    let r = replace(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", render(&r));
    }
    Ok(())
}

/// Runs the replacement; validates everything before starting anything.
pub async fn replace(args: &ReplaceArgs) -> anyhow::Result<ReplaceReport> {
    local::validate_net(&args.net)?;
    let strategy = if args.strategy == "rolling" { Strategy::Rolling } else { Strategy::AllAtOnce };
    let install = Install::detect(&args.zookeeper, None).context("--zookeeper")?;
    if std::fs::read_dir(&args.dir).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "--dir {}: not empty; fixed-membership servers are only created in an empty directory",
            args.dir.display()
        );
    }
    local::addresses_free(&args.net, args.size + 1)?;
    std::fs::create_dir_all(&args.dir).with_context(|| format!("--dir {}", args.dir.display()))?;
    let mut current = EnsembleConfig::default();
    for n in 1..=args.size {
        current.servers.insert(ServerId(n), spec(&args.net, n));
    }
    let limit = Duration::from_secs(180);
    let mut ensemble = FixedEnsemble::new(install, args.dir.clone(), 128, 2000);
    let result = async {
        ensemble.start(&current, limit).await?;
        let leader = ensemble.leader().await.context("no single leader after start")?;
        let victim = if args.replace == "leader" {
            leader
        } else {
            *current.servers.keys().find(|id| **id != leader).context("no follower")?
        };
        let new = spec(&args.net, args.size + 1);
        let mut target = current.clone();
        target.servers.remove(&victim);
        target.servers.insert(new.id, new.clone());
        let auth = ensemble.auth();
        let load = Spec::steady(Target::Fixed(ensemble.connect_string()), Some(auth.clone()), "/fixed-load");
        let workload = Workload::start(load.clone());
        // A steady state before and after the change, so the gap measured is the change's.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let steps = ensemble.change(&target, strategy, limit).await?;
        let total_ms = started.elapsed().as_millis() as u64;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stats = workload.stop().await;
        let now = Target::Fixed(target.connect_string());
        let lost = stats.missing(&present(&now, Some(&auth), &load.root).await?).count();
        Ok::<_, anyhow::Error>(ReplaceReport {
            strategy: args.strategy.clone(),
            replaced: victim,
            replaced_role: args.replace.clone(),
            new_server: new.id,
            steps,
            total_ms,
            load: stats.summary(),
            lost,
            final_servers: ensemble.config().servers.keys().copied().collect(),
        })
    }
    .await;
    ensemble.shutdown().await;
    result
}

/// Plain text.
pub fn render(r: &ReplaceReport) -> String {
    let mut s = format!(
        "fixed-membership {} replacement of the {} (server {} -> server {})\n",
        r.strategy, r.replaced_role, r.replaced, r.new_server
    );
    for t in &r.steps {
        s.push_str(&format!("  {:<14} {:>7} ms\n", format!("{:?}", t.step), t.took_ms));
    }
    s.push_str(&format!(
        "total {} ms; client writes ok {}, failed {}, longest gap {} ms, lost {}\nservers now {:?}\n",
        r.total_ms, r.load.ok, r.load.failed, r.load.longest_gap_ms, r.lost, r.final_servers
    ));
    s
}
