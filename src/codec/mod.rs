//! The MQTT 3.1.1 wire format: every control packet, both directions.
//!
//! Decoding borrows: a [`Packet<'a>`] holds `&'a str` topics and `&'a [u8]`
//! payloads that point into the caller's buffer, and filter lists and SUBACK
//! return codes are iterators over those bytes. Nothing is copied and nothing
//! is allocated. Encoding writes into a caller's `&mut [u8]`.
//!
//! MQTT 5.0 has a codec of its own beside this one, `codec::v5` (feature `v5`),
//! under the same contract; it shares the fixed header, string and topic
//! checks with this one.
//!
//! # Contract
//!
//! - [`Packet::decode`] never panics, whatever the input. It frames first (the
//!   [`FixedHeader`] and its remaining length), then parses the body as one
//!   exact slice. Its result keeps three outcomes apart:
//!   [`DecodeError::Incomplete`] (a prefix of a packet that may still be
//!   valid: read more), [`DecodeError::Malformed`] (no number of further
//!   bytes can make it valid: close the connection, §4.8), and
//!   [`DecodeError::TooLarge`] (well-formed so far, but over the caller's
//!   limit; its length is known, so it can be skipped).
//! - Every strict prefix of a valid packet is `Incomplete`.
//! - `encode` writes nothing unless the whole packet fits: it checks
//!   `encoded_len()` against the buffer first and then returns the number of
//!   bytes written, or [`EncodeError::BufferTooSmall`] with the length needed.
//!
//! ```
//! use minimqtt::codec::{Packet, Publish, QoS};
//!
//! let publish = Publish {
//!     dup: false,
//!     qos: QoS::AtLeastOnce,
//!     retain: false,
//!     topic: "sensor/0001/temp",
//!     packet_id: Some(7),
//!     payload: b"21.5",
//! };
//! let mut buf = [0u8; 64];
//! let n = Packet::Publish(publish).encode(&mut buf).unwrap();
//! let (decoded, used) = Packet::decode(&buf[..n]).unwrap();
//! assert_eq!(used, n);
//! assert_eq!(decoded, Packet::Publish(publish));
//! ```

mod ack;
mod connack;
mod connect;
mod error;
mod header;
mod ping;
mod publish;
mod string;
mod suback;
mod subscribe;
mod unsubscribe;
#[cfg(feature = "v5")]
pub mod v5;

pub use ack::{PubAck, PubComp, PubRec, PubRel, UnsubAck, ack_bytes};
pub use connack::{ConnAck, ConnectReturnCode};
pub use connect::{Connect, LastWill, PROTOCOL_LEVEL, PROTOCOL_NAME};
pub use error::{DecodeError, EncodeError, Malformed};
pub use header::{FixedHeader, MAX_HEADER_LEN, MAX_REMAINING_LENGTH, PacketType, varint_len};
pub(crate) use header::{packet_len, queued_packet, queued_topic};
pub use ping::{Disconnect, PingReq, PingResp};
pub use publish::Publish;
#[cfg(feature = "v5")]
pub(crate) use publish::stored_retain;
pub(crate) use publish::{Peek, mark_dup, peek_oversized, publish_dup, publish_retain};
pub use suback::{ReturnCodes, SubAck, SubscribeReturnCode};
pub use subscribe::{Subscribe, SubscribeFilters, SubscribeIter, Subscription};
pub use unsubscribe::{Unsubscribe, UnsubscribeFilters, UnsubscribeIter};

/// The largest packet MQTT 3.1.1 can express: a 5-byte fixed header and the
/// maximum remaining length.
pub const MAX_PACKET_LEN: usize = MAX_HEADER_LEN + MAX_REMAINING_LENGTH as usize;

/// Quality of service of a message ([MQTT 3.1.1 §4.3]).
///
/// [MQTT 3.1.1 §4.3]: https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718099
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum QoS {
    /// At most once: fire and forget.
    #[default]
    AtMostOnce = 0,
    /// At least once: acknowledged with PUBACK, may be duplicated.
    AtLeastOnce = 1,
    /// Exactly once: the PUBREC / PUBREL / PUBCOMP handshake.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for the two-bit value `bits`, or `None` for the forbidden 3 (or anything larger).
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }
}

/// Any MQTT 3.1.1 control packet, borrowing from the bytes it was decoded from.
///
/// Kept small on purpose (a test asserts its size): borrowed fields only, so
/// decoding never copies topics, payloads or filter lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Packet<'a> {
    /// CONNECT (§3.1).
    Connect(Connect<'a>),
    /// CONNACK (§3.2).
    ConnAck(ConnAck),
    /// PUBLISH (§3.3).
    Publish(Publish<'a>),
    /// PUBACK (§3.4).
    PubAck(PubAck),
    /// PUBREC (§3.5).
    PubRec(PubRec),
    /// PUBREL (§3.6).
    PubRel(PubRel),
    /// PUBCOMP (§3.7).
    PubComp(PubComp),
    /// SUBSCRIBE (§3.8).
    Subscribe(Subscribe<'a>),
    /// SUBACK (§3.9).
    SubAck(SubAck<'a>),
    /// UNSUBSCRIBE (§3.10).
    Unsubscribe(Unsubscribe<'a>),
    /// UNSUBACK (§3.11).
    UnsubAck(UnsubAck),
    /// PINGREQ (§3.12).
    PingReq,
    /// PINGRESP (§3.13).
    PingResp,
    /// DISCONNECT (§3.14).
    Disconnect,
}

impl<'a> Packet<'a> {
    /// Decodes one packet from the start of `buf`, returning it and the number
    /// of bytes it took. Bytes after the packet are left alone: call again on
    /// the rest to decode the next one.
    ///
    /// Accepts packets up to the protocol maximum; see [`Packet::decode_limited`]
    /// to refuse large packets before their body arrives.
    pub fn decode(buf: &'a [u8]) -> Result<(Self, usize), DecodeError> {
        Self::decode_limited(buf, MAX_PACKET_LEN)
    }

    /// Like [`Packet::decode`], but a packet longer than `max_packet_len` bytes
    /// (fixed header included) is [`DecodeError::TooLarge`] as soon as its
    /// fixed header is known, before any of its body is looked at.
    // Inlined: into `decode`, the limit is a constant the framing check folds.
    #[inline]
    pub fn decode_limited(
        buf: &'a [u8],
        max_packet_len: usize,
    ) -> Result<(Self, usize), DecodeError> {
        let (header, body, len) = frame(buf, max_packet_len)?;
        // PUBLISH, the packet received most, returns on its own path: the
        // `Packet` it builds is then stored field by field instead of being
        // merged with every other type's bytes (benches/callgrind.sh).
        if header.packet_type == PacketType::Publish {
            let publish = error::complete(Publish::parse(header.flags, body))?;
            return Ok((Self::Publish(publish), len));
        }
        Ok((Self::decode_body(header, body)?, len))
    }

    /// Parses the body of a framed packet: `body` is exactly `remaining_len`
    /// bytes, so running out of bytes here is malformed, not incomplete.
    #[inline]
    pub fn decode_body(header: FixedHeader, body: &'a [u8]) -> Result<Self, DecodeError> {
        let flags = header.flags;
        let packet = match header.packet_type {
            PacketType::Connect => Self::Connect(error::complete(Connect::parse(body))?),
            PacketType::ConnAck => Self::ConnAck(error::complete(ConnAck::parse(body))?),
            PacketType::Publish => Self::Publish(error::complete(Publish::parse(flags, body))?),
            PacketType::PubAck => Self::PubAck(PubAck::from_body(body)?),
            PacketType::PubRec => Self::PubRec(PubRec::from_body(body)?),
            PacketType::PubRel => Self::PubRel(PubRel::from_body(body)?),
            PacketType::PubComp => Self::PubComp(PubComp::from_body(body)?),
            PacketType::Subscribe => Self::Subscribe(error::complete(Subscribe::parse(body))?),
            PacketType::SubAck => Self::SubAck(error::complete(SubAck::parse(body))?),
            PacketType::Unsubscribe => {
                Self::Unsubscribe(error::complete(Unsubscribe::parse(body))?)
            }
            PacketType::UnsubAck => Self::UnsubAck(UnsubAck::from_body(body)?),
            PacketType::PingReq => ping::empty_body(body, Self::PingReq)?,
            PacketType::PingResp => ping::empty_body(body, Self::PingResp)?,
            PacketType::Disconnect => ping::empty_body(body, Self::Disconnect)?,
        };
        Ok(packet)
    }

    /// [`decode_body`](Self::decode_body) for the packets a server sends,
    /// or `None` for a packet only clients send, whose body is left alone.
    /// A match of its own, so that a client's firmware links only these
    /// parsers (CONNECT's is large), and a codec user only `decode_body`.
    #[inline]
    #[cfg_attr(not(feature = "v3"), allow(dead_code))]
    pub(crate) fn decode_server_body(
        header: FixedHeader,
        body: &'a [u8],
    ) -> Option<Result<Self, DecodeError>> {
        let flags = header.flags;
        let packet = match header.packet_type {
            PacketType::ConnAck => error::complete(ConnAck::parse(body)).map(Self::ConnAck),
            PacketType::Publish => error::complete(Publish::parse(flags, body)).map(Self::Publish),
            PacketType::PubAck => PubAck::from_body(body).map(Self::PubAck),
            PacketType::PubRec => PubRec::from_body(body).map(Self::PubRec),
            PacketType::PubRel => PubRel::from_body(body).map(Self::PubRel),
            PacketType::PubComp => PubComp::from_body(body).map(Self::PubComp),
            PacketType::SubAck => error::complete(SubAck::parse(body)).map(Self::SubAck),
            PacketType::UnsubAck => UnsubAck::from_body(body).map(Self::UnsubAck),
            PacketType::PingResp => ping::empty_body(body, Self::PingResp),
            PacketType::Connect
            | PacketType::Subscribe
            | PacketType::Unsubscribe
            | PacketType::PingReq
            | PacketType::Disconnect => return None,
        };
        Some(packet)
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
            Self::Disconnect => PacketType::Disconnect,
        }
    }

    /// The number of bytes [`Packet::encode`] writes, computed without encoding.
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
            Self::PingReq | Self::PingResp | Self::Disconnect => 2,
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
            Self::PingReq => PingReq.encode(buf),
            Self::PingResp => PingResp.encode(buf),
            Self::Disconnect => Disconnect.encode(buf),
        }
    }
}

/// Frames the packet at the start of `buf` without parsing its body: its
/// fixed header, its body (exactly `remaining_len` bytes) and its length.
/// The checks of [`Packet::decode_limited`] up to the body, in its order.
// Always inlined: returned through memory, the tuple cost `decode` some
// 20 instructions a packet (benches/callgrind.sh).
#[inline(always)]
pub(crate) fn frame(
    buf: &[u8],
    max_packet_len: usize,
) -> Result<(FixedHeader, &[u8], usize), DecodeError> {
    let header = FixedHeader::decode(buf)?;
    let len = header.packet_len();
    // No header can exceed MAX_PACKET_LEN, so with that limit (a constant
    // in `Packet::decode`) the check folds away.
    if max_packet_len < MAX_PACKET_LEN && len > max_packet_len {
        return Err(DecodeError::TooLarge { len });
    }
    let Some(body) = buf.get(usize::from(header.header_len)..len) else {
        return Err(DecodeError::Incomplete {
            needed: len - buf.len(),
        });
    };
    Ok((header, body, len))
}

/// The type of the packet that `first` starts when a client refuses it
/// from that byte alone: one only clients send, anything but CONNACK (or
/// MQTT 5's AUTH) before the CONNACK (MQTT-3.2.0-1), or a second CONNACK.
/// `None` for any other, and for a byte that starts no packet (framing
/// reports that).
// Not inlined: in the driver's event dispatch it compiled 44 bytes larger
// on thumbv7em (3.1.1 build).
#[inline(never)]
pub(crate) fn refused_from_server(first: u8, v5: bool, connecting: bool) -> Option<PacketType> {
    let packet_type = PacketType::from_byte(first)?;
    let refused = match packet_type {
        PacketType::ConnAck => !connecting,
        // MQTT 5 servers send DISCONNECT, once connected.
        PacketType::Disconnect if v5 => connecting,
        other if !other.sent_by_server() => true,
        _ => connecting,
    };
    refused.then_some(packet_type)
}

/// [`frame`], not inlined: the one copy a client's reader and session share.
#[inline(never)]
pub(crate) fn frame_shared(
    buf: &[u8],
    max_packet_len: usize,
) -> Result<(FixedHeader, &[u8], usize), DecodeError> {
    frame(buf, max_packet_len)
}

/// The fixed header and body of a packet the session encoded and stored.
/// Its fields are read back without the decoder's checks: they passed the
/// encoder's. The decoders of SUBSCRIBE and UNSUBSCRIBE, packets a client
/// never receives, then stay out of firmware.
pub(crate) fn stored(buf: &[u8]) -> Option<(FixedHeader, &[u8])> {
    let (header, body, _) = frame_shared(buf, MAX_PACKET_LEN).ok()?;
    Some((header, body))
}

/// The fixed header of a packet the session stored, and as much of its
/// body as is stored: all of it, or the head of a streamed PUBLISH.
pub(crate) fn stored_head(buf: &[u8]) -> Option<(FixedHeader, &[u8])> {
    let header = FixedHeader::decode(buf).ok()?;
    let body = buf.get(usize::from(header.header_len)..)?;
    let len = body.len().min(header.remaining_len as usize);
    Some((header, body.get(..len)?))
}

/// Reserves `len` bytes for a packet in `buf`: the atomic-encode check that
/// every `encode` makes before it writes anything.
pub(crate) fn reserve(buf: &mut [u8], len: usize) -> Result<&mut [u8], EncodeError> {
    if len > MAX_PACKET_LEN {
        return Err(EncodeError::PacketTooLarge);
    }
    buf.get_mut(..len)
        .ok_or(EncodeError::BufferTooSmall { needed: len })
}

/// A bounds-checked cursor over an output buffer already sized by [`reserve`].
///
/// Its writes return nothing: the first error is kept, nothing is written
/// after it, and [`finish`](Self::finish) reports it. Encoders then make
/// one check instead of one per field, which is smaller code. (With the
/// buffer reserved and the packet validated first, no write can fail.)
pub(crate) struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
    error: Option<EncodeError>,
}

impl<'b> Writer<'b> {
    /// Writes a fixed header and returns a writer positioned after it.
    pub(crate) fn new(
        buf: &'b mut [u8],
        packet_type: PacketType,
        flags: u8,
        remaining_len: usize,
    ) -> Self {
        let (pos, error) = match header::write(buf, packet_type, flags, remaining_len) {
            Ok(pos) => (pos, None),
            Err(e) => (0, Some(e)),
        };
        Self { buf, pos, error }
    }

    /// A writer at the start of `buf`, for an encoder that writes its own
    /// fixed header: MQTT 5's AUTH has a packet type [`PacketType`] lacks.
    #[cfg(feature = "v5")]
    pub(crate) fn raw(buf: &'b mut [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            error: None,
        }
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let end = self.pos + bytes.len();
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.pos = end;
            }
            None => self.error = Some(EncodeError::BufferTooSmall { needed: end }),
        }
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.bytes(&[value]);
    }

    pub(crate) fn u16(&mut self, value: u16) {
        self.bytes(&value.to_be_bytes());
    }

    /// A length-prefixed string or binary field (§1.5.3).
    pub(crate) fn prefixed(&mut self, bytes: &[u8]) {
        match u16::try_from(bytes.len()) {
            Ok(len) => {
                self.u16(len);
                self.bytes(bytes);
            }
            Err(_) => {
                self.error.get_or_insert(EncodeError::StringTooLong);
            }
        }
    }

    /// Bytes written, or the first error.
    pub(crate) fn finish(self) -> Result<usize, EncodeError> {
        match self.error {
            None => Ok(self.pos),
            Some(e) => Err(e),
        }
    }
}

/// The number of bytes a length-prefixed field of `len` bytes takes.
pub(crate) const fn prefixed_len(len: usize) -> usize {
    2 + len
}

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod tests;
