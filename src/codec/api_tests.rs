//! The public surface around encode and decode: each packet type's own
//! `decode`, the texts of the errors and return codes, the list views of
//! SUBSCRIBE, SUBACK and UNSUBSCRIBE, and the checks an outgoing SUBACK
//! and UNSUBSCRIBE must pass. `tests.rs` covers the wire format itself.

extern crate std;

use std::collections::BTreeSet;
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use super::*;
use crate::topic::TopicError;

/// One valid packet of each type, as a broker or client would send it.
mod wire {
    pub const CONNECT: &[u8] = &[
        0x10, 0x0d, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, b'c',
    ];
    pub const CONNACK: &[u8] = &[0x20, 0x02, 0x01, 0x00];
    pub const PUBLISH: &[u8] = &[0x30, 0x04, 0x00, 0x01, b'a', b'x'];
    pub const PUBACK: &[u8] = &[0x40, 0x02, 0x00, 0x07];
    pub const PUBREC: &[u8] = &[0x50, 0x02, 0x00, 0x07];
    pub const PUBREL: &[u8] = &[0x62, 0x02, 0x00, 0x07];
    pub const PUBCOMP: &[u8] = &[0x70, 0x02, 0x00, 0x07];
    pub const SUBSCRIBE: &[u8] = &[
        0x82, 0x0c, 0x00, 0x05, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x00, 0x01, b'#', 0x02,
    ];
    pub const SUBACK: &[u8] = &[0x90, 0x05, 0x00, 0x05, 0x01, 0x80, 0x02];
    pub const UNSUBSCRIBE: &[u8] = &[
        0xa2, 0x09, 0x00, 0x06, 0x00, 0x01, b'a', 0x00, 0x02, b'+', b'/',
    ];
    pub const UNSUBACK: &[u8] = &[0xb0, 0x02, 0x00, 0x06];
    pub const PINGREQ: &[u8] = &[0xc0, 0x00];
    pub const PINGRESP: &[u8] = &[0xd0, 0x00];
    pub const DISCONNECT: &[u8] = &[0xe0, 0x00];

    pub const ALL: [&[u8]; 14] = [
        CONNECT,
        CONNACK,
        PUBLISH,
        PUBACK,
        PUBREC,
        PUBREL,
        PUBCOMP,
        SUBSCRIBE,
        SUBACK,
        UNSUBSCRIBE,
        UNSUBACK,
        PINGREQ,
        PINGRESP,
        DISCONNECT,
    ];
}

/// Checks that `decode` accepts exactly the sample of its own type and
/// answers every other sample with `Malformed::PacketType`.
fn decodes_only(own: &[u8], decode: impl Fn(&[u8]) -> Result<usize, DecodeError>) {
    for sample in wire::ALL {
        let result = decode(sample);
        if sample == own {
            let used = result.unwrap_or_else(|e| panic!("{own:02x?}: {e}"));
            assert_eq!(used, own.len());
        } else {
            assert_eq!(
                result.unwrap_err(),
                DecodeError::Malformed(Malformed::PacketType),
                "{own:02x?} decoded {sample:02x?}"
            );
        }
    }
}

#[test]
fn each_packet_type_decodes_only_its_own_packets() {
    decodes_only(wire::CONNECT, |b| Connect::decode(b).map(|(_, n)| n));
    decodes_only(wire::CONNACK, |b| ConnAck::decode(b).map(|(_, n)| n));
    decodes_only(wire::PUBLISH, |b| Publish::decode(b).map(|(_, n)| n));
    decodes_only(wire::PUBACK, |b| PubAck::decode(b).map(|(_, n)| n));
    decodes_only(wire::PUBREC, |b| PubRec::decode(b).map(|(_, n)| n));
    decodes_only(wire::PUBREL, |b| PubRel::decode(b).map(|(_, n)| n));
    decodes_only(wire::PUBCOMP, |b| PubComp::decode(b).map(|(_, n)| n));
    decodes_only(wire::SUBSCRIBE, |b| Subscribe::decode(b).map(|(_, n)| n));
    decodes_only(wire::SUBACK, |b| SubAck::decode(b).map(|(_, n)| n));
    decodes_only(wire::UNSUBSCRIBE, |b| {
        Unsubscribe::decode(b).map(|(_, n)| n)
    });
    decodes_only(wire::UNSUBACK, |b| UnsubAck::decode(b).map(|(_, n)| n));
    decodes_only(wire::PINGREQ, |b| PingReq::decode(b).map(|(_, n)| n));
    decodes_only(wire::PINGRESP, |b| PingResp::decode(b).map(|(_, n)| n));
    decodes_only(wire::DISCONNECT, |b| Disconnect::decode(b).map(|(_, n)| n));
}

#[test]
fn a_typed_decode_reports_framing_errors_before_the_type() {
    assert_eq!(
        ConnAck::decode(&wire::CONNACK[..3]),
        Err(DecodeError::Incomplete { needed: 1 })
    );
    assert_eq!(
        SubAck::decode(&[0x00, 0x00]),
        Err(DecodeError::Malformed(Malformed::PacketType))
    );
}

#[test]
fn connack_fields_and_return_codes() {
    let (connack, _) = ConnAck::decode(wire::CONNACK).unwrap();
    assert!(connack.session_present);
    assert_eq!(connack.return_code, ConnectReturnCode::Accepted);

    let permanent = [
        (0, false),
        (1, true),
        (2, true),
        (3, false),
        (4, true),
        (5, true),
    ];
    let mut texts = BTreeSet::new();
    for (byte, is_permanent) in permanent {
        let code = ConnectReturnCode::from_u8(byte).unwrap();
        assert_eq!(code.is_permanent(), is_permanent, "{code:?}");
        texts.insert(code.to_string());
    }
    assert_eq!(texts.len(), 6, "two return codes read the same: {texts:?}");
    assert_eq!(
        ConnectReturnCode::BadUsernameOrPassword.to_string(),
        "bad user name or password"
    );
    assert_eq!(ConnectReturnCode::from_u8(6), None);
}

#[test]
fn suback_return_codes_are_a_borrowed_list() {
    let (suback, _) = SubAck::decode(wire::SUBACK).unwrap();
    assert_eq!(suback.packet_id, 5);
    let codes = suback.return_codes;
    assert_eq!(codes.len(), 3);
    assert!(!codes.is_empty());
    assert_eq!(codes.as_bytes(), &[0x01, 0x80, 0x02]);
    assert_eq!(
        format!("{codes:?}"),
        "[Success(AtLeastOnce), Failure, Success(ExactlyOnce)]"
    );
    for code in codes.iter() {
        assert_eq!(SubscribeReturnCode::from_u8(code.to_u8()), Some(code));
    }
    assert!(ReturnCodes::new(&[]).is_empty());
}

#[test]
fn an_outgoing_suback_needs_an_id_and_valid_codes() {
    let mut buf = [0xa5; 16];
    let cases: [(u16, &[u8], EncodeError); 3] = [
        (0, &[0x00], EncodeError::PacketId),
        (1, &[], EncodeError::NoFilters),
        (1, &[0x00, 0x03], EncodeError::ReturnCode),
    ];
    for (packet_id, codes, error) in cases {
        let suback = SubAck {
            packet_id,
            return_codes: ReturnCodes::new(codes),
        };
        assert_eq!(suback.encode(&mut buf), Err(error), "{suback:?}");
        assert!(buf.iter().all(|&b| b == 0xa5), "{suback:?} wrote on error");
    }
}

#[test]
fn subscribe_filters_iterate_compare_and_print_alike_decoded_or_built() {
    let (subscribe, _) = Subscribe::decode(wire::SUBSCRIBE).unwrap();
    let list = [
        Subscription {
            filter: "a/b",
            qos: QoS::AtLeastOnce,
        },
        Subscription {
            filter: "#",
            qos: QoS::ExactlyOnce,
        },
    ];
    let built = SubscribeFilters::new(&list);
    assert_eq!(subscribe.filters, built);
    assert_ne!(subscribe.filters, SubscribeFilters::new(&list[..1]));
    assert_eq!(subscribe.filters.len(), 2);
    assert!(!subscribe.filters.is_empty());
    let filters: Vec<&str> = subscribe.filters.into_iter().map(|s| s.filter).collect();
    assert_eq!(filters, ["a/b", "#"]);
    assert_eq!(format!("{:?}", subscribe.filters), format!("{built:?}"));
    assert!(format!("{built:?}").contains("\"a/b\""));
}

/// Filters for the SUBSCRIBE encoder's own copy of the filter scan: one
/// of each shape the scan treats apart (shorter than 4 bytes, than a word,
/// two words, more), wildcards at the edges of the words, empty levels,
/// multi-byte UTF-8 and U+0000.
const ENCODER_FILTERS: &[&str] = &[
    "#",
    "+",
    "/",
    "//",
    "+/+",
    "/+",
    "#/",
    "##",
    "++",
    "a#",
    "+a",
    "a+",
    "\0",
    "a\0",
    "home/#",
    "home/+",
    "home+/x",
    "sport/#/x",
    "sport/tennis#",
    "sport/+x/a",
    "sport//+//#",
    "$SYS/broker/load/#",
    "sensors/+/temperature",
    "sensors/+temperature",
    "sensors/+/temperature/#",
    "sensors/+/temperature#",
    "devices/0001/cmd",
    "devices/0001/cmd\0",
    "a,b/$,/+",
    "ünïcode/+/✓",
    "ünïcode+/✓",
    "🦀/#",
    "€/+/€",
    "€+/€",
    "a/b/c/d/e/f/g/h/i/j/k/l/+/m",
    "a/b/c/d/e/f/g/h/i/j/k/l/#/m",
    "a/b/c/d/e/f/g/h/i/j/k/\0/m",
];

#[test]
fn the_subscribe_encoder_checks_filters_like_validate() {
    for &filter in ENCODER_FILTERS {
        let list = [Subscription {
            filter,
            qos: QoS::AtLeastOnce,
        }];
        let subscribe = Subscribe {
            packet_id: 9,
            filters: SubscribeFilters::new(&list),
        };
        let expected = crate::topic::validate_filter(filter).map_err(EncodeError::TopicFilter);
        assert_eq!(subscribe.validate(), expected, "{filter:?}");
        let mut buf = [0xa5; 64];
        match subscribe.encode(&mut buf) {
            Ok(n) => {
                assert_eq!(expected, Ok(()), "{filter:?}");
                let (decoded, used) = Subscribe::decode(&buf[..n]).unwrap();
                assert_eq!((decoded, used), (subscribe, n), "{filter:?}");
            }
            Err(e) => {
                assert_eq!(Err(e), expected, "{filter:?}");
                assert!(buf.iter().all(|&b| b == 0xa5), "{filter:?} wrote on error");
            }
        }
    }
}

#[test]
fn filters_checked_when_built_pass_and_fail_as_the_encoder_checks_them() {
    for &filter in ENCODER_FILTERS {
        // A good filter around the one tried: the check looks at each.
        let list = [
            Subscription {
                filter: "a/+",
                qos: QoS::AtMostOnce,
            },
            Subscription {
                filter,
                qos: QoS::ExactlyOnce,
            },
        ];
        let unchecked = Subscribe {
            packet_id: 9,
            filters: SubscribeFilters::new(&list),
        };
        let mut expected = [0xa5; 64];
        let encoded = unchecked.encode(&mut expected);
        match SubscribeFilters::checked(&list) {
            Ok(filters) => {
                let n = encoded.unwrap_or_else(|e| panic!("{filter:?}: checked, encode says {e}"));
                let checked = Subscribe {
                    packet_id: 9,
                    filters,
                };
                // Alike in every way but the second check.
                assert_eq!(checked, unchecked, "{filter:?}");
                assert_eq!(format!("{filters:?}"), format!("{:?}", unchecked.filters));
                assert_eq!((checked.encoded_len(), checked.validate()), (n, Ok(())));
                let mut buf = [0xa5; 64];
                assert_eq!(checked.encode(&mut buf), Ok(n), "{filter:?}");
                assert_eq!(buf, expected, "{filter:?}");
                assert_eq!(
                    checked.encode(&mut buf[..n - 1]),
                    Err(EncodeError::BufferTooSmall { needed: n })
                );
            }
            Err(e) => assert_eq!(encoded, Err(e), "{filter:?}"),
        }
    }
    // Too long for the length prefix: the encoder's error.
    let long = "x".repeat(65_536);
    let list = [Subscription {
        filter: &long,
        qos: QoS::AtMostOnce,
    }];
    assert_eq!(
        SubscribeFilters::checked(&list).map(drop),
        Err(EncodeError::StringTooLong)
    );
    // No filters: accepted as a list, refused as a packet.
    let none = Subscribe {
        packet_id: 9,
        filters: SubscribeFilters::checked(&[]).unwrap(),
    };
    assert_eq!(none.encode(&mut [0; 8]), Err(EncodeError::NoFilters));
}

#[test]
fn a_bad_filter_after_good_ones_fails_the_subscribe_before_any_write() {
    let list = [
        Subscription {
            filter: "sensors/+/temperature",
            qos: QoS::AtLeastOnce,
        },
        Subscription {
            filter: "sport/#/x",
            qos: QoS::AtMostOnce,
        },
    ];
    let subscribe = Subscribe {
        packet_id: 9,
        filters: SubscribeFilters::new(&list),
    };
    let mut buf = [0xa5; 64];
    assert_eq!(
        subscribe.encode(&mut buf),
        Err(EncodeError::TopicFilter(TopicError::MultiLevelWildcard))
    );
    assert!(buf.iter().all(|&b| b == 0xa5));
}

#[test]
fn a_decoded_subscribe_encodes_to_the_same_bytes() {
    let (subscribe, n) = Subscribe::decode(wire::SUBSCRIBE).unwrap();
    assert_eq!(subscribe.validate(), Ok(()));
    assert_eq!(subscribe.encoded_len(), n);
    let mut buf = [0xa5; 64];
    assert_eq!(subscribe.encode(&mut buf), Ok(n));
    assert_eq!(&buf[..n], wire::SUBSCRIBE);
    assert!(buf[n..].iter().all(|&b| b == 0xa5));
    assert_eq!(
        subscribe.encode(&mut buf[..n - 1]),
        Err(EncodeError::BufferTooSmall { needed: n })
    );
}

#[test]
fn unsubscribe_filters_iterate_compare_and_print_alike_decoded_or_built() {
    let (unsubscribe, _) = Unsubscribe::decode(wire::UNSUBSCRIBE).unwrap();
    assert_eq!(unsubscribe.packet_id, 6);
    let list = ["a", "+/"];
    let built = UnsubscribeFilters::new(&list);
    assert_eq!(unsubscribe.filters, built);
    assert_ne!(unsubscribe.filters, UnsubscribeFilters::new(&list[..1]));
    assert_eq!(unsubscribe.filters.len(), 2);
    assert!(!unsubscribe.filters.is_empty());
    let filters: Vec<&str> = unsubscribe.filters.into_iter().collect();
    assert_eq!(filters, list);
    assert_eq!(format!("{:?}", unsubscribe.filters), "[\"a\", \"+/\"]");
    assert!(UnsubscribeFilters::new(&[]).is_empty());
}

#[test]
fn an_outgoing_unsubscribe_needs_an_id_and_valid_filters() {
    let long = "x".repeat(usize::from(u16::MAX) + 1);
    let cases: [(u16, &[&str], EncodeError); 5] = [
        (0, &["a"], EncodeError::PacketId),
        (1, &[], EncodeError::NoFilters),
        (
            1,
            &["a", "a/#/b"],
            EncodeError::TopicFilter(TopicError::MultiLevelWildcard),
        ),
        (1, &[""], EncodeError::TopicFilter(TopicError::Empty)),
        (1, &[long.as_str()], EncodeError::StringTooLong),
    ];
    let mut buf = [0xa5; 16];
    for (packet_id, filters, error) in cases {
        let unsubscribe = Unsubscribe {
            packet_id,
            filters: UnsubscribeFilters::new(filters),
        };
        assert_eq!(unsubscribe.validate(), Err(error), "{filters:?}");
        assert_eq!(unsubscribe.encode(&mut buf), Err(error), "{filters:?}");
        assert!(buf.iter().all(|&b| b == 0xa5), "{filters:?} wrote on error");
    }
}

#[test]
fn a_decoded_unsubscribe_with_a_bad_filter_is_malformed() {
    // UNSUBSCRIBE 1, filter "a/#/b".
    let bytes = [
        0xa2, 0x09, 0x00, 0x01, 0x00, 0x05, b'a', b'/', b'#', b'/', b'b',
    ];
    assert_eq!(
        Unsubscribe::decode(&bytes),
        Err(DecodeError::Malformed(Malformed::TopicFilter(
            TopicError::MultiLevelWildcard
        )))
    );
}

/// Every variant's text, so a new variant without one, or two variants
/// sharing one, shows up here.
#[test]
fn every_error_has_its_own_text() {
    let malformed = [
        Malformed::PacketType,
        Malformed::HeaderFlags,
        Malformed::RemainingLength,
        Malformed::QoS,
        Malformed::PacketId,
        Malformed::Utf8,
        Malformed::NulCharacter,
        Malformed::TopicName(TopicError::WildcardInName),
        Malformed::TopicFilter(TopicError::Empty),
        Malformed::NoFilters,
        Malformed::RequestedQoS,
        Malformed::SubAckReturnCode,
        Malformed::ConnAckFlags,
        Malformed::ConnectReturnCode,
        Malformed::SessionPresent,
        Malformed::ProtocolName,
        Malformed::ProtocolLevel,
        Malformed::ConnectFlags,
        Malformed::Truncated,
        Malformed::TrailingBytes,
    ];
    let texts: BTreeSet<String> = malformed.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), malformed.len(), "{texts:?}");
    assert_eq!(
        Malformed::TopicName(TopicError::WildcardInName).to_string(),
        "invalid topic name: wildcard in a topic name"
    );

    let decode = [
        DecodeError::Incomplete { needed: 3 },
        DecodeError::Malformed(Malformed::QoS),
        DecodeError::TooLarge { len: 70_000 },
    ];
    let texts: Vec<String> = decode.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "incomplete packet: need 3 more bytes",
            "malformed packet: QoS 3",
            "packet of 70000 bytes exceeds the limit",
        ]
    );

    let encode = [
        EncodeError::BufferTooSmall { needed: 9 },
        EncodeError::PacketTooLarge,
        EncodeError::StringTooLong,
        EncodeError::NulCharacter,
        EncodeError::PacketId,
        EncodeError::DupWithQoS0,
        EncodeError::TopicName(TopicError::Empty),
        EncodeError::TopicFilter(TopicError::Empty),
        EncodeError::NoFilters,
        EncodeError::ReturnCode,
        EncodeError::PasswordWithoutUsername,
    ];
    let texts: BTreeSet<String> = encode.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), encode.len(), "{texts:?}");
    assert_eq!(
        EncodeError::BufferTooSmall { needed: 9 }.to_string(),
        "buffer too small: need 9 bytes"
    );
}

#[test]
fn a_publish_head_counts_the_payload_and_refuses_what_cannot_be_sent() {
    let p = Publish::new("fw/image", b"ignored", QoS::AtLeastOnce, false);
    // QoS 1 needs a packet id, as a whole PUBLISH does.
    let mut buf = [0u8; 32];
    assert_eq!(p.encode_head(10, &mut buf), Err(EncodeError::PacketId));
    let p = Publish {
        packet_id: Some(9),
        ..p
    };
    // The remaining length counts topic, id and the whole payload.
    let n = p.encode_head(200_000, &mut buf).unwrap();
    assert_eq!(n, p.head_len(200_000));
    assert_eq!(n, 1 + 3 + 2 + 8 + 2);
    let header = FixedHeader::decode(&buf[..n]).unwrap();
    assert_eq!(header.remaining_len as usize, 2 + 8 + 2 + 200_000);
    // Too short a buffer writes nothing.
    let mut short = [0xaa; 8];
    assert_eq!(
        p.encode_head(10, &mut short),
        Err(EncodeError::BufferTooSmall { needed: 1 + 1 + 12 })
    );
    assert_eq!(short, [0xaa; 8]);
    // Past the largest remaining length MQTT can carry.
    assert_eq!(
        p.encode_head(268_435_455, &mut buf),
        Err(EncodeError::PacketTooLarge)
    );
    // A bad topic is refused as for a whole PUBLISH.
    let bad = Publish::new("a/+", b"", QoS::AtMostOnce, false);
    assert!(matches!(
        bad.encode_head(1, &mut buf),
        Err(EncodeError::TopicName(_))
    ));
}

#[test]
fn decode_errors_stay_two_bytes_wide() {
    // Every decode returns a `Result` around them: wider errors (a `u32`
    // in one MQTT 5 variant once) cost the 3.1.1 PUBLISH decode 8 of its
    // 300 instructions (benches/callgrind.sh).
    assert!(core::mem::size_of::<Malformed>() <= 2);
}
