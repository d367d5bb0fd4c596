//! The replicated log as one node holds it, with its leader-epoch cache and its snapshot
//! boundary.
//!
//! The *epoch cache* (Kafka's `LeaderEpochFileCache`) maps each epoch to the offset of its first
//! entry. It answers the question every fetch asks: "where does epoch E end in your log?", which
//! is how a leader finds where a follower's log stops agreeing with its own (KIP-101, KIP-279).
//!
//! Once a node has a snapshot (KIP-630), the entries behind it are gone: the log then *starts*
//! at the snapshot's end offset (Kafka's log start offset), and the epoch of the entry just
//! below the start is the snapshot's epoch. Everything that asks "what epoch is the entry before
//! offset o?" (a fetch's `last_fetched_epoch`, a vote's last epoch) gets the snapshot's answer at
//! the start, so a node whose log is empty after a snapshot still compares as up to date.
//!
//! Safety properties, asserted after every change (`check`):
//! * `start <= end`; epochs never go down along the log, and never below the snapshot's epoch;
//! * the cache holds one item per epoch present in `[start, end)`, strictly increasing in epoch
//!   and in start offset, each start inside the log.

use super::{Entry, Epoch};

#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    /// The log start offset: entries below it live only in the snapshot (0 without one).
    start: i64,
    /// The epoch of the entry just below `start`: the snapshot's epoch (default at 0).
    start_epoch: Epoch,
    /// The entries from `start` on.
    entries: Vec<Entry>,
    /// (epoch, start offset), strictly increasing in both: one item per epoch present in the log.
    epochs: Vec<(Epoch, i64)>,
}

impl RaftLog {
    /// A log of `entries` from offset 0 (no snapshot).
    pub fn from_entries(entries: Vec<Entry>) -> RaftLog {
        RaftLog::restore(0, Epoch::default(), entries)
    }

    /// A log rebuilt from what the node had on disk: its snapshot ended at `start` in epoch
    /// `start_epoch`, and `entries` follow it.
    pub fn restore(start: i64, start_epoch: Epoch, entries: Vec<Entry>) -> RaftLog {
        assert!(start >= 0, "the log starts at or after 0");
        assert!(start > 0 || start_epoch == Epoch::default());
        let mut log = RaftLog {
            start,
            start_epoch,
            ..RaftLog::default()
        };
        for e in entries {
            log.push(e);
        }
        log
    }

    /// The log start offset: the first offset still held as an entry (the snapshot's end).
    pub fn start(&self) -> i64 {
        self.start
    }

    /// The log end offset: the offset the next entry gets.
    pub fn end(&self) -> i64 {
        self.start + self.entries.len() as i64
    }

    /// The epoch of the last entry (the snapshot's epoch for a log emptied by one, the default
    /// epoch for an empty log).
    pub fn last_epoch(&self) -> Epoch {
        self.entries
            .last()
            .map(|e| e.epoch)
            .unwrap_or(self.start_epoch)
    }

    /// The epoch of the entry just below `offset` (the snapshot's epoch at the log start).
    pub fn epoch_before(&self, offset: i64) -> Epoch {
        assert!(
            (self.start..=self.end()).contains(&offset),
            "offset {offset} in the log [{}, {}]",
            self.start,
            self.end()
        );
        if offset == self.start {
            return self.start_epoch;
        }
        self.entries[(offset - self.start) as usize - 1].epoch
    }

    /// The entry at `offset`, if the log holds it (not below the start, not at or past the end).
    pub fn get(&self, offset: i64) -> Option<&Entry> {
        usize::try_from(offset - self.start)
            .ok()
            .and_then(|o| self.entries.get(o))
    }

    /// Entries from `from` (inclusive), at most `max`.
    pub fn read(&self, from: i64, max: usize) -> Vec<Entry> {
        assert!(
            (self.start..=self.end()).contains(&from),
            "read from {from} in the log [{}, {}]",
            self.start,
            self.end()
        );
        let from = (from - self.start) as usize;
        self.entries[from..(from + max).min(self.entries.len())].to_vec()
    }

    /// Append one entry; its epoch is never below the last one's.
    pub fn push(&mut self, e: Entry) {
        assert!(
            e.epoch >= self.last_epoch(),
            "epochs never go down in a log"
        );
        if self.epochs.last().map(|(ep, _)| *ep) != Some(e.epoch) {
            self.epochs.push((e.epoch, self.end()));
        }
        self.entries.push(e);
        self.check();
    }

    /// Remove every entry at or above `end` (never below the start: those are in a snapshot,
    /// which holds only committed entries, and committed entries are never truncated).
    pub fn truncate(&mut self, end: i64) {
        assert!(
            (self.start..=self.end()).contains(&end),
            "truncate to {end} in the log [{}, {}]",
            self.start,
            self.end()
        );
        self.entries.truncate((end - self.start) as usize);
        while self.epochs.last().is_some_and(|(_, start)| *start >= end) {
            self.epochs.pop();
        }
        self.check();
    }

    /// Drop every entry below `new_start`: a snapshot now covers them (KIP-630). The epoch
    /// cache keeps the epoch that spans `new_start`, starting there (Kafka's
    /// `truncateFromStart`).
    pub fn truncate_prefix(&mut self, new_start: i64) {
        assert!(
            self.start < new_start && new_start <= self.end(),
            "a new start {new_start} inside the log ({}, {}]",
            self.start,
            self.end()
        );
        let start_epoch = self.epoch_before(new_start);
        self.entries.drain(..(new_start - self.start) as usize);
        self.start = new_start;
        self.start_epoch = start_epoch;
        self.rebuild_epochs();
        assert_eq!(self.epoch_before(new_start), start_epoch);
    }

    /// Replace the whole log by a snapshot that ends at `start` in `start_epoch`: what a
    /// follower does after fetching a leader's snapshot (Kafka's `truncateToLatestSnapshot`).
    pub fn reset_to_snapshot(&mut self, start: i64, start_epoch: Epoch) {
        assert!(start > 0, "a snapshot holds at least one entry");
        *self = RaftLog {
            start,
            start_epoch,
            ..RaftLog::default()
        };
        self.check();
    }

    fn rebuild_epochs(&mut self) {
        self.epochs.clear();
        for (i, e) in self.entries.iter().enumerate() {
            if self.epochs.last().map(|(ep, _)| *ep) != Some(e.epoch) {
                self.epochs.push((e.epoch, self.start + i as i64));
            }
        }
        self.check();
    }

    /// Where `epoch` ends in this log: the largest epoch at or below `epoch` that the log holds,
    /// and the offset where it ends (exclusive), i.e. the start of the next epoch or the log end.
    /// Kafka's `endOffsetForEpoch`. An epoch below every epoch held ends at the log start: the
    /// snapshot's epoch when `epoch` is at or above it, else the default epoch (nothing is known
    /// of the entries behind a snapshot; a leader answers such a fetcher with its snapshot).
    pub fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, i64) {
        let i = self.epochs.partition_point(|(e, _)| *e <= epoch);
        if i == 0 {
            let found = if self.start_epoch <= epoch {
                self.start_epoch
            } else {
                Epoch::default()
            };
            return (found, self.start);
        }
        let found = self.epochs[i - 1].0;
        let end = self.epochs.get(i).map(|(_, s)| *s).unwrap_or(self.end());
        assert!(found <= epoch && self.start < end && end <= self.end());
        (found, end)
    }

    fn check(&self) {
        assert!(0 <= self.start && self.start <= self.end());
        assert!(
            self.epochs
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
            "epoch cache strictly increasing"
        );
        assert!(self
            .epochs
            .last()
            .is_none_or(|(e, s)| { *e == self.last_epoch() && *s < self.end() }));
        assert!(self
            .epochs
            .first()
            .is_none_or(|(e, s)| *e >= self.start_epoch && *s == self.start));
        assert_eq!(self.epochs.is_empty(), self.entries.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::Record;

    fn e(epoch: i32) -> Entry {
        Entry {
            epoch: Epoch(epoch),
            record: Record::Data(bytes::Bytes::new()),
        }
    }

    #[test]
    fn epoch_ends_and_truncation() {
        let mut log = RaftLog::from_entries(vec![e(1), e(1), e(3), e(3), e(3), e(4)]);
        assert_eq!(log.end_offset_for_epoch(Epoch(0)), (Epoch(0), 0));
        assert_eq!(log.end_offset_for_epoch(Epoch(1)), (Epoch(1), 2));
        assert_eq!(log.end_offset_for_epoch(Epoch(2)), (Epoch(1), 2));
        assert_eq!(log.end_offset_for_epoch(Epoch(3)), (Epoch(3), 5));
        assert_eq!(log.end_offset_for_epoch(Epoch(9)), (Epoch(4), 6));
        assert_eq!(log.epoch_before(3), Epoch(3));
        log.truncate(3);
        assert_eq!(log.end_offset_for_epoch(Epoch(9)), (Epoch(3), 3));
        log.truncate(2);
        assert_eq!(log.last_epoch(), Epoch(1));
        log.push(e(5));
        assert_eq!(log.end_offset_for_epoch(Epoch(4)), (Epoch(1), 2));
        assert_eq!(log.read(1, 10).len(), 2);
    }

    #[test]
    fn a_snapshot_moves_the_start_and_keeps_the_epoch_below_it() {
        let mut log = RaftLog::from_entries(vec![e(1), e(1), e(3), e(3), e(3), e(4)]);
        log.truncate_prefix(3);
        assert_eq!((log.start(), log.end()), (3, 6));
        assert_eq!(log.epoch_before(3), Epoch(3), "the entry at 2 had epoch 3");
        assert_eq!(log.get(2), None);
        assert_eq!(log.get(3).map(|e| e.epoch), Some(Epoch(3)));
        assert_eq!(log.end_offset_for_epoch(Epoch(3)), (Epoch(3), 5));
        assert_eq!(log.end_offset_for_epoch(Epoch(1)), (Epoch(0), 3));
        log.truncate_prefix(6);
        assert_eq!(
            log.last_epoch(),
            Epoch(4),
            "an empty log keeps its last epoch"
        );
        assert_eq!(log.end_offset_for_epoch(Epoch(7)), (Epoch(4), 6));
        log.push(e(6));
        assert_eq!(log.end_offset_for_epoch(Epoch(5)), (Epoch(4), 6));
        log.reset_to_snapshot(20, Epoch(9));
        assert_eq!(
            (log.start(), log.end(), log.last_epoch()),
            (20, 20, Epoch(9))
        );
        let back = RaftLog::restore(20, Epoch(9), vec![e(9), e(10)]);
        assert_eq!(back.end_offset_for_epoch(Epoch(9)), (Epoch(9), 21));
    }
}
