//! Time windows for aggregations, as Kafka Streams' `TimeWindows` (KIP-328 for the grace
//! period).
//!
//! A *tumbling* window of size S covers `[k·S, (k+1)·S)`: each record is in exactly one. A
//! *hopping* window of size S advancing by A (A < S) starts every A ms, so a record is in
//! S/A of them. Windows are aligned to the epoch, start at or after 0, and are closed by
//! *stream time* — the largest record timestamp a task has seen — not by a clock: a window
//! `[s, e)` accepts records until stream time reaches `e + grace`; a record that arrives later
//! (out of order by more than the grace period) is dropped, as Kafka drops it, and counted.

/// Window sizes in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    pub size_ms: i64,
    pub advance_ms: i64,
    pub grace_ms: i64,
}

impl Windows {
    /// Tumbling windows of `size_ms`, with no grace period (`ofSizeWithNoGrace`).
    pub fn tumbling(size_ms: i64) -> Windows {
        assert!(size_ms > 0, "a window has a positive size");
        Windows {
            size_ms,
            advance_ms: size_ms,
            grace_ms: 0,
        }
    }

    /// Hopping windows of `size_ms` starting every `advance_ms` (`advanceBy`).
    pub fn hopping(size_ms: i64, advance_ms: i64) -> Windows {
        assert!(
            advance_ms > 0 && advance_ms <= size_ms,
            "a hopping window advances by 1..=size ms"
        );
        Windows {
            size_ms,
            advance_ms,
            grace_ms: 0,
        }
    }

    /// Accept records up to `grace_ms` after a window's end (`ofSizeAndGrace`).
    pub fn grace(mut self, grace_ms: i64) -> Windows {
        assert!(grace_ms >= 0, "a grace period is not negative");
        self.grace_ms = grace_ms;
        self
    }

    /// The starts of the windows that contain `ts`, oldest first.
    pub fn starts_for(&self, ts: i64) -> Vec<i64> {
        let ts = ts.max(0);
        let last = ts - ts.rem_euclid(self.advance_ms);
        let mut starts = Vec::new();
        let mut s = last;
        while s >= 0 && s + self.size_ms > ts {
            starts.push(s);
            s -= self.advance_ms;
        }
        starts.reverse();
        assert!(
            starts.len() as i64 <= self.size_ms / self.advance_ms + 1,
            "a record is in at most size/advance windows"
        );
        starts
    }

    /// Whether the window starting at `start` is closed at stream time `stream_time`.
    pub fn closed(&self, start: i64, stream_time: i64) -> bool {
        start + self.size_ms + self.grace_ms <= stream_time
    }
}
