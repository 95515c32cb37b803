//! Session state machine tests on a virtual clock.
//!
//! Time is whatever `Instant` a test passes in; the broker's side is packets
//! encoded with the codec and decoded again with `Packet::decode` before
//! `handle_packet`; what the session sends is `poll_transmit`'s bytes,
//! decoded. Buffers are leaked so helpers can hand out `'static` sessions.

extern crate std;

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use core::convert::Infallible;

use super::*;
use crate::codec::{
    PubAck, PubComp, PubRec, PubRel, ReturnCodes, SubscribeReturnCode as Code, UnsubAck,
};
use crate::error::{BrokerError, Error};

type S = Session<'static, 4, 4>;
type Res<T> = core::result::Result<T, Error<Infallible>>;

const T0: Instant = Instant::from_millis(0);
const SECOND: u64 = 1000;

fn ms(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

fn secs(s: u64) -> Instant {
    Instant::from_millis(s * SECOND)
}

fn leak(len: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; len].into_boxed_slice())
}

/// A session with `tx` transmit bytes and `store` store bytes.
fn session_with<const I: usize, const N: usize>(tx: usize, store: usize) -> Session<'static, I, N> {
    Session::new(leak(4096), leak(tx + store), Timeouts::default())
}

fn session() -> S {
    session_with(256, 1024)
}

fn connect_packet(clean_session: bool, keep_alive: u16) -> Connect<'static> {
    Connect {
        clean_session,
        keep_alive,
        client_id: "c",
        will: None,
        username: None,
        password: None,
    }
}

/// Encodes `packet`, hands its bytes to the session and returns the first
/// event they produce; the end of the connection is an `Err`.
fn feed<'s, const I: usize, const N: usize>(
    s: &'s mut Session<'static, I, N>,
    now: Instant,
    packet: Packet<'_>,
) -> Res<Option<Event<'s>>> {
    let mut buf = vec![0u8; packet.encoded_len()];
    let n = packet.encode(&mut buf).expect("encode broker packet");
    let space = s.receive_buffer();
    assert!(space.len() >= n, "receive buffer too small for {packet:?}");
    space[..n].copy_from_slice(&buf[..n]);
    s.commit(n);
    match s.poll_event(now) {
        Some(Event::Closed(reason)) => Err(reason.into()),
        other => Ok(other),
    }
}

/// `handle_timeout` at `now`, with the end of the connection as an `Err`.
fn timeout<const I: usize, const N: usize>(
    s: &mut Session<'static, I, N>,
    now: Instant,
) -> Res<()> {
    s.handle_timeout(now);
    match s.poll_event(now) {
        Some(Event::Closed(reason)) => Err(reason.into()),
        Some(other) => panic!("unexpected event {other:?}"),
        None => Ok(()),
    }
}

/// Feeds a packet that must be accepted without an event.
fn feed_quiet<const I: usize, const N: usize>(
    s: &mut Session<'static, I, N>,
    now: Instant,
    packet: Packet<'_>,
) {
    assert_eq!(feed(s, now, packet), Ok(None));
}

/// Splits a byte stream into packets; every byte must belong to a whole packet.
fn split(wire: &'static [u8]) -> Vec<Packet<'static>> {
    let mut rest = wire;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (p, n) = Packet::decode(rest).expect("the session sent an undecodable packet");
        out.push(p);
        rest = &rest[n..];
    }
    out
}

/// Writes everything the session has to send at `now` and decodes it.
fn sent<const I: usize, const N: usize>(
    s: &mut Session<'static, I, N>,
    now: Instant,
) -> Vec<Packet<'static>> {
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
    split(Box::leak(wire.into_boxed_slice()))
}

fn connack(session_present: bool, return_code: ConnectReturnCode) -> Packet<'static> {
    Packet::ConnAck(ConnAck {
        session_present,
        return_code,
    })
}

fn accepted() -> Packet<'static> {
    connack(false, ConnectReturnCode::Accepted)
}

fn puback(packet_id: u16) -> Packet<'static> {
    Packet::PubAck(PubAck { packet_id })
}

fn pubrec(packet_id: u16) -> Packet<'static> {
    Packet::PubRec(PubRec { packet_id })
}

fn pubrel(packet_id: u16) -> Packet<'static> {
    Packet::PubRel(PubRel { packet_id })
}

fn pubcomp(packet_id: u16) -> Packet<'static> {
    Packet::PubComp(PubComp { packet_id })
}

fn unsuback(packet_id: u16) -> Packet<'static> {
    Packet::UnsubAck(UnsubAck { packet_id })
}

fn suback(packet_id: u16, codes: &'static [u8]) -> Packet<'static> {
    Packet::SubAck(SubAck {
        packet_id,
        return_codes: ReturnCodes::new(codes),
    })
}

/// An application message as the broker sends it.
fn incoming(qos: QoS, packet_id: Option<u16>, dup: bool) -> Packet<'static> {
    Packet::Publish(Publish {
        dup,
        qos,
        retain: false,
        topic: "in/t",
        packet_id,
        payload: b"hi",
    })
}

/// A message to publish (the session picks the id).
fn msg(topic: &'static str, qos: QoS) -> Publish<'static> {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        packet_id: None,
        payload: b"payload",
    }
}

/// The PUBLISH the session should send for `msg(topic, qos)`.
fn wire_publish(topic: &'static str, qos: QoS, packet_id: u16, dup: bool) -> Packet<'static> {
    Packet::Publish(Publish {
        dup,
        packet_id: Some(packet_id),
        ..msg(topic, qos)
    })
}

fn sub(filter: &'static str, qos: QoS) -> Subscription<'static> {
    Subscription { filter, qos }
}

/// Connects at `now`, writes CONNECT, accepts the CONNACK (no session).
fn connect_at<const I: usize, const N: usize>(
    s: &mut Session<'static, I, N>,
    now: Instant,
    clean_session: bool,
    keep_alive: u16,
) {
    s.connect(now, &connect_packet(clean_session, keep_alive))
        .expect("connect");
    assert_eq!(
        sent(s, now),
        [Packet::Connect(connect_packet(clean_session, keep_alive))]
    );
    assert!(matches!(
        feed(s, now, accepted()),
        Ok(Some(Event::Connected(_)))
    ));
    assert_eq!(s.state(), State::Connected);
}

/// A connected session (at T0) with clean session on and no keep-alive.
fn connected() -> S {
    let mut s = session();
    connect_at(&mut s, T0, true, 0);
    s
}

/// A connected session with clean session off and no keep-alive.
fn persistent() -> S {
    let mut s = session();
    connect_at(&mut s, T0, false, 0);
    s
}

fn subscriptions<const I: usize, const N: usize>(
    s: &Session<'static, I, N>,
) -> Vec<(std::string::String, QoS)> {
    s.subscriptions().map(|(f, q)| (f.into(), q)).collect()
}

fn ids<const I: usize, const N: usize>(s: &Session<'static, I, N>) -> Vec<(u16, Stage)> {
    s.inflight_ids().collect()
}

// ---------------------------------------------------------------- connect

#[test]
fn new_session_is_disconnected_and_idle() {
    let mut s = session();
    assert_eq!(s.state(), State::Disconnected);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(timeout(&mut s, secs(3600)), Ok(()));
    assert!(s.poll_transmit(T0).is_empty());
    assert!(s.transmit_idle());
}

#[test]
fn connect_queues_connect_and_waits_for_connack() {
    let mut s = session();
    let connect = Connect {
        username: Some("user"),
        password: Some(&b"pw"[..]),
        ..connect_packet(false, 30)
    };
    s.connect(ms(500), &connect).unwrap();
    assert_eq!(s.state(), State::Connecting);
    assert_eq!(sent(&mut s, ms(500)), [Packet::Connect(connect)]);
    assert_eq!(s.poll_timeout(), Some(ms(10_500)));
}

#[test]
fn connack_accepted_connects() {
    let mut s = session();
    s.connect(T0, &connect_packet(true, 0)).unwrap();
    sent(&mut s, T0);
    assert_eq!(
        feed(&mut s, ms(20), accepted()),
        Ok(Some(Event::Connected(Connected::new(false, 0, 0))))
    );
    assert_eq!(s.state(), State::Connected);
    assert_eq!(s.poll_timeout(), None, "nothing pending, no keep-alive");
    assert!(sent(&mut s, ms(20)).is_empty());
}

#[test]
fn connack_refusals_are_errors_for_each_code() {
    use ConnectReturnCode::*;
    for code in [
        UnacceptableProtocolVersion,
        IdentifierRejected,
        ServerUnavailable,
        BadUsernameOrPassword,
        NotAuthorized,
    ] {
        let mut s = session();
        s.connect(T0, &connect_packet(true, 0)).unwrap();
        sent(&mut s, T0);
        assert_eq!(
            feed(&mut s, T0, connack(false, code)),
            Err(Error::Broker(BrokerError::Refused(code)))
        );
        assert_ne!(s.state(), State::Connected, "{code:?}");
        assert_eq!(
            timeout(&mut s, secs(60)),
            Ok(()),
            "no connack deadline left"
        );
        s.connection_lost();
        assert_eq!(s.state(), State::Disconnected);
    }
}

#[test]
fn connack_session_present_with_clean_session_is_protocol_error() {
    let mut s = session();
    s.connect(T0, &connect_packet(true, 0)).unwrap();
    assert_eq!(
        feed(&mut s, T0, connack(true, ConnectReturnCode::Accepted)),
        Err(Error::Broker(BrokerError::Protocol(PacketType::ConnAck)))
    );
    assert_ne!(s.state(), State::Connected);
}

#[test]
fn connack_session_present_without_clean_session_is_reported() {
    let mut s = session();
    s.connect(T0, &connect_packet(false, 0)).unwrap();
    assert_eq!(
        feed(&mut s, T0, connack(true, ConnectReturnCode::Accepted)),
        Ok(Some(Event::Connected(Connected::new(true, 0, 0))))
    );
}

#[test]
fn empty_client_id_needs_clean_session() {
    let mut s = session();
    let connect = Connect {
        client_id: "",
        ..connect_packet(false, 0)
    };
    assert_eq!(
        s.connect(T0, &connect),
        Err(SessionError::Usage(UsageError::EmptyClientId))
    );
    assert_eq!(s.state(), State::Disconnected);
    let connect = Connect {
        client_id: "",
        ..connect_packet(true, 0)
    };
    assert_eq!(s.connect(T0, &connect), Ok(()));
}

#[test]
fn packets_before_connack_are_protocol_errors() {
    let packets = [
        incoming(QoS::AtMostOnce, None, false),
        puback(1),
        pubrec(1),
        pubrel(1),
        pubcomp(1),
        suback(1, &[0]),
        unsuback(1),
        Packet::PingResp,
    ];
    for p in packets {
        let mut s = session();
        s.connect(T0, &connect_packet(true, 0)).unwrap();
        assert_eq!(
            feed(&mut s, T0, p),
            Err(Error::Broker(BrokerError::Protocol(p.packet_type())))
        );
        // Nothing answered it: the connection is over, CONNECT included.
        assert!(sent(&mut s, T0).is_empty());
        assert_eq!(s.state(), State::Disconnected);
    }
}

#[test]
fn input_while_disconnected_is_dropped() {
    // No connection, so nothing can have come from a broker.
    for p in [accepted(), puback(1), Packet::PingResp] {
        let mut s = session();
        assert_eq!(feed(&mut s, T0, p), Ok(None));
        assert!(sent(&mut s, T0).is_empty());
        assert_eq!(s.state(), State::Disconnected);
    }
}

#[test]
fn second_connack_is_protocol_error() {
    let mut s = connected();
    assert_eq!(
        feed(&mut s, T0, accepted()),
        Err(Error::Broker(BrokerError::Protocol(PacketType::ConnAck)))
    );
}

#[test]
fn connack_timeout() {
    let mut s = session();
    s.connect(ms(100), &connect_packet(true, 5)).unwrap();
    sent(&mut s, ms(100));
    assert_eq!(s.poll_timeout(), Some(ms(10_100)));
    assert_eq!(timeout(&mut s, ms(10_099)), Ok(()));
    assert_eq!(
        timeout(&mut s, ms(10_100)),
        Err(Error::Timeout(AckKind::ConnAck))
    );
    // Keep-alive does not ping while connecting.
    assert!(sent(&mut s, ms(10_100)).is_empty());
}

#[test]
fn operations_need_a_connection() {
    let mut s = session();
    let check = |s: &mut S| {
        assert_eq!(
            s.publish(T0, &msg("t", QoS::AtMostOnce)),
            Err(SessionError::Usage(UsageError::NotConnected))
        );
        assert_eq!(
            s.publish(T0, &msg("t", QoS::AtLeastOnce)),
            Err(SessionError::Usage(UsageError::NotConnected))
        );
        assert_eq!(
            s.subscribe(T0, &[sub("t", QoS::AtMostOnce)]),
            Err(SessionError::Usage(UsageError::NotConnected))
        );
        assert_eq!(
            s.unsubscribe(T0, &["t"]),
            Err(SessionError::Usage(UsageError::NotConnected))
        );
        assert_eq!(
            s.ping(T0),
            Err(SessionError::Usage(UsageError::NotConnected))
        );
    };
    check(&mut s);
    assert_eq!(
        s.disconnect(),
        Err(SessionError::Usage(UsageError::NotConnected))
    );
    s.connect(T0, &connect_packet(true, 0)).unwrap();
    check(&mut s);
    assert_eq!(s.inflight(), 0);
    assert_eq!(s.subscriptions().count(), 0);
}

// ------------------------------------------------------------- keep-alive

#[test]
fn pingreq_goes_out_before_keep_alive_has_passed_since_last_sent() {
    let mut s = session();
    s.connect(T0, &connect_packet(true, 10)).unwrap();
    sent(&mut s, T0); // CONNECT written at 0
    // CONNACK is received, not sent: the keep-alive runs from CONNECT. A
    // tenth of it early (1 s of 10), so the broker never sees a gap of
    // more than 10 s (MQTT-3.1.2-23).
    feed(&mut s, secs(3), accepted()).unwrap();
    assert_eq!(s.poll_timeout(), Some(secs(9)));
    assert_eq!(timeout(&mut s, ms(8_999)), Ok(()));
    assert!(sent(&mut s, ms(8_999)).is_empty());
    assert_eq!(timeout(&mut s, secs(9)), Ok(()));
    assert!(s.ping_outstanding());
    assert_eq!(sent(&mut s, secs(9)), [Packet::PingReq]);
}

#[test]
fn the_ping_margin_is_a_tenth_of_the_keep_alive_within_bounds() {
    use super::timers::ping_interval;
    let d = Duration::from_millis;
    assert_eq!(ping_interval(d(60_000)), d(54_000));
    assert_eq!(ping_interval(d(10_000)), d(9_000));
    // At least half a second early...
    assert_eq!(ping_interval(d(2_000)), d(1_500));
    // ...but never earlier than half the period.
    assert_eq!(ping_interval(d(1_000)), d(500));
    assert_eq!(ping_interval(d(65_535_000)), d(58_981_500));
}

#[test]
fn sending_anything_postpones_the_ping() {
    let mut s = session();
    connect_at(&mut s, T0, true, 10);
    s.publish(secs(6), &msg("t", QoS::AtMostOnce)).unwrap();
    sent(&mut s, secs(6));
    assert_eq!(s.poll_timeout(), Some(secs(15)));
    assert_eq!(timeout(&mut s, secs(10)), Ok(()));
    assert_eq!(timeout(&mut s, ms(14_999)), Ok(()));
    assert!(sent(&mut s, ms(14_999)).is_empty());
    assert_eq!(timeout(&mut s, secs(15)), Ok(()));
    assert_eq!(sent(&mut s, secs(15)), [Packet::PingReq]);
}

#[test]
fn queued_but_unwritten_bytes_do_not_postpone_the_ping() {
    let mut s = session();
    connect_at(&mut s, T0, true, 10);
    s.publish(secs(6), &msg("t", QoS::AtMostOnce)).unwrap();
    // Written 0 bytes: nothing was sent.
    s.handle_transmit(secs(6), 0);
    assert_eq!(s.poll_timeout(), Some(secs(9)));
    assert_eq!(timeout(&mut s, secs(9)), Ok(()));
    let out = sent(&mut s, secs(9));
    assert_eq!(out.len(), 2);
    assert_eq!(out[1], Packet::PingReq);
}

#[test]
fn keep_alive_zero_never_pings() {
    let mut s = connected();
    for h in 1..=48 {
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(timeout(&mut s, secs(h * 3600)), Ok(()));
        assert!(sent(&mut s, secs(h * 3600)).is_empty());
    }
    assert!(!s.ping_outstanding());
}

#[test]
fn pingresp_clears_the_outstanding_ping() {
    let mut s = session();
    connect_at(&mut s, T0, true, 10);
    timeout(&mut s, secs(9)).unwrap();
    assert_eq!(sent(&mut s, secs(9)), [Packet::PingReq]);
    assert_eq!(s.poll_timeout(), Some(secs(19)), "the PINGRESP deadline");
    assert_eq!(
        feed(&mut s, secs(11), Packet::PingResp),
        Ok(Some(Event::Pong))
    );
    assert!(!s.ping_outstanding());
    // Next ping: counted from the PINGREQ written.
    assert_eq!(s.poll_timeout(), Some(secs(18)));
    assert_eq!(timeout(&mut s, secs(25)), Ok(()));
    assert_eq!(sent(&mut s, secs(25)), [Packet::PingReq]);
}

#[test]
fn missing_pingresp_times_out() {
    let mut s = session();
    connect_at(&mut s, T0, true, 10);
    timeout(&mut s, secs(10)).unwrap();
    sent(&mut s, secs(10));
    assert_eq!(timeout(&mut s, ms(19_999)), Ok(()));
    assert!(sent(&mut s, ms(19_999)).is_empty(), "no second PINGREQ");
    assert_eq!(
        timeout(&mut s, secs(20)),
        Err(Error::Timeout(AckKind::PingResp))
    );
}

#[test]
fn ping_is_not_repeated_while_one_is_outstanding() {
    let mut s = connected();
    s.ping(T0).unwrap();
    s.ping(secs(1)).unwrap();
    assert_eq!(sent(&mut s, secs(1)), [Packet::PingReq]);
    assert_eq!(s.poll_timeout(), Some(secs(10)), "deadline of the first");
}

// ------------------------------------------------------ outgoing messages

#[test]
fn qos0_publish_has_no_id_and_no_state() {
    let mut s = connected();
    let p = Publish {
        packet_id: Some(9),
        ..msg("a/b", QoS::AtMostOnce)
    };
    assert_eq!(s.publish(T0, &p), Ok(None));
    assert_eq!(
        sent(&mut s, T0),
        [Packet::Publish(msg("a/b", QoS::AtMostOnce))]
    );
    assert_eq!(s.inflight(), 0);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn qos1_publish_puback_published() {
    let mut s = connected();
    // The caller's id and DUP are ignored.
    let p = Publish {
        packet_id: Some(77),
        dup: true,
        ..msg("a/b", QoS::AtLeastOnce)
    };
    assert_eq!(s.publish(T0, &p), Ok(Some(1)));
    assert_eq!(
        sent(&mut s, T0),
        [wire_publish("a/b", QoS::AtLeastOnce, 1, false)]
    );
    assert_eq!(ids(&s), [(1, Stage::AwaitPubAck)]);
    assert!(s.publish_pending(1));
    assert_eq!(s.poll_timeout(), Some(secs(10)));
    assert_eq!(
        feed(&mut s, secs(1), puback(1)),
        Ok(Some(published("a/b", 1, QoS::AtLeastOnce)))
    );
    assert_eq!(s.inflight(), 0);
    assert!(!s.publish_pending(1));
    assert_eq!(s.poll_timeout(), None);
    assert!(sent(&mut s, secs(1)).is_empty(), "nothing answers a PUBACK");
    // A second PUBACK for the completed message is ignored.
    feed_quiet(&mut s, secs(1), puback(1));
}

#[test]
fn puback_timeout() {
    let mut s = connected();
    s.publish(secs(1), &msg("t", QoS::AtLeastOnce)).unwrap();
    sent(&mut s, secs(1));
    assert_eq!(s.poll_timeout(), Some(secs(11)));
    assert_eq!(timeout(&mut s, ms(10_999)), Ok(()));
    assert_eq!(
        timeout(&mut s, secs(11)),
        Err(Error::Timeout(AckKind::PubAck))
    );
}

#[test]
fn qos2_publish_full_handshake() {
    let mut s = connected();
    assert_eq!(s.publish(T0, &msg("q/2", QoS::ExactlyOnce)), Ok(Some(1)));
    assert_eq!(
        sent(&mut s, T0),
        [wire_publish("q/2", QoS::ExactlyOnce, 1, false)]
    );
    assert_eq!(ids(&s), [(1, Stage::AwaitPubRec)]);
    feed_quiet(&mut s, secs(2), pubrec(1));
    assert_eq!(sent(&mut s, secs(2)), [pubrel(1)]);
    assert_eq!(ids(&s), [(1, Stage::AwaitPubComp)]);
    assert_eq!(
        s.poll_timeout(),
        Some(secs(12)),
        "deadline restarted at PUBREC"
    );
    assert_eq!(
        feed(&mut s, secs(3), pubcomp(1)),
        Ok(Some(published("q/2", 1, QoS::ExactlyOnce)))
    );
    assert_eq!(s.inflight(), 0);
    assert!(sent(&mut s, secs(3)).is_empty());
}

#[test]
fn duplicate_pubrec_resends_pubrel() {
    let mut s = connected();
    s.publish(T0, &msg("t", QoS::ExactlyOnce)).unwrap();
    sent(&mut s, T0);
    feed_quiet(&mut s, T0, pubrec(1));
    assert_eq!(sent(&mut s, T0), [pubrel(1)]);
    feed_quiet(&mut s, secs(4), pubrec(1));
    assert_eq!(sent(&mut s, secs(4)), [pubrel(1)]);
    assert_eq!(ids(&s), [(1, Stage::AwaitPubComp)]);
    assert_eq!(s.poll_timeout(), Some(secs(14)));
}

#[test]
fn pubrec_and_pubcomp_timeouts() {
    let mut s = connected();
    s.publish(T0, &msg("t", QoS::ExactlyOnce)).unwrap();
    sent(&mut s, T0);
    assert_eq!(
        timeout(&mut s, secs(10)),
        Err(Error::Timeout(AckKind::PubRec))
    );
    // The timeout ended the connection; the same message on another one:
    let mut s = connected();
    s.publish(T0, &msg("t", QoS::ExactlyOnce)).unwrap();
    sent(&mut s, T0);
    feed_quiet(&mut s, secs(5), pubrec(1));
    assert_eq!(timeout(&mut s, secs(10)), Ok(()));
    assert_eq!(
        timeout(&mut s, secs(15)),
        Err(Error::Timeout(AckKind::PubComp))
    );
}

#[test]
fn acks_for_unknown_ids_or_wrong_stage_are_ignored() {
    let mut s = connected();
    s.publish(T0, &msg("one", QoS::AtLeastOnce)).unwrap(); // id 1
    s.publish(T0, &msg("two", QoS::ExactlyOnce)).unwrap(); // id 2
    sent(&mut s, T0);
    for p in [
        puback(99),
        pubrec(99),
        pubcomp(99),
        unsuback(99),
        suback(99, &[0]),
        puback(2),   // a QoS 2 message
        pubcomp(2),  // not past PUBREC yet
        pubrec(1),   // a QoS 1 message
        pubcomp(1),  // a QoS 1 message
        unsuback(1), // a publish id, not a request
        suback(2, &[0]),
    ] {
        feed_quiet(&mut s, T0, p);
    }
    assert!(sent(&mut s, T0).is_empty());
    assert_eq!(ids(&s), [(1, Stage::AwaitPubAck), (2, Stage::AwaitPubRec)]);
}

// ------------------------------------------------------ incoming messages

#[test]
fn incoming_qos0_is_delivered_and_needs_no_ack() {
    let mut s = connected();
    let p = incoming(QoS::AtMostOnce, None, false);
    let Packet::Publish(publish) = p else {
        unreachable!()
    };
    assert_eq!(
        feed(&mut s, T0, p),
        Ok(Some(Event::Message(publish.into())))
    );
    assert!(sent(&mut s, T0).is_empty());
}

#[test]
fn incoming_qos1_is_acknowledged_once_its_event_is_consumed() {
    let mut s = connected();
    let p = incoming(QoS::AtLeastOnce, Some(300), false);
    let Packet::Publish(publish) = p else {
        unreachable!()
    };
    // The event borrows the session, so nothing can be written while it
    // is alive; the next call queues the PUBACK.
    assert_eq!(
        feed(&mut s, T0, p),
        Ok(Some(Event::Message(publish.into())))
    );
    assert_eq!(sent(&mut s, T0), [puback(300)]);
    // QoS 1 keeps no state: a DUP is delivered again.
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::AtLeastOnce, Some(300), true)),
        Ok(Some(Event::Message(_)))
    ));
}

#[test]
fn incoming_qos2_handshake_delivers_once() {
    let mut s = connected();
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(7), false)),
        Ok(Some(Event::Message(Message {
            packet_id: Some(7),
            qos: QoS::ExactlyOnce,
            ..
        })))
    ));
    assert_eq!(s.incoming_pending(), 1);
    assert_eq!(sent(&mut s, T0), [pubrec(7)]);
    // The broker missed the PUBREC and resends: no second delivery.
    feed_quiet(&mut s, T0, incoming(QoS::ExactlyOnce, Some(7), true));
    assert_eq!(sent(&mut s, T0), [pubrec(7)]);
    assert_eq!(s.incoming_pending(), 1);
    feed_quiet(&mut s, T0, pubrel(7));
    assert_eq!(sent(&mut s, T0), [pubcomp(7)]);
    assert_eq!(s.incoming_pending(), 0);
    // The id is free again: a new message with it is delivered.
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(7), false)),
        Ok(Some(Event::Message(_)))
    ));
}

/// MQTT-4.6.0-3: the PUBREC of a QoS 2 message received again goes in
/// the order of the PUBLISHes, behind a deferred PUBREC of one that came
/// before it.
#[test]
fn a_duplicates_pubrec_waits_behind_a_deferred_one() {
    let mut s = connected();
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(1), false)),
        Ok(Some(Event::Message(_)))
    ));
    assert_eq!(sent(&mut s, T0), [pubrec(1)]);
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(2), false)),
        Ok(Some(Event::Message(_)))
    ));
    let token = s.defer_ack().unwrap();
    // The broker sends message 1 again, and again.
    for _ in 0..2 {
        assert_eq!(
            feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(1), true)),
            Ok(None)
        );
    }
    assert_eq!(sent(&mut s, T0), []);
    s.ack(token).unwrap();
    assert_eq!(sent(&mut s, T0), [pubrec(2), pubrec(1)]);
    // With nothing deferred, at once.
    assert_eq!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(1), true)),
        Ok(None)
    );
    assert_eq!(sent(&mut s, T0), [pubrec(1)]);
}

#[test]
fn pubrel_for_unknown_id_is_still_completed() {
    let mut s = connected();
    feed_quiet(&mut s, T0, pubrel(4242));
    assert_eq!(sent(&mut s, T0), [pubcomp(4242)]);
    assert_eq!(s.incoming_pending(), 0);
}

#[test]
fn incoming_qos2_beyond_capacity_forgets_the_oldest() {
    let mut s = connected();
    for id in 1..=4 {
        assert!(matches!(
            feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(id), false)),
            Ok(Some(Event::Message(_)))
        ));
    }
    assert_eq!(s.incoming_pending(), 4);
    // A fifth is still delivered; id 1, the oldest, is forgotten.
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(5), false)),
        Ok(Some(Event::Message(_)))
    ));
    assert_eq!(s.incoming_pending(), 4);
    // Known ids are still recognised as duplicates.
    for id in 2..=5 {
        feed_quiet(&mut s, T0, incoming(QoS::ExactlyOnce, Some(id), true));
    }
    assert_eq!(
        sent(&mut s, T0),
        // The deliveries' acknowledgements, then the duplicates'.
        [
            pubrec(1),
            pubrec(2),
            pubrec(3),
            pubrec(4),
            pubrec(5),
            pubrec(2),
            pubrec(3),
            pubrec(4),
            pubrec(5)
        ]
    );
    // The forgotten one is delivered again (the documented loss) and
    // remembered again, which forgets 2.
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(1), true)),
        Ok(Some(Event::Message(_)))
    ));
    assert_eq!(s.incoming_pending(), 4);
    // A PUBREL for a forgotten id is still answered.
    feed_quiet(&mut s, T0, pubrel(2));
    feed_quiet(&mut s, T0, pubrel(3));
    assert_eq!(sent(&mut s, T0), [pubrec(1), pubcomp(2), pubcomp(3)]);
    assert_eq!(s.incoming_pending(), 3);
    // QoS 0 and 1 need no slot.
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::AtLeastOnce, Some(6), false)),
        Ok(Some(Event::Message(_)))
    ));
    assert_eq!(s.incoming_pending(), 3);
}

#[test]
fn incoming_qos2_without_capacity_is_delivered_and_acknowledged() {
    // INFLIGHT = 0 leaves no slot to remember the id: the message is still
    // delivered and acknowledged, but a resend would be delivered again.
    let mut s: Session<'static, 0, 4> = session_with(256, 1024);
    connect_at(&mut s, T0, true, 0);
    for _ in 0..2 {
        assert!(matches!(
            feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(7), true)),
            Ok(Some(Event::Message(_)))
        ));
    }
    assert_eq!(s.incoming_pending(), 0);
    feed_quiet(&mut s, T0, pubrel(7));
    assert_eq!(sent(&mut s, T0), [pubrec(7), pubrec(7), pubcomp(7)]);
}

/// Feeds `bytes` through a receive buffer as small as the session's, as
/// reads of at most `chunk` bytes, and describes every event.
fn feed_bytes<const I: usize, const N: usize>(
    s: &mut Session<'static, I, N>,
    now: Instant,
    bytes: &[u8],
    chunk: usize,
) -> Vec<std::string::String> {
    let mut seen = Vec::new();
    let mut fed = 0;
    loop {
        while let Some(event) = s.poll_event(now) {
            seen.push(std::format!("{event:?}"));
        }
        if fed == bytes.len() {
            return seen;
        }
        let space = s.receive_buffer();
        let k = space.len().min(chunk).min(bytes.len() - fed);
        assert!(k > 0, "receive buffer full");
        space[..k].copy_from_slice(&bytes[fed..fed + k]);
        s.commit(k);
        fed += k;
    }
}

fn encoded(packet: Packet<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; packet.encoded_len()];
    packet.encode(&mut buf).expect("encode");
    buf
}

/// A connected session whose receive buffer holds only 16 bytes.
fn small_rx() -> Session<'static, 4, 4> {
    let mut s = Session::new(leak(16), leak(1280), Timeouts::default());
    connect_at(&mut s, T0, true, 0);
    s
}

/// A SUBACK too large for the receive buffer whose return codes fit is
/// checked as a whole one is: its codes are read once its packet id has
/// passed. A stray one with valid codes is ignored; one with a code of
/// 0x03 is malformed; one answering a request with another count of
/// codes than its filters is a violation (MQTT-3.9.3-1), at once rather
/// than at the SUBACK timeout. (One with more codes than the buffer holds
/// is still skipped: see below.)
#[test]
fn oversized_subacks_are_checked_when_their_codes_fit() {
    for chunk in [5, 16] {
        let mut s = small_rx();
        let stray = encoded(suback(9, &[1; 14]));
        assert!(stray.len() > 16);
        let mut bytes = stray;
        bytes.extend(encoded(Packet::PingResp));
        assert_eq!(feed_bytes(&mut s, T0, &bytes, chunk), ["Pong"]);

        let mut s = small_rx();
        let mut bad = std::vec![0x90, 16, 0, 9];
        bad.extend([0; 13]);
        bad.push(3);
        assert_eq!(
            feed_bytes(&mut s, T0, &bad, chunk),
            ["Closed(Malformed(SubAckReturnCode))"]
        );

        let mut s = small_rx();
        let id = s.subscribe(T0, &[sub("a", QoS::AtLeastOnce)]).unwrap();
        let _ = sent(&mut s, T0);
        assert_eq!(
            feed_bytes(&mut s, T0, &encoded(suback(id, &[1; 14])), chunk),
            ["Closed(Protocol(SubAck))"]
        );
    }
}

fn big(qos: QoS, packet_id: Option<u16>) -> Vec<u8> {
    encoded(Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: "in/t",
        packet_id,
        payload: &[b'x'; 40],
    }))
}

#[test]
fn oversized_packets_are_dropped_or_refused_by_type_and_state() {
    let mut s = Session::<'static, 4, 4>::new(leak(16), leak(1280), Timeouts::default());
    s.connect(T0, &connect_packet(true, 0)).unwrap();
    let _ = sent(&mut s, T0);
    // Before CONNACK nothing else may come, however large.
    assert_eq!(
        feed_bytes(&mut s, T0, &big(QoS::AtLeastOnce, Some(3)), 16),
        ["Closed(Protocol(Publish))"]
    );
    let mut s = small_rx();
    // A large PUBLISH is lost but acknowledged; a large SUBACK just lost.
    let large_suback = encoded(suback(9, &[0; 20]));
    let mut stream = big(QoS::AtLeastOnce, Some(3));
    stream.extend_from_slice(&large_suback);
    assert_eq!(
        feed_bytes(&mut s, T0, &stream, 5),
        [
            std::string::String::from(
                "Dropped(Dropped { len: 50, packet_type: Publish, topic: Some(\"in/t\"), qos: AtLeastOnce, packet_id: Some(3) })"
            ),
            std::format!(
                "Dropped(Dropped {{ len: {}, packet_type: SubAck, topic: None, qos: AtMostOnce, packet_id: None }})",
                large_suback.len()
            ),
        ]
    );
    assert_eq!(sent(&mut s, T0), [puback(3)]);
    // A second CONNACK is a violation, however large.
    let mut connack = vec![0x20, 20];
    connack.extend_from_slice(&[0; 20]);
    assert_eq!(
        feed_bytes(&mut s, T0, &connack, 16),
        ["Closed(Protocol(ConnAck))"]
    );
    // So is what only clients send, whatever its body.
    for first in [0x10u8, 0x82, 0xa2, 0xc0, 0xe0] {
        let mut s = small_rx();
        let mut packet = vec![first, 20];
        packet.extend_from_slice(&[0; 20]);
        let t = PacketType::from_byte(first).unwrap();
        assert_eq!(
            feed_bytes(&mut s, T0, &packet, 16),
            [std::format!("Closed(Protocol({t:?}))")]
        );
    }
}

/// What may not come now is refused from its first byte, the rest being
/// unneeded (and maybe never coming): before CONNACK anything else
/// (MQTT-3.2.0-1); once connected a second CONNACK and what only clients
/// send. What may come waits for its rest.
#[test]
fn a_packet_that_may_not_come_is_refused_from_its_first_byte() {
    let connecting = || {
        let mut s = Session::<'static, 4, 4>::new(leak(64), leak(1280), Timeouts::default());
        s.connect(T0, &connect_packet(true, 0)).unwrap();
        let _ = sent(&mut s, T0);
        s
    };
    let refused = |t: PacketType| [std::format!("Closed(Protocol({t:?}))")];
    for first in [
        0x10u8, 0x30, 0x40, 0x50, 0x62, 0x70, 0x82, 0x90, 0xb0, 0xd0, 0xe0,
    ] {
        let t = PacketType::from_byte(first).unwrap();
        assert_eq!(feed_bytes(&mut connecting(), T0, &[first], 1), refused(t));
    }
    let mut s = connecting();
    assert!(feed_bytes(&mut s, T0, &[0x20], 1).is_empty());
    assert_eq!(s.state(), State::Connecting);
    for first in [0x20u8, 0x10, 0x82, 0xa2, 0xc0, 0xe0] {
        let t = PacketType::from_byte(first).unwrap();
        assert_eq!(
            feed_bytes(&mut small_rx(), T0, &[first, 0x05], 1),
            refused(t)
        );
    }
    for first in [0x30u8, 0x40, 0x50, 0x62, 0x70, 0x90, 0xb0, 0xd0] {
        let mut s = small_rx();
        assert!(
            feed_bytes(&mut s, T0, &[first], 1).is_empty(),
            "{first:02x}"
        );
        assert_eq!(s.state(), State::Connected);
    }
}

/// So is one too large to buffer, once its header has come: before
/// CONNACK it may not come at all, however large, and what it would be
/// skipped by (a PUBLISH's topic, a SUBACK's packet id) is not awaited.
#[test]
fn an_oversized_packet_before_connack_is_refused_from_its_header() {
    for (bytes, t) in [
        (&[0x32, 48][..], PacketType::Publish),
        (&[0x90, 16], PacketType::SubAck),
    ] {
        let mut s = Session::<'static, 4, 4>::new(leak(16), leak(1280), Timeouts::default());
        s.connect(T0, &connect_packet(true, 0)).unwrap();
        let _ = sent(&mut s, T0);
        assert_eq!(
            feed_bytes(&mut s, T0, bytes, 2),
            [std::format!("Closed(Protocol({t:?}))")]
        );
    }
}

/// MQTT-4.8.0-1: an acknowledgement or PINGRESP too large to buffer
/// cannot be a valid one (their bodies are 2 and 0 bytes): malformed, as
/// when it fits, not skipped.
#[test]
fn oversized_fixed_size_packets_are_malformed() {
    for first in [0x40u8, 0x50, 0x62, 0x70, 0xb0, 0xd0] {
        let mut s = small_rx();
        let mut packet = vec![first, 20];
        packet.extend_from_slice(&[0; 20]);
        assert_eq!(
            feed_bytes(&mut s, T0, &packet, 16),
            ["Closed(Malformed(TrailingBytes))"],
            "{first:#04x}"
        );
    }
}

#[test]
fn dropped_messages_are_acknowledged_and_qos2_remembered() {
    let mut s = small_rx();
    let mut stream = big(QoS::AtLeastOnce, Some(11));
    stream.extend_from_slice(&big(QoS::ExactlyOnce, Some(12)));
    assert_eq!(feed_bytes(&mut s, T0, &stream, 7).len(), 2);
    assert_eq!(sent(&mut s, T0), [puback(11), pubrec(12)]);
    assert_eq!(s.incoming_pending(), 1);
    // A resend of the dropped QoS 2 message is not delivered.
    feed_quiet(&mut s, T0, incoming(QoS::ExactlyOnce, Some(12), true));
    assert_eq!(sent(&mut s, T0), [pubrec(12)]);
    // Dropping it again does not take a second slot.
    assert_eq!(
        feed_bytes(&mut s, T0, &big(QoS::ExactlyOnce, Some(12)), 16).len(),
        1
    );
    assert_eq!(s.incoming_pending(), 1);
}

/// A PUBLISH with a topic of `topic_len` bytes and a 20-byte payload.
fn long_topic(qos: QoS, packet_id: u16, dup: bool, topic_len: usize) -> Vec<u8> {
    let topic = "t".repeat(topic_len);
    encoded(Packet::Publish(Publish {
        dup,
        qos,
        retain: false,
        topic: &topic,
        packet_id: Some(packet_id),
        payload: &[b'x'; 20],
    }))
}

/// MQTT-4.3.2-4, MQTT-4.3.3-8: a message whose topic is longer than the
/// receive buffer cannot be reported with its topic, but it is still
/// acknowledged: its packet id is read as it passes, in whatever pieces
/// the bytes arrive, the message reported then, and the packets behind
/// it frame as usual.
#[test]
fn a_topic_longer_than_the_buffer_still_gets_its_message_acknowledged() {
    // 16 bytes: the id of a topic of 11 bytes or more does not fit (the
    // fixed header and topic length take 4); at 11 it straddles the end.
    for topic_len in [11, 12, 13, 30, 300] {
        for chunk in [1, 3, 7, 16] {
            let mut s = small_rx();
            let mut stream = long_topic(QoS::AtLeastOnce, 7, false, topic_len);
            stream.extend(long_topic(QoS::ExactlyOnce, 8, false, topic_len));
            stream.extend(encoded(incoming(QoS::AtMostOnce, None, false)));
            let len = long_topic(QoS::AtLeastOnce, 7, false, topic_len).len();
            let events = feed_bytes(&mut s, T0, &stream, chunk);
            let dropped = |qos, id| {
                std::format!(
                    "Dropped(Dropped {{ len: {len}, packet_type: Publish, topic: None, qos: {qos:?}, packet_id: Some({id}) }})"
                )
            };
            assert_eq!(events.len(), 3, "{events:?}");
            assert_eq!(events[0], dropped(QoS::AtLeastOnce, 7));
            assert_eq!(events[1], dropped(QoS::ExactlyOnce, 8));
            assert!(events[2].starts_with("Message"), "{events:?}");
            assert_eq!(
                sent(&mut s, T0),
                [puback(7), pubrec(8)],
                "{topic_len} {chunk}"
            );
            assert_eq!(s.incoming_pending(), 1);
            // Its resend is a duplicate, acknowledged again.
            let resend = long_topic(QoS::ExactlyOnce, 8, true, topic_len);
            assert_eq!(feed_bytes(&mut s, T0, &resend, chunk).len(), 1);
            assert_eq!(sent(&mut s, T0), [pubrec(8)]);
            assert_eq!(s.incoming_pending(), 1);
            assert_eq!(
                feed(&mut s, T0, pubrel(8)),
                Ok(None),
                "the PUBREL of a skipped message completes it"
            );
            assert_eq!(sent(&mut s, T0), [pubcomp(8)]);
        }
    }
    // Its id is checked as a whole packet's would be.
    let mut s = small_rx();
    let mut zero = long_topic(QoS::AtLeastOnce, 7, false, 30);
    zero[34..36].copy_from_slice(&[0, 0]);
    let events = feed_bytes(&mut s, T0, &zero, 16);
    assert_eq!(events.last().unwrap(), "Closed(Malformed(PacketId))");
    // A topic length past the packet's end is malformed.
    let mut s = small_rx();
    let mut past = long_topic(QoS::AtLeastOnce, 7, false, 30);
    past[2..4].copy_from_slice(&60u16.to_be_bytes());
    assert_eq!(
        feed_bytes(&mut s, T0, &past, 16),
        ["Closed(Malformed(Truncated))"]
    );
}

// ------------------------------------------------------------ subscribing

#[test]
fn subscribe_suback_pairs_filters_with_codes() {
    let mut s = connected();
    let filters = [sub("a/+", QoS::AtLeastOnce), sub("b/#", QoS::ExactlyOnce)];
    assert_eq!(s.subscribe(T0, &filters), Ok(1));
    assert_eq!(
        sent(&mut s, T0),
        [Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: SubscribeFilters::new(&filters),
        })]
    );
    assert!(s.request_pending(1));
    assert_eq!(s.poll_timeout(), Some(secs(10)));
    let event = feed(&mut s, secs(1), suback(1, &[0x01, 0x00])).unwrap();
    let Some(Event::Subscribed {
        packet_id,
        filters: got,
        codes,
        ..
    }) = event
    else {
        panic!("{event:?}")
    };
    assert_eq!(packet_id, 1);
    let pairs: Vec<_> = got.iter().zip(codes.iter()).collect();
    assert_eq!(
        pairs,
        [
            (filters[0], Code::Success(QoS::AtLeastOnce)),
            (filters[1], Code::Success(QoS::AtMostOnce)),
        ]
    );
    assert!(!s.request_pending(1));
    assert_eq!(s.poll_timeout(), None);
    // The list keeps the requested QoS.
    assert_eq!(
        subscriptions(&s),
        [
            ("a/+".into(), QoS::AtLeastOnce),
            ("b/#".into(), QoS::ExactlyOnce)
        ]
    );
}

#[test]
fn refused_filter_leaves_the_subscription_list() {
    let mut s = connected();
    s.subscribe(
        T0,
        &[
            sub("ok", QoS::AtMostOnce),
            sub("no", QoS::AtLeastOnce),
            sub("ok2", QoS::AtLeastOnce),
        ],
    )
    .unwrap();
    sent(&mut s, T0);
    let event = feed(&mut s, T0, suback(1, &[0x00, 0x80, 0x01])).unwrap();
    let Some(Event::Subscribed { filters, codes, .. }) = event else {
        panic!("{event:?}")
    };
    assert_eq!(filters.len(), 3);
    assert_eq!(codes.iter().nth(1), Some(Code::Failure));
    assert_eq!(
        subscriptions(&s),
        [
            ("ok".into(), QoS::AtMostOnce),
            ("ok2".into(), QoS::AtLeastOnce)
        ]
    );
}

#[test]
fn suback_with_wrong_number_of_codes_is_protocol_error() {
    for codes in [&[0u8][..], &[0, 1, 2][..]] {
        let mut s = connected();
        s.subscribe(T0, &[sub("a", QoS::AtMostOnce), sub("b", QoS::AtMostOnce)])
            .unwrap();
        sent(&mut s, T0);
        assert_eq!(
            feed(&mut s, T0, suback(1, codes)),
            Err(Error::Broker(BrokerError::Protocol(PacketType::SubAck)))
        );
    }
}

#[test]
fn subscribing_again_updates_the_qos() {
    let mut s = connected();
    s.subscribe(T0, &[sub("t", QoS::AtMostOnce)]).unwrap();
    s.subscribe(T0, &[sub("t", QoS::ExactlyOnce)]).unwrap();
    assert_eq!(subscriptions(&s), [("t".into(), QoS::ExactlyOnce)]);
}

#[test]
fn subscription_list_full() {
    let mut s = connected();
    for f in ["a", "b", "c"] {
        let id = s.subscribe(T0, &[sub(f, QoS::AtMostOnce)]).unwrap();
        feed(&mut s, T0, suback(id, &[0])).unwrap();
    }
    assert_eq!(
        s.subscribe(T0, &[sub("d", QoS::AtMostOnce), sub("e", QoS::AtMostOnce)]),
        Err(SessionError::Resource(ResourceError::SubscriptionsFull))
    );
    // An existing filter takes no new slot.
    s.subscribe(T0, &[sub("a", QoS::AtLeastOnce), sub("d", QoS::AtMostOnce)])
        .unwrap();
    assert_eq!(s.subscriptions().count(), 4);
    assert_eq!(
        s.subscribe(T0, &[sub("e", QoS::AtMostOnce)]),
        Err(SessionError::Resource(ResourceError::SubscriptionsFull))
    );
}

#[test]
fn invalid_filter_is_refused_without_state() {
    let mut s = connected();
    assert!(matches!(
        s.subscribe(T0, &[sub("a/#/b", QoS::AtMostOnce)]),
        Err(SessionError::Usage(UsageError::Encode(_)))
    ));
    assert!(matches!(
        s.subscribe(T0, &[]),
        Err(SessionError::Usage(UsageError::Encode(_)))
    ));
    assert!(matches!(
        s.unsubscribe(T0, &["+x"]),
        Err(SessionError::Usage(UsageError::Encode(_)))
    ));
    assert_eq!(s.subscriptions().count(), 0);
    assert!(sent(&mut s, T0).is_empty());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn unsubscribe_unsuback_updates_the_list() {
    let mut s = connected();
    s.subscribe(T0, &[sub("a", QoS::AtMostOnce), sub("b", QoS::AtLeastOnce)])
        .unwrap();
    feed(&mut s, T0, suback(1, &[0, 1])).unwrap();
    sent(&mut s, T0);
    assert_eq!(s.unsubscribe(T0, &["a", "never"]), Ok(2));
    assert_eq!(
        sent(&mut s, T0),
        [Packet::Unsubscribe(Unsubscribe {
            packet_id: 2,
            filters: UnsubscribeFilters::new(&["a", "never"]),
        })]
    );
    assert_eq!(subscriptions(&s), [("b".into(), QoS::AtLeastOnce)]);
    assert!(s.request_pending(2));
    let event = feed(&mut s, T0, unsuback(2)).unwrap();
    let Some(Event::Unsubscribed {
        packet_id, filters, ..
    }) = event
    else {
        panic!("{event:?}")
    };
    assert_eq!(packet_id, 2);
    assert_eq!(filters.iter().collect::<Vec<_>>(), ["a", "never"]);
    assert!(!s.request_pending(2));
    feed_quiet(&mut s, T0, unsuback(2));
}

#[test]
fn suback_and_unsuback_timeouts() {
    let mut s = connected();
    s.subscribe(secs(1), &[sub("a", QoS::AtMostOnce)]).unwrap();
    assert_eq!(s.poll_timeout(), Some(secs(11)));
    assert_eq!(timeout(&mut s, ms(10_999)), Ok(()));
    assert_eq!(
        timeout(&mut s, secs(11)),
        Err(Error::Timeout(AckKind::SubAck))
    );
    let mut s = connected();
    s.unsubscribe(secs(2), &["a"]).unwrap();
    assert_eq!(s.poll_timeout(), Some(secs(12)));
    assert_eq!(timeout(&mut s, ms(11_999)), Ok(()));
    assert_eq!(
        timeout(&mut s, secs(12)),
        Err(Error::Timeout(AckKind::UnsubAck))
    );
}

#[test]
fn poll_timeout_is_the_earliest_deadline() {
    let mut s = session();
    connect_at(&mut s, T0, true, 60);
    s.set_timeouts(Timeouts {
        suback: Duration::from_secs(3),
        puback: Duration::from_secs(5),
        ..Timeouts::default()
    });
    s.publish(secs(1), &msg("t", QoS::AtLeastOnce)).unwrap(); // due 6
    s.subscribe(secs(2), &[sub("t", QoS::AtMostOnce)]).unwrap(); // due 5
    sent(&mut s, secs(2));
    assert_eq!(s.poll_timeout(), Some(secs(5)));
    feed(&mut s, secs(2), suback(2, &[0])).unwrap();
    assert_eq!(s.poll_timeout(), Some(secs(6)));
    feed(&mut s, secs(2), puback(1)).unwrap();
    // 2 + 60 - 6: a tenth of the keep-alive early.
    assert_eq!(s.poll_timeout(), Some(secs(56)), "only the keep-alive left");
}

// ------------------------------------------------------------- packet ids

#[test]
fn packet_ids_skip_zero_and_wrap() {
    let mut s = connected();
    s.p.next_packet_id = 65534;
    assert_eq!(s.publish(T0, &msg("t", QoS::AtLeastOnce)), Ok(Some(65534)));
    assert_eq!(s.publish(T0, &msg("t", QoS::AtLeastOnce)), Ok(Some(65535)));
    assert_eq!(s.subscribe(T0, &[sub("t", QoS::AtMostOnce)]), Ok(1));
    assert_eq!(s.publish(T0, &msg("t", QoS::ExactlyOnce)), Ok(Some(2)));
    let out = sent(&mut s, T0);
    assert_eq!(out[0], wire_publish("t", QoS::AtLeastOnce, 65534, false));
    assert_eq!(out[1], wire_publish("t", QoS::AtLeastOnce, 65535, false));
}

#[test]
fn packet_ids_are_unique_among_those_in_flight() {
    let mut s = connected();
    s.publish(T0, &msg("t", QoS::AtLeastOnce)).unwrap(); // 1
    s.subscribe(T0, &[sub("t", QoS::AtMostOnce)]).unwrap(); // 2
    s.publish(T0, &msg("t", QoS::AtLeastOnce)).unwrap(); // 3
    let _ = sent(&mut s, T0);
    feed(&mut s, T0, puback(3)).unwrap();
    // Wrap around onto ids 1 and 2, still taken.
    s.p.next_packet_id = 65535;
    assert_eq!(s.publish(T0, &msg("t", QoS::AtLeastOnce)), Ok(Some(65535)));
    assert_eq!(s.publish(T0, &msg("t", QoS::AtLeastOnce)), Ok(Some(3)));
    assert_eq!(s.unsubscribe(T0, &["t"]), Ok(4));
    let mut all: Vec<u16> = ids(&s).iter().map(|&(id, _)| id).collect();
    assert_eq!(all, [1, 65535, 3]);
    all.extend([2, 4]);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 5);
}

// ------------------------------------------------------------- capacities

#[test]
fn inflight_full_and_freed_by_an_ack() {
    let mut s = connected();
    for id in 1..=4 {
        assert_eq!(s.publish(T0, &msg("t", QoS::AtLeastOnce)), Ok(Some(id)));
    }
    assert!(!s.can_publish());
    assert_eq!(
        s.publish(T0, &msg("t", QoS::ExactlyOnce)),
        Err(SessionError::Resource(ResourceError::InflightFull))
    );
    // QoS 0 needs no slot.
    assert_eq!(s.publish(T0, &msg("t", QoS::AtMostOnce)), Ok(None));
    sent(&mut s, T0);
    feed(&mut s, T0, puback(2)).unwrap();
    assert!(s.can_publish());
    assert_eq!(s.publish(T0, &msg("t", QoS::AtLeastOnce)), Ok(Some(5)));
    assert_eq!(s.inflight(), 4);
    assert_eq!(
        ids(&s).iter().map(|&(id, _)| id).collect::<Vec<_>>(),
        [1, 3, 4, 5]
    );
}

#[test]
fn requests_have_their_own_window() {
    let mut s = connected();
    for i in 0..4 {
        s.unsubscribe(T0, &["x"]).unwrap();
        assert!(s.request_pending(i + 1));
    }
    assert_eq!(
        s.unsubscribe(T0, &["x"]),
        Err(SessionError::Resource(ResourceError::InflightFull))
    );
    assert_eq!(
        s.subscribe(T0, &[sub("x", QoS::AtMostOnce)]),
        Err(SessionError::Resource(ResourceError::InflightFull))
    );
    assert_eq!(
        s.subscriptions().count(),
        0,
        "a refused subscribe is not listed"
    );
    // Publishing is not limited by the requests.
    assert!(matches!(
        s.publish(T0, &msg("t", QoS::AtLeastOnce)),
        Ok(Some(_))
    ));
}

#[test]
fn store_full() {
    // 55 bytes of arena, 15 of them kept for the CONNECT: two 18-byte
    // PUBLISH packets fit, three do not.
    let mut s: Session<'static, 4, 4> = session_with(0, 55);
    connect_at(&mut s, T0, true, 0);
    let p = msg("topic", QoS::AtLeastOnce);
    assert_eq!(
        wire_publish("topic", QoS::AtLeastOnce, 1, false).encoded_len(),
        18
    );
    assert_eq!(s.publish(T0, &p), Ok(Some(1)));
    assert_eq!(s.publish(T0, &p), Ok(Some(2)));
    assert_eq!(
        s.publish(T0, &p),
        Err(SessionError::Resource(ResourceError::StoreFull))
    );
    assert_eq!(s.inflight(), 2);
    assert_eq!(
        s.subscribe(T0, &[sub("f", QoS::AtMostOnce)]),
        Err(SessionError::Resource(ResourceError::StoreFull))
    );
    assert_eq!(
        s.unsubscribe(T0, &["f"]),
        Err(SessionError::Resource(ResourceError::StoreFull))
    );
    assert_eq!(s.subscriptions().count(), 0);
    assert_eq!(
        sent(&mut s, T0).len(),
        2,
        "nothing queued for the refused ones"
    );
    // An ack frees the bytes.
    feed(&mut s, T0, puback(1)).unwrap();
    assert!(s.publish(T0, &p).is_ok());
}

#[test]
fn transmit_buffer_too_small() {
    let mut s: Session<'static, 4, 4> = session_with(24, 0);
    connect_at(&mut s, T0, true, 0);
    // A packet larger than the whole buffer.
    let big = Publish {
        payload: &[0; 30],
        ..msg("t", QoS::AtMostOnce)
    };
    let needed = Packet::Publish(big).encoded_len();
    assert_eq!(
        s.publish(T0, &big),
        Err(SessionError::Resource(
            ResourceError::TransmitBufferTooSmall { needed }
        ))
    );
    assert_eq!(s.inflight(), 0, "a refused publish keeps no state");
    // One that fits an empty buffer but not behind what is queued.
    let p = msg("t/0123456", QoS::AtMostOnce); // 13 bytes
    s.publish(T0, &p).unwrap();
    assert!(matches!(
        s.publish(T0, &p),
        Err(SessionError::Resource(
            ResourceError::TransmitBufferTooSmall { .. }
        ))
    ));
    // After writing (and reporting), it fits.
    assert_eq!(sent(&mut s, T0).len(), 1);
    assert!(s.publish(T0, &p).is_ok());
}

#[test]
fn a_qos1_or_qos2_message_needs_room_in_the_store_only() {
    // Written straight from the store: the transmit queue holds no copy,
    // so a message larger than the whole queue goes out, whole and in
    // order with the queue's own packets.
    let mut s: Session<'static, 4, 4> = session_with(24, 1024);
    connect_at(&mut s, T0, true, 0);
    let big = |qos| Publish {
        payload: &[7; 30],
        ..msg("t", qos)
    };
    s.publish(T0, &msg("a", QoS::AtMostOnce)).unwrap();
    assert_eq!(s.publish(T0, &big(QoS::AtLeastOnce)), Ok(Some(1)));
    s.publish(T0, &msg("b", QoS::AtMostOnce)).unwrap();
    assert_eq!(s.publish(T0, &big(QoS::ExactlyOnce)), Ok(Some(2)));
    let qos0 = Packet::Publish(msg("a", QoS::AtMostOnce)).encoded_len();
    assert_eq!(
        s.p.store.tx_pending().len(),
        2 * qos0,
        "the two QoS 0 messages only"
    );
    let out = sent(&mut s, T0);
    let mut want = vec![Packet::Publish(msg("a", QoS::AtMostOnce))];
    want.push(Packet::Publish(Publish {
        packet_id: Some(1),
        ..big(QoS::AtLeastOnce)
    }));
    want.push(Packet::Publish(msg("b", QoS::AtMostOnce)));
    want.push(Packet::Publish(Publish {
        packet_id: Some(2),
        ..big(QoS::ExactlyOnce)
    }));
    assert_eq!(out, want);
    assert!(s.transmit_idle());
    // The resend after a reconnect comes from the store too, with DUP.
    let mut s = persistent();
    s.publish(T0, &big(QoS::AtLeastOnce)).unwrap();
    let _ = sent(&mut s, T0);
    s.connection_lost();
    s.connect(T0, &connect_packet(false, 0)).unwrap();
    sent(&mut s, T0);
    feed(&mut s, T0, connack(true, ConnectReturnCode::Accepted)).unwrap();
    let out = sent(&mut s, T0);
    assert_eq!(
        out,
        [Packet::Publish(Publish {
            dup: true,
            packet_id: Some(1),
            ..big(QoS::AtLeastOnce)
        })]
    );
}

#[test]
fn stored_publishes_keep_the_session_busy_and_go_once_acknowledged() {
    let mut s = connected();
    for id in 1..=3 {
        assert_eq!(s.publish(T0, &msg("t", QoS::AtLeastOnce)), Ok(Some(id)));
    }
    // Nothing in the transmit queue, three PUBLISHes to write.
    assert!(s.p.store.tx.is_empty());
    assert!(!s.transmit_idle());
    // Acknowledgements before anything is written (a broker answering a
    // resend from the original): the middle one, then the first.
    for id in [2, 1] {
        assert!(matches!(
            feed(&mut s, T0, puback(id)),
            Ok(Some(Event::Published { packet_id, .. })) if packet_id == id
        ));
    }
    assert_eq!(
        sent(&mut s, T0),
        [wire_publish("t", QoS::AtLeastOnce, 3, false)]
    );
    assert!(s.transmit_idle());
}

#[test]
fn a_stored_publish_handed_out_goes_whole_even_if_acknowledged_before_the_write_is_told() {
    // A driver that copies what `poll_transmit` returned into a socket
    // buffer, and tells the session of the write only after handling what
    // was read meanwhile: the bytes it holds are the whole packet.
    let mut s = connected();
    let pa = Publish {
        payload: &[1; 10],
        ..msg("a", QoS::AtLeastOnce)
    };
    let pb = Publish {
        payload: &[2; 40],
        ..msg("b", QoS::AtLeastOnce)
    };
    s.publish(T0, &pa).unwrap();
    s.publish(T0, &pb).unwrap();
    let mut wire = s.poll_transmit(T0).to_vec();
    let n = wire.len();
    assert!(matches!(
        feed(&mut s, T0, puback(1)),
        Ok(Some(Event::Published { packet_id: 1, .. }))
    ));
    s.handle_transmit(T0, n);
    loop {
        let p = s.poll_transmit(T0).to_vec();
        if p.is_empty() {
            break;
        }
        s.handle_transmit(T0, p.len());
        wire.extend(p);
    }
    assert_eq!(
        split(Box::leak(wire.into_boxed_slice())),
        [
            Packet::Publish(Publish {
                packet_id: Some(1),
                ..pa
            }),
            Packet::Publish(Publish {
                packet_id: Some(2),
                ..pb
            }),
        ]
    );
}

#[test]
fn can_publish_agrees_with_publish_while_a_done_entry_is_being_written() {
    let mut s: Session<'static, 1, 1> = session_with(256, 1024);
    connect_at(&mut s, T0, true, 0);
    s.publish(T0, &msg("t", QoS::AtLeastOnce)).unwrap();
    let _ = s.poll_transmit(T0);
    s.handle_transmit(T0, 3);
    assert!(matches!(
        feed(&mut s, T0, puback(1)),
        Ok(Some(Event::Published { packet_id: 1, .. }))
    ));
    // Its entry stays until its bytes are out: the window is full.
    assert!(!s.can_publish());
    assert_eq!(
        s.publish(T0, &msg("u", QoS::AtLeastOnce)),
        Err(SessionError::Resource(ResourceError::InflightFull))
    );
    // The rest of it written.
    let rest = s.poll_transmit(T0).len();
    s.handle_transmit(T0, rest);
    assert!(s.can_publish());
    assert_eq!(s.publish(T0, &msg("u", QoS::AtLeastOnce)), Ok(Some(2)));
}

#[test]
fn a_pinned_entry_moved_by_compaction_stays_whole() {
    // A done and collected (garbage at the front), B done and half
    // written, then C needs the garbage: the compaction moves B.
    let mut s: Session<'static, 4, 4> = session_with(256, 60);
    connect_at(&mut s, T0, true, 0);
    let pa = Publish {
        payload: &[1; 10],
        ..msg("a", QoS::AtLeastOnce)
    };
    let pb = Publish {
        payload: &[2; 10],
        ..msg("b", QoS::AtLeastOnce)
    };
    let pc = Publish {
        payload: &[3; 30],
        ..msg("c", QoS::AtLeastOnce)
    };
    assert_eq!(s.publish(T0, &pa), Ok(Some(1)));
    assert_eq!(s.publish(T0, &pb), Ok(Some(2)));
    let mut wire = s.poll_transmit(T0).to_vec();
    s.handle_transmit(T0, wire.len());
    let b = s.poll_transmit(T0).to_vec();
    s.handle_transmit(T0, 5);
    wire.extend(&b[..5]);
    let _ = feed(&mut s, T0, puback(1));
    let _ = feed(&mut s, T0, puback(2));
    assert_eq!(s.publish(T0, &pc), Ok(Some(3)));
    loop {
        let p = s.poll_transmit(T0).to_vec();
        if p.is_empty() {
            break;
        }
        s.handle_transmit(T0, p.len());
        wire.extend(p);
    }
    assert_eq!(
        split(Box::leak(wire.into_boxed_slice())),
        [
            Packet::Publish(Publish {
                packet_id: Some(1),
                ..pa
            }),
            Packet::Publish(Publish {
                packet_id: Some(2),
                ..pb
            }),
            Packet::Publish(Publish {
                packet_id: Some(3),
                ..pc
            }),
        ]
    );
}

#[test]
fn a_stored_publish_whose_entry_is_gone_is_skipped_not_stalled() {
    // Nothing removes an entry while its PUBLISH is queued; were it gone,
    // the queue would move on rather than wait for ever.
    let mut s = connected();
    s.publish(T0, &msg("t", QoS::AtLeastOnce)).unwrap();
    s.p.store.outgoing.clear();
    s.publish(T0, &msg("after", QoS::AtMostOnce)).unwrap();
    assert_eq!(
        sent(&mut s, T0),
        [Packet::Publish(msg("after", QoS::AtMostOnce))]
    );
}

#[test]
fn a_stored_publish_being_written_goes_out_whole_whatever_its_acks() {
    // The broker cannot have it yet, but an early acknowledgement still
    // completes the message, as one for a queued packet always did; its
    // bytes stay in the store until written, so the stream stays whole.
    let mut s = connected();
    let p = Publish {
        payload: &[5; 40],
        ..msg("t", QoS::AtLeastOnce)
    };
    s.publish(T0, &p).unwrap();
    s.publish(T0, &msg("u", QoS::ExactlyOnce)).unwrap();
    let whole = s.poll_transmit(T0).to_vec();
    s.handle_transmit(T0, 3);
    assert!(matches!(
        feed(&mut s, T0, puback(1)),
        Ok(Some(Event::Published { packet_id: 1, .. }))
    ));
    // New traffic after it: the done entry is kept, its id not reused,
    // and its bytes not moved or overwritten.
    assert_eq!(s.publish(T0, &p), Ok(Some(3)));
    assert_eq!(s.poll_transmit(T0), &whole[3..]);
    // A PUBREC for one not started: it still goes (a resend keeps its
    // place among the resends), and its PUBREL behind it.
    feed_quiet(&mut s, T0, pubrec(2));
    let mut wire = whole[..3].to_vec();
    loop {
        let pending = s.poll_transmit(T0).to_vec();
        if pending.is_empty() {
            break;
        }
        s.handle_transmit(T0, pending.len());
        wire.extend(pending);
    }
    assert_eq!(
        split(Box::leak(wire.into_boxed_slice())),
        [
            Packet::Publish(Publish {
                packet_id: Some(1),
                ..p
            }),
            wire_publish("u", QoS::ExactlyOnce, 2, false),
            Packet::Publish(Publish {
                packet_id: Some(3),
                ..p
            }),
            pubrel(2),
        ]
    );
    assert_eq!(ids(&s), [(2, Stage::AwaitPubComp), (3, Stage::AwaitPubAck)]);
}

#[test]
fn partial_writes_keep_the_rest() {
    let mut s = connected();
    s.publish(T0, &msg("t", QoS::AtLeastOnce)).unwrap();
    let whole = s.poll_transmit(T0).to_vec();
    s.handle_transmit(T0, 3);
    assert_eq!(s.poll_transmit(T0), &whole[3..]);
    // Claiming more than pending is clamped.
    s.handle_transmit(T0, 1000);
    assert!(s.poll_transmit(T0).is_empty());
}

// ------------------------------------------------------------ reconnecting

/// A persistent session with two subscriptions, a QoS 1 message (id 3),
/// a QoS 2 message past PUBREC (id 4) and a QoS 2 message (id 5) in flight,
/// then the connection lost.
fn with_state_then_lost() -> S {
    let mut s = persistent();
    s.subscribe(T0, &[sub("a/+", QoS::AtLeastOnce)]).unwrap(); // 1
    s.subscribe(T0, &[sub("b", QoS::ExactlyOnce)]).unwrap(); // 2
    feed(&mut s, T0, suback(1, &[1])).unwrap();
    feed(&mut s, T0, suback(2, &[2])).unwrap();
    assert_eq!(s.publish(T0, &msg("m/1", QoS::AtLeastOnce)), Ok(Some(3)));
    assert_eq!(s.publish(T0, &msg("m/2", QoS::ExactlyOnce)), Ok(Some(4)));
    assert_eq!(s.publish(T0, &msg("m/3", QoS::ExactlyOnce)), Ok(Some(5)));
    sent(&mut s, T0);
    feed(&mut s, T0, pubrec(4)).unwrap();
    // The PUBREL is queued but the connection drops before it is written.
    s.connection_lost();
    assert_eq!(s.state(), State::Disconnected);
    assert!(s.poll_transmit(T0).is_empty(), "queued bytes are dropped");
    s
}

#[test]
fn reconnect_without_session_resubscribes_then_resends_in_order() {
    let mut s = with_state_then_lost();
    s.connect(secs(30), &connect_packet(false, 0)).unwrap();
    assert_eq!(
        sent(&mut s, secs(30)),
        [Packet::Connect(connect_packet(false, 0))],
        "nothing but CONNECT before CONNACK"
    );
    assert_eq!(
        feed(&mut s, secs(31), accepted()),
        Ok(Some(Event::Connected(Connected::new(false, 2, 3))))
    );
    let out = sent(&mut s, secs(31));
    let filters = [sub("a/+", QoS::AtLeastOnce), sub("b", QoS::ExactlyOnce)];
    assert_eq!(
        out,
        [
            Packet::Subscribe(Subscribe {
                packet_id: 6,
                filters: SubscribeFilters::new(&filters),
            }),
            wire_publish("m/1", QoS::AtLeastOnce, 3, true),
            // MQTT-4.4.0-1 to the letter, even though the broker has no
            // session: the message past PUBREC gets its PUBREL again.
            pubrel(4),
            wire_publish("m/3", QoS::ExactlyOnce, 5, true),
        ]
    );
    assert!(!s.is_resending());
    // The resubscription is an ordinary request.
    assert!(matches!(
        feed(&mut s, secs(31), suback(6, &[1, 2])),
        Ok(Some(Event::Subscribed { packet_id: 6, .. }))
    ));
    // And the handshakes go on from there.
    assert!(matches!(
        feed(&mut s, secs(32), pubcomp(4)),
        Ok(Some(Event::Published { packet_id: 4, .. }))
    ));
    assert!(matches!(
        feed(&mut s, secs(32), puback(3)),
        Ok(Some(Event::Published { packet_id: 3, .. }))
    ));
    assert_eq!(ids(&s), [(5, Stage::AwaitPubRec)]);
}

#[test]
fn republish_on_lost_session_resends_the_publish_past_pubrec() {
    let mut s = with_state_then_lost();
    s.set_options(Options {
        republish_on_lost_session: true,
        ..Options::DEFAULT
    });
    s.connect(secs(30), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(30));
    feed(&mut s, secs(31), accepted()).unwrap();
    let out = sent(&mut s, secs(31));
    assert_eq!(
        out[1..],
        [
            wire_publish("m/1", QoS::AtLeastOnce, 3, true),
            // The new broker never saw it: it starts over with its PUBLISH.
            wire_publish("m/2", QoS::ExactlyOnce, 4, true),
            wire_publish("m/3", QoS::ExactlyOnce, 5, true),
        ]
    );
    // A PUBCOMP for the old handshake no longer matches; the new one does.
    feed_quiet(&mut s, secs(32), pubcomp(4));
    feed_quiet(&mut s, secs(32), pubrec(4));
    assert_eq!(sent(&mut s, secs(32)), [pubrel(4)]);
    // With the session kept, the option changes nothing.
    let mut s = with_state_then_lost();
    s.set_options(Options {
        republish_on_lost_session: true,
        ..Options::DEFAULT
    });
    s.connect(secs(30), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(30));
    feed(&mut s, secs(31), connack(true, ConnectReturnCode::Accepted)).unwrap();
    assert_eq!(
        sent(&mut s, secs(31)),
        [
            wire_publish("m/1", QoS::AtLeastOnce, 3, true),
            pubrel(4),
            wire_publish("m/3", QoS::ExactlyOnce, 5, true),
        ]
    );
}

#[test]
fn resubscribe_can_be_turned_off() {
    let mut s = with_state_then_lost();
    s.set_options(Options {
        resubscribe: false,
        ..Options::DEFAULT
    });
    s.connect(secs(30), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(30));
    assert_eq!(
        feed(&mut s, secs(31), accepted()),
        Ok(Some(Event::Connected(Connected::new(false, 0, 3))))
    );
    let out = sent(&mut s, secs(31));
    assert!(
        !out.iter().any(|p| matches!(p, Packet::Subscribe(_))),
        "{out:?}"
    );
    // The list is kept, for the application to use.
    assert_eq!(s.subscriptions().count(), 2);
}

/// MQTT-3.1.2-6: the state of a clean session (a message in flight, a
/// QoS 2 message received) is not reused by the persistent session that
/// follows it: the message is discarded, not resent.
#[test]
fn a_clean_sessions_state_is_not_reused_by_a_persistent_one() {
    let mut s = connected();
    let id = s
        .publish(T0, &msg("m/1", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(7), false)),
        Ok(Some(Event::Message(_)))
    ));
    sent(&mut s, T0);
    assert_eq!(s.incoming_pending(), 1);
    s.connection_lost();
    s.connect(secs(1), &connect_packet(false, 0)).unwrap();
    assert!(matches!(
        s.poll_event(secs(1)),
        Some(Event::Discarded { packet_id, .. }) if packet_id == id
    ));
    sent(&mut s, secs(1));
    assert_eq!(
        feed(&mut s, secs(1), connack(true, ConnectReturnCode::Accepted)),
        Ok(Some(Event::Connected(Connected::new(true, 0, 0))))
    );
    assert_eq!(sent(&mut s, secs(1)), []);
    assert_eq!(s.incoming_pending(), 0);
}

#[test]
fn reconnect_with_session_present_resends_without_resubscribing() {
    let mut s = with_state_then_lost();
    s.connect(secs(30), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(30));
    assert_eq!(
        feed(&mut s, secs(30), connack(true, ConnectReturnCode::Accepted)),
        Ok(Some(Event::Connected(Connected::new(true, 0, 3))))
    );
    assert_eq!(
        sent(&mut s, secs(30)),
        [
            wire_publish("m/1", QoS::AtLeastOnce, 3, true),
            pubrel(4),
            wire_publish("m/3", QoS::ExactlyOnce, 5, true),
        ]
    );
    assert_eq!(s.subscriptions().count(), 2);
}

#[test]
fn resends_keep_dup_and_id_across_two_reconnects() {
    let mut s = with_state_then_lost();
    for t in [30, 60] {
        s.connect(secs(t), &connect_packet(false, 0)).unwrap();
        sent(&mut s, secs(t));
        feed(&mut s, secs(t), connack(true, ConnectReturnCode::Accepted)).unwrap();
        let out = sent(&mut s, secs(t));
        assert_eq!(out[0], wire_publish("m/1", QoS::AtLeastOnce, 3, true));
        s.connection_lost();
    }
}

#[test]
fn resend_deadlines_restart_at_connack() {
    let mut s = with_state_then_lost();
    s.connect(secs(60), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(60));
    feed(&mut s, secs(61), connack(true, ConnectReturnCode::Accepted)).unwrap();
    // The old deadlines (10 s) have long passed; the resends are not late:
    // their waits start when they are queued.
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(timeout(&mut s, secs(61)), Ok(()));
    sent(&mut s, secs(62));
    assert_eq!(timeout(&mut s, ms(71_999)), Ok(()));
    assert_eq!(
        timeout(&mut s, secs(72)),
        Err(Error::Timeout(AckKind::PubAck))
    );
}

#[test]
fn clean_session_drops_inflight_but_keeps_subscriptions() {
    let mut s2 = with_state_then_lost();
    s2.connect(secs(30), &connect_packet(true, 0)).unwrap();
    assert_eq!(s2.inflight(), 0);
    assert_eq!(s2.incoming_pending(), 0);
    sent(&mut s2, secs(30));
    // Each discarded message is reported once, before anything else.
    let mut discarded = Vec::new();
    while let Some(Event::Discarded { packet_id, .. }) = s2.poll_event(secs(30)) {
        discarded.push(packet_id);
    }
    assert_eq!(discarded, [3, 4, 5]);
    for id in [3, 4, 5] {
        assert_eq!(s2.publish_outcome(id), Outcome::Discarded);
    }
    assert_eq!(
        feed(&mut s2, secs(30), accepted()),
        Ok(Some(Event::Connected(Connected::new(false, 2, 0))))
    );
    let out = sent(&mut s2, secs(30));
    assert_eq!(out.len(), 1);
    assert!(matches!(out[0], Packet::Subscribe(_)));
    // Stale acks are ignored.
    feed_quiet(&mut s2, secs(30), puback(3));
    feed_quiet(&mut s2, secs(30), pubrec(5));
    assert!(sent(&mut s2, secs(30)).is_empty());
    // Ids go on (the resubscription took 6).
    assert_eq!(
        s2.publish(secs(30), &msg("t", QoS::AtLeastOnce)),
        Ok(Some(7))
    );
}

#[test]
fn incoming_qos2_state_survives_a_reconnect() {
    let mut s = persistent();
    feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(8), false)).unwrap();
    s.connection_lost();
    s.connect(secs(5), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(5));
    feed(&mut s, secs(5), connack(true, ConnectReturnCode::Accepted)).unwrap();
    feed_quiet(&mut s, secs(5), incoming(QoS::ExactlyOnce, Some(8), true));
    assert_eq!(sent(&mut s, secs(5)), [pubrec(8)]);
    feed_quiet(&mut s, secs(5), pubrel(8));
    assert_eq!(sent(&mut s, secs(5)), [pubcomp(8)]);
}

#[test]
fn connection_lost_drops_pending_requests() {
    let mut s = persistent();
    s.subscribe(T0, &[sub("a", QoS::AtMostOnce)]).unwrap();
    s.unsubscribe(T0, &["z"]).unwrap();
    s.connection_lost();
    assert!(!s.request_pending(1));
    assert!(!s.request_pending(2));
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(subscriptions(&s), [("a".into(), QoS::AtMostOnce)]);
    // A late SUBACK on the new connection is ignored.
    s.connect(T0, &connect_packet(false, 0)).unwrap();
    feed(&mut s, T0, connack(true, ConnectReturnCode::Accepted)).unwrap();
    feed_quiet(&mut s, T0, suback(1, &[0]));
}

/// Three QoS 1 messages to resend, behind a CONNECT in a small queue.
fn tight_resending() -> Session<'static, 4, 4> {
    let mut s: Session<'static, 4, 4> = session_with(24, 1024);
    connect_at(&mut s, T0, false, 0);
    for id in 1..=3 {
        assert_eq!(s.publish(T0, &msg("t", QoS::AtLeastOnce)), Ok(Some(id)));
        sent(&mut s, T0);
    }
    s.connection_lost();
    s.connect(secs(1), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(1));
    feed(&mut s, secs(1), connack(true, ConnectReturnCode::Accepted)).unwrap();
    s
}

#[test]
fn new_traffic_waits_for_the_resends() {
    let mut s = six_resends_in_a_small_queue();
    assert!(s.is_resending());
    assert!(!s.transmit_idle());
    let first = s.poll_transmit(secs(1)).to_vec();
    assert!(s.is_resending(), "the PUBREL of 6 has no room yet");
    assert!(matches!(
        s.publish(secs(1), &msg("new", QoS::AtMostOnce)),
        Err(SessionError::Resource(
            ResourceError::TransmitBufferTooSmall { .. }
        ))
    ));
    // (The arena is full as well: the refusal says so first.)
    assert!(s.publish(secs(1), &msg("new", QoS::AtLeastOnce)).is_err());
    assert!(
        s.subscribe(secs(1), &[sub("new", QoS::AtMostOnce)])
            .is_err()
    );
    assert_eq!(s.inflight(), 6);
    assert_eq!(s.subscriptions().count(), 0);
    s.handle_transmit(secs(1), first.len());
    let mut out = split(Box::leak(first.into_boxed_slice()));
    out.extend(sent(&mut s, secs(1)));
    assert!(!s.is_resending());
    // Two completions make room in the arena for the new message.
    for id in [2, 3] {
        assert!(matches!(
            feed(&mut s, secs(1), pubcomp(id)),
            Ok(Some(Event::Published { .. }))
        ));
    }
    let id = s.publish(secs(1), &msg("new", QoS::AtLeastOnce)).unwrap();
    let id = id.expect("QoS 1 has an id");
    assert!(id > 6);
    out.extend(sent(&mut s, secs(1)));
    assert_eq!(
        out,
        [
            wire_publish("t", QoS::ExactlyOnce, 1, true),
            pubrel(2),
            pubrel(3),
            pubrel(4),
            pubrel(5),
            pubrel(6),
            wire_publish("new", QoS::AtLeastOnce, id, false),
        ]
    );
}

#[test]
fn an_ack_during_the_resends_skips_nothing() {
    let mut s = tight_resending();
    // The first resend is written, then its PUBACK arrives.
    assert_eq!(
        split(Box::leak(
            s.poll_transmit(secs(1)).to_vec().into_boxed_slice()
        )),
        [wire_publish("t", QoS::AtLeastOnce, 1, true)]
    );
    let n = s.poll_transmit(secs(1)).len();
    s.handle_transmit(secs(1), n);
    assert!(matches!(
        feed(&mut s, secs(1), puback(1)),
        Ok(Some(Event::Published { packet_id: 1, .. }))
    ));
    // The broker also answers message 3 before it was resent.
    assert!(matches!(
        feed(&mut s, secs(1), puback(3)),
        Ok(Some(Event::Published { packet_id: 3, .. }))
    ));
    assert_eq!(
        sent(&mut s, secs(1)),
        [wire_publish("t", QoS::AtLeastOnce, 2, true)]
    );
    assert!(!s.is_resending());
    assert_eq!(ids(&s), [(2, Stage::AwaitPubAck)]);
}

#[test]
fn the_broker_is_answered_while_resends_wait() {
    let mut s = tight_resending();
    assert!(s.is_resending());
    // A PUBREL and a QoS 1 message arrive before any resend is written:
    // both are answered, not refused as if the queue were full.
    feed_quiet(&mut s, secs(1), pubrel(9));
    assert!(matches!(
        feed(&mut s, secs(1), incoming(QoS::AtLeastOnce, Some(5), false)),
        Ok(Some(Event::Message(_)))
    ));
    assert_eq!(
        sent(&mut s, secs(1)),
        [
            pubcomp(9),
            puback(5),
            wire_publish("t", QoS::AtLeastOnce, 1, true),
            wire_publish("t", QoS::AtLeastOnce, 2, true),
            wire_publish("t", QoS::AtLeastOnce, 3, true),
        ]
    );
}

#[test]
fn a_pubrec_before_its_resend_drops_the_resend_and_queues_pubrel_behind() {
    let mut s = persistent();
    for id in 1..=3 {
        assert_eq!(s.publish(T0, &msg("t", QoS::ExactlyOnce)), Ok(Some(id)));
    }
    sent(&mut s, T0);
    s.connection_lost();
    s.connect(secs(1), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(1));
    feed(&mut s, secs(1), connack(true, ConnectReturnCode::Accepted)).unwrap();
    assert!(s.is_resending());
    // The broker had message 2: its PUBREC comes before any resend is
    // written. No PUBLISH is resent for it, and its PUBREL goes behind
    // the resends, with the PUBRELs of any PUBRECs before it, in their
    // order (MQTT-4.6.0-4; review_tests has the case where taking the
    // resend's place would break it).
    feed_quiet(&mut s, secs(1), pubrec(2));
    assert_eq!(
        sent(&mut s, secs(1)),
        [
            wire_publish("t", QoS::ExactlyOnce, 1, true),
            wire_publish("t", QoS::ExactlyOnce, 3, true),
            pubrel(2),
        ]
    );
    assert_eq!(
        ids(&s),
        [
            (1, Stage::AwaitPubRec),
            (2, Stage::AwaitPubComp),
            (3, Stage::AwaitPubRec)
        ]
    );
}

// ------------------------------------------------------- closing, misc

#[test]
fn disconnect_queues_disconnect() {
    let mut s = connected();
    s.publish(T0, &msg("t", QoS::AtLeastOnce)).unwrap();
    assert_eq!(s.disconnect(), Ok(()));
    assert_eq!(s.state(), State::Disconnected);
    assert_eq!(
        sent(&mut s, T0),
        [
            wire_publish("t", QoS::AtLeastOnce, 1, false),
            Packet::Disconnect
        ]
    );
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(timeout(&mut s, secs(100)), Ok(()));
    assert_eq!(s.inflight(), 1, "the session outlives the connection");
    assert_eq!(
        s.disconnect(),
        Err(SessionError::Usage(UsageError::NotConnected))
    );
}

#[test]
fn server_only_packets_are_protocol_errors() {
    let subs = [sub("a", QoS::AtMostOnce)];
    let packets = [
        Packet::Connect(connect_packet(true, 0)),
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: SubscribeFilters::new(&subs),
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 1,
            filters: UnsubscribeFilters::new(&["a"]),
        }),
        Packet::PingReq,
        Packet::Disconnect,
    ];
    for p in packets {
        let mut s = connected();
        assert_eq!(
            feed(&mut s, T0, p),
            Err(Error::Broker(BrokerError::Protocol(p.packet_type())))
        );
        assert!(sent(&mut s, T0).is_empty());
        // Also while connecting.
        let mut s = session();
        s.connect(T0, &connect_packet(true, 0)).unwrap();
        assert_eq!(
            feed(&mut s, T0, p),
            Err(Error::Broker(BrokerError::Protocol(p.packet_type())))
        );
    }
}

#[test]
fn connect_discards_what_an_earlier_connection_queued() {
    let mut s = connected();
    s.publish(T0, &msg("t", QoS::AtMostOnce)).unwrap();
    s.connection_lost();
    s.connect(T0, &connect_packet(true, 0)).unwrap();
    assert_eq!(sent(&mut s, T0), [Packet::Connect(connect_packet(true, 0))]);
}

#[test]
fn unconfirmed_subscription_is_resent_even_with_session_present() {
    let mut s = persistent();
    let a = s.subscribe(T0, &[sub("a", QoS::AtLeastOnce)]).unwrap();
    feed(&mut s, T0, suback(a, &[1])).unwrap();
    // This SUBSCRIBE may be lost with the connection: no SUBACK yet.
    s.subscribe(T0, &[sub("b", QoS::ExactlyOnce)]).unwrap();
    s.connection_lost();
    s.connect(secs(1), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(1));
    assert_eq!(
        feed(&mut s, secs(1), connack(true, ConnectReturnCode::Accepted)),
        Ok(Some(Event::Connected(Connected::new(true, 1, 0))))
    );
    let out = sent(&mut s, secs(1));
    let [Packet::Subscribe(subscribe)] = out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        subscribe.filters.iter().collect::<Vec<_>>(),
        [sub("b", QoS::ExactlyOnce)]
    );
    // Once confirmed, the next session-present reconnect sends nothing.
    feed(&mut s, secs(1), suback(subscribe.packet_id, &[2])).unwrap();
    s.connection_lost();
    s.connect(secs(2), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(2));
    feed(&mut s, secs(2), connack(true, ConnectReturnCode::Accepted)).unwrap();
    assert!(sent(&mut s, secs(2)).is_empty());
}

#[test]
fn refused_filter_is_not_resubscribed() {
    let mut s = persistent();
    s.subscribe(T0, &[sub("a", QoS::AtMostOnce), sub("b", QoS::AtMostOnce)])
        .unwrap();
    feed(&mut s, T0, suback(1, &[0, 0x80])).unwrap();
    s.connection_lost();
    s.connect(secs(1), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(1));
    assert!(matches!(
        feed(&mut s, secs(1), accepted()),
        Ok(Some(Event::Connected(Connected {
            resubscribed: 1,
            ..
        })))
    ));
    let out = sent(&mut s, secs(1));
    let [Packet::Subscribe(subscribe)] = out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(
        subscribe.filters.iter().collect::<Vec<_>>(),
        [sub("a", QoS::AtMostOnce)]
    );
}

#[test]
fn subscription_list_must_fit_one_resubscribe() {
    // Each SUBSCRIBE of one of these filters takes 25 bytes; the two
    // together, as a reconnect re-sends them, 46, queued and kept beside
    // the 36 bytes of filters: more than the arena.
    let mut s: Session<'static, 4, 4> = session_with(0, 100);
    connect_at(&mut s, T0, false, 0);
    let id = s
        .subscribe(T0, &[sub("aaaaaaaaaaaaaaaa/1", QoS::AtMostOnce)])
        .unwrap();
    sent(&mut s, T0);
    feed(&mut s, T0, suback(id, &[0])).unwrap();
    assert_eq!(
        s.subscribe(T0, &[sub("aaaaaaaaaaaaaaaa/2", QoS::AtMostOnce)]),
        Err(SessionError::Resource(ResourceError::StoreFull))
    );
    assert_eq!(s.subscriptions().count(), 1);
    assert!(sent(&mut s, T0).is_empty());
    // So the reconnect can re-subscribe.
    s.connection_lost();
    s.connect(T0, &connect_packet(false, 0)).unwrap();
    sent(&mut s, T0);
    assert!(matches!(
        feed(&mut s, T0, accepted()),
        Ok(Some(Event::Connected(Connected {
            resubscribed: 1,
            ..
        })))
    ));
    assert!(matches!(sent(&mut s, T0)[..], [Packet::Subscribe(_)]));
}

#[test]
fn store_keeps_room_for_the_resubscription() {
    // 83 bytes of arena: the filter (3), three 14-byte messages, and
    // room for a re-SUBSCRIBE (10 bytes) queued and kept, and the 15-byte
    // CONNECT; a fourth message would leave no room to re-subscribe.
    let mut s: Session<'static, 4, 4> = session_with(0, 83);
    connect_at(&mut s, T0, false, 0);
    let id = s.subscribe(T0, &[sub("abc", QoS::AtMostOnce)]).unwrap();
    feed(&mut s, T0, suback(id, &[0])).unwrap();
    for _ in 0..3 {
        assert!(s.publish(T0, &msg("t", QoS::AtLeastOnce)).is_ok());
    }
    assert_eq!(
        s.publish(T0, &msg("t", QoS::AtLeastOnce)),
        Err(SessionError::Resource(ResourceError::StoreFull))
    );
    // Its 12-byte SUBSCRIBE and its filter fit now, but the list (an
    // 18-byte SUBSCRIBE, queued and kept) would not be re-sent.
    assert_eq!(
        s.subscribe(T0, &[sub("ddddd", QoS::AtMostOnce)]),
        Err(SessionError::Resource(ResourceError::StoreFull))
    );
    assert!(s.subscribe(T0, &[sub("dddd", QoS::AtMostOnce)]).is_ok());
    sent(&mut s, T0);
    s.connection_lost();
    s.connect(T0, &connect_packet(false, 0)).unwrap();
    sent(&mut s, T0);
    assert_eq!(
        feed(&mut s, T0, accepted()),
        Ok(Some(Event::Connected(Connected::new(false, 2, 3))))
    );
    assert_eq!(sent(&mut s, T0).len(), 4);
}

#[test]
fn connect_on_a_live_connection_is_already_connected() {
    let mut s = session();
    s.connect(T0, &connect_packet(true, 0)).unwrap();
    assert_eq!(
        s.connect(T0, &connect_packet(true, 0)),
        Err(SessionError::Usage(UsageError::AlreadyConnected))
    );
    feed(&mut s, T0, accepted()).unwrap();
    assert_eq!(
        s.connect(T0, &connect_packet(false, 0)),
        Err(SessionError::Usage(UsageError::AlreadyConnected))
    );
    assert_eq!(s.state(), State::Connected);
    assert_eq!(
        sent(&mut s, T0),
        [Packet::Connect(connect_packet(true, 0))],
        "one CONNECT"
    );
    // After DISCONNECT the session may connect again.
    s.disconnect().unwrap();
    assert_eq!(s.connect(T0, &connect_packet(true, 0)), Ok(()));
}

#[test]
fn pubrel_forgets_the_id_once_the_pubcomp_is_written() {
    let mut s = persistent();
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(7), false)),
        Ok(Some(Event::Message(_)))
    ));
    assert_eq!(sent(&mut s, T0), [pubrec(7)]);
    feed_quiet(&mut s, T0, pubrel(7));
    // The PUBCOMP is queued, not written: 7 still marks a duplicate.
    assert_eq!(s.incoming_pending(), 1);
    feed_quiet(&mut s, T0, incoming(QoS::ExactlyOnce, Some(7), true));
    // Half of the PUBCOMP written is not written.
    assert_eq!(s.poll_transmit(T0)[..2], [0x70, 0x02]);
    s.handle_transmit(T0, 2);
    assert_eq!(s.incoming_pending(), 1);
    let rest = s.poll_transmit(T0).to_vec();
    s.handle_transmit(T0, rest.len());
    assert_eq!(s.incoming_pending(), 0);
    let mut wire = vec![0x70, 0x02];
    wire.extend(rest);
    assert_eq!(
        split(Box::leak(wire.into_boxed_slice())),
        [pubcomp(7), pubrec(7)]
    );
    // Now 7 is a new message.
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(7), false)),
        Ok(Some(Event::Message(_)))
    ));
}

#[test]
fn pubcomp_lost_with_the_connection_keeps_the_id() {
    let mut s = persistent();
    feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(7), false)).unwrap();
    sent(&mut s, T0);
    feed_quiet(&mut s, T0, pubrel(7));
    s.connection_lost();
    s.connect(secs(1), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(1));
    feed(&mut s, secs(1), connack(true, ConnectReturnCode::Accepted)).unwrap();
    // The broker never saw the PUBCOMP and resends the message.
    feed_quiet(&mut s, secs(1), incoming(QoS::ExactlyOnce, Some(7), true));
    assert_eq!(sent(&mut s, secs(1)), [pubrec(7)]);
    feed_quiet(&mut s, secs(1), pubrel(7));
    assert_eq!(sent(&mut s, secs(1)), [pubcomp(7)]);
    assert_eq!(s.incoming_pending(), 0);
}

#[test]
fn broker_without_session_drops_the_incoming_ids() {
    let mut s = persistent();
    feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(7), false)).unwrap();
    s.connection_lost();
    s.connect(secs(1), &connect_packet(false, 0)).unwrap();
    assert_eq!(s.incoming_pending(), 1, "kept until the CONNACK says");
    sent(&mut s, secs(1));
    feed(&mut s, secs(1), accepted()).unwrap();
    assert_eq!(s.incoming_pending(), 0);
    // The new broker session numbers afresh: 7 is a new message.
    assert!(matches!(
        feed(&mut s, secs(1), incoming(QoS::ExactlyOnce, Some(7), false)),
        Ok(Some(Event::Message(_)))
    ));
}

#[test]
fn ping_waits_for_room_in_a_full_queue() {
    let mut s: Session<'static, 4, 4> = session_with(24, 0);
    connect_at(&mut s, T0, true, 10);
    // 23 of 24 bytes queued and not written.
    let big = Publish {
        payload: &[0; 18],
        ..msg("t", QoS::AtMostOnce)
    };
    assert_eq!(Packet::Publish(big).encoded_len(), 23);
    s.publish(ms(1), &big).unwrap();
    assert_eq!(timeout(&mut s, secs(10)), Ok(()));
    assert!(s.ping_outstanding());
    assert_eq!(
        s.poll_transmit(secs(10)).len(),
        23,
        "no room for the PINGREQ yet"
    );
    s.handle_transmit(secs(10), 23);
    assert_eq!(sent(&mut s, secs(10)), [Packet::PingReq]);
    // The PINGRESP deadline ran from when the ping was due.
    assert_eq!(
        timeout(&mut s, secs(20)),
        Err(Error::Timeout(AckKind::PingResp))
    );
}

// ------------------------------------------------- found by the fuzzer

#[test]
fn a_dropped_first_attempt_after_pubrel_is_remembered_as_new() {
    let mut s = small_rx();
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::ExactlyOnce, Some(7), false)),
        Ok(Some(Event::Message(_)))
    ));
    assert_eq!(sent(&mut s, T0), [pubrec(7)]);
    // Released, PUBCOMP queued and not written; then a new message with
    // the id, too large for the buffer.
    feed_quiet(&mut s, T0, pubrel(7));
    assert_eq!(
        feed_bytes(&mut s, T0, &big(QoS::ExactlyOnce, Some(7)), 16).len(),
        1
    );
    assert_eq!(sent(&mut s, T0), [pubcomp(7), pubrec(7)]);
    // Writing the old PUBCOMP did not forget the new message's id.
    assert_eq!(s.incoming_pending(), 1);
    feed_quiet(&mut s, T0, incoming(QoS::ExactlyOnce, Some(7), true));
    assert_eq!(sent(&mut s, T0), [pubrec(7)]);
}

#[test]
fn a_suback_for_a_filter_listed_many_times_counts_it_once() {
    let mut s = connected();
    let id = s.subscribe(T0, &[sub("x", QoS::AtMostOnce)]).unwrap();
    sent(&mut s, T0);
    feed(&mut s, T0, suback(id, &[0])).unwrap();
    // More entries than SUBS (4), only one of them new; all refused.
    let five = [
        sub("x", QoS::AtLeastOnce),
        sub("x", QoS::AtLeastOnce),
        sub("x", QoS::AtLeastOnce),
        sub("x", QoS::AtLeastOnce),
        sub("a", QoS::AtLeastOnce),
    ];
    let id = s.subscribe(T0, &five).unwrap();
    sent(&mut s, T0);
    assert!(matches!(
        feed(&mut s, T0, suback(id, &[0x80; 5])),
        Ok(Some(Event::Subscribed { .. }))
    ));
    assert_eq!(s.subscriptions().count(), 0);
}

// ------------------------------------------------------------ formatting

#[test]
fn closed_reasons_and_the_session_print_what_matters() {
    use std::format;
    let reasons = [
        Closed::Timeout(AckKind::PubAck),
        Closed::Malformed(crate::codec::Malformed::QoS),
        Closed::Protocol(PacketType::ConnAck),
        Closed::Refused(ConnectReturnCode::NotAuthorized),
    ];
    let texts: Vec<_> = reasons.iter().map(|r| format!("{r}")).collect();
    assert!(texts[0].contains("PubAck"), "{texts:?}");
    assert!(texts[1].starts_with("malformed"), "{texts:?}");
    assert!(texts[2].contains("ConnAck"), "{texts:?}");
    assert!(texts[3].starts_with("connection refused"), "{texts:?}");
    // A session's `Debug` shows sizes and counts, not its buffers' bytes.
    let mut s = connected();
    s.publish(T0, &msg("t", QoS::AtLeastOnce)).unwrap();
    let debug = format!("{s:?}");
    assert!(debug.contains("capacity"), "{debug}");
    assert!(debug.len() < 2_000, "{} bytes of Debug", debug.len());
}

// ------------------------------------------- back-pressure from the queue

/// Writes at most `n` bytes of what is queued, as a slow transport would.
fn write_some<const I: usize, const N: usize>(s: &mut Session<'static, I, N>, n: usize) {
    let pending = s.poll_transmit(T0).len();
    s.handle_transmit(T0, n.min(pending));
}

#[test]
fn a_full_transmit_queue_holds_back_the_next_packet_and_its_acknowledgement() {
    // 34 bytes of transmit queue: a 31-byte QoS 0 PUBLISH leaves room for
    // no 4-byte acknowledgement.
    let mut s: S = session_with(34, 0);
    connect_at(&mut s, T0, true, 0);
    s.publish(T0, &msg("abcdefghijklmnopqrstu", QoS::AtMostOnce))
        .unwrap();
    assert!(!s.p.store.tx_has_room(ACK_LEN));
    // A QoS 1 message arrives: not framed until there is room to answer it.
    let received = s.packets_received();
    let bytes = encoded(incoming(QoS::AtLeastOnce, Some(5), false));
    let space = s.receive_buffer();
    space[..bytes.len()].copy_from_slice(&bytes);
    s.commit(bytes.len());
    assert_eq!(s.poll_event(T0), None);
    assert_eq!(s.packets_received(), received);
    // Writing the PUBLISH (and reporting it) makes the room.
    write_some(&mut s, 100);
    assert!(matches!(s.poll_event(T0), Some(Event::Sent { .. })));
    assert!(matches!(s.poll_event(T0), Some(Event::Message(_))));
    assert_eq!(s.poll_event(T0), None);
    assert_eq!(sent(&mut s, T0), [puback(5)]);
}

#[test]
fn an_acknowledgement_that_does_not_fit_yet_waits_and_blocks_the_next_event() {
    let mut s: S = session_with(64, 0);
    connect_at(&mut s, T0, true, 0);
    // Two QoS 1 messages in one read.
    let mut bytes = encoded(incoming(QoS::AtLeastOnce, Some(1), false));
    bytes.extend(encoded(incoming(QoS::AtLeastOnce, Some(2), false)));
    let space = s.receive_buffer();
    space[..bytes.len()].copy_from_slice(&bytes);
    s.commit(bytes.len());
    assert!(matches!(s.poll_event(T0), Some(Event::Message(_))));
    // The next call (a callback's publish, say) queues the first PUBACK
    // before its own packet, which fills the queue.
    s.publish(
        T0,
        &msg(
            "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijk",
            QoS::AtMostOnce,
        ),
    )
    .unwrap();
    // No room to answer the second message: it waits, unframed.
    assert_eq!(s.poll_event(T0), None);
    assert!(!s.transmit_idle());
    let out = sent(&mut s, T0);
    assert_eq!(out[0], puback(1));
    assert!(matches!(s.poll_event(T0), Some(Event::Message(_))));
    assert_eq!(sent(&mut s, T0), [puback(2)]);
}

#[test]
fn a_resubscription_waits_for_room_behind_what_is_queued() {
    let mut s = with_state_then_lost();
    s.connect(secs(30), &connect_packet(false, 0)).unwrap();
    // CONNECT not written yet: the re-SUBSCRIBE (and the resends) wait.
    let connect_len = s.poll_transmit(secs(30)).len();
    assert!(matches!(
        feed(&mut s, secs(31), accepted()),
        Ok(Some(Event::Connected(_)))
    ));
    assert!(s.is_resending());
    assert_eq!(
        s.publish(secs(31), &msg("new", QoS::AtMostOnce)),
        Err(SessionError::Resource(
            ResourceError::TransmitBufferTooSmall { needed: 14 }
        ))
    );
    s.handle_transmit(secs(31), connect_len);
    let out = sent(&mut s, secs(31));
    assert!(matches!(out[0], Packet::Subscribe(_)), "{out:?}");
    assert!(!s.is_resending());
}

#[test]
fn without_capacity_for_requests_nothing_is_resubscribed() {
    let mut s: Session<'static, 0, 4> = session_with(256, 1024);
    connect_at(&mut s, T0, false, 0);
    assert_eq!(
        s.subscribe(T0, &[sub("a", QoS::AtMostOnce)]),
        Err(SessionError::Resource(ResourceError::InflightFull))
    );
    s.connection_lost();
    s.connect(T0, &connect_packet(false, 0)).unwrap();
    sent(&mut s, T0);
    feed(&mut s, T0, accepted()).unwrap();
    assert!(sent(&mut s, T0).is_empty());
}

/// A persistent session (transmit queue of 16 bytes) with six QoS 2
/// messages sent: 1 waits for its PUBREC, 2 to 6 for their PUBCOMP; then
/// the connection is lost and a new one resumes the session. The resends:
/// the PUBLISH of 1 (from the store), then five 4-byte PUBRELs, of which
/// the queue holds four at a time.
fn six_resends_in_a_small_queue() -> Session<'static, 8, 4> {
    let mut s: Session<'static, 8, 4> = session_with(16, 6 * 14);
    connect_at(&mut s, T0, false, 0);
    for id in 1..=6 {
        assert_eq!(s.publish(T0, &msg("t", QoS::ExactlyOnce)), Ok(Some(id)));
        sent(&mut s, T0);
    }
    for id in 2..=6 {
        feed_quiet(&mut s, T0, pubrec(id));
        assert_eq!(sent(&mut s, T0), [pubrel(id)]);
    }
    s.connection_lost();
    s.connect(secs(1), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(1));
    feed(&mut s, secs(1), connack(true, ConnectReturnCode::Accepted)).unwrap();
    s
}

#[test]
fn a_pubrec_before_its_resend_starts_the_wait_for_the_pubcomp() {
    let mut s = persistent();
    assert_eq!(s.publish(T0, &msg("t", QoS::ExactlyOnce)), Ok(Some(1)));
    sent(&mut s, T0);
    s.connection_lost();
    s.connect(secs(1), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(1));
    feed(&mut s, secs(1), connack(true, ConnectReturnCode::Accepted)).unwrap();
    // No wait runs while the resend is still to be queued (and none for a
    // PINGRESP: no keep-alive).
    assert_eq!(s.poll_timeout(), None);
    // The broker had the PUBLISH: its PUBREC comes first. The PUBCOMP is
    // waited for from now (the earliest deadline, as cached, was none).
    feed_quiet(&mut s, secs(2), pubrec(1));
    assert_eq!(s.poll_timeout(), Some(secs(2) + Timeouts::default().puback));
    assert_eq!(sent(&mut s, secs(2)), [pubrel(1)]);
}

#[test]
fn a_pubrec_for_a_message_already_resent_waits_behind_the_resends() {
    let mut s = six_resends_in_a_small_queue();
    // The PUBLISH of 1 goes out and the PUBREL of 2 (room for the PUBREC's
    // answer), then its PUBREC comes while the PUBREL of 6 still waits.
    let first = s.poll_transmit(secs(1)).len();
    assert_eq!(first, 14);
    s.handle_transmit(secs(1), first);
    assert_eq!(s.poll_transmit(secs(1)).len(), 16);
    s.handle_transmit(secs(1), 4);
    assert!(s.is_resending());
    feed_quiet(&mut s, secs(1), pubrec(1));
    // The PUBREL goes behind the resends still waiting (it once took the
    // entry's place among them, which could put PUBRELs out of PUBREC
    // order, MQTT-4.6.0-4).
    assert_eq!(
        sent(&mut s, secs(1)),
        [pubrel(3), pubrel(4), pubrel(5), pubrel(6), pubrel(1)]
    );
}

#[test]
fn a_resubscription_that_does_not_fit_behind_connect_goes_out_after_it() {
    // 40 bytes of arena: the two filters (4 bytes), and their 14-byte
    // re-SUBSCRIBE queued and kept, but not beside the 15-byte CONNECT.
    let mut s: S = session_with(0, 40);
    connect_at(&mut s, T0, false, 0);
    s.subscribe(
        T0,
        &[sub("a/+", QoS::AtLeastOnce), sub("b", QoS::AtMostOnce)],
    )
    .unwrap();
    sent(&mut s, T0);
    s.connection_lost();
    s.connect(secs(1), &connect_packet(false, 0)).unwrap();
    // CONNECT queued and not written when the CONNACK (no session) comes.
    let connect = s.poll_transmit(secs(1)).len();
    feed(&mut s, secs(1), accepted()).unwrap();
    assert_eq!(s.poll_transmit(secs(1)).len(), connect, "no room yet");
    assert!(s.is_resending());
    s.handle_transmit(secs(1), connect);
    let out = sent(&mut s, secs(1));
    assert!(matches!(out[..], [Packet::Subscribe(_)]), "{out:?}");
    assert!(!s.is_resending());
}

#[test]
fn a_connect_larger_than_the_arena_is_refused() {
    let mut s: S = session_with(8, 6);
    assert_eq!(
        s.connect(T0, &connect_packet(true, 0)),
        Err(SessionError::Resource(
            ResourceError::TransmitBufferTooSmall { needed: 15 }
        ))
    );
    assert_eq!(s.state(), State::Disconnected);
    assert!(s.poll_transmit(T0).is_empty());
}

#[test]
fn acknowledgements_of_the_wrong_kind_for_a_pending_request_are_ignored() {
    let mut s = connected();
    let sub_id = s.subscribe(T0, &[sub("a", QoS::AtMostOnce)]).unwrap();
    let unsub_id = s.unsubscribe(T0, &["b"]).unwrap();
    let q1 = s.publish(T0, &msg("t", QoS::AtLeastOnce)).unwrap().unwrap();
    sent(&mut s, T0);
    // An UNSUBACK naming the SUBSCRIBE, a PUBREC for a QoS 1 message.
    feed_quiet(&mut s, T0, unsuback(sub_id));
    feed_quiet(&mut s, T0, pubrec(q1));
    assert!(s.request_pending(sub_id));
    assert_eq!(ids(&s), [(q1, Stage::AwaitPubAck)]);
    // The UNSUBACK for the UNSUBSCRIBE, found past the SUBSCRIBE.
    assert!(matches!(
        feed(&mut s, T0, unsuback(unsub_id)),
        Ok(Some(Event::Unsubscribed { .. }))
    ));
    // A timeout check while the answered request is still in the store.
    assert_eq!(timeout(&mut s, secs(5)), Ok(()));
    assert!(!s.request_pending(unsub_id));
}

#[test]
fn a_pubrel_resend_waits_for_room_behind_a_publish_resend() {
    let mut s = six_resends_in_a_small_queue();
    // The PUBLISH of 1 first, from the store; the PUBREL of 6 has no room
    // behind the other four yet.
    let first = s.poll_transmit(secs(1)).to_vec();
    assert_eq!(
        Packet::decode(&first).map(|(p, _)| p),
        Ok(wire_publish("t", QoS::ExactlyOnce, 1, true))
    );
    assert!(s.is_resending());
    s.handle_transmit(secs(1), first.len());
    assert_eq!(
        sent(&mut s, secs(1)),
        [pubrel(2), pubrel(3), pubrel(4), pubrel(5), pubrel(6)]
    );
    assert!(!s.is_resending());
}

#[cfg(feature = "streaming")]
#[path = "stream_tests.rs"]
mod stream;

#[path = "sent_tests.rs"]
mod sent_reports;

#[test]
fn acknowledgements_out_of_order_find_their_own_entries() {
    let mut s = connected();
    assert_eq!(s.publish(T0, &msg("a", QoS::ExactlyOnce)), Ok(Some(1)));
    assert_eq!(s.publish(T0, &msg("b", QoS::ExactlyOnce)), Ok(Some(2)));
    let _ = sent(&mut s, T0);
    // The second's PUBREC first: it is the one released.
    feed_quiet(&mut s, secs(1), pubrec(2));
    assert_eq!(sent(&mut s, secs(1)), [pubrel(2)]);
    feed_quiet(&mut s, secs(1), pubrec(1));
    assert_eq!(sent(&mut s, secs(1)), [pubrel(1)]);
    assert!(matches!(
        feed(&mut s, secs(2), pubcomp(2)),
        Ok(Some(Event::Published { packet_id: 2, .. }))
    ));
    assert!(matches!(
        feed(&mut s, secs(2), pubcomp(1)),
        Ok(Some(Event::Published { packet_id: 1, .. }))
    ));
    // Two SUBSCRIBEs and two UNSUBSCRIBEs, answered last first.
    assert_eq!(s.subscribe(T0, &[sub("x", QoS::AtMostOnce)]), Ok(3));
    assert_eq!(s.subscribe(T0, &[sub("y", QoS::AtMostOnce)]), Ok(4));
    let _ = sent(&mut s, T0);
    assert!(matches!(
        feed(&mut s, secs(3), suback(4, &[0])),
        Ok(Some(Event::Subscribed { packet_id: 4, .. }))
    ));
    assert!(matches!(
        feed(&mut s, secs(3), suback(3, &[0])),
        Ok(Some(Event::Subscribed { packet_id: 3, .. }))
    ));
    assert_eq!(s.unsubscribe(T0, &["x"]), Ok(5));
    assert_eq!(s.unsubscribe(T0, &["y"]), Ok(6));
    let _ = sent(&mut s, T0);
    assert!(matches!(
        feed(&mut s, secs(4), unsuback(6)),
        Ok(Some(Event::Unsubscribed { packet_id: 6, .. }))
    ));
    assert!(matches!(
        feed(&mut s, secs(4), unsuback(5)),
        Ok(Some(Event::Unsubscribed { packet_id: 5, .. }))
    ));
    // Nothing left to wait for.
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn pubrels_resent_after_a_reconnect_keep_the_pubrec_order() {
    // MQTT-4.6.0-4 across a reconnect: the broker answered 3, 1, then 2;
    // the PUBLISH of 4 (no PUBREC yet) keeps its place among the resends.
    let mut s: S = session_with(256, 1024);
    connect_at(&mut s, T0, false, 0);
    for topic in ["a", "b", "c", "d"] {
        assert!(
            s.publish(T0, &msg(topic, QoS::ExactlyOnce))
                .unwrap()
                .is_some()
        );
    }
    let _ = sent(&mut s, T0);
    for id in [3, 1, 2] {
        feed_quiet(&mut s, secs(1), pubrec(id));
    }
    assert_eq!(sent(&mut s, secs(1)), [pubrel(3), pubrel(1), pubrel(2)]);
    s.connection_lost();
    s.connect(secs(2), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(2));
    feed(&mut s, secs(2), connack(true, ConnectReturnCode::Accepted)).unwrap();
    let resend4 = Packet::Publish(Publish {
        dup: true,
        packet_id: Some(4),
        ..msg("d", QoS::ExactlyOnce)
    });
    assert_eq!(
        sent(&mut s, secs(2)),
        [pubrel(3), pubrel(1), pubrel(2), resend4]
    );
    // A PUBREC after the reconnect comes last.
    feed_quiet(&mut s, secs(3), pubrec(4));
    assert_eq!(sent(&mut s, secs(3)), [pubrel(4)]);
    s.connection_lost();
    s.connect(secs(4), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(4));
    feed(&mut s, secs(4), connack(true, ConnectReturnCode::Accepted)).unwrap();
    assert_eq!(
        sent(&mut s, secs(4)),
        [pubrel(3), pubrel(1), pubrel(2), pubrel(4)]
    );
}

#[test]
fn a_pubrec_during_resends_releases_behind_them_in_pubrec_order() {
    // Room for one of these PUBLISHes at a time.
    let mut s: S = session_with(32, 1024);
    connect_at(&mut s, T0, false, 0);
    let body = [7u8; 20];
    for topic in ["a", "b", "c"] {
        let p = Publish::new(topic, &body, QoS::ExactlyOnce, false);
        assert!(s.publish(T0, &p).unwrap().is_some());
        let _ = sent(&mut s, T0);
    }
    s.connection_lost();
    connect_at(&mut s, T0, false, 0);
    // The first two resends go out; the third waits for room.
    for _ in 0..2 {
        let n = s.poll_transmit(T0).len();
        assert_eq!(n, 27);
        s.handle_transmit(T0, n);
    }
    // Their PUBRECs come, the second first, while resend 3 still waits.
    feed_quiet(&mut s, T0, pubrec(2));
    feed_quiet(&mut s, T0, pubrec(1));
    let wire = sent(&mut s, T0);
    let resend3 = Packet::Publish(Publish {
        dup: true,
        packet_id: Some(3),
        ..Publish::new("c", &body, QoS::ExactlyOnce, false)
    });
    assert_eq!(wire, [resend3, pubrel(2), pubrel(1)]);
}

/// `Event::Published` of a message the broker took.
fn published(topic: &str, packet_id: u16, qos: QoS) -> Event<'_> {
    Event::Published {
        topic,
        packet_id,
        qos,
        #[cfg(feature = "v5")]
        reason: super::Reason::default(),
    }
}

#[cfg(feature = "streaming")]
#[test]
fn a_streamed_heads_resend_always_has_room_in_the_queue() {
    // 200 arena bytes.
    let mut s: Session<'static, 4, 4> = Session::new(leak(4096), leak(200), Timeouts::default());
    connect_at(&mut s, T0, false, 0);
    let topic: &'static str = Box::leak("h".repeat(40).into_boxed_str());
    let head = Publish::new(topic, &[], QoS::AtLeastOnce, false);
    assert_eq!(s.publish_streamed(T0, &head, 10), Ok(Some(1)));
    let n = s.poll_transmit(T0).len();
    s.handle_transmit(T0, n);
    s.handle_payload(T0, 10);
    let head_len = s.p.store.outgoing[0].span.len;
    // A plain QoS 1 message takes what the entries may take (the queue
    // keeps the CONNECT's reserve).
    let free = s.p.store.free_bytes();
    let payload: &'static [u8] = Box::leak(vec![7u8; 256].into_boxed_slice());
    let len = (0..256)
        .rev()
        .find(|&k| {
            Packet::Publish(Publish {
                packet_id: Some(2),
                ..Publish::new("m", &payload[..k], QoS::AtLeastOnce, false)
            })
            .encoded_len()
                <= free
        })
        .unwrap();
    let big = Publish::new("m", &payload[..len], QoS::AtLeastOnce, false);
    assert_eq!(s.publish(T0, &big), Ok(Some(2)));
    let _ = sent(&mut s, T0);
    // (Without a fix: the entries now leave the queue less than the head.)
    let _ = head_len;
    // Reconnect, session kept: both are resent, the streamed one first.
    s.connection_lost();
    s.connect(secs(1), &connect_packet(false, 0)).unwrap();
    let _ = sent(&mut s, secs(1));
    assert!(matches!(
        feed(&mut s, secs(1), connack(true, ConnectReturnCode::Accepted)),
        Ok(Some(Event::Connected(_)))
    ));
    // The streamed head is resent first (its payload follows it).
    let wire = s.poll_transmit(secs(1)).len();
    s.handle_transmit(secs(1), wire);
    assert!(
        wire > 0
            && s.payload_due()
                == Some(PayloadDue {
                    offset: 0,
                    len: 10,
                    packet_id: Some(1)
                }),
        "nothing resent, the queue is empty, is_resending {}, transmit_idle {}, publish: {:?}",
        s.is_resending(),
        s.transmit_idle(),
        s.publish(secs(1), &msg("x", QoS::AtMostOnce)),
    );
}

#[test]
fn a_receive_buffer_too_small_for_a_connack_is_refused_at_connect() {
    // 8 bytes: the longest fixed header and a topic length or an MQTT 5
    // acknowledgement's head, or a packet of 2 MiB could never be
    // framed, nor its packet id found.
    let mut s: Session<'static, 4, 4> = Session::new(leak(7), leak(1280), Timeouts::default());
    assert_eq!(
        s.connect(T0, &connect_packet(true, 0)),
        Err(SessionError::Resource(
            ResourceError::ReceiveBufferTooSmall { needed: 8 }
        ))
    );
    assert_eq!(s.state(), State::Disconnected);
    assert!(s.poll_transmit(T0).is_empty());
}

#[test]
fn a_connack_too_large_for_the_receive_buffer_is_malformed() {
    // The smallest buffer holds any valid 3.1.1 CONNACK: a longer one is
    // malformed (MQTT-4.8.0-1), not a protocol error.
    let mut s: Session<'static, 4, 4> = Session::new(leak(8), leak(1280), Timeouts::default());
    s.connect(T0, &connect_packet(true, 0)).unwrap();
    let _ = sent(&mut s, T0);
    let seen = feed_bytes(&mut s, T0, &[0x20, 6, 0, 0, 1, 2, 3, 4], 5);
    assert_eq!(seen, ["Closed(Malformed(TrailingBytes))"]);
    assert_eq!(s.state(), State::Disconnected);
}

/// The smallest receive buffer a connection starts on holds the longest
/// fixed header and the topic length behind it: a QoS 1 message of over
/// 2 MiB is skipped and still acknowledged, its packet id read as it
/// passes.
#[test]
fn the_smallest_receive_buffer_still_acknowledges_a_skipped_message() {
    let mut s: Session<'static, 4, 4> = Session::new(leak(8), leak(1280), Timeouts::default());
    connect_at(&mut s, T0, true, 0);
    let len = 2 * 1024 * 1024 + 10;
    let mut wire = std::vec![0x32];
    let mut rest = len;
    while rest > 0 {
        wire.push((rest % 128) as u8 | if rest >= 128 { 0x80 } else { 0 });
        rest /= 128;
    }
    assert_eq!(wire.len(), 5);
    wire.extend_from_slice(&[0x00, 0x01, b'a', 0x00, 0x09]);
    wire.resize(5 + len, 0x55);
    let seen = feed_bytes(&mut s, T0, &wire, 7);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("Dropped"), "{seen:?}");
    assert!(seen[0].contains("packet_id: Some(9)"), "{seen:?}");
    assert_eq!(sent(&mut s, T0), [puback(9)]);
}

#[test]
fn a_pubrec_age_that_wrapped_still_resends_each_packet_once() {
    // Arrival numbers are 16 bits: 65,536 PUBRECs after one, its age is
    // 0 again. The resend still picks an entry waiting for its PUBREL
    // (it once picked entry 0 whatever it was, and sent it for ever).
    let mut s: S = session_with(256, 1024);
    connect_at(&mut s, T0, false, 0);
    s.publish(T0, &msg("a", QoS::AtLeastOnce)).unwrap();
    s.publish(T0, &msg("b", QoS::ExactlyOnce)).unwrap();
    let _ = sent(&mut s, T0);
    feed_quiet(&mut s, secs(1), pubrec(2));
    assert_eq!(sent(&mut s, secs(1)), [pubrel(2)]);
    s.p.recs = s.p.recs.wrapping_sub(1);
    s.connection_lost();
    s.connect(secs(2), &connect_packet(false, 0)).unwrap();
    sent(&mut s, secs(2));
    feed(&mut s, secs(2), connack(true, ConnectReturnCode::Accepted)).unwrap();
    assert_eq!(
        sent(&mut s, secs(2)),
        [wire_publish("a", QoS::AtLeastOnce, 1, true), pubrel(2)]
    );
}
