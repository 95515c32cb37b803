//! Opening the connection by host name through `embedded-nal-async`.
//!
//! Firmware says "connect to broker.example:1883": [`connect`] resolves
//! the host with a [`Dns`] implementation (embassy-net's `DnsSocket`, say),
//! or parses it as an IP address, and opens the TCP connection with a
//! [`TcpConnect`] implementation. The stream it returns is the client's
//! transport.

use core::net::{IpAddr, SocketAddr};

use embedded_nal_async::{AddrType, Dns, TcpConnect};

/// The IANA port for MQTT over TCP.
pub const MQTT_PORT: u16 = 1883;
/// The IANA port for MQTT over TLS.
pub const MQTTS_PORT: u16 = 8883;

/// Why [`connect`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConnectError<D, T> {
    /// The broker address is not `host`, `host:port`, `ip` or `ip:port`.
    BadAddress,
    /// Name resolution failed.
    Dns(D),
    /// The TCP connection failed.
    Tcp(T),
}

impl<D: core::fmt::Debug, T: core::fmt::Debug> core::fmt::Display for ConnectError<D, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadAddress => f.write_str("broker address is not host[:port]"),
            Self::Dns(e) => write!(f, "cannot resolve the broker: {e:?}"),
            Self::Tcp(e) => write!(f, "cannot connect to the broker: {e:?}"),
        }
    }
}

/// Splits `host[:port]` (IPv6 as `[addr]:port`), with `default_port` when
/// none is given.
///
/// ```
/// use minimqtt::net::split_host_port;
/// assert_eq!(split_host_port("broker.example", 1883), Some(("broker.example", 1883)));
/// assert_eq!(split_host_port("10.0.0.2:8883", 1883), Some(("10.0.0.2", 8883)));
/// assert_eq!(split_host_port("[::1]:1884", 1883), Some(("::1", 1884)));
/// assert_eq!(split_host_port("host:port", 1883), None);
/// ```
pub fn split_host_port(address: &str, default_port: u16) -> Option<(&str, u16)> {
    if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host, port.parse().ok()?)),
            None if after.is_empty() => Some((host, default_port)),
            None => None,
        };
    }
    match address.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Some((address, default_port)),
        Some((host, port)) => Some((host, port.parse().ok()?)),
        None => Some((address, default_port)),
    }
    .filter(|(host, _)| !host.is_empty())
}

/// Resolves `address` (`host[:port]`, port 1883 by default) with `dns`
/// unless it is an IP address, and opens a TCP connection with `tcp`.
pub async fn connect<'t, D: Dns, T: TcpConnect>(
    dns: &D,
    tcp: &'t T,
    address: &str,
) -> Result<T::Connection<'t>, ConnectError<D::Error, T::Error>> {
    let (host, port) = split_host_port(address, MQTT_PORT).ok_or(ConnectError::BadAddress)?;
    let ip = match host.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => dns
            .get_host_by_name(host, AddrType::Either)
            .await
            .map_err(ConnectError::Dns)?,
    };
    tcp.connect(SocketAddr::new(ip, port))
        .await
        .map_err(ConnectError::Tcp)
}
