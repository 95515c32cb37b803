//! Packets from the broker: acknowledgements, incoming messages and the
//! QoS 2 receiver flow (PUBREC out, PUBREL in, PUBCOMP out).

use super::*;
use crate::codec;

impl<const INFLIGHT: usize, const SUBS: usize> Session<'_, INFLIGHT, SUBS> {
    /// Handles one packet from the broker.
    ///
    /// An `Err` is a protocol violation or an overflow: the connection must
    /// be closed ([`connection_lost`](Self::connection_lost)).
    // Not inlined: the client's one caller is a large function, where this
    // one's many paths compiled hundreds of bytes larger.
    #[inline(never)]
    pub fn handle_packet<'a>(
        &'a mut self,
        now: Instant,
        packet: Packet<'a>,
    ) -> Result<Option<Event<'a>>> {
        self.collect();
        match (self.state, packet) {
            (State::Connecting, Packet::ConnAck(ack)) => self.on_connack(now, ack).map(Some),
            (State::Connecting, other) => Err(Error::Protocol(other.packet_type())),
            (State::Disconnected, other) => Err(Error::Protocol(other.packet_type())),
            (State::Connected, Packet::Publish(publish)) => self.on_publish(publish),
            (State::Connected, Packet::PubAck(ack)) => {
                Ok(self.on_complete(ack.packet_id, Stage::AwaitPubAck))
            }
            (State::Connected, Packet::PubRec(rec)) => self.on_pubrec(now, rec.packet_id),
            (State::Connected, Packet::PubComp(comp)) => {
                Ok(self.on_complete(comp.packet_id, Stage::AwaitPubComp))
            }
            (State::Connected, Packet::PubRel(rel)) => {
                // Answer even for an unknown id: the broker may be retrying
                // after we lost the id across a reconnect (§4.3.3).
                self.push_ack(PacketType::PubComp, rel.packet_id)?;
                // The id is forgotten once the PUBCOMP is *written*
                // (`handle_transmit`). If the connection dies first, the
                // broker never learnt that the message is complete and may
                // resend the PUBLISH (mosquitto 2.0 does after a restart):
                // the id must still mark it as a duplicate.
                if self.is_incoming(rel.packet_id)
                    && self
                        .releasing
                        .push((rel.packet_id, self.tx.queued()))
                        .is_err()
                {
                    self.forget_incoming(rel.packet_id);
                }
                Ok(None)
            }
            (State::Connected, Packet::SubAck(ack)) => self.on_suback(ack),
            (State::Connected, Packet::UnsubAck(ack)) => Ok(self.on_unsuback(ack.packet_id)),
            (State::Connected, Packet::PingResp) => {
                self.pingresp_deadline = None;
                Ok(Some(Event::Pong))
            }
            (State::Connected, other) => Err(Error::Protocol(other.packet_type())),
        }
    }

    /// Queues the acknowledgement of a delivered [`Event::Message`]:
    /// PUBACK for QoS 1, PUBREC for QoS 2, nothing for QoS 0.
    pub fn acknowledge(&mut self, qos: QoS, packet_id: Option<u16>) -> Result<()> {
        let Some(packet_id) = packet_id else {
            return Ok(());
        };
        match qos {
            QoS::AtMostOnce => Ok(()),
            QoS::AtLeastOnce => self.push_ack(PacketType::PubAck, packet_id),
            QoS::ExactlyOnce => self.push_ack(PacketType::PubRec, packet_id),
        }
    }

    /// Handles a packet the driver framed but did not parse: one too large
    /// for its receive buffer (with the QoS and packet id of a PUBLISH when
    /// they could be read), or one of a type only clients send. `Ok` means
    /// the packet is lost and the connection goes on, with the PUBLISH's
    /// acknowledgement queued; an `Err` is a protocol violation, as from
    /// [`handle_packet`](Self::handle_packet).
    pub fn handle_unparsed(
        &mut self,
        packet_type: PacketType,
        ack: Option<(QoS, u16)>,
    ) -> Result<()> {
        // Only CONNACK may come first (MQTT-3.2.0-1), and only once; a
        // server never sends what only clients send. Whatever the body,
        // these are violations, as they are when small enough to parse.
        if self.state != State::Connected
            || packet_type == PacketType::ConnAck
            || !packet_type.sent_by_server()
        {
            return Err(Error::Protocol(packet_type));
        }
        match ack {
            Some((qos, packet_id)) => self.acknowledge_dropped(qos, packet_id),
            None => Ok(()),
        }
    }

    /// Records an incoming QoS 1/2 message that was too large to deliver,
    /// so its acknowledgement still goes out and the broker stops resending.
    pub fn acknowledge_dropped(&mut self, qos: QoS, packet_id: u16) -> Result<()> {
        if qos == QoS::ExactlyOnce {
            self.remember_incoming(packet_id);
        }
        self.acknowledge(qos, Some(packet_id))
    }

    fn on_publish<'a>(&'a mut self, publish: Publish<'a>) -> Result<Option<Event<'a>>> {
        if let (QoS::ExactlyOnce, Some(id)) = (publish.qos, publish.packet_id) {
            if self.is_incoming(id) {
                // Delivered already; the broker missed our PUBREC (§4.3.3).
                self.push_ack(PacketType::PubRec, id)?;
                return Ok(None);
            }
            self.remember_incoming(id);
        }
        Ok(Some(Event::Message(publish)))
    }

    /// Records an incoming QoS 2 id until its PUBREL. MQTT 3.1.1 lets a
    /// broker send any number of QoS 2 messages before releasing them, so
    /// the set can fill; the oldest id is then forgotten. Its PUBREL is
    /// still answered, and the only loss is de-duplication of that one
    /// message, which matters only if the broker resends it (after a
    /// reconnect) before releasing it. Refusing the message instead would
    /// stall the broker's flow until a reconnect.
    fn remember_incoming(&mut self, packet_id: u16) {
        if self.is_incoming(packet_id) {
            return;
        }
        // With INFLIGHT = 0 the set is full and empty at once: nothing to
        // forget, and the id cannot be kept.
        if self.incoming.is_full() && !self.incoming.is_empty() {
            crate::fmt::warning!(
                "incoming QoS 2 set full, forgetting id {}",
                self.incoming[0]
            );
            self.incoming.remove(0);
        }
        let _ = self.incoming.push(packet_id);
    }

    fn on_complete(&mut self, packet_id: u16, stage: Stage) -> Option<Event<'_>> {
        // An ack for an id we never used, or for the wrong stage, is
        // ignored: a broker resending after a reconnect can produce one.
        let i = self
            .store
            .outgoing
            .iter()
            .position(|e| e.packet_id == packet_id && e.stage == stage && !e.done)?;
        self.store.outgoing[i].done = true;
        let entry = self.store.outgoing[i];
        let stored = codec::stored(self.store.bytes(entry.span));
        let (topic, qos) = stored
            .and_then(|(header, body)| Publish::stored_topic(header.flags, body))
            .unwrap_or(("", QoS::AtLeastOnce));
        Some(Event::Published {
            topic,
            packet_id,
            qos,
        })
    }

    fn on_pubrec(&mut self, now: Instant, packet_id: u16) -> Result<Option<Event<'_>>> {
        let found = self
            .store
            .outgoing
            .iter()
            .position(|e| e.packet_id == packet_id && !e.done);
        match found.map(|i| (i, self.store.outgoing[i].stage)) {
            Some((i, Stage::AwaitPubRec)) | Some((i, Stage::AwaitPubComp)) => {
                // A resend still to come carries the PUBREL in its place,
                // in order (`queue_resends` sends PUBREL past PUBREC).
                if !(self.resend_next..self.resend_end).contains(&i) {
                    self.push_ack(PacketType::PubRel, packet_id)?;
                }
                let e = &mut self.store.outgoing[i];
                e.stage = Stage::AwaitPubComp;
                e.deadline = now + self.timeouts.puback;
                Ok(None)
            }
            // Unknown id or a QoS 1 message: nothing of ours to release.
            _ => Ok(None),
        }
    }

    fn on_suback<'a>(&'a mut self, ack: SubAck<'a>) -> Result<Option<Event<'a>>> {
        let Some(i) = self.store.requests.iter().position(|r| {
            r.packet_id == ack.packet_id && r.kind == RequestKind::Subscribe && !r.done
        }) else {
            return Ok(None);
        };
        let span = self.store.requests[i].span;
        let Some(filters) = self.stored_filters(span) else {
            return Ok(None);
        };
        if filters.len() != ack.return_codes.iter().count() {
            return Err(Error::Protocol(PacketType::SubAck));
        }
        // A refused filter is not subscribed: do not re-subscribe it later.
        let mut refused: heapless::Vec<usize, SUBS> = heapless::Vec::new();
        let mut granted: heapless::Vec<usize, SUBS> = heapless::Vec::new();
        for (sub, code) in filters.iter().zip(ack.return_codes.iter()) {
            if let Some(j) = self.store.find_subscription(sub.filter) {
                let _ = match code {
                    SubscribeReturnCode::Failure => refused.push(j),
                    SubscribeReturnCode::Success(_) => granted.push(j),
                };
            }
        }
        for &j in &granted {
            self.store.subscriptions[j].confirmed = true;
        }
        // Highest index first, so removals do not shift the ones to come.
        // (No `sort`: it would pull kilobytes of code into firmware.)
        for j in (0..self.store.subscriptions.len()).rev() {
            if refused.contains(&j) {
                self.store.remove_subscription(j);
            }
        }
        // Removing filters may have moved the stored request's bytes (not
        // its index): read its span again.
        let r = &mut self.store.requests[i];
        r.done = true;
        let span = r.span;
        let Some(filters) = self.stored_filters(span) else {
            return Ok(None);
        };
        Ok(Some(Event::Subscribed {
            packet_id: ack.packet_id,
            filters,
            codes: ack.return_codes,
        }))
    }

    fn on_unsuback(&mut self, packet_id: u16) -> Option<Event<'_>> {
        let r =
            self.store.requests.iter_mut().find(|r| {
                r.packet_id == packet_id && r.kind == RequestKind::Unsubscribe && !r.done
            })?;
        r.done = true;
        let span = r.span;
        let (_, body) = codec::stored(self.store.bytes(span))?;
        Some(Event::Unsubscribed {
            packet_id,
            filters: UnsubscribeFilters::stored(body),
        })
    }

    /// The filters of the stored SUBSCRIBE at `span`.
    fn stored_filters(&self, span: Span) -> Option<SubscribeFilters<'_>> {
        let (_, body) = codec::stored(self.store.bytes(span))?;
        Some(SubscribeFilters::stored(body))
    }
}
