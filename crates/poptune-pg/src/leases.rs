//! Coordination between workers: leases on members ([`Leases`]), and ready decisions as
//! transactions that hold the experiment's row lock, so that two workers never decide on stale
//! state.

use std::time::Duration;

use poptune_store::{CheckpointRow, Commit, Leases, MemberRow, RunStatus, StoreError, Tally};

use crate::{
    checkpoint_row, member_row, write_commit, PostgresStore, CHECKPOINT_COLUMNS, MEMBER_COLUMNS,
};

/// What a ready transaction reads, under the experiment's lock, for the settle path.
#[derive(Debug)]
pub struct ReadyView {
    /// Every member.
    pub members: Vec<MemberRow>,
    /// The checkpoint index.
    pub index: Vec<CheckpointRow>,
    /// Lineage events recorded so far.
    pub events: u64,
    /// The experiment's status.
    pub status: RunStatus,
    /// Its running time (wall time from creation to this transaction), seconds.
    pub elapsed: f64,
    /// Its running totals, if recorded.
    pub tally: Option<Tally>,
}

/// What a worker's ready transaction found.
#[derive(Debug, PartialEq)]
pub enum Ready<T> {
    /// Recorded; the closure's result.
    Done(T),
    /// The worker no longer holds a valid lease on the member (it expired, by the database's
    /// clock, or another worker took the member over): nothing was recorded.
    LeaseLost,
}

/// What [`PostgresStore::tidy_view`] reads in one snapshot: which checkpoint directories may be
/// recorded, now or by a ready transaction still to come.
#[derive(Debug, Default)]
pub struct TidyView {
    /// The checkpoint index: every name a member or the lineage may still need.
    pub index: Vec<String>,
    /// The workers (`lease_owner`) holding a lease that has not run out by the database's
    /// clock: only these can still record a checkpoint.
    pub live_owners: Vec<String>,
}

impl PostgresStore {
    /// The index entry of checkpoint `name`, if there is one.
    pub fn checkpoint(&self, name: &str) -> Result<Option<CheckpointRow>, StoreError> {
        let row = self.read(|c, exp| {
            c.query_opt(
                &format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM poptune_checkpoints
                     WHERE experiment = $1 AND name = $2"
                ),
                &[&exp, &name],
            )
        })?;
        Ok(row.as_ref().map(checkpoint_row))
    }

    /// The checkpoint index and the live lease holders, read in one snapshot (see
    /// [`TidyView`]).
    pub fn tidy_view(&self) -> Result<TidyView, StoreError> {
        self.read(|c, exp| {
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let index = tx
                .query(
                    "SELECT name FROM poptune_checkpoints WHERE experiment = $1",
                    &[&exp],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let live_owners = tx
                .query(
                    "SELECT DISTINCT lease_owner FROM poptune_members
                     WHERE experiment = $1 AND lease_owner IS NOT NULL
                       AND lease_until > clock_timestamp()",
                    &[&exp],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.commit()?;
            Ok(TidyView { index, live_owners })
        })
    }

    /// What a ready transaction would read ([`ReadyView`]), read in one snapshot without
    /// taking any lock: for a decision made ahead of the ready transaction (PB2's), so that its
    /// cost is not paid while the experiment's lock is held.
    pub fn snapshot(&self) -> Result<ReadyView, StoreError> {
        let mut c = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let exp = self.experiment.clone();
        let mut tx = c
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(|e| self.db(e))?;
        let view = self.ready_view(&mut tx, &exp)?;
        tx.commit().map_err(|e| self.db(e))?;
        Ok(view)
    }

    /// A ready transaction for `owner`, who holds the lease on `member`: locks the experiment,
    /// checks the lease (held by `owner` and not run out by the database's clock, both when
    /// the transaction starts and in the statement that releases it, just before the commit),
    /// reads every member, the checkpoint index, the number of events so
    /// far, the status and the running totals ([`ReadyView`]), lets `decide` turn them into a
    /// [`Commit`], writes it and releases the lease, all or nothing.
    pub fn ready<T>(
        &self,
        owner: &str,
        member: usize,
        decide: impl FnOnce(ReadyView) -> (Commit, T),
    ) -> Result<Ready<T>, StoreError> {
        let mut c = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let exp = self.experiment.clone();
        let db = |e| self.db(e);
        let mut tx = c.transaction().map_err(db)?;
        // The experiment's row lock serialises ready decisions; the member's row lock keeps
        // a claim from slipping in between the lease check and the release. The statement
        // that takes the lock also records the running time (many workers train at once: the
        // wall time from the experiment's creation to its latest recorded segment; `now()` is
        // the transaction's start, and a ready that finds its lease lost rolls it back).
        let found = tx
            .execute(
                "UPDATE poptune_experiments
                 SET elapsed = GREATEST(elapsed, EXTRACT(EPOCH FROM now() - created_at))
                 WHERE name = $1",
                &[&exp],
            )
            .map_err(db)?;
        if found != 1 {
            return Err(self.corrupt("experiment", "its row is missing"));
        }
        // Taken by `owner` and not run out: `clock_timestamp()`, not `now()`, since the
        // transaction may have waited for the experiment's lock.
        let held = tx
            .query_opt(
                "SELECT 1 FROM poptune_members WHERE experiment = $1 AND id = $2
                   AND lease_owner = $3 AND lease_until > clock_timestamp()
                 FOR UPDATE",
                &[&exp, &(member as i32), &owner],
            )
            .map_err(db)?;
        if held.is_none() {
            return Ok(Ready::LeaseLost);
        }
        let view = self.ready_view(&mut tx, &exp)?;
        let (commit, out) = decide(view);
        write_commit(&mut tx, &exp, &commit).map_err(db)?;
        // The lease must still hold at commit time: deciding may have taken a while. (The
        // row lock keeps every other worker from claiming the member meanwhile.)
        let released = tx
            .execute(
                "UPDATE poptune_members SET lease_owner = NULL, lease_until = NULL
                 WHERE experiment = $1 AND id = $2 AND lease_owner = $3
                   AND lease_until > clock_timestamp()",
                &[&exp, &(member as i32), &owner],
            )
            .map_err(db)?;
        if released != 1 {
            // Dropping the transaction rolls it back: nothing is recorded.
            return Ok(Ready::LeaseLost);
        }
        tx.commit().map_err(db)?;
        Ok(Ready::Done(out))
    }

    /// What a ready transaction reads (see [`ReadyView`]), inside `tx`.
    fn ready_view(
        &self,
        tx: &mut postgres::Transaction<'_>,
        exp: &str,
    ) -> Result<ReadyView, StoreError> {
        let members = tx
            .query(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM poptune_members WHERE experiment = $1 ORDER BY id"
                ),
                &[&exp],
            )
            .map_err(|e| self.db(e))?
            .iter()
            .map(|r| member_row(r).map_err(|(what, e)| self.corrupt(what, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let index: Vec<CheckpointRow> = tx
            .query(
                &format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM poptune_checkpoints WHERE experiment = $1"
                ),
                &[&exp],
            )
            .map_err(|e| self.db(e))?
            .iter()
            .map(checkpoint_row)
            .collect();
        let events: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM poptune_events WHERE experiment = $1",
                &[&exp],
            )
            .map_err(|e| self.db(e))?
            .get(0);
        let row = tx
            .query_one(
                "SELECT status, elapsed, tally FROM poptune_experiments WHERE name = $1",
                &[&exp],
            )
            .map_err(|e| self.db(e))?;
        let status: RunStatus = row
            .get::<_, String>(0)
            .parse()
            .map_err(|why: String| self.corrupt("status", why))?;
        let tally = row
            .get::<_, Option<String>>(2)
            .map(|t| serde_json::from_str(&t).map_err(|e| self.corrupt("tally", e)))
            .transpose()?;
        Ok(ReadyView {
            members,
            index,
            events: events as u64,
            status,
            elapsed: row.get(1),
            tally,
        })
    }
}

impl Leases for PostgresStore {
    /// Claims a member to train for `owner`: one that is not finished, not leased (or whose
    /// lease ran out: its worker died), and whose step is below `below` (synchronous rounds).
    /// Fewest steps first. The claim is a row lock taken with `SKIP LOCKED` and a lease of
    /// `lease` that [`heartbeat`](Self::heartbeat) extends.
    fn claim(
        &self,
        owner: &str,
        lease: Duration,
        below: Option<u64>,
    ) -> Result<Option<MemberRow>, StoreError> {
        let secs = lease.as_secs_f64();
        let below = below.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
        let row = self.read(|c, exp| {
            let mut tx = c.transaction()?;
            let row = tx.query_opt(
                "SELECT id FROM poptune_members
                 WHERE experiment = $1 AND NOT done AND step < $2
                   AND (lease_until IS NULL OR lease_until <= clock_timestamp())
                 ORDER BY step, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                &[&exp, &below],
            )?;
            let claimed = match row {
                None => None,
                Some(r) => tx.query_opt(
                    &format!(
                        "UPDATE poptune_members SET lease_owner = $3,
                            lease_until = clock_timestamp() + make_interval(secs => $4)
                         WHERE experiment = $1 AND id = $2 RETURNING {MEMBER_COLUMNS}"
                    ),
                    &[&exp, &r.get::<_, i32>(0), &owner, &secs],
                )?,
            };
            tx.commit()?;
            Ok(claimed)
        })?;
        row.map(|r| member_row(&r).map_err(|(what, e)| self.corrupt(what, e)))
            .transpose()
    }

    /// Extends `owner`'s lease on `member`; `false` if the lease is no longer `owner`'s or has
    /// run out by the database's clock (an expired lease is never revived: its member may be
    /// claimed by another worker at any moment, and this one's segment is not to be recorded).
    fn heartbeat(&self, owner: &str, member: usize, lease: Duration) -> Result<bool, StoreError> {
        let secs = lease.as_secs_f64();
        let n = self.read(|c, exp| {
            c.execute(
                "UPDATE poptune_members
                 SET lease_until = clock_timestamp() + make_interval(secs => $4)
                 WHERE experiment = $1 AND id = $2 AND lease_owner = $3
                   AND lease_until > clock_timestamp()",
                &[&exp, &(member as i32), &owner, &secs],
            )
        })?;
        Ok(n == 1)
    }

    /// Gives up `owner`'s lease on `member` without recording anything.
    fn release(&self, owner: &str, member: usize) -> Result<(), StoreError> {
        self.read(|c, exp| {
            c.execute(
                "UPDATE poptune_members SET lease_owner = NULL, lease_until = NULL
                 WHERE experiment = $1 AND id = $2 AND lease_owner = $3",
                &[&exp, &(member as i32), &owner],
            )
        })?;
        Ok(())
    }
}
