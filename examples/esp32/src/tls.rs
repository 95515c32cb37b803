//! MQTT over TLS 1.3 (feature `tls`): the broker's TCP connection from
//! [`broker::connect`], then embedded-tls's handshake through the connector
//! shared with the host example and the tests (`examples/tls/embedded_tls.rs`
//! at the repository root), with the chip's RNG.
//!
//! The CA, the client certificate and key, and the server name are compiled
//! in by `build.rs` (`build_tls.rs`) from `MQTT_CA`, `MQTT_CLIENT_CERT`,
//! `MQTT_CLIENT_KEY` and `MQTT_SERVER_NAME`.
//!
//! RAM: the record buffers are a `static` of 2 × [`MAX_RECORD`] + [`TX`]
//! bytes (35.3 KiB); the handshake's state makes the main task's future
//! about 9 KiB larger (the broker's certificate chain is kept to check its
//! signature). See README.md for the measured figures.

#[path = "../../tls/embedded_tls.rs"]
mod connector;

use core::cell::Cell;
use core::fmt;

use critical_section::Mutex;
use embassy_net::dns::DnsSocket;
use embassy_time::{Duration, Instant, with_timeout};
use embedded_io_async::{ErrorType, Read, Write};
use embedded_tls::{TlsClock, TlsError};
use esp_println::println;
use minimqtt::reconnect::Connector;

pub use connector::MAX_RECORD;
use connector::{Identity, TlsBuffers, TlsConnectError, TlsConnector, TlsStream};

use crate::broker::{self, Connection, Tcp};
use crate::settings::Settings;

/// Outgoing record buffer: a record carries up to `TX - 128` bytes of
/// MQTT, more than the client's 1 KiB transmit buffer sends at once.
pub const TX: usize = 2048;

/// One connection's record buffers (whole records, decryption, writing),
/// in `.bss`.
static BUFFERS: TlsBuffers<MAX_RECORD, TX> = TlsBuffers::new();

static CA: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tls_ca.der"));
static CLIENT_CERT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tls_client_cert.der"));
static CLIENT_KEY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tls_client_key.der"));
/// The name the broker's certificate must carry, also sent as SNI.
const SERVER_NAME: &str = env!("MINIMQTT_TLS_SERVER_NAME");

/// Longest wait for the TLS handshake, after the TCP connection is open.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// The client's transport over TLS: the stream, or nothing between two
/// connections (like [`broker::Link`] over TCP).
pub struct Link<'t>(Option<TlsStream<'t, Connection<'t>>>);

impl<'t> Link<'t> {
    pub const fn none() -> Self {
        Self(None)
    }

    pub const fn new(stream: TlsStream<'t, Connection<'t>>) -> Self {
        Self(Some(stream))
    }
}

impl ErrorType for Link<'_> {
    type Error = TlsError;
}

impl Read for Link<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, TlsError> {
        match &mut self.0 {
            Some(stream) => stream.read(buf).await,
            None => Err(TlsError::ConnectionClosed),
        }
    }
}

impl Write for Link<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, TlsError> {
        match &mut self.0 {
            Some(stream) => stream.write(buf).await,
            None => Err(TlsError::ConnectionClosed),
        }
    }

    async fn flush(&mut self) -> Result<(), TlsError> {
        match &mut self.0 {
            Some(stream) => stream.flush().await,
            None => Err(TlsError::ConnectionClosed),
        }
    }
}

/// Why the TLS connection could not be opened.
pub enum Error {
    /// DNS, TCP or the handshake failed.
    Tls(TlsConnectError<Unreachable>),
    /// `MQTT_CLIENT_KEY` is not a P-256 key.
    Key,
    /// No handshake within [`HANDSHAKE_TIMEOUT`].
    Timeout,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Tls(e) => write!(f, "{e}"),
            Error::Key => f.write_str("MQTT_CLIENT_KEY is not a P-256 private key"),
            Error::Timeout => write!(
                f,
                "no TLS handshake within {} s",
                HANDSHAKE_TIMEOUT.as_secs()
            ),
        }
    }
}

/// The broker's TCP connection ([`broker::connect`]), as the connector
/// underneath TLS.
struct TcpBroker<'a, 'n, 't, 'd> {
    dns: &'a DnsSocket<'n>,
    tcp: &'t Tcp<'d>,
    settings: &'a Settings,
}

/// [`broker::Error`], with the `Debug` a connector's error needs.
pub struct Unreachable(broker::Error);

impl fmt::Debug for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'t> Connector for TcpBroker<'_, '_, 't, '_> {
    type Transport = Connection<'t>;
    type Error = Unreachable;

    async fn connect(&mut self) -> Result<Connection<'t>, Unreachable> {
        broker::connect(self.dns, self.tcp, self.settings)
            .await
            .map_err(Unreachable)
    }
}

/// Opens the TCP connection and runs the TLS handshake, checking the
/// broker's certificate against `MQTT_CA` and `MQTT_SERVER_NAME`.
pub async fn connect<'t>(
    dns: &DnsSocket<'_>,
    tcp: &'t Tcp<'_>,
    settings: &Settings,
) -> Result<TlsStream<'t, Connection<'t>>, Error> {
    let inner = TcpBroker { dns, tcp, settings };
    let mut connector = TlsConnector::<_, _, WallClock, MAX_RECORD, TX>::new(
        inner,
        SERVER_NAME,
        CA,
        ChipRng,
        &BUFFERS,
    );
    if !CLIENT_CERT.is_empty() {
        let key = p256::SecretKey::from_sec1_der(CLIENT_KEY)
            .or_else(|_| {
                use p256::pkcs8::DecodePrivateKey;
                p256::SecretKey::from_pkcs8_der(CLIENT_KEY)
            })
            .map_err(|_| Error::Key)?;
        connector = connector.with_identity(Identity {
            certificate: CLIENT_CERT,
            key,
        });
    }
    match with_timeout(HANDSHAKE_TIMEOUT, connector.connect()).await {
        Ok(Ok(stream)) => {
            println!("TLS connection to {} open", SERVER_NAME);
            Ok(stream)
        }
        Ok(Err(e)) => Err(Error::Tls(e)),
        Err(_) => Err(Error::Timeout),
    }
}

/// The chip's random number generator, for the key exchange. Its output is
/// true random while the radio runs (Espressif's reference manual), which
/// it always does before a connection to the broker.
struct ChipRng;

impl rand_core::RngCore for ChipRng {
    fn next_u32(&mut self) -> u32 {
        esp_hal::rng::Rng::new().random()
    }

    fn next_u64(&mut self) -> u64 {
        (u64::from(self.next_u32()) << 32) | u64::from(self.next_u32())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        esp_hal::rng::Rng::new().read(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for ChipRng {}

/// The Unix time at boot, once known; 0 until then.
static BOOT_TIME: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));

/// The wall clock embedded-tls checks certificate validity dates with.
/// The board has no battery-backed clock: until [`set_unix_time`] is called
/// (from an SNTP client, say) it has no time and the dates go unchecked;
/// the signatures and the host name are checked regardless.
struct WallClock;

impl TlsClock for WallClock {
    fn now() -> Option<u64> {
        let boot = critical_section::with(|cs| BOOT_TIME.borrow(cs).get());
        (boot != 0).then(|| boot + Instant::now().as_secs())
    }
}

/// Tells the TLS clock the current Unix time, in seconds.
#[allow(dead_code)] // The hook for an SNTP client; this firmware has none.
pub fn set_unix_time(now: u64) {
    let boot = now.saturating_sub(Instant::now().as_secs());
    critical_section::with(|cs| BOOT_TIME.borrow(cs).set(boot));
}
