//! The lab's one ZooKeeper client workload, used by chaos, the benchmarks, the fixed-membership
//! replacement and the demo.
//!
//! A writer session creates `<root>/b<k>/w<n>` (n increasing, one at a time, buckets of 1000 so
//! no znode gets too many children) and records every write acknowledged, with its zxid, the
//! moment its create returns. With [`Spec::watch_reads`] it then also sets `<root>/last = n`
//! (recorded as acknowledged when that returns), and a second session reads `<root>/last`:
//!
//! - every read: a value below what the same session already saw is a stale read (ZooKeeper
//!   promises a session never sees the past). The session is kept across connection loss, when
//!   the client moves it to another server, and dropped only once it expires;
//! - every fifth read, after a `sync`: a value below the newest `last` acknowledged to the writer
//!   before the sync started is a stale read too (a read after `sync` sees every write committed
//!   before it, across sessions; ZooKeeper Programmer's Guide, "Consistency Guarantees").
//!
//! Every stale read is kept with the zxid of the value seen, so a harness can excuse those a
//! majority lost with its disks took with it. It measures the longest time without an
//! acknowledged write and when that gap began. At the end [`present`] reads back which writes
//! exist, through a fresh session after `sync`: an acknowledged write that is missing is lost.
//!
//! How hard it pushes and how it backs off is its [`Pace`]; the profiles are fixed, so figures of
//! one kind stay comparable between runs.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use zkpilot_core::ports::epoch_ms;
use zookeeper_client as zk;

/// Where the workload connects.
#[derive(Debug, Clone)]
pub enum Target {
    /// This connection string, for the whole run (a client configured once, as most are).
    Fixed(String),
    /// A local group: its published connection string (`DIR/connect-string`), read again for
    /// every new session, as members come and go.
    Group(PathBuf),
}

impl Target {
    fn connect_string(&self) -> Option<String> {
        match self {
            Self::Fixed(c) => Some(c.clone()),
            Self::Group(dir) => std::fs::read_to_string(dir.join("connect-string"))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        }
    }
}

/// How the writer paces itself and backs off.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Pause after every write attempt.
    pub between_writes: Duration,
    /// Limit of one write (create, and the marker update): past it the write counts as failed.
    pub op_timeout: Duration,
    /// Extra pause after a failed write (the session is dropped and a new one made).
    pub after_failed_write: Duration,
    /// Pause after a failed connect.
    pub after_failed_connect: Duration,
    /// Limit of one connect attempt, beyond the client's own connection timeout.
    pub connect_limit: Option<Duration>,
    /// A connect makes one pass over the servers and fails, so the next attempt (after
    /// `after_failed_connect`) starts a fresh pass at once; otherwise the client keeps cycling
    /// with its own backoff (zookeeper-client 0.11: min(1 s, 100 ms × servers) plus up to 100 ms
    /// after the first pass, doubling each pass), which a measurement would count as the
    /// ensemble's gap.
    pub eager_reconnect: bool,
}

impl Pace {
    /// A steady load for measuring what a membership change costs clients (benchmarks, the
    /// fixed-membership replacement): a write every 10 ms, 5 s limit, reconnect at once.
    pub const STEADY: Self = Self {
        between_writes: Duration::from_millis(10),
        op_timeout: Duration::from_secs(5),
        after_failed_write: Duration::ZERO,
        after_failed_connect: Duration::from_millis(50),
        connect_limit: Some(Duration::from_secs(5)),
        eager_reconnect: true,
    };
    /// Chaos: a write every 20 ms, 8 s limit, backing off while the ensemble is being hit.
    pub const CHAOS: Self = Self {
        between_writes: Duration::from_millis(20),
        op_timeout: Duration::from_secs(8),
        after_failed_write: Duration::from_millis(100),
        after_failed_connect: Duration::from_millis(200),
        connect_limit: None,
        eager_reconnect: false,
    };
    /// Keys written back to back (the demo's data).
    pub const KEYS: Self = Self {
        between_writes: Duration::ZERO,
        op_timeout: Duration::from_secs(8),
        after_failed_write: Duration::from_millis(100),
        after_failed_connect: Duration::from_millis(200),
        connect_limit: None,
        eager_reconnect: false,
    };
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Where.
    pub target: Target,
    /// Digest `user:password`, if the ensemble needs one.
    pub auth: Option<String>,
    /// Root znode of the writes (`/chaos`).
    pub root: String,
    /// How.
    pub pace: Pace,
    /// Also keep `<root>/last` and check it from a second session (stale reads).
    pub watch_reads: bool,
    /// Stop writing after this many acknowledged writes.
    pub limit: Option<u64>,
}

impl Spec {
    /// The steady load of a measurement: writes only, [`Pace::STEADY`].
    pub fn steady(target: Target, auth: Option<String>, root: &str) -> Self {
        Self { target, auth, root: root.to_string(), pace: Pace::STEADY, watch_reads: false, limit: None }
    }
}

/// A read that went back in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StaleRead {
    /// The value the read should have seen at least (`last = n`).
    pub expected: u64,
    /// The zxid that wrote `expected`.
    pub expected_zxid: i64,
    /// The value it returned.
    pub got: u64,
    /// After `sync`, against the writer's acknowledged value (else: within one session).
    pub after_sync: bool,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
}

/// One acknowledged write.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    /// Its sequence number (`w<n>`).
    pub n: u64,
    /// The zxid that created it.
    pub zxid: i64,
    /// When it was acknowledged, ms since the Unix epoch.
    pub at_ms: u64,
}

/// What the workload saw.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Client operations that succeeded (creates, marker updates, reads).
    pub ops_ok: u64,
    /// Operations that failed or timed out, failed connects of the writer included.
    pub ops_failed: u64,
    /// Of those, the writer's connect attempts that failed (a reconnect that needed more than one
    /// pass over the servers).
    pub connects_failed: u64,
    /// Reads that went back in time (see the module docs).
    pub stale_reads: Vec<StaleRead>,
    /// Reads made after `sync` and checked against the writer's acknowledged `last`.
    pub sync_reads: u64,
    /// Every acknowledged write, in order.
    pub acks: Vec<Ack>,
    /// Longest time without an acknowledged write (from the start, between two, and until the
    /// stop).
    pub longest_gap: Duration,
    /// When that gap began, ms since the Unix epoch: lines it up with a change's events.
    pub longest_gap_from_ms: u64,
    /// Sessions of the reader that ended under it (expired, closed): it keeps its session
    /// through connection loss, so each is a session a client lost.
    pub reader_sessions_ended: u64,
    /// The writer's failures and recoveries, in order.
    pub trouble: Vec<Trouble>,
}

/// The writer's figures as reports have always shown them.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    /// Writes acknowledged.
    pub ok: u64,
    /// Operations that failed or timed out (including failed connects).
    pub failed: u64,
    /// Of those, failed connect attempts.
    pub failed_connects: u64,
    /// Longest time between two acknowledged writes (or the start/stop and one), ms.
    pub longest_gap_ms: u64,
    /// When that gap began, ms since the Unix epoch.
    pub longest_gap_from_ms: u64,
}

impl Stats {
    /// The acknowledged writes not in `present`.
    pub fn missing<'a>(&'a self, present: &'a BTreeSet<u64>) -> impl Iterator<Item = &'a Ack> {
        self.acks.iter().filter(|a| !present.contains(&a.n))
    }

    /// The writer's figures.
    pub fn summary(&self) -> LoadSummary {
        LoadSummary {
            ok: self.acks.len() as u64,
            failed: self.ops_failed,
            failed_connects: self.connects_failed,
            longest_gap_ms: self.longest_gap.as_millis() as u64,
            longest_gap_from_ms: self.longest_gap_from_ms,
        }
    }
}

#[derive(Debug, Default)]
struct Shared {
    ok: AtomicU64,
    failed: AtomicU64,
    connects_failed: AtomicU64,
    stale: Mutex<Vec<StaleRead>>,
    sync_reads: AtomicU64,
    /// The newest `last = n` acknowledged to the writer, and the zxid that wrote it.
    last_acked: Mutex<(u64, i64)>,
    acked: AtomicU64,
    acks: Mutex<Vec<Ack>>,
    gap: Mutex<(Duration, u64)>,
    reader_sessions_ended: AtomicU64,
    trouble: Mutex<Vec<Trouble>>,
}

/// One thing that went wrong for the writer, or its first success after that: what a benchmark
/// timeline lines up with a change's events.
#[derive(Debug, Clone, Serialize)]
pub struct Trouble {
    /// When it ended, ms since the Unix epoch.
    pub at_ms: u64,
    /// How long the attempt took.
    pub took_ms: u64,
    /// What happened.
    pub what: String,
}

impl Shared {
    fn trouble(&self, started: Instant, what: String) {
        if let Ok(mut t) = self.trouble.lock() {
            t.push(Trouble { at_ms: epoch_ms(), took_ms: started.elapsed().as_millis() as u64, what });
        }
    }
}

/// A running workload; [`Workload::stop`] ends it.
#[derive(Debug)]
pub struct Workload {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    writer: tokio::task::JoinHandle<()>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl Workload {
    /// Starts the writer (and the reader, with `watch_reads`); both connect on their own and
    /// keep trying while the ensemble does not answer.
    pub fn start(spec: Spec) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let spec = Arc::new(spec);
        let writer = tokio::spawn(write_loop(spec.clone(), shared.clone(), stop.clone()));
        let reader = spec.watch_reads.then(|| tokio::spawn(read_loop(spec, shared.clone(), stop.clone())));
        Self { stop, shared, writer, reader }
    }

    /// The newest `last = n` acknowledged to the writer, and the zxid that wrote it.
    pub fn last_acked(&self) -> (u64, i64) {
        self.shared.last_acked.lock().map(|l| *l).unwrap_or_default()
    }

    /// Acknowledged writes so far.
    pub fn acked(&self) -> u64 {
        self.shared.acked.load(Ordering::SeqCst)
    }

    /// Waits up to `limit` for the writer to reach [`Spec::limit`]; whether it did.
    pub async fn written(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while !self.writer.is_finished() {
            if start.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Stops and returns what it saw.
    pub async fn stop(self) -> Stats {
        self.stop.store(true, Ordering::SeqCst);
        let _ignored = self.writer.await;
        if let Some(r) = self.reader {
            let _ignored = r.await;
        }
        let s = &self.shared;
        let (longest_gap, longest_gap_from_ms) = s.gap.lock().map(|g| *g).unwrap_or_default();
        Stats {
            ops_ok: s.ok.load(Ordering::SeqCst),
            ops_failed: s.failed.load(Ordering::SeqCst),
            connects_failed: s.connects_failed.load(Ordering::SeqCst),
            stale_reads: s.stale.lock().map(|v| v.clone()).unwrap_or_default(),
            sync_reads: s.sync_reads.load(Ordering::SeqCst),
            acks: s.acks.lock().map(|a| a.clone()).unwrap_or_default(),
            longest_gap,
            longest_gap_from_ms,
            reader_sessions_ended: s.reader_sessions_ended.load(Ordering::SeqCst),
            trouble: s.trouble.lock().map(|t| t.clone()).unwrap_or_default(),
        }
    }
}

async fn session(target: &Target, auth: Option<&str>, limit: Option<Duration>, eager: bool) -> Option<zk::Client> {
    let connect = target.connect_string()?;
    let c = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .with_connection_timeout(Duration::from_secs(2));
    let c = if eager { c.with_fail_eagerly() } else { c };
    let c = match auth {
        Some(a) => c.with_auth("digest", a.as_bytes()),
        None => c,
    };
    match limit {
        Some(l) => tokio::time::timeout(l, c.connect(&connect)).await.ok()?.ok(),
        None => c.connect(&connect).await.ok(),
    }
}

/// Sleeps, unless `d` is zero: a zero sleep still waits for the timer's next tick (1 ms), which
/// would pace writes meant to go back to back.
async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn opts() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn ensure(c: &zk::Client, path: &str) -> Result<(), zk::Error> {
    match c.create(path, b"", &opts()).await {
        Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A write of the reader's own session (`set_data`, or `create` the first time).
async fn barrier(c: &zk::Client, path: &str) -> Result<(), zk::Error> {
    match c.set_data(path, b"", None).await {
        Ok(_) => Ok(()),
        Err(zk::Error::NoNode) => ensure(c, path).await,
        Err(e) => Err(e),
    }
}

async fn write_loop(spec: Arc<Spec>, w: Arc<Shared>, stop: Arc<AtomicBool>) {
    let pace = spec.pace;
    let (root, last) = (spec.root.as_str(), format!("{}/last", spec.root));
    let mut client: Option<zk::Client> = None;
    let mut n: u64 = 0;
    let mut last_ok = (Instant::now(), epoch_ms());
    let mut buckets: BTreeSet<u64> = BTreeSet::new();
    // Since the last failure: the next success is noted too.
    let mut troubled = false;
    let record_gap = |w: &Shared, since: (Instant, u64)| {
        if let Ok(mut g) = w.gap.lock() {
            let gap = since.0.elapsed();
            if gap > g.0 {
                *g = (gap, since.1);
            }
        }
    };
    while !stop.load(Ordering::SeqCst) && spec.limit.is_none_or(|l| w.acked.load(Ordering::SeqCst) < l) {
        let Some(c) = client.as_ref() else {
            let started = Instant::now();
            client = session(&spec.target, spec.auth.as_deref(), pace.connect_limit, pace.eager_reconnect).await;
            if client.is_none() {
                w.failed.fetch_add(1, Ordering::SeqCst);
                w.connects_failed.fetch_add(1, Ordering::SeqCst);
                w.trouble(started, "connect failed".into());
                pause(pace.after_failed_connect).await;
            } else if troubled {
                w.trouble(started, "connected".into());
            }
            continue;
        };
        let bucket = (n + 1) / 1000;
        if !buckets.contains(&bucket) {
            let made = async {
                ensure(c, root).await?;
                if spec.watch_reads {
                    ensure(c, &last).await?;
                }
                ensure(c, &format!("{root}/b{bucket}")).await
            }
            .await;
            match made {
                Ok(()) => {
                    buckets.insert(bucket);
                }
                Err(e) => {
                    troubled = true;
                    w.trouble(Instant::now(), format!("creating {root}/b{bucket}: {e}"));
                    w.failed.fetch_add(1, Ordering::SeqCst);
                    client = None;
                }
            }
            continue;
        }
        n += 1;
        let path = format!("{root}/b{bucket}/w{n}");
        // The create is acknowledged the moment it returns: a kill right after it must find the
        // write checked, whatever happens to the marker update that follows.
        let started = Instant::now();
        let created = tokio::time::timeout(pace.op_timeout, c.create(&path, n.to_string().as_bytes(), &opts())).await;
        let op = match created {
            Ok(Ok((stat, _))) => {
                if std::mem::take(&mut troubled) {
                    w.trouble(started, format!("write {n} acknowledged"));
                }
                record_gap(&w, last_ok);
                let now = Instant::now();
                last_ok = (now, epoch_ms());
                w.ok.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut a) = w.acks.lock() {
                    a.push(Ack { n, zxid: stat.czxid, at_ms: last_ok.1 });
                }
                w.acked.fetch_add(1, Ordering::SeqCst);
                if spec.watch_reads {
                    match tokio::time::timeout(pace.op_timeout, c.set_data(&last, n.to_string().as_bytes(), None)).await
                    {
                        Ok(Ok(stat)) => {
                            w.ok.fetch_add(1, Ordering::SeqCst);
                            if let Ok(mut l) = w.last_acked.lock() {
                                *l = (n, stat.mzxid);
                            }
                            Ok(())
                        }
                        Ok(Err(e)) => Err(format!("marker update after write {n}: {e}")),
                        Err(_) => Err(format!("marker update after write {n}: timed out")),
                    }
                } else {
                    Ok(())
                }
            }
            Ok(Err(e)) => Err(format!("write {n}: {e}")),
            Err(_) => Err(format!("write {n}: timed out")),
        };
        match op {
            Ok(()) => {}
            Err(why) => {
                troubled = true;
                w.trouble(started, why);
                w.failed.fetch_add(1, Ordering::SeqCst);
                // A fresh session (for a group, from its current connection string).
                client = None;
                pause(pace.after_failed_write).await;
            }
        }
        pause(pace.between_writes).await;
    }
    record_gap(&w, last_ok);
}

async fn read_loop(spec: Arc<Spec>, w: Arc<Shared>, stop: Arc<AtomicBool>) {
    let last = format!("{}/last", spec.root);
    let barrier_path = format!("{}/reader", spec.root);
    // The session, the highest value it has seen and the zxid that wrote it.
    let mut client: Option<(zk::Client, u64, i64)> = None;
    let mut reads: u64 = 0;
    let stale = |w: &Shared, s: StaleRead| {
        let how = if s.after_sync { "after sync, below the acknowledged value" } else { "within one session" };
        eprintln!("STALE READ: last = {} after {} ({how})", s.got, s.expected);
        if let Ok(mut v) = w.stale.lock() {
            v.push(s);
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let Some((c, seen, seen_zxid)) = client.as_mut() else {
            // A new session starts with no history of its own; the sync check below still holds.
            client = session(&spec.target, spec.auth.as_deref(), spec.pace.connect_limit, spec.pace.eager_reconnect)
                .await
                .map(|c| (c, 0, 0));
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            continue;
        };
        reads += 1;
        let synced = reads.is_multiple_of(5);
        // What the writer had acknowledged before this read began.
        let acked = w.last_acked.lock().map(|l| *l).unwrap_or_default();
        let read = async {
            if synced {
                c.sync(&last).await?;
                // `sync` orders a follower's next read after what the leader had committed, but
                // on the leader itself it is no barrier (its CommitProcessor runs with
                // `matchSyncs=false`) and the leader may still be applying a commit a follower
                // has already acknowledged: a write of this session is ordered after every
                // earlier commit on every server, and the read queues behind it.
                barrier(c, &barrier_path).await?;
            }
            c.get_data(&last).await
        };
        match tokio::time::timeout(Duration::from_secs(8), read).await {
            Ok(Ok((data, stat))) => {
                w.ok.fetch_add(1, Ordering::SeqCst);
                let v: u64 = String::from_utf8_lossy(&data).parse().unwrap_or(0);
                if v < *seen {
                    let at_ms = epoch_ms();
                    stale(
                        &w,
                        StaleRead { expected: *seen, expected_zxid: *seen_zxid, got: v, after_sync: false, at_ms },
                    );
                }
                if synced {
                    w.sync_reads.fetch_add(1, Ordering::SeqCst);
                    if v < acked.0 {
                        let at_ms = epoch_ms();
                        stale(
                            &w,
                            StaleRead { expected: acked.0, expected_zxid: acked.1, got: v, after_sync: true, at_ms },
                        );
                    }
                }
                if v > *seen {
                    (*seen, *seen_zxid) = (v, stat.mzxid);
                }
            }
            Ok(Err(zk::Error::NoNode)) => {}
            Ok(Err(e)) => {
                w.failed.fetch_add(1, Ordering::SeqCst);
                // Connection loss keeps the session (the client moves it to another server);
                // only a session that is over is replaced.
                if matches!(
                    e,
                    zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed | zk::Error::NoHosts
                ) || c.state().is_terminated()
                {
                    w.reader_sessions_ended.fetch_add(1, Ordering::SeqCst);
                    client = None;
                }
            }
            Err(_) => {
                w.failed.fetch_add(1, Ordering::SeqCst);
                if c.state().is_terminated() {
                    w.reader_sessions_ended.fetch_add(1, Ordering::SeqCst);
                    client = None;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every write under `root` present now, read through a fresh session after `sync`; retried for
/// up to a minute while the ensemble does not answer.
pub async fn present(target: &Target, auth: Option<&str>, root: &str) -> anyhow::Result<BTreeSet<u64>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let c = session(target, auth, Some(Duration::from_secs(10)), false).await.context("no session")?;
            c.sync(root).await?;
            let mut out = BTreeSet::new();
            let (buckets, _) = c.get_children(root).await?;
            for b in buckets.iter().filter(|b| b.starts_with('b')) {
                let (children, _) = c.get_children(&format!("{root}/{b}")).await?;
                out.extend(children.iter().filter_map(|w| w.strip_prefix('w')?.parse::<u64>().ok()));
            }
            anyhow::Ok(out)
        };
        match attempt.await {
            Ok(out) => return Ok(out),
            Err(e) if Instant::now() < deadline => {
                eprintln!("reading back the writes: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// What one member answered to a read after `sync` (see [`read_through`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRead {
    /// `<root>/last` as it read it.
    Value(u64),
    /// It did not answer within the limit (dead, or not serving).
    NoAnswer(String),
}

/// `<root>/last` read through the server at `address` alone, after `sync`: a session pinned to
/// that one member, so every member is checked, not only the one a connection string picks.
pub async fn read_through(address: &str, auth: Option<&str>, root: &str) -> MemberRead {
    let last = format!("{root}/last");
    let attempt = async {
        let c = session(&Target::Fixed(address.to_string()), auth, Some(Duration::from_secs(5)), false)
            .await
            .context("no session")?;
        c.sync(&last).await?;
        // As the reader does: `sync` alone is no barrier when `address` is the leader.
        barrier(&c, &format!("{root}/reader")).await?;
        let (data, _) = c.get_data(&last).await?;
        anyhow::Ok(String::from_utf8_lossy(&data).parse::<u64>().unwrap_or(0))
    };
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(Ok(v)) => MemberRead::Value(v),
        Ok(Err(e)) => MemberRead::NoAnswer(e.to_string()),
        Err(_) => MemberRead::NoAnswer("timed out".into()),
    }
}
