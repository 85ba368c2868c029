#!/usr/bin/env bash
# The Linux package on a clean system: makes a minimal Debian root (mmdebstrap, minbase: no
# X, no Vulkan, no sound), installs the .deb there with `apt-get install ./kith_….deb` and
# without recommends, so only what the package declares comes in, and then runs Kith from the
# installed files only: --version, `kith doctor`, a hub with two headless members chatting, and
# the window under Xvfb reaching its first frame. Then it takes one declared library away
# (libxcursor1, which only the window opens) and checks that the window check fails: a
# dependency missing from the package fails this test. The tarball is unpacked in the same
# root and run too.
#
#   tests/packaging/deb-root.sh target/dist/kith_….deb target/dist/kith-….tar.gz
#
# Needs root (chroot, mounts), mmdebstrap, Xvfb, python3 and Debian's archive.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
deb=$(realpath "$1")
tarball=$(realpath "$2")
suite=bookworm
mirror=${KITH_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# Mounts for the root (/proc, /dev) live in a mount namespace of their own, so they vanish with
# it whatever happens, and the scratch folder is removed only after that.
if [ -z "${KITH_ROOT_WORK:-}" ]; then
    work=$(mktemp -d /tmp/kith-deb-root.XXXXXX)
    status=0
    KITH_ROOT_WORK="$work" unshare --mount --propagation private "$0" "$@" || status=$?
    rm -rf "$work"
    exit "$status"
fi
work=$KITH_ROOT_WORK
root=$work/root
say() { echo "deb-root: $*"; }

say "making a minimal $suite root and installing $(basename "$deb") there"
start=$SECONDS
if ! mmdebstrap --variant=minbase --mode=root \
    --customize-hook="copy-in '$deb' /tmp" \
    --customize-hook="chroot \"\$1\" apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends '/tmp/$(basename "$deb")'" \
    "$suite" "$root" "$mirror" >"$work/mmdebstrap.log" 2>&1; then
    tail -40 "$work/mmdebstrap.log"; say "FAILED: the root could not be made or the package not installed"; exit 1
fi
# What apt added for the package: its Depends, resolved.
sed -n '/The following NEW packages will be installed:/,/newly installed/p' "$work/mmdebstrap.log"
say "root ready in $((SECONDS - start)) s ($(du -sh "$root" | cut -f1))"

mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
in_root() { chroot "$root" "$@"; }

say "installed files:"
in_root dpkg -L kith | grep -E 'bin/kith$|\.desktop$|scalable|512x512'
in_root kith --version

# `kith doctor` exits 1 when chat cannot work; the window's libraries must be there too (a
# missing one is only a warning for doctor, since the hub and headless need no window).
say "kith doctor"
in_root kith --profile /tmp/doctor doctor | tee "$work/doctor.txt"
grep -Eq '^ *ok +window libraries' "$work/doctor.txt" || { say "FAILED: window libraries not all there"; exit 1; }
grep -Eq '^ *ok +(renderer|gpu|graphics)' "$work/doctor.txt" || { say "FAILED: no graphics adapter"; exit 1; }

say "hub and two headless members, all from the root"
mkdir -p "$root/tmp/chat"
python3 "$here/chat.py" --dir "$root/tmp/chat" --as-seen /tmp/chat --direct \
    --hub "chroot $root /usr/bin/kith" --alice "chroot $root /usr/bin/kith" --bob "chroot $root /usr/bin/kith"

# The window: Xvfb runs here; X clients reach it over its abstract socket, which the root
# shares with this machine (same network namespace), so nothing is mounted for it.
display=:$((40 + RANDOM % 20))
Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null || true' EXIT
sleep 1

# Starts the window on a fresh profile; succeeds when it reports its first frame.
window_opens() {
    local out=$work/window.$1
    rm -rf "$root/tmp/window" && mkdir -p "$root/tmp/window"
    printf '{"display_name":"Alice","notifications":false}' >"$root/tmp/window/settings.json"
    DISPLAY=$display KITH_REPORT_STARTUP=1 chroot "$root" /usr/bin/kith --profile /tmp/window \
        >"$out.out" 2>"$out.err" &
    local pid=$!
    for _ in $(seq 600); do
        grep -q first_frame "$out.out" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    grep -q first_frame "$out.out"
}
if window_opens full; then
    say "window: first frame in $(grep -o '"ms":[0-9.]*' "$work/window.full.out" | cut -d: -f2) ms"
else
    say "FAILED: the window did not open"; tail -20 "$work/window.full.err"; exit 1
fi

say "taking libxcursor1 away: the window check must fail"
in_root dpkg --remove --force-depends libxcursor1 >/dev/null 2>&1
if window_opens without-xcursor; then
    say "FAILED: the window opened without libxcursor1, so this test would miss a missing dependency"
    exit 1
fi
say "window without libxcursor1: did not open, as it must ($(grep -m1 -io 'xcursor[^"]*' "$work/window.without-xcursor.err" | head -c 120))"
in_root kith --profile /tmp/doctor doctor | grep -i 'window libraries'

say "the tarball, unpacked into /opt of the same root"
mkdir -p "$root/opt"
tar -C "$root/opt" -xzf "$tarball"
dir=$(basename "$tarball" .tar.gz)
in_root "/opt/$dir/bin/kith" --version
for f in share/applications/kith.desktop share/icons/hicolor/512x512/apps/kith.png share/icons/hicolor/scalable/apps/kith.svg; do
    [ -f "$root/opt/$dir/$f" ] || { say "FAILED: the tarball lacks $f"; exit 1; }
done
say "passed"
