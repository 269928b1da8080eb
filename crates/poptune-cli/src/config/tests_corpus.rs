//! A corpus of malformed experiment files: each one is refused with a location, in poptune's
//! words (no serde or Rust wording), and with the words that say what is wrong.

use std::path::Path;

use super::*;

/// A file that uses every key.
pub(super) const FULL: &str = r#"name = "demo"
metric = "score"
mode = "max"
population = 4
seed = 3
slots = 1
initial = "prior"

[policy]
interval = 5
burn_in = 0
sync = "synchronous"
inherit = "weights"
variant = "pbt"

[policy.exploit]
strategy = "truncation"
fraction = 0.25

[policy.explore]
method = "perturb"
factors = [0.8, 1.2]
resample_probability = 0.25

[space.lr]
type = "float"
low = 1e-4
high = 1e-1
log = true

[space.layers]
type = "int"
low = 1
high = 4

[space.batch]
type = "ordered"
values = [16, 32, 64]

[space.act]
type = "choice"
values = ["relu", "tanh"]

[space.epochs]
type = "fixed"
value = 1

[stop]
steps = 20
target = 0.99
max_seconds = 3600
plateau = { patience = 10, min_delta = 0.001 }

[trainable]
command = ["python3", "train.py"]
cwd = "."
env = { OMP_NUM_THREADS = "1" }
step_timeout = 60
max_failures = 3
"#;

/// Words that belong to serde or Rust, not to poptune's messages.
pub(super) const FOREIGN: &[&str] = &[
    "missing field",
    "unknown field",
    "unknown variant",
    "invalid type",
    "i64",
    "u64",
    "f64",
    "usize",
    "u32",
    "struct",
    "enum ",
    "os error",
    "expected a",
    "Spanned",
];

/// Refuses `text`, and checks the error's place and wording.
pub(super) fn refused(what: &str, text: &str) -> ConfigError {
    let e = match parse(Path::new("exp.toml"), text) {
        Ok(_) => panic!("{what}: accepted"),
        Err(e) => e,
    };
    let shown = e.to_string();
    assert!(e.line >= 1 && e.column >= 1, "{what}: no location: {shown}");
    assert!(
        shown.starts_with(&format!("exp.toml:{}:{}: ", e.line, e.column)),
        "{what}: {shown}"
    );
    for word in FOREIGN {
        assert!(!shown.contains(word), "{what}: {word:?} in {shown}");
    }
    assert!(shown.len() < 600, "{what}: too long: {shown}");
    e
}

/// (replace this, with this, the message says this, the error points at the first of this
/// after the change): the error points at `§` in the replacement, when it has one.
const CHANGES: &[(&str, &str, &str, &str)] = &[
    // The top level.
    ("name = \"demo\"", "name = §3", "`name` must be", ""),
    ("name = \"demo\"", "name = §\"\"", "empty", ""),
    ("name = \"demo\"", "name = §\".\"", "the folder that holds this file", ""),
    ("name = \"demo\"", "name = §\"..\"", "the folder above", ""),
    ("name = \"demo\"", "name = §\"a/b\"", "without '/'", ""),
    ("name = \"demo\"", "name = §\"a\\\\b\"", "without '/'", ""),
    ("name = \"demo\"", "name = §\"a\\u0000b\"", "NUL", ""),
    ("name = \"demo\"", "name = §\"r\u{e9}seau\"", "ASCII letters", ""),
    ("name = \"demo\"", "name = §\"two words\"", "ASCII letters", ""),
    ("name = \"demo\"", "name = §[\"demo\"]", "`name` must be", ""),
    ("name = \"demo\"", "", "needs `name`", ""),
    ("metric = \"score\"", "metric = §1", "`metric` must be", ""),
    ("metric = \"score\"", "metric = §\"\"", "needs a name", ""),
    ("mode = \"max\"", "mode = §\"maximum\"", "did you mean \"max\"", ""),
    ("mode = \"max\"", "mode = §true", "\"max\" or \"min\"", ""),
    ("population = 4", "population = §\"4\"", "remove the quotes", ""),
    ("population = 4", "population = §0", "at least 1 member", ""),
    ("population = 4", "population = §-3", "at least 1 member", ""),
    ("population = 4", "population = §1000000000000", "at most", ""),
    ("population = 4", "population = §99999999999999999999", "too large", ""),
    ("population = 4", "population = §4.5", "whole number", ""),
    ("population = 4", "population = §nan", "whole number", ""),
    ("population = 4", "population = §1979-05-27", "the date", ""),
    ("population = 4", "population = §{ n = 4 }", "a table", ""),
    ("population = 4", "", "needs `population`", ""),
    ("seed = 3", "seed = §-1", "0 or more", ""),
    ("seed = 3", "seed = §1.5", "whole number", ""),
    ("slots = 1", "slots = §0", "at least 1", ""),
    ("slots = 1", "slots = §\"two\"", "`slots` must be", ""),
    ("slots = 1", "slots = §100000000", "at most", ""),
    ("initial = \"prior\"", "initial = §\"random\"", "\"prior\" or \"grid\"", ""),
    ("initial = \"prior\"", "initial = §1", "`initial` must be", ""),
    ("seed = 3", "seed = 3\ndirectory = §\"\"", "empty", ""),
    ("seed = 3", "seed = 3\ndirectory = §3", "`directory` must be", ""),
    ("seed = 3", "seed = 3\ndirectory = §\"a\\u0000b\"", "NUL", ""),
    ("seed = 3", "seed = 3\n§populaton = 8", "did you mean `population`", ""),
    ("seed = 3", "seed = 3\n§steps = 8", "belongs to [stop]", ""),
    ("seed = 3", "seed = 3\n§zzz = 8", "remove it", ""),
    ("[policy]\n", "[§polcy]\n", "did you mean [policy]", ""),
    ("[stop]\n", "[§stpo]\n", "did you mean [stop]", ""),
    ("[policy.exploit]", "[policy.§exploot]", "did you mean [policy.exploit]", ""),
    ("[trainable]\n", "[trainable]\n§population = 3\n", "top level", ""),
    // [policy]
    ("interval = 5", "interval = §0", "at least 1 step", ""),
    ("interval = 5", "interval = §-2", "at least 1 step", ""),
    ("interval = 5", "interval = §\"5\"", "remove the quotes", ""),
    ("interval = 5", "interval = §5.5", "whole number of steps", ""),
    ("interval = 5", "interval = §100", "no member would ever be ready", ""),
    ("interval = 5", "interval = §1152921504606846976", "at most", ""),
    ("burn_in = 0", "burn_in = §-1", "0 or more", ""),
    ("burn_in = 0", "burn_in = §20", "no member would ever be ready", ""),
    ("sync = \"synchronous\"", "sync = §\"sync\"", "\"asynchronous\" or \"synchronous\"", ""),
    ("inherit = \"weights\"", "inherit = §\"both\"", "inherit = \"weights\"", ""),
    ("variant = \"pbt\"", "variant = §\"pbt2\"", "did you mean \"pbt\"", ""),
    ("variant = \"pbt\"", "variant = §1", "`variant` must be", ""),
    ("variant = \"pbt\"", "§varient = \"pbt\"", "did you mean `variant`", ""),
    // [policy.exploit]
    ("strategy = \"truncation\"", "strategy = §\"best\"", "\"truncation\", \"tournament\"", ""),
    ("fraction = 0.25", "fraction = §0", "(0, 1]", ""),
    ("fraction = 0.25", "fraction = §1.5", "(0, 1]", ""),
    ("fraction = 0.25", "fraction = §nan", "not a finite number", ""),
    ("fraction = 0.25", "fraction = §-inf", "not a finite number", ""),
    ("fraction = 0.25", "fraction = §1e999", "not a finite number", ""),
    ("fraction = 0.25", "fraction = §\"0.25\"", "remove the quotes", ""),
    ("fraction = 0.25", "fraction = 0.25\n§window = 4", "only apply to strategy = \"t_test\"", ""),
    ("strategy = \"truncation\"", "strategy = \"tournament\"", "only applies to strategy", "fraction"),
    ("strategy = \"truncation\"\nfraction = 0.25", "strategy = \"t_test\"\nwindow = §1", "at least 2 scores", ""),
    ("strategy = \"truncation\"\nfraction = 0.25", "strategy = \"t_test\"\nwindow = §100", "the t-test", ""),
    ("strategy = \"truncation\"\nfraction = 0.25", "strategy = \"t_test\"\nalpha = §1", "between 0 and 1", ""),
    ("strategy = \"truncation\"\nfraction = 0.25", "strategy = \"t_test\"\nalpha = §0.0", "between 0 and 1", ""),
    ("fraction = 0.25", "§fractoin = 0.25", "did you mean `fraction`", ""),
    // [policy.explore]
    ("method = \"perturb\"", "method = §\"mutate\"", "\"perturb\", \"gaussian\"", ""),
    ("factors = [0.8, 1.2]", "factors = §[]", "at least one factor", ""),
    ("factors = [0.8, 1.2]", "factors = [0.8, §-1]", "element 2 (-1)", ""),
    ("factors = [0.8, 1.2]", "factors = [0.8, §\"x\"]", "element 2 (\"x\")", ""),
    ("factors = [0.8, 1.2]", "factors = [0.8, §inf]", "element 2 (inf)", ""),
    ("factors = [0.8, 1.2]", "factors = §0.8", "list of positive numbers", ""),
    ("factors = [0.8, 1.2]", "§factor = [0.8, 1.2]", "did you mean `factors`", ""),
    ("factors = [0.8, 1.2]", "factors = [0.8, 1.2]\n§std = 0.1", "only applies to method = \"gaussian\"", ""),
    ("method = \"perturb\"\nfactors = [0.8, 1.2]", "§method = \"gaussian\"", "needs `std`", ""),
    ("method = \"perturb\"\nfactors = [0.8, 1.2]", "method = \"gaussian\"\nstd = §-1", "0 or more", ""),
    ("method = \"perturb\"", "method = \"resample\"", "only applies to method = \"perturb\"", "factors"),
    ("resample_probability = 0.25", "resample_probability = §2", "from 0 to 1", ""),
    ("resample_probability = 0.25", "resample_probability = §-0.1", "from 0 to 1", ""),
    // [space]
    ("[space.lr]\ntype = \"float\"", "[space.lr]\ntype = §\"real\"", "\"float\", \"int\"", ""),
    ("[space.lr]\ntype = \"float\"", "[space.lr]\ntype = §1", "`type` must be", ""),
    ("[space.lr]\ntype = \"float\"", "[space.lr]\n", "needs `type`", ""),
    ("low = 1e-4", "low = §\"a\"", "[space.lr] `low` must be a number", ""),
    ("low = 1e-4", "low = §1.0", "must be smaller than high", ""),
    ("low = 1e-4", "low = §1e-1", "type = \"fixed\"", ""),
    ("low = 1e-4", "low = §0.0", "log-uniform", ""),
    ("low = 1e-4\nhigh = 1e-1\nlog = true", "low = -1e308\nhigh = §1e308", "too wide", ""),
    ("low = 1e-4", "low = §nan", "not a finite number", ""),
    ("high = 1e-1", "high = §inf", "not a finite number", ""),
    ("high = 1e-1", "", "needs `high`", ""),
    ("log = true", "log = §\"true\"", "[space.lr] `log` must be true or false", ""),
    ("log = true", "log = §1", "true or false", ""),
    ("log = true", "log = true\n§values = [1]", "does not apply to type = \"float\"", ""),
    ("log = true", "§lowe = 3", "did you mean `low`", ""),
    ("low = 1\nhigh = 4", "low = §1.5\nhigh = 4", "whole number", ""),
    ("low = 1\nhigh = 4", "low = 1\nhigh = §9007199254740993", "exact in JSON", ""),
    ("low = 1\nhigh = 4", "low = §0\nhigh = 4\nlog = true", "low >= 1", ""),
    ("values = [16, 32, 64]", "values = §[]", "empty", ""),
    ("values = [16, 32, 64]", "values = [16, §\"32\", 64]", "element 2 (\"32\") is a string", ""),
    ("values = [16, 32, 64]", "values = [16, §32.5, 64]", "write every number the same way", ""),
    ("values = [16, 32, 64]", "values = [16, 32, §16]", "16 is listed twice (at positions 1 and 3)", ""),
    ("values = [16, 32, 64]", "values = [16, §[32]]", "a number, a string or a boolean", ""),
    ("values = [16, 32, 64]", "values = [16.0, §nan]", "finite", ""),
    ("values = [16, 32, 64]", "values = §16", "`values` must be", ""),
    ("values = [\"relu\", \"tanh\"]", "values = [true, §\"tanh\"]", "mixed types", ""),
    ("value = 1", "value = §[1]", "a number, a string or a boolean", ""),
    ("value = 1", "value = §nan", "finite", ""),
    ("value = 1", "", "needs `value`", ""),
    ("[space.epochs]", "[[space.epochs]]", "one table", ""),
    ("[space.lr]\n", "[space.\"\"]\n", "needs a name", ""),
    // [stop]
    ("steps = 20", "", "[stop] needs `steps`", ""),
    ("steps = 20", "steps = §0", "at least 1 step", ""),
    ("steps = 20", "steps = §-5", "at least 1 step", ""),
    ("steps = 20", "steps = §\"20\"", "remove the quotes", ""),
    ("steps = 20", "steps = §2e1", "whole number of steps", ""),
    ("steps = 20", "steps = §9223372036854775807", "at most", ""),
    ("steps = 20", "steps = §18446744073709551615", "too large", ""),
    ("target = 0.99", "target = §nan", "not a finite number", ""),
    ("target = 0.99", "target = §\"high\"", "`target` must be a score", ""),
    ("max_seconds = 3600", "max_seconds = §0", "positive number of seconds", ""),
    ("max_seconds = 3600", "max_seconds = §1e300", "at most", ""),
    ("max_seconds = 3600", "max_seconds = §inf", "not a finite number", ""),
    ("plateau = { patience = 10, min_delta = 0.001 }", "plateau = §3", "`patience` and `min_delta`", ""),
    ("patience = 10", "patience = §0", "1 or more", ""),
    ("min_delta = 0.001", "min_delta = §-1", "0 or more", ""),
    ("patience = 10, ", "", "needs `patience`", ""),
    ("patience = 10", "patience = §100", "could never fire", ""),
    ("min_delta = 0.001", "§min_dleta = 0.001", "did you mean `min_delta`", ""),
    ("patience = 10", "patience = §\"10\"", "remove the quotes", ""),
    ("[stop]\nsteps = 20", "[[stop]]\nsteps = 20", "one table", ""),
    // [trainable]
    ("command = [\"python3\", \"train.py\"]", "", "needs `command`", ""),
    ("command = [\"python3\", \"train.py\"]", "command = §[]", "command is empty", ""),
    ("command = [\"python3\", \"train.py\"]", "command = [§\"\"]", "element 1", ""),
    ("command = [\"python3\", \"train.py\"]", "command = [\"python3\", §3]", "element 2 (3)", ""),
    ("command = [\"python3\", \"train.py\"]", "command = §\"python3 train.py\"", "list of strings", ""),
    ("command = [\"python3\", \"train.py\"]", "command = [§\"no-such-program-xyz\"]", "not in PATH", ""),
    ("command = [\"python3\", \"train.py\"]", "command = [§\"py\\u0000\"]", "NUL", ""),
    ("cwd = \".\"", "cwd = §\"no/such/folder\"", "not a folder", ""),
    ("cwd = \".\"", "cwd = §\"\"", "empty", ""),
    ("cwd = \".\"", "cwd = §3", "`cwd` must be", ""),
    ("env = { OMP_NUM_THREADS = \"1\" }", "env = §3", "table of strings", ""),
    ("env = { OMP_NUM_THREADS = \"1\" }", "env = { OMP_NUM_THREADS = §1 }", "in quotes", ""),
    ("env = { OMP_NUM_THREADS = \"1\" }", "env = { §\"A=B\" = \"1\" }", "environment variable", ""),
    ("env = { OMP_NUM_THREADS = \"1\" }", "env = { §\"\" = \"1\" }", "environment variable", ""),
    ("step_timeout = 60", "step_timeout = §0", "positive number of seconds", ""),
    ("step_timeout = 60", "step_timeout = §-1", "positive number of seconds", ""),
    ("step_timeout = 60", "step_timeout = §1e300", "at most", ""),
    ("step_timeout = 60", "step_timeout = §nan", "not a finite number", ""),
    ("step_timeout = 60", "step_timeout = §\"60\"", "remove the quotes", ""),
    ("step_timeout = 60", "§timeout = 60", "did you mean `step_timeout`", ""),
    ("max_failures = 3", "max_failures = §-1", "from 0 to", ""),
    ("max_failures = 3", "max_failures = §10000000000", "from 0 to", ""),
    ("max_failures = 3", "max_failures = §\"3\"", "remove the quotes", ""),
    ("max_failures = 3", "§max_failure = 3", "did you mean `max_failures`", ""),
    // TOML itself.
    ("seed = 3", "seed = 3\n§name = \"again\"", "set twice", ""),
    ("[trainable]\n", "[stop]\n", "appears twice", ""),
    ("seed = 3", "seed = ", "`seed` has no value", ""),
    ("metric = \"score\"", "metric = score", "in quotes", ""),
    ("[stop]", "[stop", "not closed", ""),
    ("seed = 3", "seed = 3 4", "seed", ""),
    ("seed = 3", "seed = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "", ""),
];

/// Where `needle` starts in `text`, as (line, column).
fn place(text: &str, offset: usize) -> (usize, usize) {
    super::line_col(text, offset)
}

#[test]
fn every_malformed_file_is_refused_at_its_place_in_poptunes_words() {
    parse(Path::new("exp.toml"), FULL).expect("the full file is good");
    for &(from, to, needle, at) in CHANGES {
        assert!(FULL.contains(from), "{from:?} is not in the file");
        let bad = FULL.replacen(from, &to.replace('§', ""), 1);
        let what = format!("{from:?} -> {to:?}");
        let e = refused(&what, &bad);
        assert!(e.message.contains(needle), "{what}: {needle:?} not in {e}");
        let Some(mark) = to.find('§') else {
            if !at.is_empty() {
                let after = FULL.find(from).unwrap_or(0) + to.len();
                let offset = after
                    + bad[after..]
                        .find(at)
                        .unwrap_or_else(|| panic!("{what}: {at:?} not after the change"));
                assert_eq!((e.line, e.column), place(&bad, offset), "{what}: {e}");
            }
            continue;
        };
        let offset = FULL.find(from).unwrap_or(0) + mark;
        assert_eq!((e.line, e.column), place(&bad, offset), "{what}: {e}");
    }
}

#[test]
fn whole_files_that_are_not_experiments_are_refused_with_a_place() {
    let long = format!("name = \"{}\"", "x".repeat(10_000));
    let big = FULL.replace("name = \"demo\"", &long);
    let deep = format!("a = {}1{}", "[".repeat(5000), "]".repeat(5000));
    let binary = String::from_utf8_lossy(&[0u8, 159, 146, 150, 1, 2, 255, 0, 10, 61]).into_owned();
    let cases: &[(&str, &str, &str)] = &[
        ("empty", "", "empty"),
        ("blank", "\n\n   \n", "empty"),
        ("comments only", "# nothing\n# here\n", "empty"),
        ("a long name", &big, "bytes long"),
        ("deeply nested", &deep, "nested too deeply"),
        ("binary", &binary, "not valid TOML"),
        ("NUL bytes", "\0\0\0", "not valid TOML"),
        ("garbage", "}{][=\"", "TOML"),
        ("only a table", "[stop]\nsteps = 3\n", "needs `name`"),
        ("no space", &FULL[..FULL.find("[space.lr]").unwrap_or(0)], "needs a [space] table"),
        ("an empty space", "name = \"a\"\npopulation = 2\n[space]\n[stop]\nsteps = 3\n[trainable]\ncommand = [\"python3\"]\n", "[space] is empty"),
        ("no stop", "name = \"a\"\npopulation = 2\n[space.x]\ntype = \"fixed\"\nvalue = 1\n[trainable]\ncommand = [\"python3\"]\n", "needs a [stop] table"),
        ("no trainable", "name = \"a\"\npopulation = 2\n[space.x]\ntype = \"fixed\"\nvalue = 1\n[stop]\nsteps = 3\n", "needs a [trainable] table"),
        ("unknown table", "[foo]\nbar = 1\n", "table [foo]"),
        ("a list at the top", "[[name]]\n", "`name` must be"),
    ];
    for (what, text, needle) in cases {
        let e = refused(what, text);
        assert!(e.message.contains(needle), "{what}: {needle:?} not in {e}");
        assert!(
            !e.message.contains(&"x".repeat(100)),
            "{what}: echoes the value: {e}"
        );
    }
}

#[test]
fn load_refuses_what_is_not_a_readable_utf8_file_with_a_place() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let bad_utf8 = dir.path().join("latin1.toml");
    std::fs::write(&bad_utf8, b"name = \"r\xe9seau\"\n").expect("written");
    let cases = [
        (dir.path().join("missing.toml"), "no such file"),
        (dir.path().to_path_buf(), "folder, not an experiment file"),
        (bad_utf8, "not UTF-8"),
    ];
    for (path, needle) in cases {
        let e = load(&path).expect_err("refused");
        let shown = e.to_string();
        assert!(e.line >= 1 && e.column >= 1, "{shown}");
        assert!(shown.contains(needle), "{needle:?} not in {shown}");
        for word in FOREIGN {
            assert!(!shown.contains(word), "{word:?} in {shown}");
        }
    }
    let e = load(&dir.path().join("latin1.toml")).expect_err("refused");
    assert_eq!((e.line, e.column), (1, 10), "at the bad byte: {e}");
}

/// Checks an error's place and words, when `text` is refused at all.
fn refused_well_if_at_all(what: &str, text: &str) {
    if parse(Path::new("exp.toml"), text).is_err() {
        refused(what, text);
    }
}

#[test]
fn every_key_given_every_kind_of_wrong_value_is_refused_in_poptunes_words() {
    const HOSTILE: &[&str] = &[
        "\"x\"",
        "\"\"",
        "0",
        "-1",
        "1.5",
        "nan",
        "inf",
        "-inf",
        "true",
        "[]",
        "[1, \"a\"]",
        "[[1], [2]]",
        "{}",
        "{ a = 1 }",
        "1979-05-27",
        "9223372036854775807",
        "-9223372036854775808",
        "1e308",
        "\"../..\"",
    ];
    let lines: Vec<&str> = FULL.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        for value in HOSTILE {
            let mut changed = lines.clone();
            let new = format!("{key} = {value}");
            changed[i] = &new;
            let text = changed.join("\n");
            refused_well_if_at_all(&format!("line {}: {new}", i + 1), &text);
        }
    }
}

#[test]
fn every_cut_and_every_missing_line_is_refused_in_poptunes_words() {
    let lines: Vec<&str> = FULL.lines().collect();
    for i in 0..lines.len() {
        refused_well_if_at_all(&format!("cut at line {i}"), &lines[..i].join("\n"));
        let mut without = lines.clone();
        without.remove(i);
        refused_well_if_at_all(&format!("without line {}", i + 1), &without.join("\n"));
    }
    for cut in (0..FULL.len()).filter(|c| FULL.is_char_boundary(*c)) {
        refused_well_if_at_all(&format!("cut at byte {cut}"), &FULL[..cut]);
    }
}
