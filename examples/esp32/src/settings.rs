//! Settings compiled into the firmware by `build.rs` from the environment
//! (`WIFI_SSID`, `WIFI_PASSWORD`, `MQTT_BROKER`, `MQTT_USERNAME`,
//! `MQTT_PASSWORD`, `MQTT_TOPIC`): the counterpart of CircuitPython's
//! `settings.toml`.

/// Everything the firmware needs to reach the broker.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub wifi_ssid: &'static str,
    /// Empty for an open network.
    pub wifi_password: &'static str,
    /// The broker as `host:port` (host name or IPv4 address; `build.rs`
    /// adds the default port 1883), as `minimqtt::net::connect` takes it.
    pub broker: &'static str,
    pub mqtt_username: Option<&'static str>,
    pub mqtt_password: Option<&'static str>,
    /// The walkthrough's topic: subscribed, published to, unsubscribed.
    pub topic: &'static str,
    /// `<topic>/led`: commands for the LED (`on`, `off`, anything else
    /// toggles).
    pub command_topic: &'static str,
    /// `<topic>/led/state`: the LED's state after each command (retained).
    pub state_topic: &'static str,
    /// `<topic>/uptime`: the periodic reading.
    pub reading_topic: &'static str,
}

pub const SETTINGS: Settings = Settings {
    wifi_ssid: env!("MINIMQTT_WIFI_SSID"),
    wifi_password: env!("MINIMQTT_WIFI_PASSWORD"),
    broker: env!("MINIMQTT_MQTT_BROKER"),
    mqtt_username: non_empty(env!("MINIMQTT_MQTT_USERNAME")),
    mqtt_password: non_empty(env!("MINIMQTT_MQTT_PASSWORD")),
    topic: env!("MINIMQTT_MQTT_TOPIC"),
    command_topic: concat!(env!("MINIMQTT_MQTT_TOPIC"), "/led"),
    state_topic: concat!(env!("MINIMQTT_MQTT_TOPIC"), "/led/state"),
    reading_topic: concat!(env!("MINIMQTT_MQTT_TOPIC"), "/uptime"),
};

const fn non_empty(s: &'static str) -> Option<&'static str> {
    if s.is_empty() { None } else { Some(s) }
}
