//! The consumer: positions, offset resets and fetches.
//!
//! A consumer reads each assigned partition from its *position*: the offset of the next record
//! it will hand to the application. Kafka keeps no per-consumer cursor on the broker; the
//! position lives here (and, for a group, is committed to the coordinator now and then).
//!
//! * With no position yet, or one the broker says is out of range (OFFSET_OUT_OF_RANGE: below
//!   the log start after retention deleted segments, or above the end), the consumer looks one
//!   up with ListOffsets as `auto.offset.reset` says: `earliest` (timestamp −2), `latest` (−1),
//!   or `none`, which stops the partition and reports the error. [`Client::seek`] sets a
//!   position directly; [`Client::seek_to`] looks one up (the start, the end, or the first
//!   record at or after a time, KIP-79).
//! * Each broker gets at most one Fetch at a time, for all the partitions it leads that have a
//!   position. The broker may hold it up to `fetch.max.wait.ms` for data (long polling). The
//!   answer holds whole record batches, which may begin before the position (a batch is the
//!   unit of storage): records below the position are skipped, control batches of
//!   transactions are skipped, and the position moves to one past the last record (or past a
//!   gap left by compaction). A batch cut off at the end by the size limit is fetched again
//!   next time. Fetch sessions (KIP-227) are not used: every fetch is a full one (session id 0,
//!   epoch −1).
//!
//! ## Invariants (checked after every step)
//! * a partition waits on at most one request (a fetch or an offset lookup), never both, and
//!   one it waits on is in flight (so it never waits forever);
//! * each broker has at most one fetch in flight.

use crate::client::{sb, Client};
use crate::config::OffsetReset;
use crate::conn::Purpose;
use crate::io::{error_name, ClientError, ConsumerRecord, Fetched, NodeId, Output};
use crate::metadata::TopicPartition;
use bytes::{Buf, Bytes};
use gregor_core::batch::BatchHeader;
use gregor_core::{Duration, Instant};
use kafka_protocol::messages::*;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet};

/// ListOffsets' special timestamps.
const EARLIEST: i64 = -2;
const LATEST: i64 = -1;

/// The most bytes one batch's records may decompress to in the consumer: a broker's batch is
/// trusted no more than a producer's is by the broker.
pub const DECOMPRESSED_BATCH_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Where [`Client::seek_to`] moves a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekTo {
    Beginning,
    End,
    /// The first record with a timestamp at or after this (Unix ms); the end if none.
    Time(i64),
}

#[derive(Clone, Debug, Default)]
pub(crate) struct PartPos {
    pub(crate) position: Option<i64>,
    /// The group's committed offset is being looked up; nothing else happens until it is.
    pub(crate) awaiting_committed: bool,
    /// A lookup to make: the ListOffsets timestamp.
    reset_to: Option<i64>,
    /// The offset a fetch in flight asked for.
    fetching: Option<i64>,
    listing: bool,
    /// An error was reported; nothing happens until the application seeks.
    stopped: bool,
    backoff_until: Instant,
    high_watermark: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct Consumer {
    pub(crate) parts: BTreeMap<TopicPartition, PartPos>,
    /// Topics whose every partition is assigned, including partitions added later, with the
    /// lookup each new partition starts with (`None`: `auto.offset.reset`).
    whole_topics: BTreeMap<String, Option<i64>>,
}

fn decompress(buf: &mut Bytes, codec: Compression) -> anyhow::Result<Bytes> {
    use kafka_protocol::compression::{Decompressor, Gzip, Snappy, Zstd};
    use std::io::Read;
    let take_all = |b: &mut Bytes| -> anyhow::Result<Bytes> { Ok(b.copy_to_bytes(b.remaining())) };
    let out = match codec {
        Compression::None => take_all(buf)?,
        Compression::Gzip => Gzip::decompress(buf, take_all)?,
        Compression::Snappy => Snappy::decompress(buf, take_all)?,
        Compression::Zstd => Zstd::decompress(buf, take_all)?,
        // kafka-protocol's LZ4 links a C library; the pure-Rust frame decoder the core uses
        // reads the same LZ4 frame format (KIP-57).
        Compression::Lz4 => {
            let mut out = Vec::new();
            lz4_flex::frame::FrameDecoder::new(&buf[..])
                .take(DECOMPRESSED_BATCH_BYTES_MAX + 1)
                .read_to_end(&mut out)?;
            buf.advance(buf.remaining());
            Bytes::from(out)
        }
    };
    anyhow::ensure!(
        out.len() as u64 <= DECOMPRESSED_BATCH_BYTES_MAX,
        "a batch decompresses to more than {DECOMPRESSED_BATCH_BYTES_MAX} bytes"
    );
    Ok(out)
}

/// The records of a fetched record set at or after `position`, and the position after them.
/// Stops at a batch cut short by the response's size limit.
pub fn read_records(
    mut data: Bytes,
    mut position: i64,
) -> Result<(Vec<ConsumerRecord>, i64), String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let header = match BatchHeader::parse(&data) {
            Ok(h) => h,
            Err(gregor_core::batch::BatchError::Truncated { .. }) => break,
            Err(e) => return Err(e.to_string()),
        };
        if header.size > data.len() {
            break; // cut at the size limit; the next fetch starts here
        }
        let batch = data.split_to(header.size);
        header.verify(&batch).map_err(|e| e.to_string())?;
        if header.next_offset() <= position {
            continue;
        }
        if !header.is_control() {
            let set = RecordBatchDecoder::decode_with_custom_compression(
                &mut batch.clone(),
                Some(decompress),
            )
            .map_err(|e| format!("batch at offset {}: {e}", header.base_offset))?;
            for r in set.records {
                if r.offset < position || r.control {
                    continue;
                }
                out.push(ConsumerRecord {
                    offset: r.offset,
                    timestamp_ms: r.timestamp,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                });
            }
        }
        // Past the whole batch, even if compaction left its last offsets empty.
        position = position.max(header.next_offset());
    }
    for w in out.windows(2) {
        assert!(w[0].offset < w[1].offset, "records come in offset order");
    }
    Ok((out, position))
}

/// The ListOffsets timestamp that finds `to`.
fn lookup_timestamp(to: SeekTo) -> i64 {
    match to {
        SeekTo::Beginning => EARLIEST,
        SeekTo::End => LATEST,
        SeekTo::Time(ms) => ms.max(0),
    }
}

impl PartPos {
    /// A partition the group assigned: it waits for the group's committed offset.
    pub(crate) fn awaiting_committed() -> PartPos {
        PartPos {
            awaiting_committed: true,
            ..PartPos::default()
        }
    }
}

impl Client {
    /// Read these partitions (in addition to those already assigned). Without a position, each
    /// starts where `auto.offset.reset` says.
    pub fn assign(&mut self, now: Instant, partitions: &[(String, i32)]) {
        self.advance(now);
        for tp in partitions {
            self.want_topic(&tp.0);
            self.consumer.parts.entry(tp.clone()).or_default();
        }
        self.step();
    }

    /// Read every partition of `topic`, including partitions added to it later, each starting
    /// where `start` says (or where `auto.offset.reset` says).
    pub fn assign_topic(&mut self, now: Instant, topic: &str, start: Option<SeekTo>) {
        self.advance(now);
        self.want_topic(topic);
        self.consumer
            .whole_topics
            .insert(topic.to_string(), start.map(lookup_timestamp));
        self.step();
    }

    /// Read `tp` from `offset` next (assigning it if it was not).
    pub fn seek(&mut self, now: Instant, tp: (String, i32), offset: i64) {
        self.advance(now);
        self.want_topic(&tp.0);
        let p = self.consumer.parts.entry(tp).or_default();
        p.position = Some(offset.max(0));
        p.reset_to = None;
        p.stopped = false;
        self.step();
    }

    /// Look up a position for `tp` and read from there.
    pub fn seek_to(&mut self, now: Instant, tp: (String, i32), to: SeekTo) {
        self.advance(now);
        self.want_topic(&tp.0);
        let p = self.consumer.parts.entry(tp).or_default();
        p.position = None;
        p.stopped = false;
        p.reset_to = Some(lookup_timestamp(to));
        self.step();
    }

    pub fn position(&self, tp: &(String, i32)) -> Option<i64> {
        self.consumer.parts.get(tp).and_then(|p| p.position)
    }

    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.consumer.parts.keys().cloned().collect()
    }

    /// Whether every assigned partition has been read to the high watermark its last fetch
    /// reported (what `kcat -e` waits for). False until each has been fetched once.
    pub fn caught_up(&self) -> bool {
        !self.consumer.parts.is_empty()
            && self.consumer.parts.values().all(|p| {
                p.stopped
                    || matches!((p.position, p.high_watermark), (Some(pos), Some(hw)) if pos >= hw)
            })
    }

    fn auto_reset(&mut self, tp: &TopicPartition, why: ClientError) {
        let p = self.consumer.parts.get_mut(tp).expect("assigned");
        p.position = None;
        match self.config.auto_offset_reset {
            OffsetReset::Earliest => p.reset_to = Some(EARLIEST),
            OffsetReset::Latest => p.reset_to = Some(LATEST),
            OffsetReset::None => {
                p.stopped = true;
                self.outputs.push_back(Output::ConsumeError {
                    topic: tp.0.clone(),
                    partition: tp.1,
                    error: why,
                });
            }
        }
    }

    fn stop(&mut self, tp: &TopicPartition, error: ClientError) {
        if let Some(p) = self.consumer.parts.get_mut(tp) {
            p.stopped = true;
            self.outputs.push_back(Output::ConsumeError {
                topic: tp.0.clone(),
                partition: tp.1,
                error,
            });
        }
    }

    pub(crate) fn metadata_changed(&mut self) {
        let topics: Vec<(String, Option<i64>)> = self
            .consumer
            .whole_topics
            .iter()
            .map(|(t, s)| (t.clone(), *s))
            .collect();
        for (t, start) in topics {
            if let Some(n) = self.meta.partitions(&t) {
                for p in 0..n {
                    self.consumer
                        .parts
                        .entry((t.clone(), p))
                        .or_insert_with(|| PartPos {
                            reset_to: start,
                            ..PartPos::default()
                        });
                }
            }
        }
        // A partition of a topic that does not exist cannot be read until it does; say so once.
        let missing: Vec<(TopicPartition, i16)> = self
            .consumer
            .parts
            .iter()
            .filter(|(_, p)| !p.stopped)
            .filter_map(|(tp, _)| {
                let code = *self.meta.topic_errors.get(&tp.0)?;
                (code == ResponseError::UnknownTopicOrPartition.code()).then(|| (tp.clone(), code))
            })
            .collect();
        for (tp, code) in missing {
            self.outputs.push_back(Output::Log {
                message: format!("{}-{}: {}; waiting for it", tp.0, tp.1, error_name(code)),
            });
        }
        let out_of_range: Vec<TopicPartition> = self
            .consumer
            .parts
            .keys()
            .filter(|tp| {
                self.meta
                    .partitions(&tp.0)
                    .is_some_and(|n| tp.1 >= n || tp.1 < 0)
            })
            .cloned()
            .collect();
        for tp in out_of_range {
            let n = self.meta.partitions(&tp.0).unwrap_or(0);
            self.stop(
                &tp,
                ClientError::broker(
                    ResponseError::UnknownTopicOrPartition.code(),
                    format!("topic {} has {n} partitions", tp.0),
                ),
            );
        }
    }

    pub(crate) fn step_consumer(&mut self) {
        let now = self.now;
        let policy = self.config.auto_offset_reset;
        let need_reset: Vec<TopicPartition> = self
            .consumer
            .parts
            .iter()
            .filter(|(_, p)| {
                p.position.is_none() && p.reset_to.is_none() && !p.stopped && !p.awaiting_committed
            })
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in need_reset {
            if policy == OffsetReset::None {
                self.stop(
                    &tp,
                    ClientError::Invalid(format!(
                        "{}-{} has no position and auto.offset.reset is none",
                        tp.0, tp.1
                    )),
                );
            } else {
                self.auto_reset(&tp, ClientError::Invalid(String::new()));
            }
        }
        let mut lookups: BTreeMap<NodeId, Vec<TopicPartition>> = BTreeMap::new();
        let mut fetches: BTreeMap<NodeId, Vec<TopicPartition>> = BTreeMap::new();
        for (tp, p) in &self.consumer.parts {
            if p.stopped
                || p.awaiting_committed
                || p.listing
                || p.fetching.is_some()
                || now < p.backoff_until
            {
                continue;
            }
            let Some(leader) = self.meta.leader(tp) else {
                continue;
            };
            if p.reset_to.is_some() {
                lookups.entry(NodeId(leader)).or_default().push(tp.clone());
            } else if p.position.is_some() {
                fetches.entry(NodeId(leader)).or_default().push(tp.clone());
            }
        }
        for (node, tps) in lookups {
            if self.ready(node) {
                self.send_list_offsets(node, tps);
            }
        }
        for (node, tps) in fetches {
            let busy = self.conns.get(&node).is_some_and(|c| {
                c.in_flight
                    .iter()
                    .any(|r| matches!(r.purpose, Purpose::Fetch(_)))
            });
            if !busy && self.ready(node) {
                self.send_fetch(node, tps);
            }
        }
    }

    /// The version of `key` to use on `node`; if there is none, the partitions that needed it
    /// stop with an error saying so.
    fn version_or_stop(
        &mut self,
        node: NodeId,
        key: ApiKey,
        tps: &[TopicPartition],
    ) -> Option<i16> {
        let v = self.conns[&node].version(key);
        if v.is_none() {
            for tp in tps {
                self.stop(
                    tp,
                    ClientError::Invalid(format!(
                        "node {} speaks no {key:?} version this client speaks",
                        node.0
                    )),
                );
            }
        }
        v
    }

    fn send_list_offsets(&mut self, node: NodeId, tps: Vec<TopicPartition>) {
        let Some(version) = self.version_or_stop(node, ApiKey::ListOffsets, &tps) else {
            return;
        };
        let mut topics: BTreeMap<String, Vec<list_offsets_request::ListOffsetsPartition>> =
            BTreeMap::new();
        for tp in &tps {
            let p = self.consumer.parts.get_mut(tp).unwrap();
            p.listing = true;
            topics.entry(tp.0.clone()).or_default().push(
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(tp.1)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(p.reset_to.expect("a lookup to make")),
            );
        }
        let body = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        list_offsets_request::ListOffsetsTopic::default()
                            .with_name(TopicName(sb(&t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        self.send_request(
            node,
            ApiKey::ListOffsets,
            version,
            RequestKind::ListOffsets(body),
            Purpose::ListOffsets(tps),
            true,
        );
    }

    fn send_fetch(&mut self, node: NodeId, tps: Vec<TopicPartition>) {
        let Some(version) = self.version_or_stop(node, ApiKey::Fetch, &tps) else {
            return;
        };
        let mut topics: BTreeMap<String, Vec<fetch_request::FetchPartition>> = BTreeMap::new();
        for tp in &tps {
            let p = self.consumer.parts.get_mut(tp).unwrap();
            let offset = p.position.expect("fetching from a position");
            p.fetching = Some(offset);
            topics.entry(tp.0.clone()).or_default().push(
                fetch_request::FetchPartition::default()
                    .with_partition(tp.1)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(offset)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(self.config.fetch_partition_bytes_max),
            );
        }
        let body = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(self.config.fetch_wait_ms_max)
            .with_min_bytes(1)
            .with_max_bytes(self.config.fetch_bytes_max)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        fetch_request::FetchTopic::default()
                            .with_topic(TopicName(sb(&t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        self.send_request(
            node,
            ApiKey::Fetch,
            version,
            RequestKind::Fetch(body),
            Purpose::Fetch(tps),
            true,
        );
    }

    pub(crate) fn consumer_lost(&mut self, tps: Vec<TopicPartition>) {
        let backoff = self.now + Duration::from_ms(self.config.retry_backoff_ms);
        for tp in tps {
            if let Some(p) = self.consumer.parts.get_mut(&tp) {
                p.fetching = None;
                p.listing = false;
                p.backoff_until = backoff;
            }
        }
    }

    /// A retriable error on a partition: look the leader up again if it moved, and wait.
    fn partition_retry(&mut self, tp: &TopicPartition, code: i16) {
        let moved = [
            ResponseError::NotLeaderOrFollower,
            ResponseError::UnknownTopicOrPartition,
            ResponseError::LeaderNotAvailable,
            ResponseError::FencedLeaderEpoch,
            ResponseError::UnknownLeaderEpoch,
            ResponseError::KafkaStorageError,
        ]
        .iter()
        .any(|e| e.code() == code);
        if moved {
            self.meta.forget_leader(tp);
        }
        let backoff = self.now + Duration::from_ms(self.config.retry_backoff_ms);
        if let Some(p) = self.consumer.parts.get_mut(tp) {
            p.backoff_until = backoff;
        }
        self.outputs.push_back(Output::Log {
            message: format!("{}-{}: {}; retrying", tp.0, tp.1, error_name(code)),
        });
    }

    pub(crate) fn on_list_offsets(&mut self, tps: Vec<TopicPartition>, r: ListOffsetsResponse) {
        let mut answers: BTreeMap<TopicPartition, (i16, i64)> = BTreeMap::new();
        for t in &r.topics {
            for p in &t.partitions {
                answers.insert(
                    (t.name.to_string(), p.partition_index),
                    (p.error_code, p.offset),
                );
            }
        }
        for tp in tps {
            let Some(p) = self.consumer.parts.get_mut(&tp) else {
                continue;
            };
            p.listing = false;
            let Some(&(code, offset)) = answers.get(&tp) else {
                self.partition_retry(&tp, ResponseError::UnknownServerError.code());
                continue;
            };
            if code != 0 {
                if ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable()) {
                    self.partition_retry(&tp, code);
                } else {
                    self.stop(
                        &tp,
                        ClientError::broker(
                            code,
                            format!("looking up an offset of {}-{}", tp.0, tp.1),
                        ),
                    );
                }
                continue;
            }
            if p.reset_to.is_none() {
                continue; // a seek replaced this lookup meanwhile; it is sent again
            }
            if offset < 0 {
                // No record at or after that time: read from the end.
                p.reset_to = Some(LATEST);
                continue;
            }
            p.reset_to = None;
            p.position = Some(offset);
        }
    }

    pub(crate) fn on_fetch(&mut self, tps: Vec<TopicPartition>, r: FetchResponse) {
        let mut answers: BTreeMap<TopicPartition, fetch_response::PartitionData> = BTreeMap::new();
        for t in r.responses {
            let name = t.topic.to_string();
            for p in t.partitions {
                answers.insert((name.clone(), p.partition_index), p);
            }
        }
        for tp in tps {
            let Some(p) = self.consumer.parts.get_mut(&tp) else {
                continue;
            };
            let Some(asked) = p.fetching.take() else {
                continue;
            };
            if p.position != Some(asked) {
                continue; // the application moved the position meanwhile
            }
            let code = if r.error_code != 0 {
                r.error_code
            } else {
                answers
                    .get(&tp)
                    .map_or(ResponseError::UnknownServerError.code(), |d| d.error_code)
            };
            if code == ResponseError::OffsetOutOfRange.code() {
                self.outputs.push_back(Output::Log {
                    message: format!(
                        "{}-{}: offset {asked} is out of range; resetting ({:?})",
                        tp.0, tp.1, self.config.auto_offset_reset
                    ),
                });
                self.auto_reset(
                    &tp,
                    ClientError::broker(code, format!("fetching {}-{} at {asked}", tp.0, tp.1)),
                );
                continue;
            }
            if code != 0 {
                if ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable()) {
                    self.partition_retry(&tp, code);
                } else {
                    self.stop(
                        &tp,
                        ClientError::broker(code, format!("fetching {}-{}", tp.0, tp.1)),
                    );
                }
                continue;
            }
            let d = answers.remove(&tp).expect("an answer with no error");
            let data = d.records.unwrap_or_default();
            match read_records(data, asked) {
                Ok((records, next)) => {
                    let p = self.consumer.parts.get_mut(&tp).unwrap();
                    p.position = Some(next);
                    p.high_watermark = Some(d.high_watermark);
                    if !records.is_empty() {
                        self.outputs.push_back(Output::Records(Fetched {
                            topic: tp.0.clone(),
                            partition: tp.1,
                            records,
                            high_watermark: d.high_watermark,
                        }));
                    }
                }
                Err(e) => self.stop(
                    &tp,
                    ClientError::broker(ResponseError::CorruptMessage.code(), e),
                ),
            }
        }
    }

    pub(crate) fn consumer_deadline(&self) -> Option<Instant> {
        self.consumer
            .parts
            .values()
            .filter(|p| !p.stopped && p.backoff_until > self.now)
            .map(|p| p.backoff_until)
            .min()
    }

    pub(crate) fn consumer_invariants(&self) {
        let mut fetching: BTreeMap<NodeId, usize> = BTreeMap::new();
        let mut in_fetches: BTreeSet<&TopicPartition> = BTreeSet::new();
        let mut in_lookups: BTreeSet<&TopicPartition> = BTreeSet::new();
        for (n, c) in &self.conns {
            for r in &c.in_flight {
                match &r.purpose {
                    Purpose::Fetch(tps) => {
                        *fetching.entry(*n).or_default() += 1;
                        in_fetches.extend(tps);
                    }
                    Purpose::ListOffsets(tps) => in_lookups.extend(tps),
                    _ => {}
                }
            }
        }
        // (A partition in a fetch may be unmarked: it was given up and assigned again while the
        // fetch was out; its answer is then ignored.)
        assert!(
            fetching.values().all(|&n| n <= 1),
            "one fetch per broker: {fetching:?}"
        );
        for (tp, p) in &self.consumer.parts {
            assert!(
                !(p.listing && p.fetching.is_some()),
                "{tp:?}: a fetch and a lookup at once"
            );
            assert!(
                p.position.is_none_or(|o| o >= 0),
                "{tp:?}: a negative position"
            );
            assert!(
                p.fetching.is_none() || in_fetches.contains(tp),
                "{tp:?}: marked as fetching with no fetch in flight"
            );
            assert!(
                !p.listing || in_lookups.contains(tp),
                "{tp:?}: marked as looking up with no ListOffsets in flight"
            );
        }
    }
}
