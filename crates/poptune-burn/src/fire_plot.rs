//! A FIRE-PBT run's sub-populations on one chart: every member's score over its training
//! steps, coloured by its sub-population (evaluators dashed), with a star where a member of a
//! lower sub-population took the state of an evaluator that beat it.

use std::path::Path;

use plotters::prelude::*;
use poptune::fire::Role;
use poptune::Algorithm;
use poptune_run::local as durable;
use poptune_store::Store;

use crate::error::BurnError;
use crate::schedules::{draw_error, drawing, frame};

type Result<T> = std::result::Result<T, BurnError>;

/// One member's stretch of training: its role and (step, score) points.
type Stretch = (Role, Vec<(f64, f64)>);

fn colour(role: Role) -> RGBColor {
    match role {
        Role::Sub(0) => RGBColor(31, 119, 180),
        Role::Sub(1) => RGBColor(214, 39, 40),
        Role::Sub(_) => RGBColor(44, 160, 44),
        Role::Evaluator => RGBColor(120, 120, 120),
    }
}

fn label(role: Role) -> String {
    match role {
        Role::Sub(k) => format!(
            "P{}{}",
            k + 1,
            if k == 0 {
                " (by score)"
            } else {
                " (by improvement rate)"
            }
        ),
        Role::Evaluator => "evaluators".into(),
    }
}

/// Draws the experiment in `dir` (a FIRE-PBT run) into `out` (.png and .svg).
pub fn plot(dir: &Path, title: &str, out: &Path) -> Result<()> {
    poptune_view::fonts::register();
    let (store, def) = durable::open_dir(dir)?;
    let Algorithm::Fire(fire) = &def.policy.algorithm else {
        return Err(BurnError::Missing(format!(
            "{} is not a FIRE-PBT run",
            dir.display()
        )));
    };
    let mut stretches: Vec<Stretch> = Vec::new();
    let mut last: Option<(usize, u64)> = None;
    for s in store.steps()? {
        if last != Some((s.member, s.epoch)) {
            stretches.push((fire.role(s.member), Vec::new()));
            last = Some((s.member, s.epoch));
        }
        if let Some(st) = stretches.last_mut() {
            st.1.push((s.step as f64, s.score));
        }
    }
    let wins: Vec<(f64, f64)> = store
        .events()?
        .iter()
        .filter(|e| e.donor.is_some_and(|d| fire.role(d) == Role::Evaluator))
        .filter(|e| fire.role(e.recipient) != Role::Evaluator)
        .map(|e| (e.step as f64, e.donor_score.unwrap_or(f64::NAN)))
        .filter(|p| p.1.is_finite())
        .collect();
    let pts = || stretches.iter().flat_map(|s| s.1.iter());
    let xmax = pts().map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
        (a.min(p.1), b.max(p.1))
    });
    if !lo.is_finite() {
        return Err(BurnError::Missing("no steps to draw".into()));
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let spec = (
        title,
        def.metric.as_str(),
        0.0..xmax,
        (lo - pad)..(hi + pad),
    );
    let png = out.with_extension("png");
    let svg = out.with_extension("svg");
    draw(
        BitMapBackend::new(&png, (1000, 550)).into_drawing_area(),
        &spec,
        &stretches,
        &wins,
    )
    .map_err(|e| drawing(e, &png))?;
    draw(
        SVGBackend::new(&svg, (1000, 550)).into_drawing_area(),
        &spec,
        &stretches,
        &wins,
    )
    .map_err(|e| drawing(e, &svg))
}

type FrameSpec<'a> = (&'a str, &'a str, std::ops::Range<f64>, std::ops::Range<f64>);

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    (title, metric, x, y): &FrameSpec<'_>,
    stretches: &[Stretch],
    wins: &[(f64, f64)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = draw_error::<DB>;
    let mut chart = frame(&root, title, 20, x.clone(), y.clone())?;
    chart
        .configure_mesh()
        .x_desc("steps of training behind the state")
        .y_desc(*metric)
        .draw()
        .map_err(err)?;
    let mut labelled: Vec<Role> = Vec::new();
    for (role, line) in stretches {
        let c = colour(*role);
        let style = c.mix(if *role == Role::Evaluator { 0.55 } else { 0.8 });
        let series = if *role == Role::Evaluator {
            chart.draw_series(DashedLineSeries::new(
                line.clone(),
                6,
                4,
                style.stroke_width(1),
            ))
        } else {
            chart.draw_series(LineSeries::new(line.clone(), style.stroke_width(1)))
        }
        .map_err(err)?;
        if !labelled.contains(role) {
            labelled.push(*role);
            series.label(label(*role)).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3))
            });
        }
    }
    if !wins.is_empty() {
        chart
            .draw_series(
                wins.iter()
                    .map(|&p| Cross::new(p, 7, BLACK.stroke_width(2))),
            )
            .map_err(err)?
            .label("an evaluator's state replaces the member it beat")
            .legend(|(x, y)| Cross::new((x + 10, y), 5, BLACK.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
