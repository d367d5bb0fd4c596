//! The broker-to-controller RPCs on the wire, in Kafka's own encoding (KIP-500, KIP-631,
//! KIP-730), over the `kafka-protocol` crate's messages.
//!
//! A broker (or a tool) talks to the active controller on the controller listener with these
//! requests; each is turned into [`Request`] values for the [`QuorumController`]
//! (one per topic for the topic APIs: Kafka answers each topic of them on its own), and the
//! controller's answers are encoded back into the Kafka response:
//!
//! | Kafka API (key)            | versions | becomes                                         |
//! |----------------------------|----------|-------------------------------------------------|
//! | BrokerRegistration (62)    | 0–4      | [`Request::BrokerRegistration`]                 |
//! | BrokerHeartbeat (63)       | 0–1      | [`Request::BrokerHeartbeat`]                    |
//! | CreateTopics (19)          | 2–7      | one [`Request::CreateTopic`] per topic          |
//! | DeleteTopics (20)          | 1–6      | one [`Request::DeleteTopic`] per topic          |
//! | CreatePartitions (37)      | 0–3      | one [`Request::CreatePartitions`] per topic     |
//! | AllocateProducerIds (67)   | 0        | [`Request::AllocateProducerIds`]                |
//! | AlterPartition (56)        | 2–3      | one [`Request::AlterPartition`] per partition   |
//! | IncrementalAlterConfigs (44) | 0–1    | one [`Request::AlterConfigs`] per topic         |
//! | ElectLeaders (43)          | 1–2      | one [`Request::ElectLeader`] per partition      |
//! | AlterPartitionReassignments (45) | 0  | one [`Request::AlterReassignment`] per partition |
//! | CreateAcls (30)            | 1–3      | one [`Request::CreateAcl`] per creation         |
//! | DeleteAcls (31)            | 1–3      | one [`Request::DeleteAcls`] per filter          |
//! | AlterUserScramCredentials (51) | 0    | one [`Request::AlterScram`] per user            |
//! | DescribeQuorum (55)        | 0–2      | answered by the listener from the Raft; a broker forwards [`Request::DescribeQuorum`] as it |
//! | ApiVersions (18)           | 0–3      | answered by the listener (the table it serves)  |
//! | DescribeCluster (60)       | 0–2      | answered from the committed image               |
//! | Metadata (3)               | 0–12     | answered from the committed image               |
//!
//! The version ranges are those of Apache Kafka 4.0's message schemas
//! (`clients/src/main/resources/common/message/*.json`), which the crate implements: 4.0
//! dropped CreateTopics v0–1 and DeleteTopics v0 (KIP-896). An error is Kafka's code from
//! [`ControllerError::code`] (NOT_CONTROLLER = 41 sends the broker to the quorum's leader) with
//! [`ControllerError::message`] where the response has room for a message.
//!
//! What gregor refuses at decoding, per topic, with INVALID_REQUEST (42) and a message saying
//! why: manual replica assignments (CreateTopics `Assignments`, CreatePartitions
//! `Assignments`), `validate_only`, a DeleteTopics v6 entry naming a topic only by id, a topic
//! named twice in one request (Kafka's INVALID_REQUEST too). A `NumPartitions` of -1 (the
//! broker's default, KIP-464) becomes 1; a `ReplicationFactor` of -1 reaches the controller as
//! it is, which applies `default.replication.factor`.
//!
//! Decoding bytes that are not one of these requests gives a [`ControllerWireError`], never a
//! panic: the listener is open to the network. [`client`] has the other side: a request encoded
//! for the active controller and its response read back.

mod acls;
mod alter_configs;
mod alter_partition;
pub mod client;
mod describe;
mod elect_leaders;
mod quorum;
mod reassign;
mod scram;

pub use describe::{
    api_versions_table, encode_api_versions_response, encode_describe_cluster_response,
    encode_metadata_response,
};
pub use quorum::quorum_status;

use super::{BrokerEpoch, BrokerId, ControllerError, MetadataImage, Registration, Reply, Request};
use crate::cluster::records::Endpoint;
use alter_configs::{alter_configs_items, encode_alter_configs_response};
use alter_partition::{alter_partition_items, encode_alter_partition_response};
use bytes::{BufMut, Bytes, BytesMut};
use elect_leaders::{elect_leaders_items, encode_elect_leaders_response};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use reassign::{encode_reassign_response, reassign_items};
use scram::{alter_scram_items, encode_alter_scram_response};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The APIs and versions the controller listener serves for brokers and tools (the quorum's
/// own RPCs, in [`crate::raft::wire`], are added to ApiVersions by [`api_versions_table`]).
pub const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::BrokerRegistration, 0, 4),
    (ApiKey::BrokerHeartbeat, 0, 1),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::AllocateProducerIds, 0, 0),
    (ApiKey::AlterPartition, 2, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::ElectLeaders, 1, 2),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::Metadata, 0, 12),
];

/// DescribeCluster's `EndpointType` (KIP-919): 1 lists brokers, 2 lists controllers.
pub const ENDPOINT_TYPE_BROKERS: i8 = 1;
pub const ENDPOINT_TYPE_CONTROLLERS: i8 = 2;
/// The tagged field of a `DescribeClusterBroker` in which gregor adds the broker epoch (an
/// int64, big-endian). Tagged fields (KIP-482) are how Kafka extends a flexible message without
/// a new version: a reader that does not know the tag skips it, so Kafka's tools still read the
/// response. The number is far above any tag Kafka's schemas use.
pub const BROKER_EPOCH_TAG: i32 = 0x6772;

const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_VERSION: i16 = 35;

/// Why a frame is not a request the controller listener serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerWireError {
    /// Shorter than a request header, or an API (or version) not served here.
    Frame(String),
    /// The header or body does not decode, or decodes to nonsense (a negative broker id).
    Malformed { api: ApiKey, why: String },
}

impl std::fmt::Display for ControllerWireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControllerWireError::Frame(why) => write!(f, "bad controller request frame: {why}"),
            ControllerWireError::Malformed { api, why } => write!(f, "malformed {api:?}: {why}"),
        }
    }
}

impl std::error::Error for ControllerWireError {}

fn malformed(api: ApiKey, why: impl std::fmt::Display) -> ControllerWireError {
    ControllerWireError::Malformed {
        api,
        why: why.to_string(),
    }
}

/// An answer refused before it reached the controller (decoding) or by it: Kafka's error code
/// and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: i16,
    pub message: String,
}

impl From<ControllerError> for Refusal {
    fn from(e: ControllerError) -> Refusal {
        Refusal {
            code: e.code(),
            message: e.message(),
        }
    }
}

/// One item's answer, as the response carries it.
pub type Answer = Result<Reply, Refusal>;

/// A decoded request on the controller listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerRequest {
    pub correlation_id: i32,
    pub api_key: ApiKey,
    pub version: i16,
    pub call: Call,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// Answer with [`encode_api_versions_response`]. `unsupported` when the client used a
    /// version above ours (KIP-511: answer v0 with UNSUPPORTED_VERSION and the table).
    ApiVersions { unsupported: bool },
    /// Answer with [`encode_describe_cluster_response`].
    DescribeCluster { endpoint_type: i8 },
    /// Answer with [`encode_metadata_response`]: these topics, or (`None`) every topic.
    Metadata { topics: Option<Vec<String>> },
    /// Requests for the controller, one per item of the Kafka request, in its order: an `Err`
    /// item was refused at decoding and is answered as it is. The response is
    /// [`encode_response`] of every item's answer, in the same order.
    Controller(Vec<Item>),
}

/// One item of a controller request: the topic it names (for the response), and the request
/// or why it never reached the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub topic: Option<String>,
    /// For CreateTopics' response, which repeats them.
    pub partitions: i32,
    pub replication_factor: i16,
    pub request: Result<Request, Refusal>,
}

/// The API key, version and correlation id of a request frame (without its length prefix), if
/// it is long enough; `None` for an API key Kafka does not define.
pub fn peek(frame: &[u8]) -> Option<(ApiKey, i16, i32)> {
    if frame.len() < 8 {
        return None;
    }
    let raw = i16::from_be_bytes([frame[0], frame[1]]);
    let key = ApiKey::try_from(raw).ok()?;
    assert_eq!(key as i16, raw, "the key is the one in the frame");
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let corr = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    Some((key, version, corr))
}

/// Whether the controller listener hands a frame of this API to [`decode_request`] (the rest
/// are the quorum's own RPCs).
pub fn serves(key: ApiKey) -> bool {
    SERVED.iter().any(|(k, _, _)| *k == key)
}

/// The served range of `key`.
pub fn served_range(key: ApiKey) -> Option<(i16, i16)> {
    SERVED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, lo, hi)| (*lo, *hi))
}

fn uuid_bytes(id: Uuid) -> [u8; 16] {
    *id.as_bytes()
}

/// A topic name from the request, checked for repeats within it.
fn name_of(seen: &mut BTreeSet<String>, name: &StrBytes) -> (String, Option<Refusal>) {
    let n = name.to_string();
    let dup = (!seen.insert(n.clone())).then(|| Refusal {
        code: INVALID_REQUEST,
        message: format!("topic {n} is named more than once in the request"),
    });
    assert!(seen.contains(&n), "every name is remembered");
    (n, dup)
}

fn refuse(why: impl Into<String>) -> Refusal {
    Refusal {
        code: INVALID_REQUEST,
        message: why.into(),
    }
}

/// Decode a request frame (without its length prefix) of an API in [`SERVED`].
pub fn decode_request(frame: Bytes) -> Result<ControllerRequest, ControllerWireError> {
    let (api_key, version, correlation_id) = peek(&frame).ok_or_else(|| {
        ControllerWireError::Frame(format!("{} bytes or unknown API", frame.len()))
    })?;
    let (lo, hi) = served_range(api_key).ok_or_else(|| {
        ControllerWireError::Frame(format!(
            "{api_key:?} is not served on the controller listener"
        ))
    })?;
    if api_key == ApiKey::ApiVersions && version > hi {
        return Ok(ControllerRequest {
            correlation_id,
            api_key,
            version,
            call: Call::ApiVersions { unsupported: true },
        });
    }
    if !(lo..=hi).contains(&version) {
        return Err(ControllerWireError::Frame(format!(
            "{api_key:?} v{version} is not served (v{lo}–v{hi})"
        )));
    }
    assert!(lo <= version && version <= hi, "a served version");
    let mut buf = frame;
    RequestHeader::decode(&mut buf, api_key.request_header_version(version))
        .map_err(|e| malformed(api_key, format!("header: {e}")))?;
    let m = |e: anyhow::Error| malformed(api_key, e);
    let call = match api_key {
        ApiKey::ApiVersions => {
            ApiVersionsRequest::decode(&mut buf, version).map_err(m)?;
            Call::ApiVersions { unsupported: false }
        }
        ApiKey::DescribeCluster => {
            let r = DescribeClusterRequest::decode(&mut buf, version).map_err(m)?;
            // v0 has no endpoint type: it asks for brokers.
            let endpoint_type = if version >= 1 {
                r.endpoint_type
            } else {
                ENDPOINT_TYPE_BROKERS
            };
            Call::DescribeCluster { endpoint_type }
        }
        ApiKey::Metadata => {
            let r = MetadataRequest::decode(&mut buf, version).map_err(m)?;
            // v0 asks for every topic with an empty list, later versions with a null one.
            let topics = match r.topics {
                None => None,
                Some(t) if t.is_empty() && version == 0 => None,
                Some(t) => Some(
                    t.iter()
                        .map(|t| t.name.as_ref().map_or(String::new(), |n| n.to_string()))
                        .collect(),
                ),
            };
            Call::Metadata { topics }
        }
        ApiKey::BrokerRegistration => {
            let r = BrokerRegistrationRequest::decode(&mut buf, version).map_err(m)?;
            if r.broker_id.0 < 0 {
                return Err(malformed(api_key, format!("broker id {}", r.broker_id.0)));
            }
            let endpoints = r
                .listeners
                .iter()
                .map(|l| Endpoint {
                    name: l.name.to_string(),
                    host: l.host.to_string(),
                    port: l.port,
                })
                .collect();
            let reg = Registration {
                broker_id: BrokerId(r.broker_id.0),
                incarnation_id: uuid_bytes(r.incarnation_id),
                endpoints,
                rack: r.rack.map(|s| s.to_string()),
                // gregor's brokers send -1 exactly when their log directory is new (KIP-966);
                // before v3 the field is absent (-1): read as new, the safe side.
                log_dir_new: r.previous_broker_epoch == -1,
            };
            assert_eq!(
                reg.endpoints.len(),
                r.listeners.len(),
                "every listener kept"
            );
            assert!(reg.broker_id.0 >= 0);
            Call::Controller(vec![single(Request::BrokerRegistration(reg))])
        }
        ApiKey::BrokerHeartbeat => {
            let r = BrokerHeartbeatRequest::decode(&mut buf, version).map_err(m)?;
            if r.broker_id.0 < 0 {
                return Err(malformed(api_key, format!("broker id {}", r.broker_id.0)));
            }
            Call::Controller(vec![single(Request::BrokerHeartbeat {
                broker_id: BrokerId(r.broker_id.0),
                broker_epoch: BrokerEpoch(r.broker_epoch),
                metadata_offset: r.current_metadata_offset,
                want_shut_down: r.want_shut_down,
            })])
        }
        ApiKey::AllocateProducerIds => {
            let r = AllocateProducerIdsRequest::decode(&mut buf, version).map_err(m)?;
            if r.broker_id.0 < 0 {
                return Err(malformed(api_key, format!("broker id {}", r.broker_id.0)));
            }
            Call::Controller(vec![single(Request::AllocateProducerIds {
                broker_id: BrokerId(r.broker_id.0),
                broker_epoch: BrokerEpoch(r.broker_epoch),
            })])
        }
        ApiKey::CreateTopics => {
            let r = CreateTopicsRequest::decode(&mut buf, version).map_err(m)?;
            let mut seen = BTreeSet::new();
            let items: Vec<Item> = r
                .topics
                .iter()
                .map(|t| create_topic_item(&mut seen, t, r.validate_only))
                .collect();
            assert_eq!(items.len(), r.topics.len(), "one item per topic");
            Call::Controller(items)
        }
        ApiKey::DeleteTopics => {
            let r = DeleteTopicsRequest::decode(&mut buf, version).map_err(m)?;
            let mut seen = BTreeSet::new();
            // v6 names topics in `Topics` (by name or id), earlier versions in `TopicNames`.
            let names: Vec<Option<StrBytes>> = if version >= 6 {
                r.topics
                    .iter()
                    .map(|t| t.name.clone().map(|n| n.0))
                    .collect()
            } else {
                r.topic_names.iter().map(|n| Some(n.0.clone())).collect()
            };
            let items = names
                .into_iter()
                .map(|n| match n {
                    None => Item {
                        topic: None,
                        partitions: -1,
                        replication_factor: -1,
                        request: Err(refuse("deleting a topic by id alone is not supported")),
                    },
                    Some(n) => {
                        let (name, dup) = name_of(&mut seen, &n);
                        Item {
                            topic: Some(name.clone()),
                            partitions: -1,
                            replication_factor: -1,
                            request: match dup {
                                Some(d) => Err(d),
                                None => Ok(Request::DeleteTopic { name }),
                            },
                        }
                    }
                })
                .collect::<Vec<Item>>();
            assert!(
                items.iter().all(|i| i.partitions == -1),
                "no counts in a delete"
            );
            Call::Controller(items)
        }
        ApiKey::CreatePartitions => {
            let r = CreatePartitionsRequest::decode(&mut buf, version).map_err(m)?;
            let mut seen = BTreeSet::new();
            let items = r
                .topics
                .iter()
                .map(|t| {
                    let (name, dup) = name_of(&mut seen, &t.name.0);
                    let request = if let Some(d) = dup {
                        Err(d)
                    } else if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
                        Err(refuse("manual partition assignments are not supported"))
                    } else if r.validate_only {
                        Err(refuse("validate_only is not supported by the controller"))
                    } else {
                        Ok(Request::CreatePartitions {
                            name: name.clone(),
                            count: t.count,
                        })
                    };
                    Item {
                        topic: Some(name),
                        partitions: t.count,
                        replication_factor: -1,
                        request,
                    }
                })
                .collect::<Vec<Item>>();
            assert_eq!(items.len(), r.topics.len(), "one item per topic");
            Call::Controller(items)
        }
        ApiKey::AlterPartition => {
            let r = AlterPartitionRequest::decode(&mut buf, version).map_err(m)?;
            if r.broker_id.0 < 0 {
                return Err(malformed(api_key, format!("broker id {}", r.broker_id.0)));
            }
            Call::Controller(alter_partition_items(&r, version))
        }
        ApiKey::IncrementalAlterConfigs => {
            let r = IncrementalAlterConfigsRequest::decode(&mut buf, version).map_err(m)?;
            Call::Controller(alter_configs_items(&r))
        }
        ApiKey::ElectLeaders => {
            let r = ElectLeadersRequest::decode(&mut buf, version).map_err(m)?;
            Call::Controller(elect_leaders_items(&r))
        }
        ApiKey::AlterPartitionReassignments => {
            let r = AlterPartitionReassignmentsRequest::decode(&mut buf, version).map_err(m)?;
            Call::Controller(reassign_items(&r))
        }
        ApiKey::CreateAcls => {
            let r = CreateAclsRequest::decode(&mut buf, version).map_err(m)?;
            Call::Controller(acls::create_acls_items(&r))
        }
        ApiKey::DeleteAcls => {
            let r = DeleteAclsRequest::decode(&mut buf, version).map_err(m)?;
            Call::Controller(acls::delete_acls_items(&r))
        }
        ApiKey::AlterUserScramCredentials => {
            let r = AlterUserScramCredentialsRequest::decode(&mut buf, version).map_err(m)?;
            Call::Controller(alter_scram_items(&r))
        }
        _ => unreachable!("only served APIs get here"),
    };
    if let Call::Controller(items) = &call {
        assert!(
            items
                .iter()
                .all(|i| i.request.as_ref().is_ok_and(|r| api_of(r) == api_key)
                    || i.request.is_err()),
            "every item is of the header's API"
        );
    }
    Ok(ControllerRequest {
        correlation_id,
        api_key,
        version,
        call,
    })
}

fn single(request: Request) -> Item {
    Item {
        topic: None,
        partitions: -1,
        replication_factor: -1,
        request: Ok(request),
    }
}

fn create_topic_item(
    seen: &mut BTreeSet<String>,
    t: &create_topics_request::CreatableTopic,
    validate_only: bool,
) -> Item {
    let (name, dup) = name_of(seen, &t.name.0);
    let partitions = if t.num_partitions == -1 {
        1
    } else {
        t.num_partitions
    };
    // -1 stays: the controller applies its `default.replication.factor` (KIP-464).
    let replication_factor = t.replication_factor;
    let mut configs = BTreeMap::new();
    let mut bad = None;
    for c in &t.configs {
        match &c.value {
            Some(v) => {
                if configs.insert(c.name.to_string(), v.to_string()).is_some() {
                    bad = Some(refuse(format!("config {} is given twice", c.name)));
                }
            }
            None => bad = Some(refuse(format!("config {} has no value", c.name))),
        }
    }
    assert!(partitions == t.num_partitions || t.num_partitions == -1);
    assert!(
        configs.len() <= t.configs.len(),
        "at most one entry per config given"
    );
    let request = if let Some(d) = dup {
        Err(d)
    } else if !t.assignments.is_empty() {
        Err(refuse("manual replica assignments are not supported"))
    } else if validate_only {
        Err(refuse("validate_only is not supported by the controller"))
    } else if let Some(b) = bad {
        Err(b)
    } else {
        Ok(Request::CreateTopic {
            name: name.clone(),
            partitions,
            replication_factor: replication_factor.into(),
            configs,
        })
    };
    Item {
        topic: Some(name),
        partitions,
        replication_factor,
        request,
    }
}

/// The Kafka API a request travels as.
pub fn api_of(request: &Request) -> ApiKey {
    match request {
        Request::BrokerRegistration(_) => ApiKey::BrokerRegistration,
        Request::BrokerHeartbeat { .. } => ApiKey::BrokerHeartbeat,
        Request::CreateTopic { .. } => ApiKey::CreateTopics,
        Request::DeleteTopic { .. } => ApiKey::DeleteTopics,
        Request::CreatePartitions { .. } => ApiKey::CreatePartitions,
        Request::AllocateProducerIds { .. } => ApiKey::AllocateProducerIds,
        Request::AlterPartition { .. } => ApiKey::AlterPartition,
        Request::DescribeQuorum => ApiKey::DescribeQuorum,
        Request::AlterConfigs { .. } => ApiKey::IncrementalAlterConfigs,
        Request::ElectLeader { .. } => ApiKey::ElectLeaders,
        Request::AlterReassignment { .. } => ApiKey::AlterPartitionReassignments,
        Request::CreateAcl(_) => ApiKey::CreateAcls,
        Request::DeleteAcls(_) => ApiKey::DeleteAcls,
        Request::AlterScram { .. } => ApiKey::AlterUserScramCredentials,
    }
}

fn frame(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &impl Encodable,
) -> Result<Bytes, ControllerWireError> {
    let mut buf = BytesMut::with_capacity(128);
    buf.put_u32(0);
    let enc = |buf: &mut BytesMut| -> anyhow::Result<()> {
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(buf, key.response_header_version(version))?;
        body.encode(buf, version)
    };
    enc(&mut buf).map_err(|e| malformed(key, format!("encoding the response: {e}")))?;
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    assert!(len >= 4, "a response holds at least its correlation id");
    assert_eq!(
        i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        correlation_id,
        "the header leads with the correlation id"
    );
    Ok(buf.freeze())
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// The error code and message of an answer (0 and none for a success).
fn code_of(a: &Answer) -> (i16, Option<StrBytes>) {
    let out = match a {
        Ok(_) => (0, None),
        Err(r) => (r.code, Some(sb(&r.message))),
    };
    assert_eq!(out.0 == 0, a.is_ok(), "a refusal is never error code 0");
    out
}

/// Encode the response to a [`Call::Controller`] request: `answers[i]` answers item `i`. A
/// reply of another API than the request's is a bug of the caller (asserted).
pub fn encode_response(
    request: &ControllerRequest,
    answers: &[Answer],
) -> Result<Bytes, ControllerWireError> {
    let Call::Controller(items) = &request.call else {
        panic!(
            "encode_response answers controller requests, not {:?}",
            request.call
        );
    };
    assert_eq!(items.len(), answers.len(), "one answer per item");
    let (key, v, corr) = (request.api_key, request.version, request.correlation_id);
    let first = answers.first();
    match key {
        ApiKey::BrokerRegistration => {
            let a = first.expect("one item");
            let epoch = match a {
                Ok(Reply::BrokerRegistration { broker_epoch }) => broker_epoch.0,
                Ok(other) => panic!("a registration answered with {other:?}"),
                Err(_) => -1,
            };
            assert!(epoch >= 0 || a.is_err(), "a registration has an epoch");
            let body = BrokerRegistrationResponse::default()
                .with_error_code(code_of(a).0)
                .with_broker_epoch(epoch);
            frame(key, v, corr, &body)
        }
        ApiKey::BrokerHeartbeat => {
            let a = first.expect("one item");
            let (fenced, should_shut_down) = match a {
                Ok(Reply::BrokerHeartbeat {
                    fenced,
                    should_shut_down,
                }) => (*fenced, *should_shut_down),
                Ok(other) => panic!("a heartbeat answered with {other:?}"),
                Err(_) => (true, false),
            };
            assert!(
                a.is_ok() || fenced,
                "a refused heartbeat is reported fenced"
            );
            let body = BrokerHeartbeatResponse::default()
                .with_error_code(code_of(a).0)
                .with_is_caught_up(!fenced)
                .with_is_fenced(fenced)
                .with_should_shut_down(should_shut_down);
            frame(key, v, corr, &body)
        }
        ApiKey::AllocateProducerIds => {
            let a = first.expect("one item");
            let (start, len) = match a {
                Ok(Reply::AllocateProducerIds { first, count }) => (
                    *first,
                    i32::try_from(*count).expect("a block fits an int32"),
                ),
                Ok(other) => panic!("AllocateProducerIds answered with {other:?}"),
                Err(_) => (-1, 0),
            };
            assert!(
                (start >= 0 && len > 0) || a.is_err(),
                "a block is not empty"
            );
            let body = AllocateProducerIdsResponse::default()
                .with_error_code(code_of(a).0)
                .with_producer_id_start(ProducerId(start))
                .with_producer_id_len(len);
            frame(key, v, corr, &body)
        }
        ApiKey::CreateTopics => {
            let topics = items
                .iter()
                .zip(answers)
                .map(|(i, a)| {
                    let (code, message) = code_of(a);
                    let id = match a {
                        Ok(Reply::CreateTopic { topic_id }) => Uuid::from_bytes(topic_id.0),
                        Ok(other) => panic!("CreateTopics answered with {other:?}"),
                        Err(_) => Uuid::nil(),
                    };
                    let ok = a.is_ok();
                    create_topics_response::CreatableTopicResult::default()
                        .with_name(TopicName(sb(i.topic.as_deref().unwrap_or(""))))
                        .with_topic_id(id)
                        .with_error_code(code)
                        .with_error_message(message)
                        .with_num_partitions(if ok { i.partitions } else { -1 })
                        .with_replication_factor(if ok { i.replication_factor } else { -1 })
                })
                .collect();
            let topics: Vec<_> = topics;
            assert_eq!(topics.len(), items.len(), "one result per topic asked");
            let body = CreateTopicsResponse::default().with_topics(topics);
            frame(key, v, corr, &body)
        }
        ApiKey::DeleteTopics => {
            let responses = items
                .iter()
                .zip(answers)
                .map(|(i, a)| {
                    if let Ok(r) = a {
                        assert_eq!(*r, Reply::DeleteTopic, "DeleteTopics answered");
                    }
                    let (code, message) = code_of(a);
                    delete_topics_response::DeletableTopicResult::default()
                        .with_name(i.topic.as_deref().map(|n| TopicName(sb(n))))
                        .with_error_code(code)
                        .with_error_message(message)
                })
                .collect();
            let responses: Vec<_> = responses;
            assert_eq!(responses.len(), items.len(), "one result per topic asked");
            let body = DeleteTopicsResponse::default().with_responses(responses);
            frame(key, v, corr, &body)
        }
        ApiKey::CreatePartitions => {
            let results = items
                .iter()
                .zip(answers)
                .map(|(i, a)| {
                    if let Ok(r) = a {
                        assert_eq!(*r, Reply::CreatePartitions, "CreatePartitions answered");
                    }
                    let (code, message) = code_of(a);
                    create_partitions_response::CreatePartitionsTopicResult::default()
                        .with_name(TopicName(sb(i.topic.as_deref().unwrap_or(""))))
                        .with_error_code(code)
                        .with_error_message(message)
                })
                .collect();
            let results: Vec<_> = results;
            assert_eq!(results.len(), items.len(), "one result per topic asked");
            let body = CreatePartitionsResponse::default().with_results(results);
            frame(key, v, corr, &body)
        }
        ApiKey::AlterPartition => encode_alter_partition_response(items, answers, v, corr),
        ApiKey::IncrementalAlterConfigs => encode_alter_configs_response(items, answers, v, corr),
        ApiKey::ElectLeaders => encode_elect_leaders_response(items, answers, v, corr),
        ApiKey::AlterPartitionReassignments => encode_reassign_response(items, answers, v, corr),
        ApiKey::CreateAcls => acls::encode_create_acls_response(answers, v, corr),
        ApiKey::DeleteAcls => acls::encode_delete_acls_response(answers, v, corr),
        ApiKey::AlterUserScramCredentials => encode_alter_scram_response(items, answers, v, corr),
        other => unreachable!("{other:?} is not a controller request"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_table_is_within_the_crates_ranges() {
        for (k, lo, hi) in api_versions_table() {
            assert!(lo <= hi, "{k:?}");
        }
        assert!(serves(ApiKey::CreateTopics) && !serves(ApiKey::Produce));
    }
}
