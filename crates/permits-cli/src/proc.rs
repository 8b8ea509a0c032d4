//! Child processes, Linux only: each child is watched through a pidfd, so
//! waiting can be combined with a deadline and a cancel signal in one
//! `poll(2)`, and signals always reach the right process (a pidfd cannot
//! point at a recycled PID; a process group is signalled only while its
//! leader is not yet reaped, so its id cannot be recycled either).
//! A child's captured stdout and stderr are drained in that same `poll(2)`
//! (see [`Running::capture_output`]): no thread per pipe, and neither pipe
//! can fill up and block the child while we wait on the other.

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fd::{AsFd, OwnedFd};
use rustix::process::{kill_process_group, pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};
use std::io;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// How long a job gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// A running child with a pidfd.
pub struct Running {
    child: Child,
    pidfd: OwnedFd,
    /// Signal the whole process group (the child leads its own group).
    group: bool,
    /// The child's stdout and stderr, once captured, until their end.
    pipes: [Option<OwnedFd>; 2],
    /// Where a read from a pipe lands (empty until output is captured).
    buf: Vec<u8>,
}

/// One of a child's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

/// Receives a captured child's output, a read at a time.
pub type Sink<'a> = dyn FnMut(Stream, &[u8]) + 'a;

/// How many bytes one read from a pipe takes at most.
const READ_SIZE: usize = 64 * 1024;

/// Why [`Running::wait_until`] returned.
pub enum Wake {
    /// The child exited (reaped).
    Exited(ExitStatus),
    /// The deadline passed first.
    TimedOut,
    /// The cancel event fired first.
    Cancelled,
}

impl Running {
    /// Watches `child`. `group`: it was spawned as the leader of its own
    /// process group, and signals go to the whole group.
    pub fn new(child: Child, group: bool) -> io::Result<Running> {
        let pid =
            Pid::from_raw(child.id() as i32).ok_or_else(|| io::Error::other("child has no pid"))?;
        let pidfd = pidfd_open(pid, PidfdFlags::empty())?;
        Ok(Running {
            child,
            pidfd,
            group,
            pipes: [None, None],
            buf: Vec::new(),
        })
    }

    /// Takes the child's piped stdout and stderr (those that are pipes):
    /// from now on the waits drain them into their sink, together.
    pub fn capture_output(&mut self) {
        self.pipes = [
            self.child.stdout.take().map(OwnedFd::from),
            self.child.stderr.take().map(OwnedFd::from),
        ];
        if self.pipes.iter().any(Option::is_some) {
            self.buf = vec![0; READ_SIZE];
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// A handle that can signal the child from another thread while this
    /// one waits (it cannot reach another process, even after a reap).
    pub fn signaller(&self) -> io::Result<Signaller> {
        Ok(Signaller {
            pidfd: self.pidfd.try_clone()?,
        })
    }

    /// Sends `sig` to the child (or its group) unless it was reaped.
    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        if self.group {
            // The leader is our unreaped child, so its group id is not
            // recycled while we hold it.
            let pgid = Pid::from_raw(self.child.id() as i32)
                .ok_or_else(|| io::Error::other("child has no pid"))?;
            match kill_process_group(pgid, sig) {
                Err(e) if e == rustix::io::Errno::SRCH => Ok(()),
                other => other.map_err(io::Error::from),
            }
        } else {
            match pidfd_send_signal(&self.pidfd, sig) {
                Err(e) if e == rustix::io::Errno::SRCH => Ok(()),
                other => other.map_err(io::Error::from),
            }
        }
    }

    /// Waits until the child exits, `deadline` passes, or `cancel` (an
    /// event from [`Cancel`]) fires. Retries `EINTR`.
    pub fn wait_until(
        &mut self,
        deadline: Option<Instant>,
        cancel: Option<&Cancel>,
    ) -> io::Result<Wake> {
        self.wait_output_until(deadline, cancel, &mut |_, _| {})
    }

    /// [`wait_until`](Self::wait_until), passing what the child writes to
    /// its captured pipes ([`capture_output`](Self::capture_output)) to
    /// `out` meanwhile. When it returns, the pipes may still hold output:
    /// [`finish_output`](Self::finish_output) drains it.
    pub fn wait_output_until(
        &mut self,
        deadline: Option<Instant>,
        cancel: Option<&Cancel>,
        out: &mut Sink<'_>,
    ) -> io::Result<Wake> {
        loop {
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(self.try_reap()?.map_or(Wake::TimedOut, Wake::Exited));
                    }
                    Some(timespec(left))
                }
            };
            let mut fds = Vec::with_capacity(4);
            fds.push(PollFd::new(&self.pidfd, PollFlags::IN));
            if let Some(cancel) = cancel {
                fds.push(PollFd::new(&cancel.fd, PollFlags::IN));
            }
            let first_pipe = fds.len();
            let mut polled = [false; 2];
            for (open, pipe) in polled.iter_mut().zip(&self.pipes) {
                if let Some(pipe) = pipe {
                    fds.push(PollFd::new(pipe, PollFlags::IN));
                    *open = true;
                }
            }
            match poll(&mut fds, timeout.as_ref()) {
                Err(e) if e == rustix::io::Errno::INTR => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            let exited = !fds[0].revents().is_empty();
            let cancelled = cancel.is_some() && !fds[1].revents().is_empty();
            let mut ready = [false; 2];
            let mut at = first_pipe;
            for (ready, open) in ready.iter_mut().zip(polled) {
                if open {
                    *ready = !fds[at].revents().is_empty();
                    at += 1;
                }
            }
            drop(fds);
            // Output first: it was written before the exit we may report.
            self.read_ready(ready, out);
            if exited {
                return Ok(Wake::Exited(self.child.wait()?));
            }
            if cancelled {
                return Ok(Wake::Cancelled);
            }
        }
    }

    /// Drains the captured pipes to their end (after the child exited: a
    /// process it left behind may still hold them open). Once `cancel`
    /// fires (or if it already has), the pipes get [`GRACE`] more to reach
    /// their end, as a job gets between SIGTERM and SIGKILL; then they are
    /// closed where they are and it returns `Ok(false)`: the output was
    /// cut short. Retries `EINTR`.
    pub fn finish_output(
        &mut self,
        cancel: Option<&Cancel>,
        out: &mut Sink<'_>,
    ) -> io::Result<bool> {
        // Set once `cancel` fired: when to stop waiting for the pipes' end.
        let mut give_up: Option<Instant> = None;
        while self.pipes.iter().any(Option::is_some) {
            let timeout = match give_up {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.pipes = [None, None];
                        return Ok(false);
                    }
                    Some(timespec(left))
                }
            };
            let mut fds = Vec::with_capacity(3);
            let watch_cancel = give_up.is_none() && cancel.is_some();
            if let (true, Some(cancel)) = (watch_cancel, cancel) {
                fds.push(PollFd::new(&cancel.fd, PollFlags::IN));
            }
            let first_pipe = fds.len();
            let mut polled = [false; 2];
            for (open, pipe) in polled.iter_mut().zip(&self.pipes) {
                if let Some(pipe) = pipe {
                    fds.push(PollFd::new(pipe, PollFlags::IN));
                    *open = true;
                }
            }
            match poll(&mut fds, timeout.as_ref()) {
                Err(e) if e == rustix::io::Errno::INTR => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            if watch_cancel && !fds[0].revents().is_empty() {
                give_up = Some(Instant::now() + GRACE);
            }
            let mut ready = [false; 2];
            let mut at = first_pipe;
            for (ready, open) in ready.iter_mut().zip(polled) {
                if open {
                    *ready = !fds[at].revents().is_empty();
                    at += 1;
                }
            }
            drop(fds);
            self.read_ready(ready, out);
        }
        Ok(true)
    }

    /// Reads once from each pipe that `poll` found ready (so the read
    /// does not block); closes a pipe at its end or on a read error.
    fn read_ready(&mut self, ready: [bool; 2], out: &mut Sink<'_>) {
        let streams = [Stream::Stdout, Stream::Stderr];
        for ((pipe, ready), stream) in self.pipes.iter_mut().zip(ready).zip(streams) {
            let Some(fd) = pipe.as_ref().filter(|_| ready) else {
                continue;
            };
            match rustix::io::read(fd, &mut self.buf[..]) {
                Ok(0) => *pipe = None,
                Ok(n) => out(stream, &self.buf[..n]),
                Err(e) if e == rustix::io::Errno::INTR || e == rustix::io::Errno::AGAIN => {}
                // A read error ends the stream (what was read is kept).
                Err(_) => *pipe = None,
            }
        }
    }

    /// Reaps the child if it has exited.
    fn try_reap(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Stops the child: SIGTERM, then SIGKILL after [`GRACE`]; reaps it.
    pub fn terminate(&mut self) -> io::Result<ExitStatus> {
        self.terminate_output(&mut |_, _| {})
    }

    /// [`terminate`](Self::terminate), passing captured output to `out`
    /// during the grace period (a child cleaning up may write a lot).
    pub fn terminate_output(&mut self, out: &mut Sink<'_>) -> io::Result<ExitStatus> {
        self.signal(Signal::TERM)?;
        let grace = Some(Instant::now() + GRACE);
        if let Wake::Exited(status) = self.wait_output_until(grace, None, out)? {
            return Ok(status);
        }
        self.signal(Signal::KILL)?;
        self.child.wait()
    }
}

/// Signals one child through its own pidfd; see [`Running::signaller`].
pub struct Signaller {
    pidfd: OwnedFd,
}

impl Signaller {
    /// A signaller for `pid`, which must be our unreaped child (so the pid
    /// cannot have been recycled).
    pub fn for_child(pid: u32) -> io::Result<Signaller> {
        let pid = i32::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or_else(|| io::Error::other("child has no pid"))?;
        Ok(Signaller {
            pidfd: pidfd_open(pid, PidfdFlags::empty())?,
        })
    }

    /// Sends `sig`; a child that is already gone is not an error.
    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        match pidfd_send_signal(&self.pidfd, sig) {
            Err(e) if e == rustix::io::Errno::SRCH => Ok(()),
            other => other.map_err(io::Error::from),
        }
    }
}

/// A one-shot cancel event that any number of waiters can poll.
pub struct Cancel {
    fd: OwnedFd,
}

impl Cancel {
    /// A new, unfired event.
    pub fn new() -> io::Result<Cancel> {
        Ok(Cancel {
            fd: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
        })
    }

    /// Fires it (idempotent: the counter stays readable).
    pub fn fire(&self) {
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }

    /// Whether it has fired.
    pub fn fired(&self) -> bool {
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        poll(&mut fds, Some(&zero)).is_ok_and(|n| n > 0)
    }
}

impl AsFd for Cancel {
    fn as_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A `poll(2)` timeout of `left`.
fn timespec(left: Duration) -> Timespec {
    Timespec {
        tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: left.subsec_nanos().into(),
    }
}

/// The exit code a shell would report: the code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}

/// Whether this process is in the terminal's foreground process group
/// (then a Ctrl-C from the terminal reaches our children directly).
pub fn in_terminal_foreground() -> bool {
    rustix::termios::tcgetpgrp(std::io::stdin()).is_ok_and(|pg| pg == rustix::process::getpgrp())
}

/// A signal by number, if it is a known one.
pub fn signal_from_raw(sig: i32) -> Option<Signal> {
    Signal::from_named_raw(sig)
}
