//! Build-time TLS settings (feature `tls`), read by `build.rs`: the CA and
//! the optional client certificate and key, from files named by environment
//! variables, converted to DER in `OUT_DIR` for `src/tls.rs` to
//! `include_bytes!`. The files stay out of the repository: only their
//! contents end up in the (private) firmware image.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `MQTT_CA` | the CA that signed the broker's certificate (PEM or DER); required |
//! | `MQTT_CLIENT_CERT`, `MQTT_CLIENT_KEY` | client certificate and its P-256 key (PEM or DER; SEC1 or PKCS#8), for mutual TLS; both or neither |
//! | `MQTT_SERVER_NAME` | the name the broker's certificate must carry (SNI); default: `MQTT_BROKER`'s host |

use std::{env, fs, path::Path};

pub const VARS: [&str; 4] = [
    "MQTT_CA",
    "MQTT_CLIENT_CERT",
    "MQTT_CLIENT_KEY",
    "MQTT_SERVER_NAME",
];

pub fn enabled() -> bool {
    env::var_os("CARGO_FEATURE_TLS").is_some()
}

/// Writes the DER files and the server name; pushes what is wrong to
/// `errors`. Under `CI` a missing CA is left empty (the firmware then
/// builds but refuses every broker).
pub fn settings(host: &str, ci: bool, errors: &mut Vec<String>) {
    let out = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut der = |var: &str, file: &str| -> bool {
        let contents = match env::var(var) {
            Ok(path) if !path.is_empty() => {
                println!("cargo:rerun-if-changed={path}");
                match fs::read(&path) {
                    Ok(bytes) => match pem_to_der(&bytes) {
                        Ok(der) => der,
                        Err(e) => {
                            errors.push(format!("{var}={path}: {e}"));
                            Vec::new()
                        }
                    },
                    Err(e) => {
                        errors.push(format!("{var}={path}: {e}"));
                        Vec::new()
                    }
                }
            }
            _ => Vec::new(),
        };
        let present = !contents.is_empty();
        fs::write(Path::new(&out).join(file), contents).expect("write to OUT_DIR");
        present
    };
    let ca = der("MQTT_CA", "tls_ca.der");
    let cert = der("MQTT_CLIENT_CERT", "tls_client_cert.der");
    let key = der("MQTT_CLIENT_KEY", "tls_client_key.der");
    if !ca {
        if ci {
            println!(
                "cargo:warning=MQTT_CA is not set; CI is set, so the firmware trusts no broker"
            );
        } else {
            errors.push("MQTT_CA is not set: the tls feature needs the broker's CA certificate (a PEM file)".into());
        }
    }
    if cert != key {
        errors.push("set both MQTT_CLIENT_CERT and MQTT_CLIENT_KEY, or neither".into());
    }
    let server_name = env::var("MQTT_SERVER_NAME").unwrap_or_else(|_| host.to_owned());
    if server_name.is_empty() || server_name.len() > 64 {
        errors.push("MQTT_SERVER_NAME (or MQTT_BROKER's host) must be 1 to 64 bytes".into());
    }
    println!("cargo:rustc-env=MINIMQTT_TLS_SERVER_NAME={server_name}");
}

/// The DER inside the first PEM block, or the bytes as they are when they
/// are not PEM.
fn pem_to_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(bytes.to_vec());
    };
    let Some(start) = text.find("-----BEGIN") else {
        return Ok(bytes.to_vec());
    };
    let body: String = text[start..]
        .lines()
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    base64(body.trim()).ok_or_else(|| "not valid PEM (bad base64)".to_owned())
}

fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}
