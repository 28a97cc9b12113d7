//! Arguments several commands share.

use std::path::PathBuf;

use clap::Args;

/// Group directory option shared by every command on a local group.
#[derive(Debug, Clone, Args)]
pub struct DirArg {
    /// State directory of the group [default: $ZKPILOT_LOCAL_DIR or $TMPDIR/zkpilot-local].
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

impl DirArg {
    /// The directory given, or the default.
    pub fn path(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| {
            std::env::var_os("ZKPILOT_LOCAL_DIR")
                .map_or_else(|| std::env::temp_dir().join("zkpilot-local"), PathBuf::from)
        })
    }
}

/// This binary: a local group's controller and agents run it.
pub fn zkpilot_exe() -> anyhow::Result<PathBuf> {
    anyhow::Context::context(std::env::current_exe(), "locating the zkpilot binary")
}
