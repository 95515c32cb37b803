//! The link is cut in the middle of a streamed message, against mosquitto
//! with a persistent session: the stream callback is told the message was
//! aborted, and after the reconnect the broker's resend is streamed again
//! from the start. QoS 1 is delivered again (at least once); QoS 2 is
//! delivered exactly once, however often the broker resends it.
//!
//! Skipped (with a message) when mosquitto is not installed, unless `CI`
//! is set.

#[path = "common/faults.rs"]
mod faults;
#[path = "common/mosquitto.rs"]
mod mosquitto;

use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use embedded_io_adapters::tokio_1::FromTokio;
use faults::{FaultHandle, FaultyTransport};
use minimqtt::callbacks::{Part, Stream};
use minimqtt::reconnect::Connector;
use minimqtt::time::{Duration, TokioClock};
use minimqtt::{Buffers, Callbacks, Client, Config, Context, Error, QoS};
use mosquitto::Mosquitto;
use tokio::net::TcpStream;

/// Opens a TCP connection per attempt, each behind a fault script the
/// test keeps.
struct Faulty {
    addr: SocketAddr,
    handles: Vec<FaultHandle>,
}

impl Connector for Faulty {
    type Transport = FaultyTransport<FromTokio<TcpStream>>;
    type Error = std::io::Error;

    async fn connect(&mut self) -> Result<Self::Transport, Self::Error> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (transport, handle) = FaultyTransport::new(FromTokio::new(stream));
        self.handles.push(handle);
        Ok(transport)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Complete { payload_ok: bool, dup: bool },
    Aborted { received: usize },
}

#[derive(Default)]
struct App {
    expected: Vec<u8>,
    received: Vec<u8>,
    seen: Vec<Seen>,
}

fn on_stream(ctx: &mut Context<'_, App>, s: &Stream<'_>) {
    let app = &mut *ctx.user_data;
    match s.part {
        Part::Start => app.received.clear(),
        Part::Chunk { offset, data } => {
            assert_eq!(offset, app.received.len());
            app.received.extend_from_slice(data);
        }
        Part::End => app.seen.push(Seen::Complete {
            payload_ok: app.received == app.expected,
            dup: s.dup,
        }),
        Part::Aborted => app.seen.push(Seen::Aborted {
            received: app.received.len(),
        }),
    }
}

fn config(id: &'static str) -> Config<'static> {
    Config {
        clean_session: false,
        ..Config::new(id)
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 13 % 255) as u8).collect()
}

async fn cut_mid_stream(qos: QoS) -> Option<Vec<Seen>> {
    let mosquitto = Mosquitto::start().await?;
    let addr = mosquitto.addr();
    let id = if qos == QoS::AtLeastOnce {
        "cut-stream-q1"
    } else {
        "cut-stream-q2"
    };
    let body = payload(20_000);

    let mut buffers = Buffers::<256, 1280, 64>::new();
    let mut callbacks: Callbacks<'_, App> = Callbacks::new();
    callbacks.add_stream_callback("big/#", on_stream).unwrap();
    let app = App {
        expected: body.clone(),
        ..App::default()
    };
    let connector = Faulty {
        addr,
        handles: Vec::new(),
    };
    let mut sub = Client::new(
        connector,
        TokioClock::new(),
        config(id),
        buffers.slices(),
        callbacks,
        app,
    );
    sub.connect().await.expect("connect");
    sub.subscribe("big/#", QoS::ExactlyOnce)
        .await
        .expect("subscribe");

    // The publisher: a plain client with room for the whole message.
    let mut pub_buffers = Buffers::<256, 49_152, 64>::new();
    let publisher_connector = Faulty {
        addr,
        handles: Vec::new(),
    };
    let mut publisher = Client::new(
        publisher_connector,
        TokioClock::new(),
        Config::new("cut-stream-pub"),
        pub_buffers.slices(),
        Callbacks::<'_, ()>::new(),
        (),
    );
    publisher.connect().await.expect("publisher connect");

    // Cut the subscriber's link 5,000 bytes into the message.
    let handle = sub.connector_mut().handles[0].clone();
    let at = handle.read() + 5_000;
    handle.set(|f| f.read_eof_after = Some(at));
    let pid = publisher
        .publish("big/image", &body, qos, false)
        .await
        .expect("publish")
        .expect("a packet id");
    publisher.wait_published(pid).await.expect("published");

    let cut = tokio::time::timeout(StdDuration::from_secs(5), async {
        loop {
            match sub.poll(Duration::from_millis(100)).await {
                Ok(_) => {}
                Err(e) => return e,
            }
        }
    })
    .await
    .expect("the cut");
    assert!(matches!(cut, Error::ConnectionClosed), "{cut:?}");
    assert!(!sub.is_connected());

    // The broker resends the message on the resumed session.
    assert!(sub.connect().await.expect("reconnect"), "session present");
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(5);
    while !sub
        .user_data()
        .seen
        .iter()
        .any(|s| matches!(s, Seen::Complete { .. }))
    {
        assert!(tokio::time::Instant::now() < deadline, "no redelivery");
        sub.poll(Duration::from_millis(100)).await.expect("poll");
    }
    // Once more: a further reconnect must not deliver it again at QoS 2.
    sub.poll(Duration::from_millis(300)).await.expect("poll");
    sub.abort();
    sub.connect().await.expect("reconnect again");
    sub.poll(Duration::from_millis(300)).await.expect("poll");
    sub.disconnect().await.expect("disconnect");
    publisher.disconnect().await.expect("disconnect");
    mosquitto.assert_no_protocol_errors();
    Some(sub.user_data().seen.clone())
}

#[tokio::test]
async fn qos1_cut_mid_stream_is_delivered_again_from_the_start() {
    let Some(seen) = cut_mid_stream(QoS::AtLeastOnce).await else {
        return;
    };
    assert!(
        matches!(seen[..], [Seen::Aborted { received }, Seen::Complete { payload_ok: true, dup: true }] if received > 0 && received < 20_000),
        "{seen:?}"
    );
}

#[tokio::test]
async fn qos2_cut_mid_stream_is_delivered_exactly_once() {
    let Some(seen) = cut_mid_stream(QoS::ExactlyOnce).await else {
        return;
    };
    assert!(
        matches!(seen[..], [Seen::Aborted { received }, Seen::Complete { payload_ok: true, dup: true }] if received > 0 && received < 20_000),
        "{seen:?}"
    );
}

/// The publisher's image, resent from its user data.
// The callback type is `fn(&mut U, ..)`, and `U` is the `Vec`.
#[allow(clippy::ptr_arg)]
fn resend_payload(
    image: &mut Vec<u8>,
    request: &minimqtt::callbacks::PayloadRequest<'_>,
    buf: &mut [u8],
) -> usize {
    assert_eq!(request.topic, "big/sent");
    assert_eq!(request.len, image.len());
    let rest = &image[request.offset..];
    let n = rest.len().min(buf.len());
    buf[..n].copy_from_slice(&rest[..n]);
    n
}

#[tokio::test]
async fn a_streamed_publish_cut_mid_payload_is_resent_whole() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let addr = mosquitto.addr();
    let body = payload(200_000);

    let mut sub_buffers = Buffers::<512, 1280, 64>::new();
    let mut callbacks: Callbacks<'_, App> = Callbacks::new();
    callbacks.add_stream_callback("big/#", on_stream).unwrap();
    let mut sub = Client::new(
        Faulty {
            addr,
            handles: Vec::new(),
        },
        TokioClock::new(),
        Config::new("resend-sub"),
        sub_buffers.slices(),
        callbacks,
        App {
            expected: body.clone(),
            ..App::default()
        },
    );
    sub.connect().await.expect("connect");
    sub.subscribe("big/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");

    // The publisher's buffers are far smaller than the message.
    let mut pub_buffers = Buffers::<256, 1536, 64>::new();
    let mut publisher = Client::new(
        Faulty {
            addr,
            handles: Vec::new(),
        },
        TokioClock::new(),
        config("resend-pub"),
        pub_buffers.slices(),
        Callbacks::new().on_resend_payload(resend_payload),
        body.clone(),
    );
    publisher.connect().await.expect("publisher connect");
    let handle = publisher.connector_mut().handles[0].clone();
    let at = handle.written() + 70_000;
    handle.set(|f| f.write_error_after = Some((at, embedded_io_async::ErrorKind::BrokenPipe)));
    let cut = publisher
        .publish_from(
            "big/sent",
            body.len(),
            QoS::AtLeastOnce,
            false,
            &mut &body[..],
        )
        .await;
    assert!(matches!(cut, Err(Error::Transport(_))), "{cut:?}");
    // The reconnect resends it, DUP set, its payload asked again.
    assert!(
        publisher.connect().await.expect("reconnect"),
        "session present"
    );
    publisher.wait_published(1).await.expect("completed");

    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(5);
    while sub.user_data().seen.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no delivery");
        sub.poll(Duration::from_millis(100)).await.expect("poll");
    }
    sub.poll(Duration::from_millis(200)).await.expect("poll");
    assert_eq!(
        sub.user_data().seen,
        [Seen::Complete {
            payload_ok: true,
            dup: false
        }]
    );
    sub.disconnect().await.expect("disconnect");
    publisher.disconnect().await.expect("disconnect");
    mosquitto.assert_no_protocol_errors();
}
