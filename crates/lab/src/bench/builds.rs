//! B8: clean builds of this workspace.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::bail;

/// B8: clean builds, in a fresh target dir each.
pub async fn build_bench(out: &mut String) -> anyhow::Result<()> {
    let root = std::env::current_dir()?;
    if !root.join("Cargo.toml").is_file() {
        bail!("b8: run from the repository root (clean builds of this workspace)");
    }
    let mut rows = Vec::new();
    for (what, args) in [
        (
            "demo binaries: `cargo build --release -p zkpilot -p zkpilot-lab`",
            vec!["build", "--release", "--locked", "-p", "zkpilot", "-p", "zkpilot-lab"],
        ),
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
