//! Workload 7, jobserver: what a process-level token costs.
//!
//! * `jobserver_token`: in one process, acquire then release one token of
//!   a pool that has tokens free: our jobserver [`Client`] (a pipe read
//!   and write), our [`JobserverSemaphore`] (its implicit token, and a
//!   second row with the implicit token held so that every permit is a
//!   pipe token), the `jobserver` crate, a POSIX named semaphore, and our
//!   [`NamedSemaphore`]; ns per acquire + release.
//! * `jobserver_handoff` (see `handoff.rs`): two processes pass tokens back
//!   and forth; µs per handoff.
//!
//! A row whose pool cannot be created (another platform, a full `/dev/shm`)
//! has no value; the reason is printed once.

pub(crate) mod ffi;
mod handoff;

pub use handoff::child_main;

use super::repeat::timed;
use super::{collect, interleave, Cell, Plan, Sample, Spec};
use crate::adapters::competitor_version;
use crate::report::{Unit, Workload};
use permits_process::jobserver::{Client, JobserverSemaphore, Server};
use permits_process::named::NamedSemaphore;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Slots of the pools of `jobserver_token`.
const SLOTS: usize = 4;

/// The reference row of both workloads.
pub const REFERENCE: &str = "jobserver_crate";

/// The rows of `jobserver_token`, in report order.
pub const TOKEN_ROWS: [&str; 6] = [
    "permits_process_client",
    "jobserver_crate",
    "permits_process_semaphore",
    "permits_process_semaphore_pipe",
    "permits_named",
    "posix_sem",
];

/// A loop of `n` acquire + release pairs, timed; `None` if one failed.
type Body<'a> = Box<dyn FnMut(u64) -> Option<Duration> + 'a>;

/// Times `n` pairs of `acquire` + drop.
fn pairs<G, E>(n: u64, mut acquire: impl FnMut() -> Result<G, E>) -> Option<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        let token = acquire().ok()?;
        black_box(&token);
        drop(token);
    }
    Some(start.elapsed())
}

/// The loop of one `jobserver_token` row, or why it cannot run.
fn token_body<'a>(id: &str, dir: &'a Path) -> Result<Body<'a>, String> {
    let server = || Server::new(SLOTS).map_err(|e| format!("Server::new({SLOTS}): {e}"));
    let semaphore = |server: &Server| {
        server
            .semaphore()
            .map_err(|e| format!("Server::semaphore: {e}"))
    };
    Ok(match id {
        "permits_process_client" => {
            let server = server()?;
            let client: Client = server.client();
            Box::new(move |n| {
                let _pool = &server;
                pairs(n, || client.acquire())
            })
        }
        "jobserver_crate" => {
            let client = jobserver::Client::new(SLOTS)
                .map_err(|e| format!("jobserver::Client::new({SLOTS}): {e}"))?;
            Box::new(move |n| pairs(n, || client.acquire()))
        }
        "permits_process_semaphore" => {
            let server = server()?;
            let sem: JobserverSemaphore = semaphore(&server)?;
            Box::new(move |n| {
                let _pool = &server;
                pairs(n, || sem.acquire_blocking())
            })
        }
        "permits_process_semaphore_pipe" => {
            let server = server()?;
            let sem = semaphore(&server)?;
            // Hold the implicit token for the whole row: every permit of
            // the loop is then a token read from the pipe (and written back
            // on release, since nobody else waits).
            let implicit = sem
                .try_acquire()
                .map_err(|e| format!("JobserverSemaphore::try_acquire: {e}"))?;
            Box::new(move |n| {
                let _held = (&server, &implicit);
                pairs(n, || sem.acquire_blocking())
            })
        }
        "permits_named" => {
            let sem = NamedSemaphore::options("bench-token")
                .dir(dir)
                .capacity(SLOTS)
                .open()
                .map_err(|e| format!("NamedSemaphore::open: {e}"))?;
            Box::new(move |n| pairs(n, || sem.acquire()))
        }
        "posix_sem" => {
            let name = format!("/permits-bench-{}-token", std::process::id());
            let sem = ffi::PosixSem::create(&name, SLOTS as u32)
                .map_err(|e| format!("sem_open({name}): {e}"))?;
            // Nobody else opens it: remove the name at once.
            sem.unlink();
            Box::new(move |n| pairs(n, || sem.acquire()))
        }
        _ => return Err(format!("unknown row {id}")),
    })
}

/// A private (0700) directory for the named semaphores, emptied first.
fn private_dir() -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("permits-bench-jobserver-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(&dir) {
        Ok(()) => Some(dir),
        Err(e) => {
            eprintln!(
                "  jobserver: cannot create {}: {e}; named rows not measured",
                dir.display()
            );
            None
        }
    }
}

/// A cell that runs `body` sized to `target`, or reports nothing.
fn cell<'a>(
    workload: &str,
    id: &'static str,
    target: Duration,
    unit_ns: f64,
    body: Result<Body<'a>, String>,
) -> Cell<'a> {
    let run: Box<dyn FnMut() -> Sample + 'a> = match body {
        Ok(body) => Box::new(timed(target, unit_ns, body)),
        Err(why) => {
            eprintln!("  jobserver: {workload} {id} not measured: {why}");
            Box::new(Sample::default)
        }
    };
    Cell {
        workload: workload.into(),
        id,
        run,
    }
}

/// Runs the family.
pub fn run(plan: &Plan) -> Vec<Workload> {
    let dir = private_dir();
    let no_dir = || Err("no private directory".to_owned());
    let mut cells: Vec<Cell<'_>> = Vec::new();
    for id in TOKEN_ROWS {
        let body = match (&dir, id) {
            (None, "permits_named") => no_dir(),
            (dir, id) => token_body(id, dir.as_deref().unwrap_or(Path::new("."))),
        };
        cells.push(cell("jobserver_token", id, plan.loop_time, 1.0, body));
    }
    for mode in handoff::Mode::ALL {
        let body: Result<Body<'_>, String> = match (&dir, mode) {
            (None, handoff::Mode::Named) => no_dir(),
            (dir, mode) => {
                let dir = dir.clone().unwrap_or_default();
                Ok(Box::new(move |steps| handoff::measure(mode, steps, &dir)))
            }
        };
        // µs per handoff: two handoffs per step of the timing process.
        cells.push(cell(
            "jobserver_handoff",
            mode.id(),
            plan.window,
            2_000.0,
            body,
        ));
    }
    let samples = interleave("jobserver", &mut cells, plan.reps);
    let jobserver = competitor_version("jobserver");
    let specs = vec![
        Spec {
            name: "jobserver_token".into(),
            family: "jobserver",
            title: "Jobserver: token acquire + release in one process".into(),
            description: format!(
                "One thread takes one token from a pool of {SLOTS} with tokens free and gives it back; ns per pair. `permits_process_client`: `Server::new({SLOTS})`'s `client()`, `acquire()` (a read of the pipe) and drop (a write). `jobserver_crate`: jobserver {jobserver}, `Client::new({SLOTS})`, `acquire()` and drop. `permits_process_semaphore`: `Server::semaphore()`, `acquire_blocking()`, which takes the process's implicit token (no pipe I/O); `permits_process_semaphore_pipe`: the same with the implicit token held, so every permit is a pipe token. `permits_named`: `NamedSemaphore` of {SLOTS} in a private directory, `acquire()` and drop. `posix_sem`: a POSIX named semaphore of {SLOTS}, `sem_wait` + `sem_post`."
            ),
            unit: Unit::Ns,
            reference: Some(REFERENCE),
            floor_ratio: false,
            columns: Vec::new(),
        },
        Spec {
            name: "jobserver_handoff".into(),
            family: "jobserver",
            title: "Jobserver: token handoff between two processes".into(),
            description: handoff::DESCRIPTION.into(),
            unit: Unit::Us,
            reference: Some(REFERENCE),
            floor_ratio: false,
            columns: Vec::new(),
        },
    ];
    let workloads = collect(specs, &cells, &samples);
    drop(cells);
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    workloads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_row_runs() {
        let dir = private_dir().expect("a private temp dir");
        for id in TOKEN_ROWS {
            let mut body = token_body(id, &dir).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert!(body(100).is_some(), "{id}: a loop failed");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn row_ids_are_unique_and_name_the_reference() {
        let mut ids: Vec<&str> = TOKEN_ROWS
            .into_iter()
            .chain(handoff::Mode::ALL.map(handoff::Mode::id))
            .collect();
        assert!(TOKEN_ROWS.contains(&REFERENCE));
        assert!(handoff::Mode::ALL
            .map(handoff::Mode::id)
            .contains(&REFERENCE));
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        // Handoff rows reuse the token rows' ids where they measure the
        // same implementation.
        assert_eq!(n - ids.len(), handoff::Mode::ALL.len());
    }
}
