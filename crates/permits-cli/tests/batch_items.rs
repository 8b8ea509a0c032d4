//! Issue 13: `permits batch` as a drop-in for `xargs -P` and GNU
//! parallel's everyday use. Items are arguments, never code (finding 1);
//! jobs start as items arrive (finding 2); bytes, not UTF-8 (finding 3);
//! broken pipes end quietly (finding 5); Ctrl-C labels jobs honestly
//! (finding 6); the habits of finding 7.
//!
//! No test synchronises on a sleep: they rendezvous on fifos. Timeouts
//! only guard against hangs.

mod batch_support;

use assert_cmd::Command;
use batch_support::{mkfifo, permits_std};
use predicates::prelude::*;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// A hang guard, never a synchronisation.
const HANG: Duration = Duration::from_secs(60);

fn permits(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("permits").unwrap();
    cmd.current_dir(dir)
        .env("PERMITS_DIR", dir.join("state"))
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .timeout(HANG);
    cmd
}

/// File names that break naive pipelines: each must reach the command as
/// one argument, and none may run code.
fn hostile() -> Vec<Vec<u8>> {
    vec![
        b"a b  c.log".to_vec(),
        b"it's \"quoted\".log".to_vec(),
        b"x;touch PWNED;.log".to_vec(),
        b"b $(touch PWNED).log".to_vec(),
        b"`touch PWNED`".to_vec(),
        b"-n".to_vec(),
        b"--help".to_vec(),
        b"new\nline".to_vec(),
        b"bad \xff\xfe utf8".to_vec(),
        b"* ? [a] ~ \\ | & > <".to_vec(),
    ]
}

/// Runs `permits batch -k ARGS` on `stdin`; each job prints
/// `ARGC:FIRST-ARG\0`. Returns the records.
fn records(dir: &Path, args: &[&OsStr], stdin: Vec<u8>) -> Vec<Vec<u8>> {
    let out = permits(dir)
        .args(["batch", "-j", "3", "-k"])
        .args(args)
        .write_stdin(stdin)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let mut recs: Vec<Vec<u8>> = out.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    assert_eq!(recs.pop(), Some(Vec::new()), "output ends with a NUL");
    recs
}

fn expected(items: &[Vec<u8>]) -> Vec<Vec<u8>> {
    items
        .iter()
        .map(|i| [b"1:".as_slice(), i].concat())
        .collect()
}

const SHOW: &str = r#"printf '%s:%s\0' "$#" "$1""#;

#[test]
fn hostile_names_are_one_argument_each_and_never_run_as_code() {
    let dir = tempfile::tempdir().unwrap();
    let items = hostile();
    let nul: Vec<u8> = items
        .iter()
        .flat_map(|i| [i.as_slice(), b"\0"].concat())
        .collect();
    let o = OsStr::new;

    // Appended as the last argument, run directly.
    let got = records(
        dir.path(),
        &[o("-0"), o("--"), o("sh"), o("-c"), o(SHOW), o("sh")],
        nul.clone(),
    );
    assert_eq!(got, expected(&items));
    // A placeholder inside a shell template: the item is quoted.
    let template = format!("f() {{ {SHOW}; }}; f {{}}");
    let got = records(dir.path(), &[o("-0"), o("--"), o(&template)], nul.clone());
    assert_eq!(got, expected(&items));
    // -I with a placeholder of one's own.
    let template = format!("f() {{ {SHOW}; }}; f @@");
    let got = records(
        dir.path(),
        &[o("-0"), o("-I"), o("@@"), o("--"), o(&template)],
        nul,
    );
    assert_eq!(got, expected(&items));
    // Items after `:::` (bytes, not UTF-8, too).
    let mut args = vec![o("--"), o("sh"), o("-c"), o(SHOW), o("sh"), o(":::")];
    args.extend(items.iter().map(|i| OsStr::from_bytes(i)));
    let got = records(dir.path(), &args, Vec::new());
    assert_eq!(got, expected(&items));
    // Lines of stdin (every name without a newline), with `{}`.
    let lines: Vec<Vec<u8>> = items
        .iter()
        .filter(|i| !i.contains(&b'\n'))
        .cloned()
        .collect();
    let text: Vec<u8> = lines
        .iter()
        .flat_map(|i| [i.as_slice(), b"\n"].concat())
        .collect();
    let got = records(
        dir.path(),
        &[o("--"), o("sh"), o("-c"), o(SHOW), o("sh"), o("{}")],
        text,
    );
    assert_eq!(got, expected(&lines));

    assert!(!dir.path().join("PWNED").exists(), "an item ran as code");
}

#[test]
fn replacement_strings_and_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    permits(dir.path())
        .args([
            "batch", "-j", "1", "-k", "--", "echo", "{}", "{.}", "{/}", "{//}", "{/.}", "{#}",
        ])
        .args([":::", "d/x.tar.gz", "y"])
        .assert()
        .success()
        .stdout("d/x.tar.gz d/x.tar x.tar.gz d x.tar 1\ny y y . y 2\n");
    permits(dir.path())
        .args(["batch", "--dry-run", "--", "touch", ":::", "PWNED", "a b"])
        .assert()
        .success()
        .stdout("touch 'PWNED'\ntouch 'a b'\n");
    assert!(!dir.path().join("PWNED").exists(), "--dry-run ran a job");
}

#[test]
fn bad_item_flags_fail_with_one_line_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["batch", "--", ":::", "a"][..],
        &["batch", "-I", "", "--", "touch", "PWNED"],
        &["batch", "-a", "/nonexistent/items", "--", "touch", "PWNED"],
    ] {
        permits(dir.path())
            .args(args)
            .write_stdin("x\n")
            .assert()
            .code(2)
            .stderr(predicate::str::is_match("^permits: [^\n]+\n$").unwrap());
    }
    assert!(!dir.path().join("PWNED").exists());
}

/// Finding 2: the producer writes its second item only after the first
/// job ran. Reading all of stdin before starting anything deadlocks.
#[test]
fn jobs_start_as_soon_as_their_item_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("go");
    mkfifo(&fifo);
    let items = dir.path().join("items");
    mkfifo(&items);
    let mut producer = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec >\"$2\"; echo first; cat \"$1\" >/dev/null; echo second")
        .arg("sh")
        .arg(&fifo)
        .arg(&items)
        .spawn()
        .unwrap();
    // The first job opens the fifo (releasing the producer's `cat`).
    let job = r#"if [ "$1" = first ]; then echo >"$2"; fi; echo "ran $1""#;
    let result = permits(dir.path())
        .args(["batch", "-j", "2", "-k", "-a"])
        .arg(&items)
        .args(["--", "sh", "-c", job, "sh", "{}"])
        .arg(&fifo)
        .assert();
    let _ = producer.kill();
    let _ = producer.wait();
    result.success().stdout("ran first\nran second\n");
}

/// Finding 5: a reader that stops early ends the batch quietly with
/// status 141, never a panic (status 101).
#[test]
fn a_closed_stdout_ends_the_batch_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = permits_std(dir.path())
        .args(["batch", "--json", "--", "seq 200000", "seq 200000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'), "{first}");
    // The reader is gone (the pipe closed when the BufReader dropped).
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(141), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn status_into_a_closed_pipe_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = permits_std(dir.path())
        .args(["status"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Finding 6: Ctrl-C stops the jobs, labels them "interrupted" (not
/// "stopped by halt") and exits 130.
#[test]
fn ctrl_c_labels_jobs_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("started");
    mkfifo(&fifo);
    let job = r#"echo "$1" >"$2"; exec sleep 600"#;
    let mut child = permits_std(dir.path())
        .args([
            "batch", "-j", "2", "--halt", "now", "--", "sh", "-c", job, "sh", "{}",
        ])
        .arg(&fifo)
        .args([":::", "one", "two"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both jobs have started once two lines came through the fifo.
    let mut started = String::new();
    let mut fifo_in = std::fs::File::open(&fifo).unwrap();
    while started.lines().count() < 2 {
        let mut buf = [0u8; 64];
        let n = fifo_in.read(&mut buf).unwrap();
        if n == 0 {
            // One writer closed before the other opened: reopen.
            fifo_in = std::fs::File::open(&fifo).unwrap();
        }
        started.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert_eq!(stderr.matches("interrupted").count(), 2, "{stderr}");
    assert!(!stderr.contains("halt"), "{stderr}");
    let _ = std::io::stdout().flush();
}

/// Finding 3: `--json` replaced output that is not UTF-8 with U+FFFD. An
/// `end` event still has `stdout` and `stderr` as (lossy) strings, and
/// when either is not UTF-8 it also carries the exact bytes as an array
/// of numbers (`stdout_bytes`, `stderr_bytes`); UTF-8 output has no such
/// key.
#[test]
fn json_gives_output_that_is_not_utf8_as_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let out = permits(dir.path())
        .args(["batch", "--json", "-j", "1", "--"])
        .args([r"printf 'a\377\376'; printf 'b\200' >&2", "echo é"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let events: Vec<serde_json::Value> = String::from_utf8(out)
        .expect("--json prints UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let end = |job: u64| {
        events
            .iter()
            .find(|e| e["event"] == "end" && e["job"] == job)
            .unwrap_or_else(|| panic!("no end of job {job}: {events:?}"))
    };
    let bytes = |v: &serde_json::Value| -> Vec<u8> {
        v.as_array()
            .unwrap_or_else(|| panic!("an array: {v}"))
            .iter()
            .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
            .collect()
    };
    let raw = end(1);
    assert_eq!(bytes(&raw["stdout_bytes"]), b"a\xff\xfe", "{raw}");
    assert_eq!(bytes(&raw["stderr_bytes"]), b"b\x80", "{raw}");
    assert_eq!(raw["stdout"], "a\u{fffd}\u{fffd}", "{raw}");
    let text = end(2);
    assert_eq!(text["stdout"], "é\n", "{text}");
    assert!(text.get("stdout_bytes").is_none(), "{text}");
    assert!(text.get("stderr_bytes").is_none(), "{text}");
}
