//! Workload 6, processes: the per-job cost of limiting how many OS
//! processes run at once. 200 jobs of `/bin/true` at most 4 at a time
//! through `permits batch`, `xargs -P4` (the reference), `xargs -P4` with a
//! shell per job (what `permits batch` does: each job is `sh -c`), GNU
//! `parallel`, and a plain shell loop without any limit (the floor); and 50
//! serial calls of `permits run` against `sem --fg` (one limiter process per
//! job). Tools that are not installed are reported as such, not guessed.
//! `permits` itself is built first if needed.
//!
//! Issue 13's rows: 2 000 jobs of `true`, 4 at a time, through `permits
//! batch` with items from stdin, plain (the item appended, as `xargs -n1`)
//! and with a `{}` template (as `xargs -I{}`), each against `xargs -P 4`
//! doing the same; and the peak RSS of one job printing 300 MB through
//! `permits batch` and GNU parallel (`peak.rs` reads it).

use super::{collect, interleave, Cell, Plan, Sample, Spec};
use crate::report::{Column, Fmt, Unit, Workload};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Jobs per batch repetition.
const JOBS: usize = 200;
/// Serial `run` calls per repetition.
const CALLS: usize = 50;
/// Jobs per repetition of issue 13's batch rows.
const BATCH_JOBS: usize = 2_000;
/// Bytes the one job of the memory row prints.
const BIG_OUTPUT: u64 = 300_000_000;

/// Issue 13: `permits batch -j 4` over 2 000 items, item appended.
pub const BATCH_PLAIN: &str = "process_batch_2000_p4";
/// Issue 13: the same through a `{}` template.
pub const BATCH_PLACEHOLDER: &str = "process_batch_2000_p4_placeholder";
/// Issue 13: peak RSS of a job printing 300 MB.
pub const BATCH_PEAK_RSS: &str = "process_batch_peak_rss_300mb";
/// The row of `permits batch` in the issue 13 workloads.
pub const PERMITS_BATCH: &str = "permits_batch";

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

/// Runs `program args` (no shell) with output to /dev/null and returns
/// its peak RSS in bytes as the sample (None if it failed).
/// GNU time, which reports its child's peak RSS.
const GNU_TIME: &str = "/usr/bin/time";

/// Runs `program` under GNU time (`-f %M`) and returns its peak RSS in
/// bytes. Not `wait4` on our own child: Linux carries a process's peak
/// across `execve`, so a child forked from this (large) benchmark process
/// reports at least the benchmark's own RSS. GNU time is a small process;
/// the child it forks starts from nothing, and `%M` is that child's peak
/// (and its reaped jobs', a `head` of about 1 MB). Without GNU time
/// (`apt-get install time`) the row stays empty.
fn peak_rss(program: &Path, args: &[&str], env: &[(&str, &Path)]) -> Sample {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let report = std::env::temp_dir().join(format!("permits-bench-rss-{}-{n}", std::process::id()));
    let mut cmd = Command::new(GNU_TIME);
    cmd.args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env_remove("MAKEFLAGS").env_remove("CARGO_MAKEFLAGS");
    let ok = cmd.status().is_ok_and(|s| s.success());
    let kib = std::fs::read_to_string(&report)
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok());
    let _ = std::fs::remove_file(&report);
    let value = kib.filter(|_| ok).map(|k| k * 1024.0);
    Sample {
        value,
        extra: value
            .map(|b| vec![("peak_mb", b / 1e6)])
            .unwrap_or_default(),
        ..Sample::default()
    }
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
    // Issue 13: 2 000 trivial jobs, item appended / through `{}`.
    let many = format!("seq {BATCH_JOBS}");
    let plain = BATCH_PLAIN.to_owned();
    let permits_batch = |template: &str| {
        permits.as_ref().map(|p| {
            format!(
                "{many} | {} batch -j 4 --no-progress {template} 2>/dev/null",
                p.display()
            )
        })
    };
    add(
        &plain,
        "xargs_p4",
        Some(format!("{many} | xargs -P 4 -n1 true")),
        BATCH_JOBS,
    );
    // `-a -`: stdin holds the items although the template has no `{}`.
    add(
        &plain,
        PERMITS_BATCH,
        permits_batch("-a - -- true"),
        BATCH_JOBS,
    );
    // Not captured: jobs write straight to our stdout, as under xargs.
    add(
        &plain,
        "permits_batch_ungroup",
        permits_batch("-u -a - -- true"),
        BATCH_JOBS,
    );
    add(
        &plain,
        "gnu_parallel",
        installed("parallel").then(|| format!("{many} | parallel --will-cite -j4 true")),
        BATCH_JOBS,
    );
    let placeholder = BATCH_PLACEHOLDER.to_owned();
    add(
        &placeholder,
        "xargs_p4_i",
        Some(format!("{many} | xargs -P 4 -I{{}} true {{}}")),
        BATCH_JOBS,
    );
    // Two words: run directly, as `xargs` does.
    add(
        &placeholder,
        PERMITS_BATCH,
        permits_batch("-- true {}"),
        BATCH_JOBS,
    );
    add(
        &placeholder,
        "permits_batch_ungroup",
        permits_batch("-u -- true {}"),
        BATCH_JOBS,
    );
    add(
        &placeholder,
        "gnu_parallel",
        installed("parallel").then(|| format!("{many} | parallel --will-cite -j4 true {{}}")),
        BATCH_JOBS,
    );
    // One word: `sh -c` per job, the item single-quoted.
    add(
        &placeholder,
        "permits_batch_sh",
        permits_batch("-- 'true {}'"),
        BATCH_JOBS,
    );
    add(
        &placeholder,
        "xargs_p4_i_sh",
        Some(format!(
            "{many} | xargs -P 4 -I{{}} sh -c 'true \"$1\"' sh {{}}"
        )),
        BATCH_JOBS,
    );
    // Issue 13: the peak RSS of one job printing 300 MB, output to /dev/null.
    let job = format!("head -c {BIG_OUTPUT} /dev/zero");
    let memory = BATCH_PEAK_RSS.to_owned();
    if let Some(p) = permits.clone() {
        let job = job.clone();
        cells.push(Cell {
            workload: memory.clone(),
            id: PERMITS_BATCH,
            run: Box::new(move || {
                peak_rss(
                    &p,
                    &["batch", "-j", "1", "--no-progress", "--", &job],
                    &state_env,
                )
            }),
        });
    }
    if installed("parallel") {
        cells.push(Cell {
            workload: memory.clone(),
            id: "gnu_parallel",
            run: Box::new(move || {
                peak_rss(
                    Path::new("parallel"),
                    &["--will-cite", "-j1", ":::", &job],
                    &state_env,
                )
            }),
        });
    }
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
        Spec {
            name: plain,
            family: "processes",
            title: format!("Processes: `permits batch` over {BATCH_JOBS} items, at most 4 at once"),
            description: format!(
                "Wall time per job for `seq {BATCH_JOBS} | … true` (each job runs `true N`): `xargs -P 4 -n1 true` (the reference), `permits batch -j 4 -a - -- true` (the item appended; `-a -` reads stdin although the template has no `{{}}`), `permits_batch_ungroup`: the same with `-u` (output not captured: jobs write straight to our stdout, as under xargs), `parallel -j4 true` (a row with no number: not installed). Issue 13's target: `permits_batch` ≤ 1.1× the reference."
            ),
            unit: Unit::Us,
            reference: Some("xargs_p4"),
            floor_ratio: false,
            columns: Vec::new(),
        },
        Spec {
            name: placeholder,
            family: "processes",
            title: format!("Processes: `permits batch` over {BATCH_JOBS} items through a `{{}}` template, at most 4 at once"),
            description: format!(
                "Wall time per job for `seq {BATCH_JOBS} | … true {{}}`: `xargs -P 4 -I{{}} true {{}}` (the reference), `permits batch -j 4 -- true {{}}` (a template of two words runs directly, without a shell, as xargs does), the same with `-u` (`permits_batch_ungroup`), `parallel -j4 true {{}}`. Then the one-word form, which runs `sh -c` per job with the item single-quoted: `permits batch -j 4 -- 'true {{}}'` (`permits_batch_sh`), next to `xargs -P 4 -I{{}} sh -c 'true \"$1\"' sh {{}}` (`xargs_p4_i_sh`). Issue 13's target: `permits_batch` ≤ 1.1× the reference."
            ),
            unit: Unit::Us,
            reference: Some("xargs_p4_i"),
            floor_ratio: false,
            columns: Vec::new(),
        },
        Spec {
            name: memory,
            family: "processes",
            title: "Processes: peak memory of a job printing 300 MB".into(),
            description: format!(
                "Peak RSS of the limiter process while one job (`head -c {BIG_OUTPUT} /dev/zero`) prints {} MB, its output grouped and sent to /dev/null: `permits batch -j 1 -- 'head -c …'` against `parallel -j1 ::: 'head -c …'` (the reference; it spools to temporary files). The figure is GNU time's `%M` for the limiter (its peak RSS and its reaped jobs', a `head` of about 1 MB), run under `/usr/bin/time` so that it does not inherit the benchmark's own peak across `execve`. Issue 13's target: ≤ 20 MB.",
                BIG_OUTPUT / 1_000_000
            ),
            unit: Unit::Bytes,
            reference: Some("gnu_parallel"),
            floor_ratio: false,
            columns: vec![Column {
                key: "peak_mb",
                header: "MB",
                fmt: Fmt::Fixed(1),
            }],
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
