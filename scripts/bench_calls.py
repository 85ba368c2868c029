#!/usr/bin/env python3
"""Call benchmarks on loopback: CPU per participant beside Chromium, mouth-to-ear latency, and
the call's jitter buffer with and without a file transfer between the same two people.

Runs a real `kith hub` and `kith headless` participants (a release build), each with a
synthetic microphone and a null speaker (the sound card's pace, no device), in one call:

  cpu N      N participants (tones), every one hearing every other; the CPU time of each
             `kith headless` process over SECONDS, beside Chromium doing the same call: N pages
             of one headless browser in a full mesh of RTCPeerConnections, each sending a WAV
             tone from its fake microphone and playing every remote track
             (tests/chromium/call_bench.mjs); Chromium's CPU is that of all its processes,
             per participant the total over N.
  latency    alice's microphone plays 100 ms bursts once a second, bob listens: each burst's
             onset in what alice's media thread captured and in what bob's jitter buffer
             played, from the media threads' traces (KITH_MEDIA_TRACE, one wall clock on one
             machine); with the thread's per-frame work times.
  transfer   two in a call; bob's jitter buffer for alice over SECONDS, then again while alice
             sends bob a file of MiB, and the file's rate during the call and after it.
  video N    N participants with test-pattern cameras at 720p30 (--video-size to change), each
             seeing every other: frames per second delivered per stream, capture-to-decoded
             latency read from the pattern's pixels, and CPU per participant and per delivered
             frame, beside Chromium doing the same call with its fake camera (H.264 preferred,
             tests/chromium/call_bench.mjs --video).

Usage: scripts/bench_calls.py [path/to/kith] [cpu N | latency | transfer MiB | video N]...
       [--seconds S] [--video-size WxH]
Default: cpu 3, cpu 6, latency, transfer 200, each for 20 s.
"""
import json
import math
import os
import queue
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kith_proc  # noqa: E402
import wave

ARGS = sys.argv[1:]
KITH = ARGS.pop(0) if ARGS and not ARGS[0] in ("cpu", "latency", "transfer", "video") else "target/release/kith"
SECONDS = 20
if "--seconds" in ARGS:
    i = ARGS.index("--seconds")
    SECONDS = int(ARGS[i + 1])
    del ARGS[i:i + 2]
VIDEO_SIZE = "1280x720"
if "--video-size" in ARGS:
    i = ARGS.index("--video-size")
    VIDEO_SIZE = ARGS[i + 1]
    del ARGS[i:i + 2]
PW = "bench password"
TICK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))
CHROMIUM_DIR = os.path.join(HERE, "..", "tests", "chromium")


def Proc(args, env=None):
    return kith_proc.Proc(KITH, args, PW, env)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def chromium_pids():
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() in ("chromium", "chrome", "chrome_crashpad"):
                        pids.append(int(d))
            except OSError:
                pass
    return pids


def total_cpu(pids):
    total = 0.0
    for p in pids:
        try:
            total += cpu_seconds(p)
        except OSError:
            pass
    return total


def write_wav(path, fill):
    """A 48 kHz mono 16-bit WAV of `fill(i)` for 2 s."""
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(b"".join(struct.pack("<h", int(32767 * fill(i))) for i in range(96000)))


def tone(hz):
    # A whole number of periods in the 2 s file, so the loop has no click.
    return lambda i: 0.3 * math.sin(2 * math.pi * hz * i / 48000)


def bursts(i):
    """100 ms of 1 kHz once a second, silence between."""
    return 0.3 * math.sin(2 * math.pi * 1000 * i / 48000) if i % 48000 < 4800 else 0.0


class Call:
    """A hub and `mics` participants in one call, everyone hearing everyone."""

    def __init__(self, tmp, tag, mics, extra=None, env=None):
        self.hub = Proc(["--profile", f"{tmp}/{tag}-hub", "hub", "--listen", "127.0.0.1:0", "--password", PW])
        _, listening = self.hub.wait(lambda e: e.get("event") == "listening")
        addr = listening["addr"]
        self.people = []
        for i, mic in enumerate(mics):
            args = ["--profile", f"{tmp}/{tag}-{i}", "headless", "--name", f"p{i}", "--hub", addr,
                    "--mic", mic, "--speaker", "null", "--auto-answer"] + (extra[i] if extra else [])
            self.people.append(Proc(args, env[i] if env else None))
        self.fps = []
        for p in self.people:
            _, ready = p.wait(lambda e: e.get("event") == "ready")
            self.fps.append(ready["fingerprint"])
        n = len(self.people)
        for p in self.people:
            seen = set()
            while len(seen) < n - 1:
                _, ev = p.wait(lambda e: e.get("event") == "link" and e.get("kind") == "direct")
                seen.add(ev["peer"])
        self.people[0].send({"cmd": "call", "room": "general"})
        # Everyone hears everyone who sends: stats with packets from each.
        for i, p in enumerate(self.people):
            senders = {fp for j, fp in enumerate(self.fps) if j != i and mics[j] != "none"}
            heard = set()
            while heard != senders:
                _, ev = p.wait(lambda e: e.get("event") == "media_stats", timeout=60)
                if ev["audio"]["packets"] > 0:
                    heard.add(ev["peer"])

    def stop(self):
        for p in self.people + [self.hub]:
            p.stop()


def measure_window(call):
    """After 3 s to settle (events so far dropped), each participant's CPU seconds before and
    after SECONDS, and the seconds that really passed."""
    time.sleep(3)
    for p in call.people:
        p.drain()
    before = [cpu_seconds(p.p.pid) for p in call.people]
    t0 = time.monotonic()
    time.sleep(SECONDS)
    elapsed = time.monotonic() - t0
    return before, [cpu_seconds(p.p.pid) for p in call.people], elapsed


def bench_cpu(tmp, n):
    mics = [f"tone:{300 + 100 * i}" for i in range(n)]
    call = Call(tmp, f"cpu{n}", mics)
    try:
        before, after, elapsed = measure_window(call)
        loads = [(a - b) / elapsed * 100 for a, b in zip(after, before)]
        # What the participants heard meanwhile (the call really ran).
        lost = late = frames = 0
        for p in call.people:
            last = {}
            for _, ev in p.drain():
                if ev.get("event") == "media_stats":
                    last[ev["peer"]] = ev["audio"]
            for a in last.values():
                lost += a["lost"]
                late += a["late"]
                frames += a["packets"]
        kith = sum(loads) / n
        print(f"cpu {n} people: Kith {kith:.1f} % of a core per participant "
              f"(each: {', '.join(f'{x:.1f}' for x in loads)}); {frames} packets received, "
              f"{lost} lost, {late} late", flush=True)
    finally:
        call.stop()
    chromium = chromium_cpu(tmp, n)
    if chromium is not None:
        print(f"         Chromium {chromium:.1f} % of a core per participant "
              f"(Kith ÷ Chromium = {kith / chromium:.2f})", flush=True)


def chromium_call(tmp, n, extra, measure):
    """Chromium's mesh of `n` pages (tests/chromium/call_bench.mjs with `extra`): once every
    pair's media flows, `measure(stats)` with a function that asks the pages for their stats;
    None if Chromium cannot run here."""
    if not os.path.isdir(os.path.join(CHROMIUM_DIR, "node_modules", "playwright-core")):
        print("         Chromium skipped: run `npm ci` in tests/chromium", flush=True)
        return None
    wav = f"{tmp}/chromium-tone.wav"
    write_wav(wav, tone(500))
    node = subprocess.Popen(["node", "call_bench.mjs", str(n), wav] + extra, cwd=CHROMIUM_DIR, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def stats():
        node.stdin.write("stats\n")
        node.stdin.flush()
        return json.loads(node.stdout.readline())
    try:
        line = json.loads(node.stdout.readline())
        if line.get("type") != "connected":
            print(f"         Chromium failed: {line}", flush=True)
            return None
        time.sleep(3)
        return measure(stats)
    finally:
        try:
            node.stdin.write("quit\n")
            node.stdin.flush()
            node.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            node.kill()


def chromium_cpu(tmp, n):
    def measure(stats):
        pids = chromium_pids()
        before = total_cpu(pids)
        t0 = time.monotonic()
        time.sleep(SECONDS)
        elapsed = time.monotonic() - t0
        after = total_cpu(pids)
        inbound = [r for p in stats()["pages"] for r in p["inbound"] if not r.get("video")]
        received = sum(r["packets"] for r in inbound)
        lost = sum(r["lost"] for r in inbound)
        print(f"         Chromium: {len(pids)} processes, {received} packets received, {lost} lost", flush=True)
        return (after - before) / elapsed * 100 / n
    return chromium_call(tmp, n, [], measure)


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


def bench_video(tmp, n):
    mics = [f"tone:{300 + 100 * i}" for i in range(n)]
    cams = [["--camera", "test-pattern", "--video-size", VIDEO_SIZE, "--fps", "30"]] * n
    call = Call(tmp, f"video{n}", mics, cams)
    try:
        # Everyone decodes everyone's video.
        for i, p in enumerate(call.people):
            seeing = set()
            while len(seeing) < n - 1:
                _, ev = p.wait(lambda e: e.get("event") == "media_stats", timeout=60)
                if (ev.get("video") or {}).get("fps", 0) > 0:
                    seeing.add(ev["peer"])
        before, after, elapsed = measure_window(call)
        streams, latencies, sizes = {}, [], set()
        for i, p in enumerate(call.people):
            for _, ev in p.drain():
                v = ev.get("video") if ev.get("event") == "media_stats" else None
                if not v:
                    continue
                streams.setdefault((i, ev["peer"]), []).append(v["frames_decoded"])
                sizes.add(f"{v['width']}x{v['height']}")
                if v.get("latency_ms") is not None:
                    latencies.append(v["latency_ms"])
        # Frames decoded per second of each stream, between its first and last report.
        rates = [(f[-1] - f[0]) / (len(f) - 1) for f in streams.values() if len(f) > 1]
        delivered = sum(f[-1] - f[0] for f in streams.values())
        cpu = [(a - b) / elapsed * 100 for a, b in zip(after, before)]
        kith = sum(cpu) / n
        per_frame = sum(a - b for a, b in zip(after, before)) * 1000 / max(1, delivered)
        print(f"video {n} people at {VIDEO_SIZE}: Kith {sum(rates) / max(1, len(rates)):.1f} fps per stream "
              f"(lowest {min(rates, default=0):.1f}; {len(rates)} streams, decoded as {', '.join(sorted(sizes))}); "
              f"capture to decoded {percentile(latencies, 0.5)} ms median, {percentile(latencies, 0.95)} ms p95; "
              f"{kith:.1f} % of a core per participant, {per_frame:.2f} ms of CPU per delivered frame", flush=True)
    finally:
        call.stop()
    chromium = chromium_video(tmp, n)
    if chromium is not None:
        fps, load, ms = chromium
        print(f"         Chromium {fps:.1f} fps per stream, {load:.1f} % of a core per participant, "
              f"{ms:.2f} ms of CPU per delivered frame (Kith ÷ Chromium per frame = {per_frame / ms:.2f})",
              flush=True)


def chromium_video(tmp, n):
    def measure(stats):
        def frames():
            return {(p["me"], r["from"]): r["frames"] for p in stats()["pages"] for r in p["inbound"] if r.get("video")}
        pids = chromium_pids()
        first = frames()
        before = total_cpu(pids)
        t0 = time.monotonic()
        time.sleep(SECONDS)
        elapsed = time.monotonic() - t0
        after = total_cpu(pids)
        last = frames()
        deltas = [last[k] - first.get(k, 0) for k in last]
        fps = sum(deltas) / max(1, len(deltas)) / elapsed
        return fps, (after - before) / elapsed * 100 / n, (after - before) * 1000 / max(1, sum(deltas))
    return chromium_call(tmp, n, ["--video", VIDEO_SIZE], measure)


def read_trace(path):
    captures, plays, work = [], [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts[0] == "capture_onset":
                captures.append(int(parts[1]))
            elif parts[0] == "play_onset":
                plays.append((int(parts[2]), float(parts[3])))
            elif parts[0] == "work":
                work.append(dict(kv.split("=") for kv in parts[1:]))
    return captures, plays, work


def bench_latency(tmp):
    wav = f"{tmp}/bursts.wav"
    write_wav(wav, bursts)
    traces = [f"{tmp}/trace-alice.txt", f"{tmp}/trace-bob.txt"]
    call = Call(tmp, "latency", [f"wav:{wav}", "none"],
                env=[{"KITH_MEDIA_TRACE": traces[0]}, {"KITH_MEDIA_TRACE": traces[1]}])
    try:
        time.sleep(SECONDS)
    finally:
        call.stop()
    captures, _, work = read_trace(traces[0])
    _, plays, bob_work = read_trace(traces[1])
    delays, buffers = [], []
    for played, buffer_ms in plays:
        before = [c for c in captures if c <= played]
        if before and played - before[-1] < 500_000_000:
            delays.append((played - before[-1]) / 1e6)
            buffers.append(buffer_ms)
    if not delays:
        print("latency: no burst was heard", flush=True)
        return
    delays.sort()
    median = delays[len(delays) // 2]
    jb = sorted(buffers)[len(buffers) // 2]
    enc = [float(w["encode_us"]) for w in work if int(w["frames"]) > 0]
    cap = [float(w["capture_us"]) for w in work if int(w["frames"]) > 0]
    play = [float(w["play_us"]) for w in bob_work if int(w["played"]) > 0]
    worst = max(int(w["worst_tick_us"]) for w in work + bob_work)
    print(f"latency: capture to playout {median:.1f} ms median of {len(delays)} onsets "
          f"(min {delays[0]:.1f}, max {delays[-1]:.1f}); bob's jitter buffer held {jb:.1f} ms then "
          f"(median); per frame: processing {sum(cap) / len(cap):.0f} µs, Opus encode "
          f"{sum(enc) / len(enc):.0f} µs, decode + mix {sum(play) / len(play):.0f} µs; longest tick "
          f"{worst} µs", flush=True)


def bench_transfer(tmp, mib):
    payload = f"{tmp}/payload.bin"
    with open(payload, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    call = Call(tmp, "transfer", ["tone:440", "tone:660"],
                extra=[[], ["--accept-files", "--downloads", f"{tmp}/dl"]])
    alice, bob = call.people
    alice_fp = call.fps[0]

    def window(seconds):
        end = time.monotonic() + seconds
        rows, progress = [], []
        while time.monotonic() < end:
            try:
                t, ev = bob.q.get(timeout=0.1)
            except queue.Empty:
                continue
            if ev.get("event") == "media_stats" and ev["peer"] == alice_fp:
                rows.append(ev["audio"])
            elif ev.get("event") == "file_progress":
                progress.append((t, ev["bytes"]))
            elif ev.get("event") == "file_received":
                progress.append((t, ev.get("size", mib << 20)))
                break
        return rows, progress

    def summary(rows):
        if len(rows) < 2:
            return "no stats"
        jb = [r["jitter_buffer_ms"] for r in rows]
        target = [r["target_ms"] for r in rows]
        late = rows[-1]["late"] - rows[0]["late"]
        lost = rows[-1]["lost"] - rows[0]["lost"]
        return (f"jitter buffer {sum(jb) / len(jb):.0f} ms mean, {max(jb)} max (target "
                f"{sum(target) / len(target):.0f} ms mean, {max(target)} max), {late} late, {lost} lost")

    try:
        quiet, _ = window(SECONDS)
        alice.send({"cmd": "send_file", "peer": bob_fp(call), "path": payload})
        during, progress = window(SECONDS)
        # From the first progress (the file is hashed before it is offered) to the last.
        moved = progress[-1][1] if progress else 0
        rate = (moved - progress[0][1]) / (progress[-1][0] - progress[0][0]) / (1 << 20) if len(progress) > 1 else 0
        print(f"transfer: call alone: {summary(quiet)}", flush=True)
        print(f"          with alice sending bob {mib} MiB: {summary(during)}; the file moved at "
              f"{rate:.2f} MiB/s during the call", flush=True)
        alice.send({"cmd": "hangup"})
        t_hang = time.monotonic()
        _, done = bob.wait(lambda e: e.get("event") in ("file_received", "file_failed"), timeout=600)
        t_done = time.monotonic()
        left = (mib << 20) - moved
        print(f"          after hanging up, the remaining {left / (1 << 20):.0f} MiB took "
              f"{t_done - t_hang:.1f} s ({left / (t_done - t_hang) / (1 << 20):.0f} MiB/s): {done['event']}",
              flush=True)
    finally:
        call.stop()


def bob_fp(call):
    return call.fps[1]


def main():
    plan = []
    args = list(ARGS)
    while args:
        what = args.pop(0)
        if what == "cpu":
            plan.append(("cpu", int(args.pop(0))))
        elif what == "transfer":
            plan.append(("transfer", int(args.pop(0))))
        elif what == "latency":
            plan.append(("latency", None))
        elif what == "video":
            plan.append(("video", int(args.pop(0))))
        else:
            raise SystemExit(__doc__)
    if not plan:
        plan = [("cpu", 3), ("cpu", 6), ("latency", None), ("transfer", 200)]
    print(f"{KITH}, {SECONDS} s per measurement, {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for what, n in plan:
            if what == "cpu":
                bench_cpu(tmp, n)
            elif what == "latency":
                bench_latency(tmp)
            elif what == "video":
                bench_video(tmp, n)
            else:
                bench_transfer(tmp, n)


if __name__ == "__main__":
    main()
