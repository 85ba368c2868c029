//! The client's connection to its hub. Frames are read on the loop; writes go to a task of
//! their own, so a hub that reads slowly never holds up the loop (which also reads the link
//! socket and the UI's commands).
//!
//! What waits for the writer is bounded in bytes, not frames: after a reconnect every peer's
//! unacknowledged messages go out at once (up to a window of 256 each), and a burst of small
//! frames is not a stalled hub. A stalled hub is one whose socket takes nothing for
//! `WRITE_TIMEOUT`: the writer gives up, and the loop reconnects.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::framing;

/// A write (or flush) to the hub that takes longer than this means the hub stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing waits for what is queued to go out.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes that may wait for the writer. Sixteen peers' full resend windows of the largest
/// messages fit; more than that waiting while the socket still moves means a hub too slow to
/// be of use, and the connection is made again rather than let the queue grow.
const MAX_WAITING_BYTES: usize = 64 * 1024 * 1024;
/// What a frame costs besides its bytes, so that a flood of tiny frames is bounded too.
const FRAME_OVERHEAD: usize = 64;

pub struct HubConn {
    frames: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    to_hub: mpsc::UnboundedSender<Bytes>,
    /// Bytes handed to the writer and not yet written (with `FRAME_OVERHEAD` each).
    waiting: Arc<AtomicUsize>,
    writer: tokio::task::JoinHandle<()>,
}

impl HubConn {
    pub fn new(stream: TcpStream) -> Self {
        let (read, write) = stream.into_split();
        let (to_hub, frames_out) = mpsc::unbounded_channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let sink = FramedWrite::new(write, framing::codec());
        let writer = tokio::spawn(write_frames(sink, frames_out, waiting.clone()));
        Self { frames: FramedRead::new(read, framing::codec()), to_hub, waiting, writer }
    }

    /// Queues a frame for the hub without waiting.
    pub fn send(&self, frame: Vec<u8>) -> Result<(), String> {
        let cost = frame.len() + FRAME_OVERHEAD;
        let waiting = self.waiting.load(Ordering::Relaxed);
        if waiting.saturating_add(cost) > MAX_WAITING_BYTES {
            return Err(format!("the hub is not keeping up ({} MiB waiting)", waiting >> 20));
        }
        self.waiting.fetch_add(cost, Ordering::Relaxed);
        self.to_hub.send(Bytes::from(frame)).map_err(|_| "writing to the hub failed".to_string())
    }

    /// The next frame from the hub, or why the connection is gone (its writer giving up
    /// counts).
    pub async fn next(&mut self) -> Result<BytesMut, String> {
        tokio::select! {
            frame = self.frames.next() => match frame {
                Some(Ok(frame)) => Ok(frame),
                Some(Err(e)) => Err(format!("hub link error: {e}")),
                None => Err("hub closed the connection".to_string()),
            },
            () = self.to_hub.closed() => Err("writing to the hub failed".to_string()),
        }
    }

    /// Drops the connection at once, whatever is queued.
    pub fn abort(self) {
        self.writer.abort();
    }

    /// Sends what is queued and closes the connection politely, but not at any price.
    pub async fn close(self) {
        let Self { frames, to_hub, writer, .. } = self;
        drop(to_hub);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, writer).await;
        drop(frames);
    }
}

/// Writes frames to the hub as they come, flushing when none wait; gives up (which closes the
/// channel, and so tells the loop) when a write does not finish within `WRITE_TIMEOUT`.
async fn write_frames(
    mut sink: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    mut frames: mpsc::UnboundedReceiver<Bytes>,
    waiting: Arc<AtomicUsize>,
) {
    while let Some(frame) = frames.recv().await {
        let cost = frame.len() + FRAME_OVERHEAD;
        let fed = tokio::time::timeout(WRITE_TIMEOUT, sink.feed(frame)).await;
        waiting.fetch_sub(cost, Ordering::Relaxed);
        if !matches!(fed, Ok(Ok(()))) {
            return;
        }
        if frames.is_empty() {
            let flushed = tokio::time::timeout(WRITE_TIMEOUT, SinkExt::<Bytes>::flush(&mut sink)).await;
            if !matches!(flushed, Ok(Ok(()))) {
                return;
            }
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, SinkExt::<Bytes>::close(&mut sink)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hub that reads nothing for a while, then everything: a burst far larger than any frame
    /// count limit waits and arrives whole, in order, on one connection.
    #[tokio::test]
    async fn a_burst_waits_for_a_hub_that_reads_late() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let conn = HubConn::new(client);
        const N: usize = 20_000;
        for i in 0..N {
            let mut frame = vec![0u8; 1024];
            frame[..8].copy_from_slice(&(i as u64).to_be_bytes());
            conn.send(frame).expect("a burst is queued, not refused");
        }
        // The socket buffers fill and the rest waits while the hub is busy elsewhere.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(conn.waiting.load(Ordering::Relaxed) > 0, "the burst should outgrow the socket buffers");
        let mut hub = FramedRead::new(server, framing::codec());
        for i in 0..N {
            let frame = hub.next().await.unwrap().unwrap();
            assert_eq!(frame[..8], (i as u64).to_be_bytes());
        }
        assert_eq!(conn.waiting.load(Ordering::Relaxed), 0);
    }

    /// Past the byte bound, a frame is refused with a reason (and the loop reconnects).
    #[tokio::test]
    async fn a_hub_that_never_reads_is_given_up_at_the_byte_bound() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (_server, _) = listener.accept().await.unwrap();
        let conn = HubConn::new(client);
        let frame = vec![0u8; 60 * 1024];
        let refused = (0..MAX_WAITING_BYTES / frame.len() + 64).find_map(|_| conn.send(frame.clone()).err());
        let why = refused.expect("the queue is bounded");
        assert!(why.contains("not keeping up"), "{why}");
    }
}
