//! Workload 6, processes: the per-job cost of limiting how many OS
//! processes run at once. 200 jobs of `/bin/true` at most 4 at a time
//! through `permits batch`, `xargs -P4` (the reference), `xargs -P4` with a
//! shell per job (what `permits batch` does: each job is `sh -c`), GNU
//! `parallel`, and a plain shell loop without any limit (the floor); and 50
//! serial calls of `permits run` against `sem --fg` (one limiter process per
//! job). Tools that are not installed are reported as such, not guessed.
//! `permits` itself is built first if needed.

use super::{collect, interleave, Cell, Plan, Sample, Spec};
use crate::report::{Unit, Workload};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Jobs per batch repetition.
const JOBS: usize = 200;
/// Serial `run` calls per repetition.
const CALLS: usize = 50;

/// Whether `program` runs (`--version` exits 0).
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The `permits` binary next to this one, built if missing.
pub(crate) fn permits_binary() -> Option<PathBuf> {
    let dir = std::env::current_exe().ok()?.parent()?.to_path_buf();
    let bin = dir.join("permits");
    if !bin.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let release = dir.file_name().is_some_and(|d| d == "release");
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "permits-cli"]);
        if release {
            build.arg("--release");
        }
        let _ = build.status();
    }
    bin.exists().then_some(bin)
}

/// Runs `sh -c script`, returns microseconds per job (None if it failed).
fn time_script(script: &str, jobs: usize, env: &[(&str, &Path)]) -> Option<f64> {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env_remove("MAKEFLAGS").env_remove("CARGO_MAKEFLAGS");
    let began = Instant::now();
    let ok = cmd.status().is_ok_and(|s| s.success());
    ok.then(|| began.elapsed().as_secs_f64() * 1e6 / jobs as f64)
}

fn sample(us: Option<f64>) -> Sample {
    Sample {
        value: us,
        ..Sample::default()
    }
}

/// Runs the family.
pub fn run(plan: &Plan) -> Vec<Workload> {
    let permits = permits_binary();
    let state = tempfile_dir();
    let state_env = [("XDG_RUNTIME_DIR", state.as_path())];
    let seq = format!("seq {JOBS}");
    let mut cells: Vec<Cell<'_>> = Vec::new();
    let batch = "process_jobs_200_p4".to_owned();
    let mut add = |workload: &String, id: &'static str, script: Option<String>, jobs: usize| {
        let env = state_env;
        cells.push(Cell {
            workload: workload.clone(),
            id,
            run: Box::new(move || {
                sample(script.as_deref().and_then(|s| time_script(s, jobs, &env)))
            }),
        });
    };
    add(
        &batch,
        "xargs_p4",
        Some(format!("{seq} | xargs -P4 -n1 /bin/true")),
        JOBS,
    );
    add(
        &batch,
        "permits_batch",
        permits.as_ref().map(|p| {
            format!(
                "{seq} | sed 's|.*|/bin/true|' | {} batch -j 4 --no-progress 2>/dev/null",
                p.display()
            )
        }),
        JOBS,
    );
    add(
        &batch,
        "xargs_p4_sh",
        Some(format!("{seq} | xargs -P4 -I{{}} sh -c /bin/true")),
        JOBS,
    );
    add(
        &batch,
        "gnu_parallel",
        installed("parallel").then(|| format!("{seq} | parallel -j4 /bin/true")),
        JOBS,
    );
    add(
        &batch,
        "shell_loop",
        Some(format!("for i in $({seq}); do /bin/true; done")),
        JOBS,
    );
    let serial = "process_run_serial_50".to_owned();
    add(
        &serial,
        "permits_run",
        permits.as_ref().map(|p| {
            format!(
                "for i in $(seq {CALLS}); do {} run --name bench -j 4 -- /bin/true || exit 1; done",
                p.display()
            )
        }),
        CALLS,
    );
    add(
        &serial,
        "sem_fg",
        installed("sem").then(|| {
            format!("for i in $(seq {CALLS}); do sem --fg -j4 --id permits-bench /bin/true || exit 1; done")
        }),
        CALLS,
    );
    let samples = interleave("processes", &mut cells, plan.reps);
    let specs = vec![
        Spec {
            name: batch.clone(),
            family: "processes",
            title: format!("Processes: {JOBS} jobs of /bin/true, at most 4 at once"),
            description: format!(
                "Wall time per job for {JOBS} jobs through each limiter (a row with no number: the tool is not installed; `apt-get install parallel`). `shell_loop` runs them one after another with no limiter at all: the cost of starting a process. `permits batch` runs a plain `program args` line directly (as here) and anything else through `sh -c` (compare that with `xargs_p4_sh`)."
            ),
            unit: Unit::Us,
            reference: Some("xargs_p4"),
            floor_ratio: false,
            columns: Vec::new(),
        },
        Spec {
            name: serial.clone(),
            family: "processes",
            title: format!("Processes: {CALLS} serial calls of a one-job limiter"),
            description: "Wall time per call of a limiter process that runs one job under a named semaphore of 4 (`permits run` against GNU parallel's `sem --fg`).".into(),
            unit: Unit::Us,
            reference: Some("permits_run"),
            floor_ratio: false,
            columns: Vec::new(),
        },
    ];
    let workloads = collect(specs, &cells, &samples);
    let _ = std::fs::remove_dir_all(&state);
    workloads
}

/// A private directory for the named semaphore's state.
fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("permits-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    dir
}
