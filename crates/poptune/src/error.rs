//! Typed errors of the library.

use thiserror::Error;

/// A problem with a search space or with hyperparameters checked against one.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SpaceError {
    /// A parameter's definition is unusable.
    #[error("hyperparameter `{name}`: {reason}")]
    InvalidParam {
        /// The parameter's name.
        name: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Hyperparameters name something the space does not define.
    #[error(
        "hyperparameter `{name}` is not in the search space; add it to the space or remove it"
    )]
    UnknownName {
        /// The unknown name.
        name: String,
    },
    /// Hyperparameters lack a name the space defines.
    #[error("hyperparameter `{name}` is missing; give it a value")]
    Missing {
        /// The missing name.
        name: String,
    },
    /// A value lies outside its domain.
    #[error("hyperparameter `{name}` = {value} lies outside its domain")]
    OutOfDomain {
        /// The parameter's name.
        name: String,
        /// The offending value.
        value: String,
    },
}

/// A policy or experiment setting that cannot work.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ConfigError {
    /// The search space is invalid.
    #[error(transparent)]
    Space(#[from] SpaceError),
    /// A setting is out of range.
    #[error("`{key}` = {value}: {reason}")]
    Invalid {
        /// The setting's name.
        key: &'static str,
        /// Its value, as text.
        value: String,
        /// What is allowed.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(
        key: &'static str,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            key,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// An error raised by a trainable's code.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("{message}")]
pub struct TrainableError {
    /// What went wrong.
    pub message: String,
}

impl TrainableError {
    /// A new error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        TrainableError {
            message: message.into(),
        }
    }
}

/// A schedule could not be replayed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ReplayError {
    /// The trainable failed during the replay.
    #[error("the trainable failed at step {step} of the replay: {source}")]
    Trainable {
        /// The step.
        step: u64,
        /// The trainable's error.
        source: TrainableError,
    },
    /// The schedule is empty (a member that never trained).
    #[error("the schedule is empty: the member never trained")]
    Empty,
}
