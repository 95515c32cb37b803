//! Logging through `defmt` or `log`, whichever feature is on; nothing
//! otherwise. Arguments must be `Display` for `log` and `Format` for
//! `defmt`, so the call sites stick to integers and strings.
//!
//! Both features may be on at once: two crates in one firmware can each
//! turn on a different one, and refusing that combination would make the
//! firmware unbuildable through no fault of its author. Then `defmt` wins,
//! because a target that links `defmt` has already chosen where its log
//! goes, while `log` without a logger installed is silent anyway.
#![allow(unused_macros)]

macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::debug!($($arg)*);
        #[cfg(all(feature = "log", not(feature = "defmt")))]
        ::log::debug!($($arg)*);
    }};
}

macro_rules! warning {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::warn!($($arg)*);
        #[cfg(all(feature = "log", not(feature = "defmt")))]
        ::log::warn!($($arg)*);
    }};
}

pub(crate) use {debug, warning};
