//! The report's HTML page: one self-contained file (the figures inline as SVG), with relative
//! links to the data files beside it.

use std::fmt::Write as _;

use poptune::{ExperimentDef, Schedule};
use poptune_store::{FaultRow, MemberRow, RunStatus, StepRow};

use crate::format::score;

/// The data files, beside the page.
pub(crate) const DATA: [&str; 4] = ["steps.csv", "steps.jsonl", "events.csv", "events.jsonl"];

/// What the page shows.
pub(crate) struct Page<'a> {
    pub def: &'a ExperimentDef,
    pub status: RunStatus,
    pub elapsed: f64,
    pub members: &'a [MemberRow],
    pub steps: &'a [StepRow],
    pub faults: &'a [FaultRow],
    pub exploits: usize,
    pub compute: u64,
    pub best: usize,
    pub schedule: &'a Schedule,
    /// The figures: (name, SVG text).
    pub figures: Vec<(&'a str, String)>,
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1250px;margin:auto;padding:0 8px}\
    pre{background:#f4f4f4;padding:8px;overflow-x:auto}\
    table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}\
    td.text{text-align:left}svg{max-width:100%;height:auto}";

/// Text escaped for HTML.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn opt_score(s: Option<f64>) -> String {
    s.map_or("-".into(), score)
}

impl Page<'_> {
    /// The whole page.
    pub(crate) fn render(&self) -> String {
        let d = self.def;
        let metric = esc(&d.metric);
        let mut page = String::new();
        let _ = write!(
            page,
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>poptune report: {name}</title>\
             <style>{STYLE}</style></head><body>\
             <h1>poptune report: {name}</h1><p>status: {status}; running time {elapsed:.1} s; \
             {pop} members × {steps} steps; {compute} member-steps trained; {ex} exploits; \
             {faults} faults.</p>",
            name = esc(&d.name),
            status = self.status,
            elapsed = self.elapsed,
            pop = d.population,
            steps = d.stop.steps,
            compute = self.compute,
            ex = self.exploits,
            faults = self.faults.len(),
        );
        self.best_section(&mut page);
        let _ = write!(
            page,
            "<h2>Schedule of the best member</h2><pre>{}</pre>",
            esc(&self.schedule.to_string())
        );
        for (name, svg) in &self.figures {
            let _ = write!(page, "<h2>{}</h2>{svg}", esc(name));
        }
        let _ = write!(
            page,
            "<h2>Members</h2><table><tr><th>member</th><th>step</th><th>{metric}</th>\
             <th>hyperparameters</th></tr>"
        );
        for m in self.members {
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"text\">{}</td></tr>",
                m.id,
                m.step,
                opt_score(m.score),
                esc(&m.h.to_string())
            );
        }
        page.push_str("</table>");
        self.faults_section(&mut page);
        page.push_str("<h2>Data</h2><p>Beside this page: ");
        let links: Vec<String> = DATA
            .iter()
            .map(|f| format!("<a href=\"{f}\">{f}</a>"))
            .collect();
        page.push_str(&links.join(", "));
        page.push_str(
            " (steps: one row per recorded step, with its metrics and the hyperparameters it \
             was trained with; events: one row per exploit or explore).</p></body></html>",
        );
        page
    }

    /// The best member: its score and the other metrics of its last recorded step.
    fn best_section(&self, page: &mut String) {
        let metric = esc(&self.def.metric);
        let Some(m) = self.members.get(self.best) else {
            return;
        };
        let _ = write!(
            page,
            "<h2>Best member: {} ({metric} = {})</h2>",
            m.id,
            opt_score(m.score)
        );
        let last = self.steps.iter().rev().find(|s| s.member == m.id);
        let Some(last) = last.filter(|s| !s.metrics.is_empty()) else {
            return;
        };
        let _ = write!(
            page,
            "<p>Its other metrics at its last recorded step ({}):</p><table>",
            last.step
        );
        for (k, v) in &last.metrics {
            let _ = write!(page, "<tr><th>{}</th><td>{}</td></tr>", esc(k), score(*v));
        }
        page.push_str("</table>");
    }

    /// Every recorded fault, with the end of its process's stderr.
    fn faults_section(&self, page: &mut String) {
        page.push_str("<h2>Faults</h2>");
        if self.faults.is_empty() {
            page.push_str("<p>None: no trainable failed.</p>");
            return;
        }
        page.push_str(
            "<table><tr><th>member</th><th>step</th><th>kind</th><th>message</th>\
             <th>end of stderr</th></tr>",
        );
        for f in self.faults {
            let tail = if f.stderr.trim().is_empty() {
                "-".to_string()
            } else {
                format!("<pre>{}</pre>", esc(&f.stderr))
            };
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td>\
                 <td class=\"text\">{tail}</td></tr>",
                f.member,
                f.step,
                esc(&f.kind.to_string()),
                esc(&f.message),
            );
        }
        page.push_str("</table>");
    }
}
