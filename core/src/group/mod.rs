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
//! In a cluster each broker coordinates only the groups of the offsets partitions it leads,
//! loading a partition when it becomes its leader and dropping it when it stops (see
//! `group/runtime.rs`: election and resignation); the groups of any other partition hear
//! NOT_COORDINATOR.
//! Offsets of a group that has been empty for `offsets.retention.minutes` expire (tombstones).

use crate::config::Config;
use crate::coordinator::{PendingWrite, Reply, ReplyTo, WriteMark};
use crate::error::*;
use crate::ids::{
    GenerationId, GroupId, LeaderEpoch, MemberId, Offset, PartitionIndex, TopicPartition,
};
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
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
mod admin;
mod dispatch;
mod join;
mod members;
mod offsets;
mod records;
mod runtime;
mod state;
mod timers;

use admin::*;
pub use dispatch::handle;
pub(crate) use join::membership_write_failed;
use join::*;
use members::*;
use offsets::*;
pub use records::*;
use runtime::*;
pub(crate) use runtime::{load_done, partition_gained, partition_lost, start};
pub use state::*;
pub use timers::{after_step, tick};

/// The coordinator runtime as the group coordinator sees it (the broker, behind a trait).
pub type Rt = dyn crate::coordinator::Host<GroupRecord>;

/// A load of one `__consumer_offsets` partition in progress (see `runtime.rs`).
#[derive(Debug)]
pub(crate) struct Loading {
    /// The slot of the load's first read; its reads hold slots `first_slot..first_slot +
    /// chunks.len()`. Slots are never reused, so a read of an abandoned load matches no load.
    pub first_slot: usize,
    /// What each read brought back, in log order.
    pub chunks: Vec<Option<Bytes>>,
    pub outstanding: usize,
    /// The partition's end when the reads were issued: if the log was cut or grew since, the
    /// reads may miss or hold records that are not the log's, and the load starts again.
    pub issued_at: Option<WriteMark>,
    /// A read failed: the partition stays unavailable (loading) until it is gained again.
    pub failed: bool,
}

/// Whether this broker coordinates the groups of an offsets partition (Kafka: the partition's
/// leader does). A partition absent from [`Coordinator::owned`] is not ours.
#[derive(Debug)]
pub(crate) enum Ownership {
    /// Gained; its log is being read back. Its groups answer COORDINATOR_LOAD_IN_PROGRESS and
    /// nothing of it is in memory yet.
    Loading(Loading),
    /// Read back and replayed: its groups and offsets are in memory and served.
    Loaded,
}

#[derive(Debug)]
pub struct Coordinator {
    /// The offsets partitions this coordinator owns, loading or loaded.
    pub(crate) owned: BTreeMap<PartitionIndex, Ownership>,
    /// The next read slot a load may use (never reused).
    pub(crate) next_load_slot: usize,
    pub groups: BTreeMap<GroupId, Group>,
    /// group → partition → committed offset
    pub offsets: BTreeMap<GroupId, BTreeMap<TopicPartition, OffsetValue>>,
    session_timeout_ms_min: i32,
    session_timeout_ms_max: i32,
    initial_rebalance_delay: Duration,
    offsets_retention_ms: i64,
    pub(crate) offsets_partitions: i32,
    next_expiry_check: Option<Instant>,
    /// Offsets partitions with a snapshot written but older segments not yet deleted, and the
    /// snapshot's offset.
    snapshots: BTreeMap<PartitionIndex, Offset>,
}

fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Which `__consumer_offsets` partition holds a group (Kafka: `abs(groupId.hashCode) % 50`).
pub fn partition_for(group: &str, partitions: i32) -> PartitionIndex {
    assert!(partitions >= 1, "the offsets topic has partitions");
    // FNV-1a: stable across runs and machines, unlike Rust's default hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in group.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    let p = PartitionIndex((h % partitions as u32) as i32);
    assert!(p.is_within(partitions));
    p
}

impl Coordinator {
    pub fn new(config: &Config) -> Coordinator {
        Coordinator {
            owned: BTreeMap::new(),
            next_load_slot: 0,
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

    /// Whether any owned offsets partition is still loading.
    pub fn is_loading(&self) -> bool {
        self.owned
            .values()
            .any(|o| matches!(o, Ownership::Loading(_)))
    }

    /// Whether offsets partition `p` is owned and loaded: its groups are in memory and served.
    pub fn is_loaded(&self, p: PartitionIndex) -> bool {
        matches!(self.owned.get(&p), Some(Ownership::Loaded))
    }

    /// The offsets partitions this coordinator owns, each with whether it is loaded yet.
    pub fn owned_partitions(&self) -> Vec<(PartitionIndex, bool)> {
        self.owned
            .iter()
            .map(|(p, o)| (*p, matches!(o, Ownership::Loaded)))
            .collect()
    }

    /// Whether this coordinator serves `group` now: `Err(NOT_COORDINATOR)` if another broker
    /// owns its offsets partition, `Err(COORDINATOR_LOAD_IN_PROGRESS)` while that partition is
    /// being read back (Kafka's `GroupCoordinator.validateGroupStatus`). A client that hears
    /// the first looks the coordinator up again (FindCoordinator); the second, it retries.
    /// The empty group id passes, to be refused by its handler (Kafka checks the id first).
    pub fn serves(&self, group: &str) -> Result<(), ErrorCode> {
        if group.is_empty() {
            return Ok(());
        }
        match self
            .owned
            .get(&partition_for(group, self.offsets_partitions))
        {
            None => Err(ErrorCode::NOT_COORDINATOR),
            Some(Ownership::Loading(_)) => Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS),
            Some(Ownership::Loaded) => Ok(()),
        }
    }

    /// Apply one record: the only way group state and committed offsets change, live and at load.
    pub fn replay(&mut self, record: GroupRecord, now: Instant) {
        match record {
            GroupRecord::Reset { partition } => {
                let n = self.offsets_partitions;
                let partition = PartitionIndex(partition);
                self.groups
                    .retain(|g, _| partition_for(g.as_str(), n) != partition);
                self.offsets
                    .retain(|g, _| partition_for(g.as_str(), n) != partition);
                assert!(self
                    .groups
                    .keys()
                    .all(|g| partition_for(g.as_str(), n) != partition));
            }
            GroupRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                let group = GroupId(group);
                let offsets = self.offsets.entry(group.clone()).or_default();
                let key = TopicPartition::new(topic, partition);
                match value {
                    Some(v) => {
                        offsets.insert(key.clone(), v);
                        assert!(self.offsets[&group].contains_key(&key));
                    }
                    None => {
                        offsets.remove(&key);
                        if offsets.is_empty() {
                            self.offsets.remove(&group);
                        }
                        assert!(self
                            .offsets
                            .get(&group)
                            .is_none_or(|o| !o.contains_key(&key)));
                    }
                }
            }
            GroupRecord::Group { group, value } => match (GroupId(group), value) {
                (group, None) => {
                    self.groups.remove(&group);
                    assert!(!self.groups.contains_key(&group));
                }
                (group, Some(v)) => {
                    let generation = GenerationId(v.generation);
                    assert!(
                        generation >= GenerationId::FIRST,
                        "{group}: a stored generation"
                    );
                    let g = self
                        .groups
                        .entry(group)
                        .or_insert_with(|| Group::new(v.state_ms));
                    g.generation = generation;
                    g.protocol_type = v.protocol_type;
                    g.protocol = v.protocol.clone();
                    g.leader = v.leader.map(MemberId);
                    g.state_ms = v.state_ms;
                    // Replace the member set (keeping live per-member state of survivors).
                    let mut members = BTreeMap::new();
                    let member_count = v.members.len();
                    for m in v.members {
                        let old = g.members.remove(m.member_id.as_str());
                        let protocols = match (&old, &v.protocol) {
                            (Some(o), _) => o.protocols.clone(),
                            (None, Some(p)) => {
                                vec![(p.clone(), Bytes::from(m.subscription.clone()))]
                            }
                            (None, None) => vec![],
                        };
                        let session = Duration::from_ms(m.session_timeout_ms.max(0) as u64);
                        let member_id = MemberId(m.member_id);
                        members.insert(
                            member_id.clone(),
                            Member {
                                member_id,
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
                    // The record is the group's membership now: its generation, its members.
                    assert_eq!(g.generation, generation);
                    assert_eq!(g.members.len(), member_count, "member ids are unique");

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
        assert!(self.offsets_partitions >= 1);
        // Ownership: only what an owned, loaded partition holds is in memory, so a group is
        // never served (nor timed) by a broker that is not its coordinator.
        let n = self.offsets_partitions;
        for (p, o) in &self.owned {
            assert!(p.is_within(n), "an owned partition of the offsets topic");
            if let Ownership::Loading(l) = o {
                assert!(
                    l.outstanding > 0,
                    "{p}: a load with nothing to wait for is done"
                );
                assert_eq!(
                    l.chunks.iter().filter(|c| c.is_none()).count(),
                    l.outstanding,
                    "{p}: every read not back is outstanding"
                );
                assert!(
                    l.first_slot + l.chunks.len() <= self.next_load_slot,
                    "{p}: load slots handed out"
                );
            }
        }
        for id in self.groups.keys().chain(self.offsets.keys()) {
            let p = partition_for(id.as_str(), n);
            assert!(
                self.is_loaded(p),
                "{id}: in memory but its partition {p} is not owned and loaded"
            );
        }
        for p in self.snapshots.keys() {
            assert!(
                self.is_loaded(*p),
                "{p}: a snapshot of a partition not loaded"
            );
        }
        for (id, offsets) in &self.offsets {
            assert!(
                !offsets.is_empty(),
                "{id}: an empty offsets entry is removed"
            );
        }
        for (p, base) in &self.snapshots {
            assert!(
                p.is_within(self.offsets_partitions),
                "a snapshot of a real partition"
            );
            assert!(*base >= Offset(0));
        }
        for (id, g) in &self.groups {
            assert!(!id.is_empty(), "the empty group id is refused");
            assert!(
                g.generation >= GenerationId::FIRST,
                "{id}: negative generation"
            );
            // A group's records all go to its own offsets partition.
            assert!(g.last_write.as_ref().is_none_or(|m| m.partition
                == TopicPartition::new(
                    OFFSETS_TOPIC,
                    partition_for(id.as_str(), self.offsets_partitions)
                )));
            assert!(
                g.pending.keys().all(|p| !g.members.contains_key(p)),
                "{id}: a pending member id is not a member yet"
            );
            for (mid, m) in &g.members {
                assert_eq!(mid, &m.member_id, "{id}: members keyed by their id");
                assert!(!mid.is_empty(), "{id}: a member has an id");
            }
            let iids: Vec<&String> = g
                .members
                .values()
                .filter_map(|m| m.instance_id.as_ref())
                .collect();
            let unique: std::collections::BTreeSet<&String> = iids.iter().copied().collect();
            assert_eq!(
                iids.len(),
                unique.len(),
                "{id}: a static instance id held twice"
            );
            match g.state {
                GroupState::Empty => {
                    assert!(g.members.is_empty(), "{id}: Empty group with members");
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
                    assert!(g.protocol.is_some(), "{id}: a generation has its protocol");
                    assert!(
                        g.generation > GenerationId::FIRST,
                        "{id}: {:?} before any rebalance",
                        g.state
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
        assert_eq!(c.offsets["g"][&TopicPartition::new("t", 0)].offset, 7);
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
        let spread: std::collections::BTreeSet<PartitionIndex> = (0..50)
            .map(|i| partition_for(&format!("g{i}"), 4))
            .collect();
        assert_eq!(spread.len(), 4);
    }
}
