//! The sans-IO protocol engine: everything MQTT 3.1.1 and MQTT 5 ask a client to
//! remember and decide, with no I/O, no clock reads and no `await`. It is
//! fully deterministic: the same bytes and times in give the same bytes and
//! events out, which is how the tests and the fuzzer drive it.
//!
//! # Driving it
//!
//! [`Session`] has four kinds of methods, as quinn-proto's `Connection` does:
//!
//! - getters (`&self`): [`state`](Session::state),
//!   [`inflight`](Session::inflight), [`publish_outcome`](Session::publish_outcome), ...;
//! - input from the network and the clock: [`receive_buffer`](Session::receive_buffer)
//!   and [`commit`](Session::commit) (bytes read),
//!   [`handle_transmit`](Session::handle_transmit) (bytes written),
//!   [`handle_timeout`](Session::handle_timeout) (time passed);
//! - commands: [`connect`](Session::connect), [`publish`](Session::publish),
//!   [`subscribe`](Session::subscribe), [`unsubscribe`](Session::unsubscribe),
//!   [`ping`](Session::ping), [`disconnect`](Session::disconnect),
//!   [`connection_lost`](Session::connection_lost);
//! - output: [`poll_event`](Session::poll_event) (what happened),
//!   [`poll_transmit`](Session::poll_transmit) (bytes to write) and
//!   [`poll_timeout`](Session::poll_timeout) (when to call `handle_timeout`).
//!
//! After each input or command, drain the polls in this order: `poll_event`
//! until `None`, then `poll_transmit` (write, `handle_transmit`, repeat),
//! then `poll_timeout` to know how long to wait for the next read.
//! `poll_event` can return `None` while bytes wait in the transmit queue
//! (an acknowledgement needs room): write them, then poll events again.
//! Time passed in must not go backwards; a spurious `handle_timeout` is
//! harmless.
//!
//! A message's PUBACK / PUBREC is queued by the next call on the session
//! after its [`Event::Message`]: the broker learns of it only once the
//! event has been consumed.
//!
//! A QoS 0 message completes when its PUBLISH has been written in full:
//! [`Event::Sent`], which comes before anything read. Its bytes stay in the
//! transmit queue until that event has been polled (the event lends its
//! topic from there), so poll events soon after writing;
//! [`sent_due`](Session::sent_due) says whether one is due without taking
//! the other events.
//!
//! # What it keeps
//!
//! - The receive buffer: packets are framed in it, and a packet larger than
//!   it is skipped as it arrives ([`Event::Dropped`]).
//! - Outgoing QoS 1/2 messages until their handshake completes (encoded, in
//!   the store slice), at most `INFLIGHT` of them, each with an ack deadline.
//!   Each ends in exactly one event: [`Event::Published`] or
//!   [`Event::Discarded`]. A QoS 0 message ends in [`Event::Sent`] once
//!   written, or in nothing if the connection is lost first.
//! - SUBSCRIBE / UNSUBSCRIBE requests until acknowledged (also `INFLIGHT`).
//! - Packet ids of incoming QoS 2 messages from PUBREC until their PUBCOMP
//!   is written, so a resent PUBLISH (DUP) is not delivered twice (`INFLIGHT`
//!   of them; past that the oldest is forgotten).
//! - The subscription list, `SUBS` filters with their requested QoS: it is
//!   re-sent after a reconnect when the broker does not confirm it.
//! - Keep-alive: when the last packet was *sent*, and whether a PINGRESP is due.
//!
//! # Reconnecting
//!
//! [`Session::connection_lost`] forgets the connection, not the session.
//! The next [`Session::connect`] with clean session off resends, after
//! CONNACK and in their original order, every unacknowledged PUBLISH (DUP
//! set, same packet id) and the PUBREL of every QoS 2 message past PUBREC
//! (MQTT-4.4.0-1), whatever the CONNACK's session-present flag says; see
//! [`Options::republish_on_lost_session`] for the alternative. With clean
//! session on, in-flight messages are discarded at connect, each reported
//! as [`Event::Discarded`].
//!
//! Subscriptions are re-sent in one SUBSCRIBE when the broker has no
//! session, and also when it has one but a filter's SUBACK never arrived
//! ([`Options::resubscribe`]).

//!
//! # MQTT 5
//!
//! [`Session::connect_v5`] starts an MQTT 5 connection; the same calls and
//! events then carry what MQTT 5 adds (reason codes and properties in the
//! events, [`Session::publish_with`], [`Session::subscribe_v5`],
//! [`Session::auth`]). The CONNECT's properties set what the broker is
//! held to (Receive Maximum, Maximum Packet Size, Topic Alias Maximum);
//! the CONNACK's set what the session holds itself to
//! ([`Session::limits`]), and outgoing messages use the broker's topic
//! aliases ([`Options::topic_aliases`]).

pub(crate) mod acks;
mod event;
mod incoming;
mod outgoing;
mod protocol;
mod resume;
mod rx;
mod sent;
mod store;
mod timers;
mod tx;
#[cfg(feature = "v5")]
mod v5;

#[cfg(all(test, feature = "v3"))]
mod stored_sends_tests;
// Shares `stored_sends_tests`' generator.
#[cfg(all(test, feature = "v3", feature = "v5"))]
mod stored_sends_v5_tests;
#[cfg(all(test, feature = "v3"))]
mod tests;
#[cfg(all(test, feature = "v5"))]
mod v5_tests;

#[cfg(feature = "v3")]
use crate::codec::Packet;
use crate::codec::{
    self, ConnAck, Connect, ConnectReturnCode, PacketType, Publish, QoS, SubAck, Subscribe,
    SubscribeFilters, SubscribeReturnCode, Subscription, Unsubscribe, UnsubscribeFilters,
};
use crate::error::{AckKind, ResourceError, SessionError, UsageError};
use crate::time::{Duration, Instant};

pub use acks::AckToken;
#[cfg(feature = "v5")]
pub use event::Reason;
pub use event::{Closed, Connected, Dropped, Event, Message, Part, State, Stream, Version};
pub use store::Stage;
pub use timers::Timeouts;
#[cfg(feature = "v5")]
pub use v5::Limits;

use acks::Acks;
use incoming::Handled;
use outgoing::{Filters, Props};
pub(crate) use protocol::check_connect;
use protocol::{PayloadOut, Protocol, StoredSend};
use rx::{Any, Next, Rx};
use store::{Outgoing, Request, RequestKind, Span, Status, Store, StoreFull, Subscribed};
use tx::Encode;
#[cfg(feature = "v5")]
pub(crate) use v5::check_connect_v5;

type Result<T, E = SessionError> = core::result::Result<T, E>;

/// The smallest receive buffer a connection is started on: the longest
/// fixed header (5 bytes, a packet of 2 MiB or more, which is streamed or
/// skipped) and what must be read behind it to handle the packet without
/// the rest: a PUBLISH's topic length, which says where the packet id of
/// a QoS 1/2 message to skip is, so that it is still acknowledged, and an
/// MQTT 5 acknowledgement's packet id and reason code (3 bytes).
const MIN_RECEIVE_BUFFER: usize = 8;

/// The length of PUBACK, PUBREC, PUBREL and PUBCOMP: the room the session
/// keeps in the transmit queue before it handles a packet.
const ACK_LEN: usize = 4;

/// Session behaviour a firmware may change.
///
/// ```
/// use minimqtt::session::Options;
///
/// let options = Options { resubscribe: false, ..Options::DEFAULT };
/// assert!(!options.republish_on_lost_session);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Options {
    /// After a reconnect, re-subscribe every filter of the subscription
    /// list the broker has not confirmed (default on). Off: the
    /// application re-subscribes itself, e.g. in `on_connect`.
    pub resubscribe: bool,
    /// When a reconnect with clean session off finds no session on the
    /// broker (session present 0), resend the PUBLISH (DUP) of the QoS 2
    /// messages past PUBREC instead of their PUBREL (default off).
    ///
    /// MQTT-4.4.0-1 asks for the PUBREL, and that is the default. A broker
    /// that lost its state (restarted without persistence) then answers a
    /// PUBREL for an id it never saw, and the message, if that broker had
    /// not forwarded it yet, is lost. Resending the PUBLISH delivers it at
    /// least once instead, possibly twice: exactly once is impossible
    /// across a broker that forgot.
    pub republish_on_lost_session: bool,
    /// Deliver a PUBLISH too large for the receive buffer in parts as its
    /// bytes arrive ([`Event::Stream`]) when its header (topic and packet
    /// id) fits with room to spare, instead of skipping it
    /// ([`Event::Dropped`]) (default off; the client turns it on).
    pub stream: bool,
    /// After a reconnect, resend streamed QoS 1/2 messages
    /// ([`Session::publish_streamed`]) by asking for their payload again
    /// (default on). Off: they are discarded at CONNACK
    /// ([`Event::Discarded`]); the client turns it off when no
    /// payload source for resends is registered.
    pub resend_streamed: bool,
    /// MQTT 5: use the Topic Aliases the broker offers (its CONNACK's
    /// Topic Alias Maximum) for outgoing messages (default on): the first
    /// topics published on a connection, as many as the broker allows and
    /// `SUBS` holds, get aliases 1, 2, ... in order; the first PUBLISH of
    /// each carries the topic and its alias, later ones only the alias.
    /// Aliases are never reassigned, so later topics go without one; they
    /// start over on every connection, and their topics take store bytes
    /// while it lasts.
    pub topic_aliases: bool,
}

impl Options {
    /// Re-subscribe on, republish off, streaming off, resending streamed
    /// messages on, topic aliases on.
    pub const DEFAULT: Self = Self {
        resubscribe: true,
        republish_on_lost_session: false,
        stream: false,
        resend_streamed: true,
        topic_aliases: true,
    };
}

impl Default for Options {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A streamed payload to write, from [`Session::payload_due`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PayloadDue {
    /// Payload bytes written so far: where the next piece starts.
    pub offset: usize,
    /// The payload's whole length.
    pub len: usize,
    /// The message's packet id (QoS 1/2).
    pub packet_id: Option<u16>,
}

/// How an outgoing QoS 1/2 message ended, from [`Session::publish_outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// Still in flight (or discarded and not yet reported).
    Pending,
    /// PUBACK or PUBCOMP received.
    Completed,
    /// Discarded by a clean-session connect.
    Discarded,
    /// No record: the id was never used, or it ended before the last
    /// `INFLIGHT` messages that ended since.
    Unknown,
}

/// The sans-IO MQTT client session, MQTT 3.1.1 or 5 per connection. See
/// the [module docs](self).
///
/// `INFLIGHT` bounds outgoing QoS 1/2 messages, pending (un)subscribe
/// requests, and incoming QoS 2 messages awaiting their PUBCOMP (each
/// separately); `SUBS` bounds the subscription list. The receive slice
/// holds the largest packet that can be delivered. The arena holds, encoded,
/// the in-flight messages, pending requests and subscribed filters from its
/// start, and the transmit queue (the packets not yet written) above them:
/// one copy of each in-flight message serves both.
///
/// ```
/// use minimqtt::codec::{ConnAck, Connect, ConnectReturnCode, Packet};
/// use minimqtt::session::{Event, Session, Timeouts};
/// use minimqtt::time::Instant;
///
/// let (mut rx, mut arena) = ([0u8; 256], [0u8; 512]);
/// let mut session: Session<'_, 4, 4> = Session::new(&mut rx, &mut arena, Timeouts::DEFAULT);
/// let now = Instant::from_millis(0);
/// session.connect(now, &Connect::new("sensor-0001")).unwrap();
/// let connect = session.poll_transmit(now).len();
/// session.handle_transmit(now, connect);
///
/// // The broker's CONNACK arrives.
/// let connack = ConnAck { session_present: false, return_code: ConnectReturnCode::Accepted };
/// let n = Packet::ConnAck(connack).encode(session.receive_buffer()).unwrap();
/// session.commit(n);
/// match session.poll_event(now) {
///     Some(Event::Connected(info)) => assert!(!info.session_present),
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(session.poll_event(now), None);
/// ```
#[derive(Debug)]
pub struct Session<'b, const INFLIGHT: usize, const SUBS: usize> {
    rx: Rx<'b>,
    p: Protocol<'b, INFLIGHT, SUBS>,
    /// Bytes of handled packets to drop from the receive buffer at the next
    /// call, and bytes of an oversized packet to skip after them: the last
    /// event may borrow them until then.
    consume: usize,
    skip: usize,
    /// Acknowledgements of delivered (or dropped) messages: the last one,
    /// queued by the next call (or later, if the transmit queue is full),
    /// and the deferred ones.
    acks: Acks<INFLIGHT>,
    /// The message streaming through the receive buffer.
    stream: Option<Streaming>,
    /// What is still to be read of a packet too large to buffer.
    due: Option<Due>,
    /// Packets received and handled, ever.
    received: u64,
    /// Bytes of a packet being skipped arrived since the last
    /// [`poll_event`](Self::poll_event), which has the time to act on it.
    heard: bool,
}

/// What the session still reads of a packet too large to buffer, once
/// what comes before it has been skipped: it comes next in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    /// The packet id of a QoS 1/2 PUBLISH of `len` bytes whose topic is
    /// longer than the receive buffer; `rest` bytes follow it.
    Id {
        len: usize,
        qos: QoS,
        dup: bool,
        rest: usize,
    },
    /// The codes, `codes` bytes, that end a SUBACK (MQTT 5: or UNSUBACK)
    /// too large to buffer.
    Codes {
        packet_type: PacketType,
        packet_id: [u8; 2],
        codes: usize,
    },
}

impl Due {
    /// The bytes it takes.
    fn len(self) -> usize {
        match self {
            Self::Id { .. } => 2,
            Self::Codes { codes, .. } => codes,
        }
    }
}

/// Skips a packet's bytes up to `at`, `here` of them buffered: how many
/// of those are consumed now (the rest, and what is not yet read, is
/// left in `skip`). What starts at `at` is read once they have passed.
fn skip_to(skip: &mut usize, here: usize, at: usize) -> usize {
    let buffered = here.min(at);
    *skip = at - buffered;
    buffered
}

/// A message streaming through the receive buffer: its header is held at
/// the front of the buffer, its payload passes behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streaming {
    /// The header's length: fixed header, topic, packet id.
    header: usize,
    /// Where the topic is in the header.
    topic_at: usize,
    topic_len: usize,
    /// MQTT 5: where the properties are in the header (0: none, MQTT
    /// 3.1.1); they end where the payload starts.
    #[cfg(feature = "v5")]
    props_at: usize,
    /// MQTT 5: the Topic Alias that stands for the topic, which the
    /// header does not have (0: the topic is in the header).
    #[cfg(feature = "v5")]
    alias: u16,
    qos: QoS,
    retain: bool,
    dup: bool,
    packet_id: Option<u16>,
    /// The payload's length.
    len: usize,
    /// Payload bytes handed out so far.
    offset: usize,
    /// Bytes of the last chunk still buffered behind the header (kept
    /// while the end is reported, since packets may follow them).
    tail: usize,
    /// [`Part::End`] or [`Part::Aborted`] was reported: the header goes at
    /// the next call.
    over: bool,
}

impl<'b, const INFLIGHT: usize, const SUBS: usize> Session<'b, INFLIGHT, SUBS> {
    /// A disconnected session over the caller's receive buffer and arena
    /// (the transmit queue and the store; see [`Buffers`](crate::Buffers)).
    pub fn new(rx: &'b mut [u8], arena: &'b mut [u8], timeouts: Timeouts) -> Self {
        Self {
            rx: Rx::new(rx),
            p: Protocol::new(arena, timeouts),
            consume: 0,
            skip: 0,
            acks: Acks::new(),
            stream: None,
            due: None,
            received: 0,
            heard: false,
        }
    }

    // ---- getters ------------------------------------------------------

    /// Where the connection is.
    pub fn state(&self) -> State {
        self.p.state
    }

    /// The timeouts in use.
    pub fn timeouts(&self) -> &Timeouts {
        &self.p.timeouts
    }

    /// Changes the timeouts; running deadlines keep their old value.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.p.timeouts = timeouts;
    }

    /// The options in use.
    pub fn options(&self) -> &Options {
        &self.p.options
    }

    /// Changes the options; they apply from the next CONNACK.
    pub fn set_options(&mut self, options: Options) {
        self.p.options = options;
    }

    /// The capacity of the receive buffer: the largest packet that can be
    /// delivered.
    pub fn receive_capacity(&self) -> usize {
        self.rx.capacity()
    }

    /// Outgoing QoS 1/2 messages not yet completed.
    pub fn inflight(&self) -> usize {
        self.p.store.outgoing.iter().filter(|e| e.is_live()).count()
    }

    /// Packet ids and stages of the outgoing messages in flight, oldest first.
    pub fn inflight_ids(&self) -> impl Iterator<Item = (u16, Stage)> + '_ {
        self.p
            .store
            .outgoing
            .iter()
            .filter(|e| e.is_live())
            .map(|e| (e.packet_id, e.stage))
    }

    /// Whether another QoS 1/2 publish would fit the window right now.
    pub fn can_publish(&self) -> bool {
        let room = self.p.store.outgoing.len() < INFLIGHT
            || self
                .p
                .store
                .outgoing
                .iter()
                // A done entry is collected at the next publish, but for
                // one whose PUBLISH is still being written.
                .any(|e| e.status == Status::Done && Some(e.packet_id) != self.p.writing());
        // MQTT 5: the broker's Receive Maximum may be the smaller window.
        #[cfg(feature = "v5")]
        if room && self.p.version == Version::V5 {
            return self.inflight() < usize::from(self.p.limits.receive_maximum);
        }
        room
    }

    /// Incoming QoS 2 messages delivered and waiting for their PUBCOMP to
    /// be written.
    pub fn incoming_pending(&self) -> usize {
        self.p.incoming.len()
    }

    /// The subscription list: filters and their requested QoS.
    pub fn subscriptions(&self) -> impl Iterator<Item = (&str, QoS)> + '_ {
        self.p.store.subscriptions.iter().map(|s| {
            let filter = core::str::from_utf8(self.p.store.bytes(s.span)).unwrap_or("");
            (filter, s.qos)
        })
    }

    /// Whether a SUBSCRIBE / UNSUBSCRIBE with this packet id still waits
    /// for its acknowledgement.
    pub fn request_pending(&self, packet_id: u16) -> bool {
        self.p
            .store
            .requests
            .iter()
            .any(|r| r.packet_id == packet_id && !r.done)
    }

    /// Whether this outgoing message is still in flight.
    pub fn publish_pending(&self, packet_id: u16) -> bool {
        self.p.outcome(packet_id) == Outcome::Pending
    }

    /// How the outgoing message `packet_id` ended, or that it has not.
    pub fn publish_outcome(&self, packet_id: u16) -> Outcome {
        self.p.outcome(packet_id)
    }

    /// The MQTT version of the last connect.
    pub fn version(&self) -> Version {
        self.p.version
    }

    /// What the broker's CONNACK allows (MQTT 5); nothing is limited on
    /// MQTT 3.1.1.
    #[cfg(feature = "v5")]
    pub fn limits(&self) -> &Limits {
        &self.p.limits
    }

    /// The session-present flag of the last accepted CONNACK.
    pub fn session_present(&self) -> bool {
        self.p.session_present
    }

    /// Packets received from the broker and handled (or skipped), ever.
    pub fn packets_received(&self) -> u64 {
        self.received
    }

    /// Whether a message is streaming through the receive buffer (its end
    /// or abort not yet reported).
    pub fn is_streaming(&self) -> bool {
        self.stream.is_some_and(|s| !s.over)
    }

    /// Whether a PINGREQ waits for its PINGRESP. Not once bytes of a long
    /// message arrive: they prove the broker alive, and its PINGRESP
    /// queues behind them.
    pub fn ping_outstanding(&self) -> bool {
        self.p.pingresp_deadline.is_some()
    }

    /// Whether packets queued at CONNACK (resends, the re-SUBSCRIBE) are
    /// still to be queued. New operations wait for this to be false so
    /// resends go first.
    pub fn is_resending(&self) -> bool {
        self.p.is_resending()
    }

    /// Whether nothing waits to be written.
    pub fn transmit_idle(&self) -> bool {
        self.p.store.tx.is_empty()
            && self.p.stored.is_empty()
            && !self.p.ping_deferred
            && !self.p.is_resending()
            && !self.acks.has_ready()
            && self.p.payload.is_none()
    }

    // ---- input ----------------------------------------------------------

    /// The free space to read into. Read bytes from the network into it,
    /// then [`commit`](Self::commit) how many. Never empty while a packet
    /// that can be delivered is still arriving.
    pub fn receive_buffer(&mut self) -> &mut [u8] {
        self.settle();
        self.rx.receive_buffer()
    }

    /// `n` bytes were read into [`receive_buffer`](Self::receive_buffer).
    pub fn commit(&mut self, n: usize) {
        self.settle();
        // Bytes of a long message skipped prove the broker alive, as a
        // streamed chunk does.
        self.heard |= n > 0 && self.rx.skipping();
        self.rx.commit(n);
    }

    /// `n` bytes of [`poll_transmit`](Self::poll_transmit) were written at `now`.
    /// Only bytes the last `poll_transmit` handed out, and not reported
    /// yet, count: more (a report repeated, or without a `poll_transmit`,
    /// or one from before a new `connect`) is ignored.
    pub fn handle_transmit(&mut self, now: Instant, n: usize) {
        self.p.handle_transmit(now, n);
    }

    /// Acts on the deadlines passed at `now`: an acknowledgement that never
    /// came ends the connection ([`Event::Closed`]), a keep-alive period
    /// without sending queues a PINGREQ. Harmless before any deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.settle();
        self.apply_heard(now);
        self.p.handle_timeout(now);
    }

    // ---- output ---------------------------------------------------------

    /// The next thing that happened, or `None` until more bytes arrive (or
    /// the transmit queue is written: framing the next packet needs room
    /// for its acknowledgement).
    ///
    /// Changes after: [`commit`](Self::commit), [`handle_transmit`](Self::handle_transmit),
    /// [`handle_timeout`](Self::handle_timeout), [`connect`](Self::connect).
    #[must_use]
    pub fn poll_event(&mut self, now: Instant) -> Option<Event<'_>> {
        self.settle();
        self.apply_heard(now);
        // First: `sent_due` promises it. (None are due once the connection
        // is lost, so the events of a loss still come in order.)
        if self.p.unreported > 0 && self.p.next_sent() {
            let topic = self.p.reported_topic();
            return Some(Event::Sent { topic });
        }
        if self.stream.is_some_and(|s| !s.over) && self.p.state == State::Disconnected {
            return self.stream_event(Part::Aborted);
        }
        if let Some(reason) = self.p.closed.take() {
            return Some(Event::Closed(reason));
        }
        if let Some(i) = self.p.next_discarded() {
            return self.p.discarded_event(i);
        }
        if self.p.state == State::Disconnected || self.acks.is_owing() {
            return None;
        }
        // `cfg!`, not `#[cfg]`: without the feature no stream ever starts,
        // and the code of both is left out of the build.
        if cfg!(feature = "streaming") && self.stream.is_some() {
            return self.poll_stream(now);
        }
        // The packets are framed with shared borrows of the receive buffer,
        // and dropped from it only at the next call: the event may borrow
        // the last one.
        let mut offset = 0;
        // What is due of a packet too large to buffer, once it has arrived
        // at the front. A packet id behind a topic longer than the buffer:
        // the message is reported then, and acknowledged like any other
        // skipped one (MQTT-4.3.2-4, MQTT-4.3.3-8), in order. MQTT 5: the
        // reason codes of a SUBACK or UNSUBACK, handled as a whole one's.
        let mut codes = None;
        if let Some(due) = self.due {
            // Room for an acknowledgement, as for a packet framed below.
            let n = due.len();
            if !self.p.store.tx_has_room(ACK_LEN) || self.rx.after_hold().len() < n {
                return None;
            }
            self.due = None;
            match due {
                Due::Id {
                    len,
                    qos,
                    dup,
                    rest,
                } => {
                    self.received += 1;
                    self.consume = n;
                    self.skip = rest;
                    return Some(match self.due_id(len, qos, dup) {
                        Ok(event) => event,
                        Err(reason) => self.p.close(reason),
                    });
                }
                // Framed below, as a whole packet.
                Due::Codes {
                    packet_type,
                    packet_id,
                    codes: n,
                } => codes = Some((packet_type, packet_id, n)),
            }
        }
        let found = loop {
            if !self.p.store.tx_has_room(ACK_LEN) {
                break None;
            }
            let v5 = self.p.version == Version::V5;
            let next = match codes.take() {
                Some((packet_type, packet_id, n)) => self.rx.codes(packet_type, packet_id, n, v5),
                None => self
                    .rx
                    .frame_at(offset, v5, self.p.state == State::Connecting),
            };
            match next {
                Ok(Next::Incomplete) => break None,
                #[cfg(feature = "v5")]
                Ok(
                    Next::Packet(_, len)
                    | Next::Dropped { len, .. }
                    | Next::Trimmed(_, len, ..)
                    | Next::Codes { len, .. },
                ) if self.p.over_our_maximum(len) => {
                    // Over the Maximum Packet Size we advertised
                    // (MQTT-3.1.2-25).
                    self.received += 1;
                    break Some(Err(Closed::Violation(
                        codec::v5::ReasonCode::PacketTooLarge,
                    )));
                }
                Ok(Next::Packet(packet, len)) => {
                    offset += len;
                    self.received += 1;
                    match self.p.handle_any(now, packet, self.acks_qos1()) {
                        Ok(Handled::Nothing) => {}
                        Ok(Handled::Duplicate(id)) => {
                            if !self.acks.queue_pubrec(id) {
                                self.p.push_ack(PacketType::PubRec, id);
                            }
                        }
                        #[cfg(feature = "v5")]
                        Ok(Handled::Unresolved) => {
                            // Its topic is unknown: skipped and reported
                            // as a message that could not be delivered.
                            let ids = packet.publish_ids();
                            let (qos, packet_id) = ids.unwrap_or((QoS::AtMostOnce, None));
                            self.acks.owe_undeliverable(qos, packet_id);
                            self.consume = offset;
                            return Some(Event::Dropped(Dropped {
                                len,
                                packet_type: PacketType::Publish,
                                topic: None,
                                qos,
                                packet_id,
                            }));
                        }
                        Ok(handled) => {
                            if handled == Handled::Message {
                                if let Some((qos, packet_id)) = packet.publish_ids() {
                                    self.acks.owe(qos, packet_id);
                                }
                            }
                            break Some(Ok((handled, packet)));
                        }
                        Err(reason) => break Some(Err(reason)),
                    }
                }
                Ok(Next::Dropped {
                    len,
                    here,
                    packet_type,
                    qos,
                    dup,
                    topic,
                    packet_id,
                    retain,
                    payload_at,
                    topic_at,
                    id_at,
                    #[cfg(feature = "v5")]
                    alias,
                }) => {
                    self.received += 1;
                    // MQTT 5: the Topic Alias of a message too large to
                    // decode whole, which it may set even if skipped.
                    #[cfg(feature = "v5")]
                    if packet_type == PacketType::Publish
                        && self.p.version == Version::V5
                        && self.p.state == State::Connected
                    {
                        if let Some(id) = packet_id {
                            let qos1 = self.acks_qos1();
                            if let Err(reason) = self.p.check_receive_maximum(qos, id, dup, qos1) {
                                break Some(Err(reason));
                            }
                        }
                        match alias {
                            rx::AliasPeek::Read(alias) => {
                                match self.p.alias_use(alias, topic.is_some()) {
                                    Err(reason) => break Some(Err(reason)),
                                    Ok(v5::AliasUse::Set(a)) => {
                                        let topic = topic.unwrap_or("");
                                        let keep = self.p.alias_room(topic.len());
                                        self.p.store.set_in_alias(a, topic.as_bytes(), keep);
                                    }
                                    Ok(_) => {}
                                }
                            }
                            rx::AliasPeek::Unread => {
                                if self.p.advertised.topic_alias_maximum > 0 {
                                    // It may have mapped any alias anew
                                    // (§3.3.2.3.4): no mapping can be
                                    // trusted until the broker sets it
                                    // again.
                                    self.p.store.clear_in_aliases();
                                    self.p.aliases_uncertain = true;
                                }
                            }
                        }
                    }
                    // MQTT 5: a message that names only a Topic Alias has
                    // the topic the store keeps for it.
                    #[cfg(feature = "v5")]
                    let by_alias = match (topic, alias) {
                        (None, rx::AliasPeek::Read(Some(a)))
                            if self.p.version == Version::V5
                                && self.p.alias_topic(Some(a)).is_some() =>
                        {
                            a
                        }
                        _ => 0,
                    };
                    #[cfg(not(feature = "v5"))]
                    let by_alias = 0;
                    let stream = cfg!(feature = "streaming")
                        && self.p.options.stream
                        && (topic.is_some() || by_alias != 0);
                    if let (true, Some(header)) = (stream, payload_at) {
                        let topic_len = topic.map_or(0, str::len);
                        // (A header that fits holds the packet id too.)
                        if self.p.state == State::Connected && packet_type == PacketType::Publish {
                            if let (QoS::ExactlyOnce, Some(id)) = (qos, packet_id) {
                                if self.p.is_duplicate(id, dup) {
                                    // Delivered already: skipped, and
                                    // PUBREC'd again at once, as a resend
                                    // that fits is, unless its PUBREC is
                                    // still to come (§4.3.3).
                                    self.consume = offset + here;
                                    self.skip = len - here;
                                    if !self.acks.queue_pubrec(id) {
                                        self.p.push_ack(PacketType::PubRec, id);
                                    }
                                    return None;
                                }
                            }
                            self.consume = offset;
                            // MQTT 5: the properties follow the packet id.
                            #[cfg(feature = "v5")]
                            let props_at = match self.p.version {
                                Version::V5 => topic_at + topic_len + packet_id.map_or(0, |_| 2),
                                _ => 0,
                            };
                            let stream = Streaming {
                                header,
                                topic_at,
                                topic_len,
                                #[cfg(feature = "v5")]
                                props_at,
                                #[cfg(feature = "v5")]
                                alias: by_alias,
                                qos,
                                retain,
                                dup,
                                packet_id,
                                len: len - header,
                                offset: 0,
                                tail: 0,
                                over: false,
                            };
                            self.stream = Some(stream);
                            // Not held yet: the header is where it arrived.
                            let head = self.rx.after_hold().get(offset..).unwrap_or(&[]);
                            let props = stream.properties(head);
                            let topic = match topic {
                                Some(topic) => topic,
                                None => self.alias_topic(by_alias),
                            };
                            return Some(Event::Stream(stream.event(topic, Part::Start, props)));
                        }
                    }
                    if let Some(at) = id_at.filter(|_| {
                        packet_id.is_none()
                            && qos != QoS::AtMostOnce
                            && self.p.state == State::Connected
                    }) {
                        // Its id, past a topic longer than the buffer, is
                        // read as it arrives (`Due`, at the next call): the
                        // bytes before it go, and it is counted and
                        // reported then.
                        self.received -= 1;
                        let rest = len - at - 2;
                        offset += skip_to(&mut self.skip, here, at);
                        self.due = Some(Due::Id {
                            len,
                            qos,
                            dup,
                            rest,
                        });
                        break None;
                    }
                    offset += here;
                    self.skip = len - here;
                    match self.p.handle_dropped(packet_type, qos, dup, packet_id) {
                        Ok(owed) => {
                            crate::fmt::warning!("skipping a packet of {} bytes", len);
                            if owed {
                                self.acks.owe_undeliverable(qos, packet_id);
                            }
                            self.consume = offset;
                            let topic = match (topic, by_alias) {
                                (None, a) if a != 0 => Some(self.alias_topic(a)),
                                (topic, _) => topic,
                            };
                            return Some(Event::Dropped(Dropped {
                                len,
                                packet_type,
                                topic,
                                qos,
                                packet_id,
                            }));
                        }
                        Err(reason) => break Some(Err(reason)),
                    }
                }
                // What it says is all the handshake needs; the rest of its
                // bytes (its properties) are skipped as they arrive, so
                // nothing else is framed in this pass.
                #[cfg(feature = "v5")]
                Ok(Next::Trimmed(packet, len, here, properties)) => {
                    offset += here;
                    self.skip = len - here;
                    self.received += 1;
                    // A DISCONNECT may carry a Reason String whatever
                    // we asked (MQTT 5 §3.1.2.11.7).
                    let disconnect = matches!(packet, Any::V5(codec::v5::Packet::Disconnect(_)));
                    if let Err(reason) = self.p.check_trimmed(properties && !disconnect) {
                        break Some(Err(reason));
                    }
                    crate::fmt::warning!("a packet of {} bytes without its properties", len);
                    match self.p.handle_any(now, packet, self.acks_qos1()) {
                        Ok(Handled::Nothing) => break None,
                        Ok(handled) => break Some(Ok((handled, packet))),
                        Err(reason) => break Some(Err(reason)),
                    }
                }
                // Its codes are read once what comes before them has
                // passed (`Due`, at the next call).
                Ok(Next::Codes {
                    packet_type,
                    packet_id,
                    len,
                    at,
                    here,
                    properties,
                }) => {
                    if self.p.state != State::Connected {
                        self.received += 1;
                        break Some(Err(Closed::Protocol(packet_type)));
                    }
                    #[cfg(feature = "v5")]
                    if let Err(reason) = self.p.check_trimmed(properties) {
                        self.received += 1;
                        break Some(Err(reason));
                    }
                    #[cfg(not(feature = "v5"))]
                    let _ = properties;
                    crate::fmt::warning!("an acknowledgement of {} bytes read in two parts", len);
                    let codes = len - at;
                    offset += skip_to(&mut self.skip, here, at);
                    self.due = Some(Due::Codes {
                        packet_type,
                        packet_id,
                        codes,
                    });
                    break None;
                }
                Ok(Next::ClientPacket(packet_type)) => {
                    break Some(Err(Closed::Protocol(packet_type)));
                }
                // Not the broker's fault, but it cannot be handled: said
                // as too large, which is the closest reason there is.
                #[cfg(feature = "v5")]
                Ok(Next::TooLarge) => {
                    self.received += 1;
                    // Too large to handle, or one nobody asked for at any
                    // size.
                    let code = match self.p.auth_expected() {
                        true => codec::v5::ReasonCode::PacketTooLarge,
                        false => codec::v5::ReasonCode::ProtocolError,
                    };
                    break Some(Err(Closed::Violation(code)));
                }
                Err(malformed) => break Some(Err(Closed::Malformed(malformed))),
            }
        };
        self.consume = offset;
        match found? {
            Ok((handled, packet)) => self.p.event_any(handled, packet),
            Err(reason) => Some(self.p.close(reason)),
        }
    }

    /// The packet id of a skipped QoS 1/2 message, at the front of the
    /// buffer.
    fn due_id(&mut self, len: usize, qos: QoS, dup: bool) -> Result<Event<'static>, Closed> {
        let id = match self.rx.after_hold().get(..2) {
            Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
            _ => 0,
        };
        if id == 0 {
            return Err(Closed::Malformed(codec::Malformed::PacketId));
        }
        #[cfg(feature = "v5")]
        if self.p.version == Version::V5 {
            let qos1 = self.acks_qos1();
            self.p.check_receive_maximum(qos, id, dup, qos1)?;
        }
        if self
            .p
            .handle_dropped(PacketType::Publish, qos, dup, Some(id))?
        {
            self.acks.owe_undeliverable(qos, Some(id));
        }
        crate::fmt::warning!("skipping a packet of {} bytes", len);
        Ok(Event::Dropped(Dropped {
            len,
            packet_type: PacketType::Publish,
            topic: None,
            qos,
            packet_id: Some(id),
        }))
    }

    /// The next part of the streaming message: a chunk of what has
    /// arrived, or its end.
    fn poll_stream(&mut self, now: Instant) -> Option<Event<'_>> {
        let s = self.stream.as_mut()?;
        if s.over {
            return None;
        }
        if s.offset == s.len {
            s.over = true;
            if let (QoS::ExactlyOnce, Some(id)) = (s.qos, s.packet_id) {
                // Recorded only now: a stream cut short is not delivered,
                // so its resend must not count as a duplicate.
                self.p.receive_qos2(id, s.dup);
            }
            self.acks.owe(s.qos, s.packet_id);
            return self.stream_event(Part::End);
        }
        let data = self.rx.after_hold();
        let n = data.len().min(s.len - s.offset);
        if n == 0 {
            return None;
        }
        let offset = s.offset;
        s.offset += n;
        s.tail = n;
        // Bytes arriving prove the broker alive: a PINGRESP or PUBACK
        // queued behind a long message must not time the connection out.
        self.p.heard_from_broker(now);
        let data = data.get(..n)?;
        let topic = self.held_topic();
        let props = self.held_properties();
        let s = self.stream?;
        Some(Event::Stream(s.event(
            topic,
            Part::Chunk { offset, data },
            props,
        )))
    }

    /// An event about the streaming message, its topic read from the
    /// held header. Ends the stream for [`Part::Aborted`].
    fn stream_event(&mut self, part: Part<'static>) -> Option<Event<'_>> {
        let s = self.stream.as_mut()?;
        if part == Part::Aborted {
            s.over = true;
        }
        let s = *s;
        Some(Event::Stream(s.event(
            self.held_topic(),
            part,
            self.held_properties(),
        )))
    }

    /// MQTT 5: the topic the broker's alias stands for ("" for none, and
    /// without MQTT 5).
    fn alias_topic(&self, alias: u16) -> &str {
        #[cfg(feature = "v5")]
        if let Some(topic) = self.p.alias_topic(Some(alias)) {
            return topic;
        }
        let _ = alias;
        ""
    }

    /// The streaming message's properties, from the held header.
    fn held_properties(&self) -> Props<'_> {
        match self.stream {
            Some(s) => s.properties(self.rx.held()),
            None => Props::default(),
        }
    }

    fn held_topic(&self) -> &str {
        let Some(s) = self.stream else { return "" };
        #[cfg(feature = "v5")]
        if s.alias != 0 {
            return self.alias_topic(s.alias);
        }
        let bytes = self.rx.held().get(s.topic_at..s.topic_at + s.topic_len);
        // Checked when the stream started; read again because the buffer
        // is borrowed anew for each part.
        bytes
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// Bytes waiting to be written, after queueing what is due (the
    /// acknowledgement of the last delivered message, resends, a deferred
    /// PINGREQ). Write them, then call
    /// [`handle_transmit`](Self::handle_transmit) with how many were
    /// written, and call again until this is empty: a QoS 1/2 PUBLISH
    /// comes as a piece of its own, straight from the session store, which
    /// holds the only copy of an in-flight message.
    ///
    /// Bytes handed out stay valid until written in full, even if what is
    /// read before [`handle_transmit`](Self::handle_transmit) acknowledges
    /// their message: an acknowledgement completes it, and its stored
    /// packet stays until its bytes are out.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> &[u8] {
        self.settle();
        self.p.poll_transmit(now)
    }

    /// Whether the next [`poll_event`](Self::poll_event) is an
    /// [`Event::Sent`]: a QoS 0 PUBLISH has been written in full and not
    /// reported. A driver that reports these as soon as they are written
    /// (as `on_publish` promises) polls while this holds, without handing
    /// over the other events yet.
    #[must_use]
    pub fn sent_due(&self) -> bool {
        matches!(self.p.find_sent(), Some((_, Some(_))))
    }

    /// The topic of the [`Event::Sent`] that [`poll_event`](Self::poll_event)
    /// would return next, taken as that event; `None` (and nothing taken)
    /// if the next event is another. For a driver that reports QoS 0
    /// messages as soon as they are written, without handing over what was
    /// read yet.
    pub fn poll_sent(&mut self) -> Option<&str> {
        // The usual answer, without settling: the last report's bytes go
        // at the next call that does.
        if self.p.unreported == 0 {
            return None;
        }
        self.settle();
        if self.p.next_sent() {
            return Some(self.p.reported_topic());
        }
        None
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) has work:
    /// an acknowledgement deadline or the next keep-alive ping.
    ///
    /// Changes after every command, [`handle_transmit`](Self::handle_transmit),
    /// and packets handled by [`poll_event`](Self::poll_event).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.p.poll_timeout()
    }

    // ---- commands -------------------------------------------------------

    /// Starts a connection: queues `connect` and waits for CONNACK until
    /// the connack timeout. Refused with [`UsageError::AlreadyConnected`] unless
    /// [`Disconnected`](State::Disconnected). Anything queued or received
    /// on an earlier connection is dropped (a stream's abort too, if
    /// [`poll_event`](Self::poll_event) has not reported it); with `clean_session` the
    /// in-flight messages are discarded too (each reported as
    /// [`Event::Discarded`]).
    pub fn connect(&mut self, now: Instant, connect: &Connect<'_>) -> Result<()> {
        self.settle();
        self.check_receive_buffer(MIN_RECEIVE_BUFFER)?;
        self.p.connect(now, connect)?;
        self.drop_input();
        Ok(())
    }

    /// Refuses a connection on a receive buffer of less than `needed`
    /// bytes (see [`MIN_RECEIVE_BUFFER`]).
    fn check_receive_buffer(&self, needed: usize) -> Result<()> {
        if self.rx.capacity() < needed {
            return Err(SessionError::Resource(
                ResourceError::ReceiveBufferTooSmall { needed },
            ));
        }
        Ok(())
    }

    /// Starts an MQTT 5 connection, as [`connect`](Self::connect) does for
    /// 3.1.1. The CONNECT's properties set what the broker is held to:
    /// its Receive Maximum (more unacknowledged QoS 1/2 messages end the
    /// connection with [`Closed::Violation`]) and Maximum Packet Size (a
    /// larger packet too). The CONNACK's properties then set what the
    /// session holds itself to ([`limits`](Self::limits)), and its Server
    /// Keep Alive replaces `keep_alive`. With `clean_start` off and no
    /// session on the broker, the session's in-flight messages are
    /// discarded (MQTT-3.2.2-5), each reported as [`Event::Discarded`].
    /// A session lasts beyond its connection only with a Session Expiry
    /// Interval above 0 (absent, it is 0), in the CONNECT or in the
    /// CONNACK that replaces it: otherwise the next `connect_v5` discards
    /// it, clean start or not, and a CONNACK that says the broker kept it
    /// ends that connection (MQTT-3.2.2-4).
    ///
    /// Refused with [`UsageError::Unsupported`] for a Topic Alias Maximum
    /// above `SUBS` or a Receive Maximum above `INFLIGHT`: the session
    /// could not keep track of more. Send a Receive Maximum (the
    /// [`Client`](crate::Client) sends `INFLIGHT`): without one the broker
    /// may hold up to 65,535 QoS 2 messages unreleased, more than the
    /// session remembers, and if it resent one the session forgot, that
    /// message would be delivered twice.
    #[cfg(feature = "v5")]
    pub fn connect_v5(&mut self, now: Instant, connect: &codec::v5::Connect<'_>) -> Result<()> {
        self.settle();
        self.check_receive_buffer(MIN_RECEIVE_BUFFER)?;
        self.p.connect_v5(now, connect)?;
        self.drop_input();
        Ok(())
    }

    /// MQTT 5 enhanced authentication: queues an AUTH, the answer to the
    /// broker's [`Event::Auth`] (reason Continue Authentication, while
    /// connecting or re-authenticating), or, connected, a
    /// re-authentication (reason Re-authenticate). Its properties must
    /// name the CONNECT's Authentication Method. Refused with
    /// [`UsageError::Unsupported`] when the CONNECT named none.
    ///
    /// Connected, the broker's AUTH must follow within
    /// [`Timeouts::connack`] of `now`, or the connection ends with
    /// [`Event::Closed`] with [`Closed::Timeout`]`(`[`AckKind::Auth`]`)`;
    /// connecting, the CONNACK's deadline bounds the exchange.
    #[cfg(feature = "v5")]
    pub fn auth(&mut self, now: Instant, auth: &codec::v5::Auth<'_>) -> Result<()> {
        self.settle();
        self.p.auth(now, auth)
    }

    /// Forgets the connection (the transport failed or was closed) and
    /// keeps the session for the next [`connect`](Self::connect). A stream
    /// in progress is reported aborted by the next
    /// [`poll_event`](Self::poll_event). Pending
    /// SUBSCRIBE / UNSUBSCRIBE requests are dropped: the subscription list
    /// already holds what they asked for.
    pub fn connection_lost(&mut self) {
        self.p.connection_lost();
        // Drops the input, but the header of a stream whose abort is
        // still to be reported.
        self.settle();
    }

    /// Queues DISCONNECT; once it is written the connection is over (close
    /// the transport, MQTT-3.14.4-1). Refused with
    /// [`ResourceError::TransmitBufferTooSmall`] while the payload of a
    /// [`publish_streamed`](Self::publish_streamed) is still to be written:
    /// write it (or [`abandon_payload`](Self::abandon_payload)) first.
    pub fn disconnect(&mut self) -> Result<()> {
        self.settle();
        self.p.disconnect()
    }

    /// MQTT 5: queues a DISCONNECT with a reason code and properties; as
    /// [`disconnect`](Self::disconnect) otherwise. Reason 0x04 (Disconnect
    /// with Will Message) asks the broker to publish the will; a Session
    /// Expiry Interval replaces the CONNECT's, and 0 ends the session with
    /// this connection (the next `connect` starts a new one).
    ///
    /// Refused, with nothing queued: on an MQTT 3.1.1 connection
    /// ([`Unsupported::Mqtt5Only`](crate::Unsupported::Mqtt5Only)); a reason code only a server sends
    /// ([`EncodeError::ReasonCode`](crate::codec::EncodeError::ReasonCode),
    /// MQTT 5 Table 3-10) or a Server Reference
    /// ([`EncodeError::PropertyNotAllowed`](crate::codec::EncodeError::PropertyNotAllowed));
    /// a non-zero Session Expiry Interval when the session ends with its
    /// connection (MQTT-3.14.2-2,
    /// [`EncodeError::PropertyValue`](crate::codec::EncodeError::PropertyValue));
    /// over the broker's Maximum Packet Size
    /// ([`ResourceError::PacketTooLarge`]). Refused with
    /// [`ResourceError::TransmitBufferTooSmall`] while a streamed payload
    /// is still to be written, as [`disconnect`](Self::disconnect) is.
    #[cfg(feature = "v5")]
    pub fn disconnect_v5(&mut self, disconnect: &codec::v5::Disconnect<'_>) -> Result<()> {
        self.settle();
        self.p.disconnect_v5(disconnect)
    }

    /// Whether [`disconnect_v5`](Self::disconnect_v5) would take
    /// `disconnect`, without queuing it.
    #[cfg(feature = "v5")]
    pub fn check_disconnect_v5(&self, disconnect: &codec::v5::Disconnect<'_>) -> Result<()> {
        self.p.check_disconnect(disconnect)
    }

    /// Queues a PINGREQ (unless one is already outstanding).
    pub fn ping(&mut self, now: Instant) -> Result<()> {
        self.settle();
        self.p.ping(now)
    }

    /// Queues a PUBLISH. For QoS 1/2 the session picks the packet id (any
    /// `packet_id` in `publish` is ignored), keeps a copy until the
    /// handshake completes, and returns the id. A refused publish changes
    /// nothing.
    pub fn publish(&mut self, now: Instant, publish: &Publish<'_>) -> Result<Option<u16>> {
        self.settle();
        self.p.publish(now, publish, None, Props::default())
    }

    /// Queues a PUBLISH with MQTT 5 `properties` (Message Expiry
    /// Interval, Content Type, Response Topic, Correlation Data, User
    /// Properties, ...), as [`publish`](Self::publish) does. Refused with
    /// [`UsageError::Unsupported`] for non-empty properties on an MQTT
    /// 3.1.1 connection, a Topic Alias or Subscription Identifier, or
    /// what the broker's CONNACK does not allow ([`Limits`]).
    #[cfg(feature = "v5")]
    pub fn publish_with(
        &mut self,
        now: Instant,
        publish: &Publish<'_>,
        properties: &codec::v5::Properties<'_>,
    ) -> Result<Option<u16>> {
        self.settle();
        self.p.publish(now, publish, None, *properties)
    }

    /// Queues the head of a PUBLISH whose payload, `len` bytes, is too large
    /// for the arena (`publish.payload` is ignored): the fixed
    /// header counts the whole payload, and once the head is written
    /// [`payload_due`](Self::payload_due) asks for the payload, which the
    /// driver writes straight to the transport, in pieces, reporting each
    /// with [`handle_payload`](Self::handle_payload). Bytes queued after
    /// the head wait until the payload is written; one payload at a time
    /// ([`ResourceError::TransmitBufferTooSmall`] while another is due).
    ///
    /// QoS 1/2: the store keeps the head only; a resend after a reconnect
    /// asks for the payload again (see [`Options::resend_streamed`]).
    #[cfg(feature = "streaming")]
    pub fn publish_streamed(
        &mut self,
        now: Instant,
        publish: &Publish<'_>,
        len: usize,
    ) -> Result<Option<u16>> {
        self.settle();
        self.p.publish(now, publish, Some(len), Props::default())
    }

    /// The streamed payload to write now, if its head has been written
    /// (and nothing else may be written until it has).
    pub fn payload_due(&self) -> Option<PayloadDue> {
        let p = self.p.payload?;
        let due = self.p.state == State::Connected && self.p.store.tx.written() == p.at;
        due.then_some(PayloadDue {
            offset: p.offset,
            len: p.len,
            packet_id: p.packet_id,
        })
    }

    /// Free space of the arena, to put pieces of a streamed
    /// payload together before writing them, and the topic of the
    /// streamed QoS 1/2 message (for a resend, whose caller is gone).
    pub fn payload_buffer(&mut self) -> (&mut [u8], Option<&str>) {
        // The QoS 0 message last reported gives its bytes back.
        if self.p.reported > 0 {
            self.p.release_reported();
        }
        let id = self.p.payload.and_then(|p| p.packet_id);
        let (spare, head) = self.p.store.tx_spare(id);
        let topic = head.and_then(|head| {
            let (header, body) = codec::stored_head(head)?;
            Publish::stored_topic(header.flags, body).map(|(topic, _)| topic)
        });
        (spare, topic)
    }

    /// `n` bytes of the due payload were written at `now`. Ignored while
    /// [`payload_due`](Self::payload_due) is `None` (its head not written
    /// yet).
    ///
    /// While a payload is being written nothing is read, so the session
    /// waits for no acknowledgement then: its only deadline is write
    /// progress (none for the pingresp wait ends the connection with
    /// [`AckKind::PingResp`]), and every acknowledgement deadline restarts
    /// when the payload is done.
    pub fn handle_payload(&mut self, now: Instant, n: usize) {
        // Nothing is due before its head is written: bytes reported then
        // were not the payload's.
        if self.payload_due().is_none() {
            return;
        }
        if let Some(p) = &mut self.p.payload {
            p.offset = p.offset.saturating_add(n).min(p.len);
            if n > 0 {
                self.p.last_sent = now;
            }
            if p.offset == p.len {
                self.p.payload = None;
                self.p.restart_waits(now);
            }
        }
    }

    /// The application cannot supply the rest of the due payload: the
    /// message is discarded ([`Event::Discarded`] for QoS 1/2), and the
    /// connection must end, since a packet cannot be taken back half sent.
    pub fn abandon_payload(&mut self) {
        if let Some(id) = self.p.payload.and_then(|p| p.packet_id) {
            self.p.discard(id);
        }
        self.connection_lost();
    }

    /// The topic of the outgoing QoS 1/2 message `packet_id`, while it is
    /// in flight.
    pub fn outgoing_topic(&self, packet_id: u16) -> Option<&str> {
        let i = self
            .p
            .store
            .outgoing
            .iter()
            .position(|e| e.packet_id == packet_id && e.status != Status::Done)?;
        self.p.outgoing_topic(i).map(|(topic, _, _)| topic)
    }

    /// Queues a SUBSCRIBE for `filters` and records them in the
    /// subscription list (replacing the QoS of filters already there).
    /// Returns the packet id; the answer comes as [`Event::Subscribed`].
    /// Refused ([`ResourceError::TransmitBufferTooSmall`] / [`ResourceError::StoreFull`])
    /// when the whole list would no longer fit the one SUBSCRIBE that
    /// re-sends it after a reconnect.
    pub fn subscribe(&mut self, now: Instant, filters: &[Subscription<'_>]) -> Result<u16> {
        self.settle();
        self.p.subscribe(now, Filters::V3(filters))
    }

    /// Queues a SUBSCRIBE with MQTT 5 subscription options (No Local,
    /// Retain As Published, Retain Handling) and, optionally, a
    /// Subscription Identifier (1 to 268,435,455, which the broker puts on
    /// the messages the filters match), as [`subscribe`](Self::subscribe)
    /// does. The options and the identifier are kept in the subscription
    /// list and sent again when it is re-subscribed (one SUBSCRIBE per
    /// identifier). On an MQTT 3.1.1 connection only options with nothing
    /// but a QoS, and no identifier, are accepted. Refused with
    /// [`UsageError::Unsupported`] for a wildcard or shared subscription or
    /// an identifier the broker's CONNACK does not allow.
    #[cfg(feature = "v5")]
    pub fn subscribe_v5(
        &mut self,
        now: Instant,
        filters: &[codec::v5::Subscription<'_>],
        subscription_id: Option<u32>,
    ) -> Result<u16> {
        self.settle();
        self.p.subscribe(now, Filters::V5(filters, subscription_id))
    }

    /// Queues an UNSUBSCRIBE for `filters` and removes them from the
    /// subscription list. Returns the packet id; the answer comes as
    /// [`Event::Unsubscribed`].
    pub fn unsubscribe(&mut self, now: Instant, filters: &[&str]) -> Result<u16> {
        self.settle();
        self.p.unsubscribe(now, filters)
    }

    /// Defers the acknowledgement of the message just delivered
    /// ([`Event::Message`] or the [`Part::End`] of a stream): call it before
    /// any other call on the session. The PUBACK / PUBREC goes out when
    /// the token is redeemed with [`ack`](Self::ack); acknowledgements of
    /// later messages wait behind it, so the broker sees them in order
    /// (MQTT-4.6.0-2/3).
    ///
    /// Refused with [`UsageError::NothingToDefer`] for QoS 0 (or after
    /// another call), and with [`ResourceError::AcksFull`] when `INFLIGHT`
    /// are already deferred; the acknowledgement then goes out as usual.
    /// While deferred ones fill the queue, no further QoS 1/2 message is
    /// delivered: redeem tokens within the keep-alive, or the broker's
    /// PINGRESP waits behind them.
    pub fn defer_ack(&mut self) -> Result<AckToken> {
        self.acks.defer()
    }

    /// What a callback of the next message may be offered.
    pub(crate) fn ack_state(&self) -> acks::AckState {
        self.acks.state()
    }

    /// Redeems a token from [`defer_ack`](Self::defer_ack): its
    /// acknowledgement (and those waiting behind it) is queued. A token of
    /// an earlier connection is refused with [`UsageError::StaleAck`] and
    /// sends nothing.
    pub fn ack(&mut self, token: AckToken) -> Result<()> {
        self.settle();
        self.acks.redeem(token)?;
        self.settle();
        Ok(())
    }

    /// Skips the rest of the streaming message (after its [`Part::Start`],
    /// or any chunk): its remaining bytes are thrown away as they arrive,
    /// and a QoS 1/2 message is acknowledged as a dropped one is. Nothing
    /// happens without a stream.
    pub fn skip_stream(&mut self) {
        self.settle();
        let Some(s) = self.stream.take() else {
            return;
        };
        if s.over {
            return;
        }
        // A last chunk handed out is still buffered (`tail`).
        let left = s.len - s.offset + s.tail;
        let buffered = self.rx.after_hold().len().min(left);
        self.rx.release(buffered, left - buffered);
        if let Ok(true) = self
            .p
            .handle_dropped(PacketType::Publish, s.qos, s.dup, s.packet_id)
        {
            self.acks.owe_undeliverable(s.qos, s.packet_id);
        }
    }

    // ---- internals ------------------------------------------------------

    /// QoS 1 messages delivered whose PUBACK is not queued yet (MQTT 5's
    /// Receive Maximum counts them).
    fn acks_qos1(&self) -> usize {
        #[cfg(feature = "v5")]
        if self.p.version == Version::V5 {
            return self.acks.qos1_unacked();
        }
        0
    }

    /// What the last event left to do: drop its packet's bytes (or the
    /// streamed chunk's) and queue its acknowledgement.
    fn settle(&mut self) {
        if self.p.reported > 0 {
            self.p.release_reported();
        }
        self.rx.consume(self.consume, self.skip);
        self.consume = 0;
        self.skip = 0;
        if let Some(s) = self.stream.as_mut().filter(|_| cfg!(feature = "streaming")) {
            if s.over {
                self.rx.release(s.tail, 0);
                self.stream = None;
            } else {
                self.rx.hold(s.header);
                if s.offset < s.len && s.tail > 0 {
                    // A chunk was handed out: all the bytes behind the
                    // header were payload.
                    self.rx.truncate_to_hold();
                    s.tail = 0;
                }
            }
        }
        if self.p.state == State::Disconnected {
            // Keep the header of a stream whose abort is not reported yet.
            if self.stream.is_none() {
                self.drop_input();
            } else {
                self.acks.clear();
            }
            return;
        }
        if !self.acks.is_idle() {
            let p = &mut self.p;
            self.acks.drain(|ack| p.push_control(ack).is_ok());
        }
    }

    /// Acts on bytes of a skipped message that arrived since the last
    /// call with the time.
    fn apply_heard(&mut self, now: Instant) {
        if self.heard {
            self.heard = false;
            self.p.heard_from_broker(now);
        }
    }

    fn drop_input(&mut self) {
        self.heard = false;
        self.rx.clear();
        self.consume = 0;
        self.skip = 0;
        self.stream = None;
        self.due = None;
        self.acks.clear();
    }
}

impl<const INFLIGHT: usize, const SUBS: usize> Protocol<'_, INFLIGHT, SUBS> {
    /// Ends the connection for a fault of the broker's.
    fn close(&mut self, reason: Closed) -> Event<'static> {
        // Only between packets: after part of one, its rest is what the
        // broker expects next. Whole packets not yet started
        // (acknowledgements of this read, a stored PUBLISH not handed out,
        // which stays stored) are dropped with the connection; the
        // DISCONNECT goes alone.
        #[cfg(feature = "v5")]
        let goodbye = self.goodbye(reason).filter(|_| {
            self.store.tx.untouched()
                && self.handed == 0
                && !self.stored_out
                && self.payload.is_none()
        });
        // The rest of the input goes at the next call (`settle`).
        self.connection_lost();
        // MQTT 5: the reason, in the one packet left to write.
        #[cfg(feature = "v5")]
        if let Some(bytes) = goodbye {
            let _ = self.push_control(&bytes);
        }
        Event::Closed(reason)
    }
}

impl Streaming {
    /// MQTT 5: its properties, read from `head`, its header's bytes.
    fn properties<'a>(&self, head: &'a [u8]) -> Props<'a> {
        #[cfg(feature = "v5")]
        if self.props_at > 0 {
            // Checked when the stream started (its Topic Alias was read).
            return head
                .get(self.props_at..self.header)
                .and_then(|bytes| codec::v5::publish_properties(bytes).ok())
                .unwrap_or(Props::EMPTY);
        }
        let _ = head;
        Props::default()
    }

    fn event<'a>(&self, topic: &'a str, part: Part<'a>, props: Props<'a>) -> Stream<'a> {
        #[cfg(not(feature = "v5"))]
        let _ = props;
        Stream {
            #[cfg(feature = "v5")]
            properties: props,
            topic,
            qos: self.qos,
            retain: self.retain,
            dup: self.dup,
            packet_id: self.packet_id,
            len: self.len,
            header_len: self.header,
            part,
        }
    }
}
