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
use crate::files::{BrokerMeta, PartitionMeta, TopicSettings};
use crate::group::Coordinator;
use crate::ids::{TopicId, TopicPartition};
use crate::io::{
    ConnId, Input, LogLevel, OpId, Output, PartitionDir, Request, StorageFault, StorageReply,
    StorageRequest,
};
use crate::log::recover::Recovered;
use crate::log::{PartitionLog, ReadPlan, RollPolicy};
use crate::prng::Prng;
use crate::producer::{ProducerStates, SequenceCheck};
use crate::purgatory::{Purgatory, EVERY_WAITER};
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

/// Producer ids are reserved in blocks; `broker.meta` records the end of the current block
/// before any id from it is handed out, so a restart never reuses one.
const PRODUCER_ID_BLOCK: i64 = 1000;

pub use crate::coordinator::ReplyTo;
pub use crate::partition::Partition;
use crate::partition::SyncInFlight;
use cluster::Serve;
pub use observe::{GroupView, PartitionView};

mod admin;
mod authz;
mod clean;
mod cluster;
mod epochs;
mod fetch;
mod host;
mod list_offsets;
mod observe;
mod offset_for_leader_epoch;
mod produce;
mod producer_ids;
mod recovery;
mod replica;
mod step;
mod storage;

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
        cut_epoch: u64,
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
    /// The batch a ListOffsets by timestamp decodes (`list_offsets.rs`).
    TimestampRead {
        list: u64,
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
    /// A request of the log cleaner's clean `job` (`clean.rs`).
    Clean {
        job: u64,
        op: clean::CleanOp,
    },
    /// A read of a follower's truncation scan (`replica/truncation.rs`).
    TruncationScan {
        topic: String,
        partition: i32,
        job: u64,
    },
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

#[derive(Debug)]
struct ProduceWait {
    topic: usize,
    partition: usize,
    name: String,
    topic_id: TopicId,
    index: i32,
    end: i64,
    /// The produce's acks: 1 waits for the leader's own acknowledged end, -1 (all) for the
    /// high watermark, N for the leader and N - 1 followers (`replica/leader.rs`).
    acks: i16,
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
    /// KIP-320 (v9+): the leader epoch the fetcher's metadata names, -1 for none.
    current_leader_epoch: i32,
    /// v12+: the epoch of the last batch the fetcher holds, -1 for none (consumers).
    last_fetched_epoch: i32,
    /// A follower's fetch (`replica_id` >= 0): the replica asking. It reads up to the
    /// leader's written end, not the high watermark.
    replica: Option<i32>,
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

impl PendingFetch {
    /// The partitions the fetch waits on (its purgatory keys), each needing a high watermark
    /// past the fetch offset: the first level at which there is something to return.
    fn keys(&self) -> Vec<((String, i32), i64)> {
        self.parts
            .iter()
            .map(|p| {
                (
                    (p.topic.clone(), p.partition),
                    p.fetch_offset.saturating_add(1),
                )
            })
            .collect()
    }
}

/// A fetch whose reads are in flight: the response under construction, where each read's
/// bytes go (topic index, partition index), and how many reads are outstanding.
#[derive(Debug)]
struct Reading(FetchResponse, Vec<(usize, usize, ReadPlan)>, usize);

#[derive(Debug)]
struct PendingCreate {
    reply: ReplyTo,
    /// CreateTopics, CreatePartitions, (Incremental)AlterConfigs or DeleteRecords.
    response: ResponseKind,
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
    /// The purgatory of produces (Kafka's `DelayedProduce`): each watched under the partitions
    /// its batches wait on, with its request timeout.
    produce_waits: Purgatory<(String, i32)>,
    /// Produces answered without waiting (every partition refused): released this step.
    produces_settled: BTreeSet<u64>,
    fetches: BTreeMap<u64, PendingFetch>,
    /// ListOffsets requests waiting for the batches they decode.
    list_offsets: BTreeMap<u64, list_offsets::PendingListOffsets>,
    /// The purgatory of fetches parked for data (Kafka's `DelayedFetch`), watched under the
    /// partitions they read; a fetch leaves it when its reads are issued.
    fetch_waits: Purgatory<(String, i32)>,
    creates: BTreeMap<u64, PendingCreate>,
    /// The coordinator runtime's purgatory: internal writes (to `__consumer_offsets`) waiting
    /// to be durable, with the responses and deferred records they release.
    internal_waits: crate::coordinator::PendingWrites<crate::group::GroupRecord>,
    /// Partitions whose ends may have moved in this step.
    touched: BTreeSet<(String, i32)>,
    /// The partitions the last step touched, for the invariants of what it changed.
    stepped: BTreeSet<(String, i32)>,
    /// Steps taken, for the periodic full check (`Config::full_check_every_steps`).
    steps: u64,
    next_retention_check: Instant,
    /// Log compaction's state: the clean in progress, where each partition's last one stopped.
    cleaner: clean::Cleaner,
    pub(crate) coordinator: Coordinator,
    /// Whether `coordinator` is lent to group code right now (see `Broker::with_groups`).
    coordinator_lent: bool,
    /// The KRaft-mode state: the metadata image and the requests out to the controller.
    kraft: cluster::KraftState,
    /// Replication (KRaft mode): the partitions led and followed here (`replica/`).
    replica: replica::ReplicaState,
    /// Who each connection is, for the authorizer (`authz/`).
    authz: authz::Authz,
}

fn name_of(s: &StrBytes) -> String {
    s.to_string()
}
fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub use crate::ids::validate_topic_name;

impl Broker {
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

    /// Apply one input. Then drain [`Broker::poll_output`].
    pub fn handle(&mut self, input: Input) {
        // The driver's clock may jump back; the broker's does not.
        self.now = self.now.max(input.now());
        match input {
            Input::Request { conn, request, .. } => self.on_request(conn, request),
            Input::Principal {
                conn,
                principal,
                host,
                ..
            } => self.on_principal(conn, principal, host),
            Input::ConnClosed { conn, .. } => self.on_conn_closed(conn),
            Input::StorageDone { op, result, .. } => self.on_storage_done(op, result),
            Input::Tick { .. } => {}
            Input::Metadata { image, .. } => self.on_metadata(image),
            Input::ControllerReply { id, result, .. } => self.on_controller_reply(id, result),
            Input::ReplicaFetched {
                from, id, result, ..
            } => self.on_replica_fetched(from, id, result),
        }
        self.on_time();
        self.kraft_on_time();
        self.replica_on_time();
        self.release_parked_metadata();
        self.after_step();
        self.replica_fetch_more();
        self.steps += 1;
        if self.full_check_due() {
            self.invariants();
        } else {
            self.step_invariants();
        }
        // Every timer that came due has been served: a deadline at or before `now` would have
        // the driver wake the broker again at once, and again, a busy loop that burns a core
        // until something else changes (a bug the simulator found: seed 35 spun for 40 s).
        for (what, at) in self.timers() {
            assert!(
                at > self.now,
                "{what}: a timer due at {at:?} is still pending after a step at {:?}",
                self.now
            );
        }
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Clean shutdown: the storage requests that write each partition's active-segment index,
    /// so the next start reads no segment data. The driver carries them out after the last
    /// input, without reporting completions, then fsyncs and leaves the clean-shutdown marker.
    pub fn clean_shutdown_requests(&mut self) -> Vec<StorageRequest> {
        let partitions = self
            .topics
            .values_mut()
            .flat_map(|t| t.partitions.iter_mut());
        partitions.flat_map(|p| p.shutdown_requests()).collect()
    }

    /// The next instant at which the broker wants an [`Input::Tick`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = self.timers().map(|(_, at)| at).min();
        // The retention check is always scheduled, so there is always a next tick.
        assert!(next.is_some_and(|t| t <= self.next_retention_check));
        next
    }

    /// Every deadline the broker keeps, named by what it is for: the retention check, parked
    /// produces and fetches (lookups in their timer tables), the fsync interval of each
    /// partition with unsynced data, and the group coordinator's sessions and rebalances.
    fn timers(&self) -> impl Iterator<Item = (&'static str, Instant)> + '_ {
        let interval = match self.config.durability {
            Durability::Interval { interval_ms, .. } => Some(Duration::from_ms(interval_ms)),
            _ => None,
        };
        let fsync_interval = self.topics.values().flat_map(move |t| {
            // Only while no fsync is in flight: one runs at a time per partition, and its
            // completion looks at the interval again.
            t.partitions.iter().filter_map(move |p| {
                if p.sync.is_some() || p.offline.is_some() {
                    return None;
                }
                let since = p.unsynced_since?;
                Some(("fsync interval", since + interval?))
            })
        });
        [
            ("retention check", Some(self.next_retention_check)),
            ("log cleaner", self.cleaner_deadline()),
            ("delayed produce", self.produce_waits.next_deadline()),
            ("delayed fetch", self.fetch_waits.next_deadline()),
            ("group coordinator", self.coordinator.next_deadline()),
            ("coordinator write", self.internal_waits.next_deadline()),
            ("controller request", self.kraft.next_deadline()),
            ("replication", self.replica.next_deadline()),
        ]
        .into_iter()
        .filter_map(|(what, at)| Some((what, at?)))
        .chain(fsync_interval)
    }

    /// Whether this step ends with the full check: in debug builds and the core's own tests
    /// always, otherwise every `full_check_every_steps` steps (the simulator and the test
    /// harness set 1: every step).
    fn full_check_due(&self) -> bool {
        let every = self.config.full_check_every_steps.max(1);
        cfg!(any(test, debug_assertions)) || self.steps.is_multiple_of(every)
    }

    /// The invariants of what one step changed, in O(touched partitions + log n): the
    /// partitions it touched, and the bookkeeping counts of the purgatories and queues. The
    /// full check ([`Broker::invariants`]) walks every waiter and connection; run after every
    /// step it made the cost of a step grow with the number of requests waiting (stop 18:
    /// 27% of the broker's CPU with a thousand one-record produces in flight).
    pub fn step_invariants(&self) {
        for (name, index) in &self.stepped {
            if let Some(p) = self.partition(name, *index) {
                p.invariants(self.config.durability);
            }
        }
        assert!(
            !self.coordinator_lent,
            "the coordinator is home between inputs"
        );
        self.produce_waits.check_counts();
        self.fetch_waits.check_counts();
        assert!(
            self.produces_settled.is_empty(),
            "settled produces are released in their step"
        );
        assert_eq!(self.produces.len(), self.produce_waits.len());
        assert!(self.produce_waits.len() <= self.config.produces_parked_max);
        // Every fetch not yet reading is parked, and only those.
        assert!(self.fetch_waits.len() <= self.fetches.len());
        assert!(self.fetch_waits.len() <= self.config.fetches_parked_max);
        assert!(self.internal_waits.len() <= self.config.coordinator_writes_pending_max);
        assert!(self.meta_waiters.len() <= self.config.producer_id_waiters_max);
    }

    /// Whole-broker invariants: after every step in the simulator, tests and debug builds,
    /// and every `full_check_every_steps` steps otherwise (release builds too).
    pub fn invariants(&self) {
        self.step_invariants();
        for (name, t) in &self.topics {
            for p in &t.partitions {
                p.invariants(self.config.durability);
            }
            assert!(
                t.partitions.len() as i64 <= i32::MAX as i64,
                "{name}: too many partitions"
            );
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
        // Every parked produce is in the purgatory, every fetch not yet reading too.
        self.produce_waits.invariants();
        self.fetch_waits.invariants();
        assert!(self
            .produces
            .keys()
            .all(|id| self.produce_waits.contains(*id)));
        for (id, f) in &self.fetches {
            assert_eq!(f.reading.is_none(), self.fetch_waits.contains(*id));
        }

        for l in self.list_offsets.values() {
            l.invariants();
        }
        self.coordinator.invariants();
        self.internal_waits.invariants();
        assert!(self.internal_waits.len() <= self.config.coordinator_writes_pending_max);
        assert!(self.meta_waiters.len() <= self.config.producer_id_waiters_max);
        self.kraft.invariants(self.config.producer_id_waiters_max);
        self.replica_invariants();
        self.authz_invariants();
    }

    /// The level a moved partition has reached for waiters on it, as `level` reads it off the
    /// partition (the acknowledged end for produces, the high watermark for fetches). Events
    /// that end waits without raising the level make every waiter on the partition a candidate
    /// ([`EVERY_WAITER`]): the partition deleted or offline, or its log cut back (after a
    /// failed write) below `highest_offset`, the highest offset a waiter on it needs the log
    /// to still reach.
    fn waiter_level(
        &self,
        key: &(String, i32),
        highest_offset: Option<i64>,
        level: impl Fn(&Partition) -> i64,
    ) -> i64 {
        match self.partition(&key.0, key.1) {
            Some(p)
                if p.offline.is_none()
                    && highest_offset.is_none_or(|o| p.log.log_end_offset() >= o) =>
            {
                level(p)
            }
            _ => EVERY_WAITER,
        }
    }

    fn log(&mut self, level: LogLevel, message: String) {
        self.outputs.push_back(Output::Log { level, message });
    }

    fn storage(&mut self, request: StorageRequest, purpose: OpPurpose) -> OpId {
        let op = OpId(self.next_op);
        self.next_op += 1;
        // Op ids are never reused: a completion finds exactly the op it answers.
        assert!(
            self.ops.insert(op, purpose).is_none(),
            "{op:?} issued twice"
        );
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
        // Requests of a connection are numbered in arrival order, none skipped.
        assert!(state.next_to_send <= seq && seq < state.next_seq);
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
        // The parts of the request the authorizer refused join the handler's answer.
        let body = match body {
            Some(b) => Some(self.patch_response(to, b)),
            None => {
                self.authz_drop(to);
                None
            }
        };
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
        // Responses leave in request order: what waits is only what follows a gap.
        assert!(state.next_to_send <= state.next_seq);
        assert!(!state.ready.contains_key(&state.next_to_send));
    }

    fn close(&mut self, conn: ConnId, reason: String) {
        self.outputs.push_back(Output::Close { conn, reason });
        self.on_conn_closed(conn);
    }

    fn on_conn_closed(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.authz_forget(conn);
        // The answer has nowhere to go, but what the write applies still applies.
        self.internal_waits.forget_conn(conn);
        let gone: Vec<u64> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.reply.conn == conn && f.reading.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.fetches.remove(&id);
            self.fetch_waits.unwatch(id);
        }
        // A ListOffsets with reads in flight stays until they return (its answer then goes
        // nowhere), so every read's completion finds its request.
        for p in self.produces.values_mut() {
            if p.reply.is_some_and(|r| r.conn == conn) {
                p.reply = None;
            }
        }
        self.coordinator.on_conn_closed(conn);
        // Postcondition: nothing parked waits to answer the closed connection.
        assert!(!self.conns.contains_key(&conn));
        assert!(self
            .fetches
            .values()
            .all(|f| f.reply.conn != conn || f.reading.is_some()));
        assert!(self
            .produces
            .values()
            .all(|p| p.reply.is_none_or(|r| r.conn != conn)));
    }

    fn write_broker_meta(&mut self) {
        // One write of broker.meta at a time, reserving ids beyond every one handed out.
        assert!(
            !self.meta_write_in_flight,
            "broker.meta written twice at once"
        );
        assert!(self.next_producer_id <= self.producer_id_block_end);
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

    fn on_request(&mut self, conn: ConnId, request: Request) {
        let to = self.reply_to(conn, &request);
        let version = request.header.request_api_version;
        let Some(body) = self.authorize_request(to, request.body) else {
            return; // refused whole, answered
        };
        match body {
            RequestKind::ApiVersions(_) => self.api_versions(to, version),
            RequestKind::Metadata(r) => self.metadata(to, version, r),
            RequestKind::Produce(r) => self.produce(to, version, r),
            RequestKind::Fetch(r) => self.fetch(to, r),
            RequestKind::ListOffsets(r) => self.list_offsets(to, r),
            RequestKind::OffsetForLeaderEpoch(r) => self.offset_for_leader_epoch(to, r),
            RequestKind::CreateTopics(r) => self.create_topics(to, r),
            RequestKind::DeleteTopics(r) => self.delete_topics(to, version, r),
            RequestKind::InitProducerId(r) => self.init_producer_id(to, r),
            RequestKind::DescribeConfigs(r) => self.describe_configs(to, r),
            RequestKind::CreatePartitions(r) => self.create_partitions(to, r),
            RequestKind::DeleteRecords(r) => self.delete_records(to, r),
            RequestKind::IncrementalAlterConfigs(r) => self.incremental_alter_configs(to, r),
            RequestKind::AlterConfigs(r) => self.alter_configs(to, r),
            RequestKind::DescribeCluster(r) => self.describe_cluster(to, r),
            RequestKind::DescribeLogDirs(r) => self.describe_log_dirs(to, r),
            RequestKind::DescribeProducers(r) => self.describe_producers(to, r),
            RequestKind::DescribeQuorum(r) if self.config.kraft => {
                self.kraft_describe_quorum(to, r)
            }
            RequestKind::ElectLeaders(r) if self.config.kraft => {
                self.kraft_elect_leaders(to, version, r)
            }
            RequestKind::AlterPartitionReassignments(r) if self.config.kraft => {
                self.kraft_alter_reassignments(to, r)
            }
            RequestKind::ListPartitionReassignments(r) if self.config.kraft => {
                self.kraft_list_reassignments(to, r)
            }
            RequestKind::DescribeAcls(r) => self.describe_acls(to, r),
            RequestKind::CreateAcls(r) => self.create_acls(to, r),
            RequestKind::DeleteAcls(r) => self.delete_acls(to, r),
            RequestKind::DescribeUserScramCredentials(r) if self.config.kraft => {
                self.kraft_describe_scram(to, r)
            }
            RequestKind::AlterUserScramCredentials(r) if self.config.kraft => {
                self.kraft_alter_scram(to, r)
            }
            RequestKind::FindCoordinator(r) if self.config.kraft => {
                self.kraft_find_coordinator(to, r)
            }
            body => {
                if !self.with_groups(|c, host| crate::group::handle(c, host, to, body)) {
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
}
