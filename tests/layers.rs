//! The modules depend one way: ui and cli → core → protocol, with net the only layer that
//! touches sockets, files and clocks. Read from the sources, so a shortcut across the layers
//! fails here, with the file and the line, instead of growing quietly.

use std::path::{Path, PathBuf};

fn sources(dir: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).expect("read src") {
                stack.push(e.expect("dir entry").path());
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    assert!(!out.is_empty(), "no sources under {dir}");
    out
}

/// Lines of code (comments left out) before the file's unit tests, which may use anything (a
/// module's `tests.rs` beside it is all unit tests: it is compiled only under `cfg(test)`).
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return Vec::new();
    }
    let text = std::fs::read_to_string(path).expect("read source");
    text.lines()
        .enumerate()
        .take_while(|(_, l)| l.trim() != "#[cfg(test)]")
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

fn forbid(files: &[PathBuf], words: &[&str], why: &str) {
    let mut found = Vec::new();
    for f in files {
        for (n, line) in code_lines(f) {
            for w in words {
                if line.contains(w) {
                    found.push(format!("{}:{n}: {}", f.display(), line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "{why}:\n{}", found.join("\n"));
}

#[test]
fn front_ends_reach_the_core_only_through_core() {
    let mut files = sources("src/ui");
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli.rs"));
    forbid(&files, &["crate::protocol", "crate::net"], "the ui and the cli use `crate::core`");
}

#[test]
fn the_protocol_layer_does_no_io_and_reads_no_clock() {
    forbid(
        &sources("src/protocol"),
        &[
            "crate::net",
            "crate::core",
            "crate::ui",
            "crate::cli",
            "tokio",
            "std::fs",
            "UdpSocket",
            "TcpStream",
            "Instant::now",
            "SystemTime",
            "thread_rng",
            "OsRng",
        ],
        "protocol is sans-IO: time, randomness and bytes are passed in",
    );
}

#[test]
fn net_and_core_know_nothing_of_the_front_ends() {
    let mut files = sources("src/net");
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core.rs"));
    forbid(&files, &["crate::ui", "crate::cli"], "net and core serve any front-end");
}

#[test]
fn views_push_actions_instead_of_holding_the_app() {
    let views: Vec<PathBuf> =
        sources("src/ui").into_iter().filter(|p| !p.ends_with("app.rs") && !p.ends_with("mod.rs")).collect();
    forbid(&views, &["super::app", "KithApp"], "views depend on actions, model and view state");
}

#[test]
fn the_media_layer_runs_on_its_own_threads_and_knows_only_the_protocol_vocabulary() {
    forbid(
        &sources("src/media"),
        &["crate::net", "crate::core", "crate::ui", "crate::cli", "tokio"],
        "media talks to the net thread through its own bounded queues, never Tokio's",
    );
}

#[test]
fn the_audio_callbacks_touch_only_their_rings() {
    // The two cpal callbacks are `push_mono` and `fill_from`: no lock, no allocation, no
    // channel, no logging in either (all of which can block or allocate on a real-time thread).
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/media/audio_io.rs"))
        .expect("read audio_io.rs");
    for callback in ["fn push_mono", "fn fill_from"] {
        let start = text.find(callback).unwrap_or_else(|| panic!("{callback} is gone"));
        let body = &text[start..];
        let end = body.find("\n}\n").expect("end of the function");
        let body = &body[..end];
        for word in
            ["Mutex", "lock(", "Vec", "vec!", "Box", "String", "format!", "tracing", "send(", "println"]
        {
            assert!(!body.contains(word), "{callback} uses {word}:\n{body}");
        }
    }
}
