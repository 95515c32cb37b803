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
    /// Host name or IPv4 address of the broker.
    pub broker_host: &'static str,
    pub broker_port: u16,
    pub mqtt_username: Option<&'static str>,
    pub mqtt_password: Option<&'static str>,
    /// Topic the demo subscribes and publishes to.
    pub topic: &'static str,
}

pub const SETTINGS: Settings = Settings {
    wifi_ssid: env!("MINIMQTT_WIFI_SSID"),
    wifi_password: env!("MINIMQTT_WIFI_PASSWORD"),
    broker_host: env!("MINIMQTT_MQTT_BROKER_HOST"),
    broker_port: match u16::from_str_radix(env!("MINIMQTT_MQTT_BROKER_PORT"), 10) {
        Ok(port) => port,
        Err(_) => panic!("build.rs emitted an invalid broker port"),
    },
    mqtt_username: non_empty(env!("MINIMQTT_MQTT_USERNAME")),
    mqtt_password: non_empty(env!("MINIMQTT_MQTT_PASSWORD")),
    topic: env!("MINIMQTT_MQTT_TOPIC"),
};

const fn non_empty(s: &'static str) -> Option<&'static str> {
    if s.is_empty() { None } else { Some(s) }
}
