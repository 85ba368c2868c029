#!/usr/bin/env python3
"""A `kith hub` and two `kith headless` chatting through it, each started by its own command,
so the installed package (`chroot ROOT /usr/bin/kith`) or the Windows executable under wine
(`wine kith.exe`) can be any of the three. Exits 1, saying which step did not happen, when the
chat does not work; the processes' stderr is kept in DIR for the log.

  chat.py --hub "CMD" --alice "CMD" --bob "CMD" --dir DIR [--as-seen PATH] [--direct]

DIR is where profiles and logs go on this machine; `--as-seen` is the same folder as the
commands see it (inside a chroot it is another path)."""
import argparse
import os
import queue
import shlex
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import kith_proc  # noqa: E402

PW = "packaging-test-pw"


class Step(Exception):
    pass


def wait(proc, who, event, timeout, pred=lambda e: True):
    try:
        return proc.wait(lambda e: e.get("event") == event and pred(e), timeout=timeout)[1]
    except queue.Empty:
        raise Step(f"{who}: no {event!r} event within {timeout} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hub", required=True, help="command that runs kith for the hub")
    ap.add_argument("--alice", required=True, help="command that runs kith for alice")
    ap.add_argument("--bob", required=True, help="command that runs kith for bob")
    ap.add_argument("--dir", required=True, help="scratch folder on this machine")
    ap.add_argument("--as-seen", help="the scratch folder as the commands see it")
    ap.add_argument("--direct", action="store_true", help="also require the direct link")
    ap.add_argument("--timeout", type=float, default=60)
    a = ap.parse_args()
    seen = a.as_seen or a.dir
    os.makedirs(a.dir, exist_ok=True)
    procs = []

    def start(name, cmd, args):
        err = open(os.path.join(a.dir, f"{name}.stderr"), "w")
        p = kith_proc.Proc(shlex.split(cmd), ["--profile", f"{seen}/{name}"] + args, PW, stderr=err)
        procs.append((name, p))
        return p

    try:
        hub = start("hub", a.hub, ["hub", "--listen", "127.0.0.1:0", "--password", PW])
        addr = wait(hub, "hub", "listening", a.timeout)["addr"]
        print(f"chat: hub listening on {addr}", flush=True)
        alice = start("alice", a.alice, ["headless", "--name", "alice", "--hub", addr])
        bob = start("bob", a.bob, ["headless", "--name", "bob", "--hub", addr])
        wait(alice, "alice", "joined", a.timeout)
        wait(bob, "bob", "joined", a.timeout)
        wait(alice, "alice", "peer_secure", a.timeout)
        wait(bob, "bob", "peer_secure", a.timeout)
        print("chat: both signed in, end-to-end session with each other", flush=True)

        alice.send({"cmd": "send", "room": "general", "text": "hello bob"})
        got = wait(bob, "bob", "message", a.timeout)
        if got.get("text") != "hello bob" or got.get("name") != "alice":
            raise Step(f"bob received {got}")
        wait(alice, "alice", "delivered", a.timeout)
        bob.send({"cmd": "send", "room": "general", "text": "hi alice ✓ — ünïcödé"})
        got = wait(alice, "alice", "message", a.timeout)
        if got.get("text") != "hi alice ✓ — ünïcödé":
            raise Step(f"alice received {got}")
        print("chat: messages both ways, delivery receipt back", flush=True)
        if a.direct:
            wait(alice, "alice", "link", a.timeout, lambda e: e.get("kind") == "direct")
            print("chat: direct link up", flush=True)
        return 0
    except Step as e:
        print(f"chat: FAILED: {e}", file=sys.stderr)
        for name, _ in procs:
            with open(os.path.join(a.dir, f"{name}.stderr")) as f:
                tail = f.read()[-2000:]
            if tail.strip():
                print(f"--- {name} stderr (end) ---\n{tail}", file=sys.stderr)
        return 1
    finally:
        for _, p in procs:
            p.stop()


if __name__ == "__main__":
    sys.exit(main())
