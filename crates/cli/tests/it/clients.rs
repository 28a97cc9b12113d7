//! Real clients on a zkpilot ensemble, the ones ZooKeeper users run, driven by small programs in
//! `clients/`: Curator (`curator-probe/`, one Java class built with Maven here and cached under
//! `$HOME/.cache/zkpilot`) holding 16 sessions with an ephemeral node and a one-shot data watch
//! each, and kazoo (`kazoo-load.py`) writing. They are started with the ensemble's *original*
//! connection string while the ensemble goes through everything zkpilot does to it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// Builds the Maven project `clients/<name>` (its `pom.xml` and `java`, one class) once per
/// content of those files, into `$HOME/.cache/zkpilot/<name>-<hash>`, and returns that directory:
/// `target/classes` and `target/dependency/*` make the classpath.
fn maven_project(name: &str, java: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/clients").join(name);
    let files = [PathBuf::from("pom.xml"), Path::new("src/main/java/zkpilot").join(java)];
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in &files {
        std::hash::Hash::hash(&std::fs::read(src.join(f)).expect("probe source"), &mut h);
    }
    let cache = PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/zkpilot");
    let dir = cache.join(format!("{name}-{:016x}", std::hash::Hasher::finish(&h)));
    // Written last: a directory without it is not (completely) built.
    let built = dir.join(".built");
    if built.is_file() {
        return dir;
    }
    // Tests building at once (two use the Curator probe) must not share a build, and Maven's
    // local repository is not safe for two processes: one build at a time, machine-wide.
    let lock = std::fs::File::create(cache.join("maven-build.lock")).expect("lock file");
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e).expect("lock");
    if built.is_file() {
        return dir;
    }
    let tmp = cache.join(format!("{name}-building"));
    let _ignored = std::fs::remove_dir_all(&tmp);
    for f in &files {
        std::fs::create_dir_all(tmp.join(f).parent().expect("parent")).expect("probe dir");
        std::fs::copy(src.join(f), tmp.join(f)).expect("probe source");
    }
    let o = Command::new("mvn")
        .args(["-q", "-B", "-ntp", "package", "dependency:copy-dependencies", "-DincludeScope=runtime"])
        .arg(format!("-Dmaven.repo.local={}", cache.join("m2").display()))
        .current_dir(&tmp)
        .output()
        .expect("mvn (scripts/install-deps.sh installs Maven)");
    assert!(o.status.success(), "building {name}: {}", text(&o));
    std::fs::write(tmp.join(".built"), b"").expect("marker");
    let _ignored = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).expect("move the build in place");
    dir
}

fn classpath(project: &Path) -> String {
    format!("{}/target/classes:{}/target/dependency/*", project.display(), project.display())
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
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        // From here on Drop kills the process, whatever the first line says.
        let mut d = Driven { child, stdin, out };
        let ready = read_line(&mut d.out);
        assert_eq!(ready["ready"], true, "{ready}");
        d
    }

    /// Sends `line` and returns the answer.
    fn ask(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").expect("ask");
        read_line(&mut self.out)
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
    cmd.args([
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        &classpath(&maven_project("curator-probe", "CuratorProbe.java")),
        "zkpilot.CuratorProbe",
    ])
    .args([connect, &sessions.to_string(), "10000"]);
    Driven::spawn(cmd)
}

/// kazoo writing under `prefix` (`kazoo-load.py`, run by the venv `scripts/install-deps.sh`
/// makes).
fn kazoo(connect: &str, prefix: &str) -> Driven {
    let venv = std::env::var_os("ZKPILOT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/zkpilot/venv"));
    let python = venv.join("bin/python");
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
    let new = zkpilot_zk::install::cached_home("3.9.5");
    let (g, s) = Group::up_on_release("3.8.6", "127.131.2");
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

/// A Kafka 3.9 broker in ZooKeeper mode, from the probe project's dependencies (the same jars
/// as a release's `libs/`), its `broker.id` and `zookeeper.connect` from `zkpilot kafka-config`.
struct Broker {
    child: Child,
    name: String,
    id: u64,
}

impl Broker {
    fn start(g: &Group, project: &Path, name: &str, address: &str) -> Self {
        let o = g.run(&["kafka-config", "--name", name]);
        // Slot mode keeps the addresses Kafka is given: no warning.
        assert!(o.status.success() && o.stderr.is_empty(), "{}", text(&o));
        let settings = String::from_utf8_lossy(&o.stdout).to_string();
        let id = settings
            .lines()
            .find_map(|l| l.strip_prefix("broker.id="))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no broker.id in {settings:?}"));
        let dir = g.path().join("kafka").join(name);
        std::fs::create_dir_all(dir.join("logs")).expect("broker dir");
        let props = dir.join("server.properties");
        // Replicated three ways, two in sync for an acknowledged write: one broker may be down
        // without losing or refusing a write. Unclean election off: no acknowledged message may
        // be given up for availability.
        std::fs::write(
            &props,
            format!(
                "{settings}listeners=PLAINTEXT://{address}:9092\nlog.dirs={}\nnum.partitions=3\n\
                 default.replication.factor=3\nmin.insync.replicas=2\noffsets.topic.replication.factor=3\n\
                 transaction.state.log.replication.factor=3\ntransaction.state.log.min.isr=2\n\
                 unclean.leader.election.enable=false\nauto.create.topics.enable=false\n\
                 zookeeper.session.timeout.ms=18000\nzookeeper.connection.timeout.ms=60000\n\
                 group.initial.rebalance.delay.ms=0\n",
                dir.join("data").display()
            ),
        )
        .expect("server.properties");
        let child = Command::new("java")
            .args(["-Xmx512m", "-Xms256m"])
            .arg(format!("-Dkafka.logs.dir={}", dir.join("logs").display()))
            .arg(format!("-Dlog4j.configuration=file:{}", broker_log4j().display()))
            .arg("-cp")
            .arg(format!("{}/target/dependency/*", project.display()))
            .arg("kafka.Kafka")
            .arg(&props)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("logs/stderr.txt")).expect("stderr file"))
            .spawn()
            .expect("java");
        Broker { child, name: name.to_string(), id }
    }

    /// Stops the broker the way an operator does (SIGTERM: a controlled shutdown, which moves
    /// its partition leaderships away first); a broker still running a minute later fails the
    /// test (Drop then kills it).
    fn stop(mut self) {
        let _ignored = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while matches!(self.child.try_wait(), Ok(None)) {
            assert!(Instant::now() < deadline, "broker {} did not stop within a minute of SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ignored = self.child.kill();
        let _ignored = self.child.wait();
    }
}

/// The end of every broker's stderr and its log's errors, for a failure message.
fn broker_logs(g: &Group) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(g.path().join("kafka")).into_iter().flatten().flatten() {
        for f in ["logs/stderr.txt", "logs/server.log"] {
            let text = std::fs::read_to_string(e.path().join(f)).unwrap_or_default();
            // Each error with the three lines after it (the exception and its cause).
            let all: Vec<&str> = text.lines().collect();
            let mut lines = Vec::new();
            for (i, l) in all.iter().enumerate() {
                if f.ends_with("stderr.txt") || l.contains("ERROR") {
                    lines.extend(all[i..all.len().min(i + 4)].iter().copied());
                }
            }
            let tail = lines[lines.len().saturating_sub(16)..].join("\n");
            out.push_str(&format!("--- {}/{f}\n{tail}\n", e.path().display()));
        }
    }
    out
}

/// Kafka's log4j settings: everything into `${kafka.logs.dir}/server.log`.
fn broker_log4j() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/clients/kafka-probe/broker-log4j.properties")
}

/// The Kafka probe: a producer (`acks=all`, idempotent) and a consumer on one topic.
fn kafka_probe(project: &Path, logs: &Path, bootstrap: &str) -> Driven {
    let mut cmd = Command::new("java");
    cmd.args(["-Xmx256m"])
        .arg(format!("-Dkafka.logs.dir={}", logs.display()))
        .arg(format!("-Dlog4j.configuration=file:{}", broker_log4j().display()))
        .args(["-cp", &classpath(project), "zkpilot.KafkaProbe", bootstrap, "zkpilot"]);
    Driven::spawn(cmd)
}

/// Kafka 3.9 in ZooKeeper mode on a zkpilot ensemble in slot mode: Kafka's ZooKeeper client uses
/// its static `zookeeper.connect` for good (it never reads `/zookeeper/config`), so the ensemble
/// keeps its servers' addresses through replacements. Three brokers, configured by
/// `kafka-config`, and a producer with `acks=all` plus a consumer, while the ensemble scales
/// 3 → 5 → 3, loses its leader, and has every server replaced one by one; then the controller
/// broker restarts and must come back with the same `broker.id`. No acknowledged message is
/// lost, the brokers keep their ZooKeeper sessions (the same owners of `/kafka/brokers/ids/*`
/// throughout), and the controller move is handled.
#[test]
fn kafka_brokers_ride_through_every_change_and_lose_no_acknowledged_message() {
    let project = maven_project("kafka-probe", "KafkaProbe.java");
    let g = Group::up_with(3, "127.131.3", &["--mode", "slot"]);
    g.wait_published(&g.wait_converged());
    let data = Data::new(&g);
    let addresses: Vec<String> = (1..=3).map(|n| format!("127.131.3.{}", 100 + n)).collect();
    let registered = |s: &Value| data.owners(s, "/kafka/brokers/ids");
    // One at a time, each registered before the next starts, as an operator brings a cluster
    // up: it keeps the start-up's memory and CPU peaks apart on a 2-core machine. (A broker with
    // a 256 MiB heap once died at start-up of OutOfMemoryError here; heaps are 512 MiB now.)
    let mut brokers: Vec<Broker> = Vec::new();
    let mut s = Value::Null;
    for (i, a) in addresses.iter().enumerate() {
        brokers.push(Broker::start(&g, &project, &format!("broker-{i}"), a));
        let deadline = Instant::now() + Duration::from_secs(180);
        s = loop {
            let v = g.status();
            if v["converged"] == true && registered(&v).len() == i + 1 {
                break v;
            }
            assert!(
                Instant::now() < deadline,
                "{} brokers registered: {:?}\n{}",
                i + 1,
                registered(&v),
                broker_logs(&g)
            );
            std::thread::sleep(Duration::from_millis(500));
        };
    }
    let mut broker_ids: Vec<u64> = brokers.iter().map(|b| b.id).collect();
    broker_ids.sort_unstable();
    broker_ids.dedup();
    assert_eq!(broker_ids.len(), 3, "kafka-config gave three different ids: {broker_ids:?}");
    let sessions = registered(&s);
    let epoch = |s: &Value| data.get(s, "/kafka/controller_epoch").and_then(|e| e.trim().parse::<u64>().ok());
    let first_epoch = epoch(&s).expect("a controller epoch");

    let bootstrap: Vec<String> = addresses.iter().map(|a| format!("{a}:9092")).collect();
    let logs = g.path().join("kafka/probe");
    std::fs::create_dir_all(&logs).expect("probe logs");
    let mut probe = kafka_probe(&project, &logs, &bootstrap.join(","));
    let mut acked = 0;
    // After each change: the producer's acknowledgements advance and every broker is still
    // registered with the session it started with.
    let mut still_working = |what: &str, probe: &mut Driven, s: &Value| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let now = probe.ask("status")["acked"].as_u64().unwrap_or(0);
            if now > acked + 20 {
                acked = now;
                break;
            }
            assert!(Instant::now() < deadline, "{what}: acknowledgements stuck at {now}");
            std::thread::sleep(Duration::from_millis(500));
        }
        assert_eq!(registered(s), sessions, "{what}: every broker registered with its first session");
    };
    still_working("start", &mut probe, &s);
    g.scale(5);
    still_working("scaled to 5", &mut probe, &g.wait_converged());
    g.scale(3);
    let s = g.wait_converged();
    still_working("scaled back to 3", &mut probe, &s);
    let leader = leaders(&s)[0];
    let was = instance_of(&s, leader);
    g.kill(leader, false);
    let s = g.wait_for("the leader's slot taken over", |v| v["converged"] == true && holder(v, leader) != Some(&was));
    still_working("leader killed", &mut probe, &s);
    for id in ids(&s) {
        let was = instance_of(&g.wait_converged(), id);
        let o = g.run(&["local", "terminate", &id.to_string()]);
        assert!(o.status.success(), "{}", text(&o));
        let s = g.wait_for("the server replaced", |v| v["converged"] == true && holder(v, id) != Some(&was));
        still_working(&format!("server {id} replaced"), &mut probe, &s);
    }

    // The controller broker restarts: it asks kafka-config again under its name, gets the id its
    // log directory records (Kafka refuses to start on another), and the controller moves.
    let s = g.wait_converged();
    let controller: Value =
        serde_json::from_str(&data.get(&s, "/kafka/controller").expect("a controller")).expect("controller json");
    let cid = controller["brokerid"].as_u64().expect("brokerid");
    let at = brokers.iter().position(|b| b.id == cid).expect("the controller is one of ours");
    let old = brokers.remove(at);
    let name = old.name.clone();
    old.stop();
    let again = Broker::start(&g, &project, &name, &addresses[at]);
    assert_eq!(again.id, cid, "the same name gets the same broker.id");
    brokers.push(again);
    let s = g.wait_for("the restarted broker registered anew", |v| {
        registered(v).get(&cid.to_string()).is_some_and(|o| Some(o) != sessions.get(&cid.to_string()))
    });
    let moved = epoch(&s).expect("controller epoch");
    assert!(moved > first_epoch, "the controller moved: epoch {first_epoch} -> {moved}");
    let now = registered(&s);
    let cid_key = cid.to_string();
    assert!(
        now.get(&cid_key).is_some_and(|o| Some(o) != sessions.get(&cid_key)),
        "the restarted broker registered with a new session: {now:?} vs {sessions:?}"
    );
    for (id, owner) in sessions.iter().filter(|(id, _)| **id != cid_key) {
        assert_eq!(now.get(id), Some(owner), "broker {id} kept its session through the restart: {now:?}");
    }
    let before = probe.ask("status")["acked"].as_u64().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while probe.ask("status")["acked"].as_u64().unwrap_or(0) < before + 20 {
        assert!(Instant::now() < deadline, "acknowledgements stuck after the controller's restart");
        std::thread::sleep(Duration::from_millis(500));
    }

    let r = probe.stop();
    eprintln!("kafka probe: {r}\ncontroller epoch {first_epoch} -> {moved}");
    assert_eq!(r["done"], true, "{r}");
    assert_eq!(r["acked_not_received"], 0, "no acknowledged message lost: {r}");
    assert_eq!(r["duplicates"], 0, "the idempotent producer wrote nothing twice: {r}");
    assert!(r["acked"].as_u64().unwrap_or(0) > 200, "{r}");
    drop(brokers);
}
