//! An experiment directory: its database, checkpoint folder and logs, and the lock that keeps
//! a second process from running it at the same time.

use std::path::{Path, PathBuf};

use poptune::ExperimentDef;
use poptune_store::{Checkpoints, Commit, MemberRow, SqliteStore, Store};

use crate::RunError;

/// The database file inside an experiment directory.
pub const DB_FILE: &str = "experiment.db";
/// The checkpoint folder inside an experiment directory.
pub const CKPT_DIR: &str = "checkpoints";
/// The per-slot stderr logs.
pub const LOG_DIR: &str = "logs";
/// The lock file that a running process holds.
pub const LOCK_FILE: &str = "poptune.lock";

/// Slot `slot`'s trainable stderr log in the log folder `logs`.
pub fn slot_log(logs: &Path, slot: usize) -> PathBuf {
    logs.join(format!("slot-{slot}.stderr.log"))
}

/// Opens an existing experiment directory: its store and definition.
pub fn open_dir(dir: &Path) -> Result<(SqliteStore, ExperimentDef), RunError> {
    let db = dir.join(DB_FILE);
    if !db.is_file() {
        return Err(RunError::usage(format!(
            "{} is not an experiment directory (no {DB_FILE}); give the directory `poptune run` created",
            dir.display()
        )));
    }
    let store = SqliteStore::open(&db)?;
    let (_, def) = store.definition()?.ok_or_else(|| {
        RunError::usage(format!(
            "{} holds no experiment yet; start it with `poptune run EXPERIMENT.toml`",
            db.display()
        ))
    })?;
    let def = ExperimentDef::from_json(&def).map_err(|e| {
        RunError::Fatal(format!(
            "{}: the stored definition is unreadable: {e}",
            db.display()
        ))
    })?;
    Ok((store, def))
}

/// What [`create_or_open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A new experiment.
    Created,
    /// The same experiment, stored before.
    Same,
    /// The stored experiment with new stop rules (recorded): it trains on to the new ones.
    NewStopRules,
}

impl Opened {
    /// Whether the experiment existed.
    pub fn existed(self) -> bool {
        self != Opened::Created
    }
}

/// Creates the experiment (or opens it, if the directory already holds the same one, or the
/// same one with other stop rules, which replace the stored ones).
pub fn create_or_open(def: &ExperimentDef) -> Result<(SqliteStore, Opened), RunError> {
    if def.directory.is_file() {
        return Err(RunError::usage(format!(
            "the experiment directory {} is a file; give `directory` a folder that is not a file",
            def.directory.display()
        )));
    }
    std::fs::create_dir_all(&def.directory).map_err(|e| {
        let what = format!(
            "cannot create the experiment directory {}",
            def.directory.display()
        );
        match e.kind() {
            // A file where a folder of the path should be: the user's to fix.
            std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotADirectory => {
                RunError::usage(format!(
                    "{what}: a file is in the way ({e}); give `directory` a path of folders"
                ))
            }
            _ => RunError::io(what, e),
        }
    })?;
    let mut store = SqliteStore::open(&def.directory.join(DB_FILE))?;
    let Some((_, stored)) = store.definition()? else {
        let members = initial_members(def)?;
        store.create(&def.name, &def.to_json(), &members)?;
        return Ok((store, Opened::Created));
    };
    let stored = ExperimentDef::from_json(&stored).ok();
    if stored.as_ref().is_some_and(|s| s.same_as(def)) {
        return Ok((store, Opened::Same));
    }
    if stored.as_ref().is_some_and(|s| s.same_but_stop(def)) {
        // A running process reads the definition it started with: never change it under one.
        check_not_running(&def.directory)?;
        store.commit(&Commit {
            definition: Some(def.to_json()),
            ..Commit::default()
        })?;
        return Ok((store, Opened::NewStopRules));
    }
    let changed = stored
        .as_ref()
        .map(|s| s.differences(def).join(", "))
        .unwrap_or_else(|| "the definition".to_string());
    Err(RunError::usage(format!(
        "{} already holds experiment `{}` with a different definition (changed: {changed}; only \
         the `[stop]` rules may change, to train it for longer); to continue it unchanged run \
         `poptune resume {}`, or give the new experiment another `name` or `directory`",
        def.directory.display(),
        def.name,
        def.directory.display()
    )))
}

/// Clears what killed runs left in an experiment directory that no process runs now:
/// `checkpoints/.tmp/` and checkpoint directories the index does not name. A run does this
/// when it starts; a command that does not run the experiment (a `run` of a finished one)
/// calls this instead. Does nothing while another process holds the experiment.
pub fn tidy(dir: &Path, store: &SqliteStore) -> Result<(), RunError> {
    let Ok(_lock) = lock_dir(dir) else {
        return Ok(());
    };
    let ckpts = Checkpoints::open(&dir.join(CKPT_DIR))?;
    ckpts.clean_tmp()?;
    let index: std::collections::BTreeSet<String> =
        store.checkpoints()?.into_iter().map(|c| c.name).collect();
    ckpts.sweep(|name| index.contains(name))?;
    Ok(())
}

/// The members of a new experiment: their first hyperparameters, nothing trained yet.
pub fn initial_members(def: &ExperimentDef) -> Result<Vec<MemberRow>, RunError> {
    let initial = def
        .experiment()
        .initial_hyperparams()
        .map_err(|e| RunError::usage(e.to_string()))?;
    Ok(initial
        .into_iter()
        .enumerate()
        .map(|(id, h)| MemberRow::new(id, h))
        .collect())
}

/// Fails with the same message as [`crate::local::run`] when another process is running the
/// experiment in `dir`, so a command can say so before it announces anything. (The lock is
/// released again: `run` takes it for good.)
pub fn check_not_running(dir: &Path) -> Result<(), RunError> {
    lock_dir(dir).map(drop)
}

/// Whether a process holds the experiment in `dir` now (a stored status of `running` with
/// nobody holding the lock means the run was killed).
pub fn is_held(dir: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(LOCK_FILE))
    else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Holds the experiment directory for this process: a second `poptune run` or `resume` of the
/// same experiment would train the same members and delete each other's checkpoints.
pub(crate) fn lock_dir(dir: &Path) -> Result<std::fs::File, RunError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| RunError::io(format!("cannot open {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(RunError::usage(format!(
            "another poptune process is running the experiment in {}; wait for it to end or \
             stop it (Ctrl-C) before running it again, and watch it with `poptune status {}`",
            dir.display(),
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            // Some network file systems have no locks: run, as without one, and say so.
            tracing::warn!(
                "cannot lock {} ({e}); make sure no other poptune process runs this \
                 experiment at the same time",
                path.display()
            );
            Ok(file)
        }
    }
}
