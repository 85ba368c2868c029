//! The handle both front-ends use: start the core on its own "kith-net" thread, send
//! [`ClientCommand`]s, receive [`ClientEvent`]s. The GUI polls without blocking and is woken
//! by a callback; `kith headless` blocks on the event queue from its own thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::media::meter::MicMeter;
use crate::net::client_driver::Driver;
use crate::net::disk::{self, Disk};
use crate::net::front::FrontEnd;
use crate::net::hub_server::{self, DEFAULT_MAX_CONNECTIONS};
use crate::net::link_socket::LinkSocket;
use crate::net::media::Media;
use crate::net::profile_writer::ProfileWriter;
use crate::net::reach;
use crate::protocol::client::{Client, ClientConfig};
use crate::protocol::core::Core;
use crate::protocol::hub::AUTH_TIMEOUT_MS;
use crate::protocol::links::Links;
use crate::protocol::nat::Nat;
use crate::protocol::transfer::Transfers;
pub use crate::protocol::transfer::{DEFAULT_MAX_SIZE as DEFAULT_MAX_FILE_SIZE, TransferConfig};

// What the front-ends use of the net layer: they reach it through here only.
pub use crate::net::hub_server::{
    DEFAULT_MAX_CONNECTIONS as HUB_MAX_CONNECTIONS, HubOptions, bind_listener, spawn_hub,
};
pub use crate::net::now_ms;
pub use crate::net::profile::{Profile, write_atomic};
pub use crate::protocol::nat::{IceServers, TurnServer};
// The protocol's vocabulary the front-ends speak.
pub use crate::media::apm::ApmSettings as AudioProcessing;
pub use crate::media::devices::{MicChoice, SpeakerChoice};
pub use crate::media::ringer::Ringer;
pub use crate::media::video::engine::{CameraChoice, VideoSettings};
pub use crate::media::video::frame::VideoSize;
pub use crate::media::video::tiles::{Rgba, TileKey, TileReader, Tiles};
pub use crate::protocol::events::{AudioStats, ClientCommand, ClientEvent, LinkKind, VideoStats};
pub use crate::protocol::hub::HubConfig;
pub use crate::protocol::identity::{Fingerprint, IdentityKey, SAS_EMOJI};
pub use crate::protocol::invite::{Invitation, InviteError, MAX_HUBS as MAX_INVITE_HUBS};
pub use crate::protocol::wire::{MAX_NAME, MAX_ROOM, MAX_TEXT, sanitize_name};

/// Commands queued towards the core; a full queue is reported, never waited on by the UI.
const COMMAND_QUEUE: usize = 256;
const EVENT_QUEUE: usize = 4096;

#[derive(Debug, Clone)]
pub enum Target {
    /// Connect to a hub at this address.
    Hub(String),
    /// Run the hub inside this process on this address, and connect to it.
    /// `stun` servers are asked for the public address to show friends.
    Host { listen: SocketAddr, rooms: Vec<String>, hub_name: String, stun: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct CoreOptions {
    pub profile: Profile,
    pub name: String,
    pub password: Zeroizing<String>,
    pub rooms: Vec<String>,
    pub target: Target,
    pub accept_new_hub_key: bool,
    /// UDP port for direct links (0: any free port); `None` keeps all traffic on the hub.
    pub link_port: Option<u16>,
    /// Where received files go and which offers are taken.
    pub transfers: TransferConfig,
    /// STUN and TURN servers for the direct links' candidates.
    pub ice: IceServers,
    /// Joining with an invitation: its hub key is pinned and its inviter known and verified
    /// before anyone is met.
    pub invitation: Option<Invitation>,
    /// Join every call that rings (headless `--auto-answer`).
    pub auto_answer: bool,
    /// The microphone and speaker calls use.
    pub mic: MicChoice,
    pub speaker: SpeakerChoice,
    /// Echo cancellation, noise suppression, gain control for a real microphone.
    pub processing: AudioProcessing,
    /// The camera calls use, its size and frame rate, and whether it starts on.
    pub video: VideoSettings,
    pub camera_on: bool,
    /// The window's video tiles (`None` headless: decoded pictures are not converted for one).
    pub tiles: Option<Arc<Tiles>>,
}

impl CoreOptions {
    /// The downloads folder a front-end uses unless told otherwise: the user's, or one in
    /// the profile.
    pub fn default_downloads(profile: &Profile) -> std::path::PathBuf {
        directories::UserDirs::new()
            .and_then(|d| d.download_dir().map(|p| p.to_path_buf()))
            .unwrap_or_else(|| profile.dir().join("downloads"))
    }
}

/// Asks each STUN server in turn for our public address and reports the first answer, or
/// one non-fatal error naming every server that failed.
async fn ask_stun(servers: Vec<String>, port: u16, events: mpsc::Sender<ClientEvent>, wake: Option<Waker>) {
    let mut failures = Vec::new();
    if servers.is_empty() {
        failures.push("no STUN servers are configured".to_string());
    }
    let mut event = None;
    for server in servers {
        match reach::public_address(&server, STUN_TIMEOUT).await {
            Ok(ip) => {
                let addr = SocketAddr::new(ip, port).to_string();
                event = Some(ClientEvent::PublicAddress { addr, via: server });
                break;
            }
            Err(e) => failures.push(e),
        }
    }
    let event = event.unwrap_or_else(|| ClientEvent::error("stun_failed", failures.join("; ")));
    if events.send(event).await.is_ok()
        && let Some(wake) = wake
    {
        wake();
    }
}

/// How long one STUN server gets to answer.
const STUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(4);

pub struct CoreHandle {
    commands: mpsc::Sender<ClientCommand>,
    events: mpsc::Receiver<ClientEvent>,
    thread: Option<JoinHandle<bool>>,
    mic_meter: Arc<MicMeter>,
}

pub type Waker = Arc<dyn Fn() + Send + Sync>;

impl CoreHandle {
    /// Loads the profile (errors here are reported before anything starts) and starts the
    /// core thread.
    pub fn start(opts: CoreOptions, wake: Option<Waker>) -> anyhow::Result<Self> {
        let identity = opts.profile.identity()?;
        let me = IdentityKey::from(&identity.public);
        let mut known = opts.profile.known_peers()?;
        let mut pins = opts.profile.hub_pins()?;
        if let (Some(inv), Target::Hub(addr)) = (&opts.invitation, &opts.target) {
            known.introduce(inv.inviter, &inv.inviter_name, now_ms());
            opts.profile.save_known_peers(&known)?;
            // The invitation's key is the hub's, whatever was pinned for the address before.
            pins.hubs.insert(addr.clone(), inv.hub_key);
            opts.profile.save_hub_pins(&pins)?;
        }
        let hub_key = match &opts.target {
            Target::Host { .. } => Some(opts.profile.hub_key()?),
            Target::Hub(_) => None,
        };
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let mic_meter = Arc::new(MicMeter::default());
        let meter = mic_meter.clone();
        let thread = std::thread::Builder::new().name("kith-net".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ev_tx.blocking_send(ClientEvent::fatal("runtime", e.to_string()));
                    return true;
                }
            };
            let failed = runtime.block_on(async move {
                let mut hosted = None;
                let mut own_hub = None;
                let (hub_addrs, hub_label) = match &opts.target {
                    Target::Hub(addr) => {
                        // The invitation's other addresses after the one chosen: a friend
                        // may reach the host only by the second.
                        let mut addrs = vec![addr.clone()];
                        for other in opts.invitation.iter().flat_map(|i| &i.hubs) {
                            if !addrs.contains(other) {
                                addrs.push(other.clone());
                            }
                        }
                        (addrs, addr.clone())
                    }
                    Target::Host { listen, rooms, hub_name, stun } => {
                        let listener = match hub_server::bind_listener(*listen) {
                            Ok(l) => l,
                            Err(e) => {
                                let msg = format!("cannot listen on {listen}: {e}");
                                let _ = ev_tx.send(ClientEvent::fatal("listen_failed", msg)).await;
                                return true;
                            }
                        };
                        let options = HubOptions {
                            config: HubConfig {
                                name: hub_name.clone(),
                                password: opts.password.clone(),
                                rooms: rooms.clone(),
                            },
                            max_connections: DEFAULT_MAX_CONNECTIONS,
                            auth_timeout_ms: AUTH_TIMEOUT_MS,
                            key_substitution: None,
                        };
                        let Some(key) = hub_key else { return true };
                        // Our own hub's key is known here: the connection to it is pinned to it.
                        own_hub = Some(IdentityKey::from(&key.public));
                        let hub = match spawn_hub(listener, options, key) {
                            Ok(h) => h,
                            Err(e) => {
                                let _ = ev_tx.send(ClientEvent::fatal("listen_failed", e.to_string())).await;
                                return true;
                            }
                        };
                        let local = hub.local_addr;
                        let lan = hub_server::join_addresses(local);
                        let invitation = Invitation {
                            hubs: if lan.is_empty() { vec![local.to_string()] } else { lan.clone() },
                            hub_key: hub.key,
                            inviter: me,
                            inviter_name: opts.name.clone(),
                            password: None,
                        };
                        let _ = ev_tx
                            .send(ClientEvent::Hosting {
                                addr: local.to_string(),
                                hub_fingerprint: hub.fingerprint().to_string(),
                                lan,
                            })
                            .await;
                        let invite = ClientEvent::Invite { link: invitation.to_link(), text: invitation.to_text() };
                        let _ = ev_tx.send(invite).await;
                        if let Some(wake) = &wake {
                            wake();
                        }
                        tokio::spawn(ask_stun(stun.clone(), local.port(), ev_tx.clone(), wake.clone()));
                        let connect = if local.ip().is_unspecified() {
                            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), local.port())
                        } else {
                            local
                        };
                        hosted = Some(hub);
                        (vec![connect.to_string()], format!("self:{}", local.port()))
                    }
                };
                let config = ClientConfig {
                    name: opts.name.clone(),
                    password: opts.password.clone(),
                    rooms: opts.rooms.clone(),
                    hub_pin: own_hub.or_else(|| pins.hubs.get(&hub_label).copied()),
                    hub_label: hub_label.clone(),
                    accept_changed_hub_key: opts.accept_new_hub_key && own_hub.is_none(),
                };
                let mut rng = ChaCha20Rng::from_os_rng();
                let bound = opts.link_port.map(|port| (port, LinkSocket::bind(port)));
                let (links, udp) = match bound {
                    None => (Links::new(Vec::new(), 0), None),
                    Some((_, Ok(udp))) => {
                        let host = udp.host_candidates();
                        tracing::info!(port = udp.port(), candidates = ?host, "direct-link socket bound");
                        (Links::new(host, rng.next_u64()), Some(udp))
                    }
                    Some((port, Err(e))) => {
                        let msg =
                            format!("no direct links (UDP port {port}: {e}); chat goes through the hub");
                        let _ = ev_tx.send(ClientEvent::error("link_socket", msg)).await;
                        (Links::new(Vec::new(), 0), None)
                    }
                };
                let transfers = Transfers::new(opts.transfers.clone(), rng.next_u64());
                // What a crash left behind can never finish: transfers start over after a restart.
                let downloads = opts.transfers.downloads.clone();
                tokio::task::spawn_blocking(move || {
                    let removed = disk::sweep_leftovers(&downloads);
                    if removed > 0 {
                        tracing::info!(removed, dir = %downloads.display(), "removed unfinished downloads left by an earlier run");
                    }
                });
                let client = Client::new(config, identity, known, rng);
                let (problems, profile_problems) = mpsc::channel(16);
                let (disk_done, disk_answers) = mpsc::channel(disk::DONE_QUEUE);
                let disk = match Disk::spawn(disk_done) {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = ev_tx.send(ClientEvent::fatal("runtime", e.to_string())).await;
                        return true;
                    }
                };
                let nat = Nat::new(std::time::Instant::now());
                let mut core = Core::new(client, links, nat, transfers, udp.is_some());
                core.set_auto_answer(opts.auto_answer);
                let camera = opts.video.camera != crate::media::video::engine::CameraChoice::None;
                let now = crate::protocol::time::Now { at: std::time::Instant::now(), unix_ms: now_ms() };
                core.set_camera(now, opts.camera_on, camera);
                let driver = Driver {
                    core,
                    disk,
                    disk_answers,
                    udp,
                    ice: opts.ice.clone(),
                    servers: mpsc::channel(16),
                    hub_addrs,
                    hub_label,
                    profile: ProfileWriter::spawn(opts.profile.clone(), problems),
                    profile_problems,
                    commands: cmd_rx,
                    front: FrontEnd::new(ev_tx, wake),
                    media: Media::new(
                        opts.mic.clone(),
                        opts.speaker.clone(),
                        opts.processing,
                        meter,
                        (opts.video.clone(), opts.camera_on, opts.tiles.clone()),
                    ),
                };
                let failed = driver.run().await;
                if let Some(hub) = hosted {
                    hub.shutdown().await;
                }
                failed
            });
            // Blocking tasks (DNS lookups) must not hold the thread, and whoever waits for it.
            runtime.shutdown_timeout(std::time::Duration::from_millis(500));
            failed
        })?;
        Ok(Self { commands: cmd_tx, events: ev_rx, thread: Some(thread), mic_meter })
    }

    /// Queues a command without blocking; a full queue is an error to show, not a stall.
    pub fn send(&self, cmd: ClientCommand) -> Result<(), String> {
        self.commands.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "the core is busy; try again".to_string(),
            mpsc::error::TrySendError::Closed(_) => "the core has stopped".to_string(),
        })
    }

    /// The microphone's level now (dBFS of its last 20 ms), while a call or Settings'
    /// microphone test has it open: read from an atomic the media thread writes.
    pub fn mic_level_db(&self) -> Option<f32> {
        self.mic_meter.level_db()
    }

    /// Blocks until the command is queued (for scripting front-ends, not the GUI thread).
    pub fn send_blocking(&self, cmd: ClientCommand) -> Result<(), String> {
        self.commands.blocking_send(cmd).map_err(|_| "the core has stopped".to_string())
    }

    pub fn try_recv(&mut self) -> Option<ClientEvent> {
        self.events.try_recv().ok()
    }

    pub fn recv_blocking(&mut self) -> Option<ClientEvent> {
        self.events.blocking_recv()
    }

    /// A sender for another thread to queue commands on (e.g. a stdin reader).
    pub fn command_sender(&self) -> mpsc::Sender<ClientCommand> {
        self.commands.clone()
    }

    /// Asks the core to leave the hub and waits for it. Returns true if it stopped on a fatal
    /// error.
    pub fn shutdown(mut self) -> bool {
        let _ = self.commands.try_send(ClientCommand::Quit);
        self.join()
    }

    fn join(&mut self) -> bool {
        // Dropping our sender closes the queue, so the core stops even if Quit did not fit.
        drop(std::mem::replace(&mut self.commands, mpsc::channel(1).0));
        // Keep draining so the core never blocks on a full event queue while stopping.
        while self.events.try_recv().is_ok() {}
        self.events.close();
        self.thread.take().map(|t| t.join().unwrap_or(true)).unwrap_or(false)
    }
}

impl Drop for CoreHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.commands.try_send(ClientCommand::Quit);
            self.join();
        }
    }
}
