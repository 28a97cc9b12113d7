//! TLS material: the cluster CA, each server's certificate, and what the agent reads off them.
//!
//! One CA per cluster signs every server's certificate; each agent holds the CA's key (from the
//! backend's secret store: locally a 0600 file in the group's directory) and signs its own
//! server's certificate, so no agent waits on another to (re)issue. ZooKeeper reads PEM key
//! and trust stores (`ssl.keyStore.type=PEM`, Administrator's Guide, "Encryption,
//! Authentication, Authorization Options") and reloads them when the files change
//! (`sslQuorumReloadCertFiles`, ZOOKEEPER-3174; `client.certReload`, ZOOKEEPER-3806). The keys
//! are ECDSA P-256: ZooKeeper's `PemReader` reads PKCS#8 EC keys, and rustls and OpenSSL verify
//! them.
//!
//! Certificates are made with `rcgen` and read with `x509-parser` (both kept by the rustls and
//! rusticata projects); nothing shells out to openssl.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use zkpilot_core::tls::CertFacts;

/// A problem with TLS material; names the file when there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file does not hold what it must.
    #[error("{}: {why}", path.display())]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// Writing a key or trust store failed (names the file).
    #[error(transparent)]
    Files(#[from] crate::FilesError),
    /// Making a key or a certificate failed.
    #[error("issuing a certificate: {0}")]
    Issue(#[from] rcgen::Error),
}

fn bad(path: &Path, why: impl Into<String>) -> TlsError {
    TlsError::Bad { path: path.to_path_buf(), why: why.into() }
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io { path: path.to_path_buf(), source })
}

/// The DER of every `CERTIFICATE` block in a PEM text.
fn certificates(pem: &str, path: &Path) -> Result<Vec<Vec<u8>>, TlsError> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| bad(path, format!("not PEM: {e}")))?;
        if block.label == "CERTIFICATE" {
            out.push(block.contents);
        }
    }
    Ok(out)
}

fn parse<'a>(der: &'a [u8], path: &Path) -> Result<X509Certificate<'a>, TlsError> {
    X509Certificate::from_der(der).map(|(_, c)| c).map_err(|e| bad(path, format!("not an X.509 certificate: {e}")))
}

fn offset(t: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from(t)
}

/// A new CA: its certificate and its key, both PEM. `lifetime` should outlast every rotation
/// plan (ten years is the default of `local up --tls`).
pub fn new_authority(cluster: &str, now: SystemTime, lifetime: Duration) -> Result<(String, String), TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "zkpilot");
    dn.push(DnType::CommonName, format!("zkpilot cluster CA {cluster}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = offset(now - Duration::from_secs(60));
    params.not_after = offset(now + lifetime);
    params.serial_number = Some(serial());
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    for b in &mut bytes {
        *b = fastrand::u8(..);
    }
    // Positive, non-zero (RFC 5280 4.1.2.2).
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

/// The cluster CA as an agent holds it: the trust bundle (every CA clients and servers accept;
/// more than one while a CA is rotated) and the key of the one that signs.
pub struct Authority {
    bundle: String,
    trusted: Vec<Vec<u8>>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").field("trusted", &self.trusted.len()).finish_non_exhaustive()
    }
}

impl Authority {
    /// Reads the bundle and the key. The key must belong to a certificate in the bundle, and the
    /// key file must not be readable by anyone but its owner.
    pub fn load(ca_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let bundle = read(ca_file)?;
        let ders = certificates(&bundle, ca_file)?;
        if ders.is_empty() {
            return Err(bad(ca_file, "no CERTIFICATE in it"));
        }
        check_private(key_file)?;
        let key_pem = read(key_file)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| bad(key_file, format!("not a private key: {e}")))?;
        let public = key.subject_public_key_info();
        let mut trusted = Vec::new();
        let mut signing = None;
        for der in &ders {
            let cert = parse(der, ca_file)?;
            trusted.push(cert.public_key().raw.to_vec());
            if cert.public_key().raw == public.as_slice() {
                signing = Some(der.clone());
            }
        }
        let signing =
            signing.ok_or_else(|| bad(key_file, format!("belongs to no certificate in {}", ca_file.display())))?;
        let issuer = Issuer::from_ca_cert_der(&signing.into(), key)
            .map_err(|e| bad(ca_file, format!("cannot sign with it: {e}")))?;
        Ok(Self { bundle, trusted, issuer })
    }

    /// The trust bundle, PEM.
    pub fn bundle(&self) -> &str {
        &self.bundle
    }

    /// A new key and a certificate for it, signed by the CA: valid from a minute ago (clocks
    /// differ) for `lifetime`, for server and client authentication (a quorum peer is both; the
    /// agent presents its server's certificate on the secure client port). Returns the key
    /// store ZooKeeper reads: the key, then the certificate.
    pub fn issue(&self, names: &CertNames, now: SystemTime, lifetime: Duration) -> Result<String, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "zkpilot");
        dn.push(DnType::CommonName, names.common_name.clone());
        params.distinguished_name = dn;
        params.subject_alt_names = names.sans()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = offset(now - Duration::from_secs(60));
        params.not_after = offset(now + lifetime);
        params.serial_number = Some(serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(format!("{}{}", key.serialize_pem(), cert.pem()))
    }

    /// What the first certificate in a key store says, and whether a CA of the bundle signed it.
    pub fn facts(&self, keystore_pem: &str, path: &Path) -> Result<CertFacts, TlsError> {
        let ders = certificates(keystore_pem, path)?;
        let der = ders.first().ok_or_else(|| bad(path, "no CERTIFICATE in it"))?;
        let cert = parse(der, path)?;
        let signed_by_cluster_ca = self.trusted.iter().any(|spki| {
            x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
                .is_ok_and(|(_, key)| cert.verify_signature(Some(&key)).is_ok())
        });
        let validity = cert.validity();
        Ok(CertFacts {
            not_before_s: u64::try_from(validity.not_before.timestamp()).unwrap_or(0),
            not_after_s: u64::try_from(validity.not_after.timestamp()).unwrap_or(0),
            names: names_of(&cert, path)?,
            signed_by_cluster_ca,
        })
    }
}

fn names_of(cert: &X509Certificate<'_>, path: &Path) -> Result<BTreeSet<String>, TlsError> {
    let mut names = BTreeSet::new();
    let Some(san) = cert.subject_alternative_name().map_err(|e| bad(path, format!("subjectAltName: {e}")))? else {
        return Ok(names);
    };
    for n in &san.value.general_names {
        match n {
            GeneralName::DNSName(d) => {
                names.insert(d.to_string());
            }
            GeneralName::IPAddress(b) => {
                let ip = match b.len() {
                    4 => <[u8; 4]>::try_from(*b).map(IpAddr::from).ok(),
                    16 => <[u8; 16]>::try_from(*b).map(IpAddr::from).ok(),
                    _ => None,
                };
                if let Some(ip) = ip {
                    names.insert(ip.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(names)
}

/// Who a server's certificate is for: the addresses and names its peers and clients reach it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertNames {
    /// Subject common name (informational; peers verify the alternative names).
    pub common_name: String,
    /// IP addresses and DNS names, as text.
    pub names: BTreeSet<String>,
}

impl CertNames {
    fn sans(&self) -> Result<Vec<SanType>, TlsError> {
        self.names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n.clone().try_into().map(SanType::DnsName).map_err(TlsError::Issue),
            })
            .collect()
    }
}

/// Refuses a private key file that its group or others may read or write (what OpenSSH does
/// with an identity file).
pub fn check_private(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Io { path: path.to_path_buf(), source })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(path, format!("mode {mode:o}: a private key must be readable by its owner only (chmod 600)")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use zkpilot_core::tls::{Renewal, certificate_verdict};

    use super::*;

    fn epoch_s(t: SystemTime) -> u64 {
        t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    fn authority(dir: &Path, name: &str) -> Authority {
        let (cert, key) = new_authority(name, SystemTime::now(), Duration::from_secs(86_400)).expect("ca");
        let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
        std::fs::write(&c, cert).expect("write");
        std::fs::write(&k, key).expect("write");
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        Authority::load(&c, &k).expect("load")
    }

    fn names() -> CertNames {
        CertNames {
            common_name: "zk-1".into(),
            names: ["127.0.1.1", "zk-1.zk.test"].iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn an_issued_certificate_names_its_server_and_only_its_own_ca_trusts_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let ca = authority(dir.path(), "one");
        let other = authority(dir.path(), "two");
        let now = SystemTime::now();
        let store = ca.issue(&names(), now, Duration::from_secs(3600)).expect("issue");
        assert!(store.starts_with("-----BEGIN PRIVATE KEY-----"), "{store}");
        let facts = ca.facts(&store, Path::new("store")).expect("facts");
        assert!(facts.signed_by_cluster_ca);
        assert_eq!(facts.names, names().names);
        assert_eq!(facts.not_after_s - facts.not_before_s, 3660);
        assert_eq!(certificate_verdict(Ok(Some(&facts)), &names().names, epoch_s(now)), None);
        let foreign = other.facts(&store, Path::new("store")).expect("facts");
        assert_eq!(certificate_verdict(Ok(Some(&foreign)), &names().names, epoch_s(now)), Some(Renewal::Foreign));
    }

    #[test]
    fn a_key_file_others_can_read_or_that_fits_no_ca_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let (cert, key) = new_authority("x", SystemTime::now(), Duration::from_secs(60)).expect("ca");
        let (_, other_key) = new_authority("y", SystemTime::now(), Duration::from_secs(60)).expect("ca");
        let (c, k) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        std::fs::write(&c, cert).expect("write");
        std::fs::write(&k, key).expect("write");
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = Authority::load(&c, &k).expect_err("readable key").to_string();
        assert!(e.contains("ca.key") && e.contains("644"), "{e}");
        std::fs::write(&k, other_key).expect("write");
        std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let e = Authority::load(&c, &k).expect_err("foreign key").to_string();
        assert!(e.contains("belongs to no certificate"), "{e}");
        std::fs::write(&c, "not pem").expect("write");
        let e = Authority::load(&c, &k).expect_err("no cert").to_string();
        assert!(e.contains("ca.pem"), "{e}");
    }
}
