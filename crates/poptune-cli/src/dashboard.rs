//! `poptune dashboard`: the live, read-only dashboard of an experiment, a folder of them or a
//! PostgreSQL store (served by `poptune_dashboard`; docs/dashboard.md).

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;
use poptune_dashboard::{Options, TokenPolicy};

use crate::CliError;

#[derive(Args, Debug)]
pub struct DashboardArgs {
    /// An experiment directory, or a folder whose subfolders are experiment directories.
    pub dir: Option<PathBuf>,
    /// A PostgreSQL store (postgres://USER@HOST/DB) instead of DIR.
    #[arg(long, value_name = "URL", conflicts_with = "dir")]
    pub store: Option<String>,
    /// Show only this experiment.
    #[arg(long)]
    pub experiment: Option<String>,
    /// The port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The address to listen on. Any other than 127.0.0.1 or ::1 requires the random access
    /// token the command prints (as ?token= in the URL it prints).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Require the random access token on 127.0.0.1 too.
    #[arg(long)]
    pub token: bool,
}

/// Serves the dashboard until the process is stopped (Ctrl-C).
pub fn run(args: &DashboardArgs) -> Result<(), CliError> {
    let base = match (&args.dir, &args.store) {
        (Some(dir), None) => Options::dir(dir.clone()),
        (None, Some(url)) => Options::store(url.clone()),
        _ => {
            return Err(CliError::usage(anyhow!(
                "give an experiment directory (or a folder of them), or --store URL: e.g. \
                 `poptune dashboard results/mnist1d`"
            )))
        }
    };
    let opts = Options {
        experiment: args.experiment.clone(),
        bind: args.bind,
        port: args.port,
        token: if args.token {
            TokenPolicy::Always
        } else {
            TokenPolicy::Auto
        },
        ..base
    };
    let server = poptune_dashboard::serve(opts).map_err(|e| {
        if e.is_usage() {
            CliError::usage(e)
        } else {
            CliError::from(e)
        }
    })?;
    println!("poptune dashboard: open {}", server.url());
    if !server.addr().ip().is_loopback() {
        println!(
            "listening on {}; every request needs the token in the URL above",
            server.addr()
        );
    }
    println!("(read-only; Ctrl-C stops it)");
    server.run_forever();
    Ok(())
}
