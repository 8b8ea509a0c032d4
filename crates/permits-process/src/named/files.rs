//! The on-disk state of a named semaphore: the `meta` file, slot files,
//! and the ticket queue (see the layout in `named/mod.rs`).

use crate::sys::{self, Access, LockKind};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const MAGIC: &str = "permits-named 1";

/// What `meta` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Meta {
    pub(super) capacity: usize,
    pub(super) boot: String,
}

impl Meta {
    /// Reads `meta`; `None` if it does not exist.
    pub(super) fn read(path: &Path) -> Result<Option<Meta>, super::NamedError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let corrupt = || super::NamedError::Corrupt {
            path: path.to_owned(),
        };
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(corrupt());
        }
        let mut capacity = None;
        let mut boot = None;
        for line in lines {
            if let Some(v) = line.strip_prefix("capacity=") {
                capacity = v.parse::<usize>().ok();
            } else if let Some(v) = line.strip_prefix("boot=") {
                boot = Some(v.to_owned());
            }
        }
        match (capacity, boot) {
            // A capacity no opener could have asked for is damage, not a
            // record: the capacity is then read back from the slot files.
            (Some(capacity), Some(boot))
                if capacity > 0 && capacity <= super::NamedSemaphore::MAX_CAPACITY =>
            {
                Ok(Some(Meta { capacity, boot }))
            }
            _ => Err(corrupt()),
        }
    }
}

pub(super) fn slot_path(dir: &Path, slot: usize) -> PathBuf {
    dir.join(slot_name(slot))
}

/// The name of slot `slot`'s file in the state directory.
pub(super) fn slot_name(slot: usize) -> String {
    format!("slot.{slot}")
}

/// What [`read_state`] found: the capacity and boot, and whether `meta`
/// must be written again (it was missing or unreadable).
#[derive(Debug)]
pub(super) struct State {
    pub(super) meta: Meta,
    pub(super) rewrite_meta: bool,
}

/// Reads the state of `dir`: `meta`, or when it is missing or unreadable,
/// the capacity the slot files show (slots 0 to K-1 present: capacity K,
/// taken as this boot's). `None` if neither says anything (a new name).
pub(super) fn read_state(dir: &Path, boot: &str) -> Result<Option<State>, super::NamedError> {
    let path = dir.join("meta");
    let meta = match Meta::read(&path) {
        Ok(meta) => meta,
        Err(super::NamedError::Corrupt { .. }) => None,
        Err(e) => return Err(e),
    };
    if let Some(meta) = meta {
        return Ok(Some(State {
            meta,
            rewrite_meta: false,
        }));
    }
    let capacity = (0..).take_while(|&k| slot_path(dir, k).exists()).count();
    if capacity == 0 {
        return Ok(None);
    }
    Ok(Some(State {
        meta: Meta {
            capacity,
            boot: boot.to_owned(),
        },
        rewrite_meta: true,
    }))
}

/// Recreates what is missing of an existing semaphore's state (slot files
/// and `meta`), changing nothing that exists. Called under the
/// initialisation lock.
pub(super) fn repair(dir: &Path, state: &State, access: Access) -> io::Result<()> {
    for slot in 0..state.meta.capacity {
        let path = slot_path(dir, slot);
        if !path.exists() {
            sys::open_file(&path, Some(access))?;
        }
    }
    if state.rewrite_meta {
        write_meta(dir, &state.meta, access)?;
    }
    Ok(())
}

/// Whether anything uses the semaphore in `dir`: a handle open (the
/// `users` lock, or the directory's own lock), a slot held (a slot file locked, whether or not its
/// holder has a handle; `capacity` 0 when it is unknown: every slot file
/// is looked at anyway), or a live waiter. Called under the
/// initialisation lock, so no handle can open meanwhile.
pub(super) fn in_use(dir: &Path, capacity: usize, access: Access) -> io::Result<bool> {
    let users = sys::open_file(&dir.join("users"), Some(access))?;
    if !sys::lock_file(&users, LockKind::Exclusive, false)? {
        return Ok(true);
    }
    drop(users);
    // Handles also share-lock the directory: seen even if `users` was
    // deleted under them.
    let this = sys::open_dir(dir)?;
    if !sys::lock_file(&this, LockKind::Exclusive, false)? {
        return Ok(true);
    }
    drop(this);
    let mut slots: Vec<PathBuf> = (0..capacity).map(|k| slot_path(dir, k)).collect();
    for entry in fs::read_dir(dir)?.flatten() {
        let is_slot = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("slot."))
            .is_some_and(|n| n.parse::<usize>().is_ok_and(|k| k >= capacity));
        if is_slot {
            slots.push(entry.path());
        }
    }
    for path in slots {
        let file = match sys::open_read_only(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !sys::lock_file(&file, LockKind::Shared, false)? {
            return Ok(true);
        }
    }
    Ok(live_tickets(&dir.join("q"), None, Count::Live)? > 0)
}

/// Writes `meta`: atomically (a new file renamed over it), or in place
/// when the rename is not allowed (another member's `meta` in a sticky
/// shared directory; readers hold the initialisation lock, so they never
/// see it half written).
fn write_meta(dir: &Path, meta: &Meta, access: Access) -> io::Result<()> {
    use std::io::Write;
    let text = format!("{MAGIC}\ncapacity={}\nboot={}\n", meta.capacity, meta.boot);
    let tmp = dir.join(format!("meta.tmp.{}", sys::pid()));
    let _ = fs::remove_file(&tmp);
    let mut file = sys::create_new_file(&tmp, access)?;
    file.write_all(text.as_bytes())?;
    drop(file);
    match fs::rename(&tmp, dir.join("meta")) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let _ = fs::remove_file(&tmp);
            let mut file = sys::open_file(&dir.join("meta"), Some(access))?;
            file.set_len(0)?;
            file.write_all(text.as_bytes())
        }
        other => other,
    }
}

/// (Re)initialises `dir` for `capacity` slots. Only called when nothing
/// uses the semaphore (first creation, an earlier boot, or [`in_use`]
/// said no), all under the initialisation lock. Files that cannot be
/// removed (another member's, in a sticky shared directory) are left:
/// slots beyond the capacity are never looked at.
pub(super) fn reset(dir: &Path, capacity: usize, boot: &str, access: Access) -> io::Result<()> {
    let queue = dir.join("q");
    if let Ok(entries) = fs::read_dir(&queue) {
        for entry in entries.flatten() {
            let _ = fs::remove_file(entry.path());
        }
    }
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix("slot."))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if index >= capacity {
            let _ = fs::remove_file(entry.path());
        }
    }
    for slot in 0..capacity {
        // Creates missing slots and clears stale holder records.
        sys::open_file(&slot_path(dir, slot), Some(access))?.set_len(0)?;
    }
    let meta = Meta {
        capacity,
        boot: boot.to_owned(),
    };
    write_meta(dir, &meta, access)
}

/// A waiter's place in the queue: a file named by arrival time, locked
/// exclusively by its owner for as long as it waits. Dropping it leaves the
/// queue (unlink, then close if [`leave`](Ticket::leave) did not: both
/// wake the others).
#[derive(Debug)]
pub(super) struct Ticket {
    name: String,
    path: PathBuf,
    /// Open (and locked) while its waiter waits; closed by [`leave`].
    ///
    /// [`leave`]: Ticket::leave
    file: Option<File>,
    /// [`sys::forks`] from before the file was created.
    forks: Option<u64>,
}

impl Ticket {
    /// Takes a place at the end of the queue, recording `record` (pid,
    /// time, label) in the ticket for `status`.
    pub(super) fn create(queue: &Path, access: Access, record: &str) -> io::Result<Ticket> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        loop {
            let name = format!(
                "t-{:020}-{:010}-{:010}",
                sys::monotonic_nanos(),
                sys::pid(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let path = queue.join(&name);
            let forks = sys::forks();
            let file = match sys::create_new_file(&path, access) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // The queue was deleted: recreate it, take a place.
                    match sys::check_dir(queue, Some(access))? {
                        Ok(_) => continue,
                        Err(problem) => return Err(io::Error::other(problem.to_string())),
                    }
                }
                other => other?,
            };
            sys::lock_file(&file, LockKind::Exclusive, true)?;
            // Between create and lock, a scanner may have taken the file
            // for a dead waiter's and removed it: then take a new place.
            if sys::link_count(&file)? > 0 {
                use std::io::Write;
                (&file).write_all(record.as_bytes())?;
                return Ok(Ticket {
                    name,
                    path,
                    file: Some(file),
                    forks,
                });
            }
        }
    }

    /// How many waiters that are not stopped are ahead of this one (0:
    /// this one is the head), and whether none at all is, not even a
    /// stopped one: then none ever will be (a later arrival's ticket sorts
    /// after this one), and the waiter need not look again.
    pub(super) fn ahead(&self, queue: &Path) -> io::Result<(usize, bool)> {
        let (live, active) = scan(queue, Some(&self.name), Count::Active)?;
        Ok((active, live == 0))
    }

    /// Leaves the queue at once, without a file-system write: the
    /// ticket's lock goes, so from now on it reads as a departed waiter's
    /// (everyone who looks skips it, and the next scan removes it), and
    /// its descriptor is closed, raising the `IN_CLOSE_WRITE` that wakes
    /// the waiters behind: one of them may be the head now, with a slot
    /// free (several released at once). Before, only the unlock left the
    /// queue, which raises no event: a waiter that had looked while this
    /// one was still queued slept on with a slot free until its
    /// `PASS_OVER` nap ended. The file itself goes when the ticket is
    /// dropped, or before, by a scan. Its waiter got its slot: this keeps
    /// the removal (an unlink, several microseconds on a journaling file
    /// system) off the hand-off's critical path.
    pub(super) fn leave(&mut self) {
        let Some(file) = self.file.take() else {
            return;
        };
        // Unlocked first: a child that `fork` gave a copy of the
        // descriptor must not keep the ticket live. Unlocking a lock we
        // hold cannot fail for any reason but a bad descriptor; if it
        // did, the close would still drop it (unless a child has a copy).
        let _ = sys::unlock_file(&file);
        drop(file);
        // That close raised the event only if it was the description's
        // last: a fork since the ticket was made may have copied it
        // (counted after the close, as `sys::forks` requires). Then open
        // and close the ticket again (gone: its removal woke them).
        if self.forks.is_none() || sys::forks() != self.forks {
            let _ = sys::open_file(&self.path, None);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Which waiters [`live_tickets`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Count {
    /// Every live waiter.
    Live,
    /// Live waiters whose process is not stopped: a stopped one is passed
    /// over (it keeps its ticket, so its place, for when it continues).
    Active,
}

/// Counts live tickets (those before `before` if given), removing the
/// files of dead waiters (tickets whose lock nobody holds).
pub(super) fn live_tickets(queue: &Path, before: Option<&str>, count: Count) -> io::Result<usize> {
    Ok(scan(queue, before, count)?.1)
}

/// [`live_tickets`], also returning how many live tickets there are
/// (stopped waiters included): `(live, counted)`.
fn scan(queue: &Path, before: Option<&str>, count: Count) -> io::Result<(usize, usize)> {
    let entries = match fs::read_dir(queue) {
        Ok(entries) => entries,
        // Deleted: nobody is queued (a waiter recreates it).
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("t-"))
        .collect();
    names.sort_unstable();
    let (mut live, mut counted) = (0, 0);
    for name in names {
        if before.is_some_and(|b| name.as_str() >= b) {
            break;
        }
        let path = queue.join(&name);
        // Read-only: closing it does not wake anyone.
        let file = match sys::open_read_only(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if sys::lock_file(&file, LockKind::Shared, false)? {
            let _ = fs::remove_file(&path); // its owner is gone
        } else {
            live += 1;
            if count == Count::Live || !stopped(file) {
                counted += 1;
            }
        }
    }
    Ok((live, counted))
}

/// Whether the waiter that wrote this ticket is stopped now (a ticket
/// not yet written counts as running).
fn stopped(mut file: File) -> bool {
    use std::io::Read;
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let (pid, _, _) = super::status::parse_record(&text);
    pid.and_then(sys::process_state) == Some(super::ProcessState::Stopped)
}

/// The records of the live waiters, in queue order.
pub(super) fn queue_records(queue: &Path) -> io::Result<Vec<String>> {
    use std::io::Read;
    let entries = match fs::read_dir(queue) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("t-"))
        .collect();
    names.sort_unstable();
    let mut records = Vec::new();
    for name in names {
        let mut file = match sys::open_read_only(&queue.join(&name)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        // A free lock: its waiter is gone (`live_tickets` removes it).
        if !sys::lock_file(&file, LockKind::Shared, false)? {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            records.push(text);
        }
    }
    Ok(records)
}
