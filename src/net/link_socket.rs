//! The UDP port all direct links share.
//!
//! It is bound to every interface, so ICE needs to be told which local address each datagram
//! arrived at (str0m matches it against its host candidates): quinn-udp reads that from
//! IP_PKTINFO / IPV6_PKTINFO (and batches receives where the OS can).
//!
//! One port, two sockets: `0.0.0.0` and, where the machine has IPv6, `[::]` with IPV6_V6ONLY
//! on, as libwebrtc does. A single dual-stack socket would do in principle, but IPv4 through
//! it (v4-mapped) moved ~20 % less data per second on loopback here than through an IPv4
//! socket.

use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams taken from a socket per wake-up.
const BATCH: usize = 16;
/// Room for one datagram (more than any MTU str0m uses).
const DATAGRAM: usize = 2048;

pub struct LinkSocket {
    port: u16,
    v4: FamilySocket,
    /// None where the machine has no IPv6 (or the port is taken for it).
    v6: Option<FamilySocket>,
}

/// The socket of one address family, with its receive buffers.
struct FamilySocket {
    io: UdpSocket,
    state: UdpSocketState,
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
    /// Binds `port` (0 lets the OS choose) on every interface, IPv4 and, on the same port,
    /// IPv6 where the machine has it.
    pub fn bind(port: u16) -> std::io::Result<Self> {
        let v4 = std::net::UdpSocket::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port))?;
        let port = v4.local_addr()?.port();
        let v4 = FamilySocket::new(v4)?;
        let v6 = match bind_v6_only(port).and_then(FamilySocket::new) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::info!("direct links use IPv4 only (no IPv6 socket on port {port}: {e})");
                None
            }
        };
        Ok(Self { port, v4, v6 })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether IPv6 addresses are reachable from here too.
    pub fn ipv6(&self) -> bool {
        self.v6.is_some()
    }

    /// The host candidates: each interface address of a family we have a socket for,
    /// loopback included (two clients on one machine find each other there). Link-local
    /// addresses are left out: IPv4 169.254/16 is what a machine has when DHCP failed, and an
    /// IPv6 fe80:: address needs an interface scope that SDP cannot carry.
    pub fn host_candidates(&self) -> Vec<SocketAddr> {
        let ipv6 = self.ipv6();
        super::reach::interface_addresses(self.port, |ip| match ip {
            IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_link_local(),
            IpAddr::V6(v6) => {
                ipv6 && !v6.is_unspecified() && !v6.is_unicast_link_local() && v6.to_ipv4_mapped().is_none()
            }
        })
    }

    /// Waits for datagrams and returns what one read brought in (at least one). Cancel-safe:
    /// nothing is read before a socket is ready.
    pub async fn recv(&mut self) -> std::io::Result<Vec<Received>> {
        loop {
            let ipv6 = match &self.v6 {
                None => {
                    self.v4.io.readable().await?;
                    false
                }
                Some(v6) => tokio::select! {
                    r = self.v4.io.readable() => r.map(|()| false)?,
                    r = v6.io.readable() => r.map(|()| true)?,
                },
            };
            let family = match (&mut self.v6, ipv6) {
                (Some(v6), true) => v6,
                _ => &mut self.v4,
            };
            let out = family.read(self.port, ipv6)?;
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    /// The bytes of a datagram returned by the last `recv`.
    pub fn datagram(&self, r: &Received) -> &[u8] {
        let family = match &self.v6 {
            Some(v6) if r.destination.is_ipv6() => v6,
            _ => &self.v4,
        };
        family.bufs.get(r.slot).and_then(|b| b.get(r.start..r.end)).unwrap_or(&[])
    }

    /// Sends one datagram from `source`'s IP. Waits while the socket buffer is full; other
    /// errors (no route, say) drop the datagram, as the network might have.
    pub async fn send(&self, source: SocketAddr, destination: SocketAddr, contents: &[u8]) {
        let family = match (&self.v6, destination) {
            (_, SocketAddr::V4(_)) => &self.v4,
            (Some(v6), SocketAddr::V6(_)) => v6,
            (None, SocketAddr::V6(_)) => return,
        };
        let src_ip = Some(source.ip()).filter(|ip| !ip.is_unspecified());
        let transmit = Transmit { destination, ecn: None, contents, segment_size: None, src_ip };
        loop {
            if family.io.writable().await.is_err() {
                return;
            }
            match family.io.try_io(Interest::WRITABLE, || family.state.send((&family.io).into(), &transmit)) {
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

impl FamilySocket {
    fn new(socket: std::net::UdpSocket) -> std::io::Result<Self> {
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&socket).into())?;
        // Bulk transfers arrive faster than one wake-up drains them at default buffer sizes.
        let _ = state.set_recv_buffer_size((&socket).into(), 4 << 20);
        let _ = state.set_send_buffer_size((&socket).into(), 4 << 20);
        let stride = DATAGRAM * state.gro_segments().max(1);
        Ok(Self {
            io: UdpSocket::from_std(socket)?,
            state,
            bufs: (0..BATCH).map(|_| vec![0; stride]).collect(),
            meta: vec![RecvMeta::default(); BATCH],
        })
    }

    /// One read of whatever is waiting (nothing if the readiness was spurious).
    fn read(&mut self, port: u16, ipv6: bool) -> std::io::Result<Vec<Received>> {
        let Self { io, state, bufs, meta } = self;
        let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let n = match io.try_io(Interest::READABLE, || state.recv((&*io).into(), &mut slices, meta)) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            // An ICMP error for an earlier send (e.g. a peer's port closed) is not ours to stop on.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e),
        };
        let unspecified: IpAddr =
            if ipv6 { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() };
        let mut out = Vec::new();
        for (slot, m) in self.meta.iter().take(n).enumerate() {
            let destination = SocketAddr::new(m.dst_ip.unwrap_or(unspecified), port);
            let stride = m.stride.max(1);
            let mut start = 0;
            // With GRO one read may hold several datagrams of `stride` bytes each.
            while start < m.len {
                let end = (start + stride).min(m.len);
                out.push(Received { source: m.addr, destination, slot, start, end });
                start = end;
            }
        }
        Ok(out)
    }
}

/// A `[::]:port` socket for IPv6 only. IPV6_V6ONLY is set explicitly: its default differs
/// between systems (off on Linux, on on Windows and the BSDs), and off would make the bind
/// clash with the IPv4 socket on the same port.
fn bind_v6_only(port: u16) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(true)?;
    socket.bind(&SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port).into())?;
    Ok(socket.into())
}
