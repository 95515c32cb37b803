//! Properties ([MQTT 5.0 §2.2.2]): the optional, typed fields after a
//! packet's variable header (and, in CONNECT, before the will's topic).
//!
//! A decoded [`Properties`] is the property bytes themselves, checked once
//! when the packet is decoded; [`Properties::iter`] reads them again as
//! [`Property`] values that borrow from the packet. Nothing is copied. To
//! encode, a caller builds a `Properties` from a slice of `Property`
//! values, and the encoder checks it as strictly as the decoder would.
//!
//! [MQTT 5.0 §2.2.2]: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901027

use core::fmt;

use super::{Parsed, varint};
use crate::codec::{EncodeError, MAX_REMAINING_LENGTH, Malformed, Writer, string};
use crate::topic::{self, TopicError};

/// The property identifiers of §2.2.2.2.
pub(crate) mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0b;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1a;
    pub const SERVER_REFERENCE: u8 = 0x1c;
    pub const REASON_STRING: u8 = 0x1f;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2a;
}

/// One property, borrowing its strings and binary data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Property<'a> {
    /// 0x01: 1 when the payload is UTF-8 text, 0 when unspecified bytes.
    /// PUBLISH, will.
    PayloadFormatIndicator(u8),
    /// 0x02: the message's lifetime in seconds. PUBLISH, will.
    MessageExpiryInterval(u32),
    /// 0x03: the payload's content type, such as a MIME type. PUBLISH, will.
    ContentType(&'a str),
    /// 0x08: the topic name a response goes to (no wildcards). PUBLISH, will.
    ResponseTopic(&'a str),
    /// 0x09: data that ties a response to its request. PUBLISH, will.
    CorrelationData(&'a [u8]),
    /// 0x0B: 1 to 268,435,455. SUBSCRIBE (once), PUBLISH (once per
    /// matching subscription).
    SubscriptionIdentifier(u32),
    /// 0x11: seconds the session outlives the connection. CONNECT,
    /// CONNACK, DISCONNECT.
    SessionExpiryInterval(u32),
    /// 0x12: the client identifier the server chose. CONNACK.
    AssignedClientIdentifier(&'a str),
    /// 0x13: the keep-alive the server imposes, in seconds. CONNACK.
    ServerKeepAlive(u16),
    /// 0x15: the name of the extended authentication method. CONNECT,
    /// CONNACK, AUTH.
    AuthenticationMethod(&'a str),
    /// 0x16: the method's data. CONNECT, CONNACK, AUTH.
    AuthenticationData(&'a [u8]),
    /// 0x17: 0 or 1, whether the server may send reason strings and user
    /// properties on failures. CONNECT.
    RequestProblemInformation(u8),
    /// 0x18: seconds the server waits before publishing the will. Will.
    WillDelayInterval(u32),
    /// 0x19: 0 or 1, whether the client asks for Response Information.
    /// CONNECT.
    RequestResponseInformation(u8),
    /// 0x1A: the basis of response topics. CONNACK.
    ResponseInformation(&'a str),
    /// 0x1C: another server the client should use. CONNACK, DISCONNECT.
    ServerReference(&'a str),
    /// 0x1F: a human-readable reason. Every acknowledgement, DISCONNECT,
    /// AUTH.
    ReasonString(&'a str),
    /// 0x21: in-flight QoS 1 and 2 messages the sender accepts; not 0.
    /// CONNECT, CONNACK.
    ReceiveMaximum(u16),
    /// 0x22: the highest topic alias the sender accepts. CONNECT, CONNACK.
    TopicAliasMaximum(u16),
    /// 0x23: a number standing for the topic; not 0. PUBLISH.
    TopicAlias(u16),
    /// 0x24: 0 or 1, the highest QoS the server supports. CONNACK.
    MaximumQoS(u8),
    /// 0x25: 0 or 1, whether the server supports retained messages. CONNACK.
    RetainAvailable(u8),
    /// 0x26: an application-defined name and value; may repeat. Every
    /// packet with properties, and the will.
    UserProperty(&'a str, &'a str),
    /// 0x27: the largest packet the sender accepts, in bytes; not 0.
    /// CONNECT, CONNACK.
    MaximumPacketSize(u32),
    /// 0x28: 0 or 1, whether the server supports wildcard subscriptions.
    /// CONNACK.
    WildcardSubscriptionAvailable(u8),
    /// 0x29: 0 or 1, whether the server supports Subscription Identifiers.
    /// CONNACK.
    SubscriptionIdentifierAvailable(u8),
    /// 0x2A: 0 or 1, whether the server supports shared subscriptions.
    /// CONNACK.
    SharedSubscriptionAvailable(u8),
}

impl Property<'_> {
    /// The property identifier (§2.2.2.2).
    pub const fn id(&self) -> u8 {
        match self {
            Self::PayloadFormatIndicator(_) => id::PAYLOAD_FORMAT_INDICATOR,
            Self::MessageExpiryInterval(_) => id::MESSAGE_EXPIRY_INTERVAL,
            Self::ContentType(_) => id::CONTENT_TYPE,
            Self::ResponseTopic(_) => id::RESPONSE_TOPIC,
            Self::CorrelationData(_) => id::CORRELATION_DATA,
            Self::SubscriptionIdentifier(_) => id::SUBSCRIPTION_IDENTIFIER,
            Self::SessionExpiryInterval(_) => id::SESSION_EXPIRY_INTERVAL,
            Self::AssignedClientIdentifier(_) => id::ASSIGNED_CLIENT_IDENTIFIER,
            Self::ServerKeepAlive(_) => id::SERVER_KEEP_ALIVE,
            Self::AuthenticationMethod(_) => id::AUTHENTICATION_METHOD,
            Self::AuthenticationData(_) => id::AUTHENTICATION_DATA,
            Self::RequestProblemInformation(_) => id::REQUEST_PROBLEM_INFORMATION,
            Self::WillDelayInterval(_) => id::WILL_DELAY_INTERVAL,
            Self::RequestResponseInformation(_) => id::REQUEST_RESPONSE_INFORMATION,
            Self::ResponseInformation(_) => id::RESPONSE_INFORMATION,
            Self::ServerReference(_) => id::SERVER_REFERENCE,
            Self::ReasonString(_) => id::REASON_STRING,
            Self::ReceiveMaximum(_) => id::RECEIVE_MAXIMUM,
            Self::TopicAliasMaximum(_) => id::TOPIC_ALIAS_MAXIMUM,
            Self::TopicAlias(_) => id::TOPIC_ALIAS,
            Self::MaximumQoS(_) => id::MAXIMUM_QOS,
            Self::RetainAvailable(_) => id::RETAIN_AVAILABLE,
            Self::UserProperty(..) => id::USER_PROPERTY,
            Self::MaximumPacketSize(_) => id::MAXIMUM_PACKET_SIZE,
            Self::WildcardSubscriptionAvailable(_) => id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            Self::SubscriptionIdentifierAvailable(_) => id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            Self::SharedSubscriptionAvailable(_) => id::SHARED_SUBSCRIPTION_AVAILABLE,
        }
    }

    /// The encoded length: the identifier (one byte for every defined
    /// property) and the value.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Self::PayloadFormatIndicator(_)
            | Self::RequestProblemInformation(_)
            | Self::RequestResponseInformation(_)
            | Self::MaximumQoS(_)
            | Self::RetainAvailable(_)
            | Self::WildcardSubscriptionAvailable(_)
            | Self::SubscriptionIdentifierAvailable(_)
            | Self::SharedSubscriptionAvailable(_) => 1,
            Self::ServerKeepAlive(_)
            | Self::ReceiveMaximum(_)
            | Self::TopicAliasMaximum(_)
            | Self::TopicAlias(_) => 2,
            Self::MessageExpiryInterval(_)
            | Self::SessionExpiryInterval(_)
            | Self::WillDelayInterval(_)
            | Self::MaximumPacketSize(_) => 4,
            Self::SubscriptionIdentifier(v) => varint::len(*v),
            Self::ContentType(s)
            | Self::ResponseTopic(s)
            | Self::AssignedClientIdentifier(s)
            | Self::AuthenticationMethod(s)
            | Self::ResponseInformation(s)
            | Self::ServerReference(s)
            | Self::ReasonString(s) => 2 + s.len(),
            Self::CorrelationData(b) | Self::AuthenticationData(b) => 2 + b.len(),
            Self::UserProperty(name, value) => 4 + name.len() + value.len(),
        }
    }

    /// Why the value is out of its range, if it is: the checks that do not
    /// depend on the packet, shared by the decoder and the encoder.
    fn value_error(&self) -> Option<ValueError> {
        match *self {
            Self::PayloadFormatIndicator(v)
            | Self::RequestProblemInformation(v)
            | Self::RequestResponseInformation(v)
            | Self::MaximumQoS(v)
            | Self::RetainAvailable(v)
            | Self::WildcardSubscriptionAvailable(v)
            | Self::SubscriptionIdentifierAvailable(v)
            | Self::SharedSubscriptionAvailable(v)
                if v > 1 =>
            {
                Some(ValueError::Range)
            }
            Self::ReceiveMaximum(0) | Self::TopicAlias(0) | Self::MaximumPacketSize(0) => {
                Some(ValueError::Range)
            }
            Self::SubscriptionIdentifier(v) if v == 0 || v > MAX_REMAINING_LENGTH => {
                Some(ValueError::SubscriptionIdentifier)
            }
            Self::ResponseTopic(name) => topic::validate_name(name)
                .err()
                .map(ValueError::ResponseTopic),
            _ => None,
        }
    }

    /// The encoder's checks of one property, whatever the packet.
    fn check(&self) -> Result<(), EncodeError> {
        let too_long = |len: usize| len > usize::from(u16::MAX);
        match *self {
            Self::ContentType(s)
            | Self::AssignedClientIdentifier(s)
            | Self::AuthenticationMethod(s)
            | Self::ResponseInformation(s)
            | Self::ServerReference(s)
            | Self::ReasonString(s) => string::check(s)?,
            // Checked as a string first: a topic of 65,536 bytes is too
            // long for the field before it is too long for a topic.
            Self::ResponseTopic(s) => string::check(s)?,
            Self::UserProperty(name, value) => {
                string::check(name)?;
                string::check(value)?;
            }
            Self::CorrelationData(b) | Self::AuthenticationData(b) if too_long(b.len()) => {
                return Err(EncodeError::StringTooLong);
            }
            _ => {}
        }
        match self.value_error() {
            None => Ok(()),
            Some(ValueError::Range) => Err(EncodeError::PropertyValue(self.id())),
            Some(ValueError::SubscriptionIdentifier) => Err(EncodeError::SubscriptionIdentifier),
            Some(ValueError::ResponseTopic(e)) => Err(EncodeError::ResponseTopic(e)),
        }
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.u8(self.id());
        match *self {
            Self::PayloadFormatIndicator(v)
            | Self::RequestProblemInformation(v)
            | Self::RequestResponseInformation(v)
            | Self::MaximumQoS(v)
            | Self::RetainAvailable(v)
            | Self::WildcardSubscriptionAvailable(v)
            | Self::SubscriptionIdentifierAvailable(v)
            | Self::SharedSubscriptionAvailable(v) => w.u8(v),
            Self::ServerKeepAlive(v)
            | Self::ReceiveMaximum(v)
            | Self::TopicAliasMaximum(v)
            | Self::TopicAlias(v) => w.u16(v),
            Self::MessageExpiryInterval(v)
            | Self::SessionExpiryInterval(v)
            | Self::WillDelayInterval(v)
            | Self::MaximumPacketSize(v) => w.bytes(&v.to_be_bytes()),
            Self::SubscriptionIdentifier(v) => varint::write(w, v),
            Self::ContentType(s)
            | Self::ResponseTopic(s)
            | Self::AssignedClientIdentifier(s)
            | Self::AuthenticationMethod(s)
            | Self::ResponseInformation(s)
            | Self::ServerReference(s)
            | Self::ReasonString(s) => w.prefixed(s.as_bytes()),
            Self::CorrelationData(b) | Self::AuthenticationData(b) => w.prefixed(b),
            Self::UserProperty(name, value) => {
                w.prefixed(name.as_bytes());
                w.prefixed(value.as_bytes());
            }
        }
    }
}

/// A value out of range, before it is told as a decode or an encode error.
enum ValueError {
    Range,
    SubscriptionIdentifier,
    ResponseTopic(TopicError),
}

/// Where a property list stands: each packet with properties, and the
/// will inside CONNECT, allows its own set (§2.2.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

const fn bits(ids: &[u8]) -> u64 {
    let mut mask = 0;
    let mut i = 0;
    while i < ids.len() {
        mask |= 1 << ids[i];
        i += 1;
    }
    mask
}

impl Context {
    /// The identifiers this context allows, one bit each (every defined
    /// identifier is below 64).
    const fn allowed(self) -> u64 {
        use id::*;
        // Reason String and User Property: every acknowledgement.
        const ACK: u64 = bits(&[REASON_STRING, USER_PROPERTY]);
        match self {
            Self::Connect => bits(&[
                SESSION_EXPIRY_INTERVAL,
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                REQUEST_PROBLEM_INFORMATION,
                REQUEST_RESPONSE_INFORMATION,
                RECEIVE_MAXIMUM,
                TOPIC_ALIAS_MAXIMUM,
                USER_PROPERTY,
                MAXIMUM_PACKET_SIZE,
            ]),
            Self::Will => bits(&[
                PAYLOAD_FORMAT_INDICATOR,
                MESSAGE_EXPIRY_INTERVAL,
                CONTENT_TYPE,
                RESPONSE_TOPIC,
                CORRELATION_DATA,
                WILL_DELAY_INTERVAL,
                USER_PROPERTY,
            ]),
            Self::ConnAck => bits(&[
                SESSION_EXPIRY_INTERVAL,
                ASSIGNED_CLIENT_IDENTIFIER,
                SERVER_KEEP_ALIVE,
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                RESPONSE_INFORMATION,
                SERVER_REFERENCE,
                REASON_STRING,
                RECEIVE_MAXIMUM,
                TOPIC_ALIAS_MAXIMUM,
                MAXIMUM_QOS,
                RETAIN_AVAILABLE,
                USER_PROPERTY,
                MAXIMUM_PACKET_SIZE,
                WILDCARD_SUBSCRIPTION_AVAILABLE,
                SUBSCRIPTION_IDENTIFIER_AVAILABLE,
                SHARED_SUBSCRIPTION_AVAILABLE,
            ]),
            Self::Publish => bits(&[
                PAYLOAD_FORMAT_INDICATOR,
                MESSAGE_EXPIRY_INTERVAL,
                CONTENT_TYPE,
                RESPONSE_TOPIC,
                CORRELATION_DATA,
                SUBSCRIPTION_IDENTIFIER,
                TOPIC_ALIAS,
                USER_PROPERTY,
            ]),
            Self::PubAck
            | Self::PubRec
            | Self::PubRel
            | Self::PubComp
            | Self::SubAck
            | Self::UnsubAck => ACK,
            Self::Subscribe => bits(&[SUBSCRIPTION_IDENTIFIER, USER_PROPERTY]),
            Self::Unsubscribe => bits(&[USER_PROPERTY]),
            Self::Disconnect => bits(&[
                SESSION_EXPIRY_INTERVAL,
                SERVER_REFERENCE,
                REASON_STRING,
                USER_PROPERTY,
            ]),
            Self::Auth => bits(&[
                AUTHENTICATION_METHOD,
                AUTHENTICATION_DATA,
                REASON_STRING,
                USER_PROPERTY,
            ]),
        }
    }

    /// Whether property `id` may appear more than once here: User Property
    /// anywhere, Subscription Identifier in PUBLISH (one per matching
    /// subscription, §3.3.4).
    const fn repeatable(self, id: u8) -> bool {
        id == id::USER_PROPERTY
            || (id == id::SUBSCRIPTION_IDENTIFIER && matches!(self, Self::Publish))
    }
}

/// Whether the identifiers `seen` in a list have Authentication Data
/// without an Authentication Method, which is a Protocol Error wherever
/// the data may appear (§3.1.2.11.10, §3.2.2.3.18, §3.15.2.2.3).
const fn data_without_method(seen: u64) -> bool {
    seen & (1 << id::AUTHENTICATION_DATA) != 0 && seen & (1 << id::AUTHENTICATION_METHOD) == 0
}

/// Why a property may not stand where it is.
enum Refusal {
    NotAllowed,
    Duplicate,
}

/// Admits property `id` into a list in `context`, given the identifiers
/// `seen` before it (one bit each); marks it seen.
fn admit(id: u8, context: Context, seen: &mut u64) -> Result<(), Refusal> {
    // Every defined id is below 64: an id the mask cannot hold is refused.
    let bit = 1u64.checked_shl(u32::from(id)).unwrap_or(0);
    if context.allowed() & bit == 0 {
        return Err(Refusal::NotAllowed);
    }
    if *seen & bit != 0 && !context.repeatable(id) {
        return Err(Refusal::Duplicate);
    }
    *seen |= bit;
    Ok(())
}

/// The property list of a packet or a will.
///
/// Decoded, it is the validated wire bytes, read on demand; to encode, it
/// wraps the caller's slice. Two lists are equal when they hold the same
/// properties in the same order, whichever form they take.
///
/// ```
/// use minimqtt::codec::v5::{Properties, Property};
///
/// let list = [
///     Property::ReceiveMaximum(16),
///     Property::UserProperty("site", "north"),
/// ];
/// let props = Properties::new(&list);
/// assert_eq!(props.receive_maximum(), Some(16));
/// assert_eq!(props.user_properties().collect::<Vec<_>>(), [("site", "north")]);
/// ```
#[derive(Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Properties<'a>(Repr<'a>);

#[derive(Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Repr<'a> {
    Wire(&'a [u8]),
    List(&'a [Property<'a>]),
}

impl Default for Properties<'_> {
    fn default() -> Self {
        Self::EMPTY
    }
}

macro_rules! getters {
    ($($(#[$doc:meta])* $name:ident -> $ty:ty = $variant:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> Option<$ty> {
                self.iter().find_map(|p| match p {
                    Property::$variant(v) => Some(v),
                    _ => None,
                })
            }
        )*
    };
}

impl<'a> Properties<'a> {
    /// No properties.
    pub const EMPTY: Self = Self(Repr::List(&[]));

    /// Properties to encode, in this order.
    pub const fn new(list: &'a [Property<'a>]) -> Self {
        Self(Repr::List(list))
    }

    /// The properties in packet order.
    pub fn iter(&self) -> PropertiesIter<'a> {
        PropertiesIter(self.0)
    }

    /// Whether there are none.
    pub const fn is_empty(&self) -> bool {
        match self.0 {
            Repr::Wire(bytes) => bytes.is_empty(),
            Repr::List(list) => list.is_empty(),
        }
    }

    /// The number of properties. *O*(n) for decoded packets.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    getters! {
        /// Payload Format Indicator: 1 for UTF-8 text, 0 (the default when
        /// absent) for unspecified bytes.
        payload_format_indicator -> u8 = PayloadFormatIndicator;
        /// Message Expiry Interval, in seconds; absent, the message does
        /// not expire.
        message_expiry_interval -> u32 = MessageExpiryInterval;
        /// Content Type.
        content_type -> &'a str = ContentType;
        /// Response Topic.
        response_topic -> &'a str = ResponseTopic;
        /// Correlation Data.
        correlation_data -> &'a [u8] = CorrelationData;
        /// Session Expiry Interval, in seconds; absent, 0: the session
        /// ends with the connection.
        session_expiry_interval -> u32 = SessionExpiryInterval;
        /// Assigned Client Identifier.
        assigned_client_identifier -> &'a str = AssignedClientIdentifier;
        /// Server Keep Alive, in seconds: replaces the client's keep-alive.
        server_keep_alive -> u16 = ServerKeepAlive;
        /// Authentication Method.
        authentication_method -> &'a str = AuthenticationMethod;
        /// Authentication Data.
        authentication_data -> &'a [u8] = AuthenticationData;
        /// Request Problem Information; absent, 1.
        request_problem_information -> u8 = RequestProblemInformation;
        /// Will Delay Interval, in seconds; absent, 0.
        will_delay_interval -> u32 = WillDelayInterval;
        /// Request Response Information; absent, 0.
        request_response_information -> u8 = RequestResponseInformation;
        /// Response Information.
        response_information -> &'a str = ResponseInformation;
        /// Server Reference.
        server_reference -> &'a str = ServerReference;
        /// Reason String.
        reason_string -> &'a str = ReasonString;
        /// Receive Maximum; absent, 65,535.
        receive_maximum -> u16 = ReceiveMaximum;
        /// Topic Alias Maximum; absent, 0: no topic aliases.
        topic_alias_maximum -> u16 = TopicAliasMaximum;
        /// Topic Alias.
        topic_alias -> u16 = TopicAlias;
        /// Maximum QoS, 0 or 1; absent, the server supports QoS 2.
        maximum_qos -> u8 = MaximumQoS;
        /// Retain Available; absent, 1.
        retain_available -> u8 = RetainAvailable;
        /// Maximum Packet Size, in bytes; absent, no limit but the protocol's.
        maximum_packet_size -> u32 = MaximumPacketSize;
        /// Wildcard Subscription Available; absent, 1.
        wildcard_subscription_available -> u8 = WildcardSubscriptionAvailable;
        /// Subscription Identifier Available; absent, 1.
        subscription_identifier_available -> u8 = SubscriptionIdentifierAvailable;
        /// Shared Subscription Available; absent, 1.
        shared_subscription_available -> u8 = SharedSubscriptionAvailable;
    }

    /// The Subscription Identifiers, in order: at most one in a SUBSCRIBE,
    /// one per matching subscription in a PUBLISH.
    pub fn subscription_identifiers(&self) -> impl Iterator<Item = u32> + 'a {
        self.iter().filter_map(|p| match p {
            Property::SubscriptionIdentifier(v) => Some(v),
            _ => None,
        })
    }

    /// The User Properties as (name, value) pairs, in order.
    pub fn user_properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.iter().filter_map(|p| match p {
            Property::UserProperty(name, value) => Some((name, value)),
            _ => None,
        })
    }

    /// Reads a property length and the list after it from the start of
    /// `input`, checking every property against `context`.
    #[inline]
    pub(crate) fn parse(input: &'a [u8], context: Context) -> Parsed<'a, Self> {
        // Most packets carry none: one byte, nothing to check.
        if let [0, rest @ ..] = input {
            return Ok((rest, Self(Repr::Wire(&[]))));
        }
        Self::parse_list(input, context)
    }

    fn parse_list(input: &'a [u8], context: Context) -> Parsed<'a, Self> {
        let (len, rest) = varint::read_in(input, Malformed::Truncated)?;
        let Some((mut list, rest)) = rest.split_at_checked(len as usize) else {
            return Err(Malformed::PropertyLength);
        };
        let bytes = list;
        let mut seen = 0;
        while !list.is_empty() {
            let (property, after) = parse_one(list)?;
            let id = property.id();
            match admit(id, context, &mut seen) {
                Ok(()) => {}
                Err(Refusal::NotAllowed) => return Err(Malformed::PropertyNotAllowed(id)),
                Err(Refusal::Duplicate) => return Err(Malformed::DuplicateProperty(id)),
            }
            match property.value_error() {
                None => {}
                Some(ValueError::Range) => return Err(Malformed::PropertyValue(id)),
                Some(ValueError::SubscriptionIdentifier) => {
                    return Err(Malformed::SubscriptionIdentifier);
                }
                Some(ValueError::ResponseTopic(e)) => return Err(Malformed::ResponseTopic(e)),
            }
            list = after;
        }
        if data_without_method(seen) {
            return Err(Malformed::AuthenticationData);
        }
        Ok((rest, Self(Repr::Wire(bytes))))
    }

    /// The length of the list's contents, not counting the property length
    /// in front: no checks, for `encoded_len`.
    pub(crate) fn content_len(&self) -> usize {
        match self.0 {
            Repr::Wire(bytes) => bytes.len(),
            Repr::List(list) => list.iter().map(Property::encoded_len).sum(),
        }
    }

    /// The length of the whole field: the property length and the list.
    pub(crate) fn field_len(&self) -> usize {
        let len = self.content_len();
        varint::len(u32::try_from(len).unwrap_or(u32::MAX)) + len
    }

    /// The encoder's checks of the whole list in `context`: the same rules
    /// the decoder applies. Returns the field's length.
    pub(crate) fn check(&self, context: Context) -> Result<usize, EncodeError> {
        let mut seen = 0;
        for property in self.iter() {
            let id = property.id();
            match admit(id, context, &mut seen) {
                Ok(()) => {}
                Err(Refusal::NotAllowed) => return Err(EncodeError::PropertyNotAllowed(id)),
                Err(Refusal::Duplicate) => return Err(EncodeError::DuplicateProperty(id)),
            }
            property.check()?;
        }
        if data_without_method(seen) {
            return Err(EncodeError::AuthenticationData);
        }
        let len = self.content_len();
        if len > MAX_REMAINING_LENGTH as usize {
            return Err(EncodeError::PacketTooLarge);
        }
        Ok(self.field_len())
    }

    /// [`EncodeError::PayloadFormat`] if the list marks `payload` as UTF-8
    /// (a Payload Format Indicator of 1) and it is not.
    pub(crate) fn check_payload(&self, payload: &[u8]) -> Result<(), EncodeError> {
        if self.payload_format_indicator() == Some(1) && core::str::from_utf8(payload).is_err() {
            return Err(EncodeError::PayloadFormat);
        }
        Ok(())
    }

    /// Writes the property length and the list; [`check`](Self::check)
    /// has passed.
    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        let len = self.content_len();
        varint::write(w, u32::try_from(len).unwrap_or(MAX_REMAINING_LENGTH));
        self.write_list(w);
    }

    /// Writes the list without its length.
    pub(crate) fn write_list(&self, w: &mut Writer<'_>) {
        match self.0 {
            // Checked when decoded: the bytes go out as they came in.
            Repr::Wire(bytes) => w.bytes(bytes),
            Repr::List(list) => list.iter().for_each(|p| p.write(w)),
        }
    }
}

impl<'a> IntoIterator for Properties<'a> {
    type Item = Property<'a>;
    type IntoIter = PropertiesIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for Properties<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Properties<'_> {}

impl fmt::Debug for Properties<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over the [`Property`] values of a [`Properties`] list.
#[derive(Clone)]
pub struct PropertiesIter<'a>(Repr<'a>);

impl<'a> Iterator for PropertiesIter<'a> {
    type Item = Property<'a>;

    fn next(&mut self) -> Option<Property<'a>> {
        match &mut self.0 {
            Repr::List(list) => {
                let (first, rest) = list.split_first()?;
                *list = rest;
                Some(*first)
            }
            // Validated when decoded, so this cannot fail; if it did, the
            // iteration would end instead of panicking.
            Repr::Wire(bytes) => match parse_one(bytes) {
                Ok((property, rest)) => {
                    *bytes = rest;
                    Some(property)
                }
                Err(_) => {
                    *bytes = &[];
                    None
                }
            },
        }
    }
}

/// A value of `N` bytes; the list ending first is [`Malformed::PropertyLength`].
fn fixed<const N: usize>(bytes: &[u8]) -> Result<([u8; N], &[u8]), Malformed> {
    match bytes.split_first_chunk::<N>() {
        Some((value, rest)) => Ok((*value, rest)),
        None => Err(Malformed::PropertyLength),
    }
}

/// A string inside a property list: the list ending first is
/// [`Malformed::PropertyLength`], a bad string what `string::utf8` says.
fn utf8(bytes: &[u8]) -> Result<(&str, &[u8]), Malformed> {
    match string::utf8(bytes) {
        Ok((rest, s)) => Ok((s, rest)),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) if e.0 != Malformed::Truncated => Err(e.0),
        Err(_) => Err(Malformed::PropertyLength),
    }
}

fn binary(bytes: &[u8]) -> Result<(&[u8], &[u8]), Malformed> {
    match string::binary(bytes) {
        Ok((rest, b)) => Ok((b, rest)),
        Err(_) => Err(Malformed::PropertyLength),
    }
}

/// One User Property's strings (§1.5.7): a bad string in it is
/// [`Malformed::StringPair`].
fn pair(bytes: &[u8]) -> Result<((&str, &str), &[u8]), Malformed> {
    let bad = |e: Malformed| match e {
        Malformed::PropertyLength => e,
        _ => Malformed::StringPair,
    };
    let (name, rest) = utf8(bytes).map_err(bad)?;
    let (value, rest) = utf8(rest).map_err(bad)?;
    Ok(((name, value), rest))
}

/// Reads one property from the start of a list: its identifier and its
/// value, with the string checks (the range checks are the caller's).
fn parse_one(bytes: &[u8]) -> Result<(Property<'_>, &[u8]), Malformed> {
    let (raw, rest) = varint::read_in(bytes, Malformed::PropertyLength)?;
    let Ok(byte_id) = u8::try_from(raw) else {
        return Err(Malformed::UnknownProperty(u8::MAX));
    };
    let byte = |rest| fixed::<1>(rest).map(|([v], rest)| (v, rest));
    let two = |rest| fixed::<2>(rest).map(|(v, rest)| (u16::from_be_bytes(v), rest));
    let four = |rest| fixed::<4>(rest).map(|(v, rest)| (u32::from_be_bytes(v), rest));
    use Property as P;
    Ok(match byte_id {
        id::PAYLOAD_FORMAT_INDICATOR => {
            byte(rest).map(|(v, r)| (P::PayloadFormatIndicator(v), r))?
        }
        id::MESSAGE_EXPIRY_INTERVAL => four(rest).map(|(v, r)| (P::MessageExpiryInterval(v), r))?,
        id::CONTENT_TYPE => utf8(rest).map(|(v, r)| (P::ContentType(v), r))?,
        id::RESPONSE_TOPIC => utf8(rest).map(|(v, r)| (P::ResponseTopic(v), r))?,
        id::CORRELATION_DATA => binary(rest).map(|(v, r)| (P::CorrelationData(v), r))?,
        id::SUBSCRIPTION_IDENTIFIER => varint::read_in(rest, Malformed::PropertyLength)
            .map(|(v, r)| (P::SubscriptionIdentifier(v), r))?,
        id::SESSION_EXPIRY_INTERVAL => four(rest).map(|(v, r)| (P::SessionExpiryInterval(v), r))?,
        id::ASSIGNED_CLIENT_IDENTIFIER => {
            utf8(rest).map(|(v, r)| (P::AssignedClientIdentifier(v), r))?
        }
        id::SERVER_KEEP_ALIVE => two(rest).map(|(v, r)| (P::ServerKeepAlive(v), r))?,
        id::AUTHENTICATION_METHOD => utf8(rest).map(|(v, r)| (P::AuthenticationMethod(v), r))?,
        id::AUTHENTICATION_DATA => binary(rest).map(|(v, r)| (P::AuthenticationData(v), r))?,
        id::REQUEST_PROBLEM_INFORMATION => {
            byte(rest).map(|(v, r)| (P::RequestProblemInformation(v), r))?
        }
        id::WILL_DELAY_INTERVAL => four(rest).map(|(v, r)| (P::WillDelayInterval(v), r))?,
        id::REQUEST_RESPONSE_INFORMATION => {
            byte(rest).map(|(v, r)| (P::RequestResponseInformation(v), r))?
        }
        id::RESPONSE_INFORMATION => utf8(rest).map(|(v, r)| (P::ResponseInformation(v), r))?,
        id::SERVER_REFERENCE => utf8(rest).map(|(v, r)| (P::ServerReference(v), r))?,
        id::REASON_STRING => utf8(rest).map(|(v, r)| (P::ReasonString(v), r))?,
        id::RECEIVE_MAXIMUM => two(rest).map(|(v, r)| (P::ReceiveMaximum(v), r))?,
        id::TOPIC_ALIAS_MAXIMUM => two(rest).map(|(v, r)| (P::TopicAliasMaximum(v), r))?,
        id::TOPIC_ALIAS => two(rest).map(|(v, r)| (P::TopicAlias(v), r))?,
        id::MAXIMUM_QOS => byte(rest).map(|(v, r)| (P::MaximumQoS(v), r))?,
        id::RETAIN_AVAILABLE => byte(rest).map(|(v, r)| (P::RetainAvailable(v), r))?,
        id::USER_PROPERTY => pair(rest).map(|((n, v), r)| (P::UserProperty(n, v), r))?,
        id::MAXIMUM_PACKET_SIZE => four(rest).map(|(v, r)| (P::MaximumPacketSize(v), r))?,
        id::WILDCARD_SUBSCRIPTION_AVAILABLE => {
            byte(rest).map(|(v, r)| (P::WildcardSubscriptionAvailable(v), r))?
        }
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
            byte(rest).map(|(v, r)| (P::SubscriptionIdentifierAvailable(v), r))?
        }
        id::SHARED_SUBSCRIPTION_AVAILABLE => {
            byte(rest).map(|(v, r)| (P::SharedSubscriptionAvailable(v), r))?
        }
        _ => return Err(Malformed::UnknownProperty(byte_id)),
    })
}
