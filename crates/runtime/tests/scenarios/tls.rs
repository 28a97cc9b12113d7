//! `[tls]` from the agent's side: the server's certificate is issued before its first start,
//! renewed on the pass after a third of its lifetime is left (the agent's clock), and a CA the
//! agent cannot use stops a start but only shows in status while the server runs. The same
//! behaviour on real ZooKeeper: `crates/cli/tests/it/tls.rs`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use zkpilot_core::model::ServerId;
use zkpilot_runtime::AgentError;
use zkpilot_zk::tls::{Authority, new_authority};

use crate::harness::{Node, World, client};

/// 2027-01-15, so certificates have ordinary dates.
const START_MS: u64 = 1_800_000_000_000;

/// Writes a CA into the world's dir; returns the `[tls]` section naming it.
fn tls_section(w: &World, lifetime_s: u64) -> String {
    let (cert, key) =
        new_authority("scenario", UNIX_EPOCH + Duration::from_millis(START_MS), Duration::from_secs(86_400 * 365))
            .expect("ca");
    let (c, k) = (w.dir.path().join("ca.pem"), w.dir.path().join("ca.key"));
    std::fs::write(&c, cert).expect("write");
    std::fs::write(&k, key).expect("write");
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    format!(
        "[tls]\nca_file = \"{}\"\nca_key_file = \"{}\"\ncert_lifetime_s = {lifetime_s}\nalso_valid_for = [\"127.0.0.1\"]\n",
        c.display(),
        k.display()
    )
}

fn keystore(w: &World, n: u32) -> PathBuf {
    w.base(n).join("conf/tls/server.pem")
}

fn not_after(w: &World, n: u32) -> u64 {
    let ca = Authority::load(&w.dir.path().join("ca.pem"), &w.dir.path().join("ca.key")).expect("ca");
    let text = std::fs::read_to_string(keystore(w, n)).expect("key store");
    ca.facts(&text, Path::new("server.pem")).expect("facts").not_after_s
}

fn tls_member(w: &World, lifetime_s: u64) -> Node {
    w.clock.set(START_MS);
    let section = tls_section(w, lifetime_s);
    w.member_with(2, &section)
}

#[tokio::test(start_paused = true)]
async fn a_certificate_is_issued_before_the_first_start_and_renewed_when_a_third_is_left() {
    let w = World::serving(3, 0);
    let mut node = tls_member(&w, 3000);
    node.passes(3).await;
    assert_eq!(node.process.launches().len(), 1, "started once");
    let tls = node.status().tls.clone().expect("tls status");
    assert_eq!((tls.renewals, tls.renewed_because.as_deref()), (1, Some("no certificate yet")), "{tls:?}");
    assert_eq!(tls.names, ["127.0.0.1", "127.0.0.2"], "its address and also_valid_for");
    let mode = std::fs::metadata(keystore(&w, 2)).expect("key store").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let zoo_cfg = std::fs::read_to_string(w.base(2).join("conf/zoo.cfg")).expect("zoo.cfg");
    assert!(zoo_cfg.contains("sslQuorum=true") && zoo_cfg.contains("secureClientPort=2281"), "{zoo_cfg}");
    let first = not_after(&w, 2);

    // Lifetime 3000 s, backdated 60 s: renewed once less than 1020 s are left.
    w.clock.advance(1_900_000);
    node.passes(2).await;
    assert_eq!(node.status().tls.as_ref().map(|t| t.renewals), Some(1), "not due yet");
    w.clock.advance(200_000);
    node.passes(1).await;
    let tls = node.status().tls.clone().expect("tls status");
    assert_eq!(tls.renewals, 2, "{tls:?}");
    assert!(tls.renewed_because.as_deref().is_some_and(|r| r.starts_with("renewal due")), "{tls:?}");
    assert!(not_after(&w, 2) > first);
    assert_eq!(node.process.launches().len(), 1, "renewal does not restart the server");
}

#[tokio::test(start_paused = true)]
async fn a_ca_key_others_can_read_stops_a_start_but_not_a_running_server() {
    let w = World::serving(3, 0);
    let mut node = tls_member(&w, 3000);
    let key = w.dir.path().join("ca.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let e = node.try_pass().await.expect_err("no start without a usable CA");
    assert!(matches!(e, AgentError::Tls(_)), "{e}");
    assert!(e.to_string().contains("ca.key") && e.to_string().contains("644"), "{e}");
    assert!(node.process.launches().is_empty(), "nothing started");

    // With the key fixed the server starts; broken again, it keeps running and status says why.
    let mut node = w.agent_from(w.config(2, &tls_section(&w, 3000)), ServerId(2), &client(2));
    node.passes(3).await;
    assert_eq!(node.process.launches().len(), 1);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    node.passes(2).await;
    let error = node.status().tls.as_ref().and_then(|t| t.error.clone()).expect("error in status");
    assert!(error.contains("owner only"), "{error}");
    assert_eq!(node.process.launches().len(), 1, "still running, not restarted");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    node.passes(1).await;
    assert_eq!(node.status().tls.as_ref().and_then(|t| t.error.clone()), None, "cleared once it works");
}

#[tokio::test(start_paused = true)]
async fn tls_on_a_release_without_certificate_reload_is_refused() {
    let w = World::serving(3, 0);
    w.clock.set(START_MS);
    let mut cfg = w.config(1, &tls_section(&w, 3000));
    cfg.server.install = "/opt/zookeeper-3.8.0".into();
    w.seed_local_state(
        1,
        crate::harness::CLUSTER,
        &zkpilot_core::model::EnsembleConfig { version: 0, ..w.zk.config() },
    );
    let mut node = w.agent_from(cfg, ServerId(1), &client(1));
    let e = node.try_pass().await.expect_err("refused");
    assert!(matches!(e, AgentError::TlsRelease { .. }), "{e}");
    assert!(e.to_string().contains("3.8.1"), "{e}");
    assert!(node.process.launches().is_empty());
}
