//! Other tasks publish and subscribe through a `Mailbox` while one task
//! runs the client: the client wakes for their requests (it is waiting on
//! the broker otherwise), sends them in order, and their results reach the
//! callbacks; a full mailbox refuses a request with `MailboxFull` and
//! queues nothing.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use common::fake::*;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use minimqtt::QoS;
use minimqtt::mailbox::{Mailbox, MailboxFull};
use minimqtt::time::Duration as MDuration;

/// The client's task: nothing but `run_for`, waiting on the broker for a
/// minute at a time, until `stop` is set; it hands the client back.
fn run_in_its_task(
    mut c: TestClient<'static, Pipe>,
) -> (
    Rc<Cell<bool>>,
    tokio::task::JoinHandle<TestClient<'static, Pipe>>,
) {
    let stop = Rc::new(Cell::new(false));
    let runner = tokio::task::spawn_local({
        let stop = stop.clone();
        async move {
            while !stop.get() {
                c.run_for(MDuration::from_secs(60)).await.unwrap();
            }
            c
        }
    });
    (stop, runner)
}

#[tokio::test(start_paused = true)]
async fn another_task_publishes_and_subscribes_through_the_mailbox() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mailbox: &'static Mailbox<NoopRawMutex, 128> = Box::leak(Box::new(Mailbox::new()));
            let (io, mut broker) = pipe();
            let buffers = Box::leak(Box::new(SmallBuffers::new()));
            let mut c = client(io, config(), buffers.slices());
            c.attach(mailbox);
            connect(&mut c, &mut broker, false).await;
            let (stop, runner) = run_in_its_task(c);
            // Another task, some time later.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let sent_at = tokio::time::Instant::now();
            mailbox
                .try_publish("from/task", b"hello", QoS::AtLeastOnce, false)
                .unwrap();
            mailbox.try_subscribe("to/task", QoS::AtMostOnce).unwrap();
            let p = broker.expect_publish().await;
            // Woken at once, not at the end of `run_for`'s minute.
            assert_eq!(sent_at.elapsed(), Duration::ZERO);
            assert_eq!(
                (p.topic.as_str(), &p.payload[..]),
                ("from/task", &b"hello"[..])
            );
            let (sub_id, filters) = broker.expect_subscribe().await;
            assert_eq!(filters, [("to/task".to_owned(), QoS::AtMostOnce)]);
            broker.send(&puback(p.packet_id.unwrap())).await;
            broker.send(&suback(sub_id, &[0])).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(mailbox.is_empty());
            stop.set(true);
            let c = runner.await.unwrap();
            let log = c.user_data();
            assert_eq!(log.published, [("from/task".to_owned(), p.packet_id)]);
            assert_eq!(log.subscribed.len(), 1);
        })
        .await;
}

/// Requests queued while the client is offline wait, bounded, and go out
/// in order once it is connected.
#[tokio::test(start_paused = true)]
async fn requests_wait_while_offline_and_go_out_in_order() {
    let mailbox: Mailbox<NoopRawMutex, 64> = Mailbox::new();
    for i in 0..3u8 {
        mailbox
            .try_publish("q", &[b'0' + i], QoS::AtMostOnce, false)
            .unwrap();
    }
    // 8 + 1 + 1 bytes each: a fourth of 40 bytes does not fit.
    assert_eq!(
        mailbox.try_publish("q", &[0; 40], QoS::AtMostOnce, false),
        Err(MailboxFull)
    );
    assert_eq!(mailbox.len(), 3);
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    c.attach(&mailbox);
    broker.connack().await;
    within("run_for", c.run_for(MDuration::from_millis(100)))
        .await
        .unwrap();
    broker.expect_connect().await;
    for i in 0..3u8 {
        assert_eq!(broker.expect_publish().await.payload, [b'0' + i]);
    }
    assert!(mailbox.is_empty());
    assert_eq!(c.user_data().published.len(), 3);
}

/// A request larger than the client's outbox could never be taken: once
/// the client is attached, the mailbox refuses it; one queued before is
/// dropped when its turn comes. Either way the requests behind it go out.
#[tokio::test(start_paused = true)]
async fn a_request_larger_than_the_clients_outbox_holds_up_nothing() {
    let mailbox: Mailbox<NoopRawMutex, 1024> = Mailbox::new();
    let big = [7u8; 600];
    // Not attached yet: queued.
    mailbox
        .try_publish("big", &big, QoS::AtMostOnce, false)
        .unwrap();
    mailbox
        .try_publish("q", b"1", QoS::AtMostOnce, false)
        .unwrap();
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    c.attach(&mailbox);
    // Attached: refused, and nothing queued.
    assert_eq!(
        mailbox.try_publish("big", &big, QoS::AtMostOnce, false),
        Err(MailboxFull)
    );
    assert_eq!(mailbox.len(), 2);
    mailbox
        .try_publish("q", b"2", QoS::AtMostOnce, false)
        .unwrap();
    broker.connack().await;
    within("run_for", c.run_for(MDuration::from_millis(100)))
        .await
        .unwrap();
    broker.expect_connect().await;
    for payload in [b"1", b"2"] {
        assert_eq!(broker.expect_publish().await.payload, payload);
    }
    assert!(mailbox.is_empty());
}

/// A request queued while the client is stuck in a write (the broker is
/// slow to read) goes out as soon as that write ends, not at the next
/// packet or keep-alive.
#[tokio::test(start_paused = true)]
async fn a_request_queued_during_a_write_is_sent_when_the_write_ends() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mailbox: &'static Mailbox<NoopRawMutex, 512> = Box::leak(Box::new(Mailbox::new()));
            // 32 bytes of room: the first publish blocks in `write`.
            let (io, mut broker) = pipe_with_capacity(32);
            let buffers = Box::leak(Box::new(SmallBuffers::new()));
            let mut c = client(io, config(), buffers.slices());
            c.attach(mailbox);
            connect(&mut c, &mut broker, false).await;
            let (stop, runner) = run_in_its_task(c);
            tokio::time::sleep(Duration::from_secs(5)).await;
            mailbox
                .try_publish("first", &[1; 150], QoS::AtMostOnce, false)
                .unwrap();
            // The client takes it and blocks writing it.
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert!(mailbox.is_empty());
            mailbox
                .try_publish("second", b"2", QoS::AtMostOnce, false)
                .unwrap();
            let queued_at = tokio::time::Instant::now();
            assert_eq!(broker.expect_publish().await.topic, "first");
            assert_eq!(broker.expect_publish().await.topic, "second");
            // Not at the keep-alive's PINGREQ 49 s later.
            assert!(queued_at.elapsed() < Duration::from_secs(1));
            stop.set(true);
            let c = runner.await.unwrap();
            assert_eq!(c.user_data().published.len(), 2);
        })
        .await;
}

/// `Handled::packets` counts an UNSUBACK once, like every other packet.
#[tokio::test(start_paused = true)]
async fn an_unsuback_is_counted_once() {
    let mailbox: Mailbox<NoopRawMutex, 64> = Mailbox::new();
    let (io, mut broker) = pipe();
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    c.attach(&mailbox);
    connect(&mut c, &mut broker, false).await;
    mailbox.try_unsubscribe("t").unwrap();
    let handled = within("poll", c.poll(MDuration::from_millis(10)))
        .await
        .unwrap();
    assert_eq!(handled.packets, 0);
    let (id, filters) = broker.expect_unsubscribe().await;
    assert_eq!(filters, ["t"]);
    broker.send(&unsuback(id)).await;
    let handled = within("poll", c.poll(MDuration::from_millis(10)))
        .await
        .unwrap();
    assert_eq!(handled.packets, 1);
    assert_eq!(c.user_data().unsubscribed.len(), 1);
}

/// A mailbox whose request arrives right after the client's last look
/// into it (an interrupt, another core): the push lands between that
/// `take_into` and the client's wait.
struct LateInbox {
    inner: &'static Mailbox<NoopRawMutex, 256>,
    /// Pushes one request after this many more `take_into` calls that
    /// moved nothing (the driver looks twice in a turn of its loop: the
    /// second look is the last before it waits).
    armed: Cell<u8>,
}

impl minimqtt::mailbox::Inbox for LateInbox {
    fn take_into(&self, outbox: &mut minimqtt::callbacks::Outbox<'_>) -> bool {
        let moved = self.inner.take_into(outbox);
        if !moved && self.armed.get() > 0 {
            self.armed.set(self.armed.get() - 1);
            if self.armed.get() == 0 {
                self.inner
                    .try_publish("late", b"!", QoS::AtMostOnce, false)
                    .unwrap();
            }
        }
        moved
    }

    fn poll_requests(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.inner.poll_requests(cx)
    }

    fn has_requests(&self) -> bool {
        self.inner.has_requests()
    }

    fn set_limit(&self, limit: usize) {
        self.inner.set_limit(limit)
    }
}

/// Such a request wakes the client's wait and goes out at once, not with
/// the next packet or keep-alive.
#[tokio::test(start_paused = true)]
async fn a_request_pushed_just_after_the_last_look_goes_out_at_once() {
    let mailbox: &'static Mailbox<NoopRawMutex, 256> = Box::leak(Box::new(Mailbox::new()));
    let inbox: &'static LateInbox = Box::leak(Box::new(LateInbox {
        inner: mailbox,
        armed: Cell::new(0),
    }));
    let (io, mut broker) = pipe();
    let buffers = Box::leak(Box::new(SmallBuffers::new()));
    let mut c = client(io, config(), buffers.slices());
    c.attach(inbox);
    connect(&mut c, &mut broker, false).await;
    inbox.armed.set(2);
    let start = tokio::time::Instant::now();
    let (polled, publish) = tokio::join!(c.poll(MDuration::from_secs(5)), async {
        let publish = broker.expect_publish().await;
        (publish.topic, start.elapsed())
    });
    polled.unwrap();
    assert_eq!(publish, ("late".to_owned(), Duration::ZERO));
}
