//! A `make -j N` style job limit: a semaphore with N permits, where N
//! comes from `-j N` (also `-jN`, `--jobs N`, `--jobs=N`) or, by default,
//! from `std::thread::available_parallelism()`. Like make, the scheduler
//! takes a job slot before it starts each job and the job gives it back
//! when it ends; the example asserts that no more than N jobs ever run at
//! once. A `-j` that is not a positive whole number is rejected with a
//! clear message and exit code 2, before anything runs. Jobs are simulated
//! with a short sleep. Run with
//! `cargo run -p permits --example jobs_limit -- -j 3`.

use permits::Semaphore;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const UNITS: usize = 12;
const USAGE: &str = "usage: jobs_limit [-j N | --jobs N]";

/// Where the job limit came from.
#[derive(Debug, PartialEq)]
enum Jobs {
    Given(NonZeroUsize),
    Default,
}

/// Parses the arguments (without the program name).
fn parse(args: &[String]) -> Result<Jobs, String> {
    let mut jobs = Jobs::Default;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-j" | "--jobs" => args
                .next()
                .ok_or_else(|| format!("`{arg}` needs a number of jobs"))?
                .as_str(),
            _ => match arg
                .strip_prefix("--jobs=")
                .or_else(|| arg.strip_prefix("-j"))
            {
                Some(value) => value,
                None => return Err(format!("unexpected argument `{arg}`")),
            },
        };
        jobs = Jobs::Given(validate(value)?);
    }
    Ok(jobs)
}

fn validate(value: &str) -> Result<NonZeroUsize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("the number of jobs must be at least 1, got `0`".into()),
        Ok(n) => Ok(NonZeroUsize::new(n).expect("not zero")),
        Err(_) => Err(format!(
            "the number of jobs must be a positive whole number, got `{value}`"
        )),
    }
}

/// Runs `UNITS` simulated compile jobs with at most `limit` at once.
/// Returns the most that ran at once.
fn run(limit: usize) -> usize {
    let slots = Arc::new(Semaphore::new(limit));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for unit in 1..=UNITS {
        // Take a job slot before starting the job.
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .wait()
            .expect("never closed");
        let (running, peak, finished) = (
            Arc::clone(&running),
            Arc::clone(&peak),
            Arc::clone(&finished),
        );
        threads.push(thread::spawn(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(now <= limit, "{now} jobs at once with -j {limit}");
            peak.fetch_max(now, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(2 + (unit as u64 % 3))); // compile
            finished.fetch_add(1, Ordering::SeqCst);
            running.fetch_sub(1, Ordering::SeqCst);
            drop(slot); // the slot goes back when the job ends
        }));
    }
    slots.wait_idle().wait();
    assert_eq!(finished.load(Ordering::SeqCst), UNITS);
    assert_eq!(slots.available_permits(), limit);
    for t in threads {
        t.join().unwrap();
    }
    peak.load(Ordering::SeqCst)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let jobs = match parse(&args) {
        Ok(jobs) => jobs,
        Err(msg) => {
            eprintln!("jobs_limit: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let (limit, source) = match jobs {
        Jobs::Given(n) => (n.get(), "from -j"),
        Jobs::Default => (
            thread::available_parallelism().map_or(1, NonZeroUsize::get),
            "from available_parallelism()",
        ),
    };
    println!("-j {limit} ({source}): compiling {UNITS} units, at most {limit} at a time.");
    let peak = run(limit);
    println!("All {UNITS} units compiled; at most {peak} ran at once.");
    assert!((1..=limit.min(UNITS)).contains(&peak));

    // The argument checks, shown on fixed inputs.
    let cases: [(&[&str], Result<Jobs, &str>); 6] = [
        (&["-j", "4"], Ok(Jobs::Given(NonZeroUsize::new(4).unwrap()))),
        (&["-j8"], Ok(Jobs::Given(NonZeroUsize::new(8).unwrap()))),
        (
            &["--jobs=2"],
            Ok(Jobs::Given(NonZeroUsize::new(2).unwrap())),
        ),
        (&["-j", "0"], Err("at least 1")),
        (&["-j", "-3"], Err("positive whole number, got `-3`")),
        (&["-j", "many"], Err("positive whole number, got `many`")),
    ];
    for (argv, expected) in cases {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let got = parse(&argv);
        match (&got, &expected) {
            (Ok(j), Ok(e)) => assert_eq!(j, e),
            (Err(msg), Err(part)) => assert!(msg.contains(part), "{msg}"),
            _ => panic!("{argv:?}: got {got:?}, expected {expected:?}"),
        }
        match got {
            Ok(Jobs::Given(n)) => println!("  {:<12} -> -j {n}", argv.join(" ")),
            Ok(Jobs::Default) => println!("  {:<12} -> the default", argv.join(" ")),
            Err(msg) => println!("  {:<12} -> rejected (exit code 2): {msg}", argv.join(" ")),
        }
    }
    ExitCode::SUCCESS
}
