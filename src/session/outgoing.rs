//! Requests from the user: PUBLISH, SUBSCRIBE and UNSUBSCRIBE queued and
//! kept until acknowledged, and the resends that go before new traffic.

use super::*;

impl<const INFLIGHT: usize, const SUBS: usize> Protocol<'_, INFLIGHT, SUBS> {
    /// Queues a PUBLISH, whole (`payload_len` `None`), or its head only
    /// with the payload of `payload_len` bytes to come from the driver;
    /// with `properties` on MQTT 5.
    pub(crate) fn publish(
        &mut self,
        now: Instant,
        publish: &Publish<'_>,
        payload_len: Option<usize>,
        properties: Props<'_>,
    ) -> Result<Option<u16>> {
        self.ready()?;
        self.collect();
        let mut out = OutPublish::new(publish, payload_len, properties, self.version)?;
        if payload_len.is_some() && (self.payload.is_some() || self.head_held()) {
            // One payload at a time goes straight to the transport: this
            // one waits until the current one is written (and reported).
            return Err(SessionError::Resource(
                ResourceError::TransmitBufferTooSmall {
                    needed: publish.head_len(0),
                },
            ));
        }
        if publish.qos == QoS::AtMostOnce {
            self.check_out(&out)?;
            if payload_len.is_some() {
                // Its head stays in the queue until reported, after the
                // payload: the payload's pieces need room beside it.
                let needed = out.encode().encoded_len() + 1;
                if needed > self.store.tx_capacity() {
                    return Err(SessionError::Resource(
                        ResourceError::TransmitBufferTooSmall { needed },
                    ));
                }
            }
            #[cfg(feature = "v5")]
            if let Some(plan) = self.alias_plan(&out) {
                // Checked before an alias is recorded for its topic: a
                // PUBLISH refused at encoding would leave the alias
                // recorded and never sent, and the next PUBLISH to the
                // topic would use it (MQTT 5 §3.3.2.3.4). (One sent by
                // its alias alone records nothing.)
                if !plan.elide {
                    out.validate()?;
                }
                self.push_aliased(&out, plan)?;
                self.sent_queued();
                return Ok(None);
            }
            self.push(out.encode())?;
            self.start_payload(payload_len, None);
            self.sent_queued();
            return Ok(None);
        }
        if self.store.outgoing.is_full() {
            return Err(SessionError::Resource(ResourceError::InflightFull));
        }
        let packet_id = self.free_packet_id()?;
        out.set_packet_id(packet_id);
        out.validate()?;
        self.check_out(&out)?;
        let len = out.encode().encoded_len();
        if len > self.store.capacity() {
            // Never, however many acknowledgements come: not `StoreFull`,
            // which says to wait for them.
            return Err(SessionError::Resource(
                ResourceError::TransmitBufferTooSmall { needed: len },
            ));
        }
        if len > self.store.free_bytes() {
            return Err(SessionError::Resource(ResourceError::StoreFull));
        }
        // A streamed head keeps its length of the queue's room (see
        // `push_and_store`).
        let head = if cfg!(feature = "streaming") && out.is_streamed() {
            len
        } else {
            0
        };
        self.check_resubscribe_room(Filters::V3(&[]), len, head)?;
        // An aliased PUBLISH goes through the transmit queue: one that
        // cannot fit it now goes without its alias, from the store.
        #[cfg(feature = "v5")]
        let topic_len = |plan: &AliasPlan| if plan.elide { 0 } else { publish.topic.len() };
        #[cfg(feature = "v5")]
        let plan = self.alias_plan(&out).filter(|plan| {
            self.store
                .has_room_with_tx(plan.len, len.saturating_add(topic_len(plan)))
        });
        #[cfg(feature = "v5")]
        let span = match plan {
            // The store keeps the PUBLISH with its topic, which a resend
            // on a later connection (with no aliases) needs; the wire
            // gets the aliased one.
            Some(plan) => {
                self.check_tx_room(plan.len)?;
                // The new alias's topic is appended after the message, and
                // the aliased packet queued: neither may move the
                // message's bytes before its entry exists (the room made
                // now leaves nothing to compact).
                let room = len
                    .saturating_add(topic_len(&plan))
                    .saturating_add(plan.len);
                self.store.reserve(room);
                let span = self
                    .store
                    .append_encoded(out.encode())
                    .map_err(|_| SessionError::Resource(ResourceError::StoreFull))?;
                self.push_aliased(&out, plan)?;
                span
            }
            None => self.store_and_send(&out, packet_id, len)?,
        };
        #[cfg(not(feature = "v5"))]
        let span = self.store_and_send(&out, packet_id, len)?;
        let stage = if publish.qos == QoS::AtLeastOnce {
            Stage::AwaitPubAck
        } else {
            Stage::AwaitPubRec
        };
        let deadline = now + self.timeouts.puback;
        self.deadline_added(deadline);
        // Cannot fail: checked `is_full` above and nothing was collected since.
        let _ = self.store.outgoing.push(Outgoing {
            packet_id,
            stage,
            deadline,
            span,
            status: Status::Live,
            send: false,
            payload: payload_len.unwrap_or(0),
            rec: 0,
        });
        self.take_packet_id(packet_id);
        self.start_payload(payload_len, Some(packet_id));
        Ok(Some(packet_id))
    }

    /// Encodes the PUBLISH into the store and queues it from there (see
    /// [`Protocol::stored`]). A streamed head goes through the transmit
    /// queue instead, where its payload's pieces are put together behind
    /// it: the store keeps a copy of the head only.
    fn store_and_send(&mut self, out: &OutPublish<'_>, packet_id: u16, len: usize) -> Result<Span> {
        if cfg!(feature = "streaming") && out.is_streamed() {
            return self.push_and_store(out, len);
        }
        // Behind the resends, like every new packet; it takes no room in
        // the transmit queue. (Nor is the queue of stored sends full: it
        // holds one per outgoing entry at most, and the window has room.)
        self.check_tx_room(0)?;
        self.check_copy_room(0, len)?;
        let span = self
            .store
            .append_encoded(out.encode())
            .map_err(|_| SessionError::Resource(ResourceError::StoreFull))?;
        self.send_stored(packet_id);
        Ok(span)
    }

    /// Queues the stored PUBLISH of outgoing `packet_id` behind what the
    /// transmit queue holds. `false` without room for it (not reached: one
    /// per outgoing entry).
    pub(crate) fn send_stored(&mut self, packet_id: u16) -> bool {
        let at = self.store.tx.queued();
        self.stored.push(StoredSend::new(at, packet_id)).is_ok()
    }

    /// Queues the PUBLISH and copies it into the store.
    fn push_and_store(&mut self, out: &OutPublish<'_>, len: usize) -> Result<Span> {
        self.check_tx_room(len)?;
        self.check_copy_room(len, len)?;
        let n = self.store.tx_push(out.encode())?;
        let span = self
            .store
            .append_last_pushed(n)
            .map_err(|_| SessionError::Resource(ResourceError::StoreFull))?;
        // A resend queues the head again (`tx_push_outgoing`): the entries
        // must always leave room for it.
        self.store.reserve_at_least(n);
        Ok(span)
    }

    /// MQTT 5: whether this PUBLISH goes out with a Topic Alias, and
    /// which. The policy: the first topics published on a connection get
    /// aliases 1, 2, ... in order, as many as the broker's Topic Alias
    /// Maximum allows and `SUBS` holds; the first PUBLISH of each carries
    /// the topic and its alias, later ones the alias alone. An alias is
    /// never reassigned; later topics go without one. Streamed messages
    /// and messages whose properties name an alias go as they are.
    #[cfg(feature = "v5")]
    fn alias_plan(&self, out: &OutPublish<'_>) -> Option<AliasPlan> {
        #[allow(irrefutable_let_patterns)]
        let OutPublish::V5(p, None) = out else {
            return None;
        };
        if !self.options.topic_aliases || self.limits.topic_alias_maximum == 0 {
            return None;
        }
        if let Some(alias) = self.store.alias_of(p.topic) {
            let len = p.aliased_len(true);
            // A topic shorter than the alias's 3 bytes makes the packet
            // longer, maybe over the broker's maximum.
            self.check_packet_len(len).ok()?;
            return Some(AliasPlan {
                alias,
                elide: true,
                len,
            });
        }
        let max = usize::from(self.limits.topic_alias_maximum).min(SUBS);
        let next = self.store.aliases.len() + 1;
        if next > max {
            return None;
        }
        let alias = u16::try_from(next).ok()?;
        let len = p.aliased_len(false);
        // The alias makes the first PUBLISH 3 bytes longer.
        self.check_packet_len(len).ok()?;
        Some(AliasPlan {
            alias,
            elide: false,
            len,
        })
    }

    /// Queues the PUBLISH with the alias of `plan`, recording a new one.
    #[cfg(feature = "v5")]
    fn push_aliased(&mut self, out: &OutPublish<'_>, plan: AliasPlan) -> Result<()> {
        #[allow(irrefutable_let_patterns)]
        let OutPublish::V5(p, _) = out else {
            return Ok(());
        };
        if plan.elide {
            return self.push(Encode::Publish5Aliased(p, plan.alias, true));
        }
        self.check_tx_room(plan.len)?;
        // Recorded first: without room for the topic beside the packet, no
        // alias. (The plan kept the list within its `SUBS` capacity.)
        if !self.store.has_room_with_tx(plan.len, p.topic.len()) {
            return self.push(out.encode());
        }
        let Ok(span) = self.store.append(p.topic.as_bytes()) else {
            return self.push(out.encode());
        };
        let _ = self.store.aliases.push(span);
        self.push(Encode::Publish5Aliased(p, plan.alias, false))
    }

    /// MQTT 5's rules for an outgoing PUBLISH: the broker's limits.
    #[allow(clippy::unused_self)]
    fn check_out(&self, out: &OutPublish<'_>) -> Result<()> {
        #[cfg(feature = "v5")]
        #[allow(irrefutable_let_patterns)]
        if let OutPublish::V5(p, _) = out {
            let len = out.encode().encoded_len();
            let len = len.saturating_add(out.payload_len().unwrap_or(0));
            return self.check_publish_v5(p, len);
        }
        let _ = out;
        Ok(())
    }

    /// The head just queued is followed by a payload of `len` bytes.
    fn start_payload(&mut self, len: Option<usize>, packet_id: Option<u16>) {
        // An empty payload: the head is the whole packet.
        if let Some(len) = len.filter(|&len| len > 0) {
            self.head_end = self.store.tx.queued();
            self.payload = Some(PayloadOut {
                at: self.store.tx.queued(),
                offset: 0,
                len,
                packet_id,
            });
        }
    }

    pub(crate) fn subscribe(&mut self, now: Instant, filters: Filters<'_>) -> Result<u16> {
        self.ready()?;
        self.collect();
        // (A filter named twice in one request counts twice here: telling
        // them apart cost 336 bytes of flash for a request nobody needs.)
        let new = filters
            .iter()
            .filter(|(f, _, _)| self.store.find_subscription(f).is_none())
            .count();
        if self.store.subscriptions.len() + new > SUBS {
            return Err(SessionError::Resource(ResourceError::SubscriptionsFull));
        }
        let packet_id = self.free_packet_id()?;
        #[cfg(feature = "v5")]
        let mut list5: heapless::Vec<codec::v5::Subscription<'_>, SUBS> = heapless::Vec::new();
        #[cfg(all(feature = "v3", feature = "v5"))]
        let mut list3: heapless::Vec<Subscription<'_>, SUBS> = heapless::Vec::new();
        #[cfg(feature = "v3")]
        let subscribe;
        #[cfg(feature = "v5")]
        let subscribe5;
        #[cfg(feature = "v5")]
        let id_property;
        let packet = match (self.version, filters) {
            #[cfg(feature = "v3")]
            (Version::V3_1_1, Filters::V3(list)) => {
                // Checked once here: encoding checks them no more.
                subscribe = Subscribe {
                    packet_id,
                    filters: SubscribeFilters::checked(list)?,
                };
                subscribe.validate()?;
                Encode::Subscribe(&subscribe)
            }
            #[cfg(all(feature = "v3", feature = "v5"))]
            (Version::V3_1_1, Filters::V5(_, id)) => {
                // Plain options only: 3.1.1 has nothing else to say.
                for (filter, qos, flags) in filters.iter() {
                    if flags != 0 || id.is_some() {
                        return Err(SessionError::Usage(UsageError::Unsupported(
                            crate::error::Unsupported::Mqtt5Only,
                        )));
                    }
                    list3
                        .push(Subscription { filter, qos })
                        .map_err(|_| SessionError::Resource(ResourceError::SubscriptionsFull))?;
                }
                subscribe = Subscribe {
                    packet_id,
                    filters: SubscribeFilters::checked(&list3)?,
                };
                subscribe.validate()?;
                Encode::Subscribe(&subscribe)
            }
            #[cfg(feature = "v5")]
            (Version::V5, _) => {
                self.check_filters_v5(filters.iter().map(|(f, _, _)| f))?;
                let id = filters.id();
                if id.is_some() && !self.limits.subscription_identifier_available {
                    return Err(SessionError::Usage(UsageError::Unsupported(
                        crate::error::Unsupported::SubscriptionIdentifier,
                    )));
                }
                id_property = id.map(codec::v5::Property::SubscriptionIdentifier);
                for (filter, qos, flags) in filters.iter() {
                    let options = codec::v5::SubscriptionOptions::from_u8(qos as u8 | flags)
                        .unwrap_or(codec::v5::SubscriptionOptions::new(qos));
                    list5
                        .push(codec::v5::Subscription { filter, options })
                        .map_err(|_| SessionError::Resource(ResourceError::SubscriptionsFull))?;
                }
                subscribe5 = codec::v5::Subscribe {
                    packet_id,
                    properties: codec::v5::Properties::new(id_property.as_slice()),
                    filters: codec::v5::SubscribeFilters::checked(&list5)?,
                };
                subscribe5.validate()?;
                Encode::Subscribe5(&subscribe5)
            }
            // No connection of a version the build leaves out.
            #[allow(unreachable_patterns)]
            _ => return Err(SessionError::Usage(UsageError::NotConnected)),
        };
        let len = packet.encoded_len();
        #[cfg(feature = "v5")]
        self.check_packet_len(len)?;
        let filter_bytes: usize = filters.iter().map(|(f, _, _)| f.len()).sum();
        if len + filter_bytes > self.store.free_bytes() {
            return Err(SessionError::Resource(ResourceError::StoreFull));
        }
        self.check_resubscribe_room(filters, 0, 0)?;
        // Queued, kept as a request, and the new filters kept.
        self.check_tx_room(len)?;
        self.check_copy_room(len, len + filter_bytes)?;
        self.push_request(now, packet, packet_id, RequestKind::Subscribe)?;
        let id = filters.id().unwrap_or(0);
        for (filter, qos, flags) in filters.iter() {
            let known = self.store.find_subscription(filter);
            match known.and_then(|i| self.store.subscriptions.get_mut(i)) {
                Some(entry) => {
                    entry.qos = qos;
                    entry.flags = flags;
                    entry.id = id;
                    entry.confirmed = false;
                    entry.requested = true;
                }
                None => {
                    // Room was checked above: neither can fail.
                    if let Ok(span) = self.store.append(filter.as_bytes()) {
                        let _ = self.store.subscriptions.push(Subscribed {
                            qos,
                            flags,
                            id,
                            requested: true,
                            span,
                            confirmed: false,
                        });
                    }
                }
            }
        }
        Ok(packet_id)
    }

    pub(crate) fn unsubscribe(&mut self, now: Instant, filters: &[&str]) -> Result<u16> {
        self.ready()?;
        self.collect();
        let packet_id = self.free_packet_id()?;
        let unsubscribe = Unsubscribe {
            packet_id,
            filters: UnsubscribeFilters::new(filters),
        };
        unsubscribe.validate()?;
        #[cfg(feature = "v5")]
        let unsubscribe5 = codec::v5::Unsubscribe {
            packet_id,
            properties: codec::v5::Properties::EMPTY,
            filters: unsubscribe.filters,
        };
        let packet = match self.version {
            #[cfg(feature = "v5")]
            Version::V5 => Encode::Unsubscribe5(&unsubscribe5),
            #[cfg(feature = "v3")]
            Version::V3_1_1 => Encode::Unsubscribe(&unsubscribe),
            #[allow(unreachable_patterns)]
            _ => return Err(SessionError::Usage(UsageError::NotConnected)),
        };
        let len = packet.encoded_len();
        #[cfg(feature = "v5")]
        self.check_packet_len(len)?;
        if len > self.store.free_bytes() {
            return Err(SessionError::Resource(ResourceError::StoreFull));
        }
        self.push_request(now, packet, packet_id, RequestKind::Unsubscribe)?;
        for f in filters {
            if let Some(i) = self.store.find_subscription(f) {
                self.store.remove_subscription(i);
            }
        }
        Ok(packet_id)
    }

    /// Whether [`queue_sends`](Self::queue_sends) has something it can
    /// queue now (a re-subscribe round with a free request slot, a PUBREL,
    /// a resend the Receive Maximum lets out): new packets wait behind it.
    /// Nothing it must wait for counts, or a driver would spin.
    pub(crate) fn is_resending(&self) -> bool {
        (self.resubscribe
            // A request answered frees its slot at the next collection.
            && (!self.store.requests.is_full() || self.store.requests.iter().any(|r| r.done)))
            || !self.late_rels.is_empty()
            || (self.sends_pending && {
                // Once, not per entry: this runs at every flush.
                let quota = self.quota_left();
                self.store
                    .outgoing
                    .iter()
                    .any(|e| e.send && e.is_live() && (e.stage == Stage::AwaitPubComp || quota))
            })
    }

    /// MQTT 5 flow control (§4.9): whether another QoS 1/2 PUBLISH may go
    /// out, resends included, under the broker's Receive Maximum. A message
    /// counts from its PUBLISH on this connection until its PUBACK or
    /// PUBCOMP (a QoS 2 message past PUBREC still counts); one whose resend
    /// is still to come does not yet. Always on MQTT 3.1.1.
    pub(crate) fn quota_left(&self) -> bool {
        #[cfg(feature = "v5")]
        if self.version == Version::V5 {
            let counted = self
                .store
                .outgoing
                .iter()
                .filter(|e| e.is_live() && !(e.send && e.stage != Stage::AwaitPubComp))
                .count();
            return counted < usize::from(self.limits.receive_maximum);
        }
        true
    }

    /// Room for a new packet of `len` bytes now. Without it the driver
    /// flushes and retries, unless the packet is larger than the whole
    /// queue (the same error: `has_room` is false then too, and the
    /// driver's retry only when the queue was not empty tells the two apart).
    pub(crate) fn check_tx_room(&self, len: usize) -> Result<()> {
        if !self.store.tx_has_room(len) || self.is_resending() {
            return Err(SessionError::Resource(
                ResourceError::TransmitBufferTooSmall { needed: len },
            ));
        }
        Ok(())
    }

    /// Room in the arena for `store_len` more bytes of entries beside
    /// `tx_len` more queued: [`StoreFull`](ResourceError::StoreFull) if
    /// the entries could not take them even with the transmit queue
    /// written, else the transmit queue's error, which waits for it.
    pub(crate) fn check_copy_room(&self, tx_len: usize, store_len: usize) -> Result<()> {
        if self.store.has_room_with_tx(tx_len, store_len) {
            return Ok(());
        }
        if store_len > self.store.free_bytes() {
            return Err(SessionError::Resource(ResourceError::StoreFull));
        }
        Err(SessionError::Resource(
            ResourceError::TransmitBufferTooSmall { needed: tx_len },
        ))
    }

    pub(crate) fn push(&mut self, packet: Encode<'_>) -> Result<()> {
        self.check_tx_room(packet.encoded_len())?;
        self.store.tx_push(packet)?;
        Ok(())
    }

    /// Queues a packet that does not wait behind the resends: PINGREQ,
    /// DISCONNECT and the acknowledgements of the broker's packets, which
    /// are not new traffic.
    pub(crate) fn push_control(&mut self, bytes: &[u8]) -> Result<()> {
        self.store.tx_push_bytes(bytes).map_err(|_| {
            SessionError::Resource(ResourceError::TransmitBufferTooSmall {
                needed: bytes.len(),
            })
        })
    }

    /// Queues the acknowledgement `kind` of `packet_id`. The session frames
    /// a packet only with room for one acknowledgement in the transmit
    /// queue, so this does not fail for the packet being handled.
    pub(crate) fn push_ack(&mut self, kind: PacketType, packet_id: u16) {
        if let Some(bytes) = codec::ack_bytes(kind, packet_id) {
            let _ = self.push_control(&bytes);
        }
    }

    fn push_request(
        &mut self,
        now: Instant,
        packet: Encode<'_>,
        packet_id: u16,
        kind: RequestKind,
    ) -> Result<()> {
        if self.store.requests.is_full() {
            return Err(SessionError::Resource(ResourceError::InflightFull));
        }
        let len = packet.encoded_len();
        self.check_tx_room(len)?;
        self.check_copy_room(len, len)?;
        let n = self.store.tx_push(packet)?;
        let span = self
            .store
            .append_last_pushed(n)
            .map_err(|StoreFull| SessionError::Resource(ResourceError::StoreFull))?;
        self.add_request(now, packet_id, kind, span);
        self.take_packet_id(packet_id);
        Ok(())
    }

    /// Records a request whose packet is queued and stored at `span`.
    pub(crate) fn add_request(
        &mut self,
        now: Instant,
        packet_id: u16,
        kind: RequestKind,
        span: Span,
    ) {
        let timeout = match kind {
            RequestKind::Subscribe => self.timeouts.suback,
            RequestKind::Unsubscribe => self.timeouts.unsuback,
        };
        self.deadline_added(now + timeout);
        let _ = self.store.requests.push(Request {
            packet_id,
            kind,
            deadline: now + timeout,
            span,
            done: false,
        });
    }

    /// The entry whose PUBREL is to be resent first, at `i`'s turn (a
    /// PUBREL waiting to be): of those waiting, the one whose PUBREC came
    /// first.
    // Out of line: inlined, the search doubles in size in `flush`.
    #[inline(never)]
    fn first_rel(&self, i: usize) -> usize {
        // `i` unless an older one waits: an age that wrapped to 0 (65,536
        // PUBRECs later) may misorder, never pick an entry not waiting.
        let (mut first, mut oldest) = (i, 0);
        for (j, e) in self.store.outgoing.iter().enumerate() {
            let age = self.recs.wrapping_sub(e.rec);
            if e.send && e.is_live() && e.stage == Stage::AwaitPubComp && age > oldest {
                (first, oldest) = (j, age);
            }
        }
        first
    }

    /// Queues what CONNACK left to send, in order, as far as the transmit
    /// queue has room: the re-SUBSCRIBE first, then every flagged message's
    /// PUBLISH (with DUP) or PUBREL, oldest first (MQTT-4.6.0-1, -2).
    /// `poll_transmit` calls again as the queue drains.
    pub(crate) fn queue_sends(&mut self, now: Instant) {
        if !self.resubscribe && !self.sends_pending && self.late_rels.is_empty() {
            return;
        }
        // One round per Subscription Identifier (one for all without).
        while self.resubscribe {
            if !self.queue_resubscribe(now) {
                // No request slot (or no room) for the next round yet:
                // the resends need none and go on.
                break;
            }
            self.resubscribe = self.store.subscriptions.iter().any(Subscribed::due);
        }
        // Resent PUBLISHes wait, in their order, for the broker's Receive
        // Maximum to let them out (MQTT 5); PUBRELs do not, or a QoS 2
        // message holding the quota could never complete.
        let mut blocked = false;
        let mut i = 0;
        while let Some(&entry) = self.store.outgoing.get(i) {
            if !entry.send || !entry.is_live() {
                i += 1;
                continue;
            }
            if entry.stage != Stage::AwaitPubComp && (blocked || !self.quota_left()) {
                blocked = true;
                i += 1;
                continue;
            }
            // A PUBREL's turn goes to the one whose PUBREC came first
            // (MQTT-4.6.0-4): the broker may have answered out of store
            // order. Entry `i` is looked at again once that one is queued.
            let at = if entry.stage == Stage::AwaitPubComp {
                self.first_rel(i)
            } else {
                i
            };
            let next = if at == i { i + 1 } else { i };
            let Some(&entry) = self.store.outgoing.get(at) else {
                return;
            };
            let streamed = entry.payload > 0 && entry.stage != Stage::AwaitPubComp;
            if streamed && (self.payload.is_some() || self.head_held() || !self.stored.is_empty()) {
                // Behind another payload still to be written (or a
                // streamed QoS 0 message still to be reported: the
                // session knows where one head ends, not two), or a stored
                // PUBLISH: once queued, the head is in what
                // `poll_transmit` returns next.
                return;
            }
            let queued = if entry.stage == Stage::AwaitPubComp {
                codec::ack_bytes(PacketType::PubRel, entry.packet_id)
                    .is_some_and(|bytes| self.store.tx_push_bytes(&bytes).is_ok())
            } else {
                // DUP marks the resend (MQTT-3.3.1-1); it stays set.
                codec::mark_dup(self.store.bytes_mut(entry.span));
                if streamed {
                    // Its payload's pieces are put together behind it.
                    self.store.tx_push_outgoing(at).is_ok()
                } else {
                    self.send_stored(entry.packet_id)
                }
            };
            if !queued {
                return;
            }
            if streamed {
                self.start_payload(Some(entry.payload), Some(entry.packet_id));
            }
            if let Some(e) = self.store.outgoing.get_mut(at) {
                e.send = false;
                e.deadline = now + self.timeouts.puback;
            }
            self.earliest_ack.set(None);
            i = next;
        }
        self.sends_pending = blocked;
        // Then the PUBRELs of PUBRECs that came in the meantime, in their
        // order (MQTT-4.6.0-4).
        while let Some(&id) = self.late_rels.first() {
            let due = self
                .store
                .outgoing
                .iter()
                .any(|e| e.packet_id == id && e.is_live() && e.stage == Stage::AwaitPubComp);
            if due {
                let queued = codec::ack_bytes(PacketType::PubRel, id)
                    .is_some_and(|bytes| self.store.tx_push_bytes(&bytes).is_ok());
                if !queued {
                    return;
                }
            }
            self.late_rels.remove(0);
        }
    }
}

/// What the caller asked to subscribe: MQTT 3.1.1 filters with their QoS,
/// or MQTT 5 filters with their options.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Filters<'a> {
    V3(&'a [Subscription<'a>]),
    /// With a Subscription Identifier for all of them.
    #[cfg(feature = "v5")]
    V5(&'a [codec::v5::Subscription<'a>], Option<u32>),
}

impl<'a> Filters<'a> {
    /// The Subscription Identifier asked for.
    pub(super) fn id(self) -> Option<u32> {
        match self {
            Self::V3(_) => None,
            #[cfg(feature = "v5")]
            Self::V5(_, id) => id,
        }
    }

    /// Each filter, its QoS, and the other bits of MQTT 5's options byte.
    pub(crate) fn iter(self) -> impl Iterator<Item = (&'a str, QoS, u8)> + Clone {
        let (v3, v5) = match self {
            Self::V3(list) => (list, &[][..]),
            #[cfg(feature = "v5")]
            Self::V5(list, _) => (&[][..], list),
        };
        let v3 = v3.iter().map(|s| (s.filter, s.qos, 0));
        #[cfg(feature = "v5")]
        let v5 = v5
            .iter()
            .map(|s| (s.filter, s.options.qos, s.options.to_u8() & !0x03));
        #[cfg(not(feature = "v5"))]
        let v5 = {
            let _: &[()] = v5;
            core::iter::empty()
        };
        v3.chain(v5)
    }
}

/// The properties of an outgoing PUBLISH: nothing without MQTT 5.
#[cfg(feature = "v5")]
pub(crate) type Props<'a> = codec::v5::Properties<'a>;
/// The properties of an outgoing PUBLISH: nothing without MQTT 5.
#[cfg(not(feature = "v5"))]
pub(crate) type Props<'a> = core::marker::PhantomData<&'a ()>;

/// An outgoing PUBLISH in the connection's version, with the length of
/// a payload to come separately (a streamed one).
enum OutPublish<'p> {
    #[cfg(feature = "v3")]
    V3(Publish<'p>, Option<usize>),
    #[cfg(feature = "v5")]
    V5(codec::v5::Publish<'p>, Option<usize>),
}

impl<'p> OutPublish<'p> {
    fn new(
        publish: &Publish<'p>,
        payload_len: Option<usize>,
        properties: Props<'p>,
        version: Version,
    ) -> Result<Self> {
        let mut p = *publish;
        p.dup = false;
        p.packet_id = None;
        match version {
            #[cfg(feature = "v5")]
            Version::V5 => Ok(Self::V5(
                codec::v5::Publish {
                    dup: false,
                    qos: p.qos,
                    retain: p.retain,
                    topic: p.topic,
                    packet_id: None,
                    properties,
                    payload: p.payload,
                },
                payload_len,
            )),
            #[cfg(feature = "v5")]
            Version::V3_1_1 if !properties.is_empty() => Err(SessionError::Usage(
                UsageError::Unsupported(crate::error::Unsupported::Mqtt5Only),
            )),
            #[cfg(feature = "v3")]
            Version::V3_1_1 => {
                let _ = properties;
                Ok(Self::V3(p, payload_len))
            }
            #[allow(unreachable_patterns)]
            _ => {
                let _ = properties;
                Err(SessionError::Usage(UsageError::NotConnected))
            }
        }
    }

    #[cfg(feature = "v5")]
    fn payload_len(&self) -> Option<usize> {
        match self {
            #[cfg(feature = "v3")]
            Self::V3(_, len) => *len,
            #[cfg(feature = "v5")]
            Self::V5(_, len) => *len,
        }
    }

    /// Whether its payload comes separately: only its head is encoded.
    fn is_streamed(&self) -> bool {
        match self {
            #[cfg(feature = "v3")]
            Self::V3(_, len) => len.is_some(),
            #[cfg(feature = "v5")]
            Self::V5(_, len) => len.is_some(),
        }
    }

    fn set_packet_id(&mut self, id: u16) {
        match self {
            #[cfg(feature = "v3")]
            Self::V3(p, _) => p.packet_id = Some(id),
            #[cfg(feature = "v5")]
            Self::V5(p, _) => p.packet_id = Some(id),
        }
    }

    fn validate(&self) -> Result<(), codec::EncodeError> {
        match self {
            #[cfg(feature = "v3")]
            Self::V3(p, _) => p.validate(),
            #[cfg(feature = "v5")]
            Self::V5(p, _) => p.validate(),
        }
    }

    fn encode(&self) -> Encode<'_> {
        match self {
            #[cfg(feature = "v3")]
            Self::V3(p, payload_len) => match payload_len {
                #[cfg(feature = "streaming")]
                Some(len) => Encode::PublishHead(p, *len),
                _ => Encode::Publish(p),
            },
            #[cfg(feature = "v5")]
            Self::V5(p, payload_len) => match payload_len {
                #[cfg(feature = "streaming")]
                Some(len) => Encode::PublishHead5(p, *len),
                _ => Encode::Publish5(p),
            },
        }
    }
}

/// A Topic Alias for an outgoing PUBLISH: its number, whether the topic is
/// left out (the broker knows the alias already), and the packet's length.
#[cfg(feature = "v5")]
#[derive(Debug, Clone, Copy)]
struct AliasPlan {
    alias: u16,
    elide: bool,
    len: usize,
}
