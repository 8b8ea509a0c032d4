//! Finding a leaked permit with holder diagnostics: a pool of 2
//! connections, a request handler that forgets to give one back on an
//! error path (it stashes the guard in a long-lived cache), and the next
//! request timing out. The timeout's handler prints
//! `Semaphore::diagnostics()`, which names the line that acquired the
//! leaked permit and the thread that holds it.
//!
//! `cargo run -p permits --features diagnostics --example leak_hunt`
//! (it asserts what it prints).

use permits::{AcquireTimeoutError, Permit, Semaphore};
use std::time::Duration;

static POOL: Semaphore = Semaphore::new(2);

fn handle(request: u32, cache: &mut Vec<Permit<'static>>) -> Result<(), AcquireTimeoutError> {
    let conn = POOL.acquire_timeout(Duration::from_millis(50))?;
    if request % 2 == 1 {
        // The bug: on this path the guard outlives the request.
        cache.push(conn);
    }
    Ok(())
}

fn main() {
    let mut cache = Vec::new();
    let mut outcome = Vec::new();
    for request in 0..5 {
        match handle(request, &mut cache) {
            Ok(()) => outcome.push(format!("request {request}: ok")),
            Err(e) => {
                outcome.push(format!("request {request}: {e}"));
                let report = POOL.diagnostics().to_string();
                println!("request {request} timed out; pool report:\n{report}");
                // Both permits are held, both from the same line of
                // `handle`: that is the leak.
                let holders = POOL.holders();
                assert_eq!(holders.len(), 2);
                assert!(holders
                    .iter()
                    .all(|h| h.location.file().ends_with("leak_hunt.rs")));
                let leak_line = holders[0].location.line();
                assert!(holders.iter().all(|h| h.location.line() == leak_line));
                assert!(
                    report.contains(&format!("leak_hunt.rs:{leak_line}")),
                    "{report}"
                );
            }
        }
    }
    println!("{}", outcome.join("\n"));
    assert!(
        outcome[4].starts_with("request 4: timed out"),
        "{}",
        outcome[4]
    );
    drop(cache);
    assert!(POOL.holders().is_empty(), "the cache held them all");
}
