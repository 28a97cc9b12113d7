//! Bad input gets a clear error, and nothing on disk changes.

use crate::harness::*;

#[test]
fn fixed_replace_into_a_non_empty_dir_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let busy = dir.path().join("fixed");
    std::fs::create_dir_all(&busy).expect("mkdir");
    std::fs::write(busy.join("keep-me"), b"data").expect("write");
    let before = snapshot(&busy);
    let o = lab(&["fixed", "replace", "--dir", busy.to_str().expect("utf-8"), "--net", "127.199.4"]);
    assert!(!o.status.success() && text(&o).contains("not empty"), "{}", text(&o));
    assert_eq!(snapshot(&busy), before, "nothing changed");
}
