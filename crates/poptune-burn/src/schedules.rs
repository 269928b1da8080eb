//! The schedules PBT found: one hyperparameter of each run's best member, followed back
//! through its donors, drawn on one chart.

use std::path::{Path, PathBuf};

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use poptune::lineage::schedule;
use poptune_run::local as durable;
use poptune_store::Store;

use crate::error::BurnError;

type Result<T> = std::result::Result<T, BurnError>;

/// One line: the schedule of `param` of the best member of the experiment in `dir`.
fn line(dir: &Path, param: &str) -> Result<Vec<(f64, f64)>> {
    let (store, def) = durable::open_dir(dir)?;
    let members = store.members()?;
    let best = poptune_store::best_member(def.mode, &members)
        .and_then(|b| members.get(b))
        .ok_or_else(|| BurnError::Missing(format!("{}: no member has a score", dir.display())))?;
    let initial = def
        .experiment()
        .initial_hyperparams()
        .map_err(|e| BurnError::Missing(format!("{}: {e}", dir.display())))?;
    let sched = schedule(&initial, &store.events()?, best.id, best.step);
    let mut pts = Vec::new();
    for seg in &sched.segments {
        let v = seg.h.f64(param).ok_or_else(|| {
            BurnError::Missing(format!("{}: no hyperparameter {param}", dir.display()))
        })?;
        pts.push((seg.start as f64, v.log10()));
        pts.push((seg.end as f64, v.log10()));
    }
    Ok(pts)
}

/// Draws `param` (log scale) of the best member of each run in `runs` (label, directory) into
/// `out` (a PNG and an SVG beside it).
pub fn plot(runs: &[(String, PathBuf)], param: &str, title: &str, out: &Path) -> Result<()> {
    poptune_view::fonts::register();
    let mut lines = Vec::new();
    for (label, dir) in runs {
        lines.push((label.clone(), line(dir, param)?));
    }
    let pts = || lines.iter().flat_map(|(_, l)| l.iter());
    let xmax = pts().map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
        (a.min(p.1), b.max(p.1))
    });
    if !lo.is_finite() {
        return Err(BurnError::Missing("no schedule to draw".into()));
    }
    let pad = ((hi - lo) * 0.08).max(0.05);
    let frame = Frame {
        title,
        param,
        x: 0.0..xmax,
        y: (lo - pad)..(hi + pad),
    };
    let png = out.with_extension("png");
    let svg = out.with_extension("svg");
    draw(
        BitMapBackend::new(&png, (1000, 500)).into_drawing_area(),
        &frame,
        &lines,
    )
    .map_err(|e| drawing(e, &png))?;
    draw(
        SVGBackend::new(&svg, (1000, 500)).into_drawing_area(),
        &frame,
        &lines,
    )
    .map_err(|e| drawing(e, &svg))?;
    Ok(())
}

/// A drawing error, as the library reports it.
pub(crate) fn draw_error<DB: DrawingBackend>(e: DrawingAreaErrorKind<DB::ErrorType>) -> BurnError
where
    DB::ErrorType: 'static,
{
    BurnError::View(poptune_view::ViewError::Draw(format!("{e:?}")))
}

/// A white chart over `x` × `y` with `title`: the frame every figure of this crate uses.
pub(crate) fn frame<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    caption: u32,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(draw_error::<DB>)?;
    ChartBuilder::on(root)
        .caption(title, ("sans-serif", caption))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(draw_error::<DB>)
}

/// A drawing error, with the file it was drawing.
pub(crate) fn drawing(e: BurnError, path: &Path) -> BurnError {
    BurnError::View(poptune_view::ViewError::Draw(format!(
        "{}: {e}",
        path.display()
    )))
}

struct Frame<'a> {
    title: &'a str,
    param: &'a str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    f: &Frame<'_>,
    lines: &[(String, Vec<(f64, f64)>)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = draw_error::<DB>;
    let mut chart = frame(&root, f.title, 22, f.x.clone(), f.y.clone())?;
    chart
        .configure_mesh()
        .x_desc("steps of training")
        .y_desc(format!("log10({})", f.param))
        .draw()
        .map_err(err)?;
    for (i, (label, l)) in lines.iter().enumerate() {
        let c = Palette99::pick(i).to_rgba();
        let colour = RGBColor(c.0, c.1, c.2);
        chart
            .draw_series(LineSeries::new(l.clone(), colour.stroke_width(2)))
            .map_err(err)?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
