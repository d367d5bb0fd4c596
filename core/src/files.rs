//! Every file gregor writes, and how it is read back at start.
//!
//! Each file opens with an 8-byte magic number and a 2-byte format version, so a reader knows
//! what it holds and refuses what it cannot read (a newer format, another program's file).
//!
//! * `<topic>-<partition>/partition.meta` — the partition's identity and its topic's settings
//!   ([`PartitionMeta`]), postcard-encoded, with a CRC-32.
//! * `<topic>-<partition>/<base_offset:020>.log` — a segment: a 32-byte header
//!   ([`SEGMENT_HEADER_BYTES`]) followed by Kafka v2 record batches, byte-for-byte as producers sent
//!   them (with the broker's base offset written in).
//! * `<topic>-<partition>/<base_offset:020>.index` — the segment's index ([`encode_segment_index`]):
//!   the position and the 61-byte v2 header of every batch in a prefix of the segment, with a
//!   CRC-32 over the file. It is a cache: written only after the segment prefix it describes was
//!   made durable, checked against the segment at start, and rebuilt from the segment when it is
//!   missing, damaged or disagrees.
//! * `.kafka_cleanshutdown` in the data directory — left by a clean shutdown (Kafka's marker);
//!   read and removed at start.
//! * `broker.meta` — the broker's own state ([`BrokerMeta`]): cluster id and the next block of
//!   producer ids.
//!
//! ## Recovery (Kafka's `LogLoader`)
//! At start the driver hands each segment to [`recover_segment`], the same function in production
//! and in the simulator. When the segment's index file is valid, the batches it lists are taken
//! from it without reading the segment, and only the bytes past the indexed prefix (the tail a
//! crash left unindexed; nothing after a clean shutdown) are read and scanned. Otherwise the whole
//! segment is scanned ([`scan_segment`]). The scan walks batches from the header on, checking each
//! batch's length, CRC and offset continuity, and stops at the first one that fails: that is the
//! torn or corrupt tail, cut away by the broker. Records before it were written whole and are
//! kept; none after it were acknowledged under a policy that promised them, because a torn write
//! was by definition not yet synced.

use crate::batch::{BatchHeader, HEADER_BYTES, LOG_OVERHEAD};
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

pub const SEGMENT_MAGIC: &[u8; 8] = b"GRGR.LOG";
pub const PARTITION_META_MAGIC: &[u8; 8] = b"GRGR.PRT";
pub const BROKER_META_MAGIC: &[u8; 8] = b"GRGR.BRK";
pub const SEGMENT_INDEX_MAGIC: &[u8; 8] = b"GRGR.IDX";
/// The clean-shutdown marker's file name in the data directory (Kafka's name).
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// Bytes of one index entry: the batch's position (8) and its v2 header.
pub const INDEX_ENTRY_BYTES: usize = 8 + HEADER_BYTES;
/// Bytes of an index file around its entries: magic, version, base offset, covered length,
/// entry count, and the CRC-32 at the end.
const INDEX_FRAME_BYTES: usize = 8 + 2 + 8 + 8 + 4 + 4;
pub const FORMAT_VERSION: u16 = 1;
/// Bytes before the first batch of a segment file.
pub const SEGMENT_HEADER_BYTES: u64 = 32;

/// Why a file could not be read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileError {
    BadMagic,
    UnsupportedVersion(u16),
    Checksum,
    Truncated,
    Decode(String),
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::BadMagic => write!(f, "not a gregor file (bad magic number)"),
            FileError::UnsupportedVersion(v) => write!(f, "unsupported file format version {v}"),
            FileError::Checksum => write!(f, "checksum mismatch"),
            FileError::Truncated => write!(f, "file truncated"),
            FileError::Decode(e) => write!(f, "cannot decode: {e}"),
        }
    }
}

/// The 32-byte segment header: magic, version, base offset, CRC-32 of the first 28 bytes.
pub fn segment_header(base_offset: i64) -> Bytes {
    let mut b = BytesMut::with_capacity(SEGMENT_HEADER_BYTES as usize);
    b.put_slice(SEGMENT_MAGIC);
    b.put_u16(FORMAT_VERSION);
    b.put_u16(0);
    b.put_i64(base_offset);
    b.put_u64(0);
    let crc = crc32fast::hash(&b);
    b.put_u32(crc);
    assert_eq!(b.len() as u64, SEGMENT_HEADER_BYTES);
    b.freeze()
}

fn check_segment_header(bytes: &[u8]) -> Result<i64, FileError> {
    if bytes.len() < SEGMENT_HEADER_BYTES as usize {
        return Err(FileError::Truncated);
    }
    if &bytes[..8] != SEGMENT_MAGIC {
        return Err(FileError::BadMagic);
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(FileError::UnsupportedVersion(version));
    }
    let crc = u32::from_be_bytes(bytes[28..32].try_into().unwrap());
    if crc32fast::hash(&bytes[..28]) != crc {
        return Err(FileError::Checksum);
    }
    Ok(i64::from_be_bytes(bytes[12..20].try_into().unwrap()))
}

/// What recovery learned about one stored batch: enough to index it and to rebuild idempotent
/// producer state, without keeping its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScannedBatch {
    pub position: u64,
    pub header: BatchHeader,
    /// The header's bytes as stored, so the index can be rebuilt without reading the batch.
    pub raw_header: [u8; HEADER_BYTES],
}

/// The result of scanning one segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    /// Base offset recorded in the header (also in the file name).
    pub base_offset: i64,
    /// Length of the valid prefix of the file; anything after it is a torn or corrupt tail.
    pub valid_len: u64,
    /// The file's actual length.
    pub file_len: u64,
    pub batches: Vec<ScannedBatch>,
    /// Why the scan stopped before the end of the file, if it did.
    pub tail_problem: Option<String>,
    /// How many bytes of the file (from its start) the index file vouched for; 0 when the index
    /// was missing or rejected and the whole segment was read.
    pub indexed_len: u64,
    /// Why an index file that was present was not used.
    pub index_problem: Option<String>,
}

/// Scan a whole segment file (see the module docs). `expected_base` is the base offset from the
/// file name. A file whose header is unreadable yields an empty scan with `valid_len = 0`, which
/// the broker treats as "rewrite the header".
pub fn scan_segment(expected_base: i64, bytes: &[u8]) -> SegmentScan {
    let mut scan = SegmentScan {
        base_offset: expected_base,
        valid_len: 0,
        file_len: bytes.len() as u64,
        batches: Vec::new(),
        tail_problem: None,
        indexed_len: 0,
        index_problem: None,
    };
    match check_segment_header(bytes) {
        Ok(base) if base == expected_base => {}
        Ok(base) => {
            scan.tail_problem = Some(format!(
                "header base offset {base} != file name {expected_base}"
            ));
            return scan;
        }
        Err(e) => {
            scan.tail_problem = Some(format!("segment header: {e}"));
            return scan;
        }
    }
    scan_tail(
        &mut scan,
        &bytes[SEGMENT_HEADER_BYTES as usize..],
        SEGMENT_HEADER_BYTES,
        expected_base,
    );
    scan
}

/// Walk the batches in `bytes`, which hold the file from position `origin` on, expecting the
/// first to start at `next_offset`; append them to `scan` and set its valid length.
fn scan_tail(scan: &mut SegmentScan, bytes: &[u8], origin: u64, mut next_offset: i64) {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let at = origin + pos as u64;
        let rest = &bytes[pos..];
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => {
                scan.tail_problem = Some(format!("at byte {at}: {e}"));
                break;
            }
        };
        if header.size > rest.len() {
            scan.tail_problem = Some(format!(
                "at byte {at}: torn batch, {} of {} bytes present",
                rest.len(),
                header.size
            ));
            break;
        }
        if let Err(e) = header.verify(&rest[..header.size]) {
            scan.tail_problem = Some(format!("at byte {at}: {e}"));
            break;
        }
        if header.base_offset != next_offset {
            scan.tail_problem = Some(format!(
                "at byte {at}: batch base offset {} where {} was expected",
                header.base_offset, next_offset
            ));
            break;
        }
        assert!(header.size >= LOG_OVERHEAD);
        scan.batches.push(ScannedBatch {
            position: at,
            header,
            raw_header: rest[..HEADER_BYTES]
                .try_into()
                .expect("parse checked the length"),
        });
        next_offset = header.next_offset();
        pos += header.size;
        assert!(
            pos <= bytes.len(),
            "a kept batch lies wholly inside the bytes read"
        );
    }
    scan.valid_len = origin + pos as u64;
    assert!(scan.valid_len <= scan.file_len);
    assert!(scan.valid_len >= origin);
    // Postcondition: the kept batches are packed and dense up to the valid length.
    if let [.., last] = scan.batches.as_slice() {
        assert_eq!(last.position + last.header.size as u64, scan.valid_len);
        assert_eq!(last.header.next_offset(), next_offset);
    }
}

/// Encode a segment's index file: `entries` is the concatenation of [`INDEX_ENTRY_BYTES`]-long
/// entries (position, then the batch's header bytes) for the batches of the segment's first
/// `segment_len` bytes.
pub fn encode_segment_index(base_offset: i64, segment_len: u64, entries: &[u8]) -> Bytes {
    assert_eq!(entries.len() % INDEX_ENTRY_BYTES, 0, "whole entries only");
    assert!(segment_len >= SEGMENT_HEADER_BYTES);
    let mut b = BytesMut::with_capacity(entries.len() + INDEX_FRAME_BYTES);
    b.put_slice(SEGMENT_INDEX_MAGIC);
    b.put_u16(FORMAT_VERSION);
    b.put_i64(base_offset);
    b.put_u64(segment_len);
    b.put_u32((entries.len() / INDEX_ENTRY_BYTES) as u32);
    b.put_slice(entries);
    let crc = crc32fast::hash(&b);
    b.put_u32(crc);
    assert_eq!(b.len(), entries.len() + INDEX_FRAME_BYTES);
    b.freeze()
}

/// One index entry's bytes, as [`encode_segment_index`] takes them.
pub fn index_entry(position: u64, raw_header: &[u8]) -> [u8; INDEX_ENTRY_BYTES] {
    let mut e = [0u8; INDEX_ENTRY_BYTES];
    e[..8].copy_from_slice(&position.to_be_bytes());
    e[8..].copy_from_slice(&raw_header[..HEADER_BYTES]);
    e
}

/// The segment length an index file covers, read from its frame without checking it (the
/// driver uses it to refuse an index that does not match its segment).
pub fn segment_index_covers(index: &[u8]) -> Option<u64> {
    index
        .get(18..26)
        .map(|b| u64::from_be_bytes(b.try_into().unwrap()))
}

/// Decode and check an index file against its segment (named `expected_base`, `file_len` bytes
/// long). The entries must be packed from the segment header on, with dense offsets, ending
/// exactly at the covered length, which must not exceed the file. Returns the batches.
pub fn decode_segment_index(
    expected_base: i64,
    index: &[u8],
    file_len: u64,
) -> Result<(u64, Vec<ScannedBatch>), String> {
    if index.len() < INDEX_FRAME_BYTES {
        return Err(FileError::Truncated.to_string());
    }
    if &index[..8] != SEGMENT_INDEX_MAGIC {
        return Err(FileError::BadMagic.to_string());
    }
    let version = u16::from_be_bytes([index[8], index[9]]);
    if version != FORMAT_VERSION {
        return Err(FileError::UnsupportedVersion(version).to_string());
    }
    let body = &index[..index.len() - 4];
    let crc = u32::from_be_bytes(index[index.len() - 4..].try_into().unwrap());
    if crc32fast::hash(body) != crc {
        return Err(FileError::Checksum.to_string());
    }
    let base = i64::from_be_bytes(body[10..18].try_into().unwrap());
    let covered = u64::from_be_bytes(body[18..26].try_into().unwrap());
    let count = u32::from_be_bytes(body[26..30].try_into().unwrap()) as usize;
    let entries = &body[30..];
    if base != expected_base {
        return Err(format!(
            "index base offset {base} != file name {expected_base}"
        ));
    }
    if entries.len() != count * INDEX_ENTRY_BYTES {
        return Err(FileError::Truncated.to_string());
    }
    if covered > file_len {
        return Err(format!(
            "index covers {covered} bytes but the segment has {file_len}"
        ));
    }
    let mut batches = Vec::with_capacity(count);
    let mut pos = SEGMENT_HEADER_BYTES;
    let mut next = expected_base;
    for e in entries.chunks_exact(INDEX_ENTRY_BYTES) {
        let position = u64::from_be_bytes(e[..8].try_into().unwrap());
        let header = BatchHeader::parse(&e[8..]).map_err(|e| format!("index entry: {e}"))?;
        if position != pos || header.base_offset != next {
            return Err(format!(
                "index entry for offset {} at byte {position} breaks the packing",
                header.base_offset
            ));
        }
        batches.push(ScannedBatch {
            position,
            header,
            raw_header: e[8..].try_into().unwrap(),
        });
        pos += header.size as u64;
        next = header.next_offset();
    }
    if pos != covered {
        return Err(format!("index entries end at {pos}, not at {covered}"));
    }
    assert_eq!(batches.len(), count);
    assert!(covered <= file_len && covered >= SEGMENT_HEADER_BYTES);
    Ok((covered, batches))
}

/// Recover one segment (see the module docs): from its index file when that is valid, reading
/// only the tail past what it covers, else by scanning all of it. `read_from(position)` must
/// return the segment file's bytes from `position` to its end; it is called at most once, and
/// its error is passed on.
pub fn recover_segment<E>(
    expected_base: i64,
    index: Option<&[u8]>,
    file_len: u64,
    read_from: impl FnOnce(u64) -> Result<Vec<u8>, E>,
) -> Result<SegmentScan, E> {
    let decoded = index.map(|i| decode_segment_index(expected_base, i, file_len));
    match decoded {
        Some(Ok((covered, batches))) => {
            let next = batches
                .last()
                .map(|b| b.header.next_offset())
                .unwrap_or(expected_base);
            let mut scan = SegmentScan {
                base_offset: expected_base,
                valid_len: covered,
                file_len,
                batches,
                tail_problem: None,
                indexed_len: covered,
                index_problem: None,
            };
            if covered < file_len {
                let tail = read_from(covered)?;
                assert_eq!(
                    tail.len() as u64,
                    file_len - covered,
                    "read_from reads to the end"
                );
                scan_tail(&mut scan, &tail, covered, next);
            }
            assert!(scan.indexed_len <= scan.valid_len && scan.valid_len <= scan.file_len);
            Ok(scan)
        }
        Some(Err(problem)) => {
            let mut scan = scan_segment(expected_base, &read_from(0)?);
            scan.index_problem = Some(problem);
            Ok(scan)
        }
        None => Ok(scan_segment(expected_base, &read_from(0)?)),
    }
}

/// Settings of a topic that gregor stores with each partition (Kafka topic configs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSettings {
    pub segment_bytes: u64,
    pub segment_ms: u64,
    pub retention_bytes: i64,
    pub retention_ms: i64,
    pub max_message_bytes: u32,
}

/// The contents of `partition.meta`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub topic: String,
    pub topic_id: [u8; 16],
    pub partition: i32,
    /// How many partitions the topic has (each partition's file carries it, so a topic is whole
    /// again at start even if created partitions were interrupted).
    pub partition_count: i32,
    pub settings: TopicSettings,
}

/// The contents of `broker.meta`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerMeta {
    pub cluster_id: [u8; 16],
    /// Producer ids below this may have been handed out; a restarted broker starts above it.
    pub producer_id_block_end: i64,
}

fn encode_file<T: Serialize>(magic: &[u8; 8], value: &T) -> Bytes {
    let payload = postcard::to_allocvec(value).expect("postcard encodes plain structs");
    let mut b = BytesMut::with_capacity(payload.len() + 18);
    b.put_slice(magic);
    b.put_u16(FORMAT_VERSION);
    b.put_u32(payload.len() as u32);
    b.put_slice(&payload);
    let crc = crc32fast::hash(&b);
    b.put_u32(crc);
    b.freeze()
}

fn decode_file<T: for<'de> Deserialize<'de>>(
    magic: &[u8; 8],
    bytes: &[u8],
) -> Result<T, FileError> {
    if bytes.len() < 18 {
        return Err(FileError::Truncated);
    }
    if &bytes[..8] != magic {
        return Err(FileError::BadMagic);
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION {
        return Err(FileError::UnsupportedVersion(version));
    }
    let len = u32::from_be_bytes(bytes[10..14].try_into().unwrap()) as usize;
    if bytes.len() != 14 + len + 4 {
        return Err(FileError::Truncated);
    }
    let crc = u32::from_be_bytes(bytes[14 + len..].try_into().unwrap());
    if crc32fast::hash(&bytes[..14 + len]) != crc {
        return Err(FileError::Checksum);
    }
    postcard::from_bytes(&bytes[14..14 + len]).map_err(|e| FileError::Decode(e.to_string()))
}

impl PartitionMeta {
    pub fn encode(&self) -> Bytes {
        encode_file(PARTITION_META_MAGIC, self)
    }
    pub fn decode(bytes: &[u8]) -> Result<PartitionMeta, FileError> {
        decode_file(PARTITION_META_MAGIC, bytes)
    }
}

impl BrokerMeta {
    pub fn encode(&self) -> Bytes {
        encode_file(BROKER_META_MAGIC, self)
    }
    pub fn decode(bytes: &[u8]) -> Result<BrokerMeta, FileError> {
        decode_file(BROKER_META_MAGIC, bytes)
    }
}

/// What the driver found on storage at start, handed to [`crate::Broker::new`].
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// The clean-shutdown marker was found (and removed): the last run ended cleanly.
    pub clean_shutdown: bool,
    /// Contents of `broker.meta`, if it exists.
    pub broker_meta: Option<Bytes>,
    pub partitions: Vec<RecoveredPartition>,
}

/// One partition directory found at start.
#[derive(Clone, Debug)]
pub struct RecoveredPartition {
    /// The directory name, for messages.
    pub dir_name: String,
    /// Contents of `partition.meta` (None if missing).
    pub meta: Option<Bytes>,
    /// Every segment file, recovered with [`recover_segment`], in any order.
    pub segments: Vec<SegmentScan>,
}

/// Parse an index file name (`00000000000000000042.index`) into its segment's base offset.
pub fn parse_index_file_name(name: &str) -> Option<i64> {
    parse_segment_file_name(&format!("{}.log", name.strip_suffix(".index")?))
}

/// Parse a segment file name (`00000000000000000042.log`) into its base offset.
pub fn parse_segment_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{assign, tests::make_batch};

    fn segment_with(batches: &[Vec<u8>], base: i64) -> Vec<u8> {
        let mut f = segment_header(base).to_vec();
        let mut next = base;
        for b in batches {
            let mut b = b.clone();
            assign(&mut b, next, 0);
            next = BatchHeader::parse(&b).unwrap().next_offset();
            f.extend_from_slice(&b);
        }
        f
    }

    #[test]
    fn scan_cuts_torn_and_corrupt_tails() {
        let f = segment_with(&[make_batch(2, None, 1), make_batch(3, None, 2)], 10);
        let s = scan_segment(10, &f);
        assert_eq!(s.batches.len(), 2);
        assert_eq!(s.valid_len, f.len() as u64);
        assert!(s.tail_problem.is_none());

        let torn = &f[..f.len() - 5];
        let s = scan_segment(10, torn);
        assert_eq!(s.batches.len(), 1);
        assert!(s.tail_problem.unwrap().contains("torn"));

        let mut flipped = f.clone();
        let n = flipped.len();
        flipped[n - 3] ^= 0x40;
        let s = scan_segment(10, &flipped);
        assert_eq!(s.batches.len(), 1);
        assert!(s.tail_problem.unwrap().contains("CRC"));

        let s = scan_segment(11, &f);
        assert_eq!(
            s.valid_len, 0,
            "a header that disagrees with the file name is not trusted"
        );
    }

    #[test]
    fn index_files_vouch_for_a_prefix_and_are_never_trusted_when_damaged() {
        let f = segment_with(&[make_batch(2, None, 1), make_batch(3, None, 2)], 10);
        let full = scan_segment(10, &f);
        let entries: Vec<u8> = full.batches[..1]
            .iter()
            .flat_map(|b| index_entry(b.position, &b.raw_header))
            .collect();
        let covers = full.batches[1].position;
        let idx = encode_segment_index(10, covers, &entries);
        assert_eq!(segment_index_covers(&idx), Some(covers));
        let mut read_from = None;
        let s = recover_segment(10, Some(&idx), f.len() as u64, |from| {
            read_from = Some(from);
            Ok::<_, ()>(f[from as usize..].to_vec())
        })
        .unwrap();
        assert_eq!(
            read_from,
            Some(covers),
            "only the tail past the index is read"
        );
        assert_eq!(s.batches, full.batches);
        assert_eq!(s.indexed_len, covers);

        // Damage anywhere, a wrong base or an index longer than its segment: a full scan.
        for bad in [
            {
                let mut b = idx.to_vec();
                b[40] ^= 4;
                b
            },
            encode_segment_index(11, covers, &entries).to_vec(),
            encode_segment_index(10, f.len() as u64 + 1, &entries).to_vec(),
        ] {
            let s = recover_segment(10, Some(&bad), f.len() as u64, |from| {
                assert_eq!(from, 0);
                Ok::<_, ()>(f.to_vec())
            })
            .unwrap();
            assert!(s.index_problem.is_some());
            assert_eq!(s.indexed_len, 0);
            assert_eq!(s.batches, full.batches);
        }
        assert_eq!(
            parse_index_file_name("00000000000000000042.index"),
            Some(42)
        );
    }

    #[test]
    fn meta_files_round_trip_and_reject_damage() {
        let m = BrokerMeta {
            cluster_id: [1; 16],
            producer_id_block_end: 5000,
        };
        let enc = m.encode();
        assert_eq!(BrokerMeta::decode(&enc).unwrap(), m);
        let mut bad = enc.to_vec();
        bad[15] ^= 1;
        assert_eq!(BrokerMeta::decode(&bad), Err(FileError::Checksum));
        assert_eq!(PartitionMeta::decode(&enc), Err(FileError::BadMagic));
        assert_eq!(
            parse_segment_file_name("00000000000000000042.log"),
            Some(42)
        );
        assert_eq!(parse_segment_file_name("42.log"), None);
    }
}
