//! The on-disk state of a named semaphore: the `meta` file, slot files,
//! and the ticket queue (see the layout in `named/mod.rs`).

use crate::sys::{self, LockKind};
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
            (Some(capacity), Some(boot)) if capacity > 0 => Ok(Some(Meta { capacity, boot })),
            _ => Err(corrupt()),
        }
    }
}

pub(super) fn slot_path(dir: &Path, slot: usize) -> PathBuf {
    dir.join(format!("slot.{slot}"))
}

/// (Re)initialises `dir` for `capacity` slots. Only called when no handle
/// is open anywhere (first creation, an earlier boot, or a free `users`
/// lock), all under the initialisation lock.
pub(super) fn reset(dir: &Path, capacity: usize, boot: &str) -> io::Result<()> {
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
            fs::remove_file(entry.path())?;
        }
    }
    for slot in 0..capacity {
        // Creates missing slots and clears stale holder records.
        sys::open_file(&slot_path(dir, slot), true)?.set_len(0)?;
    }
    let tmp = dir.join("meta.tmp");
    fs::write(&tmp, format!("{MAGIC}\ncapacity={capacity}\nboot={boot}\n"))?;
    fs::rename(&tmp, dir.join("meta"))
}

/// A waiter's place in the queue: a file named by arrival time, locked
/// exclusively by its owner for as long as it waits. Dropping it leaves the
/// queue (unlink, then close: both wake the others).
#[derive(Debug)]
pub(super) struct Ticket {
    name: String,
    path: PathBuf,
    _file: File,
}

impl Ticket {
    pub(super) fn create(queue: &Path) -> io::Result<Ticket> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        loop {
            let name = format!(
                "t-{:020}-{:010}-{:010}",
                sys::monotonic_nanos(),
                sys::pid(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let path = queue.join(&name);
            let file = sys::create_new_file(&path)?;
            sys::lock_file(&file, LockKind::Exclusive, true)?;
            // Between create and lock, a scanner may have taken the file
            // for a dead waiter's and removed it: then take a new place.
            if sys::link_count(&file)? > 0 {
                return Ok(Ticket {
                    name,
                    path,
                    _file: file,
                });
            }
        }
    }

    /// Whether no live ticket is ahead of this one.
    pub(super) fn is_head(&self, queue: &Path) -> io::Result<bool> {
        Ok(live_tickets(queue, Some(&self.name))? == 0)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Counts live tickets (those before `before` if given), removing the
/// files of dead waiters (tickets whose lock nobody holds).
pub(super) fn live_tickets(queue: &Path, before: Option<&str>) -> io::Result<usize> {
    let mut names: Vec<String> = fs::read_dir(queue)?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("t-"))
        .collect();
    names.sort_unstable();
    let mut live = 0;
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
        }
    }
    Ok(live)
}
