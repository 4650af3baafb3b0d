//! Public keys and signature checks for the TUF key types pullguard accepts.
//!
//! | keytype                         | scheme                | public key        | signature |
//! |---------------------------------|-----------------------|-------------------|-----------|
//! | `ed25519`                       | `ed25519`             | hex, 32 bytes     | hex       |
//! | `ecdsa`/`ecdsa-sha2-nistp256`   | `ecdsa-sha2-nistp256` | PEM SPKI          | hex DER   |
//! | `ecdsa`/`ecdsa-sha2-nistp384`   | `ecdsa-sha2-nistp384` | PEM SPKI          | hex DER   |
//! | `rsa`                           | `rsassa-pss-sha{256,384,512}`   | PEM SPKI | hex  |
//! | `rsa`                           | `rsa-pkcs1v15-sha{256,384,512}` | PEM SPKI | hex  |
//!
//! Backends, chosen by measurement (see `benches/trust_core.rs` and the README): ed25519-dalek
//! for ed25519 (strict verification: no malleable signatures, no small-order keys), `ring` for
//! ECDSA and RSA — its P-256 verification is about 5× faster than the pure-Rust `p256` crate
//! on our machines. `ring` requires RSA-PSS salts of the digest's length, which is what
//! securesystemslib and go-tuf write.
//!
//! A key of a type or scheme not in this table parses (metadata that lists it stays readable)
//! but never verifies anything; the threshold error then names it.

use ed25519_dalek::{Signature as EdSignature, VerifyingKey};
use ring::signature::{self as ring_sig, UnparsedPublicKey, VerificationAlgorithm};

use super::schema::Key;

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported key type/scheme {keytype}/{scheme}")]
    Unsupported { keytype: String, scheme: String },
    #[error("malformed {scheme} public key: {reason}")]
    Malformed { scheme: String, reason: String },
}

/// A public key ready to check signatures.
#[derive(Clone)]
pub enum PublicKey {
    Ed25519(VerifyingKey),
    /// `ring` algorithm plus the raw key bytes (SEC1 point, or PKCS#1 RSAPublicKey).
    Ring {
        algorithm: &'static dyn VerificationAlgorithm,
        bytes: Vec<u8>,
    },
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublicKey::Ed25519(k) => write!(f, "Ed25519({})", hex::encode(k.as_bytes())),
            PublicKey::Ring { bytes, .. } => write!(f, "Ring({})", hex::encode(bytes)),
        }
    }
}

// OIDs of SubjectPublicKeyInfo algorithms and EC curves.
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

impl PublicKey {
    /// Parses a key as written in metadata.
    pub fn from_metadata(key: &Key) -> Result<Self, KeyError> {
        let scheme = key.scheme.as_str();
        let malformed = |reason: String| KeyError::Malformed {
            scheme: scheme.to_string(),
            reason,
        };
        let public = || {
            key.keyval
                .public
                .as_deref()
                .ok_or_else(|| malformed("keyval has no `public`".into()))
        };
        match (key.keytype.as_str(), scheme) {
            ("ed25519", "ed25519") => {
                let raw = hex::decode(public()?.trim())
                    .map_err(|e| malformed(format!("not hex: {e}")))?;
                let raw: [u8; 32] = raw
                    .try_into()
                    .map_err(|_| malformed("an ed25519 key is 32 bytes".into()))?;
                VerifyingKey::from_bytes(&raw)
                    .map(PublicKey::Ed25519)
                    .map_err(|e| malformed(e.to_string()))
            }
            ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => {
                let point =
                    spki_key(public()?, OID_EC_PUBLIC_KEY, Some(OID_P256)).map_err(malformed)?;
                Ok(PublicKey::Ring {
                    algorithm: &ring_sig::ECDSA_P256_SHA256_ASN1,
                    bytes: point,
                })
            }
            ("ecdsa" | "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384") => {
                let point =
                    spki_key(public()?, OID_EC_PUBLIC_KEY, Some(OID_P384)).map_err(malformed)?;
                Ok(PublicKey::Ring {
                    algorithm: &ring_sig::ECDSA_P384_SHA384_ASN1,
                    bytes: point,
                })
            }
            ("rsa", _) if rsa_algorithm(scheme).is_some() => {
                let der = spki_key(public()?, OID_RSA, None).map_err(malformed)?;
                Ok(PublicKey::Ring {
                    algorithm: rsa_algorithm(scheme).ok_or_else(|| malformed(String::new()))?,
                    bytes: der,
                })
            }
            (keytype, scheme) => Err(KeyError::Unsupported {
                keytype: keytype.to_string(),
                scheme: scheme.to_string(),
            }),
        }
    }

    /// The key material, used to count a key only once even under two key IDs.
    pub fn material(&self) -> &[u8] {
        match self {
            PublicKey::Ed25519(k) => k.as_bytes(),
            PublicKey::Ring { bytes, .. } => bytes,
        }
    }

    /// Checks `sig_hex` over `message`. Malformed signatures are simply not valid.
    pub fn verify(&self, message: &[u8], sig_hex: &str) -> bool {
        let Ok(sig) = hex::decode(sig_hex) else {
            return false;
        };
        match self {
            PublicKey::Ed25519(key) => match EdSignature::from_slice(&sig) {
                Ok(sig) => key.verify_strict(message, &sig).is_ok(),
                Err(_) => false,
            },
            PublicKey::Ring { algorithm, bytes } => UnparsedPublicKey::new(*algorithm, bytes)
                .verify(message, &sig)
                .is_ok(),
        }
    }
}

fn rsa_algorithm(scheme: &str) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match scheme {
        "rsassa-pss-sha256" => &ring_sig::RSA_PSS_2048_8192_SHA256,
        "rsassa-pss-sha384" => &ring_sig::RSA_PSS_2048_8192_SHA384,
        "rsassa-pss-sha512" => &ring_sig::RSA_PSS_2048_8192_SHA512,
        "rsa-pkcs1v15-sha256" => &ring_sig::RSA_PKCS1_2048_8192_SHA256,
        "rsa-pkcs1v15-sha384" => &ring_sig::RSA_PKCS1_2048_8192_SHA384,
        "rsa-pkcs1v15-sha512" => &ring_sig::RSA_PKCS1_2048_8192_SHA512,
        _ => return None,
    })
}

/// Decodes a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), checks its algorithm (and curve), and
/// returns the subjectPublicKey bits: the SEC1 point for EC keys, RSAPublicKey DER for RSA.
fn spki_key(pem: &str, algorithm: &str, curve: Option<&str>) -> Result<Vec<u8>, String> {
    let (label, der) =
        pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    if label != "PUBLIC KEY" {
        return Err(format!("PEM label is `{label}`, expected `PUBLIC KEY`"));
    }
    let info = spki::SubjectPublicKeyInfoRef::try_from(der.as_slice())
        .map_err(|e| format!("not a SubjectPublicKeyInfo: {e}"))?;
    if info.algorithm.oid.to_string() != algorithm {
        return Err(format!(
            "key algorithm {} is not {algorithm}",
            info.algorithm.oid
        ));
    }
    if let Some(curve) = curve {
        let found = info
            .algorithm
            .parameters_oid()
            .map_err(|e| format!("no curve parameter: {e}"))?;
        if found.to_string() != curve {
            return Err(format!("curve {found} is not {curve}"));
        }
    }
    info.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "public key bit string has unused bits".to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tuf::schema::KeyVal;
    use ed25519_dalek::Signer;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    /// A signing key for tests, with its metadata form.
    pub(crate) enum TestKey {
        Ed25519(ed25519_dalek::SigningKey),
        EcdsaP256(EcdsaKeyPair),
    }

    impl TestKey {
        pub(crate) fn ed25519(seed: u8) -> Self {
            TestKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
        }

        pub(crate) fn ecdsa() -> Self {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .expect("generate");
            TestKey::EcdsaP256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                    .expect("load"),
            )
        }

        pub(crate) fn metadata(&self) -> Key {
            let (keytype, scheme, public) = match self {
                TestKey::Ed25519(k) => (
                    "ed25519",
                    "ed25519",
                    hex::encode(k.verifying_key().as_bytes()),
                ),
                TestKey::EcdsaP256(k) => (
                    "ecdsa",
                    "ecdsa-sha2-nistp256",
                    p256_pem(k.public_key().as_ref()),
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

        pub(crate) fn sign(&self, message: &[u8]) -> String {
            match self {
                TestKey::Ed25519(k) => hex::encode(k.sign(message).to_bytes()),
                TestKey::EcdsaP256(k) => hex::encode(
                    k.sign(&SystemRandom::new(), message)
                        .expect("sign")
                        .as_ref(),
                ),
            }
        }
    }

    fn p256_pem(point: &[u8]) -> String {
        use p256::pkcs8::EncodePublicKey;
        let key = p256::PublicKey::from_sec1_bytes(point).expect("point");
        key.to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .expect("pem")
    }

    #[test]
    fn ed25519_and_ecdsa_verify_and_reject() {
        for key in [TestKey::ed25519(7), TestKey::ecdsa()] {
            let public = PublicKey::from_metadata(&key.metadata()).expect("parses");
            let sig = key.sign(b"message");
            assert!(public.verify(b"message", &sig));
            assert!(!public.verify(b"messagE", &sig));
            assert!(!public.verify(b"message", "zz"));
            assert!(!public.verify(b"message", ""));
        }
    }

    #[test]
    fn unknown_key_types_are_reported_not_fatal() {
        let mut key = TestKey::ed25519(1).metadata();
        key.keytype = "sphincs".into();
        key.scheme = "sphincs-shake".into();
        assert_eq!(
            PublicKey::from_metadata(&key).expect_err("unsupported"),
            KeyError::Unsupported {
                keytype: "sphincs".into(),
                scheme: "sphincs-shake".into()
            }
        );
    }

    #[test]
    fn mismatched_key_type_and_material_is_malformed() {
        // An ed25519 key that claims to be ECDSA, and an ECDSA key with ed25519 hex.
        let mut key = TestKey::ed25519(1).metadata();
        key.keytype = "ecdsa".into();
        key.scheme = "ecdsa-sha2-nistp256".into();
        assert!(matches!(
            PublicKey::from_metadata(&key),
            Err(KeyError::Malformed { .. })
        ));
        let mut key = TestKey::ecdsa().metadata();
        key.keytype = "ed25519".into();
        key.scheme = "ed25519".into();
        assert!(matches!(
            PublicKey::from_metadata(&key),
            Err(KeyError::Malformed { .. })
        ));
        // An ECDSA P-256 key announced as P-384.
        let mut key = TestKey::ecdsa().metadata();
        key.scheme = "ecdsa-sha2-nistp384".into();
        assert!(matches!(
            PublicKey::from_metadata(&key),
            Err(KeyError::Malformed { .. })
        ));
    }
}
