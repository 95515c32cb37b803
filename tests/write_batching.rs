//! What is queued together goes out together: requests waiting in a
//! mailbox, and a callback's request with the acknowledgement of the
//! message it answers, leave in one `write` (one TCP segment on a quiet
//! link, instead of one each).

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::fake::*;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use minimqtt::mailbox::Mailbox;
use minimqtt::time::Duration as MDuration;
use minimqtt::{Context, Message, QoS};

const POLL: MDuration = MDuration::from_millis(10);

/// A transport that counts its `write` calls.
struct CountedWrites {
    inner: Pipe,
    writes: Rc<Cell<usize>>,
}

impl CountedWrites {
    fn new(inner: Pipe) -> (Self, Rc<Cell<usize>>) {
        let writes = Rc::new(Cell::new(0));
        let counted = Self {
            inner,
            writes: writes.clone(),
        };
        (counted, writes)
    }
}

impl embedded_io_async::ErrorType for CountedWrites {
    type Error = <Pipe as embedded_io_async::ErrorType>::Error;
}

impl embedded_io_async::Read for CountedWrites {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.inner.read(buf).await
    }
}

impl embedded_io_async::Write for CountedWrites {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.writes.set(self.writes.get() + 1);
        self.inner.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        self.inner.flush().await
    }
}

/// Requests waiting in the mailbox are queued together and written in
/// one `write`, not one each; a refused one among them does not hold back
/// the ones before it, and its error comes once they are written.
#[tokio::test(start_paused = true)]
async fn waiting_requests_go_out_in_one_write() {
    let mailbox: Mailbox<NoopRawMutex, 256> = Mailbox::new();
    let (io, mut broker) = pipe();
    let (io, writes) = CountedWrites::new(io);
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    c.attach(&mailbox);
    connect(&mut c, &mut broker, false).await;
    for i in 0..6u8 {
        mailbox
            .try_publish("batch", &[b'0' + i], QoS::AtMostOnce, false)
            .unwrap();
    }
    mailbox.try_subscribe("to/task", QoS::AtMostOnce).unwrap();
    let before = writes.get();
    within("poll", c.poll(POLL)).await.unwrap();
    assert_eq!(writes.get() - before, 1, "one write for seven requests");
    for i in 0..6u8 {
        assert_eq!(broker.expect_publish().await.payload, [b'0' + i]);
    }
    let (_, filters) = broker.expect_subscribe().await;
    assert_eq!(filters, [("to/task".to_owned(), QoS::AtMostOnce)]);
    assert_eq!(c.user_data().published.len(), 6);

    // An invalid topic between two valid ones: the first is written, then
    // the refusal returned; the next call sends the third.
    for topic in ["before", "bad/#", "after"] {
        mailbox
            .try_publish(topic, b"1", QoS::AtMostOnce, false)
            .unwrap();
    }
    let result = within("poll", c.poll(POLL)).await;
    assert!(
        matches!(result, Err(minimqtt::Error::Usage(_))),
        "{result:?}"
    );
    assert_eq!(broker.expect_publish().await.topic, "before");
    within("poll", c.poll(POLL)).await.unwrap();
    assert_eq!(broker.expect_publish().await.topic, "after");
    assert!(c.is_connected());
}

fn reply(ctx: &mut Context<'_, Log>, _m: &Message<'_>) {
    ctx.publish("reply", b"pong", QoS::AtMostOnce, false)
        .unwrap();
}

/// A QoS 1 message whose callback publishes an answer: the PUBACK and the
/// answer leave in one write, PUBACK first.
#[tokio::test(start_paused = true)]
async fn an_answer_goes_out_with_the_acknowledgement() {
    let (io, mut broker) = pipe();
    let (io, writes) = CountedWrites::new(io);
    let mut buffers = SmallBuffers::new();
    let mut c = client(io, config(), buffers.slices());
    c.add_topic_callback("ping", reply).unwrap();
    connect(&mut c, &mut broker, false).await;
    broker
        .send(&publish("ping", b"?", QoS::AtLeastOnce, Some(7)))
        .await;
    let before = writes.get();
    within("poll", c.poll(POLL)).await.unwrap();
    assert_eq!(writes.get() - before, 1, "PUBACK and answer in one write");
    broker.expect(Rx::PubAck(7)).await;
    let answer = broker.expect_publish().await;
    assert_eq!(
        (answer.topic.as_str(), &answer.payload[..]),
        ("reply", &b"pong"[..])
    );
    assert_eq!(c.user_data().published.len(), 1);
}
