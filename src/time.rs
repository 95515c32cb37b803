//! Time for the session's deadlines: millisecond [`Instant`]s and
//! [`Duration`]s, and the [`Clock`] the async client reads them from.
//!
//! The session never reads a clock: every call that needs the time takes
//! `now` as an argument. Only the async [`Client`](crate::Client) owns a
//! [`Clock`], which is why tests can drive the whole protocol on a virtual
//! clock. Milliseconds in a `u64` keep the arithmetic cheap on 32-bit MCUs
//! (no `u128` as with `core::time::Duration::as_millis`).

use core::fmt;
use core::ops::{Add, Sub};

/// A point in time, in milliseconds since an arbitrary epoch (the clock's
/// start). Only differences between instants of the same clock mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant(u64);

impl Instant {
    /// The instant `millis` milliseconds after the clock's epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the clock's epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Saturates instead of overflowing: a deadline past the end of time
    /// is simply never reached.
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs.0))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_since(rhs)
    }
}

/// A span of time in milliseconds.
///
/// ```
/// use minimqtt::time::Duration;
/// assert_eq!(Duration::from_secs(60).as_millis(), 60_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Duration(u64);

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);

    /// `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// The length in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl Add for Duration {
    type Output = Duration;

    fn add(self, rhs: Duration) -> Duration {
        Duration(self.0.saturating_add(rhs.0))
    }
}

impl From<core::time::Duration> for Duration {
    /// Whole milliseconds, saturating past `u64::MAX` of them.
    ///
    /// ```
    /// use minimqtt::time::Duration;
    /// let d: Duration = core::time::Duration::from_micros(2_500).into();
    /// assert_eq!(d, Duration::from_millis(2));
    /// ```
    fn from(d: core::time::Duration) -> Self {
        Self(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

impl From<Duration> for core::time::Duration {
    fn from(d: Duration) -> Self {
        core::time::Duration::from_millis(d.0)
    }
}

#[cfg(feature = "embassy-time")]
impl From<embassy_time::Duration> for Duration {
    /// Whole milliseconds.
    fn from(d: embassy_time::Duration) -> Self {
        Self(d.as_millis())
    }
}

#[cfg(feature = "embassy-time")]
impl From<Duration> for embassy_time::Duration {
    fn from(d: Duration) -> Self {
        embassy_time::Duration::from_millis(d.0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

/// Where the async client gets the time and how it waits.
///
/// Implementations: `TokioClock` (feature `tokio`), `EmbassyClock`
/// (feature `embassy-time`), or your own (a virtual clock in tests, a
/// hardware timer). `now` must never go backwards.
///
/// ```
/// use minimqtt::time::{Clock, Instant};
///
/// /// A clock that never advances: a test double.
/// struct Frozen;
///
/// impl Clock for Frozen {
///     fn now(&self) -> Instant {
///         Instant::from_millis(0)
///     }
///     async fn sleep_until(&self, _deadline: Instant) {
///         core::future::pending::<()>().await
///     }
/// }
/// ```
// The client is generic over the clock, so callers pick the Send-ness of
// the future through their clock type; `async fn` keeps implementations short.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// The current time.
    fn now(&self) -> Instant;

    /// Completes once `now() >= deadline`. Must be cancel-safe: the client
    /// drops this future whenever bytes arrive first.
    async fn sleep_until(&self, deadline: Instant);
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }

    async fn sleep_until(&self, deadline: Instant) {
        (**self).sleep_until(deadline).await
    }
}

/// A [`Clock`] on `embassy-time` (feature `embassy-time`), for firmware.
#[cfg(feature = "embassy-time")]
#[cfg_attr(docsrs, doc(cfg(feature = "embassy-time")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbassyClock;

#[cfg(feature = "embassy-time")]
impl Clock for EmbassyClock {
    fn now(&self) -> Instant {
        Instant(embassy_time::Instant::now().as_millis())
    }

    async fn sleep_until(&self, deadline: Instant) {
        embassy_time::Timer::at(embassy_deadline(deadline)).await
    }
}

/// `deadline` on embassy-time's clock. One too far for its tick counter
/// (`run_for` with a huge timeout saturates to `u64::MAX` ms) is never:
/// `from_millis` would overflow, and a wrapped deadline would be past.
#[cfg(feature = "embassy-time")]
fn embassy_deadline(deadline: Instant) -> embassy_time::Instant {
    embassy_time::Instant::try_from_millis(deadline.0).unwrap_or(embassy_time::Instant::MAX)
}

/// A [`Clock`] on tokio's timer (feature `tokio`), for programs on an
/// operating system. Its epoch is the moment it was created.
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: tokio::time::Instant,
}

#[cfg(feature = "tokio")]
impl TokioClock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
        }
    }
}

#[cfg(feature = "tokio")]
impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "tokio")]
impl Clock for TokioClock {
    fn now(&self) -> Instant {
        let elapsed = self.start.elapsed();
        Instant(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
    }

    async fn sleep_until(&self, deadline: Instant) {
        let at = self.start + core::time::Duration::from_millis(deadline.0);
        tokio::time::sleep_until(at).await
    }
}

#[cfg(all(test, any(feature = "tokio", feature = "embassy-time")))]
mod tests {
    use super::*;

    /// `run_for` with a huge timeout saturates its deadline to `u64::MAX`
    /// ms: 584 million years after the epoch, which `std`'s `Instant`
    /// holds.
    #[cfg(feature = "tokio")]
    #[tokio::test(start_paused = true)]
    async fn a_deadline_at_the_end_of_time_sleeps_without_panicking() {
        let clock = TokioClock::new();
        let never = tokio::time::timeout(
            core::time::Duration::from_secs(3600),
            clock.sleep_until(Instant(u64::MAX)),
        );
        assert!(never.await.is_err());
        let soon = clock.now() + Duration::from_millis(5);
        clock.sleep_until(soon).await;
        assert!(clock.now() >= soon);
    }

    #[cfg(feature = "embassy-time")]
    #[test]
    fn an_embassy_deadline_past_the_tick_counter_is_never() {
        assert_eq!(
            embassy_deadline(Instant(u64::MAX)),
            embassy_time::Instant::MAX
        );
        assert_eq!(
            embassy_deadline(Instant(5)),
            embassy_time::Instant::from_millis(5)
        );
    }
}
