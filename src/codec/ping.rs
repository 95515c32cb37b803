//! The packets without a body: PINGREQ, PINGRESP and DISCONNECT
//! ([MQTT 3.1.1 §3.12–3.14]).
//!
//! [MQTT 3.1.1 §3.12–3.14]: https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718081

use super::header::PacketType;
use super::{DecodeError, EncodeError, Malformed, Packet, Writer, reserve};

/// A body that must be empty.
pub(crate) fn empty_body<'a>(body: &[u8], packet: Packet<'a>) -> Result<Packet<'a>, DecodeError> {
    if body.is_empty() {
        Ok(packet)
    } else {
        Err(Malformed::TrailingBytes.into())
    }
}

macro_rules! empty_packet {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name;

        impl $name {
            /// The whole packet: a fixed header with a remaining length of 0.
            pub const BYTES: [u8; 2] = [PacketType::$name.first_byte(0), 0];

            /// Decodes the packet from the start of `buf`; see
            /// [`Packet::decode`](super::Packet::decode).
            pub fn decode(buf: &[u8]) -> Result<(Self, usize), DecodeError> {
                match Packet::decode(buf)? {
                    (Packet::$name, n) => Ok((Self, n)),
                    _ => Err(Malformed::PacketType.into()),
                }
            }

            /// The encoded length: always 2 bytes.
            pub const fn encoded_len(&self) -> usize {
                2
            }

            /// Encodes the packet into `buf`, returning its length.
            pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
                let buf = reserve(buf, self.encoded_len())?;
                Writer::new(buf, PacketType::$name, 0, 0).finish()
            }
        }
    };
}

empty_packet!(
    /// PINGREQ: the client's keep-alive probe ([§3.12](https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718081)).
    PingReq
);
empty_packet!(
    /// PINGRESP: the server's answer to PINGREQ ([§3.13](https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718086)).
    PingResp
);
empty_packet!(
    /// DISCONNECT: the client's clean goodbye ([§3.14](https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718090)).
    Disconnect
);
