//! Execution's errors.

use poptune_store::StoreError;
use thiserror::Error;

/// Why a run could not start or could not go on.
#[derive(Debug, Error)]
pub enum RunError {
    /// The input (a definition, a directory, an argument) is wrong; the message says how to
    /// fix it. The command line maps this to exit code 2.
    #[error("{0}")]
    Usage(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, and on which path.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The run stopped on a failure it cannot recover from (the message says what to do).
    #[error("{0}")]
    Fatal(String),
}

impl RunError {
    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        RunError::Usage(message.into())
    }

    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        RunError::Io {
            what: what.into(),
            source,
        }
    }

    /// Whether the input was wrong (exit code 2) rather than the run failing.
    pub fn is_usage(&self) -> bool {
        match self {
            RunError::Usage(_) => true,
            RunError::Store(e) => e.is_usage(),
            _ => false,
        }
    }
}
