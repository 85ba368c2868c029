//! Who a peer is: fingerprints, safety numbers and short authentication strings.
//!
//! * The **fingerprint** names an identity key in events and commands (128 bits, hex).
//! * The **safety number** is stable for a pair of identities, the same on both sides whatever
//!   the order, and is what users compare out of band: 60 digits in 12 groups of 5, like
//!   Signal's, ~199 bits.
//! * The **SAS** is per session: derived from the Noise handshake hash, so it differs every
//!   session and matches only if nobody sat in the middle of *this* handshake.

use hkdf::Hkdf;
use sha2::{Digest, Sha256, Sha512};
use x25519_dalek::PublicKey;

use serde::{Deserialize, Serialize};

/// A long-term identity public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IdentityKey(pub [u8; 32]);

impl IdentityKey {
    pub fn fingerprint(&self) -> Fingerprint {
        let mut hasher = Sha256::new();
        hasher.update(b"kith fingerprint v1");
        hasher.update(self.0);
        let digest = hasher.finalize();
        let mut fp = [0u8; 16];
        fp.copy_from_slice(&digest[..16]);
        Fingerprint(fp)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::from(self.0)
    }
}

impl From<&PublicKey> for IdentityKey {
    fn from(pk: &PublicKey) -> Self {
        Self(*pk.as_bytes())
    }
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentityKey({})", self.fingerprint())
    }
}

/// 128-bit name of an identity key, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 16]);

impl Fingerprint {
    pub fn parse(s: &str) -> Option<Self> {
        let cleaned: String = s.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
        let bytes = hex::decode(cleaned).ok()?;
        let arr: [u8; 16] = bytes.try_into().ok()?;
        Some(Self(arr))
    }

    /// Grouped for people to read: `a1b2 c3d4 …`.
    pub fn grouped(&self) -> String {
        let hex = self.to_string();
        hex.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Hash iterations for the safety number; slows down a search for a colliding key pair.
const SAFETY_ITERATIONS: usize = 5200;

/// The safety number for two identities: 12 groups of 5 digits, order-independent.
pub fn safety_number(a: &IdentityKey, b: &IdentityKey) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut digest: [u8; 64] = {
        let mut hasher = Sha512::new();
        hasher.update(b"kith safety number v1");
        hasher.update(lo.0);
        hasher.update(hi.0);
        hasher.finalize().into()
    };
    for _ in 0..SAFETY_ITERATIONS {
        let mut hasher = Sha512::new();
        hasher.update(digest);
        hasher.update(lo.0);
        hasher.update(hi.0);
        digest = hasher.finalize().into();
    }
    digest
        .chunks(5)
        .take(12)
        .map(|chunk| {
            let mut v = 0u64;
            for byte in chunk {
                v = (v << 8) | u64::from(*byte);
            }
            format!("{:05}", v % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The 64 emoji of the Matrix SAS verification, with their English names.
pub const SAS_EMOJI: [(&str, &str); 64] = [
    ("🐶", "Dog"),
    ("🐱", "Cat"),
    ("🦁", "Lion"),
    ("🐎", "Horse"),
    ("🦄", "Unicorn"),
    ("🐷", "Pig"),
    ("🐘", "Elephant"),
    ("🐰", "Rabbit"),
    ("🐼", "Panda"),
    ("🐓", "Rooster"),
    ("🐧", "Penguin"),
    ("🐢", "Turtle"),
    ("🐟", "Fish"),
    ("🐙", "Octopus"),
    ("🦋", "Butterfly"),
    ("🌷", "Flower"),
    ("🌳", "Tree"),
    ("🌵", "Cactus"),
    ("🍄", "Mushroom"),
    ("🌏", "Globe"),
    ("🌙", "Moon"),
    ("☁️", "Cloud"),
    ("🔥", "Fire"),
    ("🍌", "Banana"),
    ("🍎", "Apple"),
    ("🍓", "Strawberry"),
    ("🌽", "Corn"),
    ("🍕", "Pizza"),
    ("🎂", "Cake"),
    ("❤️", "Heart"),
    ("😀", "Smiley"),
    ("🤖", "Robot"),
    ("🎩", "Hat"),
    ("👓", "Glasses"),
    ("🔧", "Spanner"),
    ("🎅", "Santa"),
    ("👍", "Thumbs Up"),
    ("☂️", "Umbrella"),
    ("⌛", "Hourglass"),
    ("⏰", "Clock"),
    ("🎁", "Gift"),
    ("💡", "Light Bulb"),
    ("📕", "Book"),
    ("✏️", "Pencil"),
    ("📎", "Paperclip"),
    ("✂️", "Scissors"),
    ("🔒", "Lock"),
    ("🔑", "Key"),
    ("🔨", "Hammer"),
    ("☎️", "Telephone"),
    ("🏁", "Flag"),
    ("🚂", "Train"),
    ("🚲", "Bicycle"),
    ("✈️", "Aeroplane"),
    ("🚀", "Rocket"),
    ("🏆", "Trophy"),
    ("⚽", "Ball"),
    ("🎸", "Guitar"),
    ("🎺", "Trumpet"),
    ("🔔", "Bell"),
    ("⚓", "Anchor"),
    ("🎧", "Headphones"),
    ("📁", "Folder"),
    ("📌", "Pin"),
];

/// A session's short authentication string: 7 emoji (42 bits) and 4×4 digits (52 bits).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sas {
    pub emoji: Vec<&'static str>,
    pub words: Vec<&'static str>,
    pub digits: String,
}

impl Sas {
    pub fn from_handshake_hash(h: &[u8; 32]) -> Self {
        let mut okm = [0u8; 14];
        Hkdf::<Sha256>::new(None, h)
            .expand(b"kith sas v1", &mut okm)
            .expect("14 bytes is a valid HKDF-SHA256 output length");
        // Emoji: the first 42 bits, 6 at a time (as Matrix does).
        let mut bits = 0u64;
        for byte in &okm[..6] {
            bits = (bits << 8) | u64::from(*byte);
        }
        let indices: Vec<usize> = (0..7).map(|i| ((bits >> (42 - 6 * (i + 1))) & 63) as usize).collect();
        // Digits: 52 further bits, 13 per group, offset by 1000 so each group has 4 digits.
        let mut dbits = 0u64;
        for byte in &okm[6..13] {
            dbits = (dbits << 8) | u64::from(*byte);
        }
        let digits = (0..4)
            .map(|i| format!("{}", ((dbits >> (56 - 13 * (i + 1))) & 0x1fff) + 1000))
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            emoji: indices.iter().map(|&i| SAS_EMOJI[i].0).collect(),
            words: indices.iter().map(|&i| SAS_EMOJI[i].1).collect(),
            digits,
        }
    }

    /// `🐶 🐱 …` and the words, on one line.
    pub fn to_line(&self) -> String {
        format!("{} ({})  {}", self.emoji.join(" "), self.words.join(", "), self.digits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_number_is_symmetric_and_grouped() {
        let a = IdentityKey([1; 32]);
        let b = IdentityKey([2; 32]);
        let sn = safety_number(&a, &b);
        assert_eq!(sn, safety_number(&b, &a));
        assert_eq!(sn.split(' ').count(), 12);
        assert!(sn.split(' ').all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_digit())));
        assert_ne!(sn, safety_number(&a, &IdentityKey([3; 32])));
    }

    #[test]
    fn sas_is_deterministic_and_sized() {
        let s = Sas::from_handshake_hash(&[9; 32]);
        assert_eq!(s, Sas::from_handshake_hash(&[9; 32]));
        assert_eq!(s.emoji.len(), 7);
        assert_eq!(s.digits.split(' ').count(), 4);
        assert_ne!(s, Sas::from_handshake_hash(&[8; 32]));
    }

    #[test]
    fn emoji_list_has_64_distinct_entries() {
        let mut names: Vec<_> = SAS_EMOJI.iter().map(|e| e.1).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 64);
    }

    #[test]
    fn fingerprint_round_trips() {
        let fp = IdentityKey([5; 32]).fingerprint();
        assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
        assert_eq!(Fingerprint::parse(&fp.grouped()), Some(fp));
        assert_eq!(Fingerprint::parse("zz"), None);
    }
}
