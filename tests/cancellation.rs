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
//! All on tokio's paused clock.
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
//! | `wait_published` | yes | only the waiting |
//! | `subscribe`, `subscribe_many` | yes | subscribed (SUBACK reaches `on_subscribe` later) or not at all |
//! | `unsubscribe`, `unsubscribe_many` | yes | likewise |
//! | `ping` | yes | the PINGREQ sent or not; the next `ping` waits for the outstanding one |
//! | `disconnect` | yes, as documented | connected (dropped before DISCONNECT was queued) or disconnected with the DISCONNECT possibly half written and the transport still open: the next `connect` closes it first; `on_disconnect` does not run |
//! | `connect` | yes | connected (dropped after CONNACK), or a CONNECT sent or half sent: the next `connect` closes that transport and opens a new one (never a second CONNECT on one connection, MQTT-3.1.0-2) |
//! | `run_for` | yes | connected, or not connected; calling it again connects through a fresh transport |

mod common;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use common::fake::*;
use common::faults::{Faults, FaultyTransport};
use minimqtt::callbacks::DisconnectReason;
use minimqtt::reconnect::Backoff;
use minimqtt::time::Duration as MDuration;
use minimqtt::{Buffers, QoS, SubscribeReturnCode, Subscription};
use tokio::task::JoinHandle;

type Faulty = FaultyTransport<Pipe>;
type Log = Arc<Mutex<Vec<Rx>>>;
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
struct Served {
    log: Log,
    task: JoinHandle<ReadEnd>,
}

/// A fresh pipe of kind `link`, with an auto-answering broker task.
fn serve_pipe(link: Link, after_connack: Vec<u8>) -> (Faulty, Served) {
    let capacity = if link == Link::OneByte {
        1
    } else {
        PIPE_CAPACITY
    };
    let (io, broker) = pipe_with_capacity(capacity);
    let (t, _) = FaultyTransport::with(
        io,
        Faults {
            yield_first: link != Link::Roomy,
            ..Faults::default()
        },
    );
    let log = Log::default();
    let task = tokio::spawn(broker.serve_with(log.clone(), after_connack));
    (t, Served { log, task })
}

/// A transport whose other end is gone.
fn dead() -> Faulty {
    FaultyTransport::new(pipe().0).0
}

/// Closes the client's end (`on_disconnect(Requested)` runs if it was
/// connected) and collects what the broker read and how the stream ended.
async fn finish(c: &mut TestClient<'_, Faulty>, served: Served) -> (Vec<Rx>, ReadEnd) {
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
