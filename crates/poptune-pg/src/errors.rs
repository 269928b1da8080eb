//! What a PostgreSQL error says, in words a person can act on, and whether it means the
//! connection is gone.
//!
//! `postgres::Error`'s own `Display` says only "db error", "connection closed" or "invalid
//! configuration"; the server's reason is in [`postgres::Error::as_db_error`] and the cause in
//! its source chain. [`describe`] puts them in one line. No message carries the password:
//! [`redact`] takes it out of any text built from the server's or the driver's words.

use std::error::Error as _;

use postgres::error::SqlState;

/// One line: the server's message (severity, message, detail, hint, SQLSTATE) for an error
/// the server sent, else the driver's words followed by every cause in the source chain.
pub fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!("; detail: {d}"));
        }
        if let Some(h) = db.hint() {
            s.push_str(&format!("; hint: {h}"));
        }
        s.push_str(&format!(" (SQLSTATE {})", db.code().code()));
        return one_line(&s);
    }
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    one_line(&s)
}

fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether `e` means the connection is gone or the server cannot take connections now (it
/// is shutting down, starting up or unreachable): the kind of failure that waiting and
/// reconnecting may cure, as opposed to a refused statement.
pub fn is_connection_error(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::TOO_MANY_CONNECTIONS;
    }
    let mut cause = e.source();
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        cause = c.source();
    }
    // The driver's words for a lost socket or a connect that timed out.
    let s = e.to_string();
    s.starts_with("error communicating with the server")
        || s.starts_with("error connecting to server")
        || s.starts_with("timeout waiting for server")
}

/// `text` with every occurrence of `secret` replaced by `***` (secrets shorter than 3
/// characters would shred the message and are left to the location-only rule).
pub fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(p) if p.len() >= 3 => text.replace(p, "***"),
        _ => text.to_string(),
    }
}

/// The password written in a connection string, if any: `postgres://USER:PASSWORD@…` or
/// `password=…` in the key-value form.
pub fn url_password(url: &str) -> Option<String> {
    if let Some((_, rest)) = url.split_once("://") {
        let auth = rest.split(['/', '?']).next()?;
        let (userinfo, _) = auth.rsplit_once('@')?;
        let (_, pw) = userinfo.split_once(':')?;
        return Some(pw.to_string()).filter(|p| !p.is_empty());
    }
    url.split_whitespace()
        .find_map(|kv| kv.strip_prefix("password="))
        .map(|p| p.trim_matches('\'').to_string())
        .filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_password_of_a_url() {
        assert_eq!(
            url_password("postgres://u:s3cret@h:5/db").as_deref(),
            Some("s3cret")
        );
        assert_eq!(url_password("postgres://u@h/db"), None);
        assert_eq!(
            url_password("host=h password=pw123 user=u").as_deref(),
            Some("pw123")
        );
        assert_eq!(redact("a pw123 b", Some("pw123")), "a *** b");
    }
}
