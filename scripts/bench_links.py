#!/usr/bin/env python3
"""Direct-link benchmark on loopback, with raw TCP loopback measured in the same run.

Runs a real `kith hub` and two `kith headless` peers (release build), then measures
  * connect: from the peer session being secure (`peer_secure`) to the direct link's chat
    channel being open (`link` event), as seen on alice's stdout. Twice:
    "warm", bob starting in another room and joining alice's a second after both are ready
    (as two running apps meet; Chromium's figure is likewise from an already running
    browser), and "cold", both processes starting together, so the first link also waits for
    the one-time crypto setup of a fresh process (~70 ms, done in the background at start);
  * bulk: a file of SIZE MiB sent with `send_file`, from the first `file_progress` on the
    receiver to `file_received` (hashing before the offer is excluded), and end to end;
  * raw TCP: the same number of bytes through one 127.0.0.1 TCP connection;
  * Chromium to Chromium (tests/chromium/bench.mjs, two pages of one headless browser):
    createOffer to data channel open, and the same number of bytes over the data channel,
    when `node` and tests/chromium/node_modules are there (`npm ci` in tests/chromium).
With --loss=PCT (run as root), the whole run (hub, peers, raw TCP, Chromium) happens in a
network namespace made for it, whose loopback drops that share of all UDP datagrams at random
(nftables `numgen random`), each way; TCP, and so the hub's relay and raw TCP, is not dropped.
This kernel has no netem, so the path has no added delay: delay is covered in process, on the
simulated clocks of vendor/sctp-proto's loss tests.
Usage: scripts/bench_links.py [path/to/kith] [SIZE_MiB] [ROUNDS] [--loss=PCT]
"""
import json
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kith_proc  # noqa: E402

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
LOSS = next((float(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--loss=")), None)
KITH = os.path.abspath(ARGS[0]) if len(ARGS) > 0 else os.path.abspath("target/release/kith")
SIZE_MIB = int(ARGS[1]) if len(ARGS) > 1 else 200
ROUNDS = int(ARGS[2]) if len(ARGS) > 2 else 3
PW = "bench password"


def Proc(args, env=None):
    return kith_proc.Proc(KITH, args, PW, env)


def raw_tcp(nbytes):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    got = [0]

    def sink():
        c, _ = srv.accept()
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            got[0] += len(b)
        c.close()

    t = threading.Thread(target=sink)
    t.start()
    c = socket.create_connection(srv.getsockname())
    chunk = os.urandom(1 << 20)
    start = time.monotonic()
    sent = 0
    while sent < nbytes:
        c.sendall(chunk)
        sent += len(chunk)
    c.close()
    t.join()
    return time.monotonic() - start


def one_round(tmp, n):
    hub = Proc(["--profile", f"{tmp}/hub{n}", "hub", "--listen", "127.0.0.1:0", "--password", PW])
    _, listening = hub.wait(lambda e: e.get("event") == "listening")
    addr = listening["addr"]
    a = Proc(["--profile", f"{tmp}/a{n}", "headless", "--name", "alice", "--hub", addr])
    b = Proc(["--profile", f"{tmp}/b{n}", "headless", "--name", "bob", "--hub", addr,
              "--room", "random", "--downloads", f"{tmp}/dl{n}", "--accept-files"])
    procs = [a, b, hub]
    try:
        a.wait(lambda e: e.get("event") == "joined")
        b.wait(lambda e: e.get("event") == "joined")
        time.sleep(1)
        b.send({"cmd": "join", "room": "general"})
        t_secure, secure = a.wait(lambda e: e.get("event") == "peer_secure")
        t_link, _ = a.wait(lambda e: e.get("event") == "link" and e.get("kind") == "direct")
        connect_ms = (t_link - t_secure) * 1000
        idle_chat = [chat_latency(a, b, f"idle {i}") for i in range(5)]
        t0 = time.monotonic()
        a.send({"cmd": "send_file", "peer": secure["peer"], "path": f"{tmp}/payload.bin"})
        t_first, _ = b.wait(lambda e: e.get("event") == "file_progress")
        # Chat while the file moves: a message every 50 ms, timed from alice's send to
        # bob's event.
        sent = {}
        stop = threading.Event()

        def chatter():
            i = 0
            while not stop.wait(0.05):
                sent[f"busy {i}"] = time.monotonic()
                a.send({"cmd": "send", "room": "general", "text": f"busy {i}"})
                i += 1
        talker = threading.Thread(target=chatter)
        talker.start()
        try:
            t_done, done = b.wait(lambda e: e.get("event") in ("file_received", "file_failed"), timeout=600)
        finally:
            stop.set()
            talker.join()
        if done["event"] != "file_received":
            raise SystemExit(f"transfer failed: {done}")
        time.sleep(1)
        b.drain()
        busy_chat = [(t - sent[ev["text"]]) * 1000 for t, ev in b.events
                     if ev.get("event") == "message" and ev.get("text") in sent]
        os.remove(done["path"])
        # Cold, after the transfer (so it does not share the CPU with it): a third process
        # joins alice's room straight after starting.
        c = Proc(["--profile", f"{tmp}/c{n}", "headless", "--name", "carol", "--hub", addr])
        procs.append(c)
        t_secure_c, _ = c.wait(lambda e: e.get("event") == "peer_secure")
        t_link_c, _ = c.wait(lambda e: e.get("event") == "link" and e.get("kind") == "direct")
        cold_ms = (t_link_c - t_secure_c) * 1000
        return connect_ms, cold_ms, t_done - t_first, t_done - t0, idle_chat, busy_chat
    finally:
        for p in procs:
            p.stop()


def in_lossy_namespace(loss_pct):
    """Reruns this script inside a new network namespace whose loopback drops loss_pct % of
    UDP datagrams; returns its exit status."""
    ns = f"kith-bench-{os.getpid()}"
    per_100k = round(loss_pct * 1000)
    rules = ("table inet kith_loss {\n"
             "  chain out {\n"
             "    type filter hook output priority 0; policy accept;\n"
             "    meta l4proto udp counter\n"
             f"    meta l4proto udp numgen random mod 100000 < {per_100k} counter drop\n"
             "  }\n"
             "}\n")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True, check=True)
        print(f"in network namespace {ns}: {loss_pct} % of UDP datagrams dropped", flush=True)
        args = [a for a in sys.argv[1:] if not a.startswith("--loss=")]
        env = dict(os.environ, KITH_BENCH_LOSS=str(loss_pct))
        status = subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
                                 KITH, str(SIZE_MIB), str(ROUNDS)], env=env).returncode
        rules = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "chain", "inet", "kith_loss", "out"],
                               capture_output=True, text=True).stdout
        counts = [int(x) for x in re.findall(r"counter packets (\d+)", rules)]
        if len(counts) == 2 and counts[0]:
            print(f"UDP datagrams: {counts[0]}, dropped {counts[1]} ({100 * counts[1] / counts[0]:.2f} %)",
                  flush=True)
        return status
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def chat_latency(a, b, text):
    """Milliseconds from alice sending `text` to bob's event for it."""
    t_sent = time.monotonic()
    a.send({"cmd": "send", "room": "general", "text": text})
    t_got, _ = b.wait(lambda e: e.get("event") == "message" and e.get("text") == text)
    return (t_got - t_sent) * 1000


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


def main():
    if LOSS is not None:
        sys.exit(in_lossy_namespace(LOSS))
    nbytes = SIZE_MIB << 20
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/payload.bin", "wb") as f:
            for _ in range(SIZE_MIB):
                f.write(os.urandom(1 << 20))
        chromium = chromium_baseline()
        for n in range(ROUNDS):
            connect_ms, cold_ms, bulk_s, e2e_s, idle_chat, busy_chat = one_round(tmp, n)
            tcp_s = raw_tcp(nbytes)
            print(f"round {n + 1}: link open {connect_ms:.0f} ms after the session "
                  f"({cold_ms:.0f} ms for a process just started) | "
                  f"{SIZE_MIB} MiB data channel {SIZE_MIB / bulk_s:.1f} MiB/s "
                  f"({bulk_s:.2f} s; {e2e_s:.2f} s with hashing) | raw TCP {SIZE_MIB / tcp_s:.0f} MiB/s | "
                  f"chat idle {median(idle_chat):.1f} ms, during the transfer median "
                  f"{median(busy_chat):.1f} ms, max {max(busy_chat, default=float('nan')):.1f} ms "
                  f"({len(busy_chat)} messages)",
                  flush=True)
            if chromium and n < len(chromium["throughput_mib_s"]):
                print(f"         Chromium to Chromium: open {chromium['connect_ms'][n]:.0f} ms after "
                      f"createOffer | {chromium['size_mib']} MiB data channel "
                      f"{chromium['throughput_mib_s'][n]:.1f} MiB/s", flush=True)


def chromium_baseline():
    """Chromium's own figures on this machine, in the same run; None if it cannot run here."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "chromium")
    if not os.path.isdir(os.path.join(here, "node_modules", "playwright-core")):
        print("Chromium baseline skipped: run `npm ci` in tests/chromium", flush=True)
        return None
    out = subprocess.run(["node", "bench.mjs", str(SIZE_MIB), str(ROUNDS)], cwd=here,
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        print(f"Chromium baseline failed: {out.stderr.strip()[-500:]}", flush=True)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
