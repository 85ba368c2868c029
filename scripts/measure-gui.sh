#!/usr/bin/env bash
# Measures the release desktop app under Xvfb: time to first frame, CPU and memory of an idle
# connected window. Results go into docs/BENCHMARKS.md by hand, with the date and machine.
#
#   cargo build --release && scripts/measure-gui.sh [target/release/kith]
set -euo pipefail
cd "$(dirname "$0")/.."
KITH=$(realpath "${1:-target/release/kith}")
export KITH_PASSWORD="measure-pw"
# shellcheck source=scripts/xvfb-session.sh
. scripts/xvfb-session.sh

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "== time to first frame (process start to the first frame's UI pass), 7 runs"
mkdir -p "$WORK/fresh"
printf '{"display_name":"Alice","notifications":false}' >"$WORK/fresh/settings.json"
for i in $(seq 7); do
    KITH_REPORT_STARTUP=1 "$KITH" --profile "$WORK/fresh" >"$WORK/start.$i" 2>/dev/null &
    p=$!
    for _ in $(seq 100); do grep -q first_frame "$WORK/start.$i" && break; sleep 0.05; done
    kill "$p"; wait "$p" 2>/dev/null || true
    grep -o '"ms":[0-9.]*' "$WORK/start.$i" | cut -d: -f2
done | sort -n | awk '{a[NR]=$1} END {printf "first frame ms: min %s  median %s  max %s\n", a[1], a[int((NR+1)/2)], a[NR]}'

echo "== idle on the first-run screen (fresh profile)"
"$KITH" --profile "$WORK/new" >/dev/null 2>&1 &
first=$!
sleep 3
before=$(cpu_ticks "$first")
sleep 10
after=$(cpu_ticks "$first")
kill "$first"; wait "$first" 2>/dev/null || true
awk -v b="$before" -v a="$after" -v t="$ticks" 'BEGIN {printf "first-run screen idle CPU over 10 s: %.2f %% of one core\n", (a - b) / t / 10 * 100}'

echo "== idle, connected to a hub with one peer"
"$KITH" --profile "$WORK/hub" headless --name bob --host "127.0.0.1:$PORT" </dev/null >"$WORK/bob.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do grep -q '"event":"ready"' "$WORK/bob.out" && break; sleep 0.1; done
mkdir -p "$WORK/alice"
printf '{"display_name":"Alice","notifications":false}' >"$WORK/alice/settings.json"
"$KITH" --profile "$WORK/alice" --join "127.0.0.1:$PORT" >/dev/null 2>&1 &
app=$!
pids+=($app)
for _ in $(seq 100); do grep -q '"event":"peer_secure"' "$WORK/bob.out" && break; sleep 0.1; done
sleep 3
before=$(cpu_ticks "$app")
sleep 20
after=$(cpu_ticks "$app")
awk -v b="$before" -v a="$after" -v t="$ticks" 'BEGIN {printf "idle CPU over 20 s: %.2f %% of one core\n", (a - b) / t / 20 * 100}'
grep -E 'VmRSS|VmHWM' "/proc/$app/status"
