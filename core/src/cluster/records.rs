//! The metadata records: the facts the controller writes to the metadata log, one per change.
//!
//! These mirror KRaft's record types (the JSON schemas in Kafka's
//! `metadata/src/main/resources/common/metadata/`, numbered by their `apiKey`), keeping the
//! fields that gregor uses. A broker learns the cluster's state only by replaying them, in log
//! order, into a [`MetadataImage`](super::MetadataImage) (KIP-631).
//!
//! ## Encoding
//! A record travels inside a Raft entry ([`crate::raft::Record::Data`]) as gregor's own frame:
//! one version byte ([`RECORD_VERSION`]), a CRC-32C of the rest (little-endian), then the record
//! in postcard (serde). A frame with another version, a wrong checksum or bytes that do not
//! decode is refused with a [`DecodeError`] naming which, never a panic: the log is input.

use super::{BrokerEpoch, BrokerId, TopicId};
use serde::{Deserialize, Serialize};

/// The version byte of every metadata record frame gregor writes.
pub const RECORD_VERSION: u8 = 1;
/// The longest frame [`decode`] accepts: larger is corrupt (Kafka caps a metadata batch at
/// `metadata.max.record.bytes`-like limits; a record here is a few hundred bytes).
pub const RECORD_BYTES_MAX: usize = 1 << 20;

/// Where a broker listens: one of its listeners (Kafka's `BrokerEndpoint`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The listener's name, e.g. `PLAINTEXT`.
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// RegisterBrokerRecord (apiKey 0): a broker (a new incarnation of it) joined. It starts
/// fenced: it may not lead or join an ISR until it has caught up with the metadata log up to
/// this record and the controller unfences it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBroker {
    pub broker_id: BrokerId,
    /// Random per process start: tells a restarted broker from a delayed request of its
    /// previous life (DUPLICATE_BROKER_REGISTRATION while the old session lives).
    pub incarnation_id: [u8; 16],
    /// The offset of this record in the metadata log (Kafka's `QuorumController` passes the
    /// next write offset). Every later request of this incarnation carries it (KIP-841/903).
    pub broker_epoch: BrokerEpoch,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

/// PartitionRecord (apiKey 3): one partition of a topic, as created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub topic_id: TopicId,
    pub partition: i32,
    /// The brokers holding a copy, in assignment order (the first is the preferred leader).
    pub replicas: Vec<BrokerId>,
    /// The in-sync replicas: those with every committed record.
    pub isr: Vec<BrokerId>,
    /// `None` is Kafka's leader -1: no live ISR member, the partition is offline.
    pub leader: Option<BrokerId>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// How a PartitionChangeRecord changes the leader (Kafka encodes these as -2 = unchanged,
/// -1 = none, else the broker id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderChange {
    Unchanged,
    /// The partition goes offline.
    NoLeader,
    To(BrokerId),
}

/// PartitionChangeRecord (apiKey 5): a sparse change to one partition; what is `None` (or
/// [`LeaderChange::Unchanged`]) stays. Replaying it raises the partition epoch by one, and the
/// leader epoch by one if the leader changes (since metadata version 3.6 an ISR change alone
/// leaves the leader epoch: KAFKA-15021).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChange {
    pub topic_id: TopicId,
    pub partition: i32,
    pub isr: Option<Vec<BrokerId>>,
    pub leader: LeaderChange,
    pub replicas: Option<Vec<BrokerId>>,
}

/// One fact in the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    RegisterBroker(RegisterBroker),
    /// UnregisterBrokerRecord (apiKey 1): the registration of that epoch is removed.
    UnregisterBroker {
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
    },
    /// BrokerRegistrationChangeRecord (apiKey 17): fence or unfence a broker, or mark it in
    /// controlled shutdown (what FenceBroker/UnfenceBroker records did before it). `None`
    /// leaves a flag as it is. Names the epoch, so a change meant for an older incarnation
    /// does not apply.
    BrokerRegistrationChange {
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
        fenced: Option<bool>,
        in_controlled_shutdown: Option<bool>,
    },
    /// TopicRecord (apiKey 2): a topic exists, with no partitions until PartitionRecords follow.
    Topic {
        name: String,
        topic_id: TopicId,
    },
    Partition(PartitionRecord),
    PartitionChange(PartitionChange),
    /// RemoveTopicRecord (apiKey 9): the topic and all its partitions are gone.
    RemoveTopic {
        topic_id: TopicId,
    },
    /// FeatureLevelRecord (apiKey 12): a feature's finalized level; every log starts with the
    /// `metadata.version` one. Level 0 removes the feature.
    FeatureLevel {
        name: String,
        level: i16,
    },
    /// NoOpRecord (apiKey 20): written when the controller is idle, so the high watermark
    /// (and the brokers' images) keep moving and a stale broker can tell it is stale.
    NoOp,
    /// ProducerIdsRecord (apiKey 15, KIP-730): the controller handed broker `broker_id` (of
    /// incarnation `broker_epoch`) a block of producer ids ending below `next_producer_id`;
    /// the next block starts there. Logged so a new controller never hands the same ids out
    /// twice: producer ids must be unique across the cluster and its whole history, or two
    /// idempotent producers would share sequence numbers.
    ProducerIds {
        broker_id: BrokerId,
        broker_epoch: BrokerEpoch,
        next_producer_id: i64,
    },
    /// ConfigRecord (apiKey 4): one config key of one resource set to `value`, or removed
    /// (back to the default) when `value` is `None`. `resource_type` is Kafka's
    /// `ConfigResource.Type`; gregor's metadata log holds only topic configs
    /// ([`CONFIG_RESOURCE_TOPIC`] = 2), named by topic name as Kafka's record does. A topic's
    /// configs are written in the same batch as its TopicRecord, so a broker never sees the
    /// topic without them; RemoveTopicRecord drops them with the topic.
    Config {
        resource_type: i8,
        resource_name: String,
        name: String,
        value: Option<String>,
    },
    /// gregor's own record, no Kafka twin (Kafka marks the partition's `LeaderRecoveryState`
    /// RECOVERING and logs a line): the PartitionChange just before it, in the same batch,
    /// elected `leader` in `leader_epoch` from *outside* the ISR, because no ISR member was
    /// live and the topic sets `unclean.leader.election.enable`. Records the old ISR had
    /// acknowledged may be gone. The image keeps every one (snapshots too), so an operator or a
    /// checker can tell a loss the topic allowed from a bug. Appended last to the enum, so frames
    /// written before it existed still decode.
    UncleanElection {
        topic_id: TopicId,
        partition: i32,
        leader: BrokerId,
        leader_epoch: i32,
    },
    /// gregor's twin of the KIP-966 fields of Kafka's PartitionChangeRecord
    /// (`EligibleLeaderReplicas`, and what `LastKnownElr` stands for): partition `partition`'s
    /// *eligible leader replicas* are now `elr`, and `isr_lost` says whether its ISR's one
    /// member is only the last known one, its log lost (see
    /// [`PartitionRegistration`](super::PartitionRegistration)). Kept apart from
    /// PartitionChange so that record's frames stay as they were; the controller writes it
    /// right after the PartitionChange it belongs to (in the same batch), or alone when only
    /// the ELR changes. It does not raise the partition epoch: only the controller reads the
    /// ELR, the leader's AlterPartition does not name it. Appended last to the enum.
    ElrChange {
        topic_id: TopicId,
        partition: i32,
        elr: Vec<BrokerId>,
        isr_lost: bool,
    },
    /// gregor's twin of the `AddingReplicas` and `RemovingReplicas` fields of Kafka's
    /// PartitionChangeRecord (KIP-455, partition reassignment): partition `partition` is being
    /// moved. Its replicas are the target followed by the replicas it leaves; `adding` are the
    /// target's brokers that are new (they catch up as followers), `removing` the ones that
    /// leave once every adding replica is in the ISR. Both empty: no reassignment. Kept apart
    /// from PartitionChange so that record's frames stay as they were; written right after the
    /// PartitionChange that sets the replicas (in the same batch). It does not raise the
    /// partition epoch. Appended last to the enum.
    ReassignmentChange {
        topic_id: TopicId,
        partition: i32,
        adding: Vec<BrokerId>,
        removing: Vec<BrokerId>,
    },
    /// AccessControlEntryRecord (apiKey 6, KIP-11 in KRaft): the ACL `binding` is in force
    /// under `id`, a UUID the controller picked. Appended last to the enum.
    AccessControlEntry {
        id: crate::acl::AclId,
        binding: crate::acl::AclBinding,
    },
    /// RemoveAccessControlEntryRecord (apiKey 7): the ACL `id` is gone (DeleteAcls).
    RemoveAccessControlEntry {
        id: crate::acl::AclId,
    },
    /// UserScramCredentialRecord (apiKey 11, KIP-554): user `name`'s credential for one SCRAM
    /// hash (`mechanism`: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512), added or replaced. The salt, the
    /// iteration count and the two derived keys; never the password. Appended last to the enum.
    UserScramCredential {
        name: String,
        mechanism: i8,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        iterations: i32,
    },
    /// RemoveUserScramCredentialRecord (apiKey 22, KIP-554): that credential is gone; the user
    /// can no longer log in with that hash.
    RemoveUserScramCredential {
        name: String,
        mechanism: i8,
    },
}

/// The [`MetadataRecord::api_key`] of gregor's own [`MetadataRecord::ReassignmentChange`].
pub const REASSIGNMENT_CHANGE_KEY: i16 = 10_003;

/// The [`MetadataRecord::api_key`] of gregor's own [`MetadataRecord::ElrChange`].
pub const ELR_CHANGE_KEY: i16 = 10_002;

/// The [`MetadataRecord::api_key`] of gregor's own [`MetadataRecord::UncleanElection`]: far
/// above Kafka's record keys (which stop in the twenties), so it never names one of theirs.
pub const UNCLEAN_ELECTION_KEY: i16 = 10_001;

/// `ConfigResource.Type.TOPIC`: the only resource type gregor's ConfigRecords name.
pub const CONFIG_RESOURCE_TOPIC: i8 = 2;

impl MetadataRecord {
    /// Kafka's `apiKey` of the record type this mirrors.
    pub fn api_key(&self) -> i16 {
        match self {
            MetadataRecord::RegisterBroker(_) => 0,
            MetadataRecord::UnregisterBroker { .. } => 1,
            MetadataRecord::Topic { .. } => 2,
            MetadataRecord::Partition(_) => 3,
            MetadataRecord::Config { .. } => 4,
            MetadataRecord::PartitionChange(_) => 5,
            MetadataRecord::RemoveTopic { .. } => 9,
            MetadataRecord::FeatureLevel { .. } => 12,
            MetadataRecord::BrokerRegistrationChange { .. } => 17,
            MetadataRecord::ProducerIds { .. } => 15,
            MetadataRecord::NoOp => 20,
            MetadataRecord::UncleanElection { .. } => UNCLEAN_ELECTION_KEY,
            MetadataRecord::ElrChange { .. } => ELR_CHANGE_KEY,
            MetadataRecord::ReassignmentChange { .. } => REASSIGNMENT_CHANGE_KEY,
            MetadataRecord::AccessControlEntry { .. } => 6,
            MetadataRecord::RemoveAccessControlEntry { .. } => 7,
            MetadataRecord::UserScramCredential { .. } => 11,
            MetadataRecord::RemoveUserScramCredential { .. } => 22,
        }
    }

    /// The record as a versioned, checksummed frame.
    pub fn encode(&self) -> Vec<u8> {
        let body = postcard::to_allocvec(self).expect("a metadata record always encodes");
        let mut out = Vec::with_capacity(5 + body.len());
        out.push(RECORD_VERSION);
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&body);
        assert!(
            out.len() <= RECORD_BYTES_MAX,
            "a metadata record fits a frame"
        );
        out
    }
}

/// Why a frame is not a metadata record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the version byte and checksum, or longer than [`RECORD_BYTES_MAX`].
    BadLength(usize),
    /// A version this build does not read.
    UnknownVersion(u8),
    /// The bytes changed after they were written.
    Checksum { stored: u32, computed: u32 },
    /// The checksum holds but the body is not a record this version knows.
    Malformed(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::BadLength(n) => write!(f, "metadata record frame of {n} bytes"),
            DecodeError::UnknownVersion(v) => write!(f, "metadata record version {v} unknown"),
            DecodeError::Checksum { stored, computed } => write!(
                f,
                "metadata record checksum {stored:#010x}, computed {computed:#010x}"
            ),
            DecodeError::Malformed(e) => write!(f, "metadata record malformed: {e}"),
        }
    }
}

/// Read a frame written by [`MetadataRecord::encode`].
pub fn decode(frame: &[u8]) -> Result<MetadataRecord, DecodeError> {
    if frame.len() < 5 || frame.len() > RECORD_BYTES_MAX {
        return Err(DecodeError::BadLength(frame.len()));
    }
    if frame[0] != RECORD_VERSION {
        return Err(DecodeError::UnknownVersion(frame[0]));
    }
    let stored = u32::from_le_bytes(frame[1..5].try_into().expect("four bytes"));
    let body = &frame[5..];
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    let (record, rest) = postcard::take_from_bytes::<MetadataRecord>(body)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed(format!(
            "{} bytes after the record",
            rest.len()
        )));
    }
    assert_eq!(
        postcard::to_allocvec(&record).ok().as_deref(),
        Some(body),
        "one encoding per record"
    );
    Ok(record)
}

/// A metadata snapshot's bytes (KIP-630: Kafka writes its snapshots as record batches too):
/// the records of [`MetadataImage::to_records`](super::MetadataImage::to_records), each as its
/// own checksummed frame behind a 4-byte little-endian length.
pub fn encode_snapshot(records: &[MetadataRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let frame = r.encode();
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    assert!(records.is_empty() || !out.is_empty());
    out
}

/// Read the bytes [`encode_snapshot`] wrote; a cut or corrupt frame is a [`DecodeError`].
pub fn decode_snapshot(mut bytes: &[u8]) -> Result<Vec<MetadataRecord>, DecodeError> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 4 {
            return Err(DecodeError::BadLength(bytes.len()));
        }
        let len = u32::from_le_bytes(bytes[..4].try_into().expect("four bytes")) as usize;
        let rest = &bytes[4..];
        if len > rest.len() {
            return Err(DecodeError::BadLength(len));
        }
        records.push(decode(&rest[..len])?);
        bytes = &rest[len..];
    }
    Ok(records)
}
