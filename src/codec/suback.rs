//! SUBACK ([MQTT 3.1.1 §3.9]).
//!
//! [MQTT 3.1.1 §3.9]: https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718068

use core::fmt;

use super::error::{BodyResult, fail};
use super::header::{self, PacketType};
use super::{DecodeError, EncodeError, Malformed, QoS, Writer, reserve, string};

/// The return code of a failed subscription.
const FAILURE: u8 = 0x80;

/// The server's answer to one filter of a SUBSCRIBE (§3.9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SubscribeReturnCode {
    /// Subscribed; messages come with at most this QoS, which may be lower
    /// than the one requested.
    Success(QoS),
    /// 0x80: the subscription was refused.
    Failure,
}

impl SubscribeReturnCode {
    /// The code for `byte`, or `None` for anything but 0x00, 0x01, 0x02 and 0x80.
    pub const fn from_u8(byte: u8) -> Option<Self> {
        match byte {
            FAILURE => Some(Self::Failure),
            _ => match QoS::from_bits(byte) {
                Some(qos) => Some(Self::Success(qos)),
                None => None,
            },
        }
    }

    /// The code's byte on the wire.
    pub const fn to_u8(self) -> u8 {
        match self {
            Self::Success(qos) => qos as u8,
            Self::Failure => FAILURE,
        }
    }
}

/// The return codes of a SUBACK, one per filter of the SUBSCRIBE, in order.
///
/// Built from bytes either way: [`ReturnCodes::new`] for encoding (checked by
/// `encode`), or the validated wire bytes when decoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReturnCodes<'a>(&'a [u8]);

impl<'a> ReturnCodes<'a> {
    /// Return codes to encode, as wire bytes.
    pub const fn new(codes: &'a [u8]) -> Self {
        Self(codes)
    }

    /// The codes in packet order. Invalid bytes, possible only in a value
    /// built with [`ReturnCodes::new`], end the iteration.
    ///
    /// An MQTT 5 SUBACK's failure codes (0x80 and above) are each
    /// [`SubscribeReturnCode::Failure`]; [`reason_codes`](Self::reason_codes)
    /// tells them apart.
    pub fn iter(&self) -> impl Iterator<Item = SubscribeReturnCode> + 'a {
        self.0.iter().map_while(|&b| {
            SubscribeReturnCode::from_u8(b).or(if b > FAILURE {
                Some(SubscribeReturnCode::Failure)
            } else {
                None
            })
        })
    }

    /// The codes as MQTT 5 reason codes (what an MQTT 5 SUBACK or UNSUBACK
    /// said of each filter). A byte that is not one ends the iteration.
    #[cfg(feature = "v5")]
    pub fn reason_codes(&self) -> impl Iterator<Item = super::v5::ReasonCode> + 'a {
        self.0
            .iter()
            .map_while(|&b| super::v5::ReasonCode::from_u8(b))
    }

    /// The number of codes.
    pub const fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no codes (never true of a decoded packet).
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

impl fmt::Debug for ReturnCodes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// SUBACK: the server's answer to a SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SubAck<'a> {
    /// The packet identifier of the SUBSCRIBE; never 0.
    pub packet_id: u16,
    /// One code per requested filter, at least one.
    pub return_codes: ReturnCodes<'a>,
}

impl<'a> SubAck<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> BodyResult<'a, Self> {
        let (codes, packet_id) = string::packet_id(body)?;
        match Self::checked(packet_id, codes) {
            Ok(suback) => Ok((&[], suback)),
            Err(why) => fail(why),
        }
    }

    /// One too large to buffer: its packet id and its return codes (the
    /// packet's last bytes), read apart, checked as a whole one's.
    #[cfg(feature = "v3")]
    pub(crate) fn split(packet_id: [u8; 2], codes: &'a [u8]) -> Result<Self, Malformed> {
        match u16::from_be_bytes(packet_id) {
            0 => Err(Malformed::PacketId),
            id => Self::checked(id, codes),
        }
    }

    fn checked(packet_id: u16, codes: &'a [u8]) -> Result<Self, Malformed> {
        if codes.is_empty() {
            return Err(Malformed::NoFilters);
        }
        if codes
            .iter()
            .any(|&b| SubscribeReturnCode::from_u8(b).is_none())
        {
            return Err(Malformed::SubAckReturnCode);
        }
        Ok(Self {
            packet_id,
            return_codes: ReturnCodes(codes),
        })
    }

    /// Decodes a whole SUBACK from the start of `buf`; see
    /// [`Packet::decode`](super::Packet::decode).
    pub fn decode(buf: &'a [u8]) -> Result<(Self, usize), DecodeError> {
        match super::Packet::decode(buf)? {
            (super::Packet::SubAck(p), n) => Ok((p, n)),
            _ => Err(Malformed::PacketType.into()),
        }
    }

    fn remaining_len(&self) -> usize {
        2 + self.return_codes.len()
    }

    /// The encoded length of the packet.
    pub fn encoded_len(&self) -> usize {
        header::packet_len(self.remaining_len())
    }

    /// Encodes the packet into `buf`, returning its length. Writes nothing on error.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::PacketId);
        }
        let codes = self.return_codes.as_bytes();
        if codes.is_empty() {
            return Err(EncodeError::NoFilters);
        }
        if codes
            .iter()
            .any(|&b| SubscribeReturnCode::from_u8(b).is_none())
        {
            return Err(EncodeError::ReturnCode);
        }
        let buf = reserve(buf, self.encoded_len())?;
        let mut w = Writer::new(buf, PacketType::SubAck, 0, self.remaining_len());
        w.u16(self.packet_id);
        w.bytes(codes);
        w.finish()
    }
}
