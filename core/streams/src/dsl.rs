//! The builder, in the shape of Kafka Streams' `StreamsBuilder` DSL.
//!
//! ```
//! use gregor_streams::{Record, StreamsBuilder};
//! let b = StreamsBuilder::new("wordcount");
//! b.stream("lines")
//!     .flat_map(|r: Record| {
//!         let text = r.value_str().to_lowercase();
//!         text.split_whitespace()
//!             .map(|w| Record::new(Some(w.as_bytes()), Some(w.as_bytes()), r.timestamp_ms))
//!             .collect()
//!     })
//!     .group_by_key()
//!     .count("counts")
//!     .to_stream()
//!     .to("word-counts");
//! let topology = b.build().unwrap();
//! assert_eq!(topology.subtopologies(), 2); // cut at the repartition topic
//! ```
//!
//! A [`KStream`] is a stream of events; a [`KTable`] the latest value per key (a store's
//! changes). Operations that may change the key (`map`, `flat_map`, `select_key`) mark the
//! stream, and a later `group_by_key` or `join` first sends it through a *repartition topic*
//! `<application.id>-<store>-repartition` keyed by the new key, so that every record of a key
//! reaches the one task that keeps its aggregate — as Kafka Streams does.
//!
//! Keys and values are bytes. `count` stores and emits counts as decimal text (`"42"`), so an
//! output topic reads well with any console consumer.

use crate::record::Record;
use crate::topology::{Node, Op, Topology};
use crate::window::Windows;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

struct Graph {
    app_id: String,
    nodes: Vec<Node>,
    built: bool,
}

type Shared = Rc<RefCell<Graph>>;

/// A branch's condition (see [`KStream::branch`]).
pub type Predicate = Box<dyn Fn(&Record) -> bool + Send + Sync>;

fn add(g: &Shared, parent: Option<usize>, op: Op) -> usize {
    let mut g = g.borrow_mut();
    assert!(!g.built, "a stream grew after StreamsBuilder::build");
    let id = g.nodes.len();
    g.nodes.push(Node {
        op,
        children: vec![],
    });
    if let Some(p) = parent {
        g.nodes[p].children.push(id);
    }
    id
}

pub struct StreamsBuilder {
    g: Shared,
}

/// A stream of records.
#[derive(Clone)]
pub struct KStream {
    g: Shared,
    node: usize,
    /// Whether an operation since the source may have changed the key.
    key_changed: bool,
}

/// A stream grouped by key, ready to aggregate (optionally in windows).
pub struct KGroupedStream {
    stream: KStream,
    windows: Option<Windows>,
}

/// The latest value per key, kept in the state store `store`.
#[derive(Clone)]
pub struct KTable {
    g: Shared,
    node: usize,
    store: String,
}

impl StreamsBuilder {
    /// `app_id` is Kafka Streams' `application.id`: the consumer group's id and the prefix of
    /// the internal topics.
    pub fn new(app_id: &str) -> StreamsBuilder {
        StreamsBuilder {
            g: Rc::new(RefCell::new(Graph {
                app_id: app_id.to_string(),
                nodes: vec![],
                built: false,
            })),
        }
    }

    /// The records of `topic`.
    pub fn stream(&self, topic: &str) -> KStream {
        let node = add(
            &self.g,
            None,
            Op::Source {
                topic: topic.to_string(),
            },
        );
        KStream {
            g: self.g.clone(),
            node,
            key_changed: false,
        }
    }

    /// `topic` read as a table: the latest value per key, kept in store `store`.
    pub fn table(&self, topic: &str, store: &str) -> KTable {
        let node = add(
            &self.g,
            None,
            Op::TableSource {
                topic: topic.to_string(),
                store: store.to_string(),
            },
        );
        KTable {
            g: self.g.clone(),
            node,
            store: store.to_string(),
        }
    }

    /// The topology, or why it cannot run (two stores of one name, a join with no table, a
    /// topic read by two unconnected parts).
    /// Streams and tables of this builder cannot grow after it (a programming error).
    pub fn build(self) -> Result<Topology, String> {
        let mut g = self.g.borrow_mut();
        g.built = true;
        if g.app_id.is_empty() || g.app_id.contains(char::is_whitespace) {
            return Err(format!("bad application id {:?}", g.app_id));
        }
        Topology::new(g.app_id.clone(), std::mem::take(&mut g.nodes))
    }
}

impl KStream {
    fn then(&self, op: Op, key_changed: bool) -> KStream {
        KStream {
            g: self.g.clone(),
            node: add(&self.g, Some(self.node), op),
            key_changed: self.key_changed || key_changed,
        }
    }

    /// A new record for each (the key may change).
    pub fn map(&self, f: impl Fn(Record) -> Record + Send + Sync + 'static) -> KStream {
        self.then(Op::Map(Arc::new(f)), true)
    }

    /// A new value for each record; the key stays.
    pub fn map_values(
        &self,
        f: impl Fn(&Record) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> KStream {
        self.then(
            Op::Map(Arc::new(move |r: Record| Record { value: f(&r), ..r })),
            false,
        )
    }

    /// A new key for each record.
    pub fn select_key(
        &self,
        f: impl Fn(&Record) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> KStream {
        self.then(
            Op::Map(Arc::new(move |r: Record| Record { key: f(&r), ..r })),
            true,
        )
    }

    /// The records for which `p` holds.
    pub fn filter(&self, p: impl Fn(&Record) -> bool + Send + Sync + 'static) -> KStream {
        self.then(Op::Filter(Arc::new(p)), false)
    }

    /// Zero or more records for each (the keys may change).
    pub fn flat_map(&self, f: impl Fn(Record) -> Vec<Record> + Send + Sync + 'static) -> KStream {
        self.then(Op::FlatMap(Arc::new(f)), true)
    }

    /// Zero or more values for each record, each with the record's key.
    pub fn flat_map_values(
        &self,
        f: impl Fn(&Record) -> Vec<Vec<u8>> + Send + Sync + 'static,
    ) -> KStream {
        self.then(
            Op::FlatMap(Arc::new(move |r: Record| {
                f(&r)
                    .into_iter()
                    .map(|v| Record {
                        value: Some(v),
                        ..r.clone()
                    })
                    .collect()
            })),
            false,
        )
    }

    /// One stream per predicate: a record goes to the first whose predicate it satisfies,
    /// and is dropped if none does (`KStream#split`, formerly `branch`).
    pub fn branch(&self, preds: Vec<Predicate>) -> Vec<KStream> {
        let preds: Vec<_> = preds.into_iter().map(Arc::from).collect();
        let n = preds.len();
        let b = self.then(Op::Branch(preds), false);
        (0..n).map(|_| b.then(Op::Pass, false)).collect()
    }

    /// Group by the current key, to aggregate.
    pub fn group_by_key(&self) -> KGroupedStream {
        KGroupedStream {
            stream: self.clone(),
            windows: None,
        }
    }

    /// Write the records to `topic`, partitioned by key.
    pub fn to(&self, topic: &str) {
        add(
            &self.g,
            Some(self.node),
            Op::Sink {
                topic: topic.to_string(),
                repartition: false,
            },
        );
    }

    /// Through the repartition topic `<app>-<name>-repartition` if the key may have changed.
    fn repartitioned(&self, name: &str) -> KStream {
        if !self.key_changed {
            return self.clone();
        }
        let topic = format!("{}-{name}-repartition", self.g.borrow().app_id);
        add(
            &self.g,
            Some(self.node),
            Op::Sink {
                topic: topic.clone(),
                repartition: true,
            },
        );
        KStream {
            g: self.g.clone(),
            node: add(&self.g, None, Op::Source { topic }),
            key_changed: false,
        }
    }

    /// Stream–table join: each record with the table's current value for its key; records
    /// whose key the table lacks are dropped.
    pub fn join(
        &self,
        table: &KTable,
        joiner: impl Fn(&Record, &[u8]) -> Vec<u8> + Send + Sync + 'static,
    ) -> KStream {
        self.join_op(table, false, Arc::new(move |r, v| v.map(|v| joiner(r, v))))
    }

    /// As [`KStream::join`], keeping records whose key the table lacks (`None` to the joiner).
    pub fn left_join(
        &self,
        table: &KTable,
        joiner: impl Fn(&Record, Option<&[u8]>) -> Vec<u8> + Send + Sync + 'static,
    ) -> KStream {
        self.join_op(table, true, Arc::new(move |r, v| Some(joiner(r, v))))
    }

    fn join_op(&self, table: &KTable, left: bool, joiner: crate::topology::JoinFn) -> KStream {
        let s = self.repartitioned(&format!("{}-join", table.store));
        s.then(
            Op::Join {
                store: table.store.clone(),
                joiner,
                left,
            },
            false,
        )
    }
}

impl KGroupedStream {
    /// Aggregate per window instead of per key.
    pub fn windowed_by(self, windows: Windows) -> KGroupedStream {
        KGroupedStream {
            windows: Some(windows),
            ..self
        }
    }

    /// Fold each key's records into a value kept in store `store`, starting from `init()`.
    pub fn aggregate(
        self,
        store: &str,
        init: impl Fn() -> Vec<u8> + Send + Sync + 'static,
        agg: impl Fn(&[u8], &Record, Vec<u8>) -> Vec<u8> + Send + Sync + 'static,
    ) -> KTable {
        let s = self.stream.repartitioned(store);
        let node = add(
            &s.g,
            Some(s.node),
            Op::Aggregate {
                store: store.to_string(),
                windows: self.windows,
                init: Arc::new(init),
                agg: Arc::new(agg),
            },
        );
        KTable {
            g: s.g.clone(),
            node,
            store: store.to_string(),
        }
    }

    /// How many records each key (and window) has had, as decimal text.
    pub fn count(self, store: &str) -> KTable {
        self.aggregate(
            store,
            || b"0".to_vec(),
            |_, _, old| {
                let n: u64 = std::str::from_utf8(&old)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                (n + 1).to_string().into_bytes()
            },
        )
    }

    /// Combine each key's values with `f(aggregate, value)`; the first value is kept as is.
    /// Records without a value are skipped, as Kafka's reduce skips them.
    pub fn reduce(
        self,
        store: &str,
        f: impl Fn(&[u8], &[u8]) -> Vec<u8> + Send + Sync + 'static,
    ) -> KTable {
        // The empty aggregate marks "no value yet": the first value is stored with a 1-byte
        // prefix, so an empty value is told from none.
        let table = self
            .stream
            .filter(|r| r.value.is_some())
            .group_by_key_like(self.windows)
            .aggregate(store, Vec::new, move |_, r, old| {
                let v = r.value.as_deref().expect("filtered");
                let mut out = vec![1u8];
                match old.split_first() {
                    Some((_, prev)) => out.extend(f(prev, v)),
                    None => out.extend_from_slice(v),
                }
                out
            });
        // Forward the reduced value without its marker byte.
        let values = table.to_stream().map_values(|r| {
            r.value
                .as_deref()
                .and_then(|v| v.split_first())
                .map(|(_, v)| v.to_vec())
        });
        KTable {
            g: values.g.clone(),
            node: values.node,
            store: table.store,
        }
    }
}

impl KStream {
    fn group_by_key_like(&self, windows: Option<Windows>) -> KGroupedStream {
        KGroupedStream {
            stream: self.clone(),
            windows,
        }
    }
}

impl KTable {
    /// The table's changes as a stream: one record per update.
    pub fn to_stream(&self) -> KStream {
        KStream {
            g: self.g.clone(),
            node: self.node,
            key_changed: false,
        }
    }

    pub fn store_name(&self) -> &str {
        &self.store
    }
}
