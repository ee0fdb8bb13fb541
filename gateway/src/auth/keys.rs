//! The access-token key ring: every key verifies, the current one signs.
//!
//! Loaded from the file named by `tokens.key_file` (TOML):
//!
//! ```toml
//! current = "2026-11"
//! [keys]
//! "2026-11" = "base64 secret of at least 32 bytes"
//! "2026-10" = "the previous key, still accepted until its tokens expire"
//! ```
//!
//! The file must not be readable by group or others (mode `& 0o077 == 0`). Without a file
//! the ring holds one ephemeral random key (development only; a warning is logged). Keys
//! never appear in `Debug` output or logs: only their ids do.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::Deserialize;

/// Shortest accepted secret, bytes (HS256 wants at least the hash size).
pub const SECRET_BYTES_MIN: usize = 32;
/// Longest key id.
const KID_BYTES_MAX: usize = 64;
/// Largest key file read, bytes.
const KEY_FILE_BYTES_MAX: u64 = 64 * 1024;

/// One HMAC key: both halves built from the same secret.
struct Key {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The signing keys by id. `Debug` prints the ids only.
pub struct KeyRing {
    current: String,
    keys: BTreeMap<String, Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why a key ring cannot be loaded. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the token key file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error(
        "the token key file {path} is readable by group or others (mode {mode:o}): \
         run `chmod 600 {path}`"
    )]
    TooOpen { path: String, mode: u32 },
    #[error("the token key file {path} is not valid: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    current: String,
    keys: BTreeMap<String, String>,
}

impl KeyRing {
    /// A ring from `(kid, secret)` pairs; `current` signs. For tests and [`KeyRing::load`].
    pub fn from_secrets(
        current: &str,
        secrets: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<KeyRing, String> {
        let mut keys = BTreeMap::new();
        for (kid, secret) in secrets {
            if kid.is_empty()
                || kid.len() > KID_BYTES_MAX
                || !kid.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(format!(
                    "key id {kid:?}: 1 to {KID_BYTES_MAX} visible ASCII characters"
                ));
            }
            if secret.len() < SECRET_BYTES_MIN {
                return Err(format!(
                    "key {kid:?} has {} bytes; at least {SECRET_BYTES_MIN} are needed",
                    secret.len()
                ));
            }
            let key = Key {
                encoding: EncodingKey::from_secret(&secret).map_err(|e| e.to_string())?,
                decoding: DecodingKey::from_secret(&secret).map_err(|e| e.to_string())?,
            };
            keys.insert(kid, key);
        }
        if !keys.contains_key(current) {
            return Err(format!("the current key {current:?} is not in [keys]"));
        }
        Ok(KeyRing {
            current: current.to_owned(),
            keys,
        })
    }

    /// One random key, for a gateway started without a key file.
    pub fn ephemeral() -> KeyRing {
        let secret: [u8; 32] = rand::random();
        let kid = format!("ephemeral-{:08x}", rand::random::<u32>());
        KeyRing::from_secrets(&kid, [(kid.clone(), secret.to_vec())])
            .unwrap_or_else(|_| unreachable!("a fresh 32-byte key with a short kid is valid"))
    }

    /// The ring in `path`, or an ephemeral one (with a warning) when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<KeyRing, KeyError> {
        let Some(path) = path else {
            tracing::warn!(
                "no tokens.key_file configured: signing access tokens with an ephemeral key; \
                 tokens die with this process and other gateways do not accept them"
            );
            return Ok(KeyRing::ephemeral());
        };
        let shown = path.display().to_string();
        let unreadable = |reason: String| KeyError::Unreadable {
            path: shown.clone(),
            reason,
        };
        let metadata = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::TooOpen { path: shown, mode });
            }
        }
        if metadata.len() > KEY_FILE_BYTES_MAX {
            return Err(unreadable(format!(
                "{} bytes, more than {KEY_FILE_BYTES_MAX}",
                metadata.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
        KeyRing::parse(&text).map_err(|reason| KeyError::Invalid {
            path: shown,
            reason,
        })
    }

    /// Parses the key file's text. Errors name keys by id, never show a secret.
    pub fn parse(text: &str) -> Result<KeyRing, String> {
        // toml's error quotes the offending line, which may hold a secret: keep only its
        // kind, not its text.
        let file: KeyFile = toml::from_str(text).map_err(|error| {
            let message = error.message().to_owned();
            format!("not the expected TOML (`current = \"kid\"` and a [keys] table): {message}")
        })?;
        let mut secrets = Vec::with_capacity(file.keys.len());
        for (kid, encoded) in file.keys {
            let secret = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| format!("key {kid:?} is not standard base64"))?;
            secrets.push((kid, secret));
        }
        KeyRing::from_secrets(&file.current, secrets)
    }

    /// Writes a new key file at `path` holding one random 32-byte key, created with mode
    /// 0600 (never readable by others, even for a moment). Refuses to overwrite a file.
    /// `martelo dev` and `martelo gateway --new-key-file` use it.
    pub fn create_file(path: &Path) -> Result<(), KeyError> {
        use std::io::Write as _;

        let shown = path.display().to_string();
        let secret: [u8; 32] = rand::random();
        let kid = format!("k-{:08x}", rand::random::<u32>());
        let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
        let text = format!(
            "# martelo gateway token keys: `current` signs, every key verifies.\n\
             current = \"{kid}\"\n[keys]\n\"{kid}\" = \"{encoded}\"\n"
        );
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|error| KeyError::Unreadable {
            path: shown.clone(),
            reason: format!("cannot create it: {error}"),
        })?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|error| KeyError::Unreadable {
                path: shown,
                reason: format!("cannot write it: {error}"),
            })
    }

    /// The id of the key that signs.
    pub fn current_kid(&self) -> &str {
        &self.current
    }

    /// The key that signs.
    pub(crate) fn signing_key(&self) -> &EncodingKey {
        // `from_secrets` checks that `current` is in the ring.
        &self.keys[&self.current].encoding
    }

    /// The key with id `kid`, if the ring holds it.
    pub(crate) fn verifying_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid).map(|key| &key.decoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0NQ==";

    #[test]
    fn a_created_key_file_is_private_loads_and_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.toml");
        KeyRing::create_file(&path).expect("created");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let ring = KeyRing::load(Some(&path)).expect("loads");
        assert!(
            ring.current_kid().starts_with("k-"),
            "{}",
            ring.current_kid()
        );
        let before = std::fs::read(&path).expect("read");
        assert!(KeyRing::create_file(&path).is_err(), "overwrote a key file");
        assert_eq!(std::fs::read(&path).expect("read"), before);
    }

    #[test]
    fn a_key_file_parses_and_debug_shows_ids_only() {
        let ring = KeyRing::parse(&format!(
            "current = \"k2\"\n[keys]\nk1 = \"{SECRET}\"\nk2 = \"{SECRET}\"\n"
        ))
        .expect("valid");
        assert_eq!(ring.current_kid(), "k2");
        assert!(ring.verifying_key("k1").is_some());
        let debug = format!("{ring:?}");
        assert!(debug.contains("k1") && !debug.contains(SECRET), "{debug}");
    }

    #[test]
    fn short_secrets_missing_current_and_bad_base64_are_refused_without_echoing_secrets() {
        let short = KeyRing::parse("current = \"a\"\n[keys]\na = \"c2hvcnQ=\"\n").unwrap_err();
        assert!(short.contains("at least 32"), "{short}");
        let missing =
            KeyRing::parse(&format!("current = \"b\"\n[keys]\na = \"{SECRET}\"\n")).unwrap_err();
        assert!(missing.contains("\"b\""), "{missing}");
        let bad =
            KeyRing::parse("current = \"a\"\n[keys]\na = \"!!not-base64-secret!!\"\n").unwrap_err();
        assert!(!bad.contains("not-base64-secret"), "{bad}");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.toml");
        std::fs::write(
            &path,
            format!("current = \"a\"\n[keys]\na = \"{SECRET}\"\n"),
        )
        .expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = KeyRing::load(Some(&path)).unwrap_err();
        assert!(error.to_string().contains("chmod 600"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(
            KeyRing::load(Some(&path)).expect("loads").current_kid(),
            "a"
        );
    }
}
