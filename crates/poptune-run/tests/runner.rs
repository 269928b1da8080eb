//! The in-memory runner: reproducibility, exact replay, lineage, faults, stop rules,
//! cancellation, events.

use poptune::toy::{ToyConfig, ToyTrainable};
use poptune::{
    Baseline, Experiment, Exploit, Explore, Hyperparams, Inherit, Initial, Metrics, Mode, Outcome,
    Param, Policy, Space, SyncMode, Trainable, TrainableError,
};
use poptune_run::toy::run as run_toy;
use poptune_run::{Run, RunEvent};
use poptune_store::{FaultKind, RunStatus};

/// A deterministic trainable with momentum, a noisy gradient from its own RNG (part of its
/// state) and hyperparameters of every kind.
#[derive(Clone)]
struct Walker {
    x: f64,
    v: f64,
    rng: u64,
}

impl Walker {
    fn new(member: usize) -> Self {
        Walker {
            x: -2.0 + member as f64 * 0.1,
            v: 0.0,
            rng: 0x2545_F491_4F6C_DD1D ^ member as u64,
        }
    }

    fn noise(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}

impl Trainable for Walker {
    type State = (f64, f64, u64);

    fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError> {
        let lr = h.f64("lr").ok_or_else(|| TrainableError::new("no lr"))?;
        let mom = h.f64("momentum").unwrap_or(0.0);
        let batch = h.f64("batch").unwrap_or(1.0);
        let sign = match h.get("act").and_then(|v| v.as_str()) {
            Some("flip") => -0.5,
            _ => 1.0,
        };
        let grad = 2.0 * (self.x - 3.0) + self.noise() / batch.sqrt();
        self.v = mom * self.v - lr * grad * sign;
        self.x += self.v;
        Ok(Metrics::new(-(self.x - 3.0).powi(2)).with("x", self.x))
    }

    fn save(&self) -> Self::State {
        (self.x, self.v, self.rng)
    }

    fn restore(&mut self, s: &Self::State) {
        (self.x, self.v, self.rng) = *s;
    }
}

fn space() -> Space {
    Space::new()
        .with("lr", Param::log_float(1e-3, 0.3))
        .with("momentum", Param::float(0.0, 0.9))
        .with("batch", Param::ordered([1i64, 4, 16, 64]))
        .with("act", Param::choice(["plain", "flip"]))
        .with("layers", Param::int(1, 6))
}

fn experiment(exploit: Exploit, sync: SyncMode, workers: usize) -> Experiment {
    Experiment::new(space())
        .policy(Policy {
            interval: 4,
            burn_in: 6,
            exploit,
            sync,
            ..Policy::default()
        })
        .population(12)
        .steps(60)
        .seed(42)
        .workers(workers)
}

fn strategies() -> Vec<Exploit> {
    vec![
        Exploit::default(),
        Exploit::Tournament,
        Exploit::TTest {
            window: 4,
            alpha: 0.2,
        },
        Exploit::WinnerTakesAll,
    ]
}

/// Everything a run produced, with floats as bits, for exact comparison.
fn fingerprint(o: &Outcome<(f64, f64, u64)>) -> Vec<u64> {
    let mut out = Vec::new();
    for m in &o.members {
        out.push(m.step);
        out.push(m.state.0.to_bits());
        out.push(m.state.1.to_bits());
        out.push(m.state.2);
        out.extend(m.history.iter().map(|r| r.score.to_bits()));
    }
    for e in &o.events {
        out.push(e.seq);
        out.push(e.step);
        out.push(e.recipient as u64);
        out.push(e.donor.map_or(u64::MAX, |d| d as u64));
        out.push(e.new_h.f64("lr").unwrap().to_bits());
    }
    out
}

#[test]
fn synchronous_runs_are_identical_whatever_the_worker_count() {
    for exploit in strategies() {
        let reference = experiment(exploit.clone(), SyncMode::Synchronous, 1)
            .run(Walker::new)
            .unwrap();
        assert!(!reference.events.is_empty(), "{exploit:?} never exploited");
        for workers in [2, 3, 7, 12, 30] {
            let other = experiment(exploit.clone(), SyncMode::Synchronous, workers)
                .run(Walker::new)
                .unwrap();
            assert_eq!(
                fingerprint(&reference),
                fingerprint(&other),
                "{exploit:?} with {workers} workers"
            );
        }
    }
}

#[test]
fn a_different_seed_gives_a_different_run() {
    let e = experiment(Exploit::default(), SyncMode::Synchronous, 2);
    let a = e.clone().run(Walker::new).unwrap();
    let b = e.seed(43).run(Walker::new).unwrap();
    assert_ne!(fingerprint(&a), fingerprint(&b));
}

#[test]
fn asynchronous_single_worker_runs_are_reproducible() {
    let e = experiment(Exploit::default(), SyncMode::Asynchronous, 1);
    let a = e.run(Walker::new).unwrap();
    let b = e.run(Walker::new).unwrap();
    assert_eq!(fingerprint(&a), fingerprint(&b));
}

fn assert_replays_exactly(o: &Outcome<(f64, f64, u64)>, label: &str) {
    for m in &o.members {
        let sched = o.schedule(m.id);
        if label.contains("Synchronous") {
            assert_eq!(sched.steps(), m.step, "{label}: member {}", m.id);
        }
        let mut fresh = Walker::new(sched.origin);
        let records = sched.replay(&mut fresh).unwrap();
        assert_eq!(
            fresh.save(),
            m.state,
            "{label}: member {} state differs after replay",
            m.id
        );
        assert_eq!(
            records.last().map(|r| r.score.to_bits()),
            m.score.map(f64::to_bits),
            "{label}: member {} score differs after replay",
            m.id
        );
    }
}

#[test]
fn every_member_replays_exactly() {
    for exploit in strategies() {
        for (sync, workers) in [
            (SyncMode::Synchronous, 3),
            (SyncMode::Asynchronous, 1),
            (SyncMode::Asynchronous, 3),
        ] {
            for inherit in [Inherit::WeightsAndHyperparameters, Inherit::WeightsOnly] {
                let mut e = experiment(exploit.clone(), sync, workers);
                e.policy.inherit = inherit;
                let o = e.run(Walker::new).unwrap();
                assert_replays_exactly(&o, &format!("{exploit:?} {sync:?} {workers} {inherit:?}"));
            }
        }
    }
}

#[test]
fn toy_schedules_replay_exactly() {
    for inherit in [Inherit::WeightsOnly, Inherit::WeightsAndHyperparameters] {
        let cfg = ToyConfig {
            inherit,
            ..ToyConfig::default()
        };
        for seed in 0..50 {
            let o = run_toy(&cfg, Baseline::Pbt, seed).unwrap();
            assert!(!o.events.is_empty());
            for m in &o.members {
                let sched = o.schedule(m.id);
                let mut fresh = ToyTrainable::new(cfg.eta);
                let records = sched.replay(&mut fresh).unwrap();
                assert_eq!(fresh.theta, m.state, "seed {seed} member {}", m.id);
                assert_eq!(
                    records.last().unwrap().score.to_bits(),
                    m.score.unwrap().to_bits()
                );
            }
        }
    }
}

#[test]
fn the_final_hyperparameters_alone_do_not_reproduce_the_toy() {
    // The seed article's FAQ: replaying the final h from the start does not give the model.
    let cfg = ToyConfig::default();
    let o = run_toy(&cfg, Baseline::Pbt, 1).unwrap();
    let best = o.best();
    let mut fresh = ToyTrainable::new(cfg.eta);
    let h = o.members[best].h.clone();
    let mut last = 0.0;
    for _ in 0..cfg.steps {
        last = fresh.step(&h).unwrap().score;
    }
    assert!(o.members[best].score.unwrap() - last > 0.05);
}

#[test]
fn lineage_events_are_consistent() {
    for sync in [SyncMode::Synchronous, SyncMode::Asynchronous] {
        let o = experiment(Exploit::default(), sync, 2)
            .run(Walker::new)
            .unwrap();
        assert!(!o.events.is_empty());
        for e in &o.events {
            let d = e.donor.expect("PBT events copy a donor");
            assert_ne!(d, e.recipient);
            assert!(e.donor_score.unwrap() >= e.recipient_score, "{e:?}");
            assert!(space().contains(&e.new_h));
            assert!(space().contains(&e.old_h));
            assert_eq!(e.step % 4, 0);
            assert!(e.step >= 6);
        }
        for m in &o.members {
            assert_eq!(m.step, 60);
            assert!(space().contains(&m.h));
        }
    }
}

#[test]
fn members_time_share_fewer_workers() {
    for sync in [SyncMode::Synchronous, SyncMode::Asynchronous] {
        let o = experiment(Exploit::default(), sync, 2)
            .population(64)
            .run(Walker::new)
            .unwrap();
        assert_eq!(o.members.len(), 64);
        assert!(o.members.iter().all(|m| m.step == 60));
        if sync == SyncMode::Synchronous {
            assert!(o.members.iter().all(|m| m.history.len() == 60));
        }
    }
}

#[test]
fn min_mode_minimises() {
    // Loss = (x - 3)^2, minimised.
    struct Loss(Walker);
    impl Trainable for Loss {
        type State = (f64, f64, u64);
        fn step(&mut self, h: &Hyperparams) -> Result<Metrics, TrainableError> {
            let m = self.0.step(h)?;
            Ok(Metrics::new(-m.score))
        }
        fn save(&self) -> Self::State {
            self.0.save()
        }
        fn restore(&mut self, s: &Self::State) {
            self.0.restore(s)
        }
    }
    let o = experiment(Exploit::default(), SyncMode::Synchronous, 2)
        .mode(Mode::Min)
        .run(|i| Loss(Walker::new(i)))
        .unwrap();
    for e in &o.events {
        assert!(e.donor_score.unwrap() <= e.recipient_score);
    }
    let best = o.best();
    assert!(o
        .members
        .iter()
        .all(|m| m.score.unwrap() >= o.members[best].score.unwrap()));
}

#[test]
fn baselines_behave_as_named() {
    let e = experiment(Exploit::default(), SyncMode::Synchronous, 2);
    let grid = e.baseline(Baseline::Grid).run(Walker::new).unwrap();
    assert!(grid.events.is_empty());
    let initial = grid.initial.clone();
    assert_eq!(initial, space().grid(12));
    let random = e.baseline(Baseline::Random).run(Walker::new).unwrap();
    assert!(random.events.is_empty());
    for m in &random.members {
        assert_eq!(m.h, random.initial[m.id]);
    }
    let explore_only = e.baseline(Baseline::ExploreOnly).run(Walker::new).unwrap();
    assert!(!explore_only.events.is_empty());
    assert!(explore_only.events.iter().all(|ev| ev.donor.is_none()));
    let exploit_only = e.baseline(Baseline::ExploitOnly).run(Walker::new).unwrap();
    assert!(!exploit_only.events.is_empty());
    for ev in &exploit_only.events {
        // Weights and hyperparameters inherited, nothing explored: h is some member's
        // initial h.
        assert!(exploit_only.initial.contains(&ev.new_h));
    }
}

struct Faulty {
    fail_at: u64,
    step: u64,
    /// Steps this trainable was asked for, whatever state it was restored to: the fault
    /// must happen even when an exploit moves its state past `fail_at`.
    calls: u64,
    nan: bool,
    panic: bool,
}

impl Trainable for Faulty {
    type State = u64;
    fn step(&mut self, _: &Hyperparams) -> Result<Metrics, TrainableError> {
        self.step += 1;
        self.calls += 1;
        if self.calls == self.fail_at {
            if self.panic {
                panic!("trainable bug");
            }
            if self.nan {
                return Ok(Metrics::new(f64::NAN));
            }
            return Err(TrainableError::new("out of memory"));
        }
        Ok(Metrics::new(self.step as f64))
    }
    fn save(&self) -> u64 {
        self.step
    }
    fn restore(&mut self, s: &u64) {
        self.step = *s;
    }
}

#[test]
fn trainable_faults_are_retried_and_the_others_results_are_kept() {
    for sync in [SyncMode::Synchronous, SyncMode::Asynchronous] {
        for workers in [1, 3] {
            let e = experiment(Exploit::default(), sync, workers);
            let faulty = |nan, panic| {
                move |i| Faulty {
                    fail_at: if i == 5 { 13 } else { u64::MAX },
                    step: 0,
                    calls: 0,
                    nan,
                    panic,
                }
            };
            for (nan, panic, kind) in [
                (false, false, FaultKind::Error),
                (true, false, FaultKind::NonFinite),
                (false, true, FaultKind::Crash),
            ] {
                let label = format!("{sync:?}, {workers} workers, {kind}");
                let o = e
                    .run(faulty(nan, panic))
                    .unwrap_or_else(|err| panic!("{label}: {err}"));
                assert_eq!(o.status, RunStatus::Finished, "{label}");
                assert!(!o.faults.is_empty(), "{label}: the fault is recorded");
                assert!(
                    o.faults.iter().all(|f| f.member == 5 && f.kind == kind),
                    "{label}: {:?}",
                    o.faults
                );
                if kind == FaultKind::Error {
                    assert!(
                        o.faults[0].message.contains("out of memory"),
                        "{:?}",
                        o.faults
                    );
                }
                for m in &o.members {
                    assert_eq!(
                        m.step, e.steps,
                        "{label}: member {} trained every step",
                        m.id
                    );
                    assert!(m.score.is_some(), "{label}");
                }
                // The compute counts every recorded step and, for each fault, at least the
                // step that failed (which is not recorded).
                let recorded: u64 = o.members.iter().map(|m| m.history.len() as u64).sum();
                assert!(
                    o.compute >= recorded + o.faults.len() as u64,
                    "{label}: the failed steps count ({} < {recorded} + {})",
                    o.compute,
                    o.faults.len()
                );
            }
        }
    }
}

#[test]
fn a_member_that_always_fails_is_replaced_then_stops_the_run() {
    let e = experiment(Exploit::default(), SyncMode::Asynchronous, 1).max_failures(1);
    let o = e
        .run(|i| Faulty {
            fail_at: if i == 2 { 1 } else { u64::MAX },
            step: 0,
            calls: 0,
            nan: false,
            panic: true,
        })
        .unwrap();
    // Member 2 panics at its first step every time it is made anew: it is replaced after
    // two faults in a row, twice, and then the run stops instead of looping, with every
    // result trained so far.
    match &o.status {
        RunStatus::Failed(why) => assert!(why.contains("member 2 kept failing"), "{why}"),
        s => panic!("{s}"),
    }
    assert_eq!(o.faults.len(), 6, "{:?}", o.faults);
    assert!(o
        .faults
        .iter()
        .all(|f| f.member == 2 && f.kind == FaultKind::Crash));
    let replaced = o
        .events
        .iter()
        .filter(|ev| ev.recipient == 2 && ev.donor.is_some())
        .count();
    assert_eq!(replaced, 2, "{:?}", o.events);
    assert!(
        o.members[0].history.len() >= 5,
        "the others' results are kept"
    );
}

#[test]
fn stop_rules_end_an_in_memory_run() {
    let e = experiment(Exploit::default(), SyncMode::Asynchronous, 2);
    let full = e.run(Walker::new).unwrap();
    let best = full.best_score().unwrap();
    // A target below the best score is reached before the end.
    let o = e.clone().target(best - 1.0).run(Walker::new).unwrap();
    match &o.status {
        RunStatus::Stopped(why) => assert!(why.contains("reached the target"), "{why}"),
        s => panic!("{s}"),
    }
    assert!(o.members.iter().any(|m| m.step < e.steps), "stopped early");
    let o = e.clone().plateau(1, 1e9).run(Walker::new).unwrap();
    match &o.status {
        RunStatus::Stopped(why) => assert!(why.starts_with("plateau"), "{why}"),
        s => panic!("{s}"),
    }
}

#[test]
fn a_cancelled_run_keeps_what_it_trained_and_observers_see_the_run() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    struct Count {
        steps: AtomicUsize,
        lineage: AtomicUsize,
        ended: AtomicBool,
        stop: AtomicBool,
    }
    impl poptune_run::Observer for Count {
        fn event(&self, e: &RunEvent) {
            match e {
                RunEvent::Trained { steps, .. } => {
                    // Cancelled after 100 steps.
                    let before = self.steps.fetch_add(*steps as usize, Ordering::SeqCst);
                    if before + *steps as usize >= 100 {
                        self.stop.store(true, Ordering::SeqCst);
                    }
                }
                RunEvent::Lineage(_) => {
                    self.lineage.fetch_add(1, Ordering::SeqCst);
                }
                RunEvent::Ended { .. } => self.ended.store(true, Ordering::SeqCst),
                _ => {}
            }
        }
    }
    let count = Count {
        steps: AtomicUsize::new(0),
        lineage: AtomicUsize::new(0),
        ended: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    };
    let e = experiment(Exploit::default(), SyncMode::Asynchronous, 2);
    let o = e.run_with(Walker::new, &count, &count.stop).unwrap();
    assert_eq!(o.status, RunStatus::Interrupted);
    assert!(count.ended.load(Ordering::SeqCst));
    let trained: usize = o.members.iter().map(|m| m.history.len()).sum();
    assert!(trained >= 100, "what was trained is kept: {trained}");
    assert!(trained < (e.steps * e.population as u64) as usize);
    assert_eq!(count.lineage.load(Ordering::SeqCst), o.events.len());
}

#[test]
fn invalid_experiments_are_rejected() {
    let base = experiment(Exploit::default(), SyncMode::Synchronous, 1);
    let errors = [
        base.clone().population(0).run(Walker::new).err(),
        base.clone().steps(0).run(Walker::new).err(),
        base.clone().workers(0).run(Walker::new).err(),
        base.clone()
            .initial(Initial::Given(vec![Hyperparams::new()]))
            .run(Walker::new)
            .err(),
        base.clone()
            .policy(Policy {
                interval: 0,
                ..Policy::default()
            })
            .run(Walker::new)
            .err(),
        base.clone()
            .policy(Policy {
                explore: Explore::gaussian(-1.0),
                ..Policy::default()
            })
            .run(Walker::new)
            .err(),
        Experiment::new(Space::new().with("lr", Param::log_float(0.0, 1.0)))
            .run(Walker::new)
            .err(),
    ];
    for e in errors {
        let e = e.expect("must be rejected");
        assert!(e.is_usage(), "{e}");
        assert!(!e.to_string().is_empty());
    }
}
