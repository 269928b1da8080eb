//! One slot of a worker: claim a member, train its segment under the lease, record it; until
//! the experiment is over. Every database call rides out an outage ([`Outage`]).

use std::path::Path;
use std::time::{Duration, Instant};

use poptune::{ExperimentDef, SyncMode};
use poptune_pg::{PostgresStore, Ready};
use poptune_store::{Checkpoints, Leases, MemberRow, RunStatus, Store};

use super::outage::Outage;
use super::segment::{Leased, Recorded};
use super::{WorkOptions, WorkerSummary};
use crate::pool::{ProcessWorkers, Workers};
use crate::RunError;

/// What a slot works with.
pub(super) struct Slot<'a> {
    pub url: &'a str,
    pub def: &'a ExperimentDef,
    pub ckpts: &'a Checkpoints,
    pub logs: &'a Path,
    /// The slot's worker name (the lease owner).
    pub owner: String,
    pub slot: usize,
    pub opts: &'a WorkOptions,
    pub outage: &'a Outage,
}

impl Slot<'_> {
    /// Trains members until the experiment is over.
    pub(super) fn run(&self) -> Result<WorkerSummary, RunError> {
        let (def, owner) = (self.def, self.owner.as_str());
        let store = PostgresStore::open(self.url, &def.name)?;
        let beat = PostgresStore::open(self.url, &def.name)?;
        let mut trainable = def.trainable.clone();
        trainable
            .env
            .insert("POPTUNE_WORKER".into(), owner.to_string());
        let workers = ProcessWorkers::new(&trainable);
        let mut worker = workers.worker(self.slot, &self.logs.join(format!("{owner}.stderr.log")));
        let leased = Leased {
            store: &store,
            beat: &beat,
            def,
            ckpts: self.ckpts,
            owner,
            lease: self.opts.lease,
            outage: self.outage,
        };
        let mut summary = WorkerSummary::default();
        let r = self.each_segment(&leased, worker.as_mut(), &mut summary);
        worker.finish();
        r.map(|()| summary)
    }

    fn each_segment(
        &self,
        leased: &Leased<'_>,
        worker: &mut dyn crate::pool::Worker,
        summary: &mut WorkerSummary,
    ) -> Result<(), RunError> {
        let (def, owner, store, outage) = (self.def, leased.owner, leased.store, self.outage);
        let sync = def.policy.sync == SyncMode::Synchronous;
        loop {
            // A stop rule recorded by any worker ends the experiment for all.
            let (status, _) = outage.retry(store, |s| s.status())?;
            if status.is_over() || matches!(status, RunStatus::Failed(_)) {
                return Ok(());
            }
            let members = outage.retry(store, |s| s.members())?;
            let open: Vec<&MemberRow> = members.iter().filter(|m| !m.done).collect();
            let Some(min_step) = open.iter().map(|m| m.step).min() else {
                return Ok(());
            };
            let round = def.policy.next_stop(min_step, def.stop.steps);
            // Before the first try: a claim that landed though its answer was lost leaves a
            // lease that runs out unused, and the deadline counts from the first try.
            let asked = Instant::now();
            let below = sync.then_some(round);
            let claimed = outage.retry(store, |s| s.claim(owner, self.opts.lease, below))?;
            let Some(row) = claimed else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            let stop = if sync {
                round
            } else {
                def.policy.next_stop(row.step, def.stop.steps)
            };
            // The checksum of the checkpoint to restore, read before training so that an
            // outage here is waited out rather than recorded as the member's fault.
            let restore = match &row.checkpoint {
                None => None,
                Some(name) => {
                    let found = outage.retry(store, |s| s.checkpoint(name))?;
                    Some((name.clone(), found.map(|c| c.checksum)))
                }
            };
            let (ours, outcome) = leased.segment(worker, &row, restore, stop, asked);
            let m = row.id;
            match outcome {
                None => {
                    summary.lost_leases += 1;
                    outage.retry(store, |s| s.release(owner, m))?;
                    self.say(format_args!(
                        "{owner}: member {m}: the lease could not be renewed; its segment is \
                         stopped and discarded"
                    ));
                }
                Some(Err(e)) => return Err(e),
                Some(Ok(Ready::LeaseLost)) => self.lease_lost(leased, m, ours, summary),
                Some(Ok(Ready::Done(recorded))) => {
                    if let Some(why) = self.recorded(leased, m, recorded, summary) {
                        return Err(RunError::Fatal(why));
                    }
                }
            }
        }
    }

    /// A ready transaction found the lease gone. If it was a second try, the first may have
    /// landed though its answer was lost: the index says whether it did, and a checkpoint the
    /// index names is never deleted (one this worker cannot check now is left for
    /// [`super::tidy`]).
    fn lease_lost(
        &self,
        leased: &Leased<'_>,
        m: usize,
        ours: Option<String>,
        summary: &mut WorkerSummary,
    ) {
        let owner = leased.owner;
        let Some(name) = ours else {
            summary.lost_leases += 1;
            self.say(format_args!(
                "{owner}: lost the lease on member {m}; its segment is discarded"
            ));
            return;
        };
        match self.outage.retry(leased.store, |s| s.checkpoint(&name)) {
            Ok(Some(_)) => {
                summary.segments += 1;
                self.say(format_args!(
                    "{owner}: member {m}: its segment was recorded before the connection was \
                     lost"
                ));
            }
            Ok(None) => {
                summary.lost_leases += 1;
                let _ = leased.ckpts.remove(&name);
                self.say(format_args!(
                    "{owner}: lost the lease on member {m}; its segment is discarded"
                ));
            }
            Err(_) => summary.lost_leases += 1,
        }
    }

    /// A recorded segment: deletes the checkpoints it made garbage; the fatal error, if any.
    fn recorded(
        &self,
        leased: &Leased<'_>,
        m: usize,
        (forget, fault, fatal): Recorded,
        summary: &mut WorkerSummary,
    ) -> Option<String> {
        for name in forget {
            let _ = leased.ckpts.remove(&name);
        }
        if let Some(f) = fault {
            summary.faults += 1;
            self.say(format_args!(
                "{}: member {m}: {} fault: {}",
                leased.owner, f.kind, f.message
            ));
        } else {
            summary.segments += 1;
        }
        fatal
    }

    fn say(&self, line: std::fmt::Arguments<'_>) {
        if !self.opts.quiet {
            tracing::warn!("{line}");
        }
    }
}
