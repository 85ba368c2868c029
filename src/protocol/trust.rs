//! Trust on first use: the peers we have met and the hubs we have pinned.
//!
//! Pure data; `net::profile` persists it. A name that was bound to one identity key and shows
//! up with another is the loud case the user must see.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::identity::{Fingerprint, IdentityKey};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownPeer {
    pub key: IdentityKey,
    pub name: String,
    pub verified: bool,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// Set when this key replaced another under the same name and nobody acknowledged it yet.
    #[serde(default)]
    pub replaced: Option<IdentityKey>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownPeers {
    pub version: u32,
    peers: BTreeMap<String, KnownPeer>,
    /// Which key a display name was last bound to.
    names: BTreeMap<String, IdentityKey>,
}

/// What meeting a peer told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sighting {
    New,
    Known,
    /// The name belonged to `old` before.
    IdentityChanged {
        old: IdentityKey,
    },
}

impl KnownPeers {
    pub fn get(&self, key: &IdentityKey) -> Option<&KnownPeer> {
        self.peers.get(&key.to_hex())
    }

    pub fn find(&self, fp: &Fingerprint) -> Option<&KnownPeer> {
        self.peers.values().find(|p| p.key.fingerprint() == *fp)
    }

    pub fn iter(&self) -> impl Iterator<Item = &KnownPeer> {
        self.peers.values()
    }

    /// Records an authenticated identity with the name it uses.
    pub fn sighted(&mut self, key: IdentityKey, name: &str, now_ms: u64) -> Sighting {
        let bound = self.names.get(name).copied();
        // Only a key we have never seen can be an identity change: a known key taking its name
        // back (after someone else used it) is still that known peer, and keeps its verification.
        let result = match bound {
            _ if self.peers.contains_key(&key.to_hex()) => Sighting::Known,
            Some(old) if old != key => Sighting::IdentityChanged { old },
            _ => Sighting::New,
        };
        self.names.insert(name.to_string(), key);
        let entry = self.peers.entry(key.to_hex()).or_insert_with(|| KnownPeer {
            key,
            name: name.to_string(),
            verified: false,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            replaced: None,
        });
        entry.name = name.to_string();
        entry.last_seen_ms = now_ms;
        if let Sighting::IdentityChanged { old } = result {
            entry.replaced = Some(old);
            entry.verified = false;
        }
        result
    }

    pub fn set_verified(&mut self, key: &IdentityKey, verified: bool) -> bool {
        match self.peers.get_mut(&key.to_hex()) {
            Some(p) => {
                p.verified = verified;
                if verified {
                    p.replaced = None;
                }
                true
            }
            None => false,
        }
    }

    /// The user saw the identity-change warning and accepts the new key.
    pub fn acknowledge_change(&mut self, key: &IdentityKey) {
        if let Some(p) = self.peers.get_mut(&key.to_hex()) {
            p.replaced = None;
        }
    }
}

/// Hub static keys pinned on first use, by the address the user typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubPins {
    pub version: u32,
    pub hubs: BTreeMap<String, IdentityKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rebound_to_new_key_is_flagged() {
        let mut k = KnownPeers::default();
        let a = IdentityKey([1; 32]);
        let a2 = IdentityKey([2; 32]);
        assert_eq!(k.sighted(a, "alice", 1), Sighting::New);
        assert!(k.set_verified(&a, true));
        assert_eq!(k.sighted(a, "alice", 2), Sighting::Known);
        assert_eq!(k.sighted(a2, "alice", 3), Sighting::IdentityChanged { old: a });
        assert!(!k.get(&a2).unwrap().verified);
        assert_eq!(k.get(&a2).unwrap().replaced, Some(a));
        // The old key coming back under the name is the known peer again, still verified:
        // someone else using a verified friend's name must not strip the verification.
        assert_eq!(k.sighted(a, "alice", 4), Sighting::Known);
        assert!(k.get(&a).unwrap().verified);
    }

    #[test]
    fn survives_json() {
        let mut k = KnownPeers::default();
        k.sighted(IdentityKey([1; 32]), "bob", 1);
        let s = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<KnownPeers>(&s).unwrap(), k);
    }
}
