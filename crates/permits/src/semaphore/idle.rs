//! Waiting until no permit is held ([`WaitIdle`]): the seed's "acquire
//! every slot to wait for all work", without taking any permit and without
//! blocking acquirers while it waits.

use super::Semaphore;
use crate::block::Wait;
use crate::error::Elapsed;
use crate::waiters::{Key, Status, DONE, NIL};
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
    key: Key,
}

impl<'a> WaitIdle<'a> {
    pub(crate) const fn new(sem: &'a Semaphore) -> Self {
        WaitIdle { sem, key: NIL }
    }

    crate::block::elapsed_waits!(
        "no permit is held",
        "permits were still held at the deadline"
    );
}

impl Wait for WaitIdle<'_> {
    type Output = Result<(), Elapsed>;

    fn poll_wait(&mut self, waker: &Waker) -> Poll<Self::Output> {
        match self.key {
            DONE => panic!("`WaitIdle` polled after it completed"),
            NIL => match self.sem.enqueue_idle(waker) {
                None => {}
                Some(key) => {
                    self.key = key;
                    return Poll::Pending;
                }
            },
            key => {
                if self.sem.poll_slot(key, waker, true).is_pending() {
                    return Poll::Pending;
                }
            }
        }
        self.key = DONE;
        Poll::Ready(Ok(()))
    }

    fn expire(&mut self) -> Self::Output {
        let key = core::mem::replace(&mut self.key, DONE);
        match self.sem.withdraw(key) {
            Status::Idle => Err(Elapsed::new()),
            _ => Ok(()),
        }
    }
}

impl Future for WaitIdle<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_wait(cx.waker()).map(|_| ())
    }
}

impl Drop for WaitIdle<'_> {
    fn drop(&mut self) {
        if self.key != NIL && self.key != DONE {
            self.sem.withdraw(self.key);
        }
    }
}
