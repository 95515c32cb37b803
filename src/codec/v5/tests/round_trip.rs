//! Property-based tests: generated valid packets of every type round-trip
//! both ways, and arbitrary or mutated bytes never panic the decoder and
//! re-encode to what they decoded from.
//!
//! Generated values are leaked to `'static` so that strategies can yield
//! packets that borrow; a test run leaks a few megabytes at most.

use std::boxed::Box;
use std::string::String;

use proptest::collection::vec as vec_of;
use proptest::prelude::*;

use super::super::properties::Context;
use super::*;
use crate::codec::UnsubscribeFilters;

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_bytes(b: Vec<u8>) -> &'static [u8] {
    Box::leak(b.into_boxed_slice())
}

fn text() -> impl Strategy<Value = &'static str> {
    "[a-z0-9 é/+#🦀]{0,12}".prop_map(leak_str)
}

fn bytes() -> impl Strategy<Value = &'static [u8]> {
    vec_of(any::<u8>(), 0..40).prop_map(leak_bytes)
}

/// `payload`, made ASCII if `properties` mark it UTF-8 and it is not.
fn as_marked(properties: &Properties<'_>, payload: &'static [u8]) -> &'static [u8] {
    if properties.payload_format_indicator() == Some(1) && core::str::from_utf8(payload).is_err() {
        return leak_bytes(payload.iter().map(|b| b & 0x7f).collect());
    }
    payload
}

fn topic_name() -> impl Strategy<Value = &'static str> {
    "[a-z0-9$ é/]{1,16}".prop_map(leak_str)
}

fn topic_filter() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        topic_name(),
        Just("#"),
        "[a-z]{1,5}/\\+/[a-z]{1,5}/#".prop_map(leak_str),
        "\\$share/[a-z]{1,4}/[a-z]{1,4}".prop_map(leak_str),
    ]
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn flag() -> impl Strategy<Value = u8> {
    0u8..=1
}

fn property() -> impl Strategy<Value = Property<'static>> {
    use Property as P;
    let messages = prop_oneof![
        flag().prop_map(P::PayloadFormatIndicator),
        any::<u32>().prop_map(P::MessageExpiryInterval),
        text().prop_map(P::ContentType),
        topic_name().prop_map(P::ResponseTopic),
        bytes().prop_map(P::CorrelationData),
        (1u32..=268_435_455).prop_map(P::SubscriptionIdentifier),
        (1u16..).prop_map(P::TopicAlias),
        any::<u32>().prop_map(P::WillDelayInterval),
        (text(), text()).prop_map(|(k, v)| P::UserProperty(k, v)),
    ];
    let sessions = prop_oneof![
        any::<u32>().prop_map(P::SessionExpiryInterval),
        text().prop_map(P::AssignedClientIdentifier),
        any::<u16>().prop_map(P::ServerKeepAlive),
        text().prop_map(P::AuthenticationMethod),
        bytes().prop_map(P::AuthenticationData),
        flag().prop_map(P::RequestProblemInformation),
        flag().prop_map(P::RequestResponseInformation),
        text().prop_map(P::ResponseInformation),
        text().prop_map(P::ServerReference),
        text().prop_map(P::ReasonString),
    ];
    let limits = prop_oneof![
        (1u16..).prop_map(P::ReceiveMaximum),
        any::<u16>().prop_map(P::TopicAliasMaximum),
        flag().prop_map(P::MaximumQoS),
        flag().prop_map(P::RetainAvailable),
        (1u32..).prop_map(P::MaximumPacketSize),
        flag().prop_map(P::WildcardSubscriptionAvailable),
        flag().prop_map(P::SubscriptionIdentifierAvailable),
        flag().prop_map(P::SharedSubscriptionAvailable),
    ];
    prop_oneof![messages, sessions, limits]
}

/// A list valid in `context`: generated properties, each kept only when
/// the list stays valid with it (allowed there, not a forbidden repeat).
fn properties(context: Context) -> impl Strategy<Value = Properties<'static>> {
    vec_of(property(), 0..8).prop_map(move |list| {
        let mut kept = Vec::new();
        for p in list {
            kept.push(p);
            if Properties::new(&kept).check(context).is_err() {
                kept.pop();
            }
        }
        Properties::new(Box::leak(kept.into_boxed_slice()))
    })
}

/// A reason code valid for `packet_type`.
fn reason(packet_type: PacketType) -> impl Strategy<Value = ReasonCode> {
    any::<u8>().prop_map(move |b| {
        // Walk up from a random byte to the next code this packet allows;
        // 0x00 is allowed everywhere that has codes.
        (b..=255)
            .filter_map(ReasonCode::from_u8)
            .find(|c| c.is_valid_for(packet_type))
            .unwrap_or(ReasonCode::Success)
    })
}

fn reasons(packet_type: PacketType) -> impl Strategy<Value = ReasonCodes<'static>> {
    vec_of(reason(packet_type), 1..6)
        .prop_map(|list| ReasonCodes::new(Box::leak(list.into_boxed_slice())))
}

fn will() -> impl Strategy<Value = Will<'static>> {
    (
        properties(Context::Will),
        topic_name(),
        bytes(),
        qos(),
        any::<bool>(),
    )
        .prop_map(|(properties, topic, payload, qos, retain)| Will {
            payload: as_marked(&properties, payload),
            properties,
            topic,
            qos,
            retain,
        })
}

fn connect() -> impl Strategy<Value = Packet<'static>> {
    (
        any::<(bool, u16)>(),
        properties(Context::Connect),
        text(),
        proptest::option::of(will()),
        proptest::option::of(text()),
        proptest::option::of(bytes()),
    )
        .prop_map(
            |((clean_start, keep_alive), properties, client_id, will, username, password)| {
                Packet::Connect(Connect {
                    clean_start,
                    keep_alive,
                    properties,
                    client_id,
                    will,
                    username,
                    password,
                })
            },
        )
    // Strings with `+` and `#` are fine as ids and names; NUL never occurs.
}

fn connack() -> impl Strategy<Value = Packet<'static>> {
    (
        any::<bool>(),
        reason(PacketType::ConnAck),
        properties(Context::ConnAck),
    )
        .prop_map(|(present, reason_code, properties)| {
            Packet::ConnAck(ConnAck {
                session_present: present && reason_code == ReasonCode::Success,
                reason_code,
                properties,
            })
        })
}

fn publish() -> impl Strategy<Value = Packet<'static>> {
    (
        any::<(bool, bool, bool)>(),
        qos(),
        topic_name(),
        1u16..,
        properties(Context::Publish),
        bytes(),
    )
        .prop_map(
            |((dup, retain, by_alias), qos, topic, id, properties, payload)| {
                // An empty topic only when a Topic Alias stands for it.
                let topic = if by_alias && properties.topic_alias().is_some() {
                    ""
                } else {
                    topic
                };
                Packet::Publish(Publish {
                    dup: dup && qos != QoS::AtMostOnce,
                    qos,
                    retain,
                    topic,
                    packet_id: (qos != QoS::AtMostOnce).then_some(id),
                    payload: as_marked(&properties, payload),
                    properties,
                })
            },
        )
}

macro_rules! ack_strategy {
    ($fn:ident, $name:ident) => {
        fn $fn() -> impl Strategy<Value = Packet<'static>> {
            (
                1u16..,
                reason(PacketType::$name),
                properties(Context::$name),
            )
                .prop_map(|(packet_id, reason_code, properties)| {
                    Packet::$name($name {
                        packet_id,
                        reason_code,
                        properties,
                    })
                })
        }
    };
}

ack_strategy!(puback, PubAck);
ack_strategy!(pubrec, PubRec);
ack_strategy!(pubrel, PubRel);
ack_strategy!(pubcomp, PubComp);

fn options() -> impl Strategy<Value = SubscriptionOptions> {
    (qos(), any::<(bool, bool)>(), 0u8..3).prop_map(|(qos, (no_local, rap), rh)| {
        SubscriptionOptions {
            qos,
            no_local,
            retain_as_published: rap,
            retain_handling: match rh {
                0 => RetainHandling::SendAtSubscribe,
                1 => RetainHandling::SendAtNewSubscribe,
                _ => RetainHandling::DoNotSend,
            },
        }
    })
}

fn subscribe() -> impl Strategy<Value = Packet<'static>> {
    (
        1u16..,
        properties(Context::Subscribe),
        vec_of((topic_filter(), options()), 1..5),
    )
        .prop_map(|(packet_id, properties, list)| {
            let list: Vec<Subscription<'static>> = list
                .into_iter()
                .map(|(filter, mut options)| {
                    // No Local is forbidden on shared subscriptions.
                    options.no_local &= !filter.starts_with("$share/");
                    Subscription { filter, options }
                })
                .collect();
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters: SubscribeFilters::new(Box::leak(list.into_boxed_slice())),
            })
        })
}

fn unsubscribe() -> impl Strategy<Value = Packet<'static>> {
    (
        1u16..,
        properties(Context::Unsubscribe),
        vec_of(topic_filter(), 1..5),
    )
        .prop_map(|(packet_id, properties, list)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters: UnsubscribeFilters::new(Box::leak(list.into_boxed_slice())),
            })
        })
}

fn suback() -> impl Strategy<Value = Packet<'static>> {
    (
        1u16..,
        properties(Context::SubAck),
        reasons(PacketType::SubAck),
    )
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                reason_codes,
            })
        })
}

fn unsuback() -> impl Strategy<Value = Packet<'static>> {
    (
        1u16..,
        properties(Context::UnsubAck),
        reasons(PacketType::UnsubAck),
    )
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                properties,
                reason_codes,
            })
        })
}

fn disconnect() -> impl Strategy<Value = Packet<'static>> {
    (
        reason(PacketType::Disconnect),
        properties(Context::Disconnect),
    )
        .prop_map(|(reason_code, properties)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties,
            })
        })
}

fn auth() -> impl Strategy<Value = Packet<'static>> {
    (reason(PacketType::Auth), properties(Context::Auth)).prop_map(|(reason_code, properties)| {
        // The method is required but in the short form (§3.15.2.2.2).
        let properties = match properties.authentication_method() {
            None if reason_code != ReasonCode::Success || !properties.is_empty() => {
                let mut list: Vec<_> = properties.iter().collect();
                list.push(Property::AuthenticationMethod("M"));
                Properties::new(Box::leak(list.into_boxed_slice()))
            }
            _ => properties,
        };
        Packet::Auth(Auth {
            reason_code,
            properties,
        })
    })
}

/// One valid packet of any of the fifteen types.
fn any_packet() -> impl Strategy<Value = Packet<'static>> {
    let connection = prop_oneof![connect(), connack(), disconnect(), auth()];
    let messages = prop_oneof![publish(), puback(), pubrec(), pubrel(), pubcomp()];
    let subscriptions = prop_oneof![subscribe(), suback(), unsubscribe(), unsuback()];
    let pings = prop_oneof![Just(Packet::PingReq), Just(Packet::PingResp)];
    prop_oneof![2 => connection, 3 => messages, 3 => subscriptions, 1 => pings]
}

/// Whether `packet`'s type has short forms, so that a valid longer input
/// re-encodes shorter.
fn has_short_forms(packet: &Packet<'_>) -> bool {
    matches!(
        packet.packet_type(),
        PacketType::PubAck
            | PacketType::PubRec
            | PacketType::PubRel
            | PacketType::PubComp
            | PacketType::Disconnect
            | PacketType::Auth
    )
}

/// What a decoded packet must satisfy: it re-encodes, to the input bytes
/// unless the input was a longer form of the same packet.
fn check_reencodes(input: &[u8], packet: &Packet<'_>, n: usize) -> Result<(), TestCaseError> {
    // A payload marked UTF-8 that is not is taken as it comes (a receiver
    // may check it, §3.3.2.3.2, and the client does not), but never sent.
    let mut buf = vec![0u8; packet.encoded_len()];
    if packet.encode(&mut buf) == Err(EncodeError::PayloadFormat) {
        return Ok(());
    }
    let again = encode(packet);
    let (decoded, m) = Packet::decode(&again).unwrap();
    prop_assert_eq!(m, again.len());
    prop_assert_eq!(&decoded, packet);
    if again != input[..n] {
        prop_assert!(
            has_short_forms(packet),
            "{:02x?} re-encoded as {:02x?}",
            &input[..n],
            again
        );
        prop_assert!(again.len() < n);
    }
    Ok(())
}

proptest! {
    #[test]
    fn every_valid_packet_round_trips(packet in any_packet()) {
        let bytes = encode(&packet);
        let (decoded, n) = Packet::decode(&bytes).unwrap();
        prop_assert_eq!(n, bytes.len());
        prop_assert_eq!(decoded, packet);
        // And back: the decoded views re-encode to the very bytes.
        prop_assert_eq!(encode(&decoded), bytes);
    }

    #[test]
    fn every_strict_prefix_is_incomplete(packet in any_packet()) {
        let bytes = encode(&packet);
        for cut in 0..bytes.len() {
            let got = Packet::decode(&bytes[..cut]);
            prop_assert!(
                matches!(got, Err(DecodeError::Incomplete { needed }) if needed >= 1 && needed <= bytes.len() - cut),
                "cut {}: {:?}", cut, got
            );
        }
    }

    #[test]
    fn a_short_buffer_is_refused_untouched(packet in any_packet()) {
        let len = packet.encoded_len();
        let mut buf = vec![0x5a; len - 1];
        prop_assert_eq!(packet.encode(&mut buf), Err(EncodeError::BufferTooSmall { needed: len }));
        prop_assert!(buf.iter().all(|&b| b == 0x5a));
    }

    #[test]
    fn mutated_packets_never_panic_and_re_encode(
        packet in any_packet(),
        flips in vec_of((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&packet);
        for (at, byte) in flips {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        if let Ok((decoded, n)) = Packet::decode(&bytes) {
            check_reencodes(&bytes, &decoded, n)?;
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec_of(any::<u8>(), 0..64)) {
        if let Ok((packet, n)) = Packet::decode(&bytes) {
            prop_assert!(n <= bytes.len());
            check_reencodes(&bytes, &packet, n)?;
        }
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_are_packets_or_malformed(
        first in prop_oneof![
            Just(0x10u8), Just(0x20), Just(0x30), Just(0x32), Just(0x3d), Just(0x40),
            Just(0x50), Just(0x62), Just(0x70), Just(0x82), Just(0x90), Just(0xa2),
            Just(0xb0), Just(0xe0), Just(0xf0),
        ],
        body in vec_of(any::<u8>(), 0..100),
    ) {
        let bytes = packet(first, &body);
        match Packet::decode(&bytes) {
            Ok((decoded, n)) => {
                prop_assert_eq!(n, bytes.len());
                check_reencodes(&bytes, &decoded, n)?;
            }
            Err(DecodeError::Malformed(_)) => {}
            Err(other) => prop_assert!(false, "framed body gave {:?}", other),
        }
    }
}
