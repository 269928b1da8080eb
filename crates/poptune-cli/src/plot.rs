//! Figures, drawn with plotters: PNG through the embedded DejaVu Sans font, SVG as text.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use poptune::toy::{q, ToyConfig, THETA_START};
use poptune::{Baseline, Outcome};

const OPTIMUM: RGBColor = RGBColor(30, 120, 30);
const MEMBER_COLOURS: [RGBColor; 2] = [RGBColor(0, 0, 0), RGBColor(215, 25, 28)];
const LOW: (f64, f64, f64) = (70.0, 90.0, 140.0);
const HIGH: (f64, f64, f64) = (255.0, 255.0, 250.0);
const Q_MIN: f64 = -0.8;
const Q_MAX: f64 = 1.2;
const BAND: f64 = 0.1;
const DOMAIN: (f64, f64) = (-0.05, 1.0);

/// Lighter is higher, in bands of 0.1 so that the bands' edges read as contour lines.
fn band_colour(value: f64) -> RGBColor {
    let band = ((value - Q_MIN) / BAND)
        .floor()
        .clamp(0.0, (Q_MAX - Q_MIN) / BAND);
    let t = (band * BAND / (Q_MAX - Q_MIN)).clamp(0.0, 1.0).powf(0.8);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(mix(LOW.0, HIGH.0), mix(LOW.1, HIGH.1), mix(LOW.2, HIGH.2))
}

fn title(v: Baseline) -> &'static str {
    match v {
        Baseline::Pbt => "PBT",
        Baseline::ExploreOnly => "Explore only",
        Baseline::ExploitOnly => "Exploit only",
        Baseline::Grid => "Grid search",
        Baseline::Random => "Random search",
    }
}

/// θ after each step of a member, the θ it jumped to at each exploit, in drawing order.
struct Path2 {
    /// Consecutive points joined by solid lines; a `None` breaks the line.
    points: Vec<(f64, f64)>,
    /// Exploit jumps: from the member's own θ to the donor's.
    jumps: Vec<((f64, f64), (f64, f64))>,
    /// Solid pieces, as index ranges into `points`.
    pieces: Vec<Vec<(f64, f64)>>,
}

fn theta_at(o: &Outcome<[f64; 2]>, member: usize, step: u64) -> Option<(f64, f64)> {
    if step == 0 {
        return Some((THETA_START[0], THETA_START[1]));
    }
    o.members[member]
        .history
        .iter()
        .find(|r| r.step == step)
        .and_then(|r| Some((r.get("theta0")?, r.get("theta1")?)))
}

fn member_path(o: &Outcome<[f64; 2]>, member: usize) -> Path2 {
    let mut points = vec![(THETA_START[0], THETA_START[1])];
    let mut jumps = Vec::new();
    let mut pieces = Vec::new();
    let mut piece = vec![(THETA_START[0], THETA_START[1])];
    let mut prev_step = 0;
    for r in &o.members[member].history {
        let exploit = o
            .events
            .iter()
            .find(|e| e.recipient == member && e.step == prev_step && e.donor.is_some());
        if let Some(e) = exploit {
            let from = *piece.last().unwrap_or(&(THETA_START[0], THETA_START[1]));
            if let Some(to) = e.donor.and_then(|d| theta_at(o, d, e.donor_step)) {
                jumps.push((from, to));
                pieces.push(std::mem::take(&mut piece));
                piece.push(to);
            }
        }
        if let (Some(a), Some(b)) = (r.get("theta0"), r.get("theta1")) {
            points.push((a, b));
            piece.push((a, b));
        }
        prev_step = r.step;
    }
    pieces.push(piece);
    Path2 {
        points,
        jumps,
        pieces,
    }
}

/// A panel's chart: θ0 across, θ1 up, both over `DOMAIN`.
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One panel: the contours of Q, the optimum and both members' θ paths, captioned with the
/// variant and its best Q.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    variant: Baseline,
    o: &Outcome<[f64; 2]>,
    svg: bool,
    pb2: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing failed: {e:?}");
    let best = o.best_score().unwrap_or(f64::NAN);
    let name = match (variant, pb2) {
        (Baseline::Pbt, true) => "PB2",
        (Baseline::ExploreOnly, true) => "Explore only (PB2's h)",
        _ => title(variant),
    };
    let caption = format!("{name} — best Q = {:.4}", best);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d(DOMAIN.0..DOMAIN.1, DOMAIN.0..DOMAIN.1)
        .map_err(err)?;
    let n = if svg { 140 } else { 260 };
    chart.draw_series(contour_bands(n)).map_err(err)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("θ0")
        .y_desc("θ1")
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(err)?;
    // The optimum Q = 1.2 at θ = (0, 0).
    chart
        .draw_series(std::iter::once(Cross::new(
            (0.0, 0.0),
            7,
            ShapeStyle::from(&OPTIMUM).stroke_width(3),
        )))
        .map_err(err)?;
    for (m, colour) in MEMBER_COLOURS.iter().enumerate().take(o.members.len()) {
        draw_member_path(&mut chart, &member_path(o, m), colour)?;
    }
    Ok(())
}

/// Filled contour bands of Q on an `n` × `n` grid, one rectangle per run of equal band along
/// each row.
fn contour_bands(n: usize) -> Vec<Rectangle<(f64, f64)>> {
    let cell = (DOMAIN.1 - DOMAIN.0) / n as f64;
    let mut rects = Vec::new();
    for j in 0..n {
        let y0 = DOMAIN.0 + j as f64 * cell;
        let yc = y0 + cell / 2.0;
        let mut i = 0;
        while i < n {
            let colour = band_colour(q([DOMAIN.0 + (i as f64 + 0.5) * cell, yc]));
            let mut k = i + 1;
            while k < n && band_colour(q([DOMAIN.0 + (k as f64 + 0.5) * cell, yc])) == colour {
                k += 1;
            }
            let x0 = DOMAIN.0 + i as f64 * cell;
            let x1 = DOMAIN.0 + k as f64 * cell;
            rects.push(Rectangle::new([(x0, y0), (x1, y0 + cell)], colour.filled()));
            i = k;
        }
    }
    rects
}

/// One member's θ path in `colour`: solid pieces, a dot at each step, exploit jumps dashed.
fn draw_member_path<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    path: &Path2,
    colour: &RGBColor,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing failed: {e:?}");
    for piece in &path.pieces {
        chart
            .draw_series(LineSeries::new(piece.clone(), colour.stroke_width(2)))
            .map_err(err)?;
    }
    chart
        .draw_series(
            path.points
                .iter()
                .map(|&p| Circle::new(p, 3, colour.filled())),
        )
        .map_err(err)?;
    for &(a, b) in &path.jumps {
        chart
            .draw_series(DashedLineSeries::new(
                vec![a, b],
                7,
                5,
                colour.stroke_width(2),
            ))
            .map_err(err)?;
    }
    Ok(())
}

/// The whole figure: a heading, four panels in a 2 × 2 grid, and one legend below them.
fn draw_figure<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    runs: &[(Baseline, Outcome<[f64; 2]>)],
    heading: &str,
    svg: bool,
    pb2: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing failed: {e:?}");
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(heading, ("sans-serif", 26)).map_err(err)?;
    let (_, height) = root.dim_in_pixel();
    let (root, legend) = root.split_vertically(height.saturating_sub(44));
    draw_legend(&legend, runs).map_err(err)?;
    let panels = root.split_evenly((2, 2));
    for (area, (variant, o)) in panels.iter().zip(runs) {
        draw_panel(area, *variant, o, svg, pb2)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// One legend for the whole figure, in a strip below the panels.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    runs: &[(Baseline, Outcome<[f64; 2]>)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let font = ("sans-serif", 18).into_font();
    let y = 20;
    let mut x = 40;
    if let Some((_, o)) = runs.first() {
        for (m, colour) in MEMBER_COLOURS.iter().enumerate().take(o.initial.len()) {
            let h = &o.initial[m];
            area.draw(&PathElement::new(
                vec![(x, y), (x + 30, y)],
                colour.stroke_width(2),
            ))?;
            area.draw(&Circle::new((x + 15, y), 3, colour.filled()))?;
            let label = format!(
                "member {m}, h = ({}, {}) at start",
                h.f64("h0").unwrap_or(f64::NAN),
                h.f64("h1").unwrap_or(f64::NAN)
            );
            area.draw(&Text::new(label, (x + 40, y - 9), font.clone()))?;
            x += 330;
        }
    }
    area.draw(&DashedPathElement::new(
        vec![(x, y), (x + 30, y)],
        6,
        4,
        BLACK.stroke_width(2),
    ))?;
    area.draw(&Text::new(
        "exploit: copies the winner's θ",
        (x + 40, y - 9),
        font.clone(),
    ))?;
    x += 340;
    area.draw(&Cross::new(
        (x + 10, y),
        6,
        ShapeStyle::from(&OPTIMUM).stroke_width(3),
    ))?;
    area.draw(&Text::new("optimum, Q = 1.2", (x + 28, y - 9), font))?;
    Ok(())
}

/// Writes `toy.png` and `toy.svg` into `dir`: one panel per variant with the contours of Q and
/// both members' θ paths, exploit jumps dashed, like Figure 2 of the paper.
pub fn toy_figure(
    dir: &Path,
    cfg: &ToyConfig,
    runs: &[(Baseline, Outcome<[f64; 2]>)],
    seed: u64,
) -> Result<Vec<PathBuf>> {
    poptune_view::fonts::register();
    let heading = format!(
        "{} toy: Q = 1.2 − (θ0² + θ1²), η = {}, {} steps, ready every {} (seed {seed}; lighter is higher Q)",
        cfg.algorithm.name().to_uppercase(),
        cfg.eta,
        cfg.steps,
        cfg.interval
    );
    let size = (1400, 1400);
    let pb2 = cfg.algorithm.keeps_intervals();
    let png = dir.join("toy.png");
    let svg = dir.join("toy.svg");
    draw_figure(
        BitMapBackend::new(&png, size).into_drawing_area(),
        runs,
        &heading,
        false,
        pb2,
    )
    .map_err(|e| anyhow!("cannot write {}: {e}", png.display()))?;
    draw_figure(
        SVGBackend::new(&svg, size).into_drawing_area(),
        runs,
        &heading,
        true,
        pb2,
    )
    .map_err(|e| anyhow!("cannot write {}: {e}", svg.display()))?;
    Ok(vec![png, svg])
}
