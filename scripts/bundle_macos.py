#!/usr/bin/env python3
"""Kith.app from a macOS kith executable: Contents/Info.plist (resources/Info.plist with the
version taken from Cargo.toml, so the two cannot drift), Contents/MacOS/kith, and
Contents/Resources/kith.icns drawn from assets/icon.svg at every size macOS asks for.

  scripts/bundle_macos.py target/aarch64-apple-darwin/release/kith target/dist

The icon: rsvg-convert draws the PNGs; Apple's `iconutil` packs them where it exists (the
release workflow's macOS runner), libicns' `png2icns` (Debian: icnsutils) elsewhere, so CI
on Linux checks the same bundle layout. Prints the bundle's path."""
import os
import plistlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def cargo_version():
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        for line in f:
            m = re.match(r'^version = "([^"]+)"', line)
            if m:
                return m.group(1)
    raise SystemExit("bundle_macos: no version in Cargo.toml")


def draw(svg, size, path):
    subprocess.run(["rsvg-convert", "-w", str(size), "-h", str(size), svg, "-o", path], check=True)


def make_icns(out):
    svg = os.path.join(ROOT, "assets", "icon.svg")
    with tempfile.TemporaryDirectory() as tmp:
        if shutil.which("iconutil"):
            # The iconset names iconutil expects: each size at 1x and 2x.
            iconset = os.path.join(tmp, "kith.iconset")
            os.mkdir(iconset)
            for size in (16, 32, 128, 256, 512):
                draw(svg, size, os.path.join(iconset, f"icon_{size}x{size}.png"))
                draw(svg, size * 2, os.path.join(iconset, f"icon_{size}x{size}@2x.png"))
            subprocess.run(["iconutil", "-c", "icns", iconset, "-o", out], check=True)
        else:
            # libicns takes these sizes (no 64); 1024 is the 512@2x Retina image.
            pngs = []
            for size in (16, 32, 48, 128, 256, 512, 1024):
                pngs.append(os.path.join(tmp, f"{size}.png"))
                draw(svg, size, pngs[-1])
            subprocess.run(["png2icns", out] + pngs, check=True, stdout=subprocess.DEVNULL)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    exe, dist = sys.argv[1], sys.argv[2]
    app = os.path.join(dist, "Kith.app")
    shutil.rmtree(app, ignore_errors=True)
    contents = os.path.join(app, "Contents")
    os.makedirs(os.path.join(contents, "MacOS"))
    os.makedirs(os.path.join(contents, "Resources"))

    with open(os.path.join(ROOT, "resources", "Info.plist"), "rb") as f:
        info = plistlib.load(f)
    version = cargo_version()
    info["CFBundleShortVersionString"] = version
    info["CFBundleVersion"] = version
    with open(os.path.join(contents, "Info.plist"), "wb") as f:
        plistlib.dump(info, f, fmt=plistlib.FMT_XML)
    # The legacy type/creator file Finder still reads.
    with open(os.path.join(contents, "PkgInfo"), "w") as f:
        f.write("APPL????")

    target = os.path.join(contents, "MacOS", info["CFBundleExecutable"])
    shutil.copyfile(exe, target)
    os.chmod(target, 0o755)
    make_icns(os.path.join(contents, "Resources", info["CFBundleIconFile"]))
    print(app)


if __name__ == "__main__":
    main()
