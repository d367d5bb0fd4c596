//! Readers: plain consumers that assign themselves partitions (no group), the KIP-74 reader with
//! a small top-level fetch limit, and the auditor that reads the final log.
//!
//! A reader behaves as a consumer with `auto.offset.reset=earliest`: a fetch answered
//! OFFSET_OUT_OF_RANGE (its position fell below the log start, deleted by retention, or above the
//! log end, cut by a power loss) is followed by ListOffsets earliest and a fresh position (a new
//! `session` in the history). Every fetched partition is recorded with the log start offset and
//! high watermark the broker reported, and now and then a reader asks ListOffsets for a
//! partition's earliest or latest offset, or the first offset at a timestamp: the retention
//! checkers judge those answers. Once in a while, instead, a reader deletes the records it has
//! read (DeleteRecords, KIP-107, below its position): the `deleted-served` checker holds the
//! broker to the low watermark it acknowledges.

use super::{decode_records_ts, first_batch_len, name, Client, Env, Pending, Role, Us, MS, TOPIC};
use crate::history::{Event, Part, Value};
use bytes::Bytes;
use gregor_core::error::*;
use gregor_core::kafka_protocol::messages::*;
use std::collections::{BTreeMap, BTreeSet};

/// ListOffsets' special timestamps.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

/// One query in this many is a DeleteRecords instead of a ListOffsets.
const DELETE_RECORDS_ONE_IN: u64 = 12;

/// How many recently read record timestamps a reader keeps, to aim its timestamp queries at.
const TIMESTAMPS_KEPT_MAX: usize = 64;

pub struct Reader {
    pub(super) parts: Vec<Part>,
    pub(super) pos: BTreeMap<Part, i64>,
    pub(super) session: BTreeMap<Part, u32>,
    pub(super) resetting: BTreeSet<Part>,
    pub(super) fetch_inflight: bool,
    pub(super) next_at: Us,
    /// The auditor reads everything once, at the end, to produce the final log.
    pub auditor: bool,
    pub active: bool,
    done: BTreeSet<Part>,
    found: BTreeMap<Part, Vec<(i64, Value)>>,
    /// The auditor: where each partition's log started when it read it.
    log_start: BTreeMap<Part, i64>,
    pub finished: bool,
    /// The fetch's top-level byte limit (a consumer's `fetch.max.bytes`).
    pub(super) fetch_max_bytes: i32,
    /// When the next ListOffsets query goes out.
    next_query: Us,
    pub(super) query_inflight: bool,
    /// Timestamps of records recently read: targets for ListOffsets by timestamp.
    timestamps: Vec<i64>,
    /// `auto.offset.reset`: where a position that fell out of range starts again, EARLIEST
    /// (the log start) or LATEST (the high watermark, skipping what is there).
    pub(super) reset_to: i64,
}

impl Reader {
    pub fn new(parts: Vec<Part>, auditor: bool) -> Reader {
        Reader {
            pos: parts.iter().map(|p| (*p, 0)).collect(),
            session: parts.iter().map(|p| (*p, 0)).collect(),
            parts,
            resetting: BTreeSet::new(),
            fetch_inflight: false,
            next_at: 0,
            auditor,
            active: !auditor,
            done: BTreeSet::new(),
            found: BTreeMap::new(),
            log_start: BTreeMap::new(),
            finished: false,
            fetch_max_bytes: 1 << 20,
            next_query: 1_000 * MS,
            query_inflight: false,
            timestamps: Vec::new(),
            reset_to: EARLIEST,
        }
    }

    pub fn next_wake(&self, consider: &mut dyn FnMut(Us)) {
        if self.active {
            consider(self.next_at);
            if !self.auditor && !self.query_inflight {
                consider(self.next_query);
            }
        }
    }
}

pub(super) fn list_offsets(part: Part, spec: i64) -> RequestKind {
    RequestKind::ListOffsets(
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(name(TOPIC)))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(part)
                        .with_timestamp(spec),
                ])]),
    )
}

impl Client {
    pub(super) fn reader_kick(&mut self, env: &mut Env) {
        let Role::Reader(r) = &mut self.role else {
            unreachable!()
        };
        if !r.active {
            return;
        }
        if !r.auditor && !r.query_inflight && env.now >= r.next_query && !r.parts.is_empty() {
            // A ListOffsets query: earliest, latest, or a timestamp. The targets are timestamps
            // of records read; records carry their own timestamps, so a target often names a
            // record inside a batch, where only a record-granular answer is right (see
            // check/retention.rs, `offset-for-timestamp`).
            r.query_inflight = true;
            r.next_query = env.now + (500 + env.prng.below(2_500)) * MS;
            let part = r.parts[env.prng.below(r.parts.len() as u64) as usize];
            let pos = r.pos.get(&part).copied().unwrap_or(0);
            // Not in the liveness phase: the auditor's final read must see a settled log start.
            if env.prng.below(DELETE_RECORDS_ONE_IN) == 0
                && pos > 0
                && !env.liveness
                && !r.resetting.contains(&part)
            {
                // Everything this reader has read goes; its position is at most a high
                // watermark it saw, so the request is valid unless a power loss cut the log.
                let sent = env.now / MS;
                let req = DeleteRecordsRequest::default()
                    .with_timeout_ms(5_000)
                    .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                        .with_name(TopicName(name(TOPIC)))
                        .with_partitions(vec![
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(part)
                                .with_offset(pos),
                        ])]);
                self.send(
                    env,
                    ApiKey::DeleteRecords,
                    2,
                    RequestKind::DeleteRecords(req),
                    Some(Pending::DeleteRecords { part, sent }),
                );
                return;
            }
            let spec = match env.prng.below(3) {
                0 => EARLIEST,
                1 => LATEST,
                _ if r.timestamps.is_empty() => EARLIEST,
                _ => r.timestamps[env.prng.below(r.timestamps.len() as u64) as usize],
            };
            let sent = env.now / MS;
            self.send(
                env,
                ApiKey::ListOffsets,
                5,
                list_offsets(part, spec),
                Some(Pending::ListOffsets { part, spec, sent }),
            );
        }
        let Role::Reader(r) = &mut self.role else {
            unreachable!()
        };
        if r.fetch_inflight || env.now < r.next_at {
            return;
        }
        let parts: Vec<Part> = r
            .parts
            .iter()
            .filter(|p| !r.done.contains(p) && !r.resetting.contains(p))
            .copied()
            .collect();
        if parts.is_empty() {
            return;
        }
        r.fetch_inflight = true;
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(if r.auditor { 0 } else { 500 })
            .with_min_bytes(1)
            .with_max_bytes(r.fetch_max_bytes)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(name(TOPIC)))
                .with_partitions(
                    parts
                        .iter()
                        .map(|p| {
                            fetch_request::FetchPartition::default()
                                .with_partition(*p)
                                .with_fetch_offset(r.pos[p])
                                .with_partition_max_bytes(64 * 1024)
                        })
                        .collect(),
                )]);
        let sent = env.now / MS;
        self.send(
            env,
            ApiKey::Fetch,
            12,
            RequestKind::Fetch(req),
            Some(Pending::Fetch { epoch: 0, sent }),
        );
    }

    pub(super) fn reader_listed(
        &mut self,
        env: &mut Env,
        part: Part,
        spec: i64,
        sent: u64,
        resp: ListOffsetsResponse,
    ) {
        let id = self.id;
        let Role::Reader(r) = &mut self.role else {
            unreachable!()
        };
        let answer = resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .filter(|p| p.error_code == NONE)
            .map(|p| p.offset);
        let reset = spec == r.reset_to && r.resetting.contains(&part);
        if reset {
            r.resetting.remove(&part);
        } else {
            r.query_inflight = false;
        }
        let Some(o) = answer else {
            return;
        };
        if !r.auditor {
            env.history.events.push(Event::Offsets {
                t: env.now / MS,
                sent,
                reader: id,
                part,
                spec,
                offset: o,
            });
        }
        if reset {
            r.pos.insert(part, o);
            let session = r.session.entry(part).or_default();
            *session += 1;
            if !r.auditor {
                env.history.events.push(Event::Reset {
                    t: env.now / MS,
                    reader: id,
                    part,
                    session: *session,
                    offset: o,
                });
            }
            if r.auditor {
                // Retention moved the log start under the auditor: the final log starts there.
                r.log_start.insert(part, o);
                if let Some(f) = r.found.get_mut(&part) {
                    f.retain(|(off, _)| *off >= o);
                }
            }
        }
    }

    pub(super) fn reader_fetched(&mut self, env: &mut Env, sent: u64, resp: FetchResponse) {
        let id = self.id;
        let Role::Reader(r) = &mut self.role else {
            unreachable!()
        };
        r.fetch_inflight = false;
        if r.fetch_max_bytes < 1 << 20 {
            // What KIP-74 bounds: the records bytes of all partitions together, except that the
            // first batch is returned whole even when it alone is larger.
            let sizes: Vec<&Bytes> = resp
                .responses
                .iter()
                .flat_map(|t| &t.partitions)
                .filter_map(|p| p.records.as_ref())
                .filter(|b| !b.is_empty())
                .collect();
            let total: u64 = sizes.iter().map(|b| b.len() as u64).sum();
            let first_batch = sizes.first().map_or(0, |b| first_batch_len(b));
            if total > 0 {
                env.history.events.push(Event::FetchBytes {
                    t: env.now / MS,
                    reader: id,
                    max_bytes: r.fetch_max_bytes,
                    total,
                    first_batch,
                });
            }
        }
        let mut resets = Vec::new();
        let mut any = false;
        for t in resp.responses {
            for p in t.partitions {
                let part = p.partition_index;
                let Some(&at) = r.pos.get(&part) else {
                    continue;
                };
                if !r.auditor {
                    env.history.events.push(Event::Fetched {
                        t: env.now / MS,
                        sent,
                        reader: id,
                        part,
                        offset: at,
                        error: p.error_code,
                        log_start: p.log_start_offset,
                        high_watermark: p.high_watermark,
                    });
                }
                match p.error_code {
                    NONE => {
                        let decoded = decode_records_ts(p.records);
                        let recs: Vec<(i64, Value)> = decoded
                            .iter()
                            .filter(|(o, _, _)| *o >= at)
                            .map(|(o, v, _)| (*o, *v))
                            .collect();
                        for (_, _, ts) in decoded.iter().take(3) {
                            if r.timestamps.len() >= TIMESTAMPS_KEPT_MAX {
                                r.timestamps.remove(0);
                            }
                            r.timestamps.push(*ts);
                        }
                        if let Some(last) = recs.last() {
                            r.pos.insert(part, last.0 + 1);
                            any = true;
                        }
                        if r.auditor {
                            r.found
                                .entry(part)
                                .or_default()
                                .extend(recs.iter().copied());
                            if recs.is_empty() && r.pos[&part] >= p.high_watermark {
                                r.done.insert(part);
                            }
                        } else if !recs.is_empty() {
                            env.history.events.push(Event::Poll {
                                t: env.now / MS,
                                reader: id,
                                session: r.session[&part],
                                part,
                                records: recs,
                            });
                        }
                    }
                    OFFSET_OUT_OF_RANGE => resets.push(part),
                    _ => {}
                }
            }
        }
        if r.auditor && r.done.len() == r.parts.len() && !r.finished {
            r.finished = true;
            r.active = false;
            for part in &r.parts {
                env.history.events.push(Event::Final {
                    part: *part,
                    log_start: r.log_start.get(part).copied().unwrap_or(0),
                    records: r.found.remove(part).unwrap_or_default(),
                });
            }
            return;
        }
        if !any {
            r.next_at = env.now + if r.auditor { 10 * MS } else { 50 * MS };
        }
        let reset_to = r.reset_to;
        for part in resets {
            // auto.offset.reset: earliest or latest. The auditor starts from the log start:
            // retention may have deleted the beginning of the log.
            if let Role::Reader(r) = &mut self.role {
                r.resetting.insert(part);
            }
            let sent = env.now / MS;
            self.send(
                env,
                ApiKey::ListOffsets,
                5,
                list_offsets(part, reset_to),
                Some(Pending::ListOffsets {
                    part,
                    spec: reset_to,
                    sent,
                }),
            );
        }
    }
}

impl Client {
    /// A DeleteRecords answered: an acknowledged low watermark goes into the history.
    pub(super) fn reader_deleted(
        &mut self,
        env: &mut Env,
        part: Part,
        sent: u64,
        r: DeleteRecordsResponse,
    ) {
        let Role::Reader(reader) = &mut self.role else {
            unreachable!()
        };
        reader.query_inflight = false;
        let p = r.topics.first().and_then(|t| t.partitions.first());
        if let Some(p) = p.filter(|p| p.error_code == NONE && p.partition_index == part) {
            env.history.events.push(Event::RecordsDeleted {
                t: env.now / MS,
                sent,
                reader: self.id,
                part,
                low_watermark: p.low_watermark,
            });
        }
    }
}
