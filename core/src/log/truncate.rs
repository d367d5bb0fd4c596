//! Cutting a partition log: at a batch boundary ([`PartitionLog::truncate_to`], KIP-101's
//! follower truncation and the cut after a failed write), at a boundary a storage read found
//! ([`PartitionLog::truncate_at`]), and all of it, restarting at a later offset
//! ([`PartitionLog::restart_at`], Kafka's `truncateFullyAndStartAt`).

use super::*;

impl PartitionLog {
    /// Whether [`PartitionLog::truncate_to`] can cut at `offset` without reading: it lies in
    /// the log and its byte position is known exactly (a segment's start or end, an index
    /// entry, or a batch of the unsettled tail).
    pub fn can_truncate_to(&self, offset: i64) -> bool {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return false;
        }
        let i = self.segments.partition_point(|s| s.base_offset <= offset);
        let seg = &self.segments[i.saturating_sub(1)];
        offset == self.log_end_offset
            || seg.base_offset == offset
            || self.exact_position(seg, offset).is_some()
    }

    /// Cut the log so that `offset` becomes the log end offset. `offset` must be a batch
    /// boundary at or above the log start offset whose position the log knows exactly: a
    /// segment's start, or a batch of the unsettled tail (the broker cuts back to what was
    /// written, never below the high watermark). Returns the storage requests that make the
    /// files agree.
    pub fn truncate_to(&mut self, offset: i64) -> Vec<StorageRequest> {
        self.cut(offset, None, MaxTimestamp::NONE)
    }

    /// [`PartitionLog::truncate_to`] at an offset whose byte position a storage read found
    /// (a follower's cut between index entries of settled data): `position` is where the
    /// batch starting at `offset` lies in the segment holding it (or that segment's size, when
    /// `offset` is its end), `scanned` the largest timestamp over that segment's batches the
    /// read walked below `offset`.
    pub fn truncate_at(
        &mut self,
        offset: i64,
        position: u64,
        scanned: MaxTimestamp,
    ) -> Vec<StorageRequest> {
        assert!(scanned.base_offset < offset, "scanned below the cut");
        self.cut(offset, Some(position), scanned)
    }

    fn cut(
        &mut self,
        offset: i64,
        position: Option<u64>,
        scanned: MaxTimestamp,
    ) -> Vec<StorageRequest> {
        assert!(offset >= self.log_start_offset && offset <= self.log_end_offset);
        let mut reqs = Vec::new();
        // A segment starting at `offset` would be left empty: drop it too. This matters when a
        // roll's CreateSegment failed (a full disk): keeping that segment would direct every
        // later append at a file that does not exist (found by the simulator, seed 106).
        while self.segments.len() > 1 && self.active().base_offset >= offset {
            let seg = self.segments.pop().unwrap();
            reqs.push(StorageRequest::DeleteSegment {
                file: self.file_of(seg.base_offset),
            });
        }
        let seg = self.active();
        let known = self.exact_position(seg, offset);
        let new_size = match position {
            // A segment's base is its header's end, whatever the scan reported for the end
            // of the segment before it.
            Some(_) if offset == seg.base_offset => SEGMENT_HEADER_BYTES,
            Some(p) => {
                assert!(known.is_none_or(|k| k == p), "the read agrees with the log");
                assert!(p >= SEGMENT_HEADER_BYTES && p <= seg.size);
                p
            }
            None => known.expect("a cut lands on a batch boundary the log knows exactly"),
        };
        // The largest timestamp that remains: the settled one if it lies below the cut, else
        // (as Kafka's `LogSegment.truncateTo` does) the last time index entry below the cut,
        // with what a read walked and the tail below the cut folded in.
        let mut max = if seg.settled_max.base_offset < offset {
            seg.settled_max
        } else {
            let rel = offset - seg.base_offset;
            let below = seg.index.times.iter().rev().find(|t| (t.rel as i64) < rel);
            below.map_or(MaxTimestamp::NONE, |t| {
                let at = seg.base_offset + t.rel as i64;
                MaxTimestamp {
                    timestamp: t.timestamp,
                    base_offset: at,
                    last_offset: at,
                }
            })
        };
        if scanned.base_offset >= seg.base_offset {
            max = max.max(scanned);
        }
        // What remains of the settled batches' maximum (never above the segment's, below).
        let settled = max;
        // The segment's largest timestamp over what remains: its settled batches and the tail
        // batches below the cut.
        self.tail.retain(|b| b.base_offset < offset);
        let seg = self.active();
        for b in self.tail.iter().filter(|b| b.segment == seg.base_offset) {
            max.fold(b.max_timestamp, b.base_offset, b.last_offset);
        }
        let file = self.active_file();
        let seg = self.segments.last_mut().unwrap();
        seg.index.truncate(offset, new_size, max);
        seg.settled_max = settled;
        assert!(seg.settled_max.timestamp <= seg.index.max.timestamp);
        seg.size = new_size;
        seg.next_offset = offset.max(seg.base_offset);
        seg.indexed_len = 0;
        // The index goes first: it must never describe bytes the cut replaces. Snapshots
        // taken above the cut describe batches that are gone.
        reqs.push(StorageRequest::DeleteSegmentIndex { file: file.clone() });
        reqs.push(StorageRequest::Truncate {
            file,
            len: new_size,
        });
        reqs.push(StorageRequest::DeleteProducerSnapshots {
            dir: self.dir.clone(),
            above: offset,
        });
        if self.last_snapshot.is_some_and(|s| s > offset) {
            self.last_snapshot = None;
        }
        // Postconditions: nothing at or past the cut is remembered, and no index vouches for it.
        assert!(self.tail.back().is_none_or(|b| b.last_offset < offset));
        assert_eq!(self.active().indexed_len, 0);
        let cut = self.log_end_offset > offset;
        self.log_end_offset = self.active().next_offset;
        assert_eq!(self.log_end_offset, offset);
        // The epochs that started in what was cut are gone with it (Kafka's truncateFromEnd;
        // a cut to the log end itself keeps an election's entry there).
        if cut {
            self.epochs.truncate_from_end(offset);
        }
        self.invariants();
        reqs
    }

    /// Throw the whole log away and start it again, empty, at `offset` above its end (Kafka's
    /// `truncateFullyAndStartAt`): a follower whose log ends below its leader's log start
    /// (retention or DeleteRecords moved it) can fetch nothing the leader still has, so it
    /// starts where the leader's log starts. The epoch cache goes too (no batch is left to
    /// carry an epoch). Returns the storage requests, in order: every segment deleted, oldest
    /// first, then every producer snapshot, then the new segment created. A crash between two
    /// leaves a suffix of the old log (or none, or the new empty one), never a log with a
    /// hole: the follower then finds itself below the leader's start again and repeats.
    pub fn restart_at(&mut self, offset: i64, now: Instant) -> Vec<StorageRequest> {
        assert!(
            offset > self.log_end_offset,
            "a restart moves the log forward, past everything it held"
        );
        let bases: Vec<i64> = self.segments.iter().map(|s| s.base_offset).collect();
        let mut reqs: Vec<StorageRequest> = bases
            .into_iter()
            .map(|b| StorageRequest::DeleteSegment {
                file: self.file_of(b),
            })
            .collect();
        reqs.push(StorageRequest::DeleteProducerSnapshots {
            dir: self.dir.clone(),
            above: -1,
        });
        self.segments = vec![Segment::new(offset, now)];
        reqs.push(StorageRequest::CreateSegment {
            file: self.file_of(offset),
            header: segment_header(offset),
        });
        self.log_start_offset = offset;
        self.log_end_offset = offset;
        self.tail.clear();
        self.snapshot_due = false;
        self.last_snapshot = None;
        self.epochs = LeaderEpochCache::default();
        // Postconditions: one empty segment at `offset`, and nothing remembered below it.
        assert_eq!(self.segments.len(), 1);
        assert!(self.epochs.is_empty() && self.tail.is_empty());
        self.invariants();
        reqs
    }
}
