//! The commands' PostgreSQL side (feature `postgres`, on by default): creating or joining an
//! experiment kept in a database, and reading one.

use std::time::Duration;

#[cfg(not(feature = "postgres"))]
use anyhow::anyhow;
use poptune::ExperimentDef;
use poptune_store::Store;

use crate::commands::WorkerArgs;
use crate::CliError;

#[cfg(not(feature = "postgres"))]
fn unsupported() -> CliError {
    CliError::usage(anyhow!(
        "this poptune was built without PostgreSQL support; build it with the `postgres` \
         feature (on by default): `cargo install --path crates/poptune-cli`"
    ))
}

/// The experiment `name` in the database at `url`, and where that is (for messages).
#[cfg(feature = "postgres")]
pub fn open(url: &str, name: &str) -> Result<(Box<dyn Store>, ExperimentDef, String), CliError> {
    let (store, def) = poptune_run::distributed::definition(url, name)?;
    let place = format!("{name} in {}", store.location());
    Ok((Box::new(store), def, place))
}

/// The experiment `name` in the database at `url`, and where that is (for messages).
#[cfg(not(feature = "postgres"))]
pub fn open(_: &str, _: &str) -> Result<(Box<dyn Store>, ExperimentDef, String), CliError> {
    Err(unsupported())
}

/// How a worker works, from its flags.
#[cfg(feature = "postgres")]
pub type Options = poptune_run::distributed::WorkOptions;

/// How a worker works, from its flags (unused without PostgreSQL support).
#[cfg(not(feature = "postgres"))]
pub type Options = ();

/// The worker's options; `--outage-limit` must be seconds, 0 or more.
pub fn options(
    slots: usize,
    lease: Duration,
    outage_limit: f64,
    quiet: bool,
) -> Result<Options, CliError> {
    if !(outage_limit.is_finite() && outage_limit >= 0.0) {
        return Err(CliError::usage(anyhow::anyhow!(
            "--outage-limit {outage_limit}: give seconds, 0 or more"
        )));
    }
    #[cfg(feature = "postgres")]
    {
        Ok(poptune_run::distributed::WorkOptions {
            slots,
            lease,
            outage_limit: Duration::from_secs_f64(outage_limit),
            quiet,
        })
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = (slots, lease, quiet);
        Ok(())
    }
}

#[cfg(feature = "postgres")]
fn summary(s: &poptune_run::distributed::WorkerSummary) {
    println!(
        "worker done: {} segments recorded, {} faults, {} leases lost",
        s.segments, s.faults, s.lost_leases
    );
    if s.outages > 0 {
        println!(
            "database outages ridden out: {} ({:.1} s in all)",
            s.outages, s.outage_seconds
        );
    }
    if s.tidied > 0 {
        println!("removed {} abandoned checkpoint directories", s.tidied);
    }
    if let Some(status) = &s.status {
        println!("experiment: {status}");
    }
}

/// `poptune run FILE --store URL`: creates (or joins) the experiment and trains as a worker.
#[cfg(feature = "postgres")]
pub fn run(url: &str, def: &ExperimentDef, opts: &Options) -> Result<(), CliError> {
    use poptune_run::distributed;
    let joined = distributed::create_or_join(url, def)?;
    eprintln!(
        "{} experiment `{}` ({} members, {} steps each); checkpoints in {}; more workers: \
         `poptune worker --store URL --experiment {}`",
        if joined { "joining" } else { "created" },
        def.name,
        def.population,
        def.stop.steps,
        distributed::shared_dir(def).display(),
        def.name
    );
    let s = distributed::work(url, &def.name, opts)?;
    summary(&s);
    Ok(())
}

/// `poptune run FILE --store URL` without PostgreSQL support.
#[cfg(not(feature = "postgres"))]
pub fn run(_: &str, _: &ExperimentDef, _: &Options) -> Result<(), CliError> {
    Err(unsupported())
}

/// `poptune worker`: waits up to `--wait` for the experiment to exist, then trains it.
#[cfg(feature = "postgres")]
pub fn worker(args: &WorkerArgs, opts: &Options) -> Result<(), CliError> {
    use poptune_run::distributed;
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(args.wait);
    while distributed::definition(&args.store, &args.experiment).is_err()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    let s = distributed::work(&args.store, &args.experiment, opts)?;
    summary(&s);
    Ok(())
}

/// `poptune worker` without PostgreSQL support.
#[cfg(not(feature = "postgres"))]
pub fn worker(_: &WorkerArgs, _: &Options) -> Result<(), CliError> {
    Err(unsupported())
}
