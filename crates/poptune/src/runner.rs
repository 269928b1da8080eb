//! The in-process runner: a population of [`Trainable`]s trained on worker threads.
//!
//! Members time-share the workers when there are more members than workers. Exploits clone the
//! donor's saved state in memory. A synchronous run is reproducible bit for bit for a given
//! seed whatever the number of workers; an asynchronous run is when it has one worker.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{ConfigError, RunError};
use crate::lineage::{schedule, Event, Schedule, StepRecord};
use crate::policy::{rng_for, Decision, Policy, Stream, SyncMode, Variant};
use crate::population::{MemberId, Mode, Population};
use crate::space::{Hyperparams, Space};
use crate::trainable::Trainable;

/// Where the members' initial hyperparameters come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initial {
    /// Drawn from the prior (seeded).
    #[default]
    Prior,
    /// A grid over the space (see [`Space::grid`]); members past the grid's size draw from the
    /// prior.
    Grid,
    /// Given, one per member.
    Given(Vec<Hyperparams>),
}

/// The comparison runs: PBT and its baselines at the same population and budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// PBT as configured.
    Pbt,
    /// Explore without copying.
    ExploreOnly,
    /// Copy without exploring.
    ExploitOnly,
    /// Grid search: a grid of initial hyperparameters (or the given ones), no adaptation.
    Grid,
    /// Random search: initial hyperparameters from the prior, no adaptation.
    Random,
}

impl Baseline {
    /// Every variant, PBT first.
    pub const ALL: [Baseline; 5] = [
        Baseline::Pbt,
        Baseline::ExploreOnly,
        Baseline::ExploitOnly,
        Baseline::Grid,
        Baseline::Random,
    ];

    /// The name used in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Pbt => "pbt",
            Baseline::ExploreOnly => "explore-only",
            Baseline::ExploitOnly => "exploit-only",
            Baseline::Grid => "grid",
            Baseline::Random => "random",
        }
    }
}

/// One PBT experiment, in process.
///
/// ```
/// use poptune::{Experiment, Hyperparams, Metrics, Param, Space, Trainable, TrainableError};
///
/// struct Quadratic { x: f64 }
/// impl Trainable for Quadratic {
///     type State = f64;
///     fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError> {
///         let lr = h.f64("lr").unwrap_or(0.0);
///         self.x -= lr * 2.0 * (self.x - 3.0);
///         Ok(Metrics::new(-(self.x - 3.0).powi(2)))
///     }
///     fn save(&self) -> f64 { self.x }
///     fn restore(&mut self, s: &f64) { self.x = *s }
/// }
///
/// let space = Space::new().with("lr", Param::log_float(1e-4, 0.4));
/// let outcome = Experiment::new(space)
///     .population(8)
///     .steps(50)
///     .seed(7)
///     .workers(1) // one worker: an asynchronous run is then reproducible
///     .run(|_member| Quadratic { x: 0.0 })
///     .unwrap();
/// let best = outcome.best();
/// assert!(outcome.members[best].score.unwrap() > -1e-3);
/// // The schedule that produced the best member replays to the same score.
/// let sched = outcome.schedule(best);
/// let replayed = sched.replay(&mut Quadratic { x: 0.0 }).unwrap();
/// assert_eq!(replayed.last().unwrap().score, outcome.members[best].score.unwrap());
/// ```
#[derive(Clone, Debug)]
pub struct Experiment {
    /// The search space.
    pub space: Space,
    /// The policy.
    pub policy: Policy,
    /// Maximise or minimise the score.
    pub mode: Mode,
    /// Number of members.
    pub population: usize,
    /// Steps each member trains.
    pub steps: u64,
    /// Seed of every random choice poptune makes.
    pub seed: u64,
    /// Worker threads (members time-share them when fewer).
    pub workers: usize,
    /// Initial hyperparameters.
    pub initial: Initial,
}

impl Experiment {
    /// An experiment over `space` with the default policy, 8 members, 100 steps, seed 0, one
    /// worker per core and hyperparameters from the prior.
    pub fn new(space: Space) -> Self {
        Experiment {
            space,
            policy: Policy::default(),
            mode: Mode::Max,
            population: 8,
            steps: 100,
            seed: 0,
            workers: thread::available_parallelism().map_or(1, |n| n.get()),
            initial: Initial::Prior,
        }
    }

    /// Sets the policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the population size.
    pub fn population(mut self, n: usize) -> Self {
        self.population = n;
        self
    }

    /// Sets the steps per member.
    pub fn steps(mut self, steps: u64) -> Self {
        self.steps = steps;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the number of worker threads.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Sets the initial hyperparameters.
    pub fn initial(mut self, initial: Initial) -> Self {
        self.initial = initial;
        self
    }

    /// The same experiment turned into a baseline: PBT, an ablation, grid or random search.
    /// Grid keeps given initial hyperparameters if there are any.
    pub fn baseline(&self, baseline: Baseline) -> Experiment {
        let mut e = self.clone();
        match baseline {
            Baseline::Pbt => {}
            Baseline::ExploreOnly => e.policy.variant = Variant::ExploreOnly,
            Baseline::ExploitOnly => e.policy.variant = Variant::ExploitOnly,
            Baseline::Grid => {
                e.policy.variant = Variant::Frozen;
                if !matches!(e.initial, Initial::Given(_)) {
                    e.initial = Initial::Grid;
                }
            }
            Baseline::Random => {
                e.policy.variant = Variant::Frozen;
                e.initial = Initial::Prior;
            }
        }
        e
    }

    /// Checks every setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.space.validate()?;
        self.policy.validate()?;
        if self.population == 0 {
            return Err(ConfigError::invalid(
                "population",
                0,
                "the population needs at least one member (PBT needs two to compare)",
            ));
        }
        if self.steps == 0 {
            return Err(ConfigError::invalid(
                "steps",
                0,
                "members must train at least one step",
            ));
        }
        if self.workers == 0 {
            return Err(ConfigError::invalid(
                "workers",
                0,
                "at least one worker thread is needed",
            ));
        }
        if let Initial::Given(hs) = &self.initial {
            if hs.len() != self.population {
                return Err(ConfigError::invalid(
                    "initial",
                    format!("{} sets", hs.len()),
                    format!(
                        "give exactly one set of hyperparameters per member ({})",
                        self.population
                    ),
                ));
            }
            for h in hs {
                self.space.check(h)?;
            }
        }
        Ok(())
    }

    /// The members' initial hyperparameters.
    pub fn initial_hyperparams(&self) -> Result<Vec<Hyperparams>, ConfigError> {
        self.validate()?;
        let prior = |i: MemberId| {
            let mut rng = rng_for(self.seed, Stream::Initial, i, 0, 0);
            self.space.sample(&mut rng)
        };
        Ok(match &self.initial {
            Initial::Prior => (0..self.population).map(prior).collect(),
            Initial::Grid => {
                let mut g = self.space.grid(self.population);
                let n = g.len();
                g.extend((n..self.population).map(prior));
                g
            }
            Initial::Given(hs) => hs.clone(),
        })
    }

    /// Runs the experiment; `factory(i)` makes member `i`'s trainable in its initial state.
    pub fn run<T, F>(&self, factory: F) -> Result<Outcome<T::State>, RunError>
    where
        T: Trainable,
        F: Fn(MemberId) -> T + std::marker::Sync,
    {
        let initial = self.initial_hyperparams()?;
        let members: Vec<Member<T>> = initial
            .iter()
            .enumerate()
            .map(|(i, h)| Member {
                id: i,
                trainable: factory(i),
                h: h.clone(),
                step: 0,
                decisions: 0,
                history: Vec::with_capacity(self.steps.min(1 << 20) as usize),
                restore: None,
            })
            .collect();
        let pop = Population::new(self.mode, initial.clone(), self.policy.exploit.window());
        let ctx = Ctx {
            space: &self.space,
            policy: &self.policy,
            steps: self.steps,
            seed: self.seed,
        };
        let workers = self.workers.min(self.population).max(1);
        let (members, events, pop) = match self.policy.sync {
            SyncMode::Synchronous => run_sync(&ctx, members, pop, workers)?,
            SyncMode::Asynchronous => run_async(&ctx, members, pop, workers)?,
        };
        let members = members
            .into_iter()
            .map(|m| MemberOutcome {
                id: m.id,
                score: pop.member(m.id).score,
                state: m.trainable.save(),
                h: m.h,
                step: m.step,
                history: m.history,
            })
            .collect();
        Ok(Outcome {
            mode: self.mode,
            initial,
            members,
            events,
        })
    }
}

/// A member's end state.
#[derive(Clone, Debug)]
pub struct MemberOutcome<S> {
    /// The member.
    pub id: MemberId,
    /// Its final hyperparameters.
    pub h: Hyperparams,
    /// Its final step count.
    pub step: u64,
    /// Its final score.
    pub score: Option<f64>,
    /// Every step it trained, in order. Step counts are the member's own: after an exploit it
    /// goes on counting from where it was, with the donor's state.
    pub history: Vec<StepRecord>,
    /// Its final training state θ.
    pub state: S,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct Outcome<S> {
    /// The mode the run used.
    pub mode: Mode,
    /// Every member's initial hyperparameters.
    pub initial: Vec<Hyperparams>,
    /// Every member, by id.
    pub members: Vec<MemberOutcome<S>>,
    /// Every exploit and explore event, in order.
    pub events: Vec<Event>,
}

impl<S> Outcome<S> {
    /// The member with the best final score (ties: lowest id).
    pub fn best(&self) -> MemberId {
        let mut best = 0;
        for m in &self.members {
            let key = |id: MemberId| {
                self.members[id]
                    .score
                    .map_or(f64::NEG_INFINITY, |s| self.mode.key(s))
            };
            if key(m.id) > key(best) {
                best = m.id;
            }
        }
        best
    }

    /// The best final score.
    pub fn best_score(&self) -> Option<f64> {
        self.members.get(self.best()).and_then(|m| m.score)
    }

    /// The schedule that produced member `m`'s final state.
    pub fn schedule(&self, m: MemberId) -> Schedule {
        schedule(&self.initial, &self.events, m, self.members[m].step)
    }
}

struct Ctx<'a> {
    space: &'a Space,
    policy: &'a Policy,
    steps: u64,
    seed: u64,
}

struct Member<T: Trainable> {
    id: MemberId,
    trainable: T,
    h: Hyperparams,
    step: u64,
    decisions: u64,
    history: Vec<StepRecord>,
    restore: Option<Arc<T::State>>,
}

impl<T: Trainable> Member<T> {
    /// Trains up to step `stop`; returns where this segment's records start.
    fn train(&mut self, stop: u64) -> Result<usize, RunError> {
        if let Some(state) = self.restore.take() {
            self.trainable.restore(&state);
        }
        let from = self.history.len();
        while self.step < stop {
            let step = self.step + 1;
            let m = self
                .trainable
                .step(&self.h)
                .map_err(|source| RunError::Trainable {
                    member: self.id,
                    step,
                    source,
                })?;
            if !m.score.is_finite() {
                return Err(RunError::NonFiniteScore {
                    member: self.id,
                    step,
                    score: m.score,
                });
            }
            self.history.push(StepRecord::new(step, m));
            self.step = step;
        }
        Ok(from)
    }

    fn scores_since(&self, from: usize) -> impl Iterator<Item = f64> + '_ {
        self.history[from..].iter().map(|r| r.score)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

fn event(
    seq: u64,
    m_step: u64,
    recipient: MemberId,
    old_h: &Hyperparams,
    new_h: &Hyperparams,
    score: f64,
    donor: Option<(MemberId, u64, Option<f64>)>,
) -> Event {
    Event {
        seq,
        step: m_step,
        recipient,
        donor: donor.map(|d| d.0),
        donor_step: donor.map_or(m_step, |d| d.1),
        old_h: old_h.clone(),
        new_h: new_h.clone(),
        recipient_score: score,
        donor_score: donor.and_then(|d| d.2),
    }
}

// ---------------------------------------------------------------------------------------------
// Synchronous: all members train to the same step, then all decide from one snapshot.

type RunParts<T> = (Vec<Member<T>>, Vec<Event>, Population);

fn run_sync<T: Trainable>(
    ctx: &Ctx<'_>,
    mut members: Vec<Member<T>>,
    mut pop: Population,
    workers: usize,
) -> Result<RunParts<T>, RunError> {
    let mut events = Vec::new();
    let mut step = 0;
    let mut round = 0;
    let mut froms = vec![0usize; members.len()];
    while step < ctx.steps {
        let stop = ctx.policy.next_stop(step, ctx.steps);
        train_all(&mut members, &mut froms, stop, workers)?;
        for (m, &from) in members.iter().zip(&froms) {
            pop.record_iter(m.id, stop, m.scores_since(from));
        }
        step = stop;
        if step >= ctx.steps || !ctx.policy.is_ready(step) {
            continue;
        }
        // Every decision from the same snapshot.
        let decisions: Vec<Decision> = members
            .iter_mut()
            .map(|m| {
                m.decisions += 1;
                let mut rng = rng_for(ctx.seed, Stream::Decision, m.id, step, m.decisions);
                ctx.policy.decide(ctx.space, &pop, m.id, &mut rng)
            })
            .collect();
        // Donors' states and checkpoints as they were before anyone changed.
        let mut saved: Vec<Option<Arc<T::State>>> = vec![None; members.len()];
        let mut infos = Vec::with_capacity(decisions.len());
        for d in &decisions {
            if let Decision::Exploit { donor, .. } = d {
                if saved[*donor].is_none() {
                    saved[*donor] = Some(Arc::new(members[*donor].trainable.save()));
                }
                infos.push(Some(pop.donor_info(*donor)));
            } else {
                infos.push(None);
            }
        }
        for ((m, d), info) in members.iter_mut().zip(decisions).zip(infos) {
            let score = pop.member(m.id).score.unwrap_or(f64::NAN);
            match (d, info) {
                (Decision::Exploit { donor, h }, Some(info)) => {
                    events.push(event(
                        round,
                        step,
                        m.id,
                        &m.h,
                        &h,
                        score,
                        Some((donor, info.step, info.score)),
                    ));
                    pop.apply_exploit(m.id, &info, h.clone());
                    m.restore = saved[donor].clone();
                    m.h = h;
                }
                (Decision::Explore { h }, _) => {
                    events.push(event(round, step, m.id, &m.h, &h, score, None));
                    pop.set_h(m.id, h.clone());
                    m.h = h;
                }
                _ => {}
            }
        }
        round += 1;
    }
    // Restore any state still pending so that the final states are right.
    for m in &mut members {
        if let Some(state) = m.restore.take() {
            m.trainable.restore(&state);
        }
    }
    Ok((members, events, pop))
}

fn train_all<T: Trainable>(
    members: &mut [Member<T>],
    froms: &mut [usize],
    stop: u64,
    workers: usize,
) -> Result<(), RunError> {
    if workers <= 1 {
        for (m, from) in members.iter_mut().zip(froms.iter_mut()) {
            *from = m.train(stop)?;
        }
        return Ok(());
    }
    // Hand out members in chunks, several per worker, so that the lock is taken rarely and
    // uneven segments still balance.
    let chunk = (members.len() / (workers * 8)).max(1);
    let work = Mutex::new(members.chunks_mut(chunk).zip(froms.chunks_mut(chunk)));
    let failure: Mutex<Option<RunError>> = Mutex::new(None);
    thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| loop {
                    if lock(&failure).is_some() {
                        return;
                    }
                    let Some((ms, fs)) = lock(&work).next() else {
                        return;
                    };
                    for (m, from) in ms.iter_mut().zip(fs.iter_mut()) {
                        match m.train(stop) {
                            Ok(f) => *from = f,
                            Err(e) => {
                                lock(&failure).get_or_insert(e);
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            if let Err(p) = h.join() {
                lock(&failure).get_or_insert(RunError::WorkerPanicked(panic_message(&*p)));
            }
        }
    });
    match failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Asynchronous: a member decides as soon as it is ready, against the latest scores.

struct Shared<T: Trainable> {
    pop: Population,
    checkpoints: Vec<Option<Arc<T::State>>>,
    queue: VecDeque<Member<T>>,
    finished: Vec<Member<T>>,
    events: Vec<Event>,
    running: usize,
    waiting: usize,
    error: Option<RunError>,
}

impl<T: Trainable> Shared<T> {
    /// Records a finished segment, makes the ready decision and queues the member again.
    fn finish_segment(
        &mut self,
        ctx: &Ctx<'_>,
        mut m: Member<T>,
        from: usize,
        ckpt: Arc<T::State>,
    ) {
        self.pop.record_iter(m.id, m.step, m.scores_since(from));
        self.checkpoints[m.id] = Some(ckpt);
        if m.step >= ctx.steps {
            self.finished.push(m);
            return;
        }
        if ctx.policy.is_ready(m.step) {
            m.decisions += 1;
            let mut rng = rng_for(ctx.seed, Stream::Decision, m.id, m.step, m.decisions);
            let score = self.pop.member(m.id).score.unwrap_or(f64::NAN);
            let seq = self.events.len() as u64;
            match ctx.policy.decide(ctx.space, &self.pop, m.id, &mut rng) {
                Decision::Continue => {}
                Decision::Exploit { donor, h } => {
                    let info = self.pop.donor_info(donor);
                    self.events.push(event(
                        seq,
                        m.step,
                        m.id,
                        &m.h,
                        &h,
                        score,
                        Some((donor, info.step, info.score)),
                    ));
                    self.pop.apply_exploit(m.id, &info, h.clone());
                    let state = self.checkpoints[donor].clone();
                    self.checkpoints[m.id] = state.clone();
                    m.restore = state;
                    m.h = h;
                }
                Decision::Explore { h } => {
                    self.events
                        .push(event(seq, m.step, m.id, &m.h, &h, score, None));
                    self.pop.set_h(m.id, h.clone());
                    m.h = h;
                }
            }
        }
        self.queue.push_back(m);
    }
}

fn run_async<T: Trainable>(
    ctx: &Ctx<'_>,
    members: Vec<Member<T>>,
    pop: Population,
    workers: usize,
) -> Result<RunParts<T>, RunError> {
    let n = members.len();
    let shared = Mutex::new(Shared {
        pop,
        checkpoints: vec![None; n],
        queue: members.into_iter().collect(),
        finished: Vec::with_capacity(n),
        events: Vec::new(),
        running: 0,
        waiting: 0,
        error: None,
    });
    let cv = Condvar::new();
    thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| s.spawn(|| async_worker(ctx, &shared, &cv, workers)))
            .collect();
        for h in handles {
            if let Err(p) = h.join() {
                let mut g = lock(&shared);
                g.error
                    .get_or_insert(RunError::WorkerPanicked(panic_message(&*p)));
                cv.notify_all();
            }
        }
    });
    let shared = shared.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = shared.error {
        return Err(e);
    }
    let mut members = shared.finished;
    members.sort_by_key(|m| m.id);
    Ok((members, shared.events, shared.pop))
}

/// The longest a worker trains claimed members before it reports back, when segments are
/// fast: short enough that the others see fresh scores, long enough that the shared lock is
/// not the bottleneck for trainables that do almost nothing.
const BATCH_TARGET: Duration = Duration::from_micros(200);
const MAX_BATCH: usize = 64;

fn async_worker<T: Trainable>(
    ctx: &Ctx<'_>,
    shared: &Mutex<Shared<T>>,
    cv: &Condvar,
    workers: usize,
) {
    let mut done: Vec<(Member<T>, usize, Arc<T::State>)> = Vec::new();
    let mut claimed: Vec<Member<T>> = Vec::new();
    // How many members to claim at once: grows while segments are fast, 1 for slow ones.
    let mut batch = 1usize;
    loop {
        {
            let mut g = lock(shared);
            let finished = done.len();
            for (m, from, ckpt) in done.drain(..) {
                g.finish_segment(ctx, m, from, ckpt);
            }
            g.running -= finished;
            if finished > 0 && g.waiting > 0 {
                cv.notify_all();
            }
            loop {
                if g.error.is_some() {
                    cv.notify_all();
                    return;
                }
                if !g.queue.is_empty() {
                    // Leave a share of the queue to the other workers.
                    let share = (g.queue.len() / workers).max(1);
                    let k = batch.min(share);
                    claimed.extend(g.queue.drain(..k));
                    g.running += k;
                    break;
                }
                if g.running == 0 {
                    cv.notify_all();
                    return;
                }
                g.waiting += 1;
                g = cv.wait(g).unwrap_or_else(|e| e.into_inner());
                g.waiting -= 1;
            }
        }
        let started = Instant::now();
        let n = claimed.len();
        for mut m in claimed.drain(..) {
            let stop = ctx.policy.next_stop(m.step, ctx.steps);
            // A panicking trainable must not leave the other workers waiting for members
            // that will never come back: turn it into the run's error here.
            let trained = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                m.train(stop)
                    .map(|from| (from, Arc::new(m.trainable.save())))
            }));
            match trained {
                Ok(Ok((from, ckpt))) => done.push((m, from, ckpt)),
                Ok(Err(e)) => {
                    let mut g = lock(shared);
                    g.error.get_or_insert(e);
                    cv.notify_all();
                    return;
                }
                Err(p) => {
                    let mut g = lock(shared);
                    g.error
                        .get_or_insert(RunError::WorkerPanicked(panic_message(&*p)));
                    cv.notify_all();
                    return;
                }
            }
        }
        let per_member = started.elapsed() / n.max(1) as u32;
        batch = if per_member.is_zero() {
            MAX_BATCH
        } else {
            (BATCH_TARGET.as_nanos() / per_member.as_nanos()).clamp(1, MAX_BATCH as u128) as usize
        };
    }
}
