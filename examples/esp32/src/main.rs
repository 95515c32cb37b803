//! minimqtt on an ESP32-C3 / ESP32-C6: joins Wi-Fi, gets an address by
//! DHCP, resolves the broker and runs an MQTT session over TCP, reconnecting
//! whenever Wi-Fi or the broker goes away.
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
mod wifi;

use embassy_executor::Spawner;
use embassy_futures::select::{Either, select};
use embassy_net::{StackResources, tcp::TcpSocket};
use embassy_time::{Duration, Timer};
use esp_backtrace as _;
use esp_hal::{
    clock::CpuClock,
    gpio::{Level, Output, OutputConfig},
    rng::Rng,
    timer::timg::TimerGroup,
};
use esp_println::println;
use static_cell::StaticCell;

use crate::settings::SETTINGS;

// The ESP-IDF bootloader refuses an image without an application descriptor.
esp_bootloader_esp_idf::esp_app_desc!();

/// Pause before reopening the connection after the broker went away.
const RECONNECT_DELAY: Duration = Duration::from_secs(5);

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

    println!("minimqtt ESP32 example");
    println!(
        "Broker {}:{}, topic {}",
        SETTINGS.broker_host, SETTINGS.broker_port, SETTINGS.topic
    );

    // The demo's LED (see README.md): a plain output, high = on.
    #[cfg(feature = "esp32c3")]
    let led_pin = peripherals.GPIO8;
    #[cfg(feature = "esp32c6")]
    let led_pin = peripherals.GPIO15;
    #[cfg(any(feature = "esp32", feature = "esp32s3"))]
    let led_pin = peripherals.GPIO2;
    let mut led = Output::new(led_pin, Level::Low, OutputConfig::default());

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

    let mut rx_buffer = [0u8; 1536];
    let mut tx_buffer = [0u8; 1536];
    loop {
        // Wi-Fi joined and DHCP done (again, after a drop).
        stack.wait_config_up().await;
        if let Some(config) = stack.config_v4() {
            println!("DHCP: IP address {}", config.address);
        }

        let mut socket = TcpSocket::new(stack, &mut rx_buffer, &mut tx_buffer);
        match broker::connect(stack, &mut socket, &SETTINGS).await {
            Ok(()) => {
                // Run the session until it ends or the network goes down.
                let session = app::run(&mut socket, &mut led, &SETTINGS);
                match select(session, stack.wait_config_down()).await {
                    Either::First(end) => println!("Broker connection ended: {end:?}"),
                    Either::Second(()) => println!("Network lost"),
                }
                broker::close(&mut socket).await;
            }
            Err(e) => println!("could not connect to broker: {e}"),
        }
        drop(socket);
        println!("Reconnecting in {} s", RECONNECT_DELAY.as_secs());
        Timer::after(RECONNECT_DELAY).await;
    }
}
