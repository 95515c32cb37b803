//! PUBLISH ([MQTT 3.1.1 §3.3]).
//!
//! [MQTT 3.1.1 §3.3]: https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718037

use super::error::{BodyResult, fail};
use super::header::{self, PacketType};
use super::{DecodeError, EncodeError, Malformed, QoS, Writer, prefixed_len, reserve, string};
use crate::topic::{self, TopicError};

mod flag {
    pub const DUP: u8 = 0b1000;
    pub const QOS_SHIFT: u8 = 1;
    pub const QOS_MASK: u8 = 0b11;
    pub const RETAIN: u8 = 0b0001;
}

/// An application message, borrowed from the packet bytes.
///
/// `packet_id` is `Some` exactly when `qos` is above 0, and never 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Publish<'a> {
    /// A re-delivery of an earlier attempt (§3.3.1.1). Always false at QoS 0.
    pub dup: bool,
    /// The delivery guarantee.
    pub qos: QoS,
    /// Whether the server keeps this message for future subscribers (§3.3.1.3).
    pub retain: bool,
    /// The topic name: valid per §4.7, without wildcards.
    pub topic: &'a str,
    /// The packet identifier, present for QoS 1 and 2.
    pub packet_id: Option<u16>,
    /// The application payload, possibly empty.
    pub payload: &'a [u8],
}

impl<'a> Publish<'a> {
    /// A first attempt (DUP clear) without a packet id: the session (or
    /// whoever sends it) assigns the id for QoS 1 and 2 before encoding.
    ///
    /// ```
    /// use minimqtt::codec::{Publish, QoS};
    ///
    /// let p = Publish::new("sensor/temp", b"21.5", QoS::AtMostOnce, false);
    /// let mut buf = [0u8; 32];
    /// let n = p.encode(&mut buf).unwrap();
    /// assert_eq!(Publish::decode(&buf[..n]).unwrap(), (p, n));
    /// ```
    pub const fn new(topic: &'a str, payload: &'a [u8], qos: QoS, retain: bool) -> Self {
        Self {
            dup: false,
            qos,
            retain,
            topic,
            packet_id: None,
            payload,
        }
    }

    /// The topic and QoS of a stored PUBLISH (see [`super::stored`]).
    pub(crate) fn stored_topic(flags: u8, body: &'a [u8]) -> Option<(&'a str, QoS)> {
        let qos = flags_qos(flags)?;
        let (_, topic) = string::binary(body).ok()?;
        Some((core::str::from_utf8(topic).ok()?, qos))
    }

    /// Parses the body of a PUBLISH whose fixed-header `flags` are already valid.
    // Always inlined: `decode_body` and `decode_server_body` both call it,
    // and a program keeps only one of them; an out-of-line copy would cost
    // both programs a call and its result through memory.
    #[inline(always)]
    pub(crate) fn parse(flags: u8, body: &'a [u8]) -> BodyResult<'a, Self> {
        let (rest, topic) = string::topic_name(body)?;
        let Some(qos) = flags_qos(flags) else {
            return fail(Malformed::QoS);
        };
        let (payload, packet_id) = match qos {
            QoS::AtMostOnce => (rest, None),
            _ => {
                let (rest, id) = string::packet_id(rest)?;
                (rest, Some(id))
            }
        };
        Ok((
            &[],
            Self {
                dup: publish_dup(flags),
                qos,
                retain: flags & flag::RETAIN != 0,
                topic,
                packet_id,
                payload,
            },
        ))
    }

    /// Decodes a whole PUBLISH packet from the start of `buf`; see
    /// [`Packet::decode`](super::Packet::decode). Any other packet type is
    /// [`Malformed::PacketType`].
    pub fn decode(buf: &'a [u8]) -> Result<(Self, usize), DecodeError> {
        match super::Packet::decode(buf)? {
            (super::Packet::Publish(p), n) => Ok((p, n)),
            _ => Err(Malformed::PacketType.into()),
        }
    }

    fn remaining_len(&self) -> usize {
        let id_len = if self.qos == QoS::AtMostOnce { 0 } else { 2 };
        prefixed_len(self.topic.len()) + id_len + self.payload.len()
    }

    /// The encoded length of the packet.
    pub fn encoded_len(&self) -> usize {
        header::packet_len(self.remaining_len())
    }

    fn flags(&self) -> u8 {
        (u8::from(self.dup) * flag::DUP)
            | ((self.qos as u8) << flag::QOS_SHIFT)
            | u8::from(self.retain)
    }

    /// Checks what §3.3 requires of an outgoing PUBLISH.
    pub fn validate(&self) -> Result<(), EncodeError> {
        check_name(self.topic)?;
        match (self.qos, self.packet_id) {
            (QoS::AtMostOnce, None) => {}
            (QoS::AtMostOnce, Some(_)) | (_, None) | (_, Some(0)) => {
                return Err(EncodeError::PacketId);
            }
            (_, Some(_)) => {}
        }
        if self.dup && self.qos == QoS::AtMostOnce {
            return Err(EncodeError::DupWithQoS0);
        }
        Ok(())
    }

    /// Encodes the packet into `buf`, returning its length. Writes nothing on error.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.validate()?;
        let buf = reserve(buf, self.encoded_len())?;
        let mut w = Writer::new(buf, PacketType::Publish, self.flags(), self.remaining_len());
        w.prefixed(self.topic.as_bytes());
        if let Some(id) = self.packet_id {
            w.u16(id);
        }
        w.bytes(self.payload);
        w.finish()
    }
}

impl Publish<'_> {
    /// The length of what [`encode_head`](Self::encode_head) writes for a
    /// payload of `payload_len` bytes.
    pub fn head_len(&self, payload_len: usize) -> usize {
        let id_len = if self.qos == QoS::AtMostOnce { 0 } else { 2 };
        let before = prefixed_len(self.topic.len()) + id_len;
        // Saturating: a length past MQTT's maximum is refused by
        // `encode_head`, not an overflow here.
        let remaining = before.saturating_add(payload_len);
        header::packet_len(remaining).saturating_sub(remaining) + before
    }

    /// Encodes everything but the payload of a PUBLISH whose payload is
    /// `payload_len` bytes long (`self.payload` is ignored): the fixed
    /// header counts the whole payload, which the caller writes right
    /// after, in pieces, straight to the transport. Returns the length;
    /// writes nothing on error.
    ///
    /// ```
    /// use minimqtt::codec::{Publish, QoS};
    ///
    /// let p = Publish::new("fw/image", b"", QoS::AtMostOnce, false);
    /// let mut head = [0u8; 16];
    /// let n = p.encode_head(1000, &mut head).unwrap();
    /// let mut whole = head[..n].to_vec();
    /// whole.extend_from_slice(&[7; 1000]);
    /// let (got, len) = Publish::decode(&whole).unwrap();
    /// assert_eq!((got.payload.len(), len), (1000, n + 1000));
    /// ```
    pub fn encode_head(&self, payload_len: usize, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let head = Publish {
            payload: &[],
            ..*self
        };
        head.validate()?;
        let remaining = head.remaining_len().saturating_add(payload_len);
        if remaining > super::MAX_REMAINING_LENGTH as usize {
            return Err(EncodeError::PacketTooLarge);
        }
        let len = self.head_len(payload_len);
        let buf = buf
            .get_mut(..len)
            .ok_or(EncodeError::BufferTooSmall { needed: len })?;
        let mut w = Writer::new(buf, PacketType::Publish, head.flags(), remaining);
        w.prefixed(head.topic.as_bytes());
        if let Some(id) = head.packet_id {
            w.u16(id);
        }
        w.finish()
    }
}

/// The checks an outgoing topic name needs, shared with CONNECT's will.
#[inline]
pub(crate) fn check_name(name: &str) -> Result<(), EncodeError> {
    match topic::validate_name(name) {
        Ok(()) => Ok(()),
        Err(TopicError::TooLong) => Err(EncodeError::StringTooLong),
        Err(e) => Err(EncodeError::TopicName(e)),
    }
}

/// Sets the DUP flag of an encoded PUBLISH (`packet` starts with its fixed
/// header), for a resend (MQTT-3.3.1-1). Anything that is not a QoS 1/2
/// PUBLISH is left alone: DUP is forbidden at QoS 0.
pub(crate) fn mark_dup(packet: &mut [u8]) {
    if let Some(first) = packet.first_mut() {
        let is_publish = PacketType::from_byte(*first).is_some_and(|t| t == PacketType::Publish);
        if is_publish && (*first >> flag::QOS_SHIFT) & flag::QOS_MASK != 0 {
            *first |= flag::DUP;
        }
    }
}

/// Whether an encoded PUBLISH (`packet` starts with its fixed header) has
/// its RETAIN flag set.
#[cfg(feature = "v5")]
pub(crate) fn stored_retain(packet: &[u8]) -> bool {
    packet
        .first()
        .is_some_and(|&first| first & flag::RETAIN != 0)
}

/// The DUP flag in the fixed-header flags of a PUBLISH.
pub(crate) const fn publish_dup(flags: u8) -> bool {
    flags & flag::DUP != 0
}

/// The RETAIN flag in the fixed-header flags of a PUBLISH.
pub(crate) const fn publish_retain(flags: u8) -> bool {
    flags & flag::RETAIN != 0
}

/// The QoS in the fixed-header flags of a PUBLISH, or `None` for the
/// forbidden 3.
pub(crate) const fn flags_qos(flags: u8) -> Option<QoS> {
    QoS::from_bits((flags >> flag::QOS_SHIFT) & flag::QOS_MASK)
}

/// What the first bytes of a PUBLISH too large to buffer tell: its QoS,
/// topic and packet id, read as they arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek<'a> {
    /// The topic (when its bytes fit in `capacity`) and the packet id
    /// (QoS 1/2, when it too fits).
    Known {
        qos: QoS,
        topic: Option<&'a str>,
        packet_id: Option<u16>,
        /// Where the payload starts, when the topic (and the packet id
        /// its QoS needs) fit: the header a streamed message keeps.
        payload_at: Option<usize>,
    },
    /// The bytes that would tell have not all arrived yet.
    NeedMore,
    /// They have, and they are not a valid PUBLISH.
    Malformed(Malformed),
}

/// Reads what it can of an oversized PUBLISH from `avail`, its first
/// bytes, of which at most `capacity` can ever be buffered at once.
/// `header` is its fixed header, decoded from the same bytes. `alias`:
/// an empty topic is allowed (MQTT 5, where a Topic Alias stands for it;
/// `topic` is then `None`).
pub(crate) fn peek_oversized(
    header: header::FixedHeader,
    avail: &[u8],
    capacity: usize,
    alias: bool,
) -> Peek<'_> {
    let Some(qos) = flags_qos(header.flags) else {
        return Peek::Malformed(Malformed::QoS);
    };
    let h = usize::from(header.header_len);
    let unknown = Peek::Known {
        qos,
        topic: None,
        packet_id: None,
        payload_at: None,
    };
    if h + 2 > capacity {
        return unknown;
    }
    let Some(&[hi, lo]) = avail.get(h..h + 2) else {
        return Peek::NeedMore;
    };
    let topic_end = h + 2 + usize::from(u16::from_be_bytes([hi, lo]));
    let id_end = topic_end + if qos == QoS::AtMostOnce { 0 } else { 2 };
    // Whether or not they can be held, the topic and packet id must lie
    // within the packet.
    if id_end > h.saturating_add(header.remaining_len as usize) {
        return Peek::Malformed(Malformed::Truncated);
    }
    if topic_end > capacity {
        // Not all of it can ever be held at once: the message is skipped
        // without its topic or id (the session reads the id as it passes).
        return unknown;
    }
    let Some(topic) = avail.get(h..topic_end) else {
        return Peek::NeedMore;
    };
    // The same checks as a whole PUBLISH's topic gets, even when its
    // packet id cannot be held behind it.
    let topic = match super::error::complete(string::topic_name(topic)) {
        Ok(topic) => Some(topic),
        Err(DecodeError::Malformed(Malformed::TopicName(TopicError::Empty))) if alias => None,
        Err(DecodeError::Malformed(m)) => return Peek::Malformed(m),
        Err(_) => return Peek::Malformed(Malformed::Truncated),
    };
    if id_end > capacity {
        return Peek::Known {
            qos,
            topic,
            packet_id: None,
            payload_at: None,
        };
    }
    let Some(id) = avail.get(topic_end..id_end) else {
        return Peek::NeedMore;
    };
    let packet_id = match id {
        [0, 0] => return Peek::Malformed(Malformed::PacketId),
        &[hi, lo] => Some(u16::from_be_bytes([hi, lo])),
        _ => None,
    };
    Peek::Known {
        qos,
        topic,
        packet_id,
        payload_at: Some(id_end),
    }
}
