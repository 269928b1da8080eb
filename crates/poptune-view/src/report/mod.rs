//! A report from a store: CSV and JSON-lines exports, figures (PNG and SVG) and one
//! self-contained HTML page. `poptune report` and `poptune-burn` write it.

mod exports;
mod figures;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use poptune::lineage::schedule;
use poptune::ExperimentDef;
use poptune_store::Store;

use crate::ViewError;
use figures::{draw_figure, Figure, FigureData};

/// The files a report wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// The folder.
    pub out: PathBuf,
    /// The page.
    pub html: PathBuf,
    /// The data files.
    pub data: Vec<PathBuf>,
    /// The figures, without extension (each is written as .png and .svg).
    pub figures: Vec<PathBuf>,
}

impl std::fmt::Display for ReportFiles {
    /// What a command prints: the folder, then each file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "report written to {}", self.out.display())?;
        writeln!(f, "  {}", self.html.display())?;
        for p in &self.data {
            writeln!(f, "  {}", p.display())?;
        }
        for p in &self.figures {
            writeln!(f, "  {} (.png, .svg)", p.display())?;
        }
        Ok(())
    }
}

impl ViewError {
    fn drawing(self, path: &Path) -> ViewError {
        match self {
            ViewError::Draw(e) => ViewError::Draw(format!("{}: {e}", path.display())),
            e => e,
        }
    }
}

/// Writes the report of the experiment `def` kept in `store` into `out` (created if needed).
/// `place` names the experiment in messages (its directory, or the store's URL).
pub fn write(
    store: &dyn Store,
    def: &ExperimentDef,
    out: &Path,
    place: &str,
) -> Result<ReportFiles, ViewError> {
    std::fs::create_dir_all(out).map_err(ViewError::io(out))?;
    let steps = store.steps()?;
    let events = store.events()?;
    let members = store.members()?;
    let (status, elapsed) = store.status()?;
    if steps.is_empty() {
        return Err(ViewError::NoSteps(place.to_string()));
    }
    exports::write(out, &steps, &events).map_err(ViewError::io(out))?;
    crate::fonts::register();
    let best = poptune_store::best_member(def.mode, &members).unwrap_or(0);
    let initial = def
        .experiment()
        .initial_hyperparams()
        .map_err(|e| ViewError::Definition(e.to_string()))?;
    let mut figures = Vec::new();
    for (name, draw) in [
        ("scores", Figure::Scores),
        ("hyperparameters", Figure::Hyperparameters),
        ("lineage", Figure::Lineage),
    ] {
        let ctx = FigureData {
            def,
            steps: &steps,
            events: &events,
            initial: &initial,
            best,
            best_step: members[best].step,
        };
        let png = out.join(format!("{name}.png"));
        let svg = out.join(format!("{name}.svg"));
        let size = (1200, 700);
        draw_figure(
            BitMapBackend::new(&png, size).into_drawing_area(),
            draw,
            &ctx,
        )
        .map_err(|e| e.drawing(&png))?;
        draw_figure(SVGBackend::new(&svg, size).into_drawing_area(), draw, &ctx)
            .map_err(|e| e.drawing(&svg))?;
        figures.push((name, svg));
    }
    let sched = schedule(&initial, &events, best, members[best].step);
    // Member-steps trained, with those trained again; a store of release 0.1.0 has no tally.
    let compute = store.tally()?.map_or(steps.len() as u64, |t| t.compute);
    let html = out.join("report.html");
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>poptune report: {name}</title>\
         <style>body{{font-family:sans-serif;max-width:1250px;margin:auto}}pre{{background:#f4f4f4;padding:8px}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head><body>\
         <h1>poptune report: {name}</h1><p>status: {status}; running time {elapsed:.1} s; {pop} members × {steps} steps; \
         {compute} member-steps trained; {ex} exploits. Best member: {best} ({metric} = {score}).</p>",
        name = esc(&def.name),
        pop = def.population,
        steps = def.stop.steps,
        ex = events.iter().filter(|e| e.donor.is_some()).count(),
        metric = esc(&def.metric),
        score = members[best].score.map_or("-".into(), |s| format!("{s:.6}")),
    );
    let _ = write!(
        page,
        "<h2>Schedule of the best member</h2><pre>{}</pre>",
        esc(&sched.to_string())
    );
    for (name, svg) in &figures {
        let text = std::fs::read_to_string(svg).map_err(ViewError::io(svg))?;
        let _ = write!(page, "<h2>{name}</h2>{text}");
    }
    page.push_str("<h2>Members</h2><table><tr><th>member</th><th>step</th><th>score</th><th>hyperparameters</th></tr>");
    for m in &members {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
            m.id,
            m.step,
            m.score.map_or("-".into(), |s| format!("{s:.6}")),
            esc(&m.h.to_string())
        );
    }
    page.push_str("</table><p>Data: steps.csv, steps.jsonl, events.csv, events.jsonl beside this page.</p></body></html>");
    std::fs::write(&html, page).map_err(ViewError::io(&html))?;
    const DATA: [&str; 4] = ["steps.csv", "steps.jsonl", "events.csv", "events.jsonl"];
    Ok(ReportFiles {
        out: out.to_path_buf(),
        html,
        data: DATA.iter().map(|f| out.join(f)).collect(),
        figures: figures.iter().map(|(name, _)| out.join(name)).collect(),
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
