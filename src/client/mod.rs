//! The async driver: `Client<T>` over any `embedded_io_async` stream.
//!
//! All protocol decisions are the [`Session`]'s; the client only moves
//! bytes between the transport and the session, reads the clock, and calls
//! the callbacks.

use embassy_futures::select::{Either, select};
use embedded_io_async::{Read, Write};

use crate::callbacks::{
    Callbacks, Connected, Context, DisconnectReason, Message, MessageCallback, Outbox, Request,
    RouteError,
};
use crate::codec::{ConnectReturnCode, Publish, QoS, SubscribeReturnCode, Subscription};
use crate::config::{BufferSlices, Config, generate_client_id};
use crate::error::Error;
use crate::fmt::{debug, warning};
use crate::reader::{Next, PacketReader};
use crate::reconnect::{Backoff, Connector};
use crate::session::{Event, Session, State};
use crate::time::{Clock, Duration, Instant};

mod driver;

/// What a [`Client::poll`] handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Handled {
    /// Packets received and handled.
    pub packets: usize,
    /// Application messages delivered to callbacks.
    pub messages: usize,
}

/// An MQTT 3.1.1 client over the transport `T` (any
/// `embedded_io_async::Read + Write` byte stream: TCP, TLS, a UART),
/// with the clock `C`, and the user data `U` its callbacks share.
///
/// Capacities, all const generics with defaults:
/// - `INFLIGHT` (8): outgoing QoS 1/2 messages awaiting their handshake;
///   also pending (un)subscribe requests and incoming QoS 2 messages
///   awaiting PUBREL, each counted separately. [`publish`](Self::publish)
///   waits while the window is full; [`try_publish`](Self::try_publish)
///   returns [`Error::InflightFull`] instead. For incoming QoS 2 to stay
///   exactly-once across reconnects, `INFLIGHT` must be at least the
///   number of QoS 2 messages the broker may leave awaiting PUBREL to one
///   client: past it the oldest unreleased id is forgotten, and a resend of
///   that message after a reconnect would be delivered again. MQTT 3.1.1
///   sets no limit; mosquitto 2.0 was seen with 91 outstanding while being
///   restarted repeatedly (its `max_inflight_messages` does not bound them).
/// - `SUBS` (8): the subscription list re-sent after a reconnect.
/// - `ROUTES` (8): per-topic callbacks.
///
/// Byte buffers are the caller's, see [`Buffers`](crate::Buffers).
///
/// # Cancel safety
///
/// Every `async fn` of the client keeps its progress in the client itself:
/// bytes are handed to the session as soon as they are read, and every
/// write is accounted for as soon as it returns. Dropping one of its
/// futures at any `.await` therefore never loses or duplicates a byte *as
/// long as the transport's own `read` and `write` are cancel-safe* (they
/// either complete or do nothing; true of embassy-net's `TcpSocket` and of
/// tokio sockets). What a dropped call loses is only its *waiting*: a
/// dropped `subscribe` still subscribes (its SUBACK is handled by the next
/// call and reaches `on_subscribe`), a dropped `publish` either queued its
/// message or did not (see [`Session::inflight_ids`]).
///
/// ```no_run
/// # async fn demo<T: embedded_io_async::Read + embedded_io_async::Write>(socket: T, clock: impl minimqtt::time::Clock) {
/// use minimqtt::{Buffers, Client, Config, QoS};
/// use minimqtt::callbacks::{Callbacks, Context, Message};
///
/// fn on_message(_ctx: &mut Context<'_, '_, u32>, msg: &Message<'_>) {
///     let _ = (msg.topic, msg.payload);
/// }
///
/// let mut buffers = Buffers::<1024, 1024, 1024, 256>::new();
/// let callbacks = Callbacks::new().on_message(on_message);
/// let mut client: Client<'_, _, _, u32> =
///     Client::new(socket, clock, Config::new("sensor-0001"), buffers.slices(), callbacks, 0);
/// client.connect().await.unwrap();
/// client.subscribe("commands/#", QoS::AtLeastOnce).await.unwrap();
/// client.publish("sensors/0001/temp", b"21.5", QoS::AtMostOnce, false).await.unwrap();
/// loop {
///     client.poll(minimqtt::time::Duration::from_secs(1)).await.unwrap();
/// }
/// # }
/// ```
pub struct Client<
    'a,
    T,
    C,
    U,
    const INFLIGHT: usize = 8,
    const SUBS: usize = 8,
    const ROUTES: usize = 8,
> {
    transport: T,
    clock: C,
    config: Config<'a>,
    generated_id: heapless::String<23>,
    session: Session<'a, INFLIGHT, SUBS>,
    reader: PacketReader<'a>,
    outbox: Outbox<'a>,
    callbacks: Callbacks<'a, U, ROUTES>,
    user_data: U,
    /// The request a `subscribe` / `unsubscribe` call waits for, and what
    /// its SUBACK granted.
    awaited: Option<u16>,
    granted: heapless::Vec<SubscribeReturnCode, SUBS>,
    session_present: bool,
    /// The outbox size of a QoS 0 publish from a callback that the session
    /// has queued. It stays in the outbox, where `on_publish` finds its
    /// topic, until written; it is never handed to the session twice.
    handed_over: Option<usize>,
}

impl<T, C, U, const INFLIGHT: usize, const SUBS: usize, const ROUTES: usize> core::fmt::Debug
    for Client<'_, T, C, U, INFLIGHT, SUBS, ROUTES>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.session.state())
            .field("inflight", &self.session.inflight())
            .finish_non_exhaustive()
    }
}

type Res<T, E> = Result<T, Error<E>>;

impl<'a, T, C, U, const INFLIGHT: usize, const SUBS: usize, const ROUTES: usize>
    Client<'a, T, C, U, INFLIGHT, SUBS, ROUTES>
where
    T: Read + Write,
    C: Clock,
{
    /// A disconnected client. Nothing is sent until [`connect`](Self::connect).
    pub fn new(
        transport: T,
        clock: C,
        config: Config<'a>,
        buffers: BufferSlices<'a>,
        callbacks: Callbacks<'a, U, ROUTES>,
        user_data: U,
    ) -> Self {
        let generated_id = match (config.client_id.is_empty(), config.client_id_seed) {
            (true, Some(seed)) => generate_client_id(seed),
            _ => heapless::String::new(),
        };
        Self {
            transport,
            clock,
            session: Session::new(buffers.tx, buffers.store, config.timeouts),
            config,
            generated_id,
            reader: PacketReader::new(buffers.rx),
            outbox: Outbox::new(buffers.outbox),
            callbacks,
            user_data,
            awaited: None,
            granted: heapless::Vec::new(),
            session_present: false,
            handed_over: None,
        }
    }

    /// The client id sent in CONNECT (the generated one, if any).
    pub fn client_id(&self) -> &str {
        if self.config.client_id.is_empty() {
            &self.generated_id
        } else {
            self.config.client_id
        }
    }

    /// Whether CONNACK accepted the connection and nothing has failed since.
    pub fn is_connected(&self) -> bool {
        self.session.state() == State::Connected
    }

    /// The protocol state, for inspection.
    pub fn session(&self) -> &Session<'a, INFLIGHT, SUBS> {
        &self.session
    }

    /// The user data the callbacks share.
    pub fn user_data(&self) -> &U {
        &self.user_data
    }

    /// The user data, mutably.
    pub fn user_data_mut(&mut self) -> &mut U {
        &mut self.user_data
    }

    /// The transport, e.g. to query the socket.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Puts in a new transport (after a lost connection) and returns the
    /// old one. Buffered input of the old connection is dropped; the
    /// session is kept for the next [`connect`](Self::connect). If the old
    /// connection was still up, `on_disconnect` runs with
    /// [`DisconnectReason::ConnectionLost`].
    pub fn replace_transport(&mut self, transport: T) -> T {
        if self.session.state() != State::Disconnected {
            self.drop_connection();
            self.notify_disconnect(DisconnectReason::ConnectionLost);
        }
        self.reader.clear();
        core::mem::replace(&mut self.transport, transport)
    }

    /// Ends the client, giving back the transport and the user data.
    pub fn into_parts(self) -> (T, U) {
        (self.transport, self.user_data)
    }

    /// The callback registry, e.g. to change a callback.
    pub fn callbacks_mut(&mut self) -> &mut Callbacks<'a, U, ROUTES> {
        &mut self.callbacks
    }

    /// Runs `f` for every message whose topic matches `filter` (see the
    /// [dispatch rule](crate::callbacks#dispatch-rule)). Errors when the
    /// registry is full or the filter is invalid.
    pub fn add_topic_callback(
        &mut self,
        filter: &'a str,
        f: MessageCallback<U>,
    ) -> Result<(), RouteError> {
        self.callbacks.add_topic_callback(filter, f)
    }

    /// Removes the callback of `filter`; an error if it has none.
    pub fn remove_topic_callback(&mut self, filter: &str) -> Result<(), RouteError> {
        self.callbacks.remove_topic_callback(filter)
    }

    /// Connects: sends CONNECT and waits for CONNACK (at most the connack
    /// timeout), then runs `on_connect`. Returns the session-present flag.
    ///
    /// With session present 0 and a non-empty subscription list (a
    /// reconnect), the list is re-subscribed; with clean session off,
    /// unacknowledged messages are resent. Messages arriving meanwhile are
    /// dispatched. A refusal is [`Error::Refused`] with the return code (and
    /// `on_disconnect` runs).
    ///
    /// Cancel-safe (see the [module docs](Client#cancel-safety)): a
    /// dropped `connect` leaves the CONNECT sent or queued; call `connect`
    /// again on a fresh transport.
    pub async fn connect(&mut self) -> Res<bool, T::Error> {
        let client_id = if self.config.client_id.is_empty() {
            self.generated_id.as_str()
        } else {
            self.config.client_id
        };
        let connect = crate::codec::Connect {
            clean_session: self.config.clean_session,
            keep_alive: self.config.keep_alive_secs,
            client_id,
            will: self.config.will,
            username: self.config.username,
            password: self.config.password,
        };
        let now = self.clock.now();
        self.session.connect(now, &connect).map_err(Error::widen)?;
        self.reader.clear();
        debug!("connecting as {}", client_id);
        self.drive(None, &|c| c.session.state() != State::Connecting)
            .await?;
        Ok(self.session_present)
    }

    /// Connects through a new transport from `connector`, retrying with
    /// `backoff` until it works: after connector failures, connection
    /// errors and refusals that may pass (server unavailable). A permanent
    /// refusal (see [`ConnectReturnCode::is_permanent`]) returns
    /// [`Error::Refused`] at once; a `backoff` with `max_attempts` that runs
    /// out returns the last error ([`Error::ConnectFailed`] if the connector
    /// failed). `random` feeds the backoff's jitter. Returns the
    /// session-present flag, like [`connect`](Self::connect), which it calls:
    /// subscriptions are restored and unacknowledged messages resent as
    /// described there.
    ///
    /// Cancel-safe: a dropped call leaves the client disconnected or
    /// connected, never half-way; call it again.
    pub async fn reconnect<K>(
        &mut self,
        connector: &mut K,
        backoff: &mut Backoff,
        mut random: impl FnMut() -> u32,
    ) -> Res<bool, T::Error>
    where
        K: Connector<Transport = T>,
    {
        loop {
            let error = match connector.connect().await {
                Ok(transport) => {
                    self.replace_transport(transport);
                    match self.connect().await {
                        Ok(present) => {
                            backoff.reset();
                            return Ok(present);
                        }
                        Err(Error::Refused(code)) if code.is_permanent() => {
                            return Err(Error::Refused(code));
                        }
                        Err(e) if e.is_connection_lost() => e,
                        Err(e) => return Err(e),
                    }
                }
                Err(_) => Error::ConnectFailed,
            };
            let delay = backoff.next_delay(random());
            if backoff.exhausted() {
                return Err(error);
            }
            debug!("reconnecting in {} ms", delay.as_millis());
            let until = self.clock.now() + delay;
            self.clock.sleep_until(until).await;
        }
    }

    /// Sends DISCONNECT and runs `on_disconnect`. The broker then closes the
    /// connection without publishing the will. The session is kept.
    ///
    /// MQTT 3.1.1 (§3.14.4) wants the client to close the network connection
    /// next. `embedded-io-async` has no close, so that is the caller's step:
    /// drop the transport (or take it back with [`into_parts`](Self::into_parts)
    /// or [`replace_transport`](Self::replace_transport)) and close it.
    ///
    /// Cancel-safe; if dropped, DISCONNECT may not have been written.
    pub async fn disconnect(&mut self) -> Res<(), T::Error> {
        self.flush().await?;
        self.session.disconnect().map_err(Error::widen)?;
        // Nothing answers a DISCONNECT, so no session deadline bounds its
        // write: a peer that stopped reading gets the pingresp timeout.
        let limit = self.clock.now() + self.session.timeouts().pingresp;
        let timeout = Error::Timeout(crate::error::AckKind::PingResp);
        let result = loop {
            let now = self.clock.now();
            let pending = self.session.poll_transmit(now);
            if pending.is_empty() {
                break match select(self.transport.flush(), self.clock.sleep_until(limit)).await {
                    Either::First(Ok(())) => Ok(()),
                    Either::First(Err(e)) => Err(Error::Transport(e)),
                    Either::Second(()) => Err(timeout),
                };
            }
            match select(self.transport.write(pending), self.clock.sleep_until(limit)).await {
                Either::First(Ok(0)) => break Err(Error::ConnectionClosed),
                Either::First(Ok(n)) => self.session.handle_transmit(now, n),
                Either::First(Err(e)) => break Err(Error::Transport(e)),
                Either::Second(()) => break Err(timeout),
            }
        };
        self.drop_connection();
        self.notify_disconnect(DisconnectReason::Requested);
        result
    }

    /// Publishes a message. QoS 0 is complete when written (`on_publish`
    /// runs at once); QoS 1 and 2 return their packet id as soon as the
    /// PUBLISH is written, and `on_publish` runs when PUBACK / PUBCOMP
    /// arrives (in a later call). While `INFLIGHT` messages are in flight
    /// this waits, handling incoming packets, until one completes; that wait
    /// is bounded by the puback timeout.
    ///
    /// Not connected: [`Error::NotConnected`] at once; nothing is queued
    /// while offline, so memory stays bounded. If the connection fails
    /// while a QoS 1/2 message is being written, the message is already
    /// in the session: `publish` still returns its id and the message is
    /// resent with DUP after the next `connect` with clean session off
    /// (with clean session on, reconnecting drops it).
    ///
    /// Cancel-safe: once the message is queued it is sent and tracked even
    /// if the future is dropped.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Res<Option<u16>, T::Error> {
        // A window of 0 never opens: `try_publish` reports `InflightFull`.
        if qos != QoS::AtMostOnce && INFLIGHT > 0 && !self.session.can_publish() {
            self.require_connected()?;
            self.drive(None, &|c| c.session.can_publish()).await?;
        }
        self.try_publish(topic, payload, qos, retain).await
    }

    /// Like [`publish`](Self::publish), but returns [`Error::InflightFull`]
    /// instead of waiting when the window is full.
    pub async fn try_publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Res<Option<u16>, T::Error> {
        self.flush().await?;
        let publish = Publish::new(topic, payload, qos, retain);
        let now = self.clock.now();
        let packet_id = self.session.publish(now, &publish).map_err(Error::widen)?;
        if let Err(e) = self.flush_transmit().await {
            // A QoS 1/2 message is in the session now: it is resent after
            // the next `connect` (clean session off), so report its id,
            // not the error, or the caller would publish it twice. The
            // connection error itself has reached `on_disconnect`, and the
            // next call returns `NotConnected`.
            return match packet_id {
                Some(id) => Ok(Some(id)),
                None => Err(e),
            };
        }
        if qos == QoS::AtMostOnce {
            self.notify_published(topic, None);
        }
        Ok(packet_id)
    }

    /// Waits until the outgoing message `packet_id` completes (PUBACK or
    /// PUBCOMP; `on_publish` has run), handling incoming packets.
    pub async fn wait_published(&mut self, packet_id: u16) -> Res<(), T::Error> {
        self.drive(None, &|c| !c.session.publish_pending(packet_id))
            .await?;
        self.require_connected()
    }

    /// Subscribes to one filter; returns what the broker granted
    /// (`on_subscribe` runs too). Waits for SUBACK (at most the suback
    /// timeout), dispatching messages that arrive meanwhile.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: QoS,
    ) -> Res<SubscribeReturnCode, T::Error> {
        let granted = self.subscribe_many(&[Subscription { filter, qos }]).await?;
        Ok(granted
            .first()
            .copied()
            .unwrap_or(SubscribeReturnCode::Failure))
    }

    /// Subscribes to several filters in one SUBSCRIBE; returns the granted
    /// codes in the same order. The filters join the subscription list (for
    /// re-subscribing after a reconnect) unless the broker refuses them.
    ///
    /// Cancel-safe: a dropped call still subscribes; its SUBACK is handled
    /// by a later call.
    pub async fn subscribe_many(
        &mut self,
        filters: &[Subscription<'_>],
    ) -> Res<heapless::Vec<SubscribeReturnCode, SUBS>, T::Error> {
        self.flush().await?;
        let now = self.clock.now();
        let packet_id = self.session.subscribe(now, filters).map_err(Error::widen)?;
        self.awaited = Some(packet_id);
        self.granted.clear();
        self.drive(None, &|c| !c.session.request_pending(packet_id))
            .await?;
        self.awaited = None;
        self.require_connected()?;
        Ok(core::mem::take(&mut self.granted))
    }

    /// Unsubscribes from one filter; waits for UNSUBACK (at most the
    /// unsuback timeout). Returns the packet id; `on_unsubscribe` runs.
    pub async fn unsubscribe(&mut self, filter: &str) -> Res<u16, T::Error> {
        self.unsubscribe_many(&[filter]).await
    }

    /// Unsubscribes from several filters in one UNSUBSCRIBE.
    ///
    /// Cancel-safe like [`subscribe_many`](Self::subscribe_many).
    pub async fn unsubscribe_many(&mut self, filters: &[&str]) -> Res<u16, T::Error> {
        self.flush().await?;
        let now = self.clock.now();
        let packet_id = self
            .session
            .unsubscribe(now, filters)
            .map_err(Error::widen)?;
        self.drive(None, &|c| !c.session.request_pending(packet_id))
            .await?;
        self.require_connected()?;
        Ok(packet_id)
    }

    /// Sends PINGREQ and waits for PINGRESP (at most the pingresp timeout).
    /// Keep-alive pings are automatic; this is for checking the link now.
    pub async fn ping(&mut self) -> Res<(), T::Error> {
        self.flush().await?;
        let now = self.clock.now();
        self.session.ping(now).map_err(Error::widen)?;
        self.drive(None, &|c| !c.session.ping_outstanding()).await?;
        self.require_connected()
    }

    /// MiniMQTT's `loop(timeout)`: handles everything that arrives within
    /// `timeout` (messages go to the callbacks), sends keep-alive pings
    /// when due, and returns what it handled.
    ///
    /// Errors: a connection error (`on_disconnect` has run), or
    /// [`Error::MessageTooLarge`] for a message that did not fit the receive
    /// buffer, after which the connection is still usable.
    ///
    /// Cancel-safe: nothing received is lost if the future is dropped.
    pub async fn poll(&mut self, timeout: Duration) -> Res<Handled, T::Error> {
        self.require_connected()?;
        let deadline = self.clock.now() + timeout;
        self.drive(Some(deadline), &|_| false).await
    }

    fn require_connected(&self) -> Res<(), T::Error> {
        if self.session.state() == State::Connected {
            Ok(())
        } else {
            Err(Error::NotConnected)
        }
    }
}
