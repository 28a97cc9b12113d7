//! The boot decision tree, as pure functions the agent calls until it has something to start:
//! restart on local state, rejoin, join a serving ensemble (marker required), genesis from the
//! marker, propose a marker, or wait; and the refusals that stop an agent whose local state
//! contradicts the group. The joiner form follows the ZooKeeper admin guide, "Dynamic
//! Reconfiguration" (a new server starts with the current config plus itself, then is added).

use serde::{Deserialize, Serialize};

use crate::model::{EnsembleConfig, InstanceId, ServerId, ServerSpec};
use crate::ports::ClusterMarker;
use crate::safety::voters_wanted;

/// What the agent knows at boot (besides its local state, which picks the decision's half).
#[derive(Debug, Clone)]
pub struct BootInputs<'a> {
    /// This server's line (its id is the claimed or on-disk id).
    pub me: &'a ServerSpec,
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

/// What to do. Split by whether the server has local state, so the executor's match holds only
/// the decisions its state allows: a joiner never finds data to keep, a restart never needs a
/// marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "local", content = "decision", rename_all = "snake_case")]
pub enum BootDecision {
    /// The server has local state.
    WithLocal(WithLocal),
    /// It has none.
    Fresh(Fresh),
}

/// What to do with a server that has local state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum WithLocal {
    /// Local state that lists this server: start ZooKeeper unchanged, no reconfig.
    StartAsIs,
    /// Local state that the serving ensemble does not match (its file lacks this server, or the
    /// ensemble no longer lists it): write the serving config plus this server as a fresh joiner
    /// file, repoint, start; the data dir is kept and synced by the leader.
    Rejoin(EnsembleConfig),
    /// Nothing safe to do yet.
    Wait(String),
}

/// What to do with a server that has no local state. Joining and genesis carry the cluster
/// marker their files are stamped with: without one there is nothing zkpilot created to join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Fresh {
    /// An ensemble serves: start as a joiner with this initial config (the committed config plus
    /// this server as a participant); the lease holder adds it once synced.
    Join {
        /// The joiner's initial config.
        config: EnsembleConfig,
        /// The ensemble's marker.
        marker: ClusterMarker,
    },
    /// This server is in the marker's genesis list: start with that list and `initialize` (or,
    /// with `marker.restored_from`, from that backup).
    Genesis {
        /// The genesis members.
        config: EnsembleConfig,
        /// The marker that lists them.
        marker: ClusterMarker,
    },
    /// No marker yet and enough instances hold claims: propose a marker with these members.
    ProposeGenesis(Vec<ServerSpec>),
    /// Nothing safe to do yet.
    Wait(String),
}

fn ids(c: &EnsembleConfig) -> String {
    c.servers.keys().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

impl std::fmt::Display for WithLocal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::StartAsIs => write!(f, "StartAsIs: local state lists this server"),
            Self::Rejoin(c) => write!(f, "Rejoin through servers {}", ids(c)),
            Self::Wait(why) => write!(f, "Wait: {why}"),
        }
    }
}

impl std::fmt::Display for Fresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Join { config, .. } => write!(f, "Join with initial config {}", ids(config)),
            Self::Genesis { config, .. } => write!(f, "Genesis of {}", ids(config)),
            Self::ProposeGenesis(m) => {
                write!(f, "ProposeGenesis of {}", m.iter().map(|s| s.id.to_string()).collect::<Vec<_>>().join(","))
            }
            Self::Wait(why) => write!(f, "Wait: {why}"),
        }
    }
}

impl std::fmt::Display for BootDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WithLocal(d) => d.fmt(f),
            Self::Fresh(d) => d.fmt(f),
        }
    }
}

const TERMINATING: &str = "instance is terminating; its server stays stopped";

/// Decides, with `local_lists_me` `Some(lists)` when local state exists (`lists`: the dynamic
/// file zoo.cfg points at lists this server). Never returns a genesis when a marker exists or an
/// ensemble serves: a second bootstrap over an existing ensemble is the one mistake that cannot
/// be undone.
pub fn decide(i: &BootInputs, local_lists_me: Option<bool>) -> BootDecision {
    match local_lists_me {
        Some(lists_me) => BootDecision::WithLocal(with_local(i, lists_me)),
        None => BootDecision::Fresh(fresh(i)),
    }
}

/// [`decide`] for a server with local state.
pub fn with_local(i: &BootInputs, lists_me: bool) -> WithLocal {
    if i.leaving {
        return WithLocal::Wait(TERMINATING.into());
    }
    match (lists_me, i.serving_config) {
        // The ensemble removed this server while it was down (a slot whose server was retired, an
        // instance that came back after its removal): its old file would make it a participant
        // of a config that no longer exists. Rejoin through the current one; the data stays.
        (_, Some(cfg)) if !cfg.servers.contains_key(&i.me.id) => WithLocal::Rejoin(with_me(cfg, i.me)),
        (true, _) => WithLocal::StartAsIs,
        (false, Some(cfg)) => WithLocal::Rejoin(with_me(cfg, i.me)),
        (false, None) => {
            WithLocal::Wait("local state does not list this server and no ensemble serves to rejoin through".into())
        }
    }
}

/// [`decide`] for a server without local state.
pub fn fresh(i: &BootInputs) -> Fresh {
    if i.leaving {
        return Fresh::Wait(TERMINATING.into());
    }
    if let Some(cfg) = i.serving_config {
        if let Some(existing) = cfg.servers.get(&i.me.id)
            && existing.host != i.me.host
        {
            return Fresh::Wait(format!(
                "server id {} is still configured for {}; waiting for its removal",
                i.me.id, existing.host
            ));
        }
        let Some(marker) = i.marker else {
            return Fresh::Wait(
                "an ensemble serves but this group has no cluster marker; not joining an ensemble zkpilot did not create"
                    .into(),
            );
        };
        return Fresh::Join { config: with_me(cfg, i.me), marker: marker.clone() };
    }
    if let Some(marker) = i.marker {
        if marker.genesis.iter().any(|s| s.id == i.me.id && s.host == i.me.host) {
            let mut config = EnsembleConfig::default();
            for s in &marker.genesis {
                config.servers.insert(s.id, s.clone());
            }
            return Fresh::Genesis { config, marker: marker.clone() };
        }
        return Fresh::Wait(
            "cluster marker exists but no member serves: genesis in progress, or quorum lost; never bootstrapping again".into(),
        );
    }
    // A restore starts one server alone on the backup; every other server joins it empty and is
    // synced by it. Several seeded genesis members could elect an empty quorum first and have it
    // truncate the restored one: the elected leader's history wins, and an empty one has none.
    let n = if i.restoring { 1 } else { voters_wanted(i.desired_instances, i.target_voters) };
    let mut claimed: Vec<&ServerSpec> = i.claimed.iter().collect();
    claimed.sort_by_key(|s| s.id);
    if claimed.len() < n {
        return Fresh::Wait(format!("genesis: {} of {n} instances hold an id", claimed.len()));
    }
    Fresh::ProposeGenesis(claimed.into_iter().take(n).cloned().collect())
}

/// What a server with local state does while the backend does not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offline {
    /// Start on the files as they are.
    StartAsIs,
    /// Wait for the backend.
    Wait(String),
}

/// The backend does not answer, so neither the marker, the claim, the instance's state nor a
/// serving config can be read. A server whose own dynamic file lists it starts on its files as
/// they are: ZooKeeper rejoins (or re-forms) its quorum by itself, and an outage of the control
/// plane must not keep the data plane down. Its refusals are checked at the next boot that reaches
/// the backend; nothing is written meanwhile. A server its file does not list has no config of
/// its own to start with: it waits.
pub fn offline(lists_me: bool) -> Offline {
    if lists_me {
        Offline::StartAsIs
    } else {
        Offline::Wait(
            "the backend does not answer and local state does not list this server: waiting to rejoin through it"
                .into(),
        )
    }
}

/// Local state that contradicts the group: the agent refuses to start rather than touch it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The data dir belongs to another ensemble (another group's disk, a restored volume).
    #[error("is stamped for cluster {stamped} but this group's cluster is {group}")]
    ForeignCluster {
        /// The cluster id in the data dir's stamp.
        stamped: String,
        /// The group's cluster id (its marker's).
        group: String,
    },
    /// `myid` says one server, the backend's claim or slot another.
    #[error("says server {on_disk} but instance {instance} holds the {} for {claimed}", if *.slot { "slot" } else { "claim" })]
    IdMismatch {
        /// `myid`.
        on_disk: ServerId,
        /// The id this instance holds.
        claimed: ServerId,
        /// This instance.
        instance: InstanceId,
        /// Held as a slot (slot identity) rather than a claim.
        slot: bool,
    },
}

/// Refuses local state stamped for another cluster than the group's marker names. No marker yet
/// is no contradiction (the ensemble that wrote it may be the one being born).
pub fn check_cluster(stamped: &str, marker: Option<&ClusterMarker>) -> Result<(), Refusal> {
    match marker {
        Some(m) if m.cluster_id != stamped => {
            Err(Refusal::ForeignCluster { stamped: stamped.to_string(), group: m.cluster_id.clone() })
        }
        _ => Ok(()),
    }
}

/// Refuses local state whose `myid` is not the id this instance holds: starting it would run two
/// servers under one id, or one server under another's.
pub fn check_id(on_disk: ServerId, claimed: ServerId, instance: &InstanceId, slot: bool) -> Result<(), Refusal> {
    if on_disk == claimed {
        Ok(())
    } else {
        Err(Refusal::IdMismatch { on_disk, claimed, instance: instance.clone(), slot })
    }
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
    use crate::model::Role;

    fn spec(id: u32) -> ServerSpec {
        ServerSpec::loopback(id, id, Role::Participant)
    }

    fn inputs<'a>(me: &'a ServerSpec, claimed: &'a [ServerSpec]) -> BootInputs<'a> {
        BootInputs {
            me,
            serving_config: None,
            marker: None,
            claimed,
            desired_instances: 5,
            target_voters: 3,
            leaving: false,
            restoring: false,
        }
    }

    fn marker(genesis: Vec<ServerSpec>) -> ClusterMarker {
        ClusterMarker {
            cluster_id: "c".into(),
            genesis,
            created_by: InstanceId("i".into()),
            created_ms: 0,
            restored_from: None,
        }
    }

    #[test]
    fn genesis_waits_for_enough_claims_then_takes_lowest_ids() {
        let me = spec(2);
        let two = [spec(1), spec(2)];
        assert!(matches!(fresh(&inputs(&me, &two)), Fresh::Wait(_)));
        let four = [spec(4), spec(2), spec(1), spec(3)];
        let Fresh::ProposeGenesis(m) = fresh(&inputs(&me, &four)) else { panic!("expected proposal") };
        assert_eq!(m.iter().map(|s| s.id.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn a_restore_is_born_as_one_server() {
        let me = spec(2);
        let claimed = [spec(3), spec(2)];
        let mut i = inputs(&me, &claimed);
        i.restoring = true;
        let Fresh::ProposeGenesis(m) = fresh(&i) else { panic!("expected proposal") };
        assert_eq!(m.iter().map(|s| s.id.0).collect::<Vec<_>>(), vec![2], "one seeded server, the lowest id");
    }

    #[test]
    fn marker_without_ensemble_never_bootstraps_again() {
        let me = spec(4);
        let claimed = [spec(4)];
        let marker = marker(vec![spec(1), spec(2), spec(3)]);
        let mut i = inputs(&me, &claimed);
        i.marker = Some(&marker);
        assert!(matches!(fresh(&i), Fresh::Wait(_)));
        let me1 = spec(1);
        i.me = &me1;
        assert!(matches!(fresh(&i), Fresh::Genesis { config, .. } if config.servers.len() == 3));
    }

    #[test]
    fn local_state_and_serving_ensemble() {
        let me = spec(4);
        let cfg = EnsembleConfig::parse("server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\nversion=100000000")
            .expect("valid");
        let m = marker(vec![spec(1)]);
        let mut i = inputs(&me, &[]);
        i.serving_config = Some(&cfg);
        i.marker = Some(&m);
        let Fresh::Join { config: j, .. } = fresh(&i) else { panic!("expected join") };
        assert_eq!(j.version, 0);
        assert_eq!(j.servers.len(), 2);
        assert!(
            matches!(with_local(&i, true), WithLocal::Rejoin(c) if c.servers.contains_key(&me.id)),
            "a server the ensemble no longer lists rejoins instead of starting on its old file"
        );
        let with_me_cfg = with_me(&cfg, &me);
        i.serving_config = Some(&with_me_cfg);
        assert_eq!(with_local(&i, true), WithLocal::StartAsIs);
        i.serving_config = None;
        assert_eq!(with_local(&i, true), WithLocal::StartAsIs, "quorum lost: a member restarts on its own file");
        i.serving_config = Some(&cfg);
        assert!(matches!(with_local(&i, false), WithLocal::Rejoin(_)));
        i.leaving = true;
        assert!(matches!(with_local(&i, false), WithLocal::Wait(_)), "a terminating instance never rejoins");
    }

    #[test]
    fn joining_needs_the_marker_of_the_ensemble_it_joins() {
        let me = spec(4);
        let cfg =
            EnsembleConfig::parse("server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\nversion=1").expect("valid");
        let mut i = inputs(&me, &[]);
        i.serving_config = Some(&cfg);
        let Fresh::Wait(why) = fresh(&i) else { panic!("no marker, no join") };
        assert!(why.contains("no cluster marker"), "{why}");
        let m = marker(vec![spec(1)]);
        i.marker = Some(&m);
        assert!(matches!(fresh(&i), Fresh::Join { marker, .. } if marker == m), "the join carries the marker");
    }

    #[test]
    fn a_terminating_instance_never_starts() {
        let me = spec(1);
        let claimed = [spec(1)];
        let m = marker(vec![spec(1)]);
        let mut i = inputs(&me, &claimed);
        i.marker = Some(&m);
        i.leaving = true;
        assert!(matches!(fresh(&i), Fresh::Wait(_)));
        assert!(matches!(with_local(&i, true), WithLocal::Wait(_)));
        assert!(matches!(decide(&i, None), BootDecision::Fresh(Fresh::Wait(_))));
        assert!(matches!(decide(&i, Some(true)), BootDecision::WithLocal(WithLocal::Wait(_))));
    }

    #[test]
    fn without_the_backend_only_a_listed_server_starts() {
        assert_eq!(offline(true), Offline::StartAsIs);
        assert!(matches!(offline(false), Offline::Wait(_)));
    }

    #[test]
    fn foreign_or_renumbered_local_state_is_refused() {
        let m = marker(vec![spec(1)]);
        assert_eq!(check_cluster("c", Some(&m)), Ok(()));
        assert_eq!(check_cluster("other", None), Ok(()), "no marker yet: nothing to contradict");
        let e = check_cluster("other", Some(&m)).expect_err("foreign");
        assert_eq!(e.to_string(), "is stamped for cluster other but this group's cluster is c");
        let i = InstanceId("i-9".into());
        assert_eq!(check_id(ServerId(3), ServerId(3), &i, false), Ok(()));
        let e = check_id(ServerId(3), ServerId(5), &i, false).expect_err("mismatch");
        assert_eq!(e.to_string(), "says server 3 but instance i-9 holds the claim for 5");
        let e = check_id(ServerId(3), ServerId(5), &i, true).expect_err("mismatch");
        assert_eq!(e.to_string(), "says server 3 but instance i-9 holds the slot for 5");
    }
}
