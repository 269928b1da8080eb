//! Requests: who may ask (the token, the Host header), what may be asked (a few fixed routes,
//! GET only), and the answers.
//!
//! Routes:
//! - `GET /`: the page (an experiment is picked in the page: `/?experiment=ID`);
//! - `GET /api/experiments`: every experiment's name, status, progress and best score;
//! - `GET /api/experiment/ID/updates?gen=G&steps_after=N&events_after=M&faults_after=K&members_after=V`:
//!   what is new after the client's cursor (everything, if `gen` is not the server's).

use serde_json::{json, Value};
use tiny_http::{Header, Method, Request, Response};

use crate::data::Cursor;
use crate::server::State;
use crate::token;

/// A URL's query: its (key, value) pairs, decoded.
type Query = Vec<(String, String)>;

/// The header an API call may carry the token in (the page's URL carries it as `?token=`).
pub const TOKEN_HEADER: &str = "X-Poptune-Token";

/// The answer to one request.
pub(crate) struct Answer {
    status: u16,
    kind: &'static str,
    body: String,
}

impl Answer {
    fn json(status: u16, v: &Value) -> Self {
        Answer {
            status,
            kind: "application/json; charset=utf-8",
            body: v.to_string(),
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Self {
        Answer::json(status, &json!({ "error": message.into() }))
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// Answers `req`.
pub(crate) fn handle(state: &State, req: Request) {
    let a = answer(state, &req);
    let mut resp = Response::from_string(a.body).with_status_code(a.status);
    let headers = [
        ("Content-Type", a.kind),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        (
            "Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'",
        ),
    ];
    for (k, v) in headers {
        if let Some(h) = header(k, v) {
            resp.add_header(h);
        }
    }
    // The client may have gone; nothing to do about it.
    let _ = req.respond(resp);
}

fn request_header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Whether a Host header names this machine's loopback (any port): on a loopback server
/// without a token, a page of another site that a DNS name points here gets nothing.
fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(n, _)| n)
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

pub(crate) fn answer(state: &State, req: &Request) -> Answer {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return Answer::error(405, "the dashboard only reads: GET");
    }
    let Some((path, query)) = split_url(req.url()) else {
        return Answer::error(400, "malformed URL");
    };
    match &state.token {
        Some(expected) => {
            let given = query_value(&query, "token")
                .or_else(|| request_header(req, TOKEN_HEADER).map(str::to_string));
            match given {
                None => {
                    return Answer::error(
                        401,
                        "this dashboard needs its access token: open the URL it printed",
                    )
                }
                Some(g) if !token::matches(expected, &g) => {
                    return Answer::error(403, "wrong access token")
                }
                Some(_) => {}
            }
        }
        None => {
            if state.loopback && !request_header(req, "Host").is_some_and(loopback_host) {
                return Answer::error(403, "this dashboard answers requests for localhost only");
            }
        }
    }
    route(state, &path, &query)
}

fn route(state: &State, path: &[String], query: &[(String, String)]) -> Answer {
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    match parts.as_slice() {
        [] | ["index.html"] => Answer {
            status: 200,
            kind: "text/html; charset=utf-8",
            body: crate::page::html(None),
        },
        ["favicon.ico"] => Answer {
            status: 204,
            kind: "text/plain",
            body: String::new(),
        },
        ["api", "experiments"] => match state.listing() {
            Ok(v) => Answer::json(200, &v),
            Err(e) => Answer::error(500, e.to_string()),
        },
        ["api", "experiment", id, "updates"] => {
            let cursor = match cursor(query) {
                Ok(c) => c,
                Err(e) => return Answer::error(400, e),
            };
            match state.update(id, &cursor) {
                Ok(Some(v)) => Answer::json(200, &v),
                Ok(None) => Answer::error(404, format!("no experiment `{id}` here")),
                Err(e) => Answer::error(500, e.to_string()),
            }
        }
        _ => Answer::error(404, "no such page"),
    }
}

fn cursor(query: &[(String, String)]) -> Result<Cursor, String> {
    let num = |k: &str| -> Result<u64, String> {
        match query_value(query, k) {
            None => Ok(0),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| format!("`{k}` must be a whole number, not `{v}`")),
        }
    };
    let size = |k: &str| num(k).and_then(|n| usize::try_from(n).map_err(|e| e.to_string()));
    Ok(Cursor {
        gen: query_value(query, "gen").unwrap_or_default(),
        steps: size("steps_after")?,
        events: size("events_after")?,
        faults: size("faults_after")?,
        members: num("members_after")?,
    })
}

fn query_value(query: &[(String, String)], key: &str) -> Option<String> {
    query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// The URL's path segments and query pairs, percent-decoded; `None` if it is malformed (bad
/// escapes, not UTF-8, `.` or `..` segments, or a segment holding a slash once decoded).
pub(crate) fn split_url(url: &str) -> Option<(Vec<String>, Query)> {
    if url.len() > 4096 || !url.starts_with('/') {
        return None;
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut segments = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let s = decode(raw)?;
        if s == "." || s == ".." || s.contains(['/', '\\', '\0']) {
            return None;
        }
        segments.push(s);
    }
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        pairs.push((decode(k)?, decode(v)?));
    }
    Some((segments, pairs))
}

fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_decoded_and_traversal_is_refused() {
        let (p, q) = split_url("/api/experiment/my%20run/updates?steps_after=3&gen=ab").unwrap();
        assert_eq!(p, vec!["api", "experiment", "my run", "updates"]);
        assert_eq!(query_value(&q, "steps_after").as_deref(), Some("3"));
        assert!(split_url("/api/experiment/../updates").is_none());
        assert!(split_url("/api/experiment/a%2F..%2Fb/updates").is_none());
        assert!(split_url("/api/experiment/%2e%2e/updates").is_none());
        assert!(split_url("/bad%zz").is_none());
        assert!(split_url("/bad%ff%fe").is_none());
        assert!(split_url("relative").is_none());
    }

    #[test]
    fn cursors_refuse_what_is_not_a_number() {
        let q = |s: &str| split_url(s).unwrap().1;
        assert_eq!(cursor(&q("/?steps_after=5")).unwrap().steps, 5);
        assert!(cursor(&q("/?steps_after=-1")).is_err());
        assert!(cursor(&q("/?events_after=1e3")).is_err());
        assert_eq!(cursor(&q("/")).unwrap(), Cursor::default());
    }

    #[test]
    fn only_loopback_hosts_pass() {
        for h in ["localhost:8080", "127.0.0.1", "[::1]:80", "localhost"] {
            assert!(loopback_host(h), "{h}");
        }
        for h in ["evil.example:8080", "127.0.0.1.evil", "[::2]:80", ""] {
            assert!(!loopback_host(h), "{h}");
        }
    }
}
