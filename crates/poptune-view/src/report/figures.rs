//! The report's figures (PNG and SVG, with plotters): the scores, the hyperparameters' schedules
//! and the best member's lineage.

use plotters::coord::Shift;
use plotters::prelude::*;
use poptune::lineage::schedule;
use poptune::{Event, ExperimentDef, Hyperparams, Param};
use poptune_store::StepRow;

use crate::ViewError;

type Result<T> = std::result::Result<T, ViewError>;

/// Follows `member` (at step `step`) back through its donors: which member's training each
/// stretch of its final state comes from, as (member, from, to) on an axis of training steps
/// that starts at 0 with the oldest; the exploits as (position, donor, recipient); and the
/// length of the whole history, the member's step count (after an exploit a member counts on
/// from the donor checkpoint's step). Stores of release 0.1.0 counted a member's own steps on
/// after an exploit; their histories can start before 0, and are shifted to start there.
type Lineage = (Vec<(usize, f64, f64)>, Vec<(f64, usize, usize)>, f64);

fn lineage(events: &[Event], member: usize, step: u64) -> Lineage {
    let mut pieces: Vec<(usize, f64, f64)> = Vec::new();
    let mut jumps: Vec<(f64, usize, usize)> = Vec::new();
    let mut current = member;
    let mut limit = u64::MAX;
    let mut end = step;
    let mut offset_end = end as f64;
    loop {
        let last = events
            .iter()
            .filter(|e| e.recipient == current && e.seq < limit && e.donor.is_some())
            .max_by_key(|e| e.seq);
        match last {
            None => {
                pieces.push((current, offset_end - end as f64, offset_end));
                break;
            }
            Some(e) => {
                let len = end.saturating_sub(e.donor_step) as f64;
                pieces.push((current, offset_end - len, offset_end));
                offset_end -= len;
                let donor = e.donor.unwrap_or(current);
                jumps.push((offset_end, donor, current));
                current = donor;
                limit = e.seq;
                end = e.donor_step;
            }
        }
    }
    let first = pieces.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    for p in &mut pieces {
        p.1 -= first;
        p.2 -= first;
    }
    for j in &mut jumps {
        j.0 -= first;
    }
    pieces.reverse();
    jumps.reverse();
    (pieces, jumps, step as f64 - first)
}

#[derive(Clone, Copy)]
pub(crate) enum Figure {
    Scores,
    Hyperparameters,
    Lineage,
}

pub(crate) struct FigureData<'a> {
    pub def: &'a ExperimentDef,
    pub steps: &'a [StepRow],
    pub events: &'a [Event],
    pub initial: &'a [Hyperparams],
    pub best: usize,
    pub best_step: u64,
}

fn colour(i: usize) -> RGBColor {
    let c = Palette99::pick(i).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// Turns a plotters drawing error into an error of this crate, as its debug text.
fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> ViewError {
    ViewError::Draw(format!("{e:?}"))
}

/// Fills the area white, draws one figure on it and presents it.
pub(crate) fn draw_figure<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    fig: Figure,
    d: &FigureData<'_>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(draw_err)?;
    match fig {
        Figure::Scores => draw_scores(&root, d)?,
        Figure::Hyperparameters => draw_hyperparameters(&root, d)?,
        Figure::Lineage => draw_lineage(&root, d)?,
    }
    root.present().map_err(draw_err)?;
    Ok(())
}

/// Draws every member's score by step, the best one thick, with a circle at each exploit.
fn draw_scores<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &FigureData<'_>,
) -> Result<()> {
    let max_step = d.def.stop.steps as f64;
    let (lo, hi) = d
        .steps
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| {
            (a.min(s.score), b.max(s.score))
        });
    let pad = ((hi - lo) * 0.05).max(1e-9);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "{} of every member (circles: exploits, at the donor's score)",
                d.def.metric
            ),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_step, (lo - pad)..(hi + pad))
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(d.def.metric.as_str())
        .draw()
        .map_err(draw_err)?;
    for m in 0..d.def.population {
        let pts: Vec<(f64, f64)> = d
            .steps
            .iter()
            .filter(|s| s.member == m)
            .map(|s| (s.step as f64, s.score))
            .collect();
        let width = if m == d.best { 3 } else { 1 };
        chart
            .draw_series(LineSeries::new(pts, colour(m).stroke_width(width)))
            .map_err(draw_err)?;
    }
    chart
        .draw_series(
            d.events
                .iter()
                .filter(|e| e.donor.is_some())
                .filter_map(|e| {
                    e.donor_score
                        .map(|s| Circle::new((e.step as f64, s), 4, colour(e.recipient).filled()))
                }),
        )
        .map_err(draw_err)?;
    Ok(())
}

/// Draws one panel per numeric hyperparameter of the space, stacked top to bottom.
fn draw_hyperparameters<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &FigureData<'_>,
) -> Result<()> {
    let params: Vec<(&str, &Param)> = d
        .def
        .space
        .iter()
        .filter(|(_, p)| !matches!(p, Param::Fixed { .. } | Param::Choice { .. }))
        .collect();
    let areas = root.split_evenly((params.len().max(1), 1));
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
        let mut h = d.initial[m].clone();
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

/// Draws one hyperparameter's panel: every member's value (thin) and the best's schedule (thick).
fn draw_hyperparameter<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    name: &str,
    param: &Param,
    d: &FigureData<'_>,
) -> Result<()> {
    let max_step = d.def.stop.steps as f64;
    let log = matches!(
        param,
        Param::Float { log: true, .. } | Param::Int { log: true, .. }
    );
    let value = |h: &Hyperparams| {
        h.f64(name)
            .map(|v| if log { v.max(1e-300).log10() } else { v })
    };
    let lines = member_lines(d, value, max_step);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in lines.iter().flatten() {
        lo = lo.min(p.1);
        hi = hi.max(p.1);
    }
    // The best member's schedule, followed back through its donors: the
    // hyperparameters that produced its final state, by steps of training.
    let sched = schedule(d.initial, d.events, d.best, d.best_step);
    let mut best_line = Vec::new();
    for seg in &sched.segments {
        if let Some(v) = value(&seg.h) {
            best_line.push((seg.start as f64, v));
            best_line.push((seg.end as f64, v));
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if !lo.is_finite() {
        return Ok(());
    }
    // The schedule counts the steps of the whole history, which an exploit of an
    // older donor makes longer than the member's own count.
    let x_max = sched
        .segments
        .iter()
        .map(|s| s.end as f64)
        .fold(max_step, f64::max);
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let label = if log {
        format!("log10({name})")
    } else {
        name.to_string()
    };
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!(
                "{name} of every member (thin) and the schedule that made the best's final state, member {} (thick black)",
                d.best
            ),
            ("sans-serif", 18),
        )
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("step (thin: each member's own count; thick: steps of the best's history, as `poptune replay` retrains them)")
        .y_desc(label)
        .draw()
        .map_err(draw_err)?;
    for (m, pts) in lines.into_iter().enumerate() {
        chart
            .draw_series(LineSeries::new(pts, colour(m).stroke_width(1)))
            .map_err(draw_err)?;
    }
    chart
        .draw_series(LineSeries::new(best_line, BLACK.stroke_width(3)))
        .map_err(draw_err)?;
    Ok(())
}

/// Draws the best member's lineage: whose training each stretch of its final state came from.
fn draw_lineage<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &FigureData<'_>,
) -> Result<()> {
    let (pieces, jumps, total) = lineage(d.events, d.best, d.best_step);
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "lineage of member {}: whose training its final state came from",
                d.best
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..total.max(1.0), -0.5..(d.def.population as f64 - 0.5))
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(format!(
            "the {total} training steps behind its final state, oldest first (vertical lines: exploits)"
        ))
        .y_desc("member")
        .draw()
        .map_err(draw_err)?;
    for (m, a, b) in &pieces {
        chart
            .draw_series(LineSeries::new(
                vec![(*a, *m as f64), (*b, *m as f64)],
                colour(*m).stroke_width(5),
            ))
            .map_err(draw_err)?;
    }
    for (x, from, to) in &jumps {
        chart
            .draw_series(LineSeries::new(
                vec![(*x, *from as f64), (*x, *to as f64)],
                BLACK.stroke_width(1),
            ))
            .map_err(draw_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exploit(seq: u64, step: u64, recipient: usize, donor: usize, donor_step: u64) -> Event {
        Event {
            seq,
            step,
            recipient,
            donor: Some(donor),
            donor_step,
            old_h: Default::default(),
            new_h: Default::default(),
            recipient_score: 0.0,
            donor_score: Some(1.0),
        }
    }

    #[test]
    fn a_lineage_counts_the_donors_steps_from_the_oldest() {
        // Member 7 copied member 0's 32-step state at its step 28 (its step became 32), then
        // trained to 40: 32 steps of member 0's training, then 8 of its own.
        let events = vec![exploit(3, 8, 7, 1, 8), exploit(9, 28, 7, 0, 32)];
        let (pieces, jumps, total) = lineage(&events, 7, 40);
        assert_eq!(pieces, vec![(0, 0.0, 32.0), (7, 32.0, 40.0)]);
        assert_eq!(jumps, vec![(32.0, 0, 7)]);
        assert_eq!(total, 40.0);
        // Member 2 copied member 5 at member 5's step 10 when it was at step 20 (its step
        // became 10), then trained to 30. Member 5 had copied member 1 at step 5.
        let events = vec![exploit(1, 5, 5, 1, 5), exploit(4, 20, 2, 5, 10)];
        let (pieces, jumps, total) = lineage(&events, 2, 30);
        assert_eq!(pieces, vec![(1, 0.0, 5.0), (5, 5.0, 10.0), (2, 10.0, 30.0)]);
        assert_eq!(jumps, vec![(5.0, 1, 5), (10.0, 5, 2)]);
        assert_eq!(total, 30.0);
        // No exploit: all its own.
        assert_eq!(lineage(&[], 4, 12), (vec![(4, 0.0, 12.0)], vec![], 12.0));
    }
}
