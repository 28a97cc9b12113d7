//! What a Kafka broker (ZooKeeper mode) needs from the ensemble: the current `zookeeper.connect`
//! and a `broker.id` allocated once per broker name from an atomic counter in ZooKeeper (the
//! "Bumper" of the Quixey write-up: a compare-and-set on a counter znode, so two brokers booting
//! at once never get the same id).

use std::path::PathBuf;

use zkpilot_core::ports::PortError;
use zkpilot_zk::{Secret, ZkClient};
use zookeeper_client as zk;

/// Where the ensemble is and who asks.
#[derive(Debug, Clone)]
pub struct KafkaRequest {
    /// Ensemble to use (`host:port,...`); or `dir` of a local group.
    pub connect: Option<String>,
    /// State directory of a local group (its published connection string is used).
    pub dir: Option<PathBuf>,
    /// Chroot Kafka uses, appended to `zookeeper.connect`.
    pub chroot: String,
    /// Stable name of this broker: the same name always gets the same id.
    pub name: String,
    /// File with the zkpilot superuser secret (the counter znodes are writable only by it); with
    /// `dir`, the group's secret by default.
    pub secret_file: Option<PathBuf>,
}

/// The broker's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSettings {
    /// `zookeeper.connect`, chroot included.
    pub zookeeper_connect: String,
    /// `broker.id`.
    pub broker_id: u64,
    /// Set when the ensemble's addresses will not outlive its servers (a local group in elastic
    /// mode without names): Kafka's ZooKeeper client keeps `zookeeper.connect` for the broker's
    /// life and never reads `/zookeeper/config`, so once every listed server is replaced the
    /// broker loses ZooKeeper.
    pub warning: Option<String>,
}

/// The warning for a group whose replacements get new addresses under no stable name.
pub fn unstable_addresses(spec: &zkpilot_local::state::GroupSpec) -> Option<String> {
    (!spec.slot_mode && spec.names_domain.is_none()).then(|| {
        "this group runs in elastic mode without names: a replaced server gets a new address, and \
         Kafka never updates zookeeper.connect; once every listed server is replaced the broker \
         loses ZooKeeper. Run the group with --mode slot or --names, or run kafka-config again and \
         restart the brokers one by one after replacements"
            .to_string()
    })
}

/// Broker settings that could not be worked out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// Not an absolute znode path.
    #[error("--chroot {0:?}: must be an absolute znode path like /kafka")]
    BadChroot(String),
    /// Empty or with a `/`.
    #[error("--name {0:?}: must be non-empty and contain no '/'")]
    BadName(String),
    /// Neither an ensemble nor a group.
    #[error("one of --connect or --dir is required")]
    NoEnsemble,
    /// No secret to authenticate with.
    #[error("--secret-file is required with --connect")]
    NoSecret,
    /// The group's connection string cannot be read.
    #[error("reading {0}")]
    ConnectString(PathBuf, #[source] std::io::Error),
    /// The secret file cannot be read.
    #[error("{path}: {reason}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No session with the ensemble.
    #[error(transparent)]
    Session(#[from] PortError),
    /// A ZooKeeper call failed.
    #[error("{what}")]
    Zk {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: zk::Error,
    },
    /// A znode that should hold a number does not.
    #[error("{0} is not a number")]
    NotANumber(String),
    /// The allocating transaction failed for another reason than a lost race.
    #[error("allocating a broker id")]
    Allocate(#[source] zk::MultiWriteError),
}

fn zk_err(what: impl Into<String>) -> impl FnOnce(zk::Error) -> KafkaError {
    let what = what.into();
    move |source| KafkaError::Zk { what, source }
}

const ROOT: &str = "/zkpilot-kafka";
const COUNTER: &str = "/zkpilot-kafka/next-broker-id";

/// Validates the request, connects and allocates (or looks up) the broker's id.
pub async fn broker_settings(req: &KafkaRequest) -> Result<BrokerSettings, KafkaError> {
    if !req.chroot.starts_with('/') || req.chroot.len() < 2 {
        return Err(KafkaError::BadChroot(req.chroot.clone()));
    }
    if req.name.is_empty() || req.name.contains('/') {
        return Err(KafkaError::BadName(req.name.clone()));
    }
    let mut warning = None;
    let (connect, secret_path) = match (&req.connect, &req.dir) {
        (Some(c), _) => (c.trim().to_string(), req.secret_file.clone()),
        (None, Some(dir)) => {
            // Advice only: a directory whose group settings cannot be read still has its
            // connection string and secret, which is all a broker needs.
            warning = zkpilot_local::state::StateDir::open(dir)
                .ok()
                .and_then(|state| state.group().ok())
                .and_then(|spec| unstable_addresses(&spec));
            let p = dir.join("connect-string");
            let text = std::fs::read_to_string(&p).map_err(|e| KafkaError::ConnectString(p.clone(), e))?;
            (text.trim().to_string(), req.secret_file.clone().or_else(|| Some(dir.join("secret"))))
        }
        (None, None) => return Err(KafkaError::NoEnsemble),
    };
    let path = secret_path.ok_or(KafkaError::NoSecret)?;
    let secret =
        Secret::from_file(&path).map_err(|e| KafkaError::Secret { path: path.clone(), reason: e.to_string() })?;
    let client = ZkClient::new(secret).session(&connect).await?;
    let broker_id = broker_id(&client, &req.name).await?;
    Ok(BrokerSettings { zookeeper_connect: format!("{connect}{}", req.chroot), broker_id, warning })
}

/// The id recorded for `name`, or the next value of the counter, recorded for `name`.
pub async fn broker_id(client: &zk::Client, name: &str) -> Result<u64, KafkaError> {
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    for path in [ROOT, COUNTER] {
        match client.create(path, b"0", &opts).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(zk_err(format!("creating {path}"))(e)),
        }
    }
    let mine = format!("{ROOT}/broker-{name}");
    loop {
        if let Ok((data, _)) = client.get_data(&mine).await {
            return String::from_utf8_lossy(&data).trim().parse().map_err(|_| KafkaError::NotANumber(mine));
        }
        let (data, stat) = client.get_data(COUNTER).await.map_err(zk_err("reading the broker id counter"))?;
        let next: u64 =
            String::from_utf8_lossy(&data).trim().parse().map_err(|_| KafkaError::NotANumber(COUNTER.into()))?;
        // One multi: bump the counter only if nobody else did, and record the id for this name.
        let mut txn = client.new_multi_writer();
        txn.add_set_data(COUNTER, (next + 1).to_string().as_bytes(), Some(stat.version))
            .map_err(zk_err("bumping the broker id counter"))?;
        txn.add_create(&mine, next.to_string().as_bytes(), &opts).map_err(zk_err(format!("creating {mine}")))?;
        match txn.commit().await {
            Ok(_) => return Ok(next),
            // Lost the race (counter moved, or the same name was recorded meanwhile): read again.
            Err(zk::MultiWriteError::OperationFailed { .. }) => continue,
            Err(e) => return Err(KafkaError::Allocate(e)),
        }
    }
}
