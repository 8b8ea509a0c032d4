//! The fixtures every integration test here uses: one copy for the
//! workspace, in `permits-testkit` (a private `redis-server` per test,
//! signals, hang guards).

#![allow(dead_code, unused_imports)]

pub use permits_testkit::*;
