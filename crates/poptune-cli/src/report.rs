//! `poptune report DIR`: the report of an experiment directory or a store's experiment
//! (written by `poptune_view::report`, with the dashboard's page as one offline file by
//! `poptune_dashboard::static_page`), or its TensorBoard files (`--tensorboard`, written by
//! `poptune_view::tensorboard`).

use std::path::PathBuf;

use clap::Args;

use crate::CliError;

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub source: crate::commands::Source,
    /// Where to write the report (default: the experiment directory's report/; for --store,
    /// the shared directory's). With --tensorboard, the report is written only if --out is
    /// given too.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the whole history as TensorBoard event files into this directory (one run per
    /// member; see docs/tensorboard.md), instead of the report.
    #[arg(long, value_name = "LOGDIR")]
    pub tensorboard: Option<PathBuf>,
}

pub fn run(args: &ReportArgs) -> Result<(), CliError> {
    let crate::commands::Opened {
        store,
        def,
        dir,
        place,
    } = args.source.open()?;
    let usage = |e: poptune_view::ViewError| match e {
        poptune_view::ViewError::NoSteps(_) | poptune_view::ViewError::Exists(_) => {
            CliError::usage(e)
        }
        e => CliError::from(e),
    };
    let place = place.to_string();
    if let Some(logdir) = &args.tensorboard {
        let files = poptune_view::tensorboard::write(store.as_ref(), &def, logdir, &place)
            .map_err(usage)?;
        print!("{files}");
        if args.out.is_none() {
            return Ok(());
        }
    }
    let out = args.out.clone().unwrap_or_else(|| dir.join("report"));
    let files = poptune_view::report::write(store.as_ref(), &def, &out, &place).map_err(usage)?;
    // The live dashboard's page, its data embedded: opens from disk without a server.
    let page = poptune_dashboard::static_page(store.as_ref(), &def)?;
    let path = out.join(DASHBOARD_PAGE);
    std::fs::write(&path, page)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    print!("{files}");
    println!("  {} (the dashboard, offline)", path.display());
    Ok(())
}

/// The static dashboard's file in the report's folder.
pub const DASHBOARD_PAGE: &str = "dashboard.html";
