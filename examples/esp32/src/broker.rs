//! The TCP connection to the broker: opened through minimqtt's
//! `embedded-nal-async` helper (`minimqtt::net::connect`) with embassy-net's
//! `DnsSocket` (an `embedded_nal_async::Dns`) and `TcpClient` (an
//! `embedded_nal_async::TcpConnect`).

use core::fmt;

use embassy_net::{
    dns::{self, DnsSocket},
    tcp::{
        self,
        client::{TcpClient, TcpConnection},
    },
};
use embassy_time::{Duration, with_timeout};
use embedded_io_async::{ErrorType, Read, Write};
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

/// Longest wait for the DNS lookup and the TCP handshake together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the broker could not be reached.
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

/// Resolves the broker's host name (an IP address is used as is) and opens
/// a TCP connection to it.
pub async fn connect<'t>(
    dns: &DnsSocket<'_>,
    tcp: &'t Tcp<'_>,
    settings: &Settings,
) -> Result<Connection<'t>, Error> {
    println!("Opening TCP connection to {}...", settings.broker);
    match with_timeout(
        CONNECT_TIMEOUT,
        minimqtt::net::connect(dns, tcp, settings.broker),
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

/// The MQTT client's transport: the connection to the broker, or nothing
/// between two connections.
///
/// The client is built once and keeps its session (subscriptions, packet
/// ids, callbacks, user data) across reconnects; each new TCP connection is
/// handed to it with `Client::replace_transport`. Handing it `Link::none()`
/// first drops the old connection, which gives its buffers back to the
/// [`Tcp`] pool for the next one. Reading or writing with no connection is
/// `tcp::Error::ConnectionReset`.
// With `tls`, `crate::tls::Link` takes its place.
#[cfg_attr(feature = "tls", allow(dead_code))]
pub struct Link<'t>(Option<Connection<'t>>);

#[cfg_attr(feature = "tls", allow(dead_code))]
impl<'t> Link<'t> {
    /// No connection.
    pub const fn none() -> Self {
        Self(None)
    }

    /// Over `connection`.
    pub const fn new(connection: Connection<'t>) -> Self {
        Self(Some(connection))
    }
}

impl ErrorType for Link<'_> {
    type Error = tcp::Error;
}

impl Read for Link<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, tcp::Error> {
        match &mut self.0 {
            Some(connection) => connection.read(buf).await,
            None => Err(tcp::Error::ConnectionReset),
        }
    }
}

impl Write for Link<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, tcp::Error> {
        match &mut self.0 {
            Some(connection) => connection.write(buf).await,
            None => Err(tcp::Error::ConnectionReset),
        }
    }

    async fn flush(&mut self) -> Result<(), tcp::Error> {
        match &mut self.0 {
            Some(connection) => connection.flush().await,
            None => Err(tcp::Error::ConnectionReset),
        }
    }
}
