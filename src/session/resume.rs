//! Resuming a session after CONNACK: re-subscribing what the broker does
//! not know, and re-sending in-flight messages in their original order.

use super::*;

impl<const INFLIGHT: usize, const SUBS: usize> Session<'_, INFLIGHT, SUBS> {
    /// Whether a reconnect could still re-send the subscription list (with
    /// `extra` filters added) in one SUBSCRIBE once `more` store bytes are
    /// taken: the packet must fit the transmit buffer, and the store must
    /// hold its copy next to the in-flight messages and the filters (the
    /// pending requests are dropped by then). Otherwise every reconnect
    /// would fail the same way.
    pub(super) fn check_resubscribe_room(
        &self,
        extra: &[Subscription<'_>],
        more: usize,
    ) -> Result<()> {
        let mut payload = 0;
        let mut filter_bytes = 0;
        let known = self.store.subscriptions.iter().map(|s| s.span.len);
        let new = extra
            .iter()
            .filter(|s| self.store.find_subscription(s.filter).is_none())
            .map(|s| s.filter.len());
        for len in known.chain(new) {
            payload += 2 + len + 1;
            filter_bytes += len;
        }
        if payload == 0 {
            return Ok(());
        }
        let remaining = 2 + payload;
        let len =
            1 + crate::codec::varint_len(u32::try_from(remaining).unwrap_or(u32::MAX)) + remaining;
        if len > self.tx.capacity() {
            return Err(Error::TransmitBufferTooSmall { needed: len });
        }
        let outgoing: usize = self
            .store
            .outgoing
            .iter()
            .filter(|e| !e.done)
            .map(|e| e.span.len)
            .sum();
        if outgoing + filter_bytes + more + len > self.store.capacity() {
            return Err(Error::StoreFull);
        }
        Ok(())
    }

    pub(super) fn on_connack(&mut self, now: Instant, ack: ConnAck) -> Result<Event<'_>> {
        self.connack_deadline = None;
        // On an error the driver closes the connection and calls
        // `connection_lost`, which ends the `Connecting` state.
        if ack.return_code != ConnectReturnCode::Accepted {
            return Err(Error::Refused(ack.return_code));
        }
        if ack.session_present && self.clean_session {
            // MQTT-3.2.2-1: the broker must not claim a session we asked it
            // to discard; our state and its state cannot be reconciled.
            return Err(Error::Protocol(PacketType::ConnAck));
        }
        self.state = State::Connected;
        // `last_sent` stays: keep-alive counts from the CONNECT written.
        if !ack.session_present {
            // A new broker session has no QoS 2 message of ours awaiting
            // PUBREL and numbers its packets afresh: a kept id would make a
            // new message look like a duplicate and drop it.
            self.incoming.clear();
            self.releasing.clear();
            // Nor any of our subscriptions.
            for sub in self.store.subscriptions.iter_mut() {
                sub.confirmed = false;
            }
            // Nor the QoS 2 messages past PUBREC: the broker that received
            // them is gone (a restart without persistence). A PUBREL would
            // name an id it never saw (some brokers drop the connection
            // for that) and the message may never have been forwarded, so
            // it is sent again from the start: at least once, because
            // exactly once is impossible across a broker that forgot.
            for e in self.store.outgoing.iter_mut() {
                if e.stage == Stage::AwaitPubComp {
                    e.stage = Stage::AwaitPubRec;
                }
            }
        }
        let mut resubscribed = 0;
        if self.store.subscriptions.iter().any(|s| !s.confirmed) {
            resubscribed = self.resubscribe(now)?;
        }
        if self.clean_session {
            self.resend_next = 0;
            self.resend_end = 0;
        } else {
            self.resend_next = 0;
            self.resend_end = self.store.outgoing.len();
            // Their old deadlines ran out while disconnected: restart them
            // (again when each is actually queued).
            for e in self.store.outgoing.iter_mut() {
                e.deadline = now + self.timeouts.puback;
            }
        }
        Ok(Event::Connected {
            session_present: ack.session_present,
            resubscribed,
            resending: self.resend_end,
        })
    }

    /// One SUBSCRIBE with every filter of the subscription list that no
    /// SUBACK of the current broker session has confirmed.
    fn resubscribe(&mut self, now: Instant) -> Result<usize> {
        if self.store.requests.is_full() {
            return Err(Error::InflightFull);
        }
        let packet_id = self.allocate_packet_id()?;
        // The filters borrow the store; encode them into the transmit
        // queue first, then copy the packet from there into the store.
        let (count, start) = {
            let mut list: heapless::Vec<Subscription<'_>, SUBS> = heapless::Vec::new();
            for s in self.store.subscriptions.iter().filter(|s| !s.confirmed) {
                let filter = core::str::from_utf8(self.store.bytes(s.span)).unwrap_or("");
                let _ = list.push(Subscription { filter, qos: s.qos });
            }
            let subscribe = Subscribe {
                packet_id,
                filters: SubscribeFilters::new(&list),
            };
            let len = subscribe.encoded_len();
            if len > self.tx.capacity() {
                return Err(Error::TransmitBufferTooSmall { needed: len });
            }
            let start = self.tx.pending().len();
            self.tx.push(Encode::Subscribe(&subscribe))?;
            (list.len(), start)
        };
        let bytes = self.tx.pending().get(start..).unwrap_or(&[]);
        let span = self.store.append(bytes).map_err(|_| Error::StoreFull)?;
        self.add_request(now, packet_id, RequestKind::Subscribe, span);
        Ok(count)
    }

    /// Queues the resends that fit the transmit queue, from `resend_next`;
    /// `poll_transmit` calls again each time the queue has drained.
    pub(super) fn queue_resends(&mut self, now: Instant) {
        while self.resend_next < self.resend_end {
            let i = self.resend_next;
            let Some(&entry) = self.store.outgoing.get(i) else {
                self.resend_next = self.resend_end;
                return;
            };
            let pushed = if entry.done {
                true
            } else if entry.stage == Stage::AwaitPubComp {
                self.tx
                    .push_ack(PacketType::PubRel, entry.packet_id)
                    .is_ok()
            } else {
                // DUP marks the resend (MQTT-3.3.1-1); it stays set.
                if let Some(first) = self.store.bytes_mut(entry.span).first_mut() {
                    *first |= 0b1000;
                }
                let bytes = self.store.bytes(entry.span);
                if self.tx.has_room(bytes.len()) {
                    self.tx.push_bytes(bytes).is_ok()
                } else {
                    false
                }
            };
            if !pushed {
                return;
            }
            if let Some(e) = self.store.outgoing.get_mut(i) {
                e.deadline = now + self.timeouts.puback;
            }
            self.resend_next += 1;
        }
    }
}
