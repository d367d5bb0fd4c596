//! The partition log: Kafka's append-only sequence of record batches, split into segments.
//!
//! ## Safety properties
//! * **Dense offsets.** Every batch's base offset is the previous batch's last offset + 1; the
//!   log end offset (LEO) is the next offset to assign. Checked by [`PartitionLog::invariants`].
//! * **Nothing acknowledged is truncated.** Only [`PartitionLog::truncate_to`] cuts the log, and
//!   the broker calls it only for writes that failed (never acknowledged) and, at recovery, for a
//!   torn tail (never synced).
//! * **The high watermark never goes backwards** while the broker runs; consumers read below it.
//!
//! ## What lives where
//! The bytes live in segment files, reached only through storage requests. This struct keeps the
//! indexes in memory:
//! * an **offset index**: for every batch, its offsets, file position and size. Kafka keeps a
//!   sparse index (an entry every 4 KiB) in a memory-mapped file and scans from it; gregor keeps
//!   one entry per batch, so a fetch knows the exact byte range to read without scanning.
//! * a **time index**: per segment, an entry each time the largest timestamp seen grows, as
//!   Kafka's `.timeindex` does, so ListOffsets by timestamp binary-searches it.
//!
//! ## Index files
//! Each segment also has an index file on storage (`<base>.index`,
//! [`crate::files::encode_segment_index`]): the position and stored header of each batch in a
//! prefix of the segment. It lets a restart rebuild the in-memory indexes, and the idempotent
//! producer state, without reading segment data:
//! * a segment's index is written when the segment is closed (a roll), as the active segment
//!   grows (every [`INDEX_CHECKPOINT_BYTES`]), and at clean shutdown
//!   ([`PartitionLog::shutdown_index`]); so after a crash at most that many bytes per partition
//!   are scanned, and after a clean shutdown none;
//! * the request that writes it makes the segment durable first, so an index never vouches for
//!   bytes a power loss could take;
//! * a cut ([`PartitionLog::truncate_to`]) deletes the segment's index before cutting, so a stale
//!   index never describes bytes that were replaced;
//! * an index is a cache: at start one that is missing, damaged or disagrees with its segment is
//!   ignored, the segment is scanned, and the index of a closed segment is rewritten.

use crate::batch::BatchHeader;
use crate::batch::HEADER_BYTES;
use crate::files::{
    encode_segment_index, index_entry, segment_header, SegmentScan, INDEX_ENTRY_BYTES,
    SEGMENT_HEADER_BYTES,
};
use crate::io::{PartitionDir, SegmentFile, StorageRequest};
use crate::time::Instant;
use bytes::Bytes;

/// One batch in the offset index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchEntry {
    pub base_offset: i64,
    pub last_offset: i64,
    pub position: u64,
    pub size: u32,
    pub max_timestamp: i64,
}

#[derive(Clone, Debug)]
pub struct Segment {
    pub base_offset: i64,
    /// Bytes in the file, header included (counting writes issued but not yet completed).
    pub size: u64,
    pub created: Instant,
    pub batches: Vec<BatchEntry>,
    /// (largest timestamp so far, offset of the batch that set it), Kafka's time index.
    pub time_index: Vec<(i64, i64)>,
    /// The index-file entries of every batch, kept while the segment is active so its index
    /// can be written; dropped when it is closed. None also for a closed segment a cut made
    /// active again: it gets no index this run (the next start rebuilds one).
    index_entries: Option<Vec<u8>>,
    /// How many bytes of the segment its index file on storage covers (0: none).
    indexed_len: u64,
}

/// How many bytes the active segment may grow past what its index file covers before the
/// index is written again: after a crash, recovery scans at most this much per partition.
pub const INDEX_CHECKPOINT_BYTES: u64 = 16 * 1024 * 1024;

impl Segment {
    fn new(base_offset: i64, created: Instant) -> Segment {
        Segment {
            base_offset,
            size: SEGMENT_HEADER_BYTES,
            created,
            batches: Vec::new(),
            time_index: Vec::new(),
            index_entries: Some(Vec::new()),
            indexed_len: 0,
        }
    }
    /// The request that writes this segment's index file, if it has entries to write and the
    /// file on storage does not already cover them.
    fn index_request(&mut self, file: SegmentFile) -> Option<StorageRequest> {
        let entries = self.index_entries.as_ref()?;
        if self.batches.is_empty() || self.indexed_len == self.size {
            return None;
        }
        assert_eq!(entries.len(), self.batches.len() * INDEX_ENTRY_BYTES);
        assert!(self.indexed_len < self.size);
        self.indexed_len = self.size;
        Some(StorageRequest::WriteSegmentIndex {
            file,
            covers: self.size,
            index: encode_segment_index(self.base_offset, self.size, entries),
        })
    }
    pub fn max_timestamp(&self) -> i64 {
        self.time_index.last().map(|e| e.0).unwrap_or(-1)
    }
    fn push(&mut self, e: BatchEntry) {
        if e.max_timestamp > self.max_timestamp() {
            self.time_index.push((e.max_timestamp, e.base_offset));
        }
        self.batches.push(e);
    }
    pub fn next_offset(&self) -> i64 {
        self.batches
            .last()
            .map(|b| b.last_offset + 1)
            .unwrap_or(self.base_offset)
    }
}

/// A contiguous range of stored bytes to read for a fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadPlan {
    pub file: SegmentFile,
    pub position: u64,
    pub len: u32,
    pub first_offset: i64,
    pub next_offset: i64,
}

/// Limits that decide when a segment rolls.
#[derive(Clone, Copy, Debug)]
pub struct RollPolicy {
    pub segment_bytes_max: u64,
    pub segment_age_ns_max: u64,
}

#[derive(Debug)]
pub struct PartitionLog {
    pub dir: PartitionDir,
    segments: Vec<Segment>,
    log_start_offset: i64,
    log_end_offset: i64,
}

impl PartitionLog {
    /// A new, empty log. Returns the storage request that creates its first segment.
    pub fn create(dir: PartitionDir, now: Instant) -> (PartitionLog, StorageRequest) {
        let log = PartitionLog {
            dir: dir.clone(),
            segments: vec![Segment::new(0, now)],
            log_start_offset: 0,
            log_end_offset: 0,
        };
        let req = StorageRequest::CreateSegment {
            file: SegmentFile {
                dir,
                base_offset: 0,
            },
            header: segment_header(0),
        };
        (log, req)
    }

    /// Rebuild a log from scanned segments (recovery). Returns the log, the storage requests that
    /// repair it (cut a torn tail, drop segments after a gap, recreate a missing first segment)
    /// and a line for each repair, for the operator's log.
    pub fn recover(
        dir: PartitionDir,
        mut scans: Vec<SegmentScan>,
        now: Instant,
    ) -> (PartitionLog, Vec<StorageRequest>, Vec<String>) {
        scans.sort_by_key(|s| s.base_offset);
        let mut repairs = Vec::new();
        let mut notes = Vec::new();
        let mut segments: Vec<Segment> = Vec::new();
        let mut broken = false;
        for scan in scans {
            let file = SegmentFile {
                dir: dir.clone(),
                base_offset: scan.base_offset,
            };
            let expected = segments.last().map(|s| s.next_offset());
            if broken || expected.is_some_and(|e| e != scan.base_offset) {
                // A segment after a damaged one, or after a gap, cannot be trusted to continue
                // the offsets: drop it. (It was never acknowledged: the damage before it was.)
                notes.push(format!(
                    "{}: dropping segment {} after a damaged tail",
                    dir.dir_name(),
                    file.file_name()
                ));
                repairs.push(StorageRequest::DeleteSegment { file });
                continue;
            }
            if scan.valid_len < SEGMENT_HEADER_BYTES {
                notes.push(format!(
                    "{}: segment {} has an unreadable header ({}); rewriting it empty",
                    dir.dir_name(),
                    file.file_name(),
                    scan.tail_problem.as_deref().unwrap_or("?")
                ));
                repairs.push(StorageRequest::DeleteSegment { file: file.clone() });
                repairs.push(StorageRequest::CreateSegment {
                    file,
                    header: segment_header(scan.base_offset),
                });
                segments.push(Segment::new(scan.base_offset, now));
                broken = true;
                continue;
            }
            let mut seg = Segment::new(scan.base_offset, now);
            let mut entries = Vec::with_capacity(scan.batches.len() * INDEX_ENTRY_BYTES);
            for b in &scan.batches {
                seg.push(entry_of(&b.header, b.position));
                entries.extend_from_slice(&index_entry(b.position, &b.raw_header));
            }
            seg.index_entries = Some(entries);
            seg.size = scan.valid_len;
            assert!(scan.indexed_len <= scan.valid_len);
            seg.indexed_len = scan.indexed_len;
            if let Some(problem) = &scan.index_problem {
                notes.push(format!(
                    "{}: index of {} not used ({problem}); scanned the segment",
                    dir.dir_name(),
                    file.file_name()
                ));
            }
            if scan.valid_len < scan.file_len {
                notes.push(format!(
                    "{}: cutting {} bytes of torn or corrupt tail from {} ({})",
                    dir.dir_name(),
                    scan.file_len - scan.valid_len,
                    file.file_name(),
                    scan.tail_problem.as_deref().unwrap_or("?")
                ));
                repairs.push(StorageRequest::Truncate {
                    file,
                    len: scan.valid_len,
                });
                broken = true;
            }
            segments.push(seg);
        }
        if segments.is_empty() {
            let (log, req) = PartitionLog::create(dir, now);
            return (log, vec![req], notes);
        }
        // Closed segments keep no index entries in memory; one whose index file was missing,
        // damaged or short is given a new one (the request makes the scanned bytes durable
        // first). The active segment's index is written when it is due.
        let last = segments.len() - 1;
        for (i, seg) in segments.iter_mut().enumerate() {
            let file = SegmentFile {
                dir: dir.clone(),
                base_offset: seg.base_offset,
            };
            let due = i < last || seg.size - seg.indexed_len >= INDEX_CHECKPOINT_BYTES;
            if due {
                repairs.extend(seg.index_request(file));
            }
            if i < last {
                seg.index_entries = None;
            }
        }
        let log_start_offset = segments[0].base_offset;
        let log_end_offset = segments.last().unwrap().next_offset();
        let log = PartitionLog {
            dir,
            segments,
            log_start_offset,
            log_end_offset,
        };
        log.invariants();
        (log, repairs, notes)
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
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }
    pub fn active_file(&self) -> SegmentFile {
        self.file_of(
            self.segments
                .last()
                .expect("a log always has a segment")
                .base_offset,
        )
    }
    pub fn file_of(&self, base_offset: i64) -> SegmentFile {
        SegmentFile {
            dir: self.dir.clone(),
            base_offset,
        }
    }

    /// Append a validated batch. `batch` must already carry its assigned base offset, which must
    /// equal the log end offset. Returns the storage requests, in order: possibly a roll
    /// (create the next segment), then the write.
    pub fn append(
        &mut self,
        batch: Bytes,
        header: &BatchHeader,
        now: Instant,
        roll: RollPolicy,
    ) -> Vec<StorageRequest> {
        assert_eq!(header.base_offset, self.log_end_offset, "appends are dense");
        assert_eq!(header.size, batch.len());
        let mut reqs = Vec::with_capacity(2);
        let active = self.segments.last().expect("a log always has a segment");
        let too_big = active.size + batch.len() as u64 > roll.segment_bytes_max;
        let too_old = now.saturating_since(active.created).0 > roll.segment_age_ns_max;
        if !active.batches.is_empty() && (too_big || too_old) {
            reqs.extend(self.roll(now));
        }
        let seg = self.segments.last_mut().unwrap();
        let position = seg.size;
        seg.push(entry_of(header, position));
        if let Some(entries) = &mut seg.index_entries {
            entries.extend_from_slice(&index_entry(position, &batch[..HEADER_BYTES]));
        }
        seg.size += batch.len() as u64;
        assert!(
            seg.size
                <= roll
                    .segment_bytes_max
                    .max(SEGMENT_HEADER_BYTES + batch.len() as u64)
        );
        self.log_end_offset = header.next_offset();
        assert!(
            self.log_end_offset > header.base_offset,
            "a batch holds a record"
        );
        assert_eq!(seg.next_offset(), self.log_end_offset);
        let file = SegmentFile {
            dir: self.dir.clone(),
            base_offset: seg.base_offset,
        };
        reqs.push(StorageRequest::Append {
            file: file.clone(),
            position,
            data: batch,
        });
        // The index follows the write it covers (storage requests run in order).
        if seg.size - seg.indexed_len >= INDEX_CHECKPOINT_BYTES {
            reqs.extend(seg.index_request(file));
        }
        reqs
    }

    /// At clean shutdown: the request that writes the active segment's index, so the next start
    /// reads no segment data (None if the index on storage already covers it, or it has none).
    pub fn shutdown_index(&mut self) -> Option<StorageRequest> {
        let file = self.active_file();
        self.segments.last_mut().unwrap().index_request(file)
    }

    /// Start a new segment now if the active one holds anything (used before writing a
    /// snapshot that later lets every older segment go).
    pub fn roll(&mut self, now: Instant) -> Vec<StorageRequest> {
        if self
            .segments
            .last()
            .expect("a log always has a segment")
            .batches
            .is_empty()
        {
            return Vec::new();
        }
        // Close the active segment: write its index (which makes it durable first), then
        // forget the entries.
        let closing = self.active_file();
        let active = self.segments.last_mut().unwrap();
        let mut reqs: Vec<StorageRequest> = active.index_request(closing).into_iter().collect();
        active.index_entries = None;
        assert!(active.index_entries.is_none());
        let base = self.log_end_offset;
        assert!(
            base > active.base_offset,
            "the closed segment holds a batch"
        );
        self.segments.push(Segment::new(base, now));
        reqs.push(StorageRequest::CreateSegment {
            file: self.file_of(base),
            header: segment_header(base),
        });
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
        assert_eq!(self.segments[0].base_offset, offset);
        self.invariants();
        reqs
    }

    /// Files written since offset `from`: the ones a sync must cover to make everything from
    /// `from` to the log end durable.
    pub fn files_since(&self, from: i64) -> Vec<SegmentFile> {
        self.segments
            .iter()
            .filter(|s| s.next_offset() > from || s.base_offset >= from)
            .map(|s| self.file_of(s.base_offset))
            .collect()
    }

    /// Cut the log so that `offset` becomes the log end offset. `offset` must be a batch
    /// boundary at or above the log start offset. Returns the storage requests that make the
    /// files agree.
    pub fn truncate_to(&mut self, offset: i64) -> Vec<StorageRequest> {
        assert!(offset >= self.log_start_offset && offset <= self.log_end_offset);
        let mut reqs = Vec::new();
        // A segment starting at `offset` would be left empty: drop it too. This matters when a
        // roll's CreateSegment failed (a full disk): keeping that segment would direct every
        // later append at a file that does not exist (found by the simulator, seed 106).
        while self.segments.len() > 1 && self.segments.last().unwrap().base_offset >= offset {
            let seg = self.segments.pop().unwrap();
            reqs.push(StorageRequest::DeleteSegment {
                file: self.file_of(seg.base_offset),
            });
        }
        let dir = self.dir.clone();
        let seg = self.segments.last_mut().unwrap();
        let keep = seg.batches.partition_point(|b| b.base_offset < offset);
        assert!(
            keep == seg.batches.len() || seg.batches[keep].base_offset == offset,
            "truncation at a batch boundary"
        );
        seg.batches.truncate(keep);
        if let Some(entries) = &mut seg.index_entries {
            entries.truncate(keep * INDEX_ENTRY_BYTES);
        }
        seg.indexed_len = 0;
        seg.time_index.retain(|&(_, o)| o < offset);
        let new_size = seg
            .batches
            .last()
            .map(|b| b.position + b.size as u64)
            .unwrap_or(SEGMENT_HEADER_BYTES);
        seg.size = new_size;
        let file = SegmentFile {
            dir,
            base_offset: seg.base_offset,
        };
        // The index goes first: it must never describe bytes the cut replaces.
        reqs.push(StorageRequest::DeleteSegmentIndex { file: file.clone() });
        reqs.push(StorageRequest::Truncate {
            file,
            len: new_size,
        });
        self.log_end_offset = offset.max(seg.base_offset);
        assert_eq!(self.log_end_offset, offset);
        self.invariants();
        reqs
    }

    /// Plan a read starting at `offset`: whole batches, never past `upper` (the high watermark
    /// for consumers), at most `max_bytes` except that the first batch is always returned whole
    /// (KIP-74: a consumer must be able to make progress past a batch larger than its limit).
    /// Reads stay inside one segment, as Kafka's do.
    pub fn plan_read(&self, offset: i64, upper: i64, max_bytes: u32) -> Option<ReadPlan> {
        if offset < self.log_start_offset || offset >= upper {
            return None;
        }
        let si = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .checked_sub(1)?;
        for seg in &self.segments[si..] {
            let bi = seg.batches.partition_point(|b| b.last_offset < offset);
            if bi == seg.batches.len() {
                continue;
            }
            let first = seg.batches[bi];
            if first.last_offset >= upper {
                return None;
            }
            let mut len = first.size as u64;
            let mut next = first.last_offset + 1;
            for b in &seg.batches[bi + 1..] {
                if b.last_offset >= upper || len + b.size as u64 > max_bytes as u64 {
                    break;
                }
                len += b.size as u64;
                next = b.last_offset + 1;
            }
            // A fetch read starts at the batch holding the target, never past it, holds whole
            // batches below `upper` only, and stays inside its segment.
            assert!(
                first.base_offset <= offset.max(seg.base_offset) && first.last_offset >= offset
            );
            assert!(next <= upper && next > offset);
            assert!(first.position >= SEGMENT_HEADER_BYTES);
            assert!(
                first.position + len <= seg.size,
                "a read stays inside its segment"
            );
            assert!(len <= u32::MAX as u64);
            assert!(
                len == first.size as u64 || len <= max_bytes as u64,
                "KIP-74"
            );
            return Some(ReadPlan {
                file: self.file_of(seg.base_offset),
                position: first.position,
                len: len as u32,
                first_offset: first.base_offset,
                next_offset: next,
            });
        }
        None
    }

    /// ListOffsets by timestamp, first step: the first batch below `upper` whose largest
    /// timestamp is at least `ts`, found through the time index, as a plan to read exactly that
    /// batch, and the batch's largest timestamp. The broker reads it and answers with the first
    /// record at or after `ts` inside it ([`crate::batch::first_record_at_or_after`]), as Kafka
    /// does; the batch's first offset (at or before that record) is the fallback if it cannot be
    /// decoded.
    pub fn offset_for_timestamp(&self, ts: i64, upper: i64) -> Option<(ReadPlan, i64)> {
        for seg in &self.segments {
            if seg.max_timestamp() < ts {
                continue;
            }
            let ti = seg.time_index.partition_point(|&(t, _)| t < ts);
            let start = seg
                .time_index
                .get(ti)
                .map(|&(_, o)| o)
                .unwrap_or(seg.base_offset);
            // The time index's entry names a batch whose largest timestamp reaches `ts`, and
            // no earlier batch of the segment does (the entries record each growth).
            assert!(start >= seg.base_offset && start < seg.next_offset());
            let bi = seg.batches.partition_point(|b| b.base_offset < start);
            for b in &seg.batches[bi..] {
                if b.last_offset >= upper {
                    return None;
                }
                if b.max_timestamp >= ts {
                    assert!(b.base_offset >= self.log_start_offset);
                    assert!(b.position >= SEGMENT_HEADER_BYTES && b.position < seg.size);
                    let plan = ReadPlan {
                        file: self.file_of(seg.base_offset),
                        position: b.position,
                        len: b.size,
                        first_offset: b.base_offset,
                        next_offset: b.last_offset + 1,
                    };
                    return Some((plan, b.max_timestamp));
                }
            }
        }
        None
    }

    /// The batch holding the largest timestamp below `upper` (ListOffsets −3, KIP-734), as
    /// (offset of that batch's last record, timestamp).
    pub fn max_timestamp_offset(&self, upper: i64) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
        for seg in &self.segments {
            for b in &seg.batches {
                if b.last_offset >= upper {
                    break;
                }
                if best.is_none_or(|(_, t)| b.max_timestamp > t) {
                    best = Some((b.last_offset, b.max_timestamp));
                }
            }
        }
        best
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
            self.log_start_offset = self.segments[0].base_offset;
            assert!(
                self.log_start_offset <= keep_from,
                "retention keeps what is not visible"
            );
        }
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
        assert_eq!(self.segments[0].base_offset, self.log_start_offset);
        let mut next = self.log_start_offset;
        for seg in &self.segments {
            assert_eq!(seg.base_offset, next, "segments are contiguous");
            let mut pos = SEGMENT_HEADER_BYTES;
            for b in &seg.batches {
                assert_eq!(b.base_offset, next, "offsets are dense");
                assert!(b.last_offset >= b.base_offset);
                assert_eq!(b.position, pos, "batches are packed");
                pos += b.size as u64;
                next = b.last_offset + 1;
            }
            assert_eq!(seg.size, pos);
            // The time index records each growth of the largest timestamp, at the batch that
            // made it: strictly increasing in both timestamp and offset, inside the segment.
            for w in seg.time_index.windows(2) {
                assert!(w[0].0 < w[1].0 && w[0].1 < w[1].1, "time index increases");
            }
            for &(_, o) in &seg.time_index {
                assert!(
                    o >= seg.base_offset && o < next,
                    "time index inside its segment"
                );
            }
            let max_ts = seg
                .batches
                .iter()
                .map(|b| b.max_timestamp)
                .max()
                .unwrap_or(-1);
            assert!(seg.max_timestamp() == max_ts || max_ts < 0);
            assert!(
                seg.indexed_len <= seg.size,
                "an index covers only stored bytes"
            );
            if let Some(entries) = &seg.index_entries {
                assert_eq!(entries.len(), seg.batches.len() * INDEX_ENTRY_BYTES);
            }
        }
        let last = self.segments.len() - 1;
        assert!(
            self.segments[..last]
                .iter()
                .all(|s| s.index_entries.is_none()),
            "closed segments keep no index entries in memory"
        );
        assert_eq!(next, self.log_end_offset);
    }
}

fn entry_of(h: &BatchHeader, position: u64) -> BatchEntry {
    BatchEntry {
        base_offset: h.base_offset,
        last_offset: h.last_offset(),
        position,
        size: h.size as u32,
        max_timestamp: h.max_timestamp,
    }
}
