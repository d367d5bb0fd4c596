//! The consumer group member, classic protocol: share a topic's partitions with the other
//! consumers of the same `group.id`, and keep committed offsets with the group coordinator.
//!
//! ## How a member joins
//! 1. **FindCoordinator**: which broker coordinates this group (the leader of the group's
//!    partition of `__consumer_offsets`).
//! 2. **JoinGroup** with the member's subscription (the topics, and the partitions it owned
//!    before) under each assignor it supports. A new member is first refused with
//!    MEMBER_ID_REQUIRED and a member id to join again with (KIP-394). The coordinator waits
//!    until every member has (re)joined, then answers them all with a new *generation*; one
//!    of them, the *leader*, also receives every member's subscription.
//! 3. **SyncGroup**: the leader computes the assignment (gregor-core's `assignor.rs`: `range`
//!    or `cooperative-sticky`) and sends it; every member receives its own partitions.
//! 4. **OffsetFetch**: where the group left each assigned partition (its committed offset). A
//!    partition without one starts where `auto.offset.reset` says.
//! 5. **Heartbeat** every `heartbeat.interval.ms`; a member silent for `session.timeout.ms` is
//!    removed and its partitions reassigned. A heartbeat answered REBALANCE_IN_PROGRESS
//!    means another member joined or left: commit, give the partitions up, join again.
//! 6. **OffsetCommit** of the positions every `auto.commit.interval.ms`, before giving
//!    partitions up, and on leaving; **LeaveGroup** when closing, so the others rebalance at
//!    once instead of after the session timeout.
//!
//! This member rebalances *eagerly*: it gives up all its partitions before joining again, so a
//! partition is never read by two members at once. Under `cooperative-sticky` it still reports
//! the partitions it held (subscription v1), so the leader keeps them where they were, but it
//! does not keep reading them through the rebalance as KIP-429's incremental protocol would.
//!
//! ## Invariants (checked after every step)
//! * at most one of FindCoordinator, JoinGroup, SyncGroup is in flight, and none without a
//!   coordinator for the last two;
//! * a stable member has a member id and a generation;
//! * the consumer reads exactly the partitions assigned, and only while stable.

use crate::client::{sb, Client};
use crate::conn::Purpose;
use crate::io::{error_name, ClientError, NodeId, Output};
use crate::metadata::TopicPartition;
use bytes::{Buf, Bytes, BytesMut};
use gregor_core::assignor::{self, Strategy, Subscription};
use gregor_core::{Duration, Instant};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::ResponseError;
use std::collections::{BTreeMap, BTreeSet};

/// The subscription and assignment versions this member writes.
const SUBSCRIPTION_VERSION: i16 = 1;
const ASSIGNMENT_VERSION: i16 = 0;

#[derive(Clone, Debug)]
pub struct GroupConfig {
    pub group_id: String,
    pub strategy: Strategy,
    pub session_timeout_ms: i32,
    /// How long the coordinator waits for members to rejoin during a rebalance.
    pub rebalance_timeout_ms: i32,
    pub heartbeat_interval_ms: u64,
    /// `None`: commits only when asked ([`Client::commit`]) and when partitions are given up.
    pub auto_commit_interval_ms: Option<u64>,
    /// Whether the positions are committed when partitions are given up (a rebalance). An
    /// application that commits only what it has finished with ([`Client::commit_offsets`],
    /// as Kafka Streams commits after its outputs are acknowledged) turns this off: a position
    /// is past records handed out, not past records whose effects are safe.
    pub commit_on_revoke: bool,
}

impl GroupConfig {
    pub fn new(group_id: &str) -> GroupConfig {
        GroupConfig {
            group_id: group_id.to_string(),
            strategy: Strategy::Range,
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 60_000,
            heartbeat_interval_ms: 3_000,
            auto_commit_interval_ms: Some(5_000),
            commit_on_revoke: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Join,
    Sync,
    Stable,
    Left,
}

#[derive(Clone, Debug)]
pub struct Group {
    cfg: GroupConfig,
    topics: BTreeSet<String>,
    coordinator: Option<NodeId>,
    phase: Phase,
    /// FindCoordinator, JoinGroup or SyncGroup in flight.
    in_flight: bool,
    member_id: String,
    generation: i32,
    /// The leader's view of the members, waiting for partition counts to assign.
    to_assign: Option<BTreeMap<String, Subscription>>,
    protocol: String,
    /// The partitions of the current generation (or the last one, while rejoining).
    assignment: Vec<TopicPartition>,
    backoff_until: Instant,
    heartbeat_at: Instant,
    heartbeat_in_flight: bool,
    commit_at: Instant,
    commits_in_flight: usize,
    fetching_committed: bool,
    committed: BTreeMap<TopicPartition, i64>,
}

impl Group {
    pub(crate) fn rebalance_timeout_ms(&self) -> i32 {
        self.cfg.rebalance_timeout_ms
    }
}

/// Partitions grouped by topic, as the protocol's messages list them.
fn by_topic(tps: &[TopicPartition]) -> BTreeMap<String, Vec<i32>> {
    let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in tps {
        m.entry(t.clone()).or_default().push(*p);
    }
    m
}

fn encode_versioned(version: i16, body: &impl Encodable) -> Bytes {
    let mut b = BytesMut::new();
    b.extend_from_slice(&version.to_be_bytes());
    body.encode(&mut b, version)
        .expect("a consumer protocol message encodes");
    b.freeze()
}

/// Read a member's JoinGroup metadata (`ConsumerProtocolSubscription`, version first).
fn decode_subscription(mut b: Bytes) -> Option<Subscription> {
    if b.remaining() < 2 {
        return None;
    }
    let version = b.get_i16().clamp(0, 3);
    let s = ConsumerProtocolSubscription::decode(&mut b, version).ok()?;
    Some(Subscription {
        topics: s.topics.iter().map(|t| t.to_string()).collect(),
        owned: s
            .owned_partitions
            .iter()
            .flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.to_string(), *p)))
            .collect(),
    })
}

fn decode_assignment(mut b: Bytes) -> Result<Vec<TopicPartition>, String> {
    if b.is_empty() {
        return Ok(vec![]); // nothing assigned
    }
    if b.remaining() < 2 {
        return Err("assignment shorter than its version".into());
    }
    let version = b.get_i16().clamp(0, 3);
    let a = ConsumerProtocolAssignment::decode(&mut b, version).map_err(|e| e.to_string())?;
    Ok(a.assigned_partitions
        .iter()
        .flat_map(|tp| tp.partitions.iter().map(|p| (tp.topic.to_string(), *p)))
        .collect())
}

fn coordinator_moved(code: i16) -> bool {
    [
        ResponseError::NotCoordinator,
        ResponseError::CoordinatorNotAvailable,
        ResponseError::CoordinatorLoadInProgress,
    ]
    .iter()
    .any(|e| e.code() == code)
}

impl Client {
    /// Join consumer group `cfg.group_id` reading `topics`; partitions come from the group's
    /// assignment, positions from its committed offsets.
    pub fn subscribe(&mut self, now: Instant, cfg: GroupConfig, topics: &[String]) {
        self.advance(now);
        assert!(self.group.is_none(), "one group per client");
        for t in topics {
            self.want_topic(t);
        }
        self.group = Some(Group {
            cfg,
            topics: topics.iter().cloned().collect(),
            coordinator: None,
            phase: Phase::Join,
            in_flight: false,
            member_id: String::new(),
            generation: -1,
            to_assign: None,
            protocol: String::new(),
            assignment: vec![],
            backoff_until: now,
            heartbeat_at: now,
            heartbeat_in_flight: false,
            commit_at: now,
            commits_in_flight: 0,
            fetching_committed: false,
            committed: BTreeMap::new(),
        });
        self.step();
    }

    /// Commit the current positions now (asynchronously: see [`Client::commits_in_flight`]).
    pub fn commit(&mut self, now: Instant) {
        self.advance(now);
        self.send_commit();
        self.step();
    }

    /// Commit these offsets (the next offset to read, per partition) now, whatever the
    /// positions are: the application decides which records are done with.
    pub fn commit_offsets(&mut self, now: Instant, offsets: &[(TopicPartition, i64)]) {
        self.advance(now);
        self.send_offsets(offsets.to_vec());
        self.step();
    }

    pub fn commits_in_flight(&self) -> usize {
        self.group.as_ref().map_or(0, |g| g.commits_in_flight)
    }

    /// Whether the member has its partitions for the current generation.
    pub fn group_stable(&self) -> bool {
        self.group
            .as_ref()
            .is_some_and(|g| g.phase == Phase::Stable)
    }

    /// Leave the group (LeaveGroup), giving the partitions up; commit first if wanted.
    pub fn leave(&mut self, now: Instant) {
        self.advance(now);
        let Some(g) = self.group.as_mut() else {
            return;
        };
        let coordinator = g.coordinator.filter(|_| !g.member_id.is_empty());
        let member = g.member_id.clone();
        let group_id = g.cfg.group_id.clone();
        g.phase = Phase::Left;
        self.revoke();
        if let Some(node) = coordinator {
            if self.ready(node) {
                if let Some(v) = self.conns[&node].version(ApiKey::LeaveGroup) {
                    let body = LeaveGroupRequest::default()
                        .with_group_id(GroupId(sb(&group_id)))
                        .with_member_id(if v < 3 { sb(&member) } else { sb("") })
                        .with_members(if v >= 3 {
                            vec![leave_group_request::MemberIdentity::default()
                                .with_member_id(sb(&member))]
                        } else {
                            vec![]
                        });
                    self.send_request(
                        node,
                        ApiKey::LeaveGroup,
                        v,
                        RequestKind::LeaveGroup(body),
                        Purpose::LeaveGroup,
                        true,
                    );
                }
            }
        }
        self.step();
    }

    /// Stop reading the assigned partitions (eager rebalance, or leaving).
    fn revoke(&mut self) {
        let g = self.group.as_mut().expect("a group");
        g.fetching_committed = false;
        let gone = std::mem::take(&mut self.consumer.parts);
        if !gone.is_empty() {
            self.outputs.push_back(Output::Log {
                message: format!(
                    "group {}: gave up {} partition(s)",
                    g.cfg.group_id,
                    gone.len()
                ),
            });
        }
    }

    /// Commit, give the partitions up and join again.
    fn rejoin(&mut self, commit_first: bool, reset_member: bool) {
        if commit_first && self.group.as_ref().is_some_and(|g| g.cfg.commit_on_revoke) {
            self.send_commit();
        }
        self.revoke();
        let g = self.group.as_mut().expect("a group");
        if reset_member {
            g.member_id.clear();
            g.generation = -1;
        }
        g.phase = Phase::Join;
        g.to_assign = None;
    }

    fn group_error(&mut self, code: i16, context: &str) {
        let g = self.group.as_mut().expect("a group");
        g.backoff_until = self.now + Duration::from_ms(self.config.retry_backoff_ms);
        if coordinator_moved(code) {
            g.coordinator = None;
        }
        self.outputs.push_back(Output::Log {
            message: format!("group {}: {context}: {}", g.cfg.group_id, error_name(code)),
        });
    }

    fn fatal_group_error(&mut self, code: i16, context: &str) {
        let g = self.group.as_mut().expect("a group");
        g.phase = Phase::Left;
        let group = g.cfg.group_id.clone();
        self.revoke();
        self.outputs.push_back(Output::GroupError {
            group,
            error: ClientError::broker(code, context.to_string()),
        });
    }

    pub(crate) fn step_group(&mut self) {
        let Some(g) = self.group.as_ref() else {
            return;
        };
        if g.phase == Phase::Left || g.in_flight || self.now < g.backoff_until {
            return;
        }
        let Some(node) = g.coordinator else {
            return self.send_find_coordinator();
        };
        if !self.ready(node) {
            return;
        }
        let g = self.group.as_ref().unwrap();
        match g.phase {
            Phase::Join => self.send_join(node),
            Phase::Sync => self.send_sync(node),
            Phase::Stable => {
                let now = self.now;
                if !g.heartbeat_in_flight && now >= g.heartbeat_at {
                    self.send_heartbeat(node);
                }
                let g = self.group.as_ref().unwrap();
                if let Some(every) = g.cfg.auto_commit_interval_ms.filter(|_| now >= g.commit_at) {
                    self.group.as_mut().unwrap().commit_at = now + Duration::from_ms(every);
                    self.send_commit();
                }
                let g = self.group.as_ref().unwrap();
                if !g.fetching_committed
                    && self.consumer.parts.values().any(|p| p.awaiting_committed)
                {
                    self.send_offset_fetch(node);
                }
            }
            Phase::Left => unreachable!(),
        }
    }

    fn send_find_coordinator(&mut self) {
        let Some(node) = self.any_ready_node() else {
            return;
        };
        let Some(v) = self.conns[&node].version(ApiKey::FindCoordinator) else {
            return self.fatal_group_error(
                ResponseError::UnsupportedVersion.code(),
                "the broker speaks no FindCoordinator version this client speaks",
            );
        };
        let g = self.group.as_mut().unwrap();
        g.in_flight = true;
        let body = FindCoordinatorRequest::default()
            .with_key(sb(&g.cfg.group_id))
            .with_key_type(0);
        self.send_request(
            node,
            ApiKey::FindCoordinator,
            v,
            RequestKind::FindCoordinator(body),
            Purpose::FindCoordinator,
            true,
        );
    }

    pub(crate) fn on_find_coordinator(&mut self, r: FindCoordinatorResponse) {
        self.group.as_mut().unwrap().in_flight = false;
        if r.error_code != 0 {
            return self.group_error(r.error_code, "finding the coordinator");
        }
        let Ok(port) = u16::try_from(r.port) else {
            return self.group_error(ResponseError::CoordinatorNotAvailable.code(), "bad port");
        };
        // The coordinator gets a connection of its own, as the Java client gives it (node id
        // `i32::MAX - id`): on the broker's shared connection a heartbeat would wait behind a
        // fetch the broker holds for up to `fetch.max.wait.ms`.
        let node = NodeId(i32::MAX - r.node_id.0.max(0));
        self.outputs.push_back(Output::Log {
            message: format!(
                "group coordinator: broker {} at {}:{port}",
                r.node_id.0, r.host
            ),
        });
        self.coordinator_address = Some((node, (r.host.to_string(), port)));
        self.group.as_mut().unwrap().coordinator = Some(node);
    }

    fn send_join(&mut self, node: NodeId) {
        let Some(v) = self.conns[&node].version(ApiKey::JoinGroup) else {
            return self.fatal_group_error(
                ResponseError::UnsupportedVersion.code(),
                "the coordinator speaks no JoinGroup version this client speaks",
            );
        };
        let g = self.group.as_mut().unwrap();
        g.in_flight = true;
        let owned = by_topic(&g.assignment);
        let subscription = ConsumerProtocolSubscription::default()
            .with_topics(g.topics.iter().map(|t| sb(t)).collect())
            .with_owned_partitions(
                owned
                    .into_iter()
                    .map(|(t, ps)| {
                        consumer_protocol_subscription::TopicPartition::default()
                            .with_topic(TopicName(sb(&t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let body = JoinGroupRequest::default()
            .with_group_id(GroupId(sb(&g.cfg.group_id)))
            .with_session_timeout_ms(g.cfg.session_timeout_ms)
            .with_rebalance_timeout_ms(g.cfg.rebalance_timeout_ms)
            .with_member_id(sb(&g.member_id))
            .with_protocol_type(sb("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(sb(g.cfg.strategy.name()))
            .with_metadata(encode_versioned(SUBSCRIPTION_VERSION, &subscription))]);
        self.send_request(
            node,
            ApiKey::JoinGroup,
            v,
            RequestKind::JoinGroup(body),
            Purpose::JoinGroup,
            true,
        );
    }

    pub(crate) fn on_join(&mut self, r: JoinGroupResponse) {
        let g = self.group.as_mut().unwrap();
        g.in_flight = false;
        if g.phase != Phase::Join {
            return; // left meanwhile
        }
        match r.error_code {
            0 => {}
            c if c == ResponseError::MemberIdRequired.code() => {
                // KIP-394: join again at once with the id the coordinator chose.
                g.member_id = r.member_id.to_string();
                return;
            }
            c if c == ResponseError::UnknownMemberId.code() => {
                g.member_id.clear();
                return;
            }
            c if c == ResponseError::RebalanceInProgress.code() || coordinator_moved(c) => {
                return self.group_error(c, "joining");
            }
            c => return self.fatal_group_error(c, "joining the group"),
        }
        g.member_id = r.member_id.to_string();
        g.generation = r.generation_id;
        g.protocol = r
            .protocol_name
            .map(|p| p.to_string())
            .unwrap_or_else(|| g.cfg.strategy.name().to_string());
        g.phase = Phase::Sync;
        g.to_assign = None;
        if r.leader.as_str() == g.member_id {
            let members: BTreeMap<String, Subscription> = r
                .members
                .iter()
                .map(|m| {
                    let s = decode_subscription(m.metadata.clone()).unwrap_or_default();
                    (m.member_id.to_string(), s)
                })
                .collect();
            let topics: Vec<String> = members
                .values()
                .flat_map(|s| s.topics.iter().cloned())
                .collect();
            self.group.as_mut().unwrap().to_assign = Some(members);
            for t in topics {
                self.want_topic(&t);
            }
        }
        let g = self.group.as_ref().unwrap();
        self.outputs.push_back(Output::Log {
            message: format!(
                "group {}: joined generation {} as {}{}",
                g.cfg.group_id,
                g.generation,
                g.member_id,
                if g.to_assign.is_some() {
                    " (leader)"
                } else {
                    ""
                }
            ),
        });
    }

    fn send_sync(&mut self, node: NodeId) {
        let g = self.group.as_ref().unwrap();
        let mut assignments = vec![];
        if let Some(members) = &g.to_assign {
            // The leader assigns once it knows every subscribed topic's partition count.
            let topics: BTreeSet<&String> = members.values().flat_map(|s| &s.topics).collect();
            let mut counts = BTreeMap::new();
            for t in topics {
                if self.meta.topic_errors.contains_key(t) {
                    continue; // a topic that does not exist has no partitions to assign
                }
                match self.meta.partitions(t) {
                    Some(n) => counts.insert(t.clone(), n),
                    None => return, // metadata is on its way
                };
            }
            let strategy = if g.protocol == Strategy::Sticky.name() {
                Strategy::Sticky
            } else {
                Strategy::Range
            };
            let plan = assignor::assign(strategy, members, &counts);
            for (member, tps) in plan {
                let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
                    by_topic(&tps)
                        .into_iter()
                        .map(|(t, ps)| {
                            consumer_protocol_assignment::TopicPartition::default()
                                .with_topic(TopicName(sb(&t)))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
                assignments.push(
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(sb(&member))
                        .with_assignment(encode_versioned(ASSIGNMENT_VERSION, &a)),
                );
            }
        }
        let Some(v) = self.conns[&node].version(ApiKey::SyncGroup) else {
            return self.fatal_group_error(
                ResponseError::UnsupportedVersion.code(),
                "the coordinator speaks no SyncGroup version this client speaks",
            );
        };
        let g = self.group.as_mut().unwrap();
        g.in_flight = true;
        let body = SyncGroupRequest::default()
            .with_group_id(GroupId(sb(&g.cfg.group_id)))
            .with_generation_id(g.generation)
            .with_member_id(sb(&g.member_id))
            .with_protocol_type(Some(sb("consumer")))
            .with_protocol_name(Some(sb(&g.protocol)))
            .with_assignments(assignments);
        self.send_request(
            node,
            ApiKey::SyncGroup,
            v,
            RequestKind::SyncGroup(body),
            Purpose::SyncGroup,
            true,
        );
    }

    pub(crate) fn on_sync(&mut self, r: SyncGroupResponse) {
        let g = self.group.as_mut().unwrap();
        g.in_flight = false;
        if g.phase != Phase::Sync {
            return;
        }
        match r.error_code {
            0 => {}
            c if c == ResponseError::RebalanceInProgress.code() => {
                return self.rejoin(false, false);
            }
            c if c == ResponseError::UnknownMemberId.code()
                || c == ResponseError::IllegalGeneration.code() =>
            {
                return self.rejoin(false, true);
            }
            c if coordinator_moved(c) => {
                self.rejoin(false, false);
                return self.group_error(c, "syncing");
            }
            c => return self.fatal_group_error(c, "syncing the group"),
        }
        let assignment = match decode_assignment(r.assignment) {
            Ok(a) => a,
            Err(e) => {
                return self.fatal_group_error(
                    ResponseError::InconsistentGroupProtocol.code(),
                    &format!("the leader's assignment does not decode: {e}"),
                )
            }
        };
        let now = self.now;
        let g = self.group.as_mut().unwrap();
        g.phase = Phase::Stable;
        g.heartbeat_at = now + Duration::from_ms(g.cfg.heartbeat_interval_ms);
        g.commit_at = now + Duration::from_ms(g.cfg.auto_commit_interval_ms.unwrap_or(0));
        g.assignment = assignment.clone();
        g.committed.clear();
        self.outputs.push_back(Output::Log {
            message: format!(
                "group {}: generation {} assigns {:?}",
                g.cfg.group_id, g.generation, assignment
            ),
        });
        self.consumer.parts.clear();
        for tp in assignment {
            self.want_topic(&tp.0);
            self.consumer
                .parts
                .insert(tp, crate::consumer::PartPos::awaiting_committed());
        }
    }

    fn send_heartbeat(&mut self, node: NodeId) {
        let Some(v) = self.conns[&node].version(ApiKey::Heartbeat) else {
            return;
        };
        let g = self.group.as_mut().unwrap();
        g.heartbeat_in_flight = true;
        let body = HeartbeatRequest::default()
            .with_group_id(GroupId(sb(&g.cfg.group_id)))
            .with_generation_id(g.generation)
            .with_member_id(sb(&g.member_id));
        self.send_request(
            node,
            ApiKey::Heartbeat,
            v,
            RequestKind::Heartbeat(body),
            Purpose::Heartbeat,
            true,
        );
    }

    pub(crate) fn on_heartbeat(&mut self, r: HeartbeatResponse) {
        let now = self.now;
        let g = self.group.as_mut().unwrap();
        g.heartbeat_in_flight = false;
        g.heartbeat_at = now + Duration::from_ms(g.cfg.heartbeat_interval_ms);
        if g.phase != Phase::Stable {
            return;
        }
        match r.error_code {
            0 => {}
            c if c == ResponseError::RebalanceInProgress.code() => self.rejoin(true, false),
            c if c == ResponseError::UnknownMemberId.code()
                || c == ResponseError::IllegalGeneration.code()
                || c == ResponseError::FencedInstanceId.code() =>
            {
                self.rejoin(false, true)
            }
            c => self.group_error(c, "heartbeat"),
        }
    }

    fn send_offset_fetch(&mut self, node: NodeId) {
        let Some(v) = self.conns[&node].version(ApiKey::OffsetFetch) else {
            return;
        };
        let tps: Vec<TopicPartition> = self
            .consumer
            .parts
            .iter()
            .filter(|(_, p)| p.awaiting_committed)
            .map(|(tp, _)| tp.clone())
            .collect();
        let g = self.group.as_mut().unwrap();
        g.fetching_committed = true;
        let body = OffsetFetchRequest::default()
            .with_group_id(GroupId(sb(&g.cfg.group_id)))
            .with_topics(Some(
                by_topic(&tps)
                    .into_iter()
                    .map(|(t, ps)| {
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(TopicName(sb(&t)))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            ))
            // v7+ (KIP-447): wait for pending transactional commits instead of skipping them.
            .with_require_stable(v >= 7);
        self.send_request(
            node,
            ApiKey::OffsetFetch,
            v,
            RequestKind::OffsetFetch(body),
            Purpose::OffsetFetch,
            true,
        );
    }

    pub(crate) fn on_offset_fetch(&mut self, r: OffsetFetchResponse) {
        let g = self.group.as_mut().unwrap();
        g.fetching_committed = false;
        if r.error_code != 0 {
            return self.group_error(r.error_code, "fetching committed offsets");
        }
        for t in &r.topics {
            for p in &t.partitions {
                let tp = (t.name.to_string(), p.partition_index);
                let Some(pos) = self.consumer.parts.get_mut(&tp) else {
                    continue;
                };
                if p.error_code != 0 {
                    continue; // asked again (UNSTABLE_OFFSET_COMMIT: a commit is pending)
                }
                pos.awaiting_committed = false;
                if p.committed_offset >= 0 {
                    pos.position = Some(p.committed_offset);
                    g.committed.insert(tp, p.committed_offset);
                }
            }
        }
        if self.consumer.parts.values().any(|p| p.awaiting_committed) {
            g.backoff_until = self.now + Duration::from_ms(self.config.retry_backoff_ms);
        }
    }

    /// OffsetCommit of every position that moved since the last commit.
    fn send_commit(&mut self) {
        let moved: Vec<(TopicPartition, i64)> = self
            .consumer
            .parts
            .iter()
            .filter_map(|(tp, p)| Some((tp.clone(), p.position?)))
            .collect();
        self.send_offsets(moved);
    }

    /// OffsetCommit of the offsets that differ from the last ones committed.
    fn send_offsets(&mut self, offsets: Vec<(TopicPartition, i64)>) {
        let Some(g) = self.group.as_ref() else {
            return;
        };
        let Some(node) = g.coordinator else {
            return;
        };
        if g.phase != Phase::Stable || !self.ready(node) {
            return;
        }
        let g = self.group.as_ref().unwrap();
        let moved: Vec<(TopicPartition, i64)> = offsets
            .into_iter()
            .filter(|(tp, o)| g.committed.get(tp) != Some(o))
            .collect();
        if moved.is_empty() {
            return;
        }
        let Some(v) = self.conns[&node].version(ApiKey::OffsetCommit) else {
            return;
        };
        let mut offsets: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
        for ((t, p), o) in &moved {
            offsets.entry(t.clone()).or_default().push((*p, *o));
        }
        let body = OffsetCommitRequest::default()
            .with_group_id(GroupId(sb(&g.cfg.group_id)))
            .with_generation_id_or_member_epoch(g.generation)
            .with_member_id(sb(&g.member_id))
            .with_retention_time_ms(-1)
            .with_topics(
                offsets
                    .into_iter()
                    .map(|(t, ps)| {
                        offset_commit_request::OffsetCommitRequestTopic::default()
                            .with_name(TopicName(sb(&t)))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|(p, o)| {
                                        offset_commit_request::OffsetCommitRequestPartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(o)
                                            .with_committed_leader_epoch(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        self.group.as_mut().unwrap().commits_in_flight += 1;
        self.send_request(
            node,
            ApiKey::OffsetCommit,
            v,
            RequestKind::OffsetCommit(body),
            Purpose::OffsetCommit(moved),
            true,
        );
    }

    pub(crate) fn on_offset_commit(
        &mut self,
        sent: Vec<(TopicPartition, i64)>,
        r: OffsetCommitResponse,
    ) {
        let sent: BTreeMap<TopicPartition, i64> = sent.into_iter().collect();
        let g = self.group.as_mut().unwrap();
        g.commits_in_flight -= 1;
        let mut failed = None;
        for t in &r.topics {
            for p in &t.partitions {
                let tp = (t.name.to_string(), p.partition_index);
                if p.error_code == 0 {
                    if let Some(o) = sent.get(&tp) {
                        g.committed.insert(tp, *o);
                    }
                } else {
                    failed = Some(p.error_code);
                }
            }
        }
        if let Some(code) = failed {
            self.outputs.push_back(Output::Log {
                message: format!(
                    "group {}: commit refused: {}",
                    g.cfg.group_id,
                    error_name(code)
                ),
            });
            if code == ResponseError::RebalanceInProgress.code()
                || code == ResponseError::IllegalGeneration.code()
                || code == ResponseError::UnknownMemberId.code()
            {
                if g.phase == Phase::Stable {
                    let reset = code != ResponseError::RebalanceInProgress.code();
                    self.rejoin(false, reset);
                }
            } else if coordinator_moved(code) {
                self.group_error(code, "committing");
            }
        }
    }

    pub(crate) fn group_lost(&mut self, purpose: &Purpose) {
        let retry = self.now + Duration::from_ms(self.config.retry_backoff_ms);
        let Some(g) = self.group.as_mut() else {
            return;
        };
        match purpose {
            Purpose::FindCoordinator | Purpose::JoinGroup | Purpose::SyncGroup => {
                g.in_flight = false;
                g.backoff_until = retry;
                if *purpose == Purpose::SyncGroup {
                    g.phase = Phase::Join;
                }
            }
            Purpose::Heartbeat => g.heartbeat_in_flight = false,
            Purpose::OffsetFetch => g.fetching_committed = false,
            Purpose::OffsetCommit(_) => g.commits_in_flight -= 1,
            _ => {}
        }
        if !matches!(purpose, Purpose::FindCoordinator | Purpose::LeaveGroup) {
            // The coordinator's connection dropped: look it up again.
            g.coordinator = None;
        }
    }

    pub(crate) fn group_deadline(&self) -> Option<Instant> {
        let g = self.group.as_ref()?;
        if g.phase == Phase::Left {
            return None;
        }
        let mut t = g.backoff_until.max(self.now);
        if g.phase == Phase::Stable {
            t = t.max(
                g.heartbeat_at
                    .min(if g.cfg.auto_commit_interval_ms.is_some() {
                        g.commit_at
                    } else {
                        g.heartbeat_at
                    }),
            );
        }
        (t > self.now).then_some(t)
    }

    pub(crate) fn group_invariants(&self) {
        let Some(g) = self.group.as_ref() else {
            return;
        };
        assert!(
            g.coordinator.is_some()
                || !g.in_flight
                || self.conns.values().any(|c| c
                    .in_flight
                    .iter()
                    .any(|p| p.purpose == Purpose::FindCoordinator)),
            "JoinGroup and SyncGroup go to a coordinator"
        );
        let group_requests: usize = self
            .conns
            .values()
            .flat_map(|c| &c.in_flight)
            .filter(|p| {
                matches!(
                    p.purpose,
                    Purpose::FindCoordinator | Purpose::JoinGroup | Purpose::SyncGroup
                )
            })
            .count();
        assert!(group_requests <= 1, "one membership request at a time");
        assert_eq!(
            group_requests == 1,
            g.in_flight,
            "in flight iff a request is"
        );
        if g.phase == Phase::Stable {
            assert!(
                !g.member_id.is_empty() && g.generation >= 0,
                "stable with an id"
            );
            let reading: BTreeSet<&TopicPartition> = self.consumer.parts.keys().collect();
            let assigned: BTreeSet<&TopicPartition> = g.assignment.iter().collect();
            assert_eq!(
                reading, assigned,
                "the consumer reads what the group assigned"
            );
        } else {
            assert!(
                self.consumer.parts.is_empty(),
                "no reading outside a generation"
            );
        }
    }
}
