//! Quorum-loss recovery, decided without ZooKeeper (it has no quorum to lock or vote with).
//!
//! The procedure (docs/zookeeper-notes.md §1, which also lists what breaks it):
//! 1. every survivor whose config can no longer form a quorum with the voters still alive
//!    ([`needs_recovery`]) stops its server, copies its data dir, reads its position from disk and
//!    reports it;
//! 2. one coordinator (the backend lease holder) waits until every live member has reported and
//!    every lost voter is confirmed gone by the backend, then names the survivor with the highest
//!    `(currentEpoch, lastZxid, id)`, the election's own total order ([`assess`]);
//! 3. that survivor restarts alone from a fresh version-less dynamic file; everyone else rejoins it
//!    as a joiner once it serves, and the planner grows the ensemble back.
//!
//! What can go wrong is a split brain: an old member returning with the old config while the
//! rebuilt one is unreachable (docs/zookeeper-notes.md §1). Hence step 2 never proceeds on a lost voter the
//! backend cannot confirm gone, nor past a live member that has not stopped, unless the operator
//! allowed unsafe recovery.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::model::{EnsembleConfig, Instance, InstanceId, InstanceState, ServerId};
use crate::safety::majority;

/// What a fenced survivor reports: its server is stopped, its data copied, its position read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurvivorReport {
    /// The reporting instance.
    pub instance: InstanceId,
    /// Its server.
    pub server_id: ServerId,
    /// `currentEpoch` on disk.
    pub current_epoch: u64,
    /// Last logged zxid on disk.
    pub last_zxid: u64,
    /// The config its dynamic file holds (version from the file name).
    pub config: EnsembleConfig,
    /// Where its data dir was copied before anything else happened to it.
    pub backup: String,
    /// When it was (re)published, ms since the Unix epoch.
    pub at_ms: u64,
}

impl SurvivorReport {
    /// The election's total order (FastLeaderElection.totalOrderPredicate).
    pub fn rank(&self) -> (u64, u64, ServerId) {
        (self.current_epoch, self.last_zxid, self.server_id)
    }
}

/// The coordinator's choice, stored in the backend for every survivor to act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryDecision {
    /// Version of the newest config any survivor held: the outage this decision is for. A later
    /// outage starts from a higher version, so an old decision is never acted on again.
    pub from_version: u64,
    /// The server the ensemble is rebuilt from.
    pub survivor: ServerId,
    /// Its instance.
    pub survivor_instance: InstanceId,
    /// Voters confirmed gone.
    pub lost: Vec<ServerId>,
    /// Members skipped although not confirmed gone or not stopped: non-empty only with
    /// `allow_unsafe`.
    pub unconfirmed: Vec<ServerId>,
    /// Every candidate as `(id, currentEpoch, lastZxid)`.
    pub candidates: Vec<(ServerId, u64, u64)>,
    /// Position of the chosen survivor: everything up to here is kept.
    pub kept_zxid: u64,
    /// When, ms since the Unix epoch.
    pub decided_ms: u64,
}

impl RecoveryDecision {
    /// Whether a server whose dynamic file has `local_version` should act on this decision
    /// (false for a decision left over from an earlier outage).
    pub fn applies_to(&self, local_version: u64) -> bool {
        self.from_version >= local_version
    }
}

/// What the coordinator should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessment {
    /// Enough voters are alive for ZooKeeper to elect a leader by itself: recovery would only do
    /// harm.
    NotNeeded(String),
    /// Not safe yet; the reason names what is awaited.
    Wait(String),
    /// Rebuild from this survivor.
    Decide(RecoveryDecision),
}

/// How a configured server stands according to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// An instance that is not terminated holds it: its server may run.
    Alive,
    /// Only a terminated instance holds it: it can never come back with its old config.
    Gone,
    /// No instance is known to hold it (a slot awaiting its replacement, a lost claim): it may
    /// come back, with its data.
    Unknown,
}

/// Where the backend says server `id` is.
pub fn presence(id: ServerId, instances: &[Instance]) -> Presence {
    let holders = instances.iter().filter(|i| i.server_id == Some(id));
    let mut gone = false;
    for i in holders {
        if i.state == InstanceState::Terminated {
            gone = true;
        } else {
            return Presence::Alive;
        }
    }
    if gone { Presence::Gone } else { Presence::Unknown }
}

/// Whether the voters of `config` still alive are too few to ever form its quorum: only then is a
/// rebuild needed. Anything else (a slow election, a partition, a restarting member) heals by
/// itself.
pub fn needs_recovery(config: &EnsembleConfig, instances: &[Instance]) -> bool {
    let voters: Vec<ServerId> = config.voters().collect();
    let alive = voters.iter().filter(|v| presence(**v, instances) == Presence::Alive).count();
    !voters.is_empty() && alive < majority(voters.len())
}

/// Reports that count: recent (`fresh_ms`), from an instance that is still alive, and about a
/// config newer than the one the last decision rebuilt from (`previous`). A member that reported
/// in an earlier outage and has not fenced itself in this one must not look as if it had: the
/// rebuild gave every config since a higher version.
pub fn fresh_reports<'a>(
    reports: &'a [SurvivorReport],
    instances: &[Instance],
    previous: Option<&RecoveryDecision>,
    now_ms: u64,
    fresh_ms: u64,
) -> Vec<&'a SurvivorReport> {
    reports
        .iter()
        .filter(|r| previous.is_none_or(|d| r.config.version > d.from_version))
        .filter(|r| now_ms.saturating_sub(r.at_ms) <= fresh_ms)
        .filter(|r| instances.iter().any(|i| i.id == r.instance && i.state != InstanceState::Terminated))
        .collect()
}

/// The coordinator's rule. `reports` must already be [`fresh_reports`].
pub fn assess(reports: &[&SurvivorReport], instances: &[Instance], allow_unsafe: bool, now_ms: u64) -> Assessment {
    let Some(newest) = reports.iter().max_by_key(|r| r.config.version) else {
        return Assessment::Wait("no survivor has reported its data yet".into());
    };
    let last = &newest.config;
    if !needs_recovery(last, instances) {
        return Assessment::NotNeeded(format!(
            "{} of {} voters of config {:x} are alive: ZooKeeper re-elects by itself",
            last.voters().filter(|v| presence(*v, instances) == Presence::Alive).count(),
            last.voter_count(),
            last.version
        ));
    }
    let reported: BTreeSet<ServerId> = reports.iter().map(|r| r.server_id).collect();
    let mut lost = Vec::new();
    let mut unconfirmed = Vec::new();
    let mut waits = Vec::new();
    for (id, spec) in &last.servers {
        match presence(*id, instances) {
            Presence::Gone if last.role_of(*id) == Some(crate::model::Role::Participant) => lost.push(*id),
            Presence::Gone => {}
            Presence::Alive if reported.contains(id) => {}
            Presence::Alive => {
                unconfirmed.push(*id);
                waits.push(format!("server {id} ({}) is alive but has not stopped and reported its data", spec.host));
            }
            Presence::Unknown => {
                unconfirmed.push(*id);
                waits.push(format!(
                    "server {id} ({}) is not confirmed gone: no terminated instance holds it (in slot mode its \
                     replacement brings its data back)",
                    spec.host
                ));
            }
        }
    }
    if !waits.is_empty() && !allow_unsafe {
        return Assessment::Wait(format!(
            "{}; recovery waits (allow_unsafe in [recovery] skips this check and risks a split brain)",
            waits.join("; ")
        ));
    }
    let Some(best) = reports.iter().max_by_key(|r| r.rank()) else {
        return Assessment::Wait("no survivor has reported its data yet".into());
    };
    let mut candidates: Vec<(ServerId, u64, u64)> =
        reports.iter().map(|r| (r.server_id, r.current_epoch, r.last_zxid)).collect();
    candidates.sort();
    Assessment::Decide(RecoveryDecision {
        from_version: last.version,
        survivor: best.server_id,
        survivor_instance: best.instance.clone(),
        lost,
        unconfirmed: if allow_unsafe { unconfirmed } else { Vec::new() },
        candidates,
        kept_zxid: best.last_zxid,
        decided_ms: now_ms,
    })
}

/// Whether a stored decision still governs: it is for the outage the caller is in, and its
/// survivor's instance is alive (if it died before serving, a new choice is needed).
pub fn decision_stands(decision: &RecoveryDecision, local_version: u64, instances: &[Instance]) -> bool {
    decision.applies_to(local_version)
        && instances.iter().any(|i| i.id == decision.survivor_instance && i.state != InstanceState::Terminated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Role, ServerSpec};

    fn sid(n: u32) -> ServerId {
        ServerId(n)
    }

    fn config(voters: &[u32], observers: &[u32], version: u64) -> EnsembleConfig {
        let mut c = EnsembleConfig { version, ..EnsembleConfig::default() };
        for (n, role) in
            voters.iter().map(|n| (*n, Role::Participant)).chain(observers.iter().map(|n| (*n, Role::Observer)))
        {
            c.servers.insert(sid(n), ServerSpec::loopback(n, n, role));
        }
        c
    }

    fn inst(name: &str, id: Option<u32>, state: InstanceState) -> Instance {
        Instance {
            id: InstanceId(name.into()),
            address: String::new(),
            zone: "a".into(),
            state,
            server_id: id.map(sid),
            protected: None,
            hook: None,
        }
    }

    fn report(name: &str, id: u32, epoch: u64, zxid: u64, cfg: &EnsembleConfig) -> SurvivorReport {
        SurvivorReport {
            instance: InstanceId(name.into()),
            server_id: sid(id),
            current_epoch: epoch,
            last_zxid: zxid,
            config: cfg.clone(),
            backup: format!("/b/{id}"),
            at_ms: 1000,
        }
    }

    use InstanceState::{Running, Terminated};

    #[test]
    fn two_of_three_gone_is_rebuilt_from_the_survivor() {
        let cfg = config(&[1, 2, 3], &[], 0x1_0000_0000);
        let instances = [
            inst("a", Some(1), Running),
            inst("b", Some(2), Terminated),
            inst("c", Some(3), Terminated),
            inst("d", Some(4), Running),
        ];
        assert!(needs_recovery(&cfg, &instances));
        let r = [report("a", 1, 1, 0x1_0000_0009, &cfg)];
        let refs: Vec<&SurvivorReport> = r.iter().collect();
        let Assessment::Decide(d) = assess(&refs, &instances, false, 5) else { panic!("should decide") };
        assert_eq!(
            (d.survivor, d.lost.clone(), d.kept_zxid, d.from_version),
            (sid(1), vec![sid(2), sid(3)], 0x1_0000_0009, 0x1_0000_0000)
        );
        assert!(d.unconfirmed.is_empty());
    }

    #[test]
    fn a_majority_alive_needs_no_recovery() {
        let cfg = config(&[1, 2, 3], &[], 1);
        let instances = [inst("a", Some(1), Running), inst("b", Some(2), Running), inst("c", Some(3), Terminated)];
        assert!(!needs_recovery(&cfg, &instances));
        let r = [report("a", 1, 1, 5, &cfg)];
        assert!(matches!(assess(&r.iter().collect::<Vec<_>>(), &instances, true, 5), Assessment::NotNeeded(_)));
    }

    #[test]
    fn unconfirmed_loss_waits_unless_unsafe_is_allowed() {
        // Server 3's slot holder died: attributed to nobody, its data may come back.
        let cfg = config(&[1, 2, 3], &[], 1);
        let instances = [inst("a", Some(1), Running), inst("b", Some(2), Terminated)];
        let r = [report("a", 1, 1, 5, &cfg)];
        let refs: Vec<&SurvivorReport> = r.iter().collect();
        let Assessment::Wait(why) = assess(&refs, &instances, false, 5) else { panic!("must wait") };
        assert!(why.contains("server 3") && why.contains("not confirmed gone"), "{why}");
        let Assessment::Decide(d) = assess(&refs, &instances, true, 5) else { panic!("unsafe decides") };
        assert_eq!(d.unconfirmed, vec![sid(3)]);
    }

    #[test]
    fn every_live_member_must_have_stopped_and_reported() {
        let cfg = config(&[1, 2, 3, 4, 5], &[6], 1);
        let instances = [
            inst("a", Some(1), Running),
            inst("b", Some(2), Running),
            inst("c", Some(3), Terminated),
            inst("d", Some(4), Terminated),
            inst("e", Some(5), Terminated),
            inst("f", Some(6), Running),
        ];
        let r = [report("a", 1, 2, 7, &cfg), report("b", 2, 2, 9, &cfg)];
        let Assessment::Wait(why) = assess(&r.iter().collect::<Vec<_>>(), &instances, false, 5) else { panic!() };
        assert!(why.contains("server 6"), "{why}");
        let r = [report("a", 1, 2, 7, &cfg), report("b", 2, 2, 9, &cfg), report("f", 6, 2, 8, &cfg)];
        let Assessment::Decide(d) = assess(&r.iter().collect::<Vec<_>>(), &instances, false, 5) else { panic!() };
        assert_eq!(d.survivor, sid(2), "highest zxid in the same epoch");
        assert_eq!(d.lost, vec![sid(3), sid(4), sid(5)]);
    }

    #[test]
    fn election_order_epoch_then_zxid_then_id() {
        let cfg = config(&[1, 2, 3], &[], 1);
        let instances = [inst("a", Some(1), Running), inst("b", Some(2), Running), inst("c", Some(3), Running)];
        // None alive would need it; use a bigger config where these three are a minority.
        let big = config(&[1, 2, 3, 4, 5, 6, 7], &[], 2);
        let mut all = instances.to_vec();
        all.extend([4, 5, 6, 7].map(|n| inst(&format!("x{n}"), Some(n), Terminated)));
        let r = [
            report("a", 1, 3, 0x2_0000_0009, &big),
            report("b", 2, 3, 0x3_0000_0000, &cfg),
            report("c", 3, 3, 0x3_0000_0000, &big),
        ];
        let Assessment::Decide(d) = assess(&r.iter().collect::<Vec<_>>(), &all, false, 5) else { panic!() };
        assert_eq!(d.survivor, sid(3), "equal epoch and zxid: the higher id");
        assert_eq!(d.from_version, 2, "the newest config any survivor held");
        let r = [
            report("a", 1, 4, 0x3_0000_0001, &big),
            report("c", 3, 3, 0x3_0000_0005, &big),
            report("b", 2, 3, 1, &big),
        ];
        let Assessment::Decide(d) = assess(&r.iter().collect::<Vec<_>>(), &all, false, 5) else { panic!() };
        assert_eq!(d.survivor, sid(1), "a higher currentEpoch wins");
    }

    #[test]
    fn stale_reports_and_decisions_do_not_count() {
        let cfg = config(&[1, 2, 3], &[], 7);
        let instances = [inst("a", Some(1), Running), inst("z", Some(9), Terminated)];
        let mut old = report("a", 1, 1, 1, &cfg);
        old.at_ms = 0;
        let gone = report("z", 9, 9, 9, &cfg);
        assert!(fresh_reports(&[old.clone(), gone], &instances, None, 60_000, 30_000).is_empty());
        old.at_ms = 50_000;
        assert_eq!(fresh_reports(std::slice::from_ref(&old), &instances, None, 60_000, 30_000).len(), 1);
        let d = RecoveryDecision {
            from_version: 7,
            survivor: sid(1),
            survivor_instance: InstanceId("a".into()),
            lost: vec![],
            unconfirmed: vec![],
            candidates: vec![],
            kept_zxid: 0,
            decided_ms: 0,
        };
        assert!(decision_stands(&d, 7, &instances));
        assert!(
            fresh_reports(std::slice::from_ref(&old), &instances, Some(&d), 60_000, 30_000).is_empty(),
            "a report about the config the last decision rebuilt from belongs to that outage"
        );
        assert!(!decision_stands(&d, 8, &instances), "a later outage");
        assert!(!decision_stands(&d, 7, &[inst("a", Some(1), Terminated)]), "survivor died");
    }
}
