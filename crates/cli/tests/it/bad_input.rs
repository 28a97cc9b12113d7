//! Bad input gets a clear error naming the file or field, and nothing on disk changes.

use std::collections::BTreeMap;
use std::path::Path;

use crate::harness::*;

/// Every file under `dir` with its content.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.display().to_string(), std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

fn agent_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("group/ids")).expect("mkdir");
    std::fs::write(dir.join("secret"), "s3cret\n").expect("secret");
    let cfg = format!(
        "[instance]\nid = \"i-0001\"\naddress = \"127.199.1.1\"\nzone = \"a\"\n\
         [server]\nbase_dir = \"{base}\"\n{extra}\n\
         [cluster]\nsecret_file = \"{secret}\"\n\
         [backend]\nkind = \"local\"\ndir = \"{group}\"\n",
        base = dir.join("zk").display(),
        secret = dir.join("secret").display(),
        group = dir.join("group").display(),
    );
    let p = dir.join("agent.toml");
    std::fs::write(&p, cfg).expect("write config");
    p
}

#[test]
fn malformed_agent_config_names_file_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = agent_config(dir.path(), "heap_mb = \"lots\"");
    let before = snapshot(dir.path());
    let o = zkpilot(&["agent", "--config", p.to_str().expect("utf-8")]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&p.display().to_string()) && err.contains("heap_mb"), "{err}");
    assert_eq!(before, snapshot(dir.path()), "nothing on disk changed");
}

#[test]
fn malformed_zoo_cfg_names_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = agent_config(dir.path(), "");
    // A group dir and a prepared-looking server whose zoo.cfg is broken on line 2.
    std::fs::write(dir.path().join("group/group.json"), group_json()).expect("group.json");
    let zk = dir.path().join("zk");
    std::fs::create_dir_all(zk.join("conf")).expect("mkdir");
    std::fs::create_dir_all(zk.join("data")).expect("mkdir");
    // A line java.util.Properties (and so ZooKeeper) refuses: a malformed \uXXXX escape.
    std::fs::write(zk.join("conf/zoo.cfg"), "tickTime=2000\nbroken=\\u12zz\n").expect("zoo.cfg");
    std::fs::write(zk.join("data/myid"), "1\n").expect("myid");
    let before = snapshot(&zk);
    let o = zkpilot(&["agent", "--config", p.to_str().expect("utf-8")]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{}:2:", zk.join("conf/zoo.cfg").display())), "{err}");
    assert_eq!(before, snapshot(&zk), "the server's files are untouched");
}

/// A base config that sets a protected key, however java.util.Properties lets it be spelled,
/// stops `local up` before anything starts; the error names the file, the line and the key as
/// ZooKeeper would read it, and the directory holds what it held.
#[test]
fn base_config_smuggling_a_protected_key_stops_local_up() {
    for (cfg, line) in [
        ("skip\\ACL=yes\n", 1),
        ("maxClientCnxns=10\nskipACL:yes\n", 2),
        ("maxClientCnxns=10\nskip\\\n   ACL yes\n", 2),
        ("\\u0073kipACL=yes\n", 1),
    ] {
        let g = Group::empty();
        std::fs::write(g.path().join("base.cfg"), cfg).expect("base.cfg");
        let before = snapshot(g.path());
        let o = g.run(&["local", "up", "--size", "3", "--net", "127.112.250", "--timeout", "30"]);
        assert!(!o.status.success(), "{cfg:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        let at = format!("{}:{line}: skipACL is protected", g.path().join("base.cfg").display());
        assert!(err.contains(&at), "{cfg:?}: {err}");
        assert_eq!(before, snapshot(g.path()), "{cfg:?}: nothing on disk changed");
    }
}

#[test]
fn foreign_data_dir_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = agent_config(dir.path(), "");
    std::fs::write(dir.path().join("group/group.json"), group_json()).expect("group.json");
    let v2 = dir.path().join("zk/data/version-2");
    std::fs::create_dir_all(&v2).expect("mkdir");
    std::fs::write(v2.join("log.100000001"), b"someone else's transactions").expect("log");
    let zk = dir.path().join("zk");
    let before = snapshot(&zk);
    let o = zkpilot(&["agent", "--config", p.to_str().expect("utf-8")]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&v2.display().to_string()) && err.contains("not written by zkpilot"), "{err}");
    assert_eq!(before, snapshot(&zk), "the foreign data is untouched");
}

#[test]
fn missing_zookeeper_install_is_named_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let group = dir.path().join("g");
    let o =
        zkpilot(&["local", "up", "--size", "1", "--dir", group.to_str().expect("utf-8"), "--zookeeper", "/opt/no-zk"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--zookeeper") && err.contains("/opt/no-zk"), "{err}");
    assert!(!group.exists(), "nothing created");

    let p = agent_config(dir.path(), "install = \"/opt/no-zk\"");
    std::fs::write(dir.path().join("group/group.json"), group_json()).expect("group.json");
    let o = zkpilot(&["agent", "--config", p.to_str().expect("utf-8")]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no ZooKeeper install at /opt/no-zk"), "{}", text(&o));
}

#[test]
fn unwritable_dir_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").expect("write");
    let target = file.join("group");
    let o = zkpilot(&["local", "up", "--size", "1", "--dir", target.to_str().expect("utf-8")]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&target.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&file).expect("read"), b"x");
}

#[test]
fn bad_cli_arguments_are_rejected() {
    for args in [
        vec!["local", "up", "--size", "0"],
        vec!["local", "up", "--size", "3", "--net", "10.0.0"],
        vec!["local", "up", "--size", "3", "--net", "127.0"],
        vec!["local", "up", "--size", "3", "--target-voters", "4"],
        vec!["local", "scale", "many"],
        vec!["local", "up", "--size", "3", "--mode", "sticky"],
        vec!["local", "up", "--size", "3", "--names", "not a domain"],
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let group = dir.path().join("g");
        let mut a = args.clone();
        a.extend(["--dir", group.to_str().expect("utf-8")]);
        let o = zkpilot(&a);
        assert!(!o.status.success(), "{args:?} accepted");
        assert!(!String::from_utf8_lossy(&o.stderr).trim().is_empty(), "{args:?}: no message");
        assert!(!group.exists(), "{args:?} created the group dir");
    }
}

fn group_json() -> String {
    serde_json::json!({
        "desired": 1, "net": "127.199.1", "zones": ["a"], "agent_exe": EXE,
        "zookeeper_install": "/usr/share/java", "java": null, "target_voters": 3, "min_voters": 1,
        "heap_mb": 128, "tick_time_ms": 2000
    })
    .to_string()
}

#[test]
fn addresses_in_use_are_refused() {
    let _busy = std::net::TcpListener::bind("127.199.2.1:2181").expect("bind");
    let dir = tempfile::tempdir().expect("tempdir");
    let group = dir.path().join("g");
    let o = zkpilot(&["local", "up", "--size", "1", "--net", "127.199.2", "--dir", group.to_str().expect("utf-8")]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("127.199.2.1:2181 is in use"), "{}", text(&o));
    assert!(!group.exists(), "nothing created");
}

#[test]
fn ensemble_status_without_a_server_names_the_address() {
    let o = zkpilot(&["ensemble", "status", "--connect", "127.199.9.9:2181"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--connect 127.199.9.9:2181"), "{err}");
}

#[test]
fn restore_and_backup_bad_input_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("new");
    let t = target.to_str().expect("utf-8");
    let restore = |from: &str, backup: &str| {
        zkpilot(&["restore", "--from", from, "--backup", backup, "--dir", t, "--size", "3", "--net", "127.199.3"])
    };
    let o = restore("/nonexistent/zk-store", "latest");
    assert!(!o.status.success() && text(&o).contains("/nonexistent/zk-store"), "{}", text(&o));
    assert!(!target.exists(), "nothing created");

    let store = dir.path().join("old");
    std::fs::create_dir_all(store.join("backups")).expect("mkdir");
    let o = restore(store.to_str().expect("utf-8"), "1700000000000-manual-server-1");
    assert!(!o.status.success() && text(&o).contains("no backup"), "{}", text(&o));
    assert!(!target.exists(), "nothing created for a backup that does not exist");

    let o = zkpilot(&["backup", "list", "--dir", dir.path().join("nothing").to_str().expect("utf-8")]);
    assert!(!o.status.success() && text(&o).contains("nothing"), "{}", text(&o));
    let o = zkpilot(&["backup", "list", "--dir", store.to_str().expect("utf-8")]);
    assert!(o.status.success() && text(&o).contains("(no backups)"), "{}", text(&o));
}
