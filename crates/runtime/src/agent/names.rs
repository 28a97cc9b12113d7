//! Name indirection: server lines say `zk-<id>.<domain>`, and the agent points those names at the
//! addresses the servers run on now, in the backend's name service (Route53 on AWS) or in a
//! hosts file ([`crate::names`]).

use std::collections::BTreeMap;

use zkpilot_core::model::{Instance, InstanceState};
use zkpilot_core::policy::server_name;
use zkpilot_core::ports::{Backend, Clock, PortError, ServerProcess, Zookeeper};

use super::Agent;
use crate::names::HostsError;

/// Server names could not be published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NamesError {
    /// The hosts file could not be updated.
    #[error(transparent)]
    Hosts(#[from] HostsError),
    /// The task updating the hosts file did not finish.
    #[error("updating the hosts file: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The backend's name service refused a record.
    #[error(transparent)]
    Publish(#[from] PortError),
}

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    /// Points this server's name (and, with a hosts file, every running member's) at the address
    /// it runs on. Route53 records are each agent's own, written once per run; the hosts file is
    /// local to each host, so every agent keeps all names in it.
    pub(super) async fn refresh_names(&mut self, instances: Option<&[Instance]>) -> Result<(), NamesError> {
        let (Some(names), Some(id)) = (self.cfg.names.clone(), self.identity.id) else { return Ok(()) };
        let mut current = BTreeMap::from([(server_name(id, &names.domain), self.cfg.instance.address.clone())]);
        if names.hosts_file.is_some() {
            for i in instances.into_iter().flatten().filter(|i| i.state != InstanceState::Terminated) {
                if let Some(sid) = i.server_id.filter(|sid| *sid != id) {
                    current.insert(server_name(sid, &names.domain), i.address.clone());
                }
            }
        }
        // Every pass computes the mapping; the file or the record is written only when it moved.
        if self.memo.names_written.as_ref() == Some(&current) {
            return Ok(());
        }
        if let Some(file) = names.hosts_file {
            let (domain, entries) = (names.domain.clone(), current.clone());
            tokio::task::spawn_blocking(move || crate::names::update_hosts_file(&file, &domain, &entries)).await??;
        } else {
            for (name, address) in &current {
                self.backend.publish_name(name, address).await?;
            }
        }
        tracing::info!(names = ?current, "server names published");
        self.memo.names_written = Some(current);
        Ok(())
    }
}
