//! Events on their way to a front-end, without ever making the network loop wait for it.
//!
//! The channel to the front-end is bounded; when it is full (a window that is busy, a
//! `kith headless` whose reader stopped reading), events wait here instead, and the loop
//! moves them on as the front-end takes them. Progress events are coalesced while they wait
//! (only the latest figure of a transfer matters), and the backlog is bounded: past
//! [`MAX_BACKLOG`] the front-end is not reading at all, and further events are dropped and
//! counted rather than grow memory for ever. Once it reads again, an `events_dropped` error
//! says how many it missed.

use tokio::sync::mpsc;

use super::queue::Overflow;
use crate::protocol::events::ClientEvent;

/// Events held for a front-end that does not keep up. A window drains thousands per frame;
/// this many waiting means it stopped.
pub const MAX_BACKLOG: usize = 100_000;

pub type Waker = std::sync::Arc<dyn Fn() + Send + Sync>;

pub struct FrontEnd {
    queue: Overflow<ClientEvent>,
    wake: Option<Waker>,
    dropped: u64,
    /// Dropped and not yet told to the front-end.
    untold: u64,
    /// Something was handed over since the front-end was last woken.
    unwoken: bool,
}

impl FrontEnd {
    pub fn new(tx: mpsc::Sender<ClientEvent>, wake: Option<Waker>) -> Self {
        Self { queue: Overflow::new(tx), wake, dropped: 0, untold: 0, unwoken: false }
    }

    /// Queues `event` without waiting.
    pub fn push(&mut self, event: ClientEvent) {
        match self.queue.try_pass(event) {
            Ok(sent) => self.unwoken |= sent,
            Err(event) => self.hold(event),
        }
    }

    fn hold(&mut self, event: ClientEvent) {
        let waiting = self.queue.waiting();
        if let ClientEvent::FileProgress { id, .. } = &event
            && let Some(older) = waiting
                .iter_mut()
                .find(|e| matches!(e, ClientEvent::FileProgress { id: other, .. } if other == id))
        {
            *older = event;
            return;
        }
        if waiting.len() >= MAX_BACKLOG {
            self.dropped += 1;
            self.untold += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(dropped = self.dropped, "the front-end is not reading its events; dropping");
            }
            return;
        }
        self.queue.hold(event);
    }

    /// Whether events wait for room in the channel.
    pub fn has_backlog(&self) -> bool {
        self.queue.has_backlog()
    }

    /// The front-end went away (its end of the channel closed).
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Events dropped because the front-end stopped reading.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Resolves when the channel has room; for the loop's `select!` while there is a backlog.
    pub async fn room(&self) {
        self.queue.room().await
    }

    /// Hands over as many waiting events as fit now, oldest first.
    pub fn send_backlog(&mut self) {
        if self.queue.send_backlog() > 0 {
            self.unwoken = true;
        }
        // Reading again: say what was missed, behind what waits (the count is final by then
        // unless it stops again, and then the next notice has the rest).
        if self.untold > 0 && self.queue.waiting().len() < MAX_BACKLOG / 2 {
            let n = std::mem::take(&mut self.untold);
            let text = format!(
                "{n} events were dropped while this front-end was not reading them (messages \
                 among them are not shown again)"
            );
            self.queue.hold(ClientEvent::error("events_dropped", text));
        }
    }

    /// Wakes the front-end (a window repaints) if anything was handed over since last time.
    pub fn wake(&mut self) {
        if std::mem::take(&mut self.unwoken)
            && let Some(w) = &self.wake
        {
            w();
        }
    }

    /// At shutdown: waits (a bounded time) for the front-end to take what is left, so a fatal
    /// error that ends the loop is not lost behind a full channel.
    pub async fn flush_before_exit(&mut self, within: std::time::Duration) {
        if self.queue.flush_before_exit(within).await > 0 {
            self.unwoken = true;
        }
        self.wake();
    }

    /// A sender for tasks off the loop (DNS, hashing), which may wait on it.
    pub fn sender(&self) -> mpsc::Sender<ClientEvent> {
        self.queue.sender()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(id: &str, bytes: u64) -> ClientEvent {
        ClientEvent::FileProgress { id: id.into(), bytes, total: 100 }
    }

    #[tokio::test]
    async fn a_front_end_that_stops_reading_never_blocks_and_gets_everything_later() {
        let (tx, mut rx) = mpsc::channel(2);
        let mut front = FrontEnd::new(tx, None);
        for i in 0..5 {
            front.push(ClientEvent::Expired { id: i.to_string() });
        }
        // Progress of one transfer waits as its latest figure only.
        for bytes in [10, 20, 30] {
            front.push(progress("a", bytes));
        }
        front.push(progress("b", 5));
        assert!(front.has_backlog());
        let mut got = Vec::new();
        while front.has_backlog() {
            while let Ok(e) = rx.try_recv() {
                got.push(e);
            }
            front.room().await;
            front.send_backlog();
        }
        while let Ok(e) = rx.try_recv() {
            got.push(e);
        }
        let expected: Vec<ClientEvent> = (0..5)
            .map(|i| ClientEvent::Expired { id: i.to_string() })
            .chain([progress("a", 30), progress("b", 5)])
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn the_backlog_is_bounded() {
        let (tx, _rx) = mpsc::channel(1);
        let mut front = FrontEnd::new(tx, None);
        for i in 0..MAX_BACKLOG + 11 {
            front.push(ClientEvent::Expired { id: i.to_string() });
        }
        // One in the channel, MAX_BACKLOG waiting, the rest dropped and counted.
        assert_eq!(front.dropped(), 10);
    }

    #[tokio::test]
    async fn a_front_end_that_reads_again_is_told_what_it_missed() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut front = FrontEnd::new(tx, None);
        for i in 0..64 + MAX_BACKLOG + 7 {
            front.push(ClientEvent::Expired { id: i.to_string() });
        }
        let mut last = None;
        let mut count = 0;
        while front.has_backlog() || !rx.is_empty() {
            while let Ok(e) = rx.try_recv() {
                count += 1;
                last = Some(e);
            }
            front.send_backlog();
        }
        assert_eq!(count, 64 + MAX_BACKLOG + 1, "everything kept, and one notice");
        match last {
            Some(ClientEvent::Error { code, message, fatal: false, .. }) => {
                assert_eq!(code, "events_dropped");
                assert!(message.starts_with("7 events were dropped"), "{message}");
            }
            other => panic!("no notice at the end: {other:?}"),
        }
    }
}
