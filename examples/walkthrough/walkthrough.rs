//! MiniMQTT's code walkthrough, in Rust, over a plain TCP socket.
//!
//! ```text
//! cargo run --example walkthrough                       # in-process broker
//! MQTT_VERSION=5 cargo run --example walkthrough        # the same over MQTT 5
//! MQTT_BROKER=test.mosquitto.org:1883 cargo run --example walkthrough
//! MQTT_BROKER=test.mosquitto.org:1883 MQTT_VERSION=5 cargo run --example walkthrough
//! ```
//!
//! Environment: `MQTT_BROKER` (`host[:port]`; unset starts the small
//! in-process broker of `broker.rs` on a free loopback port, which speaks
//! both versions), `MQTT_VERSION` (`3.1.1`, the default, also spelt `3`
//! or `4`; or `5` for MQTT 5; anything else is an error),
//! `MQTT_USERNAME`, `MQTT_PASSWORD`, `MQTT_TOPIC` (default
//! `minimqtt/walkthrough`).
//!
//! It connects, subscribes, publishes, receives its own message through a
//! topic callback, unsubscribes and disconnects; every callback prints its
//! line like the Python original. Over MQTT 5 the lines are the same, with
//! the reason codes of the broker's acknowledgements (CONNACK, SUBACK,
//! PUBACK, UNSUBACK) added, and the message goes out with a User Property
//! that is printed when it comes back.

mod broker;

use embedded_io_adapters::tokio_1::FromTokio;
use minimqtt::callbacks::{Connected, DisconnectReason};
use minimqtt::codec::ConnectReturnCode;
use minimqtt::codec::v5::{Properties, Property, ReasonCode};
use minimqtt::session::Version;
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

/// MiniMQTT's `userdata`: here, the MQTT version spoken and what the
/// walkthrough received.
struct Walkthrough {
    version: Version,
    received: Vec<String>,
}

/// The User Property the walkthrough's message carries over MQTT 5.
const USER_PROPERTY: (&str, &str) = ("origin", "minimqtt walkthrough");

/// `MQTT_VERSION`: unset, `3.1.1` (or `3`, `4`: its protocol level) or `5`.
fn mqtt_version() -> Result<Version, String> {
    let value = match std::env::var("MQTT_VERSION") {
        Err(std::env::VarError::NotPresent) => return Ok(Version::V3_1_1),
        Err(std::env::VarError::NotUnicode(value)) => value.to_string_lossy().into_owned(),
        Ok(value) => value,
    };
    match value.as_str() {
        "3.1.1" | "3" | "4" => Ok(Version::V3_1_1),
        "5" => Ok(Version::V5),
        _ => Err(format!(
            "MQTT_VERSION={value:?} is not an MQTT version this walkthrough speaks: \
             use 3.1.1 (the default; also 3 or 4) or 5"
        )),
    }
}

/// MQTT 5: how a reason code reads after a line, ` (reason 0x01 granted
/// QoS 1)`, with the broker's Reason String if it sent one.
fn describe(code: ReasonCode, reason_string: Option<&str>) -> String {
    match reason_string {
        Some(why) => format!(" (reason {:#04x} {code}: {why})", code as u8),
        None => format!(" (reason {:#04x} {code})", code as u8),
    }
}

/// The reason code of the acknowledgement a callback reports: MQTT 5
/// only, nothing on 3.1.1 (whose acknowledgements have none: the code
/// the client reports there is only its reading of the SUBACK's byte, or
/// 0x00).
fn reason(ctx: &Ctx<'_>) -> String {
    match (ctx.user_data.version, ctx.reason_code()) {
        (Version::V5, Some(code)) => describe(code, ctx.properties().reason_string()),
        _ => String::new(),
    }
}

type Ctx<'c> = Context<'c, Walkthrough>;

// The six callbacks of the walkthrough, printing the same lines.

fn connect(ctx: &mut Ctx<'_>, info: Connected) {
    // This function will be called when the client is connected
    // successfully to the broker.
    println!("Connected to MQTT Broker!");
    // on_connect runs only for an accepted connection: RC is always 0
    // (a refusal reaches on_disconnect with its code).
    let flags = u8::from(info.session_present);
    match ctx.user_data.version {
        Version::V3_1_1 => println!("Flags: {flags}\n RC: {}", ConnectReturnCode::Accepted as u8),
        Version::V5 => {
            // MQTT 5's CONNACK says it with a reason code: 0x00 Success.
            let code = ReasonCode::Success;
            let why = info.properties.reason_string();
            println!("Flags: {flags}\n RC: {}{}", code as u8, describe(code, why));
            // A broker names the client that connected without a name.
            if let Some(id) = info.properties.assigned_client_identifier() {
                println!(" Assigned client identifier: {id}");
            }
        }
    }
}

fn disconnect(_ctx: &mut Ctx<'_>, reason: DisconnectReason) {
    // This method is called when the client disconnects from the broker.
    println!("Disconnected from MQTT Broker!");
    match reason {
        DisconnectReason::Requested => {}
        // MQTT 5: the CONNACK's or the broker's DISCONNECT's reason code.
        DisconnectReason::RefusedV5(code) | DisconnectReason::ServerDisconnect(code) => {
            println!("  (reason: {reason:?}, {:#04x} {code})", code as u8)
        }
        _ => println!("  (reason: {reason:?})"),
    }
}

fn subscribe(ctx: &mut Ctx<'_>, topic: &str, granted: SubscribeReturnCode, _pid: u16) {
    // This method is called when the client subscribes to a new feed.
    let reason = reason(ctx);
    match granted {
        SubscribeReturnCode::Success(qos) => {
            println!("Subscribed to {topic} with QOS level {}{reason}", qos as u8)
        }
        SubscribeReturnCode::Failure => println!("Subscription to {topic} was refused{reason}"),
    }
}

fn unsubscribe(ctx: &mut Ctx<'_>, topic: &str, pid: u16) {
    // This method is called when the client unsubscribes from a feed.
    println!("Unsubscribed from {topic} with PID {pid}{}", reason(ctx));
}

fn publish(ctx: &mut Ctx<'_>, topic: &str, pid: Option<u16>) {
    // This method is called when the client publishes data to a feed.
    match pid {
        Some(pid) => println!("Published to {topic} with PID {pid}{}", reason(ctx)),
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
    // MQTT 5: the User Properties it was published with (none on 3.1.1).
    for (name, value) in msg.properties.user_properties() {
        println!(" User property: {name} = {value}");
    }
    ctx.user_data.received.push(text.into_owned());
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let version = match mqtt_version() {
        Ok(version) => version,
        Err(error) => {
            eprintln!("walkthrough: {error}");
            std::process::exit(2);
        }
    };
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
    let mut buffers = Buffers::<2048, 4096, 512>::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let config = Config {
        seed: Some(seed),
        username: username.as_deref(),
        password: password.as_deref().map(str::as_bytes),
        version,
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
        Walkthrough {
            version,
            received: Vec::new(),
        },
    );
    client.add_topic_callback(&topic, message)?;

    // `run_for` connects (retrying with backoff while the broker is not
    // up), keeps the link alive and reconnects if it drops.
    let mut waited = 0;
    while !client.is_connected() {
        client.run_for(Duration::from_millis(100)).await?;
        waited += 1;
        if waited % 50 == 0 {
            println!("Still trying to connect to {address} (retrying with backoff)");
        }
    }

    // MiniMQTT's example uses QoS 0; QoS 1 here, so that the callbacks
    // show a real packet id, and the publish is confirmed by its PUBACK.
    println!("Subscribing to {topic}");
    client.subscribe(&topic, QoS::AtLeastOnce).await?;

    println!("Publishing to {topic}");
    let payload = b"Hello Broker!";
    let pid = match version {
        Version::V3_1_1 => {
            client
                .publish(&topic, payload, QoS::AtLeastOnce, false)
                .await?
        }
        // MQTT 5: the same message, with a User Property.
        Version::V5 => {
            let (name, value) = USER_PROPERTY;
            let properties = [Property::UserProperty(name, value)];
            client
                .publish_with(
                    &topic,
                    payload,
                    QoS::AtLeastOnce,
                    false,
                    &Properties::new(&properties),
                )
                .await?
        }
    };
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
