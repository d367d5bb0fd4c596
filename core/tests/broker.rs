//! Broker-level tests: the core driven by the shared synchronous driver (`testkit::Pair`, the
//! one the fuzz targets and the simulator's tests use) over an in-memory disk. One `Harness`
//! helper, many small scenarios.

use bytes::Bytes;
use gregor_core::error::*;
use gregor_core::io::PartitionDir;
use gregor_core::io::{ConnId, Input, Output, Request, StorageFault, StorageReply, StorageRequest};
use gregor_core::kafka_protocol::messages::*;
use gregor_core::kafka_protocol::protocol::StrBytes;
use gregor_core::kafka_protocol::records::Compression;
use gregor_core::log::recover::{recover_partition, DirEntry};
use gregor_core::testkit;
use gregor_core::Recovered;
use gregor_core::{Config, Durability};
use std::collections::BTreeMap;

/// In-memory files: path -> (bytes written, bytes synced).
#[derive(Default, Clone)]
struct MemDisk {
    files: BTreeMap<String, (Vec<u8>, Vec<u8>)>,
    broker_meta: Option<Vec<u8>>,
    full: bool,
}

impl MemDisk {
    fn exec(&mut self, req: &StorageRequest) -> Result<StorageReply, StorageFault> {
        match req {
            StorageRequest::CreatePartition { dir, meta } => {
                self.files.insert(
                    format!("{}/partition.meta", dir.dir_name()),
                    (meta.to_vec(), meta.to_vec()),
                );
            }
            StorageRequest::DeletePartition { dir } => {
                let prefix = format!("{}/", dir.dir_name());
                self.files.retain(|k, _| !k.starts_with(&prefix));
            }
            StorageRequest::CreateSegment { file, header } => {
                let path = format!("{}/{}", file.dir.dir_name(), file.file_name());
                self.files.insert(path, (header.to_vec(), header.to_vec()));
            }
            StorageRequest::Append {
                file,
                position,
                data,
            } => {
                if self.full {
                    return Err(StorageFault::DiskFull);
                }
                let path = format!("{}/{}", file.dir.dir_name(), file.file_name());
                let f = &mut self.files.get_mut(&path).expect("segment exists").0;
                let pos = *position as usize;
                if f.len() < pos + data.len() {
                    f.resize(pos + data.len(), 0);
                }
                f[pos..pos + data.len()].copy_from_slice(data);
            }
            StorageRequest::Sync { file } => {
                let path = format!("{}/{}", file.dir.dir_name(), file.file_name());
                if let Some((w, s)) = self.files.get_mut(&path) {
                    *s = w.clone();
                }
            }
            StorageRequest::Read {
                file,
                position,
                len,
            } => {
                let path = format!("{}/{}", file.dir.dir_name(), file.file_name());
                let f = &self.files[&path].0;
                let start = (*position as usize).min(f.len());
                let end = (start + *len as usize).min(f.len());
                return Ok(StorageReply::Read(Bytes::copy_from_slice(&f[start..end])));
            }
            StorageRequest::Truncate { file, len } => {
                let path = format!("{}/{}", file.dir.dir_name(), file.file_name());
                if let Some((w, s)) = self.files.get_mut(&path) {
                    w.truncate(*len as usize);
                    s.truncate(*len as usize);
                }
            }
            StorageRequest::DeleteSegment { file } => {
                let dir = file.dir.dir_name();
                for name in [
                    file.file_name(),
                    file.index_file_name(),
                    file.time_index_file_name(),
                ] {
                    self.files.remove(&format!("{dir}/{name}"));
                }
            }
            StorageRequest::WriteBrokerMeta { data } => self.broker_meta = Some(data.to_vec()),
            StorageRequest::WriteSegmentIndex {
                file,
                covers,
                index,
                time_index,
            } => {
                let path = format!("{}/{}", file.dir.dir_name(), file.file_name());
                let (w, s) = self.files.get_mut(&path).expect("segment exists");
                if (w.len() as u64) < *covers {
                    return Err(StorageFault::Io("segment shorter than its index".into()));
                }
                *s = w.clone();
                let dir = file.dir.dir_name();
                for (name, bytes) in [
                    (file.index_file_name(), index),
                    (file.time_index_file_name(), time_index),
                ] {
                    self.files
                        .insert(format!("{dir}/{name}"), (bytes.to_vec(), bytes.to_vec()));
                }
            }
            StorageRequest::DeleteSegmentIndex { file } => {
                let dir = file.dir.dir_name();
                for name in [file.index_file_name(), file.time_index_file_name()] {
                    self.files.remove(&format!("{dir}/{name}"));
                }
            }
            StorageRequest::WriteProducerSnapshot {
                dir,
                segment,
                offset,
                data,
                delete_below,
            } => {
                let path = format!("{}/{}", segment.dir.dir_name(), segment.file_name());
                let (w, s) = self.files.get_mut(&path).expect("segment exists");
                *s = w.clone();
                self.remove_snapshots(dir, |o| o < *delete_below);
                let name = PartitionDir::snapshot_file_name(*offset);
                self.files.insert(
                    format!("{}/{name}", dir.dir_name()),
                    (data.to_vec(), data.to_vec()),
                );
            }
            StorageRequest::DeleteProducerSnapshots { dir, above } => {
                self.remove_snapshots(dir, |o| o > *above);
            }
            // Log compaction's files (only compacted topics write them).
            StorageRequest::CreateCleanedSegment { file, header } => {
                let path = format!("{}/{}", file.dir.dir_name(), file.cleaned_file_name());
                self.files.insert(path, (header.to_vec(), Vec::new()));
            }
            StorageRequest::AppendCleanedSegment {
                file,
                position,
                data,
            } => {
                let path = format!("{}/{}", file.dir.dir_name(), file.cleaned_file_name());
                let f = &mut self.files.get_mut(&path).expect("cleaned file exists").0;
                let end = *position as usize + data.len();
                f.resize(f.len().max(end), 0);
                f[*position as usize..end].copy_from_slice(data);
            }
            StorageRequest::SwapCleanedSegment { file } => {
                let dir = file.dir.dir_name();
                let (w, _) = self
                    .files
                    .remove(&format!("{dir}/{}", file.cleaned_file_name()))
                    .expect("cleaned file exists");
                for name in [file.index_file_name(), file.time_index_file_name()] {
                    self.files.remove(&format!("{dir}/{name}"));
                }
                self.files
                    .insert(format!("{dir}/{}", file.swap_file_name()), (w.clone(), w));
            }
            StorageRequest::CompleteSegmentSwap { file } => {
                let dir = file.dir.dir_name();
                let f = self
                    .files
                    .remove(&format!("{dir}/{}", file.swap_file_name()))
                    .expect("swap file exists");
                self.files.insert(format!("{dir}/{}", file.file_name()), f);
            }
            StorageRequest::DiscardCleanedSegment { file } => {
                let dir = file.dir.dir_name();
                self.files
                    .remove(&format!("{dir}/{}", file.cleaned_file_name()));
            }
        }
        Ok(StorageReply::Done)
    }

    fn remove_snapshots(&mut self, dir: &PartitionDir, doomed: impl Fn(i64) -> bool) {
        let prefix = format!("{}/", dir.dir_name());
        self.files.retain(|path, _| {
            let name = path.strip_prefix(&prefix).unwrap_or("");
            let offset = name.strip_suffix(".snapshot").and_then(|s| s.parse().ok());
            !offset.is_some_and(&doomed)
        });
    }

    /// What a restarted broker finds: after a power loss only synced bytes survive.
    fn recovered(&self, power_loss: bool) -> Recovered {
        let image = |(w, s): &(Vec<u8>, Vec<u8>)| if power_loss { s.clone() } else { w.clone() };
        let mut dirs: BTreeMap<String, Vec<DirEntry>> = BTreeMap::new();
        for (path, f) in &self.files {
            let (dir, name) = path.split_once('/').unwrap();
            dirs.entry(dir.to_string()).or_default().push(DirEntry {
                name: name.to_string(),
                len: image(f).len() as u64,
            });
        }
        let partitions = dirs.into_iter().map(|(dir, entries)| {
            let meta = self
                .files
                .get(&format!("{dir}/partition.meta"))
                .map(|f| Bytes::from(image(f)));
            let read = |name: &str, from: u64, to: u64| {
                let f = image(&self.files[&format!("{dir}/{name}")]);
                Ok::<_, ()>(f[from as usize..to as usize].to_vec())
            };
            recover_partition(dir.clone(), meta, &entries, read).unwrap()
        });
        Recovered {
            clean_shutdown: false,
            broker_meta: self.broker_meta.clone().map(Bytes::from),
            partitions: partitions.collect(),
        }
    }
}

/// (error code, high watermark, (offset, value) of every record read)
type Fetched = (i16, i64, Vec<(i64, Vec<u8>)>);

/// The shared driver over the in-memory disk, plus the helpers these scenarios share. It
/// dereferences to [`testkit::Pair`]: `broker`, `storage`, `now`, `responses`, `closed`,
/// `hold_syncs`, `send`, `take`, `drain`, `release_syncs` and `advance_ms` come from there.
struct Harness(testkit::Pair<MemDisk>);

impl std::ops::Deref for Harness {
    type Target = testkit::Pair<MemDisk>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl testkit::Storage for MemDisk {
    fn exec(
        &mut self,
        request: &StorageRequest,
        _prng: &mut gregor_core::prng::Prng,
    ) -> Result<StorageReply, StorageFault> {
        MemDisk::exec(self, request)
    }
}

impl Harness {
    fn new(config: Config) -> Harness {
        Self::with_disk(config, MemDisk::default(), false)
    }
    /// A broker started on what `disk` holds (after a power loss: only its synced bytes).
    fn with_disk(config: Config, disk: MemDisk, power_loss: bool) -> Harness {
        let recovered = disk.recovered(power_loss);
        Harness(testkit::Pair::new(config, recovered, disk))
    }
    fn create(&mut self, topic: &str, partitions: i32) {
        let t = create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_num_partitions(partitions)
            .with_replication_factor(1);
        let c = self.send(
            1,
            ApiKey::CreateTopics,
            5,
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![t])),
        );
        let Some(ResponseKind::CreateTopics(r)) = self.take(c) else {
            panic!("no create response")
        };
        assert_eq!(
            r.topics[0].error_code, NONE,
            "{:?}",
            r.topics[0].error_message
        );
    }
    fn produce(&mut self, conn: u64, topic: &str, partition: i32, batch: Bytes, acks: i16) -> i32 {
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(5000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)),
                ])]);
        self.send(conn, ApiKey::Produce, 9, RequestKind::Produce(req))
    }
    fn produce_result(&mut self, corr: i32) -> Option<(i16, i64)> {
        match self.take(corr)? {
            ResponseKind::Produce(r) => {
                let p = &r.responses[0].partition_responses[0];
                Some((p.error_code, p.base_offset))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    fn fetch(&mut self, topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> i32 {
        let req = FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        self.send(2, ApiKey::Fetch, 12, RequestKind::Fetch(req))
    }
    /// (error, high watermark, values read)
    fn fetch_result(&mut self, corr: i32) -> Option<Fetched> {
        match self.take(corr)? {
            ResponseKind::Fetch(r) => {
                let p = &r.responses[0].partitions[0];
                let mut out = Vec::new();
                let mut bytes = p.records.clone().unwrap();
                while !bytes.is_empty() {
                    let set = gregor_core::kafka_protocol::records::RecordBatchDecoder::decode(
                        &mut bytes,
                    )
                    .unwrap();
                    for rec in set.records {
                        out.push((rec.offset, rec.value.unwrap().to_vec()));
                    }
                }
                Some((p.error_code, p.high_watermark, out))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn batch(values: &[&str], producer: Option<(i64, i16, i32)>) -> Bytes {
    let recs: Vec<testkit::Rec> = values
        .iter()
        .enumerate()
        .map(|(i, v)| testkit::Rec {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(v.to_string())),
            timestamp_ms: 1_700_000_000_000 + i as i64,
            headers: Vec::new(),
        })
        .collect();
    testkit::batch(&recs, producer, Compression::None)
}

#[test]
fn produce_is_acknowledged_only_after_sync_then_fetched() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    h.hold_syncs = true;
    let c = h.produce(1, "t", 0, batch(&["a", "b"], None), 1);
    assert!(
        h.produce_result(c).is_none(),
        "group commit: no ack before the fsync"
    );
    let f = h.fetch("t", 0, 0, 0);
    let (err, hw, vals) = h.fetch_result(f).unwrap();
    assert_eq!(
        (err, hw),
        (NONE, 0),
        "consumers do not see unsynced records"
    );
    assert!(vals.is_empty());
    h.release_syncs();
    assert_eq!(h.produce_result(c), Some((NONE, 0)));
    let c2 = h.produce(1, "t", 0, batch(&["c"], None), -1);
    h.release_syncs();
    assert_eq!(h.produce_result(c2), Some((NONE, 2)));
    let f = h.fetch("t", 0, 0, 0);
    let (err, hw, vals) = h.fetch_result(f).unwrap();
    assert_eq!((err, hw), (NONE, 3));
    let got: Vec<(i64, String)> = vals
        .into_iter()
        .map(|(o, v)| (o, String::from_utf8(v).unwrap()))
        .collect();
    assert_eq!(got, vec![(0, "a".into()), (1, "b".into()), (2, "c".into())]);
}

#[test]
fn responses_keep_request_order_per_connection() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    h.hold_syncs = true;
    let p = h.produce(7, "t", 0, batch(&["a"], None), 1);
    // A metadata request behind the produce must wait for it (Kafka answers in order).
    let m = h.send(
        7,
        ApiKey::Metadata,
        9,
        RequestKind::Metadata(MetadataRequest::default()),
    );
    assert!(h.take(m).is_none());
    h.release_syncs();
    let order: Vec<i32> = h
        .responses
        .iter()
        .filter(|r| r.0 == ConnId(7))
        .map(|r| r.1)
        .collect();
    assert_eq!(order, vec![p, m]);
}

#[test]
fn long_poll_fetch_wakes_on_new_data_and_times_out() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    let f = h.fetch("t", 0, 0, 500);
    assert!(h.fetch_result(f).is_none(), "parked until data or max_wait");
    let c = h.produce(1, "t", 0, batch(&["x"], None), 1);
    assert_eq!(h.produce_result(c), Some((NONE, 0)));
    let (_, _, vals) = h.fetch_result(f).expect("woken by the append");
    assert_eq!(vals.len(), 1);
    let f2 = h.fetch("t", 0, 1, 500);
    assert!(h.fetch_result(f2).is_none());
    h.advance_ms(499);
    assert!(h.fetch_result(f2).is_none());
    h.advance_ms(2);
    let (err, hw, vals) = h.fetch_result(f2).expect("answered at max_wait");
    assert_eq!((err, hw, vals.len()), (NONE, 1, 0));
    let bad = h.fetch("t", 0, 5, 0);
    assert_eq!(h.fetch_result(bad).unwrap().0, OFFSET_OUT_OF_RANGE);
    let unknown = h.fetch("nope", 0, 0, 0);
    assert_eq!(
        h.fetch_result(unknown).unwrap().0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

/// KIP-74: the request's top-level max_bytes bounds the whole response, even when a
/// partition's own limit is larger; the first batch still goes out whole so a consumer
/// always makes progress (librdkafka failed with "Invalid response size" on a 19 MB answer
/// to fetch.max.bytes=1000000).
#[test]
fn fetch_response_is_bounded_by_request_max_bytes() {
    let mut h = Harness::new(Config::default());
    h.create("t", 2);
    let big = "x".repeat(300);
    for p in 0..2 {
        for _ in 0..4 {
            let c = h.produce(1, "t", p, batch(&[&big], None), 1);
            assert_eq!(h.produce_result(c).unwrap().0, NONE);
        }
    }
    let one = batch(&[&big], None).len();
    let mut fetch = |max_bytes: i32| {
        let parts = (0..2)
            .map(|p| {
                fetch_request::FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(20_000_000)
            })
            .collect();
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(parts)]);
        let c = h.send(2, ApiKey::Fetch, 12, RequestKind::Fetch(req));
        let Some(ResponseKind::Fetch(r)) = h.take(c) else {
            panic!("no fetch response")
        };
        r.responses[0]
            .partitions
            .iter()
            .map(|p| p.records.as_ref().unwrap().len())
            .collect::<Vec<_>>()
    };
    assert_eq!(fetch(10), vec![one, 0], "the first batch goes out whole");
    assert_eq!(fetch(one as i32 * 5 / 2), vec![2 * one, 0]);
    assert_eq!(fetch(one as i32 * 5), vec![4 * one, one]);
    assert_eq!(fetch(1 << 20), vec![4 * one, 4 * one]);
}

#[test]
fn bad_batches_get_kafka_errors_and_nothing_is_written() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    let good = batch(&["ok"], None);
    let mut corrupt = good.to_vec();
    let n = corrupt.len();
    corrupt[n - 2] ^= 0xff;
    let c = h.produce(1, "t", 0, Bytes::from(corrupt), 1);
    assert_eq!(h.produce_result(c).unwrap().0, CORRUPT_MESSAGE);
    let c = h.produce(1, "t", 0, good.slice(..good.len() - 3), 1);
    assert_eq!(h.produce_result(c).unwrap().0, CORRUPT_MESSAGE);
    let c = h.produce(1, "t", 0, Bytes::from_static(b"short"), 1);
    assert_eq!(h.produce_result(c).unwrap().0, CORRUPT_MESSAGE);
    let c = h.produce(1, "nope", 0, good.clone(), 1);
    assert_eq!(h.produce_result(c).unwrap().0, UNKNOWN_TOPIC_OR_PARTITION);
    let c = h.produce(1, "t", 3, good.clone(), 1);
    assert_eq!(h.produce_result(c).unwrap().0, UNKNOWN_TOPIC_OR_PARTITION);
    let big: Vec<String> = (0..200)
        .map(|i| "x".repeat(10_000) + &i.to_string())
        .collect();
    let refs: Vec<&str> = big.iter().map(|s| s.as_str()).collect();
    let c = h.produce(1, "t", 0, batch(&refs, None), 1);
    assert_eq!(h.produce_result(c).unwrap().0, MESSAGE_TOO_LARGE);
    let mut two = good.to_vec();
    two.extend_from_slice(&good);
    let c = h.produce(1, "t", 0, Bytes::from(two), 1);
    assert_eq!(h.produce_result(c).unwrap().0, INVALID_RECORD);
    let c = h.produce(1, "t", 0, good, 1);
    assert_eq!(
        h.produce_result(c),
        Some((NONE, 0)),
        "the log is untouched by refused batches"
    );
}

#[test]
fn idempotent_retries_get_their_original_offset_and_gaps_are_refused() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    let c = h.send(
        1,
        ApiKey::InitProducerId,
        4,
        RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
    );
    let Some(ResponseKind::InitProducerId(r)) = h.take(c) else {
        panic!()
    };
    assert_eq!(r.error_code, NONE);
    let pid = r.producer_id.0;
    let b0 = batch(&["a", "b"], Some((pid, 0, 0)));
    let c = h.produce(1, "t", 0, b0.clone(), -1);
    assert_eq!(h.produce_result(c), Some((NONE, 0)));
    let c = h.produce(1, "t", 0, batch(&["other"], None), -1);
    assert_eq!(h.produce_result(c), Some((NONE, 2)));
    let c = h.produce(1, "t", 0, b0, -1);
    assert_eq!(
        h.produce_result(c),
        Some((NONE, 0)),
        "a retry is answered with its first offset"
    );
    let c = h.produce(1, "t", 0, batch(&["gap"], Some((pid, 0, 5))), -1);
    assert_eq!(h.produce_result(c).unwrap().0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    let c = h.produce(1, "t", 0, batch(&["c"], Some((pid, 0, 2))), -1);
    assert_eq!(h.produce_result(c), Some((NONE, 3)));

    // The producer state survives a restart: the retry is still recognised.
    let disk = h.storage.clone();
    let mut h2 = Harness::with_disk(Config::default(), disk, false);
    let c = h2.produce(1, "t", 0, batch(&["c"], Some((pid, 0, 2))), -1);
    assert_eq!(h2.produce_result(c), Some((NONE, 3)));
    let c = h2.send(
        1,
        ApiKey::InitProducerId,
        4,
        RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
    );
    let Some(ResponseKind::InitProducerId(r)) = h2.take(c) else {
        panic!()
    };
    assert!(
        r.producer_id.0 > pid,
        "producer ids are never reused across restarts"
    );
}

#[test]
fn power_loss_keeps_every_acknowledged_record_under_group_commit() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    let mut acked = 0;
    for i in 0..20 {
        let c = h.produce(1, "t", 0, batch(&[&format!("v{i}")], None), 1);
        if let Some((NONE, _)) = h.produce_result(c) {
            acked += 1;
        }
    }
    h.hold_syncs = true;
    let c = h.produce(1, "t", 0, batch(&["unacked"], None), 1);
    assert!(h.produce_result(c).is_none());
    let disk = h.storage.clone();
    let mut h2 = Harness::with_disk(Config::default(), disk, true);
    let f = h2.fetch("t", 0, 0, 0);
    let (_, hw, vals) = h2.fetch_result(f).unwrap();
    assert_eq!(hw, acked);
    assert_eq!(vals.len() as i64, acked);
}

#[test]
fn torn_tail_is_cut_at_recovery() {
    let mut h = Harness::new(Config {
        durability: Durability::None,
        ..Config::default()
    });
    h.create("t", 1);
    for i in 0..3 {
        let c = h.produce(1, "t", 0, batch(&[&format!("v{i}")], None), 1);
        assert_eq!(h.produce_result(c).unwrap().0, NONE);
    }
    let mut disk = h.storage.clone();
    let seg = disk.files.get_mut("t-0/00000000000000000000.log").unwrap();
    let n = seg.0.len();
    seg.0.truncate(n - 7); // the last write was torn
    let mut h2 = Harness::with_disk(Config::default(), disk, false);
    let f = h2.fetch("t", 0, 0, 0);
    let (_, hw, vals) = h2.fetch_result(f).unwrap();
    assert_eq!((hw, vals.len()), (2, 2));
    let c = h2.produce(1, "t", 0, batch(&["after"], None), 1);
    assert_eq!(
        h2.produce_result(c),
        Some((NONE, 2)),
        "appends continue right after the cut"
    );
    let f = h2.fetch("t", 0, 2, 0);
    assert_eq!(h2.fetch_result(f).unwrap().2[0].1, b"after");
}

#[test]
fn full_disk_answers_storage_error_and_keeps_earlier_data() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    let c = h.produce(1, "t", 0, batch(&["kept"], None), 1);
    assert_eq!(h.produce_result(c), Some((NONE, 0)));
    h.storage.full = true;
    let c = h.produce(1, "t", 0, batch(&["lost"], None), 1);
    assert_eq!(h.produce_result(c).unwrap().0, KAFKA_STORAGE_ERROR);
    h.storage.full = false;
    let c = h.produce(1, "t", 0, batch(&["next"], None), 1);
    assert_eq!(
        h.produce_result(c),
        Some((NONE, 1)),
        "the failed batch left no hole"
    );
    let f = h.fetch("t", 0, 0, 0);
    let vals: Vec<Vec<u8>> = h
        .fetch_result(f)
        .unwrap()
        .2
        .into_iter()
        .map(|v| v.1)
        .collect();
    assert_eq!(vals, vec![b"kept".to_vec(), b"next".to_vec()]);
}

/// A failed write (full disk) while an fsync is in flight: the fsync still covers what was
/// written before it and must count when it completes (else what it alone covered — a whole
/// recovered log, say — waits for an fsync never issued: simulator seed 1742), and it must
/// count only for that (else later records are acknowledged before any fsync covered them, and
/// a power loss takes them: simulator seed 528).
#[test]
fn an_fsync_in_flight_across_a_failed_write_acknowledges_exactly_what_it_covers() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    h.hold_syncs = true;
    // Each produce on its own connection: answers on one connection keep request order.
    let a = h.produce(1, "t", 0, batch(&["a"], None), 1); // fsync S1 issued, held
    h.storage.full = true;
    let b = h.produce(3, "t", 0, batch(&["b"], None), 1); // the write fails: log cut to 1
    assert_eq!(h.produce_result(b).unwrap().0, KAFKA_STORAGE_ERROR);
    assert!(h.produce_result(a).is_none(), "a waits for S1");
    h.storage.full = false;
    let c = h.produce(4, "t", 0, batch(&["c"], None), 1); // S1 still in flight: wait
    let d = h.produce(5, "t", 0, batch(&["d"], None), 1);
    let release_first = |h: &mut Harness| {
        let (op, req) = h.held.remove(0);
        let result = h.storage.exec(&req);
        let now = h.now;
        h.broker.handle(Input::StorageDone { now, op, result });
        h.drain();
    };
    release_first(&mut h); // S1 completes; S2 is issued for c and d
    assert_eq!(h.produce_result(a), Some((NONE, 0)), "S1 still counts");
    assert!(
        h.produce_result(c).is_none() && h.produce_result(d).is_none(),
        "S1 was issued before c and d were written"
    );
    let e = h.produce(6, "t", 0, batch(&["e"], None), 1);
    release_first(&mut h); // S2
    assert_eq!(h.produce_result(c), Some((NONE, 1)));
    assert_eq!(h.produce_result(d), Some((NONE, 2)));
    assert!(h.produce_result(e).is_none(), "e waits for S3");
    h.release_syncs();
    assert_eq!(h.produce_result(e), Some((NONE, 3)));
}

#[test]
fn api_versions_above_max_answers_v0_with_error() {
    let mut h = Harness::new(Config::default());
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(99)
        .with_correlation_id(42);
    let now = h.now;
    h.broker.handle(Input::Request {
        now,
        conn: ConnId(3),
        request: Request {
            header,
            body: RequestKind::ApiVersions(Default::default()),
        },
    });
    let mut found = false;
    while let Some(o) = h.broker.poll_output() {
        if let Output::Response {
            api_version,
            body: ResponseKind::ApiVersions(r),
            correlation_id,
            ..
        } = o
        {
            assert_eq!(
                (api_version, correlation_id, r.error_code),
                (0, 42, UNSUPPORTED_VERSION)
            );
            assert!(r
                .api_keys
                .iter()
                .any(|k| k.api_key == ApiKey::Produce as i16));
            found = true;
        }
    }
    assert!(found);
}

#[test]
fn metadata_auto_creates_and_list_offsets_by_time() {
    let mut h = Harness::new(Config {
        default_partitions: 3,
        ..Config::default()
    });
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_static_str("auto"))))]))
        .with_allow_auto_topic_creation(true);
    let c = h.send(1, ApiKey::Metadata, 9, RequestKind::Metadata(req));
    let Some(ResponseKind::Metadata(m)) = h.take(c) else {
        panic!()
    };
    assert_eq!(m.topics[0].error_code, NONE);
    assert_eq!(m.topics[0].partitions.len(), 3);
    let c = h.produce(1, "auto", 1, batch(&["a", "b", "c"], None), 1);
    assert_eq!(h.produce_result(c), Some((NONE, 0)));
    let lo = |ts: i64| {
        ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("auto")))
                .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(1)
                    .with_timestamp(ts)]),
        ])
    };
    // A timestamp answers with the first record at or after it (the batch's records are at
    // t, t+1, t+2), as Kafka does, not the batch's first offset.
    for (ts, want) in [
        (-1, 3),
        (-2, 0),
        (1_700_000_000_000, 0),
        (1_700_000_000_001, 1),
        (1_700_000_000_002, 2),
        (1_800_000_000_000, -1),
    ] {
        let c = h.send(1, ApiKey::ListOffsets, 7, RequestKind::ListOffsets(lo(ts)));
        let Some(ResponseKind::ListOffsets(r)) = h.take(c) else {
            panic!()
        };
        assert_eq!(r.topics[0].partitions[0].offset, want, "timestamp {ts}");
    }
}

// ---------------------------------------------------------------- consumer groups

fn join(h: &mut Harness, conn: u64, group: &str, member: &str, session_ms: i32) -> i32 {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(session_ms)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(StrBytes::from_static_str("range"))
        .with_metadata(Bytes::from_static(b"sub"))]);
    h.send(conn, ApiKey::JoinGroup, 5, RequestKind::JoinGroup(req))
}

fn join_result(h: &mut Harness, corr: i32) -> Option<JoinGroupResponse> {
    match h.take(corr)? {
        ResponseKind::JoinGroup(r) => Some(r),
        other => panic!("unexpected {other:?}"),
    }
}

fn sync(
    h: &mut Harness,
    conn: u64,
    group: &str,
    member: &str,
    generation: i32,
    assignments: &[(&str, &str)],
) -> i32 {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(m.to_string()))
                        .with_assignment(Bytes::from(a.to_string()))
                })
                .collect(),
        );
    h.send(conn, ApiKey::SyncGroup, 3, RequestKind::SyncGroup(req))
}

fn heartbeat(h: &mut Harness, conn: u64, group: &str, member: &str, generation: i32) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id(generation)
        .with_member_id(StrBytes::from_string(member.into()));
    let c = h.send(conn, ApiKey::Heartbeat, 3, RequestKind::Heartbeat(req));
    match h.take(c) {
        Some(ResponseKind::Heartbeat(r)) => r.error_code,
        other => panic!("unexpected {other:?}"),
    }
}

/// An OffsetCommit v7 of `offset` for `t`-`partition`.
fn commit_request(
    group: &str,
    member: &str,
    generation: i32,
    partition: i32,
    offset: i64,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset),
                ]),
        ])
}

fn commit(
    h: &mut Harness,
    conn: u64,
    group: &str,
    member: &str,
    generation: i32,
    partition: i32,
    offset: i64,
) -> i16 {
    let req = commit_request(group, member, generation, partition, offset);
    let c = h.send(
        conn,
        ApiKey::OffsetCommit,
        7,
        RequestKind::OffsetCommit(req),
    );
    match h.take(c) {
        Some(ResponseKind::OffsetCommit(r)) => r.topics[0].partitions[0].error_code,
        other => panic!("unexpected {other:?}"),
    }
}

fn fetch_offset(h: &mut Harness, group: &str, partition: i32) -> i64 {
    let (error, offset) = fetch_offset_and_error(h, group, partition);
    assert_eq!(error, NONE);
    offset
}

/// (top-level error, committed offset of `t`-`partition`, -1 if none is answered)
fn fetch_offset_and_error(h: &mut Harness, group: &str, partition: i32) -> (i16, i64) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_indexes(vec![partition]),
        ]));
    let c = h.send(9, ApiKey::OffsetFetch, 7, RequestKind::OffsetFetch(req));
    match h.take(c) {
        Some(ResponseKind::OffsetFetch(r)) => (
            r.error_code,
            r.topics
                .first()
                .map_or(-1, |t| t.partitions[0].committed_offset),
        ),
        other => panic!("unexpected {other:?}"),
    }
}

/// A lone member joins group `g` (with the KIP-394 member-id round trip) and is given
/// generation 1 once the initial rebalance delay has passed. Returns its member id.
fn join_alone(h: &mut Harness) -> String {
    let c = join(h, 1, "g", "", 10_000);
    let id = join_result(h, c).unwrap().member_id.to_string();
    let c = join(h, 1, "g", &id, 10_000);
    h.advance_ms(3_500);
    let j = join_result(h, c).expect("joined");
    assert_eq!((j.error_code, j.generation_id), (NONE, 1));
    id
}

/// The record of a new generation fails to write (full disk): the generation cannot stand, so
/// the group rebalances — members hear REBALANCE_IN_PROGRESS and the next generation is written
/// anew — instead of staying "stable" on a record that does not exist, where every SyncGroup
/// would fail forever.
#[test]
fn a_generation_whose_record_fails_to_write_is_rebalanced_away() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    let id = join_alone(&mut h);
    h.storage.full = true;
    let s = sync(&mut h, 1, "g", &id, 1, &[(&id, "p0")]);
    match h.take(s) {
        Some(ResponseKind::SyncGroup(r)) => assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        heartbeat(&mut h, 1, "g", &id, 1),
        REBALANCE_IN_PROGRESS,
        "generation 1 was never durable"
    );
    h.storage.full = false;
    let c = join(&mut h, 1, "g", &id, 10_000);
    h.advance_ms(100);
    let j = join_result(&mut h, c).expect("rejoined");
    assert_eq!((j.error_code, j.generation_id), (NONE, 2));
    let s = sync(&mut h, 1, "g", &id, 2, &[(&id, "p0")]);
    match h.take(s) {
        Some(ResponseKind::SyncGroup(r)) => {
            assert_eq!(r.error_code, NONE);
            assert_eq!(&r.assignment[..], b"p0");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(heartbeat(&mut h, 1, "g", &id, 2), NONE);
}

/// A failed offset commit (full disk) cuts the offsets partition back, but the group's
/// membership record, durable long before, still stands: a member that resynchronises gets its
/// assignment (simulator seeds 610 and 727: the group stopped consuming for good).
#[test]
fn a_failed_commit_does_not_undo_a_durable_generation() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    let id = join_alone(&mut h);
    let s = sync(&mut h, 1, "g", &id, 1, &[(&id, "p0")]);
    assert!(matches!(h.take(s), Some(ResponseKind::SyncGroup(r)) if r.error_code == NONE));
    h.storage.full = true;
    assert_ne!(
        commit(&mut h, 1, "g", &id, 1, 0, 5),
        NONE,
        "the commit cannot be written"
    );
    h.storage.full = false;
    let s = sync(&mut h, 1, "g", &id, 1, &[]);
    match h.take(s) {
        Some(ResponseKind::SyncGroup(r)) => {
            assert_eq!(r.error_code, NONE, "generation 1 is still durable");
            assert_eq!(&r.assignment[..], b"p0");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(commit(&mut h, 1, "g", &id, 1, 0, 5), NONE);
    assert_eq!(fetch_offset(&mut h, "g", 0), 5);
}

/// Two members join (with the KIP-394 member-id round trip), sync, commit; one goes silent and
/// the other is told to rebalance; committed offsets survive a restart.
#[test]
fn group_rebalance_commit_and_restart() {
    let mut h = Harness::new(Config::default());
    h.create("t", 4);
    let c = join(&mut h, 1, "g", "", 10_000);
    let a = join_result(&mut h, c).unwrap();
    assert_eq!(a.error_code, MEMBER_ID_REQUIRED);
    let a_id = a.member_id.to_string();
    let ca = join(&mut h, 1, "g", &a_id, 10_000);
    let c = join(&mut h, 2, "g", "", 10_000);
    let b_id = join_result(&mut h, c).unwrap().member_id.to_string();
    let cb = join(&mut h, 2, "g", &b_id, 10_000);
    assert!(
        join_result(&mut h, ca).is_none(),
        "the first rebalance waits out the initial delay"
    );
    h.advance_ms(3_500);
    assert!(
        join_result(&mut h, ca).is_none(),
        "a second member extends the initial delay"
    );
    h.advance_ms(3_000);
    let ja = join_result(&mut h, ca).expect("joined");
    let jb = join_result(&mut h, cb).expect("joined");
    assert_eq!((ja.error_code, jb.error_code), (NONE, NONE));
    assert_eq!(ja.generation_id, 1);
    assert_eq!(ja.leader, jb.leader);
    let (leader, follower, lconn, fconn) = if ja.leader.as_str() == a_id {
        (&a_id, &b_id, 1, 2)
    } else {
        (&b_id, &a_id, 2, 1)
    };
    let leader_resp = if lconn == 1 { &ja } else { &jb };
    assert_eq!(
        leader_resp.members.len(),
        2,
        "the leader sees every member's subscription"
    );
    let fs = sync(&mut h, fconn, "g", follower, 1, &[]);
    assert!(
        h.take(fs).is_none(),
        "followers wait for the leader's assignment"
    );
    let ls = sync(
        &mut h,
        lconn,
        "g",
        leader,
        1,
        &[(leader.as_str(), "p0,p1"), (follower.as_str(), "p2,p3")],
    );
    let Some(ResponseKind::SyncGroup(l)) = h.take(ls) else {
        panic!()
    };
    let Some(ResponseKind::SyncGroup(f)) = h.take(fs) else {
        panic!()
    };
    assert_eq!(
        (&l.assignment[..], &f.assignment[..]),
        (&b"p0,p1"[..], &b"p2,p3"[..])
    );
    assert_eq!(heartbeat(&mut h, lconn, "g", leader, 1), NONE);
    assert_eq!(commit(&mut h, lconn, "g", leader, 1, 0, 42), NONE);
    assert_eq!(
        commit(&mut h, lconn, "g", leader, 0, 0, 43),
        ILLEGAL_GENERATION,
        "a stale generation cannot commit"
    );
    assert_eq!(
        commit(&mut h, lconn, "g", "ghost", 1, 0, 43),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        commit(&mut h, lconn, "g", leader, 1, 9, 1),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(fetch_offset(&mut h, "g", 0), 42);
    assert_eq!(fetch_offset(&mut h, "g", 1), -1);

    // The follower goes silent; the leader keeps heartbeating and is told to rebalance.
    for _ in 0..4 {
        h.advance_ms(3_000);
        let code = heartbeat(&mut h, lconn, "g", leader, 1);
        if code == REBALANCE_IN_PROGRESS {
            break;
        }
        assert_eq!(code, NONE);
    }
    assert_eq!(
        heartbeat(&mut h, lconn, "g", leader, 1),
        REBALANCE_IN_PROGRESS,
        "the silent member's session expired"
    );
    let c = join(&mut h, lconn, "g", leader, 10_000);
    let j = join_result(&mut h, c).expect("alone, the rejoin completes at once");
    assert_eq!(
        (j.error_code, j.generation_id, j.members.len()),
        (NONE, 2, 1)
    );
    assert_eq!(
        heartbeat(&mut h, fconn, "g", follower, 1),
        UNKNOWN_MEMBER_ID
    );

    // Committed offsets come back after a restart, through the same replay path.
    let disk = h.storage.clone();
    let mut h2 = Harness::with_disk(Config::default(), disk, true);
    assert_eq!(fetch_offset(&mut h2, "g", 0), 42);
}

#[test]
fn simple_consumer_commits_and_groups_are_listed_and_deleted() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    assert_eq!(
        commit(&mut h, 1, "solo", "", -1, 0, 5),
        NONE,
        "a consumer outside any group may commit"
    );
    assert_eq!(fetch_offset(&mut h, "solo", 0), 5);
    let c = h.send(
        1,
        ApiKey::ListGroups,
        4,
        RequestKind::ListGroups(ListGroupsRequest::default()),
    );
    let Some(ResponseKind::ListGroups(l)) = h.take(c) else {
        panic!()
    };
    assert_eq!(l.groups.len(), 1);
    assert_eq!(l.groups[0].group_state.as_str(), "Empty");
    let c = h.send(
        1,
        ApiKey::DeleteGroups,
        2,
        RequestKind::DeleteGroups(
            DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(StrBytes::from_static_str("solo"))]),
        ),
    );
    let Some(ResponseKind::DeleteGroups(d)) = h.take(c) else {
        panic!()
    };
    assert_eq!(d.results[0].error_code, NONE);
    assert_eq!(fetch_offset(&mut h, "solo", 0), -1);
    let disk = h.storage.clone();
    let mut h2 = Harness::with_disk(Config::default(), disk, false);
    assert_eq!(
        fetch_offset(&mut h2, "solo", 0),
        -1,
        "the deletion is durable too"
    );
    let c = join(&mut h2, 1, "g2", "", 10);
    assert_eq!(
        join_result(&mut h2, c).unwrap().error_code,
        INVALID_SESSION_TIMEOUT
    );
}

/// The offsets log is rewritten as a snapshot when it grows, and the snapshot replays to the
/// same committed offsets after a restart.
#[test]
fn offsets_log_is_compacted_and_still_recovers() {
    let config = Config {
        offsets_log_bytes_max: 4096,
        offsets_topic_partitions: 1,
        ..Config::default()
    };
    let mut h = Harness::new(config.clone());
    h.create("t", 2);
    for i in 0..200 {
        assert_eq!(commit(&mut h, 1, "solo", "", -1, i % 2, i as i64), NONE);
    }
    let before = h.broker.topics()["__consumer_offsets"].partitions[0]
        .log
        .size_bytes();
    h.advance_ms(61_000);
    h.advance_ms(61_000);
    let log = &h.broker.topics()["__consumer_offsets"].partitions[0].log;
    assert!(
        log.size_bytes() < before / 4,
        "compacted from {before} to {} bytes",
        log.size_bytes()
    );
    assert!(log.log_start_offset() > 0);
    let disk = h.storage.clone();
    let mut h2 = Harness::with_disk(config, disk, true);
    assert_eq!(fetch_offset(&mut h2, "solo", 0), 198);
    assert_eq!(fetch_offset(&mut h2, "solo", 1), 199);
}

/// A JoinGroup v5 naming its protocols in order of preference and, for a static member, its
/// `group.instance.id`.
fn join_as(
    h: &mut Harness,
    conn: u64,
    member: &str,
    instance: Option<&str>,
    protocols: &[&str],
) -> i32 {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(StrBytes::from_string(member.into()))
        .with_group_instance_id(instance.map(|i| StrBytes::from_string(i.into())))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|p| {
                    join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_string(p.to_string()))
                        .with_metadata(Bytes::from_static(b"sub"))
                })
                .collect(),
        );
    h.send(conn, ApiKey::JoinGroup, 5, RequestKind::JoinGroup(req))
}

/// Kafka's `GroupMetadata.selectProtocol`: among the protocols every member supports, each
/// member votes for its first choice and the most votes win — here roundrobin, although the
/// first member to join prefers range.
#[test]
fn the_protocol_most_members_prefer_wins_the_vote() {
    let mut h = Harness::new(Config::default());
    let prefs: [&[&str]; 3] = [
        &["range", "roundrobin"],
        &["roundrobin", "range", "sticky"],
        &["sticky", "roundrobin", "range"],
    ];
    let mut waits = Vec::new();
    for (i, p) in prefs.iter().enumerate() {
        let conn = 10 + i as u64;
        let c = join_as(&mut h, conn, "", None, p);
        let id = join_result(&mut h, c).unwrap().member_id.to_string();
        waits.push(join_as(&mut h, conn, &id, None, p));
    }
    h.advance_ms(10_000);
    for c in waits {
        let j = join_result(&mut h, c).expect("joined");
        assert_eq!(j.error_code, NONE);
        // sticky is not supported by the first member, so it is no candidate; of the votes
        // for the candidates, roundrobin has two (the third member's first common choice).
        assert_eq!(j.protocol_name.as_deref(), Some("roundrobin"));
    }
}

/// KIP-345: a consumer joining with a `group.instance.id` already in use takes the instance
/// over; the old member is fenced — its heartbeat, sync, commit and rejoin get
/// FENCED_INSTANCE_ID — while the new one carries on.
#[test]
fn a_replaced_static_member_is_fenced() {
    let mut h = Harness::new(Config::default());
    h.create("t", 1);
    // A static member gets its id at once (no KIP-394 round trip).
    let c = join_as(&mut h, 1, "", Some("inst"), &["range"]);
    h.advance_ms(3_500);
    let a = join_result(&mut h, c).expect("joined");
    assert_eq!((a.error_code, a.generation_id), (NONE, 1));
    let a_id = a.member_id.to_string();
    assert!(a_id.starts_with("inst-"), "{a_id}");
    let s = sync(&mut h, 1, "g", &a_id, 1, &[(&a_id, "p0")]);
    assert!(matches!(h.take(s), Some(ResponseKind::SyncGroup(r)) if r.error_code == NONE));

    let c = join_as(&mut h, 2, "", Some("inst"), &["range"]);
    let b = join_result(&mut h, c).expect("a stable group answers a static rejoin at once");
    assert_eq!((b.error_code, b.generation_id), (NONE, 1));
    let b_id = b.member_id.to_string();
    assert_ne!(a_id, b_id);

    let inst = Some(StrBytes::from_static_str("inst"));
    let hb = |h: &mut Harness, conn: u64, id: &str| {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_generation_id(1)
            .with_member_id(StrBytes::from_string(id.into()))
            .with_group_instance_id(inst.clone());
        let c = h.send(conn, ApiKey::Heartbeat, 3, RequestKind::Heartbeat(req));
        match h.take(c) {
            Some(ResponseKind::Heartbeat(r)) => r.error_code,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(hb(&mut h, 1, &a_id), FENCED_INSTANCE_ID);
    assert_eq!(hb(&mut h, 2, &b_id), NONE);

    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id(1)
        .with_member_id(StrBytes::from_string(a_id.clone()))
        .with_group_instance_id(inst.clone());
    let s = h.send(1, ApiKey::SyncGroup, 3, RequestKind::SyncGroup(req));
    assert!(
        matches!(h.take(s), Some(ResponseKind::SyncGroup(r)) if r.error_code == FENCED_INSTANCE_ID)
    );

    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(1)
        .with_member_id(StrBytes::from_string(a_id.clone()))
        .with_group_instance_id(inst.clone())
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1),
                ]),
        ]);
    let c = h.send(1, ApiKey::OffsetCommit, 7, RequestKind::OffsetCommit(req));
    match h.take(c) {
        Some(ResponseKind::OffsetCommit(r)) => {
            assert_eq!(r.topics[0].partitions[0].error_code, FENCED_INSTANCE_ID)
        }
        other => panic!("unexpected {other:?}"),
    }

    let c = join_as(&mut h, 1, &a_id, Some("inst"), &["range"]);
    assert_eq!(
        join_result(&mut h, c).unwrap().error_code,
        FENCED_INSTANCE_ID,
        "a zombie's rejoin with its old id does not take the instance back"
    );
    assert_eq!(hb(&mut h, 2, &b_id), NONE);
}

// ---------------------------------------------------------------- admin APIs (admin/mod.rs)

/// CreatePartitions, DeleteRecords, the config alters, OffsetDelete and the descriptions.
mod admin;
mod coordinator_ownership;
