//! Reason codes ([MQTT 5.0 §2.4]) and the list of them SUBACK and UNSUBACK
//! carry.
//!
//! One enum holds every code; which codes a packet may carry is
//! [`ReasonCode::is_valid_for`], the table of §2.4 checked against each
//! packet's own section.
//!
//! [MQTT 5.0 §2.4]: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901031

use core::fmt;

use super::PacketType;
use crate::codec::{EncodeError, Malformed};

macro_rules! reason_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $text:literal;)*) => {
        /// A reason code: the outcome an acknowledgement, a DISCONNECT or an
        /// AUTH reports (§2.4). Codes of 0x80 and above are failures.
        ///
        /// 0x00 has three names in the specification: Success, Normal
        /// disconnection (DISCONNECT) and Granted QoS 0 (SUBACK); see
        /// [`NORMAL_DISCONNECTION`](Self::NORMAL_DISCONNECTION) and
        /// [`GRANTED_QOS_0`](Self::GRANTED_QOS_0).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[repr(u8)]
        pub enum ReasonCode {
            /// 0x00: Success, Normal disconnection or Granted QoS 0.
            #[default]
            Success = 0x00,
            $($(#[$doc])* $name = $value,)*
        }

        impl ReasonCode {
            /// The code for `byte`, or `None` for a value §2.4 does not define.
            pub const fn from_u8(byte: u8) -> Option<Self> {
                Some(match byte {
                    0x00 => Self::Success,
                    $($value => Self::$name,)*
                    _ => return None,
                })
            }

            /// The name the specification gives the code.
            const fn text(self) -> &'static str {
                match self {
                    Self::Success => "success",
                    $(Self::$name => $text,)*
                }
            }
        }
    };
}

reason_codes! {
    /// 0x01: Granted QoS 1 (SUBACK).
    GrantedQoS1 = 0x01, "granted QoS 1";
    /// 0x02: Granted QoS 2 (SUBACK).
    GrantedQoS2 = 0x02, "granted QoS 2";
    /// 0x04: Disconnect with Will Message (DISCONNECT from a client).
    DisconnectWithWillMessage = 0x04, "disconnect with will message";
    /// 0x10: No matching subscribers (PUBACK, PUBREC).
    NoMatchingSubscribers = 0x10, "no matching subscribers";
    /// 0x11: No subscription existed (UNSUBACK).
    NoSubscriptionExisted = 0x11, "no subscription existed";
    /// 0x18: Continue authentication (AUTH).
    ContinueAuthentication = 0x18, "continue authentication";
    /// 0x19: Re-authenticate (AUTH).
    ReAuthenticate = 0x19, "re-authenticate";
    /// 0x80: Unspecified error.
    UnspecifiedError = 0x80, "unspecified error";
    /// 0x81: Malformed Packet.
    MalformedPacket = 0x81, "malformed packet";
    /// 0x82: Protocol Error.
    ProtocolError = 0x82, "protocol error";
    /// 0x83: Implementation specific error.
    ImplementationSpecificError = 0x83, "implementation specific error";
    /// 0x84: Unsupported Protocol Version (CONNACK).
    UnsupportedProtocolVersion = 0x84, "unsupported protocol version";
    /// 0x85: Client Identifier not valid (CONNACK).
    ClientIdentifierNotValid = 0x85, "client identifier not valid";
    /// 0x86: Bad User Name or Password (CONNACK).
    BadUserNameOrPassword = 0x86, "bad user name or password";
    /// 0x87: Not authorized.
    NotAuthorized = 0x87, "not authorized";
    /// 0x88: Server unavailable (CONNACK).
    ServerUnavailable = 0x88, "server unavailable";
    /// 0x89: Server busy.
    ServerBusy = 0x89, "server busy";
    /// 0x8A: Banned (CONNACK).
    Banned = 0x8a, "banned";
    /// 0x8B: Server shutting down (DISCONNECT).
    ServerShuttingDown = 0x8b, "server shutting down";
    /// 0x8C: Bad authentication method (CONNACK).
    BadAuthenticationMethod = 0x8c, "bad authentication method";
    /// 0x8D: Keep Alive timeout (DISCONNECT).
    KeepAliveTimeout = 0x8d, "keep alive timeout";
    /// 0x8E: Session taken over (DISCONNECT).
    SessionTakenOver = 0x8e, "session taken over";
    /// 0x8F: Topic Filter invalid.
    TopicFilterInvalid = 0x8f, "topic filter invalid";
    /// 0x90: Topic Name invalid.
    TopicNameInvalid = 0x90, "topic name invalid";
    /// 0x91: Packet Identifier in use.
    PacketIdentifierInUse = 0x91, "packet identifier in use";
    /// 0x92: Packet Identifier not found (PUBREL, PUBCOMP).
    PacketIdentifierNotFound = 0x92, "packet identifier not found";
    /// 0x93: Receive Maximum exceeded (DISCONNECT).
    ReceiveMaximumExceeded = 0x93, "receive maximum exceeded";
    /// 0x94: Topic Alias invalid (DISCONNECT).
    TopicAliasInvalid = 0x94, "topic alias invalid";
    /// 0x95: Packet too large.
    PacketTooLarge = 0x95, "packet too large";
    /// 0x96: Message rate too high (DISCONNECT).
    MessageRateTooHigh = 0x96, "message rate too high";
    /// 0x97: Quota exceeded.
    QuotaExceeded = 0x97, "quota exceeded";
    /// 0x98: Administrative action (DISCONNECT).
    AdministrativeAction = 0x98, "administrative action";
    /// 0x99: Payload format invalid.
    PayloadFormatInvalid = 0x99, "payload format invalid";
    /// 0x9A: Retain not supported.
    RetainNotSupported = 0x9a, "retain not supported";
    /// 0x9B: QoS not supported.
    QoSNotSupported = 0x9b, "QoS not supported";
    /// 0x9C: Use another server.
    UseAnotherServer = 0x9c, "use another server";
    /// 0x9D: Server moved.
    ServerMoved = 0x9d, "server moved";
    /// 0x9E: Shared Subscriptions not supported.
    SharedSubscriptionsNotSupported = 0x9e, "shared subscriptions not supported";
    /// 0x9F: Connection rate exceeded.
    ConnectionRateExceeded = 0x9f, "connection rate exceeded";
    /// 0xA0: Maximum connect time (DISCONNECT).
    MaximumConnectTime = 0xa0, "maximum connect time";
    /// 0xA1: Subscription Identifiers not supported.
    SubscriptionIdentifiersNotSupported = 0xa1, "subscription identifiers not supported";
    /// 0xA2: Wildcard Subscriptions not supported.
    WildcardSubscriptionsNotSupported = 0xa2, "wildcard subscriptions not supported";
}

impl ReasonCode {
    /// 0x00 in a DISCONNECT: Normal disconnection.
    pub const NORMAL_DISCONNECTION: Self = Self::Success;

    /// The reason code of the DISCONNECT a receiver sends before closing
    /// the connection over `fault` (§4.13.1): 0x82 Protocol Error for what
    /// the specification calls a Protocol Error (a property given twice,
    /// a property value out of range, a Subscription Identifier of 0,
    /// Authentication Data or an AUTH without a method, a Retain Handling
    /// of 3, No Local on a shared subscription, a Maximum QoS of 3, a
    /// SUBSCRIBE or UNSUBSCRIBE without filters, a PUBLISH without a topic
    /// or Topic Alias), 0x94 Topic Alias invalid for a
    /// Topic Alias of 0 (§3.3.2.3.4), 0x81 Malformed Packet for the rest.
    ///
    /// ```
    /// use minimqtt::codec::Malformed;
    /// use minimqtt::codec::v5::ReasonCode;
    ///
    /// let twice = Malformed::DuplicateProperty(0x21);
    /// assert_eq!(ReasonCode::for_malformed(twice), ReasonCode::ProtocolError);
    /// let cut = Malformed::Truncated;
    /// assert_eq!(ReasonCode::for_malformed(cut), ReasonCode::MalformedPacket);
    /// ```
    pub const fn for_malformed(fault: Malformed) -> Self {
        match fault {
            Malformed::PropertyValue(super::properties::id::TOPIC_ALIAS) => Self::TopicAliasInvalid,
            // A PUBLISH with neither a topic nor a Topic Alias (§3.3.2.1).
            Malformed::TopicName(crate::topic::TopicError::Empty) => Self::ProtocolError,
            Malformed::DuplicateProperty(_)
            | Malformed::PropertyValue(_)
            | Malformed::SubscriptionIdentifier
            | Malformed::AuthenticationData
            | Malformed::AuthenticationMethod
            // QoS 3 as a Maximum QoS (§3.8.3.1); SUBSCRIBE or UNSUBSCRIBE
            // without a filter (MQTT-3.8.3-2, MQTT-3.10.3-2).
            | Malformed::RequestedQoS
            | Malformed::NoFilters
            | Malformed::RetainHandling
            | Malformed::SharedNoLocal => Self::ProtocolError,
            _ => Self::MalformedPacket,
        }
    }
    /// 0x00 in a SUBACK: Granted QoS 0.
    pub const GRANTED_QOS_0: Self = Self::Success;

    /// The code's byte on the wire.
    pub const fn to_u8(self) -> u8 {
        self as u8
    }

    /// Whether the code reports a failure: 0x80 and above.
    pub const fn is_error(self) -> bool {
        self as u8 >= 0x80
    }

    /// Whether a CONNACK refusal with this code will refuse a retry with
    /// the same CONNECT too: everything but the codes that say the
    /// server is busy, unavailable, shutting down, over quota, or asks to
    /// be retried elsewhere or later.
    pub const fn is_permanent_refusal(self) -> bool {
        self.is_error()
            && !matches!(
                self,
                Self::UnspecifiedError
                    | Self::ImplementationSpecificError
                    | Self::ServerUnavailable
                    | Self::ServerBusy
                    | Self::QuotaExceeded
                    | Self::ConnectionRateExceeded
                    | Self::UseAnotherServer
                    | Self::ServerMoved
            )
    }

    /// Whether a packet of `packet_type` may carry this code (§2.4 and the
    /// packet's own section). Packets without a reason code (CONNECT,
    /// PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, PINGRESP) allow none.
    ///
    /// ```
    /// use minimqtt::codec::v5::{PacketType, ReasonCode};
    ///
    /// assert!(ReasonCode::NoMatchingSubscribers.is_valid_for(PacketType::PubAck));
    /// assert!(!ReasonCode::NoMatchingSubscribers.is_valid_for(PacketType::PubRel));
    /// ```
    pub const fn is_valid_for(self, packet_type: PacketType) -> bool {
        use ReasonCode as R;
        match packet_type {
            PacketType::ConnAck => matches!(
                self,
                R::Success
                    | R::UnspecifiedError
                    | R::MalformedPacket
                    | R::ProtocolError
                    | R::ImplementationSpecificError
                    | R::UnsupportedProtocolVersion
                    | R::ClientIdentifierNotValid
                    | R::BadUserNameOrPassword
                    | R::NotAuthorized
                    | R::ServerUnavailable
                    | R::ServerBusy
                    | R::Banned
                    | R::BadAuthenticationMethod
                    | R::TopicNameInvalid
                    | R::PacketTooLarge
                    | R::QuotaExceeded
                    | R::PayloadFormatInvalid
                    | R::RetainNotSupported
                    | R::QoSNotSupported
                    | R::UseAnotherServer
                    | R::ServerMoved
                    | R::ConnectionRateExceeded
            ),
            PacketType::PubAck | PacketType::PubRec => matches!(
                self,
                R::Success
                    | R::NoMatchingSubscribers
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicNameInvalid
                    | R::PacketIdentifierInUse
                    | R::QuotaExceeded
                    | R::PayloadFormatInvalid
            ),
            PacketType::PubRel | PacketType::PubComp => {
                matches!(self, R::Success | R::PacketIdentifierNotFound)
            }
            PacketType::SubAck => matches!(
                self,
                R::Success
                    | R::GrantedQoS1
                    | R::GrantedQoS2
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicFilterInvalid
                    | R::PacketIdentifierInUse
                    | R::QuotaExceeded
                    | R::SharedSubscriptionsNotSupported
                    | R::SubscriptionIdentifiersNotSupported
                    | R::WildcardSubscriptionsNotSupported
            ),
            PacketType::UnsubAck => matches!(
                self,
                R::Success
                    | R::NoSubscriptionExisted
                    | R::UnspecifiedError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::TopicFilterInvalid
                    | R::PacketIdentifierInUse
            ),
            PacketType::Disconnect => matches!(
                self,
                R::Success
                    | R::DisconnectWithWillMessage
                    | R::UnspecifiedError
                    | R::MalformedPacket
                    | R::ProtocolError
                    | R::ImplementationSpecificError
                    | R::NotAuthorized
                    | R::ServerBusy
                    | R::ServerShuttingDown
                    | R::KeepAliveTimeout
                    | R::SessionTakenOver
                    | R::TopicFilterInvalid
                    | R::TopicNameInvalid
                    | R::ReceiveMaximumExceeded
                    | R::TopicAliasInvalid
                    | R::PacketTooLarge
                    | R::MessageRateTooHigh
                    | R::QuotaExceeded
                    | R::AdministrativeAction
                    | R::PayloadFormatInvalid
                    | R::RetainNotSupported
                    | R::QoSNotSupported
                    | R::UseAnotherServer
                    | R::ServerMoved
                    | R::SharedSubscriptionsNotSupported
                    | R::ConnectionRateExceeded
                    | R::MaximumConnectTime
                    | R::SubscriptionIdentifiersNotSupported
                    | R::WildcardSubscriptionsNotSupported
            ),
            PacketType::Auth => matches!(
                self,
                R::Success | R::ContinueAuthentication | R::ReAuthenticate
            ),
            PacketType::Connect
            | PacketType::Publish
            | PacketType::Subscribe
            | PacketType::Unsubscribe
            | PacketType::PingReq
            | PacketType::PingResp => false,
        }
    }

    /// The code `byte` in a packet of `packet_type`, or why it cannot be.
    pub(crate) const fn parse(byte: u8, packet_type: PacketType) -> Result<Self, Malformed> {
        match Self::from_u8(byte) {
            Some(code) if code.is_valid_for(packet_type) => Ok(code),
            _ => Err(Malformed::ReasonCode(byte)),
        }
    }

    /// Whether a client may send this code in a DISCONNECT: MQTT 5's
    /// Table 3-10 leaves the others (Server busy, Session taken over, ...)
    /// to the server.
    pub(crate) const fn client_disconnect(self) -> bool {
        matches!(
            self,
            Self::Success
                | Self::DisconnectWithWillMessage
                | Self::UnspecifiedError
                | Self::MalformedPacket
                | Self::ProtocolError
                | Self::ImplementationSpecificError
                | Self::TopicNameInvalid
                | Self::ReceiveMaximumExceeded
                | Self::TopicAliasInvalid
                | Self::PacketTooLarge
                | Self::MessageRateTooHigh
                | Self::QuotaExceeded
                | Self::AdministrativeAction
                | Self::PayloadFormatInvalid
        )
    }

    /// The encoder's check of the same.
    pub(crate) const fn check(self, packet_type: PacketType) -> Result<(), EncodeError> {
        if self.is_valid_for(packet_type) {
            Ok(())
        } else {
            Err(EncodeError::ReasonCode(self as u8))
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// The reason codes of a SUBACK or UNSUBACK, one per topic filter of the
/// request, in order: a caller's slice when encoding, or the validated wire
/// bytes when decoding.
#[derive(Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReasonCodes<'a>(Codes<'a>);

#[derive(Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Codes<'a> {
    Wire(&'a [u8]),
    List(&'a [ReasonCode]),
}

impl<'a> ReasonCodes<'a> {
    /// Codes to encode.
    pub const fn new(list: &'a [ReasonCode]) -> Self {
        Self(Codes::List(list))
    }

    /// The codes in packet order.
    pub fn iter(&self) -> ReasonCodesIter<'a> {
        ReasonCodesIter(self.0)
    }

    /// The number of codes.
    pub const fn len(&self) -> usize {
        match self.0 {
            Codes::Wire(bytes) => bytes.len(),
            Codes::List(list) => list.len(),
        }
    }

    /// Whether there are none (never true of a decoded packet).
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The codes' wire bytes: those of a decoded list, or `None` for a
    /// caller's list.
    pub(crate) const fn wire(&self) -> Option<&'a [u8]> {
        match self.0 {
            Codes::Wire(bytes) => Some(bytes),
            Codes::List(_) => None,
        }
    }

    /// Checks every byte of a decoded list against `packet_type`.
    pub(crate) fn parse(bytes: &'a [u8], packet_type: PacketType) -> Result<Self, Malformed> {
        if bytes.is_empty() {
            return Err(Malformed::NoFilters);
        }
        for &byte in bytes {
            ReasonCode::parse(byte, packet_type)?;
        }
        Ok(Self(Codes::Wire(bytes)))
    }

    /// The encoder's check: at least one code, each valid for `packet_type`.
    pub(crate) fn check(&self, packet_type: PacketType) -> Result<(), EncodeError> {
        if self.is_empty() {
            return Err(EncodeError::NoFilters);
        }
        self.iter().try_for_each(|code| code.check(packet_type))
    }
}

impl<'a> IntoIterator for ReasonCodes<'a> {
    type Item = ReasonCode;
    type IntoIter = ReasonCodesIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for ReasonCodes<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for ReasonCodes<'_> {}

impl fmt::Debug for ReasonCodes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over [`ReasonCodes`].
#[derive(Clone)]
pub struct ReasonCodesIter<'a>(Codes<'a>);

impl Iterator for ReasonCodesIter<'_> {
    type Item = ReasonCode;

    fn next(&mut self) -> Option<ReasonCode> {
        match &mut self.0 {
            Codes::List(list) => {
                let (first, rest) = list.split_first()?;
                *list = rest;
                Some(*first)
            }
            // Checked when decoded; an undefined byte cannot occur, and
            // would end the iteration rather than panic.
            Codes::Wire(bytes) => {
                let (first, rest) = bytes.split_first()?;
                *bytes = rest;
                ReasonCode::from_u8(*first)
            }
        }
    }
}
