//! [`NamedPermit`]: one held slot (an exclusive `flock` on its file), its
//! record for `status`, and handing it to child processes.

use super::status::record_text;
use super::NamedSemaphore;
use crate::lock;
use crate::sys;
use std::fmt;
use std::fs::File;
use std::io;
use std::process::Command;
use std::sync::Mutex;

/// A permit of a [`NamedSemaphore`]: an exclusive lock on one slot file.
/// Dropping it releases the slot and wakes waiters; if the process dies
/// instead, the kernel releases it.
#[must_use = "the permit is released as soon as it is dropped"]
#[clippy::has_significant_drop]
pub struct NamedPermit {
    pub(super) slot: usize,
    pub(super) file: Option<File>,
    /// [`sys::forks`] from before `file` was opened: a fork since then may
    /// have copied it into a child (see the `Drop`).
    pub(super) forks_at_open: Option<u64>,
    /// The process that took the lock: only it unlocks (a child made by
    /// `fork` shares the description, and its unlock would free the slot
    /// under this process).
    pub(super) locked_by: u32,
    /// The process recorded as the holder (this one, or the command the
    /// slot was handed to) and since when (ms since the epoch).
    pub(super) holder: u32,
    pub(super) since_ms: u128,
    pub(super) sem: NamedSemaphore,
    /// Hooks letting children inherit the slot; disarmed before `file`
    /// closes (and only then: while it has one, children may share `file`).
    pub(super) inherited: Mutex<Vec<sys::InheritOnce>>,
    /// The queue ticket this permit waited with, already out of the queue
    /// (unlocked); its file is removed after the slot is released.
    pub(super) ticket: Option<super::files::Ticket>,
}

impl NamedPermit {
    /// The slot index (0-based) this permit holds.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The semaphore it belongs to.
    pub fn semaphore(&self) -> &NamedSemaphore {
        &self.sem
    }

    /// Lets the children spawned from `cmd` (while this permit lives)
    /// share the slot: they inherit its locked open file description, so
    /// the slot stays held until this process *and* those children (and
    /// their descendants that keep the descriptor) have all closed it, or
    /// died. Use it to hand a slot to a command: if this process is killed,
    /// the command keeps the slot; if the command dies, the slot returns
    /// once this process drops or [`detach`](Self::detach)es the permit.
    ///
    /// Dropping the permit still releases the slot at once (it unlocks the
    /// shared description); [`detach`](Self::detach) leaves it to the
    /// children.
    ///
    /// # Errors
    ///
    /// Never on Linux; the `Result` leaves room for platforms that need a
    /// system call here.
    pub fn inherit_into(&self, cmd: &mut Command) -> io::Result<()> {
        if let Some(file) = &self.file {
            lock(&self.inherited).push(sys::inherit_file(cmd, file));
        }
        Ok(())
    }

    /// Spawns `cmd` sharing the slot with it, as
    /// [`inherit_into`](Self::inherit_into) then [`Command::spawn`] would,
    /// but without a `pre_exec` hook, so that the standard library may use
    /// `posix_spawn` instead of forking the whole process: much cheaper
    /// from a large, multi-threaded process spawning many commands (`permits
    /// batch --name` spends about 0.4 ms less per job). Only the child
    /// spawned here gets the slot (spawns through this method are
    /// serialised; a command spawned by other code at that very moment may
    /// inherit it too, which can only keep the slot held longer if this
    /// process dies first).
    ///
    /// # Errors
    ///
    /// As [`Command::spawn`], or if the descriptor cannot be copied.
    pub fn spawn_sharing(&self, cmd: &mut Command) -> io::Result<std::process::Child> {
        let Some(file) = &self.file else {
            // Only a dropped permit has no file, and it cannot be called.
            return cmd.spawn();
        };
        let child = sys::spawn_sharing(cmd, file)?;
        // Its release must wake the waiters itself: its close is not the
        // description's last while the child lives.
        lock(&self.inherited).push(sys::InheritOnce::spent());
        Ok(child)
    }

    /// Closes this process's descriptor *without* unlocking: children that
    /// inherited the slot ([`inherit_into`](Self::inherit_into)) keep it
    /// until they all exit, and the kernel releases it then (waking the
    /// waiters). Without such children this releases the slot, as a drop
    /// would.
    pub fn detach(mut self) {
        lock(&self.inherited).clear();
        drop(self.file.take());
    }

    /// Records `pid` as the holder shown by [`NamedSemaphore::status`]
    /// instead of this process: the command the slot was handed to with
    /// [`inherit_into`](Self::inherit_into), which keeps it after this
    /// process exits (e.g. `permits run --bg`). The time it has been held
    /// since is kept.
    ///
    /// # Errors
    ///
    /// If the slot file cannot be written.
    pub fn set_holder_pid(&mut self, pid: u32) -> io::Result<()> {
        self.holder = pid;
        self.record()
    }

    /// Writes pid, time and label into the slot file.
    pub(super) fn record(&mut self) -> io::Result<()> {
        self.record_over(None)
    }

    /// [`record`](Self::record) over a file known to be `old_len` bytes
    /// long: a record at least that long is not followed by a truncation
    /// (a journal write on ext4, on the acquire's critical path).
    pub(super) fn record_over(&mut self, old_len: Option<u64>) -> io::Result<()> {
        let text = record_text(self.holder, self.since_ms, self.sem.inner.label.as_deref());
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        sys::rewrite_file(file, text.as_bytes(), old_len)
    }
}

impl Drop for NamedPermit {
    fn drop(&mut self) {
        let lent = {
            // Later spawns must not get a closed number.
            let mut inherited = lock(&self.inherited);
            let lent = !inherited.is_empty();
            inherited.clear();
            lent
        };
        if let Some(file) = self.file.take() {
            // A fork since the slot was opened copied this permit into a
            // child, and this may be that child (then the pid differs; it
            // is asked only after a fork): a child's copy only closes its
            // descriptor, since unlocking the description they share would
            // free the slot under the parent. The wake below counts forks
            // again, after the close, as `sys::forks` requires.
            let forked = self.forks_at_open.is_none() || sys::forks() != self.forks_at_open;
            if !forked || sys::pid() == self.locked_by {
                // The record stays: a free slot's record is never read
                // (status reads only slots it finds locked), and the next
                // holder rewrites it. Not clearing it keeps a file-system
                // write off the hand-off's critical path.
                let _ = sys::unlock_file(&file);
            }
            drop(file);
            // That close raised the `IN_CLOSE_WRITE` that wakes waiters
            // only if it was the description's last descriptor. It may not
            // have been if children were let inherit it, or if the
            // process forked since it was opened (counted after the close:
            // see `sys::forks`); then `wake` is opened and closed, which
            // wakes them. Not doing so otherwise keeps two system calls
            // (and a path lookup) off the hand-off: the woken waiter often
            // runs only once this thread blocks.
            if lent || self.forks_at_open.is_none() || sys::forks() != self.forks_at_open {
                let _ = sys::open_file(
                    &self.sem.inner.dir.join("wake"),
                    Some(self.sem.inner.access),
                );
            }
        }
        // The ticket's file goes at this handle's next acquire, or when
        // the handle is dropped (see `Inner::spent`): not on the way of the
        // waiter this release wakes.
        if let Some(ticket) = self.ticket.take() {
            lock(&self.sem.inner.spent).push(ticket);
        }
    }
}

impl fmt::Debug for NamedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedPermit")
            .field("name", &self.sem.inner.name)
            .field("slot", &self.slot)
            .finish()
    }
}
