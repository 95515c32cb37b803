//! Streaming messages larger than the receive buffer, and deferred
//! acknowledgements.

use super::*;

/// What a test saw of a stream, and the other events around it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    starts: Vec<(std::string::String, usize, Option<u16>, bool)>,
    payload: Vec<u8>,
    /// Where the current stream's payload starts in `payload`.
    at: usize,
    ends: usize,
    aborts: usize,
    other: Vec<std::string::String>,
}

/// Feeds `bytes` in pieces of `sizes` (cycled), consuming every event.
fn stream_bytes<const I: usize, const N: usize>(
    s: &mut Session<'static, I, N>,
    now: Instant,
    bytes: &[u8],
    sizes: &[usize],
) -> Seen {
    let mut seen = Seen::default();
    let mut fed = 0;
    let mut i = 0;
    loop {
        drain_events(s, now, &mut seen);
        if fed == bytes.len() {
            return seen;
        }
        let space = s.receive_buffer();
        let k = space
            .len()
            .min(sizes[i % sizes.len()])
            .min(bytes.len() - fed);
        i += 1;
        assert!(k > 0, "receive buffer full");
        space[..k].copy_from_slice(&bytes[fed..fed + k]);
        s.commit(k);
        fed += k;
    }
}

fn drain_events<const I: usize, const N: usize>(
    s: &mut Session<'static, I, N>,
    now: Instant,
    seen: &mut Seen,
) {
    while let Some(event) = s.poll_event(now) {
        match event {
            Event::Stream(st) => match st.part {
                Part::Start => {
                    seen.at = seen.payload.len();
                    seen.starts
                        .push((st.topic.into(), st.len, st.packet_id, st.dup));
                }
                Part::Chunk { offset, data } => {
                    assert_eq!(offset, seen.payload.len() - seen.at, "chunks out of order");
                    assert!(offset + data.len() <= st.len);
                    assert_eq!(st.topic, seen.starts.last().unwrap().0);
                    seen.payload.extend_from_slice(data);
                }
                Part::End => {
                    assert_eq!(seen.payload.len() - seen.at, st.len);
                    seen.ends += 1;
                }
                Part::Aborted => {
                    seen.aborts += 1;
                    seen.payload.truncate(seen.at);
                }
            },
            other => seen.other.push(std::format!("{other:?}")),
        }
    }
}

fn streaming_session<const I: usize>(rx: usize, clean: bool) -> Session<'static, I, 4> {
    let mut s = Session::new(leak(rx), leak(1280), Timeouts::default());
    s.set_options(Options {
        stream: true,
        ..Options::DEFAULT
    });
    connect_at(&mut s, T0, clean, 0);
    s
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn large(topic: &str, qos: QoS, packet_id: Option<u16>, dup: bool, payload: &[u8]) -> Vec<u8> {
    encoded(Packet::Publish(Publish {
        dup,
        qos,
        retain: true,
        topic,
        packet_id,
        payload,
    }))
}

#[test]
fn a_large_message_streams_through_a_small_buffer_in_any_split() {
    let body = payload(1000);
    for sizes in [&[1usize][..], &[3, 64, 1, 17], &[64], &[1000]] {
        let mut s = streaming_session::<4>(48, true);
        let wire = large("ota/image", QoS::AtLeastOnce, Some(7), false, &body);
        let seen = stream_bytes(&mut s, T0, &wire, sizes);
        assert_eq!(
            seen.starts,
            [("ota/image".into(), 1000, Some(7), false)],
            "{sizes:?}"
        );
        assert_eq!(seen.payload, body);
        assert_eq!(seen.ends, 1);
        assert!(seen.other.is_empty(), "{:?}", seen.other);
        // Acknowledged once, after the end was consumed.
        assert_eq!(sent(&mut s, T0), [puback(7)]);
        assert!(!s.is_streaming());
    }
}

#[test]
fn packets_around_a_stream_are_handled_in_order() {
    let mut s = streaming_session::<4>(40, true);
    let body = payload(300);
    let mut wire = encoded(Packet::PingResp);
    wire.extend_from_slice(&large("big", QoS::AtMostOnce, None, false, &body));
    wire.extend_from_slice(&encoded(incoming(QoS::AtLeastOnce, Some(3), false)));
    wire.extend_from_slice(&large("big", QoS::ExactlyOnce, Some(4), false, &body));
    // One read brings the end of the first stream and the next packets.
    let seen = stream_bytes(&mut s, T0, &wire, &[29, 40]);
    assert_eq!(seen.starts.len(), 2);
    assert_eq!(seen.ends, 2);
    assert_eq!(seen.payload.len(), 600);
    assert_eq!(seen.other.len(), 2, "{:?}", seen.other);
    assert_eq!(seen.other[0], "Pong");
    assert!(seen.other[1].starts_with("Message("), "{:?}", seen.other);
    assert_eq!(sent(&mut s, T0), [puback(3), pubrec(4)]);
    assert_eq!(s.incoming_pending(), 1);
}

#[test]
fn a_header_without_room_to_spare_is_dropped_not_streamed() {
    // The 16-byte buffer holds the fixed header, topic and id (10 bytes)
    // of this message; with a 10-byte topic they fill it, leaving no room
    // for payload: dropped, but its id is read and acknowledged.
    let mut s = streaming_session::<4>(16, true);
    let wire = large("in/t", QoS::AtLeastOnce, Some(2), false, &payload(40));
    assert_eq!(stream_bytes(&mut s, T0, &wire, &[5]).starts.len(), 1);
    let wire = large("abcdefghij", QoS::AtLeastOnce, Some(3), false, &payload(40));
    let seen = stream_bytes(&mut s, T0, &wire, &[5]);
    assert!(seen.starts.is_empty());
    assert!(seen.other[0].starts_with("Dropped("), "{:?}", seen.other);
    assert_eq!(sent(&mut s, T0), [puback(2), puback(3)]);
}

#[test]
fn a_skipped_stream_is_acknowledged_and_the_next_packet_frames() {
    let body = payload(200);
    for sizes in [&[7usize][..], &[200], &[1]] {
        let mut s = streaming_session::<4>(32, true);
        let mut wire = large("nobody/wants", QoS::ExactlyOnce, Some(9), false, &body);
        wire.extend_from_slice(&encoded(incoming(QoS::AtMostOnce, None, false)));
        let mut fed = 0;
        let mut skipped = false;
        let mut messages = 0;
        loop {
            while let Some(event) = s.poll_event(T0) {
                match event {
                    Event::Stream(st) => {
                        assert_eq!(st.part, Part::Start);
                        skipped = true;
                        s.skip_stream();
                    }
                    Event::Message(_) => messages += 1,
                    other => panic!("{other:?}"),
                }
            }
            if fed == wire.len() {
                break;
            }
            let space = s.receive_buffer();
            let k = space.len().min(sizes[0]).min(wire.len() - fed);
            space[..k].copy_from_slice(&wire[fed..fed + k]);
            s.commit(k);
            fed += k;
        }
        assert!(skipped && messages == 1, "{sizes:?}: {messages}");
        // Acknowledged as a dropped message is, and remembered.
        assert_eq!(sent(&mut s, T0), [pubrec(9)]);
        assert_eq!(s.incoming_pending(), 1);
    }
}

#[test]
fn a_stream_cut_short_is_aborted_and_delivered_again_exactly_once() {
    let body = payload(500);
    let mut s = streaming_session::<4>(64, false);
    let wire = large("fw", QoS::ExactlyOnce, Some(21), false, &body);
    let seen = stream_bytes(&mut s, T0, &wire[..300], &[50]);
    assert_eq!(seen.starts.len(), 1);
    assert!(s.is_streaming());
    // The link drops mid-stream.
    s.connection_lost();
    let mut aborted = seen;
    drain_events(&mut s, T0, &mut aborted);
    assert_eq!(aborted.aborts, 1);
    assert!(aborted.payload.is_empty());
    assert_eq!(s.poll_event(T0), None);
    // No PUBREC went out, and the id is not taken as delivered.
    assert_eq!(s.incoming_pending(), 0);
    connect_at(&mut s, T0, false, 0);
    let again = large("fw", QoS::ExactlyOnce, Some(21), true, &body);
    let seen = stream_bytes(&mut s, T0, &again, &[33]);
    assert_eq!(seen.starts, [("fw".into(), 500, Some(21), true)]);
    assert_eq!(seen.payload, body);
    assert_eq!(sent(&mut s, T0), [pubrec(21)]);
    // Delivered: a further resend is skipped, PUBREC'd, not delivered.
    let seen = stream_bytes(&mut s, T0, &again, &[33]);
    assert_eq!(seen, Seen::default());
    assert_eq!(sent(&mut s, T0), [pubrec(21)]);
    feed_quiet(&mut s, T0, pubrel(21));
    assert_eq!(sent(&mut s, T0), [pubcomp(21)]);
}

#[test]
fn a_timeout_mid_stream_reports_the_abort_before_the_close() {
    let mut s = streaming_session::<4>(64, true);
    s.publish(T0, &msg("out", QoS::AtLeastOnce)).unwrap();
    let _ = sent(&mut s, T0);
    let wire = large("fw", QoS::AtLeastOnce, Some(1), false, &payload(500));
    let _ = stream_bytes(&mut s, T0, &wire[..100], &[50]);
    s.handle_timeout(secs(11));
    let first = std::format!("{:?}", s.poll_event(secs(11)));
    assert!(first.contains("Aborted"), "{first}");
    assert_eq!(
        s.poll_event(secs(11)),
        Some(Event::Closed(Closed::Timeout(AckKind::PubAck)))
    );
    assert_eq!(s.poll_event(secs(11)), None);
}

#[test]
fn chunks_end_the_pingresp_wait_not_the_keep_alive() {
    let mut s = Session::<'static, 4, 4>::new(leak(64), leak(1280), Timeouts::default());
    s.set_options(Options {
        stream: true,
        ..Options::DEFAULT
    });
    connect_at(&mut s, T0, true, 60);
    s.ping(T0).unwrap();
    let _ = sent(&mut s, T0);
    assert_eq!(s.poll_timeout(), Some(secs(10)));
    let wire = large("fw", QoS::AtMostOnce, None, false, &payload(500));
    let _ = stream_bytes(&mut s, secs(8), &wire[..200], &[50]);
    // Still streaming at 8 s: the broker is alive, and the PINGRESP queued
    // behind the message is no longer awaited; the keep-alive's next
    // PINGREQ is due 54 s after the last one, whatever still arrives.
    assert!(!s.ping_outstanding());
    assert_eq!(s.poll_timeout(), Some(secs(54)));
}

#[test]
fn skipped_bytes_end_the_pingresp_wait_before_a_timeout_is_handled() {
    // No stream: the message is skipped as it arrives.
    let mut s = Session::<'static, 4, 4>::new(leak(64), leak(1280), Timeouts::default());
    connect_at(&mut s, T0, true, 60);
    s.ping(T0).unwrap();
    let _ = sent(&mut s, T0);
    let wire = large("fw", QoS::AtMostOnce, None, false, &payload(500));
    let _ = stream_bytes(&mut s, secs(8), &wire[..200], &[50]);
    // Skipping, with the PINGRESP no longer awaited; a new PINGREQ at 8 s
    // is answered by 18 s.
    assert!(!s.ping_outstanding());
    s.ping(secs(8)).unwrap();
    let _ = sent(&mut s, secs(8));
    assert_eq!(s.poll_timeout(), Some(secs(18)));
    // More of it arrives, then the deadline passes before any event is
    // asked for: the bytes count first.
    let space = s.receive_buffer();
    space[..50].copy_from_slice(&wire[200..250]);
    s.commit(50);
    s.handle_timeout(secs(19));
    assert!(!s.ping_outstanding());
    assert_eq!(s.state(), State::Connected);
    assert_eq!(s.poll_timeout(), Some(secs(8 + 54)));
}

// ------------------------------------------------ deferred acknowledgements

fn deliver<const I: usize, const N: usize>(
    s: &mut Session<'static, I, N>,
    qos: QoS,
    id: u16,
) -> bool {
    matches!(
        feed(s, T0, incoming(qos, Some(id), false)),
        Ok(Some(Event::Message(_)))
    )
}

#[test]
fn deferred_acknowledgements_go_out_in_publish_order() {
    let mut s = connected();
    assert!(deliver(&mut s, QoS::AtLeastOnce, 1));
    let one = s.defer_ack().unwrap();
    assert_eq!((one.packet_id(), one.qos()), (1, QoS::AtLeastOnce));
    // Only the message just delivered, once.
    assert_eq!(
        s.defer_ack(),
        Err(SessionError::Usage(UsageError::NothingToDefer))
    );
    assert!(deliver(&mut s, QoS::ExactlyOnce, 2));
    assert!(deliver(&mut s, QoS::AtLeastOnce, 3));
    let three = s.defer_ack().unwrap();
    assert!(deliver(&mut s, QoS::AtLeastOnce, 4));
    // 2 and 4 wait behind 1 (MQTT-4.6.0-2/3).
    assert_eq!(sent(&mut s, T0), []);
    assert!(!s.transmit_idle() || s.poll_transmit(T0).is_empty());
    s.ack(one).unwrap();
    assert_eq!(sent(&mut s, T0), [puback(1), pubrec(2)]);
    s.ack(three).unwrap();
    assert_eq!(sent(&mut s, T0), [puback(3), puback(4)]);
    // QoS 0 has nothing to defer.
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::AtMostOnce, None, false)),
        Ok(Some(Event::Message(_)))
    ));
    assert_eq!(
        s.defer_ack(),
        Err(SessionError::Usage(UsageError::NothingToDefer))
    );
}

#[test]
fn a_full_deferral_queue_holds_back_delivery_until_a_token_is_redeemed() {
    let mut s = connected();
    let mut tokens = Vec::new();
    for id in 1..=4 {
        assert!(deliver(&mut s, QoS::AtLeastOnce, id));
        tokens.push(s.defer_ack().unwrap());
    }
    assert!(deliver(&mut s, QoS::AtLeastOnce, 5));
    assert_eq!(
        s.defer_ack(),
        Err(SessionError::Resource(ResourceError::AcksFull))
    );
    // Message 6 is buffered but not delivered: 5's PUBACK has no place.
    let wire = encoded(incoming(QoS::AtLeastOnce, Some(6), false));
    let space = s.receive_buffer();
    space[..wire.len()].copy_from_slice(&wire);
    s.commit(wire.len());
    assert_eq!(s.poll_event(T0), None);
    s.ack(tokens.remove(0)).unwrap();
    assert!(matches!(s.poll_event(T0), Some(Event::Message(_))));
    assert_eq!(sent(&mut s, T0), [puback(1)]);
    for t in tokens {
        s.ack(t).unwrap();
    }
    assert_eq!(
        sent(&mut s, T0),
        [puback(2), puback(3), puback(4), puback(5), puback(6)]
    );
}

#[test]
fn a_token_of_a_lost_connection_sends_nothing() {
    let mut s = persistent();
    assert!(deliver(&mut s, QoS::AtLeastOnce, 8));
    let token = s.defer_ack().unwrap();
    s.connection_lost();
    connect_at(&mut s, T0, false, 0);
    assert_eq!(s.ack(token), Err(SessionError::Usage(UsageError::StaleAck)));
    assert_eq!(sent(&mut s, T0), []);
    // The resend is delivered again (QoS 1: at least once) and can be
    // deferred again.
    assert!(matches!(
        feed(&mut s, T0, incoming(QoS::AtLeastOnce, Some(8), true)),
        Ok(Some(Event::Message(_)))
    ));
    let token = s.defer_ack().unwrap();
    s.ack(token).unwrap();
    assert_eq!(sent(&mut s, T0), [puback(8)]);
}

#[test]
fn a_qos2_resend_waits_for_its_deferred_pubrec() {
    let mut s = connected();
    assert!(deliver(&mut s, QoS::ExactlyOnce, 5));
    let token = s.defer_ack().unwrap();
    // The broker resends before our PUBREC: not delivered, not answered
    // ahead of the deferred PUBREC.
    feed_quiet(&mut s, T0, incoming(QoS::ExactlyOnce, Some(5), true));
    assert_eq!(sent(&mut s, T0), []);
    s.ack(token).unwrap();
    assert_eq!(sent(&mut s, T0), [pubrec(5)]);
}

#[test]
fn the_end_of_a_stream_can_defer_its_acknowledgement() {
    let mut s = streaming_session::<4>(40, true);
    let wire = large("fw", QoS::AtLeastOnce, Some(12), false, &payload(100));
    let mut fed = 0;
    let mut token = None;
    while fed < wire.len() || token.is_none() {
        while let Some(event) = s.poll_event(T0) {
            if let Event::Stream(Stream {
                part: Part::End, ..
            }) = event
            {
                token = Some(s.defer_ack().unwrap());
                break;
            }
        }
        if fed < wire.len() {
            let space = s.receive_buffer();
            let k = space.len().min(wire.len() - fed);
            space[..k].copy_from_slice(&wire[fed..fed + k]);
            s.commit(k);
            fed += k;
        }
    }
    assert_eq!(sent(&mut s, T0), []);
    s.ack(token.unwrap()).unwrap();
    assert_eq!(sent(&mut s, T0), [puback(12)]);
}

// ------------------------------------------------------ streamed publishes

/// Writes what `poll_transmit` allows, then the due payload from `body`
/// in pieces of `piece`; returns the bytes on the wire.
fn write_streamed<const I: usize, const N: usize>(
    s: &mut Session<'static, I, N>,
    now: Instant,
    body: &[u8],
    piece: usize,
) -> Vec<u8> {
    let mut wire = Vec::new();
    loop {
        let pending = s.poll_transmit(now);
        if !pending.is_empty() {
            let n = pending.len();
            wire.extend_from_slice(pending);
            s.handle_transmit(now, n);
            continue;
        }
        let Some(due) = s.payload_due() else {
            return wire;
        };
        let (buf, _) = s.payload_buffer();
        let n = buf.len().min(piece).min(due.len - due.offset);
        assert!(n > 0);
        wire.extend_from_slice(&body[due.offset..due.offset + n]);
        s.handle_payload(now, n);
    }
}

#[test]
fn a_streamed_publish_writes_its_head_then_the_payload_before_anything_else() {
    let mut s = connected();
    let body = payload(5000);
    let head = Publish::new("fw/img", &[], QoS::AtMostOnce, false);
    assert_eq!(s.publish_streamed(T0, &head, body.len()), Ok(None));
    // A second payload waits for the first.
    assert!(s.publish_streamed(T0, &head, 10).is_err());
    let head_len = s.poll_transmit(T0).len();
    assert_eq!(head_len, head.head_len(5000));
    assert_eq!(s.payload_due(), None, "head not written yet");
    s.handle_transmit(T0, head_len);
    // A PINGREQ queued now goes after the payload.
    s.ping(T0).unwrap();
    assert_eq!(s.poll_transmit(T0), &[] as &[u8]);
    assert_eq!(
        s.payload_due(),
        Some(PayloadDue {
            offset: 0,
            len: 5000,
            packet_id: None
        })
    );
    assert!(!s.transmit_idle());
    let mut wire = encoded_head(&head, 5000);
    wire.extend(write_streamed(&mut s, secs(1), &body, 700));
    let packets = split(Box::leak(wire.into_boxed_slice()));
    assert_eq!(
        packets,
        [
            Packet::Publish(Publish {
                payload: Box::leak(body.clone().into_boxed_slice()),
                ..head
            }),
            Packet::PingReq
        ]
    );
    assert!(s.transmit_idle());
}

fn encoded_head(head: &Publish<'_>, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; head.head_len(len)];
    let n = head.encode_head(len, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn a_streamed_qos1_publish_is_resent_with_its_payload_asked_again() {
    let mut s = persistent();
    let body = payload(3000);
    let head = Publish::new("fw/img", &[], QoS::AtLeastOnce, true);
    assert_eq!(s.publish_streamed(T0, &head, body.len()), Ok(Some(1)));
    let n = s.poll_transmit(T0).len();
    s.handle_transmit(T0, n);
    s.handle_payload(T0, 1000);
    // Cut mid-payload.
    s.connection_lost();
    assert_eq!(s.payload_due(), None);
    connect_at(&mut s, T0, false, 0);
    // Resent from the start, DUP set, same id; the topic is known for
    // whoever supplies the payload now.
    let _ = s.poll_transmit(T0);
    let wire = {
        let mut w = Vec::new();
        let pending = s.poll_transmit(T0);
        w.extend_from_slice(pending);
        let n = pending.len();
        s.handle_transmit(T0, n);
        assert_eq!(s.payload_buffer().1, Some("fw/img"));
        w.extend(write_streamed(&mut s, T0, &body, 512));
        w
    };
    let packets = split(Box::leak(wire.into_boxed_slice()));
    assert_eq!(
        packets,
        [Packet::Publish(Publish {
            dup: true,
            packet_id: Some(1),
            payload: Box::leak(body.clone().into_boxed_slice()),
            ..head
        })]
    );
    assert!(matches!(
        feed(&mut s, T0, puback(1)),
        Ok(Some(Event::Published { packet_id: 1, .. }))
    ));
}

#[test]
fn the_room_kept_for_a_streamed_head_is_given_back_once_it_completes() {
    let mut s = persistent();
    let base = s.p.store.tx_reserve();
    let topic: &'static str = Box::leak("fw/image/".repeat(20).into_boxed_str());
    let head = Publish::new(topic, &[], QoS::AtLeastOnce, false);
    let body = payload(100);
    assert_eq!(s.publish_streamed(T0, &head, body.len()), Ok(Some(1)));
    let _ = write_streamed(&mut s, T0, &body, 100);
    // Its head may be resent through the queue: the entries leave room.
    let head_len = head.head_len(body.len());
    assert!(head_len > base);
    assert_eq!(s.p.store.tx_reserve(), head_len);
    let free = s.p.store.free_bytes();
    assert!(matches!(
        feed(&mut s, T0, puback(1)),
        Ok(Some(Event::Published { packet_id: 1, .. }))
    ));
    // Removed at the next call that changes the session; the CONNECT's
    // room stays.
    assert!(s.poll_transmit(T0).is_empty());
    assert_eq!(s.p.store.tx_reserve(), base);
    assert_eq!(s.p.store.free_bytes(), free + head_len + (head_len - base));
}

#[test]
fn streamed_messages_without_a_payload_source_are_discarded_at_reconnect() {
    let mut s = persistent();
    s.set_options(Options {
        resend_streamed: false,
        ..Options::DEFAULT
    });
    let head = Publish::new("fw/img", &[], QoS::ExactlyOnce, false);
    assert_eq!(s.publish_streamed(T0, &head, 100), Ok(Some(1)));
    let _ = write_streamed(&mut s, T0, &payload(100), 100);
    s.connection_lost();
    s.connect(T0, &connect_packet(false, 0)).unwrap();
    let _ = sent(&mut s, T0);
    let events = feed_bytes(&mut s, T0, &encoded(accepted()), 64);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[1].starts_with("Discarded"), "{events:?}");
    assert_eq!(s.publish_outcome(1), Outcome::Discarded);
    assert_eq!(sent(&mut s, T0), []);
}

#[test]
fn an_abandoned_payload_discards_the_message_and_ends_the_connection() {
    let mut s = persistent();
    let head = Publish::new("fw/img", &[], QoS::AtLeastOnce, false);
    assert_eq!(s.publish_streamed(T0, &head, 100), Ok(Some(1)));
    let n = s.poll_transmit(T0).len();
    s.handle_transmit(T0, n);
    s.abandon_payload();
    assert_eq!(s.state(), State::Disconnected);
    assert!(matches!(
        s.poll_event(T0),
        Some(Event::Discarded { packet_id: 1, .. })
    ));
    assert_eq!(s.publish_outcome(1), Outcome::Discarded);
}

#[test]
fn while_a_payload_is_written_only_write_progress_has_a_deadline() {
    let mut s = connected();
    s.publish(T0, &msg("other", QoS::AtLeastOnce)).unwrap();
    let _ = sent(&mut s, T0);
    let head = Publish::new("fw/img", &[], QoS::AtLeastOnce, false);
    assert_eq!(s.publish_streamed(T0, &head, 4000), Ok(Some(2)));
    let n = s.poll_transmit(T0).len();
    s.handle_transmit(T0, n);
    // A slow link: 1,000 bytes every 8 s, past both PUBACK deadlines
    // (10 s), which cannot be read while the payload is written.
    for step in 1..=3 {
        let now = secs(8 * step);
        assert_eq!(timeout(&mut s, now), Ok(()));
        s.handle_payload(now, 1000);
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(10)));
    }
    s.handle_payload(secs(30), 1000);
    // Done: the acknowledgement waits start again.
    assert_eq!(s.poll_timeout(), Some(secs(40)));
    assert_eq!(timeout(&mut s, secs(39)), Ok(()));
    // A payload whose writing stalls ends the connection.
    let mut s = connected();
    assert_eq!(s.publish_streamed(T0, &head, 4000), Ok(Some(1)));
    let n = s.poll_transmit(T0).len();
    s.handle_transmit(T0, n);
    s.handle_payload(secs(1), 100);
    assert_eq!(s.poll_timeout(), Some(secs(11)));
    assert!(timeout(&mut s, secs(11)).is_err());
}

#[test]
fn chunks_keep_acknowledgement_waits_alive() {
    let mut s = streaming_session::<4>(64, true);
    s.publish(T0, &msg("out", QoS::AtLeastOnce)).unwrap();
    let _ = sent(&mut s, T0);
    assert_eq!(s.poll_timeout(), Some(secs(10)));
    let wire = large("fw", QoS::AtMostOnce, None, false, &payload(500));
    let _ = stream_bytes(&mut s, secs(9), &wire[..200], &[50]);
    // Our PUBACK is queued behind the long message: still waited for.
    assert_eq!(s.poll_timeout(), Some(secs(19)));
}

#[test]
fn deferred_acknowledgements_wait_for_room_in_a_small_transmit_buffer() {
    // 16 bytes: the CONNECT, then four acknowledgements at a time.
    let mut s: Session<'static, 4, 4> = session_with(16, 0);
    connect_at(&mut s, T0, true, 60);
    assert!(deliver(&mut s, QoS::AtLeastOnce, 1));
    let one = s.defer_ack().unwrap();
    for id in 2..=4 {
        assert!(deliver(&mut s, QoS::AtLeastOnce, id));
    }
    assert!(s.transmit_idle(), "everything waits behind 1");
    // A PINGREQ takes 2 of the 16 bytes: three acknowledgements fit.
    s.ping(T0).unwrap();
    s.ack(one).unwrap();
    assert_eq!(s.poll_transmit(T0).len(), 14);
    assert!(!s.transmit_idle(), "4 waits for room");
    assert_eq!(
        sent(&mut s, T0),
        [Packet::PingReq, puback(1), puback(2), puback(3), puback(4)]
    );
    assert!(s.transmit_idle());
}

#[test]
fn stream_and_payload_calls_out_of_turn_change_nothing() {
    let mut s = streaming_session::<4>(64, true);
    // No stream, no payload: nothing to skip, write or abandon.
    s.skip_stream();
    s.handle_payload(T0, 10);
    assert_eq!(s.payload_due(), None);
    assert_eq!(s.outgoing_topic(7), None);
    assert_eq!(s.state(), State::Connected);
    // Skipping a stream whose end was reported: nothing more to skip.
    let wire = large("fw", QoS::AtMostOnce, None, false, &payload(100));
    let mut fed = 0;
    let mut ended = false;
    while !ended {
        let space = s.receive_buffer();
        let k = space.len().min(wire.len() - fed);
        space[..k].copy_from_slice(&wire[fed..fed + k]);
        s.commit(k);
        fed += k;
        while let Some(event) = s.poll_event(T0) {
            if let Event::Stream(Stream {
                part: Part::End, ..
            }) = event
            {
                ended = true;
                break;
            }
        }
    }
    s.skip_stream();
    assert!(!s.is_streaming());
    assert_eq!(feed(&mut s, T0, Packet::PingResp), Ok(Some(Event::Pong)));
    // A QoS 0 payload abandoned: the connection ends, nothing to discard.
    let head = Publish::new("fw/img", &[], QoS::AtMostOnce, false);
    assert_eq!(s.publish_streamed(T0, &head, 100), Ok(None));
    let n = s.poll_transmit(T0).len();
    s.handle_transmit(T0, n);
    s.handle_payload(T0, 0);
    assert!(s.payload_due().is_some());
    s.abandon_payload();
    assert_eq!(s.state(), State::Disconnected);
    assert_eq!(s.poll_event(T0), None);
}

#[test]
fn a_streamed_resend_waits_behind_a_stored_one() {
    let mut s = persistent();
    assert_eq!(s.publish(T0, &msg("q", QoS::AtLeastOnce)), Ok(Some(1)));
    let _ = sent(&mut s, T0);
    let head = Publish::new("fw/a", &[], QoS::AtLeastOnce, false);
    assert_eq!(s.publish_streamed(T0, &head, 50), Ok(Some(2)));
    let _ = write_streamed(&mut s, T0, &payload(50), 50);
    s.connection_lost();
    connect_at(&mut s, T0, false, 0);
    // 1 from the store, alone, then 2's head, then its payload.
    let first = s.poll_transmit(T0).to_vec();
    assert_eq!(
        split(Box::leak(first.clone().into_boxed_slice())),
        [wire_publish("q", QoS::AtLeastOnce, 1, true)]
    );
    s.handle_transmit(T0, first.len());
    assert_eq!(s.payload_due().map(|d| d.packet_id), None);
    let head_len = s.poll_transmit(T0).len();
    assert_eq!(head_len, head.head_len(50));
    s.handle_transmit(T0, head_len);
    assert_eq!(
        s.payload_due().map(|d| (d.len, d.packet_id)),
        Some((50, Some(2)))
    );
}

#[test]
fn two_streamed_resends_go_one_payload_at_a_time() {
    let mut s = persistent();
    let head = Publish::new("fw/a", &[], QoS::AtLeastOnce, false);
    assert_eq!(s.publish_streamed(T0, &head, 50), Ok(Some(1)));
    let _ = write_streamed(&mut s, T0, &payload(50), 50);
    let head2 = Publish::new("fw/b", &[], QoS::ExactlyOnce, false);
    assert_eq!(s.publish_streamed(T0, &head2, 60), Ok(Some(2)));
    let _ = write_streamed(&mut s, T0, &payload(60), 60);
    // The QoS 2 one got its PUBREC: it resends PUBREL, no payload.
    feed_quiet(&mut s, T0, pubrec(2));
    let _ = sent(&mut s, T0);
    let head3 = Publish::new("fw/c", &[], QoS::AtLeastOnce, false);
    assert_eq!(s.publish_streamed(T0, &head3, 70), Ok(Some(3)));
    let _ = write_streamed(&mut s, T0, &payload(70), 70);
    s.connection_lost();
    connect_at(&mut s, T0, false, 0);
    // 1's head, then its payload; only then PUBREL 2 and 3's head.
    let first = s.poll_transmit(T0).len();
    assert_eq!(first, head.head_len(50));
    s.handle_transmit(T0, first);
    assert_eq!(
        s.payload_due().map(|d| (d.len, d.packet_id)),
        Some((50, Some(1)))
    );
    assert_eq!(s.poll_transmit(T0), &[] as &[u8]);
    s.handle_payload(T0, 50);
    let mut wire = Vec::new();
    let pending = s.poll_transmit(T0);
    wire.extend_from_slice(pending);
    let n = pending.len();
    s.handle_transmit(T0, n);
    assert_eq!(
        s.payload_due().map(|d| (d.len, d.packet_id)),
        Some((70, Some(3)))
    );
    wire.extend(write_streamed(&mut s, T0, &payload(70), 70));
    let packets = split(Box::leak(wire.into_boxed_slice()));
    assert_eq!(packets.len(), 2);
    assert_eq!(packets[0], pubrel(2));
    assert!(matches!(
        packets[1],
        Packet::Publish(Publish {
            dup: true,
            packet_id: Some(3),
            ..
        })
    ));
}

#[test]
fn without_a_payload_source_a_streamed_message_past_pubrec_still_completes() {
    let mut s = persistent();
    s.set_options(Options {
        resend_streamed: false,
        ..Options::DEFAULT
    });
    let head = Publish::new("fw/img", &[], QoS::ExactlyOnce, false);
    assert_eq!(s.publish_streamed(T0, &head, 100), Ok(Some(1)));
    let _ = write_streamed(&mut s, T0, &payload(100), 100);
    feed_quiet(&mut s, T0, pubrec(1));
    let _ = sent(&mut s, T0);
    s.connection_lost();
    connect_at(&mut s, T0, false, 0);
    // Its PUBREL needs no payload: resent, not discarded.
    assert_eq!(sent(&mut s, T0), [pubrel(1)]);
    assert!(matches!(
        feed(&mut s, T0, pubcomp(1)),
        Ok(Some(Event::Published { packet_id: 1, .. }))
    ));
}

#[test]
fn a_resent_stream_whose_pubrec_is_deferred_is_skipped_without_another() {
    let mut s = streaming_session::<4>(48, false);
    let body = payload(300);
    let wire = large("fw", QoS::ExactlyOnce, Some(5), false, &body);
    let mut fed = 0;
    let mut token = None;
    while token.is_none() {
        let space = s.receive_buffer();
        let k = space.len().min(wire.len() - fed);
        space[..k].copy_from_slice(&wire[fed..fed + k]);
        s.commit(k);
        fed += k;
        while let Some(event) = s.poll_event(T0) {
            if let Event::Stream(Stream {
                part: Part::End, ..
            }) = event
            {
                token = Some(s.defer_ack().unwrap());
                break;
            }
        }
    }
    // The broker resends it (DUP): skipped, no PUBREC ahead of ours.
    let again = large("fw", QoS::ExactlyOnce, Some(5), true, &body);
    let seen = stream_bytes(&mut s, T0, &again, &[40]);
    assert_eq!(seen, Seen::default());
    assert_eq!(sent(&mut s, T0), []);
    s.ack(token.unwrap()).unwrap();
    assert_eq!(sent(&mut s, T0), [pubrec(5)]);
}

#[test]
fn chunks_restart_the_wait_of_a_pending_subscribe() {
    let mut s = streaming_session::<4>(64, true);
    s.subscribe(T0, &[sub("a/b", QoS::AtMostOnce)]).unwrap();
    let _ = sent(&mut s, T0);
    assert_eq!(s.poll_timeout(), Some(secs(10)));
    let wire = large("fw", QoS::AtMostOnce, None, false, &payload(500));
    let _ = stream_bytes(&mut s, secs(6), &wire[..200], &[50]);
    assert_eq!(s.poll_timeout(), Some(secs(16)));
}

#[test]
fn a_streamed_head_waits_under_the_usual_deadlines_until_written() {
    let mut s = connected();
    // Idle for a minute, then a streamed publish: nothing is overdue.
    let later = secs(60);
    let head = Publish::new("fw/img", &[], QoS::AtMostOnce, false);
    assert_eq!(s.publish_streamed(later, &head, 100), Ok(None));
    assert_eq!(
        s.poll_timeout(),
        None,
        "no keep-alive, no acks: no deadline"
    );
    assert_eq!(timeout(&mut s, later), Ok(()));
    // A driver claiming more than it was handed claims only the head.
    let n = s.poll_transmit(later).len();
    s.ping(later).unwrap();
    s.handle_transmit(later, n + 2);
    assert_eq!(
        s.payload_due(),
        Some(PayloadDue {
            offset: 0,
            len: 100,
            packet_id: None
        })
    );
    // Now the write-progress deadline runs, from the head's write.
    assert_eq!(s.poll_timeout(), Some(later + Duration::from_secs(10)));
    s.handle_payload(later, 100);
    assert_eq!(sent(&mut s, later), [Packet::PingReq]);
}

#[test]
fn a_streamed_head_keeps_room_for_the_resubscription() {
    // 120 bytes of arena: the filter (3) and its 10-byte re-SUBSCRIBE,
    // queued and kept, beside a head that a resend queues again: its
    // length of the queue's room stays kept, on top of its copy.
    let subscribed = || {
        let mut s: Session<'static, 4, 4> = session_with(0, 120);
        connect_at(&mut s, T0, false, 0);
        let id = s.subscribe(T0, &[sub("abc", QoS::AtMostOnce)]).unwrap();
        sent(&mut s, T0);
        feed(&mut s, T0, suback(id, &[0])).unwrap();
        s
    };
    let head = |topic_len: usize| {
        let topic: &'static str = Box::leak("t".repeat(topic_len).into_boxed_str());
        Publish::new(topic, &[], QoS::AtLeastOnce, false)
    };
    // 3 + 55 + 10 + 55 > 120: the subscription list could not be re-sent.
    let mut s = subscribed();
    assert_eq!(head(48).head_len(100), 55);
    assert_eq!(
        s.publish_streamed(T0, &head(48), 100),
        Err(SessionError::Resource(ResourceError::StoreFull))
    );
    // 3 + 50 + 10 + 50 fits, and the re-SUBSCRIBE is a request still.
    let mut s = subscribed();
    assert_eq!(s.publish_streamed(T0, &head(43), 100), Ok(Some(2)));
    let _ = write_streamed(&mut s, T0, &payload(100), 100);
    s.connection_lost();
    s.connect(T0, &connect_packet(false, 0)).unwrap();
    sent(&mut s, T0);
    assert_eq!(
        feed(&mut s, T0, accepted()),
        Ok(Some(Event::Connected(Connected::new(false, 1, 1))))
    );
    let wire = write_streamed(&mut s, T0, &payload(100), 100);
    let packets = split(Box::leak(wire.into_boxed_slice()));
    assert!(
        matches!(
            packets[..],
            [
                Packet::Subscribe(Subscribe { packet_id: 3, .. }),
                Packet::Publish(_)
            ]
        ),
        "{packets:?}"
    );
    assert!(matches!(
        feed(&mut s, T0, suback(3, &[0])),
        Ok(Some(Event::Subscribed { packet_id: 3, .. }))
    ));
}
