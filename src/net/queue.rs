//! A bounded channel the network loop sends on without ever waiting: what does not fit waits
//! here, in order, and moves on as the receiver takes it (the loop `select!`s on
//! [`Overflow::room`] while anything waits). Used for the front-end's events and the disk
//! worker's writes.

use std::collections::VecDeque;

use tokio::sync::mpsc;

pub struct Overflow<T> {
    tx: mpsc::Sender<T>,
    backlog: VecDeque<T>,
    closed: bool,
}

impl<T> Overflow<T> {
    pub fn new(tx: mpsc::Sender<T>) -> Self {
        Self { tx, backlog: VecDeque::new(), closed: false }
    }

    /// Hands `item` to the channel if nothing waits before it and there is room; otherwise
    /// gives it back, for the caller to [`Overflow::hold`] (or coalesce, or drop). An item for
    /// a receiver that is gone is dropped, and `true` says it was taken care of.
    pub fn try_pass(&mut self, item: T) -> Result<bool, T> {
        if self.closed {
            return Ok(false);
        }
        if !self.backlog.is_empty() {
            return Err(item);
        }
        match self.tx.try_send(item) {
            Ok(()) => Ok(true),
            Err(mpsc::error::TrySendError::Full(item)) => Err(item),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.closed = true;
                Ok(false)
            }
        }
    }

    /// Puts `item` at the end of what waits.
    pub fn hold(&mut self, item: T) {
        self.backlog.push_back(item);
    }

    /// What waits, oldest first (to coalesce into).
    pub fn waiting(&mut self) -> &mut VecDeque<T> {
        &mut self.backlog
    }

    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty() && !self.closed
    }

    /// The receiver went away.
    pub fn is_closed(&self) -> bool {
        self.closed || self.tx.is_closed()
    }

    /// Resolves when the channel has room. The reserved slot is released at once:
    /// `send_backlog` fills it, and another sender taking it first only means waiting again.
    pub async fn room(&self) {
        if self.tx.reserve().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Moves waiting items on, oldest first, as far as the channel takes them; returns how
    /// many went.
    pub fn send_backlog(&mut self) -> usize {
        let mut sent = 0;
        while let Some(item) = self.backlog.pop_front() {
            match self.tx.try_send(item) {
                Ok(()) => sent += 1,
                Err(mpsc::error::TrySendError::Full(item)) => {
                    self.backlog.push_front(item);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.closed = true;
                    break;
                }
            }
        }
        sent
    }

    /// At shutdown: waits, up to `within`, for the receiver to take what is left.
    pub async fn flush_before_exit(&mut self, within: std::time::Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        let mut sent = 0;
        while let Some(item) = self.backlog.pop_front() {
            match tokio::time::timeout_at(deadline, self.tx.send(item)).await {
                Ok(Ok(())) => sent += 1,
                _ => break,
            }
        }
        sent
    }

    /// A sender for tasks off the loop, which may wait on it.
    pub fn sender(&self) -> mpsc::Sender<T> {
        self.tx.clone()
    }
}
