//! A synthetic experiment in a SQLite store, shown by the dashboard: for looking at the page
//! and for measuring it at scale.
//!
//! ```text
//! cargo run -p poptune-dashboard --release --example synthetic -- DIR MEMBERS STEPS [--serve PORT]
//! ```
//! writes DIR/NAME/experiment.db (unless it is there), DIR/NAME.html (the static page), and
//! with `--serve` serves DIR.

use std::time::Instant;

use poptune_dashboard::{static_page, synthetic, Options};
use poptune_store::SqliteStore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, members, steps, rest @ ..] = args.as_slice() else {
        return Err("usage: synthetic DIR MEMBERS STEPS [--serve PORT]".into());
    };
    let (members, steps): (usize, u64) = (members.parse()?, steps.parse()?);
    let name = format!("synthetic-{members}x{steps}");
    let exp = std::path::Path::new(dir).join(&name);
    let def = synthetic::definition(&name, members, steps);
    let db = exp.join("experiment.db");
    if !db.is_file() {
        std::fs::create_dir_all(&exp)?;
        let t = Instant::now();
        let mut store = SqliteStore::open(&db)?;
        synthetic::fill(&mut store, &def, 10, true)?;
        println!(
            "wrote {} in {:.1} s",
            db.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let store = SqliteStore::open(&db)?;
    let t = Instant::now();
    let page = static_page(&store, &def)?;
    let html = std::path::Path::new(dir).join(format!("{name}.html"));
    std::fs::write(&html, &page)?;
    println!(
        "static page {} ({:.1} MB) in {:.0} ms",
        html.display(),
        page.len() as f64 / 1e6,
        t.elapsed().as_secs_f64() * 1e3
    );
    if let [flag, port] = rest {
        if flag == "--serve" {
            let mut opts = Options::dir(dir);
            opts.port = port.parse()?;
            let server = poptune_dashboard::serve(opts)?;
            println!("dashboard: {}", server.url());
            server.run_forever();
        }
    }
    Ok(())
}
