//! Reading one table of the file: its keys checked against those it may hold, and each value
//! against what it must be, with messages that name the key and give an example.

use std::ops::Range;

use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

use super::{keys, suggest, ConfigError, Ctx};

/// A value read from the file, and where it is.
#[derive(Debug, Clone)]
pub(super) struct At<T> {
    pub(super) value: T,
    pub(super) span: Range<usize>,
}

/// One table of the file.
pub(super) struct Table<'a> {
    pub(super) cx: &'a Ctx<'a>,
    /// The table's dotted path (`policy.exploit`); empty for the top level.
    path: String,
    entries: &'a DeTable<'a>,
    /// Where the table is: its header, or its inline `{ ... }`, or the file's start.
    pub(super) span: Range<usize>,
}

impl<'a> Table<'a> {
    /// The file's top level.
    pub(super) fn root(cx: &'a Ctx<'a>, doc: &'a Spanned<DeTable<'a>>) -> Self {
        Table {
            cx,
            path: String::new(),
            entries: doc.get_ref(),
            span: 0..0,
        }
    }

    /// How messages name this table: `[policy]`, or "the top level".
    pub(super) fn name(&self) -> String {
        if self.path.is_empty() {
            "the top level".into()
        } else {
            format!("[{}]", super::shorten(&self.path))
        }
    }

    /// How messages name `key` of this table: `` `population` `` or `` [policy] `interval` ``.
    pub(super) fn key(&self, key: &str) -> String {
        let key = super::shorten(key);
        if self.path.is_empty() {
            format!("`{key}`")
        } else {
            format!("[{}] `{key}`", super::shorten(&self.path))
        }
    }

    /// An error at `span`.
    pub(super) fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        self.cx.err(span, message)
    }

    /// An error about the value of `key` at `span`: "`key` = VALUE: why".
    pub(super) fn bad(&self, key: &str, span: &Range<usize>, why: impl AsRef<str>) -> ConfigError {
        let shown = self.cx.shown(span);
        self.err(
            span.clone(),
            format!("{} = {shown}: {}", self.key(key), why.as_ref()),
        )
    }

    /// The entries in the order the file gives them.
    pub(super) fn entries(
        &self,
    ) -> Vec<(
        &'a Spanned<std::borrow::Cow<'a, str>>,
        &'a Spanned<DeValue<'a>>,
    )> {
        let mut all: Vec<_> = self.entries.iter().collect();
        all.sort_by_key(|(k, _)| k.span().start);
        all
    }

    /// Refuses the first key (in file order) that `allowed` does not hold, with a suggestion.
    pub(super) fn check_keys(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        for (k, v) in self.entries() {
            if !allowed.contains(&k.get_ref().as_ref()) {
                let is_table = matches!(v.get_ref(), DeValue::Table(_));
                return Err(self.err(
                    k.span(),
                    suggest::unknown_key(&self.name(), k.get_ref(), is_table, allowed),
                ));
            }
        }
        Ok(())
    }

    /// The raw value of `key`.
    pub(super) fn raw(&self, key: &str) -> Option<&'a Spanned<DeValue<'a>>> {
        self.entries.get(key)
    }

    /// The place of `key` itself (the key, not its value), or the table's.
    pub(super) fn key_span(&self, key: &str) -> Range<usize> {
        self.entries
            .get_key_value(key)
            .map_or(self.span.clone(), |(k, _)| k.span())
    }

    /// The error for a required `key` that is missing: where it belongs when a table below
    /// holds it instead (a key written under the wrong header), else what it is for.
    pub(super) fn missing(&self, key: &str) -> ConfigError {
        if let Some((table, at)) = misplaced(&self.path, self.entries, key, 3) {
            return self.err(
                at,
                format!(
                    "`{key}` is read as part of [{table}], but it belongs to {}: move it above \
                     the [{table}] header (a key below a header belongs to that table)",
                    if self.path.is_empty() {
                        "the top level".to_string()
                    } else {
                        self.name()
                    }
                ),
            );
        }
        let (_, example) = keys::about(key);
        let who = if self.path.is_empty() {
            "the experiment".to_string()
        } else {
            self.name()
        };
        let what = if matches!(key, "space" | "stop" | "trainable") {
            format!("a [{key}] table")
        } else {
            format!("`{key}`")
        };
        self.err(
            self.span.clone(),
            format!(
                "{who} needs {what}, {} (e.g. {example})",
                keys::purpose(key)
            ),
        )
    }

    /// The error for `key`'s value `v`, which is not `want`.
    pub(super) fn wrong_type(
        &self,
        key: &str,
        v: &Spanned<DeValue<'_>>,
        want: &str,
        example: &str,
    ) -> ConfigError {
        let found = describe(self.cx, v);
        let hint = match v.get_ref() {
            DeValue::String(s)
                if (want.contains("number") || want.contains("true or false"))
                    && (s.trim().parse::<f64>().is_ok()
                        || matches!(s.trim(), "true" | "false")) =>
            {
                " (remove the quotes)"
            }
            _ => "",
        };
        self.err(
            v.span(),
            format!(
                "{} must be {want}, e.g. {example}; found {found}{hint}",
                self.key(key)
            ),
        )
    }

    /// `key`'s value as a string, if given.
    pub(super) fn string(&self, key: &str) -> Result<Option<At<String>>, ConfigError> {
        let Some(v) = self.raw(key) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::String(s) => Ok(Some(At {
                value: s.to_string(),
                span: v.span(),
            })),
            _ => {
                let (want, example) = keys::about(key);
                Err(self.wrong_type(key, v, want, example))
            }
        }
    }

    /// `key`'s value as a boolean, if given.
    pub(super) fn boolean(&self, key: &str) -> Result<Option<At<bool>>, ConfigError> {
        let Some(v) = self.raw(key) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(Some(At {
                value: *b,
                span: v.span(),
            })),
            _ => {
                let (want, example) = keys::about(key);
                Err(self.wrong_type(key, v, want, example))
            }
        }
    }

    /// `key`'s value as a whole number, if given; `want` and `example` describe it.
    pub(super) fn int_as(
        &self,
        key: &str,
        want: &str,
        example: &str,
    ) -> Result<Option<At<i64>>, ConfigError> {
        let Some(v) = self.raw(key) else {
            return Ok(None);
        };
        match integer(v.get_ref()) {
            Some(Ok(i)) => Ok(Some(At {
                value: i,
                span: v.span(),
            })),
            Some(Err(())) => Err(self.bad(
                key,
                &v.span(),
                format!("this number is too large; give {want}, e.g. {example}"),
            )),
            None => Err(self.wrong_type(key, v, want, example)),
        }
    }

    /// `key`'s value as a whole number, if given.
    pub(super) fn int(&self, key: &str) -> Result<Option<At<i64>>, ConfigError> {
        let (want, example) = keys::about(key);
        self.int_as(key, want, example)
    }

    /// `key`'s value as a finite number (a whole number is taken as one), if given.
    pub(super) fn float(&self, key: &str) -> Result<Option<At<f64>>, ConfigError> {
        let (want, example) = keys::about(key);
        let Some(v) = self.raw(key) else {
            return Ok(None);
        };
        match number(v.get_ref()) {
            Some(Ok(x)) if x.is_finite() => Ok(Some(At {
                value: x,
                span: v.span(),
            })),
            Some(_) => Err(self.bad(
                key,
                &v.span(),
                format!("not a finite number; give {want}, e.g. {example}"),
            )),
            None => Err(self.wrong_type(key, v, want, example)),
        }
    }

    /// `key`'s value, one of the words `options` names, if given.
    pub(super) fn word<T: Copy>(
        &self,
        key: &str,
        options: &[(&str, T)],
    ) -> Result<Option<At<T>>, ConfigError> {
        let Some(s) = self.string(key)? else {
            return Ok(None);
        };
        if let Some((_, t)) = options.iter().find(|(w, _)| *w == s.value) {
            return Ok(Some(At {
                value: *t,
                span: s.span,
            }));
        }
        let (want, example) = keys::about(key);
        let words: Vec<&str> = options.iter().map(|(w, _)| *w).collect();
        let near = match suggest::closest(&s.value, &words) {
            Some(w) => format!("did you mean \"{w}\"? "),
            None => String::new(),
        };
        Err(self.bad(key, &s.span, format!("{near}give {want}, e.g. {example}")))
    }

    /// The table under `key`, if given; its keys are checked against `allowed`.
    pub(super) fn table(
        &self,
        key: &str,
        allowed: &[&str],
    ) -> Result<Option<Table<'a>>, ConfigError> {
        let Some(v) = self.raw(key) else {
            return Ok(None);
        };
        let t = self.sub_table(key, v)?;
        t.check_keys(allowed)?;
        Ok(Some(t))
    }

    /// `v`, the value of `key`, as a table (its keys not checked).
    pub(super) fn sub_table(
        &self,
        key: &str,
        v: &'a Spanned<DeValue<'a>>,
    ) -> Result<Table<'a>, ConfigError> {
        let path = if self.path.is_empty() {
            bare(key)
        } else {
            format!("{}.{}", self.path, bare(key))
        };
        match v.get_ref() {
            DeValue::Table(entries) => Ok(Table {
                cx: self.cx,
                path,
                entries,
                span: v.span(),
            }),
            DeValue::Array(a) if a.iter().all(|e| e.get_ref().is_table()) && !a.is_empty() => {
                Err(self.err(
                    v.span(),
                    format!("[{path}] must be one table: write [{path}], not [[{path}]]"),
                ))
            }
            _ => {
                let (want, example) = keys::about(key);
                Err(self.wrong_type(key, v, want, example))
            }
        }
    }

    /// `key`'s value as a list, if given.
    pub(super) fn array(&self, key: &str) -> Result<Option<At<&'a DeArray<'a>>>, ConfigError> {
        let Some(v) = self.raw(key) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Array(a) => Ok(Some(At {
                value: a,
                span: v.span(),
            })),
            _ => {
                let (want, example) = keys::about(key);
                Err(self.wrong_type(key, v, want, example))
            }
        }
    }

    /// An error about element `i` (from 0) of the list under `key`.
    pub(super) fn bad_element(
        &self,
        key: &str,
        i: usize,
        e: &Spanned<DeValue<'_>>,
        why: impl AsRef<str>,
    ) -> ConfigError {
        self.err(
            e.span(),
            format!(
                "{}: element {} ({}) {}",
                self.key(key),
                i + 1,
                self.cx.shown(&e.span()),
                why.as_ref()
            ),
        )
    }
}

/// A table below `entries` (at most `depth` levels down) that holds `key`: its path, and
/// where the key is.
fn misplaced(
    path: &str,
    entries: &DeTable<'_>,
    key: &str,
    depth: usize,
) -> Option<(String, Range<usize>)> {
    if depth == 0 {
        return None;
    }
    let mut tables: Vec<_> = entries
        .iter()
        .filter_map(|(k, v)| match v.get_ref() {
            DeValue::Table(t) => Some((k, t)),
            _ => None,
        })
        .collect();
    tables.sort_by_key(|(k, _)| k.span().start);
    for (k, t) in tables {
        let sub = if path.is_empty() {
            bare(k.get_ref())
        } else {
            format!("{path}.{}", bare(k.get_ref()))
        };
        if let Some((found, v)) = t.get_key_value(key) {
            if !v.get_ref().is_table() {
                return Some((sub, found.span()));
            }
        }
        if let Some(hit) = misplaced(&sub, t, key, depth - 1) {
            return Some(hit);
        }
    }
    None
}

/// `key` as a table header writes it: bare when it can be, else quoted.
fn bare(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// A whole number: `Some(Ok)`, too large for 64 bits: `Some(Err)`, not an integer: `None`.
pub(super) fn integer(v: &DeValue<'_>) -> Option<Result<i64, ()>> {
    match v {
        DeValue::Integer(i) => Some(i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| ())),
        _ => None,
    }
}

/// A number (integers taken as floats): `None` when `v` is not a number.
pub(super) fn number(v: &DeValue<'_>) -> Option<Result<f64, ()>> {
    match v {
        DeValue::Integer(_) => integer(v).map(|r| r.map(|i| i as f64)),
        DeValue::Float(f) => {
            let s = f.as_str();
            Some(if s.contains("nan") {
                Ok(f64::NAN)
            } else {
                s.parse::<f64>().map_err(|_| ())
            })
        }
        _ => None,
    }
}

/// What `v` is, in words, as written: `the string "5"`, `a list`.
pub(super) fn describe(cx: &Ctx<'_>, v: &Spanned<DeValue<'_>>) -> String {
    let shown = cx.shown(&v.span());
    match v.get_ref() {
        DeValue::String(_) => format!("the string {shown}"),
        DeValue::Integer(_) => format!("the whole number {shown}"),
        DeValue::Float(_) => format!("the number {shown}"),
        DeValue::Boolean(_) => format!("{shown}, a boolean"),
        DeValue::Datetime(_) => format!("the date {shown}"),
        DeValue::Array(_) => "a list".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}
