//! Producer/consumer signalling with two semaphores around a bounded
//! queue, the classic pattern the seed article's free-standing release
//! exists for. `items` starts with no permits, `Semaphore::with_available(0, N)`:
//! a producer signals each queued item with `add_permits(1)`, and a
//! consumer waits for a signal and consumes it with `Permit::forget`.
//! `slots` (N permits) works the other way round, so producers block while
//! the queue is full. The example asserts that the queue never exceeds N,
//! that no signal is ever refused, and that every item arrives exactly
//! once. Run with `cargo run -p permits --example producer_consumer`.

use permits::{Semaphore, TryAcquireError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

const SLOTS: usize = 4;
const PRODUCERS: usize = 2;
const CONSUMERS: usize = 3;
const ITEMS_EACH: usize = 50;

enum Message {
    Item(usize),
    Stop,
}

/// A bounded queue of `SLOTS` messages.
struct Channel {
    queue: Mutex<VecDeque<Message>>,
    /// One permit per queued message: consumers wait on it.
    items: Semaphore,
    /// One permit per free slot: producers wait on it.
    slots: Semaphore,
    peak: AtomicUsize,
}

impl Channel {
    fn new() -> Self {
        Channel {
            queue: Mutex::new(VecDeque::new()),
            items: Semaphore::with_available(0, SLOTS),
            slots: Semaphore::new(SLOTS),
            peak: AtomicUsize::new(0),
        }
    }

    fn send(&self, msg: Message) {
        // Claim a free slot: the permit leaves existence until a consumer
        // frees the slot again.
        self.slots
            .acquire_blocking()
            .expect("never closed")
            .forget();
        {
            let mut queue = self.queue.lock().unwrap();
            queue.push_back(msg);
            assert!(
                queue.len() <= SLOTS,
                "{} messages in {SLOTS} slots",
                queue.len()
            );
            self.peak.fetch_max(queue.len(), Ordering::SeqCst);
        }
        // Signal it. Never refused: there is at most one signal per queued
        // message, and at most `SLOTS` messages.
        self.items
            .add_permits(1)
            .expect("a signal per queued message fits");
    }

    fn recv(&self) -> Message {
        // Wait for a signal and consume it.
        self.items
            .acquire_blocking()
            .expect("never closed")
            .forget();
        let msg = self
            .queue
            .lock()
            .unwrap()
            .pop_front()
            .expect("a signal means a message is queued");
        self.slots.add_permits(1).expect("a freed slot fits");
        msg
    }
}

fn main() {
    let ch = Channel::new();
    println!(
        "A {SLOTS}-slot queue: `items` has {} of {} permits, `slots` has {} of {}.",
        ch.items.available_permits(),
        ch.items.capacity(),
        ch.slots.available_permits(),
        ch.slots.capacity()
    );
    assert_eq!(
        ch.items.try_acquire().unwrap_err(),
        TryAcquireError::NoPermits
    );
    println!(
        "With nothing sent, a consumer finds no signal: try_acquire says \"no permits available\"."
    );

    let received: Vec<Vec<usize>> = thread::scope(|s| {
        let ch = &ch;
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                s.spawn(move || {
                    let mut got = Vec::new();
                    while let Message::Item(n) = ch.recv() {
                        got.push(n);
                    }
                    got
                })
            })
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                s.spawn(move || {
                    for i in 0..ITEMS_EACH {
                        ch.send(Message::Item(p * ITEMS_EACH + i));
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        // One stop message per consumer, queued behind every item.
        for _ in 0..CONSUMERS {
            ch.send(Message::Stop);
        }
        consumers.into_iter().map(|c| c.join().unwrap()).collect()
    });

    let counts: Vec<String> = received.iter().map(|got| got.len().to_string()).collect();
    let mut all: Vec<usize> = received.into_iter().flatten().collect();
    all.sort_unstable();
    let total = PRODUCERS * ITEMS_EACH;
    println!(
        "{PRODUCERS} producers sent {total} items; {CONSUMERS} consumers received {} of them \
         ({}), each exactly once.",
        all.len(),
        counts.join(" + ")
    );
    assert_eq!(all, (0..total).collect::<Vec<_>>());

    let peak = ch.peak.load(Ordering::SeqCst);
    println!("The queue never held more than {peak} messages ({SLOTS} slots).");
    assert!((1..=SLOTS).contains(&peak));

    println!(
        "Afterwards: `items` has {} permits (no signal left over), `slots` has {} (all free).",
        ch.items.available_permits(),
        ch.slots.available_permits()
    );
    assert!(ch.queue.lock().unwrap().is_empty());
    assert_eq!(ch.items.available_permits(), 0);
    assert_eq!(ch.slots.available_permits(), SLOTS);
    assert_eq!((ch.items.held_permits(), ch.slots.held_permits()), (0, 0));
}
