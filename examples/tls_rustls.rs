//! MQTT over TLS with rustls (tokio-rustls), for desktops and gateways:
//! TLS 1.2 and 1.3, RSA and ECDSA certificates, full certificate path
//! validation. The TLS stream reaches the client through
//! `embedded-io-adapters`' tokio adapter.
//!
//! ```text
//! MQTT_BROKER=xxxxxxxx.s1.eu.hivemq.cloud MQTT_CA=isrgrootx1.pem \
//!     cargo run --example tls_rustls
//! MQTT_BROKER=xxxxxxxx-ats.iot.eu-west-1.amazonaws.com MQTT_CLIENT_ID=my-thing \
//! MQTT_CA=AmazonRootCA1.pem MQTT_CLIENT_CERT=device.pem.crt MQTT_CLIENT_KEY=private.pem.key \
//!     cargo run --example tls_rustls
//! ```
//!
//! Settings: see `examples/tls/settings.rs`.

#[path = "tls/rustls.rs"]
mod rustls_connector;
#[path = "tls/settings.rs"]
mod settings;

use std::net::ToSocketAddrs;

use rustls_connector::{RustlsConnector, client_config};
use rustls_pki_types::ServerName;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = settings::Settings::from_env()?;
    let config = client_config(
        &settings.ca_pem,
        settings
            .identity_pem
            .as_ref()
            .map(|(cert, key)| (&cert[..], &key[..])),
    )?;
    let addr = settings
        .address
        .to_socket_addrs()?
        .next()
        .ok_or("the broker's name has no address")?;
    let server_name = ServerName::try_from(settings.server_name.clone())?;
    let connector = RustlsConnector::new(addr, server_name, config);

    println!(
        "Connecting to {} (TLS, server name {})",
        settings.address, settings.server_name
    );
    settings::run(connector, &settings).await?;
    Ok(())
}
