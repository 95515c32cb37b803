//! The TCP connection to the broker: opened through minimqtt's
//! `embedded-nal-async` helper (`minimqtt::net::connect`) with embassy-net's
//! `DnsSocket` (an `embedded_nal_async::Dns`) and `TcpClient` (an
//! `embedded_nal_async::TcpConnect`).

use core::fmt;

use embassy_net::{
    Stack,
    dns::{self, DnsSocket},
    tcp::{
        self,
        client::{TcpClient, TcpConnection},
    },
};
use embassy_time::{Duration, with_timeout};
use esp_println::println;
use minimqtt::net::ConnectError;

use crate::settings::Settings;

/// Size of the TCP socket's receive buffer.
pub const TCP_RX: usize = 1536;
/// Size of the TCP socket's transmit buffer.
pub const TCP_TX: usize = 1536;

/// `embedded_nal_async::TcpConnect` on embassy-net, with room for one
/// connection: the old one is always released before the next one opens.
pub type Tcp<'d> = TcpClient<'d, 1, TCP_TX, TCP_RX>;
/// What [`Tcp`] opens: an `embedded_io_async::Read + Write` stream.
pub type Connection<'t> = TcpConnection<'t, 1, TCP_TX, TCP_RX>;

/// The client's connector without TLS: [`Broker`] itself.
#[cfg_attr(feature = "tls", allow(dead_code))]
pub type Connector<'a, 'd> = Broker<'a, 'd>;
/// Its transport's error.
#[cfg_attr(feature = "tls", allow(dead_code))]
pub type TransportError = tcp::Error;

/// The client's connector without TLS.
#[cfg_attr(feature = "tls", allow(dead_code))]
pub fn connector<'a, 'd>(broker: Broker<'a, 'd>) -> Broker<'a, 'd> {
    broker
}

/// Longest wait for the DNS lookup and the TCP handshake together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the broker could not be reached.
#[derive(Debug)]
pub enum Error {
    /// DNS or TCP failed (or `settings.broker` is not `host:port`).
    Net(ConnectError<dns::Error, tcp::Error>),
    /// No answer within [`CONNECT_TIMEOUT`].
    Timeout,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Net(e) => write!(f, "{e}"),
            Error::Timeout => write!(f, "timed out after {} s", CONNECT_TIMEOUT.as_secs()),
        }
    }
}

/// Opens the connection to the broker for the client, for every attempt:
/// waits for Wi-Fi and DHCP, resolves the broker's host name (an IP address
/// is used as is) and opens a TCP connection from the one-slot [`Tcp`]
/// pool. The client drops its old connection before it asks for a new one,
/// so the slot is always free.
pub struct Broker<'a, 'd> {
    pub stack: Stack<'d>,
    pub dns: &'a DnsSocket<'d>,
    pub tcp: &'a Tcp<'d>,
    pub settings: &'a Settings,
}

impl<'a, 'd> minimqtt::Connector for Broker<'a, 'd> {
    type Transport = Connection<'a>;
    type Error = Error;

    async fn connect(&mut self) -> Result<Connection<'a>, Error> {
        // Wi-Fi joined and DHCP done (again, after a drop).
        self.stack.wait_config_up().await;
        if let Some(config) = self.stack.config_v4() {
            println!("DHCP: IP address {}", config.address);
        }
        println!("Opening TCP connection to {}...", self.settings.broker);
        match with_timeout(
            CONNECT_TIMEOUT,
            minimqtt::net::connect(self.dns, self.tcp, self.settings.broker),
        )
        .await
        {
            Ok(Ok(connection)) => {
                println!("TCP connection to broker open");
                Ok(connection)
            }
            Ok(Err(e)) => Err(Error::Net(e)),
            Err(_) => Err(Error::Timeout),
        }
    }
}
