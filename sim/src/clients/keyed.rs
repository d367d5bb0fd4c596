//! The compacted topic's workload (log compaction, `cleanup.policy=compact`; issue 12).
//!
//! In some seeds the world creates a second topic, [`COMPACTED`], with one partition, small
//! segments that roll on size and on time (`segment.bytes`, `segment.ms`) and a low
//! `min.cleanable.dirty.ratio`, so the broker's log cleaner runs many times within a seed's
//! simulated time; in half of them `delete.retention.ms` is short too, so tombstones are
//! removed as well. One keyed producer writes updates and tombstones (null values) over a few
//! keys, through the same crashes, power losses and network faults as the main workload, and
//! retries what times out (each value is unique, so the checker can tell every write apart).
//! After faults healed and the producers stopped, the same client reads the partition from
//! its start to its high watermark; `check::compaction` judges that read against the writes:
//! every key's latest acknowledged record (or its expired tombstone) must be there.
//!
//! The compacted topic's writes are kept apart from the main topic's history
//! ([`crate::history::Compacted`]): the main checkers expect every acknowledged record to stay
//! readable, which compaction rightly breaks.
//!
//! A reader of a compacted partition moves on by batch, not by record: after a clean a batch's
//! last offsets may hold no record (gregor, like Kafka, keeps a rewritten batch's offset range),
//! and a reader that asked again for the offset after the last record it got would be handed
//! the same batch forever (the Java consumer moves its position to the batch's next offset too).

use super::{name, Client, Env, Pending, Role, Us, MS};
use crate::history::{Compacted, KeyedRecord, KeyedWrite};
use bytes::Bytes;
use gregor_core::batch::BatchHeader;
use gregor_core::error::*;
use gregor_core::kafka_protocol::messages::*;
use gregor_core::kafka_protocol::protocol::StrBytes;
use gregor_core::kafka_protocol::records::{Compression, RecordBatchDecoder};
use gregor_core::prng::Prng;
use gregor_core::testkit::{self, Rec};

/// The compacted topic's name.
pub const COMPACTED: &str = "c";

/// A seed's compacted topic: its configs and its producer's shape. Drawn from a PRNG of its
/// own, so the rest of the seed's profile does not change with it.
#[derive(Clone, Debug)]
pub struct Compaction {
    /// How many keys the producer writes (few, so every key is updated many times).
    pub keys: u64,
    /// Tombstones per ten records.
    pub tombstones_per_10: u64,
    /// Milliseconds between the producer's batches.
    pub gap_ms: u64,
    /// `segment.bytes` (at least 2048: a segment must hold the broker's largest batch,
    /// `max.message.bytes` 1024 here, and its overhead) and `segment.ms`: segments close often,
    /// and only closed segments are cleaned.
    pub segment_bytes: u64,
    pub segment_ms: u64,
    /// `min.cleanable.dirty.ratio`, in thousandths.
    pub dirty_ratio_permille: u64,
    /// `delete.retention.ms`, when shorter than the run (`None`: Kafka's default, a day).
    pub delete_retention_ms: Option<u64>,
    /// The broker's `log.cleaner.backoff.ms`: how often the cleaner looks for work.
    pub cleaner_backoff_ms: u64,
}

impl Compaction {
    /// In one seed of three, a compacted topic.
    pub fn draw(seed: u64) -> Option<Compaction> {
        let mut prng = Prng::new(seed ^ 0x636f_6d70_6163_7400);
        if !prng.ratio(1, 3) {
            return None;
        }
        Some(Compaction {
            keys: 2 + prng.below(7),
            tombstones_per_10: 1 + prng.below(3),
            gap_ms: 20 + prng.below(80),
            segment_bytes: 2_048 + prng.below(3 * 1024),
            segment_ms: 500 + prng.below(4_500),
            dirty_ratio_permille: 10 + prng.below(490),
            delete_retention_ms: prng.ratio(1, 2).then(|| 200 + prng.below(5_000)),
            cleaner_backoff_ms: 500 + prng.below(4_500),
        })
    }

    /// The topic's CreateTopics entry.
    pub fn topic(&self) -> create_topics_request::CreatableTopic {
        let ratio = format!("{}", self.dirty_ratio_permille as f64 / 1000.0);
        let mut configs = vec![
            ("cleanup.policy", "compact".to_string()),
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
            ("min.cleanable.dirty.ratio", ratio),
        ];
        if let Some(ms) = self.delete_retention_ms {
            configs.push(("delete.retention.ms", ms.to_string()));
        }
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(name(COMPACTED)))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .into_iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_static_str(k))
                            .with_value(Some(StrBytes::from_string(v)))
                    })
                    .collect(),
            )
    }

    /// The history's record of the topic, before anything is written.
    pub fn history(&self) -> Compacted {
        Compacted {
            tombstones_may_expire: self.delete_retention_ms.is_some(),
            ..Compacted::default()
        }
    }

    /// One line for the run's header.
    pub fn describe(&self) -> String {
        format!(
            "{} keys, {} tombstones in 10, gap {}ms; segments {}B or {}ms, dirty ratio {}‰, \
             delete.retention.ms {}, cleaner backoff {}ms",
            self.keys,
            self.tombstones_per_10,
            self.gap_ms,
            self.segment_bytes,
            self.segment_ms,
            self.dirty_ratio_permille,
            self.delete_retention_ms
                .map_or("default (a day)".to_string(), |ms| ms.to_string()),
            self.cleaner_backoff_ms,
        )
    }
}

/// The compacted topic's client: a keyed producer, then the final reader.
pub struct Keyed {
    keys: u64,
    tombstones_per_10: u64,
    gap: Us,
    next_at: Us,
    next_value: u64,
    /// The batch being written: its records (key, value), and whether an attempt of it
    /// already ended with an unknown outcome (recorded once).
    batch: Option<(Vec<KeyedWrite>, bool)>,
    /// Each record's timestamp (CreateTime): `delete.retention.ms` counts from a tombstone's.
    timestamps_ms: Vec<i64>,
    produce_inflight: bool,
    /// The final read: started by the world once the main auditor starts.
    pub reading: bool,
    pos: i64,
    fetch_inflight: bool,
    read: Vec<KeyedRecord>,
    pub finished: bool,
}

/// Produce answers that say the batch was not written.
const REFUSED: [i16; 4] = [
    CORRUPT_MESSAGE,
    MESSAGE_TOO_LARGE,
    INVALID_RECORD,
    UNKNOWN_TOPIC_OR_PARTITION,
];

impl Keyed {
    pub fn new(c: &Compaction) -> Keyed {
        Keyed {
            keys: c.keys,
            tombstones_per_10: c.tombstones_per_10,
            gap: c.gap_ms * MS,
            next_at: 0,
            next_value: 0,
            batch: None,
            timestamps_ms: Vec::new(),
            produce_inflight: false,
            reading: false,
            pos: 0,
            fetch_inflight: false,
            read: Vec::new(),
            finished: false,
        }
    }

    pub fn next_wake(&self, consider: &mut dyn FnMut(Us)) {
        if !self.finished {
            consider(self.next_at);
        }
    }

    /// A request's outcome is unknown (timeout or lost connection).
    pub(super) fn lost(&mut self, env: &mut Env, what: Pending) {
        match what {
            Pending::Produce { .. } => self.produce_unknown(env),
            Pending::Fetch { .. } => self.fetch_inflight = false,
            _ => {}
        }
        self.next_at = env.now + 100 * MS;
    }

    fn produce_unknown(&mut self, env: &mut Env) {
        self.produce_inflight = false;
        if let Some((recs, reported)) = &mut self.batch {
            if !*reported {
                *reported = true;
                compacted(env).unknown.extend(recs.iter().cloned());
            }
        }
        if env.producers_give_up {
            self.batch = None;
        }
    }
}

/// The history's record of the compacted topic (the world sets it up with the client).
fn compacted(env: &mut Env) -> &mut Compacted {
    env.history
        .compacted
        .as_mut()
        .expect("a keyed client only in seeds with a compacted topic")
}

/// The records of a fetch answer's `bytes` at or above `from`, and the offset after the last
/// whole batch (where the next fetch starts: a cleaned batch's last offsets may hold no record).
pub fn decode_keyed(bytes: &Bytes, from: i64) -> (Vec<KeyedRecord>, Option<i64>) {
    let mut out = Vec::new();
    let mut next = None;
    let mut rest = bytes.clone();
    while let Ok(h) = BatchHeader::parse(&rest) {
        if rest.len() < h.size {
            break; // a partial batch at the end of the answer
        }
        let mut one = rest.split_to(h.size);
        // Every codec the topic may store (`compression.type`), LZ4 included.
        let decompress = Some(gregor_core::batch::decompress);
        let Ok(set) = RecordBatchDecoder::decode_with_custom_compression(&mut one, decompress)
        else {
            break;
        };
        for r in set.records.into_iter().filter(|r| r.offset >= from) {
            let key = r.key.map(|k| k.to_vec()).unwrap_or_default();
            out.push((r.offset, key, r.value.map(|v| v.to_vec())));
        }
        next = Some(h.next_offset());
    }
    (out, next)
}

impl Client {
    pub(super) fn keyed_kick(&mut self, env: &mut Env) {
        let Role::Keyed(k) = &mut self.role else {
            unreachable!()
        };
        if k.finished || env.now < k.next_at {
            return;
        }
        if env.socket_full.contains(&self.id) {
            // A blocked send: try again a little later.
            k.next_at = env.now + 100 * MS;
            return;
        }
        if k.reading {
            if k.produce_inflight || k.fetch_inflight {
                return;
            }
            k.fetch_inflight = true;
            let part = fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(k.pos)
                .with_partition_max_bytes(64 * 1024);
            let req = FetchRequest::default()
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(TopicName(name(COMPACTED)))
                    .with_partitions(vec![part])]);
            let sent = env.ms();
            self.send(
                env,
                ApiKey::Fetch,
                4,
                RequestKind::Fetch(req),
                Some(Pending::Fetch { epoch: 0, sent }),
            );
            return;
        }
        if k.produce_inflight || env.producers_give_up {
            return;
        }
        if k.batch.is_none() {
            if env.liveness {
                return;
            }
            let n = 1 + env.prng.below(3) as usize;
            let recs = (0..n)
                .map(|_| {
                    let key = format!("k{}", env.prng.below(k.keys)).into_bytes();
                    let tombstone = env.prng.ratio(k.tombstones_per_10, 10);
                    k.next_value += 1;
                    (
                        key,
                        (!tombstone).then(|| format!("v{}", k.next_value).into_bytes()),
                    )
                })
                .collect();
            k.timestamps_ms = super::producer::record_timestamps(env, n);
            k.batch = Some((recs, false));
        }
        let (recs, _) = k.batch.as_ref().expect("made above");
        let recs: Vec<Rec> = recs
            .iter()
            .zip(&k.timestamps_ms)
            .map(|((key, value), ts)| Rec {
                key: Some(Bytes::from(key.clone())),
                value: value.clone().map(Bytes::from),
                timestamp_ms: *ts,
                headers: Vec::new(),
            })
            .collect();
        k.produce_inflight = true;
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(2_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(name(COMPACTED)))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(testkit::batch(&recs, None, Compression::None))),
                ])]);
        self.send(
            env,
            ApiKey::Produce,
            9,
            RequestKind::Produce(req),
            Some(Pending::Produce { batch: 0 }),
        );
    }

    pub(super) fn keyed_produced(&mut self, env: &mut Env, r: ProduceResponse) {
        let Role::Keyed(k) = &mut self.role else {
            unreachable!()
        };
        let (code, base) = r
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .map_or((UNKNOWN_TOPIC_OR_PARTITION, -1), |p| {
                (p.error_code, p.base_offset)
            });
        if code == NONE {
            k.produce_inflight = false;
            let Some((recs, _)) = k.batch.take() else {
                return;
            };
            let acked = recs
                .into_iter()
                .enumerate()
                .map(|(i, (key, value))| (base + i as i64, key, value));
            compacted(env).acked.extend(acked);
            k.next_at = env.now + k.gap;
        } else if REFUSED.contains(&code) {
            k.produce_inflight = false;
            k.batch = None;
            k.next_at = env.now + k.gap;
        } else {
            // Timeouts and storage errors: it may have been written; retried.
            k.produce_unknown(env);
            k.next_at = env.now + 100 * MS;
        }
    }

    pub(super) fn keyed_fetched(&mut self, env: &mut Env, r: FetchResponse) {
        let Role::Keyed(k) = &mut self.role else {
            unreachable!()
        };
        k.fetch_inflight = false;
        let Some(p) = r.responses.first().and_then(|t| t.partitions.first()) else {
            k.next_at = env.now + 100 * MS;
            return;
        };
        if p.error_code != NONE {
            k.next_at = env.now + 100 * MS;
            return;
        }
        let bytes = p.records.clone().unwrap_or_default();
        let (recs, next) = decode_keyed(&bytes, k.pos);
        k.read.extend(recs);
        if let Some(next) = next {
            k.pos = next;
        }
        if k.pos >= p.high_watermark {
            k.finished = true;
            compacted(env).read = Some(std::mem::take(&mut k.read));
        } else if next.is_none() {
            // Nothing whole came back below the high watermark: ask again a little later.
            k.next_at = env.now + 100 * MS;
        }
    }
}
