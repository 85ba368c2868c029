#!/usr/bin/env bash
# Runs the real desktop app under Xvfb, with a second client (`kith headless`) hosting a hub and
# chatting into it, and saves screenshots of the window: docs/screenshot.png, the fingerprint
# dialog (-verify), a call from bob (-call-ringing, then accepted: -call), and Settings during
# the call (-settings).
#
#   scripts/screenshot.sh [path/to/kith] [out.png]
#
# Needs: xvfb, xdotool, imagemagick (import), mesa-vulkan-drivers (wgpu renders on lavapipe).
set -euo pipefail
cd "$(dirname "$0")/.."
KITH=${1:-target/debug/kith}
OUT=${2:-docs/screenshot.png}
[ -x "$KITH" ] || cargo build --locked --bin kith
KITH=$(realpath "$KITH")
export KITH_PASSWORD="screenshot-pw"
# shellcheck source=scripts/xvfb-session.sh
. scripts/xvfb-session.sh

# Bob hosts the hub from a terminal client and will talk.
mkfifo "$WORK/bob.in"
"$KITH" --profile "$WORK/bob" headless --name bob --host "127.0.0.1:$PORT" --hub-rooms general,random \
    --mic tone:440 --speaker null --camera test-pattern --video-size 640x360 \
    <"$WORK/bob.in" >"$WORK/bob.out" 2>"$WORK/bob.err" &
pids+=($!)
exec 3>"$WORK/bob.in"
for _ in $(seq 100); do grep -q '"event":"ready"' "$WORK/bob.out" 2>/dev/null && break; sleep 0.1; done

# Alice is the desktop app: already onboarded, joining bob's hub at start.
mkdir -p "$WORK/alice"
printf '{"display_name":"Alice","theme":"dark","notifications":false,"camera":"test-pattern","camera_size":"640x360"}' >"$WORK/alice/settings.json"
"$KITH" --profile "$WORK/alice" --join "127.0.0.1:$PORT" --room general >"$WORK/alice.out" 2>"$WORK/alice.err" &
pids+=($!)
for _ in $(seq 100); do grep -q '"event":"peer_secure"' "$WORK/bob.out" 2>/dev/null && break; sleep 0.1; done
grep -q '"event":"peer_secure"' "$WORK/bob.out" || { echo "alice never connected"; cat "$WORK/alice.err"; exit 1; }

say() { printf '%s\n' "$1" >&3; sleep 0.4; }
say '{"cmd":"send","room":"general","text":"Hey Alice! Did the hub come up on your side?"}'
say '{"cmd":"send","room":"general","text":"I put the photos from Saturday in the shared folder. The ones by the lake came out great."}'
WIN=$(xdotool search --sync --name '^Kith' | head -1)
xdotool windowfocus --sync "$WIN" || true
sleep 0.5
xdotool type --delay 20 "Works here. Let's verify each other first, I'll open the fingerprint dialog."
xdotool key Return
sleep 0.6
say '{"cmd":"send","room":"general","text":"This one disappears in five minutes: the door code is 4711.","expires_in_s":300}'
# Bob offers alice a picture over their direct link: the transfers strip shows the offer.
ALICE_FP=$(sed -n 's/.*"event":"peer_secure","peer":"\([0-9a-f]*\)".*/\1/p' "$WORK/bob.out" | head -1)
cp assets/icon-256.png "$WORK/lake.png"
for _ in $(seq 50); do grep -q '"event":"link".*"kind":"direct"' "$WORK/bob.out" && break; sleep 0.1; done
say "{\"cmd\":\"send_file\",\"peer\":\"$ALICE_FP\",\"path\":\"$WORK/lake.png\"}"
sleep 1.5
mkdir -p "$(dirname "$OUT")"
import -window "$WIN" "$OUT"
echo "saved $OUT"
# The fingerprint dialog, opened by clicking bob in the member list.
xdotool mousemove --window "$WIN" 40 226 click 1
sleep 1
import -window "$WIN" "${OUT%.png}-verify.png"
echo "saved ${OUT%.png}-verify.png"
# Carol joins from another terminal client, with a test-pattern camera too; she answers calls.
mkfifo "$WORK/carol.in"
"$KITH" --profile "$WORK/carol" headless --name carol --hub "127.0.0.1:$PORT" --room general \
    --mic tone:660 --speaker null --camera test-pattern --video-size 640x360 --auto-answer \
    <"$WORK/carol.in" >"$WORK/carol.out" 2>"$WORK/carol.err" &
pids+=($!)
exec 4>"$WORK/carol.in"
for _ in $(seq 100); do [ "$(grep -c '"event":"link".*"kind":"direct"' "$WORK/carol.out" 2>/dev/null)" -ge 2 ] && break; sleep 0.1; done
# Bob calls the room: a banner rings in the window; Accept joins, and the call grid shows bob's
# and carol's test patterns once alice's camera is on too.
xdotool key Escape
sleep 0.5
say '{"cmd":"call","room":"general"}'
sleep 1.5
import -window "$WIN" "${OUT%.png}-call-ringing.png"
echo "saved ${OUT%.png}-call-ringing.png"
xdotool mousemove --window "$WIN" "${ACCEPT_X:-205}" "${ACCEPT_Y:-68}" click 1
sleep 2
xdotool mousemove --window "$WIN" "${CAMERA_X:-938}" "${CAMERA_Y:-18}" click 1
sleep 4
import -window "$WIN" "${OUT%.png}-call.png"
echo "saved ${OUT%.png}-call.png"
# Settings during the call: devices, the microphone's meter, push-to-talk.
xdotool mousemove --window "$WIN" "${GEAR_X:-1015}" "${GEAR_Y:-18}" click 1
sleep 2
import -window "$WIN" "${OUT%.png}-settings.png"
echo "saved ${OUT%.png}-settings.png"
printf '{"cmd":"quit"}\n' >&3
printf '{"cmd":"quit"}\n' >&4
