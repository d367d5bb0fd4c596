//! Consumer groups: the classic group protocol and committed offsets.
//!
//! Every consumer belongs to a group. Inside a group each partition is read by one member (a
//! queue); across groups every group reads every record (a broadcast). This module is Kafka's
//! *group coordinator*: it keeps each group's members and generation, runs rebalances, and
//! stores the offsets the members commit.
//!
//! ## A rebalance, step by step (the classic protocol, KIP-62 / KIP-394 / KIP-345)
//! 1. **JoinGroup.** A consumer asks to join with the assignors it supports ("range",
//!    "roundrobin", "cooperative-sticky", with opaque metadata: its subscription). From v4 a new
//!    member first gets MEMBER_ID_REQUIRED with an id chosen here, and joins again with it
//!    (KIP-394), so a member that times out mid-join cannot leave a ghost behind.
//! 2. The group moves to **PreparingRebalance** and waits until every known member has rejoined
//!    (or the rebalance timeout passes, evicting the laggards). A brand-new group waits a little
//!    longer (`group.initial.rebalance.delay.ms`) so that consumers starting together land in one
//!    rebalance instead of several.
//! 3. The **generation** goes up by one. The coordinator picks the assignor every member
//!    supports, chooses a leader, and answers every JoinGroup: the leader's answer carries every
//!    member's subscription. The group is now **CompletingRebalance**.
//! 4. **SyncGroup.** The leader computes the assignment *on the client* and sends it; the
//!    coordinator stores it (a record in the offsets log) and hands each member its share. The
//!    group is **Stable**.
//! 5. **Heartbeat** keeps a member alive; a member silent for `session.timeout.ms` is evicted,
//!    which starts the next rebalance. Heartbeats answer REBALANCE_IN_PROGRESS to tell members to
//!    rejoin. **LeaveGroup** evicts at once. A static member (KIP-345, `group.instance.id`) that
//!    restarts takes its old place back without a rebalance.
//!
//! ## Committed offsets
//! OffsetCommit stores, per group and partition, the next offset the group will consume. The
//! generation and member id are checked, so a zombie from an older generation cannot overwrite a
//! newer member's progress. A consumer outside any group (generation −1, no member id) may
//! commit to an empty group. Commits are records in the internal topic `__consumer_offsets`, as
//! in Kafka; the group's membership and assignment are records there too.
//!
//! **State changes only by replaying records.** Every operation builds records, applies them
//! with [`Coordinator::replay`], appends them to `__consumer_offsets` and answers once they are
//! durable. At start, the coordinator reads `__consumer_offsets` back and replays the same
//! records through the same function (answering COORDINATOR_LOAD_IN_PROGRESS until it is done).
//! Offsets of a group that has been empty for `offsets.retention.minutes` expire (tombstones).

use crate::broker::{Broker, ReplyTo};
use crate::config::Config;
use crate::error::*;
use crate::io::{ConnId, LogLevel, StorageFault, StorageReply};
use crate::time::{Duration, Instant};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as FoundCoordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Format version of the keys and values gregor writes into the offsets log.
const RECORD_VERSION: u8 = 1;
/// Longest offset metadata string accepted (Kafka `offset.metadata.max.bytes`).
const OFFSET_METADATA_BYTES_MAX: usize = 4096;
/// How often expired offsets are looked for.
const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- records

/// The key of a record in `__consumer_offsets`. A record with the same key replaces the previous
/// one; a record with no value (a tombstone) deletes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    /// Start of a snapshot of one offsets partition: forget everything it held before.
    Reset {
        partition: i32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// The member's metadata for the chosen protocol (its subscription).
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<MemberValue>,
    /// When the group last changed state (for offset expiry of empty groups).
    pub state_ms: i64,
}

/// One fact in the offsets log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    Group {
        group: String,
        value: Option<GroupValue>,
    },
    /// Written only at the head of a snapshot (see [`compact`]); replayed only at load.
    Reset { partition: i32 },
}

impl GroupRecord {
    fn key(&self) -> RecordKey {
        match self {
            GroupRecord::Offset {
                group,
                topic,
                partition,
                ..
            } => RecordKey::Offset {
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
            },
            GroupRecord::Group { group, .. } => RecordKey::Group {
                group: group.clone(),
            },
            GroupRecord::Reset { partition } => RecordKey::Reset {
                partition: *partition,
            },
        }
    }
    fn group(&self) -> &str {
        match self {
            GroupRecord::Offset { group, .. } | GroupRecord::Group { group, .. } => group,
            GroupRecord::Reset { .. } => "",
        }
    }

    fn encode_kv(&self) -> (Bytes, Option<Bytes>) {
        let versioned = |payload: Vec<u8>| {
            let mut b = Vec::with_capacity(payload.len() + 1);
            b.push(RECORD_VERSION);
            b.extend_from_slice(&payload);
            Bytes::from(b)
        };
        let key = versioned(postcard::to_allocvec(&self.key()).expect("encodes"));
        let value = match self {
            GroupRecord::Offset { value, .. } => value
                .as_ref()
                .map(|v| versioned(postcard::to_allocvec(v).expect("encodes"))),
            GroupRecord::Group { value, .. } => value
                .as_ref()
                .map(|v| versioned(postcard::to_allocvec(v).expect("encodes"))),
            GroupRecord::Reset { .. } => None,
        };
        (key, value)
    }

    fn decode_kv(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, String> {
        let unversion = |b: &[u8]| -> Result<Vec<u8>, String> {
            match b.split_first() {
                Some((&RECORD_VERSION, rest)) => Ok(rest.to_vec()),
                Some((v, _)) => Err(format!("unsupported record version {v}")),
                None => Err("empty record".into()),
            }
        };
        let k: RecordKey = postcard::from_bytes(&unversion(key)?).map_err(|e| e.to_string())?;
        Ok(match k {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                let value = match value {
                    None => None,
                    Some(v) => {
                        Some(postcard::from_bytes(&unversion(v)?).map_err(|e| e.to_string())?)
                    }
                };
                GroupRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                }
            }
            RecordKey::Group { group } => {
                let value = match value {
                    None => None,
                    Some(v) => {
                        Some(postcard::from_bytes(&unversion(v)?).map_err(|e| e.to_string())?)
                    }
                };
                GroupRecord::Group { group, value }
            }
            RecordKey::Reset { partition } => GroupRecord::Reset { partition },
        })
    }
}

/// Encode records as one Kafka v2 record batch, the format of every log in gregor.
pub fn encode_batch(records: &[GroupRecord], timestamp_ms: i64) -> Bytes {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (key, value) = r.encode_kv();
            Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder keeps records in one batch while offset − sequence is constant.
                sequence: i as i32 - 1,
                timestamp: timestamp_ms,
                key: Some(key),
                value,
                headers: Default::default(),
                delete_horizon: false,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("uncompressed v2 batches always encode");
    buf.freeze()
}

/// Decode every record of a run of stored batches.
pub fn decode_batches(mut bytes: Bytes) -> Result<Vec<GroupRecord>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode(&mut bytes).map_err(|e| e.to_string())?;
        for r in set.records {
            let key = r.key.ok_or("record without key")?;
            out.push(GroupRecord::decode_kv(&key, r.value.as_deref())?);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- state

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub session_deadline: Instant,
    awaiting_join: Option<ReplyTo>,
    awaiting_sync: Option<ReplyTo>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug)]
pub struct Group {
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: String,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Members told MEMBER_ID_REQUIRED, until they join with their id or the session times out.
    pending: BTreeMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    /// A new group's first rebalance does not complete before this (initial rebalance delay).
    initial_delay_until: Option<Instant>,
    pub state_ms: i64,
    /// The group's latest membership record in `__consumer_offsets`. Until it is durable,
    /// nothing derived from it (an assignment, a generation) is shown to a client: otherwise a
    /// power loss could take back what a client was told (found by the simulator, seed 152).
    last_write: Option<crate::broker::WriteMark>,
}

impl Group {
    /// Static membership (KIP-345): is a request that names `instance_id` with `member_id` from
    /// a member that was replaced? The instance id now belongs to another member id, so the
    /// old member is fenced: FENCED_INSTANCE_ID, fatal to the client (Kafka's
    /// `GroupMetadata.isStaticMemberFenced`).
    fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        let Some(iid) = instance_id else {
            return false;
        };
        let holders: Vec<&Member> = self
            .members
            .values()
            .filter(|m| m.instance_id.as_deref() == Some(iid))
            .collect();
        assert!(holders.len() <= 1, "instance id {iid} held by two members");
        holders.first().is_some_and(|m| m.member_id != member_id)
    }

    fn new(now_ms: i64) -> Group {
        Group {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            state_ms: now_ms,
            last_write: None,
        }
    }

    /// How long a rebalance may wait for members to rejoin: the longest rebalance timeout of
    /// any member (Kafka's rule).
    fn rebalance_timeout(&self) -> Duration {
        let ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
            .max(0);
        Duration::from_ms(ms as u64)
    }
}

/// Where the coordinator is in loading `__consumer_offsets` at start.
#[derive(Debug)]
pub(crate) struct Loading {
    pub chunks: Vec<Option<Bytes>>,
    pub outstanding: usize,
}

#[derive(Debug)]
pub struct Coordinator {
    pub(crate) loading: Option<Loading>,
    pub groups: BTreeMap<String, Group>,
    /// group → (topic, partition) → committed offset
    pub offsets: BTreeMap<String, BTreeMap<(String, i32), OffsetValue>>,
    session_timeout_ms_min: i32,
    session_timeout_ms_max: i32,
    initial_rebalance_delay: Duration,
    offsets_retention_ms: i64,
    pub(crate) offsets_partitions: i32,
    next_expiry_check: Option<Instant>,
    /// Offsets partitions with a snapshot written but older segments not yet deleted.
    snapshots: BTreeMap<i32, i64>,
}

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Which `__consumer_offsets` partition holds a group (Kafka: `abs(groupId.hashCode) % 50`).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    // FNV-1a: stable across runs and machines, unlike Rust's default hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in group.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % partitions as u32) as i32
}

impl Coordinator {
    pub fn new(config: &Config) -> Coordinator {
        Coordinator {
            loading: None,
            groups: BTreeMap::new(),
            offsets: BTreeMap::new(),
            session_timeout_ms_min: config.group_session_timeout_ms_min,
            session_timeout_ms_max: config.group_session_timeout_ms_max,
            initial_rebalance_delay: Duration::from_ms(config.group_initial_rebalance_delay_ms),
            offsets_retention_ms: config.offsets_retention_ms,
            offsets_partitions: config.offsets_topic_partitions,
            next_expiry_check: None,
            snapshots: BTreeMap::new(),
        }
    }

    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    /// Apply one record: the only way group state and committed offsets change, live and at load.
    pub fn replay(&mut self, record: GroupRecord, now: Instant) {
        match record {
            GroupRecord::Reset { partition } => {
                let n = self.offsets_partitions;
                self.groups.retain(|g, _| partition_for(g, n) != partition);
                self.offsets.retain(|g, _| partition_for(g, n) != partition);
            }
            GroupRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                let offsets = self.offsets.entry(group.clone()).or_default();
                match value {
                    Some(v) => {
                        offsets.insert((topic, partition), v);
                    }
                    None => {
                        offsets.remove(&(topic, partition));
                        if offsets.is_empty() {
                            self.offsets.remove(&group);
                        }
                    }
                }
            }
            GroupRecord::Group { group, value } => match value {
                None => {
                    self.groups.remove(&group);
                }
                Some(v) => {
                    let g = self
                        .groups
                        .entry(group)
                        .or_insert_with(|| Group::new(v.state_ms));
                    g.generation = v.generation;
                    g.protocol_type = v.protocol_type;
                    g.protocol = v.protocol.clone();
                    g.leader = v.leader;
                    g.state_ms = v.state_ms;
                    // Replace the member set (keeping live per-member state of survivors).
                    let mut members = BTreeMap::new();
                    for m in v.members {
                        let old = g.members.remove(&m.member_id);
                        let protocols = match (&old, &v.protocol) {
                            (Some(o), _) => o.protocols.clone(),
                            (None, Some(p)) => {
                                vec![(p.clone(), Bytes::from(m.subscription.clone()))]
                            }
                            (None, None) => vec![],
                        };
                        let session = Duration::from_ms(m.session_timeout_ms.max(0) as u64);
                        members.insert(
                            m.member_id.clone(),
                            Member {
                                member_id: m.member_id,
                                instance_id: m.instance_id,
                                client_id: m.client_id,
                                session_timeout_ms: m.session_timeout_ms,
                                rebalance_timeout_ms: m.rebalance_timeout_ms,
                                protocols,
                                assignment: Bytes::from(m.assignment),
                                session_deadline: old
                                    .as_ref()
                                    .map(|o| o.session_deadline)
                                    .unwrap_or(now + session),
                                awaiting_join: old.as_ref().and_then(|o| o.awaiting_join),
                                awaiting_sync: old.as_ref().and_then(|o| o.awaiting_sync),
                            },
                        );
                    }
                    g.members = members;
                    if g.members.is_empty() {
                        g.state = GroupState::Empty;
                    } else if g.state == GroupState::Empty || g.state == GroupState::Dead {
                        // Loaded from the log: members must heartbeat again within their session.
                        g.state = GroupState::Stable;
                        if !g.leader.as_ref().is_some_and(|l| g.members.contains_key(l)) {
                            // Written mid-rebalance, after the leader left: the leader's
                            // partitions are nobody's. Rebalance, so every member rejoins and the
                            // next generation covers them (simulator seed 3311 found this record
                            // loaded as a Stable group without a leader).
                            g.state = GroupState::PreparingRebalance;
                            g.rebalance_deadline = Some(now + g.rebalance_timeout());
                        }
                    }
                }
            },
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let mut t: Option<Instant> = self.next_expiry_check;
        let mut consider = |x: Instant| t = Some(t.map_or(x, |t| t.min(x)));
        for g in self.groups.values() {
            for m in g.members.values() {
                if m.awaiting_join.is_none() {
                    consider(m.session_deadline);
                }
            }
            for d in g.pending.values() {
                consider(*d);
            }
            if let Some(d) = g.rebalance_deadline {
                consider(d);
            }
            if let Some(d) = g.initial_delay_until {
                consider(d);
            }
        }
        t
    }

    pub fn on_conn_closed(&mut self, conn: ConnId) {
        // A member whose connection dropped mid-join stays a member until its session expires,
        // as in Kafka; only the parked response is forgotten.
        for g in self.groups.values_mut() {
            for m in g.members.values_mut() {
                if m.awaiting_join.is_some_and(|r| r.conn == conn) {
                    m.awaiting_join = None;
                }
                if m.awaiting_sync.is_some_and(|r| r.conn == conn) {
                    m.awaiting_sync = None;
                }
            }
        }
    }

    /// Group invariants, checked after every step.
    pub fn invariants(&self) {
        for (id, g) in &self.groups {
            assert!(g.generation >= 0, "{id}: negative generation");
            match g.state {
                GroupState::Empty => {
                    assert!(g.members.is_empty(), "{id}: Empty group with members")
                }
                GroupState::Stable | GroupState::CompletingRebalance => {
                    assert!(!g.members.is_empty(), "{id}: {:?} without members", g.state);
                    assert!(
                        g.leader.as_ref().is_some_and(|l| g.members.contains_key(l)),
                        "{id}: leader is not a member"
                    );
                    assert!(
                        g.members.values().all(|m| m.awaiting_join.is_none()),
                        "{id}: join parked outside a rebalance"
                    );
                }
                GroupState::PreparingRebalance => assert!(
                    g.rebalance_deadline.is_some(),
                    "{id}: rebalance without deadline"
                ),
                GroupState::Dead => {}
            }
            if g.state != GroupState::CompletingRebalance {
                assert!(g
                    .members
                    .values()
                    .all(|m| m.awaiting_sync.is_none() || g.state == GroupState::Stable));
            }
        }
    }
}

// ---------------------------------------------------------------- the broker's side

/// At start: make sure `__consumer_offsets` exists and read it back.
pub(crate) fn start(b: &mut Broker) {
    let n = b.coordinator.offsets_partitions;
    if !b.topics.contains_key(OFFSETS_TOPIC) {
        let mut s = b.default_settings_pub();
        // Offsets are kept by key, not by time: never delete the log by retention (Kafka
        // compacts this topic instead; see `compact`).
        s.retention_ms = -1;
        s.retention_bytes = -1;
        // A snapshot (see `compact`) is one batch holding every live key of a partition.
        s.max_message_bytes = (s.segment_bytes - 64).min(64 * 1024 * 1024) as u32;
        b.create_topic(OFFSETS_TOPIC, n, s, None);
        return;
    }
    // The partition count is the topic's, whatever the configuration says now: groups hash
    // onto the partitions that exist.
    b.coordinator.offsets_partitions = b.topics[OFFSETS_TOPIC].partitions.len() as i32;
    let reads = b.offsets_log_reads();
    if reads.is_empty() {
        return;
    }
    b.coordinator.loading = Some(Loading {
        chunks: vec![None; reads.len()],
        outstanding: reads.len(),
    });
    for (slot, req) in reads.into_iter().enumerate() {
        b.storage_for_group(req, slot);
    }
}

/// A chunk of `__consumer_offsets` was read at start.
pub(crate) fn load_done(b: &mut Broker, slot: usize, result: Result<StorageReply, StorageFault>) {
    let now = b.now();
    let Some(loading) = b.coordinator.loading.as_mut() else {
        return;
    };
    match result {
        Ok(StorageReply::Read(bytes)) => loading.chunks[slot] = Some(bytes),
        Ok(StorageReply::Done) => panic!("a read completed without data"),
        Err(fault) => {
            // Without its log the coordinator cannot know the committed offsets; answering
            // "none committed" would make consumers reprocess or skip. Stay unavailable.
            b.log_line(
                LogLevel::Error,
                format!("loading {OFFSETS_TOPIC} failed: {fault}; group coordinator unavailable"),
            );
            return;
        }
    }
    loading.outstanding -= 1;
    if loading.outstanding > 0 {
        return;
    }
    let chunks = b.coordinator.loading.take().unwrap().chunks;
    let mut count = 0;
    for chunk in chunks.into_iter().flatten() {
        match decode_batches(chunk) {
            Ok(records) => {
                for r in records {
                    count += 1;
                    b.coordinator.replay(r, now);
                }
            }
            Err(e) => b.log_line(
                LogLevel::Error,
                format!("{OFFSETS_TOPIC}: undecodable records skipped: {e}"),
            ),
        }
    }
    // What was loaded may not be durable yet (see `Broker::new`): answers wait for it.
    let n = b.coordinator.offsets_partitions;
    let ids: Vec<String> = b.coordinator.groups.keys().cloned().collect();
    for id in ids {
        let mark = b.end_mark(OFFSETS_TOPIC, partition_for(&id, n));
        b.coordinator.groups.get_mut(&id).unwrap().last_write = mark;
    }
    // Loaded groups with members restart their rebalance so members resynchronise.
    for g in b.coordinator.groups.values_mut() {
        for m in g.members.values_mut() {
            m.session_deadline = now + Duration::from_ms(m.session_timeout_ms.max(0) as u64);
        }
    }
    let groups = b.coordinator.groups.len();
    b.log_line(
        LogLevel::Info,
        format!("group coordinator loaded {count} records: {groups} groups"),
    );
}

/// Write records: replay them now, append them to the group's offsets partition, and send
/// `response` once they are durable (or `on_error` if the write fails).
fn commit_records(
    b: &mut Broker,
    group: &str,
    records: Vec<GroupRecord>,
    reply: Option<(ReplyTo, ResponseKind, ResponseKind)>,
) {
    let now = b.now();
    // Membership changes take effect at once (the rebalance protocol runs on them; a failed
    // write fails the SyncGroup that depends on it). Committed offsets take effect only once
    // durable, as in Kafka: a commit that fails to write must never be read back (found by the
    // broker_ops fuzz target: a commit refused on a full disk was returned by OffsetFetch).
    let mut deferred = Vec::new();
    for r in &records {
        assert_eq!(r.group(), group);
        if matches!(r, GroupRecord::Offset { .. }) {
            deferred.push(r.clone());
        } else {
            b.coordinator.replay(r.clone(), now);
        }
    }
    let partition = partition_for(group, b.coordinator.offsets_partitions);
    let batch = encode_batch(&records, now.unix_ms());
    let membership = records
        .iter()
        .find_map(|r| match r {
            GroupRecord::Group { value: Some(v), .. } => Some(v.generation),
            _ => None,
        })
        .map(|generation| (group.to_string(), generation));
    let writes_membership = records
        .iter()
        .any(|r| matches!(r, GroupRecord::Group { .. }));
    let before = b.last_internal_write();
    b.append_internal(OFFSETS_TOPIC, partition, batch, reply, deferred, membership);
    let after = b.last_internal_write();
    // Only membership records: a committed offset takes effect when durable anyway, and a
    // failed commit must not hold up the group's SyncGroup answers forever (seed 610: a commit
    // failed on a full disk, and every rejoin's SyncGroup waited on it and failed).
    if after != before && writes_membership {
        if let Some(g) = b.coordinator.groups.get_mut(group) {
            g.last_write = after;
        }
    }
}

/// Handle a group API request. Returns false if `body` is not a group API.
pub fn handle(b: &mut Broker, to: ReplyTo, body: RequestKind) -> bool {
    if b.coordinator.is_loading() {
        let code = COORDINATOR_LOAD_IN_PROGRESS;
        let resp = match body {
            RequestKind::FindCoordinator(r) => return find_coordinator(b, to, r),
            RequestKind::JoinGroup(_) => ResponseKind::JoinGroup(
                JoinGroupResponse::default()
                    .with_error_code(code)
                    .with_generation_id(-1),
            ),
            RequestKind::SyncGroup(_) => {
                ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code))
            }
            RequestKind::Heartbeat(_) => {
                ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(code))
            }
            RequestKind::LeaveGroup(_) => {
                ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(code))
            }
            RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(commit_errors(&r, code)),
            RequestKind::OffsetFetch(_) => {
                ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_error_code(code))
            }
            RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(
                DescribeGroupsResponse::default().with_groups(
                    r.groups
                        .into_iter()
                        .map(|g| {
                            DescribedGroup::default()
                                .with_group_id(g)
                                .with_error_code(code)
                        })
                        .collect(),
                ),
            ),
            RequestKind::ListGroups(_) => {
                ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(code))
            }
            RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(
                DeleteGroupsResponse::default().with_results(
                    r.groups_names
                        .into_iter()
                        .map(|g| {
                            delete_groups_response::DeletableGroupResult::default()
                                .with_group_id(g)
                                .with_error_code(code)
                        })
                        .collect(),
                ),
            ),
            _ => return false,
        };
        b.respond(to, Some(resp));
        return true;
    }
    match body {
        RequestKind::FindCoordinator(r) => find_coordinator(b, to, r),
        RequestKind::JoinGroup(r) => join_group(b, to, r),
        RequestKind::SyncGroup(r) => sync_group(b, to, r),
        RequestKind::Heartbeat(r) => heartbeat(b, to, r),
        RequestKind::LeaveGroup(r) => leave_group(b, to, r),
        RequestKind::OffsetCommit(r) => offset_commit(b, to, r),
        RequestKind::OffsetFetch(r) => offset_fetch(b, to, r),
        RequestKind::DescribeGroups(r) => describe_groups(b, to, r),
        RequestKind::ListGroups(r) => list_groups(b, to, r),
        RequestKind::DeleteGroups(r) => delete_groups(b, to, r),
        _ => false,
    }
}

fn find_coordinator(b: &mut Broker, to: ReplyTo, r: FindCoordinatorRequest) -> bool {
    let (id, host, port) = (
        b.config().broker_id,
        b.config().advertised_host.clone(),
        b.config().advertised_port,
    );
    // key_type 0 = group, 1 = transaction (not supported).
    let code = if r.key_type == 0 {
        NONE
    } else {
        COORDINATOR_NOT_AVAILABLE
    };
    let mut resp = FindCoordinatorResponse::default()
        .with_error_code(code)
        .with_node_id(BrokerId(if code == NONE { id } else { -1 }))
        .with_host(sb(if code == NONE {
            host.clone()
        } else {
            String::new()
        }))
        .with_port(if code == NONE { port } else { -1 });
    // v4+ batches keys; answer each the same way.
    for k in r.coordinator_keys {
        resp.coordinators.push(
            FoundCoordinator::default()
                .with_key(k)
                .with_node_id(BrokerId(id))
                .with_host(sb(host.clone()))
                .with_port(port),
        );
    }
    b.respond(to, Some(ResponseKind::FindCoordinator(resp)));
    true
}

fn join_error(code: i16, member_id: &str) -> ResponseKind {
    ResponseKind::JoinGroup(
        JoinGroupResponse::default()
            .with_error_code(code)
            .with_generation_id(-1)
            .with_member_id(sb(member_id))
            .with_protocol_name(None)
            .with_protocol_type(None),
    )
}

fn join_group(b: &mut Broker, to: ReplyTo, r: JoinGroupRequest) -> bool {
    let now = b.now();
    let group_id = r.group_id.0.to_string();
    let member_id = r.member_id.to_string();
    let instance_id = r.group_instance_id.as_ref().map(|s| s.to_string());
    let c = &b.coordinator;
    if group_id.is_empty() {
        b.respond(to, Some(join_error(INVALID_GROUP_ID, &member_id)));
        return true;
    }
    if r.session_timeout_ms < c.session_timeout_ms_min
        || r.session_timeout_ms > c.session_timeout_ms_max
    {
        b.log_line(
            LogLevel::Warn,
            format!(
                "JoinGroup {group_id}: session timeout {} ms outside {}..={}",
                r.session_timeout_ms, c.session_timeout_ms_min, c.session_timeout_ms_max
            ),
        );
        b.respond(to, Some(join_error(INVALID_SESSION_TIMEOUT, &member_id)));
        return true;
    }
    let protocols: Vec<(String, Bytes)> = r
        .protocols
        .iter()
        .map(|p| (p.name.to_string(), p.metadata.clone()))
        .collect();
    let protocol_type = r.protocol_type.to_string();
    if protocol_type.is_empty() || protocols.is_empty() {
        b.respond(
            to,
            Some(join_error(INCONSISTENT_GROUP_PROTOCOL, &member_id)),
        );
        return true;
    }
    let now_ms = now.unix_ms();
    let group = b
        .coordinator
        .groups
        .entry(group_id.clone())
        .or_insert_with(|| Group::new(now_ms));
    // A non-empty group only admits members speaking its protocol type and sharing an assignor.
    if !group.members.is_empty() {
        let shares = protocols.iter().any(|(n, _)| {
            group
                .members
                .values()
                .all(|m| m.protocols.iter().any(|(mn, _)| mn == n))
        });
        if group.protocol_type != protocol_type || !shares {
            b.respond(
                to,
                Some(join_error(INCONSISTENT_GROUP_PROTOCOL, &member_id)),
            );
            return true;
        }
    }
    let rebalance_ms = if r.rebalance_timeout_ms > 0 {
        r.rebalance_timeout_ms
    } else {
        r.session_timeout_ms
    };
    let session = Duration::from_ms(r.session_timeout_ms as u64);

    // Static membership (KIP-345): a known instance id takes over its old member.
    if let Some(iid) = &instance_id {
        let old = group
            .members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(iid))
            .map(|m| m.member_id.clone());
        if let Some(old_id) = old {
            if !member_id.is_empty() && member_id != old_id {
                // The instance id was taken over by a newer member: this one is a zombie.
                b.respond(to, Some(join_error(FENCED_INSTANCE_ID, &member_id)));
                return true;
            }
            if member_id.is_empty() {
                let new_id = format!("{iid}-{}", b.random_suffix());
                let group = b.coordinator.groups.get_mut(&group_id).unwrap();
                let mut m = group.members.remove(&old_id).unwrap();
                if let Some(parked) = m.awaiting_sync.take() {
                    b.respond_pub(
                        parked,
                        Some(ResponseKind::SyncGroup(
                            SyncGroupResponse::default().with_error_code(FENCED_INSTANCE_ID),
                        )),
                    );
                }
                if let Some(parked) = m.awaiting_join.take() {
                    b.respond_pub(parked, Some(join_error(FENCED_INSTANCE_ID, &old_id)));
                }
                let group = b.coordinator.groups.get_mut(&group_id).unwrap();
                m.member_id = new_id.clone();
                m.session_deadline = now + session;
                m.protocols = protocols;
                if group.leader.as_deref() == Some(old_id.as_str()) {
                    group.leader = Some(new_id.clone());
                }
                let stable = group.state == GroupState::Stable;
                if stable {
                    // Same place, same assignment, no rebalance: answer with the current
                    // generation so the member can SyncGroup and carry on.
                    let resp = JoinGroupResponse::default()
                        .with_generation_id(group.generation)
                        .with_protocol_type(Some(sb(group.protocol_type.clone())))
                        .with_protocol_name(group.protocol.clone().map(sb))
                        .with_leader(sb(group.leader.clone().unwrap_or_default()))
                        .with_member_id(sb(new_id.clone()));
                    group.members.insert(new_id, m);
                    let before = b.last_internal_write();
                    persist_group(b, &group_id, None);
                    let after = b.last_internal_write();
                    let err = join_error(COORDINATOR_NOT_AVAILABLE, "");
                    if after != before {
                        b.respond_after(to, ResponseKind::JoinGroup(resp), err, after);
                    } else {
                        b.respond(to, Some(err));
                    }
                    return true;
                }
                m.awaiting_join = Some(to);
                group.members.insert(new_id, m);
                maybe_prepare(b, &group_id);
                return true;
            }
        }
    }

    let group = b.coordinator.groups.get_mut(&group_id).unwrap();
    let known = group.members.contains_key(&member_id);
    if member_id.is_empty() {
        // As Kafka names members: the instance id or else the client id, then a random
        // suffix. Client-side assignors order members by id, so members come out in the order
        // of their client ids (librdkafka's test 0132 expects client c0 to get roundrobin's
        // first share).
        let prefix = match &instance_id {
            Some(iid) => iid.clone(),
            None => b.client_id_of(to.conn),
        };
        let new_id = format!("{prefix}-{}", b.random_suffix());
        let group = b.coordinator.groups.get_mut(&group_id).unwrap();
        if to.api_version >= 4 && instance_id.is_none() {
            // KIP-394: hand out the id first; the member joins again with it.
            group.pending.insert(new_id.clone(), now + session);
            b.respond(to, Some(join_error(MEMBER_ID_REQUIRED, &new_id)));
            return true;
        }
        add_member(
            b,
            &group_id,
            new_id,
            instance_id,
            &r,
            protocols,
            rebalance_ms,
            to,
        );
        return true;
    }
    if !known {
        if group.pending.remove(&member_id).is_some() {
            add_member(
                b,
                &group_id,
                member_id,
                instance_id,
                &r,
                protocols,
                rebalance_ms,
                to,
            );
        } else {
            b.respond(to, Some(join_error(UNKNOWN_MEMBER_ID, &member_id)));
        }
        return true;
    }
    // A known member rejoining.
    let m = group.members.get_mut(&member_id).unwrap();
    let same = m.protocols == protocols;
    m.protocols = protocols;
    m.session_timeout_ms = r.session_timeout_ms;
    m.rebalance_timeout_ms = rebalance_ms;
    m.session_deadline = now + session;
    if let Some(old) = m.awaiting_join.replace(to) {
        // A duplicate join: the older one is superseded.
        b.respond_pub(old, Some(join_error(REBALANCE_IN_PROGRESS, &member_id)));
    }
    let group = b.coordinator.groups.get_mut(&group_id).unwrap();
    let is_leader = group.leader.as_deref() == Some(member_id.as_str());
    if group.state == GroupState::Stable && same && !is_leader {
        // Nothing changed for a follower in a stable group: answer with the current generation.
        let m = group.members.get_mut(&member_id).unwrap();
        let parked = m.awaiting_join.take().unwrap();
        let resp = JoinGroupResponse::default()
            .with_generation_id(group.generation)
            .with_protocol_type(Some(sb(group.protocol_type.clone())))
            .with_protocol_name(group.protocol.clone().map(sb))
            .with_leader(sb(group.leader.clone().unwrap_or_default()))
            .with_member_id(sb(member_id));
        b.respond(parked, Some(ResponseKind::JoinGroup(resp)));
        return true;
    }
    maybe_prepare(b, &group_id);
    true
}

#[allow(clippy::too_many_arguments)]
fn add_member(
    b: &mut Broker,
    group_id: &str,
    member_id: String,
    instance_id: Option<String>,
    r: &JoinGroupRequest,
    protocols: Vec<(String, Bytes)>,
    rebalance_ms: i32,
    to: ReplyTo,
) {
    let now = b.now();
    let client_id = b.client_id_of(to.conn);
    let delay = b.coordinator.initial_rebalance_delay;
    let group = b.coordinator.groups.get_mut(group_id).unwrap();
    if group.members.is_empty() {
        group.protocol_type = r.protocol_type.to_string();
        if group.state == GroupState::Empty && delay > Duration::ZERO {
            group.initial_delay_until = Some(now + delay);
        }
    } else if let Some(until) = group.initial_delay_until {
        // Another member during the initial delay extends it, up to the rebalance timeout.
        let cap = now + Duration::from_ms(rebalance_ms as u64);
        group.initial_delay_until = Some((until.max(now) + delay).min(cap));
    }
    group.members.insert(
        member_id.clone(),
        Member {
            member_id,
            instance_id,
            client_id,
            session_timeout_ms: r.session_timeout_ms,
            rebalance_timeout_ms: rebalance_ms,
            protocols,
            assignment: Bytes::new(),
            session_deadline: now + Duration::from_ms(r.session_timeout_ms as u64),
            awaiting_join: Some(to),
            awaiting_sync: None,
        },
    );
    maybe_prepare(b, group_id);
}

/// A group's membership record (its generation, leader, assignment) failed to write. The
/// generation it describes was never made durable, so it cannot stand: start a new rebalance,
/// as Kafka's coordinator does when storing a group's assignment fails. Members learn it from
/// their next heartbeat (REBALANCE_IN_PROGRESS) and join the next generation, whose record is
/// written anew.
pub(crate) fn membership_write_failed(b: &mut Broker, group_id: &str, generation: i32) {
    let Some(g) = b.coordinator.groups.get(group_id) else {
        return;
    };
    if g.generation != generation
        || !matches!(
            g.state,
            GroupState::Stable | GroupState::CompletingRebalance
        )
    {
        return;
    }
    b.log_line(
        LogLevel::Warn,
        format!(
            "group {group_id}: the record of generation {generation} failed to write; rebalancing"
        ),
    );
    maybe_prepare(b, group_id);
}

/// Move a group into PreparingRebalance if it is not there yet, parking syncs.
fn maybe_prepare(b: &mut Broker, group_id: &str) {
    let now = b.now();
    let group = b.coordinator.groups.get_mut(group_id).unwrap();
    if group.state == GroupState::PreparingRebalance {
        return;
    }
    group.state = GroupState::PreparingRebalance;
    group.rebalance_deadline = Some(now + group.rebalance_timeout());
    let mut parked = Vec::new();
    for m in group.members.values_mut() {
        if let Some(s) = m.awaiting_sync.take() {
            parked.push(s);
        }
    }
    b.log_line(
        LogLevel::Info,
        format!("group {group_id}: preparing rebalance"),
    );
    for s in parked {
        b.respond_pub(
            s,
            Some(ResponseKind::SyncGroup(
                SyncGroupResponse::default().with_error_code(REBALANCE_IN_PROGRESS),
            )),
        );
    }
}

/// Complete the join phase if every member has rejoined (or the deadline passed).
fn try_complete_join(b: &mut Broker, group_id: &str) {
    let now = b.now();
    let group = b.coordinator.groups.get_mut(group_id).unwrap();
    if group.state != GroupState::PreparingRebalance {
        return;
    }
    let deadline_passed = group.rebalance_deadline.is_some_and(|d| d <= now);
    let all_joined =
        group.members.values().all(|m| m.awaiting_join.is_some()) && group.pending.is_empty();
    let delayed = group.initial_delay_until.is_some_and(|d| d > now);
    if !(deadline_passed || (all_joined && !delayed)) {
        return;
    }
    group.initial_delay_until = None;
    // Members that did not rejoin in time are out.
    let gone: Vec<String> = group
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none())
        .map(|m| m.member_id.clone())
        .collect();
    for id in &gone {
        group.members.remove(id);
    }
    group.pending.clear();
    group.rebalance_deadline = None;
    group.generation += 1;
    if group.members.is_empty() {
        group.state = GroupState::Empty;
        group.protocol = None;
        group.leader = None;
        group.state_ms = now.unix_ms();
        let generation = group.generation;
        b.log_line(
            LogLevel::Info,
            format!("group {group_id}: empty at generation {generation}"),
        );
        persist_group(b, group_id, None);
        return;
    }
    // Choose the assignor: among those every member supports, the one most members prefer.
    let mut votes: BTreeMap<String, usize> = BTreeMap::new();
    let candidates: Vec<String> = group
        .members
        .values()
        .next()
        .unwrap()
        .protocols
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| {
            group
                .members
                .values()
                .all(|m| m.protocols.iter().any(|(mn, _)| mn == n))
        })
        .collect();
    for m in group.members.values() {
        if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
            *votes.entry(n.clone()).or_default() += 1;
        }
    }
    let protocol = candidates
        .iter()
        .max_by_key(|c| {
            (
                votes.get(*c).copied().unwrap_or(0),
                std::cmp::Reverse(candidates.iter().position(|x| x == *c)),
            )
        })
        .cloned();
    let Some(protocol) = protocol else {
        // Cannot happen: joins are refused unless they share a protocol with the group.
        panic!("group {group_id}: no common protocol among members");
    };
    group.protocol = Some(protocol.clone());
    if !group
        .leader
        .as_ref()
        .is_some_and(|l| group.members.contains_key(l))
    {
        group.leader = group.members.keys().next().cloned();
    }
    group.state = GroupState::CompletingRebalance;
    let leader = group.leader.clone().unwrap();
    let generation = group.generation;
    let members_list: Vec<JoinGroupResponseMember> = group
        .members
        .values()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(sb(m.member_id.clone()))
                .with_group_instance_id(m.instance_id.clone().map(sb))
                .with_metadata(m.metadata_for(&protocol))
        })
        .collect();
    let mut replies = Vec::new();
    for m in group.members.values_mut() {
        m.session_deadline = now + Duration::from_ms(m.session_timeout_ms as u64);
        let to = m.awaiting_join.take().unwrap();
        let resp = JoinGroupResponse::default()
            .with_generation_id(generation)
            .with_protocol_type(Some(sb(group.protocol_type.clone())))
            .with_protocol_name(Some(sb(protocol.clone())))
            .with_leader(sb(leader.clone()))
            .with_member_id(sb(m.member_id.clone()))
            .with_members(if m.member_id == leader {
                members_list.clone()
            } else {
                vec![]
            });
        replies.push((to, resp));
    }
    let n = group.members.len();
    b.log_line(LogLevel::Info, format!("group {group_id}: generation {generation} with {n} member(s), protocol {protocol}, leader {leader}"));
    for (to, resp) in replies {
        b.respond_pub(to, Some(ResponseKind::JoinGroup(resp)));
    }
}

/// Write the group's current membership as a record (after a sync, or when it empties).
fn persist_group(
    b: &mut Broker,
    group_id: &str,
    reply: Option<(ReplyTo, ResponseKind, ResponseKind)>,
) {
    let value = group_value(&b.coordinator.groups[group_id]);
    commit_records(
        b,
        group_id,
        vec![GroupRecord::Group {
            group: group_id.to_string(),
            value: Some(value),
        }],
        reply,
    );
}

/// The durable form of a group's membership.
fn group_value(g: &Group) -> GroupValue {
    let protocol = g.protocol.clone();
    GroupValue {
        protocol_type: g.protocol_type.clone(),
        generation: g.generation,
        protocol: protocol.clone(),
        leader: g.leader.clone(),
        members: g
            .members
            .values()
            .map(|m| MemberValue {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                subscription: protocol
                    .as_deref()
                    .map(|p| m.metadata_for(p).to_vec())
                    .unwrap_or_default(),
                assignment: m.assignment.to_vec(),
            })
            .collect(),
        state_ms: g.state_ms,
    }
}

fn sync_error(code: i16) -> ResponseKind {
    ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(code))
}

fn sync_group(b: &mut Broker, to: ReplyTo, r: SyncGroupRequest) -> bool {
    let now = b.now();
    let group_id = r.group_id.0.to_string();
    let member_id = r.member_id.to_string();
    let Some(group) = b.coordinator.groups.get_mut(&group_id) else {
        b.respond(to, Some(sync_error(UNKNOWN_MEMBER_ID)));
        return true;
    };
    if group.is_fenced(r.group_instance_id.as_deref(), &member_id) {
        b.respond(to, Some(sync_error(FENCED_INSTANCE_ID)));
        return true;
    }
    let Some(m) = group.members.get_mut(&member_id) else {
        b.respond(to, Some(sync_error(UNKNOWN_MEMBER_ID)));
        return true;
    };
    m.session_deadline = now + Duration::from_ms(m.session_timeout_ms as u64);
    if r.generation_id != group.generation {
        b.respond(to, Some(sync_error(ILLEGAL_GENERATION)));
        return true;
    }
    if r.protocol_type
        .as_ref()
        .is_some_and(|p| p.as_str() != group.protocol_type)
        || r.protocol_name
            .as_ref()
            .is_some_and(|p| Some(p.as_str()) != group.protocol.as_deref())
    {
        b.respond(to, Some(sync_error(INCONSISTENT_GROUP_PROTOCOL)));
        return true;
    }
    match group.state {
        GroupState::PreparingRebalance => {
            b.respond(to, Some(sync_error(REBALANCE_IN_PROGRESS)));
        }
        GroupState::Stable => {
            let resp = SyncGroupResponse::default()
                .with_protocol_type(Some(sb(group.protocol_type.clone())))
                .with_protocol_name(group.protocol.clone().map(sb))
                .with_assignment(m.assignment.clone());
            let mark = group.last_write.clone();
            let err = sync_error(COORDINATOR_NOT_AVAILABLE);
            b.respond_after(to, ResponseKind::SyncGroup(resp), err, mark);
        }
        GroupState::CompletingRebalance => {
            if let Some(old) = m.awaiting_sync.replace(to) {
                b.respond_pub(old, Some(sync_error(REBALANCE_IN_PROGRESS)));
            }
            let group = b.coordinator.groups.get_mut(&group_id).unwrap();
            if group.leader.as_deref() != Some(member_id.as_str()) {
                return true; // followers wait for the leader's assignment
            }
            let assignments: BTreeMap<String, Bytes> = r
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect();
            for (id, m) in group.members.iter_mut() {
                m.assignment = assignments.get(id).cloned().unwrap_or_default();
            }
            group.state = GroupState::Stable;
            group.state_ms = now.unix_ms();
            let waiting: Vec<(ReplyTo, Bytes)> = group
                .members
                .values_mut()
                .filter_map(|m| m.awaiting_sync.take().map(|t| (t, m.assignment.clone())))
                .collect();
            let (pt, pn) = (group.protocol_type.clone(), group.protocol.clone());
            b.log_line(
                LogLevel::Info,
                format!("group {group_id}: stable at generation {}", r.generation_id),
            );
            // The assignment is answered once it is durable; each member gets its own share.
            let mut first = true;
            let mut written = None;
            for (to, assignment) in waiting {
                let ok = ResponseKind::SyncGroup(
                    SyncGroupResponse::default()
                        .with_protocol_type(Some(sb(pt.clone())))
                        .with_protocol_name(pn.clone().map(sb))
                        .with_assignment(assignment),
                );
                let err = sync_error(COORDINATOR_NOT_AVAILABLE);
                if first {
                    let before = b.last_internal_write();
                    persist_group(b, &group_id, Some((to, ok, err)));
                    let after = b.last_internal_write();
                    // If the write was refused (say the partition is offline), every member
                    // gets the error: an assignment that is not durable was never made.
                    written = (after != before).then_some(after).flatten();
                    first = false;
                } else if written.is_some() {
                    b.respond_after(to, ok, err, written.clone());
                } else {
                    b.respond(to, Some(err));
                }
            }
        }
        GroupState::Empty | GroupState::Dead => b.respond(to, Some(sync_error(UNKNOWN_MEMBER_ID))),
    }
    true
}

fn heartbeat(b: &mut Broker, to: ReplyTo, r: HeartbeatRequest) -> bool {
    let now = b.now();
    let group_id = r.group_id.0.to_string();
    let code = match b.coordinator.groups.get_mut(&group_id) {
        None => UNKNOWN_MEMBER_ID,
        Some(g) if g.is_fenced(r.group_instance_id.as_deref(), r.member_id.as_str()) => {
            FENCED_INSTANCE_ID
        }
        Some(g) => match g.members.get_mut(r.member_id.as_str()) {
            None => UNKNOWN_MEMBER_ID,
            Some(m) => {
                m.session_deadline = now + Duration::from_ms(m.session_timeout_ms as u64);
                if r.generation_id != g.generation {
                    ILLEGAL_GENERATION
                } else if g.state == GroupState::PreparingRebalance {
                    REBALANCE_IN_PROGRESS
                } else {
                    NONE
                }
            }
        },
    };
    b.respond(
        to,
        Some(ResponseKind::Heartbeat(
            HeartbeatResponse::default().with_error_code(code),
        )),
    );
    true
}

fn leave_group(b: &mut Broker, to: ReplyTo, r: LeaveGroupRequest) -> bool {
    let group_id = r.group_id.0.to_string();
    let leaving: Vec<(String, Option<String>)> = if to.api_version >= 3 {
        r.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(r.member_id.to_string(), None)]
    };
    let mut resp = LeaveGroupResponse::default();
    let Some(group) = b.coordinator.groups.get_mut(&group_id) else {
        resp.error_code = UNKNOWN_MEMBER_ID;
        b.respond(to, Some(ResponseKind::LeaveGroup(resp)));
        return true;
    };
    let mut removed = 0;
    // A leaving member's parked requests are answered each in its own kind (a SyncGroup with a
    // SyncGroup response: simulator seed 2378 caught a JoinGroup body sent for a SyncGroup).
    let mut parked_joins = Vec::new();
    let mut parked_syncs = Vec::new();
    for (mid, iid) in leaving {
        // A static member may leave by instance id alone.
        let id = if mid.is_empty() {
            iid.as_ref().and_then(|i| {
                group
                    .members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(i))
                    .map(|m| m.member_id.clone())
            })
        } else {
            Some(mid.clone())
        };
        let code = match id.and_then(|id| group.members.remove(&id)) {
            Some(m) => {
                removed += 1;
                parked_joins.extend(m.awaiting_join);
                parked_syncs.extend(m.awaiting_sync);
                NONE
            }
            None => UNKNOWN_MEMBER_ID,
        };
        resp.members.push(
            MemberResponse::default()
                .with_member_id(sb(mid))
                .with_group_instance_id(iid.map(sb))
                .with_error_code(code),
        );
    }
    if to.api_version < 3 {
        resp.error_code = resp.members[0].error_code;
        resp.members.clear();
    }
    for p in parked_joins {
        b.respond_pub(p, Some(join_error(UNKNOWN_MEMBER_ID, "")));
    }
    for p in parked_syncs {
        b.respond_pub(p, Some(sync_error(UNKNOWN_MEMBER_ID)));
    }
    if removed > 0 {
        b.log_line(
            LogLevel::Info,
            format!("group {group_id}: {removed} member(s) left"),
        );
        member_gone(b, &group_id);
    }
    b.respond(to, Some(ResponseKind::LeaveGroup(resp)));
    true
}

/// After members left or expired: rebalance the rest, or empty the group.
fn member_gone(b: &mut Broker, group_id: &str) {
    let now = b.now();
    let group = b.coordinator.groups.get_mut(group_id).unwrap();
    if group.members.is_empty() {
        if group.state != GroupState::PreparingRebalance || group.pending.is_empty() {
            group.state = GroupState::Empty;
            group.generation += 1;
            group.protocol = None;
            group.leader = None;
            group.rebalance_deadline = None;
            group.initial_delay_until = None;
            group.state_ms = now.unix_ms();
            persist_group(b, group_id, None);
        }
        return;
    }
    if group
        .leader
        .as_ref()
        .is_some_and(|l| !group.members.contains_key(l))
    {
        group.leader = group.members.keys().next().cloned();
    }
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => maybe_prepare(b, group_id),
        GroupState::PreparingRebalance => try_complete_join(b, group_id),
        GroupState::Empty | GroupState::Dead => {}
    }
}

fn commit_errors(r: &OffsetCommitRequest, code: i16) -> OffsetCommitResponse {
    OffsetCommitResponse::default().with_topics(
        r.topics
            .iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

fn offset_commit(b: &mut Broker, to: ReplyTo, r: OffsetCommitRequest) -> bool {
    let now = b.now();
    let group_id = r.group_id.0.to_string();
    let member_id = r.member_id.to_string();
    let generation = r.generation_id_or_member_epoch;
    // Who may commit (Kafka's GroupCoordinator.handleCommitOffsets).
    let group_code = if group_id.is_empty() {
        INVALID_GROUP_ID
    } else {
        match b.coordinator.groups.get_mut(&group_id) {
            None if generation < 0 => NONE,
            None => ILLEGAL_GENERATION,
            Some(g) if generation < 0 && g.state == GroupState::Empty => NONE,
            Some(g) if g.is_fenced(r.group_instance_id.as_deref(), &member_id) => {
                FENCED_INSTANCE_ID
            }
            Some(g) => match g.members.get_mut(&member_id) {
                None => {
                    if generation < 0 {
                        // A consumer outside the group may not commit while the group is active.
                        UNKNOWN_MEMBER_ID
                    } else {
                        UNKNOWN_MEMBER_ID
                    }
                }
                Some(m) => {
                    m.session_deadline = now + Duration::from_ms(m.session_timeout_ms as u64);
                    if generation != g.generation {
                        ILLEGAL_GENERATION
                    } else if g.state == GroupState::PreparingRebalance
                        || g.state == GroupState::CompletingRebalance
                    {
                        REBALANCE_IN_PROGRESS
                    } else {
                        NONE
                    }
                }
            },
        }
    };
    if group_code != NONE {
        b.log_line(LogLevel::Info, format!("OffsetCommit for group {group_id} by {member_id:?} gen {generation} refused with error {group_code}"));
        b.respond(
            to,
            Some(ResponseKind::OffsetCommit(commit_errors(&r, group_code))),
        );
        return true;
    }
    let mut resp = OffsetCommitResponse::default();
    let mut records = Vec::new();
    for t in &r.topics {
        let topic = t.name.0.to_string();
        let mut tr = OffsetCommitResponseTopic::default().with_name(t.name.clone());
        for p in &t.partitions {
            let known = b.topics.get(&topic).is_some_and(|tt| {
                p.partition_index >= 0 && (p.partition_index as usize) < tt.partitions.len()
            });
            let code = if !known {
                UNKNOWN_TOPIC_OR_PARTITION
            } else if p
                .committed_metadata
                .as_ref()
                .is_some_and(|m| m.len() > OFFSET_METADATA_BYTES_MAX)
            {
                12 // OFFSET_METADATA_TOO_LARGE
            } else {
                records.push(GroupRecord::Offset {
                    group: group_id.clone(),
                    topic: topic.clone(),
                    partition: p.partition_index,
                    value: Some(OffsetValue {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_ms: now.unix_ms(),
                    }),
                });
                NONE
            };
            tr.partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        resp.topics.push(tr);
    }
    if records.is_empty() {
        b.respond(to, Some(ResponseKind::OffsetCommit(resp)));
        return true;
    }
    if !b.coordinator.groups.contains_key(&group_id) {
        // A simple (group-less) consumer's commits create an Empty group, as in Kafka.
        b.coordinator
            .groups
            .insert(group_id.clone(), Group::new(now.unix_ms()));
    }
    let mut failed = resp.clone();
    for t in &mut failed.topics {
        for p in &mut t.partitions {
            if p.error_code == NONE {
                p.error_code = COORDINATOR_NOT_AVAILABLE;
            }
        }
    }
    commit_records(
        b,
        &group_id,
        records,
        Some((
            to,
            ResponseKind::OffsetCommit(resp),
            ResponseKind::OffsetCommit(failed),
        )),
    );
    true
}

fn offset_fetch(b: &mut Broker, to: ReplyTo, r: OffsetFetchRequest) -> bool {
    let c = &b.coordinator;
    let lookup = |group: &str, topic: &str, partition: i32| -> (i64, i32, Option<String>) {
        match c
            .offsets
            .get(group)
            .and_then(|o| o.get(&(topic.to_string(), partition)))
        {
            Some(v) => (v.offset, v.leader_epoch, v.metadata.clone()),
            None => (-1, -1, Some(String::new())),
        }
    };
    let all_for = |group: &str| -> BTreeMap<String, Vec<i32>> {
        let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        if let Some(o) = c.offsets.get(group) {
            for (t, p) in o.keys() {
                m.entry(t.clone()).or_default().push(*p);
            }
        }
        m
    };
    let mut resp = OffsetFetchResponse::default();
    if to.api_version <= 7 {
        let group = r.group_id.0.to_string();
        let wanted: BTreeMap<String, Vec<i32>> = match &r.topics {
            Some(ts) => ts
                .iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect(),
            None => all_for(&group),
        };
        for (topic, parts) in wanted {
            let mut tr =
                OffsetFetchResponseTopic::default().with_name(TopicName(sb(topic.clone())));
            for p in parts {
                let (offset, epoch, metadata) = lookup(&group, &topic, p);
                tr.partitions.push(
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(metadata.map(sb)),
                );
            }
            resp.topics.push(tr);
        }
    } else {
        for g in &r.groups {
            let group = g.group_id.0.to_string();
            let wanted: BTreeMap<String, Vec<i32>> = match &g.topics {
                Some(ts) => ts
                    .iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect(),
                None => all_for(&group),
            };
            let mut gr = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            for (topic, parts) in wanted {
                let mut tr =
                    OffsetFetchResponseTopics::default().with_name(TopicName(sb(topic.clone())));
                for p in parts {
                    let (offset, epoch, metadata) = lookup(&group, &topic, p);
                    tr.partitions.push(
                        OffsetFetchResponsePartitions::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(metadata.map(sb)),
                    );
                }
                gr.topics.push(tr);
            }
            resp.groups.push(gr);
        }
    }
    // Committed offsets are replayed into memory when written; answer only once everything
    // written to the group's offsets partition so far is durable, so a power loss can never
    // take back an offset a consumer was told (the committed offset never moves backwards).
    let mark = b.end_mark(
        OFFSETS_TOPIC,
        partition_for(&r.group_id.0, b.coordinator.offsets_partitions),
    );
    let err = ResponseKind::OffsetFetch(
        OffsetFetchResponse::default().with_error_code(COORDINATOR_NOT_AVAILABLE),
    );
    b.respond_after(to, ResponseKind::OffsetFetch(resp), err, mark);
    true
}

fn describe_groups(b: &mut Broker, to: ReplyTo, r: DescribeGroupsRequest) -> bool {
    let mut resp = DescribeGroupsResponse::default();
    for gid in r.groups {
        let name = gid.0.to_string();
        let d = match b.coordinator.groups.get(&name) {
            None => DescribedGroup::default()
                .with_group_id(gid)
                .with_group_state(sb("Dead")),
            Some(g) => {
                let protocol = g.protocol.clone().unwrap_or_default();
                DescribedGroup::default()
                    .with_group_id(gid)
                    .with_group_state(sb(g.state.name()))
                    .with_protocol_type(sb(g.protocol_type.clone()))
                    .with_protocol_data(sb(protocol.clone()))
                    .with_members(
                        g.members
                            .values()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(sb(m.member_id.clone()))
                                    .with_group_instance_id(m.instance_id.clone().map(sb))
                                    .with_client_id(sb(m.client_id.clone()))
                                    .with_client_host(sb("/127.0.0.1"))
                                    .with_member_metadata(m.metadata_for(&protocol))
                                    .with_member_assignment(m.assignment.clone())
                            })
                            .collect(),
                    )
            }
        };
        resp.groups.push(d);
    }
    b.respond(to, Some(ResponseKind::DescribeGroups(resp)));
    true
}

fn list_groups(b: &mut Broker, to: ReplyTo, r: ListGroupsRequest) -> bool {
    let states: Vec<String> = r
        .states_filter
        .iter()
        .map(|s| s.to_string().to_lowercase())
        .collect();
    let groups = b
        .coordinator
        .groups
        .iter()
        .filter(|(_, g)| states.is_empty() || states.contains(&g.state.name().to_lowercase()))
        .map(|(id, g)| {
            ListedGroup::default()
                .with_group_id(GroupId(sb(id.clone())))
                .with_protocol_type(sb(g.protocol_type.clone()))
                .with_group_state(sb(g.state.name()))
                .with_group_type(sb("classic"))
        })
        .collect();
    b.respond(
        to,
        Some(ResponseKind::ListGroups(
            ListGroupsResponse::default().with_groups(groups),
        )),
    );
    true
}

fn delete_groups(b: &mut Broker, to: ReplyTo, r: DeleteGroupsRequest) -> bool {
    let mut resp = DeleteGroupsResponse::default();
    for gid in r.groups_names {
        let name = gid.0.to_string();
        let code = match b.coordinator.groups.get(&name) {
            None if !b.coordinator.offsets.contains_key(&name) => GROUP_ID_NOT_FOUND,
            Some(g) if g.state != GroupState::Empty => NON_EMPTY_GROUP,
            _ => {
                let mut records: Vec<GroupRecord> = b
                    .coordinator
                    .offsets
                    .get(&name)
                    .map(|o| {
                        o.keys()
                            .map(|(t, p)| GroupRecord::Offset {
                                group: name.clone(),
                                topic: t.clone(),
                                partition: *p,
                                value: None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(GroupRecord::Group {
                    group: name.clone(),
                    value: None,
                });
                commit_records(b, &name, records, None);
                b.log_line(LogLevel::Info, format!("group {name} deleted"));
                NONE
            }
        };
        resp.results.push(
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(gid)
                .with_error_code(code),
        );
    }
    b.respond(to, Some(ResponseKind::DeleteGroups(resp)));
    true
}

/// Timers: expired sessions, rebalance deadlines, the initial delay, offset expiry.
pub fn tick(b: &mut Broker) {
    if b.coordinator.is_loading() {
        return;
    }
    let now = b.now();
    let ids: Vec<String> = b.coordinator.groups.keys().cloned().collect();
    for id in ids {
        let g = b.coordinator.groups.get_mut(&id).unwrap();
        g.pending.retain(|_, d| *d > now);
        let expired: Vec<String> = g
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.session_deadline <= now)
            .map(|m| m.member_id.clone())
            .collect();
        let mut parked = Vec::new();
        for m in &expired {
            let m = g.members.remove(m).unwrap();
            parked.extend(m.awaiting_sync);
        }
        let state = g.state;
        for p in parked {
            b.respond_pub(p, Some(sync_error(REBALANCE_IN_PROGRESS)));
        }
        if !expired.is_empty() {
            b.log_line(
                LogLevel::Info,
                format!("group {id}: session expired for {}", expired.join(", ")),
            );
            member_gone(b, &id);
        } else if state == GroupState::PreparingRebalance {
            try_complete_join(b, &id);
        }
    }
    // Offset expiry (Kafka offsets.retention.minutes): offsets of a group that has been Empty
    // longer than the retention are deleted.
    let due = b.coordinator.next_expiry_check.is_none_or(|t| t <= now);
    if due {
        b.coordinator.next_expiry_check = Some(now + EXPIRY_CHECK_INTERVAL);
        compact(b);
        let retention = b.coordinator.offsets_retention_ms;
        if retention >= 0 {
            let now_ms = now.unix_ms();
            let expired: Vec<String> = b
                .coordinator
                .offsets
                .keys()
                .filter(|g| match b.coordinator.groups.get(*g) {
                    Some(grp) => {
                        grp.state == GroupState::Empty && now_ms - grp.state_ms > retention
                    }
                    None => true,
                })
                .filter(|g| {
                    b.coordinator.offsets[*g]
                        .values()
                        .map(|v| v.commit_ms)
                        .max()
                        .unwrap_or(0)
                        + retention
                        < now_ms
                })
                .cloned()
                .collect();
            for g in expired {
                let records: Vec<GroupRecord> = b.coordinator.offsets[&g]
                    .keys()
                    .map(|(t, p)| GroupRecord::Offset {
                        group: g.clone(),
                        topic: t.clone(),
                        partition: *p,
                        value: None,
                    })
                    .collect();
                b.log_line(
                    LogLevel::Info,
                    format!("group {g}: committed offsets expired"),
                );
                commit_records(b, &g, records, None);
            }
        }
    }
}

/// Keep `__consumer_offsets` small. Kafka compacts the topic (keeping the last record per key);
/// gregor does the same job more simply: when a partition's log outgrows
/// `Config::offsets_log_bytes_max`, it writes a *snapshot* — a `Reset` record followed by the current
/// value of every key in that partition, in one batch at the start of a new segment — and once
/// that batch is durable it deletes every older segment. A crash in between is harmless:
/// replaying the old segments and then the snapshot ends in the same state, because `Reset`
/// wipes what came before. The snapshot is not replayed live: live state already equals it.
fn compact(b: &mut Broker) {
    let n = b.coordinator.offsets_partitions;
    for p in 0..n {
        // Finish a snapshot whose batch is now durable.
        if let Some(base) = b.coordinator.snapshots.get(&p).copied() {
            if b.offsets_partition_hw(p).is_some_and(|hw| hw > base) {
                b.coordinator.snapshots.remove(&p);
                b.offsets_delete_before(p, base);
            }
            continue;
        }
        if b.offsets_partition_bytes(p) < b.config().offsets_log_bytes_max {
            continue;
        }
        let mut records = vec![GroupRecord::Reset { partition: p }];
        for (g, grp) in &b.coordinator.groups {
            if partition_for(g, n) == p {
                records.push(GroupRecord::Group {
                    group: g.clone(),
                    value: Some(group_value(grp)),
                });
            }
        }
        for (g, offs) in &b.coordinator.offsets {
            if partition_for(g, n) != p {
                continue;
            }
            for ((t, part), v) in offs {
                records.push(GroupRecord::Offset {
                    group: g.clone(),
                    topic: t.clone(),
                    partition: *part,
                    value: Some(v.clone()),
                });
            }
        }
        let count = records.len();
        let batch = encode_batch(&records, b.now().unix_ms());
        if let Some(base) = b.offsets_snapshot(p, batch) {
            b.log_line(
                LogLevel::Info,
                format!("{OFFSETS_TOPIC}-{p}: snapshot of {count} records at offset {base}"),
            );
            b.coordinator.snapshots.insert(p, base);
        }
    }
}

/// After every step: complete joins whose last member just arrived.
pub fn after_step(b: &mut Broker) {
    if b.coordinator.is_loading() {
        return;
    }
    let ready: Vec<String> = b
        .coordinator
        .groups
        .iter()
        .filter(|(_, g)| g.state == GroupState::PreparingRebalance)
        .map(|(id, _)| id.clone())
        .collect();
    for id in ready {
        try_complete_join(b, &id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_a_batch() {
        let recs = vec![
            GroupRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(OffsetValue {
                    offset: 42,
                    leader_epoch: -1,
                    metadata: Some("m".into()),
                    commit_ms: 5,
                }),
            },
            GroupRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 4,
                value: None,
            },
            GroupRecord::Group {
                group: "g".into(),
                value: None,
            },
        ];
        let batch = encode_batch(&recs, 1000);
        let h = crate::batch::BatchHeader::parse(&batch).unwrap();
        h.verify(&batch).unwrap();
        assert_eq!(h.records_count, 3, "one batch");
        assert_eq!(decode_batches(batch).unwrap(), recs);
    }

    #[test]
    fn replay_is_last_writer_wins_with_tombstones() {
        let cfg = Config::default();
        let mut c = Coordinator::new(&cfg);
        let off = |o: i64| GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: Some(OffsetValue {
                offset: o,
                leader_epoch: -1,
                metadata: None,
                commit_ms: 0,
            }),
        };
        c.replay(off(1), Instant::ZERO);
        c.replay(off(7), Instant::ZERO);
        assert_eq!(c.offsets["g"][&("t".to_string(), 0)].offset, 7);
        c.replay(
            GroupRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
                value: None,
            },
            Instant::ZERO,
        );
        assert!(!c.offsets.contains_key("g"));
    }

    #[test]
    fn group_partition_is_stable() {
        assert_eq!(partition_for("my-group", 4), partition_for("my-group", 4));
        let spread: std::collections::BTreeSet<i32> = (0..50)
            .map(|i| partition_for(&format!("g{i}"), 4))
            .collect();
        assert_eq!(spread.len(), 4);
    }
}
