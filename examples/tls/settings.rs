//! What the two TLS examples share: their settings from the environment and
//! the MQTT exchange they run over the TLS stream.
#![allow(dead_code)]

use minimqtt::Connector;
use minimqtt::callbacks::Connected;
use minimqtt::time::{Duration, TokioClock};
use minimqtt::{Buffers, Callbacks, Client, Config, Context, Message, QoS};

/// The broker and the files to reach it with, from the environment:
///
/// | variable | meaning |
/// | --- | --- |
/// | `MQTT_BROKER` | `host[:port]`, port 8883 by default |
/// | `MQTT_SERVER_NAME` | the name the broker's certificate must carry (SNI); default: the host |
/// | `MQTT_CA` | PEM file of the CA that signed the broker's certificate |
/// | `MQTT_CLIENT_CERT`, `MQTT_CLIENT_KEY` | PEM files of a client certificate and its key (mutual TLS), optional |
/// | `MQTT_CLIENT_ID` | client id (AWS IoT policies often require the thing name); default: random |
/// | `MQTT_TOPIC` | default `minimqtt/tls` |
pub struct Settings {
    pub address: String,
    pub server_name: String,
    pub ca_pem: Vec<u8>,
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    pub client_id: String,
    pub topic: String,
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let read = |name: &str| -> Result<Option<Vec<u8>>, String> {
            var(name)
                .map(|path| std::fs::read(&path).map_err(|e| format!("{name}={path}: {e}")))
                .transpose()
        };
        let broker = var("MQTT_BROKER").ok_or("set MQTT_BROKER=host[:port] (see the docs)")?;
        let (host, address) = match broker.rsplit_once(':') {
            Some((host, _)) => (host.to_owned(), broker.clone()),
            None => (broker.clone(), format!("{broker}:8883")),
        };
        let identity_pem = match (read("MQTT_CLIENT_CERT")?, read("MQTT_CLIENT_KEY")?) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err("set both MQTT_CLIENT_CERT and MQTT_CLIENT_KEY, or neither".into()),
        };
        Ok(Settings {
            address,
            server_name: var("MQTT_SERVER_NAME").unwrap_or(host),
            ca_pem: read("MQTT_CA")?.ok_or("set MQTT_CA to the broker's CA (PEM file)")?,
            identity_pem,
            client_id: var("MQTT_CLIENT_ID").unwrap_or_default(),
            topic: var("MQTT_TOPIC").unwrap_or_else(|| "minimqtt/tls".into()),
        })
    }
}

fn connected(_ctx: &mut Context<'_, bool>, info: Connected) {
    println!("Connected (session present: {})", info.session_present);
}

fn message(ctx: &mut Context<'_, bool>, msg: &Message<'_>) {
    println!(
        "Received on {}: {}",
        msg.topic,
        String::from_utf8_lossy(msg.payload)
    );
    *ctx.user_data = true;
}

/// Connects, subscribes, publishes one message, waits for it to come back
/// and disconnects.
pub async fn run<K: Connector>(connector: K, settings: &Settings) -> Result<(), String> {
    let mut buffers = Buffers::<2048, 4096, 512>::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let config = Config {
        seed: Some(seed),
        ..Config::new(&settings.client_id)
    };
    let callbacks = Callbacks::new().on_connect(connected);
    // The client opens the TLS connection through the connector, and would
    // open a new one for every reconnect.
    let mut client = Client::new(
        connector,
        TokioClock::new(),
        config,
        buffers.slices(),
        callbacks,
        false,
    );
    let topic = settings.topic.as_str();
    client
        .add_topic_callback(topic, message)
        .map_err(|e| format!("{e:?}"))?;
    client
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    client
        .subscribe(topic, QoS::AtLeastOnce)
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    client
        .publish(topic, b"Hello over TLS!", QoS::AtLeastOnce, false)
        .await
        .map_err(|e| format!("publish: {e}"))?;
    for _ in 0..50 {
        if *client.user_data() {
            break;
        }
        client
            .poll(Duration::from_millis(100))
            .await
            .map_err(|e| format!("poll: {e}"))?;
    }
    client
        .disconnect()
        .await
        .map_err(|e| format!("disconnect: {e}"))?;
    println!("Disconnected");
    Ok(())
}
