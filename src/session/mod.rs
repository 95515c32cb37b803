//! The sans-IO protocol engine: everything MQTT 3.1.1 asks a client to
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
//! # What it keeps
//!
//! - The receive buffer: packets are framed in it, and a packet larger than
//!   it is skipped as it arrives ([`Event::Dropped`]).
//! - Outgoing QoS 1/2 messages until their handshake completes (encoded, in
//!   the store slice), at most `INFLIGHT` of them, each with an ack deadline.
//!   Each ends in exactly one event: [`Event::Published`] or
//!   [`Event::Discarded`].
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

mod event;
mod incoming;
mod outgoing;
mod protocol;
mod resume;
mod rx;
mod store;
mod timers;
mod tx;

#[cfg(test)]
mod tests;

use crate::codec::{
    self, ConnAck, Connect, ConnectReturnCode, Packet, PacketType, Publish, QoS, SubAck, Subscribe,
    SubscribeFilters, SubscribeReturnCode, Subscription, Unsubscribe, UnsubscribeFilters,
};
use crate::error::{AckKind, ResourceError, SessionError, UsageError};
use crate::time::{Duration, Instant};

pub use event::{Closed, Connected, Dropped, Event, State};
pub use store::Stage;
pub use timers::Timeouts;

use incoming::Handled;
use protocol::Protocol;
pub(crate) use protocol::check_connect;
use rx::{Next, Rx};
use store::{Outgoing, Request, RequestKind, Span, Status, Store, StoreFull, Subscribed};
use tx::{Encode, TxQueue};

type Result<T, E = SessionError> = core::result::Result<T, E>;

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
}

impl Options {
    /// Re-subscribe on, republish off.
    pub const DEFAULT: Self = Self {
        resubscribe: true,
        republish_on_lost_session: false,
    };
}

impl Default for Options {
    fn default() -> Self {
        Self::DEFAULT
    }
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

/// The sans-IO MQTT 3.1.1 client session. See the [module docs](self).
///
/// `INFLIGHT` bounds outgoing QoS 1/2 messages, pending (un)subscribe
/// requests, and incoming QoS 2 messages awaiting their PUBCOMP (each
/// separately); `SUBS` bounds the subscription list. The receive slice
/// holds the largest packet that can be delivered; the transmit slice must
/// hold the largest packet sent; the store slice holds in-flight messages,
/// pending requests and subscribed filters, encoded.
///
/// ```
/// use minimqtt::codec::{ConnAck, Connect, ConnectReturnCode, Packet};
/// use minimqtt::session::{Event, Session, Timeouts};
/// use minimqtt::time::Instant;
///
/// let (mut rx, mut tx, mut store) = ([0u8; 256], [0u8; 256], [0u8; 256]);
/// let mut session: Session<'_, 4, 4> = Session::new(&mut rx, &mut tx, &mut store, Timeouts::DEFAULT);
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
    /// The acknowledgement of the last delivered (or dropped) message,
    /// queued by the next call, or later if the transmit queue is full.
    owed: Option<[u8; ACK_LEN]>,
    /// Packets received and handled, ever.
    received: u64,
}

impl<'b, const INFLIGHT: usize, const SUBS: usize> Session<'b, INFLIGHT, SUBS> {
    /// A disconnected session over the caller's receive, transmit and
    /// store slices.
    pub fn new(
        rx: &'b mut [u8],
        tx: &'b mut [u8],
        store: &'b mut [u8],
        timeouts: Timeouts,
    ) -> Self {
        Self {
            rx: Rx::new(rx),
            p: Protocol::new(tx, store, timeouts),
            consume: 0,
            skip: 0,
            owed: None,
            received: 0,
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
        self.p.store.outgoing.len() < INFLIGHT
            || self
                .p
                .store
                .outgoing
                .iter()
                .any(|e| e.status == Status::Done)
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

    /// The session-present flag of the last accepted CONNACK.
    pub fn session_present(&self) -> bool {
        self.p.session_present
    }

    /// Packets received from the broker and handled (or skipped), ever.
    pub fn packets_received(&self) -> u64 {
        self.received
    }

    /// Whether a PINGREQ waits for its PINGRESP.
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
        self.p.tx.is_empty() && !self.p.is_resending() && self.owed.is_none()
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
        self.rx.commit(n);
    }

    /// `n` bytes of [`poll_transmit`](Self::poll_transmit) were written at `now`.
    pub fn handle_transmit(&mut self, now: Instant, n: usize) {
        self.p.handle_transmit(now, n);
    }

    /// Acts on the deadlines passed at `now`: an acknowledgement that never
    /// came ends the connection ([`Event::Closed`]), a keep-alive period
    /// without sending queues a PINGREQ. Harmless before any deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.settle();
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
        if let Some(reason) = self.p.closed.take() {
            return Some(Event::Closed(reason));
        }
        if let Some(i) = self.p.next_discarded() {
            return self.p.discarded_event(i);
        }
        if self.p.state == State::Disconnected || self.owed.is_some() {
            return None;
        }
        // The packets are framed with shared borrows of the receive buffer,
        // and dropped from it only at the next call: the event may borrow
        // the last one.
        let mut offset = 0;
        let found = loop {
            if !self.p.tx.has_room(ACK_LEN) {
                break None;
            }
            match self.rx.frame_at(offset) {
                Ok(Next::Incomplete) => break None,
                Ok(Next::Packet(packet, len)) => {
                    offset += len;
                    self.received += 1;
                    match self.p.handle(now, packet) {
                        Ok(Handled::Nothing) => {}
                        Ok(handled) => {
                            if let (Handled::Message, Packet::Publish(p)) = (handled, packet) {
                                self.owed = message_ack(p.qos, p.packet_id);
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
                }) => {
                    offset += here;
                    self.skip = len - here;
                    self.received += 1;
                    match self.p.handle_dropped(packet_type, qos, dup, packet_id) {
                        Ok(ack) => {
                            crate::fmt::warning!("skipping a packet of {} bytes", len);
                            self.owed = ack;
                            self.consume = offset;
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
                Ok(Next::ClientPacket(packet_type)) => {
                    break Some(Err(Closed::Protocol(packet_type)));
                }
                Err(malformed) => break Some(Err(Closed::Malformed(malformed))),
            }
        };
        self.consume = offset;
        match found? {
            Ok((handled, packet)) => self.p.event(handled, packet),
            Err(reason) => {
                // The rest of the input goes at the next call (`settle`).
                self.p.connection_lost();
                Some(Event::Closed(reason))
            }
        }
    }

    /// Bytes waiting to be written, after queueing what is due (the
    /// acknowledgement of the last delivered message, resends, a deferred
    /// PINGREQ). Write them, then call
    /// [`handle_transmit`](Self::handle_transmit) with how many were written.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> &[u8] {
        self.settle();
        self.p.poll_transmit(now)
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
    /// on an earlier connection is dropped; with `clean_session` the
    /// in-flight messages are discarded too (each reported as
    /// [`Event::Discarded`]).
    pub fn connect(&mut self, now: Instant, connect: &Connect<'_>) -> Result<()> {
        self.settle();
        self.p.connect(now, connect)?;
        self.drop_input();
        Ok(())
    }

    /// Forgets the connection (the transport failed or was closed) and
    /// keeps the session for the next [`connect`](Self::connect). Pending
    /// SUBSCRIBE / UNSUBSCRIBE requests are dropped: the subscription list
    /// already holds what they asked for.
    pub fn connection_lost(&mut self) {
        self.p.connection_lost();
        self.drop_input();
    }

    /// Queues DISCONNECT; once it is written the connection is over (close
    /// the transport, MQTT-3.14.4-1).
    pub fn disconnect(&mut self) -> Result<()> {
        self.settle();
        self.p.disconnect()
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
        self.p.publish(now, publish)
    }

    /// Queues a SUBSCRIBE for `filters` and records them in the
    /// subscription list (replacing the QoS of filters already there).
    /// Returns the packet id; the answer comes as [`Event::Subscribed`].
    /// Refused ([`ResourceError::TransmitBufferTooSmall`] / [`ResourceError::StoreFull`])
    /// when the whole list would no longer fit the one SUBSCRIBE that
    /// re-sends it after a reconnect.
    pub fn subscribe(&mut self, now: Instant, filters: &[Subscription<'_>]) -> Result<u16> {
        self.settle();
        self.p.subscribe(now, filters)
    }

    /// Queues an UNSUBSCRIBE for `filters` and removes them from the
    /// subscription list. Returns the packet id; the answer comes as
    /// [`Event::Unsubscribed`].
    pub fn unsubscribe(&mut self, now: Instant, filters: &[&str]) -> Result<u16> {
        self.settle();
        self.p.unsubscribe(now, filters)
    }

    // ---- internals ------------------------------------------------------

    /// What the last event left to do: drop its packet's bytes and queue
    /// its acknowledgement.
    fn settle(&mut self) {
        if self.p.state == State::Disconnected {
            self.drop_input();
            return;
        }
        self.rx.consume(self.consume, self.skip);
        self.consume = 0;
        self.skip = 0;
        if let Some(ack) = self.owed {
            if self.p.push_control(&ack).is_ok() {
                self.owed = None;
            }
        }
    }

    fn drop_input(&mut self) {
        self.rx.clear();
        self.consume = 0;
        self.skip = 0;
        self.owed = None;
    }
}

/// The acknowledgement a delivered message owes: PUBACK for QoS 1, PUBREC
/// for QoS 2.
fn message_ack(qos: QoS, packet_id: Option<u16>) -> Option<[u8; ACK_LEN]> {
    match qos {
        QoS::AtMostOnce => None,
        QoS::AtLeastOnce => codec::ack_bytes(PacketType::PubAck, packet_id?),
        QoS::ExactlyOnce => codec::ack_bytes(PacketType::PubRec, packet_id?),
    }
}
