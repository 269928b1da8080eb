//! The hyperparameters each recorded step was trained with. The step records do not carry
//! them: they are rebuilt from the members' initial hyperparameters and the lineage events.

use poptune::{Event, Hyperparams};
use poptune_store::StepRow;

/// One member's walk through its events.
struct Walk<'a> {
    /// Its events, in order.
    events: Vec<&'a Event>,
    /// The next event not applied yet.
    next: usize,
    /// Its step count now: the last step trained, or the step an event sent it to.
    at: u64,
    /// Its hyperparameters now.
    h: Hyperparams,
}

/// The hyperparameters behind each row of `steps` (in the store's order: by member, each
/// member's steps in the order trained), from the members' `initial` hyperparameters and the
/// lineage `events`.
///
/// A member's event happens when it is ready, at step `event.step`, after the last step of a
/// segment; the steps trained after it use the event's new hyperparameters, and the member
/// counts on from `event.donor_step`. Between two of a member's events its step only grows
/// (only an event sends it back, when it is replaced), so an event applies just before the
/// first step recorded after the member was at `event.step`. An event made before any step
/// of its member (a replacement after faults at the start) applies from its first step.
pub fn hyperparams_by_row(
    initial: &[Hyperparams],
    events: &[Event],
    steps: &[StepRow],
) -> Vec<Hyperparams> {
    let members = steps
        .iter()
        .map(|s| s.member + 1)
        .chain(events.iter().map(|e| e.recipient + 1))
        .max()
        .unwrap_or(0)
        .max(initial.len());
    let mut walks: Vec<Walk<'_>> = (0..members)
        .map(|m| {
            let mut own: Vec<&Event> = events.iter().filter(|e| e.recipient == m).collect();
            own.sort_by_key(|e| e.seq);
            Walk {
                events: own,
                next: 0,
                at: 0,
                h: initial.get(m).cloned().unwrap_or_default(),
            }
        })
        .collect();
    steps
        .iter()
        .map(|s| {
            let w = &mut walks[s.member];
            while let Some(e) = w.events.get(w.next).filter(|e| e.step == w.at) {
                w.h = e.new_h.clone();
                w.at = e.donor_step;
                w.next += 1;
            }
            w.at = s.step;
            w.h.clone()
        })
        .collect()
}

/// The names of every hyperparameter that appears, sorted.
pub(crate) fn names(initial: &[Hyperparams], events: &[Event]) -> Vec<String> {
    let mut set = std::collections::BTreeSet::new();
    for h in initial.iter().chain(events.iter().map(|e| &e.new_h)) {
        for (k, _) in h.iter() {
            set.insert(k.to_string());
        }
    }
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(lr: f64) -> Hyperparams {
        Hyperparams::new().with("lr", lr)
    }

    fn row(member: usize, epoch: u64, step: u64) -> StepRow {
        StepRow {
            member,
            epoch,
            step,
            score: 0.0,
            metrics: vec![],
        }
    }

    fn event(
        seq: u64,
        step: u64,
        recipient: usize,
        donor: Option<usize>,
        donor_step: u64,
        new: f64,
    ) -> Event {
        Event {
            seq,
            step,
            recipient,
            donor,
            donor_step,
            old_h: h(-1.0),
            new_h: h(new),
            recipient_score: 0.0,
            donor_score: donor.map(|_| 1.0),
        }
    }

    fn lrs(initial: &[Hyperparams], events: &[Event], steps: &[StepRow]) -> Vec<f64> {
        hyperparams_by_row(initial, events, steps)
            .iter()
            .map(|h| h.f64("lr").unwrap())
            .collect()
    }

    #[test]
    fn each_step_gets_the_hyperparameters_it_was_trained_with() {
        let initial = [h(0.1), h(0.2)];
        // Member 0: steps 1-2, ready at 2 and continues (no event), 3-4, ready at 4: copies
        // member 1's step-6 state (its step becomes 6) and explores to 0.3; then 7-8.
        // Member 1: steps 1-4, ready at 4: explores alone to 0.5; then 5-6.
        let events = [
            event(1, 4, 1, None, 4, 0.5),
            event(2, 4, 0, Some(1), 6, 0.3),
        ];
        let steps = [
            row(0, 0, 1),
            row(0, 0, 2),
            row(0, 1, 3),
            row(0, 1, 4),
            row(0, 2, 7),
            row(0, 2, 8),
            row(1, 0, 1),
            row(1, 0, 2),
            row(1, 0, 3),
            row(1, 0, 4),
            row(1, 1, 5),
            row(1, 1, 6),
        ];
        assert_eq!(
            lrs(&initial, &events, &steps),
            [0.1, 0.1, 0.1, 0.1, 0.3, 0.3, 0.2, 0.2, 0.2, 0.2, 0.5, 0.5]
        );
    }

    #[test]
    fn a_replacement_that_sends_a_member_back_applies_where_it_happened() {
        let initial = [h(0.1), h(0.2)];
        // Member 0 copies member 1 at its step 2 (step becomes 4, lr 0.3), trains 5-6, then
        // is replaced by member 1's step-2 state (lr 0.4) after faults, and trains 3-4; a
        // later event at step 4 (lr 0.6) must not apply at the first pass through step 4.
        let events = [
            event(1, 2, 0, Some(1), 4, 0.3),
            event(2, 6, 0, Some(1), 2, 0.4),
            event(3, 4, 0, None, 4, 0.6),
        ];
        let steps = [
            row(0, 0, 1),
            row(0, 0, 2),
            row(0, 1, 5),
            row(0, 1, 6),
            row(0, 2, 3),
            row(0, 2, 4),
            row(0, 3, 5),
        ];
        assert_eq!(
            lrs(&initial, &events, &steps),
            [0.1, 0.1, 0.3, 0.3, 0.4, 0.4, 0.6]
        );
        // A member replaced before its first step trains with the replacement's values.
        let events = [event(1, 0, 0, Some(1), 2, 0.7)];
        assert_eq!(lrs(&initial, &events, &[row(0, 1, 3)]), [0.7]);
    }
}
