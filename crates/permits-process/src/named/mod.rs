//! [`NamedSemaphore`]: a counting semaphore shared by unrelated processes
//! through a name, with no daemon, that survives `SIGKILL`.
//!
//! # Where the state lives
//!
//! One semaphore per (user, name), whatever the environment: a login
//! shell, cron, a systemd service, `sudo -u`, `env -i` all reach the same
//! one, because the location depends only on the effective user id and
//! the user database, never on environment variables such as `HOME` or
//! `XDG_RUNTIME_DIR` ([`NamedSemaphore::user_dir`]):
//!
//! * **root**: `/run/permits` (a local tmpfs, root-owned, emptied at boot,
//!   which no tmp cleaner reaps);
//! * **any other user**: `<home>/.local/state/permits`, where `<home>` is
//!   the user's home directory *in the user database* (`getpwuid_r`, so
//!   LDAP and other NSS sources count), not `$HOME`.
//!
//! Why not `$XDG_RUNTIME_DIR` or `/run/user/<uid>`: the variable is set in
//! login sessions only, and the directory exists only while the user has
//! a session (logind removes it at the last logout), so cron jobs and
//! services would get a second semaphore exactly when they run alone. Why
//! not `/tmp`, `/var/tmp` or `/dev/shm`: anyone can create a predictable
//! name there first and so deny (or capture) the semaphore, and tmp
//! cleaners delete old files. A home directory is the user's own (no
//! other user can create or replace anything in it), it is kept across
//! reboots (state from an earlier boot is reset, see below), and it is the
//! same for every process of the user. Every directory on the way to the
//! state must be owned by root or the user and writable by nobody else
//! (root-owned sticky directories such as `/tmp` excepted), and the state
//! directory must be on a local file system (network file systems emulate
//! `flock` with per-process locks and do not deliver inotify events
//! between hosts): otherwise opening fails with
//! [`NamedError::InsecureDirectory`] saying why. A user without a usable
//! home (service accounts with `/nonexistent`) sets a directory
//! explicitly.
//!
//! **An explicit directory** ([`NamedOptions::dir`], or the `PERMITS_DIR`
//! environment variable, an absolute path) replaces that location, e.g. to
//! share semaphores between the users of one group. It must be one of:
//!
//! * **private**: owned by you, no rights for group or others (`0700`);
//!   created so if missing (its parent must exist);
//! * **group-shared**: all rights for the group, none for others, and the
//!   setgid and sticky bits (`chmod 3770`; e.g. `install -d -m 3770 -g
//!   build /srv/permits`), owned by anyone, with a group you are in. New
//!   files get mode 0660 and new directories 3770 whatever the umask; the
//!   sticky bit stops members from deleting or renaming each other's
//!   files. Members of the group are trusted not to disturb the state.
//!
//! Anything else (open to others, group-writable without setgid and
//! sticky, owned by someone else while private, a symbolic link, under a
//! directory others can write to, a network file system) is refused with
//! [`NamedError::InsecureDirectory`].
//!
//! # Design
//!
//! ```text
//! <base>/<name>.lock     flock'd while a handle opens (initialisation)
//! <base>/<name>/meta     "permits-named 1", capacity, boot id
//! <base>/<name>/        every open handle holds a shared flock on the
//!                        directory itself, and one on:
//! <base>/<name>/users    (kept for handles of earlier versions)
//! <base>/<name>/slot.K   one file per permit; a holder holds an exclusive
//!                        flock on it and writes pid, time and label in it
//! <base>/<name>/wake     opened and closed after a release whose close
//!                        may not wake (see below), poked by
//!                        introspection (wakes waiters)
//! <base>/<name>/q/t-…    one ticket per waiter, flock'd by its owner,
//!                        named by arrival time: the FIFO queue
//! ```
//!
//! * **Crash safety.** A permit *is* a `flock(2)` lock on a slot file.
//!   The kernel releases it when the last descriptor of its open file
//!   description closes, including when the holder is killed with
//!   `SIGKILL`. No PID is ever polled, so PID reuse cannot confuse it. A
//!   lock counts only if it is on the file the slot's path names *now*:
//!   after locking, the descriptor's device and inode are compared with
//!   the path's, and a lock on a deleted or replaced file is dropped and
//!   the slot tried again on the current file.
//! * **Waiting without polling.** Waiters queue as ticket files ordered
//!   by the system-wide monotonic clock; only the head of the queue tries
//!   the slots, so arrival order is kept (a newcomer takes a free slot
//!   directly only when nobody is queued). Each waiter sleeps in `poll(2)`
//!   on an `inotify` watch of the directory and wakes on `IN_CLOSE_WRITE`
//!   (a slot released, by a holder or by the kernel on its death; a
//!   ticket closed) and `IN_DELETE`. A ticket whose lock is free belongs
//!   to a dead waiter and is removed. A handle keeps the inotify
//!   instances its waiters used (up to four idle ones) and lends them to
//!   later waits: closing an inotify descriptor waits for the kernel to
//!   tear its watches down (milliseconds), which, paid on every blocking
//!   acquire, made a hand-off several times slower than the work it
//!   guarded. A kept instance holds kernel state only (nothing on disk),
//!   so nothing is left behind after a `SIGKILL`.
//! * **What a hand-off costs.** A release unlocks the slot and closes it:
//!   the `IN_CLOSE_WRITE` that wakes the waiters. That event comes only
//!   from the last close of the slot's open file description, so when a
//!   child may share it (the permit was handed on with
//!   [`NamedPermit::inherit_into`], or the process called `fork(3)` since
//!   the slot was opened, counted by a `pthread_atfork` hook) the release
//!   also opens and closes `wake`. Children of `posix_spawn` and `vfork`
//!   run no hook, but exec or exit at once and close their copy (the slot
//!   is close-on-exec), which raises the event then; only a child of a raw
//!   `clone` or `_Fork` that keeps running could leave a waiter asleep
//!   until it exits. The woken head locks the slot, checks it is still
//!   the slot's file, writes its record (cut to length only if the old one
//!   was longer), then unlocks and closes its ticket (the close wakes the
//!   waiters behind it: when several slots were freed at once, the next
//!   head finds one free). A ticket's file is removed by the
//!   handle that waited with it, at its next acquire or when it is dropped
//!   (or by any scan, as a departed waiter's): an unlink is a journal
//!   write, and neither the release nor the woken waiter pays for it. In
//!   the `named_wake` benchmark the two processes ran on one CPU (`perf
//!   sched`), so the waiter ran only once the releaser was done: the
//!   latency is these system calls, not the wake-up itself. A futex in a
//!   shared mapping of a state file was tried as a faster wake (issue 12)
//!   and measured hardly better (11.1 µs against 12.0 µs without it, one
//!   quick run each, within the noise), while every release that cannot
//!   bump it (a holder killed, a `permits run --bg` command exiting) would
//!   have cost a waiter up to its polling slice instead of an immediate
//!   inotify event; it was left out. Leaving `wake` out of the usual
//!   release took `named_wake` from 11.4 and 10.6 µs to 10.0 and 9.8 µs
//!   (quick runs, alternating, one machine). What remains, traced with
//!   ftrace on one hand-off: the close delivering the event and waking
//!   the waiter (about 2 µs), then the waiter's seven system calls, of
//!   which the record's `pwrite` (about 2 µs: ext4 updates the file's
//!   times) costs most.
//! * **The capacity is never changed under holders.** The capacity is
//!   recorded in `meta`. A handle that asks for a different one gets
//!   [`NamedError::CapacityMismatch`] (naming the capacity in force)
//!   whenever the semaphore is in use: a handle is open anywhere (the
//!   directory's and `users`' shared locks), *or any slot is held* (also
//!   by a process that holds no handle, such as a command started by
//!   `permits run --bg`), or a waiter is queued. Only a semaphore nobody
//!   uses takes the new capacity.
//! * **Stale state.** `meta` records the boot id
//!   (`/proc/sys/kernel/random/boot_id`). State from an earlier boot is
//!   reset on open (no lock can survive a reboot), whatever its capacity
//!   was; [`NamedSemaphore::reclaimed_stale_state`] reports it. State in
//!   use (a handle, holder or waiter) is never taken for an earlier
//!   boot's, whatever `meta` says (a `meta` cut short in its boot line
//!   once reset it under its holders).
//!
//! # Deleted state files
//!
//! Missing files are recreated: a missing `slot.K`, `users`, `wake` or
//! `q` when they are next needed, a missing (or unreadable) `meta` from
//! the slot files that remain (their number is the capacity). What
//! deleting files can and cannot break:
//!
//! * deleting **free** slot files, `users`, `wake`, `meta` or the queue
//!   while nobody holds a slot breaks nothing;
//! * deleting the file of a **held** slot lets one more process in until
//!   that holder ends: the holder's lock is on the deleted file, which
//!   nobody else can see (the kernel gives no way to find it again);
//! * deleting the **whole directory** while holders run lets up to twice
//!   the capacity in (new state is created next to the invisible old
//!   one) until they end, and handles opened before the deletion fail
//!   with an i/o error when they next acquire; waiters queued at that
//!   moment lose their place;
//! * deleting (or garbling) `meta` and deleting `slot.0` while it is in
//!   use leaves its capacity unknown: openers are refused with
//!   [`NamedError::Corrupt`] until an open handle's acquire recreates
//!   `slot.0` (the capacity is then read back from the slot files, never
//!   more than before) or nobody uses it any more (then the next opener's
//!   `-j` becomes the capacity).
//!
//! The per-user location is not a tmp directory, so cleaners do not
//! touch it; none of this happens unless someone deletes the files.
//!
//! # Caveats
//!
//! * Linux only (flock, inotify, boot id), on a local file system.
//! * The queue is FIFO among running waiters. A waiter whose process is
//!   stopped (`SIGSTOP`, Ctrl-Z) is passed over: newcomers and the waiters
//!   behind it take free slots (at once on a release, else within
//!   [`PASS_OVER`]), and it keeps its place for when it continues. A
//!   *holder* that is stopped keeps its slot, as any holder does.
//! * A process that `fork`s without `exec` while holding a permit shares
//!   the lock with its child: the slot is held until the parent drops the
//!   permit (the child's copy, dropped or not, frees nothing), or, if the
//!   parent dies first, until the child closes its copy too.
//! * Introspection ([`NamedSemaphore::status`],
//!   [`NamedSemaphore::wait_idle`]) briefly takes a shared lock on each
//!   free slot: a racing `try_acquire` can then see that slot as busy.
//!   Blocking acquires are poked awake afterwards (`IN_ATTRIB`) and are not
//!   affected. (`/proc/locks` would avoid the probe, but the kernel can
//!   skip entries when it takes several `read`s, so it cannot be trusted.)
//! * Waking is a thundering herd: every waiter rescans on every change
//!   (fine for tens of waiters, not for thousands).
//! * If the user's inotify instances run out
//!   (`/proc/sys/fs/inotify/max_user_instances`, 128 by default), a
//!   waiter falls back to rescanning every 10 to 100 ms. Each open handle
//!   that has waited keeps up to four instances until it is dropped.

mod error;
mod files;
mod location;
mod options;
mod permit;
mod semaphore;
mod status;
mod watch;

pub use error::{check_name, DirProblem, NamedError, MAX_NAME_LEN};
pub use options::NamedOptions;
pub use permit::NamedPermit;
pub use semaphore::{NamedSemaphore, PASS_OVER};
pub use status::{Holder, NamedStatus, ProcessState, Waiter};
