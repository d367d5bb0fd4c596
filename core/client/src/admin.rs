//! The admin client: topics, configs, offsets and groups, as Kafka's `AdminClient` does them.
//!
//! KIP-4 gave Kafka admin *requests* (CreateTopics, DeleteTopics, DescribeConfigs, …) so tools
//! no longer write to ZooKeeper; KIP-117 gave Java the `AdminClient` that sends them. Its rules
//! are the ones here, because on a cluster each request has a broker it must go to:
//!
//! * **any broker**: CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs of topics,
//!   IncrementalAlterConfigs of topics, Metadata (describe topics, describe cluster), and the
//!   partition reassignments of KIP-455 (AlterPartitionReassignments,
//!   ListPartitionReassignments). A broker that is not the controller forwards to it (KIP-590):
//!   a KRaft cluster's controllers take no client connections, so Kafka's admin client sends
//!   these to a broker, as gregor's brokers expect;
//! * **each partition's leader**: ListOffsets and DeleteRecords. The partitions are split by
//!   leader (from metadata), one request per leader, and the answers merged into one result;
//! * **the group's coordinator**: DescribeGroups, OffsetFetch, OffsetCommit, OffsetDelete,
//!   DeleteGroups. FindCoordinator says which broker it is; the answer is cached and forgotten
//!   when a broker answers NOT_COORDINATOR (the group's partition of `__consumer_offsets`
//!   moved);
//! * **every broker**: ListGroups, since each broker knows only the groups it coordinates; the
//!   lists are merged.
//!
//! An operation is split into *units* (a topic, a partition, a group, a broker) so that the part
//! that failed is the part retried. A retriable error (NOT_LEADER_OR_FOLLOWER, NOT_COORDINATOR,
//! COORDINATOR_LOAD_IN_PROGRESS, a lost connection, …) sends the unit back to waiting for
//! `retry.backoff.ms`, after forgetting the leader or coordinator that failed; the next
//! Metadata or FindCoordinator answer says where to go. When `default.api.timeout.ms` passes
//! the units still unfinished fail with the last error seen. Every other error is the unit's
//! result. The application gets one [`Output::Admin`] per operation, with the [`AdminId`]
//! [`Client::admin`] returned.
//!
//! Versions are negotiated per connection: each request is built at the highest version both
//! the broker and [`crate::conn::SPEAKS`] allow.

use crate::client::{sb, Client};
use crate::conn::Purpose;
use crate::io::{ClientError, NodeId, Output};
use crate::metadata::TopicPartition;
use bytes::{Buf, Bytes};
use gregor_core::{Duration, Instant};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet};

/// The handle of one admin operation; its result carries it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AdminId(pub u64);

/// Which offset ListOffsets looks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The high watermark: the offset the next record gets.
    Latest,
    /// The first offset whose record's timestamp is at or after this Unix ms time; offset −1
    /// when there is none (KIP-79).
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// A topic to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    /// −1: the broker's default (`num.partitions`).
    pub partitions: i32,
    /// −1: the broker's default (`default.replication.factor`).
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// One change of IncrementalAlterConfigs (KIP-339).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigChange {
    /// Set an override.
    Set(String, String),
    /// Remove an override: back to the broker's default.
    Delete(String),
}

/// What the application asks the admin client to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminOp {
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    DeleteTopics {
        topics: Vec<String>,
    },
    /// Grow a topic to `count` partitions (KIP-195).
    CreatePartitions {
        topic: String,
        count: i32,
        validate_only: bool,
    },
    /// Topics with their partitions, leaders and replicas (Metadata); `None` is every topic.
    DescribeTopics {
        topics: Option<Vec<String>>,
    },
    DescribeConfigs {
        topics: Vec<String>,
    },
    AlterConfigs {
        topic: String,
        changes: Vec<ConfigChange>,
        validate_only: bool,
    },
    ListOffsets {
        partitions: Vec<(TopicPartition, OffsetSpec)>,
    },
    /// Move each partition's log start up to an offset (−1: the high watermark) (KIP-107).
    DeleteRecords {
        partitions: Vec<(TopicPartition, i64)>,
    },
    ListGroups,
    DescribeGroups {
        groups: Vec<String>,
    },
    /// A group's committed offsets (OffsetFetch): of these partitions, or `None` for every
    /// partition it has an offset for (OffsetFetch v2+; librdkafka's mock cluster cannot).
    ListGroupOffsets {
        group: String,
        partitions: Option<Vec<TopicPartition>>,
    },
    /// Commit offsets for a group with no members, as kafka-consumer-groups' reset does:
    /// generation −1, no member id. The coordinator refuses while the group has members.
    CommitGroupOffsets {
        group: String,
        offsets: Vec<(TopicPartition, i64)>,
    },
    /// Delete a group's committed offsets of some partitions (OffsetDelete, KIP-496).
    DeleteGroupOffsets {
        group: String,
        partitions: Vec<TopicPartition>,
    },
    DeleteGroups {
        groups: Vec<String>,
    },
    DescribeCluster,
    /// Move partitions to new replicas (KIP-455, `kafka-reassign-partitions.sh --execute`):
    /// each partition's target replicas, the first the preferred leader; `None` cancels the
    /// move in progress. A move starts when the controller accepts it and completes later, once
    /// every added replica has caught up and joined the ISR: the result says only whether it
    /// was accepted. Sending the same target again is harmless (nothing changes), so a move
    /// whose answer was lost is simply asked again.
    AlterPartitionReassignments {
        partitions: Vec<(TopicPartition, Option<Vec<i32>>)>,
    },
    /// The moves in progress (ListPartitionReassignments): of these partitions, or `None` for
    /// every partition being moved.
    ListPartitionReassignments {
        partitions: Option<Vec<TopicPartition>>,
    },
}

/// A partition being moved, as ListPartitionReassignments reports it (KIP-455).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reassignment {
    /// The current replicas: the target first, then the ones leaving.
    pub replicas: Vec<i32>,
    /// Target replicas still catching up.
    pub adding: Vec<i32>,
    /// Replicas that leave once every adding one is in the ISR.
    pub removing: Vec<i32>,
}

/// One partition of a described topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// −1 while it has none.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas on brokers that are not live (Metadata v5+; empty before).
    pub offline_replicas: Vec<i32>,
    pub error_code: i16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub internal: bool,
    /// By partition index.
    pub partitions: Vec<PartitionInfo>,
}

/// A config as DescribeConfigs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Kafka's `ConfigSource`: 1 a topic override, 5 the default, … (see [`config_source_name`]).
    pub source: i8,
    pub read_only: bool,
    pub sensitive: bool,
}

/// Kafka's name of a `ConfigSource`.
pub fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

/// What ListOffsets found for one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedOffset {
    /// −1 when no record is at or after the timestamp asked for.
    pub offset: i64,
    /// The record's timestamp (for a lookup by time), else −1.
    pub timestamp_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// Empty when the broker does not say (ListGroups before v4).
    pub state: String,
    /// `consumer` for consumer groups, empty for groups that only commit offsets.
    pub protocol_type: String,
    /// The broker that listed it: its coordinator.
    pub coordinator: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    /// The partitions assigned, decoded from the consumer protocol's assignment.
    pub assignment: Vec<TopicPartition>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignor chosen (`range`, …).
    pub protocol: String,
    pub members: Vec<MemberInfo>,
    pub coordinator: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    pub cluster_id: Option<String>,
    pub controller: i32,
    pub brokers: Vec<BrokerInfo>,
}

pub type PerTopic<T> = BTreeMap<String, Result<T, ClientError>>;
pub type PerPartition<T> = BTreeMap<TopicPartition, Result<T, ClientError>>;

/// The result of one [`AdminOp`], item by item where the operation has several.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminResult {
    /// Each topic's partition count (−1 when the broker does not say: CreateTopics before v5).
    CreateTopics(PerTopic<i32>),
    DeleteTopics(PerTopic<()>),
    CreatePartitions(PerTopic<()>),
    DescribeTopics(PerTopic<TopicInfo>),
    DescribeConfigs(PerTopic<Vec<ConfigEntry>>),
    AlterConfigs(PerTopic<()>),
    ListOffsets(PerPartition<ListedOffset>),
    /// Each partition's new log start offset.
    DeleteRecords(PerPartition<i64>),
    ListGroups(Vec<GroupListing>),
    DescribeGroups(BTreeMap<String, Result<GroupInfo, ClientError>>),
    /// Partitions without a committed offset are left out.
    GroupOffsets(BTreeMap<TopicPartition, i64>),
    CommitGroupOffsets(PerPartition<()>),
    DeleteGroupOffsets(PerPartition<()>),
    DeleteGroups(BTreeMap<String, Result<(), ClientError>>),
    DescribeCluster(ClusterInfo),
    /// Each partition's move: accepted (started, or already where it was asked to go) or why
    /// not.
    AlterPartitionReassignments(PerPartition<()>),
    /// The partitions being moved; a partition not listed is not being moved.
    ListPartitionReassignments(BTreeMap<TopicPartition, Reassignment>),
}

/// The part of an operation that is sent, retried and answered as one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unit {
    /// The whole operation (describe topics, describe cluster).
    One,
    Topic(String),
    Partition(TopicPartition),
    Group(String),
    Broker(i32),
    /// A partition's reassignment: sent to any broker, not to the partition's leader.
    Move(TopicPartition),
}

/// A unit's answer.
#[derive(Clone, Debug)]
enum Value {
    Empty,
    Count(i32),
    Offset(ListedOffset),
    LowWatermark(i64),
    Topics(PerTopic<TopicInfo>),
    Configs(Vec<ConfigEntry>),
    Groups(Vec<GroupListing>),
    Group(GroupInfo),
    Offsets(BTreeMap<TopicPartition, i64>),
    PerPartition(PerPartition<()>),
    Cluster(ClusterInfo),
    Moves(BTreeMap<TopicPartition, Reassignment>),
}

/// Where a unit's request goes.
enum Route {
    Any,
    Leader(TopicPartition),
    Coordinator(String),
    Broker(i32),
}

/// What one unit's answer means.
enum Outcome {
    Done(Result<Value, ClientError>),
    /// Retriable: forget where it went, wait, send again.
    Retry(ClientError),
}

#[derive(Clone, Debug)]
struct Task {
    op: AdminOp,
    deadline: Instant,
    /// Units to send, each not before a time.
    waiting: BTreeMap<Unit, Instant>,
    in_flight: BTreeSet<Unit>,
    done: BTreeMap<Unit, Result<Value, ClientError>>,
    /// Each unit's last retriable error, for the timeout's message.
    last_error: BTreeMap<Unit, ClientError>,
    /// The count of Metadata answers when the task last needed a fresh one: an answer after it
    /// is fresh enough to say a topic does not exist.
    meta_seen: u64,
    /// ListGroups: the brokers are known and are its units.
    expanded: bool,
}

/// A FindCoordinator lookup for the admin's groups.
#[derive(Clone, Debug, Default)]
struct Lookup {
    in_flight: bool,
    not_before: Instant,
}

#[derive(Clone, Debug, Default)]
pub struct Admin {
    next_id: u64,
    tasks: BTreeMap<AdminId, Task>,
    /// group → its coordinator's broker id.
    coordinators: BTreeMap<String, i32>,
    lookups: BTreeMap<String, Lookup>,
    /// Brokers FindCoordinator named: their addresses, for brokers metadata has not listed.
    pub(crate) addresses: BTreeMap<i32, (String, u16)>,
}

fn code_error(code: i16, message: Option<&str>, context: &str) -> ClientError {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => ClientError::broker(code, format!("{context}: {m}")),
        None => ClientError::broker(code, context.to_string()),
    }
}

/// Whether `code` is worth another try for `unit`. A topic that does not exist is final for
/// requests that name topics, but for a partition's leader it may mean the leader has not
/// heard of the topic yet: metadata decides.
fn retriable(code: i16, unit: &Unit) -> bool {
    if code == ResponseError::UnknownTopicOrPartition.code() {
        return matches!(unit, Unit::Partition(_));
    }
    ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable())
}

/// The outcome of an error code (0: `ok`) for `unit`.
fn outcome(
    unit: &Unit,
    code: i16,
    message: Option<&str>,
    context: &str,
    ok: impl FnOnce() -> Value,
) -> Outcome {
    if code == 0 {
        Outcome::Done(Ok(ok()))
    } else if retriable(code, unit) {
        Outcome::Retry(code_error(code, message, context))
    } else {
        Outcome::Done(Err(code_error(code, message, context)))
    }
}

fn route(unit: &Unit) -> Route {
    match unit {
        Unit::One | Unit::Topic(_) | Unit::Move(_) => Route::Any,
        Unit::Partition(tp) => Route::Leader(tp.clone()),
        Unit::Group(g) => Route::Coordinator(g.clone()),
        Unit::Broker(b) => Route::Broker(*b),
    }
}

/// The units an operation starts with (ListGroups gets its brokers once metadata names them).
fn units(op: &AdminOp) -> Vec<Unit> {
    let topics = |ts: &mut dyn Iterator<Item = &String>| ts.cloned().map(Unit::Topic).collect();
    match op {
        AdminOp::CreateTopics { topics: ts, .. } => topics(&mut ts.iter().map(|t| &t.name)),
        AdminOp::DeleteTopics { topics: ts } | AdminOp::DescribeConfigs { topics: ts } => {
            topics(&mut ts.iter())
        }
        AdminOp::CreatePartitions { topic, .. } | AdminOp::AlterConfigs { topic, .. } => {
            vec![Unit::Topic(topic.clone())]
        }
        AdminOp::DescribeTopics { .. }
        | AdminOp::DescribeCluster
        | AdminOp::ListPartitionReassignments { .. } => vec![Unit::One],
        AdminOp::AlterPartitionReassignments { partitions } => partitions
            .iter()
            .map(|(tp, _)| Unit::Move(tp.clone()))
            .collect(),
        AdminOp::ListOffsets { partitions } => partitions
            .iter()
            .map(|(tp, _)| Unit::Partition(tp.clone()))
            .collect(),
        AdminOp::DeleteRecords { partitions } => partitions
            .iter()
            .map(|(tp, _)| Unit::Partition(tp.clone()))
            .collect(),
        AdminOp::ListGroups => vec![],
        AdminOp::DescribeGroups { groups } | AdminOp::DeleteGroups { groups } => {
            groups.iter().cloned().map(Unit::Group).collect()
        }
        AdminOp::ListGroupOffsets { group, .. }
        | AdminOp::CommitGroupOffsets { group, .. }
        | AdminOp::DeleteGroupOffsets { group, .. } => vec![Unit::Group(group.clone())],
    }
}

/// Partitions grouped by topic, as requests list them.
fn by_topic<T: Clone>(
    items: impl Iterator<Item = (TopicPartition, T)>,
) -> BTreeMap<String, Vec<(i32, T)>> {
    let mut m: BTreeMap<String, Vec<(i32, T)>> = BTreeMap::new();
    for ((t, p), v) in items {
        m.entry(t).or_default().push((p, v));
    }
    m
}

/// Decode a consumer's assignment (`ConsumerProtocolAssignment`, its version first).
fn decode_assignment(mut b: Bytes) -> Vec<TopicPartition> {
    if b.remaining() < 2 {
        return vec![];
    }
    let version = b.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut b, version) {
        Ok(a) => a
            .assigned_partitions
            .iter()
            .flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.to_string(), *p)))
            .collect(),
        Err(_) => vec![],
    }
}

impl Client {
    /// Start an admin operation; its result comes as one [`Output::Admin`] with this id.
    pub fn admin(&mut self, now: Instant, op: AdminOp) -> AdminId {
        self.advance(now);
        self.admin.next_id += 1;
        let id = AdminId(self.admin.next_id);
        let waiting = units(&op).into_iter().map(|u| (u, now)).collect();
        if matches!(op, AdminOp::ListGroups) {
            self.meta.cluster_wanted = true;
            self.meta.refresh = true;
        }
        let task = Task {
            op,
            deadline: now + Duration::from_ms(self.config.default_api_timeout_ms),
            waiting,
            in_flight: BTreeSet::new(),
            done: BTreeMap::new(),
            last_error: BTreeMap::new(),
            meta_seen: self.meta.answers,
            expanded: false,
        };
        self.admin.tasks.insert(id, task);
        self.step();
        id
    }

    /// Operations started and not yet answered.
    pub fn admin_pending(&self) -> usize {
        self.admin.tasks.len()
    }

    pub(crate) fn admin_deadline(&self) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        for task in self.admin.tasks.values() {
            at(task.deadline);
            for nb in task.waiting.values() {
                if *nb > self.now {
                    at(*nb);
                }
            }
        }
        for l in self.admin.lookups.values() {
            if !l.in_flight && l.not_before > self.now {
                at(l.not_before);
            }
        }
        t
    }

    pub(crate) fn step_admin(&mut self) {
        let ids: Vec<AdminId> = self.admin.tasks.keys().copied().collect();
        let mut lookups = BTreeSet::new();
        for id in ids {
            self.step_task(id, &mut lookups);
        }
        self.send_lookups(lookups);
    }

    fn step_task(&mut self, id: AdminId, lookups: &mut BTreeSet<String>) {
        let now = self.now;
        let task = self.admin.tasks.get_mut(&id).expect("a task");
        if now >= task.deadline {
            let ms = self.config.default_api_timeout_ms;
            let waiting = std::mem::take(&mut task.waiting).into_keys();
            let units: Vec<Unit> = waiting.chain(std::mem::take(&mut task.in_flight)).collect();
            for u in units {
                let why = match task.last_error.get(&u) {
                    Some(e) => {
                        format!("no answer in {ms} ms (default.api.timeout.ms); last error: {e}")
                    }
                    None => format!("no answer in {ms} ms (default.api.timeout.ms)"),
                };
                task.done.insert(u, Err(ClientError::Timeout(why)));
            }
            return self.finish_if_done(id);
        }
        if matches!(task.op, AdminOp::ListGroups) && !task.expanded {
            if self.meta.answers > task.meta_seen && !self.meta.brokers.is_empty() {
                task.expanded = true;
                for b in self.meta.brokers.keys() {
                    task.waiting.insert(Unit::Broker(*b), now);
                }
            } else {
                return;
            }
        }
        let fresh = self.meta.answers > task.meta_seen;
        let ready: Vec<Unit> = task
            .waiting
            .iter()
            .filter(|(_, nb)| **nb <= now)
            .map(|(u, _)| u.clone())
            .collect();
        let mut by_node: BTreeMap<NodeId, Vec<Unit>> = BTreeMap::new();
        let mut any: Option<Option<NodeId>> = None;
        for u in ready {
            let node = match route(&u) {
                Route::Any => *any.get_or_insert_with(|| self.any_ready_node()),
                Route::Broker(b) => Some(NodeId(b)),
                Route::Coordinator(g) => match self.admin.coordinators.get(&g) {
                    Some(b) => Some(NodeId(*b)),
                    None => {
                        lookups.insert(g);
                        None
                    }
                },
                Route::Leader(tp) => match self.meta.leader(&tp) {
                    Some(b) => Some(NodeId(b)),
                    None => {
                        self.want_topic(&tp.0);
                        if fresh {
                            if let Some(e) = self.missing_partition(&tp) {
                                let task = self.admin.tasks.get_mut(&id).unwrap();
                                task.waiting.remove(&u);
                                task.done.insert(u.clone(), Err(e));
                            }
                        }
                        None
                    }
                },
            };
            if let Some(n) = node {
                by_node.entry(n).or_default().push(u);
            }
        }
        for (node, units) in by_node {
            if self.ready(node) {
                self.send_admin(id, node, units);
            }
        }
        self.finish_if_done(id);
    }

    /// After a fresh Metadata answer: why `tp` has no leader, if it is for good.
    fn missing_partition(&self, tp: &TopicPartition) -> Option<ClientError> {
        if let Some(code) = self.meta.topic_errors.get(&tp.0) {
            return (*code != ResponseError::LeaderNotAvailable.code())
                .then(|| ClientError::broker(*code, format!("topic {}", tp.0)));
        }
        let n = self.meta.partitions(&tp.0)?;
        (tp.1 < 0 || tp.1 >= n).then(|| {
            ClientError::broker(
                ResponseError::UnknownTopicOrPartition.code(),
                format!("{} has {n} partition(s), no {}", tp.0, tp.1),
            )
        })
    }

    fn send_lookups(&mut self, groups: BTreeSet<String>) {
        for g in groups {
            let l = self.admin.lookups.entry(g.clone()).or_default();
            if l.in_flight || l.not_before > self.now {
                continue;
            }
            let Some(node) = self.any_ready_node() else {
                return;
            };
            let Some(v) = self.conns[&node].version(ApiKey::FindCoordinator) else {
                let e = ClientError::broker(
                    ResponseError::UnsupportedVersion.code(),
                    "the broker speaks no FindCoordinator version this client speaks",
                );
                self.fail_group(&g, e);
                continue;
            };
            self.admin.lookups.get_mut(&g).unwrap().in_flight = true;
            let body = FindCoordinatorRequest::default()
                .with_key(sb(&g))
                .with_key_type(0);
            self.send_request(
                node,
                ApiKey::FindCoordinator,
                v,
                RequestKind::FindCoordinator(body),
                Purpose::AdminFindCoordinator(g),
                true,
            );
        }
    }

    /// Every waiting unit of group `g`, in every task, fails with `e`.
    fn fail_group(&mut self, g: &str, e: ClientError) {
        let ids: Vec<AdminId> = self.admin.tasks.keys().copied().collect();
        for id in ids {
            let task = self.admin.tasks.get_mut(&id).unwrap();
            let u = Unit::Group(g.to_string());
            if task.waiting.remove(&u).is_some() {
                task.done.insert(u, Err(e.clone()));
            }
            self.finish_if_done(id);
        }
    }

    pub(crate) fn on_admin_find_coordinator(&mut self, group: String, r: FindCoordinatorResponse) {
        let l = self.admin.lookups.entry(group.clone()).or_default();
        l.in_flight = false;
        let port = u16::try_from(r.port).ok();
        if let Some(port) = port.filter(|_| r.error_code == 0 && r.node_id.0 >= 0) {
            let b = r.node_id.0;
            self.admin.addresses.insert(b, (r.host.to_string(), port));
            self.admin.coordinators.insert(group, b);
            return;
        }
        let code = if r.error_code == 0 {
            ResponseError::CoordinatorNotAvailable.code()
        } else {
            r.error_code
        };
        let e = code_error(
            code,
            r.error_message.as_deref(),
            &format!("finding the coordinator of group {group}"),
        );
        if retriable(code, &Unit::Group(group.clone())) {
            l.not_before = self.now + Duration::from_ms(self.config.retry_backoff_ms);
            self.outputs.push_back(Output::Log {
                message: format!("admin: {e}; retrying"),
            });
            for task in self.admin.tasks.values_mut() {
                let u = Unit::Group(group.clone());
                if task.waiting.contains_key(&u) {
                    task.last_error.insert(u, e.clone());
                }
            }
        } else {
            self.fail_group(&group, e);
        }
    }

    pub(crate) fn admin_find_coordinator_lost(&mut self, group: &str) {
        let l = self.admin.lookups.entry(group.to_string()).or_default();
        l.in_flight = false;
        l.not_before = self.now + Duration::from_ms(self.config.retry_backoff_ms);
    }

    /// Build and send the request for `units` of task `id`, all routed to `node`.
    fn send_admin(&mut self, id: AdminId, node: NodeId, units: Vec<Unit>) {
        let task = &self.admin.tasks[&id];
        let key = api_key(&task.op);
        // OffsetFetch v1 must name the partitions; every partition of a group needs v2.
        let every = matches!(
            task.op,
            AdminOp::ListGroupOffsets {
                partitions: None,
                ..
            }
        );
        let min = if every { 2 } else { 0 };
        let Some(v) = self.conns[&node].version(key).filter(|v| *v >= min) else {
            let e = ClientError::broker(
                ResponseError::UnsupportedVersion.code(),
                format!(
                    "broker {} speaks no {key:?} version this client speaks",
                    node.0
                ),
            );
            let task = self.admin.tasks.get_mut(&id).unwrap();
            for u in units {
                task.waiting.remove(&u);
                task.done.insert(u, Err(e.clone()));
            }
            return;
        };
        let body = build(&task.op, &units, self.config.request_timeout_ms);
        let task = self.admin.tasks.get_mut(&id).unwrap();
        for u in &units {
            task.waiting.remove(u);
            task.in_flight.insert(u.clone());
        }
        self.send_request(node, key, v, body, Purpose::Admin(id, units), true);
    }

    pub(crate) fn on_admin_response(
        &mut self,
        node: NodeId,
        id: AdminId,
        units: Vec<Unit>,
        body: ResponseKind,
    ) {
        let Some(task) = self.admin.tasks.get(&id) else {
            return; // timed out meanwhile
        };
        let coordinator = node.0;
        let mut outcomes = parse(&task.op, &units, body, coordinator);
        for u in &units {
            if !outcomes.contains_key(u) {
                // The broker left out something it was asked about.
                outcomes.insert(
                    u.clone(),
                    Outcome::Done(Err(ClientError::Invalid(format!(
                        "broker {} did not answer for {u:?}",
                        node.0
                    )))),
                );
            }
        }
        for (u, o) in outcomes {
            self.unit_outcome(id, u, o);
        }
        self.finish_if_done(id);
    }

    /// A response that does not decode: its units fail (the same question would get the same
    /// answer).
    pub(crate) fn admin_undecodable(&mut self, id: AdminId, units: Vec<Unit>, why: &str) {
        if !self.admin.tasks.contains_key(&id) {
            return;
        }
        for u in units {
            let e = ClientError::Invalid(why.to_string());
            self.unit_outcome(id, u, Outcome::Done(Err(e)));
        }
        self.finish_if_done(id);
    }

    /// A request's connection dropped or timed out: its units are tried again.
    pub(crate) fn admin_lost(&mut self, id: AdminId, units: Vec<Unit>, reason: &str) {
        if !self.admin.tasks.contains_key(&id) {
            return;
        }
        for u in units {
            let e = ClientError::Timeout(format!("connection lost: {reason}"));
            self.unit_outcome(id, u, Outcome::Retry(e));
        }
    }

    fn unit_outcome(&mut self, id: AdminId, u: Unit, o: Outcome) {
        let answers = self.meta.answers;
        let retry_at = self.now + Duration::from_ms(self.config.retry_backoff_ms);
        let task = self.admin.tasks.get_mut(&id).unwrap();
        if !task.in_flight.remove(&u) {
            return; // answered twice: the first answer stands
        }
        match o {
            Outcome::Done(r) => {
                task.done.insert(u, r);
            }
            Outcome::Retry(e) => {
                task.meta_seen = answers;
                self.outputs.push_back(Output::Log {
                    message: format!("admin: {e}; retrying"),
                });
                task.waiting.insert(u.clone(), retry_at);
                task.last_error.insert(u.clone(), e);
                match &u {
                    Unit::Partition(tp) => self.meta.forget_leader(tp),
                    Unit::Group(g) => {
                        self.admin.coordinators.remove(g);
                    }
                    _ => {}
                }
            }
        }
    }

    fn finish_if_done(&mut self, id: AdminId) {
        let task = &self.admin.tasks[&id];
        let ready = task.waiting.is_empty()
            && task.in_flight.is_empty()
            && (task.expanded || !matches!(task.op, AdminOp::ListGroups));
        if !ready {
            return;
        }
        let task = self.admin.tasks.remove(&id).unwrap();
        if matches!(task.op, AdminOp::ListGroups)
            && !self
                .admin
                .tasks
                .values()
                .any(|t| matches!(t.op, AdminOp::ListGroups))
        {
            self.meta.cluster_wanted = false;
        }
        let result = assemble(&task.op, task.done);
        self.outputs.push_back(Output::Admin { id, result });
    }

    pub(crate) fn admin_invariants(&self) {
        for (id, t) in &self.admin.tasks {
            assert!(
                t.waiting
                    .keys()
                    .all(|u| !t.in_flight.contains(u) && !t.done.contains_key(u))
                    && t.in_flight.iter().all(|u| !t.done.contains_key(u)),
                "admin {id:?}: a unit is waiting, in flight or done, one at a time"
            );
            let sent: usize = self
                .conns
                .values()
                .flat_map(|c| &c.in_flight)
                .filter_map(|p| match &p.purpose {
                    Purpose::Admin(i, us) if i == id => Some(us.len()),
                    _ => None,
                })
                .sum();
            assert!(
                sent <= t.in_flight.len(),
                "admin {id:?}: requests in flight only for units in flight"
            );
        }
        for (g, l) in &self.admin.lookups {
            let sent = self
                .conns
                .values()
                .flat_map(|c| &c.in_flight)
                .any(|p| matches!(&p.purpose, Purpose::AdminFindCoordinator(x) if x == g));
            assert_eq!(
                sent, l.in_flight,
                "lookup of {g} in flight iff its request is"
            );
        }
    }
}

fn api_key(op: &AdminOp) -> ApiKey {
    match op {
        AdminOp::CreateTopics { .. } => ApiKey::CreateTopics,
        AdminOp::DeleteTopics { .. } => ApiKey::DeleteTopics,
        AdminOp::CreatePartitions { .. } => ApiKey::CreatePartitions,
        AdminOp::DescribeTopics { .. } | AdminOp::DescribeCluster => ApiKey::Metadata,
        AdminOp::DescribeConfigs { .. } => ApiKey::DescribeConfigs,
        AdminOp::AlterConfigs { .. } => ApiKey::IncrementalAlterConfigs,
        AdminOp::ListOffsets { .. } => ApiKey::ListOffsets,
        AdminOp::DeleteRecords { .. } => ApiKey::DeleteRecords,
        AdminOp::ListGroups => ApiKey::ListGroups,
        AdminOp::DescribeGroups { .. } => ApiKey::DescribeGroups,
        AdminOp::ListGroupOffsets { .. } => ApiKey::OffsetFetch,
        AdminOp::CommitGroupOffsets { .. } => ApiKey::OffsetCommit,
        AdminOp::DeleteGroupOffsets { .. } => ApiKey::OffsetDelete,
        AdminOp::DeleteGroups { .. } => ApiKey::DeleteGroups,
        AdminOp::AlterPartitionReassignments { .. } => ApiKey::AlterPartitionReassignments,
        AdminOp::ListPartitionReassignments { .. } => ApiKey::ListPartitionReassignments,
    }
}

/// The topics among `units`.
fn unit_topics(units: &[Unit]) -> BTreeSet<&str> {
    units
        .iter()
        .filter_map(|u| match u {
            Unit::Topic(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn unit_partitions(units: &[Unit]) -> BTreeSet<&TopicPartition> {
    units
        .iter()
        .filter_map(|u| match u {
            Unit::Partition(tp) => Some(tp),
            _ => None,
        })
        .collect()
}

/// The partitions of the reassignment units among `units`.
fn unit_moves(units: &[Unit]) -> BTreeSet<&TopicPartition> {
    units
        .iter()
        .filter_map(|u| match u {
            Unit::Move(tp) => Some(tp),
            _ => None,
        })
        .collect()
}

fn unit_groups(units: &[Unit]) -> Vec<GroupId> {
    units
        .iter()
        .filter_map(|u| match u {
            Unit::Group(g) => Some(GroupId(sb(g))),
            _ => None,
        })
        .collect()
}

/// The request body for `units` of `op` at version `v`.
fn build(op: &AdminOp, units: &[Unit], timeout_ms: u64) -> RequestKind {
    let timeout_ms = timeout_ms.min(i32::MAX as u64) as i32;
    let topics = unit_topics(units);
    let parts = unit_partitions(units);
    match op {
        AdminOp::CreateTopics {
            topics: ts,
            validate_only,
        } => RequestKind::CreateTopics(
            CreateTopicsRequest::default()
                .with_timeout_ms(timeout_ms)
                .with_validate_only(*validate_only)
                .with_topics(
                    ts.iter()
                        .filter(|t| topics.contains(t.name.as_str()))
                        .map(|t| {
                            create_topics_request::CreatableTopic::default()
                                .with_name(TopicName(sb(&t.name)))
                                .with_num_partitions(t.partitions)
                                .with_replication_factor(t.replication_factor)
                                .with_configs(
                                    t.configs
                                        .iter()
                                        .map(|(k, v)| {
                                            create_topics_request::CreatableTopicConfig::default()
                                                .with_name(sb(k))
                                                .with_value(Some(sb(v)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
        ),
        AdminOp::DeleteTopics { .. } => RequestKind::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_timeout_ms(timeout_ms)
                .with_topic_names(topics.iter().map(|t| TopicName(sb(t))).collect()),
        ),
        AdminOp::CreatePartitions {
            topic,
            count,
            validate_only,
        } => RequestKind::CreatePartitions(
            CreatePartitionsRequest::default()
                .with_timeout_ms(timeout_ms)
                .with_validate_only(*validate_only)
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(TopicName(sb(topic)))
                        .with_count(*count),
                ]),
        ),
        AdminOp::DescribeTopics { topics: ts } => {
            let names = ts.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| {
                        metadata_request::MetadataRequestTopic::default()
                            .with_name(Some(TopicName(sb(t))))
                    })
                    .collect()
            });
            RequestKind::Metadata(
                MetadataRequest::default()
                    .with_topics(names)
                    .with_allow_auto_topic_creation(false),
            )
        }
        AdminOp::DescribeCluster => RequestKind::Metadata(
            MetadataRequest::default()
                .with_topics(Some(vec![]))
                .with_allow_auto_topic_creation(false),
        ),
        AdminOp::DescribeConfigs { .. } => RequestKind::DescribeConfigs(
            DescribeConfigsRequest::default().with_resources(
                topics
                    .iter()
                    .map(|t| {
                        describe_configs_request::DescribeConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(sb(t))
                    })
                    .collect(),
            ),
        ),
        AdminOp::AlterConfigs {
            topic,
            changes,
            validate_only,
        } => {
            use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
            let ops = changes
                .iter()
                .map(|c| match c {
                    ConfigChange::Set(k, v) => AlterableConfig::default()
                        .with_name(sb(k))
                        .with_config_operation(0)
                        .with_value(Some(sb(v))),
                    ConfigChange::Delete(k) => AlterableConfig::default()
                        .with_name(sb(k))
                        .with_config_operation(1),
                })
                .collect();
            RequestKind::IncrementalAlterConfigs(
                IncrementalAlterConfigsRequest::default()
                    .with_validate_only(*validate_only)
                    .with_resources(vec![AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(sb(topic))
                        .with_configs(ops)]),
            )
        }
        AdminOp::ListOffsets { partitions } => {
            use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
            let wanted = partitions.iter().filter(|(tp, _)| parts.contains(tp));
            let topics = by_topic(wanted.map(|(tp, s)| (tp.clone(), *s)))
                .into_iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(sb(&t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, s)| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(p)
                                        .with_timestamp(s.wire())
                                })
                                .collect(),
                        )
                })
                .collect();
            RequestKind::ListOffsets(
                ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(topics),
            )
        }
        AdminOp::DeleteRecords { partitions } => {
            use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
            let wanted = partitions.iter().filter(|(tp, _)| parts.contains(tp));
            let topics = by_topic(wanted.cloned())
                .into_iter()
                .map(|(t, ps)| {
                    DeleteRecordsTopic::default()
                        .with_name(TopicName(sb(&t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, o)| {
                                    DeleteRecordsPartition::default()
                                        .with_partition_index(p)
                                        .with_offset(o)
                                })
                                .collect(),
                        )
                })
                .collect();
            RequestKind::DeleteRecords(
                DeleteRecordsRequest::default()
                    .with_timeout_ms(timeout_ms)
                    .with_topics(topics),
            )
        }
        AdminOp::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        AdminOp::DescribeGroups { .. } => RequestKind::DescribeGroups(
            DescribeGroupsRequest::default().with_groups(unit_groups(units)),
        ),
        AdminOp::DeleteGroups { .. } => RequestKind::DeleteGroups(
            DeleteGroupsRequest::default().with_groups_names(unit_groups(units)),
        ),
        AdminOp::ListGroupOffsets { group, partitions } => {
            use offset_fetch_request::OffsetFetchRequestTopic;
            let topics = partitions.as_ref().map(|tps| {
                by_topic(tps.iter().map(|tp| (tp.clone(), ())))
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(TopicName(sb(&t)))
                            .with_partition_indexes(ps.into_iter().map(|(p, ())| p).collect())
                    })
                    .collect()
            });
            RequestKind::OffsetFetch(
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(sb(group)))
                    .with_topics(topics),
            )
        }
        AdminOp::CommitGroupOffsets { group, offsets } => {
            use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
            let topics = by_topic(offsets.iter().cloned())
                .into_iter()
                .map(|(t, ps)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(sb(&t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, o)| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                })
                                .collect(),
                        )
                })
                .collect();
            RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(sb(group)))
                    .with_generation_id_or_member_epoch(-1)
                    .with_member_id(sb(""))
                    .with_topics(topics),
            )
        }
        AdminOp::DeleteGroupOffsets { group, partitions } => {
            use offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
            let topics = by_topic(partitions.iter().map(|tp| (tp.clone(), ())))
                .into_iter()
                .map(|(t, ps)| {
                    OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(sb(&t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, ())| {
                                    OffsetDeleteRequestPartition::default().with_partition_index(p)
                                })
                                .collect(),
                        )
                })
                .collect();
            RequestKind::OffsetDelete(
                OffsetDeleteRequest::default()
                    .with_group_id(GroupId(sb(group)))
                    .with_topics(topics),
            )
        }
        AdminOp::AlterPartitionReassignments { partitions } => {
            use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
            let moves = unit_moves(units);
            let wanted = partitions.iter().filter(|(tp, _)| moves.contains(tp));
            let topics = by_topic(wanted.cloned())
                .into_iter()
                .map(|(t, ps)| {
                    ReassignableTopic::default()
                        .with_name(TopicName(sb(&t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, target)| {
                                    ReassignablePartition::default()
                                        .with_partition_index(p)
                                        .with_replicas(
                                            target.map(|rs| rs.into_iter().map(BrokerId).collect()),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect();
            RequestKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsRequest::default()
                    .with_timeout_ms(timeout_ms)
                    .with_topics(topics),
            )
        }
        AdminOp::ListPartitionReassignments { partitions } => {
            use list_partition_reassignments_request::ListPartitionReassignmentsTopics;
            let topics = partitions.as_ref().map(|tps| {
                by_topic(tps.iter().map(|tp| (tp.clone(), ())))
                    .into_iter()
                    .map(|(t, ps)| {
                        ListPartitionReassignmentsTopics::default()
                            .with_name(TopicName(sb(&t)))
                            .with_partition_indexes(ps.into_iter().map(|(p, ())| p).collect())
                    })
                    .collect()
            });
            RequestKind::ListPartitionReassignments(
                ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(timeout_ms)
                    .with_topics(topics),
            )
        }
    }
}

/// Per-partition results of a response that lists topics and their partitions.
fn partition_outcomes(
    items: impl Iterator<Item = (TopicPartition, i16)>,
    context: &str,
) -> (PerPartition<()>, Option<ClientError>) {
    let mut m = BTreeMap::new();
    let mut retry = None;
    for (tp, code) in items {
        let u = Unit::Group(String::new());
        if code != 0 && retriable(code, &u) && retry.is_none() {
            retry = Some(code_error(code, None, context));
        }
        let r = if code == 0 {
            Ok(())
        } else {
            Err(code_error(
                code,
                None,
                &format!("{context} {}-{}", tp.0, tp.1),
            ))
        };
        m.insert(tp, r);
    }
    (m, retry)
}

/// What `body` says about each of `units`.
fn parse(op: &AdminOp, units: &[Unit], body: ResponseKind, node: i32) -> BTreeMap<Unit, Outcome> {
    let mut out = BTreeMap::new();
    let one = |u: &Unit| units.contains(u);
    match body {
        ResponseKind::CreateTopics(r) => {
            for t in r.topics {
                let u = Unit::Topic(t.name.to_string());
                let o = outcome(
                    &u,
                    t.error_code,
                    t.error_message.as_deref(),
                    &format!("creating topic {}", t.name.as_str()),
                    || Value::Count(t.num_partitions),
                );
                out.insert(u, o);
            }
        }
        ResponseKind::DeleteTopics(r) => {
            for t in r.responses {
                let Some(name) = t.name else { continue };
                let u = Unit::Topic(name.to_string());
                let o = outcome(
                    &u,
                    t.error_code,
                    t.error_message.as_deref(),
                    &format!("deleting topic {}", name.as_str()),
                    || Value::Empty,
                );
                out.insert(u, o);
            }
        }
        ResponseKind::CreatePartitions(r) => {
            for t in r.results {
                let u = Unit::Topic(t.name.to_string());
                let o = outcome(
                    &u,
                    t.error_code,
                    t.error_message.as_deref(),
                    &format!("adding partitions to {}", t.name.as_str()),
                    || Value::Empty,
                );
                out.insert(u, o);
            }
        }
        ResponseKind::Metadata(r) => {
            if matches!(op, AdminOp::DescribeCluster) {
                let brokers = r
                    .brokers
                    .iter()
                    .map(|b| BrokerInfo {
                        id: b.node_id.0,
                        host: b.host.to_string(),
                        port: u16::try_from(b.port).unwrap_or(0),
                    })
                    .collect();
                out.insert(
                    Unit::One,
                    Outcome::Done(Ok(Value::Cluster(ClusterInfo {
                        cluster_id: r.cluster_id.map(|c| c.to_string()),
                        controller: r.controller_id.0,
                        brokers,
                    }))),
                );
            } else {
                let mut topics = BTreeMap::new();
                for t in r.topics {
                    let Some(name) = t.name.map(|n| n.to_string()) else {
                        continue;
                    };
                    if t.error_code != 0 {
                        let e = code_error(t.error_code, None, &format!("topic {name}"));
                        topics.insert(name, Err(e));
                        continue;
                    }
                    let mut partitions: Vec<PartitionInfo> = t
                        .partitions
                        .iter()
                        .map(|p| PartitionInfo {
                            partition: p.partition_index,
                            leader: p.leader_id.0,
                            leader_epoch: p.leader_epoch,
                            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                            offline_replicas: p.offline_replicas.iter().map(|b| b.0).collect(),
                            error_code: p.error_code,
                        })
                        .collect();
                    partitions.sort_by_key(|p| p.partition);
                    topics.insert(
                        name.clone(),
                        Ok(TopicInfo {
                            name,
                            internal: t.is_internal,
                            partitions,
                        }),
                    );
                }
                out.insert(Unit::One, Outcome::Done(Ok(Value::Topics(topics))));
            }
        }
        ResponseKind::DescribeConfigs(r) => {
            for res in r.results {
                let u = Unit::Topic(res.resource_name.to_string());
                let configs = res
                    .configs
                    .iter()
                    .map(|c| ConfigEntry {
                        name: c.name.to_string(),
                        value: c.value.as_ref().map(|v| v.to_string()),
                        source: c.config_source,
                        read_only: c.read_only,
                        sensitive: c.is_sensitive,
                    })
                    .collect();
                let o = outcome(
                    &u,
                    res.error_code,
                    res.error_message.as_deref(),
                    &format!("describing topic {}", res.resource_name.as_str()),
                    || Value::Configs(configs),
                );
                out.insert(u, o);
            }
        }
        ResponseKind::IncrementalAlterConfigs(r) => {
            for res in r.responses {
                let u = Unit::Topic(res.resource_name.to_string());
                let o = outcome(
                    &u,
                    res.error_code,
                    res.error_message.as_deref(),
                    &format!(
                        "altering the configs of topic {}",
                        res.resource_name.as_str()
                    ),
                    || Value::Empty,
                );
                out.insert(u, o);
            }
        }
        ResponseKind::ListOffsets(r) => {
            for t in r.topics {
                for p in t.partitions {
                    let tp = (t.name.to_string(), p.partition_index);
                    let u = Unit::Partition(tp.clone());
                    let listed = ListedOffset {
                        offset: p.offset,
                        timestamp_ms: p.timestamp,
                    };
                    let o = outcome(
                        &u,
                        p.error_code,
                        None,
                        &format!("listing offsets of {}-{}", tp.0, tp.1),
                        || Value::Offset(listed),
                    );
                    out.insert(u, o);
                }
            }
        }
        ResponseKind::DeleteRecords(r) => {
            for t in r.topics {
                for p in t.partitions {
                    let tp = (t.name.to_string(), p.partition_index);
                    let u = Unit::Partition(tp.clone());
                    let o = outcome(
                        &u,
                        p.error_code,
                        None,
                        &format!("deleting records of {}-{}", tp.0, tp.1),
                        || Value::LowWatermark(p.low_watermark),
                    );
                    out.insert(u, o);
                }
            }
        }
        ResponseKind::ListGroups(r) => {
            let u = Unit::Broker(node);
            let groups = r
                .groups
                .iter()
                .map(|g| GroupListing {
                    group_id: g.group_id.to_string(),
                    state: g.group_state.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    coordinator: node,
                })
                .collect();
            let o = outcome(
                &u,
                r.error_code,
                None,
                &format!("listing the groups of broker {node}"),
                || Value::Groups(groups),
            );
            out.insert(u, o);
        }
        ResponseKind::DescribeGroups(r) => {
            for g in r.groups {
                let u = Unit::Group(g.group_id.to_string());
                let info = GroupInfo {
                    group_id: g.group_id.to_string(),
                    state: g.group_state.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    protocol: g.protocol_data.to_string(),
                    members: g
                        .members
                        .iter()
                        .map(|m| MemberInfo {
                            member_id: m.member_id.to_string(),
                            client_id: m.client_id.to_string(),
                            client_host: m.client_host.to_string(),
                            assignment: decode_assignment(m.member_assignment.clone()),
                        })
                        .collect(),
                    coordinator: node,
                };
                let o = outcome(
                    &u,
                    g.error_code,
                    g.error_message.as_deref(),
                    &format!("describing group {}", g.group_id.as_str()),
                    || Value::Group(info),
                );
                out.insert(u, o);
            }
        }
        ResponseKind::DeleteGroups(r) => {
            for g in r.results {
                let u = Unit::Group(g.group_id.to_string());
                let o = outcome(
                    &u,
                    g.error_code,
                    None,
                    &format!("deleting group {}", g.group_id.as_str()),
                    || Value::Empty,
                );
                out.insert(u, o);
            }
        }
        ResponseKind::OffsetFetch(r) => {
            let AdminOp::ListGroupOffsets { group, .. } = op else {
                unreachable!("OffsetFetch answers ListGroupOffsets")
            };
            let u = Unit::Group(group.clone());
            let context = format!("fetching the offsets of group {group}");
            let mut offsets = BTreeMap::new();
            let mut code = r.error_code;
            for t in &r.topics {
                for p in &t.partitions {
                    if p.error_code != 0 && code == 0 {
                        code = p.error_code;
                    }
                    if p.committed_offset >= 0 {
                        offsets.insert((t.name.to_string(), p.partition_index), p.committed_offset);
                    }
                }
            }
            out.insert(
                u.clone(),
                outcome(&u, code, None, &context, || Value::Offsets(offsets)),
            );
        }
        ResponseKind::OffsetCommit(r) => {
            let AdminOp::CommitGroupOffsets { group, .. } = op else {
                unreachable!("OffsetCommit answers CommitGroupOffsets")
            };
            let u = Unit::Group(group.clone());
            let items = r.topics.iter().flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| ((t.name.to_string(), p.partition_index), p.error_code))
            });
            let (m, retry) = partition_outcomes(items, &format!("committing for group {group}"));
            let o = match retry {
                Some(e) => Outcome::Retry(e),
                None => Outcome::Done(Ok(Value::PerPartition(m))),
            };
            out.insert(u, o);
        }
        ResponseKind::OffsetDelete(r) => {
            let AdminOp::DeleteGroupOffsets { group, .. } = op else {
                unreachable!("OffsetDelete answers DeleteGroupOffsets")
            };
            let u = Unit::Group(group.clone());
            let context = format!("deleting offsets of group {group}");
            let o = if r.error_code != 0 {
                outcome(&u, r.error_code, None, &context, || Value::Empty)
            } else {
                let items = r.topics.iter().flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| ((t.name.to_string(), p.partition_index), p.error_code))
                });
                match partition_outcomes(items, &context) {
                    (_, Some(e)) => Outcome::Retry(e),
                    (m, None) => Outcome::Done(Ok(Value::PerPartition(m))),
                }
            };
            out.insert(u, o);
        }
        ResponseKind::AlterPartitionReassignments(r) => {
            // A top-level error (NOT_CONTROLLER, an authorization failure, …) is every
            // partition's; otherwise each partition has its own.
            for t in r.responses {
                for p in t.partitions {
                    let u = Unit::Move((t.name.to_string(), p.partition_index));
                    let (code, message) = if r.error_code != 0 {
                        (r.error_code, r.error_message.clone())
                    } else {
                        (p.error_code, p.error_message)
                    };
                    let o = outcome(
                        &u,
                        code,
                        message.as_deref(),
                        &format!("reassigning {}-{}", t.name.as_str(), p.partition_index),
                        || Value::Empty,
                    );
                    out.insert(u, o);
                }
            }
            if r.error_code != 0 {
                // A broker may answer a top-level error with no partitions at all.
                let unanswered: Vec<&Unit> =
                    units.iter().filter(|u| !out.contains_key(*u)).collect();
                for u in unanswered {
                    let o = outcome(
                        u,
                        r.error_code,
                        r.error_message.as_deref(),
                        "reassigning partitions",
                        || Value::Empty,
                    );
                    out.insert(u.clone(), o);
                }
            }
        }
        ResponseKind::ListPartitionReassignments(r) => {
            let ids = |bs: &[BrokerId]| bs.iter().map(|b| b.0).collect::<Vec<i32>>();
            let moves = (r.topics.iter())
                .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
                .map(|(t, p)| {
                    let m = Reassignment {
                        replicas: ids(&p.replicas),
                        adding: ids(&p.adding_replicas),
                        removing: ids(&p.removing_replicas),
                    };
                    ((t.name.to_string(), p.partition_index), m)
                })
                .collect();
            let o = outcome(
                &Unit::One,
                r.error_code,
                r.error_message.as_deref(),
                "listing the reassignments in progress",
                || Value::Moves(moves),
            );
            out.insert(Unit::One, o);
        }
        other => {
            let e = ClientError::Invalid(format!("an unexpected answer: {other:?}"));
            for u in units {
                out.insert(u.clone(), Outcome::Done(Err(e.clone())));
            }
        }
    }
    out.retain(|u, _| one(u));
    out
}

/// The operation's result from its units' answers.
fn assemble(
    op: &AdminOp,
    done: BTreeMap<Unit, Result<Value, ClientError>>,
) -> Result<AdminResult, ClientError> {
    fn topics<T>(
        done: BTreeMap<Unit, Result<Value, ClientError>>,
        f: impl Fn(Value) -> T,
    ) -> PerTopic<T> {
        done.into_iter()
            .filter_map(|(u, r)| match u {
                Unit::Topic(t) => Some((t, r.map(&f))),
                _ => None,
            })
            .collect()
    }
    fn partitions<T>(
        done: BTreeMap<Unit, Result<Value, ClientError>>,
        f: impl Fn(Value) -> T,
    ) -> PerPartition<T> {
        done.into_iter()
            .filter_map(|(u, r)| match u {
                Unit::Partition(tp) => Some((tp, r.map(&f))),
                _ => None,
            })
            .collect()
    }
    fn groups<T>(
        done: BTreeMap<Unit, Result<Value, ClientError>>,
        f: impl Fn(Value) -> T,
    ) -> BTreeMap<String, Result<T, ClientError>> {
        done.into_iter()
            .filter_map(|(u, r)| match u {
                Unit::Group(g) => Some((g, r.map(&f))),
                _ => None,
            })
            .collect()
    }
    /// The one unit's value, or its error as the operation's.
    fn single(done: BTreeMap<Unit, Result<Value, ClientError>>) -> Result<Value, ClientError> {
        done.into_values()
            .next()
            .expect("a single-unit operation has its unit")
    }
    let bad = || -> ! { unreachable!("a unit's value matches its operation") };
    Ok(match op {
        AdminOp::CreateTopics { .. } => AdminResult::CreateTopics(topics(done, |v| match v {
            Value::Count(n) => n,
            _ => bad(),
        })),
        AdminOp::DeleteTopics { .. } => AdminResult::DeleteTopics(topics(done, |_| ())),
        AdminOp::CreatePartitions { .. } => AdminResult::CreatePartitions(topics(done, |_| ())),
        AdminOp::AlterConfigs { .. } => AdminResult::AlterConfigs(topics(done, |_| ())),
        AdminOp::DescribeConfigs { .. } => {
            AdminResult::DescribeConfigs(topics(done, |v| match v {
                Value::Configs(c) => c,
                _ => bad(),
            }))
        }
        AdminOp::DescribeTopics { .. } => match single(done)? {
            Value::Topics(t) => AdminResult::DescribeTopics(t),
            _ => bad(),
        },
        AdminOp::DescribeCluster => match single(done)? {
            Value::Cluster(c) => AdminResult::DescribeCluster(c),
            _ => bad(),
        },
        AdminOp::ListOffsets { .. } => AdminResult::ListOffsets(partitions(done, |v| match v {
            Value::Offset(o) => o,
            _ => bad(),
        })),
        AdminOp::DeleteRecords { .. } => {
            AdminResult::DeleteRecords(partitions(done, |v| match v {
                Value::LowWatermark(o) => o,
                _ => bad(),
            }))
        }
        AdminOp::ListGroups => {
            let mut all = Vec::new();
            for r in done.into_values() {
                match r? {
                    Value::Groups(gs) => all.extend(gs),
                    _ => bad(),
                }
            }
            all.sort_by(|a, b| a.group_id.cmp(&b.group_id));
            AdminResult::ListGroups(all)
        }
        AdminOp::DescribeGroups { .. } => AdminResult::DescribeGroups(groups(done, |v| match v {
            Value::Group(g) => g,
            _ => bad(),
        })),
        AdminOp::DeleteGroups { .. } => AdminResult::DeleteGroups(groups(done, |_| ())),
        AdminOp::ListGroupOffsets { .. } => match single(done)? {
            Value::Offsets(o) => AdminResult::GroupOffsets(o),
            _ => bad(),
        },
        AdminOp::CommitGroupOffsets { .. } => match single(done)? {
            Value::PerPartition(m) => AdminResult::CommitGroupOffsets(m),
            _ => bad(),
        },
        AdminOp::DeleteGroupOffsets { .. } => match single(done)? {
            Value::PerPartition(m) => AdminResult::DeleteGroupOffsets(m),
            _ => bad(),
        },
        AdminOp::AlterPartitionReassignments { .. } => AdminResult::AlterPartitionReassignments(
            done.into_iter()
                .filter_map(|(u, r)| match u {
                    Unit::Move(tp) => Some((tp, r.map(|_| ()))),
                    _ => None,
                })
                .collect(),
        ),
        AdminOp::ListPartitionReassignments { .. } => match single(done)? {
            Value::Moves(m) => AdminResult::ListPartitionReassignments(m),
            _ => bad(),
        },
    })
}
