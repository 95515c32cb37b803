//! PUBLISH and its acknowledgements PUBACK, PUBREC, PUBREL and PUBCOMP
//! ([MQTT 5.0 §3.3 to §3.7]).
//!
//! [MQTT 5.0 §3.3 to §3.7]: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901100

use super::properties::Context;
use super::{PacketType, Properties, ReasonCode, byte, shared, write_packet};
use crate::codec::PacketType as V3PacketType;
use crate::codec::publish::{check_name, flags_qos, publish_dup, publish_retain};
use crate::codec::{
    EncodeError, MAX_REMAINING_LENGTH, Malformed, QoS, Writer, packet_len, prefixed_len, string,
};
use crate::topic::TopicError;

/// An application message, borrowed from the packet bytes.
///
/// `packet_id` is `Some` exactly when `qos` is above 0, and never 0. The
/// topic may be empty only when the properties carry a Topic Alias
/// (§3.3.2.1): the receiver then knows the topic by its alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Publish<'a> {
    /// A re-delivery of an earlier attempt (§3.3.1.1). Always false at QoS 0.
    pub dup: bool,
    /// The delivery guarantee.
    pub qos: QoS,
    /// Whether the server keeps this message for future subscribers.
    pub retain: bool,
    /// The topic name: valid per §4.7, or empty with a Topic Alias.
    pub topic: &'a str,
    /// The packet identifier, present for QoS 1 and 2.
    pub packet_id: Option<u16>,
    /// The PUBLISH properties (§3.3.2.3).
    pub properties: Properties<'a>,
    /// The application payload, possibly empty.
    pub payload: &'a [u8],
}

impl<'a> Publish<'a> {
    /// A first attempt (DUP clear) without a packet id or properties.
    pub const fn new(topic: &'a str, payload: &'a [u8], qos: QoS, retain: bool) -> Self {
        Self {
            dup: false,
            qos,
            retain,
            topic,
            packet_id: None,
            properties: Properties::EMPTY,
            payload,
        }
    }

    /// Parses the body of a PUBLISH whose fixed-header `flags` are valid.
    #[inline]
    pub(crate) fn parse(flags: u8, body: &'a [u8]) -> Result<Self, Malformed> {
        let Some(qos) = flags_qos(flags) else {
            return Err(Malformed::QoS);
        };
        // An empty topic is a topic alias's business, checked below.
        let (rest, topic) = match body {
            [0, 0, rest @ ..] => (rest, ""),
            _ => shared(string::topic_name(body))?,
        };
        let (rest, packet_id) = match qos {
            QoS::AtMostOnce => (rest, None),
            _ => {
                let (rest, id) = shared(string::packet_id(rest))?;
                (rest, Some(id))
            }
        };
        let (payload, properties) = Properties::parse(rest, Context::Publish)?;
        if topic.is_empty() && properties.topic_alias().is_none() {
            return Err(Malformed::TopicName(TopicError::Empty));
        }
        Ok(Self {
            dup: publish_dup(flags),
            qos,
            retain: publish_retain(flags),
            topic,
            packet_id,
            properties,
            payload,
        })
    }

    fn remaining_len(&self) -> usize {
        let id_len = if self.qos == QoS::AtMostOnce { 0 } else { 2 };
        prefixed_len(self.topic.len()) + id_len + self.properties.field_len() + self.payload.len()
    }

    /// The encoded length of the packet.
    pub fn encoded_len(&self) -> usize {
        packet_len(self.remaining_len())
    }

    fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | ((self.qos as u8) << 1) | u8::from(self.retain)
    }

    /// Checks what §3.3 requires of an outgoing PUBLISH, properties
    /// included.
    pub fn validate(&self) -> Result<(), EncodeError> {
        self.properties.check(Context::Publish)?;
        self.properties.check_payload(self.payload)?;
        if !self.topic.is_empty() || self.properties.topic_alias().is_none() {
            check_name(self.topic)?;
        }
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

    /// Encodes the packet into `buf`, returning its length. Writes nothing
    /// on error.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.validate()?;
        let first = PacketType::Publish.first_byte(self.flags());
        write_packet(buf, first, self.remaining_len(), |w| {
            w.prefixed(self.topic.as_bytes());
            if let Some(id) = self.packet_id {
                w.u16(id);
            }
            self.properties.write(w);
            w.bytes(self.payload);
        })
    }
}

impl Publish<'_> {
    /// The remaining length of the PUBLISH with a Topic Alias property
    /// added in front of its properties, and its topic left out when
    /// `elide` (the alias stands for it).
    fn aliased_remaining_len(&self, elide: bool) -> usize {
        let id_len = if self.qos == QoS::AtMostOnce { 0 } else { 2 };
        let topic = if elide { 0 } else { self.topic.len() };
        // The alias property: its id and two bytes.
        let props = self.properties.content_len() + 3;
        let field = super::varint::len(u32::try_from(props).unwrap_or(u32::MAX)) + props;
        prefixed_len(topic) + id_len + field + self.payload.len()
    }

    /// The length of [`encode_aliased`](Self::encode_aliased)'s packet.
    pub(crate) fn aliased_len(&self, elide: bool) -> usize {
        packet_len(self.aliased_remaining_len(elide))
    }

    /// Encodes the PUBLISH with Topic Alias `alias` added to its
    /// properties (which must not hold one), and its topic left out when
    /// `elide`: how a client uses the broker's aliases.
    pub(crate) fn encode_aliased(
        &self,
        alias: u16,
        elide: bool,
        buf: &mut [u8],
    ) -> Result<usize, EncodeError> {
        self.validate()?;
        if alias == 0 || self.properties.topic_alias().is_some() {
            return Err(EncodeError::PropertyValue(
                super::properties::id::TOPIC_ALIAS,
            ));
        }
        let remaining = self.aliased_remaining_len(elide);
        let props = self.properties.content_len() + 3;
        let first = PacketType::Publish.first_byte(self.flags());
        write_packet(buf, first, remaining, |w| {
            w.prefixed(if elide { b"" } else { self.topic.as_bytes() });
            if let Some(id) = self.packet_id {
                w.u16(id);
            }
            super::varint::write(w, props as u32);
            w.u8(super::properties::id::TOPIC_ALIAS);
            w.u16(alias);
            self.properties.write_list(w);
            w.bytes(self.payload);
        })
    }

    /// The length of everything but a payload of `payload_len` bytes
    /// (`self.payload` is ignored).
    pub fn head_len(&self, payload_len: usize) -> usize {
        let head = Publish {
            payload: &[],
            ..*self
        };
        // Saturating: a length past MQTT's maximum is refused by
        // `encode_head`, not an overflow here.
        let before = head.remaining_len();
        let remaining = before.saturating_add(payload_len);
        packet_len(remaining).saturating_sub(remaining) + before
    }

    /// Encodes everything but the payload of a PUBLISH whose payload is
    /// `payload_len` bytes long (`self.payload` is ignored): the fixed
    /// header counts the whole payload, which the caller writes right
    /// after. Returns the length; writes nothing on error.
    ///
    /// ```
    /// use minimqtt::codec::QoS;
    /// use minimqtt::codec::v5::{Property, Properties, Publish};
    ///
    /// let props = [Property::ContentType("application/octet-stream")];
    /// let p = Publish { properties: Properties::new(&props), ..Publish::new("fw", b"", QoS::AtMostOnce, false) };
    /// let mut head = [0u8; 64];
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
        if remaining > MAX_REMAINING_LENGTH as usize {
            return Err(EncodeError::PacketTooLarge);
        }
        let len = self.head_len(payload_len);
        let buf = buf
            .get_mut(..len)
            .ok_or(EncodeError::BufferTooSmall { needed: len })?;
        let mut w = Writer::raw(buf);
        w.u8(PacketType::Publish.first_byte(head.flags()));
        super::varint::write(&mut w, remaining as u32);
        w.prefixed(head.topic.as_bytes());
        if let Some(id) = head.packet_id {
            w.u16(id);
        }
        head.properties.write(&mut w);
        w.finish()
    }
}

/// The body of an acknowledgement: packet id, then (§3.4.2.1) a reason
/// code unless the remaining length is 2, then properties unless it is 3.
fn parse_ack(
    body: &[u8],
    packet_type: PacketType,
    context: Context,
) -> Result<(u16, ReasonCode, Properties<'_>), Malformed> {
    let (rest, packet_id) = shared(string::packet_id(body))?;
    if rest.is_empty() {
        return Ok((packet_id, ReasonCode::Success, Properties::EMPTY));
    }
    let (rest, code) = byte(rest)?;
    let reason_code = ReasonCode::parse(code, packet_type)?;
    if rest.is_empty() {
        return Ok((packet_id, reason_code, Properties::EMPTY));
    }
    let (rest, properties) = Properties::parse(rest, context)?;
    super::end(rest, (packet_id, reason_code, properties))
}

/// The remaining length of an acknowledgement in its shortest form.
fn ack_remaining_len(reason_code: ReasonCode, properties: &Properties<'_>) -> usize {
    match (reason_code, properties.is_empty()) {
        (ReasonCode::Success, true) => 2,
        (_, true) => 3,
        (_, false) => 3 + properties.field_len(),
    }
}

macro_rules! ack_packet {
    ($(#[$doc:meta])* $name:ident, $context:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name<'a> {
            /// The packet identifier being acknowledged; never 0.
            pub packet_id: u16,
            /// The outcome; 0x00 (Success) in the short form.
            pub reason_code: ReasonCode,
            /// Reason String and User Properties, if any.
            pub properties: Properties<'a>,
        }

        impl<'a> $name<'a> {
            /// A successful acknowledgement of `packet_id`, without
            /// properties: the 4-byte short form.
            pub const fn new(packet_id: u16) -> Self {
                Self {
                    packet_id,
                    reason_code: ReasonCode::Success,
                    properties: Properties::EMPTY,
                }
            }

            pub(crate) fn parse(body: &'a [u8]) -> Result<Self, Malformed> {
                let (packet_id, reason_code, properties) =
                    parse_ack(body, PacketType::$name, Context::$context)?;
                Ok(Self {
                    packet_id,
                    reason_code,
                    properties,
                })
            }

            /// The encoded length: the shortest form the fields allow.
            pub fn encoded_len(&self) -> usize {
                packet_len(ack_remaining_len(self.reason_code, &self.properties))
            }

            /// Encodes the packet into `buf` in its shortest form,
            /// returning its length. Writes nothing on error.
            pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
                if self.packet_id == 0 {
                    return Err(EncodeError::PacketId);
                }
                self.reason_code.check(PacketType::$name)?;
                self.properties.check(Context::$context)?;
                let remaining = ack_remaining_len(self.reason_code, &self.properties);
                // PUBREL's flags are 0b0010 (§3.6.1), the others' 0.
                let flags = if matches!(PacketType::$name, PacketType::PubRel) { 0b0010 } else { 0 };
                let first = PacketType::$name.first_byte(flags);
                write_packet(buf, first, remaining, |w| {
                    w.u16(self.packet_id);
                    if remaining > 2 {
                        w.u8(self.reason_code.to_u8());
                    }
                    if remaining > 3 {
                        self.properties.write(w);
                    }
                })
            }
        }
    };
}

ack_packet!(
    /// PUBACK: the answer to a QoS 1 PUBLISH (§3.4).
    PubAck, PubAck
);
ack_packet!(
    /// PUBREC: the first answer to a QoS 2 PUBLISH (§3.5).
    PubRec, PubRec
);
ack_packet!(
    /// PUBREL: the answer to a PUBREC (§3.6).
    PubRel, PubRel
);
ack_packet!(
    /// PUBCOMP: the answer to a PUBREL (§3.7).
    PubComp, PubComp
);

/// The PUBREL or PUBCOMP that answers a PUBREC or PUBREL for a packet
/// identifier the receiver does not know: 0x92 Packet Identifier not
/// found, no properties (§3.6.2.1, §3.7.2.1). `None` for another `kind`
/// or a packet id of 0. (The packet types MQTT 3.1.1 has: the session's.)
pub(crate) const fn not_found(kind: V3PacketType, packet_id: u16) -> Option<[u8; 5]> {
    if !matches!(kind, V3PacketType::PubRel | V3PacketType::PubComp) {
        return None;
    }
    let Some([first, _, hi, lo]) = crate::codec::ack_bytes(kind, packet_id) else {
        return None;
    };
    Some([
        first,
        3,
        hi,
        lo,
        ReasonCode::PacketIdentifierNotFound.to_u8(),
    ])
}
