//! Side by side with GNU parallel (issue 13): a table of everyday cases in
//! the syntax both tools share, each run through `parallel` and through
//! `permits batch`, comparing standard output and exit status (and, for
//! `--joblog`, the columns that do not depend on timing).
//!
//! GNU parallel must be installed (`apt-get install parallel`; `.ci/run`
//! does it): without it the test fails with one line saying so, rather
//! than passing without having compared anything. It runs with a private
//! `HOME` holding the `will-cite` marker and `SHELL=/bin/sh`, so both
//! tools use the same shell.
//!
//! Where permits differs on purpose, the case says so and asserts
//! permits' own behaviour instead (see `DIFFERS`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// One case: options before the template, the template, the items
/// (after `:::`; `None`: from stdin), and stdin.
struct Case {
    name: &'static str,
    options: &'static [&'static str],
    template: &'static [&'static str],
    items: Option<&'static [&'static str]>,
    stdin: &'static [u8],
}

const fn case(
    name: &'static str,
    options: &'static [&'static str],
    template: &'static [&'static str],
    items: &'static [&'static str],
) -> Case {
    Case {
        name,
        options,
        template,
        items: Some(items),
        stdin: b"",
    }
}

const fn piped(
    name: &'static str,
    options: &'static [&'static str],
    template: &'static [&'static str],
    stdin: &'static [u8],
) -> Case {
    Case {
        name,
        options,
        template,
        items: None,
        stdin,
    }
}

const NAMES: &[&str] = &[
    "a b  c.log",
    "it's \"quoted\".log",
    "x;touch PWNED;.log",
    "b $(touch PWNED).log",
    "`touch PWNED`",
    "* ? [a] ~ \\ | & > <",
    "-n",
];

const PATHS: &[&str] = &[
    "dir/sub/file.tar.gz",
    "plain",
    "/abs/x.y",
    "a b/c d.e",
    "./rel.txt",
    ".hidden",
];

const STATUSES: &[&str] = &["0", "3", "0", "5", "7", "0"];

fn cases() -> Vec<Case> {
    vec![
        case("names, run directly", &["-k"], &["echo", "{}"], NAMES),
        case(
            "names, one-word shell template",
            &["-k"],
            &["echo {}"],
            NAMES,
        ),
        case("names, appended", &["-k"], &["echo"], NAMES),
        case(
            "replacement strings",
            &["-k"],
            &["echo", "{}", "{.}", "{/}", "{//}", "{/.}"],
            PATHS,
        ),
        case("job numbers", &["-k", "-j", "3"], &["echo {#}:{}"], NAMES),
        case("-I", &["-k", "-I", "@@"], &["echo", "x@@y"], NAMES),
        case(
            "-k keeps input order",
            &["-k", "-j", "4"],
            &["seq {} | tail -n 1"],
            &["50000", "1", "20000", "2", "9999", "3"],
        ),
        piped(
            "lines of stdin",
            &["-k"],
            &["printf '[%s]\\n' {}"],
            b"one\ntwo words\n it's \n",
        ),
        piped(
            "-0 with newlines and bytes",
            &["-k", "-0"],
            &["printf '[%s]\\n' {}"],
            b"new\nline\0a b\0bad \xff utf8\0-n\0",
        ),
        case(
            "exit status: failed jobs counted",
            &["-k"],
            &["echo {}; exit {}"],
            STATUSES,
        ),
        case("exit status: one failure", &[], &["exit 9"], &["x"]),
        case(
            "--halt 1",
            &["-k", "-j", "1", "--halt", "1"],
            &["echo {}; exit {}"],
            STATUSES,
        ),
        case(
            "--halt 2",
            &["-k", "-j", "1", "--halt", "2"],
            &["echo {}; exit {}"],
            STATUSES,
        ),
        case(
            "--halt now,fail=1",
            &["-k", "-j", "1", "--halt", "now,fail=1"],
            &["echo {}; exit {}"],
            STATUSES,
        ),
        case(
            "--halt soon,fail=2",
            &["-k", "-j", "1", "--halt", "soon,fail=2"],
            &["echo {}; exit {}"],
            STATUSES,
        ),
        case(
            "--halt now,success=1",
            &["-k", "-j", "1", "--halt", "now,success=1"],
            &["echo {}; exit {}"],
            STATUSES,
        ),
        case(
            "--halt soon,fail=50%",
            &["-k", "-j", "1", "--halt", "soon,fail=50%"],
            &["echo {}; exit {}"],
            STATUSES,
        ),
        case(
            "--halt now,done=2",
            &["-k", "-j", "1", "--halt", "now,done=2"],
            &["echo {}; exit {}"],
            STATUSES,
        ),
        case(
            "--halt now,fail=100% (never met)",
            &["-k", "-j", "1", "--halt", "now,fail=100%"],
            &["echo {}; exit {}"],
            STATUSES,
        ),
        case(
            "--retries",
            &["--retries", "3"],
            &["echo x >> tries; wc -l < tries; exit 1"],
            &["a"],
        ),
        case(
            "-j 100%",
            &["-k", "-j", "100%"],
            &["echo"],
            &["a", "b", "c"],
        ),
        case("-j +1", &["-k", "-j", "+1"], &["echo"], &["a", "b", "c"]),
        case("-j -1", &["-k", "-j", "-1"], &["echo"], &["a", "b", "c"]),
        case("-j 0", &["-k", "-j", "0"], &["echo"], &["a", "b", "c"]),
    ]
}

/// Cases where permits differs from GNU parallel on purpose: (name,
/// why). Each is run through permits only, and its behaviour asserted.
const DIFFERS: &[(&str, &str)] = &[
    (
        "empty input lines",
        "permits skips empty items (an empty file name names no file); GNU parallel runs a job with an empty argument",
    ),
    (
        "{//} of a path ending in /",
        "permits gives what precedes the last slash (`dir/` -> `dir`), so `{//}/{/}` rebuilds the item; GNU parallel gives `.`",
    ),
    (
        "--halt soon / --halt now alone",
        "permits keeps its older spelling (= soon,fail=1 / now,fail=1, like GNU parallel's --halt 1 / 2); GNU parallel refuses it",
    ),
];

/// GNU parallel, or one line saying how to install it.
fn parallel_or_fail() {
    let found = Command::new("parallel")
        .arg("--version")
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null())
        .output();
    match found {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("GNU parallel") => {}
        _ => panic!(
            "GNU parallel is not installed (or `parallel` is another tool): apt-get install parallel"
        ),
    }
}

struct Outcome {
    stdout: Vec<u8>,
    stderr: String,
    code: Option<i32>,
}

fn run(mut cmd: Command, stdin: &[u8], dir: &Path) -> Outcome {
    let mut child = cmd
        .current_dir(dir)
        .env("SHELL", "/bin/sh")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("PARALLEL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Outcome {
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// Runs `case` through GNU parallel (`permits`: false) or `permits
/// batch`, in a fresh directory holding `home/.parallel/will-cite`.
fn through(case: &Case, permits: bool, extra: &[&std::ffi::OsStr]) -> (Outcome, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".parallel")).unwrap();
    std::fs::write(home.join(".parallel/will-cite"), "").unwrap();
    let mut cmd = if permits {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("permits"));
        cmd.args(["batch", "--no-progress"])
            .env("PERMITS_DIR", dir.path().join("state"));
        cmd
    } else {
        let mut cmd = Command::new("parallel");
        cmd.arg("--will-cite");
        cmd
    };
    cmd.env("HOME", &home).args(case.options).args(extra);
    if permits {
        cmd.arg("--");
    }
    cmd.args(case.template);
    if let Some(items) = case.items {
        cmd.arg(":::").args(items);
    }
    let outcome = run(cmd, case.stdin, dir.path());
    (outcome, dir)
}

#[test]
fn everyday_cases_match_gnu_parallel() {
    parallel_or_fail();
    let mut mismatches = Vec::new();
    for case in cases() {
        let (theirs, _d1) = through(&case, false, &[]);
        let (ours, d2) = through(&case, true, &[]);
        if theirs.stdout != ours.stdout || theirs.code != ours.code {
            mismatches.push(format!(
                "{}:\n  parallel: {:?} status {:?}\n  permits:  {:?} status {:?}\n  permits stderr: {}",
                case.name,
                String::from_utf8_lossy(&theirs.stdout),
                theirs.code,
                String::from_utf8_lossy(&ours.stdout),
                ours.code,
                ours.stderr.trim_end()
            ));
        }
        assert!(
            !d2.path().join("PWNED").exists(),
            "{}: an item ran as code",
            case.name
        );
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// The job log's columns that do not depend on timing (Seq, Host, Send,
/// Receive, Exitval, Signal), by job number; and the header line.
fn joblog_columns(path: &Path) -> (String, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default().to_owned();
    let mut rows: Vec<Vec<String>> = lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            [0, 1, 4, 5, 6, 7]
                .iter()
                .map(|&i| f.get(i).copied().unwrap_or("?").to_owned())
                .collect()
        })
        .collect();
    rows.sort_by_key(|r| r[0].parse::<u64>().unwrap_or(0));
    (header, rows)
}

#[test]
fn joblog_and_resume_match_gnu_parallel() {
    parallel_or_fail();
    let first = case(
        "joblog",
        &["-k", "-j", "2"],
        &["echo {}; test {} = kill && kill -TERM $$; exit {}"],
        &["0", "2", "kill", "0"],
    );
    let again = case(
        "joblog, resumed",
        &["-k", "-j", "2"],
        &["echo {}; exit 0"],
        &["0", "2", "kill", "0", "0"],
    );
    for resume in ["--resume", "--resume-failed"] {
        let mut logs = Vec::new();
        for permits in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("jobs.log");
            let log_arg = [std::ffi::OsStr::new("--joblog"), log.as_os_str()];
            let (one, _d) = through(&first, permits, &log_arg);
            let mut with_resume = log_arg.to_vec();
            with_resume.push(std::ffi::OsStr::new(resume));
            let (two, _d) = through(&again, permits, &with_resume);
            logs.push((
                joblog_columns(&log),
                one.stdout,
                one.code,
                two.stdout,
                two.code,
            ));
        }
        assert_eq!(logs[0], logs[1], "{resume}: parallel, then permits");
    }
}

#[test]
fn where_permits_differs_on_purpose() {
    // Checked only so that the table above stays honest.
    assert_eq!(DIFFERS.len(), 3);
    let empty = piped("empty input lines", &["-k"], &["echo", "x{}"], b"a\n\nb\n");
    let (ours, _d) = through(&empty, true, &[]);
    assert_eq!(ours.stdout, b"xa\nxb\n", "{}", DIFFERS[0].1);
    assert_eq!(ours.code, Some(0));

    let dirs = case("{//}", &["-k"], &["echo", "{//}|{/}"], &["dir/", "a/b/"]);
    let (ours, _d) = through(&dirs, true, &[]);
    assert_eq!(ours.stdout, b"dir|\na/b|\n", "{}", DIFFERS[1].1);

    for (ours, theirs) in [("soon", "1"), ("now", "2")] {
        let mut outcomes = Vec::new();
        for halt in [ours, theirs] {
            let options: &'static [&'static str] = match halt {
                "soon" => &["-k", "-j", "1", "--halt", "soon"],
                "now" => &["-k", "-j", "1", "--halt", "now"],
                "1" => &["-k", "-j", "1", "--halt", "1"],
                _ => &["-k", "-j", "1", "--halt", "2"],
            };
            let c = case("halt", options, &["echo {}; exit {}"], STATUSES);
            let (o, _d) = through(&c, true, &[]);
            outcomes.push((o.stdout, o.code));
        }
        assert_eq!(outcomes[0], outcomes[1], "{}", DIFFERS[2].1);
    }
}
