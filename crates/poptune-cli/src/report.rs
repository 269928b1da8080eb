//! `poptune report DIR`: CSV and JSON-lines exports, plots (PNG and SVG) and one
//! self-contained HTML page.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use plotters::coord::Shift;
use plotters::prelude::*;
use poptune::lineage::schedule;
use poptune::{Event, Hyperparams, Param};
use poptune_store::StepRow;

use crate::config::ExperimentDef;
use crate::CliError;

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub source: crate::commands::Source,
    /// Where to write the report (default: the experiment directory's report/; for --store,
    /// the shared directory's).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &ReportArgs) -> Result<(), CliError> {
    let crate::commands::Opened {
        store,
        def,
        dir,
        place,
    } = args.source.open()?;
    let out = args.out.clone().unwrap_or_else(|| dir.join("report"));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let steps = store.steps()?;
    let events = store.events()?;
    let members = store.members()?;
    let (status, elapsed) = store.status()?;
    if steps.is_empty() {
        return Err(CliError::usage(anyhow!(
            "{place} has no recorded steps yet; run the experiment first"
        )));
    }
    write_exports(&out, &steps, &events)?;
    crate::plot::register_fonts();
    let best = members
        .iter()
        .filter(|m| m.score.is_some())
        .max_by(|a, b| {
            let k = |m: &poptune_store::MemberRow| def.mode.key(m.score.unwrap_or(f64::NAN));
            k(a).total_cmp(&k(b)).then(b.id.cmp(&a.id))
        })
        .map_or(0, |m| m.id);
    let initial = def
        .experiment()
        .initial_hyperparams()
        .map_err(CliError::usage)?;
    let mut figures = Vec::new();
    for (name, draw) in [
        ("scores", Figure::Scores),
        ("hyperparameters", Figure::Hyperparameters),
        ("lineage", Figure::Lineage),
    ] {
        let ctx = FigureData {
            def: &def,
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
        .map_err(|e| anyhow!("cannot draw {}: {e}", png.display()))?;
        draw_figure(SVGBackend::new(&svg, size).into_drawing_area(), draw, &ctx)
            .map_err(|e| anyhow!("cannot draw {}: {e}", svg.display()))?;
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
        let text = std::fs::read_to_string(svg)
            .with_context(|| format!("cannot read {}", svg.display()))?;
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
    std::fs::write(&html, page).with_context(|| format!("cannot write {}", html.display()))?;
    println!("report written to {}", out.display());
    println!("  {}", html.display());
    for f in ["steps.csv", "steps.jsonl", "events.csv", "events.jsonl"] {
        println!("  {}", out.join(f).display());
    }
    for (name, _) in &figures {
        println!("  {} (.png, .svg)", out.join(name).display());
    }
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

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

fn write_exports(out: &Path, steps: &[StepRow], events: &[Event]) -> Result<()> {
    let names: Vec<String> = {
        let mut set = std::collections::BTreeSet::new();
        for s in steps {
            for (k, _) in &s.metrics {
                set.insert(k.clone());
            }
        }
        set.into_iter().collect()
    };
    let mut csv = std::io::BufWriter::new(std::fs::File::create(out.join("steps.csv"))?);
    write!(csv, "member,epoch,step,score")?;
    for n in &names {
        write!(csv, ",{}", csv_field(n))?;
    }
    writeln!(csv)?;
    let mut jsonl = std::io::BufWriter::new(std::fs::File::create(out.join("steps.jsonl"))?);
    for s in steps {
        write!(csv, "{},{},{},{}", s.member, s.epoch, s.step, s.score)?;
        let map: BTreeMap<&str, f64> = s.metrics.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        for n in &names {
            match map.get(n.as_str()) {
                Some(v) => write!(csv, ",{v}")?,
                None => write!(csv, ",")?,
            }
        }
        writeln!(csv)?;
        writeln!(
            jsonl,
            "{}",
            serde_json::json!({"member": s.member, "epoch": s.epoch, "step": s.step, "score": s.score, "metrics": map})
        )?;
    }
    csv.flush()?;
    jsonl.flush()?;
    let mut csv = std::io::BufWriter::new(std::fs::File::create(out.join("events.csv"))?);
    writeln!(
        csv,
        "seq,step,recipient,donor,donor_step,recipient_score,donor_score,old_h,new_h"
    )?;
    let mut jsonl = std::io::BufWriter::new(std::fs::File::create(out.join("events.jsonl"))?);
    for e in events {
        writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{}",
            e.seq,
            e.step,
            e.recipient,
            e.donor.map_or(String::new(), |d| d.to_string()),
            e.donor_step,
            e.recipient_score,
            e.donor_score.map_or(String::new(), |d| d.to_string()),
            csv_field(&e.old_h.to_string()),
            csv_field(&e.new_h.to_string())
        )?;
        writeln!(jsonl, "{}", serde_json::to_string(e)?)?;
    }
    csv.flush()?;
    jsonl.flush()?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Figure {
    Scores,
    Hyperparameters,
    Lineage,
}

struct FigureData<'a> {
    def: &'a ExperimentDef,
    steps: &'a [StepRow],
    events: &'a [Event],
    initial: &'a [Hyperparams],
    best: usize,
    best_step: u64,
}

fn colour(i: usize) -> RGBColor {
    let c = Palette99::pick(i).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// Turns a plotters drawing error into an error of this crate, as its debug text.
fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("{e:?}")
}

/// Fills the area white, draws one figure on it and presents it.
fn draw_figure<DB: DrawingBackend>(
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
