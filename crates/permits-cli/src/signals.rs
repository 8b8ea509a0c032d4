//! Termination signals (`SIGINT`, `SIGTERM`, `SIGHUP`, `SIGQUIT`): caught
//! by a thread of their own and handed to a callback, which forwards them
//! to a child or stops a batch. Only the binary installs handlers.

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io;
use std::thread;

/// The signals `permits` forwards or reacts to.
pub const TERMINATION: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

/// Calls `f` with each termination signal this process receives, from a
/// background thread, for the rest of the process's life.
pub fn on_termination(f: impl Fn(i32) + Send + 'static) -> io::Result<()> {
    Catcher::new()?.hand_to(f)
}

/// Termination signals caught from the moment it is made (they no longer
/// end the process) and kept until [`hand_to`](Self::hand_to) gives them
/// to a callback: for catching them before the thing they are for exists,
/// such as a child that must not outlive an unforwarded `SIGTERM`.
pub struct Catcher(Signals);

impl Catcher {
    /// Starts catching.
    pub fn new() -> io::Result<Self> {
        Signals::new(TERMINATION).map(Catcher)
    }

    /// Calls `f` with each signal caught so far and from now on, from a
    /// background thread, for the rest of the process's life.
    pub fn hand_to(self, f: impl Fn(i32) + Send + 'static) -> io::Result<()> {
        let mut signals = self.0;
        thread::Builder::new()
            .name("permits-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    f(sig);
                }
            })?;
        Ok(())
    }
}
