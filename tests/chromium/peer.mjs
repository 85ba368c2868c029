#!/usr/bin/env node
// Headless Debian Chromium as an independent WebRTC data-channel peer,
// driven by JSON lines on stdin/stdout.  See README.md for the protocol.
//
//   node peer.mjs [--echo] [--all-candidates] [--audio-file=F.wav] [--video] [--verbose]
//
// With --audio-file, Chromium's fake microphone plays F.wav (looped): an offer with an audio
// section is answered sendrecv with that microphone, and what arrives on the audio track is
// analysed by WebAudio (`audio_stats`). With --video, a video section is answered sendrecv
// with Chromium's fake camera at 640x360, what arrives plays in a <video> element, and
// `video_stats` reports both directions.
//
// stdout carries only JSON lines; everything else goes to stderr.

import readline from 'node:readline';
import util from 'node:util';
import { launch, PAGE_URL } from './lib.mjs';

const argv = process.argv.slice(2);
const known = new Set(['--echo', '--all-candidates', '--video', '--verbose', '-v', '--help', '-h']);
for (const a of argv) {
  if (!known.has(a) && !a.startsWith('--audio-file=')) {
    process.stderr.write(`peer.mjs: unknown argument ${a}\n`);
    process.exit(2);
  }
}
if (argv.includes('--help') || argv.includes('-h')) {
  process.stderr.write('usage: node peer.mjs [--echo] [--all-candidates] [--audio-file=F.wav] [--video] [--verbose]\n');
  process.exit(0);
}
const opts = {
  echo: argv.includes('--echo'),
  allCandidates: argv.includes('--all-candidates'),
  verbose: argv.includes('--verbose') || argv.includes('-v') || !!process.env.KITH_PEER_VERBOSE,
  video: argv.includes('--video'),
  audioFile: (argv.find((a) => a.startsWith('--audio-file=')) || '').slice('--audio-file='.length) || null,
};

const tag = `[peer ${process.pid}]`;
const log = (...a) => process.stderr.write(`${tag} ${util.format(...a)}\n`);
const vlog = (...a) => opts.verbose && log(...a);
const out = (obj) => {
  process.stdout.write(JSON.stringify(obj) + '\n');
};

// ---------------------------------------------------------------------------
// Page side.  Serialised by Playwright and run inside the page; must be
// self-contained.  Everything the page reports goes through window.kithEmit
// (in order), so e.g. an answer is always emitted before its candidates.
function pageMain(opts) {
  const emit = (o) => window.kithEmit(o);
  const log = (s) => window.kithLog(String(s));
  const LABELS = ['kith-chat', 'kith-file'];
  const S = {
    pc: null,
    channels: new Map(), // label -> RTCDataChannel
    pendingRemote: [], // remote candidates received before the remote description
    localSent: false, // local description emitted?
    pendingLocal: [], // local candidates gathered before the description was emitted
    lastState: '',
    mic: null, // the fake microphone's track, once asked for
    audio: null, // { ctx, analyser, element } for the remote audio track
    camera: null, // the fake camera's track, once asked for
    screen: null, // the <video> element playing the remote video track
  };

  // Chromium's fake camera (a moving test picture), at a call's size.
  async function cameraTrack() {
    if (!S.camera) {
      const stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { exact: 640 }, height: { exact: 360 }, frameRate: 30 },
      });
      S.camera = stream.getVideoTracks()[0];
    }
    return S.camera;
  }

  // Every video section the offer brings is answered sendrecv with the camera.
  async function sendVideoOn(pc) {
    if (!opts.video) return;
    for (const t of pc.getTransceivers()) {
      if (t.receiver.track.kind !== 'video' || t.stopped) continue;
      if (!t.sender.track) await t.sender.replaceTrack(await cameraTrack());
      t.direction = 'sendrecv';
    }
  }

  // The remote video plays in an element, as a page shows it (and decodes it).
  function watch(track) {
    if (S.screen) return;
    const element = document.createElement('video');
    element.muted = true;
    element.autoplay = true;
    element.srcObject = new MediaStream([track]);
    document.body.appendChild(element);
    element.play().catch((e) => log(`video element: ${e.message}`));
    S.screen = element;
  }

  // Both directions of the video, from getStats and the element.
  async function videoStats() {
    const ev = { type: 'video', shown: null };
    if (S.screen) ev.shown = [S.screen.videoWidth, S.screen.videoHeight];
    const stats = await S.pc.getStats();
    const codecOf = (r) => (r.codecId && stats.get(r.codecId) ? stats.get(r.codecId).mimeType : null);
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        ev.received = {
          codec: codecOf(r),
          frames_decoded: r.framesDecoded,
          width: r.frameWidth,
          height: r.frameHeight,
          fps: r.framesPerSecond,
          plis_sent: r.pliCount,
          nacks_sent: r.nackCount,
        };
      }
      if (r.type === 'outbound-rtp' && r.kind === 'video') {
        ev.sent = {
          codec: codecOf(r),
          frames_encoded: r.framesEncoded,
          width: r.frameWidth,
          height: r.frameHeight,
          encoder: r.encoderImplementation,
        };
      }
    });
    return ev;
  }

  // The fake microphone (the --audio-file WAV), without the processing that would change the
  // tone on its way.
  async function micTrack() {
    if (!S.mic) {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
      S.mic = stream.getAudioTracks()[0];
    }
    return S.mic;
  }

  // Every audio section the offer brings is answered sendrecv with the microphone.
  async function sendAudioOn(pc) {
    if (!opts.audioFile) return;
    for (const t of pc.getTransceivers()) {
      // An answer's direction is never more than the offer's: an inactive offer stays inactive.
      if (t.receiver.track.kind !== 'audio' || t.stopped) continue;
      if (!t.sender.track) await t.sender.replaceTrack(await micTrack());
      t.direction = 'sendrecv';
    }
  }

  // WebAudio analysis of the remote audio track. Chromium only pulls a remote WebRTC track
  // into WebAudio while a media element plays it too (a long-standing Chromium behaviour), so
  // a muted <audio> element plays it as well.
  function listen(track) {
    if (S.audio) return;
    const stream = new MediaStream([track]);
    const element = new Audio();
    element.muted = true;
    element.srcObject = stream;
    element.play().catch((e) => log(`audio element: ${e.message}`));
    const ctx = new AudioContext({ sampleRate: 48000 });
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 16384; // 2.9 Hz per bin at 48 kHz
    analyser.smoothingTimeConstant = 0;
    ctx.createMediaStreamSource(stream).connect(analyser);
    ctx.resume().catch((e) => log(`audio context: ${e.message}`));
    S.audio = { ctx, analyser, element };
  }

  // The strongest frequency between 100 Hz and 4 kHz (parabolic peak interpolation) and the
  // level, of the last fftSize samples; with the RTP counters from getStats.
  async function audioStats() {
    const ev = { type: 'audio', freq_hz: null, level_db: null, context: null };
    if (S.audio) {
      const { ctx, analyser } = S.audio;
      ev.context = ctx.state;
      const spectrum = new Float32Array(analyser.frequencyBinCount);
      analyser.getFloatFrequencyData(spectrum);
      const hz = ctx.sampleRate / analyser.fftSize;
      let best = -1;
      for (let i = Math.ceil(100 / hz); i < Math.min(spectrum.length - 1, 4000 / hz); i++) {
        if (best < 0 || spectrum[i] > spectrum[best]) best = i;
      }
      if (best > 0 && Number.isFinite(spectrum[best])) {
        const [a, b, c] = [spectrum[best - 1], spectrum[best], spectrum[best + 1]];
        const d = a - 2 * b + c;
        ev.freq_hz = (best + (d !== 0 ? (0.5 * (a - c)) / d : 0)) * hz;
      }
      const wave = new Float32Array(analyser.fftSize);
      analyser.getFloatTimeDomainData(wave);
      let sum = 0;
      for (const x of wave) sum += x * x;
      ev.level_db = 10 * Math.log10(sum / wave.length + 1e-12);
    }
    const stats = await S.pc.getStats();
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') {
        ev.packets_received = r.packetsReceived;
        ev.packets_lost = r.packetsLost;
        const codec = r.codecId && stats.get(r.codecId);
        if (codec) ev.codec = codec.mimeType;
      }
      if (r.type === 'outbound-rtp' && r.kind === 'audio') ev.packets_sent = r.packetsSent;
    });
    return ev;
  }

  const isLoopback = (a) => /^127\./.test(a) || a === '::1';
  const parseCand = (line) => {
    // candidate:<foundation> <component> <proto> <prio> <addr> <port> typ <type> ...
    const f = line.replace(/^a=/, '').trim().split(/\s+/);
    return { proto: (f[2] || '').toLowerCase(), addr: f[4] || '', port: f[5] || '', typ: f[7] || '' };
  };
  // By default only loopback UDP candidates are reported to the other side and
  // only loopback remote candidates are used, so this peer never sends to a
  // non-loopback address.  --all-candidates disables both filters.
  const localAllowed = (line) => {
    if (opts.allCandidates) return true;
    const c = parseCand(line);
    return c.proto === 'udp' && isLoopback(c.addr);
  };
  const remoteAllowed = (line) => opts.allCandidates || isLoopback(parseCand(line).addr);
  const filterRemoteSdp = (sdp) => {
    if (opts.allCandidates) return sdp;
    const lines = sdp.split(/\r?\n/);
    const kept = lines.filter((l) => {
      if (!l.startsWith('a=candidate:')) return true;
      if (remoteAllowed(l)) return true;
      log(`dropping non-loopback remote candidate from SDP: ${l}`);
      return false;
    });
    return kept.join('\r\n');
  };
  const firstMid = (sdp) => {
    const m = sdp.indexOf('\nm=');
    const rest = m >= 0 ? sdp.slice(m) : sdp;
    const mid = /\r?\na=mid:([^\r\n]*)/.exec(rest);
    return mid ? mid[1] : '0';
  };
  const fingerprint = (sdp) => {
    const m = /^a=fingerprint:(.+)$/m.exec(sdp);
    return m ? m[1].trim() : null;
  };
  const b64ToBytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));

  function reportState() {
    const pc = S.pc;
    if (!pc) return;
    const key = `${pc.iceConnectionState}/${pc.connectionState}`;
    if (key === S.lastState) return;
    S.lastState = key;
    emit({ type: 'state', ice: pc.iceConnectionState, connection: pc.connectionState });
  }

  function setupChannel(dc) {
    dc.binaryType = 'arraybuffer';
    S.channels.set(dc.label, dc);
    const label = dc.label;
    dc.onopen = () => {
      const ev = { type: 'open', label };
      const mms = S.pc && S.pc.sctp ? S.pc.sctp.maxMessageSize : undefined;
      if (mms !== undefined) ev.max_message_size = mms;
      emit(ev);
    };
    dc.onclose = () => emit({ type: 'close', label });
    dc.onerror = (e) => emit({ type: 'error', message: `data channel ${label}: ${e.error ? e.error.message : 'error'}` });
    dc.onmessage = (ev) => {
      if (typeof ev.data === 'string') {
        emit({ type: 'message', label, data: ev.data });
        // Echoes are never echoed again, so two --echo peers do not loop.
        if (opts.echo && !ev.data.startsWith('echo:')) sendOn(dc, 'echo:' + ev.data);
      } else {
        const buf = ev.data; // ArrayBuffer (binaryType above)
        const msg = { type: 'message', label, binary_len: buf.byteLength };
        // Small payloads travel back to the test whole, so it can compare bytes.
        if (buf.byteLength <= 65536) {
          let bin = '';
          const bytes = new Uint8Array(buf);
          for (let i = 0; i < bytes.length; i += 8192) bin += String.fromCharCode(...bytes.subarray(i, i + 8192));
          msg.b64 = btoa(bin);
        }
        emit(msg);
        // Binary echoes carry no marker: a payload identical to one this peer
        // sent itself on this channel (and not yet seen back) is taken as the
        // echo of it and not echoed again.
        if (opts.echo && !takeOwnEcho(label, new Uint8Array(buf))) sendOn(dc, buf);
      }
    };
  }

  // label -> [{ len, hash }] of binary payloads sent via the `send` command.
  const sentBinary = new Map();
  const fnv1a = (bytes) => {
    let h = 0x811c9dc5;
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
    return h >>> 0;
  };
  function rememberSent(label, bytes) {
    if (!opts.echo) return;
    const list = sentBinary.get(label) || [];
    list.push({ len: bytes.length, hash: fnv1a(bytes) });
    if (list.length > 256) list.shift();
    sentBinary.set(label, list);
  }
  function takeOwnEcho(label, bytes) {
    const list = sentBinary.get(label);
    if (!list || !list.length) return false;
    const hash = fnv1a(bytes);
    const i = list.findIndex((e) => e.len === bytes.length && e.hash === hash);
    if (i < 0) return false;
    list.splice(i, 1);
    return true;
  }

  function sendOn(dc, data) {
    try {
      dc.send(data);
    } catch (e) {
      emit({ type: 'error', message: `send on ${dc.label} failed: ${e.message}` });
    }
  }

  function ensurePc() {
    if (S.pc) return S.pc;
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.onicecandidate = (e) => {
      if (!e.candidate || !e.candidate.candidate) return; // end-of-candidates
      const line = e.candidate.candidate;
      if (!localAllowed(line)) {
        log(`not reporting local candidate: ${line}`);
        return;
      }
      const ev = { type: 'candidate', candidate: line };
      if (S.localSent) emit(ev);
      else S.pendingLocal.push(ev);
    };
    pc.onicecandidateerror = (e) => log(`icecandidateerror ${e.errorCode} ${e.errorText} ${e.url || ''}`);
    pc.oniceconnectionstatechange = reportState;
    pc.onconnectionstatechange = reportState;
    pc.onicegatheringstatechange = () => log(`ice gathering: ${pc.iceGatheringState}`);
    pc.ondatachannel = (e) => setupChannel(e.channel);
    pc.ontrack = (e) => {
      if (e.track.kind === 'audio') listen(e.track);
      if (e.track.kind === 'video') watch(e.track);
    };
    S.pc = pc;
    return pc;
  }

  function emitLocalDescription(pc) {
    const d = pc.localDescription;
    emit({ type: d.type, sdp: d.sdp });
    const fp = fingerprint(d.sdp);
    if (fp) emit({ type: 'dtls_fingerprint', fingerprint: fp });
    else emit({ type: 'error', message: 'no a=fingerprint line in local SDP' });
    S.localSent = true;
    for (const ev of S.pendingLocal.splice(0)) emit(ev);
  }

  async function addRemoteCandidate(pc, line) {
    const sdpMid = firstMid(pc.remoteDescription.sdp);
    await pc.addIceCandidate({ candidate: line, sdpMid, sdpMLineIndex: 0 });
  }

  async function flushRemote(pc) {
    for (const line of S.pendingRemote.splice(0)) {
      try {
        await addRemoteCandidate(pc, line);
      } catch (e) {
        emit({ type: 'error', message: `addIceCandidate(${line}) failed: ${e.message}` });
      }
    }
  }

  window.kith = {
    async handle(msg) {
      switch (msg.type) {
        case 'offer': {
          const pc = ensurePc();
          await pc.setRemoteDescription({ type: 'offer', sdp: filterRemoteSdp(msg.sdp) });
          await flushRemote(pc);
          await sendAudioOn(pc);
          await sendVideoOn(pc);
          await pc.setLocalDescription(await pc.createAnswer());
          emitLocalDescription(pc);
          return;
        }
        case 'answer': {
          if (!S.pc) throw new Error('answer received but no local offer was made (send make_offer first)');
          await S.pc.setRemoteDescription({ type: 'answer', sdp: filterRemoteSdp(msg.sdp) });
          await flushRemote(S.pc);
          return;
        }
        case 'candidate': {
          const line = String(msg.candidate || '').replace(/^a=/, '').trim();
          if (!line) return; // end-of-candidates
          if (!remoteAllowed(line)) {
            log(`dropping non-loopback remote candidate: ${line}`);
            return;
          }
          const pc = S.pc;
          if (!pc || !pc.remoteDescription) {
            S.pendingRemote.push(line);
            return;
          }
          await addRemoteCandidate(pc, line);
          return;
        }
        case 'make_offer': {
          if (S.pc) throw new Error('make_offer: a peer connection already exists');
          const pc = ensurePc();
          for (const label of LABELS) setupChannel(pc.createDataChannel(label, { ordered: true }));
          await pc.setLocalDescription(await pc.createOffer());
          emitLocalDescription(pc);
          return;
        }
        case 'send': {
          const dc = S.channels.get(msg.label);
          if (!dc) throw new Error(`send: no data channel labelled ${JSON.stringify(msg.label)}`);
          if (dc.readyState !== 'open') throw new Error(`send: channel ${msg.label} is ${dc.readyState}`);
          if (typeof msg.b64 === 'string') {
            const bytes = b64ToBytes(msg.b64);
            dc.send(bytes);
            rememberSent(dc.label, bytes);
          } else {
            dc.send(String(msg.data ?? ''));
          }
          return;
        }
        case 'video_stats': {
          if (!S.pc) throw new Error('video_stats: no peer connection');
          emit(await videoStats());
          return;
        }
        case 'audio_stats': {
          if (!S.pc) throw new Error('audio_stats: no peer connection');
          emit(await audioStats());
          return;
        }
        default:
          throw new Error(`unknown message type ${JSON.stringify(msg.type)}`);
      }
    },
  };
}

// ---------------------------------------------------------------------------
// Node side.

let browser = null;
let exiting = false;
async function shutdown(code) {
  if (exiting) return;
  exiting = true;
  vlog('shutting down');
  const force = setTimeout(() => process.exit(code), 10_000);
  force.unref();
  try {
    if (browser) await browser.close();
  } catch (e) {
    log(`close: ${e.message}`);
  }
  process.exit(code);
}
process.on('SIGINT', () => shutdown(130));
process.on('SIGTERM', () => shutdown(143));
process.on('SIGHUP', () => shutdown(129));
process.stdout.on('error', (e) => {
  // Reader went away (EPIPE): nothing left to report to.
  log(`stdout: ${e.message}`);
  shutdown(1);
});

let page = null;
async function start() {
  const t0 = performance.now();
  // The fake microphone plays the file; the page may start WebAudio without a user gesture.
  const args = opts.audioFile
    ? [`--use-file-for-fake-audio-capture=${opts.audioFile}`, '--autoplay-policy=no-user-gesture-required']
    : [];
  browser = await launch({ log: vlog, args });
  page = await browser.firstPage();
  page.on('crash', () => {
    out({ type: 'error', message: 'page crashed' });
    shutdown(1);
  });
  browser.ctx.on('close', () => {
    if (!exiting) {
      out({ type: 'error', message: 'browser closed unexpectedly' });
      shutdown(1);
    }
  });
  await page.exposeFunction('kithEmit', (obj) => out(obj));
  await page.exposeFunction('kithLog', (s) => vlog(`page: ${s}`));
  await page.goto(PAGE_URL);
  const ok = await page.evaluate(() => typeof RTCPeerConnection === 'function' && isSecureContext);
  if (!ok) throw new Error('page has no RTCPeerConnection or is not a secure context');
  await page.evaluate(pageMain, opts);
  log(`ready: Chromium ${browser.version} in ${(performance.now() - t0).toFixed(0)} ms${opts.echo ? ' (echo)' : ''}`);
  out({ type: 'ready' });
}

async function handleLine(line) {
  line = line.trim();
  if (!line || exiting) return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    out({ type: 'error', message: `bad JSON on stdin: ${e.message}` });
    return;
  }
  if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') {
    out({ type: 'error', message: `stdin line without a "type": ${line.slice(0, 200)}` });
    return;
  }
  vlog(`<- ${msg.type}`);
  if (msg.type === 'quit') {
    await shutdown(0);
    return;
  }
  try {
    await page.evaluate((m) => window.kith.handle(m), msg);
  } catch (e) {
    const text = String(e.message || e)
      .split('\n')[0]
      .replace(/^page\.evaluate: /, '')
      .replace(/^[A-Za-z]*Error: /, '');
    out({ type: 'error', message: text.startsWith(`${msg.type}:`) ? text : `${msg.type}: ${text}` });
  }
}

// Read stdin right away but process lines strictly in order, after start-up.
const ready = start().catch((e) => {
  out({ type: 'error', message: `start-up failed: ${e.message}` });
  log(e.stack || e.message);
  return shutdown(1);
});
let queue = ready;
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  queue = queue.then(() => handleLine(line));
});
rl.on('close', () => {
  queue.then(() => {
    vlog('stdin closed');
    return shutdown(0);
  });
});
