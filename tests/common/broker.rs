//! An in-process rumqttd 0.20 broker for integration tests and the
//! walkthrough example: MQTT 3.1.1 by default, MQTT 5 with
//! [`BrokerOptions::v5`] (see [`Listener`]).
//!
//! Self-contained on purpose: an example can pull it in with
//! `#[path = "../tests/common/broker.rs"] mod broker;`.
//!
//! # How it is wired, and why
//!
//! ```text
//!  client ──TCP──▶ front listener (the public port) ──proxy task──▶ rumqttd Server ──▶ Router thread
//!                  owned by this harness                           (private port)     (std::thread)
//! ```
//!
//! rumqttd's `Server::start` binds its listener itself and spawns one
//! detached tokio task per connection. Aborting the server task therefore
//! only closes the listener: every accepted connection lives on, still
//! routed by the old router, so a client would never notice a "broker
//! restart". The harness owns the public listener instead and proxies
//! each connection to rumqttd through a task it tracks; stopping the
//! broker ends those tasks, which closes every client socket, exactly
//! like a broker process dying. The rumqttd-side tasks then read EOF and
//! finish on their own. A bonus of owning the listener is that the public
//! port can really be bound as port 0, race-free.
//!
//! # Findings about rumqttd 0.20 (checked against its source)
//!
//! - `Router::spawn` starts an OS thread that loops on a channel whose
//!   sender the router itself also holds, so the thread never sees a
//!   disconnect and never exits. Every broker started here leaks one idle
//!   thread (blocked in `recv`, no CPU) plus its state (small, because
//!   `max_connections` is kept low). There is no API to stop it. This is
//!   harmless for a test binary; do not start brokers in a loop of
//!   thousands.
//! - A restarted broker is a brand-new `Router`: no sessions, no retained
//!   messages, no subscriptions survive (like a broker restart without
//!   persistence). A client reconnecting with `clean_session = false`
//!   gets `session present = 0`.
//! - Restart on the same port works: tokio binds with `SO_REUSEADDR`, so
//!   sockets in `TIME_WAIT` do not block it. `Broker::stop` waits for the
//!   listener to be closed; after a plain drop the close happens on the
//!   runtime shortly after, so `start_on` retries `EADDRINUSE` briefly.
//! - Refused credentials get *no* CONNACK: rumqttd closes the TCP
//!   connection right after reading the CONNECT. The same happens for a
//!   CONNECT with `keep_alive = 0`, which rumqttd refuses. Only an empty
//!   client id with `clean_session = 0` gets a CONNACK with code 2.
//!   (mosquitto, see `mosquitto.rs`, answers bad credentials with
//!   CONNACK code 5.)
//! - `dynamic_filters` must be on, or a PUBLISH to a topic nobody has
//!   subscribed to is an error for the router.
//! - The protocol is a property of the listener, not of the connection:
//!   rumqttd's `Broker::start` runs `Server::new(config, router_tx, V4)`
//!   for each `[v4.*]` listener and `Server::new(config, router_tx, V5)`
//!   for each `[v5.*]` one, and `Network<P>` decodes every packet with
//!   that `P`. The harness does the same: [`Listener::V5`] starts the
//!   private server with `rumqttd::protocol::v5::V5`, behind the same
//!   front listener and proxy. A listener speaks one version only: a
//!   3.1.1 CONNECT on a v5 listener (or the reverse) is a protocol error
//!   rumqttd answers by closing the connection.
//! - Everything runs in the caller's tokio runtime except the router
//!   thread, so do not pause tokio's clock in a test that uses the
//!   broker: rumqttd's own timeouts (CONNECT wait, keep-alive) would fire
//!   at once.
#![allow(dead_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::Protocol;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::v5::V5;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// How long `start*` may take before the harness gives up with a panic.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The MQTT version the broker's listener speaks (rumqttd's `[v4.*]` or
/// `[v5.*]` listeners).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Listener {
    /// MQTT 3.1.1 (`rumqttd::protocol::v4::V4`).
    #[default]
    V4,
    /// MQTT 5 (`rumqttd::protocol::v5::V5`).
    V5,
}

/// What the broker accepts. `Default` is anonymous access over MQTT 3.1.1
/// with limits far above anything a test needs.
#[derive(Clone, Debug)]
pub struct BrokerOptions {
    /// The protocol of the listener; kept across [`Broker::restart`].
    pub listener: Listener,
    /// Accepted `(username, password)` pairs. Empty means anonymous
    /// access; otherwise every CONNECT must carry one of these pairs.
    pub users: Vec<(String, String)>,
    /// Largest packet the broker accepts from a client, in bytes; a larger
    /// one makes rumqttd drop the connection.
    pub max_payload_size: usize,
    /// How long the broker waits for CONNECT after the TCP accept.
    /// rumqttd stores it as `u16`, hence at most ~65 s.
    pub connection_timeout_ms: u16,
    /// In-flight QoS 1/2 messages per connection.
    pub max_inflight_count: usize,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            listener: Listener::V4,
            users: Vec::new(),
            max_payload_size: 16 * 1024 * 1024,
            connection_timeout_ms: 60_000,
            max_inflight_count: 100,
        }
    }
}

impl BrokerOptions {
    /// Requires authentication and accepts `username` / `password`.
    pub fn with_user(mut self, username: &str, password: &str) -> Self {
        self.users.push((username.to_owned(), password.to_owned()));
        self
    }

    /// Speaks MQTT 5 instead of 3.1.1.
    pub fn v5(self) -> Self {
        Self {
            listener: Listener::V5,
            ..self
        }
    }
}

/// Opens rumqttd local links (in-process clients that bypass the wire
/// protocol). Boxed because the router's channel type is not nameable
/// outside rumqttd.
type LinkFactory = Box<dyn Fn(&str) -> (LinkTx, LinkRx) + Send + Sync>;

/// A running broker on `127.0.0.1`. Dropping it stops it (see
/// [`Broker::stop`] for a stop that waits until the port is free).
pub struct Broker {
    addr: SocketAddr,
    options: BrokerOptions,
    /// Dropping or firing this makes the front task close the listener
    /// and every proxied connection.
    shutdown: Option<oneshot::Sender<()>>,
    front: Option<JoinHandle<()>>,
    server: Option<JoinHandle<()>>,
    link_factory: LinkFactory,
}

impl Broker {
    /// Starts an anonymous broker on a free port.
    pub async fn start() -> Broker {
        Self::start_with(BrokerOptions::default()).await
    }

    /// Starts an anonymous MQTT 5 broker on a free port.
    pub async fn start_v5() -> Broker {
        Self::start_with(BrokerOptions::default().v5()).await
    }

    /// Starts an anonymous broker on `port`, typically the port of a
    /// broker that was just stopped.
    pub async fn start_on(port: u16) -> Broker {
        Self::launch(port, BrokerOptions::default()).await
    }

    /// Starts a broker with `options` on a free port.
    pub async fn start_with(options: BrokerOptions) -> Broker {
        Self::launch(0, options).await
    }

    /// Starts a broker with `options` on `port` (0 picks a free one).
    pub async fn start_on_with(port: u16, options: BrokerOptions) -> Broker {
        Self::launch(port, options).await
    }

    async fn launch(port: u16, options: BrokerOptions) -> Broker {
        match tokio::time::timeout(START_TIMEOUT, Self::try_launch(port, options)).await {
            Ok(Ok(broker)) => broker,
            Ok(Err(e)) => panic!("test broker: cannot start on port {port}: {e}"),
            Err(_) => panic!("test broker: not ready on port {port} after {START_TIMEOUT:?}"),
        }
    }

    async fn try_launch(port: u16, options: BrokerOptions) -> io::Result<Broker> {
        let listener = bind_front(port).await?;
        let addr = listener.local_addr()?;

        let router_tx = Router::new(0, router_config()).spawn();
        let server_router_tx = router_tx.clone();
        let (server, upstream) = match options.listener {
            Listener::V4 => {
                spawn_server(&options, move |settings| {
                    Server::new(settings, server_router_tx.clone(), V4)
                })
                .await?
            }
            Listener::V5 => {
                spawn_server(&options, move |settings| {
                    Server::new(settings, server_router_tx.clone(), V5)
                })
                .await?
            }
        };

        let (shutdown, shutdown_rx) = oneshot::channel();
        let front = tokio::spawn(serve_front(listener, upstream, shutdown_rx));
        let link_factory: LinkFactory = Box::new(move |client_id: &str| {
            LinkBuilder::new(client_id, router_tx.clone())
                .dynamic_filters(true)
                .build()
                .map(|(tx, rx, _connack)| (tx, rx))
                .unwrap_or_else(|e| panic!("test broker: local link {client_id:?}: {e:?}"))
        });

        Ok(Broker {
            addr,
            options,
            shutdown: Some(shutdown),
            front: Some(front),
            server: Some(server),
            link_factory,
        })
    }

    /// The address clients connect to (always `127.0.0.1`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn options(&self) -> &BrokerOptions {
        &self.options
    }

    /// An in-process rumqttd client, independent of minimqtt's code, for
    /// tests that need a second party (e.g. a publisher whose messages the
    /// client under test must receive). Blocks briefly for the router's
    /// acknowledgement.
    pub fn local_link(&self, client_id: &str) -> (LinkTx, LinkRx) {
        (self.link_factory)(client_id)
    }

    /// Stops the broker and returns once every client connection is closed
    /// and the port can be bound again.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(front) = self.front.take() {
            let _ = front.await;
        }
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Stops this broker and starts a fresh one (empty state, same
    /// options) on the same port: a broker restart as a client sees it.
    pub async fn restart(self) -> Broker {
        let port = self.port();
        let options = self.options.clone();
        self.stop().await;
        Self::launch(port, options).await
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Dropping `shutdown` lets the front task close everything on its
        // next poll; it cannot be awaited here.
        self.shutdown.take();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Binds the public listener. A just-stopped broker on the same port may
/// still hold it for a moment if it was dropped rather than `stop()`ped.
async fn bind_front(port: u16) -> io::Result<TcpListener> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut attempts = 0;
    loop {
        match TcpListener::bind(addr).await {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && port != 0 && attempts < 100 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            result => return result,
        }
    }
}

fn router_config() -> RouterConfig {
    RouterConfig {
        // Kept low: the router preallocates per-connection slabs of this
        // size and, since its thread never exits, leaks them.
        max_connections: 256,
        max_outgoing_packet_count: 200,
        max_segment_size: 16 * 1024 * 1024,
        max_segment_count: 10,
        ..RouterConfig::default()
    }
}

/// Starts rumqttd's server (v4 or v5, as `new_server` makes it) on a
/// private port and waits until it accepts. rumqttd binds the port itself
/// and cannot report it, so the port is picked by binding port 0 and
/// releasing it; if another socket grabs it in between, the server task
/// fails and another port is tried.
///
/// `new_server` wraps `Server::new` because the router's sender type
/// (`flume::Sender<(ConnectionId, Event)>`, `Event` being private to
/// rumqttd) cannot be named in a signature.
async fn spawn_server<P: Protocol + Clone + Send + Sync + 'static>(
    options: &BrokerOptions,
    new_server: impl Fn(ServerSettings) -> Server<P>,
) -> io::Result<(JoinHandle<()>, SocketAddr)> {
    for _ in 0..5 {
        let addr = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?;
        let mut server = new_server(server_settings(addr, options));
        let task = tokio::spawn(async move {
            if let Err(e) = server.start(LinkType::Remote).await {
                eprintln!("test broker: rumqttd server on {addr} stopped: {e}");
            }
        });
        while !task.is_finished() {
            // A probe connection that closes at once is harmless: rumqttd
            // just drops a connection that never sent CONNECT.
            if TcpStream::connect(addr).await.is_ok() {
                // The probe may have reached another listener that took
                // the port first (a broker of a test running beside this
                // one); then rumqttd's bind failed, which ends its task
                // as soon as it runs, and another port is tried.
                tokio::time::sleep(Duration::from_millis(20)).await;
                if task.is_finished() {
                    break;
                }
                return Ok((task, addr));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    Err(io::Error::other("rumqttd could not bind a private port"))
}

fn server_settings(listen: SocketAddr, options: &BrokerOptions) -> ServerSettings {
    let auth = (!options.users.is_empty()).then(|| options.users.iter().cloned().collect());
    ServerSettings {
        name: format!("minimqtt-test-{listen}"),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: options.connection_timeout_ms,
            max_payload_size: options.max_payload_size,
            max_inflight_count: options.max_inflight_count,
            auth,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

/// Accepts clients on the public port and proxies each one to rumqttd
/// until shutdown, then closes the listener and every client socket
/// before returning.
async fn serve_front(
    listener: TcpListener,
    upstream: SocketAddr,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // Fired or dropped: either way the broker is going away.
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    connections.spawn(proxy(client, upstream));
                }
                // Transient (e.g. out of file descriptors); avoid a hot loop.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn proxy(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    // Small MQTT packets must not sit in Nagle's buffer: tests measure
    // timeouts and keep-alives in milliseconds.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // Half-closes are forwarded, so a broker-side close (e.g. refused
    // credentials) reaches the client as EOF.
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
