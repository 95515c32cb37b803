//! Byte vectors for every MQTT 5 packet, written from the specification's
//! figures, short forms included.

use super::*;
use crate::codec::UnsubscribeFilters;

#[test]
fn connect_with_properties_will_and_credentials() {
    let conn_props = [
        Property::SessionExpiryInterval(60),
        Property::ReceiveMaximum(20),
    ];
    let will_props = [Property::WillDelayInterval(5)];
    let packet_value = Packet::Connect(Connect {
        clean_start: true,
        keep_alive: 60,
        properties: Properties::new(&conn_props),
        client_id: "c1",
        will: Some(Will {
            properties: Properties::new(&will_props),
            topic: "status",
            payload: b"gone",
            qos: QoS::AtLeastOnce,
            retain: true,
        }),
        username: Some("u"),
        password: Some(b"pw"),
    });
    let body = [
        &s(b"MQTT")[..],
        &[5, 0b1110_1110, 0, 60],
        &props(&[0x11, 0, 0, 0, 60, 0x21, 0, 20]),
        &s(b"c1"),
        &props(&[0x18, 0, 0, 0, 5]),
        &s(b"status"),
        &s(b"gone"),
        &s(b"u"),
        &s(b"pw"),
    ]
    .concat();
    vector(packet_value, &packet(0x10, &body));
}

#[test]
fn minimal_connect_and_a_password_without_user_name() {
    let minimal = Connect {
        clean_start: false,
        keep_alive: 0,
        ..Connect::new("")
    };
    vector(
        Packet::Connect(minimal),
        &[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 5, 0, 0, 0, 0, 0, 0],
    );
    // MQTT 5 drops 3.1.1's rule that a password needs a user name.
    let password_only = Connect {
        password: Some(b"k"),
        ..minimal
    };
    vector(
        Packet::Connect(password_only),
        &[
            0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x40, 0, 0, 0, 0, 0, 0, 1, b'k',
        ],
    );
}

#[test]
fn connack_accepted_refused_and_with_properties() {
    vector(
        Packet::ConnAck(ConnAck {
            session_present: true,
            reason_code: ReasonCode::Success,
            properties: Properties::EMPTY,
        }),
        &[0x20, 3, 1, 0, 0],
    );
    vector(
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason_code: ReasonCode::NotAuthorized,
            properties: Properties::EMPTY,
        }),
        &[0x20, 3, 0, 0x87, 0],
    );
    let list = [
        Property::ReceiveMaximum(10),
        Property::MaximumQoS(1),
        Property::AssignedClientIdentifier("id"),
        Property::TopicAliasMaximum(8),
    ];
    let body = [
        &[0, 0][..],
        &props(&[0x21, 0, 10, 0x24, 1, 0x12, 0, 2, b'i', b'd', 0x22, 0, 8]),
    ]
    .concat();
    vector(
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason_code: ReasonCode::Success,
            properties: Properties::new(&list),
        }),
        &packet(0x20, &body),
    );
}

#[test]
fn publish_with_properties_and_repeated_subscription_identifiers() {
    let list = [
        Property::PayloadFormatIndicator(1),
        Property::TopicAlias(5),
        Property::SubscriptionIdentifier(128),
        Property::SubscriptionIdentifier(2),
    ];
    let body = [
        &s(b"a/b")[..],
        &[0, 10],
        &props(&[0x01, 1, 0x23, 0, 5, 0x0b, 0x80, 0x01, 0x0b, 2]),
        b"hi",
    ]
    .concat();
    let publish = Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        retain: true,
        topic: "a/b",
        packet_id: Some(10),
        properties: Properties::new(&list),
        payload: b"hi",
    };
    let bytes = packet(0x3d, &body);
    vector(Packet::Publish(publish), &bytes);
    let (Packet::Publish(decoded), _) = Packet::decode(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!(
        decoded
            .properties
            .subscription_identifiers()
            .collect::<Vec<_>>(),
        [128, 2]
    );
    assert_eq!(decoded.properties.topic_alias(), Some(5));
}

#[test]
fn publish_qos0_and_by_topic_alias_alone() {
    vector(
        Packet::Publish(Publish::new("t", b"", QoS::AtMostOnce, false)),
        &[0x30, 4, 0, 1, b't', 0],
    );
    // §3.3.2.1: an empty topic name stands for the topic of alias 1.
    let alias = [Property::TopicAlias(1)];
    let by_alias = Publish {
        properties: Properties::new(&alias),
        ..Publish::new("", b"x", QoS::AtMostOnce, true)
    };
    vector(
        Packet::Publish(by_alias),
        &[0x31, 7, 0, 0, 3, 0x23, 0, 1, b'x'],
    );
}

#[test]
fn acknowledgements_in_all_three_forms() {
    // Remaining length 2: reason 0x00, no properties.
    vector(Packet::PubAck(PubAck::new(0x1234)), &[0x40, 2, 0x12, 0x34]);
    vector(Packet::PubRec(PubRec::new(1)), &[0x50, 2, 0, 1]);
    vector(Packet::PubRel(PubRel::new(1)), &[0x62, 2, 0, 1]);
    vector(
        Packet::PubComp(PubComp::new(0xffff)),
        &[0x70, 2, 0xff, 0xff],
    );
    // Remaining length 3: a reason, no properties.
    let no_subscribers = PubAck {
        reason_code: ReasonCode::NoMatchingSubscribers,
        ..PubAck::new(1)
    };
    vector(Packet::PubAck(no_subscribers), &[0x40, 3, 0, 1, 0x10]);
    let not_found = PubRel {
        reason_code: ReasonCode::PacketIdentifierNotFound,
        ..PubRel::new(2)
    };
    vector(Packet::PubRel(not_found), &[0x62, 3, 0, 2, 0x92]);
    // The whole form: reason and properties.
    let list = [Property::ReasonString("no")];
    let refused = PubRec {
        reason_code: ReasonCode::QuotaExceeded,
        properties: Properties::new(&list),
        ..PubRec::new(3)
    };
    vector(
        Packet::PubRec(refused),
        &[0x50, 9, 0, 3, 0x97, 5, 0x1f, 0, 2, b'n', b'o'],
    );
    // A success with properties needs the whole form too.
    let user = [Property::UserProperty("k", "v")];
    let comp = PubComp {
        properties: Properties::new(&user),
        ..PubComp::new(4)
    };
    vector(
        Packet::PubComp(comp),
        &[0x70, 11, 0, 4, 0, 7, 0x26, 0, 1, b'k', 0, 1, b'v'],
    );
}

#[test]
fn longer_forms_of_an_acknowledgement_decode_as_the_short_one() {
    // The short forms are a "can" (§3.4.2.1): these are valid too, and
    // the encoder, which writes the shortest, gives them back shorter.
    let short = Packet::PubAck(PubAck::new(1));
    for bytes in [&[0x40, 3, 0, 1, 0][..], &[0x40, 4, 0, 1, 0, 0]] {
        assert_eq!(Packet::decode(bytes), Ok((short, bytes.len())));
        assert_eq!(encode(&short), [0x40, 2, 0, 1]);
    }
    let reason = Packet::PubRel(PubRel {
        reason_code: ReasonCode::PacketIdentifierNotFound,
        ..PubRel::new(1)
    });
    assert_eq!(Packet::decode(&[0x62, 4, 0, 1, 0x92, 0]), Ok((reason, 6)));
    let disconnect = Packet::Disconnect(Disconnect::new());
    for bytes in [&[0xe0, 1, 0][..], &[0xe0, 2, 0, 0]] {
        assert_eq!(Packet::decode(bytes), Ok((disconnect, bytes.len())));
    }
    let auth = Packet::Auth(Auth::new());
    assert_eq!(Packet::decode(&[0xf0, 2, 0, 0]), Ok((auth, 4)));
}

#[test]
fn subscribe_with_every_option() {
    let list = [
        Subscription {
            filter: "a/b",
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            },
        },
        Subscription {
            filter: "c/#",
            options: SubscriptionOptions::new(QoS::AtMostOnce),
        },
        Subscription {
            filter: "$share/g/d",
            options: SubscriptionOptions {
                retain_handling: RetainHandling::SendAtNewSubscribe,
                ..SubscriptionOptions::new(QoS::ExactlyOnce)
            },
        },
    ];
    let id = [Property::SubscriptionIdentifier(7)];
    let subscribe = Subscribe {
        packet_id: 10,
        properties: Properties::new(&id),
        filters: SubscribeFilters::new(&list),
    };
    let body = [
        &[0, 10][..],
        &props(&[0x0b, 7]),
        &s(b"a/b"),
        &[0x2d],
        &s(b"c/#"),
        &[0x00],
        &s(b"$share/g/d"),
        &[0x12],
    ]
    .concat();
    let bytes = packet(0x82, &body);
    vector(Packet::Subscribe(subscribe), &bytes);
    let (Packet::Subscribe(decoded), _) = Packet::decode(&bytes).unwrap() else {
        panic!()
    };
    assert_eq!(decoded.filters.iter().collect::<Vec<_>>(), list);
    assert_eq!(decoded.filters.len(), 3);
}

#[test]
fn suback_and_unsuback_with_reason_codes() {
    let granted = [
        ReasonCode::GRANTED_QOS_0,
        ReasonCode::GrantedQoS1,
        ReasonCode::GrantedQoS2,
        ReasonCode::UnspecifiedError,
        ReasonCode::WildcardSubscriptionsNotSupported,
    ];
    let suback = SubAck {
        packet_id: 10,
        properties: Properties::EMPTY,
        reason_codes: ReasonCodes::new(&granted),
    };
    vector(
        Packet::SubAck(suback),
        &[0x90, 8, 0, 10, 0, 0x00, 0x01, 0x02, 0x80, 0xa2],
    );
    let codes = [ReasonCode::Success, ReasonCode::NoSubscriptionExisted];
    let reason = [Property::ReasonString("r")];
    let unsuback = UnsubAck {
        packet_id: 11,
        properties: Properties::new(&reason),
        reason_codes: ReasonCodes::new(&codes),
    };
    vector(
        Packet::UnsubAck(unsuback),
        &[0xb0, 9, 0, 11, 4, 0x1f, 0, 1, b'r', 0x00, 0x11],
    );
}

#[test]
fn unsubscribe_with_a_user_property() {
    let user = [Property::UserProperty("k", "v")];
    let filters = ["a/b", "c/#"];
    let unsubscribe = Unsubscribe {
        packet_id: 10,
        properties: Properties::new(&user),
        filters: UnsubscribeFilters::new(&filters),
    };
    let body = [
        &[0, 10][..],
        &props(&[0x26, 0, 1, b'k', 0, 1, b'v']),
        &s(b"a/b"),
        &s(b"c/#"),
    ]
    .concat();
    vector(Packet::Unsubscribe(unsubscribe), &packet(0xa2, &body));
}

#[test]
fn pings() {
    vector(Packet::PingReq, &[0xc0, 0]);
    vector(Packet::PingResp, &[0xd0, 0]);
}

#[test]
fn disconnect_in_all_three_forms() {
    vector(Packet::Disconnect(Disconnect::new()), &[0xe0, 0]);
    let with_will = Disconnect {
        reason_code: ReasonCode::DisconnectWithWillMessage,
        ..Disconnect::new()
    };
    vector(Packet::Disconnect(with_will), &[0xe0, 1, 0x04]);
    let list = [Property::ServerReference("other")];
    let moved = Disconnect {
        reason_code: ReasonCode::ServerMoved,
        properties: Properties::new(&list),
    };
    let body = [&[0x9d][..], &props(&[&[0x1c][..], &s(b"other")].concat())].concat();
    vector(Packet::Disconnect(moved), &packet(0xe0, &body));
}

#[test]
fn auth_in_all_three_forms() {
    vector(Packet::Auth(Auth::new()), &[0xf0, 0]);
    // The reason alone: a Protocol Error but for 0x00, as the method is
    // missing (§3.15.2.2.2).
    assert_eq!(
        Packet::decode(&[0xf0, 1, 0x19]),
        Err(DecodeError::Malformed(Malformed::AuthenticationMethod))
    );
    assert_eq!(
        Packet::decode(&[0xf0, 1, 0x00]),
        Ok((Packet::Auth(Auth::new()), 3))
    );
    let reauth = Auth {
        reason_code: ReasonCode::ReAuthenticate,
        ..Auth::new()
    };
    let mut buf = [0u8; 8];
    assert_eq!(
        Packet::Auth(reauth).encode(&mut buf),
        Err(EncodeError::AuthenticationMethod)
    );
    assert_eq!(buf, [0; 8]);
    let list = [
        Property::AuthenticationMethod("SCRAM-SHA-1"),
        Property::AuthenticationData(b"\x01\x02"),
    ];
    let step = Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: Properties::new(&list),
    };
    let body = [
        &[0x18][..],
        &props(&[&[0x15][..], &s(b"SCRAM-SHA-1"), &[0x16], &s(b"\x01\x02")].concat()),
    ]
    .concat();
    vector(Packet::Auth(step), &packet(0xf0, &body));
}

#[test]
fn decoding_stops_at_the_end_of_each_packet() {
    let stream = [0xf0, 0, 0x40, 3, 0, 1, 0x10, 0xe0];
    let (first, n) = Packet::decode(&stream).unwrap();
    assert_eq!((first, n), (Packet::Auth(Auth::new()), 2));
    let (second, m) = Packet::decode(&stream[n..]).unwrap();
    assert_eq!(second.packet_type(), PacketType::PubAck);
    assert_eq!(m, 5);
    assert_eq!(
        Packet::decode(&stream[n + m..]),
        Err(DecodeError::Incomplete { needed: 1 })
    );
}

#[test]
fn packets_over_the_limit_are_too_large_before_the_body_arrives() {
    let header = [0x30, 0xe8, 0x07];
    assert_eq!(
        Packet::decode_limited(&header, 512),
        Err(DecodeError::TooLarge { len: 1003 })
    );
    assert_eq!(
        Packet::decode_limited(&header, 1003),
        Err(DecodeError::Incomplete { needed: 1000 })
    );
    assert_eq!(
        Packet::decode_limited(&[0xf0, 0x80, 0x01], 100),
        Err(DecodeError::TooLarge { len: 131 })
    );
}

#[test]
fn per_type_decoders_refuse_other_types() {
    assert_eq!(PubAck::decode(&[0x40, 2, 0, 1]), Ok((PubAck::new(1), 4)));
    assert_eq!(
        PubAck::decode(&[0x50, 2, 0, 1]),
        Err(Malformed::PacketType.into())
    );
    assert_eq!(Auth::decode(&[0xf0, 0]), Ok((Auth::new(), 2)));
    assert_eq!(
        Disconnect::decode(&[0xf0, 0]),
        Err(Malformed::PacketType.into())
    );
    assert_eq!(
        Publish::decode(&[0x30]),
        Err(DecodeError::Incomplete { needed: 1 })
    );
}

/// What the specification calls a Protocol Error in SUBSCRIBE and
/// UNSUBSCRIBE is said as one (a broker using the codec answers 0x82):
/// a Maximum QoS of 3 (§3.8.3.1), no filters (MQTT-3.8.3-2,
/// MQTT-3.10.3-2).
#[test]
fn subscribe_faults_the_specification_calls_protocol_errors() {
    for bytes in [
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61, 0x03][..],
        &[0x82, 0x03, 0x00, 0x01, 0x00],
        &[0xa2, 0x03, 0x00, 0x01, 0x00],
    ] {
        let Err(DecodeError::Malformed(fault)) = Packet::decode(bytes) else {
            panic!("{bytes:02x?} decoded");
        };
        assert_eq!(
            ReasonCode::for_malformed(fault),
            ReasonCode::ProtocolError,
            "{bytes:02x?}: {fault:?}"
        );
    }
}
