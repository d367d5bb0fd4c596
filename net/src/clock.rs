//! Maps the machine's clocks onto the core's [`gregor_core::Instant`].
//!
//! The core wants one number: nanoseconds since the Unix epoch, never going backwards. We read
//! the wall clock once at start and add a monotonic clock's elapsed time to it, so a wall-clock
//! step (NTP, a suspended VM) never makes the broker's time jump.

use gregor_core::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start_unix_ns: u64,
    start: tokio::time::Instant,
}

impl Clock {
    pub fn new() -> Clock {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Clock {
            start_unix_ns: unix,
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Instant {
        Instant(self.start_unix_ns + self.start.elapsed().as_nanos() as u64)
    }

    /// The tokio instant at which the core's `at` is reached.
    pub fn to_tokio(self, at: Instant) -> tokio::time::Instant {
        let offset = at.0.saturating_sub(self.start_unix_ns);
        self.start + std::time::Duration::from_nanos(offset)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
