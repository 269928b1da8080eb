//! Removing the checkpoint directories that killed workers and outages leave on the shared
//! directory, without racing a worker that may still record one.
//!
//! A worker writes a checkpoint into `checkpoints/.tmp/`, renames it into `checkpoints/`, and
//! only then records it in its ready transaction, which must find the worker's lease valid by
//! the database's clock (an expired lease is never renewed). So a directory that the index
//! does not name may still be recorded only by the worker whose name it carries (a
//! checkpoint's name ends with a hash of its worker; a temporary directory's name holds the
//! worker), and only while that worker holds a live lease. [`tidy`] lists the directories
//! first, then reads the index and the live lease holders in one snapshot, and removes a
//! directory when
//!
//! - the index does not name it,
//! - its worker holds no live lease, and
//! - it is older (by its modification time) than two leases and a margin, or the experiment
//!   has finished and no lease is live (then nothing can be recorded any more).
//!
//! A directory is first renamed into `.tmp/` (atomic: two workers tidying at once cannot
//! both take it), then deleted.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use poptune_pg::PostgresStore;
use poptune_store::{Checkpoints, RunStatus, StoreError};

use super::segment::short_hash;

/// Added to two leases before an unrecorded directory counts as abandoned: room for clocks
/// that differ between the machines and the file server.
const MARGIN: Duration = Duration::from_secs(30);

/// What [`tidy`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tidied {
    /// Checkpoint directories no index entry named.
    pub checkpoints: usize,
    /// Abandoned temporary directories.
    pub temporary: usize,
}

/// One directory found on the shared directory.
struct Found {
    name: String,
    path: PathBuf,
    age: Duration,
}

fn list(dir: &Path, now: SystemTime) -> Result<Vec<Found>, StoreError> {
    let io = |e| StoreError::Io {
        path: dir.display().to_string(),
        error: e,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue };
        if name == ".tmp" || !meta.is_dir() {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or(Duration::ZERO);
        out.push(Found {
            name,
            path: entry.path(),
            age,
        });
    }
    Ok(out)
}

/// The worker hash at the end of a checkpoint name (`m0003-e000002-s00000010-1a2b3c4d`), if
/// the name is one a worker writes.
fn worker_hash(name: &str) -> Option<&str> {
    let (_, hash) = name.rsplit_once('-')?;
    let ok =
        name.starts_with('m') && hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(hash)
}

/// Removes what no worker can record any more from `ckpts` (see the module's rule); `lease` is
/// this worker's lease.
pub fn tidy(
    store: &PostgresStore,
    ckpts: &Checkpoints,
    lease: Duration,
) -> Result<Tidied, StoreError> {
    let now = SystemTime::now();
    // Listed before the snapshot: a directory renamed into place after the listing is not
    // looked at; one listed here and recorded before the snapshot is in its index.
    let placed = list(ckpts.root(), now)?;
    let temporary = list(&ckpts.root().join(".tmp"), now)?;
    let view = store.tidy_view()?;
    let (status, _) = poptune_store::Store::status(store)?;
    let settled = status == RunStatus::Finished && view.live_owners.is_empty();
    let old = if settled {
        Duration::ZERO
    } else {
        lease * 2 + MARGIN
    };
    let live_hashes: Vec<String> = view.live_owners.iter().map(|o| short_hash(o)).collect();
    let mut done = Tidied::default();
    for f in placed {
        let Some(hash) = worker_hash(&f.name) else {
            continue;
        };
        let abandoned =
            !view.index.contains(&f.name) && !live_hashes.iter().any(|h| h == hash) && f.age >= old;
        if abandoned && take_away(ckpts, &f.path) {
            done.checkpoints += 1;
        }
    }
    for f in temporary {
        let live = view
            .live_owners
            .iter()
            .any(|o| f.name.contains(&format!("-{o}-")));
        if !live && f.age >= old && remove(&f.path) {
            done.temporary += 1;
        }
    }
    Ok(done)
}

/// Renames `dir` into `.tmp/` and deletes it there; whether this call took it.
fn take_away(ckpts: &Checkpoints, dir: &Path) -> bool {
    let Some(name) = dir.file_name() else {
        return false;
    };
    let to = ckpts.root().join(".tmp").join(format!(
        "tidy-{}-{}",
        std::process::id(),
        name.to_string_lossy()
    ));
    if std::fs::rename(dir, &to).is_err() {
        // Gone already (another worker tidied it), or not ours to move.
        return false;
    }
    remove(&to);
    true
}

fn remove(dir: &Path) -> bool {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!("cannot remove {}: {e}", dir.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::worker_hash;

    #[test]
    fn reads_the_worker_hash_of_a_checkpoint_name() {
        assert_eq!(
            worker_hash("m0003-e000002-s00000010-1a2b3c4d"),
            Some("1a2b3c4d")
        );
        assert_eq!(worker_hash("best"), None);
        assert_eq!(worker_hash("m0003-e000002-s00000010-xyz"), None);
    }
}
