//! UNSUBSCRIBE ([MQTT 3.1.1 §3.10]).
//!
//! [MQTT 3.1.1 §3.10]: https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718072

use core::fmt;

use super::error::BodyResult;
use super::header::{self, PacketType};
use super::subscribe::{check_filter, id_and_list};
use super::{DecodeError, EncodeError, Malformed, Writer, prefixed_len, reserve, string};

/// The fixed-header flags UNSUBSCRIBE must carry (§3.10.1).
const FLAGS: u8 = 0b0010;

/// The filters of an UNSUBSCRIBE: a caller's slice when encoding, or the
/// already-validated wire bytes when decoding; [`iter`](Self::iter) yields
/// each filter without allocating.
#[derive(Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct UnsubscribeFilters<'a>(Repr<'a>);

#[derive(Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Repr<'a> {
    Wire(&'a [u8]),
    List(&'a [&'a str]),
}

impl<'a> UnsubscribeFilters<'a> {
    /// Filters to encode.
    pub const fn new(list: &'a [&'a str]) -> Self {
        Self(Repr::List(list))
    }

    /// The filters in packet order.
    pub fn iter(&self) -> UnsubscribeIter<'a> {
        UnsubscribeIter(self.0)
    }

    /// The number of filters. *O*(n) for decoded packets.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are no filters (never true of a decoded packet).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Filters already checked on the wire: MQTT 5's UNSUBSCRIBE has the
    /// same list after its properties.
    #[cfg(feature = "v5")]
    pub(crate) const fn wire(bytes: &'a [u8]) -> Self {
        Self(Repr::Wire(bytes))
    }

    /// The filters of a stored UNSUBSCRIBE body (see [`super::stored`]).
    /// Iterating checks the framing and the UTF-8 of each filter again
    /// (the filter rules were checked by the encoder) and stops at a bad one.
    pub(crate) fn stored(body: &'a [u8]) -> Self {
        Self(Repr::Wire(body.get(2..).unwrap_or(&[])))
    }

    /// The filters of a stored MQTT 5 UNSUBSCRIBE body: after the packet id and
    /// the properties. (MQTT 5's options byte carries the QoS in the bits
    /// 3.1.1's requested-QoS byte does.)
    #[cfg(feature = "v5")]
    pub(crate) fn stored_v5(body: &'a [u8]) -> Self {
        let list = body.get(2..).and_then(super::v5::after_properties);
        Self(Repr::Wire(list.unwrap_or(&[])))
    }

    fn payload_len(&self) -> usize {
        match self.0 {
            Repr::Wire(bytes) => bytes.len(),
            Repr::List(list) => list.iter().map(|f| prefixed_len(f.len())).sum(),
        }
    }
}

impl<'a> IntoIterator for UnsubscribeFilters<'a> {
    type Item = &'a str;
    type IntoIter = UnsubscribeIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for UnsubscribeFilters<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for UnsubscribeFilters<'_> {}

impl fmt::Debug for UnsubscribeFilters<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over the filters of an UNSUBSCRIBE.
#[derive(Clone)]
pub struct UnsubscribeIter<'a>(Repr<'a>);

impl<'a> Iterator for UnsubscribeIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Repr::List(list) => {
                let (first, rest) = list.split_first()?;
                *list = rest;
                Some(*first)
            }
            // Validated when decoded (or, stored, when encoded), so the
            // filter rules are not checked again; the framing and the UTF-8,
            // which a `&str` needs, are. A failure ends the iteration.
            Repr::Wire(bytes) => {
                let (rest, filter) = string::binary(bytes).ok()?;
                let filter = core::str::from_utf8(filter).ok()?;
                *bytes = rest;
                Some(filter)
            }
        }
    }
}

/// UNSUBSCRIBE: a request to drop one or more subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Unsubscribe<'a> {
    /// The packet identifier the UNSUBACK will carry; never 0.
    pub packet_id: u16,
    /// At least one filter.
    pub filters: UnsubscribeFilters<'a>,
}

impl<'a> Unsubscribe<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> BodyResult<'a, Self> {
        let (rest, (packet_id, payload)) = id_and_list(body, string::topic_filter)?;
        let filters = UnsubscribeFilters(Repr::Wire(payload));
        Ok((rest, Self { packet_id, filters }))
    }

    /// Decodes a whole UNSUBSCRIBE from the start of `buf`; see
    /// [`Packet::decode`](super::Packet::decode).
    pub fn decode(buf: &'a [u8]) -> Result<(Self, usize), DecodeError> {
        match super::Packet::decode(buf)? {
            (super::Packet::Unsubscribe(p), n) => Ok((p, n)),
            _ => Err(Malformed::PacketType.into()),
        }
    }

    fn remaining_len(&self) -> usize {
        2 + self.filters.payload_len()
    }

    /// The encoded length of the packet.
    pub fn encoded_len(&self) -> usize {
        header::packet_len(self.remaining_len())
    }

    /// Checks what §3.10 requires of an outgoing UNSUBSCRIBE.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::PacketId);
        }
        if self.filters.is_empty() {
            return Err(EncodeError::NoFilters);
        }
        self.filters.iter().try_for_each(check_filter)
    }

    /// Encodes the packet into `buf`, returning its length. Writes nothing on error.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.validate()?;
        let buf = reserve(buf, self.encoded_len())?;
        let mut w = Writer::new(buf, PacketType::Unsubscribe, FLAGS, self.remaining_len());
        w.u16(self.packet_id);
        for filter in self.filters.iter() {
            w.prefixed(filter.as_bytes());
        }
        w.finish()
    }
}
