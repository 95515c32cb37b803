//! minimqtt over embassy-net's own TCP stack on a Linux TAP device, against
//! a mosquitto that is stopped and started again while the client runs.
//!
//! This is the firmware's network path (`examples/esp32/src/broker.rs`: a
//! connector over a one-slot `TcpClient` pool, `Client::run_for`
//! reconnecting by itself) with the radio replaced by a TAP device, so the
//! bytes go through smoltcp's TCP, not the host's. The pool has room for
//! one socket: every reconnect succeeds only because the client drops the
//! old connection before it asks the connector for a new one.
//!
//! Usage: `minimqtt-embassy-net-tap <tap> <broker-ip> <client-ip> <dir>`,
//! run inside a network namespace where `<tap>` exists, is up, and carries
//! `<broker-ip>/24` on the kernel's side; mosquitto's config and log go
//! into `<dir>/mosquitto`. `tests/netns.rs` creates that namespace and
//! runs this program in it; run that test, not this program (`cargo test`
//! in this directory, as root). The broker is started here, so it lives in
//! the same namespace; nothing is sent to any address but `<broker-ip>`.
//!
//! Panics (exit status 101) on the first assertion that fails.

mod mosquitto;

use std::net::{Ipv4Addr, SocketAddr};

use embassy_net::tcp::client::{TcpClient, TcpClientState, TcpConnection};
use embassy_net::{Ipv4Cidr, Runner, StackResources, StaticConfigV4};
use embassy_net_tuntap::TunTapDevice;
use embassy_time::{Instant, with_timeout};
use embedded_nal_async::TcpConnect;
use minimqtt::callbacks::{Connected, DisconnectReason};
use minimqtt::time::{Duration, EmbassyClock};
use minimqtt::{
    Backoff, Buffers, Callbacks, Client, Config, Connector, Context, Message, QoS,
    SubscribeReturnCode,
};
use static_cell::StaticCell;

use crate::mosquitto::{Mosquitto, Stop};

/// Broker restarts during the run; the client connects `RESTARTS + 1` times.
const RESTARTS: usize = 3;
const CLIENT_ID: &str = "minimqtt-tap";
const TOPIC: &str = "minimqtt/tap/echo";
const KEEP_ALIVE_SECS: u16 = 10;
/// The longest any one step may take (a connect, a message, a loss noticed).
const STEP_TIMEOUT: embassy_time::Duration = embassy_time::Duration::from_secs(10);
/// The longest one TCP handshake may take. The broker's kernel answers a
/// SYN to a closed port with RST at once, so this only guards a hang.
const CONNECT_TIMEOUT: embassy_time::Duration = embassy_time::Duration::from_secs(5);

const TCP_TX: usize = 1024;
const TCP_RX: usize = 1024;
/// The firmware's pool: room for one connection.
type Tcp = TcpClient<'static, 1, TCP_TX, TCP_RX>;
type Connection = TcpConnection<'static, 1, TCP_TX, TCP_RX>;

/// What the callbacks saw: the client's user data.
#[derive(Debug, Default)]
struct Recorded {
    connects: Vec<Connected<'static>>,
    disconnects: Vec<DisconnectReason>,
    subscribes: Vec<(String, SubscribeReturnCode)>,
    published: usize,
    discarded: usize,
    messages: Vec<(String, Vec<u8>, QoS)>,
}

fn on_connect(ctx: &mut Context<'_, Recorded>, info: Connected) {
    println!("on_connect: {info:?}");
    ctx.user_data.connects.push(info.without_properties());
}

fn on_disconnect(ctx: &mut Context<'_, Recorded>, reason: DisconnectReason) {
    println!("on_disconnect: {reason:?}");
    ctx.user_data.disconnects.push(reason);
}

fn on_subscribe(
    ctx: &mut Context<'_, Recorded>,
    filter: &str,
    granted: SubscribeReturnCode,
    _id: u16,
) {
    ctx.user_data.subscribes.push((filter.to_owned(), granted));
}

fn on_publish(ctx: &mut Context<'_, Recorded>, _topic: &str, _id: Option<u16>) {
    ctx.user_data.published += 1;
}

fn on_publish_discarded(ctx: &mut Context<'_, Recorded>, _topic: &str, _id: u16) {
    ctx.user_data.discarded += 1;
}

fn on_message(ctx: &mut Context<'_, Recorded>, msg: &Message<'_>) {
    println!(
        "on_message: {} {:?}",
        msg.topic,
        String::from_utf8_lossy(msg.payload)
    );
    ctx.user_data
        .messages
        .push((msg.topic.to_owned(), msg.payload.to_vec(), msg.qos));
}

/// The connector: a TCP connection from the one-slot pool to the broker's
/// address (static, no DNS), counting what it opened and what failed.
struct Broker {
    tcp: &'static Tcp,
    addr: SocketAddr,
    opened: usize,
    failed: usize,
}

#[derive(Debug)]
#[allow(dead_code)] // Read only through Debug, when printed.
enum ConnectError {
    Tcp(embassy_net::tcp::Error),
    Timeout,
}

impl Connector for Broker {
    type Transport = Connection;
    type Error = ConnectError;

    async fn connect(&mut self) -> Result<Connection, ConnectError> {
        let result = match with_timeout(CONNECT_TIMEOUT, self.tcp.connect(self.addr)).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(e)) => Err(ConnectError::Tcp(e)),
            Err(_) => Err(ConnectError::Timeout),
        };
        match &result {
            Ok(_) => self.opened += 1,
            Err(e) => {
                self.failed += 1;
                println!("connector: {e:?}");
            }
        }
        result
    }
}

type TapClient<'b> = Client<'b, Broker, EmbassyClock, Recorded>;

/// Runs the client (`run_for` in short slices, as an application's loop
/// would) until `done`, or panics after [`STEP_TIMEOUT`].
async fn drive_until(
    client: &mut TapClient<'_>,
    what: &str,
    done: impl Fn(&mut TapClient<'_>) -> bool,
) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !done(client) {
        assert!(
            Instant::now() < deadline,
            "no {what} within {} s; recorded: {:#?}",
            STEP_TIMEOUT.as_secs(),
            client.user_data()
        );
        if let Err(e) = client.run_for(Duration::from_millis(50)).await {
            panic!("run_for gave up while waiting for {what}: {e:?}");
        }
    }
}

/// embassy-net's stack runs in its own task, as on the ESP32.
async fn net_task(mut runner: Runner<'static, TunTapDevice>) {
    runner.run().await
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, tap, broker_ip, client_ip, dir] = args.as_slice() else {
        eprintln!("usage: minimqtt-embassy-net-tap <tap> <broker-ip> <client-ip> <dir>");
        std::process::exit(2);
    };
    let broker_ip: Ipv4Addr = broker_ip.parse().expect("broker IPv4 address");
    let client_ip: Ipv4Addr = client_ip.parse().expect("client IPv4 address");
    // Current-thread tokio: embassy-net and embassy-time need no executor
    // of their own (the TAP device wakes through async-io, timers through
    // embassy-time's std driver).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let tasks = tokio::task::LocalSet::new();
    let started = std::time::Instant::now();
    let dir = std::path::Path::new(dir).join("mosquitto");
    tasks.block_on(&runtime, scenario(tap, broker_ip, client_ip, dir));
    println!(
        "embassy-net on {tap}: {} connections across {RESTARTS} broker restarts, all assertions held, in {:.1} s",
        RESTARTS + 1,
        started.elapsed().as_secs_f64()
    );
}

async fn scenario(tap: &str, broker_ip: Ipv4Addr, client_ip: Ipv4Addr, dir: std::path::PathBuf) {
    let mut device =
        TunTapDevice::new(tap).unwrap_or_else(|e| panic!("open TAP device {tap}: {e}"));
    // Locally administered, unicast.
    device.set_hardware_address([0x02, 0x6d, 0x71, 0x74, 0x74, 0x01]);
    // A static address and no gateway: the stack can reach the /24 inside
    // the namespace and nothing else.
    let config = embassy_net::Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(client_ip, 24),
        gateway: None,
        dns_servers: Default::default(),
    });
    static RESOURCES: StaticCell<StackResources<2>> = StaticCell::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let (stack, runner) =
        embassy_net::new(device, config, RESOURCES.init(StackResources::new()), seed);
    tokio::task::spawn_local(net_task(runner));
    stack.wait_config_up().await;

    let mut broker = Mosquitto::start(broker_ip, dir).await;

    static TCP_STATE: StaticCell<TcpClientState<1, TCP_TX, TCP_RX>> = StaticCell::new();
    static TCP: StaticCell<Tcp> = StaticCell::new();
    let tcp = TCP.init(TcpClient::new(stack, TCP_STATE.init(TcpClientState::new())));
    let connector = Broker {
        tcp,
        addr: SocketAddr::from((broker_ip, 1883)),
        opened: 0,
        failed: 0,
    };
    let mut buffers = Buffers::<1024, 2048, 256>::new();
    let callbacks = Callbacks::new()
        .on_connect(on_connect)
        .on_disconnect(on_disconnect)
        .on_subscribe(on_subscribe)
        .on_publish(on_publish)
        .on_publish_discarded(on_publish_discarded)
        .on_message(on_message);
    // Clean session: every restarted broker (no persistence) starts empty,
    // and so does every connection. What that implies, and what is asserted
    // below: session present is always 0, and the subscription comes back
    // only because the client re-subscribes after each reconnect.
    let config = Config {
        keep_alive_secs: KEEP_ALIVE_SECS,
        clean_session: true,
        // Short, so the run stays short; jittered as in production.
        backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(1)),
        ..Config::new(CLIENT_ID)
    };
    let mut client = Client::new(
        connector,
        EmbassyClock,
        config,
        buffers.slices(),
        callbacks,
        Recorded::default(),
    );
    // Queued offline: sent with the first connection, then re-sent by the
    // client after each reconnect.
    client
        .subscribe_later(TOPIC, QoS::AtLeastOnce)
        .expect("queue SUBSCRIBE");

    for life in 0..=RESTARTS {
        drive_until(&mut client, "connection and SUBACK", |c| {
            c.is_connected() && c.user_data().subscribes.len() == life + 1
        })
        .await;
        let payload = format!("life {life}");
        client
            .publish(TOPIC, payload.as_bytes(), QoS::AtLeastOnce, false)
            .await
            .unwrap_or_else(|e| panic!("publish {payload:?}: {e:?}"));
        drive_until(&mut client, "own message back", |c| {
            c.user_data().messages.len() == life + 1 && c.user_data().published == life + 1
        })
        .await;
        if life == 0 {
            // The pool really has one slot: while the client's connection
            // is open, a second one is refused by the pool itself, before
            // anything is sent (the broker's log shows one connection per
            // life, checked below).
            let second = with_timeout(
                CONNECT_TIMEOUT,
                tcp.connect(SocketAddr::from((broker_ip, 1883))),
            )
            .await;
            assert!(
                matches!(second, Ok(Err(embassy_net::tcp::Error::ConnectionReset))),
                "a second connection from the one-slot pool: {:?}",
                second.map(|r| r.map(|_| "opened"))
            );
        }
        if life == RESTARTS {
            break;
        }
        // Both ways a broker goes away: a clean shutdown, and a crash.
        let how = if life % 2 == 0 {
            Stop::Term
        } else {
            Stop::Kill
        };
        println!("stopping mosquitto ({how:?})");
        broker.stop(how).await;
        drive_until(&mut client, "lost connection", |c| {
            !c.is_connected() && c.user_data().disconnects.len() == life + 1
        })
        .await;
        // At least one attempt meets the stopped broker (RST from its
        // kernel) and is retried after the backoff.
        let failed = client.connector_mut().failed;
        drive_until(
            &mut client,
            "failed attempt while the broker is down",
            |c| c.connector_mut().failed > failed,
        )
        .await;
        println!("starting mosquitto again on {broker_ip}:1883");
        broker.spawn().await;
    }
    client.disconnect().await.expect("DISCONNECT");

    let recorded = client.user_data();
    let lives = RESTARTS + 1;
    // The client's side.
    assert_eq!(
        recorded.connects.len(),
        lives,
        "one on_connect per broker life"
    );
    for (i, connected) in recorded.connects.iter().enumerate() {
        assert!(
            !connected.session_present,
            "connect {i}: clean session, yet session present"
        );
        assert_eq!(connected.resent, 0, "connect {i}: nothing was in flight");
        // The first SUBSCRIBE is the one `subscribe_later` queued; every
        // later one is the client re-subscribing by itself.
        let resubscribed = if i == 0 { 0 } else { 1 };
        assert_eq!(
            connected.resubscribed, resubscribed,
            "connect {i}: filters re-subscribed"
        );
    }
    let mut expected = vec![DisconnectReason::ConnectionLost; RESTARTS];
    expected.push(DisconnectReason::Requested);
    assert_eq!(recorded.disconnects, expected);
    assert_eq!(
        recorded.subscribes,
        vec![
            (
                TOPIC.to_owned(),
                SubscribeReturnCode::Success(QoS::AtLeastOnce)
            );
            lives
        ],
        "one SUBACK granting QoS 1 per connection"
    );
    let messages: Vec<(String, Vec<u8>, QoS)> = (0..lives)
        .map(|life| {
            (
                TOPIC.to_owned(),
                format!("life {life}").into_bytes(),
                QoS::AtLeastOnce,
            )
        })
        .collect();
    assert_eq!(recorded.messages, messages, "each message once, in order");
    assert_eq!(recorded.published, lives);
    assert_eq!(recorded.discarded, 0);
    let connector = client.connector_mut();
    assert_eq!(
        connector.opened, lives,
        "one TCP connection per broker life"
    );
    assert!(
        connector.failed >= RESTARTS,
        "attempts against the stopped broker failed: {}",
        connector.failed
    );
    println!(
        "client: {} connections, {} failed attempts while the broker was down",
        connector.opened, connector.failed
    );

    // The broker's side, life by life.
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !broker
        .log()
        .contains(&format!("Received DISCONNECT from {CLIENT_ID}"))
    {
        assert!(
            Instant::now() < deadline,
            "no DISCONNECT in the log:\n{}",
            broker.log()
        );
        embassy_time::Timer::after_millis(10).await;
    }
    let log_lives = broker.log_by_life();
    assert_eq!(
        log_lives.len(),
        lives,
        "mosquitto started {lives} times:\n{}",
        broker.log()
    );
    let count = |text: &str, needle: &str| text.matches(needle).count();
    for (i, log) in log_lives.iter().enumerate() {
        assert!(
            log.contains(" running\n"),
            "life {i}: never listening:\n{log}"
        );
        let from_client = format!("New client connected from {client_ip}:");
        assert_eq!(
            count(log, &from_client),
            1,
            "life {i}: one connection from {client_ip}:\n{log}"
        );
        assert_eq!(
            count(log, "New connection from "),
            count(log, &format!("New connection from {client_ip}:")),
            "life {i}: a connection from another address:\n{log}"
        );
        assert_eq!(
            count(log, &format!(" as {CLIENT_ID} (p2, c1, k{KEEP_ALIVE_SECS}")),
            1,
            "life {i}: MQTT 3.1.1, clean session, keep-alive {KEEP_ALIVE_SECS}:\n{log}"
        );
        for needle in [
            format!("Received SUBSCRIBE from {CLIENT_ID}"),
            format!("{CLIENT_ID} 1 {TOPIC}"),
            format!("Received PUBLISH from {CLIENT_ID} (d0, q1"),
            format!("Sending PUBLISH to {CLIENT_ID} (d0, q1"),
            format!("'{TOPIC}', ... (6 bytes)"),
        ] {
            assert!(count(log, &needle) >= 1, "life {i}: no {needle:?}:\n{log}");
        }
    }
    let last = log_lives.last().expect("lives > 0");
    assert!(last.contains(&format!("Received DISCONNECT from {CLIENT_ID}")));
    let errors = broker.protocol_errors();
    assert!(
        errors.is_empty(),
        "mosquitto saw protocol errors:\n{}",
        errors.join("\n")
    );
    println!(
        "mosquitto: {lives} lives, one connection, SUBSCRIBE and PUBLISH from {client_ip} in each"
    );
}
