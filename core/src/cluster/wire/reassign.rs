//! AlterPartitionReassignments (API 45, KIP-455) on the controller listener: a broker forwards
//! an operator's reassignment to the active controller in Kafka's own encoding, one
//! [`Request::AlterReassignment`] per partition named (a null replica list cancels), and the
//! answer is assembled back by topic in the request's order. Version 0.

use super::*;
use alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};

/// One item per partition, in the request's order.
pub(super) fn reassign_items(r: &AlterPartitionReassignmentsRequest) -> Vec<Item> {
    let mut items = Vec::new();
    for t in &r.topics {
        for p in &t.partitions {
            let target = (p.replicas.as_ref())
                .map(|rs| rs.iter().map(|b| BrokerId(b.0)).collect::<Vec<_>>());
            items.push(Item {
                topic: Some(t.name.to_string()),
                partitions: p.partition_index,
                replication_factor: -1,
                request: Ok(Request::AlterReassignment {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    target,
                }),
            });
        }
    }
    let asked: usize = r.topics.iter().map(|t| t.partitions.len()).sum();
    assert_eq!(items.len(), asked, "one item per partition");
    items
}

/// The response: each partition's error code and message, grouped by topic in request order.
pub(super) fn encode_reassign_response(
    items: &[Item],
    answers: &[Answer],
    version: i16,
    correlation_id: i32,
) -> Result<Bytes, ControllerWireError> {
    let mut topics: Vec<ReassignableTopicResponse> = Vec::new();
    for (i, a) in items.iter().zip(answers) {
        if let Ok(r) = a {
            assert_eq!(*r, Reply::AlterReassignment, "a reassignment answered");
        }
        let (code, message) = code_of(a);
        let topic = i.topic.as_deref().unwrap_or("");
        let result = ReassignablePartitionResponse::default()
            .with_partition_index(i.partitions)
            .with_error_code(code)
            .with_error_message(message);
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == topic => last.partitions.push(result),
            _ => topics.push(
                ReassignableTopicResponse::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(vec![result]),
            ),
        }
    }
    let n: usize = topics.iter().map(|t| t.partitions.len()).sum();
    assert_eq!(n, items.len(), "one result per partition");
    let body = AlterPartitionReassignmentsResponse::default().with_responses(topics);
    frame(
        ApiKey::AlterPartitionReassignments,
        version,
        correlation_id,
        &body,
    )
}

/// The request a broker sends for one partition.
pub(super) fn reassign_request(
    topic: &str,
    partition: i32,
    target: Option<&[BrokerId]>,
) -> AlterPartitionReassignmentsRequest {
    let replicas = target.map(|t| {
        t.iter()
            .map(|b| kafka_protocol::messages::BrokerId(b.0))
            .collect()
    });
    let p = ReassignablePartition::default()
        .with_partition_index(partition)
        .with_replicas(replicas);
    let t = ReassignableTopic::default()
        .with_name(TopicName(sb(topic)))
        .with_partitions(vec![p]);
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![t])
}

/// The answer in a response to [`reassign_request`] (one partition).
pub(super) fn decode_reassign_answer(
    r: AlterPartitionReassignmentsResponse,
) -> Result<Answer, ControllerWireError> {
    if r.error_code != 0 {
        return Ok(Err(Refusal {
            code: r.error_code,
            message: r.error_message.map(|m| m.to_string()).unwrap_or_default(),
        }));
    }
    let mut results = r.responses.into_iter().flat_map(|t| t.partitions);
    let (Some(p), None) = (results.next(), results.next()) else {
        return Err(malformed(
            ApiKey::AlterPartitionReassignments,
            "not one result for one partition",
        ));
    };
    Ok(if p.error_code == 0 {
        Ok(Reply::AlterReassignment)
    } else {
        Err(Refusal {
            code: p.error_code,
            message: p.error_message.map(|m| m.to_string()).unwrap_or_default(),
        })
    })
}
