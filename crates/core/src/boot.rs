//! The boot decision tree (reference/zookeeper-reconfig.md §8.2), as a pure function the agent
//! calls until it has something to start.

use serde::{Deserialize, Serialize};

use crate::model::{EnsembleConfig, ServerId, ServerSpec};
use crate::ports::ClusterMarker;
use crate::safety::voters_wanted;

/// What the agent knows at boot.
#[derive(Debug, Clone)]
pub struct BootInputs<'a> {
    /// This server's line (its id is the claimed or on-disk id).
    pub me: &'a ServerSpec,
    /// Local state exists: `Some(true)` if the dynamic file zoo.cfg points at lists this server.
    pub local_lists_me: Option<bool>,
    /// Config read from a serving member, if any serves.
    pub serving_config: Option<&'a EnsembleConfig>,
    /// The cluster marker.
    pub marker: Option<&'a ClusterMarker>,
    /// Server lines of every running instance that holds a claim (including this one).
    pub claimed: &'a [ServerSpec],
    /// Instances the group wants.
    pub desired_instances: usize,
    /// Voter target.
    pub target_voters: usize,
    /// The backend reports this instance terminating: never (re)start, never rejoin.
    pub leaving: bool,
    /// The operator asked for the next genesis to restore a backup.
    pub restoring: bool,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum BootDecision {
    /// Local state that lists this server: start ZooKeeper unchanged, no reconfig.
    StartAsIs,
    /// Local state that the serving ensemble does not match (its file lacks this server, or the
    /// ensemble no longer lists it): write the serving config plus this server as a fresh joiner
    /// file, repoint, start; the data dir is kept and synced by the leader.
    Rejoin(EnsembleConfig),
    /// No local state and an ensemble serves: start as a joiner with this initial config (the
    /// committed config plus this server as a participant); the lease holder adds it once synced.
    Join(EnsembleConfig),
    /// This server is in the marker's genesis list: start with that list and `initialize`.
    Genesis(EnsembleConfig),
    /// No marker yet and enough instances hold claims: propose a marker with these members.
    ProposeGenesis(Vec<ServerSpec>),
    /// Nothing safe to do yet.
    Wait(String),
}

impl std::fmt::Display for BootDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids = |c: &EnsembleConfig| c.servers.keys().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        match self {
            Self::StartAsIs => write!(f, "StartAsIs: local state lists this server"),
            Self::Rejoin(c) => write!(f, "Rejoin through servers {}", ids(c)),
            Self::Join(c) => write!(f, "Join with initial config {}", ids(c)),
            Self::Genesis(c) => write!(f, "Genesis of {}", ids(c)),
            Self::ProposeGenesis(m) => {
                write!(f, "ProposeGenesis of {}", m.iter().map(|s| s.id.to_string()).collect::<Vec<_>>().join(","))
            }
            Self::Wait(why) => write!(f, "Wait: {why}"),
        }
    }
}

/// Decides. Never returns a genesis when a marker exists or an ensemble serves: a second
/// bootstrap over an existing ensemble is the one mistake that cannot be undone.
pub fn decide(i: &BootInputs) -> BootDecision {
    if i.leaving {
        return BootDecision::Wait("instance is terminating; its server stays stopped".into());
    }
    match (i.local_lists_me, i.serving_config) {
        // The ensemble removed this server while it was down (a slot whose server was retired, an
        // instance that came back after its removal): its old file would make it a participant
        // of a config that no longer exists. Rejoin through the current one; the data stays.
        (Some(_), Some(cfg)) if !cfg.servers.contains_key(&i.me.id) => {
            return BootDecision::Rejoin(with_me(cfg, i.me));
        }
        (Some(true), _) => return BootDecision::StartAsIs,
        (Some(false), Some(cfg)) => return BootDecision::Rejoin(with_me(cfg, i.me)),
        (Some(false), None) => {
            return BootDecision::Wait(
                "local state does not list this server and no ensemble serves to rejoin through".into(),
            );
        }
        (None, _) => {}
    }
    if let Some(cfg) = i.serving_config {
        if let Some(existing) = cfg.servers.get(&i.me.id)
            && existing.host != i.me.host
        {
            return BootDecision::Wait(format!(
                "server id {} is still configured for {}; waiting for its removal",
                i.me.id, existing.host
            ));
        }
        return BootDecision::Join(with_me(cfg, i.me));
    }
    if let Some(marker) = i.marker {
        if marker.genesis.iter().any(|s| s.id == i.me.id && s.host == i.me.host) {
            let mut cfg = EnsembleConfig::default();
            for s in &marker.genesis {
                cfg.servers.insert(s.id, s.clone());
            }
            return BootDecision::Genesis(cfg);
        }
        return BootDecision::Wait(
            "cluster marker exists but no member serves: genesis in progress, or quorum lost; never bootstrapping again".into(),
        );
    }
    // A restore starts one server alone on the backup; every other server joins it empty and is
    // synced by it. Several seeded genesis members could elect an empty quorum first and have it
    // truncate the restored one (reference/zookeeper-local-lab.md, the ways recovery lost data).
    let n = if i.restoring { 1 } else { voters_wanted(i.desired_instances, i.target_voters) };
    let mut claimed: Vec<&ServerSpec> = i.claimed.iter().collect();
    claimed.sort_by_key(|s| s.id);
    if claimed.len() < n {
        return BootDecision::Wait(format!("genesis: {} of {n} instances hold an id", claimed.len()));
    }
    let members: Vec<ServerSpec> = claimed.into_iter().take(n).cloned().collect();
    BootDecision::ProposeGenesis(members)
}

fn with_me(cfg: &EnsembleConfig, me: &ServerSpec) -> EnsembleConfig {
    // Listed as a participant: the documented joiner form (only one joiner per initial file is a
    // participant, itself). The role it really gets is decided by the reconfig that adds it.
    let mut c = EnsembleConfig { servers: cfg.servers.clone(), version: 0 };
    c.servers.insert(me.id, me.with_role(crate::model::Role::Participant));
    c
}

/// Server ids of the initial members.
pub fn genesis_ids(marker: &ClusterMarker) -> Vec<ServerId> {
    marker.genesis.iter().map(|s| s.id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceId, Role};

    fn spec(id: u32) -> ServerSpec {
        ServerSpec {
            id: ServerId(id),
            host: format!("127.0.0.{id}"),
            quorum_port: 2888,
            election_port: 3888,
            role: Role::Participant,
            client_host: format!("127.0.0.{id}"),
            client_port: 2181,
        }
    }

    fn inputs<'a>(me: &'a ServerSpec, claimed: &'a [ServerSpec]) -> BootInputs<'a> {
        BootInputs {
            me,
            local_lists_me: None,
            serving_config: None,
            marker: None,
            claimed,
            desired_instances: 5,
            target_voters: 3,
            leaving: false,
            restoring: false,
        }
    }

    #[test]
    fn genesis_waits_for_enough_claims_then_takes_lowest_ids() {
        let me = spec(2);
        let two = [spec(1), spec(2)];
        assert!(matches!(decide(&inputs(&me, &two)), BootDecision::Wait(_)));
        let four = [spec(4), spec(2), spec(1), spec(3)];
        let BootDecision::ProposeGenesis(m) = decide(&inputs(&me, &four)) else { panic!("expected proposal") };
        assert_eq!(m.iter().map(|s| s.id.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn a_restore_is_born_as_one_server() {
        let me = spec(2);
        let claimed = [spec(3), spec(2)];
        let mut i = inputs(&me, &claimed);
        i.restoring = true;
        let BootDecision::ProposeGenesis(m) = decide(&i) else { panic!("expected proposal") };
        assert_eq!(m.iter().map(|s| s.id.0).collect::<Vec<_>>(), vec![2], "one seeded server, the lowest id");
    }

    #[test]
    fn marker_without_ensemble_never_bootstraps_again() {
        let me = spec(4);
        let claimed = [spec(4)];
        let marker = ClusterMarker {
            cluster_id: "c".into(),
            genesis: vec![spec(1), spec(2), spec(3)],
            created_by: InstanceId("i".into()),
            created_ms: 0,
            restored_from: None,
        };
        let mut i = inputs(&me, &claimed);
        i.marker = Some(&marker);
        assert!(matches!(decide(&i), BootDecision::Wait(_)));
        let me1 = spec(1);
        i.me = &me1;
        assert!(matches!(decide(&i), BootDecision::Genesis(c) if c.servers.len() == 3));
    }

    #[test]
    fn local_state_and_serving_ensemble() {
        let me = spec(4);
        let cfg = EnsembleConfig::parse("server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\nversion=100000000")
            .expect("valid");
        let mut i = inputs(&me, &[]);
        i.serving_config = Some(&cfg);
        let BootDecision::Join(j) = decide(&i) else { panic!("expected join") };
        assert_eq!(j.version, 0);
        assert_eq!(j.servers.len(), 2);
        i.local_lists_me = Some(true);
        assert!(
            matches!(decide(&i), BootDecision::Rejoin(c) if c.servers.contains_key(&me.id)),
            "a server the ensemble no longer lists rejoins instead of starting on its old file"
        );
        let with_me_cfg = with_me(&cfg, &me);
        i.serving_config = Some(&with_me_cfg);
        assert_eq!(decide(&i), BootDecision::StartAsIs);
        i.serving_config = None;
        assert_eq!(decide(&i), BootDecision::StartAsIs, "quorum lost: a member restarts on its own file");
        i.serving_config = Some(&cfg);
        i.local_lists_me = Some(false);
        assert!(matches!(decide(&i), BootDecision::Rejoin(_)));
        i.leaving = true;
        assert!(matches!(decide(&i), BootDecision::Wait(_)), "a terminating instance never rejoins");
    }
}
