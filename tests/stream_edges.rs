//! Streaming at the edges of the receive buffer, byte for byte against
//! `Session`: an MQTT 5 Property Length cut by the end of a full buffer,
//! streamed publishes of 0 bytes and of more than MQTT allows, a QoS 2
//! message one byte at a time and its resend. Each ends in an event or a
//! clear error, never a stall with a full buffer or a panic.
#![cfg(feature = "streaming")]

#[path = "common/wire.rs"]
mod wire;

use minimqtt::codec::{Connect, QoS};
use minimqtt::session::{Event, Options, Part, Session, Timeouts};
use minimqtt::time::Instant;
use wire::{publish, varint};

const T0: Instant = Instant::from_millis(0);

fn leak(n: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; n].into_boxed_slice())
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn drain_tx<const I: usize, const S: usize>(s: &mut Session<'static, I, S>) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = s.poll_transmit(T0).to_vec();
        if b.is_empty() {
            return out;
        }
        s.handle_transmit(T0, b.len());
        out.extend_from_slice(&b);
    }
}

fn feed<const I: usize, const S: usize>(s: &mut Session<'static, I, S>, bytes: &[u8]) {
    let space = s.receive_buffer();
    assert!(space.len() >= bytes.len());
    space[..bytes.len()].copy_from_slice(bytes);
    s.commit(bytes.len());
}

fn v3_session(rx: usize, clean: bool) -> Session<'static, 4, 4> {
    let mut s = Session::new(leak(rx), leak(2048), Timeouts::default());
    s.set_options(Options {
        stream: true,
        ..Options::DEFAULT
    });
    let mut c = Connect::new("audit");
    c.clean_session = clean;
    s.connect(T0, &c).unwrap();
    drain_tx(&mut s);
    feed(&mut s, &[0x20, 0x02, 0x00, 0x00]);
    assert!(matches!(s.poll_event(T0), Some(Event::Connected(_))));
    s
}

#[cfg(feature = "v5")]
fn v5_session(rx: usize) -> Session<'static, 4, 4> {
    let mut s = Session::new(leak(rx), leak(2048), Timeouts::default());
    s.set_options(Options {
        stream: true,
        ..Options::DEFAULT
    });
    let c = minimqtt::codec::v5::Connect::new("audit");
    s.connect_v5(T0, &c).unwrap();
    drain_tx(&mut s);
    feed(&mut s, &[0x20, 0x03, 0x00, 0x00, 0x00]);
    assert!(matches!(s.poll_event(T0), Some(Event::Connected(_))));
    s
}

#[derive(Debug, Default)]
struct Seen {
    events: Vec<String>,
    payload: Vec<u8>,
    ends: usize,
}

/// Feeds `wire` `chunk` bytes at a time, consuming every event; fails
/// (instead of hanging) when the session takes no more bytes and has no
/// event.
fn run<const I: usize, const S: usize>(
    s: &mut Session<'static, I, S>,
    wire: &[u8],
    chunk: usize,
) -> Seen {
    let mut seen = Seen::default();
    let mut fed = 0;
    loop {
        while let Some(e) = s.poll_event(T0) {
            match e {
                Event::Stream(st) => match st.part {
                    Part::Chunk { data, .. } => seen.payload.extend_from_slice(data),
                    Part::End => {
                        seen.ends += 1;
                        seen.events.push(format!("End({})", st.topic));
                    }
                    p => seen.events.push(format!("{p:?}({},{})", st.topic, st.len)),
                },
                other => seen.events.push(format!("{other:?}")),
            }
        }
        if fed == wire.len() {
            return seen;
        }
        let space = s.receive_buffer();
        let k = space.len().min(chunk).min(wire.len() - fed);
        assert!(
            k > 0,
            "stuck: receive buffer full, no event, {fed} of {} bytes fed; seen {:?}",
            wire.len(),
            seen.events
        );
        space[..k].copy_from_slice(&wire[fed..fed + k]);
        s.commit(k);
        fed += k;
    }
}

#[cfg(feature = "v5")]
#[test]
fn a_property_length_cut_by_a_full_buffer_skips_the_message() {
    const RX: usize = 64;
    let mut s = v5_session(RX);
    // Fixed header (3 bytes), topic (2 + 56), packet id (2): the 2-byte
    // Property Length starts on the buffer's last byte, and its second
    // byte can never fit beside it.
    let topic = vec![b'a'; 56];
    // A User Property of 200 bytes in all.
    let mut props = vec![0x26, 0x00, 0x04];
    props.extend_from_slice(b"abcd");
    props.extend_from_slice(&191u16.to_be_bytes());
    props.extend(std::iter::repeat_n(b'v', 191));
    assert_eq!(props.len(), 200);
    let mut wire = publish(&topic, 1, Some(9), false, Some(&props), &pattern(100));
    assert_eq!(1 + varint(wire.len() - 3).len() + 2 + 56 + 2, RX - 1);
    // A PINGRESP behind it must be seen.
    wire.extend_from_slice(&[0xd0, 0x00]);
    let seen = run(&mut s, &wire, 1000);
    // Dropped (its header does not fit) and acknowledged, then the Pong.
    assert!(seen.events[0].starts_with("Dropped("), "{:?}", seen.events);
    assert_eq!(seen.events.last().map(String::as_str), Some("Pong"));
    assert_eq!(drain_tx(&mut s), [0x40, 0x02, 0x00, 9]);
}

#[test]
fn a_streamed_publish_of_no_bytes_is_its_head_alone() {
    let mut s = v3_session(64, true);
    let p = minimqtt::codec::Publish::new("t", &[], QoS::AtLeastOnce, false);
    let id = s.publish_streamed(T0, &p, 0).unwrap().unwrap();
    let [hi, lo] = id.to_be_bytes();
    assert_eq!(drain_tx(&mut s), [0x32, 0x05, 0x00, 0x01, b't', hi, lo]);
    assert_eq!(s.payload_due(), None);
    // Completed as any other.
    feed(&mut s, &[0x40, 0x02, hi, lo]);
    assert!(matches!(
        s.poll_event(T0),
        Some(Event::Published { topic: "t", .. })
    ));
}

#[cfg(feature = "v5")]
#[test]
fn an_mqtt_5_streamed_publish_of_no_bytes_is_its_head_alone() {
    let mut s = v5_session(64);
    let p = minimqtt::codec::Publish::new("t", &[], QoS::AtMostOnce, false);
    s.publish_streamed(T0, &p, 0).unwrap();
    assert_eq!(drain_tx(&mut s), [0x30, 0x04, 0x00, 0x01, b't', 0x00]);
    assert_eq!(s.payload_due(), None);
}

#[test]
fn a_streamed_publish_longer_than_mqtt_allows_is_refused() {
    let mut s = v3_session(64, true);
    let p = minimqtt::codec::Publish::new("t", &[], QoS::AtMostOnce, false);
    for len in [268_435_456, usize::MAX - 1, usize::MAX] {
        assert!(s.publish_streamed(T0, &p, len).is_err(), "{len}");
    }
    assert!(drain_tx(&mut s).is_empty());
}

#[test]
fn a_qos_2_message_one_byte_at_a_time_then_its_resend() {
    let mut s = v3_session(24, false);
    let body = pattern(300);
    let wire = publish(b"fw", 2, Some(7), false, None, &body);
    let seen = run(&mut s, &wire, 1);
    assert_eq!(seen.payload, body);
    assert_eq!(seen.ends, 1);
    assert_eq!(drain_tx(&mut s), [0x50, 0x02, 0x00, 7]);
    // The broker missed the PUBREC: the resend is not delivered again.
    let again = publish(b"fw", 2, Some(7), true, None, &body);
    let seen = run(&mut s, &again, 1);
    assert!(seen.events.is_empty(), "{:?}", seen.events);
    assert_eq!(drain_tx(&mut s), [0x50, 0x02, 0x00, 7]);
}
