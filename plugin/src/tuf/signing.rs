//! Private keys and signing: what publishers use to produce metadata that the trust core
//! (and any TUF client) accepts. Key IDs follow the TUF convention: the hex SHA-256 of the
//! canonical JSON of the public key.

use ed25519_dalek::Signer as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::cjson::{self, CanonicalError};
use super::schema::{Key, KeyVal};

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("key generation failed: {0}")]
    Generate(String),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("the document cannot be canonicalised: {0}")]
    Canonical(#[from] CanonicalError),
    #[error("the document to sign must be a JSON object")]
    NotAnObject,
}

/// A private key.
pub enum SigningKey {
    Ed25519(ed25519_dalek::SigningKey),
    EcdsaP256 { pair: EcdsaKeyPair, pkcs8: Vec<u8> },
}

impl SigningKey {
    pub fn generate_ed25519() -> Result<Self, SigningError> {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut seed)
            .map_err(|_| SigningError::Generate("the system random generator failed".into()))?;
        Ok(SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(
            &seed,
        )))
    }

    /// An ed25519 key from a fixed seed (reproducible fixtures and benchmarks).
    pub fn ed25519_from_seed(seed: [u8; 32]) -> Self {
        SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    pub fn generate_ecdsa_p256() -> Result<Self, SigningError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|e| SigningError::Generate(e.to_string()))?;
        Self::ecdsa_p256_from_pkcs8(pkcs8.as_ref())
    }

    pub fn ecdsa_p256_from_pkcs8(pkcs8: &[u8]) -> Result<Self, SigningError> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &SystemRandom::new())
                .map_err(|e| SigningError::Generate(e.to_string()))?;
        Ok(SigningKey::EcdsaP256 {
            pair,
            pkcs8: pkcs8.to_vec(),
        })
    }

    /// The private key as a PKCS#8 PEM document (`PRIVATE KEY`), the format key files use.
    pub fn to_pkcs8_pem(&self) -> Result<String, SigningError> {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let der = match self {
            SigningKey::Ed25519(k) => k
                .to_pkcs8_der()
                .map_err(|e| SigningError::Generate(e.to_string()))?
                .as_bytes()
                .to_vec(),
            SigningKey::EcdsaP256 { pkcs8, .. } => pkcs8.clone(),
        };
        pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, &der)
            .map_err(|e| SigningError::Generate(e.to_string()))
    }

    /// A private key from a PKCS#8 PEM document: ed25519 or ECDSA P-256.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, SigningError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes())
            .map_err(|e| SigningError::Generate(format!("not a PEM document: {e}")))?;
        if label != "PRIVATE KEY" {
            return Err(SigningError::Generate(format!(
                "a PKCS#8 `PRIVATE KEY` is expected, not `{label}`"
            )));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(&der) {
            return Ok(SigningKey::Ed25519(k));
        }
        Self::ecdsa_p256_from_pkcs8(&der).map_err(|_| {
            SigningError::Generate(
                "the private key is neither ed25519 nor ECDSA P-256 (PKCS#8)".into(),
            )
        })
    }

    /// The public key as metadata lists it.
    pub fn public(&self) -> Key {
        let (keytype, scheme, public) = match self {
            SigningKey::Ed25519(k) => (
                "ed25519",
                "ed25519",
                hex::encode(k.verifying_key().as_bytes()),
            ),
            SigningKey::EcdsaP256 { pair, .. } => (
                "ecdsa",
                "ecdsa-sha2-nistp256",
                p256_spki_pem(pair.public_key().as_ref()),
            ),
        };
        Key {
            keytype: keytype.into(),
            scheme: scheme.into(),
            keyval: KeyVal {
                public: Some(public),
                extra: Default::default(),
            },
            extra: Default::default(),
        }
    }

    /// The TUF key ID: hex SHA-256 of the canonical JSON of the public key.
    pub fn key_id(&self) -> String {
        key_id(&self.public())
    }

    /// Signs `message` (canonical bytes); returns the hex signature.
    pub fn sign(&self, message: &[u8]) -> Result<String, SigningError> {
        match self {
            SigningKey::Ed25519(k) => Ok(hex::encode(k.sign(message).to_bytes())),
            SigningKey::EcdsaP256 { pair, .. } => pair
                .sign(&SystemRandom::new(), message)
                .map(|s| hex::encode(s.as_ref()))
                .map_err(|e| SigningError::Sign(e.to_string())),
        }
    }
}

/// The TUF key ID of a public key.
pub fn key_id(key: &Key) -> String {
    let value = json!({
        "keytype": key.keytype,
        "scheme": key.scheme,
        "keyval": {"public": key.keyval.public},
    });
    // A value built from strings only always has a canonical form.
    let canonical = cjson::to_canonical(&value).unwrap_or_default();
    hex::encode(Sha256::digest(canonical))
}

/// Wraps `signed` in an envelope signed by each of `keys`; returns the JSON bytes.
pub fn sign_document(signed: &Value, keys: &[&SigningKey]) -> Result<Vec<u8>, SigningError> {
    if !signed.is_object() {
        return Err(SigningError::NotAnObject);
    }
    let canonical = cjson::to_canonical(signed)?;
    let signatures = keys
        .iter()
        .map(|k| Ok(json!({"keyid": k.key_id(), "sig": k.sign(&canonical)?})))
        .collect::<Result<Vec<Value>, SigningError>>()?;
    let envelope = json!({"signed": signed, "signatures": signatures});
    // Compact: signatures cover the canonical form, not the file's, and every node fetches
    // and parses these bytes (indentation made a targets role a third larger).
    serde_json::to_vec(&envelope).map_err(|e| SigningError::Sign(e.to_string()))
}

/// PEM SubjectPublicKeyInfo for an uncompressed P-256 point.
fn p256_spki_pem(point: &[u8]) -> String {
    // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING point }: a fixed
    // 26-byte prefix followed by the 65-byte point.
    const PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let der = [&PREFIX[..], point].concat();
    pem_rfc7468::encode_string("PUBLIC KEY", pem_rfc7468::LineEnding::LF, &der).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuf::keys::PublicKey;
    use crate::tuf::schema::{Envelope, Timestamp};

    #[test]
    fn signed_documents_verify_with_their_public_keys() {
        for key in [
            SigningKey::generate_ed25519().expect("ed25519"),
            SigningKey::generate_ecdsa_p256().expect("ecdsa"),
        ] {
            let signed = json!({"_type": "timestamp", "spec_version": "1.0.31", "version": 1,
                                "expires": "2030-01-01T00:00:00Z",
                                "meta": {"snapshot.json": {"version": 1}}});
            let bytes = sign_document(&signed, &[&key]).expect("sign");
            let env = Envelope::<Timestamp>::from_slice(&bytes).expect("parse");
            let public = PublicKey::from_metadata(&key.public()).expect("public");
            assert_eq!(env.signatures[0].keyid, key.key_id());
            assert!(public.verify(&env.canonical, &env.signatures[0].sig));
        }
    }

    #[test]
    fn private_keys_round_trip_through_pem() {
        for key in [
            SigningKey::generate_ed25519().expect("ed25519"),
            SigningKey::generate_ecdsa_p256().expect("ecdsa"),
        ] {
            let pem = key.to_pkcs8_pem().expect("pem");
            let back = SigningKey::from_pkcs8_pem(&pem).expect("parse");
            assert_eq!(back.key_id(), key.key_id());
        }
        assert!(SigningKey::from_pkcs8_pem("garbage").is_err());
        let public = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(SigningKey::from_pkcs8_pem(public).is_err());
    }

    #[test]
    fn key_id_matches_securesystemslib() {
        // securesystemslib computes the key ID over {"keytype","keyval":{"public"},"scheme"}.
        let key = SigningKey::ed25519_from_seed([1; 32]);
        let public = key.public();
        let expected = hex::encode(Sha256::digest(format!(
            r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#,
            public.keyval.public.as_deref().unwrap_or_default()
        )));
        assert_eq!(key.key_id(), expected);
    }

    #[test]
    fn p256_pem_parses_as_spki() {
        let key = SigningKey::generate_ecdsa_p256().expect("ecdsa");
        let pem = key.public().keyval.public.unwrap_or_default();
        use p256::pkcs8::DecodePublicKey;
        assert!(p256::PublicKey::from_public_key_pem(&pem).is_ok(), "{pem}");
    }
}
