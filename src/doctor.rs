//! `kith doctor`: what this machine gives Kith, one line per part, in words a user can paste
//! into a bug report. Each line is `ok`, `warning` (an optional part is missing: no camera, no
//! sound server; chat works without it) or `FAILED` (chat cannot work: the profile cannot be
//! written, the hub asked about cannot be reached or refuses us). Exit 0 unless a line failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use zeroize::Zeroizing;

use crate::core::{
    CameraChoice, ClientEvent, CoreHandle, CoreOptions, IceServers, MicChoice, Profile, SpeakerChoice,
    Target, TransferConfig, TurnServer, VideoSettings,
};

/// How long a server has to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long signing in to a hub may take (a TCP connect, Noise XX, the password).
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Check this hub (host:port): reachable, and with a password (--password or
    /// KITH_PASSWORD) that it lets us in.
    #[arg(long, value_name = "HOST:PORT")]
    pub hub: Option<String>,
    /// The hub's password, to check signing in (never printed).
    #[arg(long, env = "KITH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// A STUN server to check (repeatable).
    #[arg(long = "stun", value_name = "HOST:PORT")]
    pub stun: Vec<String>,
    /// A TURN server to check (repeatable): that it answers; the credentials are used only
    /// by a call's links.
    #[arg(long = "turn", value_name = "turn:USER:PASS@HOST:PORT")]
    pub turn: Vec<TurnServer>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Status {
    Ok,
    Warning,
    Failed,
}

/// The report as it is printed, one line per part: what the summary counts.
#[derive(Default)]
struct Report {
    statuses: Vec<Status>,
}

impl Report {
    fn add(&mut self, status: Status, part: impl std::fmt::Display, text: impl std::fmt::Display) {
        let word = match status {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Failed => "FAILED",
        };
        // Printed as it comes: a slow check (a hub far away) shows what came before it.
        println!("{word:<8}{part}: {text}");
        self.statuses.push(status);
    }

    fn count(&self, status: Status) -> usize {
        self.statuses.iter().filter(|s| **s == status).count()
    }
}

pub fn run(profile_dir: Option<PathBuf>, args: DoctorArgs) -> ExitCode {
    println!("Kith {}", crate::cli::VERSION);
    let mut report = Report::default();
    report.add(Status::Ok, "system", system());
    check_profile(&mut report, profile_dir.as_deref());
    check_window(&mut report);
    check_sound(&mut report);
    check_cameras(&mut report);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            report.add(Status::Failed, "runtime", format!("cannot start the network runtime: {e}"));
            return summary(&report);
        }
    };
    for server in &args.stun {
        check_stun(&mut report, &runtime, "STUN", server);
    }
    for turn in &args.turn {
        // A TURN server is a STUN server too: a Binding answered says it is there and reachable
        // over UDP (an allocation needs the credentials, and happens in a call's links).
        check_stun(&mut report, &runtime, "TURN", &turn.addr);
    }
    if let Some(hub) = &args.hub {
        check_hub(&mut report, &runtime, hub, args.password.map(Zeroizing::new));
    }
    summary(&report)
}

fn summary(report: &Report) -> ExitCode {
    let (failed, warnings) = (report.count(Status::Failed), report.count(Status::Warning));
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    if failed > 0 {
        println!("Chat cannot work here: {}, {}.", plural(failed, "failure"), plural(warnings, "warning"));
        ExitCode::FAILURE
    } else {
        println!("Chat works here; {}.", plural(warnings, "warning"));
        ExitCode::SUCCESS
    }
}

/// The OS, its version and the machine, as far as it says.
fn system() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let arch = std::env::consts::ARCH;
    let os = os_name();
    format!("{os}, {arch}, {cpus} CPU{}", if cpus == 1 { "" } else { "s" })
}

#[cfg(target_os = "linux")]
fn os_name() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let pretty = release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown distribution".into());
    format!("Linux {} ({pretty})", kernel.trim())
}

#[cfg(not(target_os = "linux"))]
fn os_name() -> String {
    std::env::consts::OS.to_string()
}

/// Where the identity and settings live and where files go; both must be writable.
fn check_profile(report: &mut Report, dir: Option<&Path>) {
    let profile = match Profile::open(dir) {
        Ok(p) => p,
        Err(e) => {
            report.add(Status::Failed, "profile", format!("cannot be opened: {e}"));
            return;
        }
    };
    let (status, text) = writable(profile.dir());
    report.add(status, "profile", text);
    let downloads = CoreOptions::default_downloads(&profile);
    // The downloads folder is made when the first file comes: its nearest existing parent
    // must let us make it.
    let existing = downloads.ancestors().find(|p| p.exists()).unwrap_or(&downloads);
    let (status, mut text) = writable(existing);
    if existing != downloads {
        text = format!("{} (not made yet; {text})", downloads.display());
    }
    // Files are optional to chat: a folder that cannot be written is a warning.
    let status = if status == Status::Failed { Status::Warning } else { status };
    report.add(status, "downloads", text);
}

/// Whether a file can be made in `dir` (made and removed at once).
fn writable(dir: &Path) -> (Status, String) {
    match tempfile::tempfile_in(dir) {
        Ok(_) => (Status::Ok, format!("{} (writable)", dir.display())),
        Err(e) => (Status::Failed, format!("{} cannot be written: {e}", dir.display())),
    }
}

/// The window: the system libraries it loads, and the GPU adapters wgpu finds.
fn check_window(report: &mut Report) {
    let missing = crate::ui::runtime_libs::missing();
    if missing.is_empty() {
        report.add(Status::Ok, "window libraries", "present");
    } else {
        report.add(Status::Warning, "window libraries", crate::ui::runtime_libs::explain(&missing));
    }
    use eframe::egui_wgpu::wgpu;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    // OpenGL only when there is nothing better (as eframe's wgpu renderer chooses).
    let mut adapters = futures::executor::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    if adapters.is_empty() {
        adapters = futures::executor::block_on(instance.enumerate_adapters(wgpu::Backends::GL));
    }
    if adapters.is_empty() {
        report.add(
            Status::Warning,
            "renderer",
            "no GPU adapter (Vulkan, Metal, DirectX 12 or OpenGL) was found: the window cannot \
             draw; on Linux without a GPU driver, Mesa's software one (mesa-vulkan-drivers) will do",
        );
        return;
    }
    for adapter in adapters {
        let info = adapter.get_info();
        let software = if info.device_type == wgpu::DeviceType::Cpu { ", software: slow" } else { "" };
        let driver = if info.driver.is_empty() { String::new() } else { format!(", driver {}", info.driver) };
        report.add(
            Status::Ok,
            "renderer",
            format!("{} on {:?} ({:?}{driver}{software})", info.name, info.backend, info.device_type),
        );
    }
}

/// The sound system and its devices: optional (chat works without; calls need them).
fn check_sound(report: &mut Report) {
    match crate::media::audio_io::list_devices() {
        Ok(list) if list.inputs.is_empty() && list.outputs.is_empty() => report.add(
            Status::Warning,
            "sound",
            format!(
                "{}: no microphone and no speaker found: calls can be joined with the tone \
                 microphone and are heard by no one here",
                list.host
            ),
        ),
        Ok(list) => {
            // ALSA alone lists every PCM plugin as a device: the count and the defaults say
            // what matters, the names only when they are few.
            let named = |devices: &[(String, String)], default: &Option<String>, what: &str| {
                let name_of = |id: &str| devices.iter().find(|(i, _)| i == id).map(|(_, n)| n.clone());
                let default = default.as_deref().and_then(name_of).unwrap_or_else(|| "none".into());
                let count = format!("{} {what}{}", devices.len(), if devices.len() == 1 { "" } else { "s" });
                if devices.len() <= 4 {
                    let names: Vec<&str> = devices.iter().map(|(_, n)| n.as_str()).collect();
                    format!("{count} ({}), default {default}", names.join(", "))
                } else {
                    format!("{count}, default {default}")
                }
            };
            let status =
                if list.inputs.is_empty() || list.outputs.is_empty() { Status::Warning } else { Status::Ok };
            report.add(
                status,
                "sound",
                format!(
                    "{}; {}; {}",
                    list.host,
                    named(&list.inputs, &list.default_input, "microphone"),
                    named(&list.outputs, &list.default_output, "speaker")
                ),
            );
        }
        Err(e) => {
            report.add(Status::Warning, "sound", format!("no sound system: {e}; calls go on silent here"))
        }
    }
}

fn check_cameras(report: &mut Report) {
    match crate::media::video::webcam::list_cameras() {
        Ok(cameras) if !cameras.is_empty() => {
            let names: Vec<String> = cameras.iter().map(|c| c.name.clone()).collect();
            report.add(Status::Ok, "cameras", names.join(", "));
        }
        Ok(_) => report.add(
            Status::Warning,
            "cameras",
            "none found: calls go on without your video (the test-pattern camera is offered)",
        ),
        Err(e) => report.add(Status::Warning, "cameras", format!("cannot list cameras: {e}")),
    }
}

fn check_stun(report: &mut Report, runtime: &tokio::runtime::Runtime, kind: &str, server: &str) {
    let started = Instant::now();
    let part = format!("{kind} {server}");
    match runtime.block_on(crate::net::reach::public_address(server, ANSWER_TIMEOUT)) {
        Ok(ip) => report.add(
            Status::Ok,
            part,
            format!("answered in {} ms; it sees this machine as {ip}", started.elapsed().as_millis()),
        ),
        // Direct links fall back to the hub without STUN or TURN: a warning, not a failure.
        Err(e) => {
            report.add(Status::Warning, part, format!("{e}: direct links may go through the hub instead"))
        }
    }
}

/// Reachable over TCP; with a password, signed in for real by a core on a throwaway profile
/// (the user's own may be in use by the app, and the check must not pin anything in it).
fn check_hub(
    report: &mut Report,
    runtime: &tokio::runtime::Runtime,
    hub: &str,
    password: Option<Zeroizing<String>>,
) {
    let part = format!("hub {hub}");
    let started = Instant::now();
    let addrs = [hub.to_string()];
    let peer = match runtime.block_on(crate::net::connect::connect_first(&addrs, ANSWER_TIMEOUT)) {
        Ok((stream, _)) => stream.peer_addr().map(|a| a.to_string()).unwrap_or_else(|_| hub.to_string()),
        Err(e) => {
            report.add(Status::Failed, part, format!("cannot be reached: {e}"));
            return;
        }
    };
    let reachable = format!("reachable at {peer} ({} ms)", started.elapsed().as_millis());
    let Some(password) = password else {
        let hint = "pass --password or set KITH_PASSWORD to check signing in";
        report.add(Status::Ok, part, format!("{reachable}; {hint}"));
        return;
    };
    report.add(Status::Ok, &part, reachable);
    match sign_in(hub, password) {
        Ok(text) => report.add(Status::Ok, format!("{part} sign-in"), text),
        Err(e) => report.add(Status::Failed, format!("{part} sign-in"), e),
    }
}

fn sign_in(hub: &str, password: Zeroizing<String>) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a scratch profile: {e}"))?;
    let profile = Profile::open_exclusive(Some(dir.path())).map_err(|e| format!("scratch profile: {e}"))?;
    let opts = CoreOptions {
        name: "kith doctor".into(),
        password,
        invitation: None,
        rooms: vec![],
        target: Target::Hub(hub.to_string()),
        accept_new_hub_key: true,
        link_port: None,
        transfers: TransferConfig {
            downloads: dir.path().join("downloads"),
            auto_accept: false,
            max_size: 0,
        },
        ice: IceServers::default(),
        auto_answer: false,
        mic: MicChoice::Tone(440.0),
        speaker: SpeakerChoice::None,
        processing: crate::core::AudioProcessing {
            echo_cancel: false,
            noise_suppression: false,
            auto_gain: false,
        },
        camera_on: false,
        video: VideoSettings { camera: CameraChoice::None, ..VideoSettings::default() },
        tiles: None,
        profile,
    };
    let started = Instant::now();
    let mut core = CoreHandle::start(opts, None).map_err(|e| format!("{e:#}"))?;
    let outcome = loop {
        if started.elapsed() > SIGN_IN_TIMEOUT {
            break Err(format!("no answer within {} s", SIGN_IN_TIMEOUT.as_secs()));
        }
        match core.try_recv() {
            Some(ClientEvent::Ready { hub: name, .. }) => {
                break Ok(format!("signed in to \"{name}\" in {} ms", started.elapsed().as_millis()));
            }
            Some(ClientEvent::Error { fatal: true, message, .. }) => break Err(message),
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    core.shutdown();
    outcome
}
