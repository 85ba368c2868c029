#!/usr/bin/env bash
# The Linux downloads, from a kith executable already built: the .deb (cargo-deb, metadata in
# Cargo.toml) and a .tar.gz laid out as a prefix (bin/, share/applications, share/icons, doc),
# so `tar -C ~/.local --strip-components=1 -xzf kith-….tar.gz` installs it for one user.
#
#   cargo build --release && scripts/package-linux.sh            # what a release ships
#   scripts/package-linux.sh dev                                 # CI: the binary its tests built
#
# Writes target/dist/ and prints the two paths. Needs cargo-deb (`cargo install cargo-deb`).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-release}
case "$profile" in
    dev) dir=debug ;;
    *) dir=$profile ;;
esac
target_dir=${CARGO_TARGET_DIR:-target}
bin=$target_dir/$dir/kith
[ -x "$bin" ] || { echo "package-linux: $bin is not built (cargo build --profile $profile)" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(uname -m)
dist=$target_dir/dist
mkdir -p "$dist"

# cargo-deb strips the executable (the dev build carries debug info) and computes $auto.
deb=$(cargo deb --no-build --profile "$profile" --output "$dist" 2>&1 | tail -1)
[ -f "$deb" ] || { echo "package-linux: cargo deb did not make a package: $deb" >&2; exit 1; }

name=kith-$version-$arch-linux
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
p=$stage/$name
install -Dm755 "$bin" "$p/bin/kith"
strip "$p/bin/kith"
install -Dm644 resources/kith.desktop "$p/share/applications/kith.desktop"
for size in 16 32 48 64 128 256 512; do
    install -Dm644 "assets/hicolor/${size}x${size}/apps/kith.png" "$p/share/icons/hicolor/${size}x${size}/apps/kith.png"
done
install -Dm644 assets/icon.svg "$p/share/icons/hicolor/scalable/apps/kith.svg"
install -Dm644 README.md "$p/share/doc/kith/README.md"
install -Dm644 LICENSE "$p/share/doc/kith/LICENSE"
# Fixed owner and times: the same binary makes the same tarball.
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name --mtime="@${SOURCE_DATE_EPOCH:-0}" \
    -czf "$dist/$name.tar.gz" "$name"
echo "$deb"
echo "$dist/$name.tar.gz"
