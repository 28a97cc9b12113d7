//! `zkpilot demo`: the README's first command. The demo's story lives in the lab (it brings a
//! group up, writes, scales, kills and checks, which the shipped binary has no business doing), so
//! this replaces the process with `zkpilot-lab demo <args>`, the binary built beside this one.

use std::ffi::OsString;
use std::path::Path;

use clap::Args;

/// Options of `demo`: passed to `zkpilot-lab demo` unchanged (`zkpilot demo --help` shows them).
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Arguments of `zkpilot-lab demo`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<OsString>,
}

/// Execs `zkpilot-lab demo <args>`; returns only if that fails.
pub fn exec(args: &DemoArgs) -> anyhow::Error {
    let me = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return anyhow::Error::new(e).context("locating the zkpilot binary"),
    };
    let lab = me.with_file_name("zkpilot-lab");
    if !lab.is_file() {
        return anyhow::anyhow!(
            "`zkpilot demo` runs the lab binary {}, which is not there; build it with `{}` \
             (./scripts/demo.sh builds both)",
            lab.display(),
            build_command(&me)
        );
    }
    let err = std::os::unix::process::CommandExt::exec(std::process::Command::new(&lab).arg("demo").args(&args.args));
    anyhow::Error::new(err).context(format!("running {}", lab.display()))
}

/// The cargo command that builds the lab where this binary is (`target/<profile>/`).
fn build_command(me: &Path) -> &'static str {
    let profile = me.parent().and_then(Path::file_name).and_then(|n| n.to_str());
    if profile == Some("release") { "cargo build --release -p zkpilot-lab" } else { "cargo build -p zkpilot-lab" }
}
