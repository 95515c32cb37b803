//! Build-time settings: the counterpart of CircuitPython's `settings.toml`.
//!
//! The firmware has no file system, so the Wi-Fi and broker settings are read
//! from environment variables when the firmware is built and compiled into
//! the image (see `src/settings.rs`). A missing required value fails the build
//! with a message naming the variable, except when `CI` is set: then the
//! documented placeholders below are used so that the firmware still builds.

use std::{env, process};

/// Placeholders used when `CI` is set and a required variable is missing.
const CI_WIFI_SSID: &str = "minimqtt-ci";
const CI_WIFI_PASSWORD: &str = "minimqtt-ci-password";
const CI_MQTT_BROKER: &str = "test.mosquitto.org";

const DEFAULT_TOPIC: &str = "minimqtt/demo";
const DEFAULT_PORT: u16 = 1883;
/// With the `tls` feature: MQTT over TLS.
const DEFAULT_TLS_PORT: u16 = 8883;

#[path = "build_tls.rs"]
mod tls;

fn main() {
    for var in [
        "CI",
        "WIFI_SSID",
        "WIFI_PASSWORD",
        "MQTT_BROKER",
        "MQTT_USERNAME",
        "MQTT_PASSWORD",
        "MQTT_TOPIC",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for var in tls::VARS {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build_tls.rs");
    println!("cargo:rerun-if-changed=build.rs");

    let ci = env::var_os("CI").is_some();
    let mut errors = Vec::new();

    let ssid = required("WIFI_SSID", CI_WIFI_SSID, ci, &mut errors);
    let password = required("WIFI_PASSWORD", CI_WIFI_PASSWORD, ci, &mut errors);
    let broker = required("MQTT_BROKER", CI_MQTT_BROKER, ci, &mut errors);
    let username = optional("MQTT_USERNAME").unwrap_or_default();
    let mqtt_password = optional("MQTT_PASSWORD").unwrap_or_default();
    let topic = optional("MQTT_TOPIC").unwrap_or_else(|| DEFAULT_TOPIC.into());

    if let Some(ssid) = &ssid
        && (ssid.is_empty() || ssid.len() > 32)
    {
        errors.push("WIFI_SSID must be 1 to 32 bytes long".into());
    }
    // Empty means an open network; WPA/WPA2 passphrases are 8..=63
    // characters, or exactly 64 hexadecimal digits.
    if let Some(password) = &password
        && !password.is_empty()
        && !(8..=64).contains(&password.len())
    {
        errors.push("WIFI_PASSWORD must be empty (open network) or 8 to 64 bytes long".into());
    }
    let (host, port) = match &broker {
        Some(broker) => match split_host_port(broker) {
            Ok(hp) => hp,
            Err(e) => {
                errors.push(format!("MQTT_BROKER={broker:?}: {e}"));
                (String::new(), DEFAULT_PORT)
            }
        },
        None => (String::new(), DEFAULT_PORT),
    };
    if tls::enabled() {
        tls::settings(&host, ci, &mut errors);
    }
    if topic.is_empty() || topic.contains(['+', '#']) {
        errors.push("MQTT_TOPIC must be a non-empty topic name without wildcards".into());
    }
    if !mqtt_password.is_empty() && username.is_empty() {
        errors.push("MQTT_PASSWORD is set but MQTT_USERNAME is not (MQTT 3.1.1 requires a user name with a password)".into());
    }

    if !errors.is_empty() {
        eprintln!();
        eprintln!("error: the minimqtt ESP32 example's settings are missing or invalid");
        for e in &errors {
            eprintln!("  - {e}");
        }
        eprintln!();
        eprintln!("Set them in the environment when building, for example:");
        eprintln!();
        eprintln!("  WIFI_SSID=MyNetwork WIFI_PASSWORD=secret MQTT_BROKER=192.168.1.10 \\");
        eprintln!("      cargo build --release");
        eprintln!();
        eprintln!("Optional: MQTT_BROKER may carry a port (host:1884), MQTT_USERNAME,");
        eprintln!("MQTT_PASSWORD, MQTT_TOPIC (default {DEFAULT_TOPIC:?}). With CI set,");
        eprintln!("placeholders are used for missing values. See README.md.");
        eprintln!();
        process::exit(1);
    }

    let emit = |name: &str, value: &str| {
        assert!(
            !value.contains(['\n', '\r']),
            "{name} must not contain a line break"
        );
        println!("cargo:rustc-env=MINIMQTT_{name}={value}");
    };
    emit("WIFI_SSID", &ssid.unwrap_or_default());
    emit("WIFI_PASSWORD", &password.unwrap_or_default());
    emit("MQTT_BROKER", &format!("{host}:{port}"));
    emit("MQTT_USERNAME", &username);
    emit("MQTT_PASSWORD", &mqtt_password);
    emit("MQTT_TOPIC", &topic);
}

/// A required setting; under `CI` a missing one is replaced by `placeholder`.
fn required(name: &str, placeholder: &str, ci: bool, errors: &mut Vec<String>) -> Option<String> {
    match optional(name) {
        Some(value) => Some(value),
        None if ci => {
            println!(
                "cargo:warning={name} is not set; CI is set, so the placeholder {placeholder:?} is used"
            );
            Some(placeholder.into())
        }
        None => {
            errors.push(format!(
                "{name} is not set: set the environment variable {name}"
            ));
            None
        }
    }
}

/// A setting from the environment; `None` when unset. `WIFI_PASSWORD` may be
/// set to the empty string (open network), so set-but-empty is kept as is.
fn optional(name: &str) -> Option<String> {
    match env::var(name) {
        Ok(value) => Some(value),
        Err(env::VarError::NotPresent) => None,
        Err(env::VarError::NotUnicode(_)) => {
            eprintln!("error: {name} is not valid UTF-8");
            process::exit(1);
        }
    }
}

/// Splits `host` or `host:port` (IPv4 only: the stack is built with
/// `proto-ipv4`).
fn split_host_port(broker: &str) -> Result<(String, u16), String> {
    let broker = broker.trim();
    if broker.contains("://") {
        return Err("expected a host name or IP address, optionally with :port, not a URL".into());
    }
    let (host, port) = match broker.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (broker, None),
    };
    if host.is_empty() || host.contains(['/', ' ', ':', '[', ']']) {
        return Err("expected a host name or IPv4 address, optionally with :port".into());
    }
    let port = match port {
        None if tls::enabled() => DEFAULT_TLS_PORT,
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("invalid port {p:?}")),
            Ok(p) => p,
        },
    };
    Ok((host.to_string(), port))
}
