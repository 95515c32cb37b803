//! MQTT over TLS 1.3 with [embedded-tls](https://docs.rs/embedded-tls): a
//! minimqtt [`Connector`] that opens a stream through another connector
//! (TCP), runs the handshake and hands the encrypted stream to the client.
//!
//! `no_std` and allocation-free, so the same file serves the ESP32 firmware
//! (`examples/esp32/src/tls.rs`), the host example
//! (`examples/tls_embedded.rs`) and the tests (`tests/tls.rs`), which include
//! it with `#[path]`.
//!
//! What it adds to embedded-tls, and why:
//!
//! - [`TlsBuffers`]: embedded-tls borrows its record buffers for the life of
//!   a connection and never hands them back, while a `Connector`'s transport
//!   cannot borrow from the connector. The buffers therefore live in a
//!   one-connection slot (like embassy-net's `TcpClientState`) that a
//!   [`TlsStream`] holds and frees when it is dropped.
//! - [`WholeRecords`]: embedded-tls keeps a half-read record header in its
//!   read future, so a read dropped in the middle of a record (the client's
//!   `poll(timeout)` drops reads all the time) loses bytes and breaks the
//!   connection. Below TLS, this wrapper buffers each record until it is
//!   whole, so a TLS read only waits before a record starts, where dropping
//!   it loses nothing.
//! - A verifier that always checks the server certificate against one CA
//!   and the server name, and says which check failed
//!   ([`CertificateRejected`]).
//! - Mutual TLS with a P-256 key ([`Identity`]).
//!
//! Limits of embedded-tls 0.19 (without `alloc`): TLS 1.3 only, cipher suite
//! TLS_AES_128_GCM_SHA256, certificates signed with ECDSA P-256 (add its
//! `p384` feature for P-384; RSA needs `alloc`), the server name compared with
//! at most the first three DNS names of the certificate (not IP addresses),
//! and no check of the CA's `basicConstraints`: trust a CA that issues
//! certificates only to brokers you trust (see the README's TLS section).
#![allow(dead_code)]

use core::cell::{Cell, UnsafeCell};

use core::fmt;
use core::marker::PhantomData;
use critical_section::Mutex;

use embedded_io_async::{ErrorType, Read, Write};
use embedded_tls::pki::CertVerifier;
use embedded_tls::{
    Aes128GcmSha256, Certificate, CertificateRef, CertificateVerifyRef, CryptoProvider,
    CryptoRngCore, SignatureScheme, TlsClock, TlsConfig, TlsConnection, TlsContext, TlsError,
    TlsVerifier,
};
use minimqtt::reconnect::Connector;

/// The largest TLS 1.3 record: a 5-byte header and at most 2^14 + 256 bytes
/// of ciphertext. A [`TlsBuffers`] with `RX` smaller than this fails on a
/// larger record (`RecordTooLarge`) unless the broker agreed to a smaller
/// maximum fragment length.
pub const MAX_RECORD: usize = RECORD_HEADER + 16_640;
/// The fixed record header: content type, version, 16-bit length.
const RECORD_HEADER: usize = 5;
/// Room for the broker's certificate chain, kept during the handshake to
/// check its signature. A cloud broker's chain (leaf and one or two
/// intermediates) is 2 to 4 KiB.
pub const SERVER_CHAIN: usize = 4096;

/// The cipher suite every TLS 1.3 server must offer, and the one embedded-tls
/// implements without extra features.
type Suite = Aes128GcmSha256;

/// Record buffers for one TLS connection at a time: `RX` bytes for
/// [`WholeRecords`] and `RX` for embedded-tls's decryption (use
/// [`MAX_RECORD`]), `TX` bytes for outgoing records (a record carries at
/// most `TX - 128` bytes of MQTT; 2 to 4 KiB is plenty).
///
/// `new` is a `const fn`, so firmware can put it in a plain `static`.
pub struct TlsBuffers<const RX: usize, const TX: usize> {
    /// Set while a [`TlsStream`] holds the buffers; flipped in a critical
    /// section, since chips like the ESP32-C3 have no atomic swap.
    lent: Mutex<Cell<bool>>,
    records: UnsafeCell<[u8; RX]>,
    read: UnsafeCell<[u8; RX]>,
    write: UnsafeCell<[u8; TX]>,
}

impl<const RX: usize, const TX: usize> TlsBuffers<RX, TX> {
    pub const fn new() -> Self {
        Self {
            lent: Mutex::new(Cell::new(false)),
            records: UnsafeCell::new([0; RX]),
            read: UnsafeCell::new([0; RX]),
            write: UnsafeCell::new([0; TX]),
        }
    }

    /// The three buffers, or `None` while a [`TlsStream`] still has them.
    // Handing out `&mut` from `&self` is the point: the flag makes the
    // borrows exclusive, as a `RefCell` would, but for the lifetime 'a that
    // embedded-tls's connection type needs.
    #[allow(clippy::mut_from_ref, clippy::type_complexity)]
    fn lend(&self) -> Option<(Lease<'_>, &mut [u8], &mut [u8], &mut [u8])> {
        if critical_section::with(|cs| self.lent.borrow(cs).replace(true)) {
            return None;
        }
        // SAFETY: `lent` was false, so no other reference into the arrays
        // exists: the only ones ever made are these, and they live in the
        // `TlsStream` that also holds the `Lease`. That stream drops them
        // before the lease clears `lent` (field order).
        let (records, read, write) = unsafe {
            (
                &mut *self.records.get(),
                &mut *self.read.get(),
                &mut *self.write.get(),
            )
        };
        Some((Lease { lent: &self.lent }, records, read, write))
    }
}

// SAFETY: the arrays are reached only through `lend`, which hands them to
// one holder at a time (see there).
unsafe impl<const RX: usize, const TX: usize> Sync for TlsBuffers<RX, TX> {}

impl<const RX: usize, const TX: usize> Default for TlsBuffers<RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}

/// Frees the [`TlsBuffers`] when dropped.
struct Lease<'a> {
    lent: &'a Mutex<Cell<bool>>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        critical_section::with(|cs| self.lent.borrow(cs).set(false));
    }
}

/// A client certificate and its P-256 private key, for brokers that
/// authenticate devices by certificate (AWS IoT, or mosquitto with
/// `require_certificate true`).
pub struct Identity<'a> {
    /// The certificate, DER.
    pub certificate: &'a [u8],
    /// Its private key. Parse it with `p256::SecretKey::from_sec1_der`
    /// (`openssl ec -outform der`) or `from_pkcs8_der`.
    pub key: p256::SecretKey,
}

/// Opens TLS connections over the streams of another connector.
///
/// `K` is embedded-tls's wall clock: with `std`, `std::time::SystemTime`;
/// without a clock (`embedded_tls::NoClock`) the certificates' validity
/// dates are not checked.
pub struct TlsConnector<'a, C, R, K, const RX: usize, const TX: usize> {
    /// Opens the stream underneath (TCP).
    pub inner: C,
    /// The broker's host name: sent as SNI, and the name its certificate
    /// must carry. Needed even when `inner` connects to an IP address.
    pub server_name: &'a str,
    /// The CA that signed the broker's certificate chain, DER.
    pub ca: &'a [u8],
    /// A client certificate for mutual TLS, or `None`.
    pub identity: Option<Identity<'a>>,
    /// Randomness for the key exchange: it must be a cryptographic RNG.
    pub rng: R,
    pub buffers: &'a TlsBuffers<RX, TX>,
    pub clock: PhantomData<K>,
}

impl<'a, C, R, K, const RX: usize, const TX: usize> TlsConnector<'a, C, R, K, RX, TX> {
    pub fn new(
        inner: C,
        server_name: &'a str,
        ca: &'a [u8],
        rng: R,
        buffers: &'a TlsBuffers<RX, TX>,
    ) -> Self {
        Self {
            inner,
            server_name,
            ca,
            identity: None,
            rng,
            buffers,
            clock: PhantomData,
        }
    }

    /// Adds a client certificate (mutual TLS).
    pub fn with_identity(mut self, identity: Identity<'a>) -> Self {
        self.identity = Some(identity);
        self
    }
}

impl<'a, C, R, K, const RX: usize, const TX: usize> Connector for TlsConnector<'a, C, R, K, RX, TX>
where
    C: Connector,
    C::Transport: 'a,
    R: CryptoRngCore,
    K: TlsClock,
{
    type Transport = TlsStream<'a, C::Transport>;
    type Error = TlsConnectError<C::Error>;

    async fn connect(&mut self) -> Result<Self::Transport, Self::Error> {
        let (lease, records, read, write) =
            self.buffers.lend().ok_or(TlsConnectError::BuffersInUse)?;
        let stream = self
            .inner
            .connect()
            .await
            .map_err(TlsConnectError::Connect)?;
        let mut tls = TlsConnection::new(WholeRecords::new(stream, records), read, write);
        let config = TlsConfig::new().with_server_name(self.server_name);
        let mut provider = Provider {
            rng: &mut self.rng,
            verifier: Verifier {
                inner: CertVerifier::<Suite, K, SERVER_CHAIN>::new(Certificate::X509(self.ca)),
                server_name: self.server_name,
                rejected: None,
            },
            identity: self.identity.as_ref(),
        };
        let opened = tls.open(TlsContext::new(&config, &mut provider)).await;
        match (opened, provider.verifier.rejected) {
            (Ok(()), _) => Ok(TlsStream { tls, _lease: lease }),
            (Err(_), Some(rejected)) => Err(TlsConnectError::Certificate(rejected)),
            (Err(e), None) => Err(TlsConnectError::Handshake(e)),
        }
    }
}

/// Why [`TlsConnector::connect`] failed.
#[derive(Debug)]
pub enum TlsConnectError<E> {
    /// The stream underneath could not be opened.
    Connect(E),
    /// The broker's certificate was refused: the connection was not made.
    Certificate(CertificateRejected),
    /// Any other handshake failure: the broker refused us (an alert), the
    /// stream broke, a record did not fit the buffers, ...
    Handshake(TlsError),
    /// The previous connection still holds the [`TlsBuffers`]: drop it first.
    BuffersInUse,
}

/// Why the broker's certificate was refused.
#[derive(Debug, Clone, Copy)]
pub enum CertificateRejected {
    /// It names other hosts than [`TlsConnector::server_name`].
    WrongHost,
    /// Its chain does not lead to the configured CA, or it has expired
    /// (with a clock), or its signature does not verify.
    NotTrusted(TlsError),
    /// Its key or signature algorithm is one embedded-tls cannot check.
    Unsupported(TlsError),
}

impl<E: fmt::Debug> fmt::Display for TlsConnectError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot open the connection: {e:?}"),
            Self::Certificate(CertificateRejected::WrongHost) => {
                f.write_str("the broker's certificate is for another host name")
            }
            Self::Certificate(CertificateRejected::NotTrusted(e)) => write!(
                f,
                "the broker's certificate is not signed by the configured CA, or has expired ({e:?})"
            ),
            Self::Certificate(CertificateRejected::Unsupported(e)) => write!(
                f,
                "the broker's certificate uses an algorithm embedded-tls cannot verify ({e:?})"
            ),
            Self::Handshake(e) => write!(f, "TLS handshake failed: {e:?}"),
            Self::BuffersInUse => f.write_str("the TLS buffers are still in use"),
        }
    }
}

/// An open TLS connection: an `embedded_io_async::Read + Write` stream for
/// the client. Dropping it frees the [`TlsBuffers`] without a TLS
/// `close_notify` (MQTT's DISCONNECT already ends the session cleanly).
pub struct TlsStream<'a, T: Read + Write> {
    // Declared before `_lease`, so it (and its borrows of the buffers) is
    // dropped before the lease frees them.
    tls: TlsConnection<'a, WholeRecords<'a, T>, Suite>,
    _lease: Lease<'a>,
}

impl<T: Read + Write> ErrorType for TlsStream<'_, T> {
    type Error = TlsError;
}

impl<T: Read + Write> Read for TlsStream<'_, T> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, TlsError> {
        self.tls.read(buf).await
    }
}

impl<T: Read + Write> Write for TlsStream<'_, T> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, TlsError> {
        self.tls.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), TlsError> {
        self.tls.flush().await
    }
}

/// Reads whole TLS records from `T` before handing out any of their bytes.
///
/// ## Cancel safety
///
/// `read` is cancel-safe if `T::read` is: it waits only while the record at
/// the front is incomplete, keeps what it has read in its buffer, and, once
/// a record is whole, serves every read of it at once, without waiting, so
/// embedded-tls never waits (and is never dropped) in the middle of one.
/// Writes pass through untouched.
pub struct WholeRecords<'b, T> {
    inner: T,
    buf: &'b mut [u8],
    /// Next byte to hand out.
    start: usize,
    /// End of the whole records at the front, ready to hand out.
    ready: usize,
    /// End of the bytes read.
    end: usize,
}

impl<'b, T> WholeRecords<'b, T> {
    pub fn new(inner: T, buf: &'b mut [u8]) -> Self {
        Self {
            inner,
            buf,
            start: 0,
            ready: 0,
            end: 0,
        }
    }

    /// Marks as ready every whole record after `ready`.
    fn frame(&mut self) -> Result<(), WholeRecordsError> {
        while let Some(header) = self.buf[self.ready..self.end].get(..RECORD_HEADER) {
            let len = RECORD_HEADER + usize::from(u16::from_be_bytes([header[3], header[4]]));
            if len > self.buf.len() {
                return Err(WholeRecordsError::RecordTooLarge);
            }
            if self.end - self.ready < len {
                break;
            }
            self.ready += len;
        }
        Ok(())
    }
}

impl<T: ErrorType> ErrorType for WholeRecords<'_, T> {
    type Error = WholeRecordsError;
}

impl<T: Read> Read for WholeRecords<'_, T> {
    async fn read(&mut self, out: &mut [u8]) -> Result<usize, WholeRecordsError> {
        while self.start == self.ready {
            if self.start > 0 {
                // Make room at the end for the rest of the record.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.ready = 0;
                self.start = 0;
                self.frame()?;
                continue;
            }
            // The only wait, with nothing of the current record handed out.
            let n = self
                .inner
                .read(&mut self.buf[self.end..])
                .await
                .map_err(|e| WholeRecordsError::Io(embedded_io_async::Error::kind(&e)))?;
            if n == 0 {
                return match self.end {
                    0 => Ok(0),
                    _ => Err(WholeRecordsError::Truncated),
                };
            }
            self.end += n;
            self.frame()?;
        }
        let n = out.len().min(self.ready - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

impl<T: Write> Write for WholeRecords<'_, T> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, WholeRecordsError> {
        self.inner
            .write(buf)
            .await
            .map_err(|e| WholeRecordsError::Io(embedded_io_async::Error::kind(&e)))
    }

    async fn flush(&mut self) -> Result<(), WholeRecordsError> {
        self.inner
            .flush()
            .await
            .map_err(|e| WholeRecordsError::Io(embedded_io_async::Error::kind(&e)))
    }
}

/// Why [`WholeRecords`] failed. embedded-tls keeps only the
/// [`kind`](embedded_io_async::Error::kind) of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WholeRecordsError {
    /// The stream underneath failed.
    Io(embedded_io_async::ErrorKind),
    /// A record is larger than the buffer.
    RecordTooLarge,
    /// The stream ended inside a record.
    Truncated,
}

impl fmt::Display for WholeRecordsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(kind) => write!(f, "{kind:?}"),
            Self::RecordTooLarge => f.write_str("a TLS record is larger than the buffer"),
            Self::Truncated => f.write_str("the stream ended inside a TLS record"),
        }
    }
}

impl core::error::Error for WholeRecordsError {}

impl embedded_io_async::Error for WholeRecordsError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        match self {
            Self::Io(kind) => *kind,
            Self::RecordTooLarge => embedded_io_async::ErrorKind::OutOfMemory,
            Self::Truncated => embedded_io_async::ErrorKind::BrokenPipe,
        }
    }
}

/// embedded-tls's crypto provider: the RNG, the verifier, the identity.
struct Provider<'p, R, K: TlsClock> {
    rng: &'p mut R,
    verifier: Verifier<'p, K>,
    identity: Option<&'p Identity<'p>>,
}

impl<R: CryptoRngCore, K: TlsClock> CryptoProvider for Provider<'_, R, K> {
    type CipherSuite = Suite;
    type Signature = p256::ecdsa::DerSignature;

    fn rng(&mut self) -> impl CryptoRngCore {
        &mut *self.rng
    }

    // Returning a verifier is what turns verification on: embedded-tls
    // skips it for a provider without one.
    fn verifier(&mut self) -> Result<&mut impl TlsVerifier<Suite>, TlsError> {
        Ok(&mut self.verifier)
    }

    fn signer(
        &mut self,
    ) -> Result<(impl signature::SignerMut<Self::Signature>, SignatureScheme), TlsError> {
        let identity = self.identity.ok_or(TlsError::InvalidPrivateKey)?;
        Ok((
            p256::ecdsa::SigningKey::from(&identity.key),
            SignatureScheme::EcdsaSecp256r1Sha256,
        ))
    }

    fn client_cert(&mut self) -> Option<Certificate<impl AsRef<[u8]>>> {
        self.identity
            .map(|identity| Certificate::X509(identity.certificate))
    }
}

/// embedded-tls's certificate verifier, which remembers why it refused a
/// certificate: embedded-tls reports a wrong CA and a wrong host name alike
/// (`InvalidCertificate`).
struct Verifier<'p, K: TlsClock> {
    inner: CertVerifier<'p, Suite, K, SERVER_CHAIN>,
    server_name: &'p str,
    rejected: Option<CertificateRejected>,
}

impl<K: TlsClock> TlsVerifier<Suite> for Verifier<'_, K> {
    fn set_hostname_verification(&mut self, hostname: &str) -> Result<(), TlsError> {
        self.inner.set_hostname_verification(hostname)
    }

    fn verify_certificate(
        &mut self,
        transcript: &<Suite as embedded_tls::TlsCipherSuite>::Hash,
        cert: CertificateRef,
    ) -> Result<(), TlsError> {
        let leaf = match cert.entries.first() {
            Some(embedded_tls::CertificateEntryRef::X509(der)) => Some(*der),
            _ => None,
        };
        let result = self.inner.verify_certificate(transcript, cert);
        if let Err(e) = result {
            self.rejected = Some(match e {
                // Chain and host name give the same error: tell them apart.
                TlsError::InvalidCertificate
                    if leaf.is_some_and(|der| !names_host(der, self.server_name)) =>
                {
                    CertificateRejected::WrongHost
                }
                TlsError::InvalidSignatureScheme | TlsError::DecodeError => {
                    CertificateRejected::Unsupported(e)
                }
                e => CertificateRejected::NotTrusted(e),
            });
        }
        result
    }

    fn verify_signature(&mut self, verify: CertificateVerifyRef) -> Result<(), TlsError> {
        self.inner.verify_signature(verify)
    }
}

/// Whether the certificate `der` carries `host` (or a wildcard covering it)
/// as a DNS name or common name. Only picks the error message: embedded-tls
/// has already made the decision.
fn names_host(der: &[u8], host: &str) -> bool {
    // dNSName [2] IA5String, UTF8String, PrintableString: tag, short length.
    const NAME_TAGS: [u8; 3] = [0x82, 0x0c, 0x13];
    let wildcard_suffix = host.split_once('.').map(|(_, rest)| rest);
    der.windows(2).enumerate().any(|(i, w)| {
        let (tag, len) = (w[0], usize::from(w[1]));
        let Some(name) = der.get(i + 2..i + 2 + len) else {
            return false;
        };
        NAME_TAGS.contains(&tag)
            && (name.eq_ignore_ascii_case(host.as_bytes())
                || wildcard_suffix.is_some_and(|suffix| {
                    name.strip_prefix(b"*.")
                        .is_some_and(|n| n.eq_ignore_ascii_case(suffix.as_bytes()))
                }))
    })
}
