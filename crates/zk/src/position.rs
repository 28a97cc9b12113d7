//! A stopped server's position in the history, read from its data dir: `currentEpoch` and the last
//! logged zxid. A LOOKING server answers no probe ("This ZooKeeper instance is not currently
//! serving requests"), so the quorum-loss survivor is chosen from these, in the election's own
//! order (ZooKeeper's `FastLeaderElection.totalOrderPredicate`: epoch, then zxid, then id).
//!
//! Why a reader of our own: no crate reads ZooKeeper's transaction logs, and the part needed is
//! small and stable since 3.0 (FileTxnLog's javadoc): a 16-byte header (`ZKLG`, version, dbid),
//! then entries `adler32(8) | len(4) | txn(len) | 'B'`, where txn starts with the TxnHeader
//! `sessionid(8) cxid(4) zxid(8) ...`, zero-padded to EOF. A torn or corrupt tail entry (checksum
//! mismatch, short read) ends the log there, as ZooKeeper's own replay does.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::FilesError;

/// Where a server's data stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// `version-2/currentEpoch` (or the last zxid's epoch when the file is missing, as ZooKeeper
    /// itself assumes).
    pub current_epoch: u64,
    /// The highest zxid in a snapshot name or a valid log entry; 0 for an empty data dir.
    pub last_zxid: u64,
}

const MAGIC: &[u8; 4] = b"ZKLG";

/// Reads the position of the data in `version2` (`dataDir/version-2`). The server must be stopped.
pub fn read(version2: &Path) -> Result<Position, FilesError> {
    let mut snapshot_zxid = 0u64;
    let mut logs: Vec<(u64, PathBuf)> = Vec::new();
    let entries = match fs::read_dir(version2) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Position { current_epoch: 0, last_zxid: 0 });
        }
        Err(source) => return Err(FilesError::Io { path: version2.to_path_buf(), source }),
    };
    for entry in entries {
        let entry = entry.map_err(|source| FilesError::Io { path: version2.to_path_buf(), source })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((z, _)) = crate::backup::snapshot_name(&name) {
            snapshot_zxid = snapshot_zxid.max(z);
        } else if let Some(z) = name.strip_prefix("log.").and_then(|h| u64::from_str_radix(h, 16).ok()) {
            logs.push((z, entry.path()));
        }
    }
    logs.sort();
    let mut log_zxid = 0u64;
    // Newest first: a freshly rolled log may hold nothing yet.
    for (_, path) in logs.iter().rev() {
        if let Some(z) = last_logged_zxid(path)? {
            log_zxid = z;
            break;
        }
    }
    let last_zxid = snapshot_zxid.max(log_zxid);
    let epoch_file = version2.join("currentEpoch");
    let current_epoch = match fs::read_to_string(&epoch_file) {
        Ok(text) => text.trim().parse::<u64>().map_err(|e| FilesError::Malformed {
            path: epoch_file.clone(),
            line: 1,
            why: format!("expected a decimal epoch: {e}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => last_zxid >> 32,
        Err(source) => return Err(FilesError::Io { path: epoch_file, source }),
    };
    Ok(Position { current_epoch, last_zxid })
}

/// The zxid of the last intact entry of one log file; `None` when it holds no entry.
pub fn last_logged_zxid(path: &Path) -> Result<Option<u64>, FilesError> {
    Ok(scan_log(path)?.last_zxid)
}

/// How far one log file is intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogScan {
    /// The zxid of the last intact entry, `None` when it holds none.
    pub last_zxid: Option<u64>,
    /// Byte offset just past that entry (the header's end when there is none): a copy cut here
    /// replays exactly the intact entries, since ZooKeeper ends a log at end of file.
    pub intact_len: u64,
}

/// Walks one log file's entries up to the first torn, corrupt or zero-padded one.
pub fn scan_log(path: &Path) -> Result<LogScan, FilesError> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| FilesError::Io { path: path.to_path_buf(), source })?;
    scan_bytes(&bytes, path)
}

/// [`scan_log`] over a log already read; `path` names it in errors.
pub fn scan_bytes(bytes: &[u8], path: &Path) -> Result<LogScan, FilesError> {
    if bytes.len() < 16 || &bytes[..4] != MAGIC {
        return Err(FilesError::Malformed {
            path: path.to_path_buf(),
            line: 0,
            why: "not a ZooKeeper transaction log (no ZKLG header)".into(),
        });
    }
    let mut at = 16usize;
    let mut last = None;
    while let Some(head) = bytes.get(at..at + 12) {
        let checksum = u64::from_be_bytes(head[..8].try_into().unwrap_or_default());
        let len = u32::from_be_bytes(head[8..12].try_into().unwrap_or_default()) as usize;
        if len == 0 {
            break;
        }
        let Some(txn) = bytes.get(at + 12..at + 12 + len) else { break };
        if bytes.get(at + 12 + len) != Some(&b'B') || u64::from(adler2::adler32_slice(txn)) != checksum || len < 20 {
            break;
        }
        last = Some(u64::from_be_bytes(txn[12..20].try_into().unwrap_or_default()));
        at += 12 + len + 1;
    }
    Ok(LogScan { last_zxid: last, intact_len: at as u64 })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn entry(zxid: u64) -> Vec<u8> {
        let mut txn = Vec::new();
        txn.extend_from_slice(&7u64.to_be_bytes()); // session
        txn.extend_from_slice(&1u32.to_be_bytes()); // cxid
        txn.extend_from_slice(&zxid.to_be_bytes());
        txn.extend_from_slice(&0u64.to_be_bytes()); // time
        txn.extend_from_slice(&1i32.to_be_bytes()); // type
        txn.extend_from_slice(b"record");
        let mut e = Vec::new();
        e.extend_from_slice(&u64::from(adler2::adler32_slice(&txn)).to_be_bytes());
        e.extend_from_slice(&(txn.len() as u32).to_be_bytes());
        e.extend_from_slice(&txn);
        e.push(b'B');
        e
    }

    pub(crate) fn log(entries: &[Vec<u8>], pad: usize) -> Vec<u8> {
        let mut b = b"ZKLG".to_vec();
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&0u64.to_be_bytes());
        for e in entries {
            b.extend_from_slice(e);
        }
        b.resize(b.len() + pad, 0);
        b
    }

    #[test]
    fn last_intact_entry_wins_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v2 = dir.path();
        fs::write(v2.join("snapshot.100000000"), b"").expect("write");
        fs::write(v2.join("log.100000001"), log(&[entry(0x1_0000_0001), entry(0x1_0000_0002)], 64)).expect("write");
        let mut torn = entry(0x2_0000_0002);
        let n = torn.len();
        torn[n - 5] ^= 0xff; // corrupt the record: checksum no longer matches
        fs::write(v2.join("log.200000001"), log(&[entry(0x2_0000_0001), torn], 4096)).expect("write");
        fs::write(v2.join("log.300000001"), log(&[], 4096)).expect("write");
        fs::write(v2.join("currentEpoch"), b"3").expect("write");
        assert_eq!(read(v2).expect("read"), Position { current_epoch: 3, last_zxid: 0x2_0000_0001 });
    }

    #[test]
    fn snapshot_newer_than_logs_and_missing_epoch_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("snapshot.500000007"), b"").expect("write");
        fs::write(dir.path().join("log.100000001"), log(&[entry(0x1_0000_0001)], 0)).expect("write");
        assert_eq!(read(dir.path()).expect("read"), Position { current_epoch: 5, last_zxid: 0x5_0000_0007 });
        assert_eq!(read(&dir.path().join("absent")).expect("read"), Position { current_epoch: 0, last_zxid: 0 });
    }

    #[test]
    fn foreign_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("log.1"), b"not a log at all").expect("write");
        let e = read(dir.path()).expect_err("foreign").to_string();
        assert!(e.contains("log.1") && e.contains("ZKLG"), "{e}");
        fs::remove_file(dir.path().join("log.1")).expect("rm");
        fs::write(dir.path().join("currentEpoch"), b"x").expect("write");
        let e = read(dir.path()).expect_err("bad epoch").to_string();
        assert!(e.contains("currentEpoch"), "{e}");
    }
}
