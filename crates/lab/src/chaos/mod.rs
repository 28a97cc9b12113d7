//! `zkpilot-lab chaos`: faults against a local group under the client workload, and a report of
//! what the workload saw.
//!
//! The workload ([`crate::workload`], chaos pace, reads watched) writes `/chaos/b<k>/w<n>` and
//! `/chaos/last`, recording every acknowledged write with its zxid, while a second session checks
//! that `/chaos/last` never goes back within its session and, after `sync`, never falls below
//! what the writer had acknowledged. After every fault's convergence every member is read alone
//! after `sync` the same way. At the end every acknowledged write is looked up, and [`check`]
//! judges: the one loss ZooKeeper itself cannot avoid, a majority of voters lost together with
//! their disks, excuses only what the harness's own readings show only that majority held; every
//! excused write is listed. A run also fails if a fault was not shown to take effect, or an agent
//! panicked, exited on its own or had a plan refused by the safety check.

pub mod check;
mod faults;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use zkpilot_core::version::LearnerSync;
use zkpilot_ops::local::{self, UpOptions};
use zkpilot_ops::progress::print;
use zkpilot_runtime::config::IdentityMode;

use crate::workload::{MemberRead, Pace, Spec, StaleRead, Target, Workload, present, read_through};
use check::{Excused, MajorityLoss, judge};
use faults::{Fault, inject, partitions_possible};
use zkpilot_ops::local::AgentHealth;

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
    /// ZooKeeper install: an Apache release home (`lib/zookeeper-3.x.y.jar`; the default is
    /// 3.9.5 where `scripts/install-deps.sh` puts it) or Debian's `/usr/share/java`.
    #[arg(long, env = "ZKPILOT_ZOOKEEPER", default_value_os_t = zkpilot_zk::install::default_home())]
    pub zookeeper: PathBuf,
    /// Seconds the ensemble has to converge after each fault before it counts as a failure.
    #[arg(long, default_value_t = 60)]
    pub converge_within: u64,
    /// Seconds after a kill until the group's health check notices the instance failed (see
    /// `zkpilot local up --failure-detected-after`).
    #[arg(long, default_value_t = 5.0)]
    pub failure_detected_after: f64,
    /// How leaders sync learners that are behind (`zkpilot local up --learner-sync`).
    #[arg(long, default_value = "auto", value_name = "auto|snapshot|no-log-diff|zookeeper")]
    pub learner_sync: zkpilot_core::version::LearnerSync,
    /// With `--profile rolling-restart`: a rolling upgrade onto this ZooKeeper install
    /// (`zkpilot rolling-restart --zookeeper`), the group having started on `--zookeeper`.
    #[arg(long, value_name = "NEW_HOME")]
    pub upgrade_to: Option<PathBuf>,
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
    /// Shown to take effect (see `faults::Injected::took_effect`).
    pub took_effect: bool,
    /// What the injection did other than its description says, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// Seconds from the injection to convergence (members, voters, desired size).
    pub converged_after_s: Option<f64>,
    /// Members that did not answer the read after `sync` once converged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unanswered: Vec<String>,
    /// A partition's window and whether it cut off the leader.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<faults::PartitionWindow>,
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
    /// Acknowledged writes that only the lost majority held.
    pub writes_lost_with_majority: usize,
    /// Every write excused as lost with a majority.
    pub excused_writes: Vec<Excused>,
    /// Every majority lost with its disks, as the harness measured it.
    pub majority_losses: Vec<MajorityLoss>,
    /// Reads that went back in time (within a session, or after `sync` below an acknowledged
    /// write) that nothing excuses.
    pub stale_reads: usize,
    /// Stale reads of a value only a lost majority held.
    pub stale_reads_with_majority: usize,
    /// Reads after `sync` answered by a leader a partition had cut off, before it knew
    /// (ZOOKEEPER-1675: `sync` is not a quorum operation); ZooKeeper's, counted apart.
    pub stale_reads_deposed_leader: Vec<StaleRead>,
    /// Every unexcused stale read.
    pub stale: Vec<StaleRead>,
    /// Reads after `sync` checked against the writer's acknowledged value (the workload's reader
    /// and the per-member reads after each fault).
    pub sync_reads: u64,
    /// Faults not shown to take effect (a partition whose member kept serving).
    pub faults_not_injected: usize,
    /// Partition faults were left out (no root or no nft).
    pub partitions_skipped: bool,
    /// Agent panics, unexpected exits and refused plans over the run.
    pub agent_health: AgentHealth,
    /// Longest time without a successful write, seconds.
    pub longest_write_gap_s: f64,
    /// The ZooKeeper release the group ran and how its leaders synced learners.
    pub zookeeper: Option<String>,
    /// `--learner-sync`.
    pub learner_sync: String,
    /// Sessions of the reader (which keeps its session through connection loss) that ended:
    /// expired or closed under it.
    pub reader_sessions_ended: u64,
    /// The ZooKeeper release each member reports at the end.
    pub versions_at_end: BTreeMap<String, Vec<u32>>,
    /// Learner syncs, read from every server's log at the end (`diff_to_empty_learner`: an
    /// empty learner sent a DIFF, which it cannot restart from).
    pub learner_syncs: zkpilot_zk::synclog::SyncTally,
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
    // A DIFF to an empty learner under the strategy zkpilot picks (`auto`, or a forced snapshot)
    // is a zkpilot bug; under an explicit `--learner-sync zookeeper|no-log-diff` it is what the
    // run is measuring.
    let unsafe_sync = matches!(args.learner_sync, LearnerSync::Auto | LearnerSync::Snapshot)
        && (report.learner_syncs.diff_to_empty_learner > 0 || report.learner_syncs.no_snapshot_with_log > 0);
    if report.writes_lost > 0
        || unsafe_sync
        || report.stale_reads > 0
        || report.convergence_failures > 0
        || report.faults_not_injected > 0
        || !report.agent_health.is_clean()
    {
        bail!(
            "chaos found problems: {} writes lost, {} DIFFs to an empty learner, {} stale reads, {} convergence \
             failures, {} faults not injected, agents: {}",
            report.writes_lost,
            report.learner_syncs.diff_to_empty_learner,
            report.stale_reads,
            report.convergence_failures,
            report.faults_not_injected,
            if report.agent_health.is_clean() { "healthy".into() } else { report.agent_health.problems().join("; ") }
        );
    }
    Ok(())
}

async fn campaign(args: &ChaosArgs, dir: &Path) -> anyhow::Result<Report> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    let mut rng = fastrand::Rng::with_seed(seed);
    let partitions_ok = partitions_possible();
    if partitions_ok {
        faults::clear_partitions(&args.net);
    }
    if !partitions_ok {
        println!("SKIPPED: chaos partition faults: they need root and nft (apt-get install nftables)");
    }
    let started = Instant::now();
    let mode = if args.mode == "slot" { IdentityMode::Slot } else { IdentityMode::Elastic };
    let opts = UpOptions {
        mode,
        quorum_loss_after: Duration::from_secs(5),
        separate_uids: partitions_ok,
        failure_detected_after: Duration::try_from_secs_f64(args.failure_detected_after)
            .with_context(|| format!("--failure-detected-after {}", args.failure_detected_after))?,
        learner_sync: args.learner_sync,
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
        "short" => faults::ALL.into_iter().filter(|f| partitions_ok || *f != Fault::Partition).collect(),
        "rolling-restart" => vec![Fault::RollingRestart],
        _ => (0..args.faults).map(|_| faults::pick(&mut rng, partitions_ok)).collect(),
    };
    println!("chaos: profile {}, mode {}, seed {seed}, {} faults", args.profile, args.mode, plan.len());
    let mut records = Vec::new();
    let mut losses: Vec<MajorityLoss> = Vec::new();
    let mut partitions: Vec<faults::PartitionWindow> = Vec::new();
    let mut member_stale: Vec<StaleRead> = Vec::new();
    let mut member_reads = 0u64;
    let mut since_ms = zkpilot_core::ports::epoch_ms();
    let within = Duration::from_secs(args.converge_within);
    for (i, fault) in plan.iter().enumerate() {
        let at_ms = zkpilot_core::ports::epoch_ms();
        let injected = inject(*fault, dir, &mut rng, args.upgrade_to.as_deref()).await?;
        partitions.extend(injected.partition);
        let converged = converge(dir, within).await;
        if converged.is_none() {
            // Keep going only if it does converge eventually; the failure is counted either way.
            converge(dir, Duration::from_secs(240))
                .await
                .with_context(|| format!("fault {i} ({fault:?}) left the ensemble unconverged for 5 minutes"))?;
        }
        // Every member, read alone after `sync`, has every `last` acknowledged before the read.
        let view = local::cluster_view(dir).await?;
        let acked = workload.last_acked();
        let mut unanswered = Vec::new();
        for m in &view.members {
            match read_through(&m.client_address, spec.auth.as_deref(), &spec.root).await {
                MemberRead::Value(v) => {
                    member_reads += 1;
                    if v < acked.0 {
                        eprintln!(
                            "STALE READ: server {} read alone after sync: last = {v}, {} acknowledged",
                            m.id, acked.0
                        );
                        let at_ms = zkpilot_core::ports::epoch_ms();
                        member_stale.push(StaleRead {
                            expected: acked.0,
                            expected_zxid: acked.1,
                            got: v,
                            after_sync: true,
                            at_ms,
                        });
                    }
                }
                MemberRead::NoAnswer(why) => unanswered.push(format!("server {}: {why}", m.id)),
            }
        }
        if *fault == Fault::LoseMajority && args.mode == "elastic" {
            let leader = view.members.iter().find(|m| Some(m.id) == view.leader);
            let zxid = match leader {
                Some(l) => zkpilot_zk::probe::srvr(&l.client_address).await.zxid,
                None => None,
            };
            losses.push(MajorityLoss {
                fault: i,
                since_ms,
                killed_ms: injected.killed_ms,
                survivors_zxid: injected.survivors_zxid.iter().map(|(_, z)| *z).max().unwrap_or(-1),
                // Unread, no write is excused: an epoch no zxid is below.
                rebuilt_epoch: zxid.map_or(0, |z| (z >> 32) as i64),
            });
        }
        since_ms = at_ms;
        println!(
            "[{:7.1}s] fault {:>3} {:<24} servers {:<10} converged {}{}",
            started.elapsed().as_secs_f64(),
            i + 1,
            format!("{fault:?}"),
            injected.targets.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            converged.map_or("NOT within the limit".to_string(), |d| format!("after {:.1}s", d.as_secs_f64())),
            if injected.fallbacks.is_empty() { String::new() } else { format!(" ({})", injected.fallbacks.join("; ")) }
        );
        records.push(FaultRecord {
            fault: *fault,
            targets: injected.targets,
            took_effect: injected.took_effect,
            fallbacks: injected.fallbacks,
            converged_after_s: converged.map(|d| d.as_secs_f64()),
            unanswered,
            partition: injected.partition,
        });
    }
    // Let the workload see the final ensemble for a moment, then stop it and check.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = workload.stop().await;
    let present = present(&spec.target, spec.auth.as_deref(), &spec.root).await?;
    let mut stale = stats.stale_reads.clone();
    stale.extend(member_stale);
    let verdict = judge(&stats.acks, &present, &stale, &losses, &partitions);
    for n in &verdict.lost {
        eprintln!("LOST: write {n}");
    }
    let agent_health = zkpilot_ops::local::agent_health(dir)?;
    let learner_syncs =
        zkpilot_zk::synclog::scan_dir(dir).with_context(|| format!("server logs under {}", dir.display()))?;
    let zookeeper = zkpilot_zk::Install::detect(&args.zookeeper, None).ok().and_then(|i| i.version);
    let versions_at_end = local::cluster_view(dir)
        .await
        .map(|v| v.versions().into_iter().map(|(k, ids)| (k, ids.iter().map(|i| i.0).collect())).collect())
        .unwrap_or_default();
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
        faults_not_injected: records.iter().filter(|r| !r.took_effect).count(),
        slowest_convergence_s: times.last().copied().unwrap_or(0.0),
        median_convergence_s: times.get(times.len() / 2).copied().unwrap_or(0.0),
        faults: records,
        ops_ok: stats.ops_ok,
        ops_failed: stats.ops_failed,
        writes_acked: stats.acks.len(),
        writes_lost: verdict.lost.len(),
        writes_lost_with_majority: verdict.lost_with_majority.len(),
        excused_writes: verdict.lost_with_majority,
        majority_losses: losses,
        stale_reads: verdict.stale.len(),
        stale_reads_with_majority: verdict.stale_with_majority.len(),
        stale_reads_deposed_leader: verdict.stale_deposed_leader,
        stale: verdict.stale,
        sync_reads: stats.sync_reads + member_reads,
        partitions_skipped: !partitions_ok,
        agent_health,
        longest_write_gap_s: stats.longest_gap.as_secs_f64(),
        zookeeper,
        reader_sessions_ended: stats.reader_sessions_ended,
        versions_at_end,
        learner_sync: args.learner_sync.to_string(),
        learner_syncs,
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
         stale reads            {} ({} reads after sync checked; {} excused with a lost majority)\n\
         deposed-leader reads   {} (after sync, answered by a cut-off leader: ZOOKEEPER-1675)\n\
         faults not injected    {}{}\n\
         agents                 {}\n\
         ZooKeeper              {} (learner sync {}): learners synced by snapshot {}, DIFF {}, TRUNC {};\n\
         \x20                      DIFF to an empty learner {}, servers unable to start (no snapshot, log) {}\n",
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
        r.stale_reads,
        r.sync_reads,
        r.stale_reads_with_majority,
        r.stale_reads_deposed_leader.len(),
        r.faults_not_injected,
        if r.partitions_skipped { " (partitions SKIPPED: no root or no nft)" } else { "" },
        if r.agent_health.is_clean() {
            "no panic, no unexpected exit, no plan refused".to_string()
        } else {
            r.agent_health.problems().join("; ")
        },
        r.zookeeper.as_deref().unwrap_or("unknown"),
        r.learner_sync,
        r.learner_syncs.snapshot,
        r.learner_syncs.diff,
        r.learner_syncs.trunc,
        r.learner_syncs.diff_to_empty_learner,
        r.learner_syncs.no_snapshot_with_log,
    )
}
