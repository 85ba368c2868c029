#!/usr/bin/env bash
# The Windows executable, run under Wine in a fresh prefix: no DLL may sit beside it (the C and
# C++ runtimes are linked in), `--version`, `kith doctor`, a `kith hub` in Wine with a Linux
# `kith headless` and a Windows one chatting through it, and the window opening under Xvfb.
#
#   tests/packaging/wine.sh target/x86_64-pc-windows-gnu/debug/kith.exe target/debug/kith
#
# Wine 8 lacks bcryptprimitives.dll (ProcessPrng, which every Rust >= 1.78 .exe imports): a
# one-function stand-in (wine/bcryptprimitives.c) is built with mingw into the prefix. It is
# part of this test, never of the download.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exe=$(realpath "$1")
linux_kith=$(realpath "$2")
work=$(mktemp -d /tmp/kith-wine.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    WINEPREFIX=$work/prefix wineserver -k 2>/dev/null || true
    [ -n "${KEEP_WINE:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
say() { echo "wine: $*"; }
export WINEPREFIX=$work/prefix WINEDEBUG=-all WINEDLLOVERRIDES="bcryptprimitives=n;mscoree,mshtml="

start=$SECONDS
wineboot -i >/dev/null 2>&1
x86_64-w64-mingw32-gcc -O2 -shared -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
    "$here/wine/bcryptprimitives.c" "$here/wine/bcryptprimitives.def" -ladvapi32
say "prefix ready in $((SECONDS - start)) s"

# Every DLL the .exe imports must be one Windows has: Wine's system32 holds its own of each
# (bcryptprimitives.dll being the stand-in above). MinGW's runtime DLLs (libstdc++-6,
# libgcc_s_seh-1, libwinpthread-1, libssp-0) are not there, so a runtime that was not linked
# statically fails here. api-ms-win-* names are API sets, which the loader maps to system DLLs.
imports=$(x86_64-w64-mingw32-objdump -p "$exe" | sed -n 's/^\s*DLL Name: //p' | tr '[:upper:]' '[:lower:]' | sort -u)
say "$(basename "$exe") imports $(echo "$imports" | wc -l) DLLs: $(echo "$imports" | tr '\n' ' ')"
missing=()
for dll in $imports; do
    case "$dll" in api-ms-win-*) continue ;; esac
    [ -e "$WINEPREFIX/drive_c/windows/system32/$dll" ] || missing+=("$dll")
done
[ "${#missing[@]}" -eq 0 ] || { say "FAILED: imports DLLs that Windows does not have: ${missing[*]}"; exit 1; }

version=$(wine "$exe" --version | tr -d '\r')
say "$version"
echo "$version" | grep -q "^kith " || { say "FAILED: --version said '$version'"; exit 1; }

# A display from here on: Wine's Vulkan goes through its X11 driver, so without one doctor
# rightly finds no adapter.
display=:$((60 + RANDOM % 20))
Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
sleep 1

say "kith doctor"
DISPLAY=$display wine "$exe" --profile "$work/doctor" doctor >"$work/doctor.txt" 2>&1 || { cat "$work/doctor.txt"; say "FAILED: doctor"; exit 1; }
tr -d '\r' <"$work/doctor.txt" | grep -v '^ALSA lib'
grep -Eq '^ok +renderer: .* on Vulkan' "$work/doctor.txt" || { say "FAILED: doctor found no Vulkan adapter"; exit 1; }

# Through the hub only: Wine 8 refuses a socket option quinn-udp sets on Windows (IP_RECVECN,
# WSAEOPNOTSUPP), so the member in Wine reports "no direct links" in words and chats on.
say "a hub and one member in Wine, one member on Linux"
mkdir -p "$work/chat"
python3 "$here/chat.py" --dir "$work/chat" \
    --hub "wine $exe" --alice "wine $exe" --bob "$linux_kith"

say "the window under Xvfb (wgpu on Vulkan: Wine's winevulkan on Mesa's lavapipe)"
mkdir -p "$work/window"
printf '{"display_name":"Alice","notifications":false}' >"$work/window/settings.json"
DISPLAY=$display WGPU_BACKEND=vulkan KITH_REPORT_STARTUP=1 wine "$exe" --profile "$work/window" \
    >"$work/window.out" 2>"$work/window.err" &
pids+=($!)
for _ in $(seq 900); do grep -q first_frame "$work/window.out" && break; sleep 0.1; done
if ! grep -q first_frame "$work/window.out"; then
    say "FAILED: no first frame within 90 s"; tail -20 "$work/window.err"; exit 1
fi
say "window: first frame in $(grep -o '"ms":[0-9.]*' "$work/window.out" | cut -d: -f2) ms"
say "passed"
