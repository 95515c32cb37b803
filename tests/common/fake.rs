//! A scripted fake broker on the other end of an in-memory pipe, and a
//! client wired to it, for tests that need no real broker.
//!
//! The pipe is `tokio::io::duplex`: the client gets one end wrapped in
//! `FromTokio` (an `embedded_io_async` transport), the [`FakeBroker`] the
//! other. Both directions are buffered, so a script can often run in
//! plain sequence: queue the broker's answer, run the client call, then
//! read what the client wrote. Tests run on tokio's paused clock
//! (`#[tokio::test(start_paused = true)]`) with `TokioClock`, so every
//! timeout is virtual, instant and exact.
//!
//! What the broker reads is decoded with minimqtt's own codec and turned
//! into an owned [`Rx`], so tests compare whole packets with `assert_eq!`.
//! What it writes is raw bytes, built by the helpers at the bottom (valid
//! ones through the codec, broken ones by hand).
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use super::connector::Queue;
use embedded_io_adapters::tokio_1::FromTokio;
use minimqtt::callbacks::{Connected, DisconnectReason, Dropped};
use minimqtt::codec::{ConnectReturnCode, DecodeError, Packet, PacketType, Publish};
use minimqtt::time::TokioClock;
use minimqtt::{
    BufferSlices, Callbacks, Client, Config, Context, Message, QoS, SubscribeReturnCode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

/// The client's end of a pipe.
pub type Pipe = FromTokio<DuplexStream>;

/// Room in each direction of a default pipe.
pub const PIPE_CAPACITY: usize = 64 * 1024;

/// Every test step is bounded by this much *virtual* time: a hang shows up
/// as a failure with a message, at once, instead of a stuck test.
pub const STEP: Duration = Duration::from_secs(3600);

/// A client end and a fake broker joined by a pipe with `capacity` bytes
/// of room in each direction (1 forces one-byte reads and writes).
pub fn pipe_with_capacity(capacity: usize) -> (Pipe, FakeBroker) {
    let (client, broker) = tokio::io::duplex(capacity);
    (FromTokio::new(client), FakeBroker::new(broker))
}

/// [`pipe_with_capacity`] with [`PIPE_CAPACITY`].
pub fn pipe() -> (Pipe, FakeBroker) {
    pipe_with_capacity(PIPE_CAPACITY)
}

/// Runs `future`, failing the test if it takes more than [`STEP`] of
/// virtual time (which means it hung).
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("hung: {what}"))
}

/// A packet the client sent, owned and easy to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rx {
    Connect {
        client_id: String,
        clean_session: bool,
        keep_alive: u16,
    },
    Publish(Pub),
    PubAck(u16),
    PubRec(u16),
    PubRel(u16),
    PubComp(u16),
    Subscribe {
        packet_id: u16,
        filters: Vec<(String, QoS)>,
    },
    Unsubscribe {
        packet_id: u16,
        filters: Vec<String>,
    },
    PingReq,
    Disconnect,
    /// A packet a client must never send (CONNACK, SUBACK, ...).
    ServerOnly(PacketType),
}

/// An owned PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pub {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub dup: bool,
    pub retain: bool,
    pub packet_id: Option<u16>,
}

impl Rx {
    pub fn from_packet(packet: &Packet<'_>) -> Self {
        match *packet {
            Packet::Connect(c) => Rx::Connect {
                client_id: c.client_id.to_owned(),
                clean_session: c.clean_session,
                keep_alive: c.keep_alive,
            },
            Packet::Publish(p) => Rx::Publish(Pub {
                topic: p.topic.to_owned(),
                payload: p.payload.to_vec(),
                qos: p.qos,
                dup: p.dup,
                retain: p.retain,
                packet_id: p.packet_id,
            }),
            Packet::PubAck(a) => Rx::PubAck(a.packet_id),
            Packet::PubRec(a) => Rx::PubRec(a.packet_id),
            Packet::PubRel(a) => Rx::PubRel(a.packet_id),
            Packet::PubComp(a) => Rx::PubComp(a.packet_id),
            Packet::Subscribe(s) => Rx::Subscribe {
                packet_id: s.packet_id,
                filters: s
                    .filters
                    .iter()
                    .map(|f| (f.filter.to_owned(), f.qos))
                    .collect(),
            },
            Packet::Unsubscribe(u) => Rx::Unsubscribe {
                packet_id: u.packet_id,
                filters: u.filters.iter().map(str::to_owned).collect(),
            },
            Packet::PingReq => Rx::PingReq,
            Packet::Disconnect => Rx::Disconnect,
            other => Rx::ServerOnly(other.packet_type()),
        }
    }

    /// The PUBLISH inside, or a panic.
    pub fn publish(self) -> Pub {
        match self {
            Rx::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}

/// Why [`FakeBroker::read`] returned no packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEnd {
    /// The client closed the stream between packets.
    Eof,
    /// The client closed the stream with `partial` bytes of a packet sent.
    EofMidPacket { partial: usize },
    /// The client sent bytes the codec rejects: a client bug.
    Malformed(DecodeError),
}

/// The broker's end of the pipe: a reading half with a buffer, so packets
/// can be taken one at a time whatever the client's write boundaries were,
/// and a writing half. The halves can be used at the same time (`rx` and
/// `tx`), e.g. to read acknowledgements while a long write trickles out.
#[derive(Debug)]
pub struct FakeBroker {
    pub rx: BrokerRx,
    pub tx: BrokerTx,
}

/// The reading half of a [`FakeBroker`].
#[derive(Debug)]
pub struct BrokerRx {
    io: ReadHalf<DuplexStream>,
    buf: Vec<u8>,
    /// Bytes the client wrote in all.
    pub bytes_read: usize,
}

/// The writing half of a [`FakeBroker`].
#[derive(Debug)]
pub struct BrokerTx {
    io: WriteHalf<DuplexStream>,
}

impl FakeBroker {
    pub fn new(io: DuplexStream) -> Self {
        let (rd, wr) = tokio::io::split(io);
        Self {
            rx: BrokerRx {
                io: rd,
                buf: Vec::new(),
                bytes_read: 0,
            },
            tx: BrokerTx { io: wr },
        }
    }

    pub async fn read(&mut self) -> Result<Rx, ReadEnd> {
        self.rx.read().await
    }
    pub async fn recv(&mut self) -> Rx {
        self.rx.recv().await
    }
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Result<Rx, ReadEnd>> {
        self.rx.try_recv(wait).await
    }
    pub async fn expect_silence(&mut self, wait: Duration) {
        self.rx.expect_silence(wait).await
    }
    pub async fn drain(&mut self) -> (Vec<Rx>, ReadEnd) {
        self.rx.drain().await
    }
    pub async fn expect_connect(&mut self) -> (String, bool, u16) {
        self.rx.expect_connect().await
    }
    pub async fn expect_publish(&mut self) -> Pub {
        self.rx.expect_publish().await
    }
    pub async fn expect_subscribe(&mut self) -> (u16, Vec<(String, QoS)>) {
        self.rx.expect_subscribe().await
    }
    pub async fn expect_unsubscribe(&mut self) -> (u16, Vec<String>) {
        self.rx.expect_unsubscribe().await
    }
    pub async fn expect(&mut self, want: Rx) {
        self.rx.expect(want).await
    }
    pub async fn send(&mut self, bytes: &[u8]) {
        self.tx.send(bytes).await
    }
    pub async fn send_bytewise(&mut self, bytes: &[u8]) {
        self.tx.send_bytewise(bytes).await
    }
    /// CONNACK accepted, no session present.
    pub async fn connack(&mut self) {
        self.tx.send(&connack(false, 0)).await;
    }

    /// Closes the broker's end of the pipe (dropping the broker).
    pub fn close(self) {}

    /// Answers everything the client sends, like a well-behaved broker, until
    /// the stream ends: CONNACK (no session) to CONNECT, SUBACK granting the
    /// requested QoS, UNSUBACK, PUBACK / PUBREC to QoS 1 / 2 PUBLISH, PUBREL
    /// to PUBREC, PUBCOMP to PUBREL, PINGRESP. Every packet read goes to
    /// `log`; returns how the stream ended.
    pub async fn serve(self, log: Arc<Mutex<Vec<Rx>>>) -> ReadEnd {
        self.serve_with(log, Vec::new()).await
    }

    /// [`serve`](Self::serve), and right after the CONNACK, `after_connack`
    /// (messages for the client, say). Reading and writing run side by
    /// side, so a slow reader on either end never deadlocks the pipe.
    pub async fn serve_with(self, log: Arc<Mutex<Vec<Rx>>>, after_connack: Vec<u8>) -> ReadEnd {
        let FakeBroker { mut rx, mut tx } = self;
        let (out, mut queue) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let writer = async move {
            while let Some(bytes) = queue.recv().await {
                if tx.io.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        };
        let reader = async move {
            let mut script = Some(after_connack);
            loop {
                let rx = match rx.read().await {
                    Ok(rx) => rx,
                    Err(end) => return end,
                };
                log.lock().unwrap().push(rx.clone());
                let answer = match rx {
                    Rx::Connect { .. } => {
                        let mut a = connack(false, 0);
                        a.extend(script.take().unwrap_or_default());
                        a
                    }
                    Rx::Subscribe { packet_id, filters } => {
                        let codes: Vec<u8> = filters.iter().map(|(_, q)| *q as u8).collect();
                        suback(packet_id, &codes)
                    }
                    Rx::Unsubscribe { packet_id, .. } => unsuback(packet_id),
                    Rx::Publish(Pub {
                        qos: QoS::AtLeastOnce,
                        packet_id: Some(id),
                        ..
                    }) => puback(id),
                    Rx::Publish(Pub {
                        qos: QoS::ExactlyOnce,
                        packet_id: Some(id),
                        ..
                    }) => pubrec(id),
                    Rx::PubRec(id) => pubrel(id),
                    Rx::PubRel(id) => pubcomp(id),
                    Rx::PingReq => PINGRESP.to_vec(),
                    _ => continue,
                };
                let _ = out.send(answer);
            }
        };
        let (end, ()) = tokio::join!(reader, writer);
        end
    }
}

impl BrokerRx {
    /// Reads exactly one packet (or the end of the stream).
    pub async fn read(&mut self) -> Result<Rx, ReadEnd> {
        loop {
            match Packet::decode(&self.buf) {
                Ok((packet, len)) => {
                    let rx = Rx::from_packet(&packet);
                    self.buf.drain(..len);
                    return Ok(rx);
                }
                Err(DecodeError::Incomplete { .. }) => {}
                Err(e) => return Err(ReadEnd::Malformed(e)),
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    ReadEnd::Eof
                } else {
                    ReadEnd::EofMidPacket {
                        partial: self.buf.len(),
                    }
                });
            }
            self.bytes_read += n;
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next packet; panics on end of stream or a malformed packet,
    /// or when nothing arrives within [`STEP`] of virtual time.
    pub async fn recv(&mut self) -> Rx {
        match tokio::time::timeout(STEP, self.read()).await {
            Ok(Ok(rx)) => rx,
            Ok(Err(end)) => panic!("fake broker: expected a packet, got {end:?}"),
            Err(_) => panic!("fake broker: no packet from the client"),
        }
    }

    /// Whatever the client sends within `wait` of virtual time, if anything.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Result<Rx, ReadEnd>> {
        tokio::time::timeout(wait, self.read()).await.ok()
    }

    /// Panics if the client sends anything within `wait` of virtual time
    /// (closing the stream between packets is fine).
    pub async fn expect_silence(&mut self, wait: Duration) {
        match self.try_recv(wait).await {
            None | Some(Err(ReadEnd::Eof)) => {}
            Some(got) => panic!("fake broker: expected silence, got {got:?}"),
        }
    }

    /// Reads packets until the stream ends; returns them and how it ended.
    pub async fn drain(&mut self) -> (Vec<Rx>, ReadEnd) {
        let mut got = Vec::new();
        loop {
            match self.read().await {
                Ok(rx) => got.push(rx),
                Err(end) => return (got, end),
            }
        }
    }

    pub async fn expect_connect(&mut self) -> (String, bool, u16) {
        match self.recv().await {
            Rx::Connect {
                client_id,
                clean_session,
                keep_alive,
            } => (client_id, clean_session, keep_alive),
            other => panic!("expected CONNECT, got {other:?}"),
        }
    }

    pub async fn expect_publish(&mut self) -> Pub {
        self.recv().await.publish()
    }

    pub async fn expect_subscribe(&mut self) -> (u16, Vec<(String, QoS)>) {
        match self.recv().await {
            Rx::Subscribe { packet_id, filters } => (packet_id, filters),
            other => panic!("expected SUBSCRIBE, got {other:?}"),
        }
    }

    pub async fn expect_unsubscribe(&mut self) -> (u16, Vec<String>) {
        match self.recv().await {
            Rx::Unsubscribe { packet_id, filters } => (packet_id, filters),
            other => panic!("expected UNSUBSCRIBE, got {other:?}"),
        }
    }

    pub async fn expect(&mut self, want: Rx) {
        assert_eq!(self.recv().await, want);
    }
}

impl BrokerTx {
    /// Ends the broker's sending direction: the client reads end of stream.
    pub async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }

    /// Writes `bytes` in one write.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("fake broker write");
        self.io.flush().await.expect("fake broker flush");
    }

    /// Writes `bytes` one byte per write, yielding in between so the
    /// client sees them trickle in.
    pub async fn send_bytewise(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.send(std::slice::from_ref(b)).await;
            tokio::task::yield_now().await;
        }
    }
}

// ---------------------------------------------------------------------------
// Bytes a broker sends.

pub use super::wire::frame as raw;

/// CONNACK with these flags and return code, as raw bytes (any values).
pub fn connack_raw(flags: u8, code: u8) -> Vec<u8> {
    vec![0x20, 0x02, flags, code]
}

/// A valid CONNACK.
pub fn connack(session_present: bool, code: u8) -> Vec<u8> {
    connack_raw(u8::from(session_present), code)
}

/// A two-byte acknowledgement: `first` is 0x40 PUBACK, 0x50 PUBREC, 0x62
/// PUBREL, 0x70 PUBCOMP, 0xb0 UNSUBACK.
pub fn ack(first: u8, packet_id: u16) -> Vec<u8> {
    let [hi, lo] = packet_id.to_be_bytes();
    vec![first, 0x02, hi, lo]
}

pub fn puback(id: u16) -> Vec<u8> {
    ack(0x40, id)
}
pub fn pubrec(id: u16) -> Vec<u8> {
    ack(0x50, id)
}
pub fn pubrel(id: u16) -> Vec<u8> {
    ack(0x62, id)
}
pub fn pubcomp(id: u16) -> Vec<u8> {
    ack(0x70, id)
}
pub fn unsuback(id: u16) -> Vec<u8> {
    ack(0xb0, id)
}
pub const PINGRESP: [u8; 2] = [0xd0, 0x00];

/// SUBACK with these raw return codes.
pub fn suback(packet_id: u16, codes: &[u8]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.extend_from_slice(codes);
    raw(0x90, &body)
}

/// A valid PUBLISH, encoded by the codec.
pub fn publish(topic: &str, payload: &[u8], qos: QoS, packet_id: Option<u16>) -> Vec<u8> {
    publish_with(topic, payload, qos, packet_id, false, false)
}

pub fn publish_with(
    topic: &str,
    payload: &[u8],
    qos: QoS,
    packet_id: Option<u16>,
    dup: bool,
    retain: bool,
) -> Vec<u8> {
    let p = Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        payload,
    };
    let mut out = vec![0u8; Packet::Publish(p).encoded_len()];
    let n = Packet::Publish(p).encode(&mut out).expect("valid PUBLISH");
    out.truncate(n);
    out
}

/// A PUBLISH built by hand: `flags` is the low nibble of byte 0, the topic
/// any bytes, the packet id present when `id` is.
pub fn publish_raw(flags: u8, topic: &[u8], id: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let mut packet = super::wire::publish(topic, 0, id, false, None, payload);
    packet[0] |= flags;
    packet
}

// ---------------------------------------------------------------------------
// A client wired for these tests: callbacks that record everything.

/// What the callbacks saw, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Log {
    pub connected: Vec<Connected<'static>>,
    pub disconnected: Vec<DisconnectReason>,
    pub messages: Vec<Pub>,
    pub subscribed: Vec<(String, SubscribeReturnCode, u16)>,
    pub unsubscribed: Vec<(String, u16)>,
    pub published: Vec<(String, Option<u16>)>,
    /// `on_message_dropped`: length and topic.
    pub dropped: Vec<(usize, Option<String>)>,
    /// `on_publish_discarded`: topic and packet id.
    pub discarded: Vec<(String, u16)>,
}

type Ctx<'c> = Context<'c, Log>;

fn on_connect(ctx: &mut Ctx<'_>, info: Connected) {
    let info = info.without_properties();
    ctx.user_data.connected.push(info);
}
fn on_disconnect(ctx: &mut Ctx<'_>, reason: DisconnectReason) {
    ctx.user_data.disconnected.push(reason);
}
fn on_message(ctx: &mut Ctx<'_>, m: &Message<'_>) {
    ctx.user_data.messages.push(Pub {
        topic: m.topic.to_owned(),
        payload: m.payload.to_vec(),
        qos: m.qos,
        dup: m.dup,
        retain: m.retain,
        packet_id: m.packet_id,
    });
}
fn on_subscribe(ctx: &mut Ctx<'_>, filter: &str, code: SubscribeReturnCode, id: u16) {
    ctx.user_data.subscribed.push((filter.to_owned(), code, id));
}
fn on_unsubscribe(ctx: &mut Ctx<'_>, filter: &str, id: u16) {
    ctx.user_data.unsubscribed.push((filter.to_owned(), id));
}
fn on_publish(ctx: &mut Ctx<'_>, topic: &str, id: Option<u16>) {
    ctx.user_data.published.push((topic.to_owned(), id));
}

fn on_message_dropped(ctx: &mut Ctx<'_>, d: &Dropped<'_>) {
    ctx.user_data
        .dropped
        .push((d.len, d.topic.map(str::to_owned)));
}
fn on_publish_discarded(ctx: &mut Ctx<'_>, topic: &str, id: u16) {
    ctx.user_data.discarded.push((topic.to_owned(), id));
}

/// Every callback, recording into [`Log`].
pub fn recording_callbacks<'r>() -> Callbacks<'r, Log> {
    Callbacks::new()
        .on_message_dropped(on_message_dropped)
        .on_publish_discarded(on_publish_discarded)
        .on_connect(on_connect)
        .on_disconnect(on_disconnect)
        .on_message(on_message)
        .on_subscribe(on_subscribe)
        .on_unsubscribe(on_unsubscribe)
        .on_publish(on_publish)
}

/// The client the tests drive: it opens the transports queued in its
/// [`Queue`] connector.
pub type TestClient<'a, T> = Client<'a, Queue<T>, TokioClock, Log>;

/// Small buffers, so oversize packets are easy to make: 256 bytes each
/// way, 2 KiB of session store, 256 of outbox.
pub type SmallBuffers = minimqtt::Buffers<256, 2304, 256>;

/// A config with short names: client id `fake`, keep-alive 60 s, clean
/// session, 10 s timeouts.
pub fn config() -> Config<'static> {
    Config::new("fake")
}

/// A client with recording callbacks whose first connection is over
/// `transport`; queue more with `client.connector_mut().push(..)`.
pub fn client<'a, T>(
    transport: T,
    config: Config<'a>,
    buffers: BufferSlices<'a>,
) -> TestClient<'a, T>
where
    T: embedded_io_async::Read + embedded_io_async::Write,
{
    Client::new(
        Queue::with(transport),
        TokioClock::new(),
        config,
        buffers,
        recording_callbacks(),
        Log::default(),
    )
}

/// Connects `client` through `broker`: queues CONNACK (session present
/// `session_present`), runs `connect`, and returns the CONNECT the broker read.
pub async fn connect<T>(
    client: &mut TestClient<'_, T>,
    broker: &mut FakeBroker,
    session_present: bool,
) -> (String, bool, u16)
where
    T: embedded_io_async::Read + embedded_io_async::Write,
    T::Error: std::fmt::Debug,
{
    broker.send(&connack(session_present, 0)).await;
    let present = within("connect", client.connect()).await.expect("connect");
    assert_eq!(present, session_present);
    broker.expect_connect().await
}

/// The CONNACK return code for `byte`.
pub fn code(byte: u8) -> ConnectReturnCode {
    ConnectReturnCode::from_u8(byte).expect("valid return code")
}
