//! Packets from the broker: acknowledgements, incoming messages and the
//! QoS 2 receiver flow (PUBREC out, PUBREL in, PUBCOMP out).

use super::*;

/// What handling a packet produced, without borrowing the session: the
/// event is built from it afterwards ([`Protocol::event`]), once no more
/// state changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handled {
    /// Nothing to report.
    Nothing,
    Connected(Connected<'static>),
    /// The PUBLISH is an application message to deliver.
    Message,
    /// The PUBLISH is a resend of this QoS 2 message, delivered already:
    /// PUBREC it again (§4.3.3), unless its PUBREC is still to come.
    Duplicate(u16),
    /// The outgoing entry at this index completed.
    Published(usize),
    /// The request at this index was acknowledged.
    Subscribed(usize),
    Unsubscribed(usize),
    Pong,
    /// MQTT 5: an AUTH for the application.
    #[cfg(feature = "v5")]
    Auth,
    /// MQTT 5: the broker's DISCONNECT ended the connection.
    #[cfg(feature = "v5")]
    Disconnected,
    /// MQTT 5: a message whose Topic Alias stands for a topic the session
    /// could not keep: skipped (reported as dropped) and acknowledged.
    #[cfg(feature = "v5")]
    Unresolved,
}

impl<const INFLIGHT: usize, const SUBS: usize> Protocol<'_, INFLIGHT, SUBS> {
    /// Handles one packet from the broker. An `Err` ends the connection.
    // Not inlined: one copy however the driver is compiled.
    #[inline(never)]
    #[cfg(feature = "v3")]
    pub(crate) fn handle(&mut self, now: Instant, packet: Packet<'_>) -> Result<Handled, Closed> {
        self.collect();
        match (self.state, packet) {
            (State::Connecting, Packet::ConnAck(ack)) => {
                self.on_connack(now, ack).map(Handled::Connected)
            }
            (State::Connected, Packet::Publish(p)) => {
                Ok(self.on_publish(p.qos, p.packet_id, p.dup))
            }
            (State::Connected, Packet::PubAck(ack)) => {
                Ok(self.on_complete(ack.packet_id, Stage::AwaitPubAck))
            }
            (State::Connected, Packet::PubRec(rec)) => {
                self.on_pubrec(now, rec.packet_id);
                Ok(Handled::Nothing)
            }
            (State::Connected, Packet::PubComp(comp)) => {
                Ok(self.on_complete(comp.packet_id, Stage::AwaitPubComp))
            }
            (State::Connected, Packet::PubRel(rel)) => {
                self.on_pubrel(rel.packet_id);
                Ok(Handled::Nothing)
            }
            (State::Connected, Packet::SubAck(ack)) => self.on_suback(ack),
            (State::Connected, Packet::UnsubAck(ack)) => Ok(self.on_unsuback(ack.packet_id)),
            (State::Connected, Packet::PingResp) => {
                self.pingresp_deadline = None;
                Ok(Handled::Pong)
            }
            // Only CONNACK may come first (MQTT-3.2.0-1), and only once; a
            // server never sends what only clients send.
            (_, other) => Err(Closed::Protocol(other.packet_type())),
        }
    }

    /// A packet too large to buffer was skipped: the same rules as for one
    /// that fitted. `true` if it is a QoS 1/2 PUBLISH that owes its
    /// acknowledgement, to be queued once the event is consumed.
    pub(crate) fn handle_dropped(
        &mut self,
        packet_type: PacketType,
        qos: QoS,
        dup: bool,
        packet_id: Option<u16>,
    ) -> Result<bool, Closed> {
        // A 3.1.1 CONNACK has a 2-byte body, and the receive buffer holds
        // 8 bytes at least (`Session::connect`): one too large is malformed
        // (MQTT-4.8.0-1), as the acknowledgements below.
        if self.state == State::Connecting
            && packet_type == PacketType::ConnAck
            && self.version == Version::V3_1_1
        {
            return Err(Closed::Malformed(codec::Malformed::TrailingBytes));
        }
        if self.state != State::Connected
            || packet_type == PacketType::ConnAck
            || !packet_type.sent_by_server()
        {
            return Err(Closed::Protocol(packet_type));
        }
        if packet_type != PacketType::Publish {
            // A packet of fixed size is never too large to buffer: PINGRESP
            // has no body, MQTT 3.1.1's acknowledgements two bytes
            // (MQTT-4.8.0-1: malformed, as when it fits).
            let acknowledgement = matches!(
                packet_type,
                PacketType::PubAck
                    | PacketType::PubRec
                    | PacketType::PubRel
                    | PacketType::PubComp
                    | PacketType::UnsubAck
            );
            if packet_type == PacketType::PingResp
                || (acknowledgement && self.version == Version::V3_1_1)
            {
                return Err(Closed::Malformed(codec::Malformed::TrailingBytes));
            }
            return Ok(false);
        }
        if let (QoS::ExactlyOnce, Some(id)) = (qos, packet_id) {
            // A resend of it is a duplicate, even though it was never
            // delivered: it was acknowledged.
            self.receive_qos2(id, dup);
        }
        Ok(qos != QoS::AtMostOnce && packet_id.is_some())
    }

    pub(crate) fn on_publish(&mut self, qos: QoS, packet_id: Option<u16>, dup: bool) -> Handled {
        if let (QoS::ExactlyOnce, Some(id)) = (qos, packet_id) {
            if !self.receive_qos2(id, dup) {
                // Delivered already; the broker missed our PUBREC (§4.3.3).
                return Handled::Duplicate(id);
            }
        }
        Handled::Message
    }

    /// Whether an incoming QoS 2 PUBLISH is a resend of one delivered
    /// already.
    pub(crate) fn is_duplicate(&self, packet_id: u16, dup: bool) -> bool {
        // Released on this connection and not marked as a resend
        // (MQTT-3.3.1-1): the broker sent PUBREL, so a first attempt with
        // the id is a new message (MQTT-4.3.3-2), even while our PUBCOMP
        // is still queued.
        self.incoming
            .iter()
            .any(|i| i.packet_id == packet_id && (dup || !i.is_released()))
    }

    /// Records an incoming QoS 2 message; `false` if it is a duplicate of
    /// one already received.
    pub(crate) fn receive_qos2(&mut self, packet_id: u16, dup: bool) -> bool {
        if self.is_duplicate(packet_id, dup) {
            #[cfg(feature = "v5")]
            if let Some(i) = self.incoming.iter_mut().find(|i| i.packet_id == packet_id) {
                i.resent();
            }
            return false;
        }
        // A released entry of the id goes, or writing its PUBCOMP would
        // forget the new message's id.
        self.incoming.retain(|i| i.packet_id != packet_id);
        self.remember_incoming(packet_id);
        true
    }

    pub(crate) fn on_pubrel(&mut self, packet_id: u16) {
        // Answer even for an unknown id: the broker may be retrying after
        // we lost the id across a reconnect (§4.3.3). MQTT 5 says so in
        // the answer (0x92 Packet Identifier not found, §3.7.2.1).
        let known = self.incoming.iter().position(|i| i.packet_id == packet_id);
        #[cfg(feature = "v5")]
        if self.version == Version::V5 && known.is_none() {
            self.answer_not_found(PacketType::PubComp, packet_id);
            return;
        }
        self.push_ack(PacketType::PubComp, packet_id);
        // The id is forgotten once the PUBCOMP is *written*
        // (`handle_transmit`). If the connection dies first, the broker
        // never learnt that the message is complete and may send the
        // PUBLISH again (mosquitto 2.0 does after a restart): the id must
        // still mark it as a duplicate.
        let at = self.store.tx.queued();
        if let Some(i) = known.and_then(|k| self.incoming.get_mut(k)) {
            i.release(at);
        }
    }

    pub(crate) fn on_complete(&mut self, packet_id: u16, stage: Stage) -> Handled {
        // An ack for an id we never used, or for the wrong stage, is
        // ignored: a broker resending after a reconnect can produce one.
        let found = self
            .store
            .outgoing
            .iter_mut()
            .enumerate()
            .find(|(_, e)| e.packet_id == packet_id && e.stage == stage && e.is_live());
        let Some((i, e)) = found else {
            return Handled::Nothing;
        };
        e.status = Status::Done;
        e.send = false;
        timers::deadline_gone(&self.earliest_ack, e.deadline);
        self.store.finished = true;
        self.unqueue_stored(packet_id);
        self.record(packet_id, Outcome::Completed);
        Handled::Published(i)
    }

    pub(crate) fn on_pubrec(&mut self, now: Instant, packet_id: u16) {
        let resending = self.is_resending();
        let Some(e) = self
            .store
            .outgoing
            .iter_mut()
            .find(|e| e.packet_id == packet_id && e.is_live() && e.stage != Stage::AwaitPubAck)
        else {
            // Unknown id or a QoS 1 message: nothing of ours to release.
            // MQTT 5 says so for an unknown one (0x92, §3.6.2.1), so that
            // the broker can end its side of the flow too.
            #[cfg(feature = "v5")]
            if self.version == Version::V5 && !self.store.id_in_use(packet_id) {
                self.answer_not_found(PacketType::PubRel, packet_id);
            }
            return;
        };
        e.stage = Stage::AwaitPubComp;
        e.rec = self.recs;
        self.recs = self.recs.wrapping_add(1);
        let deadline = now + self.timeouts.puback;
        let old = core::mem::replace(&mut e.deadline, deadline);
        timers::deadline_gone(&self.earliest_ack, old);
        // A resend still to come is not needed: the broker answered the
        // PUBLISH it had. Its wait for the PUBCOMP starts now (a resend's
        // did not count).
        let send = core::mem::replace(&mut e.send, false);
        self.deadline_added(deadline);
        // PUBRELs go out in the order of their PUBRECs (MQTT-4.6.0-4) and
        // after the resends queued before them: while resends (or PUBRELs)
        // still wait, behind them, in PUBREC order; not in the place of the
        // resend it replaces, which could put it before the PUBREL of an
        // earlier PUBREC. A resent PUBLISH already queued still goes, and
        // the PUBREL follows it. (One per live entry: it fits.)
        if send || resending {
            let _ = self.late_rels.push(packet_id);
        } else {
            self.push_ack(PacketType::PubRel, packet_id);
        }
    }

    /// MQTT 5: answers a PUBREC or PUBREL for a packet id we do not know
    /// with `kind` (PUBREL or PUBCOMP) and 0x92 Packet Identifier not
    /// found. A byte longer than the room framing keeps for an answer
    /// (`ACK_LEN`): without it, or over the broker's Maximum Packet Size
    /// (MQTT-3.2.2-15), Success rather than no answer.
    #[cfg(feature = "v5")]
    fn answer_not_found(&mut self, kind: PacketType, packet_id: u16) {
        let Some(bytes) = crate::codec::v5::not_found(kind, packet_id) else {
            return;
        };
        if self.check_packet_len(bytes.len()).is_err() || self.push_control(&bytes).is_err() {
            self.push_ack(kind, packet_id);
        }
    }

    pub(crate) fn on_suback(&mut self, ack: SubAck<'_>) -> Result<Handled, Closed> {
        let found = self.store.requests.iter_mut().enumerate().find(|(_, r)| {
            r.packet_id == ack.packet_id && r.kind == RequestKind::Subscribe && !r.done
        });
        let Some((i, r)) = found else {
            return Ok(Handled::Nothing);
        };
        // Answered, whatever follows: a SUBACK that does not match ends the
        // connection, and the request with it.
        r.done = true;
        timers::deadline_gone(&self.earliest_ack, r.deadline);
        let span = r.span;
        self.store.finished = true;
        let filters = self.stored_filters(span);
        if filters.len() != ack.return_codes.len() {
            return Err(Closed::Protocol(PacketType::SubAck));
        }
        // A refused filter is not subscribed: do not re-subscribe it later.
        let mut refused: heapless::Vec<usize, SUBS> = heapless::Vec::new();
        let mut granted: heapless::Vec<usize, SUBS> = heapless::Vec::new();
        for (sub, code) in filters.iter().zip(ack.return_codes.iter()) {
            if let Some(j) = self.store.find_subscription(sub.filter) {
                // A filter listed twice counts once, with its last code: the
                // lists then hold distinct indices of the subscription list
                // and cannot overflow.
                refused.retain(|&k| k != j);
                granted.retain(|&k| k != j);
                let _ = match code {
                    SubscribeReturnCode::Failure => refused.push(j),
                    SubscribeReturnCode::Success(_) => granted.push(j),
                };
            }
        }
        for &j in &granted {
            if let Some(s) = self.store.subscriptions.get_mut(j) {
                s.confirmed = true;
            }
        }
        // Highest index first, so removals do not shift the ones to come.
        // (No `sort`: it would pull kilobytes of code into firmware.)
        for j in (0..self.store.subscriptions.len()).rev() {
            if refused.contains(&j) {
                self.store.remove_subscription(j);
            }
        }
        Ok(Handled::Subscribed(i))
    }

    pub(crate) fn on_unsuback(&mut self, packet_id: u16) -> Handled {
        let found = self.store.requests.iter_mut().enumerate().find(|(_, r)| {
            r.packet_id == packet_id && r.kind == RequestKind::Unsubscribe && !r.done
        });
        let Some((i, r)) = found else {
            return Handled::Nothing;
        };
        r.done = true;
        timers::deadline_gone(&self.earliest_ack, r.deadline);
        self.store.finished = true;
        Handled::Unsubscribed(i)
    }

    /// Handles one packet of the connection's version.
    pub(crate) fn handle_any(
        &mut self,
        now: Instant,
        packet: Any<'_>,
        qos1_unacked: usize,
    ) -> Result<Handled, Closed> {
        let _ = (now, qos1_unacked);
        match packet {
            #[cfg(feature = "v3")]
            Any::V3(p) => self.handle(now, p),
            #[cfg(feature = "v5")]
            Any::V5(p) => self.handle_v5(now, p, qos1_unacked),
        }
    }

    /// The event for what [`handle_any`](Self::handle_any) reported.
    pub(crate) fn event_any<'a>(&'a self, handled: Handled, packet: Any<'a>) -> Option<Event<'a>> {
        let _ = handled;
        match packet {
            #[cfg(feature = "v3")]
            Any::V3(p) => self.event(handled, p),
            #[cfg(feature = "v5")]
            Any::V5(p) => self.event_v5(handled, p),
        }
    }

    /// The event for what [`handle`](Self::handle) reported about `packet`.
    #[cfg(feature = "v3")]
    pub(crate) fn event<'a>(&'a self, handled: Handled, packet: Packet<'a>) -> Option<Event<'a>> {
        Some(match (handled, packet) {
            (Handled::Nothing, _) => return None,
            (Handled::Connected(info), _) => Event::Connected(info),
            (Handled::Message, Packet::Publish(publish)) => Event::Message(publish.into()),
            (Handled::Message | Handled::Duplicate(_), _) => return None,
            (Handled::Published(i), _) => {
                let (topic, packet_id, qos) = self.outgoing_topic(i)?;
                Event::Published {
                    topic,
                    packet_id,
                    qos,
                    #[cfg(feature = "v5")]
                    reason: Reason::default(),
                }
            }
            (Handled::Subscribed(i), Packet::SubAck(ack)) => {
                let r = self.store.requests.get(i)?;
                Event::Subscribed {
                    packet_id: r.packet_id,
                    // Removing refused filters may have moved the stored
                    // request's bytes (not its index): read its span now.
                    filters: self.stored_filters(r.span),
                    codes: ack.return_codes,
                    #[cfg(feature = "v5")]
                    properties: codec::v5::Properties::EMPTY,
                }
            }
            (Handled::Subscribed(_), _) => return None,
            (Handled::Unsubscribed(i), _) => {
                let r = self.store.requests.get(i)?;
                let (_, body) = codec::stored(self.store.bytes(r.span))?;
                Event::Unsubscribed {
                    packet_id: r.packet_id,
                    filters: self.stored_unsubscribe_filters(body),
                    #[cfg(feature = "v5")]
                    codes: codec::ReturnCodes::new(&[]),
                    #[cfg(feature = "v5")]
                    properties: codec::v5::Properties::EMPTY,
                }
            }
            (Handled::Pong, _) => Event::Pong,
            #[cfg(feature = "v5")]
            (Handled::Auth | Handled::Disconnected | Handled::Unresolved, _) => return None,
        })
    }

    /// Discards the outgoing message `packet_id`: it will never complete.
    pub(crate) fn discard(&mut self, packet_id: u16) {
        if let Some(e) = self
            .store
            .outgoing
            .iter_mut()
            .find(|e| e.packet_id == packet_id && e.is_live())
        {
            e.status = Status::Discarded;
            e.send = false;
            timers::deadline_gone(&self.earliest_ack, e.deadline);
        }
    }

    /// Marks the oldest discarded message reported and returns its index.
    pub(crate) fn next_discarded(&mut self) -> Option<usize> {
        let i = self
            .store
            .outgoing
            .iter()
            .position(|e| e.status == Status::Discarded)?;
        let e = self.store.outgoing.get_mut(i)?;
        e.status = Status::Done;
        let id = e.packet_id;
        self.store.finished = true;
        self.record(id, Outcome::Discarded);
        Some(i)
    }

    pub(crate) fn discarded_event(&self, i: usize) -> Option<Event<'_>> {
        let (topic, packet_id, qos) = self.outgoing_topic(i)?;
        Some(Event::Discarded {
            topic,
            packet_id,
            qos,
        })
    }

    /// The topic, packet id and QoS of the stored outgoing entry `i`.
    pub(crate) fn outgoing_topic(&self, i: usize) -> Option<(&str, u16, QoS)> {
        let e = self.store.outgoing.get(i)?;
        // The head only, for a streamed message: enough for the topic.
        let (header, body) = codec::stored_head(self.store.bytes(e.span))?;
        let (topic, qos) = Publish::stored_topic(header.flags, body)?;
        Some((topic, e.packet_id, qos))
    }

    /// The filters of the stored SUBSCRIBE at `span`.
    pub(crate) fn stored_filters(&self, span: Span) -> SubscribeFilters<'_> {
        // The session encoded these bytes itself: they frame. (If they
        // did not, an empty list is the harmless answer.)
        let body = codec::stored(self.store.bytes(span)).map_or(&[][..], |(_, body)| body);
        // Requests do not outlive their connection: the bytes are in
        // its version.
        #[cfg(feature = "v5")]
        if self.version == Version::V5 {
            return SubscribeFilters::stored_v5(body);
        }
        SubscribeFilters::stored(body)
    }

    /// The filters of a stored UNSUBSCRIBE body.
    pub(crate) fn stored_unsubscribe_filters<'a>(&self, body: &'a [u8]) -> UnsubscribeFilters<'a> {
        #[cfg(feature = "v5")]
        if self.version == Version::V5 {
            return UnsubscribeFilters::stored_v5(body);
        }
        UnsubscribeFilters::stored(body)
    }
}
