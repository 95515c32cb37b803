//! Opening and closing the TCP connection to the broker.

use core::{
    fmt,
    net::{IpAddr, SocketAddrV4},
};

use embassy_net::{
    Stack,
    dns::{self, DnsSocket},
    tcp::{ConnectError, TcpSocket},
};
use embassy_time::{Duration, with_timeout};
use embedded_nal_async::{AddrType, Dns};
use esp_println::println;

use crate::settings::Settings;

/// Longest wait for the TCP handshake with the broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the broker could not be reached.
pub enum Error {
    /// The broker's host name did not resolve.
    Dns(dns::Error),
    /// The TCP connection was refused, reset or unreachable.
    Connect(ConnectError),
    /// No answer within [`CONNECT_TIMEOUT`].
    Timeout,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Dns(e) => write!(f, "DNS lookup failed: {e:?}"),
            Error::Connect(e) => write!(f, "TCP connect failed: {e:?}"),
            Error::Timeout => write!(f, "TCP connect timed out"),
        }
    }
}

/// Resolves the broker's host (through embassy-net's DNS client, used via
/// `embedded_nal_async::Dns`) and connects `socket` to it.
pub async fn connect(
    stack: Stack<'_>,
    socket: &mut TcpSocket<'_>,
    settings: &Settings,
) -> Result<(), Error> {
    let dns = DnsSocket::new(stack);
    let ip = dns
        .get_host_by_name(settings.broker_host, AddrType::IPv4)
        .await
        .map_err(Error::Dns)?;
    // The stack is IPv4-only and the query asked for an A record.
    let IpAddr::V4(ip) = ip else {
        return Err(Error::Dns(dns::Error::Failed));
    };
    let remote = SocketAddrV4::new(ip, settings.broker_port);
    println!(
        "Opening TCP connection to {} ({remote})...",
        settings.broker_host
    );
    match with_timeout(CONNECT_TIMEOUT, socket.connect(remote)).await {
        Ok(Ok(())) => {
            println!("TCP connection to broker open");
            Ok(())
        }
        Ok(Err(e)) => Err(Error::Connect(e)),
        Err(_) => Err(Error::Timeout),
    }
}

/// Closes the connection gracefully (FIN), giving up after a second.
pub async fn close(socket: &mut TcpSocket<'_>) {
    socket.close();
    let _ = with_timeout(Duration::from_secs(1), socket.flush()).await;
    socket.abort();
}
