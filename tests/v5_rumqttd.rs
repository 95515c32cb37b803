//! MQTT 5 against rumqttd's MQTT 5 listener, for what mosquitto does not
//! do: rumqttd sends Topic Aliases to a client that advertises a Topic
//! Alias Maximum.
//!
//! rumqttd 0.20 assigns its aliases per subscription *filter*
//! (`BrokerAliases::broker_topic_aliases: HashMap<Filter, u16>` in
//! `router/connection.rs`) and leaves the topic out when it reuses one,
//! so two topics matching one wildcard filter arrive as the first topic:
//! an alias must stand for one topic name (MQTT 5 §3.3.2.3.4). The test
//! subscribes to each topic by its own filter, where rumqttd's aliases are
//! right.

mod common;

use std::time::Duration as StdDuration;

use common::broker::Broker;
use embedded_io_adapters::tokio_1::FromTokio;
use minimqtt::callbacks::{Connected, DisconnectReason};
use minimqtt::codec::v5::{Properties, Property, ReasonCode};
use minimqtt::session::Version;
use minimqtt::time::{Duration, TokioClock};
use minimqtt::{Buffers, Callbacks, Client, Config, Connector, Context, Message, QoS};

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

fn config(client_id: &'static str) -> Config<'static> {
    Config {
        version: Version::V5,
        ..Config::new(client_id)
    }
}

fn client(broker: &Broker, config: Config<'static>) -> TestClient {
    let buffers = Box::leak(Box::new(Buffers::<1024, 3072, 1024>::new()));
    let callbacks = Callbacks::new()
        .on_connect(on_connect)
        .on_disconnect(on_disconnect)
        .on_publish(on_publish)
        .on_subscribe(on_subscribe)
        .on_unsubscribe(on_unsubscribe)
        .on_message(on_message);
    Client::new(
        Tcp(broker.addr()),
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

#[tokio::test]
async fn the_brokers_topic_aliases_resolve_to_their_topics() {
    let broker = Broker::start_v5().await;
    let aliases = [Property::TopicAliasMaximum(8)];
    let config = Config {
        properties: Properties::new(Box::leak(Box::new(aliases))),
        ..config("v5-aliases-in")
    };
    let mut c = client(&broker, config);
    within("connect", c.connect()).await.unwrap();
    let topics = ["v5/in/one", "v5/in/two"];
    for topic in topics {
        within("subscribe", c.subscribe(topic, QoS::AtLeastOnce))
            .await
            .unwrap();
    }
    for i in 0..8u8 {
        let topic = topics[usize::from(i % 2)];
        let pid = within("publish", c.publish(topic, &[i], QoS::AtLeastOnce, false))
            .await
            .unwrap()
            .unwrap();
        within("puback", c.wait_published(pid)).await.unwrap();
    }
    run_until(&mut c, "eight messages", |s| s.messages.len() == 8).await;
    let got: Vec<_> = c
        .user_data()
        .messages
        .iter()
        .map(|m| (m.payload[0], m.topic.clone()))
        .collect();
    let want: Vec<_> = (0..8u8)
        .map(|i| (i, topics[usize::from(i % 2)].to_owned()))
        .collect();
    assert_eq!(got, want);
    within("disconnect", c.disconnect()).await.unwrap();
}
