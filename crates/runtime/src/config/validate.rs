//! Checks across fields that serde cannot express, and the `[api]` token rule. Every error names
//! the file and the dotted field.

use std::net::Ipv4Addr;
use std::path::Path;

use super::{AgentConfig, ApiSection, BackendSection, ConfigError, IdentityMode};

/// Shortest bearer token `[api] token_file` may hold.
const MIN_TOKEN_LEN: usize = 16;

/// True if `s` is a DNS name that leaves room for the `zk-<id>.` prefix.
pub fn is_dns_name(s: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    s.len() <= 240 && s.split('.').all(label_ok)
}

impl AgentConfig {
    /// Checks across fields that serde cannot express; the error names the dotted field.
    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid =
            |field: &str, why: String| ConfigError::Invalid { path: path.to_path_buf(), field: field.into(), why };
        let ip: Ipv4Addr =
            self.instance.address.parse().map_err(|_| {
                invalid("instance.address", format!("{:?} is not an IPv4 address", self.instance.address))
            })?;
        if matches!(self.backend, BackendSection::Local { .. }) && !ip.is_loopback() {
            return Err(invalid(
                "instance.address",
                format!("{ip} is not loopback; the local backend uses 127.0.0.0/8 only"),
            ));
        }
        if self.instance.id.0.is_empty() {
            return Err(invalid("instance.id", "empty".into()));
        }
        self.policy.validate().map_err(|e| invalid(&format!("policy.{}", e.field), e.why))?;
        if let BackendSection::Aws(aws) = &self.backend {
            if !aws.prefix.is_empty() && !aws.prefix.ends_with('/') {
                return Err(invalid("backend.prefix", format!("{:?} must end with '/'", aws.prefix)));
            }
            if aws.bucket.is_empty() || aws.group.is_empty() {
                return Err(invalid("backend", "aws needs `group` and `bucket`".into()));
            }
            if self.cluster.identity == IdentityMode::Slot && aws.slot_cluster.is_none() {
                return Err(invalid(
                    "backend.slot_cluster",
                    "cluster.identity = \"slot\" needs the zkpilot:cluster tag value of the slot resources".into(),
                ));
            }
            if aws.slot_mount.as_ref().is_some_and(|m| !m.is_absolute()) {
                return Err(invalid("backend.slot_mount", "must be an absolute path".into()));
            }
        }
        if let Some(names) = &self.names {
            if !is_dns_name(&names.domain) {
                return Err(invalid("names.domain", format!("{:?} is not a DNS name", names.domain)));
            }
            match (&names.hosts_file, &names.route53_zone) {
                (Some(f), None) if !f.is_absolute() => {
                    return Err(invalid("names.hosts_file", "must be an absolute path".into()));
                }
                (Some(_), None) => {}
                (None, Some(_)) if matches!(self.backend, BackendSection::Aws(_)) => {}
                (None, Some(_)) => {
                    return Err(invalid("names.route53_zone", "Route53 records need the aws backend".into()));
                }
                _ => return Err(invalid("names", "set exactly one of `hosts_file` and `route53_zone`".into())),
            }
        }
        if !self.server.base_dir.is_absolute() {
            return Err(invalid(
                "server.base_dir",
                "must be an absolute path (ZooKeeper resolves dynamicConfigFile against it)".into(),
            ));
        }
        if self.server.heap_mb < 32 {
            return Err(invalid(
                "server.heap_mb",
                format!("{} MiB is below the 32 MiB minimum heap", self.server.heap_mb),
            ));
        }
        let ports =
            [self.server.client_port, self.server.quorum_port, self.server.election_port, self.server.admin_port];
        if ports.contains(&0) || (1..ports.len()).any(|i| ports[..i].contains(&ports[i])) {
            return Err(invalid("server.*_port", format!("ports must be distinct and non-zero, got {ports:?}")));
        }
        if let Some(t) = &self.tls {
            if !t.quorum && !t.client {
                return Err(invalid("tls", "turns neither `quorum` nor `client` on: leave the section out".into()));
            }
            if t.client && (t.secure_client_port == 0 || ports.contains(&t.secure_client_port)) {
                return Err(invalid(
                    "tls.secure_client_port",
                    format!("{} must be non-zero and differ from the server's ports", t.secure_client_port),
                ));
            }
            for (field, f) in [("tls.ca_file", &t.ca_file), ("tls.ca_key_file", &t.ca_key_file)] {
                if !f.is_absolute() {
                    return Err(invalid(field, "must be an absolute path".into()));
                }
            }
            if t.cert_lifetime_s < 60 {
                return Err(invalid("tls.cert_lifetime_s", format!("{} s is under a minute", t.cert_lifetime_s)));
            }
        }
        if self.agent.pass_interval_ms == 0 || self.agent.lease_ttl_ms < 2 * self.agent.pass_interval_ms {
            return Err(invalid("agent.lease_ttl_ms", "must be at least two pass intervals".into()));
        }
        Ok(())
    }
}

impl ApiSection {
    /// The bearer token for mutating calls: the first line of `token_file`, trimmed; `None`
    /// without a `token_file`. An unreadable file or a token under 16 characters is refused.
    pub fn read_token(&self) -> Result<Option<String>, ConfigError> {
        let Some(path) = &self.token_file else { return Ok(None) };
        let refused = |why: String| ConfigError::TokenFile { path: path.clone(), why };
        let text = std::fs::read_to_string(path).map_err(|e| refused(e.to_string()))?;
        let token = text.lines().next().unwrap_or_default().trim().to_string();
        if token.len() < MIN_TOKEN_LEN {
            return Err(refused(format!("the token must be at least {MIN_TOKEN_LEN} characters")));
        }
        Ok(Some(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GOOD;

    #[test]
    fn errors_name_file_and_field() {
        let cases = [
            (GOOD.replace("zone = \"local-a\"", "zone = \"local-a\"\ncolour = 1"), "colour"),
            (GOOD.replace("127.0.1.1", "10.0.0.1"), "instance.address"),
            (GOOD.replace("127.0.1.1", "banana"), "instance.address"),
            (format!("{GOOD}\n[policy]\ntarget_voters = 4\n"), "policy.target_voters"),
            (GOOD.replace("/tmp/x/zk", "relative/zk"), "server.base_dir"),
            (GOOD.replace("[cluster]\nsecret_file = \"/tmp/x/secret\"", ""), "cluster"),
            (format!("{GOOD}\n[names]\ndomain = \"zk.test\"\n"), "names"),
            (format!("{GOOD}\n[names]\ndomain = \"bad_domain\"\nhosts_file = \"/etc/hosts\"\n"), "names.domain"),
            (format!("{GOOD}\n[names]\ndomain = \"zk.test\"\nroute53_zone = \"Z1\"\n"), "names.route53_zone"),
            (format!("{GOOD}\n[names]\ndomain = \"zk.test\"\nhosts_file = \"hosts\"\n"), "names.hosts_file"),
            (
                GOOD.replace(
                    "secret_file = \"/tmp/x/secret\"",
                    "secret_file = \"/tmp/x/secret\"\nidentity = \"sticky\"",
                ),
                "identity",
            ),
            (format!("{GOOD}\n[tls]\nca_file = \"/c\"\nca_key_file = \"/k\"\nquorum = false\nclient = false\n"), "tls"),
            (
                format!("{GOOD}\n[tls]\nca_file = \"/c\"\nca_key_file = \"/k\"\nsecure_client_port = 2181\n"),
                "tls.secure_client_port",
            ),
            (format!("{GOOD}\n[tls]\nca_file = \"c.pem\"\nca_key_file = \"/k\"\n"), "tls.ca_file"),
            (
                format!("{GOOD}\n[tls]\nca_file = \"/c\"\nca_key_file = \"/k\"\ncert_lifetime_s = 5\n"),
                "tls.cert_lifetime_s",
            ),
            (
                format!("{GOOD}\n[tls]\nca_file = \"/c\"\nca_key_file = \"/k\"\nclient_auth = \"maybe\"\n"),
                "client_auth",
            ),
        ];
        for (text, needle) in cases {
            let err = AgentConfig::parse(&text, Path::new("/etc/zkpilot/agent.toml")).expect_err(needle).to_string();
            assert!(err.starts_with("/etc/zkpilot/agent.toml"), "{err}");
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn the_api_token_file_is_named_when_unusable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        let api = ApiSection { listen: "127.0.0.1:9181".parse().expect("addr"), token_file: Some(file.clone()) };
        let err = api.read_token().expect_err("missing file").to_string();
        assert!(err.starts_with(&format!("[api] token_file {}: ", file.display())), "{err}");
        std::fs::write(&file, "short\n").expect("write");
        let err = api.read_token().expect_err("short token").to_string();
        assert!(err.ends_with("the token must be at least 16 characters"), "{err}");
        std::fs::write(&file, "  0123456789abcdef  \nsecond line\n").expect("write");
        assert_eq!(api.read_token().expect("usable").as_deref(), Some("0123456789abcdef"));
        assert_eq!(ApiSection { token_file: None, ..api }.read_token().expect("none"), None);
    }
}
