//! # poptune-run
//!
//! Execution, written once: every runner takes a finished segment to a commit through one
//! settle path ([`settle`]).
//!
//! - [`pool`]: what trains a segment ([`pool::Worker`]): external processes speaking the
//!   JSON-lines [`protocol`], or in-process Rust trainables ([`inprocess`]); [`serve`] is the
//!   protocol's other side, for Rust trainables run as processes;
//! - [`memory`]: the in-memory runner of a [`poptune::Experiment`] ([`Run`]), on the same
//!   settle path, optionally persisted into an experiment directory;
//! - [`local`]: the local runner on an experiment directory, with its committer;
//! - `distributed` (feature `postgres`): the worker loop on PostgreSQL;
//! - [`devices`]: which GPUs each slot's trainable process sees;
//! - [`events`]: what execution reports to the faces, which render it.
//!
//! Dependencies point down only: this crate uses the policy core (`poptune`) and the stores
//! (`poptune-store`, `poptune-pg`), and is used by the faces (`poptune-cli`, `poptune-burn`).

#![warn(missing_docs)]

pub mod book;
pub mod cancel;
pub mod devices;
#[cfg(feature = "postgres")]
pub mod distributed;
pub mod error;
pub mod events;
pub mod fault;
pub mod guide;
pub mod inprocess;
pub mod local;
pub mod memory;
pub mod pool;
pub mod protocol;
pub mod serve;
pub mod settle;
pub mod signals;
pub mod toy;

pub use cancel::{Cancel, NoCancel};
pub use error::RunError;
pub use events::{MemberState, MemberView, Observer, Progress, Quiet, RunEvent};
pub use fault::{Failure, Fault, FaultKind};
pub use memory::{Run, RunOutcome};
pub use settle::{Books, Finished, Settled, Trained};
