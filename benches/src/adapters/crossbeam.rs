//! A crossbeam bounded channel used as a semaphore: `send(())` takes a
//! permit (it blocks while the channel is full), `recv()` gives it back.

use super::{BlockingSemaphore, Weighted};
use crossbeam_channel::{bounded, Receiver, Sender};

/// `crossbeam_channel::bounded(n)`: a full channel means no permit left.
pub struct CrossbeamChannel {
    take: Sender<()>,
    give: Receiver<()>,
}

/// One permit of a [`CrossbeamChannel`]; released on drop.
pub struct ChannelPermit<'a>(&'a Receiver<()>);

impl BlockingSemaphore for CrossbeamChannel {
    const ID: &'static str = "crossbeam_channel";
    const WEIGHTED: Weighted = Weighted::Emulated;
    const HOW: &'static str = "crossbeam_channel::bounded(n): send() acquires, recv() releases";
    type Guard<'a> = ChannelPermit<'a>;

    fn new(permits: usize) -> Self {
        let (take, give) = bounded(permits);
        CrossbeamChannel { take, give }
    }
    fn acquire(&self) -> ChannelPermit<'_> {
        self.take
            .send(())
            .expect("both ends live as long as the semaphore");
        ChannelPermit(&self.give)
    }
    fn try_acquire(&self) -> Option<ChannelPermit<'_>> {
        self.take
            .try_send(())
            .ok()
            .map(|()| ChannelPermit(&self.give))
    }
}

impl Drop for ChannelPermit<'_> {
    fn drop(&mut self) {
        // The holder's message is in the channel, so this never waits long.
        let _ = self.0.recv();
    }
}
