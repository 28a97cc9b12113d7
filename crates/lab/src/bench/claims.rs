//! B6: server-id claims by many claimers at once, on every claim store.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
#[cfg(feature = "aws")]
use zkpilot_core::ports::Backend;
use zkpilot_core::ports::Identity as _;
use zkpilot_local::{LocalBackend, StateDir};

use super::setup::BenchArgs;
use super::stats::{Stat, fmt_stat, stat};

/// B6: 64 concurrent claimers, all unique; latency spread.
pub async fn claims_bench(args: &BenchArgs, out: &mut String) -> anyhow::Result<()> {
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
        tls: false,
        cert_lifetime_s: 3600,
        backup_interval_ms: 0,
        failure_detected_after_ms: zkpilot_local::DEFAULT_FAILURE_DETECTED_MS,
        learner_sync: Default::default(),
    };
    StateDir::create(&dir, &spec)?;
    // One process per claimer: the lock and link(2) must hold between processes (agents are
    // separate processes), which tasks of one process would not show.
    rows.push(("local backend (flock + link(2)), one process each".into(), n, claim_processes(&dir, n).await?));
    let _ignored = std::fs::remove_dir_all(&dir);
    #[cfg(feature = "aws")]
    {
        use anyhow::Context as _;
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
            "\n(This zkpilot-lab was built without `--features aws`: the S3 and CloudWatch rows were not measured.)"
        )?;
    }
    writeln!(
        out,
        "\nAll claimers start together (local: one `zkpilot-lab claim-once` process each, released by one gate \
         file; S3 and CloudWatch: one task each, the stores being remote); a run fails unless the ids are exactly \
         1..={n}. moto runs \
         on 127.0.0.1 on the same 2 cores as the {n} claimers (Python, one emulated service), so those \
         latencies are moto's, not S3's or CloudWatch's; uniqueness is what these rows show."
    )?;
    Ok(())
}

/// Claims `n` ids at once; fails unless they are exactly 1..=n. Latency stats in ms.
#[cfg(feature = "aws")]
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

/// Options of the hidden `claim-once` subcommand: one claimer process of B6.
#[derive(Debug, Clone, clap::Args)]
pub struct ClaimOnceArgs {
    /// The local group directory holding the claims.
    #[arg(long)]
    pub dir: PathBuf,
    /// Instance id to claim for.
    #[arg(long)]
    pub instance: String,
    /// Its address.
    #[arg(long)]
    pub address: String,
    /// Wait until this file exists, so every claimer starts together.
    #[arg(long)]
    pub gate: PathBuf,
}

/// One claim through the local backend; prints `<id> <latency ms>`.
pub async fn claim_once(args: ClaimOnceArgs) -> anyhow::Result<()> {
    let local = LocalBackend::open(&args.dir)?;
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    while !args.gate.exists() {
        if Instant::now() > deadline {
            bail!("the gate {} never opened", args.gate.display());
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let started = Instant::now();
    let id = local.claim_id(&zkpilot_core::model::InstanceId(args.instance.clone()), &args.address).await?;
    println!("{} {:.3}", id.0, started.elapsed().as_secs_f64() * 1000.0);
    Ok(())
}

/// `n` claimer processes on the local store at `dir`, released together; fails unless the ids
/// are exactly 1..=n. Latency stats in ms.
async fn claim_processes(dir: &std::path::Path, n: usize) -> anyhow::Result<Stat> {
    use anyhow::Context as _;
    let me = std::env::current_exe().context("the lab's own executable")?;
    let gate = dir.join("claims-gate");
    let mut children = Vec::new();
    for i in 0..n {
        let child = tokio::process::Command::new(&me)
            .arg("claim-once")
            .arg("--dir")
            .arg(dir)
            .args(["--instance", &format!("i-{i:03}"), "--address", &format!("127.0.0.{}", i + 1), "--gate"])
            .arg(&gate)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting a claimer")?;
        children.push(child);
    }
    std::fs::write(&gate, b"")?;
    let mut ids = Vec::new();
    let mut lat = Vec::new();
    for child in children {
        let out = child.wait_with_output().await?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (id, ms) =
            text.trim().split_once(' ').with_context(|| format!("claimer said {text:?} ({})", out.status))?;
        ids.push(id.parse::<u32>()?);
        lat.push(ms.parse::<f64>()?);
    }
    ids.sort_unstable();
    if ids != (1..=n as u32).collect::<Vec<_>>() {
        bail!("claims were not unique: {ids:?}");
    }
    Ok(stat(&lat))
}
