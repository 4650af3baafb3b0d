//! How a command ends, as its exit status: 0 admitted (or done), 1 denied, 2 error.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Admitted, or the command did what it was asked.
    Admitted,
    /// Denied (the verdict line says why).
    Denied,
    /// The command could not do its job (bad input, daemon down), already reported.
    Error,
}

/// Exit status of a command that could not do its job.
pub const ERROR: u8 = 2;

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        match e {
            Exit::Admitted => ExitCode::SUCCESS,
            Exit::Denied => ExitCode::FAILURE,
            Exit::Error => ExitCode::from(ERROR),
        }
    }
}

impl From<bool> for Exit {
    fn from(ok: bool) -> Self {
        if ok {
            Exit::Admitted
        } else {
            Exit::Denied
        }
    }
}
