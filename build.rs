//! Embeds build facts the app shows in `--version` and, for Windows, the icon and version
//! resource of the .exe.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // On a branch, HEAD names the branch and stays the same when a commit lands; the commit
    // is in the branch's ref file (or packed-refs), so those are watched too.
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Ok(head) = std::fs::read_to_string(".git/HEAD")
        && let Some(branch) = head.trim().strip_prefix("ref: ")
    {
        // Only files that exist: cargo reruns this script on every build for a missing one.
        for file in [format!(".git/{branch}"), ".git/packed-refs".to_string()] {
            if std::path::Path::new(&file).exists() {
                println!("cargo:rerun-if-changed={file}");
            }
        }
    }
    println!("cargo:rerun-if-changed=assets/icon.ico");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=KITH_COMMIT={commit}");
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=KITH_TARGET={target}");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows") {
        windows_resources(&commit);
    }
}

/// Icon, version and description in the .exe (what Explorer and the taskbar show). Needs a
/// resource compiler (`windres` from mingw when cross-compiling); without one the build goes
/// on with a warning rather than failing.
fn windows_resources(commit: &str) {
    let mut res = winresource::WindowsResource::new();
    res.set_icon("assets/icon.ico")
        .set("ProductName", "Kith")
        .set("FileDescription", "Kith: encrypted messages and calls")
        .set("CompanyName", "Kith developers")
        .set("LegalCopyright", "GPL-3.0-or-later")
        .set("Comments", &format!("commit {commit}"));
    if let Err(e) = res.compile() {
        println!("cargo:warning=no Windows resources (icon, version) embedded: {e}");
    }
}
