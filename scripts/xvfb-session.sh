# Sourced by the scripts here: a scratch directory, a private Xvfb display, a free-ish port,
# and cleanup of everything started (append pids to `pids`) when the script exits.
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
DISPLAY_NUM=:$((70 + RANDOM % 29))
Xvfb "$DISPLAY_NUM" -screen 0 1280x800x24 -nolisten tcp >"$WORK/xvfb.log" 2>&1 &
pids+=($!)
export DISPLAY=$DISPLAY_NUM
for _ in $(seq 50); do xdotool getdisplaygeometry >/dev/null 2>&1 && break; sleep 0.1; done
