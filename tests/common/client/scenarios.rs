//! Client scenarios, each an `async fn(Env)`: the test files run every one
//! against rumqttd and mosquitto, once per transport [`Mode`]. A scenario
//! asserts the callbacks' order and arguments; where the broker decides
//! an order (a PUBACK racing the echo of our own message), it asserts the
//! set instead.
//!
//! Packet ids of our own requests are asserted exactly: the session
//! allocates them in sequence from 1.

use std::time::Duration as StdDuration;

use minimqtt::callbacks::DisconnectReason;
use minimqtt::codec::{ConnectReturnCode, PacketType};
use minimqtt::{BrokerError, UsageError};
use minimqtt::{Error, LastWill, QoS, SubscribeReturnCode, Subscription};

use super::*;

const QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

fn granted(qos: QoS) -> SubscribeReturnCode {
    SubscribeReturnCode::Success(qos)
}

/// A recognisable payload of `len` bytes.
fn payload(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ salt)
        .collect()
}

/// How long to watch for something that must *not* happen.
const QUIET: StdDuration = StdDuration::from_millis(250);

/// MiniMQTT's code walkthrough: connect, subscribe, publish to ourselves,
/// receive through a topic callback, unsubscribe, disconnect.
pub async fn walkthrough(env: Env) {
    let topic = "minimqtt/walkthrough";
    let mut peer = Peer::new(&env, config("walkthrough"), Sizes::default()).await;
    let via = peer.route(topic);

    assert!(!peer.connect_ok().await, "fresh broker: no session");
    assert!(peer.is_connected());
    assert_eq!(peer.take(), [Ev::connected(false)]);

    let code = peer.subscribe_ok(topic, QoS::AtLeastOnce).await;
    assert_eq!(code, granted(QoS::AtLeastOnce));
    assert_eq!(peer.take(), [Ev::subscribed(topic, QoS::AtLeastOnce, 1)]);

    let pid = peer
        .publish_ok(topic, b"Hello Broker!", QoS::AtLeastOnce, false)
        .await;
    assert_eq!(pid, Some(2));
    peer.poll_until("our own message", |e| e.iter().any(Ev::is_message))
        .await;
    assert_unordered(
        &peer.take(),
        &[
            Ev::published(topic, Some(2)),
            Ev::msg(via, topic, b"Hello Broker!", QoS::AtLeastOnce),
        ],
    );

    assert_eq!(peer.unsubscribe_ok(topic).await, 3);
    assert_eq!(peer.take(), [Ev::unsubscribed(topic, 3)]);

    peer.disconnect_ok().await;
    assert_eq!(peer.take(), [Ev::Disconnect(DisconnectReason::Requested)]);
    assert!(matches!(
        peer.poll_once(StdDuration::from_millis(10)).await,
        Err(Error::Usage(UsageError::NotConnected))
    ));
    assert_eq!(
        peer.stats.get().written_types(),
        [
            PacketType::Connect,
            PacketType::Subscribe,
            PacketType::Publish,
            PacketType::PubAck,
            PacketType::Unsubscribe,
            PacketType::Disconnect,
        ]
    );
}

/// The sizes of the round trips: empty, one byte, and the largest payload
/// whose PUBLISH fits the receive buffer exactly.
fn round_trip_sizes(env: &Env, rx: usize, topic: &str, qos: QoS) -> [usize; 3] {
    let max = env.max_payload(rx, topic, qos);
    assert_eq!(env.publish_len(topic, qos, max), rx);
    [0, 1, max]
}

/// QoS 0, 1 and 2 messages to ourselves, payloads of 0, 1 and the largest
/// size the receive buffer takes.
pub async fn round_trip_self(env: Env) {
    let sizes = Sizes {
        rx: 512,
        arena: 2560,
        outbox: 64,
    };
    let mut peer = Peer::connected_with(&env, config("self"), sizes).await;
    let mut next_pid = 1;
    for qos in QOS {
        let topic = leak(format!("round/self/q{}", qos as u8));
        let via = peer.route(topic);
        assert_eq!(peer.subscribe_ok(topic, qos).await, granted(qos));
        assert_eq!(peer.take(), [Ev::subscribed(topic, qos, next_pid)]);
        next_pid += 1;
        for (i, len) in round_trip_sizes(&env, sizes.rx, topic, qos)
            .into_iter()
            .enumerate()
        {
            let body = payload(len, i as u8);
            let pid = peer.publish_ok(topic, &body, qos, false).await;
            if qos != QoS::AtMostOnce {
                assert_eq!(pid, Some(next_pid));
                next_pid += 1;
            }
            peer.poll_until("the echo", |e| e.iter().any(Ev::is_message))
                .await;
            let events = peer.take();
            let expected = [Ev::published(topic, pid), Ev::msg(via, topic, &body, qos)];
            if qos == QoS::AtMostOnce {
                // `on_publish` runs as the QoS 0 message is written.
                assert_eq!(events, expected, "{len} bytes");
            } else {
                assert_unordered(&events, &expected);
            }
        }
    }
    // Every incoming QoS 1/2 message was acknowledged, every outgoing QoS 2
    // released, and the incoming QoS 2 handshakes completed.
    peer.poll_until_stats("PUBCOMPs", |s| s.count_written(PacketType::PubComp) == 3)
        .await;
    {
        let stats = peer.stats.get();
        assert_eq!(stats.count_written(PacketType::Publish), 9);
        assert_eq!(stats.count_written(PacketType::PubAck), 3);
        assert_eq!(stats.count_written(PacketType::PubRec), 3);
        assert_eq!(stats.count_written(PacketType::PubRel), 3);
        assert_eq!(stats.count_read(PacketType::PubRel), 3);
    }
    assert_eq!(peer.session().inflight(), 0);
    assert_eq!(peer.session().incoming_pending(), 0);
    peer.disconnect_ok().await;
}

/// Checks the transport mode really reshaped the stream (so that a green
/// run in that mode means something).
fn assert_mode_exercised(env: &Env, stats: &super::super::transport::Stats) {
    match env.mode {
        Mode::Passthrough => {}
        Mode::OneByte => assert_eq!(stats.reads, stats.bytes_read),
        Mode::RandomSplit => assert!(stats.split_reads > 0, "{stats:#?}"),
        Mode::Merge => assert!(stats.max_packets_per_read >= 2, "{stats:#?}"),
        Mode::PartialWrites => assert!(stats.writes > stats.written.len(), "{stats:#?}"),
    }
}

/// QoS 0, 1 and 2 messages from a second client, of every size; then a
/// burst of QoS 1 messages arrives in order.
pub async fn round_trip_between_clients(env: Env) {
    let sizes = Sizes {
        rx: 512,
        arena: 4608,
        outbox: 64,
    };
    let mut sub = Peer::connected_with(&env, config("pair-sub"), sizes).await;
    let mut publisher = Peer::connected_with(&env, config("pair-pub"), sizes).await;
    assert_eq!(
        sub.subscribe_ok("pair/#", QoS::ExactlyOnce).await,
        granted(QoS::ExactlyOnce)
    );
    assert_eq!(sub.take(), [Ev::subscribed("pair/#", QoS::ExactlyOnce, 1)]);

    let mut next_pid = 1;
    let mut delivered_qos = Vec::new();
    for qos in QOS {
        let topic = leak(format!("pair/q{}", qos as u8));
        // The largest payload is the largest the *delivered* PUBLISH takes.
        let delivered = env.delivered(qos, QoS::ExactlyOnce);
        for (i, len) in round_trip_sizes(&env, sizes.rx, topic, delivered)
            .into_iter()
            .enumerate()
        {
            let body = payload(len, 0x40 | i as u8);
            let pid = publisher.publish_ok(topic, &body, qos, false).await;
            if qos != QoS::AtMostOnce {
                assert_eq!(pid, Some(next_pid));
                next_pid += 1;
            }
            assert_eq!(publisher.take(), [Ev::published(topic, pid)]);
            sub.poll_events("the message", 1).await;
            delivered_qos.push(delivered);
            assert_eq!(
                sub.take(),
                [Ev::msg(Via::OnMessage, topic, &body, delivered)]
            );
        }
    }

    // A burst: the window holds all of it, the subscriber gets it in order.
    let mut pids = Vec::new();
    for i in 0..5 {
        let body = format!("burst-{i}");
        let pid = within(
            "publish",
            publisher.publish("pair/burst", body.as_bytes(), QoS::AtLeastOnce, false),
        )
        .await
        .expect("publish");
        pids.push(pid.expect("QoS 1 has an id"));
    }
    for &pid in &pids {
        within("wait_published", publisher.wait_published(pid))
            .await
            .expect("wait_published");
    }
    let expected: Vec<Ev> = pids
        .iter()
        .map(|&pid| Ev::published("pair/burst", Some(pid)))
        .collect();
    assert_eq!(publisher.take(), expected);
    sub.poll_events("the burst", 5).await;
    let burst_qos = env.delivered(QoS::AtLeastOnce, QoS::ExactlyOnce);
    delivered_qos.extend([burst_qos; 5]);
    let expected: Vec<Ev> = (0..5)
        .map(|i| {
            let body = format!("burst-{i}");
            Ev::msg(Via::OnMessage, "pair/burst", body.as_bytes(), burst_qos)
        })
        .collect();
    assert_eq!(sub.take(), expected);

    let count = |qos| delivered_qos.iter().filter(|&&q| q == qos).count();
    let (qos1, qos2) = (count(QoS::AtLeastOnce), count(QoS::ExactlyOnce));
    sub.poll_until_stats("PUBCOMPs", |s| s.count_written(PacketType::PubComp) == qos2)
        .await;
    {
        let stats = sub.stats.get();
        assert_eq!(stats.count_written(PacketType::PubAck), qos1);
        assert_eq!(stats.count_written(PacketType::PubRec), qos2);
        assert_mode_exercised(&env, &stats);
    }
    assert_mode_exercised(&env, &publisher.stats.get());
    sub.disconnect_ok().await;
    publisher.disconnect_ok().await;
}

/// Polls until `on_message_dropped` reports a message too large for the
/// receive buffer, with its length and topic; `poll` never fails for it.
async fn expect_too_large(peer: &mut Peer, len: usize, topic: &str) {
    peer.poll_until("on_message_dropped", |events| {
        events.iter().any(|e| matches!(e, Ev::Dropped { .. }))
    })
    .await;
    assert_eq!(
        peer.take(),
        [Ev::Dropped {
            len,
            topic: Some(topic.into())
        }]
    );
}

/// A message larger than the receive buffer: `on_message_dropped` reports
/// it with its length and topic, the QoS 1/2 handshake is still
/// completed (so the broker does not redeliver), and the next message
/// arrives on the same connection.
pub async fn too_large(env: Env) {
    let small = Sizes {
        rx: 128,
        ..Sizes::default()
    };
    let mut sub = Peer::connected_with(&env, config("large-sub"), small).await;
    let mut publisher = Peer::connected(&env, "large-pub").await;
    sub.subscribe_ok("large/#", QoS::ExactlyOnce).await;
    sub.take();

    let mut delivered_qos = Vec::new();
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtMostOnce] {
        let topic = leak(format!("large/q{}", qos as u8));
        let big = payload(200, 1);
        let delivered = env.delivered(qos, QoS::ExactlyOnce);
        delivered_qos.extend([delivered; 2]);
        publisher.publish_ok(topic, &big, qos, false).await;
        let acks_before = sub.stats.get().written.len();
        expect_too_large(
            &mut sub,
            env.publish_len(topic, delivered, big.len()),
            topic,
        )
        .await;
        assert!(sub.is_connected(), "the connection survives");
        // The acknowledgement went out before `poll` returned: an
        // application that stops polling must not leave it unsent.
        let expected_ack = match delivered {
            QoS::AtMostOnce => vec![],
            QoS::AtLeastOnce => vec![PacketType::PubAck],
            QoS::ExactlyOnce => vec![PacketType::PubRec],
        };
        // (The PUBREL may already have come, and its PUBCOMP gone out.)
        let written = sub.stats.get().written_types()[acks_before..].to_vec();
        assert!(
            written.starts_with(&expected_ack)
                && written[expected_ack.len()..]
                    .iter()
                    .all(|t| *t == PacketType::PubComp),
            "acknowledgement of the dropped message: {written:?}"
        );
        assert!(sub.events().is_empty(), "{:#?}", sub.events());

        let after = format!("after q{}", qos as u8);
        publisher
            .publish_ok(topic, after.as_bytes(), qos, false)
            .await;
        sub.poll_events("the next message", 1).await;
        assert_eq!(
            sub.take(),
            [Ev::msg(Via::OnMessage, topic, after.as_bytes(), delivered)]
        );
    }
    // Every QoS 1 message got PUBACK, every QoS 2 one PUBREC and PUBCOMP,
    // the dropped ones included.
    let count = |qos| delivered_qos.iter().filter(|&&q| q == qos).count();
    let (qos1, qos2) = (count(QoS::AtLeastOnce), count(QoS::ExactlyOnce));
    sub.poll_until_stats("acks", |s| s.count_written(PacketType::PubComp) == qos2)
        .await;
    {
        let stats = sub.stats.get();
        assert_eq!(stats.count_written(PacketType::PubAck), qos1);
        assert_eq!(stats.count_written(PacketType::PubRec), qos2);
    }
    // Nothing is redelivered.
    assert_eq!(sub.idle(QUIET).await, []);
    assert_eq!(sub.session().incoming_pending(), 0);
    sub.disconnect_ok().await;
}

/// Retained messages reach a later subscriber with the retain flag; an
/// empty retained payload clears them.
pub async fn retained(env: Env) {
    let mut publisher = Peer::connected(&env, "retain-pub").await;
    publisher
        .publish_ok("retained/a", b"keep me", QoS::AtLeastOnce, true)
        .await;
    publisher
        .publish_ok("retained/b", b"me too", QoS::AtMostOnce, true)
        .await;

    let mut sub = Peer::connected(&env, "retain-sub").await;
    let via = sub.route("retained/+");
    assert_eq!(
        sub.subscribe_ok("retained/#", QoS::AtLeastOnce).await,
        granted(QoS::AtLeastOnce)
    );
    sub.poll_events("retained messages", 3).await;
    let events = sub.take();
    assert_eq!(
        events[0],
        Ev::subscribed("retained/#", QoS::AtLeastOnce, 1),
        "SUBACK comes before the retained messages"
    );
    assert_unordered(
        &events[1..],
        &[
            Ev::retained_msg(via, "retained/a", b"keep me", QoS::AtLeastOnce),
            Ev::retained_msg(
                via,
                "retained/b",
                b"me too",
                env.delivered(QoS::AtMostOnce, QoS::AtLeastOnce),
            ),
        ],
    );

    // Live messages to an existing subscription carry retain 0, even when
    // published retained (MQTT-3.3.1-9), and so does the clearing one.
    publisher
        .publish_ok("retained/a", b"live", QoS::AtLeastOnce, false)
        .await;
    publisher
        .publish_ok("retained/a", b"", QoS::AtLeastOnce, true)
        .await;
    sub.poll_events("live messages", 2).await;
    assert_eq!(
        sub.take(),
        [
            Ev::msg(via, "retained/a", b"live", QoS::AtLeastOnce),
            Ev::msg(via, "retained/a", b"", QoS::AtLeastOnce),
        ]
    );

    // A new subscriber gets only what is still retained.
    let mut late = Peer::connected(&env, "retain-late").await;
    late.subscribe_ok("retained/#", QoS::ExactlyOnce).await;
    late.poll_events("retained/b", 2).await;
    assert_eq!(
        late.take(),
        [
            Ev::subscribed("retained/#", QoS::ExactlyOnce, 1),
            Ev::retained_msg(
                Via::OnMessage,
                "retained/b",
                b"me too",
                env.delivered(QoS::AtMostOnce, QoS::ExactlyOnce),
            ),
        ]
    );
    assert_eq!(late.idle(QUIET).await, [], "retained/a was cleared");

    for peer in [&mut publisher, &mut sub, &mut late] {
        peer.disconnect_ok().await;
    }
}

fn will_config(
    client_id: &str,
    topic: &'static str,
    message: &'static [u8],
) -> minimqtt::Config<'static> {
    minimqtt::Config {
        will: Some(LastWill {
            topic,
            message,
            qos: QoS::AtLeastOnce,
            retain: false,
        }),
        ..config(client_id)
    }
}

/// The last will reaches another client when ours drops the connection
/// without DISCONNECT, and not after a normal disconnect.
pub async fn last_will(env: Env) {
    let mut observer = Peer::connected(&env, "will-observer").await;
    observer.subscribe_ok("will/#", QoS::AtLeastOnce).await;
    observer.take();

    // A clean DISCONNECT discards the will.
    let config = will_config("will-polite", "will/polite", b"polite gone");
    let mut polite = Peer::connected_with(&env, config, Sizes::default()).await;
    polite.disconnect_ok().await;
    assert_eq!(
        polite.stats.get().written_types(),
        [PacketType::Connect, PacketType::Disconnect]
    );
    drop(polite);

    // Dropping the client closes the socket without DISCONNECT.
    let config = will_config("will-rude", "will/rude", b"rude gone");
    let rude = Peer::connected_with(&env, config, Sizes::default()).await;
    assert_eq!(rude.stats.get().written_types(), [PacketType::Connect]);
    drop(rude);

    observer.poll_events("the will", 1).await;
    assert_eq!(
        observer.take(),
        [Ev::msg(
            Via::OnMessage,
            "will/rude",
            b"rude gone",
            QoS::AtLeastOnce
        )]
    );
    assert_eq!(observer.idle(QUIET).await, [], "no will after DISCONNECT");
    observer.disconnect_ok().await;
}

fn login(
    client_id: &str,
    username: &'static str,
    password: Option<&'static [u8]>,
) -> minimqtt::Config<'static> {
    minimqtt::Config {
        username: Some(username),
        password,
        ..config(client_id)
    }
}

/// A refused CONNECT: mosquitto answers CONNACK 5; rumqttd closes the
/// connection without CONNACK. Either way `connect` fails and
/// `on_disconnect` says why.
async fn expect_refused(env: &Env, config: minimqtt::Config<'static>) {
    let mut peer = Peer::new(env, config, Sizes::default()).await;
    let result = within("connect", peer.client.connect()).await;
    match (env.kind, result) {
        (
            BrokerKind::Mosquitto,
            Err(Error::Broker(BrokerError::Refused(ConnectReturnCode::NotAuthorized))),
        ) => {
            assert_eq!(
                peer.take(),
                [Ev::Disconnect(DisconnectReason::Refused(
                    ConnectReturnCode::NotAuthorized
                ))]
            );
        }
        // MQTT 5: the reason code mosquitto gives (0x87 or 0x86 for bad
        // credentials).
        (BrokerKind::Mosquitto, Err(Error::Broker(BrokerError::RefusedV5(code))))
            if env.is_v5() =>
        {
            assert!(code.is_permanent_refusal(), "{code:?}");
            assert_eq!(
                peer.take(),
                [Ev::Disconnect(DisconnectReason::RefusedV5(code))]
            );
        }
        (BrokerKind::Rumqttd, Err(Error::ConnectionClosed | Error::Transport(_))) => {
            assert_eq!(
                peer.take(),
                [Ev::Disconnect(DisconnectReason::ConnectionLost)]
            );
        }
        (kind, other) => panic!("{kind:?}: expected a refusal, got {other:?}"),
    }
    assert!(!peer.is_connected());
    assert!(matches!(
        peer.poll_once(StdDuration::from_millis(10)).await,
        Err(Error::Usage(UsageError::NotConnected))
    ));
    assert!(matches!(
        peer.publish("x", b"", QoS::AtLeastOnce, false).await,
        Err(Error::Usage(UsageError::NotConnected))
    ));
}

/// The CONNECT flags byte (after the protocol name and level).
fn connect_flags(connect: &[u8]) -> u8 {
    let header = minimqtt::codec::FixedHeader::decode(connect).expect("CONNECT header");
    connect[usize::from(header.header_len) + 7]
}

/// `auth` requires user `alice` / password `secret`; `open` is anonymous.
pub async fn credentials(auth: Env, open: Env) {
    let alice = login("login-ok", "alice", Some(b"secret"));
    let mut peer = Peer::connected_with(&auth, alice, Sizes::default()).await;
    assert_eq!(
        connect_flags(&peer.stats.get().written[0].bytes) & 0xC0,
        0xC0,
        "user name and password flags"
    );
    assert_eq!(
        peer.subscribe_ok("auth/t", QoS::AtLeastOnce).await,
        granted(QoS::AtLeastOnce)
    );
    peer.disconnect_ok().await;

    expect_refused(&auth, login("login-bad-password", "alice", Some(b"wrong"))).await;
    expect_refused(&auth, login("login-bad-user", "mallory", Some(b"secret"))).await;
    expect_refused(&auth, login("login-no-password", "alice", None)).await;
    expect_refused(&auth, config("login-anonymous")).await;

    // A user name without a password is valid MQTT 3.1.1 (the password
    // flag is 0): an anonymous broker takes it.
    let mut peer = Peer::connected_with(
        &open,
        login("login-user-only", "bob", None),
        Sizes::default(),
    )
    .await;
    assert_eq!(
        connect_flags(&peer.stats.get().written[0].bytes) & 0xC0,
        0x80,
        "user name flag only"
    );
    peer.disconnect_ok().await;
}

/// Topic callbacks with `+` and `#`: every matching one runs, in the
/// order added; `on_message` only when none matched; wildcards at the
/// first level do not match `$` topics.
pub async fn wildcards(env: Env) {
    let mut peer = Peer::connected(&env, "wild").await;
    let mut publisher = Peer::connected(&env, "wild-pub").await;
    let temp = peer.route("wild/+/temp");
    let all = peer.route("wild/#");
    let kitchen = peer.route("wild/kitchen/+");
    let codes = within(
        "subscribe_many",
        peer.subscribe_many(&[
            Subscription {
                filter: "wild/#",
                qos: QoS::AtMostOnce,
            },
            Subscription {
                filter: "other/+",
                qos: QoS::AtLeastOnce,
            },
        ]),
    )
    .await
    .expect("subscribe_many");
    assert_eq!(codes, [granted(QoS::AtMostOnce), granted(QoS::AtLeastOnce)]);
    assert_eq!(
        peer.take(),
        [
            Ev::subscribed("wild/#", QoS::AtMostOnce, 1),
            Ev::subscribed("other/+", QoS::AtLeastOnce, 1),
        ]
    );

    let cases: [(&str, &[Via]); 6] = [
        ("wild/kitchen/temp", &[temp, all, kitchen]),
        ("wild/hall/temp", &[temp, all]),
        ("wild/kitchen/hum", &[all, kitchen]),
        ("wild", &[all]),
        ("wild/kitchen/temp/raw", &[all]),
        ("other/x", &[Via::OnMessage]),
    ];
    for (topic, vias) in cases {
        publisher
            .publish_ok(topic, topic.as_bytes(), QoS::AtMostOnce, false)
            .await;
        peer.poll_events(topic, vias.len()).await;
        let granted = if topic.starts_with("other/") {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        let qos = env.delivered(QoS::AtMostOnce, granted);
        let expected: Vec<Ev> = vias
            .iter()
            .map(|&via| Ev::msg(via, topic, topic.as_bytes(), qos))
            .collect();
        assert_eq!(peer.take(), expected, "{topic}");
    }

    // Without the `wild/#` callback, `wild` matches none: `on_message`.
    peer.remove_topic_callback("wild/#").expect("remove");
    publisher
        .publish_ok("wild", b"again", QoS::AtMostOnce, false)
        .await;
    peer.poll_events("wild", 1).await;
    assert_eq!(
        peer.take(),
        [Ev::msg(Via::OnMessage, "wild", b"again", QoS::AtMostOnce)]
    );

    // `$` topics: `#` and `+/...` callbacks must not see them.
    let hash = peer.route("#");
    let plus = peer.route("+/sys/#");
    if env.is_mosquitto() {
        // The broker publishes $SYS itself (`sys_interval` set by the
        // test), retained, so subscribing delivers it at once.
        peer.subscribe_ok("$SYS/broker/version", QoS::AtMostOnce)
            .await;
        peer.poll_until("$SYS message", |e| e.iter().any(Ev::is_message))
            .await;
        let events = peer.take();
        let Some(Ev::Message(m)) = events.iter().find(|e| e.is_message()) else {
            unreachable!()
        };
        assert_eq!(m.via, Via::OnMessage, "{events:#?}");
        assert_eq!(m.topic, "$SYS/broker/version");
        assert!(m.payload.starts_with(b"mosquitto"), "{m:?}");
        peer.unsubscribe_ok("$SYS/broker/version").await;
        peer.take();
    }
    // rumqttd 0.20 cannot take part: it drops a client that subscribes to
    // any `$` filter but `$share/...` (`validate_subscription` in its
    // router), and never routes a `$` topic to a subscription.
    if env.is_mosquitto() {
        // A `$` topic a client may publish to.
        peer.subscribe_ok("$app/sys/x", QoS::AtMostOnce).await;
        peer.take();
        publisher
            .publish_ok("$app/sys/x", b"dollar", QoS::AtMostOnce, false)
            .await;
        peer.poll_events("$app message", 1).await;
        assert_eq!(
            peer.take(),
            [Ev::msg(
                Via::OnMessage,
                "$app/sys/x",
                b"dollar",
                QoS::AtMostOnce
            )]
        );
    }
    // ...while the same callbacks do run for ordinary topics.
    publisher
        .publish_ok("wild/sys/x", b"plain", QoS::AtMostOnce, false)
        .await;
    peer.poll_events("wild/sys/x", 2).await;
    assert_eq!(
        peer.take(),
        [
            Ev::msg(hash, "wild/sys/x", b"plain", QoS::AtMostOnce),
            Ev::msg(plus, "wild/sys/x", b"plain", QoS::AtMostOnce),
        ]
    );
    peer.disconnect_ok().await;
    publisher.disconnect_ok().await;
}

/// Callbacks publish, subscribe and unsubscribe through their context; the
/// client carries the requests out after the callback returns.
pub async fn callback_requests(env: Env) {
    let recorder = Recorder {
        subscribe_on_connect: vec![
            ("cb/cmd".into(), QoS::AtLeastOnce),
            ("cb/reply".into(), QoS::AtLeastOnce),
            ("cb/stop".into(), QoS::AtLeastOnce),
        ],
        reactions: vec![
            Reaction {
                topic: "cb/cmd".into(),
                action: Action::Publish {
                    topic: "cb/reply".into(),
                    qos: QoS::AtLeastOnce,
                    retain: false,
                },
            },
            Reaction {
                topic: "cb/cmd".into(),
                action: Action::Publish {
                    topic: "cb/log".into(),
                    qos: QoS::AtMostOnce,
                    retain: false,
                },
            },
            Reaction {
                topic: "cb/stop".into(),
                action: Action::Unsubscribe {
                    filter: "cb/cmd".into(),
                },
            },
            Reaction {
                topic: "cb/stop".into(),
                action: Action::Subscribe {
                    filter: "cb/late".into(),
                    qos: QoS::AtMostOnce,
                },
            },
        ],
        ..Recorder::default()
    };
    let mut peer = Peer::with_recorder(&env, config("cb"), Sizes::default(), recorder).await;
    let cmd = peer.route("cb/cmd");
    let mut other = Peer::connected(&env, "cb-other").await;
    other.subscribe_ok("cb/reply", QoS::AtLeastOnce).await;
    other.subscribe_ok("cb/log", QoS::AtLeastOnce).await;
    other.take();

    // Subscriptions queued by on_connect.
    assert!(!peer.connect_ok().await);
    peer.poll_events("SUBACKs", 4).await;
    assert_eq!(
        peer.take(),
        [
            Ev::connected(false),
            Ev::subscribed("cb/cmd", QoS::AtLeastOnce, 1),
            Ev::subscribed("cb/reply", QoS::AtLeastOnce, 2),
            Ev::subscribed("cb/stop", QoS::AtLeastOnce, 3),
        ]
    );

    // A message callback publishes (QoS 1 and QoS 0).
    other
        .publish_ok("cb/cmd", b"ping", QoS::AtLeastOnce, false)
        .await;
    peer.poll_events("the reaction", 4).await;
    let events = peer.take();
    assert_eq!(
        events[..2],
        [
            Ev::msg(cmd, "cb/cmd", b"ping", QoS::AtLeastOnce),
            // QoS 0: complete as soon as it is written, right after the
            // callback returned.
            Ev::published("cb/log", None),
        ]
    );
    assert_unordered(
        &events[2..],
        &[
            Ev::published("cb/reply", Some(4)),
            Ev::msg(Via::OnMessage, "cb/reply", b"ping", QoS::AtLeastOnce),
        ],
    );
    other.take();
    other.poll_events("the reaction's messages", 2).await;
    assert_unordered(
        &other.take(),
        &[
            Ev::msg(Via::OnMessage, "cb/reply", b"ping", QoS::AtLeastOnce),
            Ev::msg(
                Via::OnMessage,
                "cb/log",
                b"ping",
                env.delivered(QoS::AtMostOnce, QoS::AtLeastOnce),
            ),
        ],
    );

    // A message callback unsubscribes and subscribes.
    other
        .publish_ok("cb/stop", b"stop", QoS::AtLeastOnce, false)
        .await;
    other.take();
    peer.poll_events("UNSUBACK and SUBACK", 3).await;
    assert_eq!(
        peer.take(),
        [
            Ev::msg(Via::OnMessage, "cb/stop", b"stop", QoS::AtLeastOnce),
            Ev::unsubscribed("cb/cmd", 5),
            Ev::subscribed("cb/late", QoS::AtMostOnce, 6),
        ]
    );
    other
        .publish_ok("cb/cmd", b"ignored", QoS::AtLeastOnce, false)
        .await;
    other
        .publish_ok("cb/late", b"late", QoS::AtLeastOnce, false)
        .await;
    peer.poll_events("cb/late", 1).await;
    assert_eq!(
        peer.take(),
        [Ev::msg(Via::OnMessage, "cb/late", b"late", QoS::AtMostOnce)],
        "cb/cmd is no longer subscribed"
    );
    peer.disconnect_ok().await;
    other.disconnect_ok().await;
}

/// An idle client that keeps calling `poll` sends PINGREQ every keep-alive
/// period and outlives 1.5 times the keep-alive by far.
pub async fn keep_alive(env: Env) {
    let config = minimqtt::Config {
        keep_alive_secs: 1,
        ..config("keepalive")
    };
    let mut peer = Peer::connected_with(&env, config, Sizes::default()).await;
    peer.subscribe_ok("ka/t", QoS::AtLeastOnce).await;
    peer.take();

    // 2.6 keep-alive periods, polled in slices of various lengths.
    let start = std::time::Instant::now();
    let mut slice = 100;
    while start.elapsed() < StdDuration::from_millis(2600) {
        match peer.poll_once(StdDuration::from_millis(slice)).await {
            Ok(handled) => assert_eq!(handled.messages, 0),
            Err(e) => panic!("idle poll: {e:?}"),
        }
        slice = slice * 3 % 700 + 50;
    }
    assert!(peer.is_connected());
    assert_eq!(peer.take(), []);
    peer.poll_until_stats("PINGRESPs", |s| {
        s.count_read(PacketType::PingResp) == s.count_written(PacketType::PingReq)
    })
    .await;

    {
        let stats = peer.stats.get();
        let written = &stats.written;
        assert_eq!(written[1].packet_type, PacketType::Subscribe);
        // With a keep-alive of 1 s a PINGREQ goes out half a second after
        // the last packet sent (the margin is at least 0.5 s): 5 in 2.6 s
        // (4 or 6 if the machine is so loaded that the loop overran). No
        // gap reaches the keep-alive (MQTT-3.1.2-23).
        let pings = &written[2..];
        assert!(
            (4..=6).contains(&pings.len()),
            "{:?}",
            stats.written_types()
        );
        let mut last = written[1].at;
        for ping in pings {
            assert_eq!(ping.packet_type, PacketType::PingReq);
            let gap = ping.at - last;
            assert!(
                gap >= StdDuration::from_millis(490) && gap < StdDuration::from_millis(1000),
                "PINGREQ {gap:?} after the previous packet"
            );
            last = ping.at;
        }
    }

    // Still alive: a message goes around.
    let pid = peer
        .publish_ok("ka/t", b"alive", QoS::AtLeastOnce, false)
        .await;
    peer.poll_until("the message", |e| e.iter().any(Ev::is_message))
        .await;
    assert_unordered(
        &peer.take(),
        &[
            Ev::published("ka/t", pid),
            Ev::msg(Via::OnMessage, "ka/t", b"alive", QoS::AtLeastOnce),
        ],
    );
    peer.disconnect_ok().await;
}

/// Clean session off: QoS 1 messages published while the client was away
/// are delivered after it reconnects (new transport, `connect`), with
/// session present.
pub async fn persistent_session(env: Env) {
    let config = minimqtt::Config {
        clean_session: false,
        ..config("persistent")
    };
    let mut peer = Peer::new(&env, config, Sizes::default()).await;
    assert!(!peer.connect_ok().await);
    peer.subscribe_ok("persist/t", QoS::AtLeastOnce).await;
    assert_eq!(
        peer.take(),
        [
            Ev::connected(false),
            Ev::subscribed("persist/t", QoS::AtLeastOnce, 1)
        ]
    );
    peer.disconnect_ok().await;
    peer.take();

    let mut publisher = Peer::connected(&env, "persist-pub").await;
    for i in 0..3 {
        let body = format!("m{i}");
        publisher
            .publish_ok("persist/t", body.as_bytes(), QoS::AtLeastOnce, false)
            .await;
    }

    peer.new_connection().await;
    assert!(peer.connect_ok().await, "session present");
    peer.poll_events("queued messages", 4).await;
    let expected: Vec<Ev> = std::iter::once(Ev::connected(true))
        .chain((0..3).map(|i| {
            let body = format!("m{i}");
            Ev::msg(
                Via::OnMessage,
                "persist/t",
                body.as_bytes(),
                QoS::AtLeastOnce,
            )
        }))
        .collect();
    assert_eq!(peer.take(), expected);
    peer.poll_until_stats("PUBACKs", |s| s.count_written(PacketType::PubAck) == 3)
        .await;
    assert_eq!(
        peer.stats.get().written_types(),
        [
            PacketType::Connect,
            PacketType::PubAck,
            PacketType::PubAck,
            PacketType::PubAck
        ],
        "no re-subscription when the broker kept the session"
    );
    // The subscription itself survived too.
    publisher
        .publish_ok("persist/t", b"live", QoS::AtLeastOnce, false)
        .await;
    peer.poll_events("live message", 1).await;
    assert_eq!(
        peer.take(),
        [Ev::msg(
            Via::OnMessage,
            "persist/t",
            b"live",
            QoS::AtLeastOnce
        )]
    );

    // The connection is dropped without DISCONNECT (`abort`): the session
    // survives that too.
    peer.new_connection().await;
    assert_eq!(peer.take(), [Ev::Disconnect(DisconnectReason::Requested)]);
    assert!(peer.connect_ok().await, "session present after a lost link");
    assert_eq!(peer.take(), [Ev::connected(true)]);
    publisher
        .publish_ok("persist/t", b"again", QoS::AtLeastOnce, false)
        .await;
    peer.poll_events("message after reconnect", 1).await;
    assert_eq!(
        peer.take(),
        [Ev::msg(
            Via::OnMessage,
            "persist/t",
            b"again",
            QoS::AtLeastOnce
        )]
    );
    peer.disconnect_ok().await;
    publisher.disconnect_ok().await;
}

/// Keep-alive 0 turns pings off (mosquitto only: rumqttd refuses it).
pub async fn keep_alive_zero(env: Env) {
    let config = minimqtt::Config {
        keep_alive_secs: 0,
        ..config("no-keepalive")
    };
    let mut peer = Peer::connected_with(&env, config, Sizes::default()).await;
    assert_eq!(peer.idle(StdDuration::from_millis(1500)).await, []);
    assert!(peer.is_connected());
    assert_eq!(peer.stats.get().written_types(), [PacketType::Connect]);
    peer.disconnect_ok().await;
}

/// Messages larger than the receive buffer reach stream routes in chunks,
/// at every QoS; a whole-or-stream route gets small messages whole and
/// large ones streamed; a whole-only route's large message is dropped and
/// acknowledged; a message that fits reaches a stream route as one chunk;
/// a deferred acknowledgement goes out only when its token is redeemed.
pub async fn streamed(env: Env) {
    let small = Sizes {
        rx: 256,
        ..Sizes::default()
    };
    let mut sub = Peer::connected_with(&env, config("stream-sub"), small).await;
    // The publisher's buffers (1 KiB) are far smaller than the messages:
    // it streams them with `publish_from`.
    let mut publisher = Peer::connected(&env, "stream-pub").await;
    let ota = sub.stream_route("ota/#", "stream");
    let mixed = sub.stream_route("mixed/#", "both");
    sub.route("whole/#");
    for filter in ["ota/#", "mixed/#", "whole/#"] {
        sub.subscribe_ok(filter, QoS::ExactlyOnce).await;
    }
    sub.take();

    for qos in QOS {
        let topic = leak(format!("ota/q{}", qos as u8));
        let body = payload(16 * 1024, qos as u8);
        publisher.publish_from_ok(topic, &body, qos).await;
        sub.poll_events("a streamed message", 1).await;
        assert_eq!(
            sub.take(),
            [Ev::Streamed {
                via: ota,
                topic: topic.into(),
                payload: body,
                qos: env.delivered(qos, QoS::ExactlyOnce),
            }]
        );
    }

    let qos1 = env.delivered(QoS::AtLeastOnce, QoS::ExactlyOnce);
    // rumqttd delivers at the granted QoS: PUBREC, not PUBACK.
    let ack = match qos1 {
        QoS::ExactlyOnce => PacketType::PubRec,
        _ => PacketType::PubAck,
    };
    publisher
        .publish_ok("mixed/small", b"tiny", QoS::AtLeastOnce, false)
        .await;
    sub.poll_events("a small message", 1).await;
    assert_eq!(sub.take(), [Ev::msg(mixed, "mixed/small", b"tiny", qos1)]);
    let body = payload(5000, 9);
    publisher
        .publish_from_ok("mixed/large", &body, QoS::AtLeastOnce)
        .await;
    sub.poll_events("a large message", 1).await;
    assert_eq!(
        sub.take(),
        [Ev::Streamed {
            via: mixed,
            topic: "mixed/large".into(),
            payload: body.clone(),
            qos: qos1,
        }]
    );

    let acks = sub.stats.get().count_written(ack);
    publisher
        .publish_from_ok("whole/large", &body, QoS::AtLeastOnce)
        .await;
    sub.poll_events("a dropped message", 1).await;
    assert_eq!(
        sub.take(),
        [Ev::Dropped {
            len: env.publish_len("whole/large", qos1, body.len()),
            topic: Some("whole/large".into()),
        }]
    );
    sub.poll_until_stats("its PUBACK", |s| s.count_written(ack) == acks + 1)
        .await;

    publisher
        .publish_ok("ota/small", b"fits", QoS::AtMostOnce, false)
        .await;
    sub.poll_events("a message that fits", 1).await;
    assert_eq!(
        sub.take(),
        [Ev::Streamed {
            via: ota,
            topic: "ota/small".into(),
            payload: b"fits".to_vec(),
            qos: env.delivered(QoS::AtMostOnce, QoS::ExactlyOnce),
        }]
    );

    // Deferred: no PUBACK until the token is redeemed.
    sub.recorder_mut().defer_topics.push("ota/deferred".into());
    let acks = sub.stats.get().count_written(ack);
    publisher
        .publish_from_ok("ota/deferred", &body, QoS::AtLeastOnce)
        .await;
    sub.poll_events("a deferred message", 1).await;
    assert!(matches!(&sub.take()[..], [Ev::Streamed { .. }]));
    assert_eq!(sub.idle(QUIET).await, []);
    assert_eq!(sub.stats.get().count_written(ack), acks);
    let token = sub.recorder_mut().tokens.pop().expect("a token");
    sub.client.ack(token).expect("ack");
    sub.poll_until_stats("the deferred PUBACK", |s| s.count_written(ack) == acks + 1)
        .await;
    sub.disconnect_ok().await;
    publisher.disconnect_ok().await;
}
