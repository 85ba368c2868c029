//! Hub rules driven directly through the sans-IO hub and client cores.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use kith::protocol::client::{Client, ClientConfig, ClientOutput, Now};
use kith::protocol::events::ClientEvent;
use kith::protocol::hub::{Hub, HubConfig, HubOutput, MAX_AUTH_FAILURES};
use kith::protocol::noise::Keypair;
use kith::protocol::trust::KnownPeers;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

/// Millisecond `ms` of the test, on the monotonic clock and as a client's `Now`.
fn at(ms: u64) -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now) + Duration::from_millis(ms)
}

fn t(ms: u64) -> Now {
    Now { at: at(ms), unix_ms: 1_800_000_000_000 + ms }
}

fn client(seed: u64, password: &str) -> Client {
    client_in(seed, password, &["general"])
}

fn client_in(seed: u64, password: &str, rooms: &[&str]) -> Client {
    let config = ClientConfig {
        name: format!("c{seed}"),
        password: Zeroizing::new(password.into()),
        rooms: rooms.iter().map(|r| r.to_string()).collect(),
        hub_label: "h".into(),
        hub_pin: None,
        accept_changed_hub_key: false,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    Client::new(config, Keypair::generate(&mut rng), KnownPeers::default(), rng)
}

fn frames_to_hub(c: &mut Client) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    while let Some(out) = c.poll_output() {
        if let ClientOutput::ToHub(f) = out {
            v.push(f);
        }
    }
    v
}

fn error_codes(c: &mut Client) -> Vec<String> {
    let mut v = Vec::new();
    while let Some(out) = c.poll_output() {
        if let ClientOutput::Event(ClientEvent::Error { code, .. }) = out {
            v.push(code);
        }
    }
    v
}

#[test]
fn parallel_guesses_do_not_escape_the_rate_limit() {
    let config = HubConfig {
        name: "h".into(),
        password: Zeroizing::new("right".into()),
        rooms: vec!["general".into()],
    };
    let mut hub = Hub::new(config, Keypair::from_secret_bytes([3; 32]), ChaCha20Rng::seed_from_u64(9));
    let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let n = MAX_AUTH_FAILURES as usize + 3;
    let mut clients: Vec<Client> = (0..n as u64).map(|i| client(i, "wrong")).collect();
    // Every connection finishes its handshake before any password is checked.
    let mut held_auth = Vec::new();
    for (i, c) in clients.iter_mut().enumerate() {
        let conn = i as u64 + 1;
        hub.handle_connect(at(0), conn, addr);
        c.handle_hub_connected(t(0));
        for f in frames_to_hub(c) {
            hub.handle_frame(at(0), conn, &f);
        }
        while let Some(HubOutput::Send { frame, .. }) = hub.poll_output() {
            c.handle_hub_frame(t(0), &frame);
        }
        let mut out = frames_to_hub(c);
        let auth = out.pop().expect("auth frame");
        for f in out {
            hub.handle_frame(at(0), conn, &f);
        }
        held_auth.push((conn, auth));
    }
    for (conn, auth) in held_auth {
        hub.handle_frame(at(1), conn, &auth);
    }
    let mut replies: Vec<(u64, Vec<u8>)> = Vec::new();
    while let Some(out) = hub.poll_output() {
        if let HubOutput::Send { conn, frame, .. } = out {
            replies.push((conn, frame));
        }
    }
    for (conn, frame) in replies {
        clients[conn as usize - 1].handle_hub_frame(t(2), &frame);
    }
    let codes: Vec<String> = clients.iter_mut().flat_map(error_codes).collect();
    let failed = codes.iter().filter(|c| *c == "auth_failed").count();
    let limited = codes.iter().filter(|c| *c == "rate_limited").count();
    assert_eq!((failed, limited), (MAX_AUTH_FAILURES as usize, 3), "{codes:?}");
}

#[test]
fn unauthenticated_connections_are_capped_per_address() {
    use kith::protocol::hub::{CloseReason, MAX_PENDING_PER_ADDR};
    let config =
        HubConfig { name: "h".into(), password: Zeroizing::new("pw".into()), rooms: vec!["general".into()] };
    let mut hub = Hub::new(config, Keypair::from_secret_bytes([4; 32]), ChaCha20Rng::seed_from_u64(1));
    let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
    for conn in 0..MAX_PENDING_PER_ADDR as u64 {
        hub.handle_connect(at(0), conn, addr);
    }
    assert!(hub.poll_output().is_none());
    let over = MAX_PENDING_PER_ADDR as u64;
    hub.handle_connect(at(0), over, addr);
    assert_eq!(hub.poll_output(), Some(HubOutput::Close { conn: over, reason: CloseReason::RateLimited }));
    // Another address is unaffected, and a slot freed by a disconnect can be used again.
    hub.handle_connect(at(0), over + 1, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)));
    hub.handle_disconnect(at(0), 0);
    hub.handle_connect(at(0), over + 2, addr);
    assert!(hub.poll_output().is_none());
    assert_eq!(hub.connection_count(), MAX_PENDING_PER_ADDR + 1);
}

#[test]
fn hub_and_client_ignore_message_kinds_they_do_not_know() {
    let config =
        HubConfig { name: "h".into(), password: Zeroizing::new("pw".into()), rooms: vec!["general".into()] };
    let mut hub = Hub::new(config, Keypair::from_secret_bytes([3; 32]), ChaCha20Rng::seed_from_u64(9));
    let mut c = client(1, "pw");
    hub.handle_connect(at(0), 1, IpAddr::V4(Ipv4Addr::LOCALHOST));
    c.handle_hub_connected(t(0));
    let pump = |hub: &mut Hub, c: &mut Client| {
        let mut closed = false;
        for _ in 0..20 {
            for f in frames_to_hub(c) {
                hub.handle_frame(at(0), 1, &f);
            }
            while let Some(out) = hub.poll_output() {
                match out {
                    HubOutput::Send { frame, .. } => c.handle_hub_frame(t(0), &frame),
                    HubOutput::Close { .. } => closed = true,
                }
            }
        }
        closed
    };
    assert!(!pump(&mut hub, &mut c));
    assert!(c.is_ready() && hub.member_count() == 1);
    // Kind 200 of each direction, as a newer version would send it.
    let unknown = [kith::protocol::wire::WIRE_VERSION, 0xc8, 0x01, 1, 2, 3];
    c.send_raw_to_hub(&unknown);
    hub.send_raw(1, &unknown);
    assert!(!pump(&mut hub, &mut c), "the hub closed the connection");
    assert_eq!(hub.ignored_messages(), 1);
    assert_eq!(c.ignored_hub_messages(), 1);
    assert!(c.is_ready() && hub.member_count() == 1);
}

/// Moves frames between `clients` (connection `i + 1` each) and the hub at `ms` until
/// nothing moves; returns the relayed frames each connection was sent.
fn pump_all(hub: &mut Hub, clients: &mut [Client], ms: u64) -> Vec<usize> {
    let mut relayed = vec![0; clients.len()];
    for _ in 0..50 {
        let mut moved = false;
        for (i, c) in clients.iter_mut().enumerate() {
            for f in frames_to_hub(c) {
                moved = true;
                hub.handle_frame(at(ms), i as u64 + 1, &f);
            }
        }
        while let Some(out) = hub.poll_output() {
            moved = true;
            if let HubOutput::Send { conn, frame, relay } = out {
                relayed[conn as usize - 1] += usize::from(relay);
                clients[conn as usize - 1].handle_hub_frame(t(ms), &frame);
            }
        }
        if !moved {
            break;
        }
    }
    relayed
}

#[test]
fn members_are_capped_per_address_and_pending_connections_in_total() {
    use kith::protocol::hub::{MAX_MEMBERS_PER_ADDR, MAX_PENDING_TOTAL};
    let config =
        HubConfig { name: "h".into(), password: Zeroizing::new("pw".into()), rooms: vec!["general".into()] };
    let mut hub = Hub::new(config, Keypair::from_secret_bytes([5; 32]), ChaCha20Rng::seed_from_u64(2));
    let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20));
    // In no room, so they do not all meet each other.
    let mut clients: Vec<Client> =
        (0..=MAX_MEMBERS_PER_ADDR as u64).map(|i| client_in(100 + i, "pw", &[])).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        hub.handle_connect(at(0), i as u64 + 1, addr);
        c.handle_hub_connected(t(0));
    }
    pump_all(&mut hub, &mut clients, 0);
    let ready = clients.iter().filter(|c| c.is_ready()).count();
    assert_eq!(ready, MAX_MEMBERS_PER_ADDR);
    assert_eq!(hub.member_count(), MAX_MEMBERS_PER_ADDR);
    // Loopback is not capped: behind a reverse proxy every member comes from there.
    let mut local: Vec<Client> =
        (0..=MAX_MEMBERS_PER_ADDR as u64).map(|i| client_in(500 + i, "pw", &[])).collect();
    let first = 1 + clients.len() as u64;
    for (i, c) in local.iter_mut().enumerate() {
        hub.handle_connect(at(0), first + i as u64, IpAddr::V4(Ipv4Addr::LOCALHOST));
        c.handle_hub_connected(t(0));
    }
    let mut all: Vec<Client> = clients.into_iter().chain(local).collect();
    pump_all(&mut hub, &mut all, 0);
    assert_eq!(hub.member_count(), 2 * MAX_MEMBERS_PER_ADDR + 1);

    // Half-open connections from many addresses together hold at most MAX_PENDING_TOTAL slots.
    let base = 10_000;
    for i in 0..MAX_PENDING_TOTAL as u64 + 10 {
        let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32));
        hub.handle_connect(at(0), base + i, addr);
    }
    let closed =
        std::iter::from_fn(|| hub.poll_output()).filter(|o| matches!(o, HubOutput::Close { .. })).count();
    assert_eq!(closed, 10);
    // A slot freed is a slot for someone else.
    hub.handle_disconnect(at(0), base);
    hub.handle_connect(at(0), base - 1, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)));
    assert!(hub.poll_output().is_none());
}

#[test]
fn a_member_relaying_faster_than_its_rate_loses_its_own_relays() {
    use kith::protocol::hub::RelayLimit;
    use kith::protocol::wire::{self, ClientToHub};
    let config =
        HubConfig { name: "h".into(), password: Zeroizing::new("pw".into()), rooms: vec!["general".into()] };
    let mut hub = Hub::new(config, Keypair::from_secret_bytes([6; 32]), ChaCha20Rng::seed_from_u64(3));
    // The default limit scaled down 32 times, so the test moves megabytes, not tens of them.
    let limit = RelayLimit { rate: RelayLimit::default().rate / 32, burst: RelayLimit::default().burst / 32 };
    hub.set_relay_limit(limit);
    const SIZE: usize = 4_000;
    let mut clients = vec![client(200, "pw"), client(201, "pw")];
    for (i, c) in clients.iter_mut().enumerate() {
        hub.handle_connect(at(0), i as u64 + 1, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 30 + i as u8)));
        c.handle_hub_connected(t(0));
    }
    pump_all(&mut hub, &mut clients, 0);
    assert!(clients.iter().all(|c| c.is_ready()));
    let victim = clients[1].identity_key();
    let flood = |c: &mut Client, n: usize| {
        for _ in 0..n {
            let relay = ClientToHub::Relay { to: victim, payload: vec![0x5a; SIZE] };
            c.send_raw_to_hub(&wire::encode(&relay));
        }
    };
    // Four times the burst in one instant: about the burst gets through.
    let sent = 4 * limit.burst as usize / SIZE;
    flood(&mut clients[0], sent);
    let passed = pump_all(&mut hub, &mut clients, 1)[1];
    let burst = limit.burst as usize / SIZE;
    assert!(passed >= burst - 2 && passed <= burst + 2, "{passed} of {sent} passed, burst {burst}");
    assert!(hub.relays_throttled() as usize >= sent - passed - 2);
    // A second later the sender has a second's worth again; nobody was disconnected.
    flood(&mut clients[0], sent);
    let passed = pump_all(&mut hub, &mut clients, 1_001)[1];
    let per_second = limit.rate as usize / SIZE;
    assert!(passed >= per_second - 2 && passed <= per_second + 2, "{passed}");
    assert_eq!(hub.member_count(), 2);
    assert!(clients.iter().all(|c| c.is_ready()));
}

#[test]
fn relays_to_a_member_whose_writer_is_behind_are_dropped_and_it_stays() {
    use kith::protocol::wire::{self, ClientToHub};
    let config =
        HubConfig { name: "h".into(), password: Zeroizing::new("pw".into()), rooms: vec!["general".into()] };
    let mut hub = Hub::new(config, Keypair::from_secret_bytes([7; 32]), ChaCha20Rng::seed_from_u64(4));
    let mut clients = vec![client(300, "pw"), client(301, "pw")];
    for (i, c) in clients.iter_mut().enumerate() {
        hub.handle_connect(at(0), i as u64 + 1, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 40 + i as u8)));
        c.handle_hub_connected(t(0));
    }
    pump_all(&mut hub, &mut clients, 0);
    let to = clients[1].identity_key();
    let relay =
        |c: &mut Client| c.send_raw_to_hub(&wire::encode(&ClientToHub::Relay { to, payload: vec![1; 100] }));
    // The server says connection 2's writer is behind: relays to it go nowhere, it stays.
    hub.set_behind(2, true);
    relay(&mut clients[0]);
    assert_eq!(pump_all(&mut hub, &mut clients, 1)[1], 0);
    assert_eq!(hub.relays_dropped_behind(), 1);
    assert_eq!(hub.member_count(), 2);
    // Caught up: they flow again.
    hub.set_behind(2, false);
    relay(&mut clients[0]);
    assert_eq!(pump_all(&mut hub, &mut clients, 2)[1], 1);
}
