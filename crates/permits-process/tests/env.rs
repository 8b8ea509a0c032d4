//! A table of hostile environments for `Client::from_env`: each gets its
//! documented outcome, names the variable it came from, and reads or
//! writes nothing when it refuses.
#![cfg(target_os = "linux")]

mod common;

use common::{role_cmd, TempDir};
use permits_process::jobserver::{Client, EnvErrorKind, Jobs, Server};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::process::Command;

#[test]
fn child() {
    common::child_entry();
}

/// The `MAKEFLAGS` a server gives its children (to reuse its real,
/// inheritable pipe descriptors in this process).
fn server_flags(server: &Server) -> String {
    let mut cmd = Command::new("true");
    server.configure(&mut cmd);
    cmd.get_envs()
        .find(|(k, _)| *k == "MAKEFLAGS")
        .and_then(|(_, v)| v)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

/// The `R,W` of a server's MAKEFLAGS.
fn server_fds(server: &Server) -> (i32, i32) {
    let flags = server_flags(server);
    let auth = flags.rsplit('=').next().unwrap();
    let (r, w) = auth.split_once(',').unwrap();
    (r.parse().unwrap(), w.parse().unwrap())
}

type Outcome = Result<(), (EnvErrorKind, Option<&'static str>, bool)>;
type Vars = Vec<(&'static str, OsString)>;

fn connect(vars: &[(&str, OsString)]) -> Outcome {
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    match Client::from_env_with(lookup) {
        Ok(client) => {
            // Connected: prove it by a real round trip.
            drop(client.try_acquire().expect("a token"));
            Ok(())
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            if let Some(var) = e.variable() {
                if e.is_warning() {
                    assert!(e.to_string().contains(var), "{e} names {var}");
                }
            }
            Err((e.kind().clone(), e.variable(), e.is_warning()))
        }
    }
}

fn mf(value: impl Into<String>) -> Vars {
    vec![("MAKEFLAGS", value.into().into())]
}

#[test]
fn hostile_environment_table() {
    let dir = TempDir::new("env");
    let server = Server::new(3).unwrap();
    let (r, w) = server_fds(&server);
    let good = format!(" -j3 --jobserver-auth={r},{w}");

    // Regular files on "reused" descriptors, with content a careless
    // client would read as tokens.
    let mut regular = File::create(dir.join("regular")).unwrap();
    regular.write_all(b"+++").unwrap();
    let regular = File::open(dir.join("regular")).unwrap();
    let reg = regular.as_raw_fd();
    let (other_r, other_w) = std::io::pipe().unwrap();
    let mut other_w = other_w;
    other_w.write_all(b"++").unwrap();
    let (pr, pw) = (other_r.as_raw_fd(), other_w.as_raw_fd());
    let not_fifo = dir.join("not-a-fifo");
    std::fs::write(&not_fifo, "+").unwrap();
    let missing = dir.join("missing-fifo");
    let closed = 1_000_000;

    use EnvErrorKind::*;
    let m = Some("MAKEFLAGS");
    let table: Vec<(&str, Vars, Outcome)> = vec![
        ("nothing set", vec![], Err((NotSet, None, false))),
        ("-jN without auth", mf(" -j4"), Err((NoAuth, m, false))),
        ("bare -j", mf(" -j"), Err((NoAuth, m, false))),
        (
            "empty MAKEFLAGS hides the rest",
            {
                let mut v = mf("");
                v.push(("MFLAGS", good.clone().into()));
                v
            },
            Err((NoAuth, m, false)),
        ),
        (
            "negative fds",
            mf(" -j4 --jobserver-auth=-2,-2"),
            Err((Disabled, m, false)),
        ),
        (
            "make 4.4 appends -2,-2: last wins",
            mf(format!("{good} --jobserver-auth=-2,-2")),
            Err((Disabled, m, false)),
        ),
        (
            "repeated flags, valid last",
            mf(format!(
                " -j3 --jobserver-auth=-2,-2 --jobserver-auth=9,9 --jobserver-fds={r},{w}"
            )),
            Ok(()),
        ),
        (
            "old --jobserver-fds only",
            mf(format!(" -j3 --jobserver-fds={r},{w}")),
            Ok(()),
        ),
        (
            "closed fds",
            mf(format!(" -j3 --jobserver-auth={closed},{}", closed + 1)),
            Err((ClosedFd(closed), m, true)),
        ),
        (
            "closed write fd",
            mf(format!(" -j3 --jobserver-auth={r},{closed}")),
            Err((ClosedFd(closed), m, true)),
        ),
        (
            "fds reused by a regular file",
            mf(format!(" -j3 --jobserver-auth={reg},{reg}")),
            Err((NotAPipe(reg), m, true)),
        ),
        (
            "write fd reused by a regular file",
            mf(format!(" -j3 --jobserver-auth={r},{reg}")),
            Err((NotAPipe(reg), m, true)),
        ),
        (
            "fds of two different pipes",
            mf(format!(" -j3 --jobserver-auth={r},{pw}")),
            Err((DifferentPipes(r, pw), m, true)),
        ),
        // Depends on how the test runner set them up; must be refused.
        (
            "stdin/stdout are not a jobserver",
            mf(" -j3 --jobserver-auth=0,1"),
            Err((NotAPipe(0), m, true)),
        ),
        (
            "missing fifo",
            mf(format!(" -j3 --jobserver-auth=fifo:{}", missing.display())),
            Err((MissingFifo(missing.clone()), m, true)),
        ),
        (
            "fifo path is a regular file",
            mf(format!(" -j3 --jobserver-auth=fifo:{}", not_fifo.display())),
            Err((NotAFifo(not_fifo.clone()), m, true)),
        ),
        (
            "garbage",
            mf(" -j3 --jobserver-auth=abc"),
            Err((Malformed, m, true)),
        ),
        (
            "windows semaphore name",
            mf(" -j3 --jobserver-auth=gmake_semaphore_42"),
            Err((Malformed, m, true)),
        ),
        ("dry run", mf(format!("n{good}")), Err((DryRun, m, false))),
        (
            "CARGO_MAKEFLAGS only",
            vec![(
                "CARGO_MAKEFLAGS",
                format!("-j --jobserver-fds={r},{w} --jobserver-auth={r},{w}").into(),
            )],
            Ok(()),
        ),
        (
            "CARGO_MAKEFLAGS wins over MAKEFLAGS",
            vec![
                ("CARGO_MAKEFLAGS", " -j2 --jobserver-auth=zz".into()),
                ("MAKEFLAGS", good.clone().into()),
            ],
            Err((Malformed, Some("CARGO_MAKEFLAGS"), true)),
        ),
        (
            "MFLAGS as a last resort",
            vec![("MFLAGS", good.clone().into())],
            Ok(()),
        ),
        (
            "not utf-8",
            vec![("MAKEFLAGS", OsString::from_vec(vec![b'-', b'j', 0xff]))],
            Err((Malformed, m, true)),
        ),
    ];

    for (name, vars, expected) in table {
        let got = connect(&vars);
        match (&expected, &got) {
            // The stdin/stdout row depends on how the test runner set them up.
            _ if name.starts_with("stdin/stdout") => assert!(got.is_err(), "{name}: {got:?}"),
            _ => assert_eq!(got, expected, "{name}"),
        }
    }

    // Nothing was read from the refused descriptors.
    let mut regular = regular;
    assert_eq!(regular.stream_position().unwrap(), 0);
    let mut content = String::new();
    regular.read_to_string(&mut content).unwrap();
    assert_eq!(content, "+++");
    drop(other_w);
    let mut left = Vec::new();
    let mut other_r = other_r;
    other_r.read_to_end(&mut left).unwrap();
    assert_eq!(left, b"++", "the other pipe's bytes are untouched");
    let _ = pr;
    // And the server's pool is intact.
    assert_eq!(server.available().unwrap(), 2);
}

/// `-jN` survives as a hint for the fallback limit.
#[test]
fn jobs_hint_of_refusals() {
    let err = Client::from_env_with(|v| (v == "MAKEFLAGS").then(|| " -j7".into())).unwrap_err();
    assert_eq!(err.jobs().and_then(Jobs::limit), Some(7));
    assert_eq!(err.value(), Some(" -j7"));
}

/// The client never changes flags on the description it inherited:
/// `O_NONBLOCK` stays private to its own descriptions (old makes treat
/// EAGAIN on the shared one as fatal).
#[test]
fn nonblocking_stays_private() {
    let server = Server::new(2).unwrap();
    let (r, w) = server_fds(&server);
    let flags_of = |fd: i32| -> u32 {
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        let line = info.lines().find(|l| l.starts_with("flags:")).unwrap();
        u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
    };
    const O_NONBLOCK: u32 = 0o4000;
    let before = (flags_of(r), flags_of(w));
    assert_eq!(before.0 & O_NONBLOCK, 0);
    let flags = server_flags(&server);
    let client =
        Client::from_env_with(|v| (v == "MAKEFLAGS").then(|| flags.clone().into())).unwrap();
    let token = client.try_acquire().unwrap();
    assert!(client.try_acquire().unwrap_err().is_no_permits()); // EAGAIN inside
    drop(token);
    assert_eq!((flags_of(r), flags_of(w)), before);
}

/// Real inherited descriptors in a child process: regular files opened by
/// the shell on the numbers MAKEFLAGS names, and closed numbers.
#[test]
fn hostile_descriptors_in_a_child() {
    let dir = TempDir::new("env-child");
    let file = dir.join("data");
    std::fs::write(&file, "+++").unwrap();
    let exe = std::env::current_exe().unwrap();
    let cases = [
        ("exec 7<\"$F\" 8>>\"$F\"", "NotAPipe(7)"),
        ("exec 7<&- 8<&-", "ClosedFd(7)"),
        ("exec 7<\"$F\"; exec 8<&-", "NotAPipe(7)"),
    ];
    for (redirect, expected) in cases {
        let mut cmd = role_cmd("probe");
        cmd.env("MAKEFLAGS", " -j4 --jobserver-auth=7,8")
            .env("F", &file);
        let script = format!("{redirect}; exec \"$0\" \"$@\"");
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(script).arg(&exe).args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        let out = sh.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(
            stdout.contains(&format!("@@probe {expected} Some(\"MAKEFLAGS\")")),
            "{redirect}: {stdout}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "+++",
        "nothing read or written"
    );
}

/// The pool's descriptors reach only the children configured for it:
/// everything else sees them close-on-exec.
#[test]
fn descriptors_reach_only_configured_children() {
    let server = Server::new(2).unwrap();
    let (r, w) = server_fds(&server);
    let fds_of_child = |configure: bool| -> Vec<i32> {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "ls /proc/$$/fd"]);
        if configure {
            server.configure(&mut cmd);
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect()
    };
    let plain = fds_of_child(false);
    assert!(!plain.contains(&r) && !plain.contains(&w), "{plain:?}");
    let configured = fds_of_child(true);
    assert!(
        configured.contains(&r) && configured.contains(&w),
        "{configured:?}"
    );
}

/// Issue 12 (jobserver error kinds): a caller matches one of four
/// categories instead of reading messages: not in a jobserver, a dry run,
/// a broken jobserver (bad auth string, closed descriptors, missing fifo),
/// an i/o failure. Only the last two are warnings.
#[test]
fn env_errors_fall_into_the_categories_callers_match_on() {
    use permits_process::jobserver::EnvErrorCategory::{self, *};
    let dir = TempDir::new("env-category");
    let missing = dir.join("missing-fifo");
    let cases: Vec<(&str, Vars, EnvErrorCategory)> = vec![
        ("nothing set", vec![], NoJobserver),
        ("-jN without auth", mf(" -j4"), NoJobserver),
        (
            "negative descriptors",
            mf(" -j4 --jobserver-auth=-2,-2"),
            NoJobserver,
        ),
        ("make -n", mf("n -j4 --jobserver-auth=3,4"), DryRun),
        ("garbage auth", mf(" -j4 --jobserver-auth=x,y"), Broken),
        (
            "closed descriptors",
            mf(" -j4 --jobserver-auth=1000000,1000001"),
            Broken,
        ),
        (
            "missing fifo",
            mf(format!(" -j4 --jobserver-auth=fifo:{}", missing.display())),
            Broken,
        ),
    ];
    for (what, vars, want) in cases {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        };
        let err = Client::from_env_with(lookup).expect_err(what);
        assert_eq!(err.category(), want, "{what}: {err}");
        assert_eq!(
            err.is_warning(),
            matches!(want, Broken | Io),
            "{what}: {err}"
        );
    }
}
