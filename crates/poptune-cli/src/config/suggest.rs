//! "Did you mean ...?": the known word nearest to a misspelt one.

use super::keys;

/// The number of single-character insertions, deletions, substitutions and swaps of two
/// neighbours that turn `a` into `b` (the optimal string alignment distance).
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// A word compared without case, with `-` and `_` the same.
fn fold(word: &str) -> String {
    word.to_lowercase().replace('-', "_")
}

/// The candidate `word` most likely misspells: the nearest within a third of its length (at
/// least one edit), or else one that contains it or that it contains (`timeout`,
/// `step_timeout`).
pub(super) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let w = fold(word);
    let mut best: Option<(usize, &'a str)> = None;
    for &c in candidates {
        let c_fold = fold(c);
        let d = edit_distance(&w, &c_fold);
        let limit = (w.chars().count().max(c_fold.chars().count()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    if let Some((_, c)) = best {
        return Some(c);
    }
    let long_enough = |s: &str| s.chars().count() >= 3;
    candidates.iter().copied().find(|c| {
        let c_fold = fold(c);
        long_enough(&w) && long_enough(&c_fold) && (c_fold.contains(&w) || w.contains(&c_fold))
    })
}

/// How messages name the table `key` inside `table` (as messages name it): `[policy.exploit]`.
fn table_name(table: &str, key: &str) -> String {
    match table.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        Some(parent) => format!("[{parent}.{key}]"),
        None => format!("[{key}]"),
    }
}

/// The message for `key`, which `table` (as messages name it) does not hold: what it may
/// have meant, or where the key belongs, or which keys the table holds.
pub(super) fn unknown_key(table: &str, key: &str, is_table: bool, allowed: &[&str]) -> String {
    let short = super::shorten(key);
    let key = short.as_str();
    let shown = if is_table {
        format!("table {}", table_name(table, key))
    } else {
        format!("key `{key}`")
    };
    let here = if table == "the top level" {
        "at the top level".to_string()
    } else {
        format!("in {table}")
    };
    if let Some(near) = closest(key, allowed) {
        let near = if matches!(
            near,
            "policy" | "space" | "stop" | "trainable" | "exploit" | "explore"
        ) {
            table_name(table, near)
        } else {
            format!("`{near}` (e.g. {})", keys::about(near).1)
        };
        return format!("unknown {shown} {here}: did you mean {near}?");
    }
    if let Some((home, _)) = keys::TABLES
        .iter()
        .find(|(name, ks)| *name != table && ks.contains(&key))
    {
        let fix = if *home == "the top level" {
            "move it above the first [table] header (a key below a header belongs to that table)"
                .to_string()
        } else {
            format!("move it under the {home} header")
        };
        return format!("{shown} does not belong {here}; it belongs to {home}: {fix}");
    }
    if let Some((home, near)) = keys::TABLES
        .iter()
        .filter(|(name, _)| *name != table)
        .find_map(|(name, ks)| closest(key, ks).map(|near| (name, near)))
    {
        return format!(
            "unknown {shown} {here}: did you mean `{near}` (e.g. {})? It belongs to {home}",
            keys::about(near).1
        );
    }
    format!(
        "unknown {shown} {here}: remove it, or use one of {} (see docs/experiment-file.md)",
        allowed
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("populaton", "population"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("stpo", "stop"), 1);
    }

    #[test]
    fn near_misses_find_the_key() {
        assert_eq!(closest("populaton", keys::TOP), Some("population"));
        assert_eq!(closest("factor", keys::EXPLORE), Some("factors"));
        assert_eq!(closest("timeout", keys::TRAINABLE), Some("step_timeout"));
        assert_eq!(closest("burn-in", keys::POLICY), Some("burn_in"));
        assert_eq!(closest("Population", keys::TOP), Some("population"));
        assert_eq!(closest("polcy", keys::TOP), Some("policy"));
        assert_eq!(closest("zzzzzz", keys::TOP), None);
        let m = unknown_key("[policy]", "populaton", false, keys::POLICY);
        assert!(m.contains("did you mean `population`"), "{m}");
        assert!(m.contains("belongs to the top level"), "{m}");
    }
}
