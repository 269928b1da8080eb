//! The best member's ancestry in the family tree: the stretches of members' training its
//! final state went through, and the exploits between them. It follows the events back the
//! way `poptune::lineage::schedule` does, so it is the line that `poptune replay` retrains.

use poptune::Event;
use serde::Serialize;

/// The ancestry of one member's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Ancestry {
    /// `[member, from_step, to_step]`: the member trained the state from one step to the other.
    pub pieces: Vec<[u64; 3]>,
    /// Every exploit on the line (the events it copied through), as `[seq, recipient]`: a
    /// synchronous round's exploits share one `seq`.
    pub exploits: Vec<[u64; 2]>,
}

/// The ancestry of `member`'s state at `final_step`.
pub(crate) fn ancestry(events: &[Event], member: usize, final_step: u64) -> Ancestry {
    let mut out = Ancestry::default();
    let mut current = member;
    let mut limit = u64::MAX;
    let mut end = final_step;
    // At most one piece per event, plus the first.
    for _ in 0..=events.len() {
        let last = events
            .iter()
            .filter(|e| e.recipient == current && e.seq < limit)
            .max_by_key(|e| e.seq);
        let Some(e) = last else {
            out.pieces.push([current as u64, 0, end]);
            break;
        };
        out.pieces
            .push([current as u64, e.donor_step.min(end), end]);
        limit = e.seq;
        match e.donor {
            Some(d) => {
                out.exploits.push([e.seq, e.recipient as u64]);
                current = d;
                end = e.donor_step;
            }
            None => end = e.step,
        }
    }
    out.pieces.reverse();
    out.exploits.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use poptune::Hyperparams;

    fn exploit(seq: u64, recipient: usize, donor: usize, step: u64) -> Event {
        Event {
            seq,
            step,
            recipient,
            donor: Some(donor),
            donor_step: step,
            old_h: Hyperparams::new(),
            new_h: Hyperparams::new(),
            recipient_score: 0.0,
            donor_score: Some(1.0),
        }
    }

    #[test]
    fn the_line_goes_back_through_each_donor() {
        // 2 copied 1 at step 10; 0 copied 2 at step 20; 0 ends at 30.
        let events = vec![exploit(0, 2, 1, 10), exploit(1, 0, 2, 20)];
        let a = ancestry(&events, 0, 30);
        assert_eq!(a.pieces, vec![[1, 0, 10], [2, 10, 20], [0, 20, 30]]);
        assert_eq!(a.exploits, vec![[0, 2], [1, 0]]);
        let b = ancestry(&events, 1, 30);
        assert_eq!(b.pieces, vec![[1, 0, 30]]);
        assert!(b.exploits.is_empty());
    }

    #[test]
    fn a_synchronous_rounds_other_exploits_are_not_on_the_line() {
        // One round at step 10 (seq 10): 2 copied 1, and 3 copied 1 too; then 0 copied 2.
        let events = vec![
            exploit(10, 2, 1, 10),
            exploit(10, 3, 1, 10),
            exploit(20, 0, 2, 20),
        ];
        let a = ancestry(&events, 0, 30);
        assert_eq!(a.exploits, vec![[10, 2], [20, 0]]);
    }
}
