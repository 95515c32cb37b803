//! MQTT over TLS with rustls (through tokio-rustls), as a minimqtt
//! [`Connector`]: for programs on an operating system (desktops,
//! gateways). Shared by `examples/tls_rustls.rs` and `tests/tls.rs`.
//!
//! rustls does what embedded-tls cannot: TLS 1.2 and 1.3, RSA and ECDSA
//! certificates, full path validation (basic constraints, key usage, IP
//! address names), and tokio's streams are cancel-safe, so the client's
//! guarantees hold unchanged. It needs `std` (or at least `alloc`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use embedded_io_adapters::tokio_1::FromTokio;
use minimqtt::reconnect::Connector;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// A client configuration that trusts the CAs in `ca_pem` (PEM, one or
/// more) and, with `identity` (certificate chain PEM, private key PEM),
/// authenticates with a client certificate.
pub fn client_config(
    ca_pem: &[u8],
    identity: Option<(&[u8], &[u8])>,
) -> Result<ClientConfig, Box<dyn std::error::Error>> {
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(ca?)?;
    }
    // ring, not the default aws-lc-rs: it builds without cmake.
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
    Ok(match identity {
        Some((chain_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(chain_pem).collect::<Result<Vec<_>, _>>()?;
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(key_pem)?)?
        }
        None => builder.with_no_client_auth(),
    })
}

/// Opens a TCP connection to `addr` and runs the TLS handshake, checking
/// that the broker's certificate names `server_name` (a DNS name or an IP
/// address).
pub struct RustlsConnector {
    pub addr: SocketAddr,
    pub server_name: ServerName<'static>,
    pub tls: tokio_rustls::TlsConnector,
}

impl RustlsConnector {
    pub fn new(addr: SocketAddr, server_name: ServerName<'static>, config: ClientConfig) -> Self {
        Self {
            addr,
            server_name,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }
}

impl Connector for RustlsConnector {
    type Transport = FromTokio<TlsStream<TcpStream>>;
    type Error = std::io::Error;

    async fn connect(&mut self) -> Result<Self::Transport, std::io::Error> {
        let tcp = TcpStream::connect(self.addr).await?;
        // MQTT packets are small and latency-bound: do not wait to fill a
        // segment.
        tcp.set_nodelay(true)?;
        let tls = self.tls.connect(self.server_name.clone(), tcp).await?;
        Ok(FromTokio::new(tls))
    }
}
