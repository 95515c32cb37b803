//! Connecting and reconnecting: the [`Connector`] the client opens every
//! transport through, and the exponential backoff with jitter that spaces
//! its attempts.
//!
//! [`Client::run`](crate::Client::run) and
//! [`Client::run_for`](crate::Client::run_for) retry after network errors
//! and after refusals that may pass (server unavailable); they stop at
//! once on a permanent refusal (bad user name or password, not authorised,
//! unacceptable protocol version, identifier rejected), since retrying the
//! same CONNECT cannot help.

use embedded_io_async::{Read, Write};

use crate::time::Duration;

/// Opens a new transport to the broker, for each connection attempt. The
/// client drops the previous transport before it asks for a new one, so a
/// connector over a pool with room for one socket (embassy-net's
/// `TcpClient<'_, 1, ..>`) never finds its slot taken.
///
/// ```
/// use minimqtt::reconnect::Connector;
///
/// /// Firmware would open a TCP socket here; this one hands out pipes.
/// struct Pipes;
///
/// impl Connector for Pipes {
///     type Transport = embedded_io_async_pipe::Pipe;
///     type Error = ();
///     async fn connect(&mut self) -> Result<Self::Transport, ()> {
///         Err(())
///     }
/// }
/// # mod embedded_io_async_pipe {
/// #     pub struct Pipe;
/// #     impl embedded_io_async::ErrorType for Pipe { type Error = core::convert::Infallible; }
/// #     impl embedded_io_async::Read for Pipe {
/// #         async fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> { Ok(0) }
/// #     }
/// #     impl embedded_io_async::Write for Pipe {
/// #         async fn write(&mut self, b: &[u8]) -> Result<usize, Self::Error> { Ok(b.len()) }
/// #         async fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) }
/// #     }
/// # }
/// ```
// Generic callers choose their own Send bounds; see `Clock`.
#[allow(async_fn_in_trait)]
pub trait Connector {
    /// The stream it opens.
    type Transport: Read + Write;
    /// Why opening failed (DNS, TCP, TLS handshake, ...).
    type Error: core::fmt::Debug;

    /// Opens a new connection to the broker.
    async fn connect(&mut self) -> Result<Self::Transport, Self::Error>;
}

/// Exponential backoff: the n-th retry waits about `initial * 2^n`, capped
/// at `max`, with "equal jitter": half of the delay is fixed and half is
/// random, so a fleet of devices that lost the broker together does not
/// come back in lockstep, yet no device retries immediately.
///
/// ```
/// use minimqtt::reconnect::Backoff;
/// use minimqtt::time::Duration;
///
/// let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
/// let first = backoff.next_delay(0);
/// assert_eq!(first, Duration::from_millis(500)); // half fixed, random part 0
/// let second = backoff.next_delay(u32::MAX);
/// assert!(second <= Duration::from_secs(2) && second >= Duration::from_secs(1));
/// for _ in 0..20 {
///     assert!(backoff.next_delay(u32::MAX) <= Duration::from_secs(60));
/// }
/// backoff.reset();
/// assert_eq!(backoff.attempts(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    /// Give up after this many failed attempts in a row (`None`: never).
    /// A connection lost within `stable_after` of its CONNACK counts as a
    /// failed attempt.
    pub max_attempts: Option<u32>,
    /// How long a connection must last for its loss to reset the backoff
    /// to `initial` (30 s by default). One lost sooner counts as one more
    /// failed attempt: a broker that closes every connection right after
    /// its CONNACK, or two devices that share a client id and take the
    /// session from each other, then see the delays grow as failing
    /// connects do, instead of a reconnect every second.
    pub stable_after: Duration,
}

impl Backoff {
    /// Starts at `initial`, doubles per failure, never exceeds `max`;
    /// retries forever.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
            max_attempts: None,
            stable_after: Duration::from_secs(30),
        }
    }

    /// The delay before the next attempt, counting one more failure.
    /// `random` is any random value (from the chip's RNG, say); it picks
    /// where the delay falls in its upper half.
    pub fn next_delay(&mut self, random: u32) -> Duration {
        let shift = self.attempt.min(32);
        self.attempt = self.attempt.saturating_add(1);
        let base = self
            .initial
            .as_millis()
            .saturating_mul(1u64 << shift)
            .min(self.max.as_millis());
        let half = base / 2;
        let jitter = if half == 0 {
            0
        } else {
            u64::from(random) % (base - half + 1)
        };
        Duration::from_millis(half + jitter)
    }

    /// Failed attempts since the last connection that lasted
    /// `stable_after`.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Whether `max_attempts` failures have happened.
    pub fn exhausted(&self) -> bool {
        self.max_attempts.is_some_and(|max| self.attempt >= max)
    }

    /// Back to the initial delay, after a connection that lasted.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Backoff {
    /// 1 s doubling up to 2 minutes, forever; `const`, so a `Config` can
    /// be built in a `const`.
    pub const DEFAULT: Self = Self::new(Duration::from_secs(1), Duration::from_secs(120));
}

impl Default for Backoff {
    /// [`Backoff::DEFAULT`].
    fn default() -> Self {
        Self::DEFAULT
    }
}
