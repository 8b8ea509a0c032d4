//! Interoperability with the real tools: GNU make (4.3 here, pipe style)
//! runs this test binary in its recipes, as a jobserver server and as a
//! client of ours; cargo runs it from a build script.
//!
//! Concurrency is measured by the jobs themselves (an O_APPEND log of
//! start and end lines, see `common::max_concurrency`).
#![cfg(target_os = "linux")]

mod common;

use common::{make44_path, make_path, max_concurrency, role_cmd, role_shell, TempDir, MAKE_VARS};
use permits_process::jobserver::Server;
use std::fs;
use std::process::{Command, Output, Stdio};

#[test]
fn child() {
    common::child_entry();
}

/// A Makefile with `jobs` job recipes (each running `threads` jobs on
/// threads) and a final `check` recipe that drains the pool once every
/// job is done. `plus` marks recipes recursive (`+`).
fn makefile(dir: &TempDir, jobs: usize, threads: usize, plus: bool) -> String {
    let log = dir.str("log");
    let out = dir.str("out");
    let plus = if plus { "+" } else { "" };
    let mut text = String::from(".PHONY: all check\n");
    let targets: Vec<String> = (0..jobs).map(|i| format!("j{i}")).collect();
    text.push_str(&format!("all: check\ncheck: {}\n", targets.join(" ")));
    text.push_str(&format!(
        "\t+@{}\n",
        role_shell("drain", &[("PERMITS_OUT", &out)])
    ));
    for t in &targets {
        text.push_str(&format!(".PHONY: {t}\n{t}:\n"));
        text.push_str(&format!(
            "\t{plus}@{}\n",
            role_shell(
                "job",
                &[
                    ("PERMITS_LOG", &log),
                    ("PERMITS_ID", t),
                    ("PERMITS_THREADS", &threads.to_string()),
                ]
            )
        ));
    }
    let path = dir.join("Makefile");
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn make_cmd(dir: &TempDir, makefile: &str, args: &[&str]) -> Command {
    make_cmd_with(&make_path(), dir, makefile, args)
}

fn make_cmd_with(make: &str, dir: &TempDir, makefile: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(make);
    cmd.arg("-f")
        .arg(makefile)
        .args(args)
        .current_dir(dir.path());
    for var in MAKE_VARS {
        cmd.env_remove(var);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

fn check_output(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "make failed: {}\n{stderr}",
        out.status
    );
    // make 4.3 prints "INTERNAL: Exiting with N jobserver tokens available;
    // should be M!" when the pool did not end with N-1 tokens.
    assert!(
        !stderr.contains("INTERNAL"),
        "make saw a token leak:\n{stderr}"
    );
    stderr
}

/// `make -jN` is the server: our clients share its pool. The pool ends
/// with exactly N−1 tokens, and at most N jobs ever run.
#[test]
fn make_jn_server_our_clients() {
    for n in [2usize, 3] {
        let dir = TempDir::new("make-jn");
        let mk = makefile(&dir, 4, 3, true);
        let out = make_cmd(&dir, &mk, &[&format!("-j{n}")]).output().unwrap();
        let stderr = check_output(&out);
        assert!(!stderr.contains("jobserver unavailable"), "{stderr}");
        let log = fs::read_to_string(dir.join("log")).unwrap();
        assert_eq!(
            log.lines().filter(|l| l.ends_with(" jobserver")).count(),
            4,
            "every recipe joined make's jobserver:\n{log}"
        );
        let peak = max_concurrency(&log);
        assert!(peak <= n, "{peak} jobs ran at once under make -j{n}\n{log}");
        // The final recipe runs alone on make's implicit token: the pipe
        // must hold exactly N−1 tokens then.
        let drained = fs::read_to_string(dir.join("out")).unwrap();
        assert_eq!(drained.trim(), format!("drained {}", n - 1));
    }
}

/// `make -j1` creates no jobserver but says `-j1`: our client runs one
/// job at a time.
#[test]
fn make_j1_is_honoured() {
    let dir = TempDir::new("make-j1");
    let mk = makefile(&dir, 3, 3, true);
    let out = make_cmd(&dir, &mk, &["-j1"]).output().unwrap();
    check_output(&out);
    let log = fs::read_to_string(dir.join("log")).unwrap();
    assert!(log.contains("local NoAuth warning=false"), "{log}");
    assert_eq!(max_concurrency(&log), 1, "{log}");
    let drained = fs::read_to_string(dir.join("out")).unwrap();
    assert_eq!(drained.trim(), "error NoAuth");
}

/// A recipe without `+` sees `--jobserver-auth=R,W` in MAKEFLAGS but not
/// the descriptors (make 4.3): the client must refuse, with a warning,
/// and fall back to one job at a time, reading nothing.
#[test]
fn recipe_without_plus_is_refused() {
    let dir = TempDir::new("make-noplus");
    let mk = makefile(&dir, 3, 2, false);
    let out = make_cmd(&dir, &mk, &["-j3"]).output().unwrap();
    check_output(&out);
    let log = fs::read_to_string(dir.join("log")).unwrap();
    let connects: Vec<&str> = log.lines().filter(|l| l.starts_with("C ")).collect();
    assert_eq!(connects.len(), 3);
    for line in connects {
        assert!(
            line.contains("warning=true")
                && (line.contains("ClosedFd") || line.contains("NotAPipe")),
            "{line}"
        );
    }
    // Each recipe ran its threads one at a time; make ran ≤ 3 recipes.
    assert!(max_concurrency(&log) <= 3, "{log}");
}

/// Our [`Server`] is the server and make is its client: make and our
/// clients in its recipes share the pool, at most N run, and the pool is
/// exactly full afterwards (checked by the server itself).
#[test]
fn our_server_make_as_client() {
    let dir = TempDir::new("server-make");
    let mk = makefile(&dir, 4, 3, true);
    let server = Server::new(3).unwrap();
    let mut cmd = make_cmd(&dir, &mk, &[]);
    let child = server.spawn(&mut cmd).unwrap();
    let report = child.wait().unwrap();
    assert!(report.status.success());
    let check = report
        .reconciliation
        .expect("quiescent after the last child");
    assert!(check.is_clean(), "{check}");
    assert_eq!((check.expected, check.found), (2, 2));
    let log = fs::read_to_string(dir.join("log")).unwrap();
    assert_eq!(log.lines().filter(|l| l.ends_with(" jobserver")).count(), 4);
    let peak = max_concurrency(&log);
    assert!(peak <= 3, "{peak} jobs at once in a pool of 3\n{log}");
    assert_eq!(
        fs::read_to_string(dir.join("out")).unwrap().trim(),
        "drained 2"
    );
}

/// A tiny crate whose build script runs this test binary (roles `drain`
/// and `job`) under `cargo build`: our client joins cargo's jobserver
/// through `CARGO_MAKEFLAGS`.
fn probe_crate(dir: &TempDir) {
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"permits-probe\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         publish = false\n\n[workspace]\n",
    )
    .unwrap();
    fs::write(dir.join("src/lib.rs"), "").unwrap();
    let exe = std::env::current_exe().unwrap();
    let build = format!(
        r#"use std::process::Command;
fn main() {{
    println!("cargo:rerun-if-env-changed=PERMITS_RUN");
    for role in ["drain", "job"] {{
        let status = Command::new({exe:?})
            .args(["--exact", "child", "--nocapture", "--test-threads=1", "--quiet"])
            .env("PERMITS_TEST_ROLE", role)
            .env("PERMITS_ID", std::env::var("PERMITS_RUN").unwrap())
            .env("PERMITS_THREADS", "4")
            .status()
            .unwrap();
        assert!(status.success());
    }}
}}
"#
    );
    fs::write(dir.join("build.rs"), build).unwrap();
}

fn cargo_cmd(dir: &TempDir, run: &str, args: &[&str]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--offline", "--quiet"])
        .args(args)
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("PERMITS_RUN", run)
        .env("PERMITS_OUT", dir.join("out"))
        .env("PERMITS_LOG", dir.join("log"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_JOBS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in MAKE_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// `cargo build -j3`: the build script's helper finds cargo's pool (at
/// most 2 tokens free, since cargo runs the build script on its own
/// token), and its 4 threads never exceed 3 at once. Then the same under
/// our server: cargo becomes our client, and the pool ends full.
#[test]
fn cargo_build_jn_interop() {
    let dir = TempDir::new("cargo");
    probe_crate(&dir);
    let out = cargo_cmd(&dir, "cargo", &["-j3"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drained = fs::read_to_string(dir.join("out")).unwrap();
    let n: usize = drained
        .trim()
        .strip_prefix("drained ")
        .unwrap_or_else(|| panic!("client did not connect: {drained}"))
        .parse()
        .unwrap();
    assert!((1..=2).contains(&n), "cargo -j3 left {n} tokens free");
    let log = fs::read_to_string(dir.join("log")).unwrap();
    assert!(log.contains("C cargo jobserver"), "{log}");
    assert!(max_concurrency(&log) <= 3, "{log}");

    fs::remove_file(dir.join("out")).unwrap();
    fs::remove_file(dir.join("log")).unwrap();
    let server = Server::new(3).unwrap();
    let mut cmd = cargo_cmd(&dir, "server", &[]);
    let report = server.spawn(&mut cmd).unwrap().wait().unwrap();
    assert!(report.status.success());
    let check = report.reconciliation.unwrap();
    assert!(check.is_clean(), "{check}");
    let drained = fs::read_to_string(dir.join("out")).unwrap();
    assert!(
        drained.trim() == "drained 2" || drained.trim() == "drained 1",
        "{drained}"
    );
    let log = fs::read_to_string(dir.join("log")).unwrap();
    assert!(log.contains("C server jobserver"), "{log}");
    assert!(max_concurrency(&log) <= 3, "{log}");
}

/// The role command line is usable outside make, too (sanity check of the
/// harness itself).
#[test]
fn role_harness_runs() {
    let dir = TempDir::new("harness");
    let status = role_cmd("job")
        .env("PERMITS_LOG", dir.join("log"))
        .env("PERMITS_ID", "solo")
        .env("PERMITS_THREADS", "2")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let log = fs::read_to_string(dir.join("log")).unwrap();
    assert!(log.contains("C solo local NotSet"), "{log}");
}

/// GNU make 4.4.1 is the server with its default style on Linux, a named
/// fifo (`--jobserver-auth=fifo:PATH`): our clients open the fifo by path,
/// share its pool (at most N jobs at once), and leave exactly N−1 tokens.
#[test]
#[ignore = "needs GNU make 4.4.1 in PERMITS_MAKE44 (bash .ci/make44 builds it; .ci/run runs this)"]
fn make44_fifo_server_our_clients() {
    let make = make44_path();
    for n in [2usize, 3] {
        let dir = TempDir::new("make44-jn");
        let mk = makefile(&dir, 4, 3, true);
        let jobs = format!("-j{n}");
        let out = make_cmd_with(&make, &dir, &mk, &[&jobs, "--jobserver-style=fifo"])
            .output()
            .unwrap();
        let stderr = check_output(&out);
        assert!(!stderr.contains("jobserver unavailable"), "{stderr}");
        let log = fs::read_to_string(dir.join("log")).unwrap();
        assert_eq!(
            log.lines().filter(|l| l.ends_with(" jobserver")).count(),
            4,
            "every recipe joined make 4.4.1's fifo jobserver:\n{log}"
        );
        let peak = max_concurrency(&log);
        assert!(peak <= n, "{peak} jobs ran at once under make -j{n}\n{log}");
        let drained = fs::read_to_string(dir.join("out")).unwrap();
        assert_eq!(drained.trim(), format!("drained {}", n - 1));
    }
}

/// What our client sees inside make 4.4.1 -j: the fifo style (not a
/// pipe), through `MAKEFLAGS`; and `make -n` (dry run) is not a jobserver.
#[test]
#[ignore = "needs GNU make 4.4.1 in PERMITS_MAKE44 (bash .ci/make44 builds it; .ci/run runs this)"]
fn make44_recipes_see_the_fifo_style() {
    let make = make44_path();
    let dir = TempDir::new("make44-probe");
    let text = format!(".PHONY: all\nall:\n\t+@{}\n", role_shell("probe", &[]));
    let mk = dir.join("Makefile");
    fs::write(&mk, text).unwrap();
    let mk = mk.to_str().unwrap().to_owned();
    let out = make_cmd_with(&make, &dir, &mk, &["-j3"]).output().unwrap();
    check_output(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("@@probe ok fifo"), "{stdout}");
}
