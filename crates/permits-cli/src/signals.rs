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
    let mut signals = Signals::new(TERMINATION)?;
    thread::Builder::new()
        .name("permits-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                f(sig);
            }
        })?;
    Ok(())
}
