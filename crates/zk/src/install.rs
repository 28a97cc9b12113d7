//! Where ZooKeeper is installed and how its JVM is launched.
//!
//! Two layouts are recognised:
//! * An Apache release home (`<home>/lib/zookeeper-3.x.y.jar` and its dependencies in `lib/`): the
//!   binary tarball, or what `scripts/install-zookeeper.sh` assembles from Maven Central into
//!   `$HOME/.cache/zkpilot/zookeeper-<version>/` (the default, [`default_home`]). 3.5 to 3.9;
//!   3.8+ log through logback, older ones through log4j, and zkpilot writes a console
//!   configuration for both.
//! * Debian's package (`/usr/share/java/zookeeper.jar`). Its default classpath lacks an slf4j
//!   binding (nothing is logged) and the servlet API (the AdminServer silently does not start), so
//!   both are added (Debian's own `zkEnv.sh` hard-codes the classpath to `zookeeper.jar`, and its
//!   scripts start a server that logs nothing and has no AdminServer). Debian 12 ships 3.8.0,
//!   which lacks data-loss and CVE fixes of 3.8.6/3.9.5 (ZOOKEEPER-4785, CVE-2023-44981,
//!   CVE-2026-24281): kept as a legacy install the version matrix still tests.

use std::path::{Path, PathBuf};

use zkpilot_core::version::LearnerSync;

pub use zkpilot_core::version::DEFAULT_VERSION;

/// Debian's package (`apt install zookeeper`; 3.8.0 on Debian 12).
pub const DEBIAN_HOME: &str = "/usr/share/java";

/// Where `scripts/install-zookeeper.sh` puts a release: `$HOME/.cache/zkpilot/zookeeper-<version>`.
pub fn cached_home(version: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
    home.join(".cache/zkpilot").join(format!("zookeeper-{version}"))
}

/// The install used when none is named: [`DEFAULT_VERSION`] where the installer puts it. The
/// binaries' `--zookeeper` flags also read `ZKPILOT_ZOOKEEPER`, which is how the test suite runs
/// its version matrix.
pub fn default_home() -> PathBuf {
    cached_home(DEFAULT_VERSION)
}

/// A ZooKeeper install that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// Nothing recognisable at the path.
    #[error(
        "no ZooKeeper install at {path}: expected {path}/lib/zookeeper-3.*.jar (an Apache release; `scripts/install-deps.sh` installs {DEFAULT_VERSION} into {default}) or {path}/zookeeper.jar (Debian package `zookeeper`, {DEBIAN_HOME})",
        default = default_home().display()
    )]
    NotFound {
        /// The configured path.
        path: PathBuf,
    },
    /// Debian layout with a required jar missing.
    #[error(
        "ZooKeeper at {path} lacks {jar} (needed for {why}); install Debian packages zookeeper and libservlet-api-java"
    )]
    MissingJar {
        /// Install path.
        path: PathBuf,
        /// Missing jar.
        jar: String,
        /// What it is for.
        why: &'static str,
    },
    /// A version older than 3.5 (no dynamic reconfiguration).
    #[error("ZooKeeper {version} at {path} predates dynamic reconfiguration; 3.5 or newer is required")]
    TooOld {
        /// Install path.
        path: PathBuf,
        /// Version found.
        version: String,
    },
    /// No java binary.
    #[error("java not found at {0}; install a JRE (Debian: default-jre-headless)")]
    NoJava(PathBuf),
}

/// A usable install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// The `java` binary.
    pub java: PathBuf,
    /// JVM classpath.
    pub classpath: String,
    /// Version from the jar name, when the layout tells it.
    pub version: Option<String>,
    /// The directory holding the jars (Debian's `/usr/share/java`, a release's `lib/`).
    pub jars: PathBuf,
}

/// JVM settings for one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JvmSettings {
    /// Maximum heap, MiB.
    pub heap_mb: u32,
    /// Name indirection: resolve names through this hosts file only (`jdk.net.hosts.file`);
    /// `None` uses the system resolver.
    pub hosts_file: Option<PathBuf>,
    /// Name indirection: cache resolved names this long, so a moved server is found again
    /// within seconds (the JVM default is 30 s).
    pub dns_ttl_s: Option<u32>,
    /// How, as leader, it syncs a learner that is behind ([`LearnerSync::resolve`] picks for
    /// `Auto` by this install's version).
    pub learner_sync: LearnerSync,
}

impl Install {
    /// Detects the layout at `path` and finds `java` (an explicit path, or the first on `PATH`).
    pub fn detect(path: &Path, java: Option<&Path>) -> Result<Self, InstallError> {
        let java = match java {
            Some(j) => j.to_path_buf(),
            None => find_on_path("java").ok_or_else(|| InstallError::NoJava(PathBuf::from("java (on PATH)")))?,
        };
        if !java.is_file() {
            return Err(InstallError::NoJava(java));
        }
        if path.join("zookeeper.jar").is_file() {
            let mut parts = vec![path.join("zookeeper.jar")];
            for (jar, why) in
                [("servlet-api.jar", "the AdminServer"), ("slf4j-log4j12.jar", "logging"), ("log4j-1.2.jar", "logging")]
            {
                let p = path.join(jar);
                if !p.is_file() {
                    return Err(InstallError::MissingJar { path: path.to_path_buf(), jar: jar.into(), why });
                }
                parts.push(p);
            }
            let classpath = parts.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>().join(":");
            // Debian links `zookeeper-<version>.jar` beside `zookeeper.jar`.
            return Ok(Self { java, classpath, version: jar_version(path), jars: path.to_path_buf() });
        }
        let lib = path.join("lib");
        let Some(version) = jar_version(&lib) else {
            return Err(InstallError::NotFound { path: path.to_path_buf() });
        };
        let minor: u32 = version.split('.').nth(1).and_then(|m| m.parse().ok()).unwrap_or(0);
        if minor < 5 {
            return Err(InstallError::TooOld { path: path.to_path_buf(), version });
        }
        Ok(Self { java, classpath: format!("{}/*", lib.to_string_lossy()), version: Some(version), jars: lib })
    }

    /// Program and arguments that run one server from `zoo_cfg`. Logging goes to the console (the
    /// supervisor appends it to the log file); both log4j and logback configs are passed so either
    /// binding finds one.
    pub fn server_command(&self, conf_dir: &Path, zoo_cfg: &Path, jvm: &JvmSettings) -> (PathBuf, Vec<String>) {
        let args = vec![
            "-XX:-UsePerfData".to_string(),
            "-Xms32m".to_string(),
            format!("-Xmx{}m", jvm.heap_mb),
            "-XX:+UseSerialGC".to_string(),
            "-XX:TieredStopAtLevel=1".to_string(),
            // ZOOKEEPER-261: an empty data dir (a lost disk) must not vote until synced.
            "-Dzookeeper.db.autocreate=false".to_string(),
            format!("-Dlog4j.configuration=file:{}", conf_dir.join("log4j.properties").display()),
            format!("-Dlogback.configurationFile={}", conf_dir.join("logback.xml").display()),
        ];
        let mut args = args;
        args.extend(jvm.learner_sync.jvm_properties(self.version.as_deref()));
        if let Some(ttl) = jvm.dns_ttl_s {
            args.push(format!("-Dsun.net.inetaddr.ttl={ttl}"));
            args.push("-Dsun.net.inetaddr.negative.ttl=1".to_string());
        }
        if let Some(f) = &jvm.hosts_file {
            args.push(format!("-Djdk.net.hosts.file={}", f.display()));
        }
        args.extend([
            "-cp".to_string(),
            self.classpath.clone(),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain".to_string(),
            zoo_cfg.to_string_lossy().into_owned(),
        ]);
        (self.java.clone(), args)
    }
}

/// Writes console logging configs for log4j 1.x and logback into `conf_dir`.
pub fn write_logging_config(conf_dir: &Path) -> Result<(), crate::files::FilesError> {
    let log4j = "log4j.rootLogger=INFO, CONSOLE\n\
                 log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n\
                 log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n\
                 log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n\n";
    let logback = r#"<configuration>
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="CONSOLE"/></root>
</configuration>
"#;
    crate::files::write_atomic(&conf_dir.join("log4j.properties"), log4j.as_bytes())?;
    crate::files::write_atomic(&conf_dir.join("logback.xml"), logback.as_bytes())
}

/// The first directory on the way to `path` (itself included) that `uid`/`gid` may not enter or,
/// for `path` itself, list: a server run as another uid (`[server] run_as_uid`) cannot load an
/// install below a private home (`/root` is 0700). `None` when the whole way is open.
pub fn closed_to(path: &Path, uid: u32, gid: u32) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let may = |m: &std::fs::Metadata, bits: u32| {
        let mode = m.mode();
        if m.uid() == uid {
            mode & (bits << 6) == bits << 6
        } else if m.gid() == gid {
            mode & (bits << 3) == bits << 3
        } else {
            mode & bits == bits
        }
    };
    let mut dirs: Vec<&Path> = path.ancestors().collect();
    dirs.reverse();
    for d in dirs {
        // Enter every directory on the way; read and enter the last one.
        let bits = if d == path { 0o5 } else { 0o1 };
        match std::fs::metadata(d) {
            Ok(m) if may(&m, bits) => {}
            _ => return Some(d.to_path_buf()),
        }
    }
    None
}

/// The version in the name of the `zookeeper-3.x.y.jar` in `dir` (not `zookeeper-jute-…`).
fn jar_version(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir).ok().into_iter().flatten().flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let v = name.strip_prefix("zookeeper-")?.strip_suffix(".jar")?;
        (v.starts_with("3.") && v.chars().nth(2).is_some_and(|c| c.is_ascii_digit())).then(|| v.to_string())
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_install_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let java = dir.path().join("java");
        std::fs::write(&java, b"").expect("write");
        let err = Install::detect(&dir.path().join("nope"), Some(&java)).expect_err("missing");
        assert!(err.to_string().contains("no ZooKeeper install at"), "{err}");
        let err = Install::detect(dir.path(), Some(&dir.path().join("nojava"))).expect_err("no java");
        assert!(err.to_string().contains("java not found"), "{err}");
    }

    #[test]
    fn tarball_layout_and_version_floor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let java = dir.path().join("java");
        std::fs::write(&java, b"").expect("write");
        let lib = dir.path().join("lib");
        std::fs::create_dir_all(&lib).expect("mkdir");
        std::fs::write(lib.join("zookeeper-3.4.14.jar"), b"").expect("write");
        assert!(matches!(Install::detect(dir.path(), Some(&java)), Err(InstallError::TooOld { .. })));
        std::fs::remove_file(lib.join("zookeeper-3.4.14.jar")).expect("rm");
        std::fs::write(lib.join("zookeeper-3.9.5.jar"), b"").expect("write");
        let i = Install::detect(dir.path(), Some(&java)).expect("tarball");
        assert_eq!(i.version.as_deref(), Some("3.9.5"));
        assert!(i.classpath.ends_with("/lib/*"));
        // The jute jar does not pass for the server's.
        std::fs::remove_file(lib.join("zookeeper-3.9.5.jar")).expect("rm");
        std::fs::write(lib.join("zookeeper-jute-3.9.5.jar"), b"").expect("write");
        assert!(matches!(Install::detect(dir.path(), Some(&java)), Err(InstallError::NotFound { .. })));
    }

    #[test]
    fn debian_layout_tells_its_version_from_the_link_beside_the_jar() {
        let dir = tempfile::tempdir().expect("tempdir");
        let java = dir.path().join("java");
        std::fs::write(&java, b"").expect("write");
        for jar in ["zookeeper.jar", "servlet-api.jar", "slf4j-log4j12.jar", "log4j-1.2.jar"] {
            std::fs::write(dir.path().join(jar), b"").expect("write");
        }
        std::os::unix::fs::symlink("zookeeper.jar", dir.path().join("zookeeper-3.8.0.jar")).expect("link");
        let i = Install::detect(dir.path(), Some(&java)).expect("debian");
        assert_eq!(i.version.as_deref(), Some("3.8.0"));
        assert!(i.classpath.contains("zookeeper.jar:"), "{}", i.classpath);
    }

    #[test]
    fn a_private_home_is_closed_to_another_uid() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let lib = home.join("zk/lib");
        std::fs::create_dir_all(&lib).expect("mkdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let me = nix_ids();
        // Its owner may; a stranger may not, and the closed directory is named.
        assert_eq!(closed_to(&lib, me.0, me.1), None);
        assert_eq!(closed_to(&lib, 54_321, 54_321), Some(home.clone()));
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        assert_eq!(closed_to(&lib, 54_321, 54_321), None, "enter-only on the way is enough");
        std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        assert_eq!(closed_to(&lib, 54_321, 54_321), Some(lib.clone()), "the jar dir itself must be listable");
    }

    /// This process's uid and gid, as the files it creates carry them.
    fn nix_ids() -> (u32, u32) {
        use std::os::unix::fs::MetadataExt;
        let m = tempfile::tempfile().expect("tempfile").metadata().expect("metadata");
        (m.uid(), m.gid())
    }

    #[test]
    fn the_default_is_the_cached_release() {
        let d = default_home();
        assert!(d.ends_with(format!(".cache/zkpilot/zookeeper-{DEFAULT_VERSION}")), "{}", d.display());
    }
}
