//! `poptune`: Population Based Training from the command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use poptune_cli::{commands, dashboard, inspect, report, toy};

/// Population Based Training for any iterative training process.
#[derive(Parser, Debug)]
#[command(name = "poptune", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Reproduce the PBT paper's toy example (Figure 2): PBT against explore-only,
    /// exploit-only and grid search over many seeds.
    Toy(toy::ToyArgs),
    /// Run (or continue) the experiment an experiment file describes.
    Run(commands::RunArgs),
    /// Continue an interrupted experiment from its directory.
    Resume(commands::ResumeArgs),
    /// Print an experiment's population.
    Status(commands::StatusArgs),
    /// Join an experiment kept in PostgreSQL and train its members until it ends.
    Worker(commands::WorkerArgs),
    /// Write CSV and JSON-lines exports, plots and an HTML page of an experiment.
    Report(report::ReportArgs),
    /// Retrain a member from scratch along its hyperparameter schedule.
    Replay(commands::ReplayArgs),
    /// Copy a member's final checkpoint (its θ) out of the experiment.
    Export(commands::ExportArgs),
    /// Serve a live, read-only dashboard of an experiment (or a folder or store of them) and
    /// print the URL to open.
    Dashboard(dashboard::DashboardArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    poptune_view::init_logging();
    if matches!(
        cli.command,
        Command::Toy(_) | Command::Status(_) | Command::Report(_) | Command::Export(_)
    ) {
        // Commands that only print end quietly when their reader goes away
        // (`poptune status DIR | head`), as other command-line tools do. The others keep
        // Rust's default, SIGPIPE ignored: writing to a trainable that died must be an error
        // they handle, not the end of poptune.
        // SAFETY: setting a signal's disposition to the default, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Command::Toy(args) => toy::run(&args),
        Command::Run(args) => commands::run(&args),
        Command::Resume(args) => commands::resume(&args),
        Command::Status(args) => inspect::status(&args),
        Command::Worker(args) => commands::worker(&args),
        Command::Replay(args) => inspect::replay(&args),
        Command::Report(args) => report::run(&args),
        Command::Export(args) => inspect::export(&args),
        Command::Dashboard(args) => dashboard::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}
