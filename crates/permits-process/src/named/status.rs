//! What a look inside a named semaphore returns ([`NamedStatus`], with its
//! [`Holder`]s and [`Waiter`]s and their [`ProcessState`]), and the
//! records holders and waiters write about themselves.

use crate::sys;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub(super) fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// What holders (slot files) and waiters (tickets) record about
/// themselves.
pub(super) fn record_text(pid: u32, since_ms: u128, label: Option<&str>) -> String {
    let mut text = format!("pid={pid}\nsince_ms={since_ms}\n");
    if let Some(label) = label {
        text.push_str(&format!("label={label}\n"));
    }
    text
}

/// Whether a process is running or stopped, as `/proc` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessState {
    /// Alive and not stopped (running, or sleeping in the kernel).
    Running,
    /// Stopped by a signal (`SIGSTOP`, Ctrl-Z) or a debugger.
    Stopped,
}

impl ProcessState {
    /// The state of process `pid` now; `None` if it is gone (or a zombie).
    /// A PID can be reused, so this is a hint for people, not a proof.
    pub fn of(pid: u32) -> Option<ProcessState> {
        sys::process_state(pid)
    }

    /// `"running"` or `"stopped"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessState::Running => "running",
            ProcessState::Stopped => "stopped",
        }
    }
}

/// A snapshot of a named semaphore, from
/// [`NamedSemaphore::status`](super::NamedSemaphore::status).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NamedStatus {
    /// The capacity.
    pub capacity: usize,
    /// Permits held (by live processes).
    pub held: usize,
    /// Who holds them.
    pub holders: Vec<Holder>,
    /// Live waiters queued.
    pub waiters: usize,
    /// Who waits, in queue order (as many as `waiters`, unless one
    /// arrived or left between the two looks).
    pub queue: Vec<Waiter>,
}

/// One waiter queued on a [`NamedSemaphore`](super::NamedSemaphore), from what it recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Waiter {
    /// Its process id.
    pub pid: Option<u32>,
    /// When it started waiting.
    pub since: Option<SystemTime>,
    /// Its handle's label.
    pub label: Option<String>,
    /// Whether it runs or is stopped, when looked at.
    pub state: Option<ProcessState>,
}

/// One held slot of a [`NamedSemaphore`](super::NamedSemaphore). The
/// fields are what the holder wrote; they can be missing if it was killed
/// while writing them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// The slot index.
    pub slot: usize,
    /// The holder's process id when it acquired.
    pub pid: Option<u32>,
    /// When it acquired.
    pub since: Option<SystemTime>,
    /// Its handle's label.
    pub label: Option<String>,
    /// Whether the holder runs or is stopped, when looked at (`None`: the
    /// recorded process is gone, e.g. a `permits run` killed while its
    /// command keeps the slot).
    pub state: Option<ProcessState>,
}

/// The fields of a holder's or waiter's record.
pub(super) fn parse_record(text: &str) -> (Option<u32>, Option<SystemTime>, Option<String>) {
    let (mut pid, mut since, mut label) = (None, None, None);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("pid=") {
            pid = v.parse().ok();
        } else if let Some(v) = line.strip_prefix("since_ms=") {
            since = v
                .parse()
                .ok()
                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
        } else if let Some(v) = line.strip_prefix("label=") {
            label = Some(v.to_owned());
        }
    }
    (pid, since, label)
}

impl Holder {
    pub(super) fn parse(slot: usize, text: &str) -> Holder {
        let (pid, since, label) = parse_record(text);
        Holder {
            slot,
            pid,
            since,
            label,
            state: pid.and_then(ProcessState::of),
        }
    }
}

impl Waiter {
    pub(super) fn parse(text: &str) -> Waiter {
        let (pid, since, label) = parse_record(text);
        Waiter {
            pid,
            since,
            label,
            state: pid.and_then(ProcessState::of),
        }
    }
}
