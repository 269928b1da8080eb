//! Connecting: the URL and the PG environment variables, the connection's settings,
//! reconnecting after the connection was lost, and errors in the server's own words without
//! the password.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use poptune_store::StoreError;
use postgres::{Client, Config, NoTls};

use crate::errors::{self, describe, is_connection_error};
use crate::{migrate, PostgresStore};

/// How long a connection attempt may take when the URL sets no `connect_timeout`: an
/// unreachable server fails the attempt instead of hanging on the network's own timeouts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long sent data may stay unacknowledged when the URL sets no `tcp_user_timeout`: a
/// connection to a server that vanished from the network fails instead of waiting forever.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest `application_name` PostgreSQL keeps (NAMEDATALEN - 1 bytes).
const APPLICATION_NAME_MAX: usize = 63;

/// The connection settings of `url`, completed from the standard PG environment variables;
/// and where it points, without credentials.
pub fn config(url: &str) -> Result<(Config, String), StoreError> {
    let mut cfg = Config::from_str(url).map_err(|e| {
        StoreError::BadAddress(errors::redact(
            &format!(
                "--store: cannot read the URL: {}; write it as \
                 postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
                describe(&e)
            ),
            errors::url_password(url).as_deref(),
        ))
    })?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if cfg.get_hosts().is_empty() {
        cfg.host(env("PGHOST").as_deref().unwrap_or("127.0.0.1"));
    }
    if cfg.get_ports().is_empty() {
        if let Some(p) = env("PGPORT").and_then(|p| p.parse().ok()) {
            cfg.port(p);
        }
    }
    if cfg.get_user().is_none() {
        cfg.user(env("PGUSER").as_deref().unwrap_or("postgres"));
    }
    if cfg.get_password().is_none() {
        if let Some(p) = env("PGPASSWORD") {
            cfg.password(p);
        }
    }
    if cfg.get_dbname().is_none() {
        if let Some(d) = env("PGDATABASE") {
            cfg.dbname(&d);
        }
    }
    let host = match cfg.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "?".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let db = cfg
        .get_dbname()
        .or(cfg.get_user())
        .unwrap_or("postgres")
        .to_string();
    Ok((cfg, format!("{host}:{port}/{db}")))
}

impl PostgresStore {
    /// Connects to the database at `url` (migrating its schema if needed), for experiment
    /// `experiment`.
    ///
    /// The connection is named `poptune EXPERIMENT` (`application_name`, unless the URL sets
    /// one), so that an administrator sees whose it is in `pg_stat_activity`.
    pub fn open(url: &str, experiment: &str) -> Result<Self, StoreError> {
        let (mut cfg, location) = config(url)?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(CONNECT_TIMEOUT);
        }
        if cfg.get_tcp_user_timeout().is_none() {
            cfg.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name(&application_name(experiment));
        }
        let secret = cfg
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .or_else(|| errors::url_password(url));
        let mut client = connect(&cfg, &location, secret.as_deref())?;
        migrate(&mut client, &location).map_err(|e| redact_error(e, secret.as_deref()))?;
        Ok(PostgresStore {
            client: std::sync::Mutex::new(client),
            cfg,
            experiment: experiment.to_string(),
            location,
            secret,
            lost: AtomicBool::new(false),
        })
    }

    /// Whether an error showed that this store's connection is gone (or the server cannot
    /// take it now): then [`reconnect`](Self::reconnect) may cure it, as nothing else will.
    pub fn connection_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
            || self
                .client
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_closed()
    }

    /// Replaces the connection with a new one. A transaction that was under way on the old
    /// one is gone: rolled back, unless its COMMIT had been sent (then it may have landed).
    pub fn reconnect(&self) -> Result<(), StoreError> {
        let fresh = connect(&self.cfg, &self.location, self.secret.as_deref())?;
        *self.client.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.lost.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// A database error as a [`StoreError`] with the server's own words and without the
    /// password; notes when it means the connection is gone.
    pub(crate) fn db(&self, e: postgres::Error) -> StoreError {
        if is_connection_error(&e) {
            self.lost.store(true, Ordering::SeqCst);
        }
        StoreError::Server {
            location: self.location.clone(),
            message: errors::redact(&describe(&e), self.secret.as_deref()),
        }
    }
}

/// `poptune EXPERIMENT`, cut to what PostgreSQL keeps.
fn application_name(experiment: &str) -> String {
    let mut name = format!("poptune {experiment}");
    while name.len() > APPLICATION_NAME_MAX {
        name.pop();
    }
    name
}

/// A new connection with `cfg`; a failure says what the server (or the network) said.
fn connect(cfg: &Config, location: &str, secret: Option<&str>) -> Result<Client, StoreError> {
    cfg.connect(NoTls).map_err(|e| StoreError::Server {
        location: location.to_string(),
        message: errors::redact(
            &format!(
                "cannot connect: {}; check that the server runs and the URL or \
                 PGUSER/PGPASSWORD are right",
                describe(&e)
            ),
            secret,
        ),
    })
}

/// `e` without `secret` in its message.
fn redact_error(e: StoreError, secret: Option<&str>) -> StoreError {
    match e {
        StoreError::Server { location, message } => StoreError::Server {
            location,
            message: errors::redact(&message, secret),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_that_cannot_be_read_is_bad_input_without_its_password() {
        for url in [
            "notaurl",
            "postgres://u:sekrit@127.0.0.1:5/x?bogus=1",
            "postgres://u:sekrit@127.0.0.1:notaport/x",
        ] {
            match config(url) {
                Err(e) => {
                    assert!(e.is_usage(), "{url}: {e}");
                    assert!(e.to_string().contains("--store"), "{url}: {e}");
                    assert!(!e.to_string().contains("sekrit"), "{url}: {e}");
                }
                Ok(_) => panic!("{url} was read"),
            }
        }
    }
}
