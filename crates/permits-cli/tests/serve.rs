//! `permits serve`: a command run as the jobserver of everything it
//! starts. Real GNU make (the installed one, 4.3 here: pipe style) runs
//! under it within N; the command's exit status comes back; lost tokens
//! are reported in words; a fifo is removed when the command ends, also
//! after a forwarded `SIGTERM`; bad flags exit 2 before anything runs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn permits() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("permits"));
    for var in ["MAKEFLAGS", "MFLAGS", "CARGO_MAKEFLAGS", "MAKELEVEL"] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn output(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    eprintln!(
        "{cmd:?} -> {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn make_available() -> bool {
    Command::new("make")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The most `+` without a matching `-` in the log, and how many ran.
fn peak(log: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let (mut now, mut peak, mut ran) = (0usize, 0usize, 0usize);
    for line in text.lines() {
        match line {
            "+" => {
                now += 1;
                ran += 1;
                peak = peak.max(now);
            }
            "-" => now -= 1,
            other => panic!("unexpected log line {other:?}"),
        }
    }
    (peak, ran)
}

#[test]
fn make_under_serve_runs_at_most_n_jobs() {
    if !make_available() {
        eprintln!("skipped: GNU make is not installed (CI installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let names: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    let mut text = format!(".PHONY: all {0}\nall: {0}\n", names.join(" "));
    for name in &names {
        text.push_str(&format!(
            "{name}:\n\t@echo + >> {log}; sleep 0.05; echo - >> {log}\n",
            log = log.display()
        ));
    }
    let makefile = dir.path().join("Makefile");
    std::fs::write(&makefile, text).unwrap();
    let out = output(
        permits()
            .args(["serve", "-j", "3", "--style", "pipe", "--", "make", "-f"])
            .arg(&makefile),
    );
    assert!(out.status.success());
    let (peak, ran) = peak(&log);
    assert_eq!(ran, 8);
    assert!(peak <= 3, "{peak} jobs at once under permits serve -j 3");
}

#[test]
fn serve_exits_with_the_commands_status() {
    let out = output(permits().args(["serve", "-j", "2", "--", "sh", "-c", "exit 7"]));
    assert_eq!(out.status.code(), Some(7));
    let out = output(permits().args(["serve", "-j", "2", "--", "sh", "-c", "kill -9 $$"]));
    assert_eq!(out.status.code(), Some(128 + 9));
    let out = output(permits().args(["serve", "--", "no-such-program-xyz"]));
    assert_eq!(out.status.code(), Some(127));
}

#[test]
fn serve_reports_lost_tokens_in_words() {
    // The command takes a token and never gives it back.
    let steal = "A=${MAKEFLAGS##*=}; R=${A%,*}; \
                 dd bs=1 count=1 status=none if=/dev/fd/$R of=/dev/null";
    let out = output(permits().args([
        "serve", "-j", "3", "--style", "pipe", "--", "sh", "-c", steal,
    ]));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("expected 2 free tokens, found 1; restored 1 lost"),
        "{stderr}"
    );
    // A command that loses nothing: nothing said.
    let out = output(permits().args(["serve", "-j", "3", "--", "true"]));
    assert!(out.status.success());
    assert!(out.stderr.is_empty());
}

/// The fifo named in `MAKEFLAGS` (`fifo:PATH`), from a line the command
/// printed.
fn fifo_of(line: &str) -> String {
    line.split("fifo:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no fifo in {line:?}"))
        .to_owned()
}

#[test]
fn a_fifo_is_removed_when_the_command_ends_even_by_a_signal() {
    let out = output(permits().args([
        "serve",
        "-j",
        "2",
        "--style",
        "fifo",
        "--",
        "sh",
        "-c",
        "echo $MAKEFLAGS",
    ]));
    assert!(out.status.success());
    let fifo = fifo_of(&String::from_utf8_lossy(&out.stdout));
    assert!(!Path::new(&fifo).exists(), "{fifo} left behind");

    let mut serve = permits()
        .args(["serve", "-j", "2", "--style", "fifo", "--", "sh", "-c"])
        .arg("trap 'exit 42' TERM; echo $MAKEFLAGS; while :; do sleep 0.05; done")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(serve.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let fifo = fifo_of(&line);
    assert!(Path::new(&fifo).exists());
    let kill = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert_eq!(serve.wait().unwrap().code(), Some(42), "not forwarded");
    assert!(!Path::new(&fifo).exists(), "{fifo} left behind");
}

#[test]
fn bad_serve_flags_exit_2_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    for (args, needle) in [
        (vec!["serve", "-j", "0", "--", "sh", "-c", &touch], "0 jobs"),
        (
            vec!["serve", "-j", "x", "--", "sh", "-c", &touch],
            "not a whole number",
        ),
        (
            vec!["serve", "--style", "socket", "--", "sh", "-c", &touch],
            "invalid value",
        ),
        (vec!["serve", "-j", "2"], "required"),
    ] {
        let out = output(permits().args(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}"
        );
        assert!(!marker.exists(), "{args:?} ran something");
    }
}

/// cargo under `permits serve` takes its slots from our pool and hands it
/// to build scripts: this one takes a token (from the descriptors in
/// `CARGO_MAKEFLAGS`) and never gives it back, and `permits serve` finds
/// it missing at the end.
#[test]
fn cargo_under_serve_shares_the_pool_with_build_scripts() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("probe");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(project.join("src/lib.rs"), "").unwrap();
    std::fs::write(
        project.join("build.rs"),
        r#"use std::io::Read;
fn main() {
    let flags = std::env::var("CARGO_MAKEFLAGS").expect("no CARGO_MAKEFLAGS");
    let auth = flags
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--jobserver-auth="))
        .expect("no jobserver");
    let read = auth.split(',').next().unwrap();
    let mut pipe = std::fs::File::open(format!("/dev/fd/{read}")).unwrap();
    pipe.read_exact(&mut [0u8]).unwrap(); // kept: a lost token
}
"#,
    )
    .unwrap();
    let out = output(
        permits()
            .args(["serve", "-j", "3", "--style", "pipe", "--"])
            .arg(&cargo)
            .args(["build", "--offline", "--quiet", "--manifest-path"])
            .arg(project.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", dir.path().join("target"))
            .env_remove("RUSTC_WRAPPER"),
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("restored 1 lost"), "{stderr}");
}

/// GNU make 4.4.1 from `PERMITS_MAKE44` (see `.ci/make44`); one clear line
/// when it is missing.
fn make44() -> String {
    let how = "PERMITS_MAKE44 is not set: build GNU make 4.4.1 with `bash .ci/make44` and \
               set PERMITS_MAKE44 to the path it prints (.ci/run does both)";
    std::env::var("PERMITS_MAKE44")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| panic!("{how}"))
}

/// `permits serve --style fifo` serves make 4.4.1: make joins the fifo
/// named in `--jobserver-auth=fifo:PATH` (it does not start a pool of its
/// own), at most N recipes run at once, and the fifo is gone afterwards.
#[test]
#[ignore = "needs GNU make 4.4.1 in PERMITS_MAKE44 (bash .ci/make44 builds it; .ci/run runs this)"]
fn make44_under_serve_fifo_runs_at_most_n_jobs() {
    let make = make44();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let flags = dir.path().join("flags");
    let names: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    let mut text = format!(".PHONY: all {0}\nall: {0}\n", names.join(" "));
    for name in &names {
        text.push_str(&format!(
            "{name}:\n\t@echo \"$$MAKEFLAGS\" >> {flags}; echo + >> {log}; sleep 0.05; echo - >> {log}\n",
            log = log.display(),
            flags = flags.display()
        ));
    }
    let makefile = dir.path().join("Makefile");
    std::fs::write(&makefile, text).unwrap();
    let out = output(
        permits()
            .args(["serve", "-j", "3", "--style", "fifo", "--"])
            .arg(&make)
            .arg("-f")
            .arg(&makefile),
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("INTERNAL"), "{stderr}");
    let (peak, ran) = peak(&log);
    assert_eq!(ran, 8);
    assert!(peak <= 3, "{peak} jobs at once under permits serve -j 3");
    let seen = std::fs::read_to_string(&flags).unwrap();
    let first = seen.lines().next().unwrap_or_default();
    assert!(first.contains("--jobserver-auth=fifo:"), "{first}");
    let fifo = fifo_of(first);
    assert!(!Path::new(&fifo).exists(), "{fifo} left behind");
}
