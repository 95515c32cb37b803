//! MiniMQTT's callbacks: `on_connect`, `on_disconnect`, `on_subscribe`,
//! `on_unsubscribe`, `on_publish`, `on_message`, and per-topic callbacks.
//!
//! Callbacks are plain function pointers: no allocation, no `dyn`, no
//! lifetimes to fight. State lives in the *user data* (MiniMQTT's
//! `user_data`), a value of any type `U` the client owns and lends to every
//! callback through its [`Context`], which can also publish, subscribe and
//! unsubscribe: those requests go to a bounded [`Outbox`] that the client
//! sends after the callback returns, so a callback never re-enters the client.
//!
//! # Dispatch rule
//!
//! For each incoming message every per-topic callback whose filter matches
//! the topic runs, in the order they were added; `on_message` runs only
//! when none matched.
//!
//! ```
//! use minimqtt::callbacks::{Callbacks, Context, Message};
//!
//! struct App { temperature: Option<f32>, messages: u32 }
//!
//! fn temperature(ctx: &mut Context<'_, App>, msg: &Message<'_>) {
//!     let text = core::str::from_utf8(msg.payload).unwrap_or("");
//!     ctx.user_data.temperature = text.parse().ok();
//! }
//!
//! fn anything_else(ctx: &mut Context<'_, App>, _msg: &Message<'_>) {
//!     ctx.user_data.messages += 1;
//! }
//!
//! let mut callbacks: Callbacks<'_, App> = Callbacks::new().on_message(anything_else);
//! callbacks.add_topic_callback("sensors/+/temperature", temperature).unwrap();
//! ```

pub(crate) mod outbox;

#[cfg(feature = "v5")]
pub use crate::session::Reason;
pub use crate::session::{AckToken, Connected, Dropped, Message, Part, Stream};
pub use outbox::{Outbox, OutboxFull, Request};

use crate::codec::{ConnectReturnCode, QoS, SubscribeReturnCode};
use crate::error::{ResourceError, SessionError, UsageError};
use crate::session::Closed;
use crate::session::acks::AckState;
use crate::topic;

/// Why the connection ended, for `on_disconnect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DisconnectReason {
    /// [`Client::disconnect`](crate::Client::disconnect) or
    /// [`Client::abort`](crate::Client::abort) was called.
    Requested,
    /// A streamed payload's source ran dry mid-packet: the client closed
    /// the connection, as the packet could not be finished
    /// ([`Error::PayloadShort`](crate::Error::PayloadShort)).
    PayloadShort,
    /// The transport failed or the broker closed it.
    ConnectionLost,
    /// An acknowledgement (or PINGRESP) did not arrive in time.
    Timeout,
    /// The broker broke the protocol.
    ProtocolError,
    /// The broker refused the connection.
    Refused(ConnectReturnCode),
    /// MQTT 5: the broker refused the connection with this CONNACK
    /// reason code.
    #[cfg(feature = "v5")]
    RefusedV5(crate::codec::v5::ReasonCode),
    /// MQTT 5: the broker sent DISCONNECT with this reason code.
    #[cfg(feature = "v5")]
    ServerDisconnect(crate::codec::v5::ReasonCode),
}

impl From<Closed> for DisconnectReason {
    fn from(reason: Closed) -> Self {
        match reason {
            Closed::Timeout(_) => Self::Timeout,
            Closed::Malformed(_) | Closed::Protocol(_) => Self::ProtocolError,
            Closed::Refused(code) => Self::Refused(code),
            #[cfg(feature = "v5")]
            Closed::RefusedV5(code) => Self::RefusedV5(code),
            #[cfg(feature = "v5")]
            Closed::ServerDisconnect(code) => Self::ServerDisconnect(code),
            #[cfg(feature = "v5")]
            Closed::Violation(_) => Self::ProtocolError,
        }
    }
}

/// What a callback gets: the user data, and a way to queue requests.
pub struct Context<'c, U> {
    /// The client's user data (MiniMQTT's `user_data`).
    pub user_data: &'c mut U,
    outbox: &'c mut [u8],
    queued: &'c mut usize,
    defer: Defer,
    #[cfg(feature = "v5")]
    reason: Option<Reason<'c>>,
}

/// Whether the message being delivered may have its acknowledgement
/// deferred, and whether a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Defer {
    /// Not a QoS 1/2 message (or not a message at all).
    No,
    /// Deferred ones already fill the session's queue.
    Full,
    /// It may: this is the token the session will hand out.
    May {
        packet_id: u16,
        qos: QoS,
        connection: u32,
    },
    /// A callback took the token.
    Taken,
}

impl Defer {
    /// What a message of this QoS and packet id may be offered, given the
    /// session's deferral state read before its event.
    pub(crate) fn offer(state: AckState, qos: QoS, packet_id: Option<u16>) -> Self {
        match (qos, packet_id) {
            (QoS::AtMostOnce, _) | (_, None) => Self::No,
            _ if !state.room => Self::Full,
            (qos, Some(packet_id)) => Self::May {
                packet_id,
                qos,
                connection: state.connection,
            },
        }
    }
}

impl<'c, U> Context<'c, U> {
    /// A context over `user_data` and `outbox`: for drivers and tests that
    /// call callbacks themselves.
    pub fn new(user_data: &'c mut U, outbox: &'c mut Outbox<'_>) -> Self {
        let (outbox, queued) = outbox.borrow();
        Self {
            user_data,
            outbox,
            queued,
            defer: Defer::No,
            #[cfg(feature = "v5")]
            reason: None,
        }
    }

    /// The MQTT 5 acknowledgement the next callback reports.
    #[cfg(feature = "v5")]
    pub(crate) fn set_reason(&mut self, reason: Reason<'c>) {
        self.reason = Some(reason);
    }

    /// MQTT 5: the reason code of the acknowledgement `on_publish`,
    /// `on_subscribe` (for its filter) or `on_unsubscribe` (for its
    /// filter) reports, or of the broker's DISCONNECT in `on_disconnect`. Below 0x80 success (e.g. 0x10 "no matching
    /// subscribers" on a PUBACK), 0x80 and above failure (e.g. 0x87 "not
    /// authorized"). `None` on MQTT 3.1.1 and in other callbacks.
    ///
    /// ```
    /// use minimqtt::callbacks::Context;
    ///
    /// fn on_publish(ctx: &mut Context<'_, u32>, _topic: &str, _id: Option<u16>) {
    ///     if ctx.reason_code().is_some_and(|code| code.is_error()) {
    ///         *ctx.user_data += 1; // refused by the broker
    ///     }
    /// }
    /// ```
    #[cfg(feature = "v5")]
    pub fn reason_code(&self) -> Option<crate::codec::v5::ReasonCode> {
        self.reason.map(|r| r.code)
    }

    /// MQTT 5: the properties of that acknowledgement or DISCONNECT
    /// (Reason String, User Properties, a DISCONNECT's Server Reference);
    /// empty otherwise.
    #[cfg(feature = "v5")]
    pub fn properties(&self) -> crate::codec::v5::Properties<'c> {
        self.reason.map(|r| r.properties).unwrap_or_default()
    }

    /// A context whose callback may defer the message's acknowledgement.
    pub(crate) fn with_defer(mut self, defer: Defer) -> Self {
        self.defer = defer;
        self
    }

    /// Whether a callback deferred the acknowledgement.
    pub(crate) fn deferred(&self) -> bool {
        self.defer == Defer::Taken
    }

    /// Defers the acknowledgement of the message being delivered (QoS 1/2;
    /// in a message callback, or a stream callback at [`Part::End`]) until
    /// the returned token is redeemed with [`ack`](Self::ack),
    /// [`Client::ack`](crate::Client::ack) or
    /// [`Mailbox::try_ack`](crate::mailbox::Mailbox::try_ack): after the
    /// application has stored or processed it. Acknowledgements of later
    /// messages wait behind it, in order (MQTT-4.6.0-2/3); at most
    /// `INFLIGHT` can be deferred at once, and while that many are, no
    /// further QoS 1/2 message is delivered.
    ///
    /// Errors: [`UsageError::NothingToDefer`] for QoS 0, outside a message
    /// callback, or when another callback of the same message took the
    /// token; [`ResourceError::AcksFull`] when `INFLIGHT` are deferred.
    /// Either way the acknowledgement goes out as usual.
    ///
    /// ```
    /// use minimqtt::callbacks::{AckToken, Context, Message};
    ///
    /// struct App { pending: Option<AckToken> }
    ///
    /// fn store_then_ack(ctx: &mut Context<'_, App>, _msg: &Message<'_>) {
    ///     // Hand the payload to the storage task; it redeems the token.
    ///     ctx.user_data.pending = ctx.defer_ack().ok();
    /// }
    /// ```
    pub fn defer_ack(&mut self) -> Result<AckToken, SessionError> {
        match self.defer {
            Defer::May {
                packet_id,
                qos,
                connection,
            } => {
                self.defer = Defer::Taken;
                Ok(AckToken {
                    packet_id,
                    qos,
                    connection,
                })
            }
            Defer::Full => Err(SessionError::Resource(ResourceError::AcksFull)),
            Defer::No | Defer::Taken => Err(SessionError::Usage(UsageError::NothingToDefer)),
        }
    }

    /// Redeems a deferred acknowledgement's token: its PUBACK / PUBREC is
    /// sent after the callback returns.
    pub fn ack(&mut self, token: AckToken) -> Result<(), OutboxFull> {
        self.push(Request::Ack(token))
    }

    fn push(&mut self, request: Request<'_>) -> Result<(), OutboxFull> {
        outbox::push(self.outbox, self.queued, request)
    }

    /// Queues a publish, sent after the callback returns. Topic validity is
    /// checked then; an invalid topic is reported by the client call that
    /// flushes the outbox.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<(), OutboxFull> {
        self.push(Request::Publish {
            topic,
            payload,
            qos,
            retain,
            #[cfg(feature = "v5")]
            properties: crate::codec::v5::Properties::EMPTY,
        })
    }

    /// MQTT 5 enhanced authentication: answers the broker's AUTH (in
    /// `on_auth`) with this Authentication Data; the client adds the
    /// CONNECT's Authentication Method.
    #[cfg(feature = "v5")]
    pub fn auth(&mut self, data: &[u8]) -> Result<(), OutboxFull> {
        self.push(Request::Auth { data })
    }

    /// MQTT 5: [`publish`](Self::publish) with properties, e.g. the
    /// answer to a request, to its Response Topic with its Correlation
    /// Data. The properties are checked now; [`OutboxFull`] also when
    /// they are invalid for a PUBLISH. On an MQTT 3.1.1 connection the
    /// client refuses the request when it sends it (and logs it).
    ///
    /// ```
    /// use minimqtt::callbacks::{Context, Message};
    /// use minimqtt::codec::QoS;
    /// use minimqtt::codec::v5::{Properties, Property};
    ///
    /// fn respond(ctx: &mut Context<'_, ()>, request: &Message<'_>) {
    ///     let props = &request.properties;
    ///     if let Some(reply_to) = props.response_topic() {
    ///         let mut answer = [Property::CorrelationData(b""); 1];
    ///         let data = props.correlation_data();
    ///         let answer = match data {
    ///             Some(data) => {
    ///                 answer[0] = Property::CorrelationData(data);
    ///                 &answer[..]
    ///             }
    ///             None => &[][..],
    ///         };
    ///         let _ = ctx.publish_with(reply_to, b"pong", QoS::AtMostOnce, false, &Properties::new(answer));
    ///     }
    /// }
    /// ```
    #[cfg(feature = "v5")]
    pub fn publish_with(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        properties: &crate::codec::v5::Properties<'_>,
    ) -> Result<(), OutboxFull> {
        self.push(Request::Publish {
            topic,
            payload,
            qos,
            retain,
            properties: *properties,
        })
    }

    /// Queues a subscription, sent after the callback returns; its result
    /// reaches `on_subscribe`.
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), OutboxFull> {
        self.push(Request::Subscribe { filter, qos })
    }

    /// Queues an unsubscription, sent after the callback returns; its
    /// result reaches `on_unsubscribe`.
    pub fn unsubscribe(&mut self, filter: &str) -> Result<(), OutboxFull> {
        self.push(Request::Unsubscribe { filter })
    }
}

/// `on_connect(context, what the CONNACK said)`.
pub type ConnectCallback<U> = fn(&mut Context<'_, U>, Connected<'_>);
/// `on_disconnect(context, reason)`.
pub type DisconnectCallback<U> = fn(&mut Context<'_, U>, DisconnectReason);
/// `on_subscribe(context, filter, granted QoS or failure, packet id)`.
pub type SubscribeCallback<U> = fn(&mut Context<'_, U>, &str, SubscribeReturnCode, u16);
/// `on_unsubscribe(context, filter, packet id)`.
pub type UnsubscribeCallback<U> = fn(&mut Context<'_, U>, &str, u16);
/// `on_publish(context, topic, packet id)`: the message is complete
/// (written for QoS 0, which has no packet id; PUBACK for 1; PUBCOMP for 2).
pub type PublishCallback<U> = fn(&mut Context<'_, U>, &str, Option<u16>);
/// MQTT 5 `on_auth(context, the broker's AUTH)`: a step of the enhanced
/// authentication the CONNECT's Authentication Method started (reason
/// Continue Authentication: answer with
/// [`Context::auth`]), or the success of a re-authentication.
#[cfg(feature = "v5")]
pub type AuthCallback<U> = fn(&mut Context<'_, U>, &crate::codec::v5::Auth<'_>);
/// `on_message(context, message)` and per-topic callbacks.
pub type MessageCallback<U> = fn(&mut Context<'_, U>, &Message<'_>);
/// A streaming topic callback: `(context, one part of a message)`. It sees
/// [`Part::Start`], the [`Part::Chunk`]s in order, then [`Part::End`] (or
/// [`Part::Aborted`] if the connection ends first).
pub type StreamCallback<U> = fn(&mut Context<'_, U>, &Stream<'_>);

/// `on_resend_payload(user data, which payload, buffer) -> bytes copied`:
/// a streamed QoS 1/2 message ([`Client::publish_from`](crate::Client::publish_from))
/// is resent after a reconnect, and its payload is needed again. Copy the
/// bytes from `request.offset` on into the buffer (as many as fit) and
/// return how many; they must be the bytes first sent. Return 0 if the
/// payload is gone: the message is then discarded and the connection
/// ends.
pub type ResendCallback<U> = fn(&mut U, &PayloadRequest<'_>, &mut [u8]) -> usize;

/// Which payload [`ResendCallback`] must supply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PayloadRequest<'a> {
    /// The message's topic.
    pub topic: &'a str,
    /// Its packet id.
    pub packet_id: u16,
    /// Where the bytes asked for start in the payload.
    pub offset: usize,
    /// The payload's whole length.
    pub len: usize,
}

/// How a per-topic callback takes its messages.
///
/// A message *fits* when the whole PUBLISH fits in the receive buffer;
/// one that does not can be *streamed* when its header (topic, packet id)
/// fits with room to spare: its payload passes through the buffer in
/// chunks as it arrives. A message that does not fit and that no matching
/// route streams is skipped, acknowledged and reported to
/// `on_message_dropped`.
pub enum Route<U> {
    /// Whole messages only: those that fit.
    Whole(MessageCallback<U>),
    /// Every message as a stream: one that fits comes as
    /// [`Part::Start`], one [`Part::Chunk`] (none for an empty payload),
    /// [`Part::End`].
    Stream(StreamCallback<U>),
    /// Whole messages to the first callback when they fit, streams to the
    /// second when they do not.
    WholeOrStream(MessageCallback<U>, StreamCallback<U>),
}

impl<U> Clone for Route<U> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<U> Copy for Route<U> {}

impl<U> Route<U> {
    fn whole(&self) -> Option<MessageCallback<U>> {
        match *self {
            Self::Whole(f) | Self::WholeOrStream(f, _) => Some(f),
            Self::Stream(_) => None,
        }
    }

    fn stream(&self) -> Option<StreamCallback<U>> {
        match *self {
            Self::Stream(s) | Self::WholeOrStream(_, s) => Some(s),
            Self::Whole(_) => None,
        }
    }
}
/// `on_message_dropped(context, what was dropped)`: an incoming message
/// too large for the receive buffer was skipped (and acknowledged, at QoS
/// 1/2).
pub type DroppedCallback<U> = fn(&mut Context<'_, U>, &Dropped<'_>);
/// `on_publish_discarded(context, topic, packet id)`: an outgoing QoS 1/2
/// message will never complete; a clean-session connect discarded it (or,
/// MQTT 5, the broker's new limits forbid resending it: see
/// [`Event::Discarded`](crate::session::Event::Discarded)).
pub type DiscardedCallback<U> = fn(&mut Context<'_, U>, &str, u16);

/// The callback registry: the six MiniMQTT callbacks and up to `ROUTES`
/// per-topic callbacks. Filters are borrowed for `'r` (usually `'static`
/// literals), so nothing is copied.
pub struct Callbacks<'r, U, const ROUTES: usize = 8> {
    on_connect: Option<ConnectCallback<U>>,
    on_disconnect: Option<DisconnectCallback<U>>,
    on_subscribe: Option<SubscribeCallback<U>>,
    on_unsubscribe: Option<UnsubscribeCallback<U>>,
    on_publish: Option<PublishCallback<U>>,
    on_message: Option<MessageCallback<U>>,
    on_message_dropped: Option<DroppedCallback<U>>,
    on_publish_discarded: Option<DiscardedCallback<U>>,
    on_resend_payload: Option<ResendCallback<U>>,
    #[cfg(feature = "v5")]
    on_auth: Option<AuthCallback<U>>,
    routes: heapless::Vec<(&'r str, Route<U>), ROUTES>,
}

impl<U, const ROUTES: usize> Default for Callbacks<'_, U, ROUTES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<U, const ROUTES: usize> core::fmt::Debug for Callbacks<'_, U, ROUTES> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Callbacks")
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}

impl<'r, U, const ROUTES: usize> Callbacks<'r, U, ROUTES> {
    /// No callbacks at all.
    pub const fn new() -> Self {
        Self {
            on_connect: None,
            on_disconnect: None,
            on_subscribe: None,
            on_unsubscribe: None,
            on_publish: None,
            on_message: None,
            on_message_dropped: None,
            on_publish_discarded: None,
            on_resend_payload: None,
            #[cfg(feature = "v5")]
            on_auth: None,
            routes: heapless::Vec::new(),
        }
    }

    /// Sets `on_connect`.
    pub fn on_connect(mut self, f: ConnectCallback<U>) -> Self {
        self.on_connect = Some(f);
        self
    }

    /// Sets `on_disconnect`.
    pub fn on_disconnect(mut self, f: DisconnectCallback<U>) -> Self {
        self.on_disconnect = Some(f);
        self
    }

    /// Sets `on_subscribe`.
    pub fn on_subscribe(mut self, f: SubscribeCallback<U>) -> Self {
        self.on_subscribe = Some(f);
        self
    }

    /// Sets `on_unsubscribe`.
    pub fn on_unsubscribe(mut self, f: UnsubscribeCallback<U>) -> Self {
        self.on_unsubscribe = Some(f);
        self
    }

    /// Sets `on_publish`.
    pub fn on_publish(mut self, f: PublishCallback<U>) -> Self {
        self.on_publish = Some(f);
        self
    }

    /// Sets `on_message`, which gets the messages no topic callback matched.
    pub fn on_message(mut self, f: MessageCallback<U>) -> Self {
        self.on_message = Some(f);
        self
    }

    /// Sets `on_message_dropped`, told of every incoming message too large
    /// for the receive buffer.
    pub fn on_message_dropped(mut self, f: DroppedCallback<U>) -> Self {
        self.on_message_dropped = Some(f);
        self
    }

    /// Sets `on_publish_discarded`, told of every outgoing QoS 1/2 message
    /// a clean-session connect discarded before it completed (or, MQTT 5,
    /// that the broker's new limits forbid resending).
    pub fn on_publish_discarded(mut self, f: DiscardedCallback<U>) -> Self {
        self.on_publish_discarded = Some(f);
        self
    }

    /// Sets `on_resend_payload`, which supplies the payload of a streamed
    /// QoS 1/2 message again when it is resent after a reconnect. Without
    /// it such messages are discarded at the reconnect.
    pub fn on_resend_payload(mut self, f: ResendCallback<U>) -> Self {
        self.on_resend_payload = Some(f);
        self
    }

    /// MQTT 5: sets `on_auth`, which takes each AUTH of the broker's in
    /// an enhanced authentication (`Config::properties` naming an
    /// Authentication Method) and answers with [`Context::auth`].
    #[cfg(feature = "v5")]
    pub fn on_auth(mut self, f: AuthCallback<U>) -> Self {
        self.on_auth = Some(f);
        self
    }

    #[cfg(feature = "v5")]
    pub(crate) fn auth(&self, ctx: &mut Context<'_, U>, auth: &crate::codec::v5::Auth<'_>) {
        if let Some(f) = self.on_auth {
            f(ctx, auth);
        }
    }

    /// Whether `on_resend_payload` is set.
    pub(crate) fn resends_payloads(&self) -> bool {
        self.on_resend_payload.is_some()
    }

    #[cfg(feature = "streaming")]
    pub(crate) fn resend_payload(
        &self,
        user_data: &mut U,
        request: &PayloadRequest<'_>,
        buf: &mut [u8],
    ) -> usize {
        self.on_resend_payload
            .map_or(0, |f| f(user_data, request, buf))
    }

    /// Runs `f` for every message whose topic matches `filter`. A filter
    /// that already has a callback gets the new one. A shared
    /// subscription's filter, `$share/{ShareName}/{filter}`, matches the
    /// topics its `{filter}` matches, so the filter subscribed to can name
    /// its callback too.
    ///
    /// Errors: [`RouteError::InvalidFilter`] for a filter MQTT forbids,
    /// [`RouteError::Full`] past `ROUTES` callbacks.
    pub fn add_topic_callback(
        &mut self,
        filter: &'r str,
        f: MessageCallback<U>,
    ) -> Result<(), RouteError> {
        self.insert_route(filter, Route::Whole(f))
    }

    /// Streams every message whose topic matches `filter` to `f`, in
    /// parts: what [`Route::Stream`] says. Errors as for
    /// [`add_topic_callback`](Self::add_topic_callback).
    ///
    /// ```
    /// use minimqtt::callbacks::{Callbacks, Context, Part, Stream};
    ///
    /// #[derive(Default)]
    /// struct Ota { received: usize, complete: bool }
    ///
    /// fn firmware(ctx: &mut Context<'_, Ota>, s: &Stream<'_>) {
    ///     match s.part {
    ///         Part::Start => *ctx.user_data = Ota::default(),
    ///         Part::Chunk { data, .. } => ctx.user_data.received += data.len(),
    ///         Part::End => ctx.user_data.complete = ctx.user_data.received == s.len,
    ///         Part::Aborted => ctx.user_data.received = 0,
    ///     }
    /// }
    ///
    /// let mut callbacks: Callbacks<'_, Ota> = Callbacks::new();
    /// callbacks.add_stream_callback("device/42/firmware", firmware).unwrap();
    /// ```
    #[cfg(feature = "streaming")]
    pub fn add_stream_callback(
        &mut self,
        filter: &'r str,
        f: StreamCallback<U>,
    ) -> Result<(), RouteError> {
        self.insert_route(filter, Route::Stream(f))
    }

    /// Adds a per-topic callback of any [`Route`] kind. A filter that
    /// already has one gets the new one.
    #[cfg(feature = "streaming")]
    pub fn add_route(&mut self, filter: &'r str, route: Route<U>) -> Result<(), RouteError> {
        self.insert_route(filter, route)
    }

    fn insert_route(&mut self, filter: &'r str, route: Route<U>) -> Result<(), RouteError> {
        topic::validate_filter(filter).map_err(RouteError::InvalidFilter)?;
        // Routing takes a `$share/` filter for a shared subscription's
        // whatever the version: it must have the form of one (MQTT-4.8.2-1,
        // MQTT-4.8.2-2), or its route would never run.
        topic::validate_shared(filter).map_err(RouteError::InvalidFilter)?;
        if let Some(r) = self.routes.iter_mut().find(|(r, _)| *r == filter) {
            r.1 = route;
            return Ok(());
        }
        self.routes
            .push((filter, route))
            .map_err(|_| RouteError::Full)
    }

    /// Removes the callback of `filter`; [`RouteError::Unknown`] if it has none.
    pub fn remove_topic_callback(&mut self, filter: &str) -> Result<(), RouteError> {
        let i = self
            .routes
            .iter()
            .position(|(r, _)| *r == filter)
            .ok_or(RouteError::Unknown)?;
        self.routes.remove(i);
        Ok(())
    }

    /// Number of per-topic callbacks.
    pub fn topic_callbacks(&self) -> usize {
        self.routes.len()
    }

    /// Delivers `message` by the dispatch rule; returns how many topic
    /// callbacks matched (0 means `on_message` ran, if set).
    pub fn dispatch_message(&self, ctx: &mut Context<'_, U>, message: &Message<'_>) -> usize {
        let mut matched = 0;
        for (filter, route) in &self.routes {
            if !topic::matches(topic::without_share(filter), message.topic) {
                continue;
            }
            matched += 1;
            match (route.whole(), route.stream()) {
                (Some(f), _) => f(ctx, message),
                // Without the feature no stream route can be added.
                (None, Some(s)) if cfg!(feature = "streaming") => whole_as_stream(ctx, s, message),
                _ => {}
            }
        }
        if matched == 0 {
            if let Some(f) = self.on_message {
                f(ctx, message);
            }
        }
        matched
    }

    /// Hands a part of a streamed message to every matching route that
    /// takes streams; returns how many did (0 at [`Part::Start`]: nobody
    /// wants it, skip it).
    pub fn dispatch_stream(&self, ctx: &mut Context<'_, U>, stream: &Stream<'_>) -> usize {
        let mut matched = 0;
        for (filter, route) in &self.routes {
            if let Some(s) = route.stream() {
                if topic::matches(topic::without_share(filter), stream.topic) {
                    s(ctx, stream);
                    matched += 1;
                }
            }
        }
        matched
    }

    pub(crate) fn connected(&self, ctx: &mut Context<'_, U>, info: Connected<'_>) {
        if let Some(f) = self.on_connect {
            f(ctx, info);
        }
    }

    pub(crate) fn disconnected(&self, ctx: &mut Context<'_, U>, reason: DisconnectReason) {
        if let Some(f) = self.on_disconnect {
            f(ctx, reason);
        }
    }

    pub(crate) fn subscribed(
        &self,
        ctx: &mut Context<'_, U>,
        filter: &str,
        code: SubscribeReturnCode,
        packet_id: u16,
    ) {
        if let Some(f) = self.on_subscribe {
            f(ctx, filter, code, packet_id);
        }
    }

    pub(crate) fn unsubscribed(&self, ctx: &mut Context<'_, U>, filter: &str, packet_id: u16) {
        if let Some(f) = self.on_unsubscribe {
            f(ctx, filter, packet_id);
        }
    }

    pub(crate) fn dropped(&self, ctx: &mut Context<'_, U>, dropped: &Dropped<'_>) {
        if let Some(f) = self.on_message_dropped {
            f(ctx, dropped);
        }
    }

    pub(crate) fn discarded(&self, ctx: &mut Context<'_, U>, topic: &str, packet_id: u16) {
        if let Some(f) = self.on_publish_discarded {
            f(ctx, topic, packet_id);
        }
    }

    pub(crate) fn published(&self, ctx: &mut Context<'_, U>, topic: &str, packet_id: Option<u16>) {
        if let Some(f) = self.on_publish {
            f(ctx, topic, packet_id);
        }
    }
}

/// A message that fits, in the parts a streaming route expects. Only the
/// end may defer the acknowledgement, as for a streamed message.
fn whole_as_stream<U>(ctx: &mut Context<'_, U>, s: StreamCallback<U>, m: &Message<'_>) {
    let defer = core::mem::replace(&mut ctx.defer, Defer::No);
    let id_len = if m.qos == QoS::AtMostOnce { 0 } else { 2 };
    #[allow(unused_mut)]
    let mut before = 2 + m.topic.len() + id_len;
    #[cfg(feature = "v5")]
    if !m.properties.is_empty() {
        before += m.properties.field_len();
    }
    let len = m.payload.len();
    let header_len = crate::codec::packet_len(before + len) - len;
    let part = |ctx: &mut Context<'_, U>, part| {
        let stream = Stream {
            topic: m.topic,
            qos: m.qos,
            retain: m.retain,
            dup: m.dup,
            packet_id: m.packet_id,
            len,
            header_len,
            part,
            #[cfg(feature = "v5")]
            properties: m.properties,
        };
        s(ctx, &stream);
    };
    part(ctx, Part::Start);
    if !m.payload.is_empty() {
        part(
            ctx,
            Part::Chunk {
                offset: 0,
                data: m.payload,
            },
        );
    }
    ctx.defer = defer;
    part(ctx, Part::End);
}

/// Why a topic callback could not be added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RouteError {
    /// The registry already holds `ROUTES` callbacks.
    Full,
    /// No callback is registered for that filter.
    Unknown,
    /// The filter is not a valid MQTT topic filter.
    InvalidFilter(topic::TopicError),
}

impl core::fmt::Display for RouteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Full => f.write_str("topic callback registry is full"),
            Self::Unknown => f.write_str("no topic callback for that filter"),
            Self::InvalidFilter(e) => write!(f, "invalid topic filter: {e}"),
        }
    }
}

impl core::error::Error for RouteError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Log {
        calls: heapless::Vec<(&'static str, u8), 16>,
    }

    fn a(ctx: &mut Context<'_, Log>, _: &Message<'_>) {
        ctx.user_data.calls.push(("a", 0)).unwrap();
    }
    fn b(ctx: &mut Context<'_, Log>, m: &Message<'_>) {
        ctx.user_data.calls.push(("b", 0)).unwrap();
        ctx.publish("echo", m.payload, QoS::AtLeastOnce, true)
            .unwrap();
    }
    fn general(ctx: &mut Context<'_, Log>, _: &Message<'_>) {
        ctx.user_data.calls.push(("general", 0)).unwrap();
    }

    fn message(topic: &str) -> Message<'_> {
        Message::new(topic, b"hi")
    }

    #[test]
    fn every_matching_route_runs_and_on_message_only_without_match() {
        let mut callbacks: Callbacks<'_, Log, 2> = Callbacks::new().on_message(general);
        callbacks.add_topic_callback("home/+/temp", a).unwrap();
        callbacks.add_topic_callback("home/#", b).unwrap();
        assert_eq!(callbacks.add_topic_callback("x", a), Err(RouteError::Full));
        assert_eq!(
            callbacks.remove_topic_callback("nope"),
            Err(RouteError::Unknown)
        );
        let mut log = Log::default();
        let mut buf = [0u8; 64];
        let mut outbox = Outbox::new(&mut buf);
        let mut ctx = Context::new(&mut log, &mut outbox);
        assert_eq!(
            callbacks.dispatch_message(&mut ctx, &message("home/k/temp")),
            2
        );
        assert_eq!(callbacks.dispatch_message(&mut ctx, &message("office")), 0);
        assert_eq!(
            callbacks.dispatch_message(&mut ctx, &message("$SYS/home")),
            0
        );
        assert_eq!(
            log.calls
                .iter()
                .map(|c| c.0)
                .collect::<heapless::Vec<_, 8>>(),
            ["a", "b", "general", "general"]
        );
        let (req, size) = outbox.front().unwrap();
        assert_eq!(
            req,
            Request::Publish {
                topic: "echo",
                payload: b"hi",
                qos: QoS::AtLeastOnce,
                retain: true,
                #[cfg(feature = "v5")]
                properties: crate::codec::v5::Properties::EMPTY,
            }
        );
        outbox.pop_front(size);
        assert!(outbox.is_empty());
    }

    /// The callback of a shared subscription's filter gets the messages of
    /// its topics, which arrive without the `$share/{ShareName}/` part.
    #[test]
    fn a_shared_subscription_filter_routes_its_topics() {
        let mut callbacks: Callbacks<'_, Log, 2> = Callbacks::new().on_message(general);
        callbacks
            .add_topic_callback("$share/workers/jobs/+", a)
            .unwrap();
        let mut log = Log::default();
        let mut buf = [0u8; 64];
        let mut outbox = Outbox::new(&mut buf);
        let mut ctx = Context::new(&mut log, &mut outbox);
        assert_eq!(callbacks.dispatch_message(&mut ctx, &message("jobs/7")), 1);
        assert_eq!(callbacks.dispatch_message(&mut ctx, &message("other/7")), 0);
        assert_eq!(
            log.calls
                .iter()
                .map(|c| c.0)
                .collect::<heapless::Vec<_, 4>>(),
            ["a", "general"]
        );
        // Not of that form: refused, as a SUBSCRIBE of it would be.
        for bad in [
            "$share/g",
            "$share//a",
            "$share/+/a",
            "$share/g/",
            "$share/#",
        ] {
            assert_eq!(
                callbacks.add_topic_callback(bad, a),
                Err(RouteError::InvalidFilter(
                    crate::topic::TopicError::SharedSubscription
                )),
                "{bad}"
            );
        }
        assert_eq!(callbacks.topic_callbacks(), 1);
    }

    #[test]
    fn outbox_refuses_what_does_not_fit() {
        let mut buf = [0u8; 16];
        let mut outbox = Outbox::new(&mut buf);
        outbox
            .push(Request::Unsubscribe { filter: "abcd" })
            .unwrap();
        assert_eq!(
            outbox.push(Request::Subscribe {
                filter: "x",
                qos: QoS::AtMostOnce
            }),
            Err(OutboxFull)
        );
        assert_eq!(
            outbox.front().unwrap().0,
            Request::Unsubscribe { filter: "abcd" }
        );
    }

    #[test]
    fn acknowledgements_can_go_ahead_of_the_requests_before_them() {
        let token = |packet_id| crate::session::AckToken {
            packet_id,
            qos: QoS::AtLeastOnce,
            connection: 0,
        };
        let mut buf = [0u8; 128];
        let mut outbox = Outbox::new(&mut buf);
        outbox.push(Request::Ack(token(1))).unwrap();
        outbox.push(Request::Unsubscribe { filter: "a" }).unwrap();
        outbox.push(Request::Ack(token(2))).unwrap();
        outbox.push(Request::Ack(token(3))).unwrap();
        outbox.push(Request::Unsubscribe { filter: "b" }).unwrap();
        let mut redeemed = heapless::Vec::<u16, 4>::new();
        outbox.take_acks(|t| redeemed.push(t.packet_id()).unwrap());
        assert_eq!(redeemed, [1, 2, 3]);
        let mut left = heapless::Vec::<&str, 4>::new();
        while let Some((request, size)) = outbox.front() {
            let Request::Unsubscribe { filter } = request else {
                panic!("{request:?}")
            };
            left.push(if filter == "a" { "a" } else { "b" }).unwrap();
            outbox.pop_front(size);
        }
        assert_eq!(left, ["a", "b"]);
    }
}
