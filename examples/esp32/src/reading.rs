//! The demo's periodic reading: the time since boot.
//!
//! (esp-hal 1.2 has a temperature sensor driver for the C3 and C6, but only
//! behind its `unstable` feature, so the example reports its uptime instead.)

use core::fmt;

use embassy_time::{Duration, Instant};

/// How often the application takes (and later publishes) a reading.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Seconds since boot.
    pub uptime_s: u64,
}

impl Reading {
    /// Takes a reading now.
    pub fn take() -> Self {
        Self {
            uptime_s: Instant::now().as_secs(),
        }
    }
}

/// The payload form, e.g. `uptime=42`.
impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "uptime={}", self.uptime_s)
    }
}
