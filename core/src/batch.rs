//! Kafka's record batch (message format v2, KIP-98), read by its header alone.
//!
//! gregor never decodes the records inside a batch on the produce or fetch path: it checks the
//! header and the CRC, assigns offsets by rewriting the `baseOffset` field, and stores and serves
//! the producer's bytes as they came. Two topic configs change the bytes on append, both inside
//! the CRC, which is then recomputed: `message.timestamp.type=LogAppendTime` sets the
//! timestamp-type bit and `maxTimestamp` ([`stamp_log_append_time`]), and a `compression.type`
//! other than the producer's codec recompresses the records section ([`recompress`]). The one place it looks inside is ListOffsets by timestamp
//! ([`first_record_at_or_after`]), which Kafka answers at record granularity, decompressing the
//! batch (gzip, snappy, lz4 or zstd) as its `LogSegment.findOffsetByTimestamp` does. The CRC-32C covers everything from `attributes` to the end,
//! so the broker may rewrite `baseOffset` and `partitionLeaderEpoch` without recomputing it.
//!
//! ```text
//! offset  size  field
//!  0      8     baseOffset            rewritten by the broker on append
//!  8      4     batchLength           bytes after this field
//! 12      4     partitionLeaderEpoch  rewritten by the broker on append
//! 16      1     magic                 must be 2
//! 17      4     crc                   CRC-32C of bytes 21..end
//! 21      2     attributes            compression (bits 0-2), timestamp type (3),
//!                                     transactional (4), control (5)
//! 23      4     lastOffsetDelta
//! 27      8     baseTimestamp
//! 35      8     maxTimestamp
//! 43      8     producerId            -1 unless idempotent
//! 51      2     producerEpoch
//! 53      4     baseSequence
//! 57      4     recordsCount
//! 61      ...   records
//! ```

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Size of the fixed v2 batch header.
pub const HEADER_BYTES: usize = 61;
/// `baseOffset` + `batchLength`: the prefix not counted by `batchLength`.
pub const LOG_OVERHEAD: usize = 12;

/// The fields of a batch header that the broker uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Total size of the batch in bytes, including the 12-byte prefix.
    pub size: usize,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

/// Why a batch was refused. Each maps to the Kafka error a producer expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than a header, or `batchLength` pointing past the end (CORRUPT_MESSAGE).
    Truncated { have: usize, need: usize },
    /// Magic byte other than 2 (UNSUPPORTED_FOR_MESSAGE_FORMAT).
    Magic(i8),
    /// Stored CRC does not match the bytes (CORRUPT_MESSAGE).
    Crc { stored: u32, computed: u32 },
    /// Header fields contradict each other (INVALID_RECORD).
    Invalid(&'static str),
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Truncated { have, need } => {
                write!(f, "truncated record batch: have {have} bytes, need {need}")
            }
            BatchError::Magic(m) => write!(f, "unsupported record batch magic {m} (only v2)"),
            BatchError::Crc { stored, computed } => {
                write!(
                    f,
                    "record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            BatchError::Invalid(why) => write!(f, "invalid record batch: {why}"),
        }
    }
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

impl BatchHeader {
    /// Parse the header at the start of `bytes`, checking only that the header is there and that
    /// `batchLength` is sane. Does not check the CRC; see [`BatchHeader::verify`].
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
        if bytes.len() < HEADER_BYTES {
            return Err(BatchError::Truncated {
                have: bytes.len(),
                need: HEADER_BYTES,
            });
        }
        let batch_length = i32_at(bytes, 8);
        if batch_length < (HEADER_BYTES - LOG_OVERHEAD) as i32 {
            return Err(BatchError::Invalid(
                "batchLength smaller than a batch header",
            ));
        }
        let size = batch_length as usize + LOG_OVERHEAD;
        let magic = bytes[16] as i8;
        if magic != 2 {
            return Err(BatchError::Magic(magic));
        }
        let h = BatchHeader {
            base_offset: i64_at(bytes, 0),
            size,
            partition_leader_epoch: i32_at(bytes, 12),
            magic,
            crc: u32::from_be_bytes(bytes[17..21].try_into().unwrap()),
            attributes: i16_at(bytes, 21),
            last_offset_delta: i32_at(bytes, 23),
            base_timestamp: i64_at(bytes, 27),
            max_timestamp: i64_at(bytes, 35),
            producer_id: i64_at(bytes, 43),
            producer_epoch: i16_at(bytes, 51),
            base_sequence: i32_at(bytes, 53),
            records_count: i32_at(bytes, 57),
        };
        Ok(h)
    }

    /// Check the CRC and the header's internal consistency against the whole batch, which must
    /// be exactly `self.size` bytes.
    pub fn verify(&self, batch: &[u8]) -> Result<(), BatchError> {
        if batch.len() < self.size {
            return Err(BatchError::Truncated {
                have: batch.len(),
                need: self.size,
            });
        }
        let computed = crc32c::crc32c(&batch[21..self.size]);
        if computed != self.crc {
            return Err(BatchError::Crc {
                stored: self.crc,
                computed,
            });
        }
        if self.records_count < 0 || self.last_offset_delta < 0 {
            return Err(BatchError::Invalid("negative record count or offset delta"));
        }
        if self.records_count == 0 && !self.is_control() {
            return Err(BatchError::Invalid("empty batch"));
        }
        Ok(())
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    pub fn compression(&self) -> i16 {
        self.attributes & 0x7
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
    /// The batch's timestamps are the broker's (attribute bit 3, KIP-32's LogAppendTime):
    /// every record has `max_timestamp`.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// Sequence number of the batch's last record, wrapping at i32::MAX as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }
}

/// The first record of `batch` (one whole, stored v2 batch) at or above offset `from` (the log
/// start) whose timestamp is at least `ts`, as (offset, timestamp); None if there is none. Records are decoded, decompressing the
/// batch if needed: pure computation, no I/O. A batch whose timestamps are the broker's
/// (LogAppendTime, attribute bit 3) gives every record the batch's `maxTimestamp`, as Kafka does.
/// An undecodable batch is the caller's to handle (the stored bytes passed their CRC at append,
/// so this means a codec gregor cannot read, not damage).
///
/// Reference: Kafka's `LogSegment.findOffsetByTimestamp` and `RecordBatch.iterator`.
pub fn first_record_at_or_after(
    batch: &[u8],
    ts: i64,
    from: i64,
) -> Result<Option<(i64, i64)>, String> {
    let header = BatchHeader::parse(batch).map_err(|e| e.to_string())?;
    if batch.len() < header.size {
        return Err(format!(
            "batch {} cut short: {} of {} bytes",
            header.base_offset,
            batch.len(),
            header.size
        ));
    }
    let mut buf = bytes::Bytes::copy_from_slice(&batch[..header.size]);
    let set = kafka_protocol::records::RecordBatchDecoder::decode_with_custom_compression(
        &mut buf,
        Some(decompress),
    )
    .map_err(|e| {
        format!(
            "cannot decode the records of batch {}: {e}",
            header.base_offset
        )
    })?;
    let log_append_time = header.is_log_append_time();
    for r in &set.records {
        // A producer's bytes, not gregor's state: a record outside its header's range is bad
        // input, reported, never asserted.
        if r.offset < header.base_offset || r.offset > header.last_offset() {
            return Err(format!(
                "record offset {} outside its batch {}..={}",
                r.offset,
                header.base_offset,
                header.last_offset()
            ));
        }
        let t = if log_append_time {
            header.max_timestamp
        } else {
            r.timestamp
        };
        if t >= ts && r.offset >= from {
            return Ok(Some((r.offset, t)));
        }
    }
    Ok(None)
}

/// The most bytes the records of one batch may decompress to before gregor gives up on them.
/// A producer's compressed bytes are bad input until shown otherwise: a few kilobytes of zstd or
/// gzip can claim gigabytes (a "decompression bomb"), and the broker must not allocate them.
/// Beyond this the batch counts as undecodable (ListOffsets then answers with the batch's first
/// offset, never past the right record).
pub const DECOMPRESSED_RECORDS_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The records section of a batch, decompressed, at most [`DECOMPRESSED_RECORDS_BYTES_MAX`]
/// bytes. Each codec is read as a stream and stopped at the limit, so a bomb costs the limit and
/// no more. gzip, snappy, zstd and LZ4 as Kafka writes them: gzip members, snappy raw or in
/// xerial's framing (the Java client's), zstd frames, the LZ4 frame format (KIP-57).
pub fn decompress(
    records: &mut bytes::Bytes,
    codec: kafka_protocol::records::Compression,
) -> anyhow::Result<bytes::Bytes> {
    use bytes::Buf;
    use kafka_protocol::records::Compression;
    let input = records.copy_to_bytes(records.remaining());
    let out = match codec {
        Compression::None => return Ok(input),
        Compression::Gzip => bounded(flate2::read::MultiGzDecoder::new(&input[..]))?,
        Compression::Zstd => bounded(zstd::stream::read::Decoder::new(&input[..])?)?,
        Compression::Lz4 => bounded(lz4_flex::frame::FrameDecoder::new(&input[..]))?,
        Compression::Snappy => snappy(&input)?,
    };
    assert!(out.len() <= DECOMPRESSED_RECORDS_BYTES_MAX);
    Ok(out.into())
}

/// Read a decompressing stream to its end, refusing more than the limit.
fn bounded(r: impl std::io::Read) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(r, DECOMPRESSED_RECORDS_BYTES_MAX as u64 + 1),
        &mut out,
    )?;
    anyhow::ensure!(
        out.len() <= DECOMPRESSED_RECORDS_BYTES_MAX,
        "records decompress to more than {DECOMPRESSED_RECORDS_BYTES_MAX} bytes"
    );
    Ok(out)
}

/// Snappy as Kafka clients write it: xerial's framing (an 8-byte magic, two 4-byte version
/// fields, then blocks each prefixed by its 4-byte length), or a bare raw block as librdkafka
/// may send. Each block declares its decompressed length up front: checked before allocating.
fn snappy(input: &[u8]) -> anyhow::Result<Vec<u8>> {
    const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
    let mut out = Vec::new();
    let block = |b: &[u8], out: &mut Vec<u8>| -> anyhow::Result<()> {
        let n = snap::raw::decompress_len(b)?;
        anyhow::ensure!(
            out.len() + n <= DECOMPRESSED_RECORDS_BYTES_MAX,
            "records decompress to more than {DECOMPRESSED_RECORDS_BYTES_MAX} bytes"
        );
        let at = out.len();
        out.resize(at + n, 0);
        let written = snap::raw::Decoder::new().decompress(b, &mut out[at..])?;
        out.truncate(at + written);
        Ok(())
    };
    if !input.starts_with(XERIAL_MAGIC) {
        block(input, &mut out)?;
        return Ok(out);
    }
    anyhow::ensure!(input.len() >= 16, "xerial snappy header cut short");
    let mut rest = &input[16..];
    while !rest.is_empty() {
        anyhow::ensure!(rest.len() >= 4, "xerial snappy block length cut short");
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        anyhow::ensure!(rest.len() - 4 >= len, "xerial snappy block cut short");
        block(&rest[4..4 + len], &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// The codec of id `id` (a batch's attribute bits 0–2), or an error for an id no codec has.
pub fn codec_from_id(id: i16) -> Result<Compression, String> {
    Ok(match id {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        other => {
            return Err(format!(
                "unknown compression codec {other} in batch attributes"
            ))
        }
    })
}

/// `records` (a batch's records section, uncompressed) compressed with `codec` as Kafka's
/// clients write it: gzip, snappy in xerial's framing and zstd through `kafka-protocol`'s
/// codecs (the ones its encoder uses), LZ4 as a frame of independent 64 KiB blocks (KIP-57;
/// Kafka's own `KafkaLZ4BlockOutputStream` writes no other kind), through `lz4_flex`.
pub fn compress(records: &[u8], codec: Compression) -> anyhow::Result<Vec<u8>> {
    use bytes::BufMut;
    use kafka_protocol::compression::{Compressor, Gzip, Snappy, Zstd};
    let mut out = Vec::with_capacity(records.len() / 2 + 64);
    let put = |b: &mut BytesMut| {
        b.put_slice(records);
        Ok(())
    };
    match codec {
        Compression::None => out.extend_from_slice(records),
        Compression::Gzip => <Gzip as Compressor<Vec<u8>>>::compress(&mut out, put)?,
        Compression::Snappy => <Snappy as Compressor<Vec<u8>>>::compress(&mut out, put)?,
        Compression::Zstd => <Zstd as Compressor<Vec<u8>>>::compress(&mut out, put)?,
        Compression::Lz4 => {
            use lz4_flex::frame::{BlockMode, BlockSize, FrameEncoder, FrameInfo};
            let info = FrameInfo::new()
                .block_mode(BlockMode::Independent)
                .block_size(BlockSize::Max64KB);
            let mut enc = FrameEncoder::with_frame_info(info, out);
            std::io::Write::write_all(&mut enc, records)?;
            out = enc.finish()?;
        }
    }
    Ok(out)
}

/// Store one whole v2 batch (its CRC holding) in `codec`, as the broker does for a topic whose
/// `compression.type` names a codec other than the producer's (Kafka's
/// `LogValidator.validateMessagesAndAssignOffsetsCompressed`): the records section is
/// decompressed (at most [`DECOMPRESSED_RECORDS_BYTES_MAX`]) and compressed again, the codec
/// bits of `attributes` and `batchLength` are set, and the CRC is recomputed, since both lie
/// inside it. Every other header field, and every record, is kept: a v2 record is the same
/// bytes whatever the codec around it. An error (the producer's compressed bytes do not
/// decompress) is the producer's fault: CORRUPT_MESSAGE.
pub fn recompress(batch: &[u8], codec: Compression) -> Result<Vec<u8>, String> {
    let header = BatchHeader::parse(batch).map_err(|e| e.to_string())?;
    assert_eq!(header.size, batch.len(), "one whole batch");
    let from = codec_from_id(header.compression())?;
    let mut section = Bytes::copy_from_slice(&batch[HEADER_BYTES..]);
    let plain = decompress(&mut section, from)
        .map_err(|e| format!("cannot decompress the {from:?} records of the batch: {e}"))?;
    let packed = compress(&plain, codec)
        .map_err(|e| format!("cannot compress the records with {codec:?}: {e}"))?;
    let mut b = Vec::with_capacity(HEADER_BYTES + packed.len());
    b.extend_from_slice(&batch[..HEADER_BYTES]);
    b.extend_from_slice(&packed);
    let len = i32::try_from(b.len() - LOG_OVERHEAD)
        .map_err(|_| "the recompressed batch is larger than 2 GiB".to_string())?;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let attributes = (header.attributes & !0x7) | codec as i16;
    b[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    // Postcondition: a batch that verifies, in the new codec, of the same records and offsets.
    let h = BatchHeader::parse(&b).expect("a rewritten header parses");
    assert!(h.verify(&b).is_ok(), "a recompressed batch verifies");
    assert_eq!(h.compression(), codec as i16);
    assert_eq!(
        (h.base_offset, h.last_offset_delta, h.records_count),
        (
            header.base_offset,
            header.last_offset_delta,
            header.records_count
        )
    );
    Ok(b)
}

/// Mark a whole v2 batch as stamped by the broker (KIP-32's LogAppendTime): attribute bit 3
/// set and `maxTimestamp` set to `append_time_ms`, the CRC recomputed since both lie inside
/// it, as Kafka's `DefaultRecordBatch.setMaxTimestamp` does. Readers then give every record
/// of the batch that time; the records' own deltas stay but are not read.
pub fn stamp_log_append_time(batch: &mut [u8], append_time_ms: i64) {
    let header = BatchHeader::parse(batch).expect("a batch that was parsed before");
    assert_eq!(header.size, batch.len(), "one whole batch");
    let attributes = header.attributes | 0x08;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&append_time_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    let h = BatchHeader::parse(batch).expect("a rewritten header parses");
    assert!(h.verify(batch).is_ok(), "a stamped batch verifies");
    assert!(h.is_log_append_time() && h.max_timestamp == append_time_ms);
}

/// Rewrite the broker-owned fields of a batch in place: the base offset it was assigned and the
/// leader epoch under which it was appended. Neither is covered by the CRC.
pub fn assign(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    assert!(batch.len() >= HEADER_BYTES);
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// One record to put in a batch with [`encode`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rec {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub timestamp_ms: i64,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Encode records as a producer does: one Kafka v2 batch with base offset 0, through the same
/// `kafka-protocol` encoder Rust clients use. `producer` is `(producer id, epoch, base
/// sequence)` for an idempotent producer (KIP-98), `None` for a plain one. It fails only when
/// the compression codec does (the broker rewrites the offsets on append).
pub fn encode(
    recs: &[Rec],
    producer: Option<(i64, i16, i32)>,
    compression: Compression,
) -> Result<Bytes, EncodeError> {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset − sequence is constant; without
            // a producer id the batch's base sequence is −1.
            sequence: if seq < 0 {
                i as i32 - 1
            } else {
                seq + i as i32
            },
            timestamp: r.timestamp_ms,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.clone().into(), v.clone()))
                .collect(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| EncodeError(e.to_string()))?;
    let bytes = buf.freeze();
    if !recs.is_empty() {
        // What the encoder wrote is what a broker will check: one whole v2 batch whose CRC
        // holds, at base offset 0, counting every record, for the producer it was given.
        let h = BatchHeader::parse(&bytes).expect("the encoder writes a v2 batch header");
        assert_eq!(h.size, bytes.len(), "the records went into one batch");
        assert!(h.verify(&bytes).is_ok(), "the encoder's CRC holds");
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.records_count as usize, recs.len());
        assert_eq!(h.producer_id, producer.map_or(-1, |p| p.0));
    }
    Ok(bytes)
}

/// A batch could not be encoded (its compression codec failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot encode a record batch: {}", self.0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Build a valid v2 batch with `count` records of the given sizes. Used by tests across the
    /// crate; the records themselves are opaque bytes to the broker.
    pub fn make_batch(count: i32, producer: Option<(i64, i16, i32)>, timestamp: i64) -> Vec<u8> {
        let body_len = 16 * count as usize;
        let mut b = vec![0u8; HEADER_BYTES + body_len];
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        b[27..35].copy_from_slice(&timestamp.to_be_bytes());
        b[35..43].copy_from_slice(&timestamp.to_be_bytes());
        let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        for (i, byte) in b[HEADER_BYTES..].iter_mut().enumerate() {
            *byte = (i % 251) as u8;
        }
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn parse_verify_assign() {
        let mut b = make_batch(3, Some((7, 0, 10)), 1000);
        let h = BatchHeader::parse(&b).unwrap();
        h.verify(&b).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_sequence(), 12);
        assign(&mut b, 42, 0);
        let h2 = BatchHeader::parse(&b).unwrap();
        assert_eq!(h2.base_offset, 42);
        assert_eq!(h2.last_offset(), 44);
        h2.verify(&b)
            .expect("rewriting the base offset keeps the CRC valid");
    }

    /// An uncompressed batch re-encoded as a producer's LZ4 batch (the test encoder has no
    /// LZ4: see [`decompress`]): the records section as an LZ4 frame, attributes, length and
    /// CRC updated.
    pub fn lz4_batch(plain: &[u8]) -> Vec<u8> {
        let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut enc, &plain[HEADER_BYTES..]).unwrap();
        let frame = enc.finish().unwrap();
        let mut b = plain[..HEADER_BYTES].to_vec();
        b.extend_from_slice(&frame);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        let attributes = i16_at(&b, 21) | 3;
        b[21..23].copy_from_slice(&attributes.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn the_first_record_at_or_after_a_timestamp_is_found_in_every_codec() {
        use crate::kafka_protocol::records::Compression;
        let batch = |recs: &[Rec], p, c| encode(recs, p, c).unwrap();
        let recs: Vec<Rec> = (0..5)
            .map(|i| Rec {
                value: Some(bytes::Bytes::from(vec![b'v'; 300])),
                timestamp_ms: 1000 + 10 * i,
                ..Rec::default()
            })
            .collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut b = if c == Compression::Lz4 {
                lz4_batch(&batch(&recs, None, Compression::None))
            } else {
                batch(&recs, None, c).to_vec()
            };
            assign(&mut b, 40, 0);
            let h = BatchHeader::parse(&b).unwrap();
            h.verify(&b).unwrap();
            assert_eq!(h.compression(), c as i16, "{c:?}");
            for (ts, want) in [
                (0, Some((40, 1000))),
                (1000, Some((40, 1000))),
                (1001, Some((41, 1010))),
                (1020, Some((42, 1020))),
                (1040, Some((44, 1040))),
                (1041, None),
            ] {
                assert_eq!(
                    first_record_at_or_after(&b, ts, 0),
                    Ok(want),
                    "{c:?} at {ts}"
                );
            }
            assert!(first_record_at_or_after(&b[..b.len() - 1], 0, 0).is_err());
        }
    }

    /// Every codec to every codec: the recompressed batch verifies, names the new codec, and
    /// holds the same records (offsets, timestamps, keys, values, headers) as the original.
    #[test]
    fn recompression_keeps_every_record_in_every_codec() {
        use kafka_protocol::records::RecordBatchDecoder;
        let recs: Vec<Rec> = (0..7)
            .map(|i| Rec {
                key: (i % 3 != 0).then(|| Bytes::from(format!("key-{i}"))),
                value: (i != 4).then(|| Bytes::from(vec![b'a' + i as u8; 200 + i])),
                timestamp_ms: 1_000 + 17 * i as i64,
                headers: vec![("h".into(), Some(Bytes::from(format!("{i}"))))],
            })
            .collect();
        let decoded = |b: &[u8]| {
            let mut buf = Bytes::copy_from_slice(b);
            let set =
                RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(decompress))
                    .unwrap();
            assert!(buf.is_empty(), "one batch");
            set.records
                .into_iter()
                .map(|r| (r.offset, r.timestamp, r.key, r.value, r.headers))
                .collect::<Vec<_>>()
        };
        let codecs = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        let mut plain = encode(&recs, Some((9, 2, 40)), Compression::None)
            .unwrap()
            .to_vec();
        assign(&mut plain, 100, 3);
        let want = decoded(&plain);
        assert_eq!(want.len(), recs.len());
        for from in codecs {
            let source = recompress(&plain, from).unwrap();
            for to in codecs {
                let out = recompress(&source, to).unwrap();
                let h = BatchHeader::parse(&out).unwrap();
                h.verify(&out).unwrap();
                assert_eq!(h.compression(), to as i16, "{from:?} -> {to:?}");
                assert_eq!(
                    (h.base_offset, h.producer_id, h.base_sequence),
                    (100, 9, 40)
                );
                assert_eq!(decoded(&out), want, "{from:?} -> {to:?}");
            }
        }
        // Compressed batches of these repetitive values are smaller.
        assert!(recompress(&plain, Compression::Zstd).unwrap().len() < plain.len() / 2);
        // A compressed section that does not decompress is the producer's fault, not a panic.
        let mut gz = recompress(&plain, Compression::Gzip).unwrap();
        let n = gz.len();
        gz[HEADER_BYTES + 12..n - 8].fill(0x55);
        let crc = crc32c::crc32c(&gz[21..]);
        gz[17..21].copy_from_slice(&crc.to_be_bytes());
        let err = recompress(&gz, Compression::None).unwrap_err();
        assert!(err.contains("cannot decompress"), "{err}");
    }

    /// A LogAppendTime stamp: bit 3 and maxTimestamp set, the CRC still holds, and every
    /// record reads as the append time (ListOffsets by timestamp sees only it).
    #[test]
    fn a_log_append_time_stamp_gives_every_record_the_broker_time() {
        let recs: Vec<Rec> = (0..3)
            .map(|i| Rec {
                value: Some(Bytes::from_static(b"v")),
                timestamp_ms: 1_000 + i,
                ..Rec::default()
            })
            .collect();
        for c in [Compression::None, Compression::Zstd] {
            let mut b = encode(&recs, None, c).unwrap().to_vec();
            let before = BatchHeader::parse(&b).unwrap();
            assert!(!before.is_log_append_time());
            assert_eq!(first_record_at_or_after(&b, 1_001, 0), Ok(Some((1, 1_001))));
            stamp_log_append_time(&mut b, 50_000);
            let h = BatchHeader::parse(&b).unwrap();
            h.verify(&b).unwrap();
            assert!(h.is_log_append_time());
            assert_eq!(
                (h.max_timestamp, h.base_timestamp, h.compression()),
                (50_000, 1_000, c as i16)
            );
            assert_eq!(
                first_record_at_or_after(&b, 1_001, 0),
                Ok(Some((0, 50_000)))
            );
            assert_eq!(first_record_at_or_after(&b, 50_001, 0), Ok(None));
        }
    }

    #[test]
    fn a_decompression_bomb_is_refused_at_the_limit_in_every_codec() {
        use kafka_protocol::records::Compression;
        use std::io::Write;
        let zeros = vec![0u8; DECOMPRESSED_RECORDS_BYTES_MAX + 1];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&zeros).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::bulk::compress(&zeros, 1).unwrap();
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        lz4.write_all(&zeros).unwrap();
        let lz4 = lz4.finish().unwrap();
        let snappy = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        for (codec, bytes) in [
            (Compression::Gzip, gz),
            (Compression::Zstd, zst),
            (Compression::Lz4, lz4),
            (Compression::Snappy, snappy),
        ] {
            assert!(bytes.len() < zeros.len() / 10, "{codec:?}: a bomb is small");
            let err = decompress(&mut bytes::Bytes::from(bytes), codec).unwrap_err();
            assert!(err.to_string().contains("more than"), "{codec:?}: {err}");
        }
        // Exactly at the limit is fine.
        let ok = zstd::bulk::compress(&zeros[1..], 1).unwrap();
        let out = decompress(&mut bytes::Bytes::from(ok), Compression::Zstd).unwrap();
        assert_eq!(out.len(), DECOMPRESSED_RECORDS_BYTES_MAX);
    }

    #[test]
    fn corrupt_batches_are_refused() {
        let mut b = make_batch(1, None, 0);
        b[70] ^= 1;
        let h = BatchHeader::parse(&b).unwrap();
        assert!(matches!(h.verify(&b), Err(BatchError::Crc { .. })));
        assert!(matches!(
            BatchHeader::parse(&b[..30]),
            Err(BatchError::Truncated { .. })
        ));
        let mut m = make_batch(1, None, 0);
        m[16] = 1;
        assert_eq!(BatchHeader::parse(&m), Err(BatchError::Magic(1)));
    }
}
