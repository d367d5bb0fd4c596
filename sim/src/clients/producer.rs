//! The producer workload: plain producers (acks 0, 1 or all, with or without retries) and the
//! idempotent producer (KIP-98) with up to five batches in flight on one connection, the default
//! of librdkafka and of the Java client (`enable.idempotence=true`,
//! `max.in.flight.requests.per.connection=5`).
//!
//! With several batches in flight the broker's sequence handling sees everything a real client
//! makes it see: after a connection reset or a request timeout every in-flight batch is retried,
//! in order, so the broker gets retries of batches it already appended (answered from the five
//! batches it remembers, with the original offset: the duplicate check) and batches whose
//! predecessor it never got (OUT_OF_ORDER_SEQUENCE_NUMBER). Like the Java client's `Sender`:
//! an OUT_OF_ORDER answer for a batch that has an earlier batch of the same partition still
//! unresolved is retried after that one; for the oldest batch of its partition it is fatal for
//! the producer id (the broker lost our earlier batches, a policy-permitted power loss): the
//! producer lets what is in flight finish, then starts over with a new producer id.

use super::{name, Client, Env, Pending, Role, Us, MS, TOPIC};
use crate::history::{Event, Outcome, Part, Value};
use gregor_core::error::*;
use gregor_core::kafka_protocol::messages::*;
use gregor_core::prng::Prng;
use std::collections::BTreeMap;

/// The broker's limit on remembered batches per producer, and so the most a client may have in
/// flight without losing exactly-once (Kafka's `max.in.flight.requests.per.connection` ≤ 5).
pub const IN_FLIGHT_MAX: usize = gregor_core::producer::BATCHES_REMEMBERED;

/// UNKNOWN_PRODUCER_ID: the broker has no state for the producer id (its batches were cut).
const UNKNOWN_PRODUCER_ID: i16 = 59;

pub struct Producer {
    pub acks: i16,
    pub idempotent: bool,
    pub retries: bool,
    /// Batches that may be in flight at once (1 for a plain producer, whose retries would
    /// otherwise reorder).
    pub in_flight_max: usize,
    gap: Us,
    pid: i64,
    epoch: i16,
    seqs: BTreeMap<Part, i32>,
    /// Unresolved batches in the order they were made (per partition: sequence order).
    batches: Vec<Batch>,
    next_batch: u64,
    next_at: Us,
    /// A fatal OUT_OF_ORDER: send nothing new, retry nothing; when the last in-flight batch is
    /// resolved, get a new producer id.
    draining: bool,
    init_inflight: bool,
    stopped: bool,
}

struct Batch {
    id: u64,
    part: Part,
    values: Vec<Value>,
    seq: i32,
    /// Each record's timestamp (CreateTime), fixed when the batch is made: a retry carries the
    /// original ones.
    timestamps_ms: Vec<i64>,
    attempt: u32,
    inflight: bool,
    retry_at: Us,
}

impl Producer {
    pub fn new(prng: &mut Prng, gap_ms: u64) -> Producer {
        let idempotent = prng.ratio(1, 2);
        let acks = if idempotent {
            -1
        } else {
            [0, 1, -1][prng.below(3) as usize]
        };
        let retries = idempotent || prng.ratio(1, 2);
        let in_flight_max = if idempotent {
            1 + prng.below(IN_FLIGHT_MAX as u64) as usize
        } else {
            1
        };
        Producer {
            acks,
            idempotent,
            retries,
            in_flight_max,
            gap: gap_ms * MS,
            pid: -1,
            epoch: -1,
            seqs: BTreeMap::new(),
            batches: Vec::new(),
            next_batch: 0,
            next_at: 0,
            draining: false,
            init_inflight: false,
            stopped: false,
        }
    }

    /// When the producer next wants its timer.
    pub fn next_wake(&self, consider: &mut dyn FnMut(Us)) {
        if self.stopped {
            return;
        }
        consider(self.next_at);
        for b in self.batches.iter().filter(|b| !b.inflight) {
            consider(b.retry_at);
        }
    }

    pub fn init_done(&mut self, env: &mut Env, r: InitProducerIdResponse) {
        self.init_inflight = false;
        if r.error_code == NONE {
            self.pid = r.producer_id.0;
            self.epoch = r.producer_epoch;
            self.seqs.clear();
        } else {
            self.next_at = env.now + 100 * MS;
        }
    }

    pub fn init_lost(&mut self, env: &mut Env) {
        self.init_inflight = false;
        self.next_at = env.now + 100 * MS;
    }

    /// Is an earlier batch of the same partition still unresolved?
    fn has_predecessor(&self, i: usize) -> bool {
        let part = self.batches[i].part;
        self.batches[..i].iter().any(|b| b.part == part)
    }

    fn find(&self, batch: u64) -> Option<usize> {
        self.batches.iter().position(|b| b.id == batch)
    }

    /// Resolve batch `i` as finished (acknowledged, refused, or abandoned).
    fn resolve(&mut self, env: &mut Env, i: usize) {
        self.batches.remove(i);
        if self.in_flight_max == 1 {
            self.next_at = env.now + self.gap;
        }
        if self.draining && self.batches.iter().all(|b| !b.inflight) {
            // Everything the old producer id had in flight is settled: what remains has an
            // unknown outcome already recorded, and is given up with the id.
            self.batches.clear();
            self.draining = false;
            self.pid = -1;
            self.next_at = env.now + self.gap;
        }
    }

    fn retry_later(&mut self, env: &mut Env, i: usize, backoff: Us) {
        if self.retries && !env.producers_give_up && !self.draining {
            let b = &mut self.batches[i];
            b.inflight = false;
            b.retry_at = env.now + backoff;
        } else {
            self.resolve(env, i);
        }
    }
}

impl Client {
    pub(super) fn producer_kick(&mut self, env: &mut Env) {
        let id = self.id;
        let Role::Producer(p) = &mut self.role else {
            unreachable!()
        };
        if p.stopped {
            return;
        }
        if env.producers_give_up {
            // Abandon what is not in flight; stop when nothing is.
            p.batches.retain(|b| b.inflight);
            if p.batches.is_empty() {
                p.stopped = true;
                return;
            }
        }
        if p.idempotent && p.pid < 0 {
            if !p.init_inflight && env.now >= p.next_at && p.batches.is_empty() {
                p.init_inflight = true;
                let req = InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000);
                self.send(
                    env,
                    ApiKey::InitProducerId,
                    4,
                    RequestKind::InitProducerId(req),
                    Some(Pending::InitProducerId),
                );
            }
            return;
        }
        // Retries first, in the order the batches were made: per partition that is sequence
        // order, which is the order the broker must see them in.
        let mut to_send: Vec<usize> = Vec::new();
        if !p.draining {
            // A batch is retried only after every earlier batch of its partition was (re)sent:
            // it must not overtake one still waiting for its backoff.
            let mut blocked: Vec<Part> = Vec::new();
            for (i, b) in p.batches.iter().enumerate() {
                if b.inflight {
                    continue;
                }
                if env.now >= b.retry_at && !blocked.contains(&b.part) {
                    to_send.push(i);
                } else {
                    blocked.push(b.part);
                }
            }
        }
        // Then a new batch, if there is room in the window and nothing waits for a retry: the
        // broker remembers only the last five batches, so a batch must be retried before more
        // than four later ones can be appended behind it (the Java client mutes the partition
        // and puts the retry first).
        let room = p.batches.len() < p.in_flight_max && p.batches.iter().all(|b| b.inflight);
        if room && !p.draining && !env.liveness && env.now >= p.next_at && !env.producers_give_up {
            if env.socket_full.contains(&id) {
                // A blocked send: try again a gap later.
                p.next_at = env.now + p.gap;
            } else {
                let n = 1 + env.prng.below(4) as usize;
                let values: Vec<Value> = (0..n)
                    .map(|_| {
                        env.next_value += 1;
                        env.next_value
                    })
                    .collect();
                let part = env.prng.below(env.partitions as u64) as Part;
                let seq = p.seqs.get(&part).copied().unwrap_or(0);
                if p.idempotent {
                    p.seqs.insert(part, seq.wrapping_add(n as i32));
                }
                p.next_batch += 1;
                p.batches.push(Batch {
                    id: p.next_batch,
                    part,
                    values,
                    seq,
                    timestamps_ms: record_timestamps(env, n),
                    attempt: 0,
                    inflight: false,
                    retry_at: 0,
                });
                p.next_at = env.now + p.gap;
                to_send.push(p.batches.len() - 1);
            }
        }
        for i in to_send {
            self.send_batch(env, i);
        }
    }

    fn send_batch(&mut self, env: &mut Env, i: usize) {
        let id = self.id;
        let Role::Producer(p) = &mut self.role else {
            unreachable!()
        };
        let (acks, idempotent, pid, epoch) = (p.acks, p.idempotent, p.pid, p.epoch);
        let b = &mut p.batches[i];
        let attempt = b.attempt;
        b.attempt += 1;
        b.inflight = true;
        env.history.events.push(Event::Send {
            t: env.now / MS,
            producer: id,
            part: b.part,
            values: b.values.clone(),
            acks,
            idempotent,
            attempt,
            timestamps_ms: b.timestamps_ms.clone(),
        });
        let producer = idempotent.then_some((pid, epoch, b.seq));
        let batch = super::encode_batch(&b.values, producer, &b.timestamps_ms);
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(2_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(name(TOPIC)))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(b.part)
                        .with_records(Some(batch)),
                ])]);
        let (batch_id, part, values) = (b.id, b.part, b.values.clone());
        if acks == 0 {
            // Fire and forget: no response will come, so the outcome is unknown at once.
            env.history.events.push(Event::SendDone {
                t: env.now / MS,
                producer: id,
                part,
                values,
                outcome: Outcome::Unknown,
            });
            p.batches.remove(i);
            self.send(env, ApiKey::Produce, 9, RequestKind::Produce(req), None);
        } else {
            self.send(
                env,
                ApiKey::Produce,
                9,
                RequestKind::Produce(req),
                Some(Pending::Produce { batch: batch_id }),
            );
        }
    }

    /// The broker answered a batch.
    pub(super) fn produce_done(&mut self, env: &mut Env, batch: u64, code: i16, base_offset: i64) {
        let id = self.id;
        let Role::Producer(p) = &mut self.role else {
            unreachable!()
        };
        let Some(i) = p.find(batch) else { return };
        let (part, values) = (p.batches[i].part, p.batches[i].values.clone());
        // An OUT_OF_ORDER answer while an earlier batch of the partition is unresolved only says
        // that batch has not arrived yet: retried after it (the Java client's Sender does the
        // same), so its fate is still open.
        let behind = code == OUT_OF_ORDER_SEQUENCE_NUMBER && p.has_predecessor(i);
        let outcome = match code {
            NONE => Outcome::Ok { base_offset },
            _ if behind => Outcome::Unknown,
            // Refusals: the batch was not written.
            CORRUPT_MESSAGE
            | MESSAGE_TOO_LARGE
            | INVALID_RECORD
            | UNKNOWN_TOPIC_OR_PARTITION
            | OUT_OF_ORDER_SEQUENCE_NUMBER
            | INVALID_PRODUCER_EPOCH
            | UNKNOWN_PRODUCER_ID => Outcome::Fail { code },
            // Timeouts and storage errors: it may have been written.
            _ => Outcome::Unknown,
        };
        env.history.events.push(Event::SendDone {
            t: env.now / MS,
            producer: id,
            part,
            values,
            outcome: outcome.clone(),
        });
        match outcome {
            Outcome::Ok { .. } => p.resolve(env, i),
            Outcome::Fail { code } => {
                if code == OUT_OF_ORDER_SEQUENCE_NUMBER || code == UNKNOWN_PRODUCER_ID {
                    // The broker lost our earlier batches (a policy-permitted power loss): start
                    // over with a new producer id once nothing is in flight, as the Java client
                    // does.
                    p.draining = true;
                }
                p.resolve(env, i);
            }
            Outcome::Unknown => p.retry_later(env, i, 100 * MS),
        }
    }

    /// A batch's request timed out or its connection was lost: its outcome is unknown.
    pub(super) fn produce_lost(&mut self, env: &mut Env, batch: u64) {
        let id = self.id;
        let Role::Producer(p) = &mut self.role else {
            unreachable!()
        };
        let Some(i) = p.find(batch) else { return };
        let b = &p.batches[i];
        env.history.events.push(Event::SendDone {
            t: env.now / MS,
            producer: id,
            part: b.part,
            values: b.values.clone(),
            outcome: Outcome::Unknown,
        });
        let backoff = 50 * MS + env.prng.below(200) * MS;
        p.retry_later(env, i, backoff);
    }
}

/// The timestamps of a new batch's `n` records. A producer stamps each record when the
/// application hands it over (CreateTime), not once per batch: the records of a batch were
/// handed over about a millisecond apart, by application threads whose clocks disagree by up to
/// five milliseconds, so timestamps inside a batch mostly grow but may tie or go back. That is
/// what makes ListOffsets by timestamp look inside a batch: Kafka answers the first record whose
/// timestamp is at or after the target, not the batch's first offset (KIP-79;
/// `offset-for-timestamp`).
pub(super) fn record_timestamps(env: &mut Env, n: usize) -> Vec<i64> {
    let now_ms = 1_700_000_000_000 + (env.now / MS) as i64;
    (0..n)
        .map(|i| now_ms + i as i64 - env.prng.below(6) as i64)
        .collect()
}
