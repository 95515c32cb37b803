//! What the session reports: the connection's state and its events.

use core::fmt;

use crate::codec::{
    ConnectReturnCode, Malformed, PacketType, Publish, QoS, ReturnCodes, SubscribeFilters,
    UnsubscribeFilters,
};
use crate::error::AckKind;

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum State {
    /// No connection; [`Session::connect`](super::Session::connect) starts one.
    Disconnected,
    /// CONNECT queued or sent, CONNACK not yet received.
    Connecting,
    /// CONNACK accepted.
    Connected,
}

/// What an accepted CONNACK meant: `on_connect`'s argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Connected {
    /// The session-present flag exactly as the broker sent it.
    pub session_present: bool,
    /// Filters re-subscribed because the broker did not confirm them (it
    /// had no session, or their SUBACK never arrived); 0 when re-subscribing
    /// is off.
    pub resubscribed: usize,
    /// Outgoing QoS 1/2 messages being resent (PUBLISH with DUP, or PUBREL
    /// past PUBREC), clean session off.
    pub resent: usize,
}

/// Why the session ended the connection. The transport must be closed
/// (MQTT-4.8.0-1 for a protocol violation); the session is kept for the
/// next connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Closed {
    /// An acknowledgement or PINGRESP did not arrive in time.
    Timeout(AckKind),
    /// The broker sent bytes that are not a valid MQTT 3.1.1 packet.
    Malformed(Malformed),
    /// The broker sent a valid packet that MQTT 3.1.1 forbids at this
    /// point: a packet only clients send, a second CONNACK, anything before
    /// CONNACK, a session claimed after a clean-session CONNECT, a SUBACK
    /// whose code count does not match its SUBSCRIBE.
    Protocol(PacketType),
    /// The broker refused the connection with this CONNACK return code.
    Refused(ConnectReturnCode),
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(kind) => write!(f, "no {kind:?} in time"),
            Self::Malformed(m) => write!(f, "malformed packet from the broker: {m}"),
            Self::Protocol(t) => write!(f, "unexpected {t:?} from the broker"),
            Self::Refused(code) => write!(f, "connection refused: {code}"),
        }
    }
}

/// An incoming packet too large for the receive buffer. It was skipped;
/// a QoS 1/2 PUBLISH whose packet id could be read is still acknowledged,
/// so the broker does not send it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Dropped<'a> {
    /// The whole packet's length in bytes.
    pub len: usize,
    /// Its type (a PUBLISH, unless the broker sent an absurd acknowledgement).
    pub packet_type: PacketType,
    /// A PUBLISH's topic, when its bytes fit in the receive buffer.
    pub topic: Option<&'a str>,
    /// A PUBLISH's QoS.
    pub qos: QoS,
    /// A QoS 1/2 PUBLISH's packet id, when it fits in the receive buffer.
    /// Without it the message cannot be acknowledged, and the broker may
    /// send it again after a reconnect.
    pub packet_id: Option<u16>,
}

/// A message too large for the receive buffer, delivered in parts as its
/// bytes arrive ([`Options::stream`](super::Options::stream)): one
/// [`Part::Start`], [`Part::Chunk`]s in order, then [`Part::End`], or
/// [`Part::Aborted`] if the connection ends first. Every part carries the
/// message's header, kept in the receive buffer while it streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stream<'a> {
    /// The topic name.
    pub topic: &'a str,
    /// The delivery guarantee.
    pub qos: QoS,
    /// The RETAIN flag.
    pub retain: bool,
    /// The DUP flag: the broker may have sent it before.
    pub dup: bool,
    /// The packet id (QoS 1/2).
    pub packet_id: Option<u16>,
    /// The payload's length, all chunks together.
    pub len: usize,
    /// Which part this is.
    pub part: Part<'a>,
}

impl Stream<'_> {
    /// The whole PUBLISH packet's length on the wire, header included.
    pub fn packet_len(&self) -> usize {
        let id = if self.qos == QoS::AtMostOnce { 0 } else { 2 };
        crate::codec::packet_len(2 + self.topic.len() + id + self.len)
    }
}

/// One part of a [`Stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Part<'a> {
    /// The header has arrived; chunks follow.
    Start,
    /// The payload bytes from `offset` on, as they arrived.
    Chunk {
        /// Where `data` starts in the payload.
        offset: usize,
        /// The bytes.
        data: &'a [u8],
    },
    /// The last chunk has been delivered. The PUBACK / PUBREC is queued by
    /// the next call on the session, once this part has been consumed.
    End,
    /// The connection ended before the last chunk: throw away what was
    /// received. A QoS 1/2 message was not acknowledged, so the broker
    /// sends it again (from the start) after a reconnect with clean
    /// session off; a QoS 0 message is lost.
    Aborted,
}

/// What happened, from [`Session::poll_event`](super::Session::poll_event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event<'a> {
    /// CONNACK accepted.
    Connected(Connected),
    /// An application message to deliver. Its PUBACK / PUBREC is queued by
    /// the next call on the session, once this event has been consumed.
    Message(Publish<'a>),
    /// An outgoing QoS 1/2 message completed (PUBACK / PUBCOMP received).
    Published {
        /// Its topic.
        topic: &'a str,
        /// Its packet id.
        packet_id: u16,
        /// Its QoS.
        qos: QoS,
    },
    /// An outgoing QoS 1/2 message that will never complete: a
    /// clean-session connect discarded it with the rest of the session.
    Discarded {
        /// Its topic.
        topic: &'a str,
        /// Its packet id.
        packet_id: u16,
        /// Its QoS.
        qos: QoS,
    },
    /// A SUBACK for one of our SUBSCRIBEs: `filters` pair with `codes`.
    Subscribed {
        /// The SUBSCRIBE's packet id.
        packet_id: u16,
        /// The filters as requested.
        filters: SubscribeFilters<'a>,
        /// What the broker granted, one code per filter.
        codes: ReturnCodes<'a>,
    },
    /// An UNSUBACK for one of our UNSUBSCRIBEs.
    Unsubscribed {
        /// The UNSUBSCRIBE's packet id.
        packet_id: u16,
        /// The filters it removed.
        filters: UnsubscribeFilters<'a>,
    },
    /// A PINGRESP.
    Pong,
    /// A part of a message streamed through the receive buffer.
    Stream(Stream<'a>),
    /// A packet too large for the receive buffer was skipped. The
    /// connection goes on.
    Dropped(Dropped<'a>),
    /// The connection is over: close the transport. Nothing more comes
    /// from this connection; the session waits for the next connect.
    Closed(Closed),
}
