//! The fixed-membership strategy (was "static membership") against real ZooKeeper
//! (`reconfigEnabled=false`): a server is replaced by rewriting every list and restarting, under a
//! write load, and no acknowledged write is lost.

use serde_json::Value;

use crate::harness::*;

fn replace(net: &str, which: &str, strategy: &str) -> (Value, tempfile::TempDir) {
    let dir = tempfile::Builder::new().prefix("zkpilot-it-fixed-").tempdir().expect("tempdir");
    let d = dir.path().to_string_lossy().to_string();
    let o = lab(&["fixed", "replace", "--dir", &d, "--net", net, "--replace", which, "--strategy", strategy, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    (serde_json::from_slice(&o.stdout).expect("JSON report"), dir)
}

fn check(r: &Value, dir: &std::path::Path) {
    assert_eq!(r["lost"], 0, "acknowledged writes lost: {r:#}");
    assert!(r["load"]["ok"].as_u64().unwrap_or(0) > 0, "the load wrote: {r:#}");
    let replaced = r["replaced"].as_u64().expect("replaced");
    let new = r["new_server"].as_u64().expect("new");
    let now: Vec<u64> = r["final_servers"].as_array().expect("list").iter().filter_map(Value::as_u64).collect();
    assert!(now.contains(&new) && !now.contains(&replaced), "{r:#}");
    for id in &now {
        let cfg = std::fs::read_to_string(dir.join(format!("server-{id}/conf/zoo.cfg"))).expect("zoo.cfg");
        assert!(cfg.contains("reconfigEnabled=false"), "{cfg}");
        let listed: Vec<u64> =
            cfg.lines().filter_map(|l| l.strip_prefix("server.")?.split_once('=')?.0.parse().ok()).collect();
        assert_eq!(listed, now, "server {id} runs with the new list");
    }
    assert!(processes_mentioning(dir).is_empty(), "every server stopped afterwards");
}

#[test]
fn fixed_rolling_replacement_of_follower_and_leader_loses_no_write() {
    let (r, dir) = replace("127.133.1", "follower", "rolling");
    check(&r, dir.path());
    let steps: Vec<String> =
        r["steps"].as_array().expect("steps").iter().map(|s| s["step"]["step"].to_string()).collect();
    assert_eq!(steps.last().map(String::as_str), Some("\"stop\""), "the old follower is stopped last: {steps:?}");
    let (r, dir) = replace("127.133.1", "leader", "rolling");
    check(&r, dir.path());
    assert_eq!(r["steps"][0]["step"]["step"], "stop", "a leaving leader is stopped first: {r:#}");
}

#[test]
fn fixed_all_at_once_replacement_loses_no_write() {
    let (r, dir) = replace("127.126.1", "follower", "all-at-once");
    check(&r, dir.path());
}
