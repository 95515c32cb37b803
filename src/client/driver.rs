//! The driver loop: moving bytes between the transport and the session,
//! racing reads and writes against the session's deadlines, and calling
//! the callbacks for what the session reports.

use embassy_futures::select::{Either3, select3};

use super::*;
use crate::callbacks::{Defer, Dropped, Part};
use crate::codec::PacketType;
use crate::error::AckKind;
use crate::session::Closed;

impl<K, C, U, const INFLIGHT: usize, const SUBS: usize, const ROUTES: usize>
    Client<'_, K, C, U, INFLIGHT, SUBS, ROUTES>
where
    K: Connector,
    C: Clock,
{
    /// Reads and handles packets until `done` holds (checked after every
    /// batch of events and before waiting) or `deadline` passes.
    pub(super) async fn drive(
        &mut self,
        deadline: Option<Instant>,
        // `dyn`: one copy of this loop for all callers instead of one per
        // closure type, kilobytes less in firmware.
        done: &(dyn Fn(&Self) -> bool + Sync),
    ) -> Res<Handled, TransportError<K>> {
        let mut handled = Handled::default();
        // A deadline already past when called (a timeout of zero) still
        // gets one look at what has arrived: one wait that cannot block.
        let mut waited = false;
        loop {
            if let Some(inbox) = self.inbox {
                inbox.take_into(&mut self.outbox);
            }
            self.flush(deadline).await?;
            // Only a write cut by the deadline leaves bytes unwritten.
            let cut = deadline.is_some() && !self.session.transmit_idle();
            // No await from here to the wait: one reading serves.
            let now = self.clock.now();
            let late = deadline.is_some_and(|d| now >= d);
            if self.dispatch(now, &mut handled)? || !self.session.transmit_idle() {
                // Callbacks may have queued requests, and the packets
                // handled may have queued answers: write them first,
                // unless writing is what ran out of time (the rest goes
                // at the next call).
                if !(cut && late) {
                    continue;
                }
            }
            if done(self) || self.session.state() == State::Disconnected || (late && waited) {
                return Ok(handled);
            }
            // Requests another task queued while this one was writing.
            if self.inbox.is_some_and(|i| i.take_into(&mut self.outbox)) {
                continue;
            }
            let timeout = self.session.poll_timeout();
            // A deadline already due goes first: with a transport that is
            // always readable (a flood of messages), the read would win
            // every race against the sleep, and no PINGREQ or
            // acknowledgement timeout would ever come.
            if timeout.is_some_and(|t| now >= t) {
                self.expire(now)?;
                continue;
            }
            let wake = match (timeout, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let Some(transport) = self.transport.as_mut() else {
                return Err(Error::Usage(UsageError::NotConnected));
            };
            // Requests from other tasks wake the wait; unless the outbox
            // still holds requests the session could not take (its window
            // is full): those behind them wait until flushing makes room.
            // (Not "the mailbox has requests": one pushed since
            // `take_into` above, from an interrupt or another core, would
            // then wait for the next packet or deadline.)
            let inbox = self.inbox.filter(|_| self.outbox.is_empty());
            let requests = core::future::poll_fn(|cx| match inbox {
                Some(inbox) => inbox.poll_requests(cx),
                None => core::task::Poll::Pending,
            });
            let buf = self.session.receive_buffer();
            // No room to read into: the session holds what it read until
            // the acknowledgements it owes can be queued (the application
            // deferred as many as it may). A read into nothing returns 0,
            // which is not the end of the stream: wait for a request (an
            // acknowledgement, say) or a deadline instead.
            let full = buf.is_empty();
            let read = async move {
                if full {
                    core::future::pending::<()>().await;
                }
                transport.read(buf).await
            };
            waited = true;
            match select3(read, sleep_until(&self.clock, wake), requests).await {
                Either3::First(Ok(0)) => return Err(self.fail(Error::ConnectionClosed)),
                Either3::First(Ok(n)) => self.session.commit(n),
                Either3::First(Err(e)) => return Err(self.fail(Error::Transport(e))),
                Either3::Second(()) => self.expire(self.clock.now())?,
                Either3::Third(()) => {}
            }
        }
    }

    /// Hands every event the session has to the callbacks. `Ok(true)` if
    /// there was one; an error if the connection ended.
    // Not inlined: inside `drive`'s state machine this synchronous code
    // compiles larger.
    #[inline(never)]
    pub(super) fn dispatch(
        &mut self,
        now: Instant,
        handled: &mut Handled,
    ) -> Res<bool, TransportError<K>> {
        let mut any = false;
        let received = self.session.packets_received();
        let closed = loop {
            let Client {
                session,
                callbacks,
                user_data,
                outbox,
                awaited,
                granted,
                connected_at,
                #[cfg(feature = "v5")]
                transport,
                #[cfg(feature = "v5")]
                config,
                #[cfg(feature = "v5")]
                generated_id,
                ..
            } = self;
            let acks = session.ack_state();
            // Reason codes are MQTT 5's: on 3.1.1 the callbacks see none.
            #[cfg(feature = "v5")]
            let v5 = session.version() == crate::session::Version::V5;
            let Some(event) = session.poll_event(now) else {
                break None;
            };
            any = true;
            let mut ctx = Context::new(user_data, outbox);
            // What the session must do once the event is consumed.
            let mut defer = false;
            let mut skip = false;
            match event {
                Event::Connected(info) => {
                    *connected_at = Some(now);
                    // MQTT 5: an id the broker assigned (our CONNECT had
                    // none) is the one to resume the session with.
                    #[cfg(feature = "v5")]
                    if let Some(id) = info.properties.assigned_client_identifier() {
                        if config.client_id.is_empty() && generated_id.is_empty() {
                            if generated_id.push_str(id).is_err() {
                                crate::fmt::warning!("assigned client id too long to keep");
                            }
                        }
                    }
                    callbacks.connected(&mut ctx, info)
                }
                Event::Message(message) => {
                    handled.messages += 1;
                    let mut ctx =
                        ctx.with_defer(Defer::offer(acks, message.qos, message.packet_id));
                    callbacks.dispatch_message(&mut ctx, &message);
                    defer = ctx.deferred();
                }
                Event::Stream(_) if !cfg!(feature = "streaming") => {}
                Event::Stream(stream) => match stream.part {
                    Part::Start => {
                        if callbacks.dispatch_stream(&mut ctx, &stream) == 0 {
                            // No route streams it: skipped and reported as
                            // any message too large is.
                            handled.dropped += 1;
                            skip = true;
                            let dropped = Dropped {
                                len: stream.packet_len(),
                                packet_type: PacketType::Publish,
                                topic: Some(stream.topic),
                                qos: stream.qos,
                                packet_id: stream.packet_id,
                            };
                            callbacks.dropped(&mut ctx, &dropped);
                        }
                    }
                    Part::End => {
                        handled.messages += 1;
                        let mut ctx =
                            ctx.with_defer(Defer::offer(acks, stream.qos, stream.packet_id));
                        callbacks.dispatch_stream(&mut ctx, &stream);
                        defer = ctx.deferred();
                    }
                    Part::Chunk { .. } | Part::Aborted => {
                        callbacks.dispatch_stream(&mut ctx, &stream);
                    }
                },
                Event::Sent { topic } => callbacks.published(&mut ctx, topic, None),
                Event::Published {
                    topic,
                    packet_id,
                    #[cfg(feature = "v5")]
                    reason,
                    ..
                } => {
                    #[cfg(feature = "v5")]
                    if v5 {
                        ctx.set_reason(reason);
                    }
                    callbacks.published(&mut ctx, topic, Some(packet_id));
                }
                Event::Discarded {
                    topic, packet_id, ..
                } => callbacks.discarded(&mut ctx, topic, packet_id),
                Event::Subscribed {
                    packet_id,
                    filters,
                    codes,
                    #[cfg(feature = "v5")]
                    properties,
                } => {
                    let waited = *awaited == Some(packet_id);
                    #[cfg(feature = "v5")]
                    let mut reasons = codes.reason_codes();
                    let bytes = codes.as_bytes().iter();
                    for ((sub, code), &byte) in filters.iter().zip(codes.iter()).zip(bytes) {
                        if waited {
                            let _ = granted.push(byte);
                        }
                        #[cfg(feature = "v5")]
                        if v5 {
                            ctx.set_reason(crate::session::Reason {
                                code: reasons.next().unwrap_or_default(),
                                properties,
                            });
                        }
                        callbacks.subscribed(&mut ctx, sub.filter, code, packet_id);
                    }
                }
                Event::Unsubscribed {
                    packet_id,
                    filters,
                    #[cfg(feature = "v5")]
                    codes,
                    #[cfg(feature = "v5")]
                    properties,
                } => {
                    #[cfg(feature = "v5")]
                    let mut reasons = codes.reason_codes();
                    for filter in filters.iter() {
                        // MQTT 3.1.1's UNSUBACK has no codes: success.
                        #[cfg(feature = "v5")]
                        if v5 {
                            ctx.set_reason(crate::session::Reason {
                                code: reasons.next().unwrap_or_default(),
                                properties,
                            });
                        }
                        callbacks.unsubscribed(&mut ctx, filter, packet_id);
                    }
                }
                Event::Pong => {}
                #[cfg(feature = "v5")]
                Event::Auth(auth) => callbacks.auth(&mut ctx, &auth),
                Event::Dropped(dropped) => {
                    handled.dropped += 1;
                    callbacks.dropped(&mut ctx, &dropped);
                }
                Event::Closed(reason) => break Some(reason),
                #[cfg(feature = "v5")]
                Event::Disconnected(d) => {
                    // `on_disconnect` runs here, while the DISCONNECT's
                    // properties (Reason String, Server Reference) can
                    // still be lent to it; the transport goes first, so
                    // the closing that follows does not run it again.
                    let code = d.reason_code;
                    if transport.take().is_some() {
                        ctx.set_reason(crate::session::Reason {
                            code,
                            properties: d.properties,
                        });
                        callbacks.disconnected(&mut ctx, DisconnectReason::ServerDisconnect(code));
                    }
                    break Some(Closed::ServerDisconnect(code));
                }
            }
            if defer {
                // Cannot fail: `ack_state` said there was room.
                let _ = session.defer_ack();
            }
            if skip {
                session.skip_stream();
            }
        };
        let packets = self.session.packets_received() - received;
        handled.packets += usize::try_from(packets).unwrap_or(usize::MAX);
        match closed {
            Some(reason) => Err(self.closed(reason)),
            None => Ok(any),
        }
    }

    /// Writes everything queued: the session's packets and the callbacks'
    /// requests; or as much as it can by `until`, the caller's deadline
    /// (the rest is written by the next call).
    pub(super) async fn flush(&mut self, until: Option<Instant>) -> Res<(), TransportError<K>> {
        loop {
            // Queued first, so that they go out in the same write as what
            // the session has queued (acknowledgements, say). (The usual
            // empty outbox costs no call.)
            let queued = match self.outbox.is_empty() {
                true => Ok(false),
                false => self.queue_requests(),
            };
            #[cfg_attr(not(feature = "streaming"), allow(unused_mut))]
            let mut written = self.flush_transmit(None, until).await;
            // A resent streamed message's payload, asked of the
            // application again; then what waited behind it. (`#[cfg]`:
            // an await point in dead code still costs its state.)
            #[cfg(feature = "streaming")]
            while written.is_ok() && self.session.payload_due().is_some() {
                written = self.write_payload(None).await;
                if written.is_ok() {
                    written = self.flush_transmit(None, until).await;
                }
            }
            // `on_publish` may queue requests too.
            let reported = written.is_ok() && self.report_sent();
            written?;
            // A refusal's error, once what was queued before is written
            // (or as much of it as the deadline let through).
            let queued = queued?;
            if until.is_some() && !self.session.transmit_idle() {
                // Cut by the deadline.
                return Ok(());
            }
            if !queued && !reported {
                return Ok(());
            }
        }
    }

    /// Hands the session the outbox's requests, oldest first, while they
    /// fit, so that several go out in one write. `Ok(true)`: call again
    /// once the transmit queue is written, for the requests left.
    ///
    /// A request the session refuses is dropped from the outbox and its
    /// error returned when it comes first; behind requests queued by this
    /// call, it stays until they are written, and is tried again.
    #[inline(never)]
    fn queue_requests(&mut self) -> Result<bool, SessionError> {
        let mut again = false;
        // One clock reading stamps the whole batch.
        let mut now = None;
        while let Some((request, size)) = self.outbox.front() {
            if self.session.state() != State::Connected {
                #[cfg(feature = "v5")]
                if self.session.state() == State::Connecting {
                    return self.queue_auth();
                }
                break;
            }
            let now = *now.get_or_insert_with(|| self.clock.now());
            let result = match request {
                Request::Publish {
                    topic,
                    payload,
                    qos,
                    retain,
                    #[cfg(feature = "v5")]
                    properties,
                } => {
                    let publish = Publish::new(topic, payload, qos, retain);
                    #[cfg(feature = "v5")]
                    let queued = if properties.is_empty() {
                        self.session.publish(now, &publish)
                    } else {
                        self.session.publish_with(now, &publish, &properties)
                    };
                    #[cfg(not(feature = "v5"))]
                    let queued = self.session.publish(now, &publish);
                    queued.map(|_| ())
                }
                Request::Subscribe { filter, qos } => self
                    .session
                    .subscribe(now, &[Subscription { filter, qos }])
                    .map(|_| ()),
                Request::Unsubscribe { filter } => {
                    self.session.unsubscribe(now, &[filter]).map(|_| ())
                }
                Request::Ack(token) => {
                    redeem(&mut self.session, token);
                    Ok(())
                }
                #[cfg(feature = "v5")]
                Request::Auth { data } => {
                    let reason = crate::codec::v5::ReasonCode::ContinueAuthentication;
                    auth_with(&self.config, &mut self.session, now, reason, data)
                }
            };
            match result {
                Ok(()) => {
                    self.outbox.pop_front(size);
                    again = true;
                }
                // Full for now: try again once acknowledgements free room
                // (never, with a window of 0: then it is an error below).
                // The application's acknowledgements behind it go now:
                // the broker's that free the window may be held behind
                // the messages they acknowledge.
                Err(SessionError::Resource(ResourceError::InflightFull)) if INFLIGHT > 0 => {
                    let Client {
                        outbox, session, ..
                    } = self;
                    outbox.take_acks(|token| redeem(session, token));
                    break;
                }
                // Write what is queued, then try again.
                Err(SessionError::Resource(ResourceError::TransmitBufferTooSmall { .. }))
                    if !self.session.transmit_idle() =>
                {
                    again = true;
                    break;
                }
                Err(_) if again => break,
                Err(e) => {
                    self.outbox.pop_front(size);
                    return Err(e);
                }
            }
        }
        Ok(again)
    }

    /// While connecting: queues the first AUTH answer in the outbox,
    /// wherever it is. Only an AUTH goes out before CONNACK (MQTT 5
    /// §4.12); the requests queued before it wait for the CONNACK, and
    /// must not hold up the exchange that leads to it. `Ok(true)`: call
    /// again once the transmit queue is written.
    #[cfg(feature = "v5")]
    fn queue_auth(&mut self) -> Result<bool, SessionError> {
        let Client {
            outbox,
            session,
            config,
            clock,
            ..
        } = self;
        let reason = crate::codec::v5::ReasonCode::ContinueAuthentication;
        let mut result = Ok(false);
        outbox.take(|request| match (request, &result) {
            (Request::Auth { data }, Ok(false)) => {
                match auth_with(config, session, clock.now(), reason, data) {
                    // Write what is queued, then try again.
                    Err(SessionError::Resource(ResourceError::TransmitBufferTooSmall {
                        ..
                    })) if !session.transmit_idle() => {
                        result = Ok(true);
                        false
                    }
                    // Queued, or refused: dropped either way.
                    queued => {
                        result = queued.map(|()| true);
                        true
                    }
                }
            }
            _ => false,
        });
        result
    }

    /// Writes the session's pending bytes.
    ///
    /// A `write` or `flush` that does not complete (the peer stopped
    /// reading, the link is gone) is bounded by the session's next deadline,
    /// like a read: an expired acknowledgement ends the connection with
    /// [`Error::Timeout`], a due keep-alive queues a PINGREQ whose PINGRESP
    /// deadline then bounds the wait; with no deadline (keep-alive 0,
    /// nothing awaited), a write stalled for the PINGRESP timeout ends the
    /// connection with [`Error::Timeout`]. Both futures are dropped at the
    /// deadline, so this relies on the transport's cancel safety.
    ///
    /// `now`: the clock just read, if the caller has. `until`: the
    /// caller's own deadline, which returns `Ok` with bytes unwritten.
    pub(super) async fn flush_transmit(
        &mut self,
        now: Option<Instant>,
        until: Option<Instant>,
    ) -> Res<(), TransportError<K>> {
        // Nothing to write (the usual case between packets): no clock read.
        if self.session.transmit_idle() {
            return Ok(());
        }
        let mut now = match now {
            Some(now) => now,
            None => self.clock.now(),
        };
        let mut wrote = false;
        // One clock read for the usual case, one write that takes all; read
        // again only after a partial write or a deadline. A write stamped a
        // little early only brings the next PINGREQ forward.
        loop {
            // Without a deadline of the session's (keep-alive 0, nothing
            // awaited), a peer that stopped reading would hold the write
            // forever: it gets the PINGRESP timeout, as DISCONNECT's write.
            let (wake, stalled) = match self.session.poll_timeout() {
                Some(wake) => (wake, false),
                None => (self.clock.now() + self.session.timeouts().pingresp, true),
            };
            // The caller's deadline cuts a write short, the rest left
            // queued for its next call, as long as a deadline of the
            // session's, which outlives the call, bounds the stall; the
            // pingresp timeout above starts afresh with each call, so it
            // is not cut. Nor is a flush: nothing would say it is owed.
            let cut = until.filter(|&until| !stalled && until < wake);
            let Some(transport) = self.transport.as_mut() else {
                return if self.session.state() == State::Disconnected {
                    Ok(())
                } else {
                    Err(Error::Usage(UsageError::NotConnected))
                };
            };
            let pending = self.session.poll_transmit(now);
            if pending.is_empty() {
                if !wrote {
                    return Ok(());
                }
                match select(transport.flush(), sleep_until(&self.clock, Some(wake))).await {
                    Either::First(Ok(())) => return Ok(()),
                    Either::First(Err(e)) => return Err(self.fail(Error::Transport(e))),
                    Either::Second(()) if stalled => return Err(self.stalled()),
                    Either::Second(()) => {
                        now = self.clock.now();
                        self.expire(now)?;
                    }
                }
                continue;
            }
            let len = pending.len();
            // (The write and the flush wait in futures of their own: one
            // future for both cost a QoS 0 publish about 45 instructions.)
            let limit = Some(cut.unwrap_or(wake));
            match select(transport.write(pending), sleep_until(&self.clock, limit)).await {
                Either::First(Ok(0)) => return Err(self.fail(Error::ConnectionClosed)),
                Either::First(Ok(n)) => {
                    if n < len {
                        now = self.clock.now();
                    }
                    self.session.handle_transmit(now, n);
                    wrote = true;
                }
                Either::First(Err(e)) => return Err(self.fail(Error::Transport(e))),
                Either::Second(()) if cut.is_some() => return Ok(()),
                Either::Second(()) if stalled => return Err(self.stalled()),
                Either::Second(()) => {
                    now = self.clock.now();
                    self.expire(now)?;
                }
            }
        }
    }

    /// Writes the DISCONNECT that `queue` puts in the session. Nothing
    /// answers it, so no session deadline bounds its write: a peer that
    /// stopped reading gets the pingresp timeout.
    pub(super) async fn say_goodbye(
        &mut self,
        queue: impl FnOnce(&mut Session<'_, INFLIGHT, SUBS>) -> Result<(), SessionError>,
    ) -> Res<(), TransportError<K>> {
        match self.flush(None).await {
            // A queued request refused (an invalid topic, say) does not
            // hold the goodbye back: without DISCONNECT the broker would
            // publish the will.
            Err(e) if self.refused_request(&e) => {}
            written => written?,
        }
        queue(&mut self.session)?;
        let limit = self.clock.now() + self.session.timeouts().pingresp;
        let timeout = Error::Timeout(AckKind::PingResp);
        loop {
            let now = self.clock.now();
            let Some(transport) = self.transport.as_mut() else {
                return Err(Error::Usage(UsageError::NotConnected));
            };
            let pending = self.session.poll_transmit(now);
            if pending.is_empty() {
                return match select(transport.flush(), self.clock.sleep_until(limit)).await {
                    Either::First(Ok(())) => Ok(()),
                    Either::First(Err(e)) => Err(Error::Transport(e)),
                    Either::Second(()) => Err(timeout),
                };
            }
            match select(transport.write(pending), self.clock.sleep_until(limit)).await {
                Either::First(Ok(0)) => return Err(Error::ConnectionClosed),
                Either::First(Ok(n)) => self.session.handle_transmit(now, n),
                Either::First(Err(e)) => return Err(Error::Transport(e)),
                Either::Second(()) => return Err(timeout),
            }
        }
    }

    /// A deadline of the session passed: an expired acknowledgement ends
    /// the connection, a due keep-alive queues PINGREQ.
    pub(super) fn expire(&mut self, now: Instant) -> Res<(), TransportError<K>> {
        self.session.handle_timeout(now);
        if self.session.state() != State::Disconnected {
            return Ok(());
        }
        // The session ended the connection: its `Closed` event says why.
        let mut handled = Handled::default();
        self.dispatch(now, &mut handled)?;
        Err(self.fail(Error::Usage(UsageError::NotConnected)))
    }

    /// Ends the connection for a reason the session gave, after the one
    /// packet it may have left to say why (MQTT 5: a DISCONNECT with the
    /// reason code of the broker's violation).
    fn closed(&mut self, reason: Closed) -> Error<TransportError<K>> {
        #[cfg(feature = "v5")]
        self.last_words();
        self.drop_connection(reason.into());
        reason.into()
    }

    /// Offers the session's last bytes to the transport once, without
    /// waiting: the connection closes now whatever the transport does
    /// with them, so a broker that stopped reading cannot hold it open.
    #[cfg(feature = "v5")]
    fn last_words(&mut self) {
        let Some(transport) = self.transport.as_mut() else {
            return;
        };
        let bytes = self.session.poll_transmit(Instant::default());
        if bytes.is_empty() {
            return;
        }
        if let core::task::Poll::Ready(Ok(_)) = embassy_futures::poll_once(transport.write(bytes)) {
            let _ = embassy_futures::poll_once(transport.flush());
        }
    }

    /// Ends the connection after a write the peer did not take within
    /// the PINGRESP timeout, with no deadline of the session's to bound it.
    fn stalled(&mut self) -> Error<TransportError<K>> {
        self.drop_connection(DisconnectReason::Timeout);
        Error::Timeout(AckKind::PingResp)
    }

    /// Ends the connection after the transport failed (the reasons the
    /// session gives go through [`closed`](Self::closed)).
    pub(super) fn fail(&mut self, error: Error<TransportError<K>>) -> Error<TransportError<K>> {
        self.drop_connection(DisconnectReason::ConnectionLost);
        error
    }

    /// Closes the transport, and tells `on_disconnect` if one was open.
    pub(super) fn drop_connection(&mut self, reason: DisconnectReason) {
        if self.close_transport() {
            // A loss, not a close on request: the next `run_for` waits out
            // the backoff, counted from now.
            if reason != DisconnectReason::Requested {
                self.lost = Some(self.clock.now());
            }
            self.notify_disconnect(reason);
        }
    }

    /// Drops the transport and forgets the connection.
    /// `true` if a transport was open: `on_disconnect` is due, once.
    pub(super) fn close_transport(&mut self) -> bool {
        let had = self.transport.take().is_some();
        self.session.connection_lost();
        if cfg!(feature = "streaming") && self.session.is_streaming() {
            // The only event of a lost connection: the stream's abort.
            if let Some(Event::Stream(stream)) = self.session.poll_event(Instant::default()) {
                let mut ctx = Context::new(&mut self.user_data, &mut self.outbox);
                self.callbacks.dispatch_stream(&mut ctx, &stream);
            }
        }
        had
    }

    pub(super) fn notify_disconnect(&mut self, reason: DisconnectReason) {
        let mut ctx = Context::new(&mut self.user_data, &mut self.outbox);
        self.callbacks.disconnected(&mut ctx, reason);
    }

    /// Runs `on_publish` for the QoS 0 messages written in full since the
    /// last call: "complete when written", not at the next read. `true`
    /// if it ran.
    // Not inlined: three callers.
    #[inline(never)]
    pub(super) fn report_sent(&mut self) -> bool {
        let Client {
            session,
            callbacks,
            user_data,
            outbox,
            ..
        } = self;
        let mut any = false;
        while let Some(topic) = session.poll_sent() {
            let mut ctx = Context::new(user_data, outbox);
            callbacks.published(&mut ctx, topic, None);
            any = true;
        }
        any
    }
}

/// Queues the acknowledgement `token` stands for. A token of a lost
/// connection sends nothing: its message comes again. Not worth an error.
fn redeem<const INFLIGHT: usize, const SUBS: usize>(
    session: &mut Session<'_, INFLIGHT, SUBS>,
    token: crate::session::AckToken,
) {
    if session.ack(token).is_err() {
        crate::fmt::debug!("stale acknowledgement token dropped");
    }
}

/// Sleeps until `wake`, or forever without one.
pub(super) async fn sleep_until<C: Clock>(clock: &C, wake: Option<Instant>) {
    match wake {
        Some(t) => clock.sleep_until(t).await,
        None => core::future::pending().await,
    }
}

/// Queues an AUTH with `reason`, the CONNECT's Authentication Method and
/// `data`.
#[cfg(feature = "v5")]
pub(super) fn auth_with<const INFLIGHT: usize, const SUBS: usize>(
    config: &crate::Config<'_>,
    session: &mut crate::session::Session<'_, INFLIGHT, SUBS>,
    now: crate::time::Instant,
    reason: crate::codec::v5::ReasonCode,
    data: &[u8],
) -> Result<(), crate::SessionError> {
    use crate::codec::v5::{Auth, Properties, Property};
    let method = config.properties.authentication_method().unwrap_or("");
    let props = [
        Property::AuthenticationMethod(method),
        Property::AuthenticationData(data),
    ];
    session.auth(
        now,
        &Auth {
            reason_code: reason,
            properties: Properties::new(&props),
        },
    )
}
