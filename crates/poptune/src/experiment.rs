//! An experiment in process: the specification that `poptune_run`'s in-memory runner trains
//! (`poptune_run::Run`), and what a run produced ([`Outcome`]). Pure data: the threads are
//! execution's.

use std::thread;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::lineage::{schedule, Event, Schedule, StepRecord};
use crate::policy::{rng_for, Policy, Stream, Variant};
use crate::population::{MemberId, Mode};
use crate::space::{Hyperparams, Space};
use crate::spec::{ExperimentDef, InitialKind, StopRules, TrainableDef};

/// Where the members' initial hyperparameters come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initial {
    /// Drawn from the prior (seeded).
    #[default]
    Prior,
    /// A grid over the space (see [`Space::grid`]); members past the grid's size draw from the
    /// prior.
    Grid,
    /// Given, one per member.
    Given(Vec<Hyperparams>),
}

/// The comparison runs: PBT and its baselines at the same population and budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// PBT as configured.
    Pbt,
    /// Explore without copying.
    ExploreOnly,
    /// Copy without exploring.
    ExploitOnly,
    /// Grid search: a grid of initial hyperparameters (or the given ones), no adaptation.
    Grid,
    /// Random search: initial hyperparameters from the prior, no adaptation.
    Random,
}

impl Baseline {
    /// Every variant, PBT first.
    pub const ALL: [Baseline; 5] = [
        Baseline::Pbt,
        Baseline::ExploreOnly,
        Baseline::ExploitOnly,
        Baseline::Grid,
        Baseline::Random,
    ];

    /// The name used in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Pbt => "pbt",
            Baseline::ExploreOnly => "explore-only",
            Baseline::ExploitOnly => "exploit-only",
            Baseline::Grid => "grid",
            Baseline::Random => "random",
        }
    }
}

/// One PBT experiment, in process: the population, the space, the policy, the budget and
/// its stop rules, and how faults are handled. `poptune_run::Run` trains it:
///
/// ```
/// use poptune::{Experiment, Param, Space};
///
/// let e = Experiment::new(Space::new().with("lr", Param::log_float(1e-4, 0.4)))
///     .population(8)
///     .steps(50)
///     .target(-1e-6)
///     .max_failures(2)
///     .seed(7);
/// assert!(e.validate().is_ok());
/// assert_eq!(e.initial_hyperparams().unwrap().len(), 8);
/// ```
#[derive(Clone, Debug)]
pub struct Experiment {
    /// The search space.
    pub space: Space,
    /// The policy.
    pub policy: Policy,
    /// Maximise or minimise the score.
    pub mode: Mode,
    /// Number of members.
    pub population: usize,
    /// Steps each member trains.
    pub steps: u64,
    /// Seed of every random choice poptune makes.
    pub seed: u64,
    /// Worker threads (members time-share them when fewer).
    pub workers: usize,
    /// Initial hyperparameters.
    pub initial: Initial,
    /// Stop once a member's score reaches this (in the experiment's mode).
    pub target: Option<f64>,
    /// Stop starting new segments after this many seconds.
    pub max_seconds: Option<f64>,
    /// Stop when the best score has not improved by `min_delta` for `patience` steps:
    /// `(patience, min_delta)`.
    pub plateau: Option<(u64, f64)>,
    /// Faults a member may have in a row (an error, a non-finite score, a panic) before it is
    /// replaced by an exploit of the best member; each is retried from its last state.
    pub max_failures: u32,
}

impl Experiment {
    /// An experiment over `space` with the default policy, 8 members, 100 steps, seed 0, one
    /// worker per core and hyperparameters from the prior.
    pub fn new(space: Space) -> Self {
        Experiment {
            space,
            policy: Policy::default(),
            mode: Mode::Max,
            population: 8,
            steps: 100,
            seed: 0,
            workers: thread::available_parallelism().map_or(1, |n| n.get()),
            initial: Initial::Prior,
            target: None,
            max_seconds: None,
            plateau: None,
            max_failures: 3,
        }
    }

    /// Stops once a member's score reaches `score`.
    pub fn target(mut self, score: f64) -> Self {
        self.target = Some(score);
        self
    }

    /// Stops starting new segments after `seconds`.
    pub fn max_seconds(mut self, seconds: f64) -> Self {
        self.max_seconds = Some(seconds);
        self
    }

    /// Stops when the best score has not improved by `min_delta` for `patience` steps.
    pub fn plateau(mut self, patience: u64, min_delta: f64) -> Self {
        self.plateau = Some((patience, min_delta));
        self
    }

    /// Sets how many faults in a row a member may have before it is replaced.
    pub fn max_failures(mut self, n: u32) -> Self {
        self.max_failures = n;
        self
    }

    /// Takes every stop rule of `stop`.
    pub fn with_stop_rules(mut self, stop: &StopRules) -> Self {
        self.steps = stop.steps;
        self.target = stop.target;
        self.max_seconds = stop.max_seconds;
        self.plateau = stop.plateau;
        self
    }

    /// The stop rules.
    pub fn stop_rules(&self) -> StopRules {
        StopRules {
            steps: self.steps,
            target: self.target,
            max_seconds: self.max_seconds,
            plateau: self.plateau,
        }
    }

    /// The experiment as a stored definition, named `name`, kept in `directory`; its
    /// trainable runs in process (no command).
    pub fn definition(&self, name: &str, directory: &std::path::Path) -> ExperimentDef {
        ExperimentDef {
            name: name.to_string(),
            metric: "score".to_string(),
            mode: self.mode,
            population: self.population,
            seed: self.seed,
            slots: self.workers.min(self.population).max(1),
            initial: match self.initial {
                Initial::Grid => InitialKind::Grid,
                _ => InitialKind::Prior,
            },
            directory: directory.to_path_buf(),
            policy: self.policy.clone(),
            space: self.space.clone(),
            stop: self.stop_rules(),
            trainable: TrainableDef {
                max_failures: self.max_failures,
                ..TrainableDef::default()
            },
        }
    }

    /// Sets the policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the population size.
    pub fn population(mut self, n: usize) -> Self {
        self.population = n;
        self
    }

    /// Sets the steps per member.
    pub fn steps(mut self, steps: u64) -> Self {
        self.steps = steps;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the number of worker threads.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Sets the initial hyperparameters.
    pub fn initial(mut self, initial: Initial) -> Self {
        self.initial = initial;
        self
    }

    /// The same experiment turned into a baseline: PBT, an ablation, grid or random search.
    /// Grid keeps given initial hyperparameters if there are any.
    pub fn baseline(&self, baseline: Baseline) -> Experiment {
        let mut e = self.clone();
        match baseline {
            Baseline::Pbt => {}
            Baseline::ExploreOnly => e.policy.variant = Variant::ExploreOnly,
            Baseline::ExploitOnly => e.policy.variant = Variant::ExploitOnly,
            Baseline::Grid => {
                e.policy.variant = Variant::Frozen;
                if !matches!(e.initial, Initial::Given(_)) {
                    e.initial = Initial::Grid;
                }
            }
            Baseline::Random => {
                e.policy.variant = Variant::Frozen;
                e.initial = Initial::Prior;
            }
        }
        e
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.space.validate()?;
        self.policy.validate()?;
        if self.population == 0 {
            return Err(ConfigError::invalid(
                "population",
                0,
                "the population needs at least one member (PBT needs two to compare)",
            ));
        }
        if let crate::policy::Algorithm::Fire(f) = &self.policy.algorithm {
            if f.members() != self.population {
                return Err(ConfigError::invalid(
                    "population",
                    self.population,
                    format!(
                        "FIRE-PBT's sub-populations {:?} and {} evaluators make {} members; \
                         set population = {} or change the sizes",
                        f.sub_populations,
                        f.evaluators,
                        f.members(),
                        f.members()
                    ),
                ));
            }
        }
        if self.steps == 0 {
            return Err(ConfigError::invalid(
                "steps",
                0,
                "members must train at least one step",
            ));
        }
        if let Some(t) = self.target {
            if !t.is_finite() {
                return Err(ConfigError::invalid("target", t, "give a finite score"));
            }
        }
        if let Some(s) = self.max_seconds {
            if !(s.is_finite() && s > 0.0) {
                return Err(ConfigError::invalid(
                    "max_seconds",
                    s,
                    "give a number of seconds above 0",
                ));
            }
        }
        if let Some((patience, min_delta)) = self.plateau {
            if patience == 0 {
                return Err(ConfigError::invalid(
                    "plateau",
                    patience,
                    "patience must be at least 1 step",
                ));
            }
            if !(min_delta.is_finite() && min_delta >= 0.0) {
                return Err(ConfigError::invalid(
                    "plateau",
                    min_delta,
                    "min_delta must be a finite number, 0 or more",
                ));
            }
        }
        if self.workers == 0 {
            return Err(ConfigError::invalid(
                "workers",
                0,
                "at least one worker thread is needed",
            ));
        }
        if let Initial::Given(hs) = &self.initial {
            if hs.len() != self.population {
                return Err(ConfigError::invalid(
                    "initial",
                    format!("{} sets", hs.len()),
                    format!(
                        "give exactly one set of hyperparameters per member ({})",
                        self.population
                    ),
                ));
            }
            for h in hs {
                self.space.check(h)?;
            }
        }
        Ok(())
    }

    /// The members' initial hyperparameters.
    pub fn initial_hyperparams(&self) -> Result<Vec<Hyperparams>, ConfigError> {
        self.validate()?;
        let prior = |i: MemberId| {
            let mut rng = rng_for(self.seed, Stream::Initial, i, 0, 0);
            self.space.sample(&mut rng)
        };
        Ok(match &self.initial {
            Initial::Prior => (0..self.population).map(prior).collect(),
            Initial::Grid => {
                let mut g = self.space.grid(self.population);
                let n = g.len();
                g.extend((n..self.population).map(prior));
                g
            }
            Initial::Given(hs) => hs.clone(),
        })
    }
}

/// A member's end state.
#[derive(Clone, Debug)]
pub struct MemberOutcome<S> {
    /// The member.
    pub id: MemberId,
    /// Its final hyperparameters.
    pub h: Hyperparams,
    /// Its final step count.
    pub step: u64,
    /// Its final score.
    pub score: Option<f64>,
    /// Every step it trained, in order. Step counts are the member's own: after an exploit it
    /// goes on counting from where it was, with the donor's state.
    pub history: Vec<StepRecord>,
    /// Its final training state θ.
    pub state: S,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Outcome<S> {
    /// The mode the run used.
    pub mode: Mode,
    /// Every member's initial hyperparameters.
    pub initial: Vec<Hyperparams>,
    /// Every member, by id.
    pub members: Vec<MemberOutcome<S>>,
    /// Every exploit and explore event, in order.
    pub events: Vec<Event>,
}

impl<S> Outcome<S> {
    /// The member with the best final score (ties: lowest id).
    pub fn best(&self) -> MemberId {
        let mut best = 0;
        for m in &self.members {
            let key = |id: MemberId| {
                self.members[id]
                    .score
                    .map_or(f64::NEG_INFINITY, |s| self.mode.key(s))
            };
            if key(m.id) > key(best) {
                best = m.id;
            }
        }
        best
    }

    /// The best final score.
    pub fn best_score(&self) -> Option<f64> {
        self.members.get(self.best()).and_then(|m| m.score)
    }

    /// The schedule that produced member `m`'s final state.
    pub fn schedule(&self, m: MemberId) -> Schedule {
        schedule(&self.initial, &self.events, m, self.members[m].step)
    }
}
