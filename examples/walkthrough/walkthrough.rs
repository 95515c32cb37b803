//! MiniMQTT's code walkthrough, in Rust, over a plain TCP socket.
//!
//! ```text
//! cargo run --example walkthrough                       # in-process broker
//! MQTT_BROKER=test.mosquitto.org:1883 cargo run --example walkthrough
//! ```
//!
//! Environment: `MQTT_BROKER` (`host[:port]`; unset starts the small
//! in-process broker of `broker.rs` on a free loopback port),
//! `MQTT_USERNAME`, `MQTT_PASSWORD`, `MQTT_TOPIC` (default
//! `minimqtt/walkthrough`).
//!
//! It connects, subscribes, publishes, receives its own message through a
//! topic callback, unsubscribes and disconnects; every callback prints its
//! line like the Python original.

mod broker;

use embedded_io_adapters::tokio_1::FromTokio;
use minimqtt::callbacks::{Connected, DisconnectReason};
use minimqtt::codec::ConnectReturnCode;
use minimqtt::time::{Duration, TokioClock};
use minimqtt::{
    Buffers, Callbacks, Client, Config, Connector, Context, Message, QoS, SubscribeReturnCode,
};

/// Opens a TCP connection to the broker for every connection attempt: the
/// client owns the connection's life (first connection, reconnects).
struct Tcp {
    address: String,
}

impl Connector for Tcp {
    type Transport = FromTokio<tokio::net::TcpStream>;
    type Error = std::io::Error;

    async fn connect(&mut self) -> Result<Self::Transport, std::io::Error> {
        let socket = tokio::net::TcpStream::connect(&self.address).await?;
        socket.set_nodelay(true)?;
        Ok(FromTokio::new(socket))
    }
}

/// MiniMQTT's `userdata`: here, what the walkthrough received.
#[derive(Default)]
struct Walkthrough {
    received: Vec<String>,
}

type Ctx<'c> = Context<'c, Walkthrough>;

// The six callbacks of the walkthrough, printing the same lines.

fn connect(_ctx: &mut Ctx<'_>, info: Connected) {
    // This function will be called when the client is connected
    // successfully to the broker.
    println!("Connected to MQTT Broker!");
    // on_connect runs only for an accepted connection: RC is always 0
    // (a refusal reaches on_disconnect with its code).
    println!(
        "Flags: {}\n RC: {}",
        u8::from(info.session_present),
        ConnectReturnCode::Accepted as u8
    );
}

fn disconnect(_ctx: &mut Ctx<'_>, reason: DisconnectReason) {
    // This method is called when the client disconnects from the broker.
    println!("Disconnected from MQTT Broker!");
    if reason != DisconnectReason::Requested {
        println!("  (reason: {reason:?})");
    }
}

fn subscribe(_ctx: &mut Ctx<'_>, topic: &str, granted: SubscribeReturnCode, _pid: u16) {
    // This method is called when the client subscribes to a new feed.
    match granted {
        SubscribeReturnCode::Success(qos) => {
            println!("Subscribed to {topic} with QOS level {}", qos as u8)
        }
        SubscribeReturnCode::Failure => println!("Subscription to {topic} was refused"),
    }
}

fn unsubscribe(_ctx: &mut Ctx<'_>, topic: &str, pid: u16) {
    // This method is called when the client unsubscribes from a feed.
    println!("Unsubscribed from {topic} with PID {pid}");
}

fn publish(_ctx: &mut Ctx<'_>, topic: &str, pid: Option<u16>) {
    // This method is called when the client publishes data to a feed.
    match pid {
        Some(pid) => println!("Published to {topic} with PID {pid}"),
        None => println!("Published to {topic} with PID 0 (QoS 0 has none)"),
    }
}

/// The topic callback: our own message comes back through it.
fn message(ctx: &mut Ctx<'_>, msg: &Message<'_>) {
    let text = String::from_utf8_lossy(msg.payload);
    println!(
        "New message on topic {}: {text} (QoS {}, retain {}, PID {:?})",
        msg.topic, msg.qos as u8, msg.retain, msg.packet_id
    );
    ctx.user_data.received.push(text.into_owned());
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let topic = std::env::var("MQTT_TOPIC").unwrap_or_else(|_| "minimqtt/walkthrough".into());
    let username = std::env::var("MQTT_USERNAME").ok();
    let password = std::env::var("MQTT_PASSWORD").ok();

    // No broker given: run one in this process, on a free loopback port.
    let (address, _broker) = match std::env::var("MQTT_BROKER") {
        Ok(address) => (address, None),
        Err(_) => {
            let broker = broker::Broker::start().await;
            (broker.addr().to_string(), Some(broker))
        }
    };
    let address = if address.contains(':') {
        address
    } else {
        format!("{address}:{}", minimqtt::net::MQTT_PORT)
    };

    println!("Attempting to connect to {address}");
    let mut buffers = Buffers::<2048, 2048, 2048, 512>::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let config = Config {
        seed: Some(seed),
        username: username.as_deref(),
        password: password.as_deref().map(str::as_bytes),
        ..Config::new("")
    };
    let callbacks = Callbacks::new()
        .on_connect(connect)
        .on_disconnect(disconnect)
        .on_subscribe(subscribe)
        .on_unsubscribe(unsubscribe)
        .on_publish(publish);
    let connector = Tcp {
        address: address.clone(),
    };
    let mut client = Client::new(
        connector,
        TokioClock::new(),
        config,
        buffers.slices(),
        callbacks,
        Walkthrough::default(),
    );
    client.add_topic_callback(&topic, message)?;

    // `run_for` connects (retrying with backoff while the broker is not
    // up), keeps the link alive and reconnects if it drops.
    while !client.is_connected() {
        client.run_for(Duration::from_millis(100)).await?;
    }

    println!("Subscribing to {topic}");
    client.subscribe(&topic, QoS::AtLeastOnce).await?;

    println!("Publishing to {topic}");
    let pid = client
        .publish(&topic, b"Hello Broker!", QoS::AtLeastOnce, false)
        .await?;
    if let Some(pid) = pid {
        client.wait_published(pid).await?;
    }
    // Our own message comes back through the subscription.
    while client.user_data().received.is_empty() {
        client.run_for(Duration::from_millis(100)).await?;
    }

    println!("Unsubscribing from {topic}");
    client.unsubscribe(&topic).await?;

    println!("Disconnecting from {address}");
    client.disconnect().await?;
    Ok(())
}
