//! Where experiments are found and how each is opened, read-only in intent: a SQLite store is
//! opened on an existing `experiment.db` only (never created), and a PostgreSQL one by name.
//! An experiment is named in URLs by an id that is looked up among those found here, never
//! joined to a path.

use std::path::{Path, PathBuf};

use poptune::ExperimentDef;
use poptune_run::local::{open_dir, DB_FILE};
use poptune_store::Store;

use crate::{DashboardError, Location};

/// One experiment found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// An experiment directory.
    Dir(PathBuf),
    /// An experiment in a PostgreSQL database: the URL and its name.
    #[cfg(feature = "postgres")]
    Pg(String, String),
}

/// An experiment opened: its store, definition, and (distributed runs) its lease reader.
pub(crate) struct Opened {
    pub store: Box<dyn Store>,
    pub def: ExperimentDef,
    pub leases: Option<Box<dyn LeaseReader>>,
}

/// Reads who holds each member's lease (distributed runs).
pub(crate) trait LeaseReader: Send {
    /// `(member, worker)` for each live lease.
    fn leases(&self) -> Result<Vec<(usize, String)>, DashboardError>;
}

/// The experiments at `location`, as `(id, entry)`, sorted by id.
pub(crate) fn list(location: &Location) -> Result<Vec<(String, Entry)>, DashboardError> {
    match location {
        Location::Dir(dir) => list_dir(dir),
        Location::Store(url) => list_store(url),
    }
}

fn list_dir(dir: &Path) -> Result<Vec<(String, Entry)>, DashboardError> {
    if dir.join(DB_FILE).is_file() {
        let id = dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "experiment".to_string());
        return Ok(vec![(id, Entry::Dir(dir.to_path_buf()))]);
    }
    if !dir.is_dir() {
        return Err(DashboardError::Usage(format!(
            "{} is not a folder; give an experiment directory (the one `poptune run` created), \
             or the folder above several",
            dir.display()
        )));
    }
    let io = |error| DashboardError::Io {
        path: dir.display().to_string(),
        error,
    };
    let mut out = Vec::new();
    for item in std::fs::read_dir(dir).map_err(io)? {
        let item = item.map_err(io)?;
        let path = item.path();
        if path.join(DB_FILE).is_file() {
            let id = item.file_name().to_string_lossy().into_owned();
            out.push((id, Entry::Dir(path)));
        }
    }
    if out.is_empty() {
        return Err(DashboardError::Usage(format!(
            "{} is not an experiment directory and holds none (no {DB_FILE} in it or in its \
             subfolders); give the directory `poptune run` created, or the folder above several",
            dir.display()
        )));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(feature = "postgres")]
fn list_store(url: &str) -> Result<Vec<(String, Entry)>, DashboardError> {
    Ok(crate::pg::experiments(url)?
        .into_iter()
        .map(|name| (name.clone(), Entry::Pg(url.to_string(), name)))
        .collect())
}

#[cfg(not(feature = "postgres"))]
fn list_store(_url: &str) -> Result<Vec<(String, Entry)>, DashboardError> {
    Err(DashboardError::Usage(
        "this build of the dashboard reads no PostgreSQL store (build poptune-dashboard with \
         feature `postgres`); give an experiment directory instead"
            .to_string(),
    ))
}

/// Opens the experiment found as `entry`.
pub(crate) fn open(entry: &Entry) -> Result<Opened, DashboardError> {
    match entry {
        Entry::Dir(dir) => {
            if !dir.join(DB_FILE).is_file() {
                return Err(DashboardError::Data(format!(
                    "{} is no longer an experiment directory",
                    dir.display()
                )));
            }
            let (store, def) = open_dir(dir)?;
            Ok(Opened {
                store: Box::new(store),
                def,
                leases: None,
            })
        }
        #[cfg(feature = "postgres")]
        Entry::Pg(url, name) => crate::pg::open(url, name),
    }
}
