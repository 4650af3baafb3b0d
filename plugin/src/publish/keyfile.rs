//! Key files. A private key is a PKCS#8 PEM file (`PRIVATE KEY`, ed25519 or ECDSA P-256),
//! written with mode 0600; a public key is the TUF key object as JSON
//! (`{"keytype", "scheme", "keyval": {"public"}}`), which is what `key show` prints.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::tuf::schema::Key;
use crate::tuf::signing::{key_id, SigningKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} exists already; refusing to overwrite a key")]
    Exists { path: String },
    #[error("{path}: {reason}")]
    Write { path: String, reason: String },
}

/// A key read from a file: private (can sign) or public only.
pub enum KeyFile {
    Private(SigningKey),
    Public(Key),
}

impl KeyFile {
    pub fn public(&self) -> Key {
        match self {
            KeyFile::Private(k) => k.public(),
            KeyFile::Public(k) => k.clone(),
        }
    }

    pub fn key_id(&self) -> String {
        key_id(&self.public())
    }

    pub fn into_private(self, path: &Path) -> Result<SigningKey, KeyFileError> {
        match self {
            KeyFile::Private(k) => Ok(k),
            KeyFile::Public(_) => Err(KeyFileError::Read {
                path: path.display().to_string(),
                reason: "a private key is needed here, and this file holds a public key".into(),
            }),
        }
    }
}

/// Reads a private (PEM) or public (TUF key JSON) key file.
pub fn read(path: &Path) -> Result<KeyFile, KeyFileError> {
    let err = |reason: String| KeyFileError::Read {
        path: path.display().to_string(),
        reason,
    };
    // No key file is larger than 64 KiB; a device that never ends is refused all the same.
    let text = crate::io::read_text_file(path, 64 * 1024).map_err(|e| err(e.to_string()))?;
    if text.trim_start().starts_with('{') {
        let key: Key =
            serde_json::from_str(&text).map_err(|e| err(format!("not a TUF public key: {e}")))?;
        crate::tuf::keys::PublicKey::from_metadata(&key).map_err(|e| err(e.to_string()))?;
        return Ok(KeyFile::Public(key));
    }
    SigningKey::from_pkcs8_pem(&text)
        .map(KeyFile::Private)
        .map_err(|e| err(e.to_string()))
}

/// Reads a private key file.
pub fn read_private(path: &Path) -> Result<SigningKey, KeyFileError> {
    read(path)?.into_private(path)
}

/// Writes a new private key (0600, never over an existing file) and its public key beside it
/// (`<path>.pub`).
pub fn write_new(path: &Path, key: &SigningKey) -> Result<(), KeyFileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let werr = |p: &Path, reason: String| KeyFileError::Write {
        path: p.display().to_string(),
        reason,
    };
    let pem = key.to_pkcs8_pem().map_err(|e| werr(path, e.to_string()))?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists {
                    path: path.display().to_string(),
                }
            } else {
                werr(path, e.to_string())
            }
        })?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| werr(path, e.to_string()))?;
    let public_path = public_path(path);
    let json = serde_json::to_string_pretty(&key.public())
        .map_err(|e| werr(&public_path, e.to_string()))?;
    fs::write(&public_path, format!("{json}\n")).map_err(|e| werr(&public_path, e.to_string()))
}

pub fn public_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    name.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_keys_are_0600_and_public_keys_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.key");
        let key = SigningKey::generate_ecdsa_p256().expect("key");
        write_new(&path, &key).expect("write");
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            write_new(&path, &key),
            Err(KeyFileError::Exists { .. })
        ));
        assert_eq!(read(&path).expect("private").key_id(), key.key_id());
        let public = read(&public_path(&path)).expect("public");
        assert!(matches!(public, KeyFile::Public(_)));
        assert_eq!(public.key_id(), key.key_id());
        assert!(read_private(&public_path(&path)).is_err());
        fs::write(
            dir.path().join("bad.pub"),
            r#"{"keytype":"dsa","scheme":"x","keyval":{"public":"0"}}"#,
        )
        .expect("write");
        assert!(read(&dir.path().join("bad.pub")).is_err());
    }

    #[test]
    fn a_key_file_that_never_ends_is_refused_at_its_cap() {
        let err = read(Path::new("/dev/zero")).err().expect("endless");
        assert!(err.to_string().contains("65536-byte limit"), "{err}");
    }
}
