//! The topic configs that change what the broker stores on append: `message.timestamp.type`
//! (KIP-32), `compression.type` and `index.interval.bytes`. Each is checked as a client would
//! see it: the produce response, the bytes a fetch returns, ListOffsets by timestamp, and a
//! restarted broker.

use super::*;
use gregor_core::batch::{first_record_at_or_after, BatchHeader};
use gregor_core::kafka_protocol::records::RecordBatchDecoder;

/// Produce `b` to partition 0 of `topic`: (error, base offset, log_append_time_ms).
fn produce_full(h: &mut Harness, topic: &str, b: Bytes) -> (i16, i64, i64) {
    let c = h.produce(1, topic, 0, b, 1);
    let Some(ResponseKind::Produce(r)) = h.take(c) else {
        panic!("no produce response")
    };
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset, p.log_append_time_ms)
}

/// The record bytes a fetch of partition 0 of `topic` from `offset` returns, as stored.
fn raw_fetch(h: &mut Harness, topic: &str, offset: i64) -> Bytes {
    let c = h.fetch(topic, 0, offset, 0);
    let Some(ResponseKind::Fetch(r)) = h.take(c) else {
        panic!("no fetch response")
    };
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, NONE);
    p.records.clone().unwrap_or_default()
}

/// The stored batches in `bytes`, each checked whole (its CRC holds).
fn batches(mut bytes: &[u8]) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let h = BatchHeader::parse(bytes).unwrap();
        h.verify(&bytes[..h.size]).unwrap();
        out.push((h, bytes[..h.size].to_vec()));
        bytes = &bytes[h.size..];
    }
    out
}

/// ListOffsets of partition 0 of `topic` at `ts`: (offset, timestamp).
fn offset_at(h: &mut Harness, topic: &str, ts: i64) -> (i64, i64) {
    let req = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(ts)]),
    ]);
    let c = h.send(1, ApiKey::ListOffsets, 8, RequestKind::ListOffsets(req));
    let Some(ResponseKind::ListOffsets(r)) = h.take(c) else {
        panic!()
    };
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, NONE);
    (p.offset, p.timestamp)
}

/// `message.timestamp.type=LogAppendTime`: a batch produced with old CreateTime timestamps is
/// stored stamped with the broker's clock (attribute bit 3, maxTimestamp), the produce response
/// says when, and ListOffsets by timestamp and the max-timestamp query see the append times.
#[test]
fn log_append_time_stamps_batches_with_the_broker_clock() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    // CreateTime (the default): the producer's timestamps, and −1 in the response.
    let (code, _, append_ms) = produce_full(&mut h, "t", batch(&["a"], None));
    assert_eq!((code, append_ms), (NONE, -1));
    assert_eq!(
        described(&mut h, "t", "message.timestamp.type"),
        ("CreateTime".into(), 5)
    );

    let (code, msg) = alter(
        &mut h,
        2,
        "t",
        &[("message.timestamp.type", 0, Some("BrokerTime"))],
        false,
    );
    assert_eq!(code, INVALID_CONFIG);
    assert!(msg.contains("message.timestamp.type"), "{msg}");
    let set = [("message.timestamp.type", 0, Some("LogAppendTime"))];
    assert_eq!(alter(&mut h, 2, "t", &set, false).0, NONE);
    assert_eq!(
        described(&mut h, "t", "message.timestamp.type"),
        ("LogAppendTime".into(), 1)
    );

    // Records produced with the timestamps batch() gives (1_700_000_000_000 on), a minute
    // behind the broker's clock.
    h.advance_ms(60_000);
    let first_ms = h.now.unix_ms();
    let (code, base, append_ms) = produce_full(&mut h, "t", batch(&["b", "c"], None));
    assert_eq!((code, base, append_ms), (NONE, 1, first_ms));
    h.advance_ms(5_000);
    let second_ms = h.now.unix_ms();
    let (code, base, append_ms) = produce_full(&mut h, "t", batch(&["d"], None));
    assert_eq!((code, base, append_ms), (NONE, 3, second_ms));
    assert!(first_ms >= 1_700_000_060_000 && second_ms > first_ms);

    let stored = batches(&raw_fetch(&mut h, "t", 0));
    assert_eq!(stored.len(), 3);
    assert!(!stored[0].0.is_log_append_time());
    assert_eq!(stored[0].0.max_timestamp, 1_700_000_000_000);
    for ((header, _), want) in stored[1..].iter().zip([first_ms, second_ms]) {
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, want);
        // The records keep their deltas; the base timestamp is the producer's.
        assert_eq!(header.base_timestamp, 1_700_000_000_000);
    }
    // A reader sees the append time on every record of a stamped batch.
    assert_eq!(
        first_record_at_or_after(&stored[1].1, 0, 0),
        Ok(Some((1, first_ms)))
    );

    // ListOffsets by timestamp goes by the append times: the producer's 2023 timestamps of the
    // stamped batches count for nothing.
    assert_eq!(offset_at(&mut h, "t", 1_700_000_000_001), (1, first_ms));
    assert_eq!(offset_at(&mut h, "t", first_ms + 1), (3, second_ms));
    assert_eq!(offset_at(&mut h, "t", second_ms + 1).0, -1);
    assert_eq!(offset_at(&mut h, "t", -3), (3, second_ms), "max timestamp");

    // The stamps are stored: a restarted broker answers the same.
    let disk = h.storage.clone();
    let mut h2 = Harness::with_disk(Config::default(), disk, true);
    assert_eq!(offset_at(&mut h2, "t", first_ms + 1), (3, second_ms));
    assert_eq!(
        described(&mut h2, "t", "message.timestamp.type"),
        ("LogAppendTime".into(), 1)
    );
}

/// The broker default (`log.message.timestamp.type`) applies to a topic created without the
/// config, shown as the default.
#[test]
fn the_broker_default_timestamp_type_applies_to_new_topics() {
    let mut h = Harness::new(Config {
        message_timestamp_type: gregor_core::config::TimestampType::LogAppendTime,
        ..Config::default()
    });
    h.create("t", 1);
    assert_eq!(
        described(&mut h, "t", "message.timestamp.type"),
        ("LogAppendTime".into(), 5)
    );
    let now = h.now.unix_ms();
    assert_eq!(
        produce_full(&mut h, "t", batch(&["a"], None)),
        (NONE, 0, now)
    );
    // Going back to CreateTime is an override of the broker's default.
    let set = [("message.timestamp.type", 0, Some("CreateTime"))];
    assert_eq!(alter(&mut h, 2, "t", &set, false).0, NONE);
    assert_eq!(
        produce_full(&mut h, "t", batch(&["b"], None)),
        (NONE, 1, -1)
    );
}

/// Decode every record of a stored batch, whatever its codec: (offset, value).
fn values(b: &[u8]) -> Vec<(i64, Vec<u8>)> {
    let lz4 = |records: &mut Bytes, codec| -> anyhow::Result<Bytes> {
        use gregor_core::kafka_protocol::records::Compression;
        use std::io::Read;
        assert_eq!(codec, Compression::Lz4, "the decoder handles the rest");
        let mut out = Vec::new();
        lz4_flex::frame::FrameDecoder::new(&records[..]).read_to_end(&mut out)?;
        Ok(out.into())
    };
    let mut buf = Bytes::copy_from_slice(b);
    let h = BatchHeader::parse(b).unwrap();
    let set = if h.compression() == 3 {
        RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(lz4))
    } else {
        RecordBatchDecoder::decode(&mut buf)
    }
    .unwrap();
    set.records
        .into_iter()
        .map(|r| (r.offset, r.value.unwrap().to_vec()))
        .collect()
}

/// `compression.type`: a batch in another codec is stored recompressed in the topic's codec,
/// every record intact; a batch already in it is stored as it came; `producer` keeps the
/// producer's codec. A bad value is INVALID_CONFIG naming the key.
#[test]
fn compression_type_recompresses_batches_in_another_codec() {
    let mut h = Harness::new(Config::default());
    let pad = "v".repeat(300);
    let vals = ["a", pad.as_str(), "c"];
    let want: Vec<(i64, Vec<u8>)> = vals
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v.as_bytes().to_vec()))
        .collect();
    for (topic, codec) in [
        ("gz", 1),
        ("sn", 2),
        ("l4", 3),
        ("zs", 4),
        ("un", 0),
        ("pr", -1),
    ] {
        h.create(topic, 1);
        let value = match codec {
            -1 => "producer",
            0 => "uncompressed",
            1 => "gzip",
            2 => "snappy",
            3 => "lz4",
            _ => "zstd",
        };
        let set = [("compression.type", 0, Some(value))];
        assert_eq!(alter(&mut h, 2, topic, &set, false).0, NONE, "{topic}");
        // Standalone, a value equal to the broker's default shows as the default.
        let source = if codec < 0 { 5 } else { 1 };
        assert_eq!(
            described(&mut h, topic, "compression.type"),
            (value.into(), source)
        );
        // An uncompressed batch, then a gzip one.
        let plain = batch(&vals, None);
        let recs: Vec<testkit::Rec> = vals
            .iter()
            .map(|v| testkit::Rec {
                value: Some(Bytes::from(v.to_string())),
                timestamp_ms: 1_700_000_000_000,
                ..testkit::Rec::default()
            })
            .collect();
        let gz = testkit::batch(&recs, None, Compression::Gzip);
        assert_eq!(produce_full(&mut h, topic, plain.clone()).0, NONE);
        assert_eq!(produce_full(&mut h, topic, gz.clone()).0, NONE);
        let stored = batches(&raw_fetch(&mut h, topic, 0));
        assert_eq!(stored.len(), 2, "{topic}");
        for (i, (header, bytes)) in stored.iter().enumerate() {
            let produced = if i == 0 { 0 } else { 1 };
            let stored_codec = if codec < 0 { produced } else { codec };
            assert_eq!(header.compression(), stored_codec, "{topic} batch {i}");
            let base = 3 * i as i64;
            let got = values(bytes);
            let shifted: Vec<(i64, Vec<u8>)> =
                want.iter().map(|(o, v)| (o + base, v.clone())).collect();
            assert_eq!(got, shifted, "{topic} batch {i}");
            // A batch already in the stored codec is the producer's bytes (its offset and
            // leader epoch, bytes 0..8 and 12..16, aside).
            if stored_codec == produced {
                let sent = if i == 0 { &plain } else { &gz };
                assert_eq!(&bytes[16..], &sent[16..], "{topic} batch {i} kept as sent");
                assert_eq!(&bytes[8..12], &sent[8..12], "{topic} batch {i} length");
            }
        }
    }
    let (code, msg) = alter(
        &mut h,
        2,
        "gz",
        &[("compression.type", 0, Some("brotli"))],
        false,
    );
    assert_eq!(code, INVALID_CONFIG);
    assert!(msg.contains("compression.type"), "{msg}");
}

/// A batch that grows past `max.message.bytes` when recompressed is refused with
/// MESSAGE_TOO_LARGE, as Kafka refuses it: 40 KB of zeros sent as a small zstd batch, to a
/// topic that stores batches uncompressed and takes at most 1000 bytes.
#[test]
fn a_batch_recompressed_past_max_message_bytes_is_refused() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    let recs: Vec<testkit::Rec> = (0..40)
        .map(|_| testkit::Rec {
            value: Some(Bytes::from(vec![0u8; 1000])),
            timestamp_ms: 1_700_000_000_000,
            ..testkit::Rec::default()
        })
        .collect();
    let small = testkit::batch(&recs, None, Compression::Zstd);
    assert!(small.len() < 1000, "zstd batch of {} bytes", small.len());
    let set = [
        ("compression.type", 0, Some("uncompressed")),
        ("max.message.bytes", 0, Some("1000")),
    ];
    assert_eq!(alter(&mut h, 2, "t", &set, false).0, NONE);
    let c = h.produce(1, "t", 0, small, 1);
    assert_eq!(h.produce_result(c), Some((MESSAGE_TOO_LARGE, -1)));
    assert_eq!(h.broker.topics()["t"].partitions[0].log.log_end_offset(), 0);
}

/// `index.interval.bytes`: a topic with a smaller interval gets more index entries, and a
/// broker restarted after a crash (index files never written) rebuilds them at the topic's
/// interval.
#[test]
fn index_interval_bytes_sets_the_index_density_and_survives_a_restart() {
    let mut h = Harness::new(Config::default());
    h.create("dense", 1);
    h.create("sparse", 1);
    let set = [("index.interval.bytes", 0, Some("100"))];
    assert_eq!(alter(&mut h, 2, "dense", &set, false).0, NONE);
    assert_eq!(
        described(&mut h, "dense", "index.interval.bytes"),
        ("100".into(), 1)
    );
    assert_eq!(
        described(&mut h, "sparse", "index.interval.bytes"),
        ("4096".into(), 5)
    );
    for bad in ["-1", "lots", "2147483648"] {
        let (code, msg) = alter(
            &mut h,
            2,
            "dense",
            &[("index.interval.bytes", 0, Some(bad))],
            false,
        );
        assert_eq!(code, INVALID_CONFIG, "{bad}");
        assert!(msg.contains("index.interval.bytes"), "{msg}");
    }
    let pad = "x".repeat(200);
    for _ in 0..60 {
        for t in ["dense", "sparse"] {
            assert_eq!(produce_full(&mut h, t, batch(&[&pad], None)).0, NONE);
        }
    }
    let entries = |h: &Harness, t: &str| {
        h.broker.topics()[t].partitions[0].log.segments()[0]
            .index()
            .offsets
            .len()
    };
    let (dense, sparse) = (entries(&h, "dense"), entries(&h, "sparse"));
    // Batches of ~290 bytes: an entry every batch at 100, every ~15 at 4096.
    assert!(dense >= 55 && sparse <= 5, "dense {dense}, sparse {sparse}");

    let disk = h.storage.clone();
    let mut h2 = Harness::with_disk(Config::default(), disk, true);
    assert_eq!(
        entries(&h2, "dense"),
        dense,
        "rebuilt at the topic's interval"
    );
    assert_eq!(entries(&h2, "sparse"), sparse);
    // Reads through the dense index still find every record.
    for offset in [0, 1, 31, 59] {
        let stored = batches(&raw_fetch(&mut h2, "dense", offset));
        assert_eq!(stored[0].0.base_offset, offset);
    }
}
