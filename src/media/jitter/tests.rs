//! The jitter buffer on a simulated clock: a sender encoding a tone every 20 ms (on a clock
//! that may run fast or slow), a network with delay, jitter, loss and reordering, and a
//! receiver pulling a frame every 20 ms.

use super::*;
use crate::media::codec::Encoder;
use crate::media::signal::{Tone, dominant_frequency};

struct Net {
    /// Extra delay of each packet: uniform in 0..jitter_ms, drawn per packet.
    jitter_ms: f64,
    loss: f64,
    /// Swap each pair of packets with this probability.
    reorder: f64,
    /// The sender's clock runs this much fast (0.005 = 0.5 %).
    drift: f64,
    /// A stall of the path from..to (ms on the simulated clock): what would arrive in it
    /// arrives at its end, all at once.
    stall: Option<(f64, f64)>,
}

const CALM: Net = Net { jitter_ms: 0.0, loss: 0.0, reorder: 0.0, drift: 0.0, stall: None };

struct Sim {
    enc: Encoder,
    tone: Tone,
    jb: JitterBuffer,
    start: Instant,
    /// Sent packets not yet arrived: (arrival, ts, data).
    flying: Vec<(Instant, u64, Vec<u8>)>,
    seq: u64,
    sent_at: f64,
    now_ms: f64,
    seed: u64,
    out: Vec<f32>,
}

impl Sim {
    fn new() -> Self {
        Self {
            enc: Encoder::new().unwrap(),
            tone: Tone::new(440.0, 0.4),
            jb: JitterBuffer::new(Decoder::new().unwrap()),
            start: Instant::now(),
            flying: Vec::new(),
            seq: 0,
            sent_at: 0.0,
            now_ms: 0.0,
            seed: 0x5eed,
            out: Vec::new(),
        }
    }

    fn random(&mut self) -> f64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed >> 11) as f64 / (1u64 << 53) as f64
    }

    fn at(&self, ms: f64) -> Instant {
        self.start + Duration::from_secs_f64(ms / 1000.0)
    }

    /// Runs `seconds` of the call on `net`; the receiver's output goes to `self.out`.
    fn run(&mut self, seconds: f64, net: &Net) {
        let end = self.now_ms + seconds * 1000.0;
        let base_delay = 30.0;
        while self.now_ms < end {
            // The sender's frames due by now (its 20 ms are shorter when its clock is fast).
            while self.sent_at <= self.now_ms {
                let mut frame = [0.0; FRAME];
                self.tone.fill(&mut frame);
                let data = self.enc.encode(&frame).unwrap().to_vec();
                let ts = self.seq * FRAME as u64;
                self.seq += 1;
                let lost = self.random() < net.loss;
                let delay = base_delay + self.random() * net.jitter_ms;
                if !lost {
                    let mut arrival_ms = self.sent_at + delay;
                    if let Some((from, to)) = net.stall
                        && (from..to).contains(&arrival_ms)
                    {
                        arrival_ms = to;
                    }
                    let arrival = self.at(arrival_ms);
                    self.flying.push((arrival, ts, data));
                }
                if self.flying.len() >= 2 && self.random() < net.reorder {
                    let n = self.flying.len();
                    let (a, b) = (self.flying[n - 2].0, self.flying[n - 1].0);
                    self.flying[n - 2].0 = b;
                    self.flying[n - 1].0 = a;
                }
                self.sent_at += 20.0 / (1.0 + net.drift);
            }
            let now = self.at(self.now_ms);
            self.flying.sort_by_key(|(t, _, _)| *t);
            while self.flying.first().is_some_and(|(t, _, _)| *t <= now) {
                let (t, ts, data) = self.flying.remove(0);
                self.jb.insert(ts, &data, t);
            }
            let mut frame = [0.0; FRAME];
            self.jb.pull(&mut frame);
            self.out.extend_from_slice(&frame);
            self.now_ms += 20.0;
        }
    }

    /// The largest sample-to-sample step in the last `seconds` of output, against the tone's
    /// own (0.4 · 2π · 440 / 48000 ≈ 0.023): a click is a step far above it.
    fn max_step(&self, seconds: f64) -> f32 {
        let n = (seconds * 48_000.0) as usize;
        let tail = &self.out[self.out.len().saturating_sub(n)..];
        tail.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max)
    }
}

#[test]
fn a_calm_network_plays_everything_with_a_short_delay_and_no_concealment() {
    let mut s = Sim::new();
    s.run(10.0, &CALM);
    let st = s.jb.stats();
    assert_eq!((st.lost, st.concealed_ms, st.late, st.dropped), (0, 0, 0, 0), "{st:?}");
    assert!(s.jb.target_ms() <= 35.0, "target {}", s.jb.target_ms());
    // After a pull one frame waits (and at most the one that just came with it).
    assert!(s.jb.level_ms() <= 40.0, "level {}", s.jb.level_ms());
    let f = dominant_frequency(&s.out, 48_000).unwrap();
    assert!((f - 440.0).abs() < 3.0, "{f}");
    assert!(s.max_step(9.0) < 0.04, "a click: {}", s.max_step(9.0));
}

#[test]
fn the_delay_follows_the_jitter_up_and_back_down() {
    let mut s = Sim::new();
    s.run(5.0, &CALM);
    let calm = s.jb.target_ms();
    s.run(10.0, &Net { jitter_ms: 120.0, ..CALM });
    let jittery = s.jb.target_ms();
    let late_during_jitter = s.jb.stats().late;
    assert!(jittery > 120.0, "target under 120 ms of jitter: {jittery}");
    assert!(s.jb.level_ms() > 60.0, "the buffer grew toward it: {}", s.jb.level_ms());
    // Most packets were in time once the target grew (5 % of 500 is 25).
    assert!(late_during_jitter < 40, "{:?}", s.jb.stats());
    s.run(15.0, &CALM);
    let calmed = s.jb.target_ms();
    assert!(
        calmed < 50.0 && calmed < jittery / 2.5,
        "target after calm: {calmed} (was {jittery}, {calm} at first)"
    );
    assert!(s.jb.level_ms() < 100.0, "the buffer shrank by accelerating: {}", s.jb.level_ms());
    assert!(s.jb.stats().accelerated_ms > 50, "{:?}", s.jb.stats());
    assert!(s.max_step(14.0) < 0.04, "a click while shrinking: {}", s.max_step(14.0));
}

#[test]
fn loss_is_recovered_from_fec_or_concealed_and_the_tone_goes_on() {
    let mut s = Sim::new();
    s.run(20.0, &Net { loss: 0.10, ..CALM });
    let st = s.jb.stats();
    assert!((70..=140).contains(&st.lost), "about 10 % of 1000 frames: {st:?}");
    assert!(st.recovered_fec > st.lost / 2, "most single losses come back from FEC: {st:?}");
    assert!(st.concealed_ms > 0, "{st:?}");
    let f = dominant_frequency(&s.out, 48_000).unwrap();
    assert!((f - 440.0).abs() < 3.0, "{f}");
}

#[test]
fn a_stall_of_the_path_is_concealed_and_then_everything_it_held_is_played() {
    let mut s = Sim::new();
    s.run(3.0, &CALM);
    let before = s.jb.stats();
    // 70 ms in which nothing arrives, then the three packets it held at once (a Wi-Fi hiccup,
    // or the sender's thread not scheduled).
    let stall = Some((s.now_ms + 5.0, s.now_ms + 75.0));
    s.run(5.0, &Net { stall, ..CALM });
    let st = s.jb.stats();
    assert_eq!((st.lost, st.late, st.dropped), (0, 0, 0), "the late packets were played: {st:?}");
    let concealed = st.concealed_ms - before.concealed_ms;
    assert!((20..=80).contains(&concealed), "the dry spell was concealed: {st:?}");
    assert!(st.accelerated_ms > before.accelerated_ms, "and taken back afterwards: {st:?}");
    assert!(s.jb.level_ms() <= 40.0, "back to its calm level: {}", s.jb.level_ms());
    let f = dominant_frequency(&s.out, 48_000).unwrap();
    assert!((f - 440.0).abs() < 3.0, "{f}");
}

#[test]
fn reordered_packets_are_played_without_concealment() {
    let mut s = Sim::new();
    s.run(20.0, &Net { reorder: 0.2, jitter_ms: 10.0, ..CALM });
    let st = s.jb.stats();
    // A fifth of the packets overtaken by their successor: most are put back in order in
    // time. A calm buffer holds one frame in hand, so one that comes more than a frame late
    // has its turn come first and is rebuilt from its successor's FEC: played, never
    // concealed, and rare.
    assert_eq!(st.concealed_ms, 0, "{st:?}");
    assert_eq!(st.lost, st.recovered_fec, "{st:?}");
    assert!(st.lost * 100 <= st.packets, "at most 1 % rebuilt: {st:?}");
}

#[test]
fn a_sender_clock_that_runs_fast_or_slow_is_absorbed() {
    for drift in [0.01, -0.01] {
        let mut s = Sim::new();
        s.run(60.0, &Net { drift, ..CALM });
        let st = s.jb.stats();
        // 1 % of 60 s is 600 ms: all of it stretched away, nothing dropped, the buffer in bounds.
        assert!(s.jb.level_ms() < 100.0, "drift {drift}: level {}", s.jb.level_ms());
        assert_eq!(st.dropped, 0, "drift {drift}: {st:?}");
        if drift > 0.0 {
            assert!(st.accelerated_ms > 400, "{st:?}");
        } else {
            assert!(st.expanded_ms > 400, "{st:?}");
            assert!(st.concealed_ms < 200, "a slow sender is stretched, not concealed: {st:?}");
        }
        assert!(s.max_step(50.0) < 0.04, "drift {drift}: a click {}", s.max_step(50.0));
    }
}

#[test]
fn a_sender_that_goes_quiet_and_comes_back_is_buffered_again() {
    let mut s = Sim::new();
    s.run(3.0, &CALM);
    // Two seconds without packets (the sender muted with DTX, or its network went away).
    s.run(2.0, &Net { loss: 1.0, ..CALM });
    let st = s.jb.stats();
    assert!(st.concealed_ms <= MAX_CONCEAL_MS + 20, "concealment stops: {st:?}");
    s.run(3.0, &CALM);
    let f = dominant_frequency(&s.out, 48_000).unwrap();
    assert!((f - 440.0).abs() < 3.0, "{f}");
    assert!(s.jb.level_ms() < 80.0, "{}", s.jb.level_ms());
}

#[test]
fn garbage_and_floods_are_dropped_and_counted() {
    let mut jb = JitterBuffer::new(Decoder::new().unwrap());
    let t = Instant::now();
    jb.insert(0, &[], t);
    jb.insert(960, &vec![0u8; MAX_PACKET + 1], t);
    for i in 0..(MAX_PACKETS as u64 * 3) {
        jb.insert(i * 960, &[0xff, 0xff, 0xff], t);
    }
    assert!(jb.packets.len() <= MAX_PACKETS);
    let mut out = [0.0; FRAME];
    for _ in 0..200 {
        jb.pull(&mut out);
    }
    assert!(out.iter().all(|s| s.is_finite()));
    let st = jb.stats();
    assert!(st.dropped >= 2 + MAX_PACKETS as u64, "{st:?}");
    // A timestamp from another stream starts the buffer over rather than waiting hours.
    jb.insert(u64::MAX / 2, &[0xff, 0xff, 0xff], t);
    assert_eq!(jb.packets.len(), 1);
}
