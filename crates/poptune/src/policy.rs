//! The pure policy core: when a member is ready, and what it does then.
//!
//! [`Policy::decide`] is a function of the population snapshot, the ready member and a seeded
//! RNG; it touches no clock, thread, file or terminal. Every executor calls it, so a run makes
//! the same decisions from the same state whatever drives it.

use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::exploit::Exploit;
use crate::explore::Explore;
use crate::fire::Fire;
use crate::population::{MemberId, Population};
use crate::space::{Hyperparams, Space};

/// What a member takes from its donor when it exploits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inherit {
    /// The donor's weights and hyperparameters (then explore mutates the donor's `h`).
    #[default]
    #[serde(alias = "weights+hyperparameters")]
    WeightsAndHyperparameters,
    /// The donor's weights only (explore mutates the member's own `h`), as in the paper's toy.
    #[serde(alias = "weights")]
    WeightsOnly,
}

/// When decisions are made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// A ready member decides at once, against the latest scores of the others.
    #[default]
    Asynchronous,
    /// All members reach the same step; then every decision is made from the same snapshot.
    Synchronous,
}

/// PBT itself or one of its ablations. Grid and random search are [`Variant::Frozen`] with
/// different initial hyperparameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Exploit, then explore.
    #[default]
    Pbt,
    /// A member that would exploit explores its own hyperparameters instead, keeping its
    /// weights (PBT without the copy).
    ExploreOnly,
    /// A member that would exploit copies the donor and keeps the inherited hyperparameters
    /// unchanged (PBT without explore).
    ExploitOnly,
    /// Nobody changes anything: every member trains with its initial hyperparameters.
    Frozen,
}

/// How members choose what they do at a ready point.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Population Based Training: exploit by `exploit`, explore by `explore`.
    #[default]
    Pbt,
    /// PB2: exploit as PBT does; the new hyperparameters come from a GP bandit on the
    /// population's past intervals (continuous hyperparameters; the others are inherited).
    Pb2,
    /// PB2-Mix: PB2 that also chooses categorical and ordered hyperparameters (a bandit each).
    Pb2Mix,
    /// FIRE-PBT: sub-populations ranked by improvement rate, and evaluators (see [`Fire`]).
    Fire(Fire),
}

impl Algorithm {
    /// The name used in experiment files and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::Pbt => "pbt",
            Algorithm::Pb2 => "pb2",
            Algorithm::Pb2Mix => "pb2-mix",
            Algorithm::Fire(_) => "fire",
        }
    }

    /// Whether members keep PB2's intervals.
    pub fn keeps_intervals(&self) -> bool {
        matches!(self, Algorithm::Pb2 | Algorithm::Pb2Mix)
    }

    /// Whether members keep FIRE-PBT's curves and epochs.
    pub fn keeps_curves(&self) -> bool {
        matches!(self, Algorithm::Fire(_))
    }
}

/// The explore step of a guided algorithm (PB2), which the pure core cannot compute itself:
/// the runner supplies it (`poptune-run` does, with `poptune-pb2`).
pub trait Guide {
    /// New hyperparameters for `ready`, which takes `donor`'s state (`donor == ready` when it
    /// keeps its own), starting from `base`; `chosen_now` are the hyperparameters already given
    /// out at this point of the run (a synchronous round's earlier decisions).
    #[allow(clippy::too_many_arguments)]
    fn explore(
        &self,
        policy: &Policy,
        space: &Space,
        pop: &Population,
        ready: MemberId,
        donor: MemberId,
        base: &Hyperparams,
        chosen_now: &[Hyperparams],
        rng: &mut dyn rand::RngCore,
    ) -> Hyperparams;
}

/// What a ready member does next.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Go on training as it is.
    Continue,
    /// Restore the donor's latest checkpoint and train on with `h`.
    Exploit {
        /// The member copied.
        donor: MemberId,
        /// The new hyperparameters.
        h: Hyperparams,
    },
    /// Keep the weights, train on with `h`.
    Explore {
        /// The new hyperparameters.
        h: Hyperparams,
    },
}

fn default_interval() -> u64 {
    5
}

/// The PBT policy: when members are ready and how they exploit and explore.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Policy {
    /// A member is ready every `interval` steps (default 5)...
    #[serde(default = "default_interval")]
    pub interval: u64,
    /// ...once it has trained at least `burn_in` steps (default 0).
    #[serde(default)]
    pub burn_in: u64,
    /// Selection strategy.
    #[serde(default)]
    pub exploit: Exploit,
    /// Mutation.
    #[serde(default)]
    pub explore: Explore,
    /// What an exploiting member inherits.
    #[serde(default)]
    pub inherit: Inherit,
    /// Asynchronous (default) or synchronous decisions.
    #[serde(default)]
    pub sync: SyncMode,
    /// PBT or an ablation.
    #[serde(default)]
    pub variant: Variant,
    /// PBT (default), PB2, PB2-Mix or FIRE-PBT.
    #[serde(default, skip_serializing_if = "is_pbt")]
    pub algorithm: Algorithm,
}

fn is_pbt(a: &Algorithm) -> bool {
    *a == Algorithm::Pbt
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            interval: default_interval(),
            burn_in: 0,
            exploit: Exploit::default(),
            explore: Explore::default(),
            inherit: Inherit::default(),
            sync: SyncMode::default(),
            variant: Variant::default(),
            algorithm: Algorithm::default(),
        }
    }
}

impl Policy {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval == 0 {
            return Err(ConfigError::invalid(
                "interval",
                0,
                "members must train at least one step between ready points; use 1 or more",
            ));
        }
        self.exploit.validate()?;
        self.explore.validate()?;
        if let Algorithm::Fire(f) = &self.algorithm {
            f.validate()?;
        }
        Ok(())
    }

    /// Whether a member that has trained `step` steps is ready: `step` is a positive multiple
    /// of `interval` and at least `burn_in`.
    pub fn is_ready(&self, step: u64) -> bool {
        step > 0 && step >= self.burn_in && step.is_multiple_of(self.interval)
    }

    /// Where a member at `step` stops next: its next ready step, or `max_steps`.
    pub fn next_stop(&self, step: u64, max_steps: u64) -> u64 {
        let mut next = (step / self.interval + 1) * self.interval;
        if next < self.burn_in {
            next = self.burn_in.div_ceil(self.interval) * self.interval;
        }
        next.min(max_steps)
    }

    /// The decision for the ready member, from a snapshot of the population (PBT; a guided
    /// algorithm without its guide explores by `explore`).
    pub fn decide<R: rand::Rng>(
        &self,
        space: &Space,
        pop: &Population,
        ready: MemberId,
        rng: &mut R,
    ) -> Decision {
        self.decide_guided(space, pop, ready, None, &[], rng)
    }

    /// The decision for the ready member, with the guide of a guided algorithm (PB2) and the
    /// hyperparameters already given out at this point (`chosen_now`).
    pub fn decide_guided<R: rand::Rng>(
        &self,
        space: &Space,
        pop: &Population,
        ready: MemberId,
        guide: Option<&dyn Guide>,
        chosen_now: &[Hyperparams],
        rng: &mut R,
    ) -> Decision {
        if self.variant == Variant::Frozen {
            return Decision::Continue;
        }
        if let Algorithm::Fire(fire) = &self.algorithm {
            return fire.decide(self, space, pop, ready, rng);
        }
        let Some(donor) = self.exploit.select(pop, ready, rng) else {
            return Decision::Continue;
        };
        self.exploit_or_explore(space, pop, ready, donor, guide, chosen_now, rng)
    }

    /// What `ready` does once it is to take `donor`'s state, by the variant.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn exploit_or_explore<R: rand::Rng>(
        &self,
        space: &Space,
        pop: &Population,
        ready: MemberId,
        donor: MemberId,
        guide: Option<&dyn Guide>,
        chosen_now: &[Hyperparams],
        rng: &mut R,
    ) -> Decision {
        // A member copies no state less trained than its own: its step becomes the donor's,
        // and a population whose members kept copying states behind them (an asynchronous
        // donor that has not recorded its newest segment yet) could be sent back forever.
        if self.variant != Variant::ExploreOnly && pop.member(donor).step < pop.member(ready).step {
            return Decision::Continue;
        }
        let own = &pop.member(ready).h;
        let base = match self.inherit {
            Inherit::WeightsAndHyperparameters => &pop.member(donor).h,
            Inherit::WeightsOnly => own,
        };
        let explore = |from: MemberId, base: &Hyperparams, rng: &mut R| match guide {
            Some(g) if self.algorithm.keeps_intervals() => {
                g.explore(self, space, pop, ready, from, base, chosen_now, rng)
            }
            _ => self.explore.apply(space, base, rng),
        };
        match self.variant {
            Variant::Pbt => Decision::Exploit {
                donor,
                h: explore(donor, base, rng),
            },
            Variant::ExploitOnly => Decision::Exploit {
                donor,
                h: base.clone(),
            },
            Variant::ExploreOnly => Decision::Explore {
                h: explore(ready, own, rng),
            },
            Variant::Frozen => Decision::Continue,
        }
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Streams of randomness, kept apart so that one use never shifts another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Initial hyperparameters.
    Initial,
    /// Ready decisions.
    Decision,
}

/// The RNG for a member at a point of the run: a pure function of the experiment seed, the
/// stream, the member, its step and how many ready decisions it has made, so that decisions do
/// not depend on thread scheduling.
pub fn rng_for(seed: u64, stream: Stream, member: MemberId, step: u64, count: u64) -> Pcg64Mcg {
    let mut h = mix(seed);
    h = mix(h ^ stream as u64);
    h = mix(h ^ member as u64);
    h = mix(h ^ step);
    h = mix(h ^ count);
    Pcg64Mcg::seed_from_u64(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn ready_points() {
        let p = Policy {
            interval: 5,
            burn_in: 12,
            ..Policy::default()
        };
        let ready: Vec<u64> = (0..30).filter(|&s| p.is_ready(s)).collect();
        assert_eq!(ready, vec![15, 20, 25]);
        assert_eq!(p.next_stop(0, 100), 15);
        assert_eq!(p.next_stop(15, 100), 20);
        assert_eq!(p.next_stop(17, 100), 20);
        assert_eq!(p.next_stop(20, 22), 22);
        let q = Policy::default();
        assert_eq!(q.next_stop(0, 40), 5);
        assert!(!q.is_ready(0));
    }

    #[test]
    fn rng_depends_on_every_input() {
        let a = rng_for(1, Stream::Decision, 2, 3, 4).random::<u64>();
        assert_eq!(a, rng_for(1, Stream::Decision, 2, 3, 4).random::<u64>());
        for b in [
            rng_for(0, Stream::Decision, 2, 3, 4),
            rng_for(1, Stream::Initial, 2, 3, 4),
            rng_for(1, Stream::Decision, 1, 3, 4),
            rng_for(1, Stream::Decision, 2, 2, 4),
            rng_for(1, Stream::Decision, 2, 3, 5),
        ] {
            let mut b = b;
            assert_ne!(a, b.random::<u64>());
        }
    }

    #[test]
    fn policy_serde_defaults() {
        let p: Policy = serde_json::from_str("{}").unwrap();
        assert_eq!(p.interval, 5);
        assert_eq!(p.inherit, Inherit::WeightsAndHyperparameters);
        let p: Policy = serde_json::from_str(
            r#"{"interval": 4, "inherit": "weights", "sync": "synchronous",
                "exploit": {"strategy": "winner_takes_all"},
                "explore": {"method": "gaussian", "std": 0.1}}"#,
        )
        .unwrap();
        assert_eq!(p.inherit, Inherit::WeightsOnly);
        assert_eq!(p.sync, SyncMode::Synchronous);
        assert_eq!(p.exploit, Exploit::WinnerTakesAll);
        assert!(p.validate().is_ok());
    }
}
