//! The files of a backup, picked from a running server's `version-2` and copied so that a server
//! started on the copy alone loads exactly the data they hold.
//!
//! ZooKeeper's snapshots are fuzzy: one started at zxid Z holds some changes after Z, which the
//! logs replay idempotently. So a backup is the newest *complete* snapshot (one still being
//! written fails the same tail check ZooKeeper's `SnapStream.isValidSnapshot` applies) plus the
//! log that was open at Z and every later log — the rule of `FileTxnLog.getLogFiles` — each cut
//! at its last intact entry, since the live log is being appended to while it is copied and is
//! zero-padded beyond that point.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zkpilot_core::backup::{BackupFile, Manifest};

use crate::files::FilesError;
use crate::position;

/// What was staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// The snapshot's zxid.
    pub snapshot_zxid: u64,
    /// The last zxid the copy holds.
    pub last_zxid: u64,
    /// The copied files, snapshot first.
    pub files: Vec<BackupFile>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io { path: path.to_path_buf(), source }
}

fn zxid_of(name: &str, prefix: &str) -> Option<u64> {
    name.strip_prefix(prefix).and_then(|h| u64::from_str_radix(h, 16).ok())
}

/// How a snapshot file is stored (`snapshot.compression.method`, ZooKeeper 3.6+): the file name
/// says it (`SnapStream.getStreamMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotFormat {
    /// `snapshot.<zxid>`: ZooKeeper's checked stream.
    Plain,
    /// `snapshot.<zxid>.gz`.
    Gzip,
    /// `snapshot.<zxid>.snappy` (snappy-java's stream format).
    Snappy,
}

/// The zxid and format of a snapshot file name; `None` for anything else.
pub fn snapshot_name(name: &str) -> Option<(u64, SnapshotFormat)> {
    let rest = name.strip_prefix("snapshot.")?;
    let (hex, format) = match rest.split_once('.') {
        None => (rest, SnapshotFormat::Plain),
        Some((hex, "gz")) => (hex, SnapshotFormat::Gzip),
        Some((hex, "snappy")) => (hex, SnapshotFormat::Snappy),
        Some(_) => return None,
    };
    Some((u64::from_str_radix(hex, 16).ok()?, format))
}

/// Whether a snapshot is complete: its (decompressed) content ends with the int 1 followed by
/// `/`, written last after the checksum. For an uncompressed snapshot that is ZooKeeper's own
/// check (`SnapStream.isValidSnapshot`). For a compressed one ZooKeeper checks only the magic
/// header, which a snapshot still being written already has, so zkpilot decompresses the whole
/// stream: a gzip stream must end with its trailer (CRC and length), a snappy stream with whole
/// blocks, and the content with that tail.
pub fn snapshot_is_complete(path: &Path) -> Result<bool, FilesError> {
    let format = path.file_name().and_then(|n| snapshot_name(&n.to_string_lossy())).map(|(_, f)| f);
    match format.unwrap_or(SnapshotFormat::Plain) {
        SnapshotFormat::Plain => {
            let mut f = fs::File::open(path).map_err(io(path))?;
            let len = f.metadata().map_err(io(path))?.len();
            if len < 10 {
                return Ok(false);
            }
            let mut tail = [0u8; 5];
            f.seek(SeekFrom::End(-5)).and_then(|_| f.read_exact(&mut tail)).map_err(io(path))?;
            Ok(tail == SNAPSHOT_TAIL)
        }
        SnapshotFormat::Gzip => {
            let f = fs::File::open(path).map_err(io(path))?;
            Ok(content_tail(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f)))
                .is_some_and(|t| t == SNAPSHOT_TAIL))
        }
        SnapshotFormat::Snappy => {
            let bytes = fs::read(path).map_err(io(path))?;
            Ok(snappy_java_decompress(&bytes).is_some_and(|c| c.len() >= 10 && c.ends_with(&SNAPSHOT_TAIL)))
        }
    }
}

/// The last bytes of every complete snapshot's content.
const SNAPSHOT_TAIL: [u8; 5] = [0, 0, 0, 1, b'/'];

/// Reads `r` to its end and returns its last five bytes; `None` if reading fails (a truncated
/// or corrupt stream) or the content is too short to be a snapshot.
fn content_tail(mut r: impl Read) -> Option<[u8; 5]> {
    let mut buf = vec![0u8; 1 << 16];
    let mut tail = Vec::with_capacity(5);
    let mut total = 0usize;
    loop {
        let n = r.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        total += n;
        tail.extend_from_slice(&buf[..n]);
        let keep = tail.len().saturating_sub(5);
        tail.drain(..keep);
    }
    (total >= 10).then(|| tail.try_into().ok()).flatten()
}

/// snappy-java's `SnappyOutputStream` format, which ZooKeeper writes for `.snappy` snapshots: an
/// 8-byte magic (`0x82 SNAPPY 0x00`), two big-endian ints (version, compatible version), then
/// blocks of a big-endian int length and that many bytes of raw snappy; a stream may be
/// concatenated to another (the magic again). The `snap` crate decodes the raw blocks; its own
/// framing is the other, official snappy stream format, so the container is read here.
fn snappy_java_decompress(mut b: &[u8]) -> Option<Vec<u8>> {
    const MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
    let mut out = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    if !b.starts_with(&MAGIC) {
        return None;
    }
    while !b.is_empty() {
        if b.starts_with(&MAGIC) {
            b = b.get(16..)?;
            continue;
        }
        let len = u32::from_be_bytes(b.get(..4)?.try_into().ok()?) as usize;
        let block = b.get(4..4 + len)?;
        out.extend_from_slice(&decoder.decompress_vec(block).ok()?);
        b = &b[4 + len..];
    }
    Some(out)
}

/// Copies a backup's files from `version2` into `staging` (which must not exist). `None` when no
/// complete snapshot exists yet (a server writes its first one at startup).
pub fn stage(version2: &Path, staging: &Path) -> Result<Option<Staged>, FilesError> {
    let mut snapshots = Vec::new();
    let mut logs = Vec::new();
    for entry in fs::read_dir(version2).map_err(io(version2))? {
        let entry = entry.map_err(io(version2))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((z, _)) = snapshot_name(&name) {
            snapshots.push((z, entry.path()));
        } else if let Some(z) = zxid_of(&name, "log.") {
            logs.push((z, entry.path()));
        }
    }
    snapshots.sort();
    logs.sort();
    let mut snapshot = None;
    for (z, path) in snapshots.into_iter().rev() {
        if snapshot_is_complete(&path)? {
            snapshot = Some((z, path));
            break;
        }
    }
    let Some((snapshot_zxid, snapshot_path)) = snapshot else { return Ok(None) };
    // The newest log that starts at or before the snapshot, and everything after it.
    let first = logs.iter().filter(|(start, _)| *start <= snapshot_zxid).map(|(start, _)| *start).max().unwrap_or(0);
    fs::create_dir_all(staging).map_err(io(staging))?;
    let mut files = Vec::new();
    let name = file_name(&snapshot_path);
    let to = staging.join(&name);
    fs::copy(&snapshot_path, &to).map_err(io(&snapshot_path))?;
    files.push(describe(&to, name)?);
    let mut last_zxid = snapshot_zxid;
    for (_, path) in logs.iter().filter(|(start, _)| *start >= first) {
        let bytes = fs::read(path).map_err(io(path))?;
        let scan = position::scan_bytes(&bytes, path)?;
        let Some(last) = scan.last_zxid else { continue };
        last_zxid = last_zxid.max(last);
        let name = file_name(path);
        let to = staging.join(&name);
        fs::write(&to, &bytes[..scan.intact_len as usize]).map_err(io(&to))?;
        files.push(describe(&to, name)?);
    }
    Ok(Some(Staged { snapshot_zxid, last_zxid, files }))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn describe(path: &Path, name: String) -> Result<BackupFile, FilesError> {
    Ok(BackupFile { name, bytes: fs::metadata(path).map_err(io(path))?.len(), sha256: sha256_file(path)? })
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, FilesError> {
    let mut f = fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks fetched files against their manifest: every file present with its size and checksum,
/// and the data they hold ends at the manifest's last zxid. Errors name the file.
pub fn verify(dir: &Path, manifest: &Manifest) -> Result<(), FilesError> {
    for f in &manifest.files {
        let path: PathBuf = dir.join(&f.name);
        let bytes = fs::metadata(&path).map_err(io(&path))?.len();
        let sha = sha256_file(&path)?;
        if bytes != f.bytes || sha != f.sha256 {
            return Err(FilesError::Malformed {
                path,
                line: 0,
                why: format!(
                    "backup {} says {} bytes sha256 {}, fetched {bytes} bytes sha256 {sha}",
                    manifest.name, f.bytes, f.sha256
                ),
            });
        }
    }
    let at = position::read(dir)?;
    if at.last_zxid != manifest.last_zxid {
        return Err(FilesError::Malformed {
            path: dir.to_path_buf(),
            line: 0,
            why: format!(
                "backup {} should end at zxid {:#x}, its files end at {:#x}",
                manifest.name, manifest.last_zxid, at.last_zxid
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::tests::{entry, log};

    fn snapshot(complete: bool) -> Vec<u8> {
        let mut b = b"ZKSN-snapshot-body".to_vec();
        b.extend_from_slice(&if complete { [0, 0, 0, 1, b'/'] } else { [0, 0, 0, 0, 0] });
        b
    }

    #[test]
    fn newest_complete_snapshot_with_the_log_open_at_it_and_later_logs_cut_at_their_intact_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v2 = dir.path().join("version-2");
        fs::create_dir_all(&v2).expect("mkdir");
        fs::write(v2.join("log.100000001"), log(&[entry(0x1_0000_0001)], 64)).expect("write");
        fs::write(v2.join("snapshot.100000001"), snapshot(true)).expect("write");
        fs::write(v2.join("log.100000002"), log(&[entry(0x1_0000_0002), entry(0x1_0000_0003)], 64)).expect("write");
        fs::write(v2.join("snapshot.100000003"), snapshot(true)).expect("write");
        // Being written: ZooKeeper would skip it, so does the backup.
        fs::write(v2.join("snapshot.100000005"), snapshot(false)).expect("write");
        let mut torn = entry(0x1_0000_0005);
        let n = torn.len();
        torn[n - 3] ^= 0xff;
        fs::write(v2.join("log.100000004"), log(&[entry(0x1_0000_0004), torn], 4096)).expect("write");
        fs::write(v2.join("log.100000006"), log(&[], 4096)).expect("write");
        fs::write(v2.join("currentEpoch"), b"1").expect("write");

        let staging = dir.path().join("staged");
        let s = stage(&v2, &staging).expect("stage").expect("a snapshot exists");
        assert_eq!(s.snapshot_zxid, 0x1_0000_0003);
        assert_eq!(s.last_zxid, 0x1_0000_0004);
        let names: Vec<&str> = s.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["snapshot.100000003", "log.100000002", "log.100000004"], "no older log, no empty log");
        let cut = fs::read(staging.join("log.100000004")).expect("read");
        assert_eq!(cut.len(), 16 + entry(0x1_0000_0004).len(), "cut after the last intact entry");
        assert_eq!(position::read(&staging).expect("read").last_zxid, 0x1_0000_0004);

        let manifest = Manifest {
            name: "b".into(),
            cluster_id: "c".into(),
            server_id: zkpilot_core::ServerId::new(1).expect("id"),
            taken_ms: 1,
            reason: zkpilot_core::backup::BackupReason::Manual,
            snapshot_zxid: s.snapshot_zxid,
            last_zxid: s.last_zxid,
            config_version: None,
            files: s.files.clone(),
        };
        verify(&staging, &manifest).expect("intact");
        fs::write(staging.join("log.100000002"), b"ZKLG tampered").expect("write");
        let e = verify(&staging, &manifest).expect_err("tampered").to_string();
        assert!(e.contains("log.100000002") && e.contains("sha256"), "{e}");
    }

    #[test]
    fn snapshot_names_carry_their_compression() {
        assert_eq!(snapshot_name("snapshot.100000003"), Some((0x1_0000_0003, SnapshotFormat::Plain)));
        assert_eq!(snapshot_name("snapshot.100000003.gz"), Some((0x1_0000_0003, SnapshotFormat::Gzip)));
        assert_eq!(snapshot_name("snapshot.1a.snappy"), Some((0x1a, SnapshotFormat::Snappy)));
        assert_eq!(snapshot_name("snapshot.1a.zst"), None);
        assert_eq!(snapshot_name("snapshot.xyz"), None);
        assert_eq!(snapshot_name("log.100000001"), None);
    }

    fn gz(content: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(content).expect("gzip");
        e.finish().expect("gzip")
    }

    /// snappy-java's stream: magic, version 1, compatible 1, then length-prefixed raw blocks.
    fn snappy_java(content: &[u8], block: usize) -> Vec<u8> {
        let mut out = vec![0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1];
        for chunk in content.chunks(block) {
            let c = snap::raw::Encoder::new().compress_vec(chunk).expect("snappy");
            out.extend_from_slice(&(c.len() as u32).to_be_bytes());
            out.extend_from_slice(&c);
        }
        out
    }

    #[test]
    fn compressed_snapshots_are_complete_only_when_their_whole_stream_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut body = b"ZKSN".repeat(5000);
        body.extend_from_slice(&snapshot(true));
        let mut open = b"ZKSN".repeat(5000);
        open.extend_from_slice(&snapshot(false));
        let cases: [(&str, Vec<u8>, bool); 7] = [
            ("snapshot.1.gz", gz(&body), true),
            ("snapshot.2.gz", gz(&open), false),
            // Still being written: the magic is there, the end is not.
            (
                "snapshot.3.gz",
                {
                    let g = gz(&body);
                    g[..g.len() - 9].to_vec()
                },
                false,
            ),
            ("snapshot.4.snappy", snappy_java(&body, 4096), true),
            ("snapshot.5.snappy", snappy_java(&open, 4096), false),
            (
                "snapshot.6.snappy",
                {
                    let s = snappy_java(&body, 4096);
                    s[..s.len() - 7].to_vec()
                },
                false,
            ),
            ("snapshot.7.snappy", [snappy_java(&body[..9000], 4096), snappy_java(&body[9000..], 4096)].concat(), true),
        ];
        for (name, bytes, complete) in cases {
            let p = dir.path().join(name);
            fs::write(&p, bytes).expect("write");
            assert_eq!(snapshot_is_complete(&p).expect("check"), complete, "{name}");
        }
    }

    #[test]
    fn a_compressed_snapshot_is_staged_under_its_own_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v2 = dir.path().join("version-2");
        fs::create_dir_all(&v2).expect("mkdir");
        fs::write(v2.join("log.100000001"), log(&[entry(0x1_0000_0001), entry(0x1_0000_0002)], 64)).expect("write");
        fs::write(v2.join("snapshot.100000001.gz"), gz(&snapshot(true).repeat(3))).expect("write");
        fs::write(v2.join("snapshot.100000002.snappy"), snappy_java(&snapshot(false), 16)).expect("write");
        let s = stage(&v2, &dir.path().join("staged")).expect("stage").expect("a snapshot exists");
        let names: Vec<&str> = s.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["snapshot.100000001.gz", "log.100000001"]);
        assert_eq!((s.snapshot_zxid, s.last_zxid), (0x1_0000_0001, 0x1_0000_0002));
        assert_eq!(position::read(&dir.path().join("staged")).expect("read").last_zxid, 0x1_0000_0002);
    }

    #[test]
    fn nothing_to_stage_before_the_first_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("snapshot.0"), snapshot(false)).expect("write");
        assert_eq!(stage(dir.path(), &dir.path().join("s")).expect("stage"), None);
        assert!(!dir.path().join("s").exists(), "nothing staged");
    }
}
