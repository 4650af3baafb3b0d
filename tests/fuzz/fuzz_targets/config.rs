//! The node config (`config::Config`): TOML text into a `Config`, then `validate()`, as
//! `Config::load` does after reading the file; then what the daemon derives from a valid
//! config before it binds (each scope's name and source, the durations).
//!
//! `validate` looks at the file system for the paths it names (`scope.root`, `ca_file`):
//! only whether they exist, nothing is read or written.
//!
//! Properties: a valid config's scopes, allowed images and durations all parse as
//! `validate` promised (the daemon must never meet a bad setting after the check).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pullguard_plugin::config::{parse_setting_duration, Config, SourceKind, DEADLINE_MAX};
use pullguard_plugin::registry::{ImageRef, Scope};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config: Config = match toml::from_str(text) {
        Ok(c) => c,
        Err(e) => {
            // What Config::load reports: the message and where.
            let _ = (e.message(), e.span());
            return;
        }
    };
    if config.validate().is_err() {
        return;
    }
    for scope in &config.scopes {
        scope
            .name
            .parse::<Scope>()
            .expect("a validated scope name parses");
        SourceKind::parse(&scope.source).expect("a validated source parses");
        parse_setting_duration(&scope.offline_grace, true).expect("a validated grace parses");
    }
    for allowed in &config.daemon.allow {
        let image: ImageRef = allowed.parse().expect("a validated allow entry parses");
        assert!(image.digest().is_some(), "allowed by digest only");
    }
    let deadline = parse_setting_duration(&config.daemon.verify_deadline, false)
        .expect("a validated deadline parses");
    assert!(deadline <= DEADLINE_MAX);
    parse_setting_duration(&config.daemon.refresh_interval, false)
        .expect("a validated refresh interval parses");
    assert!(!config.containerd.namespaces.is_empty());
});
