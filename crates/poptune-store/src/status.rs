//! What a run's state is called: its status, the kinds of fault, and the running totals that
//! the stop rules and reports read.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An experiment's status as the store records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Created, nothing recorded yet (or no experiment at all).
    New,
    /// A run holds it (or held it when it was killed).
    Running,
    /// Every member trained its steps.
    Finished,
    /// A stop rule ended it; the reason.
    Stopped(String),
    /// Stopped by hand (Ctrl-C, SIGTERM) or by a lost process; the same command continues it.
    Interrupted,
    /// It could not go on; why.
    Failed(String),
}

impl RunStatus {
    /// Whether no more training will happen without a new definition.
    pub fn is_over(&self) -> bool {
        matches!(self, RunStatus::Finished | RunStatus::Stopped(_))
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunStatus::New => f.write_str("new"),
            RunStatus::Running => f.write_str("running"),
            RunStatus::Finished => f.write_str("finished"),
            RunStatus::Stopped(why) => write!(f, "stopped: {why}"),
            RunStatus::Interrupted => f.write_str("stopped: interrupted"),
            RunStatus::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

impl FromStr for RunStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "new" => RunStatus::New,
            "running" => RunStatus::Running,
            "finished" => RunStatus::Finished,
            "stopped: interrupted" | "interrupted" => RunStatus::Interrupted,
            _ => {
                if let Some(why) = s.strip_prefix("stopped: ") {
                    RunStatus::Stopped(why.to_string())
                } else if let Some(why) = s.strip_prefix("failed: ") {
                    RunStatus::Failed(why.to_string())
                } else {
                    return Err(format!("unknown experiment status `{s}`"));
                }
            }
        })
    }
}

/// What went wrong with a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The process died or the trainable panicked.
    Crash,
    /// No step within `step_timeout`.
    Timeout,
    /// The trainable broke the protocol (garbage, wrong step numbers, no checkpoint).
    Protocol,
    /// A score that is NaN or infinite.
    NonFinite,
    /// The trainable reported an error.
    Error,
    /// The trainable could not be started.
    Spawn,
    /// A checkpoint could not be written, read or verified.
    Checkpoint,
    /// The process exited cleanly between segments (not a fault of the member; retried).
    Exited,
    /// The segment was stopped by poptune (a lease at risk, a run stopping): not the
    /// trainable's fault, never recorded.
    Cancelled,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Crash,
        FaultKind::Timeout,
        FaultKind::Protocol,
        FaultKind::NonFinite,
        FaultKind::Error,
        FaultKind::Spawn,
        FaultKind::Checkpoint,
        FaultKind::Exited,
        FaultKind::Cancelled,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Timeout => "timeout",
            FaultKind::Protocol => "protocol",
            FaultKind::NonFinite => "non-finite",
            FaultKind::Error => "error",
            FaultKind::Spawn => "spawn",
            FaultKind::Checkpoint => "checkpoint",
            FaultKind::Exited => "exited",
            FaultKind::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown fault kind `{s}`"))
    }
}

/// Running totals of an experiment, recorded with every commit: what the stop rules need to
/// decide the same way on any machine and after a resume, and the compute spent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// The best ranking key (score, sign-adjusted for the mode) of any step so far, and the
    /// step at which it last improved by more than the plateau's `min_delta`.
    pub best: Option<(f64, u64)>,
    /// The highest step any member has reached.
    pub max_step: u64,
    /// Member-steps trained, including steps trained again after an exploit, a fault or a
    /// resume.
    pub compute: u64,
    /// Exploits so far.
    pub exploits: u64,
    /// Faults so far.
    pub faults: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_what_they_write() {
        for s in [
            RunStatus::New,
            RunStatus::Running,
            RunStatus::Finished,
            RunStatus::Stopped("time budget of 5 s used".into()),
            RunStatus::Interrupted,
            RunStatus::Failed("no member ever trained".into()),
        ] {
            assert_eq!(s.to_string().parse::<RunStatus>(), Ok(s));
        }
        assert!("sideways".parse::<RunStatus>().is_err());
    }

    #[test]
    fn fault_kinds_read_back_what_they_write() {
        for k in FaultKind::ALL {
            assert_eq!(k.to_string().parse::<FaultKind>(), Ok(k));
        }
        assert_eq!(
            serde_json::to_string(&FaultKind::NonFinite).unwrap(),
            "\"non-finite\""
        );
        assert!("melted".parse::<FaultKind>().is_err());
    }
}
