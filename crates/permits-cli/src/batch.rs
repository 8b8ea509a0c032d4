//! `permits batch`: run many commands with at most N at once.
//!
//! Each input item is a shell command, or goes into a command template as
//! one argument ([`crate::items`]). The dispatcher (the main thread) takes
//! one item at a time (a job starts as soon as its item arrives and a slot
//! is free; a stream is read by a thread of its own, so that waiting for
//! its next item never keeps a signal from stopping the batch) and takes
//! a slot for each job in input order, then runs the job on a thread of
//! its own (a thread whose job ended takes the next one, see
//! [`Workers`]): the child's output is
//! captured (by that same thread, which drains both pipes in the `poll(2)`
//! that waits for the child) and printed in one piece when it ends (or in input order with
//! `--keep-order`). Slots come from, in this order of preference:
//!
//! 1. a named semaphore (`--name`), shared with other processes;
//! 2. make's jobserver, when `MAKEFLAGS` advertises a usable one: `-j` is
//!    then make's to decide;
//! 3. a jobserver of our own with N slots, which the jobs inherit, so a
//!    nested `make` or `cargo` shares the same N.
//!
//! Under `make -n` (a dry run) it prints the commands and runs none.
//!
//! Output is grouped per job by default (captured in a [`Spool`], which
//! spills to a temporary file past a small buffer), or passed on a line
//! at a time (`--line-buffer`), or not captured at all (`--ungroup`).
//! After each job ends (after its `--retries`), it is logged
//! (`--joblog`) and counted towards `--halt`; the first time the halt
//! condition holds fixes the exit status, as in GNU parallel.

use crate::args::{default_jobs, BatchArgs, Halt, HaltOn, HaltWhen, Threshold};
use crate::items::{self, has_replacement, Context, Source, Template, ITEMS_FOLLOW};
use crate::joblog::{Joblog, Resume};
use crate::make::Make;
use crate::proc::{exit_code, Cancel, Running, Stream, Wake, GRACE};
use crate::report::{Event, JobEnd, Reporter, Summary};
use crate::spool::{Spool, IN_MEMORY};
use crate::Failure;
use permits_process::jobserver::{Client, JobPermit, JobserverSemaphore, Server};
use permits_process::named::{NamedPermit, NamedSemaphore};
use permits_process::AcquireError;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

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
    Named(NamedPermit),
}

impl Slot {
    /// Spawns the job. A named slot is shared with it, as `permits run`
    /// does: if `permits` is killed (SIGKILL), the job keeps the slot until
    /// it ends, so the limit still holds across processes. Dropping the
    /// slot when the job ends releases it at once, as before. (Our own
    /// jobserver's tokens die with us; make's stay make's.) Shared without
    /// a `pre_exec` hook, which would make every spawn a `fork` of this
    /// process ([`NamedPermit::spawn_sharing`]).
    fn spawn(&self, cmd: &mut Command) -> io::Result<std::process::Child> {
        match self {
            Slot::Named(permit) => permit.spawn_sharing(cmd),
            Slot::Jobserver(_) => cmd.spawn(),
        }
    }
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
    /// Running jobs are stopped because of a signal or a closed stdout
    /// (not because of `--halt`).
    interrupted: AtomicBool,
    halt: Halt,
    timeout: Option<Duration>,
    /// Attempts per job (`--retries`, at least 1).
    retries: u32,
    output: OutputMode,
    /// How many jobs there are, when known (percentages of `--halt`).
    total: Option<usize>,
    tally: Mutex<Tally>,
    joblog: Option<Joblog>,
    spawner: Spawner,
}

/// How the jobs' output reaches ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputMode {
    /// Each job's output in one piece, when it ends.
    Group,
    /// Whole lines, as they come (`--line-buffer`).
    Lines,
    /// Straight through, not captured (`--ungroup`).
    Ungroup,
}

/// Jobs that ended (after their retries), for `--halt`.
#[derive(Debug, Default)]
struct Tally {
    ended: usize,
    failed: usize,
    /// The exit status fixed when the halt condition first held.
    halted_with: Option<i32>,
}

impl Shared {
    /// Counts a job that ended; stops the batch if `--halt` says so.
    fn job_ended(&self, end: &JobEnd) {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        tally.ended += 1;
        let failed = !end.succeeded();
        if failed {
            tally.failed += 1;
        }
        if self.halt.when == HaltWhen::Never
            || tally.halted_with.is_some()
            || self.interrupted.load(Ordering::SeqCst)
        {
            return;
        }
        let count = match (self.halt.on, failed) {
            (HaltOn::Fail, true) => tally.failed,
            (HaltOn::Success, false) => tally.ended - tally.failed,
            (HaltOn::Done, _) => tally.ended,
            _ => return,
        };
        let total = self.total.unwrap_or(tally.ended).max(1);
        let needed = match self.halt.threshold {
            Threshold::Count(n) => n,
            Threshold::Percent(p) => (total * usize::from(p)).div_ceil(100).max(1),
        };
        if count < needed {
            return;
        }
        // The exit status, as GNU parallel sets it: 0 on success=N; else
        // the job's own status when one job was enough, the share of
        // failed jobs in percent, or the number of failed jobs.
        let status = match (self.halt.on, self.halt.threshold) {
            (HaltOn::Success, _) => 0,
            (_, Threshold::Count(1)) => job_status(end),
            (_, Threshold::Percent(_)) => percent(tally.failed, total),
            (_, Threshold::Count(_)) => tally.failed.min(101) as i32,
        };
        tally.halted_with = Some(status);
        drop(tally);
        self.stop.store(true, Ordering::SeqCst);
        if self.halt.when == HaltWhen::Now {
            self.cancel.fire();
        }
    }
}

/// A job's own exit status: its exit code, 128 + the signal that killed
/// it, or 127 when it could not run (as a shell reports it).
fn job_status(end: &JobEnd) -> i32 {
    match (end.signal, end.exit_code) {
        (Some(sig), _) => 128 + sig,
        (None, Some(code)) => code,
        (None, None) => 127,
    }
}

/// `part` of `whole` in percent, rounded up.
fn percent(part: usize, whole: usize) -> i32 {
    i32::try_from((part * 100).div_ceil(whole.max(1))).unwrap_or(100)
}

/// Makes each job's `Command`, passing our jobserver (or make's) on.
struct Spawner {
    server: Option<Arc<Server>>,
    client: Option<Client>,
}

impl Spawner {
    fn command(&self, argv: &[OsString], output: OutputMode) -> io::Result<Command> {
        let mut cmd = spawnable(argv, output);
        if let Some(server) = &self.server {
            server.configure(&mut cmd);
        } else if let Some(client) = &self.client {
            // Our children share make's pool.
            client.configure(&mut cmd)?;
        }
        Ok(cmd)
    }
}

/// What each input item becomes.
enum Jobs {
    /// Each item is a shell command (the arguments, or lines of stdin).
    Commands,
    /// Each item goes into the template as one argument.
    Template(Template),
}

impl Jobs {
    /// The program and arguments of job `number` (1-based).
    fn argv(&self, item: &[u8], number: usize, slot: usize) -> Vec<OsString> {
        match self {
            Jobs::Commands => shell_argv(item),
            Jobs::Template(t) => t.expand(Context { item, number, slot }),
        }
    }
}

/// Reads the flags into what runs and where its items come from. A
/// template is in use when a word after `--` holds a replacement string,
/// when `:::` gives the items, or with `-0`, `-I` or `-a`.
fn plan(args: &BatchArgs) -> Result<(Jobs, Source), Failure> {
    let (words, given) = match args.commands.iter().position(|w| w == ITEMS_FOLLOW) {
        Some(at) => (&args.commands[..at], Some(&args.commands[at + 1..])),
        None => (&args.commands[..], None),
    };
    let replace = args.replace.as_deref().map(OsStrExt::as_bytes);
    if replace == Some(b"") {
        return Err(Failure::usage("-I needs a non-empty replacement string"));
    }
    let templated = given.is_some()
        || args.null
        || args.replace.is_some()
        || args.arg_file.is_some()
        || words
            .iter()
            .any(|w| has_replacement(w.as_bytes(), replace.unwrap_or(b"{}")));
    if !templated {
        if !words.is_empty() {
            let items = words
                .iter()
                .map(|w| w.as_bytes().to_vec())
                .collect::<Vec<_>>();
            return Ok((Jobs::Commands, Source::Given(items.into_iter())));
        }
        return Ok((Jobs::Commands, stdin_source(b'\n')?));
    }
    if words.is_empty() {
        return Err(Failure::usage(
            "no command template before the items: give one after `--`",
        ));
    }
    let template = Jobs::Template(Template::new(words, args.replace.as_deref()));
    let separator = if args.null { 0 } else { b'\n' };
    let source = match (given, &args.arg_file) {
        (Some(_), Some(_)) => {
            return Err(Failure::usage(
                "items come either after `:::` or from -a FILE, not both",
            ))
        }
        (Some(items), None) => {
            let items = items
                .iter()
                .map(|w| w.as_bytes().to_vec())
                .collect::<Vec<_>>();
            Source::Given(items.into_iter())
        }
        (None, Some(path)) if path.as_os_str() != "-" => {
            let file = std::fs::File::open(path).map_err(|e| {
                Failure::usage(format!("cannot read items from {}: {e}", path.display()))
            })?;
            Source::Stream {
                reader: Box::new(io::BufReader::new(file)),
                separator,
            }
        }
        (None, _) => stdin_source(separator)?,
    };
    Ok((template, source))
}

/// `ls | permits batch -- gzip` (the `xargs` habit) runs `gzip` once, as a
/// whole command, and reads no items: said in a note, so that the piped
/// input is not dropped in silence. Only for one word after `--` and no
/// items, with stdin a pipe or a non-empty file (not a terminal, not
/// `/dev/null`).
fn unread_stdin_note(args: &BatchArgs) -> Option<String> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let [word] = args.commands.as_slice() else {
        return None;
    };
    let templated =
        args.null || args.replace.is_some() || args.arg_file.is_some() || word == ITEMS_FOLLOW;
    if templated || has_replacement(word.as_bytes(), b"{}") {
        return None;
    }
    let stdin = std::fs::File::from(io::stdin().as_fd().try_clone_to_owned().ok()?);
    let meta = stdin.metadata().ok()?;
    let piped = meta.file_type().is_fifo() || (meta.is_file() && meta.len() > 0);
    piped.then(|| {
        let word = word.to_string_lossy();
        format!(
            "stdin is not read: `{word}` runs once, as a whole command; to run it once per line of stdin, write `permits batch -- {word} {{}}`"
        )
    })
}

/// Items read from stdin, which must not be a terminal.
fn stdin_source(separator: u8) -> Result<Source, Failure> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return Err(Failure::usage(
            "no commands: give them after `--`, or one per line on stdin",
        ));
    }
    Ok(Source::Stream {
        reader: Box::new(io::BufReader::new(stdin)),
        separator,
    })
}

/// Jobs still running, for the dispatcher to wait on at the end (their
/// threads are detached: nothing per job is kept once it ended).
#[derive(Default)]
struct InFlight {
    count: Mutex<usize>,
    zero: Condvar,
}

impl InFlight {
    fn add(&self) {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    fn done(&self) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        *count -= 1;
        if *count == 0 {
            self.zero.notify_all();
        }
    }

    fn wait_for_none(&self) {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *count > 0 {
            count = self.zero.wait(count).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A job, as its thread runs it.
type Work = Box<dyn FnOnce() + Send>;

/// The threads that run jobs: a thread whose job ended waits for the next
/// one instead of exiting, so a batch spawns about as many threads as
/// jobs run at once, not one per job. A job is handed to an idle thread
/// or, when none is idle, to a new one: it never waits for a thread.
#[derive(Default)]
struct Workers {
    queue: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    jobs: std::collections::VecDeque<Work>,
    /// Threads waiting for a job (each takes one queued job at most).
    idle: usize,
    /// No more jobs: idle threads exit.
    closed: bool,
}

impl Workers {
    /// Runs `work` on an idle thread, or on a new one.
    fn run(self: &Arc<Self>, work: Work) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.idle > queue.jobs.len() {
            queue.jobs.push_back(work);
            drop(queue);
            self.ready.notify_one();
            return;
        }
        drop(queue);
        let workers = Arc::clone(self);
        thread::spawn(move || {
            work();
            while let Some(work) = workers.next() {
                work();
            }
        });
    }

    /// The next job for a thread whose job ended; `None` once closed.
    fn next(&self) -> Option<Work> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.idle += 1;
        loop {
            if let Some(work) = queue.jobs.pop_front() {
                queue.idle -= 1;
                return Some(work);
            }
            if queue.closed {
                queue.idle -= 1;
                return None;
            }
            queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Lets the idle threads exit (every job has ended).
    fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.ready.notify_all();
    }
}

/// Slot numbers for `{%}`: the lowest free one is handed out.
#[derive(Default)]
struct SlotNumbers(Mutex<BTreeSet<usize>>);

impl SlotNumbers {
    fn take(&self) -> usize {
        let mut used = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = (1..).find(|n| !used.contains(n)).unwrap_or(1);
        used.insert(n);
        n
    }

    fn give_back(&self, n: usize) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&n);
    }
}

/// Runs the batch; returns the exit code.
pub fn run(args: BatchArgs) -> Result<i32, Failure> {
    let (jobs_of, mut source) = plan(&args)?;
    if args.timeout.is_some() {
        eprintln!(
            "permits: batch --timeout is deprecated: it is now --job-timeout (run and wait keep --timeout for the wait for a slot)"
        );
    }
    if matches!(args.halt.threshold, Threshold::Percent(_)) && source.len().is_none() {
        // A percentage of all jobs needs them all counted first (as GNU
        // parallel does): read the items now.
        let mut all = Vec::new();
        while let Some(item) = source
            .next_item()
            .map_err(|e| Failure::io("cannot read the items", e))?
        {
            all.push(item);
        }
        source = Source::Given(all.into_iter());
    }
    let resume = match (args.resume, args.resume_failed) {
        (true, _) => Resume::All,
        (_, true) => Resume::Failed,
        _ => Resume::No,
    };
    let (joblog, skip) = match &args.joblog {
        Some(path) if !args.dry_run => {
            let (log, skip) = Joblog::open(path, resume).map_err(|e| {
                Failure::usage(format!("cannot open the job log {}: {e}", path.display()))
            })?;
            (Some(log), skip)
        }
        // --dry-run: write nothing, but show what a resumed run would run.
        Some(path) => {
            let skip = Joblog::skipped(path, resume).map_err(|e| {
                Failure::usage(format!("cannot read the job log {}: {e}", path.display()))
            })?;
            (None, skip)
        }
        None => (None, BTreeMap::new()),
    };
    let jobs = args.jobs.unwrap_or_else(default_jobs);
    let otherwise = match &args.name {
        Some(_) => "ignoring it".to_owned(),
        None => format!("using -j {jobs} of our own"),
    };
    let make = Make::from_env(&otherwise);
    if args.dry_run || matches!(make, Make::DryRun) {
        // `--dry-run` or `make -n`: say what would run, run nothing.
        let mut out = io::stdout().lock();
        let mut number = 0;
        while let Some(item) = source
            .next_item()
            .map_err(|e| Failure::io("cannot read the items", e))?
        {
            number += 1;
            if skip.contains_key(&number) {
                continue;
            }
            let line = items::display(&jobs_of.argv(&item, number, 1));
            if let Err(e) = writeln!(out, "{line}") {
                return Ok(crate::exit::write_failed(&e));
            }
        }
        if let Err(e) = out.flush() {
            return Ok(crate::exit::write_failed(&e));
        }
        return Ok(0);
    }
    let (slots, server, note) = choose_slots(&args, jobs, make)?;
    let server = server.map(Arc::new);
    let spawner = Spawner {
        server: server.clone(),
        client: match (&server, &slots) {
            (None, Slots::Jobserver(sem)) => sem.client().cloned(),
            _ => None,
        },
    };
    let output = if args.ungroup {
        OutputMode::Ungroup
    } else if args.line_buffer {
        OutputMode::Lines
    } else {
        OutputMode::Group
    };
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        cancel: Cancel::new().map_err(|e| Failure::io("cannot create an event", e))?,
        signal: AtomicI32::new(0),
        interrupted: AtomicBool::new(false),
        halt: args.halt,
        timeout: args.job_timeout.or(args.timeout),
        retries: args.retries.max(1),
        output,
        total: source.len(),
        tally: Mutex::new(Tally::default()),
        joblog,
        spawner,
    });
    crate::signals::on_termination({
        let shared = Arc::clone(&shared);
        move |sig| {
            shared.signal.store(sig, Ordering::SeqCst);
            shared.interrupted.store(true, Ordering::SeqCst);
            shared.stop.store(true, Ordering::SeqCst);
            shared.cancel.fire();
        }
    })
    .map_err(|e| Failure::io("cannot install signal handlers", e))?;

    // Ungrouped jobs write to our stderr themselves: a bar would garble it.
    let progress = !args.no_progress && !args.json && !args.ungroup && io::stderr().is_terminal();
    let reporter = Reporter::new(source.len(), args.json, args.keep_order, progress);
    for note in note.into_iter().chain(unread_stdin_note(&args)) {
        reporter.note(&note);
    }
    let (tx, rx) = mpsc::channel::<Event>();
    // Disconnected when the output thread ends (returns or panics).
    let (printing, printer_ended) = mpsc::channel::<()>();
    let printer = thread::spawn({
        let shared = Arc::clone(&shared);
        move || {
            let _printing = printing;
            let mut reporter = reporter;
            for event in rx {
                if reporter.event(event).is_err() && !reporter.output_closed {
                    // Nobody reads our output any more: stop, quietly.
                    reporter.output_closed = true;
                    shared.interrupted.store(true, Ordering::SeqCst);
                    shared.stop.store(true, Ordering::SeqCst);
                    shared.cancel.fire();
                }
            }
            reporter
        }
    });

    let started = Instant::now();
    let running = Arc::new(InFlight::default());
    let numbers = Arc::new(SlotNumbers::default());
    let workers = Arc::new(Workers::default());
    let finite = source.len().is_some();
    // Waiting for the next line of a stdin that stays open must not keep
    // a signal, `--halt now` or a closed stdout from ending the batch.
    let mut source = source
        .read_on_a_thread()
        .map_err(|e| Failure::io("cannot start reading the items", e))?;
    let mut not_started = Vec::new();
    let mut index = 0;
    loop {
        if !finite && shared.stop.load(Ordering::SeqCst) {
            // Reading on could take forever (`tail -f`): stop here.
            break;
        }
        // A stream gives up (`None`) once the batch stops.
        let item = match source.next_item_unless(&shared.stop, HALT_CHECK) {
            Ok(Some(item)) => item,
            Ok(None) => break,
            Err(e) => {
                reporter_note(&tx, format!("cannot read the items: {e}"));
                shared.stop.store(true, Ordering::SeqCst);
                break;
            }
        };
        index += 1;
        if skip.contains_key(&index) {
            // The job log says it ran (--resume) or succeeded
            // (--resume-failed).
            let _ = tx.send(Event::Skipped(index - 1));
            continue;
        }
        let slot = match slots.acquire(&shared.stop) {
            Ok(Some(slot)) => slot,
            Ok(None) => {
                let argv = jobs_of.argv(&item, index, 0);
                not_started.push((index - 1, items::display(&argv)));
                continue;
            }
            Err(e) => {
                // The slot source failed: run nothing more.
                shared.stop.store(true, Ordering::SeqCst);
                reporter_note(&tx, format!("cannot take a slot: {e}"));
                let argv = jobs_of.argv(&item, index, 0);
                not_started.push((index - 1, items::display(&argv)));
                continue;
            }
        };
        let number = numbers.take();
        let argv = jobs_of.argv(&item, index, number);
        let command = items::display(&argv);
        let (shared, tx, running, numbers) = (
            Arc::clone(&shared),
            tx.clone(),
            Arc::clone(&running),
            Arc::clone(&numbers),
        );
        running.add();
        let job = index - 1;
        workers.run(Box::new(move || {
            let mut attempts = 0;
            let mut end = loop {
                attempts += 1;
                let cmd = shared
                    .spawner
                    .command(&argv, shared.output)
                    .map_err(|e| format!("cannot pass the jobserver on: {e}"));
                let end = match cmd {
                    Ok(cmd) => run_job(job, &command, cmd, &slot, &shared, &tx),
                    Err(e) => {
                        let mut end = JobEnd::new(job, &command);
                        end.spawn_error = Some(e);
                        end
                    }
                };
                let again = !end.succeeded()
                    && attempts < shared.retries
                    && !shared.stop.load(Ordering::SeqCst);
                if !again {
                    break end;
                }
            };
            end.attempts = attempts;
            if let Some(log) = &shared.joblog {
                if end.pid.is_some() {
                    if let Err(e) = log.record(&end) {
                        let _ = tx.send(Event::Note(format!("cannot write the job log: {e}")));
                    }
                }
            }
            shared.job_ended(&end);
            numbers.give_back(number);
            drop(slot);
            let _ = tx.send(Event::Ended(Box::new(end)));
            running.done();
        }));
    }
    running.wait_for_none();
    workers.close();
    drop(tx);
    if !printer_ends(&printer_ended, &shared) {
        // Stuck writing to a stdout nobody reads: leave it (and the
        // summary) behind; the status says why we stopped.
        return Ok(128 + shared.signal.load(Ordering::SeqCst));
    }
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
    let closed = reporter.output_closed;
    let summary = reporter.summary(&not_started, started.elapsed());
    let signal = shared.signal.load(Ordering::SeqCst);
    let tally = shared.tally.lock().unwrap_or_else(|e| e.into_inner());
    Ok(if signal != 0 {
        128 + signal
    } else if closed || summary.output_closed {
        crate::exit::BROKEN_PIPE
    } else if let Some(status) = tally.halted_with {
        status
    } else if matches!(shared.halt.threshold, Threshold::Percent(_))
        && shared.halt.when != HaltWhen::Never
    {
        // A percentage halt that never triggered: the share that failed.
        percent(tally.failed, tally.ended)
    } else {
        exit_status(&summary)
    })
}

/// Waits for the output thread to end (`ended` disconnects then). It can
/// be stuck for ever in a write to a stdout that its reader stopped
/// reading without closing it: once a signal has stopped the batch, it
/// gets [`GRACE`] more, then we give up on it. Returns whether it ended.
fn printer_ends(ended: &mpsc::Receiver<()>, shared: &Shared) -> bool {
    let mut signalled: Option<Instant> = None;
    loop {
        match ended.recv_timeout(HALT_CHECK) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return true,
        }
        if shared.signal.load(Ordering::SeqCst) != 0
            && signalled.get_or_insert_with(Instant::now).elapsed() >= GRACE
        {
            return false;
        }
    }
}

/// A line for the user from the dispatcher, through the output thread.
fn reporter_note(tx: &mpsc::Sender<Event>, text: String) {
    let _ = tx.send(Event::Note(text));
}

/// The batch's exit status: 0 when every job ran and succeeded, else the
/// number of jobs that failed or never ran, at most 101 (as GNU parallel).
fn exit_status(summary: &Summary) -> i32 {
    let bad = summary.failed + summary.not_started;
    i32::try_from(bad.min(101)).unwrap_or(101)
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

/// How a shell command runs: a plain `program arg...` line (nothing a
/// shell would interpret, and `program` an executable file rather than a
/// shell builtin such as `exit`) runs directly, anything else as
/// `sh -c COMMAND`.
fn shell_argv(command: &[u8]) -> Vec<OsString> {
    let plain = command
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b" -_./=:,+@%".contains(b));
    if plain {
        let words: Vec<&[u8]> = command
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .collect();
        if let Some(program) = words.first() {
            if is_executable(&String::from_utf8_lossy(program)) {
                return words
                    .iter()
                    .map(|w| OsString::from_vec(w.to_vec()))
                    .collect();
            }
        }
    }
    vec![
        "sh".into(),
        "-c".into(),
        OsString::from_vec(command.to_vec()),
    ]
}

/// The job's command in a process group of its own, stdin closed, output
/// captured (or, with `--ungroup`, ours).
fn spawnable(argv: &[OsString], output: OutputMode) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null()).process_group(0);
    if output != OutputMode::Ungroup {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
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

impl JobEnd {
    /// Labels a job stopped by the cancel event with its real cause.
    fn mark_stopped(&mut self, shared: &Shared) {
        if shared.interrupted.load(Ordering::SeqCst) {
            self.interrupted = true;
        } else {
            self.halted = true;
        }
    }
}

/// Runs one job to its end.
fn run_job(
    index: usize,
    command: &str,
    mut cmd: Command,
    slot: &Slot,
    shared: &Shared,
    events: &mpsc::Sender<Event>,
) -> JobEnd {
    let started = Instant::now();
    let mut end = JobEnd::new(index, command);
    end.started = Some(SystemTime::now());
    if shared.cancel.fired() {
        end.mark_stopped(shared);
        return end;
    }
    let child = match slot.spawn(&mut cmd) {
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
    let mut capture = Capture::new(shared.output, index, events);
    let out = &mut |stream: Stream, bytes: &[u8]| capture.take(stream, bytes);
    running.capture_output();
    let deadline = shared.timeout.map(|t| started + t);
    let status = match running.wait_output_until(deadline, Some(&shared.cancel), out) {
        Ok(Wake::Exited(status)) => Ok(status),
        Ok(Wake::TimedOut) => {
            end.timed_out = true;
            running.terminate_output(out)
        }
        Ok(Wake::Cancelled) => {
            end.mark_stopped(shared);
            running.terminate_output(out)
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
            let _ = running.terminate_output(out);
        }
    }
    // The rest of the output, up to the pipes' end (a read error ends
    // them early, as it ends a stream; what was read is kept). A process
    // the job left behind may hold them open for ever: a signal, `--halt
    // now` or a closed stdout stops the wait, and the job is labelled so.
    if let Ok(false) = running.finish_output(Some(&shared.cancel), out) {
        end.mark_stopped(shared);
    }
    (end.stdout, end.stderr) = capture.finish();
    end.duration = started.elapsed();
    end
}

/// Where a job's captured output goes, in the job's own thread: into a
/// spool per stream, or (`--line-buffer`) passed on a whole line at a
/// time; then the spools hold nothing, but count the bytes.
enum Capture<'a> {
    /// Each stream kept whole, to print when the job ends.
    Group { spools: [Spool; 2] },
    /// Whole lines sent as they come; the rest of a line held back.
    Lines {
        index: usize,
        events: &'a mpsc::Sender<Event>,
        partial: [Vec<u8>; 2],
        counts: [Spool; 2],
    },
}

impl<'a> Capture<'a> {
    fn new(output: OutputMode, index: usize, events: &'a mpsc::Sender<Event>) -> Capture<'a> {
        match output {
            OutputMode::Lines => Capture::Lines {
                index,
                events,
                partial: Default::default(),
                counts: Default::default(),
            },
            // Ungrouped output is not captured: nothing arrives here.
            OutputMode::Group | OutputMode::Ungroup => Capture::Group {
                spools: Default::default(),
            },
        }
    }

    /// Takes one read from `stream`.
    fn take(&mut self, stream: Stream, bytes: &[u8]) {
        let at = stream as usize;
        match self {
            Capture::Group { spools } => spools[at].take(bytes),
            Capture::Lines {
                index,
                events,
                partial,
                counts,
            } => {
                counts[at].count_only(bytes.len());
                let partial = &mut partial[at];
                partial.extend_from_slice(bytes);
                let send = match partial.iter().rposition(|&b| b == b'\n') {
                    Some(last) => {
                        let rest = partial.split_off(last + 1);
                        std::mem::replace(partial, rest)
                    }
                    // A line too long to hold goes out in pieces.
                    None if partial.len() > IN_MEMORY => std::mem::take(partial),
                    None => return,
                };
                send_lines(events, *index, stream, send);
            }
        }
    }

    /// The spools of stdout and stderr, once both pipes reached their end
    /// (with `--line-buffer`, after the last unfinished lines went out).
    fn finish(self) -> (Spool, Spool) {
        let [out, err] = match self {
            Capture::Group { spools } => spools,
            Capture::Lines {
                index,
                events,
                partial,
                counts,
            } => {
                let streams = [Stream::Stdout, Stream::Stderr];
                for (bytes, stream) in partial.into_iter().zip(streams) {
                    if !bytes.is_empty() {
                        send_lines(events, index, stream, bytes);
                    }
                }
                counts
            }
        };
        (out, err)
    }
}

/// Passes lines of job `index`'s output to the output thread.
fn send_lines(events: &mpsc::Sender<Event>, index: usize, stream: Stream, bytes: Vec<u8>) {
    let _ = events.send(Event::Lines {
        index,
        stderr: stream == Stream::Stderr,
        bytes,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every job runs, whether handed out one after another (then
    /// mostly to a thread that is idle again) or many at once: a job
    /// queued for an idle thread is never left behind. (Which thread runs
    /// which job is timing, so it is not asserted.)
    #[test]
    fn workers_run_every_job_queued_or_on_a_new_thread() {
        let workers = Arc::new(Workers::default());
        let (tx, rx) = mpsc::channel();
        for _ in 0..20 {
            let tx = tx.clone();
            workers.run(Box::new(move || tx.send(thread::current().id()).unwrap()));
            rx.recv().unwrap();
        }
        for _ in 0..200 {
            let tx = tx.clone();
            workers.run(Box::new(move || tx.send(thread::current().id()).unwrap()));
        }
        let ran = rx.iter().take(200).count();
        assert_eq!(ran, 200);
        workers.close();
        let queue = workers.queue.lock().unwrap();
        assert!(queue.jobs.is_empty());
    }
}
