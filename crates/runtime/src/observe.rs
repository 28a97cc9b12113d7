//! Gathering one [`Observed`] snapshot: backend instances, a `srvr` probe of every known server,
//! and the committed config read through the servers that serve. Every failure becomes data
//! (`None`, `Unreachable`), never an early return, so the planner always sees what is unknown.

use std::collections::{BTreeMap, BTreeSet};

use zkpilot_core::model::{EnsembleConfig, InstanceId, InstanceState, ServerId};
use zkpilot_core::observed::{Health, Observed};
use zkpilot_core::ports::{Group, Zookeeper};

/// Remembers since when each server has been serving, across passes.
#[derive(Debug, Default, Clone)]
pub struct Observer {
    serving_since: BTreeMap<ServerId, u64>,
    down_since: BTreeMap<ServerId, u64>,
    me: Option<InstanceId>,
}

impl Observer {
    /// The observer of the agent on instance `me`: while `me` is leaving, the config is read
    /// through the other servers (see [`Observer::observe`]).
    pub fn of(me: InstanceId) -> Self {
        Self { me: Some(me), ..Self::default() }
    }

    /// One snapshot. `client_port` is used for instances not (yet) in the config.
    pub async fn observe<G: Group, Z: Zookeeper>(
        &mut self,
        group: &G,
        zk: &Z,
        client_port: u16,
        now_ms: u64,
    ) -> Observed {
        let instances = group.instances().await.ok();
        let mut targets: BTreeMap<ServerId, String> = BTreeMap::new();
        for i in instances.iter().flatten() {
            if let (Some(id), false) = (i.server_id, i.state == InstanceState::Terminated) {
                targets.insert(id, format!("{}:{client_port}", i.address));
            }
        }
        let mut health = probe_all(zk, &targets).await;
        let serving: Vec<(ServerId, String)> = targets
            .iter()
            .filter(|(id, _)| health.get(id).is_some_and(|h| h.mode.is_serving()))
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        // A leaving server may be a removed leader: from the reconfig's commit until its next
        // tick's quorum check it still says "leader" but commits nothing, so a session on it
        // stalls (ZooKeeper's Leader: allowedToCommit=false once it is not the designated
        // leader). Its own agent, which must see the removal to stop it, reads through the others.
        let mine = instances
            .iter()
            .flatten()
            .find(|i| self.me.as_ref() == Some(&i.id) && i.state.is_leaving())
            .and_then(|i| i.server_id);
        let others: Vec<String> = serving.iter().filter(|(id, _)| Some(*id) != mine).map(|(_, a)| a.clone()).collect();
        let all: Vec<String> = serving.into_iter().map(|(_, a)| a).collect();
        let config = read_config(zk, if others.is_empty() { &all } else { &others }).await;
        if let Some(cfg) = &config {
            // Members nobody claims (unknown to the backend) are still probed, for status.
            let extra: BTreeMap<ServerId, String> = cfg
                .servers
                .values()
                .filter(|s| !targets.contains_key(&s.id))
                .map(|s| (s.id, s.client_address()))
                .collect();
            health.extend(probe_all(zk, &extra).await);
        }
        let ids: BTreeSet<ServerId> = health.keys().copied().collect();
        self.serving_since.retain(|id, _| ids.contains(id));
        self.down_since.retain(|id, _| ids.contains(id));
        for (id, h) in &mut health {
            if h.mode.is_serving() {
                h.serving_since_ms = Some(*self.serving_since.entry(*id).or_insert(now_ms));
                self.down_since.remove(id);
            } else {
                self.serving_since.remove(id);
                self.down_since.entry(*id).or_insert(now_ms);
            }
        }
        let desired = group.desired_capacity().await.ok();
        Observed { config, instances, health, down_since: self.down_since.clone(), desired }
    }
}

async fn probe_all<Z: Zookeeper>(zk: &Z, targets: &BTreeMap<ServerId, String>) -> BTreeMap<ServerId, Health> {
    let probes = targets.iter().map(|(id, addr)| async move { (*id, zk.probe(addr).await) });
    futures::future::join_all(probes).await.into_iter().collect()
}

/// The committed config through any serving server, or `None`.
pub async fn read_config<Z: Zookeeper>(zk: &Z, serving: &[String]) -> Option<EnsembleConfig> {
    if serving.is_empty() {
        return None;
    }
    zk.committed_config(&serving.join(",")).await.ok()
}
