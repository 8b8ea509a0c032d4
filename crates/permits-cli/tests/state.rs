//! Where a named semaphore's state lives and what keeps it whole (issue
//! 12): one semaphore per (user, name) whatever the environment (`env -i`,
//! with or without `XDG_RUNTIME_DIR`, another `HOME`, another user via
//! `runuser`); a capacity is never reset under holders (the `--bg`
//! sequence); deleted state files are recreated; names are checked once,
//! before anything runs.
//!
//! Tests that use the real per-user location use unique names and remove
//! their semaphore's files at the end; the others keep their state in a
//! temporary directory (`PERMITS_DIR`). No test synchronises on a sleep:
//! background jobs poll for a stop file (that is their "work"), the tests
//! wait on `permits status` and `permits wait`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn permits_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("permits")
}

/// A name no other test (or engineer) on this machine uses.
fn unique_name(test: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t-{test}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// `permits` with no make jobserver and no state directory override.
fn permits() -> Command {
    let mut cmd = Command::new(permits_bin());
    for var in ["MAKEFLAGS", "MFLAGS", "CARGO_MAKEFLAGS", "PERMITS_DIR"] {
        cmd.env_remove(var);
    }
    cmd
}

fn output(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    eprintln!(
        "{cmd:?} -> {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Starts `cmd` (a `permits run ... -- sh -c 'echo ready; read x'`) and
/// waits until its command holds the slot. Writing to or dropping the
/// returned stdin ends it.
fn hold(mut cmd: Command) -> (Child, ChildStdin) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n", "the holder did not start");
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

const HOLDING: [&str; 4] = ["--", "/bin/sh", "-c", "echo ready; read x; true"];

/// `permits status --name NAME --json` under `cmd`'s environment.
fn status_json(mut cmd: Command, name: &str) -> serde_json::Value {
    let out = output(cmd.args(["status", "--json", "--name", name]));
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Removes a semaphore's files from a shared location when dropped.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(&dir);
            let mut lock = dir.into_os_string();
            lock.push(".lock");
            let _ = std::fs::remove_file(lock);
        }
    }
}

/// Changes a command's environment.
type Setup<'a> = Box<dyn Fn(&mut Command) + 'a>;

/// Finding 1: a login shell (`XDG_RUNTIME_DIR` set) and cron (`env -i`)
/// got two different semaphores of the same name, so both ran at once.
/// Now every environment of one user reaches the same one.
#[test]
fn one_user_gets_one_semaphore_per_name_in_every_environment() {
    let name = unique_name("env");
    let runtime = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    // Private, as a real runtime directory is (and as the code before
    // this test required to use it).
    set_mode(runtime.path(), 0o700);
    set_mode(other.path(), 0o700);
    let mut login = permits();
    login
        .env("XDG_RUNTIME_DIR", runtime.path())
        .args(["run", "--name", &name, "-j", "1"])
        .args(HOLDING);
    let (mut holder, stdin) = hold(login);
    let mut cleanup = Cleanup(None);

    let environments: Vec<(&str, Setup)> = vec![
        (
            "env -i",
            Box::new(|c: &mut Command| {
                c.env_clear();
            }),
        ),
        (
            "no XDG_RUNTIME_DIR",
            Box::new(|c: &mut Command| {
                c.env_remove("XDG_RUNTIME_DIR");
            }),
        ),
        (
            "another XDG_RUNTIME_DIR",
            Box::new(|c: &mut Command| {
                c.env("XDG_RUNTIME_DIR", other.path());
            }),
        ),
        (
            "another HOME",
            Box::new(|c: &mut Command| {
                c.env("HOME", other.path()).env_remove("XDG_RUNTIME_DIR");
            }),
        ),
    ];
    let mut dirs = Vec::new();
    for (what, setup) in &environments {
        let mut cmd = permits();
        setup(&mut cmd);
        cmd.args(["run", "--name", &name, "-j", "1", "--timeout", "0"])
            .args(["--", "/bin/true"]);
        let out = output(&mut cmd);
        assert_eq!(
            out.status.code(),
            Some(124),
            "under {what}, a second holder got the only slot"
        );
        let mut cmd = permits();
        setup(&mut cmd);
        let status = status_json(cmd, &name);
        assert_eq!(status["held"], 1, "under {what}");
        dirs.push(status["dir"].as_str().unwrap().to_owned());
        cleanup.0 = Some(PathBuf::from(&dirs[0]));
    }
    assert!(dirs.iter().all(|d| *d == dirs[0]), "{dirs:?}");
    assert!(!dirs[0].starts_with(runtime.path().to_str().unwrap()));

    // `permits status` says where the state lives, in words too.
    let out = output(permits().args(["status", "--name", &name]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&dirs[0]));
    drop(stdin);
    assert!(holder.wait().unwrap().success());
}

/// Whether this process runs as root (the two-user test needs it).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// useradd, groupadd and userdel lock the account files and fail (rather
/// than wait) when another holds them: tests run them one at a time.
static ACCOUNTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A user created for one test and deleted afterwards, with a home of its
/// own and a copy of the `permits` binary it can execute.
struct OtherUser {
    name: String,
    /// Holds the home directory and the binary; removed last.
    _root: tempfile::TempDir,
    home: PathBuf,
    permits: PathBuf,
}

impl OtherUser {
    /// A new user, in `group` too if given.
    fn create(group: Option<&str>) -> Option<OtherUser> {
        let name = format!("pmt{}x{}", std::process::id(), unique_suffix());
        let root = tempfile::tempdir().unwrap();
        set_mode(root.path(), 0o755);
        let home = root.path().join("home");
        let mut useradd = Command::new("useradd");
        useradd
            .args(["-m", "-d"])
            .arg(&home)
            .args(["-s", "/bin/sh"]);
        if let Some(group) = group {
            useradd.args(["-G", group]);
        }
        let ok = {
            let _one_at_a_time = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
            useradd.arg(&name).status().is_ok_and(|s| s.success())
        };
        if !ok {
            return None;
        }
        let permits = root.path().join("permits");
        std::fs::copy(permits_bin(), &permits).unwrap();
        set_mode(&permits, 0o755);
        Some(OtherUser {
            name,
            _root: root,
            home,
            permits,
        })
    }

    /// `runuser -u USER -- env ENV... permits` (the environment is kept
    /// as given: like `sudo -u` without `-H`, `HOME` may still be root's).
    fn permits(&self, env: &[&str]) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", &self.name, "--", "env"])
            .args(env)
            .arg(&self.permits);
        cmd
    }

    fn can_write(&self, dir: &Path) -> bool {
        Command::new("runuser")
            .args(["-u", &self.name, "--", "test", "-w"])
            .arg(dir)
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for OtherUser {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-U", &self.name])
            .status();
        let _one_at_a_time = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

/// Short (user and group names are at most 32 characters) and unique.
fn unique_suffix() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_micros();
    format!("{micros}x{}", N.fetch_add(1, Ordering::SeqCst))
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Finding 3: any local user could pre-create `/tmp/permits-<uid>` and
/// deny every semaphore to a user without `XDG_RUNTIME_DIR`. Now each user
/// gets a location no other user can create or replace, found from the
/// user database (not from `HOME`), shared by all its environments.
#[test]
fn another_user_gets_its_own_semaphore_and_cannot_squat_ours() {
    if !is_root() {
        eprintln!("skipped: creating a second user needs root (CI runs as root)");
        return;
    }
    let Some(user) = OtherUser::create(None) else {
        eprintln!("skipped: useradd is not available or failed");
        return;
    };
    let name = unique_name("users");
    let mut root_cmd = permits();
    root_cmd
        .args(["run", "--name", &name, "-j", "1"])
        .args(HOLDING);
    let (mut root_holder, root_stdin) = hold(root_cmd);
    let root_dir = PathBuf::from(status_json(permits(), &name)["dir"].as_str().unwrap());
    let _cleanup = Cleanup(Some(root_dir.clone()));

    // The same name is another semaphore for the other user, even with
    // root's HOME and runtime directory in its environment.
    let out = output(
        user.permits(&["HOME=/root", "XDG_RUNTIME_DIR=/run/user/0"])
            .args(["run", "--name", &name, "-j", "1", "--timeout", "0"])
            .args(["--", "/bin/true"]),
    );
    assert_eq!(out.status.code(), Some(0), "the users share a semaphore");

    // The other user's environments share one semaphore among themselves.
    let mut cron = user.permits(&["-i"]);
    cron.args(["run", "--name", &name, "-j", "1"]).args(HOLDING);
    let (mut user_holder, user_stdin) = hold(cron);
    let out = output(
        user.permits(&["HOME=/root"])
            .args(["run", "--name", &name, "-j", "1", "--timeout", "0"])
            .args(["--", "/bin/true"]),
    );
    assert_eq!(out.status.code(), Some(124), "its environments differ");
    let user_dir = PathBuf::from(
        status_json(user.permits(&["-i"]), &name)["dir"]
            .as_str()
            .unwrap(),
    );
    assert!(user_dir.starts_with(&user.home), "{}", user_dir.display());
    assert_ne!(user_dir, root_dir);

    // Nothing on the way to root's state can be created, replaced or
    // removed by the other user.
    for dir in root_dir.ancestors() {
        assert!(
            !user.can_write(dir),
            "{} is writable by {}",
            dir.display(),
            user.name
        );
    }
    drop((root_stdin, user_stdin));
    assert!(root_holder.wait().unwrap().success());
    assert!(user_holder.wait().unwrap().success());
}

/// A group created for one test, deleted afterwards.
struct Group(String);

impl Group {
    fn create() -> Option<Group> {
        let name = format!("pmg{}x{}", std::process::id(), unique_suffix());
        let ok = {
            let _one_at_a_time = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
            Command::new("groupadd")
                .arg(&name)
                .status()
                .is_ok_and(|s| s.success())
        };
        ok.then_some(Group(name))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _one_at_a_time = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("groupdel").arg(&self.0).status();
    }
}

/// `--dir` / `PERMITS_DIR` for the users of one group: a directory with
/// mode 3770 (setgid, sticky) is one semaphore for all its members; a
/// group directory without those bits is refused before anything runs.
#[test]
fn the_users_of_a_group_share_an_explicit_directory() {
    if !is_root() {
        eprintln!("skipped: creating users and a group needs root (CI runs as root)");
        return;
    }
    let Some(group) = Group::create() else {
        eprintln!("skipped: groupadd is not available or failed");
        return;
    };
    let (Some(alice), Some(bob)) = (
        OtherUser::create(Some(&group.0)),
        OtherUser::create(Some(&group.0)),
    ) else {
        eprintln!("skipped: useradd is not available or failed");
        return;
    };
    let place = tempfile::tempdir().unwrap();
    set_mode(place.path(), 0o755);
    let shared = place.path().join("shared");
    let loose = place.path().join("loose");
    for (dir, mode) in [(&shared, 0o3770), (&loose, 0o2770)] {
        std::fs::create_dir(dir).unwrap();
        let chgrp = Command::new("chgrp").arg(&group.0).arg(dir).status();
        assert!(chgrp.unwrap().success());
        set_mode(dir, mode);
    }
    let name = unique_name("group");
    let dir_flag = format!("--dir={}", shared.display());
    let mut holder = alice.permits(&["-i"]);
    holder
        .args(["run", &dir_flag, "--name", &name, "-j", "1"])
        .args(HOLDING);
    let (mut holder, stdin) = hold(holder);
    let env = format!("PERMITS_DIR={}", shared.display());
    let out = output(
        bob.permits(&[&env])
            .args(["run", "--name", &name, "-j", "1", "--timeout", "0"])
            .args(["--", "/bin/true"]),
    );
    assert_eq!(
        out.status.code(),
        Some(124),
        "the members got two semaphores"
    );
    let status = status_json(bob.permits(&[&env]), &name);
    assert_eq!(status["held"], 1);

    let out = output(
        bob.permits(&[&format!("PERMITS_DIR={}", loose.display())])
            .args(["run", "--name", &name, "-j", "1", "--", "/bin/true"]),
    );
    assert_eq!(out.status.code(), Some(2), "a group dir without sticky bit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3770"), "{stderr}");
    drop(stdin);
    assert!(holder.wait().unwrap().success());
}

/// A sandboxed state directory (`PERMITS_DIR`; `XDG_RUNTIME_DIR` too, so
/// that the same test runs against the code before the override existed).
struct Sandbox {
    dir: tempfile::TempDir,
    name: String,
}

impl Sandbox {
    fn new(test: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o700);
        Sandbox {
            dir,
            name: unique_name(test),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("permits")
    }

    fn permits(&self) -> Command {
        let mut cmd = permits();
        cmd.env("XDG_RUNTIME_DIR", self.dir.path())
            .env("PERMITS_DIR", self.state());
        cmd
    }

    fn run(&self, jobs: &str, extra: &[&str], command: &[&str]) -> Output {
        output(
            self.permits()
                .args(["run", "--name", &self.name, "-j", jobs])
                .args(extra)
                .arg("--")
                .args(command),
        )
    }

    fn status(&self) -> serde_json::Value {
        status_json(self.permits(), &self.name)
    }
}

/// A background job: logs `+`, works until `stop` exists, logs `-`. It
/// also ends when the test's directory is gone (a failed test leaves no
/// job running).
fn bg_job(log: &Path, stop: &Path) -> [String; 3] {
    [
        "/bin/sh".into(),
        "-c".into(),
        format!(
            "exec >/dev/null 2>&1; echo + >> {log}; \
             while [ -d {dir} ] && [ ! -e {stop} ]; do sleep 0.02; done; \
             echo - >> {log}",
            log = log.display(),
            stop = stop.display(),
            dir = stop.parent().unwrap().display()
        ),
    ]
}

/// The most jobs running at once according to the log.
fn peak(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let (mut now, mut peak) = (0usize, 0usize);
    for line in text.lines() {
        match line {
            "+" => {
                now += 1;
                peak = peak.max(now);
            }
            "-" => now -= 1,
            other => panic!("unexpected log line {other:?}"),
        }
    }
    peak
}

/// Waits (up to a generous guard) until `f` holds.
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let guard = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < guard, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// Finding 2: children started with `--bg` keep their slot but no handle,
/// so a later caller with another `-j` saw "no users", reset the
/// semaphore and unlinked slots still locked: six jobs ran under `-j 4`.
/// Now the other `-j` is refused (naming the capacity in force) while any
/// slot is held, and the bound holds.
#[test]
fn another_capacity_never_resets_a_semaphore_held_by_background_jobs() {
    let sb = Sandbox::new("bg-resize");
    let log = sb.dir.path().join("log");
    let stop = sb.dir.path().join("stop");
    let job = bg_job(&log, &stop);
    let job: Vec<&str> = job.iter().map(String::as_str).collect();
    for _ in 0..4 {
        assert!(sb.run("4", &["--bg"], &job).status.success());
    }
    until("four background jobs to hold", || sb.status()["held"] == 4);

    let out = sb.run("2", &["--timeout", "0"], &["/bin/true"]);
    assert_eq!(out.status.code(), Some(2), "another -j was accepted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("capacity 4"), "{stderr}");
    for _ in 0..4 {
        let out = sb.run("4", &["--bg", "--timeout", "0"], &job);
        assert_eq!(out.status.code(), Some(124), "a fifth job got a slot");
    }
    let status = sb.status();
    assert_eq!(
        (status["capacity"].clone(), status["held"].clone()),
        (4.into(), 4.into())
    );

    std::fs::write(&stop, "").unwrap();
    let out = output(
        sb.permits()
            .args(["wait", "--name", &sb.name, "--timeout", "60"]),
    );
    assert!(out.status.success());
    assert_eq!(peak(&log), 4, "more than -j 4 jobs ran at once");
    // Idle now: a new capacity may replace the old one.
    assert!(sb
        .run("2", &["--timeout", "0"], &["/bin/true"])
        .status
        .success());
    assert_eq!(sb.status()["capacity"], 2);
}

/// Finding 4: deleting the `slot.*` files (what tmp cleaners do) broke the
/// name for good (`run`, `status`, `wait` failed with an i/o error). Now
/// missing files are recreated, and the bound holds among the processes
/// that acquire afterwards.
#[test]
fn deleted_state_files_are_recreated_and_the_bound_holds() {
    let sb = Sandbox::new("deleted");
    assert!(sb.run("1", &[], &["/bin/true"]).status.success());
    let state = sb.state().join(&sb.name);
    for file in ["slot.0", "users", "wake"] {
        std::fs::remove_file(state.join(file)).unwrap();
    }
    std::fs::remove_dir_all(state.join("q")).unwrap();
    let status = sb.status();
    assert_eq!(
        (status["capacity"].clone(), status["held"].clone()),
        (1.into(), 0.into())
    );

    let mut cmd = sb.permits();
    cmd.args(["run", "--name", &sb.name, "-j", "1"])
        .args(HOLDING);
    let (mut holder, mut stdin) = hold(cmd);
    assert_eq!(sb.status()["held"], 1);
    let out = sb.run("1", &["--timeout", "0"], &["/bin/true"]);
    assert_eq!(out.status.code(), Some(124), "a second holder under -j 1");
    let out = output(
        sb.permits()
            .args(["wait", "--name", &sb.name, "--timeout", "0"]),
    );
    assert_eq!(out.status.code(), Some(124));
    stdin.write_all(b"done\n").unwrap();
    assert!(holder.wait().unwrap().success());

    // `meta` alone gone: the capacity is read back from the slot files.
    std::fs::remove_file(state.join("meta")).unwrap();
    assert_eq!(sb.status()["capacity"], 1);
    let out = output(
        sb.permits()
            .args(["wait", "--name", &sb.name, "--timeout", "0"]),
    );
    assert!(out.status.success());
}

/// Finding 9: the CLI accepted names the library refused (a leading `-`,
/// 65 to 100 characters), which then failed with status 1 after parsing.
/// Every bad name exits 2 before anything runs, and `status` of a missing
/// name leaves no file behind.
#[test]
fn bad_names_exit_2_before_anything_runs_and_status_creates_nothing() {
    let sb = Sandbox::new("names");
    let marker = sb.dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let long = "x".repeat(65);
    for bad in ["", ".hidden", "-dash", "a/b", "sp ace", "é", long.as_str()] {
        let name = format!("--name={bad}");
        for args in [
            vec!["run", &name, "--", "/bin/sh", "-c", &touch],
            vec!["batch", &name, "--", &touch],
            vec!["wait", &name],
            vec!["status", &name],
        ] {
            let out = output(sb.permits().args(&args));
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("name"), "{args:?}: {stderr}");
            assert!(!marker.exists(), "{args:?} ran something");
        }
    }
    let good = "x".repeat(64);
    assert!(sb.run("1", &[], &["/bin/true"]).status.success());
    let out = output(
        sb.permits()
            .args(["run", "--name", &good, "-j", "1", "--", "/bin/true"]),
    );
    assert!(out.status.success());

    let before = list(&sb.state());
    let out = output(sb.permits().args(["status", "--name", "typo"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(list(&sb.state()), before, "status left a file behind");
    let out = output(sb.permits().args(["wait", "--name", "typo"]));
    assert!(out.status.success());
    assert_eq!(list(&sb.state()), before, "wait left a file behind");
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Finding 9: messages repeated their prefix (`semaphore "x": semaphore
/// "x" has …`). Each thing is said once.
#[test]
fn a_capacity_mismatch_names_the_semaphore_once() {
    let sb = Sandbox::new("once");
    let mut cmd = sb.permits();
    cmd.args(["run", "--name", &sb.name, "-j", "1"])
        .args(HOLDING);
    let (mut holder, stdin) = hold(cmd);
    let out = sb.run("3", &[], &["/bin/true"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches(&sb.name).count(), 1, "{stderr}");
    assert!(stderr.contains("capacity 1"), "{stderr}");
    drop(stdin);
    assert!(holder.wait().unwrap().success());
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Findings 5 and 9: `status` showed the exited `permits` pid for a
/// `--bg` holder, and only a count of waiters ("1 waiting" without who).
/// Now holders show the command's pid, and holders and waiters their
/// pid, state (running or stopped), since and label, in text and JSON.
#[test]
fn status_shows_the_real_holders_and_the_waiters_with_their_state() {
    let sb = Sandbox::new("who");
    let stop = sb.dir.path().join("stop");
    let job = bg_job(&sb.dir.path().join("log"), &stop);
    let job: Vec<&str> = job.iter().map(String::as_str).collect();
    let out = sb.run("1", &["--bg", "--label", "bg job"], &job);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let command: u32 = stderr
        .split("started pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {stderr:?}"));
    let status = sb.status();
    assert_eq!(status["held"], 1);
    assert_eq!(
        status["holders"][0]["pid"], command,
        "not the command's pid"
    );
    assert_eq!(status["holders"][0]["state"], "running");
    assert_eq!(status["holders"][0]["label"], "bg job");
    signal(command, "-STOP");
    until("the holder to show as stopped", || {
        sb.status()["holders"][0]["state"] == "stopped"
    });
    signal(command, "-CONT");

    let mut waiter = sb
        .permits()
        .args(["run", "--name", &sb.name, "-j", "1", "--label", "waiter"])
        .args(["--", "/bin/true"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    until("the waiter to queue", || sb.status()["waiters"] == 1);
    let status = sb.status();
    assert_eq!(status["queue"][0]["pid"], waiter.id());
    assert_eq!(status["queue"][0]["state"], "running");
    assert_eq!(status["queue"][0]["label"], "waiter");
    assert!(status["queue"][0]["since_ms"].is_u64());
    signal(waiter.id(), "-STOP");
    until("the waiter to show as stopped", || {
        sb.status()["queue"][0]["state"] == "stopped"
    });
    let out = output(sb.permits().args(["status", "--name", &sb.name]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("waiting #1: pid {} (stopped)", waiter.id())),
        "{text}"
    );
    assert!(
        text.contains(&format!("slot 0: pid {command} (running)")),
        "{text}"
    );
    signal(waiter.id(), "-CONT");
    std::fs::write(&stop, "").unwrap();
    assert!(waiter.wait().unwrap().success());
}

/// Finding 5: a waiter stopped (SIGSTOP, Ctrl-Z) at the head of the queue
/// kept a free slot unused: the waiters behind it and newcomers waited
/// until they timed out. Now a stopped waiter is passed over and keeps its
/// place: when it continues, it is served.
#[test]
fn a_stopped_waiter_does_not_hold_up_a_free_slot() {
    let sb = Sandbox::new("stopped");
    let mut cmd = sb.permits();
    cmd.args(["run", "--name", &sb.name, "-j", "1"])
        .args(HOLDING);
    let (mut holder, mut stdin) = hold(cmd);
    let waiter = |label: &str, timeout: &str| {
        sb.permits()
            .args(["run", "--name", &sb.name, "-j", "1", "--label", label])
            .args(["--timeout", timeout, "--", "/bin/true"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = waiter("first", "60");
    until("the first waiter to queue", || sb.status()["waiters"] == 1);
    let mut second = waiter("second", "60");
    until("the second waiter to queue", || sb.status()["waiters"] == 2);
    signal(first.id(), "-STOP");
    until("the head to show as stopped", || {
        sb.status()["queue"][0]["state"] == "stopped"
    });
    stdin.write_all(b"done\n").unwrap();
    assert!(holder.wait().unwrap().success());
    // The second waiter gets the slot the stopped head cannot take (its
    // 60 s timeout is only a hang guard: 124 would mean it never did).
    assert_eq!(second.wait().unwrap().code(), Some(0));
    // A newcomer does not wait behind a stopped waiter either.
    let out = sb.run("1", &["--timeout", "0"], &["/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "a stopped waiter held the slot");
    assert_eq!(
        sb.status()["waiters"],
        1,
        "the stopped waiter keeps its place"
    );
    signal(first.id(), "-CONT");
    assert_eq!(first.wait().unwrap().code(), Some(0));
}

fn make_available() -> bool {
    Command::new("make")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Finding 7: `permits run` ignored `MAKEFLAGS`, and `batch` took `make
/// -n` for "no jobserver" and ran its jobs. Under `make -n` both print
/// what they would run and run nothing (their recipes are marked `+`, so
/// make runs them even in a dry run, as it does for `$(MAKE)`).
#[test]
fn make_dry_run_runs_nothing_through_run_or_batch() {
    if !make_available() {
        eprintln!("skipped: GNU make is not installed (CI installs it)");
        return;
    }
    let sb = Sandbox::new("dry");
    let ran = sb.dir.path().join("ran");
    let permits = permits_bin();
    let makefile = sb.dir.path().join("Makefile");
    std::fs::write(
        &makefile,
        format!(
            ".PHONY: all a b\nall: a b\n\
             a:\n\t+{p} run --name {n} -j 1 -- touch {r}.run\n\
             b:\n\t+{p} batch -j 2 -- 'touch {r}.batch'\n",
            p = permits.display(),
            n = sb.name,
            r = ran.display()
        ),
    )
    .unwrap();
    let out = output(
        Command::new("make")
            .args(["-n", "-j2", "-f"])
            .arg(&makefile)
            .env("PERMITS_DIR", sb.state())
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS"),
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for what in ["run", "batch"] {
        let marker = format!("{}.{what}", ran.display());
        assert!(
            !Path::new(&marker).exists(),
            "permits {what} ran under make -n"
        );
        assert!(
            stdout.lines().any(|l| l == format!("touch {marker}")),
            "permits {what} did not say what it would run: {stdout}"
        );
    }
}

/// Finding 7: `permits run` said nothing about a `MAKEFLAGS` whose
/// jobserver cannot be used (here: descriptors that are not open), while
/// `batch` warned. Both warn, and still run.
#[test]
fn run_warns_about_a_broken_jobserver_like_batch() {
    let sb = Sandbox::new("broken");
    for args in [
        vec!["run", "--name", &sb.name, "-j", "1", "--", "/bin/true"],
        vec!["batch", "-j", "1", "--", "/bin/true"],
    ] {
        let out = output(
            sb.permits()
                .env("MAKEFLAGS", " -j2 --jobserver-auth=97,98")
                .args(&args),
        );
        assert!(out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("warning"), "{args:?}: {stderr}");
        assert!(stderr.contains("MAKEFLAGS"), "{args:?}: {stderr}");
    }
}
