//! The codec's error values, and the one place nom's errors are translated.

use core::fmt;

use nom::error::{ErrorKind, ParseError};

use crate::topic::TopicError;

/// Why a packet can never decode, whatever bytes follow.
///
/// The receiver of a malformed packet must close the network connection
/// ([MQTT 3.1.1 §4.8]).
///
/// [MQTT 3.1.1 §4.8]: https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718113
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Malformed {
    /// The packet type is one of the reserved values 0 or 15.
    PacketType,
    /// The fixed-header flags are wrong for the packet type (§2.2.2), or a
    /// QoS 0 PUBLISH has DUP set (§3.3.1.1).
    HeaderFlags,
    /// The remaining length has a fifth byte (§2.2.3).
    RemainingLength,
    /// A QoS of 3 in a PUBLISH or a will (§3.3.1.2).
    QoS,
    /// A packet identifier of 0 where one is required (§2.3.1).
    PacketId,
    /// A string is not well-formed UTF-8 (§1.5.3).
    Utf8,
    /// A string contains U+0000 (§1.5.3).
    NulCharacter,
    /// The topic name of a PUBLISH or a will is invalid (§4.7).
    TopicName(TopicError),
    /// A topic filter of a SUBSCRIBE or UNSUBSCRIBE is invalid (§4.7).
    TopicFilter(TopicError),
    /// A SUBSCRIBE or UNSUBSCRIBE carries no topic filter (§3.8.3, §3.10.3),
    /// or a SUBACK no return code.
    NoFilters,
    /// A SUBSCRIBE's requested-QoS byte has reserved bits set or QoS 3 (§3.8.3.1).
    RequestedQoS,
    /// A SUBACK return code is not 0x00, 0x01, 0x02 or 0x80 (§3.9.3).
    SubAckReturnCode,
    /// The CONNACK acknowledge flags have reserved bits set (§3.2.2.1).
    ConnAckFlags,
    /// The CONNACK return code is a reserved value (§3.2.2.3).
    ConnectReturnCode,
    /// A refusing CONNACK has session present set (§3.2.2.2).
    SessionPresent,
    /// The CONNECT protocol name is not "MQTT" (§3.1.2.1).
    ProtocolName,
    /// The CONNECT protocol level is not 4 (§3.1.2.2).
    ProtocolLevel,
    /// The CONNECT flags are inconsistent: the reserved bit is set, will
    /// fields without the will flag, or a password without a user name (§3.1.2).
    ConnectFlags,
    /// The body ends before its fields do.
    Truncated,
    /// Bytes are left over after the last field of the body.
    TrailingBytes,
    /// MQTT 5: a Variable Byte Integer (a property length, a property
    /// identifier, a Subscription Identifier or the remaining length) does
    /// not use the fewest bytes that can hold its value (§1.5.5,
    /// MQTT-1.5.5-1).
    #[cfg(feature = "v5")]
    NonMinimalVarint,
    /// MQTT 5: a Variable Byte Integer inside the body (a property length,
    /// a property identifier or a Subscription Identifier) has a fifth byte
    /// (§1.5.5).
    #[cfg(feature = "v5")]
    VariableByteInteger,
    /// MQTT 5: the property length runs past the end of the packet, or a
    /// property runs past the end of its property list (§2.2.2.1).
    #[cfg(feature = "v5")]
    PropertyLength,
    /// MQTT 5: a property identifier the specification does not define
    /// (§2.2.2.2); 255 stands for one above 255. (A byte, not the `u32` a
    /// Variable Byte Integer can hold: a wider value would widen every
    /// `Malformed` and slow the 3.1.1 decoder's hot path.)
    #[cfg(feature = "v5")]
    UnknownProperty(u8),
    /// MQTT 5: a property that may appear only once appears again (every
    /// property but User Property, and Subscription Identifier in PUBLISH).
    #[cfg(feature = "v5")]
    DuplicateProperty(u8),
    /// MQTT 5: a property this packet (or a will) may not carry (§2.2.2.2).
    #[cfg(feature = "v5")]
    PropertyNotAllowed(u8),
    /// MQTT 5: a property value out of its range: a boolean byte other than
    /// 0 or 1, Maximum QoS above 1, or a Receive Maximum, Maximum Packet
    /// Size or Topic Alias of 0.
    #[cfg(feature = "v5")]
    PropertyValue(u8),
    /// MQTT 5: a Subscription Identifier of 0 (§3.3.2.3.8, §3.8.2.1.2).
    #[cfg(feature = "v5")]
    SubscriptionIdentifier,
    /// MQTT 5: a Response Topic that is not a valid topic name, such as one
    /// with a wildcard (§3.3.2.3.5, MQTT-3.3.2-14).
    #[cfg(feature = "v5")]
    ResponseTopic(TopicError),
    /// MQTT 5: a User Property whose name or value is not a well-formed
    /// UTF-8 string without U+0000 (§1.5.7).
    #[cfg(feature = "v5")]
    StringPair,
    /// MQTT 5: a reason code this packet type may not carry (§2.4 and the
    /// packet's own section).
    #[cfg(feature = "v5")]
    ReasonCode(u8),
    /// MQTT 5: the CONNECT protocol version is not 5 (§3.1.2.2).
    #[cfg(feature = "v5")]
    ProtocolVersion,
    /// MQTT 5: the reserved bits 6 and 7 of a subscription's options are
    /// set (§3.8.3.1).
    #[cfg(feature = "v5")]
    SubscriptionOptions,
    /// MQTT 5: a subscription's Retain Handling is the reserved value 3
    /// (§3.8.3.1).
    #[cfg(feature = "v5")]
    RetainHandling,
    /// MQTT 5: No Local set on a shared subscription (§3.8.3.1,
    /// MQTT-3.8.3-4).
    #[cfg(feature = "v5")]
    SharedNoLocal,
    /// MQTT 5: Authentication Data without an Authentication Method
    /// (§3.1.2.11.10, §3.2.2.3.18, §3.15.2.2.3).
    #[cfg(feature = "v5")]
    AuthenticationData,
    /// MQTT 5: an AUTH without an Authentication Method (§3.15.2.2.2),
    /// other than the short form (reason 0x00, no properties).
    #[cfg(feature = "v5")]
    AuthenticationMethod,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::PacketType => "reserved packet type",
            Self::HeaderFlags => "invalid fixed-header flags",
            Self::RemainingLength => "remaining length longer than 4 bytes",
            Self::QoS => "QoS 3",
            Self::PacketId => "packet identifier 0",
            Self::Utf8 => "string is not UTF-8",
            Self::NulCharacter => "string contains U+0000",
            Self::TopicName(e) => return write!(f, "invalid topic name: {e}"),
            Self::TopicFilter(e) => return write!(f, "invalid topic filter: {e}"),
            Self::NoFilters => "empty topic filter or return code list",
            Self::RequestedQoS => "invalid requested QoS",
            Self::SubAckReturnCode => "invalid SUBACK return code",
            Self::ConnAckFlags => "reserved CONNACK flags set",
            Self::ConnectReturnCode => "reserved CONNACK return code",
            Self::SessionPresent => "session present set on a refused connection",
            Self::ProtocolName => "protocol name is not MQTT",
            Self::ProtocolLevel => "protocol level is not 4",
            Self::ConnectFlags => "inconsistent CONNECT flags",
            Self::Truncated => "body shorter than its fields",
            Self::TrailingBytes => "trailing bytes after the body",
            #[cfg(feature = "v5")]
            Self::NonMinimalVarint => "variable byte integer longer than it needs to be",
            #[cfg(feature = "v5")]
            Self::VariableByteInteger => "variable byte integer longer than 4 bytes",
            #[cfg(feature = "v5")]
            Self::PropertyLength => "properties run past their length",
            #[cfg(feature = "v5")]
            Self::UnknownProperty(id) => return write!(f, "unknown property {id:#04x}"),
            #[cfg(feature = "v5")]
            Self::DuplicateProperty(id) => return write!(f, "property {id:#04x} repeated"),
            #[cfg(feature = "v5")]
            Self::PropertyNotAllowed(id) => {
                return write!(f, "property {id:#04x} not allowed here");
            }
            #[cfg(feature = "v5")]
            Self::PropertyValue(id) => return write!(f, "property {id:#04x} out of range"),
            #[cfg(feature = "v5")]
            Self::SubscriptionIdentifier => "subscription identifier 0",
            #[cfg(feature = "v5")]
            Self::ResponseTopic(e) => return write!(f, "invalid response topic: {e}"),
            #[cfg(feature = "v5")]
            Self::StringPair => "malformed user property",
            #[cfg(feature = "v5")]
            Self::ReasonCode(code) => {
                return write!(f, "reason code {code:#04x} not allowed here");
            }
            #[cfg(feature = "v5")]
            Self::ProtocolVersion => "protocol version is not 5",
            #[cfg(feature = "v5")]
            Self::SubscriptionOptions => "reserved subscription option bits set",
            #[cfg(feature = "v5")]
            Self::RetainHandling => "retain handling 3",
            #[cfg(feature = "v5")]
            Self::SharedNoLocal => "no local on a shared subscription",
            #[cfg(feature = "v5")]
            Self::AuthenticationData => "authentication data without a method",
            #[cfg(feature = "v5")]
            Self::AuthenticationMethod => "auth without a method",
        };
        f.write_str(what)
    }
}

/// Why [`Packet::decode`](super::Packet::decode) returned no packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DecodeError {
    /// The bytes are a prefix of a packet that may still be valid: read at
    /// least `needed` more bytes and decode again from the same start.
    Incomplete {
        /// The least number of further bytes that could complete the packet.
        needed: usize,
    },
    /// The bytes can never form a valid packet; the connection must be closed.
    Malformed(Malformed),
    /// The packet is well-formed so far but `len` bytes long, more than the
    /// caller's limit. Its length is exact, so the caller can skip it.
    TooLarge {
        /// The length of the whole packet, fixed header included.
        len: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Incomplete { needed } => write!(f, "incomplete packet: need {needed} more bytes"),
            Self::Malformed(why) => write!(f, "malformed packet: {why}"),
            Self::TooLarge { len } => write!(f, "packet of {len} bytes exceeds the limit"),
        }
    }
}

impl From<Malformed> for DecodeError {
    fn from(why: Malformed) -> Self {
        Self::Malformed(why)
    }
}

/// Why a packet could not be encoded. Nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncodeError {
    /// The buffer is shorter than the packet: `needed` bytes are required.
    BufferTooSmall {
        /// The encoded length of the packet.
        needed: usize,
    },
    /// The packet's remaining length would exceed 268,435,455 bytes.
    PacketTooLarge,
    /// A string or binary field is longer than 65,535 bytes.
    StringTooLong,
    /// A string contains U+0000, which MQTT forbids.
    NulCharacter,
    /// The packet identifier is 0, missing where QoS > 0 needs one, or present on QoS 0.
    PacketId,
    /// DUP set on a QoS 0 PUBLISH.
    DupWithQoS0,
    /// The topic name is invalid (§4.7).
    TopicName(TopicError),
    /// A topic filter is invalid (§4.7).
    TopicFilter(TopicError),
    /// A SUBSCRIBE or UNSUBSCRIBE with no filter, or a SUBACK with no return code.
    NoFilters,
    /// A SUBACK return code other than 0x00, 0x01, 0x02 or 0x80.
    ReturnCode,
    /// A password without a user name, which MQTT 3.1.1 forbids (§3.1.2.9).
    PasswordWithoutUsername,
    /// MQTT 5: a property that may appear only once is in the list twice.
    #[cfg(feature = "v5")]
    DuplicateProperty(u8),
    /// MQTT 5: a property this packet (or a will) may not carry.
    #[cfg(feature = "v5")]
    PropertyNotAllowed(u8),
    /// MQTT 5: a property value out of its range (see
    /// [`Malformed::PropertyValue`]).
    #[cfg(feature = "v5")]
    PropertyValue(u8),
    /// MQTT 5: a Subscription Identifier of 0 or above 268,435,455.
    #[cfg(feature = "v5")]
    SubscriptionIdentifier,
    /// MQTT 5: a Response Topic that is not a valid topic name.
    #[cfg(feature = "v5")]
    ResponseTopic(TopicError),
    /// MQTT 5: a reason code this packet type may not carry.
    #[cfg(feature = "v5")]
    ReasonCode(u8),
    /// MQTT 5: No Local set on a shared subscription (MQTT-3.8.3-4).
    #[cfg(feature = "v5")]
    SharedNoLocal,
    /// Session present on a CONNACK that refuses the connection
    /// (MQTT-3.2.2-4; MQTT 5: MQTT-3.2.2-6).
    SessionPresent,
    /// MQTT 3.1.1: an empty client id with clean session off
    /// (MQTT-3.1.3-7).
    EmptyClientId,
    /// MQTT 5: Authentication Data without an Authentication Method.
    #[cfg(feature = "v5")]
    AuthenticationData,
    /// MQTT 5: an AUTH without an Authentication Method, other than the
    /// short form (reason 0x00, no properties).
    #[cfg(feature = "v5")]
    AuthenticationMethod,
    /// MQTT 5: a Payload Format Indicator of 1 (UTF-8) on a payload, or a
    /// will's, that is not well-formed UTF-8 (§3.3.2.3.2, §3.1.3.2.3).
    #[cfg(feature = "v5")]
    PayloadFormat,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { needed } => write!(f, "buffer too small: need {needed} bytes"),
            Self::PacketTooLarge => f.write_str("packet longer than MQTT allows"),
            Self::StringTooLong => f.write_str("string longer than 65535 bytes"),
            Self::NulCharacter => f.write_str("string contains U+0000"),
            Self::PacketId => f.write_str("packet identifier missing, zero or not allowed"),
            Self::DupWithQoS0 => f.write_str("DUP set on a QoS 0 message"),
            Self::TopicName(e) => write!(f, "invalid topic name: {e}"),
            Self::TopicFilter(e) => write!(f, "invalid topic filter: {e}"),
            Self::NoFilters => f.write_str("no topic filter"),
            Self::ReturnCode => f.write_str("invalid SUBACK return code"),
            Self::PasswordWithoutUsername => f.write_str("password without user name"),
            #[cfg(feature = "v5")]
            Self::DuplicateProperty(id) => write!(f, "property {id:#04x} repeated"),
            #[cfg(feature = "v5")]
            Self::PropertyNotAllowed(id) => write!(f, "property {id:#04x} not allowed here"),
            #[cfg(feature = "v5")]
            Self::PropertyValue(id) => write!(f, "property {id:#04x} out of range"),
            #[cfg(feature = "v5")]
            Self::SubscriptionIdentifier => f.write_str("subscription identifier out of range"),
            #[cfg(feature = "v5")]
            Self::ResponseTopic(e) => write!(f, "invalid response topic: {e}"),
            #[cfg(feature = "v5")]
            Self::ReasonCode(code) => write!(f, "reason code {code:#04x} not allowed here"),
            #[cfg(feature = "v5")]
            Self::SharedNoLocal => f.write_str("no local on a shared subscription"),
            Self::SessionPresent => f.write_str("session present on a refused connection"),
            Self::EmptyClientId => f.write_str("empty client id without clean session"),
            #[cfg(feature = "v5")]
            Self::AuthenticationData => f.write_str("authentication data without a method"),
            #[cfg(feature = "v5")]
            Self::AuthenticationMethod => f.write_str("auth without a method"),
            #[cfg(feature = "v5")]
            Self::PayloadFormat => f.write_str("payload marked UTF-8 is not UTF-8"),
        }
    }
}

/// nom's error type inside a framed body: running out of input is
/// [`Malformed::Truncated`], because the body's length is already exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyError(pub(crate) Malformed);

impl<I> ParseError<I> for BodyError {
    fn from_error_kind(_: I, _: ErrorKind) -> Self {
        Self(Malformed::Truncated)
    }

    fn append(_: I, _: ErrorKind, other: Self) -> Self {
        other
    }
}

pub(crate) type BodyResult<'a, T> = nom::IResult<&'a [u8], T, BodyError>;

/// Fails the parse with `why`.
pub(crate) fn fail<T>(why: Malformed) -> Result<T, nom::Err<BodyError>> {
    Err(nom::Err::Failure(BodyError(why)))
}

/// Turns a body parse into the codec's result: leftover input is
/// [`Malformed::TrailingBytes`], and nom's `Incomplete`, which complete
/// parsers do not produce, can never leak out as "need more".
#[inline]
pub(crate) fn complete<T>(result: BodyResult<'_, T>) -> Result<T, DecodeError> {
    match result {
        Ok(([], value)) => Ok(value),
        Ok(_) => Err(Malformed::TrailingBytes.into()),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e.0.into()),
        Err(nom::Err::Incomplete(_)) => Err(Malformed::Truncated.into()),
    }
}

impl core::error::Error for Malformed {}

impl core::error::Error for DecodeError {}

impl core::error::Error for EncodeError {}
