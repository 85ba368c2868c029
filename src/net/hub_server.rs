//! The hub on real sockets: one task owns the sans-IO [`Hub`]; per connection, a reader task
//! turns frames into events and a writer task drains a bounded queue to the socket.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use futures::future::{AbortHandle, Abortable};
use futures::{SinkExt, StreamExt};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::framing;
use crate::protocol::hub::{CloseReason, ConnId, Hub, HubConfig, HubOutput, KeySubstitution};
use crate::protocol::identity::{Fingerprint, IdentityKey};
use crate::protocol::noise::Keypair;

/// Bytes queued towards one connection past which the hub drops relays to it (the peers'
/// sessions resend) until it is down to half: a fast sender cannot get a slow receiver
/// disconnected.
const RELAY_QUEUE_BYTES: usize = 4 << 20;
/// Bytes queued towards one connection past which it is too slow even for the hub's own
/// messages, and is dropped.
const MAX_QUEUE_BYTES: usize = 16 << 20;
/// Bytes queued towards all connections together past which relays are dropped.
const TOTAL_QUEUE_BYTES: usize = 1 << 30;
/// Frames one connection may have waiting for the hub task.
const FRAMES_IN_FLIGHT: usize = 4;
/// Events from all connections to the hub task.
const EVENT_QUEUE: usize = 8192;
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Bytes written to a connection between flushes.
const WRITE_BATCH: usize = 256 << 10;
/// Longest a flush to one client may take before the connection is given up.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn timeout_io(f: impl std::future::Future<Output = std::io::Result<()>>) -> std::io::Result<()> {
    tokio::time::timeout(WRITE_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out")))
}

#[derive(Debug, Clone)]
pub struct HubOptions {
    pub config: HubConfig,
    pub max_connections: usize,
    pub auth_timeout_ms: u64,
    #[doc(hidden)]
    pub key_substitution: Option<KeySubstitution>,
}

/// The way to one connection's writer task, and the bytes waiting in it.
struct Writer {
    frames: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
}

/// What the hub task holds per connection.
struct Connection {
    writer: Writer,
    reader: AbortHandle,
}

/// Bytes queued to all connections, and the connections the hub was told are behind.
struct Backlog {
    total: Arc<AtomicUsize>,
    behind: std::collections::HashSet<ConnId>,
    congested: bool,
}

impl Backlog {
    /// Tells the hub which writers caught up (to half the mark, so a queue near it does not
    /// flap) and whether all of them together are still over theirs.
    fn refresh(&mut self, hub: &mut Hub, conns: &std::collections::HashMap<ConnId, Connection>) {
        self.behind.retain(|id| {
            let queued = conns.get(id).map_or(0, |c| c.writer.queued.load(Ordering::Relaxed));
            let still = queued > RELAY_QUEUE_BYTES / 2;
            if !still {
                hub.set_behind(*id, false);
            }
            still
        });
        let total = self.total.load(Ordering::Relaxed);
        let congested =
            if self.congested { total > TOTAL_QUEUE_BYTES / 2 } else { total > TOTAL_QUEUE_BYTES };
        if congested != self.congested {
            self.congested = congested;
            hub.set_congested(congested);
            tracing::warn!(total, congested, "the hub's writers together are behind; relays held back");
        }
    }
}

enum ConnEvent {
    Opened {
        id: ConnId,
        addr: SocketAddr,
        writer: Writer,
        reader: AbortHandle,
    },
    /// A frame, holding one of its connection's [`FRAMES_IN_FLIGHT`] permits until handled.
    Frame {
        id: ConnId,
        frame: BytesMut,
        _permit: tokio::sync::OwnedSemaphorePermit,
    },
    Closed {
        id: ConnId,
    },
}

/// A running hub. Dropping the handle does not stop it; call [`RunningHub::shutdown`].
pub struct RunningHub {
    pub local_addr: SocketAddr,
    pub key: IdentityKey,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningHub {
    pub fn fingerprint(&self) -> Fingerprint {
        self.key.fingerprint()
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            // The receiver is gone only if the hub already stopped.
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }
}

/// Binds the hub's TCP listener. `[::]` means every address of both families: the socket is
/// made dual-stack explicitly (Windows would otherwise take IPv6 only), and on a machine
/// without IPv6 it falls back to `0.0.0.0` on the same port.
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    match (addr.ip(), bind_tcp(addr)) {
        (IpAddr::V6(ip), Err(e)) if ip.is_unspecified() => {
            tracing::info!("no IPv6 listener on {addr} ({e}); listening on IPv4 only");
            bind_tcp(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port()))
        }
        (_, result) => result,
    }
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    // As tokio's own `TcpListener::bind`: a restarted hub gets its port back at once.
    #[cfg(not(windows))]
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// The addresses friends can join a hub listening on `local` at: the address itself, or for
/// an unspecified one each LAN address of the families it accepts.
pub fn join_addresses(local: SocketAddr) -> Vec<String> {
    if !local.ip().is_unspecified() {
        return vec![local.to_string()];
    }
    let both = local.is_ipv6();
    let lan = super::reach::lan_addresses(local.port());
    lan.iter().filter(|a| both || a.is_ipv4()).map(|a| a.to_string()).collect()
}

/// The address the hub's per-address limits count a connection against: an IPv4 client as
/// itself (also when it arrives v4-mapped on a dual-stack listener), an IPv6 client by its
/// /64, since a home or a server gets a whole /64 and could pick a new address per connection.
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

/// Starts a hub on an already-bound listener.
pub fn spawn_hub(listener: TcpListener, opts: HubOptions, keypair: Keypair) -> std::io::Result<RunningHub> {
    let local_addr = listener.local_addr()?;
    let key = IdentityKey::from(&keypair.public);
    let mut hub = Hub::new(opts.config.clone(), keypair, ChaCha20Rng::from_os_rng());
    hub.set_auth_timeout(opts.auth_timeout_ms);
    if let Some(f) = opts.key_substitution {
        hub.set_key_substitution(f);
    }
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let task = tokio::spawn(run(listener, hub, opts.max_connections, shutdown_rx));
    Ok(RunningHub { local_addr, key, shutdown: Some(shutdown_tx), task })
}

async fn run(listener: TcpListener, mut hub: Hub, max_conns: usize, mut shutdown: oneshot::Receiver<()>) {
    let (ev_tx, mut ev_rx) = mpsc::channel::<ConnEvent>(EVENT_QUEUE);
    let total = Arc::new(AtomicUsize::new(0));
    let accept = tokio::spawn(accept_loop(listener, ev_tx, total.clone()));
    let mut conns: std::collections::HashMap<ConnId, Connection> = std::collections::HashMap::new();
    let mut backlog = Backlog { total, behind: Default::default(), congested: false };
    loop {
        let timer = hub.poll_timeout();
        tokio::select! {
            ev = ev_rx.recv() => {
                let Some(ev) = ev else { break };
                let mut next = Some(ev);
                // Drain a batch before flushing outputs: one wake-up, many frames.
                let mut budget = 256;
                while let Some(ev) = next.take() {
                    handle_event(&mut hub, &mut conns, max_conns, &backlog.total, ev);
                    budget -= 1;
                    if budget == 0 { break; }
                    next = ev_rx.try_recv().ok();
                }
            }
            _ = tokio::time::sleep_until(timer.map_or_else(far_future, tokio::time::Instant::from_std)), if timer.is_some() => {
                hub.handle_timeout(std::time::Instant::now());
            }
            _ = &mut shutdown => break,
        }
        flush_outputs(&mut hub, &mut conns, &mut backlog);
        backlog.refresh(&mut hub, &conns);
    }
    accept.abort();
    for (_, c) in conns.drain() {
        c.reader.abort();
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(86_400)
}

/// Stops reading from `id` and drops the hub's end of its writer (which then flushes what is
/// queued and ends); what it still had queued stops counting against the total.
fn forget(conns: &mut std::collections::HashMap<ConnId, Connection>, id: ConnId, total: &AtomicUsize) {
    if let Some(c) = conns.remove(&id) {
        c.reader.abort();
        total.fetch_sub(c.writer.queued.swap(0, Ordering::Relaxed), Ordering::Relaxed);
    }
}

fn handle_event(
    hub: &mut Hub,
    conns: &mut std::collections::HashMap<ConnId, Connection>,
    max_conns: usize,
    total: &AtomicUsize,
    ev: ConnEvent,
) {
    let now = std::time::Instant::now();
    match ev {
        ConnEvent::Opened { id, addr, writer, reader } => {
            if conns.len() >= max_conns {
                tracing::warn!(%addr, "connection limit reached, refusing");
                reader.abort();
                return;
            }
            conns.insert(id, Connection { writer, reader });
            hub.handle_connect(now, id, limit_key(addr.ip()));
        }
        ConnEvent::Frame { id, frame, .. } => {
            if conns.contains_key(&id) {
                hub.handle_frame(now, id, &frame);
            }
        }
        ConnEvent::Closed { id } => {
            forget(conns, id, total);
            hub.handle_disconnect(now, id);
        }
    }
}

fn flush_outputs(
    hub: &mut Hub,
    conns: &mut std::collections::HashMap<ConnId, Connection>,
    backlog: &mut Backlog,
) {
    while let Some(out) = hub.poll_output() {
        match out {
            HubOutput::Send { conn, frame, .. } => {
                let Some(c) = conns.get(&conn) else { continue };
                let len = frame.len();
                // Counted before it is handed over, so the writer never takes away more than
                // was added.
                let queued = c.writer.queued.fetch_add(len, Ordering::Relaxed) + len;
                backlog.total.fetch_add(len, Ordering::Relaxed);
                // Only one that cannot take even the hub's own messages is dropped.
                if queued > MAX_QUEUE_BYTES || c.writer.frames.send(Bytes::from(frame)).is_err() {
                    tracing::warn!(conn, "client too slow (or gone), dropping its connection");
                    forget(conns, conn, &backlog.total);
                    backlog.behind.remove(&conn);
                    hub.handle_disconnect(std::time::Instant::now(), conn);
                    continue;
                }
                if queued > RELAY_QUEUE_BYTES && backlog.behind.insert(conn) {
                    tracing::info!(conn, queued, "receiver behind, relays to it held back");
                    hub.set_behind(conn, true);
                }
            }
            HubOutput::Close { conn, reason } => {
                match &reason {
                    CloseReason::AuthFailed | CloseReason::RateLimited => {
                        tracing::info!(conn, ?reason, "closing connection")
                    }
                    _ => tracing::debug!(conn, ?reason, "closing connection"),
                }
                // Dropping the writer lets its task flush what is queued, then close.
                forget(conns, conn, &backlog.total);
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, ev_tx: mpsc::Sender<ConnEvent>, total: Arc<AtomicUsize>) {
    let mut next_id: ConnId = 1;
    loop {
        let (socket, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!("set_nodelay: {e}");
        }
        let id = next_id;
        next_id += 1;
        let (rd, wr) = socket.into_split();
        // Unbounded in frames, bounded in bytes: the hub task counts what it queues here
        // (`queued`, and `total` over all connections) and this task what it has written.
        let (wtx, mut wrx) = mpsc::unbounded_channel::<Bytes>();
        let queued = Arc::new(AtomicUsize::new(0));
        let (mine, all) = (queued.clone(), total.clone());
        tokio::spawn(async move {
            let mut sink = FramedWrite::new(wr, framing::codec());
            // Never below zero, and the total loses exactly what this connection did, so the
            // total stays the sum of the connections' counts (the hub task takes what is left
            // when it forgets the connection, which may happen first).
            let written = |n: usize| {
                let old =
                    mine.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
                let old = old.unwrap_or_else(|v| v);
                all.fetch_sub(old - old.saturating_sub(n), Ordering::Relaxed);
            };
            // A client that stops reading must not pin this task, its socket and its queue
            // forever: every write gets a deadline.
            // Batches stay small enough that each flush is progress a live reader makes
            // within the deadline (WRITE_BATCH in WRITE_TIMEOUT is 25 KB/s): one on a slow
            // downlink is kept, one that stopped reading is let go.
            let write = async {
                while let Some(frame) = wrx.recv().await {
                    let mut n = frame.len();
                    timeout_io(sink.feed(frame)).await?;
                    while n < WRITE_BATCH
                        && let Ok(more) = wrx.try_recv()
                    {
                        n += more.len();
                        timeout_io(sink.feed(more)).await?;
                    }
                    timeout_io(SinkExt::<Bytes>::flush(&mut sink)).await?;
                    written(n);
                }
                timeout_io(SinkExt::<Bytes>::close(&mut sink)).await
            };
            if let Err(e) = write.await {
                tracing::debug!(id, "writer stopped: {e}");
            }
        });
        let reader_tx = ev_tx.clone();
        let in_flight = Arc::new(tokio::sync::Semaphore::new(FRAMES_IN_FLIGHT));
        let reader = async move {
            let mut frames = FramedRead::new(rd, framing::codec());
            while let Some(item) = frames.next().await {
                match item {
                    Ok(frame) => {
                        // A connection waits for its own frames to be handled, not for everyone's:
                        // one sending as fast as it can holds a few places in the hub's queue and
                        // is slowed by TCP, while the others' frames go by.
                        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
                        if reader_tx.send(ConnEvent::Frame { id, frame, _permit: permit }).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(id, "read error: {e}");
                        break;
                    }
                }
            }
            let _ = reader_tx.send(ConnEvent::Closed { id }).await;
        };
        // Announce the connection before its reader can produce a frame.
        let (abort, registration) = AbortHandle::new_pair();
        let opened = ConnEvent::Opened { id, addr, writer: Writer { frames: wtx, queued }, reader: abort };
        if ev_tx.send(opened).await.is_err() {
            return;
        }
        tokio::spawn(Abortable::new(reader, registration));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_ipv4_as_itself_and_ipv6_by_its_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(limit_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(limit_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("2001:db8:1:2::1")), limit_key(ip("2001:db8:1:2::2")));
        assert_ne!(limit_key(ip("2001:db8:1:2::1")), limit_key(ip("2001:db8:1:3::1")));
    }

    #[tokio::test]
    async fn a_hub_on_the_unspecified_ipv6_address_takes_both_families() {
        let listener = bind_listener("[::]:0".parse().unwrap()).unwrap();
        let port = listener.local_addr().unwrap().port();
        for client in ["127.0.0.1", "::1"] {
            let addr = SocketAddr::new(client.parse().unwrap(), port);
            tokio::net::TcpStream::connect(addr).await.unwrap();
            let (_, from) = listener.accept().await.unwrap();
            assert_eq!(from.ip().to_canonical(), addr.ip());
        }
        // Joining it is offered on IPv4 and IPv6 LAN addresses; an IPv4 listener offers IPv4.
        let v4_only = join_addresses("0.0.0.0:7447".parse().unwrap());
        assert!(v4_only.iter().all(|a| !a.starts_with('[')), "{v4_only:?}");
        let both = join_addresses("[::]:7447".parse().unwrap());
        assert!(both.len() >= v4_only.len());
        assert_eq!(join_addresses("192.0.2.1:7447".parse().unwrap()), ["192.0.2.1:7447"]);
    }
}
