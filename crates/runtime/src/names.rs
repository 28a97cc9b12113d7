//! Name indirection with a hosts file: server lines say `zk-<id>.<domain>`, and every agent keeps
//! a managed block of the hosts file mapping those names to the addresses the servers run on now.
//! A server that comes back on another address (a slot without a fixed interface) then needs no
//! reconfig: peers and clients re-resolve its name.
//!
//! The block is delimited by `# BEGIN zkpilot <domain>` / `# END zkpilot <domain>`; everything
//! outside it is kept byte for byte. The file is rewritten in place under an exclusive lock
//! (`/etc/hosts` is often a bind mount, which a rename cannot replace).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A hosts file that could not be updated; names the file.
#[derive(Debug, thiserror::Error)]
#[error("hosts file {path}: {source}")]
pub struct HostsError {
    /// The file.
    pub path: PathBuf,
    /// Cause.
    #[source]
    pub source: std::io::Error,
}

/// Entries (name → address) of `domain`'s block in `text`.
pub fn block_entries(text: &str, domain: &str) -> BTreeMap<String, String> {
    let (begin, end) = markers(domain);
    let mut inside = false;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line == begin {
            inside = true;
        } else if line == end {
            inside = false;
        } else if inside {
            let mut f = line.split_whitespace();
            if let (Some(addr), Some(name)) = (f.next(), f.next()) {
                out.insert(name.to_string(), addr.to_string());
            }
        }
    }
    out
}

fn markers(domain: &str) -> (String, String) {
    (format!("# BEGIN zkpilot {domain}"), format!("# END zkpilot {domain}"))
}

/// `text` with `domain`'s block replaced by `entries` (appended if absent).
pub fn with_block(text: &str, domain: &str, entries: &BTreeMap<String, String>) -> String {
    let (begin, end) = markers(domain);
    let mut out = String::new();
    let mut inside = false;
    let mut written = false;
    let block = |out: &mut String| {
        out.push_str(&begin);
        out.push('\n');
        for (name, addr) in entries {
            out.push_str(&format!("{addr}\t{name}\n"));
        }
        out.push_str(&end);
        out.push('\n');
    };
    for line in text.lines() {
        if line == begin {
            inside = true;
            if !written {
                block(&mut out);
                written = true;
            }
        } else if line == end {
            inside = false;
        } else if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !written {
        block(&mut out);
    }
    out
}

/// Merges `current` (name → address of servers whose instance runs now) into the file's block;
/// names of servers without a running instance keep their last address. Returns true if the
/// file changed.
pub fn update_hosts_file(path: &Path, domain: &str, current: &BTreeMap<String, String>) -> Result<bool, HostsError> {
    let e = |source| HostsError { path: path.to_path_buf(), source };
    let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(e)?;
    // Several agents on one host (the local backend) write the same file.
    let mut f = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| e(std::io::Error::from(errno)))?;
    let mut text = String::new();
    f.read_to_string(&mut text).map_err(e)?;
    let mut entries = block_entries(&text, domain);
    entries.extend(current.iter().map(|(k, v)| (k.clone(), v.clone())));
    let updated = with_block(&text, domain, &entries);
    if updated == text {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(0)).map_err(e)?;
    f.set_len(0).map_err(e)?;
    f.write_all(updated.as_bytes()).map_err(e)?;
    f.sync_all().map_err(e)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_is_replaced_and_the_rest_kept() {
        let original = "127.0.0.1\tlocalhost\n# a comment\n";
        let m = |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let one = with_block(original, "zk.test", &m(&[("zk-1.zk.test", "127.9.0.1")]));
        assert!(one.starts_with(original), "{one}");
        assert_eq!(block_entries(&one, "zk.test"), m(&[("zk-1.zk.test", "127.9.0.1")]));
        let other = with_block(&one, "other.test", &m(&[("zk-1.other.test", "127.8.0.1")]));
        let two = with_block(&other, "zk.test", &m(&[("zk-1.zk.test", "127.9.0.7"), ("zk-2.zk.test", "127.9.0.2")]));
        assert_eq!(block_entries(&two, "other.test").len(), 1, "another domain's block untouched: {two}");
        assert_eq!(block_entries(&two, "zk.test")["zk-1.zk.test"], "127.9.0.7");
        assert_eq!(two.matches("# BEGIN zkpilot zk.test").count(), 1);
        assert_eq!(with_block(&two, "zk.test", &block_entries(&two, "zk.test")), two, "idempotent");
    }

    #[test]
    fn file_update_merges_and_reports_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("hosts");
        std::fs::write(&p, "127.0.0.1 localhost\n").expect("seed");
        let m = |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert!(update_hosts_file(&p, "d", &m(&[("zk-1.d", "127.5.0.1"), ("zk-2.d", "127.5.0.2")])).expect("1"));
        assert!(!update_hosts_file(&p, "d", &m(&[("zk-1.d", "127.5.0.1")])).expect("2"), "no change");
        assert!(update_hosts_file(&p, "d", &m(&[("zk-1.d", "127.5.0.9")])).expect("3"));
        let text = std::fs::read_to_string(&p).expect("read");
        assert!(text.starts_with("127.0.0.1 localhost\n"));
        assert_eq!(block_entries(&text, "d"), m(&[("zk-1.d", "127.5.0.9"), ("zk-2.d", "127.5.0.2")]));
    }
}
