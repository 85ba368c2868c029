#!/usr/bin/env node
// Chromium-to-Chromium WebRTC data-channel baseline on this machine.
//
//   node bench.mjs [SIZE_MiB=100] [ROUNDS=3] [--topology=pages|browsers|same-page] [--verbose]
//
// Default topology `pages`: one headless Chromium, two pages (tabs) of the same
// browser context (each in its own renderer process), one RTCPeerConnection in
// each, signalled through this node process (no STUN/TURN, host candidates
// only; only loopback UDP candidates are exchanged, so all traffic is
// 127.0.0.1 / ::1).  `browsers` uses two Chromium instances, `same-page` both
// peer connections in one page.  Per round, a fresh pair of peer connections:
//
//   connect_ms       offerer's createOffer() call -> data channel `open` on
//                    both sides (includes the signalling hops through node)
//   throughput_mib_s SIZE MiB sent on a reliable ordered channel in 64 KiB
//                    messages with backpressure (bufferedAmountLowThreshold /
//                    bufferedamountlow), timed on the receiver from the first
//                    message to the last byte
//
// Prints exactly one JSON line on stdout; progress goes to stderr.

import util from 'node:util';
import os from 'node:os';
import { launch, PAGE_URL } from './lib.mjs';

const usage = 'usage: node bench.mjs [SIZE_MiB=100] [ROUNDS=3] [--topology=pages|browsers|same-page] [--verbose]';
const pos = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const verbose = process.argv.includes('--verbose') || process.argv.includes('-v');
const topoArg = process.argv.find((a) => a.startsWith('--topology='));
const TOPOLOGY = topoArg ? topoArg.slice('--topology='.length) : 'pages';
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stderr.write(usage + '\n');
  process.exit(0);
}
const SIZE_MIB = pos[0] !== undefined ? Number(pos[0]) : 100;
const ROUNDS = pos[1] !== undefined ? Number(pos[1]) : 3;
if (!(SIZE_MIB > 0) || !Number.isInteger(ROUNDS) || ROUNDS < 1 || !['pages', 'browsers', 'same-page'].includes(TOPOLOGY)) {
  process.stderr.write(usage + '\n');
  process.exit(2);
}
const MSG_BYTES = 64 * 1024;
const LOW_WATER = 1 * 1024 * 1024; // bufferedAmountLowThreshold
const HIGH_WATER = 4 * 1024 * 1024; // stop calling send() above this
const TOTAL_BYTES = Math.round(SIZE_MIB * 1024 * 1024);

const log = (...a) => process.stderr.write(`[bench] ${util.format(...a)}\n`);
const vlog = (...a) => verbose && log(...a);
const nowNode = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------
// Page side (serialised into each page).
function benchPage(name) {
  const now = () => performance.timeOrigin + performance.now();
  const isLoopback = (a) => /^127\./.test(a) || a === '::1';
  const S = { pc: null, dc: null, pending: [], openAt: 0, opened: null };
  const signal = (msg) => window.benchSignal(name, msg);

  function configure(dc, resolveOpen) {
    S.dc = dc;
    dc.binaryType = 'arraybuffer';
    const mark = () => {
      if (!S.openAt) S.openAt = now();
      resolveOpen(S.openAt);
    };
    if (dc.readyState === 'open') mark();
    else dc.onopen = mark;
  }

  window.bench = window.bench || {};
  window.bench[name] = {
    now,
    reset(role) {
      if (S.dc) S.dc.close();
      if (S.pc) S.pc.close();
      S.pc = null;
      S.dc = null;
      S.pending = [];
      S.openAt = 0;
      const pc = new RTCPeerConnection({ iceServers: [] });
      S.pc = pc;
      let resolveOpen;
      S.opened = new Promise((r) => (resolveOpen = r));
      S.resolveOpen = resolveOpen;
      pc.onicecandidate = (e) => {
        if (!e.candidate || !e.candidate.candidate) return;
        const f = e.candidate.candidate.split(' ');
        if (f[2] !== 'udp' || !isLoopback(f[4])) return; // loopback UDP only
        signal({ type: 'candidate', candidate: e.candidate.candidate });
      };
      if (role === 'answerer') pc.ondatachannel = (e) => configure(e.channel, resolveOpen);
    },
    async start() {
      const pc = S.pc;
      const dc = pc.createDataChannel('bench', { ordered: true });
      configure(dc, S.resolveOpen);
      const t0 = now(); // createOffer() call
      await pc.setLocalDescription(await pc.createOffer());
      signal({ type: 'offer', sdp: pc.localDescription.sdp });
      return t0;
    },
    async signal(msg) {
      const pc = S.pc;
      if (msg.type === 'offer') {
        await pc.setRemoteDescription(msg);
        await pc.setLocalDescription(await pc.createAnswer());
        signal({ type: 'answer', sdp: pc.localDescription.sdp });
      } else if (msg.type === 'answer') {
        await pc.setRemoteDescription(msg);
      } else if (msg.type === 'candidate') {
        if (!pc.remoteDescription) {
          S.pending.push(msg.candidate);
          return;
        }
        await pc.addIceCandidate({ candidate: msg.candidate, sdpMid: '0', sdpMLineIndex: 0 });
        return;
      }
      for (const c of S.pending.splice(0)) await pc.addIceCandidate({ candidate: c, sdpMid: '0', sdpMLineIndex: 0 });
    },
    async waitOpen(timeoutMs) {
      const t = new Promise((_, rej) => setTimeout(() => rej(new Error('data channel did not open')), timeoutMs));
      const at = await Promise.race([S.opened, t]);
      return { at, maxMessageSize: S.pc.sctp ? S.pc.sctp.maxMessageSize : null };
    },
    armReceive(total) {
      const rx = { bytes: 0, msgs: 0, first: 0, last: 0 };
      S.rxDone = new Promise((resolve) => {
        S.dc.onmessage = (e) => {
          if (!rx.first) rx.first = now();
          rx.bytes += e.data.byteLength;
          rx.msgs++;
          if (rx.bytes >= total) {
            rx.last = now();
            S.dc.onmessage = null;
            resolve(rx);
          }
        };
      });
    },
    async waitReceive(timeoutMs) {
      const t = new Promise((_, rej) => setTimeout(() => rej(new Error('receive timed out')), timeoutMs));
      return Promise.race([S.rxDone, t]);
    },
    async send([total, msgBytes, low, high]) {
      const dc = S.dc;
      dc.bufferedAmountLowThreshold = low;
      const buf = new Uint8Array(msgBytes);
      for (let off = 0; off < buf.length; off += 65536) crypto.getRandomValues(buf.subarray(off, off + 65536));
      let sent = 0;
      let waits = 0;
      const t0 = now();
      while (sent < total) {
        if (dc.bufferedAmount > high) {
          waits++;
          await new Promise((r) => dc.addEventListener('bufferedamountlow', r, { once: true }));
          continue;
        }
        const n = Math.min(msgBytes, total - sent);
        dc.send(n === msgBytes ? buf : buf.subarray(0, n));
        sent += n;
      }
      return { sent, waits, queuedMs: now() - t0 };
    },
    close() {
      if (S.dc) S.dc.close();
      if (S.pc) S.pc.close();
      S.pc = null;
      S.dc = null;
    },
  };
}

// ---------------------------------------------------------------------------

async function clockOffset(peer) {
  // page clock - node clock, from the sample with the smallest round trip.
  let best = null;
  for (let i = 0; i < 7; i++) {
    const a = nowNode();
    const p = await peer.call('now');
    const b = nowNode();
    if (!best || b - a < best.rtt) best = { rtt: b - a, off: p - (a + b) / 2 };
  }
  return best.off;
}

const TOPOLOGIES = {
  pages: 'one browser, two pages',
  browsers: 'two browsers, one page each',
  'same-page': 'one browser, one page, two peer connections',
};

async function main() {
  const t0 = performance.now();
  const browsers = [];
  const cleanup = async () => {
    for (const b of browsers) await b.close();
  };
  process.on('SIGINT', () => cleanup().then(() => process.exit(130)));
  process.on('SIGTERM', () => cleanup().then(() => process.exit(143)));
  try {
    browsers.push(await launch({ log: vlog }));
    let pageA, pageB;
    if (TOPOLOGY === 'browsers') {
      browsers.push(await launch({ log: vlog }));
      pageA = await browsers[0].firstPage();
      pageB = await browsers[1].firstPage();
    } else {
      pageA = await browsers[0].firstPage();
      pageB = TOPOLOGY === 'same-page' ? pageA : await browsers[0].newPage();
    }
    const peers = {};
    for (const [name, page] of [['A', pageA], ['B', pageB]]) {
      peers[name] = {
        page,
        call: (fn, arg) => page.evaluate(([n, f, a]) => window.bench[n][f](a), [name, fn, arg]),
      };
    }
    // Signalling through node, one ordered queue per destination peer.
    const queues = { A: Promise.resolve(), B: Promise.resolve() };
    let signalError = null;
    const onSignal = (from, msg) => {
      const to = from === 'A' ? 'B' : 'A';
      vlog(`${from} -> ${to}: ${msg.type}`);
      queues[to] = queues[to]
        .then(() => peers[to].call('signal', msg))
        .catch((e) => {
          signalError = signalError || e;
          log(`signalling to ${to} failed: ${e.message}`);
        });
    };
    for (const page of new Set([pageA, pageB])) {
      await page.exposeFunction('benchSignal', onSignal);
      await page.goto(PAGE_URL);
    }
    await pageA.evaluate(benchPage, 'A');
    await pageB.evaluate(benchPage, 'B');
    const { A, B } = peers;
    log(`Chromium ${browsers[0].version} up (${TOPOLOGIES[TOPOLOGY]}) in ${(performance.now() - t0).toFixed(0)} ms; ` +
      `${SIZE_MIB} MiB x ${ROUNDS} rounds, ${MSG_BYTES / 1024} KiB messages, ` +
      `low/high water ${LOW_WATER >> 20}/${HIGH_WATER >> 20} MiB`);

    const connect = [];
    const thr = [];
    let maxMessageSize = null;
    for (let round = 1; round <= ROUNDS; round++) {
      const offA = await clockOffset(A);
      const offB = await clockOffset(B);
      await A.call('reset', 'offerer');
      await B.call('reset', 'answerer');
      const tStart = (await A.call('start')) - offA;
      const [oa, ob] = await Promise.all([A.call('waitOpen', 30_000), B.call('waitOpen', 30_000)]);
      if (signalError) throw signalError;
      maxMessageSize = oa.maxMessageSize;
      const cms = Math.max(oa.at - offA, ob.at - offB) - tStart;
      connect.push(+cms.toFixed(1));

      await B.call('armReceive', TOTAL_BYTES);
      const [tx, rx] = await Promise.all([
        A.call('send', [TOTAL_BYTES, MSG_BYTES, LOW_WATER, HIGH_WATER]),
        B.call('waitReceive', 300_000),
      ]);
      const secs = (rx.last - rx.first) / 1000;
      const mibs = TOTAL_BYTES / (1024 * 1024) / secs;
      thr.push(+mibs.toFixed(2));
      log(`round ${round}: connect ${cms.toFixed(1)} ms; ${rx.bytes} bytes in ${rx.msgs} msgs, ` +
        `${secs.toFixed(3)} s -> ${mibs.toFixed(2)} MiB/s (sender waited ${tx.waits}x for bufferedamountlow; ` +
        `load ${os.loadavg()[0].toFixed(2)})`);
      await A.call('close');
      await B.call('close');
      await new Promise((r) => setTimeout(r, 200));
    }
    process.stdout.write(
      JSON.stringify({
        connect_ms: connect,
        throughput_mib_s: thr,
        size_mib: SIZE_MIB,
        rounds: ROUNDS,
        msg_kib: MSG_BYTES / 1024,
        sctp_max_message_size: maxMessageSize,
        chromium: browsers[0].version,
        topology: TOPOLOGIES[TOPOLOGY],
        loadavg_1m: +os.loadavg()[0].toFixed(2),
      }) + '\n',
    );
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    log(`failed: ${e.stack || e.message}`);
    process.exit(1);
  },
);
