//! Resuming a session after CONNACK: re-subscribing what the broker does
//! not know, and re-sending in-flight messages in their original order.

use super::*;

impl<const INFLIGHT: usize, const SUBS: usize> Protocol<'_, INFLIGHT, SUBS> {
    /// Whether a reconnect could still re-send the subscription list (with
    /// `extra` filters added, with their Subscription Identifier) once
    /// `more` store bytes are taken. It goes in one SUBSCRIBE per
    /// Subscription Identifier, each kept as a request until its SUBACK:
    /// the arena must hold every round's copy and one round queued, next
    /// to the in-flight messages and the filters (the pending requests are
    /// dropped by then). Otherwise every reconnect would fail the same way.
    /// `reserve`: the room the transmit queue must keep for the new entry
    /// (a streamed head, which a resend queues again), 0 for none.
    pub(super) fn check_resubscribe_room(
        &self,
        extra: Filters<'_>,
        more: usize,
        reserve: usize,
    ) -> Result<()> {
        // One instance for publish and subscribe alike: `extra` is a type,
        // not an iterator (it runs on every QoS 1/2 publish; flash counts).
        let extra_id = extra.id().unwrap_or(0);
        let extra = extra.iter().map(|(f, _, _)| f);
        // Every filter as (length, Subscription Identifier): a known one
        // subscribed again takes the new identifier.
        let known = self.store.subscriptions.iter().map(|s| {
            let bytes = self.store.bytes(s.span);
            let again = extra.clone().any(|f| f.as_bytes() == bytes);
            (s.span.len, if again { extra_id } else { s.id })
        });
        let new = extra
            .clone()
            .filter(|f| self.store.find_subscription(f).is_none())
            .map(|f| (f.len(), extra_id));
        let all = known.chain(new);
        if all.clone().next().is_none() {
            return Ok(());
        }
        let filter_bytes: usize = all.clone().map(|(len, _)| len).sum();
        let (copies, largest) = self.resubscribe_rounds(all);
        if largest > self.store.capacity() {
            return Err(SessionError::Resource(
                ResourceError::TransmitBufferTooSmall { needed: largest },
            ));
        }
        let outgoing: usize = self
            .store
            .outgoing
            .iter()
            .filter(|e| e.status != Status::Done)
            .map(|e| e.span.len)
            .sum();
        let queued = largest.max(self.store.tx_reserve()).max(reserve);
        if outgoing + filter_bytes + more + copies + queued > self.store.capacity() {
            return Err(SessionError::Resource(ResourceError::StoreFull));
        }
        Ok(())
    }

    /// The re-subscription of `filters` (length and Subscription
    /// Identifier each): its rounds' lengths together, and the largest.
    /// Identifiers are MQTT 5's: a 3.1.1-only build has one round.
    #[cfg(not(feature = "v5"))]
    fn resubscribe_rounds(&self, filters: impl Iterator<Item = (usize, u32)>) -> (usize, usize) {
        let len = Subscribe::encoded_len_for(filters.map(|(len, _)| len));
        (len, len)
    }

    /// The re-subscription of `filters` (length and Subscription
    /// Identifier each): its rounds' lengths together, and the largest.
    #[cfg(feature = "v5")]
    fn resubscribe_rounds(
        &self,
        filters: impl Iterator<Item = (usize, u32)> + Clone,
    ) -> (usize, usize) {
        // One round per identifier, each counted at its first filter. With
        // one identifier, the usual case, each later filter's look back
        // stops at the first filter: one pass.
        let (mut copies, mut largest) = (0, 0);
        for (i, (_, id)) in filters.clone().enumerate() {
            if filters.clone().take(i).any(|(_, other)| other == id) {
                continue;
            }
            let lens = filters
                .clone()
                .filter(|&(_, other)| other == id)
                .map(|(len, _)| len);
            let mut len = Subscribe::encoded_len_for(lens);
            if self.version == Version::V5 {
                // The property list (its identifier's property, if any);
                // at most one more length byte.
                len += 2 + if id == 0 {
                    0
                } else {
                    1 + codec::varint_len(id)
                };
            }
            copies += len;
            largest = largest.max(len);
        }
        (copies, largest)
    }

    /// MQTT 5: whether a topic of the broker's Topic Alias, `len` bytes,
    /// may be kept: not with re-subscription rounds still to be queued
    /// unless they keep their room (they would wait forever).
    #[cfg(feature = "v5")]
    pub(crate) fn alias_room(&self, len: usize) -> bool {
        if !self.resubscribe {
            return true;
        }
        let filters = self.store.subscriptions.iter().map(|s| (s.span.len, s.id));
        let (copies, largest) = self.resubscribe_rounds(filters);
        self.store.has_room_with_tx(largest, len + copies)
    }

    pub(super) fn on_connack(
        &mut self,
        now: Instant,
        ack: ConnAck,
    ) -> Result<Connected<'static>, Closed> {
        self.connack_deadline = None;
        // Resends restart their deadlines, discards end theirs.
        self.earliest_ack.set(None);
        if ack.return_code != ConnectReturnCode::Accepted {
            return Err(Closed::Refused(ack.return_code));
        }
        if ack.session_present && self.clean_session {
            // MQTT-3.2.2-1: the broker must not claim a session we asked it
            // to discard; our state and its state cannot be reconciled.
            return Err(Closed::Protocol(PacketType::ConnAck));
        }
        self.state = State::Connected;
        self.session_present = ack.session_present;
        self.ephemeral = self.ephemeral_next;
        // `last_sent` stays: keep-alive counts from the CONNECT written.
        if !ack.session_present {
            // A new broker session has no QoS 2 message of ours awaiting
            // PUBREL and numbers its packets afresh: a kept id would make a
            // new message look like a duplicate and drop it.
            self.incoming.clear();
            // Nor any of our subscriptions.
            for sub in self.store.subscriptions.iter_mut() {
                sub.confirmed = false;
            }
            if self.options.republish_on_lost_session {
                // The broker that received these QoS 2 messages is gone (a
                // restart without persistence): the PUBLISH goes again, at
                // least once, since exactly once is impossible across a
                // broker that forgot.
                for e in self.store.outgoing.iter_mut() {
                    if e.stage == Stage::AwaitPubComp {
                        e.stage = Stage::AwaitPubRec;
                    }
                }
            }
            // Otherwise MQTT-4.4.0-1 to the letter: PUBREL is resent with
            // its original id, whatever the broker says it remembers.
        }
        let unconfirmed = self.store.subscriptions.iter().filter(|s| !s.confirmed);
        let resubscribed = if self.options.resubscribe {
            unconfirmed.count()
        } else {
            0
        };
        self.resubscribe = resubscribed > 0;
        let mut resent = 0;
        if !self.clean_session {
            // MQTT-4.4.0-1: every unacknowledged PUBLISH and PUBREL again,
            // in order, with its original id. Their deadlines restart when
            // each is actually queued.
            for e in self.store.outgoing.iter_mut().filter(|e| e.is_live()) {
                if e.payload > 0 && e.stage != Stage::AwaitPubComp && !self.options.resend_streamed
                {
                    // Nobody can supply its payload again.
                    e.status = Status::Discarded;
                    continue;
                }
                e.send = true;
                e.deadline = now + self.timeouts.puback;
                resent += 1;
            }
            self.sends_pending = resent > 0;
        }
        Ok(Connected::new(ack.session_present, resubscribed, resent))
    }

    /// Queues one SUBSCRIBE with every filter of the subscription list that
    /// no SUBACK of the current broker session has confirmed, if it fits
    /// now; `false` to try again when the transmit queue has drained.
    pub(super) fn queue_resubscribe(&mut self, now: Instant) -> bool {
        if self.store.requests.is_full() {
            // One round per Subscription Identifier, each a request: the
            // next waits for a SUBACK. (With INFLIGHT = 0 nothing can be
            // subscribed, so nothing is re-subscribed either.)
            return false;
        }
        // The filters of one Subscription Identifier (that of the first
        // one due) go together.
        let Some(id) = self
            .store
            .subscriptions
            .iter()
            .find(|s| s.due())
            .map(|s| s.id)
        else {
            return true;
        };
        let Ok(packet_id) = self.free_packet_id() else {
            // Not reached: with a request slot free, so is an id. Were it,
            // the round is given up on this connection, as below.
            self.requested(id, usize::MAX);
            return true;
        };
        // MQTT 5: as many as fit the broker's Maximum Packet Size; the rest
        // go in the next SUBSCRIBE (one that fits alone was set aside at
        // CONNACK).
        #[cfg(feature = "v5")]
        let max = match self.version {
            Version::V5 => usize::try_from(self.limits.maximum_packet_size).unwrap_or(usize::MAX),
            _ => usize::MAX,
        };
        #[cfg(not(feature = "v5"))]
        let max = usize::MAX;
        let round = Round {
            version: self.version,
            packet_id,
            id,
            max,
        };
        // The filters borrow the store: encoded twice, for the length, then
        // into the transmit queue (where making room may move them), and
        // the packet copied from there into the store.
        let entries = self.store.entries();
        let subscriptions = &self.store.subscriptions;
        let Some((len, taken)) =
            round.with_packet::<SUBS, _>(entries, subscriptions, |p| p.encoded_len())
        else {
            self.requested(id, usize::MAX);
            return true;
        };
        // Queued and kept as a request: wait for the queue to be written
        // unless both fit. With the queue written, room was kept for both
        // (`check_resubscribe_room`, and `alias_room` keeps the broker's
        // Topic Aliases from taking it).
        if !self.store.tx.is_vacant() && !self.store.has_room_with_tx(len, len) {
            return false;
        }
        let pushed = self.store.tx_push_with(len, |entries, subscriptions, dst| {
            round
                .with_packet::<SUBS, _>(entries, subscriptions, |p| p.encode(dst))
                .map_or(Ok(0), |(n, _)| n)
        });
        self.requested(id, taken);
        let Ok(n) = pushed else {
            // Not reached (see above). Were it, waiting could not help: the
            // round is given up on this connection rather than block every
            // packet behind it.
            crate::fmt::warning!("no room to re-subscribe");
            return true;
        };
        self.take_packet_id(packet_id);
        // Room was kept for it (`check_resubscribe_room`); without it the
        // SUBACK is simply not matched to a request.
        if let Ok(span) = self.store.append_last_pushed(n) {
            self.add_request(now, packet_id, RequestKind::Subscribe, span);
        }
        true
    }

    /// The first `taken` due filters of Subscription Identifier `id` are
    /// requested: in the round just queued, or given up on this
    /// connection.
    fn requested(&mut self, id: u32, taken: usize) {
        let round = self.store.subscriptions.iter_mut();
        for s in round.filter(|s| s.due() && s.id == id).take(taken) {
            s.requested = true;
        }
    }
}

/// The length of an MQTT 5 SUBSCRIBE of filters this long with
/// Subscription Identifier `id` (0: none): its property list is a length
/// byte, and the identifier's id byte and varint value. Exact, since the
/// property list can take the remaining length over a varint boundary.
#[cfg(feature = "v5")]
pub(super) fn resubscribe_len(id: u32, lens: impl Iterator<Item = usize>) -> usize {
    let props = if id == 0 {
        1
    } else {
        2 + codec::varint_len(id)
    };
    // Packet id, properties, and per filter its length, bytes and options.
    let body: usize = 2 + props + lens.map(|len| 2 + len + 1).sum::<usize>();
    codec::packet_len(body)
}

/// One re-SUBSCRIBE: the due filters of Subscription Identifier `id` (0:
/// none), as many as fit `max` bytes.
struct Round {
    version: Version,
    packet_id: u16,
    id: u32,
    max: usize,
}

impl Round {
    /// Calls `f` with the SUBSCRIBE of the due filters in `subscriptions`
    /// (their bytes in `entries`): its result, and how many filters the
    /// packet holds. `None` for a version the build leaves out.
    fn with_packet<const SUBS: usize, R>(
        &self,
        entries: &[u8],
        subscriptions: &[Subscribed],
        f: impl FnOnce(Encode<'_>) -> R,
    ) -> Option<(R, usize)> {
        let (packet_id, id) = (self.packet_id, self.id);
        let mut list: heapless::Vec<Subscription<'_>, SUBS> = heapless::Vec::new();
        #[cfg(feature = "v5")]
        let mut list5: heapless::Vec<codec::v5::Subscription<'_>, SUBS> = heapless::Vec::new();
        for s in subscriptions.iter().filter(|s| s.due() && s.id == id) {
            #[cfg(feature = "v5")]
            if !list.is_empty() {
                let lens = list.iter().map(|f| f.filter.len());
                if resubscribe_len(id, lens.chain([s.span.len])) > self.max {
                    break;
                }
            }
            let bytes = entries.get(s.span.off..s.span.off + s.span.len);
            let filter = bytes.and_then(|b| core::str::from_utf8(b).ok());
            let filter = filter.unwrap_or("");
            let _ = list.push(Subscription { filter, qos: s.qos });
            #[cfg(feature = "v5")]
            let _ = list5.push(codec::v5::Subscription {
                filter,
                options: codec::v5::SubscriptionOptions::from_u8(s.qos as u8 | s.flags)
                    .unwrap_or(codec::v5::SubscriptionOptions::new(s.qos)),
            });
        }
        #[cfg(not(feature = "v5"))]
        let _ = self.max;
        #[cfg(feature = "v3")]
        let subscribe = Subscribe {
            packet_id,
            filters: SubscribeFilters::new(&list),
        };
        #[cfg(feature = "v5")]
        let id_property = [codec::v5::Property::SubscriptionIdentifier(id)];
        #[cfg(feature = "v5")]
        let subscribe5 = codec::v5::Subscribe {
            packet_id,
            properties: codec::v5::Properties::new(if id == 0 { &[] } else { &id_property }),
            filters: codec::v5::SubscribeFilters::new(&list5),
        };
        let packet = match self.version {
            #[cfg(feature = "v5")]
            Version::V5 => Encode::Subscribe5(&subscribe5),
            #[cfg(feature = "v3")]
            Version::V3_1_1 => Encode::Subscribe(&subscribe),
            // Not reached: a session never speaks a version left out.
            #[allow(unreachable_patterns)]
            _ => return None,
        };
        Some((f(packet), list.len()))
    }
}
