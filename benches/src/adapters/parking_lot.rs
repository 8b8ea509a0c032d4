//! A hand-written `parking_lot::Mutex<usize>` + `Condvar` semaphore, the
//! same design as the reference row on parking_lot's primitives.

use super::{BlockingSemaphore, Weighted};
use parking_lot::{Condvar, Mutex};

/// A `parking_lot::Mutex<usize>` count and a `parking_lot::Condvar`.
pub struct ParkingLotCondvar {
    count: Mutex<usize>,
    available: Condvar,
}

/// One permit of a [`ParkingLotCondvar`]; released on drop.
pub struct ParkingLotPermit<'a>(&'a ParkingLotCondvar);

impl BlockingSemaphore for ParkingLotCondvar {
    const ID: &'static str = "parking_lot_condvar";
    const WEIGHTED: Weighted = Weighted::Emulated;
    const HOW: &'static str =
        "parking_lot::Mutex<usize> + Condvar, notify_one after unlock (hand-written)";
    type Guard<'a> = ParkingLotPermit<'a>;

    fn new(permits: usize) -> Self {
        ParkingLotCondvar {
            count: Mutex::new(permits),
            available: Condvar::new(),
        }
    }
    fn acquire(&self) -> ParkingLotPermit<'_> {
        let mut count = self.count.lock();
        while *count == 0 {
            self.available.wait(&mut count);
        }
        *count -= 1;
        ParkingLotPermit(self)
    }
    fn try_acquire(&self) -> Option<ParkingLotPermit<'_>> {
        let mut count = self.count.lock();
        if *count == 0 {
            return None;
        }
        *count -= 1;
        Some(ParkingLotPermit(self))
    }
}

impl Drop for ParkingLotPermit<'_> {
    fn drop(&mut self) {
        *self.0.count.lock() += 1;
        self.0.available.notify_one();
    }
}
