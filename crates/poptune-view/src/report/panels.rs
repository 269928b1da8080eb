//! The hyperparameters figure: one panel per numeric hyperparameter, each member's value by
//! step and the schedule behind the best member's final state.

use plotters::coord::Shift;
use plotters::prelude::*;
use poptune::lineage::schedule;
use poptune::{ExperimentDef, Hyperparams, Param};

use super::figures::{chart, colour, draw_err, title, FigureData, Frame, Result, CAPTION, TEXT};
use super::scale::Axis;

/// The hyperparameters that get a panel: those with numeric values that can change.
pub(crate) fn panels(def: &ExperimentDef) -> Vec<(&str, &Param)> {
    def.space
        .iter()
        .filter(|(_, p)| match p {
            Param::Float { .. } | Param::Int { .. } => true,
            Param::Ordered { values } => values.iter().all(|v| v.as_f64().is_some()),
            Param::Fixed { .. } | Param::Choice { .. } => false,
        })
        .collect()
}

/// Draws one panel per numeric hyperparameter of the space, stacked top to bottom, under a
/// caption that says what the lines are.
pub(crate) fn draw_hyperparameters<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &FigureData<'_>,
) -> Result<()> {
    let caption = format!(
        "hyperparameters of every member (thin, in its colour) and the schedule behind the best's final state, member {} (thick black)",
        d.best
    );
    let body = title(root, &caption, TEXT + 1, &BLACK)?;
    let body = title(
        &body,
        "thin lines: each member's own step count; thick: the steps of the best's history, as `poptune replay` retrains them",
        TEXT,
        &RGBColor(90, 90, 90),
    )?;
    let params = panels(d.def);
    let areas = body.split_evenly((params.len().max(1), 1));
    for ((name, param), area) in params.iter().zip(areas.iter()) {
        draw_hyperparameter(area, name, param, d)?;
    }
    Ok(())
}

/// Each member's value of one hyperparameter as a stepped line over its own step count.
fn member_lines(
    d: &FigureData<'_>,
    value: impl Fn(&Hyperparams) -> Option<f64>,
    max_step: f64,
) -> Vec<Vec<(f64, f64)>> {
    let mut lines: Vec<Vec<(f64, f64)>> = Vec::new();
    for m in 0..d.def.population {
        let mut h = d.initial.get(m).cloned().unwrap_or_default();
        let mut pts = Vec::new();
        let mut at = 0u64;
        for e in d.events.iter().filter(|e| e.recipient == m) {
            if let Some(v) = value(&h) {
                pts.push((at as f64, v));
                pts.push((e.step as f64, v));
            }
            h = e.new_h.clone();
            // An exploit's recipient counts on from the donor's step.
            at = e.donor_step;
        }
        if let Some(v) = value(&h) {
            pts.push((at as f64, v));
            pts.push((max_step, v));
        }
        lines.push(pts);
    }
    lines
}

/// The y axis of a hyperparameter's panel over the values `lo..hi`: logarithmic for a
/// log-uniform parameter, integer ticks for an integer one, ticks at the levels of an
/// ordered one (logarithmic when they grow by a constant factor, like batch sizes).
pub(crate) fn panel_axis(param: &Param, lo: f64, hi: f64) -> Axis {
    match param {
        Param::Float { log: true, .. } if lo > 0.0 => Axis::log(lo, hi, false),
        Param::Int { log: true, .. } if lo > 0.0 => Axis::log(lo, hi, true),
        Param::Int { .. } => Axis::linear(lo, hi, true),
        Param::Ordered { values } => {
            let mut v: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
            v.sort_by(f64::total_cmp);
            v.dedup();
            let integer = v.iter().all(|x| x.fract() == 0.0);
            if v.len() > 12 || v.is_empty() {
                return Axis::linear(lo, hi, integer);
            }
            Axis::at_values(&v, geometric(&v))
        }
        _ => Axis::linear(lo, hi, false),
    }
}

/// Whether sorted positive values grow by about the same factor each (16, 32, 64, 128).
fn geometric(v: &[f64]) -> bool {
    if v.len() < 3 || v[0] <= 0.0 {
        return false;
    }
    let ratios: Vec<f64> = v.windows(2).map(|w| w[1] / w[0]).collect();
    let (a, b) = ratios
        .iter()
        .fold((f64::INFINITY, 0f64), |(a, b), r| (a.min(*r), b.max(*r)));
    a > 1.2 && b / a < 1.3
}

/// Draws one hyperparameter's panel: every member's value (thin) and the best's schedule (thick).
fn draw_hyperparameter<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    name: &str,
    param: &Param,
    d: &FigureData<'_>,
) -> Result<()> {
    let max_step = d.max_step();
    let value = |h: &Hyperparams| h.f64(name);
    let lines = member_lines(d, value, max_step);
    // The best member's schedule, followed back through its donors: the
    // hyperparameters that produced its final state, by steps of training.
    let sched = schedule(d.initial, d.events, d.best, d.best_step);
    let mut best_line = Vec::new();
    for seg in &sched.segments {
        if let Some(v) = value(&seg.h) {
            best_line.push((seg.start as f64, v));
            best_line.push((seg.end as f64, v));
        }
    }
    let (lo, hi) = lines
        .iter()
        .flatten()
        .chain(&best_line)
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return Ok(());
    }
    let y = panel_axis(param, lo, hi);
    // The schedule counts the steps of the whole history, which an exploit of an
    // older donor makes longer than the member's own count.
    let x_max = sched
        .segments
        .iter()
        .map(|s| s.end as f64)
        .fold(max_step, f64::max);
    let x = Axis::linear(0.0, x_max, true);
    let body = title(area, name, CAPTION, &BLACK)?;
    let y_desc = if y.log {
        format!("{name} (log scale)")
    } else {
        name.to_string()
    };
    let frame = Frame {
        x: &x,
        y: &y,
        x_desc: "step",
        y_desc: &y_desc,
    };
    let mut chart = chart(&body, &frame)?;
    let at = |pts: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        pts.into_iter().map(|(s, v)| (s, y.clamp(v).0)).collect()
    };
    for (m, pts) in lines.into_iter().enumerate() {
        chart
            .draw_series(LineSeries::new(at(pts), colour(m).stroke_width(1)))
            .map_err(draw_err)?;
    }
    chart
        .draw_series(LineSeries::new(at(best_line), BLACK.stroke_width(3)))
        .map_err(draw_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panel_shows_integers_and_levels_as_they_are() {
        let int = Param::int(16, 128);
        let labels = panel_axis(&int, 16.0, 128.0).labels();
        assert!(
            labels.iter().all(|l| l.parse::<i64>().is_ok()),
            "{labels:?}"
        );
        let batch = Param::ordered([16i64, 32, 64, 128]);
        let axis = panel_axis(&batch, 16.0, 128.0);
        assert!(axis.log);
        assert_eq!(axis.labels(), ["16", "32", "64", "128"]);
        let lr = Param::log_float(1e-4, 0.4);
        let axis = panel_axis(&lr, 1e-4, 0.4);
        assert!(axis.log);
        assert!(
            axis.labels().contains(&"0.001".to_string()),
            "{:?}",
            axis.labels()
        );
        let levels = Param::ordered([1i64, 2, 3, 5]);
        assert!(!panel_axis(&levels, 1.0, 5.0).log);
    }
}
