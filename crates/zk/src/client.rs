//! The reconfig client: `zookeeper-client` authenticated as the digest superuser.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use sha1::{Digest, Sha1};
use tokio::sync::Mutex;
use zkpilot_core::model::EnsembleConfig;
use zkpilot_core::observed::Health;
use zkpilot_core::plan::MembershipChange;
use zkpilot_core::ports::{PortError, PortResult, ReconfigError, ServerDetail, Zookeeper};
use zookeeper_client as zk;

/// The superuser password. Read from a file, never from argv or the environment, and never
/// printed: `Debug` is redacted.
#[derive(Clone)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// Reads the secret file: first line, trimmed; must be non-empty.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let error = |why| SecretError { path: path.to_path_buf(), why };
        let text = std::fs::read_to_string(path).map_err(|e| error(SecretProblem::Unreadable(e)))?;
        let s = text.lines().next().unwrap_or("").trim().to_string();
        if s.is_empty() {
            return Err(error(SecretProblem::Empty));
        }
        if s.contains(':') {
            return Err(error(SecretProblem::Colon));
        }
        Ok(Self(s))
    }

    /// For tests and generated demo secrets.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// `super:<base64(sha1("super:<password>"))>`, the value of
    /// `DigestAuthenticationProvider.superDigest`; a hash, safe to store in zoo.cfg.
    pub fn super_digest(&self) -> String {
        let hash = Sha1::digest(format!("super:{}", self.0).as_bytes());
        format!("super:{}", base64::engine::general_purpose::STANDARD.encode(hash))
    }

    fn auth(&self) -> Vec<u8> {
        format!("super:{}", self.0).into_bytes()
    }
}

/// A secret file zkpilot cannot use; names the file. The secret itself is never in the message.
#[derive(Debug, thiserror::Error)]
#[error("secret file {}: {why}", path.display())]
pub struct SecretError {
    /// The file.
    pub path: std::path::PathBuf,
    /// What is wrong with it.
    pub why: SecretProblem,
}

/// What is wrong with a secret file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretProblem {
    /// It cannot be read.
    #[error("{0}")]
    Unreadable(std::io::Error),
    /// Its first line is blank.
    #[error("empty")]
    Empty,
    /// It contains `:`, the separator of the `super:<password>` digest credential.
    #[error("must not contain ':'")]
    Colon,
}

/// Znode written to confirm that a reconfig is active everywhere.
pub const CONFIRM_PATH: &str = "/zkpilot-confirm";

/// A ZooKeeper session that is reused while the connect string stays the same.
#[derive(Debug)]
pub struct ZkClient {
    secret: Secret,
    tls: Option<ClientTls>,
    session: Mutex<Option<(String, zk::Client)>>,
}

/// How the agent's sessions use the secure client port (`[tls] client`): the digest secret
/// they carry never crosses the network in clear.
///
/// Connect strings name the plaintext client addresses (the dynamic config's, before 3.10 the
/// only ones it can hold: ZOOKEEPER-4276); every server's secure port is on the same address,
/// so each `host:port` becomes `host:secure_port`. The client certificate (ZooKeeper's
/// `ssl.clientAuth=need`) is made in memory from the cluster CA for each new session, so it
/// never needs renewing on disk.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// `[tls] secure_client_port`.
    pub secure_port: u16,
    /// The CA bundle servers' certificates are checked against.
    pub ca_file: std::path::PathBuf,
    /// The CA key the client certificate is signed with.
    pub ca_key_file: std::path::PathBuf,
    /// Who the client certificate names (its common name).
    pub identity: String,
}

impl ClientTls {
    /// `connect` with every server's port replaced by the secure one.
    pub fn secure_connect_string(&self, connect: &str) -> String {
        connect
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|hp| {
                let host = hp.rsplit_once(':').map_or(hp, |(h, _)| h);
                format!("{host}:{}", self.secure_port)
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    fn options(&self) -> Result<zk::TlsOptions, String> {
        // rustls needs one process-wide crypto provider when more than one is compiled in.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            drop(rustls::crypto::aws_lc_rs::default_provider().install_default());
        }
        let ca = crate::tls::Authority::load(&self.ca_file, &self.ca_key_file).map_err(|e| e.to_string())?;
        let names = crate::tls::CertNames { common_name: self.identity.clone(), names: Default::default() };
        let store =
            ca.issue(&names, std::time::SystemTime::now(), Duration::from_secs(86_400)).map_err(|e| e.to_string())?;
        zk::TlsOptions::new()
            .with_pem_ca(ca.bundle())
            .and_then(|o| o.with_pem_identity(&store, &store))
            .map_err(|e| format!("TLS options: {e}"))
    }
}

/// ZooKeeper error codes the client crate does not name (`KeeperException.Code` NEWCONFIGNOQUORUM
/// and RECONFIGINPROGRESS); `zookeeper-client` returns them as `Error::UnexpectedErrorCode`.
const NEW_CONFIG_NO_QUORUM: i32 = -13;
const RECONFIG_IN_PROGRESS: i32 = -14;

impl ZkClient {
    /// A client that authenticates with `secret`.
    pub fn new(secret: Secret) -> Self {
        Self { secret, tls: None, session: Mutex::new(None) }
    }

    /// Sessions over TLS to the secure client port ([`ClientTls`]).
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    async fn client(&self, connect: &str) -> PortResult<zk::Client> {
        let mut guard = self.session.lock().await;
        if let Some((c, client)) = guard.as_ref()
            && c == connect
            && !client.state().is_terminated()
        {
            return Ok(client.clone());
        }
        let connector = zk::Client::connector()
            .with_auth("digest", &self.secret.auth())
            .with_session_timeout(Duration::from_secs(6))
            .with_connection_timeout(Duration::from_millis(1500))
            .with_fail_eagerly();
        let tls = match &self.tls {
            None => None,
            Some(tls) => {
                Some((tls.options().map_err(|e| PortError::msg("zookeeper", e))?, tls.secure_connect_string(connect)))
            }
        };
        let connecting = async move {
            match tls {
                None => connector.connect(connect).await,
                Some((options, secure)) => connector.with_tls(options).secure_connect(&secure).await,
            }
        };
        let client = tokio::time::timeout(Duration::from_secs(8), connecting)
            .await
            .map_err(|_| PortError::msg("zookeeper", format!("connect to {connect}: timed out")))?
            .map_err(|e| PortError::new("zookeeper", format!("connect to {connect}"), e))?;
        *guard = Some((connect.to_string(), client.clone()));
        Ok(client)
    }

    async fn drop_session(&self) {
        *self.session.lock().await = None;
    }

    /// A client session for other uses (tests, the demo's data checks).
    pub async fn session(&self, connect: &str) -> PortResult<zk::Client> {
        self.client(connect).await
    }
}

/// Bounds one request: a session stuck on a LOOKING server must not stall the agent's pass.
async fn deadline<T>(fut: impl Future<Output = Result<T, zk::Error>>) -> Result<T, zk::Error> {
    tokio::time::timeout(Duration::from_secs(8), fut).await.unwrap_or(Err(zk::Error::Timeout))
}

impl Zookeeper for ZkClient {
    async fn probe(&self, client_address: &str) -> Health {
        crate::probe::srvr(client_address).await
    }

    /// AdminServer `zabstate` (answers even while the server does not serve) and, on the leader,
    /// the synced counts from `mntr`. Missing answers stay `None`.
    async fn server_detail(&self, host: &str, admin_port: u16, client_port: u16) -> ServerDetail {
        let mut d = ServerDetail::default();
        if let Ok(z) = crate::probe::admin_command(host, admin_port, "zabstate").await {
            d.zab_state = z.get("zabstate").and_then(|v| v.as_str()).map(str::to_string);
            d.voting = z.get("voting").and_then(serde_json::Value::as_bool);
            d.last_zxid = z.get("last_zxid").and_then(|v| v.as_str()).map(str::to_string);
        }
        if let Ok(m) = crate::probe::mntr(&format!("{host}:{client_port}")).await {
            let n = |k: &str| m.get(k).and_then(|v| v.parse().ok());
            d.connections = n("num_alive_connections");
            if m.get("server_state").map(String::as_str) == Some("leader") {
                d.synced_followers = n("synced_followers");
                d.synced_non_voting_followers = n("synced_non_voting_followers");
                d.synced_observers = n("synced_observers");
            }
        }
        d
    }

    async fn committed_config(&self, connect_string: &str) -> PortResult<EnsembleConfig> {
        let client = self.client(connect_string).await?;
        let result = async {
            deadline(client.sync("/zookeeper/config")).await?;
            deadline(client.get_config()).await
        }
        .await;
        match result {
            Ok((bytes, _stat)) => EnsembleConfig::parse(&String::from_utf8_lossy(&bytes))
                .map_err(|e| PortError::new("zookeeper", "parse /zookeeper/config", e)),
            Err(e) => {
                self.drop_session().await;
                Err(PortError::new("zookeeper", "read /zookeeper/config", e))
            }
        }
    }

    async fn reconfig(&self, connect_string: &str, change: &MembershipChange) -> Result<EnsembleConfig, ReconfigError> {
        let client = self.client(connect_string).await.map_err(|e| ReconfigError::Unknown(e.to_string()))?;
        let joinings: Vec<String> = change.joining.iter().map(|s| s.to_string()).collect();
        let leavings: Vec<String> = change.leaving.iter().map(|s| s.to_string()).collect();
        let update = zk::EnsembleUpdate::Incremental {
            joinings: joinings.iter().map(String::as_str).collect::<Vec<_>>().into_iter(),
            leavings: leavings.iter().map(String::as_str).collect::<Vec<_>>().into_iter(),
        };
        let version =
            i64::try_from(change.from_version).map_err(|_| ReconfigError::Rejected("version overflow".into()))?;
        match deadline(client.update_ensemble(update, Some(version))).await {
            Ok((bytes, _)) => EnsembleConfig::parse(&String::from_utf8_lossy(&bytes))
                .map_err(|e| ReconfigError::Unknown(format!("unparseable reply: {e}"))),
            Err(zk::Error::BadVersion) => Err(ReconfigError::Stale),
            Err(zk::Error::NoAuth) => Err(ReconfigError::Forbidden("NoAuth: the super secret does not match".into())),
            Err(zk::Error::ReconfigDisabled) => Err(ReconfigError::Forbidden("reconfigEnabled=false".into())),
            Err(zk::Error::UnexpectedErrorCode(NEW_CONFIG_NO_QUORUM)) => {
                Err(ReconfigError::Rejected("NewConfigNoQuorum".into()))
            }
            Err(zk::Error::UnexpectedErrorCode(RECONFIG_IN_PROGRESS)) => {
                Err(ReconfigError::Rejected("ReconfigInProgress".into()))
            }
            Err(zk::Error::BadArguments(why)) => Err(ReconfigError::Rejected(format!("BadArguments: {why}"))),
            Err(e) => {
                self.drop_session().await;
                Err(ReconfigError::Unknown(e.to_string()))
            }
        }
    }

    async fn confirm_write(&self, connect_string: &str) -> PortResult<()> {
        let client = self.client(connect_string).await?;
        let stamp = format!("{:?}", std::time::SystemTime::now());
        let result = match deadline(client.set_data(CONFIRM_PATH, stamp.as_bytes(), None)).await {
            Err(zk::Error::NoNode) => {
                let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
                match deadline(client.create(CONFIRM_PATH, stamp.as_bytes(), &opts)).await {
                    Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            other => other.map(|_| ()),
        };
        if let Err(e) = result {
            self.drop_session().await;
            return Err(PortError::new("zookeeper", "confirming write", e));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn super_digest_matches_zookeeper() {
        // Value printed by ZooKeeper's own generator for super:secret:
        // `java -cp zookeeper.jar org.apache.zookeeper.server.auth.DigestAuthenticationProvider super:secret`.
        assert_eq!(Secret::new("secret").super_digest(), "super:lK75jTNcA+U9vtVEw5vB51mj/w4=");
        assert_eq!(format!("{:?}", Secret::new("secret")), "Secret(<redacted>)");
    }
}
