//! In-process Rust trainables on the durable runner.
//!
//! A [`Trainable`] whose state can also be written to a directory ([`Persist`]) trains in the
//! runner's own threads, one instance per slot. Exploits copy states in memory: every
//! member's newest state stays in a shared cache, so a recipient restores its donor without
//! reading a file. Checkpoints are still written, because the store makes them durable: a
//! killed run resumes from them and `poptune replay`, `export` and `resume` work on the
//! directory as on any other.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use poptune::Trainable;

use crate::fault::{Failure, Fault, FaultKind};
use crate::pool::{SegmentRequest, Worker, Workers};
use crate::protocol::Step;

/// A trainable whose state can be written to a checkpoint directory and read back.
///
/// `load_state(dir)` after `save_state(state, dir)` must give back a state that trains exactly
/// as the saved one would, or resumed runs and replays will differ from uninterrupted ones.
pub trait Persist: Trainable {
    /// Writes `state` into the (empty, existing) directory `dir`: at least one file.
    fn save_state(state: &Self::State, dir: &Path) -> std::io::Result<()>;
    /// Reads a state that `save_state` wrote; `self` serves as the template (the model's
    /// structure), its own state is left alone.
    fn load_state(&self, dir: &Path) -> std::io::Result<Self::State>;
}

/// A member's newest state and its checkpoint's name.
type Cached<T> = (String, Arc<<T as Trainable>::State>);

/// Workers that train `T` in-process; `factory(member)` makes a member's fresh trainable.
pub struct InProcess<T: Trainable, F> {
    factory: F,
    /// Each member's newest state, by checkpoint name.
    cache: Mutex<HashMap<usize, Cached<T>>>,
    /// Nanoseconds spent inside `Trainable::step`, all slots together.
    busy: AtomicU64,
}

impl<T, F> InProcess<T, F>
where
    T: Persist,
    F: Fn(usize) -> T + Sync,
{
    /// Workers built on `factory`.
    pub fn new(factory: F) -> Self {
        InProcess {
            factory,
            cache: Mutex::new(HashMap::new()),
            busy: AtomicU64::new(0),
        }
    }

    /// Seconds spent inside the trainable's `step`, all slots together: what the rest of a
    /// run's wall time × slots is compared with to measure poptune's own overhead.
    pub fn step_seconds(&self) -> f64 {
        self.busy.load(Ordering::Relaxed) as f64 * 1e-9
    }

    fn cached(&self, name: &str) -> Option<Arc<T::State>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .values()
            .find(|(n, _)| n == name)
            .map(|(_, s)| Arc::clone(s))
    }

    fn remember(&self, member: usize, name: &str, state: Arc<T::State>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(member, (name.to_string(), state));
    }
}

impl<T, F> Workers for InProcess<T, F>
where
    T: Persist,
    F: Fn(usize) -> T + Sync,
{
    fn worker(&self, _slot: usize, _log: &Path) -> Box<dyn Worker + '_> {
        Box::new(InProcessWorker {
            parent: self,
            current: None,
        })
    }
}

struct InProcessWorker<'a, T: Trainable, F> {
    parent: &'a InProcess<T, F>,
    /// The trainable this slot holds, and the checkpoint name its state equals.
    current: Option<(T, String)>,
}

/// A panic's message.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

impl<T, F> InProcessWorker<'_, T, F>
where
    T: Persist,
    F: Fn(usize) -> T + Sync,
{
    /// The trainable, restored to `restore` (or fresh for `member`).
    fn prepare(&mut self, member: usize, restore: Option<(&Path, &str)>) -> Result<T, Fault> {
        let fresh = |parent: &InProcess<T, F>| {
            catch_unwind(AssertUnwindSafe(|| (parent.factory)(member))).map_err(|p| Fault {
                kind: FaultKind::Crash,
                step: None,
                message: format!(
                    "making member {member}'s trainable panicked: {}",
                    panic_message(&*p)
                ),
            })
        };
        let Some((dir, name)) = restore else {
            self.current = None;
            return fresh(self.parent);
        };
        match self.current.take() {
            Some((t, n)) if n == name => Ok(t),
            other => {
                let mut t = match other {
                    Some((t, _)) => t,
                    None => fresh(self.parent)?,
                };
                let state = match self.parent.cached(name) {
                    Some(s) => s,
                    None => Arc::new(t.load_state(dir).map_err(|e| Fault {
                        kind: FaultKind::Checkpoint,
                        step: None,
                        message: format!("cannot load checkpoint {}: {e}", dir.display()),
                    })?),
                };
                catch_unwind(AssertUnwindSafe(|| t.restore(&state))).map_err(|p| Fault {
                    kind: FaultKind::Crash,
                    step: None,
                    message: format!("restoring {name} panicked: {}", panic_message(&*p)),
                })?;
                Ok(t)
            }
        }
    }
}

impl<T, F> Worker for InProcessWorker<'_, T, F>
where
    T: Persist,
    F: Fn(usize) -> T + Sync,
{
    fn train(
        &mut self,
        req: &SegmentRequest<'_>,
        on_step: &mut dyn FnMut(&Step),
    ) -> Result<Vec<Step>, Failure> {
        let no_stderr = |f: Fault| (f, String::new());
        let mut t = self.prepare(req.member, req.restore).map_err(no_stderr)?;
        let mut out = Vec::with_capacity(req.steps as usize);
        for i in 0..req.steps {
            let step = req.start + i + 1;
            if req.cancel.is_some_and(|c| c()) {
                return Err(no_stderr(Fault {
                    kind: FaultKind::Cancelled,
                    step: None,
                    message: format!("stopped after {i} of {} steps", req.steps),
                }));
            }
            let began = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| t.step(req.h)));
            self.parent
                .busy
                .fetch_add(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
            let m = match result {
                Ok(Ok(m)) => m,
                Ok(Err(e)) => {
                    return Err(no_stderr(Fault {
                        kind: FaultKind::Error,
                        step: Some(step),
                        message: format!("step {step}: the trainable reported: {e}"),
                    }))
                }
                Err(p) => {
                    return Err(no_stderr(Fault {
                        kind: FaultKind::Crash,
                        step: Some(step),
                        message: format!("step {step} panicked: {}", panic_message(&*p)),
                    }))
                }
            };
            if !m.score.is_finite() {
                return Err(no_stderr(Fault {
                    kind: FaultKind::NonFinite,
                    step: Some(step),
                    message: format!(
                        "step {step}: score is {} — the score must be a finite number",
                        m.score
                    ),
                }));
            }
            let s = Step {
                step,
                score: m.score,
                metrics: m.values,
            };
            on_step(&s);
            out.push(s);
        }
        let (dir, name) = req.checkpoint;
        let state = Arc::new(t.save());
        T::save_state(&state, dir).map_err(|e| {
            no_stderr(Fault {
                kind: FaultKind::Checkpoint,
                step: None,
                message: format!("cannot write the checkpoint into {}: {e}", dir.display()),
            })
        })?;
        self.parent.remember(req.member, name, state);
        self.current = Some((t, name.to_string()));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poptune::{Hyperparams, Metrics, TrainableError};

    #[derive(Clone, Debug, PartialEq)]
    struct Counter(f64);

    impl Persist for Adder {
        fn save_state(state: &Counter, dir: &Path) -> std::io::Result<()> {
            std::fs::write(dir.join("x"), state.0.to_string())
        }
        fn load_state(&self, dir: &Path) -> std::io::Result<Counter> {
            let s = std::fs::read_to_string(dir.join("x"))?;
            s.trim()
                .parse()
                .map(Counter)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        }
    }

    struct Adder {
        x: f64,
        loads: Arc<Mutex<usize>>,
    }

    impl Trainable for Adder {
        type State = Counter;
        fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError> {
            let lr = h.f64("lr").ok_or_else(|| TrainableError::new("no lr"))?;
            self.x += lr;
            if self.x > 100.0 {
                panic!("too big");
            }
            Ok(Metrics::new(if self.x > 50.0 { f64::NAN } else { self.x }))
        }
        fn save(&self) -> Counter {
            Counter(self.x)
        }
        fn restore(&mut self, s: &Counter) {
            *self.loads.lock().unwrap() += 1;
            self.x = s.0;
        }
    }

    /// In-process workers of [`Adder`]s that count their restores in `loads`.
    fn adders(loads: Arc<Mutex<usize>>) -> InProcess<Adder, impl Fn(usize) -> Adder + Sync> {
        InProcess::new(move |_| Adder {
            x: 0.0,
            loads: Arc::clone(&loads),
        })
    }

    fn seg<'a>(
        h: &'a Hyperparams,
        start: u64,
        restore: Option<(&'a Path, &'a str)>,
        ck: (&'a Path, &'a str),
    ) -> SegmentRequest<'a> {
        SegmentRequest {
            member: 0,
            start,
            steps: 2,
            h,
            restore,
            checkpoint: ck,
            timeout: std::time::Duration::from_secs(1),
            cancel: None,
        }
    }

    #[test]
    fn trains_saves_and_restores_from_memory_or_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let loads = Arc::new(Mutex::new(0));
        let workers = adders(Arc::clone(&loads));
        let h = Hyperparams::new().with("lr", 1.5);
        let a = tmp.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let mut w = workers.worker(0, tmp.path());
        let steps = w.train(&seg(&h, 0, None, (&a, "a")), &mut |_| {}).unwrap();
        assert_eq!(
            steps.iter().map(|s| s.score).collect::<Vec<_>>(),
            [1.5, 3.0]
        );
        assert_eq!(steps[1].step, 2);
        assert_eq!(std::fs::read_to_string(a.join("x")).unwrap(), "3");
        // The same slot goes on from memory: no restore at all.
        let b = tmp.path().join("b");
        std::fs::create_dir(&b).unwrap();
        let steps = w
            .train(&seg(&h, 2, Some((&a, "a")), (&b, "b")), &mut |_| {})
            .unwrap();
        assert_eq!(steps[1].score, 6.0);
        assert_eq!(*loads.lock().unwrap(), 0);
        // Another slot restores "b" from the cache, and an unknown name from disk.
        let mut w2 = workers.worker(1, tmp.path());
        let c = tmp.path().join("c");
        std::fs::create_dir(&c).unwrap();
        let steps = w2
            .train(&seg(&h, 4, Some((&b, "b")), (&c, "c")), &mut |_| {})
            .unwrap();
        assert_eq!(steps[0].score, 7.5);
        std::fs::write(tmp.path().join("a").join("x"), "40").unwrap();
        let d = tmp.path().join("d");
        std::fs::create_dir(&d).unwrap();
        let steps = w2
            .train(&seg(&h, 6, Some((&a, "unknown")), (&d, "d")), &mut |_| {})
            .unwrap();
        assert_eq!(steps[0].score, 41.5);
        assert_eq!(*loads.lock().unwrap(), 2);
    }

    #[test]
    fn errors_panics_and_nan_are_faults() {
        let tmp = tempfile::tempdir().unwrap();
        let workers = adders(Arc::new(Mutex::new(0)));
        let a = tmp.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let mut w = workers.worker(0, tmp.path());
        let none = Hyperparams::new();
        let f = w.train(&seg(&none, 0, None, (&a, "a")), &mut |_| {});
        assert_eq!(f.unwrap_err().0.kind, FaultKind::Error);
        let big = Hyperparams::new().with("lr", 30.0);
        let f = w.train(&seg(&big, 0, None, (&a, "a")), &mut |_| {});
        assert_eq!(f.unwrap_err().0.kind, FaultKind::NonFinite);
        let huge = Hyperparams::new().with("lr", 200.0);
        let f = w
            .train(&seg(&huge, 0, None, (&a, "a")), &mut |_| {})
            .unwrap_err();
        assert_eq!(f.0.kind, FaultKind::Crash);
        assert!(f.0.message.contains("too big"), "{}", f.0.message);
        let f = w
            .train(
                &seg(&big, 0, Some((&tmp.path().join("nope"), "nope")), (&a, "a")),
                &mut |_| {},
            )
            .unwrap_err();
        assert_eq!(f.0.kind, FaultKind::Checkpoint);
    }

    #[test]
    fn a_cancelled_segment_stops_between_steps() {
        let tmp = tempfile::tempdir().unwrap();
        let workers = adders(Arc::new(Mutex::new(0)));
        let a = tmp.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let mut w = workers.worker(0, tmp.path());
        let h = Hyperparams::new().with("lr", 1.0);
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let cancel = || seen.load(Ordering::SeqCst) >= 1;
        let mut req = seg(&h, 0, None, (&a, "a"));
        req.cancel = Some(&cancel);
        let f = w
            .train(&req, &mut |_| {
                seen.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap_err();
        assert_eq!(f.0.kind, FaultKind::Cancelled);
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        assert!(
            !a.join("x").exists(),
            "a cancelled segment wrote a checkpoint"
        );
    }
}
