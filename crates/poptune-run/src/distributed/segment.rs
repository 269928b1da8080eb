//! One leased segment: train it while a heartbeat renews the lease, make its checkpoint
//! durable, and record it in a ready transaction (waiting out a database outage first, while
//! the lease still holds).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use poptune::{Decision, ExperimentDef};
use poptune_pg::{PostgresStore, Ready, ReadyView};
use poptune_store::{CheckpointRow, Checkpoints, Commit, Leases, MemberRow, RunStatus};

use super::outage::Outage;
use crate::book::garbage;
use crate::fault::{Failure, Fault, FaultKind};
use crate::pool::{Cancel, SegmentRequest, Worker};
use crate::settle::{decide_ahead, sync, Books, Finished, Trained};
use crate::RunError;

/// What a slot needs to train one claimed member under its lease.
pub(super) struct Leased<'a> {
    pub store: &'a PostgresStore,
    pub beat: &'a PostgresStore,
    pub def: &'a ExperimentDef,
    pub ckpts: &'a Checkpoints,
    pub owner: &'a str,
    pub lease: Duration,
    pub outage: &'a Outage,
}

/// A leased segment's end: the checkpoint it wrote, and the ready transaction's answer
/// (`None`: the lease was at risk, the segment was stopped and nothing was recorded).
pub(super) type LeasedOutcome = (Option<String>, Option<Result<Ready<Recorded>, RunError>>);

/// What a ready transaction recorded: the checkpoints to delete, the fault if any, and a fatal
/// error if the run cannot go on.
pub(super) type Recorded = (Vec<String>, Option<Fault>, Option<String>);

impl Leased<'_> {
    /// Trains member `row` to `stop` (from `restore`: its checkpoint and that checkpoint's
    /// checksum in the index, if it has one) while a heartbeat renews the lease claimed at
    /// `asked`, then records the segment in a ready transaction.
    pub(super) fn segment(
        &self,
        worker: &mut dyn Worker,
        row: &MemberRow,
        restore: Option<(String, Option<String>)>,
        stop: u64,
        asked: Instant,
    ) -> LeasedOutcome {
        let (owner, lease, m) = (self.owner, self.lease, row.id);
        let watch = LeaseWatch::new(asked, lease);
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (beat, watch) = (self.beat, &watch);
        std::thread::scope(|s| {
            // The heartbeat renews the lease every third of it until the segment is recorded
            // (the channel closes) or the lease is lost. Training stops as soon as the lease
            // is not known to be ours for a while longer, before another worker can claim it.
            s.spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    done_rx.recv_timeout(lease / 3)
                {
                    let sent = Instant::now();
                    match beat.heartbeat(owner, m, lease) {
                        Ok(true) => watch.renewed(sent),
                        Ok(false) => {
                            watch.lost();
                            break;
                        }
                        // Tried again next time, on a new connection if this one is gone; if
                        // it keeps failing, the deadline stops the segment.
                        Err(_) => {
                            if beat.connection_lost() {
                                let _ = beat.reconnect();
                            }
                        }
                    }
                }
            });
            let cancel = || watch.at_risk();
            let r = train(self, worker, row, restore, stop, &cancel);
            let our_ckpt = r.as_ref().ok().map(|t| t.checkpoint.name.clone());
            let outcome = match r {
                Err((f, _)) if f.kind == FaultKind::Cancelled => None,
                r => Some(self.record(m, stop, r)),
            };
            drop(done_tx);
            (our_ckpt, outcome)
        })
    }

    /// The ready transaction for a trained (or failed) segment. When the connection is lost
    /// the worker waits for the database (the heartbeat goes on renewing the lease once it
    /// is back) and tries again: the transaction's lease check, by the database's clock,
    /// decides. A first try whose commit landed though its answer was lost has released the
    /// lease, so the segment is never recorded twice; a lease that ran out during the outage
    /// records nothing.
    fn record(
        &self,
        m: usize,
        stop: u64,
        r: Result<Trained, Failure>,
    ) -> Result<Ready<Recorded>, RunError> {
        let seg = Finished {
            member: m,
            stop,
            outcome: r,
        };
        let decided = self.decide_ahead(&seg);
        loop {
            let tried = self.store.ready(self.owner, m, |view| {
                record(self.def, view, seg.clone(), decided.clone())
            });
            match tried {
                Ok(ready) => return Ok(ready),
                Err(e) if self.store.connection_lost() => self.outage.wait(self.store, e)?,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Leased<'_> {
    /// An asynchronous guided decision (PB2's) that the segment leads to, made on a snapshot
    /// read without the experiment's lock, so that the ready transaction holds the lock no
    /// longer than a PBT decision does (the lease, still renewed by the heartbeat, keeps the
    /// member this worker's meanwhile). `None` when there is none, or the snapshot could not
    /// be read: the ready transaction then decides itself.
    fn decide_ahead(&self, seg: &Finished) -> Option<Decision> {
        let def = self.def;
        if sync(def) || seg.outcome.is_err() || !def.policy.algorithm.keeps_intervals() {
            return None;
        }
        let view = match self.store.snapshot() {
            Ok(view) => view,
            Err(e) => {
                tracing::debug!(
                    "member {}: deciding in the ready transaction: {e}",
                    seg.member
                );
                return None;
            }
        };
        decide_ahead(
            def,
            view.members,
            view.tally,
            view.events,
            seg,
            view.elapsed,
        )
    }
}

fn train(
    leased: &Leased<'_>,
    worker: &mut dyn Worker,
    row: &MemberRow,
    restore: Option<(String, Option<String>)>,
    stop: u64,
    cancel: &Cancel<'_>,
) -> Result<Trained, Failure> {
    let (ckpts, owner) = (leased.ckpts, leased.owner);
    let fault = |kind: FaultKind, message: String| (Fault::new(kind, message), String::new());
    let restore = match restore {
        None => None,
        Some((name, sum)) => {
            let sum = sum.ok_or_else(|| {
                fault(FaultKind::Checkpoint, format!("{name} is not in the index"))
            })?;
            ckpts
                .verify(&name, &sum)
                .map_err(|e| fault(FaultKind::Checkpoint, e.to_string()))?;
            Some((ckpts.path(&name), name))
        }
    };
    let tmp = ckpts
        .tmp_dir(&format!("m{}-{owner}", row.id))
        .map_err(|e| fault(FaultKind::Checkpoint, e.to_string()))?;
    // Unique per worker: a worker that lost its lease never collides with the one that took
    // the member over.
    let name = format!(
        "m{:04}-e{:06}-s{:08}-{}",
        row.id,
        row.decisions,
        stop,
        short_hash(owner)
    );
    let req = SegmentRequest {
        member: row.id,
        start: row.step,
        steps: stop.saturating_sub(row.step),
        h: &row.h,
        restore: restore.as_ref().map(|(p, n)| (p.as_path(), n.as_str())),
        checkpoint: (&tmp, &name),
        timeout: Duration::from_secs_f64(leased.def.trainable.step_timeout),
        cancel: Some(cancel),
    };
    let steps = match worker.train(&req, &mut |_| {}) {
        Ok(s) => s,
        Err(f) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(f);
        }
    };
    let sum = ckpts.commit(&tmp, &name).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp);
        fault(FaultKind::Checkpoint, e.to_string())
    })?;
    Ok(Trained {
        steps,
        checkpoint: CheckpointRow {
            name,
            member: row.id,
            step: stop,
            checksum: sum,
            score: f64::NAN,
        },
    })
}

/// What a slot knows of its lease: the moment until which it is surely still its own.
///
/// A renewal sent at `t` makes the lease run until at least `t + lease` by the database's clock,
/// so the lease is taken to be safe until `t + lease - lease/4`; the quarter leaves time to stop
/// the trainable before another worker may claim the member.
struct LeaseWatch {
    base: Instant,
    lease: Duration,
    /// Nanoseconds after `base` until which the lease is safe.
    safe_until: AtomicU64,
    lost: AtomicBool,
}

impl LeaseWatch {
    /// The lease a claim sent at `asked` obtained.
    fn new(asked: Instant, lease: Duration) -> Self {
        let w = LeaseWatch {
            base: asked,
            lease,
            safe_until: AtomicU64::new(0),
            lost: AtomicBool::new(false),
        };
        w.renewed(asked);
        w
    }

    /// A renewal sent at `sent` succeeded.
    fn renewed(&self, sent: Instant) {
        let until = sent.saturating_duration_since(self.base) + self.lease - self.lease / 4;
        let nanos = until.as_nanos().min(u64::MAX as u128) as u64;
        self.safe_until.fetch_max(nanos, Ordering::SeqCst);
    }

    /// The lease is someone else's (or gone).
    fn lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    /// The lease is lost or may run out before the next renewal could be known.
    fn at_risk(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
            || self.base.elapsed().as_nanos() >= self.safe_until.load(Ordering::SeqCst) as u128
    }
}

/// A short hash of a worker's name, as checkpoint names end with it.
pub(super) fn short_hash(s: &str) -> String {
    // FNV-1a, enough to tell workers apart in a file name.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    format!("{:08x}", h as u32)
}

/// The ready transaction's content: the segment (or fault) settled on the state the
/// transaction read, and the garbage. Returns the commit, and the checkpoints to delete, the
/// fault if any, and a fatal error if the run cannot go on.
fn record(
    def: &ExperimentDef,
    view: ReadyView,
    seg: Finished,
    decided: Option<Decision>,
) -> (Commit, Recorded) {
    let mut c = Commit::default();
    // A store without a tally (written before tallies existed) counts exploits and faults
    // from here on.
    let mut books = Books::new(def, view.members, view.tally, view.events, 0, 0);
    if let RunStatus::Stopped(why) = &view.status {
        books.stop = Some(why.clone());
    }
    let fault = seg.outcome.as_ref().err().map(|(f, _)| f.clone());
    let out = books.settle_decided(def, seg, view.elapsed, decided, &mut c);
    let mut index = view.index;
    index.extend(c.checkpoints.iter().cloned());
    let referenced = books.members.iter().filter_map(|r| r.checkpoint.as_deref());
    c.forget = garbage(def.mode, referenced, index.iter());
    if out.finished {
        c.status = Some(RunStatus::Finished);
    } else if let Some(why) = out.stopped {
        c.status = Some(RunStatus::Stopped(why));
    } else if let Some(why) = &out.fatal {
        c.status = Some(RunStatus::Failed(why.clone()));
    }
    let forget = c.forget.clone();
    (c, (forget, fault, out.fatal))
}
