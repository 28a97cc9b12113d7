//! What the agent tells the world after a pass: the committed membership (the connect string),
//! its status snapshot (to the backend and the API's watch), the events log and the client
//! connection count the group scales on.

use std::sync::Arc;

use tokio::time::Instant;
use zkpilot_core::agent::{Outcome, Phase};
use zkpilot_core::observed::Observed;
use zkpilot_core::plan::Plan;
use zkpilot_core::ports::{Backend, Clock, ServerDetail, ServerProcess, Zookeeper};

use super::{Agent, EVENTS_KEPT};
use crate::config::AgentConfig;
use crate::status::{AgentStatus, Counters, Event, MemberLine};

/// The snapshot before the first pass.
pub(super) fn initial_status(cfg: &AgentConfig) -> AgentStatus {
    AgentStatus {
        instance: cfg.instance.id.clone(),
        address: cfg.instance.address.clone(),
        zone: cfg.instance.zone.clone(),
        server_id: None,
        phase: Phase::Booting,
        detail: String::new(),
        role: None,
        mode: None,
        server: None,
        config_version: None,
        leader: None,
        connect_string: None,
        plan: Plan::default(),
        lease_holder: false,
        events: Vec::new(),
        updated_ms: 0,
        members: Vec::new(),
        zxid_lag: None,
        paused: false,
        target_voters: cfg.policy.target_voters,
        counters: Counters::default(),
        api: cfg.api.as_ref().map(|a| a.listen.to_string()),
        refused: None,
        release: None,
        tls: None,
    }
}

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    /// Publishes the status snapshot of this pass (and, at most every metrics interval, the
    /// connection count). `phase` is remembered: the next pass's phase depends on it.
    pub(super) async fn publish(
        &mut self,
        phase: Phase,
        detail: String,
        obs: Option<&Observed>,
        plan: &Plan,
        lease: bool,
    ) {
        self.memo.settled |= phase == Phase::Member;
        self.memo.phase = phase.clone();
        let server = if self.server.running { Some(self.cached_server_detail().await) } else { None };
        self.publish_metrics(server.as_ref()).await;
        let me = self.identity.id;
        let config = obs.and_then(|o| o.config.as_ref());
        let status = AgentStatus {
            instance: self.cfg.instance.id.clone(),
            address: self.cfg.instance.address.clone(),
            zone: self.cfg.instance.zone.clone(),
            server_id: me,
            phase,
            detail,
            role: config.zip(me).and_then(|(c, id)| c.role_of(id)),
            mode: obs.zip(me).and_then(|(o, id)| o.health.get(&id)).map(|h| h.mode),
            server,
            config_version: config.map(|c| format!("{:x}", c.version)),
            leader: obs.and_then(Observed::leader),
            connect_string: config.map(|c| c.connect_string()),
            plan: plan.clone(),
            lease_holder: lease,
            events: self.memo.events.iter().cloned().collect(),
            updated_ms: self.clock.now_ms(),
            members: obs.map(member_lines).unwrap_or_default(),
            zxid_lag: obs.zip(me).and_then(|(o, id)| {
                let mine = o.health.get(&id)?.zxid?;
                let leader = o.health.get(&o.leader()?)?.zxid?;
                Some(leader.saturating_sub(mine))
            }),
            paused: self.memo.operator.paused,
            target_voters: self.policy().target_voters,
            counters: self.memo.counters,
            api: self.cfg.api.as_ref().map(|a| a.listen.to_string()),
            refused: self.memo.refused.clone(),
            release: self.server.started_on.clone(),
            tls: self.memo.tls.clone(),
        };
        match serde_json::to_string_pretty(&status) {
            Ok(json) => {
                if let Err(e) = self.backend.publish_status(&self.cfg.instance.id, &json).await {
                    tracing::warn!(error = %e, "publishing status");
                }
            }
            Err(e) => tracing::warn!(error = %e, "serializing status"),
        }
        self.status.send_replace(Arc::new(status));
    }

    /// Every agent that sees a committed config version it has not published yet publishes it:
    /// cheap, idempotent, and no single agent has to survive for clients to learn the change.
    pub(super) async fn publish_membership(&mut self, obs: &Observed) {
        let Some(cfg) = &obs.config else { return };
        if self.memo.published_version == Some(cfg.version) {
            return;
        }
        match self.backend.publish_membership(cfg).await {
            Ok(()) => self.memo.published_version = Some(cfg.version),
            Err(e) => tracing::warn!(error = %e, "publishing the connection string"),
        }
    }

    /// Appends one executed action to the events log (the newest [`EVENTS_KEPT`] are kept).
    pub(super) fn record_event(&mut self, action: String, outcome: Outcome, started: Instant) {
        let took_ms = started.elapsed().as_millis() as u64;
        self.memo.events.push_back(Event { at_ms: self.clock.now_ms(), action, outcome, took_ms });
        while self.memo.events.len() > EVENTS_KEPT {
            self.memo.events.pop_front();
        }
    }

    /// The local server's own view (AdminServer `zabstate`, the leader's `mntr`) through the
    /// ZooKeeper port, asked at most every `DETAIL_EVERY_MS`: two more connections per pass were a
    /// third of an idle agent's CPU (BENCHMARKS.md B5), and the page, the metrics and a rolling
    /// restart's wait all live with a second of staleness.
    async fn cached_server_detail(&mut self) -> ServerDetail {
        let now = self.clock.now_ms();
        if let Some(d) = self.memo.detail.fresh(now) {
            return d.clone();
        }
        let (host, server) = (&self.cfg.instance.address, &self.cfg.server);
        let d = self.zk.server_detail(host, server.admin_port, server.client_port).await;
        self.memo.detail.put(now, d.clone());
        d
    }

    /// Publishes the client connection count every `metrics_interval_ms` (what the group's
    /// target-tracking policy scales on; new instances then join as observers).
    async fn publish_metrics(&mut self, detail: Option<&ServerDetail>) {
        let now = self.clock.now_ms();
        if !self.memo.metrics.due(now) {
            return;
        }
        let Some(connections) = detail.and_then(|d| d.connections) else { return };
        self.memo.metrics.mark(now);
        if let Err(e) = self.backend.publish_connections(&self.cfg.instance.id, connections).await {
            tracing::warn!(error = %e, "publishing the connection count");
        }
    }
}

/// Every member and joiner, for status and the page.
fn member_lines(obs: &Observed) -> Vec<MemberLine> {
    obs.members()
        .iter()
        .map(|m| MemberLine {
            id: m.id,
            address: m
                .instance
                .map(|i| i.address.clone())
                .or_else(|| m.spec.map(|s| s.host.clone()))
                .unwrap_or_default(),
            role: m.spec.map_or("-".to_string(), |s| s.role.to_string()),
            mode: Some(m.health.mode),
            zone: m.instance.map(|i| i.zone.clone()),
            instance: m.instance.map(|i| i.id.0.clone()),
            zxid: m.health.zxid,
        })
        .collect()
}
