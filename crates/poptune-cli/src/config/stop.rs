//! `[stop]`: how long members train, and the rules that end an experiment early.

use poptune::StopRules;

use super::keys::{self, MAX_SECONDS, MAX_STEPS};
use super::read::{At, Table};
use super::ConfigError;

/// The stop rules, with the place of `patience` to check against `steps`.
pub(super) struct Stop {
    pub(super) rules: StopRules,
    patience: Option<At<i64>>,
}

/// Reads `[stop]`; it and its `steps` are required.
pub(super) fn read(root: &Table<'_>) -> Result<Stop, ConfigError> {
    let Some(t) = root.table("stop", keys::STOP)? else {
        return Err(root.missing("stop"));
    };
    let steps = match t.int("steps")? {
        Some(s) if s.value < 1 => {
            return Err(t.bad(
                "steps",
                &s.span,
                "each member must train at least 1 step; give 1 or more, e.g. steps = 100",
            ))
        }
        Some(s) if s.value > MAX_STEPS => {
            return Err(t.bad(
                "steps",
                &s.span,
                format!("more steps than poptune counts (at most {MAX_STEPS}); e.g. steps = 100"),
            ))
        }
        Some(s) => s.value as u64,
        None => return Err(t.missing("steps")),
    };
    let target = t.float("target")?.map(|x| x.value);
    let max_seconds = match t.float("max_seconds")? {
        Some(s) if s.value <= 0.0 => {
            return Err(t.bad(
                "max_seconds",
                &s.span,
                "a time limit is a positive number of seconds, e.g. max_seconds = 3600",
            ))
        }
        Some(s) if s.value > MAX_SECONDS => {
            return Err(t.bad(
                "max_seconds",
                &s.span,
                format!("longer than poptune waits (at most {MAX_SECONDS:e} seconds); leave `max_seconds` out for no limit"),
            ))
        }
        Some(s) => Some(s.value),
        None => None,
    };
    let mut patience = None;
    let plateau = match t.table("plateau", keys::PLATEAU)? {
        Some(p) => {
            let n = p.int("patience")?.ok_or_else(|| p.missing("patience"))?;
            if n.value < 1 {
                return Err(p.bad(
                    "patience",
                    &n.span,
                    "patience counts the steps without improvement before the experiment stops; give 1 or more, e.g. patience = 20",
                ));
            }
            let min_delta =
                match p.float("min_delta")? {
                    Some(d) if d.value < 0.0 => return Err(p.bad(
                        "min_delta",
                        &d.span,
                        "the least improvement that counts is 0 or more, e.g. min_delta = 0.001",
                    )),
                    Some(d) => d.value,
                    None => 0.0,
                };
            let value = (n.value as u64, min_delta);
            patience = Some(n);
            Some(value)
        }
        None => None,
    };
    Ok(Stop {
        rules: StopRules {
            steps,
            target,
            max_seconds,
            plateau,
        },
        patience,
    })
}

impl Stop {
    /// Refuses a plateau rule that could never fire within `steps`.
    pub(super) fn check_against(&self, root: &Table<'_>) -> Result<(), ConfigError> {
        let Some(n) = &self.patience else {
            return Ok(());
        };
        let steps = self.rules.steps;
        if n.value as u64 > steps {
            let stop = root.table("stop", keys::STOP)?;
            let plateau = match &stop {
                Some(s) => s.table("plateau", keys::PLATEAU)?,
                None => None,
            };
            if let Some(p) = plateau {
                return Err(p.bad(
                    "patience",
                    &n.span,
                    format!(
                        "more than [stop] steps = {steps}, so the plateau rule could never fire; \
                         give at most {steps}, e.g. patience = {}",
                        (steps / 4).max(1)
                    ),
                ));
            }
        }
        Ok(())
    }
}
