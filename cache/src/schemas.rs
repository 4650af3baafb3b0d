//! The column families (DESIGN §5) and their key and value encodings.
//!
//! Integers are big-endian so that key order is numeric order. Strings in keys are
//! length-prefixed (u32, big-endian), so `("ab", "c")` and `("a", "bc")` never collide and
//! every key of one scope shares the scope's prefix. Decoders check lengths and never panic
//! on garbage.

use crate::{KeyCodec, Schema, ValueCodec};

/// Every column family, for [`crate::Store::open`].
pub const ALL_CFS: [&str; 6] = [
    TrustedMeta::CF,
    HighWater::CF,
    Verdicts::CF,
    Blobs::CF,
    Clock::CF,
    Audit::CF,
];

/// Per scope: the current trusted bytes and version of each TUF role. Synced writes.
pub struct TrustedMeta;
impl Schema for TrustedMeta {
    const CF: &'static str = "trusted_meta";
    type Key = ScopedName;
    type Value = TrustedRecord;
}

/// Per scope and `repository:tag`: the highest detached-signature version seen. Synced.
pub struct HighWater;
impl Schema for HighWater {
    const CF: &'static str = "high_water";
    type Key = ScopedName;
    type Value = u64;
}

/// Cached verdicts, never keyed by tag. Buffered writes.
pub struct Verdicts;
impl Schema for Verdicts {
    const CF: &'static str = "verdicts";
    type Key = VerdictKey;
    type Value = VerdictRecord;
}

/// Content-addressed documents (`sha256:<hex>` → bytes), for offline use.
pub struct Blobs;
impl Schema for Blobs {
    const CF: &'static str = "blobs";
    type Key = String;
    type Value = Vec<u8>;
}

/// Per scope (or `""` for the node): the highest wall-clock time seen, in microseconds since
/// the Unix epoch. Synced.
pub struct Clock;
impl Schema for Clock {
    const CF: &'static str = "clock";
    type Key = String;
    type Value = i64;
}

/// The decision log: sequence number → encoded entry. Buffered.
pub struct Audit;
impl Schema for Audit {
    const CF: &'static str = "audit";
    type Key = u64;
    type Value = Vec<u8>;
}

/// A name within a scope (a role name, or `repository:tag`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScopedName {
    pub scope: String,
    pub name: String,
}

/// What a verdict was computed from: the image, the policy, and the trusted state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerdictKey {
    pub scope: String,
    pub repository: String,
    pub digest: String,
    pub policy_hash: [u8; 32],
    pub root_version: u64,
    pub snapshot_version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedRecord {
    pub version: u64,
    pub bytes: Vec<u8>,
}

/// A cached verdict and the evidence it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictRecord {
    pub admitted: bool,
    pub reason: String,
    pub message: String,
    /// Microseconds since the Unix epoch: the earliest expiry of the evidence other than the
    /// timestamp (whose current expiry bounds the verdict when it is read back).
    pub valid_until: i64,
    /// The tags (`""` for the digest pin) checked under this key: a verdict for a digest
    /// says nothing about a tag it was not checked under.
    pub tags: Vec<String>,
    pub timestamp_version: u64,
    /// The targets role that lists the image, and its version.
    pub role: String,
    pub role_version: u64,
    /// The image manifest's length as trusted metadata lists it.
    pub length: u64,
    pub signature_version: u64,
    /// The trusted keys that signed the accepted signature.
    pub key_ids: Vec<String>,
}

// ---- encoding helpers ----

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), String> {
    let len = u32::try_from(s.len()).map_err(|_| "string longer than 4 GiB".to_string())?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// A cursor over encoded bytes that reports truncation instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err(format!(
                "truncated: wanted {n} bytes, {} left",
                self.bytes.len()
            ));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, String> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|e| e.to_string())
    }

    /// A count, then that many strings; the count is checked against what is left before
    /// anything is allocated for it.
    fn strings(&mut self) -> Result<Vec<String>, String> {
        let n = u32::from_be_bytes(self.array()?) as usize;
        if n > self.bytes.len() / 4 {
            return Err(format!(
                "{n} strings cannot fit in {} bytes",
                self.bytes.len()
            ));
        }
        (0..n).map(|_| self.string()).collect()
    }

    fn finish(self) -> Result<(), String> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(format!("{} trailing bytes", self.bytes.len()))
        }
    }
}

impl KeyCodec for ScopedName {
    fn encode_key(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(8 + self.scope.len() + self.name.len());
        put_str(&mut out, &self.scope)?;
        put_str(&mut out, &self.name)?;
        Ok(out)
    }
    fn decode_key(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes };
        let key = ScopedName {
            scope: r.string()?,
            name: r.string()?,
        };
        r.finish()?;
        Ok(key)
    }
}

impl KeyCodec for VerdictKey {
    fn encode_key(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(128);
        put_str(&mut out, &self.scope)?;
        put_str(&mut out, &self.repository)?;
        put_str(&mut out, &self.digest)?;
        out.extend_from_slice(&self.policy_hash);
        out.extend_from_slice(&self.root_version.to_be_bytes());
        out.extend_from_slice(&self.snapshot_version.to_be_bytes());
        Ok(out)
    }
    fn decode_key(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes };
        let key = VerdictKey {
            scope: r.string()?,
            repository: r.string()?,
            digest: r.string()?,
            policy_hash: r.array()?,
            root_version: r.u64()?,
            snapshot_version: r.u64()?,
        };
        r.finish()?;
        Ok(key)
    }
}

impl KeyCodec for String {
    fn encode_key(&self) -> Result<Vec<u8>, String> {
        Ok(self.as_bytes().to_vec())
    }
    fn decode_key(bytes: &[u8]) -> Result<Self, String> {
        String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
    }
}

impl KeyCodec for u64 {
    fn encode_key(&self) -> Result<Vec<u8>, String> {
        Ok(self.to_be_bytes().to_vec())
    }
    fn decode_key(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes };
        let v = r.u64()?;
        r.finish()?;
        Ok(v)
    }
}

impl ValueCodec for u64 {
    fn encode_value(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, String> {
        u64::decode_key(bytes)
    }
}

impl ValueCodec for i64 {
    fn encode_value(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes };
        let v = i64::from_be_bytes(r.array()?);
        r.finish()?;
        Ok(v)
    }
}

impl ValueCodec for Vec<u8> {
    fn encode_value(&self) -> Vec<u8> {
        self.clone()
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, String> {
        Ok(bytes.to_vec())
    }
}

impl ValueCodec for TrustedRecord {
    fn encode_value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.bytes.len());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.bytes);
        out
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes };
        let version = r.u64()?;
        Ok(TrustedRecord {
            version,
            bytes: r.bytes.to_vec(),
        })
    }
}

/// The first byte of an encoded [`VerdictRecord`]: a record of another format is refused
/// (and so re-verified), never misread.
const VERDICT_FORMAT: u8 = 2;

impl ValueCodec for VerdictRecord {
    fn encode_value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.reason.len() + self.message.len());
        out.push(VERDICT_FORMAT);
        out.push(u8::from(self.admitted));
        out.extend_from_slice(&self.valid_until.to_be_bytes());
        out.extend_from_slice(&self.timestamp_version.to_be_bytes());
        out.extend_from_slice(&self.role_version.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
        out.extend_from_slice(&self.signature_version.to_be_bytes());
        // Every string is far below 4 GiB (they come from bounded documents); an
        // impossible longer one is cut rather than a panic.
        for s in [&self.reason, &self.role, &self.message] {
            put_str_cut(&mut out, s);
        }
        for list in [&self.tags, &self.key_ids] {
            out.extend_from_slice(&(list.len().min(u32::MAX as usize) as u32).to_be_bytes());
            for s in list.iter().take(u32::MAX as usize) {
                put_str_cut(&mut out, s);
            }
        }
        out
    }
    fn decode_value(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes };
        let format = r.take(1)?[0];
        if format != VERDICT_FORMAT {
            return Err(format!(
                "verdict format {format}, this build reads {VERDICT_FORMAT}"
            ));
        }
        let admitted = match r.take(1)?[0] {
            0 => false,
            1 => true,
            b => return Err(format!("admitted flag {b} is not 0 or 1")),
        };
        let valid_until = i64::from_be_bytes(r.array()?);
        let timestamp_version = r.u64()?;
        let role_version = r.u64()?;
        let length = r.u64()?;
        let signature_version = r.u64()?;
        let reason = r.string()?;
        let role = r.string()?;
        let message = r.string()?;
        let tags = r.strings()?;
        let key_ids = r.strings()?;
        r.finish()?;
        Ok(VerdictRecord {
            admitted,
            reason,
            message,
            valid_until,
            tags,
            timestamp_version,
            role,
            role_version,
            length,
            signature_version,
            key_ids,
        })
    }
}

fn put_str_cut(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(u32::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u32).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, Store};

    fn garbage() -> Vec<Vec<u8>> {
        let mut cases = vec![vec![], vec![0], vec![0xff; 3], vec![0xff; 64]];
        // A length prefix that promises more than there is.
        cases.push([&[0, 0, 0, 9][..], b"abc"].concat());
        // Invalid UTF-8 after a valid prefix.
        cases.push([&[0, 0, 0, 2][..], &[0xc3, 0x28][..]].concat());
        let mut seed = 0x2545_f491_u32;
        for len in 0..40 {
            let bytes = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            cases.push(bytes);
        }
        cases
    }

    fn no_panic_on_garbage<K: KeyCodec, V: ValueCodec>() {
        for bytes in garbage() {
            let _ = K::decode_key(&bytes);
            let _ = V::decode_value(&bytes);
        }
    }

    #[test]
    fn decoders_never_panic_on_garbage() {
        no_panic_on_garbage::<ScopedName, TrustedRecord>();
        no_panic_on_garbage::<VerdictKey, VerdictRecord>();
        no_panic_on_garbage::<String, i64>();
        no_panic_on_garbage::<u64, u64>();
        no_panic_on_garbage::<u64, Vec<u8>>();
    }

    #[test]
    fn codecs_round_trip() {
        let name = ScopedName {
            scope: "127.0.0.1:5000/library".into(),
            name: "team/a:1".into(),
        };
        assert_eq!(
            ScopedName::decode_key(&name.encode_key().expect("enc")).expect("dec"),
            name
        );
        let vk = VerdictKey {
            scope: "s".into(),
            repository: "debian".into(),
            digest: "sha256:00".into(),
            policy_hash: [7; 32],
            root_version: 3,
            snapshot_version: 9,
        };
        assert_eq!(
            VerdictKey::decode_key(&vk.encode_key().expect("enc")).expect("dec"),
            vk
        );
        let rec = TrustedRecord {
            version: 42,
            bytes: b"{\"signed\":{}}".to_vec(),
        };
        assert_eq!(
            TrustedRecord::decode_value(&rec.encode_value()).expect("dec"),
            rec
        );
        let vr = VerdictRecord {
            admitted: true,
            reason: "verified".into(),
            message: "ok: debian:9.9".into(),
            valid_until: -5,
            tags: vec!["9.9".into(), String::new()],
            timestamp_version: 7,
            role: "targets".into(),
            role_version: 3,
            length: 512,
            signature_version: 2,
            key_ids: vec!["ab".into()],
        };
        assert_eq!(
            VerdictRecord::decode_value(&vr.encode_value()).expect("dec"),
            vr
        );
        assert_eq!(
            u64::decode_key(&7u64.encode_key().expect("enc")).expect("dec"),
            7
        );
        assert_eq!(i64::decode_value(&(-7i64).encode_value()).expect("dec"), -7);
    }

    #[test]
    fn a_verdict_of_another_format_or_with_an_impossible_count_is_refused() {
        let vr = VerdictRecord {
            admitted: true,
            reason: "verified".into(),
            message: String::new(),
            valid_until: 0,
            tags: Vec::new(),
            timestamp_version: 1,
            role: "targets".into(),
            role_version: 1,
            length: 1,
            signature_version: 1,
            key_ids: Vec::new(),
        };
        let mut bytes = vr.encode_value();
        bytes[0] = 1;
        let err = VerdictRecord::decode_value(&bytes).expect_err("old format");
        assert!(err.contains("verdict format 1"), "{err}");
        // A list count of 2^32-1 with nothing behind it is refused before allocating.
        let mut bytes = vr.encode_value();
        let at = bytes.len() - 8;
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        let err = VerdictRecord::decode_value(&bytes).expect_err("count");
        assert!(err.contains("cannot fit"), "{err}");
    }

    #[test]
    fn for_each_visits_in_key_order_from_a_key_and_stops_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        for seq in [5u64, 1, 3, 9] {
            store
                .put::<Audit>(&seq, &Vec::new(), Durability::Buffered)
                .expect("put");
        }
        let mut seen = Vec::new();
        store
            .for_each::<Audit>(Some(&2), |entry| {
                seen.push(entry.expect("decodes").0);
                seen.len() < 2
            })
            .expect("scan");
        assert_eq!(seen, [3, 5]);
    }

    #[test]
    fn integer_keys_sort_numerically() {
        let a = 255u64.encode_key().expect("enc");
        let b = 256u64.encode_key().expect("enc");
        assert!(a < b);
    }

    #[test]
    fn every_schema_round_trips_through_the_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let name = ScopedName {
            scope: "s".into(),
            name: "root".into(),
        };
        let rec = TrustedRecord {
            version: 2,
            bytes: b"root v2".to_vec(),
        };
        store
            .put::<TrustedMeta>(&name, &rec, Durability::Synced)
            .expect("put");
        store
            .put::<HighWater>(&name, &5, Durability::Synced)
            .expect("put");
        store
            .put::<Clock>(&String::new(), &123, Durability::Synced)
            .expect("put");
        store
            .put::<Blobs>(
                &"sha256:ab".to_string(),
                &b"doc".to_vec(),
                Durability::Buffered,
            )
            .expect("put");
        for seq in [2u64, 1, 300] {
            store
                .put::<Audit>(&seq, &seq.to_string().into_bytes(), Durability::Buffered)
                .expect("put");
        }
        drop(store);

        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.get::<TrustedMeta>(&name).expect("get"), Some(rec));
        assert_eq!(store.get::<HighWater>(&name).expect("get"), Some(5));
        assert_eq!(store.get::<Clock>(&String::new()).expect("get"), Some(123));
        assert_eq!(
            store.get::<Blobs>(&"sha256:ab".to_string()).expect("get"),
            Some(b"doc".to_vec())
        );
        let seqs: Vec<u64> = store
            .scan::<Audit>(None)
            .expect("scan")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(seqs, [1, 2, 300]);

        store
            .delete::<TrustedMeta>(&name, Durability::Synced)
            .expect("delete");
        assert_eq!(store.get::<TrustedMeta>(&name).expect("get"), None);
    }

    #[test]
    fn batches_apply_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let key = |n: &str| ScopedName {
            scope: "s".into(),
            name: n.into(),
        };
        let mut batch = store.batch();
        batch.put::<HighWater>(&key("a:1"), &1).expect("batch put");
        batch.put::<HighWater>(&key("b:1"), &2).expect("batch put");
        assert_eq!(store.get::<HighWater>(&key("a:1")).expect("get"), None);
        store.write(batch, Durability::Synced).expect("write");
        assert_eq!(store.get::<HighWater>(&key("a:1")).expect("get"), Some(1));
        assert_eq!(store.get::<HighWater>(&key("b:1")).expect("get"), Some(2));
    }

    #[test]
    fn a_corrupt_value_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let key = ScopedName {
            scope: "s".into(),
            name: "root".into(),
        };
        // Write 3 bytes where a u64 is expected, through the Blobs-shaped escape hatch of a
        // schema that shares the key type: simulate on-disk corruption.
        struct Raw;
        impl Schema for Raw {
            const CF: &'static str = HighWater::CF;
            type Key = ScopedName;
            type Value = Vec<u8>;
        }
        store
            .put::<Raw>(&key, &vec![1, 2, 3], Durability::Buffered)
            .expect("put");
        assert!(matches!(
            store.get::<HighWater>(&key),
            Err(crate::Error::Decode { .. })
        ));
    }
}
