//! MQTT over TLS 1.3 with embedded-tls, the `no_std` stack the ESP32
//! firmware uses, here over tokio's TCP: the same connector
//! (`examples/tls/embedded_tls.rs`) as on the board, to try a broker and a
//! set of certificates from a computer before flashing them.
//!
//! ```text
//! MQTT_BROKER=xxxxxxxx-ats.iot.eu-west-1.amazonaws.com MQTT_CLIENT_ID=my-thing \
//! MQTT_CA=AmazonRootCA3.pem MQTT_CLIENT_CERT=device.pem MQTT_CLIENT_KEY=device.key \
//!     cargo run --example tls_embedded
//! ```
//!
//! Settings: see `examples/tls/settings.rs`. embedded-tls verifies ECDSA
//! P-256 chains only and signs with a P-256 client key (SEC1 or PKCS#8
//! PEM); see the README's TLS section for what that means per broker.

#[path = "tls/embedded_tls.rs"]
mod embedded_tls_connector;
#[path = "tls/settings.rs"]
mod settings;

use embedded_io_adapters::tokio_1::FromTokio;
use embedded_tls_connector::{Identity, MAX_RECORD, TlsBuffers, TlsConnector};
use minimqtt::reconnect::Connector;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The underlying TCP connection.
struct Tcp(String);

impl Connector for Tcp {
    type Transport = FromTokio<tokio::net::TcpStream>;
    type Error = std::io::Error;

    async fn connect(&mut self) -> Result<Self::Transport, std::io::Error> {
        let stream = tokio::net::TcpStream::connect(&self.0).await?;
        stream.set_nodelay(true)?;
        Ok(FromTokio::new(stream))
    }
}

fn p256_key(pem: &[u8]) -> Result<p256::SecretKey, Box<dyn std::error::Error>> {
    use p256::pkcs8::DecodePrivateKey;
    Ok(match PrivateKeyDer::from_pem_slice(pem)? {
        PrivateKeyDer::Pkcs8(der) => p256::SecretKey::from_pkcs8_der(der.secret_pkcs8_der())
            .map_err(|e| format!("not a P-256 key: {e}"))?,
        PrivateKeyDer::Sec1(der) => p256::SecretKey::from_sec1_der(der.secret_sec1_der())
            .map_err(|e| format!("not a P-256 key: {e}"))?,
        _ => return Err("embedded-tls signs with P-256 keys only (an RSA key was given)".into()),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let settings = settings::Settings::from_env()?;
    let ca = CertificateDer::from_pem_slice(&settings.ca_pem)?;
    let client_cert = match &settings.identity_pem {
        Some((cert, key)) => Some((CertificateDer::from_pem_slice(cert)?, p256_key(key)?)),
        None => None,
    };

    // 16.6 KiB twice (whole records, decryption) and 4 KiB for writing:
    // on the heap here, in a `static` on a board.
    let buffers = Box::new(TlsBuffers::<MAX_RECORD, 4096>::new());
    let mut connector = TlsConnector::<_, _, std::time::SystemTime, MAX_RECORD, 4096>::new(
        Tcp(settings.address.clone()),
        &settings.server_name,
        &ca,
        rand_core_06::OsRng,
        &buffers,
    );
    if let Some((certificate, key)) = &client_cert {
        connector = connector.with_identity(Identity {
            certificate,
            key: key.clone(),
        });
    }

    println!(
        "Connecting to {} (TLS, server name {})",
        settings.address, settings.server_name
    );
    settings::run(connector, &settings).await?;
    Ok(())
}
