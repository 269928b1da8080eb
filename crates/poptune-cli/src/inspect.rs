//! `poptune status`, `replay` and `export`: reading an experiment, from its directory or its
//! database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use poptune::lineage::schedule;
use poptune_run::local::{self as durable, CKPT_DIR, LOG_DIR};
use poptune_run::protocol::Process;
use poptune_store::{Checkpoints, RunStatus, Store};
use poptune_view::format;

use crate::commands::{ExportArgs, ReplayArgs};
use crate::config;
use crate::CliError;

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub source: Source,
    /// Print one JSON object instead (the schema is in docs/json.md), for programs.
    #[arg(long)]
    pub json: bool,
    /// With --json: add every recorded step with the hyperparameters it was trained with.
    #[arg(long, requires = "json")]
    pub steps: bool,
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
                let (store, def, place) = crate::pg::open(url, name)?;
                Ok(Opened {
                    dir: def.directory.clone(),
                    store,
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

pub fn status(args: &StatusArgs) -> Result<(), CliError> {
    let o = args.source.open()?;
    if args.json {
        let local = args.source.store.is_none();
        let seen = seen(o.store.as_ref(), &o.def, local)?;
        // A directory as absolute as the stored definition's; a distributed run's is the
        // definition's own.
        let dir = if local {
            std::path::absolute(&o.dir)
                .with_context(|| format!("cannot resolve {}", o.dir.display()))?
        } else {
            o.dir.clone()
        };
        let out = crate::json::status(o.store.as_ref(), &o.def, &dir, &seen, args.steps)?;
        println!("{out}");
        return Ok(());
    }
    print_status(
        o.store.as_ref(),
        &o.def,
        &o.place,
        args.source.store.is_none(),
    )
}

/// Prints an experiment's status; `local`: it lives in an experiment directory, whose lock
/// tells whether a process runs it now.
pub(crate) fn print_status(
    store: &dyn Store,
    def: &config::ExperimentDef,
    place: &str,
    local: bool,
) -> Result<(), CliError> {
    let status = seen(store, def, local)?.status;
    print!("{}", status_text(store, def, place, status)?);
    Ok(())
}

/// The run's status as `status` shows it; `local`: it lives in an experiment directory, whose
/// lock tells whether a process runs it now.
fn seen(
    store: &dyn Store,
    def: &config::ExperimentDef,
    local: bool,
) -> Result<crate::json::Seen, CliError> {
    let (status, _) = store.status()?;
    if local && status == RunStatus::Running && !durable::is_held(&def.directory) {
        // Recorded as running by a process that is gone (killed, or the machine stopped).
        return Ok(crate::json::Seen {
            status: RunStatus::Interrupted,
            killed: true,
        });
    }
    Ok(crate::json::Seen {
        status,
        killed: false,
    })
}

/// A member's state as `status` shows it: `done`, `failing`, `training` (the run is running)
/// or `stopped` (nobody trains it now).
pub(crate) fn member_state(m: &poptune_store::MemberRow, status: &RunStatus) -> &'static str {
    if m.done {
        "done"
    } else if m.failures > 0 {
        "failing"
    } else if *status == RunStatus::Running {
        "training"
    } else {
        // The run is over or interrupted: nobody trains it now.
        "stopped"
    }
}

/// What `poptune status` prints, the run's status being `status`: scores with significant
/// digits ([`poptune_view::format::score`]), the mode as an experiment file writes it.
fn status_text(
    store: &dyn Store,
    def: &config::ExperimentDef,
    place: &str,
    status: RunStatus,
) -> Result<String, CliError> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let (_, elapsed) = store.status()?;
    let members = store.members()?;
    let events = store.events()?;
    let faults = store.faults()?;
    let _ = writeln!(out, "experiment: {} ({place})", def.name);
    // A long reason (a failure with the trainable's stderr) goes below, indented.
    let said = status.to_string();
    let (first, rest) = said.split_once('\n').unwrap_or((&said, ""));
    let _ = writeln!(
        out,
        "status: {first}, running time {:.1} s, {} members, {} steps each, mode {}",
        elapsed,
        def.population,
        def.stop.steps,
        format::mode(def.mode)
    );
    for line in rest.lines() {
        let _ = writeln!(out, "    {line}");
    }
    // In PBT every exploit is followed by an explore of the copied hyperparameters; an event
    // without a donor is an explore on its own (the explore-only variant).
    let exploits = events.iter().filter(|e| e.donor.is_some()).count();
    let alone = events.len() - exploits;
    let then = match def.policy.variant {
        poptune::Variant::Pbt => " (each followed by an explore)",
        _ => "",
    };
    let _ = writeln!(
        out,
        "exploits: {exploits}{then}, explores without an exploit: {alone}, faults: {}",
        faults.len()
    );
    if let Some(t) = store.tally()? {
        let _ = writeln!(
            out,
            "compute: {} member-steps trained (including steps trained again)",
            t.compute
        );
    }
    let _ = writeln!(out);
    let mut order: Vec<&poptune_store::MemberRow> = members.iter().collect();
    order.sort_by(|a, b| {
        let k =
            |m: &poptune_store::MemberRow| m.score.map_or(f64::NEG_INFINITY, |s| def.mode.key(s));
        k(b).total_cmp(&k(a)).then(a.id.cmp(&b.id))
    });
    let _ = writeln!(
        out,
        "{:>6} {:>8} {:>12} {:>8}  hyperparameters",
        "member", "step", def.metric, "state"
    );
    for m in order {
        let state = member_state(m, &status);
        let _ = writeln!(
            out,
            "{:>6} {:>8} {:>12} {:>8}  {}",
            m.id,
            m.step,
            m.score.map_or("-".to_string(), format::score),
            state,
            m.h
        );
    }
    if !faults.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "last faults:");
        for f in faults.iter().rev().take(5) {
            let _ = writeln!(
                out,
                "  member {} at step {}: {}: {}",
                f.member, f.step, f.kind, f.message
            );
        }
        let _ = writeln!(
            out,
            "  (process stderr: {})",
            def.directory.join(LOG_DIR).display()
        );
    }
    Ok(out)
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
        None => poptune_store::best_member(def.mode, members)
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
        members[m].score.map_or("-".into(), format::score),
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use poptune::{Mode, Param, Policy, Space, StopRules, TrainableDef};
    use poptune_store::{Commit, MemberRow, MemoryStore};

    use super::*;

    #[test]
    fn the_status_gives_scores_significant_digits_and_the_mode_as_written() {
        let def = config::ExperimentDef {
            name: "tiny".into(),
            metric: "reward".into(),
            mode: Mode::Max,
            population: 2,
            seed: 1,
            slots: 1,
            initial: Default::default(),
            directory: PathBuf::from("/nonexistent"),
            policy: Policy::default(),
            space: Space::new().with("lr", Param::float(0.0, 1.0)),
            stop: StopRules::steps(10),
            trainable: TrainableDef::default(),
        };
        let mut store = MemoryStore::new();
        let members: Vec<MemberRow> = (0..2)
            .map(|m| MemberRow::new(m, poptune::Hyperparams::new().with("lr", 0.5)))
            .collect();
        store.create(&def.name, &def.to_json(), &members).unwrap();
        let mut c = Commit::default();
        for (m, score) in [(0, -1e-8), (1, 1.5e11)] {
            let mut row = members[m].clone();
            row.step = 10;
            row.score = Some(score);
            c.members.push(row);
        }
        store.commit(&c).unwrap();
        let text = status_text(&store, &def, "mem", RunStatus::Finished).unwrap();
        assert!(text.contains("mode max"), "{text}");
        assert!(text.contains(" -1e-8 "), "{text}");
        assert!(text.contains(" 1.5e11 "), "{text}");
        assert!(!text.contains("-0.000000"), "{text}");
    }
}
