//! Connection settings and buffers.

use crate::codec::LastWill;
#[cfg(feature = "v5")]
use crate::codec::v5::Properties;
use crate::reconnect::Backoff;
use crate::session::{Options, Timeouts, Version};

/// What the client says in CONNECT, and how long it waits for answers.
///
/// ```
/// use minimqtt::Config;
///
/// let config = Config {
///     username: Some("device"),
///     password: Some(b"secret"),
///     keep_alive_secs: 30,
///     ..Config::new("sensor-0001")
/// };
/// assert!(config.clean_session);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config<'a> {
    /// The client identifier. When empty and [`seed`](Self::seed) is set,
    /// the client generates one of 23 characters (`minimqtt` and 15 hex
    /// digits, only characters every broker must accept, MQTT-3.1.3-5).
    /// When empty without a seed, the broker assigns one, which MQTT 3.1.1
    /// allows only with clean session on: with it off, `connect` returns
    /// [`UsageError::EmptyClientId`](crate::UsageError::EmptyClientId).
    /// MQTT 5 allows it either way, and its CONNACK tells the id assigned
    /// (up to 64 bytes are kept): the next connections send it, so a kept
    /// session is found again.
    pub client_id: &'a str,
    /// The client's one random input (set it with
    /// [`with_rng`](Self::with_rng)): it generates the client id when
    /// `client_id` is empty, and seeds the jitter of the reconnect
    /// [`backoff`](Self::backoff). Without it, the jitter is seeded from
    /// the client id and the clock's reading at each failure: devices
    /// with different ids, or whose clocks started apart, still spread
    /// out.
    pub seed: Option<u64>,
    /// Keep-alive in seconds (default 60). A PINGREQ goes out a little
    /// before this long has passed since the last packet sent (a tenth of
    /// it early, at least half a second), so the broker never sees a gap
    /// longer than the keep-alive, as long as the client runs
    /// ([`run`](crate::Client::run), `run_for`, `poll` or another call)
    /// at that time: the client has no task of its own. 0 turns pings
    /// off.
    pub keep_alive_secs: u16,
    /// Clean session (default on): the broker discards any earlier session.
    /// Off: the broker keeps subscriptions and queues QoS 1/2 messages while
    /// the client is away, and the client resends unacknowledged messages
    /// after reconnecting.
    pub clean_session: bool,
    /// User name, if the broker wants one.
    pub username: Option<&'a str>,
    /// Password; MQTT 3.1.1 allows it only with a user name.
    pub password: Option<&'a [u8]>,
    /// The message the broker publishes if the connection ends without
    /// DISCONNECT.
    pub will: Option<LastWill<'a>>,
    /// How long to wait for each acknowledgement.
    pub timeouts: Timeouts,
    /// Re-subscribing after a reconnect, and what happens to QoS 2
    /// messages when the broker lost the session. (`stream` is always on
    /// in a client: each route says whether it takes streams.)
    pub options: Options,
    /// How [`run`](crate::Client::run) and
    /// [`run_for`](crate::Client::run_for) space their connection attempts
    /// (default: delays between half and all of 1 s, 2 s, 4 s, ... up to
    /// 2 minutes, forever).
    pub backoff: Backoff,
    /// The MQTT version to speak ([`Version::DEFAULT`]: 3.1.1, or MQTT 5
    /// in a build without the `v3` feature). [`Version::V5`] needs
    /// the `v5` feature; the callbacks stay the same, and see more
    /// (reason codes, properties).
    pub version: Version,
    /// MQTT 5: the Session Expiry Interval in seconds. `None` (the
    /// default) follows `clean_session`: 0 (the session ends with the
    /// connection) when on, `u32::MAX` (it never expires) when off, which
    /// is what MQTT 3.1.1's clean session means. With 0 the session ends
    /// with its connection, clean session or not: the next connection
    /// starts without it (its QoS 1/2 messages are reported discarded),
    /// and a CONNACK that says the broker kept one closes that connection
    /// (MQTT-3.2.2-4). A Session Expiry Interval in the CONNACK replaces
    /// this one.
    #[cfg(feature = "v5")]
    pub session_expiry_secs: Option<u32>,
    /// MQTT 5: more CONNECT properties (User Properties, Request Response
    /// Information, Maximum Packet Size, a Topic Alias Maximum for the
    /// broker's aliases, an Authentication Method, ...), at most 8. The
    /// client adds Session Expiry Interval and Receive Maximum
    /// (`INFLIGHT`) unless these name them, and caps a Receive Maximum at
    /// `INFLIGHT` and a Topic Alias Maximum at `SUBS`.
    #[cfg(feature = "v5")]
    pub properties: Properties<'a>,
    /// MQTT 5: the will's properties (Will Delay Interval, Message Expiry
    /// Interval, Content Type, User Properties, ...).
    #[cfg(feature = "v5")]
    pub will_properties: Properties<'a>,
}

impl<'a> Config<'a> {
    /// Defaults with this client id: [`Version::DEFAULT`] (3.1.1 when the
    /// build has it), keep-alive 60 s, clean
    /// session, no credentials, no will, 10 s timeouts, re-subscribe on,
    /// reconnect with [`Backoff::DEFAULT`].
    pub const fn new(client_id: &'a str) -> Self {
        Self {
            client_id,
            seed: None,
            keep_alive_secs: 60,
            clean_session: true,
            username: None,
            password: None,
            will: None,
            timeouts: Timeouts::DEFAULT,
            options: Options::DEFAULT,
            backoff: Backoff::DEFAULT,
            version: Version::DEFAULT,
            #[cfg(feature = "v5")]
            session_expiry_secs: None,
            #[cfg(feature = "v5")]
            properties: Properties::EMPTY,
            #[cfg(feature = "v5")]
            will_properties: Properties::EMPTY,
        }
    }
}

impl Config<'_> {
    /// The same settings with [`seed`](Self::seed) drawn from `rng`: one
    /// `u64`, for the generated client id and the reconnect jitter alike.
    ///
    /// ```
    /// use minimqtt::Config;
    /// # struct ChipRng(u64);
    /// # impl rand_core::RngCore for ChipRng {
    /// #     fn next_u32(&mut self) -> u32 { self.next_u64() as u32 }
    /// #     fn next_u64(&mut self) -> u64 { self.0 += 1; self.0 }
    /// #     fn fill_bytes(&mut self, dst: &mut [u8]) { rand_core::impls::fill_bytes_via_next(self, dst) }
    /// # }
    /// # let mut rng = ChipRng(41);
    /// // `rng`: any `rand_core::RngCore` (0.9), such as the chip's RNG.
    /// let config = Config::new("").with_rng(&mut rng);
    /// assert_eq!(config.seed, Some(42));
    /// ```
    #[must_use]
    pub fn with_rng(self, rng: &mut impl rand_core::RngCore) -> Self {
        Self {
            seed: Some(rng.next_u64()),
            ..self
        }
    }
}

impl Default for Config<'_> {
    fn default() -> Self {
        Self::new("")
    }
}

/// A client id generated from `seed`: `minimqtt` and 15 hex digits, 23
/// characters in all, the longest every broker must accept.
///
/// ```
/// let id = minimqtt::generate_client_id(42);
/// assert_eq!(id.len(), 23);
/// assert!(id.starts_with("minimqtt"));
/// assert_ne!(id, minimqtt::generate_client_id(43));
/// ```
pub fn generate_client_id(seed: u64) -> heapless::String<23> {
    // splitmix64: neighbouring seeds (a counter, a timestamp) give
    // unrelated ids.
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let mut id = heapless::String::new();
    let _ = id.push_str("minimqtt");
    for i in (0..15).rev() {
        let nibble = ((z >> (i * 4)) & 0xf) as u8;
        let c = if nibble < 10 {
            b'0' + nibble
        } else {
            b'a' + nibble - 10
        };
        let _ = id.push(char::from(c));
    }
    id
}

/// The three buffers a [`Client`](crate::Client) works in, as arrays, so
/// one `static` (or one stack value) holds them all.
///
/// - `RX`: receive buffer; the largest incoming packet that can be
///   delivered (bigger ones are skipped, acknowledged, and reported to
///   `on_message_dropped`).
/// - `ARENA`: the session's arena, shared by the transmit queue and the
///   session store. The store keeps in-flight QoS 1/2 messages (once: they
///   are written to the transport from here), pending (un)subscribe
///   requests, the subscribed filters and MQTT 5's topic aliases; the
///   transmit queue, the other packets on their way out (the CONNECT, QoS
///   0 messages, SUBSCRIBE, acknowledgements). The store always leaves the
///   queue room for an acknowledgement, a PINGREQ, the last CONNECT and
///   the longest streamed QoS 1/2 head (resent through the queue), so
///   a full store slows new requests and never the protocol. Size it for
///   the largest outgoing packet plus the in-flight window.
/// - `OUTBOX`: requests queued by callbacks (8 bytes + topic + payload each).
///
/// ```
/// use minimqtt::Buffers;
/// let mut buffers = Buffers::<1024, 3072, 256>::new();
/// let slices = buffers.slices();
/// assert_eq!(slices.rx.len(), 1024);
/// assert_eq!(slices.arena.len(), 3072);
/// ```
#[derive(Debug)]
pub struct Buffers<const RX: usize, const ARENA: usize, const OUTBOX: usize> {
    rx: [u8; RX],
    arena: [u8; ARENA],
    outbox: [u8; OUTBOX],
}

impl<const RX: usize, const ARENA: usize, const OUTBOX: usize> Buffers<RX, ARENA, OUTBOX> {
    /// Zeroed buffers; `const`, so they can live in a `static`.
    pub const fn new() -> Self {
        Self {
            rx: [0; RX],
            arena: [0; ARENA],
            outbox: [0; OUTBOX],
        }
    }

    /// Borrows the three buffers for a client.
    pub fn slices(&mut self) -> BufferSlices<'_> {
        BufferSlices {
            rx: &mut self.rx,
            arena: &mut self.arena,
            outbox: &mut self.outbox,
        }
    }
}

impl<const RX: usize, const ARENA: usize, const OUTBOX: usize> Default
    for Buffers<RX, ARENA, OUTBOX>
{
    fn default() -> Self {
        Self::new()
    }
}

/// The client's buffers as slices; see [`Buffers`] for what each one holds.
#[derive(Debug)]
pub struct BufferSlices<'b> {
    /// Receive buffer.
    pub rx: &'b mut [u8],
    /// The session's arena: transmit queue and session store.
    pub arena: &'b mut [u8],
    /// Callback outbox.
    pub outbox: &'b mut [u8],
}
