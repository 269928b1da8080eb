//! The keys each table of an experiment file may hold, what each key's value must be, and an
//! example of each: the words every message is made of.

/// Keys of the top level.
pub(super) const TOP: &[&str] = &[
    "name",
    "metric",
    "mode",
    "population",
    "seed",
    "slots",
    "initial",
    "directory",
    "policy",
    "space",
    "stop",
    "trainable",
];
/// Keys of `[policy]`.
pub(super) const POLICY: &[&str] = &[
    "interval",
    "burn_in",
    "sync",
    "inherit",
    "variant",
    "algorithm",
    "exploit",
    "explore",
    "fire",
];
/// Keys of `[policy.fire]`.
pub(super) const FIRE: &[&str] = &[
    "sub_populations",
    "evaluators",
    "p_value",
    "max_eval_steps",
    "smoothing",
];
/// Keys of `[policy.exploit]`.
pub(super) const EXPLOIT: &[&str] = &["strategy", "fraction", "window", "alpha"];
/// Keys of `[policy.explore]`.
pub(super) const EXPLORE: &[&str] = &["method", "factors", "std", "resample_probability"];
/// Keys of a `[space.NAME]` table, whatever its type.
pub(super) const PARAM: &[&str] = &["type", "low", "high", "log", "values", "value"];
/// Keys of `[stop]`.
pub(super) const STOP: &[&str] = &["steps", "target", "max_seconds", "plateau"];
/// Keys of `[stop.plateau]`.
pub(super) const PLATEAU: &[&str] = &["patience", "min_delta"];
/// Keys of `[trainable]`.
pub(super) const TRAINABLE: &[&str] = &[
    "command",
    "cwd",
    "env",
    "step_timeout",
    "max_failures",
    "gpus_per_slot",
    "devices",
];

/// Every table with fixed keys, as messages name it, and its keys.
pub(super) const TABLES: &[(&str, &[&str])] = &[
    ("the top level", TOP),
    ("[policy]", POLICY),
    ("[policy.exploit]", EXPLOIT),
    ("[policy.explore]", EXPLORE),
    ("[policy.fire]", FIRE),
    ("[space.NAME]", PARAM),
    ("[stop]", STOP),
    ("[stop.plateau]", PLATEAU),
    ("[trainable]", TRAINABLE),
];

/// The largest step count: steps travel as JSON numbers, exact up to 2^53 in every reader.
pub(super) const MAX_STEPS: i64 = 1 << 53;
/// The largest integer bound of an `int` hyperparameter (also exact in JSON).
pub(super) const MAX_INT: i64 = 1 << 53;
/// The largest population.
pub(super) const MAX_POPULATION: i64 = 100_000;
/// The most trainable processes run at once.
pub(super) const MAX_SLOTS: i64 = 10_000;
/// The longest time limit, in seconds (about 31 years).
pub(super) const MAX_SECONDS: f64 = 1e9;
/// The longest file name most file systems allow, in bytes.
pub(super) const MAX_NAME_BYTES: usize = 255;

/// What `key`'s value must be, in words, and an example line.
pub(super) fn about(key: &str) -> (&'static str, &'static str) {
    match key {
        "name" => ("the experiment's name in quotes", "name = \"digits\""),
        "metric" => ("the score's name in quotes", "metric = \"val_accuracy\""),
        "mode" => ("\"max\" or \"min\"", "mode = \"max\""),
        "population" => ("a whole number of members", "population = 8"),
        "seed" => ("a whole number, 0 or more", "seed = 1"),
        "slots" => ("a whole number of trainable processes", "slots = 2"),
        "initial" => ("\"prior\" or \"grid\"", "initial = \"prior\""),
        "directory" => ("a folder's path in quotes", "directory = \"runs/digits\""),
        "interval" => ("a whole number of steps", "interval = 5"),
        "burn_in" => ("a whole number of steps", "burn_in = 0"),
        "sync" => (
            "\"asynchronous\" or \"synchronous\"",
            "sync = \"synchronous\"",
        ),
        "inherit" => (
            "\"weights+hyperparameters\" or \"weights\"",
            "inherit = \"weights\"",
        ),
        "variant" => (
            "\"pbt\", \"explore-only\", \"exploit-only\" or \"frozen\"",
            "variant = \"pbt\"",
        ),
        "algorithm" => (
            "\"pbt\", \"pb2\", \"pb2-mix\" or \"fire\"",
            "algorithm = \"pb2\"",
        ),
        "sub_populations" => (
            "a list of sub-population sizes, 2 or more each",
            "sub_populations = [4, 4]",
        ),
        "evaluators" => ("a whole number of evaluators", "evaluators = 2"),
        "p_value" => ("a number between 0 and 1", "p_value = 0.01"),
        "max_eval_steps" => ("a whole number of steps", "max_eval_steps = 50"),
        "smoothing" => ("a whole number of points", "smoothing = 5"),
        "fire" => ("a table", "[policy.fire] sub_populations = [4, 4]"),
        "strategy" => (
            "\"truncation\", \"tournament\", \"t_test\" or \"winner_takes_all\"",
            "strategy = \"truncation\"",
        ),
        "fraction" => ("a number above 0 and at most 1", "fraction = 0.25"),
        "window" => ("a whole number of scores, 2 or more", "window = 10"),
        "alpha" => ("a number between 0 and 1", "alpha = 0.05"),
        "method" => (
            "\"perturb\", \"gaussian\" or \"resample\"",
            "method = \"perturb\"",
        ),
        "factors" => ("a list of positive numbers", "factors = [0.8, 1.2]"),
        "std" => ("a number, 0 or more", "std = 0.1"),
        "resample_probability" => ("a probability from 0 to 1", "resample_probability = 0.25"),
        "type" => (
            "\"float\", \"int\", \"ordered\", \"choice\" or \"fixed\"",
            "type = \"float\"",
        ),
        "low" => ("a number", "low = 1e-4"),
        "high" => ("a number", "high = 1.0"),
        "log" => ("true or false", "log = true"),
        "values" => (
            "a list of numbers, strings or booleans, all of one type",
            "values = [16, 32, 64]",
        ),
        "value" => ("a number, a string or a boolean", "value = 1"),
        "steps" => ("a whole number of steps", "steps = 100"),
        "target" => ("a score", "target = 0.99"),
        "max_seconds" => ("a number of seconds", "max_seconds = 3600"),
        "plateau" => (
            "a table with `patience` and `min_delta`",
            "plateau = { patience = 20, min_delta = 0.001 }",
        ),
        "patience" => ("a whole number of steps", "patience = 20"),
        "min_delta" => ("a number, 0 or more", "min_delta = 0.001"),
        "command" => (
            "a list of strings: the program and its arguments",
            "command = [\"python3\", \"train.py\"]",
        ),
        "cwd" => ("a folder's path in quotes", "cwd = \".\""),
        "env" => ("a table of strings", "env = { OMP_NUM_THREADS = \"1\" }"),
        "step_timeout" => ("a number of seconds", "step_timeout = 60"),
        "max_failures" => ("a whole number, 0 or more", "max_failures = 3"),
        "gpus_per_slot" => (
            "a number of GPUs per slot: 0 (none assigned), a whole number, or 0.5, 0.25, ...",
            "gpus_per_slot = 1",
        ),
        "devices" => (
            "a list of device ids (strings or whole numbers)",
            "devices = [\"0\", \"1\"]",
        ),
        "policy" => ("a table", "[policy] interval = 5"),
        "exploit" => ("a table", "[policy.exploit] strategy = \"truncation\""),
        "explore" => ("a table", "[policy.explore] method = \"perturb\""),
        "space" => (
            "a table of hyperparameters",
            "[space.lr] type = \"float\", low = 1e-4, high = 1.0",
        ),
        "stop" => ("a table", "[stop] steps = 100"),
        "trainable" => (
            "a table",
            "[trainable] command = [\"python3\", \"train.py\"]",
        ),
        _ => ("a value", "see docs/experiment-file.md"),
    }
}

/// What a required key or table is for, as said when it is missing.
pub(super) fn purpose(key: &str) -> &'static str {
    match key {
        "name" => "the experiment's name, which also names its directory",
        "population" => "the number of members trained side by side",
        "space" => "the hyperparameters to tune, one [space.NAME] table each",
        "stop" => "when the experiment ends",
        "steps" => "the number of steps each member trains",
        "trainable" => "the program that trains a member",
        "command" => "the program that trains a member, and its arguments",
        "type" => "what kind of hyperparameter this is",
        "low" => "the range's lower bound",
        "high" => "the range's upper bound",
        "values" => "the values the hyperparameter takes",
        "value" => "the value the hyperparameter keeps",
        "patience" => "the steps without improvement after which the experiment stops",
        "std" => "the noise's standard deviation",
        _ => "see docs/experiment-file.md",
    }
}
