//! Authorization of every request (KIP-11), before the broker acts on it, as Kafka's
//! `KafkaApis` checks each API: which operation on which resource, and which error a refusal
//! gets. The decision itself is `crate::acl`'s (the StandardAuthorizer's rules), against the
//! ACLs of the metadata image this broker has applied.
//!
//! Off unless the broker is configured with an authorizer (`Config::authorizer`, Kafka's
//! `authorizer.class.name`): then every request passes, as before.
//!
//! How a refusal is answered: a request about one resource (a group's JoinGroup, the cluster's
//! ElectLeaders) is answered at once with the API's error (GROUP_AUTHORIZATION_FAILED,
//! CLUSTER_AUTHORIZATION_FAILED). A request about many topics loses the topics refused before
//! it reaches its handler, which serves the rest; the refused ones, each with
//! TOPIC_AUTHORIZATION_FAILED, are kept as a *patch* under the request's place in its
//! connection's queue and added to the response when the handler answers (`patch_response`).
//! So a produce to `orders` and `secret` writes to `orders` and refuses `secret`, as Kafka does.
//! Metadata hides the topics the caller may not Describe (or, named, refuses them).
//!
//! Every refusal leaves a log line (principal, operation, resource), as Kafka's authorizer log.

use super::*;
mod acl_apis;
mod admin;
use crate::acl::{Caller, Operation, Resource};
pub(in crate::broker) use acl_apis::set_acl_answer;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};

const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const TRANSACTIONAL_ID_DENIED: i16 = 53;

/// Who each connection is, and the refused parts of requests waiting for their responses.
#[derive(Debug, Default)]
pub(super) struct Authz {
    callers: BTreeMap<ConnId, Caller>,
    patches: BTreeMap<(ConnId, u64), Patch>,
}

/// What to add to (or take from) a response: the refused topics or groups, answered.
#[derive(Debug)]
enum Patch {
    Produce(Vec<TopicProduceResponse>),
    Fetch(Vec<FetchableTopicResponse>),
    ListOffsets(Vec<ListOffsetsTopicResponse>),
    OffsetForLeaderEpoch(Vec<OffsetForLeaderTopicResult>),
    CreateTopics(Vec<CreatableTopicResult>),
    DeleteTopics(Vec<DeletableTopicResult>),
    CreatePartitions(Vec<CreatePartitionsTopicResult>),
    DeleteRecords(Vec<DeleteRecordsTopicResult>),
    OffsetCommit(Vec<OffsetCommitResponseTopic>),
    DescribeGroups(Vec<DescribedGroup>),
    DeleteGroups(Vec<DeletableGroupResult>),
    DescribeConfigs(Vec<DescribeConfigsResult>),
    IncrementalAlterConfigs(Vec<incremental_alter_configs_response::AlterConfigsResourceResponse>),
    AlterConfigs(Vec<alter_configs_response::AlterConfigsResourceResponse>),
    FindCoordinator(Vec<find_coordinator_response::Coordinator>),
    DescribeProducers(Vec<describe_producers_response::TopicResponse>),
    /// Hide the topics the caller may not Describe; `named`: the request named its topics,
    /// so they stay, refused. `absent`: named topics taken out before (not there, and the
    /// caller may not create them).
    Metadata {
        named: bool,
        absent: Vec<MetadataResponseTopic>,
    },
    /// List only the groups the caller may Describe.
    ListGroups,
}

impl Broker {
    /// Every patch waits for a request of an open connection not yet answered.
    pub(super) fn authz_invariants(&self) {
        for (conn, seq) in self.authz.patches.keys() {
            let c = self
                .conns
                .get(conn)
                .expect("a patch waits on an open connection");
            assert!(
                c.next_to_send <= *seq && *seq < c.next_seq,
                "a patch waits for an unanswered request"
            );
        }
    }

    /// A request answered with no response (a produce with acks = 0): its patch goes too.
    pub(super) fn authz_drop(&mut self, to: ReplyTo) {
        self.authz.patches.remove(&(to.conn, to.seq));
        assert!(!self.authz.patches.contains_key(&(to.conn, to.seq)));
    }

    /// The driver says who connection `conn` is (at connect, and again after SASL).
    pub(super) fn on_principal(&mut self, conn: ConnId, principal: String, host: String) {
        self.authz.callers.insert(conn, Caller { principal, host });
        assert!(self.authz.callers.contains_key(&conn));
    }

    pub(super) fn authz_forget(&mut self, conn: ConnId) {
        self.authz.callers.remove(&conn);
        self.authz.patches.retain(|(c, _), _| *c != conn);
        assert!(self.authz.patches.keys().all(|(c, _)| *c != conn));
    }

    fn caller(&self, conn: ConnId) -> Caller {
        self.authz.callers.get(&conn).cloned().unwrap_or_default()
    }

    /// The ACLs in force here: the applied image's (none before one arrives).
    fn acls(&self) -> crate::acl::Acls {
        self.metadata_image()
            .map(|i| i.acls().clone())
            .unwrap_or_default()
    }

    /// May `conn`'s principal do `op` on `resource`? A refusal is logged when `log` (Kafka logs
    /// the topics a Metadata listing skips at debug level only).
    pub(super) fn allowed(
        &mut self,
        conn: ConnId,
        op: Operation,
        resource: Resource<'_>,
        log: bool,
    ) -> bool {
        let Some(auth) = &self.config.authorizer else {
            return true;
        };
        let caller = self.caller(conn);
        let decision = match self.metadata_image() {
            Some(image) => auth.decide(image.acls(), &caller, op, &resource),
            None => auth.decide(&Default::default(), &caller, op, &resource),
        };
        let ok = decision.allowed();
        if !ok && log {
            self.log(
                LogLevel::Info,
                format!(
                    "authorizer: principal {} from host {} is denied operation {op:?} on \
                     resource {:?}:{} ({decision:?})",
                    caller.principal, caller.host, resource.resource_type, resource.name
                ),
            );
        }
        ok
    }

    fn allowed_on_type(
        &mut self,
        conn: ConnId,
        op: Operation,
        t: crate::acl::ResourceType,
    ) -> bool {
        let Some(auth) = &self.config.authorizer else {
            return true;
        };
        auth.authorize_any(&self.acls(), &self.caller(conn), op, t)
    }

    fn cluster_allowed(&mut self, conn: ConnId, op: Operation) -> bool {
        self.allowed(conn, op, Resource::cluster(), true)
    }

    fn topic_allowed(&mut self, conn: ConnId, op: Operation, name: &str) -> bool {
        self.allowed(conn, op, Resource::topic(name), true)
    }

    fn group_allowed(&mut self, conn: ConnId, op: Operation, name: &str) -> bool {
        self.allowed(conn, op, Resource::group(name), true)
    }

    fn keep(&mut self, to: ReplyTo, patch: Patch) {
        let empty = match &patch {
            Patch::Produce(v) => v.is_empty(),
            Patch::Fetch(v) => v.is_empty(),
            Patch::ListOffsets(v) => v.is_empty(),
            Patch::OffsetForLeaderEpoch(v) => v.is_empty(),
            Patch::CreateTopics(v) => v.is_empty(),
            Patch::DeleteTopics(v) => v.is_empty(),
            Patch::CreatePartitions(v) => v.is_empty(),
            Patch::DeleteRecords(v) => v.is_empty(),
            Patch::OffsetCommit(v) => v.is_empty(),
            Patch::DescribeGroups(v) => v.is_empty(),
            Patch::DeleteGroups(v) => v.is_empty(),
            Patch::DescribeConfigs(v) => v.is_empty(),
            Patch::IncrementalAlterConfigs(v) => v.is_empty(),
            Patch::AlterConfigs(v) => v.is_empty(),
            Patch::FindCoordinator(v) => v.is_empty(),
            Patch::DescribeProducers(v) => v.is_empty(),
            Patch::Metadata { .. } | Patch::ListGroups => false,
        };
        if !empty {
            assert!(self
                .authz
                .patches
                .insert((to.conn, to.seq), patch)
                .is_none());
        }
    }

    /// Check `body` for `to`'s connection: `None` when it was answered (refused whole),
    /// else what of it the handler is to serve.
    pub(super) fn authorize_request(
        &mut self,
        to: ReplyTo,
        body: RequestKind,
    ) -> Option<RequestKind> {
        if self.config.authorizer.is_none() {
            return Some(body);
        }
        let conn = to.conn;
        match body {
            RequestKind::Produce(mut r) => {
                if let Some(id) = r.transactional_id.as_ref().map(|t| t.0.to_string()) {
                    let res = Resource::transactional_id(&id);
                    if !self.allowed(conn, Operation::Write, res, true) {
                        let denied = produce_denied(std::mem::take(&mut r.topic_data), 53);
                        let resp = ProduceResponse::default().with_responses(denied);
                        self.respond(to, Some(ResponseKind::Produce(resp)));
                        return None;
                    }
                }
                let (keep, deny) = self.split(std::mem::take(&mut r.topic_data), |b, t| {
                    b.topic_allowed(conn, Operation::Write, &t.name.0)
                });
                r.topic_data = keep;
                assert!(
                    r.topic_data.iter().all(|t| self.allowed(
                        conn,
                        Operation::Write,
                        Resource::topic(&t.name.0),
                        false
                    )),
                    "only topics the caller may Write reach the handler"
                );
                self.keep(to, Patch::Produce(produce_denied(deny, TOPIC_DENIED)));
                Some(RequestKind::Produce(r))
            }
            RequestKind::Fetch(mut r) => {
                let follower = r.replica_id.0 >= 0;
                let cluster_ok = follower && self.cluster_allowed(conn, Operation::ClusterAction);
                let (keep, deny) = self.split(std::mem::take(&mut r.topics), |b, t| {
                    if follower {
                        return cluster_ok;
                    }
                    match b.fetch_topic_name(t) {
                        Some(name) => b.topic_allowed(conn, Operation::Read, &name),
                        None => true, // an unknown topic id: the handler answers it
                    }
                });
                r.topics = keep;
                assert!(
                    follower
                        || r.topics
                            .iter()
                            .all(|t| self.fetch_topic_name(t).is_none_or(|n| {
                                self.allowed(conn, Operation::Read, Resource::topic(&n), false)
                            })),
                    "a consumer fetches only topics it may Read"
                );
                assert!(
                    !follower || cluster_ok || r.topics.is_empty(),
                    "a follower fetch needs ClusterAction"
                );
                let denied = deny
                    .into_iter()
                    .map(|t| {
                        let name = self.fetch_topic_name(&t).unwrap_or_default();
                        FetchableTopicResponse::default()
                            .with_topic(TopicName(sb(name)))
                            .with_topic_id(t.topic_id)
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        PartitionData::default()
                                            .with_partition_index(p.partition)
                                            .with_error_code(TOPIC_DENIED)
                                            .with_high_watermark(-1)
                                            .with_last_stable_offset(-1)
                                            .with_log_start_offset(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                self.keep(to, Patch::Fetch(denied));
                Some(RequestKind::Fetch(r))
            }
            RequestKind::ListOffsets(mut r) => {
                let (keep, deny) = self.split(std::mem::take(&mut r.topics), |b, t| {
                    b.topic_allowed(conn, Operation::Describe, &t.name.0)
                });
                r.topics = keep;
                assert!(
                    r.topics.iter().all(|t| self.allowed(
                        conn,
                        Operation::Describe,
                        Resource::topic(&t.name.0),
                        false
                    )),
                    "only topics the caller may Describe reach the handler"
                );
                let denied = deny
                    .into_iter()
                    .map(|t| {
                        let parts = t.partitions.iter().map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(TOPIC_DENIED)
                                .with_timestamp(-1)
                                .with_offset(-1)
                        });
                        ListOffsetsTopicResponse::default()
                            .with_name(t.name)
                            .with_partitions(parts.collect())
                    })
                    .collect();
                self.keep(to, Patch::ListOffsets(denied));
                Some(RequestKind::ListOffsets(r))
            }
            RequestKind::OffsetForLeaderEpoch(mut r) => {
                let follower = r.replica_id.0 >= 0;
                let cluster_ok = follower && self.cluster_allowed(conn, Operation::ClusterAction);
                let (keep, deny) = self.split(std::mem::take(&mut r.topics), |b, t| {
                    cluster_ok
                        || (!follower && b.topic_allowed(conn, Operation::Describe, &t.topic.0))
                });
                r.topics = keep;
                assert!(
                    cluster_ok
                        || r.topics.iter().all(|t| !follower
                            && self.allowed(
                                conn,
                                Operation::Describe,
                                Resource::topic(&t.topic.0),
                                false
                            )),
                    "only topics the caller may Describe reach OffsetForLeaderEpoch"
                );
                let denied = deny
                    .into_iter()
                    .map(|t| {
                        let parts = t.partitions.iter().map(|p| {
                            EpochEndOffset::default()
                                .with_partition(p.partition)
                                .with_error_code(TOPIC_DENIED)
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        });
                        OffsetForLeaderTopicResult::default()
                            .with_topic(t.topic)
                            .with_partitions(parts.collect())
                    })
                    .collect();
                self.keep(to, Patch::OffsetForLeaderEpoch(denied));
                Some(RequestKind::OffsetForLeaderEpoch(r))
            }
            RequestKind::Metadata(r) => Some(self.authorize_metadata(to, r)),
            RequestKind::InitProducerId(r) => {
                let ok = match r.transactional_id.as_ref().map(|t| t.0.to_string()) {
                    Some(id) => {
                        let res = Resource::transactional_id(&id);
                        self.allowed(conn, Operation::Write, res, true)
                    }
                    None => {
                        self.cluster_allowed(conn, Operation::IdempotentWrite)
                            || self.allowed_on_type(
                                conn,
                                Operation::Write,
                                crate::acl::ResourceType::Topic,
                            )
                    }
                };
                if ok {
                    return Some(RequestKind::InitProducerId(r));
                }
                let code = if r.transactional_id.is_some() {
                    TRANSACTIONAL_ID_DENIED
                } else {
                    CLUSTER_DENIED
                };
                let resp = InitProducerIdResponse::default()
                    .with_error_code(code)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1);
                self.respond(to, Some(ResponseKind::InitProducerId(resp)));
                None
            }
            body => self.authorize_admin(to, body),
        }
    }

    /// Split `items` into those `allowed` keeps and those it refuses.
    pub(super) fn split<T>(
        &mut self,
        items: Vec<T>,
        mut allowed: impl FnMut(&mut Broker, &T) -> bool,
    ) -> (Vec<T>, Vec<T>) {
        let n = items.len();
        let (mut keep, mut deny) = (Vec::new(), Vec::new());
        for item in items {
            if allowed(self, &item) {
                keep.push(item);
            } else {
                deny.push(item);
            }
        }
        assert_eq!(keep.len() + deny.len(), n, "every item kept or refused");
        (keep, deny)
    }

    /// A fetch topic's name: by name before Fetch v13, by topic id (KIP-516) since.
    fn fetch_topic_name(
        &self,
        t: &kafka_protocol::messages::fetch_request::FetchTopic,
    ) -> Option<String> {
        if !t.topic.0.is_empty() {
            return Some(name_of(&t.topic.0));
        }
        let id = crate::cluster::TopicId(*t.topic_id.as_bytes());
        let image = self.metadata_image()?;
        image.topics().get(&id).map(|ti| ti.name.clone())
    }

    fn topic_exists(&self, name: &str) -> bool {
        self.topics.contains_key(name)
            || self
                .metadata_image()
                .is_some_and(|i| i.topic_id(name).is_some())
    }

    /// Metadata: named topics that do not exist and may not be created are taken out (and
    /// answered UNKNOWN_TOPIC_OR_PARTITION, or TOPIC_AUTHORIZATION_FAILED when the caller may
    /// not even Describe them); the response is filtered when it comes back.
    fn authorize_metadata(&mut self, to: ReplyTo, mut r: MetadataRequest) -> RequestKind {
        let conn = to.conn;
        let named = r.topics.as_ref().is_some_and(|t| !t.is_empty());
        let mut absent = Vec::new();
        if let Some(topics) = r.topics.take() {
            // Only a topic that would be auto-created needs Create (on the cluster, quietly
            // tried first, or on the topic).
            let (keep, deny) = self.split(topics, |b, t| {
                let Some(name) = t.name.as_ref().map(|n| name_of(&n.0)) else {
                    return true;
                };
                b.topic_exists(&name)
                    || b.allowed(conn, Operation::Create, Resource::cluster(), false)
                    || b.topic_allowed(conn, Operation::Create, &name)
            });
            for t in deny {
                let name = t.name.map(|n| name_of(&n.0)).unwrap_or_default();
                let code = if self.topic_allowed(conn, Operation::Describe, &name) {
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.wire()
                } else {
                    TOPIC_DENIED
                };
                absent.push(
                    MetadataResponseTopic::default()
                        .with_name(Some(TopicName(sb(name))))
                        .with_error_code(code),
                );
            }
            r.topics = Some(keep);
        }
        self.authz
            .patches
            .insert((to.conn, to.seq), Patch::Metadata { named, absent });
        RequestKind::Metadata(r)
    }

    /// Apply the patch kept for `to`'s request, if any, to its response.
    pub(super) fn patch_response(&mut self, to: ReplyTo, body: ResponseKind) -> ResponseKind {
        let Some(patch) = self.authz.patches.remove(&(to.conn, to.seq)) else {
            return body;
        };
        let conn = to.conn;
        match (patch, body) {
            (Patch::Produce(d), ResponseKind::Produce(mut r)) => {
                r.responses.extend(d);
                ResponseKind::Produce(r)
            }
            (Patch::Fetch(d), ResponseKind::Fetch(mut r)) => {
                r.responses.extend(d);
                ResponseKind::Fetch(r)
            }
            (Patch::ListOffsets(d), ResponseKind::ListOffsets(mut r)) => {
                r.topics.extend(d);
                ResponseKind::ListOffsets(r)
            }
            (Patch::OffsetForLeaderEpoch(d), ResponseKind::OffsetForLeaderEpoch(mut r)) => {
                r.topics.extend(d);
                ResponseKind::OffsetForLeaderEpoch(r)
            }
            (Patch::CreateTopics(d), ResponseKind::CreateTopics(mut r)) => {
                r.topics.extend(d);
                ResponseKind::CreateTopics(r)
            }
            (Patch::DeleteTopics(d), ResponseKind::DeleteTopics(mut r)) => {
                r.responses.extend(d);
                ResponseKind::DeleteTopics(r)
            }
            (Patch::CreatePartitions(d), ResponseKind::CreatePartitions(mut r)) => {
                r.results.extend(d);
                ResponseKind::CreatePartitions(r)
            }
            (Patch::DeleteRecords(d), ResponseKind::DeleteRecords(mut r)) => {
                r.topics.extend(d);
                ResponseKind::DeleteRecords(r)
            }
            (Patch::OffsetCommit(d), ResponseKind::OffsetCommit(mut r)) => {
                r.topics.extend(d);
                ResponseKind::OffsetCommit(r)
            }
            (Patch::DescribeGroups(d), ResponseKind::DescribeGroups(mut r)) => {
                r.groups.extend(d);
                ResponseKind::DescribeGroups(r)
            }
            (Patch::DeleteGroups(d), ResponseKind::DeleteGroups(mut r)) => {
                r.results.extend(d);
                ResponseKind::DeleteGroups(r)
            }
            (Patch::DescribeConfigs(d), ResponseKind::DescribeConfigs(mut r)) => {
                r.results.extend(d);
                ResponseKind::DescribeConfigs(r)
            }
            (Patch::IncrementalAlterConfigs(d), ResponseKind::IncrementalAlterConfigs(mut r)) => {
                r.responses.extend(d);
                ResponseKind::IncrementalAlterConfigs(r)
            }
            (Patch::AlterConfigs(d), ResponseKind::AlterConfigs(mut r)) => {
                r.responses.extend(d);
                ResponseKind::AlterConfigs(r)
            }
            (Patch::FindCoordinator(d), ResponseKind::FindCoordinator(mut r)) => {
                r.coordinators.extend(d);
                ResponseKind::FindCoordinator(r)
            }
            (Patch::DescribeProducers(d), ResponseKind::DescribeProducers(mut r)) => {
                r.topics.extend(d);
                ResponseKind::DescribeProducers(r)
            }
            (Patch::Metadata { named, absent }, ResponseKind::Metadata(mut r)) => {
                let topics = std::mem::take(&mut r.topics);
                for mut t in topics {
                    let name = t.name.as_ref().map(|n| name_of(&n.0)).unwrap_or_default();
                    let res = Resource::topic(&name);
                    if self.allowed(conn, Operation::Describe, res, named) {
                        r.topics.push(t);
                    } else if named {
                        t.error_code = TOPIC_DENIED;
                        t.partitions.clear();
                        t.topic_id = Uuid::nil();
                        r.topics.push(t);
                    }
                }
                r.topics.extend(absent);
                ResponseKind::Metadata(r)
            }
            (Patch::ListGroups, ResponseKind::ListGroups(mut r)) => {
                let groups = std::mem::take(&mut r.groups);
                for g in groups {
                    let res = Resource::group(&g.group_id.0);
                    if self.allowed(conn, Operation::Describe, res, false) {
                        r.groups.push(g);
                    }
                }
                ResponseKind::ListGroups(r)
            }
            (patch, body) => {
                // A handler answered with another API's response: a bug, but the client's
                // answer is what the handler built; the patch is dropped with a log line.
                self.log(
                    LogLevel::Error,
                    format!("authorizer: patch {patch:?} does not fit a {body:?}"),
                );
                body
            }
        }
    }
}

/// Every partition of `topics` answered `code`.
fn produce_denied(
    topics: Vec<kafka_protocol::messages::produce_request::TopicProduceData>,
    code: i16,
) -> Vec<TopicProduceResponse> {
    topics
        .into_iter()
        .map(|t| {
            let parts = t.partition_data.iter().map(|p| {
                PartitionProduceResponse::default()
                    .with_index(p.index)
                    .with_error_code(code)
                    .with_base_offset(-1)
            });
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_partition_responses(parts.collect())
        })
        .collect()
}

/// Every partition of the topics of an OffsetCommit answered `code`.
pub(super) fn commit_denied(
    topics: Vec<kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic>,
    code: i16,
) -> Vec<OffsetCommitResponseTopic> {
    topics
        .into_iter()
        .map(|t| {
            let parts = t.partitions.iter().map(|p| {
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code)
            });
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(parts.collect())
        })
        .collect()
}
