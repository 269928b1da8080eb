//! `poptune report DIR`: the report of an experiment directory or a store's experiment
//! (written by `poptune_view::report`), or its TensorBoard files (`--tensorboard`, written by
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
    print!("{files}");
    Ok(())
}
