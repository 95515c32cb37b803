//! Wi-Fi station: joins the access point, reports the RSSI, and rejoins
//! whenever the link drops.

use core::fmt;

use embassy_net::Runner;
use embassy_time::{Duration, Timer};
use esp_hal::peripherals::WIFI;
use esp_println::println;
use esp_radio::wifi::{
    AuthenticationMethodConfig, Config, ConnectionError, ControllerConfig, Interface,
    WifiController, WifiError, sta::StationConfig,
};

use crate::settings::Settings;

/// Pause between two attempts to join the access point.
const RETRY_DELAY: Duration = Duration::from_secs(5);

/// Starts the Wi-Fi driver in station mode for `settings.wifi_ssid`.
///
/// Returns the controller (for [`connection`]) and the network interface
/// (for `embassy_net::new`).
pub fn init(
    wifi: WIFI<'static>,
    settings: &Settings,
) -> Result<(WifiController<'static>, Interface), WifiError> {
    let authentication = if settings.wifi_password.is_empty() {
        AuthenticationMethodConfig::Open
    } else {
        AuthenticationMethodConfig::Wpa2Personal(settings.wifi_password.try_into()?)
    };
    let station = StationConfig::default()
        .with_ssid(settings.wifi_ssid.try_into()?)
        .with_authentication(authentication);
    let config = ControllerConfig::default().with_initial_config(Config::Station(station));
    let controller = WifiController::new(wifi, config)?;
    Ok((controller, Interface::station()))
}

/// Keeps the station joined to the access point: joins it (retrying until it
/// succeeds), then waits for the link to drop and joins it again.
#[embassy_executor::task]
pub async fn connection(mut controller: WifiController<'static>) -> ! {
    loop {
        println!("Connecting to AP...");
        let info = loop {
            match controller.connect_async().await {
                Ok(info) => break info,
                Err(e) => {
                    println!("could not connect to AP, retrying: {}", ShowError(&e));
                    Timer::after(RETRY_DELAY).await;
                }
            }
        };
        match controller.rssi() {
            Ok(rssi) => println!("Connected to {}\tRSSI: {}", info.ssid.as_str(), rssi),
            Err(_) => println!("Connected to {}\tRSSI: unknown", info.ssid.as_str()),
        }

        match controller.wait_for_disconnect_async().await {
            Ok(info) => println!("Disconnected from AP: {:?}", info.reason),
            Err(e) => println!("Disconnected from AP: {e}"),
        }
        Timer::after(RETRY_DELAY).await;
    }
}

/// Runs the embassy-net stack on the Wi-Fi interface.
#[embassy_executor::task]
pub async fn net_task(mut runner: Runner<'static, Interface>) -> ! {
    runner.run().await
}

/// Readable form of a connection error: the disconnect reason reported by
/// the access point (e.g. `NoApFound`, `AuthenticationFailed`) or the
/// driver's error.
struct ShowError<'a>(&'a ConnectionError);

impl fmt::Display for ShowError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ConnectionError::Failed(info) => write!(f, "{:?}", info.reason),
            ConnectionError::WifiError(e) => write!(f, "{e}"),
            other => write!(f, "{other:?}"),
        }
    }
}
