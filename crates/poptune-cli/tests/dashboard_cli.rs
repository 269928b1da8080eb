//! `poptune dashboard` and the dashboard page `poptune report` writes, from the command line
//! (the page itself is tested in a browser in crates/poptune-dashboard/tests).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

fn experiment() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1.0-finished");
    let tmp = tempfile::tempdir().unwrap();
    copy(&src, &tmp.path().join("exp"));
    tmp
}

fn copy(from: &Path, to: &Path) {
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

/// GET `path` from 127.0.0.1:`port`: the status line and the body.
fn get(port: u16, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn the_dashboard_command_serves_the_experiment_and_prints_its_url() {
    let tmp = experiment();
    let mut child = Command::new(env!("CARGO_BIN_EXE_poptune"))
        .args(["dashboard", "--port", "0"])
        .arg(tmp.path().join("exp"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first.trim().rsplit(' ').next().unwrap().to_string();
    let port: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| panic!("no port in {first:?}"));
    let (status, body) = get(port, "/");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("<html") || body.contains("<!doctype"),
        "{body}"
    );
}

#[test]
fn the_dashboard_refuses_what_is_not_an_experiment() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        vec!["dashboard".to_string()],
        vec![
            "dashboard".to_string(),
            tmp.path().join("missing").display().to_string(),
        ],
        vec!["dashboard".to_string(), tmp.path().display().to_string()],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_poptune"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("experiment"), "{args:?}: {err}");
    }
}

#[test]
fn the_report_writes_the_dashboard_page_with_its_data() {
    let tmp = experiment();
    let out = Command::new(env!("CARGO_BIN_EXE_poptune"))
        .arg("report")
        .arg(tmp.path().join("exp"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(tmp.path().join("exp/report/dashboard.html")).unwrap();
    // Self-contained: the data are in it, nothing is fetched.
    assert!(page.contains("\"members\""), "no embedded data");
    assert!(!page.contains("src=\"http"), "fetches something");
}
