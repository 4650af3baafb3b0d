//! Canonical JSON as TUF signs it (OLPC canonical JSON, as securesystemslib and go-tuf
//! produce it): objects with keys sorted by code point, no insignificant whitespace, strings
//! with only `"` and `\` escaped and every other character written as UTF-8, integers only.
//!
//! The `olpc-cjson` crate was the first choice, but it NFC-normalises strings, which the
//! reference implementations do not: a target name written in decomposed Unicode then
//! canonicalises to different bytes than the signer signed (see the test below). This module
//! writes exactly what python-tuf/securesystemslib write.

use serde_json::Value;

/// Why a JSON value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("canonical JSON allows only integers, found the number {0}")]
    NotAnInteger(String),
}

/// Why bytes are not one unambiguous JSON document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0}")]
    Json(String),
}

/// Parses a JSON document that is to be verified, refusing any object that names a key
/// twice: parsers disagree on which value wins (serde_json and Python keep the last, others
/// the first), so a signed document with a duplicate key could be read differently by the
/// signer, by pullguard and by another client. Nothing else differs from `serde_json`
/// (including its nesting limit).
pub fn parse_unique(bytes: &[u8]) -> Result<Value, ParseError> {
    serde_json::from_slice::<Unique>(bytes)
        .map(|u| u.0)
        .map_err(|e| ParseError::Json(e.to_string()))
}

/// Checks that no object in `bytes` names a key twice, keeping nothing but the keys of the
/// objects being read: for large documents that are then parsed into typed values (an
/// offline bundle of up to 256 MiB), where a whole [`Value`] would cost several times the
/// document.
pub fn check_unique_keys(bytes: &[u8]) -> Result<(), ParseError> {
    serde_json::from_slice::<UniqueKeys>(bytes)
        .map(|_| ())
        .map_err(|e| ParseError::Json(e.to_string()))
}

/// Nothing of a JSON value, once its objects have been found to have unique keys.
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(serde::de::Error::custom(
                    "a key appears twice in one object",
                ));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(UniqueKeys)
    }
}

/// A JSON value whose objects have unique keys.
struct Unique(Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity, so `from_f64` always succeeds here.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "the key `{key}` appears twice in one object"
                )));
            }
            let Unique(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Reads any JSON value with its objects' keys taken as written (and refused when one
/// appears twice), for the free-form parts of typed documents: `custom`, and fields a schema
/// does not name. `serde_json::Value`'s own reader, with the `raw_value` feature this crate
/// turns on, reads an object whose first key is `$serde_json::private::RawValue` as the JSON
/// text its string value holds: valid JSON that every other reader takes as an object with
/// that key would be read as another value (the `cjson` fuzz target found it).
pub fn literal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    d.deserialize_any(UniqueVisitor)
}

/// [`literal`] for an optional field: present means `Some`, `null` included.
pub fn literal_some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    literal(d).map(Some)
}

/// [`literal`] for the fields of an object a schema does not name (`#[serde(flatten)]`).
pub fn literal_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<serde_json::Map<String, Value>, D::Error> {
    match d.deserialize_map(UniqueVisitor)? {
        Value::Object(map) => Ok(map),
        other => Err(serde::de::Error::custom(format_args!(
            "expected an object, found {other}"
        ))),
    }
}

/// Why bytes are not a signed document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("{0}")]
    Json(String),
    #[error("{0}")]
    Canonical(CanonicalError),
    #[error("the envelope must be an object with `signed` (an object) and `signatures` (a list)")]
    Envelope,
}

/// Reads a signed document (`{"signed": {...}, "signatures": [...]}`) in two halves, with
/// the same rules as [`parse_unique`] of the document plus [`to_canonical`] of `signed` and
/// no [`Value`] in between. This first half: the text of `signed` (an object) and of
/// `signatures` (a list, its objects checked for duplicate keys), any other member checked
/// for duplicate keys.
pub fn envelope_text(bytes: &[u8]) -> Result<(&str, &str), EnvelopeError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let top = serde::Deserializer::deserialize_any(&mut de, TopVisitor).map_err(json_error)?;
    de.end().map_err(json_error)?;
    let Some((signed, signatures)) = top else {
        return Err(EnvelopeError::Envelope);
    };
    let (signed, signatures) = (signed.get(), signatures.get());
    if !signed.starts_with('{') || !signatures.starts_with('[') {
        return Err(EnvelopeError::Envelope);
    }
    serde_json::from_str::<UniqueKeys>(signatures).map_err(json_error)?;
    Ok((signed, signatures))
}

/// The second half: the canonical bytes of the JSON object `signed` (integers only, no key
/// twice), and its `_type`.
pub fn canonical_object(signed: &str) -> Result<(Vec<u8>, Option<String>), EnvelopeError> {
    let failure = std::cell::Cell::new(None);
    let mut canonical = Vec::with_capacity(signed.len());
    let mut signed_type = None;
    let seed = Canon {
        out: &mut canonical,
        failure: &failure,
        type_slot: Some(&mut signed_type),
    };
    let written = serde::de::DeserializeSeed::deserialize(
        seed,
        &mut serde_json::Deserializer::from_str(signed),
    );
    match (written, failure.take()) {
        (_, Some(e)) => Err(EnvelopeError::Canonical(e)),
        (Err(e), None) => Err(json_error(e)),
        (Ok(()), None) => Ok((canonical, signed_type)),
    }
}

fn json_error(e: serde_json::Error) -> EnvelopeError {
    EnvelopeError::Json(e.to_string())
}

type RawParts<'de> = Option<(
    &'de serde_json::value::RawValue,
    &'de serde_json::value::RawValue,
)>;

/// The outer object: the text of `signed` and `signatures`; anything else is checked for
/// duplicate keys only. `None`: valid JSON, but not an envelope.
struct TopVisitor;

impl<'de> serde::de::Visitor<'de> for TopVisitor {
    type Value = RawParts<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a signed document")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen: Vec<Key<'de>> = Vec::new();
        let (mut signed, mut signatures) = (None, None);
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if seen.contains(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "the key `{}` appears twice in one object",
                    key.0
                )));
            }
            match &*key.0 {
                "signed" => signed = Some(map.next_value()?),
                "signatures" => signatures = Some(map.next_value()?),
                _ => {
                    map.next_value::<UniqueKeys>()?;
                }
            }
            seen.push(key);
        }
        Ok(signed.zip(signatures))
    }
}

/// An object key, borrowed from the input where it has no escapes.
#[derive(PartialEq)]
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> serde::de::Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(std::borrow::Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(std::borrow::Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(std::borrow::Cow::Owned(v)))
    }
}

/// Writes the canonical form of one JSON value into `out` as it is parsed. With a
/// `type_slot`, the value must be an object, and its `_type` string is kept there.
struct Canon<'a, 'f> {
    out: &'a mut Vec<u8>,
    failure: &'f std::cell::Cell<Option<CanonicalError>>,
    type_slot: Option<&'a mut Option<String>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Canon<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Canon<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        let shown =
            serde_json::Number::from_f64(v).map_or_else(|| v.to_string(), |n| n.to_string());
        self.failure.set(Some(CanonicalError::NotAnInteger(shown)));
        Err(E::custom("canonical JSON allows only integers"))
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        write_string(v, self.out);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let out = self.out;
        out.push(b'[');
        let mut first = true;
        loop {
            let mark = out.len();
            if !first {
                out.push(b',');
            }
            let seed = Canon {
                out: &mut *out,
                failure: self.failure,
                type_slot: None,
            };
            if seq.next_element_seed(seed)?.is_none() {
                out.truncate(mark);
                break;
            }
            first = false;
        }
        out.push(b']');
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.out;
        let start = out.len();
        // Each member's canonical value is written as it comes, then the members are put in
        // key order (UTF-8 byte order is code point order, as Python sorts str keys).
        let mut members: Vec<(Key<'de>, usize, usize)> = Vec::new();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let from = out.len();
            map.next_value_seed(Canon {
                out: &mut *out,
                failure: self.failure,
                type_slot: None,
            })?;
            members.push((key, from - start, out.len() - start));
        }
        members.sort_unstable_by(|a, b| a.0 .0.as_bytes().cmp(b.0 .0.as_bytes()));
        if let Some(pair) = members.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(serde::de::Error::custom(format_args!(
                "the key `{}` appears twice in one object",
                pair[0].0 .0
            )));
        }
        let values = out.split_off(start);
        out.reserve(values.len() + members.len() * 8 + 2);
        out.push(b'{');
        for (i, (key, from, to)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(&key.0, out);
            out.push(b':');
            out.extend_from_slice(&values[*from..*to]);
        }
        out.push(b'}');
        if let Some(slot) = self.type_slot {
            *slot = members
                .iter()
                .find(|m| m.0 .0 == "_type")
                .and_then(|m| serde_json::from_slice::<String>(&values[m.1..m.2]).ok());
        }
        Ok(())
    }
}

/// The canonical bytes of `value`.
pub fn to_canonical(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                out.extend_from_slice(n.to_string().as_bytes());
            } else {
                return Err(CanonicalError::NotAnInteger(n.to_string()));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // UTF-8 byte order is code point order, which is how Python sorts str keys.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &byte in s.as_bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signed document, read without building a [`Value`]: the canonical bytes of its
    /// `signed` object (what the signatures cover), the `_type` that object names, and the JSON
    /// text of `signed` and of `signatures` as written, for the caller's typed parse.
    #[derive(Debug)]
    struct SignedParts<'a> {
        canonical: Vec<u8>,
        signed_type: Option<String>,
        signed: &'a str,
        signatures: &'a str,
    }

    /// Reads a signed document (`{"signed": {...}, "signatures": [...]}`): the same rules as
    /// [`parse_unique`] of the document plus [`to_canonical`] of `signed`, without a [`Value`]
    /// in between. Any object naming a key twice (anywhere in the document) is refused, and
    /// `signed` may hold only integers.
    fn signed_parts(bytes: &[u8]) -> Result<SignedParts<'_>, EnvelopeError> {
        let (signed, signatures) = envelope_text(bytes)?;
        let (canonical, signed_type) = canonical_object(signed)?;
        Ok(SignedParts {
            canonical,
            signed_type,
            signed,
            signatures,
        })
    }

    /// The old way: a whole `Value`, then the canonical form of its `signed`.
    fn by_value(bytes: &[u8]) -> Result<Vec<u8>, String> {
        let v = parse_unique(bytes).map_err(|e| e.to_string())?;
        to_canonical(&v["signed"]).map_err(|e| e.to_string())
    }

    #[test]
    fn one_pass_canonical_form_is_the_one_of_the_parsed_value() {
        for doc in [
            r#"{"signed": {"_type": "targets", "b": [1, -2, {"z": null, "a": true}], "a": "x"}, "signatures": []}"#,
            r#"{"signatures": [{"keyid": "k", "sig": "s"}], "signed": {"_type": "root", "t\u00e9": "caf\u00e9 \"q\" \\ \n\t\u0001", "\u00e9": 1, "e": 2, "E": 3, "_": {}}}"#,
            r#"{"signed": {"_type": "x", "emoji": "\ud83d\ude00", "n": 18446744073709551615, "m": -9223372036854775808, "deep": [[[[]]]]}, "signatures": [], "other": 1.5}"#,
        ] {
            let parts = signed_parts(doc.as_bytes()).expect(doc);
            assert_eq!(
                Ok(parts.canonical.clone()),
                by_value(doc.as_bytes()),
                "{doc}"
            );
            let signed: Value = serde_json::from_str(parts.signed).expect("signed text");
            assert_eq!(
                Some(signed["_type"].as_str().expect("type")),
                parts.signed_type.as_deref()
            );
            assert!(serde_json::from_str::<Vec<Value>>(parts.signatures).is_ok());
        }
    }

    #[test]
    fn serde_json_s_raw_value_token_is_an_ordinary_key() {
        // tests/fuzz/artifacts-found/cjson/raw-value-token.json
        let doc = br#"{"signed":{"x":{"$serde_json::private::RawValue":"{\"a\":1}"}}}"#;
        let read = parse_unique(doc).expect("valid JSON");
        let x = &read["signed"]["x"];
        assert_eq!(x["$serde_json::private::RawValue"], "{\"a\":1}", "{read}");
        assert_eq!(
            to_canonical(&read).expect("canonical"),
            doc.to_vec(),
            "canonical JSON keeps the key"
        );
        let mut de = serde_json::Deserializer::from_slice(
            br#"{"k": [1, {"$serde_json::private::RawValue": "2"}]}"#,
        );
        let map = literal_map(&mut de).expect("an object");
        assert_eq!(map["k"][1]["$serde_json::private::RawValue"], "2");
        let mut de = serde_json::Deserializer::from_slice(b"[1]");
        assert!(literal_map(&mut de).is_err(), "not an object");
    }

    #[test]
    fn one_pass_refuses_what_the_parsed_value_refuses() {
        for (doc, says) in [
            (
                r#"{"signed": {"a": 1, "a": 2}, "signatures": []}"#,
                "appears twice",
            ),
            (
                r#"{"signed": {"x": {"b": 1, "b": 1}}, "signatures": []}"#,
                "appears twice",
            ),
            (
                r#"{"signed": {}, "signatures": [{"keyid": "k", "keyid": "k"}]}"#,
                "appears twice",
            ),
            (
                r#"{"signed": {}, "signatures": [], "x": {"c": 0, "c": 0}}"#,
                "appears twice",
            ),
            (
                r#"{"signed": {}, "signed": {}, "signatures": []}"#,
                "appears twice",
            ),
            (
                r#"{"signed": {"n": 1.0}, "signatures": []}"#,
                "only integers, found the number 1.0",
            ),
            (
                r#"{"signed": {"n": 1e3}, "signatures": []}"#,
                "only integers",
            ),
            (r#"{"signed": {}, "signatures": []} x"#, "trailing"),
            (r#"{"signed": {}, "signatures": [}"#, ""),
            (
                r#"{"signed": [], "signatures": []}"#,
                "the envelope must be",
            ),
            (
                r#"{"signed": {}, "signatures": {}}"#,
                "the envelope must be",
            ),
            (r#"{"signed": {}}"#, "the envelope must be"),
            (r#"[1, 2]"#, "the envelope must be"),
            (r#""signed""#, "the envelope must be"),
        ] {
            let err = signed_parts(doc.as_bytes()).expect_err(doc);
            assert!(err.to_string().contains(says), "{doc}: {err}");
            if says.contains("integers") {
                assert!(matches!(err, EnvelopeError::Canonical(_)), "{doc}");
            }
        }
    }
    use serde_json::json;

    fn canon(v: Value) -> String {
        String::from_utf8(to_canonical(&v).expect("canonical")).expect("utf8")
    }

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"b": [1, {"z": null, "a": true}], "a": "x", "c": -5});
        assert_eq!(canon(v), r#"{"a":"x","b":[1,{"a":true,"z":null}],"c":-5}"#);
    }

    #[test]
    fn escapes_only_quote_and_backslash() {
        let v = json!({"k": "a\"b\\c\nd\u{1}é"});
        assert_eq!(canon(v), "{\"k\":\"a\\\"b\\\\c\nd\u{1}é\"}");
    }

    #[test]
    fn keeps_decomposed_unicode_unlike_olpc_cjson() {
        // "e" + COMBINING ACUTE ACCENT: securesystemslib keeps these two code points;
        // NFC normalisation (olpc-cjson) would turn them into U+00E9.
        let v = json!({"e\u{301}": 1});
        assert_eq!(
            to_canonical(&v).expect("canonical"),
            "{\"e\u{301}\":1}".as_bytes()
        );
    }

    #[test]
    fn sorts_by_code_point_not_utf16() {
        let v = json!({"\u{ff61}": 1, "\u{1f600}": 2, "z": 3});
        assert_eq!(canon(v), "{\"z\":3,\"\u{ff61}\":1,\"\u{1f600}\":2}");
    }

    #[test]
    fn rejects_floats() {
        let v: Value = serde_json::from_str(r#"{"version": 1.5}"#).expect("json");
        assert_eq!(
            to_canonical(&v),
            Err(CanonicalError::NotAnInteger("1.5".into()))
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let v = parse_unique(br#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}]}"#).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"a": [1, -2, 3.5, "x", null, true, {"b": {}}]})
        );
        for doc in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"signed": {"version": 1, "version": 2}}"#,
            r#"[{"x": {"k": 1, "k": 1}}]"#,
            // Escapes that decode to the same key are the same key.
            r#"{"a": 1, "\u0061": 2}"#,
        ] {
            let err = parse_unique(doc.as_bytes()).expect_err(doc);
            assert!(err.to_string().contains("appears twice"), "{doc}: {err}");
        }
        assert!(parse_unique(b"{not json").is_err());
        assert!(check_unique_keys(br#"{"a": [{"b": 1}, {"b": 2}], "c": {"b": 3}}"#).is_ok());
        assert!(check_unique_keys(br#"{"a": [{"b": 1, "b": 2}]}"#).is_err());
        assert!(check_unique_keys(br#"{"a": 1, "\u0061": 2}"#).is_err());
    }
}
