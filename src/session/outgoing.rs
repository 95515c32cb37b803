//! Requests from the user: PUBLISH, SUBSCRIBE and UNSUBSCRIBE queued and
//! kept until acknowledged, and the resends that go before new traffic.

use super::*;

impl<const INFLIGHT: usize, const SUBS: usize> Protocol<'_, INFLIGHT, SUBS> {
    /// Queues a PUBLISH, whole (`payload_len` `None`), or its head only
    /// with the payload of `payload_len` bytes to come from the driver.
    pub(crate) fn publish(
        &mut self,
        now: Instant,
        publish: &Publish<'_>,
        payload_len: Option<usize>,
    ) -> Result<Option<u16>> {
        self.ready()?;
        self.collect();
        let mut publish = *publish;
        publish.dup = false;
        let encode = |p| match payload_len {
            #[cfg(feature = "streaming")]
            Some(len) => Encode::PublishHead(p, len),
            _ => Encode::Publish(p),
        };
        if payload_len.is_some() && self.payload.is_some() {
            // One payload at a time goes straight to the transport: this
            // one waits until the current one is written.
            return Err(SessionError::Resource(
                ResourceError::TransmitBufferTooSmall {
                    needed: publish.head_len(0),
                },
            ));
        }
        if publish.qos == QoS::AtMostOnce {
            publish.packet_id = None;
            self.push(encode(&publish))?;
            self.start_payload(payload_len, None);
            return Ok(None);
        }
        if self.store.outgoing.is_full() {
            return Err(SessionError::Resource(ResourceError::InflightFull));
        }
        let packet_id = self.free_packet_id()?;
        publish.packet_id = Some(packet_id);
        publish.validate()?;
        let len = encode(&publish).encoded_len();
        if len > self.store.free_bytes() {
            return Err(SessionError::Resource(ResourceError::StoreFull));
        }
        self.check_resubscribe_room(&[], len)?;
        self.check_tx_room(len)?;
        let bytes = self.tx.push(encode(&publish))?;
        let span = self
            .store
            .append(bytes)
            .map_err(|_| SessionError::Resource(ResourceError::StoreFull))?;
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
        });
        self.take_packet_id(packet_id);
        self.start_payload(payload_len, Some(packet_id));
        Ok(Some(packet_id))
    }

    /// The head just queued is followed by a payload of `len` bytes.
    fn start_payload(&mut self, len: Option<usize>, packet_id: Option<u16>) {
        if let Some(len) = len {
            self.payload = Some(PayloadOut {
                at: self.tx.queued(),
                offset: 0,
                len,
                packet_id,
            });
        }
    }

    pub(crate) fn subscribe(&mut self, now: Instant, filters: &[Subscription<'_>]) -> Result<u16> {
        self.ready()?;
        self.collect();
        let new = filters
            .iter()
            .filter(|s| self.store.find_subscription(s.filter).is_none())
            .count();
        if self.store.subscriptions.len() + new > SUBS {
            return Err(SessionError::Resource(ResourceError::SubscriptionsFull));
        }
        let packet_id = self.free_packet_id()?;
        let subscribe = Subscribe {
            packet_id,
            filters: SubscribeFilters::new(filters),
        };
        subscribe.validate()?;
        let len = subscribe.encoded_len();
        let filter_bytes: usize = filters.iter().map(|s| s.filter.len()).sum();
        if len + filter_bytes > self.store.free_bytes() {
            return Err(SessionError::Resource(ResourceError::StoreFull));
        }
        self.check_resubscribe_room(filters, 0)?;
        let packet = Encode::Subscribe(&subscribe);
        self.push_request(now, packet, packet_id, RequestKind::Subscribe)?;
        for s in filters {
            let known = self.store.find_subscription(s.filter);
            match known.and_then(|i| self.store.subscriptions.get_mut(i)) {
                Some(entry) => {
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

    pub(crate) fn unsubscribe(&mut self, now: Instant, filters: &[&str]) -> Result<u16> {
        self.ready()?;
        self.collect();
        let packet_id = self.free_packet_id()?;
        let unsubscribe = Unsubscribe {
            packet_id,
            filters: UnsubscribeFilters::new(filters),
        };
        unsubscribe.validate()?;
        let len = unsubscribe.encoded_len();
        if len > self.store.free_bytes() {
            return Err(SessionError::Resource(ResourceError::StoreFull));
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

    /// Whether resends (or the re-SUBSCRIBE) queued at CONNACK still wait
    /// to be queued; new traffic goes after them.
    pub(crate) fn is_resending(&self) -> bool {
        self.resubscribe
            || !self.late_rels.is_empty()
            || (self.sends_pending && self.store.outgoing.iter().any(|e| e.send && e.is_live()))
    }

    /// Room for a new packet of `len` bytes now. Without it the driver
    /// flushes and retries, unless the packet is larger than the whole
    /// queue (the same error: `has_room` is false then too, and the
    /// driver's retry only when the queue was not empty tells the two apart).
    pub(crate) fn check_tx_room(&self, len: usize) -> Result<()> {
        if !self.tx.has_room(len) || self.is_resending() {
            return Err(SessionError::Resource(
                ResourceError::TransmitBufferTooSmall { needed: len },
            ));
        }
        Ok(())
    }

    pub(crate) fn push(&mut self, packet: Encode<'_>) -> Result<()> {
        self.check_tx_room(packet.encoded_len())?;
        self.tx.push(packet)?;
        Ok(())
    }

    /// Queues a packet that does not wait behind the resends: PINGREQ,
    /// DISCONNECT and the acknowledgements of the broker's packets, which
    /// are not new traffic.
    pub(crate) fn push_control(&mut self, bytes: &[u8]) -> Result<()> {
        self.tx.push_bytes(bytes).map_err(|_| {
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
        self.check_tx_room(packet.encoded_len())?;
        let bytes = self.tx.push(packet)?;
        let span = self
            .store
            .append(bytes)
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

    /// Queues what CONNACK left to send, in order, as far as the transmit
    /// queue has room: the re-SUBSCRIBE first, then every flagged message's
    /// PUBLISH (with DUP) or PUBREL, oldest first (MQTT-4.6.0-1, -2).
    /// `poll_transmit` calls again as the queue drains.
    pub(crate) fn queue_sends(&mut self, now: Instant) {
        if !self.resubscribe && !self.sends_pending && self.late_rels.is_empty() {
            return;
        }
        if self.resubscribe {
            if !self.queue_resubscribe(now) {
                return;
            }
            self.resubscribe = false;
        }
        for i in 0..self.store.outgoing.len() {
            let Some(&entry) = self.store.outgoing.get(i) else {
                return;
            };
            if !entry.send || !entry.is_live() {
                continue;
            }
            let streamed = entry.payload > 0 && entry.stage != Stage::AwaitPubComp;
            if streamed && self.payload.is_some() {
                // Behind another payload still to be written.
                return;
            }
            let queued = if entry.stage == Stage::AwaitPubComp {
                codec::ack_bytes(PacketType::PubRel, entry.packet_id)
                    .is_some_and(|bytes| self.tx.push_bytes(&bytes).is_ok())
            } else {
                // DUP marks the resend (MQTT-3.3.1-1); it stays set.
                codec::mark_dup(self.store.bytes_mut(entry.span));
                let bytes = self.store.bytes(entry.span);
                self.tx.push_bytes(bytes).is_ok()
            };
            if !queued {
                return;
            }
            if streamed {
                self.start_payload(Some(entry.payload), Some(entry.packet_id));
            }
            if let Some(e) = self.store.outgoing.get_mut(i) {
                e.send = false;
                e.deadline = now + self.timeouts.puback;
            }
            self.earliest_ack.set(None);
        }
        self.sends_pending = false;
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
                    .is_some_and(|bytes| self.tx.push_bytes(&bytes).is_ok());
                if !queued {
                    return;
                }
            }
            self.late_rels.remove(0);
        }
    }
}
