//! Immutable checkpoint directories.
//!
//! A trainable writes its checkpoint into a fresh temporary directory. There are two ways to
//! make it a checkpoint:
//!
//! - [`Checkpoints::commit`] fsyncs every file, computes a checksum over the names and
//!   contents, renames the directory into place and fsyncs the parent: the checkpoint is
//!   durable when it returns (the distributed workers use this).
//! - [`Checkpoints::place`] computes the checksum and renames the directory into place at
//!   once, so that training can go on from it; [`Checkpoints::flush`] later makes a whole group
//!   of placed checkpoints durable with one flush of the file system. A placed checkpoint may
//!   be recorded in an index only after that flush; until then it is not a checkpoint but a
//!   directory that [`Checkpoints::sweep`] deletes when a run starts again after a crash.
//!
//! Nothing ever writes into a checkpoint again; restoring verifies the checksum first. A
//! member that exploits a donor points at the donor's checkpoint; since it never changes,
//! there is nothing to race with.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::StoreError;

/// The checkpoint folder of one experiment.
#[derive(Debug)]
pub struct Checkpoints {
    root: PathBuf,
    counter: AtomicU64,
    /// Emptied directories of deleted checkpoints, under `.tmp`, ready to be handed out again
    /// by [`Checkpoints::tmp_dir`].
    spare: Mutex<Vec<PathBuf>>,
}

/// How many emptied directories [`Checkpoints::recycle`] keeps for reuse.
const SPARE: usize = 256;

fn io_err(path: &Path, e: io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        error: e,
    }
}

impl Checkpoints {
    /// The checkpoint folder at `root` (created if missing).
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(root.join(".tmp")).map_err(|e| io_err(root, e))?;
        Ok(Checkpoints {
            root: root.to_path_buf(),
            counter: AtomicU64::new(0),
            spare: Mutex::new(Vec::new()),
        })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes what interrupted writers left behind.
    pub fn clean_tmp(&self) -> Result<(), StoreError> {
        let tmp = self.root.join(".tmp");
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))
    }

    /// A fresh, empty temporary directory for a trainable to write a checkpoint into: the
    /// emptied directory of a deleted checkpoint when there is one (creating and deleting
    /// directories is the costly part of a small checkpoint on some file systems), else a new
    /// one.
    pub fn tmp_dir(&self, tag: &str) -> Result<PathBuf, StoreError> {
        loop {
            let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let Some(dir) = spare else { break };
            let empty = fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_none());
            if empty {
                return Ok(dir);
            }
            let _ = fs::remove_dir_all(&dir);
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .root
            .join(".tmp")
            .join(format!("{tag}-{}-{n}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        }
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        Ok(dir)
    }

    /// Makes the temporary directory `tmp` the checkpoint `name` (relative to the folder):
    /// fsync, checksum, rename, fsync. Returns the checksum.
    pub fn commit(&self, tmp: &Path, name: &str) -> Result<String, StoreError> {
        let files = list_files(tmp)?;
        for f in &files {
            File::open(tmp.join(f))
                .and_then(|h| h.sync_all())
                .map_err(|e| io_err(&tmp.join(f), e))?;
        }
        sync_dir(tmp)?;
        let sum = checksum(tmp, &files)?;
        let dest = self.root.join(name);
        if dest.exists() {
            // A previous attempt got as far as the rename but not the database: the same
            // segment was retrained, so its result replaces the orphan.
            fs::remove_dir_all(&dest).map_err(|e| io_err(&dest, e))?;
        }
        fs::rename(tmp, &dest).map_err(|e| io_err(&dest, e))?;
        sync_dir(&self.root)?;
        Ok(sum)
    }

    /// Puts the temporary directory `tmp` in place as checkpoint `name` without flushing it:
    /// checksum, then rename (replacing a directory of that name that no index records: a
    /// placed checkpoint of a run that stopped before recording it). A placed checkpoint can be
    /// read at once, so the next segment can start from it, but it is not durable until
    /// [`Checkpoints::flush`], and no index may record it before then. Returns the checksum,
    /// or `None` when `tmp` holds no files (then nothing is placed).
    pub fn place(&self, tmp: &Path, name: &str) -> Result<Option<String>, StoreError> {
        let files = list_files(tmp)?;
        if files.is_empty() {
            return Ok(None);
        }
        let sum = checksum(tmp, &files)?;
        let dest = self.root.join(name);
        match fs::rename(tmp, &dest) {
            Ok(()) => {}
            Err(_) if dest.is_dir() => {
                fs::remove_dir_all(&dest).map_err(|e| io_err(&dest, e))?;
                fs::rename(tmp, &dest).map_err(|e| io_err(&dest, e))?;
            }
            Err(e) => return Err(io_err(&dest, e)),
        }
        Ok(Some(sum))
    }

    /// Makes placed checkpoints durable: their files, their directories and their names. On
    /// Linux one `syncfs` flushes them all at once (group commit); elsewhere every file and
    /// directory is fsynced.
    pub fn flush(&self, names: &[String]) -> Result<(), StoreError> {
        #[cfg(target_os = "linux")]
        {
            let _ = names;
            let dir = File::open(&self.root).map_err(|e| io_err(&self.root, e))?;
            use std::os::fd::AsRawFd;
            // SAFETY: syncfs takes a valid open file descriptor, which `dir` holds.
            let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
            if rc != 0 {
                return Err(io_err(&self.root, io::Error::last_os_error()));
            }
            Ok(())
        }
        #[cfg(not(target_os = "linux"))]
        {
            for name in names {
                let dir = self.root.join(name);
                for f in list_files(&dir)? {
                    File::open(dir.join(&f))
                        .and_then(|h| h.sync_all())
                        .map_err(|e| io_err(&dir.join(&f), e))?;
                }
                sync_dir(&dir)?;
            }
            sync_dir(&self.root)
        }
    }

    /// Deletes the checkpoints for which `keep` says no: directories a run placed but never
    /// recorded before it stopped. Returns how many went.
    pub fn sweep(&self, keep: impl Fn(&str) -> bool) -> Result<usize, StoreError> {
        let mut n = 0;
        for entry in fs::read_dir(&self.root).map_err(|e| io_err(&self.root, e))? {
            let entry = entry.map_err(|e| io_err(&self.root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == ".tmp" || keep(&name) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            fs::remove_dir_all(entry.path()).map_err(|e| io_err(&entry.path(), e))?;
            n += 1;
        }
        Ok(n)
    }

    /// The absolute path of checkpoint `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Checks that checkpoint `name` is whole and unchanged.
    pub fn verify(&self, name: &str, expected: &str) -> Result<(), StoreError> {
        let dir = self.root.join(name);
        let files = list_files(&dir)?;
        let sum = checksum(&dir, &files)?;
        if sum != expected {
            return Err(StoreError::Corrupt {
                path: dir.display().to_string(),
                reason: format!("checksum {sum} differs from the recorded {expected}"),
            });
        }
        Ok(())
    }

    /// Deletes checkpoint `name`'s contents and keeps its emptied directory for
    /// [`Checkpoints::tmp_dir`] (or deletes it, when enough are kept).
    pub fn recycle(&self, name: &str) -> Result<(), StoreError> {
        match self.retire(name)? {
            Some(dir) => self.empty_retired(&dir),
            None => Ok(()),
        }
    }

    /// Takes checkpoint `name` out of the checkpoint namespace at once (one rename into
    /// `.tmp/`), so that the folder holds only what the index names; its files are deleted
    /// later by [`Checkpoints::empty_retired`], or by the next run's [`Checkpoints::clean_tmp`].
    /// Returns where it went (`None` if it was gone already).
    pub fn retire(&self, name: &str) -> Result<Option<PathBuf>, StoreError> {
        let dir = self.root.join(name);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let retired = self
            .root
            .join(".tmp")
            .join(format!("spare-{}-{n}", std::process::id()));
        match fs::rename(&dir, &retired) {
            Ok(()) => Ok(Some(retired)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&dir, e)),
        }
    }

    /// Deletes the files of a directory [`Checkpoints::retire`] moved, and keeps the emptied
    /// directory for [`Checkpoints::tmp_dir`] (or deletes it, when enough are kept).
    pub fn empty_retired(&self, dir: &Path) -> Result<(), StoreError> {
        let full = self.spare.lock().unwrap_or_else(|e| e.into_inner()).len() >= SPARE;
        if full {
            return fs::remove_dir_all(dir).map_err(|e| io_err(dir, e));
        }
        for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let entry = entry.map_err(|e| io_err(dir, e))?;
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let removed = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(|e| io_err(&path, e))?;
        }
        self.spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(dir.to_path_buf());
        Ok(())
    }

    /// Removes the emptied directories kept for reuse (at the end of a run: each is one
    /// `rmdir`), leaving `.tmp/` with what was not emptied yet.
    pub fn drop_spares(&self) {
        let spares = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|e| e.into_inner()));
        for dir in spares {
            let _ = fs::remove_dir(&dir);
        }
    }

    /// Deletes checkpoint `name`.
    pub fn remove(&self, name: &str) -> Result<(), StoreError> {
        let dir = self.root.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        }
        Ok(())
    }

    /// Copies checkpoint `name` to `dest` (which must not exist).
    pub fn export(&self, name: &str, dest: &Path) -> Result<(), StoreError> {
        let src = self.root.join(name);
        copy_tree(&src, dest)
    }
}

fn copy_tree(src: &Path, dest: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dest).map_err(|e| io_err(dest, e))?;
    for f in list_files(src)? {
        let to = dest.join(&f);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        fs::copy(src.join(&f), &to).map_err(|e| io_err(&to, e))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|h| h.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Every file under `dir`, as relative paths, sorted.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        for entry in fs::read_dir(&abs).map_err(|e| io_err(&abs, e))? {
            let entry = entry.map_err(|e| io_err(&abs, e))?;
            let kind = entry.file_type().map_err(|e| io_err(&entry.path(), e))?;
            let child = rel.join(entry.file_name());
            if kind.is_dir() {
                stack.push(child);
            } else {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn checksum(dir: &Path, files: &[PathBuf]) -> Result<String, StoreError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        h.update([0u8]);
        let path = dir.join(f);
        let mut file = File::open(&path).map_err(|e| io_err(&path, e))?;
        loop {
            let n = file.read(&mut buf).map_err(|e| io_err(&path, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        h.update([0u8]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary checkpoint directory holding a file and a file in a subdirectory.
    fn two_files(c: &Checkpoints) -> PathBuf {
        let tmp = c.tmp_dir("m0").unwrap();
        fs::write(tmp.join("weights.bin"), b"abc").unwrap();
        fs::create_dir(tmp.join("sub")).unwrap();
        fs::write(tmp.join("sub/opt.bin"), b"def").unwrap();
        tmp
    }

    #[test]
    fn placed_checkpoints_are_readable_at_once_then_flushed_and_swept() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoints::open(dir.path()).unwrap();
        let mut names = Vec::new();
        let mut sums = Vec::new();
        for i in 0..3 {
            let tmp = c.tmp_dir("m").unwrap();
            fs::write(tmp.join("x"), format!("{i}")).unwrap();
            let name = format!("c{i}");
            sums.push(c.place(&tmp, &name).unwrap().unwrap());
            assert!(!tmp.exists());
            names.push(name);
        }
        c.flush(&names).unwrap();
        for (name, sum) in names.iter().zip(&sums) {
            c.verify(name, sum).unwrap();
        }
        // An empty directory is not placed.
        let empty = c.tmp_dir("m").unwrap();
        assert_eq!(c.place(&empty, "c9").unwrap(), None);
        assert!(!c.path("c9").exists());
        // A missing one is an error naming it.
        let err = c.place(&dir.path().join("missing"), "c8").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        // Placing over a leftover of the same name replaces it.
        let tmp = c.tmp_dir("m").unwrap();
        fs::write(tmp.join("y"), b"new").unwrap();
        let sum = c.place(&tmp, "c0").unwrap().unwrap();
        c.verify("c0", &sum).unwrap();
        assert!(!c.path("c0").join("x").exists());
        // The sweep deletes what `keep` refuses, and never the temporary folder.
        assert_eq!(c.sweep(|n| n != "c1").unwrap(), 1);
        assert!(!c.path("c1").exists());
        assert!(c.path("c0").exists() && c.path("c2").exists());
        assert!(dir.path().join(".tmp").is_dir());
    }

    #[test]
    fn a_recycled_checkpoint_is_gone_and_its_directory_comes_back_empty() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoints::open(dir.path()).unwrap();
        let tmp = two_files(&c);
        c.commit(&tmp, "m0-s5").unwrap();
        c.recycle("m0-s5").unwrap();
        assert!(!c.path("m0-s5").exists());
        // Recycling what is already gone is not an error.
        c.recycle("m0-s5").unwrap();
        let again = c.tmp_dir("m0").unwrap();
        assert_eq!(fs::read_dir(&again).unwrap().count(), 0);
        assert!(again.starts_with(dir.path().join(".tmp")));
        // It is used like any new one; the next is new (the spare was handed out).
        fs::write(again.join("weights.bin"), b"xyz").unwrap();
        let sum = c.commit(&again, "m0-s10").unwrap();
        c.verify("m0-s10", &sum).unwrap();
        let fresh = c.tmp_dir("m0").unwrap();
        assert_ne!(fresh, again);
        // A spare that is somehow not empty any more is never handed out.
        c.recycle("m0-s10").unwrap();
        let spare = fs::read_dir(dir.path().join(".tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("spare-")
            })
            .unwrap();
        fs::write(spare.join("stray"), b"!").unwrap();
        let next = c.tmp_dir("m0").unwrap();
        assert_eq!(fs::read_dir(&next).unwrap().count(), 0);
        assert!(!spare.exists());
    }

    #[test]
    fn commit_verify_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoints::open(dir.path()).unwrap();
        let tmp = two_files(&c);
        let sum = c.commit(&tmp, "m0-s5").unwrap();
        assert!(!tmp.exists());
        c.verify("m0-s5", &sum).unwrap();
        fs::write(c.path("m0-s5").join("weights.bin"), b"abd").unwrap();
        let err = c.verify("m0-s5", &sum).unwrap_err();
        assert!(err.to_string().contains("m0-s5"), "{err}");
        let out = dir.path().join("exported");
        c.export("m0-s5", &out).unwrap();
        assert_eq!(fs::read(out.join("sub/opt.bin")).unwrap(), b"def");
        c.remove("m0-s5").unwrap();
        assert!(!c.path("m0-s5").exists());
    }
}
