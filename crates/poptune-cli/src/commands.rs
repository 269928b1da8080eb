//! `poptune run`, `resume`, `status`, `replay` and `export`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use poptune::lineage::schedule;
use poptune_store::{Checkpoints, Store};

use crate::config;
use crate::durable::{self, CKPT_DIR, LOG_DIR};
use crate::external::Process;
use crate::worker::ProcessWorkers;
use crate::CliError;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The experiment file (TOML; see docs/experiment-file.md).
    pub file: PathBuf,
    /// No live progress view.
    #[arg(long)]
    pub quiet: bool,
    /// Keep the experiment in PostgreSQL (postgres://USER@HOST/DB; the password from the URL
    /// or PGPASSWORD) instead of SQLite, and train as one of its workers
    /// (docs/distributed.md).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// With --store: seconds a claimed member stays leased without a heartbeat.
    #[arg(long, default_value_t = 30.0)]
    pub lease: f64,
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
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub source: Source,
}

/// Where an experiment is read from: its directory, or the PostgreSQL database of a
/// distributed run.
#[derive(Args, Debug, Clone)]
pub struct Source {
    /// The experiment directory (the one `poptune run` created).
    #[arg(required_unless_present = "store")]
    pub dir: Option<PathBuf>,
    /// Or: the PostgreSQL database holding the experiment.
    #[arg(
        long,
        value_name = "URL",
        requires = "experiment",
        conflicts_with = "dir"
    )]
    pub store: Option<String>,
    /// With --store: the experiment's name.
    #[arg(long, requires = "store")]
    pub experiment: Option<String>,
}

/// An experiment opened from a [`Source`].
pub struct Opened {
    pub store: Box<dyn Store>,
    pub def: config::ExperimentDef,
    /// The experiment directory (a distributed run's shared directory), which holds the
    /// checkpoints.
    pub dir: PathBuf,
    /// Where it was read from, for messages.
    pub place: String,
}

impl Source {
    /// The experiment directory `dir`.
    pub fn dir(dir: &Path) -> Self {
        Source {
            dir: Some(dir.to_path_buf()),
            store: None,
            experiment: None,
        }
    }

    /// Opens the experiment.
    pub fn open(&self) -> Result<Opened, CliError> {
        match (&self.store, &self.experiment, &self.dir) {
            (Some(url), Some(name), _) => {
                let (store, def) = crate::distributed::definition(url, name)?;
                let place = format!("{name} in {}", store.location());
                Ok(Opened {
                    dir: def.directory.clone(),
                    store: Box::new(store),
                    def,
                    place,
                })
            }
            (None, None, Some(dir)) => {
                let (store, def) = durable::open_dir(dir)?;
                Ok(Opened {
                    store: Box::new(store),
                    def,
                    dir: dir.clone(),
                    place: dir.display().to_string(),
                })
            }
            _ => Err(CliError::usage(anyhow!(
                "give an experiment directory, or --store URL --experiment NAME"
            ))),
        }
    }
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

/// Prints how a run ended and what to do next.
pub fn finish_run(summary: durable::Summary, dir: &Path, metric: &str) {
    println!("experiment {}: {}", dir.display(), summary.status);
    if let Some((m, s)) = summary.best {
        println!("best member: {m}, {metric} = {s}");
    }
    if summary.faults > 0 {
        println!(
            "{} trainable faults (see `poptune status {}`)",
            summary.faults,
            dir.display()
        );
    }
    println!(
        "next: `poptune status {0}`, `poptune report {0}`, `poptune replay {0}`",
        dir.display()
    );
}

fn lease(secs: f64) -> Result<Duration, CliError> {
    if !(secs.is_finite() && secs >= 1.0) {
        return Err(CliError::usage(anyhow!(
            "--lease {secs}: give at least 1 second (a heartbeat renews it every third of it)"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn worker_summary(s: &crate::distributed::WorkerSummary) {
    println!(
        "worker done: {} segments recorded, {} faults, {} leases lost",
        s.segments, s.faults, s.lost_leases
    );
}

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
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(args.wait);
    while crate::distributed::definition(&args.store, &args.experiment).is_err()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    let s = crate::distributed::work(
        &args.store,
        &args.experiment,
        args.slots,
        lease(args.lease)?,
        args.quiet,
    )?;
    worker_summary(&s);
    Ok(())
}

pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let def = config::load(&args.file).map_err(CliError::usage)?;
    if let Some(url) = &args.store {
        let lease = lease(args.lease)?;
        let joined = crate::distributed::create_or_join(url, &def)?;
        eprintln!(
            "{} experiment `{}` ({} members, {} steps each); checkpoints in {}; more workers: \
             `poptune worker --store URL --experiment {}`",
            if joined { "joining" } else { "created" },
            def.name,
            def.population,
            def.stop.steps,
            crate::distributed::shared_dir(&def).display(),
            def.name
        );
        let s = crate::distributed::work(url, &def.name, def.slots, lease, args.quiet)?;
        worker_summary(&s);
        return Ok(());
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
    let (store, resumed) = durable::create_or_open(&def)?;
    let (status, _) = store.status()?;
    if resumed && status == "finished" {
        println!(
            "experiment {} has already finished; nothing to do",
            def.directory.display()
        );
        return print_status(&store, &def, &def.directory.display().to_string());
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
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let summary = durable::run(&def, store, &workers, progress)?;
    finish_run(summary, &def.directory, &def.metric);
    Ok(())
}

pub fn resume(args: &ResumeArgs) -> Result<(), CliError> {
    let (store, def) = durable::open_dir(&args.dir)?;
    let (status, _) = store.status()?;
    if status == "finished" {
        println!("experiment {} has already finished", args.dir.display());
        return print_status(&store, &def, &args.dir.display().to_string());
    }
    let t = &def.trainable;
    if let Err(why) = config::find_program(&t.command[0], &t.cwd, &t.env) {
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
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let summary = durable::run(&def, store, &ProcessWorkers::new(&def.trainable), progress)?;
    finish_run(summary, &def.directory, &def.metric);
    Ok(())
}

pub fn status(args: &StatusArgs) -> Result<(), CliError> {
    let o = args.source.open()?;
    print_status(o.store.as_ref(), &o.def, &o.place)
}

fn print_status(
    store: &dyn Store,
    def: &config::ExperimentDef,
    place: &str,
) -> Result<(), CliError> {
    let dir = &def.directory;
    let (status, elapsed) = store.status()?;
    let members = store.members()?;
    let events = store.events()?;
    let faults = store.faults()?;
    println!("experiment: {} ({place})", def.name);
    println!(
        "status: {status}, running time {:.1} s, {} members, {} steps each, mode {:?}",
        elapsed, def.population, def.stop.steps, def.mode
    );
    // In PBT every exploit is followed by an explore of the copied hyperparameters; an event
    // without a donor is an explore on its own (the explore-only variant).
    let exploits = events.iter().filter(|e| e.donor.is_some()).count();
    let alone = events.len() - exploits;
    let then = match def.policy.variant {
        poptune::Variant::Pbt => " (each followed by an explore)",
        _ => "",
    };
    println!(
        "exploits: {exploits}{then}, explores without an exploit: {alone}, faults: {}",
        faults.len()
    );
    println!();
    let mut order: Vec<&poptune_store::MemberRow> = members.iter().collect();
    order.sort_by(|a, b| {
        let k =
            |m: &poptune_store::MemberRow| m.score.map_or(f64::NEG_INFINITY, |s| def.mode.key(s));
        k(b).total_cmp(&k(a)).then(a.id.cmp(&b.id))
    });
    println!(
        "{:>6} {:>8} {:>12} {:>8}  hyperparameters",
        "member", "step", def.metric, "state"
    );
    for m in order {
        let state = if m.done {
            "done"
        } else if m.failures > 0 {
            "failing"
        } else {
            "training"
        };
        println!(
            "{:>6} {:>8} {:>12} {:>8}  {}",
            m.id,
            m.step,
            m.score.map_or("-".to_string(), |s| format!("{s:.6}")),
            state,
            m.h
        );
    }
    if !faults.is_empty() {
        println!();
        println!("last faults:");
        for f in faults.iter().rev().take(5) {
            println!(
                "  member {} at step {}: {}: {}",
                f.member, f.step, f.kind, f.message
            );
        }
        println!("  (process stderr: {})", dir.join(LOG_DIR).display());
    }
    Ok(())
}

/// The best scored member (ties: the lower id), the one `status`, `replay` and `export` mean.
pub fn best_member(
    def: &config::ExperimentDef,
    members: &[poptune_store::MemberRow],
) -> Option<usize> {
    members
        .iter()
        .filter(|m| m.score.is_some())
        .max_by(|a, b| {
            let k = |m: &poptune_store::MemberRow| {
                m.score.map_or(f64::NEG_INFINITY, |s| def.mode.key(s))
            };
            k(a).total_cmp(&k(b)).then(b.id.cmp(&a.id))
        })
        .map(|m| m.id)
}

fn pick_member(
    def: &config::ExperimentDef,
    members: &[poptune_store::MemberRow],
    member: Option<usize>,
) -> Result<usize, CliError> {
    match member {
        Some(m) if m < members.len() => Ok(m),
        Some(m) => Err(CliError::usage(anyhow!(
            "--member {m}: the population has members 0 to {}",
            members.len().saturating_sub(1)
        ))),
        None => best_member(def, members)
            .ok_or_else(|| CliError::usage(anyhow!("no member has a score yet"))),
    }
}

pub fn export(args: &ExportArgs) -> Result<(), CliError> {
    let Opened {
        store, def, dir, ..
    } = args.source.open()?;
    let members = store.members()?;
    let m = pick_member(&def, &members, args.member)?;
    let name = members[m]
        .checkpoint
        .clone()
        .ok_or_else(|| CliError::usage(anyhow!("member {m} has no checkpoint yet")))?;
    if args.out.exists() {
        return Err(CliError::usage(anyhow!(
            "{} already exists; give a new path to export into",
            args.out.display()
        )));
    }
    let ckpts = Checkpoints::open(&dir.join(CKPT_DIR))?;
    let sum = store
        .checkpoints()?
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| c.checksum)
        .ok_or_else(|| anyhow!("checkpoint {name} is missing from the index"))?;
    ckpts.verify(&name, &sum)?;
    ckpts.export(&name, &args.out)?;
    println!(
        "exported member {m}'s checkpoint at step {} ({} = {}) to {}",
        members[m].step,
        def.metric,
        members[m].score.map_or("-".into(), |s| s.to_string()),
        args.out.display()
    );
    Ok(())
}

pub fn replay(args: &ReplayArgs) -> Result<(), CliError> {
    let (store, def) = durable::open_dir(&args.dir)?;
    let members = store.members()?;
    let m = pick_member(&def, &members, args.member)?;
    let initial: Vec<poptune::Hyperparams> = def
        .experiment()
        .initial_hyperparams()
        .map_err(CliError::usage)?;
    let events = store.events()?;
    let sched = schedule(&initial, &events, m, members[m].step);
    print!("{sched}");
    let recorded = members[m].score;
    if args.dry_run {
        return Ok(());
    }
    // Absolute: the trainable runs in its own working directory.
    let work = std::path::absolute(args.dir.join("replay"))
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let log = work.join("replay.stderr.log");
    let mut proc = Process::spawn(&def.trainable, 0, &log)
        .map_err(|f| anyhow!("{}: {}", f.kind, f.message))?;
    let mut restore: Option<(PathBuf, String)> = None;
    let mut last = None;
    for (i, seg) in sched.segments.iter().enumerate() {
        let dir = work.join(format!("segment-{i}"));
        let id = format!("replay-{i}");
        std::fs::create_dir_all(&dir)?;
        let steps = proc
            .train(
                sched.origin,
                seg.start,
                seg.end - seg.start,
                &seg.h,
                restore.as_ref().map(|(p, n)| (p.as_path(), n.as_str())),
                (&dir, &id),
                Duration::from_secs_f64(def.trainable.step_timeout),
                None,
                |_| {},
            )
            .map_err(|f| {
                anyhow!(
                    "the replay failed in segment {i}: {}: {}\n{}",
                    f.kind,
                    f.message,
                    proc.stderr_tail()
                )
            })?;
        last = steps.last().map(|s| s.score);
        restore = Some((dir, id));
    }
    proc.shutdown();
    let replayed = last.ok_or_else(|| anyhow!("the schedule is empty"))?;
    println!("replayed {} = {replayed}", def.metric);
    match recorded {
        Some(r) if r == replayed => println!("recorded {} = {r}: identical", def.metric),
        Some(r) => println!(
            "recorded {} = {r}: differs by {:.3e} (expected when the trainable is not deterministic, or the run was asynchronous and a donor's checkpoint came from a different step)",
            def.metric,
            (r - replayed).abs()
        ),
        None => {}
    }
    println!(
        "the replayed checkpoint is in {}",
        restore.map_or(work, |r| r.0).display()
    );
    Ok(())
}
