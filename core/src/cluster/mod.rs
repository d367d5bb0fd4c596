//! The cluster's metadata: what the controller decides and every broker replays (KRaft,
//! KIP-500/KIP-631).
//!
//! Since KRaft, a Kafka cluster keeps everything about itself (which brokers exist and whether
//! they may serve, which topics exist, where each partition's replicas are and who leads it) as
//! records in one replicated log, `__cluster_metadata`, agreed by the Raft quorum in
//! [`crate::raft`]. The active controller is the only writer: it turns requests (a broker
//! registering, a topic to create, a broker that stopped heartbeating) into
//! [records](records::MetadataRecord). Every broker, and every controller, then *replays* the
//! committed records in log order into a [`MetadataImage`], and answers clients (Metadata,
//! DescribeCluster, FindCoordinator) from that image alone. There is no other way for the
//! metadata to change, so a node that restarts, or catches up from a snapshot, ends up with
//! exactly the image every other node had at that offset.
//!
//! * [`records`]: the record types (mirroring Kafka's, named after them) and their frame.
//! * [`image`]: the image and its `replay`, with the invariants checked after every record.
//! * [`controller`]: the active controller's decisions (register, heartbeat, fence, place a
//!   topic, elect a leader, hand out producer ids), each returned as records to write.
//! * [`replication`]: the replication decisions: AlterPartition (ISR changes), elections
//!   (clean, unclean, preferred), a broker leaving its partitions, and their invariants.
//! * [`quorum_controller`]: one controller process: a Raft voter, its committed image, and while
//!   it leads the active controller on a working image; answers released only on commit.
//!   `docs/kraft.md` walks through all of it.
//! * [`lifecycle`]: the broker's side: register, heartbeat (the logic alone, over any source of
//!   the committed image); [`broker_lifecycle`]: a broker-only node under its older interface.
//! * [`channel`]: a node's road to the active controller: NOT_CONTROLLER hints, timeouts, the
//!   next voter, a deadline per request.
//! * [`member`]: a node's whole metadata side in one of Kafka's roles (broker, controller, or
//!   both in one process): the quorum, the image handed to the broker, the broker's lifecycle,
//!   and its requests routed to the local controller or over the wire.
//! * [`scram`]: SCRAM users as metadata (KIP-554): AlterUserScramCredentials' checks, the
//!   controller's decision, the replay into the image's credential store.
//! * [`wire`]: the broker-to-controller RPCs (BrokerRegistration, BrokerHeartbeat, CreateTopics,
//!   DeleteTopics, CreatePartitions, AllocateProducerIds) in Kafka's encoding, both sides.
//!
//! A `gregor serve` node with a quorum configured runs a [`Member`] in combined mode on its
//! quorum thread, serves [`wire`]'s RPCs on the controller listener, and feeds its broker (in
//! KRaft mode, `crate::broker::cluster`) the committed image (net/src/quorum).

pub mod acl_control;
pub mod broker_lifecycle;
pub mod channel;
pub mod controller;
pub mod elect_leaders;
pub mod error;
pub mod image;
pub mod import;
pub mod lifecycle;
pub mod member;
pub mod quorum_controller;
pub mod reassign;
pub mod records;
pub mod replication;
pub mod scram;
pub mod topic_configs;
pub mod wire;

pub use controller::{Controller, ControllerError, Registration, PRODUCER_ID_BLOCK, TOPIC_CONFIGS};
pub use image::{BrokerRegistration, MetadataImage, PartitionRegistration, ReplayError};
pub use member::{Member, MemberConfig, Role};
pub use quorum_controller::{
    Durable, QuorumController, QuorumControllerConfig, Reply, Request, RequestId,
};
pub use records::{decode, DecodeError, LeaderChange, MetadataRecord, RegisterBroker};

use serde::{Deserialize, Serialize};

/// A broker's `node.id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BrokerId(pub i32);

/// A broker epoch: the metadata-log offset of the broker's RegisterBrokerRecord, so each new
/// incarnation of a broker has a larger one (not a leader epoch, nor the quorum epoch: see
/// `REPLICATION.md` §1.1 for Kafka's four epochs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BrokerEpoch(pub i64);

/// A topic's id (KIP-516): a UUID that outlives renames and tells a re-created topic of the same
/// name from the old one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicId(pub [u8; 16]);
