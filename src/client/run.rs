//! The connection's life: opening a transport and connecting, and the
//! loops that keep a client connected by themselves.

use super::*;
use crate::session::Version;

impl<K, C, U, const INFLIGHT: usize, const SUBS: usize, const ROUTES: usize>
    Client<'_, K, C, U, INFLIGHT, SUBS, ROUTES>
where
    K: Connector,
    C: Clock,
{
    /// One connection attempt: closes the old transport if one is open
    /// (one whose CONNACK is still awaited too; `on_disconnect` runs for
    /// it), opens a new one through the connector, sends CONNECT and waits
    /// for CONNACK (at most the connack timeout), then runs `on_connect`.
    /// Returns the session-present flag.
    ///
    /// With session present 0 and a non-empty subscription list (a
    /// reconnect), the list is re-subscribed; with clean session off,
    /// unacknowledged messages are resent; with clean session on, they are
    /// discarded (`on_publish_discarded`). Messages arriving meanwhile are
    /// dispatched. A refusal is [`BrokerError::Refused`](crate::BrokerError::Refused) with the return code
    /// (and `on_disconnect` runs); a connector failure is
    /// [`Error::ConnectFailed`]. [`run`](Self::run) retries by policy.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped `connect` leaves the client offline or with a
    /// half-done connection, which the next `connect` closes first, and
    /// which [`run_for`](Self::run_for) carries on once its CONNECT is
    /// sent.
    pub async fn connect(&mut self) -> Res<bool, TransportError<K>> {
        self.open().await?;
        self.await_connack(None).await?;
        Ok(self.session.session_present())
    }

    /// The first half of [`connect`](Self::connect): closes the old
    /// transport, opens a new one and queues the CONNECT.
    async fn open(&mut self) -> Res<(), TransportError<K>> {
        if self.session.state() == State::Connected {
            return Err(Error::Usage(UsageError::AlreadyConnected));
        }
        // Checked before any transport is opened: a CONNECT that can never
        // be sent is the caller's error, not the network's.
        let check = ConnectUse::<'_, '_, INFLIGHT, SUBS>::Check;
        connect_with(&self.config, &self.generated_id, check)?;
        // The old transport goes before the new one is opened: a one-slot
        // socket pool has room for only one.
        self.drop_connection(DisconnectReason::ConnectionLost);
        // An attempt is being made: a loss before it needs no more delay,
        // but ends the last connection for the backoff, as a close on
        // request does.
        let ended = self.lost.take();
        self.connection_ended(ended);
        // An AUTH answer left from the old connection answers nothing on
        // the new one.
        #[cfg(feature = "v5")]
        self.outbox
            .take(|r| matches!(r, crate::callbacks::Request::Auth { .. }));
        debug!("opening a connection");
        let transport = match self.connector.connect().await {
            Ok(transport) => transport,
            Err(_e) => {
                warning!("the connector failed");
                #[cfg(feature = "log")]
                ::log::warn!("connector error: {:?}", _e);
                return Err(Error::ConnectFailed);
            }
        };
        self.transport = Some(transport);
        let now = self.clock.now();
        // Streamed messages can be resent only if something supplies
        // their payload again.
        let mut options = *self.session.options();
        options.resend_streamed = self.callbacks.resends_payloads();
        self.session.set_options(options);
        let start = ConnectUse::Start(&mut self.session, now);
        if let Err(e) = connect_with(&self.config, &self.generated_id, start) {
            self.close_transport();
            return Err(e.into());
        }
        debug!("connecting");
        Ok(())
    }

    /// The second half of [`connect`](Self::connect): handles what comes
    /// until the CONNACK has (`Ok(true)`), or `deadline` has passed with
    /// the CONNACK still awaited (`Ok(false)`: the connection is left
    /// under way).
    async fn await_connack(&mut self, deadline: Option<Instant>) -> Res<bool, TransportError<K>> {
        self.drive(deadline, &|c| c.session.state() != State::Connecting)
            .await?;
        if self.session.state() == State::Connecting {
            return Ok(false);
        }
        self.require_connected()?;
        Ok(true)
    }

    /// Keeps the client connected for `timeout`: connects (and reconnects
    /// after every lost connection, after the backoff delay), handles what
    /// arrives, keeps the link alive, and returns what it handled. This is
    /// MiniMQTT's `loop(timeout)` that also reconnects; call it in the
    /// application's loop:
    ///
    /// ```no_run
    /// # async fn demo<K: minimqtt::reconnect::Connector, C: minimqtt::time::Clock>(client: &mut minimqtt::Client<'_, K, C, ()>) -> Result<(), minimqtt::Error<<K::Transport as embedded_io_async::ErrorType>::Error>> {
    /// use minimqtt::QoS;
    /// use minimqtt::time::Duration;
    ///
    /// loop {
    ///     client.run_for(Duration::from_secs(5)).await?;
    ///     if client.is_connected() {
    ///         // A failed publish means the connection just dropped:
    ///         // the next `run_for` reconnects.
    ///         let _ = client.publish("device/uptime", b"42", QoS::AtMostOnce, false).await;
    ///     }
    /// }
    /// # }
    /// ```
    ///
    /// The wait for a CONNACK counts against `timeout`: a connection
    /// whose CONNACK has not come when it runs out is carried on by the
    /// next call, within the connack timeout. So does a write the broker
    /// does not take: the next call finishes it (but for a flush already
    /// under way, and a write with no deadline of the session's to bound
    /// it across calls, keep-alive 0 and nothing awaited, which gets the
    /// pingresp timeout). Opening the transport does not count: the
    /// connector bounds its own attempt (a TCP connect's or TLS
    /// handshake's timeout). A `timeout` of zero takes one look at what
    /// has arrived, without waiting.
    ///
    /// Connection failures are not errors here: they reach `on_disconnect`
    /// and the next attempt waits for the backoff. Nor is a request queued
    /// by a callback or a [`Mailbox`](crate::mailbox::Mailbox) that the
    /// session refuses (an invalid topic, say): it is dropped and logged. The errors end the
    /// retrying: a permanent refusal ([`ConnectReturnCode::is_permanent`](crate::codec::ConnectReturnCode::is_permanent):
    /// bad credentials, not authorised, identifier rejected, protocol
    /// version), a [`Backoff::max_attempts`] that ran out (the last error),
    /// or a CONNECT that can never be sent (e.g. [`UsageError::EmptyClientId`](crate::UsageError::EmptyClientId)).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as every call of the client: dropping it at any point
    /// leaves the client offline, connected, or with its CONNECT sent and
    /// the CONNACK awaited, which the next call carries on.
    pub async fn run_for(&mut self, timeout: Duration) -> Res<Handled, TransportError<K>> {
        let deadline = self.clock.now() + timeout;
        loop {
            let now = self.clock.now();
            if self.session.state() != State::Connected {
                // A connection whose CONNACK was still awaited when the
                // last call's time ran out goes on; otherwise a new one,
                // after the backoff.
                let opened = if self.session.state() == State::Connecting {
                    Ok(())
                } else {
                    // A connection lost in another call (`poll`,
                    // `publish`, ...) is retried after the backoff delay,
                    // as one lost here is: devices that lost the broker
                    // together do not all come back at once.
                    if self.lost.is_some() {
                        self.schedule_retry(now);
                    }
                    if let Some(at) = self.retry_at.filter(|&at| at > now) {
                        self.clock.sleep_until(at.min(deadline)).await;
                        if at >= deadline {
                            return Ok(Handled::default());
                        }
                    }
                    self.open().await
                };
                let connected = match opened {
                    Ok(()) => self.await_connack(Some(deadline)).await,
                    Err(e) => Err(e),
                };
                let connected = match connected {
                    Ok(false) => return Ok(Handled::default()),
                    Ok(true) => true,
                    // Connected, and a queued request refused as the
                    // outbox was written: as below.
                    Err(e) if self.refused_request(&e) => true,
                    Err(e) => {
                        if !self.retry_later(e, deadline)? {
                            return Ok(Handled::default());
                        }
                        false
                    }
                };
                if connected {
                    self.retry_at = None;
                }
                continue;
            }
            // A deadline already past (a timeout of zero) still gets
            // `drive`'s one look at what has arrived.
            match self.drive(Some(deadline), &|_| false).await {
                Ok(handled) => return Ok(handled),
                // A callback's request the session refused: the loop goes
                // on.
                Err(e) if self.refused_request(&e) => {}
                Err(e) => {
                    if !self.retry_later(e, deadline)? {
                        return Ok(Handled::default());
                    }
                }
            }
        }
    }

    /// [`run_for`](Self::run_for) without end: returns only with the error
    /// that stopped the retrying.
    ///
    /// # Cancel safety
    ///
    /// As [`run_for`](Self::run_for).
    pub async fn run(&mut self) -> Error<TransportError<K>> {
        loop {
            if let Err(e) = self.run_for(Duration::from_secs(3600)).await {
                return e;
            }
        }
    }

    /// Whether `error` is a queued request the session refused as the
    /// outbox was written (an invalid topic, a full store): the request is
    /// dropped, the connection is fine and retrying cannot help, so the
    /// caller goes on. Logs it.
    pub(super) fn refused_request(&self, error: &Error<TransportError<K>>) -> bool {
        let refused = !error.is_connection_lost() && self.is_connected();
        if refused {
            warning!("a queued request was refused");
        }
        refused
    }

    /// After a failed connection or attempt: when to try again, or the
    /// error if trying again cannot help. `false` if `deadline` has
    /// passed: with a backoff delay of 0 the next attempt would not wait,
    /// and the deadline would never be looked at.
    fn retry_later(
        &mut self,
        error: Error<TransportError<K>>,
        deadline: Instant,
    ) -> Res<bool, TransportError<K>> {
        let retry = match error {
            Error::Broker(BrokerError::Refused(code)) => !code.is_permanent(),
            #[cfg(feature = "v5")]
            Error::Broker(BrokerError::RefusedV5(code)) => !code.is_permanent_refusal(),
            Error::ConnectFailed => true,
            ref e => e.is_connection_lost(),
        };
        let now = self.clock.now();
        let _delay = self.schedule_retry(now);
        if !retry || self.backoff.exhausted() {
            return Err(error);
        }
        debug!("reconnecting in {} ms", _delay.as_millis());
        Ok(now < deadline)
    }

    /// Counts a failure (the loss found earlier, or one at `now`) and
    /// sets when the next attempt may start: the backoff's next delay,
    /// with jitter, after the failure. Returns the delay.
    fn schedule_retry(&mut self, now: Instant) -> Duration {
        let failed = self.lost.take().unwrap_or(now);
        self.connection_ended(Some(failed));
        let now = failed;
        // The time of the failure too: devices with no seed and one id
        // (an empty one, the broker assigning theirs) that lost the
        // broker together have clocks that started apart.
        self.random ^= now.as_millis();
        // xorshift64*: the jitter needs spread, not secrecy. (It never
        // reaches 0 from a state that is not 0.)
        self.random = self.random.max(1);
        self.random ^= self.random >> 12;
        self.random ^= self.random << 25;
        self.random ^= self.random >> 27;
        let random = (self.random.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32;
        let delay = self.backoff.next_delay(random);
        // Also when giving up: an application that calls again at once
        // (ignoring the error) still waits out the backoff.
        self.retry_at = Some(now + delay);
        delay
    }

    /// The last accepted connection, if not accounted for yet, ended: lost
    /// at `lost`, or closed on request (`None`). One that lasted, or that
    /// the application closed, resets the backoff. One lost soon after its
    /// CONNACK (a broker that closes it at once, another device taking
    /// over the client id) counts as a failed attempt, so that such a loop
    /// slows down as failing connects do.
    fn connection_ended(&mut self, lost: Option<Instant>) {
        let Some(at) = self.connected_at.take() else {
            return;
        };
        if lost.is_none_or(|end| end.saturating_since(at) >= self.backoff.stable_after) {
            self.backoff.reset();
        }
    }
}

/// The CONNECT for `config`, with `generated` as the client id when the
/// config has none.
pub(super) fn connect_packet<'c>(
    config: &Config<'c>,
    generated: &'c str,
) -> crate::codec::Connect<'c> {
    crate::codec::Connect {
        clean_session: config.clean_session,
        keep_alive: config.keep_alive_secs,
        client_id: if config.client_id.is_empty() {
            generated
        } else {
            config.client_id
        },
        will: config.will,
        username: config.username,
        password: config.password,
    }
}

/// What [`connect_with`] does with the CONNECT it builds.
pub(super) enum ConnectUse<'s, 'b, const INFLIGHT: usize, const SUBS: usize> {
    /// Checks that it can be sent at all.
    Check,
    /// Starts a connection with it.
    Start(&'s mut Session<'b, INFLIGHT, SUBS>, Instant),
}

/// Builds the CONNECT `config` asks for, in its version, and checks it or
/// starts the session's connection with it. (Not `async`: the MQTT 5
/// property list lives on the stack only here.)
pub(super) fn connect_with<const INFLIGHT: usize, const SUBS: usize>(
    config: &Config<'_>,
    generated: &str,
    with: ConnectUse<'_, '_, INFLIGHT, SUBS>,
) -> Result<(), crate::SessionError> {
    let connect = connect_packet(config, generated);
    match config.version {
        Version::V3_1_1 => match with {
            ConnectUse::Check => crate::session::check_connect(&connect),
            ConnectUse::Start(session, now) => session.connect(now, &connect),
        },
        #[cfg(feature = "v5")]
        Version::V5 => {
            use crate::codec::v5::{self, Properties, Property};
            let mut list: heapless::Vec<Property<'_>, 10> = heapless::Vec::new();
            let too_many = || {
                crate::SessionError::Usage(UsageError::Encode(
                    crate::codec::EncodeError::PacketTooLarge,
                ))
            };
            // One pass over the caller's list: theirs win over ours, but a
            // Receive Maximum is capped at `INFLIGHT` and a Topic Alias
            // Maximum at `SUBS`, the most the session can keep track of.
            let (mut expiry_set, mut window_set) = (false, false);
            for p in config.properties.iter() {
                expiry_set |= matches!(p, Property::SessionExpiryInterval(_));
                window_set |= matches!(p, Property::ReceiveMaximum(_));
                let p = match p {
                    // 0 is not a valid maximum: none, as when the caller
                    // gives none.
                    Property::ReceiveMaximum(_) if INFLIGHT == 0 => continue,
                    Property::ReceiveMaximum(v) if usize::from(v) > INFLIGHT => {
                        Property::ReceiveMaximum(u16::try_from(INFLIGHT).unwrap_or(v))
                    }
                    // The broker's aliases are kept in a list of `SUBS`.
                    Property::TopicAliasMaximum(v) if usize::from(v) > SUBS => {
                        Property::TopicAliasMaximum(u16::try_from(SUBS).unwrap_or(v))
                    }
                    p => p,
                };
                list.push(p).map_err(|_| too_many())?;
            }
            let expiry = config
                .session_expiry_secs
                .unwrap_or(if config.clean_session { 0 } else { u32::MAX });
            if !expiry_set && expiry > 0 {
                list.push(Property::SessionExpiryInterval(expiry))
                    .map_err(|_| too_many())?;
            }
            // Our window for the broker's QoS 1/2 messages: the incoming
            // QoS 2 set holds `INFLIGHT` ids (0 is not a valid maximum).
            let window = u16::try_from(INFLIGHT).unwrap_or(u16::MAX);
            if !window_set && window > 0 && window < u16::MAX {
                list.push(Property::ReceiveMaximum(window))
                    .map_err(|_| too_many())?;
            }
            let connect = v5::Connect {
                clean_start: connect.clean_session,
                keep_alive: connect.keep_alive,
                properties: Properties::new(&list),
                client_id: connect.client_id,
                will: connect.will.map(|w| v5::Will {
                    properties: config.will_properties,
                    topic: w.topic,
                    payload: w.message,
                    qos: w.qos,
                    retain: w.retain,
                }),
                username: connect.username,
                password: connect.password,
            };
            match with {
                ConnectUse::Check => {
                    crate::session::check_connect_v5(&connect, INFLIGHT, SUBS)?;
                    Ok(())
                }
                ConnectUse::Start(session, now) => session.connect_v5(now, &connect),
            }
        }
        #[cfg(not(feature = "v5"))]
        Version::V5 => Err(crate::SessionError::Usage(UsageError::Unsupported(
            crate::error::Unsupported::Mqtt5,
        ))),
    }
}
