//! The protocol state the session keeps between packets and connections,
//! and the commands that start and end a connection.

use super::*;

/// An incoming QoS 2 message between PUBREC and the PUBCOMP written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Incoming {
    pub(crate) packet_id: u16,
    /// Its PUBCOMP is queued on this connection: the id is forgotten once
    /// the stream is written past it (MQTT-4.3.3-2), and kept if the
    /// connection dies first, since the broker then never learnt the
    /// message is complete and may send it again.
    released: bool,
    /// Its PUBLISH came on this network connection: it counts against the
    /// Receive Maximum we advertised, a quota every connection starts
    /// afresh (§4.9), until the broker sends it again.
    #[cfg(feature = "v5")]
    current: bool,
    /// Where: the transmit-stream position just after the PUBCOMP, as its
    /// low 32 bits ([`near`]). Eight bytes an entry instead of 24.
    at: u32,
}

impl Incoming {
    pub(crate) fn new(packet_id: u16) -> Self {
        Self {
            packet_id,
            released: false,
            #[cfg(feature = "v5")]
            current: true,
            at: 0,
        }
    }

    pub(crate) fn is_released(self) -> bool {
        self.released
    }

    /// Whether its PUBLISH came on this network connection.
    #[cfg(feature = "v5")]
    pub(crate) fn is_current(self) -> bool {
        self.current
    }

    /// The broker sent its PUBLISH again on this connection.
    #[cfg(feature = "v5")]
    pub(crate) fn resent(&mut self) {
        self.current = true;
    }

    /// Its PUBCOMP is queued, ending at `at`.
    pub(crate) fn release(&mut self, at: u64) {
        self.released = true;
        // Truncated on purpose: `near` restores it.
        self.at = at as u32;
    }

    /// The connection died: its PUBCOMP was never written, and the
    /// broker's quota starts afresh on the next.
    pub(crate) fn unrelease(&mut self) {
        self.released = false;
        #[cfg(feature = "v5")]
        {
            self.current = false;
        }
    }

    /// Whether a write from stream position `before` to `written` took
    /// its PUBCOMP out. (`before` is at most its position: one written
    /// past is forgotten at that write.)
    pub(crate) fn written_out(self, before: u64, written: u64) -> bool {
        self.released && near(self.at, before) <= written
    }
}

/// The transmit-stream position whose low 32 bits are `low`, at `base` or
/// less than 4 GiB after it: where a queued packet ends, given what was
/// written (a queue holds less than a transmit buffer).
pub(crate) fn near(low: u32, base: u64) -> u64 {
    base + u64::from(low.wrapping_sub(base as u32))
}

/// What [`Protocol::poll_transmit`] hands out next.
#[derive(Debug, Clone, Copy)]
enum Piece {
    /// This many of the transmit queue's pending bytes, at most.
    Queue(usize),
    /// Nothing until the streamed payload is written.
    Payload,
    /// The first stored PUBLISH.
    Stored(StoredSend),
}

/// A stored PUBLISH queued for the wire (see [`Protocol::stored`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredSend {
    /// The transmit-stream position it is written at (after the queue's
    /// bytes before it, before the ones from there on), as its low 32
    /// bits: it lies between what was written and what was queued, less
    /// than a transmit buffer apart, so [`at`](Self::at) finds the rest.
    /// Eight bytes an entry instead of sixteen.
    at: u32,
    /// The outgoing entry whose bytes go out.
    pub(crate) packet_id: u16,
}

impl StoredSend {
    pub(crate) fn new(at: u64, packet_id: u16) -> Self {
        Self {
            // Truncated on purpose: `at` restores it.
            at: at as u32,
            packet_id,
        }
    }

    /// Its position, given the transmit stream's `written` (at most it).
    pub(crate) fn at(self, written: u64) -> u64 {
        near(self.at, written)
    }
}

/// The payload of a streamed PUBLISH, written by the driver straight to
/// the transport once its head is: bytes queued behind the head wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PayloadOut {
    /// The transmit-stream position just after the head.
    pub(crate) at: u64,
    /// Payload bytes written so far.
    pub(crate) offset: usize,
    pub(crate) len: usize,
    pub(crate) packet_id: Option<u16>,
}

/// Everything but the receive buffer: split from it so that an event can
/// borrow a received packet while the protocol state changes.
#[derive(Debug)]
pub(crate) struct Protocol<'b, const INFLIGHT: usize, const SUBS: usize> {
    pub(crate) state: State,
    pub(crate) timeouts: Timeouts,
    pub(crate) options: Options,
    pub(crate) keep_alive: Duration,
    pub(crate) clean_session: bool,
    pub(crate) store: Store<'b, INFLIGHT, SUBS>,
    pub(crate) incoming: heapless::Vec<Incoming, INFLIGHT>,
    pub(crate) next_packet_id: u16,
    pub(crate) last_sent: Instant,
    pub(crate) connack_deadline: Option<Instant>,
    /// A PINGREQ is queued or sent and its PINGRESP is due by then.
    pub(crate) pingresp_deadline: Option<Instant>,
    /// A PINGREQ is due but did not fit the transmit queue yet.
    pub(crate) ping_deferred: bool,
    /// A re-SUBSCRIBE of the unconfirmed filters waits for room to be queued.
    pub(crate) resubscribe: bool,
    /// Some outgoing entry may have its `send` flag set: only then does
    /// [`is_resending`](Self::is_resending) scan the window.
    pub(crate) sends_pending: bool,
    /// Why the connection ended, until reported.
    pub(crate) closed: Option<Closed>,
    /// The last accepted CONNACK's session-present flag.
    pub(crate) session_present: bool,
    /// The session of the last accepted connection ends with it: MQTT
    /// 3.1.1's clean session, MQTT 5's Session Expiry Interval of 0 (the
    /// CONNECT's, or the CONNACK's in its place).
    pub(crate) ephemeral: bool,
    /// What `ephemeral` becomes if the CONNACK awaited accepts (unless the
    /// CONNACK says otherwise; kept as the CONNECT's after it): a CONNECT
    /// the broker never accepted made no session. (Until then `ephemeral`
    /// says whether the session before this connection ended with its own:
    /// then this one has none to resume, MQTT-3.2.2-4.)
    pub(crate) ephemeral_next: bool,
    /// How the last outgoing messages ended, newest last.
    pub(crate) outcomes: heapless::Vec<(u16, Outcome), INFLIGHT>,
    /// A streamed payload due after its head.
    pub(crate) payload: Option<PayloadOut>,
    /// Where the last streamed head ends in the transmit stream: the
    /// packet's length in its header counts a payload the queue never
    /// holds, so [`next_sent`](Self::next_sent) needs this to step over it.
    pub(crate) head_end: u64,
    /// QoS 0 PUBLISHes queued whose [`Event::Sent`](super::Event::Sent)
    /// is still due; while any are, written bytes stay held in the
    /// transmit queue.
    pub(crate) unreported: usize,
    /// The length of the QoS 0 PUBLISH last reported, released at the next
    /// call.
    pub(crate) reported: usize,
    /// Where in the transmit stream the next report is looked for: a
    /// packet's start (the held bytes may start inside a packet written
    /// while no report was due).
    pub(crate) sent_from: u64,
    /// PUBRELs whose PUBREC came while resends still waited to be queued:
    /// they go behind those, in PUBREC order.
    pub(crate) late_rels: heapless::Vec<u16, INFLIGHT>,
    /// The arrival number the next PUBREC gets (`Outgoing::rec`).
    pub(crate) recs: u16,
    /// QoS 1/2 PUBLISH packets queued for the wire without a copy in the
    /// transmit queue: they are written straight from the store, where
    /// they wait for their acknowledgement anyway, so an in-flight message
    /// is held once. In order, each with the transmit-stream position of
    /// the queue's bytes it goes before. At most one per outgoing entry.
    pub(crate) stored: heapless::Vec<StoredSend, INFLIGHT>,
    /// How many bytes of the first of [`stored`](Self::stored) have been
    /// written.
    pub(crate) stored_written: usize,
    /// `poll_transmit` has handed the first stored PUBLISH out: its bytes
    /// may be in the driver's hands, written or not, and must go out whole
    /// even if what is read next (before `handle_transmit`) completes it.
    pub(crate) stored_out: bool,
    /// Bytes the last `poll_transmit` handed out that `handle_transmit`
    /// has not reported written: all the driver may claim. More, or a
    /// report without a `poll_transmit`, would mark bytes written that the
    /// driver never had, and the broker would read the rest of a packet
    /// whose start never came. While any are out, a write may be under
    /// way, so nothing pending can be replaced (MQTT 5's goodbye).
    pub(crate) handed: usize,
    /// The earliest acknowledgement deadline of the window and the
    /// pending requests, once computed (`None`: to be computed again).
    /// The driver asks for the next deadline several times a message;
    /// scanning a window of a hundred each time was most of a QoS 1
    /// message's cost. Kept up to date where a deadline starts, ends or
    /// moves ([`deadline_added`](Self::deadline_added),
    /// [`timers::deadline_gone`]).
    pub(crate) earliest_ack: timers::EarliestAck,
    /// The version of the last CONNECT.
    pub(crate) version: Version,
    /// MQTT 5: what the broker's CONNACK allows.
    #[cfg(feature = "v5")]
    pub(crate) limits: v5::Limits,
    /// MQTT 5: what our CONNECT advertised.
    #[cfg(feature = "v5")]
    pub(crate) advertised: v5::Advertised,
    /// MQTT 5: the CONNECT named an Authentication Method (the broker may
    /// send AUTH), and whether a re-authentication is under way.
    #[cfg(feature = "v5")]
    pub(crate) auth: v5::AuthState,
    /// MQTT 5: connected, our AUTH waits for the broker's until then.
    #[cfg(feature = "v5")]
    pub(crate) auth_deadline: Option<Instant>,
    /// MQTT 5: the broker's AUTH (Continue) waits for our answer, which
    /// is the only AUTH we may send until then (MQTT-4.12.0-3).
    #[cfg(feature = "v5")]
    pub(crate) auth_turn: bool,
    /// MQTT 5: a message too large to read its properties may have set a
    /// Topic Alias on this connection: an alias not known is then not
    /// blamed on the broker.
    #[cfg(feature = "v5")]
    pub(crate) aliases_uncertain: bool,
}

impl<'b, const INFLIGHT: usize, const SUBS: usize> Protocol<'b, INFLIGHT, SUBS> {
    pub(crate) fn new(arena: &'b mut [u8], timeouts: Timeouts) -> Self {
        Self {
            state: State::Disconnected,
            timeouts,
            options: Options::DEFAULT,
            keep_alive: Duration::ZERO,
            clean_session: true,
            store: Store::new(arena),
            incoming: heapless::Vec::new(),
            next_packet_id: 1,
            last_sent: Instant::default(),
            connack_deadline: None,
            pingresp_deadline: None,
            ping_deferred: false,
            resubscribe: false,
            sends_pending: false,
            closed: None,
            session_present: false,
            ephemeral: false,
            ephemeral_next: false,
            outcomes: heapless::Vec::new(),
            payload: None,
            head_end: 0,
            unreported: 0,
            reported: 0,
            sent_from: 0,
            late_rels: heapless::Vec::new(),
            recs: 0,
            stored: heapless::Vec::new(),
            stored_written: 0,
            stored_out: false,
            handed: 0,
            earliest_ack: core::cell::Cell::new(None),
            version: Version::DEFAULT,
            #[cfg(feature = "v5")]
            limits: v5::Limits::NONE,
            #[cfg(feature = "v5")]
            advertised: v5::Advertised::NONE,
            #[cfg(feature = "v5")]
            auth: v5::AuthState::Off,
            #[cfg(feature = "v5")]
            auth_deadline: None,
            #[cfg(feature = "v5")]
            auth_turn: false,
            #[cfg(feature = "v5")]
            aliases_uncertain: false,
        }
    }

    pub(crate) fn connect(&mut self, now: Instant, connect: &Connect<'_>) -> Result<()> {
        if self.state != State::Disconnected {
            // A second CONNECT on a connection is a protocol violation
            // (MQTT-3.1.0-2); the caller must end the connection first.
            return Err(SessionError::Usage(UsageError::AlreadyConnected));
        }
        check_connect(connect)?;
        #[cfg(not(feature = "v3"))]
        let _ = now;
        #[cfg(not(feature = "v3"))]
        return Err(SessionError::Usage(UsageError::Unsupported(
            crate::error::Unsupported::Mqtt3,
        )));
        #[cfg(feature = "v3")]
        let (keep_alive, clean) = (connect.keep_alive, connect.clean_session);
        #[cfg(feature = "v3")]
        self.start_connect(now, Encode::Connect(connect), keep_alive, clean, clean)?;
        #[cfg(feature = "v3")]
        {
            self.version = Version::V3_1_1;
            #[cfg(feature = "v5")]
            {
                self.limits = v5::Limits::NONE;
                self.advertised = v5::Advertised::NONE;
                self.auth = v5::AuthState::Off;
            }
            Ok(())
        }
    }

    /// Queues a valid CONNECT of either version and waits for CONNACK.
    pub(crate) fn start_connect(
        &mut self,
        now: Instant,
        connect: Encode<'_>,
        keep_alive: u16,
        clean_session: bool,
        ephemeral: bool,
    ) -> Result<()> {
        #[cfg(feature = "v5")]
        self.store.clear_in_aliases();
        let len = connect.encoded_len();
        if len > self.store.tx_capacity() {
            return Err(SessionError::Resource(
                ResourceError::TransmitBufferTooSmall { needed: len },
            ));
        }
        // Anything left of an earlier connection (if the driver did not
        // report its loss). PUBCOMPs never written: their ids stay.
        self.connection_lost();
        // MQTT-3.1.2-6: a 3.1.1 clean session lasts as long as its
        // connection, and nothing of it is reused by the next session; an
        // MQTT 5 session outlives its connection by its Session Expiry
        // Interval, whatever Clean Start said, so not at all with 0
        // (§3.1.2.11.2).
        let ended = self.ephemeral;
        if clean_session || ended {
            // Reported one by one as `Event::Discarded`, then removed.
            self.store.discard_inflight();
            self.incoming.clear();
        }
        self.push(connect)?;
        // Its room stays free for the next one, which reconnecting with
        // the store full of in-flight messages must still be able to queue.
        self.store.reserve_for_connect(len);
        self.keep_alive = Duration::from_secs(u64::from(keep_alive));
        self.clean_session = clean_session;
        self.ephemeral_next = ephemeral;
        self.state = State::Connecting;
        self.connack_deadline = Some(now + self.timeouts.connack);
        self.last_sent = now;
        self.closed = None;
        Ok(())
    }

    /// Forgets the connection, not the session.
    pub(crate) fn connection_lost(&mut self) {
        self.state = State::Disconnected;
        // QoS 0 messages written but not yet reported go unreported (the
        // driver reports them once written and flushed; a write or flush
        // that failed after one was taken whole leaves it here): at most
        // once promises no report of such a message.
        self.store.tx.clear();
        self.unreported = 0;
        self.reported = 0;
        for i in self.incoming.iter_mut() {
            i.unrelease();
        }
        self.connack_deadline = None;
        self.pingresp_deadline = None;
        self.ping_deferred = false;
        self.resubscribe = false;
        self.sends_pending = false;
        self.late_rels.clear();
        self.stored.clear();
        self.stored_written = 0;
        self.stored_out = false;
        self.handed = 0;
        self.payload = None;
        self.earliest_ack.set(None);
        // What to resend is decided by the next CONNACK.
        for e in self.store.outgoing.iter_mut() {
            e.send = false;
        }
        for s in self.store.subscriptions.iter_mut() {
            s.requested = false;
        }
        self.collect();
        self.store.clear_requests();
        // Topic aliases live as long as their network connection; the
        // broker's until the next CONNECT, since a message streaming under
        // one still reports its abort with its topic.
        #[cfg(feature = "v5")]
        {
            self.store.clear_out_aliases();
            self.aliases_uncertain = false;
            self.auth_deadline = None;
        }
    }

    /// Ends the connection for `reason`, reported by the next poll.
    pub(crate) fn lose(&mut self, reason: Closed) {
        self.connection_lost();
        self.closed = Some(reason);
    }

    pub(crate) fn disconnect(&mut self) -> Result<()> {
        if self.state == State::Disconnected {
            return Err(SessionError::Usage(UsageError::NotConnected));
        }
        // It would go behind a streamed payload, which is asked for only
        // while connected: it could never be written.
        if self.payload.is_some() {
            return Err(SessionError::Resource(
                ResourceError::TransmitBufferTooSmall {
                    needed: codec::Disconnect::BYTES.len(),
                },
            ));
        }
        self.push_control(&codec::Disconnect::BYTES)?;
        self.disconnected();
        Ok(())
    }

    /// After a DISCONNECT is queued: nothing more goes, nothing is awaited.
    pub(crate) fn disconnected(&mut self) {
        self.state = State::Disconnected;
        self.connack_deadline = None;
        self.pingresp_deadline = None;
        self.ping_deferred = false;
    }

    pub(crate) fn ping(&mut self, now: Instant) -> Result<()> {
        self.ready()?;
        if self.pingresp_deadline.is_none() {
            // A full queue (a large packet still being written) defers the
            // PINGREQ to `poll_transmit`; the PINGRESP deadline runs from
            // now either way, so a stalled write still ends in a timeout
            // instead of a wait without end.
            self.ping_deferred = self.push_control(&codec::PingReq::BYTES).is_err();
            self.pingresp_deadline = Some(now + self.pingresp_wait());
        }
        Ok(())
    }

    pub(crate) fn poll_transmit(&mut self, now: Instant) -> &[u8] {
        if self.state == State::Connected {
            if self.ping_deferred {
                self.ping_deferred = self.push_control(&codec::PingReq::BYTES).is_err();
            }
            self.collect();
            if self.payload.is_none() {
                self.queue_sends(now);
            }
        }
        loop {
            match self.next_piece() {
                Piece::Queue(n) => {
                    let k = n.min(self.store.tx_pending().len());
                    self.handed = k;
                    return self.store.tx_pending().get(..k).unwrap_or(&[]);
                }
                Piece::Payload => {
                    self.handed = 0;
                    return &[];
                }
                Piece::Stored(send) => {
                    let len = self.stored_bytes(send).len();
                    if len > 0 {
                        self.stored_out = true;
                        self.handed = len.saturating_sub(self.stored_written);
                        return self
                            .stored_bytes(send)
                            .get(self.stored_written..)
                            .unwrap_or(&[]);
                    }
                    // Its entry is gone, which nothing does while it is
                    // queued (see `stored_bytes`): never a stall.
                    self.stored.remove(0);
                    self.stored_written = 0;
                    self.stored_out = false;
                }
            }
        }
    }

    /// What is written next: the queue's bytes (up to a streamed payload or
    /// a stored PUBLISH, which go where they were queued), the payload of a
    /// streamed head written, or the first stored PUBLISH.
    fn next_piece(&self) -> Piece {
        let written = self.store.tx.written();
        let mut stop = u64::MAX;
        if let Some(p) = self.payload.filter(|_| cfg!(feature = "streaming")) {
            if p.at == written {
                return Piece::Payload;
            }
            stop = p.at;
        }
        if let Some(&s) = self.stored.first() {
            let at = s.at(written);
            // At the same position as a payload, the payload was first.
            if at == written {
                return Piece::Stored(s);
            }
            stop = stop.min(at);
        }
        Piece::Queue(usize::try_from(stop - written).unwrap_or(usize::MAX))
    }

    /// The packet of stored PUBLISH `s`, whole. Empty if its entry
    /// is gone, which nothing does while it is queued: an acknowledgement
    /// unqueues a send not started ([`unqueue_stored`](Self::unqueue_stored)),
    /// and one being written keeps its entry ([`collect`](Self::collect)).
    fn stored_bytes(&self, s: StoredSend) -> &[u8] {
        // The newest entries are the usual ones: search from the back. An
        // id is not reused while its entry is there, done or not.
        self.store
            .outgoing
            .iter()
            .rev()
            .find(|e| e.packet_id == s.packet_id)
            .map_or(&[], |e| self.store.bytes(e.span))
    }

    /// The outgoing entry whose stored PUBLISH has been handed out and not
    /// written in full: kept, done or not, until its bytes are out.
    pub(crate) fn writing(&self) -> Option<u16> {
        self.stored
            .first()
            .filter(|_| self.stored_out)
            .map(|s| s.packet_id)
    }

    /// Forgets the stored PUBLISH of outgoing `packet_id` queued and not
    /// yet handed out: the broker answered it already (the original, before
    /// a reconnect), so it is not sent again.
    pub(crate) fn unqueue_stored(&mut self, packet_id: u16) {
        if let Some(i) = self.stored.iter().position(|s| s.packet_id == packet_id) {
            if i > 0 || !self.stored_out {
                self.stored.remove(i);
            }
        }
    }

    pub(crate) fn handle_transmit(&mut self, now: Instant, n: usize) {
        let n = n.min(self.handed);
        if n == 0 {
            return;
        }
        self.handed -= n;
        // No more than `poll_transmit` handed out: what follows a streamed
        // head or comes after a stored PUBLISH is not the driver's to
        // claim yet.
        match self.next_piece() {
            Piece::Queue(limit) => {
                let before = self.store.tx.written();
                self.store.tx.consume(n.min(limit), self.unreported > 0);
                let written = self.store.tx.written();
                self.incoming.retain(|i| !i.written_out(before, written));
            }
            Piece::Payload => return,
            Piece::Stored(send) => {
                let len = self.stored_bytes(send).len();
                self.stored_written = self.stored_written.saturating_add(n).min(len);
                if self.stored_written == len {
                    self.stored_written = 0;
                    self.stored_out = false;
                    self.stored.remove(0);
                }
            }
        }
        self.last_sent = now;
    }

    pub(crate) fn ready(&self) -> Result<()> {
        if self.state != State::Connected {
            return Err(SessionError::Usage(UsageError::NotConnected));
        }
        Ok(())
    }

    /// Removes the entries whose end was reported.
    // Inlined: most calls find nothing to collect.
    #[inline]
    pub(crate) fn collect(&mut self) {
        if self.store.finished {
            self.store.collect(self.writing());
        }
    }

    /// Records an incoming QoS 2 id until its PUBCOMP is written. MQTT
    /// 3.1.1 lets a broker send any number of QoS 2 messages before
    /// releasing them, so the set can fill; the oldest id is then
    /// forgotten. Its PUBREL is still answered, and the only loss is
    /// de-duplication of that one message, which matters only if the
    /// broker sends it again (after a reconnect) before releasing it.
    /// Refusing the message instead would stall the broker's flow until a
    /// reconnect.
    /// The caller ([`receive_qos2`](Self::receive_qos2)) has just searched
    /// the set, so `packet_id` is not in it.
    pub(crate) fn remember_incoming(&mut self, packet_id: u16) {
        // With INFLIGHT = 0 the set is full and empty at once: nothing to
        // forget, and the id cannot be kept.
        if self.incoming.is_full() && !self.incoming.is_empty() {
            crate::fmt::warning!("incoming QoS 2 set full, forgetting the oldest id");
            self.incoming.remove(0);
        }
        let _ = self.incoming.push(Incoming::new(packet_id));
    }

    /// Remembers how the outgoing message `packet_id` ended.
    pub(crate) fn record(&mut self, packet_id: u16, outcome: Outcome) {
        // Oldest first; with INFLIGHT = 0 nothing is kept.
        if self.outcomes.is_full() && !self.outcomes.is_empty() {
            self.outcomes.remove(0);
        }
        let _ = self.outcomes.push((packet_id, outcome));
    }

    pub(crate) fn outcome(&self, packet_id: u16) -> Outcome {
        if self
            .store
            .outgoing
            .iter()
            .any(|e| e.packet_id == packet_id && e.status != Status::Done)
        {
            return Outcome::Pending;
        }
        self.outcomes
            .iter()
            .rev()
            .find(|(id, _)| *id == packet_id)
            .map_or(Outcome::Unknown, |&(_, o)| o)
    }

    /// The next id not taken by an entry still in the store; not yet taken.
    pub(crate) fn free_packet_id(&self) -> Result<u16> {
        let mut id = self.next_packet_id;
        // At most INFLIGHT * 2 ids are taken, far fewer than 65,535.
        for _ in 0..=u16::MAX {
            if id != 0 && !self.store.id_in_use(id) {
                return Ok(id);
            }
            id = id.checked_add(1).unwrap_or(1);
        }
        Err(SessionError::Resource(ResourceError::InflightFull))
    }

    /// Takes `id` from [`free_packet_id`](Self::free_packet_id), once the
    /// request that needs it can no longer fail: a refused request changes
    /// nothing.
    pub(crate) fn take_packet_id(&mut self, id: u16) {
        self.next_packet_id = id.checked_add(1).unwrap_or(1);
    }
}

/// Whether `connect` may be sent at all: its fields are valid, and an
/// empty client id asks for a clean session (MQTT-3.1.3-7). The client
/// checks this before opening a transport too.
pub(crate) fn check_connect(connect: &Connect<'_>) -> Result<()> {
    if connect.client_id.is_empty() && !connect.clean_session {
        return Err(SessionError::Usage(UsageError::EmptyClientId));
    }
    connect.validate()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Incoming, StoredSend};

    #[test]
    fn stored_sends_and_pubcomps_find_their_position_across_32_bits() {
        let edge = 1u64 << 32;
        for (at, written) in [
            (edge + 5, edge - 3),
            (edge - 1, edge - 1),
            (7, 0),
            (3 * edge, 3 * edge - 100),
        ] {
            assert_eq!(
                StoredSend::new(at, 1).at(written),
                at,
                "{at} from {written}"
            );
            let mut i = Incoming::new(1);
            assert!(!i.written_out(written, at));
            i.release(at);
            assert!(!i.written_out(written, at - 1), "{at} from {written}");
            assert!(i.written_out(written, at), "{at} from {written}");
            i.unrelease();
            assert!(!i.written_out(written, at));
        }
    }
}
