//! The system libraries the window loads while it starts. winit and the renderer open them
//! with `dlopen`, so the dynamic linker does not catch a missing one at start: on a minimal
//! system the app would panic deep in a binding crate, or say "no display". Checked first, a
//! missing one is named with the package that has it.

/// A library the window needs, and the Debian/Ubuntu package that ships it.
pub struct Needed {
    pub library: &'static str,
    pub package: &'static str,
}

const fn lib(library: &'static str, package: &'static str) -> Needed {
    Needed { library, package }
}

/// What an X11 session needs (winit's X11 backend).
const X11: &[Needed] = &[
    lib("libX11.so.6", "libx11-6"),
    lib("libX11-xcb.so.1", "libx11-xcb1"),
    lib("libXcursor.so.1", "libxcursor1"),
    lib("libXi.so.6", "libxi6"),
    lib("libxkbcommon.so.0", "libxkbcommon0"),
    lib("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
];

/// What a Wayland session needs.
const WAYLAND: &[Needed] =
    &[lib("libwayland-client.so.0", "libwayland-client0"), lib("libxkbcommon.so.0", "libxkbcommon0")];

/// Either renderer will do: Vulkan (Mesa's lavapipe without a GPU driver) or OpenGL ES.
const RENDERERS: &[Needed] = &[lib("libvulkan.so.1", "mesa-vulkan-drivers"), lib("libEGL.so.1", "libegl1")];

/// The libraries of this session that cannot be loaded (empty on other systems).
pub fn missing() -> Vec<&'static Needed> {
    if !cfg!(all(unix, not(target_os = "macos"))) {
        return Vec::new();
    }
    let wayland = std::env::var_os("WAYLAND_DISPLAY").is_some();
    let session = if wayland { WAYLAND } else { X11 };
    let mut missing = absent(session);
    if absent(RENDERERS).len() == RENDERERS.len() {
        missing.push(&RENDERERS[0]);
    }
    missing
}

fn absent(libs: &'static [Needed]) -> Vec<&'static Needed> {
    libs.iter().filter(|l| !loads(l.library)).collect()
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn loads(_library: &str) -> bool {
    true
}

#[cfg(all(unix, not(target_os = "macos")))]
fn loads(library: &str) -> bool {
    // SAFETY: these are the system libraries the window would load a moment later anyway;
    // loading one runs its initialisers, and it is closed again at once.
    unsafe { libloading::Library::new(library) }.is_ok()
}

/// The message for a user: what is missing and the command that installs it.
pub fn explain(missing: &[&Needed]) -> String {
    let libs: Vec<&str> = missing.iter().map(|m| m.library).collect();
    let mut packages: Vec<&str> = missing.iter().map(|m| m.package).collect();
    packages.dedup();
    format!(
        "the window needs {}, which this system does not have. On Debian or Ubuntu: \
         sudo apt-get install {}\n(`kith headless` and `kith hub` work without them.)",
        libs.join(", "),
        packages.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_library_that_is_not_there_is_named_with_its_package() {
        static ABSENT: &[Needed] = &[lib("libkith-no-such-library.so.0", "kith-test-package")];
        let missing = absent(ABSENT);
        assert_eq!(missing.len(), 1);
        let text = explain(&missing);
        assert!(text.contains("libkith-no-such-library.so.0"), "{text}");
        assert!(text.contains("sudo apt-get install kith-test-package"), "{text}");
        // The C library is always there.
        assert!(loads("libc.so.6"));
    }
}
