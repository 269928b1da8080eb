//! The live writer: an [`Observer`] that turns a run's recorded steps and exploits into
//! event-file records on the run's threads (a few hundred bytes, in memory) and hands them to
//! its own thread, which appends them to the members' files and flushes them at least every
//! second. A write that fails is logged once; the run never waits for, nor fails by, these
//! files.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use poptune_run::{Observer, RunEvent};

use super::{exploit_scalars, file_name, member_dir, now, record, step_scalars};

/// How long records may wait in memory before they are written out.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Records for one member's file.
struct Records {
    member: usize,
    bytes: Vec<u8>,
}

/// Writes a run's TensorBoard files while it goes (see the [module](super) documentation).
/// Call [`Live::finish`] when the run ends (dropping it does the same).
pub struct Live {
    metric: String,
    tx: Mutex<Option<Sender<Records>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Live {
    /// A writer into `logdir` (created when the first step comes), the score tagged `metric`.
    /// If its thread cannot start, it warns and writes nothing.
    pub fn start(logdir: &Path, metric: &str) -> Live {
        let (tx, rx) = channel();
        let dir = logdir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("poptune-tensorboard".to_string())
            .spawn(move || Files::new(dir).serve(&rx));
        let (tx, thread) = match thread {
            Ok(t) => (Some(tx), Some(t)),
            Err(e) => {
                tracing::warn!("TensorBoard files are not written: cannot start a thread: {e}");
                (None, None)
            }
        };
        Live {
            metric: metric.to_string(),
            tx: Mutex::new(tx),
            thread: Mutex::new(thread),
        }
    }

    /// Writes out what is left and stops the writer's thread.
    pub fn finish(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }

    fn send(&self, member: usize, bytes: Vec<u8>) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = tx.as_ref() {
            // The thread has stopped only if it panicked: nothing more to write then.
            let _ = tx.send(Records { member, bytes });
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Observer for Live {
    fn event(&self, event: &RunEvent) {
        match event {
            RunEvent::Recorded { member, h, steps } => {
                let wall = now();
                let mut bytes = Vec::with_capacity(steps.len() * 64);
                for row in steps {
                    let values = step_scalars(&self.metric, row, h);
                    record::scalars_record(&mut bytes, wall, row.step, &values);
                }
                self.send(*member, bytes);
            }
            RunEvent::Lineage(e) => {
                if let Some(values) = exploit_scalars(e) {
                    let mut bytes = Vec::with_capacity(64);
                    record::scalars_record(&mut bytes, now(), e.step, &values);
                    self.send(e.recipient, bytes);
                }
            }
            _ => {}
        }
    }
}

/// The writer thread's open files.
struct Files {
    logdir: PathBuf,
    name: String,
    open: HashMap<usize, (PathBuf, BufWriter<File>)>,
    /// Set at the first error: nothing more is written.
    broken: bool,
}

impl Files {
    fn new(logdir: PathBuf) -> Files {
        Files {
            logdir,
            name: file_name("poptune"),
            open: HashMap::new(),
            broken: false,
        }
    }

    /// Writes what comes until the run ends, flushing at least every second.
    fn serve(mut self, rx: &Receiver<Records>) {
        let mut dirty: Option<Instant> = None;
        loop {
            let next = match dirty {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(since) => rx.recv_timeout(FLUSH_EVERY.saturating_sub(since.elapsed())),
            };
            match next {
                Ok(r) => {
                    self.append(r);
                    dirty.get_or_insert_with(Instant::now);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if dirty.is_some_and(|t| t.elapsed() >= FLUSH_EVERY) {
                self.flush();
                dirty = None;
            }
        }
        self.flush();
    }

    fn append(&mut self, r: Records) {
        if self.broken {
            return;
        }
        if let Err((path, e)) = self.try_append(&r) {
            self.fail(&path, &e);
        }
    }

    fn try_append(&mut self, r: &Records) -> Result<(), (PathBuf, std::io::Error)> {
        if !self.open.contains_key(&r.member) {
            let dir = member_dir(&self.logdir, r.member);
            std::fs::create_dir_all(&dir).map_err(|e| (dir.clone(), e))?;
            let path = dir.join(&self.name);
            let file = File::options()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| (path.clone(), e))?;
            let mut w = BufWriter::with_capacity(64 * 1024, file);
            let mut first = Vec::new();
            record::version_record(&mut first, now());
            w.write_all(&first).map_err(|e| (path.clone(), e))?;
            self.open.insert(r.member, (path, w));
        }
        if let Some((path, w)) = self.open.get_mut(&r.member) {
            w.write_all(&r.bytes).map_err(|e| (path.clone(), e))?;
        }
        Ok(())
    }

    fn flush(&mut self) {
        if self.broken {
            return;
        }
        let failed = self
            .open
            .values_mut()
            .find_map(|(path, w)| w.flush().err().map(|e| (path.clone(), e)));
        if let Some((path, e)) = failed {
            self.fail(&path, &e);
        }
    }

    /// Warns once and stops writing; the run goes on.
    fn fail(&mut self, path: &Path, e: &std::io::Error) {
        tracing::warn!(
            "cannot write the TensorBoard file {}: {e}; the run goes on without TensorBoard \
             files",
            path.display()
        );
        self.broken = true;
        // Dropped without flushing again (a BufWriter's drop flushes, and ignores errors).
        self.open.clear();
    }
}
