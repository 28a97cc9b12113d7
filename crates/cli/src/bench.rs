//! `zkpilot bench`: the side-by-side benchmarks (B1–B8), every comparison measured in the same
//! run, written into BENCHMARKS.md between `<!-- bench:begin -->` and `<!-- bench:end -->` (the
//! rest of the file, e.g. the chaos runs, is kept). `--smoke` runs each once with small sizes,
//! only to show it works (CI does that); its figures mean nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use zkpilot_core::ServerId;
use zkpilot_core::ports::{Backend, OperatorSettings};
use zkpilot_local::{LocalBackend, StateDir};
use zkpilot_runtime::config::IdentityMode;
use zkpilot_runtime::static_membership::StaticEnsemble;
use zkpilot_runtime::view::ClusterView;
use zkpilot_zk::Install;

use crate::load::{self, Load, LoadStats};
use crate::static_cmd::{self, ReplaceArgs};
use zkpilot_ops::local::{self, UpOptions};
use zkpilot_ops::progress::print;

/// Options of `zkpilot bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Runs per measurement (medians and spread are over these).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub runs: u32,
    /// One run of each, small sizes, written to `--out`: shows the harness works, measures nothing.
    #[arg(long)]
    pub smoke: bool,
    /// File to write (the bench section is replaced, the rest kept).
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// Only these (comma-separated: b1,b2,...,b8). B8 (clean builds, ~30 min) runs only when named.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Work directory (each run uses and removes a subdirectory).
    #[arg(long, default_value_os_t = std::env::temp_dir().join("zkpilot-bench"))]
    pub dir: PathBuf,
    /// First octets of the loopback nets used (`127.X`; benchmark N uses `127.X.N`).
    #[arg(long, default_value = "127.150")]
    pub net: String,
    /// ZooKeeper install.
    #[arg(long, default_value = "/usr/share/java")]
    pub zookeeper: PathBuf,
}

impl BenchArgs {
    fn wants(&self, b: &str) -> bool {
        if self.only.is_empty() { b != "b8" } else { self.only.iter().any(|o| o.eq_ignore_ascii_case(b)) }
    }
    fn runs(&self) -> usize {
        if self.smoke { 1 } else { self.runs as usize }
    }
    fn net(&self, n: u32) -> String {
        format!("{}.{n}", self.net)
    }
    fn workdir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let d = self.dir.join(name);
        if d.exists() {
            // Only our own leftovers: a directory this command created under --dir.
            std::fs::remove_dir_all(&d).with_context(|| format!("clearing {}", d.display()))?;
        }
        Ok(d)
    }
}

/// Median and spread of a sample.
#[derive(Debug, Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

fn stat(v: &[f64]) -> Stat {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Stat { median, min: s.first().copied().unwrap_or(f64::NAN), max: s.last().copied().unwrap_or(f64::NAN) }
}

fn fmt_stat(s: Stat, digits: usize) -> String {
    if s.min == s.max {
        format!("{:.digits$}", s.median)
    } else {
        format!("{:.digits$} ({:.digits$}–{:.digits$})", s.median, s.min, s.max)
    }
}

/// One client-visible membership change.
#[derive(Debug, Clone)]
struct ChangeRun {
    failed: u64,
    gap_ms: u64,
    total_ms: u64,
    lost: usize,
}

async fn up(args: &BenchArgs, size: u32, dir: &Path, net: &str, mode: &str) -> anyhow::Result<ClusterView> {
    let zkpilot = std::env::current_exe().context("locating the zkpilot binary")?;
    let mut u = UpOptions::new(size, dir, net, &args.zookeeper, &zkpilot);
    u.mode = if mode == "slot" { IdentityMode::Slot } else { IdentityMode::Elastic };
    u.timeout = Duration::from_secs(240);
    u.backup_every = Duration::ZERO;
    Ok(local::up(&u, None, &mut print).await?)
}

fn secret(dir: &Path) -> anyhow::Result<String> {
    Ok(format!("super:{}", std::fs::read_to_string(dir.join("secret"))?.trim()))
}

/// B1/B2 with zkpilot: a planned replacement (`local terminate`) of the follower or the leader.
async fn reconfig_replace(args: &BenchArgs, dir: &Path, net: &str, leader: bool) -> anyhow::Result<ChangeRun> {
    let v = up(args, 3, dir, net, "elastic").await?;
    let result = async {
        let auth = secret(dir)?;
        let victim = if leader {
            v.leader.context("no leader")?
        } else {
            v.members.iter().find(|m| Some(m.id) != v.leader).map(|m| m.id).context("no follower")?
        };
        let connect = v.connect_string.clone().context("no connect string")?;
        let load = Load::start(&connect, Some(&auth), "bench-load").await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let t0 = epoch_ms();
        local::terminate(dir, victim, &mut print)?;
        let after = local::wait_until(dir, "replacement swapped in", Duration::from_secs(180), |v| {
            v.converged && v.voters == 3 && !v.members.iter().any(|m| m.id == victim)
        })
        .await?;
        let total_ms = started.elapsed().as_millis() as u64;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let root = load.root().to_string();
        let stats = load.stop().await;
        let now = after.connect_string.clone().unwrap_or(connect);
        let lost = load::lost(&now, Some(&auth), &root, &stats.acked).await?;
        timeline(dir, t0, &stats);
        Ok(ChangeRun { failed: stats.failed, gap_ms: stats.longest_gap_ms, total_ms, lost })
    }
    .await;
    local::down(dir, &mut print).await?;
    result
}

async fn static_replace(
    args: &BenchArgs,
    dir: &Path,
    net: &str,
    leader: bool,
    strategy: &str,
) -> anyhow::Result<ChangeRun> {
    let r = static_cmd::replace(&ReplaceArgs {
        dir: dir.to_path_buf(),
        net: net.to_string(),
        size: 3,
        replace: if leader { "leader" } else { "follower" }.into(),
        strategy: strategy.into(),
        zookeeper: args.zookeeper.clone(),
        json: false,
    })
    .await?;
    Ok(ChangeRun { failed: r.load.failed, gap_ms: r.load.longest_gap_ms, total_ms: r.total_ms, lost: r.lost })
}

/// B1 (follower) or B2 (leader): three strategies, interleaved run by run.
async fn replace_bench(args: &BenchArgs, leader: bool, out: &mut String) -> anyhow::Result<()> {
    let (b, net) = if leader { ("b2", args.net(2)) } else { ("b1", args.net(1)) };
    let strategies = ["zkpilot reconfig", "static rolling (leader last)", "static all at once (Exhibitor default)"];
    let mut runs: Vec<Vec<ChangeRun>> = vec![Vec::new(); 3];
    for run in 0..args.runs() {
        for (k, name) in strategies.iter().enumerate() {
            let dir = args.workdir(&format!("{b}-{k}-{run}"))?;
            eprintln!("[bench] {b} run {}: {name}", run + 1);
            let r = match k {
                0 => reconfig_replace(args, &dir, &net, leader).await,
                1 => static_replace(args, &dir, &net, leader, "rolling").await,
                _ => static_replace(args, &dir, &net, leader, "all-at-once").await,
            }
            .with_context(|| format!("{b} {name} run {}", run + 1))?;
            let _ignored = std::fs::remove_dir_all(&dir);
            runs[k].push(r);
        }
    }
    let who = if leader { "the leader" } else { "a follower voter" };
    writeln!(out, "\n### {} Replace {who} of 3 under a steady write load\n", b.to_uppercase())?;
    writeln!(out, "| strategy | failed client ops | longest write gap (ms) | total (ms) | acked writes lost |")?;
    writeln!(out, "|---|---|---|---|---|")?;
    for (k, name) in strategies.iter().enumerate() {
        let r = &runs[k];
        let f = |g: fn(&ChangeRun) -> f64| stat(&r.iter().map(g).collect::<Vec<_>>());
        writeln!(
            out,
            "| {name} | {} | {} | {} | {} |",
            fmt_stat(f(|c| c.failed as f64), 0),
            fmt_stat(f(|c| c.gap_ms as f64), 0),
            fmt_stat(f(|c| c.total_ms as f64), 0),
            r.iter().map(|c| c.lost).sum::<usize>()
        )?;
    }
    let z = stat(&runs[0].iter().map(|c| c.failed as f64).collect::<Vec<_>>());
    let g = stat(&runs[0].iter().map(|c| c.gap_ms as f64).collect::<Vec<_>>());
    writeln!(
        out,
        "\nTarget for reconfig: 0 failed, gap ≤ 150 ms. Measured median: {} failed, gap {} ms: {}.",
        z.median,
        g.median,
        verdict(z.median <= 0.0 && g.median <= 150.0)
    )?;
    writeln!(
        out,
        "zkpilot: `local terminate <id>` (a planned replacement: the replacement launches, is synced, and one \
         reconfig swaps it for the old server, which keeps serving until then); static: `zkpilot static replace \
         --replace {} --strategy rolling|all-at-once`. Load: one client creating znodes one at a time (10 ms apart) \
         through the full connection string; a failed op is any error or 5 s timeout (a session moving off a \
         stopped server counts); the gap is the longest time between two acknowledged writes. Median (min–max) \
         of {} runs per strategy, strategies interleaved.",
        if leader { "leader" } else { "follower" },
        args.runs()
    )?;
    Ok(())
}

fn epoch_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Prints where the longest write gap fell relative to the change's events (from every agent's
/// status), so a gap can be attributed rather than guessed at.
fn timeline(dir: &Path, t0: u64, stats: &LoadStats) {
    let mut lines: Vec<(i64, String)> = vec![
        (0, "terminate".into()),
        (
            stats.longest_gap_from_ms as i64 - t0 as i64,
            format!("longest write gap begins ({} ms)", stats.longest_gap_ms),
        ),
    ];
    if let Ok(statuses) = StateDir::open(dir).and_then(|s| s.statuses()) {
        for (inst, st) in statuses {
            for e in st["events"].as_array().into_iter().flatten() {
                let (Some(at), Some(action)) = (e["at_ms"].as_u64(), e["action"].as_str()) else { continue };
                if at >= t0 {
                    let took = e["took_ms"].as_u64().unwrap_or(0);
                    lines.push((
                        at as i64 - took as i64 - t0 as i64,
                        format!("{inst}: {action} ({took} ms) {}", e["outcome"].as_str().unwrap_or("")),
                    ));
                }
            }
        }
    }
    lines.sort();
    for (t, what) in lines {
        eprintln!("[bench]   {t:>+6} ms  {what}");
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**missed** (see the notes below)" }
}

/// B3: kill -9 of a follower's instance; from the kill until a synced voter is back in its place.
async fn heal_bench(args: &BenchArgs, out: &mut String) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for mode in ["elastic", "slot"] {
        let dir = args.workdir(&format!("b3-{mode}"))?;
        let net = args.net(3);
        let v = up(args, 3, &dir, &net, mode).await?;
        let mut times = Vec::new();
        let result = async {
            let mut v = v;
            for run in 0..args.runs() {
                let victim = v.members.iter().find(|m| Some(m.id) != v.leader).context("no follower")?;
                let (id, old_instance) = (victim.id, victim.instance.clone());
                eprintln!("[bench] b3 {mode} run {}: kill -9 server {id}", run + 1);
                let started = Instant::now();
                local::kill(&dir, id, false, &mut print)?;
                v = local::wait_until(&dir, "healed", Duration::from_secs(180), |v| {
                    let replaced = match mode {
                        // Elastic: a new server (new id) is a synced voter in the config.
                        "elastic" => !v.members.iter().any(|m| m.id == id),
                        // Slot: the same server, now on the replacement instance, serving.
                        _ => v.members.iter().any(|m| m.id == id && m.instance != old_instance),
                    };
                    v.converged && v.voters == 3 && replaced
                })
                .await?;
                times.push(started.elapsed().as_secs_f64());
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        local::down(&dir, &mut print).await?;
        result?;
        let _ignored = std::fs::remove_dir_all(&dir);
        rows.push((mode, stat(&times)));
    }
    writeln!(out, "\n### B3 Heal after kill -9 of an instance (3 voters)\n")?;
    writeln!(out, "| mode | kill → synced voter back (s) |\n|---|---|")?;
    for (mode, s) in &rows {
        writeln!(out, "| {mode} | {} |", fmt_stat(*s, 2))?;
    }
    let worst = rows.iter().map(|(_, s)| s.median).fold(0.0, f64::max);
    writeln!(
        out,
        "\nTarget ≤ 6 s: {}. A follower's instance is SIGKILLed (`local kill`, agent and JVM); the local group \
         launches a replacement (new address, empty disk in elastic mode; the same address and data dir in slot \
         mode). Measured until `local status` shows 3 voters, all serving, converged, with the replacement in \
         place. {} kills per mode on one group each.",
        verdict(worst <= 6.0),
        args.runs()
    )?;
    Ok(())
}

/// B4: `local up --size 3` vs three bare JVMs with a static list, until all serve under a leader.
async fn bootstrap_bench(args: &BenchArgs, out: &mut String) -> anyhow::Result<()> {
    let (mut zk, mut bare) = (Vec::new(), Vec::new());
    let net = args.net(4);
    for run in 0..args.runs() {
        eprintln!("[bench] b4 run {}", run + 1);
        let dir = args.workdir(&format!("b4-zkpilot-{run}"))?;
        let started = Instant::now();
        let r = up(args, 3, &dir, &net, "elastic").await;
        zk.push(started.elapsed().as_secs_f64());
        local::down(&dir, &mut print).await?;
        r?;
        let _ignored = std::fs::remove_dir_all(&dir);

        let dir = args.workdir(&format!("b4-bare-{run}"))?;
        let install = Install::detect(&args.zookeeper, None)?;
        let mut list = zkpilot_core::EnsembleConfig::default();
        for n in 1..=3u32 {
            list.servers.insert(ServerId(n), static_cmd::spec(&net, n));
        }
        let mut e = StaticEnsemble::new(install, dir.clone(), 128, 2000);
        let started = Instant::now();
        let r = e.start(&list, Duration::from_secs(180)).await;
        bare.push(started.elapsed().as_secs_f64());
        e.shutdown().await;
        r?;
        let _ignored = std::fs::remove_dir_all(&dir);
    }
    let (z, b) = (stat(&zk), stat(&bare));
    let ratio = z.median / b.median;
    writeln!(out, "\n### B4 Cold bootstrap of 3\n")?;
    writeln!(out, "| how | until 3 serve under one leader (s) |\n|---|---|")?;
    writeln!(out, "| `zkpilot local up --size 3` | {} |", fmt_stat(z, 2))?;
    writeln!(out, "| 3 bare ZooKeeper JVMs, static list, started at once | {} |", fmt_stat(b, 2))?;
    writeln!(
        out,
        "\nRatio of medians {ratio:.2}; target ≤ 1.2: {}. zkpilot's time includes the controller, three agents \
         claiming ids, the cluster marker and writing the configs; both sides use the same JVM settings \
         (128 MiB heap) and addresses. {} runs each, interleaved.",
        verdict(ratio <= 1.2),
        args.runs()
    )?;
    Ok(())
}

fn proc_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime is field 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn proc_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// B5: RSS and CPU of idle agents (each agent of a converged group is one sample).
async fn footprint_bench(args: &BenchArgs, out: &mut String) -> anyhow::Result<()> {
    let size = if args.smoke { 3 } else { 5 };
    let window = if args.smoke { Duration::from_secs(5) } else { Duration::from_secs(60) };
    let dir = args.workdir("b5")?;
    up(args, size, &dir, &args.net(5), "elastic").await?;
    let result = async {
        let pids: Vec<u32> = StateDir::open(&dir)?.instances()?.iter().filter_map(|r| r.agent_pid).collect();
        eprintln!("[bench] b5: {} idle agents over {window:?}", pids.len());
        let before: Vec<Option<u64>> = pids.iter().map(|p| proc_ticks(*p)).collect();
        let mut rss_max = vec![0u64; pids.len()];
        let started = Instant::now();
        while started.elapsed() < window {
            for (i, p) in pids.iter().enumerate() {
                rss_max[i] = rss_max[i].max(proc_rss_kb(*p).unwrap_or(0));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let secs = started.elapsed().as_secs_f64();
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
        let cpu: Vec<f64> = pids
            .iter()
            .zip(before)
            .filter_map(|(p, b)| Some((proc_ticks(*p)?.saturating_sub(b?)) as f64 / hz / secs * 100.0))
            .collect();
        let rss: Vec<f64> = rss_max.iter().map(|k| *k as f64 / 1024.0).collect();
        Ok::<_, anyhow::Error>((stat(&rss), stat(&cpu), pids.len(), secs))
    }
    .await;
    local::down(&dir, &mut print).await?;
    let (rss, cpu, n, secs) = result?;
    let _ignored = std::fs::remove_dir_all(&dir);
    writeln!(out, "\n### B5 Agent footprint (idle, converged group of {size})\n")?;
    writeln!(out, "| | per agent |\n|---|---|")?;
    writeln!(out, "| peak RSS (MiB) | {} |", fmt_stat(rss, 1))?;
    writeln!(out, "| CPU (% of one core) | {} |", fmt_stat(cpu, 2))?;
    writeln!(
        out,
        "\nTargets ≤ 15 MB RSS: {}; ≤ 0.5 % CPU: {}. {n} agents sampled over {secs:.0} s (`/proc/<pid>/status` \
         VmRSS every second, utime+stime from `/proc/<pid>/stat`); each agent passes every 500 ms (probes every \
         member with `srvr`, reads the config, lists the backend, publishes its status).",
        verdict(rss.max <= 15.0),
        verdict(cpu.median <= 0.5)
    )?;
    Ok(())
}

/// B6: 64 concurrent claimers, all unique; latency spread.
async fn claims_bench(args: &BenchArgs, out: &mut String) -> anyhow::Result<()> {
    let n = if args.smoke { 16 } else { 64 };
    let mut rows: Vec<(String, usize, Stat)> = Vec::new();
    let dir = args.workdir("b6")?;
    std::fs::create_dir_all(&dir)?;
    let spec = zkpilot_local::GroupSpec {
        desired: 0,
        net: args.net(6),
        zones: vec!["a".into()],
        agent_exe: PathBuf::from("/bin/false"),
        zookeeper_install: args.zookeeper.clone(),
        java: None,
        target_voters: 3,
        min_voters: 1,
        heap_mb: 128,
        tick_time_ms: 2000,
        slot_mode: false,
        names_domain: None,
        unhealthy_after_ms: 0,
        quorum_loss_after_ms: 10_000,
        separate_uids: false,
        backup_interval_ms: 0,
    };
    StateDir::create(&dir, &spec)?;
    let local = LocalBackend::open(&dir)?;
    rows.push(("local backend (flock + link(2))".into(), n, claim_all(&local, n).await?));
    let _ignored = std::fs::remove_dir_all(&dir);
    #[cfg(feature = "aws")]
    {
        for logs in [false, true] {
            let moto = zkpilot_testkit::Moto::start();
            let conf = moto.sdk_config().await;
            let g = zkpilot_testkit::create_group(&conf, "bench", 0).await;
            let claims = if logs {
                aws_sdk_cloudwatchlogs::Client::new(&conf)
                    .create_log_group()
                    .log_group_name("zkpilot-claims")
                    .send()
                    .await
                    .context("create log group")?;
                zkpilot_aws::logs::ClaimStore::Logs { log_group: "zkpilot-claims".into() }
            } else {
                zkpilot_aws::logs::ClaimStore::S3
            };
            let settings = zkpilot_aws::AwsSettings {
                group: g.name,
                bucket: g.bucket,
                prefix: "zkpilot/".into(),
                region: None,
                endpoint_url: None,
                launch_hook: zkpilot_aws::default_launch_hook(),
                terminate_hook: zkpilot_aws::default_terminate_hook(),
                claims,
                hosted_zone_id: None,
                slots: None,
            };
            let b = zkpilot_aws::AwsBackend::from_conf(&conf, settings);
            let name = if logs { "CloudWatch Logs streams on moto" } else { "S3 conditional writes on moto" };
            rows.push((name.into(), n, claim_all(&b, n).await?));
        }
    }
    writeln!(out, "\n### B6 Server-id claims: {n} concurrent claimers\n")?;
    writeln!(out, "| store | claimers | all unique | latency per claim (ms) |\n|---|---|---|---|")?;
    for (name, n, s) in &rows {
        writeln!(out, "| {name} | {n} | yes | {} |", fmt_stat(*s, 1))?;
    }
    if cfg!(not(feature = "aws")) {
        writeln!(
            out,
            "\n(This zkpilot was built without `--features aws`: the S3 and CloudWatch rows were not measured.)"
        )?;
    }
    writeln!(
        out,
        "\nAll claimers start together (one task each); a run fails unless the ids are exactly 1..={n}. moto runs \
         on 127.0.0.1 on the same 2 cores as the {n} claimers (Python, one emulated service), so those \
         latencies are moto's, not S3's or CloudWatch's; uniqueness is what these rows show."
    )?;
    Ok(())
}

/// Claims `n` ids at once; fails unless they are exactly 1..=n. Latency stats in ms.
async fn claim_all<B: Backend + Clone + 'static>(b: &B, n: usize) -> anyhow::Result<Stat> {
    let tasks = (0..n).map(|i| {
        let b = b.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let id =
                b.claim_id(&zkpilot_core::model::InstanceId(format!("i-{i:03}")), &format!("127.0.0.{}", i + 1)).await;
            (id, started.elapsed().as_secs_f64() * 1000.0)
        })
    });
    let mut ids = Vec::new();
    let mut lat = Vec::new();
    for t in futures::future::join_all(tasks).await {
        let (id, ms) = t?;
        ids.push(id?.0);
        lat.push(ms);
    }
    ids.sort_unstable();
    if ids != (1..=n as u32).collect::<Vec<_>>() {
        bail!("claims were not unique: {ids:?}");
    }
    Ok(stat(&lat))
}

/// B7: 3 → 7 voters + 6 observers → 3 under load.
async fn scale_bench(args: &BenchArgs, out: &mut String) -> anyhow::Result<()> {
    let (voters, size) = if args.smoke { (5usize, 5u32) } else { (7, 13) };
    let (mut up_t, mut down_t, mut failed, mut gaps, mut lost) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0usize);
    for run in 0..args.runs() {
        eprintln!("[bench] b7 run {}: 3 -> {voters} voters + {} observers -> 3", run + 1, size as usize - voters);
        let dir = args.workdir(&format!("b7-{run}"))?;
        let v = up(args, 3, &dir, &args.net(7), "elastic").await?;
        let result = async {
            let auth = secret(&dir)?;
            let backend = LocalBackend::open(&dir)?;
            let state = StateDir::open(&dir)?;
            let load = Load::start(&v.connect_string.clone().context("connect")?, Some(&auth), "bench-load").await?;
            let set_target = |t: Option<usize>| OperatorSettings {
                target_voters: t,
                updated_by: "bench".into(),
                ..Default::default()
            };
            let started = Instant::now();
            backend.put_operator_settings(&set_target(Some(voters))).await?;
            state.set_desired(size as usize)?;
            let limit = Duration::from_secs(300);
            local::wait_until(&dir, "scaled out", limit, |v| {
                v.members.len() == size as usize && v.voters == voters && v.members.iter().all(|m| m.mode.is_serving())
            })
            .await?;
            let t_up = started.elapsed().as_secs_f64();
            let started = Instant::now();
            backend.put_operator_settings(&set_target(None)).await?;
            state.set_desired(3)?;
            let after =
                local::wait_until(&dir, "scaled in", limit, |v| v.converged && v.members.len() == 3 && v.voters == 3)
                    .await?;
            let t_down = started.elapsed().as_secs_f64();
            let root = load.root().to_string();
            let stats: LoadStats = load.stop().await;
            let l =
                load::lost(&after.connect_string.clone().context("connect")?, Some(&auth), &root, &stats.acked).await?;
            Ok::<_, anyhow::Error>((t_up, t_down, stats, l))
        }
        .await;
        local::down(&dir, &mut print).await?;
        let (a, b, stats, l) = result?;
        let _ignored = std::fs::remove_dir_all(&dir);
        up_t.push(a);
        down_t.push(b);
        failed.push(stats.failed as f64);
        gaps.push(stats.longest_gap_ms as f64);
        lost += l;
    }
    writeln!(out, "\n### B7 Scale 3 → {voters} voters + {} observers → 3 under load\n", size as usize - voters)?;
    writeln!(out, "| step | time (s) |\n|---|---|")?;
    writeln!(out, "| 3 → {size} members ({voters} voters) | {} |", fmt_stat(stat(&up_t), 1))?;
    writeln!(out, "| {size} → 3 members (3 voters) | {} |", fmt_stat(stat(&down_t), 1))?;
    writeln!(
        out,
        "\nClient load over both steps: failed ops {}, longest write gap {} ms, acked writes lost {lost}. The voter \
         target is raised through the operator switch (what `POST /target-voters` stores) together with the \
         group size, then both are set back. Each step is timed until every member serves with the wanted voter \
         count. {} runs.",
        fmt_stat(stat(&failed), 0),
        fmt_stat(stat(&gaps), 0),
        args.runs()
    )?;
    Ok(())
}

/// B8: clean builds, in a fresh target dir each.
async fn build_bench(out: &mut String) -> anyhow::Result<()> {
    let root = std::env::current_dir()?;
    if !root.join("Cargo.toml").is_file() {
        bail!("b8: run from the repository root (clean builds of this workspace)");
    }
    let mut rows = Vec::new();
    for (what, args) in [
        ("demo binary: `cargo build --release -p zkpilot`", vec!["build", "--release", "--locked", "-p", "zkpilot"]),
        (
            "full test build: `cargo nextest run --workspace --all-features --no-run`",
            vec!["nextest", "run", "--locked", "--workspace", "--all-features", "--no-run"],
        ),
    ] {
        let target = std::env::temp_dir().join(format!("zkpilot-b8-{}", std::process::id()));
        let _ignored = std::fs::remove_dir_all(&target);
        eprintln!("[bench] b8: {what} (clean target {})", target.display());
        let started = Instant::now();
        let status = tokio::process::Command::new("cargo")
            .args(&args)
            .env("CARGO_TARGET_DIR", &target)
            .stdout(std::process::Stdio::null())
            .status()
            .await?;
        let secs = started.elapsed().as_secs_f64();
        let _ignored = std::fs::remove_dir_all(&target);
        if !status.success() {
            bail!("b8: {what} failed: {status}");
        }
        rows.push((what, secs));
    }
    writeln!(out, "\n### B8 Build cost (clean target dir, dependencies already downloaded)\n")?;
    writeln!(out, "| build | wall time |\n|---|---|")?;
    for (what, s) in rows {
        writeln!(out, "| {what} | {:.0} s ({:.1} min) |", s, s / 60.0)?;
    }
    writeln!(
        out,
        "\nOne run each (a clean build takes minutes; the second includes the AWS SDK crates, `--all-features`)."
    )?;
    Ok(())
}

fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_gb = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let zk = std::fs::read_dir("/usr/share/java")
        .ok()
        .and_then(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.starts_with("zookeeper-3") && n.ends_with(".jar"))
        })
        .unwrap_or_else(|| "unknown".into());
    format!(
        "{cores} cores ({cpu}), {mem_gb:.0} GiB RAM, Linux {}, ZooKeeper {zk}, zkpilot {} build",
        read("/proc/sys/kernel/osrelease").trim(),
        if cfg!(debug_assertions) { "debug" } else { "release" }
    )
}

/// Runs the selected benchmarks and writes the report.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    local::validate_net(&format!("{}.1", args.net))?;
    Install::detect(&args.zookeeper, None).context("--zookeeper")?;
    std::fs::create_dir_all(&args.dir).with_context(|| format!("--dir {}", args.dir.display()))?;
    let started = Instant::now();
    let mut body = String::new();
    if args.wants("b1") {
        replace_bench(&args, false, &mut body).await?;
    }
    if args.wants("b2") {
        replace_bench(&args, true, &mut body).await?;
    }
    if args.wants("b3") {
        heal_bench(&args, &mut body).await?;
    }
    if args.wants("b4") {
        bootstrap_bench(&args, &mut body).await?;
    }
    if args.wants("b5") {
        footprint_bench(&args, &mut body).await?;
    }
    if args.wants("b6") {
        claims_bench(&args, &mut body).await?;
    }
    if args.wants("b7") {
        scale_bench(&args, &mut body).await?;
    }
    if args.wants("b8") {
        build_bench(&mut body).await?;
    }
    // Benchmarks not run this time keep their last results (B8 is usually run on its own).
    let previous = std::fs::read_to_string(&args.out).unwrap_or_default();
    for b in ["b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8"] {
        if !args.wants(b)
            && let Some(old) = previous_subsection(&previous, b)
        {
            body.push_str(&format!("\n{old}\n(Kept from an earlier run: not part of this command.)\n"));
        }
    }
    let mut command = format!("zkpilot bench --runs {}", args.runs());
    if args.smoke {
        command = "zkpilot bench --smoke".into();
    }
    if !args.only.is_empty() {
        command.push_str(&format!(" --only {}", args.only.join(",")));
    }
    let section = format!(
        "{BEGIN}\n## Side-by-side benchmarks (B1–B8)\n\nMachine: {}. Command: `{command}` ({:.0} s), written {}.{}\n{body}\n{END}\n",
        machine(),
        started.elapsed().as_secs_f64(),
        date(),
        if args.smoke { " **Smoke mode: one run, small sizes; these figures are not measurements.**" } else { "" }
    );
    write_section(&args.out, &section)?;
    eprintln!("[bench] wrote {}", args.out.display());
    Ok(())
}

/// The `### Bn ...` subsection of the bench section in `text`, up to the next `### ` or the end
/// marker (without any earlier "kept" line).
fn previous_subsection(text: &str, b: &str) -> Option<String> {
    let start = text.find("<!-- bench:begin")?;
    let end = text[start..].find(END)? + start;
    let section = &text[start..end];
    let head = format!("### {} ", b.to_uppercase());
    let at = section.find(&head)?;
    let rest = &section[at..];
    let len = rest[4..].find("\n### ").map_or(rest.len(), |n| n + 4);
    Some(rest[..len].replace("\n(Kept from an earlier run: not part of this command.)", "").trim_end().to_string())
}

const BEGIN: &str = "<!-- bench:begin (written by `zkpilot bench`; edits inside are overwritten) -->";
const END: &str = "<!-- bench:end -->";

fn date() -> String {
    let out = std::process::Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

/// Replaces the bench section of `out` (or appends one), leaving the rest of the file alone.
fn write_section(out: &Path, section: &str) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(out) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_string(),
        Err(e) => return Err(e).with_context(|| out.display().to_string()),
    };
    let text = match (existing.find("<!-- bench:begin"), existing.find(END)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{section}{}", &existing[..a], existing[b + END.len()..].trim_start_matches('\n'))
        }
        _ => format!("{}\n{section}", existing.trim_end()),
    };
    zkpilot_zk::files::write_atomic(out, text.as_bytes())?;
    Ok(())
}
