//! The examples as experiments: each task's search space and trainable, run in-process on
//! poptune's durable runner, so that the experiment directory is the one `poptune run` writes
//! (`poptune status`, `report`, `replay`, `export` work on it; `replay` and `resume` start
//! this binary's `serve` command as an external trainable).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::ValueEnum;
use poptune::fire::Fire;
use poptune::{
    Algorithm, ExperimentDef, Exploit, Explore, InitialKind, Mode, Param, Policy, Space, StopRules,
    SyncMode, TrainableDef, Variant,
};
use poptune_run::inprocess::{InProcess, Persist};
use poptune_run::local::{self as durable, CKPT_DIR};
use poptune_store::Store;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Which};
use crate::error::BurnError;
use crate::model::{Classifier, Cnn1d, Mlp};
use crate::trainer::{BurnTrainer, TrainerConfig};
use crate::tsp::{Annealer, Instance};

/// What to tune.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// A 1D CNN on MNIST-1D (validation accuracy).
    Mnist1d,
    /// An MLP on UCI digits (validation accuracy).
    Digits,
    /// Simulated annealing on a 200-city travelling-salesman instance (tour length).
    Tsp,
}

/// PBT or one of its baselines, at the same population and steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Pbt,
    ExploreOnly,
    ExploitOnly,
    Random,
    Grid,
    /// PB2: PBT's exploit, a GP bandit's explore.
    Pb2,
    /// PB2-Mix: PB2 that also chooses the ordered batch size.
    Pb2Mix,
    /// FIRE-PBT with the default split of the population.
    Fire,
}

impl Method {
    /// All, PBT first.
    pub const ALL: [Method; 8] = [
        Method::Pbt,
        Method::Random,
        Method::Grid,
        Method::ExploreOnly,
        Method::ExploitOnly,
        Method::Pb2,
        Method::Pb2Mix,
        Method::Fire,
    ];

    /// The name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Method::Pbt => "pbt",
            Method::ExploreOnly => "explore-only",
            Method::ExploitOnly => "exploit-only",
            Method::Random => "random",
            Method::Grid => "grid",
            Method::Pb2 => "pb2",
            Method::Pb2Mix => "pb2-mix",
            Method::Fire => "fire",
        }
    }

    /// The algorithm at `population` members (FIRE-PBT: the default split).
    fn algorithm(self, population: usize) -> Result<Algorithm, BurnError> {
        Ok(match self {
            Method::Pb2 => Algorithm::Pb2,
            Method::Pb2Mix => Algorithm::Pb2Mix,
            Method::Fire => Algorithm::Fire(Fire::for_population(population).ok_or_else(|| {
                BurnError::Usage(format!(
                    "FIRE-PBT needs at least 5 members (two sub-populations of 2 and an evaluator); --population is {population}"
                ))
            })?),
            _ => Algorithm::Pbt,
        })
    }

    fn variant_and_initial(self) -> (Variant, InitialKind) {
        match self {
            Method::Pbt => (Variant::Pbt, InitialKind::Prior),
            Method::ExploreOnly => (Variant::ExploreOnly, InitialKind::Prior),
            Method::ExploitOnly => (Variant::ExploitOnly, InitialKind::Prior),
            Method::Random => (Variant::Frozen, InitialKind::Prior),
            Method::Grid => (Variant::Frozen, InitialKind::Grid),
            Method::Pb2 | Method::Pb2Mix | Method::Fire => (Variant::Pbt, InitialKind::Prior),
        }
    }

    /// The name of the algorithm in the experiment file.
    fn name_of_algorithm(self) -> &'static str {
        match self {
            Method::Pb2 | Method::Pb2Mix | Method::Fire => self.name(),
            _ => "pbt",
        }
    }

    /// The names the experiment file uses for the variant and the initial hyperparameters.
    fn file_names(self) -> (&'static str, &'static str) {
        match self {
            Method::Pbt => ("pbt", "prior"),
            Method::ExploreOnly => ("explore-only", "prior"),
            Method::ExploitOnly => ("exploit-only", "prior"),
            Method::Random => ("frozen", "prior"),
            Method::Grid => ("frozen", "grid"),
            Method::Pb2 | Method::Pb2Mix | Method::Fire => ("pbt", "prior"),
        }
    }
}

impl Task {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Task::Mnist1d => "mnist1d",
            Task::Digits => "digits",
            Task::Tsp => "tsp",
        }
    }

    /// Default population, steps per member, and ready interval.
    pub fn defaults(self) -> (usize, u64, u64) {
        match self {
            Task::Mnist1d => (12, 150, 10),
            Task::Digits => (12, 60, 5),
            Task::Tsp => (12, 100, 5),
        }
    }

    fn metric(self) -> (&'static str, Mode) {
        match self {
            Task::Mnist1d | Task::Digits => ("val_accuracy", Mode::Max),
            Task::Tsp => ("tour_length", Mode::Min),
        }
    }

    /// The search space (the experiment file's `[space]` is [`Task::space_toml`]).
    pub fn space(self) -> Space {
        match self {
            Task::Mnist1d | Task::Digits => Space::new()
                .with("lr", Param::log_float(0.001, 0.3))
                .with("momentum", Param::float(0.5, 0.99))
                .with("weight_decay", Param::log_float(1e-6, 1e-2))
                .with("dropout", Param::float(0.0, 0.5))
                .with("batch_size", Param::ordered([16i64, 32, 64, 128])),
            Task::Tsp => Space::new()
                .with("temperature", Param::log_float(1e-4, 0.3))
                .with("two_opt", Param::float(0.0, 1.0)),
        }
    }

    fn space_toml(self) -> &'static str {
        match self {
            Task::Mnist1d | Task::Digits => {
                r#"[space.lr]
type = "float"
low = 0.001
high = 0.3
log = true

[space.momentum]
type = "float"
low = 0.5
high = 0.99

[space.weight_decay]
type = "float"
low = 1e-6
high = 1e-2
log = true

[space.dropout]
type = "float"
low = 0.0
high = 0.5

[space.batch_size]
type = "ordered"
values = [16, 32, 64, 128]
"#
            }
            Task::Tsp => {
                r#"[space.temperature]
type = "float"
low = 1e-4
high = 0.3
log = true

[space.two_opt]
type = "float"
low = 0.0
high = 1.0
"#
            }
        }
    }
}

/// One run's settings.
#[derive(Clone, Debug)]
pub struct Setup {
    pub task: Task,
    pub method: Method,
    pub population: usize,
    pub steps: u64,
    pub interval: u64,
    pub seed: u64,
    pub slots: usize,
    pub synchronous: bool,
}

impl Setup {
    /// The experiment file for this run; `exe` is this binary (the external trainable that
    /// `poptune replay` and `poptune resume` start).
    pub fn experiment_toml(&self, exe: &Path) -> String {
        let (metric, mode) = self.task.metric();
        let mode = if mode == Mode::Max { "max" } else { "min" };
        let (variant, initial) = self.method.file_names();
        let command = serde_json::json!([
            exe.display().to_string(),
            "serve",
            self.task.name(),
            "--seed",
            self.seed.to_string()
        ]);
        format!(
            r#"# Written by `poptune-burn tune`; `poptune run` on this file trains the same experiment
# with the trainable as an external process.
name = "{task}-{method}-s{seed}"
metric = "{metric}"
mode = "{mode}"
population = {population}
seed = {seed}
slots = {slots}
initial = "{initial}"
directory = "."

[policy]
interval = {interval}
sync = "{sync}"
variant = "{variant}"
algorithm = "{algorithm}"

[policy.exploit]
strategy = "truncation"
fraction = 0.25

[policy.explore]
method = "perturb"
factors = [0.8, 1.2]
resample_probability = 0.25

{space}
[stop]
steps = {steps}

[trainable]
command = {command}
step_timeout = 600
max_failures = 3
"#,
            task = self.task.name(),
            method = self.method.name(),
            seed = self.seed,
            population = self.population,
            slots = self.slots,
            interval = self.interval,
            sync = if self.synchronous {
                "synchronous"
            } else {
                "asynchronous"
            },
            space = self.task.space_toml(),
            steps = self.steps,
            algorithm = self.method.name_of_algorithm(),
        )
    }

    /// The definition [`Setup::experiment_toml`] states, for an experiment kept in `dir`.
    pub fn definition(&self, exe: &Path, dir: &Path) -> Result<ExperimentDef, BurnError> {
        let algorithm = self.method.algorithm(self.population)?;
        let (metric, mode) = self.task.metric();
        let (variant, initial) = self.method.variant_and_initial();
        let base = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Ok(ExperimentDef {
            name: format!("{}-{}-s{}", self.task.name(), self.method.name(), self.seed),
            metric: metric.to_string(),
            mode,
            population: self.population,
            seed: self.seed,
            slots: self.slots,
            initial,
            directory: base.join("."),
            policy: Policy {
                interval: self.interval,
                sync: if self.synchronous {
                    SyncMode::Synchronous
                } else {
                    SyncMode::Asynchronous
                },
                variant,
                exploit: Exploit::Truncation { fraction: 0.25 },
                explore: Explore::perturb(vec![0.8, 1.2]),
                algorithm,
                ..Policy::default()
            },
            space: self.task.space(),
            stop: StopRules::steps(self.steps),
            trainable: TrainableDef {
                command: vec![
                    exe.display().to_string(),
                    "serve".into(),
                    self.task.name().into(),
                    "--seed".into(),
                    self.seed.to_string(),
                ],
                cwd: base,
                step_timeout: 600.0,
                max_failures: 3,
                ..TrainableDef::default()
            },
        })
    }
}

/// A member's model seed: a function of the experiment seed and the member alone.
pub fn member_seed(seed: u64, member: usize) -> u64 {
    seed.wrapping_mul(10_007).wrapping_add(member as u64)
}

fn cnn_trainer(data: Arc<Dataset>, seed: u64) -> BurnTrainer<Cnn1d> {
    let config = TrainerConfig {
        examples_per_step: 1024,
        defaults: poptune::Hyperparams::new(),
    };
    let d = data.train.d;
    BurnTrainer::new(data, config, seed, move |dev| Cnn1d::new(d, 32, 10, dev))
}

fn mlp_trainer(data: Arc<Dataset>, seed: u64) -> BurnTrainer<Mlp> {
    let config = TrainerConfig {
        examples_per_step: 512,
        defaults: poptune::Hyperparams::new(),
    };
    let d = data.train.d;
    BurnTrainer::new(data, config, seed, move |dev| Mlp::new(d, 128, 10, dev))
}

/// The fixed TSP instance: 200 cities.
pub fn tsp_instance() -> Arc<Instance> {
    Arc::new(Instance::random(200, 2017))
}

fn annealer(inst: Arc<Instance>, seed: u64) -> Annealer {
    Annealer::new(inst, seed, 1000)
}

/// What a finished run reports, also written to `result.json` in its directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub task: Task,
    pub method: Method,
    pub seed: u64,
    pub best_member: usize,
    /// The best member's score (validation accuracy, or tour length).
    pub score: f64,
    /// Test accuracy of the best member (classification only), computed once, here.
    pub test_accuracy: Option<f64>,
    /// Wall time of this invocation's training, seconds.
    pub wall_seconds: f64,
    /// Seconds inside training steps, all slots together.
    pub step_seconds: f64,
    pub slots: usize,
    /// Member-steps trained, including steps trained again after an exploit, a fault or a
    /// resume (0 in results written before it was recorded).
    #[serde(default)]
    pub compute: u64,
}

impl RunResult {
    /// The share of slot time spent outside training steps.
    pub fn overhead(&self) -> f64 {
        1.0 - self.step_seconds / (self.wall_seconds * self.slots as f64)
    }
}

/// Runs (or continues) `setup` in `dir`, then evaluates the best member.
pub fn tune(setup: &Setup, dir: &Path, quiet: bool) -> Result<RunResult, BurnError> {
    let exe = std::env::current_exe().map_err(BurnError::io("cannot locate", "this program"))?;
    // Linux names a binary replaced (rebuilt) while it runs "PATH (deleted)"; the path itself
    // is what later commands must start.
    let exe = match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(s) => PathBuf::from(s),
        None => exe,
    };
    tune_with(setup, dir, quiet, &exe)
}

/// [`tune`], with `exe` as the `poptune-burn` program that the experiment file names for
/// `poptune replay` and `poptune resume`.
pub fn tune_with(
    setup: &Setup,
    dir: &Path,
    quiet: bool,
    exe: &Path,
) -> Result<RunResult, BurnError> {
    std::fs::create_dir_all(dir).map_err(BurnError::io("cannot create", dir))?;
    let file = dir.join("experiment.toml");
    let text = setup.experiment_toml(exe);
    let def = setup.definition(exe, dir)?;
    let (store, opened) = durable::create_or_open(&def)?;
    let resumed = opened.existed();
    std::fs::write(&file, &text).map_err(BurnError::io("cannot write", &file))?;
    if !quiet {
        eprintln!(
            "{} {} with {} on {} members × {} steps, {} slots, in {}",
            if resumed { "resuming" } else { "tuning" },
            setup.task.name(),
            setup.method.name(),
            setup.population,
            setup.steps,
            setup.slots,
            dir.display()
        );
    }
    let seed = setup.seed;
    let began = Instant::now();
    match setup.task {
        Task::Mnist1d | Task::Digits => {
            let which = if setup.task == Task::Mnist1d {
                Which::Mnist1d
            } else {
                Which::Digits
            };
            let data = which.load()?;
            if setup.task == Task::Mnist1d {
                let make = |m| cnn_trainer(Arc::clone(&data), member_seed(seed, m));
                let workers = InProcess::new(make);
                run_here(&def, store, &workers, quiet)?;
                let step_seconds = workers.step_seconds();
                finish(setup, dir, &def, began, step_seconds, make, Some(&data))
            } else {
                let make = |m| mlp_trainer(Arc::clone(&data), member_seed(seed, m));
                let workers = InProcess::new(make);
                run_here(&def, store, &workers, quiet)?;
                let step_seconds = workers.step_seconds();
                finish(setup, dir, &def, began, step_seconds, make, Some(&data))
            }
        }
        Task::Tsp => {
            let inst = tsp_instance();
            let make = |m| annealer(Arc::clone(&inst), member_seed(seed, m));
            let workers = InProcess::new(make);
            run_here(&def, store, &workers, quiet)?;
            let step_seconds = workers.step_seconds();
            finish(setup, dir, &def, began, step_seconds, make, None)
        }
    }
}

/// Something whose test accuracy can be measured.
trait Evaluate {
    fn test_accuracy(&self, data: &Dataset) -> f64;
}

impl<M: Classifier> Evaluate for BurnTrainer<M> {
    fn test_accuracy(&self, data: &Dataset) -> f64 {
        self.accuracy(&data.test)
    }
}

impl Evaluate for Annealer {
    fn test_accuracy(&self, _: &Dataset) -> f64 {
        f64::NAN
    }
}

fn finish<T: Persist + Evaluate>(
    setup: &Setup,
    dir: &Path,
    def: &poptune::ExperimentDef,
    began: Instant,
    step_seconds: f64,
    make: impl Fn(usize) -> T,
    data: Option<&Dataset>,
) -> Result<RunResult, BurnError> {
    let wall_seconds = began.elapsed().as_secs_f64();
    let (store, _) = durable::open_dir(dir)?;
    let members = store.members()?;
    let best = poptune_store::best_member(def.mode, &members)
        .and_then(|b| members.get(b))
        .ok_or_else(|| BurnError::Missing("no member has a checkpoint yet".into()))?;
    let ckpt = best
        .checkpoint
        .as_ref()
        .map(|c| dir.join(CKPT_DIR).join(c))
        .ok_or_else(|| BurnError::Missing("the best member has no checkpoint".into()))?;
    let mut t = make(best.id);
    let state = t
        .load_state(&ckpt)
        .map_err(BurnError::io("cannot load the best checkpoint", &ckpt))?;
    t.restore(&state);
    let test_accuracy = data.map(|d| t.test_accuracy(d));
    let result = RunResult {
        task: setup.task,
        method: setup.method,
        seed: setup.seed,
        best_member: best.id,
        score: best.score.unwrap_or(f64::NAN),
        test_accuracy,
        wall_seconds,
        step_seconds,
        slots: setup.slots,
        compute: store.tally()?.map_or(0, |t| t.compute),
    };
    let json = serde_json::to_string_pretty(&result).unwrap_or_default();
    let path = dir.join("result.json");
    std::fs::write(&path, json).map_err(BurnError::io("cannot write", &path))?;
    Ok(result)
}

/// Serves a task's trainable over the protocol on stdin/stdout (`docs/protocol.md`).
pub fn serve(task: Task, seed: u64) -> Result<(), BurnError> {
    match task {
        Task::Mnist1d => {
            let data = Which::Mnist1d.load()?;
            poptune_run::serve::serve_stdio(|m| {
                cnn_trainer(Arc::clone(&data), member_seed(seed, m))
            })
            .map_err(BurnError::io("cannot serve", "stdin/stdout"))?
        }
        Task::Digits => {
            let data = Which::Digits.load()?;
            poptune_run::serve::serve_stdio(|m| {
                mlp_trainer(Arc::clone(&data), member_seed(seed, m))
            })
            .map_err(BurnError::io("cannot serve", "stdin/stdout"))?
        }
        Task::Tsp => {
            let inst = tsp_instance();
            poptune_run::serve::serve_stdio(|m| annealer(Arc::clone(&inst), member_seed(seed, m)))
                .map_err(BurnError::io("cannot serve", "stdin/stdout"))?
        }
    }
    Ok(())
}

/// The default directory of a run.
pub fn default_dir(setup: &Setup) -> PathBuf {
    PathBuf::from("results").join(format!(
        "{}-{}-s{}",
        setup.task.name(),
        setup.method.name(),
        setup.seed
    ))
}

/// Trains in this process with the command's live view (or log lines); Ctrl-C stops it, and the
/// same command continues it.
fn run_here(
    def: &poptune::ExperimentDef,
    store: poptune_store::SqliteStore,
    workers: &dyn poptune_run::pool::Workers,
    quiet: bool,
) -> Result<durable::Summary, BurnError> {
    poptune_run::signals::install();
    let view = poptune_view::progress::View::new(&def.metric, quiet);
    let summary = durable::run(def, store, workers, &view, &poptune_run::signals::STOP);
    view.finish();
    let summary = summary?;
    if summary.status == poptune_store::RunStatus::Interrupted {
        return Err(BurnError::Interrupted);
    }
    Ok(summary)
}
