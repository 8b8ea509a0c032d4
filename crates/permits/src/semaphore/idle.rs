//! Waiting until no permit is held ([`WaitIdle`]): the seed's "acquire
//! every slot to wait for all work", without taking any permit and without
//! blocking acquirers while it waits.

use super::Semaphore;
use crate::block::Wait;
use crate::waiters::{Phase, Status};
use crate::wake::WakeList;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

/// Future of [`Semaphore::wait_idle`]: completes when no permit is held.
///
/// "Held" counts every permit in a guard (including guards leaked with
/// `mem::forget`, which are held forever) and permits granted to a waiter;
/// permits still being collected by a queued waiter are not held. It takes
/// no permit, so acquirers are never blocked by it: under a steady stream
/// of work it completes only at a moment when all of it has finished.
///
/// # Cancel safety
///
/// Dropping it at any point is safe and affects nothing else.
///
/// # Panics
///
/// Polling it again after it returned `Ready` panics.
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct WaitIdle<'a> {
    sem: &'a Semaphore,
    phase: Phase,
}

impl<'a> WaitIdle<'a> {
    pub(crate) const fn new(sem: &'a Semaphore) -> Self {
        WaitIdle {
            sem,
            phase: Phase::Start,
        }
    }

    crate::block::elapsed_waits!(
        "no permit is held",
        "permits were still held at the deadline"
    );
}

impl Wait for WaitIdle<'_> {
    type Output = ();

    fn poll_wait(&mut self, waker: &Waker) -> Poll<Self::Output> {
        let mut wakes = WakeList::new();
        let poll = match self.phase {
            Phase::Done | Phase::Granted => panic!("`WaitIdle` polled after it completed"),
            Phase::Start => match self.sem.raw.enqueue_idle(waker, &mut wakes) {
                None => Poll::Ready(()),
                Some(key) => {
                    self.phase = Phase::Queued(key);
                    Poll::Pending
                }
            },
            Phase::Queued(key) => self
                .sem
                .raw
                .poll_slot(key, waker, true, &mut wakes)
                .map(|_| ()),
        };
        if poll.is_ready() {
            self.phase = Phase::Done;
        }
        wakes.wake_all();
        poll
    }

    fn expire(&mut self) -> Option<()> {
        let Phase::Queued(key) = core::mem::replace(&mut self.phase, Phase::Done) else {
            unreachable!("only a queued wait expires");
        };
        let mut wakes = WakeList::new();
        let status = self.sem.raw.withdraw(key, 0, true, &mut wakes);
        wakes.wake_all();
        // Still waiting at the deadline: timed out.
        (status != Status::Idle).then_some(())
    }
}

impl Future for WaitIdle<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_wait(cx.waker())
    }
}

impl Drop for WaitIdle<'_> {
    fn drop(&mut self) {
        if let Phase::Queued(key) = core::mem::replace(&mut self.phase, Phase::Done) {
            let mut wakes = WakeList::new();
            self.sem.raw.withdraw(key, 0, false, &mut wakes);
            wakes.wake_all();
        }
    }
}
