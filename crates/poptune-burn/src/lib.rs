//! burn models as poptune trainables.
//!
//! - [`trainer::BurnTrainer`]: any [`model::Classifier`] (a burn module) with SGD (momentum,
//!   weight decay) becomes a [`poptune::Trainable`] whose state is copied in memory for
//!   exploits and written to disk for the store ([`poptune_run::inprocess::Persist`]).
//! - [`model`]: the MLP for digits and the 1D CNN for MNIST-1D.
//! - [`data`]: both datasets, compiled in, with fixed splits.
//! - [`tasks`]: the examples' experiments (`poptune-burn tune`, `compare`, `serve`);
//!   [`schedules`]: the schedules PBT found, drawn.
//! - [`tsp`]: a trainable that is not gradient descent at all: simulated annealing on a
//!   travelling-salesman instance.

pub mod data;
pub mod error;
pub mod fire_plot;
pub mod model;
pub mod schedules;
pub mod tasks;
pub mod trainer;
pub mod tsp;

pub use error::BurnError;
