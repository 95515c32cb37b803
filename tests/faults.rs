//! The client over a failing transport ([`FaultyTransport`]): writes of 0
//! bytes, I/O errors, the stream ending in the middle of a packet, reads
//! and writes that never complete, partial writes. Each failure ends in a
//! defined error (and `on_disconnect`), never a panic or a hang; and after
//! each one the client reconnects on a new transport and resumes its
//! session:
//!
//! - clean session off: unacknowledged QoS 1/2 PUBLISHes are resent with
//!   DUP and their original packet ids, and QoS 2 messages past PUBREC get
//!   their PUBREL again, in the original order and before anything new
//!   (MQTT 3.1.1 §4.4, MQTT-4.4.0-1);
//! - session present 0: the subscription list is re-subscribed with the
//!   original QoS, and `on_connect` says how many filters and messages;
//! - session present 1: no SUBSCRIBE.
//!
//! All on tokio's paused clock: stalls cost no real time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::fake::*;
use common::faults::{FaultHandle, Faults, FaultyTransport};
use embedded_io_async::ErrorKind;
use minimqtt::callbacks::{Connected, DisconnectReason};
use minimqtt::session::Timeouts;
use minimqtt::time::Duration as MDuration;
use minimqtt::{AckKind, Config, Error, QoS, Subscription};
use minimqtt::{ResourceError, UsageError};
use tokio::time::Instant;

type Faulty = FaultyTransport<Pipe>;
type E = Error<ErrorKind>;

const POLL: MDuration = MDuration::from_millis(10);

fn faulty_pipe() -> (Faulty, FaultHandle, FakeBroker) {
    let (io, broker) = pipe();
    let (t, h) = FaultyTransport::new(io);
    (t, h, broker)
}

/// Clean session off, default 10 s timeouts, keep-alive 60 s.
fn persistent() -> Config<'static> {
    Config {
        clean_session: false,
        ..config()
    }
}

/// The four messages [`prepare`] leaves in flight.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// QoS 1, no PUBACK.
    a: u16,
    /// QoS 2, no PUBREC.
    b: u16,
    /// QoS 2, PUBREC received and PUBREL sent, no PUBCOMP.
    c: u16,
    /// QoS 1, no PUBACK.
    d: u16,
}

const FILTERS: [Subscription<'static>; 2] = [
    Subscription {
        filter: "s/1",
        qos: QoS::AtLeastOnce,
    },
    Subscription {
        filter: "s/2",
        qos: QoS::ExactlyOnce,
    },
];

/// Connects (clean session off), subscribes to two filters, and leaves
/// four messages in flight at different stages.
async fn prepare(c: &mut TestClient<'_, Faulty>, broker: &mut FakeBroker) -> InFlight {
    let (_, clean, _) = connect(c, broker, false).await;
    assert!(!clean);
    let (granted, ()) = tokio::join!(c.subscribe_many(&FILTERS), async {
        let (id, filters) = broker.expect_subscribe().await;
        assert_eq!(filters.len(), 2);
        broker.send(&suback(id, &[1, 2])).await;
    });
    assert_eq!(granted.unwrap().len(), 2);
    let mut ids = [0u16; 4];
    let plan = [
        ("m/a", QoS::AtLeastOnce),
        ("m/b", QoS::ExactlyOnce),
        ("m/c", QoS::ExactlyOnce),
        ("m/d", QoS::AtLeastOnce),
    ];
    for (i, (topic, qos)) in plan.into_iter().enumerate() {
        ids[i] = c
            .publish(topic, topic.as_bytes(), qos, false)
            .await
            .unwrap()
            .unwrap();
        let p = broker.expect_publish().await;
        assert_eq!(
            (p.topic.as_str(), p.packet_id, p.dup),
            (topic, Some(ids[i]), false)
        );
    }
    let inflight = InFlight {
        a: ids[0],
        b: ids[1],
        c: ids[2],
        d: ids[3],
    };
    broker.send(&pubrec(inflight.c)).await;
    c.poll(POLL).await.unwrap();
    broker.expect(Rx::PubRel(inflight.c)).await;
    assert_eq!(c.session().inflight(), 4);
    inflight
}

/// Reconnects `c` on a fresh pipe to a fresh fake broker that answers
/// CONNACK with `session_present`, and checks the session resumes: what is
/// resent, in which order, with which ids; what `on_connect` reports; that
/// new traffic comes after the resends; and that every message completes.
///
/// `extra` are filters subscribed while the connection failed (their SUBACK
/// never came): they are not confirmed, so they are re-sent even when the
/// broker kept the session.
async fn resume(
    c: &mut TestClient<'_, Faulty>,
    ids: InFlight,
    session_present: bool,
    extra: &[(&str, QoS)],
) {
    let (io, _h, mut broker) = faulty_pipe();
    c.connector_mut().push(io);
    broker.send(&connack(session_present, 0)).await;
    let present = within("reconnect", c.connect()).await.expect("reconnect");
    assert_eq!(present, session_present);
    let (_, clean, _) = broker.expect_connect().await;
    assert!(!clean);
    let mut resubscribe: Vec<(String, QoS)> = Vec::new();
    if !session_present {
        resubscribe.push(("s/1".to_owned(), QoS::AtLeastOnce));
        resubscribe.push(("s/2".to_owned(), QoS::ExactlyOnce));
    }
    resubscribe.extend(extra.iter().map(|(f, q)| ((*f).to_owned(), *q)));
    let mut suback_id = None;
    if !resubscribe.is_empty() {
        let (id, filters) = broker.expect_subscribe().await;
        assert_eq!(filters, resubscribe);
        suback_id = Some(id);
    }
    let resent_publish = |topic: &str, qos: QoS, id: u16| {
        Rx::Publish(Pub {
            topic: topic.to_owned(),
            payload: topic.as_bytes().to_vec(),
            qos,
            dup: true,
            retain: false,
            packet_id: Some(id),
        })
    };
    // Past PUBREC: its PUBREL again, whether or not the broker kept the
    // session (MQTT-4.4.0-1 to the letter).
    let c_resend = Rx::PubRel(ids.c);
    let want = [
        resent_publish("m/a", QoS::AtLeastOnce, ids.a),
        resent_publish("m/b", QoS::ExactlyOnce, ids.b),
        c_resend,
        resent_publish("m/d", QoS::AtLeastOnce, ids.d),
    ];
    for w in want {
        assert_eq!(broker.recv().await, w);
    }
    let info = *c.user_data().connected.last().unwrap();
    assert_eq!(info, Connected::new(session_present, resubscribe.len(), 4));
    // New traffic goes after the resends, with a fresh id.
    let e = c
        .publish("m/e", b"e", QoS::AtLeastOnce, false)
        .await
        .unwrap()
        .unwrap();
    assert!(![ids.a, ids.b, ids.c, ids.d].contains(&e));
    let p = broker.expect_publish().await;
    assert_eq!((p.packet_id, p.dup), (Some(e), false));
    // The broker completes everything.
    let mut acks = Vec::new();
    if let Some(id) = suback_id {
        let codes: Vec<u8> = resubscribe.iter().map(|(_, q)| *q as u8).collect();
        acks.extend(suback(id, &codes));
    }
    acks.extend(puback(ids.a));
    acks.extend(pubrec(ids.b));
    acks.extend(pubcomp(ids.c));
    acks.extend(puback(ids.d));
    acks.extend(puback(e));
    broker.send(&acks).await;
    c.poll(POLL).await.unwrap();
    broker.expect(Rx::PubRel(ids.b)).await;
    broker.send(&pubcomp(ids.b)).await;
    c.poll(POLL).await.unwrap();
    assert_eq!(c.session().inflight(), 0);
    let done: Vec<_> = c
        .user_data()
        .published
        .iter()
        .filter_map(|(_, id)| *id)
        .collect();
    for id in [ids.a, ids.b, ids.c, ids.d, e] {
        assert!(done.contains(&id), "{id} never completed: {done:?}");
    }
    assert!(c.is_connected());
}

/// Runs `fail` (which breaks the connection and checks the error) on a
/// prepared session, then resumes it, once with session present 1 and once
/// with session present 0.
async fn fail_then_resume<F>(fail: F)
where
    F: AsyncFn(&mut TestClient<'_, Faulty>, &FaultHandle, &mut FakeBroker, InFlight),
{
    fail_then_resume_with(&[], fail).await
}

/// [`fail_then_resume`] where `fail` subscribed to `extra` filters.
async fn fail_then_resume_with<F>(extra: &[(&str, QoS)], fail: F)
where
    F: AsyncFn(&mut TestClient<'_, Faulty>, &FaultHandle, &mut FakeBroker, InFlight),
{
    for session_present in [true, false] {
        let (io, h, mut broker) = faulty_pipe();
        let mut buffers = SmallBuffers::new();
        let mut c = client(io, persistent(), buffers.slices());
        let ids = prepare(&mut c, &mut broker).await;
        fail(&mut c, &h, &mut broker, ids).await;
        assert!(!c.is_connected());
        assert_eq!(c.user_data().disconnected.len(), 1);
        assert_eq!(c.session().inflight(), 4, "the session survives");
        // Nothing works until reconnected.
        assert_eq!(c.ping().await, Err(Error::Usage(UsageError::NotConnected)));
        assert_eq!(
            c.poll(POLL).await,
            Err(Error::Usage(UsageError::NotConnected))
        );
        resume(&mut c, ids, session_present, extra).await;
    }
}

// ---------------------------------------------------------------------------
// Writes.

/// `write` returning `Ok(0)` means the stream is closed: `ConnectionClosed`,
/// `on_disconnect(ConnectionLost)`; then the session resumes elsewhere.
#[tokio::test(start_paused = true)]
async fn write_of_zero_bytes_is_connection_closed() {
    fail_then_resume(async |c, h, _broker, _ids| {
        let at = h.written();
        h.set(|f| f.write_zero_after = Some(at));
        assert_eq!(within("ping", c.ping()).await, Err(Error::ConnectionClosed));
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::ConnectionLost]
        );
    })
    .await;
}

/// A write error is `Error::Transport` with the transport's error.
#[tokio::test(start_paused = true)]
async fn write_error_is_a_transport_error() {
    fail_then_resume_with(&[("x", QoS::AtMostOnce)], async |c, h, _broker, _ids| {
        let at = h.written();
        h.set(|f| f.write_error_after = Some((at, ErrorKind::BrokenPipe)));
        assert_eq!(
            within("subscribe", c.subscribe("x", QoS::AtMostOnce)).await,
            Err(Error::Transport(ErrorKind::BrokenPipe))
        );
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::ConnectionLost]
        );
    })
    .await;
}

/// A write error in the middle of a PUBLISH (3 of its bytes written): the
/// QoS 1 message is in the session, so `publish` reports its id (not the
/// error, which would invite a duplicate publish), the connection is gone,
/// and the message is resent whole, with DUP, after reconnecting.
#[tokio::test(start_paused = true)]
async fn write_error_mid_publish_keeps_the_message() {
    let (io, h, mut broker) = faulty_pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, persistent(), buffers.slices());
    connect(&mut c, &mut broker, true).await;
    let at = h.written() + 3;
    h.set(|f| f.write_error_after = Some((at, ErrorKind::ConnectionReset)));
    let id = within(
        "publish",
        c.publish("t/x", b"payload", QoS::AtLeastOnce, false),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!c.is_connected());
    assert_eq!(
        c.user_data().disconnected,
        [DisconnectReason::ConnectionLost]
    );
    assert!(matches!(
        broker.read().await,
        Err(ReadEnd::EofMidPacket { partial: 3 })
    ));
    let (io, _h, mut broker) = faulty_pipe();
    c.connector_mut().push(io);
    broker.send(&connack(true, 0)).await;
    within("connect", c.connect()).await.unwrap();
    broker.expect_connect().await;
    let p = broker.expect_publish().await;
    assert_eq!(
        (p.packet_id, p.dup, p.payload.as_slice()),
        (Some(id), true, &b"payload"[..])
    );
}

/// A failing `flush` is a transport error too.
#[tokio::test(start_paused = true)]
async fn flush_error_is_a_transport_error() {
    fail_then_resume(async |c, h, _broker, _ids| {
        h.set(|f| f.flush_error = Some(ErrorKind::TimedOut));
        assert_eq!(
            within("ping", c.ping()).await,
            Err(Error::Transport(ErrorKind::TimedOut))
        );
    })
    .await;
}

/// Partial writes (at most 3 bytes per `write`, or 1): every packet still
/// reaches the broker whole and in order.
#[tokio::test(start_paused = true)]
async fn partial_writes_deliver_every_packet_whole() {
    for max in [1, 3, 7] {
        let (io, h, mut broker) = faulty_pipe();
        h.set(|f| f.max_write = Some(max));
        let mut buffers = SmallBuffers::new();
        let mut c = client(io, config(), buffers.slices());
        connect(&mut c, &mut broker, false).await;
        for i in 0..20u8 {
            let qos = [QoS::AtMostOnce, QoS::AtLeastOnce][usize::from(i % 2)];
            c.publish("partial/t", &[i; 40], qos, false).await.unwrap();
            let p = broker.expect_publish().await;
            assert_eq!((p.payload, p.qos), (vec![i; 40], qos));
            if let Some(id) = p.packet_id {
                broker.send(&puback(id)).await;
            }
        }
        c.poll(POLL).await.unwrap();
        assert_eq!(c.session().inflight(), 0);
        assert!(h.lock().writes > 20 * 40 / max);
    }
}

/// A write that never completes (the peer's receive window stays shut):
/// the pending acknowledgement's deadline ends it with `Timeout`, at that
/// deadline, instead of hanging forever.
#[tokio::test(start_paused = true)]
async fn stalled_write_times_out_instead_of_hanging() {
    fail_then_resume(async |c, h, _broker, _ids| {
        let start = Instant::now();
        let at = h.written();
        h.set(|f| f.write_stall_after = Some(at));
        // The oldest in-flight message (QoS 1, published before
        // `prepare`'s 10 ms poll) has its PUBACK deadline 10 s after it.
        assert_eq!(
            within("ping", c.ping()).await,
            Err(Error::Timeout(AckKind::PubAck))
        );
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(10) - Duration::from_millis(10)
        );
        assert_eq!(c.user_data().disconnected, [DisconnectReason::Timeout]);
    })
    .await;
}

/// With nothing else in flight, each operation's own deadline bounds a
/// stalled write: `ping` by the pingresp timeout, `subscribe` by the
/// suback timeout, `unsubscribe` by the unsuback timeout, a QoS 1
/// `publish` by the puback timeout (it then reports its id, the message
/// being in the session); `poll` by the keep-alive ping's pingresp.
#[tokio::test(start_paused = true)]
async fn stalled_write_is_bounded_by_the_operation_timeout() {
    let timeouts = Timeouts {
        connack: MDuration::from_secs(2),
        suback: MDuration::from_secs(3),
        unsuback: MDuration::from_secs(4),
        puback: MDuration::from_secs(5),
        pingresp: MDuration::from_secs(6),
    };
    let config = Config {
        timeouts,
        keep_alive_secs: 20,
        ..config()
    };
    for op in 0..5 {
        let (io, h, mut broker) = faulty_pipe();
        let mut buffers = SmallBuffers::new();
        let mut c = client(io, config, buffers.slices());
        connect(&mut c, &mut broker, false).await;
        let at = h.written() + 1;
        h.set(|f| f.write_stall_after = Some(at));
        let start = Instant::now();
        let (result, want, after): (Result<(), E>, E, u64) = match op {
            0 => (
                within("ping", c.ping()).await,
                Error::Timeout(AckKind::PingResp),
                6,
            ),
            1 => (
                within("sub", c.subscribe("f", QoS::AtLeastOnce))
                    .await
                    .map(drop),
                Error::Timeout(AckKind::SubAck),
                3,
            ),
            2 => (
                within("unsub", c.unsubscribe("f")).await.map(drop),
                Error::Timeout(AckKind::UnsubAck),
                4,
            ),
            3 => {
                let r = within("pub", c.publish("t", b"x", QoS::AtLeastOnce, false)).await;
                assert!(matches!(r, Ok(Some(_))), "{r:?}");
                (
                    Err(Error::Timeout(AckKind::PubAck)),
                    Error::Timeout(AckKind::PubAck),
                    5,
                )
            }
            _ => (
                within("poll", c.poll(MDuration::from_secs(3600)))
                    .await
                    .map(drop),
                Error::Timeout(AckKind::PingResp),
                // The PINGREQ is due at 18 s (a tenth of the keep-alive
                // early), its PINGRESP 6 s later.
                24,
            ),
        };
        assert_eq!(result, Err(want), "op {op}");
        assert_eq!(start.elapsed(), Duration::from_secs(after), "op {op}");
        assert_eq!(c.user_data().disconnected, [DisconnectReason::Timeout]);
        assert!(!c.is_connected());
    }
}

/// Keep-alive 0 and a pingresp timeout of 6 s: with nothing awaited, no
/// deadline of the session's runs.
fn no_keep_alive() -> Config<'static> {
    Config {
        timeouts: Timeouts {
            pingresp: MDuration::from_secs(6),
            ..Timeouts::default()
        },
        keep_alive_secs: 0,
        ..config()
    }
}

/// With keep-alive 0 and nothing awaited, no deadline of the session's
/// bounds a stalled write: a QoS 0 publish, or the write of a callback's
/// request in `poll`, gets the pingresp timeout instead of hanging.
#[tokio::test(start_paused = true)]
async fn stalled_write_without_keep_alive_gets_the_pingresp_timeout() {
    let config = no_keep_alive();
    for op in 0..2 {
        let (io, h, mut broker) = faulty_pipe();
        let mut buffers = SmallBuffers::new();
        let mut c = client(io, config, buffers.slices());
        c.add_topic_callback("in", echo_qos0).unwrap();
        connect(&mut c, &mut broker, false).await;
        let at = h.written() + 1;
        h.set(|f| f.write_stall_after = Some(at));
        let start = Instant::now();
        let result = match op {
            0 => within("pub", c.publish("t", b"x", QoS::AtMostOnce, false))
                .await
                .map(drop),
            _ => {
                broker
                    .send(&publish("in", b"hi", QoS::AtMostOnce, None))
                    .await;
                within("poll", c.poll(MDuration::from_secs(3600)))
                    .await
                    .map(drop)
            }
        };
        assert_eq!(result, Err(Error::Timeout(AckKind::PingResp)), "op {op}");
        assert_eq!(start.elapsed(), Duration::from_secs(6), "op {op}");
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::Timeout],
            "op {op}"
        );
        assert!(!c.is_connected());
    }
}

/// A client connected with `config`, whose writes stall from the next
/// byte on, and a message from the broker waiting that its callback
/// answers: the answer's write is what stalls.
async fn echo_into_a_stalled_write(
    config: Config<'static>,
) -> (TestClient<'static, Faulty>, FaultHandle, FakeBroker) {
    let (io, h, mut broker) = faulty_pipe();
    let buffers = Box::leak(Box::new(SmallBuffers::new()));
    let mut c = client(io, config, buffers.slices());
    c.add_topic_callback("in", echo_qos0).unwrap();
    connect(&mut c, &mut broker, false).await;
    let at = h.written() + 1;
    h.set(|f| f.write_stall_after = Some(at));
    broker
        .send(&publish("in", b"hi", QoS::AtMostOnce, None))
        .await;
    (c, h, broker)
}

/// A stalled write is also bounded by the caller's own deadline: `poll`
/// and `run_for` return at their timeout with the connection up and the
/// rest of the write pending, which the next call finishes once the peer
/// reads again.
#[tokio::test(start_paused = true)]
async fn stalled_write_returns_at_the_callers_deadline() {
    for run_for in [false, true] {
        let (mut c, h, mut broker) = echo_into_a_stalled_write(config()).await;
        let start = Instant::now();
        let timeout = MDuration::from_millis(500);
        let result = match run_for {
            false => within("poll", c.poll(timeout)).await,
            true => within("run_for", c.run_for(timeout)).await,
        };
        let handled = result.expect("no error at the deadline");
        assert_eq!(handled.messages, 1, "run_for {run_for}");
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(500),
            "run_for {run_for}"
        );
        assert!(c.is_connected());
        assert!(c.user_data().disconnected.is_empty());
        h.set(|f| f.write_stall_after = None);
        within("poll", c.poll(timeout)).await.expect("written");
        let echo = broker.expect_publish().await;
        assert_eq!(echo.topic, "echo");
    }
}

/// With keep-alive 0 and nothing awaited, only the pingresp timeout bounds
/// a stalled write: it is not cut at the caller's deadline (a window that
/// started afresh with each call would never close), so a loop of short
/// `poll`s still finds the dead peer.
#[tokio::test(start_paused = true)]
async fn stalled_write_without_keep_alive_is_found_across_short_polls() {
    let (mut c, _h, _broker) = echo_into_a_stalled_write(no_keep_alive()).await;
    let start = Instant::now();
    let mut result = Ok(());
    for _ in 0..30 {
        result = within("poll", c.poll(MDuration::from_secs(1)))
            .await
            .map(drop);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(Error::Timeout(AckKind::PingResp)));
    assert_eq!(start.elapsed(), Duration::from_secs(6));
}

/// A transport that keeps what is written until `flush` (as embedded-tls
/// keeps a record), whose flush can be held.
struct Buffering {
    inner: Pipe,
    pending: Vec<u8>,
    hold: Arc<AtomicBool>,
}

impl embedded_io_async::ErrorType for Buffering {
    type Error = std::io::Error;
}

impl embedded_io_async::Read for Buffering {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.inner.read(buf).await
    }
}

impl embedded_io_async::Write for Buffering {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }
    async fn flush(&mut self) -> Result<(), Self::Error> {
        while self.hold.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let bytes = std::mem::take(&mut self.pending);
        embedded_io_async::Write::write_all(&mut self.inner, &bytes).await?;
        self.inner.flush().await
    }
}

/// A flush is not cut at the caller's deadline (its bytes are all with
/// the transport, and nothing would say a flush is still owed): `poll`
/// waits for it, bounded by the session's deadlines, and what it carries
/// reaches the broker.
#[tokio::test(start_paused = true)]
async fn a_held_flush_is_waited_for_not_abandoned() {
    let (io, mut broker) = pipe();
    let hold = Arc::new(AtomicBool::new(false));
    let io = Buffering {
        inner: io,
        pending: Vec::new(),
        hold: hold.clone(),
    };
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    c.add_topic_callback("in", echo_qos0).unwrap();
    connect(&mut c, &mut broker, false).await;
    hold.store(true, Ordering::SeqCst);
    broker
        .send(&publish("in", b"hi", QoS::AtMostOnce, None))
        .await;
    let release = hold.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        release.store(false, Ordering::SeqCst);
    });
    let start = Instant::now();
    let handled = within("poll", c.poll(MDuration::from_millis(500)))
        .await
        .expect("flushed");
    assert_eq!(handled.messages, 1);
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert!(c.is_connected());
    let echo = within("echo", broker.expect_publish()).await;
    assert_eq!(echo.topic, "echo");
}

/// A write that stalls after part of a PUBLISH went out: the timeout ends
/// the connection, and after reconnecting the broker gets the whole
/// message again (DUP, same id), never the stray half.
#[tokio::test(start_paused = true)]
async fn write_stalled_mid_packet_is_resent_whole() {
    let (io, h, mut broker) = faulty_pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, persistent(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let at = h.written() + 5;
    h.set(|f| f.write_stall_after = Some(at));
    let start = Instant::now();
    let id = within(
        "publish",
        c.publish("t/stall", &[7; 50], QoS::AtLeastOnce, false),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(c.user_data().disconnected, [DisconnectReason::Timeout]);
    let (io, _h, mut fresh) = faulty_pipe();
    c.connector_mut().push(io);
    assert_eq!(
        broker.read().await,
        Err(ReadEnd::EofMidPacket { partial: 5 })
    );
    fresh.send(&connack(false, 0)).await;
    within("connect", c.connect()).await.unwrap();
    fresh.expect_connect().await;
    let p = fresh.expect_publish().await;
    assert_eq!(
        (p.packet_id, p.dup, p.payload),
        (Some(id), true, vec![7; 50])
    );
}

// ---------------------------------------------------------------------------
// Reads.

/// A read error is `Error::Transport` with the transport's error.
#[tokio::test(start_paused = true)]
async fn read_error_is_a_transport_error() {
    fail_then_resume(async |c, h, _broker, _ids| {
        let at = h.read();
        h.set(|f| f.read_error_after = Some((at, ErrorKind::ConnectionReset)));
        assert_eq!(
            within("poll", c.poll(POLL)).await,
            Err(Error::Transport(ErrorKind::ConnectionReset))
        );
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::ConnectionLost]
        );
    })
    .await;
}

/// The stream ends 5 bytes into a PUBLISH: `ConnectionClosed`, and the
/// half message is not delivered.
#[tokio::test(start_paused = true)]
async fn end_of_stream_mid_packet_is_connection_closed() {
    fail_then_resume(async |c, h, broker, _ids| {
        let at = h.read() + 5;
        h.set(|f| f.read_eof_after = Some(at));
        broker
            .send(&publish(
                "in/x",
                b"never delivered",
                QoS::AtLeastOnce,
                Some(1),
            ))
            .await;
        assert_eq!(
            within("poll", c.poll(POLL)).await,
            Err(Error::ConnectionClosed)
        );
        assert!(c.user_data().messages.is_empty());
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::ConnectionLost]
        );
    })
    .await;
}

/// The broker closes its end after half a packet (a real end of stream,
/// not an injected one): same outcome.
#[tokio::test(start_paused = true)]
async fn broker_closing_mid_packet_is_connection_closed() {
    fail_then_resume(async |c, _h, broker, _ids| {
        let bytes = publish("in/x", b"cut", QoS::AtLeastOnce, Some(1));
        broker.send(&bytes[..bytes.len() - 2]).await;
        // Close the broker's write side: the client reads end of stream.
        let FakeBroker { tx, .. } = broker;
        tx.shutdown().await;
        assert_eq!(
            within("poll", c.poll(POLL)).await,
            Err(Error::ConnectionClosed)
        );
        assert!(c.user_data().messages.is_empty());
    })
    .await;
}

/// The stream ends between packets, in the middle of a wait for SUBACK.
#[tokio::test(start_paused = true)]
async fn end_of_stream_between_packets_is_connection_closed() {
    fail_then_resume_with(&[("late", QoS::AtMostOnce)], async |c, h, _broker, _ids| {
        let at = h.read();
        h.set(|f| f.read_eof_after = Some(at));
        assert_eq!(
            within("subscribe", c.subscribe("late", QoS::AtMostOnce)).await,
            Err(Error::ConnectionClosed)
        );
        assert!(c.user_data().subscribed.len() == 2);
    })
    .await;
}

/// A read that never completes: the oldest acknowledgement deadline (the
/// QoS 1 message published before `prepare`'s 10 ms poll, PUBACK due
/// 10 s after it) ends the wait with `Timeout`, exactly then.
#[tokio::test(start_paused = true)]
async fn stalled_read_times_out_at_the_ack_deadline() {
    fail_then_resume(async |c, h, _broker, _ids| {
        let start = Instant::now();
        let at = h.read();
        h.set(|f| f.read_stall_after = Some(at));
        assert_eq!(
            within("poll", c.poll(MDuration::from_secs(3600))).await,
            Err(Error::Timeout(AckKind::PubAck))
        );
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(10) - Duration::from_millis(10)
        );
        assert_eq!(c.user_data().disconnected, [DisconnectReason::Timeout]);
    })
    .await;
}

/// A read that stalls in the middle of a packet (3 bytes in) during
/// `connect`: the connack timeout fires, exactly.
#[tokio::test(start_paused = true)]
async fn read_stalled_mid_connack_times_out() {
    let (io, broker) = pipe();
    let (t, _h) = FaultyTransport::with(
        io,
        Faults {
            read_stall_after: Some(3),
            ..Faults::default()
        },
    );
    let mut broker = broker;
    let mut buffers = SmallBuffers::new();
    let mut c = client(t, config(), buffers.slices());
    broker.connack().await;
    let start = Instant::now();
    assert_eq!(
        within("connect", c.connect()).await,
        Err(Error::Timeout(AckKind::ConnAck))
    );
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

// ---------------------------------------------------------------------------
// Clean session on.

/// With clean session on, a reconnect drops the in-flight messages (the
/// broker discarded its side too, §3.1.2.4) but still restores the
/// subscriptions, which the client remembers.
#[tokio::test(start_paused = true)]
async fn clean_session_reconnect_resubscribes_and_resends_nothing() {
    let (io, _h, mut broker) = faulty_pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let (granted, ()) = tokio::join!(c.subscribe_many(&FILTERS), async {
        let (id, _) = broker.expect_subscribe().await;
        broker.send(&suback(id, &[1, 2])).await;
    });
    granted.unwrap();
    c.publish("m/a", b"a", QoS::AtLeastOnce, false)
        .await
        .unwrap();
    drop(broker);
    assert_eq!(
        within("poll", c.poll(POLL)).await,
        Err(Error::ConnectionClosed)
    );
    let (io, _h, mut broker) = faulty_pipe();
    c.connector_mut().push(io);
    broker.connack().await;
    within("connect", c.connect()).await.unwrap();
    let (_, clean, _) = broker.expect_connect().await;
    assert!(clean);
    let (_, filters) = broker.expect_subscribe().await;
    assert_eq!(
        filters,
        [
            ("s/1".to_owned(), QoS::AtLeastOnce),
            ("s/2".to_owned(), QoS::ExactlyOnce)
        ]
    );
    broker.expect_silence(Duration::from_millis(1)).await;
    assert_eq!(c.session().inflight(), 0);
    let info = c.user_data().connected.last().unwrap();
    assert_eq!((info.resubscribed, info.resent), (2, 0));
}

fn echo_qos1(ctx: &mut minimqtt::Context<'_, Log>, _m: &minimqtt::Message<'_>) {
    ctx.publish("echo", b"x", QoS::AtLeastOnce, false).unwrap();
}

fn echo_qos0(ctx: &mut minimqtt::Context<'_, Log>, _m: &minimqtt::Message<'_>) {
    ctx.publish("echo", b"x", QoS::AtMostOnce, false).unwrap();
}

/// Publishes from a callback are handed to the session once. The write of
/// the callback's QoS 1 PUBLISH fails (the broker is gone): after the
/// reconnect it is resent once, by the session (DUP, same id), and the
/// outbox does not submit it again as a new message.
#[tokio::test(start_paused = true)]
async fn callback_publish_is_not_sent_twice_after_a_write_error() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut cfg = config();
    cfg.clean_session = false;
    let mut c = client(io, cfg, buffers.slices());
    c.add_topic_callback("in", echo_qos1).unwrap();
    connect(&mut c, &mut broker, false).await;
    broker
        .send(&publish("in", b"hi", QoS::AtMostOnce, None))
        .await;
    broker.close();
    assert!(within("poll", c.poll(POLL)).await.is_err());
    let (io, mut broker) = pipe();
    c.connector_mut().push(io);
    connect(&mut c, &mut broker, true).await;
    within("poll", c.poll(POLL)).await.unwrap();
    let mut publishes = Vec::new();
    while let Some(Ok(rx)) = broker.try_recv(Duration::from_millis(100)).await {
        if let Rx::Publish(p) = rx {
            publishes.push((p.topic, p.dup, p.packet_id));
        }
    }
    assert_eq!(publishes, [("echo".to_owned(), true, Some(1))]);
}

/// The same with QoS 0: at most once. The write fails, so the message is
/// gone with the connection: not sent after the reconnect, and no
/// `on_publish` for it.
#[tokio::test(start_paused = true)]
async fn callback_qos0_publish_is_at_most_once_after_a_write_error() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    c.add_topic_callback("in", echo_qos0).unwrap();
    connect(&mut c, &mut broker, false).await;
    broker
        .send(&publish("in", b"hi", QoS::AtMostOnce, None))
        .await;
    broker.close();
    assert!(within("poll", c.poll(POLL)).await.is_err());
    let (io, mut broker) = pipe();
    c.connector_mut().push(io);
    connect(&mut c, &mut broker, false).await;
    within("poll", c.poll(POLL)).await.unwrap();
    broker.expect_silence(Duration::from_millis(100)).await;
    assert!(c.user_data().published.is_empty());
}

/// A window of 0 (`INFLIGHT = 0`) never opens: QoS 1/2 publishes, direct
/// or from a callback, fail with `InflightFull` at once instead of waiting
/// forever, and QoS 0 still goes out.
#[tokio::test(start_paused = true)]
async fn a_window_of_zero_refuses_qos1_instead_of_waiting() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c: minimqtt::Client<'_, Queue<Pipe>, minimqtt::time::TokioClock, Log, 0> =
        minimqtt::Client::with_capacity(
            Queue::with(io),
            minimqtt::time::TokioClock::new(),
            config(),
            buffers.slices(),
            recording_callbacks(),
            Log::default(),
        );
    c.add_topic_callback("in", echo_qos1).unwrap();
    broker.send(&connack(false, 0)).await;
    within("connect", c.connect()).await.unwrap();
    broker.expect_connect().await;
    assert!(matches!(
        within("publish", c.publish("t", b"1", QoS::AtLeastOnce, false)).await,
        Err(Error::Resource(ResourceError::InflightFull))
    ));
    // The callback's QoS 1 request fails the same way and leaves the
    // outbox, so a later QoS 0 publish is not stuck behind it.
    broker
        .send(&publish("in", b"hi", QoS::AtMostOnce, None))
        .await;
    assert!(matches!(
        within("poll", c.poll(POLL)).await,
        Err(Error::Resource(ResourceError::InflightFull))
    ));
    assert!(matches!(
        within("publish", c.publish("t", b"0", QoS::AtMostOnce, false)).await,
        Ok(None)
    ));
    assert_eq!(broker.recv().await.publish().payload, b"0");
    assert!(c.is_connected());
}
