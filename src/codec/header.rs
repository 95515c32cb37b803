//! The fixed header every MQTT control packet starts with ([MQTT 3.1.1 §2.2]).
//!
//! ```text
//!  byte 0          byte 1 ..= 4
//! +------+-------+--------------------------------+
//! | type | flags | remaining length (varint, 1-4) |
//! +------+-------+--------------------------------+
//! ```
//!
//! [`FixedHeader::decode`] validates the type and its flags from the very first
//! byte, so a malformed packet is reported as soon as it can be, and never as
//! "need more bytes".
//!
//! [MQTT 3.1.1 §2.2]: https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718020

use super::{DecodeError, EncodeError, Malformed, QoS};

/// The largest remaining length the 4-byte varint can carry (§2.2.3).
pub const MAX_REMAINING_LENGTH: u32 = 268_435_455;

/// The longest a fixed header can be: one type byte and a 4-byte varint.
pub const MAX_HEADER_LEN: usize = 5;

mod field {
    /// Bit position of the packet type in byte 0.
    pub const TYPE_SHIFT: u8 = 4;
    /// Mask of the flags in byte 0.
    pub const FLAGS_MASK: u8 = 0x0f;
    /// Continuation bit of each remaining-length byte.
    pub const VARINT_MORE: u8 = 0x80;
    /// Value bits of each remaining-length byte.
    pub const VARINT_VALUE: u8 = 0x7f;
    /// The varint is at most this many bytes long.
    pub const VARINT_MAX_LEN: usize = 4;
}

/// The kind of an MQTT control packet: the upper four bits of byte 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum PacketType {
    /// Client request to connect to the server.
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
    /// Client is disconnecting.
    Disconnect = 14,
}

impl PacketType {
    /// The type in the upper nibble of `byte`, or `None` for the reserved values 0 and 15.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte >> field::TYPE_SHIFT {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            _ => return None,
        })
    }

    /// Whether a server may send this type (§2.2.1): false for CONNECT,
    /// SUBSCRIBE, UNSUBSCRIBE, PINGREQ and DISCONNECT, which only clients send.
    ///
    /// ```
    /// use minimqtt::codec::PacketType;
    ///
    /// assert!(PacketType::PubRel.sent_by_server());
    /// assert!(!PacketType::Subscribe.sent_by_server());
    /// ```
    pub const fn sent_by_server(self) -> bool {
        !matches!(
            self,
            Self::Connect | Self::Subscribe | Self::Unsubscribe | Self::PingReq | Self::Disconnect
        )
    }

    /// Byte 0 of a packet of this type with these `flags` (the low nibble).
    pub const fn first_byte(self, flags: u8) -> u8 {
        (self as u8) << field::TYPE_SHIFT | (flags & field::FLAGS_MASK)
    }

    /// The flags this type must carry (§2.2.2), or `None` for PUBLISH, whose
    /// flags are DUP, QoS and RETAIN.
    pub const fn required_flags(self) -> Option<u8> {
        match self {
            Self::Publish => None,
            Self::PubRel | Self::Subscribe | Self::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }
}

/// A decoded fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FixedHeader {
    /// The packet type.
    pub packet_type: PacketType,
    /// The low nibble of byte 0, already checked against the type.
    pub flags: u8,
    /// The number of bytes after the fixed header.
    pub remaining_len: u32,
    /// The length of the fixed header itself: 2 to 5 bytes.
    pub header_len: u8,
}

impl FixedHeader {
    /// Reads a fixed header from the start of `buf`.
    ///
    /// The type and flags are checked as soon as byte 0 is present, so a bad
    /// first byte is [`DecodeError::Malformed`] even in a 1-byte buffer. A
    /// remaining length whose fourth byte still has the continuation bit set is
    /// [`Malformed::RemainingLength`]. A header that is merely cut short is
    /// [`DecodeError::Incomplete`].
    ///
    /// Never panics, whatever `buf` holds.
    ///
    /// ```
    /// use minimqtt::codec::{FixedHeader, PacketType};
    /// let h = FixedHeader::decode(&[0x30, 0x80, 0x01]).unwrap();
    /// assert_eq!(h.packet_type, PacketType::Publish);
    /// assert_eq!(h.remaining_len, 128);
    /// assert_eq!(h.packet_len(), 131);
    /// ```
    #[inline]
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let Some(&first) = buf.first() else {
            return Err(DecodeError::Incomplete { needed: 2 });
        };
        let flags = first & field::FLAGS_MASK;
        let valid = VALID_FIRST_BYTES[usize::from(first >> field::TYPE_SHIFT)] >> flags & 1 != 0;
        let (true, Some(packet_type)) = (valid, PacketType::from_byte(first)) else {
            return Err(first_byte_error(first));
        };

        let mut remaining_len: u32 = 0;
        for i in 0..field::VARINT_MAX_LEN {
            let Some(&byte) = buf.get(1 + i) else {
                return Err(DecodeError::Incomplete { needed: 1 });
            };
            remaining_len |= u32::from(byte & field::VARINT_VALUE) << (7 * i);
            if byte & field::VARINT_MORE == 0 {
                return Ok(Self {
                    packet_type,
                    flags,
                    remaining_len,
                    // At most 1 + VARINT_MAX_LEN = 5, which fits a u8.
                    header_len: (2 + i) as u8,
                });
            }
        }
        Err(DecodeError::Malformed(Malformed::RemainingLength))
    }

    /// The length of the whole packet: fixed header plus remaining length.
    pub const fn packet_len(&self) -> usize {
        self.header_len as usize + self.remaining_len as usize
    }
}

/// Why byte 0 of a fixed header is invalid, or `Ok` when it is valid: a
/// reserved type, flags other than the type's (§2.2.2), or PUBLISH flags
/// with QoS 3 or with DUP on QoS 0 (§3.3.1).
const fn check_first_byte(first: u8) -> Result<(), Malformed> {
    let Some(packet_type) = PacketType::from_byte(first) else {
        return Err(Malformed::PacketType);
    };
    let flags = first & field::FLAGS_MASK;
    match packet_type.required_flags() {
        Some(required) if flags != required => Err(Malformed::HeaderFlags),
        Some(_) => Ok(()),
        None => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                Err(Malformed::QoS)
            } else if qos == 0 && flags & 0b1000 != 0 {
                Err(Malformed::HeaderFlags)
            } else {
                Ok(())
            }
        }
    }
}

/// [`check_first_byte`] for all 256 values, one bit each: bit `flags` of
/// entry `type` is set when that byte 0 is valid. One load and a shift
/// decide what the checks above would take a branch per type to decide.
const VALID_FIRST_BYTES: [u16; 16] = {
    let mut table = [0u16; 16];
    let mut first = 0usize;
    while first < 256 {
        if check_first_byte(first as u8).is_ok() {
            table[first >> field::TYPE_SHIFT] |= 1 << (first & field::FLAGS_MASK as usize);
        }
        first += 1;
    }
    table
};

/// The error of an invalid byte 0.
#[cold]
fn first_byte_error(first: u8) -> DecodeError {
    match check_first_byte(first) {
        Err(why) => DecodeError::Malformed(why),
        // Not reached: the table and the checks agree (a test walks all 256).
        Ok(()) => DecodeError::Malformed(Malformed::PacketType),
    }
}

/// A packet the client queued itself, read back from the start of `buf`:
/// its length by its fixed header (the whole packet, though `buf` may hold
/// less of it), the fixed header's own length, and whether it is a QoS 0
/// PUBLISH. `None` if the header is cut short. No checks beyond that: any
/// type is accepted (MQTT 5's AUTH too), since the bytes came from this
/// codec's encoders.
pub(crate) fn queued_packet(buf: &[u8]) -> Option<(usize, usize, bool)> {
    let &first = buf.first()?;
    let mut remaining = 0usize;
    for i in 0..field::VARINT_MAX_LEN {
        let &byte = buf.get(1 + i)?;
        remaining |= usize::from(byte & field::VARINT_VALUE) << (7 * i);
        if byte & field::VARINT_MORE == 0 {
            let qos0_publish = first >> field::TYPE_SHIFT == PacketType::Publish as u8
                && crate::codec::publish::flags_qos(first & field::FLAGS_MASK)
                    == Some(QoS::AtMostOnce);
            return Some((2 + i + remaining, 2 + i, qos0_publish));
        }
    }
    None
}

/// The topic bytes of a PUBLISH the client queued itself, and the bytes
/// after them (an MQTT 5 message sent with its Topic Alias alone has an
/// empty topic, and its properties follow).
pub(crate) fn queued_topic(packet: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, header_len, _) = queued_packet(packet)?;
    let (rest, topic) = crate::codec::string::binary(packet.get(header_len..)?).ok()?;
    Some((topic, rest))
}

/// How many bytes the varint encoding of `len` takes (1 to 4), for any
/// `len <= MAX_REMAINING_LENGTH`.
pub const fn varint_len(len: u32) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// The total encoded length of a packet whose body is `remaining_len` bytes.
pub(crate) const fn packet_len(remaining_len: usize) -> usize {
    // Saturate rather than wrap: an oversize body is rejected by `write`.
    let clamped = if remaining_len > MAX_REMAINING_LENGTH as usize {
        MAX_REMAINING_LENGTH
    } else {
        remaining_len as u32
    };
    (1 + varint_len(clamped)).saturating_add(remaining_len)
}

/// Writes a fixed header for a body of `remaining_len` bytes at the start of
/// `buf`, returning its length. The caller has checked that `buf` is long enough.
pub(crate) fn write(
    buf: &mut [u8],
    packet_type: PacketType,
    flags: u8,
    remaining_len: usize,
) -> Result<usize, EncodeError> {
    if remaining_len > MAX_REMAINING_LENGTH as usize {
        return Err(EncodeError::PacketTooLarge);
    }
    let mut len = remaining_len as u32;
    let header_len = 1 + varint_len(len);
    let out = buf
        .get_mut(..header_len)
        .ok_or(EncodeError::BufferTooSmall {
            needed: header_len + remaining_len,
        })?;
    let (first, varint) = out.split_at_mut(1);
    first[0] = packet_type.first_byte(flags);
    for byte in varint.iter_mut() {
        *byte = (len as u8) & field::VARINT_VALUE;
        len >>= 7;
        if len > 0 {
            *byte |= field::VARINT_MORE;
        }
    }
    Ok(header_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32) -> ([u8; 5], usize) {
        let mut buf = [0xa5; 5];
        let n = write(&mut buf, PacketType::PingReq, 0, len as usize).unwrap();
        (buf, n)
    }

    #[test]
    fn remaining_length_boundaries_round_trip() {
        let cases: [(u32, &[u8]); 8] = [
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xff, 0xff, 0xff, 0x7f]),
        ];
        for (len, varint) in cases {
            let (buf, n) = header(len);
            assert_eq!(&buf[1..n], varint, "encoding of {len}");
            assert_eq!(n, 1 + varint_len(len));
            let h = FixedHeader::decode(&buf[..n]).unwrap();
            assert_eq!(h.remaining_len, len);
            assert_eq!(usize::from(h.header_len), n);
        }
    }

    #[test]
    fn a_fifth_varint_byte_is_malformed() {
        let buf = [0xc0, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(
            FixedHeader::decode(&buf),
            Err(DecodeError::Malformed(Malformed::RemainingLength))
        );
        // Even before the fifth byte arrives.
        assert_eq!(
            FixedHeader::decode(&buf[..5]),
            Err(DecodeError::Malformed(Malformed::RemainingLength))
        );
    }

    #[test]
    fn a_cut_varint_is_incomplete() {
        assert_eq!(
            FixedHeader::decode(&[0xc0, 0x80, 0x80]),
            Err(DecodeError::Incomplete { needed: 1 })
        );
        assert_eq!(
            FixedHeader::decode(&[]),
            Err(DecodeError::Incomplete { needed: 2 })
        );
    }

    #[test]
    fn writing_more_than_the_maximum_is_an_error() {
        let mut buf = [0; 5];
        assert_eq!(
            write(&mut buf, PacketType::Publish, 0, 268_435_456),
            Err(EncodeError::PacketTooLarge)
        );
    }

    #[test]
    fn every_first_byte_is_judged_as_the_rules_say() {
        for first in 0..=255u8 {
            let expected = match check_first_byte(first) {
                Ok(()) => Err(DecodeError::Incomplete { needed: 1 }),
                Err(why) => Err(DecodeError::Malformed(why)),
            };
            assert_eq!(FixedHeader::decode(&[first]), expected, "{first:#04x}");
        }
        assert_eq!(
            FixedHeader::decode(&[0x36]),
            Err(DecodeError::Malformed(Malformed::QoS))
        );
        assert_eq!(
            FixedHeader::decode(&[0x38]),
            Err(DecodeError::Malformed(Malformed::HeaderFlags))
        );
        assert_eq!(
            FixedHeader::decode(&[0xf0]),
            Err(DecodeError::Malformed(Malformed::PacketType))
        );
    }

    #[test]
    fn reserved_types_and_wrong_flags_are_malformed_from_the_first_byte() {
        for first in [0x00, 0xf0, 0x61, 0x80, 0xa0, 0x21, 0xc1, 0x36, 0x38] {
            assert!(
                matches!(
                    FixedHeader::decode(&[first]),
                    Err(DecodeError::Malformed(_))
                ),
                "{first:#04x}"
            );
        }
        for first in [0x30, 0x31, 0x32, 0x3b, 0x62, 0x82, 0xa2, 0xe0] {
            assert_eq!(
                FixedHeader::decode(&[first]),
                Err(DecodeError::Incomplete { needed: 1 }),
                "{first:#04x}"
            );
        }
    }
}
