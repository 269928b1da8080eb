//! Workers on many machines, coordinated by PostgreSQL.
//!
//! Every worker process runs `slots` threads. A thread claims a member (row lock with
//! `SKIP LOCKED` and a lease that a heartbeat extends), trains one segment with the external
//! trainable, makes the checkpoint durable in the shared checkpoint directory, and records
//! the segment, the ready decision and the lineage in one transaction that holds the
//! experiment's row lock and checks that the lease is still its own. A worker that dies loses
//! its lease; another worker then trains the member again from its last checkpoint, and
//! whatever the dead one was doing is never recorded.
//!
//! A worker rides out a database outage: it waits for the database, reconnecting with
//! backoff, up to [`WorkOptions::outage_limit`] (`outage`); a segment trained meanwhile is
//! recorded if its lease still holds by the database's clock once it is back (`segment`).
//! At its start and its end a worker removes the checkpoint directories that no worker can
//! record any more (`tidy`).

mod outage;
mod segment;
mod slot;
mod tidy;

use std::path::PathBuf;
use std::time::Duration;

use poptune::ExperimentDef;
use poptune_pg::PostgresStore;
use poptune_store::{Checkpoints, Commit, RunStatus, Store};

use crate::local::{initial_members, CKPT_DIR, LOG_DIR};
use crate::RunError;
pub use tidy::{tidy, Tidied};

/// Creates the experiment `def` in the database at `url`, or joins it if it exists with the
/// same definition.
pub fn create_or_join(url: &str, def: &ExperimentDef) -> Result<bool, RunError> {
    let mut store = PostgresStore::open(url, &def.name)?;
    let stored = store
        .definition()?
        .map(|(_, json)| ExperimentDef::from_json(&json).ok());
    match stored {
        Some(Some(s)) if s.same_as(def) => Ok(true),
        Some(Some(s)) if s.same_but_stop(def) => {
            new_stop_rules(&mut store, def)?;
            Ok(true)
        }
        Some(_) => Err(RunError::usage(format!(
            "{} already holds experiment `{}` with a different definition (only the `[stop]` \
             rules may change, to train it for longer); give the new one another `name`",
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

/// Records `def`'s stop rules for the stored experiment, which differs in nothing else, so
/// that it trains on: only once it is over (finished or stopped), when no worker is left
/// that read the old rules.
fn new_stop_rules(store: &mut PostgresStore, def: &ExperimentDef) -> Result<(), RunError> {
    let (status, _) = store.status()?;
    let live = !store.tidy_view()?.live_owners.is_empty();
    if !status.is_over() || live {
        return Err(RunError::usage(format!(
            "experiment `{}` in {} is still {status}, with workers that read its stop rules; \
             its `[stop]` table may change once it has finished or stopped: run this again then, \
             or run the file unchanged to join it",
            def.name,
            store.location()
        )));
    }
    let members = store
        .members()?
        .into_iter()
        .map(|mut m| {
            m.done = m.step >= def.stop.steps;
            m
        })
        .collect();
    store.commit(&Commit {
        definition: Some(def.to_json()),
        status: Some(RunStatus::Running),
        members,
        ..Commit::default()
    })?;
    Ok(())
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
    /// Database outages it rode out.
    pub outages: u64,
    /// Their total length, seconds.
    pub outage_seconds: f64,
    /// Abandoned checkpoint and temporary directories it removed.
    pub tidied: usize,
    /// How the experiment stands when the worker leaves.
    pub status: Option<RunStatus>,
}

/// How a worker works.
#[derive(Debug, Clone)]
pub struct WorkOptions {
    /// Members it trains at once (trainable processes).
    pub slots: usize,
    /// How long a claimed member stays leased without a heartbeat.
    pub lease: Duration,
    /// How long it waits for an unreachable database before it gives up.
    pub outage_limit: Duration,
    /// Log nothing.
    pub quiet: bool,
}

/// The default [`WorkOptions::outage_limit`]: five minutes.
pub const DEFAULT_OUTAGE_LIMIT: Duration = Duration::from_secs(300);

impl WorkOptions {
    /// `slots` slots and a lease of `lease`, the default outage limit, not quiet.
    pub fn new(slots: usize, lease: Duration) -> Self {
        WorkOptions {
            slots,
            lease,
            outage_limit: DEFAULT_OUTAGE_LIMIT,
            quiet: false,
        }
    }
}

fn host() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "host".into())
}

/// Runs `opts.slots` worker threads on experiment `name` until it has finished.
pub fn work(url: &str, name: &str, opts: &WorkOptions) -> Result<WorkerSummary, RunError> {
    let (store, def) = definition(url, name)?;
    // This machine's GPUs for this worker's slots.
    crate::devices::plan(&def.trainable, opts.slots)?;
    let ckpts = Checkpoints::open(&def.directory.join(CKPT_DIR))?;
    let logs = def.directory.join(LOG_DIR);
    std::fs::create_dir_all(&logs)
        .map_err(|e| RunError::io(format!("cannot create {}", logs.display()), e))?;
    let id = format!("{}-{}", host(), std::process::id());
    let slots = opts.slots;
    if !opts.quiet {
        tracing::info!(
            "worker {id}: experiment `{name}`, {slots} slot{}, lease {:.0} s, checkpoints in {}",
            if slots == 1 { "" } else { "s" },
            opts.lease.as_secs_f64(),
            ckpts.root().display()
        );
    }
    let mut tidied = tidy_logged(&store, &ckpts, &id, opts);
    let outage = outage::Outage::new(&id, store.location(), opts.outage_limit, opts.quiet);
    let results: Vec<Result<WorkerSummary, RunError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..slots)
            .map(|slot| {
                let one = slot::Slot {
                    url,
                    def: &def,
                    ckpts: &ckpts,
                    logs: &logs,
                    owner: format!("{id}-{slot}"),
                    slot,
                    opts,
                    outage: &outage,
                };
                s.spawn(move || one.run())
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
    (total.outages, total.outage_seconds) = outage.totals();
    // This connection has been idle since the start: one an outage cut is replaced without a
    // word (the slots have said what happened).
    let status = match store.status() {
        Err(_) if store.connection_lost() => outage.retry(&store, |s| {
            s.reconnect()?;
            s.status()
        })?,
        r => r?,
    };
    total.status = Some(status.0);
    tidied += tidy_logged(&store, &ckpts, &id, opts);
    total.tidied = tidied;
    Ok(total)
}

/// [`tidy`], said in a line when it removed something; a failure is only said (tidying is
/// never a reason to stop).
fn tidy_logged(store: &PostgresStore, ckpts: &Checkpoints, id: &str, opts: &WorkOptions) -> usize {
    match tidy(store, ckpts, opts.lease) {
        Ok(t) => {
            if !opts.quiet && t.checkpoints + t.temporary > 0 {
                tracing::info!(
                    "worker {id}: removed {} checkpoint director{} no index names and {} \
                     abandoned temporary one{} (left by killed workers or outages)",
                    t.checkpoints,
                    if t.checkpoints == 1 { "y" } else { "ies" },
                    t.temporary,
                    if t.temporary == 1 { "" } else { "s" }
                );
            }
            t.checkpoints + t.temporary
        }
        Err(e) => {
            if !opts.quiet {
                tracing::warn!("worker {id}: cannot tidy {}: {e}", ckpts.root().display());
            }
            0
        }
    }
}

/// The shared directory of an experiment, for messages.
pub fn shared_dir(def: &ExperimentDef) -> PathBuf {
    def.directory.join(CKPT_DIR)
}
