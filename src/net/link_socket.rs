//! The one UDP socket all direct links share.
//!
//! It is bound to every interface, so ICE needs to be told which local address each datagram
//! arrived at (str0m matches it against its host candidates): quinn-udp reads that from
//! IP_PKTINFO (and batches receives where the OS can).

use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams taken from the socket per wake-up.
const BATCH: usize = 16;
/// Room for one datagram (more than any MTU str0m uses).
const DATAGRAM: usize = 2048;

pub struct LinkSocket {
    io: UdpSocket,
    state: UdpSocketState,
    local: SocketAddr,
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

/// One received datagram: where from, where to, and the bytes in `LinkSocket::datagram`.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    slot: usize,
    start: usize,
    end: usize,
}

impl LinkSocket {
    /// Binds `0.0.0.0:port` (0 lets the OS choose).
    pub fn bind(port: u16) -> std::io::Result<Self> {
        let std_socket = std::net::UdpSocket::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port))?;
        std_socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&std_socket).into())?;
        // Bulk transfers arrive faster than one wake-up drains them at default buffer sizes.
        let _ = state.set_recv_buffer_size((&std_socket).into(), 4 << 20);
        let _ = state.set_send_buffer_size((&std_socket).into(), 4 << 20);
        let io = UdpSocket::from_std(std_socket)?;
        let local = io.local_addr()?;
        let stride = DATAGRAM * state.gro_segments().max(1);
        Ok(Self {
            io,
            state,
            local,
            bufs: (0..BATCH).map(|_| vec![0; stride]).collect(),
            meta: vec![RecvMeta::default(); BATCH],
        })
    }

    pub fn port(&self) -> u16 {
        self.local.port()
    }

    /// Waits for datagrams and returns what one read brought in (at least one).
    pub async fn recv(&mut self) -> std::io::Result<Vec<Received>> {
        loop {
            self.io.readable().await?;
            let Self { io, state, bufs, meta, .. } = self;
            let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            let result = io.try_io(Interest::READABLE, || state.recv((&*io).into(), &mut slices, meta));
            let n = match result {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                // An ICMP error for an earlier send (e.g. a peer's port closed) is not ours to stop on.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => continue,
                Err(e) => return Err(e),
            };
            let mut out = Vec::new();
            for (slot, m) in self.meta.iter().take(n).enumerate() {
                let destination = SocketAddr::new(m.dst_ip.unwrap_or(self.local.ip()), self.local.port());
                let stride = m.stride.max(1);
                let mut start = 0;
                // With GRO one read may hold several datagrams of `stride` bytes each.
                while start < m.len {
                    let end = (start + stride).min(m.len);
                    out.push(Received { source: canonical(m.addr), destination, slot, start, end });
                    start = end;
                }
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// The bytes of a datagram returned by the last `recv`.
    pub fn datagram(&self, r: &Received) -> &[u8] {
        self.bufs.get(r.slot).and_then(|b| b.get(r.start..r.end)).unwrap_or(&[])
    }

    /// Sends one datagram from `source`'s IP. Waits while the socket buffer is full; other
    /// errors (no route, say) drop the datagram, as the network might have.
    pub async fn send(&self, source: SocketAddr, destination: SocketAddr, contents: &[u8]) {
        let src_ip = Some(source.ip()).filter(|ip| !ip.is_unspecified());
        let transmit = Transmit { destination, ecn: None, contents, segment_size: None, src_ip };
        loop {
            if self.io.writable().await.is_err() {
                return;
            }
            match self.io.try_io(Interest::WRITABLE, || self.state.send((&self.io).into(), &transmit)) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    tracing::debug!(%destination, "udp send failed: {e}");
                    return;
                }
            }
        }
    }
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The host candidates for a socket bound to every IPv4 interface on `port`: each interface
/// address, loopback included (two clients on one machine find each other there).
pub fn host_candidates(port: u16) -> Vec<SocketAddr> {
    super::reach::interface_addresses(
        port,
        |ip| matches!(ip, IpAddr::V4(v4) if !v4.is_unspecified() && !v4.is_link_local()),
    )
}
