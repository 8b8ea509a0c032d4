//! Declares the crate's own cfg: `--cfg permits_unsupported` compiles the
//! "unsupported platform" layer on Linux, so that fallback stays buildable
//! (`RUSTFLAGS="--cfg permits_unsupported" cargo check -p permits-process`).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(permits_unsupported)");
    println!("cargo::rerun-if-changed=build.rs");
}
