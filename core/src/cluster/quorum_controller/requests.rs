//! What is asked of the controller and what it answers, in domain terms: the wire layer
//! (`crate::cluster::wire`) decodes Kafka's RPCs into a [`Request`] and encodes each [`Reply`].

use crate::cluster::controller::Registration;
use crate::cluster::{BrokerEpoch, BrokerId, TopicId};
use crate::raft::wire::QuorumStatus;
use std::collections::BTreeMap;

/// The caller's name for a request, handed back with its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// A request to the controller, in domain terms (the wire layer decodes Kafka's RPCs into these).
/// CreateTopics and DeleteTopics carry many topics on the wire; each topic is one request here,
/// answered on its own, as Kafka answers each topic of them on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// BrokerRegistration (KIP-631): a broker incarnation joins.
    BrokerRegistration(Registration),
    /// BrokerHeartbeat: the broker is alive and has replayed the metadata log to
    /// `metadata_offset` (Kafka's `CurrentMetadataOffset`).
    BrokerHeartbeat {
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
        metadata_offset: i64,
        /// `WantShutDown`: the broker is stopping and asks for a controlled shutdown (its
        /// leaderships moved first; [`crate::cluster::Controller::shutdown_heartbeat`]).
        want_shut_down: bool,
    },
    /// CreateTopics, one topic: `configs` are its overrides (`retention.ms`, ...), written as
    /// ConfigRecords with the topic.
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// CreatePartitions, one topic: grow it to `count` partitions in all.
    CreatePartitions {
        name: String,
        count: i32,
    },
    /// AllocateProducerIds (KIP-730): a broker wants a block of producer ids.
    AllocateProducerIds {
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
    },
    /// AlterPartition (KIP-497, KIP-903), one partition: its leader asks to change its ISR. The
    /// checks and their errors are in [`crate::cluster::replication`].
    AlterPartition {
        /// The partition leader asking.
        broker_id: BrokerId,
        /// Its registration's epoch (stale: STALE_BROKER_EPOCH).
        broker_epoch: BrokerEpoch,
        topic_id: TopicId,
        partition: i32,
        /// The leader's view; older than the image's: FENCED_LEADER_EPOCH.
        leader_epoch: i32,
        /// The leader's view; older than the image's: INVALID_UPDATE_VERSION.
        partition_epoch: i32,
        /// The ISR wanted, each broker with the epoch the leader saw it at (-1: unknown, v0–2).
        new_isr: Vec<(BrokerId, BrokerEpoch)>,
        /// gregor's handover (acks=N): the ISR member to lead instead, the ISR unchanged (a
        /// tagged field on the wire; `None` for Kafka's AlterPartition).
        successor: Option<BrokerId>,
    },
    /// DescribeQuorum (KIP-595), forwarded by a broker for a tool: the quorum's state as the
    /// active controller (the Raft leader) sees it. It writes nothing and is answered at once.
    DescribeQuorum,
    /// IncrementalAlterConfigs (KIP-339), one topic: each change sets a config override
    /// (`Some`) or deletes it (`None`: back to the broker default), written as ConfigRecords.
    /// The checks are [`crate::cluster::topic_configs::alter`]'s.
    AlterConfigs {
        name: String,
        changes: Vec<(String, Option<String>)>,
    },
    /// ElectLeaders (KIP-460), one partition: elect its preferred leader, or any live replica
    /// of a leaderless one ([`crate::cluster::elect_leaders`]).
    ElectLeader {
        topic: String,
        partition: i32,
        kind: crate::cluster::elect_leaders::ElectionType,
    },
    /// AlterPartitionReassignments (KIP-455), one partition: move it to `target`, or cancel
    /// the move in progress (`None`) ([`crate::cluster::reassign`]).
    AlterReassignment {
        topic: String,
        partition: i32,
        target: Option<Vec<BrokerId>>,
    },
    /// CreateAcls (KIP-11), one ACL: an AccessControlEntry record under a fresh id, or
    /// nothing when an equal ACL is in force ([`crate::cluster::acl_control::create_acl`]).
    CreateAcl(crate::acl::AclBinding),
    /// DeleteAcls, one filter: every ACL it matches is removed.
    DeleteAcls(crate::acl::AclFilter),
    /// AlterUserScramCredentials (KIP-554), one user: its checked change
    /// ([`crate::cluster::scram::alterations`]), decided by [`crate::cluster::scram::decide`].
    AlterScram {
        user: String,
        change: crate::cluster::scram::ScramChange,
    },
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    BrokerRegistration {
        broker_epoch: BrokerEpoch,
    },
    /// Whether the broker is fenced once this heartbeat's records are applied, and whether a
    /// broker in controlled shutdown may stop now (`ShouldShutDown`).
    BrokerHeartbeat {
        fenced: bool,
        should_shut_down: bool,
    },
    CreateTopic {
        topic_id: TopicId,
    },
    DeleteTopic,
    CreatePartitions,
    /// Producer ids `first .. first + count` are the broker's alone.
    AllocateProducerIds {
        first: i64,
        count: i64,
    },
    /// The partition's state once the change is committed.
    AlterPartition {
        leader: Option<BrokerId>,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<BrokerId>,
    },
    /// The quorum's state: leader, epoch, high watermark, each voter's and observer's progress.
    DescribeQuorum(QuorumStatus),
    /// The topic's configs are changed (committed).
    AlterConfigs,
    /// The user's SCRAM credential is changed (committed).
    AlterScram,
    /// The partition's new leader is committed.
    ElectLeader,
    /// The reassignment's start (or cancel) is committed.
    AlterReassignment,
    /// The ACL is in force (committed).
    CreateAcl,
    /// These ACLs, the filter's matches, are removed (committed).
    DeleteAcls(Vec<crate::acl::AclBinding>),
}
