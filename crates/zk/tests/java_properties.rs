//! `zkpilot_zk::zoo_cfg::read_properties` against the JVM's own `java.util.Properties.load`,
//! which is what ZooKeeper's `QuorumPeerConfig.parse` calls: for every input below, including
//! each way to smuggle a key past a filter that splits lines, both must read the same keys with
//! the same values (the JVM keeps the last of a duplicate). Needs `javac` and `java`, which
//! `scripts/install-deps.sh` installs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const READER: &str = r#"
import java.io.FileInputStream;
import java.util.Properties;
import java.util.TreeMap;

public class ReadProps {
    static String hex(String s) {
        StringBuilder b = new StringBuilder();
        for (char c : s.toCharArray()) b.append(String.format("%04x", (int) c));
        return b.toString();
    }
    public static void main(String[] args) throws Exception {
        for (String file : args) {
            Properties p = new Properties();
            try (FileInputStream in = new FileInputStream(file)) { p.load(in); }
            TreeMap<String, String> sorted = new TreeMap<>();
            for (String k : p.stringPropertyNames()) sorted.put(k, p.getProperty(k));
            StringBuilder line = new StringBuilder(file);
            for (var e : sorted.entrySet()) line.append(' ').append(hex(e.getKey())).append('=').append(hex(e.getValue()));
            System.out.println(line);
        }
    }
}
"#;

const INPUTS: &[&str] = &[
    "skipACL=yes\n",
    "skip\\ACL=yes\n",
    "skipACL:yes\n",
    "skipACL yes\n",
    "  skipACL\t=  yes  \n",
    "skip\\\n    ACL=yes\n",
    "\\u0073kipACL=yes\n",
    "sk\\u0069pACL=yes\n",
    "tickTime=1\ntickTime=2\n",
    "a=1\\\n  2\\\n\t3\n",
    "key\\ with\\ spaces = v\n",
    "k\\=eq=v\\:w\n",
    "# comment=1\n! bang=2\n   # indented=3\nreal=4\n",
    "k=v\\\n",
    "onlykey\n",
    "k = \\ leading\n",
    "k=tab\\there\\nnewline\\rcr\\fff\n",
    "k:=v\n",
    "k =:v\n",
    "k\\\\=v\n",
    "k=trailing\\\\\n",
    "k\r\nother=x\r",
    "\\#notcomment=1\n",
    "k=\\b\\q\\z\n",
    "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\n",
    "dataDir=/var/lib/zk data\nautopurge.purgeInterval=24\n",
];

fn hex(s: &str) -> String {
    s.encode_utf16().map(|u| format!("{u:04x}")).collect()
}

#[test]
fn reads_every_input_as_the_jvm_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ReadProps.java"), READER).expect("write java");
    let javac = Command::new("javac").arg("ReadProps.java").current_dir(dir.path()).output().expect("javac runs");
    assert!(javac.status.success(), "javac: {}", String::from_utf8_lossy(&javac.stderr));
    let files: Vec<String> = (0..INPUTS.len()).map(|i| format!("in{i}.properties")).collect();
    for (f, text) in files.iter().zip(INPUTS) {
        std::fs::write(dir.path().join(f), text).expect("write input");
    }
    let java = Command::new("java").arg("ReadProps").args(&files).current_dir(dir.path()).output().expect("java runs");
    assert!(java.status.success(), "java: {}", String::from_utf8_lossy(&java.stderr));
    let out = String::from_utf8(java.stdout).expect("ascii");
    let jvm: BTreeMap<&str, &str> = out.lines().map(|l| l.split_once(' ').unwrap_or((l, ""))).collect();
    for (f, text) in files.iter().zip(INPUTS) {
        let ours = zkpilot_zk::zoo_cfg::read_properties(text, Path::new(f)).expect("reads");
        let mut last: BTreeMap<String, String> = BTreeMap::new();
        for p in ours {
            last.insert(p.key, p.value);
        }
        let rendered: Vec<String> = last.iter().map(|(k, v)| format!("{}={}", hex(k), hex(v))).collect();
        assert_eq!(rendered.join(" "), jvm[f.as_str()], "{text:?}: ours {last:?}");
    }
}
