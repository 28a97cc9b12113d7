//! `zkpilot kafka-config`: `zookeeper.connect` and a stable `broker.id` for a Kafka broker
//! (ZooKeeper mode), allocated once per broker name (`zkpilot_ops::kafka`).

use std::path::PathBuf;

use clap::Args;
use zkpilot_ops::kafka::{KafkaRequest, broker_settings};

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

/// Prints the broker settings.
pub async fn run(args: KafkaArgs) -> anyhow::Result<()> {
    let KafkaArgs { connect, dir, chroot, name, secret_file } = args;
    let s = broker_settings(&KafkaRequest { connect, dir, chroot, name, secret_file }).await?;
    if let Some(w) = &s.warning {
        eprintln!("warning: {w}");
    }
    println!("zookeeper.connect={}", s.zookeeper_connect);
    println!("broker.id={}", s.broker_id);
    Ok(())
}
