//! End to end through the AWS backend: agents, each acting as one instance of a moto Auto Scaling
//! group (instance id injected, advertised address `<net>.K`), form a real ZooKeeper ensemble
//! and reshape it as the group's desired capacity changes, and are upgraded to another ZooKeeper
//! release through their own API. moto launches and terminates the
//! instances; this harness starts an agent for each new instance and SIGKILLs the agent of each
//! terminated one, as the instance's death would.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zkpilot_core::model::{EnsembleConfig, Role};
use zkpilot_core::ports::Zookeeper;
use zkpilot_testkit::{Moto, create_group, group_instances, set_desired};
use zkpilot_zk::{Secret, ZkClient};

use crate::harness::{DEADLINE, EXE};

struct Fleet {
    rt: tokio::runtime::Runtime,
    moto: Moto,
    conf: aws_config::SdkConfig,
    group: zkpilot_testkit::Group,
    dir: tempfile::TempDir,
    agents: BTreeMap<String, (Child, String)>,
    net: &'static str,
    next: u32,
    zk: ZkClient,
    /// The ZooKeeper install new agents' configs name (what the launch template's user data
    /// would install).
    install: PathBuf,
}

/// Bearer token of every agent's API.
const API_TOKEN: &str = "aws-e2e-api-token-0123";
/// Port of every agent's API, on its instance's address.
const API_PORT: u16 = 9181;

impl Fleet {
    fn new(name: &str, n: i32, net: &'static str, install: PathBuf) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let moto = Moto::start();
        let conf = rt.block_on(moto.sdk_config());
        let group = rt.block_on(create_group(&conf, name, n));
        let dir = tempfile::Builder::new().prefix("zkpilot-aws-").tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret"), "aws-e2e-secret\n").expect("secret");
        let token = dir.path().join("api-token");
        std::fs::write(&token, format!("{API_TOKEN}\n")).expect("token");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("token mode");
        let zk = ZkClient::new(Secret::new("aws-e2e-secret"));
        Fleet { rt, moto, conf, group, dir, agents: BTreeMap::new(), net, next: 1, zk, install }
    }

    /// One agent per running instance of the group; instances gone from the group lose theirs.
    fn sync(&mut self) {
        let instances = self.rt.block_on(group_instances(&self.conf, &self.group.name));
        let alive: Vec<String> = instances.iter().map(|i| i.0.clone()).collect();
        let gone: Vec<String> = self.agents.keys().filter(|id| !alive.contains(id)).cloned().collect();
        for id in gone {
            if let Some((mut child, _)) = self.agents.remove(&id) {
                // The instance is terminated: its agent and (by PDEATHSIG) its ZooKeeper die now.
                let _killed = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _reaped = child.wait();
            }
        }
        for (id, zone, _) in instances {
            if self.agents.contains_key(&id) {
                continue;
            }
            let address = format!("{}.{}", self.net, self.next);
            self.next += 1;
            let base = self.dir.path().join(&id);
            std::fs::create_dir_all(&base).expect("instance dir");
            let cfg = format!(
                "[instance]\nid = \"{id}\"\naddress = \"{address}\"\nzone = \"{zone}\"\n\
                 [server]\nbase_dir = \"{base}/zk\"\nheap_mb = 128\ninstall = \"{install}\"\n\
                 [cluster]\nsecret_file = \"{secret}\"\n\
                 [api]\nlisten = \"{address}:{API_PORT}\"\ntoken_file = \"{token}\"\n\
                 [backend]\nkind = \"aws\"\ngroup = \"{group}\"\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n",
                base = base.display(),
                secret = self.dir.path().join("secret").display(),
                install = self.install.display(),
                token = self.dir.path().join("api-token").display(),
                group = self.group.name,
                bucket = self.group.bucket,
                endpoint = self.moto.endpoint,
            );
            std::fs::write(base.join("agent.toml"), cfg).expect("agent.toml");
            let log = std::fs::File::create(base.join("agent.log")).expect("agent.log");
            let mut cmd = Command::new(EXE);
            cmd.args(["agent", "--config"])
                .arg(base.join("agent.toml"))
                .envs(self.moto.env())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .process_group(0);
            let child = cmd.spawn().expect("spawn agent");
            self.agents.insert(id, (child, address));
        }
    }

    /// The committed config and the mode of every agent's server, if the ensemble serves.
    fn observe(&self) -> Option<(EnsembleConfig, BTreeMap<String, zkpilot_core::observed::Mode>)> {
        self.rt.block_on(async {
            let mut modes = BTreeMap::new();
            for (_, address) in self.agents.values() {
                modes.insert(address.clone(), self.zk.probe(&format!("{address}:2181")).await.mode);
            }
            let serving: Vec<String> =
                modes.iter().filter(|(_, m)| m.is_serving()).map(|(a, _)| format!("{a}:2181")).collect();
            if serving.is_empty() {
                return None;
            }
            let cfg = self.zk.committed_config(&serving.join(",")).await.ok()?;
            Some((cfg, modes))
        })
    }

    /// Waits until the config holds exactly the running agents, `voters` of them voting, every
    /// one serving in its configured role, with one leader.
    fn wait_converged(&mut self, members: usize, voters: usize) -> EnsembleConfig {
        let start = Instant::now();
        let mut last = String::new();
        loop {
            self.sync();
            if let Some((cfg, modes)) = self.observe() {
                let addrs: Vec<&String> = self.agents.values().map(|(_, a)| a).collect();
                let ok = cfg.servers.len() == members
                    && self.agents.len() == members
                    && cfg.voter_count() == voters
                    && cfg.servers.values().all(|s| addrs.contains(&&s.host))
                    && modes.values().filter(|m| **m == zkpilot_core::observed::Mode::Leader).count() == 1
                    && cfg.servers.values().all(|s| {
                        let m = modes.get(&s.host).copied();
                        match s.role {
                            Role::Participant => m.is_some_and(|m| {
                                matches!(
                                    m,
                                    zkpilot_core::observed::Mode::Leader | zkpilot_core::observed::Mode::Follower
                                )
                            }),
                            Role::Observer => m == Some(zkpilot_core::observed::Mode::Observer),
                        }
                    });
                if ok {
                    return cfg;
                }
                last = format!("config {cfg:?}, modes {modes:?}");
            }
            assert!(start.elapsed() < DEADLINE, "not converged to {members}/{voters}: {last}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for id in self.agents.keys() {
            let log = std::fs::read_to_string(self.dir.path().join(id).join("agent.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out.push_str(&format!("--- {id}\n{}\n", tail.into_iter().rev().collect::<Vec<_>>().join("\n")));
        }
        out
    }

    fn s3_text(&self, key: &str) -> String {
        self.rt.block_on(async {
            let s3 = aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&self.conf).force_path_style(true).build(),
            );
            match s3.get_object().bucket(&self.group.bucket).key(key).send().await {
                Ok(o) => String::from_utf8(o.body.collect().await.expect("body").into_bytes().to_vec()).expect("utf-8"),
                Err(_) => String::new(),
            }
        })
    }

    /// Agents publish the connection string in the pass after they see a new config.
    fn wait_published(&self, expected: &str) {
        let start = Instant::now();
        loop {
            let published = self.s3_text("zkpilot/connect-string");
            if published.trim() == expected {
                return;
            }
            assert!(start.elapsed() < DEADLINE, "published {published:?}, expected {expected:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn write_keys(&self, connect: &str, n: usize) {
        self.rt.block_on(async {
            let c = self.zk.session(connect).await.expect("session");
            let opts = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
            c.create("/aws-e2e", b"", &opts).await.expect("root");
            for i in 0..n {
                c.create(&format!("/aws-e2e/k{i}"), i.to_string().as_bytes(), &opts).await.expect("key");
            }
        });
    }

    fn count_keys(&self, connect: &str) -> usize {
        self.rt.block_on(async {
            let c = self.zk.session(connect).await.expect("session");
            c.sync("/aws-e2e").await.expect("sync");
            c.list_children("/aws-e2e").await.expect("children").len()
        })
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, (child, _)) in self.agents.iter_mut() {
            let _killed = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for (_, (child, _)) in self.agents.iter_mut() {
            let _reaped = child.wait();
        }
    }
}

#[test]
fn agents_on_an_auto_scaling_group_form_and_reshape_an_ensemble() {
    let mut f = Fleet::new("e2e", 3, "127.110.1", zkpilot_zk::install::default_home());
    let cfg = f.wait_converged(3, 3);
    f.wait_published(&cfg.connect_string());
    f.write_keys(&cfg.connect_string(), 40);

    f.rt.block_on(set_desired(&f.conf, &f.group.name, 5));
    let cfg = f.wait_converged(5, 3);
    assert_eq!(cfg.servers.values().filter(|s| s.role == Role::Observer).count(), 2);

    // Voters are protected from scale-in, so the group picks observers when it shrinks.
    let voters: Vec<String> = cfg.voters().map(|v| cfg.servers[&v].host.clone()).collect();
    let start = Instant::now();
    loop {
        let protected: Vec<String> =
            f.rt.block_on(group_instances(&f.conf, &f.group.name))
                .into_iter()
                .filter(|i| i.2)
                .filter_map(|i| f.agents.get(&i.0).map(|(_, a)| a.clone()))
                .collect();
        let mut p = protected.clone();
        p.sort();
        let mut v = voters.clone();
        v.sort();
        if p == v {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "voters {v:?} not protected: {p:?}\n{}", f.logs());
        std::thread::sleep(Duration::from_millis(300));
    }

    f.rt.block_on(set_desired(&f.conf, &f.group.name, 3));
    let cfg = f.wait_converged(3, 3);
    let after: Vec<String> = cfg.servers.values().map(|s| s.host.clone()).collect();
    for v in &voters {
        assert!(after.contains(v), "voter {v} kept through scale-in: {after:?}");
    }
    assert_eq!(f.count_keys(&cfg.connect_string()), 40, "no data lost");
    f.wait_published(&cfg.connect_string());
}

/// The rolling upgrade of an AWS ensemble, through nothing but its agents' API (what an operator
/// has on AWS): three agents of a moto group run 3.8.6; `rolling-restart --agents` moves every
/// server to 3.9.5, each agent checking the install on its own machine; every server then
/// reports 3.9.5 and no key is lost. (The order of the steps is the rolling restart's own,
/// tested on local groups.)
#[test]
fn agents_on_an_auto_scaling_group_are_upgraded_through_their_api() {
    let old = zkpilot_zk::install::cached_home("3.8.6");
    let new = zkpilot_zk::install::cached_home("3.9.5");
    let mut f = Fleet::new("upgrade", 3, "127.110.2", old);
    let cfg = f.wait_converged(3, 3);
    f.write_keys(&cfg.connect_string(), 40);
    let versions = |f: &Fleet| -> Vec<Option<String>> {
        f.rt.block_on(async {
            let mut out = Vec::new();
            for (_, address) in f.agents.values() {
                out.push(zkpilot_zk::probe::version(&format!("{address}:2181")).await);
            }
            out
        })
    };
    assert!(versions(&f).iter().all(|v| v.as_deref() == Some("3.8.6")), "{:?}", versions(&f));

    let apis: Vec<String> = f.agents.values().map(|(_, a)| format!("{a}:{API_PORT}")).collect();
    let o = Command::new(EXE)
        .args(["rolling-restart", "--agents", &apis.join(","), "--token-file"])
        .arg(f.dir.path().join("api-token"))
        .arg("--zookeeper")
        .arg(&new)
        .output()
        .expect("rolling-restart");
    assert!(o.status.success(), "{}\n{}", crate::harness::text(&o), f.logs());
    let cfg = f.wait_converged(3, 3);
    assert!(versions(&f).iter().all(|v| v.as_deref() == Some("3.9.5")), "every server on 3.9.5: {:?}", versions(&f));
    assert_eq!(f.count_keys(&cfg.connect_string()), 40, "no data lost");
}
