//! Real ensembles: genesis, growth and shrink, failures, concurrent boot, agent restarts.
//! Each test has its own loopback /24 (127.1NN.1) and directory, so they can run side by side;
//! the nextest group `ensemble` caps how many run at once.

use crate::harness::*;

#[test]
fn genesis_of_three() {
    let g = Group::up(3, "127.101.1");
    let s = g.wait_converged();
    assert_eq!(members(&s).len(), 3, "{s:#}");
    assert_eq!(voters(&s), 3);
    assert_eq!(leaders(&s).len(), 1);
    assert!(s["config_version"].as_str().is_some_and(|v| !v.is_empty()));
    assert_eq!(s["connect_string"].as_str().expect("connect").split(',').count(), 3);
    for m in members(&s) {
        assert!(m["instance"].is_string() && m["address"].as_str().expect("address").starts_with("127.101.1."), "{m}");
    }
    // The marker was written once, lists the three, and every data dir carries its cluster id.
    let marker = read_json(g.path().join("cluster/marker.json"));
    assert_eq!(marker["genesis"].as_array().expect("genesis").len(), 3);
    let stamps: Vec<_> = std::fs::read_dir(g.path().join("instances"))
        .expect("instances")
        .flatten()
        .map(|e| read_json(e.path().join("zk/data/zkpilot.stamp")))
        .collect();
    assert_eq!(stamps.len(), 3);
    assert!(stamps.iter().all(|st| st["cluster_id"] == marker["cluster_id"]), "{stamps:?}");
    // Reconfig auth is the digest superuser, never skipACL.
    let zoo_cfg = std::fs::read_dir(g.path().join("instances")).expect("instances").flatten().next().expect("one");
    let cfg = std::fs::read_to_string(zoo_cfg.path().join("zk/conf/zoo.cfg")).expect("zoo.cfg");
    assert!(cfg.contains("DigestAuthenticationProvider.superDigest=super:") && !cfg.contains("skipACL"), "{cfg}");
    assert!(!cfg.contains(&g.secret()), "the secret itself must not be in zoo.cfg");
    // Each agent reads its own server's AdminServer (bound to the member's address), and the
    // leader's agent reads the synced counts from mntr.
    let leader = leaders(&s)[0];
    let agent_statuses = || agent_statuses(&g);
    g.wait_for("agents report zabstate and the leader's synced followers", |_| {
        let st = agent_statuses();
        st.len() == 3
            && st.iter().all(|a| a["server"]["zab_state"] == "broadcast")
            && st.iter().any(|a| a["server_id"] == leader && a["server"]["synced_followers"] == 2)
    });

    let o = g.run(&["local", "down"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(g.processes(), Vec::<u32>::new(), "processes left after down");
}

#[test]
fn scale_three_to_five_to_three_keeps_data() {
    let g = Group::up(3, "127.102.1");
    let data = Data::new(&g);
    let s = g.wait_converged();
    data.write(&s, "grow", 50);
    let s = g.scale(5);
    assert_eq!(members(&s).len(), 5, "{s:#}");
    assert_eq!(voters(&s), 3, "target 3 voters, the rest observers: {s:#}");
    assert_eq!(members(&s).iter().filter(|m| m["role"] == "observer").count(), 2);
    assert_eq!(leaders(&s).len(), 1);
    assert_eq!(data.missing(&s, "grow", 50), 0);
    let s = g.scale(3);
    assert_eq!(members(&s).len(), 3, "{s:#}");
    assert_eq!(voters(&s), 3);
    assert_eq!(data.missing(&s, "grow", 50), 0);
}

#[test]
fn killed_follower_and_leader_are_replaced() {
    let g = Group::up(3, "127.103.1");
    let data = Data::new(&g);
    let s = g.wait_converged();
    data.write(&s, "heal", 50);
    let victim = follower(&s);
    g.kill(victim, false);
    let s = g.wait_for("follower replaced", |s| s["converged"] == true && !ids(s).contains(&victim));
    assert_eq!((members(&s).len(), voters(&s), leaders(&s).len()), (3, 3, 1), "{s:#}");
    let leader = leaders(&s)[0];
    g.kill(leader, false);
    let s = g.wait_for("leader replaced", |s| s["converged"] == true && !ids(s).contains(&leader));
    assert_eq!((members(&s).len(), voters(&s), leaders(&s).len()), (3, 3, 1), "{s:#}");
    assert_eq!(data.missing(&s, "heal", 50), 0);
}

/// A planned replacement (`local terminate`, like terminating an instance of an Auto Scaling
/// group without decrementing): the old voter keeps serving until its replacement is synced, then
/// one reconfig swaps them; the committed config never has fewer than 3 voters.
#[test]
fn planned_replacement_swaps_without_dipping_the_voter_count() {
    let g = Group::up(3, "127.127.1");
    let data = Data::new(&g);
    let s = g.wait_converged();
    data.write(&s, "planned", 40);
    let watch = ConfigWatch::start(&g, &s);
    for who in ["follower", "leader"] {
        let s = g.wait_converged();
        let victim = if who == "leader" { leaders(&s)[0] } else { follower(&s) };
        let o = g.run(&["local", "terminate", &victim.to_string()]);
        assert!(o.status.success(), "{}", text(&o));
        let s = g.wait_for("replacement swapped in", |s| {
            let in_config = s["config_version"].is_string() && !members(s).is_empty();
            assert!(!in_config || voters(s) >= 3, "the voter count dipped while replacing the {who}: {s:#}");
            s["converged"] == true && !ids(s).contains(&victim)
        });
        assert_eq!((members(&s).len(), voters(&s), leaders(&s).len()), (3, 3, 1), "{s:#}");
        let o = g.run(&["local", "terminate", &victim.to_string()]);
        assert!(!o.status.success(), "a gone server cannot be terminated again: {}", text(&o));
    }
    let s = g.wait_converged();
    assert_eq!(data.missing(&s, "planned", 40), 0);
    // Every committed version, from the watch: two swaps, never fewer than 3 voters.
    let versions = watch.finish();
    assert!(versions.len() >= 3, "the watch saw the swaps: {versions:?}");
    assert!(versions.iter().all(|(_, voters)| *voters >= 3), "the voter count dipped: {versions:?}");
}

/// The issue's acceptance scenario: up 3, scale 5, kill the leader.
#[test]
fn five_members_survive_leader_kill() {
    let g = Group::up(3, "127.104.1");
    let data = Data::new(&g);
    let s = g.wait_converged();
    data.write(&s, "five", 100);
    let s = g.scale(5);
    let leader = leaders(&s)[0];
    g.kill(leader, false);
    let s = g.wait_for("leader replaced", |s| s["converged"] == true && !ids(s).contains(&leader));
    assert_eq!(members(&s).len(), 5, "{s:#}");
    assert_eq!(leaders(&s).len(), 1);
    assert_eq!(voters(&s) % 2, 1, "odd voters: {s:#}");
    assert_eq!(data.missing(&s, "five", 100), 0);
    // The terminated instance's id goes back to the pool once its server is out of the config.
    g.wait_for("dead id released", |_| std::fs::read_dir(g.path().join("ids")).expect("ids").count() == 5);
}

#[test]
fn five_instances_booting_at_once_get_unique_ids() {
    let g = Group::up(5, "127.105.1");
    let s = g.wait_converged();
    let mut got = ids(&s);
    got.sort();
    assert_eq!(got, vec![1, 2, 3, 4, 5], "{s:#}");
    assert_eq!(voters(&s), 3);
    let instances: std::collections::BTreeSet<_> =
        members(&s).iter().map(|m| m["instance"].as_str().expect("instance").to_string()).collect();
    assert_eq!(instances.len(), 5, "one instance per id");
}

#[test]
fn agent_restart_with_local_state_issues_no_reconfig() {
    let g = Group::up(3, "127.106.1");
    let s = g.wait_converged();
    let version = s["config_version"].clone();
    let victim = follower(&s);
    let instance = instance_of(&s, victim);
    let record = g.path().join("instances").join(&instance).join("instance.json");
    let old_pid = read_json(record.clone())["agent_pid"].clone();
    g.kill(victim, true);
    let s = g.wait_for("agent restarted and server back", |s| {
        s["converged"] == true && read_json(record.clone())["agent_pid"] != old_pid
    });
    assert_eq!(s["config_version"], version, "no reconfig after an agent restart: {s:#}");
    assert!(ids(&s).contains(&victim), "same server id kept");
    let log = std::fs::read_to_string(g.path().join("instances").join(&instance).join("agent.log")).expect("agent log");
    assert_eq!(log.matches("zkpilot_supervisor: started").count(), 2, "one start per agent run: {log}");
    let restart = &log[log.find("zkpilot_supervisor: started").expect("first start")..];
    assert!(restart.contains("boot decision: StartAsIs"), "restart started ZooKeeper unchanged: {log}");
}

#[test]
fn crashed_zookeeper_is_restarted_by_its_agent() {
    let g = Group::up(3, "127.107.1");
    let s = g.wait_converged();
    let version = s["config_version"].clone();
    let victim = follower(&s);
    let instance = instance_of(&s, victim);
    let pid_file = g.path().join("instances").join(&instance).join("zk.pid");
    let old: u32 = std::fs::read_to_string(&pid_file).expect("zk.pid").trim().parse().expect("pid");
    let killed = std::process::Command::new("kill").args(["-9", &old.to_string()]).status().expect("kill");
    assert!(killed.success());
    let s = g.wait_for("ZooKeeper restarted", |s| {
        let now = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse::<u32>().ok());
        s["converged"] == true && now.is_some_and(|p| p != old)
    });
    assert_eq!(s["config_version"], version, "a restart is not a membership change: {s:#}");
    assert!(ids(&s).contains(&victim));
}

#[test]
fn whole_group_restarts_from_disk_with_its_data() {
    let g = Group::up(3, "127.108.1");
    let data = Data::new(&g);
    let s = g.wait_converged();
    data.write(&s, "restart", 30);
    let version = s["config_version"].clone();
    let o = g.run(&["local", "down"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(g.processes(), Vec::<u32>::new());
    let o = g.run(&["local", "up", "--size", "3", "--net", "127.108.1"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = g.wait_converged();
    let mut got = ids(&s);
    got.sort();
    assert_eq!(got, vec![1, 2, 3], "same servers, no new instances: {s:#}");
    assert_eq!(s["config_version"], version, "no reconfig on restart");
    assert_eq!(data.missing(&s, "restart", 30), 0);
}

/// Debian's package layout (`/usr/share/java/zookeeper.jar` plus the logging and servlet jars
/// zkpilot adds) still works, and `local status` tells its release from the servers themselves.
/// The default install is an Apache release home (`lib/*`), which every other test runs on.
#[test]
fn debian_package_install_runs_and_reports_its_version() {
    let debian = zkpilot_zk::install::DEBIAN_HOME;
    let g = Group::up_with(3, "127.109.1", &["--zookeeper", debian]);
    let s = g.wait_converged();
    assert_eq!((members(&s).len(), voters(&s), leaders(&s).len()), (3, 3, 1), "{s:#}");
    let cmdlines: Vec<String> = g
        .processes()
        .iter()
        .filter_map(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("QuorumPeerMain"))
        .collect();
    assert_eq!(cmdlines.len(), 3);
    assert!(cmdlines.iter().all(|c| c.contains(&format!("{debian}/zookeeper.jar:"))), "{cmdlines:?}");
    let versions: Vec<&str> = members(&s).iter().filter_map(|m| m["version"].as_str()).collect();
    assert_eq!(versions, vec!["3.8.0"; 3], "{s:#}");
    let o = g.run(&["local", "status"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && table.contains("3.8.0") && !table.contains("MIXED"), "{}", text(&o));
}

#[test]
fn kafka_config_allocates_stable_unique_broker_ids() {
    let g = Group::up(3, "127.111.1");
    let s = g.wait_converged();
    g.wait_published(&s);
    let connect = s["connect_string"].as_str().expect("connect").to_string();
    let dir = g.path().to_str().expect("utf-8").to_string();
    // Eight brokers asking at once get eight different ids.
    let children: Vec<_> = (0..8)
        .map(|i| {
            std::process::Command::new(EXE)
                .args(["kafka-config", "--dir", &dir, "--name", &format!("broker-{i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut ids = std::collections::BTreeMap::new();
    for (i, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(out.contains(&format!("zookeeper.connect={connect}/kafka")), "{out}");
        let id: u64 =
            out.lines().find_map(|l| l.strip_prefix("broker.id=")).expect("broker.id").parse().expect("number");
        ids.insert(i, id);
    }
    let distinct: std::collections::BTreeSet<_> = ids.values().copied().collect();
    assert_eq!(distinct.len(), 8, "{ids:?}");
    // The same name keeps its id.
    let o = zkpilot(&["kafka-config", "--dir", &dir, "--name", "broker-3"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("broker.id={}", ids[&3])), "{}", text(&o));
    // An elastic group's addresses do not outlive its servers, and Kafka never updates its list.
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: this group runs in elastic mode"), "{}", text(&o));
}

/// The group's shared base config reaches every member's zoo.cfg and ZooKeeper itself. A protected
/// key that got into members' zoo.cfg anyway (by hand, or through an older zkpilot's filter, which
/// `skip\ACL=yes` passed) is removed when the servers restart, so ZooKeeper keeps refusing an
/// unauthenticated reconfig. (`local up` refusing such a base config: `bad_input`.)
#[test]
fn shared_base_config_is_merged_but_cannot_weaken_safety() {
    let g = Group::up_prepared(3, "127.112.1", &[], |dir| {
        std::fs::write(dir.join("base.cfg"), "maxClientCnxns=123\n").expect("base.cfg");
    });
    let s = g.wait_converged();
    let zoo_cfg = |m: &serde_json::Value| {
        g.path().join("instances").join(m["instance"].as_str().expect("instance")).join("zk/conf/zoo.cfg")
    };
    for m in members(&s) {
        let cfg = std::fs::read_to_string(zoo_cfg(m)).expect("zoo.cfg");
        assert!(cfg.contains("maxClientCnxns=123") && cfg.contains("reconfigEnabled=true"), "{cfg}");
        // What ZooKeeper would read as skipACL=yes.
        std::fs::write(zoo_cfg(m), format!("{cfg}skip\\ACL=yes\n")).expect("tamper");
    }
    // ZooKeeper runs with the base config: its AdminServer reports the setting.
    let leader = members(&s).iter().find(|m| m["role"] == "leader").expect("leader");
    let addr = leader["address"].as_str().expect("address");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let conf = rt.block_on(zkpilot_zk::probe::admin_command(addr, 8080, "configuration")).expect("admin configuration");
    assert_eq!(conf["max_client_cnxns"], 123, "{conf}");

    let o = g.run(&["rolling-restart"]);
    assert!(o.status.success(), "rolling-restart: {}", text(&o));
    let s = g.wait_converged();
    for m in members(&s) {
        let cfg = std::fs::read_to_string(zoo_cfg(m)).expect("zoo.cfg");
        assert!(!cfg.contains("ACL") && cfg.contains("maxClientCnxns=123"), "{cfg}");
    }
    // Every server restarted on the cleaned file: without the superuser's digest, a reconfig is
    // refused by ACL (with skipACL it would get past the check and fail on its arguments).
    let connect = s["connect_string"].as_str().expect("connect string").to_string();
    let refused = rt.block_on(async {
        let c = zookeeper_client::Client::connector().connect(&connect).await.expect("connect");
        let (joining, leaving): (Vec<&str>, Vec<&str>) = (vec![], vec!["99"]);
        let update = zookeeper_client::EnsembleUpdate::Incremental {
            joinings: joining.into_iter(),
            leavings: leaving.into_iter(),
        };
        c.update_ensemble(update, None).await
    });
    assert!(matches!(refused, Err(zookeeper_client::Error::NoAuth)), "{refused:?}");
}

/// Slot mode: a lost instance's replacement takes over its address and data dir and restarts the
/// same server, with no reconfig; writes made while it was down reach it by ordinary sync. A slot
/// retired on scale-in and taken again later rejoins through the current config.
#[test]
fn slot_mode_replacement_keeps_identity_and_data_without_reconfig() {
    let g = Group::up_with(3, "127.113.1", &["--mode", "slot"]);
    let data = Data::new(&g);
    let s = g.wait_converged();
    data.write(&s, "slot", 50);
    let version = s["config_version"].clone();
    let address = |s: &serde_json::Value, id: u64| {
        members(s).iter().find(|m| m["id"] == id).and_then(|m| m["address"].as_str()).expect("address").to_string()
    };
    let leader = leaders(&s)[0];
    let (old_instance, old_address) = (instance_of(&s, leader), address(&s, leader));
    let stamp_path = g.path().join(format!("slots/{leader}/data/zkpilot.stamp"));
    let stamp = read_json(stamp_path.clone());
    assert_eq!(stamp["server_id"], leader, "the slot dir holds the server's data: {stamp}");

    g.kill(leader, false);
    let s = g.wait_for("slot taken over", |s| {
        s["converged"] == true && ids(s).contains(&leader) && instance_of(s, leader) != old_instance
    });
    assert_eq!(s["config_version"], version, "no reconfig in slot mode: {s:#}");
    assert_eq!(address(&s, leader), old_address, "same address: {s:#}");
    assert_eq!(read_json(stamp_path), stamp, "same data dir, same stamp");
    assert_eq!((members(&s).len(), voters(&s)), (3, 3), "{s:#}");
    data.write(&s, "after", 20);
    assert_eq!(data.missing(&s, "slot", 50), 0);

    // Kill a follower and write while it is gone: it catches up from its old data on return.
    let victim = follower(&s);
    let victim_instance = instance_of(&s, victim);
    g.kill(victim, false);
    g.wait_for("follower down", |s| s["converged"] == false || instance_of(s, victim) != victim_instance);
    data.write(&s, "while-down", 20);
    let s = g.wait_for("follower slot taken over", |s| {
        s["converged"] == true && ids(s).contains(&victim) && instance_of(s, victim) != victim_instance
    });
    assert_eq!(s["config_version"], version, "still no reconfig: {s:#}");
    assert_eq!(data.missing(&s, "while-down", 20) + data.missing(&s, "after", 20), 0);
    // Through the returning server alone: it has them itself, from its old data and a sync.
    let back = format!("{}:2181", address(&s, victim));
    assert_eq!(data.missing_via(&back, "while-down", 20) + data.missing_via(&back, "slot", 50), 0, "via {back}");
    let slot_dirs =
        || std::fs::read_dir(g.path().join("slots")).expect("slots").flatten().filter(|e| e.path().is_dir()).count();
    assert_eq!(slot_dirs(), 3, "no new slot was made");

    // Scale-in retires slot 4's server by reconfig; the slot (and its old data) is taken again on
    // the next scale-out, and rejoins through the current config instead of its stale file.
    let s = g.scale(4);
    assert!(ids(&s).contains(&4) && slot_dirs() == 4, "{s:#}");
    let s = g.scale(3);
    assert!(!ids(&s).contains(&4), "{s:#}");
    let s = g.scale(4);
    assert!(ids(&s).contains(&4) && slot_dirs() == 4, "slot 4 reused: {s:#}");
    let role4 = members(&s).iter().find(|m| m["id"] == 4).map(|m| m["role"].clone());
    assert_eq!(role4, Some("observer".into()), "{s:#}");
    assert_eq!(data.missing(&s, "slot", 50), 0);
}

/// Name indirection: server lines say `zk-<id>.<domain>`, the agents keep the group's hosts file
/// current, the JVMs resolve through it. In slot mode with names, a replacement keeps the lost
/// server's id and data but runs on a new address: only the name moves, no reconfig.
#[test]
fn names_follow_a_server_to_its_new_address_without_reconfig() {
    let g = Group::up_with(3, "127.114.1", &["--mode", "slot", "--names", "zk.it.test"]);
    let data = Data::new(&g);
    let s = g.wait_converged();
    let names: Vec<&str> = members(&s).iter().map(|m| m["address"].as_str().expect("host")).collect();
    assert!(names.iter().all(|n| n.starts_with("zk-") && n.ends_with(".zk.it.test")), "{s:#}");
    assert!(s["connect_string"].as_str().expect("connect").contains("zk.it.test:2181"), "{s:#}");
    data.write(&s, "names", 30);
    let version = s["config_version"].clone();
    let hosts = || std::fs::read_to_string(g.path().join("hosts")).expect("hosts file");
    let victim = follower(&s);
    let name = format!("zk-{victim}.zk.it.test");
    let old_line = hosts().lines().find(|l| l.ends_with(&name)).expect("victim's name in hosts").to_string();

    g.kill(victim, false);
    let s = g.wait_for("slot taken over on a new address", |s| {
        s["converged"] == true
            && ids(s).contains(&victim)
            && hosts().lines().any(|l| l.ends_with(&name) && l != old_line)
    });
    assert_eq!(s["config_version"], version, "only the name moved: {s:#}");
    let new_line = hosts().lines().find(|l| l.ends_with(&name)).expect("name").to_string();
    let new_address = new_line.split_whitespace().next().expect("address");
    let holder = instance_of(&s, victim);
    let inst = s["instances"].as_array().expect("instances").iter().find(|i| i["id"] == holder.as_str()).expect("i");
    assert_eq!(inst["address"], new_address, "the name points at the replacement: {s:#}");
    assert_eq!(data.missing(&s, "names", 30), 0);
    data.write(&s, "names-after", 10);
    assert_eq!(data.missing(&s, "names-after", 10), 0);
}

/// The version check is ZooKeeper's (`reconfig -v`): a change planned against a config that has
/// since moved on is refused as stale and changes nothing, through the real client and server.
/// The fakes model this; only a real ensemble shows the client really sends the version.
#[test]
fn a_reconfig_planned_against_an_old_version_changes_nothing() {
    use zkpilot_core::plan::MembershipChange;
    use zkpilot_core::ports::{ReconfigError, Zookeeper};

    let g = Group::up(3, "127.128.1");
    let s = g.wait_converged();
    let connect = instance_connect(&s);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let client = zkpilot_zk::ZkClient::new(zkpilot_zk::Secret::new(g.secret()));
    let before = rt.block_on(client.committed_config(&connect)).expect("config");
    // A real change (a follower demoted to observer), planned against the version before the
    // current one: unversioned, ZooKeeper would apply it.
    let follower = zkpilot_core::ServerId(follower(&s) as u32);
    let mut demoted = before.servers[&follower].clone();
    demoted.role = zkpilot_core::model::Role::Observer;
    let change = MembershipChange {
        joining: vec![demoted],
        leaving: Vec::new(),
        from_version: before.version - 1,
        why: "a stale plan".into(),
    };
    let result = rt.block_on(client.reconfig(&connect, &change));
    assert!(matches!(result, Err(ReconfigError::Stale)), "{result:?}");
    let after = rt.block_on(client.committed_config(&connect)).expect("config");
    assert_eq!(after, before, "nothing changed");
}
