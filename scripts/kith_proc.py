"""A `kith` process for the benchmark scripts: its JSON-line events read on a thread, each
with the monotonic time it arrived."""
import json
import os
import queue
import subprocess
import threading
import time


class Proc:
    def __init__(self, kith, args, password, env=None, stderr=subprocess.DEVNULL):
        # `kith` is the executable, or a command that runs it (`["chroot", root, "/usr/bin/kith"]`).
        command = list(kith) if isinstance(kith, (list, tuple)) else [kith]
        self.p = subprocess.Popen(command + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=stderr, text=True,
                                  env={**os.environ, "KITH_PASSWORD": password, **(env or {})})
        self.q = queue.Queue()
        self.events = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            try:
                self.q.put((time.monotonic(), json.loads(line)))
            except ValueError:
                pass

    def wait(self, pred, timeout=120):
        """The first event (from now on) that `pred` takes, with its arrival time."""
        end = time.monotonic() + timeout
        while True:
            t, ev = self.q.get(timeout=max(0.01, end - time.monotonic()))
            self.events.append((t, ev))
            if pred(ev):
                return t, ev

    def drain(self):
        """Events that arrived since the last look."""
        got = []
        while True:
            try:
                t, ev = self.q.get_nowait()
            except queue.Empty:
                return got
            self.events.append((t, ev))
            got.append((t, ev))

    def send(self, obj):
        self.p.stdin.write(json.dumps(obj) + "\n")
        self.p.stdin.flush()

    def stop(self):
        self.p.kill()
        self.p.wait()
