//! The replicated log as one node holds it, with its leader-epoch cache.
//!
//! The *epoch cache* (Kafka's `LeaderEpochFileCache`) maps each epoch to the offset of its first
//! entry. It answers the question every fetch asks: "where does epoch E end in your log?", which
//! is how a leader finds where a follower's log stops agreeing with its own (KIP-101, KIP-279).

use super::{Entry, Epoch};

#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    entries: Vec<Entry>,
    /// (epoch, start offset), strictly increasing in both: one item per epoch present in the log.
    epochs: Vec<(Epoch, i64)>,
}

impl RaftLog {
    /// A log rebuilt from what the node had on disk (after a restart).
    pub fn from_entries(entries: Vec<Entry>) -> RaftLog {
        let mut log = RaftLog::default();
        for e in entries {
            log.push(e);
        }
        log
    }

    /// The log end offset: the offset the next entry gets.
    pub fn end(&self) -> i64 {
        self.entries.len() as i64
    }

    /// The epoch of the last entry (the default epoch for an empty log).
    pub fn last_epoch(&self) -> Epoch {
        self.entries.last().map(|e| e.epoch).unwrap_or_default()
    }

    /// The epoch of the entry just below `offset` (the default epoch at 0).
    pub fn epoch_before(&self, offset: i64) -> Epoch {
        assert!(
            (0..=self.end()).contains(&offset),
            "offset {offset} in the log"
        );
        if offset == 0 {
            return Epoch::default();
        }
        self.entries[offset as usize - 1].epoch
    }

    pub fn get(&self, offset: i64) -> Option<&Entry> {
        usize::try_from(offset)
            .ok()
            .and_then(|o| self.entries.get(o))
    }

    /// Entries from `from` (inclusive), at most `max`.
    pub fn read(&self, from: i64, max: usize) -> Vec<Entry> {
        assert!(
            (0..=self.end()).contains(&from),
            "read from {from} in the log"
        );
        let from = from as usize;
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

    /// Remove every entry at or above `end`.
    pub fn truncate(&mut self, end: i64) {
        assert!(
            (0..=self.end()).contains(&end),
            "truncate to {end} in the log"
        );
        self.entries.truncate(end as usize);
        while self.epochs.last().is_some_and(|(_, start)| *start >= end) {
            self.epochs.pop();
        }
        self.check();
    }

    /// Where `epoch` ends in this log: the largest epoch at or below `epoch` that the log holds,
    /// and the offset where it ends (exclusive), i.e. the start of the next epoch or the log end.
    /// Kafka's `endOffsetForEpoch`. For an epoch below every epoch held: (default, 0).
    pub fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, i64) {
        let i = self.epochs.partition_point(|(e, _)| *e <= epoch);
        if i == 0 {
            return (Epoch::default(), 0);
        }
        let found = self.epochs[i - 1].0;
        let end = self.epochs.get(i).map(|(_, s)| *s).unwrap_or(self.end());
        assert!(found <= epoch && end <= self.end());
        (found, end)
    }

    fn check(&self) {
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
}
