//! The client against a scripted fake broker that misbehaves: malformed
//! packets, packets MQTT 3.1.1 forbids at that point, acknowledgements
//! nobody asked for, oversize packets, and a byte stream cut at every
//! possible place.
//!
//! Every case ends in one of two defined outcomes, never a panic or a hang
//! (each test runs on tokio's paused clock, and every step is bounded):
//!
//! - **Connection error**: the call returns `Error::Broker(BrokerError::Malformed(..))`,
//!   `Error::Broker(BrokerError::Protocol(..))`, `Error::Broker(BrokerError::Refused(..))` or `Error::IncomingFull`,
//!   `on_disconnect` runs once with the matching reason, and
//!   `is_connected()` is false (MQTT 3.1.1 §4.8: on a protocol violation
//!   the receiver closes the network connection).
//! - **Tolerated**: the packet is handled or ignored, nothing is reported,
//!   and the connection keeps working (proved by a PINGREQ / PINGRESP round
//!   trip afterwards, and by what the client sent in between).
//!
//! Each test's doc says which, and cites the section of MQTT 3.1.1 behind
//! the choice.

mod common;

use std::io::ErrorKind as IoKind;
use std::time::Duration;

use common::fake::*;
use minimqtt::BrokerError;
use minimqtt::callbacks::DisconnectReason;
use minimqtt::codec::{Malformed, PacketType};
use minimqtt::topic::TopicError;
use minimqtt::{Error, Handled, QoS, SubscribeReturnCode};

type E = Error<IoKind>;

const SECOND: Duration = Duration::from_secs(1);
const POLL: minimqtt::time::Duration = minimqtt::time::Duration::from_secs(1);

/// What one `poll` made of the broker's bytes.
struct After {
    result: Result<Handled, E>,
    log: Log,
    connected: bool,
    broker: FakeBroker,
}

/// Connects a client (small buffers: 256-byte receive buffer), lets the
/// broker send `bytes` in one write, and polls once for a second.
async fn connected_then(bytes: &[u8]) -> After {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    broker.send(bytes).await;
    let result = within("poll", c.poll(POLL))
        .await
        .map_err(|e| e.map_transport(|e| e.kind()));
    After {
        result,
        log: c.user_data().clone(),
        connected: c.is_connected(),
        broker,
    }
}

/// Asserts the connection error `want`, one `on_disconnect` with
/// `ProtocolError`, and a disconnected client that sent nothing more.
async fn assert_protocol_error(bytes: &[u8], want: E) {
    let mut after = connected_then(bytes).await;
    assert_eq!(after.result, Err(want), "for bytes {bytes:02x?}");
    assert_eq!(after.log.disconnected, [DisconnectReason::ProtocolError]);
    assert!(!after.connected);
    assert!(after.log.messages.is_empty());
    after.broker.expect_silence(SECOND).await;
}

/// Asserts the bytes were tolerated: `poll` handled `packets` packets
/// without error, the client is still connected, and a ping round trip
/// works. Returns what the client sent before the PINGREQ.
async fn assert_tolerated(bytes: &[u8], packets: usize) -> (Log, Vec<Rx>) {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    broker.send(bytes).await;
    let handled = within("poll", c.poll(POLL)).await.expect("tolerated");
    assert_eq!(handled.packets, packets, "for bytes {bytes:02x?}");
    assert!(c.is_connected());
    let mut sent = Vec::new();
    within("ping", async {
        let ping = c.ping();
        let broker_side = async {
            loop {
                match broker.recv().await {
                    Rx::PingReq => break,
                    other => sent.push(other),
                }
            }
            broker.send(&PINGRESP).await;
        };
        let (pinged, ()) = tokio::join!(ping, broker_side);
        pinged.expect("ping after a tolerated packet");
    })
    .await;
    assert!(c.user_data().disconnected.is_empty());
    (c.user_data().clone(), sent)
}

// ---------------------------------------------------------------------------
// Malformed packets: connection error, `on_disconnect(ProtocolError)`.

/// A fifth remaining-length byte (all four with the continuation bit) is
/// malformed: the varint has at most four bytes (§2.2.3). Reported from
/// the bytes seen, not "need more".
#[tokio::test(start_paused = true)]
async fn remaining_length_of_five_bytes_is_malformed() {
    assert_protocol_error(
        &[0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
        Error::Broker(BrokerError::Malformed(Malformed::RemainingLength)),
    )
    .await;
    // Even when the stream stops after the fourth continuation byte.
    assert_protocol_error(
        &[0xd0, 0x80, 0x80, 0x80, 0x80],
        Error::Broker(BrokerError::Malformed(Malformed::RemainingLength)),
    )
    .await;
}

/// A topic that is not UTF-8 is malformed (§1.5.3, MQTT-1.5.3-1).
#[tokio::test(start_paused = true)]
async fn topic_with_invalid_utf8_is_malformed() {
    assert_protocol_error(
        &publish_raw(0, b"a/\xff\xfe", None, b"x"),
        Error::Broker(BrokerError::Malformed(Malformed::Utf8)),
    )
    .await;
    // An encoded surrogate (U+D800) is not UTF-8 either (MQTT-1.5.3-1).
    assert_protocol_error(
        &publish_raw(0, b"a/\xed\xa0\x80", None, b"x"),
        Error::Broker(BrokerError::Malformed(Malformed::Utf8)),
    )
    .await;
}

/// U+0000 in a topic is malformed (§1.5.3, MQTT-1.5.3-2).
#[tokio::test(start_paused = true)]
async fn topic_with_nul_is_malformed() {
    assert_protocol_error(
        &publish_raw(2, b"a\0b", Some(5), b"x"),
        Error::Broker(BrokerError::Malformed(Malformed::NulCharacter)),
    )
    .await;
}

/// Wildcards in a PUBLISH topic name are malformed (§3.3.2.1,
/// MQTT-3.3.2-2), and so is an empty topic name (§4.7.3, MQTT-4.7.3-1).
#[tokio::test(start_paused = true)]
async fn topic_with_wildcard_or_empty_is_malformed() {
    for topic in [&b"a/+"[..], b"a/#", b"#"] {
        let after = connected_then(&publish_raw(0, topic, None, b"x")).await;
        assert!(
            matches!(
                after.result,
                Err(Error::Broker(BrokerError::Malformed(Malformed::TopicName(
                    _
                ))))
            ),
            "{topic:?}: {:?}",
            after.result
        );
        assert_eq!(after.log.disconnected, [DisconnectReason::ProtocolError]);
    }
    assert_protocol_error(
        &publish_raw(0, b"", None, b"x"),
        Error::Broker(BrokerError::Malformed(Malformed::TopicName(
            TopicError::Empty,
        ))),
    )
    .await;
}

/// Fixed-header flags other than the ones §2.2.2 prescribes for the type
/// are malformed (MQTT-2.2.2-2): PUBACK, SUBACK, UNSUBACK, PINGRESP and
/// CONNACK must carry 0, PUBREL 0b0010; a QoS 0 PUBLISH must not have DUP
/// (MQTT-3.3.1-2).
#[tokio::test(start_paused = true)]
async fn wrong_fixed_header_flags_are_malformed() {
    let cases: [&[u8]; 7] = [
        &[0x41, 0x02, 0x00, 0x01],             // PUBACK with flags 1
        &[0x60, 0x02, 0x00, 0x01],             // PUBREL without its 0b0010
        &[0x58, 0x02, 0x00, 0x01],             // PUBREC with flags 8
        &[0x92, 0x03, 0x00, 0x01, 0x00],       // SUBACK with flags 2
        &[0xb1, 0x02, 0x00, 0x01],             // UNSUBACK with flags 1
        &[0xdf, 0x00],                         // PINGRESP with flags 15
        &[0x38, 0x04, 0x00, 0x01, b'a', b'x'], // QoS 0 PUBLISH with DUP
    ];
    for bytes in cases {
        assert_protocol_error(
            bytes,
            Error::Broker(BrokerError::Malformed(Malformed::HeaderFlags)),
        )
        .await;
    }
}

/// QoS 3 in a PUBLISH is malformed (§3.3.1.2, MQTT-3.3.1-4), with or
/// without DUP and RETAIN.
#[tokio::test(start_paused = true)]
async fn qos_3_is_malformed() {
    for flags in [0x06, 0x07, 0x0e, 0x0f] {
        assert_protocol_error(
            &publish_raw(flags, b"a", Some(1), b"x"),
            Error::Broker(BrokerError::Malformed(Malformed::QoS)),
        )
        .await;
    }
}

/// Packet identifier 0 is malformed wherever one is required (§2.3.1,
/// MQTT-2.3.1-1): QoS 1/2 PUBLISH, every acknowledgement, SUBACK.
#[tokio::test(start_paused = true)]
async fn packet_id_0_is_malformed() {
    let cases = [
        publish_raw(2, b"a", Some(0), b"x"),
        publish_raw(4, b"a", Some(0), b"x"),
        puback(0),
        pubrec(0),
        pubrel(0),
        pubcomp(0),
        unsuback(0),
        suback(0, &[0]),
    ];
    for bytes in cases {
        assert_protocol_error(
            &bytes,
            Error::Broker(BrokerError::Malformed(Malformed::PacketId)),
        )
        .await;
    }
}

/// The reserved packet types 0 and 15 are malformed (§2.2.1, Table 2.1),
/// whatever follows.
#[tokio::test(start_paused = true)]
async fn reserved_packet_types_are_malformed() {
    for bytes in [
        &[0x00, 0x00][..],
        &[0xf0, 0x00],
        &[0x0f, 0x02, 0, 1],
        &[0xff],
    ] {
        assert_protocol_error(
            bytes,
            Error::Broker(BrokerError::Malformed(Malformed::PacketType)),
        )
        .await;
    }
}

/// Bodies whose length disagrees with their fields are malformed: an
/// acknowledgement has exactly two bytes (§3.4.2), PINGRESP none (§3.13),
/// and a topic cannot run past the end of its packet (§3.3.2).
#[tokio::test(start_paused = true)]
async fn body_length_mismatches_are_malformed() {
    assert_protocol_error(
        &[0x40, 0x03, 0x00, 0x01, 0x00],
        Error::Broker(BrokerError::Malformed(Malformed::TrailingBytes)),
    )
    .await;
    assert_protocol_error(
        &[0x40, 0x01, 0x01],
        Error::Broker(BrokerError::Malformed(Malformed::Truncated)),
    )
    .await;
    assert_protocol_error(
        &[0xd0, 0x01, 0x00],
        Error::Broker(BrokerError::Malformed(Malformed::TrailingBytes)),
    )
    .await;
    // Topic length 5, but only 1 byte of body left.
    assert_protocol_error(
        &[0x30, 0x03, 0x00, 0x05, b'a'],
        Error::Broker(BrokerError::Malformed(Malformed::Truncated)),
    )
    .await;
}

/// SUBACK return codes other than 0x00, 0x01, 0x02 and 0x80 are malformed
/// (§3.9.3), and so is a SUBACK with no code at all.
#[tokio::test(start_paused = true)]
async fn bad_suback_return_codes_are_malformed() {
    for code in [0x03, 0x04, 0x7f, 0x81, 0xff] {
        assert_protocol_error(
            &suback(1, &[code]),
            Error::Broker(BrokerError::Malformed(Malformed::SubAckReturnCode)),
        )
        .await;
    }
    assert_protocol_error(
        &suback(1, &[]),
        Error::Broker(BrokerError::Malformed(Malformed::NoFilters)),
    )
    .await;
}

/// A malformed packet behind valid ones in the same read: the valid ones
/// are delivered (and acknowledged) first, then the connection ends (§4.8).
#[tokio::test(start_paused = true)]
async fn valid_packets_before_a_malformed_one_are_still_delivered() {
    let mut bytes = publish("a", b"1", QoS::AtMostOnce, None);
    bytes.extend(publish("a", b"2", QoS::AtLeastOnce, Some(3)));
    bytes.extend([0x36, 0x04, 0x00, 0x01, b'a', 0x00]);
    let mut after = connected_then(&bytes).await;
    assert_eq!(
        after.result,
        Err(Error::Broker(BrokerError::Malformed(Malformed::QoS)))
    );
    let payloads: Vec<_> = after
        .log
        .messages
        .iter()
        .map(|m| m.payload.clone())
        .collect();
    assert_eq!(payloads, [b"1".to_vec(), b"2".to_vec()]);
    assert_eq!(after.log.disconnected, [DisconnectReason::ProtocolError]);
    // The connection ends at once (MQTT-4.8.0-1): the PUBACK of the
    // delivered QoS 1 message may not have gone out, and the broker then
    // sends it again, which at-least-once allows. Nothing else is written.
    let (rest, end) = after.broker.drain().await;
    assert!(rest.is_empty() || rest == [Rx::PubAck(3)], "{rest:?}");
    assert_eq!(end, ReadEnd::Eof);
}

// ---------------------------------------------------------------------------
// Valid packets at the wrong time: `Error::Broker(BrokerError::Protocol)`.

/// A second CONNACK is a protocol violation (§3.2: the server sends
/// CONNACK once, in answer to CONNECT; MQTT-3.2.0-1).
#[tokio::test(start_paused = true)]
async fn second_connack_is_a_protocol_error() {
    assert_protocol_error(
        &connack(false, 0),
        Error::Broker(BrokerError::Protocol(PacketType::ConnAck)),
    )
    .await;
}

/// Packets only a client may send (Table 2.1 direction "Client to
/// Server") are protocol violations when the broker sends them: CONNECT,
/// SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT. Their bodies are not
/// parsed, so a malformed one is the same protocol error, and so is one
/// whose body never comes (as is a second CONNACK's).
#[tokio::test(start_paused = true)]
async fn client_only_packets_from_the_broker_are_protocol_errors() {
    let mut connect = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c];
    connect.extend([0x00, 0x01, b'x']);
    let cases = [
        (raw(0x10, &connect), PacketType::Connect),
        (
            raw(0x82, &[0x00, 0x01, 0x00, 0x01, b'a', 0x00]),
            PacketType::Subscribe,
        ),
        (
            raw(0xa2, &[0x00, 0x01, 0x00, 0x01, b'a']),
            PacketType::Unsubscribe,
        ),
        (vec![0xc0, 0x00], PacketType::PingReq),
        (vec![0xe0, 0x00], PacketType::Disconnect),
        (raw(0x10, &[0xff]), PacketType::Connect),
        (raw(0x82, &[0x00, 0x00]), PacketType::Subscribe),
        (vec![0xc0, 0x01, 0x00], PacketType::PingReq),
        // Refused from the first byte: the rest never comes.
        (vec![0x10], PacketType::Connect),
        (vec![0x82, 0x10, 0x00], PacketType::Subscribe),
        (vec![0x20, 0x02, 0x00], PacketType::ConnAck),
    ];
    for (bytes, kind) in cases {
        assert_protocol_error(&bytes, Error::Broker(BrokerError::Protocol(kind))).await;
    }
}

/// A SUBACK must carry one return code per filter of its SUBSCRIBE
/// (§3.9.3, MQTT-3.9.3-1); one with fewer or more codes cannot be matched
/// to the filters and is a protocol violation.
#[tokio::test(start_paused = true)]
async fn suback_with_the_wrong_number_of_codes_is_a_protocol_error() {
    for codes in [&[0x01, 0x01][..], &[0x00, 0x00, 0x00]] {
        let (io, mut broker) = pipe();
        let mut buffers = SmallBuffers::new();
        let mut c = client(io, config(), buffers.slices());
        connect(&mut c, &mut broker, false).await;
        let filters = [
            minimqtt::Subscription {
                filter: "a",
                qos: QoS::AtLeastOnce,
            },
            minimqtt::Subscription {
                filter: "b",
                qos: QoS::AtMostOnce,
            },
        ];
        let (result, ()) = tokio::join!(c.subscribe_many(&filters[..1 + codes.len() % 2]), async {
            let (id, _) = broker.expect_subscribe().await;
            broker.send(&suback(id, codes)).await;
        });
        assert_eq!(
            result.map_err(|e| e.map_transport(|e| e.kind())),
            Err(Error::Broker(BrokerError::Protocol(PacketType::SubAck))),
            "codes {codes:?}"
        );
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::ProtocolError]
        );
        assert!(c.user_data().subscribed.is_empty());
    }
}

/// The first packet from the server must be CONNACK (MQTT-3.2.0-1): a
/// PUBLISH, a PINGRESP or a PUBACK before it is a protocol violation, and
/// `connect` fails with it at once, whether its body has come or not.
#[tokio::test(start_paused = true)]
async fn anything_before_connack_is_a_protocol_error() {
    let cases = [
        (
            publish("a", b"x", QoS::AtMostOnce, None),
            PacketType::Publish,
        ),
        (PINGRESP.to_vec(), PacketType::PingResp),
        (puback(1), PacketType::PubAck),
        // Refused from its first byte: not after the CONNACK timeout.
        (vec![0x30, 0x10], PacketType::Publish),
    ];
    for (bytes, kind) in cases {
        let (io, mut broker) = pipe();
        let mut buffers = SmallBuffers::new();
        let mut c = client(io, config(), buffers.slices());
        let mut script = bytes.clone();
        script.extend(connack(false, 0));
        broker.send(&script).await;
        let result = within("connect", c.connect()).await;
        assert_eq!(
            result.map_err(|e| e.map_transport(|e| e.kind())),
            Err(Error::Broker(BrokerError::Protocol(kind)))
        );
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::ProtocolError]
        );
        assert!(c.user_data().connected.is_empty());
        assert!(!c.is_connected());
    }
}

/// A broker must not report a session when the client asked for a clean
/// one (§3.2.2.2, MQTT-3.2.2-1): the two sides' session state cannot be
/// reconciled, so `connect` fails with a protocol error.
#[tokio::test(start_paused = true)]
async fn session_present_with_clean_session_is_a_protocol_error() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    broker.send(&connack(true, 0)).await;
    let result = within("connect", c.connect()).await;
    assert_eq!(
        result.map_err(|e| e.map_transport(|e| e.kind())),
        Err(Error::Broker(BrokerError::Protocol(PacketType::ConnAck)))
    );
    assert_eq!(
        c.user_data().disconnected,
        [DisconnectReason::ProtocolError]
    );
    assert!(c.user_data().connected.is_empty());
}

/// CONNACK's reserved flag bits must be 0 (§3.2.2.1), its return code one
/// of 0-5 (§3.2.2.3, Table 3.1), and a refusal must not have session
/// present (MQTT-3.2.2-4): each is malformed.
#[tokio::test(start_paused = true)]
async fn bad_connacks_are_malformed() {
    let cases = [
        (connack_raw(0x02, 0), Malformed::ConnAckFlags),
        (connack_raw(0x80, 0), Malformed::ConnAckFlags),
        (connack_raw(0x00, 6), Malformed::ConnectReturnCode),
        (connack_raw(0x00, 0xff), Malformed::ConnectReturnCode),
        (connack_raw(0x01, 5), Malformed::SessionPresent),
        (vec![0x20, 0x03, 0, 0, 0], Malformed::TrailingBytes),
        (vec![0x20, 0x01, 0], Malformed::Truncated),
    ];
    for (bytes, why) in cases {
        let (io, mut broker) = pipe();
        let mut buffers = SmallBuffers::new();
        let mut c = client(io, config(), buffers.slices());
        broker.send(&bytes).await;
        let result = within("connect", c.connect()).await;
        assert_eq!(
            result.map_err(|e| e.map_transport(|e| e.kind())),
            Err(Error::Broker(BrokerError::Malformed(why))),
            "{bytes:02x?}"
        );
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::ProtocolError]
        );
        assert!(!c.is_connected());
    }
}

/// A refusing CONNACK (return codes 1-5, §3.2.2.3) is `Error::Broker(BrokerError::Refused)`
/// with the code, and `on_disconnect` learns the code too.
#[tokio::test(start_paused = true)]
async fn refused_connack_reports_the_return_code() {
    for byte in 1..=5u8 {
        let (io, mut broker) = pipe();
        let mut buffers = SmallBuffers::new();
        let mut c = client(io, config(), buffers.slices());
        broker.send(&connack(false, byte)).await;
        let result = within("connect", c.connect()).await;
        assert_eq!(
            result.map_err(|e| e.map_transport(|e| e.kind())),
            Err(Error::Broker(BrokerError::Refused(code(byte))))
        );
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::Refused(code(byte))]
        );
        assert!(!c.is_connected());
    }
}

/// More QoS 2 messages awaiting PUBREL than the client can track
/// (`INFLIGHT`, 8 by default): MQTT 3.1.1 puts no limit on them (§4.3.3),
/// so all are delivered and get their PUBREC, the connection stays up, and
/// the oldest id is forgotten. The documented cost: a DUP resend of that
/// forgotten message (before its PUBREL) is delivered again, while a resend
/// of one still remembered is not. Every PUBREL still gets its PUBCOMP.
#[tokio::test(start_paused = true)]
async fn more_incoming_qos2_than_inflight_forgets_the_oldest() {
    let mut bytes = Vec::new();
    for id in 1..=9u16 {
        bytes.extend(publish("q2", &[id as u8], QoS::ExactlyOnce, Some(id)));
    }
    // Resends: id 9 is remembered, id 1 was forgotten.
    bytes.extend(publish_with(
        "q2",
        &[9],
        QoS::ExactlyOnce,
        Some(9),
        true,
        false,
    ));
    bytes.extend(publish_with(
        "q2",
        &[1],
        QoS::ExactlyOnce,
        Some(1),
        true,
        false,
    ));
    for id in 1..=9u16 {
        bytes.extend(pubrel(id));
    }
    let (log, sent) = assert_tolerated(&bytes, 20).await;
    let delivered: Vec<u8> = log.messages.iter().map(|m| m.payload[0]).collect();
    assert_eq!(delivered, [1, 2, 3, 4, 5, 6, 7, 8, 9, 1]);
    let mut want: Vec<Rx> = (1..=9).map(Rx::PubRec).collect();
    want.extend([Rx::PubRec(9), Rx::PubRec(1)]);
    want.extend((1..=9).map(Rx::PubComp));
    assert_eq!(sent, want);
}

// ---------------------------------------------------------------------------
// Tolerated: handled or ignored, connection stays up.

/// Acknowledgements for packet ids the client never used (PUBACK, PUBREC,
/// PUBCOMP, UNSUBACK, SUBACK), and a PINGRESP nobody asked for, are ignored: after a reconnect a broker may
/// legitimately resend acknowledgements the client no longer tracks
/// (§4.4), and MQTT 3.1.1 gives the client no way to report them. The
/// client sends nothing in answer (no PUBREL for a stray PUBREC).
#[tokio::test(start_paused = true)]
async fn acknowledgements_for_unknown_ids_are_ignored() {
    let mut bytes = Vec::new();
    bytes.extend(puback(77));
    bytes.extend(pubrec(78));
    bytes.extend(pubcomp(79));
    bytes.extend(unsuback(80));
    bytes.extend(suback(81, &[0x01]));
    bytes.extend(PINGRESP);
    let (log, sent) = assert_tolerated(&bytes, 6).await;
    assert_eq!(sent, []);
    assert!(log.published.is_empty());
    assert!(log.subscribed.is_empty());
    assert!(log.unsubscribed.is_empty());
}

/// An acknowledgement of the wrong kind for a message in flight (PUBCOMP
/// for a QoS 1 message, PUBACK for a QoS 2 one) is ignored too (§4.3.2,
/// §4.3.3 define one handshake per QoS): the message stays in flight and
/// completes with the right acknowledgement.
#[tokio::test(start_paused = true)]
async fn acknowledgements_of_the_wrong_kind_are_ignored() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let id1 = c
        .publish("t", b"1", QoS::AtLeastOnce, false)
        .await
        .unwrap()
        .unwrap();
    let id2 = c
        .publish("t", b"2", QoS::ExactlyOnce, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(broker.expect_publish().await.packet_id, Some(id1));
    assert_eq!(broker.expect_publish().await.packet_id, Some(id2));
    let mut bytes = pubcomp(id1);
    bytes.extend(puback(id2));
    broker.send(&bytes).await;
    assert_eq!(c.poll(POLL).await.unwrap().packets, 2);
    assert_eq!(c.session().inflight(), 2);
    assert!(c.user_data().published.is_empty());
    broker.send(&puback(id1)).await;
    c.wait_published(id1).await.unwrap();
    broker.send(&pubrec(id2)).await;
    let (done, ()) = tokio::join!(c.wait_published(id2), async {
        assert_eq!(broker.recv().await, Rx::PubRel(id2));
        broker.send(&pubcomp(id2)).await;
    });
    done.unwrap();
    assert_eq!(
        c.user_data().published,
        [("t".to_owned(), Some(id1)), ("t".to_owned(), Some(id2))]
    );
}

/// A PUBREL for an id the client does not hold is answered with PUBCOMP
/// anyway (§4.3.3: the receiver answers PUBREL with PUBCOMP; the broker
/// may be retrying after the client lost the id across a reconnect, and
/// silence would make it retry forever).
#[tokio::test(start_paused = true)]
async fn pubrel_for_an_unknown_id_is_answered_with_pubcomp() {
    let (_, sent) = assert_tolerated(&pubrel(4242), 1).await;
    assert_eq!(sent, [Rx::PubComp(4242)]);
}

/// A QoS 2 PUBLISH resent (DUP) before its PUBREL is not delivered twice:
/// the client answers PUBREC again (§4.3.3, method B: the packet id is
/// kept until PUBREL). After PUBREL / PUBCOMP, the same id is a new message.
#[tokio::test(start_paused = true)]
async fn duplicate_qos2_publish_is_delivered_once() {
    let mut bytes = publish("q", b"once", QoS::ExactlyOnce, Some(9));
    bytes.extend(publish_with(
        "q",
        b"once",
        QoS::ExactlyOnce,
        Some(9),
        true,
        false,
    ));
    bytes.extend(pubrel(9));
    bytes.extend(publish("q", b"again", QoS::ExactlyOnce, Some(9)));
    let (log, sent) = assert_tolerated(&bytes, 4).await;
    let payloads: Vec<_> = log.messages.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(payloads, [b"once".to_vec(), b"again".to_vec()]);
    assert_eq!(
        sent,
        [Rx::PubRec(9), Rx::PubRec(9), Rx::PubComp(9), Rx::PubRec(9)]
    );
}

/// A QoS 1 PUBLISH resent with DUP is delivered again (QoS 1 is "at least
/// once", §4.3.2), with `dup` visible to the callback.
#[tokio::test(start_paused = true)]
async fn duplicate_qos1_publish_is_delivered_again_with_dup() {
    let mut bytes = publish("q", b"x", QoS::AtLeastOnce, Some(4));
    bytes.extend(publish_with(
        "q",
        b"x",
        QoS::AtLeastOnce,
        Some(4),
        true,
        false,
    ));
    let (log, sent) = assert_tolerated(&bytes, 2).await;
    let dups: Vec<_> = log.messages.iter().map(|m| m.dup).collect();
    assert_eq!(dups, [false, true]);
    assert_eq!(sent, [Rx::PubAck(4), Rx::PubAck(4)]);
}

/// A PUBLISH larger than the receive buffer (256 bytes here) is skipped:
/// `on_message_dropped` gets its length and topic, `poll` does not fail
/// (the connection is healthy), the QoS 1 message is still acknowledged
/// with PUBACK so the broker does not redeliver it forever (§4.3.2), and
/// the next message is delivered normally.
#[tokio::test(start_paused = true)]
async fn oversize_qos1_publish_is_acknowledged_and_skipped() {
    let big = publish("big", &[0xab; 1000], QoS::AtLeastOnce, Some(21));
    let mut bytes = big.clone();
    bytes.extend(publish("small", b"ok", QoS::AtLeastOnce, Some(22)));
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    broker.send(&bytes).await;
    let handled = within("poll", c.poll(POLL)).await.unwrap();
    // Two packets, each counted once.
    assert_eq!(
        (handled.packets, handled.messages, handled.dropped),
        (2, 1, 1)
    );
    assert!(c.is_connected());
    assert_eq!(broker.recv().await, Rx::PubAck(21));
    assert_eq!(broker.recv().await, Rx::PubAck(22));
    let log = c.user_data();
    assert_eq!(log.dropped, [(big.len(), Some("big".to_owned()))]);
    assert_eq!(log.messages.len(), 1);
    assert_eq!(log.messages[0].topic, "small");
    assert!(log.disconnected.is_empty());
}

/// An oversize QoS 2 PUBLISH gets its PUBREC (§4.3.3) and, after the
/// broker's PUBREL, its PUBCOMP; an oversize QoS 0 one is just skipped.
/// Both arrive one byte at a time, so skipping spans many reads.
#[tokio::test(start_paused = true)]
async fn oversize_qos2_and_qos0_publishes_are_skipped_across_reads() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let q2 = publish("big2", &[2; 700], QoS::ExactlyOnce, Some(5));
    let q0 = publish("big0", &[0; 300], QoS::AtMostOnce, None);
    let mut bytes = q2.clone();
    bytes.extend(&q0);
    bytes.extend(pubrel(5));
    bytes.extend(publish("fine", b"!", QoS::AtMostOnce, None));
    let (_, ()) = tokio::join!(
        async {
            while c.user_data().messages.is_empty() {
                c.poll(POLL).await.expect("poll");
            }
        },
        broker.send_bytewise(&bytes)
    );
    assert_eq!(
        c.user_data().dropped,
        [
            (q2.len(), Some("big2".to_owned())),
            (q0.len(), Some("big0".to_owned()))
        ]
    );
    assert!(c.is_connected());
    assert_eq!(broker.recv().await, Rx::PubRec(5));
    assert_eq!(broker.recv().await, Rx::PubComp(5));
    assert_eq!(c.user_data().messages[0].topic, "fine");
    assert_eq!(c.session().incoming_pending(), 0);
}

/// A PUBLISH whose topic alone is longer than the receive buffer is
/// reported without a topic, and still acknowledged (MQTT-4.3.2-4): its
/// packet id is read as it passes behind the topic. The connection stays
/// usable, and a message behind it is delivered.
#[tokio::test(start_paused = true)]
async fn oversize_publish_with_a_topic_longer_than_the_buffer_is_acknowledged() {
    let topic = "t".repeat(400);
    let big = publish(&topic, b"x", QoS::AtLeastOnce, Some(6));
    let mut bytes = big.clone();
    bytes.extend(publish("small", b"ok", QoS::AtMostOnce, None));
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    broker.send(&bytes).await;
    assert_eq!(within("poll", c.poll(POLL)).await.unwrap().messages, 1);
    assert_eq!(c.user_data().dropped, [(big.len(), None)]);
    assert_eq!(broker.recv().await, Rx::PubAck(6));
    broker.expect_silence(SECOND).await;
    assert!(c.is_connected());
}

/// An oversized PUBLISH is checked as far as its bytes can be held: a
/// topic length running past the end of the packet is malformed at any
/// QoS (§3.3.2.1), and a topic that fits the 256-byte buffer gets a whole
/// PUBLISH's checks even when its packet id does not (MQTT-3.3.2-2).
#[tokio::test(start_paused = true)]
async fn oversize_publish_is_checked_as_far_as_it_fits() {
    // 300 bytes of QoS 0 PUBLISH whose topic would be 1,000.
    let mut body = 1000u16.to_be_bytes().to_vec();
    body.extend([b'a'; 298]);
    let mut bytes = raw(0x30, &body);
    // Framed from inside the first, this one would be delivered.
    bytes.extend(publish("b", b"x", QoS::AtMostOnce, None));
    assert_protocol_error(
        &bytes,
        Error::Broker(BrokerError::Malformed(Malformed::Truncated)),
    )
    .await;
    // A 251-byte topic with a wildcard, its packet id at bytes 256 and 257.
    let mut topic = [b'a'; 251];
    topic[10] = b'+';
    let after = connected_then(&publish_raw(2, &topic, Some(5), &[0; 45])).await;
    assert!(
        matches!(
            after.result,
            Err(Error::Broker(BrokerError::Malformed(Malformed::TopicName(
                _
            ))))
        ),
        "{:?}",
        after.result
    );
    assert_eq!(after.log.disconnected, [DisconnectReason::ProtocolError]);
    assert!(after.log.dropped.is_empty());
}

/// A SUBACK too large for the 256-byte receive buffer is checked as a
/// whole one is: its return codes (its last bytes, when they fit) are
/// read once its packet id has passed. One code per filter of its
/// SUBSCRIBE (MQTT-3.9.3-1), so 254 codes for one filter end the
/// connection at once, not at the SUBACK timeout; and a code of 0x03 is
/// malformed, even in a SUBACK that answers nothing.
#[tokio::test(start_paused = true)]
async fn oversize_suback_is_checked_as_a_whole_one() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let start = tokio::time::Instant::now();
    let (result, ()) = tokio::join!(c.subscribe("a", QoS::AtLeastOnce), async {
        let (id, _) = broker.expect_subscribe().await;
        broker.send(&suback(id, &[0x01; 254])).await;
    });
    assert_eq!(
        result.map_err(|e| e.map_transport(|e| e.kind())),
        Err(Error::Broker(BrokerError::Protocol(PacketType::SubAck)))
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        c.user_data().disconnected,
        [DisconnectReason::ProtocolError]
    );

    assert_protocol_error(
        &suback(7, &[0x03; 254]),
        Error::Broker(BrokerError::Malformed(Malformed::SubAckReturnCode)),
    )
    .await;
}

// ---------------------------------------------------------------------------
// Stream robustness: packets split into pieces, packets merged.

/// A mix of QoS 0/1/2 deliveries and acknowledgements.
fn traffic(n: u16) -> (Vec<u8>, Vec<Rx>) {
    let mut bytes = Vec::new();
    let mut acks = Vec::new();
    for i in 1..=n {
        let payload = format!("m{i}");
        match i % 3 {
            0 => bytes.extend(publish("s/0", payload.as_bytes(), QoS::AtMostOnce, None)),
            1 => {
                bytes.extend(publish(
                    "s/1",
                    payload.as_bytes(),
                    QoS::AtLeastOnce,
                    Some(i),
                ));
                acks.push(Rx::PubAck(i));
            }
            _ => {
                bytes.extend(publish(
                    "s/2",
                    payload.as_bytes(),
                    QoS::ExactlyOnce,
                    Some(i),
                ));
                bytes.extend(pubrel(i));
                acks.push(Rx::PubRec(i));
                acks.push(Rx::PubComp(i));
            }
        }
    }
    (bytes, acks)
}

fn payloads(log: &Log) -> Vec<String> {
    log.messages
        .iter()
        .map(|m| String::from_utf8(m.payload.clone()).unwrap())
        .collect()
}

fn expected_payloads(n: u16) -> Vec<String> {
    (1..=n).map(|i| format!("m{i}")).collect()
}

/// Every packet written one byte at a time through a pipe with one byte
/// of room (so the client also reads, and writes its acknowledgements,
/// one byte per call): every message is delivered exactly once, in order,
/// and every acknowledgement arrives whole.
#[tokio::test(start_paused = true)]
async fn one_byte_at_a_time_in_both_directions() {
    let (io, mut broker) = pipe_with_capacity(1);
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    let n = 30;
    let (bytes, acks) = traffic(n);
    let (connected, ()) = tokio::join!(c.connect(), async {
        broker.expect_connect().await;
        broker.send_bytewise(&connack(false, 0)).await;
    });
    connected.unwrap();
    let (_, got) = tokio::join!(
        async {
            while c.user_data().messages.len() < usize::from(n) {
                within("poll", c.poll(POLL)).await.unwrap();
            }
            // Let the last acknowledgements out.
            c.poll(POLL).await.unwrap();
        },
        async {
            // A real broker reads while it writes: so does this one.
            let FakeBroker { rx, tx } = &mut broker;
            let (got, ()) = tokio::join!(
                async {
                    let mut got = Vec::new();
                    while got.len() < acks.len() {
                        got.push(rx.recv().await);
                    }
                    got
                },
                tx.send_bytewise(&bytes)
            );
            got
        }
    );
    assert_eq!(payloads(c.user_data()), expected_payloads(n));
    assert_eq!(got, acks);
    assert!(c.user_data().disconnected.is_empty());
}

/// Many packets merged into one write, far more than the 256-byte receive
/// buffer: all delivered exactly once, all acknowledged, in order.
#[tokio::test(start_paused = true)]
async fn many_packets_in_one_write() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let n = 90;
    let (bytes, acks) = traffic(n);
    assert!(bytes.len() > 4 * 256);
    broker.send(&bytes).await;
    let handled = within("poll", c.poll(POLL)).await.unwrap();
    assert_eq!(handled.messages, usize::from(n));
    assert_eq!(payloads(c.user_data()), expected_payloads(n));
    let mut got = Vec::new();
    while got.len() < acks.len() {
        got.push(broker.recv().await);
    }
    assert_eq!(got, acks);
    broker.expect_silence(SECOND).await;
}

/// The CONNACK and messages queued right behind it arrive in one read:
/// the messages are not lost when `connect` returns, the next `poll`
/// delivers them.
#[tokio::test(start_paused = true)]
async fn packets_behind_connack_in_the_same_read_are_kept() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    let mut bytes = connack(false, 0);
    bytes.extend(publish("x", b"1", QoS::AtLeastOnce, Some(1)));
    bytes.extend(publish("x", b"2", QoS::AtMostOnce, None));
    broker.send(&bytes).await;
    within("connect", c.connect()).await.unwrap();
    within("poll", c.poll(POLL)).await.unwrap();
    assert_eq!(c.user_data().messages.len(), 2);
    broker.expect_connect().await;
    assert_eq!(broker.recv().await, Rx::PubAck(1));
}

/// One packet cut in two at every possible byte, the halves arriving in
/// separate reads: delivered exactly once each time.
#[tokio::test(start_paused = true)]
async fn a_packet_split_at_every_byte() {
    let packet = publish("split/topic", b"payload", QoS::AtLeastOnce, Some(300));
    for cut in 1..packet.len() {
        let (io, mut broker) = pipe();
        let mut buffers = SmallBuffers::new();
        let mut c = client(io, config(), buffers.slices());
        connect(&mut c, &mut broker, false).await;
        broker.send(&packet[..cut]).await;
        let first = within("poll", c.poll(POLL)).await.unwrap();
        assert_eq!(first, Handled::default(), "cut at {cut}");
        broker.send(&packet[cut..]).await;
        let second = within("poll", c.poll(POLL)).await.unwrap();
        assert_eq!(second.messages, 1, "cut at {cut}");
        assert_eq!(broker.recv().await, Rx::PubAck(300));
        assert_eq!(c.user_data().messages[0].payload, b"payload");
    }
}

/// The granted QoS reported by SUBACK reaches `subscribe` and
/// `on_subscribe` exactly, refusals included (§3.9.3); a refused filter
/// leaves the subscription list.
#[tokio::test(start_paused = true)]
async fn suback_granted_codes_reach_the_caller() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let filters = [
        minimqtt::Subscription {
            filter: "a/#",
            qos: QoS::ExactlyOnce,
        },
        minimqtt::Subscription {
            filter: "b",
            qos: QoS::AtLeastOnce,
        },
    ];
    let (granted, ()) = tokio::join!(c.subscribe_many(&filters), async {
        let (id, _) = broker.expect_subscribe().await;
        broker.send(&suback(id, &[0x01, 0x80])).await;
    });
    let granted = granted.unwrap();
    assert_eq!(
        granted.as_slice(),
        [
            SubscribeReturnCode::Success(QoS::AtLeastOnce),
            SubscribeReturnCode::Failure
        ]
    );
    let subs: Vec<_> = c
        .session()
        .subscriptions()
        .map(|(f, q)| (f.to_owned(), q))
        .collect();
    assert_eq!(subs, [("a/#".to_owned(), QoS::ExactlyOnce)]);
    assert_eq!(c.user_data().subscribed.len(), 2);
}

/// A packet before CONNACK breaks MQTT-3.2.0-1 even when it is too large
/// for the receive buffer (a CONNACK never is): `connect` fails with
/// `Protocol(type)` (a connection error, `on_disconnect` runs) and nothing
/// is acknowledged, exactly as for a small packet.
#[tokio::test(start_paused = true)]
async fn oversize_packet_before_connack_is_a_protocol_error() {
    let cases = [
        (
            publish("big", &[1; 600], QoS::AtLeastOnce, Some(5)),
            PacketType::Publish,
        ),
        (
            publish("big", &[1; 600], QoS::AtMostOnce, None),
            PacketType::Publish,
        ),
        (suback(3, &[0; 400]), PacketType::SubAck),
    ];
    for (bytes, kind) in cases {
        let (io, mut broker) = pipe();
        let mut buffers = SmallBuffers::new();
        let mut c = client(io, config(), buffers.slices());
        let mut script = bytes;
        script.extend(connack(false, 0));
        broker.send(&script).await;
        let result = within("connect", c.connect()).await;
        assert_eq!(
            result.map_err(|e| e.map_transport(|e| e.kind())),
            Err(Error::Broker(BrokerError::Protocol(kind)))
        );
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::ProtocolError]
        );
        assert!(!c.is_connected());
        broker.expect_connect().await;
        broker.expect_silence(SECOND).await;
    }
}

/// A QoS 1/2 message is held once, in the session's arena, and written
/// from there: one larger than half the 2,304-byte arena (a second copy,
/// queued, would not fit beside it) goes out whole, completes, and is
/// resent whole with DUP after a reconnect.
#[tokio::test(start_paused = true)]
async fn qos1_and_qos2_messages_larger_than_half_the_arena_go_out_from_the_store() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config_persistent(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let big: Vec<u8> = (0..1200u32).map(|i| i as u8).collect();
    let id1 = c
        .publish("big", &big, QoS::AtLeastOnce, false)
        .await
        .unwrap()
        .unwrap();
    let p = broker.expect_publish().await;
    assert_eq!((p.packet_id, p.dup, &p.payload), (Some(id1), false, &big));
    // One such message at a time.
    assert!(matches!(
        c.publish("big", &big, QoS::ExactlyOnce, false).await,
        Err(minimqtt::Error::Resource(
            minimqtt::ResourceError::StoreFull
        ))
    ));
    broker.send(&puback(id1)).await;
    c.wait_published(id1).await.unwrap();
    let id2 = c
        .publish("big", &big, QoS::ExactlyOnce, false)
        .await
        .unwrap()
        .unwrap();
    let p = broker.expect_publish().await;
    assert_eq!((p.packet_id, p.dup, &p.payload), (Some(id2), false, &big));
    // The connection drops before the QoS 2 message completes: resent from
    // the store, whole, with DUP.
    drop(broker);
    within("the loss seen", async {
        while c.is_connected() {
            c.run_for(POLL).await.ok();
        }
    })
    .await;
    let (io, mut broker) = pipe();
    c.connector_mut().push(io);
    broker.send(&connack(true, 0)).await;
    within("reconnect", async {
        while !c.is_connected() {
            c.run_for(POLL).await.ok();
        }
    })
    .await;
    broker.expect_connect().await;
    let p = broker.expect_publish().await;
    assert_eq!((p.packet_id, p.dup, &p.payload), (Some(id2), true, &big));
    broker.send(&pubrec(id2)).await;
    let (done, ()) = tokio::join!(c.wait_published(id2), async {
        assert_eq!(broker.recv().await, Rx::PubRel(id2));
        broker.send(&pubcomp(id2)).await;
    });
    done.unwrap();
    assert_eq!(c.session().inflight(), 0);
}

/// `config()` with clean session off, so a reconnect resumes the session.
fn config_persistent() -> minimqtt::Config<'static> {
    minimqtt::Config {
        clean_session: false,
        ..config()
    }
}

/// A QoS 1/2 message larger than the whole arena can never be kept: the
/// error says so (`TransmitBufferTooSmall`, as for QoS 0), not
/// `StoreFull`, which says to wait for acknowledgements; nothing is sent
/// and the connection stays up.
#[tokio::test(start_paused = true)]
async fn a_message_larger_than_the_arena_is_refused_for_good() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let big = vec![7u8; 5000];
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let r = within("publish", c.publish("t", &big, qos, false)).await;
        assert!(
            matches!(
                r,
                Err(Error::Resource(
                    minimqtt::ResourceError::TransmitBufferTooSmall { .. }
                ))
            ),
            "{qos:?}: {r:?}"
        );
        assert_eq!(c.session().inflight(), 0);
    }
    assert!(c.is_connected());
    broker.expect_silence(SECOND).await;
}

/// `subscribe_many` returns a code per filter in a list of `SUBS`: a
/// request of more filters is refused at once, before anything is sent.
#[tokio::test(start_paused = true)]
async fn subscribe_many_refuses_more_filters_than_it_can_report() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let filters = [minimqtt::Subscription {
        filter: "a",
        qos: QoS::AtLeastOnce,
    }; 9];
    let r = within("subscribe_many", c.subscribe_many(&filters)).await;
    assert!(
        matches!(
            r,
            Err(Error::Resource(minimqtt::ResourceError::SubscriptionsFull))
        ),
        "{r:?}"
    );
    assert!(c.is_connected());
    broker.expect_silence(SECOND).await;
}

/// A receive buffer too small for the longest fixed header is the application's
/// configuration, not the broker's fault nor a timeout: `connect` refuses
/// at once, and `run_for` does not retry it.
#[tokio::test(start_paused = true)]
async fn a_receive_buffer_shorter_than_the_longest_fixed_header_fails_connect_at_once() {
    let (io, mut broker) = pipe();
    let buffers = Box::leak(Box::new(minimqtt::Buffers::<7, 2304, 64>::new()));
    let mut c = client(io, config(), buffers.slices());
    broker.send(&connack(false, 0)).await;
    let start = tokio::time::Instant::now();
    let too_small = |r: &Result<(), &Error<_>>| {
        matches!(
            r,
            Err(Error::Resource(
                minimqtt::ResourceError::ReceiveBufferTooSmall { needed: 8 }
            ))
        )
    };
    let r = within("connect", c.connect()).await;
    assert!(too_small(&r.as_ref().map(|_| ())), "{r:?}");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(!c.is_connected());
    // `run_for` connecting: the same error, not retried.
    let (io, mut broker) = pipe();
    let buffers = Box::leak(Box::new(minimqtt::Buffers::<7, 2304, 64>::new()));
    let mut c = client(io, config(), buffers.slices());
    broker.send(&connack(false, 0)).await;
    let r = within("run_for", c.run_for(minimqtt::time::Duration::from_secs(5))).await;
    assert!(too_small(&r.as_ref().map(|_| ())), "{r:?}");
    assert_eq!(start.elapsed(), Duration::ZERO);
}
