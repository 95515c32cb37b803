//! What MQTT 5 adds, against mosquitto (which speaks it): reason codes in
//! the callbacks, publish properties both ways, request / response,
//! subscription options, the session kept by its expiry interval, and a
//! server DISCONNECT. Every test ends by checking mosquitto logged no
//! protocol violation by our client.
//!
//! Skipped (with a message) when mosquitto is not installed, unless `CI`
//! is set.

mod common;

use std::time::Duration as StdDuration;

use common::mosquitto::Mosquitto;
use embedded_io_adapters::tokio_1::FromTokio;
use minimqtt::callbacks::{Connected, DisconnectReason};
use minimqtt::codec::v5::{
    Disconnect, Properties, Property, ReasonCode, RetainHandling, SubscriptionOptions,
};
use minimqtt::session::Version;
use minimqtt::time::{Duration, TokioClock};
use minimqtt::{
    BrokerError, Buffers, Callbacks, Client, Config, Connector, Context, Error, Message, QoS,
};

/// Opens a TCP connection to mosquitto for every attempt.
struct Tcp(std::net::SocketAddr);

impl Connector for Tcp {
    type Transport = FromTokio<tokio::net::TcpStream>;
    type Error = std::io::Error;

    async fn connect(&mut self) -> Result<Self::Transport, std::io::Error> {
        let socket = tokio::net::TcpStream::connect(self.0).await?;
        socket.set_nodelay(true)?;
        Ok(FromTokio::new(socket))
    }
}

/// What the callbacks saw, owned.
#[derive(Debug, Default)]
struct Seen {
    connects: Vec<(bool, Option<String>)>,
    disconnects: Vec<DisconnectReason>,
    published: Vec<(String, Option<ReasonCode>)>,
    subscribed: Vec<(String, Option<ReasonCode>)>,
    unsubscribed: Vec<(String, Option<ReasonCode>)>,
    messages: Vec<Received>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Received {
    topic: String,
    payload: Vec<u8>,
    user: Vec<(String, String)>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation: Option<Vec<u8>>,
    expiry: Option<u32>,
}

type Ctx<'c> = Context<'c, Seen>;
type TestClient = Client<'static, Tcp, TokioClock, Seen>;

fn on_connect(ctx: &mut Ctx<'_>, info: Connected) {
    let assigned = info
        .properties
        .assigned_client_identifier()
        .map(str::to_owned);
    ctx.user_data
        .connects
        .push((info.session_present, assigned));
}

fn on_disconnect(ctx: &mut Ctx<'_>, reason: DisconnectReason) {
    ctx.user_data.disconnects.push(reason);
}

fn on_publish(ctx: &mut Ctx<'_>, topic: &str, _pid: Option<u16>) {
    let code = ctx.reason_code();
    ctx.user_data.published.push((topic.to_owned(), code));
}

fn on_subscribe(ctx: &mut Ctx<'_>, filter: &str, _code: minimqtt::SubscribeReturnCode, _pid: u16) {
    let code = ctx.reason_code();
    ctx.user_data.subscribed.push((filter.to_owned(), code));
}

fn on_unsubscribe(ctx: &mut Ctx<'_>, filter: &str, _pid: u16) {
    let code = ctx.reason_code();
    ctx.user_data.unsubscribed.push((filter.to_owned(), code));
}

fn on_message(ctx: &mut Ctx<'_>, m: &Message<'_>) {
    let p = &m.properties;
    ctx.user_data.messages.push(Received {
        topic: m.topic.to_owned(),
        payload: m.payload.to_vec(),
        user: p
            .user_properties()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        content_type: p.content_type().map(str::to_owned),
        response_topic: p.response_topic().map(str::to_owned),
        correlation: p.correlation_data().map(<[u8]>::to_vec),
        expiry: p.message_expiry_interval(),
    });
}

/// The responder of the request / response test: answers every request
/// on its Response Topic, with its Correlation Data, from the callback.
fn respond(ctx: &mut Ctx<'_>, m: &Message<'_>) {
    on_message(ctx, m);
    let Some(reply_to) = m.properties.response_topic() else {
        return;
    };
    let data = m.properties.correlation_data().unwrap_or(b"");
    let props = [Property::CorrelationData(data)];
    let mut answer = b"re: ".to_vec();
    answer.extend_from_slice(m.payload);
    ctx.publish_with(
        reply_to,
        &answer,
        QoS::AtLeastOnce,
        false,
        &Properties::new(&props),
    )
    .expect("outbox room for the answer");
}

fn config(client_id: &'static str) -> Config<'static> {
    Config {
        version: Version::V5,
        ..Config::new(client_id)
    }
}

fn client(mosquitto: &Mosquitto, config: Config<'static>) -> TestClient {
    let buffers = Box::leak(Box::new(Buffers::<1024, 3072, 1024>::new()));
    let callbacks = Callbacks::new()
        .on_connect(on_connect)
        .on_disconnect(on_disconnect)
        .on_publish(on_publish)
        .on_subscribe(on_subscribe)
        .on_unsubscribe(on_unsubscribe)
        .on_message(on_message);
    Client::new(
        Tcp(mosquitto.addr()),
        TokioClock::new(),
        config,
        buffers.slices(),
        callbacks,
        Seen::default(),
    )
}

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(StdDuration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Runs the client until `done` holds.
async fn run_until(c: &mut TestClient, what: &str, done: impl Fn(&Seen) -> bool) {
    within(what, async {
        while !done(c.user_data()) {
            c.run_for(Duration::from_millis(20)).await.expect(what);
        }
    })
    .await
}

/// Waits for mosquitto to log what it saw, then checks it saw no
/// protocol violation.
async fn check(mosquitto: &Mosquitto) {
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    mosquitto.assert_no_protocol_errors();
}

#[tokio::test]
async fn reason_codes_reach_the_callbacks() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let mut c = client(&mosquitto, config("v5-reasons"));
    within("connect", c.connect()).await.unwrap();
    assert_eq!(c.user_data().connects, [(false, None)]);

    // Nobody subscribes: mosquitto says so in the PUBACK, which is still
    // a success (MQTT 5 §3.4.2.1).
    let pid = within(
        "publish",
        c.publish("v5/nobody", b"x", QoS::AtLeastOnce, false),
    )
    .await
    .unwrap()
    .unwrap();
    within("puback", c.wait_published(pid)).await.unwrap();
    assert_eq!(
        c.user_data().published,
        [("v5/nobody".into(), Some(ReasonCode::NoMatchingSubscribers))]
    );

    let code = within(
        "subscribe",
        c.subscribe_with("v5/r/#", SubscriptionOptions::new(QoS::ExactlyOnce), None),
    )
    .await
    .unwrap();
    assert_eq!(code, ReasonCode::GrantedQoS2);
    assert_eq!(
        c.user_data().subscribed,
        [("v5/r/#".into(), Some(ReasonCode::GrantedQoS2))]
    );

    // With a subscriber (ourselves), QoS 2: PUBREC and PUBCOMP say success.
    let pid = within(
        "publish",
        c.publish("v5/r/1", b"y", QoS::ExactlyOnce, false),
    )
    .await
    .unwrap()
    .unwrap();
    within("pubcomp", c.wait_published(pid)).await.unwrap();
    assert_eq!(
        c.user_data().published[1],
        ("v5/r/1".into(), Some(ReasonCode::Success))
    );
    run_until(&mut c, "own message", |s| !s.messages.is_empty()).await;

    within("unsubscribe", c.unsubscribe("v5/r/#"))
        .await
        .unwrap();
    within("unsubscribe again", c.unsubscribe("v5/r/#"))
        .await
        .unwrap();
    assert_eq!(
        c.user_data().unsubscribed,
        [
            ("v5/r/#".into(), Some(ReasonCode::Success)),
            ("v5/r/#".into(), Some(ReasonCode::NoSubscriptionExisted)),
        ]
    );
    within("disconnect", c.disconnect()).await.unwrap();
    check(&mosquitto).await;
}

#[tokio::test]
async fn publish_properties_travel_both_ways() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let mut c = client(&mosquitto, config("v5-props"));
    within("connect", c.connect()).await.unwrap();
    within("subscribe", c.subscribe("v5/p", QoS::AtLeastOnce))
        .await
        .unwrap();
    let props = [
        Property::PayloadFormatIndicator(1),
        Property::MessageExpiryInterval(300),
        Property::ContentType("text/plain"),
        Property::UserProperty("unit", "celsius"),
        Property::UserProperty("site", "north"),
    ];
    let pid = within(
        "publish_with",
        c.publish_with(
            "v5/p",
            b"21.5",
            QoS::AtLeastOnce,
            false,
            &Properties::new(&props),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    within("puback", c.wait_published(pid)).await.unwrap();
    run_until(&mut c, "own message", |s| !s.messages.is_empty()).await;
    let got = &c.user_data().messages[0];
    assert_eq!(got.payload, b"21.5");
    assert_eq!(got.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        got.user,
        [
            ("unit".to_owned(), "celsius".to_owned()),
            ("site".to_owned(), "north".to_owned())
        ]
    );
    // The broker forwards the expiry minus the time the message waited.
    assert!(got.expiry.is_some_and(|e| e <= 300 && e > 290), "{got:?}");
    within("disconnect", c.disconnect()).await.unwrap();
    check(&mosquitto).await;
}

/// A message larger than the receive buffer, streamed to a stream route,
/// carries its properties in every part.
#[cfg(feature = "streaming")]
#[tokio::test]
async fn a_streamed_message_carries_its_properties() {
    use minimqtt::callbacks::{Part, Stream};
    fn on_stream(ctx: &mut Ctx<'_>, s: &Stream<'_>) {
        let p = &s.properties;
        let seen = &mut ctx.user_data.messages;
        if s.part == Part::Start {
            seen.push(Received {
                topic: s.topic.to_owned(),
                payload: Vec::new(),
                user: p
                    .user_properties()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                content_type: p.content_type().map(str::to_owned),
                response_topic: None,
                correlation: None,
                expiry: None,
            });
        }
        let Some(last) = seen.last_mut() else { return };
        // Every part has them.
        assert_eq!(p.content_type().map(str::to_owned), last.content_type);
        if let Part::Chunk { data, .. } = s.part {
            last.payload.extend_from_slice(data);
        }
        if s.part == Part::End {
            last.expiry = Some(1);
        }
    }
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let mut c = client(&mosquitto, config("v5-stream-props"));
    c.callbacks_mut()
        .add_stream_callback("v5/big", on_stream)
        .unwrap();
    within("connect", c.connect()).await.unwrap();
    within("subscribe", c.subscribe("v5/big", QoS::AtLeastOnce))
        .await
        .unwrap();
    let body: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    let props = [
        Property::ContentType("application/octet-stream"),
        Property::UserProperty("image", "7"),
    ];
    let pid = within(
        "publish_with",
        c.publish_with(
            "v5/big",
            &body,
            QoS::AtLeastOnce,
            false,
            &Properties::new(&props),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    within("puback", c.wait_published(pid)).await.unwrap();
    run_until(&mut c, "the streamed message", |s| {
        s.messages.first().is_some_and(|m| m.expiry.is_some())
    })
    .await;
    let got = &c.user_data().messages[0];
    assert_eq!(got.topic, "v5/big");
    assert_eq!(got.payload, body);
    assert_eq!(
        got.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(got.user, [("image".to_owned(), "7".to_owned())]);
    within("disconnect", c.disconnect()).await.unwrap();
    check(&mosquitto).await;
}

#[tokio::test]
async fn request_and_response_with_correlation_data() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let mut responder = client(&mosquitto, config("v5-responder"));
    responder
        .callbacks_mut()
        .add_topic_callback("v5/service/+", respond)
        .unwrap();
    within("connect", responder.connect()).await.unwrap();
    within(
        "subscribe",
        responder.subscribe("v5/service/+", QoS::AtLeastOnce),
    )
    .await
    .unwrap();

    let mut requester = client(&mosquitto, config("v5-requester"));
    within("connect", requester.connect()).await.unwrap();
    within(
        "subscribe",
        requester.subscribe("v5/replies/requester", QoS::AtLeastOnce),
    )
    .await
    .unwrap();
    for (i, id) in [&b"req-1"[..], b"req-2"].into_iter().enumerate() {
        let props = [
            Property::ResponseTopic("v5/replies/requester"),
            Property::CorrelationData(id),
        ];
        requester
            .publish_with(
                "v5/service/echo",
                b"ping",
                QoS::AtLeastOnce,
                false,
                &Properties::new(&props),
            )
            .await
            .unwrap();
        within("the answer", async {
            while requester.user_data().messages.len() < i + 1 {
                responder.run_for(Duration::from_millis(10)).await.unwrap();
                requester.run_for(Duration::from_millis(10)).await.unwrap();
            }
        })
        .await;
        let answer = &requester.user_data().messages[i];
        assert_eq!(answer.topic, "v5/replies/requester");
        assert_eq!(answer.payload, b"re: ping");
        assert_eq!(answer.correlation.as_deref(), Some(id));
    }
    let request = &responder.user_data().messages[0];
    assert_eq!(
        request.response_topic.as_deref(),
        Some("v5/replies/requester")
    );
    within("disconnect", requester.disconnect()).await.unwrap();
    within("disconnect", responder.disconnect()).await.unwrap();
    check(&mosquitto).await;
}

#[tokio::test]
async fn subscription_options_no_local_and_retain_handling() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let mut c = client(&mosquitto, config("v5-options"));
    within("connect", c.connect()).await.unwrap();
    // A retained message before the subscriptions.
    let pid = c
        .publish("v5/o/kept", b"old", QoS::AtLeastOnce, true)
        .await
        .unwrap()
        .unwrap();
    within("puback", c.wait_published(pid)).await.unwrap();
    let no_local = SubscriptionOptions {
        no_local: true,
        retain_handling: RetainHandling::DoNotSend,
        ..SubscriptionOptions::new(QoS::AtLeastOnce)
    };
    assert_eq!(
        within("subscribe", c.subscribe_with("v5/o/#", no_local, None))
            .await
            .unwrap(),
        ReasonCode::GrantedQoS1
    );
    // Our own publication is not sent back (No Local), nor was the
    // retained one (Retain Handling 2).
    let pid = c
        .publish("v5/o/mine", b"mine", QoS::AtLeastOnce, false)
        .await
        .unwrap()
        .unwrap();
    within("puback", c.wait_published(pid)).await.unwrap();
    // Another client's publication is.
    let mut other = client(&mosquitto, config("v5-options-other"));
    within("connect", other.connect()).await.unwrap();
    let pid = other
        .publish("v5/o/theirs", b"theirs", QoS::AtLeastOnce, false)
        .await
        .unwrap()
        .unwrap();
    within("puback", other.wait_published(pid)).await.unwrap();
    run_until(&mut c, "their message", |s| !s.messages.is_empty()).await;
    c.run_for(Duration::from_millis(200)).await.unwrap();
    let topics: Vec<_> = c
        .user_data()
        .messages
        .iter()
        .map(|m| m.topic.clone())
        .collect();
    assert_eq!(topics, ["v5/o/theirs"]);
    // Clean up the retained message.
    other
        .publish("v5/o/kept", b"", QoS::AtLeastOnce, true)
        .await
        .unwrap();
    within("disconnect", other.disconnect()).await.unwrap();
    within("disconnect", c.disconnect()).await.unwrap();
    check(&mosquitto).await;
}

#[tokio::test]
async fn session_expiry_keeps_the_session_across_connections() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let persistent = Config {
        clean_session: false,
        session_expiry_secs: Some(60),
        ..config("v5-expiry")
    };
    let mut c = client(&mosquitto, persistent);
    assert!(!within("connect", c.connect()).await.unwrap());
    within("subscribe", c.subscribe("v5/e", QoS::AtLeastOnce))
        .await
        .unwrap();
    within("disconnect", c.disconnect()).await.unwrap();

    // While it is away, a message for it is queued by the broker.
    let mut other = client(&mosquitto, config("v5-expiry-other"));
    within("connect", other.connect()).await.unwrap();
    let pid = other
        .publish("v5/e", b"while away", QoS::AtLeastOnce, false)
        .await
        .unwrap()
        .unwrap();
    within("puback", other.wait_published(pid)).await.unwrap();
    within("disconnect", other.disconnect()).await.unwrap();

    assert!(
        within("reconnect", c.connect()).await.unwrap(),
        "session present"
    );
    run_until(&mut c, "the queued message", |s| !s.messages.is_empty()).await;
    assert_eq!(c.user_data().messages[0].payload, b"while away");
    within("disconnect", c.disconnect()).await.unwrap();

    // Session expiry 0: the broker forgets it at the disconnect.
    let transient = Config {
        clean_session: false,
        session_expiry_secs: Some(0),
        ..config("v5-expiry")
    };
    let mut c = client(&mosquitto, transient);
    // The kept session is found once more, then ends with this connection.
    assert!(within("connect", c.connect()).await.unwrap());
    within("disconnect", c.disconnect()).await.unwrap();
    assert!(!within("connect", c.connect()).await.unwrap());
    within("disconnect", c.disconnect()).await.unwrap();
    check(&mosquitto).await;
}

/// `disconnect_with`: reason 0x04 has the broker publish the will, as a
/// lost connection would (§3.14.2.1), and a Session Expiry Interval of 0
/// ends a kept session with the connection.
#[tokio::test]
async fn disconnect_with_a_reason_and_a_session_expiry() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let mut watcher = client(&mosquitto, config("v5-will-watcher"));
    within("connect", watcher.connect()).await.unwrap();
    within("subscribe", watcher.subscribe("v5/will", QoS::AtLeastOnce))
        .await
        .unwrap();

    let with_will = Config {
        will: Some(minimqtt::codec::LastWill {
            topic: "v5/will",
            message: b"gone",
            qos: QoS::AtLeastOnce,
            retain: false,
        }),
        ..config("v5-will")
    };
    let mut c = client(&mosquitto, with_will);
    within("connect", c.connect()).await.unwrap();
    let goodbye = Disconnect {
        reason_code: ReasonCode::DisconnectWithWillMessage,
        ..Disconnect::new()
    };
    within("disconnect", c.disconnect_with(&goodbye))
        .await
        .unwrap();
    assert!(!c.is_connected());
    run_until(&mut watcher, "the will", |s| !s.messages.is_empty()).await;
    assert_eq!(watcher.user_data().messages[0].payload, b"gone");

    // Kept for a minute by the CONNECT; the DISCONNECT's 0 ends it.
    let persistent = Config {
        clean_session: false,
        session_expiry_secs: Some(60),
        ..config("v5-expiry-at-disconnect")
    };
    let mut c = client(&mosquitto, persistent);
    assert!(!within("connect", c.connect()).await.unwrap());
    static NOW: [Property<'static>; 1] = [Property::SessionExpiryInterval(0)];
    let goodbye = Disconnect {
        properties: Properties::new(&NOW),
        ..Disconnect::new()
    };
    within("disconnect", c.disconnect_with(&goodbye))
        .await
        .unwrap();
    assert!(
        !within("reconnect", c.connect()).await.unwrap(),
        "no session"
    );
    within("disconnect", c.disconnect()).await.unwrap();
    within("disconnect", watcher.disconnect()).await.unwrap();
    check(&mosquitto).await;
}

/// mosquitto 2.0.11 closes a taken-over MQTT 5 connection without a
/// DISCONNECT (checked over raw TCP; MQTT 5 makes the DISCONNECT 0x8E a
/// SHOULD, §4.13.2): the client reports a lost connection. (The scripted
/// broker of `tests/v5_fake_broker.rs` covers DISCONNECT with reason codes.)
#[tokio::test]
async fn a_session_taken_over_ends_the_old_connection() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let mut first = client(&mosquitto, config("v5-twin"));
    within("connect", first.connect()).await.unwrap();
    let mut second = client(&mosquitto, config("v5-twin"));
    within("connect", second.connect()).await.unwrap();
    let error = within("the takeover", async {
        loop {
            if let Err(e) = first.poll(Duration::from_millis(50)).await {
                break e;
            }
        }
    })
    .await;
    assert!(
        matches!(
            error,
            Error::ConnectionClosed
                | Error::Broker(BrokerError::Disconnected(ReasonCode::SessionTakenOver))
        ),
        "{error:?}"
    );
    assert_eq!(first.user_data().disconnects.len(), 1);
    assert!(!first.is_connected());
    within("disconnect", second.disconnect()).await.unwrap();
    check(&mosquitto).await;
}

/// mosquitto's `max_keepalive` comes back as Server Keep Alive, which
/// replaces ours: the next PINGREQ is due within it.
#[tokio::test]
async fn server_keep_alive_replaces_ours() {
    let options = common::mosquitto::MosquittoOptions {
        extra_config: vec!["max_keepalive 10".into()],
        ..Default::default()
    };
    let Some(mosquitto) = Mosquitto::start_with(options).await else {
        return;
    };
    let clock = TokioClock::new();
    let mut c = client(&mosquitto, config("v5-keepalive"));
    within("connect", c.connect()).await.unwrap();
    let connected = minimqtt::time::Clock::now(&clock);
    let ping = c.session().poll_timeout().expect("a keep-alive deadline");
    // Ours is 60 s; the broker's 10 s wins, and the PINGREQ goes a
    // little before it.
    assert!(
        ping - connected <= Duration::from_secs(10),
        "{ping:?} {connected:?}"
    );
    assert!(
        ping - connected >= Duration::from_secs(8),
        "{ping:?} {connected:?}"
    );
    within("idle", c.run_for(Duration::from_millis(300)))
        .await
        .unwrap();
    assert!(c.is_connected());
    within("disconnect", c.disconnect()).await.unwrap();
    check(&mosquitto).await;
}

/// The same callbacks on an MQTT 3.1.1 connection see no reason codes:
/// MQTT 3.1.1 acknowledgements have none.
#[tokio::test]
async fn reason_codes_are_none_on_mqtt_3_1_1() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let v3 = Config {
        version: Version::V3_1_1,
        ..config("v5-on-v3")
    };
    let mut c = client(&mosquitto, v3);
    within("connect", c.connect()).await.unwrap();
    within("subscribe", c.subscribe("v3/r", QoS::AtLeastOnce))
        .await
        .unwrap();
    let pid = within("publish", c.publish("v3/r", b"x", QoS::AtLeastOnce, false))
        .await
        .unwrap()
        .unwrap();
    within("puback", c.wait_published(pid)).await.unwrap();
    within("unsubscribe", c.unsubscribe("v3/r")).await.unwrap();
    let seen = c.user_data();
    assert_eq!(seen.subscribed, [("v3/r".into(), None)]);
    assert_eq!(seen.published, [("v3/r".into(), None)]);
    assert_eq!(seen.unsubscribed, [("v3/r".into(), None)]);
    within("disconnect", c.disconnect()).await.unwrap();
    check(&mosquitto).await;
}

/// mosquitto offers topic aliases (its CONNACK's Topic Alias Maximum, 10
/// by default): repeated topics go out as aliases, and every message
/// still reaches the right topic.
#[tokio::test]
async fn topic_aliases_reach_the_right_topics() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let mut c = client(&mosquitto, config("v5-aliases"));
    within("connect", c.connect()).await.unwrap();
    assert!(c.session().limits().topic_alias_maximum > 0);
    within("subscribe", c.subscribe("v5/a/#", QoS::AtLeastOnce))
        .await
        .unwrap();
    let topics = ["v5/a/1", "v5/a/2"];
    for i in 0..10u8 {
        let qos = if i % 3 == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        let topic = topics[usize::from(i % 2)];
        within("publish", c.publish(topic, &[i], qos, false))
            .await
            .unwrap();
    }
    run_until(&mut c, "ten messages", |s| s.messages.len() == 10).await;
    let mut got: Vec<_> = c
        .user_data()
        .messages
        .iter()
        .map(|m| (m.payload[0], m.topic.clone()))
        .collect();
    got.sort();
    let want: Vec<_> = (0..10u8)
        .map(|i| (i, topics[usize::from(i % 2)].to_owned()))
        .collect();
    assert_eq!(got, want);
    within("disconnect", c.disconnect()).await.unwrap();
    check(&mosquitto).await;
}

/// With no client id, mosquitto assigns one (Assigned Client Identifier);
/// the client connects with it the next time, and finds its session.
#[tokio::test]
async fn an_assigned_client_id_resumes_the_session() {
    let Some(mosquitto) = Mosquitto::start().await else {
        return;
    };
    let config = Config {
        clean_session: false,
        session_expiry_secs: Some(60),
        ..config("")
    };
    let mut c = client(&mosquitto, config);
    assert!(!within("connect", c.connect()).await.unwrap());
    let assigned = c.user_data().connects[0].1.clone().expect("an assigned id");
    assert_eq!(c.client_id(), assigned);
    within("disconnect", c.disconnect()).await.unwrap();
    assert!(
        within("reconnect", c.connect()).await.unwrap(),
        "session present"
    );
    assert_eq!(c.user_data().connects[1].1, None);
    within("disconnect", c.disconnect()).await.unwrap();
    check(&mosquitto).await;
}
