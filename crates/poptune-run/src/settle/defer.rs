//! Guided decisions made without the runner's lock: [`Books::pending`] takes the snapshot,
//! [`Pending::decide`] runs the GP, [`Books::resolve`] settles the decision.
//!
//! A store shared by workers has no lock held in memory: there, [`decide_ahead`] makes the
//! decision on a snapshot read without the store's lock, and [`Books::settle_decided`] settles
//! the segment and that decision in the ready transaction.

use poptune::{Decision, ExperimentDef, Population};
use poptune_store::{Commit, MemberRow, Tally};

use super::{Books, Finished, Settled};

/// The guided ready decision (PB2's) that segment `seg` would lead to, made on a snapshot of
/// the store (`members`, `tally`, `seq`: as [`Books::new`] takes them) read without its lock;
/// `None` when the segment leads to none (a fault, no ready point, the member is done, or the
/// algorithm decides cheaply inside the lock anyway).
pub fn decide_ahead(
    def: &ExperimentDef,
    members: Vec<MemberRow>,
    tally: Option<Tally>,
    seq: u64,
    seg: &Finished,
    elapsed: f64,
) -> Option<Decision> {
    if seg.outcome.is_err() || !def.policy.algorithm.keeps_intervals() {
        return None;
    }
    let mut books = Books::new(def, members, tally, seq, 0, 0).deferring();
    let out = books.settle(def, seg.clone(), elapsed, &mut Commit::default());
    let m = out.deferred?;
    Some(books.pending(def, m).decide(def))
}

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

    /// Settles segment `seg` into `c` as [`settle`](Self::settle) does, with the member's
    /// asynchronous guided decision, if it comes to one, taken from `decided` (made beforehand
    /// by [`decide_ahead`], without the store's lock) and checked against the state now as
    /// [`resolve`](Self::resolve) does. Without `decided`, the decision is made here.
    pub fn settle_decided(
        &mut self,
        def: &ExperimentDef,
        seg: Finished,
        elapsed: f64,
        decided: Option<Decision>,
        c: &mut Commit,
    ) -> Settled {
        self.defer = true;
        let mut out = self.settle(def, seg, elapsed, c);
        self.defer = false;
        if let Some(m) = out.deferred.take() {
            let mut pending = self.pending(def, m);
            let decision = match decided {
                Some(d) => d,
                None => pending.decide(def),
            };
            // The member's row is recorded once, after the decision.
            c.members.retain(|r| r.id != m);
            out.requeue = self.resolve(def, m, decision, c);
            out.finished = self.done == self.members.len();
        }
        out
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
