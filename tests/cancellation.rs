//! Cancel safety of every public `async fn` of the client: each future is
//! dropped at its first, second, ... N-th suspension (`.await` that
//! returned `Pending`), for every N until the call completes on its own,
//! and the client is then checked for consistency:
//!
//! - the next operations work (a PINGREQ / PINGRESP round trip, pending
//!   acknowledgements complete);
//! - the byte stream is not desynchronised: the fake broker decodes every
//!   byte the client wrote, and the stream ends between two packets;
//! - nothing is lost or doubled: a dropped `publish` sent its message once
//!   or not at all (and then it is not in the session either), a dropped
//!   `subscribe` subscribed once or not at all, incoming messages are
//!   delivered exactly once and acknowledged exactly once.
//!
//! Technique: [`cancel_after`] polls the call and counts its `Pending`s;
//! at the N-th it drops the future. The fake broker (an auto-answering
//! [`FakeBroker::serve_with`] task, which also pushes QoS 0/1/2 messages
//! at the client right after CONNACK) runs in its own task, so the client
//! is suspended at every kind of `.await`: reads, writes, flushes and
//! sleeps. Every case runs over three links: a roomy pipe, a pipe whose
//! every read, write and flush first returns `Pending` once, and a pipe
//! with one byte of room (one-byte partial writes and reads everywhere).
//! All on tokio's paused clock. The calls only MQTT 5 has run over an
//! MQTT 5 connection, against a broker end that decodes with `codec::v5`.
//!
//! # Which functions are cancel-safe
//!
//! Given a cancel-safe transport (as tokio's and embassy-net's sockets are,
//! and the fault-injecting one used here):
//!
//! | function | cancel-safe? | what a dropped call leaves |
//! |---|---|---|
//! | `poll` | yes | nothing lost; the next call goes on |
//! | `publish`, `try_publish` | yes | the message queued (sent once, tracked) or not queued at all; a QoS 0 message that was queued is sent, but its `on_publish` does not run |
//! | `publish_with` (MQTT 5) | yes | as `publish`, the message with all its properties; also while the broker's Receive Maximum keeps the window full |
//! | `wait_published` | yes | only the waiting |
//! | `subscribe`, `subscribe_many` | yes | subscribed (SUBACK reaches `on_subscribe` later) or not at all |
//! | `subscribe_with` (MQTT 5) | yes | likewise, with its options and Subscription Identifier |
//! | `unsubscribe`, `unsubscribe_many` | yes | likewise |
//! | `ping` | yes | the PINGREQ sent or not; the next `ping` waits for the outstanding one |
//! | `reauthenticate` (MQTT 5) | yes | the AUTH queued (the next call writes it; the exchange goes on through `on_auth`) or not at all; no AUTH deadline left behind |
//! | `disconnect` | yes, as documented | connected (dropped before DISCONNECT was queued) or disconnected with the DISCONNECT possibly half written and the transport still open: the next `connect` closes it first; `on_disconnect` does not run |
//! | `connect` | yes | connected (dropped after CONNACK), or a CONNECT sent or half sent: the next `connect` closes that transport and opens a new one (never a second CONNECT on one connection, MQTT-3.1.0-2) |
//! | `run_for` | yes | connected, or not connected; calling it again connects through a fresh transport |
//! | `publish_from` | no, as the README says | a QoS 1 message with `on_resend_payload` is finished by the next call; otherwise, dropped once its head is queued (written or not: see `publish_from_dropped_before_its_head_is_written_leaves_nothing_half_sent`), the next call ends the connection with `PayloadShort` |
//! | `Mailbox` requests | (the `try_*` do not wait) | a request the client took is sent once, even if the `poll` that took it is dropped |

mod common;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use common::fake::*;
use common::faults::{Faults, FaultyTransport};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embedded_io_adapters::tokio_1::FromTokio;
use minimqtt::callbacks::DisconnectReason;
use minimqtt::mailbox::Mailbox;
use minimqtt::reconnect::Backoff;
use minimqtt::time::Duration as MDuration;
use minimqtt::{Buffers, QoS, SubscribeReturnCode, Subscription};
use tokio::io::DuplexStream;
use tokio::task::JoinHandle;

type Faulty = FaultyTransport<Pipe>;
/// What a broker task read, packet by packet: [`Rx`], or `Rx5` on MQTT 5.
type Log<R = Rx> = Arc<Mutex<Vec<R>>>;
type Bufs = Buffers<256, 2304, 256>;

/// More suspensions than any call here needs: a call still pending after
/// this many is a livelock.
const MAX_POINTS: usize = 5_000;

const SETTLE: MDuration = MDuration::from_secs(1);

/// How the client's end of the pipe behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// 64 KiB each way.
    Roomy,
    /// Every read, write and flush returns `Pending` once first.
    Yielding,
    /// One byte of room each way, and yielding: every packet moves one
    /// byte per call.
    OneByte,
}

const LINKS: [Link; 3] = [Link::Roomy, Link::Yielding, Link::OneByte];

/// Polls `future` until it completes (`Some`) or has been suspended `n`
/// times; then drops it at that suspension point (`None`).
async fn cancel_after<F: Future>(n: usize, future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut suspended = 0;
    poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(v) => Poll::Ready(Some(v)),
        Poll::Pending => {
            suspended += 1;
            if suspended >= n {
                Poll::Ready(None)
            } else {
                Poll::Pending
            }
        }
    })
    .await
}

/// Messages the broker pushes right after CONNACK: one per QoS.
fn traffic() -> Vec<u8> {
    let mut bytes = publish("in/0", b"zero", QoS::AtMostOnce, None);
    bytes.extend(publish("in/1", b"one", QoS::AtLeastOnce, Some(101)));
    bytes.extend(publish("in/2", b"two", QoS::ExactlyOnce, Some(102)));
    bytes
}

/// A broker task serving one pipe.
struct Served<R = Rx> {
    log: Log<R>,
    task: JoinHandle<ReadEnd>,
}

/// A fresh pipe of kind `link`: the client's end, and the broker's.
fn faulty_pipe(link: Link) -> (Faulty, DuplexStream) {
    let capacity = if link == Link::OneByte {
        1
    } else {
        PIPE_CAPACITY
    };
    let (io, broker) = tokio::io::duplex(capacity);
    let (t, _) = FaultyTransport::with(
        FromTokio::new(io),
        Faults {
            yield_first: link != Link::Roomy,
            ..Faults::default()
        },
    );
    (t, broker)
}

/// A fresh pipe of kind `link`, with an auto-answering broker task.
fn serve_pipe(link: Link, after_connack: Vec<u8>) -> (Faulty, Served) {
    let (t, io) = faulty_pipe(link);
    let log = Log::default();
    let task = tokio::spawn(FakeBroker::new(io).serve_with(log.clone(), after_connack));
    (t, Served { log, task })
}

/// A transport whose other end is gone.
fn dead() -> Faulty {
    FaultyTransport::new(pipe().0).0
}

/// Closes the client's end (`on_disconnect(Requested)` runs if it was
/// connected) and collects what the broker read and how the stream ended.
async fn finish<R: Clone>(c: &mut TestClient<'_, Faulty>, served: Served<R>) -> (Vec<R>, ReadEnd) {
    c.abort();
    let end = within("broker end", served.task).await.unwrap();
    let log = served.log.lock().unwrap().clone();
    (log, end)
}

/// A connected client over a fresh `link`, and its broker.
async fn connected<'a>(link: Link, buffers: &'a mut Bufs) -> (TestClient<'a, Faulty>, Served) {
    let (t, served) = serve_pipe(link, traffic());
    let mut c = client(t, config(), buffers.slices());
    within("connect", c.connect()).await.expect("connect");
    (c, served)
}

/// Runs a ping round trip and a second of `poll`, so everything pending
/// completes; the client must still be connected.
async fn settle(c: &mut TestClient<'_, Faulty>) {
    assert!(c.is_connected(), "a dropped call disconnected the client");
    within("ping", c.ping())
        .await
        .expect("ping after a dropped call");
    within("poll", c.poll(SETTLE))
        .await
        .expect("poll after a dropped call");
    assert!(!c.session().ping_outstanding());
}

/// The broker's pushed messages were each delivered exactly once, and
/// acknowledged exactly once (PUBACK 101; PUBREC and PUBCOMP 102).
fn assert_traffic_once(c: &TestClient<'_, Faulty>, log: &[Rx]) {
    let mut got: Vec<_> = c
        .user_data()
        .messages
        .iter()
        .map(|m| m.topic.clone())
        .collect();
    got.sort();
    assert_eq!(got, ["in/0", "in/1", "in/2"], "deliveries");
    let count = |want: &Rx| log.iter().filter(|rx| *rx == want).count();
    assert_eq!(count(&Rx::PubAck(101)), 1, "PUBACK 101 in {log:?}");
    assert_eq!(count(&Rx::PubRec(102)), 1, "PUBREC 102 in {log:?}");
    assert_eq!(count(&Rx::PubComp(102)), 1, "PUBCOMP 102 in {log:?}");
    assert_eq!(c.session().incoming_pending(), 0);
}

fn count_publishes(log: &[Rx], payload: &[u8]) -> usize {
    log.iter()
        .filter(|rx| matches!(rx, Rx::Publish(p) if p.payload == payload))
        .count()
}

/// Drives `case(link, n)` for n = 1, 2, ... on each link until it reports
/// that the call completed without being dropped.
async fn every_cancel_point(mut case: impl AsyncFnMut(Link, usize) -> bool) {
    for link in LINKS {
        let mut n = 1;
        while !case(link, n).await {
            n += 1;
            assert!(n < MAX_POINTS, "{link:?}: never completes");
        }
        assert!(n > 1 || link == Link::Roomy, "{link:?}: never suspended");
    }
}

// ---------------------------------------------------------------------------

/// `poll` dropped at any point loses nothing: every message is delivered
/// and acknowledged exactly once by the calls that follow.
#[tokio::test(start_paused = true)]
async fn poll_is_cancel_safe() {
    every_cancel_point(async |link, n| {
        let mut buffers = Bufs::new();
        let (t, served) = serve_pipe(link, traffic());
        let mut c = client(t, config(), buffers.slices());
        // Connect without touching the pushed messages: they wait for poll.
        within("connect", c.connect()).await.unwrap();
        let done = cancel_after(n, c.poll(SETTLE)).await;
        if let Some(r) = &done {
            r.as_ref().expect("poll");
        }
        settle(&mut c).await;
        assert!(c.user_data().disconnected.is_empty());
        let (log, end) = finish(&mut c, served).await;
        assert_eq!(end, ReadEnd::Eof, "{link:?} n={n}");
        assert_traffic_once(&c, &log);
        done.is_some()
    })
    .await;
}

/// `publish` at each QoS dropped at any point: the message went out once
/// (and, QoS 1/2, completed with exactly one `on_publish`) or not at all.
#[tokio::test(start_paused = true)]
async fn publish_is_cancel_safe() {
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        every_cancel_point(async |link, n| {
            let mut buffers = Bufs::new();
            let (mut c, served) = connected(link, &mut buffers).await;
            let done = cancel_after(n, c.publish("out/t", b"payload", qos, false)).await;
            let id = done.map(|r| r.expect("publish"));
            settle(&mut c).await;
            let (log, end) = finish(&mut c, served).await;
            assert_eq!(end, ReadEnd::Eof, "{qos:?} {link:?} n={n}");
            let sent = count_publishes(&log, b"payload");
            assert!(sent <= 1, "{qos:?} {link:?} n={n}: sent {sent} times");
            let completed = c
                .user_data()
                .published
                .iter()
                .filter(|(t, _)| t == "out/t")
                .count();
            if let Some(id) = id {
                assert_eq!(sent, 1);
                assert_eq!(id.is_some(), qos != QoS::AtMostOnce);
                assert_eq!(completed, 1);
            } else {
                // Queued means sent and completed; not queued means neither.
                // (A QoS 0 message too: the session reports it once the
                // next call has written it.)
                assert_eq!(completed, sent, "{qos:?} {link:?} n={n}");
            }
            assert_eq!(c.session().inflight(), 0);
            assert_traffic_once(&c, &log);
            id.is_some()
        })
        .await;
    }
}

/// `try_publish` likewise, including when the window is full: a dropped
/// call either took a slot (and completes) or did not.
#[tokio::test(start_paused = true)]
async fn try_publish_is_cancel_safe() {
    every_cancel_point(async |link, n| {
        let mut buffers = Bufs::new();
        let (mut c, served) = connected(link, &mut buffers).await;
        let done = cancel_after(
            n,
            c.try_publish("out/t", b"payload", QoS::AtLeastOnce, true),
        )
        .await;
        let id = done.map(|r| r.expect("try_publish").expect("an id"));
        settle(&mut c).await;
        let (log, end) = finish(&mut c, served).await;
        assert_eq!(end, ReadEnd::Eof);
        let sent = count_publishes(&log, b"payload");
        assert!(sent <= 1);
        let ids: Vec<_> = c
            .user_data()
            .published
            .iter()
            .filter_map(|(_, id)| *id)
            .collect();
        assert_eq!(ids.len(), sent);
        if let Some(id) = id {
            assert_eq!(ids, [id]);
        }
        assert_traffic_once(&c, &log);
        id.is_some()
    })
    .await;
}

/// `publish` waiting for a free slot in a full window (INFLIGHT = 8), then
/// dropped: the window and the message are consistent afterwards.
#[tokio::test(start_paused = true)]
async fn publish_waiting_for_the_window_is_cancel_safe() {
    every_cancel_point(async |link, n| {
        let mut buffers = Bufs::new();
        let (mut c, served) = connected(link, &mut buffers).await;
        for i in 0..8u8 {
            within("fill", c.try_publish("fill", &[i], QoS::AtLeastOnce, false))
                .await
                .unwrap();
        }
        let done = cancel_after(n, c.publish("out/t", b"payload", QoS::ExactlyOnce, false)).await;
        let id = done.map(|r| r.expect("publish"));
        settle(&mut c).await;
        let (log, end) = finish(&mut c, served).await;
        assert_eq!(end, ReadEnd::Eof);
        let sent = count_publishes(&log, b"payload");
        assert!(sent <= 1);
        assert_eq!(c.user_data().published.len(), 8 + sent);
        if id.is_some() {
            assert_eq!(sent, 1);
        }
        assert_eq!(c.session().inflight(), 0);
        id.is_some()
    })
    .await;
}

/// `wait_published` dropped at any point: waiting again completes, and
/// `on_publish` ran exactly once.
#[tokio::test(start_paused = true)]
async fn wait_published_is_cancel_safe() {
    every_cancel_point(async |link, n| {
        let mut buffers = Bufs::new();
        let (mut c, served) = connected(link, &mut buffers).await;
        let id = within(
            "publish",
            c.publish("out/t", b"payload", QoS::ExactlyOnce, false),
        )
        .await
        .unwrap()
        .unwrap();
        let done = cancel_after(n, c.wait_published(id)).await;
        if let Some(r) = &done {
            r.as_ref().expect("wait_published");
        }
        within("wait again", c.wait_published(id)).await.unwrap();
        settle(&mut c).await;
        let (log, end) = finish(&mut c, served).await;
        assert_eq!(end, ReadEnd::Eof);
        assert_eq!(count_publishes(&log, b"payload"), 1);
        assert_eq!(c.user_data().published, [("out/t".to_owned(), Some(id))]);
        assert_traffic_once(&c, &log);
        done.is_some()
    })
    .await;
}

/// `subscribe` and `subscribe_many` dropped at any point: subscribed once
/// (SUBACK reported to `on_subscribe`, filters in the list) or not at
/// all; a later `subscribe` gets its own granted codes, not the dropped
/// call's.
#[tokio::test(start_paused = true)]
async fn subscribe_is_cancel_safe() {
    const MANY: [Subscription<'static>; 2] = [
        Subscription {
            filter: "sub/a",
            qos: QoS::AtLeastOnce,
        },
        Subscription {
            filter: "sub/b",
            qos: QoS::AtMostOnce,
        },
    ];
    for many in [false, true] {
        every_cancel_point(async |link, n| {
            let mut buffers = Bufs::new();
            let (mut c, served) = connected(link, &mut buffers).await;
            let filters = if many { &MANY[..] } else { &MANY[..1] };
            let done = if many {
                cancel_after(n, c.subscribe_many(filters))
                    .await
                    .map(|r| r.expect("subscribe_many").to_vec())
            } else {
                cancel_after(n, c.subscribe("sub/a", QoS::AtLeastOnce))
                    .await
                    .map(|r| vec![r.expect("subscribe")])
            };
            // A later subscribe is not confused by the dropped one's SUBACK.
            let other = within("other", c.subscribe("other", QoS::ExactlyOnce))
                .await
                .unwrap();
            assert_eq!(other, SubscribeReturnCode::Success(QoS::ExactlyOnce));
            settle(&mut c).await;
            let (log, end) = finish(&mut c, served).await;
            assert_eq!(end, ReadEnd::Eof, "many={many} {link:?} n={n}");
            let sent = log
                .iter()
                .filter(|rx| matches!(rx, Rx::Subscribe { filters, .. } if filters[0].0 == "sub/a"))
                .count();
            assert!(sent <= 1);
            let listed = c
                .session()
                .subscriptions()
                .filter(|(f, _)| f.starts_with("sub/"))
                .count();
            assert_eq!(listed, sent * filters.len());
            let reported = c
                .user_data()
                .subscribed
                .iter()
                .filter(|s| s.0.starts_with("sub/"))
                .count();
            assert_eq!(reported, sent * filters.len());
            if let Some(granted) = &done {
                assert_eq!(sent, 1);
                let want: Vec<_> = filters
                    .iter()
                    .map(|s| SubscribeReturnCode::Success(s.qos))
                    .collect();
                assert_eq!(granted, &want);
            }
            assert_traffic_once(&c, &log);
            done.is_some()
        })
        .await;
    }
}

/// `unsubscribe` and `unsubscribe_many` dropped at any point: the filters
/// left the list and the UNSUBSCRIBE went out once (reported to
/// `on_unsubscribe`), or nothing happened.
#[tokio::test(start_paused = true)]
async fn unsubscribe_is_cancel_safe() {
    for many in [false, true] {
        every_cancel_point(async |link, n| {
            let mut buffers = Bufs::new();
            let (mut c, served) = connected(link, &mut buffers).await;
            let subs = [
                Subscription {
                    filter: "u/a",
                    qos: QoS::AtLeastOnce,
                },
                Subscription {
                    filter: "u/b",
                    qos: QoS::ExactlyOnce,
                },
            ];
            within("subscribe", c.subscribe_many(&subs)).await.unwrap();
            let filters: &[&str] = if many { &["u/a", "u/b"] } else { &["u/a"] };
            let done = if many {
                cancel_after(n, c.unsubscribe_many(filters)).await
            } else {
                cancel_after(n, c.unsubscribe("u/a")).await
            };
            let id = done.map(|r| r.expect("unsubscribe"));
            settle(&mut c).await;
            let (log, end) = finish(&mut c, served).await;
            assert_eq!(end, ReadEnd::Eof, "many={many} {link:?} n={n}");
            let sent: Vec<u16> = log
                .iter()
                .filter_map(|rx| match rx {
                    Rx::Unsubscribe { packet_id, .. } => Some(*packet_id),
                    _ => None,
                })
                .collect();
            assert!(sent.len() <= 1);
            let left: Vec<_> = c
                .session()
                .subscriptions()
                .map(|(f, _)| f.to_owned())
                .collect();
            assert_eq!(left.len(), 2 - sent.len() * filters.len(), "{left:?}");
            assert_eq!(c.user_data().unsubscribed.len(), sent.len() * filters.len());
            if let Some(id) = id {
                assert_eq!(sent, [id]);
            }
            assert_traffic_once(&c, &log);
            id.is_some()
        })
        .await;
    }
}

/// `ping` dropped at any point: the next `ping` completes (waiting for the
/// outstanding PINGRESP if the PINGREQ went out), nothing is doubled
/// beyond one PINGREQ per call.
#[tokio::test(start_paused = true)]
async fn ping_is_cancel_safe() {
    every_cancel_point(async |link, n| {
        let mut buffers = Bufs::new();
        let (mut c, served) = connected(link, &mut buffers).await;
        let done = cancel_after(n, c.ping()).await;
        if let Some(r) = &done {
            r.as_ref().expect("ping");
        }
        settle(&mut c).await;
        let (log, end) = finish(&mut c, served).await;
        assert_eq!(end, ReadEnd::Eof);
        let pings = log.iter().filter(|rx| **rx == Rx::PingReq).count();
        assert!((1..=2).contains(&pings), "{pings} PINGREQs");
        assert_traffic_once(&c, &log);
        done.is_some()
    })
    .await;
}

/// `disconnect` dropped at any point: either still connected (dropped
/// before DISCONNECT was queued) and fully usable, or disconnected with
/// the DISCONNECT written whole, in part or not at all; `connect` on a
/// fresh transport then works. A completed `disconnect` wrote the whole
/// DISCONNECT and ran `on_disconnect(Requested)`.
#[tokio::test(start_paused = true)]
async fn disconnect_is_cancel_safe() {
    every_cancel_point(async |link, n| {
        let mut buffers = Bufs::new();
        let (mut c, served) = connected(link, &mut buffers).await;
        let done = cancel_after(n, c.disconnect()).await;
        if let Some(r) = &done {
            r.as_ref().expect("disconnect");
        }
        if c.is_connected() {
            assert!(done.is_none());
            settle(&mut c).await;
            let (log, end) = finish(&mut c, served).await;
            assert_eq!(end, ReadEnd::Eof);
            assert!(!log.contains(&Rx::Disconnect));
            return false;
        }
        let (log, end) = finish(&mut c, served).await;
        assert!(!matches!(end, ReadEnd::Malformed(_)), "{end:?}");
        let sent = log.iter().filter(|rx| **rx == Rx::Disconnect).count();
        assert!(sent <= 1);
        if done.is_some() {
            assert_eq!((sent, &end), (1, &ReadEnd::Eof));
            assert_eq!(c.user_data().disconnected, [DisconnectReason::Requested]);
        }
        // A fresh transport: connect works again.
        let (t, again) = serve_pipe(link, Vec::new());
        c.connector_mut().push(t);
        within("connect", c.connect())
            .await
            .expect("connect after disconnect");
        settle(&mut c).await;
        let (log, end) = finish(&mut c, again).await;
        assert_eq!(end, ReadEnd::Eof);
        assert!(matches!(log[0], Rx::Connect { .. }));
        done.is_some()
    })
    .await;
}

/// `connect` dropped at any point: connected (dropped after CONNACK) and
/// usable, or not connected, in which case `connect` on a fresh transport
/// works. The abandoned stream holds at most one CONNECT, never garbage.
#[tokio::test(start_paused = true)]
async fn connect_is_cancel_safe() {
    every_cancel_point(async |link, n| {
        let mut buffers = Bufs::new();
        let (t, first) = serve_pipe(link, traffic());
        let mut c = client(t, config(), buffers.slices());
        let done = cancel_after(n, c.connect()).await;
        if let Some(r) = &done {
            r.as_ref().expect("connect");
        }
        let served = if c.is_connected() {
            first
        } else {
            assert!(done.is_none());
            assert!(c.user_data().connected.is_empty());
            // Not on the same stream: that would be a second CONNECT. The
            // next `connect` closes it and opens the next one.
            let (t, second) = serve_pipe(link, traffic());
            c.connector_mut().push(t);
            within("connect again", c.connect())
                .await
                .expect("connect again");
            let end = within("first broker", first.task).await.unwrap();
            assert!(!matches!(end, ReadEnd::Malformed(_)), "{end:?}");
            let log = first.log.lock().unwrap().clone();
            assert!(log.len() <= 1 && log.iter().all(|rx| matches!(rx, Rx::Connect { .. })));
            second
        };
        assert_eq!(c.user_data().connected.len(), 1);
        settle(&mut c).await;
        let (log, end) = finish(&mut c, served).await;
        assert_eq!(end, ReadEnd::Eof, "{link:?} n={n}");
        assert_eq!(
            log.iter()
                .filter(|rx| matches!(rx, Rx::Connect { .. }))
                .count(),
            1
        );
        assert_traffic_once(&c, &log);
        done.is_some()
    })
    .await;
}

/// `run_for` dropped at any point (while opening a transport, sleeping
/// after the failed first attempt, connecting, or running): calling it
/// again connects, and the connection it makes is fully usable.
#[tokio::test(start_paused = true)]
async fn run_for_is_cancel_safe() {
    every_cancel_point(async |link, n| {
        let mut buffers = Bufs::new();
        let mut cfg = config();
        cfg.backoff = Backoff::new(MDuration::from_secs(1), MDuration::from_secs(8));
        // The first attempt fails (the broker is gone), so `run_for` also
        // sleeps out the backoff before the second.
        let mut c = client(dead(), cfg, buffers.slices());
        let mut served = Vec::new();
        for _ in 0..4 {
            let (t, s) = serve_pipe(link, traffic());
            c.connector_mut().push(t);
            served.push(s);
        }
        let done = cancel_after(n, c.run_for(MDuration::from_secs(5))).await;
        if let Some(r) = &done {
            r.as_ref().expect("run_for");
        }
        while !c.is_connected() {
            within("run_for again", c.run_for(MDuration::from_secs(1)))
                .await
                .expect("run_for again");
        }
        settle(&mut c).await;
        // The first transport opened was the dead one.
        let current = c.connector_mut().opened() - 2;
        c.connector_mut().clear();
        let last = served.remove(current);
        let (log, end) = finish(&mut c, last).await;
        assert_eq!(end, ReadEnd::Eof);
        assert_traffic_once(&c, &log);
        for earlier in served {
            let end = within("earlier", earlier.task).await.unwrap();
            assert!(!matches!(end, ReadEnd::Malformed(_)), "{end:?}");
        }
        done.is_some()
    })
    .await;
}

/// `run`, which never returns on its own, dropped at any point on its way
/// to a connection that has handled the broker's traffic: the next call
/// (`run_for`) carries on, and nothing is lost or doubled. Its drop points
/// are counted until one finds the traffic all handled.
#[tokio::test(start_paused = true)]
async fn run_is_cancel_safe() {
    every_cancel_point(async |link, n| {
        let mut buffers = Bufs::new();
        let (t, served) = serve_pipe(link, traffic());
        let mut c = client(t, config(), buffers.slices());
        let done = cancel_after(n, c.run()).await;
        assert!(done.is_none(), "run returned {done:?}");
        let handled = c.user_data().messages.len() == 3 && c.session().incoming_pending() == 0;
        while !c.is_connected() {
            within("run_for", c.run_for(MDuration::from_secs(1)))
                .await
                .expect("run_for after a dropped run");
        }
        settle(&mut c).await;
        let (log, end) = finish(&mut c, served).await;
        assert_eq!(end, ReadEnd::Eof, "{link:?} n={n}");
        assert_traffic_once(&c, &log);
        handled
    })
    .await;
}

/// Many dropped calls in a row, of every kind, on one connection, then
/// normal use: the stream stays in sync and every message is accounted for.
#[tokio::test(start_paused = true)]
async fn a_storm_of_dropped_calls_leaves_the_client_consistent() {
    for link in LINKS {
        let mut buffers = Bufs::new();
        let (mut c, served) = connected(link, &mut buffers).await;
        for round in 0..40usize {
            let n = 1 + round % 7;
            let payload = [round as u8; 3];
            match round % 6 {
                0 => drop(
                    cancel_after(n, c.publish("storm", &payload, QoS::AtLeastOnce, false)).await,
                ),
                1 => drop(
                    cancel_after(n, c.publish("storm", &payload, QoS::ExactlyOnce, false)).await,
                ),
                2 => drop(cancel_after(n, c.poll(MDuration::from_millis(5))).await),
                3 => drop(cancel_after(n, c.ping()).await),
                4 => drop(cancel_after(n, c.subscribe("storm/#", QoS::AtLeastOnce)).await),
                _ => drop(cancel_after(n, c.unsubscribe("storm/#")).await),
            }
            assert!(c.is_connected(), "{link:?} round {round}");
        }
        settle(&mut c).await;
        within("poll", c.poll(MDuration::from_secs(30)))
            .await
            .unwrap();
        assert!(c.user_data().disconnected.is_empty());
        let (log, end) = finish(&mut c, served).await;
        assert_eq!(end, ReadEnd::Eof, "{link:?}");
        // Every PUBLISH the broker got completed once, with its own id.
        let sent: Vec<u16> = log
            .iter()
            .filter_map(|rx| match rx {
                Rx::Publish(p) => p.packet_id,
                _ => None,
            })
            .collect();
        let mut done: Vec<u16> = c
            .user_data()
            .published
            .iter()
            .filter_map(|(_, id)| *id)
            .collect();
        let mut sorted = sent.clone();
        sorted.sort_unstable();
        done.sort_unstable();
        assert_eq!(done, sorted, "{link:?}");
        assert_eq!(c.session().inflight(), 0);
        assert_traffic_once(&c, &log);
    }
}

/// Requests another task queued in an attached [`Mailbox`], taken by a
/// `poll` dropped at any point: each goes out exactly once (none lost in
/// the hand-over from mailbox to outbox to session), and its result
/// reaches the callbacks once.
#[tokio::test(start_paused = true)]
async fn mailbox_requests_survive_dropped_calls() {
    every_cancel_point(async |link, n| {
        let mailbox: Mailbox<NoopRawMutex, 256> = Mailbox::new();
        let mut buffers = Bufs::new();
        let (mut c, served) = connected(link, &mut buffers).await;
        c.attach(&mailbox);
        mailbox
            .try_publish("mb/0", b"mb-zero", QoS::AtMostOnce, false)
            .unwrap();
        mailbox
            .try_publish("mb/1", b"mb-one", QoS::AtLeastOnce, false)
            .unwrap();
        mailbox
            .try_publish("mb/2", b"mb-two", QoS::ExactlyOnce, false)
            .unwrap();
        mailbox.try_subscribe("mb/#", QoS::AtLeastOnce).unwrap();
        mailbox.try_unsubscribe("mb/x").unwrap();
        let done = cancel_after(n, c.poll(SETTLE)).await;
        if let Some(r) = &done {
            r.as_ref().expect("poll");
        }
        settle(&mut c).await;
        assert!(mailbox.is_empty(), "{link:?} n={n}");
        let (log, end) = finish(&mut c, served).await;
        assert_eq!(end, ReadEnd::Eof, "{link:?} n={n}");
        for payload in [&b"mb-zero"[..], b"mb-one", b"mb-two"] {
            assert_eq!(count_publishes(&log, payload), 1, "{link:?} n={n}: {log:?}");
        }
        let mut published: Vec<_> = c
            .user_data()
            .published
            .iter()
            .map(|(t, _)| t.as_str())
            .collect();
        published.sort_unstable();
        assert_eq!(published, ["mb/0", "mb/1", "mb/2"], "{link:?} n={n}");
        let subscribes = log
            .iter()
            .filter(|rx| matches!(rx, Rx::Subscribe { filters, .. } if filters[0].0 == "mb/#"))
            .count();
        let unsubscribes = log
            .iter()
            .filter(|rx| matches!(rx, Rx::Unsubscribe { filters, .. } if filters[0] == "mb/x"))
            .count();
        assert_eq!((subscribes, unsubscribes), (1, 1), "{link:?} n={n}");
        assert_eq!(c.user_data().subscribed.len(), 1);
        assert_eq!(c.user_data().unsubscribed.len(), 1);
        assert_eq!(c.session().inflight(), 0);
        assert_traffic_once(&c, &log);
        done.is_some()
    })
    .await;
}

/// The payload `publish_from` streams: [`STREAMED`] bytes of a pattern,
/// more than the 256-byte transmit window, so it goes out in pieces.
#[cfg(feature = "streaming")]
fn streamed_byte(i: usize) -> u8 {
    (i % 251) as u8
}

#[cfg(feature = "streaming")]
const STREAMED: usize = 600;

/// `on_resend_payload`: the rest of the streamed payload.
#[cfg(feature = "streaming")]
fn resend_streamed(
    _: &mut common::fake::Log,
    req: &minimqtt::callbacks::PayloadRequest<'_>,
    buf: &mut [u8],
) -> usize {
    let n = buf.len().min(req.len - req.offset);
    for (i, b) in buf[..n].iter_mut().enumerate() {
        *b = streamed_byte(req.offset + i);
    }
    n
}

/// `publish_from`, the one call that is not cancel-safe, dropped at any
/// point: what the README promises instead. A QoS 1 message (with
/// `on_resend_payload`) is finished by the next call: sent once and
/// whole, or not at all, on a connection that goes on. A QoS 0 message
/// (nothing can resend it) is sent whole, or, dropped once queued, the
/// next call ends the connection with `PayloadShort` (the stream ends
/// mid-packet, never desynchronised) and `run_for` connects again.
#[cfg(feature = "streaming")]
#[tokio::test(start_paused = true)]
async fn publish_from_is_finished_or_ends_the_connection() {
    use minimqtt::Error;
    let payload: Vec<u8> = (0..STREAMED).map(streamed_byte).collect();
    for qos in [QoS::AtLeastOnce, QoS::AtMostOnce] {
        every_cancel_point(async |link, n| {
            let mut buffers = Bufs::new();
            let (t, served) = serve_pipe(link, traffic());
            let mut c = minimqtt::Client::new(
                Queue::with(t),
                minimqtt::time::TokioClock::new(),
                config(),
                buffers.slices(),
                recording_callbacks().on_resend_payload(resend_streamed),
                common::fake::Log::default(),
            );
            within("connect", c.connect()).await.expect("connect");
            let mut source: &[u8] = &payload;
            let done = cancel_after(
                n,
                c.publish_from("out/big", STREAMED, qos, false, &mut source),
            )
            .await;
            let id = done.map(|r| r.expect("publish_from"));
            let next = within("ping", c.ping()).await;
            let (log, end) = if let Err(e) = next {
                // Only a QoS 0 message begun and dropped ends the connection.
                assert!(
                    matches!(e, Error::PayloadShort),
                    "{qos:?} {link:?} n={n}: {e:?}"
                );
                assert_eq!(qos, QoS::AtMostOnce);
                assert!(id.is_none());
                assert!(!c.is_connected());
                assert_eq!(c.user_data().disconnected, [DisconnectReason::PayloadShort]);
                let end = within("broker end", served.task).await.unwrap();
                assert!(
                    matches!(end, ReadEnd::EofMidPacket { .. } | ReadEnd::Eof),
                    "{link:?} n={n}: {end:?}"
                );
                let log = served.log.lock().unwrap().clone();
                assert_eq!(count_publishes(&log, &payload), 0);
                // `run_for` connects again, on a fresh transport.
                let (t, again) = serve_pipe(link, Vec::new());
                c.connector_mut().push(t);
                within("run_for", c.run_for(MDuration::from_secs(5)))
                    .await
                    .expect("run_for after PayloadShort");
                assert!(c.is_connected());
                settle(&mut c).await;
                let (after, end) = finish(&mut c, again).await;
                assert_eq!(end, ReadEnd::Eof);
                assert_eq!(count_publishes(&after, &payload), 0);
                assert!(c.user_data().published.is_empty());
                return done.is_some();
            } else {
                settle(&mut c).await;
                assert!(c.user_data().disconnected.is_empty());
                finish(&mut c, served).await
            };
            assert_eq!(end, ReadEnd::Eof, "{qos:?} {link:?} n={n}");
            let sent = count_publishes(&log, &payload);
            assert!(sent <= 1, "{qos:?} {link:?} n={n}: sent {sent} times");
            let completed = c
                .user_data()
                .published
                .iter()
                .filter(|(t, _)| t == "out/big")
                .count();
            assert_eq!(completed, sent, "{qos:?} {link:?} n={n}");
            if let Some(id) = id {
                assert_eq!(sent, 1);
                assert_eq!(id.is_some(), qos != QoS::AtMostOnce);
            }
            assert_eq!(c.session().inflight(), 0);
            assert_traffic_once(&c, &log);
            id.is_some()
        })
        .await;
    }
}

/// `publish_from` queues its head before its first suspension: dropped
/// there (a write that returned `Pending`, not one byte of the PUBLISH on
/// the wire), the packet is begun all the same, as its docs say. With
/// nothing to supply the payload (QoS 0, or no `on_resend_payload`), the
/// next call writes the head, ends the connection with `PayloadShort`
/// and tells `on_disconnect` once; the broker reads the head cut short.
#[cfg(feature = "streaming")]
#[tokio::test(start_paused = true)]
async fn publish_from_dropped_at_its_first_suspension_has_begun_its_packet() {
    let payload: Vec<u8> = (0..STREAMED).map(streamed_byte).collect();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let mut buffers = Bufs::new();
        let (io, broker) = tokio::io::duplex(PIPE_CAPACITY);
        let (t, faults) = FaultyTransport::with(
            FromTokio::new(io),
            Faults {
                yield_first: true,
                ..Faults::default()
            },
        );
        let log = Log::default();
        let task = tokio::spawn(FakeBroker::new(broker).serve_with(log.clone(), Vec::new()));
        let served = Served { log, task };
        let mut c = client(t, config(), buffers.slices());
        within("connect", c.connect()).await.expect("connect");
        settle(&mut c).await;
        let written = faults.written();
        let mut source: &[u8] = &payload;
        let done = cancel_after(
            1,
            c.publish_from("out/big", STREAMED, qos, false, &mut source),
        )
        .await;
        assert!(done.is_none());
        assert_eq!(faults.written(), written, "{qos:?}: a byte was written");
        let next = within("ping", c.ping()).await;
        assert!(
            matches!(next, Err(minimqtt::Error::PayloadShort)),
            "{qos:?}: {next:?}"
        );
        assert_eq!(
            c.user_data().disconnected,
            [DisconnectReason::PayloadShort],
            "{qos:?}"
        );
        let (log, end) = finish(&mut c, served).await;
        // The head, cut short where the payload should follow.
        assert!(
            !log.iter().any(|rx| matches!(rx, Rx::Publish(_)))
                && matches!(end, ReadEnd::EofMidPacket { .. }),
            "{qos:?}: the broker read {log:?}, then {end:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// MQTT 5: the same cases over an MQTT 5 connection, with a broker end that
// decodes with `codec::v5` (the 3.1.1 fake broker would reject the
// properties), for the calls only MQTT 5 has.

#[cfg(feature = "v5")]
mod mqtt5 {
    use super::*;
    use minimqtt::codec::DecodeError;
    use minimqtt::codec::v5::{
        self, Packet, Properties, Property, ReasonCode, ReasonCodes, RetainHandling,
        SubscriptionOptions,
    };
    use minimqtt::session::Version;
    use minimqtt::time::TokioClock;
    use minimqtt::{Client, Config, Context};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A packet the MQTT 5 broker read: as [`Rx`], with what MQTT 5 adds
    /// in `Debug` form (each property, and each filter's options); or an
    /// AUTH (reason code, Authentication Data); or a packet only a server
    /// may send.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) enum Rx5 {
        Packet(Rx, Vec<String>),
        Auth(ReasonCode, Option<Vec<u8>>),
        ServerOnly(v5::PacketType),
    }

    fn debug_all<T: std::fmt::Debug>(items: impl IntoIterator<Item = T>) -> Vec<String> {
        items.into_iter().map(|i| format!("{i:?}")).collect()
    }

    fn rx5(packet: &Packet<'_>) -> Rx5 {
        let plain = |rx, props: &Properties<'_>| Rx5::Packet(rx, debug_all(props.iter()));
        match *packet {
            Packet::Connect(c) => plain(
                Rx::Connect {
                    client_id: c.client_id.to_owned(),
                    clean_session: c.clean_start,
                    keep_alive: c.keep_alive,
                },
                &c.properties,
            ),
            Packet::Publish(p) => plain(
                Rx::Publish(Pub {
                    topic: p.topic.to_owned(),
                    payload: p.payload.to_vec(),
                    qos: p.qos,
                    dup: p.dup,
                    retain: p.retain,
                    packet_id: p.packet_id,
                }),
                &p.properties,
            ),
            Packet::PubAck(a) => plain(Rx::PubAck(a.packet_id), &a.properties),
            Packet::PubRec(a) => plain(Rx::PubRec(a.packet_id), &a.properties),
            Packet::PubRel(a) => plain(Rx::PubRel(a.packet_id), &a.properties),
            Packet::PubComp(a) => plain(Rx::PubComp(a.packet_id), &a.properties),
            Packet::Subscribe(s) => {
                let mut extra = debug_all(s.properties.iter());
                extra.extend(debug_all(s.filters.iter().map(|f| f.options)));
                let filters = s
                    .filters
                    .iter()
                    .map(|f| (f.filter.to_owned(), f.options.qos))
                    .collect();
                let rx = Rx::Subscribe {
                    packet_id: s.packet_id,
                    filters,
                };
                Rx5::Packet(rx, extra)
            }
            Packet::Unsubscribe(u) => plain(
                Rx::Unsubscribe {
                    packet_id: u.packet_id,
                    filters: u.filters.iter().map(str::to_owned).collect(),
                },
                &u.properties,
            ),
            Packet::PingReq => Rx5::Packet(Rx::PingReq, Vec::new()),
            Packet::Disconnect(d) => plain(Rx::Disconnect, &d.properties),
            Packet::Auth(a) => Rx5::Auth(
                a.reason_code,
                a.properties.authentication_data().map(<[u8]>::to_vec),
            ),
            ref other => Rx5::ServerOnly(other.packet_type()),
        }
    }

    /// The packets of an MQTT 5 log that MQTT 3.1.1 has too, for the
    /// checks shared with the 3.1.1 cases; a packet only a server may
    /// send is a failure.
    fn plain(log: &[Rx5]) -> Vec<Rx> {
        log.iter()
            .filter_map(|rx| match rx {
                Rx5::Packet(rx, _) => Some(rx.clone()),
                Rx5::Auth(..) => None,
                Rx5::ServerOnly(t) => panic!("the client sent a {t:?}"),
            })
            .collect()
    }

    fn encode(packet: Packet<'_>) -> Vec<u8> {
        let mut out = vec![0u8; packet.encoded_len()];
        let n = packet.encode(&mut out).expect("a valid MQTT 5 packet");
        out.truncate(n);
        out
    }

    /// An accepting CONNACK (no session) with these properties.
    fn connack5(properties: &[Property<'_>]) -> Vec<u8> {
        encode(Packet::ConnAck(v5::ConnAck {
            session_present: false,
            reason_code: ReasonCode::Success,
            properties: Properties::new(properties),
        }))
    }

    fn publish5(topic: &str, payload: &[u8], qos: QoS, packet_id: Option<u16>) -> Vec<u8> {
        let mut p = v5::Publish::new(topic, payload, qos, false);
        p.packet_id = packet_id;
        encode(Packet::Publish(p))
    }

    /// [`traffic`] in MQTT 5.
    fn traffic5() -> Vec<u8> {
        let mut bytes = publish5("in/0", b"zero", QoS::AtMostOnce, None);
        bytes.extend(publish5("in/1", b"one", QoS::AtLeastOnce, Some(101)));
        bytes.extend(publish5("in/2", b"two", QoS::ExactlyOnce, Some(102)));
        bytes
    }

    /// What a well-behaved MQTT 5 broker answers to `packet`: `greeting`
    /// (the CONNACK, then messages) to CONNECT, SUBACK granting the
    /// requested QoS, UNSUBACK, PUBACK / PUBREC to QoS 1 / 2 PUBLISH,
    /// PUBREL to PUBREC, PUBCOMP to PUBREL, PINGRESP; a re-authentication
    /// gets one Continue Authentication (data `challenge`), and the
    /// client's answer an AUTH of reason Success.
    fn answer5(packet: &Packet<'_>, greeting: &mut Option<Vec<u8>>) -> Vec<u8> {
        let ack = |packet_id| (packet_id, ReasonCode::Success, Properties::new(&[]));
        match *packet {
            Packet::Connect(_) => greeting.take().expect("one CONNECT per connection"),
            Packet::Subscribe(s) => {
                let codes: Vec<_> = s
                    .filters
                    .iter()
                    .map(|f| ReasonCode::from_u8(f.options.qos as u8).unwrap())
                    .collect();
                encode(Packet::SubAck(v5::SubAck {
                    packet_id: s.packet_id,
                    properties: Properties::new(&[]),
                    reason_codes: ReasonCodes::new(&codes),
                }))
            }
            Packet::Unsubscribe(u) => {
                let codes = vec![ReasonCode::Success; u.filters.iter().count()];
                encode(Packet::UnsubAck(v5::UnsubAck {
                    packet_id: u.packet_id,
                    properties: Properties::new(&[]),
                    reason_codes: ReasonCodes::new(&codes),
                }))
            }
            Packet::Publish(p) if p.qos != QoS::AtMostOnce => {
                let (packet_id, reason_code, properties) = ack(p.packet_id.unwrap());
                encode(if p.qos == QoS::AtLeastOnce {
                    Packet::PubAck(v5::PubAck {
                        packet_id,
                        reason_code,
                        properties,
                    })
                } else {
                    Packet::PubRec(v5::PubRec {
                        packet_id,
                        reason_code,
                        properties,
                    })
                })
            }
            Packet::PubRec(a) => {
                let (packet_id, reason_code, properties) = ack(a.packet_id);
                encode(Packet::PubRel(v5::PubRel {
                    packet_id,
                    reason_code,
                    properties,
                }))
            }
            Packet::PubRel(a) => {
                let (packet_id, reason_code, properties) = ack(a.packet_id);
                encode(Packet::PubComp(v5::PubComp {
                    packet_id,
                    reason_code,
                    properties,
                }))
            }
            Packet::PingReq => encode(Packet::PingResp),
            Packet::Auth(a) => {
                let method = a.properties.authentication_method().unwrap_or_default();
                let (reason_code, data): (_, &[u8]) = match a.reason_code {
                    ReasonCode::ReAuthenticate => {
                        (ReasonCode::ContinueAuthentication, b"challenge")
                    }
                    _ => (ReasonCode::Success, b"done"),
                };
                encode(Packet::Auth(v5::Auth {
                    reason_code,
                    properties: Properties::new(&[
                        Property::AuthenticationMethod(method),
                        Property::AuthenticationData(data),
                    ]),
                }))
            }
            _ => Vec::new(),
        }
    }

    /// [`FakeBroker::serve_with`] for MQTT 5: reads what the client
    /// writes, decodes it with `codec::v5` into `log`, and answers it
    /// ([`answer5`]) until the stream ends; returns how it ended.
    async fn serve5(io: DuplexStream, log: Log<Rx5>, greeting: Vec<u8>) -> ReadEnd {
        let (mut rd, mut wr) = tokio::io::split(io);
        let (out, mut queue) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let writer = async move {
            while let Some(bytes) = queue.recv().await {
                if wr.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        };
        let reader = async move {
            let mut greeting = Some(greeting);
            let mut buf = Vec::new();
            loop {
                match Packet::decode(&buf) {
                    Ok((packet, len)) => {
                        log.lock().unwrap().push(rx5(&packet));
                        let answer = answer5(&packet, &mut greeting);
                        buf.drain(..len);
                        if !answer.is_empty() {
                            let _ = out.send(answer);
                        }
                        continue;
                    }
                    Err(DecodeError::Incomplete { .. }) => {}
                    Err(e) => return ReadEnd::Malformed(e),
                }
                let mut chunk = [0u8; 4096];
                let n = rd.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return if buf.is_empty() {
                        ReadEnd::Eof
                    } else {
                        ReadEnd::EofMidPacket { partial: buf.len() }
                    };
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        };
        let (end, ()) = tokio::join!(reader, writer);
        end
    }

    /// A fresh pipe of kind `link`, with an auto-answering MQTT 5 broker
    /// task that greets a CONNECT with `greeting`.
    fn serve_pipe5(link: Link, greeting: Vec<u8>) -> (Faulty, Served<Rx5>) {
        let (t, io) = faulty_pipe(link);
        let log = Log::default();
        let task = tokio::spawn(serve5(io, log.clone(), greeting));
        (t, Served { log, task })
    }

    const METHOD: &str = "SCRAM-SHA-1";

    /// `on_auth`: answers the broker's Continue Authentication.
    fn on_auth(ctx: &mut Context<'_, common::fake::Log>, auth: &v5::Auth<'_>) {
        if auth.reason_code == ReasonCode::ContinueAuthentication {
            ctx.auth(b"client-final")
                .expect("outbox room for the answer");
        }
    }

    /// A connected MQTT 5 client (CONNECT properties `connect`, CONNACK
    /// properties `connack`, the recording callbacks and [`on_auth`]) over
    /// a fresh `link`, and its broker, which pushes [`traffic5`].
    async fn connected5<'a>(
        link: Link,
        buffers: &'a mut Bufs,
        connect: &'static [Property<'static>],
        connack: &[Property<'_>],
    ) -> (TestClient<'a, Faulty>, Served<Rx5>) {
        let mut greeting = connack5(connack);
        greeting.extend(traffic5());
        let (t, served) = serve_pipe5(link, greeting);
        let config = Config {
            version: Version::V5,
            properties: Properties::new(connect),
            ..config()
        };
        let mut c = Client::new(
            Queue::with(t),
            TokioClock::new(),
            config,
            buffers.slices(),
            recording_callbacks().on_auth(on_auth),
            common::fake::Log::default(),
        );
        within("connect", c.connect()).await.expect("connect");
        (c, served)
    }

    /// The properties `publish_with` sends.
    const PROPS: [Property<'static>; 3] = [
        Property::MessageExpiryInterval(60),
        Property::ContentType("text/plain"),
        Property::UserProperty("k", "v"),
    ];

    /// The PUBLISHes of `payload` the broker read, each with its properties.
    fn publishes(log: &[Rx5], payload: &[u8]) -> Vec<Vec<String>> {
        log.iter()
            .filter_map(|rx| match rx {
                Rx5::Packet(Rx::Publish(p), props) if p.payload == payload => Some(props.clone()),
                _ => None,
            })
            .collect()
    }

    /// `publish_with` at each QoS dropped at any point: the message went
    /// out once, with all its properties (and, QoS 1/2, completed with
    /// exactly one `on_publish`), or not at all.
    #[tokio::test(start_paused = true)]
    async fn publish_with_is_cancel_safe() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            every_cancel_point(async |link, n| {
                let mut buffers = Bufs::new();
                let (mut c, served) = connected5(link, &mut buffers, &[], &[]).await;
                let props = Properties::new(&PROPS);
                let done =
                    cancel_after(n, c.publish_with("out/t", b"payload", qos, false, &props)).await;
                let id = done.map(|r| r.expect("publish_with"));
                settle(&mut c).await;
                assert!(c.user_data().disconnected.is_empty());
                let (log, end) = finish(&mut c, served).await;
                assert_eq!(end, ReadEnd::Eof, "{qos:?} {link:?} n={n}");
                let sent = publishes(&log, b"payload");
                assert!(sent.len() <= 1, "{qos:?} {link:?} n={n}: {sent:?}");
                for props in &sent {
                    assert_eq!(props, &debug_all(PROPS), "{qos:?} {link:?} n={n}");
                }
                let completed = c
                    .user_data()
                    .published
                    .iter()
                    .filter(|(t, _)| t == "out/t")
                    .count();
                assert_eq!(completed, sent.len(), "{qos:?} {link:?} n={n}");
                if let Some(id) = id {
                    assert_eq!(sent.len(), 1);
                    assert_eq!(id.is_some(), qos != QoS::AtMostOnce);
                }
                assert_eq!(c.session().inflight(), 0);
                assert_traffic_once(&c, &plain(&log));
                id.is_some()
            })
            .await;
        }
    }

    /// `publish_with` waiting for a window the broker's Receive Maximum
    /// (2) keeps full, then dropped: the message is sent once or not at
    /// all, and every message completes once.
    #[tokio::test(start_paused = true)]
    async fn publish_with_waiting_for_the_receive_maximum_is_cancel_safe() {
        every_cancel_point(async |link, n| {
            let mut buffers = Bufs::new();
            let connack = [Property::ReceiveMaximum(2)];
            let (mut c, served) = connected5(link, &mut buffers, &[], &connack).await;
            for i in 0..2u8 {
                within("fill", c.try_publish("fill", &[i], QoS::AtLeastOnce, false))
                    .await
                    .unwrap();
            }
            assert!(!c.session().can_publish());
            let props = Properties::new(&PROPS);
            let done = cancel_after(
                n,
                c.publish_with("out/t", b"payload", QoS::ExactlyOnce, false, &props),
            )
            .await;
            let id = done.map(|r| r.expect("publish_with"));
            settle(&mut c).await;
            let (log, end) = finish(&mut c, served).await;
            assert_eq!(end, ReadEnd::Eof, "{link:?} n={n}");
            let sent = publishes(&log, b"payload");
            assert!(sent.len() <= 1);
            assert_eq!(c.user_data().published.len(), 2 + sent.len());
            if id.is_some() {
                assert_eq!(sent.len(), 1);
            }
            assert_eq!(c.session().inflight(), 0);
            assert_traffic_once(&c, &plain(&log));
            id.is_some()
        })
        .await;
    }

    /// `subscribe_with` dropped at any point: subscribed once, with its
    /// options and Subscription Identifier (SUBACK reported to
    /// `on_subscribe`, the filter in the list), or not at all; a later
    /// `subscribe_with` gets its own reason code, not the dropped call's.
    #[tokio::test(start_paused = true)]
    async fn subscribe_with_is_cancel_safe() {
        let options = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        };
        every_cancel_point(async |link, n| {
            let mut buffers = Bufs::new();
            let (mut c, served) = connected5(link, &mut buffers, &[], &[]).await;
            let done = cancel_after(n, c.subscribe_with("sub/a", options, Some(7)))
                .await
                .map(|r| r.expect("subscribe_with"));
            let other = within(
                "other",
                c.subscribe_with("other", SubscriptionOptions::new(QoS::ExactlyOnce), None),
            )
            .await
            .unwrap();
            assert_eq!(other, ReasonCode::GrantedQoS2, "{link:?} n={n}");
            settle(&mut c).await;
            let (log, end) = finish(&mut c, served).await;
            assert_eq!(end, ReadEnd::Eof, "{link:?} n={n}");
            let sent: Vec<_> = log
                .iter()
                .filter_map(|rx| match rx {
                    Rx5::Packet(Rx::Subscribe { filters, .. }, extra)
                        if filters[0].0 == "sub/a" =>
                    {
                        Some(extra.clone())
                    }
                    _ => None,
                })
                .collect();
            assert!(sent.len() <= 1, "{link:?} n={n}: {sent:?}");
            for extra in &sent {
                let want = [
                    format!("{:?}", Property::SubscriptionIdentifier(7)),
                    format!("{options:?}"),
                ];
                assert_eq!(extra, &want);
            }
            let listed = c
                .session()
                .subscriptions()
                .filter(|(f, _)| f.starts_with("sub/"))
                .count();
            assert_eq!(listed, sent.len(), "{link:?} n={n}");
            let reported = c
                .user_data()
                .subscribed
                .iter()
                .filter(|s| s.0.starts_with("sub/"))
                .count();
            assert_eq!(reported, sent.len(), "{link:?} n={n}");
            if let Some(code) = done {
                assert_eq!(sent.len(), 1);
                assert_eq!(code, ReasonCode::GrantedQoS1);
            }
            assert_traffic_once(&c, &plain(&log));
            done.is_some()
        })
        .await;
    }

    /// The AUTH packets the broker read.
    fn auths(log: &[Rx5]) -> Vec<(ReasonCode, Vec<u8>)> {
        log.iter()
            .filter_map(|rx| match rx {
                Rx5::Auth(code, data) => Some((*code, data.clone().unwrap_or_default())),
                _ => None,
            })
            .collect()
    }

    /// `reauthenticate` dropped at any point: its AUTH went out once (the
    /// exchange then completes through `on_auth`, by later calls) or not
    /// at all; either way a second `reauthenticate` completes its own
    /// exchange, and no AUTH deadline is left behind to end the
    /// connection.
    #[tokio::test(start_paused = true)]
    async fn reauthenticate_is_cancel_safe() {
        const CONNECT: [Property<'static>; 2] = [
            Property::AuthenticationMethod(METHOD),
            Property::AuthenticationData(b"client-first"),
        ];
        let exchange = |data: &[u8]| {
            [
                (ReasonCode::ReAuthenticate, data.to_vec()),
                (ReasonCode::ContinueAuthentication, b"client-final".to_vec()),
            ]
        };
        every_cancel_point(async |link, n| {
            let mut buffers = Bufs::new();
            let connack = [Property::AuthenticationMethod(METHOD)];
            let (mut c, served) = connected5(link, &mut buffers, &CONNECT, &connack).await;
            let done = cancel_after(n, c.reauthenticate(b"again")).await;
            if let Some(r) = &done {
                r.as_ref().expect("reauthenticate");
            }
            settle(&mut c).await;
            let first = auths(&served.log.lock().unwrap());
            match first.len() {
                0 => assert!(done.is_none(), "{link:?} n={n}"),
                _ => assert_eq!(first, exchange(b"again"), "{link:?} n={n}"),
            }
            within("reauthenticate again", c.reauthenticate(b"twice"))
                .await
                .expect("reauthenticate after a dropped one");
            settle(&mut c).await;
            // Past the AUTH timeout (10 s): nothing was left waiting.
            within("poll", c.poll(MDuration::from_secs(30)))
                .await
                .expect("poll past the AUTH timeout");
            assert!(c.is_connected());
            assert!(c.user_data().disconnected.is_empty());
            let (log, end) = finish(&mut c, served).await;
            assert_eq!(end, ReadEnd::Eof, "{link:?} n={n}");
            let mut want = first.clone();
            want.extend(exchange(b"twice"));
            assert_eq!(auths(&log), want, "{link:?} n={n}");
            assert_traffic_once(&c, &plain(&log));
            done.is_some()
        })
        .await;
    }
}
