//! The `zkpilot` binary the lab's groups run (their controller and agents): the one built beside
//! `zkpilot-lab`, in the same target directory.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// `zkpilot` next to this executable; an error naming the missing file and how to build it.
pub fn zkpilot() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating the zkpilot-lab binary")?;
    let zkpilot = me.with_file_name("zkpilot");
    if !zkpilot.is_file() {
        let release = me.parent().and_then(|d| d.file_name()).is_some_and(|n| n == "release");
        bail!(
            "zkpilot-lab runs its groups with the zkpilot binary {}, which is not there; build it with \
             `cargo build {}-p zkpilot` (the same profile and target directory as zkpilot-lab)",
            zkpilot.display(),
            if release { "--release " } else { "" }
        );
    }
    Ok(zkpilot)
}
