//! The quorum's messages on the wire, as Kafka's own KRaft RPCs (KIP-595, KIP-630).
//!
//! A [`Message`] between quorum members travels as the Kafka request or response that carries
//! it in Apache Kafka, encoded with the `kafka-protocol` crate's message types, in the usual
//! frame (a 4-byte length, a request or response header with a correlation id, the body):
//!
//! | [`Message`]                       | Kafka API (key, version)           | sender id field            |
//! |-----------------------------------|------------------------------------|----------------------------|
//! | `Vote` / `VoteResponse`           | Vote (52, v0)                      | `CandidateId`              |
//! | `BeginQuorumEpoch`                | BeginQuorumEpoch (53, v0)          | `LeaderId`                 |
//! | `EndQuorumEpoch`                  | EndQuorumEpoch (54, v0)            | `LeaderId`                 |
//! | `Fetch` / `FetchResponse`         | Fetch (1, v15)                     | `ReplicaState.ReplicaId`   |
//! | `FetchSnapshot` / `…Response`     | FetchSnapshot (59, v0)             | `ReplicaId`                |
//! | (status, for tools)               | DescribeQuorum (55, v0–v2)         | —                          |
//!
//! Every request names the one partition of the metadata log: topic `__cluster_metadata`
//! (in Fetch, from v13 on, by its fixed topic id `AAAAAAAAAAAAAAAAAAAAAQ`), partition 0.
//! BeginQuorumEpoch and EndQuorumEpoch get an empty acknowledgement ([`encode_ack`]): in
//! gregor's Raft they need no answer, the Fetch that follows is the answer.
//!
//! ## What the responses carry
//! Kafka names the responder's view in every KRaft response: `CurrentLeader` (leader id and
//! epoch) in Fetch and FetchSnapshot, `LeaderEpoch` in Vote. A fetch is answered with one of:
//! records (the entries from the fetch offset on), a `DivergingEpoch` (the fetcher must
//! truncate, KIP-595), a `SnapshotId` (the fetcher must download that snapshot, KIP-630), or
//! the error NOT_LEADER_OR_FOLLOWER. `fetch_id`, gregor's way to match a response to its
//! fetch, is not on the wire: the correlation id does that job, and the requester keeps the
//! fetch's id in the [`Pending`] it gets back from [`encode_request`].
//!
//! ## Entries as record batches
//! Log entries travel (and are stored) as Kafka's v2 record batches, uncompressed:
//! * the batch's `partitionLeaderEpoch` is the entries' Raft epoch, its `baseOffset` the first
//!   entry's offset; one batch holds a run of entries of one epoch;
//! * a data entry is one record whose value is the metadata record frame
//!   ([`crate::cluster::MetadataRecord::encode`]) and whose key is null;
//! * a [`Record::LeaderChange`] is a *control batch* (attribute bit 5) holding one control
//!   record: key = (version 0, type 2 = LEADER_CHANGE), value = a version and Kafka's
//!   `LeaderChangeMessage` (gregor fills in `LeaderId`; the voter lists stay empty).
//!
//! Decoding checks every batch's CRC-32C, its offsets (contiguous from the expected offset) and
//! its shape; anything else is a [`WireError`], never a panic: these bytes come from the network
//! or the disk.

use super::{Entry, Epoch, FetchResult, Message, NodeId, Record, SnapshotId, SnapshotResult};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use uuid::Uuid;

mod batch;
mod describe;
mod request;
mod response;

pub use batch::{decode_entries, encode_entries, read_batch};
pub use describe::{
    decode_describe_quorum_response, describe_quorum_body, encode_describe_quorum_request,
    encode_describe_quorum_response,
};
pub use request::{decode_request, request_prefix};
pub use response::{decode_response, response_correlation_id};

/// The metadata log's topic name.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// The metadata log's fixed topic id (Kafka's `Topic.METADATA_TOPIC_ID`, `AAAAAAAAAAAAAAAAAAAAAQ`).
pub const METADATA_TOPIC_ID: Uuid = Uuid::from_u64_pair(0, 1);

pub const VOTE_VERSION: i16 = 0;
pub const BEGIN_QUORUM_EPOCH_VERSION: i16 = 0;
pub const END_QUORUM_EPOCH_VERSION: i16 = 0;
/// Fetch v15 is the first with `ReplicaState` (KIP-903) in place of the old `ReplicaId`.
pub const FETCH_VERSION: i16 = 15;
pub const FETCH_SNAPSHOT_VERSION: i16 = 0;
/// The DescribeQuorum versions served (v1 adds fetch times, v2 nodes and directory ids).
pub const DESCRIBE_QUORUM_VERSIONS: (i16, i16) = (0, 2);

/// The control record type of a leader change (Kafka's `ControlRecordType.LEADER_CHANGE`).
const CONTROL_LEADER_CHANGE: i16 = 2;
/// The most bytes a Fetch response may carry (`max_bytes` in the request).
pub const FETCH_RESPONSE_BYTES_MAX: i32 = 8 * 1024 * 1024;
/// The most records one batch may declare; more is corrupt (a batch is a few hundred entries).
const BATCH_RECORDS_MAX: i32 = 1 << 20;

const ERROR_NONE: i16 = 0;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const SNAPSHOT_NOT_FOUND: i16 = 98;
const POSITION_OUT_OF_RANGE: i16 = 99;

/// Why bytes are not a quorum message. The peer (or the disk) is at fault, never the decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Too short for a header, or an API that is not a quorum RPC.
    Frame(String),
    /// A Kafka message that does not decode, or decodes to something outside the quorum's
    /// shape (another topic, several partitions, a negative id, an error we do not know).
    Malformed { api: &'static str, why: String },
    /// A record batch that fails its checks (CRC, length, offsets, control record type).
    Batch(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Frame(why) => write!(f, "bad quorum frame: {why}"),
            WireError::Malformed { api, why } => write!(f, "malformed {api}: {why}"),
            WireError::Batch(why) => write!(f, "bad metadata record batch: {why}"),
        }
    }
}

impl std::error::Error for WireError {}

fn malformed(api: &'static str, why: impl std::fmt::Display) -> WireError {
    WireError::Malformed {
        api,
        why: why.to_string(),
    }
}

/// What a requester keeps for each request in flight, to read its response: the API and
/// version it used, and the parts of a fetch that Kafka's response does not repeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    pub api_key: ApiKey,
    pub version: i16,
    pub fetch_id: u64,
    /// A Fetch's `FetchOffset`: where the entries of its response start.
    pub fetch_offset: i64,
}

/// A decoded request from a quorum member or a tool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundRequest {
    pub correlation_id: i32,
    pub api_key: ApiKey,
    pub version: i16,
    pub body: Inbound,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A Raft message and its sender (from the request's own id field).
    Raft { from: NodeId, message: Message },
    /// A DescribeQuorum: answer with [`encode_describe_quorum_response`].
    DescribeQuorum,
}

/// The state of the quorum as one node sees it: what DescribeQuorum reports
/// (`kafka-metadata-quorum describe --status --replication`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumStatus {
    pub leader: Option<NodeId>,
    pub epoch: Epoch,
    pub high_watermark: i64,
    pub voters: Vec<ReplicaStatus>,
    pub observers: Vec<ReplicaStatus>,
}

/// One replica of the metadata log, as the leader knows it (-1 where unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub id: NodeId,
    pub log_end_offset: i64,
    /// Unix ms of its last fetch, -1 if none (DescribeQuorum v1+).
    pub last_fetch_ms: i64,
    /// Unix ms when it last had the leader's whole log, -1 if never (v1+).
    pub last_caught_up_ms: i64,
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(METADATA_TOPIC))
}

fn frame(header: impl FnOnce(&mut BytesMut) -> anyhow::Result<()>) -> Result<Bytes, WireError> {
    let mut buf = BytesMut::with_capacity(128);
    buf.put_u32(0);
    header(&mut buf).map_err(|e| WireError::Frame(format!("encoding: {e}")))?;
    let len = u32::try_from(buf.len() - 4).map_err(|_| WireError::Frame("too long".into()))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(buf.len(), 4 + len as usize, "the prefix counts the rest");
    assert!(len >= 4, "a frame holds at least a correlation id");
    Ok(buf.freeze())
}

fn request_frame(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &impl Encodable,
) -> Result<Bytes, WireError> {
    frame(|buf| {
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("gregor-raft")))
            .encode(buf, key.request_header_version(version))?;
        body.encode(buf, version)
    })
}

fn response_frame(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &impl Encodable,
) -> Result<Bytes, WireError> {
    frame(|buf| {
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(buf, key.response_header_version(version))?;
        body.encode(buf, version)
    })
}

/// Encode a request `from` this node as a whole frame (length prefix included). Returns what
/// to keep to decode its response. A response message is not a request: that is an error.
pub fn encode_request(
    from: NodeId,
    correlation_id: i32,
    message: &Message,
) -> Result<(Bytes, Pending), WireError> {
    let (frame, pending) = encode_request_body(from, correlation_id, message)?;
    // The header says what the pending entry will expect back.
    let at = |i: usize| i16::from_be_bytes([frame[i], frame[i + 1]]);
    assert_eq!(at(4), pending.api_key as i16, "the frame names its API");
    assert_eq!(at(6), pending.version, "the frame names its version");
    assert_eq!(
        i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]),
        correlation_id
    );
    assert_eq!(api_of(message), pending.api_key);
    assert!(
        pending.fetch_id == 0 || matches!(pending.api_key, ApiKey::Fetch | ApiKey::FetchSnapshot),
        "only fetches carry a fetch id"
    );
    Ok((frame, pending))
}

/// The Kafka API a message is a request or response of.
pub fn api_of(message: &Message) -> ApiKey {
    match message {
        Message::Vote { .. } | Message::VoteResponse { .. } => ApiKey::Vote,
        Message::BeginQuorumEpoch { .. } => ApiKey::BeginQuorumEpoch,
        Message::EndQuorumEpoch { .. } => ApiKey::EndQuorumEpoch,
        Message::Fetch { .. } | Message::FetchResponse { .. } => ApiKey::Fetch,
        Message::FetchSnapshot { .. } | Message::FetchSnapshotResponse { .. } => {
            ApiKey::FetchSnapshot
        }
    }
}

fn encode_request_body(
    from: NodeId,
    correlation_id: i32,
    message: &Message,
) -> Result<(Bytes, Pending), WireError> {
    let pending = |api_key, version, fetch_id, fetch_offset| Pending {
        api_key,
        version,
        fetch_id,
        fetch_offset,
    };
    match message {
        Message::Vote {
            epoch,
            last_epoch,
            end_offset,
        } => {
            let p = vote_request::PartitionData::default()
                .with_replica_epoch(epoch.0)
                .with_replica_id(from.0.into())
                .with_last_offset_epoch(last_epoch.0)
                .with_last_offset(*end_offset);
            let body = VoteRequest::default().with_topics(vec![vote_request::TopicData::default()
                .with_topic_name(topic_name())
                .with_partitions(vec![p])]);
            let f = request_frame(ApiKey::Vote, VOTE_VERSION, correlation_id, &body)?;
            Ok((f, pending(ApiKey::Vote, VOTE_VERSION, 0, 0)))
        }
        Message::BeginQuorumEpoch { epoch } => {
            let p = begin_quorum_epoch_request::PartitionData::default()
                .with_leader_id(from.0.into())
                .with_leader_epoch(epoch.0);
            let body = BeginQuorumEpochRequest::default().with_topics(vec![
                begin_quorum_epoch_request::TopicData::default()
                    .with_topic_name(topic_name())
                    .with_partitions(vec![p]),
            ]);
            let (k, v) = (ApiKey::BeginQuorumEpoch, BEGIN_QUORUM_EPOCH_VERSION);
            Ok((
                request_frame(k, v, correlation_id, &body)?,
                pending(k, v, 0, 0),
            ))
        }
        Message::EndQuorumEpoch { epoch, successors } => {
            let p = end_quorum_epoch_request::PartitionData::default()
                .with_leader_id(from.0.into())
                .with_leader_epoch(epoch.0)
                .with_preferred_successors(successors.iter().map(|n| n.0).collect());
            let body = EndQuorumEpochRequest::default().with_topics(vec![
                end_quorum_epoch_request::TopicData::default()
                    .with_topic_name(topic_name())
                    .with_partitions(vec![p]),
            ]);
            let (k, v) = (ApiKey::EndQuorumEpoch, END_QUORUM_EPOCH_VERSION);
            Ok((
                request_frame(k, v, correlation_id, &body)?,
                pending(k, v, 0, 0),
            ))
        }
        Message::Fetch {
            epoch,
            fetch_id,
            fetch_offset,
            last_fetched_epoch,
        } => {
            let p = fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(epoch.0)
                .with_fetch_offset(*fetch_offset)
                .with_last_fetched_epoch(last_fetched_epoch.0)
                .with_partition_max_bytes(FETCH_RESPONSE_BYTES_MAX);
            let body = FetchRequest::default()
                .with_replica_state(
                    fetch_request::ReplicaState::default()
                        .with_replica_id(from.0.into())
                        .with_replica_epoch(-1),
                )
                .with_max_wait_ms(0)
                .with_min_bytes(0)
                .with_max_bytes(FETCH_RESPONSE_BYTES_MAX)
                .with_session_epoch(-1)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic_id(METADATA_TOPIC_ID)
                    .with_partitions(vec![p])]);
            let (k, v) = (ApiKey::Fetch, FETCH_VERSION);
            Ok((
                request_frame(k, v, correlation_id, &body)?,
                pending(k, v, *fetch_id, *fetch_offset),
            ))
        }
        Message::FetchSnapshot {
            epoch,
            fetch_id,
            snapshot_id,
            position,
        } => {
            let position = i64::try_from(*position)
                .map_err(|_| malformed("FetchSnapshot", "position beyond i64"))?;
            let p = fetch_snapshot_request::PartitionSnapshot::default()
                .with_partition(0)
                .with_current_leader_epoch(epoch.0)
                .with_snapshot_id(
                    fetch_snapshot_request::SnapshotId::default()
                        .with_end_offset(snapshot_id.end_offset)
                        .with_epoch(snapshot_id.epoch.0),
                )
                .with_position(position);
            let body = FetchSnapshotRequest::default()
                .with_replica_id(from.0.into())
                .with_max_bytes(FETCH_RESPONSE_BYTES_MAX)
                .with_topics(vec![fetch_snapshot_request::TopicSnapshot::default()
                    .with_name(topic_name())
                    .with_partitions(vec![p])]);
            let (k, v) = (ApiKey::FetchSnapshot, FETCH_SNAPSHOT_VERSION);
            Ok((
                request_frame(k, v, correlation_id, &body)?,
                pending(k, v, *fetch_id, 0),
            ))
        }
        Message::VoteResponse { .. }
        | Message::FetchResponse { .. }
        | Message::FetchSnapshotResponse { .. } => Err(WireError::Frame(
            "a response is sent with encode_response, not as a request".into(),
        )),
    }
}

/// Partitions of any request are checked by their index; Kafka's structs name it differently.
trait PartitionIndex {
    fn index(&self) -> i32;
}
macro_rules! partition_index {
    ($($t:ty => $f:ident),* $(,)?) => {
        $(impl PartitionIndex for $t { fn index(&self) -> i32 { self.$f } })*
    };
}
partition_index!(
    vote_request::PartitionData => partition_index,
    vote_response::PartitionData => partition_index,
    begin_quorum_epoch_request::PartitionData => partition_index,
    begin_quorum_epoch_response::PartitionData => partition_index,
    end_quorum_epoch_request::PartitionData => partition_index,
    end_quorum_epoch_response::PartitionData => partition_index,
    fetch_snapshot_request::PartitionSnapshot => partition,
    fetch_snapshot_response::PartitionSnapshot => index,
    describe_quorum_request::PartitionData => partition_index,
    describe_quorum_response::PartitionData => partition_index,
);

/// The one partition (`__cluster_metadata`-0) a quorum request or response must name.
fn only<P: PartitionIndex>(
    api: &'static str,
    mut topics: impl Iterator<Item = (TopicName, Vec<P>)>,
) -> Result<P, WireError> {
    let (name, partitions) = topics
        .next()
        .ok_or_else(|| malformed(api, "no topic named"))?;
    if topics.next().is_some() {
        return Err(malformed(api, "more than one topic"));
    }
    if &*name.0 != METADATA_TOPIC {
        return Err(malformed(
            api,
            format!("topic {:?} is not {METADATA_TOPIC}", &*name.0),
        ));
    }
    let mut partitions = partitions.into_iter();
    let p = partitions
        .next()
        .ok_or_else(|| malformed(api, "no partition named"))?;
    if partitions.next().is_some() || p.index() != 0 {
        return Err(malformed(
            api,
            "only partition 0 of the metadata log exists",
        ));
    }
    Ok(p)
}

fn node_id(api: &'static str, id: i32) -> Result<NodeId, WireError> {
    if id < 0 {
        return Err(malformed(api, format!("node id {id}")));
    }
    Ok(NodeId(id))
}

fn epoch(api: &'static str, e: i32) -> Result<Epoch, WireError> {
    // The last epoch has no next one: a node that met it could never stand for election.
    if e < 0 || e == i32::MAX {
        return Err(malformed(api, format!("epoch {e}")));
    }
    Ok(Epoch(e))
}

fn offset(api: &'static str, o: i64) -> Result<i64, WireError> {
    if o < 0 {
        return Err(malformed(api, format!("offset {o}")));
    }
    Ok(o)
}

fn leader_of(id: i32) -> Option<NodeId> {
    (id >= 0).then_some(NodeId(id))
}

/// Encode the response `message` to a request decoded with [`decode_request`] (its correlation
/// id and version), as a whole frame. The message must answer that request's API.
pub fn encode_response(request: &InboundRequest, message: &Message) -> Result<Bytes, WireError> {
    let frame = encode_response_body(request, message)?;
    assert_eq!(
        i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
        request.correlation_id,
        "a response carries its request's correlation id"
    );
    assert_eq!(api_of(message), request.api_key);
    Ok(frame)
}

fn encode_response_body(request: &InboundRequest, message: &Message) -> Result<Bytes, WireError> {
    let (corr, version) = (request.correlation_id, request.version);
    match (request.api_key, message) {
        (ApiKey::Vote, Message::VoteResponse { epoch, granted }) => {
            let p = vote_response::PartitionData::default()
                .with_leader_epoch(epoch.0)
                .with_leader_id((-1).into())
                .with_vote_granted(*granted);
            let body =
                VoteResponse::default().with_topics(vec![vote_response::TopicData::default()
                    .with_topic_name(topic_name())
                    .with_partitions(vec![p])]);
            response_frame(ApiKey::Vote, version, corr, &body)
        }
        (
            ApiKey::Fetch,
            Message::FetchResponse {
                epoch,
                leader,
                result,
                high_watermark,
                ..
            },
        ) => {
            let mut p = fetch_response::PartitionData::default()
                .with_high_watermark(*high_watermark)
                .with_current_leader(
                    fetch_response::LeaderIdAndEpoch::default()
                        .with_leader_id(leader.map_or(-1, |l| l.0).into())
                        .with_leader_epoch(epoch.0),
                );
            match result {
                FetchResult::Entries {
                    base_offset,
                    entries,
                } => {
                    if !entries.is_empty() {
                        p.records = Some(encode_entries(*base_offset, entries));
                    }
                }
                FetchResult::Diverging { epoch, end_offset } => {
                    p.diverging_epoch = fetch_response::EpochEndOffset::default()
                        .with_epoch(epoch.0)
                        .with_end_offset(*end_offset);
                }
                FetchResult::Snapshot { snapshot_id } => {
                    p.snapshot_id = fetch_response::SnapshotId::default()
                        .with_end_offset(snapshot_id.end_offset)
                        .with_epoch(snapshot_id.epoch.0);
                }
                FetchResult::NotLeader => p.error_code = NOT_LEADER_OR_FOLLOWER,
            }
            let body = FetchResponse::default().with_responses(vec![
                fetch_response::FetchableTopicResponse::default()
                    .with_topic_id(METADATA_TOPIC_ID)
                    .with_partitions(vec![p]),
            ]);
            response_frame(ApiKey::Fetch, version, corr, &body)
        }
        (
            ApiKey::FetchSnapshot,
            Message::FetchSnapshotResponse {
                epoch,
                leader,
                result,
                ..
            },
        ) => {
            let mut p = fetch_snapshot_response::PartitionSnapshot::default().with_current_leader(
                fetch_snapshot_response::LeaderIdAndEpoch::default()
                    .with_leader_id(leader.map_or(-1, |l| l.0).into())
                    .with_leader_epoch(epoch.0),
            );
            match result {
                SnapshotResult::Chunk {
                    snapshot_id,
                    size,
                    position,
                    bytes,
                } => {
                    let too_big = || malformed("FetchSnapshot", "snapshot beyond i64 bytes");
                    p.snapshot_id = fetch_snapshot_response::SnapshotId::default()
                        .with_end_offset(snapshot_id.end_offset)
                        .with_epoch(snapshot_id.epoch.0);
                    p.size = i64::try_from(*size).map_err(|_| too_big())?;
                    p.position = i64::try_from(*position).map_err(|_| too_big())?;
                    p.unaligned_records = bytes.clone();
                }
                SnapshotResult::NotFound => p.error_code = SNAPSHOT_NOT_FOUND,
                SnapshotResult::NotLeader => p.error_code = NOT_LEADER_OR_FOLLOWER,
            }
            let body = FetchSnapshotResponse::default().with_topics(vec![
                fetch_snapshot_response::TopicSnapshot::default()
                    .with_name(topic_name())
                    .with_partitions(vec![p]),
            ]);
            response_frame(ApiKey::FetchSnapshot, version, corr, &body)
        }
        (api, m) => Err(WireError::Frame(format!(
            "{m:?} does not answer a {api:?} request"
        ))),
    }
}

/// The acknowledgement of a BeginQuorumEpoch or EndQuorumEpoch: no error, and the responder's
/// epoch and the leader it knows.
pub fn encode_ack(
    request: &InboundRequest,
    epoch: Epoch,
    leader: Option<NodeId>,
) -> Result<Bytes, WireError> {
    let leader_id = leader.map_or(-1, |l| l.0).into();
    let (corr, version) = (request.correlation_id, request.version);
    match request.api_key {
        ApiKey::BeginQuorumEpoch => {
            let p = begin_quorum_epoch_response::PartitionData::default()
                .with_leader_id(leader_id)
                .with_leader_epoch(epoch.0);
            let body = BeginQuorumEpochResponse::default().with_topics(vec![
                begin_quorum_epoch_response::TopicData::default()
                    .with_topic_name(topic_name())
                    .with_partitions(vec![p]),
            ]);
            response_frame(ApiKey::BeginQuorumEpoch, version, corr, &body)
        }
        ApiKey::EndQuorumEpoch => {
            let p = end_quorum_epoch_response::PartitionData::default()
                .with_leader_id(leader_id)
                .with_leader_epoch(epoch.0);
            let body = EndQuorumEpochResponse::default().with_topics(vec![
                end_quorum_epoch_response::TopicData::default()
                    .with_topic_name(topic_name())
                    .with_partitions(vec![p]),
            ]);
            response_frame(ApiKey::EndQuorumEpoch, version, corr, &body)
        }
        api => Err(WireError::Frame(format!("{api:?} is not acknowledged"))),
    }
}
