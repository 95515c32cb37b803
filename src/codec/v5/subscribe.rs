//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK ([MQTT 5.0 §3.8 to §3.11]).
//!
//! [MQTT 5.0 §3.8 to §3.11]: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901161

use core::fmt;

use super::properties::Context;
use super::{PacketType, Properties, ReasonCodes, byte, shared, write_packet};
use crate::codec::subscribe::check_filter;
use crate::codec::{
    EncodeError, Malformed, QoS, UnsubscribeFilters, packet_len, prefixed_len, string,
};

/// The fixed-header flags of SUBSCRIBE and UNSUBSCRIBE (§3.8.1, §3.10.1).
const FLAGS: u8 = 0b0010;

mod option {
    pub const QOS_MASK: u8 = 0b11;
    pub const NO_LOCAL: u8 = 0b0100;
    pub const RETAIN_AS_PUBLISHED: u8 = 0b1000;
    pub const RETAIN_HANDLING_SHIFT: u8 = 4;
    pub const RETAIN_HANDLING_MASK: u8 = 0b11;
    pub const RESERVED: u8 = 0b1100_0000;
}

/// Whether the server sends retained messages when a subscription is made
/// (§3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send them only if the subscription did not exist yet.
    SendAtNewSubscribe = 1,
    /// 2: do not send them.
    DoNotSend = 2,
}

/// The options of one subscription (§3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SubscriptionOptions {
    /// The maximum QoS the client wants messages delivered with.
    pub qos: QoS,
    /// Do not deliver the client's own publications back to it. Not
    /// allowed on a shared subscription.
    pub no_local: bool,
    /// Keep the RETAIN flag of forwarded messages as published.
    pub retain_as_published: bool,
    /// When retained messages are sent.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with this QoS and every flag at its default.
    pub const fn new(qos: QoS) -> Self {
        Self {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendAtSubscribe,
        }
    }

    /// The options byte on the wire.
    pub const fn to_u8(self) -> u8 {
        let mut byte = self.qos as u8;
        if self.no_local {
            byte |= option::NO_LOCAL;
        }
        if self.retain_as_published {
            byte |= option::RETAIN_AS_PUBLISHED;
        }
        byte | (self.retain_handling as u8) << option::RETAIN_HANDLING_SHIFT
    }

    /// The options for `byte`, or why it is malformed: reserved bits set,
    /// QoS 3 or Retain Handling 3 (§3.8.3.1).
    pub const fn from_u8(byte: u8) -> Result<Self, Malformed> {
        if byte & option::RESERVED != 0 {
            return Err(Malformed::SubscriptionOptions);
        }
        let Some(qos) = QoS::from_bits(byte & option::QOS_MASK) else {
            return Err(Malformed::RequestedQoS);
        };
        let retain_handling =
            match (byte >> option::RETAIN_HANDLING_SHIFT) & option::RETAIN_HANDLING_MASK {
                0 => RetainHandling::SendAtSubscribe,
                1 => RetainHandling::SendAtNewSubscribe,
                2 => RetainHandling::DoNotSend,
                _ => return Err(Malformed::RetainHandling),
            };
        Ok(Self {
            qos,
            no_local: byte & option::NO_LOCAL != 0,
            retain_as_published: byte & option::RETAIN_AS_PUBLISHED != 0,
            retain_handling,
        })
    }
}

/// One topic filter of a SUBSCRIBE and its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Subscription<'a> {
    /// The topic filter; valid per §4.7.
    pub filter: &'a str,
    /// How messages matching it are delivered.
    pub options: SubscriptionOptions,
}

impl Subscription<'_> {
    fn is_shared(&self) -> bool {
        self.filter.starts_with(crate::topic::SHARED_PREFIX)
    }
}

/// The subscriptions of a SUBSCRIBE: a caller's slice when encoding, or
/// the validated wire bytes when decoding. [`iter`](Self::iter) yields
/// [`Subscription`]s without allocating.
#[derive(Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SubscribeFilters<'a>(Repr<'a>);

#[derive(Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Repr<'a> {
    Wire(&'a [u8]),
    List(&'a [Subscription<'a>]),
    /// A list [`SubscribeFilters::checked`] has checked.
    Checked(&'a [Subscription<'a>]),
}

impl<'a> SubscribeFilters<'a> {
    /// Subscriptions to encode. [`Subscribe::encode`] checks each one
    /// every time it runs; see [`checked`](Self::checked).
    pub const fn new(list: &'a [Subscription<'a>]) -> Self {
        Self(Repr::List(list))
    }

    /// Subscriptions to encode, each checked now as [`Subscribe::encode`]
    /// would (a valid topic filter, and no No Local on a shared
    /// subscription), so that no encode checks them again. As
    /// [`codec::SubscribeFilters::checked`](crate::codec::SubscribeFilters::checked)
    /// for MQTT 3.1.1.
    ///
    /// ```
    /// use minimqtt::codec::QoS;
    /// use minimqtt::codec::v5::{SubscribeFilters, Subscription, SubscriptionOptions};
    ///
    /// let list = [Subscription { filter: "a/+", options: SubscriptionOptions::new(QoS::AtLeastOnce) }];
    /// assert_eq!(SubscribeFilters::checked(&list)?.len(), 1);
    /// let bad = [Subscription { filter: "a/#/b", options: SubscriptionOptions::new(QoS::AtMostOnce) }];
    /// assert!(SubscribeFilters::checked(&bad).is_err());
    /// # Ok::<(), minimqtt::codec::EncodeError>(())
    /// ```
    pub fn checked(list: &'a [Subscription<'a>]) -> Result<Self, EncodeError> {
        list.iter().try_for_each(check_subscription)?;
        Ok(Self(Repr::Checked(list)))
    }

    /// The subscriptions in packet order.
    pub fn iter(&self) -> SubscribeIter<'a> {
        SubscribeIter(self.0)
    }

    /// The number of subscriptions. *O*(n) for decoded packets.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are none (never true of a decoded packet).
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
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
            // Validated when decoded; the framing and UTF-8 a `&str` needs
            // are checked again, and a failure ends the iteration.
            Repr::Wire(bytes) => {
                let (rest, filter) = string::binary(bytes).ok()?;
                let filter = core::str::from_utf8(filter).ok()?;
                let (&options, rest) = rest.split_first()?;
                let options = SubscriptionOptions::from_u8(options).ok()?;
                *bytes = rest;
                Some(Subscription { filter, options })
            }
        }
    }
}

fn subscription(input: &[u8]) -> Result<(&[u8], Subscription<'_>), Malformed> {
    let (rest, filter) = shared(string::topic_filter(input))?;
    let (rest, options) = byte(rest)?;
    let sub = Subscription {
        filter,
        options: SubscriptionOptions::from_u8(options)?,
    };
    if sub.is_shared() {
        crate::topic::validate_shared(filter).map_err(Malformed::TopicFilter)?;
        if sub.options.no_local {
            return Err(Malformed::SharedNoLocal);
        }
    }
    Ok((rest, sub))
}

/// The packet identifier and properties every packet of this module
/// starts with.
fn id_and_properties(
    body: &[u8],
    context: Context,
) -> Result<(&[u8], u16, Properties<'_>), Malformed> {
    let (rest, packet_id) = shared(string::packet_id(body))?;
    let (rest, properties) = Properties::parse(rest, context)?;
    Ok((rest, packet_id, properties))
}

/// SUBSCRIBE: a request for the messages matching one or more filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Subscribe<'a> {
    /// The packet identifier the SUBACK will carry; never 0.
    pub packet_id: u16,
    /// Subscription Identifier (at most one) and User Properties.
    pub properties: Properties<'a>,
    /// At least one subscription.
    pub filters: SubscribeFilters<'a>,
}

impl<'a> Subscribe<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, Malformed> {
        let (list, packet_id, properties) = id_and_properties(body, Context::Subscribe)?;
        if list.is_empty() {
            return Err(Malformed::NoFilters);
        }
        let mut rest = list;
        while !rest.is_empty() {
            rest = subscription(rest)?.0;
        }
        Ok(Self {
            packet_id,
            properties,
            filters: SubscribeFilters(Repr::Wire(list)),
        })
    }

    fn remaining_len(&self) -> usize {
        2 + self.properties.field_len() + self.filters.payload_len()
    }

    /// The encoded length of the packet.
    pub fn encoded_len(&self) -> usize {
        packet_len(self.remaining_len())
    }

    /// Checks what §3.8 requires of an outgoing SUBSCRIBE.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::PacketId);
        }
        self.properties.check(Context::Subscribe)?;
        if self.filters.is_empty() {
            return Err(EncodeError::NoFilters);
        }
        match self.filters.0 {
            Repr::Checked(_) => Ok(()),
            _ => self
                .filters
                .iter()
                .try_for_each(|sub| check_subscription(&sub)),
        }
    }

    /// Encodes the packet into `buf`, returning its length. Writes nothing
    /// on error.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.validate()?;
        let first = PacketType::Subscribe.first_byte(FLAGS);
        write_packet(buf, first, self.remaining_len(), |w| {
            w.u16(self.packet_id);
            self.properties.write(w);
            match self.filters.0 {
                Repr::Wire(bytes) => w.bytes(bytes),
                Repr::List(list) | Repr::Checked(list) => {
                    for sub in list {
                        w.prefixed(sub.filter.as_bytes());
                        w.u8(sub.options.to_u8());
                    }
                }
            }
        })
    }
}

/// What an outgoing subscription must be: a valid topic filter, and, if
/// shared, a well-formed one (MQTT-4.8.2-1, MQTT-4.8.2-2) with No Local off
/// (MQTT-3.8.3-4).
fn check_subscription(sub: &Subscription<'_>) -> Result<(), EncodeError> {
    check_v5_filter(sub.filter)?;
    if sub.options.no_local && sub.is_shared() {
        return Err(EncodeError::SharedNoLocal);
    }
    Ok(())
}

/// A valid topic filter, and a well-formed one if shared.
fn check_v5_filter(filter: &str) -> Result<(), EncodeError> {
    check_filter(filter)?;
    crate::topic::validate_shared(filter).map_err(EncodeError::TopicFilter)
}

/// UNSUBSCRIBE: a request to drop one or more subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Unsubscribe<'a> {
    /// The packet identifier the UNSUBACK will carry; never 0.
    pub packet_id: u16,
    /// User Properties, if any.
    pub properties: Properties<'a>,
    /// At least one filter; the list type of the 3.1.1 codec, as the wire
    /// form is the same.
    pub filters: UnsubscribeFilters<'a>,
}

impl<'a> Unsubscribe<'a> {
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, Malformed> {
        let (list, packet_id, properties) = id_and_properties(body, Context::Unsubscribe)?;
        if list.is_empty() {
            return Err(Malformed::NoFilters);
        }
        let mut rest = list;
        while !rest.is_empty() {
            let (after, filter) = shared(string::topic_filter(rest))?;
            crate::topic::validate_shared(filter).map_err(Malformed::TopicFilter)?;
            rest = after;
        }
        Ok(Self {
            packet_id,
            properties,
            filters: UnsubscribeFilters::wire(list),
        })
    }

    fn remaining_len(&self) -> usize {
        let filters: usize = self.filters.iter().map(|f| prefixed_len(f.len())).sum();
        2 + self.properties.field_len() + filters
    }

    /// The encoded length of the packet.
    pub fn encoded_len(&self) -> usize {
        packet_len(self.remaining_len())
    }

    /// Checks what §3.10 requires of an outgoing UNSUBSCRIBE.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if self.packet_id == 0 {
            return Err(EncodeError::PacketId);
        }
        self.properties.check(Context::Unsubscribe)?;
        if self.filters.is_empty() {
            return Err(EncodeError::NoFilters);
        }
        self.filters.iter().try_for_each(check_v5_filter)
    }

    /// Encodes the packet into `buf`, returning its length. Writes nothing
    /// on error.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        self.validate()?;
        let first = PacketType::Unsubscribe.first_byte(FLAGS);
        write_packet(buf, first, self.remaining_len(), |w| {
            w.u16(self.packet_id);
            self.properties.write(w);
            for filter in self.filters.iter() {
                w.prefixed(filter.as_bytes());
            }
        })
    }
}

macro_rules! ack_list {
    ($(#[$doc:meta])* $name:ident, $context:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        pub struct $name<'a> {
            /// The packet identifier of the request; never 0.
            pub packet_id: u16,
            /// Reason String and User Properties, if any.
            pub properties: Properties<'a>,
            /// One code per filter of the request, in order; at least one.
            pub reason_codes: ReasonCodes<'a>,
        }

        impl<'a> $name<'a> {
            pub(crate) fn parse(body: &'a [u8]) -> Result<Self, Malformed> {
                let (codes, packet_id, properties) = id_and_properties(body, Context::$context)?;
                Ok(Self {
                    packet_id,
                    properties,
                    reason_codes: ReasonCodes::parse(codes, PacketType::$name)?,
                })
            }

            /// One too large to buffer: its packet id and reason codes
            /// (the packet's last bytes), checked as a whole one's; its
            /// properties are skipped unread.
            pub(crate) fn without_properties(
                packet_id: [u8; 2],
                codes: &'a [u8],
            ) -> Result<Self, Malformed> {
                let (_, packet_id) = shared(string::packet_id(&packet_id))?;
                Ok(Self {
                    packet_id,
                    properties: Properties::EMPTY,
                    reason_codes: ReasonCodes::parse(codes, PacketType::$name)?,
                })
            }

            fn remaining_len(&self) -> usize {
                2 + self.properties.field_len() + self.reason_codes.len()
            }

            /// The encoded length of the packet.
            pub fn encoded_len(&self) -> usize {
                packet_len(self.remaining_len())
            }

            /// Encodes the packet into `buf`, returning its length. Writes
            /// nothing on error.
            pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
                if self.packet_id == 0 {
                    return Err(EncodeError::PacketId);
                }
                self.properties.check(Context::$context)?;
                self.reason_codes.check(PacketType::$name)?;
                let first = PacketType::$name.first_byte(0);
                write_packet(buf, first, self.remaining_len(), |w| {
                    w.u16(self.packet_id);
                    self.properties.write(w);
                    for code in self.reason_codes.iter() {
                        w.u8(code.to_u8());
                    }
                })
            }
        }
    };
}

ack_list!(
    /// SUBACK: the server's answer to a SUBSCRIBE (§3.9), with a Granted
    /// QoS or a failure per filter.
    SubAck, SubAck
);
ack_list!(
    /// UNSUBACK: the server's answer to an UNSUBSCRIBE (§3.11), with a
    /// reason code per filter (new in MQTT 5).
    UnsubAck, UnsubAck
);
