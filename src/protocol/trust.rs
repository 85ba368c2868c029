//! Trust on first use: the peers we have met and the hubs we have pinned.
//!
//! Pure data; `net::profile` persists it. A name that was bound to one identity key and shows
//! up with another, or a name that only looks like it, is the loud case the user must see.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::identity::{Fingerprint, IdentityKey};
use super::names::skeletons;

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

/// How many peers we remember. A hostile hub can make up keys and complete handshakes with
/// them; past this the peer seen longest ago that the user never verified is forgotten.
pub const MAX_KNOWN_PEERS: usize = 4096;
/// Names one key may hold at once: its current one and a few it used before, which nobody
/// else may then take without a warning.
const MAX_NAMES_PER_KEY: usize = 4;
/// A name has one or two skeletons ([`skeletons`]), each an entry in `names`.
const MAX_ENTRIES_PER_KEY: usize = 2 * MAX_NAMES_PER_KEY;
/// The layout of `names`: 2 keys it by skeleton (look-alike names are one name).
const VERSION: u32 = 2;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownPeers {
    pub version: u32,
    peers: BTreeMap<String, KnownPeer>,
    /// Which key holds a display name, by the name's skeletons ([`skeletons`]): "аlice" with a
    /// Cyrillic а is the same name as "alice". A name stays with the key that first used it
    /// until the user accepts another key under it.
    names: BTreeMap<String, IdentityKey>,
}

/// What meeting a peer told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sighting {
    New,
    Known,
    /// The name, or one that looks like it, belongs to `old`: either a new key announced under
    /// a friend's name, or a key we know renaming itself to someone else's.
    IdentityChanged {
        old: IdentityKey,
    },
}

impl KnownPeers {
    /// A store read from disk, brought to this version's layout.
    pub fn upgraded(mut self) -> Self {
        if self.version < VERSION {
            // Version 1 bound exact names, rebound at every sighting; keep the first holder
            // of each look-alike group.
            let old = std::mem::take(&mut self.names);
            for (name, key) in old {
                if self.peers.contains_key(&key.to_hex()) {
                    for skel in skeletons(&name) {
                        self.names.entry(skel).or_insert(key);
                    }
                }
            }
            self.version = VERSION;
        }
        self
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn get(&self, key: &IdentityKey) -> Option<&KnownPeer> {
        self.peers.get(&key.to_hex())
    }

    pub fn find(&self, fp: &Fingerprint) -> Option<&KnownPeer> {
        self.peers.values().find(|p| p.key.fingerprint() == *fp)
    }

    pub fn iter(&self) -> impl Iterator<Item = &KnownPeer> {
        self.peers.values()
    }

    /// The key that holds `name` or a name that looks like it.
    pub fn holder_of(&self, name: &str) -> Option<IdentityKey> {
        skeletons(name).iter().find_map(|s| self.names.get(s).copied())
    }

    /// Records an authenticated identity with the name it uses.
    pub fn sighted(&mut self, key: IdentityKey, name: &str, now_ms: u64) -> Sighting {
        self.version = VERSION;
        let known = self.peers.contains_key(&key.to_hex());
        let result = match self.holder_of(name) {
            Some(old) if old != key => Sighting::IdentityChanged { old },
            _ if known => Sighting::Known,
            _ => Sighting::New,
        };
        let entry = self.entry(key, name, now_ms);
        entry.name = name.to_string();
        entry.last_seen_ms = now_ms;
        match result {
            Sighting::IdentityChanged { old } => {
                entry.replaced = Some(old);
                entry.verified = false;
            }
            _ => self.bind(name, key),
        }
        result
    }

    /// Someone we know out of band (their invitation) is `key` under `name`: known and
    /// verified before we ever meet, so another key introduced under that name (or a name
    /// that looks like it) is an identity change, not a first meeting.
    pub fn introduce(&mut self, key: IdentityKey, name: &str, now_ms: u64) {
        self.version = VERSION;
        let entry = self.entry(key, name, now_ms);
        entry.verified = true;
        entry.replaced = None;
        self.rebind(name, key);
    }

    pub fn set_verified(&mut self, key: &IdentityKey, verified: bool) -> bool {
        let Some(p) = self.peers.get_mut(&key.to_hex()) else { return false };
        p.verified = verified;
        if verified {
            self.acknowledge_change(key);
        }
        true
    }

    /// The user saw the identity-change warning and accepts the new key under its name.
    pub fn acknowledge_change(&mut self, key: &IdentityKey) {
        let Some(p) = self.peers.get_mut(&key.to_hex()) else { return };
        if p.replaced.take().is_some() {
            let name = p.name.clone();
            self.rebind(&name, *key);
        }
    }

    /// `key`'s entry, made (unverified, first seen now) if it is new, after room is made for it.
    fn entry(&mut self, key: IdentityKey, name: &str, now_ms: u64) -> &mut KnownPeer {
        if !self.peers.contains_key(&key.to_hex()) {
            self.make_room();
        }
        self.peers.entry(key.to_hex()).or_insert_with(|| KnownPeer {
            key,
            name: name.to_string(),
            verified: false,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            replaced: None,
        })
    }

    /// Gives `name` to `key` if nobody holds it and `key` holds few enough names.
    fn bind(&mut self, name: &str, key: IdentityKey) {
        let skels = skeletons(name);
        let held = self.names.values().filter(|k| **k == key).count();
        if skels.iter().any(|s| self.names.get(s).is_some_and(|k| *k != key))
            || held + skels.len() > MAX_ENTRIES_PER_KEY
        {
            return;
        }
        for skel in skels {
            self.names.insert(skel, key);
        }
    }

    /// Moves `name` to `key`, which the user accepted under it.
    fn rebind(&mut self, name: &str, key: IdentityKey) {
        for skel in skeletons(name) {
            self.names.insert(skel, key);
        }
    }

    /// Forgets the unverified peer seen longest ago, and the names it held, once the store is
    /// full. Forgetting an impostor loses no warning: the name stays with its first holder,
    /// so the impostor's key is flagged again if it comes back.
    fn make_room(&mut self) {
        if self.peers.len() < MAX_KNOWN_PEERS {
            return;
        }
        let oldest = self
            .peers
            .iter()
            .filter(|(_, p)| !p.verified)
            .min_by_key(|(_, p)| p.last_seen_ms)
            .map(|(hex, p)| (hex.clone(), p.key));
        if let Some((hex, key)) = oldest {
            self.peers.remove(&hex);
            self.names.retain(|_, k| *k != key);
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
    fn look_alike_names_are_the_same_name() {
        let mut k = KnownPeers::default();
        let alice = IdentityKey([1; 32]);
        let hub = IdentityKey([9; 32]);
        assert_eq!(k.sighted(alice, "alice", 1), Sighting::New);
        for (i, forged) in ["\u{0430}lice", "Alice", "al\u{200B}ice", "a1ice"].iter().enumerate() {
            let fake = IdentityKey([10 + i as u8; 32]);
            assert_eq!(k.sighted(fake, forged, 2), Sighting::IdentityChanged { old: alice }, "{forged:?}");
            assert_eq!(k.get(&fake).unwrap().replaced, Some(alice));
        }
        // The name stays with alice: the real one coming back is no change.
        assert_eq!(k.sighted(alice, "alice", 3), Sighting::Known);
        assert_eq!(k.holder_of("ALICE"), Some(alice));
        assert_eq!(k.sighted(hub, "hub", 4), Sighting::New);
    }

    #[test]
    fn a_known_key_taking_another_keys_name_is_flagged() {
        let mut k = KnownPeers::default();
        let alice = IdentityKey([1; 32]);
        let mallory = IdentityKey([2; 32]);
        k.sighted(alice, "alice", 1);
        assert_eq!(k.sighted(mallory, "mallory", 2), Sighting::New);
        assert!(k.set_verified(&mallory, true));
        assert_eq!(k.sighted(mallory, "\u{0430}lice", 3), Sighting::IdentityChanged { old: alice });
        assert!(!k.get(&mallory).unwrap().verified, "a verified key posing as another loses its badge");
        // Renaming to a free name is an ordinary rename, and the old name stays reserved.
        let bob = IdentityKey([3; 32]);
        k.sighted(bob, "bob", 4);
        assert_eq!(k.sighted(bob, "robert", 5), Sighting::Known);
        assert_eq!(k.sighted(IdentityKey([4; 32]), "Bob", 6), Sighting::IdentityChanged { old: bob });
    }

    #[test]
    fn accepting_a_change_moves_the_name() {
        let mut k = KnownPeers::default();
        let old = IdentityKey([1; 32]);
        let new = IdentityKey([2; 32]);
        k.sighted(old, "alice", 1);
        assert_eq!(k.sighted(new, "alice", 2), Sighting::IdentityChanged { old });
        k.acknowledge_change(&new);
        assert_eq!(k.holder_of("alice"), Some(new));
        assert_eq!(k.sighted(new, "alice", 3), Sighting::Known);
        // Now the old key is the one posing as alice.
        assert_eq!(k.sighted(old, "alice", 4), Sighting::IdentityChanged { old: new });
    }

    #[test]
    fn the_store_is_bounded_and_keeps_verified_peers() {
        let mut k = KnownPeers::default();
        let friend = IdentityKey([0xff; 32]);
        k.sighted(friend, "friend", 0);
        k.set_verified(&friend, true);
        for i in 0..(MAX_KNOWN_PEERS as u32 + 100) {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_le_bytes());
            k.sighted(IdentityKey(key), &format!("fake{i}"), 1 + u64::from(i));
        }
        assert_eq!(k.len(), MAX_KNOWN_PEERS);
        assert!(k.get(&friend).is_some_and(|p| p.verified));
        assert!(k.names.len() <= 2 * MAX_KNOWN_PEERS);
        assert_eq!(
            k.sighted(IdentityKey([0xee; 32]), "friend", 9_999_999),
            Sighting::IdentityChanged { old: friend }
        );
    }

    #[test]
    fn version_1_names_are_rekeyed_by_skeleton() {
        let alice = IdentityKey([1; 32]);
        let mut v1 = KnownPeers::default();
        v1.sighted(alice, "alice", 1);
        v1.version = 1;
        v1.names = BTreeMap::from([("alice".to_string(), alice), ("gone".to_string(), IdentityKey([7; 32]))]);
        let k = serde_json::from_str::<KnownPeers>(&serde_json::to_string(&v1).unwrap()).unwrap().upgraded();
        assert_eq!(k.holder_of("\u{0410}lice"), Some(alice));
        assert_eq!(k.holder_of("gone"), None, "a name of a key no longer known is dropped");
        assert_eq!(k.version, VERSION);
    }

    #[test]
    fn an_introduced_peer_is_verified_and_holds_its_name_before_we_meet() {
        let mut k = KnownPeers::default();
        let alice = IdentityKey([1; 32]);
        let impostor = IdentityKey([2; 32]);
        k.introduce(alice, "alice", 1);
        assert_eq!(k.sighted(impostor, "\u{0430}lice", 2), Sighting::IdentityChanged { old: alice });
        assert_eq!(k.sighted(alice, "alice", 3), Sighting::Known);
        assert!(k.get(&alice).unwrap().verified);
    }

    #[test]
    fn survives_json() {
        let mut k = KnownPeers::default();
        k.sighted(IdentityKey([1; 32]), "bob", 1);
        let s = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<KnownPeers>(&s).unwrap(), k);
    }
}
