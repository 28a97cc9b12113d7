//! The world a scenario runs in: one group (the in-memory backend), one ensemble (the scripted
//! ZooKeeper), one manual clock, and a temp dir with the secret and every instance's base dir.
//! Instance `n` is `i-000n` at `127.0.0.n`, its server claims id `n`, its base dir is `<tmp>/n/zk`.
//! Only the agents a test creates are real; every other member exists in the fakes only, as if
//! its agent had done its part.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zkpilot_core::model::{EnsembleConfig, InstanceId, Role, ServerId, ServerSpec};
use zkpilot_core::ports::ClusterMarker;
use zkpilot_runtime::agent::PassEnd;
use zkpilot_runtime::status::{AgentStatus, Phase};
use zkpilot_runtime::{Agent, AgentConfig, AgentError};
use zkpilot_testkit::{FIRST_ZXID, FakeProcess, ManualClock, MemoryBackend, ScriptedZookeeper};
use zkpilot_zk::files::{self, Layout, Stamp};

/// The agent under test, over the fakes.
pub type TestAgent = Agent<MemoryBackend, ScriptedZookeeper, FakeProcess, ManualClock>;

/// The cluster id every seeded ensemble carries.
pub const CLUSTER: &str = "cluster-under-test";
/// Every server's client port.
pub const CLIENT_PORT: u16 = 2181;

/// Instance `n`'s id.
pub fn inst(n: u32) -> InstanceId {
    InstanceId(format!("i-{n:04}"))
}

/// Instance `n`'s address.
pub fn addr(n: u32) -> String {
    format!("127.0.0.{n}")
}

/// Server `n`'s client address.
pub fn client(n: u32) -> String {
    format!("{}:{CLIENT_PORT}", addr(n))
}

/// Server `n`'s line, as the agent's config renders it (the testkit's loopback line).
pub fn spec(n: u32, role: Role) -> ServerSpec {
    zkpilot_testkit::loopback_spec(n, role)
}

/// A committed config of `voters` and `observers` at `version`.
pub fn config(voters: &[u32], observers: &[u32], version: u64) -> EnsembleConfig {
    let mut c = EnsembleConfig { servers: BTreeMap::new(), version };
    for n in voters {
        c.servers.insert(ServerId(*n), spec(*n, Role::Participant));
    }
    for n in observers {
        c.servers.insert(ServerId(*n), spec(*n, Role::Observer));
    }
    c
}

/// The marker of an ensemble born with `genesis` as voters.
pub fn marker(genesis: &[u32]) -> ClusterMarker {
    ClusterMarker {
        cluster_id: CLUSTER.into(),
        genesis: genesis.iter().map(|n| spec(*n, Role::Participant)).collect(),
        created_by: inst(genesis.first().copied().unwrap_or(1)),
        created_ms: 0,
        restored_from: None,
    }
}

/// One scenario's fakes and files.
pub struct World {
    /// Holds every file; removed on drop.
    pub dir: tempfile::TempDir,
    /// The group.
    pub backend: MemoryBackend,
    /// The ensemble.
    pub zk: ScriptedZookeeper,
    /// Time.
    pub clock: ManualClock,
}

impl World {
    /// An empty group: no instance, no marker, nothing serving.
    pub fn empty() -> Self {
        let dir = tempfile::Builder::new().prefix("zkpilot-scenario-").tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret"), "scenario-secret\n").expect("secret file");
        Self { dir, backend: MemoryBackend::new(), zk: ScriptedZookeeper::default(), clock: ManualClock::default() }
    }

    /// An ensemble that exists and serves: instances `1..=voters+observers` run and hold claims
    /// `1..`, the first `voters` are voters (the genesis), the rest observers, desired capacity
    /// is their number. No agent runs yet; [`Self::member`] makes one of them real.
    pub fn serving(voters: u32, observers: u32) -> Self {
        let w = Self::empty();
        let all: Vec<u32> = (1..=voters + observers).collect();
        let (v, o) = all.split_at(voters as usize);
        for n in &all {
            w.instance(*n);
            w.backend.seed_claim(ServerId(*n), &inst(*n), &addr(*n));
        }
        w.backend.set_desired(all.len());
        w.backend.seed_marker(marker(v));
        w.zk.set_config(config(v, o, FIRST_ZXID));
        for n in &all {
            w.zk.set_running(ServerId(*n), &client(*n), true);
        }
        w
    }

    /// A joiner nobody has added yet: instance `n` runs, holds claim `n`, and its server runs as a
    /// non-voting follower of the ensemble (as its own agent would have left it); the group wants
    /// one more instance.
    pub fn joiner(&self, n: u32) -> InstanceId {
        let id = self.instance(n);
        self.backend.seed_claim(ServerId(n), &id, &addr(n));
        self.backend.with_state(|s| s.desired += 1);
        self.zk.set_running(ServerId(n), &client(n), true);
        id
    }

    /// Adds running instance `n` to the group.
    pub fn instance(&self, n: u32) -> InstanceId {
        self.backend.add_instance(&inst(n).0, &addr(n), &format!("zone-{}", n % 3))
    }

    /// Instance `n`'s base dir.
    pub fn base(&self, n: u32) -> PathBuf {
        self.dir.path().join(n.to_string()).join("zk")
    }

    /// Instance `n`'s agent config: the real parser on a real file's text.
    pub fn config(&self, n: u32, extra: &str) -> AgentConfig {
        let root = self.dir.path();
        let text = format!(
            r#"
[instance]
id = "{id}"
address = "{address}"
zone = "zone-{zone}"
[server]
base_dir = "{base}"
client_port = {CLIENT_PORT}
[cluster]
secret_file = "{secret}"
[backend]
kind = "local"
dir = "{root}"
[agent]
pass_interval_ms = 100
lease_ttl_ms = 15000
{extra}
"#,
            id = inst(n),
            address = addr(n),
            zone = n % 3,
            base = self.base(n).display(),
            secret = root.join("secret").display(),
            root = root.display(),
        );
        AgentConfig::parse(&text, Path::new("scenario.toml")).expect("scenario config")
    }

    /// Writes what server `n` would have on disk after serving in `config` of cluster `cluster`.
    pub fn seed_local_state(&self, n: u32, cluster: &str, listed: &EnsembleConfig) {
        let stamp = Stamp { cluster_id: cluster.into(), server_id: ServerId(n) };
        files::prepare_new(&Layout::new(self.base(n)), &stamp, &[], listed, false).expect("seed local state");
    }

    /// A real agent for instance `n`, wired to server `n` of the model. Its server is down until
    /// the agent starts it.
    pub fn agent(&self, n: u32) -> Node {
        self.agent_with(n, "")
    }

    /// [`Self::agent`] with extra config text (whole sections, e.g. `[policy]\n...`).
    pub fn agent_with(&self, n: u32, extra: &str) -> Node {
        let mut node = self.agent_from(self.config(n, extra), ServerId(n), &client(n));
        node.extra = extra.to_string();
        node
    }

    /// A real agent with config `cfg`, its process wired to server `server` of the model at
    /// `client_address` (down until the agent starts it).
    pub fn agent_from(&self, cfg: AgentConfig, server: ServerId, client_address: &str) -> Node {
        self.zk.set_running(server, client_address, false);
        let n = cfg.instance.address.rsplit('.').next().and_then(|o| o.parse().ok()).expect("127.0.0.n");
        let process = FakeProcess::serving_as(&self.zk, server, client_address);
        let agent =
            Agent::new(cfg, self.backend.clone(), self.zk.clone(), process.clone(), self.clock.clone()).expect("agent");
        let status = agent.status();
        Node { n, agent, process, status, extra: String::new() }
    }

    /// Member `n` of a [`Self::serving`] ensemble, with its local state intact (its files list
    /// the committed config): a real agent about to restart it.
    pub fn member(&self, n: u32) -> Node {
        self.member_with(n, "")
    }

    /// [`Self::member`] with extra config text.
    pub fn member_with(&self, n: u32, extra: &str) -> Node {
        self.seed_local_state(n, CLUSTER, &EnsembleConfig { version: 0, ..self.zk.config() });
        self.agent_with(n, extra)
    }

    /// [`Self::member`] passing every `pass_ms` (the others pass every 100 ms): to tell what
    /// happens between passes from what happens at the next one.
    pub fn member_passing_every(&self, n: u32, pass_ms: u64) -> Node {
        self.seed_local_state(n, CLUSTER, &EnsembleConfig { version: 0, ..self.zk.config() });
        let mut cfg = self.config(n, "");
        cfg.agent.pass_interval_ms = pass_ms;
        self.agent_from(cfg, ServerId(n), &client(n))
    }

    /// Every file below instance `n`'s dir with its content: to show nothing changed.
    pub fn files_of(&self, n: u32) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        walk(&self.dir.path().join(n.to_string()), &mut out);
        out
    }
}

fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
        }
    }
}

/// An event's outcome as text, whatever type it has (status JSON is the stable contract).
pub fn outcome(e: &zkpilot_runtime::status::Event) -> String {
    serde_json::to_string(&e.outcome).expect("outcome serializes")
}

/// A real agent and its fake process.
pub struct Node {
    /// Its instance number.
    pub n: u32,
    /// The agent.
    pub agent: TestAgent,
    /// Its process (a clone of the one the agent owns).
    pub process: FakeProcess,
    status: tokio::sync::watch::Receiver<Arc<AgentStatus>>,
    extra: String,
}

impl Node {
    /// One pass, which must not fail.
    pub async fn pass(&mut self) -> PassEnd {
        self.agent.pass().await.unwrap_or_else(|e| panic!("agent {} pass failed: {e}", self.n))
    }

    /// One pass, failure allowed.
    pub async fn try_pass(&mut self) -> Result<PassEnd, AgentError> {
        self.agent.pass().await
    }

    /// `k` passes, each of which must continue.
    pub async fn passes(&mut self, k: usize) {
        for i in 0..k {
            assert_eq!(self.pass().await, PassEnd::Continue, "agent {} pass {i} ended", self.n);
        }
    }

    /// Passes until `done` holds for the status, at most `max`; panics with the last status.
    pub async fn until(&mut self, max: usize, what: &str, done: impl Fn(&AgentStatus) -> bool) {
        for _ in 0..max {
            if done(&self.status()) {
                return;
            }
            self.pass().await;
        }
        let s = self.status();
        assert!(done(&s), "agent {}: not {what} after {max} passes; phase {:?}: {}", self.n, s.phase, s.detail);
    }

    /// The last status snapshot.
    pub fn status(&self) -> Arc<AgentStatus> {
        self.status.borrow().clone()
    }

    /// The outcomes of the events whose action starts with `prefix`, oldest first.
    pub fn outcomes(&self, prefix: &str) -> Vec<String> {
        self.status().events.iter().filter(|e| e.action.starts_with(prefix)).map(outcome).collect()
    }

    /// The phase in the last snapshot.
    pub fn phase(&self) -> Phase {
        self.status().phase.clone()
    }

    /// The agent process restarts: the old agent is gone (and with it its server, as systemd
    /// stops the whole unit), a new one starts on the same files.
    pub async fn restart(self, world: &World) -> Node {
        let Node { n, agent, mut process, extra, .. } = self;
        drop(agent);
        zkpilot_core::ports::ServerProcess::stop(&mut process).await.expect("stop");
        world.agent_with(n, &extra)
    }
}
