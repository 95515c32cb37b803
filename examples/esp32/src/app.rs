//! The MQTT session, run on an open TCP connection to the broker.

use embassy_futures::select::{Either, select};
use embassy_net::tcp::{self, TcpSocket};
use embassy_time::Ticker;
use esp_hal::gpio::Output;
use esp_println::println;

use crate::{
    reading::{self, Reading},
    settings::Settings,
};

/// Why a session ended. `main` closes the socket, waits and reconnects.
#[derive(Debug)]
pub enum SessionEnd {
    /// The broker closed the connection.
    Closed,
    /// The TCP connection failed.
    Tcp(tcp::Error),
}

/// Runs one MQTT session over `socket`, which is already connected to
/// `settings.broker_host:settings.broker_port`.
///
/// The LED is the demo's actuator (toggled by incoming commands on
/// `settings.topic`); [`Reading::take`] gives the value to publish every
/// [`reading::INTERVAL`].
pub async fn run(
    socket: &mut TcpSocket<'_>,
    led: &mut Output<'static>,
    settings: &Settings,
) -> SessionEnd {
    // MQTT session goes here.
    //
    // Placeholder until the minimqtt client is wired in: it writes nothing,
    // prints the periodic reading and returns when the broker goes away.
    let _ = (led, settings.mqtt_username, settings.mqtt_password);
    let mut ticker = Ticker::every(reading::INTERVAL);
    let mut buf = [0u8; 64];
    loop {
        match select(socket.read(&mut buf), ticker.next()).await {
            Either::First(Ok(0)) => return SessionEnd::Closed,
            Either::First(Ok(_)) => {}
            Either::First(Err(e)) => return SessionEnd::Tcp(e),
            Either::Second(()) => println!("Reading: {}", Reading::take()),
        }
    }
}
