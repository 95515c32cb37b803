//! The small API around the packets: types, names and messages, the
//! iterators' other forms, and the encoder's plain field checks.

use std::format;
use std::string::ToString;

use super::*;
use crate::codec::UnsubscribeFilters;
use crate::topic::TopicError;

#[test]
fn every_packet_knows_its_type() {
    let codes = [ReasonCode::Success];
    let subs = [Subscription {
        filter: "a",
        options: SubscriptionOptions::default(),
    }];
    let packets = [
        (Packet::Connect(Connect::new("c")), PacketType::Connect),
        (
            Packet::ConnAck(ConnAck {
                session_present: false,
                reason_code: ReasonCode::Success,
                properties: Properties::EMPTY,
            }),
            PacketType::ConnAck,
        ),
        (
            Packet::Publish(Publish::new("t", b"", QoS::AtMostOnce, false)),
            PacketType::Publish,
        ),
        (Packet::PubAck(PubAck::new(1)), PacketType::PubAck),
        (Packet::PubRec(PubRec::new(1)), PacketType::PubRec),
        (Packet::PubRel(PubRel::new(1)), PacketType::PubRel),
        (Packet::PubComp(PubComp::new(1)), PacketType::PubComp),
        (
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                properties: Properties::EMPTY,
                filters: SubscribeFilters::new(&subs),
            }),
            PacketType::Subscribe,
        ),
        (
            Packet::SubAck(SubAck {
                packet_id: 1,
                properties: Properties::EMPTY,
                reason_codes: ReasonCodes::new(&codes),
            }),
            PacketType::SubAck,
        ),
        (
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 1,
                properties: Properties::EMPTY,
                filters: UnsubscribeFilters::new(&["a"]),
            }),
            PacketType::Unsubscribe,
        ),
        (
            Packet::UnsubAck(UnsubAck {
                packet_id: 1,
                properties: Properties::EMPTY,
                reason_codes: ReasonCodes::new(&codes),
            }),
            PacketType::UnsubAck,
        ),
        (Packet::PingReq, PacketType::PingReq),
        (Packet::PingResp, PacketType::PingResp),
        (
            Packet::Disconnect(Disconnect::new()),
            PacketType::Disconnect,
        ),
        (Packet::Auth(Auth::new()), PacketType::Auth),
    ];
    for (packet, packet_type) in packets {
        assert_eq!(packet.packet_type(), packet_type);
        let bytes = encode(&packet);
        assert_eq!(bytes[0] >> 4, packet_type as u8);
        assert_eq!(Packet::decode(&bytes).unwrap().0.packet_type(), packet_type);
    }
    for t in 1..=14u8 {
        let shared = crate::codec::PacketType::from_byte(t << 4).unwrap();
        assert_eq!(PacketType::from(shared) as u8, t);
    }
}

#[test]
fn errors_and_reason_codes_have_messages() {
    use Malformed as M;
    let malformed = [
        M::NonMinimalVarint,
        M::VariableByteInteger,
        M::PropertyLength,
        M::UnknownProperty(0x2b),
        M::DuplicateProperty(0x21),
        M::PropertyNotAllowed(0x13),
        M::PropertyValue(0x24),
        M::SubscriptionIdentifier,
        M::ResponseTopic(TopicError::Empty),
        M::StringPair,
        M::ReasonCode(0x05),
        M::ProtocolVersion,
        M::SubscriptionOptions,
        M::RetainHandling,
        M::SharedNoLocal,
        M::AuthenticationData,
    ];
    for m in malformed {
        assert!(!m.to_string().is_empty(), "{m:?}");
        assert!(
            DecodeError::Malformed(m)
                .to_string()
                .contains(&m.to_string())
        );
    }
    assert_eq!(
        M::UnknownProperty(0x2b).to_string(),
        "unknown property 0x2b"
    );
    use EncodeError as E;
    let encode = [
        E::DuplicateProperty(1),
        E::PropertyNotAllowed(1),
        E::PropertyValue(1),
        E::SubscriptionIdentifier,
        E::ResponseTopic(TopicError::Empty),
        E::ReasonCode(1),
        E::SharedNoLocal,
        E::SessionPresent,
        E::AuthenticationData,
        E::PayloadFormat,
    ];
    for e in encode {
        assert!(!e.to_string().is_empty(), "{e:?}");
    }
    assert_eq!(ReasonCode::QoSNotSupported.to_string(), "QoS not supported");
    assert_eq!(ReasonCode::Success.to_string(), "success");
    let mut defined = 0;
    for byte in 0..=255u8 {
        if let Some(code) = ReasonCode::from_u8(byte) {
            defined += 1;
            assert_eq!(code.to_u8(), byte);
            assert_eq!(code.is_error(), byte >= 0x80);
            assert!(!code.to_string().is_empty());
            // Packets without a reason code take none.
            for t in [
                PacketType::Connect,
                PacketType::Publish,
                PacketType::Subscribe,
                PacketType::Unsubscribe,
                PacketType::PingReq,
                PacketType::PingResp,
            ] {
                assert!(!code.is_valid_for(t));
            }
        }
    }
    assert_eq!(defined, 43, "the codes of §2.4");
    assert_eq!(ReasonCode::NORMAL_DISCONNECTION, ReasonCode::Success);
    assert_eq!(ReasonCode::GRANTED_QOS_0, ReasonCode::default());
}

#[test]
fn lists_iterate_and_print_in_either_form() {
    // A SUBACK with properties [ReasonString("")] and two codes.
    let bytes = packet(
        0x90,
        &[&[0, 1][..], &props(&[0x1f, 0, 0]), &[0x00, 0x80]].concat(),
    );
    let (Packet::SubAck(ack), _) = Packet::decode(&bytes).unwrap() else {
        panic!("{bytes:02x?}")
    };
    let codes: Vec<ReasonCode> = ack.reason_codes.into_iter().collect();
    assert_eq!(codes, [ReasonCode::Success, ReasonCode::UnspecifiedError]);
    assert_eq!(
        format!("{:?}", ack.reason_codes),
        "[Success, UnspecifiedError]"
    );
    assert_eq!(ack.reason_codes.len(), 2);
    assert!(!ack.reason_codes.is_empty());
    let props: Vec<Property<'_>> = ack.properties.into_iter().collect();
    assert_eq!(props, [Property::ReasonString("")]);

    let subs = [Subscription {
        filter: "a/#",
        options: SubscriptionOptions::new(QoS::AtLeastOnce),
    }];
    let filters = SubscribeFilters::new(&subs);
    assert_eq!(filters.into_iter().collect::<Vec<_>>(), subs);
    assert!(format!("{filters:?}").contains("a/#"));
    assert!(!filters.is_empty());
    assert_eq!(SubscriptionOptions::new(QoS::AtLeastOnce).to_u8(), 1);
}

/// `encode` refuses `packet` with `error`.
fn refused(packet: Packet<'_>, error: EncodeError) {
    let mut buf = [0xa5u8; 128];
    assert_eq!(packet.encode(&mut buf), Err(error), "{packet:?}");
    assert!(buf.iter().all(|&b| b == 0xa5));
}

#[test]
fn plain_field_checks_of_the_encoder() {
    use EncodeError as E;
    let publish = Publish::new("t", b"", QoS::AtLeastOnce, false);
    refused(Packet::Publish(publish), E::PacketId);
    refused(
        Packet::Publish(Publish {
            packet_id: Some(0),
            ..publish
        }),
        E::PacketId,
    );
    refused(
        Packet::Publish(Publish {
            packet_id: Some(1),
            qos: QoS::AtMostOnce,
            ..publish
        }),
        E::PacketId,
    );
    refused(
        Packet::Publish(Publish {
            dup: true,
            ..Publish::new("t", b"", QoS::AtMostOnce, false)
        }),
        E::DupWithQoS0,
    );
    refused(
        Packet::Publish(Publish::new("a/+", b"", QoS::AtMostOnce, false)),
        E::TopicName(TopicError::WildcardInName),
    );
    let subs = [Subscription {
        filter: "a#",
        options: SubscriptionOptions::default(),
    }];
    let subscribe = Subscribe {
        packet_id: 1,
        properties: Properties::EMPTY,
        filters: SubscribeFilters::new(&subs),
    };
    refused(
        Packet::Subscribe(subscribe),
        E::TopicFilter(TopicError::MultiLevelWildcard),
    );
    refused(
        Packet::Subscribe(Subscribe {
            packet_id: 0,
            ..subscribe
        }),
        E::PacketId,
    );
    refused(
        Packet::Subscribe(Subscribe {
            filters: SubscribeFilters::new(&[]),
            ..subscribe
        }),
        E::NoFilters,
    );
    let unsubscribe = Unsubscribe {
        packet_id: 1,
        properties: Properties::EMPTY,
        filters: UnsubscribeFilters::new(&[]),
    };
    refused(Packet::Unsubscribe(unsubscribe), E::NoFilters);
    refused(
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 0,
            ..unsubscribe
        }),
        E::PacketId,
    );
    refused(
        Packet::SubAck(SubAck {
            packet_id: 0,
            properties: Properties::EMPTY,
            reason_codes: ReasonCodes::new(&[ReasonCode::Success]),
        }),
        E::PacketId,
    );
    let big = vec![0u8; 65_536];
    let mut buf = vec![0u8; 70_000];
    let will = Connect {
        will: Some(Will {
            properties: Properties::EMPTY,
            topic: "w",
            payload: &big,
            qos: QoS::AtMostOnce,
            retain: false,
        }),
        ..Connect::new("c")
    };
    assert_eq!(will.encode(&mut buf), Err(E::StringTooLong));
    let password = Connect {
        password: Some(&big),
        ..Connect::new("c")
    };
    assert_eq!(password.encode(&mut buf), Err(E::StringTooLong));
    refused(Packet::Connect(Connect::new("a\0")), E::NulCharacter);
}

#[test]
fn subscriptions_checked_when_built_pass_and_fail_as_the_encoder_checks_them() {
    let no_local = SubscriptionOptions {
        no_local: true,
        ..SubscriptionOptions::new(QoS::AtLeastOnce)
    };
    let plain = SubscriptionOptions::new(QoS::AtMostOnce);
    let cases = [
        ("a/+", no_local),
        ("$share/g/a/+", plain),
        ("$share/g/a/+", no_local),
        ("a/#/b", plain),
        ("", plain),
        ("a\0", plain),
    ];
    for (filter, options) in cases {
        let list = [
            Subscription {
                filter: "x",
                options: plain,
            },
            Subscription { filter, options },
        ];
        let unchecked = Subscribe {
            packet_id: 3,
            properties: Properties::EMPTY,
            filters: SubscribeFilters::new(&list),
        };
        let mut expected = [0xa5; 64];
        let encoded = unchecked.encode(&mut expected);
        match SubscribeFilters::checked(&list) {
            Ok(filters) => {
                let checked = Subscribe {
                    filters,
                    ..unchecked
                };
                assert_eq!(checked, unchecked);
                let mut buf = [0xa5; 64];
                assert_eq!(checked.encode(&mut buf), encoded, "{filter:?}");
                assert_eq!(buf, expected, "{filter:?}");
            }
            Err(e) => assert_eq!(encoded, Err(e), "{filter:?}"),
        }
    }
    assert_eq!(
        SubscribeFilters::checked(&[Subscription {
            filter: "$share/g/t",
            options: no_local
        }])
        .map(drop),
        Err(EncodeError::SharedNoLocal)
    );
}
