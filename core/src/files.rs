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
//! * `<topic>-<partition>/<base_offset:020>.index` and `.timeindex` — the segment's sparse offset
//!   and time indexes ([`crate::log::index`]), each with a CRC-32. Caches: written only after the
//!   segment prefix they describe was made durable, checked at start, rebuilt from the segment
//!   when missing, damaged or inconsistent.
//! * `<topic>-<partition>/<offset:020>.snapshot` — the idempotent producers' state after every
//!   batch below `offset` ([`crate::producer::encode_snapshot`]), postcard-encoded with a CRC-32.
//!   A cache too: a damaged or inconsistent one is skipped and the state replayed from the log.
//! * `.kafka_cleanshutdown` in the data directory — left by a clean shutdown (Kafka's marker);
//!   read and removed at start.
//! * `broker.meta` — the broker's own state ([`BrokerMeta`]): cluster id and the next block of
//!   producer ids.
//!
//! ## Recovery (Kafka's `LogLoader`)
//! At start the driver lists each partition directory and hands it to
//! [`crate::log::recover::recover_partition`], the same function in production and in the
//! simulator, which reads what it needs through the driver. A segment is walked batch by batch
//! ([`walk_batches`]) only where no valid index vouches for it, checking each batch's length,
//! CRC and offset continuity and stopping at the first one that fails: that is the torn or
//! corrupt tail, cut away by the broker. Records before it were written whole and are kept;
//! none after it were acknowledged under a policy that promised them, because a torn write was
//! by definition not yet synced. [`scan_segment`] walks a whole segment in memory, for tests.

use crate::batch::{BatchHeader, HEADER_BYTES, LOG_OVERHEAD};
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

pub const SEGMENT_MAGIC: &[u8; 8] = b"GRGR.LOG";
pub const PARTITION_META_MAGIC: &[u8; 8] = b"GRGR.PRT";
pub const BROKER_META_MAGIC: &[u8; 8] = b"GRGR.BRK";
pub const PRODUCER_SNAPSHOT_MAGIC: &[u8; 8] = b"GRGR.PSN";
/// The clean-shutdown marker's file name in the data directory (Kafka's name).
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
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

pub fn check_segment_header(bytes: &[u8]) -> Result<i64, FileError> {
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

/// Why [`walk_batches`] stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalkStop {
    /// At the end of the bytes, on a batch boundary.
    End,
    /// The bytes end inside a batch that needs `need` bytes from where the walk stopped: torn,
    /// if these bytes reach the end of the file; otherwise read on.
    Incomplete { need: usize },
    /// A batch that fails its checks (length, CRC, offset continuity).
    Bad(String),
}

/// Walk the batches in `bytes`, which hold a segment file from position `origin` on, expecting
/// the first to start at `next_offset`, calling `visit(position, header)` for each whole,
/// valid batch. Returns where the walk stopped (a file position, just after the last batch
/// visited), the next offset expected there, and why.
pub fn walk_batches(
    bytes: &[u8],
    origin: u64,
    mut next_offset: i64,
    mut visit: impl FnMut(u64, &BatchHeader, &[u8]),
) -> (u64, i64, WalkStop) {
    let mut pos = 0usize;
    let stop = loop {
        if pos == bytes.len() {
            break WalkStop::End;
        }
        let at = origin + pos as u64;
        let rest = &bytes[pos..];
        if rest.len() < HEADER_BYTES {
            break WalkStop::Incomplete { need: HEADER_BYTES };
        }
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => break WalkStop::Bad(format!("at byte {at}: {e}")),
        };
        if header.size > rest.len() {
            break WalkStop::Incomplete { need: header.size };
        }
        if let Err(e) = header.verify(&rest[..header.size]) {
            break WalkStop::Bad(format!("at byte {at}: {e}"));
        }
        if header.base_offset != next_offset {
            break WalkStop::Bad(format!(
                "at byte {at}: batch base offset {} where {} was expected",
                header.base_offset, next_offset
            ));
        }
        assert!(header.size >= LOG_OVERHEAD);
        visit(at, &header, &rest[..HEADER_BYTES]);
        next_offset = header.next_offset();
        pos += header.size;
        assert!(
            pos <= bytes.len(),
            "a visited batch lies wholly inside the bytes"
        );
    };
    (origin + pos as u64, next_offset, stop)
}

/// Walk the batches in `bytes` (the file from `origin` on) into `scan`, setting its valid
/// length.
fn scan_tail(scan: &mut SegmentScan, bytes: &[u8], origin: u64, next_offset: i64) {
    let mut batches = Vec::new();
    let (valid, next, stop) = walk_batches(bytes, origin, next_offset, |position, header, raw| {
        batches.push(ScannedBatch {
            position,
            header: *header,
            raw_header: raw.try_into().expect("a whole header"),
        })
    });
    scan.batches.extend(batches);
    scan.tail_problem = match stop {
        WalkStop::End => None,
        WalkStop::Incomplete { need } => Some(format!(
            "at byte {valid}: torn batch, {} of {need} bytes present",
            origin + bytes.len() as u64 - valid
        )),
        WalkStop::Bad(problem) => Some(problem),
    };
    scan.valid_len = valid;
    assert!(scan.valid_len <= scan.file_len);
    assert!(scan.valid_len >= origin);
    // Postcondition: the kept batches are packed and dense up to the valid length.
    if let [.., last] = scan.batches.as_slice() {
        assert_eq!(last.position + last.header.size as u64, scan.valid_len);
        assert_eq!(last.header.next_offset(), next);
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
    /// Log compaction (`cleanup.policy`, `delete.retention.ms`, ...; [`crate::log::cleaner`]).
    pub compaction: CompactionSettings,
    /// `message.timestamp.type`: whose clock stamps the batches (see [`TimestampType`]).
    pub timestamp_type: TimestampType,
    /// `compression.type`: the codec stored batches carry (see [`TopicCompression`]).
    pub compression: TopicCompression,
    /// `index.interval.bytes`: bytes between two sparse index entries ([`crate::log::index`]).
    pub index_interval_bytes: u32,
}

impl TopicSettings {
    /// These settings (the broker's defaults) made fit for `__consumer_offsets`: never deleted
    /// by retention (Kafka compacts it; see `group::runtime`'s `compact`), batches as large as a
    /// segment (a snapshot holds every live key of a partition), stored as the coordinator
    /// writes them (Kafka creates it with `compression.type=producer`; CreateTime too).
    pub fn for_offsets_topic(self) -> TopicSettings {
        let s = TopicSettings {
            retention_ms: -1,
            retention_bytes: -1,
            max_message_bytes: (self.segment_bytes - 64).min(64 * 1024 * 1024) as u32,
            timestamp_type: TimestampType::CreateTime,
            compression: TopicCompression::Producer,
            ..self
        };
        assert!(
            (s.max_message_bytes as u64) < s.segment_bytes,
            "a snapshot fits a segment"
        );
        s
    }
}

/// The topic configs of log compaction (Kafka's `cleanup.policy` and the cleaner's per-topic
/// settings). See [`crate::log::cleaner`] for what they do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionSettings {
    /// `cleanup.policy`: delete old segments by time and size, compact by key, or both.
    pub policy: CleanupPolicy,
    /// `delete.retention.ms`: how long a tombstone (a record with a null value) stays after
    /// the cleaner first passed over it, so a consumer that was reading behind still sees the
    /// delete. Default one day.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`, in thousandths: the cleaner cleans a log only when the
    /// dirty part (not yet cleaned) is at least this share of the closed segments. Default 500.
    pub min_cleanable_dirty_ratio_permille: u16,
    /// `min.compaction.lag.ms`: a record younger than this is never compacted away. Default 0.
    pub min_compaction_lag_ms: i64,
}

impl Default for CompactionSettings {
    fn default() -> Self {
        CompactionSettings {
            policy: CleanupPolicy::Delete,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio_permille: 500,
            min_compaction_lag_ms: 0,
        }
    }
}

impl CompactionSettings {
    /// The compaction topic configs as DescribeConfigs shows them: (Kafka name, value).
    pub fn entries(&self) -> [(&'static str, String); 4] {
        let ratio = self.min_cleanable_dirty_ratio_permille as f64 / 1000.0;
        assert!((0.0..=1.0).contains(&ratio), "a ratio is a share");
        [
            ("cleanup.policy", self.policy.name().to_string()),
            ("delete.retention.ms", self.delete_retention_ms.to_string()),
            ("min.cleanable.dirty.ratio", format!("{ratio}")),
            (
                "min.compaction.lag.ms",
                self.min_compaction_lag_ms.to_string(),
            ),
        ]
    }

    /// Apply one topic config if it is one of compaction's (`None` restores `default`'s
    /// value): None for any other key, else whether the value was valid (a message naming it
    /// if not, for INVALID_CONFIG).
    pub fn apply(
        &mut self,
        key: &str,
        value: Option<&str>,
        default: &CompactionSettings,
    ) -> Option<Result<(), String>> {
        let d = default;
        let Some(v) = value else {
            match key {
                "cleanup.policy" => self.policy = d.policy,
                "delete.retention.ms" => self.delete_retention_ms = d.delete_retention_ms,
                "min.cleanable.dirty.ratio" => {
                    self.min_cleanable_dirty_ratio_permille = d.min_cleanable_dirty_ratio_permille
                }
                "min.compaction.lag.ms" => self.min_compaction_lag_ms = d.min_compaction_lag_ms,
                _ => return None,
            }
            return Some(Ok(()));
        };
        let invalid = |expected: &str| {
            Err(format!(
                "invalid value {v:?} for configuration {key}: expected {expected}"
            ))
        };
        let ms = || v.parse::<i64>().ok().filter(|n| *n >= 0);
        let result = match key {
            "cleanup.policy" => match CleanupPolicy::parse(v) {
                Some(p) => {
                    self.policy = p;
                    Ok(())
                }
                None => invalid("a list of delete and compact"),
            },
            "delete.retention.ms" => match ms() {
                Some(n) => {
                    self.delete_retention_ms = n;
                    Ok(())
                }
                None => invalid("a number of milliseconds >= 0"),
            },
            "min.compaction.lag.ms" => match ms() {
                Some(n) => {
                    self.min_compaction_lag_ms = n;
                    Ok(())
                }
                None => invalid("a number of milliseconds >= 0"),
            },
            "min.cleanable.dirty.ratio" => {
                match v.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)) {
                    Some(r) => {
                        self.min_cleanable_dirty_ratio_permille = (r * 1000.0).round() as u16;
                        Ok(())
                    }
                    None => invalid("a number in [0,1]"),
                }
            }
            _ => return None,
        };
        assert!(self.min_cleanable_dirty_ratio_permille <= 1000);
        assert!(self.delete_retention_ms >= 0 && self.min_compaction_lag_ms >= 0);
        Some(result)
    }
}

pub use crate::config::{CleanupPolicy, TimestampType, TopicCompression};

/// `partition.meta` format 3's [`TopicSettings`]: what format 4 added (timestamp type,
/// compression, index interval) is read with Kafka's defaults (CreateTime, producer, 4096).
#[derive(Serialize, Deserialize)]
struct TopicSettingsV3 {
    segment_bytes: u64,
    segment_ms: u64,
    retention_bytes: i64,
    retention_ms: i64,
    max_message_bytes: u32,
    compaction: CompactionSettings,
}

impl From<TopicSettingsV3> for TopicSettings {
    fn from(v: TopicSettingsV3) -> TopicSettings {
        TopicSettings {
            segment_bytes: v.segment_bytes,
            segment_ms: v.segment_ms,
            retention_bytes: v.retention_bytes,
            retention_ms: v.retention_ms,
            max_message_bytes: v.max_message_bytes,
            compaction: v.compaction,
            timestamp_type: TimestampType::CreateTime,
            compression: TopicCompression::Producer,
            index_interval_bytes: crate::config::INDEX_INTERVAL_BYTES_DEFAULT,
        }
    }
}

/// [`TopicSettings`] before format 3 of `partition.meta`, which added compaction.
#[derive(Serialize, Deserialize)]
struct TopicSettingsV2 {
    segment_bytes: u64,
    segment_ms: u64,
    retention_bytes: i64,
    retention_ms: i64,
    max_message_bytes: u32,
}

impl From<TopicSettingsV2> for TopicSettings {
    fn from(v: TopicSettingsV2) -> TopicSettings {
        TopicSettingsV3 {
            segment_bytes: v.segment_bytes,
            segment_ms: v.segment_ms,
            retention_bytes: v.retention_bytes,
            retention_ms: v.retention_ms,
            max_message_bytes: v.max_message_bytes,
            compaction: CompactionSettings::default(),
        }
        .into()
    }
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
    /// The partition's log start offset (Kafka's `log-start-offset-checkpoint`): records below
    /// it were deleted by DeleteRecords (KIP-107) and are never served again, even while the
    /// segment holding them still exists. Retention and compaction move the start only by
    /// deleting whole segments, which the segment files themselves record, so this is the
    /// start as DeleteRecords last left it (0 if never used).
    pub log_start_offset: i64,
}

/// `partition.meta` before format 2, which added `log_start_offset`; still read.
#[derive(Serialize, Deserialize)]
struct PartitionMetaV1 {
    topic: String,
    topic_id: [u8; 16],
    partition: i32,
    partition_count: i32,
    settings: TopicSettingsV2,
}

/// `partition.meta` of format 2 (with the log start offset, before compaction settings).
#[derive(Serialize, Deserialize)]
struct PartitionMetaV2 {
    topic: String,
    topic_id: [u8; 16],
    partition: i32,
    partition_count: i32,
    settings: TopicSettingsV2,
    log_start_offset: i64,
}

impl From<PartitionMetaV2> for PartitionMeta {
    fn from(v2: PartitionMetaV2) -> PartitionMeta {
        PartitionMeta {
            topic: v2.topic,
            topic_id: v2.topic_id,
            partition: v2.partition,
            partition_count: v2.partition_count,
            settings: v2.settings.into(),
            log_start_offset: v2.log_start_offset,
        }
    }
}

/// `partition.meta` of format 3 (with compaction, before the timestamp type, compression and
/// index interval).
#[derive(Serialize, Deserialize)]
struct PartitionMetaV3 {
    topic: String,
    topic_id: [u8; 16],
    partition: i32,
    partition_count: i32,
    settings: TopicSettingsV3,
    log_start_offset: i64,
}

impl From<PartitionMetaV3> for PartitionMeta {
    fn from(v3: PartitionMetaV3) -> PartitionMeta {
        PartitionMeta {
            topic: v3.topic,
            topic_id: v3.topic_id,
            partition: v3.partition,
            partition_count: v3.partition_count,
            settings: v3.settings.into(),
            log_start_offset: v3.log_start_offset,
        }
    }
}

/// The format version of `partition.meta` (2: with the log start offset; 3: with the
/// compaction settings; 4: with `message.timestamp.type`, `compression.type` and
/// `index.interval.bytes`).
pub const PARTITION_META_VERSION: u16 = 4;

/// The contents of `broker.meta`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerMeta {
    pub cluster_id: [u8; 16],
    /// Producer ids below this may have been handed out; a restarted broker starts above it.
    pub producer_id_block_end: i64,
}

pub(crate) fn encode_file<T: Serialize>(magic: &[u8; 8], value: &T) -> Bytes {
    encode_file_at(magic, FORMAT_VERSION, value)
}

pub(crate) fn encode_file_at<T: Serialize>(magic: &[u8; 8], version: u16, value: &T) -> Bytes {
    let payload = postcard::to_allocvec(value).expect("postcard encodes plain structs");
    let mut b = BytesMut::with_capacity(payload.len() + 18);
    b.put_slice(magic);
    b.put_u16(version);
    b.put_u32(payload.len() as u32);
    b.put_slice(&payload);
    let crc = crc32fast::hash(&b);
    b.put_u32(crc);
    b.freeze()
}

pub(crate) fn decode_file<T: for<'de> Deserialize<'de>>(
    magic: &[u8; 8],
    bytes: &[u8],
) -> Result<T, FileError> {
    let (_, payload) = file_payload(magic, bytes, &[FORMAT_VERSION])?;
    decode_payload(payload)
}

pub(crate) fn decode_payload<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, FileError> {
    postcard::from_bytes(payload).map_err(|e| FileError::Decode(e.to_string()))
}

/// Check a file's magic, version (one of `versions`), length and CRC; return the version and
/// the payload.
pub(crate) fn file_payload<'a>(
    magic: &[u8; 8],
    bytes: &'a [u8],
    versions: &[u16],
) -> Result<(u16, &'a [u8]), FileError> {
    if bytes.len() < 18 {
        return Err(FileError::Truncated);
    }
    if &bytes[..8] != magic {
        return Err(FileError::BadMagic);
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    if !versions.contains(&version) {
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
    Ok((version, &bytes[14..14 + len]))
}

impl PartitionMeta {
    pub fn encode(&self) -> Bytes {
        assert!(self.log_start_offset >= 0, "a log starts at an offset");
        encode_file_at(PARTITION_META_MAGIC, PARTITION_META_VERSION, self)
    }
    /// Read any format: a version-1 file (written before DeleteRecords existed) has its
    /// log start at 0, which recovery raises to the first segment's base offset; a file of
    /// version 1 or 2 (before compaction) has the default compaction settings (`delete`).
    pub fn decode(bytes: &[u8]) -> Result<PartitionMeta, FileError> {
        let accepted = [FORMAT_VERSION, 2, 3, PARTITION_META_VERSION];
        match file_payload(PARTITION_META_MAGIC, bytes, &accepted)? {
            (1, payload) => {
                let v1: PartitionMetaV1 = decode_payload(payload)?;
                let v2 = PartitionMetaV2 {
                    topic: v1.topic,
                    topic_id: v1.topic_id,
                    partition: v1.partition,
                    partition_count: v1.partition_count,
                    settings: v1.settings,
                    log_start_offset: 0,
                };
                Ok(v2.into())
            }
            (2, payload) => Ok(decode_payload::<PartitionMetaV2>(payload)?.into()),
            (3, payload) => Ok(decode_payload::<PartitionMetaV3>(payload)?.into()),
            (_, payload) => decode_payload(payload),
        }
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

    #[test]
    fn partition_meta_of_format_1_is_still_read() {
        let old_settings = || TopicSettingsV2 {
            segment_bytes: 4096,
            segment_ms: 1,
            retention_bytes: -1,
            retention_ms: 7,
            max_message_bytes: 1000,
        };
        let settings: TopicSettings = old_settings().into();
        let old = PartitionMetaV1 {
            topic: "t".into(),
            topic_id: [3; 16],
            partition: 1,
            partition_count: 2,
            settings: old_settings(),
        };
        let bytes = encode_file_at(PARTITION_META_MAGIC, 1, &old);
        let m = PartitionMeta::decode(&bytes).unwrap();
        assert_eq!((m.partition, m.log_start_offset), (1, 0));
        assert_eq!(m.settings, settings);
        let new = PartitionMeta {
            log_start_offset: 42,
            ..m
        };
        assert_eq!(PartitionMeta::decode(&new.encode()).unwrap(), new);
        let v2 = PartitionMetaV2 {
            topic: "t".into(),
            topic_id: [3; 16],
            partition: 1,
            partition_count: 2,
            settings: old_settings(),
            log_start_offset: 9,
        };
        let m2 = PartitionMeta::decode(&encode_file_at(PARTITION_META_MAGIC, 2, &v2)).unwrap();
        assert_eq!(
            (m2.log_start_offset, m2.settings.compaction.policy),
            (9, CleanupPolicy::Delete)
        );
        let compacted = PartitionMeta {
            settings: TopicSettings {
                compaction: CompactionSettings {
                    policy: CleanupPolicy::Compact,
                    delete_retention_ms: 5,
                    ..CompactionSettings::default()
                },
                ..new.settings.clone()
            },
            ..new
        };
        assert_eq!(
            PartitionMeta::decode(&compacted.encode()).unwrap(),
            compacted
        );
        // Format 3 (compaction, nothing after it) reads with the Kafka defaults of the
        // settings format 4 added.
        let v3 = PartitionMetaV3 {
            topic: "t".into(),
            topic_id: [3; 16],
            partition: 1,
            partition_count: 2,
            settings: TopicSettingsV3 {
                segment_bytes: 4096,
                segment_ms: 1,
                retention_bytes: -1,
                retention_ms: 7,
                max_message_bytes: 1000,
                compaction: compacted.settings.compaction,
            },
            log_start_offset: 42,
        };
        let m3 = PartitionMeta::decode(&encode_file_at(PARTITION_META_MAGIC, 3, &v3)).unwrap();
        assert_eq!(m3, compacted, "format 3 carries the defaults of format 4");
        let stamped = PartitionMeta {
            settings: TopicSettings {
                timestamp_type: TimestampType::LogAppendTime,
                compression: TopicCompression::Zstd,
                index_interval_bytes: 100,
                ..compacted.settings.clone()
            },
            ..compacted.clone()
        };
        assert_eq!(PartitionMeta::decode(&stamped.encode()).unwrap(), stamped);
        let mut future = compacted.encode().to_vec();
        future[9] = 5;
        assert_eq!(
            PartitionMeta::decode(&future),
            Err(FileError::UnsupportedVersion(5))
        );
    }
}
