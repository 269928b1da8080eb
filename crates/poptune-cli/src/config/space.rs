//! `[space.NAME]`: one table per hyperparameter.

use poptune::{Param, Space, Value};
use toml::de::DeValue;
use toml::Spanned;

use super::keys::{self, MAX_INT};
use super::read::{integer, number, At, Table};
use super::ConfigError;

/// The search space: every `[space.NAME]` table, each checked. `[space]` is required.
pub(super) fn read(root: &Table<'_>) -> Result<Space, ConfigError> {
    let Some(v) = root.raw("space") else {
        return Err(root.missing("space"));
    };
    let t = root.sub_table("space", v)?;
    let entries = t.entries();
    if entries.is_empty() {
        return Err(t.err(
            t.span.clone(),
            "[space] is empty: add at least one hyperparameter, e.g. [space.lr] type = \"float\", low = 1e-4, high = 1.0",
        ));
    }
    let mut space = Space::new();
    for (k, v) in entries {
        let name = k.get_ref().as_ref();
        if name.trim().is_empty() {
            return Err(t.err(
                k.span(),
                "a hyperparameter needs a name: write [space.NAME], e.g. [space.lr]",
            ));
        }
        if !v.get_ref().is_table() && !v.get_ref().is_array() {
            return Err(t.err(
                v.span(),
                format!(
                    "[space] `{name}` must be a table describing the hyperparameter, e.g. \
                     [space.{name}] type = \"float\", low = 1e-4, high = 1.0; found {}",
                    super::read::describe(t.cx, v)
                ),
            ));
        }
        let p = t.sub_table(name, v)?;
        let param = read_param(&p)?;
        param
            .validate(name)
            .map_err(|e| p.err(p.span.clone(), format!("{}: {e}", p.name())))?;
        space.insert(name, param);
    }
    Ok(space)
}

/// One hyperparameter's table.
fn read_param(p: &Table<'_>) -> Result<Param, ConfigError> {
    let types = [
        ("float", "float"),
        ("int", "int"),
        ("ordered", "ordered"),
        ("choice", "choice"),
        ("fixed", "fixed"),
    ];
    p.check_keys(keys::PARAM)?;
    let Some(kind) = p.word("type", &types)? else {
        return Err(p.missing("type"));
    };
    let takes: &[&str] = match kind.value {
        "float" | "int" => &["type", "low", "high", "log"],
        "fixed" => &["type", "value"],
        _ => &["type", "values"],
    };
    if let Some((k, _)) = p
        .entries()
        .into_iter()
        .find(|(k, _)| !takes.contains(&k.get_ref().as_ref()))
    {
        return Err(p.err(
            k.span(),
            format!(
                "{} does not apply to type = \"{}\", which takes {}; remove it",
                p.key(k.get_ref()),
                kind.value,
                takes[1..]
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    match kind.value {
        "float" => read_float(p),
        "int" => read_int(p),
        "fixed" => {
            let Some(v) = p.raw("value") else {
                return Err(p.missing("value"));
            };
            Ok(Param::Fixed {
                value: scalar(p, v)
                    .map_err(|why| p.bad("value", &v.span(), format!("{why}, e.g. value = 1")))?,
            })
        }
        ordered_or_choice => {
            let values = read_values(p)?;
            Ok(if ordered_or_choice == "ordered" {
                Param::Ordered { values }
            } else {
                Param::Choice { values }
            })
        }
    }
}

/// A float range: `low` < `high`, both finite, and `low` > 0 on a log scale.
fn read_float(p: &Table<'_>) -> Result<Param, ConfigError> {
    let low = p.float("low")?.ok_or_else(|| p.missing("low"))?;
    let high = p.float("high")?.ok_or_else(|| p.missing("high"))?;
    let log = p.boolean("log")?.is_some_and(|l| l.value);
    check_order(p, &low, &high)?;
    if !(high.value - low.value).is_finite() {
        return Err(p.bad(
            "high",
            &high.span,
            format!(
                "the range from low = {} is too wide to draw from; give bounds closer together",
                p.cx.shown(&low.span)
            ),
        ));
    }
    if log && low.value <= 0.0 {
        return Err(p.bad(
            "low",
            &low.span,
            "a log-uniform range needs low > 0; use a positive lower bound such as low = 1e-6, or log = false",
        ));
    }
    Ok(Param::Float {
        low: low.value,
        high: high.value,
        log,
    })
}

/// An integer range: whole numbers within ±2^53, `low` < `high`, `low` >= 1 on a log scale.
fn read_int(p: &Table<'_>) -> Result<Param, ConfigError> {
    let bound = |key: &str, example: &str| -> Result<At<i64>, ConfigError> {
        let b = p
            .int_as(key, "a whole number", example)?
            .ok_or_else(|| p.missing(key))?;
        if !(-MAX_INT..=MAX_INT).contains(&b.value) {
            return Err(p.bad(
                key,
                &b.span,
                format!("integer bounds lie within -{MAX_INT} and {MAX_INT} (every value must stay exact in JSON); e.g. {example}"),
            ));
        }
        Ok(b)
    };
    let low = bound("low", "low = 1")?;
    let high = bound("high", "high = 8")?;
    let log = p.boolean("log")?.is_some_and(|l| l.value);
    check_order(p, &low, &high)?;
    if log && low.value < 1 {
        return Err(p.bad(
            "low",
            &low.span,
            "a log-uniform integer range needs low >= 1, e.g. low = 1, or log = false",
        ));
    }
    Ok(Param::Int {
        low: low.value,
        high: high.value,
        log,
    })
}

/// Refuses `low` >= `high`, located at `low`.
fn check_order<T: PartialOrd + std::fmt::Display>(
    p: &Table<'_>,
    low: &At<T>,
    high: &At<T>,
) -> Result<(), ConfigError> {
    if low.value >= high.value {
        let fix = if low.value == high.value {
            "for a value that never changes, use type = \"fixed\""
        } else {
            "swap them"
        };
        return Err(p.bad(
            "low",
            &low.span,
            format!(
                "low ({}) must be smaller than high ({}); {fix}",
                low.value, high.value
            ),
        ));
    }
    Ok(())
}

/// The kind of a value, for mixed-type lists.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "a boolean",
        Value::Int(_) => "a whole number",
        Value::Float(_) => "a decimal number",
        Value::Str(_) => "a string",
    }
}

/// `values`: a non-empty list of scalars, all of one kind, each listed once.
fn read_values(p: &Table<'_>) -> Result<Vec<Value>, ConfigError> {
    let list = p.array("values")?.ok_or_else(|| p.missing("values"))?;
    if list.value.is_empty() {
        return Err(p.bad(
            "values",
            &list.span,
            "the list of values is empty; give at least one value, e.g. values = [16, 32, 64]",
        ));
    }
    let mut values: Vec<Value> = Vec::new();
    for (i, e) in list.value.iter().enumerate() {
        let v = scalar(p, e)
            .map_err(|why| p.bad_element("values", i, e, format!("is not allowed: {why}")))?;
        if let Some(first) = values.first() {
            if kind(first) != kind(&v) {
                let fix = if matches!(first, Value::Int(_) | Value::Float(_))
                    && matches!(v, Value::Int(_) | Value::Float(_))
                {
                    "write every number the same way, e.g. values = [0.5, 1.0, 2.0]"
                } else {
                    "a list of mixed types is almost surely a typo; e.g. values = [16, 32, 64] or values = [\"relu\", \"tanh\"]"
                };
                return Err(p.bad_element(
                    "values",
                    i,
                    e,
                    format!("is {} but element 1 is {}: {fix}", kind(&v), kind(first)),
                ));
            }
        }
        if let Some(j) = values.iter().position(|w| *w == v) {
            return Err(p.bad_element(
                "values",
                i,
                e,
                format!(
                    "repeats an earlier one: value {v} is listed twice (at positions {} and {}); list each value once",
                    j + 1,
                    i + 1
                ),
            ));
        }
        values.push(v);
    }
    Ok(values)
}

/// One value of a hyperparameter: a number, a string or a boolean; the reason otherwise.
fn scalar(p: &Table<'_>, v: &Spanned<DeValue<'_>>) -> Result<Value, String> {
    let what = "a value is a number, a string or a boolean";
    match v.get_ref() {
        DeValue::String(s) => Ok(Value::Str(s.to_string())),
        DeValue::Boolean(b) => Ok(Value::Bool(*b)),
        DeValue::Integer(_) => match integer(v.get_ref()) {
            Some(Ok(i)) => Ok(Value::Int(i)),
            _ => Err("this number is too large".into()),
        },
        DeValue::Float(_) => match number(v.get_ref()) {
            Some(Ok(x)) if x.is_finite() => Ok(Value::Float(x)),
            _ => Err("values must be finite numbers".into()),
        },
        _ => Err(format!("{what}, not {}", super::read::describe(p.cx, v))),
    }
}
