//! poptune's live dashboard: a small, read-only web server over an experiment's store (an
//! experiment directory, a folder of them, or a PostgreSQL database with feature `postgres`),
//! and the same page as one self-contained HTML file ([`static_page`]).
//!
//! The page's assets are embedded in the binary; nothing is fetched at run time. The server
//! binds 127.0.0.1 unless told otherwise; on any other address every request must carry the
//! access token it prints. It only reads the store: a run may write it meanwhile.
//!
//! ```no_run
//! let opts = poptune_dashboard::Options::dir("runs/toy");
//! let server = poptune_dashboard::serve(opts)?;
//! println!("dashboard: {}", server.url());
//! server.run_forever();
//! # Ok::<(), poptune_dashboard::DashboardError>(())
//! ```

mod ancestry;
mod data;
mod http;
mod page;
#[cfg(feature = "postgres")]
mod pg;
mod server;
mod source;
#[doc(hidden)]
pub mod synthetic;
mod token;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use thiserror::Error;

pub use server::Server;
pub use token::TokenPolicy;

/// What the dashboard shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An experiment directory, or a folder whose subfolders are experiment directories.
    Dir(PathBuf),
    /// A PostgreSQL database (`postgres://...`), which may hold several experiments (needs
    /// feature `postgres`).
    Store(String),
}

/// How to serve the dashboard.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where the experiments are.
    pub location: Location,
    /// Show only this experiment (by name) instead of listing them all.
    pub experiment: Option<String>,
    /// The address to bind: 127.0.0.1 unless another is asked for explicitly. On an address
    /// that is not a loopback one the server always requires a token.
    pub bind: IpAddr,
    /// The port; 0 lets the system choose one ([`Server::port`] says which).
    pub port: u16,
    /// Whether requests must carry an access token.
    pub token: TokenPolicy,
    /// Handler threads (at least 1).
    pub threads: usize,
}

impl Options {
    /// An experiment directory (or a folder of them), on 127.0.0.1:8080, without a token.
    pub fn dir(dir: impl Into<PathBuf>) -> Self {
        Options::new(Location::Dir(dir.into()))
    }

    /// A PostgreSQL store, on 127.0.0.1:8080, without a token.
    pub fn store(url: impl Into<String>) -> Self {
        Options::new(Location::Store(url.into()))
    }

    fn new(location: Location) -> Self {
        Options {
            location,
            experiment: None,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            token: TokenPolicy::Auto,
            threads: 4,
        }
    }
}

/// What went wrong.
#[derive(Debug, Error)]
pub enum DashboardError {
    /// The user asked for something impossible (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] poptune_store::StoreError),
    /// Opening an experiment directory failed.
    #[error(transparent)]
    Run(#[from] poptune_run::RunError),
    /// The server could not start.
    #[error("cannot listen on {addr}: {message}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        message: String,
    },
    /// A file or folder could not be read.
    #[error("{path}: {error}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        error: std::io::Error,
    },
    /// The stored data cannot be shown.
    #[error("{0}")]
    Data(String),
}

impl DashboardError {
    /// Whether the user gave a wrong input (exit code 2) rather than something failing.
    pub fn is_usage(&self) -> bool {
        match self {
            DashboardError::Usage(_) => true,
            DashboardError::Store(e) => e.is_usage(),
            DashboardError::Run(e) => matches!(e, poptune_run::RunError::Usage(_)),
            _ => false,
        }
    }
}

/// Starts the dashboard's server (in background threads) and returns at once.
pub fn serve(opts: Options) -> Result<Server, DashboardError> {
    server::start(opts)
}

/// The dashboard of one experiment as one self-contained HTML file, its data embedded: it
/// opens from a `file://` URL without a server and shows what the live page shows.
pub fn static_page(
    store: &dyn poptune_store::Store,
    def: &poptune::ExperimentDef,
) -> Result<String, DashboardError> {
    let mut cache = data::Cache::new(def.clone(), def.name.clone(), "static".into())?;
    cache.refresh(store, true)?;
    let payload = cache.update(&data::Cursor::default(), None);
    Ok(page::html(Some(&payload)))
}
