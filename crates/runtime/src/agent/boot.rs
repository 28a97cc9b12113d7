//! Boot: take the slot (slot mode), refuse foreign local state, claim the id, walk the core's
//! boot decision once, prepare the files it asks for, start the server.
//!
//! The decision is `zkpilot_core::boot`'s, split by whether local state exists, so this match is
//! exhaustive with no "inconsistent decision" arm: a server with data can only start as is,
//! rejoin or wait; one without can only join (with the marker), start genesis (with the marker),
//! propose a marker or wait.

use zkpilot_core::boot::{self, BootInputs, Fresh, Offline, WithLocal, check_cluster, check_id};
use zkpilot_core::model::{InstanceState, ServerId, ServerSpec};
use zkpilot_core::observed::Observed;
use zkpilot_core::ports::{Backend, Clock, ClusterMarker, PortError, ServerProcess, Slot, Zookeeper};
use zkpilot_zk::files::{self, Layout, LocalState, Stamp};

use super::{Agent, AgentError};
use crate::config::IdentityMode;

/// What one boot step came to.
pub(super) enum Boot {
    /// The server runs.
    Started,
    /// Not yet, and why.
    Waiting(String),
}

/// Why a boot step stopped short.
enum Stop {
    /// A backend call failed: retried next pass (a blip of S3 or the group API must not end the
    /// agent).
    Backend(PortError),
    /// Anything else stops the agent.
    Fatal(AgentError),
}

impl<E: Into<AgentError>> From<E> for Stop {
    fn from(e: E) -> Self {
        Self::Fatal(e.into())
    }
}

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    /// Walks the boot decision tree once; starts ZooKeeper when it can. A failed backend call is
    /// no reason to stop: [`Self::boot_offline`] decides, and the next pass retries. Local files
    /// that cannot be trusted stop the agent.
    pub(super) async fn boot(&mut self) -> Result<Boot, AgentError> {
        match self.boot_step().await {
            Ok(boot) => Ok(boot),
            Err(Stop::Backend(e)) => self.boot_offline(&e).await,
            Err(Stop::Fatal(e)) => Err(e),
        }
    }

    /// The backend did not answer: the core's `boot::offline` says whether the server starts on
    /// its own files as they are (nothing is written, no id is announced) or waits.
    async fn boot_offline(&mut self, e: &PortError) -> Result<Boot, AgentError> {
        let wait = |why: &str| Ok(Boot::Waiting(format!("backend unavailable ({e}); {why}")));
        if self.cfg.cluster.identity == IdentityMode::Slot && self.identity.slot.is_none() {
            return wait("no slot held yet");
        }
        let Some(state) = LocalState::read(&self.identity.layout)? else {
            return wait("no local state to start from");
        };
        match boot::offline(state.dynamic.1.servers.contains_key(&state.myid)) {
            Offline::Wait(why) => return wait(&why),
            Offline::StartAsIs => {}
        }
        self.log_boot(state.myid, &"StartAsIs without the backend: local state lists this server");
        self.identity.id = Some(state.myid);
        if let Err(e) = self.refresh_names(None).await {
            return Ok(Boot::Waiting(format!("server name not published, not starting: {e}")));
        }
        tracing::warn!(error = %e, server_id = %state.myid, "backend unavailable: starting on local state as it is");
        self.start_server()?;
        Ok(Boot::Started)
    }

    async fn boot_step(&mut self) -> Result<Boot, Stop> {
        let slot = match self.cfg.cluster.identity {
            IdentityMode::Elastic => None,
            IdentityMode::Slot => match self.take_slot().await? {
                Some(s) => Some(s),
                None => {
                    return Ok(Boot::Waiting(format!(
                        "slot mode: every slot of zone {} is held by a live instance",
                        self.cfg.instance.zone
                    )));
                }
            },
        };
        self.load_fence()?;
        if self.recovery.fence.is_some() {
            return Ok(Boot::Waiting("fenced by quorum-loss recovery".into()));
        }
        let mut local = LocalState::read(&self.identity.layout)?;
        let marker = self.backend.cluster_marker().await.map_err(Stop::Backend)?;
        self.memo.marker_seen = marker.is_some();
        let id = self.claim(local.as_ref(), marker.as_ref(), slot.as_ref()).await?;
        let now = self.clock.now_ms();
        let me = self.cfg.server_spec(id);
        let obs = self.observer.observe(&self.backend, &self.zk, self.cfg.server.client_port, now).await;
        self.recovery.quorum.observe(obs.config.is_some(), obs.instances.is_some(), now);
        if obs.config.is_some()
            && local.as_ref().is_some_and(|s| s.has_data)
            && self.set_aside_unloadable_data(id, now)?
        {
            local = LocalState::read(&self.identity.layout)?;
        }
        let desired = self.backend.desired_capacity().await.map_err(Stop::Backend)?;
        // Only an ensemble not yet born can be a restore.
        let unborn = marker.is_none() && local.is_none();
        let seed = if unborn { self.backend.restore_seed().await.map_err(Stop::Backend)? } else { None };
        let claimed = self.claimed_servers(&obs);
        let inputs = BootInputs {
            me: &me,
            serving_config: obs.config.as_ref(),
            marker: marker.as_ref(),
            claimed: &claimed,
            desired_instances: desired,
            target_voters: self.cfg.policy.target_voters,
            leaving: obs.instances.iter().flatten().any(|i| i.id == self.cfg.instance.id && i.state.is_leaving()),
            restoring: seed.is_some(),
        };
        match local {
            Some(mut state) => {
                let decision = boot::with_local(&inputs, state.dynamic.1.servers.contains_key(&id));
                self.log_boot(id, &decision);
                let keys = self.static_keys().await?;
                match decision {
                    WithLocal::StartAsIs => {
                        files::update_static(&self.identity.layout, &mut state, &keys)?;
                    }
                    WithLocal::Rejoin(cfg) => {
                        files::update_static(&self.identity.layout, &mut state, &keys)?;
                        files::repoint_joiner(&self.identity.layout, &mut state, &cfg)?;
                    }
                    WithLocal::Wait(why) => return Ok(Boot::Waiting(why)),
                }
            }
            None => {
                let decision = boot::fresh(&inputs);
                self.log_boot(id, &decision);
                let keys = self.static_keys().await?;
                match decision {
                    Fresh::Join { config, marker } => {
                        prepare(&self.identity.layout, &marker, id, &keys, &config, false)?
                    }
                    Fresh::Genesis { config, marker } => match &marker.restored_from {
                        Some(name) => {
                            if let Some(why) = self.prepare_restored(&marker, name, id, &keys, &config).await? {
                                return Ok(Boot::Waiting(why));
                            }
                        }
                        None => prepare(&self.identity.layout, &marker, id, &keys, &config, true)?,
                    },
                    Fresh::ProposeGenesis(members) => {
                        let proposal = ClusterMarker {
                            cluster_id: uuid::Uuid::new_v4().to_string(),
                            genesis: members,
                            created_by: self.cfg.instance.id.clone(),
                            created_ms: now,
                            restored_from: seed,
                        };
                        let won = self.backend.create_cluster_marker(&proposal).await.map_err(Stop::Backend)?;
                        tracing::info!(cluster_id = %won.cluster_id, genesis = ?boot::genesis_ids(&won), "cluster marker");
                        return Ok(Boot::Waiting("cluster marker written; starting genesis".into()));
                    }
                    Fresh::Wait(why) => return Ok(Boot::Waiting(why)),
                }
            }
        }
        if let Err(e) = self.refresh_names(obs.instances.as_deref()).await {
            return Ok(Boot::Waiting(format!("server name not published, not starting: {e}")));
        }
        self.start_server()?;
        Ok(Boot::Started)
    }

    /// The id this server runs as: the slot's or the claimed one, checked against local state
    /// (the core's refusals), and announced on the instance once.
    async fn claim(
        &mut self,
        local: Option<&LocalState>,
        marker: Option<&ClusterMarker>,
        slot: Option<&Slot>,
    ) -> Result<ServerId, Stop> {
        let refused = |path, refusal| AgentError::Refused { path, refusal };
        if let Some(state) = local {
            check_cluster(&state.stamp.cluster_id, marker).map_err(|r| refused(self.identity.layout.stamp(), r))?;
        }
        let claimed = match slot {
            Some(s) => s.id,
            None => {
                self.backend.claim_id(&self.cfg.instance.id, &self.cfg.instance.address).await.map_err(Stop::Backend)?
            }
        };
        if let Some(state) = local {
            check_id(state.myid, claimed, &self.cfg.instance.id, slot.is_some())
                .map_err(|r| refused(self.identity.layout.myid(), r))?;
        }
        if self.identity.id != Some(claimed) {
            if let Err(e) = self.backend.announce(&self.cfg.instance.id, claimed, &self.cfg.instance.address).await {
                tracing::warn!(error = %e, "announcing the server id on the instance");
            }
            self.identity.id = Some(claimed);
        }
        Ok(claimed)
    }

    /// Server lines of every running instance that holds a claim (genesis picks from them).
    fn claimed_servers(&self, obs: &Observed) -> Vec<ServerSpec> {
        obs.instances
            .iter()
            .flatten()
            .filter(|i| i.state == InstanceState::Running)
            .filter_map(|i| i.server_id.map(|sid| (sid, i)))
            .map(|(sid, i)| ServerSpec {
                host: self.cfg.policy.host_for(sid, &i.address),
                client_host: self.cfg.policy.host_for(sid, &i.address),
                ..self.cfg.server_spec(sid)
            })
            .collect()
    }

    fn log_boot(&mut self, id: ServerId, decision: &impl std::fmt::Display) {
        let said = decision.to_string();
        if self.memo.last_boot_log.as_deref() != Some(said.as_str()) {
            tracing::info!(server_id = %id, "boot decision: {said}");
            self.memo.last_boot_log = Some(said);
        }
    }

    /// Slot mode: takes this instance's slot (address and storage) before anything reads local
    /// state, since the state lives on the slot's storage. `None` while no slot is free.
    async fn take_slot(&mut self) -> Result<Option<Slot>, Stop> {
        if let Some(s) = &self.identity.slot {
            return Ok(Some(s.clone()));
        }
        let claimed = self.backend.claim_slot(&self.cfg.instance.id, &self.cfg.instance.zone).await;
        let Some(slot) = claimed.map_err(Stop::Backend)? else {
            return Ok(None);
        };
        tracing::info!(slot = %slot.id, address = %slot.address, base_dir = ?slot.base_dir, "slot taken");
        if let Some(dir) = &slot.base_dir {
            self.identity.layout = Layout::new(dir);
        }
        self.cfg.instance.address = slot.address.clone();
        self.identity.slot = Some(slot.clone());
        Ok(Some(slot))
    }

    /// [`Self::static_keys`] for a restart of a running server: any failure, a backend blip
    /// included, is the restart's.
    pub(super) async fn static_keys_now(&self) -> Result<Vec<(String, String)>, AgentError> {
        match self.static_keys().await {
            Ok(k) => Ok(k),
            Err(Stop::Backend(e)) => Err(AgentError::Port(e)),
            Err(Stop::Fatal(e)) => Err(e),
        }
    }

    /// zkpilot's static zoo.cfg keys with the shared base config merged in. A base config that
    /// is malformed or sets a key not on the allow-list stops the agent, naming the line and the
    /// key (`zkpilot_zk::zoo_cfg::merge_base`); nothing is written.
    async fn static_keys(&self) -> Result<Vec<(String, String)>, Stop> {
        let own = self.cfg.static_keys(&self.secret.super_digest(), &self.identity.layout);
        let Some(text) = self.backend.base_config().await.map_err(Stop::Backend)? else { return Ok(own) };
        let path = std::path::Path::new("<backend base.cfg>");
        Ok(zkpilot_zk::zoo_cfg::merge_base(&own, &text, path, self.cfg.server.learner_sync.owned_keys())?)
    }
}

/// Writes a fresh server's files, stamped with the marker's cluster id.
fn prepare(
    layout: &Layout,
    marker: &ClusterMarker,
    id: ServerId,
    keys: &[(String, String)],
    cfg: &zkpilot_core::EnsembleConfig,
    genesis: bool,
) -> Result<(), AgentError> {
    let stamp = Stamp { cluster_id: marker.cluster_id.clone(), server_id: id };
    files::prepare_new(layout, &stamp, keys, cfg, genesis)?;
    Ok(())
}
