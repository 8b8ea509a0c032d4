//! Build script of the `permits` command: puts the commit the source came
//! from into `permits --version` (`permits 0.1.0 (commit 1a2b3c4)`).
//!
//! Where the commit comes from, in order:
//! 1. a packaged crate (`cargo package`, crates.io, `cargo install
//!    permits-cli`): the `.cargo_vcs_info.json` cargo wrote when it packaged
//!    it from a git checkout; git is not run, so a crate unpacked inside
//!    some other repository never reports that repository's commit;
//! 2. a git checkout: `git rev-parse --short HEAD`, if git is installed and
//!    this directory is tracked there.
//!
//! Anything else (no git, a tarball, an error) leaves the plain version,
//! silently: the commit is a convenience, never a reason to fail a build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let commit = packaged_commit(&dir).or_else(|| checkout_commit(&dir));
    let long = match commit {
        Some(commit) => format!("{version} (commit {commit})"),
        None => version,
    };
    println!("cargo:rustc-env=PERMITS_CLI_VERSION={long}");
}

/// The commit recorded in `.cargo_vcs_info.json` (`"sha1": "<40 hex>"`),
/// shortened as git does by default. Read by hand: a build dependency for
/// one field is not worth it.
fn packaged_commit(dir: &Path) -> Option<String> {
    let info = dir.join(".cargo_vcs_info.json");
    let text = std::fs::read_to_string(&info).ok()?;
    println!("cargo:rerun-if-changed={}", info.display());
    let after = text.split("\"sha1\"").nth(1)?;
    let hex: String = after
        .trim_start_matches(|c: char| c == ':' || c == '"' || c.is_whitespace())
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    (hex.len() == 40).then(|| hex[..7].to_owned())
}

/// `git rev-parse --short HEAD` in `dir`, when `dir` is part of that
/// checkout (its `Cargo.toml` is tracked). Asks cargo to re-run this script
/// when HEAD moves: HEAD itself (a checkout), the branch refs (a commit)
/// and `packed-refs`.
fn checkout_commit(dir: &Path) -> Option<String> {
    git(dir, &["ls-files", "--error-unmatch", "Cargo.toml"])?;
    let commit = git(dir, &["rev-parse", "--short", "HEAD"])?;
    for watched in ["HEAD", "refs/heads", "packed-refs"] {
        let path = git(
            dir,
            &["rev-parse", "--path-format=absolute", "--git-path", watched],
        );
        if let Some(path) = path.filter(|p| Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    Some(commit)
}

/// One git command's trimmed stdout, or `None` on any failure (git
/// missing, not a checkout, a non-zero status, empty output).
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}
