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
