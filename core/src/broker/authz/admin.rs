//! The admin, group and cluster APIs' checks (Kafka's `KafkaApis`, API by API):
//!
//! | API | needs | refused with |
//! |---|---|---|
//! | CreateTopics | Create on the cluster, or on the topic | TOPIC_AUTHORIZATION_FAILED per topic |
//! | DeleteTopics, DeleteRecords | Delete on the topic | TOPIC_AUTHORIZATION_FAILED per topic |
//! | CreatePartitions | Alter on the topic | TOPIC_AUTHORIZATION_FAILED per topic |
//! | DescribeConfigs / (Incremental)AlterConfigs | DescribeConfigs / AlterConfigs on the topic, or the cluster for broker resources | TOPIC_ or CLUSTER_AUTHORIZATION_FAILED per resource |
//! | DescribeProducers | Read on the topic | TOPIC_AUTHORIZATION_FAILED per topic |
//! | JoinGroup, SyncGroup, Heartbeat, LeaveGroup | Read on the group | GROUP_AUTHORIZATION_FAILED |
//! | OffsetCommit | Read on the group, and on each topic | GROUP_ (all) or TOPIC_AUTHORIZATION_FAILED |
//! | OffsetFetch | Describe on the group | GROUP_AUTHORIZATION_FAILED |
//! | OffsetDelete, DeleteGroups | Delete on the group | GROUP_AUTHORIZATION_FAILED |
//! | DescribeGroups, FindCoordinator | Describe on the group (or transactional id) | GROUP_ (TRANSACTIONAL_ID_) AUTHORIZATION_FAILED |
//! | ListGroups | Describe on the cluster, else lists the groups the caller may Describe | — |
//! | DescribeCluster, DescribeLogDirs, DescribeQuorum, DescribeAcls | Describe on the cluster | CLUSTER_AUTHORIZATION_FAILED |
//! | ElectLeaders, CreateAcls, DeleteAcls | Alter on the cluster | CLUSTER_AUTHORIZATION_FAILED |

use super::*;
use kafka_protocol::messages::alter_user_scram_credentials_response;
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, TopicResponse};

/// ConfigResource.Type.TOPIC; the others (BROKER 4, BROKER_LOGGER 8) are the cluster's.
const CONFIG_TOPIC: i8 = 2;

impl Broker {
    /// May the caller do `op` (DescribeConfigs, AlterConfigs) on a config resource? The error
    /// when not.
    fn config_refusal(&mut self, conn: ConnId, op: Operation, kind: i8, name: &str) -> Option<i16> {
        if kind == CONFIG_TOPIC {
            (!self.topic_allowed(conn, op, name)).then_some(TOPIC_DENIED)
        } else {
            (!self.cluster_allowed(conn, op)).then_some(CLUSTER_DENIED)
        }
    }

    pub(super) fn authorize_admin(
        &mut self,
        to: ReplyTo,
        body: RequestKind,
    ) -> Option<RequestKind> {
        let conn = to.conn;
        let answer = |b: &mut Broker, resp: ResponseKind| {
            b.respond(to, Some(resp));
            None
        };
        match body {
            RequestKind::CreateTopics(mut r) => {
                let cluster = self.cluster_allowed(conn, Operation::Create);
                let (keep, deny) = self.split(std::mem::take(&mut r.topics), |b, t| {
                    cluster || b.topic_allowed(conn, Operation::Create, &t.name.0)
                });
                r.topics = keep;
                assert!(
                    r.topics.iter().all(|t| cluster
                        || self.allowed(
                            conn,
                            Operation::Create,
                            Resource::topic(&t.name.0),
                            false
                        )),
                    "only topics the caller may create reach the handler"
                );
                let denied = (deny.into_iter())
                    .map(|t| {
                        CreatableTopicResult::default()
                            .with_name(t.name)
                            .with_error_code(TOPIC_DENIED)
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                    })
                    .collect();
                self.keep(to, Patch::CreateTopics(denied));
                Some(RequestKind::CreateTopics(r))
            }
            RequestKind::DeleteTopics(mut r) => {
                let (keep, deny) = self.split(std::mem::take(&mut r.topic_names), |b, n| {
                    b.topic_allowed(conn, Operation::Delete, &n.0)
                });
                r.topic_names = keep;
                assert!(
                    r.topic_names.iter().all(|n| self.allowed(
                        conn,
                        Operation::Delete,
                        Resource::topic(&n.0),
                        false
                    )),
                    "only topics the caller may Delete reach the handler"
                );
                let mut denied: Vec<DeletableTopicResult> = (deny.into_iter())
                    .map(|n| {
                        DeletableTopicResult::default()
                            .with_name(Some(n))
                            .with_error_code(TOPIC_DENIED)
                    })
                    .collect();
                let (keep, deny) = self.split(std::mem::take(&mut r.topics), |b, t| {
                    t.name
                        .as_ref()
                        .is_none_or(|n| b.topic_allowed(conn, Operation::Delete, &n.0))
                });
                r.topics = keep;
                assert!(
                    r.topics
                        .iter()
                        .all(|t| t.name.as_ref().is_none_or(|n| self.allowed(
                            conn,
                            Operation::Delete,
                            Resource::topic(&n.0),
                            false
                        ))),
                    "only topics the caller may delete reach the handler"
                );
                denied.extend(deny.into_iter().map(|t| {
                    DeletableTopicResult::default()
                        .with_name(t.name)
                        .with_topic_id(t.topic_id)
                        .with_error_code(TOPIC_DENIED)
                }));
                self.keep(to, Patch::DeleteTopics(denied));
                Some(RequestKind::DeleteTopics(r))
            }
            RequestKind::CreatePartitions(mut r) => {
                let (keep, deny) = self.split(std::mem::take(&mut r.topics), |b, t| {
                    b.topic_allowed(conn, Operation::Alter, &t.name.0)
                });
                r.topics = keep;
                assert!(
                    r.topics.iter().all(|t| self.allowed(
                        conn,
                        Operation::Alter,
                        Resource::topic(&t.name.0),
                        false
                    )),
                    "only topics the caller may Alter reach the handler"
                );
                let denied = (deny.into_iter())
                    .map(|t| {
                        CreatePartitionsTopicResult::default()
                            .with_name(t.name)
                            .with_error_code(TOPIC_DENIED)
                    })
                    .collect();
                self.keep(to, Patch::CreatePartitions(denied));
                Some(RequestKind::CreatePartitions(r))
            }
            RequestKind::DeleteRecords(mut r) => {
                let (keep, deny) = self.split(std::mem::take(&mut r.topics), |b, t| {
                    b.topic_allowed(conn, Operation::Delete, &t.name.0)
                });
                r.topics = keep;
                assert!(
                    r.topics.iter().all(|t| self.allowed(
                        conn,
                        Operation::Delete,
                        Resource::topic(&t.name.0),
                        false
                    )),
                    "only topics the caller may Delete reach the handler"
                );
                let denied = (deny.into_iter())
                    .map(|t| {
                        let parts = t.partitions.iter().map(|p| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_low_watermark(-1)
                                .with_error_code(TOPIC_DENIED)
                        });
                        DeleteRecordsTopicResult::default()
                            .with_name(t.name)
                            .with_partitions(parts.collect())
                    })
                    .collect();
                self.keep(to, Patch::DeleteRecords(denied));
                Some(RequestKind::DeleteRecords(r))
            }
            RequestKind::DescribeConfigs(mut r) => {
                let mut denied = Vec::new();
                let (keep, deny) = self.split(std::mem::take(&mut r.resources), |b, res| {
                    let op = Operation::DescribeConfigs;
                    b.config_refusal(conn, op, res.resource_type, &res.resource_name)
                        .is_none()
                });
                r.resources = keep;
                assert!(
                    r.resources.iter().all(|res| self
                        .config_refusal(
                            conn,
                            Operation::DescribeConfigs,
                            res.resource_type,
                            &res.resource_name
                        )
                        .is_none()),
                    "only resources the caller may DescribeConfigs reach the handler"
                );
                for res in deny {
                    let code = if res.resource_type == CONFIG_TOPIC {
                        TOPIC_DENIED
                    } else {
                        CLUSTER_DENIED
                    };
                    denied.push(
                        DescribeConfigsResult::default()
                            .with_error_code(code)
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name),
                    );
                }
                self.keep(to, Patch::DescribeConfigs(denied));
                Some(RequestKind::DescribeConfigs(r))
            }
            RequestKind::IncrementalAlterConfigs(mut r) => {
                let mut denied = Vec::new();
                for res in std::mem::take(&mut r.resources) {
                    let (kind, name) = (res.resource_type, res.resource_name.to_string());
                    match self.config_refusal(conn, Operation::AlterConfigs, kind, &name) {
                        None => r.resources.push(res),
                        Some(code) => denied.push(
                            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                                .with_error_code(code)
                                .with_resource_type(kind)
                                .with_resource_name(sb(name)),
                        ),
                    }
                }
                self.keep(to, Patch::IncrementalAlterConfigs(denied));
                Some(RequestKind::IncrementalAlterConfigs(r))
            }
            RequestKind::AlterConfigs(mut r) => {
                let mut denied = Vec::new();
                for res in std::mem::take(&mut r.resources) {
                    let (kind, name) = (res.resource_type, res.resource_name.to_string());
                    match self.config_refusal(conn, Operation::AlterConfigs, kind, &name) {
                        None => r.resources.push(res),
                        Some(code) => denied.push(
                            alter_configs_response::AlterConfigsResourceResponse::default()
                                .with_error_code(code)
                                .with_resource_type(kind)
                                .with_resource_name(sb(name)),
                        ),
                    }
                }
                self.keep(to, Patch::AlterConfigs(denied));
                Some(RequestKind::AlterConfigs(r))
            }
            RequestKind::DescribeProducers(mut r) => {
                let (keep, deny) = self.split(std::mem::take(&mut r.topics), |b, t| {
                    b.topic_allowed(conn, Operation::Read, &t.name.0)
                });
                r.topics = keep;
                assert!(
                    r.topics.iter().all(|t| self.allowed(
                        conn,
                        Operation::Read,
                        Resource::topic(&t.name.0),
                        false
                    )),
                    "only topics the caller may Read reach the handler"
                );
                let denied = (deny.into_iter())
                    .map(|t| {
                        let parts = t.partition_indexes.iter().map(|p| {
                            PartitionResponse::default()
                                .with_partition_index(*p)
                                .with_error_code(TOPIC_DENIED)
                        });
                        TopicResponse::default()
                            .with_name(t.name)
                            .with_partitions(parts.collect())
                    })
                    .collect();
                self.keep(to, Patch::DescribeProducers(denied));
                Some(RequestKind::DescribeProducers(r))
            }
            RequestKind::JoinGroup(r) => {
                if self.group_allowed(conn, Operation::Read, &r.group_id.0) {
                    return Some(RequestKind::JoinGroup(r));
                }
                let resp = JoinGroupResponse::default()
                    .with_error_code(GROUP_DENIED)
                    .with_generation_id(-1)
                    .with_member_id(r.member_id);
                answer(self, ResponseKind::JoinGroup(resp))
            }
            RequestKind::SyncGroup(r) => {
                if self.group_allowed(conn, Operation::Read, &r.group_id.0) {
                    return Some(RequestKind::SyncGroup(r));
                }
                let resp = SyncGroupResponse::default().with_error_code(GROUP_DENIED);
                answer(self, ResponseKind::SyncGroup(resp))
            }
            RequestKind::Heartbeat(r) => {
                if self.group_allowed(conn, Operation::Read, &r.group_id.0) {
                    return Some(RequestKind::Heartbeat(r));
                }
                let resp = HeartbeatResponse::default().with_error_code(GROUP_DENIED);
                answer(self, ResponseKind::Heartbeat(resp))
            }
            RequestKind::LeaveGroup(r) => {
                if self.group_allowed(conn, Operation::Read, &r.group_id.0) {
                    return Some(RequestKind::LeaveGroup(r));
                }
                let resp = LeaveGroupResponse::default().with_error_code(GROUP_DENIED);
                answer(self, ResponseKind::LeaveGroup(resp))
            }
            RequestKind::OffsetCommit(mut r) => {
                if !self.group_allowed(conn, Operation::Read, &r.group_id.0) {
                    let topics = commit_denied(std::mem::take(&mut r.topics), GROUP_DENIED);
                    let resp = OffsetCommitResponse::default().with_topics(topics);
                    return answer(self, ResponseKind::OffsetCommit(resp));
                }
                let (keep, deny) = self.split(std::mem::take(&mut r.topics), |b, t| {
                    b.topic_allowed(conn, Operation::Read, &t.name.0)
                });
                r.topics = keep;
                assert!(
                    r.topics.iter().all(|t| self.allowed(
                        conn,
                        Operation::Read,
                        Resource::topic(&t.name.0),
                        false
                    )),
                    "only topics the caller may Read are committed"
                );
                self.keep(to, Patch::OffsetCommit(commit_denied(deny, TOPIC_DENIED)));
                Some(RequestKind::OffsetCommit(r))
            }
            RequestKind::OffsetFetch(r) => {
                let groups: Vec<String> = std::iter::once(r.group_id.0.to_string())
                    .chain(r.groups.iter().map(|g| g.group_id.0.to_string()))
                    .filter(|g| !g.is_empty())
                    .collect();
                let mut ok = true;
                for g in &groups {
                    ok &= self.group_allowed(conn, Operation::Describe, g);
                }
                if ok {
                    return Some(RequestKind::OffsetFetch(r));
                }
                let each = r.groups.iter().map(|g| {
                    offset_fetch_response::OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(GROUP_DENIED)
                });
                let resp = OffsetFetchResponse::default()
                    .with_error_code(GROUP_DENIED)
                    .with_groups(each.collect());
                answer(self, ResponseKind::OffsetFetch(resp))
            }
            RequestKind::OffsetDelete(r) => {
                if self.group_allowed(conn, Operation::Delete, &r.group_id.0) {
                    return Some(RequestKind::OffsetDelete(r));
                }
                let resp = OffsetDeleteResponse::default().with_error_code(GROUP_DENIED);
                answer(self, ResponseKind::OffsetDelete(resp))
            }
            RequestKind::DescribeGroups(mut r) => {
                let (keep, deny) = self.split(std::mem::take(&mut r.groups), |b, g| {
                    b.group_allowed(conn, Operation::Describe, &g.0)
                });
                r.groups = keep;
                assert!(
                    r.groups.iter().all(|g| self.allowed(
                        conn,
                        Operation::Describe,
                        Resource::group(&g.0),
                        false
                    )),
                    "only groups the caller may Describe reach the handler"
                );
                let denied = (deny.into_iter())
                    .map(|g| {
                        DescribedGroup::default()
                            .with_group_id(g)
                            .with_error_code(GROUP_DENIED)
                    })
                    .collect();
                self.keep(to, Patch::DescribeGroups(denied));
                Some(RequestKind::DescribeGroups(r))
            }
            RequestKind::DeleteGroups(mut r) => {
                let (keep, deny) = self.split(std::mem::take(&mut r.groups_names), |b, g| {
                    b.group_allowed(conn, Operation::Delete, &g.0)
                });
                r.groups_names = keep;
                assert!(
                    r.groups_names.iter().all(|g| self.allowed(
                        conn,
                        Operation::Delete,
                        Resource::group(&g.0),
                        false
                    )),
                    "only groups the caller may Delete reach the handler"
                );
                let denied = (deny.into_iter())
                    .map(|g| {
                        DeletableGroupResult::default()
                            .with_group_id(g)
                            .with_error_code(GROUP_DENIED)
                    })
                    .collect();
                self.keep(to, Patch::DeleteGroups(denied));
                Some(RequestKind::DeleteGroups(r))
            }
            RequestKind::ListGroups(r) => {
                if !self.allowed(conn, Operation::Describe, Resource::cluster(), false) {
                    self.keep(to, Patch::ListGroups);
                }
                Some(RequestKind::ListGroups(r))
            }
            RequestKind::FindCoordinator(r) => self.authorize_find_coordinator(to, r),
            RequestKind::DescribeCluster(_)
            | RequestKind::DescribeLogDirs(_)
            | RequestKind::DescribeQuorum(_)
            | RequestKind::DescribeAcls(_)
            | RequestKind::DescribeUserScramCredentials(_)
                if !self.cluster_allowed(conn, Operation::Describe) =>
            {
                answer(self, cluster_refusal(&body))
            }
            RequestKind::ElectLeaders(_)
            | RequestKind::CreateAcls(_)
            | RequestKind::DeleteAcls(_)
            | RequestKind::AlterPartitionReassignments(_)
            | RequestKind::AlterUserScramCredentials(_)
                if !self.cluster_allowed(conn, Operation::Alter) =>
            {
                answer(self, cluster_refusal(&body))
            }
            RequestKind::ListPartitionReassignments(_)
                if !self.cluster_allowed(conn, Operation::Describe) =>
            {
                answer(self, cluster_refusal(&body))
            }
            body => Some(body),
        }
    }

    /// FindCoordinator: Describe on the group (key type 0) or the transactional id (1), per key
    /// in v4+.
    fn authorize_find_coordinator(
        &mut self,
        to: ReplyTo,
        mut r: FindCoordinatorRequest,
    ) -> Option<RequestKind> {
        let conn = to.conn;
        let txn = r.key_type == 1;
        let code = if txn {
            TRANSACTIONAL_ID_DENIED
        } else {
            GROUP_DENIED
        };
        let may = |b: &mut Broker, key: &str| {
            let res = if txn {
                Resource::transactional_id(key)
            } else {
                Resource::group(key)
            };
            b.allowed(conn, Operation::Describe, res, true)
        };
        if r.coordinator_keys.is_empty() {
            if may(self, &r.key) {
                return Some(RequestKind::FindCoordinator(r));
            }
            let resp = FindCoordinatorResponse::default()
                .with_error_code(code)
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            self.respond(to, Some(ResponseKind::FindCoordinator(resp)));
            return None;
        }
        let (keep, deny) = self.split(std::mem::take(&mut r.coordinator_keys), |b, k| may(b, k));
        r.coordinator_keys = keep;
        let denied = (deny.into_iter())
            .map(|k| {
                find_coordinator_response::Coordinator::default()
                    .with_key(k)
                    .with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_code(code)
            })
            .collect();
        self.keep(to, Patch::FindCoordinator(denied));
        Some(RequestKind::FindCoordinator(r))
    }
}

/// A cluster API's answer when the caller may not use it: CLUSTER_AUTHORIZATION_FAILED.
fn cluster_refusal(body: &RequestKind) -> ResponseKind {
    let code = CLUSTER_DENIED;
    match body {
        RequestKind::DescribeCluster(_) => {
            ResponseKind::DescribeCluster(DescribeClusterResponse::default().with_error_code(code))
        }
        RequestKind::DescribeLogDirs(_) => {
            ResponseKind::DescribeLogDirs(DescribeLogDirsResponse::default().with_error_code(code))
        }
        RequestKind::DescribeQuorum(_) => {
            ResponseKind::DescribeQuorum(DescribeQuorumResponse::default().with_error_code(code))
        }
        RequestKind::DescribeAcls(_) => {
            ResponseKind::DescribeAcls(DescribeAclsResponse::default().with_error_code(code))
        }
        RequestKind::ElectLeaders(_) => {
            ResponseKind::ElectLeaders(ElectLeadersResponse::default().with_error_code(code))
        }
        RequestKind::AlterPartitionReassignments(_) => ResponseKind::AlterPartitionReassignments(
            AlterPartitionReassignmentsResponse::default().with_error_code(code),
        ),
        RequestKind::ListPartitionReassignments(_) => ResponseKind::ListPartitionReassignments(
            ListPartitionReassignmentsResponse::default().with_error_code(code),
        ),
        // KIP-554: Describe / Alter on the cluster resource, one result per user named.
        RequestKind::DescribeUserScramCredentials(_) => ResponseKind::DescribeUserScramCredentials(
            DescribeUserScramCredentialsResponse::default().with_error_code(code),
        ),
        RequestKind::AlterUserScramCredentials(r) => {
            let users = r.deletions.iter().map(|d| &d.name);
            let users = users.chain(r.upsertions.iter().map(|u| &u.name));
            let each = users.map(|name| {
                alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                    .with_user(name.clone())
                    .with_error_code(code)
            });
            ResponseKind::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(each.collect()),
            )
        }
        RequestKind::CreateAcls(r) => {
            let each = r
                .creations
                .iter()
                .map(|_| create_acls_response::AclCreationResult::default().with_error_code(code));
            ResponseKind::CreateAcls(CreateAclsResponse::default().with_results(each.collect()))
        }
        RequestKind::DeleteAcls(r) => {
            let each = r.filters.iter().map(|_| {
                delete_acls_response::DeleteAclsFilterResult::default().with_error_code(code)
            });
            ResponseKind::DeleteAcls(
                DeleteAclsResponse::default().with_filter_results(each.collect()),
            )
        }
        other => unreachable!("{other:?} is not a cluster API"),
    }
}
