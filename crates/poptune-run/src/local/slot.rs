//! A slot: one worker that claims members, trains their segments and settles them.

use std::collections::VecDeque;
use std::time::Duration;

use poptune::{Hyperparams, SyncMode};
use poptune_store::{CheckpointRow, Commit};

use super::{lock, progress, refill_round, Handoff, Shared, MAX_UNRECORDED};
use crate::events::{tell_settled, RunEvent};
use crate::fault::{Failure, Fault, FaultKind};
use crate::pool::{SegmentRequest, Worker, Workers};
use crate::settle::{time_is_up, Finished, Trained};

/// One segment to train.
struct Job {
    member: usize,
    /// The member's decisions so far: the epoch of the segment's steps.
    epoch: u64,
    h: Hyperparams,
    start: u64,
    stop: u64,
    restore: Option<(String, String)>,
}

/// The next segment to train, or `None` once the run is over for this slot.
fn claim(shared: &Shared<'_>) -> Option<Job> {
    let mut st = lock(&shared.state);
    loop {
        if st.fatal.is_some() || st.books.stop.is_some() {
            shared.cv.notify_all();
            return None;
        }
        if shared.cancel.cancelled() {
            // Interrupted: the segments under way are recorded, no new one starts.
            shared.cv.notify_all();
            return None;
        }
        if let Some(why) = time_is_up(shared.def, st.elapsed()) {
            shared.observer.event(&RunEvent::Stopping {
                reason: why.clone(),
            });
            st.books.stop = Some(why);
            continue;
        }
        if st.unrecorded >= MAX_UNRECORDED {
            // The disk is far behind: wait for it rather than risk more work on a crash.
            st = shared.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        let s = &mut *st;
        let (members, pace, round_stop) = (&s.books.members, &s.pace, s.round_stop);
        let next = take_next(&mut s.queue, |m| {
            let step = members.get(m).map_or(u64::MAX, |r| r.step);
            let stop = segment_stop(shared, round_stop, step);
            let pace = pace.get(m).copied().unwrap_or(0.0);
            (step, pace * stop.saturating_sub(step) as f64)
        });
        if let Some(m) = next {
            st.running += 1;
            st.training[m] = true;
            let row = &st.books.members[m];
            let stop = segment_stop(shared, st.round_stop, row.step);
            let restore = row.checkpoint.as_ref().map(|c| {
                (
                    c.clone(),
                    st.index
                        .get(c)
                        .map(|r| r.checksum.clone())
                        .unwrap_or_default(),
                )
            });
            return Some(Job {
                member: m,
                epoch: row.decisions,
                h: row.h.clone(),
                start: row.step,
                stop,
                restore,
            });
        }
        if st.running == 0 {
            shared.cv.notify_all();
            return None;
        }
        // Waiting for the others; a cancellation must still be seen.
        st = shared
            .cv
            .wait_timeout(st, Duration::from_millis(100))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Where a segment that starts at `step` ends: the round's boundary in synchronous mode, else
/// the member's next ready point (or the end of training).
fn segment_stop(shared: &Shared<'_>, round_stop: u64, step: u64) -> u64 {
    if shared.def.policy.sync == SyncMode::Synchronous {
        round_stop
    } else {
        shared.def.policy.next_stop(step, shared.def.stop.steps)
    }
}

/// The next member to train, out of the queue: the one with the fewest steps, and among
/// those the one whose next segment is expected to take longest (its pace so far: seconds per
/// step of its last segment; unknown counts as 0), then the first queued. `order` gives a
/// member's step and its next segment's expected seconds.
///
/// Fewest steps first keeps the population in step (as the distributed workers' claims keep
/// it, `ORDER BY step`): a member that copied a donor ahead of it waits for the others, and
/// the run does not end on one member left behind, trained segment after segment on one slot
/// while the other slots idle. Longest first among equals is the classic rule for finishing a
/// set of unequal jobs on several machines at about the same time: the slow members' last
/// segments start early, and the quick ones fill the other slots' time.
fn take_next(queue: &mut VecDeque<usize>, order: impl Fn(usize) -> (u64, f64)) -> Option<usize> {
    let at = queue
        .iter()
        .enumerate()
        .map(|(i, &m)| (i, order(m)))
        .min_by(|(_, (sa, ta)), (_, (sb, tb))| sa.cmp(sb).then(tb.total_cmp(ta)))
        .map(|(i, _)| i)?;
    queue.remove(at)
}

/// A slot: one worker (a trainable process, or an in-process trainable). After each segment
/// it places the checkpoint, settles the result in memory and hands the commit to the
/// committer; the member can train again at once, while its checkpoint is made durable and
/// recorded.
pub(super) fn slot_loop(
    shared: &Shared<'_>,
    workers: &dyn Workers,
    slot: usize,
    tx: std::sync::mpsc::Sender<Handoff>,
) {
    let log = super::slot_log(&shared.logs, slot);
    let mut worker = workers.worker(slot, &log);
    let mut first = true;
    while let Some(job) = claim(shared) {
        let began = std::time::Instant::now();
        let outcome = train(shared, worker.as_mut(), &job);
        let seconds = began.elapsed().as_secs_f64();
        let mut guard = lock(&shared.state);
        let st = &mut *guard;
        // A slot's first segment also waits for its process to start: no pace from it.
        if outcome.is_ok() && job.stop > job.start && !first {
            if let Some(p) = st.pace.get_mut(job.member) {
                *p = seconds / (job.stop - job.start) as f64;
            }
        }
        first = false;
        if matches!(&outcome, Err((f, _)) if f.kind == FaultKind::Cancelled) {
            // Stopped by hand: nothing of the segment is recorded; it trains again on resume.
            st.running -= 1;
            st.training[job.member] = false;
            shared.cv.notify_all();
            break;
        }
        let mut commit = Commit::default();
        let deferred = settle(shared, st, &job, outcome, &mut commit);
        // Handed over under the lock, so the committer records segments in the order their
        // decisions saw them: a decision is never recorded before a result it depended on.
        st.unrecorded += 1;
        let sent = tx.send(commit).is_ok();
        let pending = deferred.map(|m| st.books.pending(shared.def, m));
        shared.cv.notify_all();
        drop(guard);
        if let Some(p) = pending {
            if !decide_unlocked(shared, job.member, p, &tx) {
                break;
            }
        }
        if !sent {
            break;
        }
    }
    // The committer can record this slot's last segments while the trainable shuts down.
    drop(tx);
    worker.finish();
}

/// A guided decision (PB2's), made without the state's lock so that other slots settle and
/// claim meanwhile, then settled and handed to the committer; whether the committer is there.
fn decide_unlocked(
    shared: &Shared<'_>,
    m: usize,
    mut p: crate::settle::Pending,
    tx: &std::sync::mpsc::Sender<Handoff>,
) -> bool {
    let decision = p.decide(shared.def);
    let mut guard = lock(&shared.state);
    let st = &mut *guard;
    st.running -= 1;
    let mut c = Commit::default();
    let requeue = st.books.resolve(shared.def, m, decision, &mut c);
    tell_settled(shared.observer, &c);
    if requeue && st.fatal.is_none() {
        st.queue.push_back(m);
    }
    st.unrecorded += 1;
    let sent = tx.send(c).is_ok();
    shared.cv.notify_all();
    progress(shared, st, false);
    sent
}

/// Settles one segment's outcome into `c` and the state in memory, and tells the observer;
/// the member whose ready decision is to be made without the lock, if any (it still counts
/// as running meanwhile, so that no slot takes the run for over).
fn settle(
    shared: &Shared<'_>,
    st: &mut super::State,
    job: &Job,
    outcome: Result<Trained, Failure>,
    c: &mut Commit,
) -> Option<usize> {
    st.running -= 1;
    st.training[job.member] = false;
    let m = job.member;
    let elapsed = st.elapsed();
    let out = st.books.settle(
        shared.def,
        Finished {
            member: m,
            stop: job.stop,
            outcome,
        },
        elapsed,
        c,
    );
    st.faults += c.faults.len() as u64;
    tell_settled(shared.observer, c);
    if let Some(row) = c.checkpoints.first() {
        st.index.insert(row.name.clone(), row.clone());
    }
    if let Some(why) = out.stopped {
        shared.observer.event(&RunEvent::Stopping { reason: why });
    }
    if let Some(why) = out.fatal {
        st.fatal = Some(format!(
            "{why}; see the faults with `poptune status {}` and the logs in {}",
            shared.def.directory.display(),
            shared.logs.display()
        ));
    }
    if out.requeue && st.fatal.is_none() {
        st.queue.push_back(m);
    }
    if out.round_done {
        refill_round(shared, st);
    }
    progress(shared, st, false);
    let deferred = out.deferred.filter(|_| st.fatal.is_none());
    if deferred.is_some() {
        st.running += 1;
    }
    deferred
}

/// Trains one segment and places its checkpoint (not yet flushed).
fn train(shared: &Shared<'_>, worker: &mut dyn Worker, job: &Job) -> Result<Trained, Failure> {
    let no_stderr = |f: Fault| (f, String::new());
    let ckpt_fault =
        |e: poptune_store::StoreError| no_stderr(Fault::new(FaultKind::Checkpoint, e.to_string()));
    if let Some((name, sum)) = &job.restore {
        shared.ckpts.verify(name, sum).map_err(ckpt_fault)?;
    }
    let tmp = shared
        .ckpts
        .tmp_dir(&format!("m{}", job.member))
        .map_err(ckpt_fault)?;
    let restore = job
        .restore
        .as_ref()
        .map(|(n, _)| (shared.ckpts.path(n), n.as_str()));
    // Unique: a member reaches the same step again only in a later epoch (after an exploit
    // of a donor behind it).
    let name = format!("m{:04}-e{:06}-s{:08}", job.member, job.epoch, job.stop);
    let cancelled = || shared.cancel.cancelled();
    let req = SegmentRequest {
        member: job.member,
        start: job.start,
        steps: job.stop.saturating_sub(job.start),
        h: &job.h,
        restore: restore.as_ref().map(|(p, n)| (p.as_path(), *n)),
        checkpoint: (&tmp, &name),
        timeout: Duration::from_secs_f64(shared.def.trainable.step_timeout),
        cancel: Some(&cancelled),
    };
    let observer = shared.observer;
    let placed = worker
        .train(&req, &mut |s| {
            observer.event(&RunEvent::Step {
                member: job.member,
                step: s.step,
            })
        })
        .and_then(|steps| match shared.ckpts.place(&tmp, &name) {
            Ok(Some(sum)) => Ok(Trained {
                steps,
                checkpoint: CheckpointRow {
                    name: name.clone(),
                    member: job.member,
                    step: job.stop,
                    checksum: sum,
                    score: f64::NAN,
                },
            }),
            Ok(None) => Err(no_stderr(Fault::new(
                FaultKind::Protocol,
                format!(
                    "said \"saved\" but wrote no files into the checkpoint directory {}",
                    tmp.display()
                ),
            ))),
            Err(e) => Err(ckpt_fault(e)),
        });
    if placed.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_trained_member_is_claimed_first_then_the_slowest_then_the_first_queued() {
        // (step, expected seconds of the next segment) of members 0..=4: member 2 copied a
        // donor ahead; 0, 3 and 4 are behind, 4 is slow, 0 and 3 tie; 1 is unknown.
        let at = [(40, 1.0), (80, 0.0), (120, 9.0), (40, 1.0), (40, 5.0)];
        let mut queue: VecDeque<usize> = [2, 1, 3, 0, 4].into();
        let order: Vec<usize> = std::iter::from_fn(|| take_next(&mut queue, |m| at[m])).collect();
        assert_eq!(order, vec![4, 3, 0, 1, 2]);
        assert!(queue.is_empty());
    }
}
