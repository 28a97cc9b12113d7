//! A steady client write load against any ensemble, for measuring what a membership change costs
//! clients: failed operations, the longest time without an acknowledged write, and (checked at
//! the end) whether every acknowledged write is still there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use zookeeper_client as zk;

/// What the load saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadStats {
    /// Writes acknowledged.
    pub ok: u64,
    /// Operations that failed or timed out (including failed connects).
    pub failed: u64,
    /// Longest time between two acknowledged writes (or the start/stop and one), ms.
    pub longest_gap_ms: u64,
    /// When that gap began (the last acknowledgement before it), ms since the Unix epoch: lines
    /// the gap up with the change's events.
    pub longest_gap_from_ms: u64,
    /// Sequence numbers of the acknowledged writes.
    #[serde(skip)]
    pub acked: Vec<u64>,
}

/// A running load; [`Load::stop`] ends it.
pub struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<LoadStats>,
    root: String,
}

async fn connect(connect: &str, auth: Option<&str>) -> Option<zk::Client> {
    let c = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .with_connection_timeout(Duration::from_secs(2));
    let c = match auth {
        Some(a) => c.with_auth("digest", a.as_bytes()),
        None => c,
    };
    tokio::time::timeout(Duration::from_secs(5), c.connect(connect)).await.ok()?.ok()
}

fn opts() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

impl Load {
    /// Starts writing `/<name>/w<n>` one at a time (each waits for its acknowledgement, then
    /// 10 ms). `auth` is a digest `user:password`, if the ensemble needs one.
    pub async fn start(connect_string: &str, auth: Option<&str>, name: &str) -> anyhow::Result<Self> {
        let root = format!("/{name}");
        let c =
            connect(connect_string, auth).await.ok_or_else(|| anyhow::anyhow!("cannot connect to {connect_string}"))?;
        match c.create(&root, b"", &opts()).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => anyhow::bail!("create {root}: {e}"),
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (s, cs, a, r) = (stop.clone(), connect_string.to_string(), auth.map(str::to_string), root.clone());
        let task = tokio::spawn(async move { write_loop(Some(c), &cs, a.as_deref(), &r, &s).await });
        Ok(Self { stop, task, root })
    }

    /// Stops and returns what it saw.
    pub async fn stop(self) -> LoadStats {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap_or_default()
    }

    /// The znode the writes go under.
    pub fn root(&self) -> &str {
        &self.root
    }
}

async fn write_loop(
    mut client: Option<zk::Client>,
    cs: &str,
    auth: Option<&str>,
    root: &str,
    stop: &AtomicBool,
) -> LoadStats {
    let mut stats = LoadStats::default();
    let mut last_ok = Instant::now();
    let epoch_ms = || {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    };
    let mut last_ok_ms = epoch_ms();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let Some(c) = client.as_ref() else {
            client = connect(cs, auth).await;
            if client.is_none() {
                stats.failed += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            continue;
        };
        n += 1;
        let path = format!("{root}/w{n}");
        match tokio::time::timeout(Duration::from_secs(5), c.create(&path, b"", &opts())).await {
            Ok(Ok(_)) | Ok(Err(zk::Error::NodeExists)) => {
                let now = Instant::now();
                let gap = (now - last_ok).as_millis() as u64;
                if gap > stats.longest_gap_ms {
                    stats.longest_gap_ms = gap;
                    stats.longest_gap_from_ms = last_ok_ms;
                }
                last_ok = now;
                last_ok_ms = epoch_ms();
                stats.ok += 1;
                stats.acked.push(n);
            }
            Ok(Err(_)) | Err(_) => {
                stats.failed += 1;
                client = None;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stats.longest_gap_ms = stats.longest_gap_ms.max(last_ok.elapsed().as_millis() as u64);
    stats
}

/// How many acknowledged writes of a finished load are missing now (read after a `sync`).
pub async fn lost(connect_string: &str, auth: Option<&str>, root: &str, acked: &[u64]) -> anyhow::Result<usize> {
    let start = Instant::now();
    let c = loop {
        if let Some(c) = connect(connect_string, auth).await {
            break c;
        }
        if start.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("cannot connect to {connect_string} to check the writes");
        }
    };
    c.sync(root).await?;
    let present: std::collections::BTreeSet<String> = c.list_children(root).await?.into_iter().collect();
    Ok(acked.iter().filter(|n| !present.contains(&format!("w{n}"))).count())
}
