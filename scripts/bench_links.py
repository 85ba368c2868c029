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
Usage: scripts/bench_links.py [path/to/kith] [SIZE_MiB] [ROUNDS]
"""
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kith_proc  # noqa: E402

KITH = sys.argv[1] if len(sys.argv) > 1 else "target/release/kith"
SIZE_MIB = int(sys.argv[2]) if len(sys.argv) > 2 else 200
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
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
        t0 = time.monotonic()
        a.send({"cmd": "send_file", "peer": secure["peer"], "path": f"{tmp}/payload.bin"})
        t_first, _ = b.wait(lambda e: e.get("event") == "file_progress")
        t_done, done = b.wait(lambda e: e.get("event") in ("file_received", "file_failed"), timeout=600)
        if done["event"] != "file_received":
            raise SystemExit(f"transfer failed: {done}")
        os.remove(done["path"])
        # Cold, after the transfer (so it does not share the CPU with it): a third process
        # joins alice's room straight after starting.
        c = Proc(["--profile", f"{tmp}/c{n}", "headless", "--name", "carol", "--hub", addr])
        procs.append(c)
        t_secure_c, _ = c.wait(lambda e: e.get("event") == "peer_secure")
        t_link_c, _ = c.wait(lambda e: e.get("event") == "link" and e.get("kind") == "direct")
        cold_ms = (t_link_c - t_secure_c) * 1000
        return connect_ms, cold_ms, t_done - t_first, t_done - t0
    finally:
        for p in procs:
            p.stop()


def main():
    nbytes = SIZE_MIB << 20
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/payload.bin", "wb") as f:
            for _ in range(SIZE_MIB):
                f.write(os.urandom(1 << 20))
        chromium = chromium_baseline()
        for n in range(ROUNDS):
            connect_ms, cold_ms, bulk_s, e2e_s = one_round(tmp, n)
            tcp_s = raw_tcp(nbytes)
            print(f"round {n + 1}: link open {connect_ms:.0f} ms after the session "
                  f"({cold_ms:.0f} ms for a process just started) | "
                  f"{SIZE_MIB} MiB data channel {SIZE_MIB / bulk_s:.0f} MiB/s "
                  f"({bulk_s:.2f} s; {e2e_s:.2f} s with hashing) | raw TCP {SIZE_MIB / tcp_s:.0f} MiB/s",
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
