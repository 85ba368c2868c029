//! The profile directory: identity key, hub key, known peers, pinned hubs.
//!
//! Every file is written atomically (temp file in the same directory, fsync, rename) with mode
//! 0600 on Unix. A file that exists but cannot be read or parsed is an error naming the file:
//! never silently replaced, since replacing an identity would look like an impersonation to
//! every friend.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand_core::{OsRng, TryRngCore};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::protocol::noise::Keypair;
use crate::protocol::trust::{HubPins, KnownPeers};

const IDENTITY_FILE: &str = "identity.key";
const HUB_KEY_FILE: &str = "hub.key";
const KNOWN_PEERS_FILE: &str = "known_peers.json";
const HUB_PINS_FILE: &str = "hubs.json";
const KEY_HEADER: &str = "kith x25519 secret key v1";

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is corrupt ({reason}); move it away to start over, or restore a backup")]
    Corrupt { path: PathBuf, reason: String },
    #[error("no configuration directory could be determined; pass --profile DIR")]
    NoConfigDir,
    #[error(
        "the profile {dir} is in use by another Kith{}; quit that one first, or pass --profile DIR to run a second identity",
        pid.as_ref().map(|p| format!(" (process {p})")).unwrap_or_default()
    )]
    InUse { dir: PathBuf, pid: Option<String> },
    #[error(
        "{path} can be read by other users of this computer (mode {mode:o}), so the key in it may be known to them; \
         if you trust everyone who uses this computer, run `chmod 600 {path}` and start again"
    )]
    KeyExposed { path: PathBuf, mode: u32 },
}

#[derive(Debug, Clone)]
pub struct Profile {
    dir: PathBuf,
    /// Held open, locked, while this process uses the profile as a client (see
    /// [`Profile::open_exclusive`]); the lock goes with the last clone.
    _lock: Option<std::sync::Arc<std::fs::File>>,
}

const LOCK_FILE: &str = "lock";

impl Profile {
    /// `dir`, or the platform config directory (`~/.config/kith` on Linux), for reading and
    /// for the hub's key. A directory Kith creates is made private (0700 on Unix); one that
    /// exists keeps its permissions (`--profile ~` must not change those of a home).
    pub fn open(dir: Option<&Path>) -> Result<Self, ProfileError> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => directories::ProjectDirs::from("org", "Kith", "kith")
                .ok_or(ProfileError::NoConfigDir)?
                .config_dir()
                .to_path_buf(),
        };
        let io = |source| ProfileError::Io { path: dir.clone(), source };
        if !dir.is_dir() {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let builder = std::fs::DirBuilder::new();
            // Only the owner may read the identity (Windows: the user's profile folder's ACL).
            #[cfg(unix)]
            let builder = {
                let mut b = builder;
                std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
                b
            };
            match builder.create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(Self { dir, _lock: None })
    }

    /// [`Profile::open`], and the profile is this process's until it exits: a second client
    /// on the same profile would create a second identity, or lose the first one's updates
    /// to the known peers.
    pub fn open_exclusive(dir: Option<&Path>) -> Result<Self, ProfileError> {
        let mut profile = Self::open(dir)?;
        let path = profile.dir.join(LOCK_FILE);
        let io = |source| ProfileError::Io { path: path.clone(), source };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty());
                return Err(ProfileError::InUse { dir: profile.dir, pid });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        // Who holds it, for the other process's error message.
        file.set_len(0).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        profile._lock = Some(std::sync::Arc::new(file));
        Ok(profile)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The long-term identity, created on first use.
    pub fn identity(&self) -> Result<Keypair, ProfileError> {
        self.key_file(IDENTITY_FILE)
    }

    /// The hub's static key (separate from the identity: a hub operator is not a chat member).
    pub fn hub_key(&self) -> Result<Keypair, ProfileError> {
        self.key_file(HUB_KEY_FILE)
    }

    pub fn known_peers(&self) -> Result<KnownPeers, ProfileError> {
        self.load_json(KNOWN_PEERS_FILE).map(KnownPeers::upgraded)
    }

    pub fn save_known_peers(&self, peers: &KnownPeers) -> Result<(), ProfileError> {
        self.save_json(KNOWN_PEERS_FILE, peers)
    }

    pub fn hub_pins(&self) -> Result<HubPins, ProfileError> {
        self.load_json(HUB_PINS_FILE)
    }

    pub fn save_hub_pins(&self, pins: &HubPins) -> Result<(), ProfileError> {
        self.save_json(HUB_PINS_FILE, pins)
    }

    fn key_file(&self, name: &str) -> Result<Keypair, ProfileError> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                refuse_exposed(&path)?;
                parse_key(&Zeroizing::new(text)).map_err(|reason| ProfileError::Corrupt { path, reason })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = Zeroizing::new([0u8; 32]);
                OsRng.try_fill_bytes(&mut *secret).map_err(|e| ProfileError::Io {
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                let text = Zeroizing::new(format!("{KEY_HEADER}\n{}\n", hex::encode(*secret)));
                // Never over a key another process made meanwhile: that one is the identity.
                match write_new(&path, text.as_bytes()) {
                    Ok(()) => Ok(Keypair::from_secret_bytes(*secret)),
                    Err(ProfileError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        self.key_file(name)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(source) => Err(ProfileError::Io { path, source }),
        }
    }

    fn load_json<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, ProfileError> {
        let path = self.dir.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ProfileError::Corrupt { path, reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
            Err(source) => Err(ProfileError::Io { path, source }),
        }
    }

    fn save_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), ProfileError> {
        let path = self.dir.join(name);
        let bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| ProfileError::Io { path: path.clone(), source: std::io::Error::other(e) })?;
        write_atomic(&path, &bytes)
    }
}

fn parse_key(text: &str) -> Result<Keypair, String> {
    let mut lines = text.lines();
    if lines.next() != Some(KEY_HEADER) {
        return Err(format!("first line is not {KEY_HEADER:?}"));
    }
    let hex_line = lines.next().ok_or("missing key line")?.trim();
    let mut secret = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_line, &mut *secret).map_err(|e| format!("key is not 64 hex digits: {e}"))?;
    if lines.any(|l| !l.trim().is_empty()) {
        return Err("unexpected trailing content".into());
    }
    Ok(Keypair::from_secret_bytes(*secret))
}

/// A key file others may read is refused: its secret may already be theirs.
fn refuse_exposed(path: &Path) -> Result<(), ProfileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|source| ProfileError::Io { path: path.to_path_buf(), source })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ProfileError::KeyExposed { path: path.to_path_buf(), mode });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file, never half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ProfileError> {
    let tmp = write_temp(path, bytes)?;
    tmp.persist(path).map_err(|e| ProfileError::Io { path: path.to_path_buf(), source: e.error })?;
    Ok(())
}

/// Like [`write_atomic`], for a file that must not exist yet: fails with `AlreadyExists`
/// rather than replace one.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), ProfileError> {
    let tmp = write_temp(path, bytes)?;
    tmp.persist_noclobber(path)
        .map_err(|e| ProfileError::Io { path: path.to_path_buf(), source: e.error })?;
    Ok(())
}

/// `bytes` in a private temporary file beside `path`, synced.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<tempfile::NamedTempFile, ProfileError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let io = |source| ProfileError::Io { path: path.to_path_buf(), source };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let p = Profile::open(Some(dir.path())).unwrap();
        let a = p.identity().unwrap();
        let b = p.identity().unwrap();
        assert_eq!(a.public, b.public);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(IDENTITY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn corrupt_identity_is_an_error_and_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(IDENTITY_FILE);
        std::fs::write(&path, "garbage").unwrap();
        let p = Profile::open(Some(dir.path())).unwrap();
        let err = p.identity().unwrap_err().to_string();
        assert!(err.contains("identity.key"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "garbage");
    }

    #[test]
    fn one_client_per_profile_and_the_error_names_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let first = Profile::open_exclusive(Some(dir.path())).unwrap();
        let err = Profile::open_exclusive(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("in use by another Kith") && err.contains(&std::process::id().to_string()),
            "{err}"
        );
        // Reading is still allowed (the hub's key, a test looking at the identity).
        assert!(Profile::open(Some(dir.path())).is_ok());
        drop(first);
        assert!(Profile::open_exclusive(Some(dir.path())).is_ok(), "the lock goes with the process");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_others_can_read_is_refused_and_an_existing_directory_keeps_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = Profile::open(Some(dir.path())).unwrap();
        let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "a directory Kith did not create keeps its permissions");
        p.identity().unwrap();
        let key = dir.path().join(IDENTITY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = p.identity().unwrap_err().to_string();
        assert!(err.contains("chmod 600") && err.contains("644"), "{err}");
        // A directory Kith creates is private.
        let new = dir.path().join("a/b/profile");
        Profile::open(Some(&new)).unwrap();
        assert_eq!(std::fs::metadata(&new).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn corrupt_known_peers_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KNOWN_PEERS_FILE), "{not json").unwrap();
        let p = Profile::open(Some(dir.path())).unwrap();
        assert!(p.known_peers().unwrap_err().to_string().contains("known_peers.json"));
    }
}
