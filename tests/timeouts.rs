//! Every acknowledgement wait has a timeout, and keep-alive pings go out on
//! time: checked to the millisecond on tokio's paused (virtual) clock.
//!
//! Each ack kind gets its own timeout value, so a test also proves the
//! right one is used. "At the configured timeout, not before" is checked
//! with the virtual time elapsed between queuing the packet and the error.

mod common;

use std::io::ErrorKind as IoKind;
use std::time::Duration;

use common::fake::*;
use minimqtt::callbacks::DisconnectReason;
use minimqtt::session::Timeouts;
use minimqtt::time::Duration as MDuration;
use minimqtt::{AckKind, Config, Error, QoS};
use tokio::time::Instant;

type E = Error<IoKind>;

/// A distinct timeout per acknowledgement.
const TIMEOUTS: Timeouts = Timeouts {
    connack: MDuration::from_secs(7),
    suback: MDuration::from_secs(8),
    unsuback: MDuration::from_secs(9),
    puback: MDuration::from_secs(11),
    pingresp: MDuration::from_secs(5),
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn mdur(d: Duration) -> MDuration {
    MDuration::from_millis(d.as_millis() as u64)
}

fn timed_config() -> Config<'static> {
    Config {
        timeouts: TIMEOUTS,
        ..config()
    }
}

fn kind<T>(r: Result<T, Error<std::io::Error>>) -> Result<T, E> {
    r.map_err(|e| e.map_transport(|e| e.kind()))
}

/// Asserts the timeout error, its timing, and that `on_disconnect` ran.
fn assert_timed_out<T: std::fmt::Debug>(
    result: Result<T, E>,
    ack: AckKind,
    elapsed: Duration,
    want: Duration,
    log: &Log,
) {
    assert_eq!(result.unwrap_err(), Error::Timeout(ack));
    assert_eq!(elapsed, want, "{ack:?} timed out after {elapsed:?}");
    assert_eq!(log.disconnected, [DisconnectReason::Timeout]);
}

/// A broker that accepts CONNECT and then never answers: CONNACK does
/// not come, and `connect` fails with `Timeout(ConnAck)` exactly at the
/// connack timeout (default 10 s, §3.1.4: the client waits for CONNACK).
#[tokio::test(start_paused = true)]
async fn silence_after_connect_times_out_at_the_connack_timeout() {
    for (config, want) in [(config(), secs(10)), (timed_config(), secs(7))] {
        let (io, mut broker) = pipe();
        let mut buffers = SmallBuffers::new();
        let mut c = client(io, config, buffers.slices());
        let start = Instant::now();
        let result = within("connect", c.connect()).await;
        assert_timed_out(
            kind(result),
            AckKind::ConnAck,
            start.elapsed(),
            want,
            c.user_data(),
        );
        assert!(!c.is_connected());
        broker.expect_connect().await;
    }
}

/// A CONNACK arriving 1 ms before the deadline is in time.
#[tokio::test(start_paused = true)]
async fn connack_just_before_the_deadline_is_in_time() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, timed_config(), buffers.slices());
    let (result, ()) = tokio::join!(c.connect(), async {
        broker.expect_connect().await;
        tokio::time::sleep(secs(7) - Duration::from_millis(1)).await;
        broker.connack().await;
    });
    assert_eq!(kind(result), Ok(false));
    assert!(c.is_connected());
}

/// No SUBACK: `subscribe` fails with `Timeout(SubAck)` exactly at the
/// suback timeout, even while other traffic keeps arriving.
#[tokio::test(start_paused = true)]
async fn missing_suback_times_out() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, timed_config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let start = Instant::now();
    let (result, ()) = tokio::join!(c.subscribe("a/b", QoS::AtLeastOnce), async {
        broker.expect_subscribe().await;
        // Unrelated traffic does not extend the wait.
        for _ in 0..7 {
            tokio::time::sleep(secs(1)).await;
            broker
                .send(&publish("x", b"y", QoS::AtMostOnce, None))
                .await;
        }
    });
    assert_timed_out(
        kind(result),
        AckKind::SubAck,
        start.elapsed(),
        secs(8),
        c.user_data(),
    );
    assert_eq!(c.user_data().messages.len(), 7);
    assert!(!c.is_connected());
}

/// No UNSUBACK: `Timeout(UnsubAck)` exactly at the unsuback timeout.
#[tokio::test(start_paused = true)]
async fn missing_unsuback_times_out() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, timed_config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let start = Instant::now();
    let result = within("unsubscribe", c.unsubscribe("a/b")).await;
    assert_timed_out(
        kind(result),
        AckKind::UnsubAck,
        start.elapsed(),
        secs(9),
        c.user_data(),
    );
    broker.expect_unsubscribe().await;
}

/// No PUBACK for a QoS 1 message: `wait_published` fails with
/// `Timeout(PubAck)` at the puback timeout counted from the publish, not
/// from the wait.
#[tokio::test(start_paused = true)]
async fn missing_puback_times_out() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, timed_config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let start = Instant::now();
    let id = c
        .publish("t", b"1", QoS::AtLeastOnce, false)
        .await
        .unwrap()
        .unwrap();
    // Time passes in `poll` before the wait starts.
    c.poll(MDuration::from_secs(4)).await.unwrap();
    let result = within("wait", c.wait_published(id)).await;
    assert_timed_out(
        kind(result),
        AckKind::PubAck,
        start.elapsed(),
        secs(11),
        c.user_data(),
    );
    assert_eq!(broker.expect_publish().await.packet_id, Some(id));
}

/// The ack timeout also fires inside `poll`: nobody has to wait on the
/// message for the dead connection to be noticed.
#[tokio::test(start_paused = true)]
async fn missing_puback_times_out_inside_poll() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, timed_config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let start = Instant::now();
    c.publish("t", b"1", QoS::AtLeastOnce, false).await.unwrap();
    let result = within("poll", c.poll(MDuration::from_secs(3600))).await;
    assert_timed_out(
        kind(result),
        AckKind::PubAck,
        start.elapsed(),
        secs(11),
        c.user_data(),
    );
}

/// No PUBREC for a QoS 2 message: `Timeout(PubRec)` at the puback timeout.
#[tokio::test(start_paused = true)]
async fn missing_pubrec_times_out() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, timed_config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let start = Instant::now();
    let id = c
        .publish("t", b"2", QoS::ExactlyOnce, false)
        .await
        .unwrap()
        .unwrap();
    let result = within("wait", c.wait_published(id)).await;
    assert_timed_out(
        kind(result),
        AckKind::PubRec,
        start.elapsed(),
        secs(11),
        c.user_data(),
    );
}

/// PUBREC arrives after 3 s, PUBCOMP never: `Timeout(PubComp)` at the
/// puback timeout counted from the PUBREL (3 + 11 s).
#[tokio::test(start_paused = true)]
async fn missing_pubcomp_times_out() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, timed_config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let start = Instant::now();
    let id = c
        .publish("t", b"2", QoS::ExactlyOnce, false)
        .await
        .unwrap()
        .unwrap();
    let (result, ()) = tokio::join!(c.wait_published(id), async {
        broker.expect_publish().await;
        tokio::time::sleep(secs(3)).await;
        broker.send(&pubrec(id)).await;
        assert_eq!(broker.recv().await, Rx::PubRel(id));
    });
    assert_timed_out(
        kind(result),
        AckKind::PubComp,
        start.elapsed(),
        secs(14),
        c.user_data(),
    );
}

/// No PINGRESP to an explicit `ping`: `Timeout(PingResp)` at the pingresp
/// timeout.
#[tokio::test(start_paused = true)]
async fn missing_pingresp_times_out() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, timed_config(), buffers.slices());
    connect(&mut c, &mut broker, false).await;
    let start = Instant::now();
    let result = within("ping", c.ping()).await;
    assert_timed_out(
        kind(result),
        AckKind::PingResp,
        start.elapsed(),
        secs(5),
        c.user_data(),
    );
    assert_eq!(broker.recv().await, Rx::PingReq);
}

// ---------------------------------------------------------------------------
// Keep-alive (§3.1.2.10).

/// Polls until `until` (virtual time since `start`), returning errors.
async fn poll_until<T>(c: &mut TestClient<'_, T>, start: Instant, until: Duration) -> Result<(), E>
where
    T: embedded_io_async::Read<Error = std::io::Error> + embedded_io_async::Write,
{
    loop {
        let elapsed = start.elapsed();
        if elapsed >= until {
            return Ok(());
        }
        kind(c.poll(mdur(until - elapsed)).await)?;
    }
}

/// The PINGREQ goes out a tenth of `keep_alive` before it has passed since
/// the last packet the client *sent*, so no gap reaches the keep-alive
/// (MQTT-3.1.2-23): 54 s with a keep-alive of 60 s. Packets received do not
/// postpone it; packets sent (a PUBLISH, a PUBACK) do.
#[tokio::test(start_paused = true)]
async fn pingreq_goes_out_keep_alive_after_the_last_packet_sent() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, timed_config(), buffers.slices());
    let start = Instant::now();
    connect(&mut c, &mut broker, false).await;
    let at = |t: u64| start + secs(t);
    let (client_side, pings) = tokio::join!(
        async {
            poll_until(&mut c, start, secs(90)).await?;
            // Sending resets the keep-alive timer: next ping at 90 + 54.
            c.publish("t", b"x", QoS::AtMostOnce, false)
                .await
                .map_err(|e| e.map_transport(|e| e.kind()))?;
            poll_until(&mut c, start, secs(300)).await
        },
        async {
            let mut pings = Vec::new();
            // Received traffic at 20, 40, 53: no effect on the ping at 54.
            for t in [20, 40, 53] {
                tokio::time::sleep_until(at(t)).await;
                broker
                    .send(&publish("in", b"0", QoS::AtMostOnce, None))
                    .await;
            }
            assert_eq!(broker.recv().await, Rx::PingReq);
            pings.push(start.elapsed());
            broker.send(&PINGRESP).await;
            assert_eq!(broker.expect_publish().await.topic, "t");
            assert_eq!(broker.recv().await, Rx::PingReq);
            pings.push(start.elapsed());
            broker.send(&PINGRESP).await;
            // A QoS 1 delivery at 170 makes the client send PUBACK: the
            // next ping is 54 s after that.
            tokio::time::sleep_until(at(170)).await;
            broker
                .send(&publish("in", b"1", QoS::AtLeastOnce, Some(1)))
                .await;
            assert_eq!(broker.recv().await, Rx::PubAck(1));
            assert_eq!(broker.recv().await, Rx::PingReq);
            pings.push(start.elapsed());
            broker.send(&PINGRESP).await;
            assert_eq!(broker.recv().await, Rx::PingReq);
            pings.push(start.elapsed());
            broker.send(&PINGRESP).await;
            pings
        }
    );
    client_side.unwrap();
    assert_eq!(pings, [secs(54), secs(144), secs(224), secs(278)]);
    assert!(c.user_data().disconnected.is_empty());
}

/// The keep-alive clock starts when CONNECT is sent, not when CONNACK
/// arrives: with CONNACK 5 s late, the first PINGREQ still goes out 54 s
/// after CONNECT (MQTT-3.1.2-23 counts the interval between packets sent).
#[tokio::test(start_paused = true)]
async fn keep_alive_counts_from_connect_not_connack() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, timed_config(), buffers.slices());
    let start = Instant::now();
    let (connected, ()) = tokio::join!(c.connect(), async {
        broker.expect_connect().await;
        tokio::time::sleep(secs(5)).await;
        broker.connack().await;
    });
    connected.unwrap();
    let (polled, ping_at) = tokio::join!(poll_until(&mut c, start, secs(61)), async {
        assert_eq!(broker.recv().await, Rx::PingReq);
        let at = start.elapsed();
        broker.send(&PINGRESP).await;
        at
    });
    polled.unwrap();
    assert_eq!(ping_at, secs(54));
}

/// The keep-alive PINGREQ gets no PINGRESP: the connection is declared
/// dead (`Timeout(PingResp)`) exactly `pingresp` (shorter than the
/// keep-alive here) after the PINGREQ, inside `poll`: PINGREQ at 27 s
/// (keep-alive 30 s), dead at 32 s.
#[tokio::test(start_paused = true)]
async fn keep_alive_ping_without_pingresp_times_out() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let config = Config {
        keep_alive_secs: 30,
        ..timed_config()
    };
    let mut c = client(io, config, buffers.slices());
    let start = Instant::now();
    connect(&mut c, &mut broker, false).await;
    let result = within("poll", poll_until(&mut c, start, secs(3600))).await;
    assert_eq!(result, Err(Error::Timeout(AckKind::PingResp)));
    assert_eq!(start.elapsed(), secs(32));
    assert_eq!(c.user_data().disconnected, [DisconnectReason::Timeout]);
    assert_eq!(broker.recv().await, Rx::PingReq);
    broker.expect_silence(secs(1)).await;
}

/// Only one PINGREQ is outstanding at a time: an explicit `ping` while
/// the keep-alive ping waits for its PINGRESP sends nothing new, and both
/// are satisfied by the one PINGRESP.
#[tokio::test(start_paused = true)]
async fn one_pingreq_outstanding_at_a_time() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, timed_config(), buffers.slices());
    let start = Instant::now();
    connect(&mut c, &mut broker, false).await;
    poll_until(&mut c, start, secs(55)).await.unwrap();
    assert!(c.session().ping_outstanding());
    let (pinged, ()) = tokio::join!(c.ping(), async {
        // The keep-alive PINGREQ of t = 54 s, read at 55 s.
        assert_eq!(broker.recv().await, Rx::PingReq);
        tokio::time::sleep(secs(2)).await;
        broker.send(&PINGRESP).await;
    });
    pinged.unwrap();
    assert_eq!(start.elapsed(), secs(57));
    broker.expect_silence(secs(1)).await;
}

/// `keep_alive = 0` turns pings off (§3.1.2.10): hours of virtual time in
/// `poll`, with traffic arriving now and then, and not one PINGREQ.
#[tokio::test(start_paused = true)]
async fn keep_alive_0_never_pings() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let config = Config {
        keep_alive_secs: 0,
        ..timed_config()
    };
    let mut c = client(io, config, buffers.slices());
    let start = Instant::now();
    let (_, _, keep_alive) = connect(&mut c, &mut broker, false).await;
    assert_eq!(keep_alive, 0);
    let hours = secs(6 * 3600);
    let (polled, ()) = tokio::join!(poll_until(&mut c, start, hours), async {
        for _ in 0..5 {
            tokio::time::sleep(secs(3600)).await;
            broker
                .send(&publish("in", b"0", QoS::AtMostOnce, None))
                .await;
        }
    });
    polled.unwrap();
    assert_eq!(start.elapsed(), hours);
    assert_eq!(c.user_data().messages.len(), 5);
    assert!(c.is_connected());
    broker.expect_silence(secs(1)).await;
}

/// With `keep_alive = 0` an idle `poll` sleeps until its own deadline and
/// no earlier: one wake-up per call, not a busy loop.
#[tokio::test(start_paused = true)]
async fn idle_poll_returns_at_its_deadline() {
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let config = Config {
        keep_alive_secs: 0,
        ..timed_config()
    };
    let mut c = client(io, config, buffers.slices());
    connect(&mut c, &mut broker, false).await;
    for n in [1, 250, 10_000] {
        let start = Instant::now();
        let handled = c.poll(MDuration::from_millis(n)).await.unwrap();
        assert_eq!(handled.packets, 0);
        assert_eq!(start.elapsed(), Duration::from_millis(n));
    }
}

/// Logs a streamed message as one, its payload gathered from its chunks.
fn gather(ctx: &mut minimqtt::Context<'_, Log>, s: &minimqtt::callbacks::Stream<'_>) {
    use minimqtt::callbacks::Part;
    let log = &mut ctx.user_data.messages;
    match s.part {
        Part::Start => log.push(common::fake::Pub {
            topic: s.topic.into(),
            payload: Vec::new(),
            qos: s.qos,
            dup: false,
            retain: false,
            packet_id: s.packet_id,
        }),
        Part::Chunk { data, .. } => log.last_mut().unwrap().payload.extend_from_slice(data),
        _ => {}
    }
}

/// A 40 KB message trickles in at 1 KB a second right after the
/// keep-alive PINGREQ, the broker's PINGRESP queued behind it. Streamed
/// or skipped, its bytes prove the broker alive: the PINGRESP is not
/// awaited past them, and the keep-alive's PINGREQs go on every 9 s
/// (keep-alive 10 s), never leaving a gap of 10 s (MQTT-3.1.2-23).
#[tokio::test(start_paused = true)]
async fn keep_alive_pings_go_on_while_a_long_message_trickles_in() {
    for streamed in [true, false] {
        let (io, mut broker) = pipe();
        let mut buffers = SmallBuffers::new();
        let config = Config {
            keep_alive_secs: 10,
            ..timed_config()
        };
        let mut c = client(io, config, buffers.slices());
        if streamed {
            c.callbacks_mut()
                .add_stream_callback("big", gather)
                .unwrap();
        }
        let start = Instant::now();
        connect(&mut c, &mut broker, false).await;
        let FakeBroker { mut rx, mut tx } = broker;
        let big = publish("big", &vec![7u8; 40_000], QoS::AtMostOnce, None);
        let (polled, pings, ()) = tokio::join!(
            poll_until(&mut c, start, secs(56)),
            async {
                let mut pings = Vec::new();
                while pings.len() < 6 {
                    match rx.try_recv(secs(20)).await {
                        Some(Ok(Rx::PingReq)) => pings.push(start.elapsed()),
                        other => panic!("{other:?} at {:?}", start.elapsed()),
                    }
                }
                pings
            },
            async {
                tokio::time::sleep(secs(9)).await;
                for chunk in big.chunks(1000) {
                    tx.send(chunk).await;
                    tokio::time::sleep(secs(1)).await;
                }
                tx.send(&PINGRESP).await;
            }
        );
        polled.unwrap();
        // 9 s, then every 9 s from the last: none answered before 49 s.
        assert_eq!(
            pings,
            [secs(9), secs(18), secs(27), secs(36), secs(45), secs(54)],
            "streamed: {streamed}"
        );
        let log = c.user_data();
        assert!(log.disconnected.is_empty(), "{:?}", log.disconnected);
        if streamed {
            assert_eq!(log.messages.len(), 1);
            assert_eq!(log.messages[0].payload, [7u8; 40_000]);
        } else {
            assert_eq!(log.dropped, [(big.len(), Some("big".into()))]);
        }
    }
}
