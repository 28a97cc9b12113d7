//! `zkpilot-lab bench --smoke`: every benchmark runs once with small sizes and the report is written
//! around an existing file's other sections. The figures are not checked (no timing asserts);
//! what is checked is that each benchmark ran to the end and lost nothing.

use crate::harness::*;

#[test]
fn bench_smoke_runs_every_benchmark_and_keeps_the_rest_of_the_file() {
    let dir = tempfile::Builder::new().prefix("zkpilot-it-bench-").tempdir().expect("tempdir");
    let out = dir.path().join("BENCHMARKS.md");
    std::fs::write(
        &out,
        "# Benchmarks\n\nHand-written notes stay.\n\n<!-- bench:begin -->\nold\n<!-- bench:end -->\n\n## Chaos\nkept\n",
    )
    .expect("write");
    let work = dir.path().join("work");
    let (o, w) = (out.to_string_lossy().to_string(), work.to_string_lossy().to_string());
    let run = lab(&["bench", "--smoke", "--out", &o, "--dir", &w, "--net", "127.134"]);
    assert!(run.status.success(), "{}", text(&run));
    let report = std::fs::read_to_string(&out).expect("report");
    for b in ["B1", "B2", "B3", "B4", "B5", "B6", "B7"] {
        assert!(report.contains(&format!("### {b} ")), "{b} missing:\n{report}");
    }
    assert!(report.contains("Hand-written notes stay.") && report.contains("## Chaos\nkept"), "{report}");
    assert!(!report.contains("\nold\n"), "the old section was replaced:\n{report}");
    assert!(!report.contains("NaN"), "{report}");
    for line in report.lines().filter(|l| l.starts_with("| zkpilot reconfig") || l.starts_with("| fixed")) {
        assert!(line.trim_end().ends_with("| 0 |"), "acknowledged writes lost: {line}");
    }
    assert!(report.contains("acked writes lost 0"), "B7 lost writes:\n{report}");
}
