//! A segment's sparse indexes, Kafka's `OffsetIndex` and `TimeIndex`, and their files.
//!
//! ## The offset index (`<base>.index`)
//! Kafka does not index every batch. As a segment grows it adds an entry (offset relative to
//! the segment's base, byte position) only once more than `index.interval.bytes` (a topic
//! config, 4 KiB by default, [`INDEX_INTERVAL_BYTES`]) were appended since the last entry. A
//! read looks up the greatest entry at or below its target and scans batch headers forward from
//! there; the scan never goes further than one interval plus one batch. So the index costs 8
//! bytes per interval of log, whatever the batches' sizes: a smaller interval buys shorter
//! scans with more entries (kept in memory, see [`crate::log`]). The interval is read at each
//! append, so a change applies from the next batch on; entries already made stay.
//!
//! ## The time index (`<base>.timeindex`)
//! At the same moments, if the largest timestamp seen in the segment grew since the last
//! entry, Kafka adds (largest timestamp so far, offset of the batch that first reached it).
//! Every batch before that offset has a smaller timestamp, so a search for timestamp `t` may
//! start scanning at the greatest entry whose timestamp is at most `t`.
//!
//! ## The files
//! Each file opens with a magic number and a format version, describes the first `covers`
//! bytes of its segment, and ends with a CRC-32 over everything before it. The time index also
//! carries the segment's largest timestamp over those bytes and the batch that holds it (the
//! answer to ListOffsets −3, KIP-734). Both are caches: [`decode_indexes`] refuses a file that
//! is damaged, from another format, or whose entries are not strictly increasing and inside
//! what it covers, and the segment is then scanned instead.

use crate::files::{FileError, FORMAT_VERSION, SEGMENT_HEADER_BYTES};
use bytes::{BufMut, Bytes, BytesMut};

/// Kafka's `index.interval.bytes` default: bytes appended between two offset-index entries.
pub const INDEX_INTERVAL_BYTES: u64 = crate::config::INDEX_INTERVAL_BYTES_DEFAULT as u64;
pub const OFFSET_INDEX_MAGIC: &[u8; 8] = b"GRGR.OIX";
pub const TIME_INDEX_MAGIC: &[u8; 8] = b"GRGR.TIX";
/// Magic, version, base offset, covered length, next offset, entry count.
const OFFSET_FRAME_BYTES: usize = 8 + 2 + 8 + 8 + 8 + 4;
/// Magic, version, base offset, covered length, max timestamp, its batch's base and last
/// offsets, entry count.
const TIME_FRAME_BYTES: usize = 8 + 2 + 8 + 8 + 8 + 8 + 8 + 4;
const OFFSET_ENTRY_BYTES: usize = 8;
const TIME_ENTRY_BYTES: usize = 12;

/// One offset-index entry: a batch starting `rel` offsets after the segment base, at byte
/// `position` of the segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    pub rel: u32,
    pub position: u32,
}

/// One time-index entry: the largest timestamp so far, and the batch (relative offset) that
/// first reached it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub rel: u32,
}

/// The largest timestamp of (a prefix of) a segment: the timestamp, the base and the last
/// offset of the first batch that carries it. `timestamp == -1` means none yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxTimestamp {
    pub timestamp: i64,
    pub base_offset: i64,
    pub last_offset: i64,
}

impl MaxTimestamp {
    pub const NONE: MaxTimestamp = MaxTimestamp {
        timestamp: -1,
        base_offset: -1,
        last_offset: -1,
    };
    /// Fold in a batch; only a strictly larger timestamp moves it, so it names the first batch
    /// that reached the maximum.
    pub fn fold(&mut self, timestamp: i64, base_offset: i64, last_offset: i64) {
        if timestamp > self.timestamp {
            *self = MaxTimestamp {
                timestamp,
                base_offset,
                last_offset,
            };
        }
        assert!(self.timestamp >= timestamp);
    }
    pub fn max(self, other: MaxTimestamp) -> MaxTimestamp {
        if other.timestamp > self.timestamp {
            other
        } else {
            self
        }
    }
}

/// The sparse indexes of one segment, and the state that decides the next entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparseIndex {
    pub base_offset: i64,
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
    /// Bytes appended since the last offset entry (or the segment header), Kafka's
    /// `bytesSinceLastIndexEntry`.
    pub bytes_since_entry: u64,
    /// Largest timestamp so far, over every batch of the segment.
    pub max: MaxTimestamp,
}

impl SparseIndex {
    pub fn new(base_offset: i64) -> SparseIndex {
        SparseIndex {
            base_offset,
            offsets: Vec::new(),
            times: Vec::new(),
            bytes_since_entry: 0,
            max: MaxTimestamp::NONE,
        }
    }

    /// A batch was appended at `position` (Kafka's `LogSegment.append`): index it if more than
    /// `interval_bytes` (the topic's `index.interval.bytes`) were written since the last entry,
    /// then count its bytes.
    pub fn on_append(
        &mut self,
        base_offset: i64,
        last_offset: i64,
        position: u64,
        size: u64,
        max_timestamp: i64,
        interval_bytes: u64,
    ) {
        assert!(base_offset >= self.base_offset && last_offset >= base_offset);
        assert!(position >= SEGMENT_HEADER_BYTES);
        assert!(interval_bytes <= i32::MAX as u64, "a config's range");
        self.max.fold(max_timestamp, base_offset, last_offset);
        if self.bytes_since_entry > interval_bytes {
            let rel = self.rel(base_offset);
            let position = u32::try_from(position).expect("segments stay below 4 GiB");
            assert!(self
                .offsets
                .last()
                .is_none_or(|e| e.rel < rel && e.position < position));
            self.offsets.push(OffsetEntry { rel, position });
            self.add_time_entry();
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += size;
    }

    /// Add a time entry if the largest timestamp grew since the last one (also done when a
    /// segment is closed, as Kafka's `onBecomeInactiveSegment` does).
    pub fn add_time_entry(&mut self) {
        if self.max.timestamp >= 0
            && self
                .times
                .last()
                .is_none_or(|t| t.timestamp < self.max.timestamp)
        {
            let rel = self.rel(self.max.base_offset);
            assert!(self.times.last().is_none_or(|t| t.rel < rel));
            self.times.push(TimeEntry {
                timestamp: self.max.timestamp,
                rel,
            });
        }
    }

    fn rel(&self, offset: i64) -> u32 {
        u32::try_from(offset - self.base_offset).expect("a segment holds fewer than 2^32 offsets")
    }

    /// The greatest entry at or below `offset`, as (offset, position); the segment's first
    /// byte when none is.
    pub fn floor(&self, offset: i64) -> (i64, u64) {
        assert!(offset >= self.base_offset);
        let rel = offset - self.base_offset;
        let i = self.offsets.partition_point(|e| (e.rel as i64) <= rel);
        match i.checked_sub(1) {
            Some(i) => {
                let e = self.offsets[i];
                assert!(
                    e.rel as i64 <= rel,
                    "the floor entry is at or below the target"
                );
                (self.base_offset + e.rel as i64, e.position as u64)
            }
            None => (self.base_offset, SEGMENT_HEADER_BYTES),
        }
    }

    /// The position of the first entry above `offset`, if any: the batch holding `offset`
    /// starts before it.
    pub fn ceiling_position(&self, offset: i64) -> Option<u64> {
        let rel = offset - self.base_offset;
        let i = self.offsets.partition_point(|e| (e.rel as i64) <= rel);
        let ceiling = self.offsets.get(i).map(|e| e.position as u64);
        assert!(ceiling.is_none_or(|c| c > SEGMENT_HEADER_BYTES));
        ceiling
    }

    /// Where a search for the first batch with a timestamp at or after `ts` may start: the
    /// batch named by the greatest time entry at or below `ts`, or the segment's start.
    pub fn time_floor(&self, ts: i64) -> i64 {
        let i = self.times.partition_point(|t| t.timestamp <= ts);
        // Every entry from `i` on has a larger timestamp than the target.
        assert!(self.times.get(i).is_none_or(|t| t.timestamp > ts));
        match i.checked_sub(1) {
            Some(i) => self.base_offset + self.times[i].rel as i64,
            None => self.base_offset,
        }
    }

    /// Forget every entry at or above `offset` (a cut), keeping the state consistent with a
    /// segment that ends at `offset`, `size` bytes long. The maximum timestamp is passed in by
    /// the caller, who knows the batches that remain.
    pub fn truncate(&mut self, offset: i64, size: u64, max: MaxTimestamp) {
        let rel = offset - self.base_offset;
        self.offsets.retain(|e| (e.rel as i64) < rel);
        self.times
            .retain(|t| (t.rel as i64) < rel && t.timestamp <= max.timestamp);
        self.max = max;
        let last = self
            .offsets
            .last()
            .map_or(SEGMENT_HEADER_BYTES, |e| e.position as u64);
        assert!(last <= size);
        self.bytes_since_entry = size - last;
        assert!(self.offsets.iter().all(|e| (e.rel as i64) < rel.max(1)));
        assert!(self
            .times
            .last()
            .is_none_or(|t| t.timestamp <= self.max.timestamp));
    }

    /// Structural invariants, given the segment's size and next offset.
    pub fn check(&self, size: u64, next_offset: i64) {
        for w in self.offsets.windows(2) {
            assert!(
                w[0].rel < w[1].rel && w[0].position < w[1].position,
                "offset index increases"
            );
        }
        for w in self.times.windows(2) {
            assert!(
                w[0].timestamp < w[1].timestamp && w[0].rel < w[1].rel,
                "time index increases"
            );
        }
        for e in &self.offsets {
            assert!((e.position as u64) >= SEGMENT_HEADER_BYTES && (e.position as u64) < size);
            assert!(self.base_offset + (e.rel as i64) < next_offset);
        }
        for t in &self.times {
            assert!(self.base_offset + (t.rel as i64) < next_offset);
            assert!(t.timestamp <= self.max.timestamp);
        }
        let last = self
            .offsets
            .last()
            .map_or(SEGMENT_HEADER_BYTES, |e| e.position as u64);
        assert_eq!(
            last + self.bytes_since_entry,
            size,
            "bytes since the last entry"
        );
    }
}

/// Encode both index files of a segment whose first `covers` bytes hold offsets below
/// `next_offset`. Returns (`.index`, `.timeindex`).
pub fn encode_indexes(index: &SparseIndex, covers: u64, next_offset: i64) -> (Bytes, Bytes) {
    assert!(covers >= SEGMENT_HEADER_BYTES && next_offset >= index.base_offset);
    // Only a consistent index is ever written.
    index.check(covers, next_offset);
    let mut o = BytesMut::with_capacity(OFFSET_FRAME_BYTES + 4 + index.offsets.len() * 8);
    o.put_slice(OFFSET_INDEX_MAGIC);
    o.put_u16(FORMAT_VERSION);
    o.put_i64(index.base_offset);
    o.put_u64(covers);
    o.put_i64(next_offset);
    o.put_u32(index.offsets.len() as u32);
    for e in &index.offsets {
        o.put_u32(e.rel);
        o.put_u32(e.position);
    }
    let crc = crc32fast::hash(&o);
    o.put_u32(crc);
    let mut t = BytesMut::with_capacity(TIME_FRAME_BYTES + 4 + index.times.len() * 12);
    t.put_slice(TIME_INDEX_MAGIC);
    t.put_u16(FORMAT_VERSION);
    t.put_i64(index.base_offset);
    t.put_u64(covers);
    t.put_i64(index.max.timestamp);
    t.put_i64(index.max.base_offset);
    t.put_i64(index.max.last_offset);
    t.put_u32(index.times.len() as u32);
    for e in &index.times {
        t.put_i64(e.timestamp);
        t.put_u32(e.rel);
    }
    let crc = crc32fast::hash(&t);
    t.put_u32(crc);
    assert_eq!(
        o.len(),
        OFFSET_FRAME_BYTES + 4 + index.offsets.len() * OFFSET_ENTRY_BYTES
    );
    assert_eq!(
        t.len(),
        TIME_FRAME_BYTES + 4 + index.times.len() * TIME_ENTRY_BYTES
    );
    (o.freeze(), t.freeze())
}

/// What a valid pair of index files says about its segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedIndexes {
    pub index: SparseIndex,
    pub covers: u64,
    pub next_offset: i64,
}

/// Check a frame's magic, version and CRC; returns the body (without the CRC).
fn open_frame<'a>(bytes: &'a [u8], magic: &[u8; 8], frame: usize) -> Result<&'a [u8], String> {
    if bytes.len() < frame + 4 {
        return Err(FileError::Truncated.to_string());
    }
    if &bytes[..8] != magic {
        return Err(FileError::BadMagic.to_string());
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(FileError::UnsupportedVersion(version).to_string());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_be_bytes(crc.try_into().unwrap()) {
        return Err(FileError::Checksum.to_string());
    }
    Ok(body)
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Decode and check a segment's two index files against the segment (`expected_base`,
/// `file_len` bytes long). Any doubt is an error: the caller scans the segment instead.
pub fn decode_indexes(
    expected_base: i64,
    offset_file: &[u8],
    time_file: &[u8],
    file_len: u64,
) -> Result<DecodedIndexes, String> {
    let o = open_frame(offset_file, OFFSET_INDEX_MAGIC, OFFSET_FRAME_BYTES)?;
    let t = open_frame(time_file, TIME_INDEX_MAGIC, TIME_FRAME_BYTES)?;
    let (base, covers, next) = (be_i64(o, 10), be_i64(o, 18) as u64, be_i64(o, 26));
    let count = be_u32(o, 34) as usize;
    if base != expected_base || be_i64(t, 10) != expected_base {
        return Err(format!(
            "index base offset {base} != file name {expected_base}"
        ));
    }
    if be_i64(t, 18) as u64 != covers {
        return Err("the offset and time indexes cover different lengths".into());
    }
    if covers > file_len || covers < SEGMENT_HEADER_BYTES {
        return Err(format!(
            "index covers {covers} bytes but the segment has {file_len}"
        ));
    }
    if next < base || (covers == SEGMENT_HEADER_BYTES) != (next == base) {
        return Err(format!(
            "index next offset {next} does not fit its {covers} bytes"
        ));
    }
    if o.len() != OFFSET_FRAME_BYTES + count * OFFSET_ENTRY_BYTES {
        return Err(FileError::Truncated.to_string());
    }
    let max = MaxTimestamp {
        timestamp: be_i64(t, 26),
        base_offset: be_i64(t, 34),
        last_offset: be_i64(t, 42),
    };
    let tcount = be_u32(t, 50) as usize;
    if t.len() != TIME_FRAME_BYTES + tcount * TIME_ENTRY_BYTES {
        return Err(FileError::Truncated.to_string());
    }
    let mut index = SparseIndex::new(base);
    for e in o[OFFSET_FRAME_BYTES..].chunks_exact(OFFSET_ENTRY_BYTES) {
        index.offsets.push(OffsetEntry {
            rel: be_u32(e, 0),
            position: be_u32(e, 4),
        });
    }
    for e in t[TIME_FRAME_BYTES..].chunks_exact(TIME_ENTRY_BYTES) {
        index.times.push(TimeEntry {
            timestamp: be_i64(e, 0),
            rel: be_u32(e, 8),
        });
    }
    index.max = max;
    let in_range = |rel: u32| base + (rel as i64) < next;
    let offsets_ok = index
        .offsets
        .windows(2)
        .all(|w| w[0].rel < w[1].rel && w[0].position < w[1].position)
        && index.offsets.iter().all(|e| {
            in_range(e.rel)
                && (e.position as u64) >= SEGMENT_HEADER_BYTES
                && (e.position as u64) < covers
        });
    let times_ok = index
        .times
        .windows(2)
        .all(|w| w[0].timestamp < w[1].timestamp && w[0].rel < w[1].rel)
        && index
            .times
            .iter()
            .all(|t| in_range(t.rel) && t.timestamp <= max.timestamp);
    let max_ok = if max.timestamp < 0 {
        max == MaxTimestamp::NONE || (max.base_offset >= base && max.last_offset < next)
    } else {
        max.base_offset >= base && max.base_offset <= max.last_offset && max.last_offset < next
    };
    if !(offsets_ok && times_ok && max_ok) {
        return Err("index entries out of order or outside the segment".into());
    }
    let last = index
        .offsets
        .last()
        .map_or(SEGMENT_HEADER_BYTES, |e| e.position as u64);
    index.bytes_since_entry = covers - last;
    index.check(covers, next);
    Ok(DecodedIndexes {
        index,
        covers,
        next_offset: next,
    })
}

/// The offset index file's name for a segment's base offset.
pub fn time_index_file_name(base_offset: i64) -> String {
    format!("{base_offset:020}.timeindex")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 batches of 1000 bytes, one offset each, timestamps rising then flat.
    fn filled() -> SparseIndex {
        filled_every(INDEX_INTERVAL_BYTES)
    }

    /// [`filled`] indexed every `interval_bytes` (`index.interval.bytes`).
    fn filled_every(interval_bytes: u64) -> SparseIndex {
        let mut ix = SparseIndex::new(50);
        for i in 0..100u64 {
            let ts = (i as i64).min(60) * 10;
            ix.on_append(
                50 + i as i64,
                50 + i as i64,
                SEGMENT_HEADER_BYTES + i * 1000,
                1000,
                ts,
                interval_bytes,
            );
        }
        ix
    }

    #[test]
    fn entries_are_sparse_and_lookups_find_the_floor() {
        let ix = filled();
        // An entry every fifth batch: 4 KiB is passed after five 1000-byte batches.
        assert_eq!(ix.offsets.len(), 19);
        assert_eq!(
            ix.offsets[0],
            OffsetEntry {
                rel: 5,
                position: 32 + 5000
            }
        );
        ix.check(SEGMENT_HEADER_BYTES + 100_000, 150);
        assert_eq!(ix.floor(50), (50, SEGMENT_HEADER_BYTES));
        assert_eq!(ix.floor(54), (50, SEGMENT_HEADER_BYTES));
        assert_eq!(ix.floor(55), (55, 32 + 5000));
        assert_eq!(ix.floor(63), (60, 32 + 10_000));
        assert_eq!(ix.ceiling_position(63), Some(32 + 15_000));
        assert_eq!(ix.floor(149), (145, 32 + 95_000));
        assert_eq!(ix.ceiling_position(149), None);
    }

    /// `index.interval.bytes` sets the density: more than an interval between entries, so
    /// 1000-byte batches get an entry every batch at 0 and 999, every second at 1000, never
    /// above 100 000 bytes; lookups stay right at every density.
    #[test]
    fn a_smaller_interval_gives_more_entries() {
        for (interval, entries) in [(0, 99), (999, 99), (1000, 49), (2500, 33), (100_000, 0)] {
            let ix = filled_every(interval);
            assert_eq!(ix.offsets.len(), entries, "interval {interval}");
            ix.check(SEGMENT_HEADER_BYTES + 100_000, 150);
            for target in [50, 51, 99, 149] {
                let (at, position) = ix.floor(target);
                assert!(at <= target && target - at <= 1 + interval as i64 / 1000);
                assert_eq!(position, SEGMENT_HEADER_BYTES + (at - 50) as u64 * 1000);
            }
        }
        assert!(filled_every(0).times.len() > filled().times.len());
    }

    #[test]
    fn time_entries_record_growth_and_lookups_start_early_enough() {
        let ix = filled();
        // Timestamps grow until batch 60, then stay at 600: entries stop growing there.
        assert_eq!(ix.times.last().unwrap().timestamp, 600);
        assert_eq!(
            ix.max,
            MaxTimestamp {
                timestamp: 600,
                base_offset: 110,
                last_offset: 110
            }
        );
        // Every batch before the start has a smaller timestamp than the target.
        for ts in [0, 5, 10, 99, 250, 600, 700] {
            let start = ix.time_floor(ts);
            let first_at_or_after = (0..100)
                .find(|i: &i64| (*i).min(60) * 10 >= ts)
                .map(|i| 50 + i);
            if let Some(f) = first_at_or_after {
                assert!(start <= f, "ts {ts}: start {start} past the answer {f}");
            }
        }
    }

    #[test]
    fn files_round_trip_and_refuse_damage() {
        let ix = filled();
        let covers = SEGMENT_HEADER_BYTES + 100_000;
        let (o, t) = encode_indexes(&ix, covers, 150);
        let d = decode_indexes(50, &o, &t, covers).unwrap();
        assert_eq!(d.index, ix);
        assert_eq!((d.covers, d.next_offset), (covers, 150));
        assert!(
            decode_indexes(51, &o, &t, covers).is_err(),
            "another segment's index"
        );
        assert!(
            decode_indexes(50, &o, &t, covers - 1).is_err(),
            "longer than its segment"
        );
        for at in [0, 9, 20, 40, o.len() - 1] {
            let mut bad = o.to_vec();
            bad[at] ^= 0x10;
            assert!(
                decode_indexes(50, &bad, &t, covers).is_err(),
                "flip at {at}"
            );
        }
        let mut bad = t.to_vec();
        bad[60] ^= 1;
        assert!(decode_indexes(50, &o, &bad, covers).is_err());
        let mut shorter = SparseIndex::new(50);
        for i in 0..99u64 {
            let ts = (i as i64).min(60) * 10;
            shorter.on_append(
                50 + i as i64,
                50 + i as i64,
                SEGMENT_HEADER_BYTES + i * 1000,
                1000,
                ts,
                INDEX_INTERVAL_BYTES,
            );
        }
        let (o2, _) = encode_indexes(&shorter, covers - 1000, 149);
        assert!(
            decode_indexes(50, &o2, &t, covers).is_err(),
            "files of two moments"
        );
    }
}
