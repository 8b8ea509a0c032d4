//! The inotify watches a [`NamedSemaphore`](super::NamedSemaphore) handle
//! keeps for its blocking acquires, so that a wait does not open and close
//! an inotify instance each time.
//!
//! Closing an inotify descriptor waits for the kernel to tear its marks
//! down (an RCU grace period, milliseconds on a busy machine): one
//! instance per acquire made every blocking hand-off wait that long (issue
//! 12, finding 6). A handle keeps the watches its waiters used and lends
//! one to each waiter: a waiter needs its own, because reading the events
//! consumes them.
//!
//! A kept watch stays armed between waits, so it collects events nobody
//! reads; they are discarded when it is lent again, *before* the waiter
//! looks at the state, so nothing that happens after the look is lost
//! (at worst a discarded event was already seen by that look). A watch is
//! only lent for the state directory and queue it was made for: when
//! either was deleted and recreated (the watch would see nothing), it is
//! closed and a new one made.

use crate::lock;
use crate::sys::{self, FileId};
use std::io;
use std::path::Path;
use std::sync::Mutex;

/// How many idle watches a handle keeps at most (each is an inotify
/// instance; the user's limit is `fs.inotify.max_user_instances`, often
/// 128). More concurrent waiters still work: their extra watches are
/// closed after use.
const KEEP: usize = 4;

/// A watch and the identities of the directories it watches.
#[derive(Debug)]
struct Kept {
    watch: sys::DirWatch,
    ids: [FileId; 2],
}

/// A handle's idle watches.
#[derive(Debug, Default)]
pub(super) struct Watches {
    idle: Mutex<Vec<Kept>>,
}

/// A watch lent to one waiter; goes back to the handle when dropped.
/// `None` inside when the user is out of inotify instances (the waiter
/// then rescans periodically).
#[derive(Debug)]
pub(super) struct Lent<'a> {
    pool: &'a Watches,
    kept: Option<Kept>,
}

impl Lent<'_> {
    /// The watch, if there is one.
    pub(super) fn get(&self) -> Option<&sys::DirWatch> {
        self.kept.as_ref().map(|k| &k.watch)
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(kept) = self.kept.take() {
            let mut idle = lock(&self.pool.idle);
            if idle.len() < KEEP {
                idle.push(kept);
                return;
            }
            drop(idle);
            drop(kept); // closed outside the lock: the close is the slow part
        }
    }
}

impl Watches {
    /// Lends a watch on `dir` and `queue` (which must exist) that wakes on
    /// releases, departures and pokes, with no event pending: one kept
    /// for the same directories, or a new one.
    pub(super) fn lend(&self, dir: &Path, queue: &Path) -> io::Result<Lent<'_>> {
        let ids = [sys::path_id(dir)?, sys::path_id(queue)?];
        let found = {
            let mut idle = lock(&self.idle);
            let (same, stale): (Vec<Kept>, Vec<Kept>) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|k| k.ids == ids);
            *idle = same;
            let found = idle.pop();
            drop(idle);
            drop(stale);
            found
        };
        let kept = match found {
            Some(kept) => {
                kept.watch.discard()?;
                Some(kept)
            }
            None => match sys::DirWatch::new(&[dir, queue], true) {
                Ok(watch) => Some(Kept { watch, ids }),
                Err(e) if sys::out_of_watches(&e) => None,
                Err(e) => return Err(e),
            },
        };
        Ok(Lent { pool: self, kept })
    }
}
