//! The connection's life belongs to the client: it starts offline, opens
//! every transport through its connector (the old one always dropped
//! first), closes the transport at once on every fatal condition, and
//! reconnects by itself with backoff (`run_for`). Each test drives a
//! client against scripted brokers on tokio's paused clock.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake::*;
use minimqtt::callbacks::DisconnectReason;
use minimqtt::codec::{Malformed, PacketType};
use minimqtt::reconnect::Backoff;
use minimqtt::time::{Duration as MDuration, TokioClock};
use minimqtt::{BrokerError, UsageError};
use minimqtt::{Client, Config, Connector, Error, QoS};

const MS: Duration = Duration::from_millis(1);
const POLL: MDuration = MDuration::from_secs(1);

/// A one-slot socket pool, as embassy-net's `TcpClient<'_, 1, ..>`: a
/// connection attempt while one of its transports is alive fails, the way
/// the pool would report "no free slot". Each attempt takes the next
/// queued pipe.
struct OneSlot {
    pipes: Queue<Pipe>,
    alive: Arc<AtomicUsize>,
    attempts: usize,
    refused_for_a_busy_slot: usize,
}

/// A transport of [`OneSlot`]: frees the slot when dropped.
struct Slot {
    pipe: Pipe,
    alive: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

impl embedded_io_async::ErrorType for Slot {
    type Error = std::io::Error;
}

impl embedded_io_async::Read for Slot {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.pipe.read(buf).await
    }
}

impl embedded_io_async::Write for Slot {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.pipe.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.pipe.flush().await
    }
}

#[derive(Debug)]
struct PoolExhausted;

impl Connector for OneSlot {
    type Transport = Slot;
    type Error = PoolExhausted;

    async fn connect(&mut self) -> Result<Slot, PoolExhausted> {
        self.attempts += 1;
        if self.alive.load(Ordering::SeqCst) > 0 {
            self.refused_for_a_busy_slot += 1;
            return Err(PoolExhausted);
        }
        let pipe = self.pipes.connect().await.map_err(|_| PoolExhausted)?;
        self.alive.fetch_add(1, Ordering::SeqCst);
        Ok(Slot {
            pipe,
            alive: self.alive.clone(),
        })
    }
}

/// `run_for` in slices until the client is connected, as an application's
/// loop would call it.
async fn run_until_connected<K: Connector>(c: &mut Client<'_, K, TokioClock, Log>) {
    within("run_for", async {
        while !c.is_connected() {
            c.run_for(MDuration::from_millis(100)).await.unwrap();
        }
    })
    .await;
}

fn fast_backoff() -> Backoff {
    Backoff::new(MDuration::from_millis(100), MDuration::from_secs(1))
}

/// Every reconnection goes through a one-slot pool and never finds the slot
/// taken: the client dropped the old transport before opening the new one.
#[tokio::test(start_paused = true)]
async fn reconnects_through_a_one_slot_pool() {
    let pipes = Queue::default();
    let connector = OneSlot {
        pipes: pipes.clone(),
        alive: Arc::default(),
        attempts: 0,
        refused_for_a_busy_slot: 0,
    };
    let mut buffers = SmallBuffers::new();
    let config = Config {
        backoff: fast_backoff(),
        ..config()
    };
    let mut c = Client::new(
        connector,
        TokioClock::new(),
        config,
        buffers.slices(),
        recording_callbacks(),
        Log::default(),
    );
    for round in 0..3 {
        let (io, mut broker) = pipe();
        pipes.push(io);
        broker.connack().await;
        within("run_for", async {
            while !c.is_connected() {
                c.run_for(MDuration::from_millis(50)).await.unwrap();
            }
        })
        .await;
        broker.expect_connect().await;
        // The broker goes away: the next `run_for` sees EOF, closes the
        // transport and reconnects through the pool.
        drop(broker);
        within("run_for", c.run_for(MDuration::from_millis(10)))
            .await
            .unwrap();
        assert!(!c.is_connected(), "round {round}");
    }
    let (connector, log) = c.into_parts();
    assert_eq!(connector.refused_for_a_busy_slot, 0);
    assert_eq!(connector.attempts, 3);
    assert_eq!(log.connected.len(), 3);
    assert_eq!(log.disconnected, [DisconnectReason::ConnectionLost; 3]);
}

/// The broker is down at boot: the client starts offline, and `run_for`
/// retries with backoff (every failed attempt waits longer) until the broker
/// is up, then connects and stays connected.
#[tokio::test(start_paused = true)]
async fn starts_offline_and_connects_when_the_broker_comes_up() {
    let mut buffers = SmallBuffers::new();
    let config = Config {
        backoff: fast_backoff(),
        ..config()
    };
    let mut c = Client::new(
        Queue::<Pipe>::default(),
        TokioClock::new(),
        config,
        buffers.slices(),
        recording_callbacks(),
        Log::default(),
    );
    assert!(!c.is_connected());
    assert!(c.transport_mut().is_none());
    // No broker for 2 s: the connector fails every time.
    let start = tokio::time::Instant::now();
    let handled = within("run_for", c.run_for(MDuration::from_secs(2)))
        .await
        .expect("connector failures are retried, not returned");
    assert_eq!(handled.packets, 0);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(c.user_data().connected.is_empty());
    let (io, mut broker) = pipe();
    c.connector_mut().push(io);
    broker.connack().await;
    run_until_connected(&mut c).await;
    broker.expect_connect().await;
    assert_eq!(c.user_data().connected.len(), 1);
    assert!(c.user_data().disconnected.is_empty());
}

/// `run_for` returns at its timeout while the CONNACK is awaited, not at
/// the connack timeout (10 s): the application's loop gets its turn. The
/// connection under way is not dropped; the next call carries it on, on
/// the same transport, until the CONNACK comes.
#[tokio::test(start_paused = true)]
async fn run_for_keeps_its_timeout_while_the_connack_is_awaited() {
    let mut buffers = SmallBuffers::new();
    let (io, mut broker) = pipe();
    let mut c = client(io, config(), buffers.slices());
    for _ in 0..3 {
        let start = tokio::time::Instant::now();
        let handled = within("run_for", c.run_for(MDuration::from_millis(500)))
            .await
            .expect("no error while connecting");
        assert_eq!(handled.packets, 0);
        assert_eq!(start.elapsed(), 500 * MS);
        assert!(!c.is_connected());
    }
    broker.expect_connect().await;
    broker.connack().await;
    within("run_for", c.run_for(MDuration::from_millis(500)))
        .await
        .expect("connected");
    assert!(c.is_connected());
    assert_eq!(c.connector_mut().opened(), 1);
    assert_eq!(c.user_data().connected.len(), 1);
    assert!(c.user_data().disconnected.is_empty());
}

/// A timeout of zero still takes a look at what has arrived, without
/// waiting: `run_for(0)` called in a loop connects once the CONNACK is
/// there, and `poll(0)` delivers a message already received.
#[tokio::test(start_paused = true)]
async fn a_timeout_of_zero_still_reads_what_has_arrived() {
    let mut buffers = SmallBuffers::new();
    let (io, mut broker) = pipe();
    let mut c = client(io, config(), buffers.slices());
    let start = tokio::time::Instant::now();
    within("run_for", c.run_for(MDuration::ZERO))
        .await
        .expect("no error");
    assert!(!c.is_connected());
    broker.expect_connect().await;
    broker.connack().await;
    within("run_for", c.run_for(MDuration::ZERO))
        .await
        .expect("connected");
    assert!(c.is_connected());
    broker
        .send(&publish("a", b"x", QoS::AtMostOnce, None))
        .await;
    let handled = within("poll", c.poll(MDuration::ZERO)).await.expect("poll");
    assert_eq!(handled.messages, 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

/// `run_for(0)` on a connected client takes its one look too: a message
/// that has arrived is delivered, a request queued meanwhile is written,
/// and a loop of them keeps the link alive.
#[tokio::test(start_paused = true)]
async fn run_for_zero_when_connected_reads_writes_and_pings() {
    let mut buffers = SmallBuffers::new();
    let (io, mut broker) = pipe();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    broker
        .send(&publish("a", b"x", QoS::AtMostOnce, None))
        .await;
    c.subscribe_later("a/b", QoS::AtMostOnce).unwrap();
    let handled = within("run_for", c.run_for(MDuration::ZERO))
        .await
        .expect("run_for");
    assert_eq!(handled.messages, 1);
    let (id, _) = broker.expect_subscribe().await;
    broker.send(&suback(id, &[0])).await;
    // 60 s of `run_for(0)` every 100 ms, keep-alive 60 s: a PINGREQ
    // (due at 54 s, a tenth of the keep-alive early).
    for _ in 0..600 {
        within("run_for", c.run_for(MDuration::ZERO))
            .await
            .expect("run_for");
        tokio::time::sleep(100 * MS).await;
    }
    assert_eq!(broker.recv().await, Rx::PingReq);
    assert!(c.is_connected());
}

/// Calls made while `run_for` left a CONNECT half written (the broker
/// not reading) do not wait for its CONNACK: `publish` and `subscribe`
/// say `NotConnected` at once, and `disconnect` closes at once, with no
/// broker session to say goodbye to (`on_disconnect(Requested)`, once).
#[tokio::test(start_paused = true)]
async fn calls_while_the_connect_is_half_written_do_not_wait() {
    let mut buffers = SmallBuffers::new();
    let (io, _broker) = pipe_with_capacity(4);
    let mut c = client(io, config(), buffers.slices());
    within("run_for", c.run_for(MDuration::from_millis(50)))
        .await
        .expect("run_for");
    assert!(!c.is_connected());
    let start = tokio::time::Instant::now();
    let r = within("publish", c.publish("t", b"x", QoS::AtMostOnce, false)).await;
    assert!(
        matches!(r, Err(Error::Usage(UsageError::NotConnected))),
        "{r:?}"
    );
    let r = within("subscribe", c.subscribe("t", QoS::AtMostOnce)).await;
    assert!(
        matches!(r, Err(Error::Usage(UsageError::NotConnected))),
        "{r:?}"
    );
    within("disconnect", c.disconnect())
        .await
        .expect("disconnect");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(c.user_data().disconnected, [DisconnectReason::Requested]);
    assert!(c.transport_mut().is_none());
}

/// Backoff spaces the attempts: with a connector that always fails, 10 s
/// of `run_for` make only a handful of attempts (100 ms doubling to 1 s).
#[tokio::test(start_paused = true)]
async fn failed_attempts_back_off() {
    struct Counting(Arc<AtomicUsize>);
    impl Connector for Counting {
        type Transport = Pipe;
        type Error = ();
        async fn connect(&mut self) -> Result<Pipe, ()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(())
        }
    }
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut buffers = SmallBuffers::new();
    let config = Config {
        backoff: fast_backoff(),
        ..config()
    };
    let mut c = Client::new(
        Counting(attempts.clone()),
        TokioClock::new(),
        config,
        buffers.slices(),
        recording_callbacks(),
        Log::default(),
    );
    within("run_for", c.run_for(MDuration::from_secs(10)))
        .await
        .unwrap();
    // Delays of at least 50, 100, 200, 400, then 500 ms each: at most 1 +
    // 4 + (10 - 0.75) / 0.5 attempts; at least 10 s / 1 s.
    let n = attempts.load(Ordering::SeqCst);
    assert!((10..=24).contains(&n), "{n} attempts in 10 s");
}

/// Devices with the same client id (an empty one: the broker assigns
/// theirs) and no seed do not retry in lockstep: the jitter takes in the
/// time of each failure, and their clocks started apart (here 0 and
/// 37 ms before the broker was lost).
#[tokio::test(start_paused = true)]
async fn devices_without_seed_or_id_back_off_apart() {
    struct Failing(Arc<Mutex<Vec<tokio::time::Instant>>>);
    impl Connector for Failing {
        type Transport = Pipe;
        type Error = ();
        async fn connect(&mut self) -> Result<Pipe, ()> {
            self.0.lock().unwrap().push(tokio::time::Instant::now());
            Err(())
        }
    }
    let mut runs = Vec::new();
    for booted in [0, 37] {
        let clock = TokioClock::new();
        tokio::time::sleep(Duration::from_millis(booted)).await;
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let mut buffers = SmallBuffers::new();
        let mut c = Client::new(
            Failing(attempts.clone()),
            clock,
            Config::new(""),
            buffers.slices(),
            recording_callbacks(),
            Log::default(),
        );
        let start = tokio::time::Instant::now();
        within("run_for", c.run_for(MDuration::from_secs(30)))
            .await
            .unwrap();
        let attempts = attempts.lock().unwrap();
        let delays: Vec<_> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(attempts[0] == start && delays.len() >= 3, "{delays:?}");
        runs.push(delays);
    }
    assert_ne!(runs[0], runs[1]);
}

/// A bounded backoff gives up: `run_for` returns the last error once
/// `max_attempts` attempts failed in a row.
#[tokio::test(start_paused = true)]
async fn a_bounded_backoff_gives_up() {
    let mut buffers = SmallBuffers::new();
    let mut backoff = fast_backoff();
    backoff.max_attempts = Some(3);
    let config = Config {
        backoff,
        ..config()
    };
    let mut c = Client::new(
        Queue::<Pipe>::default(),
        TokioClock::new(),
        config,
        buffers.slices(),
        recording_callbacks(),
        Log::default(),
    );
    let result = within("run_for", c.run_for(MDuration::from_secs(3600))).await;
    assert!(matches!(result, Err(Error::ConnectFailed)), "{result:?}");
}

/// A permanent refusal (bad credentials) ends the retrying at once, with
/// the refusal; `on_disconnect` has its return code.
#[tokio::test(start_paused = true)]
async fn a_permanent_refusal_is_returned_not_retried() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    broker.send(&connack(false, 4)).await;
    let result = within("run_for", c.run_for(MDuration::from_secs(3600))).await;
    assert_eq!(
        result.map_err(|e| e.map_transport(|e| e.kind())),
        Err(Error::Broker(BrokerError::Refused(code(4))))
    );
    assert_eq!(
        c.user_data().disconnected,
        [DisconnectReason::Refused(code(4))]
    );
    assert_eq!(c.connector_mut().opened(), 1);
    // The transport was closed.
    assert_eq!(broker.drain().await.1, ReadEnd::Eof);
    // An application that calls again at once still waits out the
    // backoff (at least half its first delay of a second) before the next
    // attempt.
    let (io, _broker) = pipe();
    c.connector_mut().push(io);
    within("run_for", c.run_for(MDuration::from_millis(400)))
        .await
        .unwrap();
    assert_eq!(c.connector_mut().opened(), 1);
}

/// A refusal that may pass (server unavailable) is retried.
#[tokio::test(start_paused = true)]
async fn server_unavailable_is_retried() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let config = Config {
        backoff: fast_backoff(),
        ..config()
    };
    let mut c = client(io, config, buffers.slices());
    broker.send(&connack(false, 3)).await;
    let (io2, mut broker2) = pipe();
    c.connector_mut().push(io2);
    broker2.connack().await;
    run_until_connected(&mut c).await;
    assert_eq!(
        c.user_data().disconnected,
        [DisconnectReason::Refused(code(3))]
    );
    assert_eq!(c.user_data().connected.len(), 1);
}

/// A malformed packet from the broker closes the transport at once: the
/// broker sees the end of the stream within a millisecond, while the
/// application only runs `run_for` (it does nothing about the error), and
/// `on_disconnect` runs once.
#[tokio::test(start_paused = true)]
async fn a_malformed_packet_closes_the_transport_at_once() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let app = async {
        // The application's loop, unchanged by the failure.
        for _ in 0..5 {
            c.run_for(MDuration::from_millis(100)).await.unwrap();
        }
    };
    let broker_side = async {
        broker.send(&[0x36, 0x04, 0x00, 0x01, b'a', 0x00]).await;
        let sent = tokio::time::Instant::now();
        let (rest, end) = broker.drain().await;
        log.lock().unwrap().extend(rest);
        (end, sent.elapsed())
    };
    let ((), (end, after)) = tokio::join!(app, broker_side);
    assert_eq!(end, ReadEnd::Eof);
    assert!(after <= MS, "closed after {after:?}");
    assert!(log.lock().unwrap().is_empty());
    assert_eq!(
        c.user_data().disconnected,
        [DisconnectReason::ProtocolError]
    );
}

/// The same from `poll`: the error is returned, the transport is already
/// closed, `on_disconnect` ran once.
#[tokio::test(start_paused = true)]
async fn a_protocol_violation_in_poll_closes_before_returning() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    broker.send(&connack(false, 0)).await;
    let result = within("poll", c.poll(POLL)).await;
    assert_eq!(
        result.map_err(|e| e.map_transport(|e| e.kind())),
        Err(Error::Broker(BrokerError::Protocol(PacketType::ConnAck)))
    );
    assert!(c.transport_mut().is_none());
    assert_eq!(broker.drain().await, (vec![], ReadEnd::Eof));
    assert_eq!(
        c.user_data().disconnected,
        [DisconnectReason::ProtocolError]
    );
    // A later call is not a second disconnect.
    assert!(matches!(
        within("poll", c.poll(POLL)).await,
        Err(Error::Usage(UsageError::NotConnected))
    ));
    assert_eq!(c.user_data().disconnected.len(), 1);
}

/// A missing PINGRESP: the transport is closed when the wait runs out
/// (one keep-alive period, capped by the configured timeout).
#[tokio::test(start_paused = true)]
async fn a_keep_alive_timeout_closes_the_transport() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let config = Config {
        keep_alive_secs: 5,
        ..config()
    };
    let mut c = client(io, config, buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let start = tokio::time::Instant::now();
    let result = within("poll", c.poll(MDuration::from_secs(3600))).await;
    assert!(matches!(
        result,
        Err(Error::Timeout(minimqtt::AckKind::PingResp))
    ));
    // PINGREQ at 4.5 s (half a second early), no answer within K = 5 s.
    assert_eq!(start.elapsed(), Duration::from_millis(9_500));
    let (sent, end) = broker.drain().await;
    assert_eq!((sent, end), (vec![Rx::PingReq], ReadEnd::Eof));
    assert_eq!(c.user_data().disconnected, [DisconnectReason::Timeout]);
}

/// `disconnect` sends DISCONNECT and closes the transport (MQTT-3.14.4-1);
/// `abort` closes it without DISCONNECT, as a lost link would (the broker
/// then publishes the will). Both run `on_disconnect` once.
#[tokio::test(start_paused = true)]
async fn disconnect_says_goodbye_and_abort_does_not() {
    for polite in [true, false] {
        let (io, mut broker) = pipe();
        let mut buffers = SmallBuffers::new();
        let mut c = client(io, config(), buffers.slices());
        connect(&mut c, &mut broker, false).await;
        if polite {
            within("disconnect", c.disconnect()).await.unwrap();
        } else {
            c.abort();
        }
        assert!(c.transport_mut().is_none());
        let (sent, end) = broker.drain().await;
        let expected = if polite { vec![Rx::Disconnect] } else { vec![] };
        assert_eq!((sent, end), (expected, ReadEnd::Eof));
        assert_eq!(c.user_data().disconnected, [DisconnectReason::Requested]);
        // Nothing more to close.
        c.abort();
        assert!(matches!(
            within("disconnect", c.disconnect()).await,
            Err(Error::Usage(UsageError::NotConnected))
        ));
        assert_eq!(c.user_data().disconnected.len(), 1);
    }
}

/// `connect` on a client whose connection is open is refused (one CONNECT
/// per connection, MQTT-3.1.0-2), and leaves the connection alone.
#[tokio::test(start_paused = true)]
async fn connect_while_connected_is_refused() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    assert!(matches!(
        within("connect", c.connect()).await,
        Err(Error::Usage(UsageError::AlreadyConnected))
    ));
    assert!(c.is_connected());
    broker.expect_silence(Duration::from_millis(10)).await;
}

/// A QoS 1 message in flight when a clean-session reconnect discards the
/// session: `on_publish_discarded` runs once, `on_publish` never, and
/// `wait_published` says `Discarded` rather than `Ok`.
#[tokio::test(start_paused = true)]
async fn a_clean_session_reconnect_reports_the_discarded_messages() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let id = within("publish", c.publish("m/a", b"a", QoS::AtLeastOnce, false))
        .await
        .unwrap()
        .unwrap();
    broker.expect_publish().await;
    drop(broker);
    assert!(within("poll", c.poll(POLL)).await.is_err());
    let (io, mut broker) = pipe();
    c.connector_mut().push(io);
    connect(&mut c, &mut broker, false).await;
    assert_eq!(c.user_data().discarded, [("m/a".to_owned(), id)]);
    assert!(c.user_data().published.is_empty());
    assert!(matches!(
        within("wait", c.wait_published(id)).await,
        Err(Error::Discarded)
    ));
    // Nothing is resent.
    broker.expect_silence(Duration::from_millis(100)).await;
}

/// Subscriptions queued before the first connection go out once connected
/// (`subscribe_later`), several in flight at once, each answered through
/// `on_subscribe`.
#[tokio::test(start_paused = true)]
async fn subscriptions_queued_offline_go_out_once_connected() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    c.subscribe_later("a/+", QoS::AtLeastOnce).unwrap();
    c.subscribe_later("b/#", QoS::ExactlyOnce).unwrap();
    broker.connack().await;
    let (done, ()) = tokio::join!(c.run_for(MDuration::from_millis(100)), async {
        broker.expect_connect().await;
        let (first, f1) = broker.expect_subscribe().await;
        let (second, f2) = broker.expect_subscribe().await;
        assert_eq!(f1, [("a/+".to_owned(), QoS::AtLeastOnce)]);
        assert_eq!(f2, [("b/#".to_owned(), QoS::ExactlyOnce)]);
        // Both in flight; answered in the opposite order.
        broker.send(&suback(second, &[2])).await;
        broker.send(&suback(first, &[1])).await;
    });
    done.unwrap();
    let subscribed: Vec<_> = c
        .user_data()
        .subscribed
        .iter()
        .map(|(f, _, _)| f.clone())
        .collect();
    assert_eq!(subscribed, ["b/#", "a/+"]);
    assert_eq!(c.session().subscriptions().count(), 2);
}

/// A malformed packet ends the connection with `Malformed`, not a hang or a
/// desynchronised stream, in `run_for` too: the next connection starts
/// clean.
#[tokio::test(start_paused = true)]
async fn after_a_malformed_packet_the_next_connection_starts_clean() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let config = Config {
        backoff: fast_backoff(),
        ..config()
    };
    let mut c = client(io, config, buffers.slices());
    connect(&mut c, &mut broker, false).await;
    // A fifth remaining-length byte, then what would be a valid PINGRESP.
    broker
        .send(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0xd0, 0x00])
        .await;
    let result = within("poll", c.poll(POLL)).await;
    assert_eq!(
        result.map_err(|e| e.map_transport(|e| e.kind())),
        Err(Error::Broker(BrokerError::Malformed(
            Malformed::RemainingLength
        )))
    );
    let (io, mut broker) = pipe();
    c.connector_mut().push(io);
    broker.connack().await;
    run_until_connected(&mut c).await;
    broker.expect_connect().await;
    within("ping", async {
        let (pinged, ()) = tokio::join!(c.ping(), async {
            broker.expect(Rx::PingReq).await;
            broker.send(&[0xd0, 0x00]).await;
        });
        pinged.unwrap();
    })
    .await;
}

fn publish_to_an_invalid_topic(ctx: &mut minimqtt::Context<'_, Log>, m: &minimqtt::Message<'_>) {
    ctx.user_data.subscribed.push((
        m.topic.to_owned(),
        minimqtt::SubscribeReturnCode::Failure,
        0,
    ));
    ctx.publish("bad/#", b"x", QoS::AtMostOnce, false).unwrap();
}

/// A callback's request the session refuses (a publish to a topic with a
/// wildcard) is dropped: `run_for` goes on, and so does the connection.
#[tokio::test(start_paused = true)]
async fn a_refused_callback_request_does_not_end_run_for() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    c.add_topic_callback("in", publish_to_an_invalid_topic)
        .unwrap();
    connect(&mut c, &mut broker, false).await;
    broker
        .send(&publish("in", b"hi", QoS::AtMostOnce, None))
        .await;
    within("run_for", c.run_for(MDuration::from_secs(1)))
        .await
        .expect("not an error for run_for");
    assert!(c.is_connected());
    // The callback ran (it notes itself in the log), and nothing was sent.
    assert_eq!(c.user_data().subscribed.len(), 1);
    broker.expect_silence(Duration::from_millis(10)).await;
    assert!(c.user_data().disconnected.is_empty());
}

/// The same for requests queued before the connection: refused as the
/// outbox is written at CONNACK, they are dropped, and `run_for` goes on
/// (and sends the valid requests queued behind them).
#[tokio::test(start_paused = true)]
async fn requests_refused_at_connack_do_not_end_run_for() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    c.subscribe_later("a/#/b", QoS::AtLeastOnce).unwrap();
    c.subscribe_later("ok", QoS::AtLeastOnce).unwrap();
    broker.connack().await;
    within("run_for", c.run_for(MDuration::from_millis(100)))
        .await
        .expect("not an error for run_for");
    assert!(c.is_connected());
    broker.expect_connect().await;
    let (_, filters) = broker.expect_subscribe().await;
    assert_eq!(filters, [("ok".to_owned(), QoS::AtLeastOnce)]);
}

/// `disconnect()` says goodbye (so the broker discards the will) even
/// with a request in the outbox that the session refuses.
#[tokio::test(start_paused = true)]
async fn disconnect_says_goodbye_past_a_refused_request() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    c.subscribe_later("a/#/b", QoS::AtLeastOnce).unwrap();
    within("disconnect", c.disconnect()).await.unwrap();
    assert_eq!(broker.recv().await, Rx::Disconnect);
    assert_eq!(c.user_data().disconnected, [DisconnectReason::Requested]);
}

/// A `publish_from` dropped mid-payload leaves a message nobody can finish:
/// the connection ends (`Error::PayloadShort`), and `run_for` connects again
/// rather than give up.
#[tokio::test(start_paused = true)]
async fn run_for_reconnects_after_a_dropped_publish_from() {
    let (io, broker) = pipe_with_capacity(64);
    let mut buffers = SmallBuffers::new();
    let config = Config {
        backoff: fast_backoff(),
        ..config()
    };
    let mut c = client(io, config, buffers.slices());
    let mut broker = broker;
    connect(&mut c, &mut broker, false).await;
    let payload = vec![5u8; 4096];
    let mut source: &[u8] = &payload;
    let publish = c.publish_from("big", payload.len(), QoS::AtMostOnce, false, &mut source);
    assert!(tokio::time::timeout(10 * MS, publish).await.is_err());
    let (io, mut broker2) = pipe();
    c.connector_mut().push(io);
    broker2.connack().await;
    within("run_for", c.run_for(MDuration::from_secs(5)))
        .await
        .expect("run_for reconnects");
    assert!(c.is_connected());
    drop(broker);
}

/// Opens pipes to a broker that accepts each connection and closes it
/// `hold` after the CONNECT: a broker that kicks the client at once, or
/// another device taking the client id over. Records each attempt's time.
struct Kicking {
    times: Arc<Mutex<Vec<tokio::time::Instant>>>,
    hold: Duration,
}

impl Connector for Kicking {
    type Transport = Pipe;
    type Error = ();

    async fn connect(&mut self) -> Result<Pipe, ()> {
        self.times.lock().unwrap().push(tokio::time::Instant::now());
        let (io, mut broker) = pipe();
        let hold = self.hold;
        tokio::spawn(async move {
            broker.expect_connect().await;
            broker.connack().await;
            tokio::time::sleep(hold).await;
        });
        Ok(io)
    }
}

/// The delays between the connection attempts of `run_for(total)`
/// against [`Kicking`] brokers.
async fn kicked_for(hold: Duration, total: MDuration) -> Vec<Duration> {
    let times = Arc::new(Mutex::new(Vec::new()));
    let mut buffers = SmallBuffers::new();
    let config = Config {
        backoff: Backoff::new(MDuration::from_millis(100), MDuration::from_secs(10)),
        ..config()
    };
    let mut c = Client::new(
        Kicking {
            times: times.clone(),
            hold,
        },
        TokioClock::new(),
        config,
        buffers.slices(),
        recording_callbacks(),
        Log::default(),
    );
    c.run_for(total).await.unwrap();
    assert!(!c.user_data().connected.is_empty());
    let times = times.lock().unwrap();
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Connections lost right after their CONNACK count as failed attempts:
/// the delays grow as for failing connects (half fixed, doubling from
/// 100 ms up to 10 s), where resetting the backoff at each CONNACK would
/// reconnect every 50–100 ms for ever. A connection that lasted
/// `Backoff::stable_after` (30 s) resets it: the next attempt comes
/// 50–100 ms after the loss again.
#[tokio::test(start_paused = true)]
async fn only_a_connection_that_lasted_resets_the_backoff() {
    let delays = kicked_for(Duration::ZERO, MDuration::from_secs(20)).await;
    assert!((5..=12).contains(&delays.len()), "{delays:?}");
    for (i, delay) in delays.iter().enumerate().take(7) {
        let fixed = Duration::from_millis(50 << i);
        assert!(*delay >= fixed, "attempt {}: {delays:?}", i + 1);
    }

    let hold = Duration::from_secs(31);
    let delays = kicked_for(hold, MDuration::from_secs(200)).await;
    assert!(delays.len() >= 5, "{delays:?}");
    for delay in &delays {
        let retry = *delay - hold;
        assert!(
            (50 * MS..=100 * MS + MS).contains(&retry),
            "{retry:?} after a stable connection: {delays:?}"
        );
    }
}

/// Fails the attempts `plan` marks `false`; the others open a pipe to a
/// broker that accepts and holds the connection. Records each attempt's
/// time.
struct Planned {
    plan: Vec<bool>,
    times: Arc<Mutex<Vec<tokio::time::Instant>>>,
}

impl Connector for Planned {
    type Transport = Pipe;
    type Error = ();

    async fn connect(&mut self) -> Result<Pipe, ()> {
        let mut times = self.times.lock().unwrap();
        times.push(tokio::time::Instant::now());
        if !self.plan.get(times.len() - 1).copied().unwrap_or(false) {
            return Err(());
        }
        let (io, mut broker) = pipe();
        tokio::spawn(async move {
            broker.expect_connect().await;
            broker.connack().await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        Ok(io)
    }
}

/// A connection the application closed resets the backoff, however short
/// it was: failures before it do not add up with those after it (with
/// `max_attempts`, a device that connects now and then would otherwise
/// give up one day).
#[tokio::test(start_paused = true)]
async fn a_connection_closed_on_request_resets_the_backoff() {
    let times = Arc::new(Mutex::new(Vec::new()));
    let mut buffers = SmallBuffers::new();
    let config = Config {
        backoff: Backoff::new(MDuration::from_millis(100), MDuration::from_secs(10)),
        ..config()
    };
    let mut c = Client::new(
        Planned {
            plan: vec![false, false, false, true],
            times: times.clone(),
        },
        TokioClock::new(),
        config,
        buffers.slices(),
        recording_callbacks(),
        Log::default(),
    );
    run_until_connected(&mut c).await;
    assert_eq!(times.lock().unwrap().len(), 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    within("disconnect", c.disconnect()).await.unwrap();
    within("run_for", c.run_for(MDuration::from_secs(2)))
        .await
        .unwrap();
    let times = times.lock().unwrap();
    assert!(times.len() >= 6, "{times:?}");
    // The first attempt after the disconnect fails; the next waits half to
    // all of the initial 100 ms, not of the 800 ms the fourth failure in a
    // row would give.
    let delay = times[5] - times[4];
    assert!((50 * MS..=100 * MS).contains(&delay), "{delay:?}");
}
