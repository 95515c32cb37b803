//! Byte vectors for every packet, the framing contract, and property tests.

extern crate std;

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::topic::TopicError;

/// Encodes `packet` the smoltcp way: into a buffer pre-filled with 0xa5, so an
/// unwritten byte shows up, and checks `encoded_len` and every too-short buffer.
fn encode(packet: &Packet<'_>) -> Vec<u8> {
    let len = packet.encoded_len();
    let mut buf = vec![0xa5; len + 8];
    let n = packet.encode(&mut buf).expect("encode");
    assert_eq!(n, len, "encoded_len disagrees with encode");
    assert!(buf[n..].iter().all(|&b| b == 0xa5), "wrote past the packet");
    buf.truncate(n);
    buf
}

fn check_short_buffers(packet: &Packet<'_>) {
    let len = packet.encoded_len();
    for short in 0..len {
        let mut buf = vec![0xa5; short];
        assert_eq!(
            packet.encode(&mut buf),
            Err(EncodeError::BufferTooSmall { needed: len }),
            "{short}-byte buffer"
        );
        assert!(
            buf.iter().all(|&b| b == 0xa5),
            "a failed encode wrote bytes"
        );
    }
}

/// Every strict prefix must be `Incomplete`, and the whole must decode to `packet`.
fn check_decode(bytes: &[u8], packet: &Packet<'_>) {
    for cut in 0..bytes.len() {
        match Packet::decode(&bytes[..cut]) {
            Err(DecodeError::Incomplete { needed }) => {
                assert!(
                    needed >= 1 && needed <= bytes.len() - cut,
                    "needed {needed} at cut {cut}"
                )
            }
            other => panic!("prefix of {cut} bytes gave {other:?}"),
        }
    }
    let (decoded, n) = Packet::decode(bytes).expect("decode");
    assert_eq!(n, bytes.len());
    assert_eq!(&decoded, packet);
}

fn vector(packet: Packet<'_>, bytes: &[u8]) {
    assert_eq!(encode(&packet), bytes, "{packet:?}");
    check_short_buffers(&packet);
    check_decode(bytes, &packet);
}

fn malformed(bytes: &[u8]) -> Malformed {
    match Packet::decode(bytes) {
        Err(DecodeError::Malformed(why)) => why,
        other => panic!("{bytes:02x?} gave {other:?}"),
    }
}

#[test]
fn connect_matches_the_bytes() {
    let will = LastWill {
        topic: "status",
        message: b"gone",
        qos: QoS::AtLeastOnce,
        retain: true,
    };
    let packet = Packet::Connect(Connect {
        clean_session: true,
        keep_alive: 60,
        client_id: "c1",
        will: Some(will),
        username: Some("u"),
        password: Some(b"pw"),
    });
    #[rustfmt::skip]
    let bytes = [
        0x10, 35,
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04,
        0b1110_1110, 0x00, 0x3c,
        0x00, 0x02, b'c', b'1',
        0x00, 0x06, b's', b't', b'a', b't', b'u', b's',
        0x00, 0x04, b'g', b'o', b'n', b'e',
        0x00, 0x01, b'u',
        0x00, 0x02, b'p', b'w',
    ];
    vector(packet, &bytes);
}

#[test]
fn minimal_connect_matches_the_bytes() {
    // (An empty client id needs clean session, MQTT-3.1.3-7.)
    let packet = Packet::Connect(Connect {
        clean_session: true,
        keep_alive: 0,
        client_id: "",
        will: None,
        username: None,
        password: None,
    });
    vector(
        packet,
        &[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 0, 0, 0],
    );
}

#[test]
fn connack_matches_the_bytes() {
    let accepted = ConnAck {
        session_present: true,
        return_code: ConnectReturnCode::Accepted,
    };
    vector(Packet::ConnAck(accepted), &[0x20, 0x02, 0x01, 0x00]);
    for code in 1..=5u8 {
        let refused = ConnAck {
            session_present: false,
            return_code: ConnectReturnCode::from_u8(code).unwrap(),
        };
        vector(Packet::ConnAck(refused), &[0x20, 0x02, 0x00, code]);
    }
}

#[test]
fn publish_matches_the_bytes() {
    // §3.3.2.3: topic "a/b", packet identifier 10.
    let packet = Packet::Publish(Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        retain: true,
        topic: "a/b",
        packet_id: Some(10),
        payload: b"hi",
    });
    vector(
        packet,
        &[0x3d, 9, 0, 3, b'a', b'/', b'b', 0, 10, b'h', b'i'],
    );
    let qos0 = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t",
        packet_id: None,
        payload: b"",
    });
    vector(qos0, &[0x30, 3, 0, 1, b't']);
}

#[test]
fn acknowledgements_match_the_bytes() {
    vector(
        Packet::PubAck(PubAck { packet_id: 0x1234 }),
        &[0x40, 2, 0x12, 0x34],
    );
    vector(Packet::PubRec(PubRec { packet_id: 1 }), &[0x50, 2, 0, 1]);
    vector(Packet::PubRel(PubRel { packet_id: 1 }), &[0x62, 2, 0, 1]);
    vector(
        Packet::PubComp(PubComp { packet_id: 0xffff }),
        &[0x70, 2, 0xff, 0xff],
    );
    vector(
        Packet::UnsubAck(UnsubAck { packet_id: 7 }),
        &[0xb0, 2, 0, 7],
    );
}

#[test]
fn subscribe_matches_the_bytes() {
    // §3.8.3: "a/b" at QoS 1 and "c/d" at QoS 2.
    let list = [
        Subscription {
            filter: "a/b",
            qos: QoS::AtLeastOnce,
        },
        Subscription {
            filter: "c/d",
            qos: QoS::ExactlyOnce,
        },
    ];
    let packet = Packet::Subscribe(Subscribe {
        packet_id: 10,
        filters: SubscribeFilters::new(&list),
    });
    #[rustfmt::skip]
    let bytes = [0x82, 14, 0, 10, 0, 3, b'a', b'/', b'b', 1, 0, 3, b'c', b'/', b'd', 2];
    vector(packet, &bytes);
    let Packet::Subscribe(decoded) = Packet::decode(&bytes).unwrap().0 else {
        panic!()
    };
    assert_eq!(decoded.filters.len(), 2);
    assert_eq!(decoded.filters.iter().collect::<Vec<_>>(), list);
}

#[test]
fn subscribe_header_around_one_length_byte() {
    // Remaining lengths 125 to 130: the encoder writes a body under 128
    // bytes with a 2-byte fixed header at once, and longer ones the long way.
    for filter_len in 118..=123 {
        let filter: String = "a/".repeat(filter_len).chars().take(filter_len).collect();
        let list = [Subscription {
            filter: &filter,
            qos: QoS::AtLeastOnce,
        }];
        let packet = Packet::Subscribe(Subscribe {
            packet_id: 0x1234,
            filters: SubscribeFilters::new(&list),
        });
        let remaining = 2 + 2 + filter_len + 1;
        let mut bytes = vec![0x82];
        if remaining < 128 {
            bytes.push(remaining as u8);
        } else {
            bytes.extend([remaining as u8 | 0x80, (remaining >> 7) as u8]);
        }
        bytes.extend([0x12, 0x34, 0, filter_len as u8]);
        bytes.extend(filter.as_bytes());
        bytes.push(1);
        vector(packet, &bytes);
    }
}

#[test]
fn suback_matches_the_bytes() {
    // §3.9.3: success at QoS 0, success at QoS 2, failure.
    let packet = Packet::SubAck(SubAck {
        packet_id: 10,
        return_codes: ReturnCodes::new(&[0x00, 0x02, 0x80]),
    });
    vector(packet, &[0x90, 5, 0, 10, 0x00, 0x02, 0x80]);
    let Packet::SubAck(decoded) = Packet::decode(&[0x90, 5, 0, 10, 0x00, 0x02, 0x80])
        .unwrap()
        .0
    else {
        panic!()
    };
    let codes: Vec<_> = decoded.return_codes.iter().collect();
    assert_eq!(
        codes,
        [
            SubscribeReturnCode::Success(QoS::AtMostOnce),
            SubscribeReturnCode::Success(QoS::ExactlyOnce),
            SubscribeReturnCode::Failure
        ]
    );
}

#[test]
fn unsubscribe_matches_the_bytes() {
    let list = ["a/b", "c/#"];
    let packet = Packet::Unsubscribe(Unsubscribe {
        packet_id: 10,
        filters: UnsubscribeFilters::new(&list),
    });
    vector(
        packet,
        &[
            0xa2, 12, 0, 10, 0, 3, b'a', b'/', b'b', 0, 3, b'c', b'/', b'#',
        ],
    );
}

#[test]
fn empty_packets_match_the_bytes() {
    vector(Packet::PingReq, &[0xc0, 0]);
    vector(Packet::PingResp, &[0xd0, 0]);
    vector(Packet::Disconnect, &[0xe0, 0]);
}

#[test]
fn packets_are_small() {
    // Borrowing keeps the enum small; an owned filter list would make it kilobytes.
    assert!(
        core::mem::size_of::<Packet<'_>>() <= 96,
        "{}",
        core::mem::size_of::<Packet<'_>>()
    );
}

#[test]
fn per_type_decoders_refuse_other_types() {
    assert_eq!(
        PubAck::decode(&[0x40, 2, 0, 1]),
        Ok((PubAck { packet_id: 1 }, 4))
    );
    assert_eq!(
        PubAck::decode(&[0x50, 2, 0, 1]),
        Err(Malformed::PacketType.into())
    );
    assert_eq!(PingResp::decode(&[0xd0, 0]), Ok((PingResp, 2)));
    assert!(Publish::decode(&[0xd0, 0]).is_err());
}

#[test]
fn decoding_stops_at_the_end_of_the_packet() {
    let stream = [0xd0, 0, 0x40, 2, 0, 1, 0x30];
    let (first, n) = Packet::decode(&stream).unwrap();
    assert_eq!((first, n), (Packet::PingResp, 2));
    let (second, m) = Packet::decode(&stream[n..]).unwrap();
    assert_eq!((second, m), (Packet::PubAck(PubAck { packet_id: 1 }), 4));
    assert_eq!(
        Packet::decode(&stream[n + m..]),
        Err(DecodeError::Incomplete { needed: 1 })
    );
}

#[test]
fn packets_over_the_limit_are_too_large_before_the_body_arrives() {
    // A PUBLISH announcing 1,000 bytes with only its header present.
    let header = [0x30, 0xe8, 0x07];
    assert_eq!(
        Packet::decode_limited(&header, 512),
        Err(DecodeError::TooLarge { len: 1003 })
    );
    assert_eq!(
        Packet::decode_limited(&header, 1003),
        Err(DecodeError::Incomplete { needed: 1000 })
    );
}

#[test]
fn remaining_length_boundaries_survive_a_round_trip() {
    let payload = vec![0x5a; 2_097_152 + 16];
    // With topic "t" the body is 3 bytes plus the payload.
    for remaining in [3usize, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
        let publish = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t",
            packet_id: None,
            payload: &payload[..remaining - 3],
        };
        let packet = Packet::Publish(publish);
        let bytes = encode(&packet);
        assert_eq!(bytes.len(), 1 + varint_len(remaining as u32) + remaining);
        let (decoded, n) = Packet::decode(&bytes).unwrap();
        assert_eq!((decoded, n), (packet, bytes.len()));
    }
}

#[test]
fn the_largest_remaining_length_is_framed_and_one_more_is_refused() {
    let header = [0x30, 0xff, 0xff, 0xff, 0x7f];
    assert_eq!(
        Packet::decode(&header),
        Err(DecodeError::Incomplete {
            needed: 268_435_455
        })
    );
    assert_eq!(
        super::reserve(&mut [], MAX_PACKET_LEN + 1),
        Err(EncodeError::PacketTooLarge)
    );
}

#[test]
fn strings_of_65535_bytes_encode_and_65536_do_not() {
    let long = "a".repeat(65_535);
    let connect = Connect {
        clean_session: true,
        keep_alive: 1,
        client_id: &long,
        will: None,
        username: Some(&long),
        password: None,
    };
    let bytes = encode(&Packet::Connect(connect));
    assert_eq!(Packet::decode(&bytes).unwrap().0, Packet::Connect(connect));

    let longer = "a".repeat(65_536);
    let too_long = Connect {
        client_id: &longer,
        ..connect
    };
    assert_eq!(
        too_long.encode(&mut vec![0; 200_000]),
        Err(EncodeError::StringTooLong)
    );
    let publish = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: &longer,
        packet_id: None,
        payload: b"",
    };
    assert_eq!(
        publish.encode(&mut vec![0; 200_000]),
        Err(EncodeError::StringTooLong)
    );
    let publish = Publish {
        topic: &long,
        ..publish
    };
    let bytes = encode(&Packet::Publish(publish));
    assert_eq!(Packet::decode(&bytes).unwrap().0, Packet::Publish(publish));
}

#[test]
fn invalid_outgoing_packets_are_refused() {
    let base = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "a",
        packet_id: Some(1),
        payload: b"",
    };
    let mut buf = [0xa5; 64];
    let refused = [
        (
            Publish {
                packet_id: None,
                ..base
            },
            EncodeError::PacketId,
        ),
        (
            Publish {
                packet_id: Some(0),
                ..base
            },
            EncodeError::PacketId,
        ),
        (
            Publish {
                qos: QoS::AtMostOnce,
                ..base
            },
            EncodeError::PacketId,
        ),
        (
            Publish {
                qos: QoS::AtMostOnce,
                packet_id: None,
                dup: true,
                ..base
            },
            EncodeError::DupWithQoS0,
        ),
        (
            Publish {
                topic: "a/+",
                ..base
            },
            EncodeError::TopicName(TopicError::WildcardInName),
        ),
        (
            Publish { topic: "", ..base },
            EncodeError::TopicName(TopicError::Empty),
        ),
    ];
    for (publish, error) in refused {
        assert_eq!(publish.encode(&mut buf), Err(error), "{publish:?}");
    }
    assert!(buf.iter().all(|&b| b == 0xa5));

    let no_filters = Subscribe {
        packet_id: 1,
        filters: SubscribeFilters::new(&[]),
    };
    assert_eq!(no_filters.encode(&mut buf), Err(EncodeError::NoFilters));
    let bad = [Subscription {
        filter: "a#",
        qos: QoS::AtMostOnce,
    }];
    let bad_filter = Subscribe {
        packet_id: 1,
        filters: SubscribeFilters::new(&bad),
    };
    assert_eq!(
        bad_filter.encode(&mut buf),
        Err(EncodeError::TopicFilter(TopicError::MultiLevelWildcard))
    );
    let unsub = Unsubscribe {
        packet_id: 0,
        filters: UnsubscribeFilters::new(&["a"]),
    };
    assert_eq!(unsub.encode(&mut buf), Err(EncodeError::PacketId));
    assert_eq!(
        PubAck { packet_id: 0 }.encode(&mut buf),
        Err(EncodeError::PacketId)
    );
    let suback = SubAck {
        packet_id: 1,
        return_codes: ReturnCodes::new(&[3]),
    };
    assert_eq!(suback.encode(&mut buf), Err(EncodeError::ReturnCode));
    let connect = Connect {
        clean_session: true,
        keep_alive: 0,
        client_id: "a\0",
        will: None,
        username: None,
        password: None,
    };
    assert_eq!(connect.encode(&mut buf), Err(EncodeError::NulCharacter));
    let connect = Connect {
        client_id: "a",
        password: Some(b"x"),
        ..connect
    };
    assert_eq!(
        connect.encode(&mut buf),
        Err(EncodeError::PasswordWithoutUsername)
    );
    // MQTT-3.1.3-7: an empty client id needs clean session.
    let connect = Connect {
        client_id: "",
        password: None,
        clean_session: false,
        ..connect
    };
    assert_eq!(connect.encode(&mut buf), Err(EncodeError::EmptyClientId));
    assert!(
        Connect {
            clean_session: true,
            ..connect
        }
        .encode(&mut buf)
        .is_ok()
    );
}

#[test]
fn a_refusing_connack_with_session_present_is_not_encoded() {
    // MQTT-3.2.2-4; the decoder refuses it too.
    let mut buf = [0u8; 4];
    let refused = ConnAck {
        session_present: true,
        return_code: ConnectReturnCode::NotAuthorized,
    };
    assert_eq!(refused.encode(&mut buf), Err(EncodeError::SessionPresent));
    let accepted = ConnAck {
        return_code: ConnectReturnCode::Accepted,
        ..refused
    };
    assert_eq!(accepted.encode(&mut buf), Ok(4));
}

#[test]
fn what_the_spec_forbids_is_malformed_with_its_own_reason() {
    use Malformed as M;
    let cases: &[(&[u8], Malformed)] = &[
        (&[0x00, 0], M::PacketType),
        (&[0xf0, 0], M::PacketType),
        (&[0x60, 2, 0, 1], M::HeaderFlags),
        (&[0x80, 6, 0, 1, 0, 1, b'a', 0], M::HeaderFlags),
        (&[0xa0, 5, 0, 1, 0, 1, b'a'], M::HeaderFlags),
        (&[0x41, 2, 0, 1], M::HeaderFlags),
        (&[0x38, 3, 0, 1, b'a'], M::HeaderFlags),
        (&[0x36, 5, 0, 1, b'a', 0, 1], M::QoS),
        (&[0x32, 5, 0, 1, b'a', 0, 0], M::PacketId),
        (&[0x40, 2, 0, 0], M::PacketId),
        (&[0x82, 6, 0, 0, 0, 1, b'a', 0], M::PacketId),
        (&[0x30, 4, 0, 2, 0xc3, 0x28], M::Utf8),
        (&[0x30, 4, 0, 2, 0xed, 0xa0], M::Utf8),
        (&[0x30, 4, 0, 2, b'a', 0], M::NulCharacter),
        (
            &[0x30, 5, 0, 3, b'a', b'/', b'+'],
            M::TopicName(TopicError::WildcardInName),
        ),
        (
            &[0x30, 3, 0, 1, b'#'],
            M::TopicName(TopicError::WildcardInName),
        ),
        (&[0x30, 2, 0, 0], M::TopicName(TopicError::Empty)),
        (&[0x82, 2, 0, 1], M::NoFilters),
        (&[0xa2, 2, 0, 1], M::NoFilters),
        (&[0x90, 2, 0, 1], M::NoFilters),
        (
            &[0x82, 7, 0, 1, 0, 2, b'a', b'#', 0],
            M::TopicFilter(TopicError::MultiLevelWildcard),
        ),
        (&[0xa2, 5, 0, 1, 0, 1, 0], M::NulCharacter),
        (&[0x82, 6, 0, 1, 0, 1, b'a', 3], M::RequestedQoS),
        (&[0x82, 6, 0, 1, 0, 1, b'a', 0x04], M::RequestedQoS),
        (&[0x90, 3, 0, 1, 0x03], M::SubAckReturnCode),
        (&[0x90, 3, 0, 1, 0x81], M::SubAckReturnCode),
        (&[0x40, 3, 0, 1, 0], M::TrailingBytes),
        (&[0xd0, 1, 0], M::TrailingBytes),
        (&[0x20, 3, 0, 0, 0], M::TrailingBytes),
        (&[0x40, 1, 0], M::Truncated),
        (&[0x20, 1, 0], M::Truncated),
        (&[0x30, 1, 0], M::Truncated),
        (&[0x30, 3, 0, 5, b'a'], M::Truncated),
        (&[0x20, 2, 0x02, 0], M::ConnAckFlags),
        (&[0x20, 2, 0x80, 0], M::ConnAckFlags),
        (&[0x20, 2, 0, 6], M::ConnectReturnCode),
        (&[0x20, 2, 1, 5], M::SessionPresent),
        (
            &[0x10, 12, 0, 4, b'M', b'Q', b'T', b'X', 4, 0, 0, 0, 0, 0],
            M::ProtocolName,
        ),
        (
            &[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 3, 0, 0, 0, 0, 0],
            M::ProtocolLevel,
        ),
        (
            &[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 1, 0, 0, 0, 0],
            M::ConnectFlags,
        ),
        (
            &[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x08, 0, 0, 0, 0],
            M::ConnectFlags,
        ),
        (
            &[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x20, 0, 0, 0, 0],
            M::ConnectFlags,
        ),
        (
            &[0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x40, 0, 0, 0, 0],
            M::ConnectFlags,
        ),
        (
            &[
                0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x1c, 0, 0, 0, 0, 0, 1, b'a', 0, 0,
            ],
            M::QoS,
        ),
        (
            &[
                0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x04, 0, 0, 0, 0, 0, 1, b'+', 0, 0,
            ],
            M::TopicName(TopicError::WildcardInName),
        ),
        (&[0xc0, 0x80, 0x80, 0x80, 0x80, 0x01], M::RemainingLength),
    ];
    for &(bytes, why) in cases {
        assert_eq!(malformed(bytes), why, "{bytes:02x?}");
    }
}

#[test]
fn non_minimal_remaining_lengths_are_accepted() {
    // MQTT 3.1.1 does not require the shortest varint; 3.1.1 brokers send the shortest anyway.
    assert_eq!(
        Packet::decode(&[0xd0, 0x80, 0x00]),
        Ok((Packet::PingResp, 3))
    );
}

// ---- property tests -------------------------------------------------------

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn topic_name() -> impl Strategy<Value = String> {
    "[a-z0-9$ é/]{1,24}"
}

fn topic_filter() -> impl Strategy<Value = String> {
    prop_oneof![
        topic_name(),
        Just("#".into()),
        "[a-z]{1,5}/\\+/[a-z]{1,5}/#"
    ]
}

use std::string::String;

/// Owned inputs for one packet of each kind, borrowed into a `Packet` by `build`.
#[derive(Debug, Clone)]
struct Owned {
    kind: u8,
    id: u16,
    qos: QoS,
    flags: (bool, bool, bool),
    topic: String,
    payload: Vec<u8>,
    filters: Vec<(String, QoS)>,
    codes: Vec<u8>,
}

fn owned() -> impl Strategy<Value = Owned> {
    (
        1u8..=14,
        1u16..,
        qos(),
        any::<(bool, bool, bool)>(),
        topic_name(),
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec((topic_filter(), qos()), 1..5),
        proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(2), Just(0x80)], 1..5),
    )
        .prop_map(
            |(kind, id, qos, flags, topic, payload, filters, codes)| Owned {
                kind,
                id,
                qos,
                flags,
                topic,
                payload,
                filters,
                codes,
            },
        )
}

fn with_packet<R>(o: &Owned, f: impl FnOnce(Packet<'_>) -> R) -> R {
    let subs: Vec<Subscription<'_>> = o
        .filters
        .iter()
        .map(|(filter, qos)| Subscription { filter, qos: *qos })
        .collect();
    let unsubs: Vec<&str> = o
        .filters
        .iter()
        .map(|(filter, _)| filter.as_str())
        .collect();
    let id = o.id;
    let packet = match o.kind {
        1 => Packet::Connect(Connect {
            clean_session: o.flags.0,
            keep_alive: id,
            client_id: &o.topic,
            will: o.flags.1.then_some(LastWill {
                topic: &o.topic,
                message: &o.payload,
                qos: o.qos,
                retain: o.flags.2,
            }),
            username: o.flags.2.then_some(o.topic.as_str()),
            password: (o.flags.2 && o.flags.0).then_some(o.payload.as_slice()),
        }),
        2 => Packet::ConnAck(ConnAck {
            session_present: o.flags.0,
            return_code: if o.flags.0 {
                ConnectReturnCode::Accepted
            } else {
                ConnectReturnCode::from_u8((id % 6) as u8).unwrap()
            },
        }),
        3 => Packet::Publish(Publish {
            dup: o.flags.0 && o.qos != QoS::AtMostOnce,
            qos: o.qos,
            retain: o.flags.1,
            topic: &o.topic,
            packet_id: (o.qos != QoS::AtMostOnce).then_some(id),
            payload: &o.payload,
        }),
        4 => Packet::PubAck(PubAck { packet_id: id }),
        5 => Packet::PubRec(PubRec { packet_id: id }),
        6 => Packet::PubRel(PubRel { packet_id: id }),
        7 => Packet::PubComp(PubComp { packet_id: id }),
        8 => Packet::Subscribe(Subscribe {
            packet_id: id,
            filters: SubscribeFilters::new(&subs),
        }),
        9 => Packet::SubAck(SubAck {
            packet_id: id,
            return_codes: ReturnCodes::new(&o.codes),
        }),
        10 => Packet::Unsubscribe(Unsubscribe {
            packet_id: id,
            filters: UnsubscribeFilters::new(&unsubs),
        }),
        11 => Packet::UnsubAck(UnsubAck { packet_id: id }),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        _ => Packet::Disconnect,
    };
    f(packet)
}

proptest! {
    #[test]
    fn every_valid_packet_round_trips(o in owned()) {
        with_packet(&o, |packet| {
            let bytes = encode(&packet);
            let (decoded, n) = Packet::decode(&bytes).unwrap();
            prop_assert_eq!(n, bytes.len());
            prop_assert_eq!(decoded, packet);
            Ok(())
        })?;
    }

    #[test]
    fn every_strict_prefix_is_incomplete(o in owned()) {
        with_packet(&o, |packet| {
            let bytes = encode(&packet);
            for cut in 0..bytes.len() {
                let got = Packet::decode(&bytes[..cut]);
                prop_assert!(matches!(got, Err(DecodeError::Incomplete { .. })), "cut {}: {:?}", cut, got);
            }
            Ok(())
        })?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok((packet, n)) = Packet::decode(&bytes) {
            prop_assert!(n <= bytes.len());
            // Whatever decodes re-encodes to the same bytes, unless the varint was not minimal.
            let again = encode(&packet);
            prop_assert_eq!(Packet::decode(&again).unwrap().0, packet);
        }
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        first in prop_oneof![Just(0x10u8), Just(0x20), Just(0x30), Just(0x32), Just(0x3d), Just(0x40), Just(0x62), Just(0x82), Just(0x90), Just(0xa2), Just(0xb0)],
        body in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let mut bytes = vec![first, body.len() as u8];
        bytes.extend_from_slice(&body);
        match Packet::decode(&bytes) {
            Ok((_, n)) => prop_assert_eq!(n, bytes.len()),
            Err(DecodeError::Malformed(_)) => {}
            Err(other) => prop_assert!(false, "framed body gave {:?}", other),
        }
    }

    /// The client's receive path decodes with `decode_server_body`, the
    /// codec API with `decode_body`: for every packet a server sends they
    /// must agree, and every packet only a client sends must be set aside.
    #[test]
    fn server_body_decoding_agrees_with_the_full_decoder(
        first in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let mut bytes = vec![first, body.len() as u8];
        bytes.extend_from_slice(&body);
        let Ok((header, body, _)) = frame(&bytes, MAX_PACKET_LEN) else {
            return Ok(());
        };
        let client_only = matches!(
            header.packet_type,
            PacketType::Connect
                | PacketType::Subscribe
                | PacketType::Unsubscribe
                | PacketType::PingReq
                | PacketType::Disconnect
        );
        match Packet::decode_server_body(header, body) {
            None => prop_assert!(client_only, "{:?} set aside", header.packet_type),
            Some(server) => {
                prop_assert!(!client_only, "{:?} parsed", header.packet_type);
                prop_assert_eq!(server, Packet::decode_body(header, body));
            }
        }
    }
}
