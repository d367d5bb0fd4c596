//! Kafka's replication decisions, as pure functions over plain values (issue 10).
//!
//! A partition has one leader and followers (its other replicas). Followers *pull*: each sends
//! the leader Fetch requests naming itself as `replica_id`, with its log end as the fetch
//! offset, and appends what comes back unchanged (Kafka's `ReplicaFetcherThread`). The leader
//! learns from each such fetch how far that follower has got, and from that decides three
//! things, each a function here so it can be tested without a broker:
//!
//! * **How far a follower is** ([`ReplicaProgress`], Kafka's `Replica` state): its log end (the
//!   fetch offset it last sent) and when it was last *caught up*, by Kafka's `lastCaughtUpTime`
//!   rule.
//! * **The high watermark** ([`leader_high_watermark`], `Partition.maybeIncrementLeaderHW`): the
//!   offset below which every member of the *maximal ISR* (KIP-497: the committed ISR plus a
//!   pending expansion's new member; a pending shrink still counts the larger, old ISR) holds
//!   the records. Consumers read below it and acks=all waits for it. It only moves forward, and
//!   it stands still while the ISR is smaller than `min.insync.replicas` (KIP-966 era Kafka), so
//!   a record acknowledged with acks=all is always on at least that many replicas.
//! * **The ISR change to ask the controller for** ([`isr_change`], `Partition.maybeShrinkIsr` /
//!   `maybeExpandIsr`): shrink out followers not caught up for `replica.lag.time.max.ms`, take
//!   in followers that reached the high watermark and the start of the current leader epoch.
//!
//! The follower's one decision is where to cut its log when the leader says it diverged
//! ([`truncation_offset`], KIP-320's use of the leader-epoch cache).

use crate::time::{Duration, Instant};

/// A follower's log end not yet reported in this leadership (Kafka's `UnifiedLog.UnknownOffset`).
pub const UNKNOWN_END: i64 = -1;

/// What the leader knows of one follower (Kafka's `Replica`), reset at each new leadership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaProgress {
    /// The follower's log end: the fetch offset of its latest fetch. Everything below it is
    /// on the follower (durable, under group commit: it fetches only once it synced).
    pub log_end: i64,
    /// When the follower last fetched (`None`: not in this leadership).
    pub last_fetch_time: Option<Instant>,
    /// The leader's log end when the follower last fetched.
    pub last_fetch_leader_end: i64,
    /// When the follower last had everything the leader had (`lastCaughtUpTime`).
    pub last_caught_up: Instant,
}

impl ReplicaProgress {
    /// A follower at the start of a leadership: its end unknown; caught up "now" if it is in
    /// the ISR (it gets the full lag time to show up before it is shrunk out), else never.
    pub fn new(now: Instant, in_isr: bool) -> ReplicaProgress {
        ReplicaProgress {
            log_end: UNKNOWN_END,
            last_fetch_time: None,
            last_fetch_leader_end: UNKNOWN_END,
            last_caught_up: if in_isr {
                now
            } else {
                Instant::from_unix_ms(0)
            },
        }
    }

    /// A fetch from the follower at `fetch_offset`, when the leader's log ends at `leader_end`.
    /// Kafka's rule: caught up now if it asks from the leader's end; else caught up as of its
    /// previous fetch if it now has what the leader had then.
    pub fn on_fetch(&mut self, fetch_offset: i64, leader_end: i64, now: Instant) {
        assert!(fetch_offset >= 0, "a follower fetches from an offset");
        assert!(
            fetch_offset <= leader_end,
            "a fetch past the leader's end is refused before it is counted"
        );
        let before = self.last_caught_up;
        if fetch_offset >= leader_end {
            self.last_caught_up = self.last_caught_up.max(now);
        } else if let Some(previous) = self.last_fetch_time {
            if fetch_offset >= self.last_fetch_leader_end {
                self.last_caught_up = self.last_caught_up.max(previous);
            }
        }
        self.log_end = fetch_offset;
        self.last_fetch_time = Some(now);
        self.last_fetch_leader_end = leader_end;
        assert!(self.last_caught_up >= before, "caught-up time only grows");
    }

    /// Whether the follower fell out of step: not caught up for longer than `lag_max`.
    pub fn lagging(&self, now: Instant, lag_max: Duration) -> bool {
        now.saturating_since(self.last_caught_up) > lag_max
    }
}

/// The leader's high watermark after a step: `current` moved up to the lowest end over the
/// leader's own acknowledged end (`own_end`) and the ends of the other members of the maximal
/// ISR (`isr_ends`; an unknown end holds it back), unless the committed ISR (`isr_size`) is
/// below `min_isr`. Never moves back.
pub fn leader_high_watermark(
    current: i64,
    own_end: i64,
    isr_ends: impl IntoIterator<Item = i64>,
    isr_size: usize,
    min_isr: usize,
) -> i64 {
    assert!(isr_size >= 1, "the leader is in its ISR");
    if isr_size < min_isr {
        return current;
    }
    let lowest = isr_ends.into_iter().fold(own_end, i64::min);
    let hw = current.max(lowest);
    assert!(hw >= current, "the high watermark never moves back");
    assert!(hw == current || hw <= own_end);
    hw
}

/// The ISR to propose, or `None` to keep the committed one. `isr` is the committed ISR
/// (leader included), `followers` each other replica with its progress and whether its broker
/// may join an ISR (registered and unfenced, KIP-841). A member is shrunk out when lagging;
/// a non-member is taken in when its end reached both the high watermark and the start of the
/// leader's epoch (so it holds every record this leader's epoch has acknowledged).
pub fn isr_change<B: Copy + Ord>(
    leader: B,
    isr: &[B],
    followers: &[(B, ReplicaProgress, bool)],
    high_watermark: i64,
    epoch_start: i64,
    now: Instant,
    lag_max: Duration,
) -> Option<Vec<B>> {
    assert!(isr.contains(&leader), "the leader is in its ISR");
    let mut next: Vec<B> = isr
        .iter()
        .copied()
        .filter(|b| {
            *b == leader
                || followers
                    .iter()
                    .find(|(f, _, _)| f == b)
                    .is_none_or(|(_, p, _)| !p.lagging(now, lag_max))
        })
        .collect();
    for (b, p, eligible) in followers {
        let caught_up = p.log_end >= high_watermark && p.log_end >= epoch_start;
        if !isr.contains(b) && *eligible && caught_up && !p.lagging(now, lag_max) {
            next.push(*b);
        }
    }
    next.sort();
    let mut old = isr.to_vec();
    old.sort();
    assert!(
        next.contains(&leader),
        "the leader never shrinks itself out"
    );
    (next != old).then_some(next)
}

/// Where a follower cuts its log when the leader answers `DivergingEpoch(epoch, leader_end)`:
/// this log's own end for the same epoch (`local`, from its epoch cache: the epoch found and
/// where it ends) and the leader's, whichever is lower. Returns the offset and whether the
/// logs are known to agree below it (the epoch found locally is the leader's); if not, the
/// follower fetches again from the cut, and the leader checks once more (KIP-320, Kafka's
/// `AbstractFetcherThread.getOffsetTruncationState`).
pub fn truncation_offset(
    epoch: i32,
    leader_end: i64,
    local: Option<(i32, i64)>,
    log_start: i64,
) -> (i64, bool) {
    assert!(epoch >= 0 && leader_end >= 0, "a diverging epoch is named");
    let (offset, agreed) = match local {
        Some((e, end)) => (end.min(leader_end), e == epoch),
        // This log holds no epoch at or below the leader's: nothing of it is known to agree.
        None => (log_start, false),
    };
    let offset = offset.max(log_start);
    assert!(offset >= log_start);
    (offset, agreed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Instant {
        Instant::from_unix_ms(ms)
    }

    #[test]
    fn caught_up_time_follows_kafkas_rule() {
        let mut p = ReplicaProgress::new(at(1_000), true);
        assert_eq!((p.log_end, p.last_caught_up), (UNKNOWN_END, at(1_000)));
        // Behind the leader's end, first fetch: no earlier fetch to be caught up as of.
        p.on_fetch(5, 10, at(2_000));
        assert_eq!(p.last_caught_up, at(1_000));
        // Now at what the leader had at the previous fetch: caught up as of that fetch.
        p.on_fetch(10, 20, at(3_000));
        assert_eq!(p.last_caught_up, at(2_000));
        // At the leader's end: caught up now.
        p.on_fetch(20, 20, at(4_000));
        assert_eq!(p.last_caught_up, at(4_000));
        assert!(!p.lagging(at(34_000), Duration::from_ms(30_000)));
        assert!(p.lagging(at(34_001), Duration::from_ms(30_000)));
        assert!(ReplicaProgress::new(at(5), false).lagging(at(40_000), Duration::from_ms(30_000)));
    }

    #[test]
    fn the_high_watermark_is_the_lowest_isr_end_and_waits_for_min_isr() {
        assert_eq!(leader_high_watermark(0, 10, [], 1, 1), 10, "alone: own end");
        assert_eq!(leader_high_watermark(0, 10, [7, 9], 3, 2), 7);
        assert_eq!(leader_high_watermark(3, 10, [UNKNOWN_END], 2, 1), 3);
        assert_eq!(leader_high_watermark(8, 10, [7], 2, 1), 8, "never back");
        assert_eq!(leader_high_watermark(0, 10, [10], 2, 3), 0, "ISR below min");
    }

    #[test]
    fn isr_shrinks_laggards_and_takes_in_the_caught_up() {
        let lag = Duration::from_ms(30_000);
        let now = at(100_000);
        let mut late = ReplicaProgress::new(at(0), true);
        late.on_fetch(3, 9, at(60_000));
        let mut fresh = ReplicaProgress::new(at(0), false);
        fresh.on_fetch(9, 9, at(99_000));
        let followers = [(2, late, true), (3, fresh, true)];
        assert_eq!(
            isr_change(1, &[1, 2], &followers, 9, 4, now, lag),
            Some(vec![1, 3])
        );
        // A fenced broker is not taken in; below the epoch start neither.
        let fenced = [(2, late, true), (3, fresh, false)];
        assert_eq!(
            isr_change(1, &[1, 2], &fenced, 9, 4, now, lag),
            Some(vec![1])
        );
        assert_eq!(isr_change(1, &[1], &fenced[..1], 9, 4, now, lag), None);
        assert_eq!(isr_change(1, &[1], &followers[1..], 9, 10, now, lag), None);
    }

    #[test]
    fn truncation_takes_the_lower_end_of_the_same_epoch() {
        assert_eq!(truncation_offset(3, 10, Some((3, 12)), 0), (10, true));
        assert_eq!(truncation_offset(3, 10, Some((3, 8)), 0), (8, true));
        assert_eq!(truncation_offset(3, 10, Some((2, 6)), 0), (6, false));
        assert_eq!(truncation_offset(3, 10, None, 4), (4, false));
    }
}
