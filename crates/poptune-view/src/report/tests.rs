//! The whole report, written from a memory store.

use std::path::{Path, PathBuf};

use poptune::{Event, ExperimentDef, Mode, Param, Policy, Space, StopRules, TrainableDef};
use poptune_store::{
    Commit, FaultKind, FaultRow, MemberRow, MemoryStore, RunStatus, StepRow, Store,
};

use super::write;

const POP: usize = 6;
const STEPS: u64 = 40;

fn def() -> ExperimentDef {
    ExperimentDef {
        name: "diverging <run>".into(),
        metric: "val_loss".into(),
        mode: Mode::Min,
        population: POP,
        seed: 1,
        slots: 1,
        initial: Default::default(),
        directory: PathBuf::from("/nonexistent"),
        policy: Policy::default(),
        space: Space::new()
            .with("lr", Param::log_float(1e-4, 0.1))
            .with("batch", Param::ordered([16i64, 32, 64, 128])),
        stop: StopRules::steps(STEPS),
        trainable: TrainableDef::default(),
    }
}

/// A minimisation in which member 3 diverges to 1e11 from step 20.
fn diverging(m: usize, s: u64) -> f64 {
    if m == 3 && s >= 20 {
        1e11
    } else {
        0.1 + 2.0 * (-(s as f64) / 8.0).exp() + 0.05 * (m as f64 - 1.0).abs()
    }
}

/// A store in which member `m` scores `loss(m, step)`; member 1 is the best; member 2
/// exploits member 1 at step 20 once; member 4 has a fault.
fn store(def: &ExperimentDef) -> MemoryStore {
    store_with(def, diverging)
}

fn store_with(def: &ExperimentDef, loss: fn(usize, u64) -> f64) -> MemoryStore {
    let mut store = MemoryStore::new();
    let initial = def.experiment().initial_hyperparams().unwrap();
    let members: Vec<MemberRow> = (0..POP)
        .map(|m| MemberRow::new(m, initial[m].clone()))
        .collect();
    store.create(&def.name, &def.to_json(), &members).unwrap();
    let mut c = Commit::default();
    for (m, member) in members.iter().enumerate() {
        for s in 1..=STEPS {
            c.steps.push(StepRow {
                member: m,
                epoch: u64::from(m == 2 && s > 20),
                step: s,
                score: loss(m, s),
                metrics: vec![(
                    "test_accuracy".into(),
                    0.9 - 0.01 * m as f64 + 0.001 * s as f64,
                )],
            });
        }
        let mut row = member.clone();
        row.step = STEPS;
        row.score = Some(loss(m, STEPS));
        row.done = true;
        c.members.push(row);
    }
    c.events.push(Event {
        seq: 1,
        step: 20,
        recipient: 2,
        donor: Some(1),
        donor_step: 20,
        old_h: initial[2].clone(),
        new_h: initial[1].clone(),
        recipient_score: loss(2, 20),
        donor_score: Some(loss(1, 20)),
    });
    c.faults.push(FaultRow {
        member: 4,
        step: 10,
        kind: FaultKind::Crash,
        message: "the process exited with status 1".into(),
        stderr: "Traceback: <module> & friends\nValueError: nan".into(),
    });
    c.status = Some(RunStatus::Finished);
    store.commit(&c).unwrap();
    store
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

#[test]
fn the_page_names_the_metric_links_the_data_and_shows_faults_and_the_best() {
    let def = def();
    let tmp = tempfile::tempdir().unwrap();
    let files = write(&store(&def), &def, tmp.path(), "mem").unwrap();

    let html = read(tmp.path(), "report.html");
    assert!(html.contains("<th>val_loss</th>"), "{html}");
    assert!(!html.contains("<th>score</th>"));
    assert!(html.contains("poptune report: diverging &lt;run&gt;"));
    for f in ["steps.csv", "steps.jsonl", "events.csv", "events.jsonl"] {
        assert!(html.contains(&format!("<a href=\"{f}\">{f}</a>")), "{f}");
        assert!(files.data.contains(&tmp.path().join(f)));
    }
    // The faults: member, step, kind, message, and the escaped end of stderr.
    let faults = &html[html.find("<h2>Faults</h2>").unwrap()..];
    assert!(faults.contains("<td>4</td><td>10</td>"), "{faults}");
    assert!(faults.contains("crash"), "{faults}");
    assert!(faults.contains("the process exited with status 1"));
    assert!(faults.contains("Traceback: &lt;module&gt; &amp; friends\nValueError: nan"));
    // The best member (1) and its other metrics at its last step (40).
    assert!(
        html.contains("Best member: 1 (val_loss = 0.113476)"),
        "{html}"
    );
    assert!(
        html.contains("<th>test_accuracy</th><td>0.93</td>"),
        "{html}"
    );
}

#[test]
fn the_scores_figure_has_a_legend_and_survives_a_member_that_diverges() {
    let def = def();
    let tmp = tempfile::tempdir().unwrap();
    write(&store(&def), &def, tmp.path(), "mem").unwrap();
    let svg = read(tmp.path(), "scores.svg");
    let labels = texts(&svg);
    assert!(labels.iter().any(|t| t == "member 1 (best)"), "{labels:?}");
    for m in [0, 2, 3, 4, 5] {
        assert!(labels.contains(&format!("member {m}")), "member {m}");
    }
    // Member 3's scores are drawn at the edge, and the figure says so.
    assert!(svg.contains("member 3: 21 steps, to 1e11"), "{svg}");
    // The y ticks cover the other members' range (0.1 to 2.2), not 0 to 1e11.
    assert!(labels.iter().any(|t| t == "0.5"), "{labels:?}");
    assert!(labels.iter().any(|t| t == "2"), "{labels:?}");
    let ticks: Vec<f64> = labels.iter().filter_map(|t| t.parse().ok()).collect();
    assert!(ticks.iter().all(|v| *v <= 40.0), "{ticks:?}");
    // Integer steps: "20", never "20.0".
    assert!(labels.iter().any(|t| t == "20"), "{labels:?}");
    assert!(!labels.iter().any(|t| t.ends_with(".0")), "{labels:?}");
    // No text starts left of the figure (a clipped label).
    for x in text_left_edges(&svg) {
        assert!(x >= 0.0, "a text starts at x = {x}");
    }
}

#[test]
fn losses_over_many_decades_get_a_log_scale() {
    let def = def();
    let tmp = tempfile::tempdir().unwrap();
    let falling = |m: usize, s: u64| 1e3 * 10f64.powf(-0.18 * s as f64) * (1.0 + m as f64 / 10.0);
    write(&store_with(&def, falling), &def, tmp.path(), "mem").unwrap();
    let labels = texts(&read(tmp.path(), "scores.svg"));
    assert!(
        labels.iter().any(|t| t == "val_loss (log scale)"),
        "{labels:?}"
    );
    assert!(labels.iter().any(|t| t == "0.001"), "{labels:?}");
    assert!(labels.iter().any(|t| t == "100"), "{labels:?}");
}

#[test]
fn the_hyperparameter_panels_are_readable() {
    let def = def();
    let tmp = tempfile::tempdir().unwrap();
    write(&store(&def), &def, tmp.path(), "mem").unwrap();
    let svg = read(tmp.path(), "hyperparameters.svg");
    // Two panels, each at least 250 pixels tall.
    let height: f64 = attr(&svg, "height").unwrap();
    assert!(height >= 2.0 * 250.0, "{height}");
    let labels = texts(&svg);
    // Batch sizes at their levels, learning rates as values on a log scale.
    for l in ["16", "32", "64", "128"] {
        assert!(labels.iter().any(|t| t == l), "{l}: {labels:?}");
    }
    assert!(labels.iter().any(|t| t == "lr (log scale)"), "{labels:?}");
    assert!(!labels.iter().any(|t| t.starts_with("log10")), "{labels:?}");
}

/// The texts of an SVG's `<text>` elements.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

/// A numeric attribute of the first element that has it.
fn attr(svg: &str, name: &str) -> Option<f64> {
    let at = svg.find(&format!(" {name}=\""))? + name.len() + 3;
    svg[at..at + svg[at..].find('"')?].parse().ok()
}

/// Where each text starts, roughly: its x, less its width (estimated at 0.6 em a character)
/// when it is anchored at its end, or half of it when centred.
fn text_left_edges(svg: &str) -> Vec<f64> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let head = &t[..t.find('>')?];
            let x = attr(head, "x")?;
            let size = attr(head, "font-size").unwrap_or(16.0);
            let body = &t[t.find('>')? + 1..t.find("</text>")?];
            let w = body.trim().chars().count() as f64 * size * 0.6;
            // A rotated text (the y axis's description) extends rightwards from x.
            if head.contains("rotate") {
                return Some(x);
            }
            Some(if head.contains("text-anchor=\"end\"") {
                x - w
            } else if head.contains("text-anchor=\"middle\"") {
                x - w / 2.0
            } else {
                x
            })
        })
        .collect()
}
