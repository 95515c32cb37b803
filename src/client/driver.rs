//! The driver loop: moving bytes between the transport and the session,
//! racing reads and writes against the session's deadlines, and calling
//! the callbacks for what the session reports.

use super::*;

impl<T, C, U, const INFLIGHT: usize, const SUBS: usize, const ROUTES: usize>
    Client<'_, T, C, U, INFLIGHT, SUBS, ROUTES>
where
    T: Read + Write,
    C: Clock,
{
    /// Reads and handles packets until `done` holds (checked after every
    /// packet and before waiting) or `deadline` passes.
    pub(super) async fn drive(
        &mut self,
        deadline: Option<Instant>,
        // `dyn`: one copy of this loop for all callers instead of one per
        // closure type, kilobytes less in firmware.
        done: &(dyn Fn(&Self) -> bool + Sync),
    ) -> Res<Handled, T::Error> {
        let mut handled = Handled::default();
        loop {
            self.flush().await?;
            if done(self) || self.session.state() == State::Disconnected {
                return Ok(handled);
            }
            if self.reader.has_data() {
                let buffered = match self.handle_buffered() {
                    // Write the dropped message's PUBACK / PUBREC before
                    // reporting it, so it goes out even if the caller stops.
                    Err(Error::MessageTooLarge { len }) => {
                        self.flush_transmit().await?;
                        // `poll` reports it; a call waiting for an
                        // acknowledgement goes on waiting (the skip is logged).
                        if deadline.is_some() {
                            return Err(Error::MessageTooLarge { len });
                        }
                        continue;
                    }
                    other => other?,
                };
                if let Some(message) = buffered {
                    handled.packets += 1;
                    handled.messages += usize::from(message);
                    continue;
                }
            }
            let now = self.clock.now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(handled);
            }
            let wake = match (self.session.poll_timeout(), deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let clock = &self.clock;
            let sleep = async move {
                match wake {
                    Some(t) => clock.sleep_until(t).await,
                    None => core::future::pending().await,
                }
            };
            let read = self.transport.read(self.reader.receive_buffer());
            match select(read, sleep).await {
                Either::First(Ok(0)) => return Err(self.fail(Error::ConnectionClosed)),
                Either::First(Ok(n)) => self.reader.commit(n),
                Either::First(Err(e)) => return Err(self.fail(Error::Transport(e))),
                Either::Second(()) => {
                    let now = self.clock.now();
                    if let Err(e) = self.session.handle_timeout(now) {
                        warning!("acknowledgement timed out");
                        return Err(self.fail(e.widen()));
                    }
                }
            }
        }
    }

    /// Handles one buffered packet: `Some(delivered a message)`, or `None`
    /// when the buffer holds no whole packet.
    // Not inlined: inside `drive`'s state machine this synchronous code
    // compiles some 700 bytes larger on thumbv7em.
    #[inline(never)]
    pub(super) fn handle_buffered(&mut self) -> Res<Option<bool>, T::Error> {
        let now = self.clock.now();
        let next = match self.reader.next() {
            Ok(next) => next,
            Err(m) => return Err(self.fail(Error::Malformed(m))),
        };
        let (packet, len) = match next {
            Next::Incomplete => return Ok(None),
            Next::Dropped {
                len,
                packet_type,
                ack,
            } => {
                if let Err(e) = self.session.handle_unparsed(packet_type, ack) {
                    return Err(self.fail(e.widen()));
                }
                warning!("skipping a packet of {} bytes", len);
                return Err(Error::MessageTooLarge { len });
            }
            Next::ClientPacket(packet_type) => {
                // The session refuses every such packet.
                let e = match self.session.handle_unparsed(packet_type, None) {
                    Err(e) => e,
                    Ok(()) => Error::Protocol(packet_type),
                };
                return Err(self.fail(e.widen()));
            }
            Next::Packet(packet, len) => (packet, len),
        };
        let event = self.session.handle_packet(now, packet);
        let mut ctx = Context::new(&mut self.user_data, &mut self.outbox);
        let mut ack = None;
        let delivered = match event {
            Err(e) => {
                self.reader.consume(len);
                return Err(self.fail(e.widen()));
            }
            Ok(None) => false,
            Ok(Some(Event::Connected {
                session_present,
                resubscribed,
                resending,
            })) => {
                self.session_present = session_present;
                let info = Connected {
                    session_present,
                    return_code: ConnectReturnCode::Accepted,
                    resubscribed,
                    resent: resending,
                };
                self.callbacks.connected(&mut ctx, info);
                false
            }
            Ok(Some(Event::Message(p))) => {
                let message = Message::from(p);
                self.callbacks.dispatch_message(&mut ctx, &message);
                ack = Some((p.qos, p.packet_id));
                true
            }
            Ok(Some(Event::Published {
                topic, packet_id, ..
            })) => {
                self.callbacks.published(&mut ctx, topic, Some(packet_id));
                false
            }
            Ok(Some(Event::Subscribed {
                packet_id,
                filters,
                codes,
            })) => {
                let awaited = self.awaited == Some(packet_id);
                for (sub, code) in filters.iter().zip(codes.iter()) {
                    if awaited {
                        let _ = self.granted.push(code);
                    }
                    self.callbacks
                        .subscribed(&mut ctx, sub.filter, code, packet_id);
                }
                false
            }
            Ok(Some(Event::Unsubscribed { packet_id, filters })) => {
                for filter in filters.iter() {
                    self.callbacks.unsubscribed(&mut ctx, filter, packet_id);
                }
                false
            }
            Ok(Some(Event::Pong)) => false,
        };
        self.reader.consume(len);
        if let Some((qos, packet_id)) = ack {
            if let Err(e) = self.session.acknowledge(qos, packet_id) {
                return Err(self.fail(e.widen()));
            }
        }
        Ok(Some(delivered))
    }

    /// Writes everything queued: the session's packets and the callbacks'
    /// requests.
    pub(super) async fn flush(&mut self) -> Res<(), T::Error> {
        loop {
            let written = self.flush_transmit().await;
            // Still set after an error only if the connection survived it
            // (`drop_connection` pops the entry with the lost bytes).
            if let Some(size) = self.handed_over.take() {
                if written.is_ok() {
                    if let Some((Request::Publish { topic, .. }, _)) = self.outbox.front() {
                        // The topic lives in the outbox, so this callback gets
                        // an outbox of its own, with no room.
                        let mut no_room = Outbox::new(&mut []);
                        let mut ctx = Context::new(&mut self.user_data, &mut no_room);
                        self.callbacks.published(&mut ctx, topic, None);
                    }
                }
                self.outbox.pop_front(size);
            }
            written?;
            if self.session.state() != State::Connected {
                return Ok(());
            }
            let Some((request, size)) = self.outbox.front() else {
                return Ok(());
            };
            let now = self.clock.now();
            let qos0 = matches!(
                request,
                Request::Publish {
                    qos: QoS::AtMostOnce,
                    ..
                }
            );
            let result = match request {
                Request::Publish {
                    topic,
                    payload,
                    qos,
                    retain,
                } => {
                    let publish = Publish::new(topic, payload, qos, retain);
                    self.session.publish(now, &publish).map(|_| ())
                }
                Request::Subscribe { filter, qos } => self
                    .session
                    .subscribe(now, &[Subscription { filter, qos }])
                    .map(|_| ()),
                Request::Unsubscribe { filter } => {
                    self.session.unsubscribe(now, &[filter]).map(|_| ())
                }
            };
            match result {
                // From here the session owns the request: a failed or
                // dropped write must not hand it over again.
                Ok(()) if qos0 => self.handed_over = Some(size),
                Ok(()) => self.outbox.pop_front(size),
                // Full for now: try again once acknowledgements free room
                // (never, with a window of 0: then it is an error below).
                Err(Error::InflightFull) if INFLIGHT > 0 => return Ok(()),
                // Write what is queued, then try again.
                Err(Error::TransmitBufferTooSmall { .. }) if !self.session.transmit_idle() => {}
                Err(e) => {
                    self.outbox.pop_front(size);
                    return Err(e.widen());
                }
            }
        }
    }

    /// Writes the session's pending bytes.
    ///
    /// A `write` or `flush` that does not complete (the peer stopped
    /// reading, the link is gone) is bounded by the session's next deadline,
    /// like a read: an expired acknowledgement ends the connection with
    /// [`Error::Timeout`], a due keep-alive queues a PINGREQ whose PINGRESP
    /// deadline then bounds the wait. Both futures are dropped at the
    /// deadline, so this relies on the transport's cancel safety.
    pub(super) async fn flush_transmit(&mut self) -> Res<(), T::Error> {
        let mut wrote = false;
        loop {
            let now = self.clock.now();
            let idle = self.session.poll_transmit(now).is_empty();
            if idle && !wrote {
                return Ok(());
            }
            let wake = self.session.poll_timeout();
            let sleep = sleep_until(&self.clock, wake);
            if idle {
                match select(self.transport.flush(), sleep).await {
                    Either::First(Ok(())) => return Ok(()),
                    Either::First(Err(e)) => return Err(self.fail(Error::Transport(e))),
                    Either::Second(()) => self.expire()?,
                }
                continue;
            }
            let pending = self.session.poll_transmit(now);
            match select(self.transport.write(pending), sleep).await {
                Either::First(Ok(0)) => return Err(self.fail(Error::ConnectionClosed)),
                Either::First(Ok(n)) => {
                    let now = self.clock.now();
                    self.session.handle_transmit(now, n);
                    wrote = true;
                }
                Either::First(Err(e)) => return Err(self.fail(Error::Transport(e))),
                Either::Second(()) => self.expire()?,
            }
        }
    }

    /// A deadline of the session passed while a write waited: an expired
    /// acknowledgement ends the connection, a due keep-alive queues PINGREQ.
    pub(super) fn expire(&mut self) -> Res<(), T::Error> {
        let now = self.clock.now();
        match self.session.handle_timeout(now) {
            Ok(()) => Ok(()),
            Err(e) => {
                warning!("acknowledgement timed out while writing");
                Err(self.fail(e.widen()))
            }
        }
    }

    /// Ends the connection after a connection error and tells `on_disconnect`.
    pub(super) fn fail(&mut self, error: Error<T::Error>) -> Error<T::Error> {
        if self.session.state() != State::Disconnected {
            self.drop_connection();
            let reason = match error {
                Error::Refused(code) => DisconnectReason::Refused(code),
                Error::Timeout(_) => DisconnectReason::Timeout,
                Error::Malformed(_) | Error::Protocol(_) => DisconnectReason::ProtocolError,
                _ => DisconnectReason::ConnectionLost,
            };
            self.notify_disconnect(reason);
        }
        error
    }

    /// Forgets the connection: in the session, the buffered input, and a
    /// QoS 0 outbox publish whose bytes went with the transmit queue.
    pub(super) fn drop_connection(&mut self) {
        self.session.connection_lost();
        self.reader.clear();
        if let Some(size) = self.handed_over.take() {
            self.outbox.pop_front(size);
        }
    }

    pub(super) fn notify_disconnect(&mut self, reason: DisconnectReason) {
        let mut ctx = Context::new(&mut self.user_data, &mut self.outbox);
        self.callbacks.disconnected(&mut ctx, reason);
    }

    pub(super) fn notify_published(&mut self, topic: &str, packet_id: Option<u16>) {
        let mut ctx = Context::new(&mut self.user_data, &mut self.outbox);
        self.callbacks.published(&mut ctx, topic, packet_id);
    }
}

/// Sleeps until `wake`, or forever without one.
async fn sleep_until<C: Clock>(clock: &C, wake: Option<Instant>) {
    match wake {
        Some(t) => clock.sleep_until(t).await,
        None => core::future::pending().await,
    }
}
