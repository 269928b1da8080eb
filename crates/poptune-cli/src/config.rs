//! Experiment files (TOML): parsing, validation, and errors that point at the file, line and
//! column. `docs/experiment-file.md` documents every key.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use poptune::{
    Exploit, Explore, ExploreMethod, Inherit, Mode, Param, Policy, Space, SyncMode, Value, Variant,
};
use serde::Deserialize;
use toml::Spanned;

pub use poptune::{ExperimentDef, InitialKind, StopRules, TrainableDef};

/// A bad experiment file: where and what.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
    (line, col)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    name: Spanned<String>,
    #[serde(default = "default_metric")]
    metric: String,
    #[serde(default)]
    mode: Mode,
    population: Spanned<i64>,
    #[serde(default)]
    seed: u64,
    #[serde(default = "default_slots")]
    slots: Spanned<i64>,
    #[serde(default)]
    initial: InitialKind,
    directory: Option<String>,
    #[serde(default)]
    policy: Option<Spanned<PolicyFile>>,
    space: Spanned<BTreeMap<String, Spanned<ParamFile>>>,
    stop: Spanned<StopFile>,
    trainable: Spanned<TrainableFile>,
}

fn default_metric() -> String {
    "score".into()
}

fn default_slots() -> Spanned<i64> {
    Spanned::new(0..0, 1)
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ParamFile {
    Float {
        low: f64,
        high: f64,
        #[serde(default)]
        log: bool,
    },
    Int {
        low: i64,
        high: i64,
        #[serde(default)]
        log: bool,
    },
    Ordered {
        values: Vec<Value>,
    },
    Choice {
        values: Vec<Value>,
    },
    Fixed {
        value: Value,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    interval: Option<i64>,
    burn_in: Option<i64>,
    sync: Option<SyncMode>,
    inherit: Option<Inherit>,
    variant: Option<Variant>,
    exploit: Option<Spanned<ExploitFile>>,
    explore: Option<Spanned<ExploreFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExploitFile {
    strategy: Option<ExploitName>,
    fraction: Option<f64>,
    window: Option<i64>,
    alpha: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ExploitName {
    Truncation,
    Tournament,
    TTest,
    WinnerTakesAll,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExploreFile {
    method: Option<ExploreName>,
    factors: Option<Vec<f64>>,
    std: Option<f64>,
    resample_probability: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ExploreName {
    Perturb,
    Gaussian,
    Resample,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopFile {
    steps: Option<i64>,
    target: Option<f64>,
    max_seconds: Option<f64>,
    plateau: Option<Spanned<PlateauFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlateauFile {
    patience: i64,
    #[serde(default)]
    min_delta: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainableFile {
    command: Spanned<Vec<String>>,
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default = "default_timeout")]
    step_timeout: f64,
    #[serde(default = "default_failures")]
    max_failures: i64,
}

fn default_timeout() -> f64 {
    600.0
}

fn default_failures() -> i64 {
    3
}

/// The key assigned on the line holding `offset`, when `offset` lies in its value.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[start..];
    let line = line.split('\n').next().unwrap_or("");
    let eq = line.find('=')?;
    if start + eq >= offset {
        return None;
    }
    let key = line[..eq].trim();
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
}

/// The offset of the first line at or after `from` that assigns `key`.
fn find_key(text: &str, from: usize, key: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        if offset <= from {
            continue;
        }
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some(start + (line.len() - trimmed.len()));
            }
        }
    }
    None
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = if span == (0..0) {
            (0, 0)
        } else {
            line_col(self.text, span.start)
        };
        ConfigError {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Reads and validates an experiment file.
pub fn load(path: &Path) -> Result<ExperimentDef, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read the experiment file: {e}"),
    })?;
    parse(path, &text)
}

/// Parses and validates experiment-file text; `path` locates relative paths and errors.
pub fn parse(path: &Path, text: &str) -> Result<ExperimentDef, ConfigError> {
    let cx = Ctx { path, text };
    let file = read_toml(&cx)?;
    let base = base_dir(path);
    let top = check_top_level(&cx, &file)?;
    let space = build_space(&cx, &file.space)?;
    let policy_span = file.policy.as_ref().map_or(0..0, |p| p.span());
    let policy = match &file.policy {
        Some(pf) => build_policy(&cx, pf)?,
        None => Policy::default(),
    };
    let stop = build_stop(&cx, &file.stop)?;
    let trainable = build_trainable(&cx, &file.trainable, &base)?;
    let directory = match &file.directory {
        Some(d) => base.join(d),
        None => base.join(&top.name),
    };
    let def = ExperimentDef {
        name: top.name,
        metric: file.metric,
        mode: file.mode,
        population: top.population,
        seed: file.seed,
        slots: top.slots,
        initial: file.initial,
        directory,
        policy,
        space,
        stop,
        trainable,
    };
    def.experiment()
        .validate()
        .map_err(|e| cx.err(policy_span, e.to_string()))?;
    Ok(def)
}

/// Deserializes the text, turning a TOML or schema error into one that names the key and its place.
fn read_toml(cx: &Ctx<'_>) -> Result<FileDef, ConfigError> {
    let text = cx.text;
    toml::from_str(text).map_err(|e| {
        let mut span = e.span().unwrap_or(0..0);
        let msg = e.message().trim().to_string();
        // For an unknown key inside a table the parser points at the table: point at the key.
        if let Some(key) = msg
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
        {
            if let Some(at) = find_key(text, span.start, key) {
                span = at..at + key.len();
            }
        }
        let hint = if msg.starts_with("unknown field") {
            " (see docs/experiment-file.md for every key)"
        } else {
            ""
        };
        // Name the key whose value is wrong when the parser's message does not.
        let key = key_at(text, span.start).filter(|k| !msg.contains(k.as_str()));
        match key {
            Some(k) => cx.err(span, format!("`{k}`: {msg}{hint}")),
            None => cx.err(span, format!("{msg}{hint}")),
        }
    })
}

/// The absolute directory holding the experiment file, against which relative paths resolve.
fn base_dir(path: &Path) -> PathBuf {
    let base = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf())
}

/// The checked top-level keys that need more than deserializing.
struct TopLevel {
    /// The experiment's name, trimmed.
    name: String,
    /// Members in the population (1 or more).
    population: usize,
    /// Trainable processes run at once (1 or more).
    slots: usize,
}

/// Checks `name`, `population` and `slots`.
fn check_top_level(cx: &Ctx<'_>, file: &FileDef) -> Result<TopLevel, ConfigError> {
    let name = file.name.get_ref().trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(cx.err(
            file.name.span(),
            "`name` must be non-empty and use only letters, digits, '-', '_' and '.' (it names the experiment directory)",
        ));
    }
    let population = *file.population.get_ref();
    if population < 1 {
        return Err(cx.err(
            file.population.span(),
            format!("`population` = {population}: the population needs at least 1 member (PBT needs 2 or more to compare)"),
        ));
    }
    let slots = *file.slots.get_ref();
    if slots < 1 {
        return Err(cx.err(
            file.slots.span(),
            format!("`slots` = {slots}: at least 1 trainable process must run"),
        ));
    }
    Ok(TopLevel {
        name,
        population: population as usize,
        slots: slots as usize,
    })
}

/// The search space: every `[space.NAME]` table, each checked.
fn build_space(
    cx: &Ctx<'_>,
    file: &Spanned<BTreeMap<String, Spanned<ParamFile>>>,
) -> Result<Space, ConfigError> {
    let mut space = Space::new();
    if file.get_ref().is_empty() {
        return Err(cx.err(
            file.span(),
            "the search space is empty: add at least one [space.NAME] table",
        ));
    }
    for (pname, p) in file.get_ref() {
        let param = p.get_ref().to_param();
        param
            .validate(pname)
            .map_err(|e| cx.err(p.span(), format!("[space.{pname}]: {e}")))?;
        space.insert(pname, param);
    }
    Ok(space)
}

impl ParamFile {
    /// The parameter this table describes, not yet checked.
    fn to_param(&self) -> Param {
        match self {
            ParamFile::Float { low, high, log } => Param::Float {
                low: *low,
                high: *high,
                log: *log,
            },
            ParamFile::Int { low, high, log } => Param::Int {
                low: *low,
                high: *high,
                log: *log,
            },
            ParamFile::Ordered { values } => Param::Ordered {
                values: values.clone(),
            },
            ParamFile::Choice { values } => Param::Choice {
                values: values.clone(),
            },
            ParamFile::Fixed { value } => Param::Fixed {
                value: value.clone(),
            },
        }
    }
}

/// The `[policy]` table over the defaults; its own errors point at the table.
fn build_policy(cx: &Ctx<'_>, file: &Spanned<PolicyFile>) -> Result<Policy, ConfigError> {
    let mut policy = Policy::default();
    let policy_span = file.span();
    let pf = file.get_ref();
    if let Some(i) = pf.interval {
        if i < 1 {
            return Err(cx.err(
                policy_span.clone(),
                format!("[policy] interval = {i}: members must train at least 1 step between ready points"),
            ));
        }
        policy.interval = i as u64;
    }
    if let Some(b) = pf.burn_in {
        if b < 0 {
            return Err(cx.err(
                policy_span.clone(),
                format!("[policy] burn_in = {b} must be 0 or more"),
            ));
        }
        policy.burn_in = b as u64;
    }
    if let Some(s) = pf.sync {
        policy.sync = s;
    }
    if let Some(i) = pf.inherit {
        policy.inherit = i;
    }
    if let Some(v) = pf.variant {
        policy.variant = v;
    }
    if let Some(e) = &pf.exploit {
        policy.exploit = build_exploit(cx, e)?;
    }
    if let Some(x) = &pf.explore {
        policy.explore = build_explore(cx, x)?;
    }
    Ok(policy)
}

/// The `[policy.exploit]` table: the strategy (truncation by default) and its options, checked.
fn build_exploit(cx: &Ctx<'_>, e: &Spanned<ExploitFile>) -> Result<Exploit, ConfigError> {
    let ef = e.get_ref();
    let strategy = ef.strategy.unwrap_or(ExploitName::Truncation);
    if ef.fraction.is_some() && strategy != ExploitName::Truncation {
        return Err(cx.err(
            e.span(),
            "[policy.exploit] `fraction` only applies to strategy = \"truncation\"",
        ));
    }
    if (ef.window.is_some() || ef.alpha.is_some()) && strategy != ExploitName::TTest {
        return Err(cx.err(
            e.span(),
            "[policy.exploit] `window` and `alpha` only apply to strategy = \"t_test\"",
        ));
    }
    let exploit = match strategy {
        ExploitName::Truncation => Exploit::Truncation {
            fraction: ef.fraction.unwrap_or(0.25),
        },
        ExploitName::Tournament => Exploit::Tournament,
        ExploitName::TTest => {
            let w = ef.window.unwrap_or(10);
            if w < 2 {
                return Err(cx.err(
                    e.span(),
                    format!("[policy.exploit] window = {w}: the t-test needs at least 2 scores"),
                ));
            }
            Exploit::TTest {
                window: w as usize,
                alpha: ef.alpha.unwrap_or(0.05),
            }
        }
        ExploitName::WinnerTakesAll => Exploit::WinnerTakesAll,
    };
    exploit
        .validate()
        .map_err(|err| cx.err(e.span(), format!("[policy.exploit] {err}")))?;
    Ok(exploit)
}

/// The `[policy.explore]` table: the method (perturb by default) and its options, checked.
fn build_explore(cx: &Ctx<'_>, x: &Spanned<ExploreFile>) -> Result<Explore, ConfigError> {
    let xf = x.get_ref();
    let method = xf.method.unwrap_or(ExploreName::Perturb);
    if xf.factors.is_some() && method != ExploreName::Perturb {
        return Err(cx.err(
            x.span(),
            "[policy.explore] `factors` only applies to method = \"perturb\"",
        ));
    }
    if xf.std.is_some() && method != ExploreName::Gaussian {
        return Err(cx.err(
            x.span(),
            "[policy.explore] `std` only applies to method = \"gaussian\"",
        ));
    }
    let m = match method {
        ExploreName::Perturb => ExploreMethod::Perturb {
            factors: xf.factors.clone().unwrap_or_else(|| vec![0.8, 1.2]),
        },
        ExploreName::Gaussian => ExploreMethod::Gaussian {
            std: xf.std.ok_or_else(|| {
                cx.err(
                    x.span(),
                    "[policy.explore] method = \"gaussian\" needs `std`, the noise's standard deviation (e.g. std = 0.1)",
                )
            })?,
        },
        ExploreName::Resample => ExploreMethod::Resample,
    };
    let explore = Explore {
        method: m,
        resample_probability: xf.resample_probability.unwrap_or(match method {
            ExploreName::Gaussian => 0.0,
            ExploreName::Resample => 1.0,
            ExploreName::Perturb => 0.25,
        }),
    };
    explore
        .validate()
        .map_err(|err| cx.err(x.span(), format!("[policy.explore] {err}")))?;
    Ok(explore)
}

/// The `[stop]` table: `steps` (required), `target`, `max_seconds` and `[stop.plateau]`.
fn build_stop(cx: &Ctx<'_>, file: &Spanned<StopFile>) -> Result<StopRules, ConfigError> {
    let sf = file.get_ref();
    let steps =
        match sf.steps {
            Some(s) if s >= 1 => s as u64,
            Some(s) => {
                return Err(cx.err(
                    file.span(),
                    format!("[stop] steps = {s}: each member must train at least 1 step"),
                ))
            }
            None => return Err(cx.err(
                file.span(),
                "[stop] needs `steps`, the number of steps each member trains (e.g. steps = 100)",
            )),
        };
    if let Some(t) = sf.target {
        if !t.is_finite() {
            return Err(cx.err(file.span(), "[stop] target must be a finite number"));
        }
    }
    if let Some(s) = sf.max_seconds {
        if !(s.is_finite() && s > 0.0) {
            return Err(cx.err(
                file.span(),
                format!("[stop] max_seconds = {s} must be a positive number of seconds"),
            ));
        }
    }
    let plateau = match &sf.plateau {
        Some(p) => {
            let pf = p.get_ref();
            if pf.patience < 1 || !(pf.min_delta.is_finite() && pf.min_delta >= 0.0) {
                return Err(cx.err(
                    p.span(),
                    "[stop.plateau] needs patience >= 1 (steps) and min_delta >= 0",
                ));
            }
            Some((pf.patience as u64, pf.min_delta))
        }
        None => None,
    };
    Ok(StopRules {
        steps,
        target: sf.target,
        max_seconds: sf.max_seconds,
        plateau,
    })
}

/// The `[trainable]` table: a startable command, limits, and a working directory under `base`.
fn build_trainable(
    cx: &Ctx<'_>,
    file: &Spanned<TrainableFile>,
    base: &Path,
) -> Result<TrainableDef, ConfigError> {
    let tf = file.get_ref();
    if tf.command.get_ref().is_empty() || tf.command.get_ref()[0].trim().is_empty() {
        return Err(cx.err(
            tf.command.span(),
            "[trainable] command is empty: give the program and its arguments, e.g. command = [\"python3\", \"train.py\"]",
        ));
    }
    if !(tf.step_timeout.is_finite() && tf.step_timeout > 0.0) {
        return Err(cx.err(
            file.span(),
            format!(
                "[trainable] step_timeout = {} must be a positive number of seconds",
                tf.step_timeout
            ),
        ));
    }
    if tf.max_failures < 0 {
        return Err(cx.err(
            file.span(),
            format!(
                "[trainable] max_failures = {} must be 0 or more",
                tf.max_failures
            ),
        ));
    }
    let cwd = match &tf.cwd {
        Some(c) => base.join(c),
        None => base.to_path_buf(),
    };
    if !cwd.is_dir() {
        return Err(cx.err(
            file.span(),
            format!("[trainable] cwd {} is not a directory", cwd.display()),
        ));
    }
    if let Err(why) = find_program(&tf.command.get_ref()[0], &cwd, &tf.env) {
        return Err(cx.err(tf.command.span(), format!("[trainable] command: {why}")));
    }
    Ok(TrainableDef {
        command: tf.command.get_ref().clone(),
        cwd,
        env: tf.env.clone(),
        step_timeout: tf.step_timeout,
        max_failures: tf.max_failures as u32,
    })
}

/// Checks that the trainable's program can be started: a path (with a `/`) relative to the
/// working directory `cwd`, or a name found in `PATH` (the experiment's own, when `env` sets
/// it). Otherwise every segment would fail to start, and the run would stop only after every
/// member had failed `max_failures` times.
pub fn find_program(
    program: &str,
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Result<PathBuf, String> {
    let runnable = |p: &Path| -> bool {
        let Ok(meta) = std::fs::metadata(p) else {
            return false;
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            meta.is_file() && meta.permissions().mode() & 0o111 != 0
        }
        #[cfg(not(unix))]
        {
            meta.is_file()
        }
    };
    if program.contains('/') || program.contains(std::path::MAIN_SEPARATOR) {
        let path = cwd.join(program.trim_start_matches("./"));
        if runnable(&path) {
            return Ok(path);
        }
        let why = if path.is_file() {
            "is not executable (chmod +x it, or name its interpreter first, e.g. [\"python3\", \"train.py\"])"
        } else {
            "does not exist"
        };
        return Err(format!("the program {} {why}", path.display()));
    }
    let search = env
        .get("PATH")
        .map(std::ffi::OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    for dir in std::env::split_paths(&search) {
        let path = cwd.join(dir).join(program);
        if runnable(&path) {
            return Ok(path);
        }
    }
    Err(format!(
        "the program `{program}` is not in PATH; install it, or give its full path"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "demo"
population = 4
seed = 3

[policy]
interval = 5
[policy.exploit]
strategy = "truncation"
fraction = 0.25
[policy.explore]
method = "perturb"

[space.lr]
type = "float"
low = 1e-4
high = 1e-1
log = true

[space.batch]
type = "ordered"
values = [16, 32, 64]

[stop]
steps = 20

[trainable]
command = ["python3", "train.py"]
"#;

    fn err(text: &str) -> ConfigError {
        parse(Path::new("exp.toml"), text).unwrap_err()
    }

    #[test]
    fn parses_a_complete_file() {
        let d = parse(Path::new("exp.toml"), GOOD).unwrap();
        assert_eq!(d.population, 4);
        assert_eq!(d.stop.steps, 20);
        assert_eq!(d.space.len(), 2);
        assert!(d.directory.ends_with("demo"));
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let e = err(&GOOD.replace("log = true", "log = true\nlowe = 3"));
        assert_eq!((e.line, e.column), (19, 1), "{e}");
        assert!(e.message.contains("lowe"), "{e}");
        let e = err(&GOOD.replace("low = 1e-4", "low = 0.0"));
        assert!(e.message.contains("log-uniform"), "{e}");
        assert!(e.line >= 13, "{e}");
        let e = err(&GOOD.replace("high = 1e-1", "high = 1e-5"));
        assert!(e.message.contains("smaller than high"), "{e}");
        let e = err(&GOOD.replace("fraction = 0.25", "fraction = 1.5"));
        assert!(e.message.contains("fraction"), "{e}");
        assert_eq!(e.line, 8, "{e}");
        let e = err(&GOOD.replace("population = 4", "population = 0"));
        assert_eq!((e.line, e.column), (3, 14), "{e}");
        let e = err(&GOOD.replace("steps = 20", ""));
        assert!(e.message.contains("steps"), "{e}");
        let e = err(&GOOD.replace("values = [16, 32, 64]", "values = []"));
        assert!(e.message.contains("empty"), "{e}");
        let e = err(&GOOD.replace("strategy = \"truncation\"", "strategy = \"best\""));
        assert!(e.message.contains("best"), "{e}");
        let e = err(&GOOD.replace("[\"python3\", \"train.py\"]", "[]"));
        assert!(e.message.contains("command"), "{e}");
        let e = err("name = ");
        assert_eq!(e.line, 1, "{e}");
        assert!(e.to_string().starts_with("exp.toml:1:"), "{e}");
    }

    #[test]
    fn the_exploit_strategy_defaults_to_truncation_and_options_must_fit_it() {
        let d = parse(
            Path::new("exp.toml"),
            &GOOD.replace("strategy = \"truncation\"\n", ""),
        )
        .unwrap();
        assert_eq!(d.policy.exploit, Exploit::Truncation { fraction: 0.25 });
        let e = err(&GOOD.replace("\"truncation\"", "\"tournament\""));
        assert!(
            e.message
                .contains("only applies to strategy = \"truncation\""),
            "{e}"
        );
        let e = err(&GOOD.replace("fraction = 0.25", "window = 4"));
        assert!(
            e.message.contains("only apply to strategy = \"t_test\""),
            "{e}"
        );
    }

    #[test]
    fn values_listed_twice_or_of_the_wrong_type_are_errors() {
        let e = err(&GOOD.replace("values = [16, 32, 64]", "values = [16, 32, 16]"));
        assert!(
            e.message
                .contains("16 is listed twice (at positions 1 and 3)"),
            "{e}"
        );
        let e = err(&GOOD.replace("values = [16, 32, 64]", "values = [16, [32]]"));
        assert!(e.message.contains("a number, a string or a boolean"), "{e}");
    }

    #[test]
    fn a_trainable_program_that_cannot_be_started_is_an_error() {
        let e = err(&GOOD.replace("\"python3\"", "\"no-such-program-anywhere\""));
        assert!(
            e.message
                .contains("`no-such-program-anywhere` is not in PATH"),
            "{e}"
        );
        assert_eq!((e.line, e.column), (28, 11), "{e}");
        let e = err(&GOOD.replace("\"python3\"", "\"/no/such/dir/python3\""));
        assert!(
            e.message.contains("/no/such/dir/python3 does not exist"),
            "{e}"
        );
        let e = err(&GOOD.replace(
            "[trainable]",
            "[trainable]\nenv = { PATH = \"/no/such/dir\" }",
        ));
        assert!(e.message.contains("`python3` is not in PATH"), "{e}");
        // A file that exists but cannot be executed.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.sh"), "echo").unwrap();
        let text = GOOD.replace("\"python3\", \"train.py\"", "\"./train.sh\"");
        let e = parse(&dir.path().join("exp.toml"), &text).unwrap_err();
        assert!(e.message.contains("train.sh is not executable"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let script = dir.path().join("train.sh");
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            parse(&dir.path().join("exp.toml"), &text).unwrap();
        }
    }
}
