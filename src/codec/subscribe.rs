//! SUBSCRIBE ([MQTT 3.1.1 §3.8]).
//!
//! [MQTT 3.1.1 §3.8]: https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc398718063

use core::fmt;

use nom::number::complete::u8 as byte;

use super::error::{BodyResult, fail};
use super::header::{self, PacketType};
use super::{DecodeError, EncodeError, Malformed, QoS, prefixed_len, reserve, string};
use crate::topic::{self, TopicError};

/// The fixed-header flags SUBSCRIBE must carry (§3.8.1).
const FLAGS: u8 = 0b0010;

/// One topic filter of a SUBSCRIBE and the maximum QoS asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Subscription<'a> {
    /// The topic filter; valid per §4.7.
    pub filter: &'a str,
    /// The maximum QoS the client wants messages delivered with.
    pub qos: QoS,
}

/// The filters of a SUBSCRIBE: a caller's slice when encoding, or the
/// already-validated wire bytes when decoding. Either way, [`iter`](Self::iter)
/// yields [`Subscription`]s without allocating.
#[derive(Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SubscribeFilters<'a>(Repr<'a>);

#[derive(Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Repr<'a> {
    Wire(&'a [u8]),
    List(&'a [Subscription<'a>]),
    /// A list whose filters [`SubscribeFilters::checked`] has checked.
    Checked(&'a [Subscription<'a>]),
}

impl<'a> SubscribeFilters<'a> {
    /// Filters to encode. [`Subscribe::encode`] checks each one
    /// (§4.7) every time it runs; see [`checked`](Self::checked).
    pub const fn new(list: &'a [Subscription<'a>]) -> Self {
        Self(Repr::List(list))
    }

    /// Filters to encode, each checked now as [`Subscribe::encode`] would
    /// (§4.7: not empty, at most 65,535 bytes, no NUL, wildcards filling
    /// their levels), so that no encode checks them again: a topic is
    /// checked once where it comes in, not every time a packet is built
    /// from it. The type cannot be made any other way from a list, so an
    /// unchecked filter never skips the check.
    ///
    /// ```
    /// use minimqtt::codec::{QoS, Subscribe, SubscribeFilters, Subscription};
    ///
    /// let list = [Subscription { filter: "sensors/+/temp", qos: QoS::AtLeastOnce }];
    /// let filters = SubscribeFilters::checked(&list)?;
    /// let mut buf = [0u8; 32];
    /// let n = Subscribe { packet_id: 1, filters }.encode(&mut buf)?;
    /// assert_eq!(n, 21);
    ///
    /// let bad = [Subscription { filter: "sensors/#/temp", qos: QoS::AtMostOnce }];
    /// assert!(SubscribeFilters::checked(&bad).is_err());
    /// # Ok::<(), minimqtt::codec::EncodeError>(())
    /// ```
    pub fn checked(list: &'a [Subscription<'a>]) -> Result<Self, EncodeError> {
        for sub in list {
            check_filter(sub.filter)?;
        }
        Ok(Self(Repr::Checked(list)))
    }

    /// The filters in packet order.
    pub fn iter(&self) -> SubscribeIter<'a> {
        SubscribeIter(self.0)
    }

    /// The number of filters. *O*(n) for decoded packets.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are no filters (never true of a decoded packet).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The filters of a stored SUBSCRIBE body (see [`super::stored`]).
    /// Iterating checks the framing and the UTF-8 of each filter again
    /// (the filter rules were checked by the encoder) and stops at a bad one.
    pub(crate) fn stored(body: &'a [u8]) -> Self {
        Self(Repr::Wire(body.get(2..).unwrap_or(&[])))
    }

    /// The filters of a stored MQTT 5 SUBSCRIBE body: after the packet id and
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
            Repr::List(list) | Repr::Checked(list) => {
                list.iter().map(|s| prefixed_len(s.filter.len()) + 1).sum()
            }
        }
    }
}

impl<'a> IntoIterator for SubscribeFilters<'a> {
    type Item = Subscription<'a>;
    type IntoIter = SubscribeIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for SubscribeFilters<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for SubscribeFilters<'_> {}

impl fmt::Debug for SubscribeFilters<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over the [`Subscription`]s of a SUBSCRIBE.
#[derive(Clone)]
pub struct SubscribeIter<'a>(Repr<'a>);

impl<'a> Iterator for SubscribeIter<'a> {
    type Item = Subscription<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Repr::List(list) | Repr::Checked(list) => {
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
                let (&options, rest) = rest.split_first()?;
                // The QoS bits only: an MQTT 5 SUBSCRIBE the session
                // stored keeps its other options in the same byte.
                let qos = QoS::from_bits(options & 0x03)?;
                *bytes = rest;
                Some(Subscription { filter, qos })
            }
        }
    }
}

fn subscription(input: &[u8]) -> BodyResult<'_, Subscription<'_>> {
    let (input, filter) = string::topic_filter(input)?;
    let (input, options) = byte(input)?;
    // The upper six bits are reserved (§3.8.3.1); QoS 3 is forbidden.
    match QoS::from_bits(options) {
        Some(qos) => Ok((input, Subscription { filter, qos })),
        None => fail(Malformed::RequestedQoS),
    }
}

/// SUBSCRIBE: a request for the messages matching one or more filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Subscribe<'a> {
    /// The packet identifier the SUBACK will carry; never 0.
    pub packet_id: u16,
    /// At least one filter.
    pub filters: SubscribeFilters<'a>,
}

impl<'a> Subscribe<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> BodyResult<'a, Self> {
        let (rest, (packet_id, payload)) = id_and_list(body, subscription)?;
        let filters = SubscribeFilters(Repr::Wire(payload));
        Ok((rest, Self { packet_id, filters }))
    }

    /// Decodes a whole SUBSCRIBE from the start of `buf`; see
    /// [`Packet::decode`](super::Packet::decode).
    pub fn decode(buf: &'a [u8]) -> Result<(Self, usize), DecodeError> {
        match super::Packet::decode(buf)? {
            (super::Packet::Subscribe(p), n) => Ok((p, n)),
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

    /// The encoded length of a SUBSCRIBE whose filters are `filter_lens`
    /// bytes long, without the filters at hand.
    pub(crate) fn encoded_len_for(filter_lens: impl Iterator<Item = usize>) -> usize {
        // Packet id, then per filter a length prefix, the filter and the
        // requested-QoS byte.
        let payload: usize = filter_lens.map(|len| prefixed_len(len) + 1).sum();
        header::packet_len(2 + payload)
    }

    /// Checks what §3.8 requires of an outgoing SUBSCRIBE.
    pub fn validate(&self) -> Result<(), EncodeError> {
        self.checked_remaining_len(check_filter).map(drop)
    }

    /// [`validate`](Self::validate) with `check` for each filter, and the
    /// remaining length on the way: one pass over the filters.
    #[inline(always)]
    fn checked_remaining_len(
        &self,
        check: impl Fn(&str) -> Result<(), EncodeError>,
    ) -> Result<usize, EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::PacketId);
        }
        let payload = match self.filters.0 {
            Repr::List(list) => {
                let mut len = 0;
                for sub in list {
                    check(sub.filter)?;
                    len += prefixed_len(sub.filter.len()) + 1;
                }
                len
            }
            Repr::Checked(list) => list.iter().map(|s| prefixed_len(s.filter.len()) + 1).sum(),
            // Only `parse` and `stored` make these bytes, from a packet
            // whose every filter was checked.
            Repr::Wire(bytes) => bytes.len(),
        };
        if payload == 0 {
            return Err(EncodeError::NoFilters);
        }
        Ok(2 + payload)
    }

    /// Encodes the packet into `buf`, returning its length. Writes nothing on error.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let remaining_len = self.checked_remaining_len(check_filter_for_encode)?;
        let len = header::packet_len(remaining_len);
        let buf = reserve(buf, len)?;
        let too_small = EncodeError::BufferTooSmall { needed: len };
        let id = self.packet_id.to_be_bytes();
        // The fixed header and the packet id. Under 128 bytes of body, the
        // usual SUBSCRIBE, they are 4 bytes written at once. The checks of
        // lengths from here on cannot fail: `buf` is exactly as long as the
        // header, the packet id and the filters add up to.
        let mut rest = match (
            u8::try_from(remaining_len),
            buf.split_first_chunk_mut::<4>(),
        ) {
            (Ok(short @ 0..=127), Some((head, rest))) => {
                *head = [PacketType::Subscribe.first_byte(FLAGS), short, id[0], id[1]];
                rest
            }
            _ => {
                let header_len = header::write(buf, PacketType::Subscribe, FLAGS, remaining_len)?;
                let Some((to, rest)) = buf
                    .get_mut(header_len..)
                    .and_then(<[u8]>::split_first_chunk_mut::<2>)
                else {
                    return Err(too_small);
                };
                *to = id;
                rest
            }
        };
        let list = match self.filters.0 {
            Repr::List(list) | Repr::Checked(list) => list,
            // Already the wire form of the filters (see above).
            Repr::Wire(bytes) => {
                let Some(dst) = rest.get_mut(..bytes.len()) else {
                    return Err(too_small);
                };
                dst.copy_from_slice(bytes);
                return Ok(len);
            }
        };
        // Each filter in one piece: its length, its bytes, its QoS. Not
        // `Writer`: its bounds and error checks per field cost this encode
        // about 10 % more instructions.
        for sub in list {
            let filter = sub.filter.as_bytes();
            let Ok(filter_len) = u16::try_from(filter.len()) else {
                return Err(EncodeError::StringTooLong);
            };
            let Some((field, tail)) = rest.split_at_mut_checked(filter.len() + 3) else {
                return Err(too_small);
            };
            if let [hi, lo, bytes @ .., qos] = field {
                [*hi, *lo] = filter_len.to_be_bytes();
                bytes.copy_from_slice(filter);
                *qos = sub.qos as u8;
            }
            rest = tail;
        }
        Ok(len)
    }
}

/// The body of SUBSCRIBE and UNSUBSCRIBE: a packet id, then one or more
/// `item`s filling the rest exactly. Every item is checked here, so the
/// borrowing iterators over the returned list never meet a bad one.
#[inline]
pub(crate) fn id_and_list<'a, T>(
    body: &'a [u8],
    item: fn(&'a [u8]) -> BodyResult<'a, T>,
) -> BodyResult<'a, (u16, &'a [u8])> {
    let (list, packet_id) = string::packet_id(body)?;
    if list.is_empty() {
        return fail(Malformed::NoFilters);
    }
    let mut rest = list;
    while !rest.is_empty() {
        rest = item(rest)?.0;
    }
    Ok((rest, (packet_id, list)))
}

/// The checks an outgoing topic filter needs, shared with UNSUBSCRIBE:
/// [`topic::validate_filter`] with its errors mapped.
#[inline]
pub(crate) fn check_filter(filter: &str) -> Result<(), EncodeError> {
    topic::validate_filter(filter).map_err(filter_error)
}

/// [`check_filter`] with the byte scan inlined, for the SUBSCRIBE encoder
/// on 64-bit targets: the call it saves is some 8 instructions a filter
/// (benches/callgrind.sh). Microcontrollers, 32-bit, keep the one shared
/// copy of the scan instead: the second one costs 360 to 600 bytes of flash.
#[cfg(target_pointer_width = "64")]
#[inline(always)]
fn check_filter_for_encode(filter: &str) -> Result<(), EncodeError> {
    let bytes = filter.as_bytes();
    if !bytes.is_empty()
        && bytes.len() <= topic::MAX_TOPIC_LEN
        && topic::filter_chars_ok_inline(bytes)
    {
        return Ok(());
    }
    check_filter(filter)
}

#[cfg(not(target_pointer_width = "64"))]
use check_filter as check_filter_for_encode;

fn filter_error(e: TopicError) -> EncodeError {
    match e {
        TopicError::TooLong => EncodeError::StringTooLong,
        e => EncodeError::TopicFilter(e),
    }
}
