//! The model behind [`super::ScriptedZookeeper`]: a committed config and, per server, whether its
//! process runs. Modes follow from those the way ZooKeeper's do: with a majority of the config's
//! voters running there is a leader (the preferred one, else the lowest running voter id), the
//! other voters follow, observers observe, and a running server the config does not list is a
//! non-voting follower (a joiner, or a removed server not yet stopped); without a majority every
//! running server is LOOKING (not serving).
//!
//! An ensemble that never formed (no committed config yet) forms the way a genesis does: once a
//! majority of the voters of some server's initial file run on that same file, that file's
//! servers become the committed config, stamped with the first leader's zxid.

use std::collections::BTreeMap;

use zkpilot_core::model::{EnsembleConfig, Role, ServerId};
use zkpilot_core::observed::{Health, Mode};
use zkpilot_core::plan::MembershipChange;
use zkpilot_core::ports::{ReconfigError, ServerDetail};

/// The first zxid of epoch 1, a config version ZooKeeper could have written.
pub const FIRST_ZXID: u64 = 0x1_0000_0000;

/// One server of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerModel {
    /// The `host:port` probes and connect strings use for it.
    pub client_address: String,
    /// Its process runs.
    pub running: bool,
    /// Answers this mode whatever the model says (a hung JVM answers nothing: `Unreachable`).
    pub mode: Option<Mode>,
    /// Client connections it reports.
    pub connections: u64,
    /// The config in the dynamic file it was last started on, when known.
    pub file_config: Option<EnsembleConfig>,
}

/// The model ensemble.
#[derive(Debug, Clone, Default)]
pub struct Ensemble {
    /// The committed config; its version is the zxid of the reconfig that made it.
    pub config: EnsembleConfig,
    /// Every server the model knows: config members and joiners.
    pub servers: BTreeMap<ServerId, ServerModel>,
    /// The last committed zxid; serving servers are synced to it.
    pub zxid: u64,
    /// Leads whenever it is a running voter.
    pub preferred_leader: Option<ServerId>,
    /// The config version was set higher than any zxid (a hand-written dynamic file): every
    /// reconfig then "succeeds" and changes nothing, ZooKeeper's silent no-op.
    pub version_too_high: bool,
}

impl Ensemble {
    /// An ensemble serving `config` with every member running. The zxid starts at the config's
    /// version (or [`FIRST_ZXID`] for a version-0 config).
    pub fn serving(config: EnsembleConfig) -> Self {
        let servers = config
            .servers
            .values()
            .map(|s| {
                let model = ServerModel {
                    client_address: s.client_address(),
                    running: true,
                    mode: None,
                    connections: 0,
                    file_config: None,
                };
                (s.id, model)
            })
            .collect();
        let zxid = config.version.max(FIRST_ZXID);
        Self { config, servers, zxid, preferred_leader: None, version_too_high: false }
    }

    /// The id of the server at `address`.
    pub fn id_at(&self, address: &str) -> Option<ServerId> {
        self.servers.iter().find(|(_, s)| s.client_address == address).map(|(id, _)| *id)
    }

    /// Starts or stops a server's process, adding the server if the model does not know it.
    pub fn set_running(&mut self, id: ServerId, address: &str, running: bool) {
        let s = self.servers.entry(id).or_insert_with(|| ServerModel {
            client_address: address.to_string(),
            running,
            mode: None,
            connections: 0,
            file_config: None,
        });
        s.client_address = address.to_string();
        s.running = running;
        self.form();
    }

    /// Starts server `id` on a dynamic file listing `file_config`.
    pub fn start_on(&mut self, id: ServerId, address: &str, file_config: EnsembleConfig) {
        self.set_running(id, address, false);
        if let Some(s) = self.servers.get_mut(&id) {
            s.file_config = Some(file_config);
        }
        self.set_running(id, address, true);
    }

    /// Genesis: a never-formed ensemble forms once a majority of some initial file's voters run
    /// on that file.
    fn form(&mut self) {
        if !self.config.servers.is_empty() {
            return;
        }
        let same = |a: &EnsembleConfig, b: &EnsembleConfig| a.servers == b.servers;
        let formed = self.servers.values().filter(|s| s.running).filter_map(|s| s.file_config.as_ref()).find(|c| {
            let voters: Vec<ServerId> = c.voters().collect();
            let agreeing = voters
                .iter()
                .filter(|v| {
                    self.servers.get(v).is_some_and(|s| s.running && s.file_config.as_ref().is_some_and(|f| same(f, c)))
                })
                .count();
            agreeing * 2 > voters.len()
        });
        if let Some(c) = formed.cloned() {
            self.config = EnsembleConfig { servers: c.servers, version: self.zxid.max(FIRST_ZXID) };
            self.zxid = self.config.version;
        }
    }

    fn running(&self, id: ServerId) -> bool {
        self.servers.get(&id).is_some_and(|s| s.running)
    }

    /// A majority of the config's voters runs.
    pub fn has_quorum(&self) -> bool {
        let voters: Vec<ServerId> = self.config.voters().collect();
        !voters.is_empty() && voters.iter().filter(|id| self.running(**id)).count() * 2 > voters.len()
    }

    /// The leader, if the ensemble has a quorum.
    pub fn leader(&self) -> Option<ServerId> {
        if !self.has_quorum() {
            return None;
        }
        let running_voter = |id: &ServerId| self.config.role_of(*id) == Some(Role::Participant) && self.running(*id);
        self.preferred_leader.filter(running_voter).or_else(|| self.config.voters().find(running_voter))
    }

    /// What server `id` answers to `srvr`.
    pub fn mode(&self, id: ServerId) -> Mode {
        let Some(s) = self.servers.get(&id) else { return Mode::Unreachable };
        if let Some(m) = s.mode {
            return m;
        }
        if !s.running {
            return Mode::Unreachable;
        }
        let Some(leader) = self.leader() else { return Mode::NotServing };
        match self.config.role_of(id) {
            _ if id == leader => Mode::Leader,
            Some(Role::Observer) => Mode::Observer,
            Some(Role::Participant) | None => Mode::Follower,
        }
    }

    /// The `srvr` answer of the server at `address` (unknown addresses do not answer).
    pub fn probe(&self, address: &str) -> Health {
        let Some(id) = self.id_at(address) else { return Health::UNREACHABLE };
        let mode = self.mode(id);
        Health { mode, zxid: mode.is_serving().then_some(self.zxid), serving_since_ms: None }
    }

    /// What the server at `address` says about itself (AdminServer `zabstate`, `mntr`): nothing
    /// when it does not run; `election` while it does not serve; on the leader, the synced
    /// learners by kind.
    pub fn detail(&self, address: &str) -> ServerDetail {
        let Some(id) = self.id_at(address) else { return ServerDetail::default() };
        let Some(s) = self.servers.get(&id).filter(|s| s.running) else { return ServerDetail::default() };
        let mode = self.mode(id);
        let mut d = ServerDetail {
            zab_state: Some(if mode.is_serving() { "broadcast" } else { "election" }.to_string()),
            voting: Some(self.config.role_of(id) == Some(Role::Participant)),
            last_zxid: Some(format!("{:#x}", self.zxid)),
            connections: mode.is_serving().then_some(s.connections),
            ..ServerDetail::default()
        };
        if mode == Mode::Leader {
            let learners: Vec<ServerId> = self.servers.keys().copied().filter(|l| *l != id).collect();
            let count = |f: &dyn Fn(ServerId) -> bool| learners.iter().filter(|l| f(**l)).count() as u64;
            d.synced_followers = Some(count(&|l| self.mode(l) == Mode::Follower));
            d.synced_non_voting_followers =
                Some(count(&|l| self.mode(l) == Mode::Follower && self.config.role_of(l).is_none()));
            d.synced_observers = Some(count(&|l| self.mode(l) == Mode::Observer));
        }
        d
    }

    /// Some server of `connect` (comma-separated addresses) serves.
    pub fn serves_any(&self, connect: &str) -> bool {
        connect.split(',').filter_map(|a| self.id_at(a.trim())).any(|id| self.mode(id).is_serving())
    }

    /// A client write: the zxid moves on.
    pub fn write(&mut self) -> u64 {
        self.zxid += 1;
        self.zxid
    }

    /// `change` applied to the committed config (not committed).
    pub fn changed(&self, change: &MembershipChange) -> EnsembleConfig {
        let mut next = self.config.clone();
        for id in &change.leaving {
            next.servers.remove(id);
        }
        for s in &change.joining {
            next.servers.insert(s.id, s.clone());
        }
        next
    }

    /// What ZooKeeper does with a conditional incremental reconfig sent through `connect`.
    pub fn reconfig(&mut self, connect: &str, change: &MembershipChange) -> Result<EnsembleConfig, ReconfigError> {
        if !self.serves_any(connect) {
            return Err(ReconfigError::Unknown(format!("ConnectionLoss: no server of {connect} serves")));
        }
        if self.version_too_high {
            return Ok(self.config.clone());
        }
        if change.from_version != self.config.version {
            return Err(ReconfigError::Stale);
        }
        let mut next = self.changed(change);
        let voters: Vec<ServerId> = next.voters().collect();
        let synced = voters.iter().filter(|id| self.mode(**id).is_serving()).count();
        if synced * 2 <= voters.len() {
            return Err(ReconfigError::Rejected("NewConfigNoQuorum".into()));
        }
        next.version = self.write();
        self.config = next.clone();
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loopback_spec as spec;

    fn three() -> Ensemble {
        let mut config = EnsembleConfig { version: FIRST_ZXID, ..Default::default() };
        for id in 1..=3 {
            config.servers.insert(ServerId(id), spec(id, Role::Participant));
        }
        Ensemble::serving(config)
    }

    #[test]
    fn modes_follow_the_majority_of_running_voters() {
        let mut e = three();
        assert_eq!((e.mode(ServerId(1)), e.mode(ServerId(2))), (Mode::Leader, Mode::Follower));
        e.set_running(ServerId(4), "127.0.0.4:2181", true);
        assert_eq!(e.mode(ServerId(4)), Mode::Follower, "a joiner is a non-voting follower");
        e.set_running(ServerId(1), "127.0.0.1:2181", false);
        assert_eq!((e.mode(ServerId(1)), e.mode(ServerId(2))), (Mode::Unreachable, Mode::Leader));
        e.set_running(ServerId(2), "127.0.0.2:2181", false);
        assert_eq!(e.mode(ServerId(3)), Mode::NotServing, "one of three voters: LOOKING");
        assert!(!e.serves_any("127.0.0.3:2181,127.0.0.4:2181"));
        assert_eq!(e.probe("127.0.0.9:2181"), Health::UNREACHABLE);
    }

    #[test]
    fn the_leader_counts_its_synced_learners() {
        let mut e = three();
        e.set_running(ServerId(4), "127.0.0.4:2181", true);
        let d = e.detail("127.0.0.1:2181");
        assert_eq!(d.zab_state.as_deref(), Some("broadcast"));
        assert_eq!(
            (d.synced_followers, d.synced_non_voting_followers, d.synced_observers),
            (Some(3), Some(1), Some(0))
        );
        assert_eq!(e.detail("127.0.0.2:2181").synced_followers, None, "followers do not count");
        e.set_running(ServerId(2), "127.0.0.2:2181", false);
        e.set_running(ServerId(3), "127.0.0.3:2181", false);
        assert_eq!(e.detail("127.0.0.1:2181").zab_state.as_deref(), Some("election"));
        assert_eq!(e.detail("127.0.0.2:2181"), ServerDetail::default());
    }

    #[test]
    fn a_genesis_forms_once_a_majority_runs_on_the_same_file() {
        let mut e = Ensemble::default();
        let file = three().config;
        let file = EnsembleConfig { version: 0, ..file };
        e.start_on(ServerId(1), "127.0.0.1:2181", file.clone());
        assert_eq!(e.mode(ServerId(1)), Mode::NotServing, "one of three");
        e.start_on(ServerId(2), "127.0.0.2:2181", EnsembleConfig { version: 0, ..Default::default() });
        assert!(e.config.servers.is_empty(), "another file does not count");
        e.start_on(ServerId(2), "127.0.0.2:2181", file.clone());
        assert_eq!(e.config.servers.len(), 3);
        assert_eq!(e.config.version, FIRST_ZXID, "stamped by the first leader");
        assert_eq!(e.mode(ServerId(1)), Mode::Leader);
    }

    #[test]
    fn a_reconfig_commits_with_a_new_version_or_says_why_not() {
        let mut e = three();
        e.set_running(ServerId(4), "127.0.0.4:2181", true);
        let add = MembershipChange {
            joining: vec![spec(4, Role::Observer)],
            leaving: vec![],
            from_version: FIRST_ZXID,
            why: "t".into(),
        };
        let c = e.reconfig("127.0.0.1:2181", &add).expect("commits");
        assert_eq!((c.version, e.mode(ServerId(4))), (FIRST_ZXID + 1, Mode::Observer));
        assert!(matches!(e.reconfig("127.0.0.1:2181", &add), Err(ReconfigError::Stale)), "old version");
        let drop_two =
            MembershipChange { joining: vec![], leaving: vec![ServerId(2)], from_version: c.version, why: "t".into() };
        e.set_running(ServerId(3), "127.0.0.3:2181", false);
        assert!(matches!(e.reconfig("127.0.0.1:2181", &drop_two), Err(ReconfigError::Rejected(_))), "1 of 2 synced");
        e.version_too_high = true;
        let same = e.reconfig("127.0.0.1:2181", &drop_two).expect("silently ignored");
        assert_eq!(same, e.config);
        assert!(same.servers.contains_key(&ServerId(2)));
        assert!(matches!(e.reconfig("127.0.0.3:2181", &drop_two), Err(ReconfigError::Unknown(_))));
    }
}
