//! Command-line flags: the clap definitions and the value parsers that turn
//! text into checked values (`-j`, durations, names). Every bad flag fails
//! here, before anything runs, with a one-line message.

use clap::{Args, Parser, Subcommand, ValueEnum};
use permits_process::named::{check_name, NamedError, NamedOptions, NamedSemaphore};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The largest `-j` accepted: beyond it a limit protects nothing, and a
/// named semaphore would need that many slot files.
pub const MAX_JOBS: usize = 4096;

/// The longest duration accepted (about 31 years).
const MAX_SECONDS: f64 = 1e9;

const EXAMPLES: &str = "\
Examples:
  # At most 4 encoders at once, across unrelated shells and scripts:
  permits run --name encode -j 4 -- ffmpeg -i in.mov out.mp4
  # Many commands, 8 at a time, output kept together per job:
  permits batch -j 8 -- 'make -C a' 'make -C b' 'cargo build'
  find . -name '*.log' -print0 | permits batch -0 -j 4 -- gzip
  permits batch -j 4 -- convert {} {.}.png ::: *.jpg
  # Wait until every holder of a named semaphore is done:
  permits wait --name encode
  permits status --name encode --json
  # Be the jobserver of a build, as make -j8 would be:
  permits serve -j 8 -- cargo build
  # At most 3 deploys across a fleet of hosts (a Redis semaphore; the
  # command gets its fencing token in PERMITS_FENCE=slot:seq):
  permits run --redis redis://redis.internal/ --name deploys -j 3 -- ./deploy.sh
  permits status --redis redis://redis.internal/ --name deploys

Inside `make -jN`, `permits batch` takes its slots from make's jobserver, and
the commands it runs share that pool: `-j` means N in total, not per level.

Named semaphores live in one place per user, whatever the environment
(/run/permits for root, else ~/.local/state/permits, the home taken from the
user database); `permits status` shows it. --dir or PERMITS_DIR chooses
another: private (700, yours) or shared with a group (3770).";

/// Bound how many commands run at once.
#[derive(Debug, Parser)]
#[command(
    name = "permits",
    version = env!("PERMITS_CLI_VERSION"),
    about = "Bound how many commands run at once: named crash-safe semaphores, make-jobserver aware",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one command under a named semaphore (like `sem --fg`)
    Run(RunArgs),
    /// Run many commands with at most N at once (like `xargs -P`)
    Batch(BatchArgs),
    /// Wait until nothing holds a named semaphore
    Wait(WaitArgs),
    /// Show a named semaphore's capacity, holders and waiters
    Status(StatusArgs),
    /// Run a command as the make jobserver of everything it starts (what
    /// `make -jN` does for its recipes)
    Serve(ServeArgs),
    /// Print shell completions or man pages for permits
    Generate(crate::generate::GenerateArgs),
    /// Internal: the watchdog `permits run --redis` puts in its command's
    /// process group, which kills the group if `permits` dies
    #[command(name = "__fleet-watchdog", hide = true)]
    FleetWatchdog,
}

/// `permits run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Name of the semaphore, shared by every process that uses it
    #[arg(long, value_parser = parse_name)]
    pub name: String,
    #[command(flatten)]
    pub state: StateDir,
    /// How many may hold the semaphore at once [default: number of CPUs]
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = parse_jobs, allow_hyphen_values = true)]
    pub jobs: Option<usize>,
    /// Give up waiting for a slot after this long (e.g. 30, 1.5s, 500ms, 2m)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// A label shown by `permits status` [default: the command]
    #[arg(long)]
    pub label: Option<String>,
    /// Return as soon as the command has started; it keeps the slot until
    /// it ends (like `sem` without `--fg`). It still writes to this
    /// process's stdout and stderr: redirect them if a caller reads those
    /// pipes to their end
    #[arg(long, conflicts_with = "redis")]
    pub bg: bool,
    #[command(flatten)]
    pub fleet: FleetRun,
    /// The command and its arguments (after `--`)
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// What `permits run --redis` does to its command when the permit is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnLost {
    /// SIGTERM to the command's process group, SIGKILL after a grace
    /// period (2 s)
    Term,
    /// SIGKILL to the command's process group at once
    Kill,
    /// Let the command run on (it is told nothing; permits still exits
    /// with the lost status when it ends)
    Ignore,
}

/// The flags of `permits run` that use a fleet-wide semaphore in Redis.
#[derive(Debug, Args)]
pub struct FleetRun {
    /// Use a fleet-wide semaphore in this Redis (redis://HOST[:PORT][/DB],
    /// rediss://…, redis+unix:///PATH) instead of a named one on this host.
    /// The command gets its fencing token in PERMITS_FENCE=slot:seq (also
    /// PERMITS_FENCE_SLOT, PERMITS_FENCE_SEQ), runs in its own process
    /// group (so not the terminal's foreground: it cannot read the
    /// terminal), and is killed if `permits` dies. Needs -j: the capacity
    /// is fleet-wide, stored in Redis, and every user must give the same
    #[arg(long, value_name = "URL", value_parser = parse_redis_url)]
    pub redis: Option<String>,
    /// How long a grant lives without renewal, on the Redis server's clock;
    /// renewed every third of it while the command runs [default: 15s]
    #[arg(long, value_name = "DURATION", value_parser = parse_lease, requires = "redis")]
    pub lease: Option<Duration>,
    /// What to do to the command when the permit is lost (its lease could
    /// not be renewed in time); `permits` then exits with status 75
    /// [default: term]
    #[arg(long, value_enum, value_name = "ACTION", requires = "redis")]
    pub on_lost: Option<OnLost>,
}

/// When `--halt` stops a batch: how soon, once what has happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Halt {
    /// How the batch stops.
    pub when: HaltWhen,
    /// What must have happened (unused with [`HaltWhen::Never`]).
    pub on: HaltOn,
    /// How many jobs, or what share of them.
    pub threshold: Threshold,
}

/// How a batch stops once its `--halt` condition is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltWhen {
    /// Keep going: run every job.
    Never,
    /// Start no new job; let running ones finish.
    Soon,
    /// Stop running jobs (SIGTERM, then SIGKILL) and start no new one.
    Now,
}

/// Which job ends count towards a `--halt` threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltOn {
    /// Failed jobs.
    Fail,
    /// Jobs that succeeded.
    Success,
    /// Every job that ended.
    Done,
}

/// A `--halt` threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// This many jobs (at least 1).
    Count(usize),
    /// This percentage of all jobs (1 to 100).
    Percent(u8),
}

impl Halt {
    /// Never halt.
    pub const NEVER: Halt = Halt {
        when: HaltWhen::Never,
        on: HaltOn::Fail,
        threshold: Threshold::Count(1),
    };
}

/// Parses `--halt`, in GNU parallel's forms: `never`, `soon` or `now`
/// (after the first failure), `WHEN,fail=N`, `WHEN,success=N`,
/// `WHEN,done=N` with N a count or a percentage `P%`; and the old
/// numbers 0 (never), 1 (soon) and 2 (now).
pub fn parse_halt(text: &str) -> Result<Halt, String> {
    const FORMS: &str = "use never, soon, now, or soon|now,fail|success|done=N or =P%";
    let trimmed = text.trim();
    let (when, condition) = match trimmed.split_once(',') {
        Some((when, condition)) => (when, Some(condition)),
        None => (trimmed, None),
    };
    let when = match when {
        "never" | "0" => HaltWhen::Never,
        "soon" | "1" => HaltWhen::Soon,
        "now" | "2" => HaltWhen::Now,
        _ => return Err(format!("{trimmed:?} is not a halt condition: {FORMS}")),
    };
    let Some(condition) = condition else {
        return Ok(Halt {
            when,
            ..Halt::NEVER
        });
    };
    if when == HaltWhen::Never {
        return Err(format!(
            "{trimmed:?}: never halts, so it takes no condition: {FORMS}"
        ));
    }
    let bad = || format!("{trimmed:?} is not a halt condition: {FORMS}");
    let (on, value) = condition.split_once('=').ok_or_else(bad)?;
    let on = match on {
        "fail" => HaltOn::Fail,
        "success" => HaltOn::Success,
        "done" => HaltOn::Done,
        _ => return Err(bad()),
    };
    let digits = |d: &str| {
        d.parse::<usize>()
            .ok()
            .filter(|_| d.bytes().all(|b| b.is_ascii_digit()))
    };
    let threshold = match value.strip_suffix('%') {
        Some(p) => match digits(p) {
            Some(p @ 1..=100) => Threshold::Percent(p as u8),
            _ => {
                return Err(format!(
                    "{trimmed:?}: the percentage must be from 1% to 100%"
                ))
            }
        },
        None => match digits(value) {
            Some(n @ 1..) => Threshold::Count(n),
            _ => {
                return Err(format!(
                    "{trimmed:?}: the count must be a whole number from 1"
                ))
            }
        },
    };
    Ok(Halt {
        when,
        on,
        threshold,
    })
}

/// `permits batch --help`, after the flags: the template rule, the exit
/// statuses, examples (the README says the same).
const BATCH_HELP: &str = "\
Items and commands:
  Without items, each word after `--` is one whole shell command (stdin is
  not read). Items come after `:::`, from stdin (lines; NUL-separated with
  -0) or from -a FILE; then the words after `--` are a command template:
  - with `{}` (or -I STR) somewhere, each item replaces it; else the item is
    appended as the last argument (as `xargs -n1`);
  - several words run directly, without a shell: an item is exactly one
    argument (or part of one), whatever bytes it holds;
  - one word runs with `sh -c` (so it may hold shell syntax, as in
    'convert {} {.}.png'), and every substituted value is single-quoted:
    an item is never code.
  Stdin is read as a template's items when any of `{}` (or -I's STR), -0
  or -a - is given and no `:::` is. Empty items are skipped.
  Replacement strings: {} item, {.} without extension, {/} file name, {//}
  directory, {/.} file name without extension, {#} job number, {%} slot.

Exit status:
  0        every job ran and succeeded
  1-100    that many jobs failed or never ran (101: 101 or more)
  --halt   once met (as GNU parallel): fail=1 or done=1 (and soon, now): the
           status of the job that met it; fail=N, done=N: the number of
           failed jobs; fail=P%, done=P%: the share that failed, in
           percent; success=N: 0
  2        bad usage, found before anything runs
  130      Ctrl-C (128 + the signal for others)
  141      stdout closed by its reader (`| head`)

Examples:
  permits batch -j 8 -- 'make -C a' 'make -C b' 'cargo build'
  find . -name '*.log' -print0 | permits batch -0 -j 4 -- gzip --best
  permits batch -j 100% --halt now,fail=1 -- 'convert {} {.}.png' ::: *.jpg
  ls *.csv | permits batch -k --joblog jobs.log -- ./import {}
  ls *.csv | permits batch -k --joblog jobs.log --resume-failed -- ./import {}";

/// `permits batch`.
#[derive(Debug, Args)]
#[command(
    after_help = BATCH_HELP,
    override_usage = "permits batch [OPTIONS] -- COMMAND...\n       \
                      permits batch [OPTIONS] -- TEMPLATE... ::: ITEM...\n       \
                      ... | permits batch [OPTIONS] [-0] -- TEMPLATE-WITH-{}..."
)]
pub struct BatchArgs {
    /// How many jobs may run at once: N, N% of the CPUs, +N or -N CPUs
    /// more or fewer (at least 1), or 0 for as many as possible (up to
    /// 4096) [default: number of CPUs; inside make: make's jobserver
    /// decides]
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = parse_batch_jobs, allow_hyphen_values = true)]
    pub jobs: Option<usize>,
    /// Share the limit with other processes through a named semaphore
    #[arg(long, value_parser = parse_name)]
    pub name: Option<String>,
    #[command(flatten)]
    pub state: StateDir,
    /// Print each job's output in input order (otherwise: as jobs end)
    #[arg(short = 'k', long)]
    pub keep_order: bool,
    /// Stop a job that runs longer than this (SIGTERM, then SIGKILL after
    /// 2 s); it counts as failed (GNU parallel calls this --timeout)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub job_timeout: Option<Duration>,
    /// Deprecated spelling of --job-timeout (in `permits run` and `wait`,
    /// --timeout bounds the wait for a slot instead)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, hide = true, conflicts_with = "job_timeout")]
    pub timeout: Option<Duration>,
    /// When to stop the batch: never; soon (start no new job) or now (also
    /// stop running ones) after the first failure; or WHEN,fail=N,
    /// WHEN,success=N, WHEN,done=N, with N a count or a percentage of all
    /// jobs (P%: every item is read before the first job starts, to count
    /// them). The exit status then follows GNU parallel (see "Exit status")
    #[arg(long, value_name = "WHEN[,COND=N]", value_parser = parse_halt, default_value = "never")]
    pub halt: Halt,
    /// Run a failed job again, up to N times in all (only the last
    /// attempt's output is shown and logged)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub retries: u32,
    /// Log every job that ended to FILE, in GNU parallel's tab-separated
    /// columns (Seq Host Starttime JobRuntime Send Receive Exitval Signal
    /// Command)
    #[arg(long, value_name = "FILE")]
    pub joblog: Option<PathBuf>,
    /// With --joblog: skip the jobs (by job number) that FILE lists, and
    /// append to it
    #[arg(long, requires = "joblog", conflicts_with = "resume_failed")]
    pub resume: bool,
    /// With --joblog: skip the jobs FILE lists as succeeded, run again
    /// the ones it lists as failed, and append to it
    #[arg(long, requires = "joblog")]
    pub resume_failed: bool,
    /// Print output a whole line at a time as jobs run (lines of
    /// different jobs interleave; with --keep-order, only the oldest
    /// running job prints at once, the others when their turn comes)
    #[arg(long, conflicts_with_all = ["ungroup", "json"])]
    pub line_buffer: bool,
    /// Let jobs write straight to our stdout and stderr: fastest, but
    /// their output may mix mid-line (--keep-order has no effect)
    #[arg(short = 'u', long, conflicts_with = "json")]
    pub ungroup: bool,
    /// Print one JSON object per line for every job start and end, and a
    /// summary, instead of the jobs' output and the summary text. Output
    /// that is not UTF-8 is kept exactly: the end event then also carries
    /// stdout_bytes / stderr_bytes, arrays of byte values
    #[arg(long)]
    pub json: bool,
    /// Draw no progress bar (one is drawn, with an ETA, when stderr is a
    /// terminal and --json is off)
    #[arg(long)]
    pub no_progress: bool,
    /// Items are NUL-separated (as `find -print0` writes them), not lines
    #[arg(short = '0', long)]
    pub null: bool,
    /// Use STR instead of `{}` for the item in the command template
    #[arg(short = 'I', value_name = "STR")]
    pub replace: Option<OsString>,
    /// Read items from FILE (`-` for stdin)
    #[arg(short = 'a', long = "arg-file", value_name = "FILE")]
    pub arg_file: Option<PathBuf>,
    /// Print the commands that would run, and run none
    #[arg(long)]
    pub dry_run: bool,
    /// Shell commands, one per argument; or a command template that input
    /// items are put into as single arguments (see "Items and commands"
    /// below)
    #[arg(last = true, value_name = "COMMAND")]
    pub commands: Vec<OsString>,
}

/// How `permits serve` passes its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServeStyle {
    /// fifo if the installed make is 4.4 or later, else pipe
    Auto,
    /// Two inherited descriptors (every make, cargo, jobserver clients)
    Pipe,
    /// A named fifo (make 4.4 and later; make 4.3 stops on it)
    Fifo,
}

/// `permits serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// How many jobs may run at once, the command itself included (as
    /// `make -jN`) [default: number of CPUs]
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = parse_jobs, allow_hyphen_values = true)]
    pub jobs: Option<usize>,
    /// How the pool is passed to the command
    #[arg(long, value_enum, default_value_t = ServeStyle::Auto)]
    pub style: ServeStyle,
    /// The command and its arguments (after `--`)
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// `permits wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Name of the semaphore
    #[arg(long, value_parser = parse_name)]
    pub name: String,
    #[command(flatten)]
    pub state: StateDir,
    /// Give up after this long (exit status 124)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Wait for a fleet-wide semaphore in this Redis (its status is read
    /// every 250 ms)
    #[arg(long, value_name = "URL", value_parser = parse_redis_url)]
    pub redis: Option<String>,
}

/// `permits status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Name of the semaphore [default: every semaphore of this user]
    #[arg(long, value_parser = parse_name)]
    pub name: Option<String>,
    #[command(flatten)]
    pub state: StateDir,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Show a fleet-wide semaphore in this Redis (needs --name)
    #[arg(long, value_name = "URL", value_parser = parse_redis_url, requires = "name")]
    pub redis: Option<String>,
}

/// Where named semaphores live: `--dir`, `PERMITS_DIR`, or the user's own
/// place.
#[derive(Debug, Args)]
pub struct StateDir {
    /// Keep named semaphores in this directory (an absolute path) instead
    /// of this user's own place: private (mode 700, yours) or shared with
    /// a group (mode 3770: setgid, sticky, nothing for others)
    #[arg(long, value_name = "DIR", env = "PERMITS_DIR", value_parser = parse_dir)]
    pub dir: Option<PathBuf>,
}

impl StateDir {
    /// Options for the semaphore `name` in this place.
    pub fn options(&self, name: &str) -> NamedOptions {
        let options = NamedSemaphore::options(name);
        match &self.dir {
            Some(dir) => options.dir(dir),
            None => options,
        }
    }

    /// The directory itself.
    pub fn base(&self) -> Result<PathBuf, NamedError> {
        match &self.dir {
            Some(dir) => Ok(dir.clone()),
            None => NamedSemaphore::default_dir(),
        }
    }
}

/// Parses `--dir`: an absolute path (its safety is checked when a
/// semaphore is opened in it).
pub fn parse_dir(text: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(format!("{text:?} is not an absolute path"))
    }
}

/// Parses a `-j` value: a whole number from 1 to [`MAX_JOBS`].
pub fn parse_jobs(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("expected a number of jobs, got nothing".into());
    }
    if let Some(rest) = trimmed.strip_prefix('-') {
        if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{trimmed} is negative: use a number from 1 to {MAX_JOBS}"
            ));
        }
    }
    if !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{trimmed:?} is not a whole number of jobs"));
    }
    match trimmed.parse::<usize>() {
        Ok(0) => Err(format!(
            "0 jobs would never run anything: use a number from 1 to {MAX_JOBS}"
        )),
        Ok(n) if n <= MAX_JOBS => Ok(n),
        _ => Err(format!("{trimmed} is too large: at most {MAX_JOBS}")),
    }
}

/// Parses `permits batch -j`, as GNU parallel reads it: `N`, `N%` of the
/// CPUs, `+N`/`-N` CPUs more or fewer (never below 1), or `0` for as many
/// as possible ([`MAX_JOBS`]).
pub fn parse_batch_jobs(text: &str) -> Result<usize, String> {
    batch_jobs(text, default_jobs())
}

/// [`parse_batch_jobs`] with the CPU count given (for tests).
fn batch_jobs(text: &str, cpus: usize) -> Result<usize, String> {
    const FORMS: &str = "use N, N%, +N, -N or 0";
    let trimmed = text.trim();
    let number = |digits: &str| -> Result<usize, String> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{trimmed:?} is not a number of jobs: {FORMS} (0: as many as possible)"
            ));
        }
        // Anything too long to parse is far beyond MAX_JOBS.
        Ok(digits.parse::<usize>().unwrap_or(usize::MAX))
    };
    let at_least_one = |n: usize| n.clamp(1, MAX_JOBS);
    if trimmed.is_empty() {
        return Err(format!("expected a number of jobs, got nothing: {FORMS}"));
    }
    if let Some(percent) = trimmed.strip_suffix('%') {
        let p = number(percent)?;
        if p == 0 {
            return Err(format!("{trimmed} of the CPUs is no job at all: {FORMS}"));
        }
        return Ok(at_least_one(cpus.saturating_mul(p) / 100));
    }
    if let Some(more) = trimmed.strip_prefix('+') {
        return Ok(at_least_one(cpus.saturating_add(number(more)?)));
    }
    if let Some(fewer) = trimmed.strip_prefix('-') {
        return Ok(at_least_one(cpus.saturating_sub(number(fewer)?)));
    }
    match number(trimmed)? {
        0 => Ok(MAX_JOBS),
        n if n <= MAX_JOBS => Ok(n),
        _ => Err(format!("{trimmed} is too large: at most {MAX_JOBS}")),
    }
}

/// Parses a duration: seconds (`30`, `1.5`) or with a unit (`500ms`,
/// `30s`, `2m`, `1h`). Non-negative and at most about 31 years.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
            "{trimmed:?} is not a duration: use seconds (30, 1.5) or a unit (500ms, 30s, 2m, 1h)"
        ))
        }
    };
    let value: f64 = number.parse().map_err(|_| {
        format!(
            "{trimmed:?} is not a duration: use seconds (30, 1.5) or a unit (500ms, 30s, 2m, 1h)"
        )
    })?;
    let seconds = value * scale;
    if !seconds.is_finite() || seconds > MAX_SECONDS {
        return Err(format!(
            "{trimmed} is too long: at most {MAX_SECONDS:e} seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The shortest `--lease` the Redis semaphore accepts.
const MIN_LEASE: Duration = Duration::from_millis(100);

/// Parses `--lease`: a duration of at least 100 ms.
pub fn parse_lease(text: &str) -> Result<Duration, String> {
    let lease = parse_duration(text)?;
    if lease < MIN_LEASE {
        return Err(format!(
            "{} is too short for a lease: at least 100ms",
            text.trim()
        ));
    }
    Ok(lease)
}

/// Parses `--redis`: a URL the Redis client understands (checked without
/// connecting).
pub fn parse_redis_url(text: &str) -> Result<String, String> {
    match redis::Client::open(text) {
        Ok(_) => Ok(text.to_owned()),
        Err(e) => Err(format!("{text:?} is not a redis URL: {e}")),
    }
}

/// Checks a semaphore name with the library's one rule
/// ([`check_name`]).
pub fn parse_name(text: &str) -> Result<String, String> {
    check_name(text).map_err(|e| e.to_string())?;
    Ok(text.to_owned())
}

/// The default `-j`: the number of CPUs this process may use.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_JOBS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_accepts_whole_numbers_in_range() {
        assert_eq!(parse_jobs("1"), Ok(1));
        assert_eq!(parse_jobs(" 8 "), Ok(8));
        assert_eq!(parse_jobs(&MAX_JOBS.to_string()), Ok(MAX_JOBS));
    }

    #[test]
    fn jobs_rejects_bad_values_with_a_reason() {
        for (text, needle) in [
            ("0", "never run"),
            ("-1", "negative"),
            ("abc", "not a whole number"),
            ("1.5", "not a whole number"),
            ("2x", "not a whole number"),
            ("", "got nothing"),
            ("4097", "too large"),
            ("99999999999999999999999", "too large"),
        ] {
            let err = parse_jobs(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn batch_jobs_take_gnu_parallels_forms() {
        assert_eq!(batch_jobs("3", 8), Ok(3));
        assert_eq!(batch_jobs("100%", 8), Ok(8));
        assert_eq!(batch_jobs("50%", 8), Ok(4));
        assert_eq!(batch_jobs("200%", 3), Ok(6));
        assert_eq!(batch_jobs("10%", 2), Ok(1), "never below one");
        assert_eq!(batch_jobs("+2", 8), Ok(10));
        assert_eq!(batch_jobs("-1", 8), Ok(7));
        assert_eq!(batch_jobs("-9", 8), Ok(1), "never below one");
        assert_eq!(batch_jobs("0", 8), Ok(MAX_JOBS), "as many as possible");
        assert_eq!(batch_jobs("+99999", 8), Ok(MAX_JOBS));
        for (text, needle) in [
            ("", "got nothing"),
            ("abc", "not a number of jobs"),
            ("1.5", "not a number of jobs"),
            ("%", "not a number of jobs"),
            ("+", "not a number of jobs"),
            ("-x", "not a number of jobs"),
            ("0%", "no job at all"),
            ("4097", "too large"),
        ] {
            let err = batch_jobs(text, 8).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn halt_takes_gnu_parallels_forms() {
        let halt = |when, on, threshold| Halt {
            when,
            on,
            threshold,
        };
        use HaltOn::*;
        use HaltWhen::*;
        use Threshold::*;
        assert_eq!(parse_halt("never"), Ok(Halt::NEVER));
        assert_eq!(parse_halt("0"), Ok(Halt::NEVER));
        assert_eq!(parse_halt("soon"), Ok(halt(Soon, Fail, Count(1))));
        assert_eq!(parse_halt("1"), Ok(halt(Soon, Fail, Count(1))));
        assert_eq!(parse_halt("now"), Ok(halt(Now, Fail, Count(1))));
        assert_eq!(parse_halt("2"), Ok(halt(Now, Fail, Count(1))));
        assert_eq!(parse_halt("now,fail=3"), Ok(halt(Now, Fail, Count(3))));
        assert_eq!(
            parse_halt("soon,fail=10%"),
            Ok(halt(Soon, Fail, Percent(10)))
        );
        assert_eq!(
            parse_halt("now,success=1"),
            Ok(halt(Now, Success, Count(1)))
        );
        assert_eq!(
            parse_halt("soon,done=50%"),
            Ok(halt(Soon, Done, Percent(50)))
        );
        for (text, needle) in [
            ("later", "not a halt condition"),
            ("now,fail", "not a halt condition"),
            ("now,crash=1", "not a halt condition"),
            ("never,fail=1", "takes no condition"),
            ("now,fail=0", "from 1"),
            ("now,fail=-1", "from 1"),
            ("now,fail=x", "from 1"),
            ("soon,fail=0%", "from 1% to 100%"),
            ("soon,fail=101%", "from 1% to 100%"),
        ] {
            let err = parse_halt(text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn durations_parse_units_and_reject_nonsense() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "-1", "abc", "5 days", "1e99", "1.2.3"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn leases_and_redis_urls_are_checked() {
        assert_eq!(parse_lease("100ms"), Ok(Duration::from_millis(100)));
        assert!(parse_lease("99ms").unwrap_err().contains("too short"));
        assert!(parse_lease("soon").is_err());
        for good in [
            "redis://127.0.0.1/",
            "redis+unix:///tmp/r.sock",
            "redis://h:6380/2",
        ] {
            assert!(parse_redis_url(good).is_ok(), "{good:?} refused");
        }
        for bad in ["", "127.0.0.1", "http://x/", "redis://"] {
            assert!(parse_redis_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(parse_name("encode-1.x_y"), Ok("encode-1.x_y".into()));
        for bad in [
            "",
            ".hidden",
            "-dash",
            "a/b",
            "a b",
            "../x",
            &"x".repeat(65),
        ] {
            assert!(parse_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
