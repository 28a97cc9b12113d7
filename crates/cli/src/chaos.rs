//! `zkpilot chaos`: faults against a local group under a client workload, and a report of what
//! the workload saw.
//!
//! The workload writes `/chaos/b<k>/w<n>` (n increasing, one at a time) and then `/chaos/last = n`,
//! recording every acknowledged write with its zxid; a second session keeps reading `/chaos/last`
//! and checks it never goes back within a session. At the end every acknowledged write is looked
//! up. The one loss ZooKeeper itself cannot avoid, a majority of voters lost together with their
//! disks, is excused only for writes acknowledged before that fault whose zxid is above what the
//! recovery kept (the chosen survivor's last zxid), and is counted separately.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use zkpilot_core::ServerId;
use zkpilot_runtime::config::IdentityMode;
use zkpilot_runtime::view::MemberView;
use zookeeper_client as zk;

use zkpilot_ops::local::{self, GroupError, UpOptions};
use zkpilot_ops::progress::print;

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
    /// `elastic` or `slot` (see `local up --mode`).
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

/// Kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// kill -9 of a random member's instance (agent, JVM, disk gone in elastic mode).
    KillRandom,
    /// kill -9 of the leader's instance.
    KillLeader,
    /// kill -9 of the lease-holding agent while a scale-out's membership change is pending.
    KillAgentMidReconfig,
    /// The desired size changes (3..=5) and a random member is killed right after.
    ScaleDuringKill,
    /// All voters but one killed at once (quorum loss; elastic: their disks are gone).
    LoseMajority,
    /// One member's quorum and election traffic dropped for 12-20 s (nft `meta skuid` rules on
    /// its own uid), then healed. Needs root and nft.
    Partition,
    /// Not a fault: `zkpilot rolling-restart` of every server, under the same checks.
    RollingRestart,
}

const ALL: [Fault; 6] = [
    Fault::KillRandom,
    Fault::KillLeader,
    Fault::KillAgentMidReconfig,
    Fault::ScaleDuringKill,
    Fault::Partition,
    Fault::LoseMajority,
];

/// Partitions need a uid per server and nft rules: root and the `nft` binary.
fn partitions_possible() -> bool {
    nix::unistd::Uid::effective().is_root()
        && std::process::Command::new("nft").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// An nft table that drops one uid's quorum and election traffic; deleted on drop.
struct PartitionRules {
    table: String,
}

impl PartitionRules {
    fn apply(table: &str, uid: u32) -> anyhow::Result<Self> {
        // On loopback every connection's source is 127.0.0.1, so addresses cannot tell servers
        // apart; the socket owner can (reference/zookeeper-local-lab.md §5.2). Its outgoing
        // connections to peers and its replies on connections peers opened are both dropped.
        let rules = format!(
            "table inet {table} {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n    \
             meta skuid {uid} tcp dport {{ 2888, 3888 }} drop\n    meta skuid {uid} tcp sport {{ 2888, 3888 }} drop\n  }}\n}}\n"
        );
        let mut child = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .context("running nft")?;
        std::io::Write::write_all(child.stdin.as_mut().context("nft stdin")?, rules.as_bytes())?;
        let status = child.wait()?;
        if !status.success() {
            bail!("nft -f refused the partition rules ({status})");
        }
        Ok(Self { table: table.to_string() })
    }
}

impl Drop for PartitionRules {
    fn drop(&mut self) {
        let _ignored = std::process::Command::new("nft").args(["delete", "table", "inet", &self.table]).output();
    }
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

#[derive(Debug, Clone, Copy)]
struct Ack {
    n: u64,
    zxid: i64,
    at: Instant,
}

#[derive(Debug)]
struct Workload {
    stop: AtomicBool,
    ok: AtomicU64,
    failed: AtomicU64,
    stale: AtomicU64,
    acks: Mutex<Vec<Ack>>,
    longest_gap: Mutex<Duration>,
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
    let zkpilot = std::env::current_exe().context("locating the zkpilot binary")?;
    let mode = if args.mode == "slot" { IdentityMode::Slot } else { IdentityMode::Elastic };
    let opts = UpOptions {
        mode,
        quorum_loss_after: Duration::from_secs(5),
        separate_uids: partitions,
        ..UpOptions::new(3, dir, &args.net, &args.zookeeper, &zkpilot)
    };
    local::up(&opts, None, &mut print).await?;
    let secret = std::fs::read_to_string(dir.join("secret")).context("group secret")?.trim().to_string();
    let workload = Arc::new(Workload {
        stop: AtomicBool::new(false),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        stale: AtomicU64::new(0),
        acks: Mutex::new(Vec::new()),
        longest_gap: Mutex::new(Duration::ZERO),
    });
    let writer = tokio::spawn(write_loop(dir.to_path_buf(), secret.clone(), workload.clone()));
    let reader = tokio::spawn(read_loop(dir.to_path_buf(), secret.clone(), workload.clone()));

    let plan: Vec<Fault> = match args.profile.as_str() {
        "short" => ALL.into_iter().filter(|f| partitions || *f != Fault::Partition).collect(),
        "rolling-restart" => vec![Fault::RollingRestart],
        _ => (0..args.faults).map(|_| pick(&mut rng, partitions)).collect(),
    };
    println!("chaos: profile {}, mode {}, seed {seed}, {} faults", args.profile, args.mode, plan.len());
    let mut records = Vec::new();
    let mut excused: Vec<(Instant, i64)> = Vec::new();
    let within = Duration::from_secs(args.converge_within);
    for (i, fault) in plan.iter().enumerate() {
        let at = Instant::now();
        let at_ms = now_ms();
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
    workload.stop.store(true, Ordering::SeqCst);
    let _ignored = writer.await;
    let _ignored = reader.await;
    let present = present_writes(dir, &secret).await?;
    let acks = workload.acks.lock().map(|a| a.clone()).unwrap_or_default();
    let (mut lost, mut lost_with_majority) = (0, 0);
    for a in acks.iter().filter(|a| !present.contains(&a.n)) {
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
        ops_ok: workload.ok.load(Ordering::SeqCst),
        ops_failed: workload.failed.load(Ordering::SeqCst),
        writes_acked: acks.len(),
        writes_lost: lost,
        writes_lost_with_majority: lost_with_majority,
        stale_reads: workload.stale.load(Ordering::SeqCst),
        longest_write_gap_s: workload.longest_gap.lock().map(|g| g.as_secs_f64()).unwrap_or(0.0),
    })
}

fn pick(rng: &mut fastrand::Rng, partitions: bool) -> Fault {
    // Weights: plain kills most, quorum loss least (each one takes the longest to heal).
    loop {
        let f = match rng.u32(0..100) {
            0..25 => Fault::KillRandom,
            25..42 => Fault::KillLeader,
            42..56 => Fault::KillAgentMidReconfig,
            56..74 => Fault::ScaleDuringKill,
            74..90 => Fault::Partition,
            _ => Fault::LoseMajority,
        };
        if partitions || f != Fault::Partition {
            return f;
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

async fn inject(fault: Fault, dir: &Path, rng: &mut fastrand::Rng) -> anyhow::Result<Vec<u32>> {
    let v = local::cluster_view(dir).await?;
    // Only members whose instance runs: a converged view can still list one whose instance the
    // previous fault's scale-in just terminated.
    let running = |m: &&MemberView| {
        v.instances
            .iter()
            .any(|i| Some(&i.id) == m.instance.as_ref() && i.state == zkpilot_core::InstanceState::Running)
    };
    let ids: Vec<ServerId> = v.members.iter().filter(running).map(|m| m.id).collect();
    if ids.is_empty() {
        bail!("no member with a running instance to inject {fault:?} into");
    }
    let random = |rng: &mut fastrand::Rng| ids[rng.usize(0..ids.len())];
    // A scale-in of the previous fault may terminate the target between the view and the kill:
    // it is gone either way.
    let kill = |id: ServerId| match local::kill(dir, id, false, &mut print) {
        Ok(_) | Err(GroupError::AlreadyTerminated { .. }) => Ok(id.0),
        Err(e) => Err(e),
    };
    Ok(match fault {
        Fault::KillRandom => vec![kill(random(rng))?],
        Fault::RollingRestart => {
            local::rolling::rolling_restart(dir, Duration::from_secs(120), &mut print).await?;
            ids.iter().map(|i| i.0).collect()
        }
        Fault::Partition => {
            let id = random(rng);
            let instance = v.members.iter().find(|m| m.id == id).and_then(|m| m.instance.clone());
            let state = zkpilot_local::StateDir::open(dir)?;
            let seq = state
                .instances()?
                .into_iter()
                .find(|r| Some(&r.id) == instance.as_ref())
                .map(|r| r.seq)
                .context("partition target has no instance")?;
            let table = format!("zkpilot_chaos_{}", state.group()?.net.replace('.', "_"));
            let rules = PartitionRules::apply(&table, local::SEPARATE_UID_BASE + seq)?;
            tokio::time::sleep(Duration::from_millis(rng.u64(12_000..=20_000))).await;
            drop(rules);
            vec![id.0]
        }
        Fault::KillLeader => vec![kill(v.leader.context("no leader to kill")?)?],
        Fault::ScaleDuringKill => {
            let state = zkpilot_local::StateDir::open(dir)?;
            let desired = state.group()?.desired;
            let next = loop {
                let n = rng.usize(3..=5);
                if n != desired {
                    break n;
                }
            };
            state.set_desired(next)?;
            vec![kill(random(rng))?]
        }
        Fault::LoseMajority => {
            let voters: Vec<ServerId> = v.members.iter().filter(running).filter(|m| m.voting).map(|m| m.id).collect();
            let keep = voters[rng.usize(0..voters.len())];
            let mut out = Vec::new();
            for id in voters.into_iter().filter(|id| *id != keep) {
                out.push(kill(id)?);
            }
            out
        }
        Fault::KillAgentMidReconfig => {
            let state = zkpilot_local::StateDir::open(dir)?;
            let desired = state.group()?.desired;
            state.set_desired(desired + 1)?;
            // The change is pending once a new instance's server runs but is not a member yet: the
            // lease holder adds it within a pass of it syncing.
            let deadline = Instant::now() + Duration::from_secs(60);
            let member_ids: BTreeSet<ServerId> = ids.iter().copied().collect();
            loop {
                let v = local::cluster_view(dir).await?;
                let joining = v.instances.iter().any(|i| {
                    i.state == zkpilot_core::InstanceState::Running
                        && i.server_id.is_some_and(|s| !member_ids.contains(&s))
                });
                if joining || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // The lease holder is the agent carrying out the change; before any change was ever
            // made (slot mode needs none at genesis) there is none yet, and any agent will do.
            let holder = lease_holder(dir);
            let id = state
                .claims()?
                .into_iter()
                .chain(
                    state
                        .slots()?
                        .into_iter()
                        .map(|(n, s)| (n, zkpilot_local::state::Claim { instance: s.instance, address: s.address })),
                )
                .find(|(_, c)| Some(&c.instance) == holder.as_ref())
                .map(|(n, _)| n)
                .unwrap_or_else(|| random(rng));
            local::kill(dir, id, true, &mut print)?;
            vec![id.0]
        }
    })
}

fn lease_holder(dir: &Path) -> Option<zkpilot_core::model::InstanceId> {
    let text = std::fs::read_to_string(dir.join("cluster/lease.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(zkpilot_core::model::InstanceId(v["holder"].as_str()?.to_string()))
}

/// The zxid the recovery after a quorum loss at `since_ms` kept, if one was decided.
fn recovery_kept_zxid(dir: &Path, since_ms: u64) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join("recovery/decision.json")).ok()?;
    let d: zkpilot_core::recovery::RecoveryDecision = serde_json::from_str(&text).ok()?;
    (d.decided_ms >= since_ms).then_some(d.kept_zxid as i64)
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

fn connect_string(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("connect-string")).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

async fn session(dir: &Path, secret: &str) -> Option<zk::Client> {
    let connect = connect_string(dir)?;
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .with_connection_timeout(Duration::from_secs(2))
        .with_auth("digest", format!("super:{secret}").as_bytes())
        .connect(&connect)
        .await
        .ok()
}

fn opts() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn write_loop(dir: PathBuf, secret: String, w: Arc<Workload>) {
    let mut client: Option<zk::Client> = None;
    let mut n: u64 = 0;
    let mut last_ok = Instant::now();
    let mut buckets: BTreeSet<u64> = BTreeSet::new();
    while !w.stop.load(Ordering::SeqCst) {
        let Some(c) = client.as_ref() else {
            client = session(&dir, &secret).await;
            if client.is_none() {
                w.failed.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            continue;
        };
        let bucket = (n + 1) / 1000;
        if !buckets.contains(&bucket) {
            let made = async {
                ensure(c, "/chaos").await?;
                ensure(c, "/chaos/last").await?;
                ensure(c, &format!("/chaos/b{bucket}")).await
            }
            .await;
            match made {
                Ok(()) => {
                    buckets.insert(bucket);
                }
                Err(_) => {
                    w.failed.fetch_add(1, Ordering::SeqCst);
                    client = None;
                }
            }
            continue;
        }
        n += 1;
        let path = format!("/chaos/b{bucket}/w{n}");
        let op = async {
            let (stat, _) = c.create(&path, n.to_string().as_bytes(), &opts()).await?;
            c.set_data("/chaos/last", n.to_string().as_bytes(), None).await?;
            Ok::<i64, zk::Error>(stat.czxid)
        };
        match tokio::time::timeout(Duration::from_secs(8), op).await {
            Ok(Ok(zxid)) => {
                let now = Instant::now();
                if let Ok(mut g) = w.longest_gap.lock() {
                    *g = (*g).max(now - last_ok);
                }
                last_ok = now;
                w.ok.fetch_add(2, Ordering::SeqCst);
                if let Ok(mut a) = w.acks.lock() {
                    a.push(Ack { n, zxid, at: now });
                }
            }
            Ok(Err(_)) | Err(_) => {
                w.failed.fetch_add(1, Ordering::SeqCst);
                // A fresh session from the current connection string: members come and go.
                client = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ensure(c: &zk::Client, path: &str) -> Result<(), zk::Error> {
    match c.create(path, b"", &opts()).await {
        Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn read_loop(dir: PathBuf, secret: String, w: Arc<Workload>) {
    let mut client: Option<(zk::Client, u64)> = None;
    while !w.stop.load(Ordering::SeqCst) {
        let Some((c, seen)) = client.as_mut() else {
            // A new session starts with no history: only within one session is going back wrong.
            client = session(&dir, &secret).await.map(|c| (c, 0));
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            continue;
        };
        match tokio::time::timeout(Duration::from_secs(8), c.get_data("/chaos/last")).await {
            Ok(Ok((data, _))) => {
                w.ok.fetch_add(1, Ordering::SeqCst);
                let v: u64 = String::from_utf8_lossy(&data).parse().unwrap_or(0);
                if v < *seen {
                    eprintln!("STALE READ: /chaos/last = {v} after {seen} in the same session");
                    w.stale.fetch_add(1, Ordering::SeqCst);
                }
                *seen = (*seen).max(v);
            }
            Ok(Err(zk::Error::NoNode)) => {}
            Ok(Err(_)) | Err(_) => {
                w.failed.fetch_add(1, Ordering::SeqCst);
                client = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every write present at the end, read through a fresh session after `sync`.
async fn present_writes(dir: &Path, secret: &str) -> anyhow::Result<BTreeSet<u64>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let c = session(dir, secret).await.context("no session")?;
            c.sync("/chaos").await?;
            let mut out = BTreeSet::new();
            let (buckets, _) = c.get_children("/chaos").await?;
            for b in buckets.iter().filter(|b| b.starts_with('b')) {
                let (children, _) = c.get_children(&format!("/chaos/{b}")).await?;
                out.extend(children.iter().filter_map(|w| w.strip_prefix('w')?.parse::<u64>().ok()));
            }
            anyhow::Ok(out)
        };
        match attempt.await {
            Ok(out) => return Ok(out),
            Err(e) if Instant::now() < deadline => {
                eprintln!("reading back the writes: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
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
