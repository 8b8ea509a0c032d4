//! Comparison benchmarks of `permits` (work in progress: the harness lands
//! with the benchmark-suite issue).

fn main() {
    eprintln!("permits-bench: the comparison harness is not written yet");
    std::process::exit(2);
}
