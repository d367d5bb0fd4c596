//! The producer: records in, batches out, delivery reports back.
//!
//! ## How a record travels
//! 1. [`Client::send`] queues it until its topic's partition count is known (metadata), then the
//!    partitioner ([`crate::partitioner`]) picks its partition.
//! 2. It joins the partition's *open batch*. A batch is closed when the next record would take
//!    it past `batch_bytes_max`, when it has waited `linger.ms`, or on [`Client::flush`]; closed
//!    batches queue per partition in the order they were closed.
//! 3. Ready batches of the partitions one broker leads travel together in one Produce request,
//!    one batch per partition (Kafka's rule), up to `max.in.flight.requests.per.connection`
//!    requests in flight per connection.
//! 4. The answer reports each batch's base offset; record `i` of the batch has offset
//!    `base + i`. A retriable error puts the batch back at the head of its partition's queue.
//!
//! ## Idempotence (KIP-98)
//! With idempotence the producer first asks for a producer id (InitProducerId). Each batch gets
//! the partition's next *sequence number* when it is first sent, and keeps it through every
//! retry: the broker remembers the last five batches of each producer per partition and
//! acknowledges a batch it already wrote (DUPLICATE_SEQUENCE_NUMBER, or the same offset) instead
//! of writing it twice, and refuses one that skips a sequence (OUT_OF_ORDER_SEQUENCE_NUMBER).
//! Hence at most five batches in flight per partition, and the retry rule kept here: when a
//! batch of a partition fails retriably, the partition stops sending until every batch in
//! flight has answered (the later ones fail too, out of order), then resends them all in
//! sequence order. A batch that fails for good after later sequences were handed out leaves a
//! gap the broker would refuse forever, so the producer takes a fresh producer id once nothing
//! is in flight and numbers the unsent batches again from zero (the Java client bumps the epoch
//! instead, KIP-360).
//!
//! ## Invariants (checked after every step)
//! * every record sent and not yet reported is in exactly one place: waiting for metadata, in
//!   an open batch, queued, or in flight;
//! * a partition's batches in flight carry consecutive sequence numbers, in order, at most
//!   five of them, all sent to one broker;
//! * a partition waiting to retry has a batch in flight marked for retry.

use crate::client::{sb, Client};
use crate::config::Acks;
use crate::conn::Purpose;
use crate::io::{ClientError, Delivery, NodeId, Output, ProducerRecord, RecordId};
use crate::metadata::TopicPartition;
use crate::partitioner::partition_for_key;
use bytes::Bytes;
use gregor_core::batch::{encode as encode_batch, Rec};
use gregor_core::{Duration, Instant};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, VecDeque};

/// The broker remembers this many batches per producer and partition (KIP-98), so no more may
/// be in flight on one partition.
pub const IDEMPOTENT_IN_FLIGHT_MAX: usize = 5;

/// Bytes a record costs in a batch beyond its key, value and headers (lengths, deltas,
/// attributes as varints): an upper bound used to size batches.
const RECORD_OVERHEAD_BYTES: usize = 24;

#[derive(Clone, Debug)]
pub(crate) struct Batch {
    id: u64,
    records: Vec<(RecordId, Rec)>,
    bytes: usize,
    created: Instant,
    /// The encoded batch and its base sequence (−1 without idempotence), fixed when it is
    /// first sent so every retry sends the very same bytes.
    encoded: Option<(Bytes, i32)>,
    /// The broker it is in flight to.
    node: Option<NodeId>,
    /// Failed retriably; goes back to the queue once the partition's in-flight batches settle.
    retry: bool,
    attempts: u32,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct PartState {
    open: Option<Batch>,
    queued: VecDeque<Batch>,
    in_flight: VecDeque<Batch>,
    next_sequence: i32,
    retry_pending: bool,
    backoff_until: Instant,
}

#[derive(Clone, Debug, Default)]
pub struct Producer {
    next_record_id: u64,
    next_batch_id: u64,
    /// Records sent by the application and not yet reported.
    outstanding: usize,
    /// Records waiting for their topic's partition count.
    unrouted: VecDeque<(RecordId, ProducerRecord, Instant)>,
    parts: BTreeMap<TopicPartition, PartState>,
    /// Each topic's sticky partition for unkeyed records (KIP-480).
    sticky: BTreeMap<String, i32>,
    pid: Option<(i64, i16)>,
    pub(crate) pid_in_flight: bool,
    pid_backoff_until: Instant,
    /// A batch failed for good after later sequences were given out: take a new producer id
    /// once nothing is in flight.
    reset_pid: bool,
}

/// The sequence number `increment` records after `sequence`: Kafka's sequences wrap to 0 after
/// `i32::MAX` (`DefaultRecordBatch.incrementSequence`).
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    assert!(sequence >= 0 && increment >= 0);
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

fn record_bytes(r: &ProducerRecord) -> usize {
    RECORD_OVERHEAD_BYTES
        + r.key.as_ref().map_or(0, |k| k.len())
        + r.value.as_ref().map_or(0, |v| v.len())
        + r.headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 8)
            .sum::<usize>()
}

/// Errors after which the leader has to be looked up again.
fn leader_moved(code: i16) -> bool {
    [
        ResponseError::NotLeaderOrFollower,
        ResponseError::UnknownTopicOrPartition,
        ResponseError::LeaderNotAvailable,
        ResponseError::FencedLeaderEpoch,
        ResponseError::KafkaStorageError,
    ]
    .iter()
    .any(|e| e.code() == code)
}

impl Client {
    /// Queue a record for sending; its delivery report will carry the returned id. A record that
    /// can never be sent (larger than a request may be) is reported failed at once.
    pub fn send(&mut self, now: Instant, record: ProducerRecord) -> RecordId {
        self.advance(now);
        let p = &mut self.producer;
        let id = RecordId(p.next_record_id);
        p.next_record_id += 1;
        p.outstanding += 1;
        let size = record_bytes(&record);
        if record.topic.is_empty() || size > self.config.request_bytes_max {
            let why = if record.topic.is_empty() {
                "a record needs a topic".to_string()
            } else {
                format!(
                    "the record is {size} bytes, more than request_bytes_max ({})",
                    self.config.request_bytes_max
                )
            };
            self.report(id, &record.topic, -1, Err(ClientError::Invalid(why)));
        } else {
            self.want_topic(&record.topic);
            self.producer.unrouted.push_back((id, record, now));
        }
        self.step();
        id
    }

    /// Close every open batch so it is sent without waiting for `linger.ms` (the Java
    /// producer's `flush`, minus the blocking: the caller waits for the delivery reports).
    pub fn flush(&mut self, now: Instant) {
        self.advance(now);
        let keys: Vec<TopicPartition> = self.producer.parts.keys().cloned().collect();
        for tp in keys {
            self.seal(&tp);
        }
        self.step();
    }

    /// Records sent and not yet reported delivered or failed.
    pub fn unreported(&self) -> usize {
        self.producer.outstanding
    }

    fn report(
        &mut self,
        id: RecordId,
        topic: &str,
        partition: i32,
        result: Result<i64, ClientError>,
    ) {
        assert!(self.producer.outstanding > 0, "a report for a record sent");
        self.producer.outstanding -= 1;
        self.outputs.push_back(Output::Delivered(Delivery {
            id,
            topic: topic.to_string(),
            partition,
            result,
        }));
    }

    fn report_batch(&mut self, tp: &TopicPartition, b: Batch, result: Result<i64, ClientError>) {
        for (i, (id, _)) in b.records.into_iter().enumerate() {
            let r = match &result {
                Ok(base) if *base >= 0 => Ok(base + i as i64),
                Ok(_) => Ok(-1),
                Err(e) => Err(e.clone()),
            };
            self.report(id, &tp.0, tp.1, r);
        }
    }

    /// Close `tp`'s open batch, queueing it to be sent.
    fn seal(&mut self, tp: &TopicPartition) {
        let part = self.producer.parts.get_mut(tp).expect("a known partition");
        if let Some(b) = part.open.take() {
            assert!(!b.records.is_empty(), "an open batch holds records");
            part.queued.push_back(b);
            // KIP-480: a closed batch moves unkeyed records on to another partition.
            if self.producer.sticky.get(&tp.0) == Some(&tp.1) {
                self.producer.sticky.remove(&tp.0);
            }
        }
    }

    fn sticky_partition(&mut self, topic: &str, count: i32) -> i32 {
        if let Some(&p) = self.producer.sticky.get(topic) {
            if p < count {
                return p;
            }
        }
        // Prefer partitions with a leader, as the Java client's built-in partitioner does.
        let with_leader: Vec<i32> = (0..count)
            .filter(|&p| self.meta.leader(&(topic.to_string(), p)).is_some())
            .collect();
        let choices: Vec<i32> = if with_leader.is_empty() {
            (0..count).collect()
        } else {
            with_leader
        };
        let p = choices[self.prng.below(choices.len() as u64) as usize];
        self.producer.sticky.insert(topic.to_string(), p);
        p
    }

    /// Give partitions to the records whose topic is now known.
    fn route(&mut self) {
        // Records wait here while their topic has no metadata; every step would otherwise move
        // each of them out and back (the simulator's producers, waiting for a topic being
        // created, spent most of their time doing that).
        let meta = &self.meta;
        if self
            .producer
            .unrouted
            .iter()
            .all(|(_, rec, _)| meta.partitions(&rec.topic).is_none())
        {
            return;
        }
        let mut waiting = VecDeque::new();
        while let Some((id, rec, at)) = self.producer.unrouted.pop_front() {
            let Some(count) = self.meta.partitions(&rec.topic) else {
                waiting.push_back((id, rec, at));
                continue;
            };
            let partition = match (rec.partition, &rec.key) {
                (Some(p), _) if (0..count).contains(&p) => p,
                (Some(p), _) => {
                    self.report(
                        id,
                        &rec.topic,
                        p,
                        Err(ClientError::broker(
                            ResponseError::UnknownTopicOrPartition.code(),
                            format!("topic {} has {count} partitions, not {}", rec.topic, p + 1),
                        )),
                    );
                    continue;
                }
                (None, Some(key)) => partition_for_key(key, count),
                (None, None) => self.sticky_partition(&rec.topic, count),
            };
            self.append(id, rec, at, partition);
        }
        self.producer.unrouted = waiting;
    }

    fn append(&mut self, id: RecordId, rec: ProducerRecord, at: Instant, partition: i32) {
        let tp = (rec.topic.clone(), partition);
        let size = record_bytes(&rec);
        let max = self.config.batch_bytes_max;
        let full = {
            let part = self.producer.parts.entry(tp.clone()).or_default();
            part.open.as_ref().is_some_and(|b| b.bytes + size > max)
        };
        if full {
            self.seal(&tp);
        }
        let keyless = rec.key.is_none() && rec.partition.is_none();
        let now = self.now;
        let p = &mut self.producer;
        let part = p.parts.get_mut(&tp).expect("entry made above");
        let b = part.open.get_or_insert_with(|| {
            p.next_batch_id += 1;
            Batch {
                id: p.next_batch_id,
                records: Vec::new(),
                bytes: 0,
                created: at,
                encoded: None,
                node: None,
                retry: false,
                attempts: 0,
            }
        });
        b.bytes += size;
        b.records.push((
            id,
            Rec {
                key: rec.key,
                value: rec.value,
                timestamp_ms: rec.timestamp_ms.unwrap_or(now.unix_ms()),
                headers: rec.headers,
            },
        ));
        if keyless && b.bytes >= max {
            self.seal(&tp);
        }
    }

    pub(crate) fn step_producer(&mut self) {
        self.route();
        self.expire_batches();
        let now = self.now;
        let linger = Duration::from_ms(self.config.linger_ms);
        let lingered: Vec<TopicPartition> = self
            .producer
            .parts
            .iter()
            .filter(|(_, s)| s.open.as_ref().is_some_and(|b| now >= b.created + linger))
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in lingered {
            self.seal(&tp);
        }
        if self.config.idempotent() && !self.step_producer_id() {
            return;
        }
        self.drain_batches();
    }

    fn in_flight_batches(&self) -> usize {
        self.producer
            .parts
            .values()
            .map(|s| s.in_flight.len())
            .sum()
    }

    /// Get (or renew) the producer id; true once there is one to send with.
    fn step_producer_id(&mut self) -> bool {
        if self.producer.reset_pid && self.in_flight_batches() == 0 {
            // Nothing in flight: every batch never sent can be numbered again under a new id.
            // A batch waiting to be *retried* was sent before and its outcome is unknown: the
            // broker may hold it under the old id, where it would recognise the retry, but not
            // under a new one, where the retry would be a second copy. So it is not sent again:
            // it fails, as an unknown outcome (the Java client lets such a batch expire rather
            // than renumber it; simulator seed `--cluster 1 --seed 1` found the duplicates).
            self.producer.reset_pid = false;
            self.producer.pid = None;
            let mut unknown = Vec::new();
            for (tp, s) in self.producer.parts.iter_mut() {
                s.next_sequence = 0;
                let (sent, fresh): (VecDeque<Batch>, VecDeque<Batch>) =
                    std::mem::take(&mut s.queued)
                        .into_iter()
                        .partition(|b| b.encoded.as_ref().is_some_and(|(_, seq)| *seq >= 0));
                s.queued = fresh;
                for b in &mut s.queued {
                    b.encoded = None;
                }
                assert!(s.queued.iter().all(|b| b.encoded.is_none()));
                unknown.extend(sent.into_iter().map(|b| (tp.clone(), b)));
            }
            for (tp, b) in unknown {
                let why = format!(
                    "{} record(s) for {}-{}: sent before the producer id was renewed, outcome \
                     unknown; not resent under the new id, which could write them twice",
                    b.records.len(),
                    tp.0,
                    tp.1
                );
                self.report_batch(&tp, b, Err(ClientError::Timeout(why)));
            }
        }
        if self.producer.pid.is_some() {
            return !self.producer.reset_pid;
        }
        // Asked for as soon as there is anything to send, so lingering overlaps with it.
        let pending = !self.producer.unrouted.is_empty()
            || self
                .producer
                .parts
                .values()
                .any(|s| s.open.is_some() || !s.queued.is_empty());
        if self.producer.pid_in_flight || !pending || self.now < self.producer.pid_backoff_until {
            return false;
        }
        let Some(node) = self.any_ready_node() else {
            return false;
        };
        let Some(version) = self.conns[&node].version(ApiKey::InitProducerId) else {
            let e = ClientError::Invalid(format!(
                "node {} does not speak InitProducerId: idempotence needs a broker of Kafka 0.11 or later",
                node.0
            ));
            self.fail_all_queued(e);
            return false;
        };
        // No transactional id: the broker hands out a fresh producer id (KIP-98).
        let body = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(i32::MAX)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        self.producer.pid_in_flight = true;
        self.send_request(
            node,
            ApiKey::InitProducerId,
            version,
            RequestKind::InitProducerId(body),
            Purpose::InitProducerId,
            true,
        );
        false
    }

    pub(crate) fn on_init_producer_id(&mut self, r: InitProducerIdResponse) {
        self.producer.pid_in_flight = false;
        if r.error_code == 0 && r.producer_id.0 >= 0 {
            self.producer.pid = Some((r.producer_id.0, r.producer_epoch));
            self.outputs.push_back(Output::Log {
                message: format!("producer id {} epoch {}", r.producer_id.0, r.producer_epoch),
            });
            return;
        }
        self.producer.pid_backoff_until =
            self.now + Duration::from_ms(self.config.retry_backoff_ms);
        let retriable =
            ResponseError::try_from_code(r.error_code).is_some_and(|e| e.is_retriable());
        if !retriable {
            let e = ClientError::broker(r.error_code, "InitProducerId refused");
            self.fail_all_queued(e);
        }
    }

    fn fail_all_queued(&mut self, e: ClientError) {
        let keys: Vec<TopicPartition> = self.producer.parts.keys().cloned().collect();
        for tp in keys {
            self.seal(&tp);
            let queued = std::mem::take(&mut self.producer.parts.get_mut(&tp).unwrap().queued);
            for b in queued {
                self.report_batch(&tp, b, Err(e.clone()));
            }
        }
    }

    /// Fail what has waited longer than `delivery.timeout.ms` and is not in flight.
    fn expire_batches(&mut self) {
        let timeout = Duration::from_ms(self.config.delivery_timeout_ms);
        let now = self.now;
        let late = |at: &Instant| now >= *at + timeout;
        // Only rebuilt when something expired: this runs after every input.
        if self.producer.unrouted.iter().any(|(_, _, at)| late(at)) {
            let (late, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.producer.unrouted)
                .into_iter()
                .partition(|(_, _, at)| late(at));
            self.producer.unrouted = keep.into();
            for (id, rec, _) in late {
                let why = match self.meta.topic_errors.get(&rec.topic) {
                    Some(&code) => format!(
                        "topic {} unavailable: {}",
                        rec.topic,
                        crate::io::error_name(code)
                    ),
                    None => format!("no metadata for topic {}", rec.topic),
                };
                self.report(id, &rec.topic, -1, Err(ClientError::Timeout(why)));
            }
        }
        let keys: Vec<TopicPartition> = self.producer.parts.keys().cloned().collect();
        for tp in keys {
            let part = self.producer.parts.get_mut(&tp).unwrap();
            let mut expired = Vec::new();
            if part
                .open
                .as_ref()
                .is_some_and(|b| now >= b.created + timeout)
            {
                expired.push(part.open.take().unwrap());
            }
            while part
                .queued
                .front()
                .is_some_and(|b| now >= b.created + timeout)
            {
                expired.push(part.queued.pop_front().unwrap());
            }
            for b in expired {
                if b.encoded.as_ref().is_some_and(|(_, seq)| *seq >= 0) {
                    // Its sequence numbers will never reach the broker: a gap.
                    self.producer.reset_pid = true;
                }
                let why = format!(
                    "{} record(s) for {}-{} not delivered within {} ms",
                    b.records.len(),
                    tp.0,
                    tp.1,
                    self.config.delivery_timeout_ms
                );
                self.report_batch(&tp, b, Err(ClientError::Timeout(why)));
            }
        }
    }

    /// Send the batches that are ready: rounds of one Produce request per leader, each with
    /// one batch per partition, until the in-flight limits or the queues stop them.
    fn drain_batches(&mut self) {
        while self.drain_round() {}
    }

    /// One round of [`Client::drain_batches`]; whether it sent anything.
    fn drain_round(&mut self) -> bool {
        let mut sent = false;
        let now = self.now;
        let idempotent = self.config.idempotent();
        let mut by_node: BTreeMap<NodeId, Vec<TopicPartition>> = BTreeMap::new();
        for (tp, s) in &self.producer.parts {
            if s.queued.is_empty() || s.retry_pending || now < s.backoff_until {
                continue;
            }
            let Some(leader) = self.meta.leader(tp) else {
                continue;
            };
            let node = NodeId(leader);
            // Batches in flight to an old leader finish there first: ordering across two
            // connections is not guaranteed.
            if s.in_flight.iter().any(|b| b.node != Some(node))
                || (idempotent && s.in_flight.len() >= IDEMPOTENT_IN_FLIGHT_MAX)
            {
                continue;
            }
            by_node.entry(node).or_default().push(tp.clone());
        }
        for (node, tps) in by_node {
            if !self.ready(node) {
                continue;
            }
            let conn = &self.conns[&node];
            if conn.produce_in_flight() >= self.config.in_flight_requests_per_connection_max {
                continue;
            }
            let Some(version) = conn.version(ApiKey::Produce) else {
                continue;
            };
            self.send_produce(node, version, tps);
            sent = true;
        }
        sent
    }

    fn send_produce(&mut self, node: NodeId, version: i16, tps: Vec<TopicPartition>) {
        let pid = self.producer.pid;
        let idempotent = self.config.idempotent();
        let compression = self.config.compression;
        let mut request_bytes = 0;
        let mut sent: Vec<(TopicPartition, u64)> = Vec::new();
        let mut topics: BTreeMap<String, Vec<produce_request::PartitionProduceData>> =
            BTreeMap::new();
        for tp in tps {
            let part = self.producer.parts.get_mut(&tp).unwrap();
            let mut b = part
                .queued
                .pop_front()
                .expect("a ready partition has a batch");
            if b.encoded.is_none() {
                let seq = if idempotent { part.next_sequence } else { -1 };
                let recs: Vec<Rec> = b.records.iter().map(|(_, r)| r.clone()).collect();
                let producer = pid
                    .filter(|_| idempotent)
                    .map(|(id, epoch)| (id, epoch, seq));
                let bytes = match encode_batch(&recs, producer, compression) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        // The codec failed on these records: they can never be sent, so they
                        // fail now and the partition's sequence is left as it was.
                        self.report_batch(&tp, b, Err(ClientError::Invalid(e.to_string())));
                        continue;
                    }
                };
                if idempotent {
                    part.next_sequence = increment_sequence(seq, recs.len() as i32);
                }
                b.encoded = Some((bytes, seq));
            }
            let (bytes, _) = b.encoded.clone().unwrap();
            if !sent.is_empty() && request_bytes + bytes.len() > self.config.request_bytes_max {
                part.queued.push_front(b);
                continue;
            }
            request_bytes += bytes.len();
            b.node = Some(node);
            b.attempts += 1;
            sent.push((tp.clone(), b.id));
            part.in_flight.push_back(b);
            topics.entry(tp.0.clone()).or_default().push(
                produce_request::PartitionProduceData::default()
                    .with_index(tp.1)
                    .with_records(Some(bytes)),
            );
        }
        assert!(!sent.is_empty(), "a produce request carries a batch");
        let body = ProduceRequest::default()
            .with_transactional_id(None)
            .with_acks(self.config.acks.wire())
            .with_timeout_ms(self.config.request_timeout_ms.min(i32::MAX as u64) as i32)
            .with_topic_data(
                topics
                    .into_iter()
                    .map(|(t, parts)| {
                        produce_request::TopicProduceData::default()
                            .with_name(TopicName(sb(&t)))
                            .with_partition_data(parts)
                    })
                    .collect(),
            );
        let acks0 = self.config.acks == Acks::None;
        self.send_request(
            node,
            ApiKey::Produce,
            version,
            RequestKind::Produce(body),
            Purpose::Produce(sent.clone()),
            !acks0,
        );
        if acks0 {
            // No answer will come: written on the socket is all acks=0 promises.
            for (tp, id) in sent {
                let b = self.take_in_flight(&tp, id).expect("just sent");
                self.report_batch(&tp, b, Ok(-1));
            }
        }
    }

    fn take_in_flight(&mut self, tp: &TopicPartition, id: u64) -> Option<Batch> {
        let part = self.producer.parts.get_mut(tp)?;
        let i = part.in_flight.iter().position(|b| b.id == id)?;
        part.in_flight.remove(i)
    }

    pub(crate) fn on_produce(
        &mut self,
        node: NodeId,
        batches: Vec<(TopicPartition, u64)>,
        r: ProduceResponse,
    ) {
        let mut answers: BTreeMap<TopicPartition, (i16, i64, String)> = BTreeMap::new();
        for t in &r.responses {
            for p in &t.partition_responses {
                answers.insert(
                    (t.name.to_string(), p.index),
                    (
                        p.error_code,
                        p.base_offset,
                        p.error_message.as_deref().unwrap_or("").to_string(),
                    ),
                );
            }
        }
        for (tp, id) in batches {
            let Some(&(code, base, ref msg)) = answers.get(&tp) else {
                self.outputs.push_back(Output::Log {
                    message: format!("node {} did not answer for {}-{}", node.0, tp.0, tp.1),
                });
                self.mark_retry(&tp, id);
                continue;
            };
            self.batch_answered(&tp, id, code, base, msg.clone());
        }
    }

    fn batch_answered(&mut self, tp: &TopicPartition, id: u64, code: i16, base: i64, msg: String) {
        let idempotent = self.config.idempotent();
        if code == 0 || code == ResponseError::DuplicateSequenceNumber.code() {
            // A duplicate was written before: the broker kept it once, which is the point.
            let b = self
                .take_in_flight(tp, id)
                .expect("answered batch is in flight");
            let base = if code == 0 { base } else { -1 };
            self.report_batch(tp, b, Ok(base));
            return self.settle(tp);
        }
        let part = &self.producer.parts[tp];
        let out_of_order = code == ResponseError::OutOfOrderSequenceNumber.code();
        let retriable = ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
            || (out_of_order && (part.retry_pending || self.producer.reset_pid));
        if retriable {
            if leader_moved(code) {
                self.meta.forget_leader(tp);
            }
            self.outputs.push_back(Output::Log {
                message: format!(
                    "retrying a batch of {}-{}: {}",
                    tp.0,
                    tp.1,
                    crate::io::error_name(code)
                ),
            });
            self.mark_retry(tp, id);
            return;
        }
        let b = self
            .take_in_flight(tp, id)
            .expect("answered batch is in flight");
        if idempotent && b.encoded.as_ref().is_some_and(|(_, s)| *s >= 0) {
            self.producer.reset_pid = true;
        }
        let e = ClientError::broker(
            code,
            if msg.is_empty() {
                format!("producing to {}-{}", tp.0, tp.1)
            } else {
                msg
            },
        );
        self.report_batch(tp, b, Err(e));
        self.settle(tp);
    }

    fn mark_retry(&mut self, tp: &TopicPartition, id: u64) {
        let part = self.producer.parts.get_mut(tp).expect("a known partition");
        let b = part
            .in_flight
            .iter_mut()
            .find(|b| b.id == id)
            .expect("a batch in flight");
        b.retry = true;
        part.retry_pending = true;
        self.settle(tp);
    }

    /// When every batch still in flight on a partition waiting to retry has failed, put them
    /// back at the head of its queue, in sequence order, after a backoff.
    fn settle(&mut self, tp: &TopicPartition) {
        let backoff = self.now + Duration::from_ms(self.config.retry_backoff_ms);
        let part = self.producer.parts.get_mut(tp).expect("a known partition");
        if !part.retry_pending || part.in_flight.iter().any(|b| !b.retry) {
            return;
        }
        for mut b in std::mem::take(&mut part.in_flight).into_iter().rev() {
            b.retry = false;
            b.node = None;
            part.queued.push_front(b);
        }
        part.retry_pending = false;
        part.backoff_until = backoff;
    }

    pub(crate) fn produce_lost(&mut self, batches: Vec<(TopicPartition, u64)>, _reason: &str) {
        for (tp, id) in batches {
            self.mark_retry(&tp, id);
        }
    }

    pub(crate) fn producer_deadline(&self) -> Option<Instant> {
        let linger = Duration::from_ms(self.config.linger_ms);
        let timeout = Duration::from_ms(self.config.delivery_timeout_ms);
        let mut t = self
            .producer
            .unrouted
            .front()
            .map(|(_, _, at)| *at + timeout);
        let mut at = |x: Instant| t = Some(t.map_or(x, |t: Instant| t.min(x)));
        for s in self.producer.parts.values() {
            if let Some(b) = &s.open {
                at(b.created + linger);
            }
            if let Some(b) = s.queued.front() {
                at(b.created + timeout);
                if s.backoff_until > self.now {
                    at(s.backoff_until);
                }
            }
        }
        if self.producer.pid.is_none() && self.producer.pid_backoff_until > self.now {
            at(self.producer.pid_backoff_until);
        }
        t
    }

    pub(crate) fn producer_invariants(&self) {
        let p = &self.producer;
        let mut held = p.unrouted.len();
        for (tp, s) in &p.parts {
            for b in s.open.iter().chain(&s.queued).chain(&s.in_flight) {
                assert!(!b.records.is_empty(), "{tp:?}: an empty batch");
                held += b.records.len();
            }
            assert!(
                s.open.as_ref().is_none_or(|b| b.encoded.is_none()),
                "an open batch is not yet encoded"
            );
            assert!(
                s.in_flight
                    .iter()
                    .all(|b| b.encoded.is_some() && b.node.is_some()),
                "a batch in flight was encoded and sent to a node"
            );
            if let Some(n) = s.in_flight.front().and_then(|b| b.node) {
                assert!(
                    s.in_flight.iter().all(|b| b.node == Some(n)),
                    "{tp:?}: batches in flight to two brokers"
                );
            }
            assert!(
                s.retry_pending == s.in_flight.iter().any(|b| b.retry),
                "{tp:?}: waiting to retry iff a batch in flight is marked"
            );
            if self.config.idempotent() {
                assert!(s.in_flight.len() <= IDEMPOTENT_IN_FLIGHT_MAX);
                let seqs: Vec<(i32, i32)> = s
                    .in_flight
                    .iter()
                    .map(|b| (b.encoded.as_ref().unwrap().1, b.records.len() as i32))
                    .collect();
                // Each starts where the one before it ended, or later: a batch between them
                // may have been acknowledged already (a broker that answered the earlier ones
                // REQUEST_TIMED_OUT while their fsync was slow, and a later one with success,
                // as the cluster simulator's seed 305 saw), and its sequences are used up.
                for w in seqs.windows(2) {
                    let end = increment_sequence(w[0].0, w[0].1);
                    let gap = (i64::from(w[1].0) - i64::from(end)).rem_euclid(1 << 31);
                    assert!(
                        gap < 1 << 30,
                        "{tp:?}: sequences in flight ascend: {seqs:?}"
                    );
                }
            }
        }
        assert_eq!(
            held, p.outstanding,
            "every unreported record is in exactly one place"
        );
    }
}
