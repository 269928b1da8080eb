//! Why a task could not be tuned, compared or served.

use std::path::PathBuf;

/// A failure of `poptune-burn`'s tasks.
#[derive(Debug, thiserror::Error)]
pub enum BurnError {
    /// Bad input from the user (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The run failed.
    #[error(transparent)]
    Run(#[from] poptune_run::RunError),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] poptune_store::StoreError),
    /// The report could not be written.
    #[error(transparent)]
    View(#[from] poptune_view::ViewError),
    /// A compiled-in dataset could not be read.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was done ("cannot write", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The run holds nothing to evaluate or draw.
    #[error("{0}")]
    Missing(String),
    /// Ctrl-C or SIGTERM stopped the run (exit code 130).
    #[error("interrupted; run the same command to continue")]
    Interrupted,
}

impl BurnError {
    /// An I/O error: `what` (as "cannot write") on `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BurnError::Io { what, path, source }
    }

    /// The process exit code: 2 for bad input, 130 when interrupted, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            BurnError::Usage(_) => 2,
            BurnError::Run(e) if e.is_usage() => 2,
            BurnError::Interrupted => 130,
            _ => 1,
        }
    }
}
