//! Executing what the plan decided: the one reconfig (settled by reading the config back,
//! confirmed by a committed write) and the group actions. Each action's result is an
//! [`Outcome`], recorded as an event; the counters are derived from it.

use std::time::Duration;

use tokio::time::Instant;
use zkpilot_core::agent::{InFlight, Outcome, Settled};
use zkpilot_core::backup::BackupReason;
use zkpilot_core::model::ServerId;
use zkpilot_core::observed::Observed;
use zkpilot_core::plan::{Action, MembershipChange, Plan};
use zkpilot_core::ports::{Backend, Clock, PortResult, ReconfigError, ServerProcess, Zookeeper};

use super::Agent;

/// Attempts of the read-back and the confirming write after a reconfig, together, at most
/// [`CONFIRM_PAUSE`] apart: removing the leader breaks sessions for a moment. A count as well as
/// [`CONFIRM_BUDGET`], so a test clock that does not move cannot hang it.
const CONFIRM_ATTEMPTS: u32 = 300;
/// Time the read-back and the confirming write may take together (tokio's clock, which a paused
/// test clock advances with the pauses): the lease (15 s by default) must not run out while one
/// pass waits here, and a status that is not published for long reads as a dead agent.
const CONFIRM_BUDGET: Duration = Duration::from_secs(10);
/// Pause between confirming-write attempts: short, because each attempt after a failure opens a
/// fresh session, whose first pass over the servers the client makes without backoff, and the
/// removed server is stopped only once a write has confirmed its removal.
const CONFIRM_PAUSE: Duration = Duration::from_millis(50);

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    /// Executes the plan's actions (at most one reconfig) and records each outcome.
    pub(super) async fn execute(&mut self, obs: &Observed, plan: &Plan) {
        for action in &plan.actions {
            let started = Instant::now();
            let now = self.clock.now_ms();
            let outcome = match action {
                Action::Reconfig(change) => {
                    if self.cfg.backup.before_change {
                        self.take_backup(BackupReason::BeforeChange, obs.config.as_ref().map(|c| c.version)).await;
                    }
                    let started = Instant::now();
                    let outcome = self.reconfig(obs, change).await;
                    self.memo.counters.reconfig(&outcome, started.elapsed().as_millis() as u64);
                    self.memo.pass_now |=
                        zkpilot_core::agent::phase::removed_itself(change, &outcome, self.identity.id);
                    outcome
                }
                Action::ReleaseId { id, instance } => Outcome::of(self.backend.release_id(*id, instance).await),
                Action::LifecycleHeartbeat { instance, hook } => {
                    // Throttled here, not in the planner: the plan says what is wanted, this
                    // avoids a call every pass.
                    if !self.memo.heartbeats.take(instance, now) {
                        continue;
                    }
                    Outcome::of(self.backend.lifecycle_heartbeat(instance, *hook).await)
                }
                Action::CompleteLifecycle { instance, hook } => {
                    Outcome::of(self.backend.complete_lifecycle(instance, *hook).await)
                }
                Action::ReportUnhealthy { instance, .. } => {
                    // Once is enough while the group acts on it; repeated only if it did not.
                    if !self.memo.unhealthy_reports.take(instance, now) {
                        continue;
                    }
                    self.memo.counters.unhealthy_reports += 1;
                    Outcome::of(self.backend.report_unhealthy(instance).await)
                }
                Action::SetScaleInProtection { instance, protected } => {
                    Outcome::of(self.backend.set_scale_in_protection(instance, *protected).await)
                }
            };
            tracing::info!(%action, %outcome, "executed");
            self.record_event(action.to_string(), outcome, started);
        }
    }

    /// One conditional reconfig, its outcome settled by reading the config back, then confirmed by
    /// a committed write (only then is it active on every server, and safe to stop a removed one;
    /// ZooKeeper admin guide, "Dynamic Reconfiguration": progress guarantees).
    async fn reconfig(&mut self, obs: &Observed, change: &MembershipChange) -> Outcome {
        let failed = |why: String| Outcome::Failed { why };
        let mut budget = Budget::new();
        let connect = &serving_connect_string(obs, &[]);
        // Everything after the request goes through the servers that stay: a removed leader
        // keeps accepting sessions until its next tick's quorum check (up to tickTime) and stalls
        // every request sent to it until then, and it is stopped only after the confirming write.
        let after = &staying_connect_string(obs, &change.leaving);
        match self.zk.reconfig(connect, change).await {
            Ok(cfg) if change.is_reflected_in(&cfg) => {}
            // A version set too high makes ZooKeeper "succeed" without changing anything.
            Ok(cfg) => {
                return failed(format!("ZooKeeper answered with config {:x} that lacks the change", cfg.version));
            }
            Err(ReconfigError::Unknown(why)) => match self.read_back(after, &mut budget).await {
                Some(cfg) if change.is_reflected_in(&cfg) => {}
                _ => {
                    let inflight = InFlight { change: change.clone() };
                    return match self.settle(after, &inflight).await {
                        Settled::Applied => Outcome::Applied,
                        Settled::Dead => failed(format!("outcome unknown ({why}); a later write committed without it")),
                        Settled::Open => {
                            self.memo.inflight = Some(inflight);
                            failed(format!("outcome unknown ({why}); held until settled"))
                        }
                    };
                }
            },
            Err(ReconfigError::Stale) => {
                return Outcome::Conflict { why: "the config changed since it was observed; re-planning".into() };
            }
            Err(ReconfigError::Rejected(why)) => return Outcome::Rejected { why },
            Err(e @ ReconfigError::Forbidden(_)) => {
                tracing::error!(error = %e, "reconfig forbidden: check the secret file and reconfigEnabled");
                return Outcome::failed(e);
            }
            Err(e) => return Outcome::failed(e),
        }
        // Removing the leader breaks sessions for a moment; the confirming write retries briefly.
        loop {
            match self.zk.confirm_write(after).await {
                Ok(()) => return Outcome::Applied,
                Err(e) if !budget.another() => return Outcome::AppliedUnconfirmed { why: e.to_string() },
                Err(_) => tokio::time::sleep(CONFIRM_PAUSE).await,
            }
        }
    }
}

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    /// The committed config read through `connect`, retried like the confirming write: a lost
    /// answer usually means the change removed the leader and every session broke, and the
    /// servers that stay answer again once their new leader serves, a moment later.
    async fn read_back(&self, connect: &str, budget: &mut Budget) -> Option<zkpilot_core::model::EnsembleConfig> {
        loop {
            match self.zk.committed_config(connect).await {
                Ok(cfg) => return Some(cfg),
                Err(_) if budget.another() => tokio::time::sleep(CONFIRM_PAUSE).await,
                Err(_) => return None,
            }
        }
    }

    /// Settles a reconfig whose answer was lost: a write that commits, then the committed config
    /// (see `zkpilot_core::agent::inflight` for why that is conclusive).
    async fn settle(&self, connect: &str, inflight: &InFlight) -> Settled {
        if self.zk.confirm_write(connect).await.is_err() {
            return Settled::Open;
        }
        match self.zk.committed_config(connect).await {
            Ok(cfg) => inflight.settled_by(&cfg, true),
            Err(_) => Settled::Open,
        }
    }

    /// The plan with what an unsettled reconfig holds back removed; settles it first if it can.
    pub(super) async fn hold_for_inflight(&mut self, obs: &Observed, plan: Plan) -> Plan {
        let Some(inflight) = self.memo.inflight.clone() else { return plan };
        let settled = match obs.config.as_ref().map(|c| inflight.settled_by(c, false)) {
            Some(Settled::Open) => self.settle(&staying_connect_string(obs, &inflight.change.leaving), &inflight).await,
            Some(s) => s,
            None => Settled::Open,
        };
        if settled == Settled::Open {
            return inflight.hold(obs, plan);
        }
        tracing::info!(change = %inflight.change, ?settled, "the reconfig whose answer was lost is settled");
        self.memo.inflight = None;
        plan
    }
}

/// Client addresses of the servers that serve, except `leaving`, for the reconfig session.
pub fn serving_connect_string(obs: &Observed, leaving: &[ServerId]) -> String {
    let mut addrs = Vec::new();
    for m in obs.members() {
        if !m.is_serving() || leaving.contains(&m.id) {
            continue;
        }
        // By the address the instance runs on: with name indirection the config says names,
        // which only the servers' resolver (a hosts file handed to the JVM) may know.
        let port =
            m.spec.or_else(|| obs.config.as_ref().and_then(|c| c.servers.values().next())).map(|s| s.client_port);
        match (m.instance, m.spec, port) {
            (Some(i), _, Some(port)) => addrs.push(format!("{}:{port}", i.address)),
            (None, Some(spec), _) => addrs.push(spec.client_address()),
            _ => {}
        }
    }
    addrs.join(",")
}

/// The serving servers that `leaving` does not remove, or all serving ones if it removes every
/// one (then nothing better is known).
fn staying_connect_string(obs: &Observed, leaving: &[ServerId]) -> String {
    let staying = serving_connect_string(obs, leaving);
    if staying.is_empty() { serving_connect_string(obs, &[]) } else { staying }
}

/// `attempt` until it succeeds, within one [`Budget`], [`CONFIRM_PAUSE`] apart; the last error
/// if it never does.
pub(super) async fn retrying<T, F, Fut>(mut attempt: F) -> PortResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = PortResult<T>>,
{
    let mut budget = Budget::new();
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if !budget.another() => return Err(e),
            Err(_) => tokio::time::sleep(CONFIRM_PAUSE).await,
        }
    }
}

/// What is left of one reconfig's retries: [`CONFIRM_ATTEMPTS`] and [`CONFIRM_BUDGET`], shared by
/// the read-back and the confirming write.
struct Budget {
    attempts: u32,
    until: Instant,
}

impl Budget {
    fn new() -> Self {
        Self { attempts: 1, until: Instant::now() + CONFIRM_BUDGET }
    }

    /// Whether one more attempt may follow the one that just failed.
    fn another(&mut self) -> bool {
        self.attempts += 1;
        self.attempts <= CONFIRM_ATTEMPTS && Instant::now() < self.until
    }
}
