//! The embedded backend: one SQLite database file.

use std::path::Path;

use poptune::{Event, Hyperparams, Trail};
use rusqlite::{params, Connection, OptionalExtension};

use crate::{
    CheckpointRow, Commit, FaultRow, MemberRow, RunStatus, StepRow, Store, StoreError, Tally,
    SCHEMA_VERSION,
};

/// An experiment stored in one SQLite file (WAL mode; one writer process at a time).
pub struct SqliteStore {
    conn: Connection,
    path: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    id INTEGER PRIMARY KEY, h TEXT NOT NULL, step INTEGER NOT NULL, score REAL,
    recent TEXT NOT NULL, checkpoint TEXT, decisions INTEGER NOT NULL,
    failures INTEGER NOT NULL, done INTEGER NOT NULL, trail TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS steps (
    member INTEGER NOT NULL, epoch INTEGER NOT NULL DEFAULT 0, step INTEGER NOT NULL,
    score REAL NOT NULL, metrics TEXT NOT NULL,
    PRIMARY KEY (member, epoch, step));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY, member INTEGER NOT NULL, step INTEGER NOT NULL,
    checksum TEXT NOT NULL, score REAL NOT NULL);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY AUTOINCREMENT, member INTEGER NOT NULL, step INTEGER NOT NULL,
    kind TEXT NOT NULL, message TEXT NOT NULL, stderr TEXT NOT NULL);
";

/// Version 1 to 2: the steps gain an epoch (their stretch of the member's training), which the
/// primary key includes. Every step written by version 1 is of epoch 0.
const MIGRATE_1_TO_2: &str = "
BEGIN;
CREATE TABLE steps_v2 (
    member INTEGER NOT NULL, epoch INTEGER NOT NULL DEFAULT 0, step INTEGER NOT NULL,
    score REAL NOT NULL, metrics TEXT NOT NULL,
    PRIMARY KEY (member, epoch, step));
INSERT INTO steps_v2 (member, epoch, step, score, metrics)
    SELECT member, 0, step, score, metrics FROM steps;
DROP TABLE steps;
ALTER TABLE steps_v2 RENAME TO steps;
UPDATE meta SET value = '2' WHERE key = 'schema_version';
COMMIT;
";

/// Version 2 to 3: members gain a trail (what PB2 and FIRE-PBT keep of their past).
const MIGRATE_2_TO_3: &str = "
BEGIN;
ALTER TABLE members ADD COLUMN trail TEXT NOT NULL DEFAULT '{}';
UPDATE meta SET value = '3' WHERE key = 'schema_version';
COMMIT;
";

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

impl SqliteStore {
    /// The step records `sql` selects (member, epoch, step, score, metrics) with `params`.
    fn step_rows(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StepRow>, StoreError> {
        let mut st = self.conn.prepare_cached(sql).map_err(self.db())?;
        let rows = st
            .query_map(params, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, f64>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(self.db())?;
        let mut out = Vec::new();
        for row in rows {
            let (member, epoch, step, score, metrics) = row.map_err(self.db())?;
            let metrics =
                crate::metrics_from_json(&metrics).map_err(|e| self.corrupt("step metrics", e))?;
            out.push(StepRow {
                member: member as usize,
                epoch: epoch as u64,
                step: step as u64,
                score,
                metrics,
            });
        }
        Ok(out)
    }
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let p = path.display().to_string();
        let db = |source| StoreError::Db {
            path: p.clone(),
            error: source,
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    params![SCHEMA_VERSION.to_string()],
                )
                .map_err(db)?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            // Version 1 (release 0.1.0): steps were keyed by (member, step) alone.
            Some(v) if v == "1" => {
                conn.execute_batch(MIGRATE_1_TO_2).map_err(db)?;
                conn.execute_batch(MIGRATE_2_TO_3).map_err(db)?;
            }
            // Version 2 (releases before PB2): members had no trail.
            Some(v) if v == "2" => conn.execute_batch(MIGRATE_2_TO_3).map_err(db)?,
            Some(v) => {
                return Err(StoreError::Mismatch(format!(
                    "{p} was written with schema version {v}; this poptune reads version {SCHEMA_VERSION}"
                )))
            }
        }
        Ok(SqliteStore { conn, path: p })
    }

    fn db(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Db {
            path: self.path.clone(),
            error: source,
        }
    }

    fn corrupt(&self, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason: format!("{what}: {e}"),
        }
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.db())
    }
}

fn write_member(tx: &rusqlite::Transaction<'_>, m: &MemberRow) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT OR REPLACE INTO members (id, h, step, score, recent, checkpoint, decisions, failures, done, trail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            m.id as i64,
            json(&m.h),
            m.step as i64,
            m.score,
            json(&m.recent),
            m.checkpoint,
            m.decisions as i64,
            m.failures as i64,
            m.done,
            json(&m.trail)
        ],
    )
}

impl Store for SqliteStore {
    fn create(
        &mut self,
        name: &str,
        definition: &str,
        members: &[MemberRow],
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let db = move |source| StoreError::Db {
            path: path.clone(),
            error: source,
        };
        let tx = self.conn.transaction().map_err(&db)?;
        for (k, v) in [
            ("name", name),
            ("definition", definition),
            ("status", "running"),
            ("elapsed", "0"),
        ] {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![k, v],
            )
            .map_err(&db)?;
        }
        for m in members {
            write_member(&tx, m).map_err(&db)?;
        }
        tx.commit().map_err(&db)
    }

    fn definition(&self) -> Result<Option<(String, String)>, StoreError> {
        match (self.meta("name")?, self.meta("definition")?) {
            (Some(n), Some(d)) => Ok(Some((n, d))),
            _ => Ok(None),
        }
    }

    fn members(&self) -> Result<Vec<MemberRow>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, h, step, score, recent, checkpoint, decisions, failures, done, trail
                 FROM members ORDER BY id",
            )
            .map_err(self.db())?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<f64>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, i64>(7)?,
                    r.get::<_, bool>(8)?,
                    r.get::<_, String>(9)?,
                ))
            })
            .map_err(self.db())?;
        let mut out = Vec::new();
        for row in rows {
            let (id, h, step, score, recent, checkpoint, decisions, failures, done, trail) =
                row.map_err(self.db())?;
            let trail: Trail =
                serde_json::from_str(&trail).map_err(|e| self.corrupt("member trail", e))?;
            let h: Hyperparams =
                serde_json::from_str(&h).map_err(|e| self.corrupt("member hyperparameters", e))?;
            let recent: Vec<f64> =
                serde_json::from_str(&recent).map_err(|e| self.corrupt("member scores", e))?;
            out.push(MemberRow {
                id: id as usize,
                h,
                step: step as u64,
                score,
                recent,
                checkpoint,
                decisions: decisions as u64,
                failures: failures as u32,
                done,
                trail,
            });
        }
        Ok(out)
    }

    fn commit(&mut self, c: &Commit) -> Result<(), StoreError> {
        let path = self.path.clone();
        let db = move |source| StoreError::Db {
            path: path.clone(),
            error: source,
        };
        let tx = self.conn.transaction().map_err(&db)?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO steps (member, epoch, step, score, metrics)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(&db)?;
            for s in &c.steps {
                ins.execute(params![
                    s.member as i64,
                    s.epoch as i64,
                    s.step as i64,
                    s.score,
                    crate::metrics_json(&s.metrics)
                ])
                .map_err(&db)?;
            }
        }
        for k in &c.checkpoints {
            tx.execute(
                "INSERT OR REPLACE INTO checkpoints (name, member, step, checksum, score)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![k.name, k.member as i64, k.step as i64, k.checksum, k.score],
            )
            .map_err(&db)?;
        }
        for n in &c.forget {
            tx.execute("DELETE FROM checkpoints WHERE name = ?1", params![n])
                .map_err(&db)?;
        }
        for m in &c.members {
            write_member(&tx, m).map_err(&db)?;
        }
        for e in &c.events {
            tx.execute("INSERT INTO events (body) VALUES (?1)", params![json(e)])
                .map_err(&db)?;
        }
        for f in &c.faults {
            tx.execute(
                "INSERT INTO faults (member, step, kind, message, stderr) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![f.member as i64, f.step as i64, f.kind.as_str(), f.message, f.stderr],
            )
            .map_err(&db)?;
        }
        if let Some(s) = &c.status {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('status', ?1)",
                params![s.to_string()],
            )
            .map_err(&db)?;
        }
        if let Some(d) = &c.definition {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('definition', ?1)",
                params![d],
            )
            .map_err(&db)?;
        }
        if let Some(t) = &c.tally {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('tally', ?1)",
                params![json(t)],
            )
            .map_err(&db)?;
        }
        if c.elapsed > 0.0 {
            tx.execute(
                "UPDATE meta SET value = CAST(CAST(value AS REAL) + ?1 AS TEXT) WHERE key = 'elapsed'",
                params![c.elapsed],
            )
            .map_err(&db)?;
        }
        tx.commit().map_err(&db)
    }

    fn steps(&self) -> Result<Vec<StepRow>, StoreError> {
        self.step_rows(
            "SELECT member, epoch, step, score, metrics FROM steps
             ORDER BY member, epoch, step",
            &[],
        )
    }

    fn steps_after(&self, seen: &[Option<(u64, u64)>]) -> Result<Vec<StepRow>, StoreError> {
        // One indexed range per member seen (the key is member, epoch, step), then every
        // record of the members past them.
        let mut out = Vec::new();
        for (m, last) in seen.iter().enumerate() {
            let (epoch, step) = last.map_or((-1, -1), |(e, s)| (e as i64, s as i64));
            out.extend(self.step_rows(
                "SELECT member, epoch, step, score, metrics FROM steps
                 WHERE member = ?1 AND (epoch > ?2 OR (epoch = ?2 AND step > ?3))
                 ORDER BY epoch, step",
                &[&(m as i64), &epoch, &step],
            )?);
        }
        out.extend(self.step_rows(
            "SELECT member, epoch, step, score, metrics FROM steps WHERE member >= ?1
             ORDER BY member, epoch, step",
            &[&(seen.len() as i64)],
        )?);
        Ok(out)
    }

    fn events(&self) -> Result<Vec<Event>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT body FROM events ORDER BY id")
            .map_err(self.db())?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.db())?;
        let mut out = Vec::new();
        for row in rows {
            let body = row.map_err(self.db())?;
            out.push(serde_json::from_str(&body).map_err(|e| self.corrupt("event", e))?);
        }
        Ok(out)
    }

    fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT name, member, step, checksum, score FROM checkpoints ORDER BY member, step",
            )
            .map_err(self.db())?;
        let rows = st
            .query_map([], |r| {
                Ok(CheckpointRow {
                    name: r.get(0)?,
                    member: r.get::<_, i64>(1)? as usize,
                    step: r.get::<_, i64>(2)? as u64,
                    checksum: r.get(3)?,
                    score: r.get(4)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<Result<_, _>>().map_err(self.db())
    }

    fn forget_checkpoints(&mut self, names: &[String]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let db = move |source| StoreError::Db {
            path: path.clone(),
            error: source,
        };
        let tx = self.conn.transaction().map_err(&db)?;
        for n in names {
            tx.execute("DELETE FROM checkpoints WHERE name = ?1", params![n])
                .map_err(&db)?;
        }
        tx.commit().map_err(&db)
    }

    fn faults(&self) -> Result<Vec<FaultRow>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT member, step, kind, message, stderr FROM faults ORDER BY id")
            .map_err(self.db())?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)? as usize,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(self.db())?;
        let rows: Vec<(usize, u64, String, String, String)> =
            rows.collect::<Result<_, _>>().map_err(self.db())?;
        rows.into_iter()
            .map(|(member, step, kind, message, stderr)| {
                Ok(FaultRow {
                    member,
                    step,
                    kind: kind.parse().map_err(|why| self.corrupt("faults", why))?,
                    message,
                    stderr,
                })
            })
            .collect()
    }

    fn status(&self) -> Result<(RunStatus, f64), StoreError> {
        let status = match self.meta("status")? {
            None => RunStatus::New,
            Some(s) => s.parse().map_err(|why| self.corrupt("status", why))?,
        };
        let elapsed = self
            .meta("elapsed")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        Ok((status, elapsed))
    }

    fn tally(&self) -> Result<Option<Tally>, StoreError> {
        self.meta("tally")?
            .map(|t| serde_json::from_str(&t).map_err(|e| self.corrupt("tally", e)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("experiment.db");
        crate::contract::check("exp", &mut || {
            Box::new(SqliteStore::open(&path).unwrap()) as Box<dyn Store>
        });
    }

    /// A version 2 store (members without a trail) opens, gains the column, and its members
    /// read back with empty trails.
    #[test]
    fn a_version_2_store_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("experiment.db");
        {
            let mut s = SqliteStore::open(&path).unwrap();
            s.create(
                "exp",
                "{}",
                &[MemberRow::new(0, Hyperparams::new().with("lr", 0.1))],
            )
            .unwrap();
        }
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE members DROP COLUMN trail;
             UPDATE meta SET value = '2' WHERE key = 'schema_version';",
        )
        .unwrap();
        drop(conn);
        let s = SqliteStore::open(&path).unwrap();
        let members = s.members().unwrap();
        assert_eq!(members.len(), 1);
        assert!(members[0].trail.is_empty());
        assert_eq!(s.meta("schema_version").unwrap().as_deref(), Some("3"));
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("experiment.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        drop(conn);
        let e = SqliteStore::open(&path).err().unwrap().to_string();
        assert!(e.contains("schema version 99"), "{e}");
    }
}
