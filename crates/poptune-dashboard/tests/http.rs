//! The server's answers without a browser: the list of experiments in a folder, updates that
//! send only what is new, and the requests it refuses.

mod webdriver;

use poptune_dashboard::{serve, synthetic, Options, TokenPolicy};
use poptune_store::{SqliteStore, Store};
use serde_json::Value;
use webdriver::http;

fn folder_of_two() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (name, finished) in [("alpha", true), ("beta", false)] {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut store = SqliteStore::open(&dir.join("experiment.db")).unwrap();
        let def = synthetic::definition(name, 10, 40);
        synthetic::fill(&mut store, &def, 10, finished).unwrap();
    }
    // Not an experiment: ignored.
    std::fs::create_dir_all(tmp.path().join("notes")).unwrap();
    tmp
}

fn json(port: u16, path: &str) -> Value {
    let (status, _, body) = http(port, "GET", path, &[], None);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn local(dir: &std::path::Path) -> poptune_dashboard::Server {
    let mut opts = Options::dir(dir);
    opts.port = 0;
    serve(opts).unwrap()
}

#[test]
fn a_folder_lists_its_experiments_with_status_progress_and_best() {
    let tmp = folder_of_two();
    let server = local(tmp.path());
    let list = json(server.port(), "/api/experiments");
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "alpha");
    assert_eq!(list[0]["state"], "finished");
    assert_eq!(list[0]["progress"], 1.0);
    assert!(list[0]["best"]["score"].as_f64().is_some());
    assert_eq!(list[1]["name"], "beta");
    assert_eq!(list[1]["state"], "running");
    // One experiment by name; an unknown one is refused at the start.
    let mut only = Options::dir(tmp.path());
    only.port = 0;
    only.experiment = Some("beta".into());
    let s = serve(only).unwrap();
    assert_eq!(
        json(s.port(), "/api/experiments").as_array().unwrap().len(),
        1
    );
    let mut wrong = Options::dir(tmp.path());
    wrong.port = 0;
    wrong.experiment = Some("gamma".into());
    let e = serve(wrong).err().unwrap();
    assert!(e.is_usage() && e.to_string().contains("alpha, beta"), "{e}");
    let e = serve(Options::dir(tmp.path().join("notes"))).err().unwrap();
    assert!(e.is_usage(), "{e}");
}

#[test]
fn updates_send_only_what_is_new() {
    let tmp = folder_of_two();
    let server = local(tmp.path());
    let port = server.port();
    let all = json(port, "/api/experiment/alpha/updates");
    assert_eq!(all["reset"], true);
    assert_eq!(all["steps"]["m"].as_array().unwrap().len(), 400);
    assert_eq!(all["members"].as_array().unwrap().len(), 10);
    assert!(!all["events"].as_array().unwrap().is_empty());
    assert_eq!(all["faults"][0]["kind"], "crash");
    assert_eq!(all["info"]["population"], 10);
    let schedule = &all["best"]["schedule"]["segments"];
    assert!(!schedule.as_array().unwrap().is_empty());
    let cursor = format!(
        "/api/experiment/alpha/updates?gen={}&steps_after=400&events_after={}&faults_after=1&members_after={}",
        all["gen"].as_str().unwrap(),
        all["events"].as_array().unwrap().len(),
        all["members_version"]
    );
    let none = json(port, &cursor);
    assert_eq!(none["reset"], false);
    assert!(none["steps"]["m"].as_array().unwrap().is_empty());
    assert!(none["events"].as_array().unwrap().is_empty());
    assert!(none["faults"].as_array().unwrap().is_empty());
    assert!(none["members"].as_array().unwrap().is_empty());
    assert!(none.get("info").is_none());
    // A client of another server (another gen) gets everything again.
    let again = json(
        port,
        "/api/experiment/alpha/updates?gen=other&steps_after=400",
    );
    assert_eq!(again["reset"], true);
    assert_eq!(again["steps"]["m"].as_array().unwrap().len(), 400);
}

#[test]
fn new_rows_written_meanwhile_come_in_the_next_update() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("grow");
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("experiment.db");
    let mut store = SqliteStore::open(&db).unwrap();
    let def = synthetic::definition("grow", 5, 20);
    synthetic::fill(&mut store, &def, 10, false).unwrap();
    let server = local(&dir);
    let first = json(server.port(), "/api/experiment/grow/updates");
    assert_eq!(first["steps"]["m"].as_array().unwrap().len(), 100);
    // Another writer adds a step to member 3 (as a run would).
    let mut c = poptune_store::Commit::default();
    c.steps.push(poptune_store::StepRow {
        member: 3,
        epoch: 9,
        step: 21,
        score: 0.5,
        metrics: vec![],
    });
    let mut tally = store.tally().unwrap().unwrap();
    tally.compute += 1;
    c.tally = Some(tally);
    store.commit(&c).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let next = json(
        server.port(),
        &format!(
            "/api/experiment/grow/updates?gen={}&steps_after=100",
            first["gen"].as_str().unwrap()
        ),
    );
    assert_eq!(next["steps_after"], 100);
    assert_eq!(next["steps"]["m"], serde_json::json!([3]));
    assert_eq!(next["steps"]["s"], serde_json::json!([21]));
}

#[test]
fn malformed_foreign_and_writing_requests_are_refused() {
    let tmp = folder_of_two();
    let server = local(tmp.path());
    let p = server.port();
    assert_eq!(
        http(p, "GET", "/api/experiment/../alpha/updates", &[], None).0,
        400
    );
    assert_eq!(
        http(
            p,
            "GET",
            "/api/experiment/%2e%2e%2falpha/updates",
            &[],
            None
        )
        .0,
        400
    );
    assert_eq!(
        http(p, "GET", "/api/experiment/gamma/updates", &[], None).0,
        404
    );
    assert_eq!(
        http(p, "GET", "/api/experiment/notes/updates", &[], None).0,
        404
    );
    assert_eq!(
        http(
            p,
            "GET",
            "/api/experiment/alpha/updates?steps_after=x",
            &[],
            None
        )
        .0,
        400
    );
    assert_eq!(http(p, "GET", "/etc/passwd", &[], None).0, 404);
    assert_eq!(http(p, "POST", "/api/experiments", &[], Some("{}")).0, 405);
    // A page of another site pointed here by its DNS name gets nothing.
    assert_eq!(
        http(
            p,
            "GET",
            "/api/experiments",
            &[("Host", "evil.example")],
            None
        )
        .0,
        403
    );
    let (status, head, body) = http(p, "GET", "/", &[], None);
    assert_eq!(status, 200);
    assert!(body.contains("<canvas id=\"scores\""));
    assert!(head.contains("Content-Security-Policy"));
}

#[test]
fn another_address_needs_a_token_and_short_tokens_are_refused() {
    let tmp = folder_of_two();
    let mut opts = Options::dir(tmp.path());
    opts.port = 0;
    opts.bind = "0.0.0.0".parse().unwrap();
    let s = serve(opts).unwrap();
    let token = s.token().expect("a token off loopback").to_string();
    assert!(
        s.url().ends_with(&format!("/?token={token}")),
        "{}",
        s.url()
    );
    assert_eq!(http(s.port(), "GET", "/api/experiments", &[], None).0, 401);
    let mut short = Options::dir(tmp.path());
    short.port = 0;
    short.token = TokenPolicy::Given("abc".into());
    assert!(serve(short).err().unwrap().is_usage());
}
