//! Helpers shared by the `permits batch` tests: the binary in a scratch
//! directory with its own state and no inherited jobserver, named pipes,
//! and peak memory from `/proc`.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// `permits`, run in `dir`, with its state under `dir/state` and no
/// jobserver inherited from the environment (`make -j` running the tests).
pub fn permits_std(dir: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("permits"));
    cmd.current_dir(dir)
        .env("PERMITS_DIR", dir.join("state"))
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("CARGO_MAKEFLAGS");
    cmd
}

/// Makes a named pipe at `path`.
pub fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

/// The largest memory `pid` has used, in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}
