#!/usr/bin/env node
// Self-test for peer.mjs: two `node peer.mjs --echo` processes, A offering
// (make_offer) and B answering, with this script relaying the signalling lines
// between them exactly as the Rust side would.  Exits 0 when every check
// passes, 1 otherwise (with the failed checks listed), and prints a closing
// "N passed, N failed" line.
//
//   node selftest.mjs [--verbose]

import { spawn } from 'node:child_process';
import readline from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isLoopbackAddr } from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const verbose = process.argv.includes('--verbose') || process.argv.includes('-v');
const T_START = 90_000; // browser start-up can be slow on a loaded 2-core box
const T_STEP = 30_000;

const t0 = performance.now();
const since = () => `${((performance.now() - t0) / 1000).toFixed(2)}s`;
const say = (s) => process.stderr.write(`[selftest ${since()}] ${s}\n`);

class Peer {
  constructor(name, args) {
    this.name = name;
    this.events = [];
    this.waiters = [];
    this.stderr = [];
    this.exit = null;
    this.onEvent = () => {};
    this.proc = spawn(process.execPath, [path.join(here, 'peer.mjs'), ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
        this.check();
      });
    });
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      let ev;
      try {
        ev = JSON.parse(line);
      } catch {
        ev = { type: '__non_json__', line };
      }
      if (verbose) say(`${name} -> ${line.length > 160 ? line.slice(0, 160) + '…' : line}`);
      this.events.push(ev);
      this.onEvent(ev);
      this.check();
    });
    readline.createInterface({ input: this.proc.stderr }).on('line', (line) => {
      this.stderr.push(line);
      if (verbose) process.stderr.write(`  ${name}! ${line}\n`);
    });
    this.proc.stdin.on('error', () => {});
  }
  send(obj) {
    if (verbose) say(`${this.name} <- ${JSON.stringify(obj).slice(0, 160)}`);
    this.proc.stdin.write(JSON.stringify(obj) + '\n');
  }
  check() {
    for (const w of [...this.waiters]) {
      const hit = this.events.find(w.pred);
      if (hit) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(hit);
      } else if (this.exit) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.reject(new Error(`${this.name} exited (${JSON.stringify(this.exit)}) while waiting for ${w.desc}`));
      }
    }
  }
  waitFor(pred, desc, timeout = T_STEP) {
    return new Promise((resolve, reject) => {
      const w = { pred, desc, resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.name}: timed out after ${timeout} ms waiting for ${desc}`));
      }, timeout);
      this.waiters.push(w);
      this.check();
    });
  }
  kill() {
    if (!this.exit) this.proc.kill('SIGTERM');
  }
}

const results = [];
async function check(name, fn) {
  try {
    const detail = await fn();
    results.push({ name, ok: true });
    say(`ok   ${name}${detail ? ` (${detail})` : ''}`);
    return true;
  } catch (e) {
    results.push({ name, ok: false, why: e.message });
    say(`FAIL ${name}: ${e.message}`);
    return false;
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

const A = new Peer('A', ['--echo']);
const B = new Peer('B', ['--echo']);
const peers = [A, B];

// Relay signalling both ways, like the Rust side would.
const relay = (from, to) => (ev) => {
  if (ev.type === 'offer' || ev.type === 'answer') to.send({ type: ev.type, sdp: ev.sdp });
  else if (ev.type === 'candidate') to.send({ type: 'candidate', candidate: ev.candidate });
};
A.onEvent = relay(A, B);
B.onEvent = relay(B, A);

const FP_RE = /^sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$/;
const msg = (label, data) => (e) => e.type === 'message' && e.label === label && e.data === data;
const bin = (label, n) => (e) => e.type === 'message' && e.label === label && e.binary_len === n;

async function main() {
  const ok = await check('both peers report ready', async () => {
    await Promise.all(peers.map((p) => p.waitFor((e) => e.type === 'ready', 'ready', T_START)));
    return `after ${since()}`;
  });
  if (!ok) return;

  A.send({ type: 'make_offer' });
  await check('A answers make_offer with an offer carrying sctp-port and max-message-size', async () => {
    const o = await A.waitFor((e) => e.type === 'offer', 'offer');
    assert(/^m=application \d+ UDP\/DTLS\/SCTP webrtc-datachannel$/m.test(o.sdp.replace(/\r/g, '')), 'no data m-line');
    const port = /a=sctp-port:(\d+)/.exec(o.sdp);
    const mms = /a=max-message-size:(\d+)/.exec(o.sdp);
    assert(port && mms, 'missing a=sctp-port / a=max-message-size');
    return `sctp-port ${port[1]}, max-message-size ${mms[1]}`;
  });
  await check('B answers the relayed offer', async () => {
    const a = await B.waitFor((e) => e.type === 'answer', 'answer');
    assert(/a=setup:(active|passive)/.test(a.sdp), 'answer lacks a=setup:active|passive');
    return /a=setup:(\w+)/.exec(a.sdp)[0];
  });
  await check('dtls_fingerprint on both sides matches the SDP a=fingerprint', async () => {
    for (const [p, t] of [[A, 'offer'], [B, 'answer']]) {
      const f = await p.waitFor((e) => e.type === 'dtls_fingerprint', 'dtls_fingerprint');
      assert(FP_RE.test(f.fingerprint), `${p.name}: bad fingerprint format ${f.fingerprint}`);
      const sdp = p.events.find((e) => e.type === t).sdp;
      assert(sdp.includes(`a=fingerprint:${f.fingerprint}`), `${p.name}: fingerprint not in its ${t}`);
    }
    const fa = A.events.find((e) => e.type === 'dtls_fingerprint').fingerprint;
    const fb = B.events.find((e) => e.type === 'dtls_fingerprint').fingerprint;
    assert(fa !== fb, 'both peers have the same certificate');
  });

  const labels = ['kith-chat', 'kith-file'];
  await check('both channels open on both sides', async () => {
    await Promise.all(
      peers.flatMap((p) => labels.map((l) => p.waitFor((e) => e.type === 'open' && e.label === l, `open ${l}`))),
    );
    const mms = A.events.find((e) => e.type === 'open').max_message_size;
    return `${since()} since start; sctp.maxMessageSize ${mms}`;
  });
  await check('state reaches connected on both sides', async () => {
    await Promise.all(peers.map((p) => p.waitFor((e) => e.type === 'state' && e.connection === 'connected', 'connected')));
  });
  await check('trickled candidates are loopback UDP "candidate:" lines, offer/answer precede them', async () => {
    for (const p of peers) {
      const idxDesc = p.events.findIndex((e) => e.type === 'offer' || e.type === 'answer');
      const cands = p.events.map((e, i) => [e, i]).filter(([e]) => e.type === 'candidate');
      assert(cands.length > 0, `${p.name}: no candidates`);
      for (const [e, i] of cands) {
        assert(i > idxDesc, `${p.name}: candidate before its description`);
        const f = e.candidate.split(' ');
        assert(e.candidate.startsWith('candidate:'), `${p.name}: ${e.candidate}`);
        assert(f[2] === 'udp' && isLoopbackAddr(f[4]), `${p.name}: non-loopback-udp candidate ${e.candidate}`);
      }
    }
    return peers.map((p) => `${p.name}:${p.events.filter((e) => e.type === 'candidate').length}`).join(' ');
  });

  await check('A -> B text on kith-chat, echoed back', async () => {
    A.send({ type: 'send', label: 'kith-chat', data: 'hello from A' });
    await B.waitFor(msg('kith-chat', 'hello from A'), 'B receives hello from A');
    await A.waitFor(msg('kith-chat', 'echo:hello from A'), 'A receives echo');
  });
  await check('B -> A text on kith-file, echoed back', async () => {
    B.send({ type: 'send', label: 'kith-file', data: 'hello from B' });
    await A.waitFor(msg('kith-file', 'hello from B'), 'A receives hello from B');
    await B.waitFor(msg('kith-file', 'echo:hello from B'), 'B receives echo');
  });
  await check('non-ASCII text round trip', async () => {
    const s = 'grüße ✓ 🔐 \u0000 "quoted" \\ \n';
    B.send({ type: 'send', label: 'kith-chat', data: s });
    await A.waitFor(msg('kith-chat', s), 'A receives unicode text');
    await B.waitFor(msg('kith-chat', 'echo:' + s), 'B receives unicode echo');
  });
  await check('binary A -> B (64 KiB) echoed back once as binary', async () => {
    const bytes = Buffer.alloc(65536);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + 3) & 0xff;
    A.send({ type: 'send', label: 'kith-file', b64: bytes.toString('base64') });
    await B.waitFor(bin('kith-file', 65536), 'B receives 65536 bytes');
    await A.waitFor(bin('kith-file', 65536), 'A receives the 65536-byte echo');
    await new Promise((r) => setTimeout(r, 500));
    const nA = A.events.filter(bin('kith-file', 65536)).length;
    const nB = B.events.filter(bin('kith-file', 65536)).length;
    assert(nA === 1 && nB === 1, `binary echo ping-pong: A saw ${nA}, B saw ${nB}`);
  });
  await check('binary of exactly max-message-size (262144) B -> A', async () => {
    const bytes = Buffer.alloc(262144, 0x5a);
    bytes[0] = 1;
    B.send({ type: 'send', label: 'kith-file', b64: bytes.toString('base64') });
    await A.waitFor(bin('kith-file', 262144), 'A receives 262144 bytes');
    await B.waitFor(bin('kith-file', 262144), 'B receives the echo');
  });
  await check('binary above max-message-size is refused with an error event', async () => {
    const n = A.events.length;
    A.send({ type: 'send', label: 'kith-file', b64: Buffer.alloc(262145).toString('base64') });
    const err = await A.waitFor((e) => e.type === 'error' && A.events.indexOf(e) >= n, 'error event');
    return err.message;
  });
  await check('send on an unknown label gives an error event, peer keeps working', async () => {
    B.send({ type: 'send', label: 'nope', data: 'x' });
    await B.waitFor((e) => e.type === 'error' && /nope/.test(e.message), 'error about label nope');
    B.send({ type: 'send', label: 'kith-chat', data: 'still alive' });
    await A.waitFor(msg('kith-chat', 'still alive'), 'A receives still alive');
  });
  await check('stdout carried only JSON lines', async () => {
    for (const p of peers) {
      const bad = p.events.find((e) => e.type === '__non_json__');
      assert(!bad, `${p.name}: non-JSON stdout line: ${bad && bad.line}`);
    }
  });
  await check('no unexpected error events', async () => {
    for (const p of peers) {
      const errs = p.events.filter(
        (e) => e.type === 'error' && !/nope|262145|max|too large|exceed/i.test(e.message),
      );
      assert(errs.length === 0, `${p.name}: ${errs.map((e) => e.message).join('; ')}`);
    }
  });
  await check('quit makes both peers exit 0', async () => {
    for (const p of peers) p.send({ type: 'quit' });
    const exits = await Promise.race([
      Promise.all(peers.map((p) => p.exited)),
      new Promise((_, rej) => setTimeout(() => rej(new Error('peers did not exit within 20 s of quit')), 20_000)),
    ]);
    for (const [i, x] of exits.entries()) assert(x.code === 0, `${peers[i].name} exit ${JSON.stringify(x)}`);
  });
}

const hardTimeout = setTimeout(() => {
  say('FAIL: overall timeout (240 s)');
  results.push({ name: 'overall timeout', ok: false, why: 'timeout' });
  finish();
}, 240_000);

function finish() {
  clearTimeout(hardTimeout);
  for (const p of peers) p.kill();
  const failed = results.filter((r) => !r.ok);
  const passed = results.length - failed.length;
  if (failed.length) {
    say('failed checks:');
    for (const f of failed) say(`  - ${f.name}: ${f.why}`);
    for (const p of peers) {
      for (const e of p.events.filter((e) => e.type === 'error')) say(`peer ${p.name} error event: ${e.message}`);
      say(`last stderr lines of peer ${p.name}:`);
      for (const l of p.stderr.slice(-30)) process.stderr.write(`    ${l}\n`);
    }
  }
  console.log(`selftest: ${passed} passed, ${failed.length} failed`);
  process.exitCode = failed.length || results.length === 0 ? 1 : 0;
  setTimeout(() => process.exit(process.exitCode), 1000).unref();
}

main()
  .catch((e) => {
    results.push({ name: 'selftest driver', ok: false, why: e.stack || e.message });
  })
  .finally(finish);
