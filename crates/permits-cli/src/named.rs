//! `permits run`, `permits wait` and `permits status`: one command, or a
//! wait, or a look, on a named crash-safe semaphore.

use crate::args::{default_jobs, RunArgs, StatusArgs, WaitArgs};
use crate::make::{shell_line, Make};
use crate::proc::{exit_code, in_terminal_foreground, signal_from_raw, Running, Signaller, Wake};
use crate::signals::Catcher;
use crate::Failure;
use permits_process::named::{NamedSemaphore, NamedStatus, ProcessState};
use permits_process::AcquireError;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Exit status when a wait times out (as `timeout(1)`).
pub const TIMED_OUT: i32 = 124;

/// `permits run`: waits for a slot, runs the command holding it, exits
/// with the command's status.
pub fn run(args: RunArgs) -> Result<i32, Failure> {
    // A deadline computed once, for make's token and the named slot (a
    // timeout beyond what a clock can add is no deadline).
    let deadline = args.timeout.and_then(|t| Instant::now().checked_add(t));
    let make = Make::from_env("running without make's jobserver");
    if let Make::DryRun = make {
        println!("{}", shell_line(&args.command));
        return Ok(0);
    }
    // Under make, hold a token of make's pool while the command runs (the
    // recipe's own token comes first, so one `run` per recipe waits for
    // nothing); not for --bg, whose command outlives us.
    let _token = match (&make, args.bg) {
        (Make::Pool(pool), false) => {
            let token = match deadline {
                Some(d) => pool.acquire_deadline(d),
                None => pool.acquire_blocking(),
            };
            match token {
                Ok(token) => Some(token),
                Err(AcquireError::TimedOut) => {
                    eprintln!("permits: timed out waiting for a token of make's jobserver");
                    return Ok(TIMED_OUT);
                }
                Err(e) => {
                    return Err(Failure::other(format!(
                        "cannot take a token of make's jobserver: {e}"
                    )))
                }
            }
        }
        _ => None,
    };
    let jobs = args.jobs.unwrap_or_else(default_jobs);
    let label = args.label.clone().unwrap_or_else(|| {
        args.command
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    });
    let sem = args
        .state
        .options(&args.name)
        .capacity(jobs)
        .label(label)
        .open()
        .map_err(|e| Failure::named(&args.name, e))?;
    let acquired = match deadline {
        Some(d) => sem.acquire_deadline(d),
        None => sem.acquire(),
    };
    let mut permit = match acquired {
        Ok(permit) => permit,
        Err(AcquireError::TimedOut) => {
            eprintln!("permits: timed out waiting for a slot of {:?}", args.name);
            return Ok(TIMED_OUT);
        }
        Err(e) => {
            return Err(Failure::other(format!(
                "cannot acquire {:?}: {e}",
                args.name
            )))
        }
    };
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    // The child holds the slot too: it stays taken until the command ends,
    // even if `permits` itself is killed.
    permit
        .inherit_into(&mut cmd)
        .map_err(|e| Failure::io("cannot pass the slot to the command", e))?;
    if args.bg {
        use std::os::unix::process::CommandExt;
        cmd.stdin(std::process::Stdio::null()).process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| spawn_failure(&args.command[0], e))?;
        // `status` shows the command, which keeps the slot, not us.
        let _ = permit.set_holder_pid(child.id());
        eprintln!("permits: started pid {} in the background", child.id());
        // Our descriptor closes without unlocking: the child keeps the slot.
        permit.detach();
        return Ok(0);
    }
    // Catch termination signals before the command starts: one that
    // arrives before the forwarding is set up is forwarded then, instead
    // of killing `permits` and leaving the command running unsignalled.
    let catcher = Catcher::new().map_err(|e| Failure::io("cannot install signal handlers", e))?;
    let child = cmd
        .spawn()
        .map_err(|e| spawn_failure(&args.command[0], e))?;
    let _ = permit.set_holder_pid(child.id());
    let mut running =
        Running::new(child, false).map_err(|e| Failure::io("cannot watch the command", e))?;
    let signaller = running
        .signaller()
        .map_err(|e| Failure::io("cannot watch the command", e))?;
    forward_signals(catcher, signaller)?;
    let status = loop {
        match running.wait_until(None, None) {
            Ok(Wake::Exited(status)) => break status,
            Ok(_) => continue,
            Err(e) => return Err(Failure::io("cannot wait for the command", e)),
        }
    };
    drop(permit);
    Ok(exit_code(status))
}

/// Forwards termination signals to the child. A Ctrl-C or Ctrl-\ typed in
/// the terminal already reached it (same foreground process group), so
/// those are not sent twice.
pub fn forward_signals(catcher: Catcher, signaller: Signaller) -> Result<(), Failure> {
    catcher
        .hand_to(move |sig| {
            let from_terminal = matches!(
                sig,
                signal_hook::consts::SIGINT | signal_hook::consts::SIGQUIT
            ) && in_terminal_foreground();
            if from_terminal {
                return;
            }
            if let Some(signal) = signal_from_raw(sig) {
                let _ = signaller.signal(signal);
            }
        })
        .map_err(|e| Failure::io("cannot install signal handlers", e))
}

/// A command that could not be started: status 127 if it was not found,
/// else 126 (as a shell says).
pub fn spawn_failure(program: &std::ffi::OsStr, e: std::io::Error) -> Failure {
    let code = if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    Failure::with_code(
        code,
        format!("cannot run {}: {e}", program.to_string_lossy()),
    )
}

/// `permits wait`: returns when nothing holds the semaphore.
pub fn wait(args: WaitArgs) -> Result<i32, Failure> {
    let sem = match args.state.options(&args.name).open() {
        Ok(sem) => sem,
        Err(e) if e.is_not_found() => return Ok(0),
        Err(e) => return Err(Failure::named(&args.name, e)),
    };
    let waited = match args.timeout {
        Some(timeout) => sem.wait_idle_timeout(timeout),
        None => sem.wait_idle(),
    };
    match waited {
        Ok(()) => Ok(0),
        Err(AcquireError::TimedOut) => {
            eprintln!("permits: {:?} is still held", args.name);
            Ok(TIMED_OUT)
        }
        Err(e) => Err(Failure::other(format!(
            "cannot wait for {:?}: {e}",
            args.name
        ))),
    }
}

/// `permits status`: capacity, holders and waiters, as text or JSON.
pub fn status(args: StatusArgs) -> Result<i32, Failure> {
    let base = args
        .state
        .base()
        .map_err(|e| Failure::other(format!("cannot find the state directory: {e}")))?;
    let names = match &args.name {
        Some(name) => vec![name.clone()],
        None => {
            NamedSemaphore::list_in(&base).map_err(|e| Failure::io("cannot list semaphores", e))?
        }
    };
    let mut all = Vec::new();
    for name in &names {
        let sem = match args.state.options(name).open() {
            Ok(sem) => sem,
            Err(e) if e.is_not_found() && args.name.is_some() => {
                return Err(Failure::with_code(
                    1,
                    format!("no semaphore named {name:?}"),
                ));
            }
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(Failure::named(name, e)),
        };
        let status = sem
            .status()
            .map_err(|e| Failure::io("cannot read the semaphore's state", e))?;
        all.push((name.clone(), sem.path().to_owned(), status));
    }
    let mut text = String::new();
    if args.json {
        let list: Vec<_> = all.iter().map(|(n, d, s)| status_json(n, d, s)).collect();
        let value = if args.name.is_some() {
            list.into_iter().next().unwrap_or(serde_json::Value::Null)
        } else {
            serde_json::Value::Array(list)
        };
        text = format!("{value}\n");
    } else if all.is_empty() {
        text = format!("no named semaphores in {}\n", base.display());
    } else {
        for (name, dir, status) in &all {
            print_status(&mut text, name, dir, status);
        }
    }
    // A reader that stops early (`| head`) is no error: quiet status 141.
    Ok(crate::exit::print(text.as_bytes()))
}

fn millis(t: Option<SystemTime>) -> Option<u128> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
}

fn state_name(state: Option<ProcessState>) -> &'static str {
    state.map_or("gone", ProcessState::as_str)
}

fn status_json(name: &str, dir: &Path, s: &NamedStatus) -> serde_json::Value {
    let holders: Vec<_> = s
        .holders
        .iter()
        .map(|h| {
            json!({"slot": h.slot, "pid": h.pid, "state": state_name(h.state),
                "since_ms": millis(h.since), "label": h.label})
        })
        .collect();
    let queue: Vec<_> = s
        .queue
        .iter()
        .map(|w| {
            json!({"pid": w.pid, "state": state_name(w.state),
                "since_ms": millis(w.since), "label": w.label})
        })
        .collect();
    json!({"name": name, "dir": dir, "capacity": s.capacity, "held": s.held,
        "waiters": s.waiters, "holders": holders, "queue": queue})
}

fn print_status(text: &mut String, name: &str, dir: &Path, s: &NamedStatus) {
    use std::fmt::Write;
    let _ = writeln!(
        text,
        "{name}: {} of {} held, {} waiting (state in {})",
        s.held,
        s.capacity,
        s.waiters,
        dir.display()
    );
    let now = SystemTime::now();
    let line = |pid: Option<u32>, state, since: Option<SystemTime>, label: &Option<String>| {
        let pid = pid.map_or("?".to_owned(), |p| p.to_string());
        let since = since
            .and_then(|t| now.duration_since(t).ok())
            .map_or("?".to_owned(), |d| format!("{:.1}s", d.as_secs_f64()));
        let label = label.as_deref().unwrap_or("");
        format!("pid {pid} ({}), for {since}: {label}", state_name(state))
    };
    for h in &s.holders {
        let _ = writeln!(
            text,
            "  slot {}: {}",
            h.slot,
            line(h.pid, h.state, h.since, &h.label)
        );
    }
    for (i, w) in s.queue.iter().enumerate() {
        let _ = writeln!(
            text,
            "  waiting #{}: {}",
            i + 1,
            line(w.pid, w.state, w.since, &w.label)
        );
    }
}
