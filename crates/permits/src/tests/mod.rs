//! Internal tests: loom models of the engine's state machine (run with
//! `RUSTFLAGS="--cfg permits_loom" cargo test -p permits --release --lib loom`)
//! and unit tests of the internal pieces.

#[cfg(permits_loom)]
mod loom_all;
#[cfg(permits_loom)]
mod loom_events;
#[cfg(permits_loom)]
mod loom_models;
#[cfg(permits_loom)]
mod loom_refill;
#[cfg(not(permits_loom))]
mod unit;
