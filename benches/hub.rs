//! Load on a real `kith hub` process over loopback (not criterion: these are system-level
//! figures). Prints a Markdown table for docs/BENCHMARKS.md.
//!
//! * relay throughput: 100 authenticated clients, each relaying small messages to the next one
//!   with a bounded window, measured over 5 s;
//! * relay latency: 2 clients, 2 000 messages/s for 5 s, one-way p50/p99 (same clock);
//! * idle connections: 10 000 authenticated connections, hub resident memory per connection.
//!
//! Run: `cargo bench --bench hub` (set KITH_BENCH_IDLE=N to change the idle count).

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use kith::net::framing;
use kith::protocol::hub::PROLOGUE;
use kith::protocol::identity::IdentityKey;
use kith::protocol::noise::{Handshake, Keypair, Role, Transport};
use kith::protocol::wire::{self, ClientHello, ClientToHub, HubToClient};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Mutex, Notify};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

const PW: &str = "bench";

struct HubProcess {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl HubProcess {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_kith"))
            .arg("--profile")
            .arg(dir.path())
            .args(["hub", "--listen", "127.0.0.1:0", "--password", PW, "--rooms", "general"])
            .args(["--max-connections", "50000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kith hub");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        Self { child, addr: v["addr"].as_str().unwrap().to_string(), _dir: dir }
    }

    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Conn {
    key: IdentityKey,
    transport: Transport,
    rd: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    wr: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
}

async fn recv(c: &mut Conn) -> HubToClient {
    let frame = c.rd.next().await.expect("hub closed").expect("read");
    wire::decode(&c.transport.decrypt(&frame).expect("decrypt")).expect("decode")
}

async fn send(c: &mut Conn, msg: &ClientToHub) {
    let frame = c.transport.encrypt(&wire::encode(msg)).unwrap();
    c.wr.send(Bytes::from(frame)).await.unwrap();
}

async fn connect(addr: &str, seed: u64, join: bool) -> Conn {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let me = Keypair::generate(&mut rng);
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let (r, w) = stream.into_split();
    let mut rd = FramedRead::new(r, framing::codec());
    let mut wr = FramedWrite::new(w, framing::codec());
    let mut hs = Handshake::new(Role::Initiator, &me, Keypair::generate(&mut rng), PROLOGUE);
    let hello = wire::encode(&ClientHello { app: "bench".into() });
    wr.send(Bytes::from(hs.write_message(&hello).unwrap())).await.unwrap();
    let m2 = rd.next().await.unwrap().unwrap();
    hs.read_message(&m2).unwrap();
    wr.send(Bytes::from(hs.write_message(&[]).unwrap())).await.unwrap();
    let transport = hs.into_transport().unwrap();
    let mut c = Conn { key: IdentityKey::from(&me.public), transport, rd, wr };
    send(&mut c, &ClientToHub::Auth { password: PW.into(), name: format!("b{seed}") }).await;
    assert!(matches!(recv(&mut c).await, HubToClient::AuthOk { .. }));
    if join {
        send(&mut c, &ClientToHub::Join { room: "general".into() }).await;
        while !matches!(recv(&mut c).await, HubToClient::Joined { .. }) {}
    }
    c
}

type Reader = FramedRead<OwnedReadHalf, LengthDelimitedCodec>;
type Writer = FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>;

/// Splits a connection so one task reads and another writes, sharing the transport.
fn split(c: Conn) -> (IdentityKey, Arc<Mutex<Transport>>, Reader, Writer) {
    (c.key, Arc::new(Mutex::new(c.transport)), c.rd, c.wr)
}

async fn relay_throughput(clients: usize, secs: u64) -> f64 {
    let hub = HubProcess::start();
    let mut conns = Vec::new();
    for i in 0..clients {
        conns.push(connect(&hub.addr, 1000 + i as u64, true).await);
    }
    let keys: Vec<IdentityKey> = conns.iter().map(|c| c.key).collect();
    let received: Arc<Vec<AtomicU64>> = Arc::new((0..clients).map(|_| AtomicU64::new(0)).collect());
    let notify: Arc<Vec<Notify>> = Arc::new((0..clients).map(|_| Notify::new()).collect());
    let stop = Arc::new(AtomicBool::new(false));
    const WINDOW: u64 = 256;
    let payload = vec![0x33u8; 64];
    for (i, c) in conns.into_iter().enumerate() {
        let (_, transport, mut rd, mut wr) = split(c);
        let partner = (i + 1) % clients;
        let (received_r, notify_r) = (received.clone(), notify.clone());
        let t = transport.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = rd.next().await {
                let plain = t.lock().await.decrypt(&frame).expect("decrypt");
                if let Ok(HubToClient::Relayed { .. }) = wire::decode(&plain) {
                    received_r[i].fetch_add(1, Ordering::Relaxed);
                    notify_r[i].notify_one();
                }
            }
        });
        let (received_w, notify_w, stop_w) = (received.clone(), notify.clone(), stop.clone());
        let msg = wire::encode(&ClientToHub::Relay { to: keys[partner], payload: payload.clone() });
        tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop_w.load(Ordering::Relaxed) {
                while sent - received_w[partner].load(Ordering::Relaxed) < WINDOW {
                    let frame = transport.lock().await.encrypt(&msg).unwrap();
                    if wr.feed(Bytes::from(frame)).await.is_err() {
                        return;
                    }
                    sent += 1;
                }
                if SinkExt::<Bytes>::flush(&mut wr).await.is_err() {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(5), notify_w[partner].notified()).await;
            }
        });
    }
    let total = |r: &Vec<AtomicU64>| r.iter().map(|x| x.load(Ordering::Relaxed)).sum::<u64>();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = (total(&received), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let rate = (total(&received) - start.0) as f64 / start.1.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    rate
}

async fn relay_latency(rate_per_s: u64, secs: u64) -> (f64, f64, f64, usize) {
    let hub = HubProcess::start();
    let a = connect(&hub.addr, 1, true).await;
    let b = connect(&hub.addr, 2, true).await;
    let to = b.key;
    let epoch = Instant::now();
    let (_, ta, _rd_a, mut wr_a) = split(a);
    let (_, tb, mut rd_b, _wr_b) = split(b);
    let count = (rate_per_s * secs) as usize;
    let reader = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(count);
        while lat.len() < count {
            let Some(Ok(frame)) = rd_b.next().await else { break };
            let plain = tb.lock().await.decrypt(&frame).unwrap();
            if let Ok(HubToClient::Relayed { payload, .. }) = wire::decode(&plain) {
                let sent = u64::from_le_bytes(payload[..8].try_into().unwrap());
                lat.push(epoch.elapsed().as_nanos() as u64 - sent);
            }
        }
        lat
    });
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate_per_s));
    for _ in 0..count {
        tick.tick().await;
        let mut payload = (epoch.elapsed().as_nanos() as u64).to_le_bytes().to_vec();
        payload.extend_from_slice(&[0u8; 56]);
        let frame = ta.lock().await.encrypt(&wire::encode(&ClientToHub::Relay { to, payload })).unwrap();
        wr_a.send(Bytes::from(frame)).await.unwrap();
    }
    let mut lat = reader.await.unwrap();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1e6;
    (pct(0.5), pct(0.99), pct(0.999), lat.len())
}

async fn idle_connections(n: usize) -> (u64, u64, f64) {
    let hub = HubProcess::start();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = hub.rss_bytes();
    let started = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let addr = Arc::new(hub.addr.clone());
    let mut tasks = futures::stream::iter(0..n)
        .map(|i| {
            let addr = addr.clone();
            async move { connect(&addr, 100_000 + i as u64, false).await }
        })
        .buffer_unordered(128);
    while let Some(c) = tasks.next().await {
        conns.push(c);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = hub.rss_bytes();
    assert_eq!(conns.len(), n);
    (before, after, connect_secs)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run only when benching.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    #[cfg(unix)]
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let idle: usize = std::env::var("KITH_BENCH_IDLE").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    rt.block_on(async {
        let rate = relay_throughput(100, 5).await;
        println!("| hub relay throughput, 100 clients, 64-byte payloads | {rate:.0} msg/s | target ≥ 100 000 msg/s |");
        let (p50, p99, p999, n) = relay_latency(2000, 5).await;
        println!("| hub relay one-way latency, 2 clients, 2 000 msg/s ({n} msgs) | p50 {p50:.3} ms, p99 {p99:.3} ms, p99.9 {p999:.3} ms | target p99 < 2 ms |");
        let (before, after, secs) = idle_connections(idle).await;
        let per = (after.saturating_sub(before)) as f64 / idle as f64;
        println!(
            "| {idle} idle authenticated connections | hub RSS {:.1} MiB → {:.1} MiB, {:.1} KiB per connection (connected in {secs:.1} s) | target < 64 KiB each |",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            per / 1024.0
        );
    });
}
