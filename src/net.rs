//! Opening the connection by host name through `embedded-nal-async`.
//!
//! Firmware says "connect to broker.example:1883": [`connect`] resolves
//! the host with a [`Dns`] implementation (embassy-net's `DnsSocket`, say),
//! or parses it as an IP address, and opens the TCP connection with a
//! [`TcpConnect`] implementation. The stream it returns is the client's
//! transport.

use core::net::{IpAddr, Ipv6Addr, SocketAddr};

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
/// `None` when the address cannot name a broker: an empty host, a port that
/// is not a number from 1 to 65,535, brackets around anything but an IPv6
/// address, or several colons that do not make an IPv6 address (an IPv6
/// address with a port must be bracketed, since `::1:1884` is itself an
/// address).
///
/// ```
/// use minimqtt::net::split_host_port;
/// assert_eq!(split_host_port("broker.example", 1883), Some(("broker.example", 1883)));
/// assert_eq!(split_host_port("10.0.0.2:8883", 1883), Some(("10.0.0.2", 8883)));
/// assert_eq!(split_host_port("[::1]:1884", 1883), Some(("::1", 1884)));
/// assert_eq!(split_host_port("::1", 1883), Some(("::1", 1883)));
/// assert_eq!(split_host_port("host:port", 1883), None);
/// ```
pub fn split_host_port(address: &str, default_port: u16) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        match after.strip_prefix(':') {
            Some(port) => (host, parse_port(port)?),
            None if after.is_empty() => (host, default_port),
            None => return None,
        }
    } else {
        match address.rsplit_once(':') {
            // More than one colon without brackets: a bare IPv6 address.
            Some((host, _)) if host.contains(':') => {
                address.parse::<Ipv6Addr>().ok()?;
                (address, default_port)
            }
            Some((host, port)) => (host, parse_port(port)?),
            None => (address, default_port),
        }
    };
    (!host.is_empty() && port != 0).then_some((host, port))
}

/// A decimal port; `u16::from_str` alone would also take a leading `+`.
fn parse_port(port: &str) -> Option<u16> {
    if port.bytes().all(|b| b.is_ascii_digit()) {
        port.parse().ok()
    } else {
        None
    }
}

/// Resolves `address` (`host[:port]`, port 1883 by default, see
/// [`split_host_port`]) with `dns` unless it is an IP address, and opens a
/// TCP connection with `tcp`.
///
/// A host name is looked up with [`AddrType::Either`], so the DNS
/// implementation picks IPv4 or IPv6; the first address it returns is the
/// only one tried.
///
/// # Errors
///
/// [`ConnectError::BadAddress`] before any lookup or connection attempt
/// when `address` is not `host[:port]`; [`ConnectError::Dns`] when the
/// lookup fails, without trying to connect; [`ConnectError::Tcp`] when the
/// connection fails.
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

#[cfg(test)]
mod tests {
    //! `connect` through fake DNS and TCP stacks that record what they are
    //! asked, so each test checks the address that would have been dialled.
    //! Nothing here opens a socket.

    use core::cell::Cell;
    use core::net::{Ipv4Addr, Ipv6Addr};

    use embassy_futures::block_on;
    use embedded_io_async::{ErrorKind, ErrorType, Read, Write};

    use super::*;

    /// What the fake DNS answers for every name.
    const RESOLVED: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct NxDomain;

    /// Answers every lookup with `answer` and remembers the last question.
    struct FakeDns {
        answer: Result<IpAddr, NxDomain>,
        asked: Cell<Option<(&'static str, AddrType)>>,
        lookups: Cell<usize>,
    }

    impl FakeDns {
        fn answering(answer: Result<IpAddr, NxDomain>) -> Self {
            Self {
                answer,
                asked: Cell::new(None),
                lookups: Cell::new(0),
            }
        }
    }

    impl Dns for FakeDns {
        type Error = NxDomain;

        async fn get_host_by_name(
            &self,
            host: &str,
            addr_type: AddrType,
        ) -> Result<IpAddr, NxDomain> {
            self.lookups.set(self.lookups.get() + 1);
            // The tests only look up literals, so the name can be kept as
            // one of them without allocating.
            let host = ["broker.example", "localhost", "a"]
                .into_iter()
                .find(|known| *known == host)
                .unwrap_or("<other>");
            self.asked.set(Some((host, addr_type)));
            self.answer
        }

        async fn get_host_by_address(
            &self,
            _addr: IpAddr,
            _result: &mut [u8],
        ) -> Result<usize, NxDomain> {
            unreachable!("connect never does reverse lookups")
        }
    }

    /// Accepts or refuses every connection and remembers where it was asked
    /// to connect.
    struct FakeTcp {
        refuse: Option<ErrorKind>,
        dialled: Cell<Option<SocketAddr>>,
    }

    impl FakeTcp {
        fn accepting() -> Self {
            Self {
                refuse: None,
                dialled: Cell::new(None),
            }
        }

        fn refusing(kind: ErrorKind) -> Self {
            Self {
                refuse: Some(kind),
                dialled: Cell::new(None),
            }
        }
    }

    /// An open connection: knows its peer, moves no bytes.
    #[derive(Debug)]
    struct FakeConnection {
        remote: SocketAddr,
    }

    impl ErrorType for FakeConnection {
        type Error = ErrorKind;
    }

    impl Read for FakeConnection {
        async fn read(&mut self, _buf: &mut [u8]) -> Result<usize, ErrorKind> {
            Ok(0)
        }
    }

    impl Write for FakeConnection {
        async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
            Ok(buf.len())
        }

        async fn flush(&mut self) -> Result<(), ErrorKind> {
            Ok(())
        }
    }

    impl TcpConnect for FakeTcp {
        type Error = ErrorKind;
        type Connection<'a> = FakeConnection;

        async fn connect(&self, remote: SocketAddr) -> Result<FakeConnection, ErrorKind> {
            self.dialled.set(Some(remote));
            match self.refuse {
                Some(kind) => Err(kind),
                None => Ok(FakeConnection { remote }),
            }
        }
    }

    fn v6(ip: Ipv6Addr, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(ip), port)
    }

    fn v4(ip: Ipv4Addr, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(ip), port)
    }

    #[test]
    fn a_host_name_is_resolved_then_dialled_on_the_default_port() {
        let (dns, tcp) = (FakeDns::answering(Ok(RESOLVED)), FakeTcp::accepting());
        let connection = block_on(connect(&dns, &tcp, "broker.example")).unwrap();
        assert_eq!(dns.asked.take(), Some(("broker.example", AddrType::Either)));
        assert_eq!(tcp.dialled.get(), Some(v4(Ipv4Addr::LOCALHOST, MQTT_PORT)));
        assert_eq!(connection.remote, v4(Ipv4Addr::LOCALHOST, 1883));
    }

    #[test]
    fn a_host_name_with_a_port_is_dialled_on_that_port() {
        let (dns, tcp) = (FakeDns::answering(Ok(RESOLVED)), FakeTcp::accepting());
        block_on(connect(&dns, &tcp, "localhost:8883")).unwrap();
        assert_eq!(dns.asked.take(), Some(("localhost", AddrType::Either)));
        assert_eq!(tcp.dialled.get(), Some(v4(Ipv4Addr::LOCALHOST, MQTTS_PORT)));
    }

    #[test]
    fn the_resolved_ipv6_address_is_dialled() {
        let dns = FakeDns::answering(Ok(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        let tcp = FakeTcp::accepting();
        block_on(connect(&dns, &tcp, "a:1884")).unwrap();
        assert_eq!(tcp.dialled.get(), Some(v6(Ipv6Addr::LOCALHOST, 1884)));
    }

    #[test]
    fn ip_literals_are_dialled_without_a_lookup() {
        let cases = [
            ("127.0.0.1", v4(Ipv4Addr::LOCALHOST, 1883)),
            ("127.0.0.1:1884", v4(Ipv4Addr::LOCALHOST, 1884)),
            ("[::1]:1884", v6(Ipv6Addr::LOCALHOST, 1884)),
            ("[::1]", v6(Ipv6Addr::LOCALHOST, 1883)),
            ("::1", v6(Ipv6Addr::LOCALHOST, 1883)),
            (
                "::ffff:127.0.0.1",
                v6(Ipv4Addr::LOCALHOST.to_ipv6_mapped(), 1883),
            ),
        ];
        for (address, expected) in cases {
            let (dns, tcp) = (FakeDns::answering(Err(NxDomain)), FakeTcp::accepting());
            let result = block_on(connect(&dns, &tcp, address));
            assert!(result.is_ok(), "{address}: {result:?}");
            assert_eq!(tcp.dialled.get(), Some(expected), "{address}");
            assert_eq!(dns.lookups.get(), 0, "{address} was looked up");
        }
    }

    #[test]
    fn a_failed_lookup_is_a_dns_error_and_nothing_is_dialled() {
        let (dns, tcp) = (FakeDns::answering(Err(NxDomain)), FakeTcp::accepting());
        let result = block_on(connect(&dns, &tcp, "broker.example:1883"));
        assert_eq!(result.unwrap_err(), ConnectError::Dns(NxDomain));
        assert_eq!(dns.lookups.get(), 1);
        assert_eq!(tcp.dialled.get(), None);
    }

    #[test]
    fn a_refused_connection_is_a_tcp_error_with_the_stack_s_error() {
        let dns = FakeDns::answering(Ok(RESOLVED));
        for kind in [ErrorKind::ConnectionRefused, ErrorKind::TimedOut] {
            let tcp = FakeTcp::refusing(kind);
            let result = block_on(connect(&dns, &tcp, "broker.example"));
            assert_eq!(result.unwrap_err(), ConnectError::Tcp(kind));
            assert_eq!(tcp.dialled.get(), Some(v4(Ipv4Addr::LOCALHOST, 1883)));
        }
    }

    #[test]
    fn a_bad_address_is_refused_before_any_lookup_or_connection() {
        for address in [
            "",
            ":1883",
            "host:",
            "host:port",
            "host:0",
            "host:65536",
            "host:+1883",
            "host:-1",
            "[::1]:",
            "[::1]1883",
            "[::1",
            "[]:1883",
            "[broker.example]:1883",
            "[127.0.0.1]:1883",
            "broker:example:1883",
            "::1:1883:x",
        ] {
            let (dns, tcp) = (FakeDns::answering(Ok(RESOLVED)), FakeTcp::accepting());
            let result = block_on(connect(&dns, &tcp, address));
            assert_eq!(result.unwrap_err(), ConnectError::BadAddress, "{address:?}");
            assert_eq!(dns.lookups.get(), 0, "{address:?} was looked up");
            assert_eq!(tcp.dialled.get(), None, "{address:?} was dialled");
        }
    }

    #[test]
    fn split_host_port_takes_the_forms_the_docs_promise() {
        let cases = [
            ("broker.example", Some(("broker.example", 1883))),
            ("broker.example:1", Some(("broker.example", 1))),
            ("broker.example:65535", Some(("broker.example", 65535))),
            ("127.0.0.1:8883", Some(("127.0.0.1", 8883))),
            ("[::1]:1884", Some(("::1", 1884))),
            ("[::1]", Some(("::1", 1883))),
            ("[fe80::1%eth0]:1883", None),
            ("::1", Some(("::1", 1883))),
            // Unbracketed, the last group is part of the address, not a port.
            ("::1:1884", Some(("::1:1884", 1883))),
            ("host:08883", Some(("host", 8883))),
        ];
        for (address, expected) in cases {
            assert_eq!(split_host_port(address, MQTT_PORT), expected, "{address:?}");
        }
        assert_eq!(
            split_host_port("broker.example", MQTTS_PORT),
            Some(("broker.example", 8883))
        );
    }

    #[test]
    fn connect_errors_say_what_failed() {
        extern crate std;
        use std::string::ToString;

        type E = ConnectError<NxDomain, ErrorKind>;
        assert_eq!(
            E::BadAddress.to_string(),
            "broker address is not host[:port]"
        );
        assert_eq!(
            E::Dns(NxDomain).to_string(),
            "cannot resolve the broker: NxDomain"
        );
        assert_eq!(
            E::Tcp(ErrorKind::ConnectionRefused).to_string(),
            "cannot connect to the broker: ConnectionRefused"
        );
    }
}
