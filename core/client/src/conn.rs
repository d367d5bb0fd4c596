//! One connection to one broker: the ApiVersions handshake (KIP-35, KIP-511), the versions both
//! sides speak, and the requests waiting for their responses.
//!
//! Kafka answers the requests of one connection in the order they were sent, so the requests in
//! flight are a queue: a response belongs to the oldest request still waiting, and its
//! correlation id must say so (a mismatch is the broker's fault and closes the connection).

use crate::admin::{AdminId, Unit};
use crate::metadata::TopicPartition;
use gregor_core::Instant;
use kafka_protocol::messages::ApiKey;
use std::collections::{BTreeMap, VecDeque};

/// The API versions this client speaks: (API, min, max). With each broker it uses the highest
/// version both speak; an API the broker lacks in our range makes that feature unavailable
/// there. Metadata stops at 9 and Fetch at 12: above them topics are named by id (KIP-516).
pub const SPEAKS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::Metadata, 1, 9),
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::InitProducerId, 0, 4),
    // The group APIs stop below their flexible versions, at what librdkafka itself sends:
    // librdkafka's mock cluster closes the connection on a flexible JoinGroup (v6+) or
    // SyncGroup (v4+), and answers LeaveGroup v3 in a form that does not decode.
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 1, 5),
    (ApiKey::SyncGroup, 0, 3),
    (ApiKey::Heartbeat, 0, 3),
    (ApiKey::LeaveGroup, 0, 2),
    // OffsetFetch stops below its flexible versions too (v6+): librdkafka 2.16's mock cluster
    // answered a v6 OffsetFetch in a form that does not decode.
    (ApiKey::OffsetFetch, 1, 5),
    (ApiKey::OffsetCommit, 2, 7),
    // The admin APIs (KIP-4), up to the last version before topics are named by id.
    (ApiKey::CreateTopics, 2, 5),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    // KIP-455's partition reassignments: v0 is every version before Kafka 4.1 (whose v1 adds
    // `allowReplicationFactorChange`), and the one gregor's brokers speak.
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
];

/// The highest ApiVersions version we send first (v3 carries the client's software name).
pub const API_VERSIONS_FIRST: i16 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// `Output::Connect` was emitted; waiting for `Input::Connected`.
    Connecting,
    /// Connected; the ApiVersions request is in flight. Nothing else is sent until it answers.
    Handshake,
    /// Versions known; logging in with SASL ([`crate::sasl`]): only SaslHandshake and
    /// SaslAuthenticate are sent, one at a time.
    Authenticating,
    /// Versions known; any request may be sent.
    Ready,
}

/// Why a request was sent: what to do with its response (or with its loss).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Purpose {
    ApiVersions,
    SaslHandshake,
    SaslAuthenticate,
    Metadata,
    InitProducerId,
    /// One batch per partition, by batch id.
    Produce(Vec<(TopicPartition, u64)>),
    ListOffsets(Vec<TopicPartition>),
    Fetch(Vec<TopicPartition>),
    FindCoordinator,
    JoinGroup,
    SyncGroup,
    Heartbeat,
    OffsetFetch,
    /// The offsets committed, by partition.
    OffsetCommit(Vec<(TopicPartition, i64)>),
    LeaveGroup,
    /// Units of an admin operation.
    Admin(AdminId, Vec<Unit>),
    /// The admin client looks up a group's coordinator.
    AdminFindCoordinator(String),
}

#[derive(Clone, Debug)]
pub struct Pending {
    pub correlation_id: i32,
    pub key: ApiKey,
    pub version: i16,
    pub sent_at: Instant,
    /// When the connection is given up on if no answer came: `request.timeout.ms`, plus what
    /// the broker may rightly hold the request for (a fetch's max wait, a rebalance).
    pub deadline: Instant,
    pub purpose: Purpose,
}

#[derive(Clone, Debug)]
pub struct Conn {
    pub state: ConnState,
    /// The broker's advertised ranges by API key, from its ApiVersions answer.
    pub versions: BTreeMap<i16, (i16, i16)>,
    pub in_flight: VecDeque<Pending>,
    /// Where the SASL login stands while [`ConnState::Authenticating`].
    pub sasl: Option<crate::sasl::Exchange>,
    /// When to log in again (KIP-368: the broker's `session_lifetime_ms`, less a margin).
    pub reauth_at: Option<Instant>,
}

impl Default for Conn {
    fn default() -> Self {
        Conn::new()
    }
}

impl Conn {
    pub fn new() -> Conn {
        Conn {
            state: ConnState::Connecting,
            versions: BTreeMap::new(),
            in_flight: VecDeque::new(),
            sasl: None,
            reauth_at: None,
        }
    }

    /// The version to use for `key` on this connection: the highest both sides speak.
    pub fn version(&self, key: ApiKey) -> Option<i16> {
        assert_eq!(
            self.state,
            ConnState::Ready,
            "versions are known once ready"
        );
        let (_, lo, hi) = SPEAKS.iter().find(|(k, _, _)| *k == key)?;
        let (blo, bhi) = self.versions.get(&(key as i16))?;
        let v = (*hi).min(*bhi);
        (v >= (*lo).max(*blo)).then_some(v)
    }

    /// Whether new requests may go on this connection: ready, and not due to log in again
    /// (KIP-368: a connection whose login is due takes nothing new, so that its requests in
    /// flight drain and the re-authentication can start).
    pub fn usable(&self, now: Instant) -> bool {
        self.state == ConnState::Ready && self.reauth_at.is_none_or(|t| now < t)
    }

    pub fn produce_in_flight(&self) -> usize {
        self.in_flight
            .iter()
            .filter(|p| matches!(p.purpose, Purpose::Produce(_)))
            .count()
    }

    pub fn invariants(&self) {
        assert!(
            self.state == ConnState::Ready || self.in_flight.len() <= 1,
            "before the handshake ends only ApiVersions is in flight"
        );
        assert!(
            self.state != ConnState::Handshake
                || self
                    .in_flight
                    .front()
                    .is_some_and(|p| p.purpose == Purpose::ApiVersions),
            "a handshaking connection waits for its ApiVersions answer"
        );
        assert_eq!(
            self.state == ConnState::Authenticating,
            self.sasl.is_some(),
            "a SASL exchange exactly while authenticating"
        );
        for w in self.in_flight.iter().collect::<Vec<_>>().windows(2) {
            assert!(
                w[0].correlation_id < w[1].correlation_id,
                "requests in flight in the order they were sent"
            );
        }
    }
}
