#!/usr/bin/env python3
"""Checks a Kith.app as far as a machine without macOS can: the layout Finder and Launch
Services expect, Info.plist against Apple's keys (the ones Kith uses must be there with the
right types and values; any other key must be one Apple defines, so a misspelt usage string,
which macOS would answer by killing the app when it opens the camera, fails here), PkgInfo,
and the .icns (its structure, and that each image is the size its type says, up to 1024 px).

  check_macos_bundle.py target/dist/Kith.app [--mach-o]

`--mach-o` (the release workflow, on macOS): the executable must be a Mach-O binary."""
import os
import plistlib
import re
import struct
import sys

# Apple's Info.plist keys an app like Kith may carry (Apple's "Information Property List"
# reference); a key outside this list is almost certainly a typo.
KNOWN_KEYS = {
    "CFBundleDevelopmentRegion", "CFBundleName", "CFBundleDisplayName", "CFBundleIdentifier",
    "CFBundleExecutable", "CFBundleIconFile", "CFBundleIconName", "CFBundlePackageType",
    "CFBundleInfoDictionaryVersion", "CFBundleShortVersionString", "CFBundleVersion",
    "CFBundleSignature", "CFBundleURLTypes", "CFBundleDocumentTypes", "CFBundleLocalizations",
    "LSMinimumSystemVersion", "LSApplicationCategoryType", "LSUIElement", "LSArchitecturePriority",
    "NSHighResolutionCapable", "NSCameraUsageDescription", "NSMicrophoneUsageDescription",
    "NSHumanReadableCopyright", "NSPrincipalClass", "NSSupportsAutomaticGraphicsSwitching",
    "NSRequiresAquaSystemAppearance", "NSAppTransportSecurity", "NSLocalNetworkUsageDescription",
    "NSBonjourServices", "NSDocumentsFolderUsageDescription", "NSDownloadsFolderUsageDescription",
}

# icns element types that hold one image, and the pixel size each must be.
ICNS_SIZES = {
    "is32": 16, "il32": 32, "ih32": 48, "it32": 128,  # RLE RGB, with masks below
    "s8mk": 16, "l8mk": 32, "h8mk": 48, "t8mk": 128,
    "icp4": 16, "icp5": 32, "icp6": 64, "ic07": 128, "ic08": 256, "ic09": 512,
    "ic10": 1024, "ic11": 32, "ic12": 64, "ic13": 256, "ic14": 512,  # PNG or JPEG 2000
}
VERSION = re.compile(r"^\d+(\.\d+){0,2}$")
PNG = b"\x89PNG\r\n\x1a\n"
JP2 = b"\x00\x00\x00\x0cjP  \r\n\x87\n"

problems = []


def problem(text):
    problems.append(text)


def check_plist(contents, cargo_version):
    path = os.path.join(contents, "Info.plist")
    try:
        with open(path, "rb") as f:
            info = plistlib.load(f)
    except (OSError, plistlib.InvalidFileException, ValueError) as e:
        problem(f"Info.plist cannot be read: {e}")
        return {}
    need = {
        "CFBundleIdentifier": str, "CFBundleName": str, "CFBundleExecutable": str,
        "CFBundleIconFile": str, "CFBundlePackageType": str, "CFBundleInfoDictionaryVersion": str,
        "CFBundleShortVersionString": str, "CFBundleVersion": str, "LSMinimumSystemVersion": str,
        "NSCameraUsageDescription": str, "NSMicrophoneUsageDescription": str,
        "NSHighResolutionCapable": bool,
    }
    for key, kind in need.items():
        if not isinstance(info.get(key), kind):
            problem(f"Info.plist: {key} missing or not a {kind.__name__}")
    for key in sorted(set(info) - KNOWN_KEYS):
        problem(f"Info.plist: {key} is not a key Apple defines (misspelt?)")
    ident = info.get("CFBundleIdentifier", "")
    if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", str(ident)):
        problem(f"Info.plist: CFBundleIdentifier {ident!r} is not reverse-DNS (letters, digits, -, .)")
    if len(str(info.get("CFBundleName", ""))) > 15:
        problem("Info.plist: CFBundleName is longer than 15 characters")
    if info.get("CFBundlePackageType") != "APPL":
        problem("Info.plist: CFBundlePackageType is not APPL")
    if info.get("CFBundleInfoDictionaryVersion") != "6.0":
        problem("Info.plist: CFBundleInfoDictionaryVersion is not 6.0")
    for key in ("CFBundleShortVersionString", "CFBundleVersion", "LSMinimumSystemVersion"):
        if not VERSION.match(str(info.get(key, ""))):
            problem(f"Info.plist: {key} {info.get(key)!r} is not N[.N[.N]]")
    if info.get("CFBundleShortVersionString") != cargo_version:
        problem(f"Info.plist: version {info.get('CFBundleShortVersionString')!r} is not Cargo.toml's {cargo_version!r}")
    for key in ("NSCameraUsageDescription", "NSMicrophoneUsageDescription"):
        if len(str(info.get(key, "")).strip()) < 10:
            problem(f"Info.plist: {key} must say why in words (macOS shows it in the permission prompt)")
    if info.get("NSHighResolutionCapable") is not True:
        problem("Info.plist: NSHighResolutionCapable is not true (the window would be blurry on Retina)")
    return info


def image_size(data):
    """Width and height of a PNG or JPEG 2000 image, or None."""
    if data.startswith(PNG) and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data.startswith(JP2):
        at = data.find(b"ihdr")
        if at >= 0:
            h, w = struct.unpack(">II", data[at + 4:at + 12])
            return w, h
    return None


def check_icns(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        problem(f"icon: {e}")
        return
    if data[:4] != b"icns" or struct.unpack(">I", data[4:8])[0] != len(data):
        problem("icon: not an icns file (magic or total length wrong)")
        return
    sizes, at = [], 8
    while at < len(data):
        if at + 8 > len(data):
            problem("icon: truncated element header")
            return
        kind, length = struct.unpack(">4sI", data[at:at + 8])
        kind = kind.decode("latin-1")
        if length < 8 or at + length > len(data):
            problem(f"icon: element {kind} has a bad length {length}")
            return
        body = data[at + 8:at + length]
        want = ICNS_SIZES.get(kind)
        if want is not None:
            sizes.append(want)
            got = image_size(body)
            if got is not None and got != (want, want):
                problem(f"icon: {kind} should be {want}x{want}, is {got[0]}x{got[1]}")
            if kind in ("ic07", "ic08", "ic09", "ic10", "ic11", "ic12", "ic13", "ic14") and got is None:
                problem(f"icon: {kind} holds neither PNG nor JPEG 2000")
        at += length
    if not sizes or min(sizes) > 32 or max(sizes) < 512:
        problem(f"icon: sizes {sorted(set(sizes))} do not span 16/32 to 512/1024 px")
    print(f"icon: {len(sizes)} images, {min(sizes, default=0)} to {max(sizes, default=0)} px")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        raise SystemExit(__doc__)
    app = args[0]
    contents = os.path.join(app, "Contents")
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    with open(os.path.join(root, "Cargo.toml")) as f:
        cargo_version = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
    if not app.endswith(".app"):
        problem("the bundle's name does not end in .app")
    info = check_plist(contents, cargo_version)

    exe = os.path.join(contents, "MacOS", str(info.get("CFBundleExecutable", "")))
    if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
        problem(f"Contents/MacOS/{info.get('CFBundleExecutable')} is missing or not executable")
    elif "--mach-o" in sys.argv:
        with open(exe, "rb") as f:
            magic = f.read(4)
        if magic not in (b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe"):
            problem(f"{exe} is not a Mach-O executable")
    try:
        with open(os.path.join(contents, "PkgInfo")) as f:
            if f.read() != "APPL????":
                problem("PkgInfo is not APPL????")
    except OSError as e:
        problem(f"PkgInfo: {e}")
    icon = str(info.get("CFBundleIconFile", ""))
    check_icns(os.path.join(contents, "Resources", icon if icon.endswith(".icns") else icon + ".icns"))

    for p in problems:
        print(f"FAILED: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"{app}: layout, Info.plist ({len(info)} keys), PkgInfo and icon as macOS expects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
