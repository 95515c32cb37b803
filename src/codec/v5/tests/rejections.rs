//! What MQTT 5 forbids, each refused with its own reason: by the decoder
//! as [`Malformed`], by the encoder as [`EncodeError`] with nothing written.

use super::*;
use crate::topic::TopicError;

/// A QoS 0 PUBLISH to "t" with `list` as its property bytes.
fn publish_with(list: &[u8]) -> Vec<u8> {
    packet(0x30, &[&s(b"t")[..], &props(list), b"p"].concat())
}

/// A CONNECT (no will) with `list` as its property bytes.
fn connect_with(list: &[u8]) -> Vec<u8> {
    packet(
        0x10,
        &[&s(b"MQTT")[..], &[5, 0x02, 0, 0], &props(list), &s(b"c")].concat(),
    )
}

/// A CONNACK (accepted) with `list` as its property bytes.
fn connack_with(list: &[u8]) -> Vec<u8> {
    packet(0x20, &[&[0, 0][..], &props(list)].concat())
}

#[test]
fn variable_byte_integers_must_be_minimal_and_at_most_4_bytes() {
    use Malformed as M;
    // The remaining length (§1.5.5: 3.1.1 allowed this, MQTT 5 does not).
    assert_eq!(malformed(&[0xd0, 0x80, 0x00]), M::NonMinimalVarint);
    assert_eq!(malformed(&[0xf0, 0x81, 0x00, 0x00]), M::NonMinimalVarint);
    assert_eq!(
        malformed(&[0xc0, 0x80, 0x80, 0x80, 0x80]),
        M::RemainingLength
    );
    // A property length.
    assert_eq!(
        malformed(&[0x40, 5, 0, 1, 0x80, 0x80, 0x00]),
        M::NonMinimalVarint
    );
    assert_eq!(
        malformed(&[0x40, 8, 0, 1, 0x80, 0xff, 0xff, 0xff, 0xff, 0x01]),
        M::VariableByteInteger
    );
    // A Subscription Identifier, and a property identifier.
    assert_eq!(
        malformed(&publish_with(&[0x0b, 0x81, 0x00])),
        M::NonMinimalVarint
    );
    assert_eq!(
        malformed(&publish_with(&[0x0b, 0x80, 0x80, 0x80, 0x80, 0x01])),
        M::VariableByteInteger
    );
    assert_eq!(
        malformed(&publish_with(&[0x81, 0x00, 0])),
        M::NonMinimalVarint
    );
}

#[test]
fn properties_must_fit_their_length_and_the_packet() {
    use Malformed as M;
    // The property length claims more than the packet holds.
    assert_eq!(
        malformed(&[0x40, 5, 0, 1, 0x80, 5, 0x1f]),
        M::PropertyLength
    );
    assert_eq!(malformed(&[0x20, 3, 0, 0, 1]), M::PropertyLength);
    // A property runs past the end of its list: a four-byte integer cut,
    // a string cut, a user property without its value.
    assert_eq!(malformed(&publish_with(&[0x02, 0, 0])), M::PropertyLength);
    assert_eq!(
        malformed(&publish_with(&[0x03, 0, 5, b'a'])),
        M::PropertyLength
    );
    assert_eq!(
        malformed(&publish_with(&[0x26, 0, 1, b'k'])),
        M::PropertyLength
    );
    assert_eq!(malformed(&publish_with(&[0x0b])), M::PropertyLength);
    // The property length itself cut by the end of the body.
    assert_eq!(malformed(&[0x20, 2, 0, 0]), M::Truncated);
}

#[test]
fn unknown_duplicate_and_misplaced_properties() {
    use Malformed as M;
    for id in [0x00, 0x04, 0x0a, 0x14, 0x1b, 0x20, 0x2b, 0x7f] {
        assert_eq!(malformed(&publish_with(&[id, 0])), M::UnknownProperty(id));
    }
    assert_eq!(
        malformed(&publish_with(&[0x80, 0x01, 0])),
        M::UnknownProperty(128)
    );
    assert_eq!(
        malformed(&connack_with(&[0x21, 0, 1, 0x21, 0, 2])),
        M::DuplicateProperty(0x21)
    );
    assert_eq!(
        malformed(&packet(
            0x82,
            &[&[0, 1][..], &props(&[0x0b, 1, 0x0b, 2]), &s(b"a"), &[0]].concat()
        )),
        M::DuplicateProperty(0x0b)
    );
    assert_eq!(
        malformed(&publish_with(&[0x13, 0, 5])),
        M::PropertyNotAllowed(0x13)
    );
    assert_eq!(
        malformed(&connect_with(&[0x18, 0, 0, 0, 1])),
        M::PropertyNotAllowed(0x18)
    );
    // A will may not carry CONNECT's properties.
    let will_with_receive_maximum = packet(
        0x10,
        &[
            &s(b"MQTT")[..],
            &[5, 0x06, 0, 0],
            &props(&[]),
            &s(b"c"),
            &props(&[0x21, 0, 1]),
            &s(b"w"),
            &s(b""),
        ]
        .concat(),
    );
    assert_eq!(
        malformed(&will_with_receive_maximum),
        M::PropertyNotAllowed(0x21)
    );
}

#[test]
fn property_values_out_of_range() {
    use Malformed as M;
    assert_eq!(
        malformed(&connect_with(&[0x21, 0, 0])),
        M::PropertyValue(0x21)
    );
    assert_eq!(
        malformed(&connect_with(&[0x27, 0, 0, 0, 0])),
        M::PropertyValue(0x27)
    );
    assert_eq!(malformed(&connect_with(&[0x17, 2])), M::PropertyValue(0x17));
    assert_eq!(
        malformed(&connect_with(&[0x19, 0xff])),
        M::PropertyValue(0x19)
    );
    assert_eq!(malformed(&connack_with(&[0x24, 2])), M::PropertyValue(0x24));
    for id in [0x25, 0x28, 0x29, 0x2a] {
        assert_eq!(malformed(&connack_with(&[id, 2])), M::PropertyValue(id));
    }
    assert_eq!(malformed(&publish_with(&[0x01, 2])), M::PropertyValue(0x01));
    assert_eq!(
        malformed(&publish_with(&[0x23, 0, 0])),
        M::PropertyValue(0x23)
    );
    assert_eq!(
        malformed(&publish_with(&[0x0b, 0])),
        M::SubscriptionIdentifier
    );
    assert_eq!(
        malformed(&packet(
            0x82,
            &[&[0, 1][..], &props(&[0x0b, 0]), &s(b"a"), &[0]].concat()
        )),
        M::SubscriptionIdentifier
    );
    assert_eq!(
        malformed(&publish_with(&[&[0x08][..], &s(b"r/+")].concat())),
        M::ResponseTopic(TopicError::WildcardInName)
    );
    assert_eq!(
        malformed(&publish_with(&[0x08, 0, 0])),
        M::ResponseTopic(TopicError::Empty)
    );
}

#[test]
fn authentication_data_needs_a_method() {
    let data_alone = [0x16, 0, 1, 7];
    assert_eq!(
        malformed(&connect_with(&data_alone)),
        Malformed::AuthenticationData
    );
    assert_eq!(
        malformed(&connack_with(&data_alone)),
        Malformed::AuthenticationData
    );
    let auth = packet(0xf0, &[&[0x18][..], &props(&data_alone)].concat());
    assert_eq!(malformed(&auth), Malformed::AuthenticationData);
    // Either order is fine once the method is there.
    let both = [&data_alone[..], &[0x15, 0, 1, b'm']].concat();
    assert!(Packet::decode(&connect_with(&both)).is_ok());
    let list = [Property::AuthenticationData(b"x")];
    refused(
        Packet::Auth(Auth {
            reason_code: ReasonCode::ContinueAuthentication,
            properties: Properties::new(&list),
        }),
        EncodeError::AuthenticationData,
    );
}

#[test]
fn malformed_strings_and_string_pairs() {
    use Malformed as M;
    assert_eq!(malformed(&publish_with(&[0x03, 0, 1, 0xff])), M::Utf8);
    assert_eq!(malformed(&publish_with(&[0x03, 0, 1, 0])), M::NulCharacter);
    assert_eq!(
        malformed(&publish_with(&[0x26, 0, 1, 0xc3, 0, 0])),
        M::StringPair
    );
    assert_eq!(
        malformed(&publish_with(&[0x26, 0, 0, 0, 2, b'a', 0])),
        M::StringPair
    );
    assert_eq!(
        malformed(&publish_with(&[0x26, 0, 0, 0, 3, 0xed, 0xa0, 0x80])),
        M::StringPair
    );
}

#[test]
fn reason_codes_each_packet_may_not_carry() {
    use Malformed as M;
    let cases: &[(&[u8], u8)] = &[
        (&[0x20, 3, 0, 0x04, 0], 0x04),
        (&[0x20, 3, 0, 0x8b, 0], 0x8b),
        (&[0x40, 3, 0, 1, 0x92], 0x92),
        (&[0x50, 3, 0, 1, 0x11], 0x11),
        (&[0x62, 3, 0, 1, 0x10], 0x10),
        (&[0x70, 3, 0, 1, 0x80], 0x80),
        (&[0x90, 4, 0, 1, 0, 0x03], 0x03),
        (&[0x90, 4, 0, 1, 0, 0x11], 0x11),
        (&[0xb0, 4, 0, 1, 0, 0x01], 0x01),
        (&[0xe0, 1, 0x84], 0x84),
        (&[0xe0, 1, 0x05], 0x05),
        (&[0xf0, 1, 0x80], 0x80),
        (&[0xf0, 1, 0x04], 0x04),
    ];
    for &(bytes, code) in cases {
        assert_eq!(malformed(bytes), M::ReasonCode(code), "{bytes:02x?}");
    }
    // Every byte: valid exactly where the per-packet list says.
    for byte in 0..=255u8 {
        let bytes = [0xe0, 1, byte];
        let disconnect = Packet::decode(&bytes);
        match ReasonCode::from_u8(byte) {
            Some(code) if code.is_valid_for(PacketType::Disconnect) => {
                assert!(disconnect.is_ok())
            }
            _ => assert_eq!(disconnect, Err(M::ReasonCode(byte).into())),
        }
    }
}

#[test]
fn the_rest_of_what_the_spec_forbids() {
    use Malformed as M;
    let cases: &[(&[u8], Malformed)] = &[
        (&[0xf1, 0], M::HeaderFlags),
        (&[0x60, 2, 0, 1], M::HeaderFlags),
        (&[0x36, 4, 0, 1, b'a', 0], M::QoS),
        (&[0x38, 4, 0, 1, b'a', 0], M::HeaderFlags),
        (&[0x00, 0], M::PacketType),
        (&[0x30, 3, 0, 0, 0], M::TopicName(TopicError::Empty)),
        (
            &[0x30, 4, 0, 1, b'#', 0],
            M::TopicName(TopicError::WildcardInName),
        ),
        (&[0x32, 6, 0, 1, b'a', 0, 0, 0], M::PacketId),
        (&[0x40, 2, 0, 0], M::PacketId),
        (&[0x40, 1, 0], M::Truncated),
        (&[0x40, 5, 0, 1, 0, 0, 0], M::TrailingBytes),
        (&[0xc0, 1, 0], M::TrailingBytes),
        (&[0x20, 4, 0, 0, 0, 0], M::TrailingBytes),
        (&[0x20, 3, 2, 0, 0], M::ConnAckFlags),
        (&[0x20, 3, 1, 0x80, 0], M::SessionPresent),
        (&[0x82, 3, 0, 1, 0], M::NoFilters),
        (&[0xa2, 3, 0, 1, 0], M::NoFilters),
        (&[0x90, 3, 0, 1, 0], M::NoFilters),
        (&[0xb0, 3, 0, 1, 0], M::NoFilters),
        (
            &[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x40],
            M::SubscriptionOptions,
        ),
        (&[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x30], M::RetainHandling),
        (&[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x03], M::RequestedQoS),
        (
            &[0x82, 8, 0, 1, 0, 0, 2, b'a', b'#', 0],
            M::TopicFilter(TopicError::MultiLevelWildcard),
        ),
        (&[0xa2, 5, 0, 1, 0, 0, 1], M::Truncated),
    ];
    for &(bytes, why) in cases {
        assert_eq!(malformed(bytes), why, "{bytes:02x?}");
    }
    let shared_no_local = packet(
        0x82,
        &[&[0, 1][..], &props(&[]), &s(b"$share/g/a"), &[0x04]].concat(),
    );
    assert_eq!(malformed(&shared_no_local), M::SharedNoLocal);
    let connect = |version: u8, flags: u8| {
        packet(
            0x10,
            &[
                &s(b"MQTT")[..],
                &[version, flags, 0, 0],
                &props(&[]),
                &s(b"c"),
            ]
            .concat(),
        )
    };
    assert_eq!(malformed(&connect(4, 0)), M::ProtocolVersion);
    assert_eq!(malformed(&connect(5, 0x01)), M::ConnectFlags);
    assert_eq!(malformed(&connect(5, 0x08)), M::ConnectFlags);
    assert_eq!(malformed(&connect(5, 0x20)), M::ConnectFlags);
    assert_eq!(malformed(&connect(5, 0x1c)), M::QoS);
    let mqtx = packet(
        0x10,
        &[&s(b"MQTX")[..], &[5, 0, 0, 0], &props(&[]), &s(b"c")].concat(),
    );
    assert_eq!(malformed(&mqtx), M::ProtocolName);
    let bad_will_topic = packet(
        0x10,
        &[
            &s(b"MQTT")[..],
            &[5, 0x04, 0, 0],
            &props(&[]),
            &s(b"c"),
            &props(&[]),
            &s(b"w/+"),
            &s(b""),
        ]
        .concat(),
    );
    assert_eq!(
        malformed(&bad_will_topic),
        M::TopicName(TopicError::WildcardInName)
    );
}

/// `encode` refuses `packet` with `error`, leaving the buffer untouched.
fn refused(packet: Packet<'_>, error: EncodeError) {
    let mut buf = [0xa5u8; 256];
    assert_eq!(packet.encode(&mut buf), Err(error), "{packet:?}");
    assert!(buf.iter().all(|&b| b == 0xa5), "a refused encode wrote");
}

#[test]
fn the_encoder_refuses_what_the_decoder_would() {
    use EncodeError as E;
    use Property as P;
    let publish = |list| {
        Packet::Publish(Publish {
            properties: Properties::new(list),
            ..Publish::new("t", b"", QoS::AtMostOnce, false)
        })
    };
    refused(
        publish(&[P::ServerKeepAlive(1)]),
        E::PropertyNotAllowed(0x13),
    );
    refused(
        publish(&[P::TopicAlias(1), P::TopicAlias(2)]),
        E::DuplicateProperty(0x23),
    );
    refused(publish(&[P::TopicAlias(0)]), E::PropertyValue(0x23));
    refused(
        publish(&[P::PayloadFormatIndicator(2)]),
        E::PropertyValue(0x01),
    );
    // §3.3.2.3.2: marked UTF-8, it must be; unmarked or 0, anything goes.
    let utf8 = [P::PayloadFormatIndicator(1)];
    let marked = |payload| {
        Packet::Publish(Publish {
            properties: Properties::new(&utf8),
            ..Publish::new("t", payload, QoS::AtMostOnce, false)
        })
    };
    refused(marked(b"\xff"), E::PayloadFormat);
    refused(marked(b"a\xc3"), E::PayloadFormat);
    let mut buf = [0u8; 32];
    assert!(marked("é".as_bytes()).encode(&mut buf).is_ok());
    let bytes = [P::PayloadFormatIndicator(0)];
    let unmarked = Publish {
        properties: Properties::new(&bytes),
        ..Publish::new("t", b"\xff", QoS::AtMostOnce, false)
    };
    assert!(Packet::Publish(unmarked).encode(&mut buf).is_ok());
    refused(
        publish(&[P::SubscriptionIdentifier(0)]),
        E::SubscriptionIdentifier,
    );
    refused(
        publish(&[P::SubscriptionIdentifier(268_435_456)]),
        E::SubscriptionIdentifier,
    );
    refused(
        publish(&[P::ResponseTopic("a/#")]),
        E::ResponseTopic(TopicError::WildcardInName),
    );
    refused(publish(&[P::UserProperty("a", "\0")]), E::NulCharacter);
    refused(publish(&[P::ContentType("\0")]), E::NulCharacter);
    let big = vec![0u8; 65_536];
    let mut buf = vec![0xa5u8; 70_000];
    let too_long = [P::CorrelationData(&big)];
    assert_eq!(publish(&too_long).encode(&mut buf), Err(E::StringTooLong));
    refused(
        Packet::Publish(Publish::new("", b"", QoS::AtMostOnce, false)),
        E::TopicName(TopicError::Empty),
    );
    let connect = |list| {
        Packet::Connect(Connect {
            properties: Properties::new(list),
            ..Connect::new("c")
        })
    };
    refused(connect(&[P::ReceiveMaximum(0)]), E::PropertyValue(0x21));
    refused(connect(&[P::MaximumPacketSize(0)]), E::PropertyValue(0x27));
    refused(
        connect(&[P::RequestProblemInformation(3)]),
        E::PropertyValue(0x17),
    );
    refused(
        connect(&[P::WillDelayInterval(1)]),
        E::PropertyNotAllowed(0x18),
    );
    let will_props = [P::SessionExpiryInterval(1)];
    refused(
        Packet::Connect(Connect {
            will: Some(Will {
                properties: Properties::new(&will_props),
                topic: "w",
                payload: b"",
                qos: QoS::AtMostOnce,
                retain: false,
            }),
            ..Connect::new("c")
        }),
        E::PropertyNotAllowed(0x11),
    );
    // §3.1.3.2.3: the same for the will's payload.
    refused(
        Packet::Connect(Connect {
            will: Some(Will {
                properties: Properties::new(&utf8),
                topic: "w",
                payload: b"\xfe",
                qos: QoS::AtMostOnce,
                retain: false,
            }),
            ..Connect::new("c")
        }),
        E::PayloadFormat,
    );
    refused(
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason_code: ReasonCode::DisconnectWithWillMessage,
            properties: Properties::EMPTY,
        }),
        E::ReasonCode(0x04),
    );
    refused(
        Packet::ConnAck(ConnAck {
            session_present: true,
            reason_code: ReasonCode::Banned,
            properties: Properties::EMPTY,
        }),
        E::SessionPresent,
    );
    refused(
        Packet::PubAck(PubAck {
            reason_code: ReasonCode::PacketIdentifierNotFound,
            ..PubAck::new(1)
        }),
        E::ReasonCode(0x92),
    );
    refused(Packet::PubComp(PubComp::new(0)), E::PacketId);
    refused(
        Packet::Auth(Auth {
            reason_code: ReasonCode::NotAuthorized,
            ..Auth::new()
        }),
        E::ReasonCode(0x87),
    );
    refused(
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::GrantedQoS1,
            ..Disconnect::new()
        }),
        E::ReasonCode(0x01),
    );
    refused(
        Packet::SubAck(SubAck {
            packet_id: 1,
            properties: Properties::EMPTY,
            reason_codes: ReasonCodes::new(&[ReasonCode::NoSubscriptionExisted]),
        }),
        E::ReasonCode(0x11),
    );
    refused(
        Packet::UnsubAck(UnsubAck {
            packet_id: 1,
            properties: Properties::EMPTY,
            reason_codes: ReasonCodes::new(&[]),
        }),
        E::NoFilters,
    );
    let shared = [Subscription {
        filter: "$share/g/t",
        options: SubscriptionOptions {
            no_local: true,
            ..SubscriptionOptions::new(QoS::AtMostOnce)
        },
    }];
    refused(
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties::EMPTY,
            filters: SubscribeFilters::new(&shared),
        }),
        E::SharedNoLocal,
    );
    let ids = [P::SubscriptionIdentifier(1), P::SubscriptionIdentifier(2)];
    refused(
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties::new(&ids),
            filters: SubscribeFilters::new(&[]),
        }),
        E::DuplicateProperty(0x0b),
    );
}
