//! Read-only views of the broker for operators: what the metrics endpoint shows.
//!
//! Nothing here changes state, and nothing in the core depends on it: the driver reads these
//! views when it is scraped (Prometheus pulls; the broker never pushes), so metrics cost nothing
//! between scrapes. Traffic counters (bytes and records in and out, requests and their latency)
//! are the driver's, counted where requests and responses cross it; what only the core knows
//! (waiting requests, offsets, consumer lag) is here.

use super::Broker;

/// One partition as an operator watches it (Kafka's `kafka.log:type=Log` and
/// `kafka.cluster:type=Partition` MBeans).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    /// Offline after a storage failure (Kafka: the log directory failed).
    pub offline: bool,
}

/// One consumer group: its state, members, and per partition its committed offset and lag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    pub group: String,
    pub state: String,
    pub members: usize,
    /// (topic, partition, committed offset, lag): lag is the high watermark (what a consumer
    /// can read) minus the committed offset, never negative; what `kafka-consumer-groups
    /// --describe` shows as LAG.
    pub offsets: Vec<(String, i32, i64, i64)>,
}

impl Broker {
    /// Every partition of every topic, internal topics included.
    pub fn partition_views(&self) -> Vec<PartitionView> {
        let mut out = Vec::new();
        for (name, t) in self.topics() {
            for (i, p) in t.partitions.iter().enumerate() {
                let view = PartitionView {
                    topic: name.clone(),
                    partition: i as i32,
                    log_start_offset: p.log.log_start_offset(),
                    log_end_offset: p.log.log_end_offset(),
                    high_watermark: p.high_watermark,
                    size_bytes: p.log.size_bytes(),
                    offline: p.offline.is_some(),
                };
                assert!(
                    view.offline || view.high_watermark <= view.log_end_offset,
                    "{name}-{i}: the high watermark passes the log end"
                );
                out.push(view);
            }
        }
        out
    }

    /// Every group the coordinator knows, with the offsets it has committed.
    pub fn group_views(&self) -> Vec<GroupView> {
        let c = &self.coordinator;
        let mut names: Vec<&crate::ids::GroupId> =
            c.groups.keys().chain(c.offsets.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|g| {
                let group = c.groups.get(g);
                let offsets = c
                    .offsets
                    .get(g)
                    .into_iter()
                    .flatten()
                    .map(|(tp, v)| {
                        let partition = tp.partition.get();
                        let hw = self
                            .partition(&tp.topic, partition)
                            .map_or(v.offset, |p| p.high_watermark);
                        let lag = (hw - v.offset).max(0);
                        assert!(lag >= 0);
                        (tp.topic.clone(), partition, v.offset, lag)
                    })
                    .collect();
                GroupView {
                    group: g.as_str().to_string(),
                    state: group.map_or("Empty".into(), |g| format!("{:?}", g.state)),
                    members: group.map_or(0, |g| g.members.len()),
                    offsets,
                }
            })
            .collect()
    }

    /// Produce requests waiting for acknowledgement (acks=all under group commit: until the
    /// fsync; Kafka's `DelayedProduce` purgatory size).
    pub fn delayed_produces(&self) -> usize {
        self.produce_waits.len()
    }

    /// Fetch requests parked until data arrives or `max_wait_ms` passes (long polling; Kafka's
    /// `DelayedFetch` purgatory size).
    pub fn delayed_fetches(&self) -> usize {
        self.fetch_waits.len()
    }
}
