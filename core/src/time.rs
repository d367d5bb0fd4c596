//! Time as a value the core is handed, never one it reads.
//!
//! The core does not call a clock. Every [`crate::Input`] carries `now`, an [`Instant`] on the
//! driver's clock, measured in nanoseconds since the Unix epoch. The production driver (`net`)
//! derives it from the system clock once at start plus a monotonic clock; the simulator owns a
//! virtual clock per broker that may drift and jump. The broker clamps `now` so that its own
//! notion of time never goes backwards (a clock that jumps back simply stands still for a while).

use std::fmt;
use std::ops::{Add, Sub};

/// A point in time: nanoseconds since the Unix epoch on the driver's clock.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

/// A span of time in nanoseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug)]
pub struct Duration(pub u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub fn from_unix_ms(ms: i64) -> Instant {
        Instant((ms.max(0) as u64).saturating_mul(1_000_000))
    }
    /// Milliseconds since the Unix epoch, Kafka's unit for timestamps.
    pub fn unix_ms(self) -> i64 {
        (self.0 / 1_000_000) as i64
    }
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Duration {
    pub const ZERO: Duration = Duration(0);
    pub const fn from_ms(ms: u64) -> Duration {
        Duration(ms * 1_000_000)
    }
    pub const fn from_secs(s: u64) -> Duration {
        Duration(s * 1_000_000_000)
    }
    pub const fn from_micros(us: u64) -> Duration {
        Duration(us * 1_000)
    }
    pub fn as_ms(self) -> u64 {
        self.0 / 1_000_000
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, other: Instant) -> Duration {
        self.saturating_since(other)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}
