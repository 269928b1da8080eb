//! What a person sees of a poptune run, for every binary that runs one (`poptune`,
//! `poptune-burn`):
//!
//! - [`progress::View`]: run events rendered live on a terminal, or as timestamped lines;
//! - [`report::write`]: a report from a store (CSV and JSON-lines exports, PNG and SVG
//!   figures, one self-contained HTML page);
//! - [`tensorboard`]: TensorBoard event files, while a run goes ([`tensorboard::Live`]) or
//!   from a store ([`tensorboard::write`]);
//! - [`Both`]: two observers as one (the live view and the TensorBoard writer);
//! - [`fonts::register`]: the embedded font the bitmap figures use;
//! - [`format`]: how numbers are written, for people ([`format::score`]) and for data files
//!   ([`format::number`]);
//! - [`init_logging`]: the libraries' log lines on stderr.

pub mod fonts;
/// How numbers are written, the same in every face (from the core, which writes them in
/// run statuses and hyperparameters too).
pub use poptune::format;
pub mod progress;
pub mod report;
pub mod tensorboard;

mod both;
pub use both::Both;

use std::path::PathBuf;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] poptune_store::StoreError),
    /// A file could not be written or read.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A figure could not be drawn.
    #[error("cannot draw a figure: {0}")]
    Draw(String),
    /// Nothing to report yet.
    #[error("{0} has no recorded steps yet; run the experiment first")]
    NoSteps(String),
    /// A TensorBoard run folder already holds event files.
    #[error(
        "{0} exists: TensorBoard would show its steps twice; give a new or empty directory, or \
         remove that folder's event files"
    )]
    Exists(PathBuf),
    /// The stored definition does not give the members' first hyperparameters.
    #[error("the stored definition: {0}")]
    Definition(String),
}

impl ViewError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ViewError {
        let path = path.into();
        move |source| ViewError::Io { path, source }
    }
}

/// Sends the libraries' log lines (a distributed worker's start, lost leases, faults;
/// warnings) to stderr, timestamped, without colour codes when stderr is not a terminal.
/// Call once, at the start of a binary.
pub fn init_logging() {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .try_init();
}
