//! `permits batch`: run many shell commands with at most N at once.
//!
//! The dispatcher (the main thread) takes a slot for each job in input
//! order, then runs the job on a thread of its own: the child's output is
//! captured and printed in one piece when it ends (or in input order with
//! `--keep-order`). Slots come from, in this order of preference:
//!
//! 1. a named semaphore (`--name`), shared with other processes;
//! 2. make's jobserver, when `MAKEFLAGS` advertises a usable one: `-j` is
//!    then make's to decide;
//! 3. a jobserver of our own with N slots, which the jobs inherit, so a
//!    nested `make` or `cargo` shares the same N.
//!
//! Under `make -n` (a dry run) it prints the commands and runs none.

use crate::args::{default_jobs, BatchArgs, Halt};
use crate::make::Make;
use crate::proc::{exit_code, Cancel, Running, Wake};
use crate::report::{Event, JobEnd, Reporter, Summary};
use crate::Failure;
use permits_process::jobserver::{JobPermit, JobserverSemaphore, Server};
use permits_process::named::{NamedPermit, NamedSemaphore};
use permits_process::AcquireError;
use std::io::{self, BufRead, IsTerminal, Read};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// How often a dispatcher blocked on a slot checks for a halt.
const HALT_CHECK: Duration = Duration::from_millis(50);

/// Where job slots come from.
enum Slots {
    Jobserver(JobserverSemaphore),
    Named(NamedSemaphore),
}

/// A held slot; released when dropped (after its job ended).
enum Slot {
    // Held only to be dropped when the job ends.
    Jobserver(#[allow(dead_code)] JobPermit),
    Named(#[allow(dead_code)] NamedPermit),
}

impl Slots {
    /// Takes a slot, or returns `None` once `stop` is set.
    fn acquire(&self, stop: &AtomicBool) -> Result<Option<Slot>, AcquireError> {
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let got = match self {
                Slots::Jobserver(sem) => sem.acquire_timeout(HALT_CHECK).map(Slot::Jobserver),
                Slots::Named(sem) => sem.acquire_timeout(HALT_CHECK).map(Slot::Named),
            };
            match got {
                // A failure may have stopped the batch while we waited (its
                // slot is what woke us): then give the slot back.
                Ok(_) if stop.load(Ordering::SeqCst) => return Ok(None),
                Ok(slot) => return Ok(Some(slot)),
                Err(AcquireError::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Everything the job threads share.
struct Shared {
    /// Start no new job (a failure with --halt soon/now, or a signal).
    stop: AtomicBool,
    /// Stop running jobs (--halt now, or a signal).
    cancel: Cancel,
    /// The signal that interrupted the batch, if any.
    signal: AtomicI32,
    halt: Halt,
    timeout: Option<Duration>,
}

/// Runs the batch; returns the exit code.
pub fn run(args: BatchArgs) -> Result<i32, Failure> {
    let commands = commands(&args.commands)?;
    let jobs = args.jobs.unwrap_or_else(default_jobs);
    let otherwise = match &args.name {
        Some(_) => "ignoring it".to_owned(),
        None => format!("using -j {jobs} of our own"),
    };
    let make = Make::from_env(&otherwise);
    if let Make::DryRun = make {
        // `make -n`: say what would run, run nothing.
        for command in &commands {
            println!("{command}");
        }
        return Ok(0);
    }
    let (slots, server, note) = choose_slots(&args, jobs, make)?;
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        cancel: Cancel::new().map_err(|e| Failure::io("cannot create an event", e))?,
        signal: AtomicI32::new(0),
        halt: args.halt,
        timeout: args.timeout,
    });
    crate::signals::on_termination({
        let shared = Arc::clone(&shared);
        move |sig| {
            shared.signal.store(sig, Ordering::SeqCst);
            shared.stop.store(true, Ordering::SeqCst);
            shared.cancel.fire();
        }
    })
    .map_err(|e| Failure::io("cannot install signal handlers", e))?;

    let progress = !args.no_progress && !args.json && io::stderr().is_terminal();
    let reporter = Reporter::new(commands.len(), args.json, args.keep_order, progress);
    if let Some(note) = note {
        reporter.note(&note);
    }
    let (tx, rx) = mpsc::channel::<Event>();
    let printer = thread::spawn(move || {
        let mut reporter = reporter;
        for event in rx {
            reporter.event(event);
        }
        reporter
    });

    let started = Instant::now();
    let mut handles = Vec::new();
    let mut not_started = Vec::new();
    for (index, command) in commands.iter().enumerate() {
        let slot = match slots.acquire(&shared.stop) {
            Ok(Some(slot)) => slot,
            Ok(None) => {
                not_started.push(index);
                continue;
            }
            Err(e) => {
                // The slot source failed: run nothing more.
                shared.stop.store(true, Ordering::SeqCst);
                eprintln!("permits: cannot take a slot: {e}");
                not_started.push(index);
                continue;
            }
        };
        let mut cmd = shell(command);
        if let Some(server) = &server {
            server.configure(&mut cmd);
        } else if let Slots::Jobserver(sem) = &slots {
            if let Some(client) = sem.client() {
                // Our children share make's pool.
                client
                    .configure(&mut cmd)
                    .map_err(|e| Failure::io("cannot pass the jobserver on", e))?;
            }
        }
        let (shared, tx, command) = (Arc::clone(&shared), tx.clone(), command.clone());
        handles.push(thread::spawn(move || {
            let end = run_job(index, &command, cmd, &shared, &tx);
            if !end.succeeded() && shared.halt != Halt::Never {
                shared.stop.store(true, Ordering::SeqCst);
                if shared.halt == Halt::Now {
                    shared.cancel.fire();
                }
            }
            drop(slot);
            let _ = tx.send(Event::Ended(end));
        }));
    }
    for handle in handles {
        let _ = handle.join();
    }
    drop(tx);
    let reporter = printer
        .join()
        .map_err(|_| Failure::internal("the output thread panicked"))?;
    if let Some(server) = &server {
        if let Ok(rec) = server.reconcile() {
            if !rec.is_clean() {
                reporter.note(&rec.to_string());
            }
        }
    }
    let summary = reporter.summary(&not_started, &commands, started.elapsed());
    let signal = shared.signal.load(Ordering::SeqCst);
    Ok(if signal != 0 {
        128 + signal
    } else {
        exit_status(&summary)
    })
}

/// The batch's exit status: 0 when every job ran and succeeded, else the
/// number of jobs that failed or never ran, at most 101 (as GNU parallel).
fn exit_status(summary: &Summary) -> i32 {
    let bad = summary.failed + summary.not_started;
    i32::try_from(bad.min(101)).unwrap_or(101)
}

/// The commands: the arguments, or one per non-empty line of stdin.
fn commands(given: &[String]) -> Result<Vec<String>, Failure> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return Err(Failure::usage(
            "no commands: give them after `--`, or one per line on stdin",
        ));
    }
    let mut out = Vec::new();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| Failure::io("cannot read commands from stdin", e))?;
        if !line.trim().is_empty() {
            out.push(line);
        }
    }
    Ok(out)
}

/// Picks the slot source; returns it, our own jobserver (if we made one),
/// and a note for the user.
fn choose_slots(
    args: &BatchArgs,
    jobs: usize,
    make: Make,
) -> Result<(Slots, Option<Server>, Option<String>), Failure> {
    if let Some(name) = &args.name {
        let sem = args
            .state
            .options(name)
            .capacity(jobs)
            .label("permits batch")
            .open()
            .map_err(|e| Failure::named(name, e))?;
        return Ok((Slots::Named(sem), None, None));
    }
    if let Make::Pool(sem) = make {
        let note = args
            .jobs
            .map(|_| "inside make's jobserver: -j is ignored, make decides".to_owned());
        return Ok((Slots::Jobserver(sem), None, note));
    }
    let server =
        Server::new(jobs).map_err(|e| Failure::other(format!("cannot create a jobserver: {e}")))?;
    // Every job shares the pool: inherit it without a pre_exec hook, which
    // keeps spawning on the fast posix_spawn path.
    server
        .inherit_in_all_children()
        .map_err(|e| Failure::io("cannot share our jobserver", e))?;
    let sem = server
        .semaphore()
        .map_err(|e| Failure::io("cannot use our jobserver", e))?;
    Ok((Slots::Jobserver(sem), Some(server), None))
}

/// The job's command in a process group of its own, stdin closed, output
/// captured: a plain `program arg...` line (nothing a shell would
/// interpret, and `program` an executable file rather than a shell
/// builtin such as `exit`) runs directly, anything else as `sh -c COMMAND`.
fn shell(command: &str) -> Command {
    let plain = command
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" -_./=:,+@%".contains(&b));
    let mut words = command.split_ascii_whitespace();
    let mut cmd = match (plain, words.next()) {
        (true, Some(program)) if is_executable(program) => {
            let mut cmd = Command::new(program);
            cmd.args(words);
            cmd
        }
        _ => {
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(command);
            cmd
        }
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd
}

/// Whether `program` names an executable file (as a path, or in `PATH`).
fn is_executable(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return runnable(program.as_ref());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .any(|dir| runnable(&dir.join(program)))
}

/// Runs one job to its end.
fn run_job(
    index: usize,
    command: &str,
    mut cmd: Command,
    shared: &Shared,
    events: &mpsc::Sender<Event>,
) -> JobEnd {
    let started = Instant::now();
    let mut end = JobEnd::new(index, command);
    if shared.cancel.fired() {
        end.halted = true;
        return end;
    }
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            end.spawn_error = Some(e.to_string());
            return end;
        }
    };
    let mut running = match Running::new(child, true) {
        Ok(r) => r,
        Err(e) => {
            end.spawn_error = Some(format!("cannot watch the job: {e}"));
            return end;
        }
    };
    end.pid = Some(running.id());
    let _ = events.send(Event::Started {
        index,
        command: command.to_owned(),
        pid: running.id(),
    });
    let stdout = capture(running.child_mut().stdout.take());
    let stderr = capture(running.child_mut().stderr.take());
    let deadline = shared.timeout.map(|t| started + t);
    let status = match running.wait_until(deadline, Some(&shared.cancel)) {
        Ok(Wake::Exited(status)) => Ok(status),
        Ok(Wake::TimedOut) => {
            end.timed_out = true;
            running.terminate()
        }
        Ok(Wake::Cancelled) => {
            end.halted = true;
            running.terminate()
        }
        Err(e) => Err(e),
    };
    match status {
        Ok(status) => {
            end.exit_code = Some(exit_code(status));
            end.signal = std::os::unix::process::ExitStatusExt::signal(&status);
        }
        Err(e) => {
            end.spawn_error = Some(format!("cannot wait for the job: {e}"));
            let _ = running.terminate();
        }
    }
    end.stdout = stdout.join().unwrap_or_default();
    end.stderr = stderr.join().unwrap_or_default();
    end.duration = started.elapsed();
    end
}

/// Reads a pipe to its end on a thread of its own.
fn capture<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}
