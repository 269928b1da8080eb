//! An experiment directory written by release 0.1.0 (`fixtures/v0.1.0-finished`: 4 members,
//! 10 steps, synchronous, the no-op trainable) still opens with this build: its stored
//! definition lacks fields added since, which take their defaults, and its database has no
//! tally.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1.0-finished");
    let tmp = tempfile::tempdir().unwrap();
    copy(&src, &tmp.path().join("v1"));
    tmp
}

fn copy(from: &Path, to: &PathBuf) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn poptune(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_poptune"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_directory_of_release_0_1_0_opens_reports_and_resumes() {
    let tmp = fixture();
    let dir = tmp.path().join("v1");
    let d = dir.to_str().unwrap();
    let (ok, out, err) = poptune(&["status", d]);
    assert!(ok, "{err}");
    assert!(out.contains("status: finished"), "{out}");
    assert!(out.contains("4 members, 10 steps each"), "{out}");
    let report = tmp.path().join("report");
    let (ok, _, err) = poptune(&["report", d, "--out", report.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(report.join("report.html").is_file());
    let (ok, out, err) = poptune(&["resume", d]);
    assert!(ok, "{err}");
    assert!(out.contains("already finished"), "{out}");
    let best = tmp.path().join("best");
    let (ok, _, err) = poptune(&["export", d, "--out", best.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(best.join("state.txt").is_file());
}
