//! `poptune-burn`: PBT on real models (burn) and a non-gradient example, in-process.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use poptune_burn::tasks::{self, Method, RunResult, Setup, Task};
use poptune_burn::BurnError;

/// PBT on a CNN (MNIST-1D), an MLP (digits) and simulated annealing (TSP), in-process.
#[derive(Parser, Debug)]
#[command(name = "poptune-burn", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Tune one task with PBT (or a baseline), write the report, print the best member's
    /// validation and test accuracy.
    Tune(TuneArgs),
    /// PBT against random search, grid search, explore-only and exploit-only over several
    /// seeds; prints (and writes) the table.
    Compare(CompareArgs),
    /// Serve a task's trainable over poptune's protocol on stdin/stdout (what `poptune
    /// replay` and `poptune resume` start).
    Serve(ServeArgs),
}

#[derive(Args, Debug, Clone)]
struct Shape {
    /// Members (default: the task's, 12).
    #[arg(long)]
    population: Option<usize>,
    /// Steps each member trains (default: the task's: mnist1d 150, digits 60, tsp 100).
    #[arg(long)]
    steps: Option<u64>,
    /// Steps between ready points (default: mnist1d 10, digits 5, tsp 5).
    #[arg(long)]
    interval: Option<u64>,
    /// Members trained in parallel (threads).
    #[arg(long, default_value_t = 2)]
    slots: usize,
    /// Synchronous rounds (default: asynchronous).
    #[arg(long)]
    sync: bool,
}

#[derive(Args, Debug)]
struct TuneArgs {
    /// What to tune.
    #[arg(value_enum)]
    task: Task,
    /// PBT or a baseline.
    #[arg(long, value_enum, default_value = "pbt")]
    method: Method,
    /// Seeds hyperparameter choices and model initialisation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The experiment directory (default: results/TASK-METHOD-sSEED). An existing one is
    /// continued.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[command(flatten)]
    shape: Shape,
    /// No live view and no report.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// The task to compare on.
    #[arg(value_enum)]
    task: Task,
    /// Seeds 1..=SEEDS.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Where the runs go: OUT/TASK/METHOD-sSEED (runs already finished are reused).
    #[arg(long, default_value = "results/compare")]
    out: PathBuf,
    /// The methods to run, comma-separated (default: all eight; FIRE-PBT only from 5
    /// members).
    #[arg(long, value_enum, value_delimiter = ',')]
    methods: Vec<Method>,
    #[command(flatten)]
    shape: Shape,
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[arg(value_enum)]
    task: Task,
    /// The experiment's seed (members' models are seeded from it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn setup(task: Task, method: Method, seed: u64, shape: &Shape) -> Result<Setup, BurnError> {
    let (p, s, i) = task.defaults();
    let setup = Setup {
        task,
        method,
        population: shape.population.unwrap_or(p),
        steps: shape.steps.unwrap_or(s),
        interval: shape.interval.unwrap_or(i),
        seed,
        slots: shape.slots,
        synchronous: shape.sync,
    };
    if setup.population == 0 || setup.steps == 0 || setup.interval == 0 || setup.slots == 0 {
        return Err(BurnError::Usage(
            "--population, --steps, --interval and --slots must be at least 1".into(),
        ));
    }
    Ok(setup)
}

fn describe(r: &RunResult) -> String {
    let score = poptune_view::format::score;
    match r.test_accuracy {
        Some(t) => format!(
            "best member {}: validation accuracy {}, test accuracy {}",
            r.best_member,
            score(r.score),
            score(t)
        ),
        None => format!(
            "best member {}: tour length {}",
            r.best_member,
            score(r.score)
        ),
    }
}

fn tune(args: &TuneArgs) -> Result<(), BurnError> {
    let setup = setup(args.task, args.method, args.seed, &args.shape)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| tasks::default_dir(&setup));
    let r = tasks::tune(&setup, &dir, args.quiet)?;
    println!("{}", describe(&r));
    println!(
        "{:.1} s of training, {:.1}% of the slots' time outside training steps, {} member-steps trained",
        r.wall_seconds,
        100.0 * r.overhead(),
        r.compute
    );
    if !args.quiet {
        let (store, def) = poptune_run::local::open_dir(&dir)?;
        let place = dir.display().to_string();
        let files = poptune_view::report::write(&store, &def, &dir.join("report"), &place)?;
        print!("{files}");
    }
    println!(
        "next: `poptune status {0}`, `poptune replay {0}`, `poptune export {0} --out best`",
        dir.display()
    );
    Ok(())
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

fn compare(args: &CompareArgs) -> Result<(), BurnError> {
    if args.seeds == 0 {
        return Err(BurnError::Usage("--seeds must be at least 1".into()));
    }
    let base = args.out.join(args.task.name());
    let mut rows = Vec::new();
    let methods = if args.methods.is_empty() {
        Method::ALL.to_vec()
    } else {
        args.methods.clone()
    };
    for method in methods {
        let mut results = Vec::new();
        if let Err(e) = setup(args.task, method, 1, &args.shape)?.definition(Path::new("."), &base)
        {
            eprintln!("{:>13} skipped: {e}", method.name());
            continue;
        }
        for seed in 1..=args.seeds {
            let s = setup(args.task, method, seed, &args.shape)?;
            let dir = base.join(format!("{}-s{seed}", method.name()));
            let r = tasks::tune(&s, &dir, true)?;
            eprintln!(
                "{:>13} seed {seed}: {} ({:.0} s)",
                method.name(),
                describe(&r),
                r.wall_seconds
            );
            results.push(r);
        }
        rows.push((method, results));
    }
    let classify = args.task != Task::Tsp;
    let (p, s, i) = args.task.defaults();
    let mut table = format!(
        "{} members × {} steps, interval {}, {} seeds\n\n",
        args.shape.population.unwrap_or(p),
        args.shape.steps.unwrap_or(s),
        args.shape.interval.unwrap_or(i),
        args.seeds
    );
    if classify {
        table.push_str("| method | test accuracy (mean ± sd) | min | max | validation accuracy (mean) | compute (member-steps, mean) |\n|---|---|---|---|---|---|\n");
    } else {
        table.push_str("| method | tour length (mean ± sd) | min | max | compute (member-steps, mean) |\n|---|---|---|---|---|\n");
    }
    for (method, results) in &rows {
        let key: Vec<f64> = results
            .iter()
            .map(|r| {
                if classify {
                    r.test_accuracy.unwrap_or(f64::NAN)
                } else {
                    r.score
                }
            })
            .collect();
        let (m, sd) = mean_std(&key);
        let min = key.iter().copied().fold(f64::INFINITY, f64::min);
        let max = key.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let compute: Vec<f64> = results.iter().map(|r| r.compute as f64).collect();
        let compute = mean_std(&compute).0;
        if classify {
            let v: Vec<f64> = results.iter().map(|r| r.score).collect();
            table.push_str(&format!(
                "| {} | {:.4} ± {:.4} | {:.4} | {:.4} | {:.4} | {:.0} |\n",
                method.name(),
                m,
                sd,
                min,
                max,
                mean_std(&v).0,
                compute
            ));
        } else {
            table.push_str(&format!(
                "| {} | {:.4} ± {:.4} | {:.4} | {:.4} | {:.0} |\n",
                method.name(),
                m,
                sd,
                min,
                max,
                compute
            ));
        }
    }
    let param = if classify { "lr" } else { "temperature" };
    for (method, _) in &rows {
        if !matches!(
            method,
            Method::Pbt | Method::Pb2 | Method::Pb2Mix | Method::Fire
        ) {
            continue;
        }
        let runs: Vec<(String, PathBuf)> = (1..=args.seeds)
            .map(|seed| {
                let dir = base.join(format!("{}-s{seed}", method.name()));
                (format!("seed {seed}"), dir)
            })
            .collect();
        let plot = base.join(format!("{}-{param}-schedules", method.name()));
        poptune_burn::schedules::plot(
            &runs,
            param,
            &format!(
                "{}: {param} schedule of {}'s best member, per seed",
                args.task.name(),
                method.name()
            ),
            &plot,
        )?;
        println!("schedules: {}.png (.svg)", plot.display());
        if *method == Method::Fire {
            let plot = base.join("fire-s1-sub-populations");
            poptune_burn::fire_plot::plot(
                &base.join("fire-s1"),
                &format!(
                    "{}: FIRE-PBT seed 1, members by sub-population",
                    args.task.name()
                ),
                &plot,
            )?;
            println!("sub-populations: {}.png (.svg)", plot.display());
        }
    }
    let path = base.join("table.md");
    std::fs::write(&path, &table).map_err(BurnError::io("cannot write", &path))?;
    print!("{table}");
    println!("\n(written to {})", path.display());
    Ok(())
}

/// An error and its causes, each said once.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    poptune_view::init_logging();
    // Nothing here writes to a child process: when the reader of stdout goes away
    // (`poptune-burn compare digits | head`, or poptune ending a `serve`), end quietly.
    // SAFETY: setting a signal's disposition to the default, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let result = match cli.command {
        Command::Tune(a) => tune(&a),
        Command::Compare(a) => compare(&a),
        Command::Serve(a) => tasks::serve(a.task, a.seed),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}
