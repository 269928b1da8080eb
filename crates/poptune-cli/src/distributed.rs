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

use anyhow::{anyhow, Context};
use poptune::SyncMode;
use poptune_pg::{PostgresStore, Ready};
use poptune_store::{CheckpointRow, Checkpoints, Commit, FaultRow, MemberRow, StepRow, Store};

use crate::config::ExperimentDef;
use crate::decisions::{garbage, population, Book};
use crate::durable::{initial_members, CKPT_DIR, LOG_DIR};
use crate::external::{Fault, Step};
use crate::worker::{Cancel, Failure, ProcessWorkers, SegmentRequest, Workers, CANCELLED};
use crate::CliError;

/// Creates the experiment `def` in the database at `url`, or joins it if it exists with the
/// same definition.
pub fn create_or_join(url: &str, def: &ExperimentDef) -> Result<bool, CliError> {
    let mut store = PostgresStore::open(url, &def.name)?;
    let json = serde_json::to_string(def)?;
    match store.definition()? {
        Some((_, stored)) if stored == json => Ok(true),
        Some(_) => Err(CliError::usage(anyhow!(
            "{} already holds experiment `{}` with a different definition; give the new one another `name`",
            store.location(),
            def.name
        ))),
        None => {
            std::fs::create_dir_all(def.directory.join(CKPT_DIR)).with_context(|| {
                format!(
                    "cannot create the shared checkpoint directory {}",
                    def.directory.display()
                )
            })?;
            store.create(&def.name, &json, &initial_members(def)?)?;
            Ok(false)
        }
    }
}

/// The experiment `name`'s definition, from the database at `url`.
pub fn definition(url: &str, name: &str) -> Result<(PostgresStore, ExperimentDef), CliError> {
    let store = PostgresStore::open(url, name)?;
    let (_, json) = store.definition()?.ok_or_else(|| {
        CliError::usage(anyhow!(
            "{} holds no experiment `{name}`; create it with `poptune run EXPERIMENT.toml --store URL`",
            store.location()
        ))
    })?;
    let def: ExperimentDef = serde_json::from_str(&json)
        .with_context(|| format!("experiment `{name}`: the stored definition is unreadable"))?;
    Ok((store, def))
}

/// How a worker process ended.
pub struct WorkerSummary {
    pub segments: u64,
    pub lost_leases: u64,
    pub faults: u64,
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
) -> Result<WorkerSummary, CliError> {
    let (_, def) = definition(url, name)?;
    let ckpts = Checkpoints::open(&def.directory.join(CKPT_DIR))?;
    let logs = def.directory.join(LOG_DIR);
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let id = format!("{}-{}", host(), std::process::id());
    if !quiet {
        eprintln!(
            "worker {id}: experiment `{name}`, {slots} slot{}, lease {:.0} s, checkpoints in {}",
            if slots == 1 { "" } else { "s" },
            lease.as_secs_f64(),
            ckpts.root().display()
        );
    }
    let results: Vec<Result<WorkerSummary, CliError>> = std::thread::scope(|s| {
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
                    .unwrap_or_else(|_| Err(anyhow!("a worker thread panicked").into()))
            })
            .collect()
    });
    let mut total = WorkerSummary {
        segments: 0,
        lost_leases: 0,
        faults: 0,
    };
    for r in results {
        let r = r?;
        total.segments += r.segments;
        total.lost_leases += r.lost_leases;
        total.faults += r.faults;
    }
    Ok(total)
}

/// A trained segment: steps, the checkpoint's name and checksum.
type Trained = (Vec<Step>, String, String);

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
) -> Result<WorkerSummary, CliError> {
    let store = PostgresStore::open(url, &def.name)?;
    let beat = PostgresStore::open(url, &def.name)?;
    let mut trainable = def.trainable.clone();
    trainable
        .env
        .insert("POPTUNE_WORKER".into(), owner.to_string());
    let workers = ProcessWorkers::new(&trainable);
    let mut worker = workers.worker(slot, &logs.join(format!("{owner}.stderr.log")));
    let sync = def.policy.sync == SyncMode::Synchronous;
    let mut summary = WorkerSummary {
        segments: 0,
        lost_leases: 0,
        faults: 0,
    };
    loop {
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
        let watch = LeaseWatch::new(asked, lease);
        let m = row.id;
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (beat, watch) = (&beat, &watch);
        let (our_ckpt, outcome) = std::thread::scope(|s| {
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
                &store,
                def,
                ckpts,
                worker.as_mut(),
                &row,
                stop,
                owner,
                &cancel,
            );
            let our_ckpt = r.as_ref().ok().map(|t| t.1.clone());
            let outcome = match r {
                Err((f, _)) if f.kind == CANCELLED => None,
                r => Some(store.ready(owner, m, |members, index, events| {
                    record(def, members, index, events, m, stop, r)
                })),
            };
            drop(done_tx);
            (our_ckpt, outcome)
        });
        let Some(outcome) = outcome else {
            summary.lost_leases += 1;
            let _ = store.release(owner, m);
            if !quiet {
                eprintln!(
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
                    eprintln!("{owner}: lost the lease on member {m}; its segment is discarded");
                }
            }
            Ready::Done((forget, fault)) => {
                for name in forget {
                    let _ = ckpts.remove(&name);
                }
                if let Some(f) = fault {
                    summary.faults += 1;
                    if !quiet {
                        eprintln!("{owner}: member {m}: {} fault: {}", f.kind, f.message);
                    }
                } else {
                    summary.segments += 1;
                }
            }
        }
    }
    worker.finish();
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn train(
    store: &PostgresStore,
    def: &ExperimentDef,
    ckpts: &Checkpoints,
    worker: &mut dyn crate::worker::Worker,
    row: &MemberRow,
    stop: u64,
    owner: &str,
    cancel: &Cancel<'_>,
) -> Result<Trained, Failure> {
    let fault = |kind: &'static str, message: String| (Fault { kind, message }, String::new());
    let restore = match &row.checkpoint {
        None => None,
        Some(name) => {
            let sum = store
                .checkpoint(name)
                .map_err(|e| fault("checkpoint", e.to_string()))?
                .map(|c| c.checksum)
                .ok_or_else(|| fault("checkpoint", format!("{name} is not in the index")))?;
            ckpts
                .verify(name, &sum)
                .map_err(|e| fault("checkpoint", e.to_string()))?;
            Some((ckpts.path(name), name.clone()))
        }
    };
    let tmp = ckpts
        .tmp_dir(&format!("m{}-{owner}", row.id))
        .map_err(|e| fault("checkpoint", e.to_string()))?;
    // Unique per worker: a worker that lost its lease never collides with the one that took
    // the member over.
    let name = format!("m{:04}-s{:08}-{}", row.id, stop, short_hash(owner));
    let req = SegmentRequest {
        member: row.id,
        start: row.step,
        steps: stop - row.step,
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
        fault("checkpoint", e.to_string())
    })?;
    Ok((steps, name, sum))
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

/// The ready transaction's content: the segment (or fault) of member `m`, its decision, the
/// round's decisions when it ends a synchronous round, and the garbage. Returns the commit,
/// and the checkpoints to delete with the fault, if any.
fn record(
    def: &ExperimentDef,
    mut members: Vec<MemberRow>,
    index: Vec<CheckpointRow>,
    events: u64,
    m: usize,
    stop: u64,
    result: Result<Trained, Failure>,
) -> (Commit, (Vec<String>, Option<Fault>)) {
    let mut c = Commit::default();
    let mut pop = population(def, &members);
    let sync = def.policy.sync == SyncMode::Synchronous;
    let mut index = index;
    let mut fault = None;
    match result {
        Ok((steps, name, checksum)) => {
            let last = steps.last().map_or(f64::NAN, |s| s.score);
            c.steps = steps
                .iter()
                .map(|s| StepRow {
                    member: m,
                    step: s.step,
                    score: s.score,
                    metrics: s.metrics.clone(),
                })
                .collect();
            let row = CheckpointRow {
                name: name.clone(),
                member: m,
                step: stop,
                checksum,
                score: last,
            };
            index.push(row.clone());
            c.checkpoints.push(row);
            pop.record_iter(m, stop, steps.iter().map(|s| s.score));
            let r = &mut members[m];
            r.step = stop;
            r.score = Some(last);
            r.recent = pop.member(m).recent_keys().iter().copied().collect();
            r.checkpoint = Some(name);
            r.failures = 0;
            r.done = stop >= def.stop.steps;
            let mut book = Book {
                def,
                pop: &mut pop,
                members: &mut members,
            };
            if !sync {
                if !book.members[m].done && def.policy.is_ready(stop) {
                    c.events.extend(book.decide(m, events));
                }
            } else {
                let round_over = book.members.iter().all(|r| r.done || r.step >= stop);
                if round_over && stop < def.stop.steps && def.policy.is_ready(stop) {
                    c.events.extend(book.sync_round(stop));
                    c.members
                        .extend(book.members.iter().filter(|r| r.id != m).cloned());
                }
            }
        }
        Err((f, stderr)) => {
            let step = members[m].step;
            c.faults.push(FaultRow {
                member: m,
                step,
                kind: f.kind.to_string(),
                message: f.message.clone(),
                stderr,
            });
            members[m].failures += 1;
            if members[m].failures > def.trainable.max_failures {
                let seq = if sync { stop } else { events };
                let mut book = Book {
                    def,
                    pop: &mut pop,
                    members: &mut members,
                };
                if let Ok(e) = book.replace(m, seq) {
                    c.events.push(e);
                }
            }
            fault = Some(f);
        }
    }
    c.members.push(members[m].clone());
    let referenced = members.iter().filter_map(|r| r.checkpoint.as_deref());
    c.forget = garbage(def.mode, referenced, index.iter());
    if members.iter().all(|r| r.done) {
        c.status = Some("finished".into());
    }
    let forget = c.forget.clone();
    (c, (forget, fault))
}

/// The shared directory of an experiment, for messages.
pub fn shared_dir(def: &ExperimentDef) -> PathBuf {
    def.directory.join(CKPT_DIR)
}
