//! PB2 and PB2-Mix (Parker-Holder et al., NeurIPS 2020; 2021): the explore step of
//! Population Based Training chosen by a time-varying Gaussian-process bandit instead of
//! random perturbation. This crate is the algorithmic core only; `docs/pb2.md` explains the
//! algorithm and what is integrated.
//!
//! A run records every ready point in a [`Pb2Data`] ([`Pb2Data::observe`], and
//! [`Pb2Data::restart`] after an exploit). When a member exploits a donor, [`suggest`] gives
//! the member's new hyperparameters: the ones a GP on the recent rows expects to improve the
//! reward fastest from the donor's time and reward, with an optimism bonus (UCB), kept apart
//! from the hyperparameters already handed out at this time (`chosen_now`).
//!
//! ```
//! use poptune::{Hyperparams, Param, Space};
//! use poptune_pb2::{suggest, Pb2Data, Query};
//! use rand::SeedableRng;
//!
//! let space = Space::new().with("lr", Param::float(0.0, 1.0));
//! let mut data = Pb2Data::new();
//! for m in 0..8 {
//!     let lr = m as f64 / 7.0;
//!     let h = Hyperparams::new().with("lr", lr);
//!     let mut r = 0.0;
//!     data.observe(m, 0.0, r, &h).unwrap();
//!     for t in 1..6 {
//!         r += 1.0 - (lr - 0.3f64).powi(2); // fastest near lr = 0.3
//!         data.observe(m, t as f64, r, &h).unwrap();
//!     }
//! }
//! let base = Hyperparams::new().with("lr", 0.9);
//! let q = Query::new(&space, &data, 5.0, 4.9, &base);
//! let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
//! let h = suggest(&q, &mut rng);
//! assert!(space.contains(&h));
//! ```

mod bandit;
mod data;
mod gp;
mod kernel;
mod lbfgs;
mod linalg;
mod norm;
mod phase;
mod posterior;
mod suggest;

use poptune::{Hyperparams, Space};
use rand::Rng;

pub use data::{Pb2Data, Row, DEFAULT_CAPACITY};
pub use kernel::{Hyper, MIX_LAMBDA};

use norm::Encoding;

/// What can go wrong when recording data.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Pb2Error {
    /// A time, reward or rate that is not a finite number (NaN or infinite).
    #[error("member {member} reported a value that is not a finite number at time {t}; the point is left out of PB2's data")]
    NonFinite {
        /// The member.
        member: usize,
        /// The time given.
        t: f64,
    },
}

/// Settings of a decision. The defaults are the algorithm's, but for the one fit on the newest
/// 200 rows and the one factorisation of all rows (`exact_window_scan`, `fit_rows`; see
/// `docs/pb2.md`).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Most rows used (the newest).
    pub max_rows: usize,
    /// The smallest window; with more rows, the window length is chosen (200).
    pub min_window: usize,
    /// The step between the window lengths tried (10).
    pub window_step: usize,
    /// The literal reading: each window normalised and fitted on its own while choosing the
    /// length (one fit per length), the chosen one refitted and factored afresh. Off (the
    /// default; see `docs/pb2.md`): the inputs are normalised over all rows, one set of
    /// hyperparameters is fitted on the newest `fit_rows` rows, and one factorisation of all
    /// rows scores every length and serves the chosen window's GP.
    pub exact_window_scan: bool,
    /// Most iterations of a hyperparameter fit (50).
    pub fit_iters: usize,
    /// The hyperparameters are fitted on the newest `fit_rows` rows (200; `usize::MAX`: all
    /// of them, or with `exact_window_scan` the whole window, as a literal reading says).
    /// The GP then conditions on the whole window.
    pub fit_rows: usize,
    /// Random starts of the acquisition's optimisation (10).
    pub starts: usize,
    /// Most iterations from each start (30).
    pub acq_iters: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_rows: DEFAULT_CAPACITY,
            min_window: 200,
            window_step: 10,
            exact_window_scan: false,
            fit_iters: 50,
            fit_rows: 200,
            starts: 10,
            acq_iters: 30,
        }
    }
}

/// One question to PB2: new hyperparameters for a member that takes the donor's state.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    /// The search space.
    pub space: &'a Space,
    /// The recorded rows.
    pub data: &'a Pb2Data,
    /// The donor's time (the start of the member's next interval).
    pub donor_t: f64,
    /// The donor's reward, higher is better.
    pub donor_r: f64,
    /// The donor's hyperparameters: what PB2 does not choose is kept from them.
    pub base: &'a Hyperparams,
    /// Hyperparameters already handed out at this time (batch diversity).
    pub chosen_now: &'a [Hyperparams],
    /// PB2-Mix: choose the categorical and ordered parameters too.
    pub mix: bool,
}

impl<'a> Query<'a> {
    /// A plain PB2 query with nothing chosen yet at this time.
    pub fn new(
        space: &'a Space,
        data: &'a Pb2Data,
        donor_t: f64,
        donor_r: f64,
        base: &'a Hyperparams,
    ) -> Self {
        Query {
            space,
            data,
            donor_t,
            donor_r,
            base,
            chosen_now: &[],
            mix: false,
        }
    }

    /// With hyperparameters already chosen at this time.
    pub fn chosen(mut self, chosen_now: &'a [Hyperparams]) -> Self {
        self.chosen_now = chosen_now;
        self
    }

    /// PB2-Mix (`true`) or plain PB2.
    pub fn mix(mut self, mix: bool) -> Self {
        self.mix = mix;
        self
    }
}

/// A decision and how it was made.
#[derive(Clone, Debug, PartialEq)]
pub struct Suggestion {
    /// The new hyperparameters (inside the space).
    pub h: Hyperparams,
    /// The rows in the GP's window (0 for the fallback).
    pub window: usize,
    /// The fitted GP hyperparameters (`None` for the fallback).
    pub hyper: Option<Hyper>,
    /// Whether the data could not support a GP and the fallback chose.
    pub fallback: bool,
}

/// New hyperparameters for `q`, with the default [`Config`]. Deterministic: the same query
/// and the same RNG state give the same answer.
pub fn suggest(q: &Query<'_>, rng: &mut impl Rng) -> Hyperparams {
    decide(q, &Config::default(), rng).h
}

/// The full decision for `q` under `config`.
///
/// Fallback (fewer than two usable rows, constant rates, a donor time or reward that is not
/// finite, or a covariance that cannot be factorised): each continuous hyperparameter is
/// drawn uniformly within 0.25 of the base's value in the unit box (over the space's bounds,
/// log scale for log parameters); with `mix`, each categorical one uniformly among the values
/// not yet chosen at this time; the rest is kept from the base.
pub fn decide(q: &Query<'_>, config: &Config, rng: &mut impl Rng) -> Suggestion {
    phase::start();
    let enc = Encoding::new(q.space, q.mix);
    suggest::decide(q, config, &enc, rng).unwrap_or_else(|| fallback(q, &enc, rng))
}

/// The milliseconds the last [`decide`] on this thread spent in each phase (`profile`
/// feature only; `examples/profile.rs`).
#[cfg(feature = "profile")]
#[doc(hidden)]
pub fn phases() -> Vec<(&'static str, f64)> {
    phase::mark("other");
    phase::take()
}

/// How far from the base the fallback draws, in the unit box.
pub const FALLBACK_RADIUS: f64 = 0.25;

fn fallback(q: &Query<'_>, enc: &Encoding, rng: &mut impl Rng) -> Suggestion {
    let mut h = q.space.project(q.base);
    for c in &enc.cont {
        let u = c.unit_of(h.get(&c.name));
        let v = u + FALLBACK_RADIUS * (2.0 * rng.random::<f64>() - 1.0);
        h.insert(&c.name, c.value_at(v));
    }
    let arms: Vec<usize> = (0..enc.cat.len())
        .map(|c| {
            let k = enc.cat[c].values.len();
            let taken = suggest::taken_arms(enc, c, q.chosen_now);
            bandit::draw(&vec![1.0 / k as f64; k], &taken, rng)
        })
        .collect();
    suggest::set_cats(&mut h, enc, &arms);
    Suggestion {
        h: q.space.project(&h),
        window: 0,
        hyper: None,
        fallback: true,
    }
}
