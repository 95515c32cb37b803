//! Incoming QoS 2 across reconnects, on the sans-IO session: a message is
//! delivered once even when the broker resends its PUBLISH after a
//! reconnect, including after a PUBREL whose PUBCOMP never went out (what
//! mosquitto 2.0 does when it restarts from its persistence file).

use minimqtt::codec::{ConnAck, Connect, ConnectReturnCode, Packet, PubRel, Publish, QoS};
use minimqtt::session::{Event, Session, Timeouts};
use minimqtt::time::Instant;

const CONNECT: Connect<'static> = Connect {
    clean_session: false,
    keep_alive: 5,
    client_id: "qos2-release",
    will: None,
    username: None,
    password: None,
};

const PUBLISH: Publish<'static> = Publish {
    dup: false,
    qos: QoS::ExactlyOnce,
    retain: false,
    topic: "a/b",
    packet_id: Some(641),
    payload: b"635",
};

fn write_all(s: &mut Session<'_, 8, 4>, now: Instant) -> Vec<u8> {
    let bytes = s.poll_transmit(now).to_vec();
    s.handle_transmit(now, bytes.len());
    bytes
}

/// Hands `packet`'s bytes to the session; whether it delivered a message.
fn receive(s: &mut Session<'_, 8, 4>, now: Instant, packet: Packet<'_>) -> bool {
    let n = packet.encode(s.receive_buffer()).unwrap();
    s.commit(n);
    let mut delivered = false;
    while let Some(event) = s.poll_event(now) {
        match event {
            Event::Message(_) => delivered = true,
            Event::Connected(_) | Event::Pong => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    delivered
}

fn connect(s: &mut Session<'_, 8, 4>, now: Instant, session_present: bool) {
    s.connect(now, &CONNECT).unwrap();
    write_all(s, now);
    let ack = ConnAck {
        session_present,
        return_code: ConnectReturnCode::Accepted,
    };
    receive(s, now, Packet::ConnAck(ack));
}

fn deliver(s: &mut Session<'_, 8, 4>, now: Instant, publish: Publish<'_>) -> bool {
    receive(s, now, Packet::Publish(publish))
}

#[test]
fn resend_before_pubrel_is_a_duplicate() {
    let (mut rx, mut arena) = ([0u8; 256], [0u8; 512]);
    let mut s: Session<'_, 8, 4> = Session::new(&mut rx, &mut arena, Timeouts::default());
    let now = Instant::from_millis(0);
    connect(&mut s, now, false);
    assert!(deliver(&mut s, now, PUBLISH));
    s.connection_lost();
    connect(&mut s, now, true);
    let dup = Publish {
        dup: true,
        ..PUBLISH
    };
    assert!(!deliver(&mut s, now, dup), "delivered twice");
    // The PUBREC goes out again.
    assert_eq!(write_all(&mut s, now), [0x50, 2, 0x02, 0x81]);
}

#[test]
fn resend_after_an_unwritten_pubcomp_is_a_duplicate() {
    let (mut rx, mut arena) = ([0u8; 256], [0u8; 512]);
    let mut s: Session<'_, 8, 4> = Session::new(&mut rx, &mut arena, Timeouts::default());
    let now = Instant::from_millis(0);
    connect(&mut s, now, false);
    assert!(deliver(&mut s, now, PUBLISH));
    write_all(&mut s, now);
    receive(&mut s, now, Packet::PubRel(PubRel { packet_id: 641 }));
    // The connection dies with the PUBCOMP still queued.
    assert_eq!(s.incoming_pending(), 1);
    s.connection_lost();
    connect(&mut s, now, true);
    let dup = Publish {
        dup: true,
        ..PUBLISH
    };
    assert!(!deliver(&mut s, now, dup), "delivered twice");
}

#[test]
fn after_a_written_pubcomp_the_id_is_new_again() {
    let (mut rx, mut arena) = ([0u8; 256], [0u8; 512]);
    let mut s: Session<'_, 8, 4> = Session::new(&mut rx, &mut arena, Timeouts::default());
    let now = Instant::from_millis(0);
    connect(&mut s, now, false);
    assert!(deliver(&mut s, now, PUBLISH));
    write_all(&mut s, now);
    receive(&mut s, now, Packet::PubRel(PubRel { packet_id: 641 }));
    // Half of the PUBCOMP is not enough ...
    let pending = s.poll_transmit(now).to_vec();
    assert_eq!(pending, [0x70, 2, 0x02, 0x81]);
    s.handle_transmit(now, 2);
    assert_eq!(s.incoming_pending(), 1);
    // ... all of it is: MQTT-4.3.3-2, a later PUBLISH with the id is new.
    s.handle_transmit(now, 2);
    assert_eq!(s.incoming_pending(), 0);
    let next = Publish {
        payload: b"new",
        ..PUBLISH
    };
    assert!(deliver(&mut s, now, next));
}
