//! The `poptune` command as a library: experiment files, the durable runner, trainables (external
//! processes or in-process Rust code), reports. The `poptune` binary is a thin layer over it,
//! and other binaries (such as `poptune-burn`) run their in-process trainables through it.

pub mod commands;
pub mod config;
pub mod decisions;
pub mod distributed;
pub mod durable;
pub mod external;
pub mod inprocess;
pub mod plot;
pub mod report;
pub mod serve;
pub mod toy;
pub mod worker;

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
        CliError {
            inner: e.into(),
            code: 1,
        }
    }
}
