//! `zkpilot backup list` and `zkpilot restore`: the backups the agents store in their backend
//! (S3 on AWS, `DIR/backups` locally), and a new ensemble born from one.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use zkpilot_core::backup::Manifest;
use zkpilot_core::ports::Backend;
use zkpilot_local::LocalBackend;
use zkpilot_runtime::AgentConfig;
use zkpilot_runtime::config::BackendSection;

use crate::local::{self, DirArg, UpArgs};

/// Where the backups are: a local group, or the backend of an agent config (S3 on AWS).
#[derive(Debug, Clone, Args)]
pub struct StoreArg {
    #[command(flatten)]
    pub dir: DirArg,
    /// An agent config; its `[backend]` names the store (on AWS: the bucket and prefix).
    #[arg(long, conflicts_with = "dir")]
    pub config: Option<PathBuf>,
}

/// `zkpilot backup` subcommands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Every complete backup, oldest first.
    List {
        #[command(flatten)]
        store: StoreArg,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Copy a backup into a new cluster's store and make it that cluster's restore seed, before
    /// its instances start (on AWS: before the Auto Scaling group launches).
    Seed {
        /// The store holding the backup (`--dir GROUP` or `--config OLD.toml`).
        #[command(flatten)]
        from: StoreArg,
        /// The new cluster's agent config (its `[backend]` is seeded).
        #[arg(long = "to-config", value_name = "FILE")]
        config: PathBuf,
        /// Backup name or `latest`.
        #[arg(long, default_value = "latest")]
        backup: String,
    },
}

/// `zkpilot restore`: a new local group born from a backup.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The group whose store holds the backup (its `backups/` survives the ensemble).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// Backup name (see `zkpilot backup list`) or `latest`.
    #[arg(long, default_value = "latest")]
    pub backup: String,
    /// The new group.
    #[command(flatten)]
    pub up: UpArgs,
}

/// Dispatches `zkpilot backup`.
pub async fn run(cmd: BackupCommand) -> anyhow::Result<()> {
    match cmd {
        BackupCommand::List { store, json } => {
            let all = match &store.config {
                Some(path) => match open(path).await? {
                    Opened::Local(b) => sorted(&b).await?,
                    #[cfg(feature = "aws")]
                    Opened::Aws(b) => sorted(b.as_ref()).await?,
                },
                None => sorted(&LocalBackend::open_store(&store.dir.path())?).await?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                print!("{}", render(&all));
            }
            Ok(())
        }
        BackupCommand::Seed { from, config, backup } => {
            let source = match (&from.dir.dir, &from.config) {
                (_, Some(cfg)) => open(cfg).await?,
                (Some(dir), None) => Opened::Local(LocalBackend::open_store(dir)?),
                (None, None) => bail!("--dir or --config: the store that holds the backup"),
            };
            let target = open(&config).await?;
            let scratch = std::env::temp_dir().join(format!("zkpilot-seed-{}", std::process::id()));
            seed_any(&source, &target, &backup, &scratch).await?;
            eprintln!("seeded {}: that cluster's genesis restores {backup}", config.display());
            Ok(())
        }
    }
}

/// `zkpilot restore`: copies the backup into the new group's store, names it as the restore seed
/// and brings the group up; its first server is born on the backup, the others join it and are
/// synced from it.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let source = LocalBackend::open_store(&args.from).with_context(|| format!("--from {}", args.from.display()))?;
    // Before anything is created for the new group: a restore that cannot find its backup leaves
    // no half-made group behind.
    zkpilot_runtime::backup_store::find(&source, &args.backup)
        .await
        .with_context(|| format!("--from {} --backup {}", args.from.display(), args.backup))?;
    let view = local::up_seeded(&args.up, Some(local::Seed { from: &source, backup: &args.backup })).await?;
    eprintln!("restored ensemble serves: {}", view.connect_string.as_deref().unwrap_or("-"));
    Ok(())
}

/// A backend opened from an agent config.
enum Opened {
    Local(LocalBackend),
    #[cfg(feature = "aws")]
    Aws(Box<zkpilot_aws::AwsBackend>),
}

async fn open(path: &Path) -> anyhow::Result<Opened> {
    let table = AgentConfig::read_table(path)?;
    // Only `[backend]` matters here; the rest of an agent config may name things this host lacks.
    let backend: BackendSection = table
        .get("backend")
        .cloned()
        .with_context(|| format!("{}: no [backend] section", path.display()))?
        .try_into()
        .with_context(|| format!("{}: [backend]", path.display()))?;
    match backend {
        BackendSection::Local { dir } => Ok(Opened::Local(LocalBackend::open(&dir)?)),
        #[cfg(feature = "aws")]
        BackendSection::Aws(aws) => Ok(Opened::Aws(Box::new(crate::aws_backend(&aws, None, None).await))),
        #[cfg(not(feature = "aws"))]
        BackendSection::Aws(_) => Err(crate::without_aws()),
    }
}

async fn seed_any(from: &Opened, to: &Opened, backup: &str, scratch: &Path) -> anyhow::Result<()> {
    match (from, to) {
        (Opened::Local(f), Opened::Local(t)) => seed(f, t, backup, scratch).await,
        #[cfg(feature = "aws")]
        (Opened::Local(f), Opened::Aws(t)) => seed(f, t.as_ref(), backup, scratch).await,
        #[cfg(feature = "aws")]
        (Opened::Aws(f), Opened::Local(t)) => seed(f.as_ref(), t, backup, scratch).await,
        #[cfg(feature = "aws")]
        (Opened::Aws(f), Opened::Aws(t)) => seed(f.as_ref(), t.as_ref(), backup, scratch).await,
    }
}

/// Copies `backup` from one store to another and makes it the target's restore seed. Refuses a
/// target whose ensemble already exists: a restore never lands on top of live data.
pub async fn seed<S: Backend, D: Backend>(from: &S, to: &D, backup: &str, scratch: &Path) -> anyhow::Result<()> {
    if let Some(m) = to.cluster_marker().await? {
        bail!("the target already has an ensemble (cluster {}); restore into a new cluster", m.cluster_id);
    }
    let manifest = zkpilot_runtime::backup_store::find(from, backup).await?;
    zkpilot_runtime::backup_store::copy(from, to, &manifest, scratch).await?;
    to.put_restore_seed(&manifest.name).await?;
    Ok(())
}

async fn sorted<B: Backend>(b: &B) -> anyhow::Result<Vec<Manifest>> {
    let mut all = b.backups().await?;
    all.sort_by(|a, b| (a.taken_ms, &a.name).cmp(&(b.taken_ms, &b.name)));
    Ok(all)
}

/// Plain-text listing.
pub fn render(all: &[Manifest]) -> String {
    let mut s = format!(
        "{:<40} {:<13} {:>6} {:>14} {:>5} {:>10}\n",
        "backup", "reason", "server", "last zxid", "files", "bytes"
    );
    for m in all {
        s.push_str(&format!(
            "{:<40} {:<13} {:>6} {:>14} {:>5} {:>10}\n",
            m.name,
            m.reason.to_string(),
            m.server_id.to_string(),
            format!("{:#x}", m.last_zxid),
            m.files.len(),
            m.total_bytes()
        ));
    }
    if all.is_empty() {
        s.push_str("(no backups)\n");
    }
    s
}
