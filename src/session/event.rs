//! What the session reports: the connection's state and its events.

use core::fmt;

#[cfg(feature = "v5")]
use crate::codec::v5::{self, Properties, ReasonCode};
use crate::codec::{
    ConnectReturnCode, Malformed, PacketType, Publish, QoS, ReturnCodes, SubscribeFilters,
    UnsubscribeFilters,
};
use crate::error::AckKind;

/// The MQTT version a connection speaks, chosen at connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4). Needs the `v3` feature.
    V3_1_1,
    /// MQTT 5.0 (protocol level 5). Needs the `v5` feature.
    ///
    /// A version the build leaves out is refused at connect
    /// ([`UsageError::Unsupported`](crate::error::UsageError::Unsupported)).
    V5,
}

impl Version {
    /// MQTT 3.1.1 when the build has it (the `v3` feature), MQTT 5
    /// otherwise.
    pub const DEFAULT: Self = if cfg!(feature = "v3") {
        Self::V3_1_1
    } else {
        Self::V5
    };
}

impl Default for Version {
    fn default() -> Self {
        Self::DEFAULT
    }
}

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
pub struct Connected<'a> {
    /// The session-present flag exactly as the broker sent it.
    pub session_present: bool,
    /// Filters re-subscribed because the broker did not confirm them (it
    /// had no session, or their SUBACK never arrived); 0 when re-subscribing
    /// is off.
    pub resubscribed: usize,
    /// Outgoing QoS 1/2 messages being resent (PUBLISH with DUP, or PUBREL
    /// past PUBREC), clean session off.
    pub resent: usize,
    /// MQTT 5: the CONNACK's properties (Assigned Client Identifier,
    /// Server Keep Alive, the broker's limits, Reason String, User
    /// Properties, ...); empty on MQTT 3.1.1. The session applies the
    /// limits itself (see [`Session::limits`](super::Session::limits)).
    #[cfg(feature = "v5")]
    pub properties: Properties<'a>,
    #[cfg(not(feature = "v5"))]
    #[doc(hidden)]
    pub _life: core::marker::PhantomData<&'a ()>,
}

impl Connected<'_> {
    /// The same without the properties, which borrow the receive buffer:
    /// a value to keep after `on_connect` returns.
    pub const fn without_properties(&self) -> Connected<'static> {
        Connected::new(self.session_present, self.resubscribed, self.resent)
    }

    /// What a CONNACK with these flags reports, with no properties.
    pub const fn new(session_present: bool, resubscribed: usize, resent: usize) -> Self {
        Self {
            session_present,
            resubscribed,
            resent,
            #[cfg(feature = "v5")]
            properties: Properties::EMPTY,
            #[cfg(not(feature = "v5"))]
            _life: core::marker::PhantomData,
        }
    }
}

/// A received application message, borrowed from the receive buffer: the
/// PUBLISH as the callbacks see it.
///
/// ```
/// use minimqtt::callbacks::Message;
/// use minimqtt::codec::QoS;
///
/// let mut message = Message::new("sensor/0001/temp", b"21.5");
/// message.qos = QoS::AtLeastOnce;
/// assert_eq!(message.topic, "sensor/0001/temp");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Message<'a> {
    /// The topic name (resolved from its Topic Alias on MQTT 5).
    pub topic: &'a str,
    /// The payload.
    pub payload: &'a [u8],
    /// The delivery guarantee.
    pub qos: QoS,
    /// The RETAIN flag: a retained message the broker kept, sent because
    /// of a new subscription.
    pub retain: bool,
    /// The DUP flag: the broker may have sent it before.
    pub dup: bool,
    /// The packet id (QoS 1/2).
    pub packet_id: Option<u16>,
    /// MQTT 5: the PUBLISH's properties (Message Expiry Interval, Payload
    /// Format Indicator, Content Type, Response Topic, Correlation Data,
    /// User Properties, Subscription Identifiers); empty on MQTT 3.1.1.
    #[cfg(feature = "v5")]
    pub properties: Properties<'a>,
}

impl<'a> Message<'a> {
    /// A QoS 0 message with no flags and no properties.
    pub const fn new(topic: &'a str, payload: &'a [u8]) -> Self {
        Self {
            topic,
            payload,
            qos: QoS::AtMostOnce,
            retain: false,
            dup: false,
            packet_id: None,
            #[cfg(feature = "v5")]
            properties: Properties::EMPTY,
        }
    }
}

impl<'a> From<Publish<'a>> for Message<'a> {
    fn from(p: Publish<'a>) -> Self {
        Self {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            dup: p.dup,
            packet_id: p.packet_id,
            #[cfg(feature = "v5")]
            properties: Properties::EMPTY,
        }
    }
}

#[cfg(feature = "v5")]
impl<'a> From<v5::Publish<'a>> for Message<'a> {
    fn from(p: v5::Publish<'a>) -> Self {
        Self {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            dup: p.dup,
            packet_id: p.packet_id,
            properties: p.properties,
        }
    }
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
    /// MQTT 5: the broker refused the connection with this CONNACK
    /// reason code (0x80 or above).
    #[cfg(feature = "v5")]
    RefusedV5(ReasonCode),
    /// MQTT 5: the broker sent DISCONNECT with this reason code (0x00 is
    /// a normal disconnection, 0x80 and above an error such as 0x8B
    /// server shutting down or 0x8E session taken over).
    #[cfg(feature = "v5")]
    ServerDisconnect(ReasonCode),
    /// MQTT 5: the broker broke a limit or rule of MQTT 5 that has its
    /// own reason code: 0x93 Receive Maximum exceeded, 0x94 Topic Alias
    /// invalid, 0x95 Packet too large (over the Maximum Packet Size we
    /// advertised, or an AUTH too large for the receive buffer, which
    /// cannot be handled in parts), 0x82 Protocol Error (an AUTH nobody
    /// asked for).
    #[cfg(feature = "v5")]
    Violation(ReasonCode),
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout(kind) => write!(f, "no {kind:?} in time"),
            Self::Malformed(m) => write!(f, "malformed packet from the broker: {m}"),
            Self::Protocol(t) => write!(f, "unexpected {t:?} from the broker"),
            Self::Refused(code) => write!(f, "connection refused: {code}"),
            #[cfg(feature = "v5")]
            Self::RefusedV5(code) => write!(f, "connection refused: {code}"),
            #[cfg(feature = "v5")]
            Self::ServerDisconnect(code) => write!(f, "disconnected by the broker: {code}"),
            #[cfg(feature = "v5")]
            Self::Violation(code) => write!(f, "broker broke an MQTT 5 rule: {code}"),
        }
    }
}

/// An incoming packet too large for the receive buffer (or, on MQTT 5, a
/// PUBLISH whose Topic Alias stands for a topic the session had no room
/// to keep). It was skipped; a QoS 1/2 PUBLISH is still acknowledged, so
/// the broker does not send it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Dropped<'a> {
    /// The whole packet's length in bytes.
    pub len: usize,
    /// Its type (a PUBLISH, unless the broker sent an absurd acknowledgement).
    pub packet_type: PacketType,
    /// A PUBLISH's topic, when its bytes fit in the receive buffer (at
    /// QoS 1 and 2, with its packet id behind it: a topic that ends at
    /// the buffer's end is read past, for the packet id).
    pub topic: Option<&'a str>,
    /// A PUBLISH's QoS.
    pub qos: QoS,
    /// A QoS 1/2 PUBLISH's packet id. When the topic is longer than the
    /// receive buffer, the id is read as it passes behind it, and the
    /// event comes then. `None` only for a buffer too small to hold even
    /// the topic's length (a message that cannot be acknowledged).
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
    /// The length of everything before the payload: fixed header, topic,
    /// packet id, and on MQTT 5 the properties.
    pub header_len: usize,
    /// Which part this is.
    pub part: Part<'a>,
    /// MQTT 5: the PUBLISH's properties, as [`Message::properties`] (read
    /// from the header the receive buffer keeps); empty on MQTT 3.1.1.
    #[cfg(feature = "v5")]
    pub properties: Properties<'a>,
}

impl Stream<'_> {
    /// The whole PUBLISH packet's length on the wire, header included.
    pub fn packet_len(&self) -> usize {
        self.header_len + self.len
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
    Connected(Connected<'a>),
    /// An application message to deliver. Its PUBACK / PUBREC is queued by
    /// the next call on the session, once this event has been consumed.
    Message(Message<'a>),
    /// An outgoing QoS 0 message completed: its PUBLISH was written in
    /// full (to the transport; QoS 0 has no acknowledgement). Until this
    /// event has been polled its bytes stay in the transmit queue, where
    /// `topic` lives.
    Sent {
        /// Its topic.
        topic: &'a str,
    },
    /// An outgoing QoS 1/2 message completed (PUBACK / PUBCOMP received;
    /// on MQTT 5 also a PUBREC with a failure reason code).
    Published {
        /// Its topic.
        topic: &'a str,
        /// Its packet id.
        packet_id: u16,
        /// Its QoS.
        qos: QoS,
        /// MQTT 5: the acknowledgement's outcome. Below 0x80 the broker
        /// took the message (0x10 "no matching subscribers" included);
        /// 0x80 and above it refused it. Always success on MQTT 3.1.1.
        #[cfg(feature = "v5")]
        reason: Reason<'a>,
    },
    /// An outgoing QoS 1/2 message that will never complete: a
    /// clean-session connect discarded it with the rest of the session
    /// (or a broker that kept no session, MQTT-3.2.2-5), or MQTT 5, the
    /// broker's new CONNACK forbids resending it (too large, above its
    /// Maximum QoS, or retained without Retain Available).
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
        /// What the broker granted, one code per filter. On MQTT 5 these
        /// are the SUBACK's reason codes:
        /// [`ReturnCodes::reason_codes`] tells each failure apart.
        codes: ReturnCodes<'a>,
        /// MQTT 5: the SUBACK's properties (Reason String, User
        /// Properties); empty on MQTT 3.1.1.
        #[cfg(feature = "v5")]
        properties: Properties<'a>,
    },
    /// An UNSUBACK for one of our UNSUBSCRIBEs.
    Unsubscribed {
        /// The UNSUBSCRIBE's packet id.
        packet_id: u16,
        /// The filters it removed.
        filters: UnsubscribeFilters<'a>,
        /// MQTT 5: the UNSUBACK's reason codes, one per filter (0x00
        /// success, 0x11 no subscription existed, 0x80 and above
        /// failures), and its properties. On MQTT 3.1.1 the codes are
        /// empty: every filter succeeded.
        #[cfg(feature = "v5")]
        codes: ReturnCodes<'a>,
        /// See `codes`.
        #[cfg(feature = "v5")]
        properties: Properties<'a>,
    },
    /// A PINGRESP.
    Pong,
    /// MQTT 5: an AUTH from the broker, in an enhanced authentication
    /// the CONNECT asked for: reason Continue Authentication, answered
    /// with [`Session::auth`](super::Session::auth) (its Authentication
    /// Data in the properties), or Success at the end of a
    /// re-authentication.
    #[cfg(feature = "v5")]
    Auth(v5::Auth<'a>),
    /// MQTT 5: the broker ended the connection with this DISCONNECT (its
    /// reason code, and properties such as a Reason String or a Server
    /// Reference). As [`Event::Closed`] with
    /// [`Closed::ServerDisconnect`]: close the transport; the session
    /// waits for the next connect.
    #[cfg(feature = "v5")]
    Disconnected(v5::Disconnect<'a>),
    /// A part of a message streamed through the receive buffer.
    Stream(Stream<'a>),
    /// A packet too large for the receive buffer was skipped. The
    /// connection goes on.
    Dropped(Dropped<'a>),
    /// The connection is over: close the transport. Nothing more comes
    /// from this connection; the session waits for the next connect.
    Closed(Closed),
}

/// MQTT 5: the outcome an acknowledgement reported, with its properties
/// (Reason String, User Properties).
#[cfg(feature = "v5")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Reason<'a> {
    /// The reason code: below 0x80 success.
    pub code: ReasonCode,
    /// The packet's properties.
    pub properties: Properties<'a>,
}
