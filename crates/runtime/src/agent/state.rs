//! The agent's state, grouped: who its server is ([`Identity`]), the server process
//! ([`Server`]), what it remembers between passes ([`Memo`]: published versions, names, the
//! throttles, the detail cache, events, counters, the operator's switches) and quorum-loss
//! recovery ([`Recovery`]). The throttles are the core's (`zkpilot_core::agent::throttle`).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use zkpilot_core::agent::{Cached, Counters, Every, Pace, PerKey, PeriodicBackup, Phase, QuorumClock, Restarts};
use zkpilot_core::model::{InstanceId, ServerId};
use zkpilot_core::ports::{OperatorSettings, ServerDetail, Slot};
use zkpilot_zk::files::Layout;

use super::recovery::Fence;
use crate::config::AgentConfig;
use crate::status::Event;

/// Events kept in status.
pub(super) const EVENTS_KEPT: usize = 50;
/// Minimum time between heartbeats of one lifecycle action (hook timeouts are minutes); an
/// unhealthy report is repeated as rarely, only if the group did not act on it.
const HEARTBEAT_EVERY_MS: u64 = 60_000;
/// How often the local server's own detail (zabstate, mntr) is asked.
const DETAIL_EVERY_MS: u64 = 1500;
/// How often a fenced survivor republishes its report.
const REPORT_EVERY_MS: u64 = 2000;

/// Who this agent's server is. In slot mode the slot's address replaces the configured one in
/// `cfg.instance.address` (the server's line and zoo.cfg are built from it) and the slot's storage
/// replaces the layout.
#[derive(Debug)]
pub(super) struct Identity {
    /// The claimed (or slot) server id, once known.
    pub(super) id: Option<ServerId>,
    /// Slot mode: the slot this instance holds.
    pub(super) slot: Option<Slot>,
    /// Where the server's files live.
    pub(super) layout: Layout,
    /// Where the server's pid is recorded for the local controller: beside the configured base
    /// dir, not on the slot's storage, which a later holder reuses.
    pub(super) pid_file: PathBuf,
}

/// The local server.
#[derive(Debug)]
pub(super) struct Server<P> {
    /// The process port.
    pub(super) process: P,
    /// The agent started it and has not seen it exit or stopped it since.
    pub(super) running: bool,
    /// Restart backoff after unexpected exits.
    pub(super) restarts: Restarts,
    /// The install the running server was started on.
    pub(super) started_on: Option<zkpilot_core::version::Release>,
    /// An install a rolling upgrade asked for (`POST /restart-server`), for the next start.
    pub(super) requested: Option<std::path::PathBuf>,
    /// What `<base_dir>/zkpilot-release.json` says, as last read or written (read at each
    /// start, not each pass).
    pub(super) recorded: Option<zkpilot_core::version::Release>,
}

/// What the agent remembers between passes (besides recovery).
#[derive(Debug)]
pub(super) struct Memo {
    /// The committed config version last published as the connect string.
    pub(super) published_version: Option<u64>,
    /// The name → address mapping last written.
    pub(super) names_written: Option<BTreeMap<String, String>>,
    /// One lifecycle heartbeat per instance and minute.
    pub(super) heartbeats: PerKey<InstanceId>,
    /// One unhealthy report per instance and minute.
    pub(super) unhealthy_reports: PerKey<InstanceId>,
    /// The connection-count metric, every `metrics_interval_ms`.
    pub(super) metrics: Every,
    /// The local server's own view, reused for `DETAIL_EVERY_MS`.
    pub(super) detail: Cached<ServerDetail>,
    /// When the leader's periodic backup is due.
    pub(super) backup: PeriodicBackup,
    /// Recent executed actions, newest last.
    pub(super) events: VecDeque<Event>,
    /// Totals since start.
    pub(super) counters: Counters,
    /// The last plan refused for breaking a safety rule, and when (shown in status).
    pub(super) refused: Option<crate::status::Refusal>,
    /// A reconfig this agent sent whose outcome is not settled yet (see `agent::inflight`).
    pub(super) inflight: Option<zkpilot_core::agent::InFlight>,
    /// The ensemble-wide switches, last read.
    pub(super) operator: OperatorSettings,
    /// The last boot decision logged (each is logged once, not every pass).
    pub(super) last_boot_log: Option<String>,
    /// A cluster marker was seen at boot: an ensemble was born.
    pub(super) marker_seen: bool,
    /// The phase last published.
    pub(super) phase: Phase,
    /// Ever a member since start (ends the fast boot polling).
    pub(super) settled: bool,
    /// The wait between passes.
    pub(super) pace: Pace,
    /// The other serving servers' client addresses, as the last pass saw them: where a leaving
    /// agent watches for its removal between passes.
    pub(super) others: String,
    /// The next pass runs without waiting (this agent's reconfig removed its own server).
    pub(super) pass_now: bool,
    /// The server certificate, with `[tls]`.
    pub(super) tls: Option<crate::status::TlsStatus>,
}

/// Quorum-loss recovery.
#[derive(Debug)]
pub(super) struct Recovery {
    /// Fenced: the server is stopped and its data copied; see `recovery.rs`.
    pub(super) fence: Option<Fence>,
    /// Since when no member served.
    pub(super) quorum: QuorumClock,
    /// The fenced survivor's report, republished every [`REPORT_EVERY_MS`].
    pub(super) report: Every,
}

impl Memo {
    /// Nothing remembered yet; the agent was created at `now_ms`.
    pub(super) fn new(cfg: &AgentConfig, now_ms: u64) -> Self {
        Self {
            published_version: None,
            names_written: None,
            heartbeats: PerKey::new(HEARTBEAT_EVERY_MS),
            unhealthy_reports: PerKey::new(HEARTBEAT_EVERY_MS),
            metrics: Every::new(cfg.agent.metrics_interval_ms),
            detail: Cached::new(DETAIL_EVERY_MS),
            backup: PeriodicBackup::default(),
            events: VecDeque::new(),
            counters: Counters::default(),
            refused: None,
            inflight: None,
            operator: OperatorSettings::default(),
            last_boot_log: None,
            marker_seen: false,
            phase: Phase::Booting,
            settled: false,
            pace: Pace { born_ms: now_ms, pass_ms: cfg.agent.pass_interval_ms },
            others: String::new(),
            pass_now: false,
            tls: cfg.tls.as_ref().map(|_| crate::status::TlsStatus::default()),
        }
    }
}

impl Recovery {
    /// Not fenced, quorum not (yet) lost.
    pub(super) fn new() -> Self {
        Self { fence: None, quorum: QuorumClock::default(), report: Every::new(REPORT_EVERY_MS) }
    }
}
