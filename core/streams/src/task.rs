//! A task: one sub-topology on one partition number, as Kafka Streams' `StreamTask`.
//!
//! A task owns the state stores of its sub-topology for its partition, and its *stream time*:
//! the largest timestamp among the records it processed, which closes windows. It is handed
//! one record at a time (from any of its source topics) and returns what to produce. It never
//! produces anything itself: the runner sends the emits, and commits the input offset only
//! once all of them are acknowledged (at least once).

use crate::record::{Emit, EmitKind, Origin, Record, ORIGIN_HEADER};
use crate::store::{split_window_key, window_key, Store};
use crate::topology::{Op, Topology};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A task's identity, written `<sub-topology>_<partition>` as Kafka writes it (`0_3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    pub subtopology: usize,
    pub partition: i32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// What a task counts: what a user checks when results look wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskStats {
    pub processed: u64,
    /// Records an aggregation or join dropped for having no key (as Kafka drops them).
    pub dropped_null_key: u64,
    /// Records dropped because every window they belong to was closed (late past the grace).
    pub dropped_late: u64,
    /// Repeats an aggregation skipped: records from an origin it had applied already (input
    /// processed again after a crash or a rebalance).
    pub skipped_repeats: u64,
}

pub struct Task {
    id: TaskId,
    topology: Arc<Topology>,
    stores: BTreeMap<String, Store>,
    stream_time: i64,
    stats: TaskStats,
    /// While processing: the input record, as an origin for repartition records (its index
    /// counts them), and the origin aggregations deduplicate by.
    input: Option<Origin>,
    dedup: Option<Origin>,
}

/// The windowed output key: `<key>@<window start ms>`, readable with any console consumer.
pub fn windowed_key(key: &[u8], start: i64) -> Vec<u8> {
    let mut k = key.to_vec();
    k.extend_from_slice(format!("@{start}").as_bytes());
    k
}

impl Task {
    pub fn new(topology: Arc<Topology>, id: TaskId) -> Task {
        assert!(
            id.subtopology < topology.subtopologies(),
            "no such sub-topology"
        );
        let stores = topology
            .stores_of(id.subtopology)
            .into_iter()
            .map(|s| {
                let store = Store::new(&s, topology.changelog_topic(&s), id.partition);
                (s, store)
            })
            .collect();
        Task {
            id,
            topology,
            stores,
            stream_time: -1,
            stats: TaskStats::default(),
            input: None,
            dedup: None,
        }
    }

    pub fn id(&self) -> TaskId {
        self.id
    }

    pub fn stats(&self) -> TaskStats {
        self.stats
    }

    pub fn stream_time(&self) -> i64 {
        self.stream_time
    }

    pub fn store(&self, name: &str) -> Option<&Store> {
        self.stores.get(name)
    }

    /// The changelog topics to restore from, before the first record is processed.
    pub fn changelogs(&self) -> Vec<String> {
        self.stores
            .values()
            .map(|s| s.changelog().to_string())
            .collect()
    }

    /// Apply a changelog record read back during restoration. A record of a topic that is no
    /// changelog of this task is ignored and reported with `false`.
    pub fn restore(&mut self, changelog: &str, record: &Record) -> bool {
        let Some(key) = record.key.as_deref() else {
            return false; // a store key is never null: not written by a task
        };
        let origin = record.header(ORIGIN_HEADER).and_then(Origin::decode);
        match self
            .stores
            .values_mut()
            .find(|s| s.changelog() == changelog)
        {
            Some(s) => {
                s.restore(key, record.value.as_deref(), origin.as_ref());
                true
            }
            None => false,
        }
    }

    /// Process the record at `offset` of `topic` (one of the task's source topics, on the
    /// task's partition); return what to produce, in order.
    pub fn process(&mut self, topic: &str, offset: i64, mut record: Record) -> Vec<Emit> {
        assert_eq!(
            self.topology.subtopology_reading(topic),
            Some(self.id.subtopology),
            "a record reaches the task that reads its topic"
        );
        self.stats.processed += 1;
        self.stream_time = self.stream_time.max(record.timestamp_ms);
        let input = Origin {
            topic: topic.to_string(),
            partition: self.id.partition,
            offset,
            index: 0,
        };
        // A repartition record names its own origin; strip it so no output carries it.
        let carried = record.header(ORIGIN_HEADER).and_then(Origin::decode);
        record.headers.retain(|(k, _)| k != ORIGIN_HEADER);
        self.dedup = if self.topology.is_repartition_topic(topic) {
            carried
        } else {
            Some(input.clone())
        };
        self.input = Some(input);
        let topology = Arc::clone(&self.topology);
        let mut out = Vec::new();
        for (i, n) in topology.nodes.iter().enumerate() {
            let reads = match &n.op {
                Op::Source { topic: t } | Op::TableSource { topic: t, .. } => t == topic,
                _ => false,
            };
            if reads && topology.sub_of[i] == self.id.subtopology {
                self.run(&topology, i, record.clone(), &mut out);
            }
        }
        out
    }

    /// Run node `i` on `r`, then its children on what it forwards.
    fn run(&mut self, t: &Topology, i: usize, r: Record, out: &mut Vec<Emit>) {
        let node = &t.nodes[i];
        let forward = match &node.op {
            Op::Source { .. } | Op::Pass => vec![r],
            Op::TableSource { store, .. } => {
                let Some(key) = r.key.clone() else {
                    self.stats.dropped_null_key += 1;
                    return;
                };
                let s = self.stores.get_mut(store).expect("the task has its stores");
                // An upsert is idempotent: a repeat writes the same row again.
                match &r.value {
                    Some(v) => s.put(&key, v.clone(), r.timestamp_ms, None, out),
                    None => s.delete(&key, r.timestamp_ms, None, out),
                }
                vec![r]
            }
            Op::Map(f) => vec![f(r)],
            Op::Filter(p) => {
                if p(&r) {
                    vec![r]
                } else {
                    vec![]
                }
            }
            Op::FlatMap(f) => f(r),
            Op::Branch(preds) => {
                assert_eq!(preds.len(), node.children.len(), "one child per branch");
                if let Some(b) = preds.iter().position(|p| p(&r)) {
                    self.run(t, node.children[b], r, out);
                }
                return;
            }
            Op::Aggregate {
                store,
                windows,
                init,
                agg,
            } => {
                let Some(key) = r.key.clone() else {
                    self.stats.dropped_null_key += 1;
                    return;
                };
                let s = self.stores.get_mut(store).expect("the task has its stores");
                let origin = self.dedup.as_ref();
                // A repeat changes nothing, but its results are forwarded again (the current
                // values): the first time's may not have reached the output topic.
                let repeat = origin.is_some_and(|o| s.applied(o));
                if repeat {
                    self.stats.skipped_repeats += 1;
                }
                let mut results = Vec::new();
                match windows {
                    None => {
                        let old = s.get(&key).map(<[u8]>::to_vec).unwrap_or_else(|| init());
                        let new = if repeat { old } else { agg(&key, &r, old) };
                        if !repeat {
                            s.put(&key, new.clone(), r.timestamp_ms, origin, out);
                        }
                        results.push(Record {
                            key: Some(key),
                            value: Some(new),
                            timestamp_ms: r.timestamp_ms,
                            headers: vec![],
                        });
                    }
                    Some(w) => {
                        let open: Vec<i64> = w
                            .starts_for(r.timestamp_ms)
                            .into_iter()
                            .filter(|&st| !w.closed(st, self.stream_time))
                            .collect();
                        if open.is_empty() && !repeat {
                            self.stats.dropped_late += 1;
                        }
                        for start in open {
                            let k = window_key(start, &key);
                            let old = s.get(&k).map(<[u8]>::to_vec).unwrap_or_else(|| init());
                            let new = if repeat { old } else { agg(&key, &r, old) };
                            if !repeat {
                                s.put(&k, new.clone(), r.timestamp_ms, origin, out);
                            }
                            results.push(Record {
                                key: Some(windowed_key(&key, start)),
                                value: Some(new),
                                timestamp_ms: r.timestamp_ms,
                                headers: vec![],
                            });
                        }
                        // Windows past their grace period are final: drop them from the store
                        // (retention = size + grace, the least Kafka allows).
                        let stream_time = self.stream_time;
                        s.expire_front(
                            |k| {
                                split_window_key(k).is_some_and(|(st, _)| w.closed(st, stream_time))
                            },
                            stream_time,
                            origin,
                            out,
                        );
                    }
                }
                results
            }
            Op::Join {
                store,
                joiner,
                left,
            } => {
                let Some(key) = r.key.as_deref() else {
                    self.stats.dropped_null_key += 1;
                    return;
                };
                let row = self.stores.get(store).and_then(|s| s.get(key));
                if row.is_none() && !left {
                    return;
                }
                match joiner(&r, row) {
                    Some(v) => vec![Record {
                        value: Some(v),
                        ..r
                    }],
                    None => vec![],
                }
            }
            Op::Sink { topic, repartition } => {
                let mut r = r;
                if *repartition {
                    let input = self.input.as_mut().expect("set while processing");
                    r.headers
                        .push((ORIGIN_HEADER.to_string(), Some(input.encode())));
                    input.index += 1;
                }
                out.push(Emit {
                    topic: topic.clone(),
                    partition: None,
                    record: r,
                    kind: if *repartition {
                        EmitKind::Repartition
                    } else {
                        EmitKind::Output
                    },
                });
                return;
            }
        };
        for r in forward {
            for &c in &node.children {
                self.run(t, c, r.clone(), out);
            }
        }
    }
}
