//! minimqtt on an ESP32-C3 / ESP32-C6: joins Wi-Fi, gets an address by
//! DHCP, resolves the broker (embassy-net's DNS through minimqtt's
//! `embedded-nal-async` helper), runs MiniMQTT's walkthrough and then a
//! long-running MQTT session over TCP (a reading every 10 s, LED commands),
//! reconnecting whenever Wi-Fi or the broker goes away.
//!
//! Settings are compiled in from the environment (see `build.rs` and
//! README.md). The LED is the demo's actuator: GPIO8 on the C3, GPIO15 on
//! the C6, GPIO2 on the ESP32 and ESP32-S3 (see README.md).

#![no_std]
#![no_main]

mod app;
mod broker;
mod reading;
mod settings;
#[cfg(feature = "tls")]
mod tls;
mod wifi;

use embassy_executor::Spawner;
use embassy_net::{
    StackResources,
    dns::DnsSocket,
    tcp::client::{TcpClient, TcpClientState},
};
use embassy_time::Duration;
use esp_backtrace as _;
use esp_hal::{
    clock::CpuClock,
    gpio::{Level, Output, OutputConfig},
    rng::Rng,
    timer::timg::TimerGroup,
};
use esp_println::println;
use static_cell::{ConstStaticCell, StaticCell};

use crate::{
    broker::{TCP_RX, TCP_TX, Tcp},
    settings::SETTINGS,
};

// The ESP-IDF bootloader refuses an image without an application descriptor.
esp_bootloader_esp_idf::esp_app_desc!();

/// Abort a TCP connection when the broker stops acknowledging for this long.
const TCP_TIMEOUT: Duration = Duration::from_secs(30);

/// Sockets: DHCP, DNS and the broker's TCP connection.
const SOCKETS: usize = 3;

#[esp_rtos::main]
async fn main(spawner: Spawner) -> ! {
    let peripherals = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));

    // Heap for the Wi-Fi driver (its blobs allocate); minimqtt does not.
    esp_alloc::heap_allocator!(#[esp_hal::ram(reclaimed)] size: 64 * 1024);
    esp_alloc::heap_allocator!(size: 36 * 1024);

    let timg0 = TimerGroup::new(peripherals.TIMG0);
    esp_rtos::start(timg0.timer0, peripherals.FROM_CPU_INTR0);

    // minimqtt's own warnings (a timed-out acknowledgement, a skipped
    // oversized message) go through `log`; `debug` shows more.
    esp_println::logger::init_logger(log::LevelFilter::Info);

    println!("minimqtt ESP32 example");
    println!("Broker {}, topic {}", SETTINGS.broker, SETTINGS.topic);

    // The demo's LED (see README.md): a plain output, high = on.
    #[cfg(feature = "esp32c3")]
    let led_pin = peripherals.GPIO8;
    #[cfg(feature = "esp32c6")]
    let led_pin = peripherals.GPIO15;
    #[cfg(any(feature = "esp32", feature = "esp32s3"))]
    let led_pin = peripherals.GPIO2;
    let led = Output::new(led_pin, Level::Low, OutputConfig::default());

    let (controller, interface) = match wifi::init(peripherals.WIFI, &SETTINGS) {
        Ok(wifi) => wifi,
        Err(e) => panic!("Wi-Fi initialisation failed: {e}"),
    };

    let rng = Rng::new();
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    static RESOURCES: StaticCell<StackResources<SOCKETS>> = StaticCell::new();
    let (stack, runner) = embassy_net::new(
        interface,
        embassy_net::Config::dhcpv4(Default::default()),
        RESOURCES.init(StackResources::new()),
        seed,
    );

    spawner.spawn(wifi::connection(controller).unwrap());
    spawner.spawn(wifi::net_task(runner).unwrap());

    // DNS through embassy-net, TCP from a pool of one connection: the two
    // `embedded-nal-async` traits `minimqtt::net::connect` works with.
    let dns = DnsSocket::new(stack);
    static TCP_STATE: ConstStaticCell<TcpClientState<1, TCP_TX, TCP_RX>> =
        ConstStaticCell::new(TcpClientState::new());
    let mut tcp: Tcp<'_> = TcpClient::new(stack, TCP_STATE.take());
    // A connection whose peer stops acknowledging (or a handshake that gets
    // no answer) is aborted after this long.
    tcp.set_timeout(Some(TCP_TIMEOUT));

    // MiniMQTT makes up a random client id; so does minimqtt, from this
    // seed, which also spreads out its reconnect attempts.
    let seed = (u64::from(rng.random()) << 32) | u64::from(rng.random());
    app::run(stack, &dns, &tcp, led, &SETTINGS, seed).await
}
