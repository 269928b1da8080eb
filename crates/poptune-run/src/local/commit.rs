//! The committer: records the segments that the slots settled, in order and in groups, each
//! group's checkpoints made durable by one flush before its one transaction.

use std::time::{Duration, Instant};

use poptune_store::{CheckpointRow, Commit, RunStatus, Store};

use super::{lock, Handoff, Shared, State};

/// The committer: takes the segments waiting (group commit, at most one flush every
/// [`FLUSH_EVERY`]), deletes the checkpoints among them that are already superseded (they are
/// never written to disk), makes the others durable with one flush of the file system, then
/// records the batch in one transaction, in order, together with the older checkpoints that
/// nothing needs any more. A checkpoint is recorded only once it is durable, so after a crash
/// the store names only whole checkpoints.
pub(super) fn committer(
    shared: &Shared<'_>,
    rx: std::sync::mpsc::Receiver<Handoff>,
    gc: std::sync::mpsc::SyncSender<Vec<String>>,
) {
    // No flush yet: the first group then collects for a whole period from its first
    // segment (the trainables' start-up is over by then), rather than being one segment.
    let mut last_flush: Option<Instant> = None;
    let mut end_recorded = false;
    let mut slots_done = false;
    while !slots_done {
        let Ok(first) = rx.recv() else { break };
        // Collect segments until the flush is due. Each arrival is taken into the batch at
        // once, and the batch's checkpoints that newer ones have superseded are deleted
        // while waiting (they are never written to disk), so that the flush can start as
        // soon as it is due, and the last one as soon as the slots stop.
        let mut c = Commit::default();
        let mut forget = std::collections::BTreeSet::new();
        let mut arrived = vec![first];
        let mut n = 0;
        let deadline = last_flush.unwrap_or_else(Instant::now) + FLUSH_EVERY;
        loop {
            while let Ok(more) = rx.try_recv() {
                arrived.push(more);
            }
            n += arrived.len();
            let superseded = absorb(shared, &mut c, &mut forget, std::mem::take(&mut arrived));
            for name in &superseded {
                let _ = shared.ckpts.recycle(name);
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match rx.recv_timeout(deadline - now) {
                Ok(more) => arrived.push(more),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    slots_done = true;
                    break;
                }
            }
        }
        last_flush = Some(Instant::now());
        c.forget = forget.into_iter().collect();
        if slots_done {
            // Every slot has stopped and this batch holds their last segments: the run's
            // end is recorded with it, in the same transaction.
            c.status = Some(end_status(&lock(&shared.state)));
        }
        let placed: Vec<String> = c.checkpoints.iter().map(|r| r.name.clone()).collect();
        if let Err(e) = shared.ckpts.flush(&placed) {
            fail(shared, format!("cannot flush the checkpoints to disk: {e}"));
            return;
        }
        {
            // The running time up to this commit.
            let mut st = lock(&shared.state);
            let now = Instant::now();
            c.elapsed = (now - st.last_commit).as_secs_f64();
            st.last_commit = now;
        }
        let committed = match shared
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            Some(store) => store.commit(&c),
            None => return,
        };
        if let Err(e) = committed {
            fail(shared, format!("cannot record the results: {e}"));
            return;
        }
        end_recorded = c.status.is_some();
        {
            let mut st = lock(&shared.state);
            for name in &c.forget {
                st.recorded_index.remove(name);
                st.index.remove(name);
            }
            st.unrecorded -= n;
            shared.cv.notify_all();
        }
        if !c.forget.is_empty() {
            let _ = gc.send(c.forget);
        }
    }
    // Every slot has stopped: nothing more will be recorded.
    drop(gc);
    record_end(shared, end_recorded);
}

/// The longest a segment waits to be recorded (unless the disk is slower). Waiting lets one
/// flush cover many segments, and a member's checkpoint that a newer one supersedes in the
/// meantime is deleted before it is ever written to disk.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// How the run ended, once no slot trains any more.
pub(super) fn end_status(st: &State) -> RunStatus {
    if st.books.members.iter().all(|m| m.done) {
        RunStatus::Finished
    } else if let Some(why) = &st.books.stop {
        RunStatus::Stopped(why.clone())
    } else if let Some(why) = &st.fatal {
        RunStatus::Failed(why.clone())
    } else {
        RunStatus::Interrupted
    }
}

/// Records how the run ended, unless the last batch did, and closes the store (its last
/// flush to the database file happens here, while the trainables shut down).
fn record_end(shared: &Shared<'_>, recorded: bool) {
    let mut st = lock(&shared.state);
    let Some(mut store) = shared
        .store
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    else {
        return;
    };
    if !recorded {
        let c = Commit {
            status: Some(end_status(&st)),
            elapsed: st.last_commit.elapsed().as_secs_f64(),
            ..Commit::default()
        };
        if let Err(e) = store.commit(&c) {
            st.fatal = Some(format!("cannot record the end of the run: {e}"));
        }
    }
    // Closing the database (its last write) need not hold up the slots' state.
    drop(st);
    drop(store);
}

/// Stops the run with a fatal error.
pub(super) fn fail(shared: &Shared<'_>, why: String) {
    let mut st = lock(&shared.state);
    if st.fatal.is_none() {
        st.fatal = Some(why);
    }
    shared.cv.notify_all();
}

/// Takes segments that arrived into the batch `c`, which becomes one commit. `forget` gathers
/// the recorded checkpoints that no member needs any more, neither in memory nor in the store
/// once the commit lands; the batch's own checkpoints that are unneeded already are taken out
/// of it and returned, to be deleted before the flush.
fn absorb(
    shared: &Shared<'_>,
    c: &mut Commit,
    forget: &mut std::collections::BTreeSet<String>,
    arrived: Vec<Handoff>,
) -> Vec<String> {
    let mut guard = lock(&shared.state);
    let st = &mut *guard;
    let mut placed = Vec::new();
    for part in arrived {
        c.steps.extend(part.steps);
        placed.extend(part.checkpoints);
        for m in &part.members {
            st.recorded_refs[m.id] = m.checkpoint.clone();
        }
        c.members.extend(part.members);
        c.events.extend(part.events);
        c.faults.extend(part.faults);
        // The totals after the batch's last segment.
        if part.tally.is_some() {
            c.tally = part.tally;
        }
    }
    // The store's view once this commit lands. A checkpoint that neither it nor the members
    // in memory (which run ahead of it) refer to is never needed again: a member only ever
    // comes to refer to a checkpoint that another member refers to at that moment.
    for row in &placed {
        st.recorded_index.insert(row.name.clone(), row.clone());
    }
    c.checkpoints.extend(placed);
    let referenced = st
        .recorded_refs
        .iter()
        .flatten()
        .chain(
            st.books
                .members
                .iter()
                .filter_map(|m| m.checkpoint.as_ref()),
        )
        .map(String::as_str);
    let unneeded: std::collections::BTreeSet<String> =
        crate::book::garbage(shared.def.mode, referenced, st.recorded_index.values())
            .into_iter()
            .collect();
    let (superseded, kept): (Vec<CheckpointRow>, Vec<CheckpointRow>) = c
        .checkpoints
        .drain(..)
        .partition(|r| unneeded.contains(&r.name));
    c.checkpoints = kept;
    for r in &superseded {
        st.recorded_index.remove(&r.name);
        st.index.remove(&r.name);
    }
    let mine: std::collections::BTreeSet<&str> =
        superseded.iter().map(|r| r.name.as_str()).collect();
    forget.extend(unneeded.into_iter().filter(|n| !mine.contains(n.as_str())));
    superseded.into_iter().map(|r| r.name).collect()
}
