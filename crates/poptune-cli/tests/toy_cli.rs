//! `poptune toy` as a user runs it.

use std::process::{Command, Output};

fn poptune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poptune"))
        .args(args)
        .output()
        .expect("the poptune binary runs")
}

fn variant<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["variants"]
        .as_array()
        .expect("variants is an array")
        .iter()
        .find(|v| v["variant"] == name)
        .unwrap_or_else(|| panic!("no variant {name} in {report}"))
}

#[test]
fn toy_json_reproduces_the_paper() {
    let out = poptune(&["toy", "--seeds", "100", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(report["eta"], 0.05);
    assert_eq!(report["seeds"], 100);
    let pbt = variant(&report, "pbt")["mean"].as_f64().unwrap();
    let explore = variant(&report, "explore-only")["mean"].as_f64().unwrap();
    let exploit = variant(&report, "exploit-only")["mean"].as_f64().unwrap();
    let grid = variant(&report, "grid");
    assert!(pbt >= 1.17, "PBT mean {pbt}");
    assert!(pbt > explore + 0.1, "PBT {pbt} vs explore-only {explore}");
    assert!(pbt > grid["mean"].as_f64().unwrap() + 0.5);
    assert!(exploit > grid["mean"].as_f64().unwrap());
    let closed = report["grid_closed_form"].as_f64().unwrap();
    for k in ["mean", "min", "max"] {
        assert!(
            (grid[k].as_f64().unwrap() - closed).abs() < 1e-12,
            "grid {k}"
        );
    }
    for v in report["variants"].as_array().unwrap() {
        let (min, mean, max) = (
            v["min"].as_f64().unwrap(),
            v["mean"].as_f64().unwrap(),
            v["max"].as_f64().unwrap(),
        );
        assert!(min <= mean && mean <= max && max <= 1.2, "{v}");
    }
}

/// PB2 on the toy: the GP bandit finds h that move both coordinates at once, and reaches the
/// optimum on every seed, where PBT's Gaussian noise zig-zags (its mean is about 1.18).
#[test]
fn toy_with_pb2_reaches_the_optimum() {
    let out = poptune(&["toy", "--seeds", "20", "--json", "--algorithm", "pb2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(report["algorithm"], "pb2");
    let pb2 = variant(&report, "pbt");
    assert!(pb2["min"].as_f64().unwrap() > 1.19, "{pb2}");
    let pbt: serde_json::Value =
        serde_json::from_slice(&poptune(&["toy", "--seeds", "20", "--json"]).stdout).unwrap();
    assert!(
        pb2["mean"].as_f64().unwrap() > variant(&pbt, "pbt")["mean"].as_f64().unwrap(),
        "PB2 {pb2} against PBT"
    );
    assert_eq!(pbt["algorithm"], "pbt");
}

#[test]
fn toy_table_and_figure() {
    let dir = std::env::temp_dir().join(format!("poptune-toy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = poptune(&[
        "toy",
        "--seeds",
        "5",
        "--out",
        dir.to_str().unwrap(),
        "--inherit",
        "weights+hyperparameters",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "pbt",
        "explore-only",
        "exploit-only",
        "grid",
        "weights+hyperparameters",
    ] {
        assert!(text.contains(word), "{word} missing from\n{text}");
    }
    let png = std::fs::read(dir.join("toy.png")).expect("toy.png written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 50_000, "a real picture, not an empty one");
    let svg = std::fs::read_to_string(dir.join("toy.svg")).expect("toy.svg written");
    assert!(svg.contains("<svg") && svg.contains("Exploit only"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    for (args, needle) in [
        (vec!["toy", "--eta", "-1"], "--eta"),
        (vec!["toy", "--eta", "2"], "--eta"),
        (vec!["toy", "--seeds", "0"], "--seeds"),
        (vec!["toy", "--noise", "-0.5"], "--noise"),
        (vec!["toy", "--inherit", "everything"], "--inherit"),
        (vec!["toy", "--steps", "many"], "--steps"),
        (vec!["frobnicate"], "frobnicate"),
    ] {
        let out = poptune(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn unwritable_output_directory_is_an_error() {
    let out = poptune(&[
        "toy",
        "--seeds",
        "1",
        "--out",
        "/proc/poptune-cannot-write-here",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/proc/poptune-cannot-write-here"), "{err}");
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    // A pipe whose reader is already gone, as after `poptune toy | head -1` has read its line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_poptune"))
        .args(["toy", "--seeds", "2", "--out", dir.path().to_str().unwrap()])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}

#[test]
fn a_damaged_database_is_named_once_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("experiment.db"),
        b"not a database, but long enough to look like one's header at first glance........",
    )
    .unwrap();
    for cmd in ["status", "resume", "report"] {
        let out = poptune(&[cmd, dir.path().to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(err.contains("experiment.db"), "{cmd}: {err}");
        assert_eq!(err.matches("not a database").count(), 1, "{cmd}: {err}");
        assert!(err.contains("restore it from a copy"), "{cmd}: {err}");
        assert!(!err.contains("panicked"), "{cmd}: {err}");
    }
}
