//! `permits`: bound how many commands run at once.
//!
//! A thin `main`: parse the flags (bad input fails there, before anything
//! runs, with a one-line message and status 2), run the subcommand, and map
//! its outcome to one exit status. Linux only for now: elsewhere it says so
//! and exits with status 2.

#[cfg(target_os = "linux")]
mod args;
#[cfg(target_os = "linux")]
mod batch;
#[cfg(target_os = "linux")]
mod exit;
mod fleet;
#[cfg(target_os = "linux")]
mod generate;
#[cfg(target_os = "linux")]
mod items;
#[cfg(target_os = "linux")]
mod joblog;
#[cfg(target_os = "linux")]
mod make;
#[cfg(target_os = "linux")]
mod named;
#[cfg(target_os = "linux")]
mod proc;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod serve;
#[cfg(target_os = "linux")]
mod signals;
#[cfg(target_os = "linux")]
mod spool;

use std::fmt;
use std::process::ExitCode;

/// Why a subcommand could not do its job: a message and an exit status.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// Bad usage that only shows after parsing (status 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::with_code(2, message)
    }

    /// Any other failure (status 1).
    pub fn other(message: impl Into<String>) -> Failure {
        Failure::with_code(1, message)
    }

    /// A failed system call, with what we were doing.
    pub fn io(doing: &str, e: std::io::Error) -> Failure {
        Failure::other(format!("{doing}: {e}"))
    }

    /// A bug in permits itself.
    pub fn internal(message: &str) -> Failure {
        Failure::other(format!("internal error: {message}"))
    }

    /// A named semaphore that could not be opened. A capacity mismatch, a
    /// bad name and an unsafe directory are usage errors (status 2). The
    /// name is added only to messages that do not already give it.
    #[cfg(target_os = "linux")]
    pub fn named(name: &str, e: permits_process::named::NamedError) -> Failure {
        use permits_process::named::NamedError;
        let code = match e {
            NamedError::CapacityMismatch { .. }
            | NamedError::InvalidName { .. }
            | NamedError::InsecureDirectory { .. } => 2,
            _ => 1,
        };
        let names_it = matches!(
            e,
            NamedError::CapacityMismatch { .. }
                | NamedError::InvalidName { .. }
                | NamedError::NotFound { .. }
        );
        if names_it {
            Failure::with_code(code, e.to_string())
        } else {
            Failure::with_code(code, format!("semaphore {name:?}: {e}"))
        }
    }

    /// A failure with an explicit exit status.
    pub fn with_code(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code: u8::try_from(code).unwrap_or(1),
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(target_os = "linux")]
fn main() -> ExitCode {
    use args::{Cli, Command};
    use clap::Parser;

    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(a) => match a.fleet.redis.clone() {
            Some(url) => fleet::run(a, &url),
            None => named::run(a),
        },
        Command::Batch(a) => batch::run(a),
        Command::Wait(a) => match a.redis.clone() {
            Some(url) => fleet::wait(a, &url),
            None => named::wait(a),
        },
        Command::Status(a) => match a.redis.clone() {
            Some(url) => fleet::status(a, &url),
            None => named::status(a),
        },
        Command::Serve(a) => serve::run(a),
        Command::Generate(a) => generate::run(a),
        Command::FleetWatchdog => fleet::watchdog(),
    };
    match outcome {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(failure) => {
            eprintln!("permits: {failure}");
            ExitCode::from(failure.code)
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() -> ExitCode {
    let failure = Failure::usage("this platform is not supported yet (Linux only)");
    eprintln!("permits: {failure}");
    ExitCode::from(failure.code)
}
