//! Measures the dashboard at scale (docs/benchmarks.md): a synthetic experiment of MEMBERS ×
//! STEPS in a SQLite store, the server's answers (everything, and an update), and the page in
//! chromium: time to the first drawing, a redraw, a hover, an update's redraw.
//!
//! ```text
//! cargo run -p poptune-dashboard --release --example measure -- MEMBERS STEPS
//! ```

#[path = "../tests/webdriver/mod.rs"]
mod webdriver;

use std::time::{Duration, Instant};

use poptune_dashboard::{serve, static_page, synthetic, Options};
use poptune_store::{Commit, SqliteStore, StepRow, Store};
use serde_json::{json, Value};
use webdriver::{http, Browser};

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn timed_get(port: u16, path: &str) -> (f64, usize, Value) {
    let t = Instant::now();
    let (status, _, body) = http(port, "GET", path, &[], None);
    assert_eq!(status, 200, "{body}");
    (
        ms(t),
        body.len(),
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let members: usize = args.first().map_or(Ok(100), |a| a.parse())?;
    let steps: u64 = args.get(1).map_or(Ok(1000), |a| a.parse())?;
    let tmp = tempfile::tempdir()?;
    let name = "bench";
    let dir = tmp.path().join(name);
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("experiment.db");
    let def = synthetic::definition(name, members, steps);
    let mut store = SqliteStore::open(&db)?;
    let t = Instant::now();
    synthetic::fill(&mut store, &def, 10, false)?;
    let rows = store.steps()?.len();
    println!(
        "{members} members x {steps} steps: {rows} step rows, written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let page = static_page(&store, &def)?;
    println!(
        "static page: {:.1} MB in {:.0} ms",
        page.len() as f64 / 1e6,
        ms(t)
    );

    let mut opts = Options::dir(&dir);
    opts.port = 0;
    let server = serve(opts)?;
    let port = server.port();
    let (t_all, bytes_all, all) = timed_get(port, &format!("/api/experiment/{name}/updates"));
    println!(
        "server, everything: {t_all:.0} ms, {:.1} MB",
        bytes_all as f64 / 1e6
    );
    let gen = all["gen"].as_str().unwrap_or_default().to_string();
    let cursor = |n: usize| {
        format!(
            "/api/experiment/{name}/updates?gen={gen}&steps_after={n}&events_after={}&faults_after=1&members_after={}",
            all["events"].as_array().map_or(0, |e| e.len()),
            all["members_version"]
        )
    };
    std::thread::sleep(Duration::from_millis(300));
    let (t_none, bytes_none, _) = timed_get(port, &cursor(rows));
    println!("server, update with nothing new: {t_none:.1} ms, {bytes_none} bytes");

    let b = Browser::start();
    let t = Instant::now();
    b.goto(&server.url());
    let ready = b.wait_for(
        "the first drawing",
        60,
        "return window.poptune.readyAt || 0",
    );
    println!(
        "browser: first drawing {:.0} ms after navigation (wall {:.0} ms)",
        ready.as_f64().unwrap_or(0.0),
        ms(t)
    );
    println!("browser: timing {}", b.js("return [performance.timing.responseEnd - performance.timing.navigationStart, performance.timing.domContentLoadedEventEnd - performance.timing.navigationStart, window.poptune.timing]", json!([])));
    b.js(
        "window.poptune.drawMs = null; window.poptune.redraw()",
        json!([]),
    );
    let draw = b.wait_for("a redraw", 20, "return window.poptune.drawMs");
    println!(
        "browser: full redraw {:.0} ms",
        draw.as_f64().unwrap_or(0.0)
    );
    let hover = b.js(
        "const c = document.getElementById('scores'); const r = c.getBoundingClientRect();
         const t0 = performance.now();
         for (let k = 0; k < 20; k++) PT.hoverScores(window.poptune.data(), c, {clientX: r.left + 100 + 30 * k, clientY: r.top + 150});
         return (performance.now() - t0) / 20;",
        json!([]),
    );
    println!("browser: one hover {:.1} ms", hover.as_f64().unwrap_or(0.0));

    // One more step of every member, written as a run would, then the update it costs.
    let mut c = Commit::default();
    // Each member's new step comes in its own current epoch (its decision count), after its
    // last one, as in a run.
    for row in store.members()? {
        c.steps.push(StepRow {
            member: row.id,
            epoch: row.decisions,
            step: steps + 1,
            score: 0.99,
            metrics: vec![],
        });
    }
    let mut tally = store.tally()?.unwrap_or_default();
    tally.compute += members as u64;
    c.tally = Some(tally);
    store.commit(&c)?;
    std::thread::sleep(Duration::from_millis(300));
    let (t_new, bytes_new, _) = timed_get(port, &cursor(rows));
    println!(
        "server, update with {members} new steps: {t_new:.0} ms, {:.1} kB",
        bytes_new as f64 / 1e3
    );
    let target = rows + members;
    b.wait_for(
        "the update on the page",
        30,
        &format!("return window.poptune.data().total >= {target}"),
    );
    b.wait_for(
        "the update's redraw",
        20,
        &format!("return window.poptune.data().total >= {target} && window.poptune.draws > 2"),
    );
    let draw = b.js("return window.poptune.drawMs", json!([]));
    println!(
        "browser: redraw after that update {:.0} ms",
        draw.as_f64().unwrap_or(0.0)
    );
    Ok(())
}
