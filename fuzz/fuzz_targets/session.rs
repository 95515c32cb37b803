//! The sans-IO session driven by an arbitrary sequence of operations: broker
//! bytes (structured packets, with ids picked from what is in flight, or raw
//! bytes) read through `receive_buffer` / `commit` in chunks of any size,
//! user calls with arbitrary arguments, time advancing (by a prompt driver
//! that wakes at every `poll_timeout`, or by one that stalls), partial
//! writes. Small capacities, so every "full" path is reached.
//!
//! The harness frames the broker's stream itself and uses
//! `packets_received` to tell which packets each `poll_event` call handled:
//! the last one is what the event is about, the others were handled
//! without one. A model follows what the session must remember (outgoing
//! messages and their stages, subscriptions, requests, incoming QoS 2 ids,
//! owed acknowledgements) and predicts what each packet does.
//!
//! Checked after every step:
//! - nothing panics;
//! - the in-flight messages are the model's, ids unique and non-zero, in
//!   order, with their stages, at most `INFLIGHT`; the subscription list is
//!   the model's: at most `SUBS` valid, distinct filters;
//! - every packet id the session takes is the one predicted (the next free
//!   one), so a refused call did not take one; a refused call changes
//!   neither the window nor the subscription list;
//! - `poll_transmit` never returns more than the transmit buffer, and the
//!   bytes written since `connect` decode as client packets, CONNECT first,
//!   only CONNECT / DISCONNECT before CONNACK;
//! - `poll_timeout` is `Some` while connected with acks pending (or
//!   keep-alive on), `None` when disconnected; `handle_timeout` before it
//!   changes nothing, and at it leaves no deadline at or before now;
//! - each event is about the packet handled last, and that packet had to
//!   produce it: `Connected` only for an acceptable CONNACK (which always
//!   connects), `Published` for a message in flight at the acknowledged
//!   stage, `Subscribed` pairing the request's filters with the codes,
//!   `Dropped` for a packet too large with what could be read of it;
//!   packets handled without an event must not have needed one; `Closed`
//!   for exactly the violations predicted, timeouts only from
//!   `handle_timeout` past a deadline;
//! - after `Closed` the session is disconnected with nothing to transmit
//!   and no deadline;
//! - every outgoing QoS 1/2 message ends in exactly one `Published` or
//!   `Discarded`; discards are reported first, once each, in order, and
//!   `publish_outcome` then agrees;
//! - every PUBACK / PUBREC / PUBCOMP written answers, in order, a `Message`
//!   or `Dropped` event, a duplicate QoS 2 PUBLISH or a PUBREL; once all is
//!   written, none is owed;
//! - exactly once: the model keeps each incoming QoS 2 id from delivery
//!   (or drop) until the PUBCOMP answering its PUBREL is written, except
//!   that after that PUBREL a PUBLISH without DUP is a new message; a lost
//!   connection makes every kept id a duplicate again; the oldest is
//!   evicted past `INFLIGHT`; a clean session or a broker without our
//!   session forgets them. A message is delivered exactly when the model
//!   says it is new, and `incoming_pending` is the model's count;
//! - after a reconnect the resends go first, in their original order, each
//!   PUBLISH with DUP and the original topic, payload, QoS and id, the
//!   PUBREL for a message past PUBREC (a PUBLISH instead with
//!   `republish_on_lost_session` and no session on the broker), and the
//!   re-subscription (when on) lists the unconfirmed filters;
//! - keep-alive: while connected and driven promptly, no more than K passes
//!   between packets written (the PINGREQ goes out a margin early);
//! - streaming (receive buffer of 16 to 128 bytes, messages up to 3 KB
//!   sent whole or paused mid-packet): a PUBLISH too large for the buffer
//!   streams exactly when streaming is on and its header fits with a byte
//!   to spare (else `Dropped`); `Start` repeats the packet's header, chunks
//!   follow contiguously from 0, each equal to the bytes the broker sent,
//!   `End` exactly at the length, nothing else in between; a stream cut by
//!   `connection_lost` or a timeout is `Aborted` (before the `Closed`), is
//!   not acknowledged and streams again when resent; a QoS 2 message ends
//!   at most once until released, a resend of it (or one whose PUBREC is
//!   held back) is skipped silently; `skip_stream` (driver's choice after
//!   `Start` or a chunk, or between calls) acknowledges it as a drop;
//! - deferred acknowledgements (driver's choice after each delivery):
//!   `defer_ack` gives a token for a message or a stream's end just
//!   delivered (within `INFLIGHT` held back), `NothingToDefer` at any other
//!   time; `ack` with a token of this connection queues it, one of an
//!   earlier one is `StaleAck` and sends nothing. PUBACK / PUBREC of
//!   delivered messages are written in delivery order (MQTT-4.6.0-2/3),
//!   none before its token is redeemed; PUBCOMPs and the PUBRECs of
//!   duplicates go as their packets are handled, after those free then;
//!   once all is written, only deferred ones (and those behind) are owed.
//! - streamed publishes (`publish_streamed`, payloads up to 3 KB written by
//!   the driver in pieces of its choice through `payload_buffer` and
//!   `handle_payload`, or abandoned): the broker reassembles head and
//!   payload, so every check above on what is written applies, and the
//!   payload is exactly the one generated. `poll_transmit` stops exactly
//!   at a streamed head (what is written always ends on a packet boundary
//!   or there), and returns nothing while the payload is due;
//!   `payload_due` is the model's (from offset 0, a resend's with DUP and
//!   its id, one at a time); a second `publish_streamed` is refused while
//!   one is queued; while due, the one deadline is the last write plus the
//!   PINGRESP wait, and once complete no deadline is nearer than its
//!   timeout; `payload_buffer` names the message's topic; an abandoned
//!   payload ends the connection and discards its QoS 1/2 message (one
//!   `Discarded`); without `resend_streamed` a streamed message not past
//!   PUBREC is discarded at CONNACK, one past it still gets its PUBREL.
//!
//! `FUZZ_TRACE=1` on a reproducer prints the operations, events and
//! acknowledgements written.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use minimqtt::codec::{
    ConnAck, Connect, ConnectReturnCode, DecodeError, FixedHeader, Malformed, Packet, PacketType,
    PubAck, PubComp, PubRec, PubRel, Publish, QoS, ReturnCodes, SubAck, Subscribe,
    SubscribeFilters, Subscription, UnsubAck, Unsubscribe, UnsubscribeFilters,
};
use minimqtt::session::{
    AckToken, Closed, Connected, Event, Message, Options, Outcome, Part, PayloadDue, Session,
    Stage, State, Timeouts,
};
use minimqtt::time::{Duration, Instant};
use minimqtt::topic;
use minimqtt::{ResourceError, SessionError, UsageError};

const INFLIGHT: usize = 4;
const SUBS: usize = 4;
/// The arena: transmit queue and in-flight store together.
const ARENA: usize = 288;
/// The largest receive buffer (the input picks one of 16 to 128 bytes):
/// larger packets are dropped, or streamed.
const RX: usize = 128;
/// The largest payload of a message meant to outgrow the receive buffer.
const LARGE: usize = 3000;

const TOPICS: &[&str] = &["a", "a/b", "b/c", "c", "x/y/z", "a/+", "", "$SYS/x"];
/// Topics of large messages: whether the header fits the receive buffer
/// with room to spare (streamed) depends on both lengths.
const LARGE_TOPICS: &[&str] = &[
    "a",
    "ota/fw",
    "x/y/z",
    "sensors/0123456789",
    "ota/images/0123456789abcdef/0123456789abcdef/part",
    "ota/images/0123456789abcdef/0123456789abcdef/0123456789abcdef/0123456789abcdef/part",
];
const FILTERS: &[&str] = &[
    "a",
    "a/b",
    "a/+",
    "#",
    "+/+",
    "b/#",
    "c",
    "a/#/b",
    "",
    "x/y/z",
    // Each fits a SUBSCRIBE of its own; together they outgrow the
    // transmit buffer (and nearly fill the store).
    "sensors/+/temperature/0123456789abcdef",
    "sensors/+/humidity/0123456789abcdef0123",
    "actuators/#",
];

/// `FUZZ_TRACE=1` prints what happens, to follow a crash.
static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

macro_rules! trace {
    ($($arg:tt)*) => {
        if *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some()) {
            eprintln!($($arg)*);
        }
    };
}

fn qos(bits: u8) -> QoS {
    match bits % 3 {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// Where a broker packet's id comes from.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Id {
    /// The n-th outgoing message in flight.
    Inflight(u8),
    /// The n-th SUBSCRIBE / UNSUBSCRIBE seen on the wire.
    Request(u8),
    /// The n-th incoming QoS 1/2 message id seen.
    Incoming(u8),
    Raw(u16),
}

#[derive(Arbitrary, Debug)]
enum Broker {
    Raw(Vec<u8>),
    ConnAck {
        session_present: bool,
        code: u8,
    },
    Publish {
        qos: u8,
        dup: bool,
        retain: bool,
        topic: u8,
        id: Id,
        /// Its length: past about 120 the packet outgrows the receive buffer.
        payload: u8,
    },
    PubAck(Id),
    PubRec(Id),
    PubRel(Id),
    PubComp(Id),
    SubAck {
        id: Id,
        exact: bool,
        codes: Vec<u8>,
    },
    UnsubAck(Id),
    PingResp,
    /// A packet only a client may send.
    ServerOnly(u8),
    /// A PUBLISH meant to outgrow the receive buffer: `len` (modulo
    /// `LARGE`) bytes of a pattern picked by `seed`.
    Large {
        qos: u8,
        dup: bool,
        retain: bool,
        topic: u8,
        id: Id,
        len: u16,
        seed: u8,
        /// Where the broker's bytes pause (modulo the packet's length;
        /// 0: no pause): the rest comes with `Op::Rest` or the next packet.
        cut: u16,
    },
    /// One of the last QoS 1/2 PUBLISHes sent again as the broker resends
    /// it: DUP set, the same topic, id and payload.
    Resend(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Broker(Broker),
    /// Bytes that arrive and are read without polling events: the rest of
    /// a packet split over reads, or input while disconnected.
    Partial(Vec<u8>),
    Connect {
        clean_session: bool,
        keep_alive: u8,
        empty_id: bool,
    },
    /// Connection lost, connect, write CONNECT, CONNACK accepted.
    Reconnect {
        clean_session: bool,
        keep_alive: u8,
        session_present: bool,
    },
    /// Applies from the next CONNACK (streaming: from the next packet).
    Options {
        resubscribe: bool,
        republish: bool,
        stream: bool,
        resend_streamed: bool,
    },
    /// How the driver answers the events to come, one bit per decision,
    /// used in turn: `defer`, whether to defer the acknowledgement of a
    /// message just delivered (or its stream's end, or a drop or skip);
    /// `skip`, whether to skip a stream after its start or a chunk.
    Policy {
        defer: u8,
        skip: u8,
    },
    /// Redeems the n-th token held (perhaps of an earlier connection).
    Ack(u8),
    /// `defer_ack` with nothing just delivered.
    DeferAck,
    /// `skip_stream` between calls, then maybe `defer_ack`.
    SkipStream,
    /// The rest of a packet the broker paused in.
    Rest,
    Publish {
        qos: u8,
        topic: u8,
        payload: u8,
        retain: bool,
        dup: bool,
        id: u16,
    },
    Subscribe(Vec<(u8, u8)>),
    /// One SUBSCRIBE per filter, each written and acknowledged.
    SubscribeEach(Vec<(u8, u8)>),
    Unsubscribe(Vec<u8>),
    Ping,
    Disconnect,
    ConnectionLost,
    /// Milliseconds, times 16, with the driver waking at every deadline
    /// and writing everything: the keep-alive is checked.
    Advance(u16),
    /// Jump to `poll_timeout`, promptly.
    AdvanceToDeadline,
    /// Milliseconds, times 16, in one jump with one `handle_timeout` at
    /// the end and nothing written on the way: a driver that stalled.
    Stall(u16),
    Transmit(u8),
    /// Write everything.
    Flush,
    /// `publish_streamed` of `len` (modulo `LARGE`) bytes of a pattern
    /// picked by `seed`; from now on payloads are written in pieces of at
    /// most `piece` bytes (0: as much as is asked).
    PublishStreamed {
        qos: u8,
        topic: u8,
        retain: bool,
        len: u16,
        seed: u8,
        piece: u8,
    },
    /// `abandon_payload`, whether a payload is due or not.
    AbandonPayload,
}

#[derive(Arbitrary, Debug)]
struct Input {
    timeouts: [u8; 5],
    /// Bit 0: re-subscribing off; bit 1: republish on a lost session;
    /// bit 2: streaming on; bit 3: resending streamed messages off.
    options: u8,
    /// The largest read; 0: as much as fits.
    chunk: u8,
    /// The receive buffer: 16 to 128 bytes (0: 128).
    rx: u8,
    ops: Vec<Op>,
}

/// An event, copied out of the session's borrow.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Connected(Connected<'static>),
    Message(Msg),
    Sent {
        topic: String,
    },
    Published {
        topic: String,
        packet_id: u16,
        qos: QoS,
    },
    Discarded {
        topic: String,
        packet_id: u16,
        qos: QoS,
    },
    Subscribed {
        packet_id: u16,
        filters: Vec<(String, QoS)>,
        codes: Vec<u8>,
    },
    Unsubscribed {
        packet_id: u16,
        filters: Vec<String>,
    },
    Pong,
    Dropped(Skipped),
    Stream(StreamEv),
    Closed(Closed),
}

/// A part of a streamed message, with the header every part carries.
#[derive(Debug, Clone, PartialEq)]
struct StreamEv {
    topic: String,
    qos: QoS,
    retain: bool,
    dup: bool,
    packet_id: Option<u16>,
    len: usize,
    packet_len: usize,
    part: PartEv,
}

#[derive(Debug, Clone, PartialEq)]
enum PartEv {
    Start,
    Chunk { offset: usize, data: Vec<u8> },
    End,
    Aborted,
}

#[derive(Debug, Clone, PartialEq)]
struct Msg {
    dup: bool,
    qos: QoS,
    retain: bool,
    topic: String,
    packet_id: Option<u16>,
    payload: Vec<u8>,
}

impl Msg {
    fn of(p: &Message<'_>) -> Self {
        Self {
            dup: p.dup,
            qos: p.qos,
            retain: p.retain,
            topic: p.topic.to_owned(),
            packet_id: p.packet_id,
            payload: p.payload.to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Skipped {
    len: usize,
    packet_type: PacketType,
    topic: Option<String>,
    qos: QoS,
    packet_id: Option<u16>,
}

fn sub_list(filters: SubscribeFilters<'_>) -> Vec<(String, QoS)> {
    filters
        .iter()
        .map(|s| (s.filter.to_owned(), s.qos))
        .collect()
}

fn own(event: Event<'_>) -> Ev {
    match event {
        Event::Connected(c) => Ev::Connected(c.without_properties()),
        Event::Message(p) => Ev::Message(Msg::of(&p)),
        Event::Sent { topic } => Ev::Sent {
            topic: topic.to_owned(),
        },
        Event::Published {
            topic,
            packet_id,
            qos,
            ..
        } => Ev::Published {
            topic: topic.to_owned(),
            packet_id,
            qos,
        },
        Event::Discarded {
            topic,
            packet_id,
            qos,
        } => Ev::Discarded {
            topic: topic.to_owned(),
            packet_id,
            qos,
        },
        Event::Subscribed {
            packet_id,
            filters,
            codes,
            ..
        } => Ev::Subscribed {
            packet_id,
            filters: sub_list(filters),
            codes: codes.iter().map(|c| c.to_u8()).collect(),
        },
        Event::Unsubscribed {
            packet_id, filters, ..
        } => Ev::Unsubscribed {
            packet_id,
            filters: filters.iter().map(str::to_owned).collect(),
        },
        Event::Pong => Ev::Pong,
        Event::Dropped(d) => Ev::Dropped(Skipped {
            len: d.len,
            packet_type: d.packet_type,
            topic: d.topic.map(str::to_owned),
            qos: d.qos,
            packet_id: d.packet_id,
        }),
        Event::Stream(st) => Ev::Stream(StreamEv {
            topic: st.topic.to_owned(),
            qos: st.qos,
            retain: st.retain,
            dup: st.dup,
            packet_id: st.packet_id,
            len: st.len,
            packet_len: st.packet_len(),
            part: match st.part {
                Part::Start => PartEv::Start,
                Part::Chunk { offset, data } => PartEv::Chunk {
                    offset,
                    data: data.to_vec(),
                },
                Part::End => PartEv::End,
                Part::Aborted => PartEv::Aborted,
            },
        }),
        Event::Closed(c) => Ev::Closed(c),
        // MQTT 5's; this model connects with 3.1.1 only.
        #[allow(unreachable_patterns)]
        other => panic!("{other:?} on an MQTT 3.1.1 connection"),
    }
}

/// A packet of the broker's stream as the session must have framed it.
#[derive(Debug)]
enum Item {
    /// A whole packet that fits the receive buffer: its bytes.
    Packet(Vec<u8>),
    /// A packet too large for it: its length and the bytes sent of it.
    TooLarge { len: usize, bytes: Vec<u8> },
}

impl Item {
    fn packet(&self) -> Option<Packet<'_>> {
        match self {
            Item::Packet(bytes) => Some(Packet::decode(bytes).expect("framed before").0),
            Item::TooLarge { .. } => None,
        }
    }

    fn packet_type(&self) -> PacketType {
        let first = match self {
            Item::Packet(b) | Item::TooLarge { bytes: b, .. } => b[0],
        };
        PacketType::from_byte(first).expect("framed before")
    }

    /// What is malformed about a PUBLISH too large for a buffer of `rx`
    /// bytes, as far as the buffer holds it: once the topic's length is
    /// held, a topic (and a QoS 1/2 packet id behind it) running past the
    /// packet's end; and an id of 0, read as it passes behind a topic
    /// that fills the buffer, once its bytes were sent.
    fn head_malformed(&self, rx: usize) -> Option<Malformed> {
        let Item::TooLarge { len, bytes } = self else {
            return None;
        };
        let header = FixedHeader::decode(bytes).expect("framed before");
        let h = usize::from(header.header_len);
        let qos = (header.flags >> 1) & 3;
        if header.packet_type != PacketType::Publish || h + 2 > rx {
            return None;
        }
        let topic_end =
            h + 2 + usize::from(u16::from_be_bytes([*bytes.get(h)?, *bytes.get(h + 1)?]));
        let id_end = topic_end + if qos == 0 { 0 } else { 2 };
        if id_end > *len {
            return Some(Malformed::Truncated);
        }
        if qos == 0 || id_end <= rx {
            return None;
        }
        let zero = bytes.get(topic_end..id_end) == Some(&[0, 0][..]);
        zero.then_some(Malformed::PacketId)
    }

    /// What the session can read of a packet too large for its buffer of
    /// `rx` bytes (topic and id if both fit, else the id, read as it passes,
    /// when the buffer holds the topic's length), its DUP flag, and where
    /// its payload starts when a payload byte fits behind the header too
    /// (it can be streamed).
    fn dropped(&self, rx: usize) -> (Skipped, bool, Option<usize>) {
        let Item::TooLarge { len, bytes } = self else {
            panic!("{self:?} is no dropped packet");
        };
        let header = FixedHeader::decode(bytes).expect("framed before");
        let mut drop = Skipped {
            len: *len,
            packet_type: header.packet_type,
            topic: None,
            qos: QoS::AtMostOnce,
            packet_id: None,
        };
        if header.packet_type != PacketType::Publish {
            return (drop, false, None);
        }
        drop.qos = QoS::from_bits((header.flags >> 1) & 3).expect("valid flags");
        let h = usize::from(header.header_len);
        let mut payload_at = None;
        if h + 2 <= rx {
            let topic_len = usize::from(u16::from_be_bytes([bytes[h], bytes[h + 1]]));
            let topic_end = h + 2 + topic_len;
            let id_end = topic_end + if drop.qos == QoS::AtMostOnce { 0 } else { 2 };
            if id_end <= rx {
                payload_at = (id_end < rx).then_some(id_end);
                let topic = std::str::from_utf8(&bytes[h + 2..topic_end]).expect("topic read");
                drop.topic = Some(topic.to_owned());
                drop.packet_id = (drop.qos != QoS::AtMostOnce)
                    .then(|| u16::from_be_bytes([bytes[topic_end], bytes[topic_end + 1]]));
            } else if drop.qos != QoS::AtMostOnce {
                // A topic longer than the buffer: the id is read as it
                // passes, and the event comes then (the bytes sent by
                // then hold it).
                let id = bytes
                    .get(topic_end..id_end)
                    .unwrap_or_else(|| panic!("{self:?} reported before its packet id"));
                drop.packet_id = Some(u16::from_be_bytes([id[0], id[1]]));
            }
        }
        (drop, header.flags & 0b1000 != 0, payload_at)
    }
}

/// Whether `bytes` start a SUBACK of `len` bytes, too large for a buffer
/// of `rx` bytes, that the session reads in two parts: its packet id fits
/// the buffer, and so do its return codes once it has passed.
fn split_suback(bytes: &[u8], len: usize, rx: usize) -> bool {
    let Ok(header) = FixedHeader::decode(bytes) else {
        return false;
    };
    let at = usize::from(header.header_len) + 2;
    header.packet_type == PacketType::SubAck && at <= rx && len - at <= rx
}

/// An outgoing QoS 1/2 message as the model follows it.
#[derive(Debug, Clone)]
struct Out {
    id: u16,
    stage: Stage,
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    retain: bool,
    /// Published with `publish_streamed` (a payload of at least a byte):
    /// the store keeps its head only.
    streamed: bool,
}

/// The payload of a streamed PUBLISH queued, as the model follows it: set
/// when its head is queued (a resend's shows in `poll_transmit`), gone
/// when all of it is written or the connection ends.
#[derive(Debug, Clone)]
struct Due {
    payload: Vec<u8>,
    packet_id: Option<u16>,
    topic: String,
    qos: QoS,
    retain: bool,
    dup: bool,
    /// Payload bytes written.
    offset: usize,
}

#[derive(Debug, Clone, PartialEq)]
struct Sub {
    filter: String,
    qos: QoS,
    /// Granted by a SUBACK of the current broker session.
    confirmed: bool,
}

#[derive(Debug, Clone)]
enum Req {
    Subscribe(Vec<(String, QoS)>),
    Unsubscribe(Vec<String>),
}

/// An incoming QoS 2 id the session must remember.
#[derive(Debug, Clone, Copy)]
struct Kept {
    id: u16,
    /// Released by a PUBREL on this connection: the sequence number of the
    /// PUBCOMP that answered it; forgotten once that one is written.
    released: Option<u64>,
}

/// A PUBACK / PUBREC owed for a message delivered (or dropped, or its
/// stream ended or skipped): these go through the session's FIFO of
/// acknowledgements, in delivery order, held back by a deferred one.
#[derive(Debug, Clone, Copy)]
struct Pend {
    kind: PacketType,
    id: u16,
    seq: u64,
    /// Deferred, its token not redeemed yet: it and all behind it wait.
    deferred: bool,
    /// When nothing deferred was left ahead of it (the sequence number
    /// then): queued for writing at the next call, behind every direct
    /// acknowledgement owed before.
    free_at: Option<u64>,
    /// After a DISCONNECT: written only if it found room before.
    optional: bool,
}

/// A PUBCOMP, or the PUBREC of a duplicate when nothing is deferred,
/// queued as its packet is handled, ahead of the deferred acknowledgements.
#[derive(Debug, Clone, Copy)]
struct Direct {
    kind: PacketType,
    id: u16,
    seq: u64,
    /// The last `Pend` free when it was owed: those go first.
    after: u64,
}

/// The message streaming through the receive buffer, as the model sees it.
#[derive(Debug, Clone)]
struct Streaming {
    /// Its header as `Part::Start` reported it; every part repeats it.
    head: StreamEv,
    /// The packet's bytes as sent so far.
    bytes: Vec<u8>,
    /// Where its payload starts in `bytes`.
    header: usize,
    /// Payload bytes delivered.
    offset: usize,
}

/// An incoming QoS 1/2 PUBLISH the broker sent, to resend.
#[derive(Debug, Clone)]
struct SentPublish {
    qos: QoS,
    retain: bool,
    topic: &'static str,
    id: u16,
    payload: Vec<u8>,
}

struct Harness<'b> {
    s: Session<'b, INFLIGHT, SUBS>,
    now: Instant,
    chunk: usize,
    /// The receive buffer's size.
    rx: usize,
    options: Options,
    /// Bytes the broker sent and the session has not read yet.
    net: VecDeque<u8>,
    /// Bytes the broker sent not yet framed by the harness (read or not),
    /// and how much of them is the rest of a dropped packet.
    inbox: Vec<u8>,
    inbox_skip: usize,
    /// Bytes written since the transmit queue was last cleared, after the
    /// last whole packet.
    wire: Vec<u8>,
    /// The topics of the QoS 0 PUBLISHes written in full and not reported
    /// yet (`Event::Sent`), in the order written.
    written0: VecDeque<String>,
    /// Whether the next packet on the wire must be a CONNECT.
    expect_connect: bool,
    /// A CONNACK was accepted on this connection.
    connacked: bool,
    /// The clean-session flag and keep-alive of the last CONNECT.
    clean_session: bool,
    keep_alive: u8,

    // The model.
    live: Vec<Out>,
    /// Discarded by a clean-session connect, to be reported in this order.
    to_discard: VecDeque<Out>,
    subs: Vec<Sub>,
    /// SUBSCRIBE / UNSUBSCRIBE waiting for their acknowledgement.
    requests: BTreeMap<u16, Req>,
    /// The filters the session must re-subscribe after the last CONNACK,
    /// until its SUBSCRIBE is queued.
    resub_expected: Option<Vec<(String, QoS)>>,
    /// The last packet id the session took: it counts on from there.
    last_id: u16,
    incoming: Vec<Kept>,
    /// Acknowledgements owed to the broker: for delivered messages, in the
    /// order they must be written; and the others, in theirs. Each has a
    /// sequence number, counted in the order they were owed.
    pend: VecDeque<Pend>,
    direct: VecDeque<Direct>,
    ack_seq: u64,
    /// The `Pend` just owed, which `defer_ack` may take now, and whether
    /// it must (a message or a stream's end, rather than a drop or skip).
    fresh: Option<(u64, bool)>,
    /// Tokens held: each with the connection it came from.
    tokens: Vec<(AckToken, u64)>,
    /// Counts connections: a token of an earlier one is stale.
    epoch: u64,
    /// The driver's answers to come (see `Op::Policy`).
    defer_bits: u8,
    skip_bits: u8,
    /// The message streaming, from its start to its end, abort or skip.
    stream: Option<Streaming>,
    /// The last QoS 1/2 PUBLISHes the broker sent.
    sent_publishes: Vec<SentPublish>,
    /// The rest of a packet the broker paused in.
    held_back: Vec<u8>,

    /// Ids to pick broker packets' ids from.
    seen_requests: Vec<(u16, Option<usize>)>,
    incoming_ids: Vec<u16>,
    subscribe_counts: BTreeMap<u16, usize>,
    /// The resends expected after the last CONNACK, in order.
    resends: Vec<(u16, Stage)>,
    /// Ids the broker sent PUBREC for since the last CONNACK: a resend
    /// still to come for one of them goes out as PUBREL.
    pubrec_since_connack: BTreeSet<u16>,
    /// The CONNACK queued a re-subscription, which may precede the resends.
    resubscribe: bool,

    /// When the last byte was written.
    last_write: Instant,
    /// What `poll_transmit` returned last ends at a streamed head.
    ends_at_head: bool,
    /// While connected and driven promptly: the time from which the next
    /// packet must be written within the keep-alive.
    ka_base: Option<Instant>,
    /// `handle_timeout` was just called at or past a deadline: a
    /// `Closed(Timeout)` may follow.
    timeout_due: bool,
    timeouts: Timeouts,
    /// The streamed payload queued (see `Due`).
    due: Option<Due>,
    /// The largest piece of a payload the driver writes at once.
    piece: usize,
}

/// A payload whose every byte tells where it is, so chunks out of place,
/// repeated or lost show.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8) ^ usize::from(seed)) as u8)
        .collect()
}

/// The next answer of a driver's policy (see `Op::Policy`).
fn decide(bits: &mut u8) -> bool {
    let yes = *bits & 1 != 0;
    *bits = bits.rotate_right(1);
    yes
}

/// The lengths of a PUBLISH's head (fixed header, topic, id) and of the
/// whole packet, once `bytes` hold its head.
fn publish_head(bytes: &[u8]) -> Option<(usize, usize)> {
    let header = FixedHeader::decode(bytes).ok()?;
    if header.packet_type != PacketType::Publish {
        return None;
    }
    let h = usize::from(header.header_len);
    let topic = bytes.get(h..h + 2)?;
    let id = if header.flags & 0b0110 == 0 { 0 } else { 2 };
    let head = h + 2 + usize::from(u16::from_be_bytes([topic[0], topic[1]])) + id;
    let total = h + usize::try_from(header.remaining_len).ok()?;
    (bytes.len() >= head).then_some((head, total))
}

fn pick<T: Copy>(list: &[T], n: u8) -> Option<T> {
    if list.is_empty() {
        None
    } else {
        Some(list[usize::from(n) % list.len()])
    }
}

impl<'b> Harness<'b> {
    fn id(&self, id: Id) -> u16 {
        let picked = match id {
            Id::Inflight(n) => {
                let ids: Vec<u16> = self.live.iter().map(|o| o.id).collect();
                pick(&ids, n)
            }
            Id::Request(n) => {
                let ids: Vec<u16> = self.seen_requests.iter().map(|&(id, _)| id).collect();
                pick(&ids, n)
            }
            Id::Incoming(n) => pick(&self.incoming_ids, n),
            Id::Raw(raw) => Some(raw),
        };
        picked.unwrap_or(1).max(1)
    }

    fn broker(&mut self, b: Broker) {
        let mut codes_buf: Vec<u8>;
        let payload_buf: Vec<u8>;
        let mut cut = 0;
        // The broker's stream is in order: a paused packet first.
        self.rest();
        let subs = [Subscription {
            filter: "a",
            qos: QoS::AtMostOnce,
        }];
        let connect = connect_packet(true, 0, false);
        let packet = match b {
            Broker::Raw(bytes) => {
                self.send(&bytes);
                self.pump();
                return;
            }
            Broker::ConnAck {
                session_present,
                code,
            } => Packet::ConnAck(ConnAck {
                session_present: session_present && code % 8 == 0,
                return_code: ConnectReturnCode::from_u8(code % 8 % 6)
                    .unwrap_or(ConnectReturnCode::Accepted),
            }),
            Broker::Publish {
                qos: q,
                dup,
                retain,
                topic,
                id,
                payload,
            } => {
                let q = qos(q);
                let topic = TOPICS[usize::from(topic) % TOPICS.len()];
                let topic = if topic::validate_name(topic).is_ok() {
                    topic
                } else {
                    "t"
                };
                let payload = &[0x55; 255][..usize::from(payload)];
                let packet_id = (q != QoS::AtMostOnce).then(|| self.id(id));
                self.sent_publish(q, retain, topic, packet_id, payload);
                Packet::Publish(Publish {
                    dup: dup && q != QoS::AtMostOnce,
                    qos: q,
                    retain,
                    topic,
                    packet_id,
                    payload,
                })
            }
            Broker::Large {
                qos: q,
                dup,
                retain,
                topic,
                id,
                len,
                seed,
                cut: at,
            } => {
                cut = usize::from(at);
                let q = qos(q);
                let topic = LARGE_TOPICS[usize::from(topic) % LARGE_TOPICS.len()];
                payload_buf = pattern(usize::from(len) % LARGE, seed);
                let packet_id = (q != QoS::AtMostOnce).then(|| self.id(id));
                self.sent_publish(q, retain, topic, packet_id, &payload_buf);
                Packet::Publish(Publish {
                    dup: dup && q != QoS::AtMostOnce,
                    qos: q,
                    retain,
                    topic,
                    packet_id,
                    payload: &payload_buf,
                })
            }
            Broker::Resend(n) => {
                if self.sent_publishes.is_empty() {
                    return;
                }
                let i = usize::from(n) % self.sent_publishes.len();
                let p = self.sent_publishes[i].clone();
                payload_buf = p.payload;
                Packet::Publish(Publish {
                    dup: true,
                    qos: p.qos,
                    retain: p.retain,
                    topic: p.topic,
                    packet_id: Some(p.id),
                    payload: &payload_buf,
                })
            }
            Broker::PubAck(id) => Packet::PubAck(PubAck {
                packet_id: self.id(id),
            }),
            Broker::PubRec(id) => Packet::PubRec(PubRec {
                packet_id: self.id(id),
            }),
            Broker::PubRel(id) => Packet::PubRel(PubRel {
                packet_id: self.id(id),
            }),
            Broker::PubComp(id) => Packet::PubComp(PubComp {
                packet_id: self.id(id),
            }),
            Broker::UnsubAck(id) => Packet::UnsubAck(UnsubAck {
                packet_id: self.id(id),
            }),
            Broker::SubAck { id, exact, codes } => {
                let packet_id = self.id(id);
                codes_buf = codes
                    .iter()
                    .take(64)
                    .map(|&c| [0x00, 0x01, 0x02, 0x80][usize::from(c % 4)])
                    .collect();
                if let (true, Some(&n)) = (exact, self.subscribe_counts.get(&packet_id)) {
                    codes_buf.resize(n, 0x01);
                }
                if codes_buf.is_empty() {
                    codes_buf.push(0x00);
                }
                Packet::SubAck(SubAck {
                    packet_id,
                    return_codes: ReturnCodes::new(&codes_buf),
                })
            }
            Broker::PingResp => Packet::PingResp,
            Broker::ServerOnly(n) => match n % 5 {
                0 => Packet::Connect(connect),
                1 => Packet::Subscribe(Subscribe {
                    packet_id: 1,
                    filters: SubscribeFilters::new(&subs),
                }),
                2 => Packet::Unsubscribe(Unsubscribe {
                    packet_id: 1,
                    filters: UnsubscribeFilters::new(&["a"]),
                }),
                3 => Packet::PingReq,
                _ => Packet::Disconnect,
            },
        };
        let mut buf = vec![0u8; packet.encoded_len()];
        let n = packet.encode(&mut buf).expect("broker packets are valid");
        let cut = if cut % n == 0 { n } else { cut % n };
        self.held_back = buf[cut..n].to_vec();
        self.send(&buf[..cut]);
        self.pump();
    }

    /// The bytes of a paused packet arrive.
    fn rest(&mut self) {
        let rest = std::mem::take(&mut self.held_back);
        if !rest.is_empty() {
            self.send(&rest);
            self.pump();
        }
    }

    /// Notes a QoS 1/2 PUBLISH the broker sent, to resend it later.
    fn sent_publish(
        &mut self,
        qos: QoS,
        retain: bool,
        topic: &'static str,
        id: Option<u16>,
        payload: &[u8],
    ) {
        let Some(id) = id else { return };
        self.sent_publishes.push(SentPublish {
            qos,
            retain,
            topic,
            id,
            payload: payload.to_vec(),
        });
        if self.sent_publishes.len() > 8 {
            self.sent_publishes.remove(0);
        }
    }

    /// The broker's bytes reach the transport (but are not read yet).
    fn send(&mut self, bytes: &[u8]) {
        self.net.extend(bytes.iter().copied());
        let skip = self.inbox_skip.min(bytes.len());
        self.inbox_skip -= skip;
        // The rest of the packet framed last: if it streams, its chunks.
        if let Some(st) = &mut self.stream {
            st.bytes.extend_from_slice(&bytes[..skip]);
        }
        self.inbox.extend_from_slice(&bytes[skip..]);
    }

    /// Reads one chunk into the receive buffer; false when nothing was read.
    fn read(&mut self) -> bool {
        let disconnected = self.s.state() == State::Disconnected;
        let space = self.s.receive_buffer();
        let k = space.len().min(self.chunk).min(self.net.len());
        if k == 0 {
            return false;
        }
        for (dst, b) in space.iter_mut().zip(self.net.drain(..k)) {
            *dst = b;
        }
        self.s.commit(k);
        if disconnected {
            // No connection: the session drops them at its next call.
            self.drop_input();
        }
        true
    }

    /// A driver's loop over input: events drained, then more read, as long
    /// as either makes progress.
    fn pump(&mut self) {
        for _ in 0..100_000 {
            while self.poll_one() {}
            if self.s.state() == State::Disconnected {
                self.drop_input();
                return;
            }
            if !self.read() {
                return;
            }
        }
    }

    fn drop_input(&mut self) {
        self.held_back.clear();
        self.net.clear();
        self.inbox.clear();
        self.inbox_skip = 0;
    }

    /// The next packet of the broker's stream, which the session counted.
    fn next_item(&mut self) -> Item {
        match Packet::decode_limited(&self.inbox, self.rx) {
            Ok((_, n)) => Item::Packet(self.inbox.drain(..n).collect()),
            // A SUBACK whose codes fit is read in two parts, and handled as
            // a whole one.
            Err(DecodeError::TooLarge { len })
                if split_suback(&self.inbox, len, self.rx)
                    && Packet::decode(&self.inbox[..len]).is_ok() =>
            {
                Item::Packet(self.inbox.drain(..len).collect())
            }
            Err(DecodeError::TooLarge { len }) => {
                let k = len.min(self.inbox.len());
                self.inbox_skip = len - k;
                Item::TooLarge {
                    len,
                    bytes: self.inbox.drain(..k).collect(),
                }
            }
            Err(e) => panic!(
                "the session counted a packet the stream does not hold: {e:?} in {:02x?}",
                self.inbox
            ),
        }
    }

    /// One `poll_event`; false when it returned `None`.
    fn poll_one(&mut self) -> bool {
        let state = self.s.state();
        let received = self.s.packets_received();
        let event = self.s.poll_event(self.now).map(own);
        let handled = self.s.packets_received() - received;
        if let Some(Ev::Sent { topic }) = &event {
            // Before anything read, as `sent_due` promised.
            trace!("  event Sent {topic}");
            assert_eq!(handled, 0, "packets handled with a Sent");
            assert_eq!(
                self.written0.pop_front().as_ref(),
                Some(topic),
                "Sent for a message not written, or out of order"
            );
            self.check_sent_due();
            return true;
        }
        let items: Vec<Item> = (0..handled).map(|_| self.next_item()).collect();
        self.fresh = None;
        match event {
            None => {
                for item in items {
                    self.silent(state, item);
                }
                if let Some(st) = &self.stream {
                    assert!(
                        st.offset < st.head.len,
                        "all of {:?} delivered, no End",
                        st.head
                    );
                }
                assert_eq!(self.s.is_streaming(), self.stream.is_some());
                false
            }
            Some(event) => {
                trace!("  event {event:?}");
                let start_or_chunk = matches!(
                    &event,
                    Ev::Stream(st) if matches!(st.part, PartEv::Start | PartEv::Chunk { .. })
                );
                self.on_event(state, items, event);
                assert_eq!(self.s.is_streaming(), self.stream.is_some());
                // The driver's answer, before any other call.
                if start_or_chunk && decide(&mut self.skip_bits) {
                    self.skip();
                }
                if self.fresh.is_some() && decide(&mut self.defer_bits) {
                    self.defer();
                }
                self.fresh = None;
                true
            }
        }
    }

    /// `skip_stream`: the rest of the message is thrown away, and it is
    /// acknowledged as a dropped one is.
    fn skip(&mut self) {
        let state = self.s.state();
        self.s.skip_stream();
        trace!("  skip_stream");
        self.fresh = None;
        assert!(!self.s.is_streaming(), "still streaming after skip_stream");
        let Some(st) = self.stream.take() else {
            return;
        };
        if state != State::Connected {
            // Its abort was still to come: nothing to acknowledge.
            return;
        }
        let seq = match (st.head.qos, st.head.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => self.owe_pend(PacketType::PubAck, id),
            (QoS::ExactlyOnce, Some(id)) => {
                assert!(!self.is_duplicate(id, st.head.dup));
                self.keep_new(id);
                self.owe_pend(PacketType::PubRec, id)
            }
            _ => return,
        };
        self.fresh = Some((seq, false));
    }

    /// `defer_ack` right after a delivery (or none).
    fn defer(&mut self) {
        let fresh = self.fresh.take();
        let result = self.s.defer_ack();
        trace!("  defer_ack: {result:?}");
        let Some((seq, must)) = fresh else {
            assert_eq!(
                result,
                Err(SessionError::Usage(UsageError::NothingToDefer)),
                "defer_ack with nothing just delivered"
            );
            return;
        };
        let i = self
            .pend
            .iter()
            .position(|p| p.seq == seq)
            .expect("the fresh acknowledgement is owed");
        // Queued in the session now: the deferred ones and all behind them
        // surely; the free ones too if no room had let them out.
        let surely = self
            .pend
            .iter()
            .filter(|p| p.seq != seq)
            .skip_while(|p| !p.deferred)
            .count();
        let maybe = self.pend.len() - 1;
        match result {
            Ok(token) => {
                assert!(surely < INFLIGHT, "{surely} deferred and one more");
                let p = &mut self.pend[i];
                let qos = match p.kind {
                    PacketType::PubAck => QoS::AtLeastOnce,
                    _ => QoS::ExactlyOnce,
                };
                assert_eq!((token.packet_id(), token.qos()), (p.id, qos), "{p:?}");
                p.deferred = true;
                p.free_at = None;
                self.tokens.push((token, self.epoch));
            }
            Err(SessionError::Resource(ResourceError::AcksFull)) => {
                assert!(maybe >= INFLIGHT, "AcksFull with {maybe} waiting");
            }
            Err(SessionError::Usage(UsageError::NothingToDefer)) if !must => {}
            Err(e) => panic!("defer_ack of {:?}: {e:?}", self.pend[i]),
        }
    }

    /// `ack` with the n-th token held.
    fn redeem(&mut self, n: u8) {
        if self.tokens.is_empty() {
            return;
        }
        let (token, epoch) = self.tokens.remove(usize::from(n) % self.tokens.len());
        let kind = match token.qos() {
            QoS::ExactlyOnce => PacketType::PubRec,
            _ => PacketType::PubAck,
        };
        let id = token.packet_id();
        let result = self.s.ack(token);
        trace!("  ack: {result:?}");
        if epoch != self.epoch {
            assert_eq!(result, Err(SessionError::Usage(UsageError::StaleAck)));
            return;
        }
        assert_eq!(result, Ok(()), "a token of this connection refused");
        // Two deferred acknowledgements alike (a QoS 1 resend deferred
        // again) are one packet on the wire: the token frees the first.
        let p = self
            .pend
            .iter_mut()
            .find(|p| p.deferred && (p.kind, p.id) == (kind, id))
            .expect("a token's acknowledgement is owed");
        p.deferred = false;
        let now = self.ack_seq;
        for p in self.pend.iter_mut().take_while(|p| !p.deferred) {
            p.free_at.get_or_insert(now);
        }
    }

    /// The connection's end the session must declare for `item` in
    /// `state`, if any.
    fn violation(&self, state: State, item: &Item) -> Option<Closed> {
        let t = item.packet_type();
        let Some(packet) = item.packet() else {
            // Too large: skipped if it may come now, else a violation. A
            // CONNACK's body is 2 bytes: one too large is malformed.
            if state == State::Connecting && t == PacketType::ConnAck {
                return Some(Closed::Malformed(Malformed::TrailingBytes));
            }
            let ok = state == State::Connected && t != PacketType::ConnAck && t.sent_by_server();
            if !ok {
                return Some(Closed::Protocol(t));
            }
            if let Some(m) = item.head_malformed(self.rx) {
                return Some(Closed::Malformed(m));
            }
            if let Item::TooLarge { len, bytes } = item {
                if split_suback(bytes, *len, self.rx) {
                    match Packet::decode(bytes) {
                        Err(DecodeError::Malformed(m)) => return Some(Closed::Malformed(m)),
                        other => panic!("a SUBACK read in two parts: {other:?}"),
                    }
                }
            }
            // But a packet of fixed size cannot be too large: malformed.
            let fixed = matches!(
                t,
                PacketType::PubAck
                    | PacketType::PubRec
                    | PacketType::PubRel
                    | PacketType::PubComp
                    | PacketType::UnsubAck
                    | PacketType::PingResp
            );
            return fixed.then_some(Closed::Malformed(Malformed::TrailingBytes));
        };
        match (state, packet) {
            (_, p) if !p.packet_type().sent_by_server() => Some(Closed::Protocol(t)),
            (State::Connecting, Packet::ConnAck(ack)) => {
                if ack.return_code != ConnectReturnCode::Accepted {
                    Some(Closed::Refused(ack.return_code))
                } else if ack.session_present && self.clean_session {
                    Some(Closed::Protocol(t))
                } else {
                    None
                }
            }
            (State::Connected, Packet::ConnAck(_)) => Some(Closed::Protocol(t)),
            (State::Connected, Packet::SubAck(ack)) => match self.requests.get(&ack.packet_id) {
                Some(Req::Subscribe(f)) if f.len() != ack.return_codes.len() => {
                    Some(Closed::Protocol(t))
                }
                _ => None,
            },
            (State::Connected, _) => None,
            _ => Some(Closed::Protocol(t)),
        }
    }

    /// Whether a QoS 2 PUBLISH with `id` is one already delivered.
    fn is_duplicate(&self, id: u16, dup: bool) -> bool {
        self.incoming
            .iter()
            .any(|k| k.id == id && (dup || k.released.is_none()))
    }

    /// A new QoS 2 message `id` was delivered (or dropped): kept as one.
    fn keep_new(&mut self, id: u16) {
        self.incoming.retain(|k| k.id != id);
        if self.incoming.len() == INFLIGHT {
            self.incoming.remove(0);
        }
        self.incoming.push(Kept { id, released: None });
    }

    /// A delivered message's acknowledgement, through the FIFO.
    fn owe_pend(&mut self, kind: PacketType, id: u16) -> u64 {
        self.ack_seq += 1;
        let free = !self.pend.iter().any(|p| p.deferred);
        self.pend.push_back(Pend {
            kind,
            id,
            seq: self.ack_seq,
            deferred: false,
            free_at: free.then_some(self.ack_seq),
            optional: false,
        });
        self.ack_seq
    }

    /// The PUBREC of a QoS 2 message received again: none while one of
    /// its own is held back; behind the deferred acknowledgements if any
    /// wait and the session's queue of them has room (MQTT-4.6.0-3); else
    /// queued at once.
    fn owe_duplicate_pubrec(&mut self, id: u16) {
        if self.waiting(id) {
            return;
        }
        let held = self.pend.iter().skip_while(|p| !p.deferred).count();
        if held == 0 || held >= INFLIGHT {
            self.owe_direct(PacketType::PubRec, id);
        } else {
            self.owe_pend(PacketType::PubRec, id);
        }
    }

    /// An acknowledgement queued as its packet is handled.
    fn owe_direct(&mut self, kind: PacketType, id: u16) -> u64 {
        self.ack_seq += 1;
        let after = self
            .pend
            .iter()
            .take_while(|p| !p.deferred)
            .last()
            .map_or(0, |p| p.seq);
        self.direct.push_back(Direct {
            kind,
            id,
            seq: self.ack_seq,
            after,
        });
        self.ack_seq
    }

    /// Whether the session holds an acknowledgement of `id` back (the
    /// deferred ones and those behind them): a resend gets none of its own.
    fn waiting(&self, id: u16) -> bool {
        self.pend
            .iter()
            .skip_while(|p| !p.deferred)
            .any(|p| p.id == id)
    }

    /// Whether a packet too large for the receive buffer streams.
    fn streams(&self, state: State, item: &Item) -> bool {
        let (_, _, payload_at) = item.dropped(self.rx);
        self.options.stream && state == State::Connected && payload_at.is_some()
    }

    fn saw_incoming(&mut self, id: Option<u16>) {
        if let Some(id) = id {
            self.incoming_ids.push(id);
            if self.incoming_ids.len() > 8 {
                self.incoming_ids.remove(0);
            }
        }
    }

    /// A packet the session handled without an event: it must not have
    /// needed one.
    fn silent(&mut self, state: State, item: Item) {
        assert_eq!(
            self.violation(state, &item),
            None,
            "{item:?} in {state:?} went unanswered"
        );
        let Some(packet) = item.packet() else {
            // A QoS 2 resend that would stream, delivered already: skipped,
            // PUBREC'd as a resend that fits is.
            let (d, dup, _) = item.dropped(self.rx);
            assert!(
                self.streams(state, &item) && d.qos == QoS::ExactlyOnce,
                "{item:?} dropped without an event"
            );
            let id = d.packet_id.expect("QoS 2 has an id");
            assert!(
                self.is_duplicate(id, dup),
                "new streamed QoS 2 message {id} (dup {dup}) taken for a duplicate"
            );
            self.saw_incoming(Some(id));
            self.owe_duplicate_pubrec(id);
            return;
        };
        match packet {
            Packet::Publish(p) => {
                assert_eq!(p.qos, QoS::ExactlyOnce, "{p:?} not delivered");
                let id = p.packet_id.expect("QoS 2 has an id");
                assert!(
                    self.is_duplicate(id, p.dup),
                    "new QoS 2 message {id} (dup {}) taken for a duplicate",
                    p.dup
                );
                self.owe_duplicate_pubrec(id);
            }
            Packet::PubAck(PubAck { packet_id: id }) => assert!(
                !self
                    .live
                    .iter()
                    .any(|o| o.id == id && o.stage == Stage::AwaitPubAck),
                "PUBACK {id} completed nothing"
            ),
            Packet::PubComp(PubComp { packet_id: id }) => assert!(
                !self
                    .live
                    .iter()
                    .any(|o| o.id == id && o.stage == Stage::AwaitPubComp),
                "PUBCOMP {id} completed nothing"
            ),
            Packet::PubRec(PubRec { packet_id: id }) => {
                self.pubrec_since_connack.insert(id);
                if let Some(o) = self
                    .live
                    .iter_mut()
                    .find(|o| o.id == id && o.stage != Stage::AwaitPubAck)
                {
                    o.stage = Stage::AwaitPubComp;
                }
            }
            Packet::PubRel(PubRel { packet_id: id }) => {
                let seq = self.owe_direct(PacketType::PubComp, id);
                if let Some(k) = self.incoming.iter_mut().find(|k| k.id == id) {
                    k.released = Some(seq);
                }
            }
            Packet::SubAck(ack) => assert!(
                !matches!(self.requests.get(&ack.packet_id), Some(Req::Subscribe(_))),
                "SUBACK {} unanswered",
                ack.packet_id
            ),
            Packet::UnsubAck(ack) => assert!(
                !matches!(self.requests.get(&ack.packet_id), Some(Req::Unsubscribe(_))),
                "UNSUBACK {} unanswered",
                ack.packet_id
            ),
            other => panic!("{other:?} handled without an event"),
        }
    }

    fn on_event(&mut self, state: State, mut items: Vec<Item>, event: Ev) {
        if let Some(st) = &self.stream {
            // Nothing comes between a stream's start and its end or abort.
            assert!(
                matches!(&event, Ev::Stream(e) if e.part != PartEv::Start),
                "{event:?} inside the stream of {:?}",
                st.head
            );
        }
        let aborted = matches!(
            &event,
            Ev::Stream(StreamEv {
                part: PartEv::Aborted,
                ..
            })
        );
        // An abandoned payload: the abort of a stream cut short comes first.
        if let (Some(front), false) = (self.to_discard.front(), aborted) {
            assert!(
                matches!(event, Ev::Discarded { packet_id, .. } if packet_id == front.id),
                "{event:?} before the discard of {}",
                front.id
            );
        }
        if state == State::Disconnected {
            assert!(
                matches!(
                    &event,
                    Ev::Discarded { .. }
                        | Ev::Closed(_)
                        | Ev::Stream(StreamEv {
                            part: PartEv::Aborted,
                            ..
                        })
                ),
                "{event:?} while disconnected"
            );
        }
        if let Ev::Stream(st) = event {
            self.on_stream(state, items, st);
            return;
        }
        if let Ev::Closed(reason) = event {
            // The packet handled last may be the violation.
            let violator = match items.last() {
                Some(last) if self.violation(state, last) == Some(reason) => items.pop(),
                _ => None,
            };
            for item in items {
                self.silent(state, item);
            }
            match reason {
                Closed::Timeout(_) => {
                    assert!(self.timeout_due, "{reason:?} without a deadline passed");
                    assert!(violator.is_none());
                }
                Closed::Refused(_) => assert!(violator.is_some(), "{reason:?} unprovoked"),
                Closed::Protocol(t) if violator.is_none() => {
                    // Not counted: a packet only clients send, or one that
                    // may not come now, refused from its first byte.
                    let may_come = t.sent_by_server()
                        && (t == PacketType::ConnAck) == (state == State::Connecting);
                    assert!(!may_come, "{reason:?} unprovoked");
                    self.next_is_bad(reason);
                }
                Closed::Protocol(_) => {}
                // An acknowledgement or PINGRESP too large to be valid.
                Closed::Malformed(_) if violator.is_some() => {}
                Closed::Malformed(_) => self.next_is_bad(reason),
                // MQTT 5's; this model connects with 3.1.1 only.
                #[allow(unreachable_patterns)]
                other => panic!("{other:?} on an MQTT 3.1.1 connection"),
            }
            self.ended();
            assert_eq!(self.s.state(), State::Disconnected);
            assert!(self.poll_tx().is_empty(), "bytes to send after {reason:?}");
            assert_eq!(self.s.poll_timeout(), None, "a deadline after {reason:?}");
            return;
        }
        // Every other event but a discard is about the packet handled last.
        let last = match event {
            Ev::Discarded { .. } => {
                assert!(items.is_empty(), "packets handled before a discard");
                None
            }
            _ => Some(items.pop().expect("an event without a packet")),
        };
        for item in items {
            self.silent(state, item);
        }
        if let Some(last) = &last {
            assert_eq!(self.violation(state, last), None, "{last:?} gave {event:?}");
        }
        let packet = last.as_ref().and_then(Item::packet);
        match (event, packet) {
            (
                Ev::Discarded {
                    topic,
                    packet_id,
                    qos,
                },
                None,
            ) => {
                let o = self
                    .to_discard
                    .pop_front()
                    .expect("Discarded with nothing to discard");
                assert_eq!((o.id, o.topic, o.qos), (packet_id, topic, qos));
                assert_eq!(self.s.publish_outcome(packet_id), Outcome::Discarded);
            }
            (Ev::Connected(c), Some(Packet::ConnAck(ack))) => self.connected(c, ack),
            (Ev::Message(m), Some(Packet::Publish(p))) => {
                assert_eq!(state, State::Connected);
                assert_eq!(
                    m,
                    Msg::of(&p.into()),
                    "the message differs from its PUBLISH"
                );
                self.saw_incoming(m.packet_id);
                match (m.qos, m.packet_id) {
                    (QoS::AtMostOnce, _) => {}
                    (QoS::AtLeastOnce, Some(id)) => {
                        let seq = self.owe_pend(PacketType::PubAck, id);
                        self.fresh = Some((seq, true));
                    }
                    (QoS::ExactlyOnce, Some(id)) => {
                        assert!(
                            !self.is_duplicate(id, m.dup),
                            "QoS 2 message {id} (dup {}) delivered twice",
                            m.dup
                        );
                        self.keep_new(id);
                        let seq = self.owe_pend(PacketType::PubRec, id);
                        self.fresh = Some((seq, true));
                    }
                    _ => panic!("{m:?} without an id"),
                }
            }
            (
                Ev::Published {
                    topic,
                    packet_id,
                    qos,
                },
                Some(packet),
            ) => {
                let (id, stage) = match packet {
                    Packet::PubAck(a) => (a.packet_id, Stage::AwaitPubAck),
                    Packet::PubComp(c) => (c.packet_id, Stage::AwaitPubComp),
                    other => panic!("Published {packet_id} for {other:?}"),
                };
                assert_eq!(id, packet_id);
                let i = self
                    .live
                    .iter()
                    .position(|o| o.id == id)
                    .unwrap_or_else(|| panic!("Published {id} was not in flight"));
                let o = self.live.remove(i);
                assert_eq!(o.stage, stage, "Published {id} at the wrong stage");
                assert_eq!((o.topic, o.qos), (topic, qos));
                assert_eq!(self.s.publish_outcome(id), Outcome::Completed);
                assert!(
                    self.s.inflight_ids().all(|(i, _)| i != id),
                    "{id} still in flight after Published"
                );
            }
            (
                Ev::Subscribed {
                    packet_id,
                    filters,
                    codes,
                },
                Some(Packet::SubAck(ack)),
            ) => {
                assert_eq!(ack.packet_id, packet_id);
                assert_eq!(
                    codes,
                    ack.return_codes
                        .iter()
                        .map(|c| c.to_u8())
                        .collect::<Vec<_>>()
                );
                let Some(Req::Subscribe(asked)) = self.requests.remove(&packet_id) else {
                    panic!("Subscribed {packet_id} for no SUBSCRIBE");
                };
                assert_eq!(filters, asked, "Subscribed {packet_id} names other filters");
                assert_eq!(filters.len(), codes.len());
                // A filter listed twice in one SUBSCRIBE counts once, with
                // its last code: the later entry replaces the earlier one
                // (MQTT-3.8.4-3).
                let mut last: BTreeMap<&str, u8> = BTreeMap::new();
                for ((f, _), c) in filters.iter().zip(&codes) {
                    last.insert(f.as_str(), *c);
                }
                let granted: Vec<&str> = last
                    .iter()
                    .filter(|(_, c)| **c != 0x80)
                    .map(|(f, _)| *f)
                    .collect();
                let refused: Vec<&str> = last
                    .iter()
                    .filter(|(_, c)| **c == 0x80)
                    .map(|(f, _)| *f)
                    .collect();
                for s in &mut self.subs {
                    if granted.contains(&s.filter.as_str()) {
                        s.confirmed = true;
                    }
                }
                self.subs.retain(|s| !refused.contains(&s.filter.as_str()));
            }
            (Ev::Unsubscribed { packet_id, filters }, Some(Packet::UnsubAck(ack))) => {
                assert_eq!(ack.packet_id, packet_id);
                let Some(Req::Unsubscribe(asked)) = self.requests.remove(&packet_id) else {
                    panic!("Unsubscribed {packet_id} for no UNSUBSCRIBE");
                };
                assert_eq!(filters, asked);
            }
            (Ev::Pong, Some(Packet::PingResp)) => {
                assert!(
                    !self.s.ping_outstanding(),
                    "a PINGRESP left the ping outstanding"
                );
            }
            (Ev::Dropped(d), None) => {
                let last = last.as_ref().expect("checked above");
                let (want, dup, _) = last.dropped(self.rx);
                assert_eq!(d, want, "Dropped differs from the packet");
                assert!(d.len > self.rx);
                assert!(
                    !self.streams(state, last),
                    "{d:?} dropped, not streamed, with streaming on"
                );
                self.saw_incoming(d.packet_id);
                let seq = match (d.qos, d.packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => self.owe_pend(PacketType::PubAck, id),
                    (QoS::ExactlyOnce, Some(id)) => {
                        // Acknowledged, so remembered as delivered: its
                        // resend is a duplicate.
                        if !self.is_duplicate(id, dup) {
                            self.keep_new(id);
                        }
                        self.owe_pend(PacketType::PubRec, id)
                    }
                    _ => return,
                };
                self.fresh = Some((seq, false));
            }
            (event, packet) => panic!("{event:?} for {packet:?}"),
        }
    }

    /// A part of a streamed message.
    fn on_stream(&mut self, state: State, mut items: Vec<Item>, ev: StreamEv) {
        if ev.part != PartEv::Start {
            assert!(items.is_empty(), "packets handled for {ev:?}");
            let st = self
                .stream
                .as_mut()
                .unwrap_or_else(|| panic!("{ev:?} without a start"));
            let head = StreamEv {
                part: PartEv::Start,
                ..ev.clone()
            };
            assert_eq!(head, st.head, "a part's header differs from the start's");
        }
        match ev.part {
            PartEv::Start => {
                let last = items.pop().expect("a start without a packet");
                for item in items {
                    self.silent(state, item);
                }
                assert_eq!(state, State::Connected);
                assert_eq!(self.violation(state, &last), None);
                let Item::TooLarge { len, bytes } = last else {
                    panic!("{ev:?} for {last:?}, which fits");
                };
                let item = Item::TooLarge { len, bytes };
                assert!(self.streams(state, &item), "{ev:?} for {item:?}");
                let (d, dup, payload_at) = item.dropped(self.rx);
                let header = payload_at.expect("streams");
                let Item::TooLarge { bytes, .. } = item else {
                    unreachable!()
                };
                assert_eq!(
                    (Some(ev.topic.clone()), ev.qos, ev.packet_id, ev.dup),
                    (d.topic, d.qos, d.packet_id, dup),
                    "the start differs from the packet"
                );
                assert_eq!(ev.retain, bytes[0] & 1 != 0, "RETAIN");
                assert_eq!((ev.packet_len, ev.len), (len, len - header));
                if let (QoS::ExactlyOnce, Some(id)) = (ev.qos, ev.packet_id) {
                    assert!(
                        !self.is_duplicate(id, ev.dup),
                        "QoS 2 message {id} (dup {}) streamed again",
                        ev.dup
                    );
                }
                self.saw_incoming(ev.packet_id);
                self.stream = Some(Streaming {
                    head: ev,
                    bytes,
                    header,
                    offset: 0,
                });
            }
            PartEv::Chunk { offset, data } => {
                let st = self.stream.as_mut().expect("checked above");
                assert_eq!(offset, st.offset, "chunks not contiguous");
                assert!(!data.is_empty(), "an empty chunk");
                let end = offset + data.len();
                assert!(end <= st.head.len, "a chunk past the end");
                let sent = st
                    .bytes
                    .get(st.header + offset..st.header + end)
                    .unwrap_or_else(|| panic!("a chunk of bytes not sent yet"));
                assert!(sent == data, "chunk at {offset} differs from the payload");
                st.offset = end;
            }
            PartEv::End => {
                let st = self.stream.take().expect("checked above");
                assert_eq!(st.offset, st.head.len, "End before the last chunk");
                assert_eq!(state, State::Connected);
                let seq = match (st.head.qos, st.head.packet_id) {
                    (QoS::AtMostOnce, _) => return,
                    (QoS::AtLeastOnce, Some(id)) => self.owe_pend(PacketType::PubAck, id),
                    (QoS::ExactlyOnce, Some(id)) => {
                        assert!(
                            !self.is_duplicate(id, st.head.dup),
                            "QoS 2 message {id} delivered twice"
                        );
                        self.keep_new(id);
                        self.owe_pend(PacketType::PubRec, id)
                    }
                    _ => panic!("{:?} without an id", st.head),
                };
                self.fresh = Some((seq, true));
            }
            PartEv::Aborted => {
                assert_eq!(state, State::Disconnected, "aborted while connected");
                self.stream = None;
            }
        }
    }

    /// After a close not caused by a counted packet, the stream's next
    /// packet is no valid server packet.
    fn next_is_bad(&self, reason: Closed) {
        if let Closed::Protocol(t) = reason {
            // Refused by its type alone, from its first byte, whether or
            // not the rest came (`violation` says it may not come now).
            let first = self.inbox.first().copied();
            assert_eq!(first.and_then(PacketType::from_byte), Some(t), "{reason:?}");
            return;
        }
        if let Ok((p, _)) = Packet::decode_limited(&self.inbox, self.rx) {
            assert!(
                !p.packet_type().sent_by_server(),
                "{reason:?} on a valid {p:?}"
            );
        }
    }

    fn connected(&mut self, c: Connected, ack: ConnAck) {
        assert_eq!(c.session_present, ack.session_present);
        assert_eq!(self.s.state(), State::Connected);
        let options = *self.s.options();
        assert_eq!(options, self.options);
        if !c.session_present {
            // A new broker session numbers its messages afresh and holds
            // none of our subscriptions.
            self.incoming.clear();
            for s in &mut self.subs {
                s.confirmed = false;
            }
            if options.republish_on_lost_session {
                for o in &mut self.live {
                    if o.stage == Stage::AwaitPubComp {
                        o.stage = Stage::AwaitPubRec;
                    }
                }
            }
        }
        if !self.clean_session && !options.resend_streamed {
            // Nobody can supply their payloads again: discarded, in order.
            let (gone, kept): (Vec<Out>, Vec<Out>) = std::mem::take(&mut self.live)
                .into_iter()
                .partition(|o| o.streamed && o.stage != Stage::AwaitPubComp);
            self.live = kept;
            trace!(
                "  discarding {:?}",
                gone.iter().map(|o| o.id).collect::<Vec<_>>()
            );
            self.to_discard.extend(gone);
        }
        let unconfirmed: Vec<(String, QoS)> = self
            .subs
            .iter()
            .filter(|s| !s.confirmed)
            .map(|s| (s.filter.clone(), s.qos))
            .collect();
        let resubscribed = if options.resubscribe {
            unconfirmed.len()
        } else {
            0
        };
        assert_eq!(c.resubscribed, resubscribed, "filters re-subscribed");
        let resent = if self.clean_session {
            0
        } else {
            self.live.len()
        };
        assert_eq!(c.resent, resent, "messages resent");
        self.resub_expected = (resubscribed > 0).then_some(unconfirmed);
        self.connacked = true;
        self.resends = if self.clean_session {
            Vec::new()
        } else {
            self.live.iter().map(|o| (o.id, o.stage)).collect()
        };
        self.pubrec_since_connack.clear();
        self.resubscribe = resubscribed > 0;
        // Keep-alive counts from the CONNECT written; a CONNACK later than
        // K leaves the PINGREQ due at once.
        let k = Duration::from_secs(u64::from(self.keep_alive));
        let late = Instant::from_millis(self.now.as_millis().saturating_sub(k.as_millis()));
        self.ka_base = Some(self.last_write.max(late));
    }

    /// The connection is over: what it queued, received or owed is gone.
    fn ended(&mut self) {
        self.drop_input();
        self.wire.clear();
        // Written and not reported: never reported (at most once).
        self.written0.clear();
        self.expect_connect = false;
        self.connacked = false;
        // Nothing owed or deferred is sent any more; tokens go stale.
        self.pend.clear();
        self.direct.clear();
        self.fresh = None;
        self.epoch += 1;
        for k in &mut self.incoming {
            k.released = None;
        }
        self.requests.clear();
        self.resub_expected = None;
        self.resends.clear();
        self.resubscribe = false;
        self.ka_base = None;
        self.due = None;
    }

    fn lost(&mut self) {
        self.s.connection_lost();
        self.ended();
    }

    /// The id the session must take next: the one after the last, skipping
    /// 0 and the ids still in use.
    fn expected_id(&self) -> u16 {
        let mut id = self.last_id.checked_add(1).unwrap_or(1);
        loop {
            let used = self.live.iter().chain(&self.to_discard).any(|o| o.id == id)
                || self.requests.contains_key(&id);
            if id != 0 && !used {
                return id;
            }
            id = id.checked_add(1).unwrap_or(1);
        }
    }

    /// Calls `connect`; true when it succeeded.
    fn connect(&mut self, clean_session: bool, keep_alive: u8, empty_id: bool) -> bool {
        let connect = connect_packet(clean_session, u16::from(keep_alive), empty_id);
        let state = self.s.state();
        let result = self.s.connect(self.now, &connect);
        match result {
            Err(SessionError::Usage(UsageError::EmptyClientId)) => {
                assert!(empty_id && !clean_session)
            }
            Err(SessionError::Usage(UsageError::AlreadyConnected)) => {
                assert_ne!(state, State::Disconnected)
            }
            Err(e) => panic!("connect failed: {e:?}"),
            Ok(()) => {
                assert_eq!(state, State::Disconnected);
                assert_eq!(self.s.state(), State::Connecting);
                // A new transport: the old one's queue and input are gone.
                self.ended();
                self.expect_connect = true;
                // The keep-alive counts from here until the CONNECT is written.
                self.last_write = self.now;
                // A clean session ended with its connection (MQTT-3.1.2-6).
                let ended = self.clean_session;
                self.clean_session = clean_session;
                self.keep_alive = keep_alive;
                // Any stream is gone with the input (its abort was
                // reported: the driver polls after `connection_lost`).
                assert!(self.stream.is_none(), "an abort never reported");
                if clean_session || ended {
                    self.to_discard.extend(self.live.drain(..));
                    self.incoming.clear();
                    assert_eq!(self.s.inflight(), 0);
                    assert_eq!(self.s.incoming_pending(), 0);
                }
            }
        }
        if result.is_err() {
            assert_eq!(self.s.state(), state);
        }
        result.is_ok()
    }

    fn subscribe(&mut self, filters: &[Subscription<'_>]) -> Option<u16> {
        let want = self.expected_id();
        match self.s.subscribe(self.now, filters) {
            Ok(id) => {
                assert_eq!(id, want, "SUBSCRIBE packet id");
                assert!(self.s.request_pending(id));
                self.last_id = id;
                for f in filters {
                    match self.subs.iter_mut().find(|s| s.filter == f.filter) {
                        Some(s) => {
                            s.qos = f.qos;
                            s.confirmed = false;
                        }
                        None => self.subs.push(Sub {
                            filter: f.filter.to_owned(),
                            qos: f.qos,
                            confirmed: false,
                        }),
                    }
                }
                let list = filters
                    .iter()
                    .map(|f| (f.filter.to_owned(), f.qos))
                    .collect();
                self.requests.insert(id, Req::Subscribe(list));
                Some(id)
            }
            // The list is compared with the model's after the step.
            Err(_) => None,
        }
    }

    fn unsubscribe(&mut self, filters: &[&str]) {
        let want = self.expected_id();
        if let Ok(id) = self.s.unsubscribe(self.now, filters) {
            assert_eq!(id, want, "UNSUBSCRIBE packet id");
            assert!(self.s.request_pending(id));
            self.last_id = id;
            self.subs.retain(|s| !filters.contains(&s.filter.as_str()));
            let list = filters.iter().map(|&f| f.to_owned()).collect();
            self.requests.insert(id, Req::Unsubscribe(list));
        }
    }

    fn publish(&mut self, publish: &Publish<'_>) {
        let want = self.expected_id();
        let before: Vec<_> = self.s.inflight_ids().collect();
        match self.s.publish(self.now, publish) {
            Ok(None) => assert_eq!(publish.qos, QoS::AtMostOnce),
            Ok(Some(id)) => {
                assert_ne!(publish.qos, QoS::AtMostOnce);
                assert_eq!(id, want, "PUBLISH packet id");
                assert_eq!(self.s.publish_outcome(id), Outcome::Pending);
                self.last_id = id;
                self.live.push(Out {
                    id,
                    stage: if publish.qos == QoS::AtLeastOnce {
                        Stage::AwaitPubAck
                    } else {
                        Stage::AwaitPubRec
                    },
                    topic: publish.topic.to_owned(),
                    payload: publish.payload.to_vec(),
                    qos: publish.qos,
                    retain: publish.retain,
                    streamed: false,
                });
            }
            Err(_) => {
                let after: Vec<_> = self.s.inflight_ids().collect();
                assert_eq!(before, after, "a refused publish changed the window");
            }
        }
    }

    fn publish_streamed(&mut self, publish: &Publish<'_>, payload: Vec<u8>) {
        let want = self.expected_id();
        let before: Vec<_> = self.s.inflight_ids().collect();
        let state = self.s.state();
        let queued = self.due.is_some();
        let deadline = self.s.poll_timeout();
        let result = self.s.publish_streamed(self.now, publish, payload.len());
        if result.is_ok() && deadline.is_none_or(|t| t > self.now) {
            // Nothing was overdue: a new message makes nothing overdue.
            let next = self.s.poll_timeout();
            assert!(
                next.is_none_or(|t| t > self.now),
                "a deadline at {next:?}, passed already, for a streamed publish at {:?}",
                self.now
            );
        }
        trace!("  publish_streamed {} bytes: {result:?}", payload.len());
        let packet_id = match result {
            Ok(None) => {
                assert_eq!(publish.qos, QoS::AtMostOnce);
                None
            }
            Ok(Some(id)) => {
                assert_ne!(publish.qos, QoS::AtMostOnce);
                assert_eq!(id, want, "PUBLISH packet id");
                assert_eq!(self.s.publish_outcome(id), Outcome::Pending);
                self.last_id = id;
                self.live.push(Out {
                    id,
                    stage: if publish.qos == QoS::AtLeastOnce {
                        Stage::AwaitPubAck
                    } else {
                        Stage::AwaitPubRec
                    },
                    topic: publish.topic.to_owned(),
                    payload: payload.clone(),
                    qos: publish.qos,
                    retain: publish.retain,
                    streamed: !payload.is_empty(),
                });
                Some(id)
            }
            Err(e) => {
                if queued && state == State::Connected {
                    assert!(
                        matches!(
                            e,
                            SessionError::Resource(ResourceError::TransmitBufferTooSmall { .. })
                        ),
                        "a second payload refused with {e:?}"
                    );
                }
                let after: Vec<_> = self.s.inflight_ids().collect();
                assert_eq!(before, after, "a refused publish changed the window");
                return;
            }
        };
        assert!(!queued, "a second payload queued behind {:?}", self.due);
        // An empty payload: the head is the whole packet, nothing is due.
        if payload.is_empty() {
            assert_eq!(self.s.payload_due(), None, "an empty payload due");
            return;
        }
        self.due = Some(Due {
            payload,
            packet_id,
            topic: publish.topic.to_owned(),
            qos: publish.qos,
            retain: publish.retain,
            dup: false,
            offset: 0,
        });
    }

    /// `poll_transmit`, noting the re-subscription once it is queued.
    fn poll_tx(&mut self) -> Vec<u8> {
        let pending = self.s.poll_transmit(self.now).to_vec();
        assert!(
            pending.len() <= ARENA,
            "poll_transmit returned {} bytes",
            pending.len()
        );
        if let Some(expected) = self.resub_expected.clone() {
            let mut stream = self.wire.clone();
            stream.extend_from_slice(&pending);
            let mut rest = &stream[..];
            while let Ok((p, n)) = Packet::decode(rest) {
                if let Packet::Subscribe(s) = p {
                    if !self.requests.contains_key(&s.packet_id) {
                        assert_eq!(sub_list(s.filters), expected, "the re-subscription");
                        assert_eq!(s.packet_id, self.expected_id(), "re-SUBSCRIBE packet id");
                        self.last_id = s.packet_id;
                        self.requests.insert(s.packet_id, Req::Subscribe(expected));
                        self.resub_expected = None;
                        break;
                    }
                }
                rest = &rest[n..];
            }
        }
        self.ends_at_head = self.check_head(&pending);
        pending
    }

    /// What `poll_transmit` returned ends where a packet does, or exactly
    /// at the end of a streamed head: the model's payload, or a resend's,
    /// which the model takes up here. `true` in the second case. (A piece
    /// may end before the head: a stored PUBLISH queued before it is
    /// written as a piece of its own, and the queue's bytes before that.)
    fn check_head(&mut self, pending: &[u8]) -> bool {
        if pending.is_empty() {
            return false;
        }
        let mut stream = self.wire.clone();
        stream.extend_from_slice(pending);
        let mut rest = &stream[..];
        while let Ok((_, n)) = Packet::decode(rest) {
            rest = &rest[n..];
        }
        if rest.is_empty() {
            return false;
        }
        let Some((head, total)) = publish_head(rest) else {
            panic!("poll_transmit stopped inside a packet: {rest:02x?}");
        };
        assert_eq!(rest.len(), head, "poll_transmit went past a streamed head");
        let mut whole = rest.to_vec();
        whole.resize(total, 0);
        let Ok((Packet::Publish(p), _)) = Packet::decode(&whole) else {
            panic!("a streamed head that is no PUBLISH: {rest:02x?}");
        };
        let len = total - head;
        if let Some(d) = &self.due {
            assert_eq!(
                (p.packet_id, p.dup, len, d.offset),
                (d.packet_id, d.dup, d.payload.len(), 0),
                "the head of {d:?}"
            );
            return true;
        }
        // A resend, which asks for the payload again, from the start.
        let id = p.packet_id.expect("a resent head has an id");
        assert!(p.dup, "a streamed head {id} without DUP, nothing streamed");
        assert!(
            self.resends.iter().any(|&(i, _)| i == id),
            "a streamed head {id} resent unexpected: {:?}",
            self.resends
        );
        let o = self
            .live
            .iter()
            .find(|o| o.id == id)
            .unwrap_or_else(|| panic!("the streamed head of {id}, not in flight"));
        assert!(
            o.streamed && o.stage != Stage::AwaitPubComp,
            "{o:?} resent as a streamed head"
        );
        assert_eq!(len, o.payload.len(), "the resent head of {id}'s length");
        trace!("  resent streamed head {id}, {len} bytes due");
        self.due = Some(Due {
            payload: o.payload.clone(),
            packet_id: Some(id),
            topic: o.topic.clone(),
            qos: o.qos,
            retain: o.retain,
            dup: true,
            offset: 0,
        });
        true
    }

    /// How long a PINGRESP may take: the one deadline while a payload is due.
    fn pingresp_wait(&self) -> Duration {
        let k = Duration::from_secs(u64::from(self.keep_alive));
        if self.keep_alive == 0 {
            self.timeouts.pingresp
        } else {
            self.timeouts.pingresp.min(k)
        }
    }

    /// Writes a piece of the due payload, at most `max` bytes (and the
    /// driver's piece), as a driver does: put together in the spare room
    /// of `payload_buffer`, then reported. False when none is due.
    fn write_payload(&mut self, max: usize) -> bool {
        let Some(due) = self.s.payload_due() else {
            return false;
        };
        assert!(
            self.poll_tx().is_empty(),
            "bytes behind a streamed head while its payload is due"
        );
        let d = self
            .due
            .as_ref()
            .unwrap_or_else(|| panic!("{due:?}, which the model does not know"));
        assert_eq!(
            due,
            PayloadDue {
                offset: d.offset,
                len: d.payload.len(),
                packet_id: d.packet_id,
            }
        );
        let topic = d
            .packet_id
            .and_then(|id| self.live.iter().find(|o| o.id == id))
            .map(|o| o.topic.clone());
        let n = max.min(self.piece).min(due.len - due.offset);
        let piece = d.payload[due.offset..due.offset + n].to_vec();
        let packet_id = d.packet_id;
        let (buf, t) = self.s.payload_buffer();
        assert_eq!(t.map(str::to_owned), topic, "payload_buffer's topic");
        if let Some(dst) = buf.get_mut(..n) {
            dst.copy_from_slice(&piece);
        }
        if let Some(id) = packet_id {
            assert_eq!(self.s.outgoing_topic(id).map(str::to_owned), topic);
        }
        self.s.handle_payload(self.now, n);
        trace!("  payload {}+{n} of {}", due.offset, due.len);
        self.wire.extend_from_slice(&piece);
        if n > 0 {
            if self.s.state() == State::Connected && self.keep_alive > 0 {
                self.keep_alive_check("a payload piece written");
                self.ka_base = Some(self.now);
            }
            self.last_write = self.now;
        }
        let d = self.due.as_mut().expect("checked above");
        d.offset += n;
        if d.offset < d.payload.len() {
            assert_eq!(
                self.s.payload_due(),
                Some(PayloadDue {
                    offset: d.offset,
                    ..due
                })
            );
            return true;
        }
        let d = self.due.take().expect("checked above");
        assert_eq!(self.s.payload_due(), None, "all written, still due");
        if !d.payload.is_empty() {
            // The broker reassembles the message generated.
            let (packet, used) = Packet::decode(&self.wire)
                .unwrap_or_else(|e| panic!("head and payload are no packet: {e:?}"));
            assert_eq!(used, self.wire.len(), "bytes behind a payload");
            let Packet::Publish(p) = packet else {
                panic!("a payload behind {packet:?}");
            };
            assert!(
                (p.topic, p.qos, p.retain, p.dup, p.packet_id)
                    == (d.topic.as_str(), d.qos, d.retain, d.dup, d.packet_id)
                    && p.payload == d.payload.as_slice(),
                "the streamed PUBLISH reassembled differs from {d:?}"
            );
        }
        if n > 0 {
            // Every wait starts again from now.
            let t = self.timeouts;
            let k = u64::from(self.keep_alive) * 1000;
            let mut least = t
                .puback
                .min(t.suback.max(t.unsuback))
                .min(self.pingresp_wait());
            if k > 0 {
                let margin = (k / 10).max(500).min(k / 2);
                least = least.min(Duration::from_millis(k - margin));
            }
            let next = self.s.poll_timeout();
            assert!(
                next.is_none_or(|at| at >= self.now + least),
                "a deadline at {next:?} right after the payload at {:?}",
                self.now
            );
        }
        self.check_wire();
        true
    }

    /// Writes everything, reading what the room freed lets in.
    fn flush(&mut self) {
        for _ in 0..8192 {
            if self.poll_tx().is_empty() {
                if self.write_payload(usize::MAX) {
                    continue;
                }
                if self.s.state() != State::Disconnected {
                    assert!(
                        self.direct.is_empty() && self.pend.front().is_none_or(|p| p.deferred),
                        "acks owed, none queued: {:?} {:?}",
                        self.pend,
                        self.direct
                    );
                }
                return;
            }
            self.transmit(ARENA);
            self.pump();
        }
    }

    fn transmit(&mut self, n: usize) {
        let pending = self.poll_tx();
        if pending.is_empty() {
            if !self.write_payload(n) {
                self.s.handle_transmit(self.now, 0);
            }
            return;
        }
        // More than pending is clamped: all of it was written. Not past a
        // streamed head, though: what follows it was never returned.
        let k = n.min(pending.len());
        let claimed = if self.due.is_some() { k } else { n };
        self.s.handle_transmit(self.now, claimed);
        if k == 0 {
            return;
        }
        self.wire.extend_from_slice(&pending[..k]);
        if self.s.state() == State::Connected && self.keep_alive > 0 {
            self.keep_alive_check("a packet written");
            self.ka_base = Some(self.now);
        }
        self.last_write = self.now;
        self.check_wire();
        if k == pending.len() && self.ends_at_head && self.s.state() == State::Connected {
            assert!(
                self.s.payload_due().is_some(),
                "the head written, no payload due"
            );
        }
    }

    fn keep_alive_check(&self, what: &str) {
        let Some(base) = self.ka_base else { return };
        if self.s.state() != State::Connected || self.keep_alive == 0 {
            return;
        }
        let gap = (self.now - base).as_millis();
        assert!(
            gap <= u64::from(self.keep_alive) * 1000,
            "{what} {gap} ms after the last, keep-alive {} s",
            self.keep_alive
        );
    }

    /// Every whole packet written decodes as a client packet.
    fn check_wire(&mut self) {
        let mut used = 0;
        let wire = std::mem::take(&mut self.wire);
        loop {
            let rest = &wire[used..];
            let (packet, n) = match Packet::decode(rest) {
                Ok(ok) => ok,
                Err(DecodeError::Incomplete { .. }) => break,
                Err(e) => panic!("the session wrote {rest:02x?}: {e:?}"),
            };
            used += n;
            if self.expect_connect {
                assert!(
                    matches!(packet, Packet::Connect(_)),
                    "first packet {packet:?}"
                );
                self.expect_connect = false;
            } else {
                assert!(!matches!(packet, Packet::Connect(_)), "a second CONNECT");
            }
            if !self.connacked {
                assert!(
                    matches!(packet, Packet::Connect(_) | Packet::Disconnect),
                    "{packet:?} before CONNACK"
                );
            }
            if self.connacked {
                self.check_order(&packet);
            }
            match packet {
                Packet::Subscribe(s) => {
                    self.subscribe_counts.insert(s.packet_id, s.filters.len());
                    self.seen_requests
                        .push((s.packet_id, Some(s.filters.len())));
                }
                Packet::Unsubscribe(u) => self.seen_requests.push((u.packet_id, None)),
                Packet::Publish(p) => {
                    assert!(!(p.dup && p.qos == QoS::AtMostOnce));
                    if p.qos == QoS::AtMostOnce {
                        self.written0.push_back(p.topic.to_owned());
                    }
                    if let Some(o) = self.live.iter().find(|o| Some(o.id) == p.packet_id) {
                        assert_eq!(
                            (p.topic, p.payload, p.qos, p.retain),
                            (o.topic.as_str(), o.payload.as_slice(), o.qos, o.retain),
                            "PUBLISH {} differs from the original",
                            o.id
                        );
                    }
                }
                Packet::PubAck(PubAck { packet_id: id })
                | Packet::PubRec(PubRec { packet_id: id })
                | Packet::PubComp(PubComp { packet_id: id }) => {
                    self.ack_written(packet.packet_type(), id);
                }
                Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                    panic!("the client sent a server packet {packet:?}")
                }
                _ => {}
            }
            if self.seen_requests.len() > 8 {
                self.seen_requests.remove(0);
            }
        }
        self.wire = wire;
        self.wire.drain(..used);
        self.check_sent_due();
    }

    /// `sent_due` holds exactly when a QoS 0 PUBLISH has been written in
    /// full and not reported.
    fn check_sent_due(&self) {
        assert_eq!(
            self.s.sent_due(),
            !self.written0.is_empty(),
            "sent_due, with {:?} written and unreported",
            self.written0
        );
    }

    /// An acknowledgement written: the next one owed for a delivered
    /// message (not deferred, and after the direct ones owed before it
    /// went free), or the next direct one (after the delivered ones free
    /// when it was owed).
    fn ack_written(&mut self, kind: PacketType, id: u16) {
        trace!("  written {kind:?} {id}");
        loop {
            let direct_first = self.direct.front().map_or(u64::MAX, |d| d.seq);
            if let Some(p) = self.pend.front().copied() {
                let free = p.free_at.is_some_and(|at| at < direct_first);
                if (p.kind, p.id) == (kind, id) && !p.deferred && free {
                    self.pend.pop_front();
                    return;
                }
            }
            let pend_first = self.pend.front().map_or(u64::MAX, |p| p.seq);
            if let Some(d) = self.direct.front().copied() {
                if (d.kind, d.id) == (kind, id) && d.after < pend_first {
                    self.direct.pop_front();
                    // Written: the ids it released are forgotten.
                    self.incoming
                        .retain(|k| !k.released.is_some_and(|at| at <= d.seq));
                    return;
                }
            }
            // After a DISCONNECT, those that found no room are never
            // written (nor any behind them).
            if self.pend.front().is_some_and(|p| p.optional) {
                self.pend.clear();
                continue;
            }
            panic!(
                "{kind:?} {id} out of order or answering nothing: owed {:?} {:?}",
                self.pend, self.direct
            );
        }
    }

    /// Resends go first, in their original order, as they were sent.
    fn check_order(&mut self, packet: &Packet<'_>) {
        let resend = match *packet {
            Packet::Publish(p) if p.dup => {
                Some((p.packet_id.expect("DUP only with QoS > 0"), false))
            }
            Packet::PubRel(r) => Some((r.packet_id, true)),
            _ => None,
        };
        if let Some((id, rel)) = resend {
            if let Some(pos) = self.resends.iter().position(|&(i, _)| i == id) {
                let (_, stage) = self.resends[pos];
                let released = stage == Stage::AwaitPubComp
                    || (rel && self.pubrec_since_connack.contains(&id));
                assert_eq!(rel, released, "resend {id} at {stage:?} as {packet:?}");
                for &(other, other_stage) in &self.resends[..pos] {
                    // PUBRELs resent go in the order of their PUBRECs
                    // (MQTT-4.6.0-4), which may not be the PUBLISHes':
                    // one may go after a later PUBLISH's resend, or before
                    // an earlier PUBREL's. (The session's unit tests check
                    // the PUBREC order.)
                    if other_stage == Stage::AwaitPubComp {
                        continue;
                    }
                    // One the broker answered with a PUBREC on this
                    // connection is resent no more: its PUBREL goes behind
                    // the resends, in PUBREC order (MQTT-4.6.0-4).
                    assert!(
                        !self.s.publish_pending(other)
                            || self.pubrec_since_connack.contains(&other),
                        "resend {id} overtook {other}"
                    );
                }
                // Done: this one, and the PUBLISH resends before it; the
                // PUBRELs before it may still be to come.
                let mut at = 0;
                self.resends.retain(|&(_, other_stage)| {
                    at += 1;
                    at - 1 > pos || (at - 1 < pos && other_stage == Stage::AwaitPubComp)
                });
                return;
            }
            assert!(rel, "DUP PUBLISH {id} is no resend of this connection");
        }
        let first_subscribe = matches!(packet, Packet::Subscribe(_)) && self.resubscribe;
        if matches!(packet, Packet::Subscribe(_)) {
            self.resubscribe = false;
        }
        // A PINGREQ may go ahead: it reorders no message. So may a
        // DISCONNECT: the resends it cuts off wait for the next connection.
        let new_traffic = matches!(
            packet,
            Packet::Publish(_) | Packet::PubRel(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_)
        ) && !first_subscribe;
        if new_traffic {
            let rel = matches!(packet, Packet::PubRel(_));
            for &(id, _) in &self.resends {
                // A PUBREL (of a PUBREC answered again) goes in PUBREC
                // order with the PUBRELs that replaced resends (MQTT-4.6.0-4).
                if rel && self.pubrec_since_connack.contains(&id) {
                    continue;
                }
                assert!(
                    !self.s.publish_pending(id),
                    "{packet:?} before the resend of {id}"
                );
            }
        }
    }

    fn check(&mut self) {
        let ids: Vec<(u16, Stage)> = self.s.inflight_ids().collect();
        let model: Vec<(u16, Stage)> = self.live.iter().map(|o| (o.id, o.stage)).collect();
        assert_eq!(ids, model, "the messages in flight");
        assert!(ids.len() <= INFLIGHT);
        assert_eq!(ids.len(), self.s.inflight());
        let unique: BTreeSet<u16> = ids.iter().map(|&(id, _)| id).collect();
        assert_eq!(unique.len(), ids.len(), "duplicate in-flight ids {ids:?}");
        assert!(!unique.contains(&0), "packet id 0 in flight");
        for o in &self.to_discard {
            assert_eq!(self.s.publish_outcome(o.id), Outcome::Pending);
        }
        let subs: Vec<(String, QoS)> = self
            .s
            .subscriptions()
            .map(|(f, q)| (f.to_owned(), q))
            .collect();
        let model: Vec<(String, QoS)> = self
            .subs
            .iter()
            .map(|s| (s.filter.clone(), s.qos))
            .collect();
        assert_eq!(subs, model, "the subscription list");
        assert!(subs.len() <= SUBS);
        let distinct: BTreeSet<&str> = subs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            distinct.len(),
            subs.len(),
            "duplicate subscriptions {subs:?}"
        );
        for (f, _) in &subs {
            assert!(
                topic::validate_filter(f).is_ok(),
                "invalid filter {f:?} subscribed"
            );
        }
        for &id in self.requests.keys() {
            assert!(self.s.request_pending(id), "request {id} forgotten");
        }
        assert_eq!(
            self.s.incoming_pending(),
            self.incoming.len(),
            "incoming QoS 2 ids kept: model {:?}",
            self.incoming
        );
        assert_eq!(*self.s.options(), self.options);
        assert_eq!(self.s.receive_capacity(), self.rx);
        assert_eq!(self.s.is_streaming(), self.stream.is_some());
        if let Some(due) = self.s.payload_due() {
            let d = self
                .due
                .as_ref()
                .unwrap_or_else(|| panic!("{due:?}, which the model does not know"));
            assert_eq!(
                due,
                PayloadDue {
                    offset: d.offset,
                    len: d.payload.len(),
                    packet_id: d.packet_id,
                }
            );
            assert_eq!(
                self.s.poll_timeout(),
                Some(self.last_write + self.pingresp_wait()),
                "the deadline while a payload is due"
            );
        } else if let Some(d) = &self.due {
            assert!(
                self.s.state() != State::Connected || d.offset == 0,
                "{d:?} begun, no longer due"
            );
        }
        match self.s.state() {
            State::Disconnected => assert_eq!(self.s.poll_timeout(), None),
            State::Connecting => assert!(self.s.poll_timeout().is_some(), "no CONNACK deadline"),
            State::Connected => {
                // A resend's wait starts when it is queued.
                let sent = ids
                    .iter()
                    .any(|&(id, _)| !self.resends.iter().any(|&(r, _)| r == id));
                if sent
                    || !self.requests.is_empty()
                    || self.s.ping_outstanding()
                    || self.keep_alive > 0
                {
                    assert!(
                        self.s.poll_timeout().is_some(),
                        "acks pending without a deadline"
                    );
                }
            }
        }
    }

    /// `handle_timeout` at `now`, then the events it caused.
    fn handle_timeout(&mut self) {
        let deadline = self.s.poll_timeout();
        let state = self.s.state();
        let ping = self.s.ping_outstanding();
        let idle = self.s.transmit_idle();
        let due = deadline.is_some_and(|d| self.now >= d);
        self.s.handle_timeout(self.now);
        if due {
            assert!(
                self.s.poll_timeout().is_none_or(|d| d > self.now),
                "a deadline left at {:?} after handle_timeout at {:?}",
                self.s.poll_timeout(),
                self.now
            );
        } else {
            assert_eq!(self.s.state(), state, "handle_timeout before {deadline:?}");
            assert_eq!(
                self.s.ping_outstanding(),
                ping,
                "a ping before {deadline:?}"
            );
            assert_eq!(self.s.transmit_idle(), idle);
        }
        self.timeout_due = due;
        self.pump();
        self.timeout_due = false;
    }

    /// A prompt driver: everything is written before time passes, and it
    /// wakes at every deadline up to `target`.
    fn advance_to(&mut self, target: Instant) {
        self.flush();
        for _ in 0..256 {
            let due = self.s.poll_timeout().filter(|&d| d <= target);
            self.now = due.unwrap_or(target).max(self.now);
            self.keep_alive_check("woken");
            self.handle_timeout();
            self.flush();
            if due.is_none() {
                return;
            }
        }
    }
}

fn connect_packet(clean_session: bool, keep_alive: u16, empty_id: bool) -> Connect<'static> {
    Connect {
        clean_session,
        keep_alive,
        client_id: if empty_id { "" } else { "fz" },
        will: None,
        username: None,
        password: None,
    }
}

fuzz_target!(|input: Input| {
    let rx_len = match input.rx {
        0 => RX,
        n => 16 + usize::from(n) % (RX - 15),
    };
    let mut rx = vec![0u8; rx_len];
    let mut arena = [0u8; ARENA];
    let t = |b: u8| Duration::from_millis(u64::from(b.max(1)) * 100);
    let [connack, suback, unsuback, puback, pingresp] = input.timeouts;
    let timeouts = Timeouts {
        connack: t(connack),
        suback: t(suback),
        unsuback: t(unsuback),
        puback: t(puback),
        pingresp: t(pingresp),
    };
    let options = Options {
        resubscribe: input.options & 1 == 0,
        republish_on_lost_session: input.options & 2 != 0,
        stream: input.options & 4 != 0,
        resend_streamed: input.options & 8 == 0,
        // MQTT 5's: this model connects with 3.1.1 only.
        topic_aliases: true,
    };
    let mut s = Session::new(&mut rx, &mut arena, timeouts);
    s.set_options(options);
    let mut h = Harness {
        s,
        now: Instant::from_millis(0),
        chunk: match input.chunk {
            0 => usize::MAX,
            n => usize::from(n),
        },
        rx: rx_len,
        options,
        net: VecDeque::new(),
        inbox: Vec::new(),
        inbox_skip: 0,
        wire: Vec::new(),
        written0: VecDeque::new(),
        expect_connect: false,
        connacked: false,
        clean_session: true,
        keep_alive: 0,
        live: Vec::new(),
        to_discard: VecDeque::new(),
        subs: Vec::new(),
        requests: BTreeMap::new(),
        resub_expected: None,
        last_id: 0,
        incoming: Vec::new(),
        pend: VecDeque::new(),
        direct: VecDeque::new(),
        ack_seq: 0,
        fresh: None,
        tokens: Vec::new(),
        epoch: 0,
        defer_bits: 0,
        skip_bits: 0,
        stream: None,
        sent_publishes: Vec::new(),
        held_back: Vec::new(),
        seen_requests: Vec::new(),
        incoming_ids: Vec::new(),
        subscribe_counts: BTreeMap::new(),
        resends: Vec::new(),
        pubrec_since_connack: BTreeSet::new(),
        resubscribe: false,
        last_write: Instant::from_millis(0),
        ends_at_head: false,
        ka_base: None,
        timeout_due: false,
        timeouts,
        due: None,
        piece: usize::MAX,
    };
    for op in input.ops.into_iter().take(256) {
        trace!("{op:?}");
        match op {
            Op::Broker(b) => h.broker(b),
            Op::Partial(bytes) => {
                h.send(&bytes);
                while h.read() {}
                // Not polled: the next call finds the input unhandled.
                h.check();
                continue;
            }
            Op::Connect {
                clean_session,
                keep_alive,
                empty_id,
            } => {
                h.connect(clean_session, keep_alive, empty_id);
            }
            Op::Reconnect {
                clean_session,
                keep_alive,
                session_present,
            } => {
                h.lost();
                // The abort of a stream cut short, first.
                h.pump();
                if h.connect(clean_session, keep_alive, false) {
                    h.pump();
                    h.flush();
                    h.broker(Broker::ConnAck {
                        session_present: session_present && !clean_session,
                        code: 0,
                    });
                }
            }
            Op::Options {
                resubscribe,
                republish,
                stream,
                resend_streamed,
            } => {
                h.options = Options {
                    resubscribe,
                    republish_on_lost_session: republish,
                    stream,
                    resend_streamed,
                    topic_aliases: true,
                };
                h.s.set_options(h.options);
            }
            Op::Policy { defer, skip } => {
                h.defer_bits = defer;
                h.skip_bits = skip;
            }
            Op::Ack(n) => h.redeem(n),
            Op::Rest => h.rest(),
            Op::DeferAck => h.defer(),
            Op::SkipStream => {
                h.skip();
                if decide(&mut h.defer_bits) {
                    h.defer();
                }
                h.fresh = None;
            }
            Op::Publish {
                qos: q,
                topic,
                payload,
                retain,
                dup,
                id,
            } => {
                let publish = Publish {
                    dup,
                    qos: qos(q),
                    retain,
                    topic: TOPICS[usize::from(topic) % TOPICS.len()],
                    packet_id: Some(id),
                    payload: &[0xaa; 255][..usize::from(payload)],
                };
                h.publish(&publish);
            }
            Op::Subscribe(list) => {
                let filters: Vec<Subscription<'_>> = list
                    .iter()
                    .take(6)
                    .map(|&(f, q)| Subscription {
                        filter: FILTERS[usize::from(f) % FILTERS.len()],
                        qos: qos(q),
                    })
                    .collect();
                h.subscribe(&filters);
            }
            Op::SubscribeEach(list) => {
                for &(f, q) in list.iter().take(6) {
                    let filter = FILTERS[usize::from(f) % FILTERS.len()];
                    if let Some(id) = h.subscribe(&[Subscription {
                        filter,
                        qos: qos(q),
                    }]) {
                        h.flush();
                        h.subscribe_counts.insert(id, 1);
                        h.broker(Broker::SubAck {
                            id: Id::Raw(id),
                            exact: true,
                            codes: vec![q],
                        });
                    }
                }
            }
            Op::Unsubscribe(list) => {
                let filters: Vec<&str> = list
                    .iter()
                    .take(6)
                    .map(|&f| FILTERS[usize::from(f) % FILTERS.len()])
                    .collect();
                h.unsubscribe(&filters);
            }
            Op::Ping => {
                if h.s.ping(h.now).is_ok() {
                    assert!(h.s.ping_outstanding());
                }
            }
            Op::Disconnect => {
                if h.s.disconnect().is_ok() {
                    assert_eq!(h.s.state(), State::Disconnected);
                    h.drop_input();
                    h.ka_base = None;
                    // The acknowledgements free went ahead of the
                    // DISCONNECT if they found room; the others never go.
                    h.pend.retain(|p| p.free_at.is_some());
                    for p in &mut h.pend {
                        p.optional = true;
                    }
                    h.fresh = None;
                    h.epoch += 1;
                }
            }
            Op::ConnectionLost => h.lost(),
            Op::Advance(ms) => {
                let target = h.now + Duration::from_millis(u64::from(ms) * 16);
                h.advance_to(target);
            }
            Op::AdvanceToDeadline => {
                let target =
                    h.s.poll_timeout()
                        .unwrap_or(h.now + Duration::from_secs(3600))
                        .max(h.now);
                h.advance_to(target);
            }
            Op::Stall(ms) => {
                if ms > 0 {
                    h.ka_base = None;
                }
                h.now = h.now + Duration::from_millis(u64::from(ms) * 16);
                h.handle_timeout();
            }
            Op::Transmit(n) => h.transmit(usize::from(n)),
            Op::Flush => h.flush(),
            Op::PublishStreamed {
                qos: q,
                topic,
                retain,
                len,
                seed,
                piece,
            } => {
                h.piece = match piece {
                    0 => usize::MAX,
                    n => usize::from(n),
                };
                let topics: Vec<&str> = TOPICS.iter().chain(LARGE_TOPICS).copied().collect();
                let publish = Publish {
                    // Ignored, like the payload: the session picks them.
                    dup: seed & 1 != 0,
                    qos: qos(q),
                    retain,
                    topic: topics[usize::from(topic) % topics.len()],
                    packet_id: Some(u16::from(seed)),
                    payload: &[0xee; 7],
                };
                h.publish_streamed(&publish, pattern(usize::from(len) % LARGE, seed));
            }
            Op::AbandonPayload => {
                let due = h.due.take();
                h.s.abandon_payload();
                trace!(
                    "  abandon_payload of {:?}",
                    due.as_ref()
                        .map(|d| (d.packet_id, d.offset, d.payload.len()))
                );
                assert_eq!(h.s.state(), State::Disconnected);
                // Its QoS 1/2 message is discarded, once.
                if let Some(id) = due.and_then(|d| d.packet_id) {
                    if let Some(i) = h.live.iter().position(|o| o.id == id) {
                        let o = h.live.remove(i);
                        h.to_discard.push_back(o);
                    }
                }
                h.ended();
            }
        }
        // A driver drains the events after every call.
        h.pump();
        h.check();
    }
});
