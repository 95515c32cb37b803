//! Application-controlled acknowledgement through the client, against the
//! scripted broker: a callback defers a message's PUBACK and the token is
//! redeemed later (by another callback, by another task through the
//! mailbox, or by the application); acknowledgements keep the order of
//! their PUBLISHes; a token of a lost connection sends nothing. Also: a
//! stream cut by the broker reaches its callback as aborted, and a payload
//! source that runs dry discards its message.

mod common;

use std::time::Duration;

use common::fake::*;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use minimqtt::callbacks::{AckToken, Part, Stream};
use minimqtt::mailbox::Mailbox;
use minimqtt::time::{Duration as MDuration, TokioClock};
use minimqtt::{Callbacks, Client, Context, Error, Message, QoS, UsageError, payload_from_fn};

#[derive(Default)]
struct App {
    tokens: Vec<AckToken>,
    /// Message payloads that ask for their ack to be deferred.
    defer: Vec<Vec<u8>>,
    /// Redeem every held token when a message with this payload arrives.
    redeem_on: Option<Vec<u8>>,
    parts: Vec<String>,
    discarded: Vec<u16>,
    /// Defer every QoS 1/2 message; refusals are recorded.
    defer_all: bool,
    refused: Vec<String>,
}

type App2<'a> = Client<'a, Queue<Pipe>, TokioClock, App>;

fn on_message(ctx: &mut Context<'_, App>, m: &Message<'_>) {
    if ctx.user_data.defer_all {
        match ctx.defer_ack() {
            Ok(token) => ctx.user_data.tokens.push(token),
            Err(e) => ctx.user_data.refused.push(format!("{e:?}")),
        }
        return;
    }
    if ctx.user_data.defer.iter().any(|p| p == m.payload) {
        let token = ctx.defer_ack().expect("defer");
        ctx.user_data.tokens.push(token);
    }
    if ctx.user_data.redeem_on.as_deref() == Some(m.payload) {
        for token in std::mem::take(&mut ctx.user_data.tokens) {
            ctx.ack(token).expect("outbox room");
        }
    }
}

fn on_stream(ctx: &mut Context<'_, App>, s: &Stream<'_>) {
    let part = match s.part {
        Part::Start => format!("start {} {}", s.topic, s.len),
        Part::Chunk { offset, data } => format!("chunk {offset} {}", data.len()),
        Part::End => "end".into(),
        Part::Aborted => format!("aborted {}", s.topic),
    };
    ctx.user_data.parts.push(part);
}

fn on_discarded(ctx: &mut Context<'_, App>, _topic: &str, packet_id: u16) {
    ctx.user_data.discarded.push(packet_id);
}

fn app_client(io: Pipe, buffers: &'static mut SmallBuffers, app: App) -> App2<'static> {
    let mut callbacks = Callbacks::new()
        .on_message(on_message)
        .on_publish_discarded(on_discarded);
    callbacks.add_stream_callback("big/#", on_stream).unwrap();
    Client::new(
        Queue::with(io),
        TokioClock::new(),
        config(),
        buffers.slices(),
        callbacks,
        app,
    )
}

async fn connected(app: App) -> (App2<'static>, FakeBroker) {
    let (io, mut broker) = pipe();
    let buffers = Box::leak(Box::new(SmallBuffers::new()));
    let mut c = app_client(io, buffers, app);
    broker.connack().await;
    within("connect", c.connect()).await.expect("connect");
    broker.expect_connect().await;
    (c, broker)
}

async fn poll(c: &mut App2<'_>) {
    within("poll", c.poll(MDuration::from_millis(100)))
        .await
        .expect("poll");
}

#[tokio::test(start_paused = true)]
async fn a_deferred_puback_holds_back_later_ones_until_redeemed_by_a_callback() {
    let app = App {
        defer: vec![b"one".to_vec()],
        redeem_on: Some(b"three".to_vec()),
        ..App::default()
    };
    let (mut c, mut broker) = connected(app).await;
    broker
        .send(&publish("t", b"one", QoS::AtLeastOnce, Some(1)))
        .await;
    broker
        .send(&publish("t", b"two", QoS::ExactlyOnce, Some(2)))
        .await;
    poll(&mut c).await;
    // Neither: PUBREC 2 waits behind the deferred PUBACK 1.
    broker.expect_silence(Duration::from_secs(1)).await;
    assert_eq!(c.user_data().tokens.len(), 1);
    // A QoS 0 message whose callback redeems the token.
    broker
        .send(&publish("t", b"three", QoS::AtMostOnce, None))
        .await;
    poll(&mut c).await;
    broker.expect(Rx::PubAck(1)).await;
    broker.expect(Rx::PubRec(2)).await;
}

#[tokio::test(start_paused = true)]
async fn another_task_redeems_a_token_through_the_mailbox() {
    let mailbox: &'static Mailbox<NoopRawMutex, 64> = Box::leak(Box::new(Mailbox::new()));
    let app = App {
        defer: vec![b"store me".to_vec()],
        ..App::default()
    };
    let (mut c, mut broker) = connected(app).await;
    c.attach(mailbox);
    broker
        .send(&publish("t", b"store me", QoS::AtLeastOnce, Some(7)))
        .await;
    poll(&mut c).await;
    broker.expect_silence(Duration::from_secs(1)).await;
    let token = c.user_data_mut().tokens.pop().expect("a token");
    assert_eq!((token.packet_id(), token.qos()), (7, QoS::AtLeastOnce));
    mailbox.try_ack(token).expect("room");
    poll(&mut c).await;
    broker.expect(Rx::PubAck(7)).await;
    // A full mailbox hands the token back.
    let small: &'static Mailbox<NoopRawMutex, 4> = Box::leak(Box::new(Mailbox::new()));
    c.user_data_mut().defer.push(b"again".to_vec());
    broker
        .send(&publish("t", b"again", QoS::AtLeastOnce, Some(8)))
        .await;
    poll(&mut c).await;
    let token = c.user_data_mut().tokens.pop().expect("a token");
    let (_, token) = small.try_ack(token).expect_err("no room");
    c.ack(token).expect("ack");
    poll(&mut c).await;
    broker.expect(Rx::PubAck(8)).await;
}

#[tokio::test(start_paused = true)]
async fn a_token_of_a_lost_connection_is_refused_and_sends_nothing() {
    let app = App {
        defer: vec![b"x".to_vec()],
        ..App::default()
    };
    let (mut c, mut broker) = connected(app).await;
    broker
        .send(&publish("t", b"x", QoS::AtLeastOnce, Some(3)))
        .await;
    poll(&mut c).await;
    let token = c.user_data_mut().tokens.pop().expect("a token");
    c.abort();
    let (io, mut broker2) = pipe();
    c.connector_mut().push(io);
    broker2.connack().await;
    within("reconnect", c.connect()).await.expect("reconnect");
    broker2.expect_connect().await;
    assert!(matches!(
        c.ack(token),
        Err(Error::Usage(UsageError::StaleAck))
    ));
    poll(&mut c).await;
    broker2.expect_silence(Duration::from_secs(1)).await;
    drop(broker);
}

#[tokio::test(start_paused = true)]
async fn a_stream_cut_by_the_broker_is_reported_aborted() {
    let (mut c, mut broker) = connected(App::default()).await;
    let big = publish("big/file", &[7; 1000], QoS::AtLeastOnce, Some(4));
    broker.send(&big[..600]).await;
    poll(&mut c).await;
    broker.close();
    let err = within("poll", c.poll(MDuration::from_millis(100))).await;
    assert!(matches!(err, Err(Error::ConnectionClosed)), "{err:?}");
    let parts = &c.user_data().parts;
    assert_eq!(
        parts.first().map(String::as_str),
        Some("start big/file 1000")
    );
    assert_eq!(parts.last().map(String::as_str), Some("aborted big/file"));
    assert!(parts.iter().all(|p| p != "end"));
}

#[tokio::test(start_paused = true)]
async fn a_payload_source_that_runs_dry_discards_its_message() {
    let (mut c, mut broker) = connected(App::default()).await;
    let mut source = payload_from_fn(|offset, buf: &mut [u8]| {
        if offset >= 1000 {
            return 0;
        }
        buf.fill(1);
        buf.len().min(1000 - offset)
    });
    let result = within(
        "publish_from",
        c.publish_from("out/big", 5000, QoS::AtLeastOnce, false, &mut source),
    )
    .await;
    assert!(matches!(result, Err(Error::PayloadShort)), "{result:?}");
    assert!(!c.is_connected());
    // The broker saw the head and 1,000 bytes, then the end of the stream.
    let (_, end) = broker.drain().await;
    assert_ne!(end, ReadEnd::Eof, "cut mid-packet");
    // Reported at the next connect's first pass.
    let (io, mut broker2) = pipe();
    c.connector_mut().push(io);
    broker2.connack().await;
    within("reconnect", c.connect()).await.expect("reconnect");
    assert_eq!(c.user_data().discarded, [1]);
}

/// An empty payload is a valid PUBLISH (MQTT-3.3.3): streamed, its head
/// is the whole packet, and the source is never asked for bytes (it was,
/// got 0, and the message was discarded with the connection).
#[tokio::test(start_paused = true)]
async fn a_streamed_publish_of_no_bytes_goes_out_whole() {
    let (mut c, mut broker) = connected(App::default()).await;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let mut source = payload_from_fn(|_, _: &mut [u8]| -> usize {
            panic!("an empty payload asked of its source")
        });
        let result = within(
            "publish_from",
            c.publish_from("out/empty", 0, qos, false, &mut source),
        )
        .await;
        assert!(result.is_ok(), "{qos:?}: {result:?}");
        assert!(c.is_connected());
        let p = broker.expect_publish().await;
        assert_eq!(
            (p.topic.as_str(), p.payload.len(), p.qos),
            ("out/empty", 0, qos)
        );
    }
}

/// With every deferral slot taken and more QoS 1 messages than the
/// receive buffer holds, the session stops reading until the application
/// acknowledges: the full buffer is not taken for the broker closing the
/// connection. Once the tokens are redeemed, the rest are delivered and
/// every PUBACK goes out, in order.
#[tokio::test(start_paused = true)]
async fn a_receive_buffer_full_behind_deferred_acks_is_not_the_end_of_the_stream() {
    let app = App {
        defer_all: true,
        ..App::default()
    };
    let (mut c, mut broker) = connected(app).await;
    // 11 bytes each: 100 are four times the 256-byte receive buffer.
    let mut flood = Vec::new();
    for id in 1..=100u16 {
        flood.extend(publish("t", b"m", QoS::AtLeastOnce, Some(id)));
    }
    broker.send(&flood).await;
    poll(&mut c).await;
    assert!(c.is_connected());
    assert_eq!(c.user_data().tokens.len(), 8);
    // Acknowledged as they come from now on.
    c.user_data_mut().defer_all = false;
    for token in std::mem::take(&mut c.user_data_mut().tokens) {
        c.ack(token).expect("ack");
    }
    poll(&mut c).await;
    poll(&mut c).await;
    for id in 1..=100u16 {
        broker.expect(Rx::PubAck(id)).await;
    }
    assert!(c.is_connected());
}

/// Tokens redeemed through the mailbox behind a QoS 1 publish that waits
/// for the window go ahead of it: the PUBACKs that free the window are in
/// the receive buffer behind the messages those tokens hold, so waiting
/// for the window first would wait for the puback timeout.
#[tokio::test(start_paused = true)]
async fn redeemed_tokens_do_not_wait_behind_a_publish_for_the_window() {
    let app = App {
        defer_all: true,
        ..App::default()
    };
    let (mut c, mut broker) = connected(app).await;
    let mailbox: &'static Mailbox<NoopRawMutex, 256> = Box::leak(Box::new(Mailbox::new()));
    c.attach(mailbox);
    // The window (8) full of our QoS 1 messages.
    let mut ids = Vec::new();
    for _ in 0..8 {
        let id = within("publish", c.publish("out", b"x", QoS::AtLeastOnce, false))
            .await
            .expect("publish");
        ids.push(id.expect("an id"));
    }
    for _ in 0..8 {
        assert!(matches!(broker.recv().await, Rx::Publish(_)));
    }
    // The broker's messages, more than the receive buffer holds, then the
    // PUBACKs of ours behind them.
    let mut stream = Vec::new();
    for id in 1..=40u16 {
        stream.extend(publish("t", b"m", QoS::AtLeastOnce, Some(id)));
    }
    for &id in &ids {
        stream.extend(puback(id));
    }
    broker.send(&stream).await;
    poll(&mut c).await;
    assert_eq!(c.user_data().tokens.len(), 8);
    // Another task: one more publish (the window is full), then the tokens.
    c.user_data_mut().defer_all = false;
    mailbox
        .try_publish("late", b"y", QoS::AtLeastOnce, false)
        .expect("room");
    for token in std::mem::take(&mut c.user_data_mut().tokens) {
        mailbox.try_ack(token).expect("room");
    }
    let start = tokio::time::Instant::now();
    poll(&mut c).await;
    poll(&mut c).await;
    for id in 1..=40u16 {
        broker.expect(Rx::PubAck(id)).await;
    }
    let late = broker.expect_publish().await;
    assert_eq!(late.topic, "late");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "waited {:?}",
        start.elapsed()
    );
    assert!(c.is_connected());
}

#[tokio::test(start_paused = true)]
async fn a_full_deferral_queue_refuses_the_next_and_keeps_the_order() {
    let app = App {
        defer_all: true,
        ..App::default()
    };
    let (mut c, mut broker) = connected(app).await;
    // INFLIGHT (8) can be deferred; the 9th is refused, and its PUBACK
    // waits behind theirs.
    for id in 1..=9u16 {
        broker
            .send(&publish("t", b"m", QoS::AtLeastOnce, Some(id)))
            .await;
    }
    poll(&mut c).await;
    assert_eq!(c.user_data().tokens.len(), 8);
    assert_eq!(c.user_data().refused, ["Resource(AcksFull)"]);
    broker.expect_silence(Duration::from_secs(1)).await;
    // Redeemed out of order, acknowledged in order.
    let mut tokens = std::mem::take(&mut c.user_data_mut().tokens);
    tokens.reverse();
    for token in tokens {
        c.ack(token).expect("ack");
    }
    poll(&mut c).await;
    for id in 1..=9u16 {
        broker.expect(Rx::PubAck(id)).await;
    }
}
