//! Properties of every codec in the core that reads bytes from outside: record-batch headers
//! (what producers send), segment files and meta files (what a crash leaves on disk), and the
//! records of `__consumer_offsets`. Two kinds of property each:
//!
//! * **round trip**: what gregor writes, it reads back exactly;
//! * **never panic, never accept damage**: arbitrary or damaged bytes give a clean error (a
//!   Kafka error code or a cut tail), never a panic, and a damaged checksummed file is never
//!   taken for a good one.
//!
//! The Kafka request codec is checked the same way in `net` (`net/src/codec_props.rs`), where the
//! broker binary's allocator guard is installed.

use bytes::Bytes;
use gregor_core::batch::{assign, BatchError, BatchHeader, HEADER_BYTES};
use gregor_core::files::{
    scan_segment, segment_header, BrokerMeta, FileError, PartitionMeta, TopicSettings,
    SEGMENT_HEADER_BYTES,
};
use gregor_core::group::{
    decode_batches, encode_batch, GroupRecord, GroupValue, MemberValue, OffsetValue,
};
use gregor_core::kafka_protocol::records::{Compression, RecordBatchDecoder};
use gregor_core::testkit;
use proptest::prelude::*;

// ------------------------------------------------------------------ generators

/// One record as a producer would send it: optional key and value, a few headers.
#[derive(Clone, Debug)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    ts_delta: i64,
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        proptest::collection::vec(
            (
                "[a-z]{0,8}",
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            ),
            0..3,
        ),
        0i64..10_000,
    )
        .prop_map(|(key, value, headers, ts_delta)| Rec {
            key,
            value,
            headers,
            ts_delta,
        })
}

/// Producer identity of a batch: none, or (producer id, epoch, base sequence) as an idempotent
/// producer sends it.
fn producer() -> impl Strategy<Value = Option<(i64, i16, i32)>> {
    proptest::option::of((0i64..1 << 40, 0i16..100, 0i32..i32::MAX - 100))
}

/// Encode records as a producer does: a Kafka v2 batch with base offset 0, through the same
/// `kafka-protocol` encoder clients in Rust use.
fn producer_batch(
    recs: &[Rec],
    producer: Option<(i64, i16, i32)>,
    compression: Compression,
) -> Bytes {
    let recs: Vec<testkit::Rec> = recs
        .iter()
        .map(|r| testkit::Rec {
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            timestamp_ms: 1_700_000_000_000 + r.ts_delta,
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().map(Bytes::from)))
                .collect(),
        })
        .collect();
    testkit::batch(&recs, producer, compression)
}

fn group_record() -> impl Strategy<Value = GroupRecord> {
    let name = "[a-zA-Z0-9._-]{0,12}";
    let offset = proptest::option::of(
        (
            -1i64..i64::MAX,
            -1i32..1000,
            proptest::option::of("[ -~]{0,20}"),
            0i64..i64::MAX,
        )
            .prop_map(|(offset, leader_epoch, metadata, commit_ms)| OffsetValue {
                offset,
                leader_epoch,
                metadata,
                commit_ms,
            }),
    );
    let member = (
        name,
        proptest::option::of(name),
        name,
        1i32..600_000,
        1i32..600_000,
        proptest::collection::vec(any::<u8>(), 0..32),
        proptest::collection::vec(any::<u8>(), 0..32),
    )
        .prop_map(
            |(member_id, instance_id, client_id, s, r, subscription, assignment)| MemberValue {
                member_id,
                instance_id,
                client_id,
                session_timeout_ms: s,
                rebalance_timeout_ms: r,
                subscription,
                assignment,
            },
        );
    let group = proptest::option::of(
        (
            name,
            0i32..10_000,
            proptest::option::of(name),
            proptest::option::of(name),
            proptest::collection::vec(member, 0..4),
            0i64..i64::MAX,
        )
            .prop_map(
                |(protocol_type, generation, protocol, leader, members, state_ms)| GroupValue {
                    protocol_type,
                    generation,
                    protocol,
                    leader,
                    members,
                    state_ms,
                },
            ),
    );
    prop_oneof![
        (name, name, 0i32..10_000, offset).prop_map(|(group, topic, partition, value)| {
            GroupRecord::Offset {
                group,
                topic,
                partition,
                value,
            }
        }),
        (name, group).prop_map(|(group, value)| GroupRecord::Group { group, value }),
        (0i32..50).prop_map(|partition| GroupRecord::Reset { partition }),
    ]
}

fn settings() -> impl Strategy<Value = TopicSettings> {
    use gregor_core::config::{TimestampType, TopicCompression};
    (
        (any::<u64>(), any::<u64>(), any::<i64>(), any::<i64>()),
        any::<u32>(),
        any::<bool>(),
        0..TopicCompression::ALL.len(),
        0..=i32::MAX as u32,
    )
        .prop_map(
            |(
                (segment_bytes, segment_ms, retention_bytes, retention_ms),
                max_message_bytes,
                log_append_time,
                codec,
                index_interval_bytes,
            )| {
                TopicSettings {
                    segment_bytes,
                    segment_ms,
                    retention_bytes,
                    retention_ms,
                    max_message_bytes,
                    compaction: Default::default(),
                    timestamp_type: if log_append_time {
                        TimestampType::LogAppendTime
                    } else {
                        TimestampType::CreateTime
                    },
                    compression: TopicCompression::ALL[codec],
                    index_interval_bytes,
                }
            },
        )
}

// ------------------------------------------------------------------ record batches

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// A batch as a producer encodes it parses and verifies; the header fields are the
    /// producer's; and the broker's one rewrite — the base offset and leader epoch, which the
    /// CRC does not cover — keeps it valid and leaves every record intact at its new offset.
    #[test]
    fn batch_header_round_trip(
        recs in proptest::collection::vec(rec(), 1..12),
        producer in producer(),
        base in 0i64..1 << 50,
        epoch in 0i32..1000,
    ) {
        // (Compressed batches are the same to the broker: it never decompresses, so the
        // end-to-end tests with each codec cover them; core builds no codec.)
        let bytes = producer_batch(&recs, producer, Compression::None);
        let h = BatchHeader::parse(&bytes).unwrap();
        h.verify(&bytes).unwrap();
        prop_assert_eq!(h.size, bytes.len());
        prop_assert_eq!(h.base_offset, 0);
        prop_assert_eq!(h.records_count as usize, recs.len());
        prop_assert_eq!(h.last_offset_delta as usize, recs.len() - 1);
        prop_assert_eq!(h.producer_id, producer.map_or(-1, |p| p.0));
        prop_assert_eq!(h.base_sequence, producer.map_or(-1, |p| p.2));
        prop_assert_eq!(h.compression(), 0);

        let mut stored = bytes.to_vec();
        assign(&mut stored, base, epoch);
        let h2 = BatchHeader::parse(&stored).unwrap();
        h2.verify(&stored).unwrap();
        prop_assert_eq!(h2.base_offset, base);
        prop_assert_eq!(h2.next_offset(), base + recs.len() as i64);

        let mut buf = Bytes::from(stored);
        let decoded = RecordBatchDecoder::decode(&mut buf).unwrap();
        prop_assert_eq!(decoded.records.len(), recs.len());
        for (i, (d, r)) in decoded.records.iter().zip(&recs).enumerate() {
            prop_assert_eq!(d.offset, base + i as i64);
            prop_assert_eq!(d.key.as_deref(), r.key.as_deref());
            prop_assert_eq!(d.value.as_deref(), r.value.as_deref());
            prop_assert_eq!(d.headers.len(), r.headers.iter().map(|h| &h.0).collect::<std::collections::BTreeSet<_>>().len());
        }
    }

    /// Any change to the bytes the CRC covers (attributes onward) is caught: the broker answers
    /// CORRUPT_MESSAGE instead of storing a damaged batch.
    #[test]
    fn batch_damage_is_caught(
        recs in proptest::collection::vec(rec(), 1..6),
        producer in producer(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut bytes = producer_batch(&recs, producer, Compression::None).to_vec();
        let at = 21 + at.index(bytes.len() - 21);
        bytes[at] ^= xor;
        let verdict = BatchHeader::parse(&bytes).and_then(|h| h.verify(&bytes));
        prop_assert!(verdict.is_err(), "damage at byte {} accepted", at);
    }

    /// Arbitrary bytes never panic the header parser or the verifier.
    #[test]
    fn batch_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(h) = BatchHeader::parse(&bytes) {
            prop_assert!(h.size >= HEADER_BYTES);
            let _ = h.verify(&bytes);
            let _ = (h.last_offset(), h.last_sequence(), h.compression());
        }
    }
}

#[test]
fn batch_errors_are_the_ones_kafka_clients_expect() {
    let bytes = producer_batch(
        &[Rec {
            key: None,
            value: Some(b"v".to_vec()),
            headers: vec![],
            ts_delta: 0,
        }],
        None,
        Compression::None,
    );
    assert!(matches!(
        BatchHeader::parse(&bytes[..HEADER_BYTES - 1]),
        Err(BatchError::Truncated { .. })
    ));
    let mut v1 = bytes.to_vec();
    v1[16] = 1;
    assert_eq!(BatchHeader::parse(&v1), Err(BatchError::Magic(1)));
    let mut bad = bytes.to_vec();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let h = BatchHeader::parse(&bad).unwrap();
    assert!(matches!(h.verify(&bad), Err(BatchError::Crc { .. })));
}

// ------------------------------------------------------------------ segment files

/// A segment file as gregor writes it: header, then batches at consecutive offsets.
fn segment(base: i64, batches: &[Bytes]) -> (Vec<u8>, Vec<usize>) {
    let mut f = segment_header(base).to_vec();
    let mut next = base;
    let mut ends = Vec::new();
    for b in batches {
        let mut b = b.to_vec();
        assign(&mut b, next, 0);
        next = BatchHeader::parse(&b).unwrap().next_offset();
        f.extend_from_slice(&b);
        ends.push(f.len());
    }
    (f, ends)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Recovery's scan of a whole segment finds every batch; of a segment cut anywhere (a torn
    /// write at power loss), exactly the batches wholly before the cut, and nothing after.
    #[test]
    fn segment_scan_keeps_exactly_the_whole_batches(
        batches in proptest::collection::vec(
            (proptest::collection::vec(rec(), 1..5), producer()), 0..6),
        base in 0i64..1 << 40,
        cut in any::<prop::sample::Index>(),
    ) {
        let batches: Vec<Bytes> = batches
            .iter()
            .map(|(r, p)| producer_batch(r, *p, Compression::None))
            .collect();
        let (file, ends) = segment(base, &batches);
        let whole = scan_segment(base, &file);
        prop_assert_eq!(whole.batches.len(), batches.len());
        prop_assert_eq!(whole.valid_len, file.len() as u64);
        prop_assert!(whole.tail_problem.is_none());

        let cut = SEGMENT_HEADER_BYTES as usize + cut.index(file.len() - SEGMENT_HEADER_BYTES as usize + 1);
        let torn = scan_segment(base, &file[..cut]);
        let kept = ends.iter().filter(|&&e| e <= cut).count();
        prop_assert_eq!(torn.batches.len(), kept);
        prop_assert_eq!(torn.valid_len as usize, if kept == 0 { SEGMENT_HEADER_BYTES as usize } else { ends[kept - 1] });
        prop_assert_eq!(torn.tail_problem.is_some(), cut != torn.valid_len as usize);
    }

    /// A flipped byte anywhere in a segment's batches keeps every batch before it and none from
    /// the damaged one on.
    #[test]
    fn segment_scan_stops_at_damage(
        batches in proptest::collection::vec(proptest::collection::vec(rec(), 1..4), 1..5),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let batches: Vec<Bytes> = batches
            .iter()
            .map(|r| producer_batch(r, None, Compression::None))
            .collect();
        let (mut file, ends) = segment(7, &batches);
        let at = SEGMENT_HEADER_BYTES as usize + at.index(file.len() - SEGMENT_HEADER_BYTES as usize);
        let damaged = ends.iter().position(|&e| at < e).unwrap();
        let start = if damaged == 0 { SEGMENT_HEADER_BYTES as usize } else { ends[damaged - 1] };
        // The one field no check covers: the partition leader epoch (bytes 12..16), which, like
        // the base offset, the leader rewrites and the CRC leaves out — in Kafka too. Unlike
        // the base offset it is not implied by the batches before it, so damage to it goes
        // unseen; with a single broker nothing reads it back.
        prop_assume!(!(start + 12..start + 16).contains(&at));
        file[at] ^= xor;
        let scan = scan_segment(7, &file);
        // The damaged batch and everything after it are cut (a damaged length field may even
        // make the batch look torn; either way it is not kept).
        prop_assert_eq!(scan.batches.len(), damaged);
        prop_assert!(scan.tail_problem.is_some());
    }

    /// Arbitrary file contents never panic the scan, and what it keeps is a consistent prefix.
    #[test]
    fn segment_scan_never_panics(
        garbage in proptest::collection::vec(any::<u8>(), 0..400),
        with_header in any::<bool>(),
    ) {
        let mut file = if with_header { segment_header(0).to_vec() } else { Vec::new() };
        file.extend_from_slice(&garbage);
        let scan = scan_segment(0, &file);
        prop_assert!(scan.valid_len <= file.len() as u64);
        prop_assert_eq!(scan.file_len, file.len() as u64);
        let mut next = 0;
        for b in &scan.batches {
            prop_assert_eq!(b.header.base_offset, next);
            next = b.header.next_offset();
        }
    }
}

// ------------------------------------------------------------------ meta files

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn meta_files_round_trip(
        topic in "[a-zA-Z0-9._-]{1,40}",
        topic_id in any::<[u8; 16]>(),
        partition in 0i32..10_000,
        partition_count in 1i32..10_000,
        settings in settings(),
        cluster_id in any::<[u8; 16]>(),
        block_end in any::<i64>(),
        log_start_offset in 0i64..i64::MAX,
    ) {
        let p = PartitionMeta { topic, topic_id, partition, partition_count, settings, log_start_offset };
        prop_assert_eq!(PartitionMeta::decode(&p.encode()).unwrap(), p);
        let b = BrokerMeta { cluster_id, producer_id_block_end: block_end };
        prop_assert_eq!(BrokerMeta::decode(&b.encode()).unwrap(), b);
    }

    /// A meta file damaged anywhere, or cut short, is refused — never read as other settings.
    #[test]
    fn meta_file_damage_is_refused(
        topic in "[a-z]{1,20}",
        settings in settings(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        cut in any::<prop::sample::Index>(),
    ) {
        let p = PartitionMeta { topic, topic_id: [9; 16], partition: 3, partition_count: 4, settings, log_start_offset: 7 };
        let good = p.encode().to_vec();
        let mut bad = good.clone();
        let at = at.index(bad.len());
        bad[at] ^= xor;
        prop_assert!(PartitionMeta::decode(&bad).is_err());
        let cut = cut.index(good.len());
        prop_assert!(PartitionMeta::decode(&good[..cut]).is_err());
        prop_assert_eq!(BrokerMeta::decode(&good), Err(FileError::BadMagic));
    }

    #[test]
    fn meta_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = PartitionMeta::decode(&bytes);
        let _ = BrokerMeta::decode(&bytes);
    }
}

// ------------------------------------------------------------------ __consumer_offsets records

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Committed offsets and group metadata read back exactly as written: this is the replay
    /// that rebuilds every group at broker start.
    #[test]
    fn group_records_round_trip(
        records in proptest::collection::vec(group_record(), 1..8),
        more in proptest::collection::vec(group_record(), 1..4),
        ts in 0i64..1 << 45,
    ) {
        let mut stored = encode_batch(&records, ts).to_vec();
        stored.extend_from_slice(&encode_batch(&more, ts + 1));
        let back = decode_batches(Bytes::from(stored)).unwrap();
        let expected: Vec<GroupRecord> = records.into_iter().chain(more).collect();
        prop_assert_eq!(back, expected);
    }

    /// Damaged or arbitrary bytes in the offsets log are a decode error, never a panic.
    #[test]
    fn group_records_damage_is_an_error(
        records in proptest::collection::vec(group_record(), 1..4),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        garbage in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = encode_batch(&records, 5).to_vec();
        let at = 21 + at.index(bytes.len() - 21);
        bytes[at] ^= xor;
        prop_assert!(decode_batches(Bytes::from(bytes)).is_err());
        let _ = decode_batches(Bytes::from(garbage));
    }
}
