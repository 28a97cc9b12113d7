//! Rolling upgrades from the agent's side: the install a start uses
//! (`zkpilot_core::version::choose_install`), recorded once the server serves on it.

use std::path::PathBuf;

use zkpilot_core::model::{EnsembleConfig, ServerId};
use zkpilot_runtime::api::Change;

use crate::harness::{CLUSTER, Node, World, client};

const OLD: &str = "/opt/zookeeper-3.8.6";
const NEW: &str = "/opt/zookeeper-3.9.5";

/// Server 1's agent with `[server] install = OLD`.
fn on_old_config(w: &World) -> Node {
    let mut cfg = w.config(1, "");
    cfg.server.install = OLD.into();
    w.agent_from(cfg, ServerId(1), &client(1))
}

fn last_install(node: &Node) -> Option<String> {
    node.process.launches().last().and_then(|l| l.install.version.clone())
}

/// An upgrade asked through the API takes effect on the next start and sticks: an agent restarted
/// on a config that still names the old install keeps the new one; asking for the old one again
/// is refused, and an install that cannot be used leaves the server on its current one.
#[tokio::test(start_paused = true)]
async fn an_upgrade_sticks_and_an_old_config_or_request_never_undoes_it() {
    let w = World::serving(3, 0);
    w.seed_local_state(1, CLUSTER, &EnsembleConfig { version: 0, ..w.zk.config() });
    let mut node = on_old_config(&w);
    node.passes(3).await;
    assert_eq!(last_install(&node).as_deref(), Some("3.8.6"), "first start: the config's install");

    node.agent.control().push(Change::RestartServer(Some(PathBuf::from(NEW))));
    node.passes(3).await;
    assert_eq!(last_install(&node).as_deref(), Some("3.9.5"), "restarted on the new install");
    assert_eq!(node.status().release.as_ref().and_then(|r| r.version.as_deref()), Some("3.9.5"));
    let recorded = std::fs::read_to_string(w.base(1).join("zkpilot-release.json")).expect("recorded once serving");
    assert!(recorded.contains(NEW), "{recorded}");

    // The agent restarts; its config still says 3.8.6.
    let node = node;
    drop(node.agent);
    let mut process = node.process;
    zkpilot_core::ports::ServerProcess::stop(&mut process).await.expect("stop");
    let mut node = on_old_config(&w);
    node.passes(3).await;
    assert_eq!(last_install(&node).as_deref(), Some("3.9.5"), "an old config never downgrades the server");

    // A downgrade asked for is refused: the server comes back on what it runs.
    node.agent.control().push(Change::RestartServer(Some(PathBuf::from(OLD))));
    node.passes(3).await;
    let versions: Vec<Option<String>> = node.process.launches().iter().map(|l| l.install.version.clone()).collect();
    assert_eq!(versions, vec![Some("3.9.5".into()), Some("3.9.5".into())], "restarted, not downgraded");

    // An install that cannot be used: restarted on the current one, the failure logged.
    node.agent.control().push(Change::RestartServer(Some(PathBuf::from("/opt/zookeeper-broken"))));
    node.passes(3).await;
    assert_eq!(node.process.launches().len(), 3);
    assert_eq!(last_install(&node).as_deref(), Some("3.9.5"));
}

/// A restart asked through the API applies the shared base config as it is now, so a rolling
/// restart is how a change to it reaches every server; a base config that would be refused fails
/// the restart with its line and key, and the server keeps running untouched.
#[tokio::test(start_paused = true)]
async fn a_restart_applies_the_base_config_and_a_refused_one_leaves_the_server_running() {
    let w = World::serving(3, 0);
    let mut node = w.member(1);
    node.passes(2).await;
    let zoo_cfg = || std::fs::read_to_string(w.base(1).join("conf/zoo.cfg")).expect("zoo.cfg");
    assert!(!zoo_cfg().contains("maxClientCnxns"));

    w.backend.with_state(|s| s.base_config = Some("maxClientCnxns=77\n".into()));
    node.agent.control().push(Change::RestartServer(None));
    node.passes(2).await;
    assert!(zoo_cfg().contains("maxClientCnxns=77"), "{}", zoo_cfg());
    assert_eq!(node.process.launches().len(), 2);

    w.backend.with_state(|s| s.base_config = Some("maxClientCnxns=77\nskip\\ACL=yes\n".into()));
    let before = zoo_cfg();
    node.agent.control().push(Change::RestartServer(None));
    node.passes(2).await;
    assert_eq!(node.process.launches().len(), 2, "not restarted");
    assert!(node.process.running());
    assert_eq!(zoo_cfg(), before);
    let failed = node.outcomes("operator: restart server");
    assert!(failed.last().is_some_and(|o| o.contains(":2: skipACL is protected")), "{failed:?}");
}
