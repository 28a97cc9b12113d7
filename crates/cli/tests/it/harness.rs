//! A local group per test, on its own loopback /24 and in its own temp dir, always brought down.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use zookeeper_client as zk;

pub const EXE: &str = env!("CARGO_BIN_EXE_zkpilot");

/// Generous: JVMs on 2 loaded cores are slow.
pub const DEADLINE: Duration = Duration::from_secs(180);

pub fn zkpilot(args: &[&str]) -> Output {
    Command::new(EXE).args(args).output().expect("run zkpilot")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A running local group; dropped means down (controller, agents, JVMs).
pub struct Group {
    pub dir: tempfile::TempDir,
    /// The release every server must report when the test did not name an install: the one the
    /// suite runs on (`ZKPILOT_ZOOKEEPER`, as the binary reads it, or the default), so a version
    /// matrix row cannot pass on the wrong version.
    expect_version: Option<String>,
}

/// The release of the install the binary uses when no `--zookeeper` is given.
fn suite_version() -> String {
    let home =
        std::env::var_os("ZKPILOT_ZOOKEEPER").map(PathBuf::from).unwrap_or_else(zkpilot_zk::install::default_home);
    let java = which_java();
    zkpilot_zk::install::Install::detect(&home, Some(&java))
        .unwrap_or_else(|e| panic!("the suite's ZooKeeper install: {e}"))
        .version
        .unwrap_or_else(|| panic!("no version known for {}", home.display()))
}

fn which_java() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("java"))
        .find(|p| p.is_file())
        .expect("java on PATH")
}

impl Group {
    pub fn up(size: u32, net: &str) -> Self {
        Self::up_with(size, net, &[])
    }

    pub fn up_with(size: u32, net: &str, extra: &[&str]) -> Self {
        Self::up_prepared(size, net, extra, |_| {})
    }

    /// Like `up_with`, after `prepare` has put files into the (still empty) group directory.
    pub fn up_prepared(size: u32, net: &str, extra: &[&str], prepare: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::Builder::new().prefix("zkpilot-it-").tempdir().expect("tempdir");
        prepare(dir.path());
        let expect_version = (!extra.contains(&"--zookeeper")).then(suite_version);
        let g = Group { dir, expect_version };
        let size = size.to_string();
        let mut args = vec!["local", "up", "--size", &size, "--net", net, "--timeout", "180"];
        args.extend_from_slice(extra);
        let o = g.run(&args);
        assert!(o.status.success(), "local up failed: {}", text(&o));
        g
    }

    /// Three servers on the cached Apache release `version`, converged, every one reporting it.
    pub fn up_on_release(version: &str, net: &str) -> (Self, Value) {
        let home = zkpilot_zk::install::cached_home(version);
        let g = Self::up_with(3, net, &["--zookeeper", home.to_str().expect("utf-8")]);
        let s = g.wait_converged();
        assert!(members(&s).iter().all(|m| m["version"] == version), "every member on {version}: {s:#}");
        (g, s)
    }

    /// A group directory to be filled by a command other than `local up` (e.g. `restore`), on
    /// the suite's install.
    pub fn empty() -> Self {
        let dir = tempfile::Builder::new().prefix("zkpilot-it-").tempdir().expect("tempdir");
        Group { dir, expect_version: Some(suite_version()) }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(EXE).args(args).arg("--dir").arg(self.dir.path()).output().expect("run zkpilot")
    }

    pub fn status(&self) -> Value {
        let o = self.run(&["local", "status", "--json"]);
        assert!(o.status.success(), "status failed: {}", text(&o));
        serde_json::from_slice(&o.stdout).expect("status is JSON")
    }

    /// Waits until the agents have published the converged status `s`'s connection string
    /// (`DIR/connect-string`, written a pass after they converge), which `kafka-config` reads.
    pub fn wait_published(&self, s: &Value) {
        let connect = s["connect_string"].as_str().expect("connect").to_string();
        self.wait_for("connection string published", |_| {
            std::fs::read_to_string(self.path().join("connect-string")).is_ok_and(|c| c.trim() == connect)
        });
    }

    /// Polls `status` until `pred` holds.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let s = self.status();
            if pred(&s) {
                return s;
            }
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}; last status:\n{s:#}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn wait_converged(&self) -> Value {
        let s = self.wait_for("convergence", |s| s["converged"] == true);
        if let Some(want) = &self.expect_version {
            assert!(members(&s).iter().any(|m| m["version"].is_string()), "no member reported its version: {s:#}");
            for m in members(&s) {
                // A member that did not answer `srvr` this time has no version; the others must
                // all run the suite's release.
                if let Some(v) = m["version"].as_str() {
                    assert_eq!(v, want, "server {} runs ZooKeeper {v}, the suite runs on {want}: {s:#}", m["id"]);
                }
            }
        }
        s
    }

    pub fn scale(&self, n: u32) -> Value {
        let o = self.run(&["local", "scale", &n.to_string(), "--timeout", "180"]);
        assert!(o.status.success(), "scale failed: {}", text(&o));
        self.wait_converged()
    }

    pub fn kill(&self, id: u64, agent_only: bool) {
        let id = id.to_string();
        let mut args = vec!["local", "kill", id.as_str()];
        if agent_only {
            args.push("--agent-only");
        }
        let o = self.run(&args);
        assert!(o.status.success(), "kill failed: {}", text(&o));
    }

    pub fn secret(&self) -> String {
        std::fs::read_to_string(self.path().join("secret")).expect("secret").trim().to_string()
    }

    /// Processes whose command line mentions this group's directory.
    pub fn processes(&self) -> Vec<u32> {
        processes_mentioning(self.path())
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let o = self.run(&["local", "down"]);
        if !o.status.success() {
            eprintln!("local down failed: {}", text(&o));
        }
        // Last resort so a failed test never leaves JVMs behind.
        for pid in self.processes() {
            if let Err(e) = Command::new("kill").args(["-9", &pid.to_string()]).status() {
                eprintln!("kill -9 {pid}: {e}");
            }
        }
        // A test passes only if no agent panicked, exited on its own or had a plan refused by the
        // safety check: the group heals from all three, so its own assertions would not notice.
        // (A test that took the group's directory apart, a restore drill, has no group left to read.)
        if !std::thread::panicking() && self.path().join("group.json").exists() {
            let health = zkpilot_ops::local::agent_health(self.path()).expect("reading the agents' health");
            assert!(health.is_clean(), "the agents were not healthy:\n{}", health.problems().join("\n"));
        }
    }
}

pub fn processes_mentioning(path: &Path) -> Vec<u32> {
    let needle = path.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let state = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = state.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("Z");
        if !zombie && String::from_utf8_lossy(&cmd).contains(&needle) {
            out.push(pid);
        }
    }
    out
}

pub fn members(s: &Value) -> &Vec<Value> {
    s["members"].as_array().expect("members array")
}

pub fn ids(s: &Value) -> Vec<u64> {
    members(s).iter().map(|m| m["id"].as_u64().expect("id")).collect()
}

pub fn voters(s: &Value) -> usize {
    members(s).iter().filter(|m| m["voting"] == true).count()
}

pub fn leaders(s: &Value) -> Vec<u64> {
    members(s).iter().filter(|m| m["role"] == "leader").map(|m| m["id"].as_u64().expect("id")).collect()
}

pub fn member(s: &Value, id: u64) -> Option<&Value> {
    members(s).iter().find(|m| m["id"] == id)
}

/// The instance serving server `id`, if one does (a slot between holders has none).
pub fn holder(s: &Value, id: u64) -> Option<&str> {
    member(s, id).and_then(|m| m["instance"].as_str())
}

pub fn instance_of(s: &Value, id: u64) -> String {
    holder(s, id).expect("member with instance").into()
}

pub fn follower(s: &Value) -> u64 {
    members(s).iter().find(|m| m["role"] == "follower").and_then(|m| m["id"].as_u64()).expect("a follower")
}

/// Data written by a test and checked later, through a real ZooKeeper session.
pub struct Data {
    rt: tokio::runtime::Runtime,
    secret: String,
}

impl Data {
    pub fn new(g: &Group) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Data { rt, secret: g.secret() }
    }

    async fn client(&self, connect: &str) -> zk::Client {
        let auth = format!("super:{}", self.secret);
        let start = Instant::now();
        loop {
            match zk::Client::connector()
                .with_auth("digest", auth.as_bytes())
                .with_fail_eagerly()
                .connect(connect)
                .await
            {
                Ok(c) => return c,
                Err(e) if start.elapsed() < Duration::from_secs(60) => {
                    eprintln!("connect {connect}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => panic!("cannot connect to {connect}: {e}"),
            }
        }
    }

    pub fn write(&self, s: &Value, prefix: &str, n: usize) {
        self.write_via(&instance_connect(s), prefix, n)
    }

    /// Like `write`, through `connect` only.
    pub fn write_via(&self, connect: &str, prefix: &str, n: usize) {
        let connect = connect.to_string();
        self.rt.block_on(async {
            let c = self.client(&connect).await;
            let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            let root = format!("/{prefix}");
            match c.create(&root, b"", &opts).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(e) => panic!("create {root}: {e}"),
            }
            for i in 0..n {
                c.create(&format!("{root}/k{i}"), i.to_string().as_bytes(), &opts).await.expect("create key");
            }
        });
    }

    /// Number of keys of `prefix` missing or wrong.
    pub fn missing(&self, s: &Value, prefix: &str, n: usize) -> usize {
        self.missing_via(&instance_connect(s), prefix, n)
    }

    /// Number of keys of `prefix` missing or wrong, read through `connect` only (one server's
    /// `host:port` reads what that server has).
    pub fn missing_via(&self, connect: &str, prefix: &str, n: usize) -> usize {
        let connect = connect.to_string();
        self.rt.block_on(async { count_missing(&self.client(&connect).await, prefix, n).await })
    }
}

/// After a `sync`, how many of `/<prefix>/k0..k<n>` (each holding its number) are missing or wrong.
pub async fn count_missing(c: &zk::Client, prefix: &str, n: usize) -> usize {
    c.sync(&format!("/{prefix}")).await.expect("sync");
    let mut missing = 0;
    for i in 0..n {
        match c.get_data(&format!("/{prefix}/k{i}")).await {
            Ok((d, _)) if d == i.to_string().as_bytes() => {}
            _ => missing += 1,
        }
    }
    missing
}

/// Every agent status the group's agents have published (`DIR/status/*.json`).
pub fn agent_statuses(g: &Group) -> Vec<Value> {
    std::fs::read_dir(g.path().join("status"))
        .expect("status dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .map(|e| read_json(e.path()))
        .collect()
}

impl Data {
    /// The children of `path` with the session owning each (0 for a persistent node), read
    /// after a `sync`: which clients are registered, and whether their sessions are the same.
    pub fn owners(&self, s: &Value, path: &str) -> std::collections::BTreeMap<String, i64> {
        let connect = instance_connect(s);
        self.rt.block_on(async {
            let c = self.client(&connect).await;
            c.sync(path).await.expect("sync");
            let mut out = std::collections::BTreeMap::new();
            for child in c.list_children(path).await.unwrap_or_default() {
                if let Ok(Some(stat)) = c.check_stat(&format!("{path}/{child}")).await {
                    out.insert(child, stat.ephemeral_owner);
                }
            }
            out
        })
    }

    /// The data of `path`, if it exists.
    pub fn get(&self, s: &Value, path: &str) -> Option<String> {
        let connect = instance_connect(s);
        self.rt.block_on(async {
            let c = self.client(&connect).await;
            c.sync(path).await.expect("sync");
            c.get_data(path).await.ok().map(|(d, _)| String::from_utf8_lossy(&d).to_string())
        })
    }
}

/// The members' client addresses by the address their instance runs on (the published
/// connection string may use names only the servers' hosts file resolves).
pub fn instance_connect(s: &Value) -> String {
    let running = s["instances"].as_array().expect("instances").iter();
    let addrs: Vec<String> = running
        .filter(|i| i["state"] == "running" && i["server_id"].is_u64())
        .filter(|i| ids(s).contains(&i["server_id"].as_u64().unwrap_or(0)))
        .map(|i| format!("{}:2181", i["address"].as_str().expect("address")))
        .collect();
    assert!(!addrs.is_empty(), "no running member: {s:#}");
    addrs.join(",")
}

pub fn read_json(p: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One HTTP request to an agent's API: status code and body.
pub fn http(
    rt: &tokio::runtime::Runtime,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    rt.block_on(async {
        let c = reqwest::Client::new();
        let mut req = match method {
            "POST" => c.post(url),
            _ => c.get(url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let r = req.timeout(Duration::from_secs(10)).send().await.expect("request");
        (r.status().as_u16(), r.text().await.expect("body"))
    })
}

/// The voter count of every committed config version, seen through a watch on
/// `/zookeeper/config` (every change fires it), not by sampling status. A background thread;
/// [`ConfigWatch::finish`] stops it and returns `(version, voters)` for each version seen.
pub struct ConfigWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(String, usize)>>,
}

impl ConfigWatch {
    pub fn start(g: &Group, s: &Value) -> Self {
        let connect = instance_connect(s);
        let auth = format!("super:{}", g.secret());
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let mut seen: Vec<(String, usize)> = Vec::new();
                let mut client: Option<zk::Client> = None;
                while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    let Some(c) = client.as_ref() else {
                        let connector = zk::Client::connector().with_auth("digest", auth.as_bytes()).connect(&connect);
                        client =
                            tokio::time::timeout(Duration::from_secs(5), connector).await.ok().and_then(Result::ok);
                        if client.is_none() {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        continue;
                    };
                    match c.get_and_watch_data("/zookeeper/config").await {
                        Ok((data, _, watcher)) => {
                            let text = String::from_utf8_lossy(&data).to_string();
                            let version =
                                text.lines().find_map(|l| l.strip_prefix("version=")).unwrap_or("").to_string();
                            let voters =
                                text.lines().filter(|l| l.starts_with("server.") && !l.contains(":observer")).count();
                            if seen.last().is_none_or(|(v, _)| *v != version) {
                                seen.push((version, voters));
                            }
                            // Wake up for the change or, now and then, to see the stop flag.
                            let _woken = tokio::time::timeout(Duration::from_millis(500), watcher.changed()).await;
                        }
                        Err(_) => client = None,
                    }
                }
                seen
            })
        });
        Self { stop, thread }
    }

    pub fn finish(self) -> Vec<(String, usize)> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("config watch thread")
    }
}

/// The pid of each running instance's ZooKeeper (`instances/<id>/zk.pid`), by server id.
pub fn zk_pids(g: &Group, s: &Value) -> std::collections::BTreeMap<u64, u32> {
    let mut out = std::collections::BTreeMap::new();
    for m in members(s) {
        let (Some(id), Some(instance)) = (m["id"].as_u64(), m["instance"].as_str()) else { continue };
        let pid = std::fs::read_to_string(g.path().join("instances").join(instance).join("zk.pid"));
        if let Some(pid) = pid.ok().and_then(|p| p.trim().parse().ok()) {
            out.insert(id, pid);
        }
    }
    out
}
