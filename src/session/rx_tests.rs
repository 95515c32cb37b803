//! Framing tests: reads of every size, oversized packets, client-only packets.
extern crate std;

use std::string::String;
use std::vec::Vec;
use std::{format, vec};

use super::*;
use crate::codec::Publish;

fn publish(qos: QoS, payload: &[u8]) -> ([u8; 128], usize) {
    let mut out = [0u8; 128];
    let p = Publish {
        dup: false,
        qos,
        retain: false,
        topic: "a/b",
        packet_id: (qos != QoS::AtMostOnce).then_some(9),
        payload,
    };
    let n = Packet::Publish(p).encode(&mut out).unwrap();
    (out, n)
}

/// Feeds `stream` `chunk` bytes at a time, framing after each read,
/// and returns the packets and drops it saw, as text.
fn run(stream: &[u8], buf: &mut [u8], chunk: usize) -> Vec<String> {
    let mut rx = Rx::new(buf);
    let mut seen = Vec::new();
    let mut fed = 0;
    loop {
        loop {
            match rx.frame_at(0, false, false).unwrap() {
                Next::Incomplete => break,
                Next::Packet(Any::V3(p), len) => {
                    seen.push(format!("{:?} {len}", p.packet_type()));
                    rx.consume(len, 0);
                }
                Next::Dropped {
                    len,
                    here,
                    topic,
                    packet_id,
                    ..
                } => {
                    seen.push(format!("dropped {len} {topic:?} {packet_id:?}"));
                    rx.consume(here, len - here);
                }
                Next::ClientPacket(t) => panic!("{t:?}"),
                #[cfg(feature = "v5")]
                Next::Packet(Any::V5(p), _) => panic!("{p:?}"),
                #[cfg(feature = "v5")]
                Next::Trimmed(p, ..) => panic!("{p:?}"),
                #[cfg(feature = "v5")]
                Next::TooLarge => panic!("too large"),
                Next::Codes { packet_type, .. } => panic!("{packet_type:?}"),
            }
        }
        if fed == stream.len() {
            return seen;
        }
        let space = rx.receive_buffer();
        let k = space.len().min(chunk).min(stream.len() - fed);
        assert!(k > 0, "receive buffer full");
        space[..k].copy_from_slice(&stream[fed..fed + k]);
        rx.commit(k);
        fed += k;
    }
}

#[test]
fn one_byte_reads_frame_the_packet() {
    let (bytes, n) = publish(QoS::AtLeastOnce, b"hello");
    let mut buf = [0u8; 32];
    assert_eq!(run(&bytes[..n], &mut buf, 1), [format!("Publish {n}")]);
}

#[test]
fn a_buffer_too_small_for_the_topic_length_still_skips() {
    // 3 bytes hold the fixed header and no more: the packet is dropped
    // without topic or id instead of waiting for bytes that cannot fit.
    let (bytes, n) = publish(QoS::AtLeastOnce, b"hello");
    let mut buf = [0u8; 3];
    assert_eq!(
        run(&bytes[..n], &mut buf, 3),
        [format!("dropped {n} None None")]
    );
}

#[test]
fn oversized_publish_is_skipped_with_its_topic_and_id() {
    let (big, n) = publish(QoS::ExactlyOnce, &[7; 60]);
    let (small, m) = publish(QoS::AtMostOnce, b"x");
    let mut stream = vec![];
    stream.extend_from_slice(&big[..n]);
    stream.extend_from_slice(&small[..m]);
    for chunk in [1, 5, 24] {
        let mut buf = [0u8; 24];
        assert_eq!(
            run(&stream, &mut buf, chunk),
            [
                format!("dropped {n} Some(\"a/b\") Some(9)"),
                format!("Publish {m}")
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn client_packets_are_framed_but_not_parsed() {
    // A CONNECT whose body is not even a protocol name, a SUBSCRIBE
    // without filters, and the two empty ones; then a PINGRESP.
    let stream = [
        0x10, 0x02, 0xff, 0xff, 0x82, 0x02, 0x00, 0x01, 0xa2, 0x02, 0x00, 0x00, 0xc0, 0x00, 0xe0,
        0x00, 0xd0, 0x00,
    ];
    let mut buf = [0u8; 32];
    let mut rx = Rx::new(&mut buf);
    rx.receive_buffer()[..stream.len()].copy_from_slice(&stream);
    rx.commit(stream.len());
    let mut offset = 0;
    for (want, len) in [
        (PacketType::Connect, 4),
        (PacketType::Subscribe, 4),
        (PacketType::Unsubscribe, 4),
        (PacketType::PingReq, 2),
        (PacketType::Disconnect, 2),
    ] {
        match rx.frame_at(offset, false, false) {
            Ok(Next::ClientPacket(t)) => assert_eq!(t, want),
            other => panic!("{want:?}: {other:?}"),
        }
        offset += len;
    }
    assert!(matches!(
        rx.frame_at(offset, false, false),
        Ok(Next::Packet(Any::V3(Packet::PingResp), 2))
    ));
    // Fixed-header flags are still checked: a SUBSCRIBE with flags 0.
    rx.clear();
    rx.receive_buffer()[..4].copy_from_slice(&[0x80, 0x02, 0x00, 0x01]);
    rx.commit(4);
    assert!(matches!(
        rx.frame_at(0, false, false),
        Err(Malformed::HeaderFlags)
    ));
}

#[test]
fn an_oversized_publish_with_a_bad_topic_is_malformed() {
    // QoS 1, remaining length 40, topic "a+" (a wildcard).
    let bytes = [0x32, 40, 0, 2, b'a', b'+', 0, 1];
    let mut buf = [0u8; 16];
    let mut rx = Rx::new(&mut buf);
    rx.receive_buffer()[..bytes.len()].copy_from_slice(&bytes);
    rx.commit(bytes.len());
    assert!(matches!(
        rx.frame_at(0, false, false),
        Err(Malformed::TopicName(_))
    ));
}
