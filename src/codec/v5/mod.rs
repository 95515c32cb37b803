//! The MQTT 5.0 wire format: every control packet, both directions, with
//! properties and reason codes ([OASIS MQTT Version 5.0]).
//!
//! It keeps the contract of the MQTT 3.1.1 [codec](crate::codec):
//! decoding borrows from the caller's buffer (topics, payloads, filter and
//! reason code lists, and [`Properties`] are views of its bytes, read with
//! iterators), nothing is allocated, [`Packet::decode`] never panics and
//! tells "read more" ([`DecodeError::Incomplete`]) from "close the
//! connection" ([`DecodeError::Malformed`]) and "too large for you"
//! ([`DecodeError::TooLarge`]), and `encode` writes nothing unless the
//! whole packet is valid and fits.
//!
//! MQTT 5 asks more of a decoder than 3.1.1, and this one checks it all:
//! Variable Byte Integers in their fewest bytes, every property allowed in
//! its packet and present at most once (unless it may repeat), property
//! values in range, and reason codes that the packet may carry. Each
//! violation has its own [`Malformed`] value. The encoder applies the same
//! rules, so whatever it writes decodes.
//!
//! A packet with nothing to say writes its short form: a PUBACK, PUBREC,
//! PUBREL or PUBCOMP of reason 0x00 without properties has a remaining
//! length of 2, one with another reason but no properties 3, and a
//! DISCONNECT or AUTH of reason 0x00 without properties 0 (§3.4.2.1,
//! §3.14.2.1, §3.15.2.1). The decoder takes both forms.
//!
//! ```
//! use minimqtt::codec::QoS;
//! use minimqtt::codec::v5::{Packet, Properties, Property, Publish};
//!
//! let props = [
//!     Property::MessageExpiryInterval(60),
//!     Property::UserProperty("unit", "celsius"),
//! ];
//! let publish = Publish {
//!     dup: false,
//!     qos: QoS::AtLeastOnce,
//!     retain: false,
//!     topic: "sensor/0001/temp",
//!     packet_id: Some(7),
//!     properties: Properties::new(&props),
//!     payload: b"21.5",
//! };
//! let mut buf = [0u8; 64];
//! let n = Packet::Publish(publish).encode(&mut buf).unwrap();
//! let (decoded, used) = Packet::decode(&buf[..n]).unwrap();
//! assert_eq!(used, n);
//! let Packet::Publish(received) = decoded else { unreachable!() };
//! assert_eq!(received, publish);
//! assert_eq!(received.properties.message_expiry_interval(), Some(60));
//! ```
//!
//! [OASIS MQTT Version 5.0]: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html

mod connect;
mod control;
mod properties;
mod publish;
mod reason;
mod subscribe;
mod varint;

pub use connect::{ConnAck, Connect, PROTOCOL_VERSION, Will};
pub use control::{Auth, Disconnect};
pub(crate) use properties::id::{AUTHENTICATION_METHOD, SERVER_REFERENCE, SESSION_EXPIRY_INTERVAL};
pub use properties::{Properties, PropertiesIter, Property};
pub(crate) use publish::not_found;
pub use publish::{PubAck, PubComp, PubRec, PubRel, Publish};
pub use reason::{ReasonCode, ReasonCodes, ReasonCodesIter};
pub use subscribe::{
    RetainHandling, SubAck, Subscribe, SubscribeFilters, SubscribeIter, Subscription,
    SubscriptionOptions, UnsubAck, Unsubscribe,
};

pub use super::{DecodeError, EncodeError, MAX_PACKET_LEN, Malformed, QoS};

use super::error::BodyResult;
use super::{FixedHeader, MAX_REMAINING_LENGTH, Writer, packet_len, reserve};
use varint::VarintError;

/// A body parse: the bytes after the value, and the value.
pub(crate) type Parsed<'a, T> = Result<(&'a [u8], T), Malformed>;

/// A parse of the 3.1.1 codec's (strings, packet ids) in the v5 style.
pub(crate) fn shared<'a, T>(result: BodyResult<'a, T>) -> Parsed<'a, T> {
    match result {
        Ok(v) => Ok(v),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e.0),
        Err(nom::Err::Incomplete(_)) => Err(Malformed::Truncated),
    }
}

/// One byte of a framed body.
pub(crate) fn byte(input: &[u8]) -> Parsed<'_, u8> {
    match input.split_first() {
        Some((&b, rest)) => Ok((rest, b)),
        None => Err(Malformed::Truncated),
    }
}

/// A two-byte integer of a framed body.
pub(crate) fn two(input: &[u8]) -> Parsed<'_, u16> {
    match input.split_first_chunk::<2>() {
        Some((v, rest)) => Ok((rest, u16::from_be_bytes(*v))),
        None => Err(Malformed::Truncated),
    }
}

/// The end of a body: nothing may be left.
pub(crate) fn end<T>(rest: &[u8], value: T) -> Result<T, Malformed> {
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(Malformed::TrailingBytes)
    }
}

/// The kind of an MQTT 5 control packet: MQTT 3.1.1's fourteen and AUTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum PacketType {
    /// Client request to connect.
    Connect = 1,
    /// Connect acknowledgement.
    ConnAck = 2,
    /// Publish message.
    Publish = 3,
    /// Publish acknowledgement (QoS 1).
    PubAck = 4,
    /// Publish received (QoS 2, part 1).
    PubRec = 5,
    /// Publish release (QoS 2, part 2).
    PubRel = 6,
    /// Publish complete (QoS 2, part 3).
    PubComp = 7,
    /// Subscribe request.
    Subscribe = 8,
    /// Subscribe acknowledgement.
    SubAck = 9,
    /// Unsubscribe request.
    Unsubscribe = 10,
    /// Unsubscribe acknowledgement.
    UnsubAck = 11,
    /// Ping request.
    PingReq = 12,
    /// Ping response.
    PingResp = 13,
    /// Disconnect notification, from either side.
    Disconnect = 14,
    /// Authentication exchange.
    Auth = 15,
}

impl PacketType {
    /// Byte 0 of a packet of this type: the flags are fixed for every type
    /// but PUBLISH (§2.1.3).
    const fn first_byte(self, flags: u8) -> u8 {
        (self as u8) << 4 | (flags & 0x0f)
    }
}

impl PacketType {
    /// The same type in MQTT 3.1.1, which has every one but AUTH.
    pub(crate) const fn to_v3(self) -> Option<super::PacketType> {
        use super::PacketType as V3;
        Some(match self {
            Self::Connect => V3::Connect,
            Self::ConnAck => V3::ConnAck,
            Self::Publish => V3::Publish,
            Self::PubAck => V3::PubAck,
            Self::PubRec => V3::PubRec,
            Self::PubRel => V3::PubRel,
            Self::PubComp => V3::PubComp,
            Self::Subscribe => V3::Subscribe,
            Self::SubAck => V3::SubAck,
            Self::Unsubscribe => V3::Unsubscribe,
            Self::UnsubAck => V3::UnsubAck,
            Self::PingReq => V3::PingReq,
            Self::PingResp => V3::PingResp,
            Self::Disconnect => V3::Disconnect,
            Self::Auth => return None,
        })
    }
}

impl From<super::PacketType> for PacketType {
    fn from(t: super::PacketType) -> Self {
        match t {
            super::PacketType::Connect => Self::Connect,
            super::PacketType::ConnAck => Self::ConnAck,
            super::PacketType::Publish => Self::Publish,
            super::PacketType::PubAck => Self::PubAck,
            super::PacketType::PubRec => Self::PubRec,
            super::PacketType::PubRel => Self::PubRel,
            super::PacketType::PubComp => Self::PubComp,
            super::PacketType::Subscribe => Self::Subscribe,
            super::PacketType::SubAck => Self::SubAck,
            super::PacketType::Unsubscribe => Self::Unsubscribe,
            super::PacketType::UnsubAck => Self::UnsubAck,
            super::PacketType::PingReq => Self::PingReq,
            super::PacketType::PingResp => Self::PingResp,
            super::PacketType::Disconnect => Self::Disconnect,
        }
    }
}

/// Any MQTT 5 control packet, borrowing from the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Packet<'a> {
    /// CONNECT (§3.1).
    Connect(Connect<'a>),
    /// CONNACK (§3.2).
    ConnAck(ConnAck<'a>),
    /// PUBLISH (§3.3).
    Publish(Publish<'a>),
    /// PUBACK (§3.4).
    PubAck(PubAck<'a>),
    /// PUBREC (§3.5).
    PubRec(PubRec<'a>),
    /// PUBREL (§3.6).
    PubRel(PubRel<'a>),
    /// PUBCOMP (§3.7).
    PubComp(PubComp<'a>),
    /// SUBSCRIBE (§3.8).
    Subscribe(Subscribe<'a>),
    /// SUBACK (§3.9).
    SubAck(SubAck<'a>),
    /// UNSUBSCRIBE (§3.10).
    Unsubscribe(Unsubscribe<'a>),
    /// UNSUBACK (§3.11).
    UnsubAck(UnsubAck<'a>),
    /// PINGREQ (§3.12).
    PingReq,
    /// PINGRESP (§3.13).
    PingResp,
    /// DISCONNECT (§3.14).
    Disconnect(Disconnect<'a>),
    /// AUTH (§3.15).
    Auth(Auth<'a>),
}

impl<'a> Packet<'a> {
    /// Decodes one packet from the start of `buf`, returning it and the
    /// number of bytes it took; bytes after it are left alone.
    ///
    /// Accepts packets up to the protocol maximum; see
    /// [`Packet::decode_limited`] to refuse large ones (a client's own
    /// Maximum Packet Size) before their body arrives.
    pub fn decode(buf: &'a [u8]) -> Result<(Self, usize), DecodeError> {
        Self::decode_limited(buf, MAX_PACKET_LEN)
    }

    /// Like [`Packet::decode`], but a packet longer than `max_packet_len`
    /// bytes (fixed header included) is [`DecodeError::TooLarge`] as soon
    /// as its fixed header is known.
    pub fn decode_limited(
        buf: &'a [u8],
        max_packet_len: usize,
    ) -> Result<(Self, usize), DecodeError> {
        let (packet_type, flags, body, len) = frame(buf, max_packet_len)?;
        let packet = Self::decode_body(packet_type, flags, body)?;
        Ok((packet, len))
    }

    /// Parses the body of a framed packet: `body` is exactly the remaining
    /// length, so running out of bytes here is malformed.
    fn decode_body(packet_type: PacketType, flags: u8, body: &'a [u8]) -> Result<Self, Malformed> {
        Ok(match packet_type {
            PacketType::Connect => Self::Connect(Connect::parse(body)?),
            PacketType::ConnAck => Self::ConnAck(ConnAck::parse(body)?),
            PacketType::Publish => Self::Publish(Publish::parse(flags, body)?),
            PacketType::PubAck => Self::PubAck(PubAck::parse(body)?),
            PacketType::PubRec => Self::PubRec(PubRec::parse(body)?),
            PacketType::PubRel => Self::PubRel(PubRel::parse(body)?),
            PacketType::PubComp => Self::PubComp(PubComp::parse(body)?),
            PacketType::Subscribe => Self::Subscribe(Subscribe::parse(body)?),
            PacketType::SubAck => Self::SubAck(SubAck::parse(body)?),
            PacketType::Unsubscribe => Self::Unsubscribe(Unsubscribe::parse(body)?),
            PacketType::UnsubAck => Self::UnsubAck(UnsubAck::parse(body)?),
            PacketType::PingReq => end(body, Self::PingReq)?,
            PacketType::PingResp => end(body, Self::PingResp)?,
            PacketType::Disconnect => Self::Disconnect(Disconnect::parse(body)?),
            PacketType::Auth => Self::Auth(Auth::parse(body)?),
        })
    }

    /// The type of this packet.
    pub const fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }

    /// The number of bytes [`Packet::encode`] writes, computed without
    /// encoding (and without the encoder's checks).
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Connect(p) => p.encoded_len(),
            Self::ConnAck(p) => p.encoded_len(),
            Self::Publish(p) => p.encoded_len(),
            Self::PubAck(p) => p.encoded_len(),
            Self::PubRec(p) => p.encoded_len(),
            Self::PubRel(p) => p.encoded_len(),
            Self::PubComp(p) => p.encoded_len(),
            Self::Subscribe(p) => p.encoded_len(),
            Self::SubAck(p) => p.encoded_len(),
            Self::Unsubscribe(p) => p.encoded_len(),
            Self::UnsubAck(p) => p.encoded_len(),
            Self::PingReq | Self::PingResp => 2,
            Self::Disconnect(p) => p.encoded_len(),
            Self::Auth(p) => p.encoded_len(),
        }
    }

    /// Encodes the packet at the start of `buf` and returns its length.
    ///
    /// Writes nothing when the packet is invalid or does not fit.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        match self {
            Self::Connect(p) => p.encode(buf),
            Self::ConnAck(p) => p.encode(buf),
            Self::Publish(p) => p.encode(buf),
            Self::PubAck(p) => p.encode(buf),
            Self::PubRec(p) => p.encode(buf),
            Self::PubRel(p) => p.encode(buf),
            Self::PubComp(p) => p.encode(buf),
            Self::Subscribe(p) => p.encode(buf),
            Self::SubAck(p) => p.encode(buf),
            Self::Unsubscribe(p) => p.encode(buf),
            Self::UnsubAck(p) => p.encode(buf),
            Self::PingReq => write_packet(buf, PacketType::PingReq.first_byte(0), 0, |_| {}),
            Self::PingResp => write_packet(buf, PacketType::PingResp.first_byte(0), 0, |_| {}),
            Self::Disconnect(p) => p.encode(buf),
            Self::Auth(p) => p.encode(buf),
        }
    }
}

macro_rules! decode_as {
    ($($name:ident),*) => {
        $(
            impl<'a> $name<'a> {
                /// Decodes a whole packet of this type from the start of
                /// `buf`; see [`Packet::decode`]. Any other packet type is
                /// [`Malformed::PacketType`].
                pub fn decode(buf: &'a [u8]) -> Result<(Self, usize), DecodeError> {
                    match Packet::decode(buf)? {
                        (Packet::$name(p), n) => Ok((p, n)),
                        _ => Err(Malformed::PacketType.into()),
                    }
                }
            }
        )*
    };
}

decode_as!(
    Connect,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth
);

/// What an acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP) or a
/// DISCONNECT too large to buffer says: `head`, the first bytes of its
/// body (an acknowledgement's 3, packet id and reason code; a
/// DISCONNECT's 1, its reason code), parsed and checked as a whole one
/// without properties. Its properties (a Reason String, User Properties,
/// a Server Reference: nothing the handshake needs) are skipped unread: a
/// malformed list there goes unnoticed, the price of not buffering it.
pub(crate) fn ack_head(packet_type: PacketType, head: &[u8]) -> Result<Packet<'_>, Malformed> {
    Ok(match packet_type {
        PacketType::PubAck => Packet::PubAck(PubAck::parse(head)?),
        PacketType::PubRec => Packet::PubRec(PubRec::parse(head)?),
        PacketType::PubRel => Packet::PubRel(PubRel::parse(head)?),
        PacketType::PubComp => Packet::PubComp(PubComp::parse(head)?),
        PacketType::Disconnect => Packet::Disconnect(Disconnect::parse(head)?),
        _ => return Err(Malformed::PacketType),
    })
}

/// What a SUBACK or UNSUBACK too large to buffer says: its packet id and
/// `codes`, its last bytes (one reason code per filter), checked as a
/// whole one's. Its properties come between the two and are skipped
/// unread, as [`ack_head`]'s are.
pub(crate) fn ack_list_tail(
    packet_type: PacketType,
    packet_id: [u8; 2],
    codes: &[u8],
) -> Result<Packet<'_>, Malformed> {
    Ok(match packet_type {
        PacketType::SubAck => Packet::SubAck(SubAck::without_properties(packet_id, codes)?),
        PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::without_properties(packet_id, codes)?),
        _ => return Err(Malformed::PacketType),
    })
}

/// A packet from a server, framed and decoded for the session: the packet
/// and its length, or the type of a whole packet only clients send
/// (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ), which is not parsed. A
/// packet longer than `capacity` is [`DecodeError::TooLarge`].
pub(crate) fn decode_server(
    buf: &[u8],
    capacity: usize,
) -> Result<Result<(Packet<'_>, usize), PacketType>, DecodeError> {
    let (packet_type, flags, body, len) = frame(buf, capacity)?;
    // A match of its own, not `decode_body`'s: a client's firmware then
    // links the parsers of what a server sends only (CONNECT's and
    // SUBSCRIBE's are large).
    let packet = match packet_type {
        PacketType::ConnAck => Packet::ConnAck(ConnAck::parse(body)?),
        PacketType::Publish => Packet::Publish(Publish::parse(flags, body)?),
        PacketType::PubAck => Packet::PubAck(PubAck::parse(body)?),
        PacketType::PubRec => Packet::PubRec(PubRec::parse(body)?),
        PacketType::PubRel => Packet::PubRel(PubRel::parse(body)?),
        PacketType::PubComp => Packet::PubComp(PubComp::parse(body)?),
        PacketType::SubAck => Packet::SubAck(SubAck::parse(body)?),
        PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::parse(body)?),
        PacketType::PingResp => end(body, Packet::PingResp)?,
        PacketType::Disconnect => Packet::Disconnect(Disconnect::parse(body)?),
        PacketType::Auth => Packet::Auth(Auth::parse(body)?),
        PacketType::Connect
        | PacketType::Subscribe
        | PacketType::Unsubscribe
        | PacketType::PingReq => return Ok(Err(packet_type)),
    };
    Ok(Ok((packet, len)))
}

/// A PUBLISH's property field (length and list), checked as an encoder
/// checks it, written at the start of `buf` for the callbacks' outbox:
/// its length, or why it cannot be sent.
pub(crate) fn write_publish_properties(
    properties: &Properties<'_>,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let len = properties.check(properties::Context::Publish)?;
    let dst = buf
        .get_mut(..len)
        .ok_or(EncodeError::BufferTooSmall { needed: len })?;
    let mut w = Writer::raw(dst);
    properties.write(&mut w);
    w.finish()
}

/// Reads back what [`write_publish_properties`] wrote: the properties and
/// the field's length.
pub(crate) fn read_publish_properties(buf: &[u8]) -> Option<(Properties<'_>, usize)> {
    let (rest, properties) = Properties::parse(buf, properties::Context::Publish).ok()?;
    Some((properties, buf.len() - rest.len()))
}

/// The Topic Alias in a PUBLISH's property field `props` (length prefix
/// and list, all of it): for the session, which reads the properties of a
/// PUBLISH too large to decode whole.
pub(crate) fn publish_alias(props: &[u8]) -> Result<Option<u16>, Malformed> {
    Ok(publish_properties(props)?.topic_alias())
}

/// The property list of a PUBLISH at the start of `props` (its length
/// prefix included), checked.
pub(crate) fn publish_properties(props: &[u8]) -> Result<Properties<'_>, Malformed> {
    let (_, properties) = Properties::parse(props, properties::Context::Publish)?;
    Ok(properties)
}

/// The bytes after the property list at the start of `input` (its length
/// prefix included), for a packet the session encoded itself.
pub(crate) fn after_properties(input: &[u8]) -> Option<&[u8]> {
    let (len, rest) = varint::read_in(input, Malformed::Truncated).ok()?;
    rest.get(len as usize..)
}

/// Where the payload of a PUBLISH starts, given where its properties
/// start: `None` until the property length has arrived.
pub(crate) fn payload_start(avail: &[u8], props_at: usize) -> Option<Result<usize, Malformed>> {
    match varint::read(avail.get(props_at..)?) {
        Ok((len, n)) => Some(Ok(props_at + n + len as usize)),
        Err(VarintError::Incomplete) => None,
        Err(VarintError::TooLong) => Some(Err(Malformed::PropertyLength)),
        Err(VarintError::NonMinimal) => Some(Err(Malformed::NonMinimalVarint)),
    }
}

/// Frames the packet at the start of `buf`: its type, its flags, its body
/// (exactly the remaining length) and its whole length.
#[inline]
fn frame(buf: &[u8], max_packet_len: usize) -> Result<(PacketType, u8, &[u8], usize), DecodeError> {
    let Some(&first) = buf.first() else {
        return Err(DecodeError::Incomplete { needed: 2 });
    };
    let flags = first & 0x0f;
    let packet_type = if first >> 4 == PacketType::Auth as u8 {
        // Type 15 is reserved in 3.1.1 and AUTH here, with flags 0 (§2.1.3).
        if flags != 0 {
            return Err(Malformed::HeaderFlags.into());
        }
        PacketType::Auth
    } else {
        // Every other type's first byte follows the same rules as in
        // 3.1.1 (§2.1.3, §3.3.1): the 3.1.1 header judges it alone.
        match FixedHeader::decode(core::slice::from_ref(&first)) {
            Err(DecodeError::Malformed(why)) => return Err(why.into()),
            _ => match super::PacketType::from_byte(first) {
                Some(t) => PacketType::from(t),
                None => return Err(Malformed::PacketType.into()),
            },
        }
    };
    let (remaining, n) = match varint::read(buf.get(1..).unwrap_or(&[])) {
        Ok(v) => v,
        Err(VarintError::Incomplete) => return Err(DecodeError::Incomplete { needed: 1 }),
        Err(VarintError::TooLong) => return Err(Malformed::RemainingLength.into()),
        Err(VarintError::NonMinimal) => return Err(Malformed::NonMinimalVarint.into()),
    };
    let header_len = 1 + n;
    let len = header_len + remaining as usize;
    if len > max_packet_len {
        return Err(DecodeError::TooLarge { len });
    }
    let Some(body) = buf.get(header_len..len) else {
        return Err(DecodeError::Incomplete {
            needed: len - buf.len(),
        });
    };
    Ok((packet_type, flags, body, len))
}

/// Writes a packet: byte 0, the remaining length, then `body`, which
/// writes exactly `remaining` bytes. Checks the limit and the buffer first,
/// so an error writes nothing.
pub(crate) fn write_packet(
    buf: &mut [u8],
    first: u8,
    remaining: usize,
    body: impl FnOnce(&mut Writer<'_>),
) -> Result<usize, EncodeError> {
    if remaining > MAX_REMAINING_LENGTH as usize {
        return Err(EncodeError::PacketTooLarge);
    }
    let buf = reserve(buf, packet_len(remaining))?;
    let mut w = Writer::raw(buf);
    w.u8(first);
    varint::write(&mut w, remaining as u32);
    body(&mut w);
    w.finish()
}

#[cfg(test)]
mod tests;
