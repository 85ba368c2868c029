//! The Tokio loop around the sans-IO [`Core`]: the hub's TCP connection (reconnected with
//! backoff), the link socket, timers, DNS for STUN/TURN servers, and the workers that write
//! the profile and the transfers' files. It moves bytes and makes no protocol decision, and it
//! never waits on a slow peer of its own: the front-end, the hub and the disk each have a
//! queue of their own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::connect;
use super::disk::Disk;
use super::front::FrontEnd;
use super::hub_conn::{CLOSE_TIMEOUT, HubConn};
use super::link_socket::{LinkSocket, Received};
use super::media::{self, Media};
use super::now_ms;
use super::profile_writer::ProfileWriter;
use crate::media::apm::ApmSettings;
use crate::media::engine::MediaOut;
use crate::media::video::engine::VideoPacket;
use crate::protocol::core::{Core, CoreOutput, Now};
use crate::protocol::events::{ClientCommand, ClientEvent};
use crate::protocol::nat::IceServers;
use crate::protocol::transfer::DiskDone;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A hub that stops reading must not stall the core (or a window waiting for it to quit).
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the machine's addresses are compared with the links' host candidates. Polling
/// is portable and costs one `getifaddrs` per tick; a change (Wi-Fi to Ethernet, a VPN, a
/// new DHCP lease) is acted on within this.
const NETWORK_POLL: Duration = Duration::from_secs(2);

/// This moment, for the core.
fn now() -> Now {
    Now { at: std::time::Instant::now(), unix_ms: now_ms() }
}

pub struct Driver {
    pub core: Core,
    /// Where the hub listens, best first (an invitation may give several: LAN addresses and a
    /// public one). The first to answer is used (`connect::connect_first`).
    pub hub_addrs: Vec<String>,
    pub hub_label: String,
    /// Saves the profile files the client asks for, off the loop; says what failed.
    pub profile: ProfileWriter,
    pub profile_problems: mpsc::Receiver<String>,
    pub commands: mpsc::Receiver<ClientCommand>,
    /// Events to the front-end, which the loop never waits for (and which wakes a GUI).
    pub front: FrontEnd,
    /// The UDP socket the direct links share (none if it could not be bound: then everything
    /// goes through the hub).
    pub udp: Option<LinkSocket>,
    /// The configured STUN/TURN servers, and the same as they resolve (off the loop: DNS may
    /// be slow); resolved again when our addresses change, for the new route to each.
    pub ice: IceServers,
    pub servers: (mpsc::Sender<Server>, mpsc::Receiver<Server>),
    /// File reads and writes for the transfers, off the loop, and what they finished.
    pub disk: Disk,
    pub disk_answers: mpsc::Receiver<DiskDone>,
    /// The call's media thread (while we are in a call) and what it sends back.
    pub media: Media,
}

/// A STUN or TURN server, resolved, with our interface address towards it.
#[derive(Debug)]
pub enum Server {
    /// `name` as configured: one name may resolve to an IPv4 and an IPv6 server.
    Stun {
        name: String,
        server: SocketAddr,
        base: SocketAddr,
    },
    Turn {
        server: SocketAddr,
        base: SocketAddr,
        user: String,
        password: zeroize::Zeroizing<String>,
    },
}

/// Resolves the configured servers and sends each to the driver; a name that does not
/// resolve is reported and left out. A STUN server is asked over each family the link
/// socket speaks (a mapping per family); a TURN server over one, IPv4 first, since an
/// allocation relays IPv4 whatever it was asked over (RFC 6156 §4.2).
async fn resolve_servers(
    ice: IceServers,
    port: u16,
    ipv6: bool,
    tx: mpsc::Sender<Server>,
    events: mpsc::Sender<ClientEvent>,
) {
    let stun = ice.stun.into_iter().map(|s| (s, None));
    let turn = ice.turn.into_iter().map(|t| (t.addr.clone(), Some(t)));
    for (name, turn) in stun.chain(turn) {
        let resolved = match resolve(&name, port, ipv6).await {
            Ok(r) => r,
            Err(e) => {
                let kind = if turn.is_some() { "TURN" } else { "STUN" };
                let msg = format!("{kind} server {name}: {e}");
                tracing::warn!("{msg}");
                let _ = events.send(ClientEvent::error("ice_server", msg)).await;
                continue;
            }
        };
        let items: Vec<Server> = match turn {
            None => resolved
                .into_iter()
                .map(|(server, base)| Server::Stun { name: name.clone(), server, base })
                .collect(),
            // One TURN allocation: the first family (IPv4 when there is one). The password
            // moves into it rather than being copied.
            Some(t) => resolved
                .into_iter()
                .next()
                .map(|(server, base)| Server::Turn { server, base, user: t.user, password: t.password })
                .into_iter()
                .collect(),
        };
        for item in items {
            if tx.send(item).await.is_err() {
                return;
            }
        }
    }
}

/// The first IPv4 address of `name` and (if `ipv6`) its first IPv6 address, each with the
/// address of ours it is reached from (the interface the route to it takes, with the link
/// socket's port). A family without a route here is left out; IPv4 comes first.
async fn resolve(name: &str, port: u16, ipv6: bool) -> Result<Vec<(SocketAddr, SocketAddr)>, String> {
    let all: Vec<SocketAddr> =
        tokio::net::lookup_host(name).await.map_err(|e| format!("cannot resolve it: {e}"))?.collect();
    let v4 = all.iter().find(|a| a.is_ipv4());
    let v6 = all.iter().find(|a| a.is_ipv6()).filter(|_| ipv6);
    let mut out = Vec::new();
    let mut problem = None;
    for server in [v4, v6].into_iter().flatten() {
        match route_from(*server) {
            Ok(ip) => out.push((*server, SocketAddr::new(ip, port))),
            Err(e) => problem = Some(format!("no route to {server}: {e}")),
        }
    }
    if out.is_empty() {
        let families = if ipv6 { "address" } else { "IPv4 address" };
        return Err(problem.unwrap_or_else(|| format!("it has no {families}")));
    }
    Ok(out)
}

/// Our address the kernel would send from towards `server`. Connecting a UDP socket sends
/// nothing; it only looks up the route.
fn route_from(server: SocketAddr) -> std::io::Result<IpAddr> {
    let any: IpAddr =
        if server.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let probe = std::net::UdpSocket::bind((any, 0))?;
    probe.connect(server)?;
    Ok(probe.local_addr()?.ip())
}

/// The stream and which of `hub_addrs` it reached, or why none could be reached.
type Connecting = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(TcpStream, usize), String>>>>;

enum Step {
    Continue,
    Stop,
}

impl Driver {
    /// Runs until `Quit`, the command channel closing, or a fatal error. Returns whether it
    /// ended because of a fatal error.
    pub async fn run(mut self) -> bool {
        let failed = self.run_loop().await;
        self.front.flush_before_exit(CLOSE_TIMEOUT).await;
        self.profile.finish(CLOSE_TIMEOUT).await;
        failed
    }

    async fn run_loop(&mut self) -> bool {
        let mut hub: Option<HubConn> = None;
        // The connection under way: awaited beside everything else, so a slow connect holds
        // up neither the links nor the commands.
        let mut connecting: Option<Connecting> = None;
        let mut ever_connected = false;
        // Which of the hub's addresses answered last: reconnecting tries it first.
        let mut last_worked = 0;
        let mut was_ready = false;
        let mut backoff = Duration::from_millis(250);
        let mut reconnect_at = Some(tokio::time::Instant::now());
        self.start_resolving();
        if self.udp.is_some() {
            tokio::task::spawn_blocking(warm_up_webrtc);
        }
        let mut network_check = self.udp.as_ref().map(|_| tokio::time::Instant::now() + NETWORK_POLL);
        loop {
            if hub.is_none()
                && connecting.is_none()
                && reconnect_at.is_some_and(|t| t <= tokio::time::Instant::now())
            {
                reconnect_at = None;
                // The address that worked last goes first.
                let mut addrs = self.hub_addrs.clone();
                let count = addrs.len().max(1);
                let offset = last_worked % count;
                addrs.rotate_left(offset);
                tracing::info!(?addrs, "connecting to the hub");
                connecting = Some(Box::pin(async move {
                    let (stream, i) = connect::connect_first(&addrs, CONNECT_TIMEOUT).await?;
                    Ok((stream, (i + offset) % count))
                }));
            }
            let core_timer = self.core.poll_timeout().map(tokio::time::Instant::from_std);
            let wake_at = [core_timer, reconnect_at, network_check].into_iter().flatten().min();
            let mut lost: Option<String> = None;
            tokio::select! {
                connected = finish_connecting(&mut connecting) => {
                    connecting = None;
                    match connected {
                        Ok((stream, index)) => {
                            last_worked = index;
                            let _ = stream.set_nodelay(true);
                            ever_connected = true;
                            hub = Some(HubConn::new(stream));
                            self.core.handle_hub_connected(now());
                        }
                        Err(why) => {
                            if !ever_connected {
                                self.fatal("hub_unreachable", why);
                                return true;
                            }
                            tracing::info!("{why}");
                            reconnect_at = Some(tokio::time::Instant::now() + backoff);
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                }
                frame = from_hub(&mut hub) => match frame {
                    Ok(frame) => {
                        self.core.handle_hub_frame(now(), &frame);
                        if self.core.is_ready() {
                            was_ready = true;
                            backoff = Duration::from_millis(250);
                        }
                    }
                    Err(reason) => lost = Some(reason),
                },
                () = self.front.room(), if self.front.has_backlog() => self.front.send_backlog(),
                Some(problem) = self.profile_problems.recv() => {
                    self.front.push(ClientEvent::error("profile", problem));
                }
                cmd = self.commands.recv() => match cmd {
                    None | Some(ClientCommand::Quit) => {
                        self.quit(&mut hub).await;
                        return false;
                    }
                    // Asking the sound system can take a while: off the loop.
                    Some(ClientCommand::Devices) => media::list_devices(self.front.sender()),
                    Some(ClientCommand::AudioProcessing { echo_cancel, noise_suppression, auto_gain }) => {
                        self.media.set_processing(ApmSettings { echo_cancel, noise_suppression, auto_gain })
                    }
                    Some(ClientCommand::MicTest { on }) => {
                        if let Some(problem) = self.media.mic_test(on) {
                            self.front.push(ClientEvent::error("media", problem));
                        }
                    }
                    Some(ClientCommand::UseCamera { camera, size, fps }) => {
                        match self.media.video_settings().with(&camera, size.as_deref(), fps) {
                            Ok(settings) => {
                                let available = self.media.use_camera(settings);
                                self.core.camera_chosen(now(), available);
                            }
                            Err(e) => self.front.push(ClientEvent::error("bad_command", e)),
                        }
                    }
                    Some(ClientCommand::UseDevices { mic, speaker }) => {
                        if let Err(e) = self.media.use_devices(mic.as_deref(), speaker.as_deref()) {
                            self.front.push(ClientEvent::error("media", e));
                        }
                    }
                    Some(cmd) => self.core.handle_command(now(), cmd),
                },
                Some(server) = self.servers.1.recv() => match server {
                    Server::Stun { name, server, base } => self.core.add_stun(now(), &name, server, base),
                    Server::Turn { server, base, user, password } => {
                        self.core.add_turn(now(), server, base, &user, &password)
                    }
                },
                Some(done) = self.disk_answers.recv() => self.core.handle_disk(now(), done),
                Some(out) = self.media.rx.recv() => self.on_media(out),
                () = self.disk.room(), if self.disk.has_backlog() => self.disk.send_backlog(),
                got = recv_udp(&mut self.udp) => match got {
                    Ok(batch) => self.on_datagrams(&batch),
                    Err(e) => {
                        tracing::warn!("the direct-link socket failed, staying on the hub: {e}");
                        self.udp = None;
                    }
                },
                _ = tokio::time::sleep_until(wake_at.unwrap_or_else(far_future)), if wake_at.is_some() => {
                    self.core.handle_timeout(now());
                    if network_check.is_some_and(|t| t <= tokio::time::Instant::now()) {
                        network_check = Some(tokio::time::Instant::now() + NETWORK_POLL);
                        self.check_network();
                    }
                }
            }
            if let Some(reason) = lost {
                tracing::warn!("{reason}");
                if let Some(conn) = hub.take() {
                    conn.abort();
                }
                if !was_ready {
                    // Never got in: retrying would only hammer the hub.
                    self.fatal("hub_refused", format!("{reason} before authentication"));
                    return true;
                }
                self.core.handle_hub_disconnected(now(), &reason);
                reconnect_at = Some(tokio::time::Instant::now() + backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            let step = self.flush(&mut hub).await;
            self.front.wake();
            if matches!(step, Step::Stop) || self.front.is_closed() {
                return true;
            }
            if hub.is_none() && connecting.is_none() && reconnect_at.is_none() {
                reconnect_at = Some(tokio::time::Instant::now() + backoff);
            }
        }
    }

    /// Closes every open link on both sides (the Close goes on the link itself), then the hub.
    async fn quit(&mut self, hub: &mut Option<HubConn>) {
        self.core.handle_quit(now());
        let _ = self.flush(hub).await;
        if let Some(conn) = hub.take() {
            conn.close().await;
        }
    }

    /// Resolves the STUN/TURN servers (again) in the background; each arrives on `servers`.
    fn start_resolving(&self) {
        let Some(udp) = &self.udp else { return };
        if self.ice.stun.is_empty() && self.ice.turn.is_empty() {
            return;
        }
        let resolving = resolve_servers(
            self.ice.clone(),
            udp.port(),
            udp.ipv6(),
            self.servers.0.clone(),
            self.front.sender(),
        );
        tokio::spawn(resolving);
    }

    /// Compares our interface addresses with the links' host candidates; on a change the
    /// links restart ICE and STUN/TURN start over from the new addresses.
    fn check_network(&mut self) {
        let Some(udp) = &self.udp else { return };
        let host = udp.host_candidates();
        self.core.network_changed(now(), host);
    }

    /// What the media thread sent: a frame for the peers, stats, or a problem in words.
    fn on_media(&mut self, out: MediaOut) {
        match out {
            MediaOut::Audio { ts, data } => self.core.send_audio(now(), ts, data),
            MediaOut::Stats(stats) => {
                for s in &stats {
                    let rtt = self.core.rtt_ms(&s.peer);
                    self.front.push(media::stats_event(s, rtt, self.media.video_stats(&s.peer)));
                }
                // Peers we see and do not hear (no microphone on their side) are reported too.
                for peer in self.media.video_only(&stats) {
                    let silent = crate::media::engine::PeerAudioStats::silent(peer);
                    let rtt = self.core.rtt_ms(&peer);
                    self.front.push(media::stats_event(&silent, rtt, self.media.video_stats(&peer)));
                }
            }
            MediaOut::Video { ts, data, .. } => self.core.send_video(now(), ts, data),
            MediaOut::WantKeyframe { peer } => self.core.request_keyframe(now(), peer),
            MediaOut::VideoStats(stats) => self.media.video_report(stats),
            MediaOut::Problem(text) => self.front.push(ClientEvent::error("media", text)),
        }
    }

    fn on_datagrams(&mut self, batch: &[Received]) {
        let Some(udp) = &self.udp else { return };
        let now = now();
        for r in batch {
            self.core.handle_datagram(now, r.source, r.destination, udp.datagram(r));
        }
    }

    /// Carries out what the core asked for. Only the UDP send is awaited (a datagram socket
    /// with room is immediate); everything else is handed over without waiting.
    async fn flush(&mut self, hub: &mut Option<HubConn>) -> Step {
        while let Some(out) = self.core.poll_output() {
            match out {
                CoreOutput::ToHub(frame) => {
                    if let Some(conn) = hub.as_ref()
                        && let Err(why) = conn.send(frame)
                    {
                        tracing::warn!("{why}");
                        if let Some(conn) = hub.take() {
                            conn.abort();
                        }
                        self.core.handle_hub_disconnected(now(), &why);
                    }
                }
                CoreOutput::Transmit { source, destination, contents } => {
                    if let Some(udp) = &self.udp {
                        udp.send(source, destination, &contents).await;
                    }
                }
                CoreOutput::Event(ev) => {
                    let fatal = matches!(ev, ClientEvent::Error { fatal: true, .. });
                    self.front.push(ev);
                    if fatal {
                        if let Some(conn) = hub.take() {
                            conn.close().await;
                        }
                        return Step::Stop;
                    }
                }
                CoreOutput::SaveKnownPeers(peers) => self.profile.save_known_peers(peers),
                CoreOutput::PinHub(key) => {
                    if let Err(e) = self.profile.pin_hub(self.hub_label.clone(), key) {
                        self.front.push(ClientEvent::error("profile", e));
                    }
                }
                CoreOutput::CloseHub { fatal } => {
                    if let Some(conn) = hub.take() {
                        if fatal {
                            conn.close().await;
                        } else {
                            // A hub we gave up on is not waited for: the loop goes on.
                            conn.abort();
                        }
                    }
                    if fatal {
                        return Step::Stop;
                    }
                    self.core.handle_hub_disconnected(now(), "protocol error");
                }
                CoreOutput::Disk(request) => self.disk.submit(request),
                CoreOutput::ResolveServers => self.start_resolving(),
                CoreOutput::Media(control) => {
                    if let Some(problem) = self.media.control(control) {
                        self.front.push(ClientEvent::error("media", problem));
                    }
                }
                CoreOutput::Audio { peer, ts, data, arrived } => self.media.audio(peer, ts, data, arrived),
                CoreOutput::Video { peer, ts, data, keyframe, contiguous, arrived } => {
                    self.media.video(peer, VideoPacket { ts, data, keyframe, contiguous, arrived })
                }
                CoreOutput::KeyframeRequest { .. } => self.media.want_keyframe(),
            }
        }
        Step::Continue
    }

    fn fatal(&mut self, code: &str, message: String) {
        self.front.push(ClientEvent::fatal(code, message));
    }
}

/// The connection being made, if any (pending otherwise, so `select!` can always poll it).
async fn finish_connecting(connecting: &mut Option<Connecting>) -> Result<(TcpStream, usize), String> {
    match connecting {
        Some(c) => c.await,
        None => std::future::pending().await,
    }
}

async fn recv_udp(udp: &mut Option<LinkSocket>) -> std::io::Result<Vec<Received>> {
    match udp {
        Some(u) => u.recv().await,
        None => std::future::pending().await,
    }
}

/// The next frame from the hub, or why the connection is gone.
async fn from_hub(hub: &mut Option<HubConn>) -> Result<bytes::BytesMut, String> {
    match hub {
        Some(conn) => conn.next().await,
        None => std::future::pending().await,
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}

/// Builds and drops one `Rtc`. The first in a process pays a one-time setup of its crypto
/// (about 70 ms here, against under 2 ms for each one after); done at start on a blocking
/// thread, it no longer delays the first link, which both sides build right after the
/// session is up.
fn warm_up_webrtc() {
    let started = std::time::Instant::now();
    drop(str0m::Rtc::builder().build(started));
    tracing::debug!(took = ?started.elapsed(), "WebRTC crypto ready");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_server_is_used_over_each_family_the_link_socket_speaks() {
        // Literal addresses: no DNS involved. The base is the route's source with our port.
        let v4 = resolve("127.0.0.1:3478", 5000, true).await.unwrap();
        assert_eq!(v4, vec![(addr("127.0.0.1:3478"), addr("127.0.0.1:5000"))]);
        let v6 = resolve("[::1]:3478", 5000, true).await.unwrap();
        assert_eq!(v6, vec![(addr("[::1]:3478"), addr("[::1]:5000"))]);
        // An IPv4-only socket cannot use an IPv6-only server, and says why.
        let err = resolve("[::1]:3478", 5000, false).await.unwrap_err();
        assert_eq!(err, "it has no IPv4 address");
        assert!(
            resolve("no-such-host.invalid:3478", 5000, true).await.unwrap_err().starts_with("cannot resolve")
        );
    }
}
