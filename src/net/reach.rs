//! How friends can reach a hub hosted here: this machine's LAN addresses, and the public
//! address a STUN server sees (RFC 8489 Binding, messages built and parsed by `stun-types`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use stun_types::attribute::XorMappedAddress;
use stun_types::message::{BINDING, Message, MessageClass, MessageWrite, MessageWriteExt, MessageWriteVec};
use tokio::net::UdpSocket;

/// Every non-loopback address of this machine with `port`, IPv4 first. Link-local IPv6
/// addresses are left out: they need an interface scope a friend's machine cannot know.
pub fn lan_addresses(port: u16) -> Vec<SocketAddr> {
    interface_addresses(port, |ip| {
        !ip.is_loopback()
            && !ip.is_unspecified()
            && match ip {
                IpAddr::V6(v6) => !v6.is_unicast_link_local(),
                IpAddr::V4(_) => true,
            }
    })
}

/// This machine's interface addresses that `keep` accepts, with `port`, IPv4 first, sorted,
/// without repeats.
pub fn interface_addresses(port: u16, keep: impl Fn(&IpAddr) -> bool) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| keep(ip))
        .map(|ip| SocketAddr::new(ip, port))
        .collect();
    out.sort_by_key(|a| (a.is_ipv6(), *a));
    out.dedup();
    out
}

/// Asks `server` (`host:port`) which address our UDP packets come from. Retransmits the
/// request (UDP may drop it) and gives up after `timeout`.
pub async fn public_address(server: &str, timeout: Duration) -> Result<IpAddr, String> {
    tokio::time::timeout(timeout, ask(server)).await.map_err(|_| format!("{server} did not answer"))?
}

async fn ask(server: &str) -> Result<IpAddr, String> {
    let target = tokio::net::lookup_host(server)
        .await
        .map_err(|e| format!("cannot resolve {server}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("{server} has no IPv4 address"))?;
    let socket = UdpSocket::bind("0.0.0.0:0").await.map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let request = Message::builder_request(BINDING, MessageWriteVec::new());
    let transaction = request.transaction_id();
    let request = request.finish();
    let mut buf = [0u8; 1500];
    {
        // RFC 8489 §6.2.1: start at 500 ms and double.
        let mut wait = Duration::from_millis(500);
        loop {
            socket.send_to(&request, target).await.map_err(|e| format!("cannot send to {server}: {e}"))?;
            let until = tokio::time::Instant::now() + wait;
            while let Ok(got) = tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await {
                let (n, from) = got.map_err(|e| format!("reading from {server}: {e}"))?;
                if from != target {
                    continue;
                }
                let Ok(reply) = Message::from_bytes(&buf[..n]) else { continue };
                if reply.transaction_id() != transaction
                    || !reply.has_class(MessageClass::Success)
                    || !reply.has_method(BINDING)
                {
                    continue;
                }
                return match reply.attribute::<XorMappedAddress>() {
                    Ok(mapped) => Ok(mapped.addr(transaction).ip()),
                    Err(e) => Err(format!("{server} answered without an address: {e}")),
                };
            }
            wait *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A STUN server on loopback (the reply built by `stun-types`, as coturn would send it).
    async fn stun_responder(drop_first: bool) -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            let mut dropped = !drop_first;
            loop {
                let (n, from) = sock.recv_from(&mut buf).await.unwrap();
                if !dropped {
                    dropped = true;
                    continue;
                }
                let req = Message::from_bytes(&buf[..n]).unwrap();
                let mut reply = Message::builder_success(&req, MessageWriteVec::new());
                reply.add_attribute(&XorMappedAddress::new(from, req.transaction_id())).unwrap();
                sock.send_to(&reply.finish(), from).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn learns_the_mapped_address_even_when_the_first_request_is_lost() {
        let server = stun_responder(true).await;
        let ip = public_address(&server.to_string(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(ip, IpAddr::from([127, 0, 0, 1]));
    }

    #[tokio::test]
    async fn a_silent_server_is_a_clear_error() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = silent.local_addr().unwrap().to_string();
        let err = public_address(&server, Duration::from_millis(300)).await.unwrap_err();
        assert!(err.contains("did not answer"), "{err}");
    }

    #[test]
    fn lan_addresses_carry_the_port_and_skip_loopback() {
        for a in lan_addresses(7777) {
            assert_eq!(a.port(), 7777);
            assert!(!a.ip().is_loopback());
        }
    }
}
