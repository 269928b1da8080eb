//! `poptune run`, `resume` and `worker`: the commands that train.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use poptune_run::local as durable;
use poptune_run::pool::ProcessWorkers;
use poptune_store::{RunStatus, Store};

pub use crate::inspect::{Opened, Source, StatusArgs};

use crate::config;
use crate::inspect::print_status;
use crate::CliError;
use poptune_run::signals;
use poptune_view::progress::View;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The experiment file (TOML; see docs/experiment-file.md).
    pub file: PathBuf,
    /// No live progress view.
    #[arg(long)]
    pub quiet: bool,
    /// Do not write TensorBoard files into the experiment directory's tensorboard/
    /// (docs/tensorboard.md).
    #[arg(long)]
    pub no_tensorboard: bool,
    /// Keep the experiment in PostgreSQL (postgres://USER@HOST/DB; the password from the URL
    /// or PGPASSWORD) instead of SQLite, and train as one of its workers
    /// (docs/distributed.md).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// With --store: seconds a claimed member stays leased without a heartbeat.
    #[arg(long, default_value_t = 30.0)]
    pub lease: f64,
    /// With --store: seconds to wait for an unreachable database (reconnecting) before
    /// giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub outage_limit: f64,
}

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The PostgreSQL database holding the experiment (postgres://USER@HOST/DB).
    #[arg(long, value_name = "URL")]
    pub store: String,
    /// The experiment's name.
    #[arg(long)]
    pub experiment: String,
    /// Members this worker trains at once (trainable processes).
    #[arg(long, default_value_t = 1)]
    pub slots: usize,
    /// Seconds a claimed member stays leased without a heartbeat; a worker that dies loses
    /// its members after this long.
    #[arg(long, default_value_t = 30.0)]
    pub lease: f64,
    /// Print nothing but the summary.
    #[arg(long)]
    pub quiet: bool,
    /// Wait up to this many seconds for the experiment to be created (workers started
    /// together with the `poptune run` that creates it, as in a job array).
    #[arg(long, default_value_t = 0.0)]
    pub wait: f64,
    /// Seconds to wait for an unreachable database (reconnecting) before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub outage_limit: f64,
}

#[derive(Args, Debug)]
pub struct DirArgs {
    /// The experiment directory (the one `poptune run` created).
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// The experiment directory.
    pub dir: PathBuf,
    /// No live progress view.
    #[arg(long)]
    pub quiet: bool,
    /// Do not write TensorBoard files into the experiment directory's tensorboard/.
    #[arg(long)]
    pub no_tensorboard: bool,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The experiment directory.
    pub dir: PathBuf,
    /// The member whose schedule to replay (default: the best).
    #[arg(long)]
    pub member: Option<usize>,
    /// Only print the schedule; do not retrain.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub source: Source,
    /// Where to copy the checkpoint (must not exist yet).
    #[arg(long, short)]
    pub out: PathBuf,
    /// The member to export (default: the best).
    #[arg(long)]
    pub member: Option<usize>,
}

/// Prints how a run ended and what to do next; an interrupted run is an error (exit 130).
pub fn finish_run(summary: durable::Summary, dir: &Path, metric: &str) -> Result<(), CliError> {
    println!("experiment {}: {}", dir.display(), summary.status);
    if let Some((m, s)) = summary.best {
        println!("{}", best_line(m, metric, s));
    }
    println!("compute: {} member-steps trained", summary.compute);
    if summary.faults > 0 {
        println!(
            "{} trainable faults (see `poptune status {}`)",
            summary.faults,
            dir.display()
        );
    }
    if summary.status == RunStatus::Interrupted {
        return Err(CliError::interrupted());
    }
    println!(
        "next: `poptune status {0}`, `poptune report {0}`, `poptune replay {0}`",
        dir.display()
    );
    Ok(())
}

/// The summary's line about the best member: its score with significant digits, as
/// `poptune status` and the report write it.
fn best_line(member: usize, metric: &str, score: f64) -> String {
    format!(
        "best member: {member}, {metric} = {}",
        poptune_view::format::score(score)
    )
}

fn lease(secs: f64) -> Result<Duration, CliError> {
    if !(secs.is_finite() && secs >= 1.0) {
        return Err(CliError::usage(anyhow!(
            "--lease {secs}: give at least 1 second (a heartbeat renews it every third of it)"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Joins an experiment kept in PostgreSQL (`poptune worker`).
pub fn worker(args: &WorkerArgs) -> Result<(), CliError> {
    if args.slots == 0 {
        return Err(CliError::usage(anyhow!("--slots must be at least 1")));
    }
    if !(args.wait.is_finite() && args.wait >= 0.0) {
        return Err(CliError::usage(anyhow!(
            "--wait {}: give seconds, 0 or more",
            args.wait
        )));
    }
    let opts = crate::pg::options(
        args.slots,
        lease(args.lease)?,
        args.outage_limit,
        args.quiet,
    )?;
    crate::pg::worker(args, &opts)
}

/// Runs (or continues) the experiment a file describes (`poptune run`).
pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let def = config::load(&args.file).map_err(CliError::usage)?;
    if let Some(url) = &args.store {
        let opts =
            crate::pg::options(def.slots, lease(args.lease)?, args.outage_limit, args.quiet)?;
        return crate::pg::run(url, &def, &opts);
    }
    let workers = ProcessWorkers::new(&def.trainable);
    if !def.directory.join(durable::DB_FILE).exists() {
        // A new experiment: its trainables start while the store is created (an
        // interpreter's start-up takes longer than that).
        let logs = def.directory.join(durable::LOG_DIR);
        if std::fs::create_dir_all(&logs).is_ok() {
            workers.start_early(def.slots.min(def.population), |slot| {
                durable::slot_log(&logs, slot)
            });
        }
    }
    let (store, opened) = durable::create_or_open(&def)?;
    let resumed = opened.existed();
    let (status, _) = store.status()?;
    if opened == durable::Opened::Same && status == RunStatus::Finished {
        durable::tidy(&def.directory, &store)?;
        println!(
            "experiment {} has already finished; nothing to do (to train it for longer, raise \
             `steps` in its [stop] table and run it again)",
            def.directory.display()
        );
        return print_status(&store, &def, &def.directory.display().to_string(), true);
    }
    if opened == durable::Opened::NewStopRules {
        eprintln!(
            "the stop rules changed: steps {}; the experiment trains on to them",
            def.stop.steps
        );
    }
    durable::check_not_running(&def.directory)?;
    eprintln!(
        "{} experiment `{}` in {} ({} member{}, {} step{} each, {} slot{})",
        if resumed { "resuming" } else { "starting" },
        def.name,
        def.directory.display(),
        def.population,
        if def.population == 1 { "" } else { "s" },
        def.stop.steps,
        if def.stop.steps == 1 { "" } else { "s" },
        def.slots,
        if def.slots == 1 { "" } else { "s" }
    );
    train_here(&def, store, &workers, args.quiet, !args.no_tensorboard)
}

/// The folder of an experiment directory that the live TensorBoard files go to.
pub const TENSORBOARD_DIR: &str = "tensorboard";

/// Trains the experiment in this process, with the view the terminal calls for and, with
/// `tensorboard`, the live TensorBoard files in the directory's tensorboard/.
fn train_here(
    def: &config::ExperimentDef,
    store: poptune_store::SqliteStore,
    workers: &ProcessWorkers<'_>,
    quiet: bool,
    tensorboard: bool,
) -> Result<(), CliError> {
    signals::install();
    let view = View::new(&def.metric, quiet);
    let board = tensorboard.then(|| {
        poptune_view::tensorboard::Live::start(&def.directory.join(TENSORBOARD_DIR), &def.metric)
    });
    let summary = match &board {
        Some(board) => {
            let both = poptune_view::Both(&view, board);
            durable::run(def, store, workers, &both, &signals::STOP)
        }
        None => durable::run(def, store, workers, &view, &signals::STOP),
    };
    if let Some(board) = &board {
        board.finish();
    }
    view.finish();
    finish_run(summary?, &def.directory, &def.metric)
}

/// Continues an experiment from its directory (`poptune resume`).
pub fn resume(args: &ResumeArgs) -> Result<(), CliError> {
    let (store, def) = durable::open_dir(&args.dir)?;
    let (status, _) = store.status()?;
    if status == RunStatus::Finished {
        durable::tidy(&def.directory, &store)?;
        println!("experiment {} has already finished", args.dir.display());
        return print_status(&store, &def, &args.dir.display().to_string(), true);
    }
    let t = &def.trainable;
    let Some(program) = t.command.first() else {
        return Err(CliError::usage(anyhow::anyhow!(
            "{}: the experiment was run in process by the Rust library (it has no trainable \
             command); continue it the same way, with `Run::run_in` on the same directory",
            args.dir.display()
        )));
    };
    if let Err(why) = config::find_program(program, &t.cwd, &t.env) {
        return Err(CliError::usage(anyhow::anyhow!(
            "{}: the experiment's trainable cannot be started: {why}",
            args.dir.display()
        )));
    }
    durable::check_not_running(&def.directory)?;
    eprintln!(
        "resuming experiment `{}` in {}",
        def.name,
        def.directory.display()
    );
    train_here(
        &def,
        store,
        &ProcessWorkers::new(&def.trainable),
        args.quiet,
        !args.no_tensorboard,
    )
}

#[cfg(test)]
mod tests {
    use super::best_line;

    #[test]
    fn the_summary_gives_the_best_score_significant_digits() {
        assert_eq!(
            best_line(14, "score", -0.00000000000011051084723415792),
            "best member: 14, score = -1.10511e-13"
        );
        assert_eq!(
            best_line(2, "val_accuracy", 0.912345678),
            "best member: 2, val_accuracy = 0.912346"
        );
    }
}
