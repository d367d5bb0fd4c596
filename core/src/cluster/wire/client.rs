//! The requester's side of the controller RPCs: a [`Request`] encoded as the Kafka request a
//! broker sends to the active controller, always at the highest version served, and its
//! response read back into an [`Answer`]. Also DescribeCluster, for `gregor cluster status`.

use super::*;

/// The version a requester uses for `key`: the highest served.
pub fn version_of(key: ApiKey) -> i16 {
    served_range(key).expect("a served API").1
}

fn request_frame(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &impl Encodable,
) -> Result<Bytes, ControllerWireError> {
    let mut buf = BytesMut::with_capacity(128);
    buf.put_u32(0);
    let enc = |buf: &mut BytesMut| -> anyhow::Result<()> {
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(sb(client_id)))
            .encode(buf, key.request_header_version(version))?;
        body.encode(buf, version)
    };
    enc(&mut buf).map_err(|e| malformed(key, format!("encoding the request: {e}")))?;
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    let at = |i: usize| i16::from_be_bytes([buf[i], buf[i + 1]]);
    assert_eq!(at(4), key as i16, "the frame names its API");
    assert_eq!(at(6), version, "the frame names its version");
    assert_eq!(
        i32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        correlation_id
    );
    Ok(buf.freeze())
}

/// `request` as a whole Kafka request frame (length prefix included), at the highest version.
pub fn encode_request(
    correlation_id: i32,
    client_id: &str,
    request: &Request,
) -> Result<Bytes, ControllerWireError> {
    if *request == Request::DescribeQuorum {
        // The quorum's own API: its versions are the Raft listener's, not in [`SERVED`].
        return super::quorum::encode_describe_quorum(correlation_id);
    }
    encode_request_at(
        correlation_id,
        client_id,
        request,
        version_of(api_of(request)),
    )
}

/// [`encode_request`] at `version`, which must be served.
pub fn encode_request_at(
    correlation_id: i32,
    client_id: &str,
    request: &Request,
    version: i16,
) -> Result<Bytes, ControllerWireError> {
    let key = api_of(request);
    if *request == Request::DescribeQuorum {
        return match version {
            v if v == crate::raft::wire::DESCRIBE_QUORUM_VERSIONS.1 => {
                super::quorum::encode_describe_quorum(correlation_id)
            }
            _ => Err(malformed(
                key,
                format!("v{version} is not the version sent"),
            )),
        };
    }
    let (lo, hi) = served_range(key).expect("served");
    if !(lo..=hi).contains(&version) {
        return Err(malformed(key, format!("v{version} is not served")));
    }
    match request {
        Request::BrokerRegistration(r) => {
            let listeners: Vec<_> = r
                .endpoints
                .iter()
                .map(|e| {
                    broker_registration_request::Listener::default()
                        .with_name(sb(&e.name))
                        .with_host(sb(&e.host))
                        .with_port(e.port)
                })
                .collect();
            assert_eq!(listeners.len(), r.endpoints.len(), "every endpoint sent");
            let body = BrokerRegistrationRequest::default()
                .with_broker_id(kafka_protocol::messages::BrokerId(r.broker_id.0))
                .with_incarnation_id(Uuid::from_bytes(r.incarnation_id))
                .with_listeners(listeners)
                .with_rack(r.rack.as_deref().map(sb))
                .with_previous_broker_epoch(if r.log_dir_new { -1 } else { 0 });
            request_frame(key, version, correlation_id, client_id, &body)
        }
        Request::BrokerHeartbeat {
            broker_id,
            broker_epoch,
            metadata_offset,
            want_shut_down,
        } => {
            let body = BrokerHeartbeatRequest::default()
                .with_broker_id(kafka_protocol::messages::BrokerId(broker_id.0))
                .with_broker_epoch(broker_epoch.0)
                .with_current_metadata_offset(*metadata_offset)
                .with_want_shut_down(*want_shut_down);
            request_frame(key, version, correlation_id, client_id, &body)
        }
        Request::AllocateProducerIds {
            broker_id,
            broker_epoch,
        } => {
            let body = AllocateProducerIdsRequest::default()
                .with_broker_id(kafka_protocol::messages::BrokerId(broker_id.0))
                .with_broker_epoch(broker_epoch.0);
            request_frame(key, version, correlation_id, client_id, &body)
        }
        Request::CreateTopic {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let rf = i16::try_from(*replication_factor)
                .map_err(|_| malformed(key, format!("replication factor {replication_factor}")))?;
            let configs_len = configs.len();
            let configs = configs
                .iter()
                .map(|(k, v)| {
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(sb(k))
                        .with_value(Some(sb(v)))
                })
                .collect();
            let topic = create_topics_request::CreatableTopic::default()
                .with_name(TopicName(sb(name)))
                .with_num_partitions(*partitions)
                .with_replication_factor(rf)
                .with_configs(configs);
            assert_eq!(topic.configs.len(), configs_len, "every config sent");
            assert_eq!(topic.num_partitions, *partitions);
            let body = CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(30_000);
            request_frame(key, version, correlation_id, client_id, &body)
        }
        Request::DeleteTopic { name } => {
            // v6 names topics in `Topics` (by name or id), earlier versions in `TopicNames`.
            let body = if version >= 6 {
                let topic = delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(TopicName(sb(name))));
                DeleteTopicsRequest::default().with_topics(vec![topic])
            } else {
                DeleteTopicsRequest::default().with_topic_names(vec![TopicName(sb(name))])
            };
            let body = body.with_timeout_ms(30_000);
            assert_eq!(body.topics.len() + body.topic_names.len(), 1, "one topic");
            request_frame(key, version, correlation_id, client_id, &body)
        }
        Request::CreatePartitions { name, count } => {
            let topic = create_partitions_request::CreatePartitionsTopic::default()
                .with_name(TopicName(sb(name)))
                .with_count(*count)
                .with_assignments(None);
            assert_eq!(topic.count, *count);
            let body = CreatePartitionsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(30_000);
            request_frame(key, version, correlation_id, client_id, &body)
        }
        Request::AlterPartition {
            broker_id,
            broker_epoch,
            topic_id,
            partition,
            leader_epoch,
            partition_epoch,
            new_isr,
            successor,
        } => {
            use alter_partition_request::{BrokerState, PartitionData, TopicData};
            let mut p = PartitionData::default()
                .with_partition_index(*partition)
                .with_leader_epoch(*leader_epoch)
                .with_partition_epoch(*partition_epoch);
            if let Some(to) = successor {
                let tag = super::alter_partition::SUCCESSOR_TAG;
                p = p.with_unknown_tagged_field(tag, Bytes::copy_from_slice(&to.0.to_be_bytes()));
            }
            // v3 carries each member's broker epoch (KIP-903); v2 the ids alone.
            if version >= 3 {
                p = p.with_new_isr_with_epochs(
                    new_isr
                        .iter()
                        .map(|(b, e)| {
                            BrokerState::default()
                                .with_broker_id(kafka_protocol::messages::BrokerId(b.0))
                                .with_broker_epoch(e.0)
                        })
                        .collect(),
                );
            } else {
                p = p.with_new_isr(
                    new_isr
                        .iter()
                        .map(|(b, _)| kafka_protocol::messages::BrokerId(b.0))
                        .collect(),
                );
            }
            let topic = TopicData::default()
                .with_topic_id(Uuid::from_bytes(topic_id.0))
                .with_partitions(vec![p]);
            let body = AlterPartitionRequest::default()
                .with_broker_id(kafka_protocol::messages::BrokerId(broker_id.0))
                .with_broker_epoch(broker_epoch.0)
                .with_topics(vec![topic]);
            request_frame(key, version, correlation_id, client_id, &body)
        }
        Request::AlterConfigs { name, changes } => {
            let body = super::alter_configs::alter_configs_request(name, changes);
            request_frame(key, version, correlation_id, client_id, &body)
        }
        Request::ElectLeader {
            topic,
            partition,
            kind,
        } => {
            let body = super::elect_leaders::elect_leaders_request(topic, *partition, *kind);
            request_frame(key, version, correlation_id, client_id, &body)
        }
        Request::AlterReassignment {
            topic,
            partition,
            target,
        } => {
            let body = super::reassign::reassign_request(topic, *partition, target.as_deref());
            request_frame(key, version, correlation_id, client_id, &body)
        }
        Request::CreateAcl(binding) => {
            let creation = crate::acl::wire::creation_of(binding);
            let body = CreateAclsRequest::default().with_creations(vec![creation]);
            request_frame(key, version, correlation_id, client_id, &body)
        }
        Request::DeleteAcls(filter) => {
            let f = crate::acl::wire::delete_filter_of(filter);
            let body = DeleteAclsRequest::default().with_filters(vec![f]);
            request_frame(key, version, correlation_id, client_id, &body)
        }
        Request::AlterScram { user, change } => {
            let body = super::scram::alter_scram_request(user, change);
            request_frame(key, version, correlation_id, client_id, &body)
        }
        Request::DescribeQuorum => unreachable!("encoded above"),
    }
}

/// The correlation id of a response frame (without its length prefix).
pub fn response_correlation_id(frame: &[u8]) -> Option<i32> {
    (frame.len() >= 4).then(|| i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]))
}

fn answer(code: i16, message: Option<StrBytes>, ok: impl FnOnce() -> Reply) -> Answer {
    assert!(
        message.is_none() || code != 0 || message.is_some(),
        "a message is optional"
    );
    if code == 0 {
        Ok(ok())
    } else {
        Err(Refusal {
            code,
            message: message.map(|m| m.to_string()).unwrap_or_default(),
        })
    }
}

/// Read the response (a frame without its length prefix) to `request`, sent with
/// [`encode_request`]: the controller's answer, or why the bytes are not that response.
pub fn decode_response(frame: Bytes, request: &Request) -> Result<Answer, ControllerWireError> {
    if *request == Request::DescribeQuorum {
        return super::quorum::decode_describe_quorum(frame);
    }
    decode_response_at(frame, request, version_of(api_of(request)))
}

/// [`decode_response`] of a response at `version`. Before CreateTopics v7 the response has no
/// topic id: the reply's is all zeros.
pub fn decode_response_at(
    frame: Bytes,
    request: &Request,
    version: i16,
) -> Result<Answer, ControllerWireError> {
    let key = api_of(request);
    if *request == Request::DescribeQuorum {
        return super::quorum::decode_describe_quorum(frame);
    }
    let mut buf = frame;
    ResponseHeader::decode(&mut buf, key.response_header_version(version))
        .map_err(|e| malformed(key, format!("response header: {e}")))?;
    let m = |e: anyhow::Error| malformed(key, e);
    let one = |n: usize| {
        if n == 1 {
            Ok(())
        } else {
            Err(malformed(key, format!("{n} results for one topic")))
        }
    };
    let answer = match key {
        ApiKey::BrokerRegistration => {
            let r = BrokerRegistrationResponse::decode(&mut buf, version).map_err(m)?;
            answer(r.error_code, None, || Reply::BrokerRegistration {
                broker_epoch: BrokerEpoch(r.broker_epoch),
            })
        }
        ApiKey::BrokerHeartbeat => {
            let r = BrokerHeartbeatResponse::decode(&mut buf, version).map_err(m)?;
            answer(r.error_code, None, || Reply::BrokerHeartbeat {
                fenced: r.is_fenced,
                should_shut_down: r.should_shut_down,
            })
        }
        ApiKey::AllocateProducerIds => {
            let r = AllocateProducerIdsResponse::decode(&mut buf, version).map_err(m)?;
            answer(r.error_code, None, || Reply::AllocateProducerIds {
                first: r.producer_id_start.0,
                count: r.producer_id_len.into(),
            })
        }
        ApiKey::CreateTopics => {
            let r = CreateTopicsResponse::decode(&mut buf, version).map_err(m)?;
            one(r.topics.len())?;
            let t = r.topics.into_iter().next().expect("one");
            answer(t.error_code, t.error_message, || Reply::CreateTopic {
                topic_id: super::super::TopicId(uuid_bytes(t.topic_id)),
            })
        }
        ApiKey::DeleteTopics => {
            let r = DeleteTopicsResponse::decode(&mut buf, version).map_err(m)?;
            one(r.responses.len())?;
            let t = r.responses.into_iter().next().expect("one");
            answer(t.error_code, t.error_message, || Reply::DeleteTopic)
        }
        ApiKey::CreatePartitions => {
            let r = CreatePartitionsResponse::decode(&mut buf, version).map_err(m)?;
            one(r.results.len())?;
            let t = r.results.into_iter().next().expect("one");
            answer(t.error_code, t.error_message, || Reply::CreatePartitions)
        }
        ApiKey::AlterPartition => {
            let r = AlterPartitionResponse::decode(&mut buf, version).map_err(m)?;
            if r.error_code != 0 {
                answer(r.error_code, None, || unreachable!("an error"))
            } else {
                one(r.topics.len())?;
                let t = r.topics.into_iter().next().expect("one");
                one(t.partitions.len())?;
                let p = t.partitions.into_iter().next().expect("one");
                answer(p.error_code, None, || Reply::AlterPartition {
                    leader: (p.leader_id.0 >= 0).then_some(BrokerId(p.leader_id.0)),
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    isr: p.isr.iter().map(|b| BrokerId(b.0)).collect(),
                })
            }
        }
        ApiKey::IncrementalAlterConfigs => {
            let r = IncrementalAlterConfigsResponse::decode(&mut buf, version).map_err(m)?;
            super::alter_configs::decode_alter_configs_answer(r)?
        }
        ApiKey::ElectLeaders => {
            let r = ElectLeadersResponse::decode(&mut buf, version).map_err(m)?;
            super::elect_leaders::decode_elect_leaders_answer(r)?
        }
        ApiKey::AlterPartitionReassignments => {
            let r = AlterPartitionReassignmentsResponse::decode(&mut buf, version).map_err(m)?;
            super::reassign::decode_reassign_answer(r)?
        }
        ApiKey::CreateAcls => {
            let r = CreateAclsResponse::decode(&mut buf, version).map_err(m)?;
            super::acls::decode_create_acl_answer(r)?
        }
        ApiKey::DeleteAcls => {
            let r = DeleteAclsResponse::decode(&mut buf, version).map_err(m)?;
            super::acls::decode_delete_acls_answer(r)?
        }
        ApiKey::AlterUserScramCredentials => {
            let r = AlterUserScramCredentialsResponse::decode(&mut buf, version).map_err(m)?;
            super::scram::decode_alter_scram_answer(r)?
        }
        other => unreachable!("{other:?} is not a controller request"),
    };
    assert!(
        answer.as_ref().map_or(true, |r| reply_api(r) == key),
        "the reply is of the request's API"
    );
    assert!(answer.as_ref().err().is_none_or(|r| r.code != 0));
    Ok(answer)
}

/// The API a reply answers.
fn reply_api(r: &Reply) -> ApiKey {
    match r {
        Reply::BrokerRegistration { .. } => ApiKey::BrokerRegistration,
        Reply::BrokerHeartbeat { .. } => ApiKey::BrokerHeartbeat,
        Reply::CreateTopic { .. } => ApiKey::CreateTopics,
        Reply::DeleteTopic => ApiKey::DeleteTopics,
        Reply::CreatePartitions => ApiKey::CreatePartitions,
        Reply::AllocateProducerIds { .. } => ApiKey::AllocateProducerIds,
        Reply::AlterPartition { .. } => ApiKey::AlterPartition,
        Reply::DescribeQuorum(_) => ApiKey::DescribeQuorum,
        Reply::AlterConfigs => ApiKey::IncrementalAlterConfigs,
        Reply::ElectLeader => ApiKey::ElectLeaders,
        Reply::AlterReassignment => ApiKey::AlterPartitionReassignments,
        Reply::CreateAcl => ApiKey::CreateAcls,
        Reply::DeleteAcls(_) => ApiKey::DeleteAcls,
        Reply::AlterScram => ApiKey::AlterUserScramCredentials,
    }
}

/// A DescribeCluster request frame (length prefix included) for brokers or controllers.
pub fn encode_describe_cluster_request(
    correlation_id: i32,
    endpoint_type: i8,
) -> Result<Bytes, ControllerWireError> {
    let body = DescribeClusterRequest::default()
        .with_endpoint_type(endpoint_type)
        .with_include_fenced_brokers(true);
    let key = ApiKey::DescribeCluster;
    request_frame(key, version_of(key), correlation_id, "gregor-cli", &body)
}

/// One node of a DescribeCluster response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub fenced: bool,
    /// The broker epoch, when the responder is gregor's controller ([`BROKER_EPOCH_TAG`]).
    pub broker_epoch: Option<i64>,
}

/// What a DescribeCluster response says: the error code, the active controller, the nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDescription {
    pub error_code: i16,
    pub controller_id: i32,
    pub nodes: Vec<ClusterNode>,
}

/// Read a DescribeCluster response sent to [`encode_describe_cluster_request`].
pub fn decode_describe_cluster_response(
    frame: Bytes,
) -> Result<ClusterDescription, ControllerWireError> {
    let key = ApiKey::DescribeCluster;
    let version = version_of(key);
    let mut buf = frame;
    ResponseHeader::decode(&mut buf, key.response_header_version(version))
        .map_err(|e| malformed(key, format!("response header: {e}")))?;
    let r = DescribeClusterResponse::decode(&mut buf, version).map_err(|e| malformed(key, e))?;
    let nodes: Vec<ClusterNode> = r
        .brokers
        .iter()
        .map(|b| ClusterNode {
            id: b.broker_id.0,
            host: b.host.to_string(),
            port: b.port,
            rack: b.rack.as_ref().map(|r| r.to_string()),
            fenced: b.is_fenced,
            broker_epoch: b
                .unknown_tagged_fields
                .get(&BROKER_EPOCH_TAG)
                .and_then(|v| <[u8; 8]>::try_from(&v[..]).ok())
                .map(i64::from_be_bytes),
        })
        .collect();
    assert_eq!(nodes.len(), r.brokers.len(), "every node read");
    Ok(ClusterDescription {
        error_code: r.error_code,
        controller_id: r.controller_id.0,
        nodes,
    })
}

/// A Metadata request frame (length prefix included) for every topic.
pub fn encode_metadata_request(correlation_id: i32) -> Result<Bytes, ControllerWireError> {
    let key = ApiKey::Metadata;
    let body = MetadataRequest::default().with_topics(None);
    request_frame(key, version_of(key), correlation_id, "gregor-cli", &body)
}

/// One topic of a Metadata response: name, id, and per partition (index, leader or -1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub topic_id: [u8; 16],
    pub error_code: i16,
    pub partitions: Vec<(i32, i32)>,
}

/// Read a Metadata response sent to [`encode_metadata_request`]: its topics.
pub fn decode_metadata_response(
    frame: Bytes,
) -> Result<Vec<TopicDescription>, ControllerWireError> {
    let key = ApiKey::Metadata;
    let version = version_of(key);
    let mut buf = frame;
    ResponseHeader::decode(&mut buf, key.response_header_version(version))
        .map_err(|e| malformed(key, format!("response header: {e}")))?;
    let r = MetadataResponse::decode(&mut buf, version).map_err(|e| malformed(key, e))?;
    Ok(r.topics
        .iter()
        .map(|t| TopicDescription {
            name: t.name.as_ref().map_or(String::new(), |n| n.to_string()),
            topic_id: uuid_bytes(t.topic_id),
            error_code: t.error_code,
            partitions: t
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.leader_id.0))
                .collect(),
        })
        .collect())
}
