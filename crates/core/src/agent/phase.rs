//! Where the agent is in its life, decided from what one pass observed and the phase it published
//! last; and when it is done (its server removed on scale-in).

use serde::{Deserialize, Serialize};

use super::Outcome;
use crate::model::{EnsembleConfig, ServerId};
use crate::plan::MembershipChange;

/// Where the agent is in its life. (Not `Copy`: status readers borrow it for serde.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Reading local state, claiming an id.
    Booting,
    /// Waiting before it can start ZooKeeper (the reason is in `detail`).
    Waiting,
    /// ZooKeeper started, not (yet) in the committed config.
    Joining,
    /// In the committed config.
    Member,
    /// The ensemble does not serve although a cluster marker exists.
    QuorumLost,
    /// Quorum-loss recovery: this server is stopped (fenced) and its data copied; `detail` says
    /// what recovery waits for.
    Recovering,
    /// Instance terminating: waiting for its removal.
    Leaving,
    /// Removed from the ensemble; ZooKeeper stopped.
    Removed,
}

/// Whether this server is in the committed config, as far as one pass could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// The committed config lists it.
    Yes,
    /// The committed config was read and does not list it.
    No,
    /// The committed config could not be read this pass (no server answered, or a read failed:
    /// normal for a moment while a reconfig changes the leader), or no id is claimed yet.
    Unknown,
}

impl Listed {
    /// From the config a pass read (if any) and this agent's server id (if claimed).
    pub fn of(config: Option<&EnsembleConfig>, me: Option<ServerId>) -> Self {
        match (config, me) {
            (Some(c), Some(id)) if c.servers.contains_key(&id) => Self::Yes,
            (Some(_), Some(_)) => Self::No,
            _ => Self::Unknown,
        }
    }
}

/// What a running agent's pass observed about its own server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The backend reports this instance terminating (scale-in, replacement).
    pub leaving: bool,
    /// This server in the committed config.
    pub listed: Listed,
    /// No member has served for the quorum-loss debounce time.
    pub quorum_lost: bool,
    /// The backend answered this pass (its instances were read). Without them no server is
    /// probed, so an unread config says nothing about the ensemble.
    pub backend_answered: bool,
}

/// What the pass ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The server is out of the committed config and its instance is terminating: the scale-in
    /// lifecycle is complete. Confirm the new config with a write that commits through the other
    /// servers (only then is it active everywhere and the removed server safe to stop), then stop
    /// the server, publish [`Phase::Removed`], end the agent. Unconfirmed, stay
    /// [`Phase::Leaving`].
    Removed,
    /// Publish this phase and why.
    Stay {
        /// The phase.
        phase: Phase,
        /// Why, for the status page (empty for a plain member).
        detail: String,
    },
}

/// The phase of a running agent after a pass, and whether it is done.
///
/// Removal needs a config that was *read* and lacks this server: a terminating instance whose
/// config read failed stays [`Phase::Leaving`], never stops early. A pass that cannot read the
/// committed config (normal for a moment while a reconfig moves the leader) does not demote a
/// member: `previous` [`Phase::Member`] stays a member, with the reason in the detail, so healthy
/// members do not briefly publish "not a member yet" (and the group 0 voters) during a scale-out.
/// Quorum loss is only said when the backend answered: with it silent nothing was probed.
pub fn verdict(seen: &Seen, previous: &Phase) -> Verdict {
    let stay = |phase, detail: &str| Verdict::Stay { phase, detail: detail.to_string() };
    match (seen.leaving, seen.listed) {
        // The lease holder removed it and confirmed with a write: done.
        (true, Listed::No) => Verdict::Removed,
        (true, _) => stay(Phase::Leaving, "instance terminating; waiting for its server's removal"),
        (false, Listed::Yes) => stay(Phase::Member, ""),
        (false, Listed::No) => stay(Phase::Joining, JOINING),
        (false, Listed::Unknown) if seen.quorum_lost && seen.backend_answered => {
            stay(Phase::QuorumLost, "no member serves although the ensemble exists; waiting, nothing is wiped")
        }
        (false, Listed::Unknown) if *previous == Phase::Member && !seen.backend_answered => stay(
            Phase::Member,
            "the backend does not answer, so membership is unknown this pass; the last config read listed this server",
        ),
        (false, Listed::Unknown) if *previous == Phase::Member => stay(
            Phase::Member,
            "the committed config could not be read this pass (normal for a moment during a reconfig); the last \
             config read listed this server",
        ),
        (false, Listed::Unknown) => stay(Phase::Joining, JOINING),
    }
}

const JOINING: &str = "running as a non-voting follower until the lease holder adds it";

/// Whether a config read between passes shows a leaving agent's server removed: the pass that
/// acts on it (and may end in [`Verdict::Removed`]) runs at once instead of after the wait.
pub fn removal_read(previous: &Phase, listed: Listed) -> bool {
    *previous == Phase::Leaving && listed == Listed::No
}

/// Whether this agent's own reconfig removed its server and a write confirmed it: the next pass,
/// which ends in [`Verdict::Removed`], runs at once.
pub fn removed_itself(change: &MembershipChange, outcome: &Outcome, me: Option<ServerId>) -> bool {
    *outcome == Outcome::Applied && me.is_some_and(|id| change.leaving.contains(&id))
}

/// The phase of an agent still waiting to start its server: quorum lost once a marker says an
/// ensemble was born and nothing has served for the debounce time, else waiting.
pub fn waiting(marker_seen: bool, quorum_lost: bool) -> Phase {
    if marker_seen && quorum_lost { Phase::QuorumLost } else { Phase::Waiting }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Phase; 8] = [
        Phase::Booting,
        Phase::Waiting,
        Phase::Joining,
        Phase::Member,
        Phase::QuorumLost,
        Phase::Recovering,
        Phase::Leaving,
        Phase::Removed,
    ];

    fn seen(leaving: bool, listed: Listed, quorum_lost: bool) -> Seen {
        Seen { leaving, listed, quorum_lost, backend_answered: true }
    }

    fn phase(v: Verdict) -> Phase {
        match v {
            Verdict::Removed => Phase::Removed,
            Verdict::Stay { phase, .. } => phase,
        }
    }

    #[test]
    fn a_member_whose_config_read_failed_stays_a_member() {
        let v = verdict(&seen(false, Listed::Unknown, false), &Phase::Member);
        let Verdict::Stay { phase, detail } = v else { panic!("not removed") };
        assert_eq!(phase, Phase::Member, "one failed read must not publish \"not a member yet\"");
        assert!(detail.contains("could not be read"), "the detail says why: {detail}");
    }

    #[test]
    fn a_joiner_whose_config_read_failed_stays_a_joiner() {
        for previous in [Phase::Booting, Phase::Waiting, Phase::Joining] {
            assert_eq!(phase(verdict(&seen(false, Listed::Unknown, false), &previous)), Phase::Joining, "{previous:?}");
        }
    }

    #[test]
    fn a_long_quorum_loss_wins_over_the_last_known_membership() {
        assert_eq!(phase(verdict(&seen(false, Listed::Unknown, true), &Phase::Member)), Phase::QuorumLost);
    }

    #[test]
    fn a_silent_backend_is_not_a_quorum_loss() {
        let blind = Seen { backend_answered: false, ..seen(false, Listed::Unknown, true) };
        let Verdict::Stay { phase, detail } = verdict(&blind, &Phase::Member) else { panic!("not removed") };
        assert_eq!(phase, Phase::Member, "nothing was probed: the ensemble may well serve");
        assert!(detail.contains("backend does not answer"), "{detail}");
        assert_eq!(self::phase(verdict(&blind, &Phase::Joining)), Phase::Joining);
    }

    #[test]
    fn a_read_config_decides_whatever_the_previous_phase() {
        for previous in ALL {
            assert_eq!(phase(verdict(&seen(false, Listed::Yes, false), &previous)), Phase::Member);
            assert_eq!(phase(verdict(&seen(false, Listed::No, false), &previous)), Phase::Joining);
            assert_eq!(phase(verdict(&seen(false, Listed::No, true), &previous)), Phase::Joining);
        }
    }

    #[test]
    fn removal_needs_a_config_that_was_read_and_lacks_this_server() {
        for previous in ALL {
            for quorum_lost in [false, true] {
                assert_eq!(verdict(&seen(true, Listed::No, quorum_lost), &previous), Verdict::Removed);
                assert_eq!(phase(verdict(&seen(true, Listed::Unknown, quorum_lost), &previous)), Phase::Leaving);
                assert_eq!(phase(verdict(&seen(true, Listed::Yes, quorum_lost), &previous)), Phase::Leaving);
                assert_ne!(verdict(&seen(false, Listed::No, quorum_lost), &previous), Verdict::Removed);
            }
        }
    }

    #[test]
    fn listed_needs_both_a_config_and_an_id() {
        let cfg =
            EnsembleConfig::parse("server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\nversion=1").expect("valid");
        assert_eq!(Listed::of(Some(&cfg), Some(ServerId(1))), Listed::Yes);
        assert_eq!(Listed::of(Some(&cfg), Some(ServerId(2))), Listed::No);
        assert_eq!(Listed::of(None, Some(ServerId(1))), Listed::Unknown);
        assert_eq!(Listed::of(Some(&cfg), None), Listed::Unknown);
    }

    #[test]
    fn waiting_is_quorum_lost_only_once_an_ensemble_was_born() {
        assert_eq!(waiting(true, true), Phase::QuorumLost);
        assert_eq!(waiting(false, true), Phase::Waiting, "no marker: nothing was ever born");
        assert_eq!(waiting(true, false), Phase::Waiting);
    }

    #[test]
    fn only_a_leaving_agent_reading_itself_out_passes_early() {
        assert!(removal_read(&Phase::Leaving, Listed::No));
        assert!(!removal_read(&Phase::Leaving, Listed::Yes));
        assert!(!removal_read(&Phase::Leaving, Listed::Unknown), "an unread config says nothing");
        for p in ALL.iter().filter(|p| **p != Phase::Leaving) {
            assert!(!removal_read(p, Listed::No), "{p:?}: a joiner is not listed either, and must not hurry");
        }
    }

    #[test]
    fn an_agent_removed_itself_only_by_a_confirmed_change_that_names_it() {
        let change =
            MembershipChange { joining: vec![], leaving: vec![ServerId(4)], from_version: 1, why: String::new() };
        assert!(removed_itself(&change, &Outcome::Applied, Some(ServerId(4))));
        assert!(!removed_itself(&change, &Outcome::Applied, Some(ServerId(3))));
        assert!(!removed_itself(&change, &Outcome::Applied, None));
        let unconfirmed = Outcome::AppliedUnconfirmed { why: "lost".into() };
        assert!(!removed_itself(&change, &unconfirmed, Some(ServerId(4))), "not confirmed: the next pass decides");
        assert!(!removed_itself(&change, &Outcome::Failed { why: "x".into() }, Some(ServerId(4))));
    }

    #[test]
    fn phases_serialize_as_before() {
        let text = serde_json::to_string(&ALL).expect("json");
        assert_eq!(text, r#"["booting","waiting","joining","member","quorum_lost","recovering","leaving","removed"]"#);
    }
}
