//! When a server's TLS certificate must be issued anew.
//!
//! Each agent signs its own server's certificate with the cluster CA (zkpilot's `tls` module in
//! `zkpilot-zk`) and ZooKeeper reloads the files when they change (`sslQuorumReloadCertFiles`,
//! `client.certReload`). What is decided here is only *whether* the certificate on disk is still
//! good: the rules are small and named so a status line can say which one fired.

use std::collections::BTreeSet;
use std::fmt;

/// What the agent read off the certificate on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// Start of validity, seconds since the epoch.
    pub not_before_s: u64,
    /// End of validity, seconds since the epoch.
    pub not_after_s: u64,
    /// Its subject alternative names (IP addresses and DNS names, as text).
    pub names: BTreeSet<String>,
    /// Its signature verifies with the key of a CA in the cluster's trust bundle.
    pub signed_by_cluster_ca: bool,
}

/// Why a certificate is issued anew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewal {
    /// There is none (first boot, or TLS just turned on).
    Missing,
    /// The file cannot be read or parsed.
    Unreadable(String),
    /// It was not signed by the cluster's CA (copied from elsewhere, or the CA was rotated).
    Foreign,
    /// Its validity has ended.
    Expired,
    /// Its validity has not begun (the clock moved back, or it was made elsewhere).
    NotYetValid,
    /// It does not name exactly the addresses and names the server is reached by.
    NamesChanged,
    /// Less than a third of its lifetime is left ([`renewal_due`]).
    Due {
        /// Seconds of validity left.
        remaining_s: u64,
    },
}

impl fmt::Display for Renewal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("no certificate yet"),
            Self::Unreadable(why) => write!(f, "the certificate on disk cannot be read: {why}"),
            Self::Foreign => f.write_str("the certificate on disk is not signed by the cluster CA"),
            Self::Expired => f.write_str("the certificate on disk has expired"),
            Self::NotYetValid => f.write_str("the certificate on disk is not valid yet"),
            Self::NamesChanged => f.write_str("the certificate on disk names other addresses"),
            Self::Due { remaining_s } => write!(f, "renewal due ({remaining_s} s of validity left)"),
        }
    }
}

/// The certificate on disk may stay, or must be replaced and why. `facts` is `Err` with the
/// reason when the file exists but cannot be read; `None` when there is none.
pub fn certificate_verdict(
    facts: Result<Option<&CertFacts>, String>,
    wanted_names: &BTreeSet<String>,
    now_s: u64,
) -> Option<Renewal> {
    let facts = match facts {
        Err(why) => return Some(Renewal::Unreadable(why)),
        Ok(None) => return Some(Renewal::Missing),
        Ok(Some(f)) => f,
    };
    if !facts.signed_by_cluster_ca {
        return Some(Renewal::Foreign);
    }
    if now_s >= facts.not_after_s {
        return Some(Renewal::Expired);
    }
    if now_s < facts.not_before_s {
        return Some(Renewal::NotYetValid);
    }
    if &facts.names != wanted_names {
        return Some(Renewal::NamesChanged);
    }
    renewal_due(facts, now_s).then_some(Renewal::Due { remaining_s: facts.not_after_s - now_s })
}

/// Renew once less than a third of the lifetime is left: a 30-day certificate is renewed after
/// 20 days, which leaves ten days for an agent that is down or cut off from its CA to come back
/// before its server's certificate expires (the rule cert-manager applies by default).
pub fn renewal_due(facts: &CertFacts, now_s: u64) -> bool {
    let lifetime = facts.not_after_s.saturating_sub(facts.not_before_s);
    let remaining = facts.not_after_s.saturating_sub(now_s);
    remaining.saturating_mul(3) < lifetime
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn cert(not_before_s: u64, not_after_s: u64) -> CertFacts {
        CertFacts { not_before_s, not_after_s, names: names(&["127.0.1.1"]), signed_by_cluster_ca: true }
    }

    #[test]
    fn a_fresh_certificate_stays_until_two_thirds_of_its_life() {
        let c = cert(1000, 4000);
        let want = names(&["127.0.1.1"]);
        assert_eq!(certificate_verdict(Ok(Some(&c)), &want, 1000), None);
        assert_eq!(certificate_verdict(Ok(Some(&c)), &want, 2999), None);
        assert_eq!(certificate_verdict(Ok(Some(&c)), &want, 3001), Some(Renewal::Due { remaining_s: 999 }));
        assert_eq!(certificate_verdict(Ok(Some(&c)), &want, 4000), Some(Renewal::Expired));
        assert_eq!(certificate_verdict(Ok(Some(&c)), &want, 999), Some(Renewal::NotYetValid));
    }

    #[test]
    fn foreign_missing_unreadable_and_renamed_certificates_are_replaced() {
        let want = names(&["127.0.1.1"]);
        let foreign = CertFacts { signed_by_cluster_ca: false, ..cert(1000, 4000) };
        assert_eq!(certificate_verdict(Ok(Some(&foreign)), &want, 1500), Some(Renewal::Foreign));
        assert_eq!(certificate_verdict(Ok(None), &want, 1500), Some(Renewal::Missing));
        assert!(matches!(certificate_verdict(Err("bad pem".into()), &want, 1500), Some(Renewal::Unreadable(_))));
        let other = names(&["127.0.1.2"]);
        assert_eq!(certificate_verdict(Ok(Some(&cert(1000, 4000))), &other, 1500), Some(Renewal::NamesChanged));
    }
}
