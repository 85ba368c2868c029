#!/usr/bin/env python3
"""Writes assets/ring.wav: Kith's incoming-call ring, a double burst of 400 + 450 Hz (0.4 s on,
0.2 s off, 0.4 s on, 10 ms fades), 48 kHz mono 16-bit. The app loops it with a pause."""
import math
import struct
import wave

RATE = 48000


def burst(seconds):
    n = int(seconds * RATE)
    fade = int(0.01 * RATE)
    for i in range(n):
        t = i / RATE
        a = 0.3 * (math.sin(2 * math.pi * 400 * t) + math.sin(2 * math.pi * 450 * t)) / 2
        yield a * min(1, i / fade, (n - 1 - i) / fade)


samples = [*burst(0.4), *([0.0] * int(0.2 * RATE)), *burst(0.4)]
with wave.open("assets/ring.wav", "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(RATE)
    w.writeframes(b"".join(struct.pack("<h", int(x * 32767)) for x in samples))
