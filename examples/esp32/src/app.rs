//! The MQTT application: MiniMQTT's walkthrough with its six callbacks, then
//! a long-running session that publishes a reading every
//! [`reading::INTERVAL`] and toggles the LED on commands. The client itself
//! reconnects, with jittered backoff, whenever Wi-Fi or the broker goes
//! away (`Client::run_for`).

use core::{fmt, fmt::Write as _};

use embassy_net::{Stack, dns::DnsSocket};
use embassy_time::{Duration, Instant, Timer};
use esp_hal::gpio::Output;
use esp_println::println;
use minimqtt::{
    Backoff, Buffers, Callbacks, Client, Config, Context, Message, QoS, SubscribeReturnCode,
    callbacks::{Connected, DisconnectReason},
    codec::ConnectReturnCode,
    time::EmbassyClock,
};
use static_cell::ConstStaticCell;

// Over TCP, or TLS with the `tls` feature: the same names either way.
#[cfg(not(feature = "tls"))]
use crate::broker::{Connector as Link, TransportError, connector};
#[cfg(feature = "tls")]
use crate::tls::{Link, TransportError, connector};
use crate::{
    broker::{Broker, Tcp},
    reading::{self, Reading},
    settings::Settings,
};

/// The client's buffers: receive, transmit, session store, callback outbox
/// (see `minimqtt::Buffers`), in `.bss` rather than on the stack.
static BUFFERS: ConstStaticCell<Buffers<1024, 2048, 256>> =
    ConstStaticCell::new(Buffers::new());

/// Reconnecting: the first pause is about 2 s; it doubles after each failed
/// attempt, up to about 64 s (half fixed, half random, so devices that lost
/// the broker together come back apart), and starts over once a connection
/// is accepted.
const BACKOFF: Backoff = Backoff::new(
    minimqtt::time::Duration::from_secs(2),
    minimqtt::time::Duration::from_secs(64),
);

/// How long the walkthrough waits for its own message to come back.
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

/// MiniMQTT's `user_data`: what the callbacks share. The LED lives here so
/// that the command callback can switch it directly.
pub struct Demo {
    led: Output<'static>,
    settings: &'static Settings,
    /// The walkthrough's own message came back through its topic callback.
    echoed: bool,
}

type Mqtt<'a, 'c, 'd> = Client<'a, Link<'c, 'd>, EmbassyClock, Demo>;
type Ctx<'c> = Context<'c, Demo>;
type MqttError = minimqtt::Error<TransportError>;

// The walkthrough's six callbacks, printing the same lines as the
// CircuitPython original.

fn connect(_ctx: &mut Ctx<'_>, info: Connected) {
    // This function will be called when the client is connected
    // successfully to the broker.
    println!("Connected to MQTT Broker!");
    // on_connect runs only for an accepted connection: RC is always 0.
    println!(
        "Flags: {}\n RC: {}",
        u8::from(info.session_present),
        ConnectReturnCode::Accepted as u8
    );
    if info.resubscribed > 0 {
        println!("  (re-subscribing {} topic(s))", info.resubscribed);
    }
}

fn disconnect(_ctx: &mut Ctx<'_>, reason: DisconnectReason) {
    // This method is called when the client disconnects from the broker.
    println!("Disconnected from MQTT Broker!");
    if reason != DisconnectReason::Requested {
        println!("  (reason: {:?})", reason);
    }
}

fn subscribe(_ctx: &mut Ctx<'_>, topic: &str, granted: SubscribeReturnCode, _pid: u16) {
    // This method is called when the client subscribes to a new feed.
    match granted {
        SubscribeReturnCode::Success(qos) => {
            println!("Subscribed to {} with QOS level {}", topic, qos as u8)
        }
        SubscribeReturnCode::Failure => println!("Subscription to {} was refused", topic),
    }
}

fn unsubscribe(_ctx: &mut Ctx<'_>, topic: &str, pid: u16) {
    // This method is called when the client unsubscribes from a feed.
    println!("Unsubscribed from {} with PID {}", topic, pid);
}

fn publish(_ctx: &mut Ctx<'_>, topic: &str, pid: Option<u16>) {
    // This method is called when the client publishes data to a feed.
    match pid {
        Some(pid) => println!("Published to {} with PID {}", topic, pid),
        None => println!("Published to {} with PID 0 (QoS 0 has none)", topic),
    }
}

/// The walkthrough's topic callback: our own message comes back through it.
fn message(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    println!(
        "New message on topic {}: {} (QoS {}, retain {}, PID {:?})",
        msg.topic,
        Text(msg.payload),
        msg.qos as u8,
        msg.retain,
        msg.packet_id
    );
    ctx.user_data.echoed = true;
}

/// The command topic's callback: `on` / `off` set the LED, anything else
/// toggles it. The new state is published back (retained) from inside the
/// callback: the request waits in the client's outbox and goes out as soon
/// as the callback returns.
fn led_command(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let led = &mut ctx.user_data.led;
    match msg.payload {
        b"on" | b"ON" | b"1" => led.set_high(),
        b"off" | b"OFF" | b"0" => led.set_low(),
        _ => led.toggle(),
    }
    let state = if led.is_set_high() { "on" } else { "off" };
    println!(
        "New message on topic {}: {} -> LED {}",
        msg.topic,
        Text(msg.payload),
        state
    );
    let state_topic = ctx.user_data.settings.state_topic;
    if ctx
        .publish(state_topic, state.as_bytes(), QoS::AtMostOnce, true)
        .is_err()
    {
        println!("Outbox full: LED state not published");
    }
}

/// Runs the MQTT client forever: the walkthrough on the first connection,
/// then a reading every [`reading::INTERVAL`] while `run_for` keeps the
/// client connected in between: it connects, keeps the link alive, calls
/// the callbacks, and after a lost connection reconnects by itself.
///
/// `seed` is a random number, the client's one random input: it makes up
/// the client id (MiniMQTT also makes up a random one) and spreads out the
/// reconnect attempts (`Config::seed`). The client, its session and its callbacks live across
/// reconnects; only the TCP connection is replaced.
pub async fn run(
    stack: Stack<'_>,
    dns: &DnsSocket<'_>,
    tcp: &Tcp<'_>,
    led: Output<'static>,
    settings: &'static Settings,
    seed: u64,
) -> ! {
    let config = Config {
        seed: Some(seed),
        username: settings.mqtt_username,
        password: settings.mqtt_password.map(str::as_bytes),
        backoff: BACKOFF,
        ..Config::new("")
    };
    let callbacks = Callbacks::new()
        .on_connect(connect)
        .on_disconnect(disconnect)
        .on_subscribe(subscribe)
        .on_unsubscribe(unsubscribe)
        .on_publish(publish);
    let demo = Demo {
        led,
        settings,
        echoed: false,
    };
    let broker = Broker {
        stack,
        dns,
        tcp,
        settings,
    };
    let mut client: Mqtt<'_, '_, '_> = Client::new(
        connector(broker),
        EmbassyClock,
        config,
        BUFFERS.take().slices(),
        callbacks,
        demo,
    );
    // Two of the client's eight routes; `build.rs` has checked the topic.
    let routes = client
        .add_topic_callback(settings.topic, message)
        .and_then(|()| client.add_topic_callback(settings.command_topic, led_command));
    if let Err(e) = routes {
        panic!("cannot add the topic callbacks: {e}");
    }
    println!("MQTT client id {}", client.client_id());

    println!("Connecting to {}", settings.broker);
    while !client.is_connected() {
        keep_running(&mut client, Duration::from_millis(100)).await;
    }
    if let Err(e) = walkthrough(&mut client, settings).await {
        println!("walkthrough: {}", e);
    }
    // Subscribed from now on, and re-subscribed by the client after every
    // reconnect that finds no session on the broker.
    println!("Subscribing to {}", settings.command_topic);
    if client
        .subscribe_later(settings.command_topic, QoS::AtLeastOnce)
        .is_err()
    {
        println!("Outbox full: command topic not subscribed");
    }

    println!(
        "Publishing a reading to {} every {} s; send on/off/toggle to {}",
        settings.reading_topic,
        reading::INTERVAL.as_secs(),
        settings.command_topic
    );
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            let reading = Reading::take();
            println!("Reading: {}", reading);
            let mut payload = heapless::String::<32>::new();
            // 32 bytes always hold `uptime=` and a u64.
            let _ = write!(payload, "{reading}");
            // QoS 1: a missing PUBACK also tells a dead link (the TCP
            // connection alone may not notice for minutes). Offline, the
            // reading is skipped: nothing queues without bound.
            if let Err(e) = client
                .publish(
                    settings.reading_topic,
                    payload.as_bytes(),
                    QoS::AtLeastOnce,
                    false,
                )
                .await
            {
                println!("reading not published: {}", e);
            }
            next += reading::INTERVAL;
        }
        // MiniMQTT's `loop(timeout)` that also reconnects: incoming commands
        // reach `led_command`, PUBACKs reach `on_publish`, keep-alive pings
        // go out.
        keep_running(&mut client, next.saturating_duration_since(Instant::now())).await;
    }
}

/// `Client::run_for`: its only errors end the retrying (bad credentials,
/// say); they are printed and the client tries again a minute later.
async fn keep_running(client: &mut Mqtt<'_, '_, '_>, wait: Duration) {
    if let Err(e) = client.run_for(wait.into()).await {
        println!("MQTT: {}; retrying in 60 s", e);
        Timer::after(Duration::from_secs(60)).await;
    }
}

/// MiniMQTT's walkthrough: subscribe, publish, receive our own message
/// through the topic callback, unsubscribe.
async fn walkthrough(client: &mut Mqtt<'_, '_, '_>, settings: &Settings) -> Result<(), MqttError> {
    let topic = settings.topic;
    println!("Subscribing to {}", topic);
    client.subscribe(topic, QoS::AtLeastOnce).await?;

    println!("Publishing to {}", topic);
    if let Some(pid) = client
        .publish(topic, b"Hello Broker!", QoS::AtLeastOnce, false)
        .await?
    {
        client.wait_published(pid).await?;
    }
    // Our own message comes back through the subscription.
    let deadline = Instant::now() + ECHO_TIMEOUT;
    while !client.user_data().echoed && Instant::now() < deadline {
        client
            .poll(minimqtt::time::Duration::from_millis(100))
            .await?;
    }
    if !client.user_data().echoed {
        println!(
            "(our message did not come back within {} s)",
            ECHO_TIMEOUT.as_secs()
        );
    }

    println!("Unsubscribing from {}", topic);
    client.unsubscribe(topic).await?;
    Ok(())
}

/// A payload for printing: UTF-8 as text, anything else as its length.
struct Text<'a>(&'a [u8]);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match core::str::from_utf8(self.0) {
            Ok(text) => f.write_str(text),
            Err(_) => write!(f, "<{} bytes>", self.0.len()),
        }
    }
}
