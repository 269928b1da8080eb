//! Checks shared by the integration tests.

use poptune::Event;
use poptune_store::{MemberRow, StepRow};

/// What the recorded history of a run must say of every member, at any stop: each epoch
/// (stretch of training between decisions) records contiguous steps, each once, starting where
/// the member's state was (0, where its previous epoch ended, or the step of a donor state it
/// copied); and its step is where its state is now (its last trained step or a copied one).
pub fn check_histories(steps: &[StepRow], events: &[Event], members: &[MemberRow]) {
    for m in members {
        let copied: Vec<u64> = events
            .iter()
            .filter(|e| e.recipient == m.id && e.donor.is_some())
            .map(|e| e.donor_step)
            .collect();
        let mut at: Vec<u64> = vec![0];
        at.extend(&copied);
        let mut epochs: Vec<(u64, Vec<u64>)> = Vec::new();
        for s in steps.iter().filter(|s| s.member == m.id) {
            match epochs.last_mut() {
                Some((e, v)) if *e == s.epoch => v.push(s.step),
                _ => epochs.push((s.epoch, vec![s.step])),
            }
        }
        let mut last_end = 0;
        for (e, v) in &epochs {
            let first = v[0];
            assert!(
                at.contains(&(first - 1)),
                "member {} epoch {e} starts at step {first}, where its state never was ({at:?})",
                m.id
            );
            assert_eq!(
                *v,
                (first..first + v.len() as u64).collect::<Vec<_>>(),
                "member {} epoch {e}: no gap, no step twice",
                m.id
            );
            last_end = first + v.len() as u64 - 1;
            at.push(last_end);
        }
        assert!(
            m.step == last_end || copied.contains(&m.step),
            "member {}'s step {} is neither its last trained step {last_end} nor a copied one",
            m.id,
            m.step
        );
    }
}
