//! The session on MQTT 5 connections: negotiated limits both ways, reason
//! codes, properties, server DISCONNECT, and what it refuses.
extern crate std;

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::codec::v5::{
    self, Properties, Property, ReasonCode, ReasonCodes, RetainHandling, SubscriptionOptions,
};
use crate::error::Unsupported;

type S = Session<'static, 4, 4>;

const T0: Instant = Instant::from_millis(0);

fn secs(s: u64) -> Instant {
    Instant::from_millis(s * 1000)
}

fn leak(len: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; len].into_boxed_slice())
}

fn session() -> S {
    Session::new(leak(512), leak(1536), Timeouts::default())
}

/// A session kept across connections: with no Session Expiry Interval
/// (0), it would end with its connection, clean start or not.
static KEPT: [Property<'static>; 1] = [Property::SessionExpiryInterval(u32::MAX)];

fn connect(clean_start: bool, properties: &'static [Property<'static>]) -> v5::Connect<'static> {
    v5::Connect {
        clean_start,
        properties: Properties::new(properties),
        ..v5::Connect::new("c")
    }
}

/// Hands `packet` to the session; the first event, or the end of the
/// connection as an `Err`.
fn feed<'s>(
    s: &'s mut S,
    now: Instant,
    packet: v5::Packet<'_>,
) -> Result<Option<Event<'s>>, Closed> {
    let mut buf = vec![0u8; packet.encoded_len()];
    let n = packet.encode(&mut buf).expect("encode broker packet");
    feed_bytes(s, now, &buf[..n])
}

fn feed_bytes<'s>(s: &'s mut S, now: Instant, bytes: &[u8]) -> Result<Option<Event<'s>>, Closed> {
    let space = s.receive_buffer();
    space[..bytes.len()].copy_from_slice(bytes);
    s.commit(bytes.len());
    match s.poll_event(now) {
        Some(Event::Closed(reason)) => Err(reason),
        Some(Event::Disconnected(d)) => Err(Closed::ServerDisconnect(d.reason_code)),
        other => Ok(other),
    }
}

/// Everything the session has to send, decoded as MQTT 5.
fn sent(s: &mut S, now: Instant) -> Vec<v5::Packet<'static>> {
    let mut wire = Vec::new();
    loop {
        // As a driver does: QoS 0 messages are reported once written,
        // which releases their bytes.
        while s.sent_due() {
            assert!(matches!(s.poll_event(now), Some(Event::Sent { .. })));
        }
        let pending = s.poll_transmit(now);
        if pending.is_empty() {
            break;
        }
        let n = pending.len();
        wire.extend_from_slice(pending);
        s.handle_transmit(now, n);
    }
    let mut rest: &'static [u8] = Box::leak(wire.into_boxed_slice());
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (p, n) = v5::Packet::decode(rest).expect("the session sent an undecodable packet");
        out.push(p);
        rest = &rest[n..];
    }
    out
}

fn connack(props: &'static [Property<'static>]) -> v5::Packet<'static> {
    v5::Packet::ConnAck(v5::ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: Properties::new(props),
    })
}

/// A session connected over MQTT 5; the CONNACK carries `props`.
fn connected_with(ours: &'static [Property<'static>], theirs: &'static [Property<'static>]) -> S {
    let mut s = session();
    s.connect_v5(T0, &connect(true, ours)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(matches!(
        feed(&mut s, T0, connack(theirs)),
        Ok(Some(Event::Connected(_)))
    ));
    s
}

fn connected() -> S {
    connected_with(&[], &[])
}

/// A session connected over MQTT 5 with clean start off.
fn persistent() -> S {
    let mut s = session();
    s.connect_v5(T0, &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    s
}

fn publish(topic: &'static str, qos: QoS) -> Publish<'static> {
    Publish::new(topic, b"x", qos, false)
}

fn incoming(qos: QoS, id: Option<u16>, props: &'static [Property<'static>]) -> v5::Packet<'static> {
    v5::Packet::Publish(v5::Publish {
        dup: false,
        qos,
        retain: false,
        topic: "t",
        packet_id: id,
        properties: Properties::new(props),
        payload: b"p",
    })
}

fn unsupported(what: Unsupported) -> SessionError {
    SessionError::Usage(UsageError::Unsupported(what))
}

#[test]
fn connect_and_connack_speak_mqtt_5() {
    let mut s = session();
    let ours = &[
        Property::SessionExpiryInterval(60),
        Property::ReceiveMaximum(4),
    ];
    s.connect_v5(T0, &connect(false, ours)).unwrap();
    assert_eq!(s.version(), Version::V5);
    let wire = sent(&mut s, T0);
    let [v5::Packet::Connect(c)] = wire.as_slice() else {
        panic!("{wire:?}")
    };
    assert_eq!(c.properties.session_expiry_interval(), Some(60));
    assert_eq!(c.properties.receive_maximum(), Some(4));
    static THEIRS: [Property<'static>; 3] = [
        Property::AssignedClientIdentifier("auto-1"),
        Property::ServerKeepAlive(5),
        Property::MaximumQoS(1),
    ];
    let event = feed(&mut s, T0, connack(&THEIRS)).unwrap();
    let Some(Event::Connected(info)) = event else {
        panic!("{event:?}")
    };
    assert_eq!(info.properties.assigned_client_identifier(), Some("auto-1"));
    assert_eq!(s.limits().maximum_qos, QoS::AtLeastOnce);
    // Server Keep Alive replaces ours (0): a PINGREQ before 5 s.
    let ping = s.poll_timeout().expect("keep-alive deadline");
    assert!(ping < secs(5) && ping > secs(4), "{ping:?}");
}

#[test]
fn a_refusal_carries_its_reason_code() {
    let mut s = session();
    s.connect_v5(T0, &connect(true, &[])).unwrap();
    let _ = sent(&mut s, T0);
    let refused = v5::Packet::ConnAck(v5::ConnAck {
        session_present: false,
        reason_code: ReasonCode::NotAuthorized,
        properties: Properties::EMPTY,
    });
    assert_eq!(
        feed(&mut s, T0, refused),
        Err(Closed::RefusedV5(ReasonCode::NotAuthorized))
    );
    assert!(ReasonCode::NotAuthorized.is_permanent_refusal());
    assert!(!ReasonCode::ServerBusy.is_permanent_refusal());
    assert_eq!(s.state(), State::Disconnected);
}

#[test]
fn the_brokers_limits_refuse_what_breaks_them() {
    static THEIRS: [Property<'static>; 4] = [
        Property::ReceiveMaximum(2),
        Property::MaximumPacketSize(64),
        Property::MaximumQoS(1),
        Property::RetainAvailable(0),
    ];
    let mut s = connected_with(&[], &THEIRS);
    assert_eq!(
        s.publish(T0, &publish("t", QoS::ExactlyOnce)),
        Err(unsupported(Unsupported::QoS))
    );
    let retained = Publish::new("t", b"x", QoS::AtMostOnce, true);
    assert_eq!(
        s.publish(T0, &retained),
        Err(unsupported(Unsupported::Retain))
    );
    let big = Publish::new("t", &[0; 80], QoS::AtMostOnce, false);
    assert!(matches!(
        s.publish(T0, &big),
        Err(SessionError::Resource(ResourceError::PacketTooLarge {
            max: 64,
            ..
        }))
    ));
    // The window is the broker's 2, not INFLIGHT's 4.
    assert_eq!(s.publish(T0, &publish("t", QoS::AtLeastOnce)), Ok(Some(1)));
    assert_eq!(s.publish(T0, &publish("t", QoS::AtLeastOnce)), Ok(Some(2)));
    assert!(!s.can_publish());
    assert_eq!(
        s.publish(T0, &publish("t", QoS::AtLeastOnce)),
        Err(SessionError::Resource(ResourceError::InflightFull))
    );
    // Nothing refused was sent.
    assert_eq!(sent(&mut s, T0).len(), 2);
}

#[test]
fn wildcard_and_shared_subscriptions_follow_the_connack() {
    static THEIRS: [Property<'static>; 2] = [
        Property::WildcardSubscriptionAvailable(0),
        Property::SharedSubscriptionAvailable(0),
    ];
    let mut s = connected_with(&[], &THEIRS);
    let sub = |filter| {
        [Subscription {
            filter,
            qos: QoS::AtMostOnce,
        }]
    };
    assert_eq!(
        s.subscribe(T0, &sub("a/+")),
        Err(unsupported(Unsupported::WildcardSubscription))
    );
    assert_eq!(
        s.subscribe(T0, &sub("$share/g/a")),
        Err(unsupported(Unsupported::SharedSubscription))
    );
    assert_eq!(s.subscribe(T0, &sub("a/b")), Ok(1));
}

#[test]
fn publish_properties_go_out_and_acks_report_their_reason() {
    let mut s = connected();
    static PROPS: [Property<'static>; 3] = [
        Property::MessageExpiryInterval(30),
        Property::ResponseTopic("reply/c"),
        Property::UserProperty("k", "v"),
    ];
    let id = s
        .publish_with(
            T0,
            &publish("t", QoS::AtLeastOnce),
            &Properties::new(&PROPS),
        )
        .unwrap();
    let wire = sent(&mut s, T0);
    let [v5::Packet::Publish(p)] = wire.as_slice() else {
        panic!("{wire:?}")
    };
    assert_eq!(p.properties, Properties::new(&PROPS));
    let ack = v5::Packet::PubAck(v5::PubAck {
        packet_id: id.unwrap(),
        reason_code: ReasonCode::NoMatchingSubscribers,
        properties: Properties::EMPTY,
    });
    let event = feed(&mut s, T0, ack).unwrap();
    let Some(Event::Published { reason, .. }) = event else {
        panic!("{event:?}")
    };
    assert_eq!(reason.code, ReasonCode::NoMatchingSubscribers);
    assert!(!reason.code.is_error());
    // Aliases and subscription identifiers are not the caller's to send.
    static ALIAS: [Property<'static>; 1] = [Property::TopicAlias(1)];
    assert_eq!(
        s.publish_with(T0, &publish("t", QoS::AtMostOnce), &Properties::new(&ALIAS)),
        Err(unsupported(Unsupported::TopicAlias))
    );
}

#[test]
fn a_refused_pubrec_ends_the_message_without_pubrel() {
    let mut s = connected();
    let id = s
        .publish(T0, &publish("t", QoS::ExactlyOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    let rec = v5::Packet::PubRec(v5::PubRec {
        packet_id: id,
        reason_code: ReasonCode::QuotaExceeded,
        properties: Properties::EMPTY,
    });
    let event = feed(&mut s, T0, rec).unwrap();
    let Some(Event::Published { reason, .. }) = event else {
        panic!("{event:?}")
    };
    assert_eq!(reason.code, ReasonCode::QuotaExceeded);
    assert!(
        sent(&mut s, T0).is_empty(),
        "no PUBREL after a refused PUBREC"
    );
    assert_eq!(s.inflight(), 0);
    assert_eq!(s.publish_outcome(id), Outcome::Completed);
}

#[test]
fn incoming_messages_carry_their_properties() {
    let mut s = connected();
    static PROPS: [Property<'static>; 2] = [
        Property::ContentType("text/plain"),
        Property::CorrelationData(b"42"),
    ];
    let event = feed(&mut s, T0, incoming(QoS::AtLeastOnce, Some(9), &PROPS)).unwrap();
    let Some(Event::Message(m)) = event else {
        panic!("{event:?}")
    };
    assert_eq!(m.properties.content_type(), Some("text/plain"));
    assert_eq!(m.properties.correlation_data(), Some(&b"42"[..]));
    // The short PUBACK: the same bytes MQTT 3.1.1 sends.
    let wire = sent(&mut s, T0);
    assert_eq!(
        wire,
        [v5::Packet::PubAck(v5::PubAck {
            packet_id: 9,
            reason_code: ReasonCode::Success,
            properties: Properties::EMPTY,
        })]
    );
}

#[test]
fn a_topic_alias_we_did_not_advertise_ends_the_connection() {
    let mut s = connected();
    static ALIAS: [Property<'static>; 1] = [Property::TopicAlias(1)];
    assert_eq!(
        feed(&mut s, T0, incoming(QoS::AtMostOnce, None, &ALIAS)),
        Err(Closed::Violation(ReasonCode::TopicAliasInvalid))
    );
    assert_eq!(s.state(), State::Disconnected);
    // The one packet left to write says why (§4.13.1).
    let disconnect = v5::Packet::Disconnect(v5::Disconnect {
        reason_code: ReasonCode::TopicAliasInvalid,
        properties: Properties::EMPTY,
    });
    assert_eq!(sent(&mut s, T0), [disconnect]);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn what_the_specification_calls_a_protocol_error_is_said_as_one() {
    // PUBLISH "a" at QoS 0 with these properties: §4.13.1 and each
    // property's own rule pick the DISCONNECT's reason code.
    let cases: [(&[u8], ReasonCode); 4] = [
        // Payload Format Indicator twice: a Protocol Error (§2.2.2.2).
        (
            &[0x30, 8, 0, 1, b'a', 4, 0x01, 0, 0x01, 0],
            ReasonCode::ProtocolError,
        ),
        // Payload Format Indicator 2: out of range, a Protocol Error.
        (
            &[0x30, 6, 0, 1, b'a', 2, 0x01, 2],
            ReasonCode::ProtocolError,
        ),
        // Topic Alias 0 (§3.3.2.3.4).
        (
            &[0x30, 7, 0, 1, b'a', 3, 0x23, 0, 0],
            ReasonCode::TopicAliasInvalid,
        ),
        // A property no PUBLISH may carry: a Malformed Packet.
        (
            &[0x30, 6, 0, 1, b'a', 2, 0x24, 1],
            ReasonCode::MalformedPacket,
        ),
    ];
    for (bytes, code) in cases {
        let mut s = connected();
        assert!(matches!(
            feed_bytes(&mut s, T0, bytes),
            Err(Closed::Malformed(_))
        ));
        let [v5::Packet::Disconnect(d)] = sent(&mut s, T0)[..] else {
            panic!("no DISCONNECT after {bytes:x?}");
        };
        assert_eq!(d.reason_code, code, "{bytes:x?}");
    }
}

#[test]
fn a_pubrel_for_an_unknown_id_is_answered_not_found() {
    let mut s = connected();
    let not_found = v5::Packet::PubComp(v5::PubComp {
        reason_code: ReasonCode::PacketIdentifierNotFound,
        ..v5::PubComp::new(9)
    });
    assert_eq!(
        feed(&mut s, T0, v5::Packet::PubRel(v5::PubRel::new(9))),
        Ok(None)
    );
    assert_eq!(sent(&mut s, T0), [not_found]);
    // A message of ours: Success, once; its PUBREL again, after the
    // PUBCOMP was written, finds the id forgotten (§3.7.2.1).
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(5), &[])),
        Ok(Some(Event::Message(_)))
    ));
    assert_eq!(sent(&mut s, T0), [v5::Packet::PubRec(v5::PubRec::new(5))]);
    let rel = v5::Packet::PubRel(v5::PubRel::new(5));
    assert_eq!(feed(&mut s, T0, rel), Ok(None));
    assert_eq!(sent(&mut s, T0), [v5::Packet::PubComp(v5::PubComp::new(5))]);
    assert_eq!(feed(&mut s, T0, rel), Ok(None));
    let [v5::Packet::PubComp(c)] = sent(&mut s, T0)[..] else {
        panic!("no PUBCOMP");
    };
    assert_eq!(c.reason_code, ReasonCode::PacketIdentifierNotFound);
}

/// A PUBREC for an id of no message of ours is answered with a PUBREL
/// 0x92 (§3.6.2.1), so that the broker can end its side of the flow; one
/// for a QoS 1 message in flight gets nothing, and one for a QoS 2
/// message its PUBREL.
#[test]
fn a_pubrec_for_an_unknown_id_is_answered_not_found() {
    let mut s = connected();
    assert_eq!(s.publish(T0, &publish("t", QoS::AtLeastOnce)), Ok(Some(1)));
    assert_eq!(s.publish(T0, &publish("t", QoS::ExactlyOnce)), Ok(Some(2)));
    assert_eq!(sent(&mut s, T0).len(), 2);
    let rec = |id| v5::Packet::PubRec(v5::PubRec::new(id));
    assert_eq!(feed(&mut s, T0, rec(9)), Ok(None));
    let not_found = v5::Packet::PubRel(v5::PubRel {
        reason_code: ReasonCode::PacketIdentifierNotFound,
        ..v5::PubRel::new(9)
    });
    assert_eq!(sent(&mut s, T0), [not_found]);
    assert_eq!(feed(&mut s, T0, rec(1)), Ok(None));
    assert_eq!(sent(&mut s, T0), []);
    assert_eq!(feed(&mut s, T0, rec(2)), Ok(None));
    assert_eq!(sent(&mut s, T0), [v5::Packet::PubRel(v5::PubRel::new(2))]);
}

#[test]
fn a_server_disconnect_with_what_only_a_client_sends_is_a_protocol_error() {
    static EXPIRY: [Property<'static>; 1] = [Property::SessionExpiryInterval(0)];
    let cases = [
        // MQTT-3.14.2-2.
        v5::Disconnect {
            reason_code: ReasonCode::NORMAL_DISCONNECTION,
            properties: Properties::new(&EXPIRY),
        },
        // 0x04 is the client's (§3.14.2.1).
        v5::Disconnect {
            reason_code: ReasonCode::DisconnectWithWillMessage,
            properties: Properties::EMPTY,
        },
    ];
    for bye in cases {
        let mut s = connected();
        assert_eq!(
            feed(&mut s, T0, v5::Packet::Disconnect(bye)),
            Err(Closed::Violation(ReasonCode::ProtocolError)),
            "{bye:?}"
        );
        assert_eq!(s.state(), State::Disconnected);
        let [v5::Packet::Disconnect(d)] = sent(&mut s, T0)[..] else {
            panic!("no DISCONNECT after {bye:?}");
        };
        assert_eq!(d.reason_code, ReasonCode::ProtocolError);
    }
}

#[test]
fn a_malformed_packet_or_protocol_error_is_said_before_closing() {
    let mut s = connected();
    assert!(matches!(
        feed_bytes(&mut s, T0, &[0x40, 0x01, 0x00]),
        Err(Closed::Malformed(_))
    ));
    let [v5::Packet::Disconnect(d)] = sent(&mut s, T0)[..] else {
        panic!("no DISCONNECT");
    };
    assert_eq!(d.reason_code, ReasonCode::MalformedPacket);
    let mut s = connected();
    assert_eq!(
        feed(&mut s, T0, connack(&[])),
        Err(Closed::Protocol(PacketType::ConnAck))
    );
    let [v5::Packet::Disconnect(d)] = sent(&mut s, T0)[..] else {
        panic!("no DISCONNECT");
    };
    assert_eq!(d.reason_code, ReasonCode::ProtocolError);
    // Nothing after the broker's own DISCONNECT.
    let mut s = connected();
    let bye = v5::Packet::Disconnect(v5::Disconnect {
        reason_code: ReasonCode::ServerBusy,
        properties: Properties::EMPTY,
    });
    assert!(feed(&mut s, T0, bye).is_err());
    assert!(sent(&mut s, T0).is_empty());
}

/// MQTT 5 servers also send DISCONNECT (once connected) and AUTH (at any
/// time): their first bytes wait for the rest, while a DISCONNECT before
/// CONNACK is refused from its first byte, as on 3.1.1.
#[test]
fn disconnect_and_auth_are_refused_from_their_first_byte_only_out_of_place() {
    let mut s = session();
    s.connect_v5(T0, &connect(true, &[])).unwrap();
    let _ = sent(&mut s, T0);
    assert_eq!(
        feed_bytes(&mut s, T0, &[0xe0]).map(|e| e.is_some()),
        Err(Closed::Protocol(PacketType::Disconnect))
    );
    let mut s = session();
    s.connect_v5(T0, &connect(true, &[])).unwrap();
    let _ = sent(&mut s, T0);
    assert_eq!(
        feed_bytes(&mut s, T0, &[0xf0]).map(|e| e.is_some()),
        Ok(false)
    );
    for first in [0xe0, 0xf0] {
        let mut s = connected();
        assert_eq!(
            feed_bytes(&mut s, T0, &[first]).map(|e| e.is_some()),
            Ok(false)
        );
        assert_eq!(s.state(), State::Connected);
    }
    let mut s = connected();
    assert_eq!(
        feed_bytes(&mut s, T0, &[0x82]).map(|e| e.is_some()),
        Err(Closed::Protocol(PacketType::Subscribe))
    );
}

#[test]
fn the_broker_is_held_to_our_receive_maximum() {
    static OURS: [Property<'static>; 1] = [Property::ReceiveMaximum(2)];
    // QoS 2 ids count until their PUBCOMP is written.
    let mut s = connected_with(&OURS, &[]);
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(1), &[])),
        Ok(Some(Event::Message(_)))
    ));
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(2), &[])),
        Ok(Some(Event::Message(_)))
    ));
    let _ = sent(&mut s, T0);
    // A resend of one of them is not a new message.
    let mut again = incoming(QoS::ExactlyOnce, Some(1), &[]);
    if let v5::Packet::Publish(p) = &mut again {
        p.dup = true;
    }
    assert_eq!(feed(&mut s, T0, again), Ok(None));
    assert_eq!(
        feed(&mut s, T0, incoming(QoS::AtLeastOnce, Some(3), &[])),
        Err(Closed::Violation(ReasonCode::ReceiveMaximumExceeded))
    );

    // QoS 1 messages count while their PUBACK is deferred.
    let mut s = connected_with(&OURS, &[]);
    for id in 1..=2 {
        assert!(matches!(
            feed(&mut s, T0, incoming(QoS::AtLeastOnce, Some(id), &[])),
            Ok(Some(Event::Message(_)))
        ));
        s.defer_ack().unwrap();
    }
    assert_eq!(
        feed(&mut s, T0, incoming(QoS::AtLeastOnce, Some(3), &[])),
        Err(Closed::Violation(ReasonCode::ReceiveMaximumExceeded))
    );

    // Once acknowledged, they no longer count.
    let mut s = connected_with(&OURS, &[]);
    for id in 1..=5 {
        assert!(matches!(
            feed(&mut s, T0, incoming(QoS::AtLeastOnce, Some(id), &[])),
            Ok(Some(Event::Message(_)))
        ));
        let _ = sent(&mut s, T0);
    }
}

#[test]
fn a_packet_over_our_maximum_packet_size_ends_the_connection() {
    static OURS: [Property<'static>; 1] = [Property::MaximumPacketSize(32)];
    let mut s = connected_with(&OURS, &[]);
    let big = v5::Packet::Publish(v5::Publish {
        payload: &[7; 40],
        ..v5::Publish::new("t", b"", QoS::AtMostOnce, false)
    });
    assert_eq!(
        feed(&mut s, T0, big),
        Err(Closed::Violation(ReasonCode::PacketTooLarge))
    );
}

#[test]
fn server_disconnect_and_unasked_auth_end_the_connection() {
    let mut s = connected();
    let bye = v5::Packet::Disconnect(v5::Disconnect {
        reason_code: ReasonCode::ServerShuttingDown,
        properties: Properties::EMPTY,
    });
    assert_eq!(
        feed(&mut s, T0, bye),
        Err(Closed::ServerDisconnect(ReasonCode::ServerShuttingDown))
    );
    let mut s = connected();
    let auth = v5::Packet::Auth(v5::Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: Properties::new(&[Property::AuthenticationMethod("x")]),
    });
    assert_eq!(
        feed(&mut s, T0, auth),
        Err(Closed::Violation(ReasonCode::ProtocolError))
    );
}

#[test]
fn no_session_on_the_broker_discards_ours() {
    let mut s = persistent();
    let id = s
        .publish(T0, &publish("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, secs(1));
    // Session present 0: the message is discarded (MQTT-3.2.2-5), not resent.
    let event = feed(&mut s, secs(1), connack(&[])).unwrap();
    let Some(Event::Connected(info)) = event else {
        panic!("{event:?}")
    };
    assert_eq!(info.resent, 0);
    let event = s.poll_event(secs(1));
    assert!(matches!(event, Some(Event::Discarded { packet_id, .. }) if packet_id == id));
    assert!(sent(&mut s, secs(1)).is_empty());
    assert_eq!(s.publish_outcome(id), Outcome::Discarded);
}

/// A CONNACK accepting with session present 1 and `props`.
fn resumed(props: &'static [Property<'static>]) -> v5::Packet<'static> {
    v5::Packet::ConnAck(v5::ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: Properties::new(props),
    })
}

/// A session connected with clean start off and `ours` in its CONNECT,
/// accepted by a CONNACK with `theirs`, with one QoS 1 message written
/// and unacknowledged when the connection is lost; and that message's id.
fn one_in_flight(
    ours: &'static [Property<'static>],
    theirs: &'static [Property<'static>],
) -> (S, u16) {
    let mut s = session();
    s.connect_v5(T0, &connect(false, ours)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(theirs)).is_ok());
    let id = s
        .publish(T0, &publish("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    s.connection_lost();
    (s, id)
}

/// The session kept: the CONNACK with session present resends message
/// `id`, alone and with DUP.
fn resumes_with(s: &mut S, now: Instant, id: u16) {
    let event = feed(s, now, resumed(&[])).unwrap();
    assert!(matches!(event, Some(Event::Connected(info)) if info.resent == 1));
    let wire = sent(s, now);
    assert!(
        matches!(wire.as_slice(), [v5::Packet::Publish(p)] if p.packet_id == Some(id) && p.dup),
        "{wire:?}"
    );
}

#[test]
fn a_session_expiry_of_0_ends_the_session_with_its_connection() {
    // Clean start off, but no Session Expiry Interval: 0, the session ends
    // when the connection closes (§3.1.2.11.2).
    let (mut s, id) = one_in_flight(&[], &[]);
    s.connect_v5(secs(1), &connect(false, &[])).unwrap();
    // Reported discarded at once, before any CONNACK: nothing to resend.
    let event = s.poll_event(secs(1));
    assert!(matches!(event, Some(Event::Discarded { packet_id, .. }) if packet_id == id));
    let _ = sent(&mut s, secs(1));
    // A broker that says it kept a session we no longer have breaks
    // MQTT-3.2.2-4: DISCONNECT 0x82, and nothing resent.
    assert_eq!(
        feed(&mut s, secs(1), resumed(&[])).unwrap_err(),
        Closed::Protocol(PacketType::ConnAck)
    );
    let wire = sent(&mut s, secs(1));
    assert!(
        matches!(wire.as_slice(), [v5::Packet::Disconnect(d)] if d.reason_code == ReasonCode::ProtocolError),
        "{wire:?}"
    );
    assert_eq!(s.publish_outcome(id), Outcome::Discarded);
}

#[test]
fn the_connacks_session_expiry_replaces_ours() {
    // Ours keeps the session; the broker's 0 ends it with the connection.
    static NONE_KEPT: [Property<'static>; 1] = [Property::SessionExpiryInterval(0)];
    let (mut s, id) = one_in_flight(&KEPT, &NONE_KEPT);
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let event = s.poll_event(secs(1));
    assert!(matches!(event, Some(Event::Discarded { packet_id, .. }) if packet_id == id));

    // Ours ends it with the connection; the broker's 60 s keep it.
    static A_MINUTE: [Property<'static>; 1] = [Property::SessionExpiryInterval(60)];
    let (mut s, id) = one_in_flight(&[], &A_MINUTE);
    s.connect_v5(secs(1), &connect(false, &[])).unwrap();
    let _ = sent(&mut s, secs(1));
    resumes_with(&mut s, secs(1), id);
}

#[test]
fn a_connect_never_accepted_does_not_end_the_session() {
    // Ours ends it with the connection, the broker's CONNACK keeps it for
    // an hour: kept.
    static AN_HOUR: [Property<'static>; 1] = [Property::SessionExpiryInterval(3600)];
    let (mut s, id) = one_in_flight(&[], &AN_HOUR);
    // A CONNECT with 0 that no CONNACK answers made no session of 0.
    s.connect_v5(secs(1), &connect(false, &[])).unwrap();
    let _ = sent(&mut s, secs(1));
    assert_eq!(s.poll_event(secs(1)), None);
    s.connection_lost();
    s.connect_v5(secs(2), &connect(false, &[])).unwrap();
    let _ = sent(&mut s, secs(2));
    resumes_with(&mut s, secs(2), id);
}

#[test]
fn subscription_options_and_suback_reason_codes() {
    let mut s = connected();
    let options = SubscriptionOptions {
        no_local: true,
        retain_handling: RetainHandling::DoNotSend,
        ..SubscriptionOptions::new(QoS::AtLeastOnce)
    };
    let filters = [
        v5::Subscription {
            filter: "a/b",
            options,
        },
        v5::Subscription {
            filter: "secret",
            options: SubscriptionOptions::new(QoS::AtMostOnce),
        },
    ];
    let id = s.subscribe_v5(T0, &filters, None).unwrap();
    let wire = sent(&mut s, T0);
    let [v5::Packet::Subscribe(sub)] = wire.as_slice() else {
        panic!("{wire:?}")
    };
    assert_eq!(sub.filters.iter().collect::<Vec<_>>(), filters);
    let codes = [ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized];
    let ack = v5::Packet::SubAck(v5::SubAck {
        packet_id: id,
        properties: Properties::new(&[Property::ReasonString("no")]),
        reason_codes: ReasonCodes::new(&codes),
    });
    let event = feed(&mut s, T0, ack).unwrap();
    let Some(Event::Subscribed {
        filters: got,
        codes: got_codes,
        properties,
        ..
    }) = event
    else {
        panic!("{event:?}")
    };
    assert_eq!(
        got.iter().map(|s| (s.filter, s.qos)).collect::<Vec<_>>(),
        [("a/b", QoS::AtLeastOnce), ("secret", QoS::AtMostOnce)]
    );
    assert_eq!(got_codes.reason_codes().collect::<Vec<_>>(), codes);
    assert_eq!(
        got_codes.iter().collect::<Vec<_>>(),
        [
            codec::SubscribeReturnCode::Success(QoS::AtLeastOnce),
            codec::SubscribeReturnCode::Failure
        ]
    );
    assert_eq!(properties.reason_string(), Some("no"));
    // The refused filter is gone; the other keeps its options across a
    // reconnect to a broker without the session.
    s.connection_lost();
    s.connect_v5(T0, &connect(true, &[])).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    let wire = sent(&mut s, T0);
    let [v5::Packet::Subscribe(again)] = wire.as_slice() else {
        panic!("{wire:?}")
    };
    assert_eq!(again.filters.iter().collect::<Vec<_>>(), filters[..1]);
}

#[test]
fn unsuback_reason_codes_reach_the_event_and_must_match() {
    let mut s = connected();
    let id = s.unsubscribe(T0, &["a", "b"]).unwrap();
    let wire = sent(&mut s, T0);
    assert!(matches!(wire.as_slice(), [v5::Packet::Unsubscribe(_)]));
    let codes = [ReasonCode::Success, ReasonCode::NoSubscriptionExisted];
    let ack = v5::Packet::UnsubAck(v5::UnsubAck {
        packet_id: id,
        properties: Properties::EMPTY,
        reason_codes: ReasonCodes::new(&codes),
    });
    let event = feed(&mut s, T0, ack).unwrap();
    let Some(Event::Unsubscribed {
        filters,
        codes: got,
        ..
    }) = event
    else {
        panic!("{event:?}")
    };
    assert_eq!(filters.iter().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(got.reason_codes().collect::<Vec<_>>(), codes);

    let id = s.unsubscribe(T0, &["a", "b"]).unwrap();
    let _ = sent(&mut s, T0);
    let short = v5::Packet::UnsubAck(v5::UnsubAck {
        packet_id: id,
        properties: Properties::EMPTY,
        reason_codes: ReasonCodes::new(&codes[..1]),
    });
    assert_eq!(
        feed(&mut s, T0, short),
        Err(Closed::Protocol(PacketType::UnsubAck))
    );
}

#[cfg(not(feature = "v3"))]
#[test]
fn a_build_without_3_1_1_refuses_a_3_1_1_connect_and_stays_offline() {
    let mut s = session();
    assert_eq!(
        s.connect(T0, &Connect::new("c")),
        Err(SessionError::Usage(UsageError::Unsupported(
            crate::error::Unsupported::Mqtt3
        )))
    );
    assert!(s.poll_transmit(T0).is_empty());
    assert_eq!(s.state(), State::Disconnected);
}

// A build with both versions.
#[cfg(feature = "v3")]
#[test]
fn mqtt_5_data_on_a_3_1_1_connection_is_refused() {
    let mut s = session();
    s.connect(T0, &Connect::new("c")).unwrap();
    let _ = s.poll_transmit(T0).len();
    let n = s.poll_transmit(T0).len();
    s.handle_transmit(T0, n);
    let ack = codec::Packet::ConnAck(ConnAck {
        session_present: false,
        return_code: ConnectReturnCode::Accepted,
    });
    let n = ack.encode(s.receive_buffer()).unwrap();
    s.commit(n);
    assert!(matches!(s.poll_event(T0), Some(Event::Connected(_))));
    static PROPS: [Property<'static>; 1] = [Property::UserProperty("k", "v")];
    assert_eq!(
        s.publish_with(T0, &publish("t", QoS::AtMostOnce), &Properties::new(&PROPS)),
        Err(unsupported(Unsupported::Mqtt5Only))
    );
    let options = SubscriptionOptions {
        no_local: true,
        ..SubscriptionOptions::new(QoS::AtMostOnce)
    };
    let filters = [v5::Subscription {
        filter: "a",
        options,
    }];
    assert_eq!(
        s.subscribe_v5(T0, &filters, None),
        Err(unsupported(Unsupported::Mqtt5Only))
    );
    // Plain options are a 3.1.1 SUBSCRIBE.
    let plain = [v5::Subscription {
        filter: "a",
        options: SubscriptionOptions::new(QoS::AtLeastOnce),
    }];
    assert_eq!(s.subscribe_v5(T0, &plain, None), Ok(1));
    let bye = v5::Disconnect::new();
    assert_eq!(
        s.disconnect_v5(&bye),
        Err(unsupported(Unsupported::Mqtt5Only))
    );
    assert_eq!(s.state(), State::Connected);
}

#[test]
fn disconnect_v5_carries_its_reason_and_properties() {
    let mut s = connected();
    static BYE: [Property<'static>; 2] = [
        Property::ReasonString("going away"),
        Property::UserProperty("k", "v"),
    ];
    let bye = v5::Disconnect {
        reason_code: ReasonCode::DisconnectWithWillMessage,
        properties: Properties::new(&BYE),
    };
    s.check_disconnect_v5(&bye).unwrap();
    s.disconnect_v5(&bye).unwrap();
    assert_eq!(s.state(), State::Disconnected);
    let wire = sent(&mut s, T0);
    assert!(
        matches!(wire.as_slice(), [v5::Packet::Disconnect(d)]
            if d.reason_code == ReasonCode::DisconnectWithWillMessage
            && d.properties.reason_string() == Some("going away")),
        "{wire:?}"
    );
    // Once is all: the connection is over.
    assert_eq!(
        s.disconnect_v5(&bye),
        Err(SessionError::Usage(UsageError::NotConnected))
    );
}

#[test]
fn disconnect_v5_refuses_what_a_client_may_not_send() {
    let refused = |e| Err(SessionError::Usage(UsageError::Encode(e)));
    // No Session Expiry Interval in the CONNECT: 0, the session ends with
    // the connection.
    let mut s = connected();
    let with = |reason_code, properties: &'static [Property<'static>]| v5::Disconnect {
        reason_code,
        properties: Properties::new(properties),
    };
    // MQTT 5 Table 3-10: the server's codes.
    for code in [
        ReasonCode::ServerBusy,
        ReasonCode::SessionTakenOver,
        ReasonCode::KeepAliveTimeout,
    ] {
        assert_eq!(
            s.disconnect_v5(&with(code, &[])),
            refused(crate::codec::EncodeError::ReasonCode(code.to_u8()))
        );
    }
    // Not a code a DISCONNECT carries at all.
    assert_eq!(
        s.disconnect_v5(&with(ReasonCode::GrantedQoS1, &[])),
        refused(crate::codec::EncodeError::ReasonCode(0x01))
    );
    static ELSEWHERE: [Property<'static>; 1] = [Property::ServerReference("b")];
    assert_eq!(
        s.disconnect_v5(&with(ReasonCode::Success, &ELSEWHERE)),
        refused(crate::codec::EncodeError::PropertyNotAllowed(0x1c))
    );
    // MQTT-3.14.2-2.
    static LATER: [Property<'static>; 1] = [Property::SessionExpiryInterval(60)];
    assert_eq!(
        s.disconnect_v5(&with(ReasonCode::Success, &LATER)),
        refused(crate::codec::EncodeError::PropertyValue(0x11))
    );
    // Nothing queued; still connected.
    assert!(sent(&mut s, T0).is_empty());
    assert_eq!(s.state(), State::Connected);
    // The CONNECT's 0 counts, not the CONNACK's value.
    static MINUTE: [Property<'static>; 1] = [Property::SessionExpiryInterval(60)];
    let mut s = connected_with(&[], &MINUTE);
    assert_eq!(
        s.disconnect_v5(&with(ReasonCode::Success, &LATER)),
        refused(crate::codec::EncodeError::PropertyValue(0x11))
    );
    // Not one a DISCONNECT may carry.
    static ALIAS: [Property<'static>; 1] = [Property::TopicAlias(1)];
    assert_eq!(
        s.check_disconnect_v5(&with(ReasonCode::Success, &ALIAS)),
        refused(crate::codec::EncodeError::PropertyNotAllowed(0x23))
    );
    // Before the CONNACK, the CONNECT's 0 counts, not the last
    // connection's kept session.
    let mut s = persistent();
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &[])).unwrap();
    assert_eq!(
        s.disconnect_v5(&with(ReasonCode::Success, &LATER)),
        refused(crate::codec::EncodeError::PropertyValue(0x11))
    );

    // Over the broker's Maximum Packet Size.
    static TEN: [Property<'static>; 1] = [Property::MaximumPacketSize(10)];
    let mut s = connected_with(&[], &TEN);
    static LONG: [Property<'static>; 1] = [Property::ReasonString("a long goodbye")];
    assert!(matches!(
        s.disconnect_v5(&with(ReasonCode::Success, &LONG)),
        Err(SessionError::Resource(ResourceError::PacketTooLarge {
            max: 10,
            ..
        }))
    ));
    assert_eq!(s.state(), State::Connected);
}

#[test]
fn a_session_expiry_at_disconnect_replaces_the_connects() {
    // Kept by the CONNECT, ended by the DISCONNECT's 0: the next
    // connection starts a new session, its message discarded.
    static NOW: [Property<'static>; 1] = [Property::SessionExpiryInterval(0)];
    let bye = v5::Disconnect {
        reason_code: ReasonCode::Success,
        properties: Properties::new(&NOW),
    };
    let mut s = persistent();
    let id = s
        .publish(T0, &publish("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    s.disconnect_v5(&bye).unwrap();
    let _ = sent(&mut s, T0);
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let event = s.poll_event(secs(1));
    assert!(matches!(event, Some(Event::Discarded { packet_id, .. }) if packet_id == id));

    // Kept by both: resumed.
    static HOUR: [Property<'static>; 1] = [Property::SessionExpiryInterval(3600)];
    let bye = v5::Disconnect {
        reason_code: ReasonCode::Success,
        properties: Properties::new(&HOUR),
    };
    let mut s = persistent();
    let id = s
        .publish(T0, &publish("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    s.disconnect_v5(&bye).unwrap();
    let _ = sent(&mut s, T0);
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, secs(1));
    resumes_with(&mut s, secs(1), id);

    // The CONNACK's 0 would end it; the DISCONNECT's hour keeps it.
    static NONE_KEPT: [Property<'static>; 1] = [Property::SessionExpiryInterval(0)];
    let mut s = session();
    s.connect_v5(T0, &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&NONE_KEPT)).is_ok());
    let id = s
        .publish(T0, &publish("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    s.disconnect_v5(&bye).unwrap();
    let _ = sent(&mut s, T0);
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, secs(1));
    resumes_with(&mut s, secs(1), id);
}

#[test]
fn connect_refuses_what_the_session_cannot_honour() {
    let mut s = session();
    // Over `SUBS` (4): the session keeps only that many.
    static ALIASES: [Property<'static>; 1] = [Property::TopicAliasMaximum(5)];
    assert_eq!(
        s.connect_v5(T0, &connect(true, &ALIASES)),
        Err(unsupported(Unsupported::TopicAlias))
    );
    assert_eq!(s.state(), State::Disconnected);
}

#[test]
fn disconnect_before_connack_is_a_protocol_error() {
    let mut s = session();
    s.connect_v5(T0, &connect(true, &[])).unwrap();
    let _ = sent(&mut s, T0);
    let bye = v5::Packet::Disconnect(v5::Disconnect {
        reason_code: ReasonCode::ServerBusy,
        properties: Properties::EMPTY,
    });
    // MQTT-3.14.0-1: only after a CONNACK that accepted.
    assert_eq!(
        feed(&mut s, T0, bye),
        Err(Closed::Protocol(PacketType::Disconnect))
    );
    // Nor does the client send one of its own before a CONNACK.
    assert!(sent(&mut s, T0).is_empty());
}

#[test]
fn a_receive_maximum_above_inflight_is_refused() {
    let mut s = session();
    static FIVE: [Property<'static>; 1] = [Property::ReceiveMaximum(5)];
    assert_eq!(
        s.connect_v5(T0, &connect(true, &FIVE)),
        Err(unsupported(Unsupported::ReceiveMaximum))
    );
    static FOUR: [Property<'static>; 1] = [Property::ReceiveMaximum(4)];
    assert_eq!(s.connect_v5(T0, &connect(true, &FOUR)), Ok(()));
}

#[test]
fn what_a_new_maximum_packet_size_forbids_is_not_resent() {
    let mut s = persistent();
    let long = [Subscription {
        filter: "a/quite/long/topic/filter/for/testing",
        qos: QoS::AtMostOnce,
    }];
    s.subscribe(T0, &long).unwrap();
    let big = s
        .publish(T0, &Publish::new("t", &[1; 40], QoS::AtLeastOnce, false))
        .unwrap()
        .unwrap();
    let small = s
        .publish(T0, &publish("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, secs(1));
    // The broker kept the session but now takes at most 30 bytes: the
    // 48-byte PUBLISH is discarded (MQTT-3.1.2-25), the small one resent,
    // and the list, whose SUBSCRIBE would be 45 bytes, not re-sent.
    static SMALL: [Property<'static>; 1] = [Property::MaximumPacketSize(30)];
    let present = v5::Packet::ConnAck(v5::ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: Properties::new(&SMALL),
    });
    let event = feed(&mut s, secs(1), present).unwrap();
    let Some(Event::Connected(info)) = event else {
        panic!("{event:?}")
    };
    assert_eq!((info.resent, info.resubscribed), (1, 0));
    let event = s.poll_event(secs(1));
    assert!(matches!(event, Some(Event::Discarded { packet_id, .. }) if packet_id == big));
    let wire = sent(&mut s, secs(1));
    assert!(
        matches!(wire.as_slice(), [v5::Packet::Publish(p)] if p.packet_id == Some(small) && p.dup),
        "{wire:?}"
    );
}

/// A new connection at 1 s (clean start off) that the broker accepts with
/// its session kept and these CONNACK properties.
fn resume_with(s: &mut S, props: &'static [Property<'static>]) {
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let _ = sent(s, secs(1));
    let present = v5::Packet::ConnAck(v5::ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: Properties::new(props),
    });
    assert!(matches!(
        feed(s, secs(1), present),
        Ok(Some(Event::Connected(_)))
    ));
}

/// The packet ids of the PUBLISHes (`false`) and PUBRELs (`true`) on
/// the wire.
fn publishes_and_rels(wire: &[v5::Packet<'_>]) -> Vec<(u16, bool)> {
    wire.iter()
        .filter_map(|p| match p {
            v5::Packet::Publish(p) => p.packet_id.map(|id| (id, false)),
            v5::Packet::PubRel(r) => Some((r.packet_id, true)),
            _ => None,
        })
        .collect()
}

/// A successful PUBACK, PUBREC or PUBCOMP.
fn ack(kind: PacketType, packet_id: u16) -> v5::Packet<'static> {
    let (reason_code, properties) = (ReasonCode::Success, Properties::EMPTY);
    match kind {
        PacketType::PubRec => v5::Packet::PubRec(v5::PubRec {
            packet_id,
            reason_code,
            properties,
        }),
        PacketType::PubComp => v5::Packet::PubComp(v5::PubComp {
            packet_id,
            reason_code,
            properties,
        }),
        _ => v5::Packet::PubAck(v5::PubAck {
            packet_id,
            reason_code,
            properties,
        }),
    }
}

#[test]
fn resends_keep_to_a_receive_maximum_lowered_across_a_reconnect() {
    let mut s = persistent();
    // A QoS 2 message past PUBREC, then three QoS 1 messages.
    assert_eq!(s.publish(T0, &publish("t", QoS::ExactlyOnce)), Ok(Some(1)));
    let _ = sent(&mut s, T0);
    assert!(matches!(
        feed(&mut s, T0, ack(PacketType::PubRec, 1)),
        Ok(None)
    ));
    for id in 2..=4 {
        assert_eq!(s.publish(T0, &publish("t", QoS::AtLeastOnce)), Ok(Some(id)));
    }
    let _ = sent(&mut s, T0);
    // The broker keeps the session, but takes two unacknowledged messages
    // now (MQTT 5 §4.9): the QoS 2 message still counts, so one resend.
    static TWO: [Property<'static>; 1] = [Property::ReceiveMaximum(2)];
    resume_with(&mut s, &TWO);
    assert_eq!(
        publishes_and_rels(&sent(&mut s, secs(1))),
        [(1, true), (2, false)]
    );
    // The rest wait without a deadline of their own, and hold nothing
    // else back; no new message overtakes them.
    assert!(s.transmit_idle());
    assert!(!s.can_publish());
    assert_eq!(s.poll_timeout(), Some(secs(11)));
    s.ping(secs(2)).unwrap();
    assert_eq!(sent(&mut s, secs(2)), [v5::Packet::PingReq]);
    // Each completion lets the next one out, in order.
    assert!(matches!(
        feed(&mut s, secs(3), ack(PacketType::PubComp, 1)),
        Ok(Some(Event::Published { packet_id: 1, .. }))
    ));
    assert_eq!(publishes_and_rels(&sent(&mut s, secs(3))), [(3, false)]);
    assert!(matches!(
        feed(&mut s, secs(4), ack(PacketType::PubAck, 2)),
        Ok(Some(Event::Published { packet_id: 2, .. }))
    ));
    assert_eq!(publishes_and_rels(&sent(&mut s, secs(4))), [(4, false)]);
    assert!(!s.can_publish());
    for id in 3..=4 {
        assert!(feed(&mut s, secs(5), ack(PacketType::PubAck, id)).is_ok());
    }
    assert!(s.can_publish());
    assert_eq!(s.inflight(), 0);
    assert_eq!(s.poll_timeout(), Some(secs(12)), "the PINGRESP alone");
}

/// The PUBLISHes on the wire as (topic, alias).
fn topics_and_aliases(wire: &[v5::Packet<'_>]) -> Vec<(std::string::String, Option<u16>)> {
    wire.iter()
        .filter_map(|p| match p {
            v5::Packet::Publish(p) => Some((p.topic.into(), p.properties.topic_alias())),
            _ => None,
        })
        .collect()
}

#[test]
fn topic_aliases_follow_the_documented_policy() {
    static TWO: [Property<'static>; 1] = [Property::TopicAliasMaximum(2)];
    let mut s = connected_with(&[], &TWO);
    let user = [Property::UserProperty("k", "v")];
    for topic in ["a/1", "a/1", "b/2", "c/3", "b/2"] {
        s.publish(T0, &publish(topic, QoS::AtMostOnce)).unwrap();
    }
    s.publish_with(
        T0,
        &publish("a/1", QoS::AtMostOnce),
        &Properties::new(&user),
    )
    .unwrap();
    let wire = sent(&mut s, T0);
    assert_eq!(
        topics_and_aliases(&wire),
        [
            ("a/1".into(), Some(1)),
            ("".into(), Some(1)),
            ("b/2".into(), Some(2)),
            // Over the broker's 2: no alias.
            ("c/3".into(), None),
            ("".into(), Some(2)),
            ("".into(), Some(1)),
        ]
    );
    // The caller's properties travel beside the alias.
    let v5::Packet::Publish(last) = wire[5] else {
        panic!()
    };
    assert_eq!(last.properties.user_properties().count(), 1);
}

#[test]
fn a_refused_qos0_publish_records_no_alias() {
    static TWO: [Property<'static>; 1] = [Property::TopicAliasMaximum(2)];
    let mut s = connected_with(&[], &TWO);
    let bad = [
        [Property::ResponseTopic("reply/#")],
        [Property::UserProperty("k", "v\0")],
    ];
    for props in &bad {
        assert!(matches!(
            s.publish_with(
                T0,
                &publish("a/1", QoS::AtMostOnce),
                &Properties::new(props)
            ),
            Err(SessionError::Usage(UsageError::Encode(_)))
        ));
    }
    // An invalid topic takes no alias slot either.
    assert!(s.publish(T0, &publish("a/#", QoS::AtMostOnce)).is_err());
    for topic in ["a/1", "b/2", "a/1"] {
        s.publish(T0, &publish(topic, QoS::AtMostOnce)).unwrap();
    }
    // The first PUBLISH to the topic sets the alias (§3.3.2.3.4).
    assert_eq!(
        topics_and_aliases(&sent(&mut s, T0)),
        [
            ("a/1".into(), Some(1)),
            ("b/2".into(), Some(2)),
            ("".into(), Some(1)),
        ]
    );
}

#[test]
fn a_qos0_message_sent_by_its_alias_alone_is_reported_with_its_topic() {
    static TWO: [Property<'static>; 1] = [Property::TopicAliasMaximum(2)];
    let mut s = connected_with(&[], &TWO);
    for topic in ["a/1", "a/1", "c/3"] {
        s.publish(T0, &publish(topic, QoS::AtMostOnce)).unwrap();
    }
    let len = s.poll_transmit(T0).len();
    s.handle_transmit(T0, len);
    let mut reported = Vec::new();
    while s.sent_due() {
        match s.poll_event(T0) {
            Some(Event::Sent { topic }) => reported.push(std::string::String::from(topic)),
            other => panic!("expected Sent, got {other:?}"),
        }
    }
    assert_eq!(reported, ["a/1", "a/1", "c/3"]);
    assert_eq!(s.poll_event(T0), None);
}

#[test]
fn an_aliased_qos_1_message_is_stored_and_resent_with_its_topic() {
    static ONE: [Property<'static>; 1] = [Property::TopicAliasMaximum(1)];
    let mut s = session();
    s.connect_v5(T0, &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&ONE)).is_ok());
    s.publish(T0, &publish("t/x", QoS::AtMostOnce)).unwrap();
    let id = s
        .publish(T0, &publish("t/x", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let wire = sent(&mut s, T0);
    assert_eq!(
        topics_and_aliases(&wire),
        [("t/x".into(), Some(1)), ("".into(), Some(1))]
    );
    assert_eq!(s.outgoing_topic(id), Some("t/x"));
    // A new connection has no aliases: the resend names its topic.
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, secs(1));
    let present = v5::Packet::ConnAck(v5::ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: Properties::EMPTY,
    });
    assert!(feed(&mut s, secs(1), present).is_ok());
    let wire = sent(&mut s, secs(1));
    assert_eq!(topics_and_aliases(&wire), [("t/x".into(), None)]);
    let ack = v5::Packet::PubAck(v5::PubAck::new(id));
    let event = feed(&mut s, secs(1), ack).unwrap();
    assert!(
        matches!(event, Some(Event::Published { topic: "t/x", .. })),
        "{event:?}"
    );
    // And aliases start over on it, when the broker offers them.
    s.connection_lost();
    s.connect_v5(secs(2), &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, secs(2));
    assert!(feed(&mut s, secs(2), connack(&ONE)).is_ok());
    s.publish(secs(2), &publish("t/y", QoS::AtMostOnce))
        .unwrap();
    assert_eq!(
        topics_and_aliases(&sent(&mut s, secs(2))),
        [("t/y".into(), Some(1))]
    );
}

#[test]
fn topic_aliases_can_be_turned_off() {
    static MANY: [Property<'static>; 1] = [Property::TopicAliasMaximum(10)];
    let mut s = session();
    s.set_options(Options {
        topic_aliases: false,
        ..Options::DEFAULT
    });
    s.connect_v5(T0, &connect(true, &[])).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&MANY)).is_ok());
    s.publish(T0, &publish("a", QoS::AtMostOnce)).unwrap();
    s.publish(T0, &publish("a", QoS::AtMostOnce)).unwrap();
    assert_eq!(
        topics_and_aliases(&sent(&mut s, T0)),
        [("a".into(), None), ("a".into(), None)]
    );
    // Nor without the broker's offer.
    let mut s = connected();
    s.publish(T0, &publish("a", QoS::AtMostOnce)).unwrap();
    assert_eq!(topics_and_aliases(&sent(&mut s, T0)), [("a".into(), None)]);
}

#[test]
fn subscription_identifiers_go_out_and_come_back_on_resubscribe() {
    let mut s = persistent();
    let sub = |filter| v5::Subscription {
        filter,
        options: SubscriptionOptions::new(QoS::AtLeastOnce),
    };
    s.subscribe_v5(T0, &[sub("a/#"), sub("b/#")], Some(7))
        .unwrap();
    s.subscribe_v5(T0, &[sub("c")], Some(9)).unwrap();
    s.subscribe_v5(T0, &[sub("d")], None).unwrap();
    let ids = |wire: &[v5::Packet<'_>]| -> Vec<(Vec<std::string::String>, Option<u32>)> {
        wire.iter()
            .filter_map(|p| match p {
                v5::Packet::Subscribe(s) => Some((
                    s.filters.iter().map(|f| f.filter.into()).collect(),
                    s.properties.subscription_identifiers().next(),
                )),
                _ => None,
            })
            .collect()
    };
    let want = [
        (vec!["a/#".into(), "b/#".into()], Some(7)),
        (vec!["c".into()], Some(9)),
        (vec!["d".into()], None),
    ];
    assert_eq!(ids(&sent(&mut s, T0)), want);
    // No SUBACK came: after a reconnect to a broker without the session,
    // one SUBSCRIBE per identifier again, with the same filters.
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, secs(1));
    let event = feed(&mut s, secs(1), connack(&[])).unwrap();
    let Some(Event::Connected(info)) = event else {
        panic!("{event:?}")
    };
    assert_eq!(info.resubscribed, 4);
    assert_eq!(ids(&sent(&mut s, secs(1))), want);
    // A broker without them refuses the identifier, not the filter.
    static NONE: [Property<'static>; 1] = [Property::SubscriptionIdentifierAvailable(0)];
    let mut s = connected_with(&[], &NONE);
    assert_eq!(
        s.subscribe_v5(T0, &[sub("a")], Some(1)),
        Err(unsupported(Unsupported::SubscriptionIdentifier))
    );
    assert_eq!(s.subscribe_v5(T0, &[sub("a")], None), Ok(1));
}

fn auth_packet(code: ReasonCode, props: &'static [Property<'static>]) -> v5::Packet<'static> {
    v5::Packet::Auth(v5::Auth {
        reason_code: code,
        properties: Properties::new(props),
    })
}

static METHOD: [Property<'static>; 2] = [
    Property::AuthenticationMethod("M"),
    Property::AuthenticationData(b"d"),
];

#[test]
fn enhanced_authentication_in_the_session() {
    let mut s = session();
    // No method in the CONNECT: nothing to answer.
    assert_eq!(
        s.auth(T0, &v5::Auth::new()),
        Err(unsupported(Unsupported::Authentication))
    );
    s.connect_v5(T0, &connect(true, &METHOD)).unwrap();
    let _ = sent(&mut s, T0);
    // Re-authenticate is ours to send, and not before CONNACK.
    let reauth = v5::Auth {
        reason_code: ReasonCode::ReAuthenticate,
        properties: Properties::new(&METHOD),
    };
    assert_eq!(
        s.auth(T0, &reauth),
        Err(SessionError::Usage(UsageError::NotConnected))
    );
    let event = feed(
        &mut s,
        T0,
        auth_packet(ReasonCode::ContinueAuthentication, &METHOD),
    );
    assert!(
        matches!(event, Ok(Some(Event::Auth(a))) if a.reason_code == ReasonCode::ContinueAuthentication)
    );
    // An answer without the method is refused; with it, it goes out.
    let bare = v5::Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: Properties::EMPTY,
    };
    assert!(matches!(
        s.auth(T0, &bare),
        Err(SessionError::Usage(UsageError::Encode(_)))
    ));
    let answer = v5::Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: Properties::new(&METHOD),
    };
    s.auth(T0, &answer).unwrap();
    let wire = sent(&mut s, T0);
    assert!(
        matches!(wire.as_slice(), [v5::Packet::Auth(a)] if a.reason_code == ReasonCode::ContinueAuthentication)
    );
    assert!(matches!(
        feed(&mut s, T0, connack(&METHOD)),
        Ok(Some(Event::Connected(_)))
    ));
    s.auth(T0, &reauth).unwrap();
    let wire = sent(&mut s, T0);
    assert!(
        matches!(wire.as_slice(), [v5::Packet::Auth(a)] if a.reason_code == ReasonCode::ReAuthenticate)
    );
    let event = feed(&mut s, T0, auth_packet(ReasonCode::Success, &METHOD));
    assert!(matches!(event, Ok(Some(Event::Auth(a))) if a.reason_code == ReasonCode::Success));
    // Nothing under way any more: a second Success is out of turn.
    assert_eq!(
        feed(&mut s, T0, auth_packet(ReasonCode::Success, &METHOD)),
        Err(Closed::Violation(ReasonCode::ProtocolError))
    );
    // Disconnected: nothing to answer.
    assert_eq!(
        s.auth(T0, &answer),
        Err(SessionError::Usage(UsageError::NotConnected))
    );
}

#[test]
fn a_re_authentication_the_broker_does_not_answer_times_out() {
    let mut s = session();
    let hello = v5::Connect {
        keep_alive: 0,
        ..connect(true, &METHOD)
    };
    s.connect_v5(T0, &hello).unwrap();
    let _ = sent(&mut s, T0);
    assert!(matches!(
        feed(&mut s, T0, connack(&METHOD)),
        Ok(Some(Event::Connected(_)))
    ));
    assert_eq!(s.poll_timeout(), None, "no keep-alive, nothing awaited");
    let reauth = v5::Auth {
        reason_code: ReasonCode::ReAuthenticate,
        properties: Properties::new(&METHOD),
    };
    s.auth(secs(1), &reauth).unwrap();
    let _ = sent(&mut s, secs(1));
    assert_eq!(s.poll_timeout(), Some(secs(11)));
    // The broker's next step answers ours: the application's turn, with
    // no deadline.
    let event = feed(
        &mut s,
        secs(5),
        auth_packet(ReasonCode::ContinueAuthentication, &METHOD),
    );
    assert!(matches!(event, Ok(Some(Event::Auth(_)))));
    assert_eq!(s.poll_timeout(), None);
    let answer = v5::Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: Properties::new(&METHOD),
    };
    s.auth(secs(20), &answer).unwrap();
    let _ = sent(&mut s, secs(20));
    assert_eq!(s.poll_timeout(), Some(secs(30)));
    s.handle_timeout(Instant::from_millis(29_999));
    assert_eq!(s.poll_event(secs(29)), None);
    s.handle_timeout(secs(30));
    assert_eq!(
        s.poll_event(secs(30)),
        Some(Event::Closed(Closed::Timeout(AckKind::Auth)))
    );
    assert_eq!(s.state(), State::Disconnected);
    // A new connection waits for nothing of the old exchange.
    s.connect_v5(secs(31), &hello).unwrap();
    let _ = sent(&mut s, secs(31));
    assert!(feed(&mut s, secs(31), connack(&METHOD)).is_ok());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn auth_out_of_turn_is_a_protocol_error() {
    // Success while connecting: the first exchange ends with CONNACK.
    let mut s = session();
    s.connect_v5(T0, &connect(true, &METHOD)).unwrap();
    let _ = sent(&mut s, T0);
    assert_eq!(
        feed(&mut s, T0, auth_packet(ReasonCode::Success, &METHOD)),
        Err(Closed::Violation(ReasonCode::ProtocolError))
    );
    // Re-authenticate from the broker.
    let mut s = connected_with(&METHOD, &METHOD);
    assert_eq!(
        feed(&mut s, T0, auth_packet(ReasonCode::ReAuthenticate, &METHOD)),
        Err(Closed::Violation(ReasonCode::ProtocolError))
    );
}

#[test]
fn resubscribe_rounds_wait_for_a_free_request_slot() {
    // INFLIGHT 1: one SUBSCRIBE pending at a time.
    let mut s: Session<'static, 1, 4> = Session::new(leak(512), leak(1536), Timeouts::default());
    let ack = |s: &mut Session<'static, 1, 4>, packet: v5::Packet<'_>| {
        let mut buf = vec![0u8; packet.encoded_len()];
        let n = packet.encode(&mut buf).unwrap();
        s.receive_buffer()[..n].copy_from_slice(&buf[..n]);
        s.commit(n);
        while s.poll_event(T0).is_some() {}
    };
    let drain = |s: &mut Session<'static, 1, 4>| {
        let mut ids = Vec::new();
        loop {
            let pending = s.poll_transmit(T0);
            if pending.is_empty() {
                break;
            }
            let n = pending.len();
            let mut rest = pending;
            while let Ok((p, k)) = v5::Packet::decode(rest) {
                if let v5::Packet::Subscribe(sub) = p {
                    ids.push((
                        sub.packet_id,
                        sub.properties.subscription_identifiers().next(),
                    ));
                }
                rest = &rest[k..];
            }
            s.handle_transmit(T0, n);
        }
        ids
    };
    s.connect_v5(T0, &connect(false, &KEPT)).unwrap();
    let _ = drain(&mut s);
    ack(&mut s, connack(&[]));
    let sub = |filter| v5::Subscription {
        filter,
        options: SubscriptionOptions::new(QoS::AtMostOnce),
    };
    let first = s.subscribe_v5(T0, &[sub("a")], Some(1)).unwrap();
    let _ = drain(&mut s);
    ack(
        &mut s,
        v5::Packet::SubAck(v5::SubAck {
            packet_id: first,
            properties: Properties::EMPTY,
            reason_codes: ReasonCodes::new(&[ReasonCode::GRANTED_QOS_0]),
        }),
    );
    let second = s.subscribe_v5(T0, &[sub("b")], Some(2)).unwrap();
    let _ = drain(&mut s);
    ack(
        &mut s,
        v5::Packet::SubAck(v5::SubAck {
            packet_id: second,
            properties: Properties::EMPTY,
            reason_codes: ReasonCodes::new(&[ReasonCode::GRANTED_QOS_0]),
        }),
    );
    // A new broker session: two rounds, one request slot.
    s.connection_lost();
    s.connect_v5(T0, &connect(false, &KEPT)).unwrap();
    let _ = drain(&mut s);
    ack(&mut s, connack(&[]));
    let round = drain(&mut s);
    assert_eq!(round.len(), 1, "{round:?}");
    // The next round waits for the SUBACK, which only a read brings: not
    // something to write now (a driver would spin on it).
    assert!(!s.is_resending());
    assert!(s.transmit_idle());
    ack(
        &mut s,
        v5::Packet::SubAck(v5::SubAck {
            packet_id: round[0].0,
            properties: Properties::EMPTY,
            reason_codes: ReasonCodes::new(&[ReasonCode::GRANTED_QOS_0]),
        }),
    );
    let next = drain(&mut s);
    assert_eq!(next.len(), 1, "{next:?}");
    assert_ne!(next[0].1, round[0].1);
    assert!(!s.is_resending());
}

#[test]
fn broker_packets_out_of_place_on_mqtt_5() {
    // A PUBLISH before CONNACK.
    let mut s = session();
    s.connect_v5(T0, &connect(true, &[])).unwrap();
    let _ = sent(&mut s, T0);
    assert_eq!(
        feed(&mut s, T0, incoming(QoS::AtMostOnce, None, &[])),
        Err(Closed::Protocol(PacketType::Publish))
    );
    // A second CONNACK.
    let mut s = connected();
    assert_eq!(
        feed(&mut s, T0, connack(&[])),
        Err(Closed::Protocol(PacketType::ConnAck))
    );
    // Acknowledgements of nothing are ignored; a PINGRESP is a Pong.
    let mut s = connected();
    let stray = [
        v5::Packet::SubAck(v5::SubAck {
            packet_id: 9,
            properties: Properties::EMPTY,
            reason_codes: ReasonCodes::new(&[ReasonCode::GRANTED_QOS_0]),
        }),
        v5::Packet::UnsubAck(v5::UnsubAck {
            packet_id: 9,
            properties: Properties::EMPTY,
            reason_codes: ReasonCodes::new(&[ReasonCode::Success]),
        }),
        v5::Packet::PubAck(v5::PubAck::new(9)),
        v5::Packet::PubComp(v5::PubComp::new(9)),
    ];
    for packet in stray {
        assert_eq!(feed(&mut s, T0, packet), Ok(None));
    }
    s.ping(T0).unwrap();
    let _ = sent(&mut s, T0);
    assert_eq!(
        feed(&mut s, T0, v5::Packet::PingResp),
        Ok(Some(Event::Pong))
    );
    assert!(!s.ping_outstanding());
}

#[test]
fn an_alias_topic_without_store_room_goes_without_an_alias() {
    static ONE: [Property<'static>; 1] = [Property::TopicAliasMaximum(1)];
    // The QoS 1 PUBLISH fits beside the CONNECT's reserve, its topic
    // beside it does not.
    let topic = "sensor/0001/temp";
    let hello = connect(true, &[]);
    let message = Publish {
        packet_id: Some(1),
        ..publish(topic, QoS::AtLeastOnce)
    };
    // (MQTT 5 adds the empty property list's byte.)
    let len = crate::codec::Packet::Publish(message).encoded_len() + 1;
    let arena = len + hello.encoded_len();
    let mut s: S = Session::new(leak(512), leak(arena), Timeouts::default());
    s.connect_v5(T0, &hello).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&ONE)).is_ok());
    let id = s
        .publish(T0, &publish(topic, QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let wire = sent(&mut s, T0);
    assert_eq!(topics_and_aliases(&wire), [(topic.into(), None)]);
    assert_eq!(s.outgoing_topic(id), Some(topic));
}

#[test]
fn an_alias_that_would_break_the_maximum_packet_size_is_not_used() {
    // Topic "a" by its alias alone takes 2 bytes more than with the topic
    // (an empty topic, then the 3-byte property): at the broker's maximum,
    // the message goes with its topic.
    static LIMITS: [Property<'static>; 2] = [
        Property::TopicAliasMaximum(1),
        Property::MaximumPacketSize(40),
    ];
    let mut s = connected_with(&[], &LIMITS);
    s.publish(T0, &publish("a", QoS::AtMostOnce)).unwrap();
    // 2 (header) + 3 (topic) + 1 (no properties) + 34 = 40 bytes.
    let big = Publish::new("a", &[1; 34], QoS::AtMostOnce, false);
    s.publish(T0, &big).unwrap();
    let wire = sent(&mut s, T0);
    assert_eq!(
        topics_and_aliases(&wire),
        [("a".into(), Some(1)), ("a".into(), None)]
    );
}

#[test]
fn a_qos1_message_larger_than_the_transmit_buffer_goes_without_its_alias() {
    // Sent by alias it would be queued beside its stored copy, which the
    // 300-byte arena has no room for; from the store it goes whole, with
    // its topic.
    let mut s: S = Session::new(leak(512), leak(300), Timeouts::default());
    s.connect_v5(T0, &connect(true, &[])).unwrap();
    let _ = sent(&mut s, T0);
    static FOUR: [Property<'static>; 1] = [Property::TopicAliasMaximum(4)];
    assert!(matches!(
        feed(&mut s, T0, connack(&FOUR)),
        Ok(Some(Event::Connected(_)))
    ));
    let p = Publish::new("t/x", &[7; 200], QoS::AtLeastOnce, false);
    assert_eq!(s.publish(T0, &p), Ok(Some(1)));
    // A small one still takes an alias.
    s.publish(T0, &publish("t/y", QoS::AtLeastOnce)).unwrap();
    let wire = sent(&mut s, T0);
    assert_eq!(
        topics_and_aliases(&wire),
        [("t/x".into(), None), ("t/y".into(), Some(1))]
    );
}

#[test]
fn a_new_alias_never_moves_the_message_stored_before_it() {
    // 52 store bytes. "a" (alias 1) at 0..9, its topic at 9..10, a second
    // message by alias at 10..19; the first completes (9 bytes of
    // garbage). A message to a new topic fits behind at 19..43, but its
    // alias's 16 bytes need the garbage: the compaction must come before
    // the message is stored, or it is overwritten before its entry exists.
    static TWO: [Property<'static>; 1] = [Property::TopicAliasMaximum(2)];
    let mut s: S = Session::new(leak(512), leak(564), Timeouts::default());
    s.connect_v5(T0, &connect(true, &KEPT)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&TWO)).is_ok());
    for _ in 0..2 {
        s.publish(T0, &publish("a", QoS::AtLeastOnce)).unwrap();
    }
    let _ = sent(&mut s, T0);
    assert!(matches!(
        feed(&mut s, T0, ack(PacketType::PubAck, 1)),
        Ok(Some(Event::Published { packet_id: 1, .. }))
    ));
    let topic = "sensor/0001/temp";
    let id = s
        .publish(T0, &publish(topic, QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let wire = sent(&mut s, T0);
    assert_eq!(topics_and_aliases(&wire), [(topic.into(), Some(2))]);
    assert_eq!(s.outgoing_topic(id), Some(topic));
    // The stored copy, whole: resent with its topic on a new connection.
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, secs(1));
    static PRESENT: [Property<'static>; 0] = [];
    let mut connack = connack(&PRESENT);
    if let v5::Packet::ConnAck(c) = &mut connack {
        c.session_present = true;
    }
    assert!(feed(&mut s, secs(1), connack).is_ok());
    let wire = sent(&mut s, secs(1));
    assert_eq!(
        topics_and_aliases(&wire),
        [("a".into(), None), (topic.into(), None)]
    );
}

#[test]
fn a_resubscribe_round_with_an_identifier_obeys_the_maximum_packet_size() {
    let mut s = persistent();
    let options = SubscriptionOptions::new(QoS::AtMostOnce);
    // 3.1.1 length of its SUBSCRIBE: 2 + 2 + (2 + 5 + 1) = 12, 13 with an
    // empty property list, 15 with the identifier: over a maximum of 14.
    let filter = [v5::Subscription {
        filter: "x/y/z",
        options,
    }];
    s.subscribe_v5(T0, &filter, Some(100)).unwrap();
    let _ = sent(&mut s, T0);
    s.connection_lost();
    s.connect_v5(T0, &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, T0);
    static SMALL: [Property<'static>; 1] = [Property::MaximumPacketSize(14)];
    let event = feed(&mut s, T0, connack(&SMALL)).unwrap();
    let Some(Event::Connected(info)) = event else {
        panic!("{event:?}")
    };
    assert_eq!(info.resubscribed, 0);
    assert!(sent(&mut s, T0).is_empty());
}

#[test]
fn a_resubscribe_list_over_the_maximum_packet_size_goes_in_pieces() {
    let mut s = persistent();
    let sub = |filter, qos| Subscription { filter, qos };
    let filters = [
        sub("a/1", QoS::AtMostOnce),
        sub("b/2", QoS::AtLeastOnce),
        sub("a/much/longer/filter/than/fits", QoS::AtMostOnce),
        sub("c/3", QoS::ExactlyOnce),
    ];
    s.subscribe(T0, &filters).unwrap();
    let _ = sent(&mut s, T0);
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, secs(1));
    // A SUBSCRIBE of one 3-byte filter is 11 bytes, of two 17: at most
    // two fit under 20; the 30-byte filter never does.
    static SMALL: [Property<'static>; 1] = [Property::MaximumPacketSize(20)];
    let event = feed(&mut s, secs(1), connack(&SMALL)).unwrap();
    let Some(Event::Connected(info)) = event else {
        panic!("{event:?}")
    };
    assert_eq!(info.resubscribed, 3);
    let mut rounds = Vec::new();
    // One round in flight per free request slot; each SUBACK frees one.
    for _ in 0..4 {
        for p in sent(&mut s, secs(1)) {
            let v5::Packet::Subscribe(sub) = p else {
                panic!("{p:?}")
            };
            assert!(p.encoded_len() <= 20, "{} bytes", p.encoded_len());
            let list: Vec<&str> = sub.filters.iter().map(|f| f.filter).collect();
            let codes: &'static [ReasonCode] = if list.len() == 2 {
                &[ReasonCode::Success, ReasonCode::GrantedQoS1]
            } else {
                &[ReasonCode::GrantedQoS2]
            };
            rounds.push(list.join(" "));
            let suback = v5::Packet::SubAck(v5::SubAck {
                packet_id: sub.packet_id,
                properties: Properties::EMPTY,
                reason_codes: ReasonCodes::new(codes),
            });
            assert!(matches!(
                feed(&mut s, secs(1), suback),
                Ok(Some(Event::Subscribed { .. }))
            ));
        }
    }
    assert_eq!(rounds, ["a/1 b/2", "c/3"]);
}

fn aliased(topic: &'static str, qos: QoS, id: Option<u16>, alias: u16) -> v5::Packet<'static> {
    let props: &'static [Property<'static>] = match alias {
        1 => &[Property::TopicAlias(1)],
        2 => &[Property::TopicAlias(2)],
        _ => &[Property::TopicAlias(3)],
    };
    v5::Packet::Publish(v5::Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        packet_id: id,
        properties: Properties::new(props),
        payload: b"p",
    })
}

fn message_topic(event: Result<Option<Event<'_>>, Closed>) -> std::string::String {
    match event {
        Ok(Some(Event::Message(m))) => m.topic.into(),
        other => panic!("{other:?}"),
    }
}

static TWO_ALIASES: [Property<'static>; 1] = [Property::TopicAliasMaximum(2)];

#[test]
fn the_brokers_topic_aliases_within_what_we_advertised() {
    let mut s = connected_with(&TWO_ALIASES, &[]);
    assert_eq!(
        message_topic(feed(&mut s, T0, aliased("a/b", QoS::AtMostOnce, None, 1))),
        "a/b"
    );
    assert_eq!(
        message_topic(feed(&mut s, T0, aliased("", QoS::AtMostOnce, None, 1))),
        "a/b"
    );
    // QoS 1 by alias alone: delivered and acknowledged.
    assert_eq!(
        message_topic(feed(&mut s, T0, aliased("", QoS::AtLeastOnce, Some(5), 1))),
        "a/b"
    );
    assert_eq!(sent(&mut s, T0), [v5::Packet::PubAck(v5::PubAck::new(5))]);
    // An alias set again stands for its new topic.
    assert_eq!(
        message_topic(feed(&mut s, T0, aliased("c", QoS::AtMostOnce, None, 1))),
        "c"
    );
    assert_eq!(
        message_topic(feed(&mut s, T0, aliased("", QoS::AtMostOnce, None, 1))),
        "c"
    );
    // Over the maximum we advertised.
    assert_eq!(
        feed(&mut s, T0, aliased("d", QoS::AtMostOnce, None, 3)),
        Err(Closed::Violation(ReasonCode::TopicAliasInvalid))
    );
    // An alias never set, alone: a protocol error (MQTT 5 §3.3.2.3.4).
    let mut s = connected_with(&TWO_ALIASES, &[]);
    assert_eq!(
        feed(&mut s, T0, aliased("", QoS::AtMostOnce, None, 2)),
        Err(Closed::Violation(ReasonCode::ProtocolError))
    );
    // Aliases end with their connection.
    let mut s = connected_with(&TWO_ALIASES, &[]);
    assert_eq!(
        message_topic(feed(&mut s, T0, aliased("a", QoS::AtMostOnce, None, 1))),
        "a"
    );
    s.connection_lost();
    s.connect_v5(T0, &connect(true, &TWO_ALIASES)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    assert_eq!(
        feed(&mut s, T0, aliased("", QoS::AtMostOnce, None, 1)),
        Err(Closed::Violation(ReasonCode::ProtocolError))
    );
}

#[test]
fn an_alias_whose_topic_could_not_be_kept_skips_its_messages() {
    // 8 bytes beside the CONNECT's reserve: "0123456789" does not fit.
    let hello = connect(true, &TWO_ALIASES);
    let arena = hello.encoded_len() + 8;
    let mut s: S = Session::new(leak(512), leak(arena), Timeouts::default());
    s.connect_v5(T0, &hello).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    assert_eq!(
        message_topic(feed(
            &mut s,
            T0,
            aliased("0123456789", QoS::AtMostOnce, None, 1)
        )),
        "0123456789"
    );
    let event = feed(&mut s, T0, aliased("", QoS::AtLeastOnce, Some(3), 1));
    assert!(
        matches!(
            event,
            Ok(Some(Event::Dropped(Dropped {
                topic: None,
                packet_id: Some(3),
                ..
            })))
        ),
        "{event:?}"
    );
    // Acknowledged all the same, so the broker does not send it again.
    assert_eq!(sent(&mut s, T0), [v5::Packet::PubAck(v5::PubAck::new(3))]);
}

#[cfg(feature = "streaming")]
#[test]
fn a_streamed_message_carries_its_properties_in_every_part() {
    // A 64-byte receive buffer: the header (with its properties) fits,
    // the 200-byte payload streams behind it.
    let mut s: S = Session::new(leak(64), leak(1536), Timeouts::default());
    s.set_options(Options {
        stream: true,
        ..Options::DEFAULT
    });
    s.connect_v5(T0, &connect(true, &[])).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    static PROPS: [Property<'static>; 2] = [
        Property::ContentType("image/png"),
        Property::UserProperty("part", "1"),
    ];
    let packet = v5::Packet::Publish(v5::Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "fw/img",
        packet_id: Some(4),
        properties: Properties::new(&PROPS),
        payload: &[9; 200],
    });
    let mut buf = vec![0u8; packet.encoded_len()];
    let n = packet.encode(&mut buf).unwrap();
    let (mut fed, mut parts, mut payload) = (0, Vec::new(), Vec::new());
    while fed < n {
        let space = s.receive_buffer();
        let k = space.len().min(n - fed);
        space[..k].copy_from_slice(&buf[fed..fed + k]);
        s.commit(k);
        fed += k;
        while let Some(event) = s.poll_event(T0) {
            let Event::Stream(stream) = event else {
                panic!("{event:?}");
            };
            assert_eq!(stream.topic, "fw/img");
            assert_eq!(stream.properties.content_type(), Some("image/png"));
            assert_eq!(
                stream.properties.user_properties().collect::<Vec<_>>(),
                [("part", "1")]
            );
            match stream.part {
                Part::Start => parts.push("start"),
                Part::Chunk { data, .. } => {
                    parts.push("chunk");
                    payload.extend_from_slice(data);
                }
                Part::End => parts.push("end"),
                Part::Aborted => parts.push("aborted"),
            }
        }
    }
    assert_eq!(parts.first(), Some(&"start"));
    assert_eq!(parts.last(), Some(&"end"));
    assert_eq!(payload, [9; 200]);
    assert_eq!(sent(&mut s, T0), [v5::Packet::PubAck(v5::PubAck::new(4))]);
}

/// Feeds `bytes` in pieces as the receive buffer takes them, stopping
/// after `until` bytes; the events, as (part, topic) for streams.
#[cfg(feature = "streaming")]
fn stream_parts(s: &mut S, bytes: &[u8], until: usize) -> Vec<(&'static str, std::string::String)> {
    let (mut fed, mut parts) = (0, Vec::new());
    while fed < until {
        let space = s.receive_buffer();
        let k = space.len().min(until - fed);
        space[..k].copy_from_slice(&bytes[fed..fed + k]);
        s.commit(k);
        fed += k;
        while let Some(event) = s.poll_event(T0) {
            let Event::Stream(stream) = event else {
                panic!("{event:?}");
            };
            assert_eq!(stream.properties.user_properties().count(), 1);
            let part = match stream.part {
                Part::Start => "start",
                Part::Chunk { .. } => "chunk",
                Part::End => "end",
                Part::Aborted => "aborted",
            };
            if parts.last().is_none_or(|(p, _)| *p != part) {
                parts.push((part, stream.topic.into()));
            }
        }
    }
    parts
}

#[cfg(feature = "streaming")]
#[test]
fn a_message_that_names_only_a_topic_alias_streams_under_its_topic() {
    let mut s: S = Session::new(leak(64), leak(1536), Timeouts::default());
    s.set_options(Options {
        stream: true,
        ..Options::DEFAULT
    });
    s.connect_v5(T0, &connect(true, &TWO_ALIASES)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    // A small message sets alias 2.
    assert_eq!(
        message_topic(feed(
            &mut s,
            T0,
            aliased("fw/img", QoS::AtMostOnce, None, 2)
        )),
        "fw/img"
    );
    static PROPS: [Property<'static>; 2] = [
        Property::TopicAlias(2),
        Property::UserProperty("image", "7"),
    ];
    let big = |id| {
        let packet = v5::Packet::Publish(v5::Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "",
            packet_id: Some(id),
            properties: Properties::new(&PROPS),
            payload: &[3; 300],
        });
        let mut buf = vec![0u8; packet.encoded_len()];
        let n = packet.encode(&mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    let topic = || std::string::String::from("fw/img");
    let first = big(5);
    assert_eq!(
        stream_parts(&mut s, &first, first.len()),
        [("start", topic()), ("chunk", topic()), ("end", topic())]
    );
    assert_eq!(sent(&mut s, T0), [v5::Packet::PubAck(v5::PubAck::new(5))]);
    // Cut short by the connection's end: the abort still names the topic.
    let second = big(6);
    assert_eq!(
        stream_parts(&mut s, &second, 200),
        [("start", topic()), ("chunk", topic())]
    );
    s.connection_lost();
    let aborted = s.poll_event(T0);
    assert!(
        matches!(aborted, Some(Event::Stream(ref st)) if st.part == Part::Aborted && st.topic == "fw/img"),
        "{aborted:?}"
    );
    // The next connection starts with no alias of the broker's.
    s.connect_v5(secs(1), &connect(true, &TWO_ALIASES)).unwrap();
    let _ = sent(&mut s, secs(1));
    assert!(feed(&mut s, secs(1), connack(&[])).is_ok());
    assert_eq!(
        feed(&mut s, secs(1), aliased("", QoS::AtMostOnce, None, 2)),
        Err(Closed::Violation(ReasonCode::ProtocolError))
    );
}

#[test]
fn aliases_of_messages_too_large_for_the_buffer() {
    // A 64-byte receive buffer.
    let mut s: S = Session::new(leak(64), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(true, &TWO_ALIASES)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    let big = |topic: &'static str, alias| {
        v5::Packet::Publish(v5::Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic,
            packet_id: Some(9),
            properties: Properties::new(match alias {
                1 => &[Property::TopicAlias(1)][..],
                _ => &[Property::TopicAlias(3)][..],
            }),
            payload: &[7; 100],
        })
    };
    // Skipped (no stream route in a bare session) but it sets alias 1.
    let mut buf = vec![0u8; 200];
    let n = big("big/topic", 1).encode(&mut buf).unwrap();
    let mut fed = 0;
    let mut dropped = 0;
    while fed < n {
        let space = s.receive_buffer();
        let k = space.len().min(n - fed);
        space[..k].copy_from_slice(&buf[fed..fed + k]);
        s.commit(k);
        fed += k;
        while let Some(event) = s.poll_event(T0) {
            assert!(matches!(event, Event::Dropped(_)), "{event:?}");
            dropped += 1;
        }
    }
    assert_eq!(dropped, 1);
    let _ = sent(&mut s, T0);
    assert_eq!(
        message_topic(feed(&mut s, T0, aliased("", QoS::AtMostOnce, None, 1))),
        "big/topic"
    );
    // One over our maximum, too large or not, ends the connection.
    let n = big("x", 3).encode(&mut buf).unwrap();
    let space = s.receive_buffer();
    space.copy_from_slice(&buf[..space.len()]);
    let k = space.len();
    s.commit(k);
    assert!(k < n);
    assert_eq!(
        s.poll_event(T0),
        Some(Event::Closed(Closed::Violation(
            ReasonCode::TopicAliasInvalid
        )))
    );
}

#[test]
fn an_alias_set_where_it_could_not_be_read_is_not_blamed_on_the_broker() {
    // 16 bytes: the 20-byte topic of the large message cannot be held.
    let mut s: S = Session::new(leak(16), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(true, &TWO_ALIASES)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    let large = v5::Packet::Publish(v5::Publish {
        properties: Properties::new(&[Property::TopicAlias(2)]),
        ..v5::Publish::new("a/rather/long/topic!", &[1; 30], QoS::AtMostOnce, false)
    });
    let mut buf = vec![0u8; 100];
    let n = large.encode(&mut buf).unwrap();
    let mut fed = 0;
    while fed < n {
        let space = s.receive_buffer();
        let k = space.len().min(n - fed);
        space[..k].copy_from_slice(&buf[fed..fed + k]);
        s.commit(k);
        fed += k;
        while let Some(event) = s.poll_event(T0) {
            assert!(matches!(event, Event::Dropped(_)), "{event:?}");
        }
    }
    // Alias 2 may stand for that topic: its message is skipped, not a
    // protocol error.
    let small = v5::Packet::Publish(v5::Publish {
        properties: Properties::new(&[Property::TopicAlias(2)]),
        ..v5::Publish::new("", b"", QoS::AtMostOnce, false)
    });
    let event = feed(&mut s, T0, small);
    assert!(matches!(event, Ok(Some(Event::Dropped(_)))), "{event:?}");
    assert_eq!(s.state(), State::Connected);
}

/// Feeds `bytes` one at a time, collecting the events; stops at Closed.
fn trickle(s: &mut S, bytes: &[u8]) -> Vec<std::string::String> {
    let mut seen = Vec::new();
    for &b in bytes {
        s.receive_buffer()[0] = b;
        s.commit(1);
        while let Some(event) = s.poll_event(T0) {
            let closed = matches!(event, Event::Closed(_));
            seen.push(std::format!("{event:?}"));
            if closed {
                return seen;
            }
        }
    }
    seen
}

#[test]
fn oversized_alias_only_messages_arriving_a_byte_at_a_time() {
    let mut s: S = Session::new(leak(24), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(true, &TWO_ALIASES)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    // Alias 1 set by a message that fits.
    assert_eq!(
        message_topic(feed(&mut s, T0, aliased("t", QoS::AtMostOnce, None, 1))),
        "t"
    );
    // Too large, alias 1 alone, QoS 1: skipped and acknowledged.
    let big = v5::Packet::Publish(v5::Publish {
        properties: Properties::new(&[Property::TopicAlias(1)]),
        packet_id: Some(4),
        ..v5::Publish::new("", &[5; 40], QoS::AtLeastOnce, false)
    });
    let mut buf = vec![0u8; 64];
    let n = big.encode(&mut buf).unwrap();
    let seen = trickle(&mut s, &buf[..n]);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("Dropped"), "{seen:?}");
    assert_eq!(sent(&mut s, T0), [v5::Packet::PubAck(v5::PubAck::new(4))]);
    // Packet id 0 in one: malformed.
    let mut zero = buf[..n].to_vec();
    zero[4] = 0;
    zero[5] = 0;
    let seen = trickle(&mut s, &zero);
    assert!(
        seen.last().is_some_and(|e| e.contains("PacketId")),
        "{seen:?}"
    );
}

#[test]
fn oversized_messages_with_broken_properties_are_malformed() {
    let mut s: S = Session::new(leak(24), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(true, &TWO_ALIASES)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    // QoS 0, topic "t", a property list of 3 bytes holding an unknown
    // property (0x7f), then 40 bytes of payload.
    let mut bytes = vec![0x30, 49, 0x00, 0x01, b't', 0x03, 0x7f, 0x00, 0x00];
    bytes.extend_from_slice(&[0; 40]);
    let seen = trickle(&mut s, &bytes);
    assert!(
        seen.last().is_some_and(|e| e.contains("Malformed")),
        "{seen:?}"
    );
    // A property length that is not a Variable Byte Integer.
    let mut s: S = Session::new(leak(24), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(true, &TWO_ALIASES)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    let mut bytes = vec![0x30, 49, 0x00, 0x01, b't', 0x80, 0x80, 0x80, 0x80, 0x01];
    bytes.extend_from_slice(&[0; 40]);
    let seen = trickle(&mut s, &bytes);
    assert!(
        seen.last().is_some_and(|e| e.contains("Malformed")),
        "{seen:?}"
    );
}

#[test]
fn an_oversized_message_without_alias_or_topic_is_a_protocol_error() {
    let mut s: S = Session::new(leak(24), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(true, &TWO_ALIASES)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    // Empty topic, empty property list, 40 bytes of payload.
    let mut bytes = vec![0x30, 43, 0x00, 0x00, 0x00];
    bytes.extend_from_slice(&[0; 40]);
    let seen = trickle(&mut s, &bytes);
    assert!(
        seen.last().is_some_and(|e| e.contains("ProtocolError")),
        "{seen:?}"
    );
}

#[test]
fn more_refusals_on_mqtt_5() {
    let mut s = connected();
    // One connection at a time.
    assert_eq!(
        s.connect_v5(T0, &connect(true, &[])),
        Err(SessionError::Usage(UsageError::AlreadyConnected))
    );
    // A Subscription Identifier is the broker's to put in a PUBLISH.
    static SUB_ID: [Property<'static>; 1] = [Property::SubscriptionIdentifier(4)];
    assert_eq!(
        s.publish_with(
            T0,
            &publish("t", QoS::AtMostOnce),
            &Properties::new(&SUB_ID)
        ),
        Err(unsupported(Unsupported::SubscriptionIdentifier))
    );
    // An AUTH that does not fit the arena.
    let mut s: S = Session::new(leak(512), leak(40), Timeouts::default());
    s.connect_v5(T0, &connect(true, &METHOD)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&METHOD)).is_ok());
    static BIG: [Property<'static>; 2] = [
        Property::AuthenticationMethod("M"),
        Property::AuthenticationData(&[0; 60]),
    ];
    let reauth = v5::Auth {
        reason_code: ReasonCode::ReAuthenticate,
        properties: Properties::new(&BIG),
    };
    assert!(matches!(
        s.auth(T0, &reauth),
        Err(SessionError::Resource(
            ResourceError::TransmitBufferTooSmall { .. }
        ))
    ));
}

// A build with both versions.
#[cfg(feature = "v3")]
#[test]
fn a_3_1_1_connection_refuses_a_subscription_identifier() {
    let mut s = session();
    s.connect(T0, &Connect::new("c")).unwrap();
    let n = s.poll_transmit(T0).len();
    s.handle_transmit(T0, n);
    let ack = codec::Packet::ConnAck(ConnAck {
        session_present: false,
        return_code: ConnectReturnCode::Accepted,
    });
    let n = ack.encode(s.receive_buffer()).unwrap();
    s.commit(n);
    assert!(matches!(s.poll_event(T0), Some(Event::Connected(_))));
    let plain = [v5::Subscription {
        filter: "a",
        options: SubscriptionOptions::new(QoS::AtMostOnce),
    }];
    assert_eq!(
        s.subscribe_v5(T0, &plain, Some(3)),
        Err(unsupported(Unsupported::Mqtt5Only))
    );
}

#[test]
fn a_qos_2_message_past_pubrec_is_released_whatever_the_new_maximum() {
    let mut s = persistent();
    let id = s
        .publish(T0, &Publish::new("t", &[1; 40], QoS::ExactlyOnce, false))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    let rec = v5::Packet::PubRec(v5::PubRec::new(id));
    assert_eq!(feed(&mut s, T0, rec), Ok(None));
    let _ = sent(&mut s, T0);
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, secs(1));
    static SMALL: [Property<'static>; 1] = [Property::MaximumPacketSize(30)];
    let present = v5::Packet::ConnAck(v5::ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: Properties::new(&SMALL),
    });
    let event = feed(&mut s, secs(1), present).unwrap();
    assert!(
        matches!(event, Some(Event::Connected(c)) if c.resent == 1),
        "{event:?}"
    );
    // Its PUBREL is 4 bytes: it goes, although the PUBLISH would not.
    assert_eq!(
        sent(&mut s, secs(1)),
        [v5::Packet::PubRel(v5::PubRel::new(id))]
    );
}

/// Feeds `bytes` a buffer's worth at a time; the events, as text.
fn pour(s: &mut S, bytes: &[u8]) -> Vec<std::string::String> {
    let mut seen = Vec::new();
    let mut fed = 0;
    while fed < bytes.len() {
        let space = s.receive_buffer();
        let k = space.len().min(bytes.len() - fed);
        space[..k].copy_from_slice(&bytes[fed..fed + k]);
        s.commit(k);
        fed += k;
        while let Some(event) = s.poll_event(T0) {
            seen.push(std::format!("{event:?}"));
        }
    }
    seen
}

#[test]
fn oversized_headers_that_do_not_fit_the_buffer() {
    // 24 bytes of receive buffer.
    let new = |props: &'static [Property<'static>]| {
        let mut s: S = Session::new(leak(24), leak(1536), Timeouts::default());
        s.connect_v5(T0, &connect(true, props)).unwrap();
        let _ = sent(&mut s, T0);
        assert!(feed(&mut s, T0, connack(&[])).is_ok());
        s
    };
    let encode = |p: v5::Publish<'_>| {
        let mut buf = vec![0u8; 200];
        let n = v5::Packet::Publish(p).encode(&mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    // Topic and packet id end exactly at the buffer's end: nothing of the
    // properties can be held.
    let exact = encode(v5::Publish {
        packet_id: Some(1),
        ..v5::Publish::new("0123456789abcdefxy", &[2; 40], QoS::AtLeastOnce, false)
    });
    let mut s = new(&[]);
    let seen = pour(&mut s, &exact);
    assert!(
        seen.len() == 1 && seen[0].starts_with("Dropped"),
        "{seen:?}"
    );
    // A short topic, properties too long to hold: no aliases advertised,
    // so nothing is uncertain; with aliases, an unknown one later is not
    // blamed on the broker.
    static LONG: [Property<'static>; 1] = [Property::UserProperty("k", "a-value-too-long-to-hold")];
    let long = encode(v5::Publish {
        properties: Properties::new(&LONG),
        ..v5::Publish::new("t", &[2; 10], QoS::AtMostOnce, false)
    });
    let mut s = new(&[]);
    let seen = pour(&mut s, &long);
    assert!(
        seen.len() == 1 && seen[0].starts_with("Dropped"),
        "{seen:?}"
    );
    let mut s = new(&TWO_ALIASES);
    let seen = pour(&mut s, &long);
    assert!(
        seen.len() == 1 && seen[0].starts_with("Dropped"),
        "{seen:?}"
    );
    let event = feed(&mut s, T0, aliased("", QoS::AtMostOnce, None, 2));
    assert!(matches!(event, Ok(Some(Event::Dropped(_)))), "{event:?}");
    // The smallest buffer holds an alias-only message's packet id, not
    // its properties.
    let mut s: S = Session::new(leak(8), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(true, &TWO_ALIASES)).unwrap();
    let _ = sent(&mut s, T0);
    let ack = encode_connack();
    let seen = pour(&mut s, &ack);
    assert!(seen.iter().any(|e| e.starts_with("Connected")), "{seen:?}");
    let tiny = encode(v5::Publish {
        properties: Properties::new(&[Property::TopicAlias(1)]),
        packet_id: Some(3),
        ..v5::Publish::new("", &[1; 8], QoS::AtLeastOnce, false)
    });
    let seen = pour(&mut s, &tiny);
    assert!(
        seen.len() == 1 && seen[0].starts_with("Dropped"),
        "{seen:?}"
    );
}

fn encode_connack() -> Vec<u8> {
    let mut buf = vec![0u8; 16];
    let n = connack(&[]).encode(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn compaction_skips_aliases_whose_topic_was_not_kept() {
    // 12 store bytes.
    let mut s: S = Session::new(leak(512), leak(524), Timeouts::default());
    s.connect_v5(T0, &connect(true, &TWO_ALIASES)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    // Alias 1 kept ("ab"), alias 2 not (13 bytes).
    assert_eq!(
        message_topic(feed(&mut s, T0, aliased("ab", QoS::AtMostOnce, None, 1))),
        "ab"
    );
    assert_eq!(
        message_topic(feed(
            &mut s,
            T0,
            aliased("0123456789abc", QoS::AtMostOnce, None, 2)
        )),
        "0123456789abc"
    );
    // Alias 1 set again: its old topic becomes garbage, and keeping the
    // new one (10 bytes) needs a compaction past alias 2's empty entry.
    assert_eq!(
        message_topic(feed(
            &mut s,
            T0,
            aliased("0123456789", QoS::AtMostOnce, None, 1)
        )),
        "0123456789"
    );
    assert_eq!(
        message_topic(feed(&mut s, T0, aliased("", QoS::AtMostOnce, None, 1))),
        "0123456789"
    );
}

#[test]
fn a_resubscribe_split_counts_the_remaining_length_varint() {
    let mut s = persistent();
    let a = "a".repeat(60);
    let b = "b".repeat(59);
    let filters = [
        Subscription {
            filter: &a,
            qos: QoS::AtMostOnce,
        },
        Subscription {
            filter: &b,
            qos: QoS::AtMostOnce,
        },
    ];
    s.subscribe(T0, &filters).unwrap();
    let _ = sent(&mut s, T0);
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, secs(1));
    static MAX: [Property<'static>; 1] = [Property::MaximumPacketSize(130)];
    let event = feed(&mut s, secs(1), connack(&MAX)).unwrap();
    assert!(matches!(event, Some(Event::Connected(_))));
    for p in sent(&mut s, secs(1)) {
        assert!(
            p.encoded_len() <= 130,
            "SUBSCRIBE of {} bytes over the broker's 130",
            p.encoded_len()
        );
    }
}

#[cfg(feature = "streaming")]
#[test]
fn a_streamed_resend_waits_until_a_streamed_qos0_message_before_it_is_reported() {
    let mut s = persistent();
    assert_eq!(
        s.publish(T0, &publish("r/1", QoS::AtLeastOnce)),
        Ok(Some(1))
    );
    let _ = sent(&mut s, T0);
    let head = Publish::new("r/2", &[], QoS::AtLeastOnce, false);
    assert_eq!(s.publish_streamed(T0, &head, 10), Ok(Some(2)));
    let n = s.poll_transmit(T0).len();
    s.handle_transmit(T0, n);
    s.handle_payload(T0, 10);
    static ONE: [Property<'static>; 1] = [Property::ReceiveMaximum(1)];
    resume_with(&mut s, &ONE);
    // R1 resent; R2 waits for the quota.
    assert_eq!(publishes_and_rels(&sent(&mut s, secs(1))), [(1, false)]);
    // A streamed QoS 0 message and a plain one behind it.
    let p0 = Publish::new("p/0", &[], QoS::AtMostOnce, false);
    assert_eq!(s.publish_streamed(secs(1), &p0, 100), Ok(None));
    assert_eq!(
        s.publish(secs(1), &publish("p/1", QoS::AtMostOnce)),
        Ok(None)
    );
    // The PUBACK of R1 is read before anything of P0 is written.
    assert!(matches!(
        feed(&mut s, secs(1), ack(PacketType::PubAck, 1)),
        Ok(Some(Event::Published { packet_id: 1, .. }))
    ));
    let n = s.poll_transmit(secs(1)).len();
    s.handle_transmit(secs(1), n);
    s.handle_payload(secs(1), 100);
    // R2's head waits until P0, whose head is held, is reported: the
    // session tells where one streamed head ends, not two.
    let n = s.poll_transmit(secs(1)).len();
    s.handle_transmit(secs(1), n);
    assert!(s.payload_due().is_none());
    let mut reported = Vec::new();
    while let Some(t) = s.poll_sent() {
        reported.push(std::string::String::from(t));
    }
    assert_eq!(reported, ["p/0", "p/1"]);
    let n = s.poll_transmit(secs(1)).len();
    s.handle_transmit(secs(1), n);
    assert_eq!(s.payload_due().map(|d| d.packet_id), Some(Some(2)));
    s.handle_payload(secs(1), 10);
    let lost = reported.len() < 2;
    // Consequence: every byte written from now on stays held.
    let _ = s.poll_transmit(secs(1));
    let mut t = 2;
    loop {
        s.ping(secs(t)).unwrap();
        let n = s.poll_transmit(secs(t)).len();
        if n == 0 {
            break;
        }
        s.handle_transmit(secs(t), n);
        let ev = feed(&mut s, secs(t), v5::Packet::PingResp).map(|e| std::format!("{e:?}"));
        if !matches!(ev.as_deref(), Ok("Some(Pong)")) {
            panic!(
                "lost report: {reported:?}; after {} PINGREQs written the PINGRESP gives {ev:?}",
                t - 2
            );
        }
        t += 1;
        if t > 2000 {
            break;
        }
    }
    assert!(
        !lost && t > 2000,
        "lost report: {reported:?}; PINGREQ no longer queued after {} pings",
        t - 2
    );
}

#[test]
fn resubscribe_rounds_beyond_the_request_slots_leave_nothing_to_spin_on() {
    type S1 = Session<'static, 1, 4>;
    fn feed1(s: &mut S1, p: v5::Packet<'_>) -> std::string::String {
        let mut buf = vec![0u8; p.encoded_len()];
        let n = p.encode(&mut buf).unwrap();
        let space = s.receive_buffer();
        space[..n].copy_from_slice(&buf[..n]);
        s.commit(n);
        std::format!("{:?}", s.poll_event(T0))
    }
    fn drain(s: &mut S1) -> usize {
        let mut total = 0;
        loop {
            let n = s.poll_transmit(T0).len();
            if n == 0 {
                return total;
            }
            s.handle_transmit(T0, n);
            total += n;
        }
    }
    let mut s: S1 = Session::new(leak(512), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(false, &KEPT)).unwrap();
    drain(&mut s);
    feed1(&mut s, connack(&[]));
    let sub = |filter, qos| Subscription { filter, qos };
    s.subscribe(
        T0,
        &[sub("a/1", QoS::AtMostOnce), sub("b/2", QoS::AtMostOnce)],
    )
    .unwrap();
    drain(&mut s);
    s.connection_lost();
    s.connect_v5(T0, &connect(false, &KEPT)).unwrap();
    drain(&mut s);
    // One 3-byte filter per SUBSCRIBE (11 bytes); two do not fit.
    static SMALL: [Property<'static>; 1] = [Property::MaximumPacketSize(12)];
    let ev = feed1(&mut s, connack(&SMALL));
    assert!(ev.contains("Connected"), "{ev}");
    assert!(drain(&mut s) > 0, "first round");
    // Second round waits for the request slot: nothing to write, yet...
    assert_eq!(drain(&mut s), 0);
    assert!(
        s.transmit_idle(),
        "is_resending {} with nothing it can queue: a driver spins",
        s.is_resending()
    );
}

#[test]
fn a_goodbye_replaces_acknowledgements_not_yet_started() {
    let mut s = connected();
    // A QoS 1 message, then a malformed PUBACK, in one read.
    let p = incoming(QoS::AtLeastOnce, Some(7), &[]);
    let mut bytes = vec![0u8; p.encoded_len()];
    let n = p.encode(&mut bytes).unwrap();
    bytes.truncate(n);
    bytes.extend_from_slice(&[0x40, 0x01, 0x00]);
    assert!(matches!(
        feed_bytes(&mut s, T0, &bytes),
        Ok(Some(Event::Message(_)))
    ));
    // Consuming the message queued its PUBACK; nothing is written yet.
    assert!(matches!(
        s.poll_event(T0),
        Some(Event::Closed(Closed::Malformed(_)))
    ));
    // The PUBACK goes with the connection (the message comes again); the
    // broker is told why.
    let wire = sent(&mut s, T0);
    assert!(
        matches!(
            wire.as_slice(),
            [v5::Packet::Disconnect(d)] if d.reason_code == ReasonCode::MalformedPacket
        ),
        "{wire:?}"
    );
}

#[test]
fn no_goodbye_after_part_of_a_packet() {
    let mut s = connected();
    let body = [1u8; 60];
    s.publish(T0, &Publish::new("t", &body, QoS::AtLeastOnce, false))
        .unwrap();
    let n = s.poll_transmit(T0).len();
    s.handle_transmit(T0, n / 2);
    assert!(matches!(
        feed_bytes(&mut s, T0, &[0x40, 0x01, 0x00]),
        Err(Closed::Malformed(_))
    ));
    let rest = s.poll_transmit(T0).to_vec();
    assert!(
        rest.is_empty(),
        "after {} of {n} bytes of a PUBLISH the wire gets {rest:02x?}",
        n / 2
    );
}

#[test]
fn a_brokers_topic_alias_does_not_take_the_room_of_a_resubscription() {
    // 200 arena bytes; we advertise two Topic Aliases.
    let hello = connect(false, &TWO_ALIASES);
    let mut s: S = Session::new(leak(512), leak(200), Timeouts::default());
    s.connect_v5(T0, &hello).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    let filter = "f".repeat(20);
    s.subscribe(
        T0,
        &[Subscription {
            filter: &filter,
            qos: QoS::AtMostOnce,
        }],
    )
    .unwrap();
    let _ = sent(&mut s, T0);
    // Reconnect: the broker has no session, the filter is re-subscribed.
    s.connection_lost();
    s.connect_v5(secs(1), &hello).unwrap();
    let _ = sent(&mut s, secs(1));
    let reserve = hello.encoded_len();
    // CONNACK and a message setting broker alias 1 arrive in one read;
    // the driver polls events until `None`, then transmits.
    let topic: &'static str = Box::leak("t".repeat(200 - reserve - 20).into_boxed_str());
    let mut bytes = encode_connack();
    let p = aliased(topic, QoS::AtMostOnce, None, 1);
    let mut buf = vec![0u8; p.encoded_len()];
    let n = p.encode(&mut buf).unwrap();
    bytes.extend_from_slice(&buf[..n]);
    assert!(matches!(
        feed_bytes(&mut s, secs(1), &bytes),
        Ok(Some(Event::Connected(_)))
    ));
    assert_eq!(message_topic(Ok(s.poll_event(secs(1)))), topic);
    assert!(s.poll_event(secs(1)).is_none());
    // The alias's topic was not kept (its messages by the alias alone are
    // skipped): the re-SUBSCRIBE goes out, and nothing waits after it.
    let wire = sent(&mut s, secs(1));
    assert!(
        matches!(wire.as_slice(), [v5::Packet::Subscribe(_)]),
        "{wire:?}: is_resending {} (transmit_idle {})",
        s.is_resending(),
        s.transmit_idle()
    );
    assert!(!s.is_resending());
    assert!(s.transmit_idle());
    assert!(s.publish(secs(1), &publish("x", QoS::AtMostOnce)).is_ok());
}

#[test]
fn a_resubscription_with_an_identifier_keeps_its_copy() {
    let hello = connect(false, &KEPT);
    let mut s: S = Session::new(leak(512), leak(300), Timeouts::default());
    s.connect_v5(T0, &hello).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    let filter = "a".repeat(20);
    let sub = [v5::Subscription {
        filter: &filter,
        options: SubscriptionOptions::new(QoS::AtMostOnce),
    }];
    // No SUBACK comes on this connection: the filter stays unconfirmed.
    s.subscribe_v5(T0, &sub, Some(268_435_455)).unwrap();
    let _ = sent(&mut s, T0);
    // The largest QoS 1 message the session accepts beside it.
    let payload: &'static [u8] = Box::leak(vec![7u8; 300].into_boxed_slice());
    let accepted = (0..300).rev().find(|&k| {
        s.publish(
            T0,
            &Publish::new("m", &payload[..k], QoS::AtLeastOnce, false),
        )
        .is_ok()
    });
    assert!(accepted.is_some());
    let _ = sent(&mut s, T0);
    resume_with(&mut s, &[]);
    let wire = sent(&mut s, secs(1));
    let id = wire
        .iter()
        .find_map(|p| match p {
            v5::Packet::Subscribe(sub) => Some(sub.packet_id),
            _ => None,
        })
        .expect("re-SUBSCRIBE");
    let ack = v5::Packet::SubAck(v5::SubAck {
        packet_id: id,
        properties: Properties::EMPTY,
        reason_codes: ReasonCodes::new(&[ReasonCode::GRANTED_QOS_0]),
    });
    let event = feed(&mut s, secs(1), ack);
    assert!(
        matches!(event, Ok(Some(Event::Subscribed { .. }))),
        "the SUBACK of the re-SUBSCRIBE matched nothing: {event:?}"
    );
    assert!(s.p.store.subscriptions[0].confirmed);
}

/// MQTT-4.8.2-1, MQTT-4.8.2-2: a shared subscription's filter is
/// `$share/`, a non-empty ShareName without wildcards, `/` and a filter;
/// anything else is refused before it is queued, for SUBSCRIBE and
/// UNSUBSCRIBE alike.
#[test]
fn malformed_shared_subscriptions_are_refused() {
    let mut s = connected();
    let bad = UsageError::Encode(crate::codec::EncodeError::TopicFilter(
        crate::topic::TopicError::SharedSubscription,
    ));
    for filter in [
        "$share//a",
        "$share/g",
        "$share/g/",
        "$share/+/a",
        "$share/#",
    ] {
        let sub = [Subscription {
            filter,
            qos: QoS::AtMostOnce,
        }];
        assert_eq!(
            s.subscribe(T0, &sub),
            Err(SessionError::Usage(bad)),
            "{filter}"
        );
        assert_eq!(
            s.unsubscribe(T0, &[filter]),
            Err(SessionError::Usage(bad)),
            "{filter}"
        );
    }
    assert!(sent(&mut s, T0).is_empty());
    let sub = [Subscription {
        filter: "$share/g/a/#",
        qos: QoS::AtMostOnce,
    }];
    s.subscribe(T0, &sub).unwrap();
    assert!(matches!(sent(&mut s, T0)[..], [v5::Packet::Subscribe(_)]));
}

/// MQTT-3.2.2-11, MQTT-3.2.2-14: the broker kept the session but now
/// takes at most QoS 1 and no retained messages. A QoS 2 PUBLISH and a
/// retained one can never be resent: they are discarded and reported; a
/// plain QoS 1 one is resent, and so is the PUBREL of a QoS 2 message
/// past PUBREC (its PUBLISH went out under the old limits).
#[test]
fn resends_keep_to_a_lower_maximum_qos_and_no_retain() {
    let mut s = persistent();
    let released = s
        .publish(T0, &publish("t", QoS::ExactlyOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, ack(PacketType::PubRec, released)).is_ok());
    let qos2 = s
        .publish(T0, &publish("t", QoS::ExactlyOnce))
        .unwrap()
        .unwrap();
    let retained = s
        .publish(T0, &Publish::new("r", b"x", QoS::AtLeastOnce, true))
        .unwrap()
        .unwrap();
    let plain = s
        .publish(T0, &publish("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, secs(1));
    static LIMITED: [Property<'static>; 2] =
        [Property::MaximumQoS(1), Property::RetainAvailable(0)];
    let present = v5::Packet::ConnAck(v5::ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: Properties::new(&LIMITED),
    });
    let event = feed(&mut s, secs(1), present).unwrap();
    let Some(Event::Connected(info)) = event else {
        panic!("{event:?}")
    };
    assert_eq!(info.resent, 2);
    let mut discarded = Vec::new();
    while let Some(event) = s.poll_event(secs(1)) {
        match event {
            Event::Discarded { packet_id, .. } => discarded.push(packet_id),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(discarded, [qos2, retained]);
    let wire = sent(&mut s, secs(1));
    assert_eq!(
        publishes_and_rels(&wire),
        [(released, true), (plain, false)]
    );
    assert!(
        wire.iter()
            .all(|p| !matches!(p, v5::Packet::Publish(p) if p.qos == QoS::ExactlyOnce || p.retain)),
        "{wire:?}"
    );
}

/// §3.2.2.3.11 to .13: after a reconnect, the re-SUBSCRIBE leaves out
/// what the new CONNACK says the broker does not take (a wildcard, a
/// shared subscription, a Subscription Identifier), and sends the rest.
#[test]
fn the_resubscription_keeps_to_what_the_broker_takes() {
    let mut s = persistent();
    let sub = |filter| v5::Subscription {
        filter,
        options: SubscriptionOptions::new(QoS::AtLeastOnce),
    };
    s.subscribe_v5(T0, &[sub("plain/id")], Some(7)).unwrap();
    s.subscribe_v5(T0, &[sub("a/#"), sub("$share/g/b"), sub("c")], None)
        .unwrap();
    let _ = sent(&mut s, T0);
    // No SUBACK: all four are re-sent after a reconnect, unless refused.
    s.connection_lost();
    s.connect_v5(secs(1), &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, secs(1));
    static NONE: [Property<'static>; 3] = [
        Property::WildcardSubscriptionAvailable(0),
        Property::SharedSubscriptionAvailable(0),
        Property::SubscriptionIdentifierAvailable(0),
    ];
    let event = feed(&mut s, secs(1), connack(&NONE)).unwrap();
    let Some(Event::Connected(info)) = event else {
        panic!("{event:?}")
    };
    assert_eq!(info.resubscribed, 1);
    while s.poll_event(secs(1)).is_some() {}
    let wire = sent(&mut s, secs(1));
    let [v5::Packet::Subscribe(subscribe)] = wire.as_slice() else {
        panic!("{wire:?}")
    };
    let filters: Vec<_> = subscribe.filters.iter().map(|s| s.filter).collect();
    assert_eq!(filters, ["c"]);
    assert_eq!(subscribe.properties.subscription_identifiers().count(), 0);
}

/// MQTT-4.12.0-5, MQTT-4.12.0-6: every AUTH and a successful CONNACK name
/// the CONNECT's Authentication Method, and none is named when the CONNECT
/// had none; once connected, the broker's AUTH only answers a
/// re-authentication of ours. Anything else is a Protocol Error.
#[test]
fn the_broker_keeps_to_our_authentication_method() {
    static OTHER: [Property<'static>; 1] = [Property::AuthenticationMethod("OTHER")];
    let violation = Err(Closed::Violation(ReasonCode::ProtocolError));
    // CONNACKs.
    for (ours, theirs) in [(&[][..], &METHOD[..]), (&METHOD, &[]), (&METHOD, &OTHER)] {
        let mut s = session();
        let ours: &'static [Property<'static>] = ours;
        s.connect_v5(T0, &connect(true, ours)).unwrap();
        let _ = sent(&mut s, T0);
        let theirs: &'static [Property<'static>] = theirs;
        assert_eq!(
            feed(&mut s, T0, connack(theirs)).map(|_| ()),
            violation,
            "{theirs:?}"
        );
    }
    // AUTH while connecting, with another method or without one (which
    // the codec refuses, §3.15.2.2.2).
    let mut s = session();
    s.connect_v5(T0, &connect(true, &METHOD)).unwrap();
    let _ = sent(&mut s, T0);
    let auth = auth_packet(ReasonCode::ContinueAuthentication, &OTHER);
    assert_eq!(feed(&mut s, T0, auth).map(|_| ()), violation);
    let mut s = session();
    s.connect_v5(T0, &connect(true, &METHOD)).unwrap();
    let _ = sent(&mut s, T0);
    assert_eq!(
        feed_bytes(&mut s, T0, &[0xf0, 0x02, 0x18, 0x00]).map(|_| ()),
        Err(Closed::Malformed(
            crate::codec::Malformed::AuthenticationMethod
        ))
    );
    // Connected, with no re-authentication under way.
    let mut s = connected_with(&METHOD, &METHOD);
    let auth = auth_packet(ReasonCode::ContinueAuthentication, &METHOD);
    assert_eq!(feed(&mut s, T0, auth).map(|_| ()), violation);
}

/// MQTT-3.1.2-29: with Request Problem Information 0, a Reason String or
/// User Property is a Protocol Error on anything but PUBLISH, CONNACK and
/// DISCONNECT; with 1 (the default) it is taken.
#[test]
fn no_problem_information_unless_asked_for() {
    static NO_PROBLEMS: [Property<'static>; 1] = [Property::RequestProblemInformation(0)];
    static WHY: [Property<'static>; 1] = [Property::ReasonString("why")];
    static USER: [Property<'static>; 1] = [Property::UserProperty("k", "v")];
    let puback = |packet_id, props: &'static [Property<'static>]| {
        v5::Packet::PubAck(v5::PubAck {
            packet_id,
            reason_code: ReasonCode::Success,
            properties: Properties::new(props),
        })
    };
    for props in [&WHY[..], &USER] {
        let mut s = connected_with(&NO_PROBLEMS, &WHY);
        // PUBLISH may carry them.
        assert!(matches!(
            feed(&mut s, T0, incoming(QoS::AtMostOnce, None, &USER)),
            Ok(Some(Event::Message(_)))
        ));
        let id = s
            .publish(T0, &publish("t", QoS::AtLeastOnce))
            .unwrap()
            .unwrap();
        let _ = sent(&mut s, T0);
        assert_eq!(
            feed(&mut s, T0, puback(id, props)).map(|_| ()),
            Err(Closed::Violation(ReasonCode::ProtocolError)),
            "{props:?}"
        );
    }
    let mut s = connected();
    let id = s
        .publish(T0, &publish("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    assert!(matches!(
        feed(&mut s, T0, puback(id, &WHY)),
        Ok(Some(Event::Published { .. }))
    ));
}

/// MQTT-3.3.4-9: a QoS 1 message too large for the receive buffer counts
/// against the Receive Maximum we advertised like one that fits: over it,
/// the connection ends with 0x93, whether the message would be skipped or
/// streamed.
#[test]
fn an_oversized_message_over_the_receive_maximum_is_a_violation() {
    static ONE: [Property<'static>; 1] = [Property::ReceiveMaximum(1)];
    for stream in [false, true] {
        if stream && !cfg!(feature = "streaming") {
            continue;
        }
        let mut s = connected_with(&ONE, &[]);
        let mut options = *s.options();
        options.stream = stream;
        s.set_options(options);
        assert!(matches!(
            feed(&mut s, T0, incoming(QoS::AtLeastOnce, Some(1), &[])),
            Ok(Some(Event::Message(_)))
        ));
        // Its PUBACK waits for the application.
        s.defer_ack().unwrap();
        let big = v5::Packet::Publish(v5::Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "t",
            packet_id: Some(2),
            properties: Properties::EMPTY,
            payload: &[7; 700],
        });
        let mut buf = vec![0u8; big.encoded_len()];
        let n = big.encode(&mut buf).unwrap();
        let seen = pour(&mut s, &buf[..n]);
        assert_eq!(
            seen.first().map(std::string::String::as_str),
            Some("Closed(Violation(ReceiveMaximumExceeded))"),
            "stream {stream}: {seen:?}"
        );
    }
}

/// A SUBACK or UNSUBACK too large for the receive buffer (a long Reason
/// String) still answers its request: its reason codes, its last bytes,
/// are read once its properties have passed, in whatever pieces the bytes
/// arrive.
#[test]
fn oversized_subacks_and_unsubacks_answer_their_requests() {
    static WHY: [Property<'static>; 1] = [Property::ReasonString(
        "not authorized to subscribe to this filter, and a long reason at that",
    )];
    let encode = |p: v5::Packet<'_>| {
        let mut buf = vec![0u8; p.encoded_len()];
        let n = p.encode(&mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    let new = |rpi: &'static [Property<'static>]| {
        let mut s: S = Session::new(leak(24), leak(1536), Timeouts::default());
        s.connect_v5(T0, &connect(true, rpi)).unwrap();
        let _ = sent(&mut s, T0);
        assert!(feed(&mut s, T0, connack(&[])).is_ok());
        s
    };
    let sub = |filter| v5::Subscription {
        filter,
        options: SubscriptionOptions::new(QoS::AtLeastOnce),
    };
    let codes = [ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized];
    for pieces in [true, false] {
        let mut s = new(&[]);
        let id = s
            .subscribe_v5(T0, &[sub("a/b"), sub("secret")], None)
            .unwrap();
        let _ = sent(&mut s, T0);
        // A stray one first: ignored, as one that fits is.
        let stray = encode(v5::Packet::SubAck(v5::SubAck {
            packet_id: id + 1,
            properties: Properties::new(&WHY),
            reason_codes: ReasonCodes::new(&codes),
        }));
        let mut bytes = stray;
        bytes.extend(encode(v5::Packet::SubAck(v5::SubAck {
            packet_id: id,
            properties: Properties::new(&WHY),
            reason_codes: ReasonCodes::new(&codes),
        })));
        assert!(bytes.len() > 2 * 24);
        let seen = if pieces {
            trickle(&mut s, &bytes)
        } else {
            pour(&mut s, &bytes)
        };
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].starts_with("Subscribed"), "{seen:?}");
        assert!(seen[0].contains("Failure"), "{seen:?}");
        assert!(!s.request_pending(id));
        assert_eq!(
            s.subscriptions().map(|(f, _)| f).collect::<Vec<_>>(),
            ["a/b"],
            "the refused filter is gone"
        );
        // An UNSUBACK, and a PINGRESP framed behind it.
        let id = s.unsubscribe(T0, &["a/b", "c"]).unwrap();
        let _ = sent(&mut s, T0);
        let unsuback = [ReasonCode::Success, ReasonCode::NoSubscriptionExisted];
        let mut bytes = encode(v5::Packet::UnsubAck(v5::UnsubAck {
            packet_id: id,
            properties: Properties::new(&WHY),
            reason_codes: ReasonCodes::new(&unsuback),
        }));
        bytes.extend(encode(v5::Packet::PingResp));
        let seen = if pieces {
            trickle(&mut s, &bytes)
        } else {
            pour(&mut s, &bytes)
        };
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen[0].starts_with("Unsubscribed"), "{seen:?}");
        assert_eq!(seen[1], "Pong");
        assert!(!s.request_pending(id));
    }
    // Codes that do not match the request end the connection, as when
    // the packet fits.
    let mut s = new(&[]);
    let id = s
        .subscribe_v5(T0, &[sub("a/b"), sub("secret")], None)
        .unwrap();
    let _ = sent(&mut s, T0);
    let short = encode(v5::Packet::SubAck(v5::SubAck {
        packet_id: id,
        properties: Properties::new(&WHY),
        reason_codes: ReasonCodes::new(&codes[..1]),
    }));
    let seen = pour(&mut s, &short);
    assert_eq!(seen.last().unwrap(), "Closed(Protocol(SubAck))");
    // With Request Problem Information 0, a Reason String there is a
    // Protocol Error (MQTT-3.1.2-29).
    static NO_PROBLEMS: [Property<'static>; 1] = [Property::RequestProblemInformation(0)];
    let mut s = new(&NO_PROBLEMS);
    let id = s
        .subscribe_v5(T0, &[sub("a/b"), sub("secret")], None)
        .unwrap();
    let _ = sent(&mut s, T0);
    let long = encode(v5::Packet::SubAck(v5::SubAck {
        packet_id: id,
        properties: Properties::new(&WHY),
        reason_codes: ReasonCodes::new(&codes),
    }));
    let seen = pour(&mut s, &long);
    assert_eq!(seen.last().unwrap(), "Closed(Violation(ProtocolError))");
    // Malformed as a whole one would be: a property list running past
    // the packet's end, no reason code at all.
    let mut past = long.clone();
    past[4] = 0x7f;
    let mut none = vec![0x90, 69, 0, 1, 66, 0x1f, 0, 63];
    none.extend_from_slice(&[b'x'; 63]);
    for (bytes, want) in [
        (past, "Closed(Malformed(PropertyLength))"),
        (none, "Closed(Malformed(NoFilters))"),
    ] {
        let mut s = new(&[]);
        let _ = s.subscribe_v5(T0, &[sub("a/b")], None).unwrap();
        let _ = sent(&mut s, T0);
        let seen = pour(&mut s, &bytes);
        assert_eq!(
            seen.last().map(std::string::String::as_str),
            Some(want),
            "{bytes:02x?}"
        );
    }
    // Before the CONNACK, a SUBACK is out of place however large; more
    // codes than the buffer holds are skipped with the packet.
    let mut s: S = Session::new(leak(24), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(true, &[])).unwrap();
    let _ = sent(&mut s, T0);
    assert_eq!(pour(&mut s, &long), ["Closed(Protocol(SubAck))"]);
    let mut s = new(&[]);
    let many = encode(v5::Packet::SubAck(v5::SubAck {
        packet_id: 9,
        properties: Properties::EMPTY,
        reason_codes: ReasonCodes::new(&[ReasonCode::GrantedQoS1; 30]),
    }));
    let seen = pour(&mut s, &many);
    assert!(
        seen.len() == 1 && seen[0].starts_with("Dropped"),
        "{seen:?}"
    );
    // One of no request is checked as a whole one is: a code SUBACK
    // cannot carry is malformed.
    let mut s = new(&[]);
    let mut bad = encode(v5::Packet::SubAck(v5::SubAck {
        packet_id: 9,
        properties: Properties::new(&WHY),
        reason_codes: ReasonCodes::new(&codes[..1]),
    }));
    *bad.last_mut().unwrap() = 0x03;
    assert_eq!(
        pour(&mut s, &bad).last().map(std::string::String::as_str),
        Some("Closed(Malformed(ReasonCode(3)))")
    );
}

/// A message whose topic is longer than the receive buffer is still
/// acknowledged (its packet id is read as it passes), and counts against
/// the Receive Maximum we advertised.
#[test]
fn a_topic_longer_than_the_buffer_on_mqtt_5() {
    let topic: &'static str = Box::leak("t".repeat(40).into_boxed_str());
    let long = |packet_id| {
        let p = v5::Packet::Publish(v5::Publish {
            packet_id: Some(packet_id),
            ..v5::Publish::new(topic, &[2; 10], QoS::AtLeastOnce, false)
        });
        let mut buf = vec![0u8; p.encoded_len()];
        let n = p.encode(&mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    let mut s: S = Session::new(leak(24), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(true, &[])).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    let seen = pour(&mut s, &long(5));
    assert!(
        seen.len() == 1 && seen[0].starts_with("Dropped"),
        "{seen:?}"
    );
    assert_eq!(sent(&mut s, T0), [ack(PacketType::PubAck, 5)]);
    // Over a Receive Maximum of 1, with the first PUBACK deferred.
    static ONE: [Property<'static>; 1] = [Property::ReceiveMaximum(1)];
    let mut s: S = Session::new(leak(24), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(true, &ONE)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::AtLeastOnce, Some(1), &[])),
        Ok(Some(Event::Message(_)))
    ));
    s.defer_ack().unwrap();
    let seen = pour(&mut s, &long(2));
    assert_eq!(
        seen.last().map(std::string::String::as_str),
        Some("Closed(Violation(ReceiveMaximumExceeded))"),
        "{seen:?}"
    );
}

/// An MQTT 5 acknowledgement may be long (a Reason String): one too large
/// to buffer still says its packet id and reason code first, and the
/// handshake goes on without its properties (MQTT-4.3.3-4, -11). A
/// PINGRESP has no body in either version: a large one is malformed.
#[test]
fn oversized_acknowledgements_on_mqtt_5() {
    let small = || {
        let mut s: S = Session::new(leak(24), leak(1536), Timeouts::default());
        s.connect_v5(T0, &connect(true, &[])).unwrap();
        let _ = sent(&mut s, T0);
        assert!(feed(&mut s, T0, connack(&[])).is_ok());
        s
    };
    static WHY: [Property<'static>; 1] =
        [Property::ReasonString("a reason longer than the buffer")];
    let long = |packet: v5::Packet<'_>| {
        let mut buf = vec![0u8; packet.encoded_len()];
        let n = packet.encode(&mut buf).unwrap();
        assert!(n > 24);
        buf.truncate(n);
        buf
    };
    let ack = |make: fn(u16) -> v5::Packet<'static>, id| long(make(id));
    fn puback(id: u16) -> v5::Packet<'static> {
        v5::Packet::PubAck(v5::PubAck {
            properties: Properties::new(&WHY),
            ..v5::PubAck::new(id)
        })
    }
    fn pubrec(id: u16) -> v5::Packet<'static> {
        v5::Packet::PubRec(v5::PubRec {
            properties: Properties::new(&WHY),
            ..v5::PubRec::new(id)
        })
    }
    fn pubrel(id: u16) -> v5::Packet<'static> {
        v5::Packet::PubRel(v5::PubRel {
            properties: Properties::new(&WHY),
            ..v5::PubRel::new(id)
        })
    }
    fn pubcomp(id: u16) -> v5::Packet<'static> {
        v5::Packet::PubComp(v5::PubComp {
            properties: Properties::new(&WHY),
            ..v5::PubComp::new(id)
        })
    }
    // QoS 1: the long PUBACK completes the message.
    let mut s = small();
    let id = s
        .publish(T0, &publish("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    let seen = pour(&mut s, &ack(puback, id));
    assert!(seen[0].starts_with("Published"), "{seen:?}");
    assert_eq!(s.state(), State::Connected);
    // QoS 2: the long PUBREC gets its PUBREL, the long PUBCOMP completes.
    let id = s
        .publish(T0, &publish("t", QoS::ExactlyOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    assert!(pour(&mut s, &ack(pubrec, id)).is_empty());
    assert_eq!(sent(&mut s, T0), [v5::Packet::PubRel(v5::PubRel::new(id))]);
    let seen = pour(&mut s, &ack(pubcomp, id));
    assert!(seen[0].starts_with("Published"), "{seen:?}");
    // An incoming QoS 2 message: the long PUBREL gets its PUBCOMP.
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(5), &[])),
        Ok(Some(Event::Message(_)))
    ));
    assert_eq!(sent(&mut s, T0), [v5::Packet::PubRec(v5::PubRec::new(5))]);
    assert!(pour(&mut s, &ack(pubrel, 5)).is_empty());
    assert_eq!(sent(&mut s, T0), [v5::Packet::PubComp(v5::PubComp::new(5))]);
    // The packets behind it are read as usual.
    let mut two = ack(puback, 77);
    two.extend_from_slice(&[0xd0, 0x00]);
    s.ping(T0).unwrap();
    let _ = sent(&mut s, T0);
    assert_eq!(pour(&mut s, &two), ["Pong"]);
    assert_eq!(s.state(), State::Connected);
    // A reason code the packet may not carry is malformed, long or not.
    let mut bad = ack(puback, 3);
    bad[2 + 2] = 0x11;
    let mut s = small();
    assert_eq!(pour(&mut s, &bad), ["Closed(Malformed(ReasonCode(17)))"]);
    // After Request Problem Information 0, its properties (it has some,
    // to be so long) are a Protocol Error (MQTT-3.1.2-29).
    static NO_PROBLEMS: [Property<'static>; 1] = [Property::RequestProblemInformation(0)];
    let mut s: S = Session::new(leak(24), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(true, &NO_PROBLEMS)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    assert_eq!(
        pour(&mut s, &ack(puback, 3)),
        ["Closed(Violation(ProtocolError))"]
    );
    let mut s = small();
    let mut pingresp = vec![0xd0, 30];
    pingresp.extend_from_slice(&[0; 30]);
    assert_eq!(
        pour(&mut s, &pingresp)[0],
        "Closed(Malformed(TrailingBytes))"
    );
}

/// MQTT-4.12.0-5, MQTT-4.12.1-1: our AUTH names the CONNECT's method, in
/// the exchange and in a re-authentication; another one is refused
/// before it is queued.
#[test]
fn our_auth_names_the_connect_method() {
    static OTHER: [Property<'static>; 1] = [Property::AuthenticationMethod("OTHER")];
    let mut s = connected_with(&METHOD, &METHOD);
    // Continue answers only the broker's AUTH of a re-authentication.
    let unasked = v5::Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: Properties::new(&METHOD),
    };
    assert!(s.auth(T0, &unasked).is_err());
    assert!(sent(&mut s, T0).is_empty());
    let other = v5::Auth {
        reason_code: ReasonCode::ReAuthenticate,
        properties: Properties::new(&OTHER),
    };
    assert!(matches!(
        s.auth(T0, &other),
        Err(SessionError::Usage(UsageError::Encode(_)))
    ));
    assert!(sent(&mut s, T0).is_empty());
    let same = v5::Auth {
        reason_code: ReasonCode::ReAuthenticate,
        properties: Properties::new(&METHOD),
    };
    s.auth(T0, &same).unwrap();
    assert!(matches!(sent(&mut s, T0)[..], [v5::Packet::Auth(_)]));
}

#[test]
fn a_receive_buffer_too_small_for_an_mqtt_5_connack_is_refused_at_connect() {
    let mut s: S = Session::new(leak(7), leak(1536), Timeouts::default());
    assert_eq!(
        s.connect_v5(T0, &connect(true, &[])),
        Err(SessionError::Resource(
            ResourceError::ReceiveBufferTooSmall { needed: 8 }
        ))
    );
    assert_eq!(s.state(), State::Disconnected);
}

#[test]
fn a_server_keep_alive_of_0_turns_pings_off() {
    // MQTT-3.2.2-21: the broker's value replaces ours, 0 included.
    let mut s = session();
    let c = v5::Connect {
        keep_alive: 60,
        ..connect(true, &[])
    };
    s.connect_v5(T0, &c).unwrap();
    let _ = sent(&mut s, T0);
    static ZERO: [Property<'static>; 1] = [Property::ServerKeepAlive(0)];
    assert!(feed(&mut s, T0, connack(&ZERO)).is_ok());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn the_brokers_topic_aliases_end_with_the_connection() {
    // MQTT-3.3.2-7: an alias set on one connection is unknown on the
    // next; a PUBLISH naming only it is a Protocol Error.
    static OURS: [Property<'static>; 1] = [Property::TopicAliasMaximum(2)];
    static A1: [Property<'static>; 1] = [Property::TopicAlias(1)];
    let mut s = connected_with(&OURS, &[]);
    let publish = |topic| {
        v5::Packet::Publish(v5::Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: None,
            properties: Properties::new(&A1),
            payload: b"p",
        })
    };
    assert!(matches!(
        feed(&mut s, T0, publish("t/x")),
        Ok(Some(Event::Message(_)))
    ));
    s.connection_lost();
    s.connect_v5(T0, &connect(true, &OURS)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    assert!(matches!(
        feed(&mut s, T0, publish("")),
        Err(Closed::Violation(ReasonCode::ProtocolError))
    ));
}

#[test]
fn requests_do_not_wait_for_the_brokers_receive_maximum() {
    // MQTT-3.3.4-8 holds back only PUBLISHes: with the broker's quota
    // taken by resends, a SUBSCRIBE and an UNSUBSCRIBE still go at once.
    let mut s = session();
    s.connect_v5(T0, &connect(false, &KEPT)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    for _ in 0..3 {
        s.publish(T0, &publish("t", QoS::AtLeastOnce)).unwrap();
    }
    let _ = sent(&mut s, T0);
    static ONE: [Property<'static>; 1] = [Property::ReceiveMaximum(1)];
    resume_with(&mut s, &ONE);
    assert_eq!(sent(&mut s, secs(1)).len(), 1);
    let subs = [Subscription {
        filter: "x",
        qos: QoS::AtMostOnce,
    }];
    s.subscribe(secs(1), &subs).unwrap();
    s.unsubscribe(secs(1), &["y"]).unwrap();
    let out = sent(&mut s, secs(1));
    assert!(
        matches!(
            out[..],
            [v5::Packet::Subscribe(_), v5::Packet::Unsubscribe(_)]
        ),
        "{out:?}"
    );
}

#[cfg(feature = "streaming")]
#[test]
fn an_mqtt_5_streamed_publish_longer_than_mqtt_allows_is_refused() {
    let mut s = connected();
    for len in [268_435_456, usize::MAX] {
        let p = publish("t", QoS::AtMostOnce);
        assert!(s.publish_streamed(T0, &p, len).is_err(), "{len}");
    }
    assert!(sent(&mut s, T0).is_empty());
}

#[test]
fn an_acknowledgement_trimmed_without_properties_is_no_problem_information() {
    // The smallest buffer takes a 6-byte PUBACK whose property list is
    // empty whole (a longer one has properties): nothing MQTT-3.1.2-29
    // forbids.
    static NO_PROBLEMS: [Property<'static>; 1] = [Property::RequestProblemInformation(0)];
    let mut s: S = Session::new(leak(8), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(true, &NO_PROBLEMS)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    let id = s
        .publish(T0, &publish("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut s, T0);
    let [hi, lo] = id.to_be_bytes();
    // Reason code 0x10 (no matching subscribers), Property Length 0.
    let seen = pour(&mut s, &[0x40, 0x04, hi, lo, 0x10, 0x00]);
    assert!(seen[0].starts_with("Published"), "{seen:?}");
}

#[test]
fn a_pubcomp_not_found_without_room_for_its_reason_code_says_success() {
    // Framing keeps room for a 4-byte answer; PUBCOMP 0x92 takes 5. A
    // QoS 0 message sized to leave exactly 4 bytes: the PUBREL still gets
    // its PUBCOMP.
    let room = |s: &S| (0..300).rev().find(|&k| s.p.store.tx_has_room(k));
    let mut found = None;
    for n in 0..250 {
        let mut s: S = Session::new(leak(64), leak(256), Timeouts::default());
        s.connect_v5(T0, &connect(true, &[])).unwrap();
        let _ = sent(&mut s, T0);
        assert!(feed(&mut s, T0, connack(&[])).is_ok());
        let payload: &'static [u8] = std::vec![0u8; n].leak();
        let p = Publish::new("t", payload, QoS::AtMostOnce, false);
        if s.publish(T0, &p).is_ok() && room(&s) == Some(4) {
            found = Some(s);
            break;
        }
    }
    let mut s = found.expect("a payload that leaves 4 bytes");
    assert!(pour(&mut s, &[0x62, 0x02, 0x00, 0x09]).is_empty());
    let out = sent(&mut s, T0);
    assert_eq!(
        out.last(),
        Some(&v5::Packet::PubComp(v5::PubComp::new(9))),
        "{out:?}"
    );
}

#[test]
fn trimmed_acknowledgements_keep_the_stream_whole_at_every_read_size() {
    static WHY: [Property<'static>; 1] = [Property::ReasonString(
        "a reason longer than the buffer, much longer",
    )];
    let encoded = |p: v5::Packet<'_>| {
        let mut buf = std::vec![0u8; p.encoded_len()];
        let n = p.encode(&mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    for chunk in 1..40 {
        let mut s: S = Session::new(leak(24), leak(1536), Timeouts::default());
        s.connect_v5(T0, &connect(true, &[])).unwrap();
        let _ = sent(&mut s, T0);
        assert!(feed(&mut s, T0, connack(&[])).is_ok());
        let id = s
            .publish(T0, &publish("t", QoS::ExactlyOnce))
            .unwrap()
            .unwrap();
        let _ = sent(&mut s, T0);
        let mut wire = std::vec![0xd0, 0x00, 0xd0, 0x00, 0xd0, 0x00];
        wire.extend(encoded(v5::Packet::PubRec(v5::PubRec {
            properties: Properties::new(&WHY),
            ..v5::PubRec::new(id)
        })));
        wire.extend_from_slice(&[0xd0, 0x00]);
        wire.extend(encoded(v5::Packet::PubComp(v5::PubComp {
            properties: Properties::new(&WHY),
            ..v5::PubComp::new(id)
        })));
        wire.extend_from_slice(&[0xd0, 0x00]);
        let mut seen = Vec::new();
        let mut fed = 0;
        while fed < wire.len() {
            let space = s.receive_buffer();
            let k = space.len().min(chunk).min(wire.len() - fed);
            assert!(k > 0, "stuck at chunk {chunk}");
            space[..k].copy_from_slice(&wire[fed..fed + k]);
            s.commit(k);
            fed += k;
            while let Some(e) = s.poll_event(T0) {
                seen.push(std::format!("{e:?}"));
            }
        }
        let pongs = seen.iter().filter(|e| *e == "Pong").count();
        assert_eq!(pongs, 5, "chunk {chunk}: {seen:?}");
        assert!(
            seen.iter().any(|e| e.starts_with("Published")),
            "chunk {chunk}: {seen:?}"
        );
        assert_eq!(s.state(), State::Connected);
    }
}

/// MQTT-3.2.2-15: what we send stays within the broker's Maximum Packet
/// Size, even the answer to a PUBREL of an unknown id (0x92 takes 5
/// bytes; Success, 4, fits).
#[test]
fn a_pubcomp_not_found_keeps_to_the_brokers_maximum() {
    static TINY: [Property<'static>; 1] = [Property::MaximumPacketSize(4)];
    let mut s = connected_with(&[], &TINY);
    let rel = v5::Packet::PubRel(v5::PubRel::new(9));
    assert_eq!(feed(&mut s, T0, rel), Ok(None));
    assert_eq!(sent(&mut s, T0), [ack(PacketType::PubComp, 9)]);
}

/// §4.13.1: a CONNACK that accepts but breaks a rule (Session Present
/// after Clean Start, another Authentication Method) is answered with
/// DISCONNECT 0x82 before the close: the broker holds the connection open.
#[test]
fn a_connack_that_accepts_and_breaks_a_rule_gets_a_protocol_error() {
    let disconnect = v5::Packet::Disconnect(v5::Disconnect {
        reason_code: ReasonCode::ProtocolError,
        properties: Properties::EMPTY,
    });
    let mut s = session();
    s.connect_v5(T0, &connect(true, &[])).unwrap();
    let _ = sent(&mut s, T0);
    let present = v5::Packet::ConnAck(v5::ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: Properties::EMPTY,
    });
    assert_eq!(
        feed(&mut s, T0, present),
        Err(Closed::Protocol(PacketType::ConnAck))
    );
    assert_eq!(sent(&mut s, T0), [disconnect]);
    let mut s = session();
    s.connect_v5(T0, &connect(true, &METHOD)).unwrap();
    let _ = sent(&mut s, T0);
    assert_eq!(
        feed(&mut s, T0, connack(&[])),
        Err(Closed::Violation(ReasonCode::ProtocolError))
    );
    assert_eq!(sent(&mut s, T0), [disconnect]);
}

/// §4.13.1: a stored PUBLISH queued but not handed out yet does not hold
/// back the DISCONNECT that reports the broker's fault; it stays stored,
/// for the next connection.
#[test]
fn the_goodbye_goes_before_a_stored_publish_not_started() {
    let mut s = connected();
    s.publish(T0, &publish("t", QoS::AtLeastOnce)).unwrap();
    assert_eq!(
        feed(&mut s, T0, connack(&[])),
        Err(Closed::Protocol(PacketType::ConnAck))
    );
    let wire = sent(&mut s, T0);
    assert!(
        matches!(wire.as_slice(), [v5::Packet::Disconnect(d)] if d.reason_code == ReasonCode::ProtocolError),
        "{wire:?}"
    );
    assert_eq!(s.inflight(), 1);
}

/// MQTT-4.12.0-3: our AUTH answers the broker's Continue (with Continue),
/// and only then; Re-authenticate starts an exchange, not in the middle
/// of one.
#[test]
fn our_auth_only_answers_the_brokers() {
    let not_now = Err(SessionError::Usage(UsageError::NotConnected));
    let cont = v5::Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: Properties::new(&METHOD),
    };
    let reauth = v5::Auth {
        reason_code: ReasonCode::ReAuthenticate,
        properties: Properties::new(&METHOD),
    };
    let mut s = session();
    s.connect_v5(T0, &connect(true, &METHOD)).unwrap();
    let _ = sent(&mut s, T0);
    assert_eq!(
        s.auth(T0, &cont),
        not_now,
        "before any AUTH of the broker's"
    );
    assert!(matches!(
        feed(
            &mut s,
            T0,
            auth_packet(ReasonCode::ContinueAuthentication, &METHOD)
        ),
        Ok(Some(Event::Auth(_)))
    ));
    assert_eq!(s.auth(T0, &cont), Ok(()));
    assert_eq!(s.auth(T0, &cont), not_now, "answered already");
    let mut s = connected_with(&METHOD, &METHOD);
    assert_eq!(s.auth(T0, &cont), not_now);
    s.auth(T0, &reauth).unwrap();
    let _ = sent(&mut s, T0);
    assert!(matches!(
        feed(
            &mut s,
            T0,
            auth_packet(ReasonCode::ContinueAuthentication, &METHOD)
        ),
        Ok(Some(Event::Auth(_)))
    ));
    assert_eq!(s.auth(T0, &reauth), not_now, "Continue is due");
    assert_eq!(s.auth(T0, &cont), Ok(()));
    // A lost connection ends the exchange.
    assert!(matches!(
        feed(
            &mut s,
            T0,
            auth_packet(ReasonCode::ContinueAuthentication, &METHOD)
        ),
        Ok(Some(Event::Auth(_)))
    ));
    s.connection_lost();
    assert_eq!(s.auth(T0, &cont), not_now);
    // So does a CONNACK that comes without waiting for our answer.
    let mut s = session();
    s.connect_v5(T0, &connect(true, &METHOD)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(matches!(
        feed(
            &mut s,
            T0,
            auth_packet(ReasonCode::ContinueAuthentication, &METHOD)
        ),
        Ok(Some(Event::Auth(_)))
    ));
    assert!(matches!(
        feed(&mut s, T0, connack(&METHOD)),
        Ok(Some(Event::Connected(_)))
    ));
    assert_eq!(s.auth(T0, &cont), not_now);
    assert_eq!(s.auth(T0, &reauth), Ok(()));
}

/// A session on a receive buffer of `rx` bytes, connected with these
/// CONNECT properties.
fn small(rx: usize, props: &'static [Property<'static>]) -> S {
    let mut s: S = Session::new(leak(rx), leak(1536), Timeouts::default());
    s.connect_v5(T0, &connect(true, props)).unwrap();
    let _ = sent(&mut s, T0);
    assert!(feed(&mut s, T0, connack(&[])).is_ok());
    s
}

/// A PUBLISH too large to read its properties may have mapped any Topic
/// Alias anew (§3.3.2.3.4): a later message naming only an alias the
/// broker set before is skipped as one whose topic is unknown, not
/// delivered under the old topic. Setting the alias again restores it.
#[test]
fn an_alias_a_message_too_large_may_have_remapped_is_not_trusted() {
    let mut s = small(16, &TWO_ALIASES);
    let aliased_raw = |topic: &[u8], payload: &[u8]| {
        let mut body = (topic.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(topic);
        body.extend_from_slice(&[3, 0x23, 0, 1]);
        body.extend_from_slice(payload);
        let mut out = vec![0x30, body.len() as u8];
        out.extend_from_slice(&body);
        out
    };
    let seen = pour(&mut s, &aliased_raw(b"a", b"1"));
    assert!(seen[0].starts_with("Message"), "{seen:?}");
    // Its topic alone outruns the buffer: its properties go unread.
    let seen = pour(&mut s, &aliased_raw(&[b'b'; 20], b"2"));
    assert!(seen[0].starts_with("Dropped"), "{seen:?}");
    let seen = pour(&mut s, &aliased_raw(b"", b"3"));
    assert!(
        seen.len() == 1 && seen[0].starts_with("Dropped"),
        "{seen:?}"
    );
    let _ = pour(&mut s, &aliased_raw(b"c", b"4"));
    let seen = pour(&mut s, &aliased_raw(b"", b"5"));
    assert!(seen[0].contains("\"c\""), "{seen:?}");
}

/// An AUTH too large to buffer when nobody asked for enhanced
/// authentication is a Protocol Error at any size (0x82), not too large
/// (0x95, which an AUTH during an exchange gets).
#[test]
fn an_unasked_auth_too_large_is_a_protocol_error() {
    let mut s = small(16, &[]);
    let mut auth = vec![0xf0, 31, 0x18, 29, 0x15, 0, 1, b'm', 0x1f, 0, 22];
    auth.extend_from_slice(&[b'r'; 22]);
    assert_eq!(auth.len(), 33);
    let seen = pour(&mut s, &auth);
    assert_eq!(seen, ["Closed(Violation(ProtocolError))"]);
}

/// The smallest receive buffer holds the longest fixed header and an
/// acknowledgement's packet id and reason code: a PUBREL of over 2 MiB
/// (User Properties) still gets its PUBCOMP.
#[test]
fn the_smallest_buffer_answers_a_pubrel_of_over_2_mib() {
    let mut s = small(8, &[]);
    // A QoS 2 message of 9 bytes: skipped, and PUBREC'd.
    let seen = pour(&mut s, &[0x34, 7, 0, 1, b'i', 0, 7, 0, b'x']);
    assert!(seen[0].starts_with("Dropped"), "{seen:?}");
    assert!(matches!(sent(&mut s, T0)[..], [v5::Packet::PubRec(_)]));
    let mut props = Vec::new();
    while props.len() < 2_100_000 {
        props.extend_from_slice(&[0x26, 0xff, 0xf0]);
        props.extend(std::iter::repeat_n(b'k', 0xfff0));
        props.extend_from_slice(&[0, 1, b'v']);
    }
    let mut body = std::vec![0, 7, 0];
    let mut n = props.len();
    while n > 0 {
        body.push((n % 128) as u8 | if n >= 128 { 0x80 } else { 0 });
        n /= 128;
    }
    body.extend_from_slice(&props);
    let mut pubrel = std::vec![0x62];
    let mut n = body.len();
    while n > 0 {
        pubrel.push((n % 128) as u8 | if n >= 128 { 0x80 } else { 0 });
        n /= 128;
    }
    assert_eq!(pubrel.len(), 5);
    pubrel.extend_from_slice(&body);
    let seen = pour(&mut s, &pubrel);
    assert!(!seen.iter().any(|e| e.starts_with("Closed")), "{seen:?}");
    let [v5::Packet::PubComp(comp)] = sent(&mut s, T0)[..] else {
        panic!("no PUBCOMP");
    };
    assert_eq!(comp.packet_id, 7);
}
