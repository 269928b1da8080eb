//! Rendering run events: a live view on a terminal (indicatif), plain timestamped lines
//! otherwise (a batch job's log shows progress every few seconds, and every fault and stop).

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use poptune_run::{Observer, Progress, RunEvent};

/// How many members the live view lists.
const BOARD_LINES: usize = 8;

/// How often the plain progress lines are written.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// The observer for a command: a live view, plain lines, or nothing.
pub enum View {
    /// On a terminal.
    Live(LiveView),
    /// Output is not a terminal.
    Lines(LogLines),
    /// `--quiet`.
    Quiet,
}

impl View {
    /// The view for a run with `metric`: live on a terminal, lines otherwise, none if quiet.
    pub fn new(metric: &str, quiet: bool) -> Self {
        use std::io::IsTerminal;
        if quiet {
            View::Quiet
        } else if std::io::stderr().is_terminal() {
            View::Live(LiveView::new(metric))
        } else {
            View::Lines(LogLines::new(metric))
        }
    }

    /// Clears the live view (before the command prints its summary).
    pub fn finish(&self) {
        if let View::Live(v) = self {
            v.bar.finish_and_clear();
            for l in &v.board {
                l.finish_and_clear();
            }
        }
    }
}

impl Observer for View {
    fn event(&self, e: &RunEvent) {
        match self {
            View::Live(v) => v.event(e),
            View::Lines(v) => v.event(e),
            View::Quiet => {}
        }
    }

    fn top(&self) -> usize {
        match self {
            View::Live(_) => BOARD_LINES,
            View::Lines(_) => 0,
            View::Quiet => 0,
        }
    }
}

/// The live view: a progress bar and the best members.
pub struct LiveView {
    metric: String,
    bar: ProgressBar,
    board: Vec<ProgressBar>,
}

impl LiveView {
    fn new(metric: &str) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8));
        let bar = multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} member-steps  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let line_style = ProgressStyle::with_template("  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let board = (0..=BOARD_LINES)
            .map(|_| {
                let l = multi.add(ProgressBar::new_spinner());
                l.set_style(line_style.clone());
                l
            })
            .collect();
        LiveView {
            metric: metric.to_string(),
            bar,
            board,
        }
    }

    fn event(&self, e: &RunEvent) {
        match e {
            RunEvent::Started { done, total, .. } => {
                self.bar.set_length(*total);
                self.bar.set_position(*done);
            }
            RunEvent::Step { .. } => self.bar.inc(1),
            RunEvent::Trained { steps, .. } => self.bar.inc(*steps),
            RunEvent::Progress(p) => self.progress(p),
            RunEvent::Fault {
                member,
                step,
                kind,
                message,
            } => self.bar.println(format!(
                "member {member}: {kind} fault at step {step}: {message}"
            )),
            RunEvent::Replaced { member, donor } => self.bar.println(format!(
                "member {member}: replaced by an exploit of member {donor} after repeated faults"
            )),
            RunEvent::Stopping { reason } => self.bar.println(format!("stopping: {reason}")),
            RunEvent::Lineage(_) | RunEvent::Recorded { .. } | RunEvent::Ended { .. } => {}
        }
    }

    fn progress(&self, p: &Progress) {
        self.bar.set_position(p.done);
        self.bar.set_message(summary_line(&self.metric, p));
        self.board[0].set_message(format!(
            "{:>6} {:>7} {:>12} {:>8}  hyperparameters (top {} of {})",
            "member",
            "step",
            self.metric,
            "state",
            p.top.len(),
            p.population
        ));
        for (i, line) in self.board[1..].iter().enumerate() {
            match p.top.get(i) {
                Some(m) => line.set_message(format!(
                    "{:>6} {:>7} {:>12} {:>8}  {}",
                    m.id,
                    m.step,
                    crate::format::score(m.score.unwrap_or(f64::NAN)),
                    m.state.as_str(),
                    m.h
                )),
                None => line.set_message(String::new()),
            }
        }
    }
}

fn summary_line(metric: &str, p: &Progress) -> String {
    match p.best {
        Some((b, s)) => format!(
            "best {metric} = {} (member {b})  exploits {}  faults {}",
            crate::format::score(s),
            p.exploits,
            p.faults
        ),
        None => format!("exploits {}  faults {}", p.exploits, p.faults),
    }
}

/// Plain lines on stderr: progress every [`LINE_EVERY`], and every fault and stop.
pub struct LogLines {
    metric: String,
    /// When the last line was written, and the member-steps it said.
    last: Mutex<Option<(Instant, u64)>>,
}

impl LogLines {
    fn new(metric: &str) -> Self {
        LogLines {
            metric: metric.to_string(),
            last: Mutex::new(None),
        }
    }

    fn event(&self, e: &RunEvent) {
        match e {
            RunEvent::Progress(p) => {
                let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
                let due = last.is_none_or(|(t, _)| t.elapsed() >= LINE_EVERY);
                let end = p.done == p.total && last.is_none_or(|(_, done)| done != p.done);
                if !(due || end) {
                    return;
                }
                *last = Some((Instant::now(), p.done));
                line(&format!(
                    "{}/{} member-steps ({:.0}%), {:.0} s; {}",
                    p.done,
                    p.total,
                    100.0 * p.done as f64 / p.total.max(1) as f64,
                    p.elapsed,
                    summary_line(&self.metric, p)
                ));
            }
            RunEvent::Ended { status } => {
                // A failure's whole reason (with the trainable's stderr) is the command's
                // error message, printed once, after this line.
                let said = status.to_string();
                line(&format!(
                    "ended: {}",
                    said.lines().next().unwrap_or_default()
                ))
            }
            e => {
                if let Some(text) = notice(e) {
                    line(&text);
                }
            }
        }
    }
}

/// The line both views print for a fault, a replacement or a stop; `None` for other events.
fn notice(e: &RunEvent) -> Option<String> {
    Some(match e {
        RunEvent::Fault {
            member,
            step,
            kind,
            message,
        } => format!("member {member}: {kind} fault at step {step}: {message}"),
        RunEvent::Replaced { member, donor } => format!(
            "member {member}: replaced by an exploit of member {donor} after repeated faults"
        ),
        RunEvent::Stopping { reason } => format!("stopping: {reason}"),
        _ => return None,
    })
}

/// One line on stderr, with the UTC time of day.
fn line(text: &str) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    eprintln!("[{h:02}:{m:02}:{s:02}Z] {text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_gives_a_tiny_best_score_significant_digits() {
        let p = Progress {
            done: 10,
            total: 20,
            compute: 10,
            best: Some((1, -1.262177448353619e-29)),
            exploits: 2,
            faults: 0,
            top: Vec::new(),
            population: 4,
            elapsed: 1.0,
        };
        let line = summary_line("score", &p);
        assert!(
            line.contains("best score = -1.26218e-29 (member 1)"),
            "{line}"
        );
    }
}
