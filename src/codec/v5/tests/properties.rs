//! Every property's bytes, its getter, and the packets (and the will)
//! that may carry it, checked against the table of §2.2.2.2 written out
//! here a second time, by property rather than by packet.

use super::super::properties::Context;
use super::*;

use Context as C;

/// Each property, its encoding, and where §2.2.2.2 allows it.
fn table() -> Vec<(Property<'static>, Vec<u8>, &'static [Context])> {
    use Property as P;
    let acks: &[Context] = &[
        C::ConnAck,
        C::PubAck,
        C::PubRec,
        C::PubRel,
        C::PubComp,
        C::SubAck,
        C::UnsubAck,
        C::Disconnect,
        C::Auth,
    ];
    vec![
        (
            P::PayloadFormatIndicator(1),
            vec![0x01, 1],
            &[C::Publish, C::Will],
        ),
        (
            P::MessageExpiryInterval(0x01020304),
            vec![0x02, 1, 2, 3, 4],
            &[C::Publish, C::Will],
        ),
        (
            P::ContentType("t/p"),
            [&[0x03][..], &s(b"t/p")].concat(),
            &[C::Publish, C::Will],
        ),
        (
            P::ResponseTopic("r/1"),
            [&[0x08][..], &s(b"r/1")].concat(),
            &[C::Publish, C::Will],
        ),
        (
            P::CorrelationData(b"\0\xff"),
            [&[0x09][..], &s(b"\0\xff")].concat(),
            &[C::Publish, C::Will],
        ),
        (
            P::SubscriptionIdentifier(268_435_455),
            vec![0x0b, 0xff, 0xff, 0xff, 0x7f],
            &[C::Publish, C::Subscribe],
        ),
        (
            P::SessionExpiryInterval(u32::MAX),
            vec![0x11, 0xff, 0xff, 0xff, 0xff],
            &[C::Connect, C::ConnAck, C::Disconnect],
        ),
        (
            P::AssignedClientIdentifier("x"),
            [&[0x12][..], &s(b"x")].concat(),
            &[C::ConnAck],
        ),
        (P::ServerKeepAlive(0), vec![0x13, 0, 0], &[C::ConnAck]),
        (
            P::AuthenticationMethod("m"),
            [&[0x15][..], &s(b"m")].concat(),
            &[C::Connect, C::ConnAck, C::Auth],
        ),
        (
            P::AuthenticationData(b""),
            vec![0x16, 0, 0],
            &[C::Connect, C::ConnAck, C::Auth],
        ),
        (
            P::RequestProblemInformation(0),
            vec![0x17, 0],
            &[C::Connect],
        ),
        (P::WillDelayInterval(7), vec![0x18, 0, 0, 0, 7], &[C::Will]),
        (
            P::RequestResponseInformation(1),
            vec![0x19, 1],
            &[C::Connect],
        ),
        (
            P::ResponseInformation("ri"),
            [&[0x1a][..], &s(b"ri")].concat(),
            &[C::ConnAck],
        ),
        (
            P::ServerReference("h"),
            [&[0x1c][..], &s(b"h")].concat(),
            &[C::ConnAck, C::Disconnect],
        ),
        (
            P::ReasonString("why"),
            [&[0x1f][..], &s(b"why")].concat(),
            acks,
        ),
        (
            P::ReceiveMaximum(1),
            vec![0x21, 0, 1],
            &[C::Connect, C::ConnAck],
        ),
        (
            P::TopicAliasMaximum(0),
            vec![0x22, 0, 0],
            &[C::Connect, C::ConnAck],
        ),
        (P::TopicAlias(0xffff), vec![0x23, 0xff, 0xff], &[C::Publish]),
        (P::MaximumQoS(0), vec![0x24, 0], &[C::ConnAck]),
        (P::RetainAvailable(1), vec![0x25, 1], &[C::ConnAck]),
        (
            P::UserProperty("", "é"),
            [&[0x26][..], &s(b""), &s("é".as_bytes())].concat(),
            &[
                C::Connect,
                C::ConnAck,
                C::Publish,
                C::Will,
                C::PubAck,
                C::PubRec,
                C::PubRel,
                C::PubComp,
                C::Subscribe,
                C::SubAck,
                C::Unsubscribe,
                C::UnsubAck,
                C::Disconnect,
                C::Auth,
            ],
        ),
        (
            P::MaximumPacketSize(1),
            vec![0x27, 0, 0, 0, 1],
            &[C::Connect, C::ConnAck],
        ),
        (
            P::WildcardSubscriptionAvailable(0),
            vec![0x28, 0],
            &[C::ConnAck],
        ),
        (
            P::SubscriptionIdentifierAvailable(1),
            vec![0x29, 1],
            &[C::ConnAck],
        ),
        (
            P::SharedSubscriptionAvailable(0),
            vec![0x2a, 0],
            &[C::ConnAck],
        ),
    ]
}

const CONTEXTS: [Context; 14] = [
    C::Connect,
    C::Will,
    C::ConnAck,
    C::Publish,
    C::PubAck,
    C::PubRec,
    C::PubRel,
    C::PubComp,
    C::Subscribe,
    C::SubAck,
    C::Unsubscribe,
    C::UnsubAck,
    C::Disconnect,
    C::Auth,
];

#[test]
fn every_property_has_its_bytes_and_only_its_packets() {
    let table = table();
    assert_eq!(table.len(), 27, "every property of §2.2.2.2");
    for (property, bytes, allowed) in &table {
        assert_eq!(property.encoded_len(), bytes.len(), "{property:?}");
        assert_eq!(property.id(), bytes[0]);
        // Authentication Data stands only with a method (tested apart).
        let with_method = [&[0x15, 0, 0][..], bytes].concat();
        let bytes = if property.id() == 0x16 {
            &with_method
        } else {
            bytes
        };
        let field = props(bytes);
        for context in CONTEXTS {
            let parsed = Properties::parse(&field, context);
            let list: Vec<Property<'_>> = if property.id() == 0x16 {
                vec![Property::AuthenticationMethod(""), *property]
            } else {
                vec![*property]
            };
            let checked = Properties::new(&list).check(context);
            if allowed.contains(&context) {
                let (rest, decoded) =
                    parsed.unwrap_or_else(|e| panic!("{property:?} in {context:?}: {e:?}"));
                assert!(rest.is_empty());
                assert_eq!(decoded.iter().collect::<Vec<_>>(), list);
                assert_eq!(checked, Ok(field.len()));
            } else {
                assert_eq!(
                    parsed.map(|_| ()),
                    Err(Malformed::PropertyNotAllowed(bytes[0])),
                    "{property:?} in {context:?}"
                );
                assert_eq!(
                    checked,
                    Err(EncodeError::PropertyNotAllowed(bytes[0])),
                    "{property:?} in {context:?}"
                );
            }
        }
    }
}

#[test]
fn only_user_property_and_publish_subscription_identifiers_repeat() {
    for (property, bytes, allowed) in table() {
        let twice = props(&[&bytes[..], &bytes].concat());
        let list = [property, property];
        for &context in allowed {
            let repeatable = matches!(property, Property::UserProperty(..))
                || (matches!(property, Property::SubscriptionIdentifier(_))
                    && context == C::Publish);
            let parsed = Properties::parse(&twice, context).map(|_| ());
            let checked = Properties::new(&list).check(context).map(|_| ());
            if repeatable {
                assert_eq!(parsed, Ok(()), "{property:?} in {context:?}");
                assert_eq!(checked, Ok(()));
            } else {
                assert_eq!(parsed, Err(Malformed::DuplicateProperty(bytes[0])));
                assert_eq!(checked, Err(EncodeError::DuplicateProperty(bytes[0])));
            }
        }
    }
}

#[test]
fn getters_find_each_property() {
    let table = table();
    let list: Vec<Property<'_>> = table.iter().map(|(p, ..)| *p).collect();
    let p = Properties::new(&list);
    assert_eq!(p.len(), 27);
    assert!(!p.is_empty());
    assert_eq!(p.payload_format_indicator(), Some(1));
    assert_eq!(p.message_expiry_interval(), Some(0x01020304));
    assert_eq!(p.content_type(), Some("t/p"));
    assert_eq!(p.response_topic(), Some("r/1"));
    assert_eq!(p.correlation_data(), Some(&b"\0\xff"[..]));
    assert_eq!(
        p.subscription_identifiers().collect::<Vec<_>>(),
        [268_435_455]
    );
    assert_eq!(p.session_expiry_interval(), Some(u32::MAX));
    assert_eq!(p.assigned_client_identifier(), Some("x"));
    assert_eq!(p.server_keep_alive(), Some(0));
    assert_eq!(p.authentication_method(), Some("m"));
    assert_eq!(p.authentication_data(), Some(&b""[..]));
    assert_eq!(p.request_problem_information(), Some(0));
    assert_eq!(p.will_delay_interval(), Some(7));
    assert_eq!(p.request_response_information(), Some(1));
    assert_eq!(p.response_information(), Some("ri"));
    assert_eq!(p.server_reference(), Some("h"));
    assert_eq!(p.reason_string(), Some("why"));
    assert_eq!(p.receive_maximum(), Some(1));
    assert_eq!(p.topic_alias_maximum(), Some(0));
    assert_eq!(p.topic_alias(), Some(0xffff));
    assert_eq!(p.maximum_qos(), Some(0));
    assert_eq!(p.retain_available(), Some(1));
    assert_eq!(p.user_properties().collect::<Vec<_>>(), [("", "é")]);
    assert_eq!(p.maximum_packet_size(), Some(1));
    assert_eq!(p.wildcard_subscription_available(), Some(0));
    assert_eq!(p.subscription_identifier_available(), Some(1));
    assert_eq!(p.shared_subscription_available(), Some(0));
    let empty = Properties::EMPTY;
    assert!(empty.is_empty());
    assert_eq!(empty.receive_maximum(), None);
    assert_eq!(Properties::default(), empty);
}

#[test]
fn a_decoded_list_borrows_the_packet_bytes() {
    let bytes = [
        0x30, 14, 0, 1, b't', 10, 0x03, 0, 2, b'c', b't', 0x26, 0, 0, 0, 0,
    ];
    let (Packet::Publish(p), _) = Packet::decode(&bytes).unwrap() else {
        panic!()
    };
    let content_type = p.properties.content_type().unwrap();
    // The string is the packet's own bytes, not a copy.
    assert_eq!(content_type.as_ptr(), bytes[9..].as_ptr());
    assert_eq!(
        p.properties.user_properties().collect::<Vec<_>>(),
        [("", "")]
    );
    assert_eq!(
        format!("{:?}", p.properties),
        r#"[ContentType("ct"), UserProperty("", "")]"#
    );
}

#[test]
fn user_properties_keep_their_order_and_repeats() {
    let list = [
        Property::UserProperty("a", "1"),
        Property::ReasonString("r"),
        Property::UserProperty("a", "2"),
        Property::UserProperty("b", "1"),
    ];
    let ack = PubAck {
        properties: Properties::new(&list),
        ..PubAck::new(9)
    };
    let bytes = encode(&Packet::PubAck(ack));
    let (Packet::PubAck(decoded), _) = Packet::decode(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!(
        decoded.properties.user_properties().collect::<Vec<_>>(),
        [("a", "1"), ("a", "2"), ("b", "1")]
    );
    assert_eq!(decoded.properties.reason_string(), Some("r"));
}

use std::format;
