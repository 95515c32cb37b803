//! Shared helpers for the client tests: a [`Peer`] is one minimqtt
//! [`Client`] over a tokio `TcpStream` wrapped in the reshaping
//! [`Transport`], whose callbacks record every call, with its arguments,
//! into an ordered list of [`Ev`]ents in the user data ([`Recorder`]).
//!
//! The scenarios themselves, run against every broker and transport mode,
//! are in [`scenarios`].
#![allow(dead_code)]

pub mod scenarios;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use embedded_io_adapters::tokio_1::FromTokio;
use minimqtt::callbacks::{Connected, DisconnectReason, Dropped, Part, Route, Stream};
use minimqtt::codec::varint_len;
use minimqtt::session::{Timeouts, Version};
use minimqtt::time::{Duration, TokioClock};
use minimqtt::{
    BufferSlices, Callbacks, Client, Config, Context, Error, Handled, Message, QoS,
    SubscribeReturnCode,
};
use tokio::net::TcpStream;

pub use super::transport::{Mode, StatsHandle, Transport};

/// Upper bound for any single step of a scenario.
pub const STEP: StdDuration = StdDuration::from_secs(10);

/// Which broker a scenario talks to, for the few places where they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Rumqttd,
    Mosquitto,
}

/// Where a scenario runs: the broker, and the transport mode every client
/// of the scenario uses.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    pub addr: SocketAddr,
    pub kind: BrokerKind,
    pub mode: Mode,
    /// The MQTT version every client of the scenario speaks.
    pub version: Version,
}

impl Env {
    pub fn new(addr: SocketAddr, kind: BrokerKind, mode: Mode) -> Self {
        Self {
            addr,
            kind,
            mode,
            version: Version::V3_1_1,
        }
    }

    /// The same place, speaking `version`.
    pub fn speaking(self, version: Version) -> Self {
        Self { version, ..self }
    }

    pub fn is_v5(&self) -> bool {
        self.version == Version::V5
    }

    /// Length of a PUBLISH without properties in this version.
    pub fn publish_len(&self, topic: &str, qos: QoS, payload: usize) -> usize {
        // MQTT 5 adds the property length, 0.
        publish_len(topic, qos, payload + usize::from(self.is_v5()))
    }

    /// The largest payload whose PUBLISH on `topic` fits `rx` bytes.
    pub fn max_payload(&self, rx: usize, topic: &str, qos: QoS) -> usize {
        let mut payload = rx;
        while self.publish_len(topic, qos, payload) > rx {
            payload -= 1;
        }
        payload
    }

    pub fn is_mosquitto(&self) -> bool {
        self.kind == BrokerKind::Mosquitto
    }

    /// The QoS a message published with `published` reaches a subscription
    /// granted `granted` with. MQTT-3.8.4-6 says the lower of the two, as
    /// mosquitto does; rumqttd 0.20 forwards with the subscription's QoS
    /// (`publish.qos = request.qos` in its router), even upgrading QoS 0.
    pub fn delivered(&self, published: QoS, granted: QoS) -> QoS {
        match self.kind {
            BrokerKind::Mosquitto => published.min(granted),
            BrokerKind::Rumqttd => granted,
        }
    }
}

pub type Tcp = FromTokio<TcpStream>;
pub type Net = Transport<Tcp>;
pub type TestClient = Client<'static, TcpConnector, TokioClock, Recorder>;

/// Which message callback ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The general `on_message`.
    OnMessage,
    /// The n-th topic callback added with [`Peer::route`].
    Route(usize),
}

/// A received message as a callback saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub via: Via,
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
    pub dup: bool,
}

impl Msg {
    pub fn retained(mut self) -> Self {
        self.retain = true;
        self
    }
}

/// One callback call, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Connect(Connected<'static>),
    Disconnect(DisconnectReason),
    Subscribe {
        filter: String,
        code: SubscribeReturnCode,
        pid: u16,
    },
    Unsubscribe {
        filter: String,
        pid: u16,
    },
    Publish {
        topic: String,
        pid: Option<u16>,
    },
    Message(Msg),
    /// `on_message_dropped`: a message too large for the receive buffer.
    Dropped {
        len: usize,
        topic: Option<String>,
    },
    /// `on_publish_discarded`.
    Discarded {
        topic: String,
        pid: u16,
    },
    /// A stream route saw a whole message, start to end (`payload` is
    /// what its chunks added up to; `whole` if it came as a message that
    /// fitted the receive buffer).
    Streamed {
        via: Via,
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
    },
    /// A stream route saw a message aborted after `received` bytes.
    StreamAborted {
        topic: String,
        received: usize,
    },
}

impl Ev {
    /// `on_connect` for an accepted connection without resends.
    pub fn connected(session_present: bool) -> Ev {
        Ev::Connect(Connected::new(session_present, 0, 0))
    }

    pub fn subscribed(filter: &str, granted: QoS, pid: u16) -> Ev {
        Ev::Subscribe {
            filter: filter.into(),
            code: SubscribeReturnCode::Success(granted),
            pid,
        }
    }

    pub fn unsubscribed(filter: &str, pid: u16) -> Ev {
        Ev::Unsubscribe {
            filter: filter.into(),
            pid,
        }
    }

    pub fn published(topic: &str, pid: Option<u16>) -> Ev {
        Ev::Publish {
            topic: topic.into(),
            pid,
        }
    }

    /// A message delivered through `via`, not retained, not a duplicate.
    pub fn msg(via: Via, topic: &str, payload: &[u8], qos: QoS) -> Ev {
        Ev::Message(Msg {
            via,
            topic: topic.into(),
            payload: payload.to_vec(),
            qos,
            retain: false,
            dup: false,
        })
    }

    pub fn retained_msg(via: Via, topic: &str, payload: &[u8], qos: QoS) -> Ev {
        match Ev::msg(via, topic, payload, qos) {
            Ev::Message(m) => Ev::Message(m.retained()),
            _ => unreachable!(),
        }
    }

    pub fn is_message(&self) -> bool {
        matches!(self, Ev::Message(_))
    }
}

/// What a message callback does after recording, when a message arrives on
/// `topic` (exact match): the requests go through [`Context`].
#[derive(Debug, Clone)]
pub struct Reaction {
    pub topic: String,
    pub action: Action,
}

#[derive(Debug, Clone)]
pub enum Action {
    /// Publish the received payload to `topic`.
    Publish {
        topic: String,
        qos: QoS,
        retain: bool,
    },
    Subscribe {
        filter: String,
        qos: QoS,
    },
    Unsubscribe {
        filter: String,
    },
}

/// The user data: every callback call in order, plus what callbacks do.
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: Vec<Ev>,
    /// `on_connect` queues these subscriptions through its [`Context`].
    pub subscribe_on_connect: Vec<(String, QoS)>,
    pub reactions: Vec<Reaction>,
    /// The payload of the message streaming now, per stream route.
    pub streaming: Vec<Option<Vec<u8>>>,
    /// Stream routes defer the acknowledgement of messages on these
    /// topics; the tokens wait here.
    pub defer_topics: Vec<String>,
    pub tokens: Vec<minimqtt::session::AckToken>,
}

type Ctx<'c> = Context<'c, Recorder>;

fn on_connect(ctx: &mut Ctx<'_>, info: Connected) {
    let info = info.without_properties();
    ctx.user_data.events.push(Ev::Connect(info));
    for (filter, qos) in ctx.user_data.subscribe_on_connect.clone() {
        ctx.subscribe(&filter, qos).expect("outbox has room");
    }
}

fn on_disconnect(ctx: &mut Ctx<'_>, reason: DisconnectReason) {
    ctx.user_data.events.push(Ev::Disconnect(reason));
}

fn on_subscribe(ctx: &mut Ctx<'_>, filter: &str, code: SubscribeReturnCode, pid: u16) {
    assert_ne!(pid, 0, "on_subscribe with packet id 0");
    ctx.user_data.events.push(Ev::Subscribe {
        filter: filter.into(),
        code,
        pid,
    });
}

fn on_unsubscribe(ctx: &mut Ctx<'_>, filter: &str, pid: u16) {
    assert_ne!(pid, 0, "on_unsubscribe with packet id 0");
    ctx.user_data.events.push(Ev::Unsubscribe {
        filter: filter.into(),
        pid,
    });
}

fn on_publish(ctx: &mut Ctx<'_>, topic: &str, pid: Option<u16>) {
    ctx.user_data.events.push(Ev::Publish {
        topic: topic.into(),
        pid,
    });
}

fn on_message_dropped(ctx: &mut Ctx<'_>, dropped: &Dropped<'_>) {
    ctx.user_data.events.push(Ev::Dropped {
        len: dropped.len,
        topic: dropped.topic.map(String::from),
    });
}

fn on_publish_discarded(ctx: &mut Ctx<'_>, topic: &str, pid: u16) {
    ctx.user_data.events.push(Ev::Discarded {
        topic: topic.into(),
        pid,
    });
}

fn record_message(ctx: &mut Ctx<'_>, via: Via, msg: &Message<'_>) {
    // Checked here, so events need not carry broker-chosen packet ids.
    assert_eq!(
        msg.packet_id.is_some(),
        msg.qos != QoS::AtMostOnce,
        "packet id does not match QoS: {msg:?}"
    );
    assert_ne!(msg.packet_id, Some(0), "packet id 0: {msg:?}");
    ctx.user_data.events.push(Ev::Message(Msg {
        via,
        topic: msg.topic.into(),
        payload: msg.payload.to_vec(),
        qos: msg.qos,
        retain: msg.retain,
        dup: msg.dup,
    }));
    let reactions: Vec<Reaction> = ctx
        .user_data
        .reactions
        .iter()
        .filter(|r| r.topic == msg.topic)
        .cloned()
        .collect();
    for reaction in reactions {
        let queued = match reaction.action {
            Action::Publish { topic, qos, retain } => ctx.publish(&topic, msg.payload, qos, retain),
            Action::Subscribe { filter, qos } => ctx.subscribe(&filter, qos),
            Action::Unsubscribe { filter } => ctx.unsubscribe(&filter),
        };
        queued.expect("outbox has room");
    }
}

fn on_message(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    record_message(ctx, Via::OnMessage, msg);
}

/// The n-th topic callback.
fn route<const N: usize>(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    record_message(ctx, Via::Route(N), msg);
}

fn record_stream(ctx: &mut Ctx<'_>, n: usize, s: &Stream<'_>) {
    let slots = &mut ctx.user_data.streaming;
    if slots.len() <= n {
        slots.resize(n + 1, None);
    }
    match s.part {
        Part::Start => {
            assert!(slots[n].is_none(), "a start inside a stream: {s:?}");
            slots[n] = Some(Vec::with_capacity(s.len));
        }
        Part::Chunk { offset, data } => {
            let got = slots[n].as_mut().expect("a chunk without a start");
            assert_eq!(offset, got.len(), "chunk out of order");
            assert!(offset + data.len() <= s.len, "chunk past the end");
            got.extend_from_slice(data);
        }
        Part::End => {
            let payload = slots[n].take().expect("an end without a start");
            assert_eq!(payload.len(), s.len);
            ctx.user_data.events.push(Ev::Streamed {
                via: Via::Route(n),
                topic: s.topic.into(),
                payload,
                qos: s.qos,
            });
            if ctx.user_data.defer_topics.iter().any(|t| t == s.topic) {
                let token = ctx.defer_ack().expect("defer");
                ctx.user_data.tokens.push(token);
            }
        }
        Part::Aborted => {
            let received = slots[n].take().map_or(0, |p| p.len());
            ctx.user_data.events.push(Ev::StreamAborted {
                topic: s.topic.into(),
                received,
            });
        }
    }
}

fn stream_route<const N: usize>(ctx: &mut Ctx<'_>, s: &Stream<'_>) {
    record_stream(ctx, N, s);
}

const STREAM_ROUTES: [minimqtt::callbacks::StreamCallback<Recorder>; 8] = [
    stream_route::<0>,
    stream_route::<1>,
    stream_route::<2>,
    stream_route::<3>,
    stream_route::<4>,
    stream_route::<5>,
    stream_route::<6>,
    stream_route::<7>,
];

const ROUTES: [minimqtt::callbacks::MessageCallback<Recorder>; 8] = [
    route::<0>, route::<1>, route::<2>, route::<3>, route::<4>, route::<5>, route::<6>, route::<7>,
];

/// All the callbacks, recording.
pub fn recording_callbacks() -> Callbacks<'static, Recorder> {
    Callbacks::new()
        .on_message_dropped(on_message_dropped)
        .on_publish_discarded(on_publish_discarded)
        .on_connect(on_connect)
        .on_disconnect(on_disconnect)
        .on_subscribe(on_subscribe)
        .on_unsubscribe(on_unsubscribe)
        .on_publish(on_publish)
        .on_message(on_message)
}

/// Buffer sizes of a [`Peer`].
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub rx: usize,
    pub arena: usize,
    pub outbox: usize,
}

impl Default for Sizes {
    fn default() -> Self {
        Self {
            rx: 1024,
            arena: 5120,
            outbox: 512,
        }
    }
}

impl Sizes {
    fn leak(self) -> BufferSlices<'static> {
        BufferSlices {
            rx: vec![0; self.rx].leak(),
            arena: vec![0; self.arena].leak(),
            outbox: vec![0; self.outbox].leak(),
        }
    }
}

/// Test strings live as long as the test binary; clients borrow them.
pub fn leak(s: impl Into<String>) -> &'static str {
    Box::leak(s.into().into_boxed_str())
}

/// A config with short acknowledgement timeouts, so a lost packet fails
/// the test quickly instead of hanging it.
pub fn config(client_id: &str) -> Config<'static> {
    let five = Duration::from_secs(5);
    Config {
        timeouts: Timeouts {
            connack: five,
            suback: five,
            unsuback: five,
            puback: five,
            pingresp: five,
        },
        ..Config::new(leak(client_id))
    }
}

/// Length of a PUBLISH packet with this topic, QoS and payload length.
pub fn publish_len(topic: &str, qos: QoS, payload: usize) -> usize {
    let pid = if qos == QoS::AtMostOnce { 0 } else { 2 };
    let remaining = 2 + topic.len() + pid + payload;
    1 + varint_len(remaining as u32) + remaining
}

/// The largest payload whose PUBLISH on `topic` fits `rx` bytes.
pub fn max_payload(rx: usize, topic: &str, qos: QoS) -> usize {
    let mut payload = rx;
    while publish_len(topic, qos, payload) > rx {
        payload -= 1;
    }
    payload
}

/// A deterministic seed per client id (FNV-1a).
fn seed_of(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Bounds a step of a scenario.
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A fresh TCP connection to the broker, wrapped in the env's mode.
pub async fn open(env: &Env, seed: u64) -> (Net, StatsHandle) {
    let stats = StatsHandle::default();
    let transport = connect_tcp(env, seed, stats.clone())
        .await
        .expect("TCP connect");
    (transport, stats)
}

async fn connect_tcp(env: &Env, seed: u64, stats: StatsHandle) -> std::io::Result<Net> {
    let socket = within("TCP connect", TcpStream::connect(env.addr)).await?;
    socket.set_nodelay(true)?;
    Ok(Transport::with_stats(
        FromTokio::new(socket),
        env.mode,
        seed,
        stats,
    ))
}

/// Opens a TCP connection to the env's broker for every attempt, each with
/// the next seed, recording into one [`StatsHandle`] that starts over with
/// every connection.
#[derive(Debug)]
pub struct TcpConnector {
    env: Env,
    seed: u64,
    pub connections: u64,
    stats: StatsHandle,
}

impl minimqtt::Connector for TcpConnector {
    type Transport = Net;
    type Error = std::io::Error;

    async fn connect(&mut self) -> Result<Net, std::io::Error> {
        self.connections += 1;
        self.stats.reset();
        let seed = if self.connections == 1 {
            self.seed
        } else {
            self.seed ^ self.connections
        };
        connect_tcp(&self.env, seed, self.stats.clone()).await
    }
}

/// Panics unless `actual` holds exactly the events of `expected`, in any
/// order (for events whose order the broker decides).
pub fn assert_unordered(actual: &[Ev], expected: &[Ev]) {
    let mut left: Vec<&Ev> = expected.iter().collect();
    for ev in actual {
        match left.iter().position(|e| *e == ev) {
            Some(i) => {
                left.remove(i);
            }
            None => panic!("unexpected {ev:?}\n  actual: {actual:#?}\nexpected: {expected:#?}"),
        }
    }
    assert!(
        left.is_empty(),
        "missing {left:?}\n  actual: {actual:#?}\nexpected: {expected:#?}"
    );
}

/// One client under test with its recorder and transport statistics.
pub struct Peer {
    pub client: TestClient,
    /// Statistics of the current connection (they start over with each).
    pub stats: StatsHandle,
}

impl std::ops::Deref for Peer {
    type Target = TestClient;
    fn deref(&self) -> &TestClient {
        &self.client
    }
}

impl std::ops::DerefMut for Peer {
    fn deref_mut(&mut self) -> &mut TestClient {
        &mut self.client
    }
}

impl Peer {
    /// A client over a fresh connection, not yet connected.
    pub async fn new(env: &Env, config: Config<'static>, sizes: Sizes) -> Peer {
        Self::with_recorder(env, config, sizes, Recorder::default()).await
    }

    pub async fn with_recorder(
        env: &Env,
        config: Config<'static>,
        sizes: Sizes,
        recorder: Recorder,
    ) -> Peer {
        let config = Config {
            version: env.version,
            ..config
        };
        let seed = seed_of(config.client_id);
        let stats = StatsHandle::default();
        let connector = TcpConnector {
            env: *env,
            seed,
            connections: 0,
            stats: stats.clone(),
        };
        let client = Client::new(
            connector,
            TokioClock::new(),
            config,
            sizes.leak(),
            recording_callbacks(),
            recorder,
        );
        Peer { client, stats }
    }

    /// A connected client with default config and buffers; its `on_connect`
    /// event has been checked and cleared.
    pub async fn connected(env: &Env, client_id: &str) -> Peer {
        Self::connected_with(env, config(client_id), Sizes::default()).await
    }

    pub async fn connected_with(env: &Env, config: Config<'static>, sizes: Sizes) -> Peer {
        let mut peer = Self::new(env, config, sizes).await;
        let present = peer.connect_ok().await;
        assert_eq!(peer.take(), [Ev::connected(present)]);
        peer
    }

    /// Connects, panicking on an error; returns session present.
    pub async fn connect_ok(&mut self) -> bool {
        within("connect", self.client.connect())
            .await
            .unwrap_or_else(|e| panic!("connect: {e:?}"))
    }

    /// Adds the next topic callback; returns how its messages are marked.
    pub fn route(&mut self, filter: &str) -> Via {
        let n = self.client.callbacks_mut().topic_callbacks();
        self.client
            .add_topic_callback(leak(filter), ROUTES[n])
            .expect("add topic callback");
        Via::Route(n)
    }

    /// Adds the next topic callback with a stream callback of `kind`
    /// ("stream": streams only; "both": whole messages that fit, streams
    /// otherwise); returns how its events are marked.
    pub fn stream_route(&mut self, filter: &str, kind: &str) -> Via {
        let n = self.client.callbacks_mut().topic_callbacks();
        let route = match kind {
            "stream" => Route::Stream(STREAM_ROUTES[n]),
            "both" => Route::WholeOrStream(ROUTES[n], STREAM_ROUTES[n]),
            other => panic!("route kind {other}"),
        };
        self.client
            .callbacks_mut()
            .add_route(leak(filter), route)
            .expect("add route");
        Via::Route(n)
    }

    /// Drops the connection without DISCONNECT (the next `connect` opens a
    /// new one, same mode, next seed).
    pub async fn new_connection(&mut self) {
        self.client.abort();
    }

    pub fn events(&self) -> &[Ev] {
        &self.client.user_data().events
    }

    /// The events so far, clearing the list.
    pub fn take(&mut self) -> Vec<Ev> {
        std::mem::take(&mut self.client.user_data_mut().events)
    }

    pub fn recorder_mut(&mut self) -> &mut Recorder {
        self.client.user_data_mut()
    }

    pub async fn subscribe_ok(&mut self, filter: &str, qos: QoS) -> SubscribeReturnCode {
        within("subscribe", self.client.subscribe(filter, qos))
            .await
            .unwrap_or_else(|e| panic!("subscribe {filter}: {e:?}"))
    }

    pub async fn unsubscribe_ok(&mut self, filter: &str) -> u16 {
        within("unsubscribe", self.client.unsubscribe(filter))
            .await
            .unwrap_or_else(|e| panic!("unsubscribe {filter}: {e:?}"))
    }

    /// Publishes and, for QoS 1/2, waits until the handshake completes.
    pub async fn publish_ok(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Option<u16> {
        let pid = within("publish", self.client.publish(topic, payload, qos, retain))
            .await
            .unwrap_or_else(|e| panic!("publish {topic}: {e:?}"));
        assert_eq!(pid.is_some(), qos != QoS::AtMostOnce);
        if let Some(pid) = pid {
            within("wait_published", self.client.wait_published(pid))
                .await
                .unwrap_or_else(|e| panic!("wait_published {pid}: {e:?}"));
        }
        pid
    }

    /// Publishes with `publish_from` (the payload streamed through the
    /// transmit buffer) and, for QoS 1/2, waits until it completes.
    pub async fn publish_from_ok(&mut self, topic: &str, payload: &[u8], qos: QoS) -> Option<u16> {
        let mut source = payload;
        let pid = within(
            "publish_from",
            self.client
                .publish_from(topic, payload.len(), qos, false, &mut source),
        )
        .await
        .unwrap_or_else(|e| panic!("publish_from {topic}: {e:?}"));
        if let Some(pid) = pid {
            within("wait_published", self.client.wait_published(pid))
                .await
                .unwrap_or_else(|e| panic!("wait_published {pid}: {e:?}"));
        }
        pid
    }

    /// One `poll`, bounded.
    pub async fn poll_once(
        &mut self,
        timeout: StdDuration,
    ) -> Result<Handled, Error<std::io::Error>> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        within("poll", self.client.poll(Duration::from_millis(ms))).await
    }

    /// Polls until `done` holds for the recorded events; panics on an
    /// error or after [`STEP`].
    pub async fn poll_until(&mut self, what: &str, done: impl Fn(&[Ev]) -> bool) {
        let deadline = tokio::time::Instant::now() + STEP;
        while !done(self.events()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; events: {:#?}",
                self.events()
            );
            if let Err(e) = self.poll_once(StdDuration::from_millis(50)).await {
                panic!(
                    "poll while waiting for {what}: {e:?}; events: {:#?}",
                    self.events()
                );
            }
        }
    }

    /// Polls until at least `n` events are recorded.
    pub async fn poll_events(&mut self, what: &str, n: usize) {
        self.poll_until(what, |events| events.len() >= n).await;
    }

    /// Polls until the transport statistics satisfy `done`.
    pub async fn poll_until_stats(
        &mut self,
        what: &str,
        done: impl Fn(&super::transport::Stats) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + STEP;
        while !done(&self.stats.get()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; stats: {:#?}",
                self.stats.get()
            );
            if let Err(e) = self.poll_once(StdDuration::from_millis(50)).await {
                panic!("poll while waiting for {what}: {e:?}");
            }
        }
    }

    /// Polls for `period`, panicking on errors; returns the new events.
    pub async fn idle(&mut self, period: StdDuration) -> Vec<Ev> {
        let before = self.events().len();
        let end = tokio::time::Instant::now() + period;
        loop {
            let now = tokio::time::Instant::now();
            if now >= end {
                break;
            }
            if let Err(e) = self.poll_once(end - now).await {
                panic!("poll while idle: {e:?}; events: {:#?}", self.events());
            }
        }
        self.events()[before..].to_vec()
    }

    /// Disconnects cleanly, checking `on_disconnect(Requested)`.
    pub async fn disconnect_ok(&mut self) {
        within("disconnect", self.client.disconnect())
            .await
            .unwrap_or_else(|e| panic!("disconnect: {e:?}"));
        assert_eq!(
            self.events().last(),
            Some(&Ev::Disconnect(DisconnectReason::Requested))
        );
        assert!(!self.client.is_connected());
    }
}
