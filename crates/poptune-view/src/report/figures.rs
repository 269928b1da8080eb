//! The report's figures (PNG and SVG, with plotters): the scores, the hyperparameters' schedules
//! and the best member's lineage.

use plotters::coord::Shift;
use plotters::prelude::*;
use poptune::{Event, ExperimentDef, Hyperparams};
use poptune_store::StepRow;

use super::panels::{draw_hyperparameters, panels};
use super::scale::{score_axis, Axis, Ticked};
use crate::format::score;
use crate::ViewError;

pub(crate) type Result<T> = std::result::Result<T, ViewError>;

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

impl Figure {
    /// The figure's size in pixels: the hyperparameters get a panel of readable height each,
    /// the lineage a row of readable height per member.
    pub(crate) fn size(self, d: &FigureData<'_>) -> (u32, u32) {
        match self {
            Figure::Scores => (WIDTH, 700),
            Figure::Hyperparameters => (WIDTH, 60 + PANEL * panels(d.def).len().max(1) as u32),
            Figure::Lineage => (WIDTH, (240 + 24 * d.def.population as u32).clamp(420, 1000)),
        }
    }
}

/// The figures' width: the HTML page shows them at this size.
const WIDTH: u32 = 1200;
/// The height of one hyperparameter's panel.
const PANEL: u32 = 300;
/// The text size of tick labels and axis descriptions.
pub(crate) const TEXT: u32 = 18;
/// The text size of captions.
pub(crate) const CAPTION: u32 = 22;

pub(crate) struct FigureData<'a> {
    pub def: &'a ExperimentDef,
    pub steps: &'a [StepRow],
    pub events: &'a [Event],
    pub initial: &'a [Hyperparams],
    pub best: usize,
    pub best_step: u64,
}

impl FigureData<'_> {
    /// The step axis's end: the highest step recorded (a run that a stop rule ended early
    /// does not get an axis of steps it never trained), or the run's step limit before any.
    pub(crate) fn max_step(&self) -> f64 {
        self.steps
            .iter()
            .map(|s| s.step)
            .max()
            .unwrap_or(self.def.stop.steps) as f64
    }
}

/// Member `i`'s colour: the ten of Tableau's palette (distinct, none too pale on white), then
/// hues a golden angle apart at the same saturation and lightness.
pub(crate) fn colour(i: usize) -> RGBColor {
    const TEN: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    if let Some(&(r, g, b)) = TEN.get(i) {
        return RGBColor(r, g, b);
    }
    let c = HSLColor((i as f64 * 0.618_034).fract(), 0.7, 0.42).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// Turns a plotters drawing error into an error of this crate, as its debug text.
pub(crate) fn draw_err<E: std::error::Error + Send + Sync>(
    e: DrawingAreaErrorKind<E>,
) -> ViewError {
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

/// A chart whose axes are [`Axis`]es.
pub(crate) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Ticked, Ticked>>;

/// The frame of a chart: its axes and their descriptions.
pub(crate) struct Frame<'s> {
    pub x: &'s Axis,
    pub y: &'s Axis,
    pub x_desc: &'s str,
    pub y_desc: &'s str,
}

/// The width of the widest of `texts` at size `size`, as the area's backend measures it.
pub(crate) fn widest<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    texts: impl IntoIterator<Item = String>,
    size: u32,
) -> Result<u32> {
    let style = ("sans-serif", size).into_text_style(area);
    let mut w = 0;
    for t in texts {
        w = w.max(area.estimate_text_size(&t, &style).map_err(draw_err)?.0);
    }
    Ok(w)
}

/// Builds a chart on `area` and draws its mesh: the label areas are as wide as the widest
/// tick label needs (and a tenth more, for a viewer's font that is wider), so that no label
/// is ever clipped.
pub(crate) fn chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    f: &Frame<'_>,
) -> Result<Chart<'a, DB>> {
    let label_w = widest(area, f.y.labels(), TEXT)?;
    let y_area = label_w + label_w / 10 + 18 + TEXT * 3 / 2;
    let x_area = TEXT * 2 + 22;
    // The last x label is centred on the right edge: room for its half.
    let right = widest(area, f.x.labels().into_iter().last(), TEXT)? / 2 + 12;
    let mut chart = ChartBuilder::on(area)
        .margin_top(10)
        .margin_right(right)
        .margin_left(6)
        .margin_bottom(6)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(f.x.spec(), f.y.spec())
        .map_err(draw_err)?;
    let (x, y) = (f.x.clone(), f.y.clone());
    chart
        .configure_mesh()
        .x_desc(f.x_desc)
        .y_desc(f.y_desc)
        .x_label_formatter(&|v| x.label(*v))
        .y_label_formatter(&|v| y.label(*v))
        .label_style(("sans-serif", TEXT))
        .axis_desc_style(("sans-serif", TEXT))
        .bold_line_style(RGBColor(225, 225, 225))
        .draw()
        .map_err(draw_err)?;
    Ok(chart)
}

/// Splits a member's points into the stretches to draw: a NaN score breaks its line, a
/// score outside the y axis's range is drawn at its edge. Returns the stretches and the
/// points drawn at an edge (where a stretch first leaves the range), with how many were.
type Clipped = (Vec<Vec<(f64, f64)>>, Vec<(f64, f64, bool)>, usize);

pub(crate) fn clip(points: impl Iterator<Item = (f64, f64)>, y: &Axis) -> Clipped {
    let mut runs: Vec<Vec<(f64, f64)>> = vec![vec![]];
    let mut marks = Vec::new();
    let mut clipped = 0;
    let mut was_out = false;
    for (x, v) in points {
        if v.is_nan() {
            runs.push(vec![]);
            was_out = false;
            continue;
        }
        let (p, out) = y.clamp(v);
        if out {
            clipped += 1;
            if !was_out {
                marks.push((x, p, p >= y.hi));
            }
        }
        was_out = out;
        if let Some(run) = runs.last_mut() {
            run.push((x, p));
        }
    }
    runs.retain(|r| !r.is_empty());
    (runs, marks, clipped)
}

/// For each member with scores outside the y range shown: how many, and the furthest.
fn outside(d: &FigureData<'_>, y: &Axis) -> Vec<String> {
    let mut list = Vec::new();
    for m in 0..d.def.population {
        let (n, far) = d
            .steps
            .iter()
            .filter(|s| s.member == m && y.clamp(s.score).1)
            .map(|s| s.score)
            .fold((0, f64::NAN), |(n, w), s| {
                let further = w.is_nan() || y.at(s).abs() > y.at(w).abs();
                (n + 1, if further { s } else { w })
            });
        if n > 0 {
            list.push(format!("member {m}: {n} steps, to {}", score(far)));
        }
    }
    list
}

/// The line that says which members' scores lie outside the range shown: as many as fit in
/// the area's width, then how many more.
fn outside_note<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[String],
) -> Result<Option<String>> {
    if items.is_empty() {
        return Ok(None);
    }
    let room = area.dim_in_pixel().0.saturating_sub(30);
    let head = "scores outside this range are drawn at its edge (triangles): ";
    let mut note = format!("{head}{}", items[0]);
    for (i, item) in items.iter().enumerate().skip(1) {
        let more = format!("; and {} more members", items.len() - i);
        let longer = format!("{note}; {item}");
        let next = if i + 1 < items.len() {
            format!("{longer}; and {} more members", items.len() - i - 1)
        } else {
            longer.clone()
        };
        if widest(area, [next], TEXT)? > room {
            note.push_str(&more);
            break;
        }
        note = longer;
    }
    Ok(Some(note))
}

/// Draws a title at the top of `area` (in a smaller size when it would not fit its width)
/// and returns the area below it.
pub(crate) fn title<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    size: u32,
    colour: &RGBColor,
) -> Result<DrawingArea<DB, Shift>> {
    let room = area.dim_in_pixel().0.saturating_sub(20);
    let mut size = size;
    while size > 11 && widest(area, [text.to_string()], size)? > room {
        size -= 1;
    }
    area.titled(text, ("sans-serif", size).into_font().color(colour))
        .map_err(draw_err)
}

/// Draws every member's score by step, the best one thick, with a circle at each exploit and
/// a legend; the y range leaves out a member that diverges (its scores are drawn at the edge,
/// and the caption says so), and is logarithmic when the scores are positive and span
/// many decades.
fn draw_scores<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &FigureData<'_>,
) -> Result<()> {
    let scores: Vec<f64> = d.steps.iter().map(|s| s.score).collect();
    let y = score_axis(&scores);
    let x = Axis::linear(0.0, d.max_step(), true);
    let caption = format!(
        "{} of every member by step (thick: the best, member {}; circles: exploits, at the donor's score)",
        d.def.metric, d.best
    );
    let mut body = title(root, &caption, CAPTION, &BLACK)?;
    if let Some(note) = outside_note(&body, &outside(d, &y))? {
        body = title(&body, &note, TEXT, &RED)?;
    }
    let entries = legend_entries(d);
    let legend_w = legend_width(&body, &entries)?;
    let (plot, legend) = body.split_horizontally(body.dim_in_pixel().0.saturating_sub(legend_w));
    let y_desc = if y.log {
        format!("{} (log scale)", d.def.metric)
    } else {
        d.def.metric.clone()
    };
    let frame = Frame {
        x: &x,
        y: &y,
        x_desc: "step",
        y_desc: &y_desc,
    };
    let mut chart = chart(&plot, &frame)?;
    // The best member last, on top of the others.
    let order = (0..d.def.population)
        .filter(|m| *m != d.best)
        .chain(std::iter::once(d.best));
    for m in order {
        let pts = d
            .steps
            .iter()
            .filter(|s| s.member == m)
            .map(|s| (s.step as f64, s.score));
        let (runs, marks, _) = clip(pts, &y);
        let width = if m == d.best { 3 } else { 1 };
        for run in runs {
            chart
                .draw_series(LineSeries::new(run, colour(m).stroke_width(width)))
                .map_err(draw_err)?;
        }
        chart
            .draw_series(marks.into_iter().map(|(x, p, up)| {
                let size = if up { 7 } else { -7 };
                TriangleMarker::new((x, p), size, colour(m).filled())
            }))
            .map_err(draw_err)?;
    }
    chart
        .draw_series(
            d.events
                .iter()
                .filter(|e| e.donor.is_some())
                .filter_map(|e| {
                    e.donor_score.map(|s| {
                        Circle::new(
                            (e.step as f64, y.clamp(s).0),
                            4,
                            colour(e.recipient).filled(),
                        )
                    })
                }),
        )
        .map_err(draw_err)?;
    draw_legend(&legend, &entries)
}

/// The legend's entries: the best member first, named so, then the others.
fn legend_entries(d: &FigureData<'_>) -> Vec<(String, usize)> {
    let mut entries = vec![(format!("member {} (best)", d.best), d.best)];
    entries.extend(
        (0..d.def.population)
            .filter(|m| *m != d.best)
            .map(|m| (format!("member {m}"), m)),
    );
    entries
}

/// A legend row's height, and the most columns a legend takes.
const ROW: u32 = 22;
const COLUMNS: usize = 2;

/// The legend's rows per column, and its columns, in an area `height` tall.
fn legend_layout(entries: usize, height: u32) -> (usize, usize) {
    let rows = ((height.saturating_sub(40)) / ROW).max(1) as usize;
    let cols = entries.div_ceil(rows).clamp(1, COLUMNS);
    (rows, cols)
}

fn legend_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, usize)],
) -> Result<u32> {
    let text = widest(area, entries.iter().map(|e| e.0.clone()), TEXT)?;
    let (_, cols) = legend_layout(entries.len(), area.dim_in_pixel().1);
    Ok((text + text / 10 + 44) * cols as u32 + 10)
}

/// Draws the legend in columns; when it cannot hold every member, its last row says how
/// many it leaves out.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, usize)],
) -> Result<()> {
    let (rows, cols) = legend_layout(entries.len(), area.dim_in_pixel().1);
    let fits = rows * cols;
    let col_w = (area.dim_in_pixel().0.saturating_sub(10) / cols as u32) as i32;
    let style = ("sans-serif", TEXT).into_font();
    for (i, (label, m)) in entries.iter().enumerate().take(fits) {
        let (c, r) = ((i / rows) as i32, (i % rows) as i32);
        let (x, y) = (10 + c * col_w, 30 + r * ROW as i32);
        if i + 1 == fits && entries.len() > fits {
            let more = format!("… {} more", entries.len() + 1 - fits);
            area.draw(&Text::new(more, (x, y - 8), style.clone()))
                .map_err(draw_err)?;
            break;
        }
        let width = if i == 0 { 5 } else { 2 };
        area.draw(&PathElement::new(
            vec![(x, y), (x + 28, y)],
            colour(*m).stroke_width(width),
        ))
        .map_err(draw_err)?;
        area.draw(&Text::new(label.clone(), (x + 34, y - 8), style.clone()))
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Draws the best member's lineage: whose training each stretch of its final state came from.
fn draw_lineage<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &FigureData<'_>,
) -> Result<()> {
    let (pieces, jumps, total) = lineage(d.events, d.best, d.best_step);
    let caption = format!(
        "lineage of member {}: whose training its final state came from",
        d.best
    );
    let body = title(root, &caption, CAPTION, &BLACK)?;
    let x = Axis::linear(0.0, total.max(1.0), true);
    let pop = d.def.population.max(1);
    let mut y = Axis::linear(0.0, (pop - 1) as f64, true);
    // One tick per member, or round steps when there are many.
    y.lo = -0.5;
    y.hi = pop as f64 - 0.5;
    if pop <= 32 {
        y.ticks = (0..pop).map(|m| m as f64).collect();
    }
    let x_desc = format!(
        "the {} training steps behind its final state, oldest first (vertical lines: exploits)",
        score(total)
    );
    let frame = Frame {
        x: &x,
        y: &y,
        x_desc: &x_desc,
        y_desc: "member",
    };
    let mut chart = chart(&body, &frame)?;
    for (m, a, b) in &pieces {
        chart
            .draw_series(LineSeries::new(
                vec![(*a, *m as f64), (*b, *m as f64)],
                colour(*m).stroke_width(6),
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
