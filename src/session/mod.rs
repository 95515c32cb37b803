//! The sans-IO protocol engine: everything MQTT 3.1.1 asks a client to
//! remember, with no I/O, no clock reads and no `await`.
//!
//! A driver (the async [`Client`](crate::Client), a test, a fuzzer) feeds
//! it decoded packets with [`Session::handle_packet`], tells it the time
//! with [`Session::handle_timeout`], writes out [`Session::poll_transmit`]
//! and reports what was written with [`Session::handle_transmit`]; user
//! operations ([`Session::publish`], [`Session::subscribe`], ...) queue
//! packets. Every call takes `now` when it needs the time.
//!
//! # What it keeps
//!
//! - Outgoing QoS 1/2 messages until their handshake completes (encoded, in
//!   the store slice), at most `INFLIGHT` of them, each with an ack deadline.
//! - SUBSCRIBE / UNSUBSCRIBE requests until acknowledged (also `INFLIGHT`).
//! - Packet ids of incoming QoS 2 messages between PUBREC and PUBREL, so a
//!   resent PUBLISH (DUP) is not delivered twice (`INFLIGHT` of them; past
//!   that the oldest is forgotten, see `remember_incoming`).
//! - The subscription list, `SUBS` filters with their requested QoS: it is
//!   re-sent after a reconnect when the broker reports no session.
//! - Keep-alive: when the last packet was *sent*, and whether a PINGRESP is due.
//!
//! # Reconnecting
//!
//! [`Session::connection_lost`] forgets the connection, not the session.
//! The next [`Session::connect`] with clean session off resends, after
//! CONNACK and in their original order, every unacknowledged PUBLISH (DUP
//! set, same packet id) and the PUBREL of every QoS 2 message past PUBREC.
//! If the CONNACK says the broker has no session (it restarted without
//! persistence, or expired the session), a QoS 2 message past PUBREC gets
//! its PUBLISH resent instead of the PUBREL: the new broker never saw it.
//! With clean session on, in-flight state is dropped at connect.
//!
//! Subscriptions are re-sent in one SUBSCRIBE when the broker has no
//! session, and also when it has one but a filter's SUBACK never arrived.

mod incoming;
mod resume;
mod store;
mod tx;

#[cfg(test)]
mod tests;

use core::convert::Infallible;

use crate::codec::{
    ConnAck, Connect, ConnectReturnCode, Packet, PacketType, Publish, QoS, ReturnCodes, SubAck,
    Subscribe, SubscribeFilters, SubscribeReturnCode, Subscription, Unsubscribe,
    UnsubscribeFilters,
};
use crate::error::{AckKind, Error};
// The tests build acknowledgements with these (through `use super::*`);
// the session itself writes them directly (`TxQueue::push_ack`).
#[cfg(test)]
use crate::codec::{PubAck, PubComp, PubRec, PubRel};
use crate::time::{Duration, Instant};

pub use store::Stage;
use store::{Outgoing, Request, RequestKind, Span, Store, StoreFull, Subscribed};
use tx::{Encode, TxQueue};

type Result<T> = core::result::Result<T, Error<Infallible>>;

/// PINGREQ and DISCONNECT: a fixed header without a body.
const PINGREQ: [u8; 2] = [(PacketType::PingReq as u8) << 4, 0];
const DISCONNECT: [u8; 2] = [(PacketType::Disconnect as u8) << 4, 0];
/// The length of PUBACK, PUBREC, PUBREL and PUBCOMP.
const ACK_LEN: usize = 4;

/// How long the session waits for each acknowledgement, and how often it pings.
///
/// ```
/// use minimqtt::session::Timeouts;
/// use minimqtt::time::Duration;
///
/// let timeouts = Timeouts {
///     pingresp: Duration::from_secs(5),
///     ..Timeouts::default()
/// };
/// assert_eq!(timeouts.connack, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timeouts {
    /// CONNACK after CONNECT (default 10 s).
    pub connack: Duration,
    /// SUBACK after SUBSCRIBE (default 10 s).
    pub suback: Duration,
    /// UNSUBACK after UNSUBSCRIBE (default 10 s).
    pub unsuback: Duration,
    /// PUBACK, PUBREC and PUBCOMP after the packet that asks for them
    /// (default 10 s).
    pub puback: Duration,
    /// PINGRESP after PINGREQ (default 10 s).
    pub pingresp: Duration,
}

impl Timeouts {
    /// 10 s for every wait; `const`, so a `Config` can be built in a `const`.
    pub const DEFAULT: Self = {
        let ten = Duration::from_secs(10);
        Self {
            connack: ten,
            suback: ten,
            unsuback: ten,
            puback: ten,
            pingresp: ten,
        }
    };
}

impl Default for Timeouts {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum State {
    /// No connection; [`Session::connect`] starts one.
    Disconnected,
    /// CONNECT queued or sent, CONNACK not yet received.
    Connecting,
    /// CONNACK accepted.
    Connected,
}

/// What a handled packet meant for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event<'a> {
    /// CONNACK accepted.
    Connected {
        /// The broker's session-present flag.
        session_present: bool,
        /// Filters re-subscribed because the broker had no session (0 when
        /// it had one).
        resubscribed: usize,
        /// Outgoing messages being resent (clean session off).
        resending: usize,
    },
    /// An application message to deliver. After delivering it, call
    /// [`Session::acknowledge`] so the PUBACK / PUBREC goes out.
    Message(Publish<'a>),
    /// An outgoing QoS 1/2 message completed (PUBACK / PUBCOMP received).
    Published {
        /// Its topic.
        topic: &'a str,
        /// Its packet id.
        packet_id: u16,
        /// Its QoS.
        qos: QoS,
    },
    /// A SUBACK for one of our SUBSCRIBEs: `filters` pair with `codes`.
    Subscribed {
        /// The SUBSCRIBE's packet id.
        packet_id: u16,
        /// The filters as requested.
        filters: SubscribeFilters<'a>,
        /// What the broker granted, one code per filter.
        codes: ReturnCodes<'a>,
    },
    /// An UNSUBACK for one of our UNSUBSCRIBEs.
    Unsubscribed {
        /// The UNSUBSCRIBE's packet id.
        packet_id: u16,
        /// The filters it removed.
        filters: UnsubscribeFilters<'a>,
    },
    /// A PINGRESP.
    Pong,
}

/// The sans-IO MQTT 3.1.1 client session. See the [module docs](self).
///
/// `INFLIGHT` bounds outgoing QoS 1/2 messages, pending (un)subscribe
/// requests, and incoming QoS 2 messages awaiting PUBREL (each separately);
/// `SUBS` bounds the subscription list. The transmit slice must hold the
/// largest packet sent; the store slice holds in-flight messages, pending
/// requests and subscribed filters, encoded.
#[derive(Debug)]
pub struct Session<'b, const INFLIGHT: usize, const SUBS: usize> {
    state: State,
    timeouts: Timeouts,
    keep_alive: Duration,
    clean_session: bool,
    tx: TxQueue<'b>,
    store: Store<'b, INFLIGHT, SUBS>,
    incoming: heapless::Vec<u16, INFLIGHT>,
    /// Incoming ids whose PUBCOMP is queued, with the transmit-stream
    /// position at which it will have been written.
    releasing: heapless::Vec<(u16, u64), INFLIGHT>,
    next_packet_id: u16,
    last_sent: Instant,
    connack_deadline: Option<Instant>,
    /// A PINGREQ is queued or sent and its PINGRESP is due by then.
    pingresp_deadline: Option<Instant>,
    /// A PINGREQ is due but did not fit the transmit queue yet.
    ping_deferred: bool,
    /// Outgoing entries `resend_next..` still need resending after CONNACK.
    resend_next: usize,
    resend_end: usize,
}

impl<'b, const INFLIGHT: usize, const SUBS: usize> Session<'b, INFLIGHT, SUBS> {
    /// A disconnected session over the caller's transmit and store slices.
    pub fn new(tx: &'b mut [u8], store: &'b mut [u8], timeouts: Timeouts) -> Self {
        Self {
            state: State::Disconnected,
            timeouts,
            keep_alive: Duration::ZERO,
            clean_session: true,
            tx: TxQueue::new(tx),
            store: Store::new(store),
            incoming: heapless::Vec::new(),
            releasing: heapless::Vec::new(),
            next_packet_id: 1,
            last_sent: Instant::default(),
            connack_deadline: None,
            pingresp_deadline: None,
            ping_deferred: false,
            resend_next: 0,
            resend_end: 0,
        }
    }

    /// Where the connection is.
    pub fn state(&self) -> State {
        self.state
    }

    /// The timeouts in use.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Changes the timeouts; running deadlines keep their old value.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
    }

    /// Outgoing QoS 1/2 messages not yet completed.
    pub fn inflight(&self) -> usize {
        self.store.outgoing.iter().filter(|e| !e.done).count()
    }

    /// Packet ids and stages of the outgoing messages in flight, oldest first.
    pub fn inflight_ids(&self) -> impl Iterator<Item = (u16, Stage)> + '_ {
        self.store
            .outgoing
            .iter()
            .filter(|e| !e.done)
            .map(|e| (e.packet_id, e.stage))
    }

    /// Whether another QoS 1/2 publish would fit the window right now.
    pub fn can_publish(&self) -> bool {
        self.store.outgoing.len() < INFLIGHT || self.store.outgoing.iter().any(|e| e.done)
    }

    /// Incoming QoS 2 messages delivered and waiting for PUBREL.
    pub fn incoming_pending(&self) -> usize {
        self.incoming.len()
    }

    /// The subscription list: filters and their requested QoS.
    pub fn subscriptions(&self) -> impl Iterator<Item = (&str, QoS)> + '_ {
        self.store.subscriptions.iter().map(|s| {
            let filter = core::str::from_utf8(self.store.bytes(s.span)).unwrap_or("");
            (filter, s.qos)
        })
    }

    /// Whether a SUBSCRIBE / UNSUBSCRIBE with this packet id still waits
    /// for its acknowledgement.
    pub fn request_pending(&self, packet_id: u16) -> bool {
        self.store
            .requests
            .iter()
            .any(|r| r.packet_id == packet_id && !r.done)
    }

    /// Whether this outgoing message is still in flight.
    pub fn publish_pending(&self, packet_id: u16) -> bool {
        self.store
            .outgoing
            .iter()
            .any(|e| e.packet_id == packet_id && !e.done)
    }

    /// Whether packets queued at CONNACK (resends) are still to be queued.
    /// New operations wait for this to be false so resends go first.
    pub fn is_resending(&self) -> bool {
        self.resend_next < self.resend_end
    }

    /// Bytes waiting to be written, after moving the next resend into the
    /// transmit queue if it is empty. Write them, then call
    /// [`handle_transmit`](Self::handle_transmit) with how many were written.
    pub fn poll_transmit(&mut self, now: Instant) -> &[u8] {
        if self.ping_deferred && self.tx.has_room(2) && self.state == State::Connected {
            self.ping_deferred = self.tx.push_bytes(&PINGREQ).is_err();
        }
        if self.tx.is_empty() && self.state == State::Connected {
            self.collect();
            self.queue_resends(now);
        }
        self.tx.pending()
    }

    /// `n` bytes of [`poll_transmit`](Self::poll_transmit) were written at `now`.
    pub fn handle_transmit(&mut self, now: Instant, n: usize) {
        if n > 0 {
            self.tx.consume(n);
            self.last_sent = now;
            let written = self.tx.written();
            while let Some(i) = self.releasing.iter().position(|&(_, at)| at <= written) {
                let (id, _) = self.releasing.remove(i);
                self.forget_incoming(id);
            }
        }
    }

    /// Whether `packet_id` is an incoming QoS 2 message awaiting PUBREL.
    /// Not inlined: one search loop instead of one per caller in firmware.
    #[inline(never)]
    fn is_incoming(&self, packet_id: u16) -> bool {
        self.incoming.contains(&packet_id)
    }

    fn forget_incoming(&mut self, packet_id: u16) {
        if let Some(i) = self.incoming.iter().position(|&id| id == packet_id) {
            // `remove`, not `swap_remove`: the set stays oldest first.
            self.incoming.remove(i);
        }
    }

    /// Whether nothing waits to be written.
    pub fn transmit_idle(&self) -> bool {
        self.tx.is_empty() && !self.is_resending()
    }

    /// The next instant [`handle_timeout`](Self::handle_timeout) has work:
    /// an acknowledgement deadline or the next keep-alive ping.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        match self.state {
            State::Disconnected => return None,
            State::Connecting => {
                if let Some(t) = self.connack_deadline {
                    consider(t);
                }
                return next;
            }
            State::Connected => {}
        }
        if let Some(t) = self.pingresp_deadline {
            consider(t);
        } else if !self.keep_alive.is_zero() {
            consider(self.last_sent + self.keep_alive);
        }
        for e in self.store.outgoing.iter().filter(|e| !e.done) {
            consider(e.deadline);
        }
        for r in self.store.requests.iter().filter(|r| !r.done) {
            consider(r.deadline);
        }
        next
    }

    /// Checks the deadlines: an expired acknowledgement wait is an error
    /// (the connection is dead; call [`connection_lost`](Self::connection_lost)),
    /// and a keep-alive period without sending queues a PINGREQ.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        match self.state {
            State::Disconnected => return Ok(()),
            State::Connecting => {
                return match self.connack_deadline {
                    Some(t) if now >= t => Err(Error::Timeout(AckKind::ConnAck)),
                    _ => Ok(()),
                };
            }
            State::Connected => {}
        }
        if let Some(t) = self.pingresp_deadline {
            if now >= t {
                return Err(Error::Timeout(AckKind::PingResp));
            }
        }
        for e in self.store.outgoing.iter().filter(|e| !e.done) {
            if now >= e.deadline {
                return Err(Error::Timeout(match e.stage {
                    Stage::AwaitPubAck => AckKind::PubAck,
                    Stage::AwaitPubRec => AckKind::PubRec,
                    Stage::AwaitPubComp => AckKind::PubComp,
                }));
            }
        }
        for r in self.store.requests.iter().filter(|r| !r.done) {
            if now >= r.deadline {
                return Err(Error::Timeout(match r.kind {
                    RequestKind::Subscribe => AckKind::SubAck,
                    RequestKind::Unsubscribe => AckKind::UnsubAck,
                }));
            }
        }
        if self.pingresp_deadline.is_none()
            && !self.keep_alive.is_zero()
            && now >= self.last_sent + self.keep_alive
        {
            self.ping(now)?;
        }
        Ok(())
    }

    /// Starts a connection: queues `connect` and waits for CONNACK until
    /// the connack timeout. Refused with [`Error::AlreadyConnected`] unless
    /// [`Disconnected`](State::Disconnected). Anything queued from an earlier connection is
    /// discarded; with `clean_session` so is the in-flight state.
    pub fn connect(&mut self, now: Instant, connect: &Connect<'_>) -> Result<()> {
        if self.state != State::Disconnected {
            // A second CONNECT on a connection is a protocol violation
            // (MQTT-3.1.0-2); the caller must end the connection first.
            return Err(Error::AlreadyConnected);
        }
        if connect.client_id.is_empty() && !connect.clean_session {
            return Err(Error::EmptyClientId);
        }
        connect.validate()?;
        // Anything left of an earlier connection (if the driver did not
        // report its loss). PUBCOMPs never written: their ids stay in
        // `incoming`.
        self.connection_lost();
        if connect.clean_session {
            self.store.clear_inflight();
            self.incoming.clear();
        }
        self.push(Encode::Connect(connect))?;
        self.keep_alive = Duration::from_secs(u64::from(connect.keep_alive));
        self.clean_session = connect.clean_session;
        self.state = State::Connecting;
        self.connack_deadline = Some(now + self.timeouts.connack);
        self.pingresp_deadline = None;
        self.ping_deferred = false;
        self.last_sent = now;
        Ok(())
    }

    /// Forgets the connection (the transport failed or was closed) and
    /// keeps the session for the next [`connect`](Self::connect). Pending
    /// SUBSCRIBE / UNSUBSCRIBE requests are dropped: the subscription list
    /// already holds what they asked for.
    pub fn connection_lost(&mut self) {
        self.state = State::Disconnected;
        self.tx.clear();
        self.releasing.clear();
        self.connack_deadline = None;
        self.pingresp_deadline = None;
        self.ping_deferred = false;
        self.resend_next = 0;
        self.resend_end = 0;
        self.store.collect();
        self.store.clear_requests();
    }

    /// Queues DISCONNECT; once it is written the connection is over
    /// (call [`connection_lost`](Self::connection_lost) after closing).
    pub fn disconnect(&mut self) -> Result<()> {
        if self.state == State::Disconnected {
            return Err(Error::NotConnected);
        }
        self.push_bytes(&DISCONNECT)?;
        self.state = State::Disconnected;
        self.connack_deadline = None;
        self.pingresp_deadline = None;
        self.ping_deferred = false;
        Ok(())
    }

    /// Queues a PINGREQ (unless one is already outstanding).
    pub fn ping(&mut self, now: Instant) -> Result<()> {
        self.ready()?;
        if self.pingresp_deadline.is_none() {
            // A full queue (a large packet still being written, resends)
            // defers the PINGREQ to `poll_transmit`; the PINGRESP deadline
            // runs from now either way, so a stalled write still ends in a
            // timeout instead of a wait without end.
            self.ping_deferred = self.push_bytes(&PINGREQ).is_err();
            self.pingresp_deadline = Some(now + self.timeouts.pingresp);
        }
        Ok(())
    }

    /// Whether a PINGREQ waits for its PINGRESP.
    pub fn ping_outstanding(&self) -> bool {
        self.pingresp_deadline.is_some()
    }

    /// Queues a PUBLISH. For QoS 1/2 the session picks the packet id (any
    /// `packet_id` in `publish` is ignored), keeps a copy until the
    /// handshake completes, and returns the id.
    pub fn publish(&mut self, now: Instant, publish: &Publish<'_>) -> Result<Option<u16>> {
        self.ready()?;
        self.collect();
        let mut publish = *publish;
        publish.dup = false;
        if publish.qos == QoS::AtMostOnce {
            publish.packet_id = None;
            self.push(Encode::Publish(&publish))?;
            return Ok(None);
        }
        if self.store.outgoing.is_full() {
            return Err(Error::InflightFull);
        }
        let packet_id = self.allocate_packet_id()?;
        publish.packet_id = Some(packet_id);
        publish.validate()?;
        let len = publish.encoded_len();
        if len > self.store.free_bytes() {
            return Err(Error::StoreFull);
        }
        self.check_resubscribe_room(&[], len)?;
        self.check_tx_room(len)?;
        let bytes = self.tx.push(Encode::Publish(&publish))?;
        let span = self.store.append(bytes).map_err(|_| Error::StoreFull)?;
        let stage = if publish.qos == QoS::AtLeastOnce {
            Stage::AwaitPubAck
        } else {
            Stage::AwaitPubRec
        };
        let entry = Outgoing {
            packet_id,
            stage,
            deadline: now + self.timeouts.puback,
            span,
            done: false,
        };
        // Cannot fail: checked `is_full` above and nothing was collected since.
        let _ = self.store.outgoing.push(entry);
        Ok(Some(packet_id))
    }

    /// Queues a SUBSCRIBE for `filters` and records them in the
    /// subscription list (replacing the QoS of filters already there).
    /// Returns the packet id; the answer comes as [`Event::Subscribed`].
    /// Refused ([`Error::TransmitBufferTooSmall`] / [`Error::StoreFull`])
    /// when the whole list would no longer fit the one SUBSCRIBE that
    /// re-sends it after a reconnect.
    pub fn subscribe(&mut self, now: Instant, filters: &[Subscription<'_>]) -> Result<u16> {
        self.ready()?;
        self.collect();
        let new = filters
            .iter()
            .filter(|s| self.store.find_subscription(s.filter).is_none())
            .count();
        if self.store.subscriptions.len() + new > SUBS {
            return Err(Error::SubscriptionsFull);
        }
        let packet_id = self.allocate_packet_id()?;
        let subscribe = Subscribe {
            packet_id,
            filters: SubscribeFilters::new(filters),
        };
        subscribe.validate()?;
        let len = subscribe.encoded_len();
        let filter_bytes: usize = filters.iter().map(|s| s.filter.len()).sum();
        if len + filter_bytes > self.store.free_bytes() {
            return Err(Error::StoreFull);
        }
        self.check_resubscribe_room(filters, 0)?;
        let packet = Encode::Subscribe(&subscribe);
        self.push_request(now, packet, packet_id, RequestKind::Subscribe)?;
        for s in filters {
            match self.store.find_subscription(s.filter) {
                Some(i) => {
                    let entry = &mut self.store.subscriptions[i];
                    entry.qos = s.qos;
                    entry.confirmed = false;
                }
                None => {
                    // Room was checked above: neither can fail.
                    if let Ok(span) = self.store.append(s.filter.as_bytes()) {
                        let _ = self.store.subscriptions.push(Subscribed {
                            qos: s.qos,
                            span,
                            confirmed: false,
                        });
                    }
                }
            }
        }
        Ok(packet_id)
    }

    /// Queues an UNSUBSCRIBE for `filters` and removes them from the
    /// subscription list. Returns the packet id; the answer comes as
    /// [`Event::Unsubscribed`].
    pub fn unsubscribe(&mut self, now: Instant, filters: &[&str]) -> Result<u16> {
        self.ready()?;
        self.collect();
        let packet_id = self.allocate_packet_id()?;
        let unsubscribe = Unsubscribe {
            packet_id,
            filters: UnsubscribeFilters::new(filters),
        };
        unsubscribe.validate()?;
        let len = unsubscribe.encoded_len();
        if len > self.store.free_bytes() {
            return Err(Error::StoreFull);
        }
        let packet = Encode::Unsubscribe(&unsubscribe);
        self.push_request(now, packet, packet_id, RequestKind::Unsubscribe)?;
        for f in filters {
            if let Some(i) = self.store.find_subscription(f) {
                self.store.remove_subscription(i);
            }
        }
        Ok(packet_id)
    }

    /// Removes acknowledged entries, keeping the resend range on the
    /// same entries (it indexes `store.outgoing`).
    fn collect(&mut self) {
        let done_before =
            |end: usize, s: &Self| s.store.outgoing.iter().take(end).filter(|e| e.done).count();
        let next = done_before(self.resend_next, self);
        let end = done_before(self.resend_end, self);
        self.store.collect();
        self.resend_next -= next;
        self.resend_end -= end;
    }

    fn ready(&self) -> Result<()> {
        if self.state != State::Connected {
            return Err(Error::NotConnected);
        }
        Ok(())
    }

    /// Room for a packet of `len` bytes now. Without it the driver flushes
    /// and retries, unless the packet is larger than the whole queue (the
    /// same error: `has_room` is false then too, and the driver's retry
    /// only when the queue was not empty tells the two apart).
    fn check_tx_room(&self, len: usize) -> Result<()> {
        if !self.tx.has_room(len) || self.is_resending() {
            return Err(Error::TransmitBufferTooSmall { needed: len });
        }
        Ok(())
    }

    fn push(&mut self, packet: Encode<'_>) -> Result<()> {
        self.check_tx_room(packet.encoded_len())?;
        self.tx.push(packet)?;
        Ok(())
    }

    /// Queues a packet without a body (PINGREQ, DISCONNECT).
    fn push_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.check_tx_room(bytes.len())?;
        self.tx.push_bytes(bytes)?;
        Ok(())
    }

    /// Queues a PUBACK, PUBREC, PUBREL or PUBCOMP. Answers to the broker's
    /// messages are not held back by the resends (`check_tx_room`): they
    /// are not new traffic. A PUBREL is: PUBRELs go out in the order of
    /// their PUBRECs (MQTT-4.6.0-2), and the resends hold older ones.
    fn push_ack(&mut self, kind: PacketType, packet_id: u16) -> Result<()> {
        if kind == PacketType::PubRel {
            self.check_tx_room(ACK_LEN)?;
        } else if !self.tx.has_room(ACK_LEN) {
            return Err(Error::TransmitBufferTooSmall { needed: ACK_LEN });
        }
        self.tx.push_ack(kind, packet_id)?;
        Ok(())
    }

    fn push_request(
        &mut self,
        now: Instant,
        packet: Encode<'_>,
        packet_id: u16,
        kind: RequestKind,
    ) -> Result<()> {
        if self.store.requests.is_full() {
            return Err(Error::InflightFull);
        }
        self.check_tx_room(packet.encoded_len())?;
        let bytes = self.tx.push(packet)?;
        let span = self
            .store
            .append(bytes)
            .map_err(|StoreFull| Error::StoreFull)?;
        self.add_request(now, packet_id, kind, span);
        Ok(())
    }

    /// Records a request whose packet is queued and stored at `span`.
    fn add_request(&mut self, now: Instant, packet_id: u16, kind: RequestKind, span: Span) {
        let timeout = match kind {
            RequestKind::Subscribe => self.timeouts.suback,
            RequestKind::Unsubscribe => self.timeouts.unsuback,
        };
        let _ = self.store.requests.push(Request {
            packet_id,
            kind,
            deadline: now + timeout,
            span,
            done: false,
        });
    }

    fn allocate_packet_id(&mut self) -> Result<u16> {
        // At most INFLIGHT * 2 ids are taken, far fewer than 65,535.
        for _ in 0..=u16::MAX {
            let id = self.next_packet_id;
            self.next_packet_id = id.checked_add(1).unwrap_or(1);
            if id != 0 && !self.store.id_in_use(id) {
                return Ok(id);
            }
        }
        Err(Error::InflightFull)
    }
}
