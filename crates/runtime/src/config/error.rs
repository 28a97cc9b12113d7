//! What is wrong with a config: every error names the file (or the `[api] token_file`) and the
//! field.

use std::path::{Path, PathBuf};

/// A config file that cannot be used; names the file and the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Unreadable file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax, unknown or missing field (the message names it).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// toml's message, with line, column and field.
        message: String,
    },
    /// A field with an unusable value.
    #[error("{path}: field `{field}`: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted field name.
        field: String,
        /// What is wrong.
        why: String,
    },
    /// The file has no `[instance]` and nothing filled it in.
    #[error("{path}: [instance] is missing; {why}")]
    MissingInstance {
        /// The config file.
        path: PathBuf,
        /// Why it could not be filled in.
        why: String,
    },
    /// The file has no `[instance]` and reading it from instance metadata failed.
    #[error("{path}: [instance] is missing and reading it from instance metadata failed")]
    InstanceMetadata {
        /// The config file.
        path: PathBuf,
        /// The metadata service's (or the build's) error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `[api] token_file` is unreadable or holds no usable token.
    #[error("[api] token_file {}: {why}", path.display())]
    TokenFile {
        /// The token file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

impl ConfigError {
    /// [`ConfigError::InstanceMetadata`] for the config file at `path`.
    pub fn instance_metadata(path: &Path, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::InstanceMetadata { path: path.to_path_buf(), source: source.into() }
    }
}
