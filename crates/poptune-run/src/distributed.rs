//! Workers on many machines, coordinated by PostgreSQL.
//!
//! Every worker process runs `slots` threads. A thread claims a member (row lock with
//! `SKIP LOCKED` and a lease that a heartbeat extends), trains one segment with the external
//! trainable, makes the checkpoint durable in the shared checkpoint directory, and records
//! the segment, the ready decision and the lineage in one transaction that holds the
//! experiment's row lock and checks that the lease is still its own. A worker that dies loses
//! its lease; another worker then trains the member again from its last checkpoint, and
//! whatever the dead one was doing is never recorded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use poptune::{ExperimentDef, SyncMode};
use poptune_pg::{PostgresStore, Ready, ReadyView};
use poptune_store::{CheckpointRow, Checkpoints, Commit, Leases, MemberRow, RunStatus, Store};

use crate::book::garbage;
use crate::fault::{Failure, Fault, FaultKind};
use crate::local::{initial_members, CKPT_DIR, LOG_DIR};
use crate::pool::{Cancel, ProcessWorkers, SegmentRequest, Workers};
use crate::settle::{Books, Finished, Trained};
use crate::RunError;

/// Creates the experiment `def` in the database at `url`, or joins it if it exists with the
/// same definition.
pub fn create_or_join(url: &str, def: &ExperimentDef) -> Result<bool, RunError> {
    let mut store = PostgresStore::open(url, &def.name)?;
    match store.definition()? {
        Some((_, stored)) if ExperimentDef::from_json(&stored).is_ok_and(|s| s.same_as(def)) => {
            Ok(true)
        }
        Some(_) => Err(RunError::usage(format!(
            "{} already holds experiment `{}` with a different definition; give the new one another `name`",
            store.location(),
            def.name
        ))),
        None => {
            std::fs::create_dir_all(def.directory.join(CKPT_DIR)).map_err(|e| {
                RunError::io(
                    format!(
                        "cannot create the shared checkpoint directory {}",
                        def.directory.display()
                    ),
                    e,
                )
            })?;
            store.create(&def.name, &def.to_json(), &initial_members(def)?)?;
            Ok(false)
        }
    }
}

/// The experiment `name`'s definition, from the database at `url`.
pub fn definition(url: &str, name: &str) -> Result<(PostgresStore, ExperimentDef), RunError> {
    let store = PostgresStore::open(url, name)?;
    let (_, json) = store.definition()?.ok_or_else(|| {
        RunError::usage(format!(
            "{} holds no experiment `{name}`; create it with `poptune run EXPERIMENT.toml --store URL`",
            store.location()
        ))
    })?;
    let def = ExperimentDef::from_json(&json).map_err(|e| {
        RunError::Fatal(format!(
            "experiment `{name}`: the stored definition is unreadable: {e}"
        ))
    })?;
    Ok((store, def))
}

/// How a worker process ended.
#[derive(Debug, Clone, Default)]
pub struct WorkerSummary {
    /// Segments it recorded.
    pub segments: u64,
    /// Leases it lost (its segments were discarded).
    pub lost_leases: u64,
    /// Faults it recorded.
    pub faults: u64,
    /// How the experiment stands when the worker leaves.
    pub status: Option<RunStatus>,
}

fn host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into())
}

/// Runs `slots` worker threads on experiment `name` until it has finished.
pub fn work(
    url: &str,
    name: &str,
    slots: usize,
    lease: Duration,
    quiet: bool,
) -> Result<WorkerSummary, RunError> {
    let (_, def) = definition(url, name)?;
    let ckpts = Checkpoints::open(&def.directory.join(CKPT_DIR))?;
    let logs = def.directory.join(LOG_DIR);
    std::fs::create_dir_all(&logs)
        .map_err(|e| RunError::io(format!("cannot create {}", logs.display()), e))?;
    let id = format!("{}-{}", host(), std::process::id());
    if !quiet {
        tracing::info!(
            "worker {id}: experiment `{name}`, {slots} slot{}, lease {:.0} s, checkpoints in {}",
            if slots == 1 { "" } else { "s" },
            lease.as_secs_f64(),
            ckpts.root().display()
        );
    }
    let results: Vec<Result<WorkerSummary, RunError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..slots)
            .map(|slot| {
                let (def, ckpts, logs, id) = (&def, &ckpts, &logs, &id);
                s.spawn(move || {
                    slot_loop(
                        url,
                        def,
                        ckpts,
                        logs,
                        &format!("{id}-{slot}"),
                        slot,
                        lease,
                        quiet,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(RunError::Fatal("a worker thread panicked".into())))
            })
            .collect()
    });
    let mut total = WorkerSummary::default();
    for r in results {
        let r = r?;
        total.segments += r.segments;
        total.lost_leases += r.lost_leases;
        total.faults += r.faults;
    }
    total.status = Some(PostgresStore::open(url, name)?.status()?.0);
    Ok(total)
}

#[allow(clippy::too_many_arguments)]
fn slot_loop(
    url: &str,
    def: &ExperimentDef,
    ckpts: &Checkpoints,
    logs: &Path,
    owner: &str,
    slot: usize,
    lease: Duration,
    quiet: bool,
) -> Result<WorkerSummary, RunError> {
    let store = PostgresStore::open(url, &def.name)?;
    let beat = PostgresStore::open(url, &def.name)?;
    let mut trainable = def.trainable.clone();
    trainable
        .env
        .insert("POPTUNE_WORKER".into(), owner.to_string());
    let workers = ProcessWorkers::new(&trainable);
    let mut worker = workers.worker(slot, &logs.join(format!("{owner}.stderr.log")));
    let sync = def.policy.sync == SyncMode::Synchronous;
    let mut summary = WorkerSummary::default();
    loop {
        // A stop rule recorded by any worker ends the experiment for all.
        let (status, _) = store.status()?;
        if status.is_over() || matches!(status, RunStatus::Failed(_)) {
            break;
        }
        let members = store.members()?;
        let open: Vec<&MemberRow> = members.iter().filter(|m| !m.done).collect();
        let Some(min_step) = open.iter().map(|m| m.step).min() else {
            break;
        };
        let round = def.policy.next_stop(min_step, def.stop.steps);
        let asked = Instant::now();
        let Some(row) = store.claim(owner, lease, sync.then_some(round))? else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let stop = if sync {
            round
        } else {
            def.policy.next_stop(row.step, def.stop.steps)
        };
        let m = row.id;
        let leased = Leased {
            store: &store,
            beat: &beat,
            def,
            ckpts,
            owner,
            lease,
        };
        let (our_ckpt, outcome) = leased.segment(worker.as_mut(), &row, stop, asked);
        let Some(outcome) = outcome else {
            summary.lost_leases += 1;
            let _ = store.release(owner, m);
            if !quiet {
                tracing::warn!(
                    "{owner}: member {m}: the lease could not be renewed; its segment is stopped \
                     and discarded"
                );
            }
            continue;
        };
        match outcome? {
            Ready::LeaseLost => {
                summary.lost_leases += 1;
                if let Some(name) = our_ckpt {
                    let _ = ckpts.remove(&name);
                }
                if !quiet {
                    tracing::warn!(
                        "{owner}: lost the lease on member {m}; its segment is discarded"
                    );
                }
            }
            Ready::Done((forget, fault, fatal)) => {
                for name in forget {
                    let _ = ckpts.remove(&name);
                }
                if let Some(f) = fault {
                    summary.faults += 1;
                    if !quiet {
                        tracing::warn!("{owner}: member {m}: {} fault: {}", f.kind, f.message);
                    }
                } else {
                    summary.segments += 1;
                }
                if let Some(why) = fatal {
                    worker.finish();
                    return Err(RunError::Fatal(why));
                }
            }
        }
    }
    worker.finish();
    Ok(summary)
}

/// What a slot needs to train one claimed member under its lease.
struct Leased<'a> {
    store: &'a PostgresStore,
    beat: &'a PostgresStore,
    def: &'a ExperimentDef,
    ckpts: &'a Checkpoints,
    owner: &'a str,
    lease: Duration,
}

/// A leased segment's end: the checkpoint it wrote, and the ready transaction's answer
/// (`None`: the lease was at risk, the segment was stopped and nothing was recorded).
type LeasedOutcome = (
    Option<String>,
    Option<Result<Ready<Recorded>, poptune_store::StoreError>>,
);

impl Leased<'_> {
    /// Trains member `row` to `stop` while a heartbeat renews the lease claimed at `asked`,
    /// then records the segment in a ready transaction.
    fn segment(
        &self,
        worker: &mut dyn crate::pool::Worker,
        row: &MemberRow,
        stop: u64,
        asked: Instant,
    ) -> LeasedOutcome {
        let (def, owner, lease, m) = (self.def, self.owner, self.lease, row.id);
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
                        // Tried again next time; if it keeps failing, the deadline stops the
                        // segment.
                        Err(_) => {}
                    }
                }
            });
            let cancel = || watch.at_risk();
            let r = train(
                self.store, def, self.ckpts, worker, row, stop, owner, &cancel,
            );
            let our_ckpt = r.as_ref().ok().map(|t| t.checkpoint.name.clone());
            let outcome = match r {
                Err((f, _)) if f.kind == FaultKind::Cancelled => None,
                r => Some(self.store.ready(owner, m, |view| {
                    record(
                        def,
                        view,
                        Finished {
                            member: m,
                            stop,
                            outcome: r,
                        },
                    )
                })),
            };
            drop(done_tx);
            (our_ckpt, outcome)
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn train(
    store: &PostgresStore,
    def: &ExperimentDef,
    ckpts: &Checkpoints,
    worker: &mut dyn crate::pool::Worker,
    row: &MemberRow,
    stop: u64,
    owner: &str,
    cancel: &Cancel<'_>,
) -> Result<Trained, Failure> {
    let fault = |kind: FaultKind, message: String| (Fault::new(kind, message), String::new());
    let restore = match &row.checkpoint {
        None => None,
        Some(name) => {
            let sum = store
                .checkpoint(name)
                .map_err(|e| fault(FaultKind::Checkpoint, e.to_string()))?
                .map(|c| c.checksum)
                .ok_or_else(|| {
                    fault(FaultKind::Checkpoint, format!("{name} is not in the index"))
                })?;
            ckpts
                .verify(name, &sum)
                .map_err(|e| fault(FaultKind::Checkpoint, e.to_string()))?;
            Some((ckpts.path(name), name.clone()))
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
        timeout: Duration::from_secs_f64(def.trainable.step_timeout),
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

fn short_hash(s: &str) -> String {
    // FNV-1a, enough to tell workers apart in a file name.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    format!("{:08x}", h as u32)
}

/// What a ready transaction recorded: the checkpoints to delete, the fault if any, and a fatal
/// error if the run cannot go on.
type Recorded = (Vec<String>, Option<Fault>, Option<String>);

/// The ready transaction's content: the segment (or fault) settled on the state the
/// transaction read, and the garbage. Returns the commit, and the checkpoints to delete, the
/// fault if any, and a fatal error if the run cannot go on.
fn record(def: &ExperimentDef, view: ReadyView, seg: Finished) -> (Commit, Recorded) {
    let mut c = Commit::default();
    // A store without a tally (written before tallies existed) counts exploits and faults
    // from here on.
    let mut books = Books::new(def, view.members, view.tally, view.events, 0, 0);
    if let RunStatus::Stopped(why) = &view.status {
        books.stop = Some(why.clone());
    }
    let fault = seg.outcome.as_ref().err().map(|(f, _)| f.clone());
    let out = books.settle(def, seg, view.elapsed, &mut c);
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

/// The shared directory of an experiment, for messages.
pub fn shared_dir(def: &ExperimentDef) -> PathBuf {
    def.directory.join(CKPT_DIR)
}
