//! MQTT over TLS against mosquitto's TLS listener on 127.0.0.1, with
//! embedded-tls (the `no_std` stack the ESP32 firmware uses) and rustls.
//!
//! Every run makes a fresh PKI with rcgen (a CA, a server certificate for
//! `localhost`, a client certificate, and an unrelated second CA) in a
//! temporary directory, so no private key is ever committed. Without
//! mosquitto the tests skip, and under CI (`CI` set) they fail.
//!
//! The client-facing part is [`exchange`], the only function that uses the
//! `Client` API.

#[path = "common/mosquitto.rs"]
mod mosquitto;

#[path = "../examples/tls/embedded_tls.rs"]
mod embedded_tls_connector;
#[path = "../examples/tls/rustls.rs"]
mod rustls_connector;

use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use embedded_io_adapters::tokio_1::FromTokio;
use embedded_io_async::{ErrorType, Read, Write};
use embedded_tls_connector::{
    CertificateRejected, Identity, MAX_RECORD, TlsBuffers, TlsConnectError, TlsConnector,
};
use minimqtt::reconnect::Connector;
use minimqtt::time::{Duration, TokioClock};
use minimqtt::{Buffers, Callbacks, Client, Config, Context, Message, QoS};
use mosquitto::{Mosquitto, MosquittoOptions};
use p256::pkcs8::DecodePrivateKey;
use rand_core_06::OsRng;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_connector::{RustlsConnector, client_config};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

const TOPIC: &str = "minimqtt/tls";
/// The client certificate's common name; mosquitto's
/// `use_identity_as_username` turns it into the user name it logs.
const DEVICE: &str = "minimqtt-device";

/// Buffers for one embedded-tls connection, as the firmware sizes them.
type Buffers16K = TlsBuffers<MAX_RECORD, 4096>;

/// The test PKI. Private keys stay in memory and in `dir`, which is
/// removed on drop.
struct Pki {
    dir: PathBuf,
    ca_der: Vec<u8>,
    ca_pem: String,
    other_ca_der: Vec<u8>,
    client_der: Vec<u8>,
    client_pem: String,
    client_key_der: Vec<u8>,
    client_key_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let (ca, ca_issuer) = make_ca("minimqtt test CA");
        let (other_ca, _) = make_ca("someone else's CA");

        let mut server = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        server
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_key = KeyPair::generate().expect("server key");
        let server = server
            .signed_by(&server_key, &ca_issuer)
            .expect("sign server certificate");

        let mut client = CertificateParams::new(Vec::<String>::new()).expect("params");
        client.distinguished_name.push(DnType::CommonName, DEVICE);
        let client_key = KeyPair::generate().expect("client key");
        let client = client
            .signed_by(&client_key, &ca_issuer)
            .expect("sign client certificate");

        let dir = std::env::temp_dir().join(format!(
            "minimqtt-tls-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("create PKI dir");
        for (name, contents) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server.pem()),
            ("server.key", server_key.serialize_pem()),
        ] {
            std::fs::write(dir.join(name), contents).expect("write PKI file");
        }
        Pki {
            dir,
            ca_der: ca.der().to_vec(),
            ca_pem: ca.pem(),
            other_ca_der: other_ca.der().to_vec(),
            client_der: client.der().to_vec(),
            client_pem: client.pem(),
            client_key_der: client_key.serialize_der(),
            client_key_pem: client_key.serialize_pem(),
        }
    }

    /// The client certificate as embedded-tls takes it.
    fn identity(&self) -> Identity<'_> {
        Identity {
            certificate: &self.client_der,
            key: p256::SecretKey::from_pkcs8_der(&self.client_key_der).expect("client key"),
        }
    }

    /// mosquitto with a TLS listener using this PKI; with
    /// `require_certificate`, clients must show a certificate the CA signed.
    async fn broker(&self, require_certificate: bool) -> Option<Mosquitto> {
        let file = |name: &str| self.dir.join(name).display().to_string();
        let mut extra_config = vec![
            format!("cafile {}", file("ca.pem")),
            format!("certfile {}", file("server.pem")),
            format!("keyfile {}", file("server.key")),
        ];
        if require_certificate {
            extra_config.push("require_certificate true".to_owned());
            extra_config.push("use_identity_as_username true".to_owned());
        }
        Mosquitto::start_with(MosquittoOptions {
            extra_config,
            ..MosquittoOptions::default()
        })
        .await
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A self-signed P-256 CA (the key type embedded-tls verifies).
fn make_ca(name: &str) -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("self-sign CA");
    (cert, Issuer::new(params, key))
}

/// Plain TCP to the broker: the stream embedded-tls runs over.
struct Tcp {
    addr: SocketAddr,
    /// Deliver the stream in 16-byte pieces, 1 ms apart.
    dribble: bool,
}

impl Connector for Tcp {
    type Transport = Dribble;
    type Error = std::io::Error;

    async fn connect(&mut self) -> Result<Dribble, std::io::Error> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(Dribble {
            inner: FromTokio::new(stream),
            piece: if self.dribble { 16 } else { usize::MAX },
        })
    }
}

/// A TCP stream that, when `piece` is small, reads a little at a time and
/// waits before each read: TLS records arrive in many pieces, as over a
/// slow radio link, and a poll timeout can fall inside one.
struct Dribble {
    inner: FromTokio<TcpStream>,
    piece: usize,
}

impl ErrorType for Dribble {
    type Error = std::io::Error;
}

impl Read for Dribble {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, std::io::Error> {
        if self.piece != usize::MAX {
            // Dropped here, nothing is lost: no byte has been read yet.
            tokio::time::sleep(StdDuration::from_millis(1)).await;
        }
        let len = buf.len().min(self.piece);
        self.inner.read(&mut buf[..len]).await
    }
}

impl Write for Dribble {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, std::io::Error> {
        self.inner.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), std::io::Error> {
        self.inner.flush().await
    }
}

fn embedded_tls<'a>(
    broker: &Mosquitto,
    ca: &'a [u8],
    server_name: &'a str,
    buffers: &'a Buffers16K,
) -> TlsConnector<'a, Tcp, OsRng, std::time::SystemTime, MAX_RECORD, 4096> {
    let tcp = Tcp {
        addr: broker.addr(),
        dribble: false,
    };
    TlsConnector::new(tcp, server_name, ca, OsRng, buffers)
}

/// What the tests ask of the client, over any transport: connect,
/// subscribe at QoS 1, publish a message larger than one TCP segment,
/// receive it back, disconnect. Returns the payload received, polling every
/// `poll_every` (each poll that times out drops a pending read).
async fn exchange<T>(transport: T, poll_every: StdDuration) -> Result<Vec<u8>, String>
where
    T: Read + Write,
    T::Error: Debug,
{
    fn on_message(ctx: &mut Context<'_, Vec<Vec<u8>>>, message: &Message<'_>) {
        ctx.user_data.push(message.payload.to_vec());
    }
    let mut buffers = Buffers::<4096, 8192, 256>::new();
    let mut client = Client::new(
        Once(Some(transport)),
        TokioClock::new(),
        Config::new("minimqtt-tls"),
        buffers.slices(),
        Callbacks::new(),
        Vec::new(),
    );
    client.add_topic_callback(TOPIC, on_message).expect("route");
    client
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    client
        .subscribe(TOPIC, QoS::AtLeastOnce)
        .await
        .map_err(|e| format!("subscribe: {e:?}"))?;
    // QoS 0 out, so that the echo arrives during the polls below rather
    // than while waiting for a PUBACK.
    client
        .publish(TOPIC, &expected_payload(), QoS::AtMostOnce, false)
        .await
        .map_err(|e| format!("publish: {e:?}"))?;
    let deadline = StdInstant::now() + StdDuration::from_secs(5);
    let poll_every = Duration::from_millis(poll_every.as_millis() as u64);
    while client.user_data().is_empty() {
        if StdInstant::now() > deadline {
            return Err("the message did not come back within 5 s".into());
        }
        client
            .poll(poll_every)
            .await
            .map_err(|e| format!("poll: {e:?}"))?;
    }
    client
        .disconnect()
        .await
        .map_err(|e| format!("disconnect: {e:?}"))?;
    let (_, mut received) = client.into_parts();
    Ok(received.remove(0))
}

/// Hands the client an already open (TLS) stream for its first connection.
struct Once<T>(Option<T>);

impl<T: Read + Write> Connector for Once<T> {
    type Transport = T;
    type Error = ();

    async fn connect(&mut self) -> Result<T, ()> {
        self.0.take().ok_or(())
    }
}

/// Panics unless the exchange got the payload back, without printing
/// 3,000 bytes.
fn assert_echoed(received: Result<Vec<u8>, String>) {
    match received {
        Ok(payload) => assert!(payload == expected_payload(), "payload garbled"),
        Err(e) => panic!("{e}"),
    }
}

fn expected_payload() -> Vec<u8> {
    (0..3000u32).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn embedded_tls_checks_the_broker_certificate_and_carries_mqtt() {
    let pki = Pki::new();
    let Some(broker) = pki.broker(false).await else {
        return;
    };
    let buffers = Buffers16K::new();
    let mut connector = embedded_tls(&broker, &pki.ca_der, "localhost", &buffers);
    let stream = connector.connect().await.expect("TLS handshake");
    let received = exchange(stream, StdDuration::from_millis(100)).await;
    assert_echoed(received);
    broker.assert_no_protocol_errors();

    // The stream gave the buffers back: the next connection opens.
    let again = connector.connect().await.expect("second handshake");
    drop(again);
}

#[tokio::test]
async fn embedded_tls_refuses_a_broker_signed_by_another_ca() {
    let pki = Pki::new();
    let Some(broker) = pki.broker(false).await else {
        return;
    };
    let buffers = Buffers16K::new();
    let mut connector = embedded_tls(&broker, &pki.other_ca_der, "localhost", &buffers);
    let error = connector
        .connect()
        .await
        .err()
        .expect("an untrusted broker");
    assert!(
        matches!(
            error,
            TlsConnectError::Certificate(CertificateRejected::NotTrusted(_))
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("not signed by the configured CA"),
        "{error}"
    );
    // Nothing stays lent after a failed handshake.
    let mut connector = embedded_tls(&broker, &pki.ca_der, "localhost", &buffers);
    assert!(connector.connect().await.is_ok());
}

#[tokio::test]
async fn embedded_tls_refuses_a_certificate_for_another_host_name() {
    let pki = Pki::new();
    let Some(broker) = pki.broker(false).await else {
        return;
    };
    let buffers = Buffers16K::new();
    let mut connector = embedded_tls(&broker, &pki.ca_der, "broker.example.com", &buffers);
    let error = connector.connect().await.err().expect("a wrong host name");
    assert!(
        matches!(
            error,
            TlsConnectError::Certificate(CertificateRejected::WrongHost)
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("another host name"), "{error}");
}

#[tokio::test]
async fn embedded_tls_mutual_tls_with_a_client_certificate() {
    let pki = Pki::new();
    let Some(broker) = pki.broker(true).await else {
        return;
    };
    let buffers = Buffers16K::new();
    let mut connector =
        embedded_tls(&broker, &pki.ca_der, "localhost", &buffers).with_identity(pki.identity());
    let stream = connector.connect().await.expect("TLS handshake");
    let received = exchange(stream, StdDuration::from_millis(100)).await;
    assert_echoed(received);
    // The broker took the certificate's name as the user name.
    broker.wait_for_log(&format!("u'{DEVICE}'")).await;
    broker.assert_no_protocol_errors();
}

#[tokio::test]
async fn a_broker_requiring_a_client_certificate_refuses_a_client_without_one() {
    let pki = Pki::new();
    let Some(broker) = pki.broker(true).await else {
        return;
    };
    let buffers = Buffers16K::new();
    let mut connector = embedded_tls(&broker, &pki.ca_der, "localhost", &buffers);
    // In TLS 1.3 the broker refuses after the client's last handshake
    // message, so the refusal may arrive during the handshake or on the
    // first read: either way an error, not a hang.
    let outcome = tokio::time::timeout(StdDuration::from_secs(10), async {
        match connector.connect().await {
            Ok(stream) => exchange(stream, StdDuration::from_millis(100)).await.err(),
            Err(e) => Some(format!("handshake: {e}")),
        }
    })
    .await
    .expect("the refusal arrives within 10 s");
    let error = outcome.expect("the broker refuses the connection");
    assert!(
        error.starts_with("handshake") || error.starts_with("connect"),
        "{error}"
    );
}

#[tokio::test]
async fn a_poll_timeout_inside_a_tls_record_loses_nothing() {
    let pki = Pki::new();
    let Some(broker) = pki.broker(false).await else {
        return;
    };
    let buffers = Buffers16K::new();
    let mut connector = TlsConnector::<_, _, std::time::SystemTime, MAX_RECORD, 4096>::new(
        Tcp {
            addr: broker.addr(),
            dribble: true,
        },
        "localhost",
        &pki.ca_der,
        OsRng,
        &buffers,
    );
    let stream = connector.connect().await.expect("TLS handshake");
    // The 3,000-byte message comes in ~190 pieces 1 ms apart, while every
    // poll gives up after 1 ms: many reads are dropped mid-record.
    let received = exchange(stream, StdDuration::from_millis(1)).await;
    assert_echoed(received);
}

#[tokio::test]
async fn rustls_mutual_tls_carries_mqtt() {
    let pki = Pki::new();
    let Some(broker) = pki.broker(true).await else {
        return;
    };
    let config = client_config(
        pki.ca_pem.as_bytes(),
        Some((pki.client_pem.as_bytes(), pki.client_key_pem.as_bytes())),
    )
    .expect("rustls config");
    let server_name = ServerName::try_from("localhost").expect("server name");
    let mut connector = RustlsConnector::new(broker.addr(), server_name, config);
    let stream = connector.connect().await.expect("TLS handshake");
    let received = exchange(stream, StdDuration::from_millis(1)).await;
    assert_echoed(received);
    broker.wait_for_log(&format!("u'{DEVICE}'")).await;
}

#[tokio::test]
async fn rustls_refuses_a_certificate_for_another_host_name() {
    let pki = Pki::new();
    let Some(broker) = pki.broker(false).await else {
        return;
    };
    let config = client_config(pki.ca_pem.as_bytes(), None).expect("rustls config");
    let server_name = ServerName::try_from("broker.example.com").expect("server name");
    let mut connector = RustlsConnector::new(broker.addr(), server_name, config);
    let error = connector.connect().await.err().expect("a wrong host name");
    assert!(error.to_string().contains("not valid for name"), "{error}");
}
