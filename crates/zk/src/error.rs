//! The error of every file zkpilot reads or writes for ZooKeeper (zoo.cfg, the dynamic file,
//! `myid`, the stamp, the data dir): its own module so that the zoo.cfg parser and the file
//! handling both use it without importing each other.

use std::path::PathBuf;

/// A file that could not be read, parsed or written; names the file (and line) and leaves it as it
/// was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilesError {
    /// I/O failure on a path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Malformed content.
    #[error("{path}:{line}: {why}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when the whole file is at fault).
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The directory holds state that is not this server's, or is half-written in a way zkpilot
    /// cannot account for. Nothing is changed.
    #[error("{path}: {why}")]
    Refused {
        /// The directory or file.
        path: PathBuf,
        /// Why zkpilot will not touch it.
        why: String,
    },
}
