#!/usr/bin/env node
// Chromium's own mesh audio call on this machine, the reference for Kith's call CPU figures.
//
//   node call_bench.mjs N WAV [--video WxH]
//
// With --video, each page also sends its fake camera (Chromium's moving test picture) at WxH
// and 30 fps, H.264 preferred (what Kith sends), and plays every remote video in a <video>
// element; `stats` then counts the video frames each page decoded from each other.
//
// One headless Chromium, N pages (each its own renderer process, as N people's browsers
// would each have one), a full mesh of RTCPeerConnections between them, each page sending
// its fake microphone (WAV, looped: --use-file-for-fake-audio-capture, processing off) to
// every other page and playing every remote track through an <audio> element, as a web
// call does. Signalling goes through this process; only loopback host candidates are used.
//
// stdout, one JSON line each:
//   {"type":"connected","pages":N,"ms":...}      every pair's audio is flowing
//   {"type":"stats","inbound":[...],"outbound":[...]}   after "stats" on stdin
// "quit" on stdin (or EOF) closes the browser. The caller measures the CPU of Chromium's
// processes between the two.

import readline from 'node:readline';
import util from 'node:util';
import { launch, PAGE_URL } from './lib.mjs';

const [nArg, wav, ...rest] = process.argv.slice(2);
const N = Number(nArg);
const videoAt = rest[0] === '--video' ? rest[1] : null;
const video = videoAt ? videoAt.split('x').map(Number) : null;
if (!Number.isInteger(N) || N < 2 || !wav || (rest.length && !(video && video.length === 2 && video.every((v) => v > 0)))) {
  process.stderr.write('usage: node call_bench.mjs N WAV [--video WxH]\n');
  process.exit(2);
}
const log = (...a) => process.stderr.write(`[call_bench] ${util.format(...a)}\n`);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// Page side: one RTCPeerConnection per other page, keyed by its index.
function callPage([me, video]) {
  const isLoopback = (line) => {
    const f = line.replace(/^a=/, '').trim().split(/\s+/);
    return (f[2] || '').toLowerCase() === 'udp' && (/^127\./.test(f[4] || '') || f[4] === '::1');
  };
  const keepLoopback = (sdp) =>
    sdp
      .split(/\r?\n/)
      .filter((l) => !l.startsWith('a=candidate:') || isLoopback(l))
      .join('\r\n');
  const S = { mic: null, camera: null, pcs: new Map(), players: [] };
  async function camera() {
    if (!S.camera) {
      const s = await navigator.mediaDevices.getUserMedia({
        video: { width: { exact: video[0] }, height: { exact: video[1] }, frameRate: 30 },
      });
      S.camera = s.getVideoTracks()[0];
    }
    return S.camera;
  }
  // H.264 first, as Kith sends it (constrained baseline, packetization mode 1 first).
  function preferH264(pc) {
    const codecs = RTCRtpReceiver.getCapabilities('video').codecs;
    const rank = (c) =>
      c.mimeType === 'video/H264' ? (/42e01f/.test(c.sdpFmtpLine || '') && /packetization-mode=1/.test(c.sdpFmtpLine || '') ? 0 : 1) : 2;
    const sorted = [...codecs].sort((a, b) => rank(a) - rank(b));
    for (const t of pc.getTransceivers()) {
      if (t.receiver.track.kind === 'video') t.setCodecPreferences(sorted);
    }
  }
  async function mic() {
    if (!S.mic) {
      const s = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
      S.mic = s.getAudioTracks()[0];
    }
    return S.mic;
  }
  // A complete description (every candidate gathered), loopback candidates only.
  async function settled(pc) {
    if (pc.iceGatheringState !== 'complete') {
      await new Promise((r) => pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r()));
    }
    return { type: pc.localDescription.type, sdp: keepLoopback(pc.localDescription.sdp) };
  }
  async function pcFor(other) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTrack(await mic());
    if (video) {
      pc.addTrack(await camera());
      preferH264(pc);
    }
    pc.ontrack = (e) => {
      const a = e.track.kind === 'video' ? document.createElement('video') : new Audio();
      a.muted = e.track.kind === 'video';
      a.srcObject = new MediaStream([e.track]);
      if (e.track.kind === 'video') document.body.appendChild(a);
      a.play().catch(() => {});
      S.players.push(a);
    };
    S.pcs.set(other, pc);
    return pc;
  }
  window.call = {
    async offer(other) {
      const pc = await pcFor(other);
      await pc.setLocalDescription(await pc.createOffer());
      return settled(pc);
    },
    async answer(other, offer) {
      const pc = await pcFor(other);
      await pc.setRemoteDescription(offer);
      await pc.setLocalDescription(await pc.createAnswer());
      return settled(pc);
    },
    async accept(other, answer) {
      await S.pcs.get(other).setRemoteDescription(answer);
    },
    // Packets received from and sent to each other page.
    async stats() {
      const inbound = [];
      const outbound = [];
      for (const [other, pc] of S.pcs) {
        (await pc.getStats()).forEach((r) => {
          if (r.type === 'inbound-rtp' && r.kind === 'audio') inbound.push({ from: other, packets: r.packetsReceived, lost: r.packetsLost, jitter_buffer_ms: r.jitterBufferEmittedCount ? (1000 * r.jitterBufferDelay) / r.jitterBufferEmittedCount : null });
          if (r.type === 'outbound-rtp' && r.kind === 'audio') outbound.push({ to: other, packets: r.packetsSent });
          if (r.type === 'inbound-rtp' && r.kind === 'video') inbound.push({ from: other, video: true, frames: r.framesDecoded, width: r.frameWidth, height: r.frameHeight });
          if (r.type === 'outbound-rtp' && r.kind === 'video') outbound.push({ to: other, video: true, frames: r.framesEncoded, encoder: r.encoderImplementation, width: r.frameWidth });
        });
      }
      return { me, inbound, outbound };
    },
  };
}

const t0 = performance.now();
const browser = await launch({
  log,
  // The fake camera runs at 20 fps unless told; a call's camera at 30.
  args: [
    `--use-file-for-fake-audio-capture=${wav}`,
    '--autoplay-policy=no-user-gesture-required',
    ...(video ? ['--use-fake-device-for-media-stream=fps=30'] : []),
  ],
});
const pages = [];
for (let i = 0; i < N; i++) {
  const page = i === 0 ? await browser.firstPage() : await browser.newPage();
  await page.goto(PAGE_URL);
  await page.evaluate(callPage, [i, video]);
  pages.push(page);
}
// Every pair: the lower index offers.
for (let i = 0; i < N; i++) {
  for (let j = i + 1; j < N; j++) {
    const offer = await pages[i].evaluate((o) => window.call.offer(o), j);
    const answer = await pages[j].evaluate(([o, d]) => window.call.answer(o, d), [i, offer]);
    await pages[i].evaluate(([o, d]) => window.call.accept(o, d), [j, answer]);
  }
}
// Connected when every page receives audio from every other.
const flowing = async () => {
  for (const p of pages) {
    const s = await p.evaluate(() => window.call.stats());
    const audio = s.inbound.filter((r) => !r.video);
    const frames = s.inbound.filter((r) => r.video);
    if (audio.length < N - 1 || audio.some((r) => !(r.packets > 25))) return false;
    if (video && (frames.length < N - 1 || frames.some((r) => !(r.frames > 10)))) return false;
  }
  return true;
};
const deadline = performance.now() + 60_000;
while (!(await flowing())) {
  if (performance.now() > deadline) {
    out({ type: 'error', message: 'audio did not flow between every pair of pages' });
    await browser.close();
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 250));
}
out({ type: 'connected', pages: N, ms: Math.round(performance.now() - t0) });

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (line.trim() === 'stats') {
    const all = [];
    for (const p of pages) all.push(await p.evaluate(() => window.call.stats()));
    out({ type: 'stats', pages: all });
  } else if (line.trim() === 'quit') {
    break;
  }
}
await browser.close();
process.exit(0);
