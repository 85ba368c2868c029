//! NAT traversal for the direct links: server-reflexive candidates from STUN servers and
//! relayed candidates from TURN servers, both on the links' own UDP socket (a candidate is
//! only useful from the socket that will carry the link).
//!
//! Sans-IO like [`super::links::Links`]: datagrams and `Instant`s in, [`NatOutput`]s out. STUN
//! messages are built and read by `stun-types`; the TURN client (allocation, long-term
//! credentials, refreshes of the allocation, its permissions and channels) is
//! `turn-client-proto`'s. What is ours: when to ask, and routing the relayed traffic between
//! the TURN server and the link layer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use str0m::Candidate;
use stun_types::attribute::XorMappedAddress;
use stun_types::message::{
    BINDING, Message, MessageClass, MessageWrite, MessageWriteExt, MessageWriteVec, TransactionId,
};
use turn_client_proto::api::{TurnClientApi, TurnConfig, TurnEvent, TurnPollRet, TurnRecvRet};
use turn_client_proto::stun::Instant as TurnInstant;
use turn_client_proto::stun::agent::Transmit as TurnTransmit;
use turn_client_proto::types::{TransportType, TurnCredentials};
use turn_client_proto::udp::{SendError, TurnClientUdp};
use zeroize::Zeroizing;

/// First STUN retransmission (RFC 8489 §6.2.1), doubled on each try.
const STUN_RTO: Duration = Duration::from_millis(500);
/// Requests sent before a STUN server counts as silent (RFC 8489's Rc).
const STUN_TRIES: u32 = 7;
/// A mapping is asked again this often: it keeps the NAT's binding alive and notices when
/// it changes.
const STUN_REFRESH: Duration = Duration::from_secs(25);
/// A silent STUN server, or a TURN server whose allocation failed, is tried again after this.
const SERVER_RETRY: Duration = Duration::from_secs(30);

/// The STUN and TURN servers a client uses for its links.
#[derive(Debug, Clone, Default)]
pub struct IceServers {
    /// `host:port` of STUN servers.
    pub stun: Vec<String>,
    pub turn: Vec<TurnServer>,
}

/// A TURN server with long-term credentials, written `turn:USER:PASS@HOST:PORT`.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnServer {
    pub addr: String,
    pub user: String,
    pub password: Zeroizing<String>,
}

impl fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "turn:{}@{}", self.user, self.addr)
    }
}

impl fmt::Display for TurnServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl FromStr for TurnServer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = "expected turn:USER:PASS@HOST:PORT";
        let rest = s.strip_prefix("turn:").ok_or_else(|| format!("{s:?}: {usage}"))?;
        // The password may hold ':' or '@'; the host part is after the last '@'.
        let (creds, addr) = rest.rsplit_once('@').ok_or_else(|| format!("no '@HOST:PORT' ({usage})"))?;
        let (user, password) = creds.split_once(':').ok_or_else(|| format!("no ':PASS' ({usage})"))?;
        let port_ok = addr.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if user.is_empty() || !port_ok {
            return Err(format!("{usage}, got turn:{user}:…@{addr}"));
        }
        Ok(Self { addr: addr.to_string(), user: user.to_string(), password: Zeroizing::new(password.into()) })
    }
}

#[derive(Debug)]
pub enum NatOutput {
    /// A datagram for the link socket, sent from `source`'s IP.
    Transmit { source: SocketAddr, destination: SocketAddr, contents: Vec<u8> },
    /// A new local candidate for every link: server-reflexive or relayed.
    Candidate(Candidate),
    /// A server did not help (silent, refused our credentials, lost the allocation).
    Problem(String),
}

/// What became of a datagram offered to [`Nat::handle_datagram`].
#[derive(Debug)]
pub enum Claimed {
    /// Not from a STUN or TURN server of ours: it is for the links.
    No,
    /// A server's answer, taken.
    Taken,
    /// A peer's datagram relayed by our TURN allocation `relayed`: hand it to the links as
    /// sent from `peer` to `relayed`.
    Relayed { relayed: SocketAddr, peer: SocketAddr, data: Vec<u8> },
}

/// Asks one STUN server which address our socket's datagrams leave the NAT with.
struct Probe {
    /// The server as configured (`host:port`): one name may be asked over IPv4 and IPv6.
    name: String,
    server: SocketAddr,
    /// Our interface address towards the server (the candidate's base).
    base: SocketAddr,
    pending: Option<(TransactionId, Vec<u8>)>,
    tries: u32,
    wait: Duration,
    next: Instant,
    mapped: Option<SocketAddr>,
    /// A failure was reported and nothing has worked since: not reported again.
    complained: bool,
}

/// One allocation on one TURN server.
struct Relay {
    server: SocketAddr,
    base: SocketAddr,
    credentials: TurnCredentials,
    client: TurnClientUdp,
    relayed: Option<SocketAddr>,
    /// Peer addresses we asked a permission for (and when: a refused one is asked again
    /// only after [`SERVER_RETRY`]), and those with a channel.
    asked: HashMap<IpAddr, Instant>,
    channels: HashSet<SocketAddr>,
    next: Instant,
    /// After a failed or closed allocation: when to allocate again.
    retry_at: Option<Instant>,
    complained: bool,
}

/// The TURN client's settings: RFC 8489's retransmissions, but no wait longer than 2 s
/// between them. A server that ignores us (or answers a wrong password with a bare 401,
/// which cannot be authenticated) is given up in about 13 s rather than 40.
fn turn_config(credentials: &TurnCredentials) -> TurnConfig {
    let mut config = TurnConfig::new(credentials.clone());
    let second = Duration::from_secs(1);
    config.set_request_retransmits(second / 2, 2 * second, 7, 2 * second);
    config
}

/// Every STUN probe and TURN allocation of one client.
pub struct Nat {
    /// `turn-client-proto` keeps its own time type: nanoseconds since this instant.
    epoch: Instant,
    probes: Vec<Probe>,
    relays: Vec<Relay>,
    out: VecDeque<NatOutput>,
}

impl Nat {
    pub fn new(now: Instant) -> Self {
        Self { epoch: now, probes: Vec::new(), relays: Vec::new(), out: VecDeque::new() }
    }

    /// Asks `server` (configured as `name`) for our mapped address from `base`, now and
    /// every [`STUN_REFRESH`].
    pub fn add_stun(&mut self, now: Instant, name: &str, server: SocketAddr, base: SocketAddr) {
        if self.probes.iter().any(|p| p.server == server && p.base == base) {
            return;
        }
        self.probes.push(Probe {
            name: name.to_string(),
            server,
            base,
            pending: None,
            tries: 0,
            wait: STUN_RTO,
            next: now,
            mapped: None,
            complained: false,
        });
        self.handle_timeout(now);
    }

    /// Allocates a relay on the TURN `server`, reached from `base`.
    pub fn add_turn(
        &mut self,
        now: Instant,
        server: SocketAddr,
        base: SocketAddr,
        user: &str,
        password: &str,
    ) {
        if self.relays.iter().any(|r| r.server == server && r.base == base) {
            return;
        }
        let credentials = TurnCredentials::new(user, password);
        let client = TurnClientUdp::allocate(base, server, turn_config(&credentials));
        self.relays.push(Relay {
            server,
            base,
            credentials,
            client,
            relayed: None,
            asked: HashMap::new(),
            channels: HashSet::new(),
            next: now,
            retry_at: None,
            complained: false,
        });
        let i = self.relays.len() - 1;
        self.pump(now, i);
    }

    pub fn poll_output(&mut self) -> Option<NatOutput> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let probes = self.probes.iter().map(|p| p.next);
        let relays = self.relays.iter().map(|r| r.retry_at.unwrap_or(r.next));
        probes.chain(relays).min()
    }

    /// Our relayed addresses (links sending from one of them go through [`Nat::send_relayed`]).
    pub fn relayed_addresses(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.relays.iter().filter_map(|r| r.relayed)
    }

    /// Asks every STUN server again now (a link's path broke: the NAT in front of us may
    /// have given us a new public address).
    pub fn refresh(&mut self, now: Instant) {
        for p in &mut self.probes {
            if p.pending.is_none() {
                p.next = now;
            }
        }
        self.handle_timeout(now);
    }

    /// Our addresses changed: probes and relays from an address we no longer have are
    /// dropped (the driver resolves the servers again to find the new bases), the rest are
    /// asked again now.
    pub fn network_changed(&mut self, now: Instant, host: &[SocketAddr]) {
        let ours = |base: &SocketAddr| host.iter().any(|h| h.ip() == base.ip());
        self.probes.retain(|p| ours(&p.base));
        self.relays.retain(|r| ours(&r.base));
        self.refresh(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.probes.len() {
            self.probe_timeout(now, i);
        }
        for i in 0..self.relays.len() {
            let r = &mut self.relays[i];
            if let Some(at) = r.retry_at {
                if now >= at {
                    tracing::info!(server = %r.server, "allocating a TURN relay again");
                    r.client = TurnClientUdp::allocate(r.base, r.server, turn_config(&r.credentials));
                    r.retry_at = None;
                    r.asked.clear();
                    r.channels.clear();
                    self.pump(now, i);
                }
            } else if now >= r.next {
                self.pump(now, i);
            }
        }
    }

    fn probe_timeout(&mut self, now: Instant, i: usize) {
        let p = &self.probes[i];
        if now < p.next {
            return;
        }
        if p.pending.is_some() && p.tries >= STUN_TRIES {
            // Silent over one family while the same server answers over the other (IPv6
            // routed but blocked, say) is nothing the user can act on; nor is a second report
            // for the same server.
            let same_server = |q: &Probe| q.name == p.name && q.server != p.server;
            let answered_elsewhere = self.probes.iter().any(|q| same_server(q) && q.mapped.is_some());
            let reported = self.probes.iter().any(|q| same_server(q) && q.complained);
            let text = format!("STUN server {} did not answer (at {})", p.name, p.server);
            let p = &mut self.probes[i];
            p.pending = None;
            p.next = now + SERVER_RETRY;
            tracing::warn!("{text}");
            if !std::mem::replace(&mut p.complained, true) && !answered_elsewhere && !reported {
                self.out.push_back(NatOutput::Problem(text));
            }
            return;
        }
        let p = &mut self.probes[i];
        if p.pending.is_none() {
            let request = Message::builder_request(BINDING, MessageWriteVec::new());
            let id = request.transaction_id();
            p.pending = Some((id, request.finish()));
            p.tries = 0;
            p.wait = STUN_RTO;
        } else {
            p.wait *= 2;
        }
        p.tries += 1;
        p.next = now + p.wait;
        if let Some((_, request)) = &p.pending {
            let t = NatOutput::Transmit { source: p.base, destination: p.server, contents: request.clone() };
            self.out.push_back(t);
        }
    }

    /// A datagram from the socket: a server's answer, relayed peer data, or not ours.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> Claimed {
        // TURN first: a coturn is often the STUN server too, on the same address.
        if let Some(i) = self.relays.iter().position(|r| r.server == source && r.base == destination) {
            let at = self.turn_time(now);
            let transmit = TurnTransmit::new(contents, TransportType::Udp, source, destination);
            let claimed = match self.relays[i].client.recv(transmit, at) {
                TurnRecvRet::Handled => Some(Claimed::Taken),
                TurnRecvRet::PeerData(data) => self.relays[i].relayed.map(|relayed| Claimed::Relayed {
                    relayed,
                    peer: data.peer,
                    data: data.data().to_vec(),
                }),
                TurnRecvRet::PeerIcmp { .. } => Some(Claimed::Taken),
                TurnRecvRet::Ignored(_) => None,
            };
            self.pump(now, i);
            if let Some(c) = claimed {
                return c;
            }
        }
        let Some(i) =
            self.probes.iter().position(|p| p.server == source && p.base.port() == destination.port())
        else {
            return Claimed::No;
        };
        let Ok(reply) = Message::from_bytes(contents) else { return Claimed::No };
        let p = &mut self.probes[i];
        let Some((id, _)) = &p.pending else { return Claimed::Taken };
        if reply.transaction_id() != *id || !reply.has_method(BINDING) {
            return Claimed::Taken;
        }
        let id = *id;
        p.pending = None;
        p.next = now + STUN_REFRESH;
        p.complained = false;
        if !reply.has_class(MessageClass::Success) {
            let text = format!("STUN server {} refused the binding request", p.server);
            self.out.push_back(NatOutput::Problem(text));
            return Claimed::Taken;
        }
        let mapped = match reply.attribute::<XorMappedAddress>() {
            Ok(m) => m.addr(id),
            Err(e) => {
                let text = format!("STUN server {} answered without an address: {e}", p.server);
                self.out.push_back(NatOutput::Problem(text));
                return Claimed::Taken;
            }
        };
        // Behind no NAT the mapped address is the host candidate already offered.
        if p.mapped != Some(mapped) && mapped != p.base {
            tracing::info!(server = %p.server, %mapped, base = %p.base, "server-reflexive address");
            match Candidate::server_reflexive(mapped, p.base, "udp") {
                Ok(c) => self.out.push_back(NatOutput::Candidate(c)),
                Err(e) => tracing::debug!("no server-reflexive candidate for {mapped}: {e}"),
            }
        }
        p.mapped = Some(mapped);
        Claimed::Taken
    }

    /// Sends a link's datagram to `peer` through the allocation `relayed`. Until the TURN
    /// server holds a permission for the peer the datagram is dropped (ICE retransmits) and a
    /// permission is asked for; once it is sent, a channel is bound to cut the per-datagram
    /// overhead from 36 bytes to 4.
    pub fn send_relayed(&mut self, now: Instant, relayed: SocketAddr, peer: SocketAddr, data: &[u8]) {
        // ICE pairs our relay with every candidate of the peer; its loopback and link-local
        // addresses mean nothing to the TURN server.
        let unroutable = match peer.ip() {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
            IpAddr::V6(v6) => v6.is_loopback() || v6.is_unicast_link_local() || v6.is_unspecified(),
        };
        if unroutable {
            return;
        }
        let Some(i) = self.relays.iter().position(|r| r.relayed == Some(relayed)) else { return };
        let at = self.turn_time(now);
        let r = &mut self.relays[i];
        match r.client.send_to(TransportType::Udp, peer, data, at) {
            Ok(Some(t)) => {
                let t = t.build();
                self.out.push_back(NatOutput::Transmit {
                    source: r.base,
                    destination: t.to,
                    contents: t.data,
                });
                if r.channels.insert(peer)
                    && let Err(e) = r.client.bind_channel(TransportType::Udp, peer, at)
                {
                    tracing::debug!(%peer, "no TURN channel: {e}");
                }
            }
            Ok(None) => {}
            Err(SendError::NoPermission) => {
                let due = r.asked.get(&peer.ip()).is_none_or(|t| now.duration_since(*t) >= SERVER_RETRY);
                if due {
                    r.asked.insert(peer.ip(), now);
                    if let Err(e) = r.client.create_permission(TransportType::Udp, peer.ip(), at) {
                        tracing::debug!(%peer, "no TURN permission: {e}");
                    }
                }
            }
            Err(e) => tracing::debug!(%peer, "relay send failed: {e}"),
        }
        self.pump(now, i);
    }

    fn turn_time(&self, now: Instant) -> TurnInstant {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        TurnInstant::from_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
    }

    /// Takes what the TURN client wants sent and what happened to it, and when it next
    /// needs to run.
    fn pump(&mut self, now: Instant, i: usize) {
        let at = self.turn_time(now);
        // A client with work queued asks to be polled again at once; a few rounds drain it.
        // It always gets a second poll: a transaction that timed out in the first changes its
        // state, and only the next poll says the allocation is closed.
        for round in 0..8 {
            let r = &mut self.relays[i];
            let ret = r.client.poll(at);
            let mut produced = false;
            while let Some(t) = r.client.poll_transmit(at) {
                produced = true;
                let contents = t.data.as_ref().to_vec();
                self.out.push_back(NatOutput::Transmit { source: r.base, destination: t.to, contents });
            }
            while let Some(event) = r.client.poll_event() {
                produced = true;
                match event {
                    TurnEvent::AllocationCreated(_, addr) => {
                        tracing::info!(server = %r.server, relayed = %addr, "TURN relay allocated");
                        r.relayed = Some(addr);
                        r.complained = false;
                        match Candidate::relayed(addr, r.base, "udp") {
                            Ok(c) => self.out.push_back(NatOutput::Candidate(c)),
                            Err(e) => tracing::warn!("no relayed candidate for {addr}: {e}"),
                        }
                    }
                    TurnEvent::AllocationCreateFailed(_) => {
                        let text = format!(
                            "TURN server {} gave no relay (wrong user or password, or no answer)",
                            r.server
                        );
                        tracing::warn!("{text}");
                        if !std::mem::replace(&mut r.complained, true) {
                            self.out.push_back(NatOutput::Problem(text));
                        }
                        r.retry_at = Some(now + SERVER_RETRY);
                    }
                    TurnEvent::PermissionCreateFailed(_, ip) => {
                        // Refused or expired: asked again on a datagram after the retry delay.
                        tracing::debug!(server = %r.server, %ip, "TURN permission refused or expired");
                    }
                    TurnEvent::ChannelCreateFailed(_, peer) => {
                        // Send indications still carry the data; no rebinding storm.
                        tracing::debug!(server = %r.server, %peer, "no TURN channel");
                    }
                    _ => {}
                }
            }
            match ret {
                TurnPollRet::WaitUntil(t) if t > at && round > 0 => {
                    r.next =
                        now + Duration::from_nanos(u64::try_from((t - at).as_nanos()).unwrap_or(u64::MAX));
                    return;
                }
                TurnPollRet::Closed => {
                    if r.retry_at.is_none() {
                        let text = if r.relayed.is_some() {
                            format!("the relay on TURN server {} closed", r.server)
                        } else {
                            format!(
                                "TURN server {} gave no relay (wrong user or password, or no answer)",
                                r.server
                            )
                        };
                        tracing::warn!("{text}");
                        if let Some(addr) = r.relayed.take() {
                            tracing::info!(%addr, "relayed address withdrawn");
                        }
                        if !std::mem::replace(&mut r.complained, true) {
                            self.out.push_back(NatOutput::Problem(text));
                        }
                        r.retry_at = Some(now + SERVER_RETRY);
                    }
                    return;
                }
                _ if !produced && round > 0 => {
                    r.next = now + Duration::from_millis(10);
                    return;
                }
                _ => {}
            }
        }
        self.relays[i].next = now + Duration::from_millis(10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_urls_parse_and_hide_their_password() {
        let t: TurnServer = "turn:alice:s3cr:t@x@turn.example.org:3478".parse().unwrap();
        assert_eq!(t.user, "alice");
        assert_eq!(t.password.as_str(), "s3cr:t@x");
        assert_eq!(t.addr, "turn.example.org:3478");
        assert!(!format!("{t:?} {t}").contains("s3cr"));
        for bad in
            ["alice:pw@h:1", "turn:alice@h:1", "turn::pw@h:1", "turn:a:pw@h", "turn:a:pw@h:x", "turn:a:pw@:1"]
        {
            assert!(bad.parse::<TurnServer>().is_err(), "{bad}");
        }
    }

    /// The answer a STUN server gives to `request` from `from`.
    fn stun_answer(request: &[u8], from: SocketAddr) -> Vec<u8> {
        let req = Message::from_bytes(request).unwrap();
        let mut reply = Message::builder_success(&req, MessageWriteVec::new());
        reply.add_attribute(&XorMappedAddress::new(from, req.transaction_id())).unwrap();
        reply.finish()
    }

    fn transmits(nat: &mut Nat) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(o) = nat.poll_output() {
            if let NatOutput::Transmit { source, destination, contents } = o {
                out.push((source, destination, contents));
            }
        }
        out
    }

    #[test]
    fn a_stun_mapping_becomes_one_server_reflexive_candidate_and_is_refreshed() {
        let t0 = Instant::now();
        let server: SocketAddr = "203.0.113.1:3478".parse().unwrap();
        let base: SocketAddr = "192.168.1.2:5000".parse().unwrap();
        let public: SocketAddr = "198.51.100.7:61000".parse().unwrap();
        let mut nat = Nat::new(t0);
        nat.add_stun(t0, "stun.example:3478", server, base);
        let sent = transmits(&mut nat);
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].0, sent[0].1), (base, server));
        // The first request is lost: a retransmission follows after the RTO, same transaction.
        let t1 = nat.poll_timeout().unwrap();
        assert_eq!(t1 - t0, STUN_RTO);
        nat.handle_timeout(t1);
        let again = transmits(&mut nat);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].2, sent[0].2);
        // A stray datagram from elsewhere is not ours.
        let stray = nat.handle_datagram(t1, "10.9.9.9:1".parse().unwrap(), base, b"hello");
        assert!(matches!(stray, Claimed::No));
        let answer = stun_answer(&again[0].2, public);
        assert!(matches!(nat.handle_datagram(t1, server, base, &answer), Claimed::Taken));
        let cands: Vec<Candidate> = std::iter::from_fn(|| nat.poll_output())
            .filter_map(|o| match o {
                NatOutput::Candidate(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(cands.len(), 1);
        assert_eq!(cands[0].addr(), public);
        assert!(cands[0].to_sdp_string().contains("typ srflx"), "{}", cands[0].to_sdp_string());
        // The refresh asks again; the same mapping adds no candidate.
        let t2 = nat.poll_timeout().unwrap();
        assert_eq!(t2 - t1, STUN_REFRESH);
        nat.handle_timeout(t2);
        let refresh = transmits(&mut nat);
        assert_eq!(refresh.len(), 1);
        nat.handle_datagram(t2, server, base, &stun_answer(&refresh[0].2, public));
        assert!(std::iter::from_fn(|| nat.poll_output()).all(|o| !matches!(o, NatOutput::Candidate(_))));
    }

    #[test]
    fn a_silent_stun_server_is_reported_after_the_retransmissions_and_tried_again_later() {
        let t0 = Instant::now();
        let mut nat = Nat::new(t0);
        nat.add_stun(
            t0,
            "stun.example:3478",
            "203.0.113.1:3478".parse().unwrap(),
            "192.168.1.2:5000".parse().unwrap(),
        );
        let mut sent = transmits(&mut nat).len();
        let (now, problem) = loop {
            let now = nat.poll_timeout().unwrap();
            assert!(now - t0 < Duration::from_secs(120), "never gave up");
            nat.handle_timeout(now);
            let mut problem = None;
            while let Some(o) = nat.poll_output() {
                match o {
                    NatOutput::Transmit { .. } => sent += 1,
                    NatOutput::Problem(p) => problem = Some(p),
                    NatOutput::Candidate(_) => panic!("no answer, no candidate"),
                }
            }
            if let Some(p) = problem {
                break (now, p);
            }
        };
        assert_eq!(sent, STUN_TRIES as usize);
        assert!(problem.contains("did not answer"), "{problem}");
        assert_eq!(nat.poll_timeout().unwrap() - now, SERVER_RETRY);
    }

    #[test]
    fn a_server_silent_over_ipv6_but_answering_over_ipv4_is_not_reported() {
        let t0 = Instant::now();
        let name = "stun.example:3478";
        let (v4, base4): (SocketAddr, SocketAddr) =
            ("203.0.113.1:3478".parse().unwrap(), "192.168.1.2:5000".parse().unwrap());
        let (v6, base6): (SocketAddr, SocketAddr) =
            ("[2001:db8::1]:3478".parse().unwrap(), "[2001:db8:a::2]:5000".parse().unwrap());
        let mut nat = Nat::new(t0);
        nat.add_stun(t0, name, v4, base4);
        nat.add_stun(t0, name, v6, base6);
        let sent = transmits(&mut nat);
        let to_v4 = sent.iter().find(|t| t.1 == v4).unwrap();
        nat.handle_datagram(t0, v4, base4, &stun_answer(&to_v4.2, "198.51.100.7:61000".parse().unwrap()));
        // The IPv6 request is never answered: the probe gives up without a report.
        let end = t0 + Duration::from_secs(120);
        let mut problems = Vec::new();
        while let Some(now) = nat.poll_timeout().filter(|t| *t < end) {
            nat.handle_timeout(now);
            while let Some(o) = nat.poll_output() {
                match o {
                    NatOutput::Problem(p) => problems.push(p),
                    // Keep answering over IPv4 (the refreshes).
                    NatOutput::Transmit { destination, contents, .. } if destination == v4 => {
                        let answer = stun_answer(&contents, "198.51.100.7:61000".parse().unwrap());
                        nat.handle_datagram(now, v4, base4, &answer);
                    }
                    _ => {}
                }
            }
        }
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn a_server_silent_over_both_families_is_reported_once() {
        let t0 = Instant::now();
        let mut nat = Nat::new(t0);
        let name = "stun.example:3478";
        nat.add_stun(t0, name, "203.0.113.1:3478".parse().unwrap(), "192.168.1.2:5000".parse().unwrap());
        nat.add_stun(
            t0,
            name,
            "[2001:db8::1]:3478".parse().unwrap(),
            "[2001:db8:a::2]:5000".parse().unwrap(),
        );
        let mut problems = Vec::new();
        while let Some(now) = nat.poll_timeout().filter(|t| *t < t0 + Duration::from_secs(120)) {
            nat.handle_timeout(now);
            while let Some(o) = nat.poll_output() {
                if let NatOutput::Problem(p) = o {
                    problems.push(p);
                }
            }
        }
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}
