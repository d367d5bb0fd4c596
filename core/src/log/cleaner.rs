//! Log compaction (Kafka's `LogCleaner`, `cleanup.policy=compact`): keep, for every key, at
//! least its latest record.
//!
//! ## The guarantee (as Kafka states it)
//! A consumer that reads a compacted partition from the start sees **at least the final state
//! of every key**: for each key, its latest record, or, if that record is a *tombstone* (a null
//! value, a delete), the tombstone for `delete.retention.ms` after it was written, and then
//! nothing. It may see older values of a key too, always before the newer ones; offsets only
//! increase and the offset of a record never changes. Nothing at or above the high watermark
//! and nothing in the active segment is ever touched, so a consumer reading near the head sees
//! every record, as with `delete`.
//!
//! ## How a clean runs
//! The cleaner works on one partition at a time, in bounded steps (one read of at most
//! [`CLEAN_CHUNK_BYTES`] per step), driven by the broker through storage requests: nothing here
//! does I/O.
//! 1. **Map.** The *dirty* range (from the clean point the last clean reached, or the log
//!    start after a restart, to the end of the last closed segment below the high watermark
//!    and older than `min.compaction.lag.ms`) is read, and each key's latest offset put in an
//!    [`OffsetMap`]. The map is bounded ([`OFFSET_MAP_BYTES_MAX`]): when full, the clean stops
//!    at the batch that did not fit and the next clean goes on from there.
//! 2. **Rewrite.** Every closed segment from the log start to the map's end is read again and
//!    rewritten into `<base>.log.cleaned` ([`SegmentRewriter`]): a record is kept when its key
//!    has no later offset in the map; a tombstone is also dropped when its batch is older than
//!    `delete.retention.ms`.
//! 3. **Swap.** Once every write to `.cleaned` succeeded: fsync it, delete the old segment's
//!    index files, rename it to `<base>.log.swap` (from here recovery completes the swap), and
//!    rename that over `<base>.log`. A crash leaves either the old segment (a `.cleaned` file
//!    is discarded at start) or the new one (a `.swap` file is renamed into place at start),
//!    never a mix. New index files follow.
//!
//! ## Offsets stay dense in the file
//! Kafka keeps each rewritten v2 batch's base offset and last offset (`lastOffsetDelta`), so a
//! batch may end with offsets that hold no record; a batch left with no record at all is
//! dropped, leaving a gap. gregor's log keeps batches contiguous (every batch starts where the
//! previous one ended: the cheapest corruption check recovery has, since the base offset is
//! not under the CRC), so an emptied batch is instead *absorbed* by the previous kept batch of
//! the segment, whose `lastOffsetDelta` grows over it, when neither batch carries a producer
//! id. Otherwise (an idempotent producer's batch, a control batch, the first batch of a
//! segment) the emptied batch keeps its last record: an older value of some key, which the
//! guarantee allows. Clients see the same as with Kafka: a batch whose last offsets hold no
//! record, and a fetch at a removed offset answered with the batch that covers it.
//!
//! Because an idempotent producer's batch always keeps its header (base offset, last offset
//! delta, producer id, epoch and sequences), replaying the log rebuilds the same producer
//! state as before the clean: Kafka's rule "keep the last batch of every producer" holds
//! trivially, and idempotence survives a restart without a snapshot.
//!
//! A tombstone that would be dropped while an older value of its key was kept (to fill a
//! batch) is kept too, or the key would come back to life.
//!
//! Compressed batches are rewritten uncompressed (Kafka recompresses with the batch's codec;
//! the records are the same).
//!
//! ## What is not compacted
//! The active segment; anything at or above the high watermark; segments newer than
//! `min.compaction.lag.ms`; internal topics (`__consumer_offsets` keeps its own snapshot
//! scheme, [`crate::group`]); records without a key are refused at produce (INVALID_RECORD).

use super::index::SparseIndex;
use super::Segment;
use crate::batch::{BatchHeader, HEADER_BYTES, LOG_OVERHEAD};
use crate::files::{segment_header, SEGMENT_HEADER_BYTES};
use crate::io::StorageRequest;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};

/// Most bytes one step of a clean reads.
pub const CLEAN_CHUNK_BYTES: u64 = 1024 * 1024;

/// Most memory the key → latest offset map of one clean may take (keys plus a fixed cost per
/// entry); Kafka's `log.cleaner.dedupe.buffer.size` (128 MiB there, shared by its threads).
pub const OFFSET_MAP_BYTES_MAX: usize = 32 * 1024 * 1024;

/// What an entry costs beyond its key's bytes (the hash table's slot, the offset, the key's
/// header).
const ENTRY_OVERHEAD_BYTES: usize = 48;

/// One record of a batch, as the cleaner sees it: where it lies in the records section, its
/// offset delta, its key and whether its value is null (a tombstone).
#[derive(Clone, Copy, Debug)]
struct RecordView {
    start: usize,
    end: usize,
    offset_delta: i32,
    key: Option<(usize, usize)>,
    tombstone: bool,
}

fn varint(b: &[u8], at: &mut usize) -> Result<i64, String> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or("record cut short")?;
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            // Zigzag decoding (Kafka's `ByteUtils.readVarint` / `readVarlong`).
            return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
        }
    }
    Err("varint longer than 10 bytes".into())
}

/// Split a records section (uncompressed) into its `count` records. Records are a producer's
/// bytes that passed the CRC at append: anything inconsistent is reported, never asserted.
fn records(section: &[u8], count: i32) -> Result<Vec<RecordView>, String> {
    let mut out = Vec::with_capacity(count.max(0) as usize);
    let mut at = 0usize;
    for _ in 0..count {
        let start = at;
        let len = varint(section, &mut at)?;
        let end = at
            .checked_add(usize::try_from(len).map_err(|_| "negative record length")?)
            .filter(|e| *e <= section.len())
            .ok_or("record runs past its batch")?;
        let body = &section[..end];
        at += 1; // attributes
        varint(body, &mut at)?; // timestamp delta
        let offset_delta =
            i32::try_from(varint(body, &mut at)?).map_err(|_| "record offset delta overflows")?;
        let key_len = varint(body, &mut at)?;
        let key = if key_len < 0 {
            None
        } else {
            let k = (at, at + key_len as usize);
            if k.1 > end {
                return Err("record key runs past the record".into());
            }
            at = k.1;
            Some(k)
        };
        let value_len = varint(body, &mut at)?;
        out.push(RecordView {
            start,
            end,
            offset_delta,
            key,
            tombstone: value_len < 0,
        });
        at = end;
    }
    assert!(out.len() <= count.max(0) as usize);
    if at != section.len() {
        return Err(format!(
            "{} bytes after the batch's {count} records",
            section.len() - at
        ));
    }
    Ok(out)
}

/// The records section of a stored batch, decompressed if needed.
fn section_of(batch: &[u8], h: &BatchHeader) -> Result<Bytes, String> {
    let codec = match h.compression() {
        0 => return Ok(Bytes::copy_from_slice(&batch[HEADER_BYTES..h.size])),
        1 => kafka_protocol::records::Compression::Gzip,
        2 => kafka_protocol::records::Compression::Snappy,
        3 => kafka_protocol::records::Compression::Lz4,
        4 => kafka_protocol::records::Compression::Zstd,
        c => return Err(format!("unknown compression codec {c}")),
    };
    let mut raw = Bytes::copy_from_slice(&batch[HEADER_BYTES..h.size]);
    crate::batch::decompress(&mut raw, codec).map_err(|e| e.to_string())
}

/// Produce into a compacted topic: every record of the (verified) batch must have a key.
/// Returns why not, for the INVALID_RECORD answer (a batch whose records cannot be read is
/// refused too).
pub fn check_keys(batch: &[u8]) -> Result<(), String> {
    let h = BatchHeader::parse(batch).map_err(|e| e.to_string())?;
    let section = section_of(batch, &h)?;
    let recs = records(&section, h.records_count)?;
    // Kafka's `LogValidator` too: the records' offset deltas are 0, 1, 2, ... (the cleaner
    // relies on offsets growing inside a batch).
    if let Some(i) = (0..recs.len()).find(|i| recs[*i].offset_delta != *i as i32) {
        return Err(format!(
            "record {i} of the batch has offset delta {}",
            recs[i].offset_delta
        ));
    }
    if recs
        .last()
        .is_some_and(|r| r.offset_delta != h.last_offset_delta)
    {
        return Err("the last record's offset delta is not the batch's".into());
    }
    match recs.iter().position(|r| r.key.is_none()) {
        Some(i) => Err(format!(
            "record {i} of the batch has no key; a compacted topic cannot accept a record \
             without a key"
        )),
        None => Ok(()),
    }
}

/// Whether the records of a batch with this header carry keys the cleaner judges (control
/// batches are markers, kept as they are).
fn judged(h: &BatchHeader) -> bool {
    !h.is_control()
}

/// The latest offset of every key seen in the dirty range, in bounded memory.
#[derive(Debug, Default)]
pub struct OffsetMap {
    latest: BTreeMap<Bytes, i64>,
    bytes: usize,
}

impl OffsetMap {
    pub fn len(&self) -> usize {
        self.latest.len()
    }
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
    /// Memory the map accounts for.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    /// Put every keyed record of one stored batch in the map, or nothing if the batch's new
    /// keys would take the map past `bytes_max` (returns false: the dirty range ends here).
    pub fn add_batch(&mut self, batch: &[u8], bytes_max: usize) -> Result<bool, String> {
        let h = BatchHeader::parse(batch).map_err(|e| e.to_string())?;
        if !judged(&h) {
            return Ok(true);
        }
        let section = section_of(batch, &h)?;
        let recs = records(&section, h.records_count)?;
        // A key new to the map is counted once, however often the batch repeats it.
        let mut extra = 0usize;
        let mut new_keys = std::collections::BTreeSet::new();
        for r in &recs {
            if let Some((a, b)) = r.key {
                let key = &section[a..b];
                if !self.latest.contains_key(key) && new_keys.insert(key) {
                    extra += (b - a) + ENTRY_OVERHEAD_BYTES;
                }
            }
        }
        if self.bytes + extra > bytes_max && !self.latest.is_empty() {
            return Ok(false);
        }
        let (bytes_before, keys_before) = (self.bytes, self.latest.len());
        for r in &recs {
            if let Some((a, b)) = r.key {
                let offset = h.base_offset + r.offset_delta as i64;
                let key = section.slice(a..b);
                let len = key.len();
                // The greater offset wins (a batch written before the topic was compacted was
                // never checked for increasing offsets inside it).
                let old = self.latest.insert(key.clone(), offset);
                match old {
                    None => self.bytes += len + ENTRY_OVERHEAD_BYTES,
                    Some(o) if o > offset => {
                        self.latest.insert(key, o);
                    }
                    Some(_) => {}
                }
            }
        }
        assert_eq!(
            self.bytes,
            bytes_before + extra,
            "the map grew by what was counted"
        );
        assert!(
            self.latest.len() >= keys_before,
            "a key never leaves the map"
        );
        assert!(
            self.bytes <= bytes_max || self.latest.len() <= recs.len(),
            "the map stays within its bound, but for one batch of its own"
        );
        Ok(true)
    }
}

/// The rules of one clean.
#[derive(Clone, Copy, Debug)]
pub struct CleanRules {
    /// The broker's clock, in ms since the epoch.
    pub now_ms: i64,
    /// `delete.retention.ms`: a tombstone whose batch's largest timestamp is older than this
    /// goes (unless an older value of its key had to stay).
    pub delete_retention_ms: i64,
}

/// What one clean removed, for the operator's log and the figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_kept: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    pub batches_absorbed: u64,
}

/// A kept batch not yet written: the next batch may still be absorbed by it.
#[derive(Debug)]
struct Pending {
    header: [u8; HEADER_BYTES],
    base_offset: i64,
    last_offset_delta: i32,
    records: Vec<u8>,
    count: i32,
    decompressed: bool,
    absorbs: bool,
    max_timestamp: i64,
}

/// Builds a cleaned segment from the old one's batches, fed in order; hands back the bytes to
/// append to the `.cleaned` file as they are final.
#[derive(Debug)]
pub struct SegmentRewriter {
    base_offset: i64,
    /// Bytes handed out so far (the `.cleaned` file's length), header included.
    size: u64,
    /// The offset after the last batch seen.
    next_offset: i64,
    pending: Option<Pending>,
    index: SparseIndex,
    /// The topic's `index.interval.bytes`: the cleaned segment is indexed as densely as an
    /// appended one.
    index_interval_bytes: u64,
    pub stats: CleanStats,
}

impl SegmentRewriter {
    /// Start the cleaned copy of the segment at `base_offset`, indexed every
    /// `index_interval_bytes`. Returns the rewriter and the file's header (the first bytes of
    /// `.cleaned`).
    pub fn new(base_offset: i64, index_interval_bytes: u64) -> (SegmentRewriter, Bytes) {
        let r = SegmentRewriter {
            base_offset,
            size: SEGMENT_HEADER_BYTES,
            next_offset: base_offset,
            pending: None,
            index: SparseIndex::new(base_offset),
            index_interval_bytes,
            stats: CleanStats::default(),
        };
        let header = segment_header(base_offset);
        assert_eq!(
            header.len() as u64,
            SEGMENT_HEADER_BYTES,
            "the header is what size counts"
        );
        (r, header)
    }

    /// Clean one stored batch (the next in the segment) against `map` (`forced`: keys an older
    /// value of which was kept; see the module docs). Returns bytes now final, possibly none.
    pub fn push(
        &mut self,
        batch: &[u8],
        map: &OffsetMap,
        forced: &mut BTreeSet<Bytes>,
        rules: CleanRules,
    ) -> Result<Bytes, String> {
        let h = BatchHeader::parse(batch).map_err(|e| e.to_string())?;
        if h.base_offset != self.next_offset {
            return Err(format!(
                "batch {} where {} was expected",
                h.base_offset, self.next_offset
            ));
        }
        assert!(h.next_offset() > self.next_offset, "offsets grow");
        self.next_offset = h.next_offset();
        self.stats.bytes_read += h.size as u64;
        let mut header = [0u8; HEADER_BYTES];
        header.copy_from_slice(&batch[..HEADER_BYTES]);
        if !judged(&h) {
            let out = self.flush();
            self.pending = Some(Pending {
                header,
                base_offset: h.base_offset,
                last_offset_delta: h.last_offset_delta,
                records: batch[HEADER_BYTES..h.size].to_vec(),
                count: h.records_count,
                decompressed: false,
                absorbs: false,
                max_timestamp: h.max_timestamp,
            });
            return Ok(out);
        }
        let section = section_of(batch, &h)?;
        let recs = records(&section, h.records_count)?;
        let expired = rules.now_ms.saturating_sub(h.max_timestamp) > rules.delete_retention_ms;
        let mut kept: Vec<RecordView> = Vec::with_capacity(recs.len());
        for r in &recs {
            let offset = h.base_offset + r.offset_delta as i64;
            let keep = match r.key {
                // Refused at produce; one written before the topic became compacted stays.
                None => true,
                Some((a, b)) => {
                    let key = &section[a..b];
                    let latest = map.latest(key).is_none_or(|l| offset >= l);
                    let tombstone_goes = r.tombstone && expired && !forced.contains(key);
                    if latest && tombstone_goes {
                        self.stats.tombstones_removed += 1;
                    }
                    latest && !tombstone_goes
                }
            };
            if keep {
                kept.push(*r);
            } else {
                self.stats.records_removed += 1;
            }
        }
        let absorbable = !h.has_producer_id() && self.pending.as_ref().is_some_and(|p| p.absorbs);
        if kept.is_empty() && absorbable {
            // The previous kept batch covers this one's offsets now.
            let p = self.pending.as_mut().unwrap();
            let delta = h.last_offset() - p.base_offset;
            assert!(
                delta > p.last_offset_delta as i64,
                "an absorbed batch lies after"
            );
            p.last_offset_delta = i32::try_from(delta).map_err(|_| "offset delta overflows")?;
            self.stats.batches_absorbed += 1;
            return Ok(Bytes::new());
        }
        if kept.is_empty() {
            // Keep the batch with its last record (see the module docs).
            let last = *recs.last().ok_or("a judged batch without records")?;
            self.stats.records_removed -= 1;
            if let Some((a, b)) = last.key {
                forced.insert(section.slice(a..b));
            }
            kept.push(last);
        }
        assert!(!kept.is_empty() && kept.len() <= recs.len());
        self.stats.records_kept += kept.len() as u64;
        let out = self.flush();
        let unchanged = kept.len() == recs.len();
        let records: Vec<u8> = if unchanged && h.compression() != 0 {
            batch[HEADER_BYTES..h.size].to_vec()
        } else {
            kept.iter()
                .flat_map(|r| section[r.start..r.end].iter().copied())
                .collect()
        };
        self.pending = Some(Pending {
            header,
            base_offset: h.base_offset,
            last_offset_delta: h.last_offset_delta,
            records,
            count: kept.len() as i32,
            decompressed: !(unchanged && h.compression() != 0),
            absorbs: !h.has_producer_id(),
            max_timestamp: h.max_timestamp,
        });
        Ok(out)
    }

    /// Write out the pending batch: its header with the new length, last offset delta, record
    /// count, compression and CRC.
    fn flush(&mut self) -> Bytes {
        let Some(p) = self.pending.take() else {
            return Bytes::new();
        };
        let mut b = BytesMut::with_capacity(HEADER_BYTES + p.records.len());
        b.extend_from_slice(&p.header);
        b.extend_from_slice(&p.records);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        if p.decompressed {
            let attributes = i16::from_be_bytes([b[21], b[22]]) & !0x7;
            b[21..23].copy_from_slice(&attributes.to_be_bytes());
        }
        b[23..27].copy_from_slice(&p.last_offset_delta.to_be_bytes());
        b[57..61].copy_from_slice(&p.count.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let h = BatchHeader::parse(&b).expect("a rewritten header parses");
        assert!(h.verify(&b).is_ok(), "a rewritten batch verifies");
        assert_eq!(h.base_offset, p.base_offset);
        self.index.on_append(
            h.base_offset,
            h.last_offset(),
            self.size,
            b.len() as u64,
            p.max_timestamp,
            self.index_interval_bytes,
        );
        self.size += b.len() as u64;
        self.stats.bytes_written += b.len() as u64;
        b.freeze()
    }

    /// The segment is done: the last bytes to write, and the cleaned segment as the log keeps
    /// it in memory (`created` is the old segment's). Its next offset is the old one's: no
    /// offset moved.
    pub fn finish(mut self, created: crate::time::Instant) -> (Bytes, Segment) {
        let out = self.flush();
        assert!(self.pending.is_none() && self.size >= SEGMENT_HEADER_BYTES);
        let mut index = self.index;
        index.add_time_entry();
        let seg = Segment {
            base_offset: self.base_offset,
            size: self.size,
            created,
            next_offset: self.next_offset,
            settled_max: index.max,
            index,
            indexed_len: 0,
        };
        assert!(
            seg.next_offset >= seg.base_offset,
            "a segment's offsets do not go back"
        );
        seg.index.check(seg.size, seg.next_offset);
        (out, seg)
    }
}

/// Walk the whole batches in `bytes` (read from a segment at a batch boundary), calling
/// `visit` with each until it returns false; returns how many bytes it consumed and, if the
/// bytes end inside a batch, how many bytes that batch needs.
pub fn whole_batches(
    bytes: &[u8],
    mut visit: impl FnMut(&[u8]) -> Result<bool, String>,
) -> Result<(usize, Option<usize>), String> {
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < HEADER_BYTES {
            return Ok((at, Some(HEADER_BYTES)));
        }
        let h = BatchHeader::parse(rest).map_err(|e| e.to_string())?;
        if rest.len() < h.size {
            return Ok((at, Some(h.size)));
        }
        h.verify(&rest[..h.size]).map_err(|e| e.to_string())?;
        if !visit(&rest[..h.size])? {
            return Ok((at, None));
        }
        at += h.size;
    }
    Ok((at, None))
}

impl super::PartitionLog {
    /// Whether the closed segment at `base` is still there as a clean found it (`size`
    /// bytes): retention or DeleteRecords may have deleted it meanwhile.
    pub fn holds_closed_segment(&self, base: i64, size: u64) -> bool {
        let closed = &self.segments[..self.segments.len() - 1];
        closed
            .iter()
            .any(|s| s.base_offset == base && s.size == size)
            && !self.tail.iter().any(|b| b.segment == base)
    }

    /// Put a cleaned segment in place of the closed one at its base, once its `.swap` file is
    /// durable. Returns the requests, in order: rename the swap into place, then write the new
    /// index files. Reads planned from here on use the new positions, and run after the
    /// rename (storage requests run in order).
    pub fn install_cleaned(&mut self, mut cleaned: Segment) -> Vec<StorageRequest> {
        let last = self.segments.len() - 1;
        let i = self.segments[..last]
            .iter()
            .position(|s| s.base_offset == cleaned.base_offset)
            .expect("a cleaned segment replaces a closed one");
        let old = &self.segments[i];
        assert_eq!(old.next_offset, cleaned.next_offset, "no offset moved");
        assert!(i < last, "the active segment is never cleaned");
        cleaned.created = old.created;
        self.segments[i] = cleaned;
        let file = self.file_of(self.segments[i].base_offset);
        let mut reqs = vec![StorageRequest::CompleteSegmentSwap { file: file.clone() }];
        reqs.extend(self.segments[i].index_request(file));
        self.invariants();
        reqs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{assign, encode, Rec};
    use kafka_protocol::records::Compression;

    fn batch(base: i64, recs: &[(Option<&str>, Option<&str>)], ts: i64) -> Vec<u8> {
        let recs: Vec<Rec> = recs
            .iter()
            .map(|(k, v)| Rec {
                key: k.map(|k| Bytes::copy_from_slice(k.as_bytes())),
                value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                timestamp_ms: ts,
                headers: vec![],
            })
            .collect();
        let mut b = encode(&recs, None, Compression::None).unwrap().to_vec();
        assign(&mut b, base, 0);
        b
    }

    /// One record read back: (offset, key, value).
    type Record = (i64, String, Option<String>);

    /// Every record in cleaned segment bytes, and the batches' offset ranges.
    fn read_back(seg: &[u8]) -> (Vec<Record>, Vec<(i64, i64)>) {
        let mut bytes = Bytes::copy_from_slice(&seg[SEGMENT_HEADER_BYTES as usize..]);
        let mut out = Vec::new();
        let mut ranges = Vec::new();
        while !bytes.is_empty() {
            let h = BatchHeader::parse(&bytes).unwrap();
            h.verify(&bytes[..h.size]).unwrap();
            ranges.push((h.base_offset, h.last_offset()));
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes).unwrap();
            for r in set.records {
                let k = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                let v = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
                out.push((r.offset, k, v));
            }
        }
        (out, ranges)
    }

    fn clean(batches: &[Vec<u8>], rules: CleanRules) -> (Vec<u8>, Segment, CleanStats) {
        let mut map = OffsetMap::default();
        for b in batches {
            assert!(map.add_batch(b, OFFSET_MAP_BYTES_MAX).unwrap());
        }
        let (mut w, header) = SegmentRewriter::new(0, crate::log::index::INDEX_INTERVAL_BYTES);
        let mut file = header.to_vec();
        let mut forced = BTreeSet::new();
        for b in batches {
            file.extend_from_slice(&w.push(b, &map, &mut forced, rules).unwrap());
        }
        let stats = w.stats;
        let (last, seg) = w.finish(crate::time::Instant(0));
        file.extend_from_slice(&last);
        assert_eq!(seg.size, file.len() as u64);
        (file, seg, stats)
    }

    const KEEP_TOMBSTONES: CleanRules = CleanRules {
        now_ms: 1000,
        delete_retention_ms: 1_000_000,
    };

    #[test]
    fn keeps_the_latest_value_of_every_key_and_every_offset_range() {
        let batches = vec![
            batch(0, &[(Some("a"), Some("1")), (Some("b"), Some("1"))], 10),
            batch(2, &[(Some("a"), Some("2"))], 20),
            batch(3, &[(Some("c"), Some("1")), (Some("b"), None)], 30),
            batch(5, &[(Some("a"), Some("3"))], 40),
        ];
        let (file, seg, stats) = clean(&batches, KEEP_TOMBSTONES);
        let (recs, ranges) = read_back(&file);
        // The first batch (offsets 0-1) lost both records: it keeps its last one (b=1, an
        // older value of b, before b's tombstone), and batch 2, emptied, is absorbed by it.
        assert_eq!(
            recs,
            vec![
                (1, "b".into(), Some("1".into())),
                (3, "c".into(), Some("1".into())),
                (4, "b".into(), None),
                (5, "a".into(), Some("3".into())),
            ]
        );
        // Offsets are dense in the file: the first batch covers 0..=2 now.
        assert_eq!(ranges, vec![(0, 2), (3, 4), (5, 5)]);
        assert_eq!(seg.next_offset, 6);
        assert_eq!(stats.batches_absorbed, 1);
        assert_eq!(stats.records_kept, 4);
    }

    #[test]
    fn expired_tombstones_go_unless_an_older_value_stayed() {
        let batches = vec![
            batch(0, &[(Some("x"), Some("1"))], 10),
            batch(1, &[(Some("a"), Some("1")), (Some("b"), Some("1"))], 10),
            batch(3, &[(Some("a"), None)], 20),
            batch(4, &[(Some("c"), Some("9"))], 5000),
        ];
        let rules = CleanRules {
            now_ms: 5000,
            delete_retention_ms: 100,
        };
        let (file, _, stats) = clean(&batches, rules);
        let (recs, ranges) = read_back(&file);
        // a's tombstone expired and no older value of a stayed: a is gone entirely; batch 1
        // keeps b, batch 3 (emptied) is absorbed by it.
        assert_eq!(
            recs,
            vec![
                (0, "x".into(), Some("1".into())),
                (2, "b".into(), Some("1".into())),
                (4, "c".into(), Some("9".into())),
            ]
        );
        assert_eq!(ranges, vec![(0, 0), (1, 3), (4, 4)]);
        assert_eq!(stats.tombstones_removed, 1);

        // An idempotent producer's emptied batch keeps its last record, an older value of `k`:
        // then `k`'s expired tombstone must stay, or `k` would come back.
        let mut idem = encode(
            &[Rec {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"old")),
                timestamp_ms: 10,
                headers: vec![],
            }],
            Some((7, 0, 0)),
            Compression::None,
        )
        .unwrap()
        .to_vec();
        assign(&mut idem, 0, 0);
        let batches = vec![idem, batch(1, &[(Some("k"), None)], 10)];
        let (file, _, _) = clean(&batches, rules);
        let (recs, ranges) = read_back(&file);
        assert_eq!(
            recs,
            vec![(0, "k".into(), Some("old".into())), (1, "k".into(), None)]
        );
        assert_eq!(ranges, vec![(0, 0), (1, 1)]);
    }

    #[test]
    fn compressed_batches_are_cleaned_too() {
        let recs: Vec<Rec> = ["a", "b", "a"]
            .iter()
            .enumerate()
            .map(|(i, k)| Rec {
                key: Some(Bytes::copy_from_slice(k.as_bytes())),
                value: Some(Bytes::from(format!("v{i}"))),
                timestamp_ms: 1,
                headers: vec![],
            })
            .collect();
        let plain = encode(&recs, None, Compression::None).unwrap();
        let mut b = crate::batch::tests::lz4_batch(&plain);
        assign(&mut b, 0, 0);
        assert_eq!(BatchHeader::parse(&b).unwrap().compression(), 3);
        let (file, _, _) = clean(&[b], KEEP_TOMBSTONES);
        let (recs, ranges) = read_back(&file);
        assert_eq!(
            recs,
            vec![
                (1, "b".into(), Some("v1".into())),
                (2, "a".into(), Some("v2".into()))
            ]
        );
        assert_eq!(ranges, vec![(0, 2)]);
    }

    #[test]
    fn the_map_refuses_a_batch_past_its_bound() {
        let b1 = batch(0, &[(Some("aaaa"), Some("1"))], 1);
        let b2 = batch(1, &[(Some("bbbb"), Some("1"))], 1);
        let mut map = OffsetMap::default();
        let bound = 4 + ENTRY_OVERHEAD_BYTES;
        assert!(map.add_batch(&b1, bound).unwrap());
        assert!(!map.add_batch(&b2, bound).unwrap(), "b2's key does not fit");
        assert_eq!(map.len(), 1);
        assert!(
            map.add_batch(&b1, bound).unwrap(),
            "a known key costs nothing"
        );
        assert_eq!(map.bytes(), bound);
    }

    #[test]
    fn garbage_records_are_errors_not_panics() {
        let mut b = batch(0, &[(Some("a"), Some("1"))], 1);
        let n = b.len();
        b[HEADER_BYTES] = 0x7f; // a record length past the batch
        let crc = crc32c::crc32c(&b[21..n]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut map = OffsetMap::default();
        assert!(map.add_batch(&b, OFFSET_MAP_BYTES_MAX).is_err());
    }
}
