//! [`NamedSemaphore`]: opening (creating, joining, checking the capacity
//! in force, repairing missing files), acquiring (slots, the ticket queue,
//! waiting on inotify) and looking inside (status, wait for idle).

use super::files::{self, Ticket};
use super::location::{base_dir, checked, exists, into_io};
use super::status::{now_ms, record_text};
use super::watch::Watches;
use super::{check_name, Holder, NamedError, NamedOptions, NamedPermit, NamedStatus, Waiter};
use crate::error::AcquireError;
use crate::lock;
use crate::sys::{self, Access, LockKind};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A slot file's open description and the fork count ([`sys::forks`])
/// from before it was opened.
type Opened = (File, Option<u64>);

/// A counting semaphore shared by unrelated processes of one user through
/// a name; a permit held by a process that dies, even by `SIGKILL`, comes
/// back by itself. See the [module docs](crate::named) for the design.
///
/// # Examples
///
/// ```
/// use permits_process::named::NamedSemaphore;
///
/// # let dir = std::env::temp_dir().join(format!("permits-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
/// let sem = NamedSemaphore::options("doc-example")
///     .capacity(2)
///     # .dir(&dir)
///     .label("example")
///     .open()?;
/// let a = sem.try_acquire()?;
/// let b = sem.acquire()?;
/// assert!(sem.try_acquire().unwrap_err().is_no_permits());
/// let status = sem.status()?;
/// assert_eq!((status.capacity, status.held), (2, 2));
/// assert_eq!(status.holders[0].pid, Some(std::process::id()));
/// drop(a);
/// assert!(sem.acquire_timeout(std::time::Duration::from_secs(5)).is_ok());
/// # drop(b); drop(sem); std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct NamedSemaphore {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) name: String,
    pub(super) dir: PathBuf,
    queue: PathBuf,
    capacity: usize,
    pub(super) label: Option<String>,
    reclaimed: bool,
    /// Who may use the directory: the mode of the files we create.
    pub(super) access: Access,
    /// Held (shared lock) while this handle lives.
    _users: File,
    /// The state directory, shared-locked too while this handle lives (a
    /// deleted `users` file cannot hide this handle). Slot files are
    /// looked up in it, not by path: a handle whose directory was deleted
    /// (and perhaps made again by a new opener, with another capacity)
    /// takes no slot in its successor.
    dir_lock: File,
    /// Descriptions of free slots, kept open so that failed attempts close
    /// nothing (a close would wake every waiter); one a fork may have
    /// copied into a child is not locked again (see `try_slot`).
    idle: Mutex<Vec<Option<Opened>>>,
    /// `wake`, kept open once introspection poked it (see `probe_slots`).
    poker: Mutex<Option<File>>,
    /// Inotify watches lent to blocking acquires (see `watch.rs`).
    watches: Watches,
    /// Tickets of this handle's released permits, whose files are removed
    /// at its next acquire (or when it is dropped): an unlink is a journal
    /// write, kept off the release that hands the slot on. An unlocked
    /// ticket already reads as a departed waiter's.
    pub(super) spent: Mutex<Vec<Ticket>>,
}

impl NamedSemaphore {
    /// The largest capacity (one file per permit).
    pub const MAX_CAPACITY: usize = 4096;

    /// Opens the semaphore `name` with `capacity` permits, creating it if
    /// needed.
    ///
    /// # Errors
    ///
    /// As [`NamedOptions::open`].
    pub fn open(name: &str, capacity: usize) -> Result<NamedSemaphore, NamedError> {
        NamedSemaphore::options(name).capacity(capacity).open()
    }

    /// Joins the existing semaphore `name`, whatever its capacity.
    ///
    /// # Errors
    ///
    /// [`NamedError::NotFound`] if it does not exist; else as
    /// [`NamedOptions::open`].
    pub fn join(name: &str) -> Result<NamedSemaphore, NamedError> {
        NamedSemaphore::options(name).open()
    }

    /// Options for the semaphore `name`.
    pub fn options(name: &str) -> NamedOptions {
        NamedOptions {
            name: name.to_owned(),
            capacity: None,
            dir: None,
            label: None,
        }
    }

    pub(super) fn open_with(options: NamedOptions) -> Result<NamedSemaphore, NamedError> {
        let NamedOptions {
            name,
            capacity,
            dir,
            label,
        } = options;
        check_name(&name)?;
        if let Some(c) = capacity {
            if c == 0 || c > Self::MAX_CAPACITY {
                return Err(NamedError::InvalidCapacity { requested: c });
            }
        }
        let base = match dir {
            Some(dir) => dir,
            None => Self::default_dir()?,
        };
        let dir = base.join(&name);
        // Joining creates nothing: a missing name is simply not found.
        let Some(access) = base_dir(&base, capacity.is_some())? else {
            return Err(NamedError::NotFound { name });
        };
        if capacity.is_none() && !exists(&dir)? {
            return Err(NamedError::NotFound { name });
        }

        // Everything below runs under the per-name initialisation lock.
        let init = sys::open_file(&base.join(format!("{name}.lock")), Some(access))?;
        sys::lock_file(&init, LockKind::Exclusive, true)?;

        let queue = dir.join("q");
        let boot = sys::boot_id()?;
        let (dir_exists, existing) = match checked(&dir, None) {
            Ok(_) => (true, files::read_state(&dir, &boot)?),
            Err(NamedError::Io(e)) if e.kind() == io::ErrorKind::NotFound => (false, None),
            Err(e) => return Err(e),
        };
        let existing = match existing {
            // Another boot's id, yet in use: no lock survives a reboot, so
            // `meta` was damaged (cut short in its boot line, say) and the
            // state is this boot's. Kept, never reset under its users.
            Some(mut state)
                if state.meta.boot != boot && files::in_use(&dir, state.meta.capacity, access)? =>
            {
                state.meta.boot.clone_from(&boot);
                state.rewrite_meta = true;
                Some(state)
            }
            other => other,
        };
        let mut reclaimed = false;
        let capacity = match (existing, capacity) {
            (None, None) => return Err(NamedError::NotFound { name }),
            (None, Some(c)) => {
                // Nothing readable (`meta` and `slot.0` deleted or
                // damaged), yet the directory may be in use: its capacity
                // is unknown, and it is not reset under its users.
                if dir_exists && files::in_use(&dir, 0, access)? {
                    return Err(NamedError::Corrupt {
                        path: dir.join("meta"),
                    });
                }
                checked(&dir, Some(access))?;
                files::reset(&dir, c, &boot, access)?;
                c
            }
            (Some(state), requested) if state.meta.boot != boot => {
                reclaimed = true;
                let c = requested.unwrap_or(state.meta.capacity);
                files::reset(&dir, c, &boot, access)?;
                c
            }
            (Some(state), None) => {
                files::repair(&dir, &state, access)?;
                state.meta.capacity
            }
            (Some(state), Some(c)) if c == state.meta.capacity => {
                files::repair(&dir, &state, access)?;
                c
            }
            (Some(state), Some(c)) => {
                // A new capacity only for a semaphore nobody uses: no
                // handle open, no slot held (by anyone: a `--bg` command
                // holds one without a handle), no waiter.
                if files::in_use(&dir, state.meta.capacity, access)? {
                    return Err(NamedError::CapacityMismatch {
                        name,
                        existing: state.meta.capacity,
                        requested: c,
                    });
                }
                files::reset(&dir, c, &boot, access)?;
                c
            }
        };
        checked(&queue, Some(access))?;
        let users = sys::open_file(&dir.join("users"), Some(access))?;
        sys::lock_file(&users, LockKind::Shared, true)?;
        let dir_lock = sys::open_dir(&dir)?;
        sys::lock_file(&dir_lock, LockKind::Shared, true)?;
        drop(init);

        Ok(NamedSemaphore {
            inner: Arc::new(Inner {
                name,
                dir,
                queue,
                capacity,
                label,
                reclaimed,
                access,
                _users: users,
                dir_lock,
                idle: Mutex::new((0..capacity).map(|_| None).collect()),
                poker: Mutex::new(None),
                watches: Watches::default(),
                spent: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The capacity, N.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// The directory holding this semaphore's state.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// Whether opening found state from an earlier boot and reset it.
    pub fn reclaimed_stale_state(&self) -> bool {
        self.inner.reclaimed
    }

    /// Takes a permit if one is free and no running waiter is queued
    /// (stopped waiters are passed over).
    ///
    /// # Errors
    ///
    /// [`AcquireError::NoPermits`] (also when running waiters are queued:
    /// it does not barge), [`AcquireError::Io`].
    pub fn try_acquire(&self) -> Result<NamedPermit, AcquireError> {
        self.remove_spent_tickets();
        if self.queue_has_live_tickets()? {
            return Err(AcquireError::NoPermits);
        }
        self.try_slots()?.ok_or(AcquireError::NoPermits)
    }

    /// Waits for a permit, in arrival order (waiters whose process is
    /// stopped are passed over, and keep their place).
    ///
    /// # Errors
    ///
    /// [`AcquireError::Io`].
    ///
    /// # Blocking
    ///
    /// Sleeps in `poll(2)` on an inotify watch (kept by the handle between
    /// acquires) until a permit is free and this waiter is at the head of
    /// the queue; `EINTR` is retried. Behind
    /// other waiters it also wakes every [`PASS_OVER`] to see whether they
    /// were stopped.
    pub fn acquire(&self) -> Result<NamedPermit, AcquireError> {
        self.acquire_until(None)
    }

    /// [`acquire`](Self::acquire) for at most `timeout` (a deadline
    /// computed once).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire), plus [`AcquireError::TimedOut`].
    ///
    /// # Blocking
    ///
    /// At most about `timeout`.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<NamedPermit, AcquireError> {
        self.acquire_until(Instant::now().checked_add(timeout))
    }

    /// [`acquire`](Self::acquire) until at most `deadline`.
    ///
    /// # Errors
    ///
    /// As [`acquire_timeout`](Self::acquire_timeout).
    ///
    /// # Blocking
    ///
    /// Until at most `deadline`.
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<NamedPermit, AcquireError> {
        self.acquire_until(Some(deadline))
    }

    fn acquire_until(&self, deadline: Option<Instant>) -> Result<NamedPermit, AcquireError> {
        self.remove_spent_tickets();
        if !self.queue_has_live_tickets()? {
            if let Some(permit) = self.try_slots()? {
                return Ok(permit);
            }
        }
        // Watch before queueing, so no release after this point is missed.
        let watch = self.lend_watch()?;
        let record = record_text(sys::pid(), now_ms(), self.inner.label.as_deref());
        let ticket = Ticket::create(&self.inner.queue, self.inner.access, &record)?;
        let mut backoff = Duration::from_millis(10);
        // Once no ticket at all is ahead, none ever will be: the queue is
        // not read again (a read was a tenth of a hand-off's latency).
        let mut first = false;
        loop {
            let ahead = if first {
                0
            } else {
                let (ahead, none) = ticket.ahead(&self.inner.queue)?;
                first = none;
                ahead
            };
            if ahead == 0 {
                if let Some(permit) = self.try_slots()? {
                    return Ok(with_ticket(permit, ticket));
                }
            }
            // Behind someone: look again within PASS_OVER even without an
            // event, since a waiter being stopped raises none.
            let nap = match ahead {
                0 => deadline,
                _ => earlier(deadline, Instant::now().checked_add(PASS_OVER)),
            };
            let woke = wait_change(watch.get(), nap, &mut backoff)?;
            if !woke && deadline.is_some_and(|d| Instant::now() >= d) {
                // Out of time: one last look, then leave the queue.
                if first || ticket.ahead(&self.inner.queue)?.0 == 0 {
                    if let Some(permit) = self.try_slots()? {
                        return Ok(with_ticket(permit, ticket));
                    }
                }
                return Err(AcquireError::TimedOut);
            }
        }
    }

    /// Removes the files of the tickets this handle's released permits
    /// waited with (see `Inner::spent`), outside the lock.
    fn remove_spent_tickets(&self) {
        let spent = std::mem::take(&mut *lock(&self.inner.spent));
        drop(spent);
    }

    /// Whether any waiter that is not stopped is queued (dead tickets are
    /// removed): then a newcomer does not take a free slot.
    fn queue_has_live_tickets(&self) -> io::Result<bool> {
        Ok(files::live_tickets(&self.inner.queue, None, files::Count::Active)? > 0)
    }

    /// Tries every slot once; never blocks.
    fn try_slots(&self) -> io::Result<Option<NamedPermit>> {
        for slot in 0..self.inner.capacity {
            if let Some(permit) = self.try_slot(slot)? {
                return Ok(Some(permit));
            }
        }
        Ok(None)
    }

    /// Tries one slot. The lock counts only if it is on the file the
    /// slot's name names now in this handle's directory: a lock on a
    /// deleted or replaced file (a cached description, or a race with the
    /// deletion) is given up and the current file tried; a missing file is
    /// recreated (an i/o error if the directory itself was deleted).
    fn try_slot(&self, slot: usize) -> io::Result<Option<NamedPermit>> {
        let name = files::slot_name(slot);
        let mut cached = lock(&self.inner.idle)[slot].take();
        loop {
            let (file, forks) = match cached.take() {
                // Only a description no child can share is locked again: a
                // fork since it was opened copied it (and this handle's
                // cache) into the child, and a second `flock` on a
                // description that holds the lock succeeds, so parent and
                // child would both take the slot. A shared one is closed.
                Some((file, forks)) if forks.is_some() && forks == sys::forks() => (file, forks),
                _ => {
                    // Counted before the open: a fork after this count
                    // shows at the release (see `NamedPermit::drop`).
                    let forks = sys::forks();
                    let dir = &self.inner.dir_lock;
                    (
                        sys::open_file_in(dir, &name, Some(self.inner.access))?,
                        forks,
                    )
                }
            };
            if !sys::lock_file(&file, LockKind::Exclusive, false)? {
                let mut idle = lock(&self.inner.idle);
                if idle[slot].is_none() {
                    idle[slot] = Some((file, forks));
                }
                return Ok(None);
            }
            let Some(len) = sys::len_if_at(&file, &self.inner.dir_lock, &name)? else {
                // Not the slot any more: let go, then open what the path
                // names now (or create it).
                sys::unlock_file(&file)?;
                continue;
            };
            let pid = sys::pid();
            let mut permit = NamedPermit {
                slot,
                file: Some(file),
                forks_at_open: forks,
                locked_by: pid,
                holder: pid,
                since_ms: now_ms(),
                sem: self.clone(),
                inherited: Mutex::new(Vec::new()),
                ticket: None,
            };
            permit.record_over(Some(len))?;
            return Ok(Some(permit));
        }
    }

    /// Which slots are held right now (with each holder's record).
    ///
    /// Each free slot is probed with a shared lock on a read-only
    /// description (whose close wakes nobody). A probe can make an
    /// acquirer's attempt on that slot fail at that instant; so after a
    /// round with a successful probe, waiting acquirers are poked
    /// (`IN_ATTRIB` on `wake`, which [`wait_idle`](Self::wait_idle) does not
    /// watch, so it never wakes itself).
    fn probe_slots(&self) -> io::Result<Vec<Option<String>>> {
        let mut slots = Vec::with_capacity(self.inner.capacity);
        let mut probed_free = false;
        for slot in 0..self.inner.capacity {
            let mut file = match sys::open_read_only(&files::slot_path(&self.inner.dir, slot)) {
                Ok(file) => file,
                // Deleted: nobody can hold it through its path.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    slots.push(None);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if sys::lock_file(&file, LockKind::Shared, false)? {
                probed_free = true;
                slots.push(None);
            } else {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                slots.push(Some(text));
            }
        }
        if probed_free {
            let wake = sys::open_file(&self.inner.dir.join("wake"), Some(self.inner.access))?;
            sys::poke_file(&wake)?;
            // Closing `wake` (opened read-write) would raise IN_CLOSE_WRITE
            // and wake `wait_idle`: keep it open until the handle is gone.
            lock(&self.inner.poker).get_or_insert(wake);
        }
        Ok(slots)
    }

    /// Who holds which slot, and who waits (in queue order), each with
    /// its recorded pid, time and label and its process state now. Holders that died (even
    /// by `SIGKILL`) no longer appear. Free slots are probed with a shared
    /// lock (see the module's caveats).
    ///
    /// # Errors
    ///
    /// If the state files cannot be read.
    pub fn status(&self) -> io::Result<NamedStatus> {
        let holders: Vec<Holder> = self
            .probe_slots()?
            .into_iter()
            .enumerate()
            .filter_map(|(slot, record)| record.map(|text| Holder::parse(slot, &text)))
            .collect();
        let queue: Vec<Waiter> = files::queue_records(&self.inner.queue)?
            .iter()
            .map(|text| Waiter::parse(text))
            .collect();
        Ok(NamedStatus {
            capacity: self.inner.capacity,
            held: holders.len(),
            holders,
            waiters: queue.len(),
            queue,
        })
    }

    /// Waits until no permit is held (by anyone), without taking one and
    /// without holding up acquirers: "wait for every job to finish".
    /// Permits held by this process count too.
    ///
    /// # Errors
    ///
    /// [`AcquireError::Io`].
    ///
    /// # Blocking
    ///
    /// Sleeps in `poll(2)` on an inotify watch until the last holder
    /// releases (or dies).
    pub fn wait_idle(&self) -> Result<(), AcquireError> {
        self.wait_idle_until(None)
    }

    /// [`wait_idle`](Self::wait_idle) for at most `timeout` (a deadline
    /// computed once).
    ///
    /// # Errors
    ///
    /// [`AcquireError::TimedOut`] if it is still held then,
    /// [`AcquireError::Io`].
    ///
    /// # Blocking
    ///
    /// At most about `timeout`.
    pub fn wait_idle_timeout(&self, timeout: Duration) -> Result<(), AcquireError> {
        self.wait_idle_until(Instant::now().checked_add(timeout))
    }

    /// [`wait_idle`](Self::wait_idle) until at most `deadline`.
    ///
    /// # Errors
    ///
    /// As [`wait_idle_timeout`](Self::wait_idle_timeout).
    ///
    /// # Blocking
    ///
    /// Until at most `deadline`.
    pub fn wait_idle_deadline(&self, deadline: Instant) -> Result<(), AcquireError> {
        self.wait_idle_until(Some(deadline))
    }

    fn wait_idle_until(&self, deadline: Option<Instant>) -> Result<(), AcquireError> {
        let watch = self.watch(false)?;
        let idle =
            |sem: &Self| -> io::Result<bool> { Ok(sem.probe_slots()?.iter().all(Option::is_none)) };
        let mut backoff = Duration::from_millis(10);
        loop {
            if idle(self)? {
                return Ok(());
            }
            if !wait_change(watch.as_ref(), deadline, &mut backoff)? {
                return if !idle(self)? {
                    Err(AcquireError::TimedOut)
                } else {
                    Ok(())
                };
            }
        }
    }

    /// A watch for a blocking acquire, kept by this handle between
    /// acquires (see `watch.rs`): wakes on releases, departures and pokes.
    fn lend_watch(&self) -> io::Result<super::watch::Lent<'_>> {
        self.ensure_queue()?;
        self.inner.watches.lend(&self.inner.dir, &self.inner.queue)
    }

    /// The queue may have been deleted: recreate it to watch it.
    fn ensure_queue(&self) -> io::Result<()> {
        if !exists(&self.inner.queue)? {
            checked(&self.inner.queue, Some(self.inner.access)).map_err(into_io)?;
        }
        Ok(())
    }

    /// A new inotify watch on the state, or `None` when the user is out of
    /// inotify instances (then waits rescan periodically).
    fn watch(&self, pokes: bool) -> io::Result<Option<sys::DirWatch>> {
        self.ensure_queue()?;
        match sys::DirWatch::new(&[&self.inner.dir, &self.inner.queue], pokes) {
            Ok(watch) => Ok(Some(watch)),
            Err(e) if sys::out_of_watches(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// How long a waiter behind a stopped one may take to notice it (a stop
/// raises no inotify event; a release does, and is seen at once).
pub const PASS_OVER: Duration = Duration::from_secs(1);

/// The earlier of two optional deadlines (`None`: never).
fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A waiter got `permit`: its ticket leaves the queue at once (closed,
/// which wakes the waiters behind, see [`Ticket::leave`]) and its file is
/// removed when the permit is released, after the slot is handed on.
fn with_ticket(mut permit: NamedPermit, mut ticket: Ticket) -> NamedPermit {
    ticket.leave();
    permit.ticket = Some(ticket);
    permit
}

/// Waits for a change of the state directory, or the deadline; `false`
/// once the deadline passed. Without a watch (no inotify instance left),
/// naps 10 to 100 ms instead.
fn wait_change(
    watch: Option<&sys::DirWatch>,
    deadline: Option<Instant>,
    backoff: &mut Duration,
) -> io::Result<bool> {
    match watch {
        Some(watch) => watch.wait(deadline),
        None => {
            let nap = match deadline {
                Some(d) => (*backoff).min(d.saturating_duration_since(Instant::now())),
                None => *backoff,
            };
            std::thread::sleep(nap);
            *backoff = (*backoff * 2).min(Duration::from_millis(100));
            Ok(deadline.is_none_or(|d| Instant::now() < d))
        }
    }
}

impl fmt::Debug for NamedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedSemaphore")
            .field("name", &self.inner.name)
            .field("capacity", &self.inner.capacity)
            .field("dir", &self.inner.dir)
            .finish()
    }
}
