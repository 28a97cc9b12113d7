//! [`ScriptedZookeeper`]: the ZooKeeper port answered from a model [`Ensemble`], with scripted
//! answers for the outcomes a real reconfig has (zookeeperReconfig, "Reconfig error codes"):
//! removing the leader answers ConnectionLoss although it committed; a connection lost before the
//! request left commits nothing; a config version set too high makes every reconfig a silent
//! no-op.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use zkpilot_core::model::{EnsembleConfig, ServerId};
use zkpilot_core::observed::{Health, Mode};
use zkpilot_core::plan::MembershipChange;
use zkpilot_core::ports::{PortError, PortResult, ReconfigError, ServerDetail, Zookeeper};

use crate::calls::{Call, Fault, Script, play};

mod ensemble;

pub use ensemble::{Ensemble, FIRST_ZXID, ServerModel};

const METHODS: &[&str] = &["probe", "committed_config", "reconfig", "confirm_write", "server_detail"];

/// How one reconfig call is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconfigAnswer {
    /// As the model decides: commits when the version matches and the new voters have a synced
    /// majority, else `Stale`, `Rejected` or `Unknown`.
    AsModel,
    /// Commits (as the model decides), then answers ConnectionLoss (`Unknown`): what removing the
    /// leader looks like.
    CommitThenConnectionLoss,
    /// Answers ConnectionLoss (`Unknown`) and commits nothing.
    ConnectionLoss,
    /// Answers BadVersion (`Stale`) and commits nothing.
    BadVersion,
    /// Answers `Rejected` (NewConfigNoQuorum, ReconfigInProgress) and commits nothing.
    Rejected(String),
    /// Answers `Forbidden` (NoAuth, reconfigEnabled=false) and commits nothing.
    Forbidden(String),
    /// "Succeeds" with the config unchanged (the too-high-version no-op), once.
    SilentNoOp,
}

#[derive(Debug, Default)]
struct Answers {
    next: VecDeque<ReconfigAnswer>,
    always: Option<ReconfigAnswer>,
}

/// The scripted ZooKeeper. `Clone` shares the model and the script.
#[derive(Debug, Clone)]
pub struct ScriptedZookeeper {
    ensemble: Arc<Mutex<Ensemble>>,
    script: Arc<Mutex<Script>>,
    answers: Arc<Mutex<Answers>>,
    reconfigs: Arc<Mutex<Vec<MembershipChange>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Default for ScriptedZookeeper {
    /// Nothing runs: every probe is unanswered, no config can be read.
    fn default() -> Self {
        Self::new(Ensemble::default())
    }
}

impl ScriptedZookeeper {
    /// Answers from `ensemble`.
    pub fn new(ensemble: Ensemble) -> Self {
        Self {
            ensemble: Arc::new(Mutex::new(ensemble)),
            script: Arc::new(Mutex::new(Script::new(METHODS))),
            answers: Arc::default(),
            reconfigs: Arc::default(),
        }
    }

    /// An ensemble serving `config`, every member running.
    pub fn serving(config: EnsembleConfig) -> Self {
        Self::new(Ensemble::serving(config))
    }

    /// Reads or changes the model.
    pub fn with_ensemble<T>(&self, f: impl FnOnce(&mut Ensemble) -> T) -> T {
        f(&mut lock(&self.ensemble))
    }

    /// The committed config.
    pub fn config(&self) -> EnsembleConfig {
        self.with_ensemble(|e| e.config.clone())
    }

    /// Replaces the committed config (what another agent's reconfig would have done).
    pub fn set_config(&self, config: EnsembleConfig) {
        self.with_ensemble(|e| {
            e.zxid = e.zxid.max(config.version);
            e.config = config;
        });
    }

    /// Starts or stops server `id`'s process at client address `address`.
    pub fn set_running(&self, id: ServerId, address: &str, running: bool) {
        self.with_ensemble(|e| e.set_running(id, address, running));
    }

    /// Starts server `id` at `address` on a dynamic file listing `file_config` (a never-formed
    /// ensemble forms from such files, see [`Ensemble`]).
    pub fn start_on(&self, id: ServerId, address: &str, file_config: EnsembleConfig) {
        self.with_ensemble(|e| e.start_on(id, address, file_config));
    }

    /// Stops server `id` (it stops answering; the quorum may go with it).
    pub fn stop(&self, id: ServerId) {
        self.with_ensemble(|e| e.servers.get_mut(&id).map(|s| s.running = false));
    }

    /// Starts server `id` again at its known address.
    pub fn start(&self, id: ServerId) {
        self.with_ensemble(|e| e.servers.get_mut(&id).map(|s| s.running = true));
    }

    /// Server `id` answers `mode` whatever the model says (`None`: the model decides again).
    pub fn force_mode(&self, id: ServerId, mode: Option<Mode>) {
        self.with_ensemble(|e| e.servers.get_mut(&id).map(|s| s.mode = mode));
    }

    /// What server `id` answers now.
    pub fn mode(&self, id: ServerId) -> Mode {
        self.with_ensemble(|e| e.mode(id))
    }

    /// Turns ZooKeeper's silent no-op on or off (see [`Ensemble::version_too_high`]).
    pub fn set_version_too_high(&self, on: bool) {
        self.with_ensemble(|e| e.version_too_high = on);
    }

    /// The next reconfig calls are answered with `answers`, in order.
    pub fn answer_next(&self, answers: impl IntoIterator<Item = ReconfigAnswer>) {
        lock(&self.answers).next.extend(answers);
    }

    /// Every reconfig call not scripted by [`Self::answer_next`] is answered with `answer`
    /// (`None`: as the model decides).
    pub fn answer_always(&self, answer: Option<ReconfigAnswer>) {
        lock(&self.answers).always = answer;
    }

    /// The next `n` calls of `method` fail (a probe then answers nothing).
    pub fn fail_next(&self, method: &str, n: usize) {
        lock(&self.script).push(method, Fault::Fail, n);
    }

    /// Every call of `method` fails until healed.
    pub fn fail_always(&self, method: &str) {
        lock(&self.script).always(method, Fault::Fail);
    }

    /// The next call of `method` waits `after`, then fails as timed out.
    pub fn time_out_next(&self, method: &str, after: Duration) {
        lock(&self.script).push(method, Fault::Timeout(after), 1);
    }

    /// Drops every fault of `method`.
    pub fn heal(&self, method: &str) {
        lock(&self.script).heal(method);
    }

    /// Runs `hook` when `method` is next called, before it answers.
    pub fn on_next(&self, method: &str, hook: impl FnOnce() + Send + 'static) {
        lock(&self.script).hook(method, Box::new(hook));
    }

    /// Every call answered so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.script).calls()
    }

    /// How many times `method` was called.
    pub fn count(&self, method: &str) -> usize {
        let m = lock(&self.script).method(method);
        self.calls().iter().filter(|c| c.method == m).count()
    }

    /// Every change sent to `reconfig`, in order, whatever its answer.
    pub fn reconfigs(&self) -> Vec<MembershipChange> {
        lock(&self.reconfigs).clone()
    }

    /// Forgets the calls so far.
    pub fn clear_calls(&self) {
        lock(&self.script).clear_calls();
        lock(&self.reconfigs).clear();
    }

    async fn enter(&self, method: &'static str, args: String) -> Option<PortError> {
        let (fault, hook) = lock(&self.script).enter(method, args);
        if let Some(hook) = hook {
            hook();
        }
        play(fault, "zookeeper", method).await
    }

    fn answer(&self) -> ReconfigAnswer {
        let mut a = lock(&self.answers);
        a.next.pop_front().or_else(|| a.always.clone()).unwrap_or(ReconfigAnswer::AsModel)
    }
}

impl Zookeeper for ScriptedZookeeper {
    async fn probe(&self, client_address: &str) -> Health {
        if self.enter("probe", client_address.to_string()).await.is_some() {
            return Health::UNREACHABLE;
        }
        self.with_ensemble(|e| e.probe(client_address))
    }

    async fn committed_config(&self, connect_string: &str) -> PortResult<EnsembleConfig> {
        if let Some(e) = self.enter("committed_config", connect_string.to_string()).await {
            return Err(e);
        }
        self.with_ensemble(|e| e.serves_any(connect_string).then(|| e.config.clone())).ok_or_else(|| {
            PortError::msg("zookeeper", format!("read /zookeeper/config: no server of {connect_string} serves"))
        })
    }

    async fn reconfig(&self, connect_string: &str, change: &MembershipChange) -> Result<EnsembleConfig, ReconfigError> {
        lock(&self.reconfigs).push(change.clone());
        if let Some(e) = self.enter("reconfig", change.to_string()).await {
            return Err(ReconfigError::Unknown(e.to_string()));
        }
        let lost = || ReconfigError::Unknown("ConnectionLoss (scripted)".into());
        match self.answer() {
            ReconfigAnswer::AsModel => self.with_ensemble(|e| e.reconfig(connect_string, change)),
            ReconfigAnswer::CommitThenConnectionLoss => {
                self.with_ensemble(|e| e.reconfig(connect_string, change))?;
                Err(lost())
            }
            ReconfigAnswer::ConnectionLoss => Err(lost()),
            ReconfigAnswer::BadVersion => Err(ReconfigError::Stale),
            ReconfigAnswer::Rejected(why) => Err(ReconfigError::Rejected(why)),
            ReconfigAnswer::Forbidden(why) => Err(ReconfigError::Forbidden(why)),
            ReconfigAnswer::SilentNoOp => Ok(self.config()),
        }
    }

    async fn server_detail(&self, host: &str, admin_port: u16, client_port: u16) -> ServerDetail {
        let address = format!("{host}:{client_port}");
        if self.enter("server_detail", format!("{host} admin={admin_port} client={client_port}")).await.is_some() {
            return ServerDetail::default();
        }
        self.with_ensemble(|e| e.detail(&address))
    }

    async fn confirm_write(&self, connect_string: &str) -> PortResult<()> {
        if let Some(e) = self.enter("confirm_write", connect_string.to_string()).await {
            return Err(e);
        }
        let ok = self.with_ensemble(|e| {
            let ok = e.serves_any(connect_string);
            if ok {
                e.write();
            }
            ok
        });
        ok.then_some(()).ok_or_else(|| {
            PortError::msg("zookeeper", format!("confirming write: no server of {connect_string} serves"))
        })
    }
}

#[cfg(test)]
mod tests;
