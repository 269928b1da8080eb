//! `[trainable]`: the program that trains a member, where it runs, and its limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use poptune::TrainableDef;
use toml::de::DeValue;

use super::keys::{self, MAX_SECONDS};
use super::read::{At, Table};
use super::top::check_path_text;
use super::ConfigError;

/// Reads `[trainable]`: a startable command, limits, and a working directory under `base`.
pub(super) fn read(root: &Table<'_>, base: &Path) -> Result<TrainableDef, ConfigError> {
    let Some(t) = root.table("trainable", keys::TRAINABLE)? else {
        return Err(root.missing("trainable"));
    };
    let command = read_command(&t)?;
    let cwd = match t.string("cwd")? {
        Some(c) => {
            check_path_text(&t, "cwd", &c)?;
            let cwd = base.join(&c.value);
            if !cwd.is_dir() {
                return Err(t.bad(
                    "cwd",
                    &c.span,
                    format!(
                        "{} is not a folder; give an existing folder, or leave `cwd` out for this file's folder",
                        cwd.display()
                    ),
                ));
            }
            cwd
        }
        None => base.to_path_buf(),
    };
    let env = read_env(&t)?;
    let step_timeout = match t.float("step_timeout")? {
        Some(s) if s.value <= 0.0 => {
            return Err(t.bad(
                "step_timeout",
                &s.span,
                "a time limit is a positive number of seconds, e.g. step_timeout = 60",
            ))
        }
        Some(s) if s.value > MAX_SECONDS => {
            return Err(t.bad(
                "step_timeout",
                &s.span,
                format!("longer than poptune waits (at most {MAX_SECONDS:e} seconds); e.g. step_timeout = 600"),
            ))
        }
        Some(s) => s.value,
        None => 600.0,
    };
    let max_failures = match t.int("max_failures")? {
        Some(m) => u32::try_from(m.value).map_err(|_| {
            t.bad(
                "max_failures",
                &m.span,
                format!(
                    "faults in a row are counted from 0 to {}; e.g. max_failures = 3",
                    u32::MAX
                ),
            )
        })?,
        None => 3,
    };
    let devices = super::devices::read(&t)?;
    let program = &command.value[0];
    if let Err(why) = find_program(&program.value, &cwd, &env) {
        return Err(t.err(program.span.clone(), format!("[trainable] command: {why}")));
    }
    Ok(TrainableDef {
        command: command.value.into_iter().map(|a| a.value).collect(),
        cwd,
        env,
        step_timeout,
        max_failures,
        gpus_per_slot: devices.gpus_per_slot,
        devices: devices.devices,
    })
}

/// `command`: a non-empty list of strings, the first one naming a program.
fn read_command(t: &Table<'_>) -> Result<At<Vec<At<String>>>, ConfigError> {
    let list = t.array("command")?.ok_or_else(|| t.missing("command"))?;
    let example = "command = [\"python3\", \"train.py\"]";
    if list.value.is_empty() {
        return Err(t.err(
            list.span.clone(),
            format!(
                "[trainable] command is empty: give the program and its arguments, e.g. {example}"
            ),
        ));
    }
    let mut args = Vec::new();
    for (i, e) in list.value.iter().enumerate() {
        let DeValue::String(s) = e.get_ref() else {
            return Err(t.bad_element(
                "command",
                i,
                e,
                format!("is not a string: write each argument in quotes, e.g. {example}"),
            ));
        };
        if s.contains('\0') {
            return Err(t.bad_element("command", i, e, "holds NUL, which no program can be given"));
        }
        if i == 0 && s.trim().is_empty() {
            return Err(t.bad_element(
                "command",
                i,
                e,
                format!("is empty: the first element names the program, e.g. {example}"),
            ));
        }
        args.push(At {
            value: s.to_string(),
            span: e.span(),
        });
    }
    Ok(At {
        value: args,
        span: list.span,
    })
}

/// `env`: a table of variable names to strings.
fn read_env(t: &Table<'_>) -> Result<BTreeMap<String, String>, ConfigError> {
    let Some(v) = t.raw("env") else {
        return Ok(BTreeMap::new());
    };
    let e = t.sub_table("env", v)?;
    let mut env = BTreeMap::new();
    for (k, v) in e.entries() {
        let name = k.get_ref().as_ref();
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(e.err(
                k.span(),
                format!(
                    "[trainable] env: {name:?} cannot name an environment variable (no '=', no NUL, not empty); e.g. env = {{ OMP_NUM_THREADS = \"1\" }}"
                ),
            ));
        }
        match v.get_ref() {
            DeValue::String(s) if !s.contains('\0') => {
                env.insert(name.to_string(), s.to_string());
            }
            DeValue::String(_) => {
                return Err(e.bad(name, &v.span(), "an environment variable cannot hold NUL"))
            }
            _ => {
                return Err(e.wrong_type(
                    name,
                    v,
                    "a string",
                    &format!("{name} = \"1\" (in quotes, even for numbers)"),
                ))
            }
        }
    }
    Ok(env)
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
        return Err(format!(
            "the program {} {why}",
            super::shorten(&path.display().to_string())
        ));
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
        "the program `{}` is not in PATH; install it, or give its full path",
        super::shorten(program)
    ))
}
