//! The one UDP socket all direct links share.
//!
//! It is bound to every interface, so ICE needs to be told which local address each datagram
//! arrived at (str0m matches it against its host candidates): quinn-udp reads that from
//! IP_PKTINFO / IPV6_PKTINFO (and batches receives where the OS can).
//!
//! Where the machine has IPv6 the socket is dual-stack (`[::]` with IPV6_V6ONLY off): one
//! socket and one port for both families. IPv4 then appears as v4-mapped IPv6 (`::ffff:a.b.c.d`)
//! at the system call and nowhere else: everything above this module sees plain IPv4.

use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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
    /// Bound to `[::]` for both families (else `0.0.0.0`, IPv4 only).
    dual_stack: bool,
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
    /// Binds `port` (0 lets the OS choose) on every interface: dual-stack where the machine
    /// has IPv6, IPv4 only where it does not (IPv6 disabled, or the port taken for IPv6).
    pub fn bind(port: u16) -> std::io::Result<Self> {
        let (std_socket, dual_stack) = match bind_dual_stack(port) {
            Ok(s) => (s, true),
            Err(e) => {
                tracing::info!("direct links use IPv4 only (no IPv6 socket on port {port}: {e})");
                (std::net::UdpSocket::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port))?, false)
            }
        };
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
            dual_stack,
            bufs: (0..BATCH).map(|_| vec![0; stride]).collect(),
            meta: vec![RecvMeta::default(); BATCH],
        })
    }

    pub fn port(&self) -> u16 {
        self.local.port()
    }

    /// Whether the socket reaches IPv6 addresses too.
    pub fn ipv6(&self) -> bool {
        self.dual_stack
    }

    /// The host candidates: each interface address of a family the socket speaks, loopback
    /// included (two clients on one machine find each other there). Link-local addresses are
    /// left out: IPv4 169.254/16 is what a machine has when DHCP failed, and an IPv6 fe80::
    /// address needs an interface scope that SDP cannot carry.
    pub fn host_candidates(&self) -> Vec<SocketAddr> {
        let ipv6 = self.dual_stack;
        super::reach::interface_addresses(self.port(), |ip| match ip {
            IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_link_local(),
            IpAddr::V6(v6) => {
                ipv6 && !v6.is_unspecified() && !v6.is_unicast_link_local() && v6.to_ipv4_mapped().is_none()
            }
        })
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
                let destination =
                    canonical(SocketAddr::new(m.dst_ip.unwrap_or(self.local.ip()), self.local.port()));
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
        // ICE pairs every local candidate with every remote one of its family, so checks from
        // loopback towards another machine's address come by: they cannot leave the machine
        // (the kernel refuses with EINVAL, which quinn-udp would log as a warning).
        if source.ip().is_loopback() != destination.ip().is_loopback() {
            return;
        }
        let src_ip = Some(source.ip()).filter(|ip| !ip.is_unspecified()).map(|ip| self.wire_ip(ip));
        let destination = SocketAddr::new(self.wire_ip(destination.ip()), destination.port());
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

impl LinkSocket {
    /// An address as the socket's family writes it: IPv4 is v4-mapped on a dual-stack socket.
    fn wire_ip(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) if self.dual_stack => IpAddr::V6(v4.to_ipv6_mapped()),
            other => other,
        }
    }
}

/// A `[::]:port` socket that takes IPv4 too. IPV6_V6ONLY is set explicitly: its default
/// differs between systems (off on Linux, on on Windows and the BSDs).
fn bind_dual_stack(port: u16) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(false)?;
    socket.bind(&SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port).into())?;
    Ok(socket.into())
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
