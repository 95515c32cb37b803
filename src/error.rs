//! The client's error type.

use core::convert::Infallible;
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
    /// PINGRESP after PINGREQ.
    PingResp,
}

/// Everything that can go wrong, as a value.
///
/// The variants fall in two groups. *Connection* errors (the transport
/// failed or closed, the broker broke the protocol or refused the
/// connection, an acknowledgement timed out) mean the connection is gone:
/// the client has already closed the transport and called `on_disconnect`,
/// and the next [`connect`](crate::Client::connect) (or
/// [`run`](crate::Client::run)) opens a new one. *Caller* errors (bad topic,
/// a full window, not connected) change nothing and the connection stays
/// up. [`Error::is_connection_lost`] tells the groups apart. Conditions
/// that are not failures (a message too large for the receive buffer, a
/// discarded message) are not errors at all: they reach their callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error<E> {
    /// The transport returned this error.
    Transport(E),
    /// The transport reached end of stream (a read or a write of 0 bytes).
    ConnectionClosed,
    /// The broker refused the connection with this CONNACK return code.
    Refused(ConnectReturnCode),
    /// An acknowledgement did not arrive within its timeout.
    Timeout(AckKind),
    /// The broker sent bytes that are not a valid MQTT 3.1.1 packet.
    Malformed(Malformed),
    /// The broker sent a valid packet that MQTT 3.1.1 forbids at this point
    /// (a CONNECT, a second CONNACK, a SUBACK whose code count does not match).
    Protocol(PacketType),
    /// No connection: call [`connect`](crate::Client::connect) first.
    NotConnected,
    /// `connect` on a connection that is up or being set up: MQTT allows one
    /// CONNECT per network connection. Disconnect (or replace the
    /// transport) first.
    AlreadyConnected,
    /// The packet could not be encoded (bad topic, too long, ...).
    Encode(EncodeError),
    /// `INFLIGHT` messages or requests already wait for acknowledgements.
    InflightFull,
    /// The session store slice has no room for this message or filter.
    StoreFull,
    /// The subscription list is full (its `SUBS` capacity).
    SubscriptionsFull,
    /// The packet is larger than the transmit buffer.
    TransmitBufferTooSmall {
        /// Bytes the packet needs.
        needed: usize,
    },
    /// The [`Connector`](crate::reconnect::Connector) could not open a
    /// transport (its own error has another type and is logged, not kept).
    ConnectFailed,
    /// [`wait_published`](crate::Client::wait_published): the message will
    /// never complete; a clean-session connect discarded it.
    Discarded,
    /// The client id is empty while clean session is off
    /// (MQTT-3.1.3-7), and no seed was given to generate one.
    EmptyClientId,
}

impl<E> Error<E> {
    /// Whether the connection is gone after this error.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            Self::Transport(_)
                | Self::ConnectionClosed
                | Self::Refused(_)
                | Self::Timeout(_)
                | Self::Malformed(_)
                | Self::Protocol(_)
                | Self::ConnectFailed
        )
    }

    /// The same error with another transport error type.
    pub fn map_transport<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        match self {
            Self::Transport(e) => Error::Transport(f(e)),
            Self::ConnectionClosed => Error::ConnectionClosed,
            Self::Refused(c) => Error::Refused(c),
            Self::Timeout(k) => Error::Timeout(k),
            Self::Malformed(m) => Error::Malformed(m),
            Self::Protocol(p) => Error::Protocol(p),
            Self::NotConnected => Error::NotConnected,
            Self::AlreadyConnected => Error::AlreadyConnected,
            Self::Encode(e) => Error::Encode(e),
            Self::InflightFull => Error::InflightFull,
            Self::StoreFull => Error::StoreFull,
            Self::SubscriptionsFull => Error::SubscriptionsFull,
            Self::TransmitBufferTooSmall { needed } => Error::TransmitBufferTooSmall { needed },
            Self::EmptyClientId => Error::EmptyClientId,
            Self::ConnectFailed => Error::ConnectFailed,
            Self::Discarded => Error::Discarded,
        }
    }
}

impl Error<Infallible> {
    /// Widens a session error (which has no transport) to any transport.
    pub fn widen<E>(self) -> Error<E> {
        self.map_transport(|never| match never {})
    }
}

impl<E> From<Closed> for Error<E> {
    fn from(reason: Closed) -> Self {
        match reason {
            Closed::Timeout(kind) => Self::Timeout(kind),
            Closed::Malformed(m) => Self::Malformed(m),
            Closed::Protocol(t) => Self::Protocol(t),
            Closed::Refused(code) => Self::Refused(code),
        }
    }
}

impl<E> From<EncodeError> for Error<E> {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "transport error: {e:?}"),
            Self::ConnectionClosed => f.write_str("connection closed by the peer"),
            Self::Refused(code) => write!(f, "connection refused: {code}"),
            Self::Timeout(kind) => write!(f, "no {kind:?} in time"),
            Self::Malformed(m) => write!(f, "malformed packet from the broker: {m}"),
            Self::Protocol(t) => write!(f, "unexpected {t:?} from the broker"),
            Self::NotConnected => f.write_str("not connected"),
            Self::AlreadyConnected => f.write_str("already connected"),
            Self::Encode(e) => write!(f, "cannot encode: {e}"),
            Self::InflightFull => f.write_str("in-flight window is full"),
            Self::StoreFull => f.write_str("session store is full"),
            Self::SubscriptionsFull => f.write_str("subscription list is full"),
            Self::TransmitBufferTooSmall { needed } => {
                write!(f, "packet needs {needed} bytes of transmit buffer")
            }
            Self::EmptyClientId => f.write_str("empty client id with clean session off"),
            Self::ConnectFailed => f.write_str("could not open a connection to the broker"),
            Self::Discarded => f.write_str("the message was discarded with the session"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}
