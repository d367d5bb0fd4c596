//! DescribeQuorum (55): the quorum's state for tools (`kafka-metadata-quorum describe`).

use super::response::top_error;
use super::*;

/// A DescribeQuorum request frame, as `kafka-metadata-quorum` sends it.
pub fn encode_describe_quorum_request(
    correlation_id: i32,
    version: i16,
) -> Result<Bytes, WireError> {
    let body = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(topic_name())
            .with_partitions(vec![describe_quorum_request::PartitionData::default()]),
    ]);
    request_frame(ApiKey::DescribeQuorum, version, correlation_id, &body)
}

fn replica_states(
    rs: &[ReplicaStatus],
    version: i16,
) -> Vec<describe_quorum_response::ReplicaState> {
    // The fetch times exist from v1 on; v0 cannot carry them.
    let time = |t: i64| if version >= 1 { t } else { -1 };
    rs.iter()
        .map(|r| {
            describe_quorum_response::ReplicaState::default()
                .with_replica_id(r.id.0.into())
                .with_log_end_offset(r.log_end_offset)
                .with_last_fetch_timestamp(time(r.last_fetch_ms))
                .with_last_caught_up_timestamp(time(r.last_caught_up_ms))
        })
        .collect()
}

/// The answer to a DescribeQuorum decoded with [`decode_request`]. A node that is not the leader
/// answers NOT_LEADER_OR_FOLLOWER naming the leader it knows, as Kafka does; the tool then asks
/// that one.
pub fn encode_describe_quorum_response(
    request: &InboundRequest,
    status: &QuorumStatus,
    is_leader: bool,
) -> Result<Bytes, WireError> {
    let body = describe_quorum_body(status, is_leader, request.version);
    response_frame(
        ApiKey::DescribeQuorum,
        request.version,
        request.correlation_id,
        &body,
    )
}

/// The body of a DescribeQuorum response at `version`: the quorum's one partition with its
/// leader, epoch and high watermark, and (from the leader only) every voter's and observer's
/// progress; NOT_LEADER_OR_FOLLOWER from another node. A KRaft broker answers a forwarded
/// DescribeQuorum with this too, from the active controller's status.
pub fn describe_quorum_body(
    status: &QuorumStatus,
    is_leader: bool,
    version: i16,
) -> DescribeQuorumResponse {
    let mut p = describe_quorum_response::PartitionData::default()
        .with_leader_id(status.leader.map_or(-1, |l| l.0).into())
        .with_leader_epoch(status.epoch.0)
        .with_high_watermark(status.high_watermark);
    if is_leader {
        p.current_voters = replica_states(&status.voters, version);
        p.observers = replica_states(&status.observers, version);
    } else {
        p.error_code = NOT_LEADER_OR_FOLLOWER;
    }
    DescribeQuorumResponse::default().with_topics(vec![
        describe_quorum_response::TopicData::default()
            .with_topic_name(topic_name())
            .with_partitions(vec![p]),
    ])
}

/// Read a DescribeQuorum response frame (without its length prefix). `Err` carries the error a
/// non-leader answered with; the status then still names the leader it knows.
pub fn decode_describe_quorum_response(
    frame: Bytes,
    version: i16,
) -> Result<(QuorumStatus, i16), WireError> {
    let mut buf = frame;
    ResponseHeader::decode(
        &mut buf,
        ApiKey::DescribeQuorum.response_header_version(version),
    )
    .map_err(|e| WireError::Frame(format!("response header: {e}")))?;
    let r = DescribeQuorumResponse::decode(&mut buf, version)
        .map_err(|e| malformed("DescribeQuorum", e))?;
    top_error("DescribeQuorum", r.error_code)?;
    let p = only(
        "DescribeQuorum",
        r.topics.into_iter().map(|t| (t.topic_name, t.partitions)),
    )?;
    let states = |rs: Vec<describe_quorum_response::ReplicaState>| {
        rs.into_iter()
            .map(|r| ReplicaStatus {
                id: NodeId(r.replica_id.0),
                log_end_offset: r.log_end_offset,
                last_fetch_ms: r.last_fetch_timestamp,
                last_caught_up_ms: r.last_caught_up_timestamp,
            })
            .collect()
    };
    let status = QuorumStatus {
        leader: leader_of(p.leader_id.0),
        epoch: Epoch(p.leader_epoch.max(0)),
        high_watermark: p.high_watermark,
        voters: states(p.current_voters),
        observers: states(p.observers),
    };
    assert!(status.epoch.0 >= 0);
    Ok((status, p.error_code))
}
