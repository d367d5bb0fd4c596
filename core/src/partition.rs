//! One partition replica on this broker: its log, its ends and its fsync accounting.

use crate::config::Durability;
use crate::log::PartitionLog;
use crate::producer::ProducerStates;
use crate::time::Instant;
use std::collections::VecDeque;

/// One partition's replica on this broker (with one broker, always the leader).
#[derive(Debug)]
pub struct Partition {
    pub log: PartitionLog,
    pub producers: ProducerStates,
    /// The producers' state at an earlier batch boundary, as the newest producer snapshot on
    /// storage holds it: where a follower's truncation starts rebuilding the state from
    /// (`broker/replica/truncation.rs`). `None` once a cut went below it.
    pub producer_base: Option<ProducerBase>,
    /// Every offset below this has been written (the write completed).
    pub written_end: i64,
    /// Every offset below this has been synced to stable storage.
    pub durable_end: i64,
    /// Consumers read below this; acks wait for it. Never moves backwards.
    pub high_watermark: i64,
    /// Bumped when the log is cut after a failed write; completions from before are stale.
    pub(crate) cut_epoch: u64,
    /// The cuts a waiting write may still need, as `(cut epoch, offset cut back to)`. A write
    /// made in cut epoch `g` ending at `end` survived iff every cut since (epochs `>= g`) left
    /// it whole, i.e. iff the lowest of them is `>= end`. Only that suffix minimum matters, so
    /// a cut that a later, lower cut dominates is dropped: epochs and offsets both strictly
    /// increase along the deque. It holds at most `partition_cuts_max` entries; older ones
    /// are folded into `cuts_folded`.
    pub(crate) cuts: VecDeque<(u64, i64)>,
    /// `(last folded epoch, lowest folded offset)`: a write from that epoch or earlier is
    /// checked against the lowest folded cut too. That is pessimistic (a write may be taken
    /// for lost that a finer record would keep), never wrong.
    pub(crate) cuts_folded: Option<(u64, i64)>,
    pub(crate) sync: Option<SyncInFlight>,
    /// Syncs issued so far: each sync's number, so a completion is matched to its own sync. (A
    /// late completion taken for a later sync's would move the high watermark past unsynced
    /// data: found by simulator seed 528.)
    pub(crate) syncs_issued: u64,
    /// The log end offset the last sync issued covers.
    pub(crate) sync_requested_end: i64,
    /// Since when records have been waiting for a sync (the interval policy).
    pub(crate) unsynced_since: Option<Instant>,
    /// Set when the partition's storage failed in a way it cannot recover from while running
    /// (a failed fsync: the page cache can no longer be trusted). Cleared by a restart.
    pub offline: Option<String>,
    /// Where the leader epochs recovery replayed start (`crate::log::recover::EpochCut`),
    /// kept until the first metadata image names this partition's real leader epoch: any
    /// epoch above it came from a damaged header and is cut (`broker/epochs.rs`).
    ///
    /// While any are kept, the leader-epoch cache (KIP-101's cache, KIP-279's epochs) holds
    /// entries no controller has vouched for, so **no producer snapshot is written**: a
    /// snapshot persists the cache, and the next start would trust it without reading the
    /// batch headers again, so with no record of where the damaged epoch starts it could only
    /// take the partition offline (simulator seed 748: recovery, a snapshot, a second power
    /// loss before registration). Without the snapshot, the next start replays the same
    /// headers from the previous snapshot and finds the cut again. The due snapshot is
    /// written once the first registered image has checked the epochs.
    pub recovered_epoch_starts: Vec<crate::log::recover::EpochCut>,
}

/// The idempotent producers' state after every batch below `offset` (Kafka's producer
/// snapshot): `offset` is a batch boundary at byte `position` of the segment based at
/// `segment`. A truncation replays the batches from there to its cut on top of `states`, as
/// Kafka's `ProducerStateManager` reloads the latest snapshot below a cut and replays after it.
#[derive(Debug, Clone)]
pub struct ProducerBase {
    pub offset: i64,
    pub segment: i64,
    pub position: u64,
    pub states: ProducerStates,
}

impl ProducerBase {
    /// The state at `log`'s end.
    pub fn at_end(log: &PartitionLog, states: &ProducerStates) -> ProducerBase {
        let active = log.segments().last().expect("a log has a segment");
        assert_eq!(active.next_offset(), log.log_end_offset());
        ProducerBase {
            offset: log.log_end_offset(),
            segment: active.base_offset,
            position: active.size,
            states: states.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SyncInFlight {
    pub(crate) id: u64,
    pub(crate) remaining: usize,
    pub(crate) covers_end: i64,
}

impl Partition {
    pub(crate) fn new(log: PartitionLog, producers: ProducerStates) -> Partition {
        let end = log.log_end_offset();
        Partition {
            producer_base: Some(ProducerBase::at_end(&log, &producers)),
            log,
            producers,
            written_end: end,
            durable_end: end,
            high_watermark: end,
            cut_epoch: 0,
            cuts: VecDeque::new(),
            cuts_folded: None,
            sync: None,
            syncs_issued: 0,
            sync_requested_end: end,
            unsynced_since: None,
            offline: None,
            recovered_epoch_starts: Vec::new(),
        }
    }

    /// Storage work due after a step: batches now visible leave the log's unsettled tail, and
    /// a producer snapshot is written if a roll or an index checkpoint made one due.
    pub(crate) fn checkpoint_requests(&mut self) -> Option<crate::io::StorageRequest> {
        if self.offline.is_some() {
            return None;
        }
        self.log.settle(self.high_watermark.min(self.written_end));
        if self.epochs_unchecked() {
            return None;
        }
        let producers = &self.producers;
        let end = self.log.log_end_offset();
        let epochs = self.log.epochs().entries().to_vec();
        let snapshot = self.log.snapshot_request(false, |offset| {
            crate::producer::encode_snapshot_with_epochs(producers, &epochs, offset)
        });
        assert!(
            snapshot.as_ref().is_none_or(|r| matches!(r,
                crate::io::StorageRequest::WriteProducerSnapshot { offset, .. } if *offset == end)),
            "a snapshot is taken at the log end"
        );
        assert!(
            snapshot.is_none() || !self.epochs_unchecked(),
            "no snapshot persists leader epochs the image has not checked"
        );
        if snapshot.is_some() {
            self.producer_base = Some(ProducerBase::at_end(&self.log, &self.producers));
        }
        snapshot
    }

    /// Whether recovery replayed leader epochs the first registered image has not checked
    /// yet: no producer snapshot may persist them (see `recovered_epoch_starts`).
    pub(crate) fn epochs_unchecked(&self) -> bool {
        !self.recovered_epoch_starts.is_empty()
    }

    /// At clean shutdown: the active segment's index files and a producer snapshot at the log
    /// end (none while the leader epochs are unchecked), so the next start reads no segment
    /// data.
    pub(crate) fn shutdown_requests(&mut self) -> Vec<crate::io::StorageRequest> {
        if self.offline.is_some() {
            return Vec::new();
        }
        let mut reqs: Vec<_> = self.log.shutdown_index().into_iter().collect();
        if self.epochs_unchecked() {
            return reqs;
        }
        let producers = &self.producers;
        let epochs = self.log.epochs().entries().to_vec();
        let snapshot = self.log.snapshot_request(true, |offset| {
            crate::producer::encode_snapshot_with_epochs(producers, &epochs, offset)
        });
        assert!(snapshot.is_none() || !self.epochs_unchecked());
        reqs.extend(snapshot);
        reqs
    }

    /// Whether a write made in cut epoch `cut_epoch`, ending at `end`, is still in the log:
    /// no failed write since cut the log below its end.
    pub(crate) fn write_survives(&self, end: i64, cut_epoch: u64) -> bool {
        assert!(
            cut_epoch <= self.cut_epoch,
            "a write from a future cut epoch"
        );
        let retained = self
            .cuts
            .iter()
            .find(|(epoch, _)| *epoch >= cut_epoch)
            .is_none_or(|(_, keep)| *keep >= end);
        let folded = self
            .cuts_folded
            .is_none_or(|(last, lowest)| last < cut_epoch || lowest >= end);
        retained && folded
    }

    /// A failed write cut the log back to `keep`: a new cut epoch begins. Keeps at most
    /// `cuts_max` cuts (see `cuts`).
    pub(crate) fn record_cut(&mut self, keep: i64, cuts_max: usize) {
        assert!(cuts_max > 0);
        // A cut never takes an acknowledged record: it keeps what was written.
        assert!(
            keep >= self.high_watermark,
            "a cut below the high watermark"
        );
        let epoch = self.cut_epoch;
        while self.cuts.back().is_some_and(|(_, k)| *k >= keep) {
            self.cuts.pop_back();
        }
        self.cuts.push_back((epoch, keep));
        self.cut_epoch += 1;
        while self.cuts.len() > cuts_max {
            let (e, k) = self.cuts.pop_front().expect("over the limit, so not empty");
            let lowest = self.cuts_folded.map_or(k, |(_, low)| low.min(k));
            self.cuts_folded = Some((e, lowest));
        }
        assert!(self.cuts.len() <= cuts_max);
        assert!(!self.write_survives(keep + 1, epoch), "the cut is recorded");
    }

    /// Truncate this replica to `offset` (KIP-101: a follower whose log diverged from the
    /// leader's cuts back to where they agreed before fetching on): every batch at or above
    /// `offset` goes, with the leader-epoch entries that started there, the idempotent
    /// producers' memory of them, and the index files and producer snapshots that describe
    /// them; the written, durable and synced ends and the high watermark are clamped to the
    /// new end (a follower's high watermark may go back, as Kafka's does). Returns the storage
    /// requests, to be carried out in order, or why the cut cannot be made now.
    ///
    /// Crash safety comes from the order of the requests (`PartitionLog::truncate_to`): whole
    /// segments above the cut are deleted first, newest first, then the cut segment's index
    /// files, then its bytes, then the snapshots above the cut. A crash between any two leaves
    /// a prefix of the old log that still holds everything below `offset` (recovery trusts no
    /// index past a segment's bytes, and drops leader epochs past the recovered end), never a
    /// log with a hole below the cut.
    ///
    /// Preconditions (checked): `offset` is in the log and its byte position is known without
    /// a read ([`PartitionLog::can_truncate_to`]: the log end, a segment boundary, an index
    /// entry, or a batch this run appended that is not yet settled); no sync or append may be
    /// in flight past the cut that a later completion would count (the cut epoch is bumped,
    /// so their completions are ignored, exactly as after a failed write). A cut landing
    /// between index entries of settled data needs a read to find its position first: the
    /// follower does that read ([`Partition::truncate_rebuilt`]).
    ///
    /// Idempotent-producer state here only forgets the batches at or above the cut
    /// ([`ProducerStates::truncate_to`]): a producer keeps what it has below, and one left
    /// with nothing is forgotten. The follower's truncation instead rebuilds the state from
    /// the log below the cut (`broker/replica/truncation.rs`), as Kafka does.
    pub fn truncate_to(
        &mut self,
        offset: i64,
        cuts_max: usize,
    ) -> Result<Vec<crate::io::StorageRequest>, String> {
        if self.offline.is_some() {
            return Err("the partition is offline".into());
        }
        if !self.log.can_truncate_to(offset) {
            return Err(format!(
                "offset {offset} is not a batch boundary whose position is known in [{}, {}]",
                self.log.log_start_offset(),
                self.log.log_end_offset()
            ));
        }
        let end = self.log.log_end_offset();
        if offset == end {
            return Ok(Vec::new());
        }
        self.clamp_for_cut(offset, cuts_max);
        let reqs = self.log.truncate_to(offset);
        self.producers.truncate_to(offset);
        if self
            .producer_base
            .as_ref()
            .is_some_and(|b| b.offset > offset)
        {
            self.producer_base = None;
        }
        self.after_cut(offset);
        Ok(reqs)
    }

    /// [`Partition::truncate_to`] at `offset` below the log end, at the byte `position` a
    /// storage read found, with the producer state `rebuilt` from the log below the cut (the
    /// follower's scan from [`Partition::producer_base`]; `scanned` is the largest timestamp
    /// it saw in the cut's segment, see [`PartitionLog::truncate_at`]). The rebuilt state also
    /// becomes the new producer base.
    pub fn truncate_rebuilt(
        &mut self,
        offset: i64,
        position: u64,
        scanned: crate::log::index::MaxTimestamp,
        rebuilt: ProducerStates,
        cuts_max: usize,
    ) -> Result<Vec<crate::io::StorageRequest>, String> {
        let (start, end) = (self.log.log_start_offset(), self.log.log_end_offset());
        if self.offline.is_some() || offset < start || offset >= end {
            return Err(format!("no cut to {offset} in [{start}, {end})"));
        }
        assert!(rebuilt.max_last_offset().is_none_or(|o| o < offset));
        self.clamp_for_cut(offset, cuts_max);
        let reqs = self.log.truncate_at(offset, position, scanned);
        self.producers = rebuilt;
        self.producer_base = Some(ProducerBase::at_end(&self.log, &self.producers));
        self.after_cut(offset);
        Ok(reqs)
    }

    /// Before a cut to `offset`: the high watermark comes down to it, a new cut epoch begins.
    fn clamp_for_cut(&mut self, offset: i64, cuts_max: usize) {
        self.high_watermark = self.high_watermark.min(offset);
        self.record_cut(offset, cuts_max);
    }

    /// After a cut to `offset`: every end comes down to it.
    fn after_cut(&mut self, offset: i64) {
        self.written_end = self.written_end.min(offset);
        self.durable_end = self.durable_end.min(offset);
        self.sync_requested_end = self.sync_requested_end.min(offset);
        if let Some(s) = self.sync.as_mut() {
            s.covers_end = s.covers_end.min(offset);
        }
        if self.log.log_end_offset() <= self.sync_requested_end {
            self.unsynced_since = None;
        }
        // Postconditions: nothing at or past the cut is remembered anywhere.
        assert_eq!(self.log.log_end_offset(), offset);
        assert!(self.high_watermark <= offset && self.written_end <= offset);
        assert!(self.durable_end <= offset && self.sync_requested_end <= offset);
        assert!(self.producers.max_last_offset().is_none_or(|o| o < offset));
        assert!(self.log.epochs().entries().iter().all(|(_, s)| *s < offset));
        assert!(self
            .producer_base
            .as_ref()
            .is_none_or(|b| b.offset <= offset));
    }

    /// Empty this replica and restart it at `offset`, above its log end (Kafka's
    /// `truncateFullyAndStartAt`): a follower whose whole log lies below its leader's log start
    /// starts again there ([`PartitionLog::restart_at`]). Producer state is forgotten with the
    /// batches (what it described is gone; the leader's is rebuilt as its batches arrive), and
    /// every end, the high watermark included, becomes `offset`. The cut epoch is bumped, so a
    /// completion of a write or sync issued before is not counted. Returns the storage
    /// requests, to be carried out in order.
    pub fn restart_at(
        &mut self,
        offset: i64,
        now: Instant,
        cuts_max: usize,
    ) -> Result<Vec<crate::io::StorageRequest>, String> {
        if self.offline.is_some() {
            return Err("the partition is offline".into());
        }
        let end = self.log.log_end_offset();
        if offset <= end {
            return Err(format!("offset {offset} is not above the log end {end}"));
        }
        self.record_cut(end.max(self.high_watermark), cuts_max);
        let reqs = self.log.restart_at(offset, now);
        self.producers = ProducerStates::default();
        self.producer_base = Some(ProducerBase::at_end(&self.log, &self.producers));
        self.sync = None;
        self.unsynced_since = None;
        (self.written_end, self.durable_end) = (offset, offset);
        (self.sync_requested_end, self.high_watermark) = (offset, offset);
        assert_eq!(self.log.log_start_offset(), offset);
        assert_eq!(self.log.log_end_offset(), offset);
        assert!(self.producers.is_empty() && self.log.epochs().is_empty());
        Ok(reqs)
    }

    /// The partition's own safety properties, checked after every step (in release builds too).
    /// An offline partition is exempt: its storage is no longer trusted, and a restart recovers it.
    pub(crate) fn invariants(&self, durability: Durability) {
        if self.offline.is_some() {
            return;
        }
        let start = self.log.log_start_offset();
        let end = self.log.log_end_offset();
        assert!(start <= end, "log start {start} above log end {end}");
        assert!(
            self.written_end <= end,
            "written end {} past the log end {end}",
            self.written_end
        );
        assert!(
            self.high_watermark <= self.written_end.max(start),
            "high watermark {} above written end {}",
            self.high_watermark,
            self.written_end
        );
        assert!(self.high_watermark >= start || self.high_watermark == self.written_end);
        // What is durable was written before a sync was issued for it, and a sync is issued for
        // no more than the log holds.
        assert!(
            self.durable_end <= self.sync_requested_end,
            "durable end {} past what syncs were issued for ({})",
            self.durable_end,
            self.sync_requested_end
        );
        assert!(
            self.sync_requested_end <= end,
            "a sync was issued past the log end {end}"
        );
        assert!(
            self.durable_end <= end,
            "durable end {} past log end {end}",
            self.durable_end
        );
        // Under group commit the high watermark never passes what is durable: the README's
        // promise, "an acknowledged record survives power loss".
        assert!(
            durability != Durability::GroupCommit
                || self.high_watermark <= self.durable_end.max(start),
            "group commit: high watermark {} above durable end {}",
            self.high_watermark,
            self.durable_end
        );
        // An fsync covers no more than was issued for it; an fsync in flight has files left.
        if let Some(s) = self.sync {
            assert!(s.remaining > 0, "sync {} in flight with nothing left", s.id);
            assert!(
                s.covers_end <= self.sync_requested_end,
                "sync {} covers {} past what was issued ({})",
                s.id,
                s.covers_end,
                self.sync_requested_end
            );
            assert_eq!(
                s.id, self.syncs_issued,
                "the sync in flight is the last one issued"
            );
        }
        // Cuts kept in strictly increasing epoch and offset order (the suffix minima), every
        // epoch one that has ended, the folded ones older than every kept one.
        for ((e1, k1), (e2, k2)) in self.cuts.iter().zip(self.cuts.iter().skip(1)) {
            assert!(e1 < e2 && k1 < k2, "cuts are suffix minima");
        }
        assert!(self.cuts.back().is_none_or(|(e, _)| *e < self.cut_epoch));
        assert_eq!(
            self.cut_epoch == 0,
            self.cuts.is_empty() && self.cuts_folded.is_none()
        );
        if let (Some((last, _)), Some((first, _))) = (self.cuts_folded, self.cuts.front()) {
            assert!(last < *first, "folded cuts are older than kept ones");
        }
        // The leader-epoch cache lies within the log (KIP-101; `log::epochs`).
        self.log.epochs().check(start, end);
    }

    /// The end offset that the durability policy lets the broker acknowledge and expose.
    pub(crate) fn ack_end(&self, durability: Durability) -> i64 {
        match durability {
            Durability::GroupCommit => self.durable_end.min(self.written_end),
            Durability::None | Durability::Interval { .. } => self.written_end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{assign, tests::make_batch, BatchHeader};
    use crate::io::{PartitionDir, StorageRequest};
    use crate::log::RollPolicy;

    const ROLL: RollPolicy = RollPolicy {
        segment_bytes_max: 400,
        segment_age_ns_max: u64::MAX,
        index_interval_bytes: crate::log::index::INDEX_INTERVAL_BYTES,
    };

    /// A partition with batches of (records, producer sequence, leader epoch), all written
    /// and synced but none settled (still in the unsettled tail, so every boundary is known).
    fn partition(batches: &[(i32, i32, i32)]) -> Partition {
        let dir = PartitionDir {
            topic: "t".into(),
            partition: 0,
        };
        let now = Instant::from_unix_ms(1);
        let mut p = Partition::new(PartitionLog::create(dir, now).0, ProducerStates::default());
        for &(count, seq, epoch) in batches {
            let mut b = make_batch(count, Some((7, 0, seq)), 5);
            assign(&mut b, p.log.log_end_offset(), epoch);
            let h = BatchHeader::parse(&b).unwrap();
            p.log.append(b.into(), &h, now, ROLL);
            p.producers.record(&h);
        }
        let end = p.log.log_end_offset();
        (p.written_end, p.durable_end, p.sync_requested_end) = (end, end, end);
        p.high_watermark = 2;
        p.invariants(Durability::GroupCommit);
        p
    }

    #[test]
    fn truncation_cuts_log_epochs_producers_and_ends_together() {
        // Offsets: 0-1 epoch 0, 2-4 epoch 0, 5-5 epoch 3, 6-7 epoch 5, 8-9 epoch 5.
        let mut p = partition(&[(2, 0, 0), (3, 2, 0), (1, 5, 3), (2, 6, 5), (2, 8, 5)]);
        assert_eq!(p.log.epochs().entries(), &[(0, 0), (3, 5), (5, 6)]);
        assert!(p.truncate_to(7, 4).is_err(), "7 is inside a batch");
        assert!(p.truncate_to(11, 4).is_err(), "past the end");
        assert_eq!(
            p.truncate_to(10, 4),
            Ok(Vec::new()),
            "at the end: nothing to do"
        );
        let reqs = p.truncate_to(6, 4).unwrap();
        assert_eq!(p.log.log_end_offset(), 6);
        assert_eq!(p.log.epochs().entries(), &[(0, 0), (3, 5)]);
        assert_eq!(
            p.producers
                .get(7)
                .unwrap()
                .batches
                .back()
                .unwrap()
                .last_offset,
            5
        );
        assert_eq!((p.written_end, p.durable_end, p.high_watermark), (6, 6, 2));
        // The index goes before the bytes, the snapshots above the cut after them.
        let kinds: Vec<&str> = reqs
            .iter()
            .map(|r| match r {
                StorageRequest::DeleteSegment { .. } => "delete",
                StorageRequest::DeleteSegmentIndex { .. } => "index",
                StorageRequest::Truncate { .. } => "truncate",
                StorageRequest::DeleteProducerSnapshots { .. } => "snapshots",
                _ => "other",
            })
            .collect();
        let cut = kinds.iter().position(|k| *k == "truncate").unwrap();
        assert!(kinds[..cut].contains(&"index") && kinds[cut + 1..] == ["snapshots"]);
        // Below the high watermark (a follower's may go back) and to a segment's start.
        let base = p.log.segments().last().unwrap().base_offset;
        p.truncate_to(base, 4).unwrap();
        assert_eq!(p.high_watermark, 2.min(base));
        assert!(p.log.epochs().entries().iter().all(|(_, s)| *s < base));
        p.invariants(Durability::GroupCommit);
        // A new leader epoch can then start at the new end, and an append in it is accepted.
        assert_eq!(p.log.assign_epoch(6), Ok(true));
        assert_eq!(p.log.epochs().latest(), Some((6, base)));
    }
}
