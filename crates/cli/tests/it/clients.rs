//! Real clients on a zkpilot ensemble, the ones ZooKeeper users run, driven by small programs in
//! `clients/`: Curator (`curator-probe/`, one Java class built with Maven here and cached under
//! `$HOME/.cache/zkpilot`) holding 16 sessions with an ephemeral node and a one-shot data watch
//! each, and kazoo (`kazoo-load.py`) writing. They are started with the ensemble's *original*
//! connection string while the ensemble goes through everything zkpilot does to it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::Value;

use crate::harness::*;

/// Builds the probe (once per content of its sources) and returns its classpath.
fn probe_classpath() -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/clients/curator-probe");
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

/// A client process driven over stdin/stdout, one JSON object per line: it says `ready`, runs
/// until told `stop`, then prints its summary.
struct Driven {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<std::process::ChildStdout>,
}

impl Driven {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("client process");
        let stdin = child.stdin.take().expect("stdin");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let ready = read_line(&mut out);
        assert_eq!(ready["ready"], true, "{ready}");
        Driven { child, stdin, out }
    }

    fn stop(mut self) -> Value {
        writeln!(self.stdin, "stop").expect("stop");
        let summary = read_line(&mut self.out);
        assert!(self.child.wait().expect("client exit").success());
        summary
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        let _ignored = self.child.kill();
        let _ignored = self.child.wait();
    }
}

/// The Curator probe: `sessions` sessions, each with an ephemeral node and a data watch.
fn curator(connect: &str, sessions: usize) -> Driven {
    let mut cmd = Command::new("java");
    cmd.args(["-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", &probe_classpath(), "zkpilot.CuratorProbe"])
        .args([connect, &sessions.to_string(), "10000"]);
    Driven::spawn(cmd)
}

/// kazoo writing under `prefix` (`kazoo-load.py`, run by the venv `scripts/install-deps.sh`
/// makes).
fn kazoo(connect: &str, prefix: &str) -> Driven {
    let python = PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/zkpilot/venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/clients/kazoo-load.py");
    let mut cmd = Command::new(&python);
    cmd.arg(script).args([connect, prefix]);
    Driven::spawn(cmd)
}

/// What every Curator summary must show: no session lost or expired, every ephemeral still
/// owned, every session's watch fired on the last change.
fn assert_curator_rode_through(r: &Value) {
    assert_eq!(r["done"], true, "{r}");
    assert_eq!((r["lost"].as_u64(), r["expired"].as_u64()), (Some(0), Some(0)), "no session lost: {r}");
    assert_eq!(r["ephemerals_owned"], 16, "every ephemeral still owned by its session: {r}");
    assert_eq!(r["last_watch_missing"], 0, "every session's watch fired on the last change: {r}");
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
    let probe = curator(&original, 16);

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
    assert_curator_rode_through(&r);
    // Pings every 500 ms for the whole run; every session saw them through its watches.
    assert!(r["min_watches_fired"].as_u64().unwrap_or(0) > 10, "{r}");
    // Curator now talks to servers that did not exist when it started.
    let now = r["connect_string"].as_str().unwrap_or_default();
    let originals: Vec<&str> = original.split(',').collect();
    assert!(!now.is_empty() && now.split(',').all(|a| !originals.contains(&a)), "{now} vs {original}");
}

/// A rolling upgrade 3.8.6 → 3.9.5 under load from two real clients at once: 16 Curator sessions
/// (ephemerals and watches) and a kazoo session writing every 20 ms. Each server restarts on the
/// new release in the safe order while both keep working: no acknowledged kazoo write is lost, no
/// session of either client expires, every ephemeral survives, and every member ends on 3.9.5.
#[test]
fn rolling_upgrade_under_curator_and_kazoo_load_loses_nothing() {
    let old = zkpilot_zk::install::cached_home("3.8.6");
    let new = zkpilot_zk::install::cached_home("3.9.5");
    let g = Group::up_with(3, "127.131.2", &["--zookeeper", old.to_str().expect("utf-8")]);
    let s = g.wait_converged();
    assert!(members(&s).iter().all(|m| m["version"] == "3.8.6"), "{s:#}");
    let connect = s["connect_string"].as_str().expect("connect").to_string();
    let probe = curator(&connect, 16);
    let load = kazoo(&connect, "/kazoo-load");

    let o = g.run(&["rolling-restart", "--zookeeper", new.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", text(&o));
    let s = g.wait_converged();
    assert!(members(&s).iter().all(|m| m["version"] == "3.9.5"), "every member on 3.9.5: {s:#}");

    let k = load.stop();
    let r = probe.stop();
    eprintln!("kazoo: {k}\ncurator probe: {r}");
    assert_eq!(k["done"], true, "{k}");
    assert!(k["acked"].as_u64().unwrap_or(0) > 50, "kazoo kept writing: {k}");
    assert_eq!(k["missing"], 0, "no acknowledged kazoo write lost: {k}");
    assert_eq!(k["states"]["lost"], 0, "kazoo's session never expired: {k}");
    assert_eq!((k["same_session"].as_bool(), k["ephemeral_owned"].as_bool()), (Some(true), Some(true)), "{k}");
    assert_curator_rode_through(&r);
}
