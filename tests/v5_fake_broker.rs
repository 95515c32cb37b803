//! The client against a scripted MQTT 5 broker that misbehaves, through
//! the public `Client` API only.
//!
//! The fake broker of `common::fake` reads MQTT 3.1.1, so this file has its
//! own broker end ([`Broker5`]) over the same in-memory pipe: it frames the
//! client's packets as raw bytes and decodes them with
//! `minimqtt::codec::v5`, and writes packets encoded by that codec or, when
//! they must be broken, by hand. Every test runs on tokio's paused clock,
//! so timings are virtual and exact.
//!
//! Covered, as the MQTT 5 walkthrough asks: an invalid property, a Receive
//! Maximum exceeded by the broker, a Topic Alias over our limit (we
//! advertise none) or of 0, a packet over the Maximum Packet Size we
//! advertised, DISCONNECT from the server with each class of reason code,
//! and AUTH (enhanced authentication is refused, no CONNECT is sent; an
//! AUTH nobody asked for is a protocol error). Also: CONNACK refusals and
//! which of them `run_for` retries, the limits a CONNACK sets (Receive
//! Maximum, Maximum QoS, Retain Available, Maximum Packet Size, Server
//! Keep Alive) and that they end with their connection, and reason codes
//! and properties reaching the callbacks.
//!
//! For every violation the test checks the error the application gets, the
//! one `on_disconnect`, and that the broker sees the stream closed at
//! once (no virtual time passes) while the application is inside `poll` or
//! `run_for` and does nothing else.
#![cfg(feature = "v5")]

mod common;

use std::time::Duration;

use common::connector::Queue;
use common::fake::{PIPE_CAPACITY, Pipe, STEP, raw, within};
use embedded_io_adapters::tokio_1::FromTokio;
use minimqtt::callbacks::{AckToken, Callbacks, Connected, Context, DisconnectReason, Message};
use minimqtt::codec::v5::{
    self, Packet, PacketType, Properties, Property, ReasonCode, ReasonCodes, SubscriptionOptions,
};
use minimqtt::codec::{Malformed, QoS};
use minimqtt::session::{Limits, Version};
use minimqtt::time::{Duration as MDuration, TokioClock};
use minimqtt::topic::TopicError;
use minimqtt::{
    BrokerError, BufferSlices, Buffers, Client, Config, Error, Handled, ResourceError,
    SubscribeReturnCode, UsageError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

type E = Error<std::io::ErrorKind>;

/// How long the application sits in `poll` / `run_for` while the broker
/// misbehaves: far longer than anything the client should take.
const LONG: MDuration = MDuration::from_secs(60);

/// Buffers roomy enough that no test hits them by accident.
type Bufs = Buffers<1024, 5120, 512>;

// ---------------------------------------------------------------------------
// What the callbacks saw.

/// A received message, owned, with the properties the callbacks read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    packet_id: Option<u16>,
    props: MsgProps,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct MsgProps {
    payload_format: Option<u8>,
    expiry: Option<u32>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation: Option<Vec<u8>>,
    subscription_ids: Vec<u32>,
    user: Vec<(String, String)>,
}

/// An `on_publish` or `on_subscribe`: what it was about, and the reason
/// code and properties its `Context` reported.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Acked {
    what: String,
    packet_id: Option<u16>,
    code: Option<ReasonCode>,
    reason: Option<String>,
    user: Vec<(String, String)>,
}

/// What `on_connect` saw of the CONNACK.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConnInfo {
    session_present: bool,
    receive_maximum: Option<u16>,
    server_keep_alive: Option<u16>,
}

#[derive(Debug, Default)]
struct Log {
    connected: Vec<ConnInfo>,
    disconnected: Vec<DisconnectReason>,
    messages: Vec<Msg>,
    published: Vec<Acked>,
    subscribed: Vec<(Acked, SubscribeReturnCode)>,
    /// When set, `on_message` defers the acknowledgement of every QoS 1/2
    /// message and keeps its token here.
    defer: bool,
    tokens: Vec<AckToken>,
    /// `on_auth`: the broker's reason code and Authentication Data.
    auths: Vec<(ReasonCode, Option<Vec<u8>>)>,
    /// What `on_auth` answers a Continue Authentication with.
    answer: Vec<u8>,
    /// `on_disconnect`'s reason code, Reason String and Server Reference.
    goodbyes: Vec<(Option<ReasonCode>, Option<String>, Option<String>)>,
}

type Ctx<'c> = Context<'c, Log>;

fn owned_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    pairs.map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

fn on_connect(ctx: &mut Ctx<'_>, info: Connected<'_>) {
    ctx.user_data.connected.push(ConnInfo {
        session_present: info.session_present,
        receive_maximum: info.properties.receive_maximum(),
        server_keep_alive: info.properties.server_keep_alive(),
    });
}

fn on_disconnect(ctx: &mut Ctx<'_>, reason: DisconnectReason) {
    ctx.user_data.disconnected.push(reason);
    let props = ctx.properties();
    let goodbye = (
        ctx.reason_code(),
        props.reason_string().map(str::to_owned),
        props.server_reference().map(str::to_owned),
    );
    ctx.user_data.goodbyes.push(goodbye);
}

fn on_message(ctx: &mut Ctx<'_>, m: &Message<'_>) {
    let p = &m.properties;
    ctx.user_data.messages.push(Msg {
        topic: m.topic.to_owned(),
        payload: m.payload.to_vec(),
        qos: m.qos,
        packet_id: m.packet_id,
        props: MsgProps {
            payload_format: p.payload_format_indicator(),
            expiry: p.message_expiry_interval(),
            content_type: p.content_type().map(str::to_owned),
            response_topic: p.response_topic().map(str::to_owned),
            correlation: p.correlation_data().map(<[u8]>::to_vec),
            subscription_ids: p.subscription_identifiers().collect(),
            user: owned_pairs(p.user_properties()),
        },
    });
    if ctx.user_data.defer && m.qos != QoS::AtMostOnce {
        let token = ctx.defer_ack().expect("a QoS 1/2 message can be deferred");
        ctx.user_data.tokens.push(token);
    }
}

fn acked(ctx: &Ctx<'_>, what: &str, packet_id: Option<u16>) -> Acked {
    let props = ctx.properties();
    Acked {
        what: what.to_owned(),
        packet_id,
        code: ctx.reason_code(),
        reason: props.reason_string().map(str::to_owned),
        user: owned_pairs(props.user_properties()),
    }
}

fn on_publish(ctx: &mut Ctx<'_>, topic: &str, id: Option<u16>) {
    let a = acked(ctx, topic, id);
    ctx.user_data.published.push(a);
}

fn on_subscribe(ctx: &mut Ctx<'_>, filter: &str, code: SubscribeReturnCode, id: u16) {
    let a = acked(ctx, filter, Some(id));
    ctx.user_data.subscribed.push((a, code));
}

fn on_auth(ctx: &mut Ctx<'_>, auth: &v5::Auth<'_>) {
    let data = auth.properties.authentication_data().map(<[u8]>::to_vec);
    ctx.user_data.auths.push((auth.reason_code, data));
    if auth.reason_code == ReasonCode::ContinueAuthentication {
        let answer = core::mem::take(&mut ctx.user_data.answer);
        ctx.auth(&answer).expect("outbox room for the answer");
        ctx.user_data.answer = answer;
    }
}

fn callbacks<'r>() -> Callbacks<'r, Log> {
    Callbacks::new()
        .on_auth(on_auth)
        .on_connect(on_connect)
        .on_disconnect(on_disconnect)
        .on_message(on_message)
        .on_publish(on_publish)
        .on_subscribe(on_subscribe)
}

// ---------------------------------------------------------------------------
// The client.

type C5<'a> = Client<'a, Queue<Pipe>, TokioClock, Log>;

/// Client id `v5`, keep-alive 60 s, clean start, MQTT 5.
fn config5() -> Config<'static> {
    Config {
        version: Version::V5,
        ..Config::new("v5")
    }
}

/// [`config5`] with these CONNECT properties.
fn config_with(properties: &'static [Property<'static>]) -> Config<'static> {
    Config {
        properties: Properties::new(properties),
        ..config5()
    }
}

fn client5<'a>(connector: Queue<Pipe>, config: Config<'a>, buffers: BufferSlices<'a>) -> C5<'a> {
    Client::new(
        connector,
        TokioClock::new(),
        config,
        buffers,
        callbacks(),
        Log::default(),
    )
}

fn kind(e: Error<std::io::Error>) -> E {
    e.map_transport(|e| e.kind())
}

/// The name of the `Unsupported` inside `e` (the type is not exported,
/// so it is told by its `Debug` name), or a panic.
fn unsupported<T: std::fmt::Debug>(result: Result<T, E>) -> String {
    match result {
        Err(Error::Usage(UsageError::Unsupported(what))) => format!("{what:?}"),
        other => panic!("expected Usage(Unsupported(..)), got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The broker's end: raw bytes in, MQTT 5 decoded for the assertions.

/// A client end and an MQTT 5 broker end joined by a pipe.
fn pipe5() -> (Pipe, Broker5) {
    let (client, broker) = tokio::io::duplex(PIPE_CAPACITY);
    (
        FromTokio::new(client),
        Broker5 {
            io: broker,
            buf: Vec::new(),
        },
    )
}

/// The broker's end of a pipe: frames what the client writes into whole
/// packets, kept as bytes.
struct Broker5 {
    io: DuplexStream,
    buf: Vec<u8>,
}

/// A packet the client sent, decoded as MQTT 5 and owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rx5 {
    Connect {
        client_id: String,
        keep_alive: u16,
        clean_start: bool,
        receive_maximum: Option<u16>,
        maximum_packet_size: Option<u32>,
        topic_alias_maximum: Option<u16>,
        authentication_method: Option<String>,
    },
    Publish {
        topic: String,
        qos: QoS,
        retain: bool,
        packet_id: Option<u16>,
        /// The whole packet's length.
        len: usize,
    },
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe(u16, Vec<String>),
    PingReq,
    Disconnect(ReasonCode),
    /// AUTH: reason, method, data.
    Auth(ReasonCode, Option<String>, Option<Vec<u8>>),
    /// Anything else: a packet a client must never send.
    Other(PacketType),
}

/// Decodes one whole MQTT 5 packet; panics on anything else.
fn decode(bytes: &[u8]) -> Packet<'_> {
    match Packet::decode(bytes) {
        Ok((packet, n)) if n == bytes.len() => packet,
        other => panic!("the client sent an invalid MQTT 5 packet {bytes:02x?}: {other:?}"),
    }
}

fn summary(bytes: &[u8]) -> Rx5 {
    match decode(bytes) {
        Packet::Connect(c) => Rx5::Connect {
            client_id: c.client_id.to_owned(),
            keep_alive: c.keep_alive,
            clean_start: c.clean_start,
            receive_maximum: c.properties.receive_maximum(),
            maximum_packet_size: c.properties.maximum_packet_size(),
            topic_alias_maximum: c.properties.topic_alias_maximum(),
            authentication_method: c.properties.authentication_method().map(str::to_owned),
        },
        Packet::Publish(p) => Rx5::Publish {
            topic: p.topic.to_owned(),
            qos: p.qos,
            retain: p.retain,
            packet_id: p.packet_id,
            len: bytes.len(),
        },
        Packet::PubAck(a) => Rx5::PubAck(a.packet_id),
        Packet::PubRec(a) => Rx5::PubRec(a.packet_id),
        Packet::PubRel(a) => Rx5::PubRel(a.packet_id),
        Packet::PubComp(a) => Rx5::PubComp(a.packet_id),
        Packet::Subscribe(s) => Rx5::Subscribe(
            s.packet_id,
            s.filters.iter().map(|f| f.filter.to_owned()).collect(),
        ),
        Packet::PingReq => Rx5::PingReq,
        Packet::Disconnect(d) => Rx5::Disconnect(d.reason_code),
        Packet::Auth(a) => Rx5::Auth(
            a.reason_code,
            a.properties.authentication_method().map(str::to_owned),
            a.properties.authentication_data().map(<[u8]>::to_vec),
        ),
        other => Rx5::Other(other.packet_type()),
    }
}

impl Broker5 {
    /// The length of the packet at the front of the buffer, once all of
    /// it is there.
    fn framed(&self) -> Option<usize> {
        let mut len = 0usize;
        for (i, &b) in self.buf.iter().skip(1).take(4).enumerate() {
            len |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                let total = 1 + (i + 1) + len;
                return (self.buf.len() >= total).then_some(total);
            }
        }
        assert!(self.buf.len() < 5, "remaining length over 4 bytes");
        None
    }

    /// The next packet's bytes, or `None` when the client closed the
    /// stream between packets.
    async fn read(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(n) = self.framed() {
                return Some(self.buf.drain(..n).collect());
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                assert!(
                    self.buf.is_empty(),
                    "the client closed the stream mid-packet: {:02x?}",
                    self.buf
                );
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next packet; panics at end of stream or after [`STEP`].
    async fn recv(&mut self) -> Vec<u8> {
        match tokio::time::timeout(STEP, self.read()).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => panic!("broker: expected a packet, the client closed the stream"),
            Err(_) => panic!("broker: no packet from the client"),
        }
    }

    async fn recv5(&mut self) -> Rx5 {
        summary(&self.recv().await)
    }

    /// Whatever the client sends within `wait`: `None` if nothing,
    /// `Some(None)` at end of stream.
    async fn try_recv5(&mut self, wait: Duration) -> Option<Option<Rx5>> {
        let got = tokio::time::timeout(wait, self.read()).await.ok()?;
        Some(got.map(|b| summary(&b)))
    }

    /// Packets the client sends until it closes the stream (bounded by
    /// [`STEP`]).
    async fn until_eof(&mut self) -> Vec<Rx5> {
        within("the client closing the stream", async {
            let mut got = Vec::new();
            while let Some(bytes) = self.read().await {
                got.push(summary(&bytes));
            }
            got
        })
        .await
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("broker write");
        self.io.flush().await.expect("broker flush");
    }

    async fn send_packet(&mut self, packet: Packet<'_>) {
        self.send(&encode(packet)).await;
    }

    /// Sends `bytes`, then reads until the client closes the stream:
    /// what it sent first, and the virtual time from the send to the end
    /// of the stream.
    async fn send_then_eof(&mut self, bytes: &[u8]) -> (Vec<Rx5>, Duration) {
        let start = Instant::now();
        self.send(bytes).await;
        let sent = self.until_eof().await;
        (sent, start.elapsed())
    }
}

// ---------------------------------------------------------------------------
// Bytes the broker sends.

fn encode(packet: Packet<'_>) -> Vec<u8> {
    let mut out = vec![0u8; packet.encoded_len()];
    let n = packet.encode(&mut out).expect("a valid MQTT 5 packet");
    out.truncate(n);
    out
}

/// An accepting CONNACK (no session) with these properties.
fn connack(properties: &[Property<'_>]) -> Vec<u8> {
    encode(Packet::ConnAck(v5::ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: Properties::new(properties),
    }))
}

/// A CONNACK refusing with `code`.
fn refusal(code: ReasonCode, properties: &[Property<'_>]) -> Vec<u8> {
    encode(Packet::ConnAck(v5::ConnAck {
        session_present: false,
        reason_code: code,
        properties: Properties::new(properties),
    }))
}

fn publish5(
    topic: &str,
    payload: &[u8],
    qos: QoS,
    packet_id: Option<u16>,
    properties: &[Property<'_>],
) -> Vec<u8> {
    let mut p = v5::Publish::new(topic, payload, qos, false);
    p.packet_id = packet_id;
    p.properties = Properties::new(properties);
    encode(Packet::Publish(p))
}

/// A PUBLISH by hand: `flags` is the low nibble of byte 0, `props` the
/// raw property list (its length is prepended, one byte).
fn publish_raw(flags: u8, topic: &[u8], id: Option<u16>, props: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic);
    if let Some(id) = id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    assert!(props.len() < 128);
    body.push(props.len() as u8);
    body.extend_from_slice(props);
    body.extend_from_slice(payload);
    raw(0x30 | flags, &body)
}

/// An acknowledgement (`first`: 0x40 PUBACK, 0x50 PUBREC, 0x62 PUBREL,
/// 0x70 PUBCOMP) with a reason code and a raw property list.
fn ack_raw(first: u8, id: u16, code: u8, props: &[u8]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    body.push(code);
    assert!(props.len() < 128);
    body.push(props.len() as u8);
    body.extend_from_slice(props);
    raw(first, &body)
}

fn puback(id: u16, code: ReasonCode, properties: &[Property<'_>]) -> Vec<u8> {
    encode(Packet::PubAck(v5::PubAck {
        packet_id: id,
        reason_code: code,
        properties: Properties::new(properties),
    }))
}

fn pubrec(id: u16, code: ReasonCode, properties: &[Property<'_>]) -> Vec<u8> {
    encode(Packet::PubRec(v5::PubRec {
        packet_id: id,
        reason_code: code,
        properties: Properties::new(properties),
    }))
}

fn disconnect(code: ReasonCode, properties: &[Property<'_>]) -> Vec<u8> {
    encode(Packet::Disconnect(v5::Disconnect {
        reason_code: code,
        properties: Properties::new(properties),
    }))
}

const PINGRESP: [u8; 2] = [0xd0, 0x00];

// ---------------------------------------------------------------------------
// Scripts.

/// Connects `c` through `broker`, which answers with `connack`; returns
/// the CONNECT the broker read.
async fn connect5(c: &mut C5<'_>, broker: &mut Broker5, connack: &[u8]) -> Rx5 {
    broker.send(connack).await;
    within("connect", c.connect())
        .await
        .map_err(kind)
        .expect("connect");
    let connect = broker.recv5().await;
    assert!(matches!(connect, Rx5::Connect { .. }), "{connect:?}");
    connect
}

/// A client with clean session off and these CONNECT properties,
/// connected (session present 0) through the first of two pipes its
/// connector opens in turn: the client and both brokers.
async fn resumable5(properties: &'static [Property<'static>]) -> (C5<'static>, Broker5, Broker5) {
    let (first, mut broker1) = pipe5();
    let (second, broker2) = pipe5();
    let queue = Queue::with(first);
    queue.push(second);
    let buffers = Box::leak(Box::new(Bufs::new()));
    let config = Config {
        clean_session: false,
        ..config_with(properties)
    };
    let mut c = client5(queue, config, buffers.slices());
    connect5(&mut c, &mut broker1, &connack(&[])).await;
    (c, broker1, broker2)
}

/// Asserts that the broker sending `bytes` to a connected client (CONNECT
/// properties `config`, a plain CONNACK) ends the connection, twice:
///
/// - with the application inside `poll`: `poll` returns `error`;
/// - with the application inside `run_for`, which returns nothing about
///   it: only `on_disconnect` tells.
///
/// Either way `on_disconnect` runs once with `reason`, the client sends
/// nothing more (see [`assert_goodbye`]), and the broker sees the stream
/// closed with no virtual time passing.
/// What the client sends between a broker's violation and closing the
/// stream: one DISCONNECT with the violation's reason code, as MQTT 5
/// §4.13.1 recommends (0x81 for a malformed packet, 0x82 for a protocol
/// error, including the decoder's faults the specification calls one:
/// a property twice, a value out of range). Nothing at all after the
/// server's own DISCONNECT.
fn assert_goodbye(sent: &[Rx5], error: &E) {
    let expected = match error {
        Error::Broker(BrokerError::Violation(code)) => Some(*code),
        Error::Broker(BrokerError::Malformed(m)) => Some(ReasonCode::for_malformed(*m)),
        Error::Broker(BrokerError::Protocol(_)) => Some(ReasonCode::ProtocolError),
        _ => None,
    };
    match (sent, expected) {
        ([], None) => {}
        ([Rx5::Disconnect(code)], Some(want)) if *code == want => {}
        _ => panic!("the client sent {sent:?} before closing, after {error:?}"),
    }
}

async fn assert_ends(config: Config<'static>, bytes: &[u8], error: E, reason: DisconnectReason) {
    // Inside `poll`.
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config, buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let (result, (sent, eof_after)) = within("poll", async {
        tokio::join!(c.poll(LONG), broker.send_then_eof(bytes))
    })
    .await;
    assert_eq!(result.map_err(kind), Err(error), "for {bytes:02x?}");
    assert_eq!(c.user_data().disconnected, [reason], "for {bytes:02x?}");
    assert!(!c.is_connected());
    assert_goodbye(&sent, &error);
    assert_eq!(eof_after, Duration::ZERO, "closed late, for {bytes:02x?}");

    // Inside `run_for`: nothing more is queued, so its reconnection
    // attempts fail (without another `on_disconnect`).
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config, buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let (result, (sent, eof_after)) = within("run_for", async {
        tokio::join!(
            c.run_for(MDuration::from_secs(5)),
            broker.send_then_eof(bytes)
        )
    })
    .await;
    assert!(result.is_ok(), "run_for: {result:?}");
    assert_eq!(c.user_data().disconnected, [reason], "for {bytes:02x?}");
    assert_eq!(c.connector_mut().opened(), 1);
    assert_goodbye(&sent, &error);
    assert_eq!(eof_after, Duration::ZERO, "closed late, for {bytes:02x?}");
}

fn violation(code: ReasonCode) -> E {
    Error::Broker(BrokerError::Violation(code))
}

fn malformed(m: Malformed) -> E {
    Error::Broker(BrokerError::Malformed(m))
}

// ---------------------------------------------------------------------------
// The CONNECT.

/// A client with no in-flight window (`INFLIGHT` 0) advertises no
/// Receive Maximum, even one the config asks for: 0 is not a valid one
/// (§3.1.2.11.3), and capping the caller's to it made `connect` fail.
#[tokio::test(start_paused = true)]
async fn no_window_advertises_no_receive_maximum() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let config = config_with(&[Property::ReceiveMaximum(10)]);
    let mut c: Client<'_, Queue<Pipe>, TokioClock, Log, 0> = Client::with_capacity(
        Queue::with(io),
        TokioClock::new(),
        config,
        buffers.slices(),
        callbacks(),
        Log::default(),
    );
    broker.send(&connack(&[])).await;
    within("connect", c.connect())
        .await
        .map_err(kind)
        .expect("connect");
    let connect = broker.recv5().await;
    assert!(
        matches!(
            connect,
            Rx5::Connect {
                receive_maximum: None,
                ..
            }
        ),
        "{connect:?}"
    );
}

/// The CONNECT is MQTT 5 (it decodes as such, protocol version 5) and
/// advertises what the client enforces: Receive Maximum = `INFLIGHT` (8)
/// by default, or what `Config::properties` says, the Maximum Packet Size
/// asked for, and no Topic Alias Maximum (so no alias may come).
#[tokio::test(start_paused = true)]
async fn connect_advertises_our_limits() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    let connect = connect5(&mut c, &mut broker, &connack(&[])).await;
    assert_eq!(
        connect,
        Rx5::Connect {
            client_id: "v5".into(),
            keep_alive: 60,
            clean_start: true,
            receive_maximum: Some(8),
            maximum_packet_size: None,
            topic_alias_maximum: None,
            authentication_method: None,
        }
    );
    assert_eq!(c.session().version(), Version::V5);

    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let config = config_with(&[Property::ReceiveMaximum(2), Property::MaximumPacketSize(64)]);
    let mut c = client5(Queue::with(io), config, buffers.slices());
    let connect = connect5(&mut c, &mut broker, &connack(&[])).await;
    assert_eq!(
        connect,
        Rx5::Connect {
            client_id: "v5".into(),
            keep_alive: 60,
            clean_start: true,
            receive_maximum: Some(2),
            maximum_packet_size: Some(64),
            topic_alias_maximum: None,
            authentication_method: None,
        }
    );
}

// ---------------------------------------------------------------------------
// Invalid properties and reason codes: malformed, the connection ends.

/// A property that is not allowed in its packet, a duplicate one, an
/// unknown identifier, a value out of range, a list running past its
/// packet, or a reason code the packet may not carry: each makes the
/// packet malformed (MQTT 5 §2.2.2.2, §2.4, §4.13), and the client closes
/// the connection (MQTT-4.13.1-1).
#[tokio::test(start_paused = true)]
async fn invalid_properties_and_reason_codes_are_malformed() {
    let cases: Vec<(&str, Vec<u8>, Malformed)> = vec![
        (
            "Reason String in a PUBLISH",
            publish_raw(0, b"a", None, &[0x1f, 0x00, 0x01, b'x'], b"p"),
            Malformed::PropertyNotAllowed(0x1f),
        ),
        (
            "Message Expiry Interval twice",
            publish_raw(0, b"a", None, &[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2], b"p"),
            Malformed::DuplicateProperty(0x02),
        ),
        (
            "Content Type twice in a QoS 1 PUBLISH",
            publish_raw(
                2,
                b"a",
                Some(1),
                &[0x03, 0, 1, b'x', 0x03, 0, 1, b'y'],
                b"p",
            ),
            Malformed::DuplicateProperty(0x03),
        ),
        (
            "unknown property 0x7f",
            publish_raw(0, b"a", None, &[0x7f, 0x00], b"p"),
            Malformed::UnknownProperty(0x7f),
        ),
        (
            "Payload Format Indicator 2",
            publish_raw(0, b"a", None, &[0x01, 0x02], b"p"),
            Malformed::PropertyValue(0x01),
        ),
        (
            "Subscription Identifier 0",
            publish_raw(0, b"a", None, &[0x0b, 0x00], b"p"),
            Malformed::SubscriptionIdentifier,
        ),
        (
            "Response Topic with a wildcard",
            publish_raw(0, b"a", None, &[0x08, 0, 3, b'a', b'/', b'#'], b"p"),
            Malformed::ResponseTopic(TopicError::WildcardInName),
        ),
        (
            "User Property not UTF-8",
            publish_raw(0, b"a", None, &[0x26, 0, 1, 0xff, 0, 1, b'v'], b"p"),
            Malformed::StringPair,
        ),
        (
            "property length past the end of the packet",
            raw(0x30, &[0, 1, b'a', 0x05, 0x01, 0x01]),
            Malformed::PropertyLength,
        ),
        (
            "property length not in its fewest bytes",
            raw(0x30, &[0, 1, b'a', 0x80, 0x00, b'p']),
            Malformed::NonMinimalVarint,
        ),
        (
            "Server Reference in a PUBACK",
            ack_raw(0x40, 1, 0x00, &[0x1c, 0, 1, b'x']),
            Malformed::PropertyNotAllowed(0x1c),
        ),
        (
            "Reason String twice in a PUBREC",
            ack_raw(0x50, 1, 0x00, &[0x1f, 0, 1, b'x', 0x1f, 0, 1, b'y']),
            Malformed::DuplicateProperty(0x1f),
        ),
        (
            "PUBACK with 0x11 (an UNSUBACK code)",
            ack_raw(0x40, 1, 0x11, &[]),
            Malformed::ReasonCode(0x11),
        ),
        (
            "PUBACK with the undefined code 0x05",
            vec![0x40, 0x03, 0x00, 0x01, 0x05],
            Malformed::ReasonCode(0x05),
        ),
        (
            "DISCONNECT with 0x18 (an AUTH code)",
            vec![0xe0, 0x01, 0x18],
            Malformed::ReasonCode(0x18),
        ),
        (
            "Server Reference twice in a DISCONNECT",
            raw(0xe0, &[0x9c, 0x08, 0x1c, 0, 1, b'a', 0x1c, 0, 1, b'b']),
            Malformed::DuplicateProperty(0x1c),
        ),
        (
            "Authentication Data without a Method in an AUTH",
            raw(0xf0, &[0x18, 0x04, 0x16, 0, 1, 0x2a]),
            Malformed::AuthenticationData,
        ),
    ];
    for (what, bytes, want) in cases {
        eprintln!("case: {what}");
        assert_ends(
            config5(),
            &bytes,
            malformed(want),
            DisconnectReason::ProtocolError,
        )
        .await;
    }
}

/// An invalid CONNACK fails `connect` itself: the CONNACK is malformed,
/// `on_disconnect` runs once, and the stream is closed at once.
#[tokio::test(start_paused = true)]
async fn invalid_connack_properties_fail_connect() {
    let cases: Vec<(&str, Vec<u8>, Malformed)> = vec![
        (
            "Topic Alias in a CONNACK",
            raw(0x20, &[0x00, 0x00, 0x03, 0x23, 0x00, 0x01]),
            Malformed::PropertyNotAllowed(0x23),
        ),
        (
            "Receive Maximum twice",
            raw(0x20, &[0x00, 0x00, 0x06, 0x21, 0, 5, 0x21, 0, 6]),
            Malformed::DuplicateProperty(0x21),
        ),
        (
            "Receive Maximum 0",
            raw(0x20, &[0x00, 0x00, 0x03, 0x21, 0, 0]),
            Malformed::PropertyValue(0x21),
        ),
        (
            "Maximum QoS 2",
            raw(0x20, &[0x00, 0x00, 0x02, 0x24, 2]),
            Malformed::PropertyValue(0x24),
        ),
        (
            "Maximum Packet Size 0",
            raw(0x20, &[0x00, 0x00, 0x05, 0x27, 0, 0, 0, 0]),
            Malformed::PropertyValue(0x27),
        ),
        (
            "session present on a refusal (MQTT-3.2.2-6)",
            raw(0x20, &[0x01, 0x87, 0x00]),
            Malformed::SessionPresent,
        ),
        (
            "CONNACK with 0x8E (a DISCONNECT code)",
            raw(0x20, &[0x00, 0x8e, 0x00]),
            Malformed::ReasonCode(0x8e),
        ),
    ];
    for (what, bytes, want) in cases {
        let (io, mut broker) = pipe5();
        let mut buffers = Bufs::new();
        let mut c = client5(Queue::with(io), config5(), buffers.slices());
        broker.send(&bytes).await;
        let result = within("connect", c.connect()).await.map_err(kind);
        assert_eq!(result, Err(malformed(want)), "{what}");
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::ProtocolError],
            "{what}"
        );
        assert!(c.user_data().connected.is_empty(), "{what}");
        assert!(!c.is_connected());
        let sent = broker.until_eof().await;
        assert_eq!(sent.len(), 1, "{what}: {sent:?}");
        assert!(matches!(sent[0], Rx5::Connect { .. }), "{what}");
    }
}

// ---------------------------------------------------------------------------
// Receive Maximum: the broker may not have more QoS 1/2 PUBLISHes
// unacknowledged than our CONNECT advertised (MQTT-3.3.4-9 for the
// broker's side; 0x93 Receive Maximum exceeded).

/// QoS 2 messages count until their PUBCOMP: with Receive Maximum 2, a
/// third QoS 2 PUBLISH before any PUBREL is over it, though every earlier
/// one was PUBREC'd. The two within the limit are delivered.
#[tokio::test(start_paused = true)]
async fn receive_maximum_exceeded_with_qos2() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let config = config_with(&[Property::ReceiveMaximum(2)]);
    let mut c = client5(Queue::with(io), config, buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let (result, eof_after) = within("poll", async {
        tokio::join!(c.poll(LONG), async {
            for id in 1..=2 {
                broker
                    .send(&publish5("q2", b"x", QoS::ExactlyOnce, Some(id), &[]))
                    .await;
                assert_eq!(broker.recv5().await, Rx5::PubRec(id));
            }
            let third = publish5("q2", b"x", QoS::ExactlyOnce, Some(3), &[]);
            let (sent, after) = broker.send_then_eof(&third).await;
            assert_goodbye(&sent, &violation(ReasonCode::ReceiveMaximumExceeded));
            after
        })
    })
    .await;
    assert_eq!(
        result.map_err(kind),
        Err(violation(ReasonCode::ReceiveMaximumExceeded))
    );
    assert_eq!(eof_after, Duration::ZERO);
    let log = c.user_data();
    assert_eq!(log.disconnected, [DisconnectReason::ProtocolError]);
    let ids: Vec<_> = log.messages.iter().map(|m| m.packet_id).collect();
    assert_eq!(ids, [Some(1), Some(2)]);

    // The same inside `run_for`, the whole burst in one write.
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config, buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let mut burst = Vec::new();
    for id in 1..=3 {
        burst.extend(publish5("q2", b"x", QoS::ExactlyOnce, Some(id), &[]));
    }
    let (result, (sent, eof_after)) = within("run_for", async {
        tokio::join!(
            c.run_for(MDuration::from_secs(5)),
            broker.send_then_eof(&burst)
        )
    })
    .await;
    assert!(result.is_ok());
    assert_eq!(eof_after, Duration::ZERO);
    // The PUBRECs of the first two may or may not have been written; the
    // DISCONNECT goes out only if they were (it is only said between
    // packets, and the client does not wait to write them first).
    let rest: Vec<_> = sent
        .into_iter()
        .filter(|p| !matches!(p, Rx5::PubRec(1 | 2)))
        .collect();
    if !rest.is_empty() {
        assert_goodbye(&rest, &violation(ReasonCode::ReceiveMaximumExceeded));
    }
    assert_eq!(
        c.user_data().disconnected,
        [DisconnectReason::ProtocolError]
    );
    assert_eq!(c.user_data().messages.len(), 2);
}

/// The Receive Maximum is a quota of the network connection (§4.9, "not
/// part of the session state"): with a Receive Maximum of 1, a QoS 2
/// message of the last connection waiting for its PUBREL leaves room for
/// a new message on the next one, whichever the broker sends first. Once
/// the broker sends that message again, it counts.
#[tokio::test(start_paused = true)]
async fn receive_maximum_starts_afresh_on_each_connection() {
    let rel = raw(0x62, &1u16.to_be_bytes());
    let new = publish5("t", b"2", QoS::AtLeastOnce, Some(2), &[]);
    let old = publish5("t", b"1", QoS::ExactlyOnce, Some(1), &[]);
    let mut old_again = old.clone();
    old_again[0] |= 0x08;
    let cases = [
        ([rel.clone(), new.clone()].concat(), None),
        ([new.clone(), rel.clone()].concat(), None),
        (
            [old_again, new].concat(),
            Some(ReasonCode::ReceiveMaximumExceeded),
        ),
    ];
    for (burst, violation_code) in cases {
        let (mut c, mut broker1, mut broker2) = resumable5(&[Property::ReceiveMaximum(1)]).await;
        let (result, ()) = within("the first connection", async {
            tokio::join!(c.poll(MDuration::from_secs(1)), async {
                broker1.send(&old).await;
                assert_eq!(broker1.recv5().await, Rx5::PubRec(1));
            })
        })
        .await;
        result.map_err(kind).expect("poll");
        c.abort();
        drop(broker1);
        let present = encode(Packet::ConnAck(v5::ConnAck {
            session_present: true,
            reason_code: ReasonCode::Success,
            properties: Properties::EMPTY,
        }));
        connect5(&mut c, &mut broker2, &present).await;
        match violation_code {
            None => {
                let (result, mut sent) = within("the second connection", async {
                    tokio::join!(c.poll(MDuration::from_secs(1)), async {
                        broker2.send(&burst).await;
                        [broker2.recv5().await, broker2.recv5().await]
                    })
                })
                .await;
                assert!(result.is_ok(), "{burst:02x?}: {:?}", result.map_err(kind));
                assert!(c.is_connected());
                sent.sort_by_key(|p| matches!(p, Rx5::PubAck(_)));
                assert_eq!(sent, [Rx5::PubComp(1), Rx5::PubAck(2)], "{burst:02x?}");
                assert_eq!(c.user_data().messages.len(), 2);
            }
            Some(code) => {
                let (result, (sent, _)) = within("the second connection", async {
                    tokio::join!(c.poll(LONG), broker2.send_then_eof(&burst))
                })
                .await;
                assert_eq!(result.map_err(kind), Err(violation(code)));
                assert_goodbye(&sent, &violation(code));
            }
        }
    }
}

/// What does not count: a message whose PUBREL has come (our PUBCOMP
/// frees its place), and a resend with DUP of one already held (MQTT 5
/// allows resends only after a reconnect, MQTT-4.4.0-1, but the client
/// tolerates one, PUBREC'ing it again as on MQTT 3.1.1). The connection
/// stays up while the broker keeps within 2; the next new one over it
/// ends it.
#[tokio::test(start_paused = true)]
async fn receive_maximum_counts_until_pubcomp() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let config = config_with(&[Property::ReceiveMaximum(2)]);
    let mut c = client5(Queue::with(io), config, buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let (result, ()) = within("poll", async {
        tokio::join!(c.poll(LONG), async {
            for id in 1..=2 {
                broker
                    .send(&publish5("q2", b"x", QoS::ExactlyOnce, Some(id), &[]))
                    .await;
                assert_eq!(broker.recv5().await, Rx5::PubRec(id));
            }
            // PUBREL 1: its PUBCOMP frees a place.
            broker.send(&[0x62, 0x02, 0x00, 0x01]).await;
            assert_eq!(broker.recv5().await, Rx5::PubComp(1));
            broker
                .send(&publish5("q2", b"x", QoS::ExactlyOnce, Some(3), &[]))
                .await;
            assert_eq!(broker.recv5().await, Rx5::PubRec(3));
            // A resend of 2 (DUP): PUBREC'd again, not a new message.
            let mut dup = publish5("q2", b"x", QoS::ExactlyOnce, Some(2), &[]);
            dup[0] |= 0x08;
            broker.send(&dup).await;
            assert_eq!(broker.recv5().await, Rx5::PubRec(2));
            // 2 and 3 are held: a fourth is over the limit.
            let (sent, after) = broker
                .send_then_eof(&publish5("q2", b"x", QoS::ExactlyOnce, Some(4), &[]))
                .await;
            assert_goodbye(&sent, &violation(ReasonCode::ReceiveMaximumExceeded));
            assert_eq!(after, Duration::ZERO);
        })
    })
    .await;
    assert_eq!(
        result.map_err(kind),
        Err(violation(ReasonCode::ReceiveMaximumExceeded))
    );
    let ids: Vec<_> = c.user_data().messages.iter().map(|m| m.packet_id).collect();
    assert_eq!(ids, [Some(1), Some(2), Some(3)]);
    assert_eq!(
        c.user_data().disconnected,
        [DisconnectReason::ProtocolError]
    );
}

/// Without a Receive Maximum in `Config::properties` the client
/// advertises `INFLIGHT` (8): eight QoS 2 messages awaiting PUBREL are
/// fine, a ninth is over.
#[tokio::test(start_paused = true)]
async fn receive_maximum_defaults_to_inflight() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let (result, ()) = within("poll", async {
        tokio::join!(c.poll(LONG), async {
            for id in 1..=8 {
                broker
                    .send(&publish5("q2", b"x", QoS::ExactlyOnce, Some(id), &[]))
                    .await;
                assert_eq!(broker.recv5().await, Rx5::PubRec(id));
            }
            let (sent, after) = broker
                .send_then_eof(&publish5("q2", b"x", QoS::ExactlyOnce, Some(9), &[]))
                .await;
            assert_goodbye(&sent, &violation(ReasonCode::ReceiveMaximumExceeded));
            assert_eq!(after, Duration::ZERO);
        })
    })
    .await;
    assert_eq!(
        result.map_err(kind),
        Err(violation(ReasonCode::ReceiveMaximumExceeded))
    );
    assert_eq!(c.user_data().messages.len(), 8);
}

/// QoS 1 messages count until their PUBACK: with acknowledgements
/// deferred by the application, two QoS 1 messages are unacknowledged,
/// and a third is over Receive Maximum 2.
#[tokio::test(start_paused = true)]
async fn receive_maximum_exceeded_with_deferred_qos1() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let config = config_with(&[Property::ReceiveMaximum(2)]);
    let mut c = client5(Queue::with(io), config, buffers.slices());
    c.user_data_mut().defer = true;
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let mut burst = Vec::new();
    for id in 1..=3 {
        burst.extend(publish5("q1", b"x", QoS::AtLeastOnce, Some(id), &[]));
    }
    let (result, (sent, eof_after)) = within("poll", async {
        tokio::join!(c.poll(LONG), broker.send_then_eof(&burst))
    })
    .await;
    assert_eq!(
        result.map_err(kind),
        Err(violation(ReasonCode::ReceiveMaximumExceeded))
    );
    // No PUBACK: both are deferred.
    assert_goodbye(&sent, &violation(ReasonCode::ReceiveMaximumExceeded));
    assert_eq!(eof_after, Duration::ZERO);
    assert_eq!(c.user_data().messages.len(), 2);
    assert_eq!(c.user_data().tokens.len(), 2);
    assert_eq!(
        c.user_data().disconnected,
        [DisconnectReason::ProtocolError]
    );
}

/// A Receive Maximum in `Config::properties` above `INFLIGHT` (10 here,
/// with the default `INFLIGHT` of 8) must still hold the broker to what
/// the CONNECT advertised: as many QoS 2 messages awaiting PUBREL as the
/// CONNECT's Receive Maximum are within it, one more is over it and ends
/// the connection. (Advertising 10 and enforcing it, or advertising no
/// more than `INFLIGHT`, would both pass.)
#[tokio::test(start_paused = true)]
async fn receive_maximum_above_inflight_is_enforced() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let config = config_with(&[Property::ReceiveMaximum(10)]);
    let mut c = client5(Queue::with(io), config, buffers.slices());
    let connect = connect5(&mut c, &mut broker, &connack(&[])).await;
    let Rx5::Connect {
        receive_maximum: Some(advertised),
        ..
    } = connect
    else {
        panic!("no Receive Maximum in {connect:?}");
    };
    assert!(advertised <= 10);
    let (result, ()) = within("poll", async {
        tokio::join!(c.poll(LONG), async {
            for id in 1..=advertised {
                broker
                    .send(&publish5("q2", b"x", QoS::ExactlyOnce, Some(id), &[]))
                    .await;
                assert_eq!(broker.recv5().await, Rx5::PubRec(id));
            }
            let over = publish5("q2", b"x", QoS::ExactlyOnce, Some(advertised + 1), &[]);
            match tokio::time::timeout(Duration::from_secs(5), broker.send_then_eof(&over)).await {
                Ok((sent, after)) => {
                    assert_goodbye(&sent, &violation(ReasonCode::ReceiveMaximumExceeded));
                    assert_eq!(after, Duration::ZERO);
                }
                Err(_) => panic!(
                    "QoS 2 PUBLISH number {} awaiting PUBREL was accepted, Receive Maximum {advertised}",
                    advertised + 1
                ),
            }
        })
    })
    .await;
    assert_eq!(
        result.map_err(kind),
        Err(violation(ReasonCode::ReceiveMaximumExceeded))
    );
    assert_eq!(c.user_data().messages.len(), usize::from(advertised));
}

// ---------------------------------------------------------------------------
// Topic Alias: we advertise no Topic Alias Maximum, so any alias is over
// it (MQTT-3.1.2-27, MQTT-3.3.2-11; 0x94 Topic Alias invalid).

/// An alias with a topic, an alias alone (empty topic), the largest
/// alias, and an alias on a QoS 1 message: each is 0x94 and ends the
/// connection.
#[tokio::test(start_paused = true)]
async fn topic_alias_is_over_our_limit() {
    let cases = [
        publish5(
            "a/b",
            b"x",
            QoS::AtMostOnce,
            None,
            &[Property::TopicAlias(1)],
        ),
        publish5("", b"x", QoS::AtMostOnce, None, &[Property::TopicAlias(1)]),
        publish5(
            "a/b",
            b"x",
            QoS::AtMostOnce,
            None,
            &[Property::TopicAlias(u16::MAX)],
        ),
        publish5(
            "a/b",
            b"x",
            QoS::AtLeastOnce,
            Some(7),
            &[Property::TopicAlias(2)],
        ),
    ];
    for bytes in cases {
        assert_ends(
            config5(),
            &bytes,
            violation(ReasonCode::TopicAliasInvalid),
            DisconnectReason::ProtocolError,
        )
        .await;
    }
}

/// A Topic Alias of 0 is never valid (MQTT-3.3.2-8): the value is out of
/// the property's range, so the PUBLISH is malformed, with a topic or
/// without. An empty topic without an alias has nothing to stand for it:
/// a Protocol Error (§3.3.2.1), DISCONNECT 0x82.
#[tokio::test(start_paused = true)]
async fn topic_alias_0_and_empty_topic_are_malformed() {
    assert_eq!(
        ReasonCode::for_malformed(Malformed::TopicName(TopicError::Empty)),
        ReasonCode::ProtocolError
    );
    assert_ends(
        config5(),
        &publish_raw(0, b"a", None, &[0x23, 0x00, 0x00], b"x"),
        malformed(Malformed::PropertyValue(0x23)),
        DisconnectReason::ProtocolError,
    )
    .await;
    assert_ends(
        config5(),
        &publish_raw(0, b"", None, &[0x23, 0x00, 0x00], b"x"),
        malformed(Malformed::PropertyValue(0x23)),
        DisconnectReason::ProtocolError,
    )
    .await;
    assert_ends(
        config5(),
        &publish_raw(0, b"", None, &[], b"x"),
        malformed(Malformed::TopicName(TopicError::Empty)),
        DisconnectReason::ProtocolError,
    )
    .await;
}

// ---------------------------------------------------------------------------
// Maximum Packet Size: the broker may not send a packet larger than the
// one our CONNECT advertised (MQTT-3.1.2-24, MQTT-3.1.2-25; 0x95 Packet
// too large).

/// With Maximum Packet Size 64 advertised: a PUBLISH of exactly 64 bytes
/// is delivered; one of 65 ends the connection, and so does any other
/// packet over it (a PUBACK with a long Reason String).
#[tokio::test(start_paused = true)]
async fn packet_over_our_maximum_packet_size() {
    const MAX: &[Property<'static>] = &[Property::MaximumPacketSize(64)];
    // 64 bytes: 2 of fixed header, 3 of topic, 1 of properties, 58 of payload.
    let fits = publish5("a", &[7; 58], QoS::AtMostOnce, None, &[]);
    assert_eq!(fits.len(), 64);
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config_with(MAX), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    broker.send(&fits).await;
    let handled = within("poll", c.poll(MDuration::from_secs(1)))
        .await
        .map_err(kind)
        .expect("64 bytes are within the maximum");
    assert_eq!(handled.messages, 1);
    assert!(c.is_connected());

    let over = publish5("a", &[7; 59], QoS::AtMostOnce, None, &[]);
    assert_eq!(over.len(), 65);
    let reason = "r".repeat(100);
    let long_puback = puback(1, ReasonCode::Success, &[Property::ReasonString(&reason)]);
    assert!(long_puback.len() > 64);
    for bytes in [over, long_puback] {
        assert_ends(
            config_with(MAX),
            &bytes,
            violation(ReasonCode::PacketTooLarge),
            DisconnectReason::ProtocolError,
        )
        .await;
    }
}

/// A PUBLISH over our maximum that is also larger than the receive
/// buffer (which would otherwise be skipped and reported to
/// `on_message_dropped`) is a violation as well, told from its fixed
/// header: the client closes the stream without waiting for the rest.
#[tokio::test(start_paused = true)]
async fn oversized_packet_is_refused_from_its_header() {
    // Receive buffer 1024, maximum 1500, PUBLISH of about 2000 bytes.
    let config = config_with(&[Property::MaximumPacketSize(1500)]);
    let big = publish5("big", &[1; 2000], QoS::AtLeastOnce, Some(3), &[]);
    assert_ends(
        config,
        &big,
        violation(ReasonCode::PacketTooLarge),
        DisconnectReason::ProtocolError,
    )
    .await;
    // Only its first 16 bytes sent.
    assert_ends(
        config,
        &big[..16],
        violation(ReasonCode::PacketTooLarge),
        DisconnectReason::ProtocolError,
    )
    .await;
}

// ---------------------------------------------------------------------------
// DISCONNECT from the server (MQTT 5 §3.14): the connection is over,
// with the server's reason code.

/// Each class of reason code: 0x00 normal disconnection (the two-byte
/// short form), 0x8B server shutting down (with a Reason String), 0x8E
/// session taken over, 0x9C use another server (with a Server Reference),
/// and 0x93 Receive Maximum exceeded (the broker blaming us). Each one is
/// `BrokerError::Disconnected(code)` and `ServerDisconnect(code)`.
#[tokio::test(start_paused = true)]
async fn server_disconnect_with_each_class_of_reason_code() {
    let cases = [
        (ReasonCode::NORMAL_DISCONNECTION, vec![0xe0, 0x00]),
        (
            ReasonCode::ServerShuttingDown,
            disconnect(
                ReasonCode::ServerShuttingDown,
                &[Property::ReasonString("maintenance")],
            ),
        ),
        (
            ReasonCode::SessionTakenOver,
            disconnect(ReasonCode::SessionTakenOver, &[]),
        ),
        (
            ReasonCode::UseAnotherServer,
            disconnect(
                ReasonCode::UseAnotherServer,
                &[Property::ServerReference("other.example:1883")],
            ),
        ),
        (
            ReasonCode::ReceiveMaximumExceeded,
            disconnect(ReasonCode::ReceiveMaximumExceeded, &[]),
        ),
    ];
    for (code, bytes) in cases {
        assert_ends(
            config5(),
            &bytes,
            Error::Broker(BrokerError::Disconnected(code)),
            DisconnectReason::ServerDisconnect(code),
        )
        .await;
    }
}

/// After a server DISCONNECT `run_for` reconnects by itself (the
/// connector is asked again) even for "use another server": the client
/// cannot follow a Server Reference, its connector decides where to go.
#[tokio::test(start_paused = true)]
async fn run_for_reconnects_after_a_server_disconnect() {
    let (first, mut broker1) = pipe5();
    let (second, mut broker2) = pipe5();
    let queue = Queue::with(first);
    queue.push(second);
    let mut buffers = Bufs::new();
    let mut c = client5(queue.clone(), config5(), buffers.slices());
    connect5(&mut c, &mut broker1, &connack(&[])).await;
    broker2.send(&connack(&[])).await;
    let bye = disconnect(
        ReasonCode::UseAnotherServer,
        &[Property::ServerReference("other.example")],
    );
    let (result, (sent, eof_after)) = within("run_for", async {
        tokio::join!(
            c.run_for(MDuration::from_secs(10)),
            broker1.send_then_eof(&bye)
        )
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(sent, []);
    assert_eq!(eof_after, Duration::ZERO);
    assert_eq!(queue.opened(), 2);
    assert!(c.is_connected());
    assert!(matches!(broker2.recv5().await, Rx5::Connect { .. }));
    let log = c.user_data();
    assert_eq!(
        log.disconnected,
        [DisconnectReason::ServerDisconnect(
            ReasonCode::UseAnotherServer
        )]
    );
    assert_eq!(log.connected.len(), 2);
}

// ---------------------------------------------------------------------------
// CONNACK refusals.

/// Connection refusal codes not retried: the same CONNECT would be
/// refused again.
const PERMANENT: [ReasonCode; 6] = [
    ReasonCode::UnsupportedProtocolVersion,
    ReasonCode::ClientIdentifierNotValid,
    ReasonCode::BadUserNameOrPassword,
    ReasonCode::NotAuthorized,
    ReasonCode::Banned,
    ReasonCode::BadAuthenticationMethod,
];

/// Refusals that say "not now" or "not here": retried.
const TRANSIENT: [ReasonCode; 6] = [
    ReasonCode::ServerUnavailable,
    ReasonCode::ServerBusy,
    ReasonCode::QuotaExceeded,
    ReasonCode::UseAnotherServer,
    ReasonCode::ServerMoved,
    ReasonCode::ConnectionRateExceeded,
];

/// Every refusal fails `connect` with `RefusedV5(code)`, runs
/// `on_disconnect(RefusedV5(code))` once, and closes the stream; the
/// client sends nothing after its CONNECT.
#[tokio::test(start_paused = true)]
async fn connack_refusal_fails_connect() {
    for code in PERMANENT.into_iter().chain(TRANSIENT) {
        let (io, mut broker) = pipe5();
        let mut buffers = Bufs::new();
        let mut c = client5(Queue::with(io), config5(), buffers.slices());
        let props: &[Property<'_>] = if code == ReasonCode::UseAnotherServer {
            &[Property::ServerReference("other.example")]
        } else {
            &[Property::ReasonString("no")]
        };
        broker.send(&refusal(code, props)).await;
        let result = within("connect", c.connect()).await.map_err(kind);
        assert_eq!(result, Err(Error::Broker(BrokerError::RefusedV5(code))));
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::RefusedV5(code)]
        );
        assert!(c.user_data().connected.is_empty());
        assert!(!c.is_connected());
        let sent = broker.until_eof().await;
        assert_eq!(sent.len(), 1, "{code:?}: {sent:?}");
    }
}

/// `run_for` gives up at once on a permanent refusal (0x87 not
/// authorized, and the others of its kind): the error comes back with no
/// virtual time passing, and the connector is not asked again.
#[tokio::test(start_paused = true)]
async fn run_for_returns_a_permanent_refusal_at_once() {
    for code in PERMANENT {
        let (first, mut broker1) = pipe5();
        let (second, _broker2) = pipe5();
        let queue = Queue::with(first);
        queue.push(second);
        let mut buffers = Bufs::new();
        let mut c = client5(queue.clone(), config5(), buffers.slices());
        broker1.send(&refusal(code, &[])).await;
        let start = Instant::now();
        let result = within("run_for", c.run_for(MDuration::from_secs(30)))
            .await
            .map_err(kind);
        assert_eq!(
            result,
            Err(Error::Broker(BrokerError::RefusedV5(code))),
            "{code:?}"
        );
        assert_eq!(start.elapsed(), Duration::ZERO, "{code:?}");
        assert_eq!(queue.opened(), 1, "{code:?}");
        assert_eq!(queue.queued(), 1, "{code:?}");
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::RefusedV5(code)]
        );
    }
}

/// `run_for` retries a transient refusal (0x89 server busy, and the
/// others of its kind) after its backoff: the connector is asked again
/// and the second broker's CONNACK connects.
#[tokio::test(start_paused = true)]
async fn run_for_retries_a_transient_refusal() {
    for code in TRANSIENT {
        let (first, mut broker1) = pipe5();
        let (second, mut broker2) = pipe5();
        let queue = Queue::with(first);
        queue.push(second);
        let mut buffers = Bufs::new();
        let mut c = client5(queue.clone(), config5(), buffers.slices());
        broker1.send(&refusal(code, &[])).await;
        broker2.send(&connack(&[])).await;
        within("run_for", async {
            while !c.is_connected() {
                c.run_for(MDuration::from_millis(100))
                    .await
                    .map_err(kind)
                    .expect("a transient refusal is retried");
            }
        })
        .await;
        assert_eq!(queue.opened(), 2, "{code:?}");
        let log = c.user_data();
        assert_eq!(log.disconnected, [DisconnectReason::RefusedV5(code)]);
        assert_eq!(log.connected.len(), 1);
        assert!(matches!(broker1.recv5().await, Rx5::Connect { .. }));
        assert_eq!(broker1.until_eof().await, []);
        assert!(matches!(broker2.recv5().await, Rx5::Connect { .. }));
    }
}

// ---------------------------------------------------------------------------
// The limits a CONNACK sets on us.

/// Receive Maximum 2 in the CONNACK: two QoS 1 messages in flight fill
/// our window (of 8), a third is refused without waiting, and a PUBACK
/// opens it again. QoS 0 is not limited.
#[tokio::test(start_paused = true)]
async fn connack_receive_maximum_limits_our_window() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(
        &mut c,
        &mut broker,
        &connack(&[Property::ReceiveMaximum(2)]),
    )
    .await;
    assert_eq!(c.session().limits().receive_maximum, 2);
    assert_eq!(c.user_data().connected[0].receive_maximum, Some(2));
    let a = c.try_publish("t", b"1", QoS::AtLeastOnce, false).await;
    let b = c.try_publish("t", b"2", QoS::AtLeastOnce, false).await;
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert!(!c.session().can_publish());
    let third = c.try_publish("t", b"3", QoS::AtLeastOnce, false).await;
    assert_eq!(
        third.map_err(kind),
        Err(Error::Resource(ResourceError::InflightFull))
    );
    c.publish("t", b"0", QoS::AtMostOnce, false)
        .await
        .expect("QoS 0 is outside the window");
    for id in [a, b] {
        assert!(matches!(
            broker.recv5().await,
            Rx5::Publish { packet_id: Some(got), .. } if got == id
        ));
    }
    assert!(matches!(
        broker.recv5().await,
        Rx5::Publish {
            qos: QoS::AtMostOnce,
            ..
        }
    ));
    broker.send(&puback(a, ReasonCode::Success, &[])).await;
    within("wait_published", c.wait_published(a))
        .await
        .expect("acknowledged");
    assert!(c.session().can_publish());
    c.try_publish("t", b"3", QoS::AtLeastOnce, false)
        .await
        .expect("room again");
}

/// Maximum QoS 1: a QoS 2 publish is refused (MQTT-3.2.2-11) before
/// anything is sent, and the connection stays up; QoS 1 still goes.
/// Maximum QoS 0 refuses QoS 1 too.
#[tokio::test(start_paused = true)]
async fn connack_maximum_qos_refuses_higher_qos() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[Property::MaximumQoS(1)])).await;
    let refused = c.publish("t", b"x", QoS::ExactlyOnce, false).await;
    assert_eq!(unsupported(refused.map_err(kind)), "QoS");
    assert!(c.is_connected());
    let id = c
        .publish("t", b"x", QoS::AtLeastOnce, false)
        .await
        .expect("QoS 1 is allowed");
    // The first thing the broker sees is the QoS 1 message.
    assert_eq!(
        broker.recv5().await,
        Rx5::Publish {
            topic: "t".into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            packet_id: id,
            len: 9,
        }
    );

    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[Property::MaximumQoS(0)])).await;
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let refused = c.publish("t", b"x", qos, false).await;
        assert_eq!(unsupported(refused.map_err(kind)), "QoS");
    }
    c.publish("t", b"x", QoS::AtMostOnce, false)
        .await
        .expect("QoS 0");
    assert!(matches!(
        broker.recv5().await,
        Rx5::Publish {
            qos: QoS::AtMostOnce,
            ..
        }
    ));
}

/// Retain Available 0: a retained publish is refused (MQTT-3.2.2-14),
/// nothing is sent, the connection stays up.
#[tokio::test(start_paused = true)]
async fn connack_retain_unavailable_refuses_retained() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(
        &mut c,
        &mut broker,
        &connack(&[Property::RetainAvailable(0)]),
    )
    .await;
    let refused = c.publish("t", b"x", QoS::AtMostOnce, true).await;
    assert_eq!(unsupported(refused.map_err(kind)), "Retain");
    assert!(c.is_connected());
    c.publish("t", b"y", QoS::AtMostOnce, false)
        .await
        .expect("not retained");
    assert!(matches!(
        broker.recv5().await,
        Rx5::Publish { retain: false, .. }
    ));
}

/// Maximum Packet Size 100: a PUBLISH of 101 bytes is refused with
/// `PacketTooLarge` and never sent (MQTT-3.1.2-24); one of exactly 100
/// goes out; the connection stays up.
#[tokio::test(start_paused = true)]
async fn connack_maximum_packet_size_refuses_bigger_publishes() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(
        &mut c,
        &mut broker,
        &connack(&[Property::MaximumPacketSize(100)]),
    )
    .await;
    // QoS 1: 2 of fixed header, 3 of topic, 2 of packet id, 1 of
    // properties, and the payload.
    let refused = c.publish("t", &[0; 93], QoS::AtLeastOnce, false).await;
    assert_eq!(
        refused.map_err(kind),
        Err(Error::Resource(ResourceError::PacketTooLarge {
            len: 101,
            max: 100
        }))
    );
    assert!(c.is_connected());
    assert_eq!(c.session().inflight(), 0);
    let id = c
        .publish("t", &[0; 92], QoS::AtLeastOnce, false)
        .await
        .expect("100 bytes");
    assert_eq!(
        broker.recv5().await,
        Rx5::Publish {
            topic: "t".into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            packet_id: id,
            len: 100,
        }
    );
}

/// Server Keep Alive replaces the keep-alive we asked for
/// (MQTT-3.2.2-21): we sent 60 s, the CONNACK says 5 s, and PINGREQs
/// come every 4.5 s (a tenth earlier than the keep-alive, at least half a
/// second), not every 54 s.
#[tokio::test(start_paused = true)]
async fn server_keep_alive_replaces_ours() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    let connect = connect5(
        &mut c,
        &mut broker,
        &connack(&[Property::ServerKeepAlive(5)]),
    )
    .await;
    assert!(matches!(connect, Rx5::Connect { keep_alive: 60, .. }));
    assert_eq!(c.user_data().connected[0].server_keep_alive, Some(5));
    let start = Instant::now();
    let (result, times) = within("poll", async {
        tokio::join!(c.poll(MDuration::from_secs(12)), async {
            let mut times = Vec::new();
            for _ in 0..2 {
                assert_eq!(broker.recv5().await, Rx5::PingReq);
                times.push(start.elapsed());
                broker.send(&PINGRESP).await;
            }
            times
        })
    })
    .await;
    result.map_err(kind).expect("answered pings");
    assert_eq!(
        times,
        [Duration::from_millis(4500), Duration::from_millis(9000)]
    );
}

/// Server Keep Alive 0 turns keep-alive off: no PINGREQ in ten minutes,
/// though we asked for 60 s.
#[tokio::test(start_paused = true)]
async fn server_keep_alive_0_turns_pings_off() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(
        &mut c,
        &mut broker,
        &connack(&[Property::ServerKeepAlive(0)]),
    )
    .await;
    let (result, got) = within("poll", async {
        tokio::join!(
            c.poll(MDuration::from_secs(600)),
            broker.try_recv5(Duration::from_secs(599))
        )
    })
    .await;
    assert_eq!(result.map_err(kind), Ok(Handled::default()));
    assert_eq!(got, None, "nothing sent");
    assert!(c.is_connected());
}

/// The limits belong to the connection whose CONNACK set them: after a
/// reconnect whose CONNACK sets none, nothing is limited any more and the
/// keep-alive is ours again (PINGREQ after 54 s of our 60, not 4.5 s).
#[tokio::test(start_paused = true)]
async fn connack_limits_are_per_connection() {
    let (first, mut broker1) = pipe5();
    let (second, mut broker2) = pipe5();
    let queue = Queue::with(first);
    queue.push(second);
    let mut buffers = Bufs::new();
    let mut c = client5(queue, config5(), buffers.slices());
    connect5(
        &mut c,
        &mut broker1,
        &connack(&[
            Property::ReceiveMaximum(1),
            Property::MaximumQoS(0),
            Property::RetainAvailable(0),
            Property::MaximumPacketSize(20),
            Property::ServerKeepAlive(5),
        ]),
    )
    .await;
    let limits = *c.session().limits();
    assert_eq!(limits.receive_maximum, 1);
    assert_eq!(limits.maximum_qos, QoS::AtMostOnce);
    assert!(!limits.retain_available);
    assert_eq!(limits.maximum_packet_size, 20);
    let bye = disconnect(ReasonCode::ServerShuttingDown, &[]);
    let (result, _) = within("poll", async {
        tokio::join!(c.poll(LONG), broker1.send_then_eof(&bye))
    })
    .await;
    assert_eq!(
        result.map_err(kind),
        Err(Error::Broker(BrokerError::Disconnected(
            ReasonCode::ServerShuttingDown
        )))
    );

    connect5(&mut c, &mut broker2, &connack(&[])).await;
    assert_eq!(*c.session().limits(), Limits::NONE);
    let id = c
        .publish("t", &[0; 100], QoS::ExactlyOnce, true)
        .await
        .map_err(kind)
        .expect("no limit on this connection");
    let id = id.expect("QoS 2 has an id");
    assert!(matches!(
        broker2.recv5().await,
        Rx5::Publish { packet_id: Some(got), retain: true, qos: QoS::ExactlyOnce, len: 108, .. } if got == id
    ));
    let (done, ()) = within("wait_published", async {
        tokio::join!(c.wait_published(id), async {
            broker2.send(&pubrec(id, ReasonCode::Success, &[])).await;
            assert_eq!(broker2.recv5().await, Rx5::PubRel(id));
            broker2
                .send_packet(Packet::PubComp(v5::PubComp::new(id)))
                .await;
        })
    })
    .await;
    done.map_err(kind).expect("completed");
    // The PUBREL was the last packet sent: keep-alive counts from it.
    let start = Instant::now();
    let (result, ping) = within("poll", async {
        tokio::join!(c.poll(MDuration::from_secs(55)), async {
            let next = broker2.recv5().await;
            let at = start.elapsed();
            broker2.send(&PINGRESP).await;
            (next, at)
        })
    })
    .await;
    result.map_err(kind).expect("poll");
    assert_eq!(ping, (Rx5::PingReq, Duration::from_secs(54)));
}

/// Packets a reconnect sends by itself obey the new CONNACK's Maximum
/// Packet Size too (MQTT-3.1.2-24): here the SUBSCRIBE that re-subscribes
/// the list after a CONNACK without a session, 47 bytes, is over the
/// new maximum of 30 and must not be sent.
#[tokio::test(start_paused = true)]
async fn resubscribe_obeys_a_new_maximum_packet_size() {
    const FILTER: &str = "a/quite/long/topic/filter/for/testing/x";
    let (first, mut broker1) = pipe5();
    let (second, mut broker2) = pipe5();
    let queue = Queue::with(first);
    queue.push(second);
    let mut buffers = Bufs::new();
    let mut c = client5(queue, config5(), buffers.slices());
    connect5(&mut c, &mut broker1, &connack(&[])).await;
    let (granted, ()) = within("subscribe", async {
        tokio::join!(
            c.subscribe_with(FILTER, SubscriptionOptions::new(QoS::AtLeastOnce), None),
            async {
                let Rx5::Subscribe(id, _) = broker1.recv5().await else {
                    panic!("expected SUBSCRIBE");
                };
                let codes = [ReasonCode::GrantedQoS1];
                broker1
                    .send_packet(Packet::SubAck(v5::SubAck {
                        packet_id: id,
                        properties: Properties::EMPTY,
                        reason_codes: ReasonCodes::new(&codes),
                    }))
                    .await;
            }
        )
    })
    .await;
    assert_eq!(granted.map_err(kind), Ok(ReasonCode::GrantedQoS1));
    let bye = disconnect(ReasonCode::ServerShuttingDown, &[]);
    let (result, _) = within("poll", async {
        tokio::join!(c.poll(LONG), broker1.send_then_eof(&bye))
    })
    .await;
    assert!(result.is_err());

    broker2
        .send(&connack(&[Property::MaximumPacketSize(30)]))
        .await;
    let sizes = oversize_check(&mut c, &mut broker2, 30).await;
    assert!(
        sizes.iter().all(|&n| n <= 30),
        "packet sizes sent: {sizes:?}"
    );
}

/// The same for a QoS 1 message resent after a reconnect that resumed
/// the session: 48 bytes, over the new maximum of 30. MQTT-3.1.2-25: it
/// is discarded without being sent, as if its sending had completed.
#[tokio::test(start_paused = true)]
async fn resend_obeys_a_new_maximum_packet_size() {
    let (mut c, mut broker1, mut broker2) = resumable5(&[]).await;
    let id = c
        .publish("t", &[5; 40], QoS::AtLeastOnce, false)
        .await
        .map_err(kind)
        .expect("publish");
    assert!(matches!(
        broker1.recv5().await,
        Rx5::Publish { len: 48, .. }
    ));
    let bye = disconnect(ReasonCode::ServerShuttingDown, &[]);
    let (result, _) = within("poll", async {
        tokio::join!(c.poll(LONG), broker1.send_then_eof(&bye))
    })
    .await;
    assert!(result.is_err());
    assert!(c.session().publish_pending(id.unwrap()));

    broker2
        .send(&encode(Packet::ConnAck(v5::ConnAck {
            session_present: true,
            reason_code: ReasonCode::Success,
            properties: Properties::new(&[Property::MaximumPacketSize(30)]),
        })))
        .await;
    let sizes = oversize_check(&mut c, &mut broker2, 30).await;
    assert!(
        sizes.iter().all(|&n| n <= 30),
        "packet sizes sent: {sizes:?}"
    );
}

/// Connects `c` through `broker` (whose CONNACK is queued), then pings:
/// the sizes of the packets the broker read after the CONNECT, up to the
/// PINGREQ or the end of the stream.
async fn oversize_check(c: &mut C5<'_>, broker: &mut Broker5, max: usize) -> Vec<usize> {
    let connected = within("connect", c.connect()).await.map_err(kind);
    let (_, sizes) = within("ping", async {
        tokio::join!(
            async {
                if connected.is_ok() {
                    let _ = c.ping().await;
                }
            },
            async {
                assert!(matches!(broker.recv5().await, Rx5::Connect { .. }));
                let mut sizes = Vec::new();
                while let Some(bytes) = broker.read().await {
                    sizes.push(bytes.len());
                    if bytes.len() > max {
                        eprintln!("over {max}: {bytes:02x?}");
                    }
                    if summary(&bytes) == Rx5::PingReq {
                        broker.send(&PINGRESP).await;
                        break;
                    }
                }
                sizes
            }
        )
    })
    .await;
    sizes
}

// ---------------------------------------------------------------------------
// Reason codes and properties reaching the callbacks.

/// A PUBACK of 0x10 (no matching subscribers) or of a failure (0x87 not
/// authorized, 0x97 quota exceeded) still completes the message:
/// `on_publish` runs, and inside it `reason_code()` and `properties()`
/// give the PUBACK's. The short form is success with no properties.
#[tokio::test(start_paused = true)]
async fn puback_reason_codes_reach_on_publish() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let acks: [(ReasonCode, &[Property<'_>]); 4] = [
        (
            ReasonCode::NoMatchingSubscribers,
            &[
                Property::ReasonString("nobody listens"),
                Property::UserProperty("k", "v"),
            ],
        ),
        (
            ReasonCode::NotAuthorized,
            &[Property::ReasonString("denied")],
        ),
        (ReasonCode::QuotaExceeded, &[]),
        (ReasonCode::Success, &[]),
    ];
    let mut want = Vec::new();
    for (i, (code, props)) in acks.into_iter().enumerate() {
        let topic = format!("t/{i}");
        let id = c
            .publish(&topic, b"x", QoS::AtLeastOnce, false)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(broker.recv5().await, Rx5::Publish { .. }));
        broker.send(&puback(id, code, props)).await;
        within("wait_published", c.wait_published(id))
            .await
            .map_err(kind)
            .expect("completed, whatever the reason code");
        let properties = Properties::new(props);
        want.push(Acked {
            what: topic,
            packet_id: Some(id),
            code: Some(code),
            reason: properties.reason_string().map(str::to_owned),
            user: owned_pairs(properties.user_properties()),
        });
    }
    assert_eq!(c.user_data().published, want);
    assert_eq!(c.session().inflight(), 0);
    assert!(c.is_connected());
}

/// A PUBREC of 0x80 or above ends a QoS 2 message (MQTT 5 §4.3.3): no
/// PUBREL is sent, `on_publish` runs with the code, the window is free.
/// A PUBREC of 0x10 is a success: PUBREL, then PUBCOMP completes it.
#[tokio::test(start_paused = true)]
async fn pubrec_failure_ends_qos2_without_pubrel() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;

    let id = c
        .publish("q2", b"x", QoS::ExactlyOnce, false)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(broker.recv5().await, Rx5::Publish { .. }));
    broker
        .send(&pubrec(
            id,
            ReasonCode::QuotaExceeded,
            &[Property::ReasonString("full")],
        ))
        .await;
    within("wait_published", c.wait_published(id))
        .await
        .map_err(kind)
        .expect("refused is complete");
    assert_eq!(c.session().inflight(), 0);
    // The next packet the broker sees is the PINGREQ of a ping: no PUBREL.
    let (pinged, next) = within("ping", async {
        tokio::join!(c.ping(), async {
            let next = broker.recv5().await;
            broker.send(&PINGRESP).await;
            next
        })
    })
    .await;
    pinged.map_err(kind).expect("pong");
    assert_eq!(next, Rx5::PingReq);

    let id2 = c
        .publish("q2/ok", b"x", QoS::ExactlyOnce, false)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(broker.recv5().await, Rx5::Publish { .. }));
    broker
        .send(&pubrec(id2, ReasonCode::NoMatchingSubscribers, &[]))
        .await;
    let (done, ()) = within("wait_published", async {
        tokio::join!(c.wait_published(id2), async {
            assert_eq!(broker.recv5().await, Rx5::PubRel(id2));
            broker
                .send_packet(Packet::PubComp(v5::PubComp::new(id2)))
                .await;
        })
    })
    .await;
    done.map_err(kind).expect("PUBCOMP completes it");
    assert_eq!(
        c.user_data().published,
        [
            Acked {
                what: "q2".into(),
                packet_id: Some(id),
                code: Some(ReasonCode::QuotaExceeded),
                reason: Some("full".into()),
                user: vec![],
            },
            Acked {
                what: "q2/ok".into(),
                packet_id: Some(id2),
                code: Some(ReasonCode::Success),
                reason: None,
                user: vec![],
            },
        ]
    );
}

/// A SUBACK failure code reaches `subscribe_with`'s result and
/// `on_subscribe` (`reason_code()`, `properties()`).
#[tokio::test(start_paused = true)]
async fn suback_reason_codes_reach_on_subscribe() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let (granted, ()) = within("subscribe", async {
        tokio::join!(
            c.subscribe_with("secret/#", SubscriptionOptions::new(QoS::AtLeastOnce), None),
            async {
                let Rx5::Subscribe(id, filters) = broker.recv5().await else {
                    panic!("expected SUBSCRIBE");
                };
                assert_eq!(filters, ["secret/#"]);
                let codes = [ReasonCode::NotAuthorized];
                broker
                    .send_packet(Packet::SubAck(v5::SubAck {
                        packet_id: id,
                        properties: Properties::new(&[Property::ReasonString("acl")]),
                        reason_codes: ReasonCodes::new(&codes),
                    }))
                    .await;
            }
        )
    })
    .await;
    assert_eq!(granted.map_err(kind), Ok(ReasonCode::NotAuthorized));
    let log = c.user_data();
    assert_eq!(log.subscribed.len(), 1);
    let (acked, code) = &log.subscribed[0];
    assert_eq!(*code, SubscribeReturnCode::Failure);
    assert_eq!(acked.what, "secret/#");
    assert_eq!(acked.code, Some(ReasonCode::NotAuthorized));
    assert_eq!(acked.reason.as_deref(), Some("acl"));
    assert!(c.is_connected());
}

/// An incoming PUBLISH's properties reach `on_message` as
/// `Message::properties`; its PUBACK is the short form.
#[tokio::test(start_paused = true)]
async fn publish_properties_reach_on_message() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let props = [
        Property::PayloadFormatIndicator(1),
        Property::MessageExpiryInterval(30),
        Property::ContentType("application/json"),
        Property::ResponseTopic("reply/here"),
        Property::CorrelationData(&[1, 2, 3]),
        Property::SubscriptionIdentifier(7),
        Property::SubscriptionIdentifier(300),
        Property::UserProperty("a", "1"),
        Property::UserProperty("a", "2"),
    ];
    broker
        .send(&publish5(
            "sensors/1",
            b"{}",
            QoS::AtLeastOnce,
            Some(9),
            &props,
        ))
        .await;
    let handled = within("poll", c.poll(MDuration::from_secs(1)))
        .await
        .map_err(kind)
        .expect("poll");
    assert_eq!(handled.messages, 1);
    assert_eq!(broker.recv5().await, Rx5::PubAck(9));
    assert_eq!(
        c.user_data().messages,
        [Msg {
            topic: "sensors/1".into(),
            payload: b"{}".to_vec(),
            qos: QoS::AtLeastOnce,
            packet_id: Some(9),
            props: MsgProps {
                payload_format: Some(1),
                expiry: Some(30),
                content_type: Some("application/json".into()),
                response_topic: Some("reply/here".into()),
                correlation: Some(vec![1, 2, 3]),
                subscription_ids: vec![7, 300],
                user: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            },
        }]
    );
}

// ---------------------------------------------------------------------------
// AUTH (MQTT 5 §4.12): enhanced authentication is not implemented.

/// An AUTH the client never asked for (it sent no Authentication Method)
/// is a protocol error (MQTT-4.12.0-6): 0x82, whatever the AUTH says.
#[tokio::test(start_paused = true)]
async fn unasked_auth_is_a_protocol_error() {
    let cases = [
        vec![0xf0, 0x00],
        encode(Packet::Auth(v5::Auth {
            reason_code: ReasonCode::ContinueAuthentication,
            properties: Properties::new(&[
                Property::AuthenticationMethod("SCRAM-SHA-1"),
                Property::AuthenticationData(b"server-first"),
            ]),
        })),
        encode(Packet::Auth(v5::Auth {
            reason_code: ReasonCode::ReAuthenticate,
            properties: Properties::new(&[Property::AuthenticationMethod("SCRAM-SHA-1")]),
        })),
    ];
    for bytes in cases {
        assert_ends(
            config5(),
            &bytes,
            violation(ReasonCode::ProtocolError),
            DisconnectReason::ProtocolError,
        )
        .await;
    }
}

/// An AUTH instead of the CONNACK (a broker starting an exchange we did
/// not ask for) fails `connect` with the same protocol error.
#[tokio::test(start_paused = true)]
async fn auth_instead_of_connack_fails_connect() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    broker
        .send(&encode(Packet::Auth(v5::Auth {
            reason_code: ReasonCode::ContinueAuthentication,
            properties: Properties::new(&[Property::AuthenticationMethod("SCRAM-SHA-1")]),
        })))
        .await;
    let result = within("connect", c.connect()).await.map_err(kind);
    assert_eq!(result, Err(violation(ReasonCode::ProtocolError)));
    assert_eq!(
        c.user_data().disconnected,
        [DisconnectReason::ProtocolError]
    );
    assert!(c.user_data().connected.is_empty());
    let sent = broker.until_eof().await;
    assert_eq!(sent.len(), 1);
    assert!(matches!(sent[0], Rx5::Connect { .. }));
}

/// Enhanced authentication (MQTT 5 §4.12): the CONNECT names the method
/// and carries the first data, the broker continues with AUTH, `on_auth`
/// answers through `Context::auth`, and CONNACK ends the exchange; then
/// a re-authentication the application starts, answered the same way,
/// ends with an AUTH of reason Success.
#[tokio::test(start_paused = true)]
async fn enhanced_authentication_and_reauthentication() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let config = config_with(&[
        Property::AuthenticationMethod("SCRAM-SHA-1"),
        Property::AuthenticationData(b"client-first"),
    ]);
    let mut c = client5(Queue::with(io), config, buffers.slices());
    c.user_data_mut().answer = b"client-final".to_vec();
    let auth = |code, data: &'static [u8]| {
        encode(Packet::Auth(v5::Auth {
            reason_code: code,
            properties: Properties::new(&[
                Property::AuthenticationMethod("SCRAM-SHA-1"),
                Property::AuthenticationData(data),
            ]),
        }))
    };
    let (result, ()) = within("the exchange", async {
        tokio::join!(c.connect(), async {
            let connect = broker.recv5().await;
            assert!(
                matches!(&connect, Rx5::Connect { authentication_method: Some(m), .. } if m == "SCRAM-SHA-1"),
                "{connect:?}"
            );
            broker
                .send(&auth(ReasonCode::ContinueAuthentication, b"server-first"))
                .await;
            assert_eq!(
                broker.recv5().await,
                Rx5::Auth(
                    ReasonCode::ContinueAuthentication,
                    Some("SCRAM-SHA-1".into()),
                    Some(b"client-final".to_vec())
                )
            );
            // A successful CONNACK names the method too (MQTT-4.12.0-5).
            broker
                .send(&connack(&[Property::AuthenticationMethod("SCRAM-SHA-1")]))
                .await;
        })
    })
    .await;
    result.map_err(kind).expect("connect");
    assert_eq!(
        c.user_data().auths,
        [(
            ReasonCode::ContinueAuthentication,
            Some(b"server-first".to_vec())
        )]
    );
    assert_eq!(c.user_data().connected.len(), 1);

    // Re-authentication, started by the application.
    c.user_data_mut().answer = b"again-final".to_vec();
    within("reauthenticate", c.reauthenticate(b"again-first"))
        .await
        .map_err(kind)
        .expect("reauthenticate");
    assert_eq!(
        broker.recv5().await,
        Rx5::Auth(
            ReasonCode::ReAuthenticate,
            Some("SCRAM-SHA-1".into()),
            Some(b"again-first".to_vec())
        )
    );
    let (result, ()) = within("the second exchange", async {
        tokio::join!(c.poll(MDuration::from_millis(500)), async {
            broker
                .send(&auth(ReasonCode::ContinueAuthentication, b"challenge"))
                .await;
            assert_eq!(
                broker.recv5().await,
                Rx5::Auth(
                    ReasonCode::ContinueAuthentication,
                    Some("SCRAM-SHA-1".into()),
                    Some(b"again-final".to_vec())
                )
            );
            broker.send(&auth(ReasonCode::Success, b"done")).await;
        })
    })
    .await;
    result.map_err(kind).expect("poll");
    assert_eq!(
        c.user_data().auths[1..],
        [
            (
                ReasonCode::ContinueAuthentication,
                Some(b"challenge".to_vec())
            ),
            (ReasonCode::Success, Some(b"done".to_vec())),
        ]
    );
    assert!(c.is_connected());
    // A Success out of turn (no re-authentication under way) is a
    // protocol error.
    let (result, ()) = within("a stray success", async {
        tokio::join!(c.poll(LONG), async {
            broker.send(&auth(ReasonCode::Success, b"")).await;
        })
    })
    .await;
    assert_eq!(
        result.map_err(kind),
        Err(violation(ReasonCode::ProtocolError))
    );
}

/// A re-authentication the broker never answers ends the connection
/// after the CONNACK timeout, as `Error::Timeout(AckKind::Auth)`, with
/// the transport closed and `on_disconnect` told.
#[tokio::test(start_paused = true)]
async fn an_unanswered_reauthentication_times_out() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let config = Config {
        keep_alive_secs: 0,
        ..config_with(&[
            Property::AuthenticationMethod("SCRAM-SHA-1"),
            Property::AuthenticationData(b"client-first"),
        ])
    };
    let mut c = client5(Queue::with(io), config, buffers.slices());
    let method = [Property::AuthenticationMethod("SCRAM-SHA-1")];
    connect5(&mut c, &mut broker, &connack(&method)).await;
    within("reauthenticate", c.reauthenticate(b"again"))
        .await
        .map_err(kind)
        .expect("reauthenticate");
    assert!(matches!(
        broker.recv5().await,
        Rx5::Auth(ReasonCode::ReAuthenticate, ..)
    ));
    let started = Instant::now();
    let result = within("the timeout", c.poll(MDuration::from_secs(60)))
        .await
        .map_err(kind);
    assert_eq!(result, Err(Error::Timeout(minimqtt::AckKind::Auth)));
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(c.user_data().disconnected, [DisconnectReason::Timeout]);
    assert!(!c.is_connected());
    assert!(broker.until_eof().await.is_empty());
}

/// Without an Authentication Method in the CONNECT there is nothing to
/// answer or re-authenticate.
#[tokio::test(start_paused = true)]
async fn reauthentication_needs_an_authentication_method() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let result = within("reauthenticate", c.reauthenticate(b"x"))
        .await
        .map_err(kind);
    assert_eq!(unsupported(result), "Authentication");
    assert!(c.is_connected());
}

/// A server DISCONNECT too large for the receive buffer (a long Reason
/// String: valid, as we advertised no Maximum Packet Size) is still one:
/// its reason code comes first and is read; its properties are skipped,
/// and nothing is sent back.
#[tokio::test(start_paused = true)]
async fn a_server_disconnect_too_large_to_buffer_keeps_its_reason_code() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let reason = "r".repeat(1500);
    let bye = disconnect(
        ReasonCode::UseAnotherServer,
        &[
            Property::ServerReference("other.example:1883"),
            Property::ReasonString(&reason),
        ],
    );
    assert!(bye.len() > 1024);
    let (result, (sent, _)) = within("the goodbye", async {
        tokio::join!(c.poll(LONG), broker.send_then_eof(&bye))
    })
    .await;
    assert_eq!(sent, [], "nothing is sent after the server's DISCONNECT");
    assert_eq!(
        result.map_err(kind),
        Err(Error::Broker(BrokerError::Disconnected(
            ReasonCode::UseAnotherServer
        )))
    );
    assert_eq!(
        c.user_data().disconnected,
        [DisconnectReason::ServerDisconnect(
            ReasonCode::UseAnotherServer
        )]
    );
}

/// An AUTH too large for the receive buffer (1,500 bytes of
/// Authentication Data) is well formed, but its data cannot be handed
/// over in parts: the connection ends with 0x95 Packet too large, not as
/// if the broker had sent a malformed packet.
#[tokio::test(start_paused = true)]
async fn an_auth_too_large_to_buffer_is_too_large_not_malformed() {
    static AUTH: [Property<'static>; 1] = [Property::AuthenticationMethod("SCRAM-SHA-1")];
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config_with(&AUTH), buffers.slices());
    let ok = connack(&[Property::AuthenticationMethod("SCRAM-SHA-1")]);
    connect5(&mut c, &mut broker, &ok).await;
    within("reauthenticate", c.reauthenticate(b"first"))
        .await
        .map_err(kind)
        .expect("reauthenticate");
    let got = broker.recv5().await;
    assert!(
        matches!(got, Rx5::Auth(ReasonCode::ReAuthenticate, ..)),
        "{got:?}"
    );
    let data = vec![0x55u8; 1500];
    let big = encode(Packet::Auth(v5::Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: Properties::new(&[
            Property::AuthenticationMethod("SCRAM-SHA-1"),
            Property::AuthenticationData(&data),
        ]),
    }));
    let (result, (sent, _)) = within("poll", async {
        tokio::join!(c.poll(LONG), broker.send_then_eof(&big))
    })
    .await;
    let too_large = violation(ReasonCode::PacketTooLarge);
    assert_eq!(result.map_err(kind), Err(too_large));
    assert_goodbye(&sent, &too_large);
}

/// A server DISCONNECT's Reason String and Server Reference reach
/// `on_disconnect` through its context.
#[tokio::test(start_paused = true)]
async fn a_server_disconnect_tells_on_disconnect_why() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let bye = disconnect(
        ReasonCode::UseAnotherServer,
        &[
            Property::ReasonString("moving"),
            Property::ServerReference("other.example:1883"),
        ],
    );
    let (result, ()) = within("the goodbye", async {
        tokio::join!(c.poll(LONG), broker.send(&bye))
    })
    .await;
    assert_eq!(
        result.map_err(kind),
        Err(Error::Broker(BrokerError::Disconnected(
            ReasonCode::UseAnotherServer
        )))
    );
    assert_eq!(
        c.user_data().goodbyes,
        [(
            Some(ReasonCode::UseAnotherServer),
            Some("moving".to_owned()),
            Some("other.example:1883".to_owned())
        )]
    );
    assert_eq!(
        c.user_data().disconnected,
        [DisconnectReason::ServerDisconnect(
            ReasonCode::UseAnotherServer
        )]
    );
    assert_eq!(broker.until_eof().await, []);
}

/// A Topic Alias Maximum for the broker's aliases is advertised as given,
/// up to `SUBS` (8 here), the aliases the client keeps; the broker's
/// aliases then reach `on_message` as their topics.
#[tokio::test(start_paused = true)]
async fn the_brokers_topic_aliases_reach_on_message() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let config = config_with(&[Property::TopicAliasMaximum(100)]);
    let mut c = client5(Queue::with(io), config, buffers.slices());
    let connect = connect5(&mut c, &mut broker, &connack(&[])).await;
    assert!(
        matches!(
            connect,
            Rx5::Connect {
                topic_alias_maximum: Some(8),
                ..
            }
        ),
        "{connect:?}"
    );
    let with_alias = |topic: &'static str, alias: u16| {
        encode(Packet::Publish(v5::Publish {
            properties: Properties::new(&[Property::TopicAlias(alias)]),
            ..v5::Publish::new(topic, b"x", QoS::AtMostOnce, false)
        }))
    };
    broker.send(&with_alias("sensor/1", 8)).await;
    broker.send(&with_alias("", 8)).await;
    within("two messages", async {
        while c.user_data().messages.len() < 2 {
            c.poll(MDuration::from_millis(10))
                .await
                .map_err(kind)
                .expect("poll");
        }
    })
    .await;
    let topics: Vec<_> = c
        .user_data()
        .messages
        .iter()
        .map(|m| m.topic.clone())
        .collect();
    assert_eq!(topics, ["sensor/1", "sensor/1"]);
    // Alias 9 is over what was advertised.
    let over = with_alias("t", 9);
    let (result, ()) = within("alias 9", async {
        tokio::join!(c.poll(LONG), broker.send(&over))
    })
    .await;
    assert_eq!(
        result.map_err(kind),
        Err(violation(ReasonCode::TopicAliasInvalid))
    );
}

/// A client id the broker assigned (our CONNECT had none) is the one the
/// next connection sends, so the session is found again; `client_id()`
/// says it.
#[tokio::test(start_paused = true)]
async fn an_assigned_client_id_is_used_again() {
    let (first, mut broker1) = pipe5();
    let (second, mut broker2) = pipe5();
    let queue = Queue::with(first);
    queue.push(second);
    let mut buffers = Bufs::new();
    let config = Config {
        clean_session: false,
        ..Config::new("")
    };
    let config = Config {
        version: Version::V5,
        ..config
    };
    let mut c = client5(queue, config, buffers.slices());
    let assigned = "auto-6F8E3AF4-51A2-4B65-9D1C-2A3B4C5D6E7F";
    let connect = connect5(
        &mut c,
        &mut broker1,
        &connack(&[Property::AssignedClientIdentifier(assigned)]),
    )
    .await;
    assert!(
        matches!(&connect, Rx5::Connect { client_id, .. } if client_id.is_empty()),
        "{connect:?}"
    );
    assert_eq!(c.client_id(), assigned);
    c.abort();
    drop(broker1);
    let present = encode(Packet::ConnAck(v5::ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: Properties::EMPTY,
    }));
    let connect = connect5(&mut c, &mut broker2, &present).await;
    assert!(
        matches!(&connect, Rx5::Connect { client_id, .. } if client_id == assigned),
        "{connect:?}"
    );
    assert!(c.session().session_present());
}

/// A broker that resumes the session with a lower Receive Maximum: the
/// resends keep to it too (MQTT 5 §4.9), one at a time with a maximum of
/// 1, each after the previous one's PUBACK, in order; other packets (a
/// PINGREQ) do not wait behind them, and new messages wait for the window.
#[tokio::test(start_paused = true)]
async fn resends_keep_to_a_lowered_receive_maximum() {
    let (mut c, mut broker1, mut broker2) = resumable5(&[]).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = within("publish", c.publish("t", b"x", QoS::AtLeastOnce, false))
            .await
            .map_err(kind)
            .expect("publish");
        ids.push(id.expect("an id"));
        assert!(matches!(broker1.recv5().await, Rx5::Publish { .. }));
    }
    let bye = disconnect(ReasonCode::ServerShuttingDown, &[]);
    let (result, _) = within("poll", async {
        tokio::join!(c.poll(LONG), broker1.send_then_eof(&bye))
    })
    .await;
    assert!(result.is_err());

    broker2
        .send(&encode(Packet::ConnAck(v5::ConnAck {
            session_present: true,
            reason_code: ReasonCode::Success,
            properties: Properties::new(&[Property::ReceiveMaximum(1)]),
        })))
        .await;
    within("connect", c.connect())
        .await
        .map_err(kind)
        .expect("connect");
    assert!(matches!(broker2.recv5().await, Rx5::Connect { .. }));
    let (pinged, seen) = within("resends", async {
        tokio::join!(
            async {
                c.ping().await.map_err(kind)?;
                // The rest go out as the PUBACKs come.
                c.wait_published(ids[2]).await.map_err(kind)
            },
            async {
                let mut seen = Vec::new();
                // One resend, then the PINGREQ: the second resend must
                // not come before the first one's PUBACK.
                for _ in 0..2 {
                    seen.push(broker2.recv5().await);
                }
                broker2.send(&PINGRESP).await;
                for &id in &ids {
                    broker2.send(&puback(id, ReasonCode::Success, &[])).await;
                    if id != ids[2] {
                        seen.push(broker2.recv5().await);
                    }
                }
                seen
            }
        )
    })
    .await;
    pinged.expect("ping and resends");
    let resent: Vec<_> = seen
        .iter()
        .map(|p| match p {
            Rx5::Publish { packet_id, .. } => Some(*packet_id),
            Rx5::PingReq => None,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        resent,
        [
            Some(Some(ids[0])),
            None,
            Some(Some(ids[1])),
            Some(Some(ids[2]))
        ]
    );
    assert_eq!(c.session().inflight(), 0);
}

type C1<'a> = Client<'a, Queue<Pipe>, TokioClock, Log, 1, 4, 8>;

/// With one request slot, a re-subscribe split in two rounds by
/// the broker's Maximum Packet Size: the driver must wait for the SUBACK
/// of the first round, not spin.
#[test]
fn resubscribe_rounds_over_the_request_slots_do_not_spin() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let (first, mut broker1) = pipe5();
            let (second, mut broker2) = pipe5();
            let queue = Queue::with(first);
            queue.push(second);
            let mut buffers = Bufs::new();
            let mut c: C1<'_> = Client::with_capacity(
                queue,
                TokioClock::new(),
                config5(),
                buffers.slices(),
                callbacks(),
                Log::default(),
            );
            broker1.send(&connack(&[])).await;
            c.connect().await.expect("connect");
            let _ = broker1.recv5().await;
            for filter in ["a/1", "b/2"] {
                let (granted, ()) = tokio::join!(c.subscribe(filter, QoS::AtMostOnce), async {
                    let Rx5::Subscribe(id, _) = broker1.recv5().await else {
                        panic!("expected SUBSCRIBE");
                    };
                    let codes = [ReasonCode::Success];
                    broker1
                        .send_packet(Packet::SubAck(v5::SubAck {
                            packet_id: id,
                            properties: Properties::EMPTY,
                            reason_codes: ReasonCodes::new(&codes),
                        }))
                        .await;
                });
                granted.expect("subscribe");
            }
            let bye = disconnect(ReasonCode::ServerShuttingDown, &[]);
            let (result, _) = tokio::join!(c.poll(LONG), broker1.send_then_eof(&bye));
            assert!(result.is_err());
            broker2
                .send(&connack(&[Property::MaximumPacketSize(12)]))
                .await;
            c.connect().await.expect("reconnect");
            let _ = broker2.recv5().await;
            // One round per SUBACK: each SUBSCRIBE of one filter is 10
            // bytes, two would be 16.
            let (_, rounds) = tokio::join!(c.run_for(MDuration::from_secs(1)), async {
                let mut rounds = Vec::new();
                for _ in 0..2 {
                    let Rx5::Subscribe(id, filters) = broker2.recv5().await else {
                        panic!("expected SUBSCRIBE");
                    };
                    rounds.push(filters);
                    let codes = [ReasonCode::Success];
                    broker2
                        .send_packet(Packet::SubAck(v5::SubAck {
                            packet_id: id,
                            properties: Properties::EMPTY,
                            reason_codes: ReasonCodes::new(&codes),
                        }))
                        .await;
                }
                rounds
            });
            tx.send(rounds).unwrap();
        });
    });
    match rx.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(rounds) => assert_eq!(rounds, [["a/1"], ["b/2"]]),
        Err(_) => panic!("the client spun for 10 s of real time without yielding"),
    }
}

/// A QoS 0 message streamed with `publish_from` keeps its head in the
/// transmit queue until it is reported, after the payload: a head that
/// fills the queue is refused at once (the connection stays up), and one a
/// byte shorter goes out whole, its payload a byte at a time.
#[tokio::test(start_paused = true)]
async fn publish_from_qos0_needs_room_beside_its_head() {
    let head_len = |topic: &str| {
        let body = [5u8; 100];
        let p = minimqtt::codec::v5::Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: None,
            properties: Properties::EMPTY,
            payload: &body,
        };
        Packet::Publish(p).encoded_len() - 100
    };
    let (long, short) = ("t".repeat(58), "t".repeat(57));
    assert_eq!((head_len(&long), head_len(&short)), (64, 63));
    let (first, mut broker) = pipe5();
    let queue = Queue::with(first);
    let mut buffers = Buffers::<1024, 64, 512>::new();
    let mut c = client5(queue, config5(), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let body = [5u8; 100];
    let mut source: &[u8] = &body;
    let refused = c
        .publish_from(&long, 100, QoS::AtMostOnce, false, &mut source)
        .await
        .map_err(kind);
    assert_eq!(
        refused,
        Err(Error::Resource(ResourceError::TransmitBufferTooSmall {
            needed: 65
        }))
    );
    assert!(c.is_connected());
    let mut source: &[u8] = &body;
    let (result, got) = tokio::join!(
        c.publish_from(&short, 100, QoS::AtMostOnce, false, &mut source),
        broker.recv5()
    );
    assert_eq!(result.map_err(kind), Ok(None));
    assert!(
        matches!(&got, Rx5::Publish { topic, len: 163, .. } if *topic == short),
        "{got:?}"
    );
    let published: Vec<_> = c
        .user_data()
        .published
        .iter()
        .map(|a| a.what.clone())
        .collect();
    assert_eq!(published, [short]);
}

/// A PINGREQ due while a QoS 0 PUBLISH that nearly fills the
/// transmit buffer is slowly written.
#[tokio::test(start_paused = true)]
async fn a_pingreq_deferred_behind_a_held_qos0_message_still_goes_out() {
    let (client, io) = tokio::io::duplex(16);
    let mut broker = Broker5 {
        io,
        buf: Vec::new(),
    };
    let queue = Queue::with(FromTokio::new(client));
    let mut buffers = Buffers::<1024, 64, 512>::new();
    let mut c = client5(queue, config5(), buffers.slices());
    broker.send(&connack(&[])).await;
    let (r, _) = tokio::join!(c.connect(), broker.recv5());
    r.expect("connect");
    let body = [3u8; 56];
    let (client_side, got) = tokio::join!(
        async {
            let r = c
                .publish("a/b", &body, QoS::AtMostOnce, false)
                .await
                .map_err(kind);
            let p = c
                .poll(MDuration::from_secs(40))
                .await
                .map_err(kind)
                .map(drop);
            (r, p)
        },
        async {
            tokio::time::sleep(Duration::from_secs(55)).await;
            let mut got = Vec::new();
            while let Some(Some(p)) = broker.try_recv5(Duration::from_secs(30)).await {
                if p == Rx5::PingReq {
                    broker.send_packet(Packet::PingResp).await;
                }
                got.push(p);
            }
            got
        }
    );
    assert!(
        matches!(got.first(), Some(Rx5::Publish { len: 64, .. })),
        "{got:?}"
    );
    assert_eq!(client_side, (Ok(None), Ok(())), "broker saw {got:?}");
}

fn republish_from_callback(ctx: &mut Ctx<'_>, _m: &Message<'_>) {
    let _ = ctx.publish("a/b", &[3u8; 56], QoS::AtMostOnce, false);
}

/// The same, with the QoS 0 message queued by a callback, so the
/// slow write happens inside `poll`'s own loop.
#[tokio::test(start_paused = true)]
async fn a_pingreq_deferred_behind_a_callbacks_held_qos0_message_still_goes_out() {
    let (client, io) = tokio::io::duplex(16);
    let mut broker = Broker5 {
        io,
        buf: Vec::new(),
    };
    let queue = Queue::with(FromTokio::new(client));
    let mut buffers = Buffers::<1024, 64, 512>::new();
    let mut c: C5<'_> = Client::new(
        queue,
        TokioClock::new(),
        config5(),
        buffers.slices(),
        Callbacks::new().on_message(republish_from_callback),
        Log::default(),
    );
    broker.send(&connack(&[])).await;
    let (r, _) = tokio::join!(c.connect(), broker.recv5());
    r.expect("connect");
    let (client_side, got) = tokio::join!(
        async {
            c.poll(MDuration::from_secs(80))
                .await
                .map_err(kind)
                .map(drop)
        },
        async {
            broker
                .send(&publish5("in", b"x", QoS::AtMostOnce, None, &[]))
                .await;
            tokio::time::sleep(Duration::from_secs(55)).await;
            let mut got = Vec::new();
            while let Some(Some(p)) = broker.try_recv5(Duration::from_secs(30)).await {
                if p == Rx5::PingReq {
                    broker.send_packet(Packet::PingResp).await;
                }
                got.push(p);
            }
            got
        }
    );
    assert!(
        matches!(got.first(), Some(Rx5::Publish { len: 64, .. })),
        "{got:?}"
    );
    assert_eq!(client_side, Ok(()), "broker saw {got:?}");
}

/// Clean start off with a Session Expiry Interval of 0: the session ends
/// when the connection closes (§3.1.2.11.2), so at the next connection the
/// client has none, and a CONNACK claiming one closes it (MQTT-3.2.2-4)
/// instead of resending the old connection's QoS 1 message.
#[tokio::test(start_paused = true)]
async fn a_session_that_expired_with_its_connection_is_not_resumed() {
    let (c1, mut b1) = tokio::io::duplex(4096);
    let (c2, mut b2) = tokio::io::duplex(4096);
    let queue = Queue::with(FromTokio::new(c1));
    queue.push(FromTokio::new(c2));
    let mut buffers = minimqtt::Buffers::<1024, 4096, 256>::new();
    let config = minimqtt::Config {
        version: Version::V5,
        clean_session: false,
        session_expiry_secs: Some(0),
        ..minimqtt::Config::new("exp0")
    };
    let mut c = minimqtt::Client::new(
        queue,
        TokioClock::new(),
        config,
        buffers.slices(),
        Callbacks::new(),
        (),
    );
    b1.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00]).await.unwrap();
    c.connect().await.expect("connect");
    c.publish("a", b"1", QoS::AtLeastOnce, false).await.unwrap();
    c.abort();
    let mut sink = Vec::new();
    b1.read_to_end(&mut sink).await.unwrap();
    // Connection 2: a CONNACK that claims a session.
    b2.write_all(&[0x20, 0x03, 0x01, 0x00, 0x00]).await.unwrap();
    let r = c.connect().await;
    assert!(r.is_err() && !c.is_connected(), "{r:?}");
    drop(c);
    let mut sent = Vec::new();
    b2.read_to_end(&mut sent).await.unwrap();
    // The CONNECT, then DISCONNECT 0x82 and nothing else: no resend.
    let after = &sent[2 + usize::from(sent[1])..];
    assert_eq!(after, [0xe0, 0x01, 0x82], "{after:02x?}");
}

/// §3.3.2.3.2 and §3.1.3.2.3: a Payload Format Indicator of 1 says the
/// payload "MUST be well-formed UTF-8". A message or a will that is not is
/// refused with `EncodeError::PayloadFormat`, and nothing is sent: the
/// PUBLISH that follows is the next packet the broker reads; the CONNECT
/// is never written.
#[tokio::test(start_paused = true)]
async fn a_payload_marked_utf8_must_be_utf8() {
    use minimqtt::codec::{EncodeError, LastWill};
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    let utf8 = [Property::PayloadFormatIndicator(1)];
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let r = c
            .publish_with("t", &[0xff, 0xfe], qos, false, &Properties::new(&utf8))
            .await;
        assert_eq!(
            r.map_err(kind),
            Err(Error::Usage(UsageError::Encode(EncodeError::PayloadFormat)))
        );
    }
    c.publish_with(
        "t",
        "é".as_bytes(),
        QoS::AtMostOnce,
        false,
        &Properties::new(&utf8),
    )
    .await
    .unwrap();
    let got = broker.recv5().await;
    assert!(
        matches!(&got, Rx5::Publish { topic, .. } if topic == "t"),
        "{got:?}"
    );
    let idle = broker.try_recv5(Duration::from_millis(100)).await;
    assert!(idle.is_none(), "{idle:?}");

    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    static WILL_UTF8: [Property<'static>; 1] = [Property::PayloadFormatIndicator(1)];
    let config = Config {
        will: Some(LastWill {
            topic: "w",
            message: &[0xff, 0x00, 0xfe],
            qos: QoS::AtMostOnce,
            retain: false,
        }),
        will_properties: Properties::new(&WILL_UTF8),
        ..config5()
    };
    let mut c = client5(Queue::with(io), config, buffers.slices());
    broker.send(&connack(&[])).await;
    let r = within("connect", c.connect()).await.map_err(kind);
    assert_eq!(
        r,
        Err(Error::Usage(UsageError::Encode(EncodeError::PayloadFormat)))
    );
    let idle = broker.try_recv5(Duration::from_millis(100)).await;
    assert!(idle.is_none(), "{idle:?}");
}

/// MQTT 5 §4.12: the application's answer to the broker's AUTH goes out
/// before the CONNACK even with a request queued ahead of it
/// (`subscribe_later`, as the README does before `run`), which waits for
/// the CONNACK: nothing but AUTH before it (MQTT-3.1.2-30).
#[tokio::test(start_paused = true)]
async fn an_auth_answer_passes_requests_queued_before_the_connack() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let config = Config {
        keep_alive_secs: 2,
        ..config_with(&[Property::AuthenticationMethod("M")])
    };
    let mut c = client5(Queue::with(io), config, buffers.slices());
    c.user_data_mut().answer = b"a".to_vec();
    c.subscribe_later("queued", QoS::AtMostOnce).unwrap();
    let more = encode(Packet::Auth(v5::Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: Properties::new(&[Property::AuthenticationMethod("M")]),
    }));
    let (_, ()) = tokio::join!(c.run_for(MDuration::from_secs(9)), async {
        assert!(matches!(broker.recv5().await, Rx5::Connect { .. }));
        for _ in 0..3 {
            broker.send(&more).await;
            let got = broker.recv5().await;
            assert!(
                matches!(got, Rx5::Auth(ReasonCode::ContinueAuthentication, ..)),
                "{got:?}"
            );
            // Past the keep-alive: still nothing else before CONNACK.
            let idle = broker.try_recv5(Duration::from_millis(2500)).await;
            assert!(idle.is_none(), "sent before CONNACK: {idle:?}");
        }
        broker
            .send(&connack(&[Property::AuthenticationMethod("M")]))
            .await;
        let got = broker.recv5().await;
        assert!(
            matches!(&got, Rx5::Subscribe(_, f) if f == &["queued"]),
            "{got:?}"
        );
    });
}

/// `disconnect_with` writes the DISCONNECT with its reason code and closes
/// the stream; one the client may not send is refused, with the
/// connection left up and nothing written.
#[tokio::test(start_paused = true)]
async fn disconnect_with_sends_its_reason_then_closes() {
    let (io, mut broker) = pipe5();
    let mut buffers = Bufs::new();
    let mut c = client5(Queue::with(io), config5(), buffers.slices());
    connect5(&mut c, &mut broker, &connack(&[])).await;
    // Server busy is the server's to say (MQTT 5 Table 3-10).
    let busy = v5::Disconnect {
        reason_code: ReasonCode::ServerBusy,
        ..v5::Disconnect::new()
    };
    let refused = within("disconnect_with", c.disconnect_with(&busy)).await;
    assert!(
        matches!(
            refused,
            Err(Error::Usage(UsageError::Encode(
                minimqtt::codec::EncodeError::ReasonCode(0x89)
            )))
        ),
        "{refused:?}"
    );
    assert!(c.is_connected());
    // A property a DISCONNECT may not carry: refused before anything is
    // written, not once the goodbye is under way.
    static ALIAS: [Property<'static>; 1] = [Property::TopicAlias(1)];
    let aliased = v5::Disconnect {
        properties: v5::Properties::new(&ALIAS),
        ..v5::Disconnect::new()
    };
    let refused = within("disconnect_with", c.disconnect_with(&aliased)).await;
    assert!(
        matches!(
            refused,
            Err(Error::Usage(UsageError::Encode(
                minimqtt::codec::EncodeError::PropertyNotAllowed(0x23)
            )))
        ),
        "{refused:?}"
    );
    assert!(c.is_connected());
    assert_eq!(broker.try_recv5(Duration::from_millis(100)).await, None);

    let with_will = v5::Disconnect {
        reason_code: ReasonCode::DisconnectWithWillMessage,
        ..v5::Disconnect::new()
    };
    within("disconnect_with", c.disconnect_with(&with_will))
        .await
        .unwrap();
    assert!(!c.is_connected());
    assert_eq!(c.user_data().disconnected, [DisconnectReason::Requested]);
    assert_eq!(
        broker.until_eof().await,
        [Rx5::Disconnect(ReasonCode::DisconnectWithWillMessage)]
    );
}
