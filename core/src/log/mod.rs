//! The partition log: Kafka's append-only sequence of record batches, split into segments.
//!
//! ## Safety properties
//! * **Dense offsets.** Every batch's base offset is the previous batch's last offset + 1; the
//!   log end offset (LEO) is the next offset to assign. Checked by [`PartitionLog::invariants`].
//! * **Nothing acknowledged is truncated.** Only [`PartitionLog::truncate_to`] cuts the log, and
//!   the broker calls it only for writes that failed (never acknowledged) and, at recovery, for a
//!   torn tail (never synced), and for a follower cutting a log that diverged from its
//!   leader's (KIP-101; `broker/replica/truncation.rs`), which never cuts below the leader's
//!   high watermark unless its own batch straddles the point of divergence.
//! * **The high watermark never goes backwards** while the broker runs; consumers read below it.
//! * **Memory does not grow with the number of batches.** Nothing here is kept per batch,
//!   except for the *unsettled tail* (below).
//!
//! ## What lives where
//! The bytes live in segment files, reached only through storage requests. In memory, each
//! segment keeps its base offset, size, next offset and its **sparse indexes**
//! ([`index::SparseIndex`]), as Kafka's `.index` and `.timeindex` files hold them: an offset
//! entry per `index.interval.bytes` appended (a topic config, 4 KiB by default,
//! [`index::INDEX_INTERVAL_BYTES`]) and a time entry when the segment's largest timestamp grew. That costs about 8–20 bytes per
//! 4 KiB of log (0.5 %), whatever the batch sizes. Closed segments keep their entries in memory
//! rather than loading them lazily: Kafka memory-maps them, which puts the same bytes in the
//! page cache; a lazy load would add a storage read to the first fetch of an old segment, and
//! at 10 GB of log the entries are a few megabytes.
//!
//! A read looks up the greatest index entry at or below its target and scans batch headers
//! forward ([`read`]): the scan is a storage read whose bytes come back as an input, so the
//! core stays sans-IO. ListOffsets by timestamp starts from the time index the same way.
//!
//! The **unsettled tail**: the batches appended by this run that consumers cannot see yet
//! (at or above `min(high watermark, written end)`) are kept exactly, with positions and
//! timestamps. A cut after a failed write lands inside it (the broker cuts back to what was
//! written, which is at least the high watermark), ListOffsets −3 must skip batches above the
//! high watermark, and a consumer at the end reads from an exact position. It holds only the
//! writes in flight and the group-commit window, never the history; [`PartitionLog::settle`]
//! drops what became visible.
//!
//! ## Files and recovery
//! Each segment's indexes are written to storage ([`StorageRequest::WriteSegmentIndex`]) when
//! the segment is closed (a roll), every [`INDEX_CHECKPOINT_BYTES`] as the active segment grows,
//! and at clean shutdown; the request makes the segment durable first, so an index never
//! vouches for bytes a power loss could take, and a cut deletes the index before cutting. The
//! idempotent producers' state is snapshotted at the same moments
//! ([`StorageRequest::WriteProducerSnapshot`], Kafka's `ProducerStateManager`). At start
//! ([`recover`]) a segment whose index files are valid is not read, except for the bytes past
//! what they cover, and producer state is the latest valid snapshot plus a replay of the
//! batches after it: after a clean shutdown no segment data is read, after a crash only the
//! tail since the last checkpoint. Indexes and snapshots are caches: missing, damaged or
//! inconsistent ones are ignored and rebuilt from the segments.

pub mod cleaner;
pub mod epochs;
pub mod index;
pub mod read;
pub mod recover;
mod truncate;

use crate::batch::BatchHeader;
use crate::files::{segment_header, SEGMENT_HEADER_BYTES};
use crate::io::{PartitionDir, SegmentFile, StorageRequest};
use crate::time::Instant;
use bytes::Bytes;
pub use epochs::LeaderEpochCache;
use index::{encode_indexes, MaxTimestamp, SparseIndex};
pub use read::{advance, Goal, ReadPlan, ReadStep};
use std::collections::VecDeque;

/// How many bytes the active segment may grow past what its index files cover before they
/// (and a producer snapshot) are written again: after a crash, recovery scans at most this
/// much per partition.
pub const INDEX_CHECKPOINT_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct Segment {
    pub base_offset: i64,
    /// Bytes in the file, header included (counting writes issued but not yet completed).
    pub size: u64,
    pub created: Instant,
    /// The offset after the segment's last batch (its base offset while empty).
    next_offset: i64,
    index: SparseIndex,
    /// The largest timestamp among the segment's settled batches (not in the tail).
    settled_max: MaxTimestamp,
    /// How many bytes of the segment its index files on storage cover (0: none).
    indexed_len: u64,
}

impl Segment {
    fn new(base_offset: i64, created: Instant) -> Segment {
        Segment {
            base_offset,
            size: SEGMENT_HEADER_BYTES,
            created,
            next_offset: base_offset,
            index: SparseIndex::new(base_offset),
            settled_max: MaxTimestamp::NONE,
            indexed_len: 0,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.next_offset == self.base_offset
    }
    pub fn max_timestamp(&self) -> i64 {
        self.index.max.timestamp
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn index(&self) -> &SparseIndex {
        &self.index
    }
    /// The request that writes this segment's index files, if those on storage do not cover
    /// all of it yet (an empty segment gets them too, so a clean restart need not read it).
    fn index_request(&mut self, file: SegmentFile) -> Option<StorageRequest> {
        if self.indexed_len == self.size {
            return None;
        }
        assert!(self.indexed_len < self.size);
        self.indexed_len = self.size;
        let (index, time_index) = encode_indexes(&self.index, self.size, self.next_offset);
        Some(StorageRequest::WriteSegmentIndex {
            file,
            covers: self.size,
            index,
            time_index,
        })
    }
}

/// A batch this run appended that consumers cannot see yet (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub position: u64,
    pub size: u64,
    pub max_timestamp: i64,
    /// The base offset of the segment that holds it.
    pub segment: i64,
}

/// The topic's settings an append follows: the limits that decide when a segment rolls
/// (`segment.bytes`, `segment.ms`), and how densely it is indexed (`index.interval.bytes`).
#[derive(Clone, Copy, Debug)]
pub struct RollPolicy {
    pub segment_bytes_max: u64,
    pub segment_age_ns_max: u64,
    pub index_interval_bytes: u64,
}

#[derive(Debug)]
pub struct PartitionLog {
    pub dir: PartitionDir,
    segments: Vec<Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
    tail: VecDeque<TailBatch>,
    /// A roll or an index checkpoint happened: a producer snapshot is due.
    snapshot_due: bool,
    /// The offset of the newest producer snapshot on storage, if known.
    last_snapshot: Option<i64>,
    /// Which leader epoch wrote which offsets (KIP-101): kept in step with every append, cut
    /// and start move below, persisted in the producer snapshots (see [`epochs`]).
    epochs: LeaderEpochCache,
}

impl PartitionLog {
    /// A new, empty log. Returns the storage request that creates its first segment.
    pub fn create(dir: PartitionDir, now: Instant) -> (PartitionLog, StorageRequest) {
        let log = PartitionLog::from_segments(dir.clone(), vec![Segment::new(0, now)]);
        let req = StorageRequest::CreateSegment {
            file: SegmentFile {
                dir,
                base_offset: 0,
            },
            header: segment_header(0),
        };
        (log, req)
    }

    fn from_segments(dir: PartitionDir, segments: Vec<Segment>) -> PartitionLog {
        assert!(!segments.is_empty());
        let log = PartitionLog {
            dir,
            log_start_offset: segments[0].base_offset,
            log_end_offset: segments.last().unwrap().next_offset,
            segments,
            tail: VecDeque::new(),
            snapshot_due: false,
            last_snapshot: None,
            epochs: LeaderEpochCache::default(),
        };
        log.invariants();
        log
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }
    /// How many batches the unsettled tail holds (bounded by the writes in flight).
    pub fn tail_len(&self) -> usize {
        self.tail.len()
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }
    pub fn active_file(&self) -> SegmentFile {
        self.file_of(self.active().base_offset)
    }
    fn active(&self) -> &Segment {
        self.segments.last().expect("a log always has a segment")
    }
    pub fn file_of(&self, base_offset: i64) -> SegmentFile {
        SegmentFile {
            dir: self.dir.clone(),
            base_offset,
        }
    }

    /// Append a validated batch. `batch` must already carry its assigned base offset, which must
    /// equal the log end offset. Returns the storage requests, in order: possibly a roll
    /// (index the closed segment, create the next), then the write, then possibly an index
    /// checkpoint.
    pub fn append(
        &mut self,
        batch: Bytes,
        header: &BatchHeader,
        now: Instant,
        roll: RollPolicy,
    ) -> Vec<StorageRequest> {
        assert_eq!(header.base_offset, self.log_end_offset, "appends are dense");
        assert_eq!(header.size, batch.len());
        // A batch carries the epoch of the leader that wrote it: never one below the latest
        // here (a replica truncates before it appends an older leader's batches), and a higher
        // one starts a new epoch at this batch (KIP-101).
        let epoch = header.partition_leader_epoch;
        if let Err(refused) = self.epochs.assign(epoch, header.base_offset) {
            panic!("an append in an older leader epoch: {refused}");
        }
        let mut reqs = Vec::with_capacity(2);
        let active = self.active();
        let too_big = active.size + batch.len() as u64 > roll.segment_bytes_max;
        let too_old = now.saturating_since(active.created).0 > roll.segment_age_ns_max;
        if !active.is_empty() && (too_big || too_old) {
            reqs.extend(self.roll(now));
        }
        let file = self.active_file();
        let seg = self.segments.last_mut().unwrap();
        let position = seg.size;
        let size = batch.len() as u64;
        assert!(
            position + size <= u32::MAX as u64,
            "a segment stays below 4 GiB"
        );
        seg.index.on_append(
            header.base_offset,
            header.last_offset(),
            position,
            size,
            header.max_timestamp,
            roll.index_interval_bytes,
        );
        seg.size += size;
        seg.next_offset = header.next_offset();
        self.tail.push_back(TailBatch {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            position,
            size,
            max_timestamp: header.max_timestamp,
            segment: seg.base_offset,
        });
        assert!(seg.size <= roll.segment_bytes_max.max(SEGMENT_HEADER_BYTES + size));
        self.log_end_offset = header.next_offset();
        assert!(
            self.log_end_offset > header.base_offset,
            "a batch holds a record"
        );
        reqs.push(StorageRequest::Append {
            file: file.clone(),
            position,
            data: batch,
        });
        // The index follows the write it covers (storage requests run in order).
        if seg.size - seg.indexed_len >= INDEX_CHECKPOINT_BYTES {
            reqs.extend(seg.index_request(file));
            self.snapshot_due = true;
        }
        reqs
    }

    /// At clean shutdown: the request that writes the active segment's index files, so the
    /// next start reads no segment data (None if those on storage already cover it).
    pub fn shutdown_index(&mut self) -> Option<StorageRequest> {
        let file = self.active_file();
        self.segments.last_mut().unwrap().index_request(file)
    }

    /// The producer snapshot to write now, if one is due (after a roll or an index
    /// checkpoint) or `force`d (clean shutdown), taken at the log end: `encode(offset)` must
    /// return the producer state after every batch below `offset`.
    pub fn snapshot_request(
        &mut self,
        force: bool,
        encode: impl FnOnce(i64) -> Bytes,
    ) -> Option<StorageRequest> {
        if !(force || self.snapshot_due) || self.last_snapshot == Some(self.log_end_offset) {
            self.snapshot_due = false;
            return None;
        }
        self.snapshot_due = false;
        let offset = self.log_end_offset;
        assert!(offset >= self.log_start_offset);
        assert!(
            self.last_snapshot.is_none_or(|s| s < offset),
            "snapshots move forward"
        );
        // Keep the previous snapshot too (a fallback if this one is lost), no older ones.
        let delete_below = self.last_snapshot.unwrap_or(0).min(offset);
        self.last_snapshot = Some(offset);
        Some(StorageRequest::WriteProducerSnapshot {
            dir: self.dir.clone(),
            segment: self.active_file(),
            offset,
            data: encode(offset),
            delete_below,
        })
    }

    /// Start a new segment now if the active one holds anything (used before writing a
    /// snapshot that later lets every older segment go).
    pub fn roll(&mut self, now: Instant) -> Vec<StorageRequest> {
        if self.active().is_empty() {
            return Vec::new();
        }
        // Close the active segment: its final time entry (Kafka's `onBecomeInactiveSegment`),
        // then its index files (which make it durable first).
        let closing = self.active_file();
        let active = self.segments.last_mut().unwrap();
        active.index.add_time_entry();
        let mut reqs: Vec<StorageRequest> = active.index_request(closing).into_iter().collect();
        let base = self.log_end_offset;
        assert!(
            base > active.base_offset,
            "the closed segment holds a batch"
        );
        self.segments.push(Segment::new(base, now));
        self.snapshot_due = true;
        reqs.push(StorageRequest::CreateSegment {
            file: self.file_of(base),
            header: segment_header(base),
        });
        reqs
    }

    /// Batches below `offset` became visible (the broker passes the lower of the high
    /// watermark and the written end): they leave the unsettled tail.
    pub fn settle(&mut self, offset: i64) {
        while let Some(b) = self.tail.front().copied() {
            if b.last_offset >= offset {
                break;
            }
            self.tail.pop_front();
            if let Some(seg) = self
                .segments
                .iter_mut()
                .find(|s| s.base_offset == b.segment)
            {
                seg.settled_max
                    .fold(b.max_timestamp, b.base_offset, b.last_offset);
            }
        }
        assert!(self.tail.front().is_none_or(|b| b.last_offset >= offset));
        assert!(self
            .tail
            .back()
            .is_none_or(|b| b.last_offset < self.log_end_offset));
    }

    /// Forget the tail batches wholly below `offset` (a batch holding `offset` stays).
    fn drop_tail_below(&mut self, offset: i64) {
        while self.tail.front().is_some_and(|b| b.last_offset < offset) {
            self.tail.pop_front();
        }
    }

    /// Move the log start offset up to `offset` (DeleteRecords, KIP-107): records below it are
    /// never served again, and every segment wholly below it (never the active one) is
    /// deleted. `offset` may fall inside a segment, even inside a batch: a fetch at the new
    /// start gets the batch holding it, and the consumer skips the records before it, as with
    /// any fetch that starts inside a batch. Returns the segment deletions, oldest first.
    ///
    /// The caller persists the new start (in `partition.meta`) before these deletions are
    /// carried out, so a restart never finds segments gone and the start not moved; the
    /// reverse (start moved, segments still there) is finished by recovery with this same
    /// function.
    pub fn advance_log_start(&mut self, offset: i64) -> Vec<StorageRequest> {
        assert!(
            offset > self.log_start_offset && offset <= self.log_end_offset,
            "the log start moves up, never past the log end"
        );
        let mut reqs = Vec::new();
        while self.segments.len() > 1 && self.segments[1].base_offset <= offset {
            let seg = self.segments.remove(0);
            reqs.push(StorageRequest::DeleteSegment {
                file: self.file_of(seg.base_offset),
            });
        }
        self.log_start_offset = offset;
        self.drop_tail_below(offset);
        self.epochs.truncate_from_start(offset);
        // Postconditions: the first segment holds the start (or ends at it, when it is the
        // active one and the start is the log end), and nothing wholly below it is kept.
        assert!(self.segments[0].base_offset <= offset);
        assert!(self.segments.len() == 1 || self.segments[1].base_offset > offset);
        self.invariants();
        reqs
    }

    /// Delete every segment entirely below `offset`, which must be a segment's base offset.
    /// The log then starts at `offset`.
    pub fn delete_before(&mut self, offset: i64) -> Vec<StorageRequest> {
        assert!(
            self.segments.iter().any(|s| s.base_offset == offset),
            "deletion at a segment boundary"
        );
        let mut reqs = Vec::new();
        while self.segments[0].base_offset < offset {
            let seg = self.segments.remove(0);
            reqs.push(StorageRequest::DeleteSegment {
                file: self.file_of(seg.base_offset),
            });
        }
        self.log_start_offset = offset;
        self.drop_tail_below(offset);
        self.epochs.truncate_from_start(offset);
        assert!(self.tail.front().is_none_or(|b| b.base_offset >= offset));
        assert_eq!(self.segments[0].base_offset, offset);
        self.invariants();
        reqs
    }

    /// Files written since offset `from`: the ones a sync must cover to make everything from
    /// `from` to the log end durable.
    pub fn files_since(&self, from: i64) -> Vec<SegmentFile> {
        self.segments
            .iter()
            .filter(|s| s.next_offset > from || s.base_offset >= from)
            .map(|s| self.file_of(s.base_offset))
            .collect()
    }

    /// The exact byte position of the batch starting at `offset` in segment `seg`, if known
    /// without reading: the segment's start or end, an index entry, or a tail batch.
    fn exact_position(&self, seg: &Segment, offset: i64) -> Option<u64> {
        if offset == seg.base_offset {
            return Some(SEGMENT_HEADER_BYTES);
        }
        if offset == seg.next_offset {
            return Some(seg.size);
        }
        let (o, p) = seg.index.floor(offset);
        if o == offset {
            return Some(p);
        }
        let i = self.tail.partition_point(|b| b.base_offset < offset);
        let found = self
            .tail
            .get(i)
            .filter(|b| b.base_offset == offset && b.segment == seg.base_offset);
        assert!(found.is_none_or(|b| b.position + b.size <= seg.size));
        found.map(|b| b.position)
    }

    /// The greatest known batch boundary at or below `offset` in `seg`: (offset, position).
    fn floor(&self, seg: &Segment, offset: i64) -> (i64, u64) {
        let (mut o, mut p) = seg.index.floor(offset);
        let i = self.tail.partition_point(|b| b.base_offset <= offset);
        if let Some(b) = i.checked_sub(1).map(|i| self.tail[i]) {
            if b.segment == seg.base_offset && b.base_offset > o {
                (o, p) = (b.base_offset, b.position);
            }
        }
        assert!(o <= offset && p >= SEGMENT_HEADER_BYTES && p <= seg.size);
        (o, p)
    }

    /// Plan a fetch's first read at `offset`: whole batches, never past `upper` (the high
    /// watermark for consumers), at most `max_bytes` except that the first batch goes out whole
    /// when `whole_first` (KIP-74: a consumer must be able to make progress past a batch larger
    /// than its limit). Reads stay inside one segment, as Kafka's do. The read starts at the
    /// nearest known batch boundary at or below `offset`; [`advance`] finishes the job.
    pub fn plan_read(
        &self,
        offset: i64,
        upper: i64,
        max_bytes: u32,
        whole_first: bool,
    ) -> Option<ReadPlan> {
        if offset < self.log_start_offset || offset >= upper {
            return None;
        }
        let si = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .checked_sub(1)?;
        let seg = self.segments[si..]
            .iter()
            .find(|s| s.next_offset > offset)?;
        let start = offset.max(seg.base_offset);
        let (scan_offset, position) = self.floor(seg, start);
        if scan_offset >= upper {
            return None;
        }
        // The batch holding `start` begins before the next index entry; the answer ends
        // before `upper`'s position, or the segment's end.
        let ceiling = seg.index.ceiling_position(start).unwrap_or(seg.size);
        let upper_position = if upper >= seg.next_offset {
            seg.size
        } else {
            self.exact_position(seg, upper).unwrap_or(seg.size)
        };
        assert!(position < seg.size && ceiling <= seg.size && position <= upper_position);
        let want = (ceiling - position) + max_bytes as u64;
        let len = want.min(seg.size - position).min(u32::MAX as u64) as u32;
        assert!(scan_offset <= start && len > 0);
        assert!(
            position + len as u64 <= seg.size,
            "a read stays inside its segment"
        );
        Some(ReadPlan {
            file: self.file_of(seg.base_offset),
            position,
            len,
            scan_offset,
            upper,
            segment_end: seg.size,
            goal: Goal::Offset {
                offset: start,
                max_bytes,
                whole_first,
            },
            bytes_bound: (upper_position - position).min(max_bytes as u64),
        })
    }

    /// ListOffsets by timestamp, first step: a read that starts at or before the first batch
    /// below `upper` whose largest timestamp is at least `ts` (found through the time index of
    /// the first segment whose largest timestamp reaches `ts`), for [`advance`] to finish. The
    /// broker then answers with the first record at or after `ts` inside that batch
    /// ([`crate::batch::first_record_at_or_after`]), as Kafka does.
    pub fn offset_for_timestamp(&self, ts: i64, upper: i64) -> Option<ReadPlan> {
        self.offset_for_timestamp_after(ts, upper, i64::MIN)
    }

    /// [`PartitionLog::offset_for_timestamp`] among the segments based above `after`: where the
    /// search goes on when a segment that reaches `ts` held no batch at or above the log start
    /// that does (DeleteRecords moved the start past them).
    pub fn offset_for_timestamp_after(&self, ts: i64, upper: i64, after: i64) -> Option<ReadPlan> {
        let seg = self
            .segments
            .iter()
            .find(|s| s.base_offset > after && s.index.max.timestamp >= ts)?;
        let from = seg.index.time_floor(ts);
        assert!(from >= seg.base_offset && from < seg.next_offset);
        let (scan_offset, position) = self.floor(seg, from);
        if scan_offset >= upper {
            return None;
        }
        let want = seg.index.ceiling_position(from).unwrap_or(seg.size) - position
            + index::INDEX_INTERVAL_BYTES;
        assert!(scan_offset <= from && position < seg.size);
        Some(ReadPlan {
            file: self.file_of(seg.base_offset),
            position,
            len: want.min(seg.size - position).min(u32::MAX as u64) as u32,
            scan_offset,
            upper,
            segment_end: seg.size,
            // Records below the log start are skipped: DeleteRecords may have moved it inside
            // this segment (Kafka's `LogSegment.findOffsetByTimestamp` takes the same bound).
            goal: Goal::Timestamp {
                timestamp: ts,
                from: self.log_start_offset,
            },
            bytes_bound: 0,
        })
    }

    /// The batch holding the largest timestamp below `upper` (ListOffsets −3, KIP-734), as
    /// (offset of that batch's last record, timestamp); the earliest such batch on a tie.
    pub fn max_timestamp_offset(&self, upper: i64) -> Option<(i64, i64)> {
        let settled = self.segments.iter().map(|s| s.settled_max);
        let tail = self.tail.iter().map(|b| MaxTimestamp {
            timestamp: b.max_timestamp,
            base_offset: b.base_offset,
            last_offset: b.last_offset,
        });
        // A segment's maximum may belong to a batch below a log start that DeleteRecords moved
        // into it; such a batch is gone for clients, so it does not count (the segment's other
        // batches are then not considered either: a known imprecision until a rescan).
        let start = self.log_start_offset;
        let best = settled
            .chain(tail)
            .filter(|m| m.timestamp >= 0 && m.last_offset < upper && m.last_offset >= start)
            .max_by_key(|m| (m.timestamp, std::cmp::Reverse(m.last_offset)))
            .map(|m| (m.last_offset, m.timestamp));
        assert!(best.is_none_or(|(o, _)| o < upper && o >= self.log_start_offset));
        best
    }

    /// The reads that return every stored batch (the group coordinator loads its topic so).
    pub fn data_reads(&self) -> Vec<StorageRequest> {
        let data = self.segments.iter().filter(|s| !s.is_empty());
        data.map(|s| StorageRequest::Read {
            file: self.file_of(s.base_offset),
            position: SEGMENT_HEADER_BYTES,
            len: u32::try_from(s.size - SEGMENT_HEADER_BYTES).expect("segments below 4 GiB"),
        })
        .collect()
    }

    /// Retention (Kafka's `LogManager.cleanupLogs`): delete whole old segments, never the
    /// active one, never past `keep_from` (the high watermark: records not yet visible to
    /// consumers are not retention's to delete). Returns the deletions.
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        retention_ms: i64,
        retention_bytes: i64,
        keep_from: i64,
    ) -> Vec<StorageRequest> {
        let mut reqs = Vec::new();
        while self.segments.len() > 1 {
            let first = &self.segments[0];
            let next_base = self.segments[1].base_offset;
            if next_base > keep_from {
                break;
            }
            let expired = retention_ms >= 0
                && first.max_timestamp() >= 0
                && now_ms - first.max_timestamp() > retention_ms;
            let too_big =
                retention_bytes >= 0 && self.size_bytes() - first.size >= retention_bytes as u64;
            if !(expired || too_big) {
                break;
            }
            let seg = self.segments.remove(0);
            reqs.push(StorageRequest::DeleteSegment {
                file: self.file_of(seg.base_offset),
            });
            // A start DeleteRecords moved into the new first segment stays where it is.
            self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset);
            assert!(
                self.log_start_offset <= keep_from,
                "retention keeps what is not visible"
            );
        }
        let start = self.log_start_offset;
        self.drop_tail_below(start);
        self.epochs.truncate_from_start(start);
        assert!(
            !self.segments.is_empty(),
            "the active segment is never deleted"
        );
        reqs
    }

    /// Check the log's structural invariants. Panics on violation: a broken invariant is a bug.
    pub fn invariants(&self) {
        assert!(!self.segments.is_empty());
        assert!(self.log_start_offset <= self.log_end_offset);
        // The first segment holds the log start; DeleteRecords may have put it inside.
        assert!(
            self.segments[0].base_offset <= self.log_start_offset
                && self.log_start_offset <= self.segments[0].next_offset,
            "the log start lies in the first segment"
        );
        let mut next = self.segments[0].base_offset;
        for seg in &self.segments {
            assert_eq!(seg.base_offset, next, "segments are contiguous");
            assert!(seg.next_offset >= seg.base_offset);
            assert_eq!(
                seg.is_empty(),
                seg.size == SEGMENT_HEADER_BYTES,
                "empty means no bytes"
            );
            assert!(
                seg.indexed_len <= seg.size,
                "an index covers only stored bytes"
            );
            assert!(seg.settled_max.timestamp <= seg.index.max.timestamp);
            seg.index.check(seg.size, seg.next_offset);
            next = seg.next_offset;
        }
        assert_eq!(next, self.log_end_offset);
        // The tail: dense, packed inside its segments, ending at the log end.
        for w in self.tail.iter().zip(self.tail.iter().skip(1)) {
            assert_eq!(w.0.last_offset + 1, w.1.base_offset, "the tail is dense");
            assert!(w.0.segment < w.1.segment || w.0.position + w.0.size == w.1.position);
        }
        if let Some(last) = self.tail.back() {
            assert_eq!(
                last.last_offset + 1,
                self.log_end_offset,
                "the tail ends the log"
            );
            let seg = self.segments.iter().find(|s| s.base_offset == last.segment);
            assert!(seg.is_some_and(|s| last.position + last.size == s.size));
        }
        for b in &self.tail {
            assert!(b.last_offset >= self.log_start_offset && b.size >= 61);
        }
        assert!(self.last_snapshot.is_none_or(|s| s <= self.log_end_offset));
        self.epochs
            .check(self.log_start_offset, self.log_end_offset);
    }
}
