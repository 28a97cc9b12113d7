//! `zkpilot kafka-config`: what a Kafka broker (ZooKeeper mode) needs from the ensemble: the
//! current `zookeeper.connect` and a `broker.id` allocated once per broker name from an atomic
//! counter in ZooKeeper (the "Bumper" of the Quixey write-up: a compare-and-set on a counter
//! znode, so two brokers booting at once never get the same id).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use zkpilot_zk::{Secret, ZkClient};
use zookeeper_client as zk;

/// Options of `kafka-config`.
#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Ensemble to use (`host:port,...`); or `--dir` of a local group.
    #[arg(long, conflicts_with = "dir", required_unless_present = "dir")]
    pub connect: Option<String>,
    /// State directory of a local group (its published connection string is used).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Chroot Kafka uses, appended to `zookeeper.connect`.
    #[arg(long, default_value = "/kafka")]
    pub chroot: String,
    /// Stable name of this broker (e.g. its instance id): the same name always gets the same id.
    #[arg(long)]
    pub name: String,
    /// File with the zkpilot superuser secret (the counter znodes are writable only by it).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
}

const ROOT: &str = "/zkpilot-kafka";
const COUNTER: &str = "/zkpilot-kafka/next-broker-id";

/// Prints the broker settings.
pub async fn run(args: KafkaArgs) -> anyhow::Result<()> {
    if !args.chroot.starts_with('/') || args.chroot.len() < 2 {
        bail!("--chroot {:?}: must be an absolute znode path like /kafka", args.chroot);
    }
    if args.name.is_empty() || args.name.contains('/') {
        bail!("--name {:?}: must be non-empty and contain no '/'", args.name);
    }
    let (connect, secret_path) = match (&args.connect, &args.dir) {
        (Some(c), _) => (c.trim().to_string(), args.secret_file.clone()),
        (None, Some(dir)) => {
            let p = dir.join("connect-string");
            let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            (text.trim().to_string(), args.secret_file.clone().or_else(|| Some(dir.join("secret"))))
        }
        (None, None) => bail!("one of --connect or --dir is required"),
    };
    let secret_path = secret_path.context("--secret-file is required with --connect")?;
    let secret = Secret::from_file(&secret_path).map_err(anyhow::Error::msg)?;
    let client = ZkClient::new(secret).session(&connect).await?;
    let id = broker_id(&client, &args.name).await?;
    println!("zookeeper.connect={connect}{}", args.chroot);
    println!("broker.id={id}");
    Ok(())
}

/// The id recorded for `name`, or the next value of the counter, recorded for `name`.
pub async fn broker_id(client: &zk::Client, name: &str) -> anyhow::Result<u64> {
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    for path in [ROOT, COUNTER] {
        match client.create(path, b"0", &opts).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(e).with_context(|| format!("creating {path}")),
        }
    }
    let mine = format!("{ROOT}/broker-{name}");
    loop {
        if let Ok((data, _)) = client.get_data(&mine).await {
            return String::from_utf8_lossy(&data).trim().parse().with_context(|| format!("{mine} is not a number"));
        }
        let (data, stat) = client.get_data(COUNTER).await.context("reading the broker id counter")?;
        let next: u64 = String::from_utf8_lossy(&data).trim().parse().context("broker id counter is not a number")?;
        // One multi: bump the counter only if nobody else did, and record the id for this name.
        let mut txn = client.new_multi_writer();
        txn.add_set_data(COUNTER, (next + 1).to_string().as_bytes(), Some(stat.version))?;
        txn.add_create(&mine, next.to_string().as_bytes(), &opts)?;
        match txn.commit().await {
            Ok(_) => return Ok(next),
            // Lost the race (counter moved, or the same name was recorded meanwhile): read again.
            Err(zk::MultiWriteError::OperationFailed { .. }) => continue,
            Err(e) => return Err(anyhow::anyhow!("allocating a broker id: {e}")),
        }
    }
}
