//! TLS ensembles (`local up --tls`) on real ZooKeeper: the quorum and the secure client port
//! use certificates each agent issues its server from the group's CA, verified by openssl
//! against that CA; the agents' own sessions (which carry the superuser digest) use the secure
//! port; renewal under a write load loses nothing; a foreign or expired certificate is replaced
//! and an unusable CA shows in status.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use zkpilot_zk::tls::{Authority, CertNames, new_authority};
use zkpilot_zk::{ClientTls, Secret, ZkClient};
use zookeeper_client as zk;

use crate::harness::*;

/// What a test needs to reach a TLS group as a client.
struct TlsClient {
    rt: tokio::runtime::Runtime,
    tls: ClientTls,
    secret: String,
    ca_file: PathBuf,
    /// A client certificate signed by the group's CA, for openssl.
    client_pem: PathBuf,
    _scratch: tempfile::TempDir,
}

impl TlsClient {
    fn new(g: &Group) -> Self {
        let ca_file = g.path().join("tls/ca.pem");
        let ca_key = g.path().join("tls/ca.key");
        let scratch = tempfile::tempdir().expect("tmp");
        let client_pem = scratch.path().join("client.pem");
        write_store(&client_pem, &issue(&ca_file, &ca_key, SystemTime::now(), Duration::from_secs(3600)));
        TlsClient {
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
            tls: ClientTls {
                secure_port: 2281,
                ca_file: ca_file.clone(),
                ca_key_file: ca_key,
                identity: "zkpilot test client".into(),
            },
            secret: g.secret(),
            ca_file,
            client_pem,
            _scratch: scratch,
        }
    }

    /// A session over TLS to the secure ports of `connect`'s hosts, with the superuser digest.
    async fn session(&self, connect: &str) -> zk::Client {
        let client = ZkClient::new(Secret::new(self.secret.clone())).with_tls(self.tls.clone());
        let start = Instant::now();
        loop {
            match client.session(connect).await {
                Ok(c) => return c,
                Err(e) if start.elapsed() < Duration::from_secs(60) => {
                    eprintln!("TLS session to {connect}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("no TLS session to {connect}: {e}"),
            }
        }
    }

    fn write(&self, s: &Value, prefix: &str, n: usize) {
        self.rt.block_on(async {
            let c = self.session(&instance_connect(s)).await;
            let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            match c.create(&format!("/{prefix}"), b"", &opts).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(e) => panic!("create /{prefix}: {e}"),
            }
            for i in 0..n {
                c.create(&format!("/{prefix}/k{i}"), i.to_string().as_bytes(), &opts).await.expect("create over TLS");
            }
        });
    }

    fn missing(&self, s: &Value, prefix: &str, n: usize) -> usize {
        self.rt.block_on(async { count_missing(&self.session(&instance_connect(s)).await, prefix, n).await })
    }

    /// Whether a TLS handshake with `identity` (cert+key PEM, or none) to `addr` gives a session.
    fn session_with(&self, addr: &str, identity: Option<&str>) -> Result<(), String> {
        self.rt.block_on(async {
            let ca = std::fs::read_to_string(&self.ca_file).expect("ca");
            let mut options = zk::TlsOptions::new().with_pem_ca(&ca).expect("ca pem");
            if let Some(store) = identity {
                options = options.with_pem_identity(store, store).expect("identity pem");
            }
            let connecting = zk::Client::connector()
                .with_tls(options)
                .with_fail_eagerly()
                .with_connection_timeout(Duration::from_secs(3))
                .with_session_timeout(Duration::from_secs(6))
                .secure_connect(addr);
            match tokio::time::timeout(Duration::from_secs(15), connecting).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".into()),
            }
        })
    }

    /// `openssl s_client -verify_return_error` against `addr` with the group's CA, checking the
    /// certificate names `ip`: the verify result line and the served certificate's serial.
    fn openssl(&self, addr: &str, ip: &str) -> (bool, String) {
        let o = Command::new("timeout")
            .args(["20", "openssl", "s_client", "-connect", addr, "-verify_return_error", "-verify_ip", ip])
            .arg("-CAfile")
            .arg(&self.ca_file)
            .arg("-cert")
            .arg(&self.client_pem)
            .arg("-key")
            .arg(&self.client_pem)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        (out.contains("Verify return code: 0 (ok)"), out)
    }
}

fn issue(ca_file: &Path, ca_key: &Path, now: SystemTime, lifetime: Duration) -> String {
    let ca = Authority::load(ca_file, ca_key).expect("the group's CA");
    let names = CertNames { common_name: "test client".into(), names: Default::default() };
    ca.issue(&names, now, lifetime).expect("issue")
}

fn write_store(path: &Path, pem: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, pem).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// A key store from a CA that is not the group's.
fn foreign_store(dir: &Path) -> String {
    let (cert, key) = new_authority("foreign", SystemTime::now(), Duration::from_secs(86_400)).expect("ca");
    let (c, k) = (dir.join("foreign-ca.pem"), dir.join("foreign-ca.key"));
    std::fs::write(&c, cert).expect("write");
    write_store(&k, &key);
    issue(&c, &k, SystemTime::now(), Duration::from_secs(3600))
}

fn addresses(s: &Value) -> Vec<String> {
    instance_connect(s).split(',').map(|hp| hp.rsplit_once(':').expect("host:port").0.to_string()).collect()
}

/// Every member's secure port and election port verify with the group's CA and name the
/// member's address; a plaintext client, a TLS client without a certificate and one with a
/// foreign certificate are refused on the secure port.
fn check_every_member(t: &TlsClient, s: &Value) {
    for ip in addresses(s) {
        for port in [2281, 3888] {
            let (ok, out) = t.openssl(&format!("{ip}:{port}"), &ip);
            assert!(ok, "openssl against {ip}:{port}:\n{out}");
        }
    }
    let ip = &addresses(s)[0];
    let secure = format!("{ip}:2281");
    let plain = t.rt.block_on(async {
        let c = zk::Client::connector()
            .with_fail_eagerly()
            .with_connection_timeout(Duration::from_secs(3))
            .with_session_timeout(Duration::from_secs(6))
            .connect(&secure);
        tokio::time::timeout(Duration::from_secs(15), c).await
    });
    assert!(!matches!(plain, Ok(Ok(_))), "a plaintext client got a session on the secure port {secure}");
    let no_cert = t.session_with(&secure, None);
    assert!(no_cert.is_err(), "a TLS client without a certificate got a session on {secure}");
    let scratch = tempfile::tempdir().expect("tmp");
    let foreign = t.session_with(&secure, Some(&foreign_store(scratch.path())));
    assert!(foreign.is_err(), "a client with a foreign certificate got a session on {secure}");
    let own = std::fs::read_to_string(&t.client_pem).expect("client pem");
    assert_eq!(t.session_with(&secure, Some(&own)), Ok(()), "a client with the group's certificate is served");
}

/// The agents' TCP connections to a client port (`port`), by socket inode, from /proc (no `ss`
/// needed): established, with the remote port `port`.
fn agent_connections(g: &Group, port: u16) -> std::collections::BTreeSet<u64> {
    let agents: Vec<u32> = g
        .processes()
        .into_iter()
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).split('\0').any(|a| a == "agent")
        })
        .collect();
    assert!(!agents.is_empty(), "no agent processes found");
    let mut inodes = std::collections::BTreeSet::new();
    for pid in agents {
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten() {
            let link = std::fs::read_link(fd.path()).unwrap_or_default().to_string_lossy().into_owned();
            if let Some(n) = link.strip_prefix("socket:[").and_then(|l| l.strip_suffix(']')) {
                inodes.insert(n.parse::<u64>().unwrap_or(0));
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let remote_port = u16::from_str_radix(f.get(2)?.rsplit_once(':')?.1, 16).ok()?;
            let inode = f.get(9)?.parse::<u64>().ok()?;
            (f.get(3) == Some(&"01") && remote_port == port && inodes.contains(&inode)).then_some(inode)
        })
        .collect()
}

/// The agents' sessions (which carry the superuser digest) are on the secure port; on the
/// plaintext port they only probe (`srvr`, `mntr`: a connection lives for milliseconds), so no
/// connection there outlives two passes of every agent (each publishes its status once a pass).
fn agent_sessions_are_on_the_secure_port(g: &Group) {
    let start = Instant::now();
    while agent_connections(g, 2281).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "no agent session on a secure port");
        std::thread::sleep(Duration::from_millis(250));
    }
    let first = agent_connections(g, 2181);
    let published =
        |g: &Group| -> Vec<u64> { agent_statuses(g).iter().map(|a| a["updated_ms"].as_u64().unwrap_or(0)).collect() };
    let before = published(g);
    let mut passes = 0;
    while passes < 2 {
        assert!(start.elapsed() < Duration::from_secs(120), "agents stopped publishing their status");
        std::thread::sleep(Duration::from_millis(250));
        let now = published(g);
        if now.len() == before.len() && now.iter().zip(&before).all(|(n, b)| n > b) {
            passes += 1;
        }
    }
    let lasting: Vec<u64> = agent_connections(g, 2181).intersection(&first).copied().collect();
    assert!(lasting.is_empty(), "agents hold connections to the plaintext client port: {lasting:?}");
}

/// Three servers with `--tls`, the `options` and `extra` (an install).
fn tls_group(net: &str, options: &[&str], extra: &[&str]) -> Group {
    let args: Vec<&str> = ["--tls"].iter().chain(options).chain(extra).copied().collect();
    Group::up_with(3, net, &args)
}

/// Runs a TLS test on the cached Apache 3.8.6.
fn on_3_8_6(net: &str, test: fn(&str, &[&str])) {
    let home = zkpilot_zk::install::cached_home("3.8.6");
    test(net, &["--zookeeper", home.to_str().expect("utf-8")]);
}

/// Forms, scales 3→5→3, heals after kill -9 of the leader and recovers from quorum loss, all
/// with TLS on, and every key written over TLS survives.
fn lifecycle(net: &str, extra: &[&str]) {
    let g = tls_group(net, &[], extra);
    let t = TlsClient::new(&g);
    let s = g.wait_converged();
    let secure = s["secure_connect_string"].as_str().expect("secure_connect_string");
    assert_eq!(secure.split(',').count(), 3, "{s:#}");
    assert!(secure.split(',').all(|hp| hp.ends_with(":2281")), "{secure}");
    let ca = std::fs::read_to_string(s["ca_file"].as_str().expect("ca_file")).expect("ca file");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let inst = std::fs::read_dir(g.path().join("instances")).expect("instances").flatten().next().expect("one");
    let cfg = std::fs::read_to_string(inst.path().join("zk/conf/zoo.cfg")).expect("zoo.cfg");
    for key in ["sslQuorum=true", "secureClientPort=2281", "ssl.quorum.keyStore.type=PEM", "client.certReload=true"] {
        assert!(cfg.contains(key), "{key} in zoo.cfg:\n{cfg}");
    }
    let store = inst.path().join("zk/conf/tls/server.pem");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&store).expect("key store").permissions());
    assert_eq!(mode & 0o777, 0o600, "{}", store.display());
    for a in agent_statuses(&g) {
        assert!(a["tls"]["not_after_s"].is_u64() && a["tls"]["error"].is_null(), "{a:#}");
    }
    check_every_member(&t, &s);
    agent_sessions_are_on_the_secure_port(&g);
    t.write(&s, "tls", 50);

    let s = g.scale(5);
    assert_eq!((members(&s).len(), voters(&s)), (5, 3), "{s:#}");
    assert_eq!(t.missing(&s, "tls", 50), 0);
    let s = g.scale(3);
    assert_eq!((members(&s).len(), voters(&s)), (3, 3), "{s:#}");
    assert_eq!(t.missing(&s, "tls", 50), 0);

    let leader = leaders(&s)[0];
    g.kill(leader, false);
    let s = g.wait_for("leader replaced", |s| s["converged"] == true && !ids(s).contains(&leader));
    assert_eq!(t.missing(&s, "tls", 50), 0);
    t.write(&s, "tls-healed", 20);

    let survivor = follower(&s);
    let victims: Vec<u64> = ids(&s).into_iter().filter(|id| *id != survivor).collect();
    for v in &victims {
        g.kill(*v, false);
    }
    let s = g.wait_for("rebuilt from the survivor", |s| {
        s["converged"] == true && voters(s) == 3 && ids(s).contains(&survivor)
    });
    assert_eq!(t.missing(&s, "tls", 50), 0);
    assert_eq!(t.missing(&s, "tls-healed", 20), 0);
    check_every_member(&t, &s);
}

#[test]
fn tls_ensemble_forms_scales_heals_and_recovers_on_3_9_5() {
    lifecycle("127.135.1", &[]);
}

#[test]
fn tls_ensemble_forms_scales_heals_and_recovers_on_3_8_6() {
    on_3_8_6("127.135.2", lifecycle);
}

/// Certificates that live 90 s are renewed every 60 s by every agent while a client writes over
/// one TLS session: every acknowledged write is there, the session never expires, and each
/// member serves a new certificate (another serial) without a restart.
#[test]
fn certificates_renew_under_load_without_losing_a_write_or_a_session_on_3_9_5() {
    renewal_under_load("127.135.3", &[]);
}

/// The same on 3.8.6, whose secure client port keeps one TLS context until `client.certReload`
/// resets it (3.9 builds one per connection).
#[test]
fn certificates_renew_under_load_without_losing_a_write_or_a_session_on_3_8_6() {
    on_3_8_6("127.135.6", renewal_under_load);
}

fn renewal_under_load(net: &str, extra: &[&str]) {
    let g = tls_group(net, &["--cert-lifetime", "90"], extra);
    let t = TlsClient::new(&g);
    let s = g.wait_converged();
    // The certificate each member serves on its secure client port and its election port (the
    // quorum's TLS context is built once, so only `sslQuorumReloadCertFiles` makes it change).
    let served = |ip: &str, port: u16| -> String {
        let (ok, out) = t.openssl(&format!("{ip}:{port}"), ip);
        assert!(ok, "{out}");
        let pem: String = out
            .lines()
            .skip_while(|l| !l.contains("BEGIN CERTIFICATE"))
            .take_while(|l| !l.contains("END CERTIFICATE"))
            .collect::<Vec<_>>()
            .join("\n");
        pem
    };
    let ports = |s: &Value| -> Vec<(String, u16)> {
        addresses(s).into_iter().flat_map(|ip| [(ip.clone(), 2281), (ip, 3888)]).collect()
    };
    let before: Vec<String> = ports(&s).iter().map(|(ip, port)| served(ip, *port)).collect();
    let pids = zk_pids(&g, &s);
    let connect = instance_connect(&s);
    let (acked, failed, expired) = t.rt.block_on(async {
        let c = t.session(&connect).await;
        let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        c.create("/renew", b"", &opts).await.expect("create /renew");
        let (mut acked, mut failed, mut expired) = (Vec::new(), 0u32, 0u32);
        let start = Instant::now();
        // One write every 20 ms: a steady load, paced by an interval rather than waits.
        let mut pace = tokio::time::interval(Duration::from_millis(20));
        let mut i = 0u64;
        while start.elapsed() < Duration::from_secs(150) {
            pace.tick().await;
            match c.create(&format!("/renew/k{i}"), b"x", &opts).await {
                Ok(_) => acked.push(i),
                Err(zk::Error::SessionExpired) => expired += 1,
                Err(e) => {
                    eprintln!("write {i}: {e}");
                    failed += 1;
                }
            }
            i += 1;
        }
        (acked, failed, expired)
    });
    eprintln!("renewal under load: {} acknowledged, {failed} failed, {expired} session expirations", acked.len());
    assert_eq!(expired, 0, "the writer's session expired");
    let s = g.wait_converged();
    assert_eq!(zk_pids(&g, &s), pids, "no server restarted");
    let missing = t.rt.block_on(async {
        let c = t.session(&instance_connect(&s)).await;
        c.sync("/renew").await.expect("sync");
        let mut missing = Vec::new();
        for i in &acked {
            if c.check_stat(&format!("/renew/k{i}")).await.ok().flatten().is_none() {
                missing.push(*i);
            }
        }
        missing
    });
    assert!(missing.is_empty(), "acknowledged writes lost across renewals: {missing:?}");
    for a in agent_statuses(&g) {
        assert!(a["tls"]["renewals"].as_u64().unwrap_or(0) >= 3, "issued, then renewed at least twice: {a:#}");
    }
    let after: Vec<String> = ports(&s).iter().map(|(ip, port)| served(ip, *port)).collect();
    for ((b, a), (ip, port)) in before.iter().zip(&after).zip(ports(&s)) {
        assert_ne!(b, a, "{ip}:{port} still serves the certificate it started with");
    }
}

/// A key store replaced by a foreign or an expired certificate is issued anew at the next pass
/// (and the reason shown); a CA key others can read stops renewal with the reason in status,
/// and renewal resumes once it is fixed.
#[test]
fn foreign_and_expired_certificates_are_replaced_and_a_bad_ca_key_is_reported_on_3_9_5() {
    bad_certificates("127.135.4", &[]);
}

#[test]
fn foreign_and_expired_certificates_are_replaced_and_a_bad_ca_key_is_reported_on_3_8_6() {
    on_3_8_6("127.135.7", bad_certificates);
}

fn bad_certificates(net: &str, extra: &[&str]) {
    use std::os::unix::fs::PermissionsExt;
    let g = tls_group(net, &[], extra);
    let t = TlsClient::new(&g);
    let s = g.wait_converged();
    let victim = instance_of(&s, follower(&s));
    let store = g.path().join(format!("instances/{victim}/zk/conf/tls/server.pem"));
    let status_of = |g: &Group| read_json(g.path().join(format!("status/{victim}.json")));
    let scratch = tempfile::tempdir().expect("tmp");
    let cases = [
        ("not signed by the cluster CA", foreign_store(scratch.path())),
        (
            "has expired",
            issue(
                &g.path().join("tls/ca.pem"),
                &g.path().join("tls/ca.key"),
                SystemTime::now() - Duration::from_secs(7200),
                Duration::from_secs(3600),
            ),
        ),
    ];
    for (why, pem) in cases {
        let renewals = status_of(&g)["tls"]["renewals"].as_u64().expect("renewals");
        std::fs::write(&store, pem).expect("plant");
        let start = Instant::now();
        loop {
            let a = status_of(&g);
            if a["tls"]["renewals"].as_u64() > Some(renewals) {
                assert!(a["tls"]["renewed_because"].as_str().is_some_and(|r| r.contains(why)), "{why}: {a:#}");
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(120), "not renewed after planting ({why}): {a:#}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let s = g.wait_converged();
    check_every_member(&t, &s);
    let key = g.path().join("tls/ca.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::write(&store, foreign_store(scratch.path())).expect("plant");
    g.wait_for("the bad CA key reported", |_| {
        status_of(&g)["tls"]["error"].as_str().is_some_and(|e| e.contains("ca.key") && e.contains("owner only"))
    });
    let s = g.status();
    assert!(
        s["tls_errors"].as_array().is_some_and(|e| e.iter().any(|e| e.as_str().is_some_and(|e| e.contains(&victim)))),
        "local status names the agent that cannot renew: {s:#}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    g.wait_for("renewal resumed", |_| {
        let a = status_of(&g);
        a["tls"]["error"].is_null() && a["tls"]["renewed_because"].as_str().is_some_and(|r| r.contains("cluster CA"))
    });
    let s = g.wait_converged();
    assert!(s["tls_errors"].as_array().is_none_or(|e| e.is_empty()), "{s:#}");
}

/// `--tls` on a release without client certificate reload is refused before anything starts.
#[test]
fn tls_on_a_release_without_certificate_reload_is_refused() {
    let g = Group::empty();
    let o = g.run(&["local", "up", "--size", "3", "--net", "127.135.5", "--tls", "--zookeeper", "/usr/share/java"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("3.8.1"), "{}", text(&o));
    assert!(g.processes().is_empty(), "nothing started");
    assert!(!g.path().join("group.json").exists(), "nothing written");
}
