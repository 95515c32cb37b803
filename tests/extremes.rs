//! Extreme values and arithmetic: packet ids at the wrap, a clock near
//! its end, lengths at the wire format's limits, zero and maximal
//! timeouts, backoffs and capacities. Mostly through the public sans-IO
//! `Session` on a virtual clock; the client where the loop matters.

use minimqtt::codec::{self, Connect, Packet, Publish, QoS};
use minimqtt::session::{Event, Session, State, Timeouts};
use minimqtt::time::{Duration, Instant};

fn leak(n: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; n].into_boxed_slice())
}

type S = Session<'static, 4, 4>;

fn session(rx: usize, arena: usize, timeouts: Timeouts) -> S {
    Session::new(leak(rx), leak(arena), timeouts)
}

/// Everything the session writes at `now`, events consumed.
fn drain<const I: usize, const N: usize>(s: &mut Session<'static, I, N>, now: Instant) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        while s.poll_event(now).is_some() {}
        let b = s.poll_transmit(now);
        if b.is_empty() {
            break;
        }
        let n = b.len();
        out.extend_from_slice(b);
        s.handle_transmit(now, n);
    }
    while s.poll_event(now).is_some() {}
    out
}

/// Feeds `bytes`, returns the events' Debug strings.
fn feed<const I: usize, const N: usize>(
    s: &mut Session<'static, I, N>,
    now: Instant,
    mut bytes: &[u8],
) -> Vec<String> {
    let mut events = Vec::new();
    loop {
        while let Some(e) = s.poll_event(now) {
            events.push(format!("{e:?}"));
        }
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
    events
}

fn types(wire: &[u8]) -> Vec<u8> {
    let mut rest = wire;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (p, n) = Packet::decode(rest).expect("undecodable");
        let _ = p;
        out.push(rest[0] >> 4);
        rest = &rest[n..];
    }
    out
}

fn connect_v3(s: &mut S, now: Instant, keep_alive: u16) {
    let c = Connect {
        keep_alive,
        ..Connect::new("c")
    };
    s.connect(now, &c).unwrap();
    drain(s, now);
    let ev = feed(s, now, &[0x20, 2, 0, 0]);
    assert!(ev.iter().any(|e| e.starts_with("Connected")), "{ev:?}");
    assert_eq!(s.state(), State::Connected);
}

/// A v5 CONNACK with `props` (raw property bytes).
fn connack_v5(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8, 0u8, props.len() as u8];
    body.extend_from_slice(props);
    let mut out = vec![0x20, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

fn connect_v5(s: &mut S, now: Instant, keep_alive: u16, props: &[u8]) -> Vec<String> {
    let c = codec::v5::Connect {
        keep_alive,
        ..codec::v5::Connect::new("c")
    };
    s.connect_v5(now, &c).unwrap();
    drain(s, now);
    feed(s, now, &connack_v5(props))
}

fn puback(id: u16) -> [u8; 4] {
    let [hi, lo] = id.to_be_bytes();
    [0x40, 2, hi, lo]
}

fn q1(topic: &str) -> Publish<'_> {
    Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic,
        packet_id: None,
        payload: b"x",
    }
}

const T0: Instant = Instant::from_millis(0);

// ---------------------------------------------------------------- ids

#[test]
fn packet_ids_wrap_to_one_never_zero() {
    let mut s = session(256, 4096, Timeouts::default());
    connect_v3(&mut s, T0, 0);
    let mut prev = 0u16;
    for i in 0..70_000u32 {
        let id = s.publish(T0, &q1("t")).unwrap().unwrap();
        assert_ne!(id, 0);
        if i > 0 {
            let expect = if prev == u16::MAX { 1 } else { prev + 1 };
            assert_eq!(id, expect);
        }
        prev = id;
        drain(&mut s, T0);
        feed(&mut s, T0, &puback(id));
    }
}

#[test]
fn packet_ids_skip_those_in_flight_across_the_wrap() {
    let mut s = session(256, 4096, Timeouts::default());
    connect_v3(&mut s, T0, 0);
    let stuck: Vec<u16> = (0..3)
        .map(|_| s.publish(T0, &q1("t")).unwrap().unwrap())
        .collect();
    assert_eq!(stuck, [1, 2, 3]);
    drain(&mut s, T0);
    for _ in 0..140_000u32 {
        let id = s.publish(T0, &q1("t")).unwrap().unwrap();
        assert!(id != 0 && !stuck.contains(&id), "id {id} still in use");
        drain(&mut s, T0);
        feed(&mut s, T0, &puback(id));
    }
    assert_eq!(s.inflight(), 3);
}

// ---------------------------------------------------------------- clock

#[test]
fn a_clock_near_its_end_never_panics() {
    for ka in [0u16, 1, 65535] {
        for t in [
            Timeouts::default(),
            Timeouts {
                connack: Duration::from_millis(u64::MAX),
                suback: Duration::from_millis(u64::MAX),
                unsuback: Duration::from_millis(u64::MAX),
                puback: Duration::from_millis(u64::MAX),
                pingresp: Duration::from_millis(u64::MAX),
            },
        ] {
            let base = u64::MAX - 5_000;
            let mut s = session(256, 4096, t);
            connect_v3(&mut s, Instant::from_millis(base), ka);
            s.publish(Instant::from_millis(base), &q1("t")).unwrap();
            let mut now = base;
            loop {
                let at = Instant::from_millis(now);
                let _ = s.poll_timeout();
                s.handle_timeout(at);
                let _ = drain(&mut s, at);
                if now == u64::MAX {
                    break;
                }
                now = now.saturating_add(250);
            }
        }
    }
}

#[test]
fn time_going_backwards_does_not_panic() {
    let mut s = session(256, 4096, Timeouts::default());
    connect_v3(&mut s, Instant::from_millis(1_000_000), 1);
    s.publish(Instant::from_millis(1_000_000), &q1("t"))
        .unwrap();
    for now in [2_000_000u64, 0, 500, 1_000_000, 3] {
        let at = Instant::from_millis(now);
        s.handle_timeout(at);
        let _ = s.poll_timeout();
        let _ = drain(&mut s, at);
    }
}

#[test]
fn keep_alive_zero_never_pings() {
    let mut s = session(256, 4096, Timeouts::default());
    connect_v3(&mut s, T0, 0);
    assert_eq!(s.poll_timeout(), None);
    for now in [1_000u64, 65_535_000, u64::MAX / 2, u64::MAX] {
        let at = Instant::from_millis(now);
        s.handle_timeout(at);
        assert!(drain(&mut s, at).is_empty());
    }
    assert_eq!(s.state(), State::Connected);
}

#[test]
fn keep_alive_one_second_pings_within_it() {
    let mut s = session(256, 4096, Timeouts::default());
    connect_v3(&mut s, T0, 1);
    let due = s.poll_timeout().unwrap();
    assert!(due.as_millis() > 0 && due.as_millis() < 1000, "{due:?}");
}

#[test]
fn zero_timeouts_end_the_wait_without_panicking() {
    let z = Duration::ZERO;
    let t = Timeouts {
        connack: z,
        suback: z,
        unsuback: z,
        puback: z,
        pingresp: z,
    };
    let mut s = session(256, 4096, t);
    connect_v3(&mut s, T0, 1);
    s.publish(T0, &q1("t")).unwrap();
    drain(&mut s, T0);
    s.handle_timeout(T0);
    let ev = feed(&mut s, T0, &[]);
    assert!(ev.iter().any(|e| e.contains("Timeout")), "{ev:?}");
}

// ---------------------------------------------------------------- v5 CONNACK bounds

#[test]
fn v5_server_keep_alive_zero_turns_pings_off() {
    let mut s = session(256, 4096, Timeouts::default());
    let ev = connect_v5(&mut s, T0, 60, &[0x13, 0, 0]);
    assert!(ev.iter().any(|e| e.starts_with("Connected")), "{ev:?}");
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(Instant::from_millis(120_000));
    assert!(drain(&mut s, Instant::from_millis(120_000)).is_empty());
}

#[test]
fn v5_server_keep_alive_65535() {
    let mut s = session(256, 4096, Timeouts::default());
    let ev = connect_v5(&mut s, T0, 0, &[0x13, 0xff, 0xff]);
    assert!(ev.iter().any(|e| e.starts_with("Connected")), "{ev:?}");
    let due = s.poll_timeout().unwrap().as_millis();
    assert!(due > 0 && due < 65_535_000, "{due}");
    let at = Instant::from_millis(due);
    s.handle_timeout(at);
    assert_eq!(types(&drain(&mut s, at)), [12]);
}

#[test]
fn v5_receive_maximum_zero_is_a_protocol_error() {
    let mut s = session(256, 4096, Timeouts::default());
    let ev = connect_v5(&mut s, T0, 60, &[0x21, 0, 0]);
    assert!(ev.iter().any(|e| e.starts_with("Closed")), "{ev:?}");
    assert_eq!(s.state(), State::Disconnected);
}

#[test]
fn v5_maximum_packet_size_zero_is_a_protocol_error() {
    let mut s = session(256, 4096, Timeouts::default());
    let ev = connect_v5(&mut s, T0, 60, &[0x27, 0, 0, 0, 0]);
    assert!(ev.iter().any(|e| e.starts_with("Closed")), "{ev:?}");
    assert_eq!(s.state(), State::Disconnected);
}

#[test]
fn v5_maximum_packet_size_one_refuses_publishes() {
    let mut s = session(256, 4096, Timeouts::default());
    let ev = connect_v5(&mut s, T0, 60, &[0x27, 0, 0, 0, 1]);
    assert!(ev.iter().any(|e| e.starts_with("Connected")), "{ev:?}");
    let r = s.publish(T0, &q1("t"));
    assert!(format!("{r:?}").contains("PacketTooLarge"), "{r:?}");
    eprintln!(
        "subscribe: {:?}",
        s.subscribe(
            T0,
            &[codec::Subscription {
                filter: "a",
                qos: QoS::AtMostOnce
            }]
        )
    );
    let at = s.poll_timeout().unwrap();
    s.handle_timeout(at);
    let w = drain(&mut s, at);
    eprintln!("at {at:?} the session wrote {w:?}");
}

#[test]
fn v5_maximums_at_their_top() {
    let mut s = session(256, 4096, Timeouts::default());
    let props = [
        0x21, 0xff, 0xff, // receive maximum 65535
        0x22, 0xff, 0xff, // topic alias maximum 65535
        0x27, 0xff, 0xff, 0xff, 0xff, // maximum packet size u32::MAX
        0x11, 0xff, 0xff, 0xff, 0xff, // session expiry u32::MAX
    ];
    let ev = connect_v5(&mut s, T0, 60, &props);
    assert!(ev.iter().any(|e| e.starts_with("Connected")), "{ev:?}");
    for i in 0..20 {
        let topic = format!("t/{i}");
        for _ in 0..3 {
            if let Ok(Some(id)) = s.publish(T0, &q1(&topic)) {
                drain(&mut s, T0);
                feed(&mut s, T0, &puback(id));
            }
        }
    }
    assert_eq!(s.state(), State::Connected);
}

// ---------------------------------------------------------------- lengths

#[test]
fn empty_topic_is_refused_for_publish() {
    let mut s = session(256, 4096, Timeouts::default());
    connect_v3(&mut s, T0, 0);
    assert!(s.publish(T0, &q1("")).is_err());
    let mut p = q1("");
    p.qos = QoS::AtMostOnce;
    assert!(s.publish(T0, &p).is_err());
    let mut s = session(256, 4096, Timeouts::default());
    connect_v5(&mut s, T0, 0, &[]);
    assert!(s.publish(T0, &q1("")).is_err());
}

#[test]
fn topics_of_65535_and_65536_bytes() {
    let ok = "a".repeat(65_535);
    let long = "a".repeat(65_536);
    for v5 in [false, true] {
        let mut s = session(256, 200_000, Timeouts::default());
        if v5 {
            connect_v5(&mut s, T0, 0, &[]);
        } else {
            connect_v3(&mut s, T0, 0);
        }
        let id = s.publish(T0, &q1(&ok)).unwrap().unwrap();
        let wire = drain(&mut s, T0);
        assert_eq!(wire.len(), 1 + 3 + 2 + 65_535 + 2 + 1 + usize::from(v5));
        feed(&mut s, T0, &puback(id));
        assert!(s.publish(T0, &q1(&long)).is_err());
        assert_eq!(s.state(), State::Connected);
    }
}

#[test]
fn connect_fields_at_and_past_65535_bytes() {
    let max = "a".repeat(65_535);
    let over = "a".repeat(65_536);
    let pw_max = vec![7u8; 65_535];
    let pw_over = vec![7u8; 65_536];
    let mut s = session(256, 400_000, Timeouts::default());
    let c = Connect {
        username: Some(&max),
        password: Some(&pw_max),
        ..Connect::new(&max)
    };
    s.connect(T0, &c).unwrap();
    let wire = drain(&mut s, T0);
    assert_eq!(types(&wire), [1]);
    for c in [
        Connect::new(&over),
        Connect {
            username: Some(&over),
            ..Connect::new("c")
        },
        Connect {
            username: Some("u"),
            password: Some(&pw_over),
            ..Connect::new("c")
        },
    ] {
        let mut s = session(256, 400_000, Timeouts::default());
        assert!(s.connect(T0, &c).is_err());
    }
}

#[test]
fn remaining_length_boundaries_outgoing_and_incoming() {
    for remaining in [127usize, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
        // QoS 0 PUBLISH, topic "t": 3 bytes of topic field.
        let payload = vec![0x5a; remaining - 3];
        let mut s = session(2_200_000, 4_500_000, Timeouts::default());
        connect_v3(&mut s, T0, 0);
        let p = Publish {
            qos: QoS::AtMostOnce,
            payload: &payload,
            ..q1("t")
        };
        s.publish(T0, &p).unwrap();
        let wire = drain(&mut s, T0);
        let h = codec::FixedHeader::decode(&wire).unwrap();
        assert_eq!(h.remaining_len as usize, remaining);
        assert_eq!(wire.len(), h.packet_len());
        // and back in
        let mut s2 = session(2_200_000, 4096, Timeouts::default());
        connect_v3(&mut s2, T0, 0);
        let mut got = None;
        let mut rest: &[u8] = &wire;
        while !rest.is_empty() {
            let space = s2.receive_buffer();
            let n = space.len().min(rest.len());
            space[..n].copy_from_slice(&rest[..n]);
            s2.commit(n);
            rest = &rest[n..];
            while let Some(e) = s2.poll_event(T0) {
                if let Event::Message(m) = e {
                    got = Some(m.payload.len());
                }
            }
        }
        assert_eq!(got, Some(remaining - 3), "remaining {remaining}");
    }
}

// ---------------------------------------------------------------- tiny buffers

/// A receive buffer smaller than a CONNACK: the session must not wedge
/// (an empty receive buffer with nothing to report is a hang for any
/// driver).
#[test]
fn tiny_receive_buffers_do_not_wedge() {
    for rx in [0usize, 1, 2, 3, 4] {
        let mut s: S = Session::new(leak(rx), leak(4096), Timeouts::default());
        if let Err(e) = s.connect(T0, &Connect::new("c")) {
            assert!(format!("{e:?}").contains("ReceiveBufferTooSmall"), "{e:?}");
            continue;
        }
        drain(&mut s, T0);
        let connack = [0x20u8, 2, 0, 0];
        let mut fed = 0;
        let mut events = Vec::new();
        for _ in 0..100 {
            while let Some(e) = s.poll_event(T0) {
                events.push(format!("{e:?}"));
            }
            if fed == connack.len() {
                break;
            }
            let space = s.receive_buffer();
            if space.is_empty() {
                break;
            }
            let n = space.len().min(connack.len() - fed);
            space[..n].copy_from_slice(&connack[fed..fed + n]);
            s.commit(n);
            fed += n;
        }
        eprintln!(
            "rx {rx}: fed {fed}, state {:?}, events {events:?}",
            s.state()
        );
        assert!(
            s.state() != State::Connecting || fed == connack.len() || !events.is_empty(),
            "rx {rx}: wedged with {fed} of 4 bytes fed and nothing reported"
        );
    }
}

#[test]
fn zero_capacity_session_refuses_cleanly() {
    let mut s: Session<'static, 0, 0> = Session::new(leak(256), leak(4096), Timeouts::default());
    s.connect(T0, &Connect::new("c")).unwrap();
    drain(&mut s, T0);
    feed(&mut s, T0, &[0x20, 2, 0, 0]);
    assert_eq!(s.state(), State::Connected);
    assert!(s.publish(T0, &q1("t")).is_err());
    assert!(
        s.subscribe(
            T0,
            &[codec::Subscription {
                filter: "a",
                qos: QoS::AtMostOnce
            }]
        )
        .is_err()
    );
    // an incoming QoS 1 message with no room for its acknowledgement state
    let ev = feed(&mut s, T0, &[0x32, 6, 0, 1, b't', 0, 9, b'x']);
    eprintln!("{ev:?}");
    drain(&mut s, T0);
}

#[test]
fn zero_capacity_session_v5() {
    let mut s: Session<'static, 0, 0> = Session::new(leak(256), leak(4096), Timeouts::default());
    let c = codec::v5::Connect::new("c");
    eprintln!("{:?}", s.connect_v5(T0, &c));
}

#[test]
fn backoff_extremes_do_not_panic() {
    use minimqtt::Backoff;
    for (a, b) in [
        (0u64, 0u64),
        (0, u64::MAX),
        (u64::MAX, 0),
        (u64::MAX, u64::MAX),
        (10_000, 1),
        (1, u64::MAX),
    ] {
        let mut bo = Backoff::new(Duration::from_millis(a), Duration::from_millis(b));
        for i in 0..100u32 {
            let d = bo.next_delay(i.wrapping_mul(2_654_435_761));
            assert!(d.as_millis() <= b, "{a} {b}: {d:?}");
        }
    }
}

// ---------------------------------------------------------------- client: backoff 0

mod zero_backoff {
    use std::cell::Cell;
    use std::rc::Rc;

    use minimqtt::time::{Clock, Duration, Instant};
    use minimqtt::{Backoff, Buffers, Callbacks, Client, Config, Connector};

    /// A virtual clock that moves 1 ms on every reading, and jumps to
    /// the deadline on a sleep.
    #[derive(Clone)]
    struct Ticking(Rc<Cell<u64>>);

    impl Clock for Ticking {
        fn now(&self) -> Instant {
            let t = self.0.get().saturating_add(1);
            self.0.set(t);
            Instant::from_millis(t)
        }
        async fn sleep_until(&self, deadline: Instant) {
            if deadline.as_millis() > self.0.get() {
                self.0.set(deadline.as_millis());
            }
        }
    }

    struct Nothing;
    impl embedded_io_async::ErrorType for Nothing {
        type Error = core::convert::Infallible;
    }
    impl embedded_io_async::Read for Nothing {
        async fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> {
            core::future::pending().await
        }
    }
    impl embedded_io_async::Write for Nothing {
        async fn write(&mut self, b: &[u8]) -> Result<usize, Self::Error> {
            Ok(b.len())
        }
        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    /// Fails at once (no route to the broker, say), and counts.
    struct Failing {
        attempts: u32,
        clock: Rc<Cell<u64>>,
    }
    impl Connector for Failing {
        type Transport = Nothing;
        type Error = ();
        async fn connect(&mut self) -> Result<Nothing, ()> {
            self.attempts += 1;
            assert!(
                self.attempts < 10_000,
                "run_for(1 s) still retrying after {} attempts, {} ms of clock later",
                self.attempts,
                self.clock.get()
            );
            Err(())
        }
    }

    /// `Backoff::new(0, ..)` and `Backoff::new(.., 0)` are accepted, and
    /// give delays of 0. `run_for(timeout)` must still return once its
    /// timeout has passed, whatever the connector does.
    #[test]
    fn run_for_returns_at_its_timeout_with_a_zero_backoff() {
        for backoff in [
            Backoff::new(Duration::ZERO, Duration::from_secs(120)),
            Backoff::new(Duration::from_secs(1), Duration::ZERO),
        ] {
            let time = Rc::new(Cell::new(0));
            let connector = Failing {
                attempts: 0,
                clock: time.clone(),
            };
            let mut buffers = Buffers::<256, 2048, 64>::new();
            let config = Config {
                backoff,
                ..Config::new("c")
            };
            let mut client = Client::new(
                connector,
                Ticking(time.clone()),
                config,
                buffers.slices(),
                Callbacks::<()>::new(),
                (),
            );
            let r = futures_lite_block_on(client.run_for(Duration::from_secs(1)));
            assert!(r.is_ok(), "{r:?}");
            assert!(time.get() >= 1000);
        }
    }

    /// Answers CONNACK, then ends the stream (a broker that drops every
    /// connection at once).
    struct Dropping(bool);
    impl embedded_io_async::ErrorType for Dropping {
        type Error = core::convert::Infallible;
    }
    impl embedded_io_async::Read for Dropping {
        async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            if self.0 {
                return Ok(0);
            }
            self.0 = true;
            buf[..4].copy_from_slice(&[0x20, 2, 0, 0]);
            Ok(4)
        }
    }
    impl embedded_io_async::Write for Dropping {
        async fn write(&mut self, b: &[u8]) -> Result<usize, Self::Error> {
            Ok(b.len())
        }
        async fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }
    struct Accepting {
        attempts: u32,
        clock: Rc<Cell<u64>>,
    }
    impl Connector for Accepting {
        type Transport = Dropping;
        type Error = ();
        async fn connect(&mut self) -> Result<Dropping, ()> {
            self.attempts += 1;
            assert!(
                self.attempts < 10_000,
                "run_for(1 s) still reconnecting after {} attempts, {} ms of clock later",
                self.attempts,
                self.clock.get()
            );
            Ok(Dropping(false))
        }
    }

    /// The same when each connection is accepted and then lost.
    #[test]
    fn run_for_returns_at_its_timeout_when_every_connection_drops() {
        let time = Rc::new(Cell::new(0));
        let connector = Accepting {
            attempts: 0,
            clock: time.clone(),
        };
        let mut buffers = Buffers::<256, 2048, 64>::new();
        let config = Config {
            backoff: Backoff::new(Duration::ZERO, Duration::ZERO),
            ..Config::new("c")
        };
        let mut client = Client::new(
            connector,
            Ticking(time.clone()),
            config,
            buffers.slices(),
            Callbacks::<()>::new(),
            (),
        );
        let r = futures_lite_block_on(client.run_for(Duration::from_secs(1)));
        assert!(r.is_ok(), "{r:?}");
    }

    /// A clock that starts 10 s before the end of its range: deadlines
    /// saturate, and nothing overflows.
    #[test]
    fn run_for_near_the_end_of_the_clock() {
        for timeout in [Duration::from_secs(3600), Duration::from_millis(u64::MAX)] {
            let time = Rc::new(Cell::new(u64::MAX - 10_000));
            let connector = Failing {
                attempts: 0,
                clock: time.clone(),
            };
            let mut buffers = Buffers::<256, 2048, 64>::new();
            let mut client = Client::new(
                connector,
                Ticking(time.clone()),
                Config::new("c"),
                buffers.slices(),
                Callbacks::<()>::new(),
                (),
            );
            let r = futures_lite_block_on(client.run_for(timeout));
            assert!(r.is_ok(), "{r:?}");
            drop(client);
            let time = Rc::new(Cell::new(u64::MAX - 10_000));
            let connector = Accepting {
                attempts: 0,
                clock: time.clone(),
            };
            let mut client = Client::new(
                connector,
                Ticking(time.clone()),
                Config {
                    keep_alive_secs: 1,
                    ..Config::new("c")
                },
                buffers.slices(),
                Callbacks::<()>::new(),
                (),
            );
            let r = futures_lite_block_on(client.run_for(timeout));
            assert!(r.is_ok(), "{r:?}");
        }
    }

    /// A minimal executor: everything here completes without a waker.
    fn futures_lite_block_on<F: core::future::Future>(f: F) -> F::Output {
        use core::task::{Context, Poll, Waker};
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut f = core::pin::pin!(f);
        for _ in 0..1_000_000 {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
        panic!("never completed");
    }
}

// ---------------------------------------------------------------- client: capacities, keep-alive

mod common;

mod client_level {
    use std::sync::{Arc, Mutex};
    use std::time::Duration as StdDuration;

    use super::common::fake::*;
    use minimqtt::callbacks::RouteError;
    use minimqtt::{Config, Context, Error, Message, QoS, ResourceError};

    fn cb(_: &mut Context<'_, Log>, _: &Message<'_>) {}

    #[tokio::test(start_paused = true)]
    async fn every_capacity_to_the_brim_and_one_past() {
        let (io, broker) = pipe();
        let mut buffers = minimqtt::Buffers::<256, 4096, 256>::new();
        let mut c = client(io, config(), buffers.slices());
        let log = Arc::new(Mutex::new(Vec::new()));
        let served = tokio::spawn(broker.serve(log.clone()));
        within("connect", c.connect()).await.unwrap();
        let filters: Vec<&'static str> = (0..9)
            .map(|i| &*Box::leak(format!("f/{i}").into_boxed_str()))
            .collect();
        for f in &filters[..8] {
            c.add_topic_callback(f, cb).unwrap();
        }
        assert_eq!(c.add_topic_callback(filters[8], cb), Err(RouteError::Full));
        for f in &filters[..8] {
            within("subscribe", c.subscribe(f, QoS::AtLeastOnce))
                .await
                .unwrap();
        }
        let r = within("subscribe 9", c.subscribe(filters[8], QoS::AtLeastOnce)).await;
        assert!(
            matches!(r, Err(Error::Resource(ResourceError::SubscriptionsFull))),
            "{r:?}"
        );
        // still usable
        within("publish", c.publish("t", b"x", QoS::AtLeastOnce, false))
            .await
            .unwrap();
        within("unsubscribe", c.unsubscribe(filters[0]))
            .await
            .unwrap();
        within("subscribe again", c.subscribe(filters[8], QoS::AtMostOnce))
            .await
            .unwrap();
        assert!(c.is_connected());
        c.abort();
        let _ = served.await;
    }

    #[tokio::test(start_paused = true)]
    async fn inflight_window_full_and_one_past() {
        let (io, mut broker) = pipe();
        let mut buffers = minimqtt::Buffers::<256, 4096, 256>::new();
        let mut c = client(io, config(), buffers.slices());
        connect(&mut c, &mut broker, false).await;
        for i in 1..=8u16 {
            let id = within(
                "try_publish",
                c.try_publish("t", b"x", QoS::AtLeastOnce, false),
            )
            .await
            .unwrap();
            assert_eq!(id, Some(i));
        }
        let r = within("9th", c.try_publish("t", b"x", QoS::AtLeastOnce, false)).await;
        assert!(
            matches!(r, Err(Error::Resource(ResourceError::InflightFull))),
            "{r:?}"
        );
        broker.send(&puback(1)).await;
        within("poll", c.poll(minimqtt::time::Duration::from_millis(10)))
            .await
            .unwrap();
        let id = within("after", c.try_publish("t", b"x", QoS::AtLeastOnce, false))
            .await
            .unwrap();
        assert_eq!(id, Some(9));
        assert!(c.is_connected());
    }

    /// Keep-alive 1 s: a PINGREQ at least every second (MQTT-3.1.2-23).
    #[tokio::test(start_paused = true)]
    async fn keep_alive_one_second_over_ten_seconds() {
        let (io, broker) = pipe();
        let mut buffers = SmallBuffers::new();
        let config = Config {
            keep_alive_secs: 1,
            ..config()
        };
        let mut c = client(io, config, buffers.slices());
        let log = Arc::new(Mutex::new(Vec::new()));
        let served = tokio::spawn(broker.serve(log.clone()));
        within("connect", c.connect()).await.unwrap();
        within("poll", c.poll(minimqtt::time::Duration::from_secs(10)))
            .await
            .unwrap();
        let pings = log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| matches!(r, Rx::PingReq))
            .count();
        assert!(pings >= 10, "{pings} PINGREQs in 10 s");
        assert!(c.is_connected());
        c.abort();
        let _ = served.await;
        let _ = StdDuration::ZERO;
    }

    /// Keep-alive 0: no PINGREQ in a day.
    #[tokio::test(start_paused = true)]
    async fn keep_alive_zero_over_a_day() {
        let (io, broker) = pipe();
        let mut buffers = SmallBuffers::new();
        let config = Config {
            keep_alive_secs: 0,
            ..config()
        };
        let mut c = client(io, config, buffers.slices());
        let log = Arc::new(Mutex::new(Vec::new()));
        let served = tokio::spawn(broker.serve(log.clone()));
        within("connect", c.connect()).await.unwrap();
        for _ in 0..24 {
            within("poll", c.poll(minimqtt::time::Duration::from_secs(3600)))
                .await
                .unwrap();
        }
        let pings = log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| matches!(r, Rx::PingReq))
            .count();
        assert_eq!(pings, 0);
        c.abort();
        let _ = served.await;
    }

    /// A client id of 65,536 bytes cannot be encoded: a usage error
    /// before any transport is opened.
    #[tokio::test(start_paused = true)]
    async fn client_id_past_65535_bytes_is_a_usage_error() {
        let long: &'static str = Box::leak("a".repeat(65_536).into_boxed_str());
        let (io, _broker) = pipe();
        let mut buffers = SmallBuffers::new();
        let mut c = client(io, Config::new(long), buffers.slices());
        let r = within("connect", c.connect()).await;
        assert!(matches!(r, Err(Error::Usage(_))), "{r:?}");
    }
}

mod mailbox_ack {
    use super::common::fake::*;
    use embassy_sync::blocking_mutex::raw::NoopRawMutex;
    use minimqtt::callbacks::AckToken;
    use minimqtt::mailbox::Mailbox;
    use minimqtt::time::{Duration as MDuration, TokioClock};
    use minimqtt::{Callbacks, Client, Context, Message, QoS};

    fn defer(ctx: &mut Context<'_, Vec<AckToken>>, _: &Message<'_>) {
        let token = ctx.defer_ack().expect("defer");
        ctx.user_data.push(token);
    }

    /// An outbox smaller than an acknowledgement's 8 bytes: the
    /// mailbox's other requests are refused with `MailboxFull` once it is
    /// attached (the client's outbox could never take them), so must an
    /// acknowledgement be, handing its token back. Taking it and then
    /// dropping it loses the PUBACK for good: the broker never gets it,
    /// and every later acknowledgement queues behind it (MQTT-4.6.0-2).
    #[tokio::test(start_paused = true)]
    async fn a_mailbox_ack_the_outbox_cannot_take_is_refused_not_lost() {
        let mailbox: &'static Mailbox<NoopRawMutex, 64> = Box::leak(Box::new(Mailbox::new()));
        let (io, mut broker) = pipe();
        let buffers = Box::leak(Box::new(minimqtt::Buffers::<256, 2304, 4>::new()));
        let mut c: Client<'_, Queue<Pipe>, TokioClock, Vec<AckToken>> = Client::new(
            Queue::with(io),
            TokioClock::new(),
            config(),
            buffers.slices(),
            Callbacks::new().on_message(defer),
            Vec::new(),
        );
        c.attach(mailbox);
        broker.send(&connack(false, 0)).await;
        within("connect", c.connect()).await.unwrap();
        broker.expect_connect().await;
        assert!(
            mailbox
                .try_publish("t", b"x", QoS::AtMostOnce, false)
                .is_err()
        );
        broker
            .send(&publish("t", b"x", QoS::AtLeastOnce, Some(7)))
            .await;
        within("poll", c.poll(MDuration::from_millis(10)))
            .await
            .unwrap();
        let token = c.user_data_mut().pop().expect("deferred");
        match mailbox.try_ack(token) {
            Err((_, token)) => {
                // Refused: the caller still holds the token, and the
                // client can redeem it directly.
                c.ack(token).unwrap();
                within("poll", c.poll(MDuration::from_millis(10)))
                    .await
                    .unwrap();
            }
            Ok(()) => {
                within("poll", c.poll(MDuration::from_millis(10)))
                    .await
                    .unwrap();
            }
        }
        let got = broker.try_recv(std::time::Duration::from_secs(1)).await;
        assert!(
            matches!(got, Some(Ok(Rx::PubAck(7)))),
            "the PUBACK for 7 never went out: {got:?}"
        );
    }
}

#[test]
fn streamed_publish_at_the_largest_remaining_length() {
    for v5 in [false, true] {
        let mut s = session(256, 4096, Timeouts::default());
        if v5 {
            connect_v5(&mut s, T0, 0, &[]);
        } else {
            connect_v3(&mut s, T0, 0);
        }
        let p = Publish {
            qos: QoS::AtMostOnce,
            payload: b"",
            ..q1("t")
        };
        // topic field 3 bytes (+1 property length on v5)
        let max = 268_435_455 - 3 - usize::from(v5);
        for len in [max + 1, max + 2, usize::MAX / 2, usize::MAX] {
            let r = s.publish_streamed(T0, &p, len);
            assert!(r.is_err(), "v5 {v5} len {len}: {r:?}");
        }
        s.publish_streamed(T0, &p, max).unwrap();
        let head = s.poll_transmit(T0).to_vec();
        let h = codec::FixedHeader::decode(&head).unwrap();
        assert_eq!(h.remaining_len, 268_435_455);
        assert_eq!(&head[1..5], &[0xff, 0xff, 0xff, 0x7f]);
    }
}

/// A 2 MiB message into a 256-byte receive buffer, no stream route:
/// skipped and reported, and the stream stays in step.
#[test]
fn an_oversize_message_is_skipped_in_step() {
    for remaining in [2_097_151usize, 2_097_152, 268_435_455] {
        let mut s = session(256, 4096, Timeouts::default());
        connect_v3(&mut s, T0, 0);
        let mut wire = vec![0x30u8];
        let mut n = remaining;
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            wire.push(b);
            if n == 0 {
                break;
            }
        }
        wire.extend_from_slice(&[0, 1, b'a']);
        let mut events = Vec::new();
        // header and topic, then the payload in 64 KiB pieces (not kept)
        events.extend(feed(&mut s, T0, &wire));
        let mut left = remaining - 3;
        let chunk = vec![0u8; 65_536];
        while left > 0 {
            let k = left.min(chunk.len());
            events.extend(feed(&mut s, T0, &chunk[..k]));
            left -= k;
        }
        events.extend(feed(&mut s, T0, &[0x30, 4, 0, 1, b'b', b'!']));
        assert_eq!(s.state(), State::Connected, "{events:?}");
        assert!(
            events.iter().any(|e| e.starts_with("Dropped")),
            "{events:?}"
        );
        assert!(
            events.last().unwrap().contains("topic: \"b\""),
            "remaining {remaining}: {events:?}"
        );
    }
}

#[test]
fn v5_user_property_of_maximum_size_both_ways() {
    use codec::v5::{Properties, Property};
    let k = "k".repeat(65_535);
    let v = "v".repeat(65_535);
    let list = [Property::UserProperty(&k, &v)];
    let props = Properties::new(&list);
    let mut s = session(300_000, 400_000, Timeouts::default());
    connect_v5(&mut s, T0, 0, &[]);
    let p = Publish {
        qos: QoS::AtMostOnce,
        ..q1("t")
    };
    s.publish_with(T0, &p, &props).unwrap();
    let wire = drain(&mut s, T0);
    let (packet, n) = codec::v5::Packet::decode(&wire).unwrap();
    assert_eq!(n, wire.len());
    let codec::v5::Packet::Publish(got) = packet else {
        panic!()
    };
    assert_eq!(got.properties.iter().count(), 1);
    // and in
    let ev = feed(&mut s, T0, &wire);
    assert!(
        ev.iter().any(|e| e.starts_with("Message")),
        "{:?}",
        ev.iter().map(|e| &e[..60.min(e.len())]).collect::<Vec<_>>()
    );
}

mod v5_config {
    use super::common::fake::*;
    use minimqtt::codec::v5::{Properties, Property};
    use minimqtt::session::Version;
    use minimqtt::{Config, Error};

    /// Bad CONNECT properties are the caller's error, before any
    /// transport is opened.
    #[tokio::test(start_paused = true)]
    async fn out_of_range_connect_properties_are_usage_errors() {
        let cases: [&'static [Property<'static>]; 3] = [
            &[Property::ReceiveMaximum(0)],
            &[Property::MaximumPacketSize(0)],
            &[
                Property::SessionExpiryInterval(1),
                Property::SessionExpiryInterval(2),
            ],
        ];
        for props in cases {
            let (io, _broker) = pipe();
            let mut buffers = SmallBuffers::new();
            let config = Config {
                version: Version::V5,
                properties: Properties::new(props),
                ..config()
            };
            let mut c = client(io, config, buffers.slices());
            let r = within("connect", c.connect()).await;
            assert!(matches!(r, Err(Error::Usage(_))), "{props:?}: {r:?}");
            assert_eq!(c.connector_mut().opened(), 0, "{props:?}");
        }
    }
}
