//! The PostgreSQL backend of poptune's [`Store`]: experiments live in one database that
//! workers on any machine reach with a URL.
//!
//! One database holds any number of experiments (every table is keyed by the experiment's
//! name). The schema is created and upgraded by versioned migrations ([`MIGRATIONS`]), applied
//! under an advisory lock so that workers starting together do not race. Credentials come
//! from the URL or the standard `PGUSER`, `PGPASSWORD`, `PGHOST`, `PGPORT` and `PGDATABASE`
//! variables, and are never printed: errors name the server as `host:port/database`.

use std::sync::atomic::AtomicBool;

use poptune::{Event, Hyperparams};
mod connect;
mod errors;
mod leases;

pub use connect::config;

pub use errors::{describe, is_connection_error};
pub use leases::{Ready, ReadyView, TidyView};

use poptune_store::{
    metrics_from_json, metrics_json, CheckpointRow, Commit, FaultRow, MemberRow, RunStatus,
    StepRow, Store, StoreError, Tally,
};
use postgres::{Client, Config, Transaction};

/// The schema's migrations, in order: (version, SQL). A database at a higher version than the
/// last one here was written by a newer poptune and is refused.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE poptune_experiments (
        name TEXT PRIMARY KEY, definition TEXT NOT NULL, status TEXT NOT NULL,
        elapsed DOUBLE PRECISION NOT NULL DEFAULT 0,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now());
     CREATE TABLE poptune_members (
        experiment TEXT NOT NULL REFERENCES poptune_experiments (name) ON DELETE CASCADE,
        id INTEGER NOT NULL, h TEXT NOT NULL, step BIGINT NOT NULL,
        score DOUBLE PRECISION, recent TEXT NOT NULL, checkpoint TEXT,
        decisions BIGINT NOT NULL, failures INTEGER NOT NULL, done BOOLEAN NOT NULL,
        lease_owner TEXT, lease_until TIMESTAMPTZ,
        PRIMARY KEY (experiment, id));
     CREATE TABLE poptune_steps (
        experiment TEXT NOT NULL REFERENCES poptune_experiments (name) ON DELETE CASCADE,
        member INTEGER NOT NULL, step BIGINT NOT NULL, score DOUBLE PRECISION NOT NULL,
        metrics TEXT NOT NULL,
        PRIMARY KEY (experiment, member, step));
     CREATE TABLE poptune_events (
        experiment TEXT NOT NULL REFERENCES poptune_experiments (name) ON DELETE CASCADE,
        id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL);
     CREATE INDEX poptune_events_experiment ON poptune_events (experiment, id);
     CREATE TABLE poptune_checkpoints (
        experiment TEXT NOT NULL REFERENCES poptune_experiments (name) ON DELETE CASCADE,
        name TEXT NOT NULL, member INTEGER NOT NULL, step BIGINT NOT NULL,
        checksum TEXT NOT NULL, score DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (experiment, name));
     CREATE TABLE poptune_faults (
        experiment TEXT NOT NULL REFERENCES poptune_experiments (name) ON DELETE CASCADE,
        id BIGSERIAL PRIMARY KEY, member INTEGER NOT NULL, step BIGINT NOT NULL,
        kind TEXT NOT NULL, message TEXT NOT NULL, stderr TEXT NOT NULL);",
    ),
    (2, "ALTER TABLE poptune_experiments ADD COLUMN tally TEXT;"),
    (
        3,
        // A step's epoch: its stretch of the member's training (after an exploit a member
        // counts on from its donor's step, which may repeat its own earlier step numbers).
        "ALTER TABLE poptune_steps ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
         ALTER TABLE poptune_steps DROP CONSTRAINT poptune_steps_pkey;
         ALTER TABLE poptune_steps ADD PRIMARY KEY (experiment, member, epoch, step);",
    ),
    (
        4,
        // What PB2 and FIRE-PBT keep of a member's past.
        "ALTER TABLE poptune_members ADD COLUMN trail TEXT NOT NULL DEFAULT '{}';",
    ),
];

/// The advisory lock key that serialises migrations.
const MIGRATION_LOCK: i64 = 0x0070_6f70_7475_6e65;

/// One experiment in a PostgreSQL database.
pub struct PostgresStore {
    /// Queries need `&mut Client`; the store's readers take `&self`.
    client: std::sync::Mutex<Client>,
    /// How to connect again ([`PostgresStore::reconnect`]).
    cfg: Config,
    experiment: String,
    location: String,
    /// The password, to take out of any message.
    secret: Option<String>,
    /// An error showed that the connection is gone.
    lost: AtomicBool,
}

/// A server error at `location`, for errors that carry no password (migrations run on a
/// connection whose password [`PostgresStore`] redacts itself).
pub(crate) fn server(location: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Server {
        location: location.to_string(),
        message: e.to_string(),
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

/// Brings the schema to the latest version; returns the version it found.
pub fn migrate(client: &mut Client, location: &str) -> Result<i32, StoreError> {
    let db = |e: postgres::Error| server(location, describe(&e));
    let mut tx = client.transaction().map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS poptune_schema (
            version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .map_err(db)?;
    let found: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM poptune_schema", &[])
        .map_err(db)?
        .get(0);
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if found > latest {
        return Err(StoreError::Mismatch(format!(
            "{location}: the poptune schema is at version {found}, written by a newer poptune; \
             this one knows versions up to {latest}: upgrade poptune"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > found) {
        tx.batch_execute(sql).map_err(db)?;
        tx.execute(
            "INSERT INTO poptune_schema (version) VALUES ($1)",
            &[version],
        )
        .map_err(db)?;
    }
    tx.commit().map_err(db)?;
    Ok(found)
}

impl PostgresStore {
    /// Step records from rows of (member, epoch, step, score, metrics).
    fn step_rows(&self, rows: Vec<postgres::Row>) -> Result<Vec<StepRow>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let metrics: String = r.get(4);
            out.push(StepRow {
                member: r.get::<_, i32>(0) as usize,
                epoch: r.get::<_, i64>(1) as u64,
                step: r.get::<_, i64>(2) as u64,
                score: r.get(3),
                metrics: metrics_from_json(&metrics)
                    .map_err(|e| self.corrupt("step metrics", e))?,
            });
        }
        Ok(out)
    }

    /// Where the store is (`host:port/database`), without credentials.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Runs a query with the client and this store's experiment name.
    fn read<T>(
        &self,
        f: impl FnOnce(&mut Client, &str) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut c = self.client.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut c, &self.experiment).map_err(|e| self.db(e))
    }

    /// Runs `f` in one transaction with this store's experiment name; commits if `f`
    /// succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>, &str) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        self.read(|c, exp| {
            let mut tx = c.transaction()?;
            let out = f(&mut tx, exp)?;
            tx.commit()?;
            Ok(out)
        })
    }

    pub(crate) fn corrupt(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            path: format!("{} experiment {}", self.location, self.experiment),
            reason: format!("{what}: {e}"),
        }
    }

    /// Deletes the experiment and everything recorded for it.
    pub fn delete(&mut self) -> Result<(), StoreError> {
        self.read(|c, exp| c.execute("DELETE FROM poptune_experiments WHERE name = $1", &[&exp]))?;
        Ok(())
    }
}

/// The columns [`member_row`] reads, in its order.
pub(crate) const MEMBER_COLUMNS: &str =
    "id, h, step, score, recent, checkpoint, decisions, failures, done, trail";

/// A member from a row of [`MEMBER_COLUMNS`]; a damaged JSON column is named in the error.
pub(crate) fn member_row(
    r: &postgres::Row,
) -> Result<MemberRow, (&'static str, serde_json::Error)> {
    let h: &str = r.get(1);
    let recent: &str = r.get(4);
    let trail: &str = r.get(9);
    Ok(MemberRow {
        id: r.get::<_, i32>(0) as usize,
        h: serde_json::from_str::<Hyperparams>(h).map_err(|e| ("member hyperparameters", e))?,
        step: r.get::<_, i64>(2) as u64,
        score: r.get(3),
        recent: serde_json::from_str(recent).map_err(|e| ("member scores", e))?,
        checkpoint: r.get(5),
        decisions: r.get::<_, i64>(6) as u64,
        failures: r.get::<_, i32>(7) as u32,
        done: r.get(8),
        trail: serde_json::from_str(trail).map_err(|e| ("member trail", e))?,
    })
}

/// The columns [`checkpoint_row`] reads, in its order.
pub(crate) const CHECKPOINT_COLUMNS: &str = "name, member, step, checksum, score";

pub(crate) fn checkpoint_row(r: &postgres::Row) -> CheckpointRow {
    CheckpointRow {
        name: r.get(0),
        member: r.get::<_, i32>(1) as usize,
        step: r.get::<_, i64>(2) as u64,
        checksum: r.get(3),
        score: r.get(4),
    }
}

fn write_member(
    tx: &mut Transaction<'_>,
    exp: &str,
    m: &MemberRow,
) -> Result<u64, postgres::Error> {
    tx.execute(
        "INSERT INTO poptune_members
            (experiment, id, h, step, score, recent, checkpoint, decisions, failures, done, trail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (experiment, id) DO UPDATE SET h = EXCLUDED.h, step = EXCLUDED.step,
            score = EXCLUDED.score, recent = EXCLUDED.recent, checkpoint = EXCLUDED.checkpoint,
            decisions = EXCLUDED.decisions, failures = EXCLUDED.failures, done = EXCLUDED.done,
            trail = EXCLUDED.trail",
        &[
            &exp,
            &(m.id as i32),
            &json(&m.h),
            &(m.step as i64),
            &m.score,
            &json(&m.recent),
            &m.checkpoint,
            &(m.decisions as i64),
            &(m.failures as i32),
            &m.done,
            &json(&m.trail),
        ],
    )
}

/// Writes everything in `c` within `tx`.
pub(crate) fn write_commit(
    tx: &mut Transaction<'_>,
    exp: &str,
    c: &Commit,
) -> Result<(), postgres::Error> {
    if !c.steps.is_empty() {
        let ins = tx.prepare(
            "INSERT INTO poptune_steps (experiment, member, epoch, step, score, metrics)
                     VALUES ($1, $2, $3, $4, $5, $6)",
        )?;
        for s in &c.steps {
            tx.execute(
                &ins,
                &[
                    &exp,
                    &(s.member as i32),
                    &(s.epoch as i64),
                    &(s.step as i64),
                    &s.score,
                    &metrics_json(&s.metrics),
                ],
            )?;
        }
    }
    for k in &c.checkpoints {
        tx.execute(
            "INSERT INTO poptune_checkpoints (experiment, name, member, step, checksum, score)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (experiment, name) DO UPDATE SET member = EXCLUDED.member,
                    step = EXCLUDED.step, checksum = EXCLUDED.checksum, score = EXCLUDED.score",
            &[
                &exp,
                &k.name,
                &(k.member as i32),
                &(k.step as i64),
                &k.checksum,
                &k.score,
            ],
        )?;
    }
    for n in &c.forget {
        tx.execute(
            "DELETE FROM poptune_checkpoints WHERE experiment = $1 AND name = $2",
            &[&exp, n],
        )?;
    }
    for m in &c.members {
        write_member(tx, exp, m)?;
    }
    for e in &c.events {
        tx.execute(
            "INSERT INTO poptune_events (experiment, body) VALUES ($1, $2)",
            &[&exp, &json(e)],
        )?;
    }
    for f in &c.faults {
        tx.execute(
            "INSERT INTO poptune_faults (experiment, member, step, kind, message, stderr)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &exp,
                &(f.member as i32),
                &(f.step as i64),
                &f.kind.as_str(),
                &f.message,
                &f.stderr,
            ],
        )?;
    }
    if let Some(s) = &c.status {
        tx.execute(
            "UPDATE poptune_experiments SET status = $2 WHERE name = $1",
            &[&exp, &s.to_string()],
        )?;
    }
    if let Some(d) = &c.definition {
        tx.execute(
            "UPDATE poptune_experiments SET definition = $2 WHERE name = $1",
            &[&exp, d],
        )?;
    }
    if let Some(t) = &c.tally {
        tx.execute(
            "UPDATE poptune_experiments SET tally = $2 WHERE name = $1",
            &[&exp, &json(t)],
        )?;
    }
    if c.elapsed > 0.0 {
        tx.execute(
            "UPDATE poptune_experiments SET elapsed = elapsed + $2 WHERE name = $1",
            &[&exp, &c.elapsed],
        )?;
    }
    Ok(())
}

impl Store for PostgresStore {
    fn create(
        &mut self,
        name: &str,
        definition: &str,
        members: &[MemberRow],
    ) -> Result<(), StoreError> {
        if name != self.experiment {
            return Err(StoreError::Mismatch(format!(
                "this store was opened for experiment `{}`, not `{name}`",
                self.experiment
            )));
        }
        let mut c = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let mut tx = c.transaction().map_err(|e| self.db(e))?;
        tx.execute(
            "INSERT INTO poptune_experiments (name, definition, status) VALUES ($1, $2, 'running')",
            &[&name, &definition],
        )
        .map_err(|e| match self.db(e) {
            StoreError::Server { location, message } => StoreError::Server {
                location,
                message: format!(
                    "cannot create experiment `{name}` (does it exist already?): {message}"
                ),
            },
            other => other,
        })?;
        for m in members {
            write_member(&mut tx, name, m).map_err(|e| self.db(e))?;
        }
        tx.commit().map_err(|e| self.db(e))
    }

    fn definition(&self) -> Result<Option<(String, String)>, StoreError> {
        self.read(|c, exp| {
            let row = c.query_opt(
                "SELECT name, definition FROM poptune_experiments WHERE name = $1",
                &[&exp],
            )?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        })
    }

    fn members(&self) -> Result<Vec<MemberRow>, StoreError> {
        let rows = self.read(|c, exp| {
            c.query(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM poptune_members WHERE experiment = $1 ORDER BY id"
                ),
                &[&exp],
            )
        })?;
        rows.iter()
            .map(|r| member_row(r).map_err(|(what, e)| self.corrupt(what, e)))
            .collect()
    }

    fn commit(&mut self, c: &Commit) -> Result<(), StoreError> {
        self.write(|tx, exp| write_commit(tx, exp, c))
    }

    fn steps(&self) -> Result<Vec<StepRow>, StoreError> {
        let rows = self.read(|c, exp| {
            c.query(
                "SELECT member, epoch, step, score, metrics FROM poptune_steps
                 WHERE experiment = $1 ORDER BY member, epoch, step",
                &[&exp],
            )
        })?;
        self.step_rows(rows)
    }

    fn steps_after(&self, seen: &[Option<(u64, u64)>]) -> Result<Vec<StepRow>, StoreError> {
        let (mut members, mut epochs, mut steps) = (Vec::new(), Vec::new(), Vec::new());
        for (m, last) in seen.iter().enumerate() {
            if let Some((e, s)) = last {
                members.push(m as i32);
                epochs.push(*e as i64);
                steps.push(*s as i64);
            }
        }
        let rows = self.read(|c, exp| {
            c.query(
                "SELECT s.member, s.epoch, s.step, s.score, s.metrics FROM poptune_steps s
                 LEFT JOIN unnest($2::int[], $3::bigint[], $4::bigint[]) AS seen(member, epoch, step)
                   ON seen.member = s.member
                 WHERE s.experiment = $1
                   AND (seen.member IS NULL OR (s.epoch, s.step) > (seen.epoch, seen.step))
                 ORDER BY s.member, s.epoch, s.step",
                &[&exp, &members, &epochs, &steps],
            )
        })?;
        self.step_rows(rows)
    }

    fn events(&self) -> Result<Vec<Event>, StoreError> {
        let rows = self.read(|c, exp| {
            c.query(
                "SELECT body FROM poptune_events WHERE experiment = $1 ORDER BY id",
                &[&exp],
            )
        })?;
        rows.iter()
            .map(|r| {
                serde_json::from_str(r.get::<_, &str>(0)).map_err(|e| self.corrupt("event", e))
            })
            .collect()
    }

    fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        let rows = self.read(|c, exp| {
            c.query(
                &format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM poptune_checkpoints
                     WHERE experiment = $1 ORDER BY member, step"
                ),
                &[&exp],
            )
        })?;
        Ok(rows.iter().map(checkpoint_row).collect())
    }

    fn forget_checkpoints(&mut self, names: &[String]) -> Result<(), StoreError> {
        self.commit(&Commit {
            forget: names.to_vec(),
            ..Commit::default()
        })
    }

    fn faults(&self) -> Result<Vec<FaultRow>, StoreError> {
        let rows = self.read(|c, exp| {
            c.query(
                "SELECT member, step, kind, message, stderr FROM poptune_faults
                 WHERE experiment = $1 ORDER BY id",
                &[&exp],
            )
        })?;
        rows.iter()
            .map(|r| {
                Ok(FaultRow {
                    member: r.get::<_, i32>(0) as usize,
                    step: r.get::<_, i64>(1) as u64,
                    kind: r
                        .get::<_, String>(2)
                        .parse()
                        .map_err(|why: String| self.corrupt("fault", why))?,
                    message: r.get(3),
                    stderr: r.get(4),
                })
            })
            .collect()
    }

    fn status(&self) -> Result<(RunStatus, f64), StoreError> {
        let row = self.read(|c, exp| {
            c.query_opt(
                "SELECT status, elapsed FROM poptune_experiments WHERE name = $1",
                &[&exp],
            )
        })?;
        match row {
            None => Ok((RunStatus::New, 0.0)),
            Some(r) => Ok((
                r.get::<_, String>(0)
                    .parse()
                    .map_err(|why: String| self.corrupt("status", why))?,
                r.get(1),
            )),
        }
    }

    fn tally(&self) -> Result<Option<Tally>, StoreError> {
        let row = self.read(|c, exp| {
            c.query_opt(
                "SELECT tally FROM poptune_experiments WHERE name = $1",
                &[&exp],
            )
        })?;
        row.and_then(|r| r.get::<_, Option<String>>(0))
            .map(|t| serde_json::from_str(&t).map_err(|e| self.corrupt("tally", e)))
            .transpose()
    }
}
