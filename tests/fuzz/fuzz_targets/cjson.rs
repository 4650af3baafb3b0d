//! Canonical JSON (`tuf::cjson`): `parse_unique`, `check_unique_keys` and `to_canonical` on
//! arbitrary bytes.
//!
//! Properties: the two duplicate-key checks agree; a document `parse_unique` accepts is one
//! `serde_json` reads the same way (it only adds the duplicate-key rule), except where an
//! object's key is serde_json's raw-value token, which its `Value` reader takes as a
//! marker (`cjson::literal` says why; `parse_unique` reads the key as written); a canonical form
//! re-parses to the same value and canonicalises to itself (when no string holds a control
//! character, which canonical JSON writes raw and JSON forbids raw).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pullguard_plugin::tuf::cjson::{check_unique_keys, parse_unique, to_canonical};
use serde_json::Value;

fn has_control_characters(v: &Value) -> bool {
    let control = |s: &str| s.bytes().any(|b| b < 0x20);
    match v {
        Value::String(s) => control(s),
        Value::Array(items) => items.iter().any(has_control_characters),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| control(k) || has_control_characters(v)),
        _ => false,
    }
}

/// Whether an object in `v` has serde_json's raw-value token as a key.
fn has_raw_value_token(v: &Value) -> bool {
    match v {
        Value::Array(items) => items.iter().any(has_raw_value_token),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k == RAW_VALUE_TOKEN || has_raw_value_token(v)),
        _ => false,
    }
}

const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

fuzz_target!(|data: &[u8]| {
    let unique = parse_unique(data);
    assert_eq!(
        unique.is_ok(),
        check_unique_keys(data).is_ok(),
        "parse_unique and check_unique_keys disagree: {unique:?}"
    );
    let plain = serde_json::from_slice::<Value>(data);
    let value = match unique {
        Ok(v) => v,
        Err(e) => {
            if plain.is_ok() {
                assert!(
                    e.to_string().contains("appears twice"),
                    "serde_json reads it, parse_unique refuses it: {e}"
                );
            }
            return;
        }
    };
    if !has_raw_value_token(&value) {
        assert_eq!(
            plain.ok().as_ref(),
            Some(&value),
            "serde_json reads it otherwise"
        );
    }
    let Ok(canonical) = to_canonical(&value) else {
        return;
    };
    if has_control_characters(&value) {
        return;
    }
    let again = parse_unique(&canonical).expect("a canonical form re-parses");
    assert_eq!(again, value, "the canonical form means the same value");
    assert_eq!(
        to_canonical(&again).expect("still canonical"),
        canonical,
        "canonicalisation is idempotent"
    );
});
