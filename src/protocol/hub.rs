//! The hub's routing rules as a sans-IO state machine.
//!
//! The hub terminates one Noise session per connection (its own static key, the client's
//! identity key), checks the room password, and then only keeps routing state: rooms, members
//! (name and identity key), presence. Peer traffic arrives as `Relay` with an opaque payload
//! that is a Noise message between the two clients; the hub forwards it and can read none of
//! it.
//!
//! Drive it like str0m's `Rtc`: feed `handle_*(now, …)`, then drain `poll_output()`; call
//! `handle_timeout` at `poll_timeout()`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::identity::IdentityKey;
use super::noise::{Handshake, Keypair, Role, Transport};
use super::wire::{
    self, AuthFailure, ClientHello, ClientToHub, HubToClient, MAX_ROOM, MemberInfo, sanitize_name,
};

pub type ConnId = u64;

/// A connection must finish the handshake and authenticate within this time.
pub const AUTH_TIMEOUT_MS: u64 = 10_000;
/// An authenticated connection that sends nothing (not even a ping) for this long is dropped.
pub const IDLE_TIMEOUT_MS: u64 = 90_000;
/// Failed authentications allowed per address per window before it is refused outright.
pub const MAX_AUTH_FAILURES: u32 = 5;
pub const AUTH_FAILURE_WINDOW_MS: u64 = 60_000;

/// `ms` after `now`, on the monotonic clock; a timeout too large to represent (an operator's
/// `--auth-timeout` of years) is a year.
fn after(now: Instant, ms: u64) -> Instant {
    now.checked_add(Duration::from_millis(ms)).unwrap_or_else(|| now + Duration::from_secs(365 * 86_400))
}
/// Connections from one address still handshaking or authenticating.
pub const MAX_PENDING_PER_ADDR: usize = 256;
/// Connections handshaking or authenticating from everywhere together: many addresses (a
/// /56 holds 256 /64s) must not be able to hold every slot of the hub.
pub const MAX_PENDING_TOTAL: usize = 1024;
/// Members connected from one address (loopback excepted): identities are free, so one host
/// could otherwise open thousands, each with its queue on the hub.
pub const MAX_MEMBERS_PER_ADDR: usize = 64;
/// Kith is for groups who know each other; this also keeps the member list in one frame.
pub const MAX_ROOM_MEMBERS: usize = 256;

#[derive(Debug, Clone)]
pub struct HubConfig {
    pub name: String,
    pub password: Zeroizing<String>,
    pub rooms: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    HandshakeFailed(String),
    Protocol(String),
    AuthFailed,
    RateLimited,
    Timeout,
    Replaced,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HubOutput {
    /// Write this frame to the connection, after those before it: the link is an ordered
    /// stream and a gap ends it. `relay` says it is a member's packet for another (relays are
    /// what [`Hub::set_behind`] holds back).
    Send { conn: ConnId, frame: Vec<u8>, relay: bool },
    /// Flush what was sent, then close the connection.
    Close { conn: ConnId, reason: CloseReason },
}

enum Phase {
    Handshake(Box<Handshake>),
    AwaitAuth(Box<Transport>),
    Member(Box<Transport>),
    /// Only while moving the state out of one phase into the next.
    Moving,
}

struct Conn {
    addr: IpAddr,
    phase: Phase,
    deadline: Instant,
    key: Option<IdentityKey>,
    name: String,
    rooms: BTreeSet<String>,
    relay_budget: Bucket,
    /// Its writer is behind: relays to it are dropped until it catches up.
    behind: bool,
}

/// Relayed bytes a member may send per second, and in one burst (a 16 KiB message to a full
/// room of 256 is 4 MiB). Chat needs far less; files go on direct links.
pub const RELAY_RATE: u64 = 4 << 20;
pub const RELAY_BURST: u64 = 16 << 20;

/// How fast a member may relay: bytes per second, and in one burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimit {
    pub rate: u64,
    pub burst: u64,
}

impl Default for RelayLimit {
    fn default() -> Self {
        Self { rate: RELAY_RATE, burst: RELAY_BURST }
    }
}

/// A token bucket of bytes.
struct Bucket {
    tokens: u64,
    at: Instant,
    limit: RelayLimit,
}

impl Bucket {
    fn full(now: Instant, limit: RelayLimit) -> Self {
        Self { tokens: limit.burst, at: now, limit }
    }

    fn take(&mut self, now: Instant, bytes: usize) -> bool {
        let elapsed = now.saturating_duration_since(self.at);
        let refill = (elapsed.as_micros() as u64).saturating_mul(self.limit.rate) / 1_000_000;
        if refill > 0 {
            self.tokens = self.tokens.saturating_add(refill).min(self.limit.burst);
            self.at = now;
        }
        let bytes = bytes as u64;
        if self.tokens < bytes {
            return false;
        }
        self.tokens -= bytes;
        true
    }
}

struct FailureWindow {
    since: Instant,
    count: u32,
}

/// Test hook: lets a test hub lie about member keys, to prove clients notice.
pub type KeySubstitution = fn(&IdentityKey) -> IdentityKey;
/// Test hook: sees each relayed payload (from, to) and returns it to forward now, or `None`
/// to drop it (a simulation may keep it and [`Hub::inject_relay`] it later).
pub type RelayTap = Box<dyn FnMut(IdentityKey, IdentityKey, Vec<u8>) -> Option<Vec<u8>> + Send>;

pub struct Hub {
    config: HubConfig,
    password_hash: [u8; 32],
    keypair: Keypair,
    rng: ChaCha20Rng,
    conns: HashMap<ConnId, Conn>,
    by_key: HashMap<IdentityKey, ConnId>,
    rooms: BTreeMap<String, BTreeSet<ConnId>>,
    failures: HashMap<IpAddr, FailureWindow>,
    /// Connections per address still handshaking or authenticating, and in all.
    pending: HashMap<IpAddr, usize>,
    pending_total: usize,
    /// Authenticated connections per address.
    members_per_addr: HashMap<IpAddr, usize>,
    /// Relays dropped because their sender went over its rate.
    relays_throttled: u64,
    /// Relays dropped because their receiver was behind.
    relays_dropped_behind: u64,
    /// Every writer together holds too much: relays to anyone are dropped.
    congested: bool,
    relay_limit: RelayLimit,
    out: VecDeque<HubOutput>,
    substitute: Option<KeySubstitution>,
    tap: Option<RelayTap>,
    auth_timeout_ms: u64,
    /// Members' messages of kinds this version does not know (newer clients'), ignored.
    ignored_messages: u64,
}

impl Hub {
    pub fn new(config: HubConfig, keypair: Keypair, rng: ChaCha20Rng) -> Self {
        let password_hash = Sha256::digest(config.password.as_bytes()).into();
        let rooms = config.rooms.iter().map(|r| (r.clone(), BTreeSet::new())).collect();
        Self {
            config,
            password_hash,
            keypair,
            rng,
            conns: HashMap::new(),
            by_key: HashMap::new(),
            rooms,
            failures: HashMap::new(),
            pending: HashMap::new(),
            pending_total: 0,
            members_per_addr: HashMap::new(),
            relays_throttled: 0,
            relays_dropped_behind: 0,
            congested: false,
            relay_limit: RelayLimit::default(),
            out: VecDeque::new(),
            substitute: None,
            tap: None,
            auth_timeout_ms: AUTH_TIMEOUT_MS,
            ignored_messages: 0,
        }
    }

    /// The writer of `conn` is behind (or caught up again): the server side says so, since
    /// only it sees its queues.
    pub fn set_behind(&mut self, conn: ConnId, behind: bool) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.behind = behind;
        }
    }

    /// All writers together hold too much (or no longer do).
    pub fn set_congested(&mut self, congested: bool) {
        self.congested = congested;
    }

    /// Relays dropped so far because their receiver was behind.
    pub fn relays_dropped_behind(&self) -> u64 {
        self.relays_dropped_behind
    }

    /// The relay rate for connections made from now on.
    pub fn set_relay_limit(&mut self, limit: RelayLimit) {
        self.relay_limit = RelayLimit { rate: limit.rate.max(1), burst: limit.burst.max(1) };
    }

    pub fn set_auth_timeout(&mut self, ms: u64) {
        self.auth_timeout_ms = ms.max(1);
    }

    #[doc(hidden)]
    pub fn set_relay_tap(&mut self, tap: RelayTap) {
        self.tap = Some(tap);
    }

    /// Delivers a payload held back by a [`RelayTap`], if `to` is still connected.
    #[doc(hidden)]
    pub fn inject_relay(&mut self, from: IdentityKey, to: IdentityKey, payload: Vec<u8>) {
        if let Some(&target) = self.by_key.get(&to) {
            let frame = wire::encode(&HubToClient::Relayed { from, payload });
            self.encrypt_to(target, &frame, true);
        }
    }

    #[doc(hidden)]
    pub fn set_key_substitution(&mut self, f: KeySubstitution) {
        self.substitute = Some(f);
    }

    /// Relays dropped so far because their sender went over its [`RelayLimit`].
    pub fn relays_throttled(&self) -> u64 {
        self.relays_throttled
    }

    /// Members' messages of unknown kinds ignored so far.
    pub fn ignored_messages(&self) -> u64 {
        self.ignored_messages
    }

    pub fn public_key(&self) -> IdentityKey {
        IdentityKey::from(&self.keypair.public)
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    pub fn member_count(&self) -> usize {
        self.by_key.len()
    }

    pub fn poll_output(&mut self) -> Option<HubOutput> {
        self.out.pop_front()
    }

    /// The earliest deadline of any connection.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns.values().map(|c| c.deadline).min()
    }

    pub fn handle_connect(&mut self, now: Instant, conn: ConnId, addr: IpAddr) {
        // Unauthenticated connections cost a handshake and a slot for AUTH_TIMEOUT_MS: cap them
        // per address so one host cannot fill the hub.
        // Counted, not scanned: with thousands of members a scan per connect would be quadratic.
        let pending = self.pending.entry(addr).or_insert(0);
        if *pending >= MAX_PENDING_PER_ADDR || self.pending_total >= MAX_PENDING_TOTAL {
            if *pending == 0 {
                self.pending.remove(&addr);
            }
            self.out.push_back(HubOutput::Close { conn, reason: CloseReason::RateLimited });
            return;
        }
        *pending += 1;
        self.pending_total += 1;
        let e = Keypair::generate(&mut self.rng);
        let hs = Handshake::new(Role::Responder, &self.keypair, e, PROLOGUE);
        self.conns.insert(
            conn,
            Conn {
                addr,
                phase: Phase::Handshake(Box::new(hs)),
                deadline: after(now, self.auth_timeout_ms),
                key: None,
                name: String::new(),
                rooms: BTreeSet::new(),
                relay_budget: Bucket::full(now, self.relay_limit),
                behind: false,
            },
        );
    }

    pub fn handle_disconnect(&mut self, _now: Instant, conn: ConnId) {
        self.remove(conn);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<ConnId> =
            self.conns.iter().filter(|(_, c)| c.deadline <= now).map(|(id, _)| *id).collect();
        for conn in expired {
            self.close(conn, CloseReason::Timeout);
        }
        self.failures.retain(|_, w| now < after(w.since, AUTH_FAILURE_WINDOW_MS));
    }

    pub fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match &mut c.phase {
            Phase::Handshake(hs) => {
                let result = advance_handshake(hs, frame);
                match result {
                    Ok(Some(reply)) => {
                        self.out.push_back(HubOutput::Send { conn, frame: reply, relay: false })
                    }
                    Ok(None) => {
                        let Phase::Handshake(hs) = std::mem::replace(&mut c.phase, Phase::Moving) else {
                            return;
                        };
                        match hs.into_transport() {
                            Ok(mut t) => {
                                t.set_strict_order(true);
                                c.key = Some(IdentityKey::from(t.remote_static()));
                                c.phase = Phase::AwaitAuth(Box::new(t));
                            }
                            Err(e) => self.close(conn, CloseReason::HandshakeFailed(e.to_string())),
                        }
                    }
                    Err(e) => self.close(conn, CloseReason::HandshakeFailed(e)),
                }
            }
            Phase::AwaitAuth(t) | Phase::Member(t) => {
                let decrypted = t.decrypt(frame);
                let member = matches!(c.phase, Phase::Member(_));
                // The first message carries the password: the plaintext is wiped after decoding.
                let plain = match decrypted {
                    Ok(plain) => Zeroizing::new(plain),
                    Err(e) => return self.close(conn, CloseReason::Protocol(e.to_string())),
                };
                c.deadline = after(now, IDLE_TIMEOUT_MS);
                match wire::decode::<ClientToHub>(&plain) {
                    Ok(msg) => self.handle_message(now, conn, msg),
                    // A member's authentic message of a kind this version does not know (a
                    // newer client's): ignored. Before Auth nothing but Auth is accepted.
                    Err(e) if member => {
                        self.ignored_messages += 1;
                        tracing::debug!(conn, "unknown message from a member ignored: {e}");
                    }
                    Err(e) => self.close(conn, CloseReason::Protocol(e.to_string())),
                }
            }
            Phase::Moving => {}
        }
    }

    fn handle_message(&mut self, now: Instant, conn: ConnId, msg: ClientToHub) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let authed = matches!(c.phase, Phase::Member(_));
        match (authed, msg) {
            (false, ClientToHub::Auth { password, name }) => self.authenticate(now, conn, password, name),
            (false, _) => self.close(conn, CloseReason::Protocol("expected Auth".into())),
            (true, ClientToHub::Auth { .. }) => {
                self.close(conn, CloseReason::Protocol("already authenticated".into()))
            }
            (true, ClientToHub::Join { room }) => self.join(conn, room),
            (true, ClientToHub::Leave { room }) => self.leave(conn, &room),
            (true, ClientToHub::Relay { to, payload }) => self.relay(now, conn, to, payload),
            (true, ClientToHub::Ping { nonce }) => self.send(conn, &HubToClient::Pong { nonce }),
        }
    }

    fn authenticate(&mut self, now: Instant, conn: ConnId, password: String, name: String) {
        let password = Zeroizing::new(password);
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let addr = c.addr;
        // Checked at the moment of the attempt, so parallel connections opened before the
        // first failure do not each get a free guess. A limited address still gets its
        // handshake, so it can be told why it is refused; its password is not looked at.
        if self.is_rate_limited(now, addr) {
            self.send(conn, &HubToClient::AuthFailed { reason: AuthFailure::RateLimited });
            self.close(conn, CloseReason::RateLimited);
            return;
        }
        // Hash both sides so the comparison is constant-time whatever the lengths.
        let offered: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        let ok: bool = offered.ct_eq(&self.password_hash).into();
        if !ok {
            self.record_failure(now, addr);
            self.send(conn, &HubToClient::AuthFailed { reason: AuthFailure::WrongPassword });
            self.close(conn, CloseReason::AuthFailed);
            return;
        }
        let Some(name) = sanitize_name(&name) else {
            self.send(conn, &HubToClient::AuthFailed { reason: AuthFailure::BadName });
            self.close(conn, CloseReason::Protocol("bad name".into()));
            return;
        };
        // A member reconnecting from its address replaces its old connection, so that one
        // does not count against it.
        let replacing = self
            .conns
            .get(&conn)
            .and_then(|c| c.key)
            .and_then(|k| self.by_key.get(&k))
            .and_then(|old| self.conns.get(old))
            .is_some_and(|old| old.addr == addr);
        // Loopback is exempt: behind a reverse proxy every member comes from there, and so
        // does everything a host runs on itself.
        let capped = !addr.is_loopback() && !replacing;
        if capped && self.members_per_addr.get(&addr).copied().unwrap_or(0) >= MAX_MEMBERS_PER_ADDR {
            self.send(conn, &HubToClient::AuthFailed { reason: AuthFailure::RateLimited });
            self.close(conn, CloseReason::RateLimited);
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(key) = c.key else { return };
        let Phase::AwaitAuth(_) = &c.phase else {
            return;
        };
        let Phase::AwaitAuth(t) = std::mem::replace(&mut c.phase, Phase::Moving) else {
            return;
        };
        c.phase = Phase::Member(t);
        tracing::debug!(conn, member = %key.fingerprint(), "member authenticated");
        c.name = name;
        c.deadline = after(now, IDLE_TIMEOUT_MS);
        self.unpend(addr);
        *self.members_per_addr.entry(addr).or_insert(0) += 1;
        // One live connection per identity: a reconnecting client replaces its old one.
        if let Some(old) = self.by_key.insert(key, conn)
            && old != conn
        {
            self.close(old, CloseReason::Replaced);
            self.by_key.insert(key, conn);
        }
        let reply =
            HubToClient::AuthOk { hub_name: self.config.name.clone(), rooms: self.config.rooms.clone() };
        self.send(conn, &reply);
    }

    fn join(&mut self, conn: ConnId, room: String) {
        if room.len() > MAX_ROOM || !self.rooms.contains_key(&room) {
            let message = format!("no room named {room:?} on this hub");
            self.send(conn, &HubToClient::Error { code: "no_such_room".into(), message });
            return;
        }
        let Some(me) = self.member_info(conn) else {
            return;
        };
        let members_conns = self.rooms.get(&room).cloned().unwrap_or_default();
        if members_conns.contains(&conn) {
            return;
        }
        if members_conns.len() >= MAX_ROOM_MEMBERS {
            let message = format!("{room:?} already has {MAX_ROOM_MEMBERS} members");
            self.send(conn, &HubToClient::Error { code: "room_full".into(), message });
            return;
        }
        let members: Vec<MemberInfo> = members_conns
            .iter()
            .filter_map(|other| self.member_info(*other))
            .map(|m| self.disguise(m))
            .collect();
        for other in &members_conns {
            let member = self.disguise(me.clone());
            self.send(*other, &HubToClient::MemberJoined { room: room.clone(), member });
        }
        if let Some(set) = self.rooms.get_mut(&room) {
            set.insert(conn);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.rooms.insert(room.clone());
        }
        self.send(conn, &HubToClient::Joined { room, members });
    }

    fn leave(&mut self, conn: ConnId, room: &str) {
        let Some(key) = self.conns.get(&conn).and_then(|c| c.key) else {
            return;
        };
        let was_member = self.rooms.get_mut(room).is_some_and(|set| set.remove(&conn));
        if let Some(c) = self.conns.get_mut(&conn) {
            c.rooms.remove(room);
        }
        if was_member {
            let others = self.rooms.get(room).cloned().unwrap_or_default();
            for other in others {
                let key = self.disguise_key(key);
                self.send(other, &HubToClient::MemberLeft { room: room.to_string(), key });
            }
        }
    }

    fn relay(&mut self, now: Instant, conn: ConnId, to: IdentityKey, payload: Vec<u8>) {
        let to = self.undisguise_key(to);
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let Some(from_key) = c.key else {
            return;
        };
        // Each member relays at a bounded rate, whatever its uplink: beyond it, its packets
        // are dropped here (its sessions resend), not queued for a receiver to choke on.
        if !c.relay_budget.take(now, payload.len()) {
            self.relays_throttled += 1;
            return;
        }
        let target = self.by_key.get(&to).copied();
        let shares_room = target.is_some_and(|t| {
            let mine = self.conns.get(&conn).map(|c| &c.rooms);
            let theirs = self.conns.get(&t).map(|c| &c.rooms);
            matches!((mine, theirs), (Some(a), Some(b)) if !a.is_disjoint(b))
        });
        match target {
            // A receiver that is behind (a slow downlink) loses relays, which its peers'
            // sessions resend, and stays connected: a fast sender must not get it dropped.
            Some(target)
                if shares_room && (self.congested || self.conns.get(&target).is_some_and(|c| c.behind)) =>
            {
                self.relays_dropped_behind += 1;
            }
            Some(target) if shares_room => {
                let from = self.disguise_key(from_key);
                let payload = match self.tap.as_mut() {
                    Some(tap) => tap(from, to, payload),
                    None => Some(payload),
                };
                if let Some(payload) = payload {
                    tracing::trace!(from = %from_key.fingerprint(), to = %to.fingerprint(), bytes = payload.len(), "relay");
                    let frame = wire::encode(&HubToClient::Relayed { from, payload });
                    self.encrypt_to(target, &frame, true);
                }
            }
            _ => {
                let message = format!("{} is not in any of your rooms", to.fingerprint());
                self.send(conn, &HubToClient::Error { code: "no_such_member".into(), message });
            }
        }
    }

    fn member_info(&self, conn: ConnId) -> Option<MemberInfo> {
        let c = self.conns.get(&conn)?;
        Some(MemberInfo { key: c.key?, name: c.name.clone() })
    }

    fn disguise(&self, mut m: MemberInfo) -> MemberInfo {
        m.key = self.disguise_key(m.key);
        m
    }

    fn disguise_key(&self, key: IdentityKey) -> IdentityKey {
        self.substitute.map_or(key, |f| f(&key))
    }

    fn undisguise_key(&self, key: IdentityKey) -> IdentityKey {
        let Some(f) = self.substitute else { return key };
        self.by_key.keys().find(|k| f(k) == key).copied().unwrap_or(key)
    }

    fn send(&mut self, conn: ConnId, msg: &HubToClient) {
        self.send_plaintext(conn, &wire::encode(msg));
    }

    /// For tests that play a newer hub: sends bytes that need not be a message this version
    /// knows.
    #[doc(hidden)]
    pub fn send_raw(&mut self, conn: ConnId, plaintext: &[u8]) {
        self.send_plaintext(conn, plaintext);
    }

    fn send_plaintext(&mut self, conn: ConnId, plaintext: &[u8]) {
        self.encrypt_to(conn, plaintext, false);
    }

    /// Encrypts for `conn`. Frames carry their nonce, so the client takes them with gaps (a
    /// dropped relay) as well as in order.
    fn encrypt_to(&mut self, conn: ConnId, plaintext: &[u8], relay: bool) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let (Phase::AwaitAuth(t) | Phase::Member(t)) = &mut c.phase else {
            return;
        };
        match t.encrypt(plaintext) {
            Ok(frame) => self.out.push_back(HubOutput::Send { conn, frame, relay }),
            Err(e) => self.close(conn, CloseReason::Protocol(e.to_string())),
        }
    }

    fn close(&mut self, conn: ConnId, reason: CloseReason) {
        if self.conns.contains_key(&conn) {
            self.remove(conn);
            self.out.push_back(HubOutput::Close { conn, reason });
        }
    }

    fn remove(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if matches!(c.phase, Phase::Member(_)) {
            if let Some(n) = self.members_per_addr.get_mut(&c.addr) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.members_per_addr.remove(&c.addr);
                }
            }
        } else {
            self.unpend(c.addr);
        }
        let Some(key) = c.key else { return };
        if self.by_key.get(&key) == Some(&conn) {
            self.by_key.remove(&key);
        }
        for room in c.rooms {
            if let Some(set) = self.rooms.get_mut(&room) {
                set.remove(&conn);
            }
            let others = self.rooms.get(&room).cloned().unwrap_or_default();
            for other in others {
                let key = self.disguise_key(key);
                self.send(other, &HubToClient::MemberLeft { room: room.clone(), key });
            }
        }
    }

    /// A connection from `addr` stopped being unauthenticated (it became a member or left).
    fn unpend(&mut self, addr: IpAddr) {
        if let Some(n) = self.pending.get_mut(&addr) {
            *n = n.saturating_sub(1);
            self.pending_total = self.pending_total.saturating_sub(1);
            if *n == 0 {
                self.pending.remove(&addr);
            }
        }
    }

    fn is_rate_limited(&self, now: Instant, addr: IpAddr) -> bool {
        self.failures
            .get(&addr)
            .is_some_and(|w| now < after(w.since, AUTH_FAILURE_WINDOW_MS) && w.count >= MAX_AUTH_FAILURES)
    }

    fn record_failure(&mut self, now: Instant, addr: IpAddr) {
        let w = self.failures.entry(addr).or_insert(FailureWindow { since: now, count: 0 });
        if now >= after(w.since, AUTH_FAILURE_WINDOW_MS) {
            *w = FailureWindow { since: now, count: 0 };
        }
        w.count += 1;
    }
}

/// Bound into both hub and peer handshakes so a transcript cannot be replayed elsewhere.
pub const PROLOGUE: &[u8] = b"kith hub link v1";

/// Feeds one client handshake message; returns the reply to send, or `None` when finished.
fn advance_handshake(hs: &mut Handshake, frame: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let payload = hs.read_message(frame).map_err(|e| e.to_string())?;
    if hs.is_finished() {
        return Ok(None);
    }
    let hello: ClientHello = wire::decode(&payload).map_err(|e| e.to_string())?;
    tracing::debug!(app = %hello.app, "hub handshake");
    hs.write_message(&[]).map(Some).map_err(|e| e.to_string())
}
