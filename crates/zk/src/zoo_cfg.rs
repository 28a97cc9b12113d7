//! zoo.cfg: the file itself and zkpilot's policy for it: which static keys zkpilot writes
//! ([`static_keys`]), which keys a shared base config may set ([`BASE_KEYS`], an allow-list) and
//! how the two are merged ([`merge_base`]).
//!
//! ZooKeeper reads zoo.cfg with `java.util.Properties.load` (`QuorumPeerConfig.parse`, from a
//! `FileInputStream`, so ISO-8859-1): a key ends at the first unescaped `=`, `:` or whitespace,
//! `\` escapes and is dropped before an ordinary character (`skip\ACL` is `skipACL`), `\uXXXX`
//! is a character, a line ending in `\` continues on the next, `#` and `!` start comments, a later
//! duplicate wins, and every key ZooKeeper does not know becomes a `zookeeper.<key>` system
//! property that overrides a `-D` flag of that name. Every file zkpilot reads as zoo.cfg or as a
//! base config is therefore read by [`read_properties`], which is `java-properties` (a
//! line-by-line implementation of that grammar, checked against the JVM's own `Properties` in
//! `crates/zk/tests/java_properties.rs`), never by splitting lines. What zkpilot writes is plain
//! `key=value` whose keys and values need no escape, so ZooKeeper reads back exactly that (and
//! so does its own rewrite of the file, which writes entries back unescaped).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::FilesError;

/// One entry as `java.util.Properties` reads it, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The key, unescaped.
    pub key: String,
    /// The value, unescaped.
    pub value: String,
    /// 1-based physical line where the entry starts.
    pub line: usize,
}

/// Reads `text` as `java.util.Properties.load(InputStream)` does: entries in file order
/// (duplicates kept, so a caller can refuse them), comments dropped. `path` names the file in
/// errors.
pub fn read_properties(text: &str, path: &Path) -> Result<Vec<Property>, FilesError> {
    read_lines(text, path).map(|lines| {
        lines
            .into_iter()
            .filter_map(|(line, c)| match c {
                Content::Entry(key, value) => Some(Property { key, value, line }),
                Content::Comment(_) => None,
            })
            .collect()
    })
}

enum Content {
    Comment(String),
    Entry(String, String),
}

fn read_lines(text: &str, path: &Path) -> Result<Vec<(usize, Content)>, FilesError> {
    // ISO-8859-1, like `Properties.load(InputStream)`: every byte is one character, so no byte
    // of a UTF-8 sequence can turn into a separator, an escape or a line end.
    let iter = java_properties::PropertiesIter::new(text.as_bytes());
    let mut out = Vec::new();
    for line in iter {
        let line = line.map_err(|e| FilesError::Malformed {
            path: path.to_path_buf(),
            line: e.line_number().unwrap_or(0),
            why: e.to_string(),
        })?;
        let n = line.line_number();
        out.push((
            n,
            match line.consume_content() {
                java_properties::LineContent::Comment(c) => Content::Comment(c),
                java_properties::LineContent::KVPair(k, v) => Content::Entry(k, v),
            },
        ));
    }
    Ok(out)
}

/// zoo.cfg as an ordered list of lines, edited in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooCfg {
    lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Verbatim(String),
    Entry(String, String),
}

impl ZooCfg {
    /// An empty file.
    pub fn new() -> Self {
        Self { lines: Vec::new() }
    }

    /// Parses zoo.cfg text as ZooKeeper reads it ([`read_properties`]); `path` is only used in
    /// errors. A key set twice is refused: ZooKeeper would take the last, a reader of the file
    /// the first.
    pub fn parse(text: &str, path: &Path) -> Result<Self, FilesError> {
        let mut lines = Vec::new();
        let mut seen = BTreeMap::new();
        for (n, content) in read_lines(text, path)? {
            match content {
                Content::Comment(c) => lines.push(Line::Verbatim(format!("# {c}"))),
                Content::Entry(key, value) => {
                    if let Some(first) = seen.insert(key.clone(), n) {
                        return Err(FilesError::Malformed {
                            path: path.to_path_buf(),
                            line: n,
                            why: format!("key {key:?} set twice (lines {first} and {n}; ZooKeeper takes the last)"),
                        });
                    }
                    lines.push(Line::Entry(key, value));
                }
            }
        }
        Ok(Self { lines })
    }

    /// Reads and parses a file.
    pub fn read(path: &Path) -> Result<Self, FilesError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| FilesError::Io { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| match l {
            Line::Entry(k, v) if k == key => Some(v.as_str()),
            _ => None,
        })
    }

    /// Every `key=value` entry, in file order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry(k, v) => Some((k.as_str(), v.as_str())),
            Line::Verbatim(_) => None,
        })
    }

    /// Sets `key`, in place if present, appended otherwise. Returns whether anything changed.
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        for l in &mut self.lines {
            if let Line::Entry(k, v) = l
                && k == key
            {
                if v == value {
                    return false;
                }
                *v = value.to_string();
                return true;
            }
        }
        self.lines.push(Line::Entry(key.to_string(), value.to_string()));
        true
    }

    /// Removes every entry whose key `keep` refuses; returns the keys removed.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut removed = Vec::new();
        self.lines.retain(|l| match l {
            Line::Entry(k, _) if !keep(k) => {
                removed.push(k.clone());
                false
            }
            _ => true,
        });
        removed
    }

    /// Adds a comment line.
    pub fn comment(&mut self, text: &str) {
        self.lines.push(Line::Verbatim(format!("# {text}")));
    }

    /// Renders the file.
    pub fn render(&self) -> String {
        self.lines
            .iter()
            .map(|l| match l {
                Line::Verbatim(s) => format!("{s}\n"),
                Line::Entry(k, v) => format!("{k}={v}\n"),
            })
            .collect()
    }
}

impl Default for ZooCfg {
    fn default() -> Self {
        Self::new()
    }
}

/// What a server's static keys depend on; everything else about them is fixed policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticSettings<'a> {
    /// `tickTime`, ms.
    pub tick_time_ms: u32,
    /// `initLimit`, ticks.
    pub init_limit: u32,
    /// `syncLimit`, ticks.
    pub sync_limit: u32,
    /// `admin.serverAddress`: the instance's own address (the AdminServer binds 0.0.0.0 unless told).
    pub admin_address: &'a str,
    /// `admin.serverPort`.
    pub admin_port: u16,
    /// `DigestAuthenticationProvider.superDigest`, e.g. from [`crate::Secret::super_digest`].
    pub super_digest: &'a str,
}

/// The zoo.cfg keys zkpilot owns, in the order they are written.
///
/// * `reconfigEnabled=true`: off by default since 3.5.3, and with it off nobody, not even the
///   superuser, may reconfig (ZooKeeper Dynamic Reconfiguration guide, "The reconfigEnabled flag").
/// * `standaloneEnabled=false`: a one-server ensemble then runs the replicated stack and can grow,
///   and an ensemble can shrink to one server (same guide, "The standaloneEnabled flag").
/// * `DigestAuthenticationProvider.superDigest`: since 3.5.3 only the superuser (or an identity
///   with WRITE on `/zookeeper/config`) may reconfig (ZOOKEEPER-2014; guide, "Security").
/// * `4lw.commands.whitelist`, `admin.*`: the probes zkpilot uses, and nothing more (ZooKeeper
///   Administrator's Guide, "The Four Letter Words" and "The AdminServer").
pub fn static_keys(s: &StaticSettings<'_>) -> Vec<(String, String)> {
    [
        ("tickTime", s.tick_time_ms.to_string()),
        ("initLimit", s.init_limit.to_string()),
        ("syncLimit", s.sync_limit.to_string()),
        ("reconfigEnabled", "true".into()),
        ("standaloneEnabled", "false".into()),
        // srvr for membership probes, mntr for the leader's synced counts; nothing else.
        ("4lw.commands.whitelist", "srvr,mntr".into()),
        ("admin.enableServer", "true".into()),
        ("admin.serverAddress", s.admin_address.to_string()),
        ("admin.serverPort", s.admin_port.to_string()),
        ("DigestAuthenticationProvider.superDigest", s.super_digest.to_string()),
        ("autopurge.snapRetainCount", "10".into()),
        ("autopurge.purgeInterval", "24".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// How a server's TLS is set up; the files are those the agent keeps current
/// (`crate::files::Layout::keystore`, `truststore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsKeys<'a> {
    /// Quorum and election connections over TLS (`sslQuorum`).
    pub quorum: bool,
    /// A secure client port on this address (`secureClientPort`, `secureClientPortAddress`).
    pub client: Option<(&'a str, u16)>,
    /// `ssl.clientAuth` of the secure client port: `need`, `want` or `none`.
    pub client_auth: &'a str,
    /// The PEM key store: the server's key, then its certificate.
    pub keystore: &'a str,
    /// The PEM trust store: the cluster CA bundle.
    pub truststore: &'a str,
}

/// The zoo.cfg keys of [`TlsKeys`] (Administrator's Guide, "Quorum TLS" and "Encryption,
/// Authentication, Authorization Options").
///
/// * The secure client port is a static key, not part of the dynamic server line: before 3.10
///   a dynamic line cannot carry one (ZOOKEEPER-4276), so every server keeps its plaintext
///   client port there (probes and four-letter words, which carry no secret, use it) and the
///   agent's authenticated sessions use the secure port on the same address.
/// * Both reload flags are on: the agent renews certificates in place and ZooKeeper picks the
///   new files up without a restart (ZOOKEEPER-3174 for the quorum, ZOOKEEPER-3806 for clients).
/// * Hostname verification stays at ZooKeeper's default (on): each certificate names its
///   server's address.
pub fn tls_keys(t: &TlsKeys<'_>) -> Vec<(String, String)> {
    let mut keys: Vec<(&str, String)> = Vec::new();
    if t.quorum {
        keys.extend([
            ("sslQuorum", "true".to_string()),
            ("sslQuorumReloadCertFiles", "true".into()),
            ("ssl.quorum.keyStore.location", t.keystore.into()),
            ("ssl.quorum.keyStore.type", "PEM".into()),
            ("ssl.quorum.trustStore.location", t.truststore.into()),
            ("ssl.quorum.trustStore.type", "PEM".into()),
        ]);
    }
    if let Some((address, port)) = t.client {
        keys.extend([
            ("serverCnxnFactory", "org.apache.zookeeper.server.NettyServerCnxnFactory".to_string()),
            ("secureClientPort", port.to_string()),
            ("secureClientPortAddress", address.into()),
            ("client.certReload", "true".into()),
            ("ssl.keyStore.location", t.keystore.into()),
            ("ssl.keyStore.type", "PEM".into()),
            ("ssl.trustStore.location", t.truststore.into()),
            ("ssl.trustStore.type", "PEM".into()),
            ("ssl.clientAuth", t.client_auth.into()),
        ]);
    }
    keys.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// zoo.cfg keys that carry zkpilot's safety and security guarantees, or belong to the dynamic
/// file, named so that a base config setting one is told why it is refused (anything not in
/// [`BASE_KEYS`] is refused anyway). Several are ZooKeeper system properties zkpilot passes as
/// `-D` flags, which a zoo.cfg key of the same name would override.
pub const PROTECTED_KEYS: &[&str] = &[
    "reconfigEnabled",
    "standaloneEnabled",
    "dynamicConfigFile",
    "dataDir",
    "dataLogDir",
    "DigestAuthenticationProvider.superDigest",
    "skipACL",
    "admin.enableServer",
    "admin.serverAddress",
    "admin.serverPort",
    "4lw.commands.whitelist",
    "clientPort",
    "clientPortAddress",
    "secureClientPort",
    "secureClientPortAddress",
    "peerType",
    "db.autocreate",
    "forceSnapshotSync",
    "forceSync",
    "syncEnabled",
    "serverCnxnFactory",
    "portUnification",
    "sslQuorum",
    "sslQuorumReloadCertFiles",
    "client.certReload",
    "client.portUnification",
    "snapshot.trust.empty",
    "quorumListenOnAllIPs",
    "electionAlg",
];

/// Key prefixes of the same kind: authentication, TLS, SASL, and the dynamic file's
/// (`server.`, `group.`, `weight.`: ZooKeeper refuses them in the static file once
/// `dynamicConfigFile` is set, Dynamic Reconfiguration guide, "Dynamic configuration file").
const PROTECTED_PREFIXES: &[&str] = &[
    "authProvider.",
    "X509AuthenticationProvider.",
    "ssl.",
    "quorum.auth.",
    "enforce.auth.",
    "sasl",
    "server.",
    "group.",
    "weight.",
    "zookeeper.",
];

/// What a value of a base-config key may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A non-negative whole number.
    Count,
    /// A decimal number, possibly negative.
    Decimal,
    /// `true`, `false`, `yes` or `no`.
    Flag,
    /// One of these words.
    OneOf(&'static [&'static str]),
}

/// The keys a shared base config may set, and what their values may be: ZooKeeper's tuning
/// settings (Administrator's Guide, "Configuration Parameters"), none of which can open the
/// ensemble, move its data or change how it syncs, votes or authenticates.
pub const BASE_KEYS: &[(&str, ValueKind)] = &[
    ("tickTime", ValueKind::Count),
    ("initLimit", ValueKind::Count),
    ("syncLimit", ValueKind::Count),
    ("maxClientCnxns", ValueKind::Count),
    ("maxCnxns", ValueKind::Count),
    ("minSessionTimeout", ValueKind::Count),
    ("maxSessionTimeout", ValueKind::Count),
    ("globalOutstandingLimit", ValueKind::Count),
    ("preAllocSize", ValueKind::Count),
    ("snapCount", ValueKind::Count),
    ("snapSizeLimitInKb", ValueKind::Count),
    ("commitLogCount", ValueKind::Count),
    ("snapshotSizeFactor", ValueKind::Decimal),
    ("autopurge.snapRetainCount", ValueKind::Count),
    ("autopurge.purgeInterval", ValueKind::Count),
    ("fsync.warningthresholdms", ValueKind::Count),
    ("connectToLearnerMasterLimit", ValueKind::Count),
    ("clientPortListenBacklog", ValueKind::Count),
    ("cnxTimeout", ValueKind::Count),
    ("electionPortBindRetry", ValueKind::Count),
    ("jute.maxbuffer", ValueKind::Count),
    ("largeRequestMaxBytes", ValueKind::Count),
    ("largeRequestThreshold", ValueKind::Count),
    ("maxResponseCacheSize", ValueKind::Count),
    ("maxGetChildrenResponseCacheSize", ValueKind::Count),
    ("localSessionsEnabled", ValueKind::Flag),
    ("localSessionsUpgradingEnabled", ValueKind::Flag),
    ("leaderServes", ValueKind::Flag),
    ("advancedFlowControlEnabled", ValueKind::Flag),
    ("digest.enabled", ValueKind::Flag),
    ("audit.enable", ValueKind::Flag),
    ("snapshot.compression.method", ValueKind::OneOf(&["gz", "snappy"])),
];

impl ValueKind {
    fn accepts(self, v: &str) -> bool {
        match self {
            Self::Count => !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()),
            Self::Decimal => {
                let digits = v.strip_prefix('-').unwrap_or(v);
                !digits.is_empty()
                    && digits.len() <= 24
                    && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                    && digits.bytes().filter(|b| *b == b'.').count() <= 1
            }
            Self::Flag => ["true", "false", "yes", "no"].contains(&v),
            Self::OneOf(words) => words.contains(&v),
        }
    }

    fn describe(self) -> String {
        match self {
            Self::Count => "a whole number".into(),
            Self::Decimal => "a decimal number".into(),
            Self::Flag => "true, false, yes or no".into(),
            Self::OneOf(words) => format!("one of {}", words.join(", ")),
        }
    }
}

/// Why `key` may not be set by a base config, if it may not.
fn refusal(key: &str, also_owned: &[&str]) -> Option<String> {
    if PROTECTED_KEYS.contains(&key) || also_owned.contains(&key) {
        return Some(format!("{key} is protected: zkpilot sets it (reconfig, authentication, admin, data, sync)"));
    }
    if let Some(p) = PROTECTED_PREFIXES.iter().find(|p| key.starts_with(*p)) {
        return Some(format!("{key} is protected: zkpilot owns every {p}* key"));
    }
    if !BASE_KEYS.iter().any(|(k, _)| *k == key) {
        let allowed: Vec<&str> = BASE_KEYS.iter().map(|(k, _)| *k).collect();
        return Some(format!("{key:?} is not a key a base config may set (allowed: {})", allowed.join(", ")));
    }
    None
}

/// Reads a shared base config (`path` names it in errors) and merges it into zkpilot's static
/// keys: its keys win. Every entry must be on [`BASE_KEYS`] with a value of its kind, and none
/// may be set twice; otherwise nothing is merged and the error names the line and the key as
/// ZooKeeper would read it. `also_owned` are keys zkpilot sets on this server beyond
/// [`PROTECTED_KEYS`] (through `-D` flags: `LearnerSync::owned_properties`).
pub fn merge_base(
    own: &[(String, String)],
    text: &str,
    path: &Path,
    also_owned: &[&str],
) -> Result<Vec<(String, String)>, FilesError> {
    let malformed = |line: usize, why: String| FilesError::Malformed { path: path.to_path_buf(), line, why };
    let mut merged: Vec<(String, String)> = own.to_vec();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for p in read_properties(text, path)? {
        if let Some(first) = seen.insert(p.key.clone(), p.line) {
            return Err(malformed(
                p.line,
                format!("{} set twice (lines {first} and {}; ZooKeeper takes the last)", p.key, p.line),
            ));
        }
        if let Some(why) = refusal(&p.key, also_owned) {
            return Err(malformed(p.line, why));
        }
        let kind = BASE_KEYS.iter().find(|(k, _)| *k == p.key).map(|(_, kind)| *kind);
        if let Some(kind) = kind
            && !kind.accepts(&p.value)
        {
            return Err(malformed(p.line, format!("{} = {:?}: must be {}", p.key, p.value, kind.describe())));
        }
        match merged.iter_mut().find(|(mk, _)| *mk == p.key) {
            Some(e) => e.1 = p.value,
            None => merged.push((p.key, p.value)),
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: StaticSettings<'static> = StaticSettings {
        tick_time_ms: 2000,
        init_limit: 10,
        sync_limit: 5,
        admin_address: "127.0.1.1",
        admin_port: 8080,
        super_digest: "super:x",
    };

    #[test]
    fn zoo_cfg_edits_in_place_and_keeps_comments() {
        let text = "# mine\ntickTime=2000\ndynamicConfigFile=/x/zoo.cfg.dynamic.100000000\n";
        let mut c = ZooCfg::parse(text, Path::new("zoo.cfg")).expect("parses");
        assert!(!c.set("tickTime", "2000"));
        assert!(c.set("tickTime", "1000"));
        assert!(c.set("initLimit", "10"));
        assert_eq!(c.render(), "# mine\ntickTime=1000\ndynamicConfigFile=/x/zoo.cfg.dynamic.100000000\ninitLimit=10\n");
    }

    #[test]
    fn zoo_cfg_errors_name_file_and_line() {
        let err = ZooCfg::parse("a=1\nb=\\u12\n", Path::new("/c/zoo.cfg")).expect_err("malformed escape");
        assert!(err.to_string().starts_with("/c/zoo.cfg:2: "), "{err}");
        let dup = ZooCfg::parse("a=1\nb=2\na : 3\n", Path::new("z")).expect_err("duplicate");
        assert_eq!(dup.to_string(), "z:3: key \"a\" set twice (lines 1 and 3; ZooKeeper takes the last)");
    }

    #[test]
    fn zoo_cfg_is_read_as_java_reads_it() {
        let text = "skip\\ACL=yes\nmaxClientCnxns 10\ntick\\\n   Time : 2000\n\\u0073yncLimit=5\n! note\n";
        let c = ZooCfg::parse(text, Path::new("zoo.cfg")).expect("parses");
        let entries: Vec<(&str, &str)> = c.entries().collect();
        assert_eq!(
            entries,
            vec![("skipACL", "yes"), ("maxClientCnxns", "10"), ("tickTime", "2000"), ("syncLimit", "5")]
        );
    }

    fn merged(text: &str) -> Result<Vec<(String, String)>, FilesError> {
        merge_base(&static_keys(&SETTINGS), text, Path::new("/g/base.cfg"), &[])
    }

    #[test]
    fn base_config_keys_on_the_list_are_merged_and_win() {
        let m = merged("tickTime=1000\nmaxClientCnxns=123\nsnapshot.compression.method=gz\n").expect("allowed");
        let get = |k: &str| m.iter().find(|(mk, _)| mk == k).map(|(_, v)| v.as_str());
        assert_eq!((get("tickTime"), get("maxClientCnxns")), (Some("1000"), Some("123")));
        assert_eq!(get("snapshot.compression.method"), Some("gz"));
        assert_eq!(get("reconfigEnabled"), Some("true"));
    }

    /// Every way to spell a protected key that java.util.Properties reads as that key is refused,
    /// naming the file, the line and the key as ZooKeeper would read it.
    #[test]
    fn base_config_cannot_smuggle_a_protected_key() {
        for (text, line) in [
            ("skipACL=yes\n", 1),
            ("skip\\ACL=yes\n", 1),
            ("skipACL:yes\n", 1),
            ("skipACL yes\n", 1),
            ("  skipACL\t=  yes\n", 1),
            ("maxClientCnxns=10\nskip\\\n    ACL=yes\n", 2),
            ("\\u0073kipACL=yes\n", 1),
            ("# comment\n\nsk\\u0069pACL=yes\n", 3),
        ] {
            let err = merged(text).expect_err(text).to_string();
            assert!(err.starts_with(&format!("/g/base.cfg:{line}: skipACL is protected")), "{text:?}: {err}");
        }
        for key in ["reconfigEnabled", "db.autocreate", "forceSnapshotSync", "4lw.commands.whitelist", "dataDir"] {
            let err = merged(&format!("{key}=x\n")).expect_err(key).to_string();
            assert!(err.contains(&format!("{key} is protected")), "{err}");
        }
        for key in ["server.9", "ssl.keyStore.location", "authProvider.1", "zookeeper.forceSnapshotSync"] {
            let err = merged(&format!("{key}=x\n")).expect_err(key).to_string();
            assert!(err.contains("is protected: zkpilot owns every"), "{err}");
        }
    }

    #[test]
    fn base_config_refuses_unknown_keys_duplicates_and_bad_values() {
        let err = merged("metricsProvider.className=Evil\n").expect_err("not on the list").to_string();
        assert!(err.starts_with("/g/base.cfg:1: \"metricsProvider.className\" is not a key"), "{err}");
        let err = merged("tickTime=1000\nmaxClientCnxns=5\ntickTime=10\n").expect_err("twice").to_string();
        assert_eq!(err, "/g/base.cfg:3: tickTime set twice (lines 1 and 3; ZooKeeper takes the last)");
        let err = merged("maxClientCnxns=12 34\n").expect_err("not a number").to_string();
        assert_eq!(err, "/g/base.cfg:1: maxClientCnxns = \"12 34\": must be a whole number");
        let err = merged("localSessionsEnabled=maybe\n").expect_err("not a flag").to_string();
        assert!(err.ends_with("must be true, false, yes or no"), "{err}");
        let err = merged("snapshotSizeFactor=0.33\\\n=x\n").expect_err("escaped continuation").to_string();
        assert!(err.contains("snapshotSizeFactor"), "{err}");
        assert!(merged("snapshotSizeFactor=-1\n").is_ok());
        let owned = merge_base(&[], "snapshotSizeFactor=1000\n", Path::new("b"), &["snapshotSizeFactor"]);
        assert!(owned.expect_err("owned").to_string().contains("snapshotSizeFactor is protected"));
    }

    #[test]
    fn every_safety_key_zkpilot_writes_is_protected() {
        // Every key zkpilot writes that a base config could weaken is protected, except the
        // tuning ones an operator may legitimately change.
        let tunable = ["tickTime", "initLimit", "syncLimit", "autopurge.snapRetainCount", "autopurge.purgeInterval"];
        for (k, _) in static_keys(&SETTINGS) {
            assert!(tunable.contains(&k.as_str()) || PROTECTED_KEYS.contains(&k.as_str()), "{k}");
        }
        // Every TLS key is refused in a base config, by name or by prefix.
        let tls = TlsKeys {
            quorum: true,
            client: Some(("127.0.1.1", 2281)),
            client_auth: "need",
            keystore: "/k",
            truststore: "/t",
        };
        let keys = tls_keys(&tls);
        assert_eq!(keys.len(), 15);
        for (k, v) in keys {
            let err = merge_base(&[], &format!("{k}={v}\n"), Path::new("b"), &[]).expect_err(&k).to_string();
            assert!(err.contains(&format!("{k} is protected")), "{err}");
        }
    }
}
