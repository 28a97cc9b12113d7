//! The server's TLS certificate: checked before every start and on every pass, issued anew from
//! the cluster CA when `zkpilot_core::tls::certificate_verdict` says so. ZooKeeper reloads the
//! key store when the file changes, so renewal never restarts the server.

use std::collections::BTreeSet;

use zkpilot_core::ports::{Backend, Clock, ServerProcess, Zookeeper};
use zkpilot_core::tls::{Renewal, certificate_verdict};
use zkpilot_zk::files::write_private;
use zkpilot_zk::tls::{Authority, CertNames, TlsError};

use super::{Agent, AgentError};
use crate::config::TlsSection;

impl<B: Backend, Z: Zookeeper, P: ServerProcess, C: Clock> Agent<B, Z, P, C> {
    /// Keeps the certificate current. Before a start (`starting`) a failure is fatal: the server
    /// cannot serve TLS without one, and a missing or unreadable CA is a configuration error
    /// that waiting does not fix. On a running server a failure is shown in status and retried
    /// next pass: the certificate in use stays valid for a third of its lifetime.
    pub(super) fn keep_certificate(&mut self, starting: bool) -> Result<(), AgentError> {
        let Some(tls) = self.cfg.tls.clone() else { return Ok(()) };
        let now_ms = self.clock.now_ms();
        match self.check_and_renew(&tls, now_ms) {
            Ok(renewed) => {
                let status = self.memo.tls.get_or_insert_with(Default::default);
                status.error = None;
                if let Some(why) = renewed {
                    tracing::info!(reason = %why, "issued the server a new TLS certificate");
                    status.renewed_at_ms = Some(now_ms);
                    status.renewed_because = Some(why.to_string());
                    status.renewals += 1;
                }
                Ok(())
            }
            Err(e) if starting => Err(AgentError::Tls(e)),
            Err(e) => {
                let status = self.memo.tls.get_or_insert_with(Default::default);
                if status.error.as_deref() != Some(&e.to_string()) {
                    tracing::error!(error = %e, "cannot keep the server's TLS certificate current");
                }
                status.error = Some(e.to_string());
                Ok(())
            }
        }
    }

    fn wanted_names(&self, tls: &TlsSection) -> BTreeSet<String> {
        let address = &self.cfg.instance.address;
        let mut names: BTreeSet<String> = tls.also_valid_for.iter().map(|ip| ip.to_string()).collect();
        names.insert(address.clone());
        if let Some(id) = self.identity.id {
            names.insert(self.cfg.policy.host_for(id, address));
        }
        names
    }

    /// `Some(reason)` when a new certificate was written.
    fn check_and_renew(&mut self, tls: &TlsSection, now_ms: u64) -> Result<Option<Renewal>, TlsError> {
        let ca = Authority::load(&tls.ca_file, &tls.ca_key_file)?;
        let layout = &self.identity.layout;
        let (keystore, truststore) = (layout.keystore(), layout.truststore());
        let wanted = self.wanted_names(tls);
        let now_s = now_ms / 1000;
        let facts = match std::fs::read_to_string(&keystore) {
            Ok(text) => ca.facts(&text, &keystore).map(Some).map_err(|e| e.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", keystore.display())),
        };
        let verdict = certificate_verdict(facts.as_ref().map(Option::as_ref).map_err(Clone::clone), &wanted, now_s);
        let owner = self.cfg.server.run_as_uid;
        let dir = layout.tls_dir();
        std::fs::create_dir_all(&dir).map_err(|source| TlsError::Io { path: dir.clone(), source })?;
        if std::fs::read_to_string(&truststore).ok().as_deref() != Some(ca.bundle()) {
            write_private(&truststore, ca.bundle().as_bytes(), owner)?;
        }
        let status = self.memo.tls.get_or_insert_with(Default::default);
        if let Some(reason) = &verdict {
            let names = CertNames { common_name: self.cfg.instance.id.to_string(), names: wanted.clone() };
            let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms);
            let store = ca.issue(&names, now, std::time::Duration::from_secs(tls.cert_lifetime_s))?;
            write_private(&keystore, store.as_bytes(), owner)?;
            let facts = ca.facts(&store, &keystore)?;
            status.not_after_s = Some(facts.not_after_s);
            status.names = facts.names.into_iter().collect();
            return Ok(Some(reason.clone()));
        }
        if let Ok(Some(f)) = &facts {
            status.not_after_s = Some(f.not_after_s);
            status.names = f.names.iter().cloned().collect();
        }
        Ok(None)
    }
}
