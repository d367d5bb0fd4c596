//! Time as a value the core is handed, never one it reads.
//!
//! The core does not call a clock. Every [`crate::Input`] carries `now`, an [`Instant`] on the
//! driver's clock, measured in nanoseconds since the Unix epoch. The production driver (`net`)
//! derives it from the system clock once at start plus a monotonic clock; the simulator owns a
//! virtual clock per broker that may drift and jump. The broker clamps `now` so that its own
//! notion of time never goes backwards (a clock that jumps back simply stands still for a while).

use std::collections::{BTreeMap, BTreeSet};
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

/// Deadlines by key, in the shape of quinn's `timer.rs`: each key has at most one deadline, and
/// the earliest is a lookup, not a scan (a `BTreeSet` ordered by deadline, plus the deadline of
/// each key so a key can be moved or removed without searching).
#[derive(Debug, Clone)]
pub struct TimerTable<K: Ord + Clone> {
    by_deadline: BTreeSet<(Instant, K)>,
    of_key: BTreeMap<K, Instant>,
}

impl<K: Ord + Clone> Default for TimerTable<K> {
    fn default() -> Self {
        TimerTable {
            by_deadline: BTreeSet::new(),
            of_key: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone> TimerTable<K> {
    /// Set `key`'s deadline, replacing any earlier one.
    pub fn set(&mut self, key: K, deadline: Instant) {
        if let Some(old) = self.of_key.insert(key.clone(), deadline) {
            assert!(self.by_deadline.remove(&(old, key.clone())));
        }
        assert!(self.by_deadline.insert((deadline, key)));
    }
    /// Remove `key`'s deadline, if it has one.
    pub fn stop(&mut self, key: &K) {
        if let Some(old) = self.of_key.remove(key) {
            assert!(self.by_deadline.remove(&(old, key.clone())));
        }
    }
    pub fn get(&self, key: &K) -> Option<Instant> {
        self.of_key.get(key).copied()
    }
    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(t, _)| *t)
    }
    /// The keys whose deadline is at or before `now`, earliest first (they stay set).
    pub fn expired(&self, now: Instant) -> impl Iterator<Item = &K> + '_ {
        self.by_deadline
            .iter()
            .take_while(move |(t, _)| *t <= now)
            .map(|(_, k)| k)
    }
    pub fn len(&self) -> usize {
        self.of_key.len()
    }
    pub fn is_empty(&self) -> bool {
        self.of_key.is_empty()
    }
    /// Each key has exactly one entry in each index.
    pub fn invariants(&self) {
        assert_eq!(self.by_deadline.len(), self.of_key.len());
        for (t, k) in &self.by_deadline {
            assert_eq!(
                self.of_key.get(k),
                Some(t),
                "a key's deadline in both indexes"
            );
        }
    }
}
