//! Running `zkpilot-lab` and reading what it leaves behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const LAB: &str = env!("CARGO_BIN_EXE_zkpilot-lab");

/// `zkpilot-lab ARGS`; the `zkpilot` beside it must exist (it runs every group).
pub fn lab(args: &[&str]) -> Output {
    lab_command().args(args).output().expect("run zkpilot-lab")
}

/// A `zkpilot-lab` command, after checking its sibling `zkpilot` was built.
pub fn lab_command() -> Command {
    let zkpilot = Path::new(LAB).with_file_name("zkpilot");
    assert!(
        zkpilot.is_file(),
        "{} is missing: build it too (`cargo nextest run --workspace` or `cargo build -p zkpilot`)",
        zkpilot.display()
    );
    Command::new(LAB)
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn read_json(p: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Processes whose command line mentions `path`.
pub fn processes_mentioning(path: &Path) -> Vec<u32> {
    let needle = path.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let state = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = state.rsplit(')').next().and_then(|r| r.split_whitespace().next()) == Some("Z");
        if !zombie && String::from_utf8_lossy(&cmd).contains(&needle) {
            out.push(pid);
        }
    }
    out
}

/// Every file under `dir` with its content.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.display().to_string(), std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

/// Records that part of a test could not run here: said on stderr and, when the suite runs under
/// `scripts/test.sh`, appended to `$ZKPILOT_SKIPS`, which it prints in its final summary.
pub fn record_skip(what: &str) {
    eprintln!("SKIPPED: {what}");
    if let Some(path) = std::env::var_os("ZKPILOT_SKIPS") {
        use std::io::Write;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
        if let Err(e) = file.and_then(|mut f| writeln!(f, "{what}")) {
            eprintln!("recording the skip in {}: {e}", std::path::Path::new(&path).display());
        }
    }
}
