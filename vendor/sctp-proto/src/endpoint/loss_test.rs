//! kith patch: loss recovery on a simulated path.
//!
//! Each test moves a stream of 64 KiB messages (as Kith's file transfers do) from client to
//! server through `Pair`, whose clock is simulated and whose drop hook loses chosen
//! datagrams. The figures asserted are simulated time and the association's own counters,
//! so nothing here depends on the machine's speed.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const STREAM: u16 = 1;
const MESSAGE: usize = 64 * 1024;
/// Kith's send-side high-water mark for a file transfer.
const HIGH_WATER: usize = 1024 * 1024;
/// The receive buffer str0m gives every association.
const RECEIVE_BUFFER: u32 = 1024 * 1024;

struct Outcome {
    /// Simulated time from the first write to the last byte read.
    elapsed: Duration,
    t3_timeouts: u64,
    fast_retransmits: u64,
}

impl Outcome {
    fn mib_per_s(&self, bytes: usize) -> f64 {
        bytes as f64 / (1 << 20) as f64 / self.elapsed.as_secs_f64()
    }
}

/// The TSNs of the DATA chunks in one datagram.
fn data_tsns(datagram: &Bytes) -> Vec<u32> {
    let Ok(packet) = Packet::unmarshal(datagram) else {
        return vec![];
    };
    packet
        .chunks
        .iter()
        .filter_map(|c| c.as_any().downcast_ref::<ChunkPayloadData>())
        .map(|d| d.tsn)
        .collect()
}

/// Moves `total` bytes from client to server over a path with the given one-way delay,
/// losing what `drop_hook` says, and reports how long it took on the simulated clock.
fn transfer(total: usize, path: Path, drop_hook: DropHook) -> Outcome {
    let (mut pair, client_ch, server_ch) =
        create_association_pair(AckMode::Normal, RECEIVE_BUFFER).unwrap();
    establish_session_pair(&mut pair, client_ch, server_ch, STREAM).unwrap();
    // The real sockets only echo traffic to the OS, and each read waits 10 ms of wall time.
    pair.client.socket = None;
    pair.server.socket = None;
    pair.latency = path.one_way;
    pair.bandwidth = Some(path.bytes_per_s);
    pair.drop_hook = Some(drop_hook);

    let message = Bytes::from(vec![0x5a; MESSAGE]);
    let start = pair.time;
    let (mut written, mut read) = (0usize, 0usize);
    let deadline = start + Duration::from_secs(600);
    while read < total {
        while written < total && pair.client_conn_mut(client_ch).buffered_amount() < HIGH_WATER {
            let n = MESSAGE.min(total - written);
            pair.client_stream(client_ch, STREAM)
                .unwrap()
                .write_sctp(&message.slice(..n), PayloadProtocolIdentifier::Binary)
                .unwrap();
            written += n;
        }
        let busy = pair.step();
        while let Some(chunks) = pair.server_stream(server_ch, STREAM).unwrap().read_sctp().unwrap() {
            read += chunks.len();
        }
        assert!(busy || read >= total, "the association went idle with {read} of {total} bytes read");
        assert!(pair.time < deadline, "stalled: {read} of {total} bytes after 600 s");
    }
    let elapsed = pair.time - start;
    let stats = &mut pair.client_conn_mut(client_ch).stats;
    Outcome {
        elapsed,
        t3_timeouts: stats.get_num_t3timeouts(),
        fast_retransmits: stats.get_num_fast_retrans(),
    }
}

/// Drops the listed transmissions of DATA chunks towards the server: `(n, k)` loses the
/// k-th transmission (1 = the first) of the n-th TSN of the transfer's data.
fn drop_transmissions(plan: &'static [(u32, u32)]) -> DropHook {
    let mut first_tsn: Option<u32> = None;
    let mut seen: HashMap<u32, u32> = HashMap::default();
    Box::new(move |to_server, datagram| {
        if !to_server {
            return false;
        }
        let mut drop = false;
        for tsn in data_tsns(datagram) {
            let base = *first_tsn.get_or_insert(tsn);
            let count = seen.entry(tsn).or_insert(0);
            *count += 1;
            let n = tsn.wrapping_sub(base);
            drop |= plan.contains(&(n, *count));
        }
        drop
    })
}

/// Loses each datagram, both ways, with probability `p` (what nftables' `numgen random`
/// does in Kith's benchmark namespace).
fn random_loss(p: f64, seed: u64) -> DropHook {
    let mut rng = StdRng::seed_from_u64(seed);
    Box::new(move |_, _| rng.random_bool(p))
}

const MIB: usize = 1 << 20;

/// A simulated path: its one-way delay, and the rate of its link each way.
#[derive(Clone, Copy, Debug)]
struct Path {
    one_way: Duration,
    bytes_per_s: f64,
}

/// A LAN: 1 ms round trip, 100 MiB/s.
const LAN: Path = Path {
    one_way: Duration::from_micros(500),
    bytes_per_s: 100.0 * MIB as f64,
};

/// A broadband path: 20 ms round trip, 100 Mbit/s.
const BROADBAND: Path = Path {
    one_way: Duration::from_millis(10),
    bytes_per_s: 12.5e6,
};

#[test]
fn two_losses_close_together_are_both_repaired_without_a_timeout() {
    // The second hole is reported missing only while the first is in Fast Recovery.
    let out = transfer(2 * MIB, BROADBAND, drop_transmissions(&[(40, 1), (43, 1)]));
    assert_eq!(out.t3_timeouts, 0, "a T3 timeout was needed");
    assert_eq!(out.fast_retransmits, 2);
}

#[test]
fn a_lost_fast_retransmission_is_sent_again_without_a_timeout() {
    let out = transfer(2 * MIB, BROADBAND, drop_transmissions(&[(40, 1), (40, 2)]));
    assert_eq!(out.t3_timeouts, 0, "a T3 timeout was needed");
    assert_eq!(out.fast_retransmits, 2);
}

#[test]
fn several_holes_in_one_window_cost_no_more_than_one() {
    let plan = &[(40, 1), (42, 1), (45, 1), (49, 1), (60, 1)];
    let out = transfer(2 * MIB, BROADBAND, drop_transmissions(plan));
    let one = transfer(2 * MIB, BROADBAND, drop_transmissions(&[(40, 1)]));
    assert_eq!(out.t3_timeouts, 0, "a T3 timeout was needed");
    assert_eq!(out.fast_retransmits, 5);
    // One window's losses halve cwnd once, and are all resent in the same round trip.
    // Halving it again per hole, or a timeout, costs far more than this.
    assert!(
        out.elapsed < one.elapsed + 4 * 2 * BROADBAND.one_way,
        "{:?} with five holes, {:?} with one",
        out.elapsed,
        one.elapsed
    );
}

#[test]
fn a_lost_retransmission_after_a_timeout_does_not_need_another_timeout() {
    // The first and second transmission are lost, the third one too; whatever timeout
    // repairs the hole, the copies lost after it are repaired by SACKs.
    let plan = &[(40, 1), (40, 2), (40, 3), (41, 1), (41, 2)];
    let out = transfer(2 * MIB, BROADBAND, drop_transmissions(plan));
    assert!(out.t3_timeouts <= 1, "{} T3 timeouts", out.t3_timeouts);
    assert!(out.elapsed < Duration::from_secs(2), "took {:?}", out.elapsed);
}

#[test]
fn a_lone_message_whose_packet_is_lost_is_resent_by_a_probe_not_a_timeout() {
    // Nothing follows it, so no SACK can report it missing.
    let out = transfer(1000, BROADBAND, drop_transmissions(&[(0, 1)]));
    assert_eq!(out.t3_timeouts, 0, "a T3 timeout was needed");
    // Two round trips of probe timeout and one to deliver: well under RTO.Min (400 ms).
    assert!(out.elapsed < Duration::from_millis(120), "took {:?}", out.elapsed);
}

#[test]
fn a_lost_tail_of_a_transfer_is_resent_by_a_probe_not_a_timeout() {
    // 64 KiB is 55 chunks: the last two are lost.
    let out = transfer(MESSAGE, BROADBAND, drop_transmissions(&[(53, 1), (54, 1)]));
    assert_eq!(out.t3_timeouts, 0, "a T3 timeout was needed");
    assert!(out.elapsed < Duration::from_millis(200), "took {:?}", out.elapsed);
}

/// Random loss both ways at 20 ms RTT: the transfer keeps at least a share of what a
/// loss-based congestion controller gets on such a path, MSS / RTT · 1.22 / √p (Mathis et
/// al.), and timeouts stay rare.
fn keeps_the_pipe_full_under_random_loss(p: f64, path: Path) {
    let total = 8 * MIB;
    let rtt = 2 * path.one_way;
    let mathis = 1200.0 / rtt.as_secs_f64() * 1.22 / p.sqrt() / MIB as f64;
    for seed in 1..=3 {
        let out = transfer(total, path, random_loss(p, seed));
        let rate = out.mib_per_s(total);
        std::println!(
            "loss {:.1} % RTT {rtt:?} seed {seed}: {rate:.2} MiB/s (Mathis {mathis:.2}), {} T3, {} fast retransmits, {:?}",
            p * 100.0,
            out.t3_timeouts,
            out.fast_retransmits,
            out.elapsed
        );
        assert!(rate > mathis / 3.0, "{rate:.2} MiB/s, Mathis {mathis:.2} MiB/s");
        let lost = p * total as f64 / 1200.0;
        assert!(
            (out.t3_timeouts as f64) < 1.0 + lost / 20.0,
            "{} T3 timeouts for ~{lost:.0} lost chunks",
            out.t3_timeouts
        );
    }
}

#[test]
fn random_loss_half_a_percent() {
    keeps_the_pipe_full_under_random_loss(0.005, LAN);
    keeps_the_pipe_full_under_random_loss(0.005, BROADBAND);
}

#[test]
fn random_loss_one_percent() {
    keeps_the_pipe_full_under_random_loss(0.01, LAN);
    keeps_the_pipe_full_under_random_loss(0.01, BROADBAND);
}

#[test]
fn random_loss_two_percent() {
    keeps_the_pipe_full_under_random_loss(0.02, LAN);
    keeps_the_pipe_full_under_random_loss(0.02, BROADBAND);
}
