//! Benchmarks on one local group each: B3 heal after kill -9, B4 cold bootstrap (against bare
//! JVMs with a fixed list), B5 the idle agents' footprint, B7 scaling out and in under load.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context;
use zkpilot_core::ServerId;
use zkpilot_core::ports::{Coordination, OperatorSettings};
use zkpilot_local::{LocalBackend, StateDir};
use zkpilot_ops::local;
use zkpilot_ops::progress::print;
use zkpilot_zk::Install;

use super::setup::{BenchArgs, secret, up};
use super::stats::{fmt_bound, fmt_stat, stat, verdict};
use crate::fixed::FixedEnsemble;
use crate::workload::{Spec, Target, Workload, present};

/// B3: kill -9 of a follower's instance; from the kill until a synced voter is back in its place.
pub async fn heal_bench(args: &BenchArgs, out: &mut String) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for mode in ["elastic", "slot"] {
        let dir = args.workdir(&format!("b3-{mode}"))?;
        let net = args.net(3);
        let v = up(args, 3, &dir, &net, mode).await?;
        let (mut times, mut after_detection) = (Vec::new(), Vec::new());
        let detect_s = zkpilot_local::DEFAULT_FAILURE_DETECTED_MS as f64 / 1000.0;
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
                let total = started.elapsed().as_secs_f64();
                times.push(total);
                after_detection.push(total - detect_s);
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        local::down(&dir, &mut print).await?;
        result?;
        let _ignored = std::fs::remove_dir_all(&dir);
        rows.push((mode, stat(&times), stat(&after_detection)));
    }
    let detect_s = zkpilot_local::DEFAULT_FAILURE_DETECTED_MS as f64 / 1000.0;
    writeln!(out, "\n### B3 Heal after kill -9 of an instance (3 voters)\n")?;
    writeln!(out, "| mode | kill → synced voter back (s) | of which after the group noticed (s) |\n|---|---|---|")?;
    for (mode, s, d) in &rows {
        writeln!(out, "| {mode} | {} | {} |", fmt_stat(*s, 2), fmt_stat(*d, 2))?;
    }
    let worst = rows.iter().map(|(_, s, _)| s.max).fold(0.0, f64::max);
    writeln!(
        out,
        "\nTarget ≤ 6 s from the kill, in every run (slowest: {worst:.2} s): {}. A follower's instance is SIGKILLed \
         (`local kill`, agent and JVM); the group lists it as running for another {detect_s:.0} s (its health check, \
         `local up --failure-detected-after`; EC2 takes minutes), then terminates it and launches a replacement (new \
         address, empty disk in elastic mode; the same address and data dir in slot mode). Failure detection is \
         included. Measured until `local status` shows 3 voters, all serving, converged, with the replacement in \
         place. {} kills per mode on one group each.",
        verdict(worst <= 6.0),
        args.runs()
    )?;
    Ok(())
}

/// When all of `addresses` first serve with exactly one leader among them, polled with `srvr`
/// every 50 ms from `started`; B4 times both sides with it, so both stop at the same condition.
async fn serving_under_one_leader(addresses: &[String], started: Instant, limit: Duration) -> Option<f64> {
    while started.elapsed() < limit {
        let mut modes = Vec::new();
        for a in addresses {
            modes.push(zkpilot_zk::probe::srvr(a).await.mode);
        }
        let leaders = modes.iter().filter(|m| **m == zkpilot_core::observed::Mode::Leader).count();
        if modes.iter().all(|m| m.is_serving()) && leaders == 1 {
            return Some(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// B4: `local up --size 3` vs three bare JVMs with a fixed list, until all serve under a leader.
pub async fn bootstrap_bench(args: &BenchArgs, out: &mut String) -> anyhow::Result<()> {
    let (mut zk, mut bare) = (Vec::new(), Vec::new());
    let net = args.net(4);
    // The same three client addresses on both sides (a local group's instance N is `<net>.N`).
    let addresses: Vec<String> = (1..=3).map(|n| format!("{net}.{n}:2181")).collect();
    let limit = Duration::from_secs(180);
    for run in 0..args.runs() {
        eprintln!("[bench] b4 run {}", run + 1);
        let dir = args.workdir(&format!("b4-zkpilot-{run}"))?;
        let started = Instant::now();
        let (r, t) =
            tokio::join!(up(args, 3, &dir, &net, "elastic"), serving_under_one_leader(&addresses, started, limit));
        local::down(&dir, &mut print).await?;
        r?;
        zk.push(t.context("b4: the zkpilot group never served under one leader")?);
        let _ignored = std::fs::remove_dir_all(&dir);

        let dir = args.workdir(&format!("b4-bare-{run}"))?;
        let install = Install::detect(&args.zookeeper, None)?;
        let mut list = zkpilot_core::EnsembleConfig::default();
        for n in 1..=3u32 {
            list.servers.insert(ServerId(n), crate::fixed::replace::spec(&net, n));
        }
        let mut e = FixedEnsemble::new(install, dir.clone(), 128, 2000);
        let started = Instant::now();
        let (r, t) = tokio::join!(e.start(&list, limit), serving_under_one_leader(&addresses, started, limit));
        e.shutdown().await;
        r?;
        bare.push(t.context("b4: the bare ensemble never served under one leader")?);
        let _ignored = std::fs::remove_dir_all(&dir);
    }
    let (z, b) = (stat(&zk), stat(&bare));
    // Runs are interleaved pairs: the bound holds only if it holds for every pair.
    let ratios = stat(&zk.iter().zip(&bare).map(|(z, b)| z / b).collect::<Vec<_>>());
    writeln!(out, "\n### B4 Cold bootstrap of 3\n")?;
    writeln!(out, "| how | until 3 serve under one leader (s) |\n|---|---|")?;
    writeln!(out, "| `zkpilot local up --size 3` | {} |", fmt_stat(z, 2))?;
    writeln!(out, "| 3 bare ZooKeeper JVMs, fixed list, started at once | {} |", fmt_stat(b, 2))?;
    writeln!(
        out,
        "\nRatio zkpilot / bare per run: {}; target ≤ 1.2 in every run: {}. Both sides are timed by the same probe: from the start \
         until `srvr` on the same three addresses says all serve and exactly one leads (polled every 50 ms). \
         zkpilot's time includes the controller, three agents claiming ids, the cluster marker and writing the \
         configs; both sides use the same JVM settings (128 MiB heap) and zoo.cfg keys (the bare side's are \
         zkpilot's own, reconfig off). {} runs each, interleaved.",
        fmt_bound(ratios, 2),
        verdict(ratios.max <= 1.2),
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
pub async fn footprint_bench(args: &BenchArgs, out: &mut String) -> anyhow::Result<()> {
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
        "\nTargets for every agent: ≤ 15 MB RSS ({} MiB): {}; ≤ 0.5 % CPU ({} %): {}. {n} agents sampled over {secs:.0} s (`/proc/<pid>/status` \
         VmRSS every second, utime+stime from `/proc/<pid>/stat`); each agent passes every 500 ms (probes every \
         member with `srvr`, reads the config, lists the backend, publishes its status).",
        fmt_bound(rss, 1),
        verdict(rss.max <= 15.0),
        fmt_bound(cpu, 2),
        verdict(cpu.max <= 0.5)
    )?;
    Ok(())
}

/// B7: 3 → 7 voters + 6 observers → 3 under load.
pub async fn scale_bench(args: &BenchArgs, out: &mut String) -> anyhow::Result<()> {
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
            let connect = v.connect_string.clone().context("connect")?;
            let load = Spec::steady(Target::Fixed(connect), Some(auth.clone()), "/bench-load");
            let workload = Workload::start(load.clone());
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
            let stats = workload.stop().await;
            let now = Target::Fixed(after.connect_string.clone().context("connect")?);
            let l = stats.missing(&present(&now, Some(&auth), &load.root).await?).count();
            Ok::<_, anyhow::Error>((t_up, t_down, stats.summary(), l))
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
