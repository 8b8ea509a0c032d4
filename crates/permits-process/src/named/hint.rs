//! The futex wake hint of a named semaphore: a counter in `<dir>/futex`,
//! mapped shared by every handle, that a releaser bumps and wakes
//! (`FUTEX_WAKE_OP`) right after unlocking its slot, and on which a waiter
//! sleeps instead of on its inotify watch (issue 12: a futex wake between
//! processes is several times faster than an inotify event).
//!
//! It is only a hint. The slot files' `flock`s stay the only truth about
//! who holds what; a waiter reads the counter *before* it looks at the
//! queue and the slots, then waits only while the counter still has that
//! value, so a release after its look cannot be missed by a releaser that
//! bumps. A release that does not bump (a holder killed, a slot held by a
//! command that inherited it and exited, a handle whose `futex` file was
//! replaced, or truncated: see [`sys::SharedWord`]) still raises its
//! inotify event, and a hinted waiter checks its watch every [`SLICE`]: a
//! lost wake costs at most that much latency. Nothing here needs cleaning
//! up: the file holds one number and no lock, and whatever it says, a
//! waiter wakes at least every [`SLICE`].

use super::semaphore::earlier;
use crate::lock;
use crate::sys::{self, Access, SharedWord, WordWait};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest a hinted waiter sleeps on the futex before it checks its
/// inotify watch for a release that bumped nothing (and so the most such
/// a release costs it). The same as the shortest nap of a waiter with no
/// inotify watch.
pub(super) const SLICE: Duration = Duration::from_millis(10);

/// What a handle knows of the `futex` file.
#[derive(Debug)]
enum State {
    /// Not tried yet (a handle maps it on its first release or wait).
    Unmapped,
    /// Mapped (and at the path when last checked).
    Mapped(Arc<SharedWord>),
    /// It could not be used (not a regular file, too short, a symbolic
    /// link, no rights): waits use inotify alone. Tried again at the next
    /// blocking wait, not at every release.
    Unavailable,
}

/// A handle's view of the hint.
#[derive(Debug)]
pub(super) struct Hint {
    path: PathBuf,
    access: Access,
    state: Mutex<State>,
    /// How many waits of this handle a hint ended (a test's proof that the
    /// futex path carried a wake).
    #[cfg(test)]
    pub(super) hinted: std::sync::atomic::AtomicU64,
}

impl Hint {
    pub(super) fn new(dir: &Path, access: Access) -> Hint {
        Hint {
            path: dir.join("futex"),
            access,
            state: Mutex::new(State::Unmapped),
            #[cfg(test)]
            hinted: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The word for a waiter: mapped now if needed, and mapped again if
    /// the path names another file than the one mapped (deleted and
    /// recreated). `None`: wait on inotify alone.
    pub(super) fn for_wait(&self) -> Option<Arc<SharedWord>> {
        let mut state = lock(&self.state);
        if let State::Mapped(word) = &*state {
            if word.is_at(&self.path).unwrap_or(false) {
                return Some(Arc::clone(word));
            }
        }
        *state = self.map();
        match &*state {
            State::Mapped(word) => Some(Arc::clone(word)),
            _ => None,
        }
    }

    /// Bumps the counter and wakes every waiter, after a release (or
    /// anything else waiters must look at: a waiter leaving, a probe).
    /// Failures are ignored: waiters then see the change within [`SLICE`]
    /// through inotify.
    pub(super) fn wake(&self) {
        let word = {
            let mut state = lock(&self.state);
            if let State::Unmapped = &*state {
                *state = self.map();
            }
            match &*state {
                State::Mapped(word) => Arc::clone(word),
                _ => return,
            }
        };
        let _ = word.bump_and_wake();
    }

    /// After [`wake`](Self::wake), off the hand-off's critical path: if
    /// the path now names another file (deleted and recreated), map that
    /// one and wake its waiters too, so that this handle's later releases
    /// reach them.
    pub(super) fn follow(&self) {
        let word = {
            let mut state = lock(&self.state);
            match &*state {
                State::Mapped(word) if !word.is_at(&self.path).unwrap_or(false) => {}
                _ => return,
            }
            *state = self.map();
            match &*state {
                State::Mapped(word) => Arc::clone(word),
                _ => return,
            }
        };
        let _ = word.bump_and_wake();
    }

    /// Opens (creating it with the state files' mode) and maps the file.
    fn map(&self) -> State {
        let mapped = sys::open_file(&self.path, Some(self.access)).and_then(SharedWord::map);
        match mapped {
            Ok(Some(word)) => State::Mapped(Arc::new(word)),
            Ok(None) | Err(_) => State::Unavailable,
        }
    }
}

/// Waits on `word` while it holds `seen` (read before the waiter's last
/// look), until `deadline`, checking `watch` every [`SLICE`] for a change
/// that bumped nothing; `false` once the deadline passed. If the futex call
/// fails (the file was truncated under the mapping), the rest of this wait
/// is on `watch` alone.
pub(super) fn wait(
    hint: &Hint,
    word: &SharedWord,
    seen: u32,
    watch: Option<&sys::DirWatch>,
    deadline: Option<Instant>,
    backoff: &mut Duration,
) -> io::Result<bool> {
    loop {
        let now = Instant::now();
        let slice_end = earlier(deadline, now.checked_add(SLICE)).unwrap_or(now);
        match word.wait(seen, slice_end) {
            Ok(WordWait::Changed) => {
                // Relaxed: a statistic; the test reads it after joining this
                // thread, and the join orders this add before that read.
                #[cfg(test)]
                hint.hinted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                #[cfg(not(test))]
                let _ = hint;
                return Ok(true);
            }
            Ok(WordWait::TimedOut) => {}
            Err(_) => return super::semaphore::wait_change(watch, deadline, backoff),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
        match watch {
            // Something changed without a bump (a release by the kernel,
            // a waiter gone): look again.
            Some(watch) if watch.take_pending()? => return Ok(true),
            Some(_) => {}
            // No watch: a slice is a rescan (as the inotify-less nap).
            None => return Ok(true),
        }
    }
}
