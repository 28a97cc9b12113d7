//! `zkpilot-lab bench`: the side-by-side benchmarks (B1–B8), every comparison measured in the same
//! run, written into BENCHMARKS.md between `<!-- bench:begin -->` and `<!-- bench:end -->` (the
//! rest of the file, e.g. the chaos runs, is kept). `--smoke` runs each once with small sizes,
//! only to show it works (CI does that); its figures mean nothing.
//!
//! One module per kind of measurement: [`replace`] (B1, B2: a membership change under load,
//! reconfig against the fixed-membership strategy), [`group`] (B3 heal, B4 bootstrap, B5 agent
//! footprint, B7 scale), [`claims`] (B6), [`builds`] (B8); they share [`setup`] (the options, a
//! group per measurement) and [`stats`] (medians and verdicts). This file runs them and writes
//! the report.

mod builds;
mod claims;
mod group;
mod replace;
mod setup;
mod stats;

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use zkpilot_ops::local;
use zkpilot_zk::Install;

pub use claims::{ClaimOnceArgs, claim_once};
pub use setup::BenchArgs;

fn machine(zookeeper: &std::path::Path) -> String {
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
    let zk = Install::detect(zookeeper, None)
        .ok()
        .and_then(|i| i.version)
        .unwrap_or_else(|| format!("at {}", zookeeper.display()));
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
    let mut command = format!("zkpilot-lab bench --runs {}", args.runs());
    if args.smoke {
        command = "zkpilot-lab bench --smoke".into();
    }
    if !args.only.is_empty() {
        command.push_str(&format!(" --only {}", args.only.join(",")));
    }
    if !args.versions.is_empty() {
        return versions(args, command, started).await;
    }
    let mut body = String::new();
    for b in ["b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8"] {
        if !args.wants(b) {
            continue;
        }
        one(&args, b, &mut body).await?;
        // Each result says what produced it, so it still does when a later run keeps it.
        body.push_str(&format!("\nMeasured by `{command}`, {}.\n", date()));
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
    write_report(&args, (BEGIN, END), "Side-by-side benchmarks (B1–B8)", &command, started, &body)
}

/// Writes a section of the report between `markers`: its title, the machine, the command and
/// how long it took, then `body`.
fn write_report(
    args: &BenchArgs,
    (begin, end): (&str, &str),
    title: &str,
    command: &str,
    started: Instant,
    body: &str,
) -> anyhow::Result<()> {
    let section = format!(
        "{begin}\n## {title}\n\nMachine: {}. Command: `{command}` ({:.0} s), written {}.{}\n{body}\n{end}\n",
        machine(&args.zookeeper),
        started.elapsed().as_secs_f64(),
        date(),
        if args.smoke { " **Smoke mode: one run, small sizes; these figures are not measurements.**" } else { "" }
    );
    write_between(&args.out, begin, end, &section)?;
    eprintln!("[bench] wrote {}", args.out.display());
    Ok(())
}

/// Runs benchmark `b` and appends its subsection to `body`.
async fn one(args: &BenchArgs, b: &str, body: &mut String) -> anyhow::Result<()> {
    match b {
        "b1" => replace::replace_bench(args, false, body).await,
        "b2" => replace::replace_bench(args, true, body).await,
        "b3" => group::heal_bench(args, body).await,
        "b4" => group::bootstrap_bench(args, body).await,
        "b5" => group::footprint_bench(args, body).await,
        "b6" => claims::claims_bench(args, body).await,
        "b7" => group::scale_bench(args, body).await,
        _ => builds::build_bench(body).await,
    }
}

/// `--versions`: the chosen benchmarks (B1–B4 unless `--only` says) once per ZooKeeper install,
/// in their own section of the file (`bench-versions`), one subsection per release.
async fn versions(args: BenchArgs, mut command: String, started: Instant) -> anyhow::Result<()> {
    let homes: Vec<String> = args.versions.iter().map(|p| p.display().to_string()).collect();
    command.push_str(&format!(" --versions {}", homes.join(",")));
    let chosen: Vec<&str> = ["b1", "b2", "b3", "b4", "b5", "b6", "b7"]
        .into_iter()
        .filter(|b| if args.only.is_empty() { ["b1", "b2", "b3", "b4"].contains(b) } else { args.wants(b) })
        .collect();
    let mut body = String::new();
    for home in &args.versions {
        let install = Install::detect(home, None).with_context(|| format!("--versions {}", home.display()))?;
        let version = install.version.clone().unwrap_or_else(|| "unknown".into());
        let sync = args.learner_sync.resolve(install.version.as_deref());
        body.push_str(&format!("\n### ZooKeeper {version}\n\nInstall `{}`, learner sync `{sync}`.\n", home.display()));
        let a = BenchArgs { zookeeper: home.clone(), ..args.clone() };
        for b in &chosen {
            let mut part = String::new();
            one(&a, b, &mut part).await?;
            body.push_str(&part.replace("\n### ", "\n#### "));
        }
    }
    write_report(&args, (VBEGIN, VEND), "The same benchmarks per ZooKeeper release", &command, started, &body)
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

const BEGIN: &str = "<!-- bench:begin (written by `zkpilot-lab bench`; edits inside are overwritten) -->";
const END: &str = "<!-- bench:end -->";
const VBEGIN: &str =
    "<!-- bench-versions:begin (written by `zkpilot-lab bench --versions`; edits inside are overwritten) -->";
const VEND: &str = "<!-- bench-versions:end -->";

fn date() -> String {
    let out = std::process::Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

/// Replaces what lies from `begin` (up to its parenthesis: older files carry the bare marker) to
/// `end` in `out`, or appends it, leaving the rest of the file alone.
fn write_between(out: &Path, begin: &str, end: &str, section: &str) -> anyhow::Result<()> {
    let existing = match std::fs::read_to_string(out) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_string(),
        Err(e) => return Err(e).with_context(|| out.display().to_string()),
    };
    let marker = begin.split_once(" (").map_or(begin, |(m, _)| m);
    let text = match (existing.find(marker), existing.find(end)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{section}{}", &existing[..a], existing[b + end.len()..].trim_start_matches('\n'))
        }
        _ => format!("{}\n{section}", existing.trim_end()),
    };
    zkpilot_zk::files::write_atomic(out, text.as_bytes())?;
    Ok(())
}
