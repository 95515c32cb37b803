//! Proves the test brokers in `tests/common` behave as the integration
//! tests assume, using hand-built MQTT 3.1.1 bytes over raw TCP so that
//! nothing here depends on minimqtt's own codec.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use common::broker::{Broker, BrokerOptions};
use common::mosquitto::{Mosquitto, MosquittoOptions};
use common::wire::frame as packet;
use rumqttd::Notification;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for any single network step; every await below is bounded.
const STEP: Duration = Duration::from_secs(5);

const CONNACK_ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];
const CONNACK_BAD_CREDENTIALS: [u8; 4] = [0x20, 0x02, 0x00, 0x04];
const CONNACK_NOT_AUTHORIZED: [u8; 4] = [0x20, 0x02, 0x00, 0x05];
const DISCONNECT: [u8; 2] = [0xE0, 0x00];

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

struct Connect<'a> {
    client_id: &'a str,
    keep_alive: u16,
    clean_session: bool,
    login: Option<(&'a str, &'a str)>,
}

impl<'a> Connect<'a> {
    fn new(client_id: &'a str) -> Self {
        Self {
            client_id,
            keep_alive: 60,
            clean_session: true,
            login: None,
        }
    }

    fn login(mut self, username: &'a str, password: &'a str) -> Self {
        self.login = Some((username, password));
        self
    }

    /// MQTT 3.1.1 section 3.1: fixed header, variable header (protocol
    /// name, level 4, flags, keep-alive), then the payload strings.
    fn encode(&self) -> Vec<u8> {
        let mut flags = 0u8;
        if self.clean_session {
            flags |= 0x02;
        }
        let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04];
        let mut payload = Vec::new();
        put_str(&mut payload, self.client_id);
        if let Some((username, password)) = self.login {
            flags |= 0xC0;
            put_str(&mut payload, username);
            put_str(&mut payload, password);
        }
        body.push(flags);
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        body.extend_from_slice(&payload);
        packet(0x10, &body)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).expect("string too long for MQTT");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn publish_qos0(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, topic);
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

fn subscribe(packet_id: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    put_str(&mut body, filter);
    body.push(qos);
    packet(0x82, &body)
}

/// What the broker answered to a CONNECT.
#[derive(Debug, PartialEq)]
enum Answer {
    Connack([u8; 4]),
    /// Closed (FIN or RST) before a whole CONNACK arrived.
    Closed,
}

async fn send_connect(addr: SocketAddr, connect: &Connect<'_>) -> (TcpStream, Answer) {
    let mut stream = within("TCP connect", TcpStream::connect(addr))
        .await
        .expect("TCP connect");
    within("write CONNECT", stream.write_all(&connect.encode()))
        .await
        .expect("write CONNECT");
    let mut connack = [0u8; 4];
    let answer = match within("read CONNACK", stream.read_exact(&mut connack)).await {
        Ok(_) => Answer::Connack(connack),
        Err(_) => Answer::Closed,
    };
    (stream, answer)
}

async fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    within("read", stream.read_exact(&mut buf))
        .await
        .expect("read");
    buf
}

/// True when the peer has closed the connection (EOF or reset).
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        within("wait for close", stream.read(&mut byte)).await,
        Ok(0) | Err(_)
    )
}

// ---------------------------------------------------------------- rumqttd

#[tokio::test]
async fn rumqttd_accepts_connect() {
    let broker = Broker::start().await;
    assert!(broker.addr().ip().is_loopback());
    let (mut stream, answer) = send_connect(broker.addr(), &Connect::new("smoke-1")).await;
    assert_eq!(answer, Answer::Connack(CONNACK_ACCEPTED));
    stream.write_all(&DISCONNECT).await.unwrap();
    assert!(closed_by_peer(&mut stream).await);
    broker.stop().await;
}

#[tokio::test]
async fn rumqttd_accepts_valid_credentials() {
    let broker = Broker::start_with(BrokerOptions::default().with_user("alice", "secret")).await;
    let connect = Connect::new("smoke-auth-ok").login("alice", "secret");
    let (_stream, answer) = send_connect(broker.addr(), &connect).await;
    assert_eq!(answer, Answer::Connack(CONNACK_ACCEPTED));
}

/// rumqttd sends no CONNACK at all for refused credentials: it closes the
/// connection. Tests of CONNACK codes 4/5 must use mosquitto.
#[tokio::test]
async fn rumqttd_refuses_bad_credentials_by_closing() {
    let broker = Broker::start_with(BrokerOptions::default().with_user("alice", "secret")).await;
    for connect in [
        Connect::new("smoke-bad-password").login("alice", "wrong"),
        Connect::new("smoke-bad-user").login("mallory", "secret"),
        Connect::new("smoke-anonymous"),
    ] {
        let (_stream, answer) = send_connect(broker.addr(), &connect).await;
        assert_eq!(answer, Answer::Closed, "client {}", connect.client_id);
    }
}

/// rumqttd refuses keep-alive 0 (no CONNACK), so tests of `keep_alive = 0`
/// must use mosquitto.
#[tokio::test]
async fn rumqttd_refuses_keep_alive_zero_by_closing() {
    let broker = Broker::start().await;
    let mut connect = Connect::new("smoke-ka0");
    connect.keep_alive = 0;
    let (_stream, answer) = send_connect(broker.addr(), &connect).await;
    assert_eq!(answer, Answer::Closed);
}

#[tokio::test]
async fn rumqttd_stop_closes_clients_and_restarts_on_same_port() {
    let broker = Broker::start().await;
    let port = broker.port();
    let mut connect = Connect::new("smoke-restart");
    connect.clean_session = false;
    let (mut stream, answer) = send_connect(broker.addr(), &connect).await;
    assert_eq!(answer, Answer::Connack(CONNACK_ACCEPTED));

    broker.stop().await;
    assert!(closed_by_peer(&mut stream).await, "stop must close clients");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "nothing may listen after stop"
    );

    let broker = Broker::start_on(port).await;
    assert_eq!(broker.port(), port);
    let (_stream, answer) = send_connect(broker.addr(), &connect).await;
    // A fresh broker: the persistent session is gone (session present = 0).
    assert_eq!(answer, Answer::Connack(CONNACK_ACCEPTED));
}

#[tokio::test]
async fn rumqttd_restart_keeps_port_and_options() {
    let broker = Broker::start_with(BrokerOptions::default().with_user("alice", "secret")).await;
    let port = broker.port();
    let connect = Connect::new("smoke-restart-auth").login("alice", "secret");
    let (mut stream, _) = send_connect(broker.addr(), &connect).await;

    let broker = broker.restart().await;
    assert!(closed_by_peer(&mut stream).await);
    assert_eq!(broker.port(), port);
    let (_stream, answer) = send_connect(broker.addr(), &connect).await;
    assert_eq!(answer, Answer::Connack(CONNACK_ACCEPTED));
    let (_stream, answer) = send_connect(broker.addr(), &Connect::new("smoke-anon")).await;
    assert_eq!(answer, Answer::Closed, "auth must survive the restart");
}

/// Dropping (instead of `stop().await`) frees the port asynchronously;
/// `start_on` must cope with that.
#[tokio::test]
async fn rumqttd_restarts_on_same_port_after_drop() {
    let broker = Broker::start().await;
    let port = broker.port();
    let (mut stream, _) = send_connect(broker.addr(), &Connect::new("smoke-drop")).await;
    drop(broker);
    let broker = Broker::start_on(port).await;
    assert!(closed_by_peer(&mut stream).await);
    let (_stream, answer) = send_connect(broker.addr(), &Connect::new("smoke-drop")).await;
    assert_eq!(answer, Answer::Connack(CONNACK_ACCEPTED));
}

#[tokio::test]
async fn rumqttd_local_link_exchanges_messages_with_a_tcp_client() {
    let broker = Broker::start().await;
    let (mut link_tx, mut link_rx) = broker.local_link("smoke-link");
    link_tx.subscribe("smoke/up").unwrap();

    let (mut stream, answer) = send_connect(broker.addr(), &Connect::new("smoke-raw")).await;
    assert_eq!(answer, Answer::Connack(CONNACK_ACCEPTED));

    // Client -> broker -> local link.
    stream
        .write_all(&publish_qos0("smoke/up", b"hello"))
        .await
        .unwrap();
    let forward = within("local link receives", async {
        loop {
            if let Some(Notification::Forward(forward)) = link_rx.next().await.unwrap() {
                break forward;
            }
        }
    })
    .await;
    assert_eq!(&forward.publish.topic[..], b"smoke/up");
    assert_eq!(&forward.publish.payload[..], b"hello");

    // Local link -> broker -> client.
    stream
        .write_all(&subscribe(1, "smoke/down", 0))
        .await
        .unwrap();
    assert_eq!(
        read_exactly(&mut stream, 5).await,
        [0x90, 0x03, 0x00, 0x01, 0x00]
    );
    link_tx.publish("smoke/down", "world").unwrap();
    let expected = publish_qos0("smoke/down", b"world");
    assert_eq!(read_exactly(&mut stream, expected.len()).await, expected);
}

// -------------------------------------------------------------- mosquitto

#[tokio::test]
async fn mosquitto_accepts_connect_without_protocol_errors() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    assert!(mosquitto.addr().ip().is_loopback());
    let (mut stream, answer) = send_connect(mosquitto.addr(), &Connect::new("smoke-m1")).await;
    assert_eq!(answer, Answer::Connack(CONNACK_ACCEPTED));
    stream.write_all(&DISCONNECT).await.unwrap();
    assert!(closed_by_peer(&mut stream).await);
    mosquitto
        .wait_for_log("Client smoke-m1 disconnected.")
        .await;
    mosquitto.assert_no_protocol_errors();
}

#[tokio::test]
async fn mosquitto_answers_bad_credentials_with_connack_5() {
    let options = MosquittoOptions::default().with_user("alice", "secret");
    let Some(mosquitto) = Mosquitto::start_with(options).await else {
        return;
    };
    let good = Connect::new("smoke-m-ok").login("alice", "secret");
    let (_stream, answer) = send_connect(mosquitto.addr(), &good).await;
    assert_eq!(answer, Answer::Connack(CONNACK_ACCEPTED));
    for bad in [
        Connect::new("smoke-m-bad-password").login("alice", "wrong"),
        Connect::new("smoke-m-bad-user").login("mallory", "secret"),
        Connect::new("smoke-m-anonymous"),
    ] {
        let (mut stream, answer) = send_connect(mosquitto.addr(), &bad).await;
        // 3.1.1 defines 4 (bad user name or password) but mosquitto 2.0
        // answers 5 (not authorized) for every refusal.
        assert_ne!(answer, Answer::Connack(CONNACK_BAD_CREDENTIALS));
        assert_eq!(
            answer,
            Answer::Connack(CONNACK_NOT_AUTHORIZED),
            "client {}",
            bad.client_id
        );
        assert!(closed_by_peer(&mut stream).await);
    }
    mosquitto.wait_for_log("not authorised").await;
    mosquitto.assert_no_protocol_errors();
}

#[tokio::test]
async fn mosquitto_restarts_on_same_port() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let port = mosquitto.port();
    let (mut stream, _) = send_connect(mosquitto.addr(), &Connect::new("smoke-m-restart")).await;
    drop(mosquitto);
    assert!(closed_by_peer(&mut stream).await);
    let options = MosquittoOptions {
        port: Some(port),
        ..MosquittoOptions::default()
    };
    let mosquitto = Mosquitto::start_with(options)
        .await
        .expect("found a moment ago");
    assert_eq!(mosquitto.port(), port);
    let (_stream, answer) = send_connect(mosquitto.addr(), &Connect::new("smoke-m-restart")).await;
    assert_eq!(answer, Answer::Connack(CONNACK_ACCEPTED));
}

/// The log check must catch real violations, or it proves nothing.
#[tokio::test]
async fn mosquitto_log_check_detects_bad_packets() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let cases: [(&str, &[u8], &str); 2] = [
        // Packet type 15 is reserved in MQTT 3.1.1.
        (
            "smoke-reserved",
            &[0xF0, 0x00],
            "disconnected due to protocol error",
        ),
        // A PUBLISH whose topic length (5) overruns its remaining length (2).
        (
            "smoke-short",
            &[0x30, 0x02, 0x00, 0x05],
            "disconnected due to malformed packet",
        ),
    ];
    for (client_id, bad_packet, expected) in cases {
        let (mut stream, answer) = send_connect(mosquitto.addr(), &Connect::new(client_id)).await;
        assert_eq!(answer, Answer::Connack(CONNACK_ACCEPTED));
        stream.write_all(bad_packet).await.unwrap();
        assert!(
            closed_by_peer(&mut stream).await,
            "{client_id} not disconnected"
        );
        mosquitto
            .wait_for_log(&format!("Client {client_id} {expected}"))
            .await;
    }
    let errors = mosquitto.protocol_errors();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    let check = std::panic::catch_unwind(|| mosquitto.assert_no_protocol_errors());
    assert!(check.is_err(), "assert_no_protocol_errors must fail");
}
