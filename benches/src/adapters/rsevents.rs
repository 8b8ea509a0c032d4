//! rsevents-extra's `Semaphore`: a CAS count over an `AutoResetEvent`
//! (parking_lot_core); `u16` counts, no weighted acquire, barging.

use super::{BlockingSemaphore, Weighted};
use rsevents_extra::{Semaphore, SemaphoreGuard};
use std::time::Duration;

/// `rsevents_extra::Semaphore::new(n, n)`; `wait()`, `wait_for(ZERO)`.
pub struct RsEventsExtra(Semaphore);

impl BlockingSemaphore for RsEventsExtra {
    const ID: &'static str = "rsevents_extra";
    const WEIGHTED: Weighted = Weighted::Emulated;
    const HOW: &'static str = "rsevents_extra::Semaphore::new(n, n); wait() / wait_for(ZERO)";
    type Guard<'a> = SemaphoreGuard<'a>;

    fn new(permits: usize) -> Self {
        let n = u16::try_from(permits).expect("rsevents-extra counts are u16");
        RsEventsExtra(Semaphore::new(n, n))
    }
    fn acquire(&self) -> SemaphoreGuard<'_> {
        self.0.wait()
    }
    fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.0.wait_for(Duration::ZERO).ok()
    }
}
