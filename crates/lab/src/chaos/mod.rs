//! `zkpilot-lab chaos`: faults against a local group under the client workload, and a report of
//! what the workload saw.
//!
//! The workload ([`crate::workload`], chaos pace, reads watched) writes `/chaos/b<k>/w<n>` and
//! `/chaos/last`, recording every acknowledged write with its zxid, while a second session checks
//! that `/chaos/last` never goes back within a session. At the end every acknowledged write is
//! looked up. The one loss ZooKeeper itself cannot avoid, a majority of voters lost together with
//! their disks, is excused only for writes acknowledged before that fault whose zxid is above what
//! the recovery kept (the chosen survivor's last zxid), and is counted separately.

mod faults;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use zkpilot_ops::local::{self, UpOptions};
use zkpilot_ops::progress::print;
use zkpilot_runtime::config::IdentityMode;

use crate::workload::{Pace, Spec, Target, Workload, present};
use faults::{Fault, inject, partitions_possible, recovery_kept_zxid};

/// Options of `chaos`.
#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// `short`: one fault of each kind (what CI runs). `long`: `--faults` random faults.
    /// `rolling-restart`: no fault, one rolling restart of every server under the workload.
    #[arg(long, default_value = "short", value_parser = ["short", "long", "rolling-restart"])]
    pub profile: String,
    /// Faults in the long profile.
    #[arg(long, default_value_t = 200)]
    pub faults: usize,
    /// Seed of the long profile's choices (printed, so a run can be repeated).
    #[arg(long)]
    pub seed: Option<u64>,
    /// `elastic` or `slot` (see `zkpilot local up --mode`).
    #[arg(long, default_value = "elastic", value_parser = ["elastic", "slot"])]
    pub mode: String,
    /// Loopback /24 for the group.
    #[arg(long, default_value = "127.0.66")]
    pub net: String,
    /// State directory [default: a fresh directory under $TMPDIR].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// ZooKeeper install.
    #[arg(long, default_value = "/usr/share/java")]
    pub zookeeper: PathBuf,
    /// Seconds the ensemble has to converge after each fault before it counts as a failure.
    #[arg(long, default_value_t = 60)]
    pub converge_within: u64,
    /// Also write the JSON report here (it is always written to `<dir>/chaos-report.json`).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// One injected fault and how the group came back.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// What.
    pub fault: Fault,
    /// Servers hit.
    pub targets: Vec<u32>,
    /// Seconds from the injection to convergence (members, voters, desired size).
    pub converged_after_s: Option<f64>,
}

/// What a run saw.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Profile, mode, seed.
    pub profile: String,
    /// `elastic` or `slot`.
    pub mode: String,
    /// Seed of the fault choices.
    pub seed: u64,
    /// Wall time, seconds.
    pub duration_s: f64,
    /// Faults by kind.
    pub faults_by_kind: BTreeMap<Fault, usize>,
    /// Every fault.
    pub faults: Vec<FaultRecord>,
    /// Faults after which the ensemble did not converge within `converge_within`.
    pub convergence_failures: usize,
    /// Slowest convergence, seconds.
    pub slowest_convergence_s: f64,
    /// Median convergence, seconds.
    pub median_convergence_s: f64,
    /// Client operations that succeeded / failed (writes and reads).
    pub ops_ok: u64,
    /// Failed client operations (connection loss, no quorum, timeouts).
    pub ops_failed: u64,
    /// Acknowledged writes.
    pub writes_acked: usize,
    /// Acknowledged writes missing at the end that nothing excuses.
    pub writes_lost: usize,
    /// Acknowledged writes that only the lost majority held (above the kept zxid).
    pub writes_lost_with_majority: usize,
    /// Reads that returned older data than the same session had already seen.
    pub stale_reads: u64,
    /// Longest time without a successful write, seconds.
    pub longest_write_gap_s: f64,
}

/// Runs a chaos profile and prints the report; fails if any acknowledged write was lost, a read
/// went back in time, or the ensemble did not converge in time after a fault.
pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    let dir =
        args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("zkpilot-chaos-{}", std::process::id())));
    let result = campaign(&args, &dir).await;
    if dir.join("group.json").exists() {
        local::down(&dir, &mut print).await.context("bringing the chaos group down")?;
    }
    let report = result?;
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(dir.join("chaos-report.json"), &json)?;
    if let Some(p) = &args.report {
        std::fs::write(p, &json).with_context(|| format!("--report {}", p.display()))?;
    }
    print!("{}", render(&report));
    println!("report: {}", dir.join("chaos-report.json").display());
    if report.writes_lost > 0 || report.stale_reads > 0 || report.convergence_failures > 0 {
        bail!(
            "chaos found problems: {} writes lost, {} stale reads, {} convergence failures",
            report.writes_lost,
            report.stale_reads,
            report.convergence_failures
        );
    }
    Ok(())
}

async fn campaign(args: &ChaosArgs, dir: &Path) -> anyhow::Result<Report> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    let mut rng = fastrand::Rng::with_seed(seed);
    let partitions = partitions_possible();
    if !partitions {
        println!("chaos: partition faults SKIPPED: they need root and nft (apt-get install nftables)");
    }
    let started = Instant::now();
    let mode = if args.mode == "slot" { IdentityMode::Slot } else { IdentityMode::Elastic };
    let opts = UpOptions {
        mode,
        quorum_loss_after: Duration::from_secs(5),
        separate_uids: partitions,
        ..UpOptions::new(3, dir, &args.net, &args.zookeeper, &crate::sibling::zkpilot()?)
    };
    local::up(&opts, None, &mut print).await?;
    let secret = std::fs::read_to_string(dir.join("secret")).context("group secret")?.trim().to_string();
    let spec = Spec {
        target: Target::Group(dir.to_path_buf()),
        auth: Some(format!("super:{secret}")),
        root: "/chaos".into(),
        pace: Pace::CHAOS,
        watch_reads: true,
        limit: None,
    };
    let workload = Workload::start(spec.clone());

    let plan: Vec<Fault> = match args.profile.as_str() {
        "short" => faults::ALL.into_iter().filter(|f| partitions || *f != Fault::Partition).collect(),
        "rolling-restart" => vec![Fault::RollingRestart],
        _ => (0..args.faults).map(|_| faults::pick(&mut rng, partitions)).collect(),
    };
    println!("chaos: profile {}, mode {}, seed {seed}, {} faults", args.profile, args.mode, plan.len());
    let mut records = Vec::new();
    let mut excused: Vec<(Instant, i64)> = Vec::new();
    let within = Duration::from_secs(args.converge_within);
    for (i, fault) in plan.iter().enumerate() {
        let at = Instant::now();
        let at_ms = zkpilot_core::ports::epoch_ms();
        let targets = inject(*fault, dir, &mut rng).await?;
        let converged = converge(dir, within).await;
        if converged.is_none() {
            // Keep going only if it does converge eventually; the failure is counted either way.
            converge(dir, Duration::from_secs(240))
                .await
                .with_context(|| format!("fault {i} ({fault:?}) left the ensemble unconverged for 5 minutes"))?;
        }
        if *fault == Fault::LoseMajority
            && let Some(kept) = recovery_kept_zxid(dir, at_ms)
        {
            excused.push((at, kept));
        }
        println!(
            "[{:7.1}s] fault {:>3} {:<24} servers {:<10} converged {}",
            started.elapsed().as_secs_f64(),
            i + 1,
            format!("{fault:?}"),
            targets.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            converged.map_or("NOT within the limit".to_string(), |d| format!("after {:.1}s", d.as_secs_f64()))
        );
        records.push(FaultRecord { fault: *fault, targets, converged_after_s: converged.map(|d| d.as_secs_f64()) });
    }
    // Let the workload see the final ensemble for a moment, then stop it and check.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = workload.stop().await;
    let present = present(&spec.target, spec.auth.as_deref(), &spec.root).await?;
    let (mut lost, mut lost_with_majority) = (0, 0);
    for a in stats.missing(&present) {
        if excused.iter().any(|(at, kept)| a.at < *at && a.zxid > *kept) {
            lost_with_majority += 1;
        } else {
            lost += 1;
            eprintln!("LOST: write {} (zxid {:#x})", a.n, a.zxid);
        }
    }
    let mut times: Vec<f64> = records.iter().filter_map(|r| r.converged_after_s).collect();
    times.sort_by(f64::total_cmp);
    let mut by_kind = BTreeMap::new();
    for r in &records {
        *by_kind.entry(r.fault).or_insert(0) += 1;
    }
    Ok(Report {
        profile: args.profile.clone(),
        mode: args.mode.clone(),
        seed,
        duration_s: started.elapsed().as_secs_f64(),
        faults_by_kind: by_kind,
        convergence_failures: records.iter().filter(|r| r.converged_after_s.is_none()).count(),
        slowest_convergence_s: times.last().copied().unwrap_or(0.0),
        median_convergence_s: times.get(times.len() / 2).copied().unwrap_or(0.0),
        faults: records,
        ops_ok: stats.ops_ok,
        ops_failed: stats.ops_failed,
        writes_acked: stats.acks.len(),
        writes_lost: lost,
        writes_lost_with_majority: lost_with_majority,
        stale_reads: stats.stale_reads,
        longest_write_gap_s: stats.longest_gap.as_secs_f64(),
    })
}

/// Waits until converged; `None` if not within `limit`.
async fn converge(dir: &Path, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    // A fault takes a moment to show (a killed instance is seen on the next probe).
    tokio::time::sleep(Duration::from_millis(500)).await;
    while start.elapsed() < limit {
        if let Ok(v) = local::cluster_view(dir).await
            && v.converged
        {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// The report as text.
pub fn render(r: &Report) -> String {
    let kinds: Vec<String> = r.faults_by_kind.iter().map(|(k, n)| format!("{k:?} {n}")).collect();
    format!(
        "\nchaos report ({} profile, {} mode, seed {}, {:.0}s)\n\
         faults injected        {} ({})\n\
         convergence            median {:.1}s, slowest {:.1}s, failures {}\n\
         client operations      {} ok, {} failed\n\
         longest write gap      {:.1}s\n\
         writes acknowledged    {}\n\
         writes lost            {}\n\
         lost with a majority   {} (acknowledged, held only by the voters lost with their disks)\n\
         stale reads            {}\n",
        r.profile,
        r.mode,
        r.seed,
        r.duration_s,
        r.faults.len(),
        kinds.join(", "),
        r.median_convergence_s,
        r.slowest_convergence_s,
        r.convergence_failures,
        r.ops_ok,
        r.ops_failed,
        r.longest_write_gap_s,
        r.writes_acked,
        r.writes_lost,
        r.writes_lost_with_majority,
        r.stale_reads
    )
}
