use crate::chunk::chunk_payload_data::ChunkPayloadData;

use alloc::collections::VecDeque;
use core::time::Duration;
use std::time::Instant;

/// pendingBaseQueue
pub(crate) type PendingBaseQueue = VecDeque<ChunkPayloadData>;

/// pendingQueue
#[derive(Debug, Default)]
pub(crate) struct PendingQueue {
    /// kith patch: some chunk was given a deadline (a timed message was queued).
    pub(crate) any_timed: bool,
    unordered_queue: PendingBaseQueue,
    /// kith patch: ordered chunks wait in one queue per stream, and the streams take turns a
    /// whole message at a time (the round-robin scheduler of RFC 8260 §3.2), where upstream
    /// has one FIFO for every stream: a short message on one data channel no longer waits
    /// behind everything queued on another. The front entry's stream is the one being
    /// served; a stream leaves the ring when its queue empties.
    ordered_queue: VecDeque<(u16, PendingBaseQueue)>,
    queue_len: usize,
    n_bytes: usize,
    selected: bool,
    unordered_is_selected: bool,
}

impl PendingQueue {
    pub(crate) fn new() -> Self {
        PendingQueue::default()
    }

    pub(crate) fn push(&mut self, c: ChunkPayloadData) {
        self.n_bytes += c.user_data.len();
        if c.unordered {
            self.unordered_queue.push_back(c);
        } else {
            let stream = c.stream_identifier;
            match self.ordered_queue.iter_mut().find(|(s, _)| *s == stream) {
                Some((_, queue)) => queue.push_back(c),
                None => self.ordered_queue.push_back((stream, VecDeque::from([c]))),
            }
        }
        self.queue_len += 1;
    }

    /// kith patch: the next ordered chunk, from the stream whose turn it is.
    fn ordered_front(&self) -> Option<&ChunkPayloadData> {
        self.ordered_queue.front().and_then(|(_, queue)| queue.front())
    }

    /// kith patch: takes the next ordered chunk; after a message's last fragment the next
    /// stream's turn comes.
    fn pop_ordered(&mut self) -> Option<ChunkPayloadData> {
        let (_, queue) = self.ordered_queue.front_mut()?;
        let popped = queue.pop_front();
        let emptied = queue.is_empty();
        if emptied || popped.as_ref().is_some_and(|c| c.ending_fragment) {
            if let Some(turn) = self.ordered_queue.pop_front() {
                if !emptied {
                    self.ordered_queue.push_back(turn);
                }
            }
        }
        popped
    }

    /// Start lifetimes for the newly queued suffix using the next transmit poll's time.
    /// Both queues retain message-ID order, so old pending messages need no rescan.
    pub(crate) fn start_timed_messages(&mut self, first_message_id: u64, now: Instant) {
        let ordered = self.ordered_queue.iter_mut().map(|(_, queue)| queue);
        for queue in ordered.chain([&mut self.unordered_queue]) {
            for chunk in queue
                .iter_mut()
                .rev()
                .take_while(|chunk| chunk.message_id >= first_message_id)
            {
                if chunk.deadline.is_some()
                    || chunk.payload_type == crate::PayloadProtocolIdentifier::Dcep
                {
                    continue;
                }
                if let Some((crate::ReliabilityType::Timed, lifetime)) = chunk.reliability {
                    chunk.deadline = now.checked_add(Duration::from_millis(u64::from(lifetime)));
                    // kith patch: see OutboundQueue::any_timed.
                    self.any_timed |= chunk.deadline.is_some();
                }
            }
        }
    }

    pub(crate) fn peek(&self) -> Option<&ChunkPayloadData> {
        if self.selected {
            if self.unordered_is_selected {
                return self.unordered_queue.front();
            } else {
                return self.ordered_front();
            }
        }

        let c = self.unordered_queue.front();

        if c.is_some() {
            return c;
        }

        self.ordered_front()
    }

    pub(crate) fn pop(
        &mut self,
        beginning_fragment: bool,
        unordered: bool,
    ) -> Option<ChunkPayloadData> {
        let popped = if self.selected {
            let popped = if self.unordered_is_selected {
                self.unordered_queue.pop_front()
            } else {
                self.pop_ordered()
            };
            if let Some(p) = &popped {
                if p.ending_fragment {
                    self.selected = false;
                }
            }
            popped
        } else {
            if !beginning_fragment {
                return None;
            }
            if unordered {
                let popped = { self.unordered_queue.pop_front() };
                if let Some(p) = &popped {
                    if !p.ending_fragment {
                        self.selected = true;
                        self.unordered_is_selected = true;
                    }
                }
                popped
            } else {
                let popped = self.pop_ordered();
                if let Some(p) = &popped {
                    if !p.ending_fragment {
                        self.selected = true;
                        self.unordered_is_selected = false;
                    }
                }
                popped
            }
        };

        if let Some(p) = &popped {
            self.n_bytes -= p.user_data.len();
            self.queue_len -= 1;
        }

        popped
    }

    /// Close the SSN gap after removing an entirely unsent ordered message.
    pub(crate) fn compact_ordered_ssns(&mut self, stream_identifier: u16) {
        let stream = self.ordered_queue.iter_mut().find(|(s, _)| *s == stream_identifier);
        for chunk in stream.into_iter().flat_map(|(_, queue)| queue.iter_mut()) {
            chunk.stream_sequence_number = chunk.stream_sequence_number.wrapping_sub(1);
        }
    }

    pub(crate) fn get_num_bytes(&self) -> usize {
        self.n_bytes
    }

    /// Remove a message without allocating a temporary collection. Selection
    /// persists when removing a different message from the pending queues.
    pub(crate) fn remove_message(
        &mut self,
        message_id: u64,
        mut on_remove: impl FnMut(ChunkPayloadData),
    ) -> usize {
        if self.selected && self.peek().is_some_and(|c| c.message_id == message_id) {
            self.selected = false;
        }
        let mut removed_bytes = 0;
        let mut removed_chunks = 0;
        let ordered = self.ordered_queue.iter_mut().map(|(_, queue)| queue);
        for queue in ordered.chain([&mut self.unordered_queue]) {
            queue.retain_mut(|chunk| {
                if chunk.message_id != message_id {
                    return true;
                }
                removed_bytes += chunk.user_data.len();
                removed_chunks += 1;
                on_remove(core::mem::take(chunk));
                false
            });
        }
        // kith patch: a stream with nothing left leaves the ring.
        self.ordered_queue.retain(|(_, queue)| !queue.is_empty());
        self.n_bytes -= removed_bytes;
        self.queue_len -= removed_chunks;
        removed_bytes
    }

    pub(crate) fn len(&self) -> usize {
        self.queue_len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn contains_message(&self, message_id: u64) -> bool {
        self.unordered_queue
            .iter()
            .chain(self.ordered_queue.iter().flat_map(|(_, queue)| queue))
            .any(|chunk| chunk.message_id == message_id)
    }

    pub(crate) fn contains_stream(&self, stream_identifier: u16) -> bool {
        self.unordered_queue.iter().any(|chunk| chunk.stream_identifier == stream_identifier)
            || self.ordered_queue.iter().any(|(s, _)| *s == stream_identifier)
    }
}
