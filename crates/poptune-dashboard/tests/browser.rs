//! The dashboard in a real browser (Debian's chromium, driven through chromedriver): a run
//! written into an experiment directory while the page shows it, and the static page from a
//! file:// URL. These tests fail, never skip, when chromium or chromedriver are missing.

mod webdriver;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poptune::{Experiment, Hyperparams, Metrics, Param, Space, Trainable, TrainableError};
use poptune_dashboard::{serve, static_page, Options, TokenPolicy};
use poptune_run::inprocess::Persist;
use poptune_run::{Quiet, Run};
use poptune_store::Store;
use serde_json::json;
use webdriver::{http, keep_screenshot, Browser};

/// Gradient descent on (x - 3)², a few milliseconds a step so that the run lasts a while.
/// With a gate, a step waits until the gate lets it through, so that a test decides when
/// the run goes on (however slow the machine is).
struct Quadratic {
    x: f64,
    gate: Option<Arc<Gate>>,
}

/// How many steps, of all members together, may be trained so far.
struct Gate {
    taken: std::sync::atomic::AtomicU64,
    allowed: std::sync::atomic::AtomicU64,
}

impl Gate {
    fn new(allowed: u64) -> Arc<Gate> {
        Arc::new(Gate {
            taken: 0.into(),
            allowed: allowed.into(),
        })
    }

    fn open(&self) {
        self.allowed.store(u64::MAX, Ordering::SeqCst);
    }

    fn pass(&self) {
        let n = self.taken.fetch_add(1, Ordering::SeqCst) + 1;
        while n > self.allowed.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Trainable for Quadratic {
    type State = f64;
    fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError> {
        let lr = h
            .f64("lr")
            .ok_or_else(|| TrainableError::new("missing lr"))?;
        if let Some(g) = &self.gate {
            g.pass();
        }
        std::thread::sleep(Duration::from_millis(25));
        self.x -= lr * 2.0 * (self.x - 3.0);
        Ok(Metrics::new(-(self.x - 3.0).powi(2)))
    }
    fn save(&self) -> f64 {
        self.x
    }
    fn restore(&mut self, s: &f64) {
        self.x = *s
    }
}

impl Persist for Quadratic {
    fn save_state(x: &f64, dir: &Path) -> std::io::Result<()> {
        std::fs::write(dir.join("x"), x.to_string())
    }
    fn load_state(&self, dir: &Path) -> std::io::Result<f64> {
        let text = std::fs::read_to_string(dir.join("x"))?;
        text.trim().parse().map_err(std::io::Error::other)
    }
}

const MEMBERS: usize = 6;

fn experiment(steps: u64) -> Experiment {
    Experiment::new(Space::new().with("lr", Param::log_float(1e-4, 0.3)))
        .population(MEMBERS)
        .steps(steps)
        .workers(2)
        .seed(11)
}

/// Starts the run in a thread; returns once its directory holds the experiment.
fn start_run(
    dir: &Path,
    steps: u64,
    stop: Arc<AtomicBool>,
    gate: Option<Arc<Gate>>,
) -> std::thread::JoinHandle<()> {
    let d = dir.to_path_buf();
    let h = std::thread::spawn(move || {
        let e = experiment(steps);
        e.run_in(
            "quadratic",
            &d,
            |_| Quadratic {
                x: 0.0,
                gate: gate.clone(),
            },
            &Quiet,
            stop.as_ref(),
        )
        .expect("the run");
    });
    for _ in 0..200 {
        if poptune_run::local::open_dir(dir).is_ok() {
            return h;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("the run did not create its directory");
}

/// The number of rows of the population table.
const ROWS: &str = "document.querySelectorAll('#population tbody tr').length";
/// The number of steps the page says it has.
const RECORDED: &str =
    "Number((document.getElementById('steps-recorded') || { textContent: '0' }).textContent)";

/// A point of the score chart that belongs to one member only (no other member's point within
/// 14 px), as [member, x, y] in the viewport.
const LONE_POINT: &str = r#"
const D = window.poptune.data();
const pts = [];
for (const m in D.steps) for (let i = 0; i < D.steps[m].s.length; i += 3) {
  const p = window.poptune.pointXY(Number(m), i); if (p) pts.push([Number(m), p.x, p.y]);
}
for (const a of pts) {
  if (pts.every(b => b[0] === a[0] || Math.hypot(a[1] - b[1], a[2] - b[2]) > 14)) return a;
}
return null;"#;

#[test]
fn the_live_page_follows_a_run_and_names_what_it_shows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("quadratic");
    let stop = Arc::new(AtomicBool::new(false));
    // The first ready round of every member (5 steps each), then the run waits for the test.
    let gate = Gate::new(MEMBERS as u64 * 5);
    let run = start_run(&dir, 80, stop.clone(), Some(gate.clone()));
    let mut opts = Options::dir(&dir);
    opts.port = 0;
    opts.token = TokenPolicy::Always;
    let server = serve(opts).expect("serve");
    let b = Browser::start();
    b.goto(&server.url());
    b.wait_for(
        "every member in the table",
        20,
        &format!("return {ROWS} === {MEMBERS}"),
    );
    b.js("window.__same_page = 'yes'", json!([]));
    let first = b
        .wait_for("recorded steps", 20, &format!("return {RECORDED}"))
        .as_f64()
        .unwrap();
    let state = b.js("return window.poptune.data().summary.state", json!([]));
    assert_eq!(state, "running", "the run should still be going");
    gate.open();
    let later = b.wait_for(
        "new steps without a reload",
        20,
        &format!(
            "const n = {RECORDED}; return n > {first} && window.__same_page === 'yes' ? n : 0"
        ),
    );
    assert!(later.as_f64().unwrap() > first);
    keep_screenshot(&b.screenshot(), "dashboard-live.png");
    run.join().expect("the run's thread");
    b.wait_for(
        "the finished run",
        20,
        "return window.poptune.data().summary.state === 'finished'",
    );

    // Every member, and what the store holds, on the page.
    let (store, _) = poptune_run::local::open_dir(&dir).unwrap();
    let total = store.steps().unwrap().len();
    b.wait_for("every step", 10, &format!("return {RECORDED} >= {total}"));
    assert_eq!(b.js(&format!("return {ROWS}"), json!([])), json!(MEMBERS));
    // The tree shows a recorded exploit.
    let exploits = store
        .events()
        .unwrap()
        .into_iter()
        .filter(|e| e.donor.is_some())
        .count();
    assert!(exploits > 0, "the run should have exploited");
    let edges = b.js(
        "return Number(document.getElementById('tree').dataset.edges)",
        json!([]),
    );
    assert_eq!(edges, json!(exploits));
    let listed = b.js(
        "return document.querySelectorAll('#exploits li').length",
        json!([]),
    );
    assert_eq!(listed, json!(exploits.min(200)));
    // Hovering a curve names its member.
    let p = b.wait_for("a point of one member", 10, LONE_POINT);
    let (m, x, y) = (
        p[0].as_u64().unwrap(),
        p[1].as_f64().unwrap(),
        p[2].as_f64().unwrap(),
    );
    b.hover(x, y);
    let tip = b.wait_for(
        "the hover tip",
        5,
        "const t = document.getElementById('tip'); return t.hidden ? '' : t.textContent",
    );
    assert!(
        tip.as_str().unwrap().starts_with(&format!("member {m}")),
        "tip: {tip}"
    );
    b.js(
        "document.getElementById('tree').scrollIntoView()",
        json!([]),
    );
    keep_screenshot(&b.screenshot(), "dashboard-tree.png");
    // The page is refused without its token.
    let bare = server.url().split('?').next().unwrap().to_string();
    b.goto(&bare);
    b.wait_for(
        "the refusal",
        10,
        "return document.body.textContent.includes('access token')",
    );
    stop.store(true, Ordering::SeqCst);
}

#[test]
fn the_static_page_shows_the_same_data_from_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("quadratic");
    let stop = Arc::new(AtomicBool::new(false));
    start_run(&dir, 20, stop, None).join().unwrap();
    let (store, def) = poptune_run::local::open_dir(&dir).unwrap();
    let page = static_page(&store, &def).unwrap();
    let file = tmp.path().join("dashboard.html");
    std::fs::write(&file, page).unwrap();
    let b = Browser::start();
    b.goto(&format!("file://{}", file.display()));
    b.wait_for("every member", 20, &format!("return {ROWS} === {MEMBERS}"));
    let total = store.steps().unwrap().len();
    assert_eq!(b.js(&format!("return {RECORDED}"), json!([])), json!(total));
    assert_eq!(
        b.js("return window.poptune.isStatic", json!([])),
        json!(true)
    );
    let best = poptune_store::best_member(def.mode, &store.members().unwrap()).unwrap();
    let marked = b.js(
        "return document.querySelector('#population tr.best').dataset.member",
        json!([]),
    );
    assert_eq!(marked, json!(best.to_string()));
    let status = b.js(
        "return document.getElementById('status').textContent",
        json!([]),
    );
    assert!(status.as_str().unwrap().contains("static"), "{status}");
    // No request left the page: a static file has no server to ask.
    let errors = b.js("return document.getElementById('error').hidden", json!([]));
    assert_eq!(errors, json!(true));
    // And the server refuses a request without the token, with a wrong one, and takes it in
    // the header.
    let mut opts = Options::dir(&dir);
    opts.port = 0;
    opts.token = TokenPolicy::Always;
    let server = serve(opts).unwrap();
    let token = server.token().unwrap().to_string();
    let port = server.port();
    assert_eq!(http(port, "GET", "/api/experiments", &[], None).0, 401);
    assert_eq!(
        http(port, "GET", "/api/experiments?token=nope", &[], None).0,
        403
    );
    assert_eq!(
        http(
            port,
            "GET",
            "/",
            &[("X-Poptune-Token", "0123456789abcdef0123456789abcdef")],
            None
        )
        .0,
        403
    );
    assert_eq!(
        http(
            port,
            "GET",
            "/api/experiments",
            &[("X-Poptune-Token", &token)],
            None
        )
        .0,
        200
    );
    assert_eq!(
        http(port, "GET", &format!("/?token={token}"), &[], None).0,
        200
    );
}
