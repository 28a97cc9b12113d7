//! [`FakeProcess`]: the server process port without a process. It records every start (with the
//! [`Launch`] the agent decided) and every stop, exits when the test says so, and, wired to a
//! [`ScriptedZookeeper`], makes the model's server run while it runs, on the files the launch
//! names: a started server then answers probes and serves, and a genesis forms.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use zkpilot_core::model::{EnsembleConfig, ServerId};
use zkpilot_core::ports::{ExitInfo, Launch, PortError, PortResult, ServerProcess};
use zkpilot_core::version::Release;

use crate::ScriptedZookeeper;

/// What ZooKeeper itself reads when it starts on `zoo_cfg`: `myid` below `dataDir=`, and the
/// config of the file `dynamicConfigFile=` names. `None` when a file is missing or malformed.
pub fn read_server_files(zoo_cfg: &Path) -> Option<(ServerId, EnsembleConfig)> {
    let text = std::fs::read_to_string(zoo_cfg).ok()?;
    let get = |key: &str| {
        text.lines().filter_map(|l| l.split_once('=')).find(|(k, _)| k.trim() == key).map(|(_, v)| v.trim().to_string())
    };
    let myid = std::fs::read_to_string(Path::new(&get("dataDir")?).join("myid")).ok()?.trim().parse().ok()?;
    let dynamic = EnsembleConfig::parse(&std::fs::read_to_string(get("dynamicConfigFile")?).ok()?).ok()?;
    Some((ServerId(myid), dynamic))
}

#[derive(Debug, Default)]
struct State {
    running: bool,
    launches: Vec<Launch>,
    stops: usize,
    halts: usize,
    next_pid: u32,
    pid: Option<u32>,
    exit: Option<ExitInfo>,
    fail_starts: usize,
    wired: Option<(ScriptedZookeeper, ServerId, String)>,
}

impl State {
    fn set_model(&self, running: bool) {
        if let Some((zk, id, address)) = &self.wired {
            zk.set_running(*id, address, running);
        }
    }

    /// The wired server starts on the files `launch` names (ZooKeeper reads its initial config
    /// from the dynamic file; the model forms a genesis from such files).
    fn start_model(&self, launch: &Launch) {
        let Some((zk, id, address)) = &self.wired else { return };
        match read_server_files(&launch.zoo_cfg) {
            Some((_, file_config)) => zk.start_on(*id, address, file_config),
            None => zk.set_running(*id, address, true),
        }
    }
}

/// The fake process. `Clone` shares it: the agent owns one clone, the test keeps another.
#[derive(Debug, Clone, Default)]
pub struct FakeProcess {
    state: Arc<Mutex<State>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeProcess {
    /// A process wired to nothing: starting it changes no model.
    pub fn new() -> Self {
        Self::default()
    }

    /// A process that is server `id` of `zk`, answering at `client_address` while it runs.
    pub fn serving_as(zk: &ScriptedZookeeper, id: ServerId, client_address: &str) -> Self {
        let p = Self::new();
        lock(&p.state).wired = Some((zk.clone(), id, client_address.to_string()));
        p
    }

    /// Runs now.
    pub fn running(&self) -> bool {
        lock(&self.state).running
    }

    /// Starts that actually started it (a start while running is a no-op and not counted).
    pub fn starts(&self) -> usize {
        lock(&self.state).launches.len()
    }

    /// The launch of every counted start, oldest first.
    pub fn launches(&self) -> Vec<Launch> {
        lock(&self.state).launches.clone()
    }

    /// Stops of a running process.
    pub fn stops(&self) -> usize {
        lock(&self.state).stops
    }

    /// How many of the stops were halts (SIGKILL at once).
    pub fn halts(&self) -> usize {
        lock(&self.state).halts
    }

    /// The process exits with `code` (reaped by the agent's next `try_exited`); its server stops
    /// answering at once.
    pub fn exit(&self, code: i32) {
        self.end(ExitInfo { code: Some(code), signal: None });
    }

    /// The process is killed by `signal`.
    pub fn kill(&self, signal: i32) {
        self.end(ExitInfo { code: None, signal: Some(signal) });
    }

    fn end(&self, exit: ExitInfo) {
        let mut s = lock(&self.state);
        if s.running {
            s.exit = Some(exit);
            s.set_model(false);
        }
    }

    /// The next `n` starts fail (a missing java, a port in use).
    pub fn fail_next_starts(&self, n: usize) {
        lock(&self.state).fail_starts += n;
    }
}

impl ServerProcess for FakeProcess {
    fn start(&mut self, launch: &Launch) -> PortResult<()> {
        let mut s = lock(&self.state);
        if s.running {
            return Ok(());
        }
        if s.fail_starts > 0 {
            s.fail_starts -= 1;
            return Err(PortError::msg("process", "start: scripted failure"));
        }
        s.running = true;
        s.launches.push(launch.clone());
        s.next_pid += 1;
        s.pid = Some(40_000 + s.next_pid);
        s.exit = None;
        s.start_model(launch);
        Ok(())
    }

    async fn stop(&mut self) -> PortResult<()> {
        let mut s = lock(&self.state);
        if s.running {
            s.running = false;
            s.stops += 1;
            s.pid = None;
            s.exit = None;
            s.set_model(false);
        }
        Ok(())
    }

    async fn halt(&mut self) -> PortResult<()> {
        if lock(&self.state).running {
            lock(&self.state).halts += 1;
        }
        self.stop().await
    }

    fn try_exited(&mut self) -> Option<ExitInfo> {
        let mut s = lock(&self.state);
        let exit = s.exit.take()?;
        s.running = false;
        s.pid = None;
        Some(exit)
    }

    fn pid(&self) -> Option<u32> {
        lock(&self.state).pid
    }

    /// A home's release is read from its last path component (`zookeeper-3.9.5` → `3.9.5`); a
    /// home whose name says `broken` cannot be used.
    fn release_at(&self, home: &Path) -> PortResult<Release> {
        let name = home.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.contains("broken") {
            return Err(PortError::msg("process", format!("ZooKeeper install {}: scripted failure", home.display())));
        }
        let version = name.rsplit('-').next().filter(|v| v.starts_with("3.")).map(str::to_string);
        Ok(Release { home: home.to_path_buf(), version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zookeeper::Ensemble;
    use zkpilot_core::observed::Mode;

    fn launch(zoo_cfg: &Path) -> Launch {
        Launch {
            base: "/b".into(),
            conf_dir: "/b/conf".into(),
            zoo_cfg: zoo_cfg.to_path_buf(),
            log: "/b/logs/zookeeper.log".into(),
            heap_mb: 256,
            hosts_file: None,
            dns_ttl_s: None,
            learner_sync: zkpilot_core::version::LearnerSync::Auto,
            install: Release { home: "/opt/zookeeper-3.9.5".into(), version: Some("3.9.5".into()) },
            run_as_uid: None,
        }
    }

    #[tokio::test]
    async fn records_starts_and_stops_and_exits_when_told() {
        let mut p = FakeProcess::new();
        let test = p.clone();
        p.start(&launch(Path::new("/a"))).expect("start");
        p.start(&launch(Path::new("/b"))).expect("no-op while running");
        assert_eq!((test.starts(), test.running(), p.pid().is_some()), (1, true, true));
        assert_eq!(p.try_exited(), None);
        test.exit(3);
        assert_eq!(p.try_exited(), Some(ExitInfo { code: Some(3), signal: None }));
        assert_eq!((test.running(), p.pid()), (false, None));
        test.fail_next_starts(1);
        assert!(p.start(&launch(Path::new("/c"))).is_err());
        p.start(&launch(Path::new("/d"))).expect("start");
        test.kill(9);
        assert_eq!(p.try_exited().and_then(|e| e.signal), Some(9));
        p.start(&launch(Path::new("/d"))).expect("start");
        p.stop().await.expect("stop");
        assert_eq!((test.starts(), test.stops(), test.running()), (3, 1, false));
        let zoo_cfgs: Vec<_> = test.launches().into_iter().map(|l| l.zoo_cfg).collect();
        assert_eq!(zoo_cfgs, vec![std::path::PathBuf::from("/a"), "/d".into(), "/d".into()]);
    }

    #[test]
    fn reads_what_zookeeper_reads_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, dynamic) = (dir.path().join("data"), dir.path().join("zoo.cfg.dynamic"));
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(data.join("myid"), "2\n").expect("myid");
        std::fs::write(&dynamic, "server.2=127.0.0.2:2888:3888:participant;127.0.0.2:2181\n").expect("dynamic");
        let zoo_cfg = dir.path().join("zoo.cfg");
        let text = format!("# comment\ndataDir={}\ndynamicConfigFile={}\n", data.display(), dynamic.display());
        std::fs::write(&zoo_cfg, text).expect("zoo.cfg");
        let (id, config) = read_server_files(&zoo_cfg).expect("readable");
        assert_eq!((id, config.servers.len()), (ServerId(2), 1));
        assert_eq!(read_server_files(&dir.path().join("missing")), None);
    }

    #[tokio::test]
    async fn wired_to_the_model_a_started_server_serves() {
        let zk = ScriptedZookeeper::new(Ensemble::default());
        let mut p = FakeProcess::serving_as(&zk, ServerId(1), "127.0.0.1:2181");
        assert_eq!(zk.mode(ServerId(1)), Mode::Unreachable);
        p.start(&launch(Path::new("/d"))).expect("start");
        assert_eq!(zk.mode(ServerId(1)), Mode::NotServing, "running, but no config lists a quorum");
        p.clone().exit(1);
        assert_eq!(zk.mode(ServerId(1)), Mode::Unreachable, "down at once, reaped later");
    }
}
