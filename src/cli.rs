//! Command line: `kith hub`, `kith headless`, and the desktop app with no subcommand.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use zeroize::Zeroizing;

use crate::core::{
    CameraChoice, ClientCommand, ClientEvent, CoreHandle, CoreOptions,
    HUB_MAX_CONNECTIONS as DEFAULT_MAX_CONNECTIONS, HubConfig, HubOptions, IceServers, Invitation, MicChoice,
    Profile, SpeakerChoice, Target, TransferConfig, TurnServer, VideoSettings, VideoSize, spawn_hub,
};

/// `0.1.0 (commit abc123, x86_64-unknown-linux-gnu)`.
pub const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("KITH_COMMIT"), ", ", env!("KITH_TARGET"), ")");

#[derive(Parser, Debug)]
#[command(name = "kith", version = VERSION, about = "End-to-end encrypted chat between people who trust each other")]
pub struct Cli {
    /// Profile directory (identity, known peers, pinned hubs). Default: the platform config dir.
    #[arg(long, global = true, value_name = "DIR")]
    pub profile: Option<PathBuf>,
    /// Desktop app: join this hub (host:port) at start, with the password from KITH_PASSWORD.
    #[arg(long, value_name = "HOST:PORT")]
    pub join: Option<String>,
    /// Desktop app: a kith:// invitation to join (how the desktop opens kith:// links).
    #[arg(value_name = "KITH_LINK", conflicts_with = "join")]
    pub link: Option<String>,
    /// Desktop app: the room to join with --join.
    #[arg(long = "room", value_name = "ROOM", default_value = "general")]
    pub join_room: String,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a hub: authenticates members and forwards their encrypted traffic.
    Hub(HubArgs),
    /// A terminal client speaking JSON lines (commands on stdin, events on stdout).
    Headless(Box<HeadlessArgs>),
    /// What this machine gives Kith (system, profile, window, sound, cameras; STUN, TURN and a
    /// hub when named), one line each, for a bug report. Exits 1 when chat cannot work.
    Doctor(crate::doctor::DoctorArgs),
}

#[derive(Args, Debug)]
pub struct HubArgs {
    /// Address to listen on: [::]:7447 (the default) is every address, IPv4 and IPv6;
    /// 0.0.0.0:7447 every IPv4 address.
    #[arg(long, default_value = "[::]:7447")]
    pub listen: SocketAddr,
    /// Room password members must present.
    #[arg(long, env = "KITH_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Comma-separated rooms.
    #[arg(long, value_delimiter = ',', default_value = "general,random")]
    pub rooms: Vec<String>,
    /// Name shown to members.
    #[arg(long, default_value = "kith hub")]
    pub name: String,
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds a new connection has to finish the handshake and authenticate.
    #[arg(long, default_value_t = 10)]
    pub auth_timeout: u64,
}

#[derive(Args, Debug)]
pub struct HeadlessArgs {
    /// Your display name.
    #[arg(long)]
    pub name: String,
    /// Hub to connect to (host:port).
    #[arg(long, conflicts_with_all = ["host", "invite"], required_unless_present_any = ["host", "invite"])]
    pub hub: Option<String>,
    /// Host the hub in this process, listening on this address ([::]:PORT for IPv4 and IPv6);
    /// prints the invitation friends join with.
    #[arg(long, conflicts_with = "invite")]
    pub host: Option<SocketAddr>,
    /// Join with an invitation (a kith:// link) in place of --hub: the hub's key is pinned
    /// and the inviter known and verified before anyone is met.
    #[arg(long, value_name = "LINK")]
    pub invite: Option<String>,
    /// The hub's password (not needed when the invitation carries it).
    #[arg(long, env = "KITH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Room to join; repeat for several.
    #[arg(long = "room", default_value = "general")]
    pub rooms: Vec<String>,
    /// Rooms of the hosted hub (with --host).
    #[arg(long, value_delimiter = ',', default_value = "general,random")]
    pub hub_rooms: Vec<String>,
    /// Accept a hub key that differs from the one pinned for this address.
    #[arg(long)]
    pub accept_new_hub_key: bool,
    /// UDP port for direct links to peers (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub link_port: u16,
    /// Never open direct links: everything goes through the hub.
    #[arg(long)]
    pub no_direct: bool,
    /// STUN server (HOST:PORT) for the direct links' public address; repeat for several.
    #[arg(long = "stun", value_name = "HOST:PORT")]
    pub stun: Vec<String>,
    /// TURN server to relay the direct links when no direct path works; repeat for several.
    #[arg(long = "turn", value_name = "turn:USER:PASS@HOST:PORT")]
    pub turn: Vec<TurnServer>,
    /// Folder for received files (default: your downloads folder).
    #[arg(long)]
    pub downloads: Option<PathBuf>,
    /// Accept every offered file without asking (up to --max-file-size).
    #[arg(long)]
    pub accept_files: bool,
    /// Largest file accepted, in bytes; larger offers are declined.
    #[arg(long, default_value_t = crate::core::DEFAULT_MAX_FILE_SIZE)]
    pub max_file_size: u64,
    /// Join every call that rings (when not in one already).
    #[arg(long)]
    pub auto_answer: bool,
    /// What calls send: tone:HZ (a test tone), wav:PATH (a WAV file, looped), default (the
    /// system's microphone), none, or an input device's name.
    #[arg(long, default_value = "default", value_name = "tone:HZ|wav:PATH|default|none|DEVICE")]
    pub mic: MicChoice,
    /// Where calls play: default (the system's speaker), null (nowhere, at a sound card's
    /// pace), none, or an output device's name.
    #[arg(long, default_value = "default", value_name = "default|null|none|DEVICE")]
    pub speaker: SpeakerChoice,
    /// What calls show of us: test-pattern (moving bars carrying their frame number and
    /// capture time), default (the system's camera), none, or a camera's name.
    #[arg(long, default_value = "none", value_name = "test-pattern|default|none|DEVICE")]
    pub camera: CameraChoice,
    /// The size the camera sends.
    #[arg(long, default_value = "1280x720", value_name = "WxH")]
    pub video_size: VideoSize,
    /// The camera's frame rate.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub fps: u32,
    /// Turn off echo cancellation of a real microphone.
    #[arg(long)]
    pub no_echo_cancel: bool,
    /// Turn off noise suppression of a real microphone.
    #[arg(long)]
    pub no_noise_suppression: bool,
    /// Turn off automatic gain of a real microphone.
    #[arg(long)]
    pub no_auto_gain: bool,
}

pub fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Some(Command::Hub(args)) => run_hub(cli.profile, args),
        Some(Command::Headless(args)) => run_headless(cli.profile, *args),
        Some(Command::Doctor(args)) => crate::doctor::run(cli.profile, args),
        None => match crate::ui::run(cli.profile, autojoin(cli.join.or(cli.link), cli.join_room), started) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let text = e.to_string();
                if text.contains("kith headless") {
                    eprintln!("kith: {text}");
                } else {
                    eprintln!(
                        "kith: {text}\nNo display? `kith headless` and `kith hub` work without one; see `kith --help`."
                    );
                }
                ExitCode::from(2)
            }
        },
    }
}

/// `--join` for the desktop app; the password comes from the environment, never argv.
fn autojoin(addr: Option<String>, room: String) -> Option<crate::ui::app::AutoJoin> {
    let addr = addr?;
    let password = Zeroizing::new(std::env::var("KITH_PASSWORD").unwrap_or_default());
    Some(crate::ui::app::AutoJoin { addr, room, password })
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // stdout is reserved for JSON lines; logs go to stderr.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn print_json(value: &impl serde::Serialize) {
    let mut out = std::io::stdout().lock();
    if let Ok(line) = serde_json::to_string(value) {
        // A closed stdout (the reader went away) is not worth a panic.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn error_line(code: &str, message: impl Into<String>, fatal: bool) -> ExitCode {
    let ev = if fatal { ClientEvent::fatal(code, message) } else { ClientEvent::error(code, message) };
    print_json(&ev);
    ExitCode::FAILURE
}

/// Raises the open-files soft limit to the hard limit: each member is a socket.
fn raise_fd_limit() {
    #[cfg(unix)]
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!("cannot raise the open-files limit: {e}");
    }
}

fn run_hub(profile: Option<PathBuf>, args: HubArgs) -> ExitCode {
    raise_fd_limit();
    let profile = match Profile::open(profile.as_deref()) {
        Ok(p) => p,
        Err(e) => return error_line("profile", e.to_string(), true),
    };
    let keypair = match profile.hub_key() {
        Ok(k) => k,
        Err(e) => return error_line("profile", e.to_string(), true),
    };
    let rooms: Vec<String> =
        args.rooms.iter().map(|r| r.trim().to_string()).filter(|r| !r.is_empty()).collect();
    if rooms.is_empty() {
        return error_line("bad_rooms", "at least one room is needed", true);
    }
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("kith-hub").build() {
            Ok(rt) => rt,
            Err(e) => return error_line("runtime", e.to_string(), true),
        };
    runtime.block_on(async move {
        let listener = match crate::core::bind_listener(args.listen) {
            Ok(l) => l,
            Err(e) => {
                return error_line("listen_failed", format!("cannot listen on {}: {e}", args.listen), true);
            }
        };
        let options = HubOptions {
            config: HubConfig {
                name: args.name.clone(),
                password: Zeroizing::new(args.password),
                rooms: rooms.clone(),
            },
            max_connections: args.max_connections,
            auth_timeout_ms: args.auth_timeout.saturating_mul(1000),
            key_substitution: None,
        };
        let hub = match spawn_hub(listener, options, keypair) {
            Ok(h) => h,
            Err(e) => return error_line("listen_failed", e.to_string(), true),
        };
        print_json(&serde_json::json!({
            "event": "listening",
            "addr": hub.local_addr.to_string(),
            "fingerprint": hub.fingerprint().to_string(),
            "name": args.name,
            "rooms": rooms,
        }));
        wait_for_signal().await;
        hub.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn run_headless(profile: Option<PathBuf>, args: HeadlessArgs) -> ExitCode {
    let profile = match Profile::open_exclusive(profile.as_deref()) {
        Ok(p) => p,
        Err(e) => return error_line("profile", e.to_string(), true),
    };
    let invitation = match args.invite.as_deref().map(Invitation::parse) {
        Some(Ok(inv)) => Some(inv),
        Some(Err(e)) => return error_line("bad_invitation", e.to_string(), true),
        None => None,
    };
    let target = match (&args.hub, args.host) {
        (_, Some(listen)) => {
            let mut rooms = args.hub_rooms.clone();
            for r in &args.rooms {
                if !rooms.contains(r) {
                    rooms.push(r.clone());
                }
            }
            let hub_name = format!("{}'s hub", args.name);
            Target::Host { listen, rooms, hub_name, stun: args.stun.clone() }
        }
        (Some(addr), None) => Target::Hub(addr.clone()),
        (None, None) => match &invitation {
            Some(inv) => Target::Hub(inv.hubs[0].clone()),
            None => return error_line("usage", "pass --hub ADDR, --host ADDR or --invite LINK", true),
        },
    };
    let password = match (args.password, invitation.as_ref().and_then(|i| i.password.clone())) {
        (Some(p), _) => Zeroizing::new(p),
        (None, Some(p)) => p,
        (None, None) => return error_line("usage", "pass --password (or set KITH_PASSWORD)", true),
    };
    let opts = CoreOptions {
        name: args.name,
        password,
        invitation,
        rooms: args.rooms,
        target,
        accept_new_hub_key: args.accept_new_hub_key,
        link_port: (!args.no_direct).then_some(args.link_port),
        transfers: TransferConfig {
            downloads: args.downloads.clone().unwrap_or_else(|| CoreOptions::default_downloads(&profile)),
            auto_accept: args.accept_files,
            max_size: args.max_file_size,
        },
        ice: IceServers { stun: args.stun, turn: args.turn },
        auto_answer: args.auto_answer,
        mic: args.mic,
        speaker: args.speaker,
        processing: crate::core::AudioProcessing {
            echo_cancel: !args.no_echo_cancel,
            noise_suppression: !args.no_noise_suppression,
            auto_gain: !args.no_auto_gain,
        },
        camera_on: args.camera != CameraChoice::None,
        video: VideoSettings { camera: args.camera, size: args.video_size, fps: args.fps },
        tiles: None,
        profile,
    };
    let mut core = match CoreHandle::start(opts, None) {
        Ok(c) => c,
        Err(e) => return error_line("startup", format!("{e:#}"), true),
    };
    let commands = core.command_sender();
    let stdin_thread = std::thread::Builder::new().name("kith-stdin".into()).spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<ClientCommand>(&line) {
                Ok(cmd) => {
                    let quit = cmd == ClientCommand::Quit;
                    if commands.blocking_send(cmd).is_err() || quit {
                        return;
                    }
                }
                Err(e) => print_json(&ClientEvent::error("bad_command", format!("{e}: {line}"))),
            }
        }
        // End of input is not a quit: `kith headless … < /dev/null` keeps listening until
        // `{"cmd":"quit"}` or a signal.
    });
    if let Err(e) = stdin_thread {
        return error_line("startup", e.to_string(), true);
    }
    let mut failed = false;
    while let Some(ev) = core.recv_blocking() {
        if matches!(ev, ClientEvent::Error { fatal: true, .. }) {
            failed = true;
        }
        print_json(&ev);
    }
    let core_failed = core.shutdown();
    if failed || core_failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
