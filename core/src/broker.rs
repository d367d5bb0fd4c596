//! The broker: one state machine behind one front door.
//!
//! ```text
//!            Input (with now)                      Output
//!  driver ───────────────────▶ Broker::handle ──▶ poll_output() ──▶ driver
//!    ▲                              │                               │
//!    └──────── poll_timeout() ◀─────┘   responses, storage requests ┘
//! ```
//!
//! The calling contract, for every driver:
//! 1. call [`Broker::handle`] with one [`Input`];
//! 2. drain [`Broker::poll_output`] until it returns `None`, carrying out each output;
//! 3. ask [`Broker::poll_timeout`] when to call again with [`Input::Tick`] if nothing else
//!    happens first.
//!
//! After every input the broker runs [`Broker::invariants`], in release builds too.
//!
//! ## How a produce travels (acks = 1 or all)
//! 1. `Input::Request` with a Produce: each partition's batch is checked (header, CRC, size,
//!    idempotent sequence), given its offsets by rewriting `baseOffset`, and indexed in memory.
//! 2. The write leaves as `Output::Storage(Append)`; under the group-commit policy an
//!    `Output::Storage(Sync)` follows, covering every batch appended since the last sync.
//! 3. `Input::StorageDone` for the write, then for the sync, advances the partition's written
//!    and durable ends; the high watermark follows the end the policy promises.
//! 4. Once the high watermark covers the batch, the produce response is released, in request
//!    order for its connection, and parked fetches waiting for data wake up.
//!
//! "Persist before acknowledge" is therefore data: a response waits on offsets, and offsets only
//! become acknowledged through storage completions.

use crate::batch::{self, BatchError, BatchHeader};
use crate::config::{Config, ConfigError, Durability};
use crate::error::*;
use crate::files::{BrokerMeta, PartitionMeta, Recovered, TopicSettings};
use crate::group::Coordinator;
use crate::io::{
    ConnId, Input, LogLevel, OpId, Output, PartitionDir, Request, StorageFault, StorageReply,
    StorageRequest,
};
use crate::log::{PartitionLog, ReadPlan, RollPolicy};
use crate::prng::Prng;
use crate::producer::{ProducerStates, SequenceCheck};
use crate::time::{Duration, Instant};
use crate::wire::SUPPORTED;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use uuid::Uuid;

/// How often retention is checked (Kafka `log.retention.check.interval.ms` defaults to 5 min).
const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// Producer ids are reserved in blocks; `broker.meta` records the end of the current block
/// before any id from it is handed out, so a restart never reuses one.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Where an internal write ended: (topic, topic id, partition, end offset, the partition's
/// generation then: see `Partition::generation`). A response that
/// reveals state derived from that write waits until it is durable.
pub(crate) type WriteMark = (String, [u8; 16], i32, i64, u64);

/// One partition's replica on this broker (with one broker, always the leader).
#[derive(Debug)]
pub struct Partition {
    pub log: PartitionLog,
    pub producers: ProducerStates,
    /// Every offset below this has been written (the write completed).
    pub written_end: i64,
    /// Every offset below this has been synced to stable storage.
    pub durable_end: i64,
    /// Consumers read below this; acks wait for it. Never moves backwards.
    pub high_watermark: i64,
    /// Bumped when the log is cut after a failed write; completions from before are stale.
    generation: u64,
    /// `cuts[g]`: where the log was cut back to when generation `g` ended. A write made in
    /// generation `g` ending at `end` survived iff every cut since left it whole.
    cuts: Vec<i64>,
    sync: Option<SyncInFlight>,
    /// Syncs issued so far: each sync's number, so a completion is matched to its own sync. (A
    /// late completion taken for a later sync's would move the high watermark past unsynced
    /// data: found by simulator seed 528.)
    syncs_issued: u64,
    /// The log end offset the last sync issued covers.
    sync_requested_end: i64,
    /// Since when records have been waiting for a sync (the interval policy).
    unsynced_since: Option<Instant>,
    /// Set when the partition's storage failed in a way it cannot recover from while running
    /// (a failed fsync: the page cache can no longer be trusted). Cleared by a restart.
    pub offline: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct SyncInFlight {
    id: u64,
    remaining: usize,
    covers_end: i64,
}

impl Partition {
    fn new(log: PartitionLog, producers: ProducerStates) -> Partition {
        let end = log.log_end_offset();
        Partition {
            log,
            producers,
            written_end: end,
            durable_end: end,
            high_watermark: end,
            generation: 0,
            cuts: Vec::new(),
            sync: None,
            syncs_issued: 0,
            sync_requested_end: end,
            unsynced_since: None,
            offline: None,
        }
    }

    /// Whether a write made in generation `generation`, ending at `end`, is still in the log:
    /// no failed write since cut the log below its end.
    fn write_survives(&self, end: i64, generation: u64) -> bool {
        self.cuts
            .get(generation as usize..)
            .is_some_and(|cuts| cuts.iter().all(|&keep| keep >= end))
    }

    /// The end offset that the durability policy lets the broker acknowledge and expose.
    fn ack_end(&self, durability: Durability) -> i64 {
        match durability {
            Durability::GroupCommit => self.durable_end.min(self.written_end),
            Durability::None | Durability::Interval { .. } => self.written_end,
        }
    }
}

#[derive(Debug)]
pub struct Topic {
    pub id: [u8; 16],
    pub settings: TopicSettings,
    pub partitions: Vec<Partition>,
    /// Internal topics (the offsets log) are hidden from clients' produce and listings.
    pub internal: bool,
}

/// What a storage operation was for, so its completion can be applied.
#[derive(Debug, Clone)]
enum OpPurpose {
    Append {
        topic: String,
        topic_id: [u8; 16],
        partition: i32,
        end: i64,
        generation: u64,
    },
    Sync {
        topic: String,
        topic_id: [u8; 16],
        partition: i32,
        /// Which sync of the partition this file's fsync belongs to.
        id: u64,
    },
    Read {
        fetch: u64,
        slot: usize,
    },
    /// A chunk of `__consumer_offsets` read back at start.
    GroupLoad {
        slot: usize,
    },
    Create {
        topic: String,
        topic_id: [u8; 16],
        waiter: Option<u64>,
    },
    BrokerMeta,
    /// Housekeeping (truncate, delete, repair): a failure is logged.
    Other {
        what: String,
    },
}

/// A response being assembled, released in request order for its connection.
#[derive(Debug)]
struct ConnState {
    /// The client id from the latest request header (shown in group descriptions).
    client_id: String,
    next_seq: u64,
    next_to_send: u64,
    /// Finished responses waiting for earlier ones; `None` means "no response" (acks = 0).
    ready: BTreeMap<u64, Option<Output>>,
}

/// Where to send a response: connection, position in its order, header fields.
#[derive(Debug, Clone, Copy)]
pub struct ReplyTo {
    pub conn: ConnId,
    pub seq: u64,
    pub correlation_id: i32,
    pub api_version: i16,
}

#[derive(Debug)]
struct ProduceWait {
    topic: usize,
    partition: usize,
    name: String,
    topic_id: [u8; 16],
    index: i32,
    end: i64,
}

#[derive(Debug)]
struct PendingProduce {
    reply: Option<ReplyTo>,
    response: ProduceResponse,
    waits: Vec<ProduceWait>,
    deadline: Instant,
}

#[derive(Debug, Clone)]
struct FetchPart {
    topic: String,
    partition: i32,
    fetch_offset: i64,
    max_bytes: u32,
}

#[derive(Debug)]
struct PendingFetch {
    reply: ReplyTo,
    parts: Vec<FetchPart>,
    min_bytes: u32,
    max_bytes: u32,
    deadline: Instant,
    /// Set once reads are issued: the response under construction and reads outstanding.
    reading: Option<Reading>,
}

/// A fetch whose reads are in flight: the response under construction, where each read's
/// bytes go (topic index, partition index), and how many reads are outstanding.
#[derive(Debug)]
struct Reading(FetchResponse, Vec<(usize, usize)>, usize);

#[derive(Debug)]
/// An internal write (to `__consumer_offsets`) waiting to be durable: then its deferred records
/// are applied and `reply` gets its `ok` response; if the write is lost first (failed and cut
/// back, partition offline or gone), nothing is applied and `reply` gets `err`.
struct InternalWait {
    reply: Option<(ReplyTo, ResponseKind, ResponseKind)>,
    apply: Vec<crate::group::GroupRecord>,
    /// A group's membership record at this generation: if the write fails, the group must
    /// rebalance (as Kafka's coordinator does), or it would stay on a record that was never
    /// written and every SyncGroup would fail forever (found by simulator seed 610).
    group: Option<(String, i32)>,
    topic: String,
    topic_id: [u8; 16],
    partition: i32,
    end: i64,
    /// The partition's generation when written: a cut after a failed write bumps it, and if
    /// the cut went below this write, its offsets may since have been filled by other records.
    /// (A cut above it leaves it standing: seed 727, a group's long-durable record taken for
    /// lost after a later offset commit failed.)
    generation: u64,
}

#[derive(Debug)]
struct PendingCreate {
    reply: ReplyTo,
    response: CreateTopicsResponse,
    /// (topic name, ops outstanding)
    outstanding: BTreeMap<String, usize>,
}

pub struct Broker {
    config: Config,
    now: Instant,
    prng: Prng,
    cluster_id: [u8; 16],
    next_producer_id: i64,
    producer_id_block_end: i64,
    meta_write_in_flight: bool,
    meta_waiters: Vec<ReplyTo>,
    pub(crate) topics: BTreeMap<String, Topic>,
    next_op: u64,
    ops: BTreeMap<OpId, OpPurpose>,
    outputs: VecDeque<Output>,
    conns: BTreeMap<ConnId, ConnState>,
    next_pending: u64,
    produces: BTreeMap<u64, PendingProduce>,
    fetches: BTreeMap<u64, PendingFetch>,
    creates: BTreeMap<u64, PendingCreate>,
    /// Responses (from the group coordinator) waiting for an internal append to be durable.
    internal_waits: Vec<InternalWait>,
    /// The last internal append: (topic, topic id, partition, end offset).
    last_internal: Option<WriteMark>,
    /// Partitions whose ends may have moved in this step.
    touched: BTreeSet<(String, i32)>,
    next_retention_check: Instant,
    pub(crate) coordinator: Coordinator,
}

fn name_of(s: &StrBytes) -> String {
    s.to_string()
}
fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Kafka's legal topic names: 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 249 {
        return Err(format!(
            "topic name length {} is not within 1..=249",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be '.' or '..'".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_' || *c == '-'))
    {
        return Err(format!("topic name contains illegal character {c:?}"));
    }
    Ok(())
}

impl Broker {
    /// Start a broker from what the driver found on storage. The first outputs are the repairs
    /// recovery decided on (cutting torn tails) and log lines describing them.
    pub fn new(config: Config, recovered: Recovered, now: Instant) -> Result<Broker, ConfigError> {
        config.validate()?;
        let mut prng = Prng::new(config.seed);
        let mut broker = Broker {
            now,
            cluster_id: [0; 16],
            next_producer_id: 0,
            producer_id_block_end: 0,
            meta_write_in_flight: false,
            meta_waiters: Vec::new(),
            topics: BTreeMap::new(),
            next_op: 0,
            ops: BTreeMap::new(),
            outputs: VecDeque::new(),
            conns: BTreeMap::new(),
            next_pending: 0,
            produces: BTreeMap::new(),
            fetches: BTreeMap::new(),
            creates: BTreeMap::new(),
            internal_waits: Vec::new(),
            last_internal: None,
            touched: BTreeSet::new(),
            next_retention_check: now + RETENTION_CHECK_INTERVAL,
            coordinator: Coordinator::new(&config),
            prng: Prng::new(0),
            config,
        };
        let meta = match recovered.broker_meta.as_deref().map(BrokerMeta::decode) {
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                broker.log(
                    LogLevel::Error,
                    format!("broker.meta unreadable ({e}); starting with a new one"),
                );
                None
            }
            None => None,
        };
        match meta {
            Some(m) => {
                broker.cluster_id = m.cluster_id;
                broker.next_producer_id = m.producer_id_block_end;
                broker.producer_id_block_end = m.producer_id_block_end;
            }
            None => {
                broker.cluster_id = prng.uuid_bytes();
                broker.write_broker_meta();
            }
        }
        broker.prng = prng;

        for rp in recovered.partitions {
            let meta = match rp.meta.as_deref().map(PartitionMeta::decode) {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    broker.log(
                        LogLevel::Error,
                        format!(
                            "{}: partition.meta unreadable ({e}); ignoring the directory",
                            rp.dir_name
                        ),
                    );
                    continue;
                }
                None => {
                    broker.log(
                        LogLevel::Warn,
                        format!(
                            "{}: no partition.meta (interrupted creation?); ignoring the directory",
                            rp.dir_name
                        ),
                    );
                    continue;
                }
            };
            // Rebuild idempotent producer state from the batch headers the scan kept, then
            // forget whatever recovery cuts away.
            let mut producers = ProducerStates::default();
            let mut scans = rp.segments;
            scans.sort_by_key(|s| s.base_offset);
            for scan in &scans {
                for b in &scan.batches {
                    producers.record(&b.header);
                }
            }
            let dir = PartitionDir {
                topic: meta.topic.clone(),
                partition: meta.partition,
            };
            let (log, repairs, notes) = PartitionLog::recover(dir, scans, now);
            producers.truncate_to(log.log_end_offset());
            producers.evict_beyond(broker.config.producers_per_partition_max);
            for n in notes {
                broker.log(LogLevel::Warn, n);
            }
            for r in repairs {
                let what = format!("recovery repair of {}", rp.dir_name);
                broker.storage(r, OpPurpose::Other { what });
            }
            let topic = broker
                .topics
                .entry(meta.topic.clone())
                .or_insert_with(|| Topic {
                    id: meta.topic_id,
                    settings: meta.settings.clone(),
                    partitions: Vec::new(),
                    internal: meta.topic.starts_with("__"),
                });
            let mut p = Partition::new(log, producers);
            // What recovery found may have been in the page cache only: a process crash keeps
            // unsynced writes, and a later power loss would take them. So nothing recovered is
            // treated as durable until this broker has synced it; under group commit consumers
            // see it, and retried batches are acknowledged, only after that fsync (found by the
            // simulator: seed 2, a crash then a power loss lost a duplicate's acknowledgement).
            p.durable_end = p.log.log_start_offset();
            p.sync_requested_end = p.log.log_start_offset();
            if p.log.log_end_offset() > p.log.log_start_offset() {
                p.unsynced_since = Some(now);
                if broker.config.durability == Durability::GroupCommit {
                    p.high_watermark = p.log.log_start_offset();
                }
                broker.touched.insert((meta.topic.clone(), meta.partition));
            }
            let idx = meta.partition as usize;
            // Placeholders for partitions not (yet) found; each real one replaces its own.
            while topic.partitions.len() < (idx + 1).max(meta.partition_count.max(0) as usize) {
                let dir = PartitionDir {
                    topic: meta.topic.clone(),
                    partition: topic.partitions.len() as i32,
                };
                let mut missing =
                    Partition::new(PartitionLog::create(dir, now).0, ProducerStates::default());
                missing.offline = Some("missing".into());
                topic.partitions.push(missing);
            }
            topic.partitions[idx] = p;
            if let Some(max) = topic.partitions[idx].producers.max_producer_id() {
                broker.next_producer_id = broker.next_producer_id.max(max + 1);
            }
        }
        // A topic is whole only if every partition directory was found.
        let missing: Vec<(String, usize)> = broker
            .topics
            .iter()
            .flat_map(|(n, t)| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.offline.as_deref() == Some("missing"))
                    .map(move |(i, _)| (n.clone(), i))
            })
            .collect();
        for (name, i) in missing {
            broker.log(
                LogLevel::Error,
                format!("{name}-{i}: partition directory missing; partition offline"),
            );
            broker.topics.get_mut(&name).unwrap().partitions[i].offline =
                Some("partition directory missing at start".into());
        }
        broker.next_producer_id = broker.next_producer_id.max(broker.producer_id_block_end);
        crate::group::start(&mut broker);
        broker.after_step();
        broker.invariants();
        Ok(broker)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn now(&self) -> Instant {
        self.now
    }
    pub fn topics(&self) -> &BTreeMap<String, Topic> {
        &self.topics
    }
    pub fn cluster_id_string(&self) -> String {
        Uuid::from_bytes(self.cluster_id).simple().to_string()
    }

    /// How many requests of `conn` are inside the broker, not yet answered. The driver stops
    /// reading a connection at `requests_per_connection_max`.
    pub fn in_flight(&self, conn: ConnId) -> usize {
        self.conns
            .get(&conn)
            .map(|c| (c.next_seq - c.next_to_send) as usize)
            .unwrap_or(0)
    }

    // ---------------------------------------------------------------- the front door

    /// Apply one input. Then drain [`Broker::poll_output`].
    pub fn handle(&mut self, input: Input) {
        // The driver's clock may jump back; the broker's does not.
        self.now = self.now.max(input.now());
        match input {
            Input::Request { conn, request, .. } => self.on_request(conn, request),
            Input::ConnClosed { conn, .. } => self.on_conn_closed(conn),
            Input::StorageDone { op, result, .. } => self.on_storage_done(op, result),
            Input::Tick { .. } => {}
        }
        self.on_time();
        self.after_step();
        self.invariants();
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    // [index] Clean shutdown (issue 8 item 7). Moves with the front door when broker.rs is split.
    /// Clean shutdown: the storage requests that write each partition's active-segment index,
    /// so the next start reads no segment data. The driver carries them out after the last
    /// input, without reporting completions, then fsyncs and leaves the clean-shutdown marker.
    pub fn clean_shutdown_requests(&mut self) -> Vec<StorageRequest> {
        let partitions = self
            .topics
            .values_mut()
            .flat_map(|t| t.partitions.iter_mut());
        partitions
            .filter(|p| p.offline.is_none())
            .filter_map(|p| p.log.shutdown_index())
            .collect()
    }

    /// The next instant at which the broker wants an [`Input::Tick`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = Some(self.next_retention_check);
        let mut consider = |x: Instant| t = Some(t.map_or(x, |t: Instant| t.min(x)));
        for p in self.produces.values() {
            consider(p.deadline);
        }
        for f in self.fetches.values() {
            if f.reading.is_none() {
                consider(f.deadline);
            }
        }
        if let Durability::Interval { interval_ms, .. } = self.config.durability {
            for t in self.topics.values() {
                for p in &t.partitions {
                    if let Some(s) = p.unsynced_since {
                        consider(s + Duration::from_ms(interval_ms));
                    }
                }
            }
        }
        if let Some(d) = self.coordinator.next_deadline() {
            consider(d);
        }
        t
    }

    /// Whole-broker invariants, checked after every step (release builds too).
    pub fn invariants(&self) {
        for (name, t) in &self.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                if p.offline.is_some() {
                    continue;
                }
                assert!(
                    p.written_end <= p.log.log_end_offset(),
                    "{name}-{i}: written past the log end"
                );
                assert!(
                    p.high_watermark <= p.written_end.max(p.log.log_start_offset()),
                    "{name}-{i}: high watermark {} above written end {}",
                    p.high_watermark,
                    p.written_end
                );
                assert!(
                    p.high_watermark >= p.log.log_start_offset()
                        || p.high_watermark == p.written_end
                );
            }
        }
        for c in self.conns.values() {
            assert!(c.next_to_send <= c.next_seq);
            assert!(c.ready.len() as u64 <= c.next_seq - c.next_to_send);
        }
        assert!(
            self.fetches.len()
                <= self.config.fetches_parked_max
                    + self.conns.len() * self.config.requests_per_connection_max
        );
        self.coordinator.invariants();
    }

    // ---------------------------------------------------------------- plumbing

    fn log(&mut self, level: LogLevel, message: String) {
        self.outputs.push_back(Output::Log { level, message });
    }

    fn storage(&mut self, request: StorageRequest, purpose: OpPurpose) -> OpId {
        let op = OpId(self.next_op);
        self.next_op += 1;
        self.ops.insert(op, purpose);
        self.outputs.push_back(Output::Storage { op, request });
        op
    }

    pub(crate) fn reply_to(&mut self, conn: ConnId, request: &Request) -> ReplyTo {
        let state = self.conns.entry(conn).or_insert(ConnState {
            client_id: String::new(),
            next_seq: 0,
            next_to_send: 0,
            ready: BTreeMap::new(),
        });
        if let Some(c) = &request.header.client_id {
            if state.client_id.as_str() != c.as_str() {
                state.client_id = c.to_string();
            }
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        ReplyTo {
            conn,
            seq,
            correlation_id: request.header.correlation_id,
            api_version: request.header.request_api_version,
        }
    }

    /// Hand a finished response to its connection's ordered queue.
    pub(crate) fn respond(&mut self, to: ReplyTo, body: Option<ResponseKind>) {
        self.respond_at(to, to.api_version, body)
    }

    fn respond_at(&mut self, to: ReplyTo, api_version: i16, body: Option<ResponseKind>) {
        let Some(state) = self.conns.get_mut(&to.conn) else {
            return; // connection gone
        };
        let out = body.map(|body| Output::Response {
            conn: to.conn,
            correlation_id: to.correlation_id,
            api_version,
            body,
        });
        assert!(to.seq >= state.next_to_send && to.seq < state.next_seq);
        let previous = state.ready.insert(to.seq, out);
        assert!(previous.is_none(), "one response per request");
        while let Some(out) = state.ready.remove(&state.next_to_send) {
            state.next_to_send += 1;
            if let Some(out) = out {
                self.outputs.push_back(out);
            }
        }
    }

    fn close(&mut self, conn: ConnId, reason: String) {
        self.outputs.push_back(Output::Close { conn, reason });
        self.on_conn_closed(conn);
    }

    fn on_conn_closed(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        // The answer has nowhere to go, but what the write applies still applies.
        for w in &mut self.internal_waits {
            if w.reply.as_ref().is_some_and(|r| r.0.conn == conn) {
                w.reply = None;
            }
        }
        self.internal_waits
            .retain(|w| w.reply.is_some() || !w.apply.is_empty());
        self.fetches
            .retain(|_, f| f.reply.conn != conn || f.reading.is_some());
        for p in self.produces.values_mut() {
            if p.reply.is_some_and(|r| r.conn == conn) {
                p.reply = None;
            }
        }
        self.coordinator.on_conn_closed(conn);
    }

    fn write_broker_meta(&mut self) {
        let data = BrokerMeta {
            cluster_id: self.cluster_id,
            producer_id_block_end: self.producer_id_block_end,
        }
        .encode();
        self.meta_write_in_flight = true;
        self.storage(
            StorageRequest::WriteBrokerMeta { data },
            OpPurpose::BrokerMeta,
        );
    }

    // ---------------------------------------------------------------- requests

    fn on_request(&mut self, conn: ConnId, request: Request) {
        let to = self.reply_to(conn, &request);
        let version = request.header.request_api_version;
        match request.body {
            RequestKind::ApiVersions(_) => self.api_versions(to, version),
            RequestKind::Metadata(r) => self.metadata(to, version, r),
            RequestKind::Produce(r) => self.produce(to, version, r),
            RequestKind::Fetch(r) => self.fetch(to, r),
            RequestKind::ListOffsets(r) => self.list_offsets(to, r),
            RequestKind::CreateTopics(r) => self.create_topics(to, r),
            RequestKind::DeleteTopics(r) => self.delete_topics(to, version, r),
            RequestKind::InitProducerId(r) => self.init_producer_id(to, r),
            RequestKind::DescribeConfigs(r) => self.describe_configs(to, r),
            body => {
                if !crate::group::handle(self, to, body) {
                    self.log(
                        LogLevel::Warn,
                        format!("{conn:?}: request for an API gregor does not serve; closing"),
                    );
                    self.respond(to, None);
                    self.close(conn, "unsupported API".into());
                }
            }
        }
    }

    fn api_versions(&mut self, to: ReplyTo, version: i16) {
        let (_, max) = crate::wire::supported_range(ApiKey::ApiVersions).unwrap();
        let keys = SUPPORTED
            .iter()
            .map(|(k, lo, hi)| {
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(*lo)
                    .with_max_version(*hi)
            })
            .collect();
        let mut resp = ApiVersionsResponse::default().with_api_keys(keys);
        if version > max {
            // KIP-511: answer in v0 so any client can read it, and say which versions we speak.
            resp.error_code = UNSUPPORTED_VERSION;
            self.respond_at(to, 0, Some(ResponseKind::ApiVersions(resp)));
        } else {
            self.respond(to, Some(ResponseKind::ApiVersions(resp)));
        }
    }

    fn default_settings(&self) -> TopicSettings {
        TopicSettings {
            segment_bytes: self.config.segment_bytes_max,
            segment_ms: self.config.segment_age_ms_max,
            retention_bytes: self.config.retention_bytes,
            retention_ms: self.config.retention_ms,
            max_message_bytes: self.config.batch_bytes_max,
        }
    }

    /// Create a topic in memory and emit the storage requests that create it on disk, in order,
    /// before anything else written to it. Returns the number of storage ops emitted.
    pub(crate) fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        settings: TopicSettings,
        waiter: Option<u64>,
    ) -> usize {
        assert!(partitions >= 1);
        let id = self.prng.uuid_bytes();
        let mut parts = Vec::new();
        let mut ops = 0;
        for i in 0..partitions {
            let dir = PartitionDir {
                topic: name.to_string(),
                partition: i,
            };
            let meta = PartitionMeta {
                topic: name.to_string(),
                topic_id: id,
                partition: i,
                partition_count: partitions,
                settings: settings.clone(),
            };
            self.storage(
                StorageRequest::CreatePartition {
                    dir: dir.clone(),
                    meta: meta.encode(),
                },
                OpPurpose::Create {
                    topic: name.to_string(),
                    topic_id: id,
                    waiter,
                },
            );
            let (log, seg) = PartitionLog::create(dir, self.now);
            self.storage(
                seg,
                OpPurpose::Create {
                    topic: name.to_string(),
                    topic_id: id,
                    waiter,
                },
            );
            ops += 2;
            parts.push(Partition::new(log, ProducerStates::default()));
        }
        self.topics.insert(
            name.to_string(),
            Topic {
                id,
                settings,
                partitions: parts,
                internal: name.starts_with("__"),
            },
        );
        self.log(
            LogLevel::Info,
            format!("created topic {name} with {partitions} partition(s)"),
        );
        ops
    }

    fn metadata(&mut self, to: ReplyTo, version: i16, r: MetadataRequest) {
        let names: Vec<String> = match &r.topics {
            None => self
                .topics
                .iter()
                .filter(|(_, t)| !t.internal)
                .map(|(n, _)| n.clone())
                .collect(),
            Some(list) if list.is_empty() && version == 0 => self
                .topics
                .iter()
                .filter(|(_, t)| !t.internal)
                .map(|(n, _)| n.clone())
                .collect(),
            Some(list) => list
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| name_of(&n.0)))
                .collect(),
        };
        // Metadata v0-v3 always allow auto-creation (the field exists from v4).
        let allow = r.allow_auto_topic_creation || version < 4;
        let mut topics = Vec::new();
        for name in names {
            if !self.topics.contains_key(&name) {
                let valid = validate_topic_name(&name);
                if allow
                    && self.config.auto_create_topics
                    && valid.is_ok()
                    && self.topics.len() < self.config.topics_max
                {
                    let n = self.config.default_partitions;
                    let s = self.default_settings();
                    self.create_topic(&name, n, s, None);
                } else {
                    let code = if valid.is_err() {
                        INVALID_TOPIC_EXCEPTION
                    } else {
                        UNKNOWN_TOPIC_OR_PARTITION
                    };
                    topics.push(
                        MetadataResponseTopic::default()
                            .with_name(Some(TopicName(sb(name))))
                            .with_error_code(code),
                    );
                    continue;
                }
            }
            let t = &self.topics[&name];
            let partitions = t
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    MetadataResponsePartition::default()
                        .with_partition_index(i as i32)
                        .with_error_code(if p.offline.is_some() {
                            KAFKA_STORAGE_ERROR
                        } else {
                            NONE
                        })
                        .with_leader_id(BrokerId(self.config.broker_id))
                        // -1: leader epochs are not tracked yet, which turns off clients'
                        // KIP-320 offset validation instead of confusing it.
                        .with_leader_epoch(-1)
                        .with_replica_nodes(vec![BrokerId(self.config.broker_id)])
                        .with_isr_nodes(vec![BrokerId(self.config.broker_id)])
                })
                .collect();
            topics.push(
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(sb(name))))
                    .with_topic_id(Uuid::from_bytes(t.id))
                    .with_is_internal(t.internal)
                    .with_partitions(partitions),
            );
        }
        let resp = MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(self.config.broker_id))
                .with_host(sb(self.config.advertised_host.clone()))
                .with_port(self.config.advertised_port)])
            .with_cluster_id(Some(sb(self.cluster_id_string())))
            .with_controller_id(BrokerId(self.config.broker_id))
            .with_topics(topics);
        self.respond(to, Some(ResponseKind::Metadata(resp)));
    }

    // ---------------------------------------------------------------- produce

    fn produce(&mut self, to: ReplyTo, version: i16, r: ProduceRequest) {
        let acks = r.acks;
        let mut response = ProduceResponse::default();
        let mut waits = Vec::new();
        let mut any_error = false;
        let refuse_all = if version < 3 {
            Some((
                UNSUPPORTED_VERSION,
                "Produce v0-v2 (message format v0/v1) is not supported".to_string(),
            ))
        } else if !matches!(acks, -1..=1) {
            Some((
                INVALID_REQUIRED_ACKS,
                format!("acks must be -1, 0 or 1, not {acks}"),
            ))
        } else if r.transactional_id.as_ref().is_some_and(|t| !t.0.is_empty()) {
            Some((
                TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                "transactions are not supported".to_string(),
            ))
        } else {
            None
        };
        for td in r.topic_data {
            let name = name_of(&td.name.0);
            let mut tr = TopicProduceResponse::default().with_name(td.name.clone());
            for pd in td.partition_data {
                let mut pr = PartitionProduceResponse::default()
                    .with_index(pd.index)
                    .with_base_offset(-1);
                let result = match &refuse_all {
                    Some((code, msg)) => Err((*code, msg.clone())),
                    None => self.append_one(&name, pd.index, pd.records, false),
                };
                match result {
                    Ok((base, log_start, wait)) => {
                        pr.base_offset = base;
                        pr.log_start_offset = log_start;
                        if let Some(w) = wait {
                            waits.push(ProduceWait {
                                topic: response.responses.len(),
                                partition: tr.partition_responses.len(),
                                ..w
                            });
                        }
                    }
                    Err((code, msg)) => {
                        any_error = true;
                        self.log(
                            LogLevel::Warn,
                            format!(
                                "produce to {name}-{} from {:?} refused: {msg}",
                                pd.index, to.conn
                            ),
                        );
                        pr.error_code = code;
                        pr.error_message = Some(sb(msg));
                    }
                }
                tr.partition_responses.push(pr);
            }
            response.responses.push(tr);
        }
        if acks == 0 {
            // Fire and forget: no response. On an error Kafka closes the connection, the only
            // way to tell an acks=0 producer that something went wrong.
            self.respond(to, None);
            if any_error {
                self.close(to.conn, "acks=0 produce failed".into());
            }
            return;
        }
        let id = self.next_pending;
        self.next_pending += 1;
        // A zero or negative timeout would fail every acks>=1 produce before its fsync could
        // complete; treat it as Kafka's default request timeout (30 s) instead.
        let timeout_ms = if r.timeout_ms > 0 {
            r.timeout_ms as u64
        } else {
            30_000
        };
        let timeout = Duration::from_ms(timeout_ms);
        self.produces.insert(
            id,
            PendingProduce {
                reply: Some(to),
                response,
                waits,
                deadline: self.now + timeout,
            },
        );
        // Completion happens in after_step, once the ends have been looked at.
    }

    /// Validate and append one partition's records. Returns (base offset, log start offset,
    /// what to wait for) or an error code with a message naming what was wrong.
    fn append_one(
        &mut self,
        name: &str,
        index: i32,
        records: Option<Bytes>,
        internal: bool,
    ) -> Result<(i64, i64, Option<ProduceWait>), (i16, String)> {
        let now = self.now;
        let Some(topic) = self.topics.get_mut(name) else {
            return Err((
                UNKNOWN_TOPIC_OR_PARTITION,
                format!("unknown topic {name:?}"),
            ));
        };
        if topic.internal && !internal {
            return Err((
                INVALID_TOPIC_EXCEPTION,
                format!("{name} is an internal topic"),
            ));
        }
        let topic_id = topic.id;
        let settings = topic.settings.clone();
        let Some(p) = usize::try_from(index)
            .ok()
            .and_then(|i| topic.partitions.get_mut(i))
        else {
            return Err((
                UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic {name} has no partition {index}"),
            ));
        };
        if let Some(why) = &p.offline {
            return Err((KAFKA_STORAGE_ERROR, format!("partition offline: {why}")));
        }
        let records = records.unwrap_or_default();
        if records.len() as u64 > settings.max_message_bytes as u64 {
            return Err((
                MESSAGE_TOO_LARGE,
                format!(
                    "batch of {} bytes exceeds max.message.bytes {}",
                    records.len(),
                    settings.max_message_bytes
                ),
            ));
        }
        let header = BatchHeader::parse(&records).map_err(batch_error)?;
        if header.size != records.len() {
            if header.size < records.len() {
                return Err((
                    INVALID_RECORD,
                    "a produce request must carry exactly one record batch per partition".into(),
                ));
            }
            return Err(batch_error(BatchError::Truncated {
                have: records.len(),
                need: header.size,
            }));
        }
        header.verify(&records).map_err(batch_error)?;
        if header.is_transactional() || header.is_control() {
            return Err((
                INVALID_RECORD,
                "transactional and control batches are not supported".into(),
            ));
        }
        let mut base = p.log.log_end_offset();
        let mut wait_end = None;
        if header.has_producer_id() {
            match p.producers.check(&header) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate(orig) => {
                    base = orig.base_offset;
                    wait_end = Some(orig.last_offset + 1);
                }
                SequenceCheck::OutOfOrder { expected } => {
                    return Err((
                        OUT_OF_ORDER_SEQUENCE_NUMBER,
                        format!(
                            "producer {} sent sequence {} where {} was expected",
                            header.producer_id, header.base_sequence, expected
                        ),
                    ))
                }
                SequenceCheck::StaleEpoch { current } => {
                    return Err((
                        INVALID_PRODUCER_EPOCH,
                        format!(
                            "producer {} epoch {} is older than {current}",
                            header.producer_id, header.producer_epoch
                        ),
                    ))
                }
            }
        }
        let end = match wait_end {
            Some(end) => end,
            None => {
                let mut owned = BytesMut::from(&records[..]);
                batch::assign(&mut owned, base, 0);
                let owned = owned.freeze();
                let assigned = BatchHeader::parse(&owned).expect("just parsed");
                let roll = RollPolicy {
                    segment_bytes_max: settings.segment_bytes,
                    segment_age_ns_max: Duration::from_ms(settings.segment_ms).0,
                };
                let reqs = p.log.append(owned, &assigned, now, roll);
                p.producers.record(&assigned);
                p.producers
                    .evict_beyond(self.config.producers_per_partition_max);
                let end = assigned.next_offset();
                if p.unsynced_since.is_none() {
                    p.unsynced_since = Some(now);
                }
                let generation = p.generation;
                for req in reqs {
                    let purpose = match req {
                        StorageRequest::Append { .. } => OpPurpose::Append {
                            topic: name.to_string(),
                            topic_id,
                            partition: index,
                            end,
                            generation,
                        },
                        _ => OpPurpose::Other {
                            what: format!("roll {name}-{index}"),
                        },
                    };
                    self.storage(req, purpose);
                }
                self.touched.insert((name.to_string(), index));
                end
            }
        };
        let log_start = self.topics[name].partitions[index as usize]
            .log
            .log_start_offset();
        let wait = ProduceWait {
            topic: 0,
            partition: 0,
            name: name.to_string(),
            topic_id,
            index,
            end,
        };
        Ok((base, log_start, Some(wait)))
    }

    /// Release produce responses whose batches the policy now covers; time out the rest.
    fn complete_produces(&mut self) {
        let durability = self.config.durability;
        let now = self.now;
        let mut done = Vec::new();
        for (id, pp) in self.produces.iter_mut() {
            let topics = &self.topics;
            pp.waits.retain(|w| {
                let pr = &mut pp.response.responses[w.topic].partition_responses[w.partition];
                let Some(t) = topics.get(&w.name).filter(|t| t.id == w.topic_id) else {
                    pr.error_code = UNKNOWN_TOPIC_OR_PARTITION;
                    pr.error_message = Some(sb("topic deleted while the produce was pending"));
                    return false;
                };
                let p = &t.partitions[w.index as usize];
                if let Some(why) = &p.offline {
                    pr.error_code = KAFKA_STORAGE_ERROR;
                    pr.error_message = Some(sb(format!("partition offline: {why}")));
                    return false;
                }
                if p.log.log_end_offset() < w.end {
                    // The write failed and the log was cut below this batch.
                    pr.error_code = KAFKA_STORAGE_ERROR;
                    pr.error_message = Some(sb("write to storage failed"));
                    return false;
                }
                p.ack_end(durability) < w.end
            });
            if !pp.waits.is_empty() && pp.deadline <= now {
                for w in pp.waits.drain(..) {
                    let pr = &mut pp.response.responses[w.topic].partition_responses[w.partition];
                    pr.error_code = REQUEST_TIMED_OUT;
                    pr.error_message =
                        Some(sb("timed out waiting for the write to become durable"));
                }
            }
            if pp.waits.is_empty() {
                done.push(*id);
            }
        }
        for id in done {
            let pp = self.produces.remove(&id).unwrap();
            if let Some(to) = pp.reply {
                self.respond(to, Some(ResponseKind::Produce(pp.response)));
            }
        }
    }

    fn complete_internal_waits(&mut self) {
        let durability = self.config.durability;
        let mut done = Vec::new();
        let waits = std::mem::take(&mut self.internal_waits);
        for w in waits {
            let p = self
                .topics
                .get(&w.topic)
                .filter(|t| t.id == w.topic_id)
                .and_then(|t| t.partitions.get(w.partition as usize));
            match p {
                Some(p)
                    if p.offline.is_none()
                        && p.write_survives(w.end, w.generation)
                        && p.log.log_end_offset() >= w.end =>
                {
                    if p.ack_end(durability) >= w.end {
                        done.push((w, true));
                    } else {
                        self.internal_waits.push(w);
                    }
                }
                _ => done.push((w, false)),
            }
        }
        let now = self.now;
        for (w, ok) in done {
            if ok {
                for r in w.apply {
                    self.coordinator.replay(r, now);
                }
            }
            if let Some((to, ok_body, err_body)) = w.reply {
                self.respond(to, Some(if ok { ok_body } else { err_body }));
            }
            if let (false, Some((g, generation))) = (ok, w.group) {
                crate::group::membership_write_failed(self, &g, generation);
            }
        }
    }

    // ---------------------------------------------------------------- for the group coordinator

    pub(crate) fn default_settings_pub(&self) -> TopicSettings {
        self.default_settings()
    }
    pub(crate) fn log_line(&mut self, level: LogLevel, message: String) {
        self.log(level, message);
    }
    pub(crate) fn respond_pub(&mut self, to: ReplyTo, body: Option<ResponseKind>) {
        self.respond(to, body);
    }
    /// A short random id suffix (member ids).
    pub(crate) fn random_suffix(&mut self) -> String {
        Uuid::from_bytes(self.prng.uuid_bytes()).to_string()
    }
    pub(crate) fn client_id_of(&self, conn: ConnId) -> String {
        self.conns
            .get(&conn)
            .map(|c| c.client_id.clone())
            .unwrap_or_default()
    }
    pub(crate) fn storage_for_group(&mut self, request: StorageRequest, slot: usize) {
        self.storage(request, OpPurpose::GroupLoad { slot });
    }
    /// Reads that bring back everything stored in `__consumer_offsets`, in log order.
    pub(crate) fn offsets_log_reads(&self) -> Vec<StorageRequest> {
        let mut reads = Vec::new();
        if let Some(t) = self.topics.get(crate::group::OFFSETS_TOPIC) {
            for p in &t.partitions {
                if p.offline.is_some() {
                    continue;
                }
                for seg in p.log.segments() {
                    if let (Some(first), Some(last)) = (seg.batches.first(), seg.batches.last()) {
                        let len = last.position + last.size as u64 - first.position;
                        reads.push(StorageRequest::Read {
                            file: p.log.file_of(seg.base_offset),
                            position: first.position,
                            len: len as u32,
                        });
                    }
                }
            }
        }
        reads
    }

    /// Append a batch the broker built itself to an internal topic, through the same path as a
    /// produce. `reply` = (where, response when durable, response if the write fails).
    pub(crate) fn append_internal(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        reply: Option<(ReplyTo, ResponseKind, ResponseKind)>,
        apply: Vec<crate::group::GroupRecord>,
        group: Option<(String, i32)>,
    ) {
        match self.append_one(topic, partition, Some(batch), true) {
            Ok((_, _, wait)) => {
                let w = wait.expect("an append always waits");
                let generation = self.topics[topic].partitions[partition as usize].generation;
                self.last_internal =
                    Some((topic.to_string(), w.topic_id, partition, w.end, generation));
                if reply.is_some() || !apply.is_empty() || group.is_some() {
                    self.internal_waits.push(InternalWait {
                        reply,
                        apply,
                        group,
                        topic: topic.to_string(),
                        topic_id: w.topic_id,
                        partition,
                        end: w.end,
                        generation,
                    });
                }
            }
            Err((code, msg)) => {
                self.log(
                    LogLevel::Error,
                    format!("writing to {topic}-{partition} failed ({code}): {msg}"),
                );
                if let Some((to, _, err)) = reply {
                    self.respond(to, Some(err));
                }
                if let Some((g, generation)) = group {
                    crate::group::membership_write_failed(self, &g, generation);
                }
            }
        }
    }

    fn offsets_partition(&self, p: i32) -> Option<&Partition> {
        self.topics
            .get(crate::group::OFFSETS_TOPIC)
            .and_then(|t| t.partitions.get(p as usize))
            .filter(|p| p.offline.is_none())
    }
    pub(crate) fn offsets_partition_hw(&self, p: i32) -> Option<i64> {
        self.offsets_partition(p).map(|p| p.high_watermark)
    }
    pub(crate) fn offsets_partition_bytes(&self, p: i32) -> u64 {
        self.offsets_partition(p)
            .map(|p| p.log.size_bytes())
            .unwrap_or(0)
    }
    /// Roll the offsets partition and append `batch` as the first batch of the new segment.
    /// Returns the batch's offset.
    pub(crate) fn offsets_snapshot(&mut self, p: i32, batch: Bytes) -> Option<i64> {
        let now = self.now;
        let name = crate::group::OFFSETS_TOPIC;
        let part = self.topics.get_mut(name)?.partitions.get_mut(p as usize)?;
        let base = part.log.log_end_offset();
        for r in part.log.roll(now) {
            self.storage(
                r,
                OpPurpose::Other {
                    what: format!("roll {name}-{p} for a snapshot"),
                },
            );
        }
        self.append_internal(name, p, batch, None, Vec::new(), None);
        let part = &self.topics[name].partitions[p as usize];
        (part.log.log_end_offset() > base).then_some(base)
    }
    /// Delete every segment of an offsets partition below `base` (a snapshot's offset).
    pub(crate) fn offsets_delete_before(&mut self, p: i32, base: i64) {
        let name = crate::group::OFFSETS_TOPIC;
        let Some(part) = self
            .topics
            .get_mut(name)
            .and_then(|t| t.partitions.get_mut(p as usize))
        else {
            return;
        };
        if part.log.log_start_offset() >= base
            || !part.log.segments().iter().any(|s| s.base_offset == base)
        {
            return;
        }
        for r in part.log.delete_before(base) {
            self.storage(
                r,
                OpPurpose::Other {
                    what: format!("compact {name}-{p}"),
                },
            );
        }
    }

    /// The most recent internal append: (topic, topic id, partition, end offset).
    pub(crate) fn last_internal_write(&self) -> Option<WriteMark> {
        self.last_internal.clone()
    }

    /// A mark at the current end of an internal partition (what is there now, durable or not).
    pub(crate) fn end_mark(&self, topic: &str, partition: i32) -> Option<WriteMark> {
        let t = self.topics.get(topic)?;
        let p = t.partitions.get(partition as usize)?;
        Some((
            topic.to_string(),
            t.id,
            partition,
            p.log.log_end_offset(),
            p.generation,
        ))
    }

    /// Send `ok` once the write `mark` is durable under the policy (`err` if its partition
    /// fails first); at once if there is nothing to wait for.
    pub(crate) fn respond_after(
        &mut self,
        to: ReplyTo,
        ok: ResponseKind,
        err: ResponseKind,
        mark: Option<WriteMark>,
    ) {
        match mark {
            // The generation is the partition's when the write was made: if a failed write cut
            // the partition since, this write may be gone even though the log grew past it.
            Some((topic, topic_id, partition, end, generation)) => {
                self.internal_waits.push(InternalWait {
                    reply: Some((to, ok, err)),
                    apply: Vec::new(),
                    group: None,
                    topic,
                    topic_id,
                    partition,
                    end,
                    generation,
                })
            }
            None => self.respond(to, Some(ok)),
        }
    }

    // ---------------------------------------------------------------- storage completions

    fn on_storage_done(&mut self, op: OpId, result: Result<StorageReply, StorageFault>) {
        let Some(purpose) = self.ops.remove(&op) else {
            panic!("storage completion for unknown op {op:?}: driver bug");
        };
        match purpose {
            OpPurpose::Append {
                topic,
                topic_id,
                partition,
                end,
                generation,
            } => {
                let Some(p) = self.partition_mut(&topic, topic_id, partition) else {
                    return;
                };
                if p.generation != generation {
                    return; // issued before a failure cut the log; already accounted for
                }
                match result {
                    Ok(_) => {
                        p.written_end = p.written_end.max(end);
                        self.touched.insert((topic, partition));
                    }
                    Err(fault) => {
                        self.write_failed(&topic, partition, format!("append failed: {fault}"))
                    }
                }
            }
            OpPurpose::Sync {
                topic,
                topic_id,
                partition,
                id,
            } => {
                let Some(p) = self.partition_mut(&topic, topic_id, partition) else {
                    return;
                };
                match result {
                    Ok(_) => {
                        // A sync abandoned after a failed write: it proves nothing about the
                        // sync in flight now.
                        let Some(mut s) = p.sync.filter(|s| s.id == id) else {
                            return;
                        };
                        s.remaining -= 1;
                        p.sync = if s.remaining == 0 { None } else { Some(s) };
                        if s.remaining == 0 {
                            p.durable_end = p.durable_end.max(s.covers_end);
                            self.touched.insert((topic, partition));
                        }
                    }
                    Err(fault) => {
                        // After a failed fsync the kernel may have dropped the dirty pages: what
                        // is on disk is unknown (PostgreSQL's "fsyncgate"). Take the partition
                        // offline; a restart recovers it from what is really there.
                        p.sync = None;
                        let why = format!("fsync failed: {fault}");
                        p.offline = Some(why.clone());
                        self.log(
                            LogLevel::Error,
                            format!("{topic}-{partition}: {why}; partition offline until restart"),
                        );
                        self.touched.insert((topic, partition));
                    }
                }
            }
            OpPurpose::Read { fetch, slot } => self.read_done(fetch, slot, result),
            OpPurpose::GroupLoad { slot } => crate::group::load_done(self, slot, result),
            OpPurpose::Create {
                topic,
                topic_id,
                waiter,
            } => {
                if let Err(fault) = &result {
                    self.log(
                        LogLevel::Error,
                        format!("creating topic {topic} failed: {fault}"),
                    );
                    if self.topics.get(&topic).is_some_and(|t| t.id == topic_id) {
                        for p in &mut self.topics.get_mut(&topic).unwrap().partitions {
                            p.offline = Some(format!("creation failed: {fault}"));
                        }
                    }
                }
                if let Some(w) = waiter {
                    self.create_op_done(w, &topic, result.is_err());
                }
            }
            OpPurpose::BrokerMeta => {
                self.meta_write_in_flight = false;
                match result {
                    Ok(_) => {
                        let waiters = std::mem::take(&mut self.meta_waiters);
                        for to in waiters {
                            self.hand_out_producer_id(to);
                        }
                    }
                    Err(fault) => {
                        self.log(
                            LogLevel::Error,
                            format!("writing broker.meta failed: {fault}"),
                        );
                        let waiters = std::mem::take(&mut self.meta_waiters);
                        for to in waiters {
                            let resp = InitProducerIdResponse::default()
                                .with_error_code(KAFKA_STORAGE_ERROR)
                                .with_producer_id(ProducerId(-1));
                            self.respond(to, Some(ResponseKind::InitProducerId(resp)));
                        }
                    }
                }
            }
            OpPurpose::Other { what } => {
                if let Err(fault) = result {
                    self.log(
                        LogLevel::Error,
                        format!("storage operation failed ({what}): {fault}"),
                    );
                }
            }
        }
    }

    fn partition_mut(
        &mut self,
        topic: &str,
        topic_id: [u8; 16],
        partition: i32,
    ) -> Option<&mut Partition> {
        self.topics
            .get_mut(topic)
            .filter(|t| t.id == topic_id)
            .and_then(|t| t.partitions.get_mut(partition as usize))
    }

    /// A write failed (disk full, I/O error): cut the log back to what was written, so nothing
    /// after a hole can ever be read, and fail the produces that were waiting on the cut part.
    fn write_failed(&mut self, topic: &str, partition: i32, why: String) {
        let p = &mut self.topics.get_mut(topic).unwrap().partitions[partition as usize];
        let keep = p.written_end.max(p.log.log_start_offset());
        p.cuts.push(keep);
        p.generation += 1;
        assert_eq!(p.cuts.len() as u64, p.generation);
        let reqs = if p.log.log_end_offset() > keep {
            p.log.truncate_to(keep)
        } else {
            Vec::new()
        };
        p.producers.truncate_to(keep);
        p.sync_requested_end = p.sync_requested_end.min(keep);
        p.durable_end = p.durable_end.min(keep);
        if let Some(s) = p.sync.as_mut() {
            // The fsync in flight still covers everything written before it, up to the cut; it
            // must not be abandoned, or what it alone covered (a recovered log, say) would wait
            // for a sync that is never issued (found by simulator seed 1742).
            s.covers_end = s.covers_end.min(keep);
        }
        self.log(
            LogLevel::Error,
            format!("{topic}-{partition}: {why}; log cut back to offset {keep}"),
        );
        for r in reqs {
            self.storage(
                r,
                OpPurpose::Other {
                    what: format!("cut {topic}-{partition} after a failed write"),
                },
            );
        }
        self.touched.insert((topic.to_string(), partition));
    }

    // ---------------------------------------------------------------- after every step

    fn on_time(&mut self) {
        if self.now >= self.next_retention_check {
            self.next_retention_check = self.now + RETENTION_CHECK_INTERVAL;
            let now_ms = self.now.unix_ms();
            let mut deletions = Vec::new();
            for (name, t) in self.topics.iter_mut() {
                for (i, p) in t.partitions.iter_mut().enumerate() {
                    if p.offline.is_some() {
                        continue;
                    }
                    let reqs = p.log.apply_retention(
                        now_ms,
                        t.settings.retention_ms,
                        t.settings.retention_bytes,
                        p.high_watermark,
                    );
                    if !reqs.is_empty() {
                        deletions.push((format!("{name}-{i}"), reqs, p.log.log_start_offset()));
                    }
                }
            }
            for (what, reqs, start) in deletions {
                self.log(
                    LogLevel::Info,
                    format!("retention: {what} now starts at offset {start}"),
                );
                for r in reqs {
                    self.storage(
                        r,
                        OpPurpose::Other {
                            what: format!("retention {what}"),
                        },
                    );
                }
            }
        }
        if let Durability::Interval { interval_ms, .. } = self.config.durability {
            let now = self.now;
            let mut due = Vec::new();
            for (n, t) in &self.topics {
                for (i, p) in t.partitions.iter().enumerate() {
                    if p.unsynced_since
                        .is_some_and(|s| s + Duration::from_ms(interval_ms) <= now)
                    {
                        due.push((n.clone(), i as i32));
                    }
                }
            }
            self.touched.extend(due);
        }
        self.coordinator_tick();
    }

    fn coordinator_tick(&mut self) {
        crate::group::tick(self);
    }

    fn after_step(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        let durability = self.config.durability;
        for (name, index) in &touched {
            let Some(t) = self.topics.get_mut(name) else {
                continue;
            };
            let topic_id = t.id;
            let Some(p) = t.partitions.get_mut(*index as usize) else {
                continue;
            };
            if p.offline.is_some() {
                continue;
            }
            // Issue a sync if the policy wants one and none is in flight (group commit: one
            // fsync covers everything appended while the previous one ran).
            let unsynced = p.log.log_end_offset() - p.sync_requested_end;
            let want_sync = unsynced > 0
                && p.sync.is_none()
                && match durability {
                    Durability::None => false,
                    Durability::GroupCommit => true,
                    Durability::Interval {
                        records,
                        interval_ms,
                    } => {
                        unsynced as u64 >= records
                            || p.unsynced_since
                                .is_some_and(|s| s + Duration::from_ms(interval_ms) <= self.now)
                    }
                };
            let mut syncs = Vec::new();
            if want_sync {
                let files = p.log.files_since(p.sync_requested_end);
                p.syncs_issued += 1;
                p.sync = Some(SyncInFlight {
                    id: p.syncs_issued,
                    remaining: files.len(),
                    covers_end: p.log.log_end_offset(),
                });
                p.sync_requested_end = p.log.log_end_offset();
                p.unsynced_since = None;
                syncs = files;
            }
            if durability == Durability::None {
                p.unsynced_since = None;
            }
            let hw = p.ack_end(durability).max(p.high_watermark);
            p.high_watermark = hw;
            let id = p.syncs_issued;
            for file in syncs {
                self.storage(
                    StorageRequest::Sync { file },
                    OpPurpose::Sync {
                        topic: name.clone(),
                        topic_id,
                        partition: *index,
                        id,
                    },
                );
            }
        }
        self.complete_produces();
        self.complete_internal_waits();
        self.wake_fetches(&touched);
        crate::group::after_step(self);
    }

    // ---------------------------------------------------------------- fetch

    fn fetch(&mut self, to: ReplyTo, r: FetchRequest) {
        let mut parts = Vec::new();
        for t in &r.topics {
            for p in &t.partitions {
                parts.push(FetchPart {
                    topic: name_of(&t.topic.0),
                    partition: p.partition,
                    fetch_offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes.max(0) as u32,
                });
            }
        }
        let wait = Duration::from_ms(r.max_wait_ms.max(0) as u64).min(self.config.fetch_wait_max());
        let max_bytes = (r.max_bytes.max(0) as u32).min(self.config.fetch_response_bytes_max);
        let id = self.next_pending;
        self.next_pending += 1;
        let f = PendingFetch {
            reply: to,
            parts,
            min_bytes: r.min_bytes.max(0) as u32,
            max_bytes,
            deadline: self.now + wait,
            reading: None,
        };
        let ready = self.fetch_ready(&f) || self.fetches.len() >= self.config.fetches_parked_max;
        self.fetches.insert(id, f);
        if ready {
            self.start_reads(id);
        }
    }

    /// Is there enough to answer now: an error to report, or at least min_bytes of data?
    fn fetch_ready(&self, f: &PendingFetch) -> bool {
        // min_bytes = 0 means "answer at once", as in Kafka.
        if f.deadline <= self.now || f.min_bytes == 0 {
            return true;
        }
        let mut bytes = 0u64;
        for part in &f.parts {
            match self.fetch_check(part) {
                Err(_) => return true,
                Ok(p) => {
                    if let Some(plan) =
                        p.log
                            .plan_read(part.fetch_offset, p.high_watermark, part.max_bytes)
                    {
                        bytes += plan.len as u64;
                    }
                }
            }
        }
        bytes >= f.min_bytes.max(1) as u64
    }

    fn fetch_check(&self, part: &FetchPart) -> Result<&Partition, i16> {
        let t = self
            .topics
            .get(&part.topic)
            .ok_or(UNKNOWN_TOPIC_OR_PARTITION)?;
        let p = usize::try_from(part.partition)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .ok_or(UNKNOWN_TOPIC_OR_PARTITION)?;
        if p.offline.is_some() {
            return Err(KAFKA_STORAGE_ERROR);
        }
        if part.fetch_offset < p.log.log_start_offset()
            || part.fetch_offset > p.log.log_end_offset()
        {
            return Err(OFFSET_OUT_OF_RANGE);
        }
        Ok(p)
    }

    fn wake_fetches(&mut self, touched: &BTreeSet<(String, i32)>) {
        let now = self.now;
        let ids: Vec<u64> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.reading.is_none())
            .filter(|(_, f)| {
                f.deadline <= now
                    || f.parts
                        .iter()
                        .any(|p| touched.contains(&(p.topic.clone(), p.partition)))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if self.fetch_ready(&self.fetches[&id]) {
                self.start_reads(id);
            }
        }
    }

    /// Plan and issue the reads for a fetch; the response is sent when they complete.
    fn start_reads(&mut self, id: u64) {
        let f = self.fetches.get(&id).unwrap();
        let mut resp = FetchResponse::default().with_session_id(0);
        let mut slots = Vec::new();
        let mut plans: Vec<(usize, usize, ReadPlan)> = Vec::new();
        let mut budget = f.max_bytes as u64;
        let mut first_data = true;
        for part in &f.parts {
            let ti = match resp
                .responses
                .iter()
                .position(|t| t.topic.0.as_str() == part.topic)
            {
                Some(i) => i,
                None => {
                    resp.responses.push(
                        FetchableTopicResponse::default()
                            .with_topic(TopicName(sb(part.topic.clone()))),
                    );
                    resp.responses.len() - 1
                }
            };
            let mut pd = PartitionData::default()
                .with_partition_index(part.partition)
                .with_records(Some(Bytes::new()))
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1);
            match self.fetch_check(part) {
                Err(code) => pd.error_code = code,
                Ok(p) => {
                    pd.high_watermark = p.high_watermark;
                    pd.last_stable_offset = p.high_watermark;
                    pd.log_start_offset = p.log.log_start_offset();
                    // KIP-74: the whole response is bounded by the request's max_bytes, and
                    // so is every partition's share of it; only the first batch of the first
                    // partition with data goes out whole even when bigger than both limits,
                    // so a consumer can always make progress (`plan_read` always includes
                    // the first batch).
                    let limit = (part.max_bytes as u64).min(budget) as u32;
                    if budget > 0 || first_data {
                        if let Some(plan) =
                            p.log.plan_read(part.fetch_offset, p.high_watermark, limit)
                        {
                            if first_data || plan.len as u64 <= budget {
                                budget = budget.saturating_sub(plan.len as u64);
                                first_data = false;
                                let pi = resp.responses[ti].partitions.len();
                                plans.push((ti, pi, plan));
                            }
                        }
                    }
                }
            }
            resp.responses[ti].partitions.push(pd);
        }
        let n = plans.len();
        let planned: u64 = plans.iter().map(|(_, _, plan)| plan.len as u64).sum();
        assert!(
            planned <= f.max_bytes as u64 || n == 1,
            "KIP-74: only a lone first batch may exceed the response's max_bytes"
        );
        for (slot, (ti, pi, plan)) in plans.into_iter().enumerate() {
            slots.push((ti, pi));
            self.storage(
                StorageRequest::Read {
                    file: plan.file,
                    position: plan.position,
                    len: plan.len,
                },
                OpPurpose::Read { fetch: id, slot },
            );
        }
        self.fetches.get_mut(&id).unwrap().reading = Some(Reading(resp, slots, n));
        if n == 0 {
            self.finish_fetch(id);
        }
    }

    fn read_done(&mut self, id: u64, slot: usize, result: Result<StorageReply, StorageFault>) {
        let mut failed = None;
        let Some(f) = self.fetches.get_mut(&id) else {
            return;
        };
        let Reading(resp, slots, outstanding) = f.reading.as_mut().expect("reads were issued");
        let (ti, pi) = slots[slot];
        let pd = &mut resp.responses[ti].partitions[pi];
        match result {
            Ok(StorageReply::Read(bytes)) => pd.records = Some(bytes),
            Ok(StorageReply::Done) => panic!("driver answered a read with Done"),
            Err(fault) => {
                pd.error_code = KAFKA_STORAGE_ERROR;
                pd.records = Some(Bytes::new());
                failed = Some(format!("fetch read failed: {fault}"));
            }
        }
        *outstanding -= 1;
        let finished = *outstanding == 0;
        if let Some(msg) = failed {
            self.log(LogLevel::Error, msg);
        }
        if finished {
            self.finish_fetch(id);
        }
    }

    fn finish_fetch(&mut self, id: u64) {
        let f = self.fetches.remove(&id).unwrap();
        let Reading(resp, _, _) = f.reading.unwrap();
        self.respond(f.reply, Some(ResponseKind::Fetch(resp)));
    }

    // ---------------------------------------------------------------- offsets, topics, configs

    fn list_offsets(&mut self, to: ReplyTo, r: ListOffsetsRequest) {
        let mut resp = ListOffsetsResponse::default();
        for t in r.topics {
            let name = name_of(&t.name.0);
            let mut tr = ListOffsetsTopicResponse::default().with_name(t.name.clone());
            for p in t.partitions {
                let mut pr = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1)
                    .with_leader_epoch(-1);
                let part = self.topics.get(&name).and_then(|t| {
                    usize::try_from(p.partition_index)
                        .ok()
                        .and_then(|i| t.partitions.get(i))
                });
                match part {
                    None => pr.error_code = UNKNOWN_TOPIC_OR_PARTITION,
                    Some(part) if part.offline.is_some() => pr.error_code = KAFKA_STORAGE_ERROR,
                    Some(part) => {
                        let hw = part.high_watermark;
                        match p.timestamp {
                            -1 => pr.offset = hw,
                            -2 => pr.offset = part.log.log_start_offset(),
                            -3 => {
                                if let Some((o, ts)) = part.log.max_timestamp_offset(hw) {
                                    pr.offset = o;
                                    pr.timestamp = ts;
                                }
                            }
                            ts if ts >= 0 => {
                                if let Some((o, ts)) = part.log.offset_for_timestamp(ts, hw) {
                                    pr.offset = o;
                                    pr.timestamp = ts;
                                }
                            }
                            _ => pr.error_code = INVALID_REQUEST,
                        }
                    }
                }
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
        self.respond(to, Some(ResponseKind::ListOffsets(resp)));
    }

    fn topic_settings_from(
        &self,
        configs: &[(String, Option<String>)],
    ) -> Result<TopicSettings, String> {
        let mut s = self.default_settings();
        for (k, v) in configs {
            let v = v.as_deref().unwrap_or("");
            let num = || {
                v.parse::<i64>()
                    .map_err(|_| format!("config {k}: {v:?} is not a number"))
            };
            match k.as_str() {
                "retention.ms" => s.retention_ms = num()?,
                "retention.bytes" => s.retention_bytes = num()?,
                "segment.bytes" => {
                    let n = num()?;
                    if n < 1024 {
                        return Err("segment.bytes must be at least 1024".into());
                    }
                    s.segment_bytes = n as u64;
                }
                "segment.ms" => s.segment_ms = num()?.max(1) as u64,
                "max.message.bytes" => {
                    let n = num()?;
                    if n < 128 || n as u64 + 64 > s.segment_bytes {
                        return Err(
                            "max.message.bytes must be at least 128 and fit in a segment".into(),
                        );
                    }
                    s.max_message_bytes = n as u32;
                }
                "cleanup.policy" if v == "delete" => {}
                "min.insync.replicas" if v == "1" => {}
                "compression.type" if v == "producer" => {}
                _ => return Err(format!("unsupported topic config {k}={v}")),
            }
        }
        Ok(s)
    }

    fn create_topics(&mut self, to: ReplyTo, r: CreateTopicsRequest) {
        let id = self.next_pending;
        self.next_pending += 1;
        let mut pending = PendingCreate {
            reply: to,
            response: CreateTopicsResponse::default(),
            outstanding: BTreeMap::new(),
        };
        for t in r.topics {
            let name = name_of(&t.name.0);
            let mut res = CreatableTopicResult::default().with_name(t.name.clone());
            let partitions = if t.num_partitions == -1 {
                self.config.default_partitions
            } else {
                t.num_partitions
            };
            let configs: Vec<(String, Option<String>)> = t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            let check = validate_topic_name(&name)
                .map_err(|e| (INVALID_TOPIC_EXCEPTION, e))
                .and_then(|_| {
                    if self.topics.contains_key(&name) {
                        Err((TOPIC_ALREADY_EXISTS, format!("topic {name} already exists")))
                    } else if !t.assignments.is_empty() {
                        Err((
                            INVALID_REQUEST,
                            "manual replica assignment is not supported".into(),
                        ))
                    } else if partitions < 1 || partitions > self.config.partitions_per_topic_max {
                        Err((
                            INVALID_PARTITIONS,
                            format!(
                                "partition count {partitions} is not within 1..={}",
                                self.config.partitions_per_topic_max
                            ),
                        ))
                    } else if !(t.replication_factor == -1 || t.replication_factor == 1) {
                        Err((
                            INVALID_REPLICATION_FACTOR,
                            format!(
                                "replication factor {} is larger than the 1 broker available",
                                t.replication_factor
                            ),
                        ))
                    } else if self.topics.len() >= self.config.topics_max {
                        Err((
                            INVALID_REQUEST,
                            format!("topic limit {} reached", self.config.topics_max),
                        ))
                    } else if name.starts_with("__") {
                        Err((
                            INVALID_TOPIC_EXCEPTION,
                            "names starting with __ are reserved for internal topics".into(),
                        ))
                    } else {
                        self.topic_settings_from(&configs)
                            .map_err(|e| (INVALID_CONFIG, e))
                    }
                });
            match check {
                Err((code, msg)) => {
                    res.error_code = code;
                    res.error_message = Some(sb(msg));
                }
                Ok(settings) => {
                    res.num_partitions = partitions;
                    res.replication_factor = 1;
                    if !r.validate_only {
                        let ops = self.create_topic(&name, partitions, settings, Some(id));
                        res.topic_id = Uuid::from_bytes(self.topics[&name].id);
                        pending.outstanding.insert(name.clone(), ops);
                    }
                }
            }
            pending.response.topics.push(res);
        }
        if pending.outstanding.is_empty() {
            self.respond(to, Some(ResponseKind::CreateTopics(pending.response)));
        } else {
            self.creates.insert(id, pending);
        }
    }

    fn create_op_done(&mut self, id: u64, topic: &str, failed: bool) {
        let Some(pc) = self.creates.get_mut(&id) else {
            return;
        };
        if failed {
            if let Some(r) = pc
                .response
                .topics
                .iter_mut()
                .find(|r| r.name.0.as_str() == topic)
            {
                r.error_code = KAFKA_STORAGE_ERROR;
                r.error_message = Some(sb("storage failed while creating the topic"));
            }
        }
        if let Some(n) = pc.outstanding.get_mut(topic) {
            *n -= 1;
            if *n == 0 {
                pc.outstanding.remove(topic);
            }
        }
        if pc.outstanding.is_empty() {
            let pc = self.creates.remove(&id).unwrap();
            self.respond(pc.reply, Some(ResponseKind::CreateTopics(pc.response)));
        }
    }

    fn delete_topics(&mut self, to: ReplyTo, version: i16, r: DeleteTopicsRequest) {
        let names: Vec<String> = if version >= 6 {
            r.topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| name_of(&n.0)))
                .collect()
        } else {
            r.topic_names.iter().map(|n| name_of(&n.0)).collect()
        };
        let mut resp = DeleteTopicsResponse::default();
        for name in names {
            let mut res =
                DeletableTopicResult::default().with_name(Some(TopicName(sb(name.clone()))));
            match self.topics.get(&name) {
                None => res.error_code = UNKNOWN_TOPIC_OR_PARTITION,
                Some(t) if t.internal => res.error_code = INVALID_TOPIC_EXCEPTION,
                Some(_) => {
                    let t = self.topics.remove(&name).unwrap();
                    for i in 0..t.partitions.len() {
                        self.storage(
                            StorageRequest::DeletePartition {
                                dir: PartitionDir {
                                    topic: name.clone(),
                                    partition: i as i32,
                                },
                            },
                            OpPurpose::Other {
                                what: format!("delete {name}-{i}"),
                            },
                        );
                        self.touched.insert((name.clone(), i as i32));
                    }
                    self.log(LogLevel::Info, format!("deleted topic {name}"));
                }
            }
            resp.responses.push(res);
        }
        self.respond(to, Some(ResponseKind::DeleteTopics(resp)));
    }

    fn init_producer_id(&mut self, to: ReplyTo, r: InitProducerIdRequest) {
        // Clients send a null transactional id for a plain idempotent producer; an empty one is
        // treated the same way.
        if r.transactional_id.as_ref().is_some_and(|t| !t.0.is_empty()) {
            let resp = InitProducerIdResponse::default()
                .with_error_code(TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            self.log(LogLevel::Warn, format!("{:?}: InitProducerId with a transactional id refused: transactions are not supported", to.conn));
            self.respond(to, Some(ResponseKind::InitProducerId(resp)));
            return;
        }
        self.meta_waiters.push(to);
        if self.next_producer_id >= self.producer_id_block_end {
            if !self.meta_write_in_flight {
                // Reserve the next block durably before handing out any id from it.
                self.producer_id_block_end = self.next_producer_id + PRODUCER_ID_BLOCK;
                self.write_broker_meta();
            }
            return;
        }
        if !self.meta_write_in_flight {
            let waiters = std::mem::take(&mut self.meta_waiters);
            for to in waiters {
                self.hand_out_producer_id(to);
            }
        }
    }

    fn hand_out_producer_id(&mut self, to: ReplyTo) {
        if self.next_producer_id >= self.producer_id_block_end {
            self.meta_waiters.push(to);
            if !self.meta_write_in_flight {
                self.producer_id_block_end = self.next_producer_id + PRODUCER_ID_BLOCK;
                self.write_broker_meta();
            }
            return;
        }
        let pid = self.next_producer_id;
        self.next_producer_id += 1;
        let resp = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(0);
        self.respond(to, Some(ResponseKind::InitProducerId(resp)));
    }

    fn describe_configs(&mut self, to: ReplyTo, r: DescribeConfigsRequest) {
        let mut resp = DescribeConfigsResponse::default();
        for res in r.resources {
            let name = res.resource_name.to_string();
            let mut out = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let entries: Vec<(String, String, bool)> = match res.resource_type {
                2 => match self.topics.get(&name) {
                    None => {
                        out.error_code = UNKNOWN_TOPIC_OR_PARTITION;
                        out.error_message = Some(sb(format!("unknown topic {name}")));
                        vec![]
                    }
                    Some(t) => {
                        let d = self.default_settings();
                        let s = &t.settings;
                        vec![
                            ("cleanup.policy".into(), "delete".into(), true),
                            ("compression.type".into(), "producer".into(), true),
                            (
                                "max.message.bytes".into(),
                                s.max_message_bytes.to_string(),
                                s.max_message_bytes == d.max_message_bytes,
                            ),
                            ("message.timestamp.type".into(), "CreateTime".into(), true),
                            ("min.insync.replicas".into(), "1".into(), true),
                            (
                                "retention.bytes".into(),
                                s.retention_bytes.to_string(),
                                s.retention_bytes == d.retention_bytes,
                            ),
                            (
                                "retention.ms".into(),
                                s.retention_ms.to_string(),
                                s.retention_ms == d.retention_ms,
                            ),
                            (
                                "segment.bytes".into(),
                                s.segment_bytes.to_string(),
                                s.segment_bytes == d.segment_bytes,
                            ),
                            (
                                "segment.ms".into(),
                                s.segment_ms.to_string(),
                                s.segment_ms == d.segment_ms,
                            ),
                        ]
                    }
                },
                4 if name.is_empty() || name == self.config.broker_id.to_string() => {
                    let c = &self.config;
                    let durability = match c.durability {
                        Durability::None => "none".to_string(),
                        Durability::GroupCommit => "group-commit".to_string(),
                        Durability::Interval {
                            records,
                            interval_ms,
                        } => format!("interval(records={records},ms={interval_ms})"),
                    };
                    vec![
                        (
                            "auto.create.topics.enable".into(),
                            c.auto_create_topics.to_string(),
                            true,
                        ),
                        ("broker.id".into(), c.broker_id.to_string(), true),
                        (
                            "fetch.max.bytes".into(),
                            c.fetch_response_bytes_max.to_string(),
                            true,
                        ),
                        ("gregor.durability".into(), durability, true),
                        (
                            "log.retention.bytes".into(),
                            c.retention_bytes.to_string(),
                            true,
                        ),
                        ("log.retention.ms".into(), c.retention_ms.to_string(), true),
                        ("log.roll.ms".into(), c.segment_age_ms_max.to_string(), true),
                        (
                            "log.segment.bytes".into(),
                            c.segment_bytes_max.to_string(),
                            true,
                        ),
                        (
                            "message.max.bytes".into(),
                            c.batch_bytes_max.to_string(),
                            true,
                        ),
                        (
                            "num.partitions".into(),
                            c.default_partitions.to_string(),
                            true,
                        ),
                    ]
                }
                4 => {
                    out.error_code = INVALID_REQUEST;
                    out.error_message = Some(sb(format!(
                        "this broker is {}, not {name}",
                        self.config.broker_id
                    )));
                    vec![]
                }
                other => {
                    out.error_code = INVALID_REQUEST;
                    out.error_message = Some(sb(format!("resource type {other} is not supported")));
                    vec![]
                }
            };
            let wanted: Option<Vec<String>> = res
                .configuration_keys
                .map(|ks| ks.iter().map(|k| k.to_string()).collect());
            for (k, v, is_default) in entries {
                if wanted
                    .as_ref()
                    .is_some_and(|w| !w.is_empty() && !w.contains(&k))
                {
                    continue;
                }
                // config_source: 5 = DEFAULT_CONFIG, 1 = DYNAMIC_TOPIC_CONFIG, 4 = STATIC_BROKER_CONFIG.
                let source = if res.resource_type == 4 {
                    4
                } else if is_default {
                    5
                } else {
                    1
                };
                out.configs.push(
                    DescribeConfigsResourceResult::default()
                        .with_name(sb(k))
                        .with_value(Some(sb(v)))
                        .with_read_only(res.resource_type == 4)
                        .with_config_source(source),
                );
            }
            resp.results.push(out);
        }
        self.respond(to, Some(ResponseKind::DescribeConfigs(resp)));
    }
}

fn batch_error(e: BatchError) -> (i16, String) {
    let code = match e {
        BatchError::Truncated { .. } | BatchError::Crc { .. } => CORRUPT_MESSAGE,
        BatchError::Magic(_) => UNSUPPORTED_FOR_MESSAGE_FORMAT,
        BatchError::Invalid(_) => INVALID_RECORD,
    };
    (code, e.to_string())
}
