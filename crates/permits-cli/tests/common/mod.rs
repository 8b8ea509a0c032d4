//! Test fixtures of the CLI's integration tests: the workspace's shared
//! ones (`permits-testkit`: a private `redis-server` per test, signals,
//! process liveness, hang guards) and scratch directories.

#![allow(dead_code, unused_imports)]

pub use permits_testkit::*;
use std::path::PathBuf;

/// A scratch directory for a test's files.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a scratch directory")
}

/// Where a scratch file lives.
pub fn path(dir: &tempfile::TempDir, file: &str) -> PathBuf {
    dir.path().join(file)
}
