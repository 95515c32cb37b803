//! A firmware update over MQTT: a 1 MiB "image" is published in one
//! message and received by a device whose receive buffer holds 512 bytes.
//! The device hashes the image with SHA-256 as its chunks arrive and
//! compares the digest with the one in the update's manifest; the
//! publisher, whose transmit buffer is 512 bytes too, writes the payload
//! straight to the socket from where the image lives.
//!
//! ```text
//! cargo run --example ota                       # in-process broker
//! MQTT_BROKER=127.0.0.1:1883 cargo run --example ota
//! ```
//!
//! The device defers its PUBACK until the image is "written to flash" and
//! verified, so the broker resends the update if the device dies first.

#[path = "walkthrough/broker.rs"]
mod broker;

use std::time::Instant;

use embedded_io_adapters::tokio_1::FromTokio;
use minimqtt::callbacks::{AckToken, Part, Stream};
use minimqtt::time::{Duration, TokioClock};
use minimqtt::{Buffers, Callbacks, Client, Config, Connector, Context, Message, QoS};
use sha2::{Digest, Sha256};

const IMAGE_LEN: usize = 1 << 20;
const MANIFEST: &str = "devices/ota-demo/manifest";
const IMAGE: &str = "devices/ota-demo/image";

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

/// The device's state: the manifest, the image being received, and the
/// outcome.
#[derive(Default)]
struct Device {
    expected: Option<String>,
    hasher: Option<Sha256>,
    received: usize,
    chunks: usize,
    /// The image's digest once complete, and the PUBACK held until it is
    /// verified.
    done: Option<(String, Option<AckToken>)>,
}

fn on_manifest(ctx: &mut Context<'_, Device>, msg: &Message<'_>) {
    let text = String::from_utf8_lossy(msg.payload);
    println!("manifest: {text}");
    ctx.user_data.expected = text.split_whitespace().nth(1).map(String::from);
}

fn on_image(ctx: &mut Context<'_, Device>, s: &Stream<'_>) {
    match s.part {
        Part::Start => {
            println!(
                "image: {} bytes on {} (QoS {})",
                s.len, s.topic, s.qos as u8
            );
            let device = &mut *ctx.user_data;
            device.hasher = Some(Sha256::new());
            device.received = 0;
            device.chunks = 0;
        }
        Part::Chunk { offset, data } => {
            let device = &mut *ctx.user_data;
            // A real device writes `data` to flash at `offset` here.
            if let Some(h) = device.hasher.as_mut() {
                h.update(data);
            }
            device.chunks += 1;
            let before = device.received;
            device.received = offset + data.len();
            if before / (256 << 10) != device.received / (256 << 10) {
                println!("  {:>7} / {} bytes", device.received, s.len);
            }
        }
        Part::End => {
            let digest = ctx.user_data.hasher.take().map(|h| hex(&h.finalize()));
            // The PUBACK waits until the image is verified: if the
            // device died now, the broker would send the update again.
            let token = ctx.defer_ack().ok();
            ctx.user_data.done = Some((digest.unwrap_or_default(), token));
        }
        Part::Aborted => {
            println!("image: connection lost mid-transfer; the broker sends it again");
            ctx.user_data.hasher = None;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A deterministic 1 MiB "firmware image".
fn image() -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..IMAGE_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (address, _broker) = match std::env::var("MQTT_BROKER") {
        Ok(address) => (address, None),
        Err(_) => {
            let broker = broker::Broker::start().await;
            (broker.addr().to_string(), Some(broker))
        }
    };

    // The device: 512 bytes to receive into.
    let mut device_buffers = Buffers::<512, 1536, 128>::new();
    let mut callbacks = Callbacks::new();
    callbacks.add_topic_callback(MANIFEST, on_manifest)?;
    callbacks.add_stream_callback(IMAGE, on_image)?;
    let mut device = Client::new(
        Tcp {
            address: address.clone(),
        },
        TokioClock::new(),
        Config::new("ota-demo-device"),
        device_buffers.slices(),
        callbacks,
        Device::default(),
    );
    device.connect().await?;
    device
        .subscribe("devices/ota-demo/#", QoS::AtLeastOnce)
        .await?;

    // The update server: 512 bytes to send from, too.
    let image = image();
    let digest = hex(&Sha256::digest(&image));
    let mut server_buffers = Buffers::<512, 1536, 128>::new();
    let mut server = Client::new(
        Tcp { address },
        TokioClock::new(),
        Config::new("ota-demo-server"),
        server_buffers.slices(),
        Callbacks::<'_, ()>::new(),
        (),
    );
    server.connect().await?;
    let manifest = format!("sha256 {digest} len {IMAGE_LEN}");
    server
        .publish(MANIFEST, manifest.as_bytes(), QoS::AtLeastOnce, false)
        .await?;

    let started = Instant::now();
    let send = async {
        let pid = server
            .publish_from(IMAGE, image.len(), QoS::AtLeastOnce, false, &mut &image[..])
            .await?;
        if let Some(pid) = pid {
            server.wait_published(pid).await?;
        }
        Ok::<_, minimqtt::Error<std::io::Error>>(())
    };
    let receive = async {
        while device.user_data().done.is_none() {
            device.poll(Duration::from_millis(100)).await?;
        }
        Ok::<_, minimqtt::Error<std::io::Error>>(())
    };
    let (sent, received) = tokio::join!(send, receive);
    sent?;
    received?;
    let elapsed = started.elapsed();

    let state = device.user_data_mut();
    let (got, token) = state.done.take().expect("the image arrived");
    let expected = state.expected.clone().unwrap_or_default();
    println!(
        "received {} bytes in {} chunks in {:.0} ms ({:.1} MB/s)",
        state.received,
        state.chunks,
        elapsed.as_secs_f64() * 1e3,
        state.received as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!("SHA-256 {got}");
    if got != expected {
        eprintln!("digest mismatch: the manifest says {expected}");
        std::process::exit(1);
    }
    println!("digest matches the manifest: acknowledging the update");
    if let Some(token) = token {
        device.ack(token)?;
    }
    device.poll(Duration::from_millis(50)).await?;
    device.disconnect().await?;
    server.disconnect().await?;
    Ok(())
}
