//! `poptune report DIR`: the report of an experiment directory or a store's experiment
//! (written by `poptune_view::report`).

use std::path::PathBuf;

use clap::Args;

use crate::CliError;

#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub source: crate::commands::Source,
    /// Where to write the report (default: the experiment directory's report/; for --store,
    /// the shared directory's).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &ReportArgs) -> Result<(), CliError> {
    let crate::commands::Opened {
        store,
        def,
        dir,
        place,
    } = args.source.open()?;
    let out = args.out.clone().unwrap_or_else(|| dir.join("report"));
    let files = poptune_view::report::write(store.as_ref(), &def, &out, &place.to_string())
        .map_err(|e| match e {
            poptune_view::ViewError::NoSteps(_) => CliError::usage(e),
            e => CliError::from(e),
        })?;
    print!("{files}");
    Ok(())
}
