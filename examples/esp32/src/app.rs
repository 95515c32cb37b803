//! The MQTT application: MiniMQTT's walkthrough with its six callbacks, then
//! a long-running session that publishes a reading every
//! [`reading::INTERVAL`], toggles the LED on commands, and reconnects with
//! backoff whenever Wi-Fi or the broker goes away.

use core::{convert::Infallible, fmt, fmt::Write as _};

use embassy_futures::select::{Either, select};
use embassy_net::{Stack, dns::DnsSocket};
use embassy_time::{Duration, Instant, Timer};
use esp_hal::gpio::Output;
use esp_println::println;
use minimqtt::{
    Buffers, Callbacks, Client, Config, Context, Message, QoS, SubscribeReturnCode,
    callbacks::{Connected, DisconnectReason},
    time::EmbassyClock,
};
use static_cell::ConstStaticCell;

// Over TCP, or TLS with the `tls` feature: the same two names either way.
#[cfg(not(feature = "tls"))]
use crate::broker::{Link, connect as open};
#[cfg(feature = "tls")]
use crate::tls::{Link, connect as open};
use crate::{
    broker::Tcp,
    reading::{self, Reading},
    settings::Settings,
};

/// The client's buffers: receive, transmit, session store, callback outbox
/// (see `minimqtt::Buffers`), in `.bss` rather than on the stack.
static BUFFERS: ConstStaticCell<Buffers<1024, 1024, 1024, 256>> =
    ConstStaticCell::new(Buffers::new());

/// The first pause before reconnecting; it doubles after each failed
/// attempt, up to [`MAX_BACKOFF`], and starts over once a connection is
/// accepted.
const MIN_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(64);

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

type Mqtt<'a, 't> = Client<'a, Link<'t>, EmbassyClock, Demo>;
type Ctx<'c, 'b> = Context<'c, 'b, Demo>;
type MqttError = minimqtt::Error<<Link<'static> as embedded_io_async::ErrorType>::Error>;

// The walkthrough's six callbacks, printing the same lines as the
// CircuitPython original.

fn connect(_ctx: &mut Ctx<'_, '_>, info: Connected) {
    // This function will be called when the client is connected
    // successfully to the broker.
    println!("Connected to MQTT Broker!");
    println!(
        "Flags: {}\n RC: {}",
        u8::from(info.session_present),
        info.return_code as u8
    );
    if info.resubscribed > 0 {
        println!("  (re-subscribing {} topic(s))", info.resubscribed);
    }
}

fn disconnect(_ctx: &mut Ctx<'_, '_>, reason: DisconnectReason) {
    // This method is called when the client disconnects from the broker.
    println!("Disconnected from MQTT Broker!");
    if reason != DisconnectReason::Requested {
        println!("  (reason: {:?})", reason);
    }
}

fn subscribe(_ctx: &mut Ctx<'_, '_>, topic: &str, granted: SubscribeReturnCode, _pid: u16) {
    // This method is called when the client subscribes to a new feed.
    match granted {
        SubscribeReturnCode::Success(qos) => {
            println!("Subscribed to {} with QOS level {}", topic, qos as u8)
        }
        SubscribeReturnCode::Failure => println!("Subscription to {} was refused", topic),
    }
}

fn unsubscribe(_ctx: &mut Ctx<'_, '_>, topic: &str, pid: u16) {
    // This method is called when the client unsubscribes from a feed.
    println!("Unsubscribed from {} with PID {}", topic, pid);
}

fn publish(_ctx: &mut Ctx<'_, '_>, topic: &str, pid: Option<u16>) {
    // This method is called when the client publishes data to a feed.
    match pid {
        Some(pid) => println!("Published to {} with PID {}", topic, pid),
        None => println!("Published to {} with PID 0 (QoS 0 has none)", topic),
    }
}

/// The walkthrough's topic callback: our own message comes back through it.
fn message(ctx: &mut Ctx<'_, '_>, msg: &Message<'_>) {
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
fn led_command(ctx: &mut Ctx<'_, '_>, msg: &Message<'_>) {
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

/// Why a connection to the broker ended.
enum SessionEnd {
    /// The client reported a connection error (`on_disconnect` has run).
    Mqtt(MqttError),
    /// Wi-Fi or DHCP went away under the connection.
    NetworkLost,
}

impl fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEnd::Mqtt(e) => write!(f, "{e}"),
            SessionEnd::NetworkLost => f.write_str("network lost"),
        }
    }
}

/// Runs the MQTT client forever: connect, walkthrough (first connection
/// only), then publish / poll until the connection ends, then reconnect
/// with backoff.
///
/// `seed` is a random number for the client id (MiniMQTT also makes up a
/// random one). The client, its session and its callbacks live across
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
        client_id_seed: Some(seed),
        username: settings.mqtt_username,
        password: settings.mqtt_password.map(str::as_bytes),
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
    let mut client: Mqtt<'_, '_> = Client::new(
        Link::none(),
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

    let mut walkthrough_done = false;
    let mut backoff = MIN_BACKOFF;
    loop {
        // Wi-Fi joined and DHCP done (again, after a drop).
        stack.wait_config_up().await;
        if let Some(config) = stack.config_v4() {
            println!("DHCP: IP address {}", config.address);
        }

        match open(dns, tcp, settings).await {
            Ok(connection) => {
                // The old transport is `Link::none()` here (see below).
                drop(client.replace_transport(Link::new(connection)));
                let mut accepted = false;
                let session = session(&mut client, settings, &mut walkthrough_done, &mut accepted);
                let end = match select(session, stack.wait_config_down()).await {
                    Either::First(Err(e)) => SessionEnd::Mqtt(e),
                    Either::Second(()) => SessionEnd::NetworkLost,
                };
                if accepted {
                    // The broker took us: start the backoff over.
                    backoff = MIN_BACKOFF;
                }
                println!("Broker connection ended: {}", end);
                // Close the TCP connection and give its buffers back
                // before the next attempt.
                drop(client.replace_transport(Link::none()));
            }
            Err(e) => println!("could not connect to broker: {}", e),
        }
        println!("Reconnecting in {} s", backoff.as_secs());
        Timer::after(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection: CONNECT, the walkthrough on the first one, then the
/// reading / command loop until the connection fails. Never returns `Ok`.
async fn session(
    client: &mut Mqtt<'_, '_>,
    settings: &Settings,
    walkthrough_done: &mut bool,
    accepted: &mut bool,
) -> Result<Infallible, MqttError> {
    println!("Connecting to {}", settings.broker);
    client.connect().await?;
    *accepted = true;

    if !*walkthrough_done {
        walkthrough(client, settings).await?;
        *walkthrough_done = true;
        println!("Subscribing to {}", settings.command_topic);
        client
            .subscribe(settings.command_topic, QoS::AtLeastOnce)
            .await?;
    }
    // After a reconnect the client re-subscribed the command topic itself
    // (clean session: the broker forgot it), as `on_connect` reported.

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
            // connection alone may not notice for minutes).
            client
                .publish(
                    settings.reading_topic,
                    payload.as_bytes(),
                    QoS::AtLeastOnce,
                    false,
                )
                .await?;
            next += reading::INTERVAL;
        }
        // MiniMQTT's `loop(timeout)`: incoming commands reach `led_command`,
        // PUBACKs reach `on_publish`, and keep-alive pings go out.
        let wait = next.saturating_duration_since(Instant::now());
        match client
            .poll(minimqtt::time::Duration::from_millis(wait.as_millis()))
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_connection_lost() || !client.is_connected() => return Err(e),
            // A message too large for the receive buffer was skipped; the
            // connection is fine.
            Err(e) => println!("MQTT: {}", e),
        }
    }
}

/// MiniMQTT's walkthrough: subscribe, publish, receive our own message
/// through the topic callback, unsubscribe.
async fn walkthrough(client: &mut Mqtt<'_, '_>, settings: &Settings) -> Result<(), MqttError> {
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
