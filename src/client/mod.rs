//! The async client: `Client` over the transports a [`Connector`] opens.
//!
//! All protocol decisions are the [`Session`]'s; the client owns the
//! connection's life (it opens every transport, closes it on every fatal
//! condition, and reconnects by policy), moves bytes between the transport
//! and the session, reads the clock, and calls the callbacks.

use embassy_futures::select::{Either, select};
use embedded_io_async::{Read, Write};

use crate::callbacks::{
    Callbacks, Context, DisconnectReason, MessageCallback, Outbox, Request, RouteError,
};
use crate::codec::{Publish, QoS, SubscribeReturnCode, Subscription};
use crate::config::{BufferSlices, Config, generate_client_id};
use crate::error::{BrokerError, Error, ResourceError, SessionError, UsageError};
use crate::fmt::{debug, warning};
use crate::mailbox::Inbox;
use crate::reconnect::{Backoff, Connector};
use crate::session::{AckToken, Event, Outcome, Session, State};
use crate::time::{Clock, Duration, Instant};

mod driver;
mod payload;
mod run;

pub use payload::{FromFn, PayloadSource, payload_from_fn};

/// What a [`Client::poll`] (or [`run_for`](Client::run_for)) handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Handled {
    /// Packets received and handled.
    pub packets: usize,
    /// Application messages delivered to callbacks.
    pub messages: usize,
    /// Incoming messages too large for the receive buffer, skipped (and
    /// reported to `on_message_dropped`).
    pub dropped: usize,
}

/// An MQTT client (3.1.1 and, with the `v5` feature, 5.0). It opens its transports (any
/// `embedded_io_async::Read + Write` byte stream: TCP, TLS, a UART)
/// through the connector `K`, reads the time from the clock `C`, and
/// lends the user data `U` to its callbacks.
///
/// A client starts offline: [`connect`](Self::connect) opens the first
/// transport, and [`run`](Self::run) / [`run_for`](Self::run_for) connect,
/// keep the link alive and reconnect by themselves, with the jittered
/// backoff of [`Config::backoff`]. The old transport is always dropped
/// before a new one is opened, so a connector over a one-slot socket pool
/// (embassy-net's `TcpClient<_, 1>`) works. Every fatal condition (an I/O
/// error, end of stream, a protocol violation by the broker, an
/// acknowledgement or keep-alive timeout) drops the transport at once and
/// runs `on_disconnect` once with the reason.
///
/// Capacities, all const generics with defaults (use
/// [`with_capacity`](Self::with_capacity) and a type annotation to change
/// them):
/// - `INFLIGHT` (8): outgoing QoS 1/2 messages awaiting their handshake;
///   also pending (un)subscribe requests and incoming QoS 2 messages
///   awaiting their PUBCOMP, each counted separately. [`publish`](Self::publish)
///   waits while the window is full; [`try_publish`](Self::try_publish)
///   returns [`ResourceError::InflightFull`](crate::ResourceError::InflightFull) instead. For incoming QoS 2 to stay
///   exactly-once across reconnects, `INFLIGHT` must be at least the
///   number of QoS 2 messages the broker may leave awaiting PUBREL to one
///   client: past it the oldest unreleased id is forgotten, and if the
///   connection then drops, the broker's resends after the reconnect can
///   be delivered again (each one remembered forgets the next oldest).
///   MQTT 3.1.1 sets no limit; mosquitto 2.0.11 was seen with 209
///   outstanding for one subscriber while being restarted repeatedly (its
///   `max_inflight_messages` does not bound them; fixed in 2.0.15).
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
/// tokio sockets), and the connector's `connect` drops a half-open
/// connection cleanly. What a dropped call loses is only its *waiting*: a
/// dropped `subscribe` still subscribes (its SUBACK is handled by the next
/// call and reaches `on_subscribe`), a dropped `publish` either queued its
/// message or did not (see [`Session::inflight_ids`]). The one exception
/// is [`publish_from`](Self::publish_from) once its head is written: see
/// its docs.
///
/// ```no_run
/// # async fn demo<K: minimqtt::reconnect::Connector>(connector: K, clock: impl minimqtt::time::Clock) {
/// use minimqtt::{Buffers, Client, Config, QoS};
/// use minimqtt::callbacks::{Callbacks, Context, Message};
///
/// fn on_message(_ctx: &mut Context<'_, u32>, msg: &Message<'_>) {
///     let _ = (msg.topic, msg.payload);
/// }
///
/// let mut buffers = Buffers::<1024, 2048, 256>::new();
/// let callbacks = Callbacks::new().on_message(on_message);
/// let mut client = Client::new(connector, clock, Config::new("sensor-0001"), buffers.slices(), callbacks, 0);
/// client.subscribe_later("commands/#", QoS::AtLeastOnce).unwrap();
/// loop {
///     // Connects, reconnects, keeps the link alive, runs the callbacks.
///     client.run_for(minimqtt::time::Duration::from_secs(5)).await.unwrap();
///     let _ = client.publish("sensors/0001/temp", b"21.5", QoS::AtMostOnce, false).await;
/// }
/// # }
/// ```
pub struct Client<
    'a,
    K: Connector,
    C,
    U,
    const INFLIGHT: usize = 8,
    const SUBS: usize = 8,
    const ROUTES: usize = 8,
> {
    connector: K,
    /// The open connection, if any: dropped at once when it fails.
    transport: Option<K::Transport>,
    clock: C,
    config: Config<'a>,
    generated_id: ClientId,
    session: Session<'a, INFLIGHT, SUBS>,
    outbox: Outbox<'a>,
    callbacks: Callbacks<'a, U, ROUTES>,
    user_data: U,
    /// The request a `subscribe` / `unsubscribe` call waits for, and what
    /// its SUBACK granted.
    awaited: Option<u16>,
    granted: heapless::Vec<u8, SUBS>,
    /// Reconnection: the backoff state, when the next attempt may start,
    /// and the state of the jitter's random numbers.
    backoff: Backoff,
    retry_at: Option<Instant>,
    random: u64,
    /// When a connection was lost (not closed on request), until a
    /// backoff delay is set for it: found outside `run_for` (by `poll`,
    /// `publish`, ...), the next `run_for` waits the delay from then.
    lost: Option<Instant>,
    /// When the broker accepted the current (or last) connection: one lost
    /// within `Backoff::stable_after` does not reset the backoff.
    connected_at: Option<Instant>,
    /// Requests from other tasks.
    inbox: Option<&'a dyn Inbox>,
}

impl<K: Connector, C, U, const INFLIGHT: usize, const SUBS: usize, const ROUTES: usize>
    core::fmt::Debug for Client<'_, K, C, U, INFLIGHT, SUBS, ROUTES>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client")
            .field("state", &self.session.state())
            .field("transport", &self.transport.is_some())
            .field("inflight", &self.session.inflight())
            .finish_non_exhaustive()
    }
}

type Res<T, E> = Result<T, Error<E>>;
/// The transport error of a connector's streams.
type TransportError<K> = <<K as Connector>::Transport as embedded_io_async::ErrorType>::Error;

impl<'a, K, C, U> Client<'a, K, C, U>
where
    K: Connector,
    C: Clock,
{
    /// An offline client with the default capacities (8 in flight, 8
    /// subscriptions, 8 topic callbacks). Nothing is opened or sent until
    /// [`connect`](Self::connect) or [`run`](Self::run).
    pub fn new(
        connector: K,
        clock: C,
        config: Config<'a>,
        buffers: BufferSlices<'a>,
        callbacks: Callbacks<'a, U, 8>,
        user_data: U,
    ) -> Self {
        Self::with_capacity(connector, clock, config, buffers, callbacks, user_data)
    }
}

impl<'a, K, C, U, const INFLIGHT: usize, const SUBS: usize, const ROUTES: usize>
    Client<'a, K, C, U, INFLIGHT, SUBS, ROUTES>
where
    K: Connector,
    C: Clock,
{
    /// [`new`](Client::new) with the capacities of the client's type:
    ///
    /// ```no_run
    /// # fn demo<K: minimqtt::reconnect::Connector>(connector: K, clock: impl minimqtt::time::Clock) {
    /// # use minimqtt::{Buffers, Callbacks, Client, Config};
    /// # let mut buffers = Buffers::<512, 1024, 64>::new();
    /// let client: Client<'_, _, _, (), 32, 4, 2> = Client::with_capacity(
    ///     connector, clock, Config::new("gateway"), buffers.slices(), Callbacks::new(), (),
    /// );
    /// # }
    /// ```
    pub fn with_capacity(
        connector: K,
        clock: C,
        config: Config<'a>,
        buffers: BufferSlices<'a>,
        callbacks: Callbacks<'a, U, ROUTES>,
        user_data: U,
    ) -> Self {
        let mut generated_id = ClientId::new();
        if let (true, Some(seed)) = (config.client_id.is_empty(), config.seed) {
            let _ = generated_id.push_str(&generate_client_id(seed));
        }
        let mut session = Session::new(buffers.rx, buffers.arena, config.timeouts);
        // Streaming is chosen per route ([`Route`](crate::callbacks::Route)):
        // a message no route streams is skipped at its start.
        session.set_options(crate::session::Options {
            stream: true,
            ..config.options
        });
        // The jitter's seed: the client id differs between devices, so
        // devices that lost the broker together come back apart even
        // without a random seed.
        let random = fnv1a(config.client_id.as_bytes())
            ^ config.seed.unwrap_or(0)
            ^ fnv1a(generated_id.as_bytes())
            // xorshift never leaves 0.
            | 1;
        Self {
            connector,
            transport: None,
            clock,
            session,
            backoff: config.backoff,
            config,
            generated_id,
            outbox: Outbox::new(buffers.outbox),
            callbacks,
            user_data,
            awaited: None,
            granted: heapless::Vec::new(),
            retry_at: None,
            random,
            lost: None,
            connected_at: None,
            inbox: None,
        }
    }

    /// The client id sent in CONNECT (the generated one, if any, or on
    /// MQTT 5 the one the broker assigned).
    pub fn client_id(&self) -> &str {
        run::connect_packet(&self.config, &self.generated_id).client_id
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

    /// The open transport, e.g. to query the socket; `None` while offline.
    pub fn transport_mut(&mut self) -> Option<&mut K::Transport> {
        self.transport.as_mut()
    }

    /// The connector, e.g. to point it at another broker for the next
    /// connection.
    pub fn connector_mut(&mut self) -> &mut K {
        &mut self.connector
    }

    /// Ends the client, giving back the connector and the user data. An
    /// open transport is dropped (without DISCONNECT).
    pub fn into_parts(self) -> (K, U) {
        (self.connector, self.user_data)
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

    /// Takes requests from other tasks out of `mailbox` (a
    /// [`Mailbox`](crate::mailbox::Mailbox), usually a `static`): the
    /// client wakes when one arrives and sends it while connected, as if a
    /// callback had queued it. Replaces any mailbox attached before.
    ///
    /// ```no_run
    /// # async fn demo<K: minimqtt::reconnect::Connector, C: minimqtt::time::Clock>(mut client: minimqtt::Client<'static, K, C, ()>) {
    /// use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
    /// use minimqtt::mailbox::Mailbox;
    /// use minimqtt::QoS;
    ///
    /// static MAILBOX: Mailbox<CriticalSectionRawMutex, 512> = Mailbox::new();
    ///
    /// client.attach(&MAILBOX);
    /// // Any other task, any time:
    /// let _ = MAILBOX.try_publish("alarm", b"door open", QoS::AtLeastOnce, false);
    /// // The client's task:
    /// let _ = client.run().await;
    /// # }
    /// ```
    ///
    /// From then on, the mailbox refuses a request larger than this
    /// client's outbox (the `OUTBOX` of [`Buffers`](crate::Buffers)) with
    /// [`MailboxFull`](crate::mailbox::MailboxFull): the client could never
    /// take it. One queued before, too large, is dropped when its turn
    /// comes, with a warning.
    pub fn attach(&mut self, mailbox: &'a dyn Inbox) {
        mailbox.set_limit(self.outbox.capacity());
        self.inbox = Some(mailbox);
    }

    /// Drops the connection without DISCONNECT, as a lost link would: the
    /// broker publishes the will. Runs `on_disconnect`
    /// ([`DisconnectReason::Requested`]) if a connection was open. The
    /// session is kept.
    pub fn abort(&mut self) {
        self.drop_connection(DisconnectReason::Requested);
    }

    /// Sends DISCONNECT, closes the transport and runs `on_disconnect`. The
    /// broker then discards the will. The session is kept.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe; if dropped, DISCONNECT may not have been written and
    /// the transport is still open (the next call closes it).
    pub async fn disconnect(&mut self) -> Res<(), TransportError<K>> {
        self.end(|session| session.disconnect()).await
    }

    /// MQTT 5: [`disconnect`](Self::disconnect) with a reason code and
    /// properties. Reason 0x04 (Disconnect with Will Message) has the
    /// broker publish the will; a Session Expiry Interval replaces the
    /// CONNECT's, and 0 ends the session with this connection.
    ///
    /// ```no_run
    /// # async fn demo<K: minimqtt::reconnect::Connector, C: minimqtt::time::Clock>(client: &mut minimqtt::Client<'_, K, C, ()>) -> Result<(), minimqtt::Error<<K::Transport as embedded_io_async::ErrorType>::Error>> {
    /// use minimqtt::codec::v5::{Disconnect, ReasonCode};
    ///
    /// // Going away for good: the broker publishes the will.
    /// let goodbye = Disconnect {
    ///     reason_code: ReasonCode::DisconnectWithWillMessage,
    ///     ..Disconnect::new()
    /// };
    /// client.disconnect_with(&goodbye).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Refused, with the connection left up, as
    /// [`Session::disconnect_v5`] says: on MQTT 3.1.1, a reason code only
    /// a server sends, a Server Reference, a non-zero Session Expiry
    /// Interval when the session ends with its connection
    /// (MQTT-3.14.2-2), or over the broker's Maximum Packet Size.
    ///
    /// # Cancel safety
    ///
    /// As [`disconnect`](Self::disconnect).
    #[cfg(feature = "v5")]
    pub async fn disconnect_with(
        &mut self,
        disconnect: &crate::codec::v5::Disconnect<'_>,
    ) -> Res<(), TransportError<K>> {
        // Checked first: refused, the connection stays up (a DISCONNECT
        // that fails once the queue is written would end it without one).
        if self.session.state() != State::Disconnected {
            self.session.check_disconnect_v5(disconnect)?;
        }
        self.end(|session| session.disconnect_v5(disconnect)).await
    }

    /// Ends the connection: the DISCONNECT `queue` puts in the session,
    /// then the transport is closed.
    async fn end(
        &mut self,
        queue: impl FnOnce(&mut Session<'_, INFLIGHT, SUBS>) -> Result<(), SessionError>,
    ) -> Res<(), TransportError<K>> {
        if self.transport.is_none() {
            return Err(Error::Usage(UsageError::NotConnected));
        }
        if self.session.state() == State::Connecting && !self.session.transmit_idle() {
            // A CONNECT (or AUTH) not yet all written: no broker session
            // exists to say goodbye to, nor a will to keep back.
            self.abort();
            return Ok(());
        }
        let result = self.say_goodbye(queue).await;
        // MQTT-3.14.4-1: the client closes the network connection after
        // DISCONNECT, whether or not it could be written.
        self.drop_connection(DisconnectReason::Requested);
        result
    }

    /// Publishes a message. QoS 0 is complete when written (`on_publish`
    /// runs at once); QoS 1 and 2 return their packet id as soon as the
    /// PUBLISH is written, and `on_publish` runs when PUBACK / PUBCOMP
    /// arrives (in a later call). While `INFLIGHT` messages are in flight
    /// this waits, handling incoming packets, until one completes; that wait
    /// is bounded by the puback timeout.
    ///
    /// Not connected: [`UsageError::NotConnected`](crate::UsageError::NotConnected) at once; nothing is queued
    /// while offline, so memory stays bounded. If the connection fails
    /// while a QoS 1/2 message is being written, the message is already
    /// in the session: `publish` still returns its id and the message is
    /// resent with DUP after the next connect with clean session off
    /// (with clean session on, reconnecting discards it and
    /// `on_publish_discarded` runs).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: once the message is queued it is sent and tracked even
    /// if the future is dropped.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Res<Option<u16>, TransportError<K>> {
        // A window of 0 never opens: `try_publish` reports `InflightFull`.
        if qos != QoS::AtMostOnce && INFLIGHT > 0 && !self.session.can_publish() {
            self.require_connected()?;
            self.drive(None, &|c| c.session.can_publish()).await?;
        }
        self.try_publish(topic, payload, qos, retain).await
    }

    /// Like [`publish`](Self::publish), but returns [`ResourceError::InflightFull`](crate::ResourceError::InflightFull)
    /// instead of waiting when the window is full.
    ///
    /// # Cancel safety
    ///
    /// As [`publish`](Self::publish).
    pub async fn try_publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Res<Option<u16>, TransportError<K>> {
        self.publish_now(topic, payload, qos, retain, None).await
    }

    /// MQTT 5: [`publish`](Self::publish) with properties (Message Expiry
    /// Interval, Payload Format Indicator, Content Type, Response Topic,
    /// Correlation Data, User Properties). The broker's PUBACK / PUBREC
    /// reason code reaches `on_publish` ([`Context::reason_code`](crate::callbacks::Context::reason_code)).
    ///
    /// Errors as `publish`, and [`UsageError::Unsupported`] on an MQTT
    /// 3.1.1 connection or for what the broker's CONNACK does not allow
    /// (QoS above its maximum, retain unavailable), and
    /// [`ResourceError::PacketTooLarge`](crate::ResourceError::PacketTooLarge)
    /// over its Maximum Packet Size. A payload marked UTF-8 (Payload Format
    /// Indicator 1) that is not is refused with
    /// [`EncodeError::PayloadFormat`](crate::codec::EncodeError::PayloadFormat).
    ///
    /// # Cancel safety
    ///
    /// As [`publish`](Self::publish).
    #[cfg(feature = "v5")]
    pub async fn publish_with(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: &crate::codec::v5::Properties<'_>,
    ) -> Res<Option<u16>, TransportError<K>> {
        if qos != QoS::AtMostOnce && INFLIGHT > 0 && !self.session.can_publish() {
            self.require_connected()?;
            self.drive(None, &|c| c.session.can_publish()).await?;
        }
        self.publish_now(topic, payload, qos, retain, Some(properties))
            .await
    }

    async fn publish_now(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: Option<&Props<'_>>,
    ) -> Res<Option<u16>, TransportError<K>> {
        self.require_connected()?;
        self.flush(None).await?;
        let publish = Publish::new(topic, payload, qos, retain);
        let now = self.clock.now();
        let packet_id = match properties {
            #[cfg(feature = "v5")]
            Some(props) => self.session.publish_with(now, &publish, props)?,
            _ => self.session.publish(now, &publish)?,
        };
        if let Err(e) = self.flush_transmit(Some(now), None).await {
            // A QoS 1/2 message is in the session now: it is resent after
            // the next connect (clean session off), so report its id, not
            // the error, or the caller would publish it twice. The
            // connection error itself has reached `on_disconnect`, and the
            // next call returns `NotConnected`.
            return match packet_id {
                Some(id) => Ok(Some(id)),
                None => Err(e),
            };
        }
        self.report_sent();
        Ok(packet_id)
    }

    /// Waits until the outgoing message `packet_id` completes (PUBACK or
    /// PUBCOMP; `on_publish` has run), handling incoming packets.
    ///
    /// [`Error::Discarded`] if a clean-session connect discarded it. An id
    /// that ended before the last `INFLIGHT` messages that ended since
    /// cannot be told apart any more, and returns `Ok`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: only the waiting is lost.
    pub async fn wait_published(&mut self, packet_id: u16) -> Res<(), TransportError<K>> {
        if self.session.publish_outcome(packet_id) == Outcome::Pending {
            self.require_connected()?;
        }
        self.drive(None, &|c| !c.session.publish_pending(packet_id))
            .await?;
        match self.session.publish_outcome(packet_id) {
            Outcome::Completed | Outcome::Unknown => Ok(()),
            Outcome::Discarded => Err(Error::Discarded),
            Outcome::Pending => Err(Error::Usage(UsageError::NotConnected)),
        }
    }

    /// Redeems a token from [`Context::defer_ack`](crate::callbacks::Context::defer_ack):
    /// the message's PUBACK / PUBREC (and those queued behind it) goes out
    /// with the next client call that writes ([`poll`](Self::poll),
    /// [`run`](Self::run), ...). Other tasks use
    /// [`Mailbox::try_ack`](crate::mailbox::Mailbox::try_ack).
    ///
    /// Errors: [`UsageError::StaleAck`] if the token's connection is gone;
    /// nothing is sent, and the broker resends the message.
    pub fn ack(&mut self, token: AckToken) -> Res<(), TransportError<K>> {
        self.session.ack(token)?;
        Ok(())
    }

    /// Subscribes to one filter; returns what the broker granted
    /// (`on_subscribe` runs too). Waits for SUBACK (at most the suback
    /// timeout), dispatching messages that arrive meanwhile.
    ///
    /// # Cancel safety
    ///
    /// As [`subscribe_many`](Self::subscribe_many).
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: QoS,
    ) -> Res<SubscribeReturnCode, TransportError<K>> {
        let granted = self.subscribe_many(&[Subscription { filter, qos }]).await?;
        Ok(granted
            .first()
            .copied()
            .unwrap_or(SubscribeReturnCode::Failure))
    }

    /// MQTT 5: starts a re-authentication (AUTH, reason Re-authenticate)
    /// with this Authentication Data and the CONNECT's Authentication
    /// Method, and writes it. The broker's answers reach `on_auth`: more
    /// steps (answer with [`Context::auth`](crate::callbacks::Context::auth)),
    /// then an AUTH of reason Success; a broker that refuses ends the
    /// connection with DISCONNECT. Each AUTH of ours must be answered
    /// within `Config::timeouts.connack`, or the connection ends with
    /// [`Error::Timeout`]`(`[`AckKind::Auth`](crate::AckKind::Auth)`)`.
    ///
    /// Errors: [`UsageError::Unsupported`] when the CONNECT named no
    /// Authentication Method (or the connection is MQTT 3.1.1),
    /// [`UsageError::NotConnected`].
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: once queued, the AUTH is written by the next call.
    #[cfg(feature = "v5")]
    pub async fn reauthenticate(&mut self, data: &[u8]) -> Res<(), TransportError<K>> {
        self.require_connected()?;
        self.flush(None).await?;
        let reason = crate::codec::v5::ReasonCode::ReAuthenticate;
        let now = self.clock.now();
        driver::auth_with(&self.config, &mut self.session, now, reason, data)?;
        self.flush_transmit(None, None).await
    }

    /// MQTT 5: subscribes to one filter with subscription options (No
    /// Local, Retain As Published, Retain Handling) and optionally a
    /// Subscription Identifier (the broker marks the messages it matches
    /// with it: `Message::properties.subscription_identifiers()`); returns the SUBACK's
    /// reason code (granted QoS below 0x80, a failure such as 0x87 "not
    /// authorized" or 0xA2 "wildcard subscriptions not supported" above).
    /// The options are kept and sent again when the client re-subscribes
    /// after a reconnect.
    ///
    /// # Cancel safety
    ///
    /// As [`subscribe_many`](Self::subscribe_many).
    #[cfg(feature = "v5")]
    pub async fn subscribe_with(
        &mut self,
        filter: &str,
        options: crate::codec::v5::SubscriptionOptions,
        subscription_id: Option<u32>,
    ) -> Res<crate::codec::v5::ReasonCode, TransportError<K>> {
        use crate::codec::v5::{ReasonCode, Subscription};
        self.require_connected()?;
        self.flush(None).await?;
        let now = self.clock.now();
        let subscription = [Subscription { filter, options }];
        let packet_id = self
            .session
            .subscribe_v5(now, &subscription, subscription_id)?;
        self.wait_suback(packet_id).await?;
        let code = self.granted.first().and_then(|&b| ReasonCode::from_u8(b));
        Ok(code.unwrap_or(ReasonCode::UnspecifiedError))
    }

    /// Subscribes to several filters in one SUBSCRIBE; returns the granted
    /// codes in the same order. The filters join the subscription list (for
    /// re-subscribing after a reconnect) unless the broker refuses them.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a dropped call still subscribes; its SUBACK is handled
    /// by a later call.
    pub async fn subscribe_many(
        &mut self,
        filters: &[Subscription<'_>],
    ) -> Res<heapless::Vec<SubscribeReturnCode, SUBS>, TransportError<K>> {
        // One code per filter comes back, in a list of `SUBS`.
        if filters.len() > SUBS {
            return Err(Error::Resource(ResourceError::SubscriptionsFull));
        }
        self.require_connected()?;
        self.flush(None).await?;
        let now = self.clock.now();
        let packet_id = self.session.subscribe(now, filters)?;
        self.wait_suback(packet_id).await?;
        Ok(self
            .granted
            .iter()
            .map(|&b| SubscribeReturnCode::from_u8(b).unwrap_or(SubscribeReturnCode::Failure))
            .collect())
    }

    /// Waits for the SUBACK of `packet_id`; its codes land in `granted`.
    async fn wait_suback(&mut self, packet_id: u16) -> Res<(), TransportError<K>> {
        self.awaited = Some(packet_id);
        self.granted.clear();
        self.drive(None, &|c| !c.session.request_pending(packet_id))
            .await?;
        self.awaited = None;
        self.require_connected()
    }

    /// Queues a subscription without waiting for it: sent as soon as the
    /// client is connected (by the next [`run`](Self::run), `poll` or other
    /// call), and re-sent after every reconnect like any other. Its SUBACK
    /// reaches `on_subscribe`. Several may be in flight at once.
    ///
    /// [`OutboxFull`](crate::callbacks::OutboxFull) if the outbox has no
    /// room; nothing was queued then.
    pub fn subscribe_later(
        &mut self,
        filter: &str,
        qos: QoS,
    ) -> Result<(), crate::callbacks::OutboxFull> {
        self.outbox.push(Request::Subscribe { filter, qos })
    }

    /// Unsubscribes from one filter; waits for UNSUBACK (at most the
    /// unsuback timeout). Returns the packet id; `on_unsubscribe` runs.
    ///
    /// # Cancel safety
    ///
    /// As [`unsubscribe_many`](Self::unsubscribe_many).
    pub async fn unsubscribe(&mut self, filter: &str) -> Res<u16, TransportError<K>> {
        self.unsubscribe_many(&[filter]).await
    }

    /// Unsubscribes from several filters in one UNSUBSCRIBE.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe like [`subscribe_many`](Self::subscribe_many).
    pub async fn unsubscribe_many(&mut self, filters: &[&str]) -> Res<u16, TransportError<K>> {
        self.require_connected()?;
        self.flush(None).await?;
        let now = self.clock.now();
        let packet_id = self.session.unsubscribe(now, filters)?;
        self.drive(None, &|c| !c.session.request_pending(packet_id))
            .await?;
        self.require_connected()?;
        Ok(packet_id)
    }

    /// Sends PINGREQ and waits for PINGRESP (at most the pingresp timeout),
    /// or for bytes of a long message, which prove the broker alive as
    /// well (its PINGRESP queues behind them). Keep-alive pings are
    /// automatic; this is for checking the link now.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: the PINGRESP is handled by a later call.
    pub async fn ping(&mut self) -> Res<(), TransportError<K>> {
        self.require_connected()?;
        self.flush(None).await?;
        let now = self.clock.now();
        self.session.ping(now)?;
        self.drive(None, &|c| !c.session.ping_outstanding()).await?;
        self.require_connected()
    }

    /// MiniMQTT's `loop(timeout)` on a connected client: handles everything
    /// that arrives within `timeout` (messages go to the callbacks), sends
    /// keep-alive pings when due, and returns what it handled. It does not
    /// reconnect; [`run_for`](Self::run_for) does. A write the broker
    /// does not take by `timeout` is left for the next call to finish, as
    /// [`run_for`](Self::run_for)'s is. A `timeout` of zero takes one look
    /// at what has arrived, without waiting.
    ///
    /// Errors: [`UsageError::NotConnected`](crate::UsageError::NotConnected), or the connection error that ended
    /// the connection (the transport is closed and `on_disconnect` has run).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: nothing received is lost if the future is dropped.
    pub async fn poll(&mut self, timeout: Duration) -> Res<Handled, TransportError<K>> {
        self.require_connected()?;
        let deadline = self.clock.now() + timeout;
        self.drive(Some(deadline), &|_| false).await
    }

    /// `NotConnected` unless connected: checked before a call flushes,
    /// since with a CONNECT left half written by `run_for` the flush would
    /// wait for its CONNACK.
    fn require_connected(&self) -> Res<(), TransportError<K>> {
        if self.session.state() == State::Connected {
            Ok(())
        } else {
            Err(Error::Usage(UsageError::NotConnected))
        }
    }
}

/// FNV-1a: a cheap hash to seed the jitter from the client id.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The properties of an outgoing PUBLISH: nothing without MQTT 5.
#[cfg(feature = "v5")]
type Props<'a> = crate::codec::v5::Properties<'a>;
/// The properties of an outgoing PUBLISH: nothing without MQTT 5.
#[cfg(not(feature = "v5"))]
type Props<'a> = core::marker::PhantomData<&'a ()>;

/// The client id the client makes up (from `Config::seed`) or, on MQTT 5,
/// the one the broker assigned: up to 64 bytes then (mosquitto's are 41).
#[cfg(feature = "v5")]
type ClientId = heapless::String<64>;
/// The client id the client makes up (from `Config::seed`).
#[cfg(not(feature = "v5"))]
type ClientId = heapless::String<23>;
