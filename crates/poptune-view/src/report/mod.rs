//! A report from a store: CSV and JSON-lines exports, figures (PNG and SVG) and one
//! self-contained HTML page. `poptune report` and `poptune-burn` write it.

mod exports;
mod figures;
mod history;
mod page;
mod panels;
mod scale;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use poptune::lineage::schedule;
use poptune::ExperimentDef;
use poptune_store::Store;

use crate::ViewError;
use figures::{draw_figure, Figure, FigureData};
pub use history::hyperparams_by_row;
use page::{Page, DATA};

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

/// What the views written after the fact (the report, TensorBoard files) start from.
pub(crate) struct History {
    /// Every step record.
    pub steps: Vec<poptune_store::StepRow>,
    /// Every lineage event.
    pub events: Vec<poptune::Event>,
    /// The members' first hyperparameters.
    pub initial: Vec<poptune::Hyperparams>,
}

/// Reads the [`History`] of experiment `def` from `store`; an experiment without steps yet is
/// an error naming `place`.
pub(crate) fn read_history(
    store: &dyn Store,
    def: &ExperimentDef,
    place: &str,
) -> Result<History, ViewError> {
    let steps = store.steps()?;
    let events = store.events()?;
    if steps.is_empty() {
        return Err(ViewError::NoSteps(place.to_string()));
    }
    let initial = def
        .experiment()
        .initial_hyperparams()
        .map_err(|e| ViewError::Definition(e.to_string()))?;
    Ok(History {
        steps,
        events,
        initial,
    })
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
    let History {
        steps,
        events,
        initial,
    } = read_history(store, def, place)?;
    let members = store.members()?;
    let faults = store.faults()?;
    let (status, elapsed) = store.status()?;
    exports::write(out, &steps, &events, &initial).map_err(ViewError::io(out))?;
    crate::fonts::register();
    let best = poptune_store::best_member(def.mode, &members).unwrap_or(0);
    let best_step = members.get(best).map_or(0, |m| m.step);
    let ctx = FigureData {
        def,
        steps: &steps,
        events: &events,
        initial: &initial,
        best,
        best_step,
    };
    let mut figures = Vec::new();
    for (name, fig) in [
        ("scores", Figure::Scores),
        ("hyperparameters", Figure::Hyperparameters),
        ("lineage", Figure::Lineage),
    ] {
        let png = out.join(format!("{name}.png"));
        let svg = out.join(format!("{name}.svg"));
        let size = fig.size(&ctx);
        draw_figure(
            BitMapBackend::new(&png, size).into_drawing_area(),
            fig,
            &ctx,
        )
        .map_err(|e| e.drawing(&png))?;
        draw_figure(SVGBackend::new(&svg, size).into_drawing_area(), fig, &ctx)
            .map_err(|e| e.drawing(&svg))?;
        let text = std::fs::read_to_string(&svg).map_err(ViewError::io(&svg))?;
        figures.push((name, text));
    }
    let sched = schedule(&initial, &events, best, best_step);
    // Member-steps trained, with those trained again; a store of release 0.1.0 has no tally.
    let compute = store.tally()?.map_or(steps.len() as u64, |t| t.compute);
    let html = out.join("report.html");
    let names: Vec<&str> = figures.iter().map(|(name, _)| *name).collect();
    let page = Page {
        def,
        status,
        elapsed,
        members: &members,
        steps: &steps,
        faults: &faults,
        exploits: events.iter().filter(|e| e.donor.is_some()).count(),
        compute,
        best,
        schedule: &sched,
        figures,
    }
    .render();
    std::fs::write(&html, page).map_err(ViewError::io(&html))?;
    Ok(ReportFiles {
        out: out.to_path_buf(),
        html,
        data: DATA.iter().map(|f| out.join(f)).collect(),
        figures: names.iter().map(|name| out.join(name)).collect(),
    })
}
