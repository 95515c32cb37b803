//! MQTT over TLS 1.3 (feature `tls`): the broker's TCP connection from the
//! [`Broker`] connector, then embedded-tls's handshake through the
//! connector shared with the host example and the tests
//! (`examples/tls/embedded_tls.rs` at the repository root), with the chip's
//! RNG.
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

use critical_section::Mutex;
use embassy_time::Instant;
use embedded_tls::{TlsClock, TlsError};

pub use connector::MAX_RECORD;
use connector::{Identity, TlsBuffers, TlsConnector};

use crate::broker::Broker;

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


/// The client's connector over TLS: [`Broker`]'s TCP connection, then the
/// TLS handshake, checking the broker's certificate against `MQTT_CA` and
/// `MQTT_SERVER_NAME`.
pub type Link<'a, 'd> = TlsConnector<'a, Broker<'a, 'd>, ChipRng, WallClock, MAX_RECORD, TX>;
/// Its transport's error.
pub type TransportError = TlsError;

/// The TLS connector over `broker`, with the client certificate when one
/// was compiled in.
pub fn connector<'a, 'd>(broker: Broker<'a, 'd>) -> Link<'a, 'd> {
    let connector = TlsConnector::new(broker, SERVER_NAME, CA, ChipRng, &BUFFERS);
    if CLIENT_CERT.is_empty() {
        return connector;
    }
    // `build.rs` has checked that the key is a P-256 key.
    let key = p256::SecretKey::from_sec1_der(CLIENT_KEY)
        .or_else(|_| {
            use p256::pkcs8::DecodePrivateKey;
            p256::SecretKey::from_pkcs8_der(CLIENT_KEY)
        })
        .unwrap_or_else(|_| panic!("MQTT_CLIENT_KEY is not a P-256 private key"));
    connector.with_identity(Identity {
        certificate: CLIENT_CERT,
        key,
    })
}

/// The chip's random number generator, for the key exchange. Its output is
/// true random while the radio runs (Espressif's reference manual), which
/// it always does before a connection to the broker.
pub struct ChipRng;

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
pub struct WallClock;

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
