//! What the controller listener answers by itself, for tools: ApiVersions, and
//! DescribeCluster and Metadata from the committed image.

use super::*;

/// The ApiVersions table of the controller listener: [`SERVED`] and the quorum's RPCs.
pub fn api_versions_table() -> Vec<(ApiKey, i16, i16)> {
    use crate::raft::wire as q;
    let mut t: Vec<(ApiKey, i16, i16)> = SERVED.to_vec();
    t.extend([
        (ApiKey::Vote, q::VOTE_VERSION, q::VOTE_VERSION),
        (
            ApiKey::BeginQuorumEpoch,
            q::BEGIN_QUORUM_EPOCH_VERSION,
            q::BEGIN_QUORUM_EPOCH_VERSION,
        ),
        (
            ApiKey::EndQuorumEpoch,
            q::END_QUORUM_EPOCH_VERSION,
            q::END_QUORUM_EPOCH_VERSION,
        ),
        (ApiKey::Fetch, q::FETCH_VERSION, q::FETCH_VERSION),
        (
            ApiKey::FetchSnapshot,
            q::FETCH_SNAPSHOT_VERSION,
            q::FETCH_SNAPSHOT_VERSION,
        ),
        (
            ApiKey::DescribeQuorum,
            q::DESCRIBE_QUORUM_VERSIONS.0,
            q::DESCRIBE_QUORUM_VERSIONS.1,
        ),
    ]);
    t.sort_by_key(|(k, _, _)| *k as i16);
    assert!(
        t.windows(2).all(|w| (w[0].0 as i16) < (w[1].0 as i16)),
        "each API once"
    );
    assert!(t.iter().all(|(_, lo, hi)| 0 <= *lo && lo <= hi));
    t
}

/// The ApiVersions response (KIP-511: v0 with UNSUPPORTED_VERSION when the client's version is
/// above ours, so it retries at one we speak).
pub fn encode_api_versions_response(
    request: &ControllerRequest,
) -> Result<Bytes, ControllerWireError> {
    let Call::ApiVersions { unsupported } = request.call else {
        panic!("not an ApiVersions request: {:?}", request.call);
    };
    let keys = api_versions_table()
        .into_iter()
        .map(|(k, lo, hi)| {
            api_versions_response::ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(lo)
                .with_max_version(hi)
        })
        .collect();
    let (version, code) = if unsupported {
        (0, UNSUPPORTED_VERSION)
    } else {
        (request.version, 0)
    };
    let body = ApiVersionsResponse::default()
        .with_error_code(code)
        .with_api_keys(keys);
    frame(ApiKey::ApiVersions, version, request.correlation_id, &body)
}

/// The DescribeCluster response: for `EndpointType` 1 (or v0) the brokers registered in the
/// committed `image` (fenced ones included, `IsFenced` from v2, the broker epoch in the
/// [`BROKER_EPOCH_TAG`] tagged field); for 2 the controllers (`controllers`: id, host, port).
/// `controller_id` is the active controller, -1 when none is known.
pub fn encode_describe_cluster_response(
    request: &ControllerRequest,
    cluster_id: &str,
    controller_id: Option<i32>,
    image: &MetadataImage,
    controllers: &[(i32, String, u16)],
) -> Result<Bytes, ControllerWireError> {
    let Call::DescribeCluster { endpoint_type } = request.call else {
        panic!("not a DescribeCluster request: {:?}", request.call);
    };
    let broker = |id: i32, host: &str, port: u16| {
        describe_cluster_response::DescribeClusterBroker::default()
            .with_broker_id(kafka_protocol::messages::BrokerId(id))
            .with_host(sb(host))
            .with_port(port.into())
    };
    let mut body = DescribeClusterResponse::default()
        .with_cluster_id(sb(cluster_id))
        .with_controller_id(kafka_protocol::messages::BrokerId(
            controller_id.unwrap_or(-1),
        ))
        .with_endpoint_type(endpoint_type)
        .with_cluster_authorized_operations(i32::MIN);
    match endpoint_type {
        ENDPOINT_TYPE_BROKERS => {
            for b in image.brokers().values() {
                let (host, port) = b
                    .endpoints
                    .first()
                    .map_or(("", 0), |e| (e.host.as_str(), e.port));
                let mut d = broker(b.broker_id.0, host, port)
                    .with_rack(b.rack.as_deref().map(sb))
                    .with_is_fenced(b.fenced);
                d.unknown_tagged_fields.insert(
                    BROKER_EPOCH_TAG,
                    Bytes::copy_from_slice(&b.broker_epoch.0.to_be_bytes()),
                );
                body.brokers.push(d);
            }
            assert_eq!(
                body.brokers.len(),
                image.brokers().len(),
                "every registration"
            );
        }
        ENDPOINT_TYPE_CONTROLLERS => {
            assert!(body.brokers.is_empty(), "controllers only");
            for (id, host, port) in controllers {
                body.brokers.push(broker(*id, host, *port));
            }
        }
        other => {
            assert!(body.brokers.is_empty());
            // Kafka's UNSUPPORTED_ENDPOINT_TYPE.
            body = body
                .with_error_code(120)
                .with_error_message(Some(sb(&format!("endpoint type {other}"))));
        }
    }
    frame(
        ApiKey::DescribeCluster,
        request.version,
        request.correlation_id,
        &body,
    )
}

/// The Metadata response from the committed `image` (so `kcat -L` pointed at a controller
/// shows what the cluster has agreed): the unfenced brokers at their first endpoint (a fenced
/// broker is not listed, as Kafka's brokers leave it out), the active controller, and each
/// topic asked for with its partitions' leader, leader epoch, replicas and ISR. A topic not in
/// the image is UNKNOWN_TOPIC_OR_PARTITION (3).
pub fn encode_metadata_response(
    request: &ControllerRequest,
    cluster_id: &str,
    controller_id: Option<i32>,
    image: &MetadataImage,
) -> Result<Bytes, ControllerWireError> {
    let Call::Metadata { topics } = &request.call else {
        panic!("not a Metadata request: {:?}", request.call);
    };
    let id = kafka_protocol::messages::BrokerId;
    let mut body = MetadataResponse::default()
        .with_cluster_id(Some(sb(cluster_id)))
        .with_controller_id(id(controller_id.unwrap_or(-1)));
    for b in image.brokers().values().filter(|b| !b.fenced) {
        let (host, port) = b
            .endpoints
            .first()
            .map_or(("", 0), |e| (e.host.as_str(), e.port));
        body.brokers.push(
            metadata_response::MetadataResponseBroker::default()
                .with_node_id(id(b.broker_id.0))
                .with_host(sb(host))
                .with_port(port.into())
                .with_rack(b.rack.as_deref().map(sb)),
        );
    }
    let names: Vec<String> = match topics {
        Some(t) => t.clone(),
        None => image.topics().values().map(|t| t.name.clone()).collect(),
    };
    let asked = names.len();
    for name in names {
        let mut t = metadata_response::MetadataResponseTopic::default()
            .with_name(Some(TopicName(sb(&name))));
        match image.topic_id(&name) {
            None => t = t.with_error_code(3),
            Some(topic_id) => {
                t = t.with_topic_id(Uuid::from_bytes(topic_id.0));
                for (p, r) in &image.topics()[&topic_id].partitions {
                    let ids = |v: &[BrokerId]| v.iter().map(|b| id(b.0)).collect::<Vec<_>>();
                    t.partitions.push(
                        metadata_response::MetadataResponsePartition::default()
                            // LEADER_NOT_AVAILABLE (5) for an offline partition.
                            .with_error_code(if r.leader.is_some() { 0 } else { 5 })
                            .with_partition_index(*p)
                            .with_leader_id(id(r.leader.map_or(-1, |l| l.0)))
                            .with_leader_epoch(r.leader_epoch)
                            .with_replica_nodes(ids(&r.replicas))
                            .with_isr_nodes(ids(&r.isr)),
                    );
                }
            }
        }
        body.topics.push(t);
    }
    assert!(body
        .topics
        .iter()
        .all(|t| t.error_code != 0 || t.topic_id != Uuid::nil()));
    assert!(body.brokers.len() <= image.brokers().len());
    assert_eq!(body.topics.len(), asked, "every topic asked is answered");
    frame(
        ApiKey::Metadata,
        request.version,
        request.correlation_id,
        &body,
    )
}
