//! QoS 0 completion: [`Event::Sent`] once a QoS 0 PUBLISH is written in
//! full, in order, before anything read, and only then.

use super::*;

/// Writes `n` bytes of what is pending (no reports).
fn write(s: &mut S, n: usize) {
    let pending = s.poll_transmit(T0).len();
    assert!(pending >= n, "{n} of {pending} pending bytes");
    s.handle_transmit(T0, n);
}

/// Writes everything pending, as many pieces as it comes in (a stored
/// PUBLISH is one), without reports.
fn write_all(s: &mut S) {
    loop {
        let n = s.poll_transmit(T0).len();
        if n == 0 {
            return;
        }
        s.handle_transmit(T0, n);
    }
}

/// The topic of the next event, which must be `Sent`.
fn sent_topic(s: &mut S) -> std::string::String {
    assert!(s.sent_due());
    match s.poll_event(T0) {
        Some(Event::Sent { topic }) => topic.into(),
        other => panic!("expected Sent, got {other:?}"),
    }
}

#[test]
fn a_qos0_publish_is_reported_once_written_in_full() {
    let mut s = connected();
    assert_eq!(s.publish(T0, &msg("a/b", QoS::AtMostOnce)), Ok(None));
    assert!(!s.sent_due(), "queued, not written");
    assert_eq!(s.poll_event(T0), None);
    let len = s.poll_transmit(T0).len();
    write(&mut s, len - 1);
    assert!(!s.sent_due(), "one byte still to write");
    assert_eq!(s.poll_event(T0), None);
    write(&mut s, 1);
    assert_eq!(sent_topic(&mut s), "a/b");
    assert!(!s.sent_due());
    assert_eq!(s.poll_event(T0), None, "reported once");
    assert!(s.transmit_idle());
}

#[test]
fn reports_come_in_order_and_skip_the_other_packets() {
    let mut s = connected();
    s.publish(T0, &msg("first", QoS::AtMostOnce)).unwrap();
    assert_eq!(s.publish(T0, &msg("q1", QoS::AtLeastOnce)), Ok(Some(1)));
    s.ping(T0).unwrap();
    s.publish(T0, &msg("second", QoS::AtMostOnce)).unwrap();
    write_all(&mut s);
    assert_eq!(sent_topic(&mut s), "first");
    assert_eq!(sent_topic(&mut s), "second");
    assert!(!s.sent_due());
    assert_eq!(s.poll_event(T0), None);
    // The QoS 1 message completes with its PUBACK, as before.
    assert!(matches!(
        feed(&mut s, T0, puback(1)),
        Ok(Some(Event::Published { packet_id: 1, .. }))
    ));
}

#[test]
fn a_report_comes_before_the_packets_already_received() {
    let mut s = connected();
    s.publish(T0, &msg("out", QoS::AtMostOnce)).unwrap();
    let len = s.poll_transmit(T0).len();
    write(&mut s, len);
    match feed(&mut s, T0, incoming(QoS::AtMostOnce, None, false)) {
        Ok(Some(Event::Sent { topic: "out" })) => {}
        other => panic!("expected Sent first, got {other:?}"),
    }
    assert!(matches!(s.poll_event(T0), Some(Event::Message(_))));
}

#[test]
fn a_message_queued_behind_a_half_written_packet_is_found() {
    let mut s = connected();
    assert_eq!(s.publish(T0, &msg("q1", QoS::AtLeastOnce)), Ok(Some(1)));
    // Half of the QoS 1 PUBLISH goes out while no report is due; then a
    // QoS 0 message is queued behind the rest of it.
    let len = s.poll_transmit(T0).len();
    write(&mut s, len / 2);
    s.publish(T0, &msg("zero", QoS::AtMostOnce)).unwrap();
    // Looked for before it is written: nothing yet, and the walk keeps
    // its place at the message's start.
    assert_eq!(s.poll_event(T0), None);
    write(&mut s, 1);
    assert_eq!(s.poll_event(T0), None);
    write_all(&mut s);
    assert_eq!(sent_topic(&mut s), "zero");
}

#[test]
fn unreported_bytes_are_kept_until_their_event_is_polled() {
    // Room for one 22-byte PUBLISH and a PINGREQ, not for two PUBLISHes.
    let mut s: S = session_with(30, 0);
    connect_at(&mut s, T0, true, 0);
    let p = msg("a/b/c/d/e", QoS::AtMostOnce);
    assert_eq!(Packet::Publish(p).encoded_len(), 20);
    s.publish(T0, &p).unwrap();
    write(&mut s, 20);
    assert!(
        matches!(
            s.publish(T0, &p),
            Err(SessionError::Resource(
                ResourceError::TransmitBufferTooSmall { .. }
            ))
        ),
        "the written message's bytes still hold its topic"
    );
    assert_eq!(sent_topic(&mut s), "a/b/c/d/e");
    // Released at the next call.
    assert_eq!(s.publish(T0, &p), Ok(None));
}

#[test]
fn a_lost_connection_drops_the_reports_due() {
    let mut s = connected();
    s.publish(T0, &msg("gone", QoS::AtMostOnce)).unwrap();
    let len = s.poll_transmit(T0).len();
    write(&mut s, len);
    assert!(s.sent_due());
    s.connection_lost();
    assert!(!s.sent_due());
    assert_eq!(s.poll_event(T0), None);
    connect_at(&mut s, T0, true, 0);
    assert!(!s.sent_due());
    s.publish(T0, &msg("next", QoS::AtMostOnce)).unwrap();
    let len = s.poll_transmit(T0).len();
    write(&mut s, len);
    assert_eq!(sent_topic(&mut s), "next");
}

#[cfg(feature = "streaming")]
#[test]
fn a_streamed_qos0_message_is_reported_once_its_payload_is_written() {
    let mut s = connected();
    let head = Publish::new("fw/img", &[], QoS::AtMostOnce, false);
    assert_eq!(s.publish_streamed(T0, &head, 100), Ok(None));
    s.publish(T0, &msg("after", QoS::AtMostOnce)).unwrap();
    let head_len = s.poll_transmit(T0).len();
    assert_eq!(head_len, head.head_len(100));
    write(&mut s, head_len);
    assert!(!s.sent_due(), "the payload is still to come");
    assert_eq!(s.payload_due().map(|d| d.len), Some(100));
    s.handle_payload(T0, 60);
    assert!(!s.sent_due());
    s.handle_payload(T0, 40);
    // Another streamed message waits until this one is reported.
    assert!(s.publish_streamed(T0, &head, 10).is_err());
    assert_eq!(sent_topic(&mut s), "fw/img");
    assert!(!s.sent_due(), "what follows it is not written yet");
    let rest = s.poll_transmit(T0).len();
    write(&mut s, rest);
    assert_eq!(sent_topic(&mut s), "after");
    assert_eq!(s.poll_event(T0), None);
    assert_eq!(s.publish_streamed(T0, &head, 10), Ok(None));
}

#[cfg(feature = "streaming")]
#[test]
fn a_streamed_qos0_head_leaves_room_for_its_payload() {
    // The head stays held until reported, after the payload: a queue no
    // longer than the head has no room for the payload's pieces.
    let head = Publish::new("fw/image/with/a/long/topic", &[], QoS::AtMostOnce, false);
    let cap = head.head_len(100);
    let mut s: S = session_with(cap, 0);
    connect_at(&mut s, T0, true, 0);
    assert_eq!(
        s.publish_streamed(T0, &head, 100),
        Err(SessionError::Resource(
            ResourceError::TransmitBufferTooSmall { needed: cap + 1 }
        ))
    );
    // One byte more is enough (if slow).
    let mut s: S = session_with(cap + 1, 0);
    connect_at(&mut s, T0, true, 0);
    assert_eq!(s.publish_streamed(T0, &head, 100), Ok(None));
    let n = s.poll_transmit(T0).len();
    assert_eq!(n, cap);
    s.handle_transmit(T0, n);
    assert!(s.payload_due().is_some());
    assert_eq!(s.payload_buffer().0.len(), 1);
}

#[cfg(feature = "streaming")]
#[test]
fn a_qos0_message_written_before_a_streamed_head_is_reported_to_make_room() {
    let mut s: S = session_with(64, 11); // 11: the stored head
    connect_at(&mut s, T0, true, 0);
    let p = Publish::new("a/b", &[7u8; 40], QoS::AtMostOnce, false);
    s.publish(T0, &p).unwrap();
    let head = Publish::new("c/d/e", &[], QoS::AtLeastOnce, false);
    let need = 64 - Packet::Publish(p).encoded_len();
    assert!(head.head_len(100) <= need);
    assert_eq!(s.publish_streamed(T0, &head, 100), Ok(Some(1)));
    let n = s.poll_transmit(T0).len();
    s.handle_transmit(T0, n);
    assert!(s.payload_due().is_some());
    // Unreported, the QoS 0 message keeps its bytes beside the head...
    let held = s.payload_buffer().0.len();
    assert!(s.sent_due());
    assert_eq!(s.poll_sent(), Some("a/b"));
    assert_eq!(s.poll_sent(), None);
    // ...reported, all of the queue is room for the payload (the QoS 1
    // head needs no report).
    assert_eq!(s.payload_buffer().0.len(), 64);
    assert!(held < 64);
}

#[test]
fn a_pingreq_deferred_behind_held_bytes_keeps_the_session_busy() {
    let mut s: S = session_with(64, 0);
    connect_at(&mut s, T0, true, 10);
    // A QoS 0 message that nearly fills the transmit buffer.
    let body = [3u8; 57];
    let p = Publish::new("a/b", &body, QoS::AtMostOnce, false);
    assert_eq!(Packet::Publish(p).encoded_len(), 64);
    s.publish(T0, &p).unwrap();
    let len = s.poll_transmit(T0).len();
    // The write is slow: the keep-alive deadline passes meanwhile (the
    // driver's flush_transmit calls expire -> handle_timeout).
    let due = s.poll_timeout().unwrap();
    s.handle_timeout(due);
    assert!(s.ping_outstanding());
    // The write completes; the driver's flush_transmit polls again.
    s.handle_transmit(due, len);
    assert!(
        s.poll_transmit(due).is_empty(),
        "the PINGREQ does not fit beside the held bytes"
    );
    // flush() then reports the QoS 0 message (report_sent).
    assert_eq!(s.poll_sent(), Some("a/b"));
    assert_eq!(s.poll_sent(), None);
    // drive() now asks transmit_idle() before waiting for input.
    assert!(
        !s.transmit_idle(),
        "transmit_idle() is true, but the PINGREQ is still owed: the driver waits for a PINGRESP to a PINGREQ it never sends"
    );
}
