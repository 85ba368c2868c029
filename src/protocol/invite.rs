//! Invitations: one link that carries what a first meeting needs to be checked.
//!
//! Without one, the first time two people meet through a hub nothing tells them whether the
//! key the hub introduced is really the other's, short of comparing safety numbers. An
//! invitation from the host carries the hub's address(es), the hub's key and the inviter's
//! identity key, so joining with it pins the hub and knows the inviter from the start: a hub
//! (or anyone who took it over) introducing another key under the inviter's name is then the
//! loud identity-change warning, not a silent first contact.
//!
//! The link is `kith://join?hub=ADDR&hub_key=HEX&from=HEX&name=NAME[&password=PW]`, parsed
//! with the `url` crate; the text form is the same link with the fingerprints spelled out for
//! people to read. The password is in it only when the host chose so.

use std::fmt;

use zeroize::Zeroizing;

use super::identity::IdentityKey;
use super::names::sanitize_name;

pub const SCHEME: &str = "kith";
/// The longest invitation accepted, link or text.
pub const MAX_INVITATION: usize = 4096;
/// Hub addresses one invitation may carry.
pub const MAX_HUBS: usize = 8;
const MAX_ADDR: usize = 300;

#[derive(Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Where the hub listens, best first (`host:port`).
    pub hubs: Vec<String>,
    pub hub_key: IdentityKey,
    pub inviter: IdentityKey,
    pub inviter_name: String,
    pub password: Option<Zeroizing<String>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InviteError {
    #[error("no kith:// invitation link in the text")]
    NoLink,
    #[error("the invitation is longer than {MAX_INVITATION} bytes")]
    TooLong,
    #[error("the invitation is not a valid link: {0}")]
    Malformed(String),
    #[error("the invitation has no {0}")]
    Missing(&'static str),
}

impl fmt::Debug for Invitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invitation")
            .field("hubs", &self.hubs)
            .field("hub_key", &self.hub_key)
            .field("inviter", &self.inviter)
            .field("inviter_name", &self.inviter_name)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Invitation {
    pub fn to_link(&self) -> String {
        let mut url = url::Url::parse("kith://join").expect("a constant link");
        {
            let mut q = url.query_pairs_mut();
            for hub in &self.hubs {
                q.append_pair("hub", hub);
            }
            q.append_pair("hub_key", &self.hub_key.to_hex());
            q.append_pair("from", &self.inviter.to_hex());
            q.append_pair("name", &self.inviter_name);
            if let Some(pw) = &self.password {
                q.append_pair("password", pw);
            }
        }
        url.into()
    }

    /// The invitation as a message a person can read and paste: the link, and what it says.
    pub fn to_text(&self) -> String {
        let mut t = format!("{} invites you to chat on Kith.\n\n{}\n\n", self.inviter_name, self.to_link());
        t.push_str(&format!("Hub: {}\n", self.hubs.join(", ")));
        t.push_str(&format!("Hub key: {}\n", self.hub_key.fingerprint().grouped()));
        t.push_str(&format!(
            "{}'s fingerprint: {}\n",
            self.inviter_name,
            self.inviter.fingerprint().grouped()
        ));
        if self.password.is_none() {
            t.push_str(&format!("Ask {} for the password.\n", self.inviter_name));
        }
        t
    }

    /// Reads an invitation from a link, or from a text with a link in it (what `to_text`
    /// gives, pasted from a chat).
    pub fn parse(text: &str) -> Result<Self, InviteError> {
        if text.len() > MAX_INVITATION {
            return Err(InviteError::TooLong);
        }
        let link = text
            .split_whitespace()
            .find(|w| w.len() > SCHEME.len() + 3 && w[..SCHEME.len() + 3].eq_ignore_ascii_case("kith://"))
            .ok_or(InviteError::NoLink)?;
        let url = url::Url::parse(link).map_err(|e| InviteError::Malformed(e.to_string()))?;
        if url.host_str() != Some("join") {
            return Err(InviteError::Malformed("it is not a kith://join link".into()));
        }
        let (mut hubs, mut hub_key, mut inviter, mut name, mut password) =
            (Vec::new(), None, None, None, None);
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "hub" if hubs.len() < MAX_HUBS => hubs.push(hub_address(&v)?),
                "hub_key" => hub_key = Some(key(&v, "hub key")?),
                "from" => inviter = Some(key(&v, "inviter key")?),
                "name" => name = Some(v.into_owned()),
                "password" => password = Some(Zeroizing::new(v.into_owned())),
                // Newer invitations may say more.
                _ => {}
            }
        }
        if hubs.is_empty() {
            return Err(InviteError::Missing("hub address"));
        }
        Ok(Self {
            hubs,
            hub_key: hub_key.ok_or(InviteError::Missing("hub key"))?,
            inviter: inviter.ok_or(InviteError::Missing("inviter key"))?,
            inviter_name: name
                .as_deref()
                .and_then(sanitize_name)
                .ok_or(InviteError::Missing("inviter name"))?,
            password,
        })
    }
}

/// `host:port` with a port, of a sane length and without anything a link could smuggle in.
fn hub_address(v: &str) -> Result<String, InviteError> {
    let ok = !v.is_empty()
        && v.len() <= MAX_ADDR
        && v.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '%' | '_'));
    if ok { Ok(v.to_string()) } else { Err(InviteError::Malformed(format!("bad hub address {v:?}"))) }
}

fn key(v: &str, what: &str) -> Result<IdentityKey, InviteError> {
    let mut k = [0u8; 32];
    hex::decode_to_slice(v, &mut k).map_err(|_| InviteError::Malformed(format!("bad {what}")))?;
    Ok(IdentityKey(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(password: Option<&str>) -> Invitation {
        Invitation {
            hubs: vec!["192.168.1.20:7447".into(), "[fd00::20]:7447".into()],
            hub_key: IdentityKey([1; 32]),
            inviter: IdentityKey([2; 32]),
            inviter_name: "Zoë & co".into(),
            password: password.map(|p| Zeroizing::new(p.to_string())),
        }
    }

    #[test]
    fn a_link_and_its_text_read_back_the_same() {
        for pw in [None, Some("correct horse&battery=staple")] {
            let inv = sample(pw);
            assert_eq!(Invitation::parse(&inv.to_link()).unwrap(), inv);
            assert_eq!(Invitation::parse(&inv.to_text()).unwrap(), inv);
        }
        let text = sample(None).to_text();
        assert!(text.contains("Ask Zoë & co for the password"), "{text}");
        assert!(text.contains(&IdentityKey([2; 32]).fingerprint().grouped()));
        assert!(!format!("{:?}", sample(Some("secret"))).contains("secret"));
    }

    #[test]
    fn bad_invitations_are_refused_with_the_reason() {
        let link = sample(None).to_link();
        assert_eq!(Invitation::parse("hello"), Err(InviteError::NoLink));
        assert_eq!(Invitation::parse(&"x".repeat(MAX_INVITATION + 1)), Err(InviteError::TooLong));
        assert!(matches!(Invitation::parse("kith://other?hub=a:1"), Err(InviteError::Malformed(_))));
        let without = |param: &str| {
            let url = url::Url::parse(&link).unwrap();
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != param)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let mut u = url::Url::parse("kith://join").unwrap();
            u.query_pairs_mut().extend_pairs(kept);
            Invitation::parse(u.as_str())
        };
        assert_eq!(without("hub"), Err(InviteError::Missing("hub address")));
        assert_eq!(without("hub_key"), Err(InviteError::Missing("hub key")));
        assert_eq!(without("from"), Err(InviteError::Missing("inviter key")));
        assert_eq!(without("name"), Err(InviteError::Missing("inviter name")));
        for bad in ["kith://join?hub=no-port", "kith://join?hub=a:1;rm", "kith://join?hub=a:1&hub_key=zz"] {
            assert!(matches!(Invitation::parse(bad), Err(InviteError::Malformed(_))), "{bad}");
        }
        // The inviter's name is held to the rules of names.
        let odd = link.replace("name=Zo%C3%AB+%26+co", "name=%E2%80%AEevil");
        assert_eq!(Invitation::parse(&odd).unwrap().inviter_name, "evil");
    }
}
