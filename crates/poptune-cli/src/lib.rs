//! The `poptune` command's faces: arguments and subcommands, experiment files, the toy's
//! figure. Execution is `poptune-run`'s; the live view and reports are `poptune-view`'s.

pub mod commands;
pub mod config;
pub mod dashboard;
pub mod inspect;
pub mod json;
pub mod pg;
pub mod plot;
pub mod report;
pub mod toy;

/// A command's failure: a message and the exit code it maps to (2 for bad input, 1 for a
/// failure while running).
#[derive(Debug)]
pub struct CliError {
    inner: anyhow::Error,
    code: u8,
}

impl CliError {
    /// Bad input from the user: exit code 2.
    pub fn usage(e: impl Into<anyhow::Error>) -> Self {
        CliError {
            inner: e.into(),
            code: 2,
        }
    }

    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if f.alternate() {
            write!(f, "{:#}", self.inner)
        } else {
            write!(f, "{}", self.inner)
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(e: E) -> Self {
        let inner = e.into();
        // Execution's usage errors (a wrong definition, a directory another process runs)
        // are bad input: exit code 2, as the command's own.
        let usage = inner
            .downcast_ref::<poptune_run::RunError>()
            .is_some_and(poptune_run::RunError::is_usage)
            || inner
                .downcast_ref::<poptune_store::StoreError>()
                .is_some_and(poptune_store::StoreError::is_usage);
        CliError {
            inner,
            code: if usage { 2 } else { 1 },
        }
    }
}

impl CliError {
    /// The run was interrupted (Ctrl-C, SIGTERM): exit code 130.
    pub fn interrupted() -> Self {
        CliError {
            inner: anyhow::anyhow!("interrupted; run the same command to continue"),
            code: 130,
        }
    }
}
