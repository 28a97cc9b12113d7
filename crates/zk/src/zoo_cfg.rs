//! zoo.cfg: the file itself (a line-preserving parser) and zkpilot's policy for it: which static
//! keys zkpilot writes ([`static_keys`]), which keys a shared base config may not set
//! ([`PROTECTED_KEYS`]) and how the two are merged ([`merge_base`]).
//!
//! Why a parser of our own rather than `java-properties`: zkpilot must edit zoo.cfg in place,
//! keeping ZooKeeper's own `dynamicConfigFile=` rewrite, key order and comments, and must reject
//! malformed input with a file and line number. ZooKeeper writes plain `key=value` lines (no
//! escapes), and a line-preserving reader for that is a few dozen lines; `java-properties` would
//! accept almost any text (a line with no `=` is a key) and re-escape `:` in server lines on write.

use std::path::Path;

use crate::error::FilesError;

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

    /// Parses zoo.cfg text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, FilesError> {
        let mut lines = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (n, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
                lines.push(Line::Verbatim(raw.to_string()));
                continue;
            }
            let malformed = |why: String| FilesError::Malformed { path: path.to_path_buf(), line: n + 1, why };
            let (k, v) =
                trimmed.split_once('=').ok_or_else(|| malformed(format!("expected key=value, found {trimmed:?}")))?;
            let key = k.trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(malformed(format!("invalid key {key:?}")));
            }
            if !seen.insert(key.to_string()) {
                return Err(malformed(format!("duplicate key {key:?}")));
            }
            lines.push(Line::Entry(key.to_string(), v.trim().to_string()));
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

/// zoo.cfg keys a shared base config may not set: they carry zkpilot's safety and security
/// guarantees, or belong in the dynamic file.
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
    "peerType",
];

/// Key prefixes that belong in the dynamic file: ZooKeeper refuses them in the static file once
/// `dynamicConfigFile` is set (Dynamic Reconfiguration guide, "Dynamic configuration file").
const DYNAMIC_PREFIXES: [&str; 3] = ["server.", "group.", "weight."];

/// Merges a shared base config into zkpilot's static keys: base keys win, except protected ones
/// and `server.*`/`group.*`/`weight.*` (dynamic), which are reported back as ignored.
pub fn merge_base(own: &[(String, String)], base: &ZooCfg) -> (Vec<(String, String)>, Vec<String>) {
    let mut merged: Vec<(String, String)> = own.to_vec();
    let mut ignored = Vec::new();
    for (k, v) in base.entries() {
        let dynamic = DYNAMIC_PREFIXES.iter().any(|p| k.starts_with(p));
        if dynamic || PROTECTED_KEYS.contains(&k) {
            ignored.push(k.to_string());
            continue;
        }
        match merged.iter_mut().find(|(mk, _)| mk == k) {
            Some(e) => e.1 = v.to_string(),
            None => merged.push((k.to_string(), v.to_string())),
        }
    }
    (merged, ignored)
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
        let err = ZooCfg::parse("a=1\nthis is not a property\n", Path::new("/c/zoo.cfg")).expect_err("malformed");
        assert_eq!(err.to_string(), "/c/zoo.cfg:2: expected key=value, found \"this is not a property\"");
        let dup = ZooCfg::parse("a=1\na=2\n", Path::new("z")).expect_err("duplicate");
        assert!(dup.to_string().contains("duplicate key"));
    }

    #[test]
    fn base_config_cannot_weaken_safety() {
        let own = static_keys(&SETTINGS);
        let base = ZooCfg::parse(
            "tickTime=1000\nmaxClientCnxns=123\nskipACL=yes\nreconfigEnabled=false\nserver.9=h:1:2;h:3\n",
            Path::new("base.cfg"),
        )
        .expect("base");
        let (merged, ignored) = merge_base(&own, &base);
        let get = |k: &str| merged.iter().find(|(mk, _)| mk == k).map(|(_, v)| v.as_str());
        assert_eq!((get("tickTime"), get("maxClientCnxns")), (Some("1000"), Some("123")));
        assert_eq!((get("reconfigEnabled"), get("skipACL")), (Some("true"), None));
        assert_eq!(ignored, vec!["skipACL", "reconfigEnabled", "server.9"]);
    }

    #[test]
    fn every_safety_key_zkpilot_writes_is_protected() {
        // Every key zkpilot writes that a base config could weaken is protected, except the
        // tuning ones an operator may legitimately change.
        let tunable = ["tickTime", "initLimit", "syncLimit", "autopurge.snapRetainCount", "autopurge.purgeInterval"];
        for (k, _) in static_keys(&SETTINGS) {
            assert!(tunable.contains(&k.as_str()) || PROTECTED_KEYS.contains(&k.as_str()), "{k}");
        }
    }
}
