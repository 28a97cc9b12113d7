//! The options of `zkpilot-lab bench` and the local group each measurement brings up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use zkpilot_ops::local::{self, UpOptions};
use zkpilot_ops::progress::print;
use zkpilot_runtime::config::IdentityMode;
use zkpilot_runtime::view::ClusterView;

/// Options of `zkpilot-lab bench`.
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
    /// ZooKeeper install: an Apache release home (`lib/zookeeper-3.x.y.jar`; the default is
    /// 3.9.5 where `scripts/install-deps.sh` puts it) or Debian's `/usr/share/java`.
    #[arg(long, env = "ZKPILOT_ZOOKEEPER", default_value_os_t = zkpilot_zk::install::default_home())]
    pub zookeeper: PathBuf,
    /// Run the benchmarks (B1–B4 unless `--only` says) once per ZooKeeper install listed here
    /// (comma-separated homes) and write them side by side in their own section.
    #[arg(long, value_delimiter = ',', value_name = "HOME,HOME")]
    pub versions: Vec<PathBuf>,
    /// How leaders sync learners that are behind (`zkpilot local up --learner-sync`).
    #[arg(long, default_value = "auto", value_name = "auto|snapshot|no-log-diff|zookeeper")]
    pub learner_sync: zkpilot_core::version::LearnerSync,
    /// Keep each B1/B2 run's directory (servers' and agents' logs) under `--dir`.
    #[arg(long)]
    pub keep: bool,
}

impl BenchArgs {
    pub fn wants(&self, b: &str) -> bool {
        if self.only.is_empty() { b != "b8" } else { self.only.iter().any(|o| o.eq_ignore_ascii_case(b)) }
    }
    pub fn runs(&self) -> usize {
        if self.smoke { 1 } else { self.runs as usize }
    }
    pub fn net(&self, n: u32) -> String {
        format!("{}.{n}", self.net)
    }
    pub fn workdir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let d = self.dir.join(name);
        if d.exists() {
            // Only our own leftovers: a directory this command created under --dir.
            std::fs::remove_dir_all(&d).with_context(|| format!("clearing {}", d.display()))?;
        }
        Ok(d)
    }
}

/// A local group of `size` for one measurement (no periodic backups).
pub async fn up(args: &BenchArgs, size: u32, dir: &Path, net: &str, mode: &str) -> anyhow::Result<ClusterView> {
    let mut u = UpOptions::new(size, dir, net, &args.zookeeper, &crate::sibling::zkpilot()?);
    u.mode = if mode == "slot" { IdentityMode::Slot } else { IdentityMode::Elastic };
    u.timeout = Duration::from_secs(240);
    u.backup_every = Duration::ZERO;
    u.learner_sync = args.learner_sync;
    Ok(local::up(&u, None, &mut print).await?)
}

/// The digest auth of a group's superuser.
pub fn secret(dir: &Path) -> anyhow::Result<String> {
    Ok(format!("super:{}", std::fs::read_to_string(dir.join("secret"))?.trim()))
}
