//! The errors, grouped by who is at fault: the broker ([`BrokerError`]),
//! a local capacity ([`ResourceError`]), the caller ([`UsageError`]), time
//! ([`Error::Timeout`]) and the transport ([`Error::Transport`]).
//!
//! The session, which does no I/O, fails only with a [`SessionError`]
//! (resources or usage); the client's [`Error`] adds the rest, and `?`
//! converts between them.

use core::fmt;

use crate::codec::{ConnectReturnCode, EncodeError, Malformed, PacketType};
use crate::session::Closed;

/// Which acknowledgement did not arrive in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum AckKind {
    /// CONNACK after CONNECT.
    ConnAck,
    /// SUBACK after SUBSCRIBE.
    SubAck,
    /// UNSUBACK after UNSUBSCRIBE.
    UnsubAck,
    /// PUBACK after a QoS 1 PUBLISH.
    PubAck,
    /// PUBREC after a QoS 2 PUBLISH.
    PubRec,
    /// PUBCOMP after PUBREL.
    PubComp,
    /// PINGRESP after PINGREQ; also a write the peer did not take within
    /// the pingresp timeout when no other deadline ran (see
    /// [`Timeouts::pingresp`](crate::session::Timeouts::pingresp)).
    PingResp,
    /// MQTT 5: the broker's AUTH after ours, connected (a
    /// re-authentication).
    #[cfg(feature = "v5")]
    Auth,
}

/// The broker broke the protocol or refused us. The connection is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum BrokerError {
    /// CONNACK refused the connection with this return code.
    /// [`ConnectReturnCode::is_permanent`] says whether retrying can help.
    Refused(ConnectReturnCode),
    /// Bytes that are not a valid MQTT 3.1.1 packet.
    Malformed(Malformed),
    /// A valid packet MQTT 3.1.1 forbids at this point (a packet only
    /// clients send, a second CONNACK, anything before CONNACK, a session
    /// claimed after a clean-session CONNECT, a SUBACK whose code count
    /// does not match).
    Protocol(PacketType),
    /// MQTT 5: CONNACK refused the connection with this reason code.
    /// [`ReasonCode::is_permanent_refusal`](crate::codec::v5::ReasonCode::is_permanent_refusal)
    /// says whether retrying can help.
    #[cfg(feature = "v5")]
    RefusedV5(crate::codec::v5::ReasonCode),
    /// MQTT 5: the broker ended the connection with DISCONNECT and this
    /// reason code.
    #[cfg(feature = "v5")]
    Disconnected(crate::codec::v5::ReasonCode),
    /// MQTT 5: the broker broke a rule with its own reason code (Receive
    /// Maximum exceeded, Topic Alias invalid, Packet too large, an
    /// unasked AUTH); see [`Closed::Violation`].
    #[cfg(feature = "v5")]
    Violation(crate::codec::v5::ReasonCode),
}

/// A capacity of the client is exhausted. Nothing was changed; the
/// connection is up. Try again later (once acknowledgements free room), or
/// give the client more room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ResourceError {
    /// `INFLIGHT` messages or requests already wait for acknowledgements.
    InflightFull,
    /// The session's arena has no room to keep this message or filter
    /// (or to re-subscribe every filter after a reconnect, with it) even
    /// once the transmit queue is written: it waits for acknowledgements.
    StoreFull,
    /// The subscription list is full (its `SUBS` capacity).
    SubscriptionsFull,
    /// The packet does not fit the transmit queue now: the queue's
    /// unwritten packets, or the messages kept in the session's arena,
    /// leave too little of it (ever, when `needed` is more than the arena
    /// holds beside them), or resends wait to be queued: new packets go
    /// behind them. Writing the queue makes room. A QoS 1/2 PUBLISH takes
    /// no queue room: it is written from where the arena keeps it (but for
    /// a streamed one's head, or an MQTT 5 one sent with a Topic Alias).
    TransmitBufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
    },
    /// The receive buffer is shorter than 8 bytes: it cannot hold the
    /// longest fixed header (a packet of 2 MiB or more) and what must be
    /// read behind it (a PUBLISH's topic length, which says where a QoS
    /// 1/2 message's packet id is when it must be skipped; an MQTT 5
    /// acknowledgement's packet id and reason code). Refused by `connect`.
    /// Give the client a larger receive buffer.
    ReceiveBufferTooSmall {
        /// Bytes the receive buffer needs at the least.
        needed: usize,
    },
    /// `INFLIGHT` acknowledgements are already deferred: redeem an
    /// [`AckToken`](crate::session::AckToken) first.
    AcksFull,
    /// MQTT 5: the packet is larger than the Maximum Packet Size the
    /// broker's CONNACK set (MQTT-3.1.2-24: it must not be sent).
    PacketTooLarge {
        /// The packet's length.
        len: usize,
        /// The broker's maximum.
        max: u32,
    },
}

/// The caller asked for something that cannot be done. Nothing was
/// changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum UsageError {
    /// No connection: connect first (or let `run_for` do it).
    NotConnected,
    /// `connect` on a connection that is up: MQTT allows one CONNECT per
    /// network connection (MQTT-3.1.0-2).
    AlreadyConnected,
    /// The client id is empty while clean session is off (MQTT-3.1.3-7),
    /// and no seed was given to generate one.
    EmptyClientId,
    /// The packet cannot be encoded: an invalid topic or filter, a string
    /// too long, ...
    Encode(EncodeError),
    /// No acknowledgement to defer: the message just delivered is QoS 0,
    /// or its acknowledgement was already deferred or queued.
    NothingToDefer,
    /// The [`AckToken`](crate::session::AckToken) belongs to a connection
    /// that is gone: nothing was sent, and the broker resends the message.
    StaleAck,
    /// The connection (its MQTT version, or what the broker's CONNACK
    /// allows) or this build cannot do it.
    Unsupported(Unsupported),
}

/// What [`UsageError::Unsupported`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Unsupported {
    /// MQTT 5 in a build without the `v5` feature.
    Mqtt5,
    /// MQTT 3.1.1 in a build without the `v3` feature.
    Mqtt3,
    /// MQTT 5 data (properties, subscription options) on an MQTT 3.1.1
    /// connection.
    Mqtt5Only,
    /// A QoS above the broker's Maximum QoS (MQTT-3.2.2-11).
    QoS,
    /// A retained message while the broker's Retain Available is 0
    /// (MQTT-3.2.2-14).
    Retain,
    /// A wildcard filter while the broker's Wildcard Subscription
    /// Available is 0.
    WildcardSubscription,
    /// A Subscription Identifier while the broker's Subscription
    /// Identifier Available is 0, or in a PUBLISH (MQTT-3.3.4-6).
    SubscriptionIdentifier,
    /// A shared subscription while the broker's Shared Subscription
    /// Available is 0.
    SharedSubscription,
    /// Topic Alias properties: the session does not assign or accept
    /// aliases yet.
    TopicAlias,
    /// Enhanced authentication (an Authentication Method).
    Authentication,
    /// A Receive Maximum above `INFLIGHT`: the session tracks at most
    /// `INFLIGHT` incoming QoS 2 messages, so it could not hold the
    /// broker to more.
    ReceiveMaximum,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mqtt5 => "MQTT 5 is not in this build (the `v5` feature)",
            Self::Mqtt3 => "MQTT 3.1.1 is not in this build (the `v3` feature)",
            Self::Mqtt5Only => "MQTT 5 data on an MQTT 3.1.1 connection",
            Self::QoS => "QoS above the broker's maximum",
            Self::Retain => "the broker does not take retained messages",
            Self::WildcardSubscription => "the broker does not take wildcard subscriptions",
            Self::SubscriptionIdentifier => "subscription identifier not allowed here",
            Self::SharedSubscription => "the broker does not take shared subscriptions",
            Self::TopicAlias => "topic aliases are not supported",
            Self::Authentication => "enhanced authentication is not supported",
            Self::ReceiveMaximum => "receive maximum above what the session can track",
        })
    }
}

/// Why the sans-IO session refused a request: it does no I/O, so only a
/// capacity or the caller can be at fault. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SessionError {
    /// A capacity is exhausted.
    Resource(ResourceError),
    /// The request cannot be done.
    Usage(UsageError),
}

/// Everything that can go wrong in the client, as a value, grouped by who
/// is at fault.
///
/// *Connection* errors mean the connection is gone: the client has already
/// closed the transport and run `on_disconnect`, and the next
/// [`connect`](crate::Client::connect) (or [`run`](crate::Client::run))
/// opens a new one. They are [`Transport`](Self::Transport),
/// [`ConnectionClosed`](Self::ConnectionClosed), [`ConnectFailed`](Self::ConnectFailed),
/// [`Broker`](Self::Broker) and [`Timeout`](Self::Timeout);
/// [`Error::is_connection_lost`] tells them apart. [`Resource`](Self::Resource)
/// and [`Usage`](Self::Usage) errors change nothing, and the connection
/// stays up. Conditions that are not failures (a message too large for the
/// receive buffer) are not errors: they reach their callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error<E> {
    /// The transport returned this error.
    Transport(E),
    /// The transport reached end of stream (a read or a write of 0 bytes).
    ConnectionClosed,
    /// The [`Connector`](crate::reconnect::Connector) could not open a
    /// transport (its own error has another type and is logged, not kept).
    ConnectFailed,
    /// The broker broke the protocol or refused the connection.
    Broker(BrokerError),
    /// An acknowledgement (or PINGRESP) did not arrive within its timeout.
    Timeout(AckKind),
    /// A capacity is exhausted; nothing changed.
    Resource(ResourceError),
    /// The request cannot be done; nothing changed.
    Usage(UsageError),
    /// [`wait_published`](crate::Client::wait_published): the message will
    /// never complete; a clean-session connect discarded it. The
    /// connection is not affected.
    Discarded,
    /// A streamed payload's source ran dry before the length its PUBLISH
    /// announced ([`publish_from`](crate::Client::publish_from), or
    /// `on_resend_payload` for a resend): a packet cannot be taken back
    /// half sent, so the connection was closed (`on_disconnect` ran with
    /// [`DisconnectReason::PayloadShort`](crate::callbacks::DisconnectReason::PayloadShort)),
    /// and the message discarded (`on_publish_discarded`).
    PayloadShort,
}

impl<E> Error<E> {
    /// Whether the connection is gone after this error.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            Self::Transport(_)
                | Self::ConnectionClosed
                | Self::ConnectFailed
                | Self::Broker(_)
                | Self::Timeout(_)
                | Self::PayloadShort
        )
    }

    /// The same error with another transport error type.
    pub fn map_transport<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        match self {
            Self::Transport(e) => Error::Transport(f(e)),
            Self::ConnectionClosed => Error::ConnectionClosed,
            Self::ConnectFailed => Error::ConnectFailed,
            Self::Broker(e) => Error::Broker(e),
            Self::Timeout(k) => Error::Timeout(k),
            Self::Resource(e) => Error::Resource(e),
            Self::Usage(e) => Error::Usage(e),
            Self::Discarded => Error::Discarded,
            Self::PayloadShort => Error::PayloadShort,
        }
    }
}

impl From<ResourceError> for SessionError {
    fn from(e: ResourceError) -> Self {
        Self::Resource(e)
    }
}

impl From<UsageError> for SessionError {
    fn from(e: UsageError) -> Self {
        Self::Usage(e)
    }
}

impl From<EncodeError> for UsageError {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

impl From<EncodeError> for SessionError {
    fn from(e: EncodeError) -> Self {
        Self::Usage(UsageError::Encode(e))
    }
}

impl<E> From<SessionError> for Error<E> {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Resource(e) => Self::Resource(e),
            SessionError::Usage(e) => Self::Usage(e),
        }
    }
}

impl<E> From<ResourceError> for Error<E> {
    fn from(e: ResourceError) -> Self {
        Self::Resource(e)
    }
}

impl<E> From<UsageError> for Error<E> {
    fn from(e: UsageError) -> Self {
        Self::Usage(e)
    }
}

impl<E> From<EncodeError> for Error<E> {
    fn from(e: EncodeError) -> Self {
        Self::Usage(UsageError::Encode(e))
    }
}

impl<E> From<BrokerError> for Error<E> {
    fn from(e: BrokerError) -> Self {
        Self::Broker(e)
    }
}

impl<E> From<Closed> for Error<E> {
    fn from(reason: Closed) -> Self {
        match reason {
            Closed::Timeout(kind) => Self::Timeout(kind),
            Closed::Malformed(m) => Self::Broker(BrokerError::Malformed(m)),
            Closed::Protocol(t) => Self::Broker(BrokerError::Protocol(t)),
            Closed::Refused(code) => Self::Broker(BrokerError::Refused(code)),
            #[cfg(feature = "v5")]
            Closed::RefusedV5(code) => Self::Broker(BrokerError::RefusedV5(code)),
            #[cfg(feature = "v5")]
            Closed::ServerDisconnect(code) => Self::Broker(BrokerError::Disconnected(code)),
            #[cfg(feature = "v5")]
            Closed::Violation(code) => Self::Broker(BrokerError::Violation(code)),
        }
    }
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(code) => write!(f, "connection refused: {code}"),
            Self::Malformed(m) => write!(f, "malformed packet from the broker: {m}"),
            Self::Protocol(t) => write!(f, "unexpected {t:?} from the broker"),
            #[cfg(feature = "v5")]
            Self::RefusedV5(code) => write!(f, "connection refused: {code}"),
            #[cfg(feature = "v5")]
            Self::Disconnected(code) => write!(f, "disconnected by the broker: {code}"),
            #[cfg(feature = "v5")]
            Self::Violation(code) => write!(f, "broker broke an MQTT 5 rule: {code}"),
        }
    }
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InflightFull => f.write_str("in-flight window is full"),
            Self::StoreFull => f.write_str("session arena is full"),
            Self::SubscriptionsFull => f.write_str("subscription list is full"),
            Self::TransmitBufferTooSmall { needed } => {
                write!(f, "packet needs {needed} bytes of transmit queue")
            }
            Self::ReceiveBufferTooSmall { needed } => {
                write!(f, "receive buffer shorter than {needed} bytes")
            }
            Self::AcksFull => f.write_str("too many deferred acknowledgements"),
            Self::PacketTooLarge { len, max } => {
                write!(
                    f,
                    "packet of {len} bytes over the broker's maximum of {max}"
                )
            }
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotConnected => f.write_str("not connected"),
            Self::AlreadyConnected => f.write_str("already connected"),
            Self::EmptyClientId => f.write_str("empty client id with clean session off"),
            Self::Encode(e) => write!(f, "cannot encode: {e}"),
            Self::NothingToDefer => f.write_str("no acknowledgement to defer"),
            Self::StaleAck => f.write_str("acknowledgement token of a lost connection"),
            Self::Unsupported(what) => what.fmt(f),
        }
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resource(e) => e.fmt(f),
            Self::Usage(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "transport error: {e:?}"),
            Self::ConnectionClosed => f.write_str("connection closed by the peer"),
            Self::ConnectFailed => f.write_str("could not open a connection to the broker"),
            Self::Broker(e) => e.fmt(f),
            Self::Timeout(kind) => write!(f, "no {kind:?} in time"),
            Self::Resource(e) => e.fmt(f),
            Self::Usage(e) => e.fmt(f),
            Self::Discarded => f.write_str("the message was discarded with the session"),
            Self::PayloadShort => {
                f.write_str("a streamed payload ran dry; the connection was closed")
            }
        }
    }
}

impl core::error::Error for BrokerError {}
impl core::error::Error for ResourceError {}
impl core::error::Error for UsageError {}
impl core::error::Error for SessionError {}
impl<E: fmt::Debug> core::error::Error for Error<E> {}
