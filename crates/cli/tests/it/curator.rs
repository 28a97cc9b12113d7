//! Curator, the Java client most ZooKeeper users run, on a zkpilot ensemble: the probe in
//! `curator-probe/` (one class, built with Maven here, cached under `$HOME/.cache/zkpilot`)
//! holds 16 sessions with an ephemeral node and a one-shot data watch each, started with the
//! ensemble's *original* connection string, while the ensemble goes through everything zkpilot
//! does to it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::Value;

use crate::harness::*;

/// Builds the probe (once per content of its sources) and returns its classpath.
fn probe_classpath() -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/curator-probe");
    let files = [src.join("pom.xml"), src.join("src/main/java/zkpilot/CuratorProbe.java")];
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in &files {
        std::hash::Hash::hash(&std::fs::read(f).expect("probe source"), &mut h);
    }
    let cache = PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/zkpilot");
    let dir = cache.join(format!("curator-probe-{:016x}", std::hash::Hasher::finish(&h)));
    let cp = format!("{}/target/classes:{}/target/dependency/*", dir.display(), dir.display());
    if dir.join("target/classes/zkpilot/CuratorProbe.class").is_file() {
        return cp;
    }
    std::fs::create_dir_all(dir.join("src/main/java/zkpilot")).expect("probe dir");
    std::fs::copy(&files[0], dir.join("pom.xml")).expect("pom");
    std::fs::copy(&files[1], dir.join("src/main/java/zkpilot/CuratorProbe.java")).expect("java");
    let o = Command::new("mvn")
        .args(["-q", "-B", "-ntp", "package", "dependency:copy-dependencies", "-DincludeScope=runtime"])
        .arg(format!("-Dmaven.repo.local={}", cache.join("m2").display()))
        .current_dir(&dir)
        .output()
        .expect("mvn (scripts/install-deps.sh installs Maven)");
    assert!(o.status.success(), "building the Curator probe: {}", text(&o));
    cp
}

struct Probe {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<std::process::ChildStdout>,
}

impl Probe {
    fn start(connect: &str, sessions: usize) -> Self {
        let mut child = Command::new("java")
            .args(["-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", &probe_classpath(), "zkpilot.CuratorProbe"])
            .args([connect, &sessions.to_string(), "10000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("java");
        let stdin = child.stdin.take().expect("stdin");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let ready = read_line(&mut out);
        assert_eq!(ready["ready"], true, "{ready}");
        Probe { child, stdin, out }
    }

    fn stop(mut self) -> Value {
        writeln!(self.stdin, "stop").expect("stop");
        let summary = read_line(&mut self.out);
        assert!(self.child.wait().expect("probe exit").success());
        summary
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ignored = self.child.kill();
        let _ignored = self.child.wait();
    }
}

fn read_line(out: &mut BufReader<std::process::ChildStdout>) -> Value {
    let mut line = String::new();
    out.read_line(&mut line).expect("probe output");
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("probe said {line:?}: {e}"))
}

/// 16 Curator sessions started with the original connection string ride through scale 3→5→3,
/// kill -9 of the leader, a planned replacement, a rolling restart and the replacement of every
/// original server: no session expires, no ephemeral node is lost, every watch set is delivered,
/// and Curator (its EnsembleTracker following `/zookeeper/config`) ends up connected through
/// servers that did not exist when it started.
#[test]
fn curator_sessions_ride_through_every_change_with_the_original_connection_string() {
    let g = Group::up(3, "127.131.1");
    let s = g.wait_converged();
    let original = s["connect_string"].as_str().expect("connect").to_string();
    // Instances, not ids: a released id may be claimed again by a replacement.
    let instance_ids = |v: &Value| -> Vec<String> {
        members(v).iter().filter_map(|m| m["instance"].as_str().map(str::to_string)).collect()
    };
    let original_instances = instance_ids(&s);
    let probe = Probe::start(&original, 16);

    g.scale(5);
    g.scale(3);
    let s = g.wait_converged();
    g.kill(leaders(&s)[0], false);
    let s = g.wait_for("the killed leader replaced", |v| v["converged"] == true && !ids(v).contains(&leaders(&s)[0]));
    // A planned replacement of a follower, then a rolling restart of all.
    let follower = ids(&s).into_iter().find(|id| !leaders(&s).contains(id)).expect("a follower");
    let o = g.run(&["local", "terminate", &follower.to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    g.wait_for("the follower replaced", |v| v["converged"] == true && !ids(v).contains(&follower));
    let o = g.run(&["rolling-restart"]);
    assert!(o.status.success(), "{}", text(&o));
    // Every original server still there is replaced as well.
    for _ in 0..3 {
        let s = g.wait_converged();
        let Some(m) = members(&s)
            .iter()
            .find(|m| m["instance"].as_str().is_some_and(|i| original_instances.iter().any(|o| o == i)))
        else {
            break;
        };
        let (id, instance) = (m["id"].as_u64().expect("id"), m["instance"].as_str().expect("instance").to_string());
        let o = g.run(&["local", "terminate", &id.to_string()]);
        assert!(o.status.success(), "{}", text(&o));
        g.wait_for("an original server replaced", |v| v["converged"] == true && !instance_ids(v).contains(&instance));
    }
    let s = g.wait_converged();
    assert!(instance_ids(&s).iter().all(|i| !original_instances.contains(i)), "every original server is gone: {s:#}");

    let r = probe.stop();
    eprintln!("curator probe: {r}");
    assert_eq!(r["done"], true, "{r}");
    assert_eq!((r["lost"].as_u64(), r["expired"].as_u64()), (Some(0), Some(0)), "no session lost: {r}");
    assert_eq!(r["ephemerals_owned"], 16, "every ephemeral still owned by its session: {r}");
    assert_eq!(r["last_watch_missing"], 0, "every session's watch fired on the last change: {r}");
    // Pings every 500 ms for the whole run; every session saw them through its watches.
    assert!(r["min_watches_fired"].as_u64().unwrap_or(0) > 10, "{r}");
    // Curator now talks to servers that did not exist when it started.
    let now = r["connect_string"].as_str().unwrap_or_default();
    let originals: Vec<&str> = original.split(',').collect();
    assert!(!now.is_empty() && now.split(',').all(|a| !originals.contains(&a)), "{now} vs {original}");
}
