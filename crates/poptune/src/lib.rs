//! # poptune
//!
//! Population Based Training (Jaderberg et al., 2017) for any iterative training process.
//!
//! A population of members trains in parallel. Every `interval` steps a member is *ready*: if
//! it ranks low it *exploits* (copies the weights, and by default the hyperparameters, of a
//! better member, its donor) and then *explores* (mutates its hyperparameters). The result is
//! a tuned model and the hyperparameter *schedule* that produced it.
//!
//! The crate is layered as `DESIGN.md` describes:
//!
//! - the pure policy core: [`space`], [`explore`], [`exploit`], [`population`], [`policy`] —
//!   no threads, clock or I/O; [`Policy::decide`] maps (population snapshot, ready member,
//!   seeded RNG) to a [`Decision`];
//! - the contracts: the [`Trainable`] trait, the in-process [`Experiment`] and the stored
//!   experiment specification ([`spec`]), with their stop rules; `poptune-run` executes them;
//! - results: [`lineage`] events, [`Schedule`]s and their exact replay;
//! - [`toy`]: the paper's toy example (its trainable and experiment; `poptune_run::toy` runs it).
//!
//! ```
//! use poptune::toy::ToyConfig;
//! use poptune::Baseline;
//!
//! // The toy as an experiment: two members, a given start, winner-takes-all.
//! let e = ToyConfig::default().experiment(Baseline::Pbt, 0);
//! assert_eq!(e.population, 2);
//! assert_eq!(e.initial_hyperparams().unwrap()[0].f64("h0"), Some(1.0));
//! ```

#![warn(missing_docs)]

pub mod error;
pub mod experiment;
pub mod exploit;
pub mod explore;
pub mod fire;
pub mod format;
pub mod lineage;
pub mod policy;
pub mod population;
pub mod space;
pub mod spec;
pub mod toy;
pub mod trail;
pub mod trainable;

pub use error::{ConfigError, ReplayError, SpaceError, TrainableError};
pub use experiment::{Baseline, Experiment, Initial, MemberOutcome, Outcome};
pub use exploit::Exploit;
pub use explore::{Explore, ExploreMethod};
pub use lineage::{Event, Schedule, Segment, StepRecord};
pub use policy::{rng_for, Algorithm, Decision, Guide, Inherit, Policy, Stream, SyncMode, Variant};
pub use population::{MemberId, Mode, Population};
pub use space::{Hyperparams, Param, Space, Value};
pub use spec::{ExperimentDef, InitialKind, StopRules, TrainableDef};
pub use trail::Trail;
pub use trainable::{Metrics, Trainable};
