//! The guide of PB2 and PB2-Mix: their explore step, from the population's trails.

use poptune::trail::newest_intervals;
use poptune::{Algorithm, Guide, Hyperparams, MemberId, Policy, Population, Space};
use poptune_pb2::{Config, Pb2Data, Query, Row, DEFAULT_CAPACITY};

/// PB2's explore step: a GP bandit on the newest 1,000 intervals of the population (see
/// `poptune-pb2` and `docs/pb2.md`).
pub struct Pb2Guide;

/// PB2's rows from the population's trails: the newest 1,000 intervals, in step order.
pub fn data(pop: &Population) -> Pb2Data {
    let mut data = Pb2Data::with_capacity(DEFAULT_CAPACITY);
    let trails = pop.members().iter().enumerate().map(|(m, v)| (m, &v.trail));
    for (member, i) in newest_intervals(trails, DEFAULT_CAPACITY) {
        if i.t <= i.t0 {
            continue;
        }
        let row = Row {
            member,
            t: i.t0 as f64,
            r_start: i.r0,
            h: i.h.clone(),
            y: (i.r - i.r0) / (i.t - i.t0) as f64,
        };
        // A row that is not finite is left out (the trainable reported such a score).
        let _ = data.push(row);
    }
    data
}

impl Guide for Pb2Guide {
    fn explore(
        &self,
        policy: &Policy,
        space: &Space,
        pop: &Population,
        _ready: MemberId,
        donor: MemberId,
        base: &Hyperparams,
        chosen_now: &[Hyperparams],
        mut rng: &mut dyn rand::RngCore,
    ) -> Hyperparams {
        let data = data(pop);
        let d = pop.member(donor);
        let donor_r = d.score.map_or(f64::NAN, |s| pop.mode().key(s));
        let q = Query::new(space, &data, d.step as f64, donor_r, base)
            .chosen(chosen_now)
            .mix(policy.algorithm == Algorithm::Pb2Mix);
        // The crate's defaults (the final fit on the newest 200 rows of the window).
        poptune_pb2::decide(&q, &Config::default(), &mut rng).h
    }
}
