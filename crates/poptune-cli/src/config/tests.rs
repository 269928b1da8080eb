//! The experiment-file parser's tests: good files, and bad ones with their messages.

use std::path::Path;

use poptune::Exploit;

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
    assert_eq!((e.line, e.column), (10, 12), "at the value: {e}");
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
    assert_eq!((e.line, e.column), (28, 12), "at the program: {e}");
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

#[test]
fn a_name_that_is_not_one_folder_name_is_refused() {
    for (name, needle) in [
        (".", "the folder that holds this file"),
        ("..", "the folder above"),
        ("a/b", "without '/'"),
        ("../escape", "without '/'"),
        ("a\\\\b", "without '/'"),
        ("a\\u0000b", "NUL"),
        ("réseau", "ASCII letters"),
    ] {
        let e = err(&GOOD.replace("name = \"demo\"", &format!("name = \"{name}\"")));
        assert!(e.message.contains(needle), "{name}: {e}");
        assert_eq!((e.line, e.column), (2, 8), "{name}: {e}");
    }
    let e = err(&GOOD.replace("\"demo\"", &format!("\"{}\"", "n".repeat(256))));
    assert!(e.message.contains("256 bytes long"), "{e}");
    let e = err(&GOOD.replace("\"demo\"", &format!("\"{}\"", "n".repeat(10_000))));
    assert!(e.message.contains("at most 255"), "{e}");
    assert!(
        e.to_string().len() < 400,
        "the name is not echoed whole: {e}"
    );
    let d = parse(
        Path::new("exp.toml"),
        &GOOD.replace("\"demo\"", &format!("\"{}\"", "n".repeat(255))),
    )
    .unwrap();
    assert_eq!(d.name.len(), 255);
}

#[test]
fn a_directory_that_is_a_file_is_refused_at_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exp.toml");
    std::fs::write(dir.path().join("demo"), "a file").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "a file").unwrap();
    std::fs::write(&file, GOOD).unwrap();
    let e = parse(&file, GOOD).unwrap_err();
    assert!(e.message.contains("is a file, not a folder"), "{e}");
    assert_eq!((e.line, e.column), (2, 8), "at the name: {e}");
    for (directory, needle) in [
        ("notes.txt", "is a file, not a folder"),
        ("notes.txt/sub", "cannot be created"),
        ("exp.toml", "is a file, not a folder"),
        ("", "the path is empty"),
    ] {
        let text = GOOD.replace(
            "seed = 3",
            &format!("seed = 3\ndirectory = \"{directory}\""),
        );
        let e = parse(&file, &text).unwrap_err();
        assert!(e.message.contains(needle), "{directory}: {e}");
        assert_eq!((e.line, e.column), (5, 13), "at the directory: {e}");
    }
    // The file's own folder may hold the experiment, when the file says so.
    let text = GOOD.replace("seed = 3", "seed = 3\ndirectory = \".\"");
    let d = parse(&file, &text).unwrap();
    assert_eq!(d.directory, dir.path().join("."));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 3, "parsing creates nothing");
}

#[test]
fn range_checks_point_at_the_value_not_the_table() {
    let text = GOOD.replace("interval = 5", "burn_in = 0\ninterval = 0");
    let e = err(&text);
    assert_eq!((e.line, e.column), (8, 12), "{e}");
    assert!(e.message.contains("[policy] `interval` = 0"), "{e}");
    let e = err(&GOOD.replace("steps = 20", "steps = 20\nmax_seconds = -1"));
    assert_eq!((e.line, e.column), (26, 15), "{e}");
    let e = err(&GOOD.replace("[trainable]", "[trainable]\nstep_timeout = 0"));
    assert_eq!((e.line, e.column), (28, 16), "{e}");
}

#[test]
fn plateau_faults_each_have_their_own_message() {
    let plateau = |p: &str| GOOD.replace("steps = 20", &format!("steps = 20\nplateau = {p}"));
    let zero = err(&plateau("{ patience = 0 }"));
    let negative = err(&plateau("{ patience = 5, min_delta = -0.5 }"));
    assert_ne!(zero.message, negative.message);
    assert!(zero.message.contains("`patience` = 0"), "{zero}");
    assert!(
        negative.message.contains("`min_delta` = -0.5"),
        "{negative}"
    );
    assert_eq!((zero.line, zero.column), (26, 24), "{zero}");
    assert_eq!((negative.line, negative.column), (26, 39), "{negative}");
    let d = parse(
        Path::new("exp.toml"),
        &GOOD.replace("steps = 20", "steps = 20\n[stop.plateau]\npatience = 4"),
    )
    .unwrap();
    assert_eq!(d.stop.plateau, Some((4, 0.0)));
}

#[test]
fn values_of_mixed_types_are_refused_at_the_odd_one() {
    for (values, needle, column) in [
        ("[16, \"32\", 64]", "element 2 (\"32\") is a string", 15),
        ("[\"relu\", true]", "element 2 (true) is a boolean", 19),
        ("[1, 2.5]", "write every number the same way", 14),
    ] {
        let e = err(&GOOD.replace("[16, 32, 64]", values));
        assert!(e.message.contains(needle), "{values}: {e}");
        assert_eq!((e.line, e.column), (22, column), "{values}: {e}");
    }
    let d = parse(
        Path::new("exp.toml"),
        &GOOD.replace("[16, 32, 64]", "[0.5, 1.0, 2.0]"),
    )
    .unwrap();
    assert_eq!(d.space.len(), 2);
}

#[test]
fn near_miss_keys_are_suggested_in_every_table() {
    for (from, to, suggestion) in [
        (
            "population = 4",
            "populaton = 4",
            "did you mean `population`",
        ),
        ("interval = 5", "intervall = 5", "did you mean `interval`"),
        (
            "fraction = 0.25",
            "fracton = 0.25",
            "did you mean `fraction`",
        ),
        (
            "method = \"perturb\"",
            "metod = \"perturb\"",
            "did you mean `method`",
        ),
        ("log = true", "lgo = true", "did you mean `log`"),
        ("steps = 20", "step = 20", "did you mean `steps`"),
        (
            "[trainable]",
            "[trainable]\ntimeout = 5",
            "did you mean `step_timeout`",
        ),
        (
            "[policy.explore]",
            "[policy.explore]\nfactor = [2.0]",
            "did you mean `factors`",
        ),
        ("[policy]", "[polcy]", "did you mean [policy]"),
        ("[stop]", "[stopp]", "did you mean [stop]"),
        (
            "[trainable]",
            "[trainable]\npopulaton = 3",
            "did you mean `population`",
        ),
    ] {
        let e = err(&GOOD.replace(from, to));
        assert!(e.message.contains(suggestion), "{to}: {e}");
        assert!(!e.message.contains("unknown field"), "{to}: {e}");
    }
}

#[test]
fn the_space_is_required_and_may_not_be_empty() {
    let start = GOOD.find("[space.lr]").unwrap();
    let end = GOOD.find("[stop]").unwrap();
    let without = format!("{}{}", &GOOD[..start], &GOOD[end..]);
    let e = err(&without);
    assert!(e.message.contains("needs a [space] table"), "{e}");
    let e = err(&format!("{}[space]\n{}", &GOOD[..start], &GOOD[end..]));
    assert!(e.message.contains("[space] is empty"), "{e}");
}

#[test]
fn settings_that_no_run_could_reach_are_refused_unless_frozen() {
    let e = err(&GOOD.replace("interval = 5", "interval = 21"));
    assert!(e.message.contains("no member would ever be ready"), "{e}");
    assert_eq!((e.line, e.column), (7, 12), "{e}");
    let frozen = GOOD.replace("interval = 5", "interval = 21\nvariant = \"frozen\"");
    let d = parse(Path::new("exp.toml"), &frozen).unwrap();
    assert_eq!(d.policy.interval, 21);
    let e = err(&GOOD.replace("steps = 20", "steps = 20\nplateau = { patience = 21 }"));
    assert!(e.message.contains("could never fire"), "{e}");
}

#[test]
fn spelled_out_values_are_accepted() {
    let text = GOOD
        .replace("interval = 5", "interval = 5\ninherit = \"weights_only\"")
        .replace("low = 1e-4", "low = 1");
    let d = parse(
        Path::new("exp.toml"),
        &text.replace("high = 1e-1", "high = 10"),
    )
    .unwrap();
    assert_eq!(d.policy.inherit, poptune::Inherit::WeightsOnly);
}

#[test]
fn the_documented_example_parses() {
    let doc = include_str!("../../../../docs/experiment-file.md");
    let start = doc.find("```toml\n").expect("an example") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("its end");
    let d = parse(Path::new("experiment.toml"), &doc[start..end]).unwrap();
    assert_eq!(d.name, "digits");
    assert_eq!(d.space.len(), 5);
    assert_eq!(d.stop.plateau, Some((20, 0.001)));
}

#[test]
fn a_key_under_the_wrong_header_is_told_where_it_belongs() {
    let text = GOOD.replace("name = \"demo\"\n", "") + "name = \"demo\"\n";
    let e = err(&text);
    assert!(e.message.contains("read as part of [trainable]"), "{e}");
    assert!(e.message.contains("belongs to the top level"), "{e}");
    assert_eq!((e.line, e.column), (28, 1), "{e}");
    let e = err(&GOOD
        .replace("steps = 20\n", "")
        .replace("interval = 5", "interval = 5\nsteps = 20"));
    assert!(e.message.contains("it belongs to [stop]"), "{e}");
}

#[test]
fn a_byte_order_mark_and_windows_line_ends_are_read() {
    let text = format!("\u{feff}{}", GOOD.replace('\n', "\r\n"));
    let d = parse(Path::new("exp.toml"), &text).unwrap();
    assert_eq!(d.name, "demo");
    let e = err(&text.replace("population = 4", "population = 0"));
    assert_eq!((e.line, e.column), (3, 14), "{e}");
}
