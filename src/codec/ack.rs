//! The two-byte acknowledgements: PUBACK, PUBREC, PUBREL, PUBCOMP and
//! UNSUBACK ([MQTT 3.1.1 §3.4–3.7, §3.11]). Each body is exactly a non-zero
//! packet identifier.

use super::header::PacketType;
use super::{DecodeError, EncodeError, Malformed, Writer, reserve};

/// The length of every acknowledgement body.
const BODY_LEN: usize = 2;

fn parse_id(body: &[u8]) -> Result<u16, DecodeError> {
    match body {
        [0, 0] => Err(Malformed::PacketId.into()),
        &[hi, lo] => Ok(u16::from_be_bytes([hi, lo])),
        [] | [_] => Err(Malformed::Truncated.into()),
        _ => Err(Malformed::TrailingBytes.into()),
    }
}

macro_rules! ack_packet {
    ($(#[$doc:meta])* $name:ident, $kind:ident, $variant:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name {
            /// The packet identifier being acknowledged; never 0.
            pub packet_id: u16,
        }

        impl $name {
            pub(crate) fn from_body(body: &[u8]) -> Result<Self, DecodeError> {
                parse_id(body).map(|packet_id| Self { packet_id })
            }

            /// Decodes a whole packet of this type from the start of `buf`; see
            /// [`Packet::decode`](super::Packet::decode). Any other packet type is
            /// [`Malformed::PacketType`].
            pub fn decode(buf: &[u8]) -> Result<(Self, usize), DecodeError> {
                match super::Packet::decode(buf)? {
                    (super::Packet::$variant(p), n) => Ok((p, n)),
                    _ => Err(Malformed::PacketType.into()),
                }
            }

            /// The encoded length: always 4 bytes.
            pub const fn encoded_len(&self) -> usize {
                2 + BODY_LEN
            }

            /// Encodes the packet into `buf`, returning its length. Writes nothing on error.
            pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
                if self.packet_id == 0 {
                    return Err(EncodeError::PacketId);
                }
                let buf = reserve(buf, self.encoded_len())?;
                let flags = PacketType::$kind.required_flags().unwrap_or(0);
                let mut w = Writer::new(buf, PacketType::$kind, flags, BODY_LEN);
                w.u16(self.packet_id);
                w.finish()
            }
        }
    };
}

ack_packet!(
    /// PUBACK: the answer to a QoS 1 PUBLISH ([§3.4](https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718043)).
    PubAck, PubAck, PubAck
);
ack_packet!(
    /// PUBREC: the first answer to a QoS 2 PUBLISH ([§3.5](https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718048)).
    PubRec, PubRec, PubRec
);
ack_packet!(
    /// PUBREL: the answer to a PUBREC ([§3.6](https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718053)).
    /// Its fixed-header flags are 0b0010.
    PubRel, PubRel, PubRel
);
ack_packet!(
    /// PUBCOMP: the answer to a PUBREL ([§3.7](https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718058)).
    PubComp, PubComp, PubComp
);
ack_packet!(
    /// UNSUBACK: the answer to an UNSUBSCRIBE ([§3.11](https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718077)).
    UnsubAck, UnsubAck, UnsubAck
);

/// The four bytes of a PUBACK, PUBREC, PUBREL or PUBCOMP for `packet_id`
/// (`kind` names which), without going through an encoder: the session
/// queues one for nearly every packet it handles. `None` for packet id 0,
/// which no acknowledgement may carry, or a `kind` that is not one of the
/// four.
///
/// ```
/// use minimqtt::codec::{PacketType, PubRel, ack_bytes};
///
/// let mut buf = [0u8; 4];
/// PubRel { packet_id: 7 }.encode(&mut buf).unwrap();
/// assert_eq!(ack_bytes(PacketType::PubRel, 7), Some(buf));
/// assert_eq!(ack_bytes(PacketType::PubAck, 0), None);
/// ```
pub const fn ack_bytes(kind: PacketType, packet_id: u16) -> Option<[u8; 4]> {
    let flags = match (kind, kind.required_flags()) {
        (
            PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp,
            Some(f),
        ) => f,
        _ => return None,
    };
    if packet_id == 0 {
        return None;
    }
    let [hi, lo] = packet_id.to_be_bytes();
    Some([kind.first_byte(flags), BODY_LEN as u8, hi, lo])
}
