//! Prometheus metrics: what an operator watches (issue 13).
//!
//! The registry and the text exposition are the `prometheus-client` crate's (the Prometheus
//! project's own Rust client); gregor only decides what to count. Names follow Prometheus'
//! conventions (`_total` counters, `_seconds` and `_bytes` units), and docs/metrics.md maps each
//! one to the Kafka JMX metric an operator would know.
//!
//! Two kinds of figures:
//! * **Counted as they happen** by the driver, where requests and responses cross it: requests
//!   per API and their latency, bytes and records in and out per topic, connections, fsyncs
//!   and their latency, storage errors.
//! * **Read at scrape time** from the core's views (`Broker::partition_views`,
//!   `Broker::group_views`, the purgatory sizes): offsets, sizes, consumer lag, members,
//!   waiting requests. Prometheus pulls, so these cost nothing between scrapes.
//!
//! The driver owns [`Metrics`]; a scrape reaches it as an event and gets the encoded text back,
//! so the broker's state is read by the one task that owns it, with no lock.

use bytes::Bytes;
use gregor_core::kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use gregor_core::{Broker, ConnId};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashMap;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub api: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupStateLabels {
    pub group: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LagLabels {
    pub group: String,
    pub topic: String,
    pub partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: String,
}

/// Latency buckets from 100 µs to about 3.3 s, doubling: an fsync on this machine's disk is
/// ~0.2 ms, a long-polled fetch waits up to `fetch.max.wait.ms` (500 ms by default).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// What a request in flight needs when its response leaves: the API it was, when it arrived,
/// and for a produce the bytes and records it carried per topic (counted in only if the
/// partition's answer is not an error).
struct InFlight {
    api_key: i16,
    since: Instant,
    produced: Vec<(String, i32, u64, u64)>,
}

/// Every metric, registered once at start.
pub struct Metrics {
    registry: Registry,
    in_flight: HashMap<(ConnId, i32), InFlight>,
    /// Label sets made once per API and topic, so counting allocates nothing per request.
    api_labels: HashMap<i16, ApiLabels>,
    topic_labels: HashMap<String, TopicLabels>,
    requests: Family<ApiLabels, Counter>,
    request_seconds: Family<ApiLabels, Histogram, fn() -> Histogram>,
    bytes_in: Family<TopicLabels, Counter>,
    records_in: Family<TopicLabels, Counter>,
    bytes_out: Family<TopicLabels, Counter>,
    records_out: Family<TopicLabels, Counter>,
    /// Shared with the accept loop, which opens and refuses connections on its own task.
    pub connections: ConnectionMetrics,
    fsync_seconds: Histogram,
    storage_errors: Family<OpLabels, Counter>,
    delayed_produces: Gauge,
    delayed_fetches: Gauge,
    log_start: Family<PartitionLabels, Gauge>,
    log_end: Family<PartitionLabels, Gauge>,
    high_watermark: Family<PartitionLabels, Gauge>,
    size: Family<PartitionLabels, Gauge>,
    offline: Family<PartitionLabels, Gauge>,
    group_members: Family<GroupLabels, Gauge>,
    group_state: Family<GroupStateLabels, Gauge>,
    group_lag: Family<LagLabels, Gauge>,
    cluster: ClusterMetrics,
    /// Shared with the replica fetcher's link tasks.
    pub replica_fetch: ReplicaFetchMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    pub node: String,
}

/// A cluster's own figures (issue 13), for a node in KRaft mode: the controller's state and
/// the metadata log's progress (from the quorum driver, [`publish_quorum`]), and the brokers
/// and offline partitions of the committed metadata image the broker serves.
#[derive(Clone, Default)]
struct ClusterMetrics {
    active: Gauge,
    epoch: Gauge,
    log_end: Gauge,
    high_watermark: Gauge,
    replica_log_end: Family<NodeLabels, Gauge>,
    replica_lag: Family<NodeLabels, Gauge>,
    registered: Gauge,
    fenced: Gauge,
    offline_partitions: Gauge,
}

/// The metadata quorum as this node's driver last saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumFigures {
    /// Whether this node is the active controller (it leads the quorum).
    pub active: bool,
    pub epoch: i64,
    /// This node's metadata log end offset and high watermark.
    pub log_end: i64,
    pub high_watermark: i64,
    /// As the leader knows them: each voter's and observer's (node, log end, lag behind the
    /// leader's log end). Empty on a node that does not lead.
    pub replicas: Vec<(i32, i64, i64)>,
}

/// The quorum driver and the broker task that answers scrapes are separate tasks of one
/// process (one node per process), so the driver leaves its figures here after each step it
/// takes, and a scrape copies them. `None` until the driver's first step, and always in
/// standalone mode.
static QUORUM: std::sync::Mutex<Option<QuorumFigures>> = std::sync::Mutex::new(None);

/// Publish the quorum's figures (called by the quorum driver as its state moves).
pub fn publish_quorum(figures: QuorumFigures) {
    *QUORUM.lock().expect("not poisoned") = Some(figures);
}

/// The figures from a quorum status: `log_end` is this node's log end offset.
pub fn quorum_figures(
    status: &gregor_core::raft::wire::QuorumStatus,
    active: bool,
    log_end: i64,
) -> QuorumFigures {
    let leader_end = if active { log_end } else { -1 };
    let replicas = status
        .voters
        .iter()
        .chain(&status.observers)
        .map(|r| {
            let lag = if r.log_end_offset < 0 {
                -1
            } else {
                (leader_end - r.log_end_offset).max(0)
            };
            (r.id.0, r.log_end_offset, lag)
        })
        .collect();
    QuorumFigures {
        active,
        epoch: status.epoch.0.into(),
        log_end,
        high_watermark: status.high_watermark,
        replicas,
    }
}

/// Registered brokers, fenced brokers, and partitions without a leader in `image`.
fn image_figures(image: &gregor_core::cluster::MetadataImage) -> (i64, i64, i64) {
    let brokers = image.brokers().values();
    let fenced = brokers.clone().filter(|b| b.fenced).count() as i64;
    let offline = image
        .topics()
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.leader.is_none())
        .count() as i64;
    (image.brokers().len() as i64, fenced, offline)
}

impl ClusterMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "controller_active",
            "1 if this node is the active controller (leads the metadata quorum)",
            self.active.clone(),
        );
        r.register(
            "metadata_epoch",
            "The metadata quorum's epoch as this node knows it",
            self.epoch.clone(),
        );
        r.register(
            "metadata_log_end_offset",
            "This node's metadata log end offset",
            self.log_end.clone(),
        );
        r.register(
            "metadata_high_watermark",
            "The metadata log's high watermark (committed) as this node knows it",
            self.high_watermark.clone(),
        );
        r.register(
            "metadata_replica_log_end_offset",
            "Each metadata log replica's log end offset, as the active controller knows it",
            self.replica_log_end.clone(),
        );
        r.register(
            "metadata_replica_lag",
            "Each metadata log replica's lag behind the active controller's log end (records)",
            self.replica_lag.clone(),
        );
        r.register(
            "cluster_brokers_registered",
            "Brokers registered in the committed metadata image",
            self.registered.clone(),
        );
        r.register(
            "cluster_brokers_fenced",
            "Registered brokers fenced (no session, or not caught up)",
            self.fenced.clone(),
        );
        r.register(
            "cluster_offline_partitions",
            "Partitions of the cluster with no leader, in the committed metadata image",
            self.offline_partitions.clone(),
        );
    }

    /// Read the driver's figures and the broker's image into the gauges. Nothing is exposed
    /// for what a node does not have (a standalone broker has neither).
    fn scrape(&self, broker: &Broker) {
        self.replica_log_end.clear();
        self.replica_lag.clear();
        if let Some(q) = QUORUM.lock().expect("not poisoned").clone() {
            self.active.set(q.active as i64);
            self.epoch.set(q.epoch);
            self.log_end.set(q.log_end);
            self.high_watermark.set(q.high_watermark);
            for (node, end, lag) in q.replicas {
                let l = NodeLabels {
                    node: node.to_string(),
                };
                self.replica_log_end.get_or_create(&l).set(end);
                self.replica_lag.get_or_create(&l).set(lag);
            }
        }
        if let Some(image) = broker.metadata_image() {
            let (registered, fenced, offline) = image_figures(image);
            self.registered.set(registered);
            self.fenced.set(fenced);
            self.offline_partitions.set(offline);
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaderLabels {
    /// The broker fetched from (Kafka labels its fetcher metrics by the source broker too).
    pub leader: String,
}

/// The replica fetcher's counters (Kafka's `FetcherStats`: `RequestsPerSec` and `BytesPerSec`
/// per source broker, and failed fetches), per leader fetched from. Shared with the links'
/// tasks (`replica_fetcher.rs`), which count as their answers arrive.
#[derive(Clone, Default)]
pub struct ReplicaFetchMetrics {
    requests: Family<LeaderLabels, Counter>,
    errors: Family<LeaderLabels, Counter>,
    bytes: Family<LeaderLabels, Counter>,
}

impl ReplicaFetchMetrics {
    fn labels(leader: gregor_core::cluster::BrokerId) -> LeaderLabels {
        LeaderLabels {
            leader: leader.0.to_string(),
        }
    }
    /// Fetches sent to (or meant for) `leader`.
    pub fn requests(&self, leader: gregor_core::cluster::BrokerId) -> Counter {
        self.requests.get_or_create(&Self::labels(leader)).clone()
    }
    /// Fetches from `leader` answered with an error instead of a response.
    pub fn errors(&self, leader: gregor_core::cluster::BrokerId) -> Counter {
        self.errors.get_or_create(&Self::labels(leader)).clone()
    }
    /// Response bytes read from `leader`, frame prefix included.
    pub fn bytes(&self, leader: gregor_core::cluster::BrokerId) -> Counter {
        self.bytes.get_or_create(&Self::labels(leader)).clone()
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            "replica_fetch_requests",
            "Fetch requests this broker sent as a follower, by leader (Kafka FetcherStats RequestsPerSec)",
            self.requests.clone(),
        );
        r.register(
            "replica_fetch_errors",
            "Follower fetches that got no response (no endpoint, connection refused or lost, timeout, bad frame), by leader",
            self.errors.clone(),
        );
        r.register_with_unit(
            "replica_fetch",
            "Response bytes this broker read as a follower, by leader (Kafka FetcherStats BytesPerSec)",
            Unit::Bytes,
            self.bytes.clone(),
        );
    }
}

/// Connection counters, updated from the accept loop and the driver.
#[derive(Clone, Default)]
pub struct ConnectionMetrics {
    pub open: Gauge,
    pub opened: Counter,
    pub refused: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gregor");
        let m = Metrics {
            registry: Registry::default(),
            in_flight: HashMap::new(),
            api_labels: HashMap::new(),
            topic_labels: HashMap::new(),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            bytes_in: Family::default(),
            records_in: Family::default(),
            bytes_out: Family::default(),
            records_out: Family::default(),
            connections: ConnectionMetrics::default(),
            fsync_seconds: latency_histogram(),
            storage_errors: Family::default(),
            delayed_produces: Gauge::default(),
            delayed_fetches: Gauge::default(),
            log_start: Family::default(),
            log_end: Family::default(),
            high_watermark: Family::default(),
            size: Family::default(),
            offline: Family::default(),
            group_members: Family::default(),
            group_state: Family::default(),
            group_lag: Family::default(),
            cluster: ClusterMetrics::default(),
            replica_fetch: ReplicaFetchMetrics::default(),
        };
        let r = &mut registry;
        m.cluster.register(r);
        m.replica_fetch.register(r);
        r.register("requests", "Requests answered, by API", m.requests.clone());
        r.register_with_unit(
            "request",
            "Time from a request's arrival at the broker task to its response, by API",
            Unit::Seconds,
            m.request_seconds.clone(),
        );
        r.register_with_unit(
            "topic_in",
            "Record-batch bytes appended to a topic by producers",
            Unit::Bytes,
            m.bytes_in.clone(),
        );
        r.register(
            "topic_records_in",
            "Records appended to a topic by producers",
            m.records_in.clone(),
        );
        r.register_with_unit(
            "topic_out",
            "Record-batch bytes sent to consumers of a topic",
            Unit::Bytes,
            m.bytes_out.clone(),
        );
        r.register(
            "topic_records_out",
            "Records sent to consumers of a topic",
            m.records_out.clone(),
        );
        r.register(
            "connections_open",
            "Client connections open now",
            m.connections.open.clone(),
        );
        r.register(
            "connections_opened",
            "Client connections accepted",
            m.connections.opened.clone(),
        );
        r.register(
            "connections_refused",
            "Client connections refused because connections_max were open",
            m.connections.refused.clone(),
        );
        r.register_with_unit(
            "fsync",
            "Time an fsync (fdatasync) of a segment file took",
            Unit::Seconds,
            m.fsync_seconds.clone(),
        );
        r.register(
            "storage_errors",
            "Storage operations that failed (the partition goes offline or the write is cut back)",
            m.storage_errors.clone(),
        );
        r.register(
            "delayed_produces",
            "Produce requests waiting for their records to become durable (acks)",
            m.delayed_produces.clone(),
        );
        r.register(
            "delayed_fetches",
            "Fetch requests parked until data arrives or max_wait_ms passes",
            m.delayed_fetches.clone(),
        );
        r.register(
            "partition_log_start_offset",
            "First offset still in the partition's log",
            m.log_start.clone(),
        );
        r.register(
            "partition_log_end_offset",
            "Offset the next record appended to the partition will get",
            m.log_end.clone(),
        );
        r.register(
            "partition_high_watermark",
            "Offset below which consumers may read (durable under group commit)",
            m.high_watermark.clone(),
        );
        r.register_with_unit(
            "partition_size",
            "Bytes of the partition's segment files",
            Unit::Bytes,
            m.size.clone(),
        );
        r.register(
            "partition_offline",
            "1 if the partition is offline after a storage failure",
            m.offline.clone(),
        );
        r.register(
            "group_members",
            "Members of a consumer group",
            m.group_members.clone(),
        );
        r.register(
            "group_state",
            "1 for the consumer group's current state",
            m.group_state.clone(),
        );
        r.register(
            "group_lag",
            "High watermark minus the group's committed offset, per partition (records)",
            m.group_lag.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A request reached the broker task.
    pub fn on_request(
        &mut self,
        conn: ConnId,
        correlation_id: i32,
        api_key: i16,
        body: &RequestKind,
    ) {
        let mut produced = Vec::new();
        if let RequestKind::Produce(p) = body {
            for t in &p.topic_data {
                for d in &t.partition_data {
                    let Some(records) = &d.records else { continue };
                    produced.push((
                        t.name.to_string(),
                        d.index,
                        records.len() as u64,
                        record_count(records),
                    ));
                }
            }
            if p.acks == 0 {
                // No response will come (acks=0): count what arrived, and the request, now;
                // nothing waits in `in_flight` for an answer that never leaves.
                for (topic, _, bytes, records) in produced {
                    self.count_in(&topic, bytes, records);
                }
                let labels = api_labels(&mut self.api_labels, api_key);
                self.requests.get_or_create(labels).inc();
                return;
            }
        }
        self.in_flight.insert(
            (conn, correlation_id),
            InFlight {
                api_key,
                since: Instant::now(),
                produced,
            },
        );
    }

    /// A response leaves for its connection.
    pub fn on_response(&mut self, conn: ConnId, correlation_id: i32, body: &ResponseKind) {
        let Some(f) = self.in_flight.remove(&(conn, correlation_id)) else {
            return;
        };
        let labels = api_labels(&mut self.api_labels, f.api_key);
        self.requests.get_or_create(labels).inc();
        self.request_seconds
            .get_or_create(labels)
            .observe(f.since.elapsed().as_secs_f64());
        match body {
            ResponseKind::Produce(r) => {
                for (topic, partition, bytes, records) in f.produced {
                    let ok = r.responses.iter().any(|t| {
                        t.name.as_str() == topic
                            && t.partition_responses
                                .iter()
                                .any(|p| p.index == partition && p.error_code == 0)
                    });
                    if ok {
                        self.count_in(&topic, bytes, records);
                    }
                }
            }
            ResponseKind::Fetch(r) => {
                for t in &r.responses {
                    let labels = topic_labels(&mut self.topic_labels, t.topic.as_str());
                    for p in &t.partitions {
                        if let Some(records) = &p.records {
                            if records.is_empty() {
                                continue;
                            }
                            self.bytes_out
                                .get_or_create(labels)
                                .inc_by(records.len() as u64);
                            self.records_out
                                .get_or_create(labels)
                                .inc_by(record_count(records));
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A connection is gone: requests it had in flight get no response.
    pub fn on_closed(&mut self, conn: ConnId) {
        self.in_flight.retain(|(c, _), _| *c != conn);
        self.connections.open.dec();
    }

    pub fn on_fsync(&self, took: std::time::Duration) {
        self.fsync_seconds.observe(took.as_secs_f64());
    }

    pub fn on_storage_error(&self, op: &str) {
        self.storage_errors
            .get_or_create(&OpLabels { op: op.into() })
            .inc();
    }

    fn count_in(&mut self, topic: &str, bytes: u64, records: u64) {
        let labels = topic_labels(&mut self.topic_labels, topic);
        self.bytes_in.get_or_create(labels).inc_by(bytes);
        self.records_in.get_or_create(labels).inc_by(records);
    }

    /// Read the broker's views into the gauges and encode every metric in Prometheus' text
    /// format (OpenMetrics 1.0, which Prometheus and its clients parse).
    pub fn scrape(&self, broker: &Broker) -> String {
        self.delayed_produces.set(broker.delayed_produces() as i64);
        self.delayed_fetches.set(broker.delayed_fetches() as i64);
        // Cleared first, so deleted topics and groups disappear from the exposition.
        for f in [
            &self.log_start,
            &self.log_end,
            &self.high_watermark,
            &self.size,
            &self.offline,
        ] {
            f.clear();
        }
        for p in broker.partition_views() {
            let l = PartitionLabels {
                topic: p.topic,
                partition: p.partition.to_string(),
            };
            self.log_start.get_or_create(&l).set(p.log_start_offset);
            self.log_end.get_or_create(&l).set(p.log_end_offset);
            self.high_watermark.get_or_create(&l).set(p.high_watermark);
            self.size
                .get_or_create(&l)
                .set(i64::try_from(p.size_bytes).unwrap_or(i64::MAX));
            self.offline.get_or_create(&l).set(p.offline as i64);
        }
        self.group_members.clear();
        self.group_state.clear();
        self.group_lag.clear();
        for g in broker.group_views() {
            self.group_members
                .get_or_create(&GroupLabels {
                    group: g.group.clone(),
                })
                .set(g.members as i64);
            self.group_state
                .get_or_create(&GroupStateLabels {
                    group: g.group.clone(),
                    state: g.state.clone(),
                })
                .set(1);
            for (topic, partition, _committed, lag) in g.offsets {
                self.group_lag
                    .get_or_create(&LagLabels {
                        group: g.group.clone(),
                        topic,
                        partition: partition.to_string(),
                    })
                    .set(lag);
            }
        }
        self.cluster.scrape(broker);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The records in a produce's or fetch's record data: the sum of its batches' record counts,
/// read from each batch header without decompressing (a v2 batch header carries the count).
fn record_count(records: &Bytes) -> u64 {
    let mut total = 0u64;
    let mut rest = &records[..];
    // A v2 batch: base offset (8), length (4), then `length` bytes; the record count is the
    // last 4 bytes of the 61-byte header.
    while rest.len() >= 61 {
        let len = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes")) as usize;
        let count = i32::from_be_bytes(rest[57..61].try_into().expect("4 bytes"));
        total += count.max(0) as u64;
        let Some(next) = rest.get(12 + len..) else {
            break;
        };
        rest = next;
    }
    total
}

/// The label set of an API, named as Kafka names it (`Produce`, `Fetch`), made on first use.
fn api_labels(cache: &mut HashMap<i16, ApiLabels>, key: i16) -> &ApiLabels {
    cache.entry(key).or_insert_with(|| ApiLabels {
        api: ApiKey::try_from(key).map_or("Unknown".into(), |k| format!("{k:?}")),
    })
}

/// The label set of a topic, made on first use.
fn topic_labels<'a>(cache: &'a mut HashMap<String, TopicLabels>, topic: &str) -> &'a TopicLabels {
    if !cache.contains_key(topic) {
        let labels = TopicLabels {
            topic: topic.to_string(),
        };
        cache.insert(topic.to_string(), labels);
    }
    &cache[topic]
}

/// The `/metrics` endpoint: an HTTP/1.1 server (hyper) on its own listener
/// (`--metrics-listen`), as Kafka's JMX exporters and Redpanda's `/public_metrics` are apart
/// from the Kafka port. Each scrape asks the broker task for the text and waits for it.
#[cfg(not(madsim))]
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    events: tokio::sync::mpsc::UnboundedSender<crate::event::Event>,
) {
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper::{Request, Response, StatusCode};
    use hyper_util::rt::TokioIo;

    async fn answer(
        req: Request<Incoming>,
        events: tokio::sync::mpsc::UnboundedSender<crate::event::Event>,
    ) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
        let reply = |status: StatusCode, content_type: &str, body: String| {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            *r.status_mut() = status;
            if let Ok(v) = content_type.parse() {
                r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
            }
            Ok(r)
        };
        if req.uri().path() != "/metrics" {
            return reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "gregor serves its metrics at /metrics\n".into(),
            );
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if events
            .send(crate::event::Event::Scrape { reply: tx })
            .is_err()
        {
            return reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "shutting down\n".into(),
            );
        }
        match rx.await {
            Ok(text) => reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            ),
            Err(_) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "shutting down\n".into(),
            ),
        }
    }

    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let events = events.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(req, events.clone()));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "metrics connection ended");
            }
        });
    }
}
