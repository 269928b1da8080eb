//! Guided decisions made without the runner's lock: [`Books::pending`] takes the snapshot,
//! [`Pending::decide`] runs the GP, [`Books::resolve`] settles the decision.

use poptune::{ExperimentDef, Population};
use poptune_store::{Commit, MemberRow};

use super::Books;

/// A guided ready decision taken out of the books, to be made without holding their lock: the
/// population as it was, and the member's decision RNG.
pub struct Pending {
    member: usize,
    pop: Population,
    rng: rand_pcg::Pcg64Mcg,
}

impl Pending {
    /// Makes the decision (the expensive part: PB2's GP), on the snapshot taken.
    pub fn decide(&mut self, def: &ExperimentDef) -> poptune::Decision {
        def.policy.decide_guided(
            &def.space,
            &self.pop,
            self.member,
            Some(&crate::guide::Pb2Guide),
            &[],
            &mut self.rng,
        )
    }
}

impl Books {
    /// Asynchronous guided decisions (PB2's) are handed back to be made without the lock.
    pub fn deferring(mut self) -> Self {
        self.defer = true;
        self
    }

    /// Takes member `m`'s deferred decision out: the snapshot it decides on and its RNG.
    pub fn pending(&mut self, def: &ExperimentDef, m: usize) -> Pending {
        let row = &mut self.members[m];
        row.decisions += 1;
        let rng = poptune::rng_for(
            def.seed,
            poptune::Stream::Decision,
            m,
            row.step,
            row.decisions,
        );
        Pending {
            member: m,
            pop: self.pop.clone(),
            rng,
        }
    }

    /// Settles a deferred decision into `c`, against the donor's state now (a donor that has
    /// meanwhile fallen behind the member is not copied); whether the member trains on.
    pub fn resolve(
        &mut self,
        def: &ExperimentDef,
        m: usize,
        decision: poptune::Decision,
        c: &mut Commit,
    ) -> bool {
        let key = |r: &MemberRow| r.score.map_or(f64::NEG_INFINITY, |s| def.mode.key(s));
        let decision = match decision {
            // The donor moved on meanwhile: not behind the member, and still better.
            poptune::Decision::Exploit { donor, .. }
                if self.members[donor].step < self.members[m].step
                    || self.members[donor].checkpoint.is_none()
                    || key(&self.members[donor]) <= key(&self.members[m]) =>
            {
                poptune::Decision::Continue
            }
            d => d,
        };
        let seq = self.seq;
        if let Some(e) = self.book(def).apply_decision(m, decision, seq) {
            self.note_event(&e);
            c.events.push(e);
        }
        self.record_row(m, c);
        c.tally = Some(self.tally.clone());
        !self.members[m].done
    }
}
