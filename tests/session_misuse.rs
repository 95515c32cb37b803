//! The sans-IO `Session` under a driver that gets the contract wrong
//! (write reports repeated, early or late, operations in every state, time
//! going backwards) and a broker that sends arbitrary bytes. Public API
//! only.

use minimqtt::codec::{self, Connect, Publish, QoS, Subscription};
use minimqtt::session::{Closed, Event, Session, State, Timeouts};
use minimqtt::time::{Duration, Instant};
use minimqtt::{SessionError, UsageError};

fn leak(n: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; n].into_boxed_slice())
}

type S = Session<'static, 4, 4>;

fn session(rx: usize, arena: usize) -> S {
    Session::new(leak(rx), leak(arena), Timeouts::default())
}

const T0: Instant = Instant::from_millis(0);

fn events(s: &mut S, now: Instant) -> Vec<String> {
    let mut v = Vec::new();
    while let Some(e) = s.poll_event(now) {
        v.push(format!("{e:?}"));
    }
    v
}

/// Writes everything, polling events in between; returns the bytes written.
fn drain(s: &mut S, now: Instant) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let _ = events(s, now);
        let b = s.poll_transmit(now);
        if b.is_empty() {
            break;
        }
        let n = b.len();
        out.extend_from_slice(b);
        s.handle_transmit(now, n);
    }
    let _ = events(s, now);
    out
}

fn feed(s: &mut S, now: Instant, mut bytes: &[u8]) -> Vec<String> {
    let mut ev = Vec::new();
    loop {
        ev.extend(events(s, now));
        if bytes.is_empty() {
            break;
        }
        let space = s.receive_buffer();
        let n = space.len().min(bytes.len());
        assert!(n > 0, "receive buffer full");
        space[..n].copy_from_slice(&bytes[..n]);
        s.commit(n);
        bytes = &bytes[n..];
    }
    ev
}

fn connect_v3(s: &mut S) {
    s.connect(T0, &Connect::new("c")).unwrap();
    drain(s, T0);
    let ev = feed(s, T0, &[0x20, 2, 0, 0]);
    assert!(ev[0].starts_with("Connected"), "{ev:?}");
}

fn connect_v5(s: &mut S) {
    let c = codec::v5::Connect::new("c");
    s.connect_v5(T0, &c).unwrap();
    drain(s, T0);
    let ev = feed(s, T0, &[0x20, 3, 0, 0, 0]);
    assert!(ev[0].starts_with("Connected"), "{ev:?}");
}

fn q<'a>(qos: QoS, topic: &'a str, payload: &'static [u8]) -> Publish<'a> {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        packet_id: None,
        payload,
    }
}

/// Splits client bytes into packets (type nibble and length).
fn packet_types(mut wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let h = codec::FixedHeader::decode(wire).expect("undecodable fixed header");
        let len = usize::from(h.header_len) + h.remaining_len as usize;
        out.push(wire[0] >> 4);
        wire = &wire[len.min(wire.len())..];
    }
    out
}

// ------------------------------------------------------------- findings

/// `disconnect` while a streamed payload is due: the DISCONNECT is queued
/// ("Queues DISCONNECT; once it is written the connection is over") but can
/// never be written: `payload_due` is `None` once disconnected, and
/// `poll_transmit` returns nothing while the payload is due. The driver
/// can make no progress: `transmit_idle` stays false forever.
#[test]
fn disconnect_while_a_streamed_payload_is_due_is_refused_or_written() {
    let mut s = session(256, 1024);
    connect_v3(&mut s);
    s.publish_streamed(T0, &q(QoS::AtMostOnce, "big", b""), 10_000)
        .unwrap();
    // The head goes out.
    let head = s.poll_transmit(T0).len();
    assert!(head > 0);
    s.handle_transmit(T0, head);
    assert!(s.payload_due().is_some());
    // Part of the payload is written.
    s.handle_payload(T0, 100);
    if s.disconnect().is_err() {
        // Refusing is fine: nothing changed, the driver finishes the
        // payload, and then the DISCONNECT goes.
        assert_eq!(s.state(), State::Connected);
        let due = s
            .payload_due()
            .expect("still due after a refused disconnect");
        assert_eq!(due.offset, 100);
        s.handle_payload(T0, due.len - due.offset);
        s.disconnect().unwrap();
    }
    // Accepted: the DISCONNECT must eventually be writable, after the
    // rest of the payload (which must then still be asked for).
    let mut wrote_disconnect = false;
    for _ in 0..100 {
        if let Some(due) = s.payload_due() {
            s.handle_payload(T0, due.len - due.offset);
            continue;
        }
        let b = s.poll_transmit(T0);
        if b.is_empty() {
            break;
        }
        wrote_disconnect |= b.first() == Some(&0xE0);
        let n = b.len();
        s.handle_transmit(T0, n);
    }
    assert!(
        wrote_disconnect,
        "DISCONNECT accepted but never writable (payload_due {:?}, transmit_idle {})",
        s.payload_due(),
        s.transmit_idle()
    );
}

/// The same with MQTT 5's `disconnect_v5`.
#[test]
fn v5_disconnect_while_a_streamed_payload_is_due_is_refused() {
    let mut s = session(256, 1024);
    connect_v5(&mut s);
    s.publish_streamed(T0, &q(QoS::AtMostOnce, "big", b""), 10_000)
        .unwrap();
    let head = s.poll_transmit(T0).len();
    s.handle_transmit(T0, head);
    s.handle_payload(T0, 100);
    let d = codec::v5::Disconnect::new();
    if s.disconnect_v5(&d).is_ok() {
        assert!(
            s.payload_due().is_some() || !s.poll_transmit(T0).is_empty(),
            "DISCONNECT accepted but nothing can be written"
        );
    }
}

/// MQTT 5 goodbye after a partial write the driver has not reported yet.
/// `poll_transmit`'s docs allow reading between it and `handle_transmit`
/// ("Bytes handed out stay valid until written in full, even if what is
/// read before handle_transmit acknowledges their message"). When what
/// is read is malformed, the session queues its goodbye DISCONNECT in
/// place of the packet the driver is part-way through writing, and the
/// driver's `handle_transmit(k)` for that write then eats the
/// DISCONNECT's bytes: the wire gets the start of one packet and the
/// tail of another. `close` guards exactly this case for a stored PUBLISH
/// handed out (`!stored_out`), but not for bytes of the queue.
#[test]
fn v5_goodbye_is_not_spliced_into_a_partial_write() {
    let mut s = session(256, 1024);
    connect_v5(&mut s);
    s.subscribe(
        T0,
        &[Subscription {
            filter: "a/b",
            qos: QoS::AtMostOnce,
        }],
    )
    .unwrap();
    let mut wire = Vec::new();
    let handed = s.poll_transmit(T0).to_vec();
    assert!(handed.len() > 2, "{handed:?}");
    // The transport takes 1 byte; before it reports, a malformed packet
    // (PUBACK with reserved flags) is read.
    wire.extend_from_slice(&handed[..1]);
    let ev = feed(&mut s, T0, &[0x41, 2, 0, 1]);
    assert!(ev.iter().any(|e| e.starts_with("Closed")), "{ev:?}");
    s.handle_transmit(T0, 1);
    // Nothing may follow the partial SUBSCRIBE byte: any DISCONNECT
    // (whole or its tail) would be read by the broker as the rest of it.
    wire.extend_from_slice(&drain(&mut s, T0));
    assert_eq!(
        wire,
        handed[..1],
        "bytes written after Closed, behind a partial packet"
    );
}

// ------------------------------------------------ misuse, randomised

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const TOPICS: [&str; 4] = ["a", "a/b", "", "x/+"];

/// Broker-ish bytes: mostly well-formed packets with random fields, some
/// raw noise.
fn broker_bytes(r: &mut Rng, v5: bool) -> Vec<u8> {
    let id = (r.below(6) as u16).to_be_bytes();
    let mut p = match r.below(12) {
        0 => {
            if v5 {
                vec![
                    0x20,
                    3,
                    r.below(2) as u8,
                    [0, 0x80, 0x87][r.below(3) as usize],
                    0,
                ]
            } else {
                vec![0x20, 2, r.below(2) as u8, r.below(6) as u8]
            }
        }
        1 | 2 => {
            let qos = r.below(3) as u8;
            let mut body = vec![0, 3, b'a', b'/', b'b'];
            if qos > 0 {
                body.extend_from_slice(&id);
            }
            if v5 {
                body.push(0);
            }
            let len = r.below(300) as usize;
            body.extend(std::iter::repeat_n(b'p', len));
            let mut out = vec![0x30 | qos << 1 | r.below(2) as u8 | (r.below(2) as u8) << 3];
            let mut rl = body.len();
            loop {
                let mut b = (rl % 128) as u8;
                rl /= 128;
                if rl > 0 {
                    b |= 0x80;
                }
                out.push(b);
                if rl == 0 {
                    break;
                }
            }
            out.extend(body);
            out
        }
        3 => vec![0x40, 2, id[0], id[1]],
        4 => vec![0x50, 2, id[0], id[1]],
        5 => vec![0x62, 2, id[0], id[1]],
        6 => vec![0x70, 2, id[0], id[1]],
        7 => {
            if v5 {
                vec![0x90, 4, id[0], id[1], 0, r.below(3) as u8]
            } else {
                vec![0x90, 3, id[0], id[1], r.below(3) as u8]
            }
        }
        8 => {
            if v5 {
                vec![0xB0, 4, id[0], id[1], 0, 0]
            } else {
                vec![0xB0, 2, id[0], id[1]]
            }
        }
        9 => vec![0xD0, 0],
        10 => vec![0xE0, 0],
        _ => (0..r.below(12)).map(|_| r.next() as u8).collect(),
    };
    if r.below(8) == 0 {
        // Truncate or corrupt.
        let n = r.below(p.len() as u64 + 1) as usize;
        p.truncate(n);
    }
    p
}

fn run_misuse(seed: u64, steps: usize) {
    let mut r = Rng(seed | 1);
    let rx = [8usize, 16, 64, 512][r.below(4) as usize];
    let arena = [64usize, 160, 1024][r.below(3) as usize];
    let mut s: S = Session::new(leak(rx), leak(arena), Timeouts::default());
    let mut now: u64 = 1_000_000;
    let mut handed = 0usize;
    let mut v5 = false;
    let mut tokens = Vec::new();
    let mut closed_v3 = false;
    for _ in 0..steps {
        // Time: forward, backward, same, far future.
        match r.below(10) {
            0 => now = now.saturating_sub(r.below(100_000)),
            1 => now = now.saturating_add(r.below(1_000_000_000)),
            2..=5 => now = now.saturating_add(r.below(2_000)),
            _ => {}
        }
        let t = Instant::from_millis(now);
        match r.below(30) {
            0 => {
                let c = Connect {
                    clean_session: r.below(2) == 0,
                    keep_alive: r.below(5) as u16,
                    ..Connect::new("c")
                };
                if s.connect(t, &c).is_ok() {
                    v5 = false;
                    closed_v3 = false;
                }
            }
            1 => {
                let c = codec::v5::Connect {
                    clean_start: r.below(2) == 0,
                    keep_alive: r.below(5) as u16,
                    ..codec::v5::Connect::new("c")
                };
                if s.connect_v5(t, &c).is_ok() {
                    v5 = true;
                    closed_v3 = false;
                }
            }
            2..=8 => {
                let bytes = broker_bytes(&mut r, v5);
                let space = s.receive_buffer();
                let k = bytes.len().min(space.len());
                space[..k].copy_from_slice(&bytes[..k]);
                // Commit: right, zero, or too much.
                let n = match r.below(6) {
                    0 => 0,
                    1 => k + r.below(1000) as usize,
                    2 => usize::MAX,
                    _ => k,
                };
                s.commit(n);
            }
            9 => s.commit(r.below(64) as usize), // without receive_buffer
            10..=13 => {
                while let Some(e) = s.poll_event(t) {
                    match e {
                        Event::Closed(_) if !v5 => closed_v3 = true,
                        Event::Message(_) | Event::Stream(_) if r.below(3) == 0 => {
                            if let Ok(tok) = s.defer_ack() {
                                tokens.push(tok);
                            }
                            break;
                        }
                        _ => {}
                    }
                    if r.below(4) == 0 {
                        break;
                    }
                }
                if closed_v3 {
                    assert_eq!(s.state(), State::Disconnected);
                    assert!(
                        s.poll_transmit(t).is_empty(),
                        "MQTT 3.1.1: bytes to write after Closed"
                    );
                }
            }
            14..=17 => {
                let b = s.poll_transmit(t);
                assert!(b.len() <= arena);
                handed = b.len();
                let n = match r.below(6) {
                    0 => 0,
                    1 => handed / 2,
                    2 => handed + r.below(100) as usize,
                    3 => usize::MAX,
                    _ => handed,
                };
                s.handle_transmit(t, n);
                if r.below(4) == 0 {
                    s.handle_transmit(t, n); // twice
                }
            }
            18 => s.handle_transmit(t, r.below(50) as usize), // without poll
            19 => {
                let qos =
                    [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][r.below(3) as usize];
                let topic = TOPICS[r.below(4) as usize];
                let _ = s.publish(t, &q(qos, topic, b"hello"));
            }
            20 => {
                let filter = TOPICS[r.below(4) as usize];
                let _ = s.subscribe(
                    t,
                    &[Subscription {
                        filter,
                        qos: QoS::AtLeastOnce,
                    }],
                );
            }
            21 => {
                let _ = s.unsubscribe(t, &[TOPICS[r.below(4) as usize]]);
            }
            22 => {
                let _ = s.ping(t);
            }
            23 => {
                let _ = s.disconnect();
            }
            24 => s.connection_lost(),
            25 => {
                s.handle_timeout(t);
                let _ = s.poll_timeout();
            }
            26 => {
                if !tokens.is_empty() {
                    let i = r.below(tokens.len() as u64) as usize;
                    let tok = tokens.swap_remove(i);
                    let _ = s.ack(tok);
                }
                let _ = s.defer_ack();
            }
            27 => {
                let _ =
                    s.publish_streamed(t, &q(QoS::AtLeastOnce, "s", b""), r.below(5000) as usize);
            }
            28 => match r.below(4) {
                0 => s.abandon_payload(),
                1 => {
                    let (buf, _) = s.payload_buffer();
                    let _ = buf.len();
                }
                2 => s.skip_stream(),
                _ => s.handle_payload(t, r.below(3000) as usize),
            },
            _ => {
                let props = [codec::v5::Property::ContentType("x")];
                let _ = s.publish_with(
                    t,
                    &q(QoS::AtLeastOnce, "a", b"x"),
                    &codec::v5::Properties::new(&props),
                );
                let sub = [codec::v5::Subscription {
                    filter: "a",
                    options: codec::v5::SubscriptionOptions {
                        no_local: true,
                        ..codec::v5::SubscriptionOptions::new(QoS::AtMostOnce)
                    },
                }];
                let _ = s.subscribe_v5(t, &sub, Some(r.below(3) as u32));
            }
        }
        let _ = (
            s.inflight(),
            s.can_publish(),
            s.transmit_idle(),
            s.sent_due(),
        );
        let _ = s.subscriptions().count();
        let _ = s.inflight_ids().count();
    }
    let _ = handed;
}

#[test]
fn misuse_random_never_panics() {
    let seeds: u64 = std::env::var("MISUSE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    for seed in 0..seeds {
        let result = std::panic::catch_unwind(|| run_misuse(seed * 0x9E37_79B9 + 7, 2_000));
        if result.is_err() {
            panic!("seed {seed} panicked");
        }
    }
}

/// `handle_payload` before the streamed head is written: "`n` bytes of
/// the due payload were written", and `payload_due` says none is due yet.
/// The session counts them anyway; the payload is then never asked for,
/// and the head, which announces 10,000 payload bytes, is followed on the
/// wire by the next packet: a desynchronised stream from one misplaced
/// call that could simply be ignored (as `handle_transmit` clamps).
#[test]
fn handle_payload_before_the_head_is_written_is_ignored() {
    let mut s = session(256, 1024);
    connect_v3(&mut s);
    s.publish_streamed(T0, &q(QoS::AtMostOnce, "big", b""), 10_000)
        .unwrap();
    assert_eq!(s.payload_due(), None, "head not written yet");
    s.handle_payload(T0, 10_000); // misuse: nothing is due
    let head = s.poll_transmit(T0).len();
    s.handle_transmit(T0, head);
    let due = s.payload_due();
    assert!(
        matches!(due, Some(d) if d.offset == 0 && d.len == 10_000),
        "payload_due after the head: {due:?}"
    );
}

/// `handle_transmit` twice for the same write ("`n` bytes of
/// poll_transmit were written"): the second call claims bytes of the next
/// piece, which `poll_transmit` never handed out. A stored QoS 1 PUBLISH
/// is one piece, the QoS 0 PUBLISH queued behind it the next: the
/// duplicate report eats the start of the QoS 0 one, and the driver then
/// writes only its tail. The broker reads a PUBLISH followed by a
/// fragment: a desynchronised stream. (The stored piece itself is
/// guarded, by `stored_out`; queue bytes are not.)
#[test]
fn handle_transmit_twice_does_not_claim_bytes_never_handed_out() {
    let mut s = session(256, 1024);
    connect_v3(&mut s);
    s.publish(T0, &q(QoS::AtLeastOnce, "a", b"one")).unwrap();
    s.publish(T0, &q(QoS::AtMostOnce, "b", b"two")).unwrap();
    let mut wire = Vec::new();
    let first = s.poll_transmit(T0).to_vec();
    wire.extend_from_slice(&first);
    s.handle_transmit(T0, first.len());
    s.handle_transmit(T0, first.len()); // the driver's bug: reported twice
    wire.extend_from_slice(&drain(&mut s, T0));
    // Both PUBLISHes whole, in order.
    assert_eq!(packet_types(&wire), [3, 3], "wire {wire:02x?}");
    let second = &wire[first.len()..];
    assert_eq!(second.get(..2), Some(&[0x30, 6][..]), "wire {wire:02x?}");
}

/// Same, without any `poll_transmit` at all: nothing was handed out, so
/// nothing can have been written.
#[test]
fn handle_transmit_without_poll_transmit_claims_nothing() {
    let mut s = session(256, 1024);
    connect_v3(&mut s);
    s.publish(T0, &q(QoS::AtMostOnce, "b", b"two")).unwrap();
    s.handle_transmit(T0, 3);
    let wire = drain(&mut s, T0);
    assert_eq!(wire, [0x30, 6, 0, 1, b'b', b't', b'w', b'o']);
}

/// A write on the old transport reported after the connection closed and
/// a new one started: the new CONNECT must still go out whole. Before
/// the fix the late `handle_transmit` ate the CONNECT's first bytes, and
/// the new connection's stream began mid-packet.
#[test]
fn a_late_write_report_does_not_cut_the_next_connect() {
    let mut s = session(256, 1024);
    connect_v3(&mut s);
    s.publish(T0, &q(QoS::AtMostOnce, "b", b"two")).unwrap();
    let handed = s.poll_transmit(T0).len();
    assert!(handed > 0);
    // The broker sends garbage while the write is under way.
    let ev = feed(&mut s, T0, &[0x00, 0x00]);
    assert!(ev.iter().any(|e| e.starts_with("Closed")), "{ev:?}");
    s.connect(T0, &Connect::new("c")).unwrap();
    s.handle_transmit(T0, handed); // the old transport's write completes
    let wire = drain(&mut s, T0);
    assert_eq!(packet_types(&wire), [1], "wire {wire:02x?}");
    assert_eq!(wire[0], 0x10);
}

#[test]
fn a_deferred_ack_redeemed_after_closed_sends_nothing() {
    let mut s = session(256, 1024);
    connect_v3(&mut s);
    let msg = [0x32u8, 7, 0, 1, b'a', 0, 9, b'x', b'y'];
    let space = s.receive_buffer();
    space[..msg.len()].copy_from_slice(&msg);
    s.commit(msg.len());
    assert!(matches!(s.poll_event(T0), Some(Event::Message(_))));
    let token = s.defer_ack().unwrap();
    let ev = feed(&mut s, T0, &[0x00, 0x00]);
    assert!(ev.iter().any(|e| e.starts_with("Closed")), "{ev:?}");
    let r = s.ack(token);
    assert_eq!(r, Err(SessionError::Usage(UsageError::StaleAck)));
    assert!(s.poll_transmit(T0).is_empty());
}

// ------------------------------------------- what already behaved

#[test]
fn operations_in_every_state_are_refused_cleanly() {
    let mut s = session(256, 1024);
    let p = q(QoS::AtLeastOnce, "a", b"x");
    let sub = [Subscription {
        filter: "a",
        qos: QoS::AtMostOnce,
    }];
    let nc = SessionError::Usage(UsageError::NotConnected);
    // Never connected.
    assert_eq!(s.publish(T0, &p), Err(nc));
    assert_eq!(s.subscribe(T0, &sub), Err(nc));
    assert_eq!(s.unsubscribe(T0, &["a"]), Err(nc));
    assert_eq!(s.ping(T0), Err(nc));
    assert_eq!(s.disconnect(), Err(nc));
    assert!(s.poll_transmit(T0).is_empty());
    assert_eq!(s.poll_timeout(), None);
    s.commit(usize::MAX);
    s.commit(0);
    s.handle_transmit(T0, usize::MAX);
    assert_eq!(s.poll_event(T0), None);
    // Connecting.
    s.connect(T0, &Connect::new("c")).unwrap();
    assert_eq!(
        s.connect(T0, &Connect::new("c")),
        Err(SessionError::Usage(UsageError::AlreadyConnected))
    );
    assert_eq!(s.publish(T0, &p), Err(nc));
    assert_eq!(s.ping(T0), Err(nc));
    let w = drain(&mut s, T0);
    assert_eq!(packet_types(&w), [1]);
    // Connected, then Closed by garbage.
    let ev = feed(&mut s, T0, &[0x20, 2, 0, 0]);
    assert!(ev[0].starts_with("Connected"));
    let ev = feed(&mut s, T0, &[0x00, 0x00]);
    assert!(ev.iter().any(|e| e.starts_with("Closed")), "{ev:?}");
    assert_eq!(s.state(), State::Disconnected);
    assert!(s.poll_transmit(T0).is_empty());
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.publish(T0, &p), Err(nc));
    assert_eq!(s.disconnect(), Err(nc));
    // Reconnect: the stream starts with CONNECT.
    s.connect(T0, &Connect::new("c")).unwrap();
    let w = drain(&mut s, T0);
    assert_eq!(packet_types(&w), [1]);
}

#[test]
fn v5_only_calls_on_a_3_1_1_connection_are_refused() {
    let mut s = session(256, 1024);
    connect_v3(&mut s);
    let props = [codec::v5::Property::ContentType("x")];
    let r = s.publish_with(
        T0,
        &q(QoS::AtLeastOnce, "a", b"x"),
        &codec::v5::Properties::new(&props),
    );
    assert!(
        matches!(r, Err(SessionError::Usage(UsageError::Unsupported(_)))),
        "{r:?}"
    );
    let sub = [codec::v5::Subscription {
        filter: "a",
        options: codec::v5::SubscriptionOptions {
            no_local: true,
            ..codec::v5::SubscriptionOptions::new(QoS::AtMostOnce)
        },
    }];
    let r = s.subscribe_v5(T0, &sub, None);
    assert!(
        matches!(r, Err(SessionError::Usage(UsageError::Unsupported(_)))),
        "{r:?}"
    );
    let plain = [codec::v5::Subscription {
        filter: "a",
        options: codec::v5::SubscriptionOptions::new(QoS::AtMostOnce),
    }];
    let r = s.subscribe_v5(T0, &plain, Some(1));
    assert!(
        matches!(r, Err(SessionError::Usage(UsageError::Unsupported(_)))),
        "{r:?}"
    );
    assert_eq!(s.inflight(), 0);
    assert!(drain(&mut s, T0).is_empty());
}

#[test]
fn unconsumed_events_fill_the_buffer_and_polling_frees_it() {
    let mut s = session(64, 1024);
    connect_v3(&mut s);
    // QoS 1 messages of 12 bytes, never polled.
    let msg = [0x32u8, 10, 0, 3, b'a', b'/', b'b', 0, 1, b'x', b'y', b'z'];
    let mut fed = 0;
    loop {
        let space = s.receive_buffer();
        if space.is_empty() {
            break;
        }
        let n = space.len().min(msg.len());
        space[..n].copy_from_slice(&msg[..n]);
        s.commit(n);
        fed += 1;
        assert!(fed < 100, "receive buffer never fills");
    }
    // Nothing acknowledged while the events wait.
    assert!(s.poll_transmit(T0).is_empty());
    let mut delivered = 0;
    while let Some(e) = s.poll_event(T0) {
        assert!(matches!(e, Event::Message(_)), "{e:?}");
        delivered += 1;
    }
    assert_eq!(delivered, 64 / 12);
    assert!(!s.receive_buffer().is_empty());
    let w = drain(&mut s, T0);
    assert_eq!(packet_types(&w), vec![4; delivered]);
}

#[test]
fn time_backwards_and_far_future_do_not_panic_or_time_out_early() {
    let mut s = session(256, 1024);
    connect_v3(&mut s);
    s.publish(T0, &q(QoS::AtLeastOnce, "a", b"x")).unwrap();
    drain(&mut s, T0);
    for ms in [0u64, 0, 0, 5, 1, 0] {
        s.handle_timeout(Instant::from_millis(ms));
        assert_eq!(s.state(), State::Connected);
    }
    let far = Instant::from_millis(u64::MAX);
    s.handle_timeout(far);
    let ev = events(&mut s, far);
    assert!(ev.iter().any(|e| e.starts_with("Closed(Timeout")), "{ev:?}");
    assert!(s.poll_transmit(far).is_empty());
    let _ = Duration::from_millis(1);
    let _ = Closed::Timeout;
}

/// A driver that follows the contract (events until `None`, then every
/// byte written) over a broker sending random, often oversized or broken,
/// packets in random chunks: the receive buffer is never full for good.
fn run_well_behaved(seed: u64, steps: usize) {
    let mut r = Rng(seed | 1);
    let rx = [8usize, 16, 40, 128][r.below(4) as usize];
    let arena = [96usize, 300, 1024][r.below(3) as usize];
    let mut s: S = Session::new(leak(rx), leak(arena), Timeouts::default());
    let mut opts = s.options().to_owned();
    opts.stream = r.below(2) == 0;
    s.set_options(opts);
    let v5 = r.below(2) == 0;
    let mut now = 0u64;
    let mut net: Vec<u8> = Vec::new();
    for _ in 0..steps {
        let t = Instant::from_millis(now);
        if s.state() == State::Disconnected {
            net.clear();
            let ok = if v5 {
                s.connect_v5(t, &codec::v5::Connect::new("c")).is_ok()
            } else {
                s.connect(t, &Connect::new("c")).is_ok()
            };
            assert!(ok);
            net.extend_from_slice(if v5 {
                &[0x20, 3, 0, 0, 0][..]
            } else {
                &[0x20, 2, 0, 0][..]
            });
        }
        if net.is_empty() {
            net = broker_bytes(&mut r, v5);
        }
        // Read a chunk.
        let space = s.receive_buffer();
        let k = space.len().min(net.len()).min(1 + r.below(64) as usize);
        space[..k].copy_from_slice(&net[..k]);
        net.drain(..k);
        s.commit(k);
        // Drain everything.
        for _ in 0..10_000 {
            let mut any = false;
            while s.poll_event(t).is_some() {
                any = true;
            }
            let b = s.poll_transmit(t);
            if !b.is_empty() {
                let n = b.len();
                s.handle_transmit(t, n);
                any = true;
            }
            if let Some(d) = s.payload_due() {
                s.handle_payload(t, d.len - d.offset);
                any = true;
            }
            if !any {
                break;
            }
        }
        if s.state() != State::Disconnected {
            assert!(
                !s.receive_buffer().is_empty(),
                "seed {seed}: receive buffer full with everything drained ({s:?})"
            );
        }
        if r.below(5) == 0 {
            now += r.below(10_000);
            s.handle_timeout(Instant::from_millis(now));
        }
        if r.below(40) == 0 {
            let _ = s.publish(t, &q(QoS::AtLeastOnce, "a", b"x"));
        }
    }
}

#[test]
fn well_behaved_driver_never_wedges() {
    let seeds: u64 = std::env::var("MISUSE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    for seed in 0..seeds {
        run_well_behaved(seed * 0x2545_F491 + 3, 2_000);
    }
}
