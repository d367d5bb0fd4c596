//! The leader-epoch cache of one partition replica (Kafka's `LeaderEpochFileCache`; KIP-101,
//! KIP-279): which leader epoch wrote which stretch of the log.
//!
//! Every record batch carries, in its header, the `partitionLeaderEpoch` of the leader that
//! appended it: the controller bumps a partition's leader epoch each time its leadership moves,
//! so an epoch names one leader's term. The cache condenses those headers into a short ordered
//! list of `(epoch, start offset)`: epoch `e` wrote the offsets from its start up to the next
//! entry's start (the last one up to the log end). One entry per leader change, never one per
//! batch, so it is tiny.
//!
//! What it answers:
//! * **`end_offset_for(e)`** (Kafka's `endOffsetFor`, the heart of OffsetForLeaderEpoch and of
//!   Fetch's `DivergingEpoch`): the largest epoch at or below `e` this log knows, and the offset
//!   where the log *stopped* being written in it (the next higher epoch's start, or the log end
//!   for the latest epoch). A replica or a consumer that holds data up to offset `o` written in
//!   epoch `e` compares: if this log's end for `e` is below `o`, the two logs diverged there
//!   and the asker must truncate (a follower, KIP-101) or report the truncation (a consumer,
//!   KIP-320).
//! * **`epoch_for_offset(o)`**: the epoch that wrote offset `o` (ListOffsets' `leader_epoch`).
//!
//! How it is kept (the log calls these, in step with its own changes):
//! * a leader records `(its epoch, log end)` the moment it becomes leader, before it appends
//!   anything in that epoch ([`LeaderEpochCache::assign`], the KIP-279 fix: after back-to-back
//!   elections a follower must be able to learn an epoch's start even if no batch of it exists);
//! * every append whose batch carries a higher epoch than the latest adds an entry at the
//!   batch's base offset (how a follower, or recovery, learns epochs from batches);
//! * truncation at the end drops the entries that start at or past the cut
//!   ([`LeaderEpochCache::truncate_from_end`]); a log start moving up (retention,
//!   DeleteRecords) drops the entries wholly below it and moves the start of the one that
//!   covers it ([`LeaderEpochCache::truncate_from_start`]).
//!
//! ## Safety properties
//! * Epochs and start offsets both strictly increase along the list (asserted after every
//!   change, and by [`LeaderEpochCache::check`] against the log's bounds: every start lies in
//!   `[log start, log end]`).
//! * It never goes back: `assign` refuses an epoch below the latest, or a new epoch starting
//!   below the latest entry's start (the log must be truncated first).
//!
//! ## Persistence
//! Kafka keeps a `leader-epoch-checkpoint` file rewritten on every change. gregor stores the
//! entries inside each producer-state snapshot instead (`<offset>.snapshot`, format 2,
//! `crate::producer::encode_snapshot_with_epochs`): a snapshot is taken at the log end at every
//! roll, every index checkpoint and at clean shutdown, made durable after the segment it
//! covers, and recovery already replays every batch after the newest usable snapshot to rebuild
//! producer state; that same walk re-adds the epochs of those batches from their headers. So a
//! clean start reads no segment data for the cache, a crash costs no read beyond the producer
//! replay, a lost or damaged snapshot falls back to an older one or to a replay of the whole log,
//! and the cache can never claim a batch a power loss took (entries past the recovered log end
//! are dropped). The one thing not persisted is an election's entry with no batch after it (a
//! leader elected, then crashed before appending or snapshotting): the broker records it again
//! when it next becomes leader, in a new epoch.

/// Kafka's "no epoch" (`RecordBatch.NO_PARTITION_LEADER_EPOCH`, -1): batches written without
/// a leader epoch, and requests that carry none.
pub const NO_EPOCH: i32 = -1;

/// The ordered `(epoch, start offset)` entries of one replica (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(i32, i64)>,
}

/// Why [`LeaderEpochCache::assign`] refused an entry: it would make the cache go back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochRefused {
    pub epoch: i32,
    pub start_offset: i64,
    pub latest: (i32, i64),
}

impl std::fmt::Display for EpochRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "leader epoch {} at offset {} goes back from the latest entry (epoch {}, start {})",
            self.epoch, self.start_offset, self.latest.0, self.latest.1
        )
    }
}

impl LeaderEpochCache {
    /// A cache holding `entries`, which must be strictly increasing in both fields.
    pub fn from_entries(entries: Vec<(i32, i64)>) -> Result<LeaderEpochCache, String> {
        let c = LeaderEpochCache { entries };
        if c.entries.iter().any(|(e, s)| *e < 0 || *s < 0) {
            return Err("a negative epoch or start offset".into());
        }
        if !c.increasing() {
            return Err("entries do not strictly increase".into());
        }
        Ok(c)
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The latest `(epoch, start offset)`, if any.
    pub fn latest(&self) -> Option<(i32, i64)> {
        self.entries.last().copied()
    }

    /// The latest epoch, or [`NO_EPOCH`].
    pub fn latest_epoch(&self) -> i32 {
        self.latest().map_or(NO_EPOCH, |(e, _)| e)
    }

    fn increasing(&self) -> bool {
        self.entries
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1)
    }

    /// Record that `epoch` starts at `start_offset`. A no-op (returns `Ok(false)`) if `epoch`
    /// is already the latest, or is [`NO_EPOCH`] (a batch written without one). Refuses an
    /// epoch below the latest, and a new epoch that would start below the latest entry's start
    /// (the log must be truncated first). Returns `Ok(true)` when an entry was added.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool, EpochRefused> {
        assert!(start_offset >= 0, "epochs start at log offsets");
        if epoch < 0 {
            return Ok(false);
        }
        if let Some(latest) = self.latest() {
            if epoch == latest.0 {
                return Ok(false);
            }
            if epoch < latest.0 || start_offset < latest.1 {
                return Err(EpochRefused {
                    epoch,
                    start_offset,
                    latest,
                });
            }
            if start_offset == latest.1 {
                // The latest epoch wrote nothing (a leader elected, then another at once):
                // the new epoch replaces it, as Kafka's cache does, so starts stay strictly
                // increasing.
                self.entries.pop();
            }
        }
        self.entries.push((epoch, start_offset));
        assert!(self.increasing(), "the cache strictly increases");
        assert_eq!(self.latest(), Some((epoch, start_offset)));
        Ok(true)
    }

    /// The epoch that wrote `offset`: the latest entry starting at or below it.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let i = self.entries.partition_point(|(_, s)| *s <= offset);
        let epoch = i.checked_sub(1).map(|i| self.entries[i].0);
        assert!(
            epoch.is_none_or(|e| e <= self.latest_epoch()),
            "no epoch past the latest"
        );
        epoch
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: for `requested`, the largest epoch at or
    /// below it that this log knows and the offset where that epoch's writes end here (the
    /// start of the next higher epoch; `log_end` for the latest epoch). `None` is Kafka's
    /// `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`: no epoch was requested, the cache is empty,
    /// or `requested` is above every epoch here. A `requested` below the first epoch answers
    /// `(requested, first start)`: whatever it wrote is gone from this log (retention), and the
    /// asker must go on from the first offset kept.
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> Option<(i32, i64)> {
        let (latest, latest_start) = self.latest()?;
        assert!(latest_start <= log_end, "the cache is within the log");
        if requested < 0 {
            return None;
        }
        if requested == latest {
            return Some((requested, log_end));
        }
        assert!(requested != latest && !self.entries.is_empty());
        // The first entry with an epoch above the requested one.
        let above = self.entries.partition_point(|(e, _)| *e <= requested);
        let (_, higher_start) = *self.entries.get(above)?;
        let answer = match above.checked_sub(1) {
            None => (requested, higher_start),
            Some(floor) => (self.entries[floor].0, higher_start),
        };
        assert!(answer.0 <= requested && answer.1 <= log_end);
        Some(answer)
    }

    /// The log was cut so that it ends at `end_offset`: forget the epochs that start at or past
    /// it (Kafka's `truncateFromEnd`). Returns whether anything was removed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(_, s)| *s < end_offset);
        assert!(self.entries.iter().all(|(_, s)| *s < end_offset));
        assert!(self.entries.len() <= before, "a truncation only removes");
        assert!(self.increasing(), "what is left still strictly increases");
        self.entries.len() != before
    }

    /// The log now starts at `start_offset` (retention, DeleteRecords): drop the entries wholly
    /// below it, and start the one that covers it there (Kafka's `truncateFromStart`).
    pub fn truncate_from_start(&mut self, start_offset: i64) {
        let covering = self.entries.partition_point(|(_, s)| *s <= start_offset);
        if let Some(last_below) = covering.checked_sub(1) {
            let epoch = self.entries[last_below].0;
            self.entries.drain(..last_below);
            self.entries[0] = (epoch, start_offset);
        }
        assert!(self.entries.first().is_none_or(|(_, s)| *s >= start_offset));
        assert!(self.increasing());
    }

    /// Keep only what a log spanning `[log_start, log_end]` can hold (recovery: the entries a
    /// snapshot carried past a log that lost its tail, or below a log start that moved). An
    /// entry starting exactly at the log end stays: an election recorded before any append.
    pub fn clamp_to(&mut self, log_start: i64, log_end: i64) {
        self.entries.retain(|(_, s)| *s <= log_end);
        assert!(self.entries.iter().all(|(_, s)| *s <= log_end));
        self.truncate_from_start(log_start);
        assert!(self.entries.first().is_none_or(|(_, s)| *s >= log_start));
        assert!(self.increasing(), "clamping keeps the order");
        self.check(log_start, log_end);
    }

    /// The cache's invariants against its log's bounds (asserted after every step).
    pub fn check(&self, log_start: i64, log_end: i64) {
        assert!(
            self.increasing(),
            "leader epochs and starts strictly increase"
        );
        for (e, s) in &self.entries {
            assert!(*e >= 0, "a cached epoch is a real one");
            assert!(
                log_start <= *s && *s <= log_end,
                "epoch {e} starts at {s}, outside the log [{log_start}, {log_end}]"
            );
        }
    }
}

impl super::PartitionLog {
    /// The leader-epoch cache (see the module docs).
    pub fn epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// This replica became leader in `epoch` (KIP-279): the epoch starts at the log end, before
    /// anything is appended in it. A no-op if `epoch` is already the latest; refused (and the
    /// cache unchanged) if it would go back.
    pub fn assign_epoch(&mut self, epoch: i32) -> Result<bool, EpochRefused> {
        let added = self.epochs.assign(epoch, self.log_end_offset)?;
        assert!(epoch < 0 || self.epochs.latest_epoch() == epoch);
        assert!(!added || self.epochs.latest() == Some((epoch, self.log_end_offset)));
        Ok(added)
    }

    /// A follower cut its log at `offset` (or found it already ends there): forget the epochs
    /// starting at or past it, such as one it recorded while it led with nothing appended
    /// (KIP-279), so its next fetch names the epoch of a batch it really holds. Returns whether
    /// anything was forgotten.
    pub fn forget_epochs_from(&mut self, offset: i64) -> bool {
        assert!(offset >= self.log_end_offset, "the log was cut first");
        let forgot = self.epochs.truncate_from_end(offset);
        self.epochs
            .check(self.log_start_offset, self.log_end_offset);
        forgot
    }

    /// Install the cache recovery rebuilt (from a snapshot and the batches replayed after it),
    /// clamped to what this log holds.
    pub fn set_recovered_epochs(&mut self, mut epochs: LeaderEpochCache) {
        epochs.clamp_to(self.log_start_offset, self.log_end_offset);
        self.epochs = epochs;
        self.epochs
            .check(self.log_start_offset, self.log_end_offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(entries.to_vec()).unwrap()
    }

    #[test]
    fn assign_adds_only_forward() {
        let mut c = LeaderEpochCache::default();
        assert_eq!(c.assign(NO_EPOCH, 0), Ok(false), "no epoch, no entry");
        assert_eq!(c.assign(0, 0), Ok(true));
        assert_eq!(c.assign(0, 5), Ok(false), "already the latest");
        assert_eq!(c.assign(2, 10), Ok(true));
        assert!(c.assign(1, 12).is_err(), "an older epoch is refused");
        assert!(
            c.assign(3, 9).is_err(),
            "a start below the latest is refused"
        );
        assert_eq!(c.entries(), &[(0, 0), (2, 10)]);
        // An epoch that wrote nothing is replaced by the next one at the same start.
        assert_eq!(c.assign(4, 10), Ok(true));
        assert_eq!(c.entries(), &[(0, 0), (4, 10)]);
        assert!(LeaderEpochCache::from_entries(vec![(1, 0), (1, 5)]).is_err());
    }

    /// Kafka's `endOffsetFor` cases, one by one.
    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(1, 10), (3, 20), (6, 35)]);
        let end = 50;
        assert_eq!(c.end_offset_for(NO_EPOCH, end), None, "no epoch asked");
        assert_eq!(
            c.end_offset_for(6, end),
            Some((6, 50)),
            "latest: the log end"
        );
        assert_eq!(c.end_offset_for(3, end), Some((3, 35)), "known: next start");
        assert_eq!(
            c.end_offset_for(4, end),
            Some((3, 35)),
            "unknown: floor epoch"
        );
        assert_eq!(c.end_offset_for(5, end), Some((3, 35)));
        assert_eq!(c.end_offset_for(0, end), Some((0, 10)), "below the first");
        assert_eq!(c.end_offset_for(7, end), None, "above the latest");
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, 0), None);
        assert_eq!(c.epoch_for_offset(9), None);
        assert_eq!(c.epoch_for_offset(10), Some(1));
        assert_eq!(c.epoch_for_offset(34), Some(3));
        assert_eq!(c.epoch_for_offset(99), Some(6));
    }

    #[test]
    fn truncation_at_both_ends() {
        let mut c = cache(&[(1, 10), (3, 20), (6, 35)]);
        assert!(!c.truncate_from_end(36));
        assert!(c.truncate_from_end(35), "an epoch starting at the cut goes");
        assert_eq!(c.entries(), &[(1, 10), (3, 20)]);
        c.truncate_from_start(15);
        assert_eq!(
            c.entries(),
            &[(1, 15), (3, 20)],
            "the covering epoch starts at the start"
        );
        c.truncate_from_start(20);
        assert_eq!(c.entries(), &[(3, 20)]);
        c.truncate_from_start(25);
        assert_eq!(c.entries(), &[(3, 25)]);
        c.check(25, 25);
        let mut d = cache(&[(1, 10), (3, 20)]);
        d.clamp_to(0, 20);
        assert_eq!(
            d.entries(),
            &[(1, 10), (3, 20)],
            "an election at the log end stays"
        );
        d.clamp_to(12, 19);
        assert_eq!(d.entries(), &[(1, 12)]);
    }
}
