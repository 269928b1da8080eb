//! `[policy]`, `[policy.exploit]` and `[policy.explore]`: when members are ready, and how they
//! exploit and explore.

use std::ops::Range;

use poptune::{Exploit, Explore, ExploreMethod, Inherit, Policy, SyncMode, Variant};

use super::keys::{self, MAX_STEPS};
use super::read::{number, At, Table};
use super::stop::Stop;
use super::ConfigError;

/// The policy, with the places of the settings checked against `[stop]`.
pub(super) struct PolicyRead {
    pub(super) policy: Policy,
    /// The `[policy]` table (the file's start when there is none).
    pub(super) span: Range<usize>,
    interval: Option<At<i64>>,
    burn_in: Option<At<i64>>,
    window: Option<At<i64>>,
}

/// Reads `[policy]` over the defaults.
pub(super) fn read(root: &Table<'_>, population: usize) -> Result<PolicyRead, ConfigError> {
    let mut policy = Policy::default();
    let Some(t) = root.table("policy", keys::POLICY)? else {
        return Ok(PolicyRead {
            policy,
            span: 0..0,
            interval: None,
            burn_in: None,
            window: None,
        });
    };
    let interval = t.int("interval")?;
    if let Some(i) = &interval {
        if i.value < 1 {
            return Err(t.bad(
                "interval",
                &i.span,
                "members must train at least 1 step between ready points; give 1 or more, e.g. interval = 5",
            ));
        }
        policy.interval = steps_in(&t, "interval", i)?;
    }
    let burn_in = t.int("burn_in")?;
    if let Some(b) = &burn_in {
        if b.value < 0 {
            return Err(t.bad(
                "burn_in",
                &b.span,
                "a number of steps is 0 or more, e.g. burn_in = 0",
            ));
        }
        policy.burn_in = steps_in(&t, "burn_in", b)?;
    }
    let sync = [
        ("asynchronous", SyncMode::Asynchronous),
        ("synchronous", SyncMode::Synchronous),
    ];
    if let Some(s) = t.word("sync", &sync)? {
        policy.sync = s.value;
    }
    let inherit = [
        (
            "weights+hyperparameters",
            Inherit::WeightsAndHyperparameters,
        ),
        ("weights", Inherit::WeightsOnly),
        (
            "weights_and_hyperparameters",
            Inherit::WeightsAndHyperparameters,
        ),
        ("weights_only", Inherit::WeightsOnly),
    ];
    if let Some(i) = t.word("inherit", &inherit)? {
        policy.inherit = i.value;
    }
    let variants = [
        ("pbt", Variant::Pbt),
        ("explore-only", Variant::ExploreOnly),
        ("exploit-only", Variant::ExploitOnly),
        ("frozen", Variant::Frozen),
    ];
    if let Some(v) = t.word("variant", &variants)? {
        policy.variant = v.value;
    }
    policy.algorithm = super::fire::read(&t, population)?;
    let mut window = None;
    if let Some(e) = t.table("exploit", keys::EXPLOIT)? {
        let (exploit, w) = read_exploit(&e)?;
        policy.exploit = exploit;
        window = w;
    }
    if let Some(x) = t.table("explore", keys::EXPLORE)? {
        policy.explore = read_explore(&x)?;
    }
    Ok(PolicyRead {
        policy,
        span: t.span.clone(),
        interval,
        burn_in,
        window,
    })
}

/// A step count no larger than poptune keeps.
fn steps_in(t: &Table<'_>, key: &str, n: &At<i64>) -> Result<u64, ConfigError> {
    if n.value > MAX_STEPS {
        return Err(t.bad(
            key,
            &n.span,
            format!("more steps than poptune counts (at most {MAX_STEPS}); give a smaller number"),
        ));
    }
    Ok(n.value as u64)
}

impl PolicyRead {
    /// Refuses settings that `[stop]` makes pointless: ready points no member reaches.
    pub(super) fn check_against(&self, root: &Table<'_>, stop: &Stop) -> Result<(), ConfigError> {
        let Ok(Some(t)) = root.table("policy", keys::POLICY) else {
            return Ok(());
        };
        let steps = stop.rules.steps;
        let frozen = self.policy.variant == Variant::Frozen;
        if let Some(i) = self
            .interval
            .as_ref()
            .filter(|i| i.value as u64 > steps && !frozen)
        {
            return Err(t.bad(
                "interval",
                &i.span,
                format!(
                    "more than [stop] steps = {steps}, so no member would ever be ready to exploit \
                     or explore; give at most {steps}, e.g. interval = {}",
                    (steps / 4).max(1)
                ),
            ));
        }
        if let Some(b) = self
            .burn_in
            .as_ref()
            .filter(|b| b.value as u64 >= steps && !frozen)
        {
            return Err(t.bad(
                "burn_in",
                &b.span,
                format!(
                    "not less than [stop] steps = {steps}, so no member would ever be ready; \
                     give less than {steps}, e.g. burn_in = 0"
                ),
            ));
        }
        if let Some(w) = self.window.as_ref().filter(|w| w.value as u64 > steps) {
            let e = t
                .table("exploit", keys::EXPLOIT)?
                .ok_or_else(|| t.err(w.span.clone(), "[policy.exploit] is missing"))?;
            return Err(e.bad(
                "window",
                &w.span,
                format!(
                    "more scores than a member records in [stop] steps = {steps}, so the t-test \
                     could never run; give at most {steps}"
                ),
            ));
        }
        Ok(())
    }
}

/// `[policy.exploit]`: the strategy (truncation by default) and its options, checked; and
/// the t-test's window, to check against `[stop]`.
fn read_exploit(e: &Table<'_>) -> Result<(Exploit, Option<At<i64>>), ConfigError> {
    let strategies = [
        ("truncation", "truncation"),
        ("tournament", "tournament"),
        ("t_test", "t_test"),
        ("winner_takes_all", "winner_takes_all"),
    ];
    let strategy = e
        .word("strategy", &strategies)?
        .map_or("truncation", |s| s.value);
    let fraction = e.float("fraction")?;
    let window = e.int("window")?;
    let alpha = e.float("alpha")?;
    if fraction.is_some() && strategy != "truncation" {
        return Err(e.err(
            e.key_span("fraction"),
            format!("[policy.exploit] `fraction` only applies to strategy = \"truncation\" (this one is \"{strategy}\"); remove it"),
        ));
    }
    for key in ["window", "alpha"] {
        if e.raw(key).is_some() && strategy != "t_test" {
            return Err(e.err(
                e.key_span(key),
                format!("[policy.exploit] `window` and `alpha` only apply to strategy = \"t_test\" (this one is \"{strategy}\"); remove `{key}`"),
            ));
        }
    }
    let exploit = match strategy {
        "tournament" => Exploit::Tournament,
        "winner_takes_all" => Exploit::WinnerTakesAll,
        "t_test" => {
            let w = match &window {
                Some(w) if w.value < 2 => {
                    return Err(e.bad(
                        "window",
                        &w.span,
                        "the t-test needs at least 2 scores per member; give 2 or more, e.g. window = 10",
                    ))
                }
                Some(w) if w.value > MAX_STEPS => {
                    return Err(e.bad("window", &w.span, "more scores than any member records; e.g. window = 10"))
                }
                Some(w) => w.value as usize,
                None => 10,
            };
            let a = match &alpha {
                Some(a) if !(a.value > 0.0 && a.value < 1.0) => {
                    return Err(e.bad(
                        "alpha",
                        &a.span,
                        "a significance level lies strictly between 0 and 1, e.g. alpha = 0.05",
                    ))
                }
                Some(a) => a.value,
                None => 0.05,
            };
            Exploit::TTest {
                window: w,
                alpha: a,
            }
        }
        _ => {
            let f = match &fraction {
                Some(f) if !(f.value > 0.0 && f.value <= 1.0) => {
                    return Err(e.bad(
                        "fraction",
                        &f.span,
                        "the truncation fraction must lie in (0, 1]: above 0 and at most 1, e.g. fraction = 0.25",
                    ))
                }
                Some(f) => f.value,
                None => 0.25,
            };
            Exploit::Truncation { fraction: f }
        }
    };
    Ok((exploit, window))
}

/// `[policy.explore]`: the method (perturb by default) and its options, checked.
fn read_explore(x: &Table<'_>) -> Result<Explore, ConfigError> {
    let methods = [
        ("perturb", "perturb"),
        ("gaussian", "gaussian"),
        ("resample", "resample"),
    ];
    let method = x.word("method", &methods)?.map_or("perturb", |m| m.value);
    if x.raw("factors").is_some() && method != "perturb" {
        return Err(x.err(
            x.key_span("factors"),
            format!("[policy.explore] `factors` only applies to method = \"perturb\" (this one is \"{method}\"); remove it"),
        ));
    }
    if x.raw("std").is_some() && method != "gaussian" {
        return Err(x.err(
            x.key_span("std"),
            format!("[policy.explore] `std` only applies to method = \"gaussian\" (this one is \"{method}\"); remove it"),
        ));
    }
    let m = match method {
        "gaussian" => {
            let Some(std) = x.float("std")? else {
                return Err(x.err(
                    x.key_span("method"),
                    "[policy.explore] method = \"gaussian\" needs `std`, the noise's standard deviation (e.g. std = 0.1)",
                ));
            };
            if std.value < 0.0 {
                return Err(x.bad(
                    "std",
                    &std.span,
                    "a standard deviation is 0 or more, e.g. std = 0.1",
                ));
            }
            ExploreMethod::Gaussian { std: std.value }
        }
        "resample" => ExploreMethod::Resample,
        _ => ExploreMethod::Perturb {
            factors: read_factors(x)?,
        },
    };
    let p = x.float("resample_probability")?;
    if let Some(p) = &p {
        if !(0.0..=1.0).contains(&p.value) {
            return Err(x.bad(
                "resample_probability",
                &p.span,
                "a probability lies from 0 to 1, e.g. resample_probability = 0.25",
            ));
        }
    }
    Ok(Explore {
        method: m,
        resample_probability: p.map_or(
            match method {
                "gaussian" => 0.0,
                "resample" => 1.0,
                _ => 0.25,
            },
            |p| p.value,
        ),
    })
}

/// `factors`: a non-empty list of positive finite numbers; a bad one is shown and located.
fn read_factors(x: &Table<'_>) -> Result<Vec<f64>, ConfigError> {
    let Some(list) = x.array("factors")? else {
        return Ok(vec![0.8, 1.2]);
    };
    if list.value.is_empty() {
        return Err(x.bad(
            "factors",
            &list.span,
            "the list is empty; give at least one factor, e.g. factors = [0.8, 1.2]",
        ));
    }
    let mut factors = Vec::new();
    for (i, e) in list.value.iter().enumerate() {
        match number(e.get_ref()) {
            Some(Ok(f)) if f.is_finite() && f > 0.0 => factors.push(f),
            Some(_) => {
                return Err(x.bad_element(
                    "factors",
                    i,
                    e,
                    "is not a positive finite number: each factor multiplies a value, e.g. factors = [0.8, 1.2]",
                ))
            }
            None => {
                return Err(x.bad_element(
                    "factors",
                    i,
                    e,
                    "is not a number: give positive numbers, e.g. factors = [0.8, 1.2]",
                ))
            }
        }
    }
    Ok(factors)
}
