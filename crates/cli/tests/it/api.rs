//! The agent's HTTP API and status page against a real local group.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

fn apis(s: &Value) -> Vec<String> {
    members(s).iter().map(|m| m["api"].as_str().expect("members[].api").to_string()).collect()
}

#[test]
fn api_serves_status_metrics_and_guards_mutations() {
    let g = Group::up(3, "127.121.1");
    let s = g.wait_converged();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let apis = apis(&s);
    assert_eq!(apis.len(), 3, "{s:#}");
    let token = std::fs::read_to_string(g.path().join("api-token")).expect("api-token").trim().to_string();
    let a = &apis[0];

    // Each agent publishes its own snapshot every pass: wait for this one's to say member.
    let start = Instant::now();
    loop {
        let (code, body) = http(&rt, "GET", &format!("http://{a}/health"), None, None);
        if (code, body.trim()) == (200, "member") {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "health stayed {code} {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, body) = http(&rt, "GET", &format!("http://{a}/status"), None, None);
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&body).expect("status JSON");
    assert_eq!(status["phase"], "member", "{status:#}");
    assert_eq!(status["members"].as_array().map(Vec::len), Some(3), "{status:#}");
    let (code, body) = http(&rt, "GET", &format!("http://{a}/events"), None, None);
    assert!(code == 200 && serde_json::from_str::<Vec<Value>>(&body).is_ok(), "{body}");

    // Prometheus text that a Prometheus parser accepts, with the documented series. The lag
    // needs both this server's and the leader's zxid in the same pass, so it may take a pass.
    let want = [
        "zkpilot_role",
        "zkpilot_quorum",
        "zkpilot_config_version",
        "zkpilot_zxid_lag",
        "zkpilot_reconfigs_total",
        "zkpilot_recoveries_total",
        "zkpilot_server_restarts_total",
        "zkpilot_plans_refused_total",
    ];
    let start = Instant::now();
    loop {
        let (code, body) = http(&rt, "GET", &format!("http://{a}/metrics"), None, None);
        assert_eq!(code, 200);
        let lines = body.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text");
        let names: std::collections::BTreeSet<String> = scrape.samples.iter().map(|s| s.metric.clone()).collect();
        let missing: Vec<&str> = want.iter().copied().filter(|w| !names.contains(*w)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "{missing:?} missing from {names:?}");
        std::thread::sleep(Duration::from_millis(300));
    }

    // Mutations need the bearer token; bad input is refused.
    let url = |path: &str| format!("http://{a}{path}");
    assert_eq!(http(&rt, "POST", &url("/pause"), None, None).0, 401);
    assert_eq!(http(&rt, "POST", &url("/pause"), Some("wrong-token-wrong-token"), None).0, 401);
    assert_eq!(http(&rt, "POST", &url("/target-voters"), Some(&token), Some(r#"{"target_voters": 4}"#)).0, 400);
    assert_eq!(http(&rt, "POST", &url("/target-voters"), Some(&token), Some("not json")).0, 400);

    // A pause through one agent stops every agent, including one that starts afterwards: a
    // scale-out is planned but not carried out, and the plan says why.
    assert_eq!(http(&rt, "POST", &url("/pause"), Some(&token), None).0, 202);
    g.wait_for("every agent paused", |s| {
        s["instances"].as_array().is_some_and(|i| i.len() == 3)
            && s["plan"].is_object()
            && std::fs::read_to_string(g.path().join("cluster/operator.json"))
                .is_ok_and(|t| t.contains("\"paused\": true"))
    });
    let o = g.run(&["local", "scale", "4", "--no-wait"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = g.wait_for("the joiner waiting on the pause", |s| {
        s["plan"]["skipped"].as_array().is_some_and(|k| k.iter().any(|k| k["subject"] == "automation"))
    });
    assert_eq!(ids(&s).len(), 3, "nothing carried out while paused: {s:#}");
    let (_, page) = http(&rt, "GET", &url("/"), None, None);
    assert!(page.contains("PAUSED"), "the page shows it");
    // The dry run says the same, and changes nothing.
    let o = g.run(&["plan"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success() && out.contains("do   reconfig") && out.contains("skip automation"), "{}", text(&o));
    assert_eq!(ids(&g.status()).len(), 3);
    assert_eq!(http(&rt, "POST", &format!("http://{}/resume", apis[1]), Some(&token), None).0, 202);
    let s = g.wait_converged();
    assert_eq!(ids(&s).len(), 4, "{s:#}");
    let o = g.run(&["plan"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().next(), Some("no action"), "{}", text(&o));

    // A rolling restart resumes from its progress file: the server recorded as done is skipped.
    let order: Vec<u64> = ids(&s);
    std::fs::write(
        g.path().join("rolling-restart.json"),
        serde_json::json!({"order": order, "done": [order[0]]}).to_string(),
    )
    .expect("progress");
    let before = zk_pids(&g, &s);
    let o = g.run(&["rolling-restart"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("resuming"), "{}", text(&o));
    assert_eq!(out.lines().filter(|l| l.starts_with("restarted server")).count(), order.len() - 1, "{out}");
    assert!(!out.contains(&format!("restarted server {} ", order[0])), "{out}");
    assert!(!g.path().join("rolling-restart.json").exists(), "progress removed when done");
    let s = g.wait_converged();
    // Each server restarted is a new process; the one done before keeps its own.
    let after = zk_pids(&g, &s);
    assert_eq!(before.len(), order.len(), "{before:?}");
    for id in &order {
        let changed = before.get(id) != after.get(id);
        assert_eq!(changed, *id != order[0], "server {id}: pid {:?} -> {:?}", before.get(id), after.get(id));
    }

    // `ensemble status` works on any ensemble from its client addresses alone.
    let connect = instance_connect(&s);
    let o = zkpilot(&["ensemble", "status", "--json", "--connect", &connect]);
    assert!(o.status.success(), "{}", text(&o));
    let e: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!((e["voters"].as_u64(), e["voters_serving"].as_u64()), (Some(3), Some(3)), "{e:#}");
    assert_eq!(e["servers"].as_array().map(Vec::len), Some(4), "{e:#}");
    assert_eq!(e["config_version"], s["config_version"], "{e:#}");

    // The page renders in headless Chromium; the screenshot is kept as a test artifact.
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ignored = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().expect("profile dir");
    let start = Instant::now();
    let o = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(url("/"))
        .output()
        .expect("chromium (Debian package `chromium`, installed by scripts/install-deps.sh)");
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}): {}", text(&o)));
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot: {} bytes", png.len());
    eprintln!(
        "status page screenshot: {} ({} bytes, {:.1}s)",
        shot.display(),
        png.len(),
        start.elapsed().as_secs_f64()
    );
}

/// A rolling upgrade is refused before anything restarts when it would be a downgrade; an install
/// that looks right but cannot start stops the upgrade at its first server, which comes back on
/// its old install, the rest untouched; the agents' API refuses a bad install itself. Then the
/// upgrade 3.8.6 → 3.9.5 runs through the agents alone (`--agents`, as for an AWS ensemble).
#[test]
fn rolling_upgrade_refuses_a_downgrade_stops_at_a_server_that_cannot_start_and_runs_through_the_agents() {
    let new = zkpilot_zk::install::cached_home("3.9.5");
    let (g, s) = Group::up_on_release("3.8.6", "127.130.1");
    let before = zk_pids(&g, &s);
    let group_json = std::fs::read_to_string(g.path().join("group.json")).expect("group.json");

    // Older than what the members run: refused, nothing restarted.
    let older = zkpilot_zk::install::DEBIAN_HOME;
    let o = g.run(&["rolling-restart", "--zookeeper", older]);
    assert!(!o.status.success() && text(&o).contains("downgrades are refused"), "{}", text(&o));
    assert_eq!(zk_pids(&g, &g.wait_converged()), before, "nothing restarted");

    // The agent's API checks the install itself.
    let token_file = g.path().join("api-token");
    let token = std::fs::read_to_string(&token_file).expect("api-token").trim().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let api = apis(&s)[0].clone();
    let post = |body: &str| http(&rt, "POST", &format!("http://{api}/restart-server"), Some(&token), Some(body));
    let (code, body) = post(r#"{"install": "relative/zk"}"#);
    assert_eq!(code, 400, "{body}");
    let (code, body) = post(r#"{"install": "/opt/no-such-zookeeper"}"#);
    assert!(code == 400 && body.contains("no ZooKeeper install at /opt/no-such-zookeeper"), "{code} {body}");
    let (code, body) = post(&format!(r#"{{"install": "{older}"}}"#));
    assert!(code == 409 && body.contains("downgrades are refused"), "{code} {body}");
    let (code, body) = post(r#"{"install": "/opt/x", "extra": 1}"#);
    assert_eq!(code, 400, "unknown fields are refused: {body}");
    assert_eq!(zk_pids(&g, &g.wait_converged()), before, "nothing restarted by refused requests");

    // A newer-looking install whose JVM cannot start (its only jar is empty).
    let broken = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(broken.path().join("lib")).expect("mkdir");
    std::fs::write(broken.path().join("lib/zookeeper-3.99.0.jar"), b"").expect("jar");
    let o = g.run(&["rolling-restart", "--zookeeper", broken.path().to_str().expect("utf-8"), "--timeout", "90"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("not 3.99.0") || text(&o).contains("did not come back"), "{}", text(&o));
    let s = g.wait_converged();
    let after = zk_pids(&g, &s);
    let restarted: Vec<u64> = before.keys().filter(|id| before.get(id) != after.get(id)).copied().collect();
    assert_eq!(restarted.len(), 1, "only the first server was tried: {before:?} -> {after:?}");
    assert!(members(&s).iter().all(|m| m["version"] == "3.8.6"), "all back on 3.8.6: {s:#}");
    assert_eq!(
        std::fs::read_to_string(g.path().join("group.json")).expect("group.json"),
        group_json,
        "new instances still launch on the old install"
    );

    // The upgrade through the agents alone: no group directory, only their APIs and the token.
    let agents = apis(&s).join(",");
    let o = zkpilot(&[
        "rolling-restart",
        "--agents",
        &agents,
        "--token-file",
        token_file.to_str().expect("utf-8"),
        "--zookeeper",
        new.to_str().expect("utf-8"),
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(out.lines().filter(|l| l.starts_with("restarted server")).count(), 3, "{out}");
    let leader_last = out.lines().rfind(|l| l.starts_with("restarted server")).is_some_and(|l| l.contains("(leader)"));
    assert!(leader_last, "the leader goes last: {out}");
    let s = g.wait_converged();
    assert!(members(&s).iter().all(|m| m["version"] == "3.9.5"), "every member on 3.9.5: {s:#}");
    let o = g.run(&["local", "status"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("MIXED"), "{}", text(&o));
}
