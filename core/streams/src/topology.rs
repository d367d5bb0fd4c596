//! The processor graph the builder makes ([`crate::dsl`]), and what follows from it: the
//! sub-topologies, the tasks' source topics and the internal topics to create.
//!
//! Kafka Streams cuts a topology at every repartition topic: records written to one are read
//! back by another part of the graph, in another task. Each connected part is a
//! *sub-topology*; a task is one sub-topology on one partition number, and reads that partition
//! of each of the sub-topology's source topics — so they must have the same number of
//! partitions (*co-partitioning*), which is what makes a stream–table join see the table rows
//! of its keys.

use crate::record::Record;
use crate::window::Windows;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) type MapFn = Arc<dyn Fn(Record) -> Record + Send + Sync>;
pub(crate) type FlatMapFn = Arc<dyn Fn(Record) -> Vec<Record> + Send + Sync>;
pub(crate) type Pred = Arc<dyn Fn(&Record) -> bool + Send + Sync>;
pub(crate) type InitFn = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;
/// (key, the new record, the aggregate so far) → the new aggregate.
pub(crate) type AggFn = Arc<dyn Fn(&[u8], &Record, Vec<u8>) -> Vec<u8> + Send + Sync>;
/// (the stream record, the table's value for its key, if any) → the joined value, or none.
pub(crate) type JoinFn = Arc<dyn Fn(&Record, Option<&[u8]>) -> Option<Vec<u8>> + Send + Sync>;

pub(crate) enum Op {
    /// Records of a topic enter here.
    Source {
        topic: String,
    },
    /// A table: the topic's latest value per key, kept in `store`, and its changes forwarded.
    TableSource {
        topic: String,
        store: String,
    },
    Map(MapFn),
    Filter(Pred),
    FlatMap(FlatMapFn),
    /// Each record goes to the child of the first predicate it satisfies, or nowhere.
    Branch(Vec<Pred>),
    /// Forwards as is (the head of one branch).
    Pass,
    /// Fold the records of each key (and window) into the value kept in `store`.
    Aggregate {
        store: String,
        windows: Option<Windows>,
        init: InitFn,
        agg: AggFn,
    },
    /// Stream–table join against the table kept in `store`; `left` keeps records whose key
    /// the table lacks.
    Join {
        store: String,
        joiner: JoinFn,
        left: bool,
    },
    /// Produce to `topic`: an output, or an internal repartition topic.
    Sink {
        topic: String,
        repartition: bool,
    },
}

pub(crate) struct Node {
    pub op: Op,
    pub children: Vec<usize>,
}

/// An internal topic the application needs before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InternalTopic {
    pub name: String,
    /// Changelogs are compacted (`cleanup.policy=compact`): the latest value per key is the
    /// store. Repartition topics are not.
    pub compacted: bool,
    /// It gets as many partitions as the sources of this sub-topology have: the one it feeds
    /// (repartition) or the one whose store it backs (changelog).
    pub partitions_like: usize,
}

pub struct Topology {
    pub(crate) app_id: String,
    pub(crate) nodes: Vec<Node>,
    /// Each node's sub-topology.
    pub(crate) sub_of: Vec<usize>,
    /// Per sub-topology, its source topics.
    pub(crate) sources: Vec<Vec<String>>,
    /// store name → (sub-topology, windowed?)
    pub(crate) stores: BTreeMap<String, (usize, bool)>,
}

impl std::fmt::Debug for Topology {
    /// Kafka's `Topology#describe`, in short: each sub-topology's source topics and stores.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, topics) in self.sources.iter().enumerate() {
            writeln!(
                f,
                "sub-topology {i}: reads {topics:?}, stores {:?}",
                self.stores_of(i)
            )?;
        }
        Ok(())
    }
}

impl Topology {
    pub(crate) fn new(app_id: String, nodes: Vec<Node>) -> Result<Topology, String> {
        assert!(
            !app_id.is_empty(),
            "an application id is checked by the builder"
        );
        // Union-find over parent→child edges and join→table edges.
        let mut parent: Vec<usize> = (0..nodes.len()).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                p[x] = p[p[x]];
                x = p[x];
            }
            x
        }
        let mut table_of: BTreeMap<String, usize> = BTreeMap::new();
        for (i, n) in nodes.iter().enumerate() {
            if let Op::TableSource { store, .. } = &n.op {
                table_of.insert(store.clone(), i);
            }
        }
        let union = |p: &mut Vec<usize>, a: usize, b: usize| {
            let (ra, rb) = (find(p, a), find(p, b));
            p[ra] = rb;
        };
        for (i, n) in nodes.iter().enumerate() {
            for &c in &n.children {
                union(&mut parent, i, c);
            }
            if let Op::Join { store, .. } = &n.op {
                let Some(&t) = table_of.get(store) else {
                    return Err(format!("join with store {store}, which no table keeps"));
                };
                union(&mut parent, i, t);
            }
        }
        let mut ids: BTreeMap<usize, usize> = BTreeMap::new();
        let mut sub_of = Vec::with_capacity(nodes.len());
        for i in 0..nodes.len() {
            let root = find(&mut parent, i);
            let next = ids.len();
            sub_of.push(*ids.entry(root).or_insert(next));
        }
        let mut sources = vec![Vec::new(); ids.len()];
        let mut stores = BTreeMap::new();
        let mut read_by: BTreeMap<String, usize> = BTreeMap::new();
        for (i, n) in nodes.iter().enumerate() {
            match &n.op {
                Op::Source { topic } | Op::TableSource { topic, .. } => {
                    if let Some(&other) = read_by.get(topic) {
                        if other != sub_of[i] {
                            return Err(format!("topic {topic} is read by two sub-topologies"));
                        }
                    }
                    read_by.insert(topic.clone(), sub_of[i]);
                    if !sources[sub_of[i]].contains(topic) {
                        sources[sub_of[i]].push(topic.clone());
                    }
                }
                _ => {}
            }
            let store = match &n.op {
                Op::TableSource { store, .. } => Some((store, false)),
                Op::Aggregate { store, windows, .. } => Some((store, windows.is_some())),
                _ => None,
            };
            if let Some((store, windowed)) = store {
                if stores
                    .insert(store.clone(), (sub_of[i], windowed))
                    .is_some()
                {
                    return Err(format!("two stores are named {store}"));
                }
            }
        }
        if let Some(empty) = sources.iter().position(Vec::is_empty) {
            return Err(format!("sub-topology {empty} reads no topic"));
        }
        Ok(Topology {
            app_id,
            nodes,
            sub_of,
            sources,
            stores,
        })
    }

    pub fn application_id(&self) -> &str {
        &self.app_id
    }

    pub fn subtopologies(&self) -> usize {
        self.sources.len()
    }

    /// The topics sub-topology `sub` reads.
    pub fn source_topics(&self, sub: usize) -> &[String] {
        &self.sources[sub]
    }

    /// Every topic the application reads: what its consumer subscribes to.
    pub fn all_source_topics(&self) -> Vec<String> {
        self.sources.iter().flatten().cloned().collect()
    }

    /// Whether `topic` is one of the application's repartition topics.
    pub fn is_repartition_topic(&self, topic: &str) -> bool {
        self.nodes
            .iter()
            .any(|n| matches!(&n.op, Op::Sink { topic: t, repartition: true } if t == topic))
    }

    /// The sub-topology reading `topic`, if any.
    pub fn subtopology_reading(&self, topic: &str) -> Option<usize> {
        self.sources
            .iter()
            .position(|s| s.iter().any(|t| t == topic))
    }

    /// A store's changelog topic: `<application.id>-<store>-changelog`, as Kafka names it.
    pub fn changelog_topic(&self, store: &str) -> String {
        format!("{}-{store}-changelog", self.app_id)
    }

    /// The stores of sub-topology `sub`.
    pub fn stores_of(&self, sub: usize) -> Vec<String> {
        self.stores
            .iter()
            .filter(|(_, (s, _))| *s == sub)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The internal topics to create: repartition topics and changelogs.
    pub fn internal_topics(&self) -> Vec<InternalTopic> {
        let mut out = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if let Op::Sink {
                topic,
                repartition: true,
            } = &n.op
            {
                let writer = self.sub_of[i];
                out.push(InternalTopic {
                    name: topic.clone(),
                    compacted: false,
                    partitions_like: self.counted_by(writer),
                });
            }
        }
        for (store, (sub, _)) in &self.stores {
            out.push(InternalTopic {
                name: self.changelog_topic(store),
                compacted: true,
                partitions_like: self.counted_by(*sub),
            });
        }
        out
    }

    /// The sub-topology whose external source topics give `sub` its partition count: `sub`
    /// itself, or, when it reads only a repartition topic, the one writing that topic (as
    /// Kafka sizes a repartition topic like its upstream sources).
    pub fn counted_by(&self, sub: usize) -> usize {
        let mut at = sub;
        for _ in 0..=self.sources.len() {
            if !self.external_sources(at).is_empty() {
                return at;
            }
            let topic = &self.sources[at][0];
            at = self
                .nodes
                .iter()
                .enumerate()
                .find(|(_, n)| matches!(&n.op, Op::Sink { topic: t, repartition: true } if t == topic))
                .map(|(i, _)| self.sub_of[i])
                .expect("a repartition topic has a writer");
        }
        unreachable!("repartition topics form no cycle: each feeds a new sub-topology")
    }

    /// The topics sub-topology `sub` reads that no sub-topology of this application writes:
    /// they must exist, with one partition count, before the application starts.
    pub fn external_sources(&self, sub: usize) -> Vec<String> {
        let repartition = |t: &String| {
            self.nodes
                .iter()
                .any(|n| matches!(&n.op, Op::Sink { topic, repartition: true } if topic == t))
        };
        self.sources[sub]
            .iter()
            .filter(|t| !repartition(t))
            .cloned()
            .collect()
    }
}
