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
    /// How many futex sleeps this handle's waiters began.
    #[cfg(test)]
    pub(super) sleeps: std::sync::atomic::AtomicU64,
}

impl Hint {
    pub(super) fn new(dir: &Path, access: Access) -> Hint {
        Hint {
            path: dir.join("futex"),
            access,
            state: Mutex::new(State::Unmapped),
            #[cfg(test)]
            hinted: std::sync::atomic::AtomicU64::new(0),
            #[cfg(test)]
            sleeps: std::sync::atomic::AtomicU64::new(0),
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
        // Release: pairs with the Acquire load in the tests, which release
        // a slot only after seeing this, so after `seen` was read.
        #[cfg(test)]
        hint.sleeps
            .fetch_add(1, std::sync::atomic::Ordering::Release);
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

#[cfg(all(test, target_os = "linux", not(permits_unsupported)))]
mod tests {
    use super::*;
    use crate::named::{NamedSemaphore, NamedStatus};
    use crate::AcquireError;
    use std::fs::{self, File};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    /// A private directory for one test, removed when dropped.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let path =
                std::env::temp_dir().join(format!("permits-hint-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir(&path).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
            Dir(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn open(dir: &Dir, name: &str) -> NamedSemaphore {
        NamedSemaphore::options(name)
            .capacity(1)
            .dir(&dir.0)
            .open()
            .unwrap()
    }

    /// Yields until `sem`'s waiters began `n` futex sleeps in all.
    fn until_sleeping(sem: &NamedSemaphore, n: u64) {
        // Acquire: pairs with the Release add in `wait`, made after the
        // waiter read the counter it sleeps on.
        while sem.inner.hint.sleeps.load(Ordering::Acquire) < n {
            std::thread::yield_now();
        }
    }

    /// Waits (yielding) until `sem` shows `n` queued waiters.
    fn until_queued(sem: &NamedSemaphore, n: usize) {
        while sem.status().map(|s: NamedStatus| s.waiters).unwrap_or(0) < n {
            std::thread::yield_now();
        }
    }

    /// The point of the hint (issue 12): a release in one handle reaches a
    /// waiter of another handle (its own mapping of `futex`, as another
    /// process's would be) through the futex, not through inotify. Before
    /// the hint existed every wake came from an inotify event.
    #[test]
    fn a_release_wakes_a_waiter_through_the_futex() {
        let dir = Dir::new("wake");
        let holder = open(&dir, "wake");
        let waiter = open(&dir, "wake");
        let permit = holder.try_acquire().unwrap();
        std::thread::scope(|s| {
            let got = s.spawn(|| waiter.acquire_timeout(Duration::from_secs(60)));
            until_sleeping(&waiter, 1);
            drop(permit);
            let got = got.join().unwrap().unwrap();
            assert!(holder.try_acquire().unwrap_err().is_no_permits());
            drop(got);
        });
        assert!(waiter.inner.hint.hinted.load(Ordering::Relaxed) >= 1);
    }

    /// A `futex` file cut to nothing under the mappings: touching the
    /// mapped page from user space would raise SIGBUS; the kernel's futex
    /// calls report EFAULT instead and `pread` comes up short, so nothing
    /// crashes, and the waiter is handed the slot through inotify with
    /// the bound of one holder kept.
    #[test]
    fn a_truncated_futex_file_neither_crashes_nor_lets_two_in() {
        let dir = Dir::new("trunc");
        let holder = open(&dir, "trunc");
        let waiter = open(&dir, "trunc");
        let path = holder.path().join("futex");
        holder.inner.hint.wake(); // maps it
        let word = waiter.inner.hint.for_wait().unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();

        assert_eq!(word.load().unwrap(), None);
        assert!(word.bump_and_wake().is_err());
        let soon = Instant::now() + Duration::from_secs(5);
        assert!(word.wait(0, soon).is_err());
        holder.inner.hint.wake(); // must not crash either

        let permit = holder.try_acquire().unwrap();
        std::thread::scope(|s| {
            let got = s.spawn(|| waiter.acquire_timeout(Duration::from_secs(60)));
            until_queued(&holder, 1);
            assert!(holder.try_acquire().unwrap_err().is_no_permits());
            drop(permit);
            let got = got.join().unwrap().unwrap();
            assert!(holder.try_acquire().unwrap_err().is_no_permits());
            assert_eq!(holder.status().unwrap().held, 1);
            drop(got);
        });
        // The next handle extends the empty file again: the hint works.
        let late = open(&dir, "trunc");
        let word = late.inner.hint.for_wait().unwrap();
        assert!(word.load().unwrap().is_some());
    }

    /// A `futex` file replaced (deleted and recreated) while handles have
    /// the old one mapped: a waiter maps the new one when it starts
    /// waiting, a releaser follows it after its wake, and the hand-off
    /// keeps the bound.
    #[test]
    fn a_replaced_futex_file_is_followed() {
        let dir = Dir::new("replace");
        let holder = open(&dir, "replace");
        let waiter = open(&dir, "replace");
        let path = holder.path().join("futex");
        holder.inner.hint.wake();
        let old = waiter.inner.hint.for_wait().unwrap();
        fs::remove_file(&path).unwrap();
        fs::write(&path, [7u8; 4]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let new = waiter.inner.hint.for_wait().unwrap();
        assert!(!old.is_at(&path).unwrap());
        assert!(new.is_at(&path).unwrap());
        assert_eq!(new.load().unwrap(), Some(u32::from_ne_bytes([7; 4])));

        let permit = holder.try_acquire().unwrap();
        std::thread::scope(|s| {
            let got = s.spawn(|| waiter.acquire_timeout(Duration::from_secs(60)));
            until_sleeping(&waiter, 1);
            drop(permit);
            let got = got.join().unwrap().unwrap();
            assert!(holder.try_acquire().unwrap_err().is_no_permits());
            drop(got);
        });
        // The holder's release followed the file: its handle maps the new one.
        let State::Mapped(word) = &*lock(&holder.inner.hint.state) else {
            panic!("the releaser lost its mapping");
        };
        assert!(word.is_at(&path).unwrap());
    }

    /// What is not a 4-byte regular file is refused (never mapped beyond
    /// its end): waits then use inotify alone, and still hand slots on.
    #[test]
    fn a_short_or_odd_futex_file_falls_back_to_inotify() {
        let dir = Dir::new("short");
        let holder = open(&dir, "short");
        let path = holder.path().join("futex");
        fs::write(&path, [1u8; 2]).unwrap();
        let file = sys::open_file(&path, None).unwrap();
        assert!(SharedWord::map(file).unwrap().is_none());
        let waiter = open(&dir, "short");
        assert!(waiter.inner.hint.for_wait().is_none());

        let permit = holder.try_acquire().unwrap();
        std::thread::scope(|s| {
            let got = s.spawn(|| waiter.acquire_timeout(Duration::from_secs(60)));
            until_queued(&holder, 1);
            drop(permit);
            let got = got.join().unwrap();
            assert!(matches!(got, Ok(_)), "{got:?}");
            assert!(matches!(holder.try_acquire(), Err(AcquireError::NoPermits)));
        });
        assert_eq!(waiter.inner.hint.hinted.load(Ordering::Relaxed), 0);

        // A directory in its place is refused too.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        let other = open(&dir, "short");
        assert!(other.inner.hint.for_wait().is_none());
    }
}
