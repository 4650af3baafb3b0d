//! Fixed keys for the fuzz targets: ed25519 keys from fixed seeds, and ECDSA P-256, P-384
//! and RSA-2048 keys from the `fuzz-only-*` files beside this one (test keys that sign
//! nothing but fuzz inputs). Each signer knows its metadata form and key ID and signs with
//! the algorithm its scheme names, so the trust core checks its signatures as it would a
//! real repository's.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use pullguard_plugin::tuf::schema::{Key, KeyVal};
use pullguard_plugin::tuf::signing::{key_id, SigningKey};
use ring::rand::SystemRandom;
use ring::signature::{self as ring_sig, EcdsaKeyPair, RsaKeyPair};
use sha2::{Digest, Sha256};

const P256_PRIVATE: &str = include_str!("keys/fuzz-only-p256.pem");
const P384_PRIVATE: &str = include_str!("keys/fuzz-only-p384.pem");
const P384_PUBLIC: &str = include_str!("keys/fuzz-only-p384.pub.pem");
const RSA_PRIVATE: &str = include_str!("keys/fuzz-only-rsa2048.pem");
const RSA_PUBLIC: &str = include_str!("keys/fuzz-only-rsa2048.pub.pem");

enum Private {
    /// What the plugin's own signing code handles (ed25519, ECDSA P-256).
    Plugin(SigningKey),
    P384(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn ring_sig::RsaEncoding),
}

/// A private key with its metadata form.
pub struct Signer {
    pub id: String,
    pub key: Key,
    private: Private,
}

/// Signatures made, by key ID and message digest (see [`Signer::sign`]).
static SIGNATURES: OnceLock<Mutex<SignatureCache>> = OnceLock::new();
type SignatureCache = HashMap<(String, [u8; 32]), String>;
const SIGNATURES_MAX: usize = 4096;

impl Signer {
    fn plugin(key: SigningKey) -> Self {
        let public = key.public();
        Signer {
            id: key_id(&public),
            key: public,
            private: Private::Plugin(key),
        }
    }

    /// An ed25519 key from a fixed seed.
    pub fn ed25519(seed: u8) -> Self {
        Signer::plugin(SigningKey::ed25519_from_seed([seed; 32]))
    }

    /// The same key under another key ID (a second entry for the same material).
    pub fn alias(mut self, id: &str) -> Self {
        self.id = id.to_string();
        self
    }

    /// A hex signature of `message`. Signatures are kept by message digest: the fuzzer often
    /// changes one document of an input and leaves the others, which then need no new
    /// signature (an RSA signature costs a millisecond or more under instrumentation).
    pub fn sign(&self, message: &[u8]) -> String {
        let cache = SIGNATURES.get_or_init(Default::default);
        let key = (self.id.clone(), Sha256::digest(message).into());
        if let Some(sig) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return sig;
        }
        let sig = self.sign_uncached(message);
        if let Ok(mut c) = cache.lock() {
            if c.len() >= SIGNATURES_MAX {
                c.clear();
            }
            c.insert(key, sig.clone());
        }
        sig
    }

    fn sign_uncached(&self, message: &[u8]) -> String {
        let rng = SystemRandom::new();
        match &self.private {
            Private::Plugin(k) => k.sign(message).unwrap_or_default(),
            Private::P384(pair) => pair
                .sign(&rng, message)
                .map(|s| hex::encode(s.as_ref()))
                .unwrap_or_default(),
            Private::Rsa(pair, encoding) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                match pair.sign(*encoding, &rng, message, &mut sig) {
                    Ok(()) => hex::encode(sig),
                    Err(_) => String::new(),
                }
            }
        }
    }
}

fn der(pem: &str) -> Vec<u8> {
    pem_der(pem).unwrap_or_else(|| panic!("a fixed key file is not PEM"))
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64_decode(&body)
}

/// Standard base64 (the key files only; no dependency for four constants).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        out.extend_from_slice(&acc.to_be_bytes()[1..=n]);
    }
    Some(out)
}

fn pem_key(keytype: &str, scheme: &str, public: &str) -> Key {
    Key {
        keytype: keytype.into(),
        scheme: scheme.into(),
        keyval: KeyVal {
            public: Some(public.to_string()),
            extra: Default::default(),
        },
        extra: Default::default(),
    }
}

pub fn p256() -> Signer {
    let key = SigningKey::from_pkcs8_pem(P256_PRIVATE)
        .unwrap_or_else(|e| panic!("the fixed P-256 key: {e}"));
    Signer::plugin(key)
}

pub fn p384() -> Signer {
    let pair = EcdsaKeyPair::from_pkcs8(
        &ring_sig::ECDSA_P384_SHA384_ASN1_SIGNING,
        &der(P384_PRIVATE),
        &SystemRandom::new(),
    )
    .unwrap_or_else(|e| panic!("the fixed P-384 key: {e}"));
    let key = pem_key("ecdsa", "ecdsa-sha2-nistp384", P384_PUBLIC);
    Signer {
        id: key_id(&key),
        key,
        private: Private::P384(pair),
    }
}

/// The fixed RSA key under `scheme` (`rsassa-pss-sha256`, `rsa-pkcs1v15-sha512`, ...).
pub fn rsa(scheme: &str) -> Signer {
    let encoding: &'static dyn ring_sig::RsaEncoding = match scheme {
        "rsassa-pss-sha256" => &ring_sig::RSA_PSS_SHA256,
        "rsassa-pss-sha384" => &ring_sig::RSA_PSS_SHA384,
        "rsassa-pss-sha512" => &ring_sig::RSA_PSS_SHA512,
        "rsa-pkcs1v15-sha256" => &ring_sig::RSA_PKCS1_SHA256,
        "rsa-pkcs1v15-sha384" => &ring_sig::RSA_PKCS1_SHA384,
        _ => &ring_sig::RSA_PKCS1_SHA512,
    };
    let pair = RsaKeyPair::from_pkcs8(&der(RSA_PRIVATE))
        .unwrap_or_else(|e| panic!("the fixed RSA key: {e}"));
    let key = pem_key("rsa", scheme, RSA_PUBLIC);
    Signer {
        id: key_id(&key),
        key,
        private: Private::Rsa(pair, encoding),
    }
}

/// The fixed signers of the threshold target, by index: three ed25519 keys, ECDSA P-256 and
/// P-384, one RSA key under two schemes (one material, two key IDs), and the first ed25519
/// key again under another key ID.
pub fn signers() -> &'static [Signer] {
    static SIGNERS: OnceLock<Vec<Signer>> = OnceLock::new();
    SIGNERS.get_or_init(|| {
        vec![
            Signer::ed25519(1),
            Signer::ed25519(2),
            Signer::ed25519(3),
            p256(),
            p384(),
            rsa("rsassa-pss-sha256"),
            rsa("rsa-pkcs1v15-sha512"),
            Signer::ed25519(1).alias("alias-of-0"),
        ]
    })
}

/// Key table entries that can never sign: an unsupported type, a malformed ed25519 key, an
/// ECDSA key whose PEM is another curve's. With [`MISSING_KEY_ID`], a key ID in no table.
pub fn unusable_keys() -> &'static [(String, Key)] {
    static KEYS: OnceLock<Vec<(String, Key)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut odd = Signer::ed25519(1).key;
        odd.keytype = "x-unknown".into();
        let mut malformed = Signer::ed25519(1).key;
        malformed.keyval.public = Some("zz".into());
        let wrong_curve = pem_key("ecdsa", "ecdsa-sha2-nistp256", P384_PUBLIC);
        vec![
            ("unsupported".into(), odd),
            ("malformed".into(), malformed),
            ("wrong-curve".into(), wrong_curve),
        ]
    })
}

pub const MISSING_KEY_ID: &str = "missing";

#[cfg(test)]
mod tests {
    use super::*;
    use pullguard_plugin::tuf::keys::PublicKey;

    #[test]
    fn every_fixed_signer_verifies_with_its_metadata_key() {
        for s in signers() {
            let public = PublicKey::from_metadata(&s.key).expect("public key");
            assert!(public.verify(b"message", &s.sign(b"message")), "{}", s.id);
            assert!(!public.verify(b"other", &s.sign(b"message")), "{}", s.id);
        }
        for (id, k) in unusable_keys() {
            assert!(PublicKey::from_metadata(k).is_err(), "{id}");
        }
    }
}
